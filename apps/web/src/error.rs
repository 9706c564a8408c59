//! The one place errors become HTTP: bad input 400, login needed 303 (or 401 with
//! HX-Redirect for htmx), forbidden 403, missing 404, overload 503 with Retry-After,
//! everything else 500 with the details in the log, not the page.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use napiatke_services::ServiceError;

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400, with a message a person can act on.
    #[error("{0}")]
    BadRequest(String),
    /// No session: go to the login page, then come back to `next`.
    #[error("login required")]
    LoginRequired {
        /// Where to return after login.
        next: String,
        /// Whether htmx asked (it gets 401 + HX-Redirect instead of a 303).
        htmx: bool,
    },
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 503 with Retry-After.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with Retry-After: busy by design (a full queue), the message shown.
    #[error("{message}")]
    Busy {
        /// What is busy, in words.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 405 with `Allow`: the path exists, the method does not.
    #[error("{message}")]
    MethodNotAllowed {
        /// Which method and what the path takes, in words.
        message: String,
        /// The `Allow` header's value.
        allow: String,
    },
    /// 414: the address is over the limit the message names.
    #[error("{0}")]
    UriTooLong(String),
    /// 431: the headers are over the limit the message names.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// 429 with Retry-After: too many failed attempts.
    #[error("{message}")]
    TooManyRequests {
        /// What to do, in words.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 507: media storage is full; the message says nothing was saved.
    #[error("{0}")]
    InsufficientStorage(String),
    /// 408: the body did not arrive in time.
    #[error("{0}")]
    Timeout(String),
    /// 413: the body is over a limit the message names.
    #[error("{0}")]
    TooLarge(String),
    /// 500; the message is logged, never shown.
    #[error("{0}")]
    Internal(String),
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        match e.kind() {
            ServiceError::NotFound(m) => AppError::NotFound(m.clone()),
            ServiceError::Forbidden(m) => AppError::Forbidden(m.clone()),
            ServiceError::BadInput(m) => AppError::BadRequest(m.clone()),
            ServiceError::BadImage(image) => AppError::BadRequest(image.to_string()),
            ServiceError::Busy {
                message,
                retry_after,
            } => AppError::Busy {
                message: message.clone(),
                retry_after: retry_after.as_secs().max(1),
            },
            ServiceError::Throttled { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                AppError::TooManyRequests {
                    message: format!(
                        "Too many failed logins. Try again in {secs} second{}.",
                        if secs == 1 { "" } else { "s" }
                    ),
                    retry_after: secs,
                }
            }
            ServiceError::OverLimit {
                message,
                retry_after,
            } => AppError::TooManyRequests {
                message: message.clone(),
                retry_after: retry_after.as_secs().max(1),
            },
            ServiceError::StorageFull(e) => {
                tracing::error!(error = %e, "media storage full");
                AppError::InsufficientStorage(
                    "There is no room left to store images, so this one was not saved. \
                     The administrators have been told; please try again later."
                        .to_owned(),
                )
            }
            kind if e.is_unavailable() => AppError::Unavailable(chain(kind)),
            kind => AppError::Internal(chain(kind)),
        }
    }
}

/// An error and its causes on one line ("database: connection refused"), for the log.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

impl From<napiatke_htmx::HtmxError> for AppError {
    fn from(e: napiatke_htmx::HtmxError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl AppError {
    /// What the user is told: the message, except for failures on our side, whose
    /// details go to the log only.
    #[must_use]
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => {
                "Something went wrong on our side. It has been logged.".to_owned()
            }
            AppError::Unavailable(_) => {
                "The service is busy or a part of it is down. Please retry in a moment.".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::LoginRequired { htmx: true, .. } => StatusCode::UNAUTHORIZED,
            AppError::LoginRequired { .. } => StatusCode::SEE_OTHER,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Unavailable(_) | AppError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            AppError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            AppError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            AppError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let AppError::LoginRequired { next, .. } = self {
            let to = format!("/login?next={}", napiatke_htmx::percent_encode(next));
            let mut res = HttpResponse::build(status);
            match self.status_code() {
                StatusCode::UNAUTHORIZED => res.insert_header(("HX-Redirect", to)),
                _ => res.insert_header((header::LOCATION, to)),
            };
            return res.finish();
        }
        match self {
            AppError::Internal(detail) => tracing::error!(error = %detail, "request failed"),
            AppError::Unavailable(detail) => tracing::warn!(error = %detail, "service unavailable"),
            _ => {}
        }
        let shown = self.public_message();
        let mut res = napiatke_htmx::html(status, error_page(status, &shown, None));
        if let AppError::MethodNotAllowed { allow, .. } = self {
            if let Ok(v) = HeaderValue::from_str(allow) {
                res.headers_mut().insert(header::ALLOW, v);
            }
        }
        if let AppError::Busy { retry_after, .. } | AppError::TooManyRequests { retry_after, .. } =
            self
        {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// A self-contained page: error pages must render even when templates cannot. With
/// the request's id, so a user can quote it (the front layer adds it). Styled by the
/// stylesheet under its unhashed name (no inline style: the Content-Security-Policy
/// allows none); unstyled, it still reads.
pub(crate) fn error_page(status: StatusCode, message: &str, request_id: Option<&str>) -> String {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let quote = request_id.map_or_else(String::new, |id| {
        format!(
            "<p class=\"request-id\">Request id: <code>{}</code> (quote it if you report this)</p>",
            escape(id)
        )
    });
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · napiatke</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/static/css/app.css\"></head>\
         <body class=\"error-page\">\
         <h1>{t}</h1><p class=\"error-message\">{m}</p>{quote}<p><a href=\"/dashboard/\">Back to the dashboard</a></p></body></html>",
        t = escape(&title),
        m = escape(message)
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    napiatke_htmx::escape_html_into(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_escaped_and_internals_hidden() {
        let page = error_page(
            StatusCode::BAD_REQUEST,
            "<script>alert(1)</script>",
            Some("<id>"),
        );
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("Request id: <code>&lt;id&gt;</code>"));
        let res = AppError::Internal("password=hunter2 at db.rs:12".into()).error_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let res = AppError::Unavailable("pool".into()).error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            res.headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );
        assert_eq!(
            napiatke_htmx::percent_encode("/lessons/?page=2&x=ą"),
            "/lessons/%3Fpage%3D2%26x%3D%C4%85"
        );
    }
}
