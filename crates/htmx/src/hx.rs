//! The htmx side of a request (its `HX-*` headers) and the HTML responses that vary
//! on it.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

static HX_REQUEST: HeaderName = HeaderName::from_static("hx-request");
static HX_HISTORY_RESTORE_REQUEST: HeaderName =
    HeaderName::from_static("hx-history-restore-request");
static HX_BOOSTED: HeaderName = HeaderName::from_static("hx-boosted");

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
        // Looked up by `HeaderName`s made at compile time: a `&str` key is parsed
        // into a name on every lookup (about 500 instructions for these three,
        // each, on every request; docs/performance.md).
        let flag = |name: &HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        Hx {
            request: flag(&HX_REQUEST),
            history_restore: flag(&HX_HISTORY_RESTORE_REQUEST),
            boosted: flag(&HX_BOOSTED),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz target (napiatke-fuzzing): any bytes in the `HX-*` headers, one or
    /// several of each: never a panic, and a flag is set only by a readable "true".
    #[test]
    fn fuzz_hx_headers() {
        let names = ["hx-request", "hx-history-restore-request", "hx-boosted"];
        let words = [
            "true", "TRUE", "True", "false", "1", " ", "\t", "tru", "e", "\u{0}",
        ];
        napiatke_fuzzing::cases("hx headers", 3_000, |rng| {
            let mut headers = HeaderMap::new();
            for _ in 0..rng.usize(0..5) {
                let name = HeaderName::from_static(names[rng.usize(..names.len())]);
                let raw = if rng.bool() {
                    napiatke_fuzzing::text(rng, &words, 2).into_bytes()
                } else {
                    napiatke_fuzzing::bytes(rng, 8)
                };
                if let Ok(v) = HeaderValue::from_bytes(&raw) {
                    headers.append(name, v);
                }
            }
            let hx = Hx::from_headers(&headers);
            let says_true = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            };
            assert_eq!(hx.request, says_true("hx-request"));
            assert_eq!(hx.boosted, says_true("hx-boosted"));
            assert_eq!(
                hx.wants_fragment(),
                says_true("hx-request")
                    && !says_true("hx-history-restore-request")
                    && !says_true("hx-boosted")
            );
        });
    }
}
