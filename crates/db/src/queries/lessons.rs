//! Lessons: lists with their tutor, subject, room and students; upcoming; the calendar
//! week; student and present counts.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::dsl::{count, sql};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use napiatke_domain::{
    AttendanceStatus, Color, Lesson, LessonId, LessonStatus, LessonStudentId, RoomId, SubjectId,
    UserId,
};

use super::{count_where, Page, PageRequest, PersonName, Scope};
use crate::conn::MultiBackend;
use crate::eager::{prefetch_many, prefetch_one};
use crate::schema::{
    attendance, lesson_students, lessons, rooms, student_profiles, subjects, users,
};
use crate::{DbConn, DbError, DbResult};

/// A lesson row as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = lessons)]
pub(crate) struct LessonRow {
    id: i64,
    title: String,
    start_time: NaiveDateTime,
    end_time: NaiveDateTime,
    status: String,
    tutor_id: i64,
    subject_id: i64,
    room_id: Option<i64>,
}

impl TryFrom<LessonRow> for Lesson {
    type Error = DbError;

    fn try_from(r: LessonRow) -> DbResult<Lesson> {
        Ok(Lesson {
            id: LessonId(r.id),
            title: r.title,
            start_time: r.start_time,
            end_time: r.end_time,
            status: r.status.parse()?,
            tutor_id: UserId(r.tutor_id),
            subject_id: SubjectId(r.subject_id),
            room_id: r.room_id.map(RoomId),
        })
    }
}

/// A subject as lists show it: a coloured badge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubjectBadge {
    /// The subject.
    pub id: SubjectId,
    /// "Mathematics".
    pub name: String,
    /// Its colour.
    pub color: Color,
}

/// A room as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomRef {
    /// The room.
    pub id: RoomId,
    /// "Room 101".
    pub name: String,
}

/// A lesson with its tutor, subject and room (Django's `select_related`): one join.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LessonCard {
    /// The lesson itself.
    pub lesson: Lesson,
    /// Who teaches it.
    pub tutor: PersonName,
    /// What is taught.
    pub subject: SubjectBadge,
    /// Where, if anywhere.
    pub room: Option<RoomRef>,
}

/// A student's place in a lesson, with the attendance mark if any.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnrolledStudent {
    /// The `lesson_students` row.
    pub lesson_student_id: LessonStudentId,
    /// The student.
    pub student: PersonName,
    /// School class, if the student has a profile.
    pub class_name: Option<String>,
    /// The mark, once one is made.
    pub attendance: Option<AttendanceStatus>,
}

/// A lesson with everything the lesson list and lesson page show.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LessonDetail {
    /// Lesson, tutor, subject, room.
    pub card: LessonCard,
    /// Its students by family name (Django's `prefetch_related`): one batched statement.
    pub students: Vec<EnrolledStudent>,
}

impl LessonDetail {
    /// Students in the lesson.
    #[must_use]
    pub fn student_count(&self) -> usize {
        self.students.len()
    }

    /// Students marked PRESENT.
    #[must_use]
    pub fn present_count(&self) -> usize {
        self.students
            .iter()
            .filter(|s| s.attendance == Some(AttendanceStatus::Present))
            .count()
    }
}

/// Filters of the lesson list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LessonFilter {
    /// Only lessons with this status.
    pub status: Option<LessonStatus>,
    /// Only lessons of this subject.
    pub subject: Option<SubjectId>,
    /// Whose lessons.
    pub scope: Scope,
}

/// Student and present counts of one lesson (Django's `with_student_counts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LessonCounts {
    /// Students in the lesson.
    pub students: i64,
    /// Of which marked PRESENT.
    pub present: i64,
}

/// What the calendar draws for a lesson, and nothing more (Django's `.only(...)`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CalendarEntry {
    /// The lesson.
    pub id: LessonId,
    /// Title.
    pub title: String,
    /// Start (UTC).
    pub start_time: NaiveDateTime,
    /// End (UTC).
    pub end_time: NaiveDateTime,
    /// Status.
    pub status: LessonStatus,
    /// Tutor's given name.
    pub tutor_first_name: String,
    /// Tutor's family name.
    pub tutor_last_name: String,
    /// Subject name.
    pub subject_name: String,
    /// Subject colour.
    pub subject_color: Color,
    /// Room name, if any.
    pub room_name: Option<String>,
}

type CardTuple = (
    LessonRow,
    (i64, String, String),
    (i64, String, String),
    Option<(i64, String)>,
);

fn card_from(
    (row, (tid, tfirst, tlast), (sid, sname, scolor), room): CardTuple,
) -> DbResult<LessonCard> {
    Ok(LessonCard {
        lesson: row.try_into()?,
        tutor: PersonName {
            id: UserId(tid),
            first_name: tfirst,
            last_name: tlast,
        },
        subject: SubjectBadge {
            id: SubjectId(sid),
            name: sname,
            color: Color::parse(&scolor)?,
        },
        room: room.map(|(id, name)| RoomRef {
            id: RoomId(id),
            name,
        }),
    })
}

/// The joined FROM of every card query: lessons, tutor, subject, optional room.
macro_rules! cards {
    () => {
        lessons::table
            .inner_join(users::table)
            .inner_join(subjects::table)
            .left_join(rooms::table)
            .select((
                LessonRow::as_select(),
                (users::id, users::first_name, users::last_name),
                (subjects::id, subjects::name, subjects::color),
                (rooms::id, rooms::name).nullable(),
            ))
    };
}

/// Narrows a boxed query over `lessons` (joined or not) to a filter.
macro_rules! filtered {
    ($query:expr, $filter:expr) => {{
        let filter: &LessonFilter = $filter;
        let mut q = $query;
        if let Some(status) = filter.status {
            q = q.filter(lessons::status.eq(status.as_str()));
        }
        if let Some(subject) = filter.subject {
            q = q.filter(lessons::subject_id.eq(subject.get()));
        }
        match filter.scope {
            Scope::All => {}
            Scope::Tutor(id) => q = q.filter(lessons::tutor_id.eq(id.get())),
            Scope::Student(id) => {
                q = q.filter(
                    lessons::id.eq_any(
                        lesson_students::table
                            .filter(lesson_students::student_id.eq(id.get()))
                            .select(lesson_students::lesson_id),
                    ),
                )
            }
        }
        q
    }};
}

/// The lesson list: one page of lessons, newest first, with tutor, subject, room and
/// students. Three statements: count, page, students.
pub fn list(
    conn: &mut DbConn,
    filter: &LessonFilter,
    page: PageRequest,
) -> DbResult<Page<LessonDetail>> {
    let total: i64 = filtered!(lessons::table.into_boxed::<MultiBackend>(), filter)
        .count()
        .get_result(conn)?;
    let rows: Vec<CardTuple> = filtered!(cards!().into_boxed::<MultiBackend>(), filter)
        .order((lessons::start_time.desc(), lessons::id.desc()))
        .limit(page.limit())
        .offset(page.offset())
        .load(conn)?;
    let cards = rows
        .into_iter()
        .map(card_from)
        .collect::<DbResult<Vec<_>>>()?;
    Ok(Page {
        items: with_students(conn, cards)?,
        number: page.number,
        size: page.size,
        total,
    })
}

/// Where a page of the lesson list starts: its first lesson's start and id. The list
/// runs newest first, so a page holds this lesson and those after it in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageStart {
    /// The first lesson's start.
    pub start_time: NaiveDateTime,
    /// The first lesson's id.
    pub id: LessonId,
}

/// The start of every page of `size` lessons under `filter`, in page order (so the
/// list's total is at most `starts.len() * size`, and the count is returned with
/// them). One statement reading the filter's (start_time, id) pairs once from the
/// index: cached, it turns every page, however deep, into a seek ([`page_ids`]).
pub fn page_starts(
    conn: &mut DbConn,
    filter: &LessonFilter,
    size: u32,
) -> DbResult<(Vec<PageStart>, i64)> {
    let keys: Vec<(NaiveDateTime, i64)> =
        filtered!(lessons::table.into_boxed::<MultiBackend>(), filter)
            .order((lessons::start_time.desc(), lessons::id.desc()))
            .select((lessons::start_time, lessons::id))
            .load(conn)?;
    let total = i64::try_from(keys.len()).unwrap_or(i64::MAX);
    let starts = keys
        .into_iter()
        .step_by(size.max(1) as usize)
        .map(|(start_time, id)| PageStart {
            start_time,
            id: LessonId(id),
        })
        .collect();
    Ok((starts, total))
}

/// The ids of at most `limit` lessons under `filter` from `from` on, in list order
/// (newest first). One statement that seeks in the (start_time, id) index: page 200
/// costs what page 1 does.
pub fn page_ids(
    conn: &mut DbConn,
    filter: &LessonFilter,
    from: PageStart,
    limit: u32,
) -> DbResult<Vec<LessonId>> {
    // Written so that both engines bound the index scan by start_time (a row-value
    // or a bare OR would make PostgreSQL walk from the newest lesson).
    let ids: Vec<i64> = filtered!(lessons::table.into_boxed::<MultiBackend>(), filter)
        .filter(lessons::start_time.le(from.start_time))
        .filter(
            lessons::start_time
                .lt(from.start_time)
                .or(lessons::id.le(from.id.get())),
        )
        .order((lessons::start_time.desc(), lessons::id.desc()))
        .limit(i64::from(limit))
        .select(lessons::id)
        .load(conn)?;
    Ok(ids.into_iter().map(LessonId).collect())
}

/// Up to `limit` lessons under `filter` strictly after `after` (from the newest when
/// `None`) in list order, as cards: one statement seeking in the (start_time, id)
/// index, so an export walks the whole list in chunks at the same cost per chunk.
pub fn cards_after(
    conn: &mut DbConn,
    filter: &LessonFilter,
    after: Option<PageStart>,
    limit: u32,
) -> DbResult<Vec<LessonCard>> {
    let mut query = filtered!(cards!().into_boxed::<MultiBackend>(), filter);
    if let Some(after) = after {
        query = query
            .filter(lessons::start_time.le(after.start_time))
            .filter(
                lessons::start_time
                    .lt(after.start_time)
                    .or(lessons::id.lt(after.id.get())),
            );
    }
    let rows: Vec<CardTuple> = query
        .order((lessons::start_time.desc(), lessons::id.desc()))
        .limit(i64::from(limit))
        .load(conn)?;
    rows.into_iter().map(card_from).collect()
}

/// The given lessons with everything the list and the lesson page show, in the order
/// asked (ids that name no lesson are left out). Two statements: cards, students.
pub fn details(conn: &mut DbConn, ids: &[LessonId]) -> DbResult<Vec<LessonDetail>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<i64> = ids.iter().map(|id| id.get()).collect();
    let rows: Vec<CardTuple> = cards!().filter(lessons::id.eq_any(&keys)).load(conn)?;
    let mut by_id: HashMap<i64, LessonCard> = rows
        .into_iter()
        .map(|row| card_from(row).map(|c| (c.lesson.id.get(), c)))
        .collect::<DbResult<_>>()?;
    let cards = keys.iter().filter_map(|id| by_id.remove(id)).collect();
    with_students(conn, cards)
}

/// One lesson with everything, or [`DbError::NotFound`]. Two statements.
pub fn get(conn: &mut DbConn, id: LessonId, scope: Scope) -> DbResult<LessonDetail> {
    let filter = LessonFilter {
        scope,
        ..LessonFilter::default()
    };
    let row: CardTuple = filtered!(cards!().into_boxed::<MultiBackend>(), &filter)
        .filter(lessons::id.eq(id.get()))
        .first(conn)?;
    with_students(conn, vec![card_from(row)?])?
        .pop()
        .ok_or(DbError::NotFound)
}

/// Attaches each card's students with their attendance: one batched statement.
pub fn with_students(conn: &mut DbConn, cards: Vec<LessonCard>) -> DbResult<Vec<LessonDetail>> {
    type Row = (
        i64,
        i64,
        (i64, String, String),
        Option<String>,
        Option<String>,
    );
    let joined = prefetch_many(
        cards,
        |c| c.lesson.id.get(),
        |ids| {
            let rows: Vec<Row> = lesson_students::table
                .inner_join(users::table)
                .left_join(
                    student_profiles::table
                        .on(student_profiles::user_id.eq(lesson_students::student_id)),
                )
                .left_join(attendance::table)
                .filter(lesson_students::lesson_id.eq_any(ids))
                .order((
                    lesson_students::lesson_id,
                    users::last_name,
                    users::first_name,
                    users::id,
                ))
                .select((
                    lesson_students::lesson_id,
                    lesson_students::id,
                    (users::id, users::first_name, users::last_name),
                    student_profiles::class_name.nullable(),
                    attendance::status.nullable(),
                ))
                .load(conn)?;
            rows.into_iter()
                .map(|(lesson_id, ls_id, (uid, first, last), class_name, mark)| {
                    Ok((
                        lesson_id,
                        EnrolledStudent {
                            lesson_student_id: LessonStudentId(ls_id),
                            student: PersonName {
                                id: UserId(uid),
                                first_name: first,
                                last_name: last,
                            },
                            class_name,
                            attendance: mark.map(|m| m.parse()).transpose()?,
                        },
                    ))
                })
                .collect()
        },
    )?;
    Ok(joined
        .into_iter()
        .map(|(card, students)| LessonDetail { card, students })
        .collect())
}

/// The next `limit` SCHEDULED lessons starting after `now`, soonest first, with tutor,
/// subject and room. One statement (served by the partial index on SCHEDULED).
pub fn upcoming(
    conn: &mut DbConn,
    now: NaiveDateTime,
    scope: Scope,
    limit: i64,
) -> DbResult<Vec<LessonCard>> {
    let filter = LessonFilter {
        status: Some(LessonStatus::Scheduled),
        scope,
        ..LessonFilter::default()
    };
    let rows: Vec<CardTuple> = filtered!(cards!().into_boxed::<MultiBackend>(), &filter)
        .filter(lessons::start_time.gt(now))
        .order((lessons::start_time, lessons::id))
        .limit(limit)
        .load(conn)?;
    rows.into_iter().map(card_from).collect()
}

/// Lessons that start at or after `start` and end at or before `end`, in time order,
/// loading only the columns the calendar draws. One statement.
pub fn for_calendar(
    conn: &mut DbConn,
    start: NaiveDateTime,
    end: NaiveDateTime,
    scope: Scope,
) -> DbResult<Vec<CalendarEntry>> {
    type Row = (
        i64,
        String,
        NaiveDateTime,
        NaiveDateTime,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
    );
    let filter = LessonFilter {
        scope,
        ..LessonFilter::default()
    };
    let query = lessons::table
        .inner_join(users::table)
        .inner_join(subjects::table)
        .left_join(rooms::table)
        .select((
            lessons::id,
            lessons::title,
            lessons::start_time,
            lessons::end_time,
            lessons::status,
            users::first_name,
            users::last_name,
            subjects::name,
            subjects::color,
            rooms::name.nullable(),
        ))
        .into_boxed::<MultiBackend>();
    let rows: Vec<Row> = filtered!(query, &filter)
        .filter(lessons::start_time.ge(start))
        .filter(lessons::end_time.le(end))
        .order((lessons::start_time, lessons::id))
        .load(conn)?;
    rows.into_iter()
        .map(|r| {
            Ok(CalendarEntry {
                id: LessonId(r.0),
                title: r.1,
                start_time: r.2,
                end_time: r.3,
                status: r.4.parse()?,
                tutor_first_name: r.5,
                tutor_last_name: r.6,
                subject_name: r.7,
                subject_color: Color::parse(&r.8)?,
                room_name: r.9,
            })
        })
        .collect()
}

/// Student and present counts for the given lessons, one aggregate statement. Every
/// id asked for is in the map; lessons without students count zero.
pub fn student_counts(
    conn: &mut DbConn,
    ids: &[LessonId],
) -> DbResult<HashMap<LessonId, LessonCounts>> {
    let pairs = prefetch_one(
        ids.to_vec(),
        |id| id.get(),
        |keys| {
            let rows: Vec<(i64, i64, i64)> = lesson_students::table
                .left_join(attendance::table)
                .filter(lesson_students::lesson_id.eq_any(keys))
                .group_by(lesson_students::lesson_id)
                .select((
                    lesson_students::lesson_id,
                    count(lesson_students::id),
                    sql::<BigInt>(&count_where("attendance.status = 'PRESENT'")),
                ))
                .load(conn)?;
            Ok(rows
                .into_iter()
                .map(|(id, students, present)| (id, LessonCounts { students, present }))
                .collect())
        },
    )?;
    Ok(pairs.into_iter().collect())
}
