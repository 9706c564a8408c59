//! /static/ over HTTP: every header rule of the serving policy, the pages linking the
//! hashed names, and traversal attempts. Served from the repository's real assets.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use napiatke_assets::StaticFiles;
use napiatke_db::testing::TestDb;
use napiatke_services::FixedClock;
use napiatke_web::config::Settings;

struct Fixture {
    files: Arc<StaticFiles>,
    root: std::path::PathBuf,
    _db: TestDb,
    state: actix_web::web::Data<napiatke_web::AppState>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn fixture() -> Fixture {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets");
    let root = std::env::temp_dir().join(format!("napiatke-static-test-{}", std::process::id()));
    napiatke_assets::collect(&src, &root).unwrap();
    let files = Arc::new(StaticFiles::load(&root).unwrap());
    let db = TestDb::sqlite().unwrap();
    let settings = Settings::from_lookup(|_| None).unwrap();
    let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 26)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .unwrap_or_default();
    let state = napiatke_web::build_state(
        &settings,
        db.db.clone(),
        FixedClock(now),
        Arc::clone(&files),
        napiatke_cache::Cache::local(napiatke_cache::CacheConfig::default()),
    )
    .unwrap();
    Fixture {
        files,
        root,
        _db: db,
        state,
    }
}

struct Got {
    status: StatusCode,
    headers: actix_web::http::header::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

macro_rules! get {
    ($app:expr, $req:expr) => {{
        let res = test::call_service(&$app, $req.to_request()).await;
        let status = res.status();
        let headers = res.headers().clone();
        let body = test::read_body(res).await.to_vec();
        Got {
            status,
            headers,
            body,
        }
    }};
}

#[actix_web::test]
async fn hashed_files_are_negotiated_and_cached_forever() {
    let f = fixture();
    let app = test::init_service(napiatke_web::app::app(f.state.clone())).await;
    let url = f.files.url("css/app.css").unwrap_or_default();
    assert!(
        url.starts_with("/static/css/app.")
            && url.ends_with(".css")
            && url != "/static/css/app.css"
    );
    let path = url.trim_start_matches("/static/");
    let on_disk =
        |suffix: &str| std::fs::read(f.root.join(format!("{path}{suffix}"))).unwrap_or_default();

    let br = get!(
        app,
        TestRequest::get()
            .uri(&url)
            .insert_header(("Accept-Encoding", "gzip, deflate, br"))
    );
    assert_eq!(br.status, StatusCode::OK);
    assert_eq!(br.h("content-encoding"), Some("br"));
    assert_eq!(br.h("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(br.h("cache-control"), Some("max-age=31536000, immutable"));
    assert_eq!(br.h("vary"), Some("Accept-Encoding"));
    assert_eq!(br.body, on_disk(".br"));
    assert!(br.h("etag").is_some_and(|e| e.ends_with("-br\"")));
    assert!(
        br.h("x-query-count").is_none(),
        "static files skip request accounting"
    );
    assert_eq!(br.h("x-content-type-options"), Some("nosniff"));

    let gz = get!(
        app,
        TestRequest::get()
            .uri(&url)
            .insert_header(("Accept-Encoding", "br;q=0, gzip"))
    );
    assert_eq!(gz.h("content-encoding"), Some("gzip"));
    assert_eq!(gz.body, on_disk(".gz"));
    assert_ne!(gz.h("etag"), br.h("etag"), "an ETag per encoding");

    let plain = get!(app, TestRequest::get().uri(&url));
    assert_eq!(plain.h("content-encoding"), None);
    assert_eq!(plain.h("accept-ranges"), Some("bytes"));
    assert_eq!(plain.body, on_disk(""));
    assert_eq!(plain.h("vary"), Some("Accept-Encoding"));

    let weighted = get!(
        app,
        TestRequest::get()
            .uri(&url)
            .insert_header(("Accept-Encoding", "gzip;q=0.8, br;q=0.0, identity;q=0.1"))
    );
    assert_eq!(weighted.h("content-encoding"), Some("gzip"));
    let refused = get!(
        app,
        TestRequest::get()
            .uri(&url)
            .insert_header(("Accept-Encoding", "*;q=0"))
    );
    assert_eq!(refused.status, StatusCode::NOT_ACCEPTABLE);

    // htmx itself is served, and named in every page for its boot script to fetch.
    let js = f.files.url("js/htmx.min.js").unwrap_or_default();
    let js_res = get!(
        app,
        TestRequest::get()
            .uri(&js)
            .insert_header(("Accept-Encoding", "br"))
    );
    assert_eq!(
        js_res.h("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(
        js_res.body.len() < 20_000,
        "htmx.min.js is {} bytes as br",
        js_res.body.len()
    );
    let login = get!(app, TestRequest::get().uri("/login"));
    let page = String::from_utf8_lossy(&login.body);
    // The stylesheet is linked; htmx is named for the boot script.
    assert!(page.contains(&format!("href=\"{url}\"")));
    assert!(page.contains(&format!(" {js}\">")), "{page}");
}

#[actix_web::test]
async fn conditional_head_and_range_requests() {
    let f = fixture();
    let app = test::init_service(napiatke_web::app::app(f.state.clone())).await;
    // The unhashed name: short-lived, revalidated by ETag.
    let first = get!(
        app,
        TestRequest::get()
            .uri("/static/css/app.css")
            .insert_header(("Accept-Encoding", "br"))
    );
    assert_eq!(first.h("cache-control"), Some("max-age=60"));
    let etag = first.h("etag").unwrap_or_default().to_owned();
    let last_modified = first.h("last-modified").unwrap_or_default().to_owned();

    let same = get!(
        app,
        TestRequest::get()
            .uri("/static/css/app.css")
            .insert_header(("Accept-Encoding", "br"))
            .insert_header(("If-None-Match", etag.as_str()))
    );
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    assert!(same.body.is_empty());
    assert_eq!(same.h("etag"), Some(etag.as_str()));
    assert_eq!(same.h("vary"), Some("Accept-Encoding"), "304s vary too");
    let weak_list = get!(
        app,
        TestRequest::get()
            .uri("/static/css/app.css")
            .insert_header(("Accept-Encoding", "br"))
            .insert_header(("If-None-Match", format!("\"nope\", W/{etag}")))
    );
    assert_eq!(weak_list.status, StatusCode::NOT_MODIFIED);
    let other_encoding = get!(
        app,
        TestRequest::get()
            .uri("/static/css/app.css")
            .insert_header(("Accept-Encoding", "gzip"))
            .insert_header(("If-None-Match", etag.as_str()))
    );
    assert_eq!(
        other_encoding.status,
        StatusCode::OK,
        "the br ETag does not validate the gzip body"
    );

    let since = get!(
        app,
        TestRequest::get()
            .uri("/static/css/app.css")
            .insert_header(("If-Modified-Since", last_modified.as_str()))
    );
    assert_eq!(since.status, StatusCode::NOT_MODIFIED);
    let old = get!(
        app,
        TestRequest::get()
            .uri("/static/css/app.css")
            .insert_header(("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"))
    );
    assert_eq!(old.status, StatusCode::OK);

    let head = get!(
        app,
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri("/static/css/app.css")
    );
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.h("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(
        head.h("etag"),
        get!(app, TestRequest::get().uri("/static/css/app.css")).h("etag")
    );

    let full = get!(app, TestRequest::get().uri("/static/js/htmx.min.js"));
    let part = get!(
        app,
        TestRequest::get()
            .uri("/static/js/htmx.min.js")
            .insert_header(("Range", "bytes=10-19"))
    );
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.h("content-range"),
        Some(format!("bytes 10-19/{}", full.body.len()).as_str())
    );
    assert_eq!(part.body, full.body[10..20]);
    let tail = get!(
        app,
        TestRequest::get()
            .uri("/static/js/htmx.min.js")
            .insert_header(("Range", "bytes=-5"))
    );
    assert_eq!(tail.body, full.body[full.body.len() - 5..]);
    let beyond = get!(
        app,
        TestRequest::get()
            .uri("/static/js/htmx.min.js")
            .insert_header(("Range", format!("bytes={}-", full.body.len() + 1)))
    );
    assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        beyond.h("content-range"),
        Some(format!("bytes */{}", full.body.len()).as_str())
    );
    let encoded = get!(
        app,
        TestRequest::get()
            .uri("/static/js/htmx.min.js")
            .insert_header(("Range", "bytes=0-9"))
            .insert_header(("Accept-Encoding", "br"))
    );
    assert_eq!(
        encoded.status,
        StatusCode::OK,
        "ranges apply to identity responses only"
    );
    assert_eq!(encoded.h("content-encoding"), Some("br"));
    let stale = get!(
        app,
        TestRequest::get()
            .uri("/static/js/htmx.min.js")
            .insert_header(("Range", "bytes=0-9"))
            .insert_header(("If-Range", "\"other\""))
    );
    assert_eq!(
        stale.status,
        StatusCode::OK,
        "If-Range mismatch sends the whole file"
    );

    let post = get!(app, TestRequest::post().uri("/static/css/app.css"));
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.h("allow"), Some("GET, HEAD"));
}

#[actix_web::test]
async fn nothing_outside_the_static_root_is_reachable() {
    let f = fixture();
    let app = test::init_service(napiatke_web::app::app(f.state.clone())).await;
    for path in [
        "/static/../Cargo.toml",
        "/static/css/../../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/css/%2e%2e/%2e%2e/Cargo.toml",
        "/static/css/..%2f..%2fCargo.toml",
        "/static/..%5c..%5cCargo.toml",
        "/static//etc/passwd",
        "/static/css/app.css%00",
        "/static/staticfiles.json",
        "/static/",
        "/static/css/",
        "/static/nope.css",
    ] {
        let got = get!(app, TestRequest::get().uri(path));
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            got.body.is_empty() || !String::from_utf8_lossy(&got.body).contains("[workspace]"),
            "{path}"
        );
    }
}

/// HEAD over a real socket: the GET's Content-Length, no body bytes.
#[test]
fn head_over_the_wire_has_the_length_and_no_body() {
    use std::io::{Read, Write};
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let state = f.state.clone();
    let expected = f.files.url("js/htmx.min.js").unwrap_or_default();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let srv = actix_web::HttpServer::new(move || napiatke_web::app::app(state.clone()))
                .workers(1)
                .listen(listener)
                .unwrap()
                .run();
            let handle = srv.handle();
            actix_web::rt::spawn(async move {
                actix_web::rt::time::sleep(std::time::Duration::from_secs(3)).await;
                handle.stop(false).await;
            });
            let _ = srv.await;
        });
    });
    let mut stream = None;
    for _ in 0..50 {
        if let Ok(s) = std::net::TcpStream::connect(addr) {
            stream = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut s = stream.unwrap_or_else(|| panic!("server did not start"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok();
    let request = format!("HEAD {expected} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let full =
        std::fs::read(f.root.join(expected.trim_start_matches("/static/"))).unwrap_or_default();
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {}", full.len())),
        "{head}"
    );
    assert!(body.is_empty(), "HEAD sent {} body bytes", body.len());
    drop(s);
    let _ = server.join();
}

/// Without STATIC_ROOT (and outside development beside the sources) the files the
/// binary was built with are served: the same hashed names as collecting the
/// repository's assets now. With STATIC_ROOT set to a folder that holds no
/// collected files, start-up says to run collectstatic.
#[test]
fn the_built_in_files_are_the_collected_assets() {
    let production = crate::common::settings(true);
    assert!(!production.static_root_set);
    let built_in = napiatke_web::app::load_static_files(&production, false).unwrap();
    let collected = crate::common::statics();
    assert_eq!(built_in.len(), collected.len());
    for name in [
        "css/app.css",
        "js/htmx.min.js",
        "favicon.svg",
        "toolbar/toolbar.js",
    ] {
        assert!(built_in.url(name).is_some(), "{name}");
        assert_eq!(built_in.url(name), collected.url(name), "{name}");
    }
    let empty = std::env::temp_dir().join(format!("napiatke-no-static-{}", std::process::id()));
    let mut explicit = crate::common::settings(true);
    explicit.static_root = empty;
    explicit.static_root_set = true;
    let err = napiatke_web::app::load_static_files(&explicit, false)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("napiatke collectstatic"), "{err}");
}
