//! napiatke's persistence layer: one diesel code base for SQLite (the embedded
//! default) and PostgreSQL (production), chosen at run time by the database URL.
//!
//! - [`DbConn`] is a `#[derive(MultiConnection)]` enum over both connections; queries
//!   are written once against it with the column types both engines share
//!   ([`schema`]). The few engine-specific statements match on the variant.
//! - [`Db`] is the r2d2 pool; every pooled connection carries a [`StatementTracer`],
//!   which reports each executed statement as a `tracing` event on
//!   [`STATEMENT_TARGET`], so callers can count statements per request.
//! - [`migrate`] applies the embedded migrations of either engine.
//! - [`queries`] holds the query modules; [`eager`] the select/prefetch helpers they
//!   share, so no list runs a statement per row.
//! - [`seed`] writes SPEC.md's deterministic demo data set.
//!
//! ```
//! use napiatke_db::{queries, seed, Db};
//! let db = Db::open("sqlite::memory:", Default::default())?;
//! let mut conn = db.get()?;
//! napiatke_db::migrate::run(&mut conn)?;
//! let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap().and_hms_opt(12, 0, 0).unwrap();
//! seed::run(&mut conn, &seed::SeedOptions::new(seed::Scale::Tiny, 42, now), |_| {})?;
//! let stats = queries::dashboard::global_stats(&mut conn, now, Default::default())?;
//! assert_eq!(stats.active_tutors, 3);
//! # Ok::<(), napiatke_db::DbError>(())
//! ```

mod conn;
pub mod eager;
mod error;
mod explain;
mod instrument;
pub mod migrate;
mod pool;
pub mod queries;
pub mod schema;
pub mod seed;
#[cfg(feature = "testing")]
pub mod testing;

pub use conn::{DatabaseUrl, DbConn, Engine, MultiBackend};
pub use error::{DbError, DbResult};
pub use explain::is_explainable;
pub use instrument::{
    set_slow_statement_threshold, StatementTracer, SLOW_STATEMENT_TARGET, STATEMENT_TARGET,
};
pub use pool::{Db, Manager, PoolOptions, PoolState, PooledConn};
