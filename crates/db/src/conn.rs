//! One connection type for both engines, and the URL that picks one.

use std::fmt;
use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};

use crate::{DbError, DbResult};

/// A connection to either engine. Queries are written once against it; the few
/// engine-specific statements (COPY, sequence resets, PRAGMAs) match on the variant.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// PostgreSQL, the production engine.
    Pg(PgConnection),
    /// SQLite, the embedded default.
    Sqlite(SqliteConnection),
}

impl fmt::Debug for DbConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DbConn::Pg(_) => "DbConn::Pg",
            DbConn::Sqlite(_) => "DbConn::Sqlite",
        })
    }
}

impl DbConn {
    /// Which engine this connection speaks to.
    #[must_use]
    pub fn engine(&self) -> Engine {
        match self {
            DbConn::Pg(_) => Engine::Postgres,
            DbConn::Sqlite(_) => Engine::Sqlite,
        }
    }
}

/// The two engines napiatke runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// SQLite (bundled libsqlite3).
    Sqlite,
    /// PostgreSQL (libpq).
    Postgres,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        })
    }
}

/// A parsed DATABASE_URL.
///
/// `postgres://` and `postgresql://` URLs go to PostgreSQL; `sqlite://PATH`,
/// `sqlite:PATH`, `sqlite::memory:` and a bare file path go to SQLite. Any other
/// scheme is refused rather than guessed, so a typo never creates a stray SQLite file.
///
/// ```
/// use napiatke_db::{DatabaseUrl, Engine};
/// assert_eq!(DatabaseUrl::parse("postgres://u@h/db").unwrap().engine(), Engine::Postgres);
/// assert_eq!(DatabaseUrl::parse("sqlite://data/app.db").unwrap().engine(), Engine::Sqlite);
/// assert!(DatabaseUrl::parse("mysql://h/db").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    engine: Engine,
    /// What the driver is given: a libpq URI, or a SQLite path (or `:memory:`).
    target: String,
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl DatabaseUrl {
    /// Parses and checks the form; nothing is connected to.
    pub fn parse(raw: &str) -> DbResult<Self> {
        let raw = raw.trim();
        let invalid = |reason: &str| DbError::InvalidUrl {
            url: redact(raw),
            reason: reason.to_owned(),
        };
        if raw.is_empty() {
            return Err(invalid("it is empty"));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let parsed = url::Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
            if parsed.host_str().is_none_or(str::is_empty) && !raw.contains("host=") {
                return Err(invalid("it names no host"));
            }
            let mut target = raw.to_owned();
            // A dead host should fail in seconds, not hang on the OS's TCP timeout.
            if !raw.contains("connect_timeout=") {
                target.push(if raw.contains('?') { '&' } else { '?' });
                target.push_str("connect_timeout=5");
            }
            return Ok(DatabaseUrl {
                engine: Engine::Postgres,
                target,
            });
        }
        let path = if let Some(rest) = raw.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = raw.strip_prefix("sqlite:") {
            rest
        } else if let Some((scheme, _)) = raw.split_once("://") {
            return Err(invalid(&format!(
                "unsupported scheme {scheme:?}; use postgres://… or sqlite://PATH"
            )));
        } else {
            raw
        };
        if path.is_empty() {
            return Err(invalid("it names no SQLite file"));
        }
        Ok(DatabaseUrl {
            engine: Engine::Sqlite,
            target: path.to_owned(),
        })
    }

    /// The engine the URL names.
    #[must_use]
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The URL with any password replaced by `***`, fit for logs and messages.
    #[must_use]
    pub fn redacted(&self) -> String {
        match self.engine {
            Engine::Postgres => redact(&self.target),
            Engine::Sqlite => format!("sqlite://{}", self.target),
        }
    }

    /// The SQLite file, if this is a file-backed SQLite URL.
    #[must_use]
    pub fn sqlite_path(&self) -> Option<&Path> {
        (self.engine == Engine::Sqlite && !self.is_memory()).then(|| Path::new(&self.target))
    }

    fn is_memory(&self) -> bool {
        self.target == ":memory:" || self.target.contains("mode=memory")
    }

    /// Opens one connection, set up as the pool sets up its own (see [`crate::Db`]).
    pub fn establish(&self) -> DbResult<DbConn> {
        match self.engine {
            Engine::Postgres => PgConnection::establish(&self.target)
                .map(DbConn::Pg)
                .map_err(|e| DbError::Unavailable(one_line(&e.to_string()))),
            Engine::Sqlite => {
                if let Some(dir) = self.sqlite_path().and_then(Path::parent) {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            DbError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                        })?;
                    }
                }
                let mut conn = SqliteConnection::establish(&self.target)
                    .map_err(|e| DbError::Unavailable(one_line(&e.to_string())))?;
                // Per connection: these do not persist in the file.
                conn.batch_execute(
                    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                     PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; \
                     PRAGMA cache_size = -32000;",
                )?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }
}

/// libpq's messages span lines; a start-up error must fit on one.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Masks the password of `scheme://user:password@host/...`, even in a URL too broken
/// to parse, since that is exactly the one that ends up in an error message.
fn redact(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags in .cargo/config.toml reached the bundled SQLite: without them
    /// every connection takes two process-wide mutexes (the shared page cache's and
    /// the memory statistics'), and a server on 8 cores spends its time there.
    #[test]
    fn sqlite_is_built_without_global_mutexes() {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Option_ {
            #[diesel(sql_type = diesel::sql_types::Text)]
            compile_options: String,
        }
        let Ok(DbConn::Sqlite(mut conn)) =
            DatabaseUrl::parse("sqlite::memory:").and_then(|url| url.establish())
        else {
            panic!("no in-memory SQLite");
        };
        let options: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<Option_>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        assert!(options.iter().any(|o| o == "THREADSAFE=2"), "{options:?}");
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        // Still the bundle's build otherwise (FTS5 serves the student search).
        assert!(options.iter().any(|o| o == "ENABLE_FTS5"), "{options:?}");
    }

    #[test]
    fn urls_pick_the_engine_or_are_refused() {
        let pg = DatabaseUrl::parse("postgresql://postgres:secret@127.0.0.1:5432/test");
        let pg = pg.ok();
        assert_eq!(pg.as_ref().map(DatabaseUrl::engine), Some(Engine::Postgres));
        assert_eq!(
            pg.as_ref().map(DatabaseUrl::redacted).as_deref(),
            Some("postgresql://postgres:***@127.0.0.1:5432/test?connect_timeout=5")
        );
        for sqlite in ["sqlite://data/x.db", "sqlite:data/x.db", "data/x.db"] {
            let u = DatabaseUrl::parse(sqlite).ok();
            assert_eq!(
                u.as_ref().and_then(DatabaseUrl::sqlite_path),
                Some(Path::new("data/x.db"))
            );
        }
        assert!(DatabaseUrl::parse("sqlite::memory:")
            .ok()
            .is_some_and(|u| u.sqlite_path().is_none()));
        for bad in [
            "",
            "mysql://h/db",
            "postgres://",
            "postgres://[::1",
            "sqlite://",
        ] {
            let err = DatabaseUrl::parse(bad).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.starts_with("invalid database URL")),
                "{bad:?} gave {err:?}"
            );
        }
    }

    #[test]
    fn redaction_hides_passwords_in_errors() {
        let err = DatabaseUrl::parse("postgres://u:hunter2@[::1/db").err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(!msg.contains("hunter2") && msg.contains("u:***@"), "{msg}");
    }
}
