//! The `napiatke` binary's subcommands as a person runs them: output, exit codes,
//! one-line errors, on SQLite and PostgreSQL.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use napiatke_db::testing::TestDb;
use napiatke_db::Engine;

fn napiatke(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_napiatke"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("running napiatke: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn database(engine: Engine) -> TestDb {
    TestDb::new(engine).unwrap_or_else(|e| panic!("{e}"))
}

const NOW: &str = "2026-11-26T12:00";

fn seed_stats_and_refusal(engine: Engine) {
    let t = database(engine);
    let out = napiatke(&t.url, &["seed", "--scale", "tiny", "--now", NOW]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!("seeded {engine} in ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("users 28,") && stdout.contains("lessons 240,"),
        "{stdout}"
    );

    let again = napiatke(&t.url, &["seed", "--scale", "tiny", "--now", NOW]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        text(&again.stderr),
        "error: the database already holds 28 users; rerun with --force to replace all data\n"
    );

    let forced = napiatke(
        &t.url,
        &[
            "seed", "--scale", "tiny", "--seed", "7", "--force", "--now", NOW,
        ],
    );
    assert!(forced.status.success(), "{}", text(&forced.stderr));

    let stats = napiatke(&t.url, &["stats"]);
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    let stdout = text(&stats.stdout);
    assert!(stdout.contains("active students        24\n"), "{stdout}");
    assert!(stdout.contains("active tutors          3\n"), "{stdout}");

    let migrate = napiatke(&t.url, &["migrate"]);
    assert!(
        text(&migrate.stdout).starts_with("database is up to date"),
        "{}",
        text(&migrate.stdout)
    );
}

#[test]
fn seed_stats_and_refusal_on_sqlite() {
    seed_stats_and_refusal(Engine::Sqlite);
}

#[test]
fn seed_stats_and_refusal_on_postgres() {
    seed_stats_and_refusal(Engine::Postgres);
}

#[test]
fn migrate_reports_what_it_applied() {
    let dir = std::env::temp_dir().join(format!("napiatke_cli_{}", std::process::id()));
    let url = format!("sqlite://{}/fresh/db.sqlite3", dir.display());
    let out = napiatke(&url, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("applied ") && stdout.contains("20261126000001, 20261126000002"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_database_url_is_one_line_naming_the_variable() {
    let out = napiatke("mysql://db.example/school", &["stats"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: configuration: DATABASE_URL: "),
        "{err}"
    );
    assert!(err.contains("unsupported scheme \"mysql\""), "{err}");
}

#[test]
fn an_unreachable_database_fails_fast_with_the_cause() {
    let started = Instant::now();
    let out = napiatke("postgres://postgres:secret@127.0.0.1:1/none", &["migrate"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: database unavailable: "), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(!err.contains("secret"), "password leaked: {err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn bad_settings_stop_start_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_napiatke"))
        .arg("config")
        .env("CACHE_TTL_USER", "soon")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: configuration: CACHE_TTL_USER: \"soon\" is invalid: expected a whole number of seconds from 1 to 2592000 (30 days)\n"
    );
}
