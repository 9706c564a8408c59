//! Sessions at the HTTP edge: the cookie, the extractor that loads the logged-in
//! user, and the login form's double-submit token (forms after login are protected
//! by where they come from: [`crate::origin`]).

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use napiatke_domain::User;
use napiatke_services::{Session, SESSION_TTL};
use subtle::ConstantTimeEq;

use crate::{AppError, AppState};

/// The session cookie: a random token whose hash keys the `sessions` row.
pub const SESSION_COOKIE: &str = "napiatke_session";
/// The pre-login CSRF cookie (double submit): the login form has no session yet.
pub const LOGIN_CSRF_COOKIE: &str = "napiatke_csrf";

/// The logged-in user. Extracting it from a request without a live session fails
/// with [`AppError::LoginRequired`].
#[derive(Debug, Clone)]
pub struct Auth {
    /// The session.
    pub session: Session,
    /// The cookie token (to end the session on logout).
    pub token: String,
}

impl Auth {
    /// The user.
    pub fn user(&self) -> &User {
        &self.session.user
    }
}

/// The login form's double-submit check: the form's token must be the one in the
/// pre-login cookie (returned, for the form shown again). 403 otherwise.
pub fn check_login_csrf(req: &HttpRequest, sent: &str) -> Result<String, AppError> {
    match cookie_value(req.headers(), LOGIN_CSRF_COOKIE) {
        Some(c) if tokens_match(sent, c) => Ok(c.to_owned()),
        _ => Err(AppError::Forbidden(
            "the login form's security token is missing or out of date; reload the page and try again".to_owned(),
        )),
    }
}

/// Constant-time comparison; an empty token never matches.
pub fn tokens_match(sent: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// The value of the first cookie called `name` in the request's `Cookie` headers,
/// trimmed, with quotes around it taken off (no percent-decoding: our tokens are
/// hex). Other cookies are not read: one that is not UTF-8 (a script's raw
/// `zażółć`) does not hide ours.
///
/// `HttpRequest::cookie` parses and percent-decodes every cookie of the request
/// into a list kept in its extensions: about 4,000 instructions, on every page, to
/// read one value (docs/performance.md).
pub fn cookie_value<'a>(
    headers: &'a actix_web::http::header::HeaderMap,
    name: &str,
) -> Option<&'a str> {
    headers
        .get_all(actix_web::http::header::COOKIE)
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let at = pair.iter().position(|&b| b == b'=')?;
            let (n, value) = (&pair[..at], &pair[at + 1..]);
            if n.trim_ascii() != name.as_bytes() {
                return None;
            }
            let value = std::str::from_utf8(value).ok()?.trim();
            Some(
                value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .map_or(value, str::trim),
            )
        })
}

impl FromRequest for Auth {
    type Error = AppError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            // Built only when needed: most requests are logged in.
            let login_required = || AppError::LoginRequired {
                next: req
                    .uri()
                    .path_and_query()
                    .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
                htmx: napiatke_htmx::Hx::from_headers(req.headers()).request,
            };
            let (Some(state), Some(token)) = (
                req.app_data::<web::Data<AppState>>(),
                cookie_value(req.headers(), SESSION_COOKIE),
            ) else {
                return Err(login_required());
            };
            match state.services.session(token).await? {
                Some(session) => {
                    // For the request log and who may see timings (middleware).
                    actix_web::HttpMessage::extensions_mut(&req).insert(
                        crate::middleware::Viewer {
                            id: session.user.id.get(),
                            role: session.user.role,
                        },
                    );
                    Ok(Auth {
                        session,
                        token: token.to_owned(),
                    })
                }
                None => Err(login_required()),
            }
        })
    }
}

/// The session cookie for a new login.
pub fn session_cookie(token: String, secure: bool) -> Cookie<'static> {
    let ttl = i64::try_from(SESSION_TTL.as_secs()).unwrap_or(i64::MAX);
    Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(CookieDuration::seconds(ttl))
        .finish()
}

/// A cookie that removes `name` (set on `path`: a removal must match it).
pub fn removal(name: &'static str, path: &'static str, secure: bool) -> Cookie<'static> {
    let mut c = Cookie::build(name, "")
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .finish();
    c.make_removal();
    c
}

/// The pre-login CSRF cookie.
pub fn login_csrf_cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build(LOGIN_CSRF_COOKIE, token)
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish()
}

/// `next` only ever points inside this site, as a browser will read it: a path
/// that starts with one `/` and holds no control character, no space and no
/// backslash (browsers drop tabs and newlines from a URL and read `\` as `/`, so
/// `/\t/evil.example` and `/\evil.example` would both leave the site), and not the
/// login page itself. Anything else goes to the dashboard. Non-ASCII characters are
/// percent-encoded, so the answer is always a valid `Location` header.
pub fn safe_next(next: Option<&str>) -> String {
    const HOME: &str = "/dashboard/";
    let Some(n) = next else {
        return HOME.to_owned();
    };
    let local = n.starts_with('/')
        && !n.starts_with("//")
        && !n.starts_with("/login")
        && !n
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    if !local {
        return HOME.to_owned();
    }
    let mut out = String::with_capacity(n.len());
    for c in n.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_found_by_its_exact_name_in_any_cookie_header() {
        use actix_web::http::header::{HeaderMap, HeaderValue, COOKIE};
        let headers = |values: &[&[u8]]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(
                    COOKIE,
                    HeaderValue::from_bytes(v).unwrap_or_else(|e| panic!("{e}")),
                );
            }
            h
        };
        let found =
            |values: &[&[u8]]| cookie_value(&headers(values), SESSION_COOKIE).map(str::to_owned);
        assert_eq!(
            found(&[b"a=1; napiatke_session=abc; b=2"]).as_deref(),
            Some("abc")
        );
        assert_eq!(
            found(&[
                b"xnapiatke_session=no;napiatke_session_old=no",
                b"napiatke_session = \"q\" "
            ])
            .as_deref(),
            Some("q")
        );
        assert_eq!(
            found(&[b"napiatke_session=\" q \""]).as_deref(),
            Some("q"),
            "trimmed inside quotes too, as the cookie crate does"
        );
        assert_eq!(
            found(&[b"napiatke_session=first; napiatke_session=second"]).as_deref(),
            Some("first")
        );
        assert_eq!(
            found(&[b"napiatke_session=a=b"]).as_deref(),
            Some("a=b"),
            "the value runs to the next ;"
        );
        assert_eq!(found(&[b"napiatke_session"]), None);
        assert_eq!(found(&[]), None);
        // Another cookie that is not UTF-8 does not hide ours (actix's parser drops
        // the whole header then, and the user would be logged out).
        assert_eq!(
            found(&["pref=zażółć; napiatke_session=abc".as_bytes()]).as_deref(),
            Some("abc")
        );
        assert_eq!(
            found(&[b"napiatke_session=\xff\xfe"]),
            None,
            "our own value must be UTF-8"
        );
        // The same answers as actix's parser where both read the value.
        for header in [
            "a=1; napiatke_session=abc; b=2",
            " napiatke_session = abc ",
            "napiatke_session=\"abc\"",
            "napiatke_session=; b=2",
            "b=2",
        ] {
            let req = actix_web::test::TestRequest::default()
                .insert_header((COOKIE, header))
                .to_http_request();
            assert_eq!(
                req.cookie(SESSION_COOKIE)
                    .map(|c| c.value().to_owned())
                    .as_deref(),
                cookie_value(req.headers(), SESSION_COOKIE),
                "{header}"
            );
        }
    }

    #[test]
    fn next_never_leaves_the_site() {
        assert_eq!(safe_next(Some("/lessons/?page=2")), "/lessons/?page=2");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "evil",
            "/login",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\u{7f}",
            "/ /evil.example",
            "/\u{a0}/evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/dashboard/", "{bad}");
        }
        assert_eq!(safe_next(None), "/dashboard/");
    }

    /// Property: whatever `next` is, the answer is a valid `Location` that a
    /// WHATWG URL parser (the `url` crate, as browsers parse) resolves on this site.
    /// Generated from an alphabet of the characters that have made open redirects
    /// (a fuzz target: seeded cases here, longer runs under scripts/fuzz.sh).
    #[test]
    fn fuzz_no_generated_next_leaves_the_site() {
        let alphabet: Vec<&str> = vec![
            "/",
            "/",
            "//",
            "\\",
            "\t",
            "\n",
            "\r",
            "\u{7f}",
            "\0",
            " ",
            "\u{a0}",
            ".",
            "..",
            ":",
            "@",
            "%",
            "%2F",
            "%5C",
            "%09",
            "?",
            "#",
            "a",
            "ą",
            "evil.example",
            "https:",
            "login",
            "\u{3000}",
            "\u{2028}",
            "\u{feff}",
        ];
        let base = url::Url::parse("https://napiatke.example/login").unwrap();
        napiatke_fuzzing::cases("next", 20_000, |rng| {
            let next = napiatke_fuzzing::text(rng, &alphabet, 7);
            let to = safe_next(Some(&next));
            assert!(
                actix_web::http::header::HeaderValue::from_str(&to).is_ok(),
                "{next:?} -> {to:?}"
            );
            let resolved = base.join(&to).unwrap();
            assert_eq!(
                resolved.host_str(),
                Some("napiatke.example"),
                "{next:?} -> {to:?}"
            );
        });
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abd", "abc"));
        assert!(!tokens_match("", ""));
        assert!(!tokens_match("ab", "abc"));
    }
}
