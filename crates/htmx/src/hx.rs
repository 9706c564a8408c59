//! The htmx side of a request (its `HX-*` headers) and the HTML responses that vary
//! on it.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

/// The htmx headers of a request that matter for rendering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hx {
    /// `HX-Request: true`: htmx made the request.
    pub request: bool,
    /// `HX-History-Restore-Request: true`: htmx restores history after a cache miss
    /// and needs the whole page.
    pub history_restore: bool,
    /// `HX-Boosted: true`: a boosted link or form, which swaps the whole body.
    pub boosted: bool,
}

impl Hx {
    /// Reads the headers.
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let flag = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        Hx {
            request: flag("hx-request"),
            history_restore: flag("hx-history-restore-request"),
            boosted: flag("hx-boosted"),
        }
    }

    /// Whether to answer with a fragment rather than the page.
    #[must_use]
    pub fn wants_fragment(self) -> bool {
        self.request && !self.history_restore && !self.boosted
    }
}

impl actix_web::FromRequest for Hx {
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(Hx::from_headers(req.headers())))
    }
}

/// An HTML response that differs by `HX-Request` (a page, or its fragment for htmx):
/// what [`Templates::respond`](crate::Templates::respond) sends, for handlers whose HTML comes from elsewhere
/// (a cache).
#[must_use]
pub fn varying_html(status: StatusCode, body: String) -> HttpResponse {
    let mut res = html(status, body);
    res.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("HX-Request"));
    res
}

/// An HTML response.
#[must_use]
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .body(body)
}
