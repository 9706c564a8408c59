//! Migrations for both engines, embedded in the binary. Folder names are identical in
//! migrations/sqlite and migrations/postgres (a test checks it), so one version list
//! describes both.

use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::{DbConn, DbError, DbResult};

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Applies every pending migration, each in its own transaction, and returns the
/// versions applied (empty when up to date). A failing migration stops the run with
/// nothing of it applied.
///
/// ```
/// let mut conn = napiatke_db::DatabaseUrl::parse("sqlite::memory:")?.establish()?;
/// assert!(!napiatke_db::migrate::run(&mut conn)?.is_empty());
/// assert!(napiatke_db::migrate::run(&mut conn)?.is_empty());
/// # Ok::<(), napiatke_db::DbError>(())
/// ```
pub fn run(conn: &mut DbConn) -> DbResult<Vec<String>> {
    let applied = match conn {
        DbConn::Pg(c) => c.run_pending_migrations(POSTGRES),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE),
    }
    .map_err(|e| DbError::Migration(e.to_string()))?;
    Ok(applied.into_iter().map(|v| v.to_string()).collect())
}

/// Reverts every applied migration (tests prove each `down.sql` undoes its `up.sql`).
pub fn revert_all(conn: &mut DbConn) -> DbResult<Vec<String>> {
    let reverted = match conn {
        DbConn::Pg(c) => c.revert_all_migrations(POSTGRES),
        DbConn::Sqlite(c) => c.revert_all_migrations(SQLITE),
    }
    .map_err(|e| DbError::Migration(e.to_string()))?;
    Ok(reverted.into_iter().map(|v| v.to_string()).collect())
}

/// Versions that are applied, oldest first.
pub fn applied(conn: &mut DbConn) -> DbResult<Vec<String>> {
    let mut versions = match conn {
        DbConn::Pg(c) => c.applied_migrations(),
        DbConn::Sqlite(c) => c.applied_migrations(),
    }
    .map_err(|e| DbError::Migration(e.to_string()))?
    .into_iter()
    .map(|v| v.to_string())
    .collect::<Vec<_>>();
    versions.sort();
    Ok(versions)
}
