//! Error reporting to Sentry: panics and 5xx answers as events, requests as
//! transactions sampled per route, with nothing personal in them.
//!
//! What is sent is built here, not collected from the request: an event names the
//! route template, the status, the request id and the user as id and role. Cookies,
//! `Authorization`, CSRF tokens, form bodies and e-mail addresses never reach an
//! event (a `before_send` scrubs anything the SDK adds on its own, e-mail addresses
//! in messages included).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use sentry::protocol::{Event, Level, SpanStatus, User};
use sentry::{ClientOptions, TransactionContext};

/// Keeps the client; dropping it sends what is queued.
pub type ClientGuard = sentry::ClientInitGuard;

/// What the client needs to know.
#[derive(Debug, Clone)]
pub struct SentryOptions {
    /// SENTRY_DSN.
    pub dsn: String,
    /// `environment` of every event.
    pub environment: String,
    /// `release` of every event (the package version).
    pub release: String,
    /// SENTRY_TRACES_SAMPLE_RATE: the share of page requests sent as transactions.
    pub traces_sample_rate: f32,
}

/// Why the client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The DSN does not parse.
    #[error("SENTRY_DSN: {0}")]
    Dsn(String),
}

/// Starts the Sentry client for the process; keep the guard (dropping it sends
/// what is queued, waiting at most 2 s).
///
/// ```
/// use napiatke_telemetry::report::{init, SentryOptions};
/// let bad = SentryOptions {
///     dsn: "not a dsn".to_owned(),
///     environment: "test".to_owned(),
///     release: "0.1.0".to_owned(),
///     traces_sample_rate: 0.1,
/// };
/// assert!(init(&bad).is_err());
/// ```
pub fn init(options: &SentryOptions) -> Result<ClientGuard, ReportError> {
    let dsn = options
        .dsn
        .parse::<sentry::types::Dsn>()
        .map_err(|e| ReportError::Dsn(e.to_string()))?;
    let rate = options.traces_sample_rate.clamp(0.0, 1.0);
    RATE_PER_MILLE.store((rate * 1000.0).round() as u32, Relaxed);
    // Transactions are sampled in `watch` before one is made (making one and
    // dropping it unsampled cost a cached page a third of its throughput); the
    // SDK sends every transaction it is given.
    let mut client = ClientOptions::default()
        .send_default_pii(false)
        .shutdown_timeout(Duration::from_secs(2))
        .traces_sample_rate(1.0);
    client.dsn = Some(dsn);
    client.release = Some(Cow::Owned(options.release.clone()));
    client.environment = Some(Cow::Owned(options.environment.clone()));
    client.before_send = Some(std::sync::Arc::new(|event| Some(scrub(event))));
    let guard = sentry::init(client);
    BOUND.store(true, Relaxed);
    Ok(guard)
}

/// Sends what is queued now, waiting at most `timeout` (tests).
pub fn flush(timeout: Duration) -> bool {
    sentry::Hub::current()
        .client()
        .is_some_and(|c| c.flush(Some(timeout)))
}

/// Set once [`init`] has bound a client in this process: until then [`enabled`]
/// answers without Sentry's hub (a thread-local and two reference counts per call,
/// for every request).
static BOUND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a Sentry client is bound (callers skip work only Sentry uses).
#[must_use]
pub fn enabled() -> bool {
    BOUND.load(Relaxed)
        && sentry::Hub::current()
            .client()
            .is_some_and(|c| c.is_enabled())
}

/// SENTRY_TRACES_SAMPLE_RATE in thousandths.
static RATE_PER_MILLE: AtomicU32 = AtomicU32::new(0);

/// The share of transactions named `name` to send: health checks and metrics
/// scrapes never, pages at `rate`. (Errors are events, always sent.)
fn sample_rate(name: &str, rate: f32) -> f32 {
    if name.ends_with(" /healthz") || name.ends_with(" /metrics") {
        0.0
    } else {
        rate
    }
}

/// Whether this request is sent as a transaction: a draw against its route's rate,
/// from a per-thread xorshift (no lock, no system call).
fn sampled(name: &str) -> bool {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u8(1);
            h.finish() | 1
        });
    }
    let rate = sample_rate(name, RATE_PER_MILLE.load(Relaxed) as f32 / 1000.0);
    if rate <= 0.0 {
        return false;
    }
    let draw = STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    });
    ((draw % 1_000_000) as f32) < rate * 1_000_000.0 && within_budget()
}

/// Transactions a process sends per second at most, whatever the rate says: a busy
/// process at 10 % would otherwise queue thousands a second (measured: a cached
/// page lost 25-40 % of its throughput to the transport), more than any Sentry
/// quota takes.
pub const TRANSACTIONS_PER_SECOND: u32 = 20;

fn within_budget() -> bool {
    use std::sync::atomic::AtomicU64;
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    static WINDOW: AtomicU64 = AtomicU64::new(0);
    static SENT: AtomicU32 = AtomicU32::new(0);
    let second = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs();
    if WINDOW.swap(second, Relaxed) != second {
        SENT.store(0, Relaxed);
    }
    SENT.fetch_add(1, Relaxed) < TRANSACTIONS_PER_SECOND
}

/// A request being watched: its transaction (when sampled) and what an error
/// event about it would say.
#[derive(Debug)]
pub struct Watch {
    transaction: Option<sentry::Transaction>,
    name: String,
    route: String,
    request_id: String,
}

/// Starts watching a request named `METHOD /route/{param}`.
#[must_use]
pub fn watch(method: &str, route: &str, request_id: &str) -> Watch {
    let name = format!("{method} {route}");
    let transaction = sampled(&name).then(|| {
        let t = sentry::start_transaction(TransactionContext::new(&name, "http.server"));
        t.set_tag("request_id", request_id);
        t
    });
    Watch {
        transaction,
        name,
        route: route.to_owned(),
        request_id: request_id.to_owned(),
    }
}

/// The viewer of a request, as much as reports may say of them.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    /// The user's id.
    pub id: i64,
    /// Their role.
    pub role: &'a str,
}

impl Watch {
    /// Ends the request with `status`: a 5xx is reported as an error event carrying
    /// `cause` (scrubbed), the route, the request id and the viewer.
    pub fn finish(self, status: u16, viewer: Option<Viewer<'_>>, cause: Option<&str>) {
        if let Some(t) = &self.transaction {
            t.set_tag("http.status_code", status);
            t.set_status(match status {
                500.. => SpanStatus::InternalError,
                400.. => SpanStatus::InvalidArgument,
                _ => SpanStatus::Ok,
            });
        }
        if status >= 500 {
            let mut tags = BTreeMap::new();
            tags.insert("route".to_owned(), self.route.clone());
            tags.insert("request_id".to_owned(), self.request_id.clone());
            tags.insert("status".to_owned(), status.to_string());
            let user = viewer.map(|v| User {
                id: Some(v.id.to_string()),
                other: [("role".to_owned(), v.role.into())].into_iter().collect(),
                ..User::default()
            });
            sentry::capture_event(Event {
                level: Level::Error,
                message: Some(without_emails(&format!(
                    "{status} answering {}: {}",
                    self.name,
                    cause.unwrap_or("no cause recorded")
                ))),
                transaction: Some(self.name.clone()),
                tags,
                user,
                ..Event::default()
            });
        }
        if let Some(t) = self.transaction {
            t.finish();
        }
    }
}

/// The event without anything that could name or authenticate a person: no cookies,
/// headers, query string or body of the request; the user as id and role only;
/// e-mail addresses in messages replaced.
fn scrub(mut event: Event<'static>) -> Event<'static> {
    if let Some(request) = event.request.as_mut() {
        request.cookies = None;
        request.headers.clear();
        request.data = None;
        request.query_string = None;
        request.env.clear();
    }
    if let Some(user) = event.user.as_mut() {
        user.email = None;
        user.ip_address = None;
        user.username = None;
        user.other.retain(|k, _| k == "role");
    }
    event.message = event.message.map(|m| without_emails(&m));
    for e in &mut event.exception.values {
        e.value = e.value.as_deref().map(without_emails);
    }
    event
}

/// `text` with every word holding an `@` between other characters replaced.
fn without_emails(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let bare = word.trim_end();
            match bare.find('@') {
                Some(at) if at > 0 && at + 1 < bare.len() => {
                    format!("[email]{}", &word[bare.len()..])
                }
                _ => word.to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_request_details_are_scrubbed() {
        assert_eq!(
            without_emails("user admin@napiatke.local failed, @ alone stays"),
            "user [email] failed, @ alone stays"
        );
        let mut event = Event {
            message: Some("no such user tina@napiatke.local".to_owned()),
            request: Some(sentry::protocol::Request {
                cookies: Some("napiatke_session=secret".to_owned()),
                data: Some("email=a@b.c&password=x".to_owned()),
                query_string: Some("next=/x".to_owned()),
                ..Default::default()
            }),
            user: Some(User {
                id: Some("7".to_owned()),
                email: Some("a@b.c".to_owned()),
                other: [
                    ("role".to_owned(), "TUTOR".into()),
                    ("name".to_owned(), "Tina".into()),
                ]
                .into_iter()
                .collect(),
                ..User::default()
            }),
            ..Event::default()
        };
        if let Some(r) = event.request.as_mut() {
            r.headers
                .insert("Cookie".to_owned(), "napiatke_session=secret".to_owned());
        }
        let clean = scrub(event);
        let text = format!("{clean:?}");
        for secret in ["secret", "a@b.c", "tina@", "password", "Tina"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("TUTOR") && text.contains("\"7\""), "{text}");
        assert_eq!(sample_rate("GET /healthz", 0.1), 0.0);
        assert_eq!(sample_rate("GET /lessons/{id}/", 0.1), 0.1);
    }
}
