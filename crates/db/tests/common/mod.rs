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

/// A fresh database on `engine` holding the fixture.
pub fn fixture(engine: Engine) -> TestDb {
    let t = fresh(engine);
    t.load_fixture().unwrap_or_else(|e| panic!("fixture: {e}"));
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
