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
//! let cache = Cache::new(CacheConfig::default()).await; // no Redis URL: L1 only
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
//! # Ok::<(), std::sync::Arc<String>>(())
//! # }).unwrap();
//! ```

// One module per concern; each adds its part of `impl Cache`.
mod config;
pub mod envelope;
mod invalidate;
mod keys;
mod l1;
mod l2;
mod outage;
mod pubsub;
mod read;
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

pub use config::{CacheConfig, CacheError};
pub use keys::{hex, push_hex, Namespace};
pub use l2::{KeyCounts, L2Error, RedisInfo};
pub use stats::{CacheStats, LatencyStats, NamespaceStats, TierStats};

// What the concern modules share (each starts with `use super::*`).
use envelope::Header;
use invalidate::TOMBSTONE;
use keys::NsState;
use l1::{L1Entry, PerEntryTtl};
use l2::L2;
use outage::{Pending, PendingQueue};
use pubsub::{subscriber, Message};
use read::Store;
use stats::NsCounters;

/// The target of the per-lookup `tracing` events (fields `ns`, `tier` = "l1" | "l2",
/// `hit`, and `duration_us` for L2 only: an L1 lookup is not timed), which
/// napiatke-telemetry adds up per request.
pub const OP_TARGET: &str = "napiatke_cache::op";

/// The longest a Redis operation may take before the request goes on without it.
pub const MAX_OP_TIMEOUT: Duration = Duration::from_millis(50);

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

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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

    /// Empties this process's L1 (Redis untouched).
    pub fn clear_local(&self) {
        self.inner.epoch.fetch_add(1, Relaxed);
        self.inner.l1.invalidate_all();
        self.inner.epoch.fetch_add(1, Relaxed);
    }

    /// A number that moves whenever a value this process could read may have changed:
    /// any write or invalidation it makes, any it receives from another process, any
    /// L1 reset (not TTL expiry: an entry that expires is loaded again unchanged unless
    /// a write, which moves the epoch, came between). Something assembled from cached
    /// values at one epoch is still exact while the epoch stands. `None` when the
    /// cache is off (nothing may be kept then).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let cache = napiatke_cache::Cache::local(Default::default());
    /// let ns = cache.namespace("doc", 1, Duration::from_secs(60));
    /// let before = cache.epoch();
    /// cache.delete(&ns, "k").await;
    /// assert_ne!(cache.epoch(), before);
    /// # });
    /// ```
    #[must_use]
    pub fn epoch(&self) -> Option<u64> {
        (!self.inner.off).then(|| self.inner.epoch.load(Relaxed))
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
