//! Per-process memos of list pages, valid while nothing cached has changed.
//!
//! A list page's version is a hash over each of its rows' cache entries: exact, but 50
//! lookups per request. The cache's epoch ([`napiatke_cache::Cache::epoch`]) moves on
//! every write or invalidation this process makes or receives and on every L1 reset,
//! so a page assembled at one epoch is still exactly right while the epoch stands:
//! the memo answers with one map lookup instead. When the epoch moves, the page is
//! assembled again from the cache (rows not touched keep their versions, so the HTML
//! keyed by the page's version is still found). Entries also expire with the lists'
//! TTL, so writes made around the app (the seed) show within it.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Entries kept before the memo starts over (a bound, not a target: pages are small).
const MAX_ENTRIES: usize = 4096;

/// A value, the epoch it was assembled at, and when.
type Entry<T> = (u64, Instant, Arc<T>);

pub(crate) struct Memo<T> {
    entries: RwLock<HashMap<String, Entry<T>>>,
    ttl: Duration,
}

impl<T> Memo<T> {
    pub fn new(ttl: Duration) -> Memo<T> {
        Memo {
            entries: RwLock::new(HashMap::new()),
            ttl,
        }
    }

    /// The value kept under `key` at `epoch`, or that of the future `build` makes,
    /// kept at `epoch` (read by the caller before `build` starts, so a change while
    /// it runs leaves an entry that no later epoch matches). No epoch (the cache is
    /// off): nothing is kept.
    ///
    /// `build` is called, and its future boxed, only on a miss: assembling a page
    /// awaits cache and database futures several kilobytes large (a lesson list's
    /// came to 30 KB), and inline they made every request's handler future that
    /// large, copied whole each time the request's future was moved or boxed, hit or
    /// miss (docs/performance.md, "Futures kept small").
    pub async fn get_or_build<E, F>(
        &self,
        epoch: Option<u64>,
        key: &str,
        build: impl FnOnce() -> F,
    ) -> Result<Arc<T>, E>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        if let Some(hit) = epoch.and_then(|e| self.get(key, e)) {
            return Ok(hit);
        }
        let value = Arc::new(Box::pin(build()).await?);
        if let Some(e) = epoch {
            self.put(key.to_owned(), e, Arc::clone(&value));
        }
        Ok(value)
    }

    /// The value kept under `key` at `epoch`, if still fresh.
    fn get(&self, key: &str, epoch: u64) -> Option<Arc<T>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(e, at, _)| *e == epoch && at.elapsed() < self.ttl)
            .map(|(_, _, v)| Arc::clone(v))
    }

    /// Keeps `value` under `key`, assembled at `epoch`.
    fn put(&self, key: String, epoch: u64, value: Arc<T>) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, (epoch, Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_hold_for_their_epoch_and_ttl_only() {
        let memo = Memo::new(Duration::from_secs(60));
        memo.put("a".to_owned(), 7, Arc::new(1));
        assert_eq!(memo.get("a", 7).as_deref(), Some(&1));
        assert!(memo.get("a", 8).is_none(), "the epoch moved");
        assert!(memo.get("b", 7).is_none());
        let expired = Memo::new(Duration::ZERO);
        expired.put("a".to_owned(), 7, Arc::new(1));
        assert!(expired.get("a", 7).is_none());
    }
}
