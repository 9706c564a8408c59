//! The development debug toolbar's side in the shell (DEBUG_TOOLBAR, development
//! only): each request recorded by the front layer ([`Debugging`]), the handle
//! injected into full pages, and the routes under `/__debug__/` its script fetches
//! panels, history and plans from. The toolbar's own requests are not recorded, and
//! nothing it does happens before the request's figures are taken: what a page
//! measures is what it measures without the toolbar, plus the injection.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use napiatke_telemetry::record::Recording;
use napiatke_telemetry::RequestCost;
use napiatke_toolbar::{shown_header, Entry, HtmxInfo, Timings, Toolbar};

use crate::{AppError, AppState};

type State = web::Data<AppState>;

/// A request being recorded for the toolbar.
pub(crate) struct Debugging {
    toolbar: Arc<Toolbar>,
    recording: Recording,
    cost: RequestCost,
    started: Instant,
    time: String,
    method: String,
    path: String,
    request_headers: Vec<(String, String)>,
    htmx: Option<HtmxInfo>,
    hx: napiatke_htmx::Hx,
}

impl Debugging {
    /// Starts recording the request's events when the toolbar is on and the
    /// request is not the toolbar's own.
    pub(crate) fn start(
        req: &ServiceRequest,
        state: Option<&AppState>,
        cost: &RequestCost,
        hx: napiatke_htmx::Hx,
    ) -> Option<Debugging> {
        // From the state the front layer already holds: another `app_data` lookup
        // cost every request about 80 instructions, toolbar or not.
        let toolbar = state.and_then(|s| s.toolbar.clone())?;
        if req.path().starts_with(napiatke_toolbar::BASE) {
            return None;
        }
        let recording = Recording::default();
        cost.record_into(recording.clone());
        let headers = req.headers();
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let htmx = hx.request.then(|| HtmxInfo {
            trigger: text("hx-trigger"),
            trigger_name: text("hx-trigger-name"),
            target: text("hx-target"),
            current_url: text("hx-current-url"),
            boosted: text("hx-boosted").is_some(),
            history_restore: text("hx-history-restore-request").is_some(),
            ..HtmxInfo::default()
        });
        let path = match req.query_string() {
            "" => req.path().to_owned(),
            q => format!("{}?{q}", req.path()),
        };
        Some(Debugging {
            toolbar,
            recording,
            cost: cost.clone(),
            started: Instant::now(),
            time: utc_time(),
            method: req.method().to_string(),
            path,
            request_headers: shown_headers(headers),
            htmx,
            hx,
        })
    }

    /// Keeps the request in the history, names it in `X-Debug-Request-Id`, and
    /// injects the toolbar's handle into a full HTML page.
    pub(crate) async fn finish(
        self,
        request_id: &str,
        res: ServiceResponse<BoxBody>,
    ) -> ServiceResponse<BoxBody> {
        let total = self.started.elapsed();
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let c = self.cost.cache();
        let (_, render_micros) = self.cost.render();
        let response_headers = shown_headers(res.headers());
        let text = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let htmx = self.htmx.map(|h| HtmxInfo {
            reswap: text("hx-reswap"),
            retarget: text("hx-retarget"),
            push_url: text("hx-push-url"),
            ..h
        });
        let entry = self.toolbar.record(Entry {
            id: request_id.to_owned(),
            time: self.time,
            method: self.method,
            path: self.path,
            route: crate::routing::route_of(res.request()).into_owned(),
            status: res.status().as_u16(),
            htmx,
            request_headers: self.request_headers,
            response_headers,
            timings: Timings {
                total_micros: micros(total),
                db_micros: self.cost.db_micros(),
                cache_micros: c.l2_micros,
                render_micros,
            },
            recorded: self.recording.take(),
        });
        let mut res = res;
        if let Ok(v) = HeaderValue::from_str(request_id) {
            res.headers_mut()
                .insert(HeaderName::from_static(napiatke_toolbar::ID_HEADER), v);
        }
        let whole_page = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"))
            && !self.hx.wants_fragment();
        if !whole_page {
            return res;
        }
        match self.toolbar.handle(&entry) {
            Ok(handle) => inject(res, &handle).await,
            Err(e) => {
                tracing::warn!(error = %e, "debug toolbar");
                res
            }
        }
    }
}

/// The page with the handle before its `</body>`, sent uncompressed and never
/// stored by the browser (a stored page would show an old request's toolbar). A
/// body that cannot be read or decoded is sent as it was.
async fn inject(res: ServiceResponse<BoxBody>, handle: &str) -> ServiceResponse<BoxBody> {
    let (req, res) = res.into_parts();
    let (mut head, body) = res.into_parts();
    let bytes = match actix_web::body::to_bytes(body).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(error = %e, "debug toolbar: the page's body could not be read");
            return ServiceResponse::new(
                req,
                HttpResponse::InternalServerError().body("the page's body could not be read"),
            );
        }
    };
    let coding = head
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_owned();
    let plain = match decode(&coding, &bytes).map(String::from_utf8) {
        Some(Ok(text)) => text,
        _ => return ServiceResponse::new(req, head.set_body(bytes).map_into_boxed_body()),
    };
    let html = napiatke_toolbar::inject(&plain, handle);
    let headers = head.headers_mut();
    for name in [
        header::CONTENT_ENCODING,
        header::CONTENT_LENGTH,
        header::ETAG,
        header::LAST_MODIFIED,
    ] {
        headers.remove(name);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    ServiceResponse::new(req, head.set_body(html).map_into_boxed_body())
}

/// The body decoded from its `Content-Encoding`; `None` for a coding this does not
/// read or a body that does not decode.
fn decode(coding: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    match coding {
        "identity" => return Some(bytes.to_vec()),
        "br" => brotli::Decompressor::new(bytes, 4096)
            .read_to_end(&mut out)
            .ok()?,
        "gzip" => flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .ok()?,
        _ => return None,
    };
    Some(out)
}

fn shown_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut shown: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| shown_header(n.as_str(), &String::from_utf8_lossy(v.as_bytes())))
        .collect();
    shown.sort();
    shown
}

/// Now as `HH:MM:SS.mmm UTC`.
fn utc_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let day = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        day / 3600,
        day / 60 % 60,
        day % 60,
        now.subsec_millis()
    )
}

fn toolbar(state: &AppState) -> Result<&Toolbar, AppError> {
    state
        .toolbar
        .as_deref()
        .ok_or_else(|| AppError::NotFound("there is nothing at this address".to_owned()))
}

fn fragment(status: StatusCode, html: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/html; charset=utf-8")
        .body(html)
}

fn shown(e: napiatke_toolbar::ToolbarError) -> AppError {
    AppError::Internal(e.to_string())
}

fn gone(id: &str) -> AppError {
    AppError::NotFound(format!(
        "request {id} is not in the debug toolbar's history (it keeps the last 50)"
    ))
}

/// GET /__debug__/history: the kept requests, newest first.
pub async fn history(state: State) -> Result<HttpResponse, AppError> {
    let html = toolbar(&state)?.history().map_err(shown)?;
    Ok(fragment(StatusCode::OK, html))
}

/// GET /__debug__/requests/{id}: every panel of one request.
pub async fn request(state: State, id: web::Path<String>) -> Result<HttpResponse, AppError> {
    let toolbar = toolbar(&state)?;
    let entry = toolbar.get(&id).ok_or_else(|| gone(&id))?;
    let html = toolbar.panels(&entry).map_err(shown)?;
    Ok(fragment(StatusCode::OK, html))
}

/// GET /__debug__/explain/{id}/{n}: the plan of the request's `n`th statement, as
/// recorded (the client names a statement; it never sends SQL).
pub async fn explain(
    state: State,
    path: web::Path<(String, usize)>,
) -> Result<HttpResponse, AppError> {
    let (id, n) = path.into_inner();
    let toolbar = toolbar(&state)?;
    let entry = toolbar.get(&id).ok_or_else(|| gone(&id))?;
    let sql = entry
        .recorded
        .statements
        .get(n)
        .map(|s| s.sql.clone())
        .ok_or_else(|| AppError::NotFound(format!("request {id} has no statement {n}")))?;
    let (status, html) = match state.services.explain(sql.clone()).await {
        Ok(lines) => (StatusCode::OK, toolbar.plan(&sql, Ok(&lines))),
        Err(e) => match e.kind() {
            napiatke_services::ServiceError::BadInput(why) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                toolbar.plan(&sql, Err(why)),
            ),
            _ => return Err(e.into()),
        },
    };
    Ok(fragment(status, html.map_err(shown)?))
}

/// What the toolbar shows on every request: the settings (secrets hidden, as
/// `napiatke config` prints them), versions, and its assets' URLs.
pub(crate) fn info(
    settings: &crate::config::Settings,
    statics: &napiatke_assets::StaticFiles,
) -> napiatke_toolbar::Info {
    let settings_shown = settings
        .describe()
        .into_iter()
        .map(|line| match line.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (line, String::new()),
        })
        .collect();
    let mut versions = vec![
        ("napiatke".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        ("rustc".to_owned(), env!("NAPIATKE_RUSTC").to_owned()),
        (
            "build profile".to_owned(),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_owned(),
        ),
    ];
    versions.extend(env!("NAPIATKE_DEPENDENCIES").split(';').filter_map(|pair| {
        pair.split_once(' ')
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
    }));
    napiatke_toolbar::Info {
        settings: settings_shown,
        versions,
        css_url: statics.url("toolbar/toolbar.css").unwrap_or_default(),
        js_url: statics.url("toolbar/toolbar.js").unwrap_or_default(),
    }
}
