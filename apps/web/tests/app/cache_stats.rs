//! /admin/cache-stats/, and pages while Redis is down.

use actix_web::http::StatusCode;
use actix_web::test::{self};
use napiatke_db::testing::FIXTURE_PASSWORD;
use napiatke_db::Engine;

use crate::common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    cache_stats_page_shows_both_tiers => cache_stats_page;
    pages_stay_up_and_right_while_redis_is_down => redis_outage;
}

async fn cache_stats_page(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    // Made-up session cookies are looked up but never cached: they cannot grow Redis.
    for _ in 0..3 {
        let bogus = Browser {
            session: Some(format!("{:064x}", rand_u64())),
        };
        assert_eq!(
            send(&app, bogus.get("/dashboard/")).await.status,
            StatusCode::SEE_OTHER
        );
    }
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    // The first read of the dashboard is a miss; in this second one its session and
    // its rendered HTML are L1 hits, and its figures come from the per-process memo
    // (nothing changed since), without a lookup.
    send(&app, admin.get("/dashboard/")).await;
    let dash = send(&app, admin.get("/dashboard/")).await;
    assert_eq!(dash.status, StatusCode::OK);
    assert!(
        dash.header("server-timing")
            .is_some_and(|t| t.starts_with("html;desc=HIT, ")
                && t.contains("desc=\"L1 2/2 L2 0/0 (hits/lookups)\"")),
        "{:?}",
        dash.header("server-timing")
    );
    let page = send(&app, admin.get("/admin/cache-stats/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"redis-info\"") && page.body.contains("Used memory"));
    assert!(page.body.contains("Connected clients") && page.body.contains("Keyspace hit rate"));
    assert!(
        page.body.contains(
            "<tr><td>dashboard</td><td>0</td><td>1</td><td>0.0%</td>\n      <td>0</td><td>1</td><td>0.0%</td>\n      <td>1</td>"
        ),
        "dashboard: 1 L1 miss, 1 L2 miss, 1 load (the second read came from the memo):\n{}",
        page.body
    );
    let keys = row_after(&page.body, "<td>dashboard</td>");
    assert!(
        keys.trim_end().ends_with("<td>1</td>"),
        "one dashboard key in Redis: {keys}"
    );
    let sessions = row_after(&page.body, "<td>session</td>");
    assert!(
        sessions.trim_end().ends_with("<td>1</td>"),
        "one session key in Redis (the admin's), none for made-up cookies: {sessions}"
    );
    assert!(!page.body.contains("redis-off"));
    // The invalidation listener is up and has never had to reconnect.
    assert!(
        page.body.contains("Invalidation listener subscribed;")
            && page
                .body
                .contains("<span id=\"reconnects\">0</span> reconnects;")
            && page
                .body
                .contains("L1 emptied <span id=\"l1-resets\">0</span> times"),
        "{}",
        page.body
    );

    let (_, tina) = login(&app, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(
        send(&app, tina.get("/admin/cache-stats/")).await.status,
        StatusCode::FORBIDDEN
    );

    let local = test::init_service(napiatke_web::app::app(
        state_with(&t, false, &cache_prefix(), None).await,
    ))
    .await;
    let (_, admin) = login(&local, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let page = send(&local, admin.get("/admin/cache-stats/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Redis is not configured"));
    assert!(!page.body.contains("redis-info"));
    assert!(page.body.contains("<tr><td>session</td>"));
}

/// Redis stopped while the app serves: pages stay 200 with the right figures, writes
/// work and are seen; when Redis is back the app uses it again.
async fn redis_outage(engine: Engine) {
    let t = fixture(engine);
    let mut redis = napiatke_cache::testing::RedisServer::start(None).unwrap();
    let state = state_with(&t, false, &cache_prefix(), Some(redis.url())).await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(
        rate_in(&send(&app, sara.get("/dashboard/")).await.body),
        "50.0%"
    );

    redis.stop();
    for page in [
        "/dashboard/",
        "/lessons/",
        "/lessons/4/",
        "/calendar/",
        "/students/",
    ] {
        let got = send(&app, admin.get(page)).await;
        assert_eq!(got.status, StatusCode::OK, "{page} with Redis down");
    }
    assert_eq!(
        rate_in(&send(&app, sara.get("/dashboard/")).await.body),
        "50.0%"
    );
    let res = mark(&app, &admin, 4, "4", "PRESENT").await;
    assert_eq!(
        res.status,
        StatusCode::SEE_OTHER,
        "writes go on with Redis down"
    );
    assert_eq!(
        rate_in(&send(&app, sara.get("/dashboard/")).await.body),
        "66.7%"
    );
    let (_, tina) = login(&app, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(
        rate_in(&send(&app, tina.get("/dashboard/")).await.body),
        "50.0%"
    );
    let stats = send(&app, admin.get("/admin/cache-stats/")).await;
    assert_eq!(stats.status, StatusCode::OK);
    assert!(
        stats.body.contains("id=\"redis-down\""),
        "the page says Redis is not answering"
    );
    let cache = state.services.cache();
    let failures = cache.stats();
    assert!(
        failures.l2_errors + failures.l2_timeouts > 0,
        "{failures:?}"
    );

    let _redis = napiatke_cache::testing::RedisServer::start(Some(redis.port())).unwrap();
    let before = cache.stats().l2.hits;
    let mut back = false;
    for _ in 0..100 {
        cache.clear_local();
        let got = send(&app, sara.get("/dashboard/")).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(rate_in(&got.body), "66.7%");
        if cache.stats().l2.hits > before {
            back = true;
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        back,
        "L2 answers again once Redis is back: {:?}",
        cache.stats()
    );
}
