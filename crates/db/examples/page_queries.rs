//! Runs the queries behind each page against an existing database and logs every
//! statement with its duration: a way to see what a page costs without the web app.
//!
//! ```sh
//! RUST_LOG=napiatke_db::statement=debug \
//!   cargo run --release -p napiatke-db --features testing --example page_queries -- sqlite://data/napiatke.sqlite3
//! ```

use std::time::Instant;

use napiatke_db::queries::lessons::{self, LessonFilter};
use napiatke_db::queries::{dashboard, students, PageRequest, Scope};
use napiatke_db::{Db, DbError, PoolOptions};

fn main() -> Result<(), DbError> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite://data/napiatke.sqlite3".to_owned());
    let db = Db::open(&url, PoolOptions::default())?;
    let mut conn = db.get()?;
    let now = chrono::Utc::now().naive_utc();
    for round in 0..3 {
        let t = Instant::now();
        let page = lessons::list(&mut conn, &LessonFilter::default(), PageRequest::new(1, 50))?;
        println!(
            "round {round}: lessons page 1: {} rows in {:?}",
            page.items.len(),
            t.elapsed()
        );
        let t = Instant::now();
        let page = students::list(&mut conn, None, PageRequest::new(1, 50))?;
        println!(
            "round {round}: students page 1: {} rows in {:?}",
            page.items.len(),
            t.elapsed()
        );
        let t = Instant::now();
        let stats = dashboard::global_stats(&mut conn, now, Default::default())?;
        println!(
            "round {round}: dashboard: {} students in {:?}",
            stats.active_students,
            t.elapsed()
        );
        let t = Instant::now();
        let next = lessons::upcoming(&mut conn, now, Scope::All, 10)?;
        println!(
            "round {round}: upcoming: {} in {:?}",
            next.len(),
            t.elapsed()
        );
    }
    Ok(())
}
