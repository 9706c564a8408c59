//! The harness the test modules share: app state over a per-test database (SQLite or
//! PostgreSQL), Redis under a prefix of its own and a scratch MEDIA_ROOT, requests,
//! and a logged-in browser.

use std::collections::HashMap;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use chrono::{NaiveDate, NaiveDateTime};
use napiatke_db::testing::TestDb;
use napiatke_db::Engine;
use napiatke_services::FixedClock;
use napiatke_web::config::Settings;
use napiatke_web::AppState;

pub fn now() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 26)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .unwrap_or_default()
}

pub fn settings(production: bool) -> Settings {
    let env = if production {
        "production"
    } else {
        "development"
    };
    let mut s = Settings::from_lookup(|k| (k == "NAPIATKE_ENV").then(|| env.to_owned())).unwrap();
    s.expose_query_count = true;
    // On only where a test asks (tests/app/toolbar.rs): the others see pages as
    // they are sent without it.
    s.debug_toolbar = false;
    s
}

/// The repository's assets, collected once per test process into a scratch folder
/// that is removed again once the files are in memory.
pub fn statics() -> std::sync::Arc<napiatke_assets::StaticFiles> {
    static FILES: std::sync::OnceLock<std::sync::Arc<napiatke_assets::StaticFiles>> =
        std::sync::OnceLock::new();
    FILES
        .get_or_init(|| {
            let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets");
            let root =
                std::env::temp_dir().join(format!("napiatke-http-static-{}", std::process::id()));
            napiatke_assets::collect(&src, &root).unwrap();
            let files = napiatke_assets::StaticFiles::load(&root).unwrap();
            let _ = std::fs::remove_dir_all(&root);
            std::sync::Arc::new(files)
        })
        .clone()
}

/// The app's state over `t`, with the cache the app would have: L1 plus the real
/// Redis (NAPIATKE_TEST_REDIS_URL), under a prefix of its own.
pub async fn state(t: &TestDb, production: bool) -> web::Data<AppState> {
    state_with(t, production, &cache_prefix(), Some(redis_url())).await
}

pub fn redis_url() -> String {
    std::env::var("NAPIATKE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

pub fn cache_prefix() -> String {
    format!("napiatke-http-{:016x}", rand_u64())
}

pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

pub async fn state_with(
    t: &TestDb,
    production: bool,
    prefix: &str,
    redis: Option<String>,
) -> web::Data<AppState> {
    state_tweaked(t, production, prefix, redis, |_| {}).await
}

/// Like [`state_with`], with the settings changed by `tweak` first. MEDIA_ROOT is a
/// scratch folder of this state's own (see [`media_root`]).
pub async fn state_tweaked(
    t: &TestDb,
    production: bool,
    prefix: &str,
    redis: Option<String>,
    tweak: impl FnOnce(&mut Settings),
) -> web::Data<AppState> {
    napiatke_web::init_tracing();
    let mut settings = settings(production);
    settings.cache_prefix = prefix.to_owned();
    settings.media_root = media_root(prefix);
    tweak(&mut settings);
    let cache = napiatke_cache::Cache::try_new(napiatke_cache::CacheConfig {
        redis_url: redis,
        prefix: prefix.to_owned(),
        ..napiatke_cache::CacheConfig::default()
    })
    .await
    .unwrap();
    napiatke_web::build_state(&settings, t.db.clone(), FixedClock(now()), statics(), cache).unwrap()
}

/// The app's state over `t` with no cache at all (no L1, no Redis): every request
/// runs every statement it would on a cold cache.
pub async fn uncached_state(t: &TestDb) -> web::Data<AppState> {
    napiatke_web::init_tracing();
    let prefix = cache_prefix();
    let mut settings = settings(false);
    settings.cache_prefix = prefix.clone();
    settings.media_root = media_root(&prefix);
    let cache = napiatke_cache::Cache::try_new(napiatke_cache::CacheConfig {
        redis_url: None,
        prefix,
        l1_capacity_bytes: 0,
        ..napiatke_cache::CacheConfig::default()
    })
    .await
    .unwrap();
    napiatke_web::build_state(&settings, t.db.clone(), FixedClock(now()), statics(), cache).unwrap()
}

/// The scratch MEDIA_ROOT of the state made with cache prefix `prefix`.
pub fn media_root(prefix: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("napiatke-media-{prefix}"))
}

pub fn fixture(engine: Engine) -> TestDb {
    let t = TestDb::new(engine).unwrap();
    t.load_fixture().unwrap();
    t
}

/// A response read whole.
pub struct Page {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn queries(&self) -> u64 {
        self.header("x-query-count")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no X-Query-Count"))
    }
    /// The value of a Set-Cookie for `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

/// The response as a [`Page`]. Fails the test on an N+1 (the same statement shape
/// run once per row, reported by the app as `X-N-Plus-One` wherever timings are
/// exposed): every page test checks for one this way.
pub async fn read<B: MessageBody>(res: ServiceResponse<B>) -> Page {
    if let Some(n1) = res.headers().get("x-n-plus-one") {
        panic!(
            "{} {}: N+1: {n1:?}",
            res.request().method(),
            res.request().uri()
        );
    }
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = test::read_body(res).await;
    Page {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub async fn send<S, B>(app: &S, req: TestRequest) -> Page
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    match app.call(req.to_request()).await {
        Ok(res) => read(res).await,
        Err(e) => {
            let res = e.error_response();
            let status = res.status();
            let headers = res.headers().clone();
            let bytes = actix_web::body::to_bytes(res.into_body())
                .await
                .ok()
                .unwrap_or_default();
            Page {
                status,
                headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            }
        }
    }
}

/// The value of `name="csrf_token" value="..."` in a page.
pub fn form_token(body: &str) -> String {
    body.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// The rest of the table row after the first `marker` in `body` (empty if none).
pub fn row_after<'a>(body: &'a str, marker: &str) -> &'a str {
    body.split(marker)
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_default()
}

pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// A browser with a session cookie. Its POSTs say they come from our own pages
/// (`Sec-Fetch-Site: same-origin`), as a browser's do.
#[derive(Clone, Default)]
pub struct Browser {
    pub session: Option<String>,
}

impl Browser {
    pub fn get(&self, path: &str) -> TestRequest {
        let mut r = TestRequest::get().uri(path);
        if let Some(s) = &self.session {
            r = r.cookie(actix_web::cookie::Cookie::new(
                "napiatke_session",
                s.clone(),
            ));
        }
        r
    }
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> TestRequest {
        self.post_bare(path, form)
            .insert_header(("sec-fetch-site", "same-origin"))
    }
    /// A POST saying nothing of where it comes from (no Fetch Metadata, no Origin).
    pub fn post_bare(&self, path: &str, form: &[(&str, &str)]) -> TestRequest {
        let mut r = TestRequest::post()
            .uri(path)
            .set_form(form.iter().copied().collect::<HashMap<_, _>>());
        if let Some(s) = &self.session {
            r = r.cookie(actix_web::cookie::Cookie::new(
                "napiatke_session",
                s.clone(),
            ));
        }
        r
    }
}

/// POSTs an attendance mark as `who` (without htmx).
pub async fn mark<S, B>(app: &S, who: &Browser, lesson: u32, student: &str, status: &str) -> Page
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let path = format!("/lessons/{lesson}/attendance");
    let form = [("student_id", student), ("status", status)];
    send(app, who.post(&path, &form)).await
}

pub async fn login<S, B>(app: &S, email: &str, password: &str) -> (Page, Browser)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    login_as(app, &Browser::default(), email, password).await
}

pub async fn login_as<S, B>(
    app: &S,
    before: &Browser,
    email: &str,
    password: &str,
) -> (Page, Browser)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let form_page = send(app, before.get("/login?next=/lessons/")).await;
    assert_eq!(form_page.status, StatusCode::OK);
    let csrf_cookie = form_page
        .cookie("napiatke_csrf")
        .map(|c| cookie_value(&c))
        .unwrap_or_default();
    let token = form_token(&form_page.body);
    assert_eq!(token, csrf_cookie, "the form carries the cookie's token");
    let req = before
        .post(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf_token", &token),
                ("next", "/lessons/"),
            ],
        )
        .cookie(actix_web::cookie::Cookie::new("napiatke_csrf", csrf_cookie));
    let res = send(app, req).await;
    let mut browser = before.clone();
    if let Some(c) = res.cookie("napiatke_session") {
        browser.session = Some(cookie_value(&c));
    }
    (res, browser)
}

/// The attendance rate a dashboard shows ("66.7%").
pub fn rate_in(body: &str) -> String {
    body.split("</b>attendance")
        .next()
        .and_then(|s| s.rsplit("<b>").next())
        .unwrap_or_default()
        .to_owned()
}
