//! The layer around the router ([`front`]): the static files' fast path; per-request
//! accounting (a span per request, the statement count and database time it cost,
//! added up by napiatke-telemetry from db's events, exposed as `X-Query-Count` and
//! `Server-Timing`, and warnings for heavy or slow requests); cross-site refusals;
//! and errors shown in place for htmx.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use napiatke_telemetry::RequestCost;
use tracing::Instrument;

use crate::{AppError, AppState};

/// A request running more statements than this is logged as a warning: it is
/// probably looping over rows.
pub const STATEMENT_WARNING: u64 = 20;

// Made at compile time: `from_static` at run time compares the name with every
// standard header's first (about 170 instructions each).
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
const X_QUERY_COUNT: HeaderName = HeaderName::from_static("x-query-count");
const X_RESPONSE_TIME: HeaderName = HeaderName::from_static("x-response-time");
const X_N_PLUS_ONE: HeaderName = HeaderName::from_static("x-n-plus-one");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The target of the one line logged per request (INFO).
pub const REQUEST_LOG_TARGET: &str = napiatke_telemetry::REQUEST_TARGET;

/// Who made the request, put in its extensions by the `Auth` extractor.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    /// The user's id.
    pub id: i64,
    /// Their role.
    pub role: napiatke_domain::Role,
}

/// The one middleware layer around the router, in this order: `/static/` answered
/// from memory; the request's span and accounting started (and the debug
/// toolbar's recording, in development); an address or headers over their limits
/// (414, 431) and cross-site unsafe requests refused ([`crate::origin`]); HEAD
/// turned into GET; the app called; the request's log line,
/// metrics, reports and accounting headers; an error's body as the user should see
/// it (`show_error`); the debug toolbar's handle. One layer rather than four `from_fn`
/// layers: each of those boxes the request's future twice and moves it, which cost a
/// cached page about a tenth of its throughput (docs/performance.md).
pub async fn front(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let mut req = match static_file(req) {
        Ok(res) => return Ok(res),
        Err(req) => req,
    };

    let hx = napiatke_htmx::Hx::from_headers(req.headers());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let production = state.as_ref().is_some_and(|s| s.secure_cookies);
    let request_id = request_id(req.headers());
    // TELEMETRY=off: no span, accounting, line, metrics or timing headers (the
    // baseline telemetry's cost is measured against, docs/performance.md).
    let accounting = match state {
        Some(s) if !s.telemetry => None,
        // The state moves in: a clone is an atomic add, and another to drop it.
        state => Some(Accounting::start(&req, hx, state, &request_id)),
    };
    let debugging = accounting.as_ref().and_then(|a| {
        crate::debug::Debugging::start(&req, a.state.as_ref().map(|s| s.get_ref()), &a.cost, hx)
    });
    // HEAD is GET without the body: routed and answered as GET (every GET route
    // answers HEAD with the same headers, Content-Length included); the
    // connection, which parsed the request as HEAD, sends no body. Logged as HEAD.
    if req.method() == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    let refused = over_limits(&req)
        .map(HttpResponse::from_error)
        .or_else(|| crate::origin::refuse(&req));
    let mut res = if let Some(refused) = refused {
        let (req, _) = req.into_parts();
        ServiceResponse::new(req, refused)
    } else if let Some(a) = &accounting {
        a.call(next, req).await?
    } else {
        next.call(req).await?.map_into_boxed_body()
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    strict_transport(&mut res, production);
    // Before the body is rebuilt: reports read the error attached to the response.
    match accounting {
        Some(a) => a.finish(&mut res),
        // The HTML cache's entry would say what others looked at; with the
        // telemetry off nobody is shown timings.
        None => {
            res.headers_mut().remove(SERVER_TIMING);
        }
    }
    let res = show_error(hx, res, &request_id);
    Ok(match debugging {
        Some(d) => d.finish(&request_id, res).await,
        None => res,
    })
}

/// In production, over HTTPS (the TLS proxy's `X-Forwarded-Proto` or `Forwarded`
/// saying so): HTTPS only from here on, for two years, subdomains included. Never
/// over plain HTTP, where RFC 6797 has browsers ignore it (and REDbot calls it
/// invalid).
fn strict_transport(res: &mut ServiceResponse<BoxBody>, production: bool) {
    if !production {
        return;
    }
    // `connection_info` is built (the peer's address formatted, the Forwarded
    // headers parsed) only when one of its sources could say https: every
    // request in production paid for it, about 1 % of a cached page's time.
    let req = res.request();
    let headers = req.headers();
    let may_be_https = headers.contains_key(header::FORWARDED)
        || headers.contains_key(X_FORWARDED_PROTO)
        || req.uri().scheme_str().is_some()
        || req.app_config().secure();
    if may_be_https && req.connection_info().scheme() == "https" {
        res.headers_mut().insert(
            actix_web::http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
}

/// The longest address (path and query) taken; longer is 414. nginx's default
/// buffer for a request line is 8 KB too, so nothing longer reaches us behind it.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The most header bytes (names and values) taken; more is 431. actix-http itself
/// refuses a head over 128 KB, with an empty 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A request over [`MAX_URI_BYTES`] or [`MAX_HEADER_BYTES`], answered before any
/// work with its own status and a message naming the limit.
fn over_limits(req: &ServiceRequest) -> Option<AppError> {
    let uri = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri > MAX_URI_BYTES {
        return Some(AppError::UriTooLong(format!(
            "the address is {uri} bytes long; the most this server takes is {MAX_URI_BYTES}"
        )));
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    (headers > MAX_HEADER_BYTES).then(|| {
        AppError::HeadersTooLarge(format!(
            "the request's headers are {headers} bytes; the most this server takes is {MAX_HEADER_BYTES}"
        ))
    })
}

/// The request's id: the client's `X-Request-Id` when it is a sane token (1 to 64
/// of `A-Za-z0-9._-`, as a proxy in front sets it), else a new one, unique across
/// processes (a random per-process prefix and a counter).
fn request_id(headers: &actix_web::http::header::HeaderMap) -> String {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let given = headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if let Some(id) = given {
        return id.to_owned();
    }
    let prefix = PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    });
    // 16 hex digits: `format!` of the same cost every request about 1,100
    // instructions (docs/performance.md).
    let id = ((prefix & 0xffff_ffff) << 32) | (NEXT.fetch_add(1, Relaxed) & 0xffff_ffff);
    napiatke_cache::hex(&id.to_be_bytes())
}

/// A request's cost (its statements, cache lookups and renders, added up while its
/// future is polled in the cost's scope), when it started, and its span when spans
/// are exported.
struct Accounting {
    /// Only when spans leave the process (OTEL_EXPORTER_OTLP_ENDPOINT): the
    /// accounting needs none.
    span: Option<tracing::Span>,
    /// As the client sent it (HEAD is routed as GET).
    method: actix_web::http::Method,
    /// The request as Sentry sees it (when SENTRY_DSN is set).
    watch: Option<napiatke_telemetry::report::Watch>,
    cost: RequestCost,
    started: Instant,
    expose: bool,
    slow: std::time::Duration,
    htmx: bool,
    /// Also what counts the request in flight, from `start` until `finish` takes
    /// it (and counts the request finished), or until the drop when `finish` never
    /// ran (an error from the app, a cancelled request).
    state: Option<web::Data<AppState>>,
}

/// A request that never reached [`Accounting::finish`] leaves the in-flight count
/// here.
impl Drop for Accounting {
    fn drop(&mut self) {
        if let Some(s) = &self.state {
            s.metrics.leave();
        }
    }
}

impl Accounting {
    fn start(
        req: &ServiceRequest,
        hx: napiatke_htmx::Hx,
        state: Option<web::Data<AppState>>,
        request_id: &str,
    ) -> Accounting {
        let (expose, slow) = state
            .as_ref()
            .map_or((false, std::time::Duration::MAX), |s| {
                (s.expose_query_count, s.slow_request_threshold)
            });
        // Named and attributed by OpenTelemetry's HTTP conventions for trace
        // exporters, "METHOD /route/{param}", as Sentry names transactions. An
        // exported span's name is fixed once it starts (before routing), so the
        // route is looked up here, only when spans or transactions leave the
        // process (it costs a second walk of the routes).
        let (exported, reported) = (
            napiatke_telemetry::otel::enabled(),
            napiatke_telemetry::report::enabled(),
        );
        let route = (exported || reported).then(|| {
            req.request()
                .resource_map()
                .match_pattern(req.path())
                .unwrap_or_else(|| "(unmatched)".to_owned())
        });
        let watch = match (&route, reported) {
            (Some(route), true) => Some(napiatke_telemetry::report::watch(
                req.method().as_str(),
                route,
                request_id,
            )),
            _ => None,
        };
        let span = match &route {
            Some(route) if exported => {
                let span = tracing::info_span!(
                    "request",
                    method = %req.method(),
                    path = %req.path(),
                    status = tracing::field::Empty,
                    request_id = %request_id,
                    otel.name = %format_args!("{} {route}", req.method()),
                    otel.kind = "server",
                    otel.status_code = tracing::field::Empty,
                    http.request.method = %req.method(),
                    http.route = tracing::field::Empty,
                    http.response.status_code = tracing::field::Empty,
                );
                let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
                napiatke_telemetry::otel::continue_trace(
                    &span,
                    header("traceparent"),
                    header("tracestate"),
                );
                Some(span)
            }
            _ => None,
        };
        Accounting {
            span,
            method: req.method().clone(),
            watch,
            cost: RequestCost::new(request_id),
            started: Instant::now(),
            expose,
            slow,
            htmx: hx.request,
            state: state.inspect(|s| s.metrics.enter()),
        }
    }

    /// Calls the app for `req` in the request's scope (and inside its span when
    /// there is one): handlers and extractors are made inside `call`, so that runs
    /// in the scope too.
    async fn call<B: MessageBody + 'static>(
        &self,
        next: Next<B>,
        req: ServiceRequest,
    ) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
        let res = match &self.span {
            Some(span) => {
                let fut = self.cost.in_scope(|| span.in_scope(|| next.call(req)));
                self.cost.scope(fut.instrument(span.clone())).await
            }
            None => self.cost.scope_with(|| next.call(req)).await,
        };
        Ok(res?.map_into_boxed_body())
    }

    /// The request's log line and metrics; warnings for heavy, slow or N+1
    /// requests; `X-Query-Count`, `Server-Timing` and `X-Response-Time` when exposed
    /// (EXPOSE_QUERY_COUNT, on in development) or for an admin (never to others:
    /// timings tell an outsider what is cached).
    fn finish(mut self, res: &mut ServiceResponse<BoxBody>) {
        let elapsed = self.started.elapsed();
        let cost = &self.cost;
        let request_id = cost.request_id();
        let statements = cost.statements();
        let status = res.status().as_u16();
        let route = crate::routing::route_of(res.request());
        if let Some(span) = &self.span {
            record_outcome(span, status, &route);
        }
        let viewer = res.request().extensions().get::<Viewer>().copied();
        // A shape must have run N_PLUS_ONE times: fewer statements cannot hold one.
        let repeated = if statements >= u64::from(napiatke_telemetry::N_PLUS_ONE) {
            cost.repeated_statements(napiatke_telemetry::N_PLUS_ONE)
        } else {
            Vec::new()
        };
        let every = self.state.as_ref().map_or(1, |s| s.request_log_every);
        let went_well = status < 400
            && matches!(self.method.as_str(), "GET" | "HEAD")
            && elapsed <= self.slow
            && repeated.is_empty();
        if every <= 1 || !went_well || sampled(every) {
            napiatke_telemetry::log_request(&napiatke_telemetry::RequestLine {
                method: self.method.as_str(),
                route: &route,
                path: res.request().path(),
                status,
                request_id,
                duration: elapsed,
                user_id: viewer.map(|v| v.id),
                role: viewer.map(|v| v.role.as_str()),
                htmx: self.htmx,
                statements,
                db_micros: cost.db_micros(),
                cache: cost.cache(),
                render_micros: cost.render().1,
                bytes: match res.response().body().size() {
                    actix_web::body::BodySize::Sized(n) => Some(n),
                    _ => None,
                },
            });
        }
        if statements > STATEMENT_WARNING || elapsed > self.slow || !repeated.is_empty() {
            warn_heavy(
                &route, request_id, statements, elapsed, self.slow, &repeated,
            );
        }
        if let Some(watch) = self.watch.take() {
            report(watch, res, status, viewer);
        }
        // Taken: counted as finished here, so the drop has nothing left to do.
        if let Some(state) = self.state.take() {
            state
                .metrics
                .finish(&route, self.method.as_str(), status, elapsed, statements);
        }
        let admin = viewer.is_some_and(|v| v.role == napiatke_domain::Role::Admin);
        if self.expose || admin {
            expose_cost(res, cost, elapsed, statements, &repeated);
        } else {
            // The HTML cache's entry too: a hit or miss tells what others looked at.
            res.headers_mut().remove(SERVER_TIMING);
        }
    }
}

/// The request's outcome on its exported span (out of line: only with an OTLP
/// endpoint).
#[inline(never)]
fn record_outcome(span: &tracing::Span, status: u16, route: &str) {
    span.record("status", status);
    span.record("http.route", route);
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// Warnings for a request over the statement count or the slow threshold, or with
/// an N+1. Out of line, like the other rare paths of [`Accounting::finish`]: the
/// warnings' macros are most of the function's code, and a request that needs none
/// of them should not fetch it (telemetry's code runs once a request, from L2;
/// docs/performance.md).
#[cold]
#[inline(never)]
fn warn_heavy(
    route: &str,
    request_id: &str,
    statements: u64,
    elapsed: std::time::Duration,
    slow: std::time::Duration,
    repeated: &[(String, u32)],
) {
    if statements > STATEMENT_WARNING {
        tracing::warn!(route = %route, statements, request_id, "request ran more than {STATEMENT_WARNING} statements");
    }
    if elapsed > slow {
        tracing::warn!(route = %route, elapsed_ms = elapsed.as_millis() as u64, statements, request_id, "slow request");
    }
    for (sql, times) in repeated {
        tracing::warn!(route = %route, times, sql = %sql, request_id, "N+1: one statement ran once per row");
    }
}

/// The request to Sentry: a 5xx as an error event with its cause (out of line:
/// only with a DSN).
#[inline(never)]
fn report(
    watch: napiatke_telemetry::report::Watch,
    res: &ServiceResponse<BoxBody>,
    status: u16,
    viewer: Option<Viewer>,
) {
    let cause = res.response().error().map(ToString::to_string);
    watch.finish(
        status,
        viewer.map(|v| napiatke_telemetry::report::Viewer {
            id: v.id,
            role: v.role.as_str(),
        }),
        cause.as_deref(),
    );
}

/// `X-Query-Count`, `X-Response-Time`, `X-N-Plus-One` and `Server-Timing`, for
/// developers and admins.
#[inline(never)]
fn expose_cost(
    res: &mut ServiceResponse<BoxBody>,
    cost: &RequestCost,
    elapsed: std::time::Duration,
    statements: u64,
    repeated: &[(String, u32)],
) {
    let headers = res.headers_mut();
    headers.insert(
        X_QUERY_COUNT,
        if statements == 0 {
            HeaderValue::from_static("0")
        } else {
            HeaderValue::from(statements)
        },
    );
    let mut text = Vec::with_capacity(16);
    napiatke_telemetry::push_millis(
        &mut text,
        u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
    );
    text.extend_from_slice(b"ms");
    if let Ok(v) = HeaderValue::from_maybe_shared(web::Bytes::from(text)) {
        headers.insert(X_RESPONSE_TIME, v);
    }
    // The worst N+1, for developers and the page tests (tests/app/common.rs fails
    // any page that has one).
    if let Some((sql, times)) = repeated.first() {
        let text: String = format!("{times}x {sql}")
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .take(300)
            .collect();
        if let Ok(v) = HeaderValue::from_str(&text) {
            headers.insert(X_N_PLUS_ONE, v);
        }
    }
    // One field, after any entries the handler set (the HTML cache's).
    let name = SERVER_TIMING;
    let mut timing = Vec::with_capacity(256);
    for earlier in headers.get_all(&name) {
        timing.extend_from_slice(earlier.as_bytes());
        timing.extend_from_slice(b", ");
    }
    cost.server_timing(elapsed, &mut timing);
    if let Ok(v) = HeaderValue::from_maybe_shared(web::Bytes::from(timing)) {
        headers.insert(name, v);
    }
}

/// One call in `every` is true (a counter per process: the kept lines are spread
/// evenly, whatever the mix of routes).
fn sampled(every: u64) -> bool {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static SEEN: AtomicU64 = AtomicU64::new(0);
    SEEN.fetch_add(1, Relaxed).is_multiple_of(every)
}

/// WhiteNoise-style: `/static/` is answered first, from memory, before routing,
/// accounting and extractors, since it is the hottest path and needs none of them.
/// The request comes back when it is not for a static file.
fn static_file(req: ServiceRequest) -> Result<ServiceResponse<BoxBody>, ServiceRequest> {
    if !req.path().starts_with("/static/") {
        return Err(req);
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(req);
    };
    let res = crate::handlers::serve_static(&state, req.request());
    Ok(req.into_response(res))
}

/// An error answer as the user should see it, status and other headers kept:
/// - for htmx, its message where the user acted, never an error page swapped into a
///   table row: the body becomes one short message, retargeted to the page's
///   `#messages` area (`HX-Retarget`, `HX-Reswap`; base.html tells htmx to swap 4xx
///   and 5xx answers);
/// - otherwise the error page with the request's id on it, so a user can quote it.
///
/// Login redirects (303, or 401 with `HX-Redirect` for htmx) pass as they are;
/// history restores want a whole page and get one.
fn show_error(
    hx: napiatke_htmx::Hx,
    res: ServiceResponse<BoxBody>,
    request_id: &str,
) -> ServiceResponse<BoxBody> {
    let Some(error) = res
        .response()
        .error()
        .and_then(|e| e.as_error::<AppError>())
        .filter(|e| !matches!(e, AppError::LoginRequired { .. }))
    else {
        return res;
    };
    let in_place = hx.wants_fragment() && res.status().as_u16() >= 400;
    let body = if in_place {
        let mut body = String::from("<p class=\"error\" role=\"alert\">");
        napiatke_htmx::escape_html_into(&mut body, &error.public_message());
        body.push_str("</p>");
        body
    } else {
        crate::error::error_page(res.status(), &error.public_message(), Some(request_id))
    };
    let (req, old) = res.into_parts();
    let mut fresh = HttpResponse::build(old.status());
    for (name, value) in old.headers() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            fresh.append_header((name.clone(), value.clone()));
        }
    }
    let mut fresh = fresh.content_type("text/html; charset=utf-8").body(body);
    if in_place {
        napiatke_htmx::HxHeaders::new()
            .retarget("#messages")
            .reswap("innerHTML")
            .apply(&mut fresh);
    }
    ServiceResponse::new(req, fresh)
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_in_every_is_kept_evenly() {
        let kept: Vec<bool> = (0..12).map(|_| super::sampled(4)).collect();
        assert_eq!(kept.iter().filter(|k| **k).count(), 3, "{kept:?}");
        // Evenly: never two kept in a row.
        assert!(kept.windows(2).all(|w| !(w[0] && w[1])), "{kept:?}");
    }
}
