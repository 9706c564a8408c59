//! Where blocking work (statements, argon2) runs: a fixed number of slots, each a
//! thread shared by every actix worker, and one first-come-first-served queue of
//! futures in front of them.
//!
//! Before, every request that touched the database got a thread of its own from
//! the blocking pool of its actix worker (512 threads allowed per process) and then
//! waited on that thread for one of the pool's connections. Under load, 256 open
//! connections meant hundreds of threads (about 390 on 8 cores, 270 on 2), each
//! parked on the connection pool's condition variable, woken and descheduled again:
//! the CPU a page cost grew 1.1–1.5x from 8 to 256 connections on 2 cores (issue 18;
//! docs/performance.md). Here a request waits for a slot as a future, costing no
//! thread, and only then takes a thread and a connection, which are then both
//! free: threads stay at the number of slots whatever the load, and
//! a request that waits longer than the connection-checkout timeout is answered
//! 503 "busy" instead of queueing without end, and one that finds the queue full
//! (DATABASE_QUEUE) is answered so at once: when the database is stuck, users learn
//! it in milliseconds rather than after the whole wait, and waiting requests do not
//! pile up. A request dropped while it waits (its client went away) never runs at
//! all.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! let work = napiatke_services::work::WorkPool::new(4, Duration::from_secs(5));
//! assert_eq!(work.run(|| 6 * 7).await?, 42);
//! assert_eq!(work.state().slots, 4);
//! # Ok::<(), napiatke_services::work::WorkError>(())
//! # }).unwrap();
//! ```

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// Why work did not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// Every slot stayed busy for the whole wait.
    #[error("no slot for blocking work within {} ms", .0.as_millis())]
    Busy(Duration),
    /// The queue was full: refused without waiting.
    #[error("{0} requests are already waiting for blocking work")]
    Full(usize),
    /// The work panicked, or the pool is shutting down.
    #[error("blocking task")]
    Task(#[source] tokio::task::JoinError),
}

/// The slots and the threads behind them. Clones share both.
#[derive(Clone)]
pub struct WorkPool(Arc<Inner>);

struct Inner {
    slots: Arc<Semaphore>,
    size: usize,
    wait: Duration,
    /// The most callers that may wait at once.
    queue: usize,
    /// A runtime used only for its blocking pool, so the threads are shared by every
    /// actix worker (each has a runtime, and so a blocking pool, of its own) and
    /// capped at `size`. `None` when it could not be built: then the caller's
    /// runtime runs the work, still `size` at a time.
    runtime: Option<tokio::runtime::Runtime>,
    waiting: AtomicUsize,
    waited: AtomicU64,
    wait_micros: AtomicU64,
    refused: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, which panics inside an async
        // context (where the last Services clone may well be dropped). Running work
        // holds its own handle; nothing is lost by not waiting.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for WorkPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkPool")
            .field("slots", &self.0.size)
            .field("wait", &self.0.wait)
            .finish_non_exhaustive()
    }
}

/// How the slots are used now and have been since start (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkState {
    /// Work that may run at once (the number of threads, at most).
    pub slots: usize,
    /// Slots busy now.
    pub busy: usize,
    /// Requests waiting for a slot now.
    pub waiting: usize,
    /// Requests that had to wait for a slot, since start.
    pub waited: u64,
    /// Their waits, microseconds in all.
    pub wait_micros: u64,
    /// Requests refused, after waiting the whole timeout or at once with the queue
    /// full, since start.
    pub refused: u64,
}

impl WorkPool {
    /// `slots` pieces of work at once (at least one), each waiting at most `wait`
    /// for its turn, with no bound on how many wait.
    #[must_use]
    pub fn new(slots: usize, wait: Duration) -> WorkPool {
        WorkPool::bounded(slots, wait, usize::MAX)
    }

    /// As [`WorkPool::new`], with at most `queue` callers waiting: the next one is
    /// refused at once ([`WorkError::Full`]).
    #[must_use]
    pub fn bounded(slots: usize, wait: Duration, queue: usize) -> WorkPool {
        let size = slots.max(1);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(size)
            .thread_name("napiatke-work")
            // Threads that go idle stay a while: starting one per burst costs more.
            .thread_keep_alive(Duration::from_secs(60))
            .build()
            .inspect_err(|e| {
                tracing::warn!(error = %e, "no runtime of its own for blocking work; using the caller's");
            })
            .ok();
        WorkPool(Arc::new(Inner {
            slots: Arc::new(Semaphore::new(size)),
            size,
            wait,
            queue,
            runtime,
            waiting: AtomicUsize::new(0),
            waited: AtomicU64::new(0),
            wait_micros: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }))
    }

    /// Runs `f` on a slot's thread once one is free, or fails with
    /// [`WorkError::Busy`] after the pool's wait.
    pub async fn run<T, F>(&self, f: F) -> Result<T, WorkError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let inner = &self.0;
        let permit = match Arc::clone(&inner.slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if inner.waiting.load(Relaxed) >= inner.queue {
                    inner.refused.fetch_add(1, Relaxed);
                    return Err(WorkError::Full(inner.queue));
                }
                // Counted down on drop: a caller may stop waiting half-way.
                let _waiting = Waiting::new(&inner.waiting);
                let started = Instant::now();
                let got =
                    tokio::time::timeout(inner.wait, Arc::clone(&inner.slots).acquire_owned())
                        .await;
                inner.waited.fetch_add(1, Relaxed);
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                inner.wait_micros.fetch_add(micros, Relaxed);
                match got {
                    Ok(Ok(permit)) => permit,
                    // Timed out, or closed (never: the semaphore is not closed).
                    _ => {
                        inner.refused.fetch_add(1, Relaxed);
                        return Err(WorkError::Busy(inner.wait));
                    }
                }
            }
        };
        // The slot is held until the work ends, even if the caller stops waiting: the
        // thread (and any connection) is in use until then.
        let work = move || {
            let _slot = permit;
            f()
        };
        let handle = match &inner.runtime {
            Some(runtime) => runtime.spawn_blocking(work),
            None => tokio::task::spawn_blocking(work),
        };
        handle.await.map_err(WorkError::Task)
    }

    /// The slots now and the waits so far.
    #[must_use]
    pub fn state(&self) -> WorkState {
        let inner = &self.0;
        WorkState {
            slots: inner.size,
            busy: inner.size - inner.slots.available_permits(),
            waiting: inner.waiting.load(Relaxed),
            waited: inner.waited.load(Relaxed),
            wait_micros: inner.wait_micros.load(Relaxed),
            refused: inner.refused.load(Relaxed),
        }
    }
}

/// One caller in the queue, for as long as it is there.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn at_most_slots_run_at_once_on_at_most_slots_threads() {
        rt().block_on(async {
            let work = WorkPool::new(3, Duration::from_secs(10));
            let running = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let threads = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
            let mut jobs = tokio::task::JoinSet::new();
            for _ in 0..40 {
                let (running, most, threads) = (running.clone(), most.clone(), threads.clone());
                let work = work.clone();
                jobs.spawn(async move {
                    work.run(move || {
                        let now = running.fetch_add(1, Relaxed) + 1;
                        most.fetch_max(now, Relaxed);
                        threads.lock().unwrap().insert(std::thread::current().id());
                        std::thread::sleep(Duration::from_millis(5));
                        running.fetch_sub(1, Relaxed);
                    })
                    .await
                });
            }
            while let Some(done) = jobs.join_next().await {
                done.unwrap().unwrap();
            }
            assert_eq!(most.load(Relaxed), 3);
            assert!(threads.lock().unwrap().len() <= 3);
            let state = work.state();
            assert_eq!((state.busy, state.waiting, state.refused), (0, 0, 0));
            assert!(state.waited >= 37, "{state:?}");
        });
    }

    /// Takes one slot until the sender sends; the task answers what the work got.
    async fn occupy(
        work: &WorkPool,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<Option<()>, WorkError>>,
    ) {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let long = tokio::spawn({
            let work = work.clone();
            async move { work.run(move || rx.recv().ok()).await }
        });
        while work.state().busy == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (tx, long)
    }

    #[test]
    fn a_wait_past_the_timeout_is_refused_as_busy() {
        rt().block_on(async {
            let work = WorkPool::new(1, Duration::from_millis(50));
            let (tx, long) = occupy(&work).await;
            let refused = work.run(|| ()).await;
            assert!(matches!(refused, Err(WorkError::Busy(_))), "{refused:?}");
            assert_eq!(work.state().refused, 1);
            tx.send(()).unwrap();
            assert_eq!(long.await.unwrap().unwrap(), Some(()));
            // The slot is free again.
            work.run(|| ()).await.unwrap();
        });
    }

    #[test]
    fn a_full_queue_is_refused_at_once() {
        rt().block_on(async {
            let work = WorkPool::bounded(1, Duration::from_secs(10), 1);
            let (release, held) = occupy(&work).await;
            let waiter = tokio::spawn({
                let work = work.clone();
                async move { work.run(|| 1).await }
            });
            while work.state().waiting == 0 {
                tokio::task::yield_now().await;
            }
            let started = std::time::Instant::now();
            let refused = work.run(|| 2).await;
            assert!(matches!(refused, Err(WorkError::Full(1))), "{refused:?}");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "refused without waiting"
            );
            assert_eq!(work.state().refused, 1);
            let _ = release.send(());
            let _ = held.await;
            assert_eq!(
                waiter.await.ok().and_then(Result::ok),
                Some(1),
                "the one waiting ran"
            );
        });
    }

    #[test]
    fn a_panic_is_an_error_and_frees_its_slot() {
        rt().block_on(async {
            let work = WorkPool::new(1, Duration::from_millis(200));
            let failed = work.run(|| panic!("a bug")).await;
            assert!(matches!(failed, Err(WorkError::Task(_))));
            assert_eq!(work.run(|| 1).await.unwrap(), 1);
        });
    }

    #[test]
    fn a_caller_that_stops_waiting_never_runs() {
        rt().block_on(async {
            let work = WorkPool::new(1, Duration::from_secs(10));
            let (tx, long) = occupy(&work).await;
            let ran = Arc::new(AtomicUsize::new(0));
            let gave_up = tokio::time::timeout(Duration::from_millis(20), {
                let ran = ran.clone();
                work.run(move || ran.fetch_add(1, Relaxed))
            })
            .await;
            assert!(gave_up.is_err());
            tx.send(()).unwrap();
            long.await.unwrap().unwrap();
            work.run(|| ()).await.unwrap();
            assert_eq!(ran.load(Relaxed), 0);
            assert_eq!(work.state().waiting, 0);
        });
    }

    #[test]
    fn dropping_the_pool_inside_a_runtime_does_not_panic() {
        rt().block_on(async {
            let work = WorkPool::new(2, Duration::from_secs(1));
            work.run(|| ()).await.unwrap();
            drop(work);
        });
    }
}
