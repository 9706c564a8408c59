//! SPEC.md's demo data set, deterministic from a seed and a "now": the same seed and
//! now give the same rows, ids included, on both engines.
//!
//! Written in one transaction, so a failure leaves the database as it was: COPY
//! (binary) on PostgreSQL, chunked multi-row prepared INSERTs on SQLite.

mod generate;
mod rng;

use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, SaltString};
use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};

use self::generate::{generate, DemoData};
use crate::schema::{
    attendance, invoices, lesson_students, lessons, rooms, student_profiles, subjects,
    tutor_profiles, users, TABLES,
};
use crate::{DbConn, DbError, DbResult};

/// How much data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scale {
    /// 3 tutors, 24 students, 4 weeks: for tests that want the real shape quickly.
    Tiny,
    /// SPEC's standard set: 40 tutors, 1,200 students, 26 weeks (about 20,800 lessons).
    Standard,
    /// Ten times the tutors, students and lessons.
    Large,
}

impl std::str::FromStr for Scale {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tiny" => Ok(Scale::Tiny),
            "standard" => Ok(Scale::Standard),
            "large" => Ok(Scale::Large),
            other => Err(format!(
                "unknown scale {other:?}; expected tiny, standard or large"
            )),
        }
    }
}

/// What to seed.
#[derive(Debug, Clone, Copy)]
pub struct SeedOptions {
    /// How much.
    pub scale: Scale,
    /// Same seed, same rows.
    pub seed: u64,
    /// The moment the set is centred on: lessons before it are past (COMPLETED or
    /// CANCELLED, with attendance), after it SCHEDULED.
    pub now: NaiveDateTime,
    /// Replace existing data instead of refusing.
    pub force: bool,
    /// The school's time zone: lessons are on local weekdays from 08:00 to 20:00
    /// (stored in UTC, so an 08:00 lesson is 07:00 UTC in winter, 06:00 in summer).
    pub zone: napiatke_domain::Zone,
}

impl SeedOptions {
    /// Seed `scale` from `seed` around `now`, refusing a non-empty database, with
    /// lessons in Europe/Warsaw's local hours.
    #[must_use]
    pub fn new(scale: Scale, seed: u64, now: NaiveDateTime) -> Self {
        SeedOptions {
            scale,
            seed,
            now,
            force: false,
            zone: napiatke_domain::Zone::default(),
        }
    }
}

/// Where seeding is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The table being written.
    pub table: &'static str,
    /// Rows written so far, all tables.
    pub done: u64,
    /// Rows to write, all tables.
    pub total: u64,
}

/// What seeding wrote.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// Rows per table, in insertion order.
    pub rows: Vec<(&'static str, u64)>,
    /// Building the set in memory (hashing included).
    pub generate: Duration,
    /// Writing it, commit included.
    pub write: Duration,
}

impl SeedReport {
    /// Rows of one table.
    #[must_use]
    pub fn count(&self, table: &str) -> u64 {
        self.rows
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }
}

/// Seeds the demo set. Refuses a database that holds any user unless
/// `options.force`, in which case all rows are replaced, in the same transaction.
pub fn run(
    conn: &mut DbConn,
    options: &SeedOptions,
    mut progress: impl FnMut(Progress),
) -> DbResult<SeedReport> {
    if !options.force {
        refuse_non_empty(conn)?;
    }
    let t0 = Instant::now();
    let data = generate(options, hash_password)?;
    let generated = t0.elapsed();
    let rows = vec![
        ("users", data.users.len() as u64),
        ("tutor_profiles", data.tutor_profiles.len() as u64),
        ("student_profiles", data.student_profiles.len() as u64),
        ("subjects", data.subjects.len() as u64),
        ("rooms", data.rooms.len() as u64),
        ("lessons", data.lessons.len() as u64),
        ("lesson_students", data.lesson_students.len() as u64),
        ("attendance", data.attendance.len() as u64),
        ("invoices", data.invoices.len() as u64),
    ];
    let total = rows.iter().map(|(_, n)| n).sum();
    let mut tracker = Tracker {
        done: 0,
        total,
        report: &mut progress,
    };
    let t1 = Instant::now();
    conn.transaction::<_, DbError, _>(|conn| {
        if options.force {
            empty_all(conn)?;
        } else {
            // Checked again inside the transaction: another seeder may have won the race.
            refuse_non_empty(conn)?;
        }
        match conn {
            DbConn::Pg(pg) => write_pg(pg, &data, &mut tracker)?,
            DbConn::Sqlite(lite) => write_sqlite(lite, &data, &mut tracker)?,
        }
        crate::queries::students::rebuild_search(conn)?;
        Ok(())
    })?;
    Ok(SeedReport {
        rows,
        generate: generated,
        write: t1.elapsed(),
    })
}

/// The argon2id hash (PHC string, argon2's default parameters) of `password`.
pub fn hash_password(password: &str, salt: &[u8; 16]) -> DbResult<String> {
    let salt = SaltString::encode_b64(salt).map_err(|e| DbError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DbError::Hash(e.to_string()))
}

fn refuse_non_empty(conn: &mut DbConn) -> DbResult<()> {
    let users = crate::queries::users::count_all(conn)?;
    if users > 0 {
        return Err(DbError::NotEmpty { users });
    }
    Ok(())
}

fn empty_all(conn: &mut DbConn) -> DbResult<()> {
    match conn {
        DbConn::Pg(pg) => {
            pg.batch_execute(&format!(
                "TRUNCATE {} RESTART IDENTITY CASCADE",
                TABLES.join(", ")
            ))?;
        }
        DbConn::Sqlite(lite) => {
            for table in TABLES.iter().rev() {
                lite.batch_execute(&format!("DELETE FROM {table}"))?;
            }
        }
    }
    Ok(())
}

struct Tracker<'a> {
    done: u64,
    total: u64,
    report: &'a mut dyn FnMut(Progress),
}

impl Tracker<'_> {
    fn advance(&mut self, table: &'static str, rows: usize) {
        self.done += rows as u64;
        (self.report)(Progress {
            table,
            done: self.done,
            total: self.total,
        });
    }
}

/// A statement that sets a constraint or index aside, and the one that puts it back.
#[derive(QueryableByName)]
struct Ddl {
    #[diesel(sql_type = diesel::sql_types::Text)]
    drop_sql: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    restore_sql: String,
}

/// Drops our tables' foreign keys and secondary indexes and returns the statements
/// that put them back, as pg_restore does: checking 150,000 foreign keys row by row
/// and growing six indexes during COPY took two thirds of the standard seed; building
/// the indexes and validating each constraint once afterwards is a few set operations.
/// Runs inside the seeding transaction, so a failure restores everything.
fn defer_constraints(conn: &mut PgConnection) -> DbResult<Vec<String>> {
    let tables = quoted_tables();
    let foreign_keys: Vec<Ddl> = diesel::sql_query(format!(
        "SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', cl.relname, co.conname) AS drop_sql, \
                format('ALTER TABLE %I ADD CONSTRAINT %I %s', cl.relname, co.conname, \
                       pg_get_constraintdef(co.oid)) AS restore_sql \
         FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid \
         WHERE co.contype = 'f' AND co.connamespace = current_schema()::regnamespace \
           AND cl.relname IN ({tables}) ORDER BY cl.relname, co.conname"
    ))
    .load(conn)?;
    let indexes: Vec<Ddl> = diesel::sql_query(format!(
        "SELECT format('DROP INDEX %I', indexname) AS drop_sql, indexdef AS restore_sql \
         FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN ({tables}) \
           AND indexname NOT IN (SELECT conname FROM pg_constraint \
                                 WHERE connamespace = current_schema()::regnamespace) \
         ORDER BY indexname"
    ))
    .load(conn)?;
    let mut restore = Vec::new();
    for ddl in foreign_keys.iter().chain(&indexes) {
        conn.batch_execute(&ddl.drop_sql)?;
    }
    // Indexes first: foreign keys validate faster with them in place.
    restore.extend(indexes.into_iter().map(|d| d.restore_sql));
    restore.extend(foreign_keys.into_iter().map(|d| d.restore_sql));
    Ok(restore)
}

fn write_pg(conn: &mut PgConnection, d: &DemoData, t: &mut Tracker<'_>) -> DbResult<()> {
    let restore = defer_constraints(conn)?;
    macro_rules! copy {
        ($table:ident, $rows:expr) => {{
            diesel::copy_from($table::table)
                .from_insertable($rows)
                .execute(conn)?;
            t.advance(stringify!($table), $rows.len());
        }};
    }
    copy!(users, &d.users);
    copy!(tutor_profiles, &d.tutor_profiles);
    copy!(student_profiles, &d.student_profiles);
    copy!(subjects, &d.subjects);
    copy!(rooms, &d.rooms);
    copy!(lessons, &d.lessons);
    copy!(lesson_students, &d.lesson_students);
    copy!(attendance, &d.attendance);
    copy!(invoices, &d.invoices);
    for statement in restore {
        conn.batch_execute(&statement)?;
    }
    // COPY wrote explicit ids; move each identity past them so new rows don't collide.
    reset_identities(conn)?;
    // Fresh statistics, so the first queries after seeding get good plans.
    conn.batch_execute(&format!("ANALYZE {}", TABLES.join(", ")))?;
    Ok(())
}

/// Moves every PostgreSQL identity past the largest id present, after rows were
/// written with explicit ids (COPY, fixtures). SQLite needs nothing: its rowids follow
/// the largest key by themselves.
pub fn reset_identities(conn: &mut PgConnection) -> DbResult<()> {
    let mut reset = String::new();
    for table in [
        "users",
        "subjects",
        "rooms",
        "lessons",
        "lesson_students",
        "attendance",
        "invoices",
    ] {
        reset.push_str(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
             COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false);"
        ));
    }
    conn.batch_execute(&reset)?;
    Ok(())
}

/// Rows per multi-row INSERT: 500 rows of at most 8 columns stays far below SQLite's
/// 32,766 bind parameters, and equal chunks reuse one prepared statement.
const SQLITE_CHUNK: usize = 500;

/// SQLite's counterpart of [`defer_constraints`]: secondary indexes are dropped and
/// rebuilt after the rows are in (a sort instead of a B-tree insert per row).
fn defer_indexes(conn: &mut SqliteConnection) -> DbResult<Vec<String>> {
    let indexes: Vec<Ddl> = diesel::sql_query(format!(
        "SELECT 'DROP INDEX \"' || name || '\"' AS drop_sql, sql AS restore_sql \
         FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
         AND tbl_name IN ({}) ORDER BY name",
        quoted_tables()
    ))
    .load(conn)?;
    for index in &indexes {
        conn.batch_execute(&index.drop_sql)?;
    }
    Ok(indexes.into_iter().map(|i| i.restore_sql).collect())
}

/// Our tables as an SQL list: `'users', 'tutor_profiles', ...`.
fn quoted_tables() -> String {
    TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_sqlite(conn: &mut SqliteConnection, d: &DemoData, t: &mut Tracker<'_>) -> DbResult<()> {
    let restore = defer_indexes(conn)?;
    macro_rules! insert {
        ($table:ident, $rows:expr) => {{
            for chunk in $rows.chunks(SQLITE_CHUNK) {
                diesel::insert_into($table::table)
                    .values(chunk)
                    .execute(conn)?;
                t.advance(stringify!($table), chunk.len());
            }
        }};
    }
    insert!(users, &d.users);
    insert!(tutor_profiles, &d.tutor_profiles);
    insert!(student_profiles, &d.student_profiles);
    insert!(subjects, &d.subjects);
    insert!(rooms, &d.rooms);
    insert!(lessons, &d.lessons);
    insert!(lesson_students, &d.lesson_students);
    insert!(attendance, &d.attendance);
    insert!(invoices, &d.invoices);
    for statement in restore {
        conn.batch_execute(&statement)?;
    }
    conn.batch_execute("ANALYZE")?;
    Ok(())
}
