//! Rendered HTML kept ready to send: compressed once, validated by a strong ETag,
//! answered 304 without rendering, and the shared cache for it.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;
use napiatke_assets::{negotiate, Coding};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::HtmxError;

/// Bodies smaller than this go uncompressed: the coding's overhead and the CPU are
/// not worth a few hundred bytes.
pub const MIN_COMPRESS_BYTES: usize = 1024;

/// How hard to compress. Bodies kept in a cache are compressed once per version, so
/// they can afford more than a body rendered for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// Kept and sent many times: brotli 6, gzip 6.
    Stored,
    /// Sent once: brotli 1, gzip 1.
    Fast,
}

/// One HTML body with its brotli and gzip forms (each kept only when smaller) and
/// the strong validator of its content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredHtml {
    tag: String,
    #[serde(with = "bytes_serde")]
    identity: Bytes,
    #[serde(with = "opt_bytes_serde")]
    br: Option<Bytes>,
    #[serde(with = "opt_bytes_serde")]
    gzip: Option<Bytes>,
}

impl StoredHtml {
    /// `html` compressed at `effort`; its ETag is a hash of the content (so equal
    /// bodies share it whatever key they were stored under).
    ///
    /// ```
    /// use napiatke_htmx::{Effort, StoredHtml};
    /// let page = StoredHtml::new("<p>hello</p>".repeat(200), Effort::Stored);
    /// assert!(page.encoded_len(napiatke_assets::Coding::Br) < 200);
    /// assert_eq!(page.encoded_len(napiatke_assets::Coding::Identity), 2400);
    /// ```
    #[must_use]
    pub fn new(html: String, effort: Effort) -> StoredHtml {
        let identity = Bytes::from(html);
        let tag = {
            use std::hash::Hasher as _;
            let mut h = fnv::FnvHasher::default();
            h.write(&identity);
            format!("{:016x}{:08x}", h.finish(), identity.len())
        };
        let (br, gzip) = if identity.len() >= MIN_COMPRESS_BYTES {
            let smaller = |b: Vec<u8>| (b.len() < identity.len()).then(|| Bytes::from(b));
            (
                brotli(&identity, effort).and_then(smaller),
                gzip(&identity, effort).and_then(smaller),
            )
        } else {
            (None, None)
        };
        StoredHtml {
            tag,
            identity,
            br,
            gzip,
        }
    }

    /// Bytes on the wire for `coding` (identity's when that coding is not kept).
    #[must_use]
    pub fn encoded_len(&self, coding: Coding) -> usize {
        self.body(coding).1.len()
    }

    /// The body as `coding`, falling back to identity.
    fn body(&self, coding: Coding) -> (Coding, &Bytes) {
        match coding {
            Coding::Br => self.br.as_ref().map(|b| (Coding::Br, b)),
            Coding::Gzip => self.gzip.as_ref().map(|b| (Coding::Gzip, b)),
            Coding::Identity => None,
        }
        .unwrap_or((Coding::Identity, &self.identity))
    }

    /// The ETag of the representation sent as `coding`: each coding is a different
    /// representation, so each has its own strong tag.
    #[must_use]
    pub fn etag(&self, coding: Coding) -> String {
        let (coding, _) = self.body(coding);
        // Every cached page's answer makes one: by hand, not `format!`.
        let coding = coding.as_str();
        let mut etag = String::with_capacity(self.tag.len() + coding.len() + 3);
        etag.push('"');
        etag.push_str(&self.tag);
        etag.push('-');
        etag.push_str(coding);
        etag.push('"');
        etag
    }

    /// The response to a request with `headers`: the coding its `Accept-Encoding`
    /// prefers among those kept (identity if it accepts none), `ETag`, `Vary` on
    /// `HX-Request` and `Accept-Encoding`, `cache_control`, and 304 with no body
    /// when `If-None-Match` names this representation.
    #[must_use]
    pub fn respond(
        &self,
        headers: &HeaderMap,
        status: StatusCode,
        cache_control: &'static str,
    ) -> HttpResponse {
        let offered = Coding::offered(self.br.is_some(), self.gzip.is_some());
        let accept = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let wanted = negotiate(accept, &offered).unwrap_or(Coding::Identity);
        let (coding, body) = self.body(wanted);
        let etag = self.etag(coding);
        let matches = status == StatusCode::OK
            && headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|inm| {
                    inm.split(',')
                        .map(str::trim)
                        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
                });
        let mut res = HttpResponse::build(if matches {
            StatusCode::NOT_MODIFIED
        } else {
            status
        });
        res.insert_header((header::CACHE_CONTROL, cache_control))
            .insert_header((
                header::VARY,
                HeaderValue::from_static("HX-Request, Accept-Encoding"),
            ));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            res.insert_header((header::ETAG, v));
        }
        if matches {
            return res.finish();
        }
        res.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"));
        if coding != Coding::Identity {
            res.insert_header((header::CONTENT_ENCODING, coding.as_str()));
        }
        res.body(body.clone())
    }
}

fn brotli(data: &[u8], effort: Effort) -> Option<Vec<u8>> {
    let quality = match effort {
        Effort::Stored => 6,
        Effort::Fast => 1,
    };
    let mut out = Vec::with_capacity(data.len() / 4);
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 16 * 1024, quality, 20);
        w.write_all(data).ok()?;
        w.flush().ok()?;
    }
    Some(out)
}

fn gzip(data: &[u8], effort: Effort) -> Option<Vec<u8>> {
    let level = match effort {
        Effort::Stored => flate2::Compression::new(6),
        Effort::Fast => flate2::Compression::fast(),
    };
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 3), level);
    enc.write_all(data).ok()?;
    enc.finish().ok()
}

mod bytes_serde {
    use super::{Bytes, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        Ok(Bytes::from(<Vec<u8>>::deserialize(d)?))
    }
}

mod opt_bytes_serde {
    use super::{Bytes, Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Ref<'a>(#[serde(with = "super::bytes_serde")] &'a Bytes);

    #[derive(Deserialize)]
    struct Own(#[serde(with = "super::bytes_serde")] Bytes);

    pub fn serialize<S: Serializer>(b: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        b.as_ref().map(Ref).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        Ok(Option::<Own>::deserialize(d)?.map(|o| o.0))
    }
}

/// Whether a response came from the cache, as `X-Cache` and `Server-Timing` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache: nothing rendered.
    Hit,
    /// Rendered (and stored) for this request.
    Miss,
}

impl CacheStatus {
    /// `HIT` or `MISS`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
        }
    }

    /// Adds `X-Cache` and a `Server-Timing` entry (`html;desc=HIT`) to `res`.
    pub fn mark(self, res: &mut HttpResponse) {
        let headers = res.headers_mut();
        headers.insert(
            HeaderName::from_static("x-cache"),
            HeaderValue::from_static(self.as_str()),
        );
        headers.append(
            HeaderName::from_static("server-timing"),
            HeaderValue::from_static(match self {
                CacheStatus::Hit => "html;desc=HIT",
                CacheStatus::Miss => "html;desc=MISS",
            }),
        );
    }
}

/// What a cached response is kept under: the route, the query parameters that shape
/// it (allow-listed, in a fixed order, so `?b=2&a=1` and `?a=1&b=2` share an entry
/// and unknown parameters cannot multiply entries), whose view it is (a scope shared
/// by everyone who sees the same thing, such as a role, never a session unless the
/// body is personal), the `HX-Target` it is rendered for, and the version of the
/// data it shows (so no entry is ever stale and none needs invalidating here).
///
/// ```
/// use napiatke_htmx::FragmentKey;
/// let key = FragmentKey::new("/lessons/", "all", Some("rows"), "v7")
///     .param("page", Some("3"))
///     .param("status", None);
/// assert_eq!(key.as_str(), "/lessons/|all|rows|v7|page=3&status=");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentKey(String);

impl FragmentKey {
    /// A key for `route` seen by `scope` into `target`, for data at `version`.
    #[must_use]
    pub fn new(route: &str, scope: &str, target: Option<&str>, version: &str) -> FragmentKey {
        // By hand, with room for a few parameters: every cached page's request
        // makes one, and `format!` (then each `param` growing it) cost about
        // 180 ns.
        let target = target.unwrap_or("-");
        let mut key =
            String::with_capacity(route.len() + scope.len() + target.len() + version.len() + 68);
        for part in [route, scope, target, version] {
            key.push_str(part);
            key.push('|');
        }
        FragmentKey(key)
    }

    /// Adds an allow-listed query parameter (call in a fixed order).
    #[must_use]
    pub fn param(mut self, name: &str, value: Option<&str>) -> FragmentKey {
        if !self.0.ends_with('|') {
            self.0.push('&');
        }
        self.0.push_str(name);
        self.0.push('=');
        if let Some(v) = value {
            self.0.push_str(&crate::percent_encode(v));
        }
        self
    }

    /// The key as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Rendered, compressed HTML shared by every process (L1, then Redis) and keyed by
/// [`FragmentKey`] and the templates' fingerprint: the reusable cached-partial of
/// the reference design, for any actix binary. Only a response that sets no cookie
/// and shows nothing beyond its key belongs here.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use actix_web::http::{header, StatusCode};
/// use napiatke_htmx::{CacheStatus, FragmentKey, HtmlCache, Templates};
/// let t = Templates::from_sources(&[("rows.html", "{% for r in rows %}<li>{{ r }}</li>{% endfor %}")])?;
/// let cache = HtmlCache::new(&napiatke_cache::Cache::local(Default::default()), "rows", Duration::from_secs(60));
/// let key = FragmentKey::new("/list/", "all", Some("rows"), "v1").param("page", Some("1"));
/// let render = || { let mut c = tera::Context::new(); c.insert("rows", &[1, 2]); t.render("rows.html", &c) };
/// let (html, status) = cache.get_or_render(&t, &key, render).await?;
/// assert_eq!(status, CacheStatus::Miss);
/// let (_, again) = cache.get_or_render(&t, &key, || unreachable!()).await?;
/// assert_eq!(again, CacheStatus::Hit);
/// let mut req = header::HeaderMap::new();
/// req.insert(header::ACCEPT_ENCODING, header::HeaderValue::from_static("br"));
/// let res = html.respond(&req, StatusCode::OK, "private, no-cache");
/// assert!(res.headers().contains_key(header::ETAG));
/// # Ok::<(), napiatke_htmx::HtmxError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct HtmlCache {
    cache: napiatke_cache::Cache,
    ns: napiatke_cache::Namespace,
}

impl HtmlCache {
    /// Entries in `cache` under the namespace `name`, each kept for `ttl`.
    #[must_use]
    pub fn new(cache: &napiatke_cache::Cache, name: &str, ttl: Duration) -> HtmlCache {
        HtmlCache {
            cache: cache.clone(),
            ns: cache.namespace(name, 1, ttl),
        }
    }

    /// The HTML stored under `key`, if any (a page too long to render before
    /// answering is looked up this way, then streamed on a miss:
    /// [`HtmlCache::render_streamed`]).
    pub async fn get(
        &self,
        templates: &crate::Templates,
        key: &FragmentKey,
    ) -> Option<Arc<StoredHtml>> {
        self.cache
            .get(&self.ns, &self.full_key(templates, key))
            .await
    }

    pub(crate) fn full_key(&self, templates: &crate::Templates, key: &FragmentKey) -> String {
        let key = key.as_str();
        let mut full = String::with_capacity(17 + key.len());
        napiatke_cache::push_hex(&mut full, &templates.fingerprint().to_be_bytes());
        full.push('|');
        full.push_str(key);
        full
    }

    pub(crate) async fn put_full(&self, full: &str, html: StoredHtml) {
        self.cache.set(&self.ns, full, html).await;
    }

    /// The HTML under `key`, or `render`'s, compressed and stored; whether it was
    /// found. Concurrent misses of one key in a process render once.
    pub async fn get_or_render(
        &self,
        templates: &crate::Templates,
        key: &FragmentKey,
        render: impl FnOnce() -> Result<String, HtmxError>,
    ) -> Result<(Arc<StoredHtml>, CacheStatus), HtmxError> {
        let full = self.full_key(templates, key);
        let mut rendered = false;
        let html = self
            .cache
            .get_or_compute(&self.ns, &full, || {
                rendered = true;
                async { render().map(|html| StoredHtml::new(html, Effort::Stored)) }
            })
            .await
            .map_err(Arc::unwrap_or_clone)?;
        let status = if rendered {
            CacheStatus::Miss
        } else {
            CacheStatus::Hit
        };
        Ok((html, status))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::{Effort, FragmentKey, HtmlCache, StoredHtml};
    use crate::Templates;
    use napiatke_assets::Coding;

    #[test]
    fn keys_and_tags_read_as_their_schemes_say() {
        let t = Templates::from_sources(&[("a.html", "<p>{{ x }}</p>")]).unwrap();
        let cache = HtmlCache::new(
            &napiatke_cache::Cache::local(Default::default()),
            "rows",
            Duration::from_secs(60),
        );
        let key = FragmentKey::new("/lessons/", "t2", None, "v7").param("page", Some("3"));
        assert_eq!(key.as_str(), "/lessons/|t2|-|v7|page=3");
        assert_eq!(
            cache.full_key(&t, &key),
            format!("{:016x}|/lessons/|t2|-|v7|page=3", t.fingerprint())
        );
        let page = StoredHtml::new("<p>x</p>".repeat(400), Effort::Fast);
        let tag = page.etag(Coding::Identity);
        assert_eq!(tag.len(), 2 + 24 + 1 + "identity".len(), "{tag}");
        assert!(
            tag.starts_with('"') && tag.ends_with("-identity\""),
            "{tag}"
        );
        assert_eq!(page.etag(Coding::Br), tag.replace("identity", "br"));
    }
}
