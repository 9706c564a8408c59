//! Dashboard figures: the school's (admin) and a tutor's or student's own. Each is one
//! statement of scalar subqueries, so the dashboard costs the same on 10 rows or 10
//! million.

use chrono::{Datelike, Days, Months, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Timestamp};
use napiatke_domain::{AttendanceRate, Money, UserId, Zone};

use super::{count_where, Scope};
use crate::conn::MultiBackend;
use crate::{DbConn, DbResult, Engine};

/// The school's figures for the admin dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GlobalStats {
    /// Active students.
    pub active_students: i64,
    /// Active tutors.
    pub active_tutors: i64,
    /// Lessons starting today by status.
    pub today: TodayLessons,
    /// Sum of PAID invoices issued this calendar month.
    pub month_revenue: Money,
}

/// Today's lessons by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TodayLessons {
    /// Not started.
    pub scheduled: i64,
    /// Under way.
    pub ongoing: i64,
    /// Done.
    pub completed: i64,
}

impl TodayLessons {
    /// Scheduled, ongoing and completed together (cancelled ones are not counted).
    #[must_use]
    pub fn total(&self) -> i64 {
        self.scheduled + self.ongoing + self.completed
    }
}

/// A tutor's own figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TutorStats {
    /// SCHEDULED lessons after now.
    pub upcoming: i64,
    /// Lessons starting today, cancelled ones left out.
    pub today: i64,
    /// Lessons COMPLETED this calendar month.
    pub completed_this_month: i64,
    /// Different students in any of their lessons.
    pub students: i64,
    /// PRESENT out of marked places in their lessons.
    pub attendance: AttendanceRate,
}

/// A student's own figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StudentStats {
    /// Their SCHEDULED lessons after now.
    pub upcoming: i64,
    /// Their COMPLETED lessons.
    pub completed: i64,
    /// PRESENT out of their marked lessons.
    pub attendance: AttendanceRate,
    /// Sum of their ISSUED and OVERDUE invoices.
    pub unpaid: Money,
}

#[derive(QueryableByName)]
struct Six {
    #[diesel(sql_type = BigInt)]
    a: i64,
    #[diesel(sql_type = BigInt)]
    b: i64,
    #[diesel(sql_type = BigInt)]
    c: i64,
    #[diesel(sql_type = BigInt)]
    d: i64,
    #[diesel(sql_type = BigInt)]
    e: i64,
    #[diesel(sql_type = BigInt)]
    f: i64,
}

/// The UTC instants local midnight today and local midnight tomorrow fall on (23
/// or 25 hours apart on the days the clocks change).
fn day_bounds(now: NaiveDateTime, zone: Zone) -> (NaiveDateTime, NaiveDateTime) {
    let today = zone.today(now);
    (zone.day_start(today), zone.day_start(today + Days::new(1)))
}

/// First day of `day`'s month and of the next.
pub(crate) fn month_bounds(day: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = day.with_day(1).unwrap_or(day);
    (first, first + Months::new(1))
}

/// Rewrites `?` placeholders as `$1, $2, ...` for PostgreSQL. Only for the fixed SQL
/// in this module, which has no `?` inside literals.
pub(crate) fn placeholders(engine: Engine, sql: &str) -> String {
    if engine == Engine::Sqlite {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// The admin dashboard's figures at `now`, today and this month being the local
/// ones in `zone`. One statement.
pub fn global_stats(conn: &mut DbConn, now: NaiveDateTime, zone: Zone) -> DbResult<GlobalStats> {
    let (day0, day1) = day_bounds(now, zone);
    let (month0, month1) = month_bounds(zone.today(now));
    let sql = format!(
        "SELECT \
         (SELECT COUNT(*) FROM users WHERE role = 'STUDENT' AND is_active = TRUE) AS a, \
         (SELECT COUNT(*) FROM users WHERE role = 'TUTOR' AND is_active = TRUE) AS b, \
         (SELECT {sched} FROM lessons WHERE start_time >= ? AND start_time < ?) AS c, \
         (SELECT {ongoing} FROM lessons WHERE start_time >= ? AND start_time < ?) AS d, \
         (SELECT {done} FROM lessons WHERE start_time >= ? AND start_time < ?) AS e, \
         (SELECT CAST(COALESCE(SUM(total_amount), 0) AS BIGINT) FROM invoices \
          WHERE status = 'PAID' AND issued_date >= ? AND issued_date < ?) AS f",
        sched = count_where("status = 'SCHEDULED'"),
        ongoing = count_where("status = 'ONGOING'"),
        done = count_where("status = 'COMPLETED'"),
    );
    let row: Six = diesel::sql_query(placeholders(conn.engine(), &sql))
        .bind::<Timestamp, _>(day0)
        .bind::<Timestamp, _>(day1)
        .bind::<Timestamp, _>(day0)
        .bind::<Timestamp, _>(day1)
        .bind::<Timestamp, _>(day0)
        .bind::<Timestamp, _>(day1)
        .bind::<Date, _>(month0)
        .bind::<Date, _>(month1)
        .get_result(conn)?;
    Ok(GlobalStats {
        active_students: row.a,
        active_tutors: row.b,
        today: TodayLessons {
            scheduled: row.c,
            ongoing: row.d,
            completed: row.e,
        },
        month_revenue: Money::from_minor(row.f),
    })
}

/// A tutor's own figures at `now`, today and this month being the local ones in
/// `zone`. One statement.
pub fn tutor_stats(
    conn: &mut DbConn,
    tutor: UserId,
    now: NaiveDateTime,
    zone: Zone,
) -> DbResult<TutorStats> {
    let (day0, day1) = day_bounds(now, zone);
    let (month0, month1) = month_bounds(zone.today(now));
    let (month0, month1) = (zone.day_start(month0), zone.day_start(month1));
    let marks = "FROM attendance JOIN lesson_students ON lesson_students.id = attendance.lesson_student_id \
                 JOIN lessons ON lessons.id = lesson_students.lesson_id WHERE lessons.tutor_id = ?";
    let sql = format!(
        "SELECT \
         (SELECT COUNT(*) FROM lessons WHERE tutor_id = ? AND status = 'SCHEDULED' AND start_time > ?) AS a, \
         (SELECT COUNT(*) FROM lessons WHERE tutor_id = ? AND start_time >= ? AND start_time < ? \
          AND status <> 'CANCELLED') AS b, \
         (SELECT COUNT(*) FROM lessons WHERE tutor_id = ? AND status = 'COMPLETED' \
          AND start_time >= ? AND start_time < ?) AS c, \
         (SELECT COUNT(DISTINCT lesson_students.student_id) FROM lesson_students \
          JOIN lessons ON lessons.id = lesson_students.lesson_id WHERE lessons.tutor_id = ?) AS d, \
         (SELECT {present} {marks}) AS e, \
         (SELECT COUNT(*) {marks}) AS f",
        present = count_where("attendance.status = 'PRESENT'"),
    );
    let t = tutor.get();
    let row: Six = diesel::sql_query(placeholders(conn.engine(), &sql))
        .bind::<BigInt, _>(t)
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(t)
        .bind::<Timestamp, _>(day0)
        .bind::<Timestamp, _>(day1)
        .bind::<BigInt, _>(t)
        .bind::<Timestamp, _>(month0)
        .bind::<Timestamp, _>(month1)
        .bind::<BigInt, _>(t)
        .bind::<BigInt, _>(t)
        .bind::<BigInt, _>(t)
        .get_result(conn)?;
    Ok(TutorStats {
        upcoming: row.a,
        today: row.b,
        completed_this_month: row.c,
        students: row.d,
        attendance: AttendanceRate::new(row.e, row.f),
    })
}

/// A student's own figures at `now`. One statement.
pub fn student_stats(
    conn: &mut DbConn,
    student: UserId,
    now: NaiveDateTime,
) -> DbResult<StudentStats> {
    let theirs = "FROM lesson_students JOIN lessons ON lessons.id = lesson_students.lesson_id \
                  WHERE lesson_students.student_id = ?";
    let marks = "FROM attendance JOIN lesson_students ON lesson_students.id = attendance.lesson_student_id \
                 WHERE lesson_students.student_id = ?";
    let sql = format!(
        "SELECT \
         (SELECT COUNT(*) {theirs} AND lessons.status = 'SCHEDULED' AND lessons.start_time > ?) AS a, \
         (SELECT COUNT(*) {theirs} AND lessons.status = 'COMPLETED') AS b, \
         (SELECT {present} {marks}) AS c, \
         (SELECT COUNT(*) {marks}) AS d, \
         (SELECT CAST(COALESCE(SUM(total_amount), 0) AS BIGINT) FROM invoices \
          WHERE student_id = ? AND status IN ('ISSUED', 'OVERDUE')) AS e, \
         CAST(0 AS BIGINT) AS f",
        present = count_where("attendance.status = 'PRESENT'"),
    );
    let s = student.get();
    let row: Six = diesel::sql_query(placeholders(conn.engine(), &sql))
        .bind::<BigInt, _>(s)
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(s)
        .bind::<BigInt, _>(s)
        .bind::<BigInt, _>(s)
        .bind::<BigInt, _>(s)
        .get_result(conn)?;
    Ok(StudentStats {
        upcoming: row.a,
        completed: row.b,
        attendance: AttendanceRate::new(row.c, row.d),
        unpaid: Money::from_minor(row.e),
    })
}

/// One week of a dashboard's trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct WeekFigures {
    /// Attendance marks in the week's lessons, and how many were PRESENT.
    pub attendance: AttendanceRate,
    /// PAID invoices issued in the week (the school's trend only; zero otherwise).
    pub paid: Money,
}

#[derive(QueryableByName)]
struct WeekRow {
    #[diesel(sql_type = BigInt)]
    kind: i64,
    #[diesel(sql_type = BigInt)]
    week: i64,
    #[diesel(sql_type = BigInt)]
    a: i64,
    #[diesel(sql_type = BigInt)]
    b: i64,
}

/// `CASE WHEN col < ? THEN 0 WHEN col < ? THEN 1 ... ELSE n-1 END` for `n` weeks.
fn week_case(col: &str, weeks: usize) -> String {
    let mut case = String::from("CASE");
    for i in 0..weeks.saturating_sub(1) {
        case.push_str(&format!(" WHEN {col} < ? THEN {i}"));
    }
    case.push_str(&format!(" ELSE {} END", weeks.saturating_sub(1)));
    case
}

/// Attendance per week for `scope` and, for [`Scope::All`], PAID revenue per week.
/// The weeks are the local dates they begin on (`days`, one more than there are
/// weeks: the last ends the last week): lessons are bucketed by the UTC instants
/// those days begin at in `zone`, invoices (dated, not timed) by the dates. One
/// statement whatever the number of weeks or rows.
pub fn weekly(
    conn: &mut DbConn,
    days: &[NaiveDate],
    zone: Zone,
    scope: Scope,
) -> DbResult<Vec<WeekFigures>> {
    let weeks = days.len().saturating_sub(1);
    if weeks == 0 {
        return Ok(Vec::new());
    }
    let starts: Vec<NaiveDateTime> = days.iter().map(|&d| zone.day_start(d)).collect();
    let narrow = match scope {
        Scope::All => "",
        Scope::Tutor(_) => " AND lessons.tutor_id = ?",
        Scope::Student(_) => " AND lesson_students.student_id = ?",
    };
    let mut sql = format!(
        "SELECT CAST(0 AS BIGINT) AS kind, CAST(week AS BIGINT) AS week, COUNT(*) AS a, {present} AS b \
         FROM (SELECT {case} AS week, attendance.status AS status FROM attendance \
         JOIN lesson_students ON lesson_students.id = attendance.lesson_student_id \
         JOIN lessons ON lessons.id = lesson_students.lesson_id \
         WHERE lessons.start_time >= ? AND lessons.start_time < ?{narrow}) marks GROUP BY week",
        present = count_where("status = 'PRESENT'"),
        case = week_case("lessons.start_time", weeks),
    );
    if scope == Scope::All {
        sql.push_str(&format!(
            " UNION ALL SELECT CAST(1 AS BIGINT), CAST(week AS BIGINT), \
             CAST(COALESCE(SUM(total_amount), 0) AS BIGINT), CAST(0 AS BIGINT) \
             FROM (SELECT {case} AS week, total_amount FROM invoices \
             WHERE status = 'PAID' AND issued_date >= ? AND issued_date < ?) paid GROUP BY week",
            case = week_case("issued_date", weeks),
        ));
    }
    let mut query =
        diesel::sql_query(placeholders(conn.engine(), &sql)).into_boxed::<MultiBackend>();
    for start in &starts[1..weeks] {
        query = query.bind::<Timestamp, _>(*start);
    }
    query = query
        .bind::<Timestamp, _>(starts[0])
        .bind::<Timestamp, _>(starts[weeks]);
    match scope {
        Scope::All => {
            for day in &days[1..weeks] {
                query = query.bind::<Date, _>(*day);
            }
            query = query.bind::<Date, _>(days[0]).bind::<Date, _>(days[weeks]);
        }
        Scope::Tutor(id) | Scope::Student(id) => query = query.bind::<BigInt, _>(id.get()),
    }
    let rows: Vec<WeekRow> = query.load(conn)?;
    let mut out = vec![WeekFigures::default(); weeks];
    for row in rows {
        let Some(week) = usize::try_from(row.week).ok().and_then(|w| out.get_mut(w)) else {
            continue;
        };
        if row.kind == 0 {
            week.attendance = AttendanceRate::new(row.b, row.a);
        } else {
            week.paid = Money::from_minor(row.a);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        assert_eq!(
            placeholders(Engine::Postgres, "a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
        assert_eq!(placeholders(Engine::Sqlite, "a = ?"), "a = ?");
    }

    #[test]
    fn month_bounds_cross_the_year() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap_or_default();
        assert_eq!(
            month_bounds(d),
            (
                NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default(),
                NaiveDate::from_ymd_opt(2027, 1, 1).unwrap_or_default()
            )
        );
    }
}
