//! The use cases behind napiatke's pages, async for their callers: cached reads are
//! answered without leaving the async runtime, and database work (and argon2) runs in
//! a bounded [`work::WorkPool`] inside the caller's span, so the statements it runs
//! are counted for the request.
//!
//! Authorisation lives here, next to the data it guards: a student only ever gets
//! their own lessons and figures, `/students/` is for admins and tutors, attendance is
//! marked by an admin or the lesson's tutor. So does caching: [`cached`] names every
//! cached value and the one function that says which write invalidates which keys.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use napiatke_services::{FixedClock, Services};
//! let db = napiatke_db::Db::open("sqlite::memory:", Default::default())?;
//! napiatke_db::migrate::run(&mut *db.get()?)?;
//! let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap().and_hms_opt(12, 0, 0).unwrap();
//! let services = Services::new(db, FixedClock(now)); // L1-only cache
//! assert!(services.authenticate("nobody@napiatke.local", "x").await?.is_none());
//! # Ok::<(), napiatke_services::ServiceError>(())
//! # }).unwrap();
//! ```

mod accounts;
mod auth;
pub mod cached;
mod export;
mod lists;
mod memo;
mod pages;
pub mod setup;
pub mod throttle;
mod uploads;
pub mod work;

use std::sync::Arc;

use chrono::NaiveDateTime;
use napiatke_cache::Cache;
use napiatke_db::{Db, DbError};

pub use cached::{CacheReport, CacheTtls, NamespaceLine};
/// Statements slower than this are logged as warnings (SLOW_STATEMENT_THRESHOLD).
pub use napiatke_db::set_slow_statement_threshold;

/// The target of the span work runs in when it leaves the request's task (a
/// blocking slot, a task of its own): the telemetry gives that span the request
/// it was made for, so the statements run inside it count for that request.
pub const WORK_TARGET: &str = "napiatke::work";

/// A span for work leaving the current task, a child of the current span.
pub(crate) fn work_span() -> tracing::Span {
    tracing::info_span!(target: WORK_TARGET, "work")
}

pub use accounts::MIN_PASSWORD_CHARS;
pub use auth::{random_token, DbSessionStore, NewSession, Session, SessionStore, SESSION_TTL};
pub use export::{EXPORT_CHUNK, EXPORT_HEADER};
pub use lists::{LessonQuery, LessonRows, LessonsPage, StudentQuery, StudentsPage};
pub use pages::{
    may_mark_attendance, AttendanceChange, CalendarDay, CalendarWeek, Dashboard, DashboardPage,
    LessonPage, LessonView, MAX_SEARCH_CHARS, PAGE_SIZE,
};
pub use uploads::{GcReport, ImageConfig, ReprocessReport, RoomCard, UploadSlot, UploadTarget};

/// What a use case can fail with; apps/web maps each to an HTTP status once. Failures
/// of the parts below keep their cause ([`std::error::Error::source`]), so the log
/// gets the whole chain.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The thing asked for does not exist, or is not the caller's to see.
    #[error("{0}")]
    NotFound(String),
    /// The caller's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The input cannot be acted on; the message says why in words a person can use.
    #[error("{0}")]
    BadInput(String),
    /// The image cannot be taken: it is not one we read, or over a limit (the message
    /// says which, for the uploader).
    #[error(transparent)]
    BadImage(napiatke_images::ImageError),
    /// Too busy right now: try again after `retry_after` (HTTP 503 with Retry-After).
    #[error("{message}")]
    Busy {
        /// What is busy, in words.
        message: String,
        /// When to try again.
        retry_after: std::time::Duration,
    },
    /// No live session behind the token.
    #[error("no such session")]
    NoSession,
    /// Seeding refused: the database already holds `users` users.
    #[error("the database already holds {users} users")]
    NotEmpty {
        /// Users found.
        users: i64,
    },
    /// The database is unreachable or overloaded.
    #[error("the database is unavailable")]
    Unavailable(#[source] DbError),
    /// The database failed otherwise.
    #[error("database")]
    Database(#[source] DbError),
    /// An upload was refused because the app was built without image processing.
    #[error("image uploads are not configured")]
    UploadsOff,
    /// Resizing or encoding an image failed (not the uploader's doing).
    #[error("image processing")]
    Image(#[source] napiatke_images::ImageError),
    /// Writing to media storage failed.
    #[error("storing {path}")]
    Storage {
        /// The storage name.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The blocking pool could not run the work (shutting down), or the work panicked.
    #[error("blocking task")]
    Task(#[source] tokio::task::JoinError),
    /// The operating system gave no randomness for a token.
    #[error("no randomness")]
    Random(#[source] getrandom::Error),
    /// Too many failed logins for this account or address: wait `retry_after`
    /// (HTTP 429 with Retry-After).
    #[error("too many failed logins; try again in {} s", .retry_after.as_secs().max(1))]
    Throttled {
        /// How long until the next try is taken.
        retry_after: std::time::Duration,
    },
    /// Over a per-user limit (uploads in progress, stored bytes): the message says
    /// which; try again after `retry_after` (HTTP 429 with Retry-After).
    #[error("{message}")]
    OverLimit {
        /// Which limit, in words the user can act on.
        message: String,
        /// When trying again may succeed.
        retry_after: std::time::Duration,
    },
    /// Media storage cannot be reached now (a bucket that does not answer): nothing
    /// was saved; try again later (HTTP 503 with Retry-After).
    #[error("media storage unavailable")]
    StorageUnavailable(#[source] std::io::Error),
    /// Media storage has no room left (the disk, or the free space it keeps):
    /// nothing was written (HTTP 507).
    #[error("media storage is full")]
    StorageFull(#[source] std::io::Error),
    /// The same failure, shared by every caller that waited on one cache load.
    #[error(transparent)]
    Shared(Arc<ServiceError>),
}

impl ServiceError {
    /// The failure itself, seen through [`ServiceError::Shared`].
    #[must_use]
    pub fn kind(&self) -> &ServiceError {
        match self {
            ServiceError::Shared(inner) => inner.kind(),
            other => other,
        }
    }

    /// Whether retrying soon may work (the database or the blocking pool is down or
    /// overloaded), as opposed to a bug.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self.kind() {
            ServiceError::Unavailable(_)
            | ServiceError::UploadsOff
            | ServiceError::StorageUnavailable(_) => true,
            ServiceError::Task(e) => !e.is_panic(),
            _ => false,
        }
    }
}

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ServiceError::NotFound("not found".to_owned()),
            DbError::NotEmpty { users } => ServiceError::NotEmpty { users },
            // A statement cut off by the timeout: the database is too busy (or the
            // statement too slow) right now; 503 with Retry-After, as unavailable.
            e @ (DbError::Unavailable(_) | DbError::Timeout(_)) => ServiceError::Unavailable(e),
            other => ServiceError::Database(other),
        }
    }
}

/// A cache load shares its error among everyone waiting on it (moka's `try_get_with`
/// hands out an `Arc`); the one holder takes it back whole.
impl From<Arc<ServiceError>> for ServiceError {
    fn from(e: Arc<ServiceError>) -> Self {
        Arc::try_unwrap(e).unwrap_or_else(ServiceError::Shared)
    }
}

/// Shorthand for this crate's results.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Where "now" comes from: the wall clock in the app, a fixed moment in tests.
pub trait Clock: Send + Sync + 'static {
    /// The current UTC time.
    fn now(&self) -> NaiveDateTime;
}

/// The system clock (UTC).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> NaiveDateTime {
        chrono::Utc::now().naive_utc()
    }
}

/// Always the same moment.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub NaiveDateTime);

impl Clock for FixedClock {
    fn now(&self) -> NaiveDateTime {
        self.0
    }
}

/// The use cases, over a database pool, a clock, a session store and the cache.
#[derive(Clone)]
pub struct Services {
    db: Db,
    clock: Arc<dyn Clock>,
    sessions: Arc<dyn SessionStore>,
    cache: Cache,
    ns: Arc<cached::Namespaces>,
    uploads: Option<Arc<uploads::Uploads>>,
    login_guard: Arc<throttle::LoginGuard>,
    zone: napiatke_domain::Zone,
    work: work::WorkPool,
    /// This process in the cluster: who holds a job's lease or took a turn.
    instance: Arc<str>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("db", &self.db)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// `host:pid:start-nanoseconds`: unique in a cluster, readable in the database.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}:{}:{start}", std::process::id())
}

impl Services {
    /// Services with database-backed sessions and an in-process (L1-only) cache with
    /// the default TTL classes.
    pub fn new(db: Db, clock: impl Clock) -> Services {
        let clock: Arc<dyn Clock> = Arc::new(clock);
        let sessions = Arc::new(DbSessionStore::new(db.clone(), Arc::clone(&clock)));
        let cache = Cache::local(napiatke_cache::CacheConfig::default());
        let ns = Arc::new(cached::Namespaces::new(&cache, &CacheTtls::default()));
        // As many at once as the pool has connections, so work that got a slot never
        // waits for one; a request waits for a slot as long as for a connection, and
        // at most 16 per slot wait (more are refused at once: `with_work_queue`).
        let slots = db.pool_state().max_size as usize;
        let work = work::WorkPool::bounded(slots, db.checkout_timeout(), slots * 16);
        Services {
            work,
            db,
            clock,
            sessions,
            cache,
            ns,
            uploads: None,
            login_guard: Arc::new(throttle::LoginGuard::per_core()),
            zone: napiatke_domain::Zone::default(),
            instance: instance_name().into(),
        }
    }

    /// This process's name among the cluster's (`host:pid:start`): on the leases it
    /// holds and the periodic turns it takes.
    #[must_use]
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Takes the turn of the periodic task `name` if it is due, making it due again
    /// `every` from now: true means this process runs it now and the other processes
    /// of the cluster (on the same database) skip it until then. One statement.
    pub async fn take_turn(
        &self,
        name: &'static str,
        every: std::time::Duration,
    ) -> ServiceResult<bool> {
        self.blocking(move |s| {
            let now = s.now();
            let next = chrono::Duration::from_std(every)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .unwrap_or(NaiveDateTime::MAX);
            Ok(napiatke_db::queries::leases::take_turn(
                &mut *s.conn()?,
                name,
                &s.instance,
                now,
                next,
            )?)
        })
        .await
    }

    /// Counts days, weeks and months in `zone` (default Europe/Warsaw): "today's
    /// lessons", the calendar's Monday-to-Sunday weeks and this month's revenue.
    #[must_use]
    pub fn with_zone(mut self, zone: napiatke_domain::Zone) -> Services {
        self.zone = zone;
        self
    }

    /// The school's time zone.
    #[must_use]
    pub fn zone(&self) -> napiatke_domain::Zone {
        self.zone
    }

    /// Today's date in the school's time zone.
    #[must_use]
    pub fn today(&self) -> chrono::NaiveDate {
        self.zone.today(self.now())
    }

    /// Uses `cache` (L1 + Redis, or L1 only) with these TTL classes.
    #[must_use]
    pub fn with_cache(mut self, cache: Cache, ttls: &CacheTtls) -> Services {
        self.ns = Arc::new(cached::Namespaces::new(&cache, ttls));
        self.cache = cache;
        self
    }

    /// The database pool's connections and checkouts (for metrics).
    #[must_use]
    pub fn db_pool_state(&self) -> napiatke_db::PoolState {
        self.db.pool_state()
    }

    /// The slots blocking work runs in, and the waits for them (for metrics).
    #[must_use]
    pub fn work_state(&self) -> work::WorkState {
        self.work.state()
    }

    /// The cache (for its statistics page).
    #[must_use]
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The session store: the database, the source of truth. Requests read sessions
    /// through [`Services::session`], which answers from the cache.
    #[must_use]
    pub fn sessions(&self) -> &dyn SessionStore {
        self.sessions.as_ref()
    }

    /// Now, by the configured clock.
    #[must_use]
    pub fn now(&self) -> NaiveDateTime {
        self.clock.now()
    }

    /// Whether the database answers (for /healthz). One statement.
    pub async fn healthy(&self) -> ServiceResult<()> {
        self.blocking(|s| s.db.ping().map_err(ServiceError::Unavailable))
            .await
    }

    /// The plan of `sql`, a statement the app ran (the development debug toolbar's
    /// EXPLAIN): only a single read is explained; anything else, or a plan the
    /// engine cannot make, is [`ServiceError::BadInput`] with the engine's words.
    pub async fn explain(&self, sql: String) -> ServiceResult<Vec<String>> {
        self.blocking(move |s| {
            s.db.explain(&sql).map_err(|e| match e {
                e @ DbError::Unavailable(_) => ServiceError::Unavailable(e),
                other => ServiceError::BadInput(format!("no plan: {other}")),
            })
        })
        .await
    }

    fn conn(&self) -> ServiceResult<napiatke_db::PooledConn> {
        Ok(self.db.get()?)
    }

    /// Runs a write and its invalidation as a task of its own, so that a request
    /// dropped half-way (the client went away) cannot commit the write and skip the
    /// invalidation. Runs in a [`work_span`], so its statements count for the request.
    pub(crate) async fn detached<T, F, Fut>(&self, f: F) -> ServiceResult<T>
    where
        F: FnOnce(Services) -> Fut,
        Fut: std::future::Future<Output = ServiceResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        use tracing::Instrument;
        let task = f(self.clone()).instrument(work_span());
        tokio::spawn(task).await.map_err(ServiceError::Task)?
    }

    /// At most `queue` requests wait for a database slot (DATABASE_QUEUE); the next
    /// ones are answered 503 at once.
    #[must_use]
    pub fn with_work_queue(mut self, queue: usize) -> Services {
        let slots = self.db.pool_state().max_size as usize;
        self.work = work::WorkPool::bounded(slots, self.db.checkout_timeout(), queue);
        self
    }

    /// Runs blocking work (database, argon2) in a slot of the [`work::WorkPool`]
    /// inside a [`work_span`], so the statements it runs are counted for this
    /// request. No free slot within the connection-checkout timeout is
    /// [`ServiceError::Busy`] (503 with Retry-After).
    pub(crate) async fn blocking<T, F>(&self, f: F) -> ServiceResult<T>
    where
        F: FnOnce(&Services) -> ServiceResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let span = work_span();
        let this = self.clone();
        self.work
            .run(move || span.in_scope(|| f(&this)))
            .await
            .map_err(|e| match e {
                work::WorkError::Busy(wait) => ServiceError::Busy {
                    message: format!(
                        "the server is busy: no database connection came free within {:.1} s",
                        wait.as_secs_f64()
                    ),
                    retry_after: std::time::Duration::from_secs(1),
                },
                work::WorkError::Full(queue) => ServiceError::Busy {
                    message: format!(
                        "the server is busy: {queue} requests are already waiting for the database"
                    ),
                    retry_after: std::time::Duration::from_secs(1),
                },
                // A panic is a bug (a decoder on a crafted file, say), not overload: a
                // 500 that is logged, never a 503 inviting the client to send it again
                // (see `ServiceError::is_unavailable`).
                work::WorkError::Task(e) => ServiceError::Task(e),
            })?
    }
}
