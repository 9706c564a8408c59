//! The tera engine: pages, their named blocks registered as fragments, the
//! `static()` function and the `date` filter.

use std::path::Path;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::{html, images, varying_html, HtmxError, Hx};

/// The `tracing` target of the per-render event (fields `template`, `duration_us`).
pub const RENDER_TARGET: &str = "napiatke_htmx::render";

/// The loaded templates.
#[derive(Debug)]
pub struct Templates {
    tera: tera::Tera,
    fingerprint: u64,
    /// Render events name the context's keys and the template's blocks (the
    /// development debug toolbar); off, they cost nothing.
    describe_renders: bool,
}

impl Templates {
    /// Loads every `*.html` under `dir` (names relative to it) and registers each
    /// named-closed block as `FILE#BLOCK`.
    pub fn load(dir: &Path) -> Result<Templates, HtmxError> {
        Self::load_with(dir, None)
    }

    /// As [`Templates::load`], with the `static()` function of
    /// [`Templates::from_sources_with`] (a templates folder read at start instead of
    /// the embedded copies, in development).
    pub fn load_with(dir: &Path, statics: Option<StaticUrls>) -> Result<Templates, HtmxError> {
        let mut sources = Vec::new();
        collect(dir, dir, &mut sources).map_err(|e| HtmxError::Io {
            dir: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let refs: Vec<(&str, &str)> = sources
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_str()))
            .collect();
        Self::from_sources_with(&refs, statics)
    }

    /// From `(name, source)` pairs (tests, embedded templates).
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Templates, HtmxError> {
        Self::from_sources_with(sources, None)
    }

    /// As [`Templates::from_sources`], with the `static(name="css/app.css")` function
    /// answering from `statics`, and `inline_static(name="css/app.css")` (the file's
    /// text, to write inside a `<style>` or `<script>` element with `| safe`) when
    /// `statics.contents` is set.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use napiatke_htmx::{StaticUrls, Templates};
    /// let urls = StaticUrls {
    ///     resolve: Arc::new(|name: &str| (name == "app.css").then(|| "/static/app.0123.css".to_owned())),
    ///     contents: None,
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
        tera.register_filter("date", DateFilter { to_local: None });
        tera.register_function("responsive_image", images::ResponsiveImage::default());
        tera.register_function("lazy_image", images::LazyImage::default());
        if let Some(urls) = statics {
            if let Some(contents) = &urls.contents {
                tera.register_function(
                    "inline_static",
                    StaticContents {
                        resolve: std::sync::Arc::clone(contents),
                    },
                );
            }
            tera.register_function("static", urls);
        }
        tera.add_raw_templates(all)?;
        // Every template is HTML, fragments (`page.html#rows`) included.
        tera.autoescape_on(vec![""]);
        Ok(Templates {
            tera,
            fingerprint: std::hash::Hasher::finish(&fingerprint),
            describe_renders: false,
        })
    }

    /// Makes each render event also carry `blocks` (the blocks the template and its
    /// parents define) and `context` (the context's names), comma-separated, for the
    /// debug toolbar. It clones each context once, so it is for development.
    ///
    /// ```
    /// use napiatke_htmx::Templates;
    /// let t = Templates::from_sources(&[("p.html", "{% block main %}{{ a }}{% endblock main %}")])?
    ///     .describing_renders();
    /// let mut ctx = tera::Context::new();
    /// ctx.insert("a", &1);
    /// assert_eq!(t.render("p.html", &ctx)?, "1");
    /// # Ok::<(), napiatke_htmx::HtmxError>(())
    /// ```
    #[must_use]
    pub fn describing_renders(mut self) -> Templates {
        self.describe_renders = true;
        self
    }

    /// Mixes `part` into the fingerprint: what the pages contain besides the templates
    /// (napiatke's static files' fingerprint, since pages link and inline them), so
    /// cached HTML made with other files is never reused.
    ///
    /// ```
    /// use napiatke_htmx::Templates;
    /// let a = Templates::from_sources(&[("p.html", "x")])?;
    /// let b = Templates::from_sources(&[("p.html", "x")])?.keyed_by("statics 2");
    /// assert_ne!(a.fingerprint(), b.fingerprint());
    /// # Ok::<(), napiatke_htmx::HtmxError>(())
    /// ```
    #[must_use]
    pub fn keyed_by(mut self, part: &str) -> Templates {
        let mut fingerprint = fnv::FnvHasher::default();
        std::hash::Hasher::write_u64(&mut fingerprint, self.fingerprint);
        std::hash::Hasher::write(&mut fingerprint, part.as_bytes());
        self.fingerprint = std::hash::Hasher::finish(&fingerprint);
        self
    }

    /// Links uploaded images' variants under `url` (ending in `/`: a bucket's or a
    /// CDN's public address) instead of napiatke's own `/media/`. Part of the
    /// fingerprint, so cached HTML linking elsewhere is not reused.
    ///
    /// ```
    /// use napiatke_htmx::Templates;
    /// let t = Templates::from_sources(&[("p.html", "{{ lazy_image(image=photo, alt='') }}")])?
    ///     .linking_media_at("https://media.example.org/school/");
    /// let photo: tera::Value = r#"{"width": 8, "height": 8, "variants": [
    ///     {"path": "cd/y/t300.jpg", "format": "jpeg", "kind": "thumbnail", "width": 300}]}"#
    ///     .parse().map_err(|e| napiatke_htmx::HtmxError::Template(format!("{e}")))?;
    /// let mut ctx = tera::Context::new();
    /// ctx.insert("photo", &photo);
    /// assert!(t.render("p.html", &ctx)?.contains("src=\"https://media.example.org/school/cd/y/t300.jpg\""));
    /// # Ok::<(), napiatke_htmx::HtmxError>(())
    /// ```
    #[must_use]
    pub fn linking_media_at(self, url: &str) -> Templates {
        let mut this = self.keyed_by(url);
        this.tera
            .register_function("responsive_image", images::ResponsiveImage::at(url));
        this.tera
            .register_function("lazy_image", images::LazyImage::at(url));
        this
    }

    /// Shows date-times (stored in UTC) as wall-clock times of the zone `name`,
    /// converted by `to_local`, in every `date` filter; dates stay as they are. The
    /// zone is part of the fingerprint, so cached HTML of another zone is not reused.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use napiatke_htmx::Templates;
    /// let t = Templates::from_sources(&[("p.html", "{{ t | date(format='%H:%M') }}")])?
    ///     .showing_times_in("UTC+2", Arc::new(|t| t + chrono::Duration::hours(2)));
    /// let mut ctx = tera::Context::new();
    /// ctx.insert("t", "2026-06-01T06:00:00");
    /// assert_eq!(t.render("p.html", &ctx)?, "08:00");
    /// # Ok::<(), napiatke_htmx::HtmxError>(())
    /// ```
    #[must_use]
    pub fn showing_times_in(self, name: &str, to_local: ToLocal) -> Templates {
        let mut this = self.keyed_by(name);
        this.tera.register_filter(
            "date",
            DateFilter {
                to_local: Some(to_local),
            },
        );
        this
    }

    /// Renders a template (`page.html` or `page.html#block`).
    pub fn render(&self, name: &str, ctx: &tera::Context) -> Result<String, HtmxError> {
        let _span = tracing::trace_span!("render", template = name).entered();
        let started = std::time::Instant::now();
        let html = self.tera.render(name, ctx).map_err(HtmxError::from);
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if self.describe_renders {
            let (blocks, context) = self.describe(name, ctx);
            tracing::debug!(
                target: RENDER_TARGET,
                template = name,
                duration_us,
                blocks = blocks.as_str(),
                context = context.as_str(),
            );
        } else {
            // Added up per request by napiatke-telemetry (Server-Timing, the request log).
            tracing::debug!(target: RENDER_TARGET, template = name, duration_us);
        }
        html
    }

    /// The blocks `name` and its parents define, and the context's names, each
    /// sorted and comma-separated.
    fn describe(&self, name: &str, ctx: &tera::Context) -> (String, String) {
        let mut blocks: Vec<&str> = self
            .tera
            .get_template(name)
            .map(|t| t.blocks_definitions.keys().map(String::as_str).collect())
            .unwrap_or_default();
        blocks.sort_unstable();
        let mut keys: Vec<String> = match ctx.clone().into_json() {
            serde_json::Value::Object(map) => map.into_iter().map(|(k, _)| k).collect(),
            _ => Vec::new(),
        };
        keys.sort_unstable();
        (blocks.join(","), keys.join(","))
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
    /// A file's text by logical name, for `inline_static()` (napiatke's is
    /// `StaticFiles::contents`); none leaves the function undefined.
    pub contents: Option<ResolveStatic>,
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

/// `inline_static(name=...)`: a static file's text, for pages that inline it. An
/// unknown name is an error at render, in every environment: a page without its
/// stylesheet or boot script is broken, not degraded.
struct StaticContents {
    resolve: ResolveStatic,
}

/// The `name` argument of `static()` and `inline_static()`.
fn static_name<'a>(
    function: &str,
    args: &'a std::collections::HashMap<String, tera::Value>,
) -> tera::Result<&'a str> {
    args.get("name")
        .and_then(tera::Value::as_str)
        .ok_or_else(|| tera::Error::msg(format!("{function}() needs name=\"path/in/assets\"")))
}

impl tera::Function for StaticContents {
    fn call(
        &self,
        args: &std::collections::HashMap<String, tera::Value>,
    ) -> tera::Result<tera::Value> {
        let name = static_name("inline_static", args)?;
        (self.resolve)(name)
            .map(tera::Value::String)
            .ok_or_else(|| {
                tera::Error::msg(format!(
                    "inline_static(): {name:?} is not in the static files manifest"
                ))
            })
    }
}

impl tera::Function for StaticUrls {
    fn call(
        &self,
        args: &std::collections::HashMap<String, tera::Value>,
    ) -> tera::Result<tera::Value> {
        let name = static_name("static", args)?;
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
/// Turns a stored (UTC) date-time into the wall-clock time people read.
pub type ToLocal =
    std::sync::Arc<dyn Fn(chrono::NaiveDateTime) -> chrono::NaiveDateTime + Send + Sync>;

/// `date(format=...)`: formats a date-time (converted to local time when the
/// templates were given a zone) or a date (taken as it is: a day has no zone).
struct DateFilter {
    to_local: Option<ToLocal>,
}

impl tera::Filter for DateFilter {
    fn filter(
        &self,
        value: &tera::Value,
        args: &std::collections::HashMap<String, tera::Value>,
    ) -> tera::Result<tera::Value> {
        let format = args
            .get("format")
            .and_then(tera::Value::as_str)
            .unwrap_or("%Y-%m-%d %H:%M");
        let text = value.as_str().ok_or_else(|| {
            tera::Error::msg(format!("date: expected a date string, got {value}"))
        })?;
        let formatted =
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
                let t = self.to_local.as_ref().map_or(t, |f| f(t));
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
    use actix_web::http::header::{self, HeaderMap, HeaderValue};

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
            contents: None,
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
