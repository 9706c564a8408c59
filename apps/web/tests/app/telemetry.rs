//! Monitoring as a client sees it: Server-Timing and X-Response-Time (to whom), the
//! N+1 detector on a deliberately N+1 route and not on the pages, and GET /metrics
//! (who may read it, what it names).

use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpResponse};
use napiatke_db::queries::{lessons, Scope};
use napiatke_db::testing::FIXTURE_PASSWORD;
use napiatke_db::Engine;
use napiatke_domain::LessonId;

use crate::common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    server_timing_names_its_parts => server_timing;
    a_query_per_row_is_reported => n_plus_one;
    metrics_are_for_admins_and_name_routes_not_paths => metrics;
    every_answer_has_a_request_id_and_error_pages_quote_it => request_ids;
}

async fn request_ids(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, true).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    // Made here, distinct per request.
    let a = send(&app, admin.get("/dashboard/")).await;
    let b = send(&app, admin.get("/dashboard/")).await;
    let (ida, idb) = (
        a.header("x-request-id").unwrap(),
        b.header("x-request-id").unwrap(),
    );
    assert_ne!(ida, idb);
    assert!(
        ida.len() == 16 && ida.bytes().all(|c| c.is_ascii_hexdigit()),
        "{ida}"
    );
    // A proxy's id is kept when it is a sane token, replaced when not.
    let kept = send(
        &app,
        admin
            .get("/dashboard/")
            .insert_header(("x-request-id", "edge-7.a_b")),
    )
    .await;
    assert_eq!(kept.header("x-request-id"), Some("edge-7.a_b"));
    for bad in ["has space", "<script>", &"x".repeat(65)] {
        let r = send(
            &app,
            admin
                .get("/dashboard/")
                .insert_header(("x-request-id", bad)),
        )
        .await;
        let id = r.header("x-request-id").unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 16);
    }
    // Error pages quote it, escaped, whatever the error.
    for (path, status) in [
        ("/no-such-page/", 404),
        ("/lessons/?page=0", 400),
        ("/lessons/999999/", 404),
    ] {
        let page = send(
            &app,
            admin
                .get(path)
                .insert_header(("x-request-id", "quote-me-1")),
        )
        .await;
        assert_eq!(page.status.as_u16(), status, "{path}");
        assert_eq!(page.header("x-request-id"), Some("quote-me-1"));
        assert!(
            page.body.contains("Request id: <code>quote-me-1</code>"),
            "{path}: {}",
            page.body
        );
    }
    // The login redirect stays a redirect.
    let anonymous = send(&app, TestRequest::get().uri("/dashboard/")).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert!(anonymous.header("x-request-id").is_some());
}

/// `name;dur=x;desc="..."` entries of a Server-Timing value, by name.
fn timings(value: &str) -> Vec<(String, f64, String)> {
    value
        .split(", ")
        .map(|entry| {
            let mut parts = entry.split(';');
            let name = parts.next().unwrap_or_default().to_owned();
            let (mut dur, mut desc) = (f64::NAN, String::new());
            for p in parts {
                if let Some(d) = p.strip_prefix("dur=") {
                    dur = d.parse().unwrap();
                } else if let Some(d) = p.strip_prefix("desc=") {
                    desc = d.trim_matches('"').to_owned();
                }
            }
            (name, dur, desc)
        })
        .collect()
}

async fn server_timing(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let page = send(&app, admin.get("/lessons/")).await;
    assert_eq!(page.status, StatusCode::OK);
    let entries = timings(page.header("server-timing").unwrap());
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        ["html", "db", "cache", "render", "total"],
        "{entries:?}"
    );
    let get = |n: &str| entries.iter().find(|e| e.0 == n).unwrap();
    assert_eq!(get("db").2, format!("{} statements", page.queries()));
    assert!(page.queries() > 0);
    assert_eq!(
        get("render").2,
        "1 templates",
        "a miss renders the page once"
    );
    assert!(get("render").1 > 0.0);
    assert_eq!(get("total").2, "whole request");
    assert!(get("total").1 >= get("db").1 + get("render").1);
    let response_time = page.header("x-response-time").unwrap();
    let ms: f64 = response_time.strip_suffix("ms").unwrap().parse().unwrap();
    assert!(ms > 0.0);
    // The same page again comes from the cache: nothing rendered, no statement.
    let again = send(&app, admin.get("/lessons/")).await;
    let entries = timings(again.header("server-timing").unwrap());
    let render = entries.iter().find(|e| e.0 == "render").unwrap();
    assert_eq!((render.2.as_str(), again.queries()), ("0 templates", 0));

    // Production without EXPOSE_QUERY_COUNT: admins see timings, nobody else does.
    let prod = test::init_service(napiatke_web::app::app(
        state_tweaked(&t, true, &cache_prefix(), None, |s| {
            s.expose_query_count = false
        })
        .await,
    ))
    .await;
    let (_, admin) = login(&prod, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, tutor) = login(&prod, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    let a = send(&prod, admin.get("/dashboard/")).await;
    assert!(a.header("server-timing").is_some() && a.header("x-response-time").is_some());
    let b = send(&prod, tutor.get("/dashboard/")).await;
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(
        (
            b.header("server-timing"),
            b.header("x-response-time"),
            b.header("x-query-count")
        ),
        (None, None, None)
    );

    // TELEMETRY=off (the baseline its cost is measured against): nothing counted or
    // shown, even to an admin; the request id stays (error pages quote it).
    let off = test::init_service(napiatke_web::app::app(
        state_tweaked(&t, true, &cache_prefix(), None, |s| s.telemetry = false).await,
    ))
    .await;
    let (_, admin) = login(&off, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let page = send(&off, admin.get("/lessons/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        (
            page.header("server-timing"),
            page.header("x-response-time"),
            page.header("x-query-count")
        ),
        (None, None, None)
    );
    assert_eq!(page.header("x-request-id").map(str::len), Some(16));
    let m = send(&off, admin.get("/metrics")).await;
    assert!(
        !m.body.contains("http_route=\"/lessons/\""),
        "no request was measured: {}",
        m.body
    );
}

/// A route that loads `n` lessons one by one, as a careless handler would.
async fn lessons_one_by_one(db: web::Data<napiatke_db::Db>, n: web::Path<i64>) -> HttpResponse {
    let mut conn = db.get().unwrap();
    for id in 1..=n.into_inner() {
        lessons::get(&mut conn, LessonId(id), Scope::All).unwrap();
    }
    HttpResponse::Ok().finish()
}

async fn n_plus_one(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(
        App::new()
            .app_data(state(&t, false).await)
            .app_data(web::Data::new(t.db.clone()))
            .route("/one-by-one/{n}", web::get().to(lessons_one_by_one))
            .wrap(from_fn(napiatke_web::middleware::front)),
    )
    .await;
    // Read raw: common::read fails on the very header this test looks for.
    let one = test::call_service(&app, TestRequest::get().uri("/one-by-one/1").to_request()).await;
    assert_eq!(one.status(), StatusCode::OK);
    assert!(one.headers().get("x-n-plus-one").is_none());
    let two = test::call_service(&app, TestRequest::get().uri("/one-by-one/2").to_request()).await;
    assert!(
        two.headers().get("x-n-plus-one").is_none(),
        "twice is not yet a loop"
    );
    let three =
        test::call_service(&app, TestRequest::get().uri("/one-by-one/3").to_request()).await;
    let found = three
        .headers()
        .get("x-n-plus-one")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no N+1 reported: {:?}", three.headers()));
    assert!(found.starts_with("3x SELECT "), "{found}");
    assert!(found.contains("lesson"), "{found}");
    assert!(
        !found.contains("$1") && !found.contains("= 1"),
        "literals folded: {found}"
    );
}

async fn metrics(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, tutor) = login(&app, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    for path in ["/lessons/1/", "/lessons/2/", "/dashboard/"] {
        assert_eq!(send(&app, admin.get(path)).await.status, StatusCode::OK);
    }
    assert_eq!(
        send(&app, tutor.get("/metrics")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&app, TestRequest::get().uri("/metrics")).await.status,
        StatusCode::SEE_OTHER,
        "no login: the login page"
    );
    let m = send(&app, admin.get("/metrics")).await;
    assert_eq!(m.status, StatusCode::OK);
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let count = |prefix: &str| -> f64 {
        m.body
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{}", m.body))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // Both lesson pages under their route template, none under a raw path.
    assert_eq!(
        count("http_server_request_duration_seconds_count{http_route=\"/lessons/{id}/\",http_request_method=\"GET\",http_response_status_code=\"200\"}"),
        2.0
    );
    assert!(!m.body.contains("/lessons/1/"));
    assert_eq!(count("http_server_active_requests "), 1.0, "this request");
    assert!(count("db_client_connection_max ") >= 1.0);
    // As many slots as connections; none busy but the session read of this request,
    // which has ended (the metrics are written after it).
    assert_eq!(
        count("napiatke_work_slots{state=\"busy\"}") + count("napiatke_work_slots{state=\"free\"}"),
        count("db_client_connection_max ")
    );
    assert_eq!(count("napiatke_work_slots{state=\"busy\"}"), 0.0);
    assert_eq!(count("napiatke_work_waiting "), 0.0);
    assert_eq!(count("napiatke_work_refused_total "), 0.0);
    assert!(
        count("napiatke_cache_lookups_total{tier=\"l1\",namespace=\"session\",result=\"hit\"}")
            >= 1.0
    );
    // The names a dashboard is built on (a snapshot: renaming one breaks dashboards).
    let families: Vec<&str> = m
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    assert_eq!(
        families,
        [
            "http_server_request_duration_seconds histogram",
            "http_server_active_requests gauge",
            "napiatke_request_statements histogram",
            "db_client_connection_count gauge",
            "db_client_connection_max gauge",
            "db_client_connection_wait_time_seconds summary",
            "db_client_connection_timeouts_total counter",
            "napiatke_work_slots gauge",
            "napiatke_work_waiting gauge",
            "napiatke_work_wait_time_seconds summary",
            "napiatke_work_refused_total counter",
            "napiatke_cache_lookups_total counter",
            "napiatke_cache_l1_bytes gauge",
            "napiatke_redis_errors_total counter",
            "napiatke_redis_breaker_open gauge",
            "napiatke_image_jobs gauge",
            "napiatke_image_jobs_finished_total counter",
        ]
    );
}
