//! Marking attendance.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use napiatke_domain::{AttendanceStatus, LessonId, LessonStudentId, UserId};

use crate::schema::{attendance, lesson_students};
use crate::{DbConn, DbResult};

/// The `lesson_students` row of a student in a lesson, if they are in it. One statement.
pub fn place(
    conn: &mut DbConn,
    lesson: LessonId,
    student: UserId,
) -> DbResult<Option<LessonStudentId>> {
    Ok(lesson_students::table
        .filter(lesson_students::lesson_id.eq(lesson.get()))
        .filter(lesson_students::student_id.eq(student.get()))
        .select(lesson_students::id)
        .first::<i64>(conn)
        .optional()?
        .map(LessonStudentId))
}

/// Sets the mark of one place, replacing any earlier mark: an UPDATE, and an INSERT
/// when there was none, in one transaction (portable across both engines, unlike
/// ON CONFLICT clauses). Two or three statements plus BEGIN/COMMIT.
pub fn mark(
    conn: &mut DbConn,
    place: LessonStudentId,
    status: AttendanceStatus,
    now: NaiveDateTime,
) -> DbResult<()> {
    conn.transaction(|conn| {
        let updated =
            diesel::update(attendance::table.filter(attendance::lesson_student_id.eq(place.get())))
                .set((
                    attendance::status.eq(status.as_str()),
                    attendance::marked_at.eq(now),
                ))
                .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(attendance::table)
                .values((
                    attendance::lesson_student_id.eq(place.get()),
                    attendance::status.eq(status.as_str()),
                    attendance::marked_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}
