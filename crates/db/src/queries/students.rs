//! Students: the active ones, the list with search, and their lesson statistics.

use diesel::connection::SimpleConnection;
use diesel::dsl::{count, sql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use napiatke_domain::{fold_search, AttendanceRate, Role, UserId};

use super::{count_where, Page, PageRequest};
use crate::conn::MultiBackend;
use crate::schema::{
    attendance, lesson_students, lessons, student_profiles, student_search, users,
};
use crate::{DbConn, DbResult, Engine};

/// A student's lesson figures (Django's `with_lesson_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LessonStats {
    /// Lessons the student is in, any status.
    pub total: i64,
    /// Of which COMPLETED.
    pub completed: i64,
    /// PRESENT out of lessons with an attendance mark. Future and unmarked lessons do
    /// not drag the rate down (the reference design divided by every lesson).
    pub attendance: AttendanceRate,
}

/// A row of the student list (Django's `for_list().with_lesson_stats()`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StudentListItem {
    /// The student.
    pub id: UserId,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Login e-mail.
    pub email: String,
    /// School class ("7A"), if the student has a profile.
    pub class_name: Option<String>,
    /// Lesson figures.
    pub stats: LessonStats,
}

/// Active students matching `q` (see [`search_ids`]), by family name, one page, with
/// lesson stats. Three statements: the matching ids, the page's rows, their stats.
pub fn list(
    conn: &mut DbConn,
    q: Option<&str>,
    page: PageRequest,
) -> DbResult<Page<StudentListItem>> {
    let ids = search_ids(conn, q)?;
    let mut items = rows(conn, page_of(&ids, page))?;
    let wanted: Vec<UserId> = items.iter().map(|s| s.id).collect();
    if !wanted.is_empty() {
        let stats: std::collections::HashMap<UserId, LessonStats> =
            lesson_stats(conn, &wanted)?.into_iter().collect();
        for item in &mut items {
            item.stats = stats.get(&item.id).copied().unwrap_or_default();
        }
    }
    Ok(Page {
        items,
        number: page.number,
        size: page.size,
        total: i64::try_from(ids.len()).unwrap_or(i64::MAX),
    })
}

/// The slice of `ids` that `page` covers (empty past the end).
#[must_use]
pub fn page_of(ids: &[UserId], page: PageRequest) -> &[UserId] {
    let size = page.size as usize;
    let start = (page.number.max(1) as usize - 1).saturating_mul(size);
    ids.get(start..)
        .map_or(&[], |rest| &rest[..rest.len().min(size)])
}

/// Terms shorter than this many characters cannot use a trigram index.
const TRIGRAM: usize = 3;

/// Every active student whose search document (given and family name, e-mail, class;
/// folded by [`fold_search`]) contains `q` folded the same way, in list order (family
/// name, given name, id); every active student when `q` is blank. One statement,
/// served by the trigram index on both engines for terms of three characters or more
/// (shorter ones scan the small search table). `%` and `_` match themselves.
pub fn search_ids(conn: &mut DbConn, q: Option<&str>) -> DbResult<Vec<UserId>> {
    let term = q.map(fold_search).filter(|t| !t.is_empty());
    let mut query = users::table
        .filter(users::role.eq(Role::Student.as_str()))
        .filter(users::is_active.eq(true))
        .order((users::last_name, users::first_name, users::id))
        .select(users::id)
        .into_boxed::<MultiBackend>();
    if let Some(term) = term {
        if conn.engine() == Engine::Sqlite && term.chars().count() >= TRIGRAM {
            // FTS5 uses its trigram index for MATCH; a LIKE with ESCAPE it cannot.
            let phrase = format!("\"{}\"", term.replace('"', "\"\""));
            query = query.filter(
                users::id.eq_any(
                    student_search::table
                        .filter(sql::<Bool>("student_search MATCH ").bind::<Text, _>(phrase))
                        .select(student_search::user_id),
                ),
            );
        } else {
            let pattern = format!("%{}%", escape_like(&term));
            query = query.filter(
                users::id.eq_any(
                    student_search::table
                        .filter(student_search::document.like(pattern).escape('\\'))
                        .select(student_search::user_id),
                ),
            );
        }
    }
    Ok(query.load::<i64>(conn)?.into_iter().map(UserId).collect())
}

/// Id, given and family name, e-mail and class of a student.
type StudentRow = (i64, String, String, String, Option<String>);

/// Every student (active or not) with their class, as [`StudentRow`]s.
macro_rules! students_with_class {
    () => {
        users::table
            .left_join(student_profiles::table.on(student_profiles::user_id.eq(users::id)))
            .filter(users::role.eq(Role::Student.as_str()))
            .select((
                users::id,
                users::first_name,
                users::last_name,
                users::email,
                student_profiles::class_name.nullable(),
            ))
    };
}

/// The list rows of `ids`, in that order (ids that are not students are left out),
/// with every `stats` at zero for the caller to fill. One statement.
pub fn rows(conn: &mut DbConn, ids: &[UserId]) -> DbResult<Vec<StudentListItem>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<i64> = ids.iter().map(|id| id.get()).collect();
    let found: Vec<StudentRow> = students_with_class!()
        .filter(users::id.eq_any(&keys))
        .load(conn)?;
    let mut by_id: std::collections::HashMap<i64, StudentListItem> = found
        .into_iter()
        .map(|(id, first_name, last_name, email, class_name)| {
            (
                id,
                StudentListItem {
                    id: UserId(id),
                    first_name,
                    last_name,
                    email,
                    class_name,
                    stats: LessonStats::default(),
                },
            )
        })
        .collect();
    Ok(keys.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// Rows per INSERT when rebuilding the search table (3 columns: far below SQLite's
/// bind limit).
const SEARCH_CHUNK: usize = 500;

/// Writes every student's search document anew, in one transaction (a savepoint in
/// the caller's, if any), and returns how many. Run by the seed and at start when the table is stale (see
/// [`search_is_stale`]); users are written nowhere else. Three statements and one
/// INSERT per 500 students.
pub fn rebuild_search(conn: &mut DbConn) -> DbResult<usize> {
    conn.transaction(rebuild_search_now)
}

fn rebuild_search_now(conn: &mut DbConn) -> DbResult<usize> {
    let students: Vec<StudentRow> = students_with_class!().load(conn)?;
    let documents: Vec<(i64, String)> = students
        .into_iter()
        .map(|(id, first, last, email, class)| {
            let class = class.unwrap_or_default();
            (id, fold_search(&format!("{first} {last} {email} {class}")))
        })
        .collect();
    diesel::delete(student_search::table).execute(conn)?;
    for chunk in documents.chunks(SEARCH_CHUNK) {
        let values: Vec<_> = chunk
            .iter()
            .map(|(id, doc)| {
                (
                    student_search::user_id.eq(*id),
                    student_search::document.eq(doc.as_str()),
                )
            })
            .collect();
        // A multi-row INSERT is built per engine: MultiConnection has no batch insert.
        let insert = diesel::insert_into(student_search::table).values(values);
        match conn {
            DbConn::Pg(c) => insert.execute(c)?,
            DbConn::Sqlite(c) => insert.execute(c)?,
        };
    }
    if conn.engine() == Engine::Postgres {
        // Fresh statistics: the seed analysed the table while it was still empty.
        conn.batch_execute("ANALYZE student_search")?;
    }
    Ok(documents.len())
}

/// Whether the search table's row count differs from the students' (a database
/// migrated from before the table existed, or users written around the seed). Two
/// statements.
pub fn search_is_stale(conn: &mut DbConn) -> DbResult<bool> {
    let indexed: i64 = student_search::table.count().get_result(conn)?;
    let students: i64 = users::table
        .filter(users::role.eq(Role::Student.as_str()))
        .count()
        .get_result(conn)?;
    Ok(indexed != students)
}

/// Lesson stats for the given students: one aggregate statement. Students without
/// lessons are absent from the result.
pub fn lesson_stats(conn: &mut DbConn, ids: &[UserId]) -> DbResult<Vec<(UserId, LessonStats)>> {
    let keys: Vec<i64> = ids.iter().map(|id| id.get()).collect();
    Ok(stats_for(conn, &keys)?
        .into_iter()
        .map(|(id, s)| (UserId(id), s))
        .collect())
}

fn stats_for(conn: &mut DbConn, ids: &[i64]) -> DbResult<Vec<(i64, LessonStats)>> {
    let rows: Vec<(i64, i64, i64, i64, i64)> = lesson_students::table
        .inner_join(lessons::table)
        .left_join(attendance::table)
        .filter(lesson_students::student_id.eq_any(ids))
        .group_by(lesson_students::student_id)
        .select((
            lesson_students::student_id,
            count(lesson_students::id),
            sql::<BigInt>(&count_where("lessons.status = 'COMPLETED'")),
            sql::<BigInt>(&count_where("attendance.status = 'PRESENT'")),
            count(attendance::id.nullable()),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, total, completed, present, marked)| {
            (
                id,
                LessonStats {
                    total,
                    completed,
                    attendance: AttendanceRate::new(present, marked),
                },
            )
        })
        .collect())
}

/// Active students. One statement.
pub fn active_count(conn: &mut DbConn) -> DbResult<i64> {
    super::users::count_active(conn, Role::Student)
}

/// `%` and `_` typed by a user match themselves, not any text.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(super::escape_like("50%_a\\b"), "50\\%\\_a\\\\b");
    }
}
