//! Thin handlers: extract and check input, call a service on the blocking pool,
//! render.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use napiatke_domain::{AttendanceStatus, LessonId, LessonStatus};
use napiatke_htmx::{Effort, FragmentKey, HtmlCache, Hx, StoredHtml};
use napiatke_services::{LessonPage, LessonQuery};
use serde::Serialize;
use std::sync::Arc;

use crate::params::{
    AttendanceForm, CalendarParams, LessonsParams, LoginForm, LoginPage, Params, StudentsParams,
    TimelyForm,
};
use crate::session::{
    check_login_csrf, login_csrf_cookie, removal, safe_next, session_cookie, Auth,
    LOGIN_CSRF_COOKIE, SESSION_COOKIE,
};
use crate::{AppError, AppState};

type State = web::Data<AppState>;

/// Pages for one user: their browser may keep them but must revalidate (ETag) before
/// each use; no shared cache may keep them.
const PERSONAL: &str = "private, no-cache";

/// A page past the last one is missing, like any other address that names nothing.
fn check_page_exists(number: u32, total_pages: u32) -> Result<(), AppError> {
    if number > total_pages {
        return Err(AppError::NotFound(format!(
            "page {number} does not exist; the last page is {total_pages}"
        )));
    }
    Ok(())
}

/// What every page template gets: the user and where they are. No secret: forms are
/// protected by where they come from ([`crate::origin`]), so pages can be cached per
/// user and revalidated.
pub(crate) fn base_context(auth: &Auth, nav: &str) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("user", &auth.session.user);
    ctx.insert("nav", nav);
    ctx
}

/// Pagination links, keeping the other filters.
#[derive(Serialize)]
struct Pager {
    number: u32,
    total_pages: u32,
    total: i64,
    previous: Option<String>,
    next: Option<String>,
}

fn pager(
    number: u32,
    total_pages: u32,
    total: i64,
    base: &str,
    keep: &[(&str, Option<String>)],
) -> Pager {
    let link = |n: u32| {
        let mut params = keep.to_vec();
        params.push(("page", Some(n.to_string())));
        with_query(base, &params)
    };
    Pager {
        number,
        total_pages,
        total,
        previous: (number > 1).then(|| link(number - 1)),
        next: (number < total_pages).then(|| link(number + 1)),
    }
}

/// `base` with the parameters that have a value, percent-encoded, in order.
fn with_query(base: &str, params: &[(&str, Option<String>)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .map(|v| format!("{k}={}", napiatke_htmx::percent_encode(v)))
        })
        .collect();
    if query.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", query.join("&"))
    }
}

/// A 200 page (or its `fragment` block for htmx) that only the user's browser may
/// keep, revalidating by ETag. Rendered for this response alone, so compressed at the
/// fast setting.
pub(crate) fn render_page(
    state: &AppState,
    req: &HttpRequest,
    hx: Hx,
    template: &str,
    fragment: Option<&str>,
    ctx: &tera::Context,
) -> Result<HttpResponse, AppError> {
    let html = match fragment {
        Some(block) if hx.wants_fragment() => state
            .templates
            .render(&format!("{template}#{block}"), ctx)?,
        _ => state.templates.render(template, ctx)?,
    };
    Ok(StoredHtml::new(html, Effort::Fast).respond(req.headers(), StatusCode::OK, PERSONAL))
}

/// A page from the HTML caches, keyed by the version of the data it shows: its
/// `block` alone for htmx, shared by every viewer in `scope`, all processes alike;
/// the whole page per user (it names them), in this process. Both are stored
/// compressed and revalidate by ETag (no secret in them). `ctx` is only built on a
/// miss. Pages without a block always answer whole.
#[allow(clippy::too_many_arguments)]
async fn cached_page(
    state: &AppState,
    req: &HttpRequest,
    hx: Hx,
    auth: &Auth,
    page: (&str, Option<&str>),
    version: (&str, &str),
    params: &[(&str, Option<String>)],
    ctx: impl FnOnce() -> tera::Context,
) -> Result<HttpResponse, AppError> {
    let (cache, key, name) = page_key(state, req, hx, auth, page, version, params);
    from_cache(state, req, cache, &key, || {
        state.templates.render(&name, &ctx())
    })
    .await
}

/// `u{id}`, the scope of a page cached per user (by hand: every such request
/// makes one).
fn user_scope(id: i64) -> String {
    let mut scope = String::with_capacity(21);
    scope.push('u');
    scope.push_str(itoa::Buffer::new().format(id));
    scope
}

/// Which HTML cache a page goes in, its key there, and the template (or block) that
/// renders it (see [`cached_page`]).
fn page_key<'a>(
    state: &'a AppState,
    req: &HttpRequest,
    hx: Hx,
    auth: &Auth,
    (template, block): (&str, Option<&str>),
    (scope, version): (&str, &str),
    params: &[(&str, Option<String>)],
) -> (&'a HtmlCache, FragmentKey, String) {
    let route = crate::routing::route_of(req);
    let (cache, key, name) = match block {
        Some(block) if hx.wants_fragment() => {
            // The target is part of the key only when it is the one the page uses:
            // any other value gets the same block, so it must not make entries of
            // its own.
            let target = req
                .headers()
                .get("hx-target")
                .and_then(|v| v.to_str().ok())
                .filter(|t| *t == block);
            (
                &state.html,
                FragmentKey::new(&route, scope, target, version),
                format!("{template}#{block}"),
            )
        }
        _ => (
            &state.user_pages,
            FragmentKey::new(&route, &user_scope(auth.user().id.get()), None, version),
            template.to_owned(),
        ),
    };
    let key = params
        .iter()
        .fold(key, |k, (name, value)| k.param(name, value.as_deref()));
    (cache, key, name)
}

/// The HTML under `key` in `cache`, or `render`'s, answered as a personal page with
/// `X-Cache`.
async fn from_cache(
    state: &AppState,
    req: &HttpRequest,
    cache: &HtmlCache,
    key: &FragmentKey,
    render: impl FnOnce() -> Result<String, napiatke_htmx::HtmxError>,
) -> Result<HttpResponse, AppError> {
    let (html, status) = cache.get_or_render(&state.templates, key, render).await?;
    let mut res = html.respond(req.headers(), StatusCode::OK, PERSONAL);
    status.mark(&mut res);
    Ok(res)
}

pub(crate) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

pub(crate) fn no_store(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub async fn index() -> HttpResponse {
    see_other("/dashboard/")
}

pub async fn healthz(state: State) -> HttpResponse {
    match state.services.healthy().await {
        Ok(()) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("text/plain; charset=utf-8")
            .body("ok\n"),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "5"))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .content_type("text/plain; charset=utf-8")
                .body("database unavailable\n")
        }
    }
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    csrf: &str,
    next: &str,
    email: &str,
    error: Option<&str>,
) -> Result<HttpResponse, AppError> {
    let mut ctx = tera::Context::new();
    ctx.insert("login_csrf", csrf);
    ctx.insert("next", next);
    ctx.insert("email", email);
    ctx.insert("error", &error);
    ctx.insert("demo_logins", &state.demo_logins);
    let res = state
        .templates
        .respond(status, Hx::default(), "login.html", None, &ctx)?;
    Ok(no_store(res))
}

pub async fn login_form(
    state: State,
    req: HttpRequest,
    q: Params<LoginPage>,
) -> Result<HttpResponse, AppError> {
    let next = safe_next(q.next());
    let existing =
        crate::session::cookie_value(req.headers(), LOGIN_CSRF_COOKIE).map(str::to_owned);
    let csrf = match existing.filter(|t| t.len() == 64) {
        Some(t) => t,
        None => napiatke_services::random_token()?,
    };
    let mut res = login_page(&state, StatusCode::OK, &csrf, &next, "", None)?;
    res.add_cookie(&login_csrf_cookie(csrf, state.secure_cookies))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(res)
}

pub async fn login(
    state: State,
    req: HttpRequest,
    form: TimelyForm<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let csrf = check_login_csrf(&req, &form.csrf_token)?;
    let next = safe_next(form.next());
    let again = |status: StatusCode, message: &str| {
        login_page(&state, status, &csrf, &next, &form.email, Some(message))
    };
    let Some((email, password)) = form.credentials() else {
        return again(StatusCode::BAD_REQUEST, "Enter your e-mail and password.");
    };
    let previous = crate::session::cookie_value(req.headers(), SESSION_COOKIE).map(str::to_owned);
    let client = req.peer_addr().map(|a| a.ip().to_string());
    let outcome = state
        .services
        .login_from(email, password, previous.as_deref(), client.as_deref())
        .await;
    match outcome {
        Ok(Some((user, session))) => {
            tracing::info!(user_id = user.id.get(), "login");
            logged_in(&state, &next, session.token)
        }
        Ok(None) => again(StatusCode::UNAUTHORIZED, "Wrong e-mail or password."),
        // The form again, saying how long to wait, with Retry-After.
        Err(e) => match AppError::from(e) {
            AppError::TooManyRequests {
                message,
                retry_after,
            } => {
                let mut res = again(StatusCode::TOO_MANY_REQUESTS, &message)?;
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                Ok(res)
            }
            other => Err(other),
        },
    }
}

/// 303 to `next` with the new session's cookie, the login form's cookie removed.
fn logged_in(state: &AppState, next: &str, token: String) -> Result<HttpResponse, AppError> {
    let mut res = see_other(next);
    res.add_cookie(&session_cookie(token, state.secure_cookies))
        .and_then(|()| res.add_cookie(&removal(LOGIN_CSRF_COOKIE, "/login", state.secure_cookies)))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(no_store(res))
}

pub async fn logout(state: State, auth: Auth) -> Result<HttpResponse, AppError> {
    state.services.logout(&auth.token).await?;
    let mut res = see_other("/login");
    res.add_cookie(&removal(SESSION_COOKIE, "/", state.secure_cookies))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(no_store(res))
}

pub async fn dashboard(
    state: State,
    req: HttpRequest,
    auth: Auth,
    hx: Hx,
) -> Result<HttpResponse, AppError> {
    let page = state.services.dashboard(auth.user()).await?;
    cached_page(
        &state,
        &req,
        hx,
        &auth,
        ("dashboard.html", None),
        ("-", &page.version),
        &[],
        || {
            let mut ctx = base_context(&auth, "dashboard");
            ctx.insert("dashboard", &page.dashboard);
            ctx.insert("charts", &page.charts);
            ctx
        },
    )
    .await
}

pub async fn lessons(
    state: State,
    req: HttpRequest,
    auth: Auth,
    hx: Hx,
    params: Params<LessonsParams>,
) -> Result<HttpResponse, AppError> {
    let query = params.query()?;
    let LessonQuery {
        page,
        status,
        subject,
    } = query;
    let result = state.services.lessons(auth.user(), query).await?;
    let total_pages = result.page.total_pages();
    check_page_exists(page, total_pages)?;
    let keep = [
        ("status", status.map(|s| s.as_str().to_owned())),
        ("subject", subject.map(|s| s.to_string())),
    ];
    let mut params = keep.to_vec();
    params.push(("page", Some(page.to_string())));
    cached_page(
        &state,
        &req,
        hx,
        &auth,
        ("lessons.html", Some("rows")),
        (result.scope(), result.version()),
        &params,
        || {
            let mut ctx = base_context(&auth, "lessons");
            ctx.insert("lessons", &result.lessons());
            ctx.insert("subjects", result.subjects.as_ref());
            ctx.insert("statuses", LessonStatus::ALL);
            ctx.insert("status", &status);
            ctx.insert("subject", &subject);
            ctx.insert(
                "pager",
                &pager(page, total_pages, result.page.total, "/lessons/", &keep),
            );
            ctx.insert("export", &with_query("/lessons/export.csv", &keep));
            ctx
        },
    )
    .await
}

/// GET /lessons/export.csv: the filtered lesson list (same filters and rights as the
/// list, every page) streamed as CSV in chunks.
pub async fn lessons_export(
    state: State,
    auth: Auth,
    params: Params<LessonsParams>,
) -> Result<HttpResponse, AppError> {
    let rx = state
        .services
        .lesson_export(auth.user(), params.query()?)
        .await?;
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item.map(web::Bytes::from).map_err(AppError::from), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"lessons.csv\"",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}

fn lesson_id(raw: &str) -> Result<LessonId, AppError> {
    raw.parse::<LessonId>()
        .ok()
        .filter(|id| id.get() > 0)
        .ok_or_else(|| AppError::NotFound(format!("there is no lesson {raw:?}")))
}

pub async fn lesson(
    state: State,
    req: HttpRequest,
    auth: Auth,
    hx: Hx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let page = state
        .services
        .lesson_page(&auth.session, lesson_id(&path)?)
        .await?;
    // The page is personal, so its HTML is kept per viewer, in this process only.
    let (template, block) = if hx.wants_fragment() {
        ("lesson.html#students", "students")
    } else {
        ("lesson.html", "page")
    };
    let key = FragmentKey::new("/lessons/{id}/", &page.render_key(block), None, "");
    from_cache(&state, &req, &state.user_pages, &key, || {
        state
            .templates
            .render(template, &lesson_context(&auth, &page))
    })
    .await
}

fn lesson_context(auth: &Auth, page: &LessonPage) -> tera::Context {
    let mut ctx = base_context(auth, "lessons");
    ctx.insert("avatars", &page.avatars);
    ctx.insert("can_mark", &page.can_mark);
    ctx.insert("lesson", &page.detail);
    ctx.insert("marks", AttendanceStatus::ALL);
    ctx
}

pub async fn attendance(
    state: State,
    req: HttpRequest,
    auth: Auth,
    hx: Hx,
    path: web::Path<String>,
    form: TimelyForm<AttendanceForm>,
) -> Result<HttpResponse, AppError> {
    let id = lesson_id(&path)?;
    let (student, status) = form.mark()?;
    if !hx.request {
        // The page is read again after the redirect: nothing to build here.
        let user = auth.user();
        state
            .services
            .mark_attendance(user, id, student, status)
            .await?;
        return Ok(see_other(&format!("/lessons/{id}/")));
    }
    let page = state
        .services
        .mark_attendance_page(&auth.session, id, student, status)
        .await?;
    render_page(
        &state,
        &req,
        hx,
        "lesson.html",
        Some("students"),
        &lesson_context(&auth, &page),
    )
}

/// Where the days go when a week is streamed (calendar_week.html).
const DAYS_MARKER: &str = "<!--napiatke:days-->";

pub async fn calendar(
    state: State,
    req: HttpRequest,
    auth: Auth,
    hx: Hx,
    params: Params<CalendarParams>,
) -> Result<HttpResponse, AppError> {
    let week = state
        .services
        .calendar(auth.user(), params.start()?)
        .await?;
    // The week's data version is new on every load of each viewer scope's week, so it
    // alone tells whose week the rendered HTML is.
    let page = ("calendar.html", Some("week"));
    let version = ("week", week.version.as_str());
    let params = [("start", Some(week.start.to_string()))];
    let ctx = || {
        let mut ctx = base_context(&auth, "calendar");
        ctx.insert("week", week.as_ref());
        ctx
    };
    // CALENDAR_STREAM_FROM (2,000): the large demo set's weeks hold about 8,000
    // lessons, the standard set's about 800.
    if week.total < state.calendar_stream_from {
        return cached_page(&state, &req, hx, &auth, page, version, &params, ctx).await;
    }
    // Thousands of lessons: from the cache like any page, else rendered and sent a
    // day at a time (first byte before the last day is rendered), then stored.
    let (cache, key, name) = page_key(&state, &req, hx, &auth, page, version, &params);
    if let Some(html) = cache.get(&state.templates, &key).await {
        let mut res = html.respond(req.headers(), StatusCode::OK, PERSONAL);
        napiatke_htmx::CacheStatus::Hit.mark(&mut res);
        return Ok(res);
    }
    let mut ctx = ctx();
    ctx.insert("stream_days", &true);
    let templates = Arc::clone(&state.templates);
    let week = Arc::clone(&week);
    Ok(cache.render_streamed(
        &state.templates,
        &key,
        req.headers(),
        PERSONAL,
        move |parts| {
            let page = templates.render(&name, &ctx)?;
            let (head, tail) = page.split_once(DAYS_MARKER).ok_or_else(|| {
                napiatke_htmx::HtmxError::Template(format!("{name} has no {DAYS_MARKER}"))
            })?;
            if !parts.send(head) {
                return Ok(());
            }
            for d in &week.days {
                let mut day = tera::Context::new();
                day.insert("d", d);
                if !parts.send(&templates.render("calendar_day.html", &day)?) {
                    return Ok(());
                }
            }
            parts.send(tail);
            Ok(())
        },
    ))
}

pub async fn students(
    state: State,
    req: HttpRequest,
    auth: Auth,
    hx: Hx,
    params: Params<StudentsParams>,
) -> Result<HttpResponse, AppError> {
    // Who may see the list before what they asked for: a student gets 403 whatever
    // the query holds.
    state.services.may_list_students(auth.user())?;
    let query = params.query()?;
    let (page, search) = (query.page, query.q.clone());
    let result = state.services.students(auth.user(), &query).await?;
    let total_pages = result.students.total_pages();
    check_page_exists(page, total_pages)?;
    let keep = [("q", search.clone())];
    let params = [("q", search.clone()), ("page", Some(page.to_string()))];
    cached_page(
        &state,
        &req,
        hx,
        &auth,
        ("students.html", Some("rows")),
        // Admins and tutors see the same list.
        ("staff", result.version()),
        &params,
        || {
            let mut ctx = base_context(&auth, "students");
            ctx.insert("students", &result.students.items);
            ctx.insert("q", &search);
            ctx.insert(
                "pager",
                &pager(
                    page,
                    total_pages,
                    result.students.total,
                    "/students/",
                    &keep,
                ),
            );
            ctx
        },
    )
    .await
}

pub async fn cache_stats(
    state: State,
    req: HttpRequest,
    auth: Auth,
) -> Result<HttpResponse, AppError> {
    let report = state.services.cache_report(auth.user()).await?;
    let mut ctx = base_context(&auth, "admin");
    ctx.insert("report", &report);
    render_page(&state, &req, Hx::default(), "cache_stats.html", None, &ctx)
}

/// `/static/...` when reached through the router (the static middleware answers
/// first in the app; this keeps the route meaningful on its own).
pub async fn static_file(state: State, req: HttpRequest) -> HttpResponse {
    serve_static(&state, &req)
}

/// The assets crate's policy for one request, answered from memory.
pub fn serve_static(state: &AppState, req: &HttpRequest) -> HttpResponse {
    let header = |name: header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let method = match *req.method() {
        actix_web::http::Method::GET => napiatke_assets::Method::Get,
        actix_web::http::Method::HEAD => napiatke_assets::Method::Head,
        _ => napiatke_assets::Method::Other,
    };
    // The raw path, not the decoded one: an encoded `..` must not become a real one.
    let path = req
        .uri()
        .path()
        .strip_prefix("/static/")
        .unwrap_or_default();
    let res = state.static_files.respond(&napiatke_assets::Request {
        method,
        path,
        accept_encoding: header(header::ACCEPT_ENCODING),
        if_none_match: header(header::IF_NONE_MATCH),
        if_modified_since: header(header::IF_MODIFIED_SINCE),
        range: header(header::RANGE),
        if_range: header(header::IF_RANGE),
    });
    let status = StatusCode::from_u16(res.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HttpResponse::build(status);
    // This path skips the DefaultHeaders middleware; nosniff matters most here.
    out.insert_header((
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ));
    for (name, value) in res.headers {
        // Shares the precomputed bytes: no copy, no allocation per header.
        if let Ok(v) = header::HeaderValue::from_maybe_shared(value.bytes()) {
            out.insert_header((header::HeaderName::from_static(name), v));
        }
    }
    // For HEAD the body is still attached: actix's HTTP/1 encoder sends its length as
    // Content-Length and drops the bytes (tests/app/static_files.rs checks it on the wire).
    match res.body {
        napiatke_assets::Body::Bytes(bytes) => out.body(bytes),
        napiatke_assets::Body::Empty => out.finish(),
    }
}

/// GET /metrics for admins (Prometheus text; see [`metrics_text`]).
pub async fn metrics(state: State, auth: Auth) -> Result<HttpResponse, AppError> {
    if auth.user().role != napiatke_domain::Role::Admin {
        return Err(AppError::Forbidden(
            "metrics are for administrators".to_owned(),
        ));
    }
    Ok(metrics_response(&state))
}

/// GET /metrics on METRICS_BIND: no login (that address is for a scraper).
pub async fn metrics_scrape(state: State) -> HttpResponse {
    metrics_response(&state)
}

fn metrics_response(state: &AppState) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(napiatke_telemetry::metrics::CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(metrics_text(state))
}

/// The request figures kept as they happen, then the pool, cache and image jobs as
/// they are now. Names follow the OpenTelemetry semantic conventions in Prometheus
/// spelling where one exists (`db_client_connection_*`), `napiatke_*` otherwise.
pub fn metrics_text(state: &AppState) -> String {
    use napiatke_telemetry::metrics::Exposition;
    let mut out = Exposition::default();
    state.metrics.write(&mut out);
    let pool = state.services.db_pool_state();
    out.gauge(
        "db_client_connection_count",
        "Database connections open, by state.",
        &[
            (&[("state", "idle")], f64::from(pool.idle)),
            (
                &[("state", "used")],
                f64::from(pool.connections.saturating_sub(pool.idle)),
            ),
        ],
    );
    out.gauge(
        "db_client_connection_max",
        "Most database connections the pool opens.",
        &[(&[], f64::from(pool.max_size))],
    );
    out.header(
        "db_client_connection_wait_time_seconds",
        "summary",
        "Time spent waiting for a database connection.",
    );
    out.sample(
        "db_client_connection_wait_time_seconds_sum",
        &[],
        pool.wait_micros as f64 / 1e6,
    );
    out.sample(
        "db_client_connection_wait_time_seconds_count",
        &[],
        pool.checkouts as f64,
    );
    out.counter(
        "db_client_connection_timeouts_total",
        "Checkouts that gave up waiting for a database connection.",
        &[(&[], pool.timeouts as f64)],
    );
    let work = state.services.work_state();
    out.gauge(
        "napiatke_work_slots",
        "Blocking work (statements, argon2) that may run at once, by state.",
        &[
            (&[("state", "busy")], work.busy as f64),
            (
                &[("state", "free")],
                work.slots.saturating_sub(work.busy) as f64,
            ),
        ],
    );
    out.gauge(
        "napiatke_work_waiting",
        "Requests waiting for a slot now.",
        &[(&[], work.waiting as f64)],
    );
    out.header(
        "napiatke_work_wait_time_seconds",
        "summary",
        "Time requests that found every slot busy waited for one.",
    );
    out.sample(
        "napiatke_work_wait_time_seconds_sum",
        &[],
        work.wait_micros as f64 / 1e6,
    );
    out.sample(
        "napiatke_work_wait_time_seconds_count",
        &[],
        work.waited as f64,
    );
    out.counter(
        "napiatke_work_refused_total",
        "Requests answered 503 without a slot: after waiting the whole checkout timeout, or at once with DATABASE_QUEUE requests already waiting.",
        &[(&[], work.refused as f64)],
    );
    let cache = state.services.cache().stats();
    let mut lookups: Vec<(Vec<(&str, &str)>, f64)> = Vec::new();
    for ns in &cache.namespaces {
        for (tier, stats) in [("l1", ns.l1), ("l2", ns.l2)] {
            lookups.push((
                vec![("tier", tier), ("namespace", &ns.name), ("result", "hit")],
                stats.hits as f64,
            ));
            lookups.push((
                vec![("tier", tier), ("namespace", &ns.name), ("result", "miss")],
                stats.misses as f64,
            ));
        }
    }
    let samples: Vec<(&[(&str, &str)], f64)> =
        lookups.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
    out.counter(
        "napiatke_cache_lookups_total",
        "Cache lookups by tier, namespace and result.",
        &samples,
    );
    out.gauge(
        "napiatke_cache_l1_bytes",
        "Bytes held in the in-process cache.",
        &[(&[], cache.l1_bytes as f64)],
    );
    out.counter(
        "napiatke_redis_errors_total",
        "Redis operations that failed or timed out.",
        &[
            (&[("kind", "error")], cache.l2_errors as f64),
            (&[("kind", "timeout")], cache.l2_timeouts as f64),
        ],
    );
    out.gauge(
        "napiatke_redis_breaker_open",
        "1 while the circuit breaker keeps requests off Redis.",
        &[(&[], if cache.breaker_open { 1.0 } else { 0.0 })],
    );
    if let Some(jobs) = state.services.image_pool_stats() {
        out.gauge(
            "napiatke_image_jobs",
            "Image jobs by state now.",
            &[
                (&[("state", "queued")], jobs.queued as f64),
                (&[("state", "running")], jobs.running as f64),
            ],
        );
        out.counter(
            "napiatke_image_jobs_finished_total",
            "Image jobs finished, by outcome: done (the image READY, or FAILED with its reason in the images table) or failed (the job panicked; caught).",
            &[
                (
                    &[("outcome", "done")],
                    jobs.done.saturating_sub(jobs.panicked) as f64,
                ),
                (&[("outcome", "failed")], jobs.panicked as f64),
            ],
        );
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::FromRequest;

    fn future_size<F: actix_web::Handler<Args>, Args>(_: &F) -> usize {
        std::mem::size_of::<F::Future>()
    }

    /// A request's future is moved, and boxed, whole on its way through actix, so
    /// every byte of it is copied on every request, hit or miss: lesson-list and
    /// student-list futures of 30 KB (the cache's and the memo's miss paths inline)
    /// made a cached page copy about 76 KB a request (docs/performance.md, "Futures
    /// kept small").
    const LIMIT: usize = 4096;

    #[test]
    fn the_futures_every_request_moves_stay_small() {
        let sizes = [
            ("index", future_size(&index)),
            ("healthz", future_size(&healthz)),
            ("login_form", future_size(&login_form)),
            ("login", future_size(&login)),
            ("logout", future_size(&logout)),
            ("dashboard", future_size(&dashboard)),
            ("lessons", future_size(&lessons)),
            ("lessons_export", future_size(&lessons_export)),
            ("lesson", future_size(&lesson)),
            ("attendance", future_size(&attendance)),
            ("calendar", future_size(&calendar)),
            ("students", future_size(&students)),
            ("cache_stats", future_size(&cache_stats)),
            ("static_file", future_size(&static_file)),
            ("metrics", future_size(&metrics)),
            ("metrics_scrape", future_size(&metrics_scrape)),
            (
                "Auth extractor",
                std::mem::size_of::<<Auth as FromRequest>::Future>(),
            ),
        ];
        eprintln!("{sizes:?}");
        let large: Vec<_> = sizes.iter().filter(|(_, n)| *n > LIMIT).collect();
        assert!(large.is_empty(), "futures over {LIMIT} bytes: {large:?}");
    }
}
