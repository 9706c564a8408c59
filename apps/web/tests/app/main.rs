//! The app over HTTP (actix's in-process test server) and its command line, on SQLite
//! and PostgreSQL against a real Redis, in one test binary (one link instead of
//! one per file): a module per route or area. The pages' tests use the hand-built
//! fixture (napiatke_db::testing::FIXTURE_SQL, now = Thursday 2026-11-26 12:00 UTC)
//! and, for statement budgets, the standard demo set.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod attendance;
mod cache_stats;
mod charts;
mod cli;
mod health;
mod http;
mod images;
mod lists;
mod login;
mod media_bucket;
mod pages;
mod roles;
mod static_files;
mod telemetry;
mod time_zone;
mod toolbar;
