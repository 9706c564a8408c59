//! Test helpers: a fresh, migrated database per test on either engine, and statement
//! counting. Enabled by the `testing` feature; used by this crate's tests and by the
//! app's.
//!
//! PostgreSQL tests clone a template database that is migrated once per migration set
//! (`CREATE DATABASE ... TEMPLATE`), so each test gets its own database in tens of
//! milliseconds and tests run in parallel. The server is `NAPIATKE_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;
use tracing_subscriber::layer::SubscriberExt;

use crate::{migrate, Db, DbError, DbResult, Engine, PoolOptions, STATEMENT_TARGET};

const FINGERPRINT: &str = env!("NAPIATKE_MIGRATIONS_FINGERPRINT");
/// Arbitrary key of the advisory lock that serialises template building.
const LOCK_KEY: i64 = 0x6e61_7069_6174;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The PostgreSQL server tests use.
#[must_use]
pub fn pg_admin_url() -> String {
    std::env::var("NAPIATKE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A migrated, empty database of its own, removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    /// The pool over it.
    pub db: Db,
    /// The URL, for code under test that opens its own connections.
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    File(PathBuf),
    Pg { admin: String, name: String },
}

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "napiatke_t_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestDb {
    /// A database on `engine`.
    pub fn new(engine: Engine) -> DbResult<TestDb> {
        match engine {
            Engine::Sqlite => Self::sqlite(),
            Engine::Postgres => Self::postgres(),
        }
    }

    /// A SQLite file in the temporary directory.
    pub fn sqlite() -> DbResult<TestDb> {
        let path = std::env::temp_dir().join(format!("{}.sqlite3", unique_name()));
        let url = format!("sqlite://{}", path.display());
        let db = Db::open(&url, PoolOptions::default())?;
        migrate::run(&mut *db.get()?)?;
        Ok(TestDb {
            db,
            url,
            cleanup: Cleanup::File(path),
        })
    }

    /// A database cloned from the migrated template on the test server.
    pub fn postgres() -> DbResult<TestDb> {
        let admin_url = pg_admin_url();
        let mut admin = PgConnection::establish(&admin_url)
            .map_err(|e| DbError::Unavailable(format!("test PostgreSQL at {admin_url}: {e}")))?;
        let template = format!("napiatke_tmpl_{FINGERPRINT}");
        let name = unique_name();
        admin.batch_execute(&format!("SELECT pg_advisory_lock({LOCK_KEY})"))?;
        let made = ensure_template(&mut admin, &admin_url, &template).and_then(|()| {
            admin
                .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .map_err(DbError::from)
        });
        admin.batch_execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))?;
        made?;
        let url = with_database(&admin_url, &name);
        let db = Db::open(&url, PoolOptions::default())?;
        Ok(TestDb {
            db,
            url,
            cleanup: Cleanup::Pg {
                admin: admin_url,
                name,
            },
        })
    }
}

fn ensure_template(admin: &mut PgConnection, admin_url: &str, template: &str) -> DbResult<()> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let found: Found = diesel::sql_query(format!(
        "SELECT COUNT(*) AS n FROM pg_database WHERE datname = '{template}'"
    ))
    .get_result(admin)?;
    if found.n > 0 {
        return Ok(());
    }
    // Built under another name and renamed, so a crash never leaves a half-migrated
    // template behind.
    let building = format!("{template}_building");
    // Separate calls: several statements in one string run as one transaction, which
    // CREATE and DROP DATABASE refuse.
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))?;
    admin.batch_execute(&format!("CREATE DATABASE {building}"))?;
    {
        let mut conn =
            crate::DatabaseUrl::parse(&with_database(admin_url, &building))?.establish()?;
        migrate::run(&mut conn)?;
    }
    admin.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))?;
    Ok(())
}

/// `admin_url` with its database path replaced by `name`.
fn with_database(admin_url: &str, name: &str) -> String {
    match url::Url::parse(admin_url) {
        Ok(mut u) => {
            u.set_path(&format!("/{name}"));
            u.to_string()
        }
        Err(_) => format!("postgres://postgres@127.0.0.1:5432/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::Pg { admin, name } => {
                if let Ok(mut c) = PgConnection::establish(admin) {
                    let _ =
                        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
        }
    }
}

/// Runs `f` and returns what it returned with the SQL of every statement it executed
/// on this thread (through [`crate::StatementTracer`]), in order.
///
/// ```
/// use napiatke_db::testing::count_statements;
/// let db = napiatke_db::Db::open("sqlite::memory:", Default::default())?;
/// let mut conn = db.get()?;
/// let (_, sql) = count_statements(|| napiatke_db::migrate::applied(&mut conn));
/// assert!(!sql.is_empty());
/// # Ok::<(), napiatke_db::DbError>(())
/// ```
pub fn count_statements<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Collector(Arc::clone(&seen)));
    let out = tracing::subscriber::with_default(subscriber, f);
    let sql = seen.lock().map(|v| v.clone()).unwrap_or_default();
    (out, sql)
}

struct Collector(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collector {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != STATEMENT_TARGET {
            return;
        }
        let mut visitor = SqlField(None);
        event.record(&mut visitor);
        if let Ok(mut seen) = self.0.lock() {
            seen.push(visitor.0.unwrap_or_default());
        }
    }
}

struct SqlField(Option<String>);

impl tracing::field::Visit for SqlField {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "sql" {
            self.0 = Some(format!("{value:?}"));
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "sql" {
            self.0 = Some(value.to_owned());
        }
    }
}
