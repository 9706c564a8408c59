//! L1: entries hold the decoded value, expire no later than their Redis copy, weigh
//! their encoded size, and are recomputed early (XFetch) so a hot key never stampedes.

use super::*;

/// XFetch's beta: 1 is the paper's choice (refresh about one compute time early).
pub(crate) const EARLY_REFRESH_BETA: f64 = 1.0;

/// An L1 entry: the decoded value, so a hit costs a lookup and an `Arc` clone.
pub(crate) struct L1Entry {
    pub(crate) value: Arc<dyn Any + Send + Sync>,
    pub(crate) weight: u32,
    pub(crate) ttl: Duration,
    pub(crate) expires_at: Instant,
    pub(crate) delta: Duration,
    pub(crate) refreshing: AtomicBool,
}

/// Each entry lives for its own TTL (none at all with L1 turned off).
pub(crate) struct PerEntryTtl {
    pub(crate) enabled: bool,
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

impl Cache {
    /// XFetch: recompute early with probability rising as expiry nears, scaled by how
    /// long the value took to compute.
    pub(crate) fn should_refresh(entry: &L1Entry) -> bool {
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

    pub(crate) fn l1_entry<T: Send + Sync + 'static>(
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

    pub(crate) async fn l1_get<T: Send + Sync + 'static>(
        &self,
        ns: &Namespace,
        full: &str,
    ) -> Option<Arc<T>> {
        let hit = self
            .inner
            .l1
            .get(full)
            .await
            .and_then(|e| e.value.clone().downcast::<T>().ok());
        ns.state.counters.l1.record(hit.is_some());
        Cache::trace_l1(ns, hit.is_some());
        hit
    }
}
