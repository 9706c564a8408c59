//! The plan of a statement the app ran, for the development debug toolbar: SQLite's
//! `EXPLAIN QUERY PLAN`, PostgreSQL's `EXPLAIN` of the generic plan (the statement
//! as recorded has placeholders, not values: PostgreSQL 16's `GENERIC_PLAN` option
//! does this directly; before it, a prepared statement with `plan_cache_mode =
//! force_generic_plan` shows the same plan).

use diesel::connection::SimpleConnection;
use diesel::sql_types::{Integer, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};

use crate::{Db, DbConn, DbError, DbResult};

#[derive(QueryableByName)]
struct SqlitePlanRow {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Integer)]
    parent: i32,
    #[diesel(sql_type = Text)]
    detail: String,
}

#[derive(QueryableByName)]
struct PgPlanRow {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// Whether `sql` is a query that only reads (`SELECT` or `WITH`), the only kind
/// [`Db::explain`] accepts: a plan of a write is not worth the risk of running one.
#[must_use]
pub fn is_explainable(sql: &str) -> bool {
    let first = sql
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or_default();
    (first.eq_ignore_ascii_case("select") || first.eq_ignore_ascii_case("with"))
        && !sql.trim_end().trim_end_matches(';').contains(';')
}

/// The highest `$n` placeholder in `sql` (PostgreSQL's numbered parameters).
fn parameters(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut most = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if let Ok(n) = sql[i + 1..i + 1 + digits].parse::<usize>() {
                most = most.max(n);
            }
            i += 1 + digits;
        } else {
            i += 1;
        }
    }
    most
}

impl Db {
    /// The plan of `sql` (a statement as the app ran it, placeholders kept), one
    /// line per step, indented by depth. Runs nothing but `EXPLAIN`: SQLite's with
    /// the parameters unbound, PostgreSQL's inside a transaction that is rolled back.
    ///
    /// ```
    /// let db = napiatke_db::Db::open("sqlite::memory:", napiatke_db::PoolOptions::default())?;
    /// let plan = db.explain("SELECT 1 WHERE ? = 1")?;
    /// assert!(!plan.is_empty());
    /// assert!(db.explain("DELETE FROM users").is_err());
    /// # Ok::<(), napiatke_db::DbError>(())
    /// ```
    pub fn explain(&self, sql: &str) -> DbResult<Vec<String>> {
        if !is_explainable(sql) {
            return Err(DbError::Unsupported(
                "only a single SELECT or WITH statement can be explained".to_owned(),
            ));
        }
        let mut conn = self.get()?;
        match &mut *conn {
            DbConn::Sqlite(c) => {
                let rows: Vec<SqlitePlanRow> =
                    diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(c)?;
                Ok(sqlite_tree(&rows))
            }
            DbConn::Pg(c) => c.transaction(|c| {
                let n = parameters(sql);
                c.batch_execute(&format!(
                    "SET LOCAL plan_cache_mode = force_generic_plan; \
                     PREPARE napiatke_explain AS {sql}"
                ))?;
                let args = if n == 0 {
                    String::new()
                } else {
                    format!("({})", vec!["NULL"; n].join(", "))
                };
                let rows: DbResult<Vec<PgPlanRow>> =
                    diesel::sql_query(format!("EXPLAIN EXECUTE napiatke_explain{args}"))
                        .load(c)
                        .map_err(DbError::from);
                c.batch_execute("DEALLOCATE napiatke_explain")?;
                rows.map(|rows| rows.into_iter().map(|r| r.line).collect())
            }),
        }
    }
}

/// SQLite's plan rows (id, parent, detail) as lines indented by depth.
fn sqlite_tree(rows: &[SqlitePlanRow]) -> Vec<String> {
    let depth_of = |mut parent: i32| {
        let mut depth = 0;
        while parent != 0 && depth < rows.len() {
            depth += 1;
            parent = rows.iter().find(|r| r.id == parent).map_or(0, |r| r.parent);
        }
        depth
    };
    rows.iter()
        .map(|r| format!("{}{}", "  ".repeat(depth_of(r.parent)), r.detail))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_reads_are_explained() {
        assert!(is_explainable("SELECT * FROM lessons WHERE id = ?"));
        assert!(is_explainable("  with x as (select 1) select * from x"));
        assert!(is_explainable("SELECT 1;"));
        assert!(!is_explainable("DELETE FROM lessons"));
        assert!(!is_explainable("SELECT 1; DROP TABLE users"));
        assert!(!is_explainable("selective"));
        assert!(!is_explainable(""));
    }

    #[test]
    fn placeholders_are_counted() {
        assert_eq!(parameters("SELECT 1"), 0);
        assert_eq!(parameters("SELECT $1, $2 WHERE a = $10"), 10);
        assert_eq!(parameters("SELECT '$' || $3"), 3);
    }
}
