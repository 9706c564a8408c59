//! Cross-site request protection by Fetch Metadata and `Origin`, as Go 1.25's
//! `http.CrossOriginProtection` does it, for every unsafe method before any handler
//! or body extractor runs:
//!
//! 1. GET, HEAD and OPTIONS pass (they change nothing);
//! 2. `Sec-Fetch-Site: same-origin` or `none` (typed or bookmarked) passes; any other
//!    value (`same-site`, `cross-site`) is refused;
//! 3. without `Sec-Fetch-Site` (browsers before 2023), `Origin` must name this host
//!    (`null` and foreign origins are refused);
//! 4. with neither header the request is not from a browser, which is the only thing
//!    a cross-site forgery can use (it rides on the victim's cookies), so it passes.
//!
//! So pages carry no per-session token and can be cached per user or scope; the
//! session cookie's `SameSite=Lax` stays as a second line. The host compared is the
//! one the client asked for (`Forwarded` / `X-Forwarded-Host` from a proxy in front,
//! else `Host`); a page cannot forge those on a cross-site form, and a script that
//! sets them needs a CORS preflight napiatke never grants.

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderMap, ORIGIN};
use actix_web::http::Method;
use actix_web::HttpResponse;

use crate::AppError;

/// Why a request was refused, for the 403's message and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Sec-Fetch-Site` said the request came from another site.
    CrossSite,
    /// `Origin` named another origin (or `null`).
    ForeignOrigin,
}

/// Whether `method` with `headers` may go on, for a server reached as `host`.
///
/// ```
/// use actix_web::http::{header::{HeaderMap, HeaderName, HeaderValue}, Method};
/// use napiatke_web::origin::{check, Refusal};
/// let mut h = HeaderMap::new();
/// h.insert(HeaderName::from_static("sec-fetch-site"), HeaderValue::from_static("cross-site"));
/// assert_eq!(check(&Method::POST, &h, Some("school.example")), Err(Refusal::CrossSite));
/// assert_eq!(check(&Method::GET, &h, Some("school.example")), Ok(()));
/// let mut h = HeaderMap::new();
/// h.insert(HeaderName::from_static("origin"), HeaderValue::from_static("https://school.example"));
/// assert_eq!(check(&Method::POST, &h, Some("school.example")), Ok(()));
/// # Ok::<(), Refusal>(())
/// ```
pub fn check(method: &Method, headers: &HeaderMap, host: Option<&str>) -> Result<(), Refusal> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    match text("sec-fetch-site") {
        Some("same-origin" | "none") => return Ok(()),
        Some(_) => return Err(Refusal::CrossSite),
        None => {}
    }
    // A header that is present but unreadable is not "absent".
    if headers.contains_key("sec-fetch-site") {
        return Err(Refusal::CrossSite);
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest));
    match (origin_host, host) {
        (Some(o), Some(h)) if !o.is_empty() && o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(Refusal::ForeignOrigin),
    }
}

/// The answer to an unsafe request that [`check`] refuses: 403 with a message,
/// logged (without its body, which is never read). `None`: the request may go on.
pub(crate) fn refuse(req: &ServiceRequest) -> Option<HttpResponse> {
    // Safe methods pass without the host: working it out costs every GET a copy of
    // the request's connection info.
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let info = req.connection_info().clone();
    let refusal = check(req.method(), req.headers(), Some(info.host())).err()?;
    tracing::warn!(
        method = %req.method(),
        path = %req.path(),
        ?refusal,
        origin = ?req.headers().get(ORIGIN),
        "cross-site request refused"
    );
    // With the error attached, so the htmx layer can show its message in place.
    Some(HttpResponse::from_error(AppError::Forbidden(
        "this request came from another site; send the form from napiatke's own pages".to_owned(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    /// Fuzz target (napiatke-fuzzing): any method, `Sec-Fetch-Site`, `Origin` and
    /// host. Safe methods always pass; with `Sec-Fetch-Site` only same-origin and
    /// none pass; without it, an unsafe request that passes with an `Origin` has one
    /// a URL parser (as browsers write it) reads as this very host.
    #[test]
    fn fuzz_cross_site_check() {
        let words = [
            "same-origin",
            "none",
            "same-site",
            "cross-site",
            "SAME-ORIGIN",
            "https://",
            "http://",
            "school.example",
            "SCHOOL.example",
            "evil.example",
            ":8080",
            "/",
            "@",
            "null",
            ".evil.example",
            " ",
            "\t",
            "%2e",
            "\\",
        ];
        let hosts = [
            "school.example",
            "SCHOOL.example",
            ":8080",
            "evil.example",
            "",
        ];
        let methods = [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ];
        napiatke_fuzzing::cases("cross-site check", 5_000, |rng| {
            let method = methods[rng.usize(..methods.len())].clone();
            let mut headers = HeaderMap::new();
            for name in ["sec-fetch-site", "origin"] {
                if rng.bool() {
                    let raw = if rng.u8(..8) == 0 {
                        napiatke_fuzzing::bytes(rng, 12)
                    } else {
                        napiatke_fuzzing::text(rng, &words, 4).into_bytes()
                    };
                    if let Ok(v) = HeaderValue::from_bytes(&raw) {
                        headers.insert(HeaderName::from_static(name), v);
                    }
                }
            }
            let host = rng.bool().then(|| napiatke_fuzzing::text(rng, &hosts, 2));
            let verdict = check(&method, &headers, host.as_deref());
            if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
                assert_eq!(verdict, Ok(()));
                return;
            }
            if let Some(site) = headers.get("sec-fetch-site") {
                let passes = matches!(site.to_str(), Ok("same-origin" | "none"));
                assert_eq!(verdict.is_ok(), passes, "{headers:?}");
                return;
            }
            let (Ok(()), Some(origin)) = (verdict, headers.get(ORIGIN)) else {
                return;
            };
            let origin = origin.to_str().unwrap_or_default();
            let host = host.unwrap_or_default();
            assert!(!host.is_empty(), "{origin:?} passed with no host");
            if let Ok(url) = url::Url::parse(origin) {
                if let Some(h) = url.host_str() {
                    let authority = match url.port() {
                        Some(p) => format!("{h}:{p}"),
                        None => h.to_owned(),
                    };
                    assert!(
                        authority.eq_ignore_ascii_case(&host) || authority.is_empty(),
                        "{origin:?} passed for {host:?}"
                    );
                }
            }
        });
    }
}
