//! The development debug toolbar: injected into whole pages only, following htmx
//! requests in its history, panels that match what the request did, EXPLAIN on
//! both engines, and absent (no handle, no header, no routes) when off or in
//! production.

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpResponse};
use napiatke_db::queries::{lessons, Scope};
use napiatke_db::testing::FIXTURE_PASSWORD;
use napiatke_db::Engine;
use napiatke_domain::LessonId;

use crate::common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    the_toolbar_follows_pages_and_htmx_requests => follows;
    explain_shows_the_engines_plan => explain;
    repeated_statements_are_marked => repeated;
    the_toolbar_is_absent_when_off_and_in_production => absent;
}

async fn toolbar_state(t: &napiatke_db::testing::TestDb) -> web::Data<napiatke_web::AppState> {
    state_tweaked(t, false, &cache_prefix(), Some(redis_url()), |s| {
        s.debug_toolbar = true;
    })
    .await
}

async fn follows(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(toolbar_state(&t).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;

    // A whole page, asked for compressed: the handle goes in before </body>, the
    // page goes out plain and is not stored (a stored copy would show an old
    // request's toolbar).
    let page = send(
        &app,
        admin
            .get("/lessons/")
            .insert_header(("accept-encoding", "br, gzip")),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let id = page.header("x-request-id").unwrap().to_owned();
    assert_eq!(page.header("x-debug-request-id"), Some(id.as_str()));
    assert_eq!(page.header("content-encoding"), None);
    assert_eq!(page.header("etag"), None);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let handle_at = page.body.find("<aside id=\"napiatke-debug\"").unwrap();
    assert!(handle_at < page.body.rfind("</body>").unwrap());
    assert!(page
        .body
        .contains(&format!("data-request=\"{id}\" data-base=\"/__debug__/\"")));
    let statements = page.queries();
    assert!(
        page.body.contains(&format!("debug · {statements} SQL · ")),
        "the handle's count is the request's"
    );
    assert!(page.body.contains("/static/toolbar/toolbar."));

    // Its panels: as many statements as X-Query-Count said, the templates with
    // their context, the cache lookups, masked cookies, hidden secrets.
    let panels = send(&app, admin.get(&format!("/__debug__/requests/{id}"))).await;
    assert_eq!(panels.status, StatusCode::OK);
    assert!(
        panels
            .body
            .contains(&format!("SQL: {statements} statements")),
        "{}",
        panels.body
    );
    assert_eq!(
        panels.body.matches("<code>SELECT").count() + panels.body.matches("<code>WITH").count(),
        usize::try_from(statements).unwrap(),
        "each statement listed with its SQL"
    );
    assert!(panels.body.contains("<code>lessons.html</code>"));
    assert!(
        panels.body.contains("lessons, nav, pager"),
        "context keys listed: {}",
        panels.body
    );
    assert!(panels.body.contains("Cache: "));
    assert!(panels.body.contains("<th>cookie</th><td>******** ("));
    assert!(!panels
        .body
        .contains(admin.session.as_deref().unwrap_or("-")));
    assert!(panels.body.contains("<th>DEBUG_TOOLBAR</th><td>true</td>"));
    assert!(panels.body.contains("<th>diesel</th>"));

    // An htmx request: no handle in the fragment, but followed by its header and
    // kept in the history with what triggered it and where it went.
    let rows = send(
        &app,
        admin
            .get("/lessons/?status=scheduled")
            .insert_header(("hx-request", "true"))
            .insert_header(("hx-trigger", "pager-next"))
            .insert_header(("hx-target", "lesson-rows")),
    )
    .await;
    assert_eq!(rows.status, StatusCode::OK);
    assert!(!rows.body.contains("napiatke-debug"));
    let rows_id = rows.header("x-debug-request-id").unwrap().to_owned();
    let history = send(&app, admin.get("/__debug__/history")).await;
    assert_eq!(history.status, StatusCode::OK);
    let (newer, older) = (
        history
            .body
            .find(&format!("data-id=\"{rows_id}\""))
            .unwrap(),
        history.body.find(&format!("data-id=\"{id}\"")).unwrap(),
    );
    assert!(newer < older, "newest first");
    assert!(history
        .body
        .contains("trigger pager-next → target lesson-rows"));
    assert!(
        !history.body.contains("GET /__debug__/"),
        "the toolbar's own requests are not recorded"
    );
    let htmx_panels = send(&app, admin.get(&format!("/__debug__/requests/{rows_id}"))).await;
    assert!(htmx_panels
        .body
        .contains("<th>HX-Target</th><td>lesson-rows</td>"));

    // Gone from the history: a clear 404.
    let gone = send(&app, admin.get("/__debug__/requests/no-such-id")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.body.contains("keeps the last 50"));
}

async fn explain(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(toolbar_state(&t).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let page = send(&app, admin.get("/lessons/1/")).await;
    assert_eq!(page.status, StatusCode::OK);
    let id = page.header("x-request-id").unwrap();
    let panels = send(&app, admin.get(&format!("/__debug__/requests/{id}"))).await;
    // Every SELECT offers its plan; each one explains on this engine.
    let urls: Vec<String> = panels
        .body
        .split("data-ndt=\"explain\" data-url=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next().map(str::to_owned))
        .collect();
    assert!(!urls.is_empty(), "{}", panels.body);
    for url in &urls {
        let plan = send(&app, admin.get(url)).await;
        assert_eq!(plan.status, StatusCode::OK, "{url}: {}", plan.body);
        let text = plan
            .body
            .split("<pre class=\"ndt-plan-text\">")
            .nth(1)
            .unwrap_or_default();
        let words: &[&str] = match engine {
            Engine::Sqlite => &[
                "SCAN",
                "SEARCH",
                "SCALAR",
                "CONSTANT",
                "LIST",
                "USE",
                "CO-ROUTINE",
                "MATERIALIZE",
                "COMPOUND",
            ],
            Engine::Postgres => &[
                "Scan",
                "Result",
                "Join",
                "Limit",
                "Sort",
                "Aggregate",
                "Loop",
            ],
        };
        assert!(
            words.iter().any(|w| text.contains(w)),
            "{url}: {}",
            plan.body
        );
    }
    let missing = send(&app, admin.get(&format!("/__debug__/explain/{id}/9999"))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// A route that loads `n` lessons one by one.
async fn lessons_one_by_one(db: web::Data<napiatke_db::Db>, n: web::Path<i64>) -> HttpResponse {
    let mut conn = db.get().unwrap();
    for id in 1..=n.into_inner() {
        lessons::get(&mut conn, LessonId(id), Scope::All).unwrap();
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body("<html><body><p>loaded</p></body></html>")
}

async fn repeated(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(
        App::new()
            .app_data(toolbar_state(&t).await)
            .app_data(web::Data::new(t.db.clone()))
            .route("/one-by-one/{n}", web::get().to(lessons_one_by_one))
            .configure(napiatke_web::app::routes)
            .wrap(actix_web::middleware::from_fn(
                napiatke_web::middleware::front,
            )),
    )
    .await;
    // Read raw: common::read fails on an N+1, which this route is.
    let res = test::call_service(&app, TestRequest::get().uri("/one-by-one/3").to_request()).await;
    let id = res
        .headers()
        .get("x-debug-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_owned();
    let body = String::from_utf8_lossy(&test::read_body(res).await).into_owned();
    assert!(body.contains("<p>loaded</p><aside id=\"napiatke-debug\""));
    let panels = send(
        &app,
        TestRequest::get().uri(&format!("/__debug__/requests/{id}")),
    )
    .await;
    // Each lesson is two statements (the lesson, its students): both repeated 3x.
    assert!(panels.body.contains("SQL: 6 statements"), "{}", panels.body);
    assert!(panels.body.contains("6 duplicated"), "{}", panels.body);
    assert_eq!(panels.body.matches("same text 3x").count(), 6);
    assert_eq!(panels.body.matches("N+1: this shape 3x").count(), 6);
}

async fn absent(engine: Engine) {
    let t = fixture(engine);
    for production in [false, true] {
        // Development with DEBUG_TOOLBAR off (the tests' default), and production.
        let app = test::init_service(napiatke_web::app::app(state(&t, production).await)).await;
        let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
        let page = send(&app, admin.get("/lessons/")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.body.contains("napiatke-debug"));
        assert!(!page.body.contains("toolbar"));
        assert_eq!(page.header("x-debug-request-id"), None);
        for path in [
            "/__debug__/history",
            "/__debug__/requests/x",
            "/__debug__/explain/x/0",
        ] {
            let r = send(&app, admin.get(path)).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        }
    }
}
