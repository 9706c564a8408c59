//! The use cases behind napiatke's pages. Functions here are synchronous and do
//! blocking database work: callers on an async runtime run them on a blocking pool
//! inside the request's span.
//!
//! Authorisation lives here, next to the data it guards: a student only ever gets
//! their own lessons and figures, `/students/` is for admins and tutors, attendance is
//! marked by an admin or the lesson's tutor.
//!
//! ```
//! use napiatke_services::{FixedClock, Services};
//! let db = napiatke_db::Db::open("sqlite::memory:", Default::default())?;
//! napiatke_db::migrate::run(&mut *db.get()?)?;
//! let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap().and_hms_opt(12, 0, 0).unwrap();
//! let services = Services::new(db, FixedClock(now));
//! assert!(services.authenticate("nobody@napiatke.local", "x")?.is_none());
//! # Ok::<(), napiatke_services::ServiceError>(())
//! ```

mod auth;
mod pages;

use std::sync::Arc;

use chrono::NaiveDateTime;
use napiatke_db::{Db, DbError};

pub use auth::{random_token, DbSessionStore, NewSession, Session, SessionStore, SESSION_TTL};
pub use pages::{
    AttendanceChange, CalendarDay, CalendarWeek, Dashboard, LessonQuery, LessonsPage, StudentQuery,
};

/// What a use case can fail with; apps/web maps each to an HTTP status once.
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
    /// The database is unreachable or overloaded.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Anything else; details go to the log, not the page.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ServiceError::NotFound("not found".to_owned()),
            DbError::Unavailable(m) => ServiceError::Unavailable(m),
            other => ServiceError::Internal(other.to_string()),
        }
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

/// The use cases, over a database pool, a clock and a session store.
#[derive(Clone)]
pub struct Services {
    db: Db,
    clock: Arc<dyn Clock>,
    sessions: Arc<dyn SessionStore>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Services with database-backed sessions.
    pub fn new(db: Db, clock: impl Clock) -> Services {
        let clock: Arc<dyn Clock> = Arc::new(clock);
        let sessions = Arc::new(DbSessionStore::new(db.clone(), Arc::clone(&clock)));
        Services {
            db,
            clock,
            sessions,
        }
    }

    /// Replaces the session store (the cache issue puts one in front of the database).
    #[must_use]
    pub fn with_sessions(mut self, sessions: Arc<dyn SessionStore>) -> Services {
        self.sessions = sessions;
        self
    }

    /// The session store.
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
    pub fn healthy(&self) -> ServiceResult<()> {
        self.db
            .ping()
            .map_err(|e| ServiceError::Unavailable(e.to_string()))
    }

    fn conn(&self) -> ServiceResult<napiatke_db::PooledConn> {
        Ok(self.db.get()?)
    }
}
