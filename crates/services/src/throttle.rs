//! What a login may cost: failed attempts slow down per account and per client
//! address (exponential backoff, answered 429 with Retry-After), and argon2, the
//! memory- and CPU-hungry check, runs at most one per core at a time with a bounded
//! queue behind (beyond it, 503 with Retry-After). Without this, 300 concurrent
//! failed logins took 3.1 GB (one 19 MB argon2 state per blocking thread).
//!
//! Counters live in this process: with several processes an attacker gets each
//! process's allowance (docs/operations.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{ServiceError, ServiceResult};

/// Failures of one account allowed before it backs off.
pub const ACCOUNT_FREE_FAILURES: u32 = 5;
/// Failures from one client address allowed before it backs off (an office behind
/// one address has many users).
pub const ADDRESS_FREE_FAILURES: u32 = 20;
/// The longest wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// A key with no failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Keys kept at most (then the ones not blocked are dropped first).
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Instant,
}

/// Login throttling and the argon2 gate.
#[derive(Debug)]
pub struct LoginGuard {
    hashing: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    failures: Mutex<HashMap<String, Failures>>,
}

impl LoginGuard {
    /// `concurrent` argon2 checks at a time, `queue` more waiting.
    #[must_use]
    pub fn new(concurrent: usize, queue: usize) -> LoginGuard {
        LoginGuard {
            hashing: tokio::sync::Semaphore::new(concurrent.max(1)),
            waiting: AtomicUsize::new(0),
            max_waiting: queue,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// One check per core, and 64 per core waiting.
    #[must_use]
    pub fn per_core() -> LoginGuard {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        LoginGuard::new(cores, cores * 64)
    }

    fn keys(account: &str, address: Option<&str>) -> [Option<(String, u32)>; 2] {
        [
            Some((
                format!("a:{}", account.trim().to_lowercase()),
                ACCOUNT_FREE_FAILURES,
            )),
            address.map(|a| (format!("ip:{a}"), ADDRESS_FREE_FAILURES)),
        ]
    }

    /// `Err(wait)` while the account or the address must wait.
    pub fn check(
        &self,
        account: &str,
        address: Option<&str>,
        now: Instant,
    ) -> Result<(), Duration> {
        let map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let wait = Self::keys(account, address)
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| {
                map.get(&k)
                    .map(|f| f.blocked_until.saturating_duration_since(now))
            })
            .max()
            .unwrap_or_default();
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Counts a failure against the account and the address; the wait it starts,
    /// if it starts one.
    pub fn failed(&self, account: &str, address: Option<&str>, now: Instant) -> Option<Duration> {
        let mut wait: Option<Duration> = None;
        let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_KEYS {
            map.retain(|_, f| f.blocked_until > now && now.duration_since(f.last) < FORGET_AFTER);
        }
        for (key, free) in Self::keys(account, address).into_iter().flatten() {
            let f = map.entry(key).or_insert(Failures {
                count: 0,
                last: now,
                blocked_until: now,
            });
            if now.duration_since(f.last) > FORGET_AFTER {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
            if f.count >= free {
                // 1 s at the allowance, doubling with each failure after it.
                let doublings = (f.count - free).min(20);
                let this = Duration::from_secs(1u64 << doublings).min(MAX_BACKOFF);
                f.blocked_until = now + this;
                wait = Some(wait.map_or(this, |w| w.max(this)));
            }
        }
        wait
    }

    /// A correct login: the account starts afresh (the address does not).
    pub fn succeeded(&self, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&format!("a:{}", account.trim().to_lowercase()));
    }

    /// A place to run argon2, waited for in a bounded queue; a full queue is
    /// [`ServiceError::Busy`].
    pub async fn hashing_slot(&self) -> ServiceResult<tokio::sync::SemaphorePermit<'_>> {
        if let Ok(permit) = self.hashing.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(ServiceError::Busy {
                message: "Too many logins at once; try again in a moment.".to_owned(),
                retry_after: Duration::from_secs(1),
            });
        }
        let permit = self.hashing.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.map_err(|_| ServiceError::Busy {
            message: "shutting down".to_owned(),
            retry_after: Duration::from_secs(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_back_off_after_their_allowance_and_start_afresh() {
        let g = LoginGuard::new(1, 1);
        let t0 = Instant::now();
        for _ in 0..ACCOUNT_FREE_FAILURES - 1 {
            g.failed("Ada@x.pl", None, t0);
            assert!(g.check("ada@x.pl", None, t0).is_ok());
        }
        g.failed("ada@x.pl", None, t0);
        assert_eq!(g.check("ADA@x.pl", None, t0), Err(Duration::from_secs(1)));
        assert!(g
            .check("ada@x.pl", None, t0 + Duration::from_secs(1))
            .is_ok());
        g.failed("ada@x.pl", None, t0 + Duration::from_secs(1));
        assert_eq!(
            g.check("ada@x.pl", None, t0 + Duration::from_secs(1)),
            Err(Duration::from_secs(2)),
            "doubling"
        );
        assert!(
            g.check("bob@x.pl", None, t0).is_ok(),
            "other accounts unaffected"
        );
        g.succeeded("ada@x.pl");
        assert!(g
            .check("ada@x.pl", None, t0 + Duration::from_secs(1))
            .is_ok());
        // The wait never passes the cap.
        for _ in 0..40 {
            g.failed("eve@x.pl", None, t0);
        }
        assert_eq!(g.check("eve@x.pl", None, t0), Err(MAX_BACKOFF));
    }

    #[test]
    fn an_address_backs_off_across_accounts() {
        let g = LoginGuard::new(1, 1);
        let t0 = Instant::now();
        for n in 0..ADDRESS_FREE_FAILURES {
            assert!(g.check(&format!("u{n}@x.pl"), Some("10.0.0.9"), t0).is_ok());
            g.failed(&format!("u{n}@x.pl"), Some("10.0.0.9"), t0);
        }
        assert!(g.check("new@x.pl", Some("10.0.0.9"), t0).is_err());
        assert!(g.check("new@x.pl", Some("10.0.0.10"), t0).is_ok());
    }

    #[tokio::test]
    async fn argon2_runs_a_bounded_number_at_a_time_with_a_bounded_queue() {
        let g = std::sync::Arc::new(LoginGuard::new(1, 1));
        let first = g.hashing_slot().await.unwrap();
        let g2 = std::sync::Arc::clone(&g);
        let waiter = tokio::spawn(async move { g2.hashing_slot().await.map(|_| ()) });
        tokio::task::yield_now().await;
        // One running, one waiting: the third is told to come back.
        assert!(matches!(
            g.hashing_slot().await,
            Err(ServiceError::Busy { .. })
        ));
        drop(first);
        assert!(waiter.await.unwrap().is_ok());
    }
}
