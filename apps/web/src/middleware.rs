//! Per-request accounting: a span per request, the statement count and database time
//! it cost (added up by napiatke-telemetry from db's events), exposed as
//! `X-Query-Count` and `Server-Timing`, and warnings for heavy or slow requests; the
//! static files' fast path; and errors shown in place for htmx.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use napiatke_telemetry::{attach, RequestCost};
use tracing::Instrument;

use crate::{AppError, AppState};

/// A request running more statements than this is logged as a warning: it is
/// probably looping over rows.
pub const STATEMENT_WARNING: u64 = 20;

/// The accounting middleware (see the module docs).
pub async fn accounting(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let (expose, slow) = req
        .app_data::<web::Data<AppState>>()
        .map_or((false, std::time::Duration::MAX), |s| {
            (s.expose_query_count, s.slow_request_threshold)
        });
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.path(),
        status = tracing::field::Empty,
    );
    let cost = RequestCost::default();
    attach(&span, cost.clone());
    let started = Instant::now();
    // Handlers and extractors are created inside `call`: enter the span for that too.
    let fut = {
        let _entered = span.enter();
        next.call(req)
    };
    let mut res = fut.instrument(span.clone()).await?;
    let elapsed = started.elapsed();
    let statements = cost.statements();
    span.record("status", res.status().as_u16());
    if statements > STATEMENT_WARNING {
        tracing::warn!(parent: &span, statements, "request ran more than {STATEMENT_WARNING} statements");
    }
    if elapsed > slow {
        tracing::warn!(parent: &span, elapsed_ms = elapsed.as_millis() as u64, statements, "slow request");
    }
    if expose {
        let headers = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&statements.to_string()) {
            headers.insert(HeaderName::from_static("x-query-count"), v);
        }
        let c = cost.cache();
        let timing = format!(
            "db;dur={:.3};desc=\"{statements} statements\", cache;dur={:.3};desc=\"L1 {}/{} L2 {}/{} (hits/lookups)\", total;dur={:.3}",
            cost.db_micros() as f64 / 1000.0,
            c.l2_micros as f64 / 1000.0,
            c.l1_hits,
            c.l1_hits + c.l1_misses,
            c.l2_hits,
            c.l2_hits + c.l2_misses,
            elapsed.as_secs_f64() * 1000.0
        );
        // One field, after any entries the handler set (the HTML cache's).
        let name = HeaderName::from_static("server-timing");
        let earlier: Vec<String> = headers
            .get_all(&name)
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let timing = earlier
            .into_iter()
            .chain([timing])
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(v) = HeaderValue::from_str(&timing) {
            headers.insert(name, v);
        }
    }
    Ok(res)
}

/// The outermost layer, WhiteNoise-style: `/static/` is answered here from memory,
/// before routing, other middleware and extractors, since it is the hottest path and
/// needs none of them. Everything else goes on down the stack.
pub async fn static_files(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    if req.path().starts_with("/static/") {
        if let Some(state) = req.app_data::<web::Data<AppState>>().cloned() {
            let res = crate::handlers::serve_static(&state, req.request());
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// An error answering an htmx request shows its message where the user acted, never
/// an error page swapped into a table row: the body becomes one short message,
/// retargeted to the page's `#messages` area (`HX-Retarget`, `HX-Reswap`), status and
/// other headers kept (base.html tells htmx to swap 4xx and 5xx answers). Login
/// redirects (401 with `HX-Redirect`) and history restores (they want a whole page)
/// pass as they are.
pub async fn htmx_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let hx = napiatke_htmx::Hx::from_headers(req.headers());
    let res = next.call(req).await?.map_into_boxed_body();
    if !hx.wants_fragment() || res.status().as_u16() < 400 {
        return Ok(res);
    }
    let Some(message) = res
        .response()
        .error()
        .and_then(|e| e.as_error::<AppError>())
        .filter(|e| !matches!(e, AppError::LoginRequired { .. }))
        .map(AppError::public_message)
    else {
        return Ok(res);
    };
    let (req, old) = res.into_parts();
    let mut fresh = HttpResponse::build(old.status());
    for (name, value) in old.headers() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            fresh.append_header((name.clone(), value.clone()));
        }
    }
    let mut body = String::from("<p class=\"error\" role=\"alert\">");
    napiatke_htmx::escape_html_into(&mut body, &message);
    body.push_str("</p>");
    let mut fresh = fresh.content_type("text/html; charset=utf-8").body(body);
    napiatke_htmx::HxHeaders::new()
        .retarget("#messages")
        .reswap("innerHTML")
        .apply(&mut fresh);
    Ok(ServiceResponse::new(req, fresh))
}
