//! The demo data set: deterministic across engines, refused on a non-empty database,
//! all or nothing.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use napiatke_db::both_engines;

use common::{conn, fresh, now};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use napiatke_db::seed::{self, Scale, SeedOptions};
use napiatke_db::{DbConn, DbError, Engine};

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Every row of every table as text, in id order, with timestamps and booleans spelled
/// the same on both engines.
fn dump(c: &mut DbConn) -> Vec<String> {
    let queries = [
        "SELECT CAST(id AS TEXT) || '|' || email || '|' || first_name || '|' || last_name || '|' || role || '|' || CASE WHEN is_active THEN 't' ELSE 'f' END || '|' || password_hash || '|' || SUBSTR(CAST(created_at AS TEXT), 1, 19) AS line FROM users ORDER BY id",
        "SELECT CAST(user_id AS TEXT) || '|' || bio || '|' || CAST(hourly_rate AS TEXT) AS line FROM tutor_profiles ORDER BY user_id",
        "SELECT CAST(user_id AS TEXT) || '|' || class_name || '|' || parent_email AS line FROM student_profiles ORDER BY user_id",
        "SELECT CAST(id AS TEXT) || '|' || name || '|' || color || '|' || level AS line FROM subjects ORDER BY id",
        "SELECT CAST(id AS TEXT) || '|' || name || '|' || CAST(capacity AS TEXT) AS line FROM rooms ORDER BY id",
        "SELECT CAST(id AS TEXT) || '|' || title || '|' || SUBSTR(CAST(start_time AS TEXT), 1, 19) || '|' || SUBSTR(CAST(end_time AS TEXT), 1, 19) || '|' || status || '|' || CAST(tutor_id AS TEXT) || '|' || CAST(subject_id AS TEXT) || '|' || COALESCE(CAST(room_id AS TEXT), '-') AS line FROM lessons ORDER BY id",
        "SELECT CAST(id AS TEXT) || '|' || CAST(lesson_id AS TEXT) || '|' || CAST(student_id AS TEXT) AS line FROM lesson_students ORDER BY id",
        "SELECT CAST(id AS TEXT) || '|' || CAST(lesson_student_id AS TEXT) || '|' || status || '|' || SUBSTR(CAST(marked_at AS TEXT), 1, 19) AS line FROM attendance ORDER BY id",
        "SELECT CAST(id AS TEXT) || '|' || CAST(student_id AS TEXT) || '|' || CAST(issued_date AS TEXT) || '|' || status || '|' || CAST(total_amount AS TEXT) AS line FROM invoices ORDER BY id",
    ];
    queries
        .iter()
        .flat_map(|q| {
            diesel::sql_query(*q)
                .load::<Line>(c)
                .unwrap_or_else(|e| panic!("{q}: {e}"))
                .into_iter()
                .map(|l| l.line)
        })
        .collect()
}

fn count(c: &mut DbConn, table: &str) -> i64 {
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .get_result::<Count>(c)
        .map(|r| r.n)
        .unwrap()
}

fn seeded(engine: Engine, seed_value: u64) -> Vec<String> {
    let t = fresh(engine);
    let mut c = conn(&t);
    let report = seed::run(
        &mut c,
        &SeedOptions::new(Scale::Tiny, seed_value, now()),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("seed on {engine}: {e}"));
    assert_eq!(report.count("users"), 1 + 3 + 24);
    assert_eq!(report.count("lessons"), 3 * 20 * 4);
    assert_eq!(count(&mut c, "lessons"), 240);
    dump(&mut c)
}

#[test]
fn the_same_seed_gives_the_same_rows_on_both_engines() {
    let lite = seeded(Engine::Sqlite, 42);
    let pg = seeded(Engine::Postgres, 42);
    assert_eq!(lite.len(), pg.len());
    for (a, b) in lite.iter().zip(&pg) {
        assert_eq!(a, b);
    }
    let other = seeded(Engine::Sqlite, 43);
    assert_ne!(lite, other, "another seed gives other rows");
}

fn refuses_non_empty_and_force_replaces(engine: Engine) {
    let t = fresh(engine);
    let mut c = conn(&t);
    let opts = SeedOptions::new(Scale::Tiny, 42, now());
    let mut progress = Vec::new();
    seed::run(&mut c, &opts, |p| progress.push((p.table, p.done, p.total))).unwrap();
    let last = progress.last().copied().unwrap_or(("", 0, 1));
    assert_eq!(last.0, "invoices");
    assert_eq!(last.1, last.2, "progress ends at the total");
    assert!(progress.windows(2).all(|w| w[0].1 <= w[1].1));
    let before = dump(&mut c);

    let again = seed::run(&mut c, &opts, |_| {});
    assert!(
        matches!(again, Err(DbError::NotEmpty { users: 28 })),
        "{again:?}"
    );
    assert_eq!(
        again.err().map(|e| e.to_string()).as_deref(),
        Some("the database already holds 28 users")
    );
    assert_eq!(dump(&mut c), before, "a refused seed changes nothing");

    let forced = SeedOptions {
        force: true,
        ..SeedOptions::new(Scale::Tiny, 7, now())
    };
    seed::run(&mut c, &forced, |_| {}).unwrap();
    let after = dump(&mut c);
    assert_ne!(after, before);
    assert_eq!(count(&mut c, "users"), 28);

    // New rows after seeding get fresh ids (PostgreSQL's identities were moved on).
    c.batch_execute("INSERT INTO rooms (name, capacity) VALUES ('Added later', 5)")
        .unwrap_or_else(|e| panic!("insert after seed: {e}"));
    assert_eq!(count(&mut c, "rooms"), 16);
}

fn a_failing_seed_leaves_nothing_behind(engine: Engine) {
    let t = fresh(engine);
    let mut c = conn(&t);
    // A room with the id the seed will use: the rooms insert fails after users,
    // profiles and subjects were written.
    c.batch_execute("INSERT INTO rooms (id, name, capacity) VALUES (1, 'In the way', 3)")
        .unwrap();
    let r = seed::run(&mut c, &SeedOptions::new(Scale::Tiny, 42, now()), |_| {});
    assert!(r.is_err(), "the seed must fail on the duplicate room id");
    for table in [
        "users",
        "tutor_profiles",
        "student_profiles",
        "subjects",
        "lessons",
    ] {
        assert_eq!(count(&mut c, table), 0, "{table} was half-written");
    }
    assert_eq!(count(&mut c, "rooms"), 1);
    // The constraints and indexes seeding set aside for speed are back.
    let orphan = c.batch_execute(
        "INSERT INTO lesson_students (id, lesson_id, student_id) VALUES (1, 999, 999)",
    );
    assert!(orphan.is_err(), "foreign keys must still be enforced");
    let seeded_ok = seed::run(
        &mut c,
        &SeedOptions {
            force: true,
            ..SeedOptions::new(Scale::Tiny, 42, now())
        },
        |_| {},
    );
    assert!(seeded_ok.is_ok(), "{seeded_ok:?}");
    let orphan = c.batch_execute(
        "INSERT INTO lesson_students (id, lesson_id, student_id) VALUES (999999, 999999, 2)",
    );
    assert!(
        orphan.is_err(),
        "foreign keys are restored after a successful seed too"
    );
}

fn demo_logins_verify(engine: Engine) {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let t = fresh(engine);
    let mut c = conn(&t);
    seed::run(&mut c, &SeedOptions::new(Scale::Tiny, 42, now()), |_| {}).unwrap();
    for (email, password) in [
        ("admin@napiatke.local", "admin"),
        ("tutor3@napiatke.local", "tutor"),
        ("student24@napiatke.local", "student"),
    ] {
        let email = napiatke_domain::Email::parse(email).unwrap();
        let (user, hash) = napiatke_db::queries::users::credentials(&mut c, &email)
            .unwrap()
            .unwrap_or_else(|| panic!("{email} missing"));
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok());
        assert!(argon2::Argon2::default()
            .verify_password(b"wrong", &parsed)
            .is_err());
        assert!(user.is_active);
    }
}

both_engines! {
    refuses_a_non_empty_database_unless_forced => refuses_non_empty_and_force_replaces;
    is_all_or_nothing => a_failing_seed_leaves_nothing_behind;
    demo_passwords_verify => demo_logins_verify;
}
