//! Setting a database up, for the command line: migrations, the deterministic demo
//! data set, and the school's figures. Synchronous: they run before (or instead of)
//! the server and its runtime.
//!
//! ```
//! use napiatke_services::setup::{self, Scale, SeedOptions};
//! let db = napiatke_db::Db::open("sqlite::memory:", Default::default())?;
//! assert!(!setup::migrate(&db)?.is_empty());
//! assert!(setup::is_empty(&db)?);
//! let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap().and_hms_opt(12, 0, 0).unwrap();
//! let report = setup::seed(&db, &SeedOptions::new(Scale::Tiny, 42, now), |_| {})?;
//! assert!(report.rows.iter().any(|(table, n)| *table == "users" && *n > 0));
//! assert!(setup::school_figures(&db, now, Default::default())?.active_students > 0);
//! # Ok::<(), napiatke_services::ServiceError>(())
//! ```

use chrono::NaiveDateTime;
use napiatke_db::queries::students;
use napiatke_db::Db;

pub use napiatke_db::queries::dashboard::GlobalStats;
pub use napiatke_db::seed::{Progress, Scale, SeedOptions, SeedReport};

use crate::ServiceResult;

/// Applies pending migrations; the names of those applied (none: up to date). Then
/// fills the student search table if it does not hold every student (a database
/// migrated from before it existed): two counts when it does.
pub fn migrate(db: &Db) -> ServiceResult<Vec<String>> {
    let mut conn = db.get()?;
    let applied = napiatke_db::migrate::run(&mut conn)?;
    if students::search_is_stale(&mut conn)? {
        let n = students::rebuild_search(&mut conn)?;
        tracing::info!(students = n, "student search rebuilt");
    }
    Ok(applied)
}

/// Whether the database holds no users (a fresh one, to seed).
pub fn is_empty(db: &Db) -> ServiceResult<bool> {
    Ok(napiatke_db::queries::users::count_all(&mut *db.get()?)? == 0)
}

/// How many active accounts of the demo set (whose passwords are published) the
/// database holds. One statement.
pub fn demo_accounts(db: &Db) -> ServiceResult<i64> {
    Ok(napiatke_db::queries::users::count_demo(&mut *db.get()?)?)
}

/// Writes the demo data set (SPEC.md) in one transaction, calling `progress` as
/// tables are written. Refuses a database holding users unless `options.force`
/// ([`crate::ServiceError::NotEmpty`]).
pub fn seed(
    db: &Db,
    options: &SeedOptions,
    progress: impl FnMut(Progress),
) -> ServiceResult<SeedReport> {
    Ok(napiatke_db::seed::run(&mut *db.get()?, options, progress)?)
}

/// The admin dashboard's school-wide figures at `now`, days and months counted in
/// `zone` (uncached).
pub fn school_figures(
    db: &Db,
    now: NaiveDateTime,
    zone: napiatke_domain::Zone,
) -> ServiceResult<GlobalStats> {
    Ok(napiatke_db::queries::dashboard::global_stats(
        &mut *db.get()?,
        now,
        zone,
    )?)
}
