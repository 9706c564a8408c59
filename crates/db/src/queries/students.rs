//! Students: the active ones, the list with search, and their lesson statistics.

use diesel::dsl::{count, sql};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use napiatke_domain::{AttendanceRate, Role, UserId};

use super::{count_where, Page, PageRequest};
use crate::conn::MultiBackend;
use crate::schema::{attendance, lesson_students, lessons, student_profiles, users};
use crate::{DbConn, DbResult};

diesel::define_sql_function! {
    /// SQL `lower(text)`: both engines have it.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

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

/// Active students matching `q` (case-insensitive substring of first name, last name,
/// "first last", e-mail or class; blank matches all), by family name, one page, with
/// lesson stats. Three statements: count, page, stats.
pub fn list(
    conn: &mut DbConn,
    q: Option<&str>,
    page: PageRequest,
) -> DbResult<Page<StudentListItem>> {
    let mut found = list_without_stats(conn, q, page)?;
    let ids: Vec<UserId> = found.items.iter().map(|s| s.id).collect();
    if !ids.is_empty() {
        let stats: std::collections::HashMap<UserId, LessonStats> =
            lesson_stats(conn, &ids)?.into_iter().collect();
        for item in &mut found.items {
            item.stats = stats.get(&item.id).copied().unwrap_or_default();
        }
    }
    Ok(found)
}

/// As [`list`], with every `stats` left at zero, for callers that have the figures
/// elsewhere (cached per student). Two statements: count, page.
pub fn list_without_stats(
    conn: &mut DbConn,
    q: Option<&str>,
    page: PageRequest,
) -> DbResult<Page<StudentListItem>> {
    let pattern = q
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("%{}%", escape_like(&s.to_lowercase())));

    macro_rules! matching {
        ($query:expr) => {{
            let mut q = $query
                .filter(users::role.eq(Role::Student.as_str()))
                .filter(users::is_active.eq(true));
            if let Some(p) = &pattern {
                q = q.filter(
                    lower(users::first_name)
                        .like(p.clone())
                        .escape('\\')
                        .or(lower(users::last_name).like(p.clone()).escape('\\'))
                        .or(
                            lower(users::first_name.concat(" ").concat(users::last_name))
                                .like(p.clone())
                                .escape('\\'),
                        )
                        .or(users::email.like(p.clone()).escape('\\'))
                        .or(lower(student_profiles::class_name)
                            .like(p.clone())
                            .escape('\\')),
                );
            }
            q
        }};
    }

    let from = || {
        users::table.left_join(student_profiles::table.on(student_profiles::user_id.eq(users::id)))
    };
    // Without a search the count needs no profiles: joining them for nothing cost 15x
    // on the large demo set (12,000 lookups into student_profiles per count).
    let total: i64 = match &pattern {
        None => active_count(conn)?,
        Some(_) => matching!(from().into_boxed::<MultiBackend>())
            .count()
            .get_result(conn)?,
    };
    let rows: Vec<(i64, String, String, String, Option<String>)> =
        matching!(from().into_boxed::<MultiBackend>())
            .order((users::last_name, users::first_name, users::id))
            .limit(page.limit())
            .offset(page.offset())
            .select((
                users::id,
                users::first_name,
                users::last_name,
                users::email,
                student_profiles::class_name.nullable(),
            ))
            .load(conn)?;
    Ok(Page {
        items: rows
            .into_iter()
            .map(
                |(id, first_name, last_name, email, class_name)| StudentListItem {
                    id: UserId(id),
                    first_name,
                    last_name,
                    email,
                    class_name,
                    stats: LessonStats::default(),
                },
            )
            .collect(),
        number: page.number,
        size: page.size,
        total,
    })
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
