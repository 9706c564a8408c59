//! Redis unreachable: invalidations made meanwhile wait in a bounded queue and are
//! replayed when it answers again; L1 is emptied then, since other processes'
//! messages may have been lost.

use super::*;

/// Invalidations queued while Redis was unreachable beyond this many keys are
/// replaced by bumping every namespace when it is back.
pub(crate) const MAX_PENDING_KEYS: usize = 10_000;

/// Invalidations Redis has not seen yet.
#[derive(Default)]
pub(crate) struct PendingQueue {
    pub(crate) list: Vec<Pending>,
    pub(crate) keys: usize,
    /// Too many to replay one by one: bump every namespace instead.
    pub(crate) overflowed: bool,
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

pub(crate) enum Pending {
    Keys(Vec<String>),
    Namespace(String),
}

impl Cache {
    pub(crate) fn pending(&self) -> std::sync::MutexGuard<'_, PendingQueue> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn queue(&self, p: Pending) {
        self.pending().push(p);
        self.inner.has_pending.store(true, Relaxed);
    }

    /// After any Redis call that worked: if it closed a tripped breaker, resynchronise;
    /// if invalidations are waiting, replay them now.
    pub(crate) async fn after_success(&self, recovered: bool) {
        if recovered {
            self.resync(true).await;
        } else if self.inner.has_pending.load(Relaxed) {
            self.replay_pending().await;
        }
    }

    /// After Redis comes back: replay invalidations it missed, re-read generations
    /// and forget L1 (other processes' messages may have been lost meanwhile).
    /// `counted`: whether it shows in the stats as an L1 reset.
    pub(crate) async fn resync(&self, counted: bool) {
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
        self.inner.epoch.fetch_add(1, Relaxed);
    }

    /// Writes the invalidations Redis missed (tombstones, generation bumps) and tells
    /// the other processes; what fails again stays queued.
    pub(crate) async fn replay_pending(&self) {
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
}
