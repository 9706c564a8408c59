//! The r2d2 pool over [`DbConn`], with connection set-up in one place.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::R2D2Connection;
use diesel::Connection;

use crate::{DatabaseUrl, DbConn, DbError, DbResult, Engine, StatementTracer};

/// A pooled connection.
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// Pool sizing and timeouts. The defaults suit one app process on 2 cores.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Most connections open at once.
    pub max_size: u32,
    /// How long a request waits for a free connection before [`DbError::Unavailable`].
    pub checkout_timeout: Duration,
    /// PostgreSQL: the longest a statement may run before the server cancels it
    /// ([`DbError::Timeout`]), so no request holds a connection for long. `None`
    /// (the default, for migrations and seeding) leaves the server's setting. SQLite
    /// statements cannot be interrupted from here; its lock waits end after
    /// `busy_timeout` (5 s).
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 16,
            checkout_timeout: Duration::from_secs(5),
            statement_timeout: None,
        }
    }
}

/// How long after a statement found the server gone returned connections are checked.
const GONE_WINDOW: Duration = Duration::from_secs(30);

/// Opens connections for r2d2: establishes, applies the SQLite PRAGMAs, installs the
/// [`StatementTracer`]. Connections are not tested on checkout: a `SELECT 1` per request
/// would cost a round trip and show up in every statement count; a broken connection is
/// noticed by its failing query and dropped by `has_broken`.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
    statement_timeout: Option<Duration>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = DbError;

    fn connect(&self) -> Result<DbConn, DbError> {
        let mut conn = self.url.establish()?;
        if let (Some(timeout), Engine::Postgres) = (self.statement_timeout, self.url.engine()) {
            // Per session, so every statement on this connection has it.
            conn.batch_execute(&format!(
                "SET statement_timeout = {}",
                timeout.as_millis().max(1)
            ))?;
        }
        conn.set_instrumentation(StatementTracer::for_engine(self.url.engine()));
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), DbError> {
        conn.batch_execute("SELECT 1").map_err(DbError::from)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        if conn.is_broken() {
            return true;
        }
        // diesel marks a connection broken when a statement fails on it, except when
        // preparing a statement fails (it returns before updating its state): after
        // a PostgreSQL restart one such dead connection went back to the pool and
        // failed every request it served ("no connection to the server", 711 in 3 s
        // in the failure drill, scripts/drills.py). So for a while after any
        // statement found the server gone, a returned connection is checked with one
        // round trip; the rest of the time this costs nothing.
        crate::error::server_gone_within(GONE_WINDOW) && self.is_valid(conn).is_err()
    }
}

/// The pool as it is now and how checkouts have gone since it opened (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolState {
    /// Most connections open at once.
    pub max_size: u32,
    /// Connections open now.
    pub connections: u32,
    /// Of which idle.
    pub idle: u32,
    /// Checkouts that got a connection.
    pub checkouts: u64,
    /// Time they waited for it, microseconds in all.
    pub wait_micros: u64,
    /// Checkouts that gave up after the checkout timeout.
    pub timeouts: u64,
}

/// Counts checkouts and their waits, as r2d2 reports them.
#[derive(Debug, Default)]
struct Waits {
    checkouts: AtomicU64,
    wait_micros: AtomicU64,
    timeouts: AtomicU64,
}

#[derive(Debug)]
struct WaitRecorder(Arc<Waits>);

impl r2d2::HandleEvent for WaitRecorder {
    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        self.0.checkouts.fetch_add(1, Relaxed);
        let micros = u64::try_from(event.duration().as_micros()).unwrap_or(u64::MAX);
        self.0.wait_micros.fetch_add(micros, Relaxed);
    }

    fn handle_timeout(&self, _: r2d2::event::TimeoutEvent) {
        self.0.timeouts.fetch_add(1, Relaxed);
    }
}

/// The database handle the app and the CLI share: a pool plus the engine it speaks.
///
/// ```
/// let db = napiatke_db::Db::open("sqlite::memory:", Default::default())?;
/// napiatke_db::migrate::run(&mut *db.get()?)?;
/// # Ok::<(), napiatke_db::DbError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    engine: Engine,
    url: DatabaseUrl,
    waits: Arc<Waits>,
}

impl Db {
    /// Parses `url`, connects once to fail fast with the driver's own message, turns on
    /// WAL for a SQLite file, then builds the pool.
    pub fn open(url: &str, options: PoolOptions) -> DbResult<Db> {
        Self::connect(&DatabaseUrl::parse(url)?, options)
    }

    /// As [`Db::open`], from a parsed URL.
    pub fn connect(url: &DatabaseUrl, options: PoolOptions) -> DbResult<Db> {
        let mut first = url.establish()?;
        if url.sqlite_path().is_some() {
            // WAL is a property of the file: set once, readers then never block the writer.
            first.batch_execute("PRAGMA journal_mode = WAL;")?;
        }
        drop(first);
        let waits = Arc::new(Waits::default());
        let builder = r2d2::Pool::builder()
            .event_handler(Box::new(WaitRecorder(Arc::clone(&waits))))
            .test_on_check_out(false)
            .connection_timeout(options.checkout_timeout);
        let manager = Manager {
            url: url.clone(),
            statement_timeout: options.statement_timeout,
        };
        let pool = if url.engine() == Engine::Sqlite && url.sqlite_path().is_none() {
            // An in-memory SQLite database lives and dies with its one connection: keep
            // exactly one, forever.
            builder
                .max_size(1)
                .min_idle(Some(1))
                .idle_timeout(None)
                .max_lifetime(None)
                .build(manager)?
        } else {
            builder
                .max_size(options.max_size.max(1))
                .min_idle(Some(0))
                .build_unchecked(manager)
        };
        Ok(Db {
            pool,
            engine: url.engine(),
            url: url.clone(),
            waits,
        })
    }

    /// The pool's connections now and its checkouts so far.
    #[must_use]
    pub fn pool_state(&self) -> PoolState {
        let now = self.pool.state();
        PoolState {
            max_size: self.pool.max_size(),
            connections: now.connections,
            idle: now.idle_connections,
            checkouts: self.waits.checkouts.load(Relaxed),
            wait_micros: self.waits.wait_micros.load(Relaxed),
            timeouts: self.waits.timeouts.load(Relaxed),
        }
    }

    /// How long [`Db::get`] waits for a free connection.
    #[must_use]
    pub fn checkout_timeout(&self) -> Duration {
        self.pool.connection_timeout()
    }

    /// A connection, waiting at most the checkout timeout.
    pub fn get(&self) -> DbResult<PooledConn> {
        self.pool.get().map_err(DbError::from)
    }

    /// Checks out a connection and runs `SELECT 1` (health checks). One statement.
    pub fn ping(&self) -> DbResult<()> {
        let mut conn = self.get()?;
        conn.batch_execute("SELECT 1").map_err(DbError::from)
    }

    /// The engine behind the pool.
    #[must_use]
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The URL, for messages (use [`DatabaseUrl::redacted`]).
    #[must_use]
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }
}
