//! htmx response headers (<https://htmx.org/reference/#response_headers>), set by
//! name instead of by string, values checked once.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpResponse;

/// The `HX-*` headers of one response, built up and then applied to it.
///
/// ```
/// use actix_web::HttpResponse;
/// use napiatke_htmx::HxHeaders;
/// let mut res = HttpResponse::Ok().finish();
/// HxHeaders::new()
///     .trigger_json(&serde_json::json!({"marked": {"lesson": 4}}))
///     .push_url("/lessons/?page=2")
///     .retarget("#messages")
///     .reswap("innerHTML")
///     .apply(&mut res);
/// assert_eq!(res.headers().get("hx-trigger").unwrap(), r#"{"marked":{"lesson":4}}"#);
/// assert_eq!(res.headers().get("hx-retarget").unwrap(), "#messages");
/// ```
#[derive(Debug, Clone, Default)]
pub struct HxHeaders {
    headers: Vec<(&'static str, String)>,
}

impl HxHeaders {
    /// No headers yet.
    #[must_use]
    pub fn new() -> HxHeaders {
        HxHeaders::default()
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> HxHeaders {
        self.headers.push((name, value.into()));
        self
    }

    /// `HX-Trigger`: client events to fire, by name (comma-separated for several).
    #[must_use]
    pub fn trigger(self, events: &str) -> HxHeaders {
        self.with("hx-trigger", events)
    }

    /// `HX-Trigger` with details: a JSON object of event name to detail.
    #[must_use]
    pub fn trigger_json(self, events: &serde_json::Value) -> HxHeaders {
        self.with("hx-trigger", events.to_string())
    }

    /// `HX-Push-Url`: a new history entry with this URL.
    #[must_use]
    pub fn push_url(self, url: &str) -> HxHeaders {
        self.with("hx-push-url", url)
    }

    /// `HX-Replace-Url`: replace the current URL (no new history entry).
    #[must_use]
    pub fn replace_url(self, url: &str) -> HxHeaders {
        self.with("hx-replace-url", url)
    }

    /// `HX-Redirect`: a full page load of this URL.
    #[must_use]
    pub fn redirect(self, url: &str) -> HxHeaders {
        self.with("hx-redirect", url)
    }

    /// `HX-Location`: an htmx navigation to this URL (no full reload).
    #[must_use]
    pub fn location(self, url: &str) -> HxHeaders {
        self.with("hx-location", url)
    }

    /// `HX-Reswap`: how to swap (`innerHTML`, `outerHTML`, `none`...).
    #[must_use]
    pub fn reswap(self, how: &str) -> HxHeaders {
        self.with("hx-reswap", how)
    }

    /// `HX-Retarget`: a CSS selector to swap into instead of the element's target.
    #[must_use]
    pub fn retarget(self, selector: &str) -> HxHeaders {
        self.with("hx-retarget", selector)
    }

    /// Sets the headers on `res`. A value that cannot be a header (a control
    /// character) is left out and logged: it is a bug in the caller, not the user's.
    pub fn apply(self, res: &mut HttpResponse) {
        for (name, value) in self.headers {
            match HeaderValue::from_str(&value) {
                Ok(v) => {
                    res.headers_mut().insert(HeaderName::from_static(name), v);
                }
                Err(_) => tracing::error!(header = name, "not a valid header value; left out"),
            }
        }
    }
}
