//! The cache: an L1 hit, an L2 hit beside a bare Redis GET of the same bytes on the
//! same runtime, a miss with its (trivial) computation, and invalidations. Redis parts
//! are skipped when no Redis answers (NAPIATKE_TEST_REDIS_URL, default
//! redis://127.0.0.1:6379/0). Run: `cargo bench -p napiatke-benches --bench cache`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bb8_redis::redis;
use criterion::{criterion_group, criterion_main, Criterion};
use napiatke_cache::{Cache, CacheConfig};

/// About 1 KB encoded, like a dashboard's figures and next lessons.
fn value() -> Vec<u64> {
    (0..128u64).map(|i| i * 1_000_003).collect()
}

fn redis_url() -> String {
    std::env::var("NAPIATKE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

async fn cache(redis: bool, l1: bool) -> Cache {
    let config = CacheConfig {
        redis_url: redis.then(redis_url),
        prefix: format!("napiatke-bench-{:x}", std::process::id()),
        l1_capacity_bytes: if l1 { 64 * 1024 * 1024 } else { 0 },
        ..CacheConfig::default()
    };
    Cache::new(config).await
}

async fn redis_up() -> bool {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return false;
    };
    let Ok(Ok(mut c)) = tokio::time::timeout(
        Duration::from_secs(1),
        client.get_multiplexed_async_connection(),
    )
    .await
    else {
        return false;
    };
    redis::cmd("PING").query_async::<()>(&mut c).await.is_ok()
}

/// Times `iters` runs of `f` inside one `block_on`, so the runtime's entry cost is
/// not part of each sample.
macro_rules! timed {
    ($rt:expr, $iters:expr, $body:expr) => {
        $rt.block_on(async {
            let started = Instant::now();
            for i in 0..$iters {
                let _ = black_box($body(i).await);
            }
            started.elapsed()
        })
    };
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let with_redis = rt.block_on(redis_up());
    if !with_redis {
        eprintln!("no Redis at {}: L2 benches skipped", redis_url());
    }
    let mut g = c.benchmark_group("cache");

    // L1 hit: the answer for every warm page.
    let local = rt.block_on(cache(false, true));
    let ns = local.namespace("bench", 1, Duration::from_secs(3600));
    rt.block_on(local.set(&ns, "hot", value()));
    g.bench_function("l1_hit", |b| {
        b.iter_custom(|iters| {
            timed!(rt, iters, |_| local.get_or_compute(&ns, "hot", || async {
                Ok::<_, String>(value())
            }))
        })
    });
    // Over 10,000 keys, closer to a real mix than one hot key.
    let keys: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
    rt.block_on(async {
        for k in &keys {
            local.set(&ns, k, value()).await;
        }
    });
    g.bench_function("l1_hit_10k_keys", |b| {
        b.iter_custom(|iters| {
            timed!(rt, iters, |i: u64| {
                let k = &keys[(i.wrapping_mul(7919) % 10_000) as usize];
                local.get_or_compute(&ns, k, || async { Ok::<_, String>(value()) })
            })
        })
    });

    // Miss: key never seen, trivial loader; L1 only.
    let n = AtomicU64::new(0);
    g.bench_function("miss_compute_l1_only", |b| {
        b.iter_custom(|iters| {
            timed!(rt, iters, |_| {
                let k = format!("miss{}", n.fetch_add(1, Ordering::Relaxed));
                let ns = &ns;
                let local = &local;
                async move {
                    local
                        .get_or_compute(ns, &k, || async { Ok::<_, String>(value()) })
                        .await
                }
            })
        })
    });
    g.bench_function("delete_l1_only", |b| {
        b.iter_custom(|iters| timed!(rt, iters, |_| local.delete(&ns, "hot")))
    });

    if with_redis {
        // The bare round trip the L2 hit is compared with: same bytes, same runtime,
        // one multiplexed connection.
        let bytes = napiatke_cache::envelope::encode(
            &value(),
            napiatke_cache::envelope::type_tag::<Vec<u64>>(1),
            napiatke_cache::envelope::Header {
                expires_at_ms: u64::MAX,
                delta_ms: 0,
            },
        )
        .unwrap_or_default();
        let mut conn = rt.block_on(async {
            let client = redis::Client::open(redis_url()).unwrap_or_else(|e| panic!("{e}"));
            client
                .get_multiplexed_async_connection()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        });
        let bare_key = format!("napiatke-bench-bare-{:x}", std::process::id());
        rt.block_on(async {
            let _: Result<(), _> = redis::cmd("SET")
                .arg(&bare_key)
                .arg(&bytes)
                .arg("EX")
                .arg(600)
                .query_async(&mut conn)
                .await;
        });
        g.bench_function("redis_get_bare", |b| {
            b.iter_custom(|iters| {
                timed!(rt, iters, |_| {
                    let mut c = conn.clone();
                    let key = &bare_key;
                    async move {
                        redis::cmd("GET")
                            .arg(key)
                            .query_async::<Option<Vec<u8>>>(&mut c)
                            .await
                    }
                })
            })
        });

        // L2 hit: L1 turned off, so every read is a Redis GET, decode and check.
        let remote = rt.block_on(cache(true, false));
        let rns = remote.namespace("bench", 1, Duration::from_secs(3600));
        rt.block_on(remote.set(&rns, "hot", value()));
        g.bench_function("l2_hit", |b| {
            b.iter_custom(|iters| {
                timed!(rt, iters, |_| remote.get_or_compute(
                    &rns,
                    "hot",
                    || async { Ok::<_, String>(value()) }
                ))
            })
        });

        // Miss with Redis: GET (absent), compute, SET, L1 insert.
        let both = rt.block_on(cache(true, true));
        let bns = both.namespace("bench", 1, Duration::from_secs(60));
        g.bench_function("miss_compute_l1_l2", |b| {
            b.iter_custom(|iters| {
                timed!(rt, iters, |_| {
                    let k = format!("miss{}", n.fetch_add(1, Ordering::Relaxed));
                    let (both, bns) = (&both, &bns);
                    async move {
                        both.get_or_compute(bns, &k, || async { Ok::<_, String>(value()) })
                            .await
                    }
                })
            })
        });
        // A key invalidated everywhere: L1, one DEL, one acknowledged PUBLISH.
        g.bench_function("delete_l1_l2", |b| {
            b.iter_custom(|iters| timed!(rt, iters, |_| both.delete(&bns, "hot")))
        });
        // A namespace invalidated everywhere: one INCR, one PUBLISH.
        g.bench_function("invalidate_namespace_l1_l2", |b| {
            b.iter_custom(|iters| timed!(rt, iters, |_| both.invalidate_namespace(&bns)))
        });
        rt.block_on(async {
            let _: Result<(), _> = redis::cmd("DEL")
                .arg(&bare_key)
                .query_async(&mut conn)
                .await;
        });
    }
    g.finish();
}

criterion_group!(cache_benches, benches);
criterion_main!(cache_benches);
