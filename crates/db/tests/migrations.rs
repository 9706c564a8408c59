//! Migrations: identical folders for both engines, reversible, and the live schema
//! matches schema.rs.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use napiatke_db::both_engines;

use std::collections::BTreeSet;

use common::{conn, fresh};
use diesel::prelude::*;
use diesel::sql_types::Text;
use napiatke_db::{migrate, Engine};

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

fn folders(engine: &str) -> BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(engine);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn both_engines_have_the_same_migration_folders() {
    let lite = folders("sqlite");
    assert!(!lite.is_empty());
    assert_eq!(lite, folders("postgres"));
}

/// Column names of `table` as the live database has them, in order.
fn live_columns(c: &mut napiatke_db::DbConn, engine: Engine, table: &str) -> Vec<String> {
    let sql = match engine {
        Engine::Sqlite => format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
        Engine::Postgres => format!(
            "SELECT CAST(column_name AS TEXT) AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
        ),
    };
    diesel::sql_query(sql)
        .load::<Name>(c)
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect()
}

/// Column names of `table` as schema.rs declares them, read from the SQL diesel builds
/// for `SELECT all_columns`.
fn declared_columns<T>(table: T) -> Vec<String>
where
    T: Table + diesel::query_dsl::methods::SelectDsl<<T as Table>::AllColumns>,
    <T as diesel::query_dsl::methods::SelectDsl<<T as Table>::AllColumns>>::Output:
        diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite>,
{
    let query = table.select(T::all_columns());
    let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&query).to_string();
    let list = sql
        .strip_prefix("SELECT ")
        .and_then(|s| s.split(" FROM ").next())
        .unwrap_or_default();
    list.split(", ")
        .map(|c| {
            c.rsplit('.')
                .next()
                .unwrap_or_default()
                .trim_matches('`')
                .to_owned()
        })
        .collect()
}

fn schema_matches(engine: Engine) {
    use napiatke_db::schema::*;
    let t = fresh(engine);
    let mut c = conn(&t);
    let declared = [
        ("users", declared_columns(users::table)),
        ("tutor_profiles", declared_columns(tutor_profiles::table)),
        (
            "student_profiles",
            declared_columns(student_profiles::table),
        ),
        ("student_search", declared_columns(student_search::table)),
        ("subjects", declared_columns(subjects::table)),
        ("rooms", declared_columns(rooms::table)),
        ("lessons", declared_columns(lessons::table)),
        ("lesson_students", declared_columns(lesson_students::table)),
        ("attendance", declared_columns(attendance::table)),
        ("invoices", declared_columns(invoices::table)),
        ("sessions", declared_columns(sessions::table)),
        ("images", declared_columns(images::table)),
        ("room_photos", declared_columns(room_photos::table)),
        ("user_avatars", declared_columns(user_avatars::table)),
        ("periodic_work", declared_columns(periodic_work::table)),
    ];
    assert_eq!(declared.len(), TABLES.len());
    for (table, columns) in declared {
        assert!(columns.len() >= 2, "{table}: {columns:?}");
        assert_eq!(
            live_columns(&mut c, engine, table),
            columns,
            "{table} on {engine}"
        );
    }
}

fn every_spec_index_exists(engine: Engine) {
    let t = fresh(engine);
    let mut c = conn(&t);
    let sql = match engine {
        Engine::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
        Engine::Postgres => "SELECT CAST(indexname AS TEXT) AS name FROM pg_indexes WHERE schemaname = current_schema()",
    };
    let names: BTreeSet<String> = diesel::sql_query(sql)
        .load::<Name>(&mut c)
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    for index in [
        "lessons_start_end_idx",
        "lessons_status_start_idx",
        "lessons_tutor_start_idx",
        "lessons_room_start_end_idx",
        "lessons_upcoming_idx",
        "lesson_students_student_lesson_idx",
    ] {
        assert!(
            names.contains(index),
            "{index} missing on {engine}: {names:?}"
        );
    }
    // The upcoming index is partial on both engines.
    let partial = match engine {
        Engine::Sqlite => {
            "SELECT sql AS name FROM sqlite_master WHERE name = 'lessons_upcoming_idx'"
        }
        Engine::Postgres => {
            "SELECT indexdef AS name FROM pg_indexes WHERE indexname = 'lessons_upcoming_idx'"
        }
    };
    let def = diesel::sql_query(partial)
        .get_result::<Name>(&mut c)
        .map(|n| n.name)
        .unwrap_or_default();
    assert!(def.contains("WHERE") && def.contains("SCHEDULED"), "{def}");
}

fn down_reverts_up(engine: Engine) {
    let t = fresh(engine);
    let mut c = conn(&t);
    let applied = migrate::applied(&mut c).unwrap();
    assert!(!applied.is_empty());
    let reverted = migrate::revert_all(&mut c).unwrap();
    assert_eq!(reverted.len(), applied.len());
    assert!(
        live_columns(&mut c, engine, "lessons").is_empty(),
        "lessons survived down.sql"
    );
    let again = migrate::run(&mut c).unwrap();
    assert_eq!(again, applied);
    assert!(migrate::run(&mut c).unwrap().is_empty());
}

fn failed_migration_reports_and_keeps_data(engine: Engine) {
    // A table in the way of the first migration: it must fail with a clear message and
    // leave what was there untouched.
    // A fresh database with its migrations rolled back: empty, and dropped at the end.
    let t = fresh(engine);
    migrate::revert_all(&mut conn(&t)).unwrap();
    let url = t.url.clone();
    let mut c = napiatke_db::DatabaseUrl::parse(&url)
        .and_then(|u| u.establish())
        .unwrap();
    diesel::connection::SimpleConnection::batch_execute(
        &mut c,
        "CREATE TABLE rooms (id INTEGER PRIMARY KEY, note TEXT); INSERT INTO rooms VALUES (1, 'keep me');",
    ).unwrap();
    let err = migrate::run(&mut c)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with("migration failed:") && err.contains("rooms"),
        "{err}"
    );
    assert!(
        live_columns(&mut c, engine, "users").is_empty(),
        "the failed migration left users behind"
    );
    assert_eq!(live_columns(&mut c, engine, "rooms"), ["id", "note"]);
}

both_engines! {
    live_schema_matches_schema_rs => schema_matches;
    every_spec_index_exists_partial_included => every_spec_index_exists;
    down_sql_reverts_up_sql => down_reverts_up;
    a_failed_migration_is_reported_and_rolled_back => failed_migration_reports_and_keeps_data;
}
