//! Writes and invalidation: tombstones for keys, generation bumps for namespaces,
//! and telling every other process (which acknowledges) before returning.

use super::*;

/// What an invalidated key holds in Redis for a while instead of being deleted, so a
/// load that read the old row before the write cannot store it after the write: the
/// guarded SET below refuses to overwrite it. Reads take it for a miss (it is no
/// envelope).
pub(crate) const TOMBSTONE: &[u8] = b"NPX";
pub(crate) const TOMBSTONE_TTL_MS: u64 = 5_000;

pub(crate) struct AckGuard<'a> {
    l2: &'a L2,
    pub(crate) seq: u64,
}

impl Drop for AckGuard<'_> {
    fn drop(&mut self) {
        self.l2.forget_acks(self.seq);
    }
}

impl Cache {
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
        // Again once L1 holds the new value: whatever was assembled from the old one
        // in between carries an epoch that is now past (see `Cache::epoch`).
        self.inner.epoch.fetch_add(1, Relaxed);
        self.publish(Message::Keys(vec![full])).await;
        value
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
        // And after L1 dropped them: a reader that took the epoch just before and
        // still found an old entry in L1 assembled something this epoch outdates.
        self.inner.epoch.fetch_add(1, Relaxed);
        self.publish(Message::Keys(full)).await;
    }

    /// Replaces keys by short-lived tombstones (one pipelined round trip). Returns
    /// `None` when Redis could not be reached, else whether this call found Redis
    /// back after an outage.
    pub(crate) async fn tombstone(&self, full: &[String]) -> Option<bool> {
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

    pub(crate) async fn publish(&self, message: Message) {
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
    pub(crate) async fn receive(&self, payload: &[u8]) {
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
                // As in `delete_many`: outdate what was read between the bump above
                // and the removal.
                self.inner.epoch.fetch_add(1, Relaxed);
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

    pub(crate) fn receive_ack(&self, payload: &[u8]) {
        let Some(l2) = &self.inner.l2 else { return };
        let (Some(sender), Some(seq)) = (payload.get(0..8), payload.get(8..16)) else {
            return;
        };
        let sender = u64::from_le_bytes(sender.try_into().unwrap_or_default());
        if sender == self.inner.id {
            l2.ack(u64::from_le_bytes(seq.try_into().unwrap_or_default()));
        }
    }
}
