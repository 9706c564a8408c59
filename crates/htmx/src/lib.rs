//! Rendering pages and htmx fragments from one set of tera templates.
//!
//! A page template marks the parts htmx may ask for alone as named blocks closed by a
//! named `{% endblock NAME %}`. [`Templates::load`] registers each such block a second
//! time as its own template, `page.html#NAME`, so the fragment is the page's own block,
//! never a copy. [`Hx`] reads the request's `HX-*` headers; [`Templates::respond`]
//! renders the page or the fragment and always sets `Vary: HX-Request`, so no cache
//! (nor the browser's back button) serves one in place of the other.
//!
//! ```
//! use napiatke_htmx::{Hx, Templates};
//! let t = Templates::from_sources(&[(
//!     "list.html",
//!     "<h1>List</h1>{% block rows %}{% for r in rows %}<li>{{ r }}</li>{% endfor %}{% endblock rows %}",
//! )])?;
//! let mut ctx = tera::Context::new();
//! ctx.insert("rows", &["a", "b"]);
//! assert_eq!(t.render("list.html", &ctx)?, "<h1>List</h1><li>a</li><li>b</li>");
//! assert_eq!(t.render("list.html#rows", &ctx)?, "<li>a</li><li>b</li>");
//! # Ok::<(), napiatke_htmx::HtmxError>(())
//! ```
//!
//! ## Template functions
//!
//! Every [`Templates`] has, besides `static()` (when given [`StaticUrls`]) and the
//! `date` filter:
//! - `responsive_image(image, alt, sizes="100vw", eager=false, class="")`: a
//!   `<picture>` with AVIF/WebP/JPEG width ladders for an uploaded photo;
//! - `lazy_image(image, alt, size=48, class="")`: a small square picture (avatars)
//!   from the photo's thumbnails.
//!
//! Both take the image record as the images crate serialises it (or null, which
//! renders nothing) and show its placeholder until variants exist; see
//! [`images`] for the markup and its guarantees.

pub mod images;

/// Appends `text` escaped for HTML text and attribute values, double- or
/// single-quoted: `& < > " '`. Unlike tera's `escape_html` it leaves `/` alone, so
/// URLs and messages stay readable. What the image tags and the self-contained
/// error pages write with.
///
/// ```
/// let mut out = String::new();
/// napiatke_htmx::escape_html_into(&mut out, r#"<a href="/x">O'Neil & co</a>"#);
/// assert_eq!(out, "&lt;a href=&quot;/x&quot;&gt;O&#x27;Neil &amp; co&lt;/a&gt;");
/// ```
pub fn escape_html_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
}

use std::path::Path;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

/// What can go wrong loading or rendering templates.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HtmxError {
    /// A template failed to parse or render; the message walks tera's cause chain.
    #[error("template error: {0}")]
    Template(String),
    /// The template folder could not be read.
    #[error("cannot read templates in {dir}: {reason}")]
    Io {
        /// The folder.
        dir: String,
        /// Why.
        reason: String,
    },
}

impl From<tera::Error> for HtmxError {
    fn from(e: tera::Error) -> Self {
        // tera's Display is the outermost message only; the useful part is the cause.
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        HtmxError::Template(msg)
    }
}

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

/// The loaded templates.
#[derive(Debug)]
pub struct Templates {
    tera: tera::Tera,
    fingerprint: u64,
}

impl Templates {
    /// Loads every `*.html` under `dir` (names relative to it) and registers each
    /// named-closed block as `FILE#BLOCK`.
    pub fn load(dir: &Path) -> Result<Templates, HtmxError> {
        let mut sources = Vec::new();
        collect(dir, dir, &mut sources).map_err(|e| HtmxError::Io {
            dir: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let refs: Vec<(&str, &str)> = sources
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_str()))
            .collect();
        Self::from_sources(&refs)
    }

    /// From `(name, source)` pairs (tests, embedded templates).
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Templates, HtmxError> {
        Self::from_sources_with(sources, None)
    }

    /// As [`Templates::from_sources`], with the `static(name="css/app.css")` function
    /// answering from `statics`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use napiatke_htmx::{StaticUrls, Templates};
    /// let urls = StaticUrls {
    ///     resolve: Arc::new(|name: &str| (name == "app.css").then(|| "/static/app.0123.css".to_owned())),
    ///     strict: true,
    /// };
    /// let t = Templates::from_sources_with(&[("p.html", "{{ static(name='app.css') }}")], Some(urls))?;
    /// assert_eq!(t.render("p.html", &tera::Context::new())?, "/static/app.0123.css");
    /// # Ok::<(), napiatke_htmx::HtmxError>(())
    /// ```
    pub fn from_sources_with(
        sources: &[(&str, &str)],
        statics: Option<StaticUrls>,
    ) -> Result<Templates, HtmxError> {
        let mut all: Vec<(String, String)> = Vec::new();
        let mut fingerprint = fnv::FnvHasher::default();
        for (name, source) in sources {
            for part in [name.as_bytes(), &[0], source.as_bytes(), &[0]] {
                std::hash::Hasher::write(&mut fingerprint, part);
            }
            all.push(((*name).to_owned(), (*source).to_owned()));
            for (block, body) in named_blocks(source) {
                all.push((format!("{name}#{block}"), with_imports(source, &body)));
            }
        }
        let mut tera = tera::Tera::default();
        tera.register_filter("date", date_filter);
        tera.register_function("responsive_image", images::ResponsiveImage);
        tera.register_function("lazy_image", images::LazyImage);
        if let Some(urls) = statics {
            tera.register_function("static", urls);
        }
        tera.add_raw_templates(all)?;
        // Every template is HTML, fragments (`page.html#rows`) included.
        tera.autoescape_on(vec![""]);
        Ok(Templates {
            tera,
            fingerprint: std::hash::Hasher::finish(&fingerprint),
        })
    }

    /// Renders a template (`page.html` or `page.html#block`).
    pub fn render(&self, name: &str, ctx: &tera::Context) -> Result<String, HtmxError> {
        let _span = tracing::debug_span!("render", template = name).entered();
        self.tera.render(name, ctx).map_err(HtmxError::from)
    }

    /// A hash of every template's name and source: part of each cached fragment's key,
    /// so a deploy that changes a template never serves HTML rendered by the old one.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Whether a template of that name is loaded.
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.tera.get_template_names().any(|n| n == name)
    }

    /// The page, or its `fragment` block when htmx asked for a fragment, as an HTML
    /// response with `Vary: HX-Request`.
    pub fn respond(
        &self,
        status: StatusCode,
        hx: Hx,
        page: &str,
        fragment: Option<&str>,
        ctx: &tera::Context,
    ) -> Result<HttpResponse, HtmxError> {
        let body = match fragment {
            Some(block) if hx.wants_fragment() => self.render(&format!("{page}#{block}"), ctx)?,
            _ => self.render(page, ctx)?,
        };
        Ok(if fragment.is_some() {
            varying_html(status, body)
        } else {
            html(status, body)
        })
    }
}

/// `css/app.css` -> `/static/css/app.0123456789ab.css`, or `None` if unknown.
pub type ResolveStatic = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Resolves logical static names to their hashed URLs for the `static()` template
/// function.
#[derive(Clone)]
pub struct StaticUrls {
    /// The resolver (napiatke's is `StaticFiles::url`).
    pub resolve: ResolveStatic,
    /// Unknown names: an error at render (development) or a logged warning and the
    /// unhashed URL (production), never a silent broken link.
    pub strict: bool,
}

impl std::fmt::Debug for StaticUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticUrls")
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

impl tera::Function for StaticUrls {
    fn call(
        &self,
        args: &std::collections::HashMap<String, tera::Value>,
    ) -> tera::Result<tera::Value> {
        let name = args
            .get("name")
            .and_then(tera::Value::as_str)
            .ok_or_else(|| tera::Error::msg("static() needs name=\"path/in/assets\""))?;
        match (self.resolve)(name) {
            Some(url) => Ok(tera::Value::String(url)),
            None if self.strict => Err(tera::Error::msg(format!(
                "static(): {name:?} is not in the static files manifest"
            ))),
            None => {
                tracing::error!(
                    name,
                    "static(): unknown static file; linking the unhashed name"
                );
                Ok(tera::Value::String(format!(
                    "/static/{}",
                    name.trim_start_matches('/')
                )))
            }
        }
    }

    fn is_safe(&self) -> bool {
        true
    }
}

/// `{{ value | date(format="%d %b %H:%M") }}` for the naive UTC timestamps
/// (`2026-11-26T12:00:00`) and dates (`2026-11-26`) our types serialise to. tera's
/// own `date` filter needs its `builtins` feature, which pulls in a time-zone
/// database we do not use.
fn date_filter(
    value: &tera::Value,
    args: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let format = args
        .get("format")
        .and_then(tera::Value::as_str)
        .unwrap_or("%Y-%m-%d %H:%M");
    let text = value
        .as_str()
        .ok_or_else(|| tera::Error::msg(format!("date: expected a date string, got {value}")))?;
    let formatted =
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
            t.format(format).to_string()
        } else if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            d.format(format).to_string()
        } else {
            return Err(tera::Error::msg(format!(
                "date: cannot read {text:?} as a date"
            )));
        };
    Ok(tera::Value::String(formatted))
}

/// An HTML response that differs by `HX-Request` (a page, or its fragment for htmx):
/// what [`Templates::respond`] sends, for handlers whose HTML comes from elsewhere
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

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "html") {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((name, std::fs::read_to_string(&path)?));
        }
    }
    Ok(())
}

/// Blocks written `{% block NAME %}...{% endblock NAME %}` (whitespace-control dashes
/// allowed), with their bodies. Blocks closed by a bare `{% endblock %}` are not
/// fragments.
fn named_blocks(source: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("%}") else { break };
        let tag = after[..end].trim_matches(|c: char| c == '-' || c.is_whitespace());
        let body_start = &after[end + 2..];
        if let Some(name) = tag.strip_prefix("block ") {
            let name = name.trim();
            if let Some((body, _)) = find_end(body_start, name) {
                found.push((name.to_owned(), body.to_owned()));
            }
        }
        rest = body_start;
    }
    found
}

/// The text up to `{% endblock NAME %}` and the text after it.
fn find_end<'a>(s: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    let mut offset = 0;
    while let Some(i) = s[offset..].find("{%") {
        let at = offset + i;
        let after = &s[at + 2..];
        let end = after.find("%}")?;
        let tag = after[..end].trim_matches(|c: char| c == '-' || c.is_whitespace());
        if tag.strip_prefix("endblock").map(str::trim) == Some(name) {
            return Some((&s[..at], &after[end + 2..]));
        }
        offset = at + 2;
    }
    None
}

/// A fragment keeps the page's `{% import %}` lines so its macros still resolve.
fn with_imports(page: &str, body: &str) -> String {
    let mut out = String::new();
    for line in page.lines() {
        let t = line.trim_start();
        if t.starts_with("{% import") || t.starts_with("{%- import") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Templates {
        Templates::from_sources(&[
            (
                "base.html",
                "<html>{% block content %}{% endblock content %}</html>",
            ),
            (
                "page.html",
                "{% extends \"base.html\" %}{% block content %}<h1>{{ title }}</h1>\
                 {%- block rows -%}<td>{{ cell }}</td>{%- endblock rows -%}{% endblock content %}",
            ),
        ])
        .unwrap()
    }

    fn ctx() -> tera::Context {
        let mut c = tera::Context::new();
        c.insert("title", "T");
        c.insert("cell", "<script>x</script>");
        c
    }

    #[test]
    fn blocks_render_alone_and_escape() {
        let t = templates();
        assert_eq!(
            t.render("page.html", &ctx()).unwrap_or_default(),
            "<html><h1>T</h1><td>&lt;script&gt;x&lt;&#x2F;script&gt;</td></html>"
        );
        assert_eq!(
            t.render("page.html#rows", &ctx()).unwrap_or_default(),
            "<td>&lt;script&gt;x&lt;&#x2F;script&gt;</td>"
        );
        assert!(t.has("page.html#content"));
    }

    #[test]
    fn responses_vary_on_hx_request_and_history_restore_gets_the_page() {
        let t = templates();
        let fragment = Hx {
            request: true,
            ..Hx::default()
        };
        let restore = Hx {
            request: true,
            history_restore: true,
            ..Hx::default()
        };
        for (hx, full) in [(Hx::default(), true), (fragment, false), (restore, true)] {
            let res = t
                .respond(StatusCode::OK, hx, "page.html", Some("rows"), &ctx())
                .unwrap();
            assert_eq!(
                res.headers()
                    .get(header::VARY)
                    .and_then(|v| v.to_str().ok()),
                Some("HX-Request")
            );
            let body = actix_web::body::to_bytes(res.into_body());
            let bytes = futures_lite_block(body).ok().unwrap_or_default();
            assert_eq!(bytes.starts_with(b"<html>"), full, "{hx:?}");
        }
    }

    fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
        actix_web::rt::System::new().block_on(f)
    }

    #[test]
    fn dates_format_from_their_serialised_form() {
        let t = Templates::from_sources(&[(
            "d.html",
            "{{ a | date(format=\"%a %d %b %H:%M\") }}|{{ b | date(format=\"%d.%m.%Y\") }}",
        )])
        .unwrap();
        let mut c = tera::Context::new();
        c.insert("a", "2026-11-26T09:05:00");
        c.insert("b", "2026-11-23");
        assert_eq!(
            t.render("d.html", &c).unwrap_or_default(),
            "Thu 26 Nov 09:05|23.11.2026"
        );
    }

    #[test]
    fn unknown_static_names_fail_in_development_and_fall_back_in_production() {
        let urls = |strict| StaticUrls {
            resolve: std::sync::Arc::new(|_: &str| None),
            strict,
        };
        let src = [(
            "p.html",
            "<link href=\"{{ static(name='css/gone.css') }}\">",
        )];
        let dev = Templates::from_sources_with(&src, Some(urls(true))).unwrap();
        let err = dev
            .render("p.html", &tera::Context::new())
            .err()
            .map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("\"css/gone.css\" is not in the static files manifest")), "{err:?}");
        let prod = Templates::from_sources_with(&src, Some(urls(false))).unwrap();
        assert_eq!(
            prod.render("p.html", &tera::Context::new())
                .unwrap_or_default(),
            "<link href=\"/static/css/gone.css\">"
        );
    }

    #[test]
    fn headers_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HeaderName::from_static("hx-request"),
            HeaderValue::from_static("TRUE"),
        );
        assert!(Hx::from_headers(&h).wants_fragment());
        h.insert(
            header::HeaderName::from_static("hx-boosted"),
            HeaderValue::from_static("true"),
        );
        assert!(!Hx::from_headers(&h).wants_fragment());
    }
}

/// Rendered templates kept by the version of the data they show (key-based expiry):
/// when the data changes, the service that owns it gives it a new version, so a
/// rendered copy is never stale and never needs invalidating here. The key also holds
/// the templates' fingerprint. Only data-only fragments belong here: nothing carrying
/// a CSRF token or another user's data unless that user is in the version.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use napiatke_htmx::{FragmentCache, Templates};
/// let t = Templates::from_sources(&[("n.html", "<b>{{ n }}</b>")])?;
/// let cache = napiatke_cache::Cache::local(Default::default());
/// let fragments = FragmentCache::new(&cache, Duration::from_secs(60));
/// let ctx = || { let mut c = tera::Context::new(); c.insert("n", &7); c };
/// assert_eq!(*fragments.render(&t, "n.html", "v1", ctx).await?, "<b>7</b>");
/// // Same version: served from the cache, the context is not even built.
/// let again = fragments.render(&t, "n.html", "v1", || unreachable!()).await?;
/// assert_eq!(*again, "<b>7</b>");
/// # Ok::<(), napiatke_htmx::HtmxError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FragmentCache {
    cache: napiatke_cache::Cache,
    ns: napiatke_cache::Namespace,
}

impl FragmentCache {
    /// Fragments in `cache`, each kept for `ttl`.
    #[must_use]
    pub fn new(cache: &napiatke_cache::Cache, ttl: std::time::Duration) -> FragmentCache {
        FragmentCache {
            cache: cache.clone(),
            ns: cache.namespace("fragment", 1, ttl),
        }
    }

    /// `name` rendered with the context `ctx` builds, for data at `version`; the
    /// context is only built when the fragment is not cached.
    pub async fn render(
        &self,
        templates: &Templates,
        name: &str,
        version: &str,
        ctx: impl FnOnce() -> tera::Context,
    ) -> Result<std::sync::Arc<String>, HtmxError> {
        let key = format!("{:016x}:{name}:{version}", templates.fingerprint());
        self.cache
            .get_or_compute(&self.ns, &key, || async { templates.render(name, &ctx()) })
            .await
            .map_err(std::sync::Arc::unwrap_or_clone)
    }
}

/// What [`percent_encode`] leaves as it is: RFC 3986's unreserved characters and `/`.
const URL_SAFE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// `s` percent-encoded for a URL path or a query value (RFC 3986's unreserved
/// characters and `/` kept): media paths in image tags, `next=` and pager links.
///
/// ```
/// assert_eq!(napiatke_htmx::percent_encode("/lessons/?page=2&x=ą"), "/lessons/%3Fpage%3D2%26x%3D%C4%85");
/// ```
#[must_use]
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, URL_SAFE).to_string()
}
