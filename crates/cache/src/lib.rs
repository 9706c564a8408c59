//! A two-tier cache that knows nothing of the domain or HTTP: moka in process (L1),
//! Redis through a bb8 pool (L2), typed through serde.
//!
//! - Values are stored as a versioned binary envelope (see [`envelope`]): a type or
//!   namespace-version change reads old entries as misses, never as garbage.
//! - L1 is bounded by bytes and each entry expires no later than its Redis copy.
//! - [`Cache::get_or_compute`] runs the loader once per process for concurrent misses
//!   of one key (single flight), and recomputes shortly before expiry with a
//!   probability that rises as expiry nears (XFetch), so a popular key never
//!   stampedes the database when it expires.
//! - Absent results (`None`, empty lists, zero) are cached like any other value.
//! - Invalidation is exact: [`Cache::delete_many`] removes named keys (one DEL), and
//!   [`Cache::invalidate_namespace`] bumps a generation counter that is part of every
//!   key (one INCR), so nothing ever scans the keyspace.
//! - Other processes sharing the Redis drop their L1 copies through pub/sub before an
//!   invalidation returns (they acknowledge, bounded by a timeout).
//! - Redis down or slow: every operation is bounded by a timeout (at most 50 ms), a
//!   circuit breaker stops waiting on a dead server, errors are logged once per
//!   interval, requests are answered from L1 and the loader, and invalidations made
//!   meanwhile are replayed when Redis is back.
//! - Without a Redis URL the same API runs on L1 alone.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use napiatke_cache::{Cache, CacheConfig};
//!
//! let cache = Cache::new(CacheConfig::default()).await; // no REDIS_URL: L1 only
//! let subjects = cache.namespace("subjects", 1, Duration::from_secs(3600));
//! let loaded = cache
//!     .get_or_compute(&subjects, "all", || async { Ok::<_, String>(vec!["Maths".to_owned()]) })
//!     .await?;
//! assert_eq!(*loaded, ["Maths"]);
//! // The second call is answered from memory: the loader is not run.
//! let again = cache
//!     .get_or_compute(&subjects, "all", || async { Err::<Vec<String>, _>("not called".to_owned()) })
//!     .await?;
//! assert_eq!(*again, ["Maths"]);
//! assert_eq!(cache.stats().l1.hits, 1);
//! # Ok::<(), String>(())
//! # }).unwrap();
//! ```

pub mod envelope;
mod l2;
mod pubsub;
mod stats;
#[cfg(feature = "testing")]
pub mod testing;

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bb8_redis::redis;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use l2::{KeyCounts, L2Error, RedisInfo};
pub use stats::{CacheStats, LatencyStats, NamespaceStats, TierStats};

use envelope::Header;
use l2::L2;
use pubsub::{subscriber, Message};
use stats::NsCounters;

/// The target of the per-lookup `tracing` events (fields `ns`, `tier` = "l1" | "l2",
/// `hit`, `duration_us`), which napiatke-telemetry adds up per request.
pub const OP_TARGET: &str = "napiatke_cache::op";

/// The longest a Redis operation may take before the request goes on without it.
pub const MAX_OP_TIMEOUT: Duration = Duration::from_millis(50);

/// Invalidations queued while Redis was unreachable beyond this many keys are
/// replaced by bumping every namespace when it is back.
const MAX_PENDING_KEYS: usize = 10_000;

/// XFetch's beta: 1 is the paper's choice (refresh about one compute time early).
const EARLY_REFRESH_BETA: f64 = 1.0;

/// What an invalidated key holds in Redis for a while instead of being deleted, so a
/// load that read the old row before the write cannot store it after the write: the
/// guarded SET below refuses to overwrite it. Reads take it for a miss (it is no
/// envelope).
const TOMBSTONE: &[u8] = b"NPX";
const TOMBSTONE_TTL_MS: u64 = 5_000;

/// SET unless the key holds a tombstone (KEYS[1]; ARGV: value, PX, tombstone).
const GUARDED_SET: &str = "if redis.call('STRLEN', KEYS[1]) == string.len(ARGV[3]) \
and redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end \
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";

/// How to build a [`Cache`].
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `redis://host:port/db`; `None` runs L1 only.
    pub redis_url: Option<String>,
    /// Put before every Redis key and channel, so deployments (and tests) sharing a
    /// Redis never see each other's entries.
    pub prefix: String,
    /// L1 bound in bytes (encoded value plus key); 0 turns L1 off (every read goes
    /// to Redis: for measuring L2, or processes that must never serve a local copy).
    pub l1_capacity_bytes: u64,
    /// Per-operation Redis timeout; capped at [`MAX_OP_TIMEOUT`].
    pub op_timeout: Duration,
    /// How long an invalidation waits for other processes to drop their L1 copies.
    pub ack_timeout: Duration,
    /// Redis connections (each is multiplexed).
    pub pool_size: u32,
    /// How often the invalidation listener pings its connection, so a half-open one
    /// is noticed; a ping unanswered within a second (or this, if shorter) counts as
    /// a lost subscription.
    pub keepalive: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            redis_url: None,
            prefix: "napiatke".to_owned(),
            l1_capacity_bytes: 64 * 1024 * 1024,
            op_timeout: MAX_OP_TIMEOUT,
            ack_timeout: MAX_OP_TIMEOUT,
            pool_size: 8,
            keepalive: Duration::from_secs(5),
        }
    }
}

/// A family of keys with one TTL and one value type, invalidated together by
/// [`Cache::invalidate_namespace`]. Cheap to clone; create once at start-up with
/// [`Cache::namespace`].
#[derive(Clone)]
pub struct Namespace {
    state: Arc<NsState>,
    ttl: Duration,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.state.name)
            .field("version", &self.state.version)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Namespace {
    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// How long its entries live.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

struct NsState {
    name: String,
    version: u32,
    generation: AtomicU64,
    /// Whether `generation` has been read from Redis since (re)connecting.
    synced: AtomicBool,
    counters: NsCounters,
}

/// An L1 entry: the decoded value, so a hit costs a lookup and an `Arc` clone.
struct L1Entry {
    value: Arc<dyn Any + Send + Sync>,
    weight: u32,
    ttl: Duration,
    expires_at: Instant,
    delta: Duration,
    refreshing: AtomicBool,
}

/// Each entry lives for its own TTL (none at all with L1 turned off).
struct PerEntryTtl {
    enabled: bool,
}

impl PerEntryTtl {
    fn ttl(&self, value: &L1Entry) -> Duration {
        if self.enabled {
            value.ttl
        } else {
            Duration::ZERO
        }
    }
}

impl moka::Expiry<String, Arc<L1Entry>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<L1Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(self.ttl(value))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<L1Entry>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.ttl(value))
    }
}

/// How a computed or given value goes to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    /// A load after a miss: unless an invalidation left a tombstone.
    Fill,
    /// An explicit write: always.
    Overwrite,
    /// A load that overlapped an invalidation: not at all, and no L1 life.
    Discard,
}

struct AckGuard<'a> {
    l2: &'a L2,
    seq: u64,
}

impl Drop for AckGuard<'_> {
    fn drop(&mut self) {
        self.l2.forget_acks(self.seq);
    }
}

/// Invalidations Redis has not seen yet.
#[derive(Default)]
struct PendingQueue {
    list: Vec<Pending>,
    keys: usize,
    /// Too many to replay one by one: bump every namespace instead.
    overflowed: bool,
}

impl PendingQueue {
    fn push(&mut self, p: Pending) {
        if self.overflowed {
            return;
        }
        if let Pending::Keys(k) = &p {
            self.keys += k.len();
        }
        if self.keys > MAX_PENDING_KEYS {
            self.list.clear();
            self.overflowed = true;
        } else {
            self.list.push(p);
        }
    }

    /// Everything queued, and whether it overflowed; the queue is empty after.
    fn take(&mut self) -> (Vec<Pending>, bool) {
        let out = std::mem::take(self);
        (out.list, out.overflowed)
    }
}

enum Pending {
    Keys(Vec<String>),
    Namespace(String),
}

struct Inner {
    id: u64,
    prefix: String,
    l1: moka::future::Cache<String, Arc<L1Entry>>,
    l1_capacity: u64,
    /// No L1 and no Redis: nothing is kept, loaders run every time (a baseline).
    off: bool,
    l2: Option<L2>,
    ack_timeout: Duration,
    keepalive: Duration,
    /// Times L1 was emptied because messages may have been missed.
    l1_resets: AtomicU64,
    namespaces: RwLock<HashMap<String, Arc<NsState>>>,
    /// Bumped by every invalidation seen here; a load that overlapped one is returned
    /// but not stored, so a read racing a write cannot cache the old row again.
    epoch: AtomicU64,
    seq: AtomicU64,
    pending: Mutex<PendingQueue>,
    has_pending: AtomicBool,
    subscriber: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self
            .subscriber
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// The cache. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.inner.prefix)
            .field("redis", &self.inner.l2)
            .finish_non_exhaustive()
    }
}

/// Errors building a cache: only a malformed Redis URL (an unreachable Redis is not
/// an error, the cache degrades to L1 and retries).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// REDIS_URL cannot be parsed.
    #[error("REDIS_URL is not a Redis URL: {0}")]
    BadUrl(String),
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A TTL as Redis's PX (milliseconds, at least 1).
fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// SET `key` unless it holds a tombstone: how loads fill Redis.
fn guarded_set(key: &str, bytes: Vec<u8>, px: u64) -> redis::Cmd {
    redis::cmd("EVAL")
        .arg(GUARDED_SET)
        .arg(1)
        .arg(key)
        .arg(bytes)
        .arg(px)
        .arg(TOMBSTONE)
        .to_owned()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Cache {
    /// A cache for `config`. With a Redis URL it starts the pub/sub listener on the
    /// current tokio runtime (so call it from inside one) and never waits for Redis:
    /// if Redis is down, it is used once it answers.
    ///
    /// A malformed URL is logged and the cache runs on L1 alone; use
    /// [`Cache::try_new`] to refuse it instead.
    pub async fn new(config: CacheConfig) -> Cache {
        match Cache::try_new(config.clone()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(target: "napiatke_cache", error = %e, "running on L1 only");
                let mut config = config;
                config.redis_url = None;
                Cache::build(config, None)
            }
        }
    }

    /// Like [`Cache::new`], but a malformed Redis URL is an error.
    pub async fn try_new(config: CacheConfig) -> Result<Cache, CacheError> {
        let l2 = match &config.redis_url {
            None => None,
            Some(url) => Some(
                L2::new(
                    url,
                    &config.prefix,
                    config.op_timeout.min(MAX_OP_TIMEOUT),
                    config.pool_size.max(1),
                )
                .map_err(|e| CacheError::BadUrl(e.to_string()))?,
            ),
        };
        let cache = Cache::build(config, l2);
        if cache.inner.l2.is_some() {
            let task = tokio::spawn(subscriber(Arc::downgrade(&cache.inner)));
            *cache
                .inner
                .subscriber
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(task.abort_handle());
            // Give the listener a moment so invalidations from the first requests
            // are heard; never more than one operation timeout.
            let deadline = Instant::now() + MAX_OP_TIMEOUT;
            while !cache.subscribed() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Ok(cache)
    }

    /// An in-process cache (L1 only), whatever the config's Redis URL. Needs no
    /// runtime to build.
    #[must_use]
    pub fn local(config: CacheConfig) -> Cache {
        Cache::build(config, None)
    }

    fn build(config: CacheConfig, l2: Option<L2>) -> Cache {
        let l1 = moka::future::Cache::builder()
            .max_capacity(config.l1_capacity_bytes.max(1))
            .weigher(|k: &String, v: &Arc<L1Entry>| {
                v.weight
                    .saturating_add(u32::try_from(k.len()).unwrap_or(u32::MAX))
            })
            .expire_after(PerEntryTtl {
                enabled: config.l1_capacity_bytes > 0,
            })
            .build();
        Cache {
            inner: Arc::new(Inner {
                id: fastrand::u64(..),
                prefix: config.prefix,
                l1,
                l1_capacity: config.l1_capacity_bytes,
                off: config.l1_capacity_bytes == 0 && l2.is_none(),
                l2,
                ack_timeout: config.ack_timeout.min(Duration::from_secs(1)),
                keepalive: config.keepalive.max(Duration::from_millis(10)),
                l1_resets: AtomicU64::new(0),
                namespaces: RwLock::new(HashMap::new()),
                epoch: AtomicU64::new(0),
                seq: AtomicU64::new(0),
                pending: Mutex::new(PendingQueue::default()),
                has_pending: AtomicBool::new(false),
                subscriber: Mutex::new(None),
            }),
        }
    }

    /// Whether a Redis tier is configured (it may still be down).
    #[must_use]
    pub fn has_redis(&self) -> bool {
        self.inner.l2.is_some()
    }

    /// Whether the pub/sub listener is connected (always false without Redis).
    #[must_use]
    pub fn subscribed(&self) -> bool {
        self.inner
            .l2
            .as_ref()
            .is_some_and(|l2| l2.subscribed.load(Relaxed))
    }

    /// The deployment prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Declares a namespace: `name` (lower-case letters, digits, `_` and `-`),
    /// `version` (bump it when the cached type changes shape) and the TTL of its
    /// entries. Declaring the same name again shares its generation and counters.
    ///
    /// # Panics
    /// On a name outside that alphabet or the reserved name `gen`: namespaces are
    /// fixed in code, so this is a programming error found at start-up.
    #[must_use]
    #[allow(clippy::panic)]
    pub fn namespace(&self, name: &str, version: u32, ttl: Duration) -> Namespace {
        assert!(
            !name.is_empty()
                && name != "gen"
                && name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'),
            "bad cache namespace name {name:?}"
        );
        let key = format!("{name}:{version}");
        let mut map = self
            .inner
            .namespaces
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let state = map
            .entry(key)
            .or_insert_with(|| {
                Arc::new(NsState {
                    name: name.to_owned(),
                    version,
                    generation: AtomicU64::new(0),
                    synced: AtomicBool::new(false),
                    counters: NsCounters::default(),
                })
            })
            .clone();
        Namespace { state, ttl }
    }

    fn full_key(&self, ns: &Namespace, key: &str) -> String {
        let s = &ns.state;
        format!(
            "{}:{}:{}:{}:{}",
            self.inner.prefix,
            s.name,
            s.version,
            s.generation.load(Relaxed),
            key
        )
    }

    fn gen_key(&self, name: &str) -> String {
        format!("{}:gen:{name}", self.inner.prefix)
    }

    /// One INCR of a namespace's generation counter: the new generation.
    async fn incr_generation(&self, l2: &L2, name: &str) -> Result<(u64, bool), L2Error> {
        let key = self.gen_key(name);
        l2.run("incr generation", |mut c| async move {
            redis::cmd("INCR")
                .arg(&key)
                .query_async::<u64>(&mut c)
                .await
        })
        .await
    }

    /// Reads the namespace's generation from Redis once after each (re)connection.
    async fn sync_generation(&self, ns: &Namespace) {
        let Some(l2) = &self.inner.l2 else { return };
        if ns.state.synced.load(Relaxed) {
            return;
        }
        let key = self.gen_key(&ns.state.name);
        if let Ok((gen, recovered)) = l2
            .run("get generation", |mut c| async move {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<u64>>(&mut c)
                    .await
            })
            .await
        {
            // Never backwards: an INCR or a message may have raised it meanwhile.
            ns.state.generation.fetch_max(gen.unwrap_or(0), Relaxed);
            ns.state.synced.store(true, Relaxed);
            self.after_success(recovered).await;
        }
    }

    fn trace(ns: &Namespace, tier: &'static str, hit: bool, started: Instant) {
        tracing::debug!(
            target: OP_TARGET,
            ns = %ns.state.name,
            tier,
            hit,
            duration_us = micros(started.elapsed()),
        );
    }

    /// XFetch: recompute early with probability rising as expiry nears, scaled by how
    /// long the value took to compute.
    fn should_refresh(entry: &L1Entry) -> bool {
        if entry.delta.is_zero() {
            return false;
        }
        let now = Instant::now();
        let left = entry
            .expires_at
            .saturating_duration_since(now)
            .as_secs_f64();
        let delta = entry.delta.as_secs_f64() * EARLY_REFRESH_BETA;
        // -ln(u) exceeds 20 with probability e^-20: skip the logarithm when far off.
        if left > delta * 20.0 {
            return false;
        }
        let u = 1.0 - fastrand::f64(); // (0, 1]
        delta * -u.ln() >= left
    }

    fn l1_entry<T: Send + Sync + 'static>(
        value: Arc<T>,
        weight: usize,
        ttl: Duration,
        delta: Duration,
    ) -> Arc<L1Entry> {
        Arc::new(L1Entry {
            value,
            weight: u32::try_from(weight + 64).unwrap_or(u32::MAX),
            ttl,
            expires_at: Instant::now()
                .checked_add(ttl)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600)),
            delta,
            refreshing: AtomicBool::new(false),
        })
    }

    /// The envelope for `value` (header, type tag, postcard); `None`, logged, when
    /// the value cannot be encoded (it then stays out of Redis).
    fn encode_entry<T: Serialize>(ns: &Namespace, value: &T, delta: Duration) -> Option<Vec<u8>> {
        let header = Header {
            expires_at_ms: unix_ms() + micros(ns.ttl) / 1000,
            delta_ms: u32::try_from(delta.as_millis()).unwrap_or(u32::MAX),
        };
        let tag = envelope::type_tag::<T>(ns.state.version);
        match envelope::encode(value, tag, header) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::error!(target: "napiatke_cache", ns = %ns.state.name, error = %e, "value cannot be encoded; kept in L1 only");
                None
            }
        }
    }

    /// The L1 entry for bytes read from Redis, or `None` when they are not a live
    /// entry of this type (a miss). It never outlives the Redis copy, and has no life
    /// at all when not `fresh` (an invalidation overlapped the read).
    fn entry_from_redis<T>(ns: &Namespace, bytes: &[u8], fresh: bool) -> Option<Arc<L1Entry>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let (value, header) =
            envelope::decode::<T>(bytes, envelope::type_tag::<T>(ns.state.version))?;
        let left = header.expires_at_ms.checked_sub(unix_ms())?;
        let ttl = if fresh {
            ns.ttl.min(Duration::from_millis(left))
        } else {
            Duration::ZERO
        };
        let delta = Duration::from_millis(u64::from(header.delta_ms));
        Some(Cache::l1_entry(Arc::new(value), bytes.len(), ttl, delta))
    }

    fn record_load(ns: &Namespace, delta: Duration) {
        let c = &ns.state.counters;
        c.loads.fetch_add(1, Relaxed);
        c.load_us.fetch_add(micros(delta), Relaxed);
    }

    /// The value under `key`, from L1 or else Redis (which then fills L1).
    pub async fn get<T>(&self, ns: &Namespace, key: &str) -> Option<Arc<T>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.sync_generation(ns).await;
        let full = self.full_key(ns, key);
        if let Some(v) = self.l1_get::<T>(ns, &full).await {
            return Some(v);
        }
        let entry = self.l2_get::<T>(ns, &full).await?;
        self.inner.l1.insert(full, Arc::clone(&entry)).await;
        entry.value.clone().downcast::<T>().ok()
    }

    async fn l1_get<T: Send + Sync + 'static>(&self, ns: &Namespace, full: &str) -> Option<Arc<T>> {
        let started = Instant::now();
        let hit = self
            .inner
            .l1
            .get(full)
            .await
            .and_then(|e| e.value.clone().downcast::<T>().ok());
        ns.state.counters.l1.record(hit.is_some());
        Cache::trace(ns, "l1", hit.is_some(), started);
        hit
    }

    async fn l2_get<T>(&self, ns: &Namespace, full: &str) -> Option<Arc<L1Entry>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let l2 = self.inner.l2.as_ref()?;
        let started = Instant::now();
        let epoch = self.inner.epoch.load(Relaxed);
        let key = full.to_owned();
        let bytes = match l2
            .run("get", |mut c| async move {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<Vec<u8>>>(&mut c)
                    .await
            })
            .await
        {
            Ok((bytes, recovered)) => {
                self.after_success(recovered).await;
                // Read before the replay of missed invalidations: not to be trusted.
                if recovered {
                    None
                } else {
                    bytes
                }
            }
            Err(_) => None,
        };
        // An invalidation seen while the GET was in flight may be of this very key.
        let fresh = self.inner.epoch.load(Relaxed) == epoch;
        let entry = bytes
            .as_deref()
            .and_then(|b| Cache::entry_from_redis::<T>(ns, b, fresh));
        ns.state.counters.l2.record(entry.is_some());
        Cache::trace(ns, "l2", entry.is_some(), started);
        entry
    }

    /// Stores `value` under `key` in both tiers and makes other processes drop their
    /// L1 copy of the key.
    pub async fn set<T>(&self, ns: &Namespace, key: &str, value: T) -> Arc<T>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.sync_generation(ns).await;
        let full = self.full_key(ns, key);
        let value = Arc::new(value);
        // A load racing this write must not store what it read before it.
        self.inner.epoch.fetch_add(1, Relaxed);
        let entry = self
            .store(
                ns,
                &full,
                Arc::clone(&value),
                Duration::ZERO,
                Store::Overwrite,
            )
            .await;
        self.inner.l1.insert(full.clone(), entry).await;
        self.publish(Message::Keys(vec![full])).await;
        value
    }

    /// Encodes and writes to Redis; returns the L1 entry to keep (one that expires at
    /// once for [`Store::Discard`]).
    async fn store<T>(
        &self,
        ns: &Namespace,
        full: &str,
        value: Arc<T>,
        delta: Duration,
        mode: Store,
    ) -> Arc<L1Entry>
    where
        T: Serialize + Send + Sync + 'static,
    {
        let ttl = ns.ttl;
        let bytes = Cache::encode_entry(ns, value.as_ref(), delta);
        let len = bytes.as_ref().map_or(0, Vec::len);
        let keep = mode != Store::Discard;
        if let (true, Some(bytes), Some(l2)) = (keep, bytes, &self.inner.l2) {
            let cmd = match mode {
                // A fill never overwrites a tombstone: what it loaded may predate the
                // invalidation that wrote it.
                Store::Fill => guarded_set(full, bytes, px(ttl)),
                _ => redis::cmd("SET")
                    .arg(full)
                    .arg(bytes)
                    .arg("PX")
                    .arg(px(ttl))
                    .to_owned(),
            };
            let outcome = l2
                .run("set", |mut c| async move {
                    cmd.query_async::<redis::Value>(&mut c).await
                })
                .await;
            if let Ok((_, recovered)) = outcome {
                self.after_success(recovered).await;
            }
        }
        Cache::l1_entry(value, len, if keep { ttl } else { Duration::ZERO }, delta)
    }

    /// The value under `key`, or the loader's, stored in both tiers. Concurrent misses
    /// of one key in this process run the loader once; the others wait for it. A
    /// loader error is returned (to every waiter) and nothing is stored.
    pub async fn get_or_compute<T, E, F, Fut>(
        &self,
        ns: &Namespace,
        key: &str,
        loader: F,
    ) -> Result<Arc<T>, E>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if self.inner.off {
            // Not even single flight: this mode is the uncached baseline.
            ns.state.counters.l1.record(false);
            let (value, _) = self.timed_load(ns, loader).await?;
            return Ok(value);
        }
        self.sync_generation(ns).await;
        let full = self.full_key(ns, key);
        let started = Instant::now();
        if let Some(entry) = self.inner.l1.get(&full).await {
            if let Ok(value) = entry.value.clone().downcast::<T>() {
                ns.state.counters.l1.record(true);
                Cache::trace(ns, "l1", true, started);
                if Cache::should_refresh(&entry)
                    && entry
                        .refreshing
                        .compare_exchange(false, true, Relaxed, Relaxed)
                        .is_ok()
                {
                    ns.state.counters.early_refreshes.fetch_add(1, Relaxed);
                    return match self.compute(ns, &full, loader).await {
                        Ok((fresh, entry)) => {
                            self.inner.l1.insert(full, entry).await;
                            Ok(fresh)
                        }
                        // The old value is still valid: serve it and let a later
                        // request try again.
                        Err(_) => {
                            entry.refreshing.store(false, Relaxed);
                            Ok(value)
                        }
                    };
                }
                return Ok(value);
            }
        }
        ns.state.counters.l1.record(false);
        Cache::trace(ns, "l1", false, started);
        // The loader stays here so that, should another type sit under this key (a
        // caller bug), it can still answer uncached instead of failing the request.
        let mut loader = Some(loader);
        let slot = &mut loader;
        let entry = self
            .inner
            .l1
            .try_get_with(full.clone(), async {
                if let Some(entry) = self.l2_get::<T>(ns, &full).await {
                    return Ok(entry);
                }
                match slot.take() {
                    Some(f) => self.compute(ns, &full, f).await.map(|(_, e)| e),
                    None => unreachable_loader(),
                }
            })
            .await
            .map_err(|e: Arc<E>| (*e).clone())?;
        match (entry.value.clone().downcast::<T>(), loader) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(f)) => {
                tracing::error!(target: "napiatke_cache", ns = %ns.state.name, "two value types cached under one key; answering uncached");
                Ok(Arc::new(f().await?))
            }
            (Err(_), None) => unreachable_loader(),
        }
    }

    async fn compute<T, E, F, Fut>(
        &self,
        ns: &Namespace,
        full: &str,
        loader: F,
    ) -> Result<(Arc<T>, Arc<L1Entry>), E>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let epoch = self.inner.epoch.load(Relaxed);
        let (value, delta) = self.timed_load(ns, loader).await?;
        let mode = if self.inner.epoch.load(Relaxed) == epoch {
            Store::Fill
        } else {
            Store::Discard
        };
        let entry = self.store(ns, full, Arc::clone(&value), delta, mode).await;
        Ok((value, entry))
    }

    /// The values under `keys`, in order: L1 first, one MGET for what L1 lacks, and
    /// one `loader` call for what Redis lacks too, which gets the positions (in
    /// `keys`) to compute and returns their values in that order; they are stored in
    /// both tiers (one pipelined round trip). For lists of items cached one by one,
    /// such as a page's per-row figures. No single flight across batches. A position
    /// the loader gave no value for (it returned fewer) is `None`.
    pub async fn get_or_compute_many<T, E, F, Fut>(
        &self,
        ns: &Namespace,
        keys: &[String],
        loader: F,
    ) -> Result<Vec<Option<Arc<T>>>, E>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, E>>,
    {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.sync_generation(ns).await;
        let full: Vec<String> = keys.iter().map(|k| self.full_key(ns, k)).collect();
        let mut out: Vec<Option<Arc<T>>> = Vec::with_capacity(keys.len());
        for f in &full {
            out.push(if self.inner.off {
                None
            } else {
                self.l1_get::<T>(ns, f).await
            });
        }
        let epoch = self.inner.epoch.load(Relaxed);
        let mut missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if let (Some(l2), false) = (&self.inner.l2, missing.is_empty()) {
            let started = Instant::now();
            let wanted: Vec<String> = missing.iter().map(|&i| full[i].clone()).collect();
            let got = l2
                .run("mget", |mut c| async move {
                    redis::cmd("MGET")
                        .arg(&wanted)
                        .query_async::<Vec<Option<Vec<u8>>>>(&mut c)
                        .await
                })
                .await;
            let (found, recovered) = match got {
                Ok((found, recovered)) => (found, recovered),
                Err(_) => (Vec::new(), false),
            };
            self.after_success(recovered).await;
            let fresh = !recovered && self.inner.epoch.load(Relaxed) == epoch;
            let mut still = Vec::new();
            for (n, &i) in missing.iter().enumerate() {
                let entry = found
                    .get(n)
                    .and_then(Option::as_deref)
                    .filter(|_| !recovered)
                    .and_then(|b| Cache::entry_from_redis::<T>(ns, b, fresh));
                ns.state.counters.l2.record(entry.is_some());
                Cache::trace(ns, "l2", entry.is_some(), started);
                match entry {
                    Some(entry) => {
                        out[i] = entry.value.clone().downcast::<T>().ok();
                        if fresh {
                            self.inner.l1.insert(full[i].clone(), entry).await;
                        }
                    }
                    None => still.push(i),
                }
            }
            missing = still;
        }
        if !missing.is_empty() {
            let epoch = self.inner.epoch.load(Relaxed);
            let started = Instant::now();
            let values = loader(missing.clone()).await?;
            let delta = started.elapsed();
            Cache::record_load(ns, delta);
            let keep = !self.inner.off && self.inner.epoch.load(Relaxed) == epoch;
            let mut fills = redis::pipe();
            let mut filled = 0;
            for (&i, v) in missing.iter().zip(values) {
                let v = Arc::new(v);
                if let (true, Some(bytes)) = (keep, Cache::encode_entry(ns, v.as_ref(), delta)) {
                    let entry = Cache::l1_entry(Arc::clone(&v), bytes.len(), ns.ttl, delta);
                    self.inner.l1.insert(full[i].clone(), entry).await;
                    fills
                        .add_command(guarded_set(&full[i], bytes, px(ns.ttl)))
                        .ignore();
                    filled += 1;
                }
                out[i] = Some(v);
            }
            if let (Some(l2), true) = (&self.inner.l2, filled > 0) {
                let outcome = l2
                    .run("fill many", |mut c| async move {
                        fills.query_async::<()>(&mut c).await
                    })
                    .await;
                if let Ok(((), recovered)) = outcome {
                    self.after_success(recovered).await;
                }
            }
        }
        Ok(out)
    }

    async fn timed_load<T, E, F, Fut>(
        &self,
        ns: &Namespace,
        loader: F,
    ) -> Result<(Arc<T>, Duration), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let value = Arc::new(loader().await?);
        let delta = started.elapsed();
        Cache::record_load(ns, delta);
        Ok((value, delta))
    }

    /// Removes one key from both tiers and from every process's L1.
    pub async fn delete(&self, ns: &Namespace, key: &str) {
        self.delete_many(ns, &[key]).await;
    }

    /// Removes keys from both tiers (one DEL) and from every process's L1 (one
    /// PUBLISH, acknowledged). Costs O(keys); no scan.
    pub async fn delete_many<K: AsRef<str>>(&self, ns: &Namespace, keys: &[K]) {
        if keys.is_empty() {
            return;
        }
        self.sync_generation(ns).await;
        let full: Vec<String> = keys.iter().map(|k| self.full_key(ns, k.as_ref())).collect();
        ns.state
            .counters
            .invalidations
            .fetch_add(full.len() as u64, Relaxed);
        // Redis first, then the epoch, then L1: a read of the old Redis value that
        // overlaps any of it sees the epoch move and keeps nothing.
        self.inner.epoch.fetch_add(1, Relaxed);
        match self.tombstone(&full).await {
            Some(recovered) => self.after_success(recovered).await,
            None => self.queue(Pending::Keys(full.clone())),
        }
        self.inner.epoch.fetch_add(1, Relaxed);
        for k in &full {
            self.inner.l1.invalidate(k).await;
        }
        self.publish(Message::Keys(full)).await;
    }

    /// Replaces keys by short-lived tombstones (one pipelined round trip). Returns
    /// `None` when Redis could not be reached, else whether this call found Redis
    /// back after an outage.
    async fn tombstone(&self, full: &[String]) -> Option<bool> {
        let Some(l2) = &self.inner.l2 else {
            return Some(false);
        };
        let keys = full.to_vec();
        match l2
            .run("invalidate", |mut c| async move {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("SET")
                        .arg(k)
                        .arg(TOMBSTONE)
                        .arg("PX")
                        .arg(TOMBSTONE_TTL_MS)
                        .ignore();
                }
                pipe.query_async::<()>(&mut c).await
            })
            .await
        {
            Ok(((), recovered)) => Some(recovered),
            Err(_) => None,
        }
    }

    /// Invalidates every key of a namespace at once by bumping its generation (one
    /// INCR): old entries become unreachable and expire on their own.
    pub async fn invalidate_namespace(&self, ns: &Namespace) {
        self.inner.epoch.fetch_add(1, Relaxed);
        ns.state.counters.invalidations.fetch_add(1, Relaxed);
        let s = &ns.state;
        let local = s.generation.fetch_add(1, Relaxed) + 1;
        if let Some(l2) = &self.inner.l2 {
            match self.incr_generation(l2, &s.name).await {
                Ok((gen, recovered)) => {
                    s.generation.fetch_max(gen, Relaxed);
                    s.synced.store(true, Relaxed);
                    self.after_success(recovered).await;
                }
                Err(_) => self.queue(Pending::Namespace(s.name.clone())),
            }
        }
        let gen = s.generation.load(Relaxed).max(local);
        self.publish(Message::Namespace(s.name.clone(), s.version, gen))
            .await;
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, PendingQueue> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn queue(&self, p: Pending) {
        self.pending().push(p);
        self.inner.has_pending.store(true, Relaxed);
    }

    /// After any Redis call that worked: if it closed a tripped breaker, resynchronise;
    /// if invalidations are waiting, replay them now.
    async fn after_success(&self, recovered: bool) {
        if recovered {
            self.resync(true).await;
        } else if self.inner.has_pending.load(Relaxed) {
            self.replay_pending().await;
        }
    }

    /// After Redis comes back: replay invalidations it missed, re-read generations
    /// and forget L1 (other processes' messages may have been lost meanwhile).
    /// `counted`: whether it shows in the stats as an L1 reset.
    async fn resync(&self, counted: bool) {
        if counted {
            self.inner.l1_resets.fetch_add(1, Relaxed);
        }
        self.replay_pending().await;
        let namespaces: Vec<Arc<NsState>> = self.namespace_states();
        for ns in &namespaces {
            ns.synced.store(false, Relaxed);
        }
        self.inner.epoch.fetch_add(1, Relaxed);
        self.inner.l1.invalidate_all();
    }

    fn namespace_states(&self) -> Vec<Arc<NsState>> {
        self.inner
            .namespaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Writes the invalidations Redis missed (tombstones, generation bumps) and tells
    /// the other processes; what fails again stays queued.
    async fn replay_pending(&self) {
        let (list, overflowed) = {
            let mut pending = self.pending();
            self.inner.has_pending.store(false, Relaxed);
            pending.take()
        };
        if list.is_empty() && !overflowed {
            return;
        }
        let Some(l2) = &self.inner.l2 else { return };
        let mut bump: Vec<String> = Vec::new();
        for p in list {
            match p {
                Pending::Keys(keys) => {
                    if self.tombstone(&keys).await.is_some() {
                        self.publish(Message::Keys(keys)).await;
                    } else {
                        self.queue(Pending::Keys(keys));
                    }
                }
                Pending::Namespace(name) => bump.push(name),
            }
        }
        if overflowed {
            bump = self
                .namespace_states()
                .iter()
                .map(|n| n.name.clone())
                .collect();
        }
        bump.sort();
        bump.dedup();
        for name in bump {
            match self.incr_generation(l2, &name).await {
                Ok((gen, _)) => {
                    for ns in self.namespace_states().iter().filter(|n| n.name == name) {
                        ns.generation.fetch_max(gen, Relaxed);
                        self.publish(Message::Namespace(name.clone(), ns.version, gen))
                            .await;
                    }
                }
                Err(_) => self.queue(Pending::Namespace(name)),
            }
        }
    }

    async fn publish(&self, message: Message) {
        let Some(l2) = &self.inner.l2 else { return };
        let seq = self.inner.seq.fetch_add(1, Relaxed);
        let payload = message.encode(self.inner.id, seq);
        let waiting = l2.wait_acks(seq);
        // Forgets the wait however this ends, a cancelled request included.
        let _forget = AckGuard { l2, seq };
        let channel = l2.channel.clone();
        match l2
            .run("publish", |mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(payload)
                    .query_async::<usize>(&mut c)
                    .await
            })
            .await
        {
            Ok((receivers, _)) => {
                // Every subscriber acknowledges, this process included, so the count
                // needs no guess about whether our own listener is connected.
                l2.expect(seq, receivers);
                if tokio::time::timeout(self.inner.ack_timeout, waiting)
                    .await
                    .is_err()
                {
                    l2.log_throttled(
                        "invalidation acknowledgements",
                        &"not every process answered in time",
                    );
                }
            }
            Err(_) => match message {
                Message::Keys(keys) => self.queue(Pending::Keys(keys)),
                Message::Namespace(name, _, _) => self.queue(Pending::Namespace(name)),
            },
        }
    }

    /// Applies an invalidation from another process and acknowledges it.
    async fn receive(&self, payload: &[u8]) {
        let Some(l2) = &self.inner.l2 else { return };
        let Some((sender, seq, message)) = Message::decode(payload) else {
            return;
        };
        let own = sender == self.inner.id;
        if !own {
            l2.counters.invalidations_received.fetch_add(1, Relaxed);
            self.inner.epoch.fetch_add(1, Relaxed);
        }
        match message {
            _ if own => {}
            Message::Keys(keys) => {
                for k in keys {
                    self.inner.l1.invalidate(&k).await;
                }
            }
            Message::Namespace(name, version, gen) => {
                let state = self
                    .inner
                    .namespaces
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&format!("{name}:{version}"))
                    .cloned();
                if let Some(s) = state {
                    s.generation.fetch_max(gen, Relaxed);
                }
            }
        }
        let channel = l2.ack_channel.clone();
        let mut ack = Vec::with_capacity(16);
        ack.extend_from_slice(&sender.to_le_bytes());
        ack.extend_from_slice(&seq.to_le_bytes());
        let _ = l2
            .run("ack", |mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(ack)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
    }

    fn receive_ack(&self, payload: &[u8]) {
        let Some(l2) = &self.inner.l2 else { return };
        let (Some(sender), Some(seq)) = (payload.get(0..8), payload.get(8..16)) else {
            return;
        };
        let sender = u64::from_le_bytes(sender.try_into().unwrap_or_default());
        if sender == self.inner.id {
            l2.ack(u64::from_le_bytes(seq.try_into().unwrap_or_default()));
        }
    }

    /// Empties this process's L1 (Redis untouched).
    pub fn clear_local(&self) {
        self.inner.l1.invalidate_all();
    }

    /// Counters and sizes, per tier and per namespace.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let mut namespaces: Vec<NamespaceStats> = self
            .inner
            .namespaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|s| s.counters.snapshot(&s.name, s.generation.load(Relaxed)))
            .collect();
        namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = CacheStats {
            redis_configured: self.inner.l2.is_some(),
            l1_entries: self.inner.l1.entry_count(),
            l1_bytes: self.inner.l1.weighted_size(),
            l1_capacity: self.inner.l1_capacity,
            l1_resets: self.inner.l1_resets.load(Relaxed),
            ..CacheStats::default()
        };
        for n in &namespaces {
            out.l1.add(n.l1);
            out.l2.add(n.l2);
        }
        if let Some(l2) = &self.inner.l2 {
            let (latency, errors, timeouts, skipped, received) = l2.counters.snapshot();
            out.breaker_open = l2.breaker_open();
            out.l2_latency = latency;
            out.l2_errors = errors;
            out.l2_timeouts = timeouts;
            out.l2_skipped = skipped;
            out.invalidations_received = received;
            out.subscribed = l2.subscribed.load(Relaxed);
            out.reconnects = l2.counters.reconnects.load(Relaxed);
            out.last_reconnect_unix_ms =
                Some(l2.counters.last_reconnect_unix_ms.load(Relaxed)).filter(|&ms| ms > 0);
        }
        out.namespaces = namespaces;
        out
    }

    /// Brings L1's size figures up to date (moka applies writes lazily).
    pub async fn sync_stats(&self) {
        self.inner.l1.run_pending_tasks().await;
    }

    /// Redis's own figures, or why there are none.
    pub async fn redis_info(&self) -> Option<Result<RedisInfo, L2Error>> {
        Some(self.inner.l2.as_ref()?.info().await)
    }

    /// Our keys in Redis per namespace, from at most `max_steps` SCAN steps.
    pub async fn key_counts(&self, max_steps: u32) -> Option<Result<KeyCounts, L2Error>> {
        Some(
            self.inner
                .l2
                .as_ref()?
                .key_counts(&self.inner.prefix, max_steps)
                .await,
        )
    }
}

/// The init future runs at most once and only while the loader is still in its slot;
/// an entry of another type can only come from another caller, whose init ran instead.
#[allow(clippy::panic)]
fn unreachable_loader<T>() -> T {
    panic!("napiatke-cache: loader consumed twice")
}
