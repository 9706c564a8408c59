//! The hand-built fixture and helpers shared by the db tests. Expectations in the
//! tests are computed by hand from the rows below (see the comments).

#![allow(dead_code)]

use chrono::{NaiveDate, NaiveDateTime};
use diesel::connection::SimpleConnection;
use napiatke_db::testing::TestDb;
use napiatke_db::{DbConn, Engine};

/// Thursday 2026-11-26 12:00 UTC.
pub fn now() -> NaiveDateTime {
    ts(2026, 11, 26, 12, 0)
}

pub fn ts(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(h, min, 0))
        .unwrap_or_default()
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

/// Users: 1 admin; tutors 2 Tina Tutor, 3 Tom Teacher, 8 Ivy Idle (inactive);
/// students 4 Sara Adams (7A), 5 Bob Brown (8B), 6 Cleo Clark (inactive, 7A),
/// 7 Dan Dunn (7A).
///
/// Lessons (now = Thu 2026-11-26 12:00):
/// - 1 Math, Tina, Room A, Fri 11-20 10:00-11:00 COMPLETED: Sara PRESENT, Bob ABSENT
/// - 2 Physics, Tina, no room, Thu 11-26 09:00-10:00 COMPLETED: Sara LATE
/// - 3 Math, Tom, Room A, Thu 11-26 11:30-12:30 ONGOING: Bob, Dan
/// - 4 Math, Tina, Room A, Fri 11-27 10:00-11:00 SCHEDULED: Sara, Bob, Dan
/// - 5 Physics, Tom, no room, Thu 11-26 16:00-17:00 SCHEDULED: Dan
/// - 6 Math, Tina, Room A, Thu 11-19 10:00-11:00 CANCELLED: Sara
/// - 7 Math, Tina, Room A, Thu 12-03 10:00-11:00 SCHEDULED: nobody
///
/// Invoices: Sara 11-01 PAID 100.00, Bob 11-05 PAID 50.50, Sara 10-01 PAID 70.00,
/// Bob 11-10 ISSUED 30.00, Dan 11-15 OVERDUE 20.00, Cleo 11-02 DRAFT 10.00.
pub const FIXTURE: &str = "
INSERT INTO users (id, email, first_name, last_name, role, is_active, password_hash, created_at) VALUES
 (1, 'admin@napiatke.local', 'Ada', 'Admin', 'ADMIN', TRUE, 'x', '2026-01-01 00:00:00'),
 (2, 'tina@napiatke.local', 'Tina', 'Tutor', 'TUTOR', TRUE, 'x', '2026-01-01 00:00:00'),
 (3, 'tom@napiatke.local', 'Tom', 'Teacher', 'TUTOR', TRUE, 'x', '2026-01-01 00:00:00'),
 (4, 'sara@napiatke.local', 'Sara', 'Adams', 'STUDENT', TRUE, 'x', '2026-01-01 00:00:00'),
 (5, 'bob@napiatke.local', 'Bob', 'Brown', 'STUDENT', TRUE, 'x', '2026-01-01 00:00:00'),
 (6, 'cleo@napiatke.local', 'Cleo', 'Clark', 'STUDENT', FALSE, 'x', '2026-01-01 00:00:00'),
 (7, 'dan@napiatke.local', 'Dan', 'Dunn', 'STUDENT', TRUE, 'x', '2026-01-01 00:00:00'),
 (8, 'ivy@napiatke.local', 'Ivy', 'Idle', 'TUTOR', FALSE, 'x', '2026-01-01 00:00:00');
INSERT INTO tutor_profiles (user_id, bio, hourly_rate) VALUES (2, 'Maths', 12000), (3, 'Physics', 9000), (8, '', 5000);
INSERT INTO student_profiles (user_id, class_name, parent_email) VALUES
 (4, '7A', 'p4@example.com'), (5, '8B', 'p5@example.com'), (6, '7A', 'p6@example.com'), (7, '7A', 'p7@example.com');
INSERT INTO subjects (id, name, color, level) VALUES (1, 'Math', '#112233', 'secondary'), (2, 'Physics', '#AABBCC', 'matura');
INSERT INTO rooms (id, name, capacity) VALUES (1, 'Room A', 10);
INSERT INTO lessons (id, title, start_time, end_time, status, tutor_id, subject_id, room_id) VALUES
 (1, 'Math 1', '2026-11-20 10:00:00', '2026-11-20 11:00:00', 'COMPLETED', 2, 1, 1),
 (2, 'Physics 2', '2026-11-26 09:00:00', '2026-11-26 10:00:00', 'COMPLETED', 2, 2, NULL),
 (3, 'Math 3', '2026-11-26 11:30:00', '2026-11-26 12:30:00', 'ONGOING', 3, 1, 1),
 (4, 'Math 4', '2026-11-27 10:00:00', '2026-11-27 11:00:00', 'SCHEDULED', 2, 1, 1),
 (5, 'Physics 5', '2026-11-26 16:00:00', '2026-11-26 17:00:00', 'SCHEDULED', 3, 2, NULL),
 (6, 'Math 6', '2026-11-19 10:00:00', '2026-11-19 11:00:00', 'CANCELLED', 2, 1, 1),
 (7, 'Math 7', '2026-12-03 10:00:00', '2026-12-03 11:00:00', 'SCHEDULED', 2, 1, 1);
INSERT INTO lesson_students (id, lesson_id, student_id) VALUES
 (1, 1, 4), (2, 1, 5), (3, 2, 4), (4, 3, 5), (5, 3, 7), (6, 4, 4), (7, 4, 5), (8, 4, 7), (9, 5, 7), (10, 6, 4);
INSERT INTO attendance (id, lesson_student_id, status, marked_at) VALUES
 (1, 1, 'PRESENT', '2026-11-20 11:00:00'), (2, 2, 'ABSENT', '2026-11-20 11:00:00'), (3, 3, 'LATE', '2026-11-26 10:00:00');
INSERT INTO invoices (id, student_id, issued_date, status, total_amount) VALUES
 (1, 4, '2026-11-01', 'PAID', 10000), (2, 5, '2026-11-05', 'PAID', 5050), (3, 4, '2026-10-01', 'PAID', 7000),
 (4, 5, '2026-11-10', 'ISSUED', 3000), (5, 7, '2026-11-15', 'OVERDUE', 2000), (6, 6, '2026-11-02', 'DRAFT', 1000);
";

/// A fresh database on `engine` holding the fixture.
pub fn fixture(engine: Engine) -> TestDb {
    let t = fresh(engine);
    let mut conn = t.db.get().unwrap_or_else(|e| panic!("connection: {e}"));
    conn.batch_execute(FIXTURE)
        .unwrap_or_else(|e| panic!("fixture: {e}"));
    drop(conn);
    t
}

/// A fresh, migrated, empty database on `engine`.
pub fn fresh(engine: Engine) -> TestDb {
    TestDb::new(engine).unwrap_or_else(|e| panic!("test database on {engine}: {e}"))
}

pub fn conn(t: &TestDb) -> napiatke_db::PooledConn {
    t.db.get().unwrap_or_else(|e| panic!("connection: {e}"))
}

/// Adds `n` extra tutors-free lessons (ids from 1000) each with students 4 and 5, and
/// `n` extra active students (ids from 10000) each in lesson 1: enough parents to show
/// that a list's statement count does not grow with its length.
pub fn add_bulk(conn: &mut DbConn, n: usize) {
    let mut sql = String::from(
        "INSERT INTO lessons (id, title, start_time, end_time, status, tutor_id, subject_id, room_id) VALUES ",
    );
    let rows: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "({}, 'Bulk {i}', '2027-01-01 10:00:00', '2027-01-01 11:00:00', 'SCHEDULED', 2, 1, 1)",
                1000 + i
            )
        })
        .collect();
    sql.push_str(&rows.join(", "));
    sql.push_str(";\nINSERT INTO lesson_students (id, lesson_id, student_id) VALUES ");
    let rows: Vec<String> = (0..n)
        .flat_map(|i| {
            [
                format!("({}, {}, 4)", 1000 + 2 * i, 1000 + i),
                format!("({}, {}, 5)", 1001 + 2 * i, 1000 + i),
            ]
        })
        .collect();
    sql.push_str(&rows.join(", "));
    sql.push_str(";\nINSERT INTO users (id, email, first_name, last_name, role, is_active, password_hash, created_at) VALUES ");
    let rows: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "({}, 'bulk{i}@napiatke.local', 'Bulk', 'Student{i:05}', 'STUDENT', TRUE, 'x', '2026-01-01 00:00:00')",
                10_000 + i
            )
        })
        .collect();
    sql.push_str(&rows.join(", "));
    sql.push_str(";\nINSERT INTO lesson_students (id, lesson_id, student_id) VALUES ");
    let rows: Vec<String> = (0..n)
        .map(|i| format!("({}, 1, {})", 100_000 + i, 10_000 + i))
        .collect();
    sql.push_str(&rows.join(", "));
    sql.push(';');
    conn.batch_execute(&sql)
        .unwrap_or_else(|e| panic!("bulk rows: {e}"));
}

/// Generates the same test body for SQLite and PostgreSQL.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident => $body:expr;)+) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(#[test] fn $name() { ($body)(napiatke_db::Engine::Sqlite) })+
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(#[test] fn $name() { ($body)(napiatke_db::Engine::Postgres) })+
        }
    };
}
