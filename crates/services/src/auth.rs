//! Logging in and sessions.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use napiatke_db::queries::{sessions, users};
use napiatke_db::Db;
use napiatke_domain::{Email, User, UserId};
use sha2::{Digest, Sha256};

use crate::{Clock, ServiceError, ServiceResult, Services};

/// How long a session lasts from login.
pub const SESSION_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// A live session: who, and the token their forms must carry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// The logged-in user.
    pub user: User,
    /// The CSRF token tied to this session.
    pub csrf_token: String,
    /// When it ends (UTC); a cached copy is checked against it too.
    pub expires_at: chrono::NaiveDateTime,
}

/// What login hands the browser.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The cookie value (random, 256 bits); only its hash is stored.
    pub token: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// When it ends (UTC).
    pub expires_at: chrono::NaiveDateTime,
}

/// Where sessions live: the source of truth, written through by
/// [`Services::login`] and [`Services::logout`] and read on a cache miss by
/// [`Services::session`].
pub trait SessionStore: Send + Sync + 'static {
    /// Starts a session for `user`.
    fn create(&self, user: UserId) -> ServiceResult<NewSession>;
    /// The live session behind a cookie token, if any.
    fn load(&self, token: &str) -> ServiceResult<Option<Session>>;
    /// Ends the session behind a cookie token (no error if there is none).
    fn destroy(&self, token: &str) -> ServiceResult<()>;
}

/// Sessions in the `sessions` table, keyed by SHA-256 of the token.
#[derive(Clone)]
pub struct DbSessionStore {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DbSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSessionStore").finish_non_exhaustive()
    }
}

impl DbSessionStore {
    /// Over a pool and a clock.
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        DbSessionStore { db, clock }
    }
}

/// 256 random bits as 64 hex digits: session, CSRF and login-form tokens.
pub fn random_token() -> ServiceResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(ServiceError::Random)?;
    Ok(napiatke_cache::hex(&bytes))
}

/// A cookie that cannot be one of ours is not looked up at all.
fn looks_like_token(token: &str) -> bool {
    // `is_ascii_hexdigit` with an early exit took about 7 instructions a byte on
    // every request; a fold with no branch per byte lets the compiler check the 64
    // bytes in vector registers.
    token.len() == 64 && token.bytes().fold(true, |ok, b| ok & is_hex(b))
}

/// `b.is_ascii_hexdigit()` without branches (a test compares every byte).
const fn is_hex(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 6)
}

/// What the database stores for a token.
pub(crate) fn token_hash(token: &str) -> String {
    napiatke_cache::hex(&Sha256::digest(token.as_bytes()))
}

impl SessionStore for DbSessionStore {
    fn create(&self, user: UserId) -> ServiceResult<NewSession> {
        let token = random_token()?;
        let csrf_token = random_token()?;
        let now = self.clock.now();
        let ttl = chrono::Duration::from_std(SESSION_TTL).unwrap_or(chrono::Duration::days(14));
        let expires_at = now + ttl;
        let mut conn = self.db.get()?;
        // Logins are rare next to page views: a good moment to sweep expired rows
        // (an index range delete), so the table never grows without bound.
        sessions::delete_expired(&mut conn, now)?;
        sessions::insert(
            &mut conn,
            &token_hash(&token),
            user,
            &csrf_token,
            now,
            expires_at,
        )?;
        Ok(NewSession {
            token,
            csrf_token,
            expires_at,
        })
    }

    fn load(&self, token: &str) -> ServiceResult<Option<Session>> {
        if !looks_like_token(token) {
            return Ok(None);
        }
        let mut conn = self.db.get()?;
        Ok(
            sessions::find(&mut conn, &token_hash(token), self.clock.now())?.map(|s| Session {
                user: s.user,
                csrf_token: s.csrf_token,
                expires_at: s.expires_at,
            }),
        )
    }

    fn destroy(&self, token: &str) -> ServiceResult<()> {
        let mut conn = self.db.get()?;
        sessions::delete(&mut conn, &token_hash(token))?;
        Ok(())
    }
}

/// A hash to verify against when the e-mail is unknown, so a wrong e-mail costs the
/// same time as a wrong password and does not reveal which accounts exist.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        napiatke_db::seed::hash_password("decoy password", b"napiatke-decoy!!").unwrap_or_default()
    })
}

impl Services {
    /// The active user with this e-mail and password, or `None`. Runs argon2 (tens of
    /// milliseconds of CPU, on the blocking pool) whether or not the e-mail exists.
    #[tracing::instrument(level = "trace", name = "service.authenticate", skip_all)]
    pub async fn authenticate(&self, email: &str, password: &str) -> ServiceResult<Option<User>> {
        let Ok(email) = Email::parse(email) else {
            return Ok(None);
        };
        let password = password.to_owned();
        self.blocking(move |s| {
            let found = users::credentials(&mut *s.conn()?, &email)?;
            let (user, hash) = match &found {
                Some((user, hash)) => (Some(user), hash.as_str()),
                None => (None, decoy_hash()),
            };
            let ok = PasswordHash::new(hash)
                .map(|parsed| {
                    argon2::Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false);
            Ok(match user {
                Some(u) if ok && u.is_active => Some(u.clone()),
                _ => None,
            })
        })
        .await
    }

    /// Logs in from an unknown address: [`Services::login_from`] without the
    /// per-address throttle.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        previous: Option<&str>,
    ) -> ServiceResult<Option<(User, NewSession)>> {
        self.login_from(email, password, previous, None).await
    }

    /// Logs in: checks the credentials and starts a fresh session, written to the
    /// database and then to the cache. The session the browser had before
    /// (`previous`, its cookie token) is ended on success, never reused, so a planted
    /// session id is worthless; a failed login leaves it alone.
    ///
    /// Throttled ([`crate::throttle`]): an account or client address past its
    /// allowance of failures is [`ServiceError::Throttled`] until its wait is over,
    /// whatever the password; argon2 waits for a place (or the queue is full:
    /// [`ServiceError::Busy`]). Failures are logged (target `napiatke::auth`) with
    /// the e-mail and address, never the password.
    #[tracing::instrument(level = "trace", name = "service.login", skip_all)]
    pub async fn login_from(
        &self,
        email: &str,
        password: &str,
        previous: Option<&str>,
        client: Option<&str>,
    ) -> ServiceResult<Option<(User, NewSession)>> {
        let now = std::time::Instant::now();
        // Refusals are not logged one by one (a flood would be a flood of lines);
        // the failure that starts each wait is.
        if let Err(wait) = self.login_guard.check(email, client, now) {
            return Err(ServiceError::Throttled { retry_after: wait });
        }
        let found = {
            let _slot = self.login_guard.hashing_slot().await?;
            self.authenticate(email, password).await?
        };
        let Some(user) = found else {
            let wait = self.login_guard.failed(email, client, now);
            tracing::warn!(target: "napiatke::auth", email, client, wait_s = wait.map(|w| w.as_secs()), "login failed");
            return Ok(None);
        };
        self.login_guard.succeeded(email);
        let id = user.id;
        let new = self.blocking(move |s| s.sessions().create(id)).await?;
        let session = Session {
            user: user.clone(),
            csrf_token: new.csrf_token.clone(),
            expires_at: new.expires_at,
        };
        self.cache
            .set(&self.ns.session, &token_hash(&new.token), session)
            .await;
        // Only once the new session exists: a failure before leaves the old one.
        if let Some(old) = previous {
            self.logout(old).await?;
        }
        Ok(Some((user, new)))
    }

    /// The live session behind a cookie token: from the cache, else the database (and
    /// then cached if live). A Redis flush or a restart only costs a lookup.
    #[tracing::instrument(level = "trace", name = "service.session", skip_all)]
    pub async fn session(&self, token: &str) -> ServiceResult<Option<Session>> {
        if !looks_like_token(token) {
            return Ok(None);
        }
        let owned = token.to_owned();
        // Only live sessions are cached: caching "no such session" would let anyone
        // grow Redis without bound by sending random cookies. An unknown token is an
        // error inside the loader (errors are never cached) and `None` outside.
        let cached = self
            .cache
            .get_or_compute(&self.ns.session, &token_hash(token), || {
                self.blocking(move |s| s.sessions().load(&owned)?.ok_or(ServiceError::NoSession))
            })
            .await;
        let session = match cached {
            Ok(s) => s,
            Err(e) if matches!(e.kind(), ServiceError::NoSession) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok((session.expires_at > self.now()).then(|| session.as_ref().clone()))
    }

    /// Ends the session behind a cookie token, in the database and the cache. Runs to
    /// the end even if the request is abandoned half-way (a dropped connection must
    /// not leave the session cached after its row is gone).
    #[tracing::instrument(level = "trace", name = "service.logout", skip_all)]
    pub async fn logout(&self, token: &str) -> ServiceResult<()> {
        let owned = token.to_owned();
        self.detached(move |this| async move {
            let hash = token_hash(&owned);
            this.blocking(move |s| s.sessions().destroy(&owned)).await?;
            this.cache.delete(&this.ns.session, &hash).await;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_64_hex_digits_of_either_case() {
        for b in 0..=u8::MAX {
            assert_eq!(is_hex(b), b.is_ascii_hexdigit(), "byte {b:#04x}");
        }
        for b in (0..0x80u8).map(char::from) {
            // One odd character anywhere spoils it.
            let mut token = "a".repeat(63);
            token.push(b);
            assert_eq!(
                looks_like_token(&token),
                b.is_ascii_hexdigit(),
                "last {b:?}"
            );
            token.insert(0, b);
            token.pop();
            assert_eq!(
                looks_like_token(&token),
                b.is_ascii_hexdigit(),
                "first {b:?}"
            );
        }
        assert!(looks_like_token(&"Fa09".repeat(16)));
        assert!(!looks_like_token(&"é".repeat(32)), "64 bytes, not hex");
        assert!(!looks_like_token(&"a".repeat(63)));
        assert!(!looks_like_token(&"a".repeat(65)));
    }

    #[test]
    fn tokens_are_random_hex_and_hashed() {
        let a = random_token().unwrap_or_default();
        let b = random_token().unwrap_or_default();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
