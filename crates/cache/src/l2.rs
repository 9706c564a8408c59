//! The Redis tier: a bb8 pool of multiplexed connections, a per-operation timeout, a
//! circuit breaker, throttled error logs, and the pub/sub link that carries
//! invalidations between processes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bb8_redis::bb8;
use bb8_redis::redis::{self, aio::MultiplexedConnection, RedisError};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::stats::L2Counters;

/// A multiplexed connection that remembers whether it failed, so the pool drops it
/// and dials again (bb8-redis's own manager never reports a connection broken, which
/// keeps a dead socket in the pool forever after a Redis restart).
pub(crate) struct Conn {
    inner: MultiplexedConnection,
    broken: bool,
}

pub(crate) struct Manager {
    client: redis::Client,
    config: redis::AsyncConnectionConfig,
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    async fn connect(&self) -> Result<Conn, RedisError> {
        let inner = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        Ok(Conn {
            inner,
            broken: false,
        })
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), RedisError> {
        redis::cmd("PING").query_async::<()>(&mut conn.inner).await
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
    }
}

/// Why a Redis operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// The breaker is open after repeated failures; Redis was not asked.
    #[error("redis skipped: circuit open")]
    Open,
    /// The operation took longer than the per-operation timeout.
    #[error("redis timed out after {0:?}")]
    Timeout(Duration),
    /// Connection or protocol failure.
    #[error("redis error: {0}")]
    Redis(String),
}

/// Consecutive failures open the breaker for a cool-down that doubles while Redis
/// stays down (up to `MAX_COOLDOWN`); after it, requests try Redis again and the first
/// success closes it. Only a failure while the breaker lets requests through opens
/// (and doubles) it: the requests already in flight when it opened fail too, and
/// counting each would stretch the cool-down to its maximum at once (measured: the
/// failure drill saw Redis unused for over 6 s after a 1.5 s outage).
#[derive(Debug)]
struct Breaker {
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    cooldown_ms: AtomicU64,
}

const FAILURES_TO_OPEN: u32 = 3;
const MIN_COOLDOWN_MS: u64 = 250;
/// How long Redis can stay unused after it is back, at most: one probe (one
/// request's connection attempt) per this while it is down.
const MAX_COOLDOWN_MS: u64 = 2_000;
const LOG_INTERVAL_MS: u64 = 10_000;

impl Breaker {
    fn new() -> Self {
        Breaker {
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            cooldown_ms: AtomicU64::new(MIN_COOLDOWN_MS),
        }
    }

    fn allows(&self, now_ms: u64) -> bool {
        now_ms >= self.open_until_ms.load(Relaxed)
    }

    fn is_open(&self, now_ms: u64) -> bool {
        !self.allows(now_ms)
    }

    /// Returns true when this success closed a breaker that had tripped.
    fn success(&self) -> bool {
        let was = self.failures.swap(0, Relaxed);
        self.cooldown_ms.store(MIN_COOLDOWN_MS, Relaxed);
        was >= FAILURES_TO_OPEN
    }

    /// Counts a failure; true when it opened the breaker.
    fn failure(&self, now_ms: u64) -> bool {
        let n = self.failures.fetch_add(1, Relaxed) + 1;
        if n >= FAILURES_TO_OPEN && self.allows(now_ms) {
            let cooldown = self.cooldown_ms.load(Relaxed);
            self.open_until_ms.store(now_ms + cooldown, Relaxed);
            self.cooldown_ms
                .store((cooldown * 2).min(MAX_COOLDOWN_MS), Relaxed);
            return true;
        }
        false
    }
}

/// What Redis says about itself, for the stats page.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RedisInfo {
    /// `used_memory_human`.
    pub used_memory: String,
    /// Keys in the selected database (DBSIZE), every client's.
    pub keys: u64,
    /// Server-wide keyspace hit rate (covers every client, sessions of other apps too).
    pub keyspace_hit_rate: Option<f64>,
    /// `keyspace_hits`.
    pub keyspace_hits: u64,
    /// `keyspace_misses`.
    pub keyspace_misses: u64,
    /// `connected_clients`.
    pub connected_clients: u64,
    /// `redis_version`.
    pub version: String,
}

/// Keys under our prefix, per namespace, from a bounded SCAN.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KeyCounts {
    /// (namespace, keys) by name; generation counters are under "gen".
    pub per_namespace: Vec<(String, u64)>,
    /// Whether the scan covered the whole keyspace (false: counts are lower bounds).
    pub complete: bool,
}

/// Waiters for acknowledgements of our own invalidation messages.
type AckWaiters = Mutex<HashMap<u64, AckWait>>;

pub(crate) struct AckWait {
    received: usize,
    expected: Option<usize>,
    tx: Option<oneshot::Sender<()>>,
}

pub(crate) struct L2 {
    /// Replaced whole when the breaker opens (see `run_inner`).
    pool: std::sync::RwLock<bb8::Pool<Manager>>,
    client: redis::Client,
    config: redis::AsyncConnectionConfig,
    pool_size: u32,
    timeout: Duration,
    breaker: Breaker,
    pub counters: L2Counters,
    started: Instant,
    last_log_ms: AtomicU64,
    suppressed: AtomicU64,
    pub channel: String,
    pub ack_channel: String,
    pub acks: AckWaiters,
    pub subscribed: AtomicBool,
}

impl std::fmt::Debug for L2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2")
            .field("timeout", &self.timeout)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl L2 {
    pub fn new(
        url: &str,
        prefix: &str,
        timeout: Duration,
        pool_size: u32,
    ) -> Result<L2, RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let pool = Self::build_pool(&client, &config, timeout, pool_size);
        Ok(L2 {
            pool: std::sync::RwLock::new(pool),
            client,
            config,
            pool_size,
            timeout,
            breaker: Breaker::new(),
            counters: L2Counters::default(),
            started: Instant::now(),
            last_log_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            channel: format!("{prefix}:invalidate"),
            ack_channel: format!("{prefix}:ack"),
            acks: Mutex::new(HashMap::new()),
            subscribed: AtomicBool::new(false),
        })
    }

    fn build_pool(
        client: &redis::Client,
        config: &redis::AsyncConnectionConfig,
        timeout: Duration,
        size: u32,
    ) -> bb8::Pool<Manager> {
        bb8::Pool::builder()
            .max_size(size)
            // A PING per checkout doubles the cost of every GET; broken connections
            // are found by the operation that fails on them instead.
            .test_on_check_out(false)
            .connection_timeout(timeout)
            .retry_connection(false)
            .build_unchecked(Manager {
                client: client.clone(),
                config: config.clone(),
            })
    }

    fn pool(&self) -> bb8::Pool<Manager> {
        self.pool
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open(self.now_ms())
    }

    /// Runs one command on a pooled connection, within the timeout and the breaker.
    /// Returns whether this call closed a tripped breaker (Redis is back), so the
    /// caller can resynchronise.
    pub async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<(T, bool), L2Error>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        // A client span by OpenTelemetry's database conventions, for trace exporters.
        let span = tracing::trace_span!(
            target: "napiatke_cache::redis",
            "redis",
            otel.name = what,
            otel.kind = "client",
            db.system.name = "redis",
            db.operation.name = what,
        );
        tracing::Instrument::instrument(self.run_inner(what, op), span).await
    }

    async fn run_inner<T, F, Fut>(&self, what: &'static str, op: F) -> Result<(T, bool), L2Error>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let now = self.now_ms();
        if !self.breaker.allows(now) {
            self.counters.skipped.fetch_add(1, Relaxed);
            return Err(L2Error::Open);
        }
        let started = Instant::now();
        let pool = self.pool();
        let outcome = match tokio::time::timeout(self.timeout, pool.get()).await {
            Err(_) => Err(L2Error::Timeout(self.timeout)),
            Ok(Err(bb8::RunError::TimedOut)) => Err(L2Error::Timeout(self.timeout)),
            Ok(Err(bb8::RunError::User(e))) if e.is_timeout() => {
                Err(L2Error::Timeout(self.timeout))
            }
            Ok(Err(bb8::RunError::User(e))) => Err(L2Error::Redis(e.to_string())),
            Ok(Ok(mut conn)) => {
                let left = self.timeout.saturating_sub(started.elapsed());
                // The multiplexed handle is a cheap clone of a channel sender.
                match tokio::time::timeout(left, op(conn.inner.clone())).await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => {
                        conn.broken = e.is_io_error()
                            || e.is_connection_dropped()
                            || e.is_unrecoverable_error()
                            || e.is_timeout();
                        if e.is_timeout() {
                            Err(L2Error::Timeout(self.timeout))
                        } else {
                            Err(L2Error::Redis(e.to_string()))
                        }
                    }
                    Err(_) => {
                        conn.broken = true;
                        Err(L2Error::Timeout(self.timeout))
                    }
                }
            }
        };
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match outcome {
            Ok(v) => {
                self.counters.latency.record(us);
                let recovered = self.breaker.success();
                if recovered {
                    tracing::info!(target: "napiatke_cache", "redis reachable again; L2 back in use");
                }
                Ok((v, recovered))
            }
            Err(e) => {
                match e {
                    L2Error::Timeout(_) => self.counters.timeouts.fetch_add(1, Relaxed),
                    _ => self.counters.errors.fetch_add(1, Relaxed),
                };
                if self.breaker.failure(self.now_ms()) {
                    // Redis is down: every idle connection in the pool is dead too,
                    // and each would fail one probe after Redis is back (the breaker
                    // reopening each time, up to its maximum: the failure drill saw
                    // Redis unused for over 6 s after its return). A new pool dials
                    // afresh; the old one goes with its last users.
                    *self
                        .pool
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Self::build_pool(&self.client, &self.config, self.timeout, self.pool_size);
                }
                self.log_throttled(what, &e);
                Err(e)
            }
        }
    }

    /// One warning per interval, with how many were swallowed since the last one: a
    /// dead Redis under load must not flood the log.
    pub fn log_throttled(&self, what: &str, e: &dyn std::fmt::Display) {
        let now = self.now_ms();
        let last = self.last_log_ms.load(Relaxed);
        if (last == 0 || now.saturating_sub(last) >= LOG_INTERVAL_MS)
            && self
                .last_log_ms
                .compare_exchange(last, now.max(1), Relaxed, Relaxed)
                .is_ok()
        {
            let suppressed = self.suppressed.swap(0, Relaxed);
            tracing::warn!(
                target: "napiatke_cache",
                op = what,
                error = %e,
                suppressed,
                "redis unavailable; serving from L1 and the loader"
            );
        } else {
            self.suppressed.fetch_add(1, Relaxed);
        }
    }

    pub async fn info(&self) -> Result<RedisInfo, L2Error> {
        let ((text, keys), _) = self
            .run("info", |mut c| async move {
                let text: String = redis::cmd("INFO").query_async(&mut c).await?;
                let keys: u64 = redis::cmd("DBSIZE").query_async(&mut c).await?;
                Ok((text, keys))
            })
            .await?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        let num = |name: &str| field(name).parse::<u64>().unwrap_or(0);
        let (hits, misses) = (num("keyspace_hits"), num("keyspace_misses"));
        Ok(RedisInfo {
            used_memory: field("used_memory_human"),
            keys,
            keyspace_hit_rate: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
            keyspace_hits: hits,
            keyspace_misses: misses,
            connected_clients: num("connected_clients"),
            version: field("redis_version"),
        })
    }

    /// Counts our keys per namespace with SCAN (never KEYS), stopping after
    /// `max_steps` cursor steps of 1,000 keys.
    pub async fn key_counts(&self, prefix: &str, max_steps: u32) -> Result<KeyCounts, L2Error> {
        let pattern = format!("{prefix}:*");
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut cursor: u64 = 0;
        let mut complete = false;
        for _ in 0..max_steps {
            let pattern = pattern.clone();
            let ((next, keys), _) = self
                .run("scan", |mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async::<(u64, Vec<String>)>(&mut c)
                        .await
                })
                .await?;
            for key in keys {
                let ns = key
                    .get(prefix.len() + 1..)
                    .and_then(|rest| rest.split(':').next())
                    .unwrap_or("?");
                *counts.entry(ns.to_owned()).or_default() += 1;
            }
            cursor = next;
            if cursor == 0 {
                complete = true;
                break;
            }
        }
        let mut per_namespace: Vec<(String, u64)> = counts.into_iter().collect();
        per_namespace.sort();
        Ok(KeyCounts {
            per_namespace,
            complete,
        })
    }

    /// Registers a wait for acknowledgements of our message `seq`; how many to wait
    /// for is known only once PUBLISH has answered (see [`L2::expect`]).
    pub fn wait_acks(&self, seq: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                seq,
                AckWait {
                    received: 0,
                    expected: None,
                    tx: Some(tx),
                },
            );
        rx
    }

    /// Sets how many acknowledgements message `seq` needs.
    pub fn expect(&self, seq: u64, expected: usize) {
        let mut acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = acks.get_mut(&seq) {
            w.expected = Some(expected);
            if w.received >= expected {
                if let Some(tx) = w.tx.take() {
                    let _ = tx.send(());
                }
                acks.remove(&seq);
            }
        }
    }

    pub fn forget_acks(&self, seq: u64) {
        self.acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&seq);
    }

    /// Counts one acknowledgement; the waiter is woken at the last one.
    pub fn ack(&self, seq: u64) {
        let mut acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = acks.get_mut(&seq) {
            w.received += 1;
            if w.expected.is_some_and(|e| w.received >= e) {
                if let Some(tx) = w.tx.take() {
                    let _ = tx.send(());
                }
                acks.remove(&seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_flight_when_the_breaker_opens_do_not_stretch_it() {
        let b = Breaker::new();
        for _ in 0..FAILURES_TO_OPEN {
            b.failure(0);
        }
        assert!(b.is_open(1) && b.allows(MIN_COOLDOWN_MS));
        // Eight requests that were already waiting on the dead connection fail now.
        for t in 1..=8 {
            b.failure(t);
        }
        assert!(
            b.allows(MIN_COOLDOWN_MS),
            "still one cool-down, not eight doublings"
        );
        // The probe after it fails: twice as long, and so on up to the cap.
        b.failure(MIN_COOLDOWN_MS);
        assert!(b.is_open(MIN_COOLDOWN_MS * 3 - 1) && b.allows(MIN_COOLDOWN_MS * 3));
        let mut now = MIN_COOLDOWN_MS * 3;
        for _ in 0..10 {
            b.failure(now);
            now = b.open_until_ms.load(Relaxed);
        }
        assert_eq!(b.cooldown_ms.load(Relaxed), MAX_COOLDOWN_MS);
        // Back: the first success closes it and the next outage starts short again.
        assert!(b.success());
        assert_eq!(b.cooldown_ms.load(Relaxed), MIN_COOLDOWN_MS);
        assert!(
            !b.success(),
            "a success with the breaker closed closes nothing"
        );
    }
}
