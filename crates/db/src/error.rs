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

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => DbError::NotFound,
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ClosedConnection,
                info,
            ) => DbError::Unavailable(info.message().to_owned()),
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
