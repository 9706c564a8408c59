//! /healthz and the error pages.

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use napiatke_db::Engine;
use napiatke_services::FixedClock;
use napiatke_web::config::Settings;

use crate::common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    health_and_errors => health_and_errors;
    the_admin_listener_answers_health_and_metrics_only => admin_listener;
}

/// METRICS_BIND's routes: the probe and the scrape, nothing else, no login.
async fn admin_listener(engine: Engine) {
    let t = fixture(engine);
    let state = state(&t, false).await;
    let admin = test::init_service(
        actix_web::App::new()
            .app_data(state.clone())
            .configure(napiatke_web::app::admin_routes),
    )
    .await;
    let h = send(&admin, TestRequest::get().uri("/healthz")).await;
    assert_eq!((h.status, h.body.as_str()), (StatusCode::OK, "ok\n"));
    let m = send(&admin, TestRequest::get().uri("/metrics")).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.body.contains("napiatke_work_slots"), "{}", m.body);
    for path in ["/", "/login", "/dashboard/"] {
        assert_eq!(
            send(&admin, TestRequest::get().uri(path)).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

async fn health_and_errors(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let h = send(&app, TestRequest::get().uri("/healthz")).await;
    assert_eq!((h.status, h.body.as_str()), (StatusCode::OK, "ok\n"));
    assert_eq!(h.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(h.header("x-query-count"), Some("1"));
    assert!(h
        .header("server-timing")
        .is_some_and(|v| v.starts_with("db;dur=")));

    // Production keeps its statement counts to itself unless EXPOSE_QUERY_COUNT says so.
    let prod_settings =
        Settings::from_lookup(|k| (k == "NAPIATKE_ENV").then(|| "production".to_owned())).unwrap();
    assert!(!prod_settings.expose_query_count);
    let prod_state = napiatke_web::build_state(
        &prod_settings,
        t.db.clone(),
        FixedClock(now()),
        statics(),
        napiatke_cache::Cache::local(napiatke_cache::CacheConfig::default()),
    )
    .unwrap();
    let prod = test::init_service(napiatke_web::app::app(prod_state)).await;
    let h = send(&prod, TestRequest::get().uri("/healthz")).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.header("x-query-count"), None);
    assert_eq!(h.header("server-timing"), None);
}
