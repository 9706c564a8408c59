//! Image work off the request path: a fixed pool of worker threads (one per core by
//! default) behind a bounded queue. A request first reserves a place ([`WorkerPool::
//! try_reserve`]); when every place is taken it is told so at once, with a wait to
//! suggest (HTTP 503 with Retry-After), instead of queueing without bound. Only then
//! does it read the upload, so a full queue costs no upload bandwidth or memory.
//!
//! ```
//! use std::sync::mpsc;
//! use napiatke_images::jobs::WorkerPool;
//! let pool = WorkerPool::new(1, 1);
//! let (tx, rx) = mpsc::channel();
//! let slot = pool.try_reserve().unwrap();
//! assert!(pool.try_reserve().is_err()); // the one place is taken
//! slot.submit(move || tx.send(6 * 7).unwrap_or_default());
//! assert_eq!(rx.recv().ok(), Some(42));
//! ```

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    reserved: usize,
    running: usize,
    done: u64,
    panicked: u64,
    /// Exponentially weighted mean job time, for Retry-After.
    mean: Duration,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    idle: Condvar,
    capacity: usize,
    workers: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A job runs outside the lock and panics are caught, so a poisoned lock only
        // means a bug in this file; the state is still consistent enough to go on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The pool. Cloning shares it; the threads stop when the last clone is dropped,
/// after finishing what was queued.
#[derive(Clone)]
pub struct WorkerPool {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

/// Closes the queue when the last pool handle goes (worker threads hold `Shared`
/// only, so they cannot keep the pool alive themselves).
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.wake.notify_all();
    }
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("stats", &self.stats())
            .finish()
    }
}

/// The queue is full: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the image queue is full ({queued} waiting); try again in {} s", retry_after.as_secs())]
pub struct QueueFull {
    /// Jobs waiting or reserved.
    pub queued: usize,
    /// When a place is likely to be free (at least a second).
    pub retry_after: Duration,
}

/// What the pool is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Worker threads.
    pub workers: usize,
    /// Places in the queue.
    pub capacity: usize,
    /// Jobs waiting, plus places reserved by requests still reading their upload.
    pub queued: usize,
    /// Jobs being worked on.
    pub running: usize,
    /// Jobs finished (panicked ones included).
    pub done: u64,
    /// Jobs that panicked (caught; the worker lived on).
    pub panicked: u64,
    /// Mean job time.
    pub mean_job: Duration,
}

/// A place in the queue, held while the upload is read. Dropping it unused gives
/// the place back.
#[must_use = "a reserved place is given back when dropped"]
pub struct Slot {
    shared: Arc<Shared>,
    used: bool,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("used", &self.used).finish()
    }
}

impl Slot {
    /// Queues `job` in this place; a worker runs it when free. A panic in the job is
    /// caught and counted, and the worker goes on.
    pub fn submit(mut self, job: impl FnOnce() + Send + 'static) {
        let mut state = self.shared.lock();
        state.reserved -= 1;
        state.queue.push_back(Box::new(job));
        self.used = true;
        drop(state);
        self.shared.wake.notify_one();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.used {
            self.shared.lock().reserved -= 1;
        }
    }
}

impl WorkerPool {
    /// `workers` threads (at least one) and `capacity` places (at least one).
    #[must_use]
    pub fn new(workers: usize, capacity: usize) -> WorkerPool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            idle: Condvar::new(),
            capacity: capacity.max(1),
            workers: workers.max(1),
        });
        for n in 0..shared.workers {
            let shared = Arc::clone(&shared);
            // A thread that cannot be started leaves the pool smaller, not broken:
            // jobs still run on the others (and with none, they wait).
            let _ = std::thread::Builder::new()
                .name(format!("napiatke-images-{n}"))
                .spawn(move || work(&shared));
        }
        WorkerPool {
            _owner: Arc::new(Owner(Arc::clone(&shared))),
            shared,
        }
    }

    /// One worker per core and twice as many places.
    #[must_use]
    pub fn per_core() -> WorkerPool {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        WorkerPool::new(cores, cores * 2)
    }

    /// Reserves a place, or says when to try again.
    pub fn try_reserve(&self) -> Result<Slot, QueueFull> {
        let mut state = self.shared.lock();
        let queued = state.queue.len() + state.reserved;
        if queued >= self.shared.capacity {
            // Everything ahead must pass through the workers first.
            let mean = state.mean.max(Duration::from_millis(500));
            let rounds = u32::try_from(queued / self.shared.workers + 1).unwrap_or(u32::MAX);
            let wait = mean.saturating_mul(rounds).as_secs().clamp(1, 600);
            return Err(QueueFull {
                queued,
                retry_after: Duration::from_secs(wait),
            });
        }
        state.reserved += 1;
        Ok(Slot {
            shared: Arc::clone(&self.shared),
            used: false,
        })
    }

    /// What the pool is doing.
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        let state = self.shared.lock();
        PoolStats {
            workers: self.shared.workers,
            capacity: self.shared.capacity,
            queued: state.queue.len() + state.reserved,
            running: state.running,
            done: state.done,
            panicked: state.panicked,
            mean_job: state.mean,
        }
    }

    /// Waits until nothing is queued or running, or `timeout` passes; whether it
    /// became idle (for tests and an orderly shutdown).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while !state.queue.is_empty() || state.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .shared
                .idle
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

fn work(shared: &Shared) {
    loop {
        let job = {
            let mut state = shared.lock();
            loop {
                if let Some(job) = state.queue.pop_front() {
                    state.running += 1;
                    break job;
                }
                if state.closed {
                    return;
                }
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let started = Instant::now();
        let panicked = catch_unwind(AssertUnwindSafe(job)).is_err();
        let took = started.elapsed();
        let mut state = shared.lock();
        state.running -= 1;
        state.done += 1;
        state.panicked += u64::from(panicked);
        state.mean = if state.done == 1 {
            took
        } else {
            (state.mean * 7 + took) / 8
        };
        let idle = state.queue.is_empty() && state.running == 0;
        drop(state);
        if idle {
            shared.idle.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_full_queue_refuses_at_once_with_a_wait_and_frees_places_as_jobs_start() {
        let pool = WorkerPool::new(1, 2);
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<u32>();
        // The first job blocks the only worker until the gate opens.
        let first = pool.try_reserve().unwrap();
        let tx = done_tx.clone();
        first.submit(move || {
            let _ = gate_rx.recv();
            let _ = tx.send(1);
        });
        // Wait for the worker to take it, so it no longer counts as queued.
        while pool.stats().running == 0 {
            std::thread::yield_now();
        }
        let a = pool.try_reserve().unwrap();
        let b = pool.try_reserve().unwrap();
        let full = pool.try_reserve().err();
        assert_eq!(full.map(|f| f.queued), Some(2));
        assert!(full.is_some_and(|f| f.retry_after >= Duration::from_secs(1)));
        // An unused reservation gives its place back.
        drop(b);
        let c = pool.try_reserve().unwrap();
        for (slot, n) in [(a, 2), (c, 3)] {
            let tx = done_tx.clone();
            slot.submit(move || {
                let _ = tx.send(n);
            });
        }
        let _ = gate_tx.send(());
        let got: Vec<u32> = (0..3).filter_map(|_| done_rx.recv().ok()).collect();
        assert_eq!(got, vec![1, 2, 3], "first in, first out on one worker");
        assert!(pool.wait_idle(Duration::from_secs(5)));
        assert_eq!(pool.stats().done, 3);
    }

    #[test]
    fn a_panicking_job_is_counted_and_the_worker_lives_on() {
        let pool = WorkerPool::new(1, 4);
        pool.try_reserve().unwrap().submit(|| panic!("bad image"));
        let (tx, rx) = mpsc::channel();
        pool.try_reserve().unwrap().submit(move || {
            let _ = tx.send("after");
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).ok(), Some("after"));
        assert!(pool.wait_idle(Duration::from_secs(5)));
        let stats = pool.stats();
        assert_eq!((stats.done, stats.panicked), (2, 1));
    }

    #[test]
    fn jobs_run_in_parallel_on_every_worker() {
        let pool = WorkerPool::new(3, 3);
        let barrier = Arc::new(std::sync::Barrier::new(3));
        let (tx, rx) = mpsc::channel();
        for _ in 0..3 {
            let (barrier, tx) = (Arc::clone(&barrier), tx.clone());
            pool.try_reserve().unwrap().submit(move || {
                // Only passes if all three run at once.
                barrier.wait();
                let _ = tx.send(());
            });
        }
        for _ in 0..3 {
            assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
        }
    }
}
