use napiatke_domain::DomainError;

/// What the persistence layer can fail with. apps/web maps these to HTTP once:
/// `NotFound` to 404, `Unavailable` to 503, `InvalidUrl` stops start-up, the rest 500.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database URL names no engine we speak or is malformed.
    #[error("invalid database URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL with any password masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server cannot be reached or refused us (also: pool timed out).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The server cancelled a statement that ran past the statement timeout
    /// ([`crate::PoolOptions::statement_timeout`]).
    #[error("the statement ran too long: {0}")]
    Timeout(String),
    /// A row that was asked for by key does not exist.
    #[error("not found")]
    NotFound,
    /// Applying migrations failed; nothing after the failing one ran.
    #[error("migration failed: {0}")]
    Migration(String),
    /// `seed` was asked to fill a database that already holds data.
    #[error("the database already holds {users} users")]
    NotEmpty {
        /// Users found.
        users: i64,
    },
    /// A stored value the domain rejects (a status outside the CHECK list, say).
    #[error("corrupt row: {0}")]
    Corrupt(#[from] DomainError),
    /// Password hashing failed (never on valid parameters; kept typed all the same).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// A row that must be unique already exists (the message says which).
    #[error("{0}")]
    Duplicate(String),
    /// A request the database layer will not carry out (an `EXPLAIN` of a write).
    #[error("{0}")]
    Unsupported(String),
    /// Any other database error.
    #[error(transparent)]
    Query(diesel::result::Error),
}

/// When a statement last found the server gone (milliseconds after [`BASE`], plus
/// one; 0: never). The pool checks returned connections for a while after.
static GONE_AT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn millis_since_base() -> u64 {
    let base = BASE.get_or_init(std::time::Instant::now);
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn server_gone() {
    GONE_AT.store(
        millis_since_base().saturating_add(1),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Whether a statement found the server gone within `window`.
pub(crate) fn server_gone_within(window: std::time::Duration) -> bool {
    let at = GONE_AT.load(std::sync::atomic::Ordering::Relaxed);
    at != 0
        && millis_since_base().saturating_sub(at - 1)
            <= u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
}

/// PostgreSQL's (and libpq's) words for a server that stopped or is not there yet.
const GONE: [&str; 6] = [
    "terminating connection due to administrator command",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "server closed the connection unexpectedly",
    "no connection to the server",
];

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => DbError::NotFound,
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ClosedConnection,
                info,
            ) => {
                server_gone();
                DbError::Unavailable(info.message().to_owned())
            }
            // The server going away under a statement: a restart or failover
            // (SQLSTATE 57P01-57P03, or the socket closed before diesel saw the
            // connection go bad). Found by the failure drill (scripts/drills.py):
            // one request in flight when PostgreSQL stopped was a 500, not a 503.
            diesel::result::Error::DatabaseError(_, info)
                if GONE.iter().any(|m| info.message().contains(m)) =>
            {
                server_gone();
                DbError::Unavailable(info.message().to_owned())
            }
            // SQLSTATE 57014, which diesel does not expose: told by PostgreSQL's
            // message (English unless the server's lc_messages says otherwise; a
            // translated one stays a Query error, a 500).
            diesel::result::Error::DatabaseError(_, info)
                if info.message().contains("statement timeout") =>
            {
                DbError::Timeout(info.message().to_owned())
            }
            other => DbError::Query(other),
        }
    }
}

impl From<r2d2::Error> for DbError {
    fn from(e: r2d2::Error) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

/// Shorthand for this crate's results.
pub type DbResult<T> = Result<T, DbError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Said(&'static str);

    impl diesel::result::DatabaseErrorInformation for Said {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn from(message: &'static str) -> DbError {
        DbError::from(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new(Said(message)),
        ))
    }

    #[test]
    fn a_server_going_away_is_unavailable_not_a_query_error() {
        for m in [
            "terminating connection due to administrator command",
            "FATAL:  the database system is shutting down",
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
        ] {
            assert!(matches!(from(m), DbError::Unavailable(_)), "{m}");
        }
        // Remembered, so the pool checks the connections that come back for a while.
        assert!(server_gone_within(std::time::Duration::from_secs(5)));
        assert!(matches!(
            from("canceling statement due to statement timeout"),
            DbError::Timeout(_)
        ));
        assert!(matches!(
            from("syntax error at or near \"FORM\""),
            DbError::Query(_)
        ));
    }
}
