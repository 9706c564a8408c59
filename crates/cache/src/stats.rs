//! Counters kept by the cache itself: Redis's INFO counts every client's keys, so
//! per-namespace figures must come from here.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Hits and misses of one tier.
#[derive(Debug, Default)]
pub(crate) struct Tier {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl Tier {
    pub fn record(&self, hit: bool) {
        if hit {
            self.hits.fetch_add(1, Relaxed);
        } else {
            self.misses.fetch_add(1, Relaxed);
        }
    }

    fn snapshot(&self) -> TierStats {
        TierStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
        }
    }
}

/// Counters of one namespace.
#[derive(Debug, Default)]
pub(crate) struct NsCounters {
    pub l1: Tier,
    pub l2: Tier,
    pub loads: AtomicU64,
    pub load_us: AtomicU64,
    pub early_refreshes: AtomicU64,
    pub invalidations: AtomicU64,
}

impl NsCounters {
    pub fn snapshot(&self, name: &str, generation: u64) -> NamespaceStats {
        NamespaceStats {
            name: name.to_owned(),
            generation,
            l1: self.l1.snapshot(),
            l2: self.l2.snapshot(),
            loads: self.loads.load(Relaxed),
            load_us: self.load_us.load(Relaxed),
            early_refreshes: self.early_refreshes.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
        }
    }
}

/// Latency of Redis operations in power-of-two microsecond buckets: cheap to record
/// from any thread, precise enough for p50/p99.
#[derive(Debug)]
pub(crate) struct Latency {
    buckets: [AtomicU64; 24],
    sum_us: AtomicU64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl Latency {
    pub fn record(&self, us: u64) {
        let i = (64 - us.leading_zeros() as usize).min(self.buckets.len() - 1);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    fn snapshot(&self) -> LatencyStats {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let count: u64 = counts.iter().sum();
        // The upper edge of the bucket holding the q-th operation.
        let quantile = |q: f64| -> u64 {
            if count == 0 {
                return 0;
            }
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return if i == 0 { 0 } else { 1u64 << i };
                }
            }
            0
        };
        LatencyStats {
            count,
            mean_us: if count == 0 {
                0.0
            } else {
                self.sum_us.load(Relaxed) as f64 / count as f64
            },
            p50_us: quantile(0.5),
            p99_us: quantile(0.99),
        }
    }
}

/// Process-wide Redis counters.
#[derive(Debug, Default)]
pub(crate) struct L2Counters {
    pub latency: Latency,
    pub errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub skipped: AtomicU64,
    pub invalidations_received: AtomicU64,
    /// Subscriptions after the first: each one followed a lost connection.
    pub reconnects: AtomicU64,
    /// When the last one happened (Unix milliseconds; 0: never).
    pub last_reconnect_unix_ms: AtomicU64,
}

impl L2Counters {
    pub fn snapshot(&self) -> (LatencyStats, u64, u64, u64, u64) {
        (
            self.latency.snapshot(),
            self.errors.load(Relaxed),
            self.timeouts.load(Relaxed),
            self.skipped.load(Relaxed),
            self.invalidations_received.load(Relaxed),
        )
    }
}

/// Hits and misses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TierStats {
    /// Lookups answered by this tier.
    pub hits: u64,
    /// Lookups it could not answer.
    pub misses: u64,
}

impl TierStats {
    /// hits / (hits + misses), or `None` before the first lookup.
    #[must_use]
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }

    pub(crate) fn add(&mut self, other: TierStats) {
        self.hits += other.hits;
        self.misses += other.misses;
    }
}

/// One namespace's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NamespaceStats {
    /// The namespace.
    pub name: String,
    /// Its current generation (bumped by each namespace-wide invalidation).
    pub generation: u64,
    /// In-process tier.
    pub l1: TierStats,
    /// Redis tier (only consulted on L1 misses).
    pub l2: TierStats,
    /// Loader runs (misses that reached the source of truth).
    pub loads: u64,
    /// Time spent in loaders, microseconds.
    pub load_us: u64,
    /// Values recomputed before expiry to avoid a stampede.
    pub early_refreshes: u64,
    /// Keys or whole-namespace invalidations issued here.
    pub invalidations: u64,
}

impl NamespaceStats {
    /// Share of lookups answered by either tier.
    #[must_use]
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.l1.hits + self.l1.misses;
        (total > 0).then(|| (self.l1.hits + self.l2.hits) as f64 / total as f64)
    }
}

/// Redis round trips as this process saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyStats {
    /// Operations timed.
    pub count: u64,
    /// Mean, microseconds.
    pub mean_us: f64,
    /// Median, as the upper edge of its power-of-two bucket.
    pub p50_us: u64,
    /// 99th percentile, likewise.
    pub p99_us: u64,
}

/// Everything the cache knows about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CacheStats {
    /// Whether a Redis tier is configured.
    pub redis_configured: bool,
    /// Whether the circuit breaker currently keeps requests off Redis.
    pub breaker_open: bool,
    /// L1 totals.
    pub l1: TierStats,
    /// L2 totals.
    pub l2: TierStats,
    /// Entries held in L1.
    pub l1_entries: u64,
    /// Their weight in bytes (encoded size plus key).
    pub l1_bytes: u64,
    /// L1 capacity in bytes.
    pub l1_capacity: u64,
    /// Redis round-trip times.
    pub l2_latency: LatencyStats,
    /// Redis errors (connection refused, protocol...).
    pub l2_errors: u64,
    /// Redis operations that hit the per-operation timeout.
    pub l2_timeouts: u64,
    /// Redis operations not attempted because the breaker was open.
    pub l2_skipped: u64,
    /// Invalidations received from other processes.
    pub invalidations_received: u64,
    /// Whether the invalidation listener is subscribed now.
    pub subscribed: bool,
    /// Times the listener subscribed again after losing its connection (0 in healthy
    /// operation).
    pub reconnects: u64,
    /// When it last did, in Unix milliseconds.
    pub last_reconnect_unix_ms: Option<u64>,
    /// Times L1 was emptied because invalidations may have been missed: a
    /// resubscription (the first subscription too, when attempts before it failed),
    /// or Redis answering again after the circuit breaker opened. One outage that
    /// both tripped the breaker and dropped the subscription counts twice.
    pub l1_resets: u64,
    /// Per namespace, by name.
    pub namespaces: Vec<NamespaceStats>,
}

impl CacheStats {
    /// Share of all lookups answered by either tier.
    #[must_use]
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.l1.hits + self.l1.misses;
        (total > 0).then(|| (self.l1.hits + self.l2.hits) as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_use_bucket_edges() {
        let l = Latency::default();
        for _ in 0..98 {
            l.record(90); // bucket (64, 128]
        }
        l.record(5_000);
        l.record(5_000);
        let s = l.snapshot();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_us, 128);
        assert_eq!(s.p99_us, 8_192);
        assert!((s.mean_us - 188.2).abs() < 0.01);
    }

    #[test]
    fn hit_rates() {
        assert_eq!(TierStats::default().hit_rate(), None);
        let t = TierStats { hits: 3, misses: 1 };
        assert_eq!(t.hit_rate(), Some(0.75));
    }
}
