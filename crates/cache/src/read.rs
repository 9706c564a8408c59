//! The read path: L1, then Redis, then the loader (once per process per key), and
//! filling both tiers without overwriting an invalidation that happened meanwhile.

use super::*;

/// SET unless the key holds a tombstone (KEYS[1]; ARGV: value, PX, tombstone).
pub(crate) const GUARDED_SET: &str = "if redis.call('STRLEN', KEYS[1]) == string.len(ARGV[3]) \
and redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end \
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";

/// How a computed or given value goes to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// A load after a miss: unless an invalidation left a tombstone.
    Fill,
    /// An explicit write: always.
    Overwrite,
    /// A load that overlapped an invalidation: not at all, and no L1 life.
    Discard,
}

/// A TTL as Redis's PX (milliseconds, at least 1).
pub(crate) fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// SET `key` unless it holds a tombstone: how loads fill Redis.
pub(crate) fn guarded_set(key: &str, bytes: Vec<u8>, px: u64) -> redis::Cmd {
    redis::cmd("EVAL")
        .arg(GUARDED_SET)
        .arg(1)
        .arg(key)
        .arg(bytes)
        .arg(px)
        .arg(TOMBSTONE)
        .to_owned()
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The init future runs at most once and only while the loader is still in its slot;
/// an entry of another type can only come from another caller, whose init ran instead.
#[allow(clippy::panic)]
pub(crate) fn unreachable_loader<T>() -> T {
    panic!("napiatke-cache: loader consumed twice")
}

impl Cache {
    /// An L2 (Redis) lookup, timed from `started`.
    pub(crate) fn trace_l2(ns: &Namespace, hit: bool, started: Instant) {
        tracing::debug!(
            target: OP_TARGET,
            ns = %ns.state.name,
            tier = "l2",
            hit,
            duration_us = micros(started.elapsed()),
        );
    }

    /// An L1 lookup, untimed: it is a probe of an in-process map, well under a
    /// microsecond, so its time in whole microseconds was 0 all but always, and the
    /// two clock reads cost about as much as the probe (docs/performance.md).
    pub(crate) fn trace_l1(ns: &Namespace, hit: bool) {
        tracing::debug!(target: OP_TARGET, ns = %ns.state.name, tier = "l1", hit);
    }

    /// The envelope for `value` (header, type tag, postcard); `None`, logged, when
    /// the value cannot be encoded (it then stays out of Redis).
    pub(crate) fn encode_entry<T: Serialize>(
        ns: &Namespace,
        value: &T,
        delta: Duration,
    ) -> Option<Vec<u8>> {
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
    pub(crate) fn entry_from_redis<T>(
        ns: &Namespace,
        bytes: &[u8],
        fresh: bool,
    ) -> Option<Arc<L1Entry>>
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

    pub(crate) fn record_load(ns: &Namespace, delta: Duration) {
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
        // Boxed: see get_or_compute.
        Box::pin(async move {
            let entry = self.l2_get::<T>(ns, &full).await?;
            self.inner.l1.insert(full, Arc::clone(&entry)).await;
            entry.value.clone().downcast::<T>().ok()
        })
        .await
    }

    pub(crate) async fn l2_get<T>(&self, ns: &Namespace, full: &str) -> Option<Arc<L1Entry>>
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
        Cache::trace_l2(ns, entry.is_some(), started);
        entry
    }

    /// Encodes and writes to Redis; returns the L1 entry to keep (one that expires at
    /// once for [`Store::Discard`]).
    pub(crate) async fn store<T>(
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
    /// loader error is returned to every waiter, shared as an `Arc` (as moka's
    /// `try_get_with` does, so errors need not be `Clone`), and nothing is stored.
    ///
    /// Only the L1 hit is awaited in place. Everything past it (Redis, moka's single
    /// flight, the loader) is a boxed future of its own: inline it made this future
    /// 6 to 15 KB, and every caller's, up to the request's, that much larger, copied
    /// whole whenever a request's future was moved or boxed, hit or miss (a cached
    /// page's request copied about 76 KB; docs/performance.md, "Futures kept small").
    /// A miss pays one allocation for it.
    pub async fn get_or_compute<T, E, F, Fut>(
        &self,
        ns: &Namespace,
        key: &str,
        loader: F,
    ) -> Result<Arc<T>, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if self.inner.off {
            // Not even single flight: this mode is the uncached baseline.
            ns.state.counters.l1.record(false);
            let (value, _) = Box::pin(self.timed_load(ns, loader))
                .await
                .map_err(Arc::new)?;
            return Ok(value);
        }
        self.sync_generation(ns).await;
        let full = self.full_key(ns, key);
        if let Some(entry) = self.inner.l1.get(&full).await {
            if let Ok(value) = entry.value.clone().downcast::<T>() {
                ns.state.counters.l1.record(true);
                Cache::trace_l1(ns, true);
                if Cache::should_refresh(&entry)
                    && entry
                        .refreshing
                        .compare_exchange(false, true, Relaxed, Relaxed)
                        .is_ok()
                {
                    ns.state.counters.early_refreshes.fetch_add(1, Relaxed);
                    return Box::pin(async move {
                        match self.compute(ns, &full, loader).await {
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
                        }
                    })
                    .await;
                }
                return Ok(value);
            }
        }
        ns.state.counters.l1.record(false);
        Cache::trace_l1(ns, false);
        Box::pin(self.fill(ns, full, loader)).await
    }

    /// [`Cache::get_or_compute`] past an L1 miss: Redis, else the loader, once per
    /// key in this process at a time.
    async fn fill<T, E, F, Fut>(
        &self,
        ns: &Namespace,
        full: String,
        loader: F,
    ) -> Result<Arc<T>, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
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
            .await?;
        match (entry.value.clone().downcast::<T>(), loader) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(f)) => {
                tracing::error!(target: "napiatke_cache", ns = %ns.state.name, "two value types cached under one key; answering uncached");
                Ok(Arc::new(f().await.map_err(Arc::new)?))
            }
            (Err(_), None) => unreachable_loader(),
        }
    }

    pub(crate) async fn compute<T, E, F, Fut>(
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
        let mut missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out);
        }
        // Boxed: see get_or_compute.
        Box::pin(async move {
            let epoch = self.inner.epoch.load(Relaxed);
            if let Some(l2) = &self.inner.l2 {
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
                    Cache::trace_l2(ns, entry.is_some(), started);
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
                    if let (true, Some(bytes)) = (keep, Cache::encode_entry(ns, v.as_ref(), delta))
                    {
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
        })
        .await
    }

    pub(crate) async fn timed_load<T, E, F, Fut>(
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
}
