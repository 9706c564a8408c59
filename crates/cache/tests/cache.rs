//! The cache against a real Redis (NAPIATKE_TEST_REDIS_URL, default
//! redis://127.0.0.1:6379/0); every test has its own key prefix, so they run in
//! parallel. Outage tests start their own redis-server on a free port.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use napiatke_cache::testing::RedisServer;
use napiatke_cache::{Cache, CacheConfig, Namespace};

fn redis_url() -> String {
    std::env::var("NAPIATKE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

fn prefix(test: &str) -> String {
    format!("napiatke-test-{test}-{:x}", fastrand::u64(..))
}

async fn with_redis(test: &str) -> Cache {
    with_url(&prefix(test), Some(redis_url())).await
}

async fn with_url(prefix: &str, url: Option<String>) -> Cache {
    let cache = Cache::try_new(CacheConfig {
        redis_url: url,
        prefix: prefix.to_owned(),
        ..CacheConfig::default()
    })
    .await
    .unwrap();
    cache
}

async fn local() -> Cache {
    with_url("local", None).await
}

const MIN: Duration = Duration::from_secs(60);

/// A loader that counts its runs.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Counter {
    fn runs(&self) -> usize {
        self.0.load(SeqCst)
    }

    async fn load<T>(&self, v: T) -> Result<T, String> {
        self.0.fetch_add(1, SeqCst);
        Ok(v)
    }
}

async fn compute(cache: &Cache, ns: &Namespace, key: &str, counter: &Counter, v: u64) -> u64 {
    *cache
        .get_or_compute(ns, key, || counter.load(v))
        .await
        .unwrap()
}

#[tokio::test]
async fn l1_only_get_set_delete_and_compute_once() {
    let cache = local().await;
    assert!(!cache.has_redis());
    let ns = cache.namespace("things", 1, MIN);
    assert_eq!(cache.get::<u64>(&ns, "a").await, None);
    cache.set(&ns, "a", 7u64).await;
    assert_eq!(cache.get::<u64>(&ns, "a").await.as_deref(), Some(&7));
    cache.delete(&ns, "a").await;
    assert_eq!(cache.get::<u64>(&ns, "a").await, None);

    let counter = Counter::default();
    assert_eq!(compute(&cache, &ns, "b", &counter, 1).await, 1);
    assert_eq!(
        compute(&cache, &ns, "b", &counter, 2).await,
        1,
        "second call is a hit"
    );
    assert_eq!(counter.runs(), 1);
    let stats = cache.stats();
    assert!(!stats.redis_configured);
    let things = &stats.namespaces[0];
    assert_eq!((things.name.as_str(), things.loads), ("things", 1));
    assert_eq!(things.l1.hits, 2, "get after set and the second compute");
}

#[tokio::test]
async fn absent_results_are_cached_too() {
    let cache = local().await;
    let ns = cache.namespace("maybe", 1, MIN);
    let counter = Counter::default();
    for _ in 0..3 {
        let v = cache
            .get_or_compute(&ns, "none", || counter.load(None::<u64>))
            .await
            .unwrap();
        assert_eq!(*v, None);
        let empty = cache
            .get_or_compute(&ns, "empty", || counter.load(Vec::<String>::new()))
            .await
            .unwrap();
        assert!(empty.is_empty());
    }
    assert_eq!(
        counter.runs(),
        2,
        "one load for None, one for the empty list"
    );
}

#[tokio::test]
async fn loader_errors_are_returned_and_not_cached() {
    let cache = local().await;
    let ns = cache.namespace("flaky", 1, MIN);
    let failed = cache
        .get_or_compute(&ns, "k", || async {
            Err::<u64, _>("database down".to_owned())
        })
        .await;
    assert_eq!(
        failed.err().as_deref().map(String::as_str),
        Some("database down")
    );
    let counter = Counter::default();
    assert_eq!(compute(&cache, &ns, "k", &counter, 5).await, 5);
    assert_eq!(counter.runs(), 1);
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let cache = local().await;
    let ns = cache.namespace("short", 1, Duration::from_millis(100));
    let counter = Counter::default();
    compute(&cache, &ns, "k", &counter, 1).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    compute(&cache, &ns, "k", &counter, 2).await;
    assert_eq!(counter.runs(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_compute_once() {
    for cache in [local().await, with_redis("flight").await] {
        let ns = cache.namespace("flight", 1, MIN);
        let counter = Counter::default();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, ns, counter) = (cache.clone(), ns.clone(), counter.clone());
                tokio::spawn(async move {
                    *cache
                        .get_or_compute(&ns, "slow", || async {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            counter.load(42u64).await
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 42);
        }
        assert_eq!(counter.runs(), 1, "16 concurrent misses, one load");
    }
}

#[tokio::test]
async fn early_refresh_recomputes_before_expiry() {
    let cache = local().await;
    let ns = cache.namespace("hot", 1, Duration::from_millis(400));
    let counter = Counter::default();
    let slow = |v: u64| {
        let counter = counter.clone();
        move || async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            counter.load(v).await
        }
    };
    cache.get_or_compute(&ns, "k", slow(1)).await.unwrap();
    // Inside the last compute-time of the TTL, each read refreshes with probability
    // e^(-left/delta) >= e^-1; 50 reads all declining would be (1-e^-1)^50 < 1e-9.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fresh = false;
    for _ in 0..50 {
        let v = cache.get_or_compute(&ns, "k", slow(2)).await.unwrap();
        if *v == 2 {
            fresh = true;
            break;
        }
    }
    assert!(fresh, "a read before expiry recomputed the value");
    assert_eq!(cache.stats().namespaces[0].early_refreshes, 1);
    assert_eq!(counter.runs(), 2);
}

#[tokio::test]
async fn namespace_invalidation_drops_every_key() {
    for cache in [local().await, with_redis("ns").await] {
        let ns = cache.namespace("weeks", 1, MIN);
        let other = cache.namespace("rooms", 1, MIN);
        let counter = Counter::default();
        for k in ["a", "b", "c"] {
            compute(&cache, &ns, k, &counter, 1).await;
        }
        compute(&cache, &other, "a", &counter, 1).await;
        cache.invalidate_namespace(&ns).await;
        for k in ["a", "b", "c"] {
            assert_eq!(compute(&cache, &ns, k, &counter, 2).await, 2);
        }
        assert_eq!(
            compute(&cache, &other, "a", &counter, 2).await,
            1,
            "other namespace kept"
        );
        assert_eq!(counter.runs(), 7);
    }
}

#[tokio::test]
async fn l2_answers_after_l1_is_cleared() {
    let cache = with_redis("l2hit").await;
    let ns = cache.namespace("v", 1, MIN);
    let counter = Counter::default();
    compute(&cache, &ns, "k", &counter, 9).await;
    cache.clear_local();
    assert_eq!(compute(&cache, &ns, "k", &counter, 10).await, 9);
    assert_eq!(counter.runs(), 1);
    let s = cache.stats();
    assert_eq!((s.l1.misses, s.l2.hits, s.l2.misses), (2, 1, 1));
    assert!(s.l2_latency.count >= 3, "get, set, get timed");
}

#[tokio::test]
async fn a_changed_type_reads_old_entries_as_misses() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Old {
        a: u32,
    }
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct New {
        a: u32,
        b: String,
    }
    let p = prefix("types");
    let old_deploy = with_url(&p, Some(redis_url())).await;
    let ns = old_deploy.namespace("shape", 1, MIN);
    old_deploy.set(&ns, "k", Old { a: 1 }).await;
    // A new build reads the same key with another type: the tag differs, so it is a
    // miss and the loader answers.
    let new_deploy = with_url(&p, Some(redis_url())).await;
    let ns_new = new_deploy.namespace("shape", 1, MIN);
    let v = new_deploy
        .get_or_compute(&ns_new, "k", || async {
            Ok::<_, String>(New {
                a: 2,
                b: "x".into(),
            })
        })
        .await
        .unwrap();
    assert_eq!(
        *v,
        New {
            a: 2,
            b: "x".into()
        }
    );
    assert_eq!(new_deploy.stats().l2.misses, 1);
}

#[tokio::test]
async fn an_l1_copy_never_outlives_the_redis_entry() {
    let p = prefix("outlive");
    let writer = with_url(&p, Some(redis_url())).await;
    let short = writer.namespace("n", 1, Duration::from_millis(300));
    writer.set(&short, "k", 1u64).await;
    // A process configured with a long TTL reads it: its L1 copy takes the shorter
    // remaining life of the Redis entry.
    let reader = with_url(&p, Some(redis_url())).await;
    let long = reader.namespace("n", 1, MIN);
    assert_eq!(reader.get::<u64>(&long, "k").await.as_deref(), Some(&1));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(reader.get::<u64>(&long, "k").await, None);
}

#[tokio::test]
async fn two_processes_never_read_stale_after_a_write_on_the_other() {
    let p = prefix("twins");
    let a = with_url(&p, Some(redis_url())).await;
    let b = with_url(&p, Some(redis_url())).await;
    assert!(a.subscribed() && b.subscribed());
    let (na, nb) = (a.namespace("n", 1, MIN), b.namespace("n", 1, MIN));
    let counter = Counter::default();
    for round in 0..20u64 {
        // b holds the value in L1...
        assert_eq!(compute(&b, &nb, "k", &counter, round).await, round);
        assert_eq!(b.get::<u64>(&nb, "k").await.as_deref(), Some(&round));
        // ...a writes; b's very next read sees it.
        match round % 3 {
            0 => {
                a.set(&na, "k", round + 1).await;
                assert_eq!(b.get::<u64>(&nb, "k").await.as_deref(), Some(&(round + 1)));
                a.delete(&na, "k").await;
            }
            1 => a.delete(&na, "k").await,
            _ => a.invalidate_namespace(&na).await,
        }
        assert_eq!(b.get::<u64>(&nb, "k").await, None, "round {round}");
    }
    assert!(b.stats().invalidations_received >= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_serves_from_l1_and_loader_then_comes_back() {
    let mut redis = RedisServer::start(None).unwrap();
    let cache = with_url(&prefix("outage"), Some(redis.url())).await;
    let ns = cache.namespace("n", 1, MIN);
    let counter = Counter::default();
    assert_eq!(compute(&cache, &ns, "warm", &counter, 1).await, 1);

    redis.stop();
    let during = tokio::time::timeout(Duration::from_secs(10), async {
        // Cached keys come from L1; new keys from the loader; writes do not fail.
        for i in 0..30u64 {
            assert_eq!(compute(&cache, &ns, "warm", &counter, 99).await, 1);
            assert_eq!(
                compute(&cache, &ns, &format!("cold{i}"), &counter, i).await,
                i
            );
        }
        cache.set(&ns, "written", 5u64).await;
        assert_eq!(cache.get::<u64>(&ns, "written").await.as_deref(), Some(&5));
    })
    .await;
    assert!(during.is_ok(), "requests did not hang on a dead Redis");
    let s = cache.stats();
    assert!(s.l2_errors + s.l2_timeouts >= 3, "failures counted: {s:?}");
    assert!(s.l2_skipped > 0, "the breaker stopped trying: {s:?}");

    // Same port again: the breaker lets a request through, the pool dials anew.
    let redis = RedisServer::start(Some(redis.port())).unwrap();
    let back = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            cache.clear_local();
            compute(&cache, &ns, "after", &counter, 7).await;
            if cache.stats().l2.hits > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        back.is_ok(),
        "L2 used again after Redis came back: {:?}",
        cache.stats()
    );
    drop(redis);
}

/// Found by the failure drill (scripts/drills.py): the pool's idle connections die
/// with Redis, and each used to fail one probe after Redis was back, the breaker
/// doubling its cool-down each time: with many of them Redis stayed unused for over
/// 6 s. The pool is now replaced when the breaker opens, so Redis is used again
/// within about one cool-down of its return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_that_died_with_redis_do_not_delay_its_return() {
    let mut redis = RedisServer::start(None).unwrap();
    let cache = with_url(&prefix("stale"), Some(redis.url())).await;
    let ns = cache.namespace("n", 1, MIN);
    let counter = Counter::default();
    // Many reads at once: the pool opens several connections, idle after.
    for _ in 0..3 {
        futures_util::future::join_all((0..64u64).map(|i| {
            let (cache, ns, counter) = (&cache, &ns, &counter);
            async move { compute(cache, ns, &format!("k{i}"), counter, i).await }
        }))
        .await;
    }
    redis.stop();
    // Reads fail until the breaker opens.
    for i in 0..10u64 {
        cache.clear_local();
        compute(&cache, &ns, &format!("down{i}"), &counter, i).await;
    }
    let redis = RedisServer::start(Some(redis.port())).unwrap();
    let back = std::time::Instant::now();
    let hits = cache.stats().l2.hits;
    while cache.stats().l2.hits == hits && back.elapsed() < Duration::from_secs(15) {
        cache.clear_local();
        compute(&cache, &ns, "k1", &counter, 1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        back.elapsed() < Duration::from_secs(3),
        "Redis used again {:?} after it came back: {:?}",
        back.elapsed(),
        cache.stats()
    );
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_costs_one_timeout_per_operation_at_most() {
    // Accepts connections and reads, never replies: a hung server.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let cache = with_url(&prefix("hung"), Some(format!("redis://127.0.0.1:{port}/0"))).await;
    let ns = cache.namespace("n", 1, MIN);
    let counter = Counter::default();
    let served = tokio::time::timeout(Duration::from_secs(10), async {
        for i in 0..20u64 {
            assert_eq!(compute(&cache, &ns, &format!("k{i}"), &counter, i).await, i);
        }
    })
    .await;
    assert!(served.is_ok());
    let s = cache.stats();
    assert!(s.l2_timeouts >= 3 && s.l2_skipped > 0, "{s:?}");
    assert_eq!(counter.runs(), 20);
}

#[tokio::test]
async fn a_malformed_url_is_refused_or_runs_l1_only() {
    let bad = CacheConfig {
        redis_url: Some("http://nope".to_owned()),
        ..CacheConfig::default()
    };
    assert!(Cache::try_new(bad.clone()).await.is_err());
    let cache = Cache::new(bad).await;
    assert!(!cache.has_redis());
}

#[tokio::test]
async fn redis_figures_and_key_counts_per_namespace() {
    let cache = with_redis("figures").await;
    let (a, b) = (
        cache.namespace("alpha", 1, MIN),
        cache.namespace("beta", 1, MIN),
    );
    let counter = Counter::default();
    for i in 0..5 {
        compute(&cache, &a, &i.to_string(), &counter, 1).await;
    }
    compute(&cache, &b, "x", &counter, 1).await;
    cache.invalidate_namespace(&b).await;
    let counts = cache
        .key_counts(10_000)
        .await
        .unwrap_or_else(|| panic!("redis configured"))
        .unwrap();
    assert!(counts.complete);
    assert_eq!(
        counts.per_namespace,
        vec![
            ("alpha".to_owned(), 5),
            ("beta".to_owned(), 1),
            ("gen".to_owned(), 1)
        ]
    );
    let info = cache
        .redis_info()
        .await
        .unwrap_or_else(|| panic!("redis configured"))
        .unwrap();
    assert!(info.keys >= 7 && info.connected_clients >= 1 && !info.used_memory.is_empty());
    assert!(local().await.redis_info().await.is_none());
}

#[tokio::test]
async fn l1_is_bounded_by_bytes() {
    let cache = Cache::try_new(CacheConfig {
        l1_capacity_bytes: 20_000,
        ..CacheConfig::default()
    })
    .await
    .unwrap();
    let ns = cache.namespace("big", 1, MIN);
    // 100 values of about 1.3 KB each (large numbers: postcard's varints take 10
    // bytes each), several times what L1 may hold.
    for i in 0..100u64 {
        cache
            .set(&ns, &i.to_string(), vec![u64::MAX - i; 128])
            .await;
    }
    cache.sync_stats().await;
    let s = cache.stats();
    assert!(s.l1_bytes <= 20_000, "{} bytes held", s.l1_bytes);
    assert!(
        s.l1_entries >= 10 && s.l1_entries <= 20,
        "{} entries",
        s.l1_entries
    );
}

/// Counts warnings from the cache.
#[derive(Clone, Default)]
struct Warnings(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let m = event.metadata();
        if *m.level() == tracing::Level::WARN && m.target() == "napiatke_cache" {
            self.0.fetch_add(1, SeqCst);
        }
    }
}

/// Runs `test` on a runtime of its own; how many warnings the cache logged meanwhile.
fn warnings_during(test: impl std::future::Future<Output = ()>) -> usize {
    use tracing_subscriber::layer::SubscriberExt;
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
    warnings.0.load(SeqCst)
}

#[test]
fn a_dead_redis_is_logged_once_per_interval_not_per_request() {
    let warnings = warnings_during(async {
        // A port nothing listens on: every operation is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let cache = with_url(
            &prefix("quiet"),
            Some(format!("redis://127.0.0.1:{port}/0")),
        )
        .await;
        let ns = cache.namespace("n", 1, MIN);
        let counter = Counter::default();
        for i in 0..50u64 {
            compute(&cache, &ns, &format!("k{i}"), &counter, i).await;
            if i % 10 == 0 {
                // Past the breaker's cool-down, so Redis is tried (and fails) again.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        let s = cache.stats();
        // Three failures open the breaker; the sleeps outlast its cool-downs, so
        // Redis was tried (and failed) again several times.
        assert!(s.l2_errors + s.l2_timeouts >= 4, "{s:?}");
    });
    assert_eq!(warnings, 1, "one warning in the 10 s interval");
}

/// A load that read the old row before a write elsewhere, and finishes after that
/// write's invalidation, must not put the old row back, in either tier or process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_overlapping_an_invalidation_stores_nothing() {
    let p = prefix("race");
    let a = with_url(&p, Some(redis_url())).await;
    let b = with_url(&p, Some(redis_url())).await;
    let (na, nb) = (a.namespace("n", 1, MIN), b.namespace("n", 1, MIN));
    let (read_tx, read_rx) = tokio::sync::oneshot::channel::<()>();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let loader = {
        let (b, nb) = (b.clone(), nb.clone());
        tokio::spawn(async move {
            *b.get_or_compute(&nb, "k", || async move {
                let old = 1u64; // "read" before the write
                let _ = read_tx.send(());
                let _ = go_rx.await;
                Ok::<_, String>(old)
            })
            .await
            .unwrap()
        })
    };
    let _ = read_rx.await;
    a.delete(&na, "k").await; // the write's invalidation, on the other process
    let _ = go_tx.send(());
    assert_eq!(loader.await.unwrap(), 1, "the caller still gets its answer");
    assert_eq!(b.get::<u64>(&nb, "k").await, None, "not kept in b");
    a.clear_local();
    assert_eq!(a.get::<u64>(&na, "k").await, None, "not in Redis");
}

#[tokio::test]
async fn batches_load_only_what_neither_tier_has() {
    for cache in [local().await, with_redis("many").await] {
        let ns = cache.namespace("rows", 1, MIN);
        let keys: Vec<String> = (0..5).map(|i| format!("r{i}")).collect();
        cache.set(&ns, "r1", 100u64).await;
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let load = |asked: Arc<std::sync::Mutex<Vec<usize>>>| {
            move |missing: Vec<usize>| async move {
                asked.lock().map(|mut a| a.extend(&missing)).ok();
                Ok::<_, String>(missing.iter().map(|&i| i as u64).collect::<Vec<u64>>())
            }
        };
        let got = cache
            .get_or_compute_many(&ns, &keys, load(Arc::clone(&asked)))
            .await
            .unwrap();
        let values: Vec<u64> = got
            .iter()
            .map(|v| v.as_deref().copied().unwrap_or(999))
            .collect();
        assert_eq!(values, [0, 100, 2, 3, 4]);
        assert_eq!(
            *asked.lock().unwrap_or_else(|e| e.into_inner()),
            [0, 2, 3, 4]
        );
        // Everything is cached now; after L1 is dropped, Redis (when there is one)
        // answers in one MGET.
        if cache.has_redis() {
            cache.clear_local();
        }
        let again = cache
            .get_or_compute_many(&ns, &keys, |_| async {
                Err::<Vec<u64>, _>("not called".to_owned())
            })
            .await
            .unwrap();
        assert_eq!(again.iter().filter(|v| v.is_some()).count(), 5);
        let s = cache.stats();
        if cache.has_redis() {
            assert_eq!(s.l2.hits, 5, "{s:?}");
        } else {
            assert_eq!(s.l1.hits, 6, "r1 once, then all five: {s:?}");
        }
    }
}

async fn with_keepalive(prefix: &str, url: String, keepalive: Duration) -> Cache {
    Cache::try_new(CacheConfig {
        redis_url: Some(url),
        prefix: prefix.to_owned(),
        keepalive,
        ..CacheConfig::default()
    })
    .await
    .unwrap()
}

/// Waits up to `limit` for `cond`; whether it came true.
async fn eventually(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

const KEEPALIVE: Duration = Duration::from_millis(100);

/// Issue 19: a PING on a subscribed RESP2 connection answers ["pong", ""]; reading
/// it as a string dropped the subscription and emptied L1 at every keep-alive.
#[test]
fn a_healthy_redis_keeps_the_subscription_and_l1_across_keepalives() {
    let warnings = warnings_during(async {
        let p = prefix("keepalive");
        let a = with_keepalive(&p, redis_url(), KEEPALIVE).await;
        let b = with_keepalive(&p, redis_url(), KEEPALIVE).await;
        assert!(
            eventually(Duration::from_secs(2), || a.subscribed() && b.subscribed()).await,
            "both subscribed"
        );
        let (na, nb) = (a.namespace("n", 1, MIN), b.namespace("n", 1, MIN));
        let counter = Counter::default();
        assert_eq!(compute(&a, &na, "k", &counter, 1).await, 1);
        assert_eq!(compute(&b, &nb, "k", &counter, 1).await, 1);
        // Five keep-alive intervals with nothing else happening.
        tokio::time::sleep(KEEPALIVE * 5).await;
        let hits = a.stats().l1.hits;
        assert_eq!(compute(&a, &na, "k", &counter, 99).await, 1);
        let s = a.stats();
        assert_eq!(s.l1.hits, hits + 1, "answered from L1: it was kept: {s:?}");
        assert_eq!(counter.runs(), 1);
        assert!(s.subscribed, "{s:?}");
        assert_eq!((s.reconnects, s.l1_resets), (0, 0), "{s:?}");
        assert_eq!(s.last_reconnect_unix_ms, None);
        assert_eq!(b.stats().reconnects, 0);
        // The subscription is alive: a write on one is seen by the other at once.
        a.set(&na, "k", 2u64).await;
        assert_eq!(b.get::<u64>(&nb, "k").await.as_deref(), Some(&2));
    });
    assert_eq!(warnings, 0, "no warning in healthy operation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_gives_one_reconnect_and_one_l1_reset() {
    let mut redis = RedisServer::start(None).unwrap();
    let cache = with_keepalive(&prefix("restart"), redis.url(), KEEPALIVE).await;
    assert!(eventually(Duration::from_secs(2), || cache.subscribed()).await);
    let ns = cache.namespace("n", 1, MIN);
    let counter = Counter::default();
    assert_eq!(compute(&cache, &ns, "k", &counter, 1).await, 1);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();

    redis.stop();
    assert!(
        eventually(Duration::from_secs(3), || !cache.subscribed()).await,
        "the loss is noticed"
    );
    let redis = RedisServer::start(Some(redis.port())).unwrap();
    assert!(
        eventually(Duration::from_secs(15), || cache.subscribed()).await,
        "subscribed again: {:?}",
        cache.stats()
    );
    tokio::time::sleep(KEEPALIVE * 4).await;
    let s = cache.stats();
    assert_eq!((s.reconnects, s.l1_resets), (1, 1), "{s:?}");
    assert!(
        s.last_reconnect_unix_ms.is_some_and(|t| t >= before),
        "{s:?}"
    );
    // L1 was emptied and the restarted Redis has nothing: the loader runs again.
    assert_eq!(compute(&cache, &ns, "k", &counter, 2).await, 2);
    assert_eq!(counter.runs(), 2);
    drop(redis);
}

/// A TCP proxy to the test Redis that can stop forwarding while keeping every
/// connection open: a half-open link, as a dead NAT entry or a partition gives.
struct BlackHoleProxy {
    port: u16,
    forwarding: Arc<std::sync::atomic::AtomicBool>,
}

impl BlackHoleProxy {
    fn start(upstream: std::net::SocketAddr) -> BlackHoleProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::AtomicBool;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let forwarding = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&forwarding);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    let flag = Arc::clone(&flag);
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            // Swallowed, not refused: the peer never learns.
                            if n == 0 || (flag.load(SeqCst) && to.write_all(&buf[..n]).is_err()) {
                                break;
                            }
                        }
                    });
                }
            }
        });
        BlackHoleProxy { port, forwarding }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn forward(&self, on: bool) {
        self.forwarding.store(on, SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_connection_is_found_by_the_keepalive() {
    use std::net::ToSocketAddrs;
    let url = redis_url();
    let host_port = url
        .trim_start_matches("redis://")
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let upstream = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("no host:port in {url}"));
    let proxy = BlackHoleProxy::start(upstream);
    let cache = with_keepalive(&prefix("halfopen"), proxy.url(), KEEPALIVE).await;
    assert!(eventually(Duration::from_secs(2), || cache.subscribed()).await);
    tokio::time::sleep(KEEPALIVE * 3).await;
    assert_eq!(cache.stats().reconnects, 0, "{:?}", cache.stats());

    // Nothing closes: only the keep-alive can tell.
    proxy.forward(false);
    assert!(
        eventually(Duration::from_secs(3), || !cache.subscribed()).await,
        "the silent connection was given up: {:?}",
        cache.stats()
    );
    proxy.forward(true);
    assert!(
        eventually(Duration::from_secs(15), || cache.subscribed()).await,
        "subscribed again once the link carries data: {:?}",
        cache.stats()
    );
    let s = cache.stats();
    assert_eq!((s.reconnects, s.l1_resets), (1, 1), "{s:?}");
}
