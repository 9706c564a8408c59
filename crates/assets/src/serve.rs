//! The serving policy, over files held in memory.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::{compressible, content_type, io_err, AssetsError, MANIFEST};

/// Hashed names never change: cache them for a year, never revalidate.
const IMMUTABLE: &str = "max-age=31536000, immutable";
/// Unhashed names may change with a deploy: cache briefly, revalidate with the ETag.
const SHORT: &str = "max-age=60";

/// The request method, as far as static files care.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    /// GET.
    #[default]
    Get,
    /// HEAD: the GET headers, no body.
    Head,
    /// Anything else (405).
    Other,
}

/// The parts of a request the policy reads. `path` is the part after the static
/// prefix, as sent (not percent-decoded).
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// GET, HEAD or other.
    pub method: Method,
    /// `css/app.0123456789ab.css`.
    pub path: &'a str,
    /// `Accept-Encoding`.
    pub accept_encoding: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
    /// `Range`.
    pub range: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
}

/// A response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body (304, 404, 405, 416).
    Empty,
    /// These bytes (a refcounted view into the file held in memory).
    Bytes(Bytes),
}

/// What to send. For HEAD the body is the GET body: HTTP servers (actix's included)
/// send its length and drop it.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values. Content-Length is the framework's job.
    pub headers: Vec<(&'static str, HeaderText)>,
    /// The body; for HEAD the framework sends the headers of this body without it.
    pub body: Body,
}

impl Response {
    /// A header's value.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn bare(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }
}

/// A header value, shared rather than copied: static text or bytes made once at load
/// (adapters hand the `Bytes` to their HTTP library without copying).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderText(Bytes);

impl HeaderText {
    fn from_static(s: &'static str) -> Self {
        HeaderText(Bytes::from_static(s.as_bytes()))
    }

    fn from_string(s: String) -> Self {
        HeaderText(Bytes::from(s))
    }

    /// The value as text (always ASCII).
    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The value's bytes, for `HeaderValue::from_maybe_shared` and the like.
    #[must_use]
    pub fn bytes(&self) -> Bytes {
        self.0.clone()
    }
}

#[derive(Debug)]
struct Variant {
    bytes: Bytes,
    etag: HeaderText,
}

#[derive(Debug)]
struct Asset {
    identity: Variant,
    br: Option<Variant>,
    gz: Option<Variant>,
    content_type: &'static str,
    cache_control: &'static str,
    last_modified: SystemTime,
    last_modified_text: HeaderText,
    vary: bool,
}

/// Files of a static root by name (relative, `/`-separated), with their times.
type Files = HashMap<String, (Bytes, SystemTime)>;

/// The static root, indexed and held in memory.
#[derive(Debug)]
pub struct StaticFiles {
    assets: HashMap<String, Asset>,
    manifest: HashMap<String, String>,
    prefix: String,
}

impl StaticFiles {
    /// Loads `root` (a collectstatic output) with URLs under `/static/`.
    pub fn load(root: &Path) -> Result<StaticFiles, AssetsError> {
        Self::load_with_prefix(root, "/static/")
    }

    /// Loads `root` with URLs under `prefix` (ending in `/`).
    pub fn load_with_prefix(root: &Path, prefix: &str) -> Result<StaticFiles, AssetsError> {
        let manifest = root.join(MANIFEST);
        if let Err(e) = std::fs::metadata(&manifest) {
            // Nothing collected there (or no such folder): say so by the manifest.
            return Err(AssetsError::Manifest {
                path: manifest.display().to_string(),
                reason: e.to_string(),
            });
        }
        let mut paths = Vec::new();
        crate::collect::files_under(root, root, &mut paths)?;
        let mut files = Files::new();
        for (name, path) in paths {
            if name.ends_with(".tmp~") {
                continue;
            }
            let bytes = Bytes::from(std::fs::read(&path).map_err(io_err(&path))?);
            let modified = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            files.insert(name, (bytes, modified));
        }
        Self::index(files, prefix, &root.join(MANIFEST).display().to_string())
    }

    /// A collectstatic output compiled into the binary (`(name, bytes)` pairs, the
    /// manifest and the `.br`/`.gz` variants among them), with URLs under
    /// `/static/`: served from the binary's own memory, no copy. `built` is their
    /// Last-Modified.
    ///
    /// ```
    /// use napiatke_assets::StaticFiles;
    /// let files: &[(&str, &'static [u8])] = &[
    ///     ("staticfiles.json", br#"{"version":1,"paths":{"app.css":"app.0123456789ab.css"}}"#),
    ///     ("app.0123456789ab.css", b"body{margin:0}"),
    /// ];
    /// let statics = StaticFiles::embedded(files, std::time::SystemTime::UNIX_EPOCH)?;
    /// assert_eq!(statics.url("app.css").as_deref(), Some("/static/app.0123456789ab.css"));
    /// # Ok::<(), napiatke_assets::AssetsError>(())
    /// ```
    pub fn embedded(
        files: &[(&str, &'static [u8])],
        built: SystemTime,
    ) -> Result<StaticFiles, AssetsError> {
        let files = files
            .iter()
            .map(|(name, bytes)| ((*name).to_owned(), (Bytes::from_static(bytes), built)))
            .collect();
        Self::index(files, "/static/", "(embedded) staticfiles.json")
    }

    /// Indexes a collectstatic output held in memory.
    fn index(mut files: Files, prefix: &str, origin: &str) -> Result<StaticFiles, AssetsError> {
        let manifest: crate::collect::Manifest = {
            let (bytes, _) = files.get(MANIFEST).ok_or_else(|| AssetsError::Manifest {
                path: origin.to_owned(),
                reason: "No such file or directory".to_owned(),
            })?;
            serde_json::from_slice(bytes).map_err(|e| AssetsError::Manifest {
                path: origin.to_owned(),
                reason: e.to_string(),
            })?
        };
        let hashed: HashSet<&String> = manifest.paths.values().collect();
        let names: Vec<String> = files.keys().cloned().collect();
        let mut assets = HashMap::new();
        for name in names {
            let is_variant = |suffix: &str| {
                name.strip_suffix(suffix)
                    .is_some_and(|base| files.contains_key(base))
            };
            if name == MANIFEST || is_variant(".br") || is_variant(".gz") {
                continue;
            }
            let Some((bytes, modified)) = files.get(&name).cloned() else {
                continue;
            };
            let tag: String = Sha256::digest(&bytes)
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect();
            let mut variant = |suffix: &str| {
                files
                    .remove(&format!("{name}.{suffix}"))
                    .map(|(bytes, _)| Variant {
                        bytes,
                        etag: HeaderText::from_string(format!("\"{tag}-{suffix}\"")),
                    })
            };
            let asset = Asset {
                br: variant("br"),
                gz: variant("gz"),
                identity: Variant {
                    bytes,
                    etag: HeaderText::from_string(format!("\"{tag}\"")),
                },
                content_type: content_type(&name),
                cache_control: if hashed.contains(&name) {
                    IMMUTABLE
                } else {
                    SHORT
                },
                last_modified: modified,
                last_modified_text: HeaderText::from_string(httpdate::fmt_http_date(modified)),
                vary: compressible(&name),
            };
            assets.insert(name, asset);
        }
        Ok(StaticFiles {
            assets,
            manifest: manifest.paths.into_iter().collect(),
            prefix: prefix.to_owned(),
        })
    }

    /// The URL of a logical name (`css/app.css` -> `/static/css/app.0123456789ab.css`),
    /// or `None` when the manifest does not know it.
    #[must_use]
    pub fn url(&self, name: &str) -> Option<String> {
        self.manifest
            .get(name.trim_start_matches('/'))
            .map(|hashed| format!("{}{hashed}", self.prefix))
    }

    /// A text file's contents by logical name, to be written into pages (a
    /// `<style>` or `<script>` element), or `None` when the manifest does not know it
    /// or it is not UTF-8. Pages that inline it need its [`StaticFiles::csp_hash`] in
    /// their Content-Security-Policy.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("napiatke-doc-inline-{}", std::process::id()));
    /// # std::fs::create_dir_all(dir.join("src/js"))?;
    /// # std::fs::write(dir.join("src/js/boot.js"), "boot();")?;
    /// napiatke_assets::collect(&dir.join("src"), &dir.join("static"))?;
    /// let files = napiatke_assets::StaticFiles::load(&dir.join("static"))?;
    /// assert_eq!(files.contents("js/boot.js").as_deref(), Some("boot();"));
    /// assert_eq!(
    ///     files.csp_hash("js/boot.js").as_deref(),
    ///     Some("'sha256-BoYdILVZAmAQfhxvCgsBo5rtKe9f5WOaIkiGVKr7Y94='")
    /// );
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn contents(&self, name: &str) -> Option<String> {
        let hashed = self.manifest.get(name.trim_start_matches('/'))?;
        let asset = self.assets.get(hashed)?;
        std::str::from_utf8(&asset.identity.bytes)
            .ok()
            .map(str::to_owned)
    }

    /// The Content-Security-Policy source that allows [`StaticFiles::contents`] of
    /// `name` inline: `'sha256-<base64 of its SHA-256>'`.
    #[must_use]
    pub fn csp_hash(&self, name: &str) -> Option<String> {
        use base64::Engine as _;
        use sha2::Digest as _;
        let text = self.contents(name)?;
        let digest = sha2::Sha256::digest(text.as_bytes());
        Some(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ))
    }

    /// A digest of every logical name and its hashed name: it changes whenever any
    /// file does, so pages that link or inline these files can key their caches by it
    /// (an HTML cache shared by processes of two deploys must not mix their pages).
    #[must_use]
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let mut names: Vec<(&String, &String)> = self.manifest.iter().collect();
        names.sort();
        let mut digest = sha2::Sha256::new();
        for (name, hashed) in names {
            digest.update(name.as_bytes());
            digest.update([0]);
            digest.update(hashed.as_bytes());
            digest.update([0]);
        }
        digest
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Files held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.assets.len()
    }

    /// Whether no file is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.assets.is_empty()
    }

    /// Answers one request.
    #[must_use]
    pub fn respond(&self, req: &Request<'_>) -> Response {
        if req.method == Method::Other {
            let mut res = Response::bare(405);
            res.headers
                .push(("allow", HeaderText::from_static("GET, HEAD")));
            return res;
        }
        let Some(asset) = safe_name(req.path).and_then(|p| self.assets.get(p)) else {
            return Response::bare(404);
        };
        let mut offered = Vec::with_capacity(3);
        if asset.br.is_some() {
            offered.push(Coding::Br);
        }
        if asset.gz.is_some() {
            offered.push(Coding::Gzip);
        }
        offered.push(Coding::Identity);
        let (variant, encoding) = match (
            negotiate(req.accept_encoding, &offered),
            &asset.br,
            &asset.gz,
        ) {
            (Some(Coding::Br), Some(br), _) => (br, Some("br")),
            (Some(Coding::Gzip), _, Some(gz)) => (gz, Some("gzip")),
            (Some(Coding::Identity), _, _) => (&asset.identity, None),
            _ => {
                let mut res = Response::bare(406);
                if asset.vary {
                    res.headers
                        .push(("vary", HeaderText::from_static("Accept-Encoding")));
                }
                return res;
            }
        };
        let mut headers: Vec<(&'static str, HeaderText)> = Vec::with_capacity(8);
        headers.push((
            "cache-control",
            HeaderText::from_static(asset.cache_control),
        ));
        headers.push(("etag", variant.etag.clone()));
        headers.push(("last-modified", asset.last_modified_text.clone()));
        if asset.vary {
            headers.push(("vary", HeaderText::from_static("Accept-Encoding")));
        }
        if not_modified(req, asset, variant.etag.as_str()) {
            return Response {
                status: 304,
                headers,
                body: Body::Empty,
            };
        }
        headers.push(("content-type", HeaderText::from_static(asset.content_type)));
        if let Some(e) = encoding {
            headers.push(("content-encoding", HeaderText::from_static(e)));
            return Response {
                status: 200,
                headers,
                body: Body::Bytes(variant.bytes.clone()),
            };
        }
        headers.push(("accept-ranges", HeaderText::from_static("bytes")));
        let len = variant.bytes.len();
        let range = req.range.filter(|_| req.method == Method::Get).filter(|_| {
            req.if_range.is_none_or(|r| {
                r.trim() == variant.etag.as_str() || r.trim() == asset.last_modified_text.as_str()
            })
        });
        match range.map(|r| parse_range(r, len)) {
            Some(RangeSpec::Satisfiable(start, end)) => {
                headers.push((
                    "content-range",
                    HeaderText::from_string(format!("bytes {start}-{end}/{len}")),
                ));
                Response {
                    status: 206,
                    headers,
                    body: Body::Bytes(variant.bytes.slice(start..=end)),
                }
            }
            Some(RangeSpec::Unsatisfiable) => {
                headers.retain(|(n, _)| *n != "content-type");
                headers.push((
                    "content-range",
                    HeaderText::from_string(format!("bytes */{len}")),
                ));
                Response {
                    status: 416,
                    headers,
                    body: Body::Empty,
                }
            }
            Some(RangeSpec::Ignore) | None => Response {
                status: 200,
                headers,
                body: Body::Bytes(variant.bytes.clone()),
            },
        }
    }
}

/// The path if it can only name a file inside the root: no `..` or `.` segments, no
/// empty segments, no backslashes, NUL or percent-escapes, nothing absolute. (Only
/// indexed names are served anyway; this keeps odd paths from even being looked up.)
fn safe_name(path: &str) -> Option<&str> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains(['\\', '\0', '%', ':'])
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    ok.then_some(path)
}

fn not_modified(req: &Request<'_>, asset: &Asset, etag: &str) -> bool {
    if let Some(inm) = req.if_none_match {
        return inm
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag);
    }
    req.if_modified_since
        .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
        .is_some_and(|since| {
            // HTTP dates have whole seconds; compare at that precision.
            let secs = |t: SystemTime| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            };
            secs(asset.last_modified) <= secs(since)
        })
}

/// A content coding napiatke sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Brotli.
    Br,
    /// gzip.
    Gzip,
    /// No coding.
    Identity,
}

impl Coding {
    /// What a server holding a body in brotli and/or gzip offers, in napiatke's
    /// preference order: brotli, gzip, identity.
    #[must_use]
    pub fn offered(br: bool, gzip: bool) -> Vec<Coding> {
        let mut offered = Vec::with_capacity(3);
        if br {
            offered.push(Coding::Br);
        }
        if gzip {
            offered.push(Coding::Gzip);
        }
        offered.push(Coding::Identity);
        offered
    }

    /// The name in `Content-Encoding` (`identity` for none).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
            Coding::Identity => "identity",
        }
    }
}

/// Which of `offered` (the server's preference order) to send for an
/// `Accept-Encoding` header (RFC 9110 §12.5.3): the highest q-value wins, ties go to
/// the server's order, `*` stands for codings not named, identity is acceptable
/// unless refused, and no header means identity only. `None`: nothing offered is
/// acceptable (a 406, or identity anyway where the server prefers that).
///
/// ```
/// use napiatke_assets::{negotiate, Coding};
/// let all = [Coding::Br, Coding::Gzip, Coding::Identity];
/// assert_eq!(negotiate(Some("gzip, deflate, br"), &all), Some(Coding::Br));
/// assert_eq!(negotiate(Some("br;q=0.5, gzip"), &all), Some(Coding::Gzip));
/// assert_eq!(negotiate(None, &all), Some(Coding::Identity));
/// assert_eq!(negotiate(Some("identity;q=0"), &[Coding::Identity]), None);
/// ```
#[must_use]
pub fn negotiate(accept_encoding: Option<&str>, offered: &[Coding]) -> Option<Coding> {
    let accept = AcceptEncoding::parse(accept_encoding);
    let mut best: Option<(Coding, f32)> = None;
    for &coding in offered {
        if !accept.allows(coding.as_str()) {
            continue;
        }
        let q = accept
            .q(coding.as_str())
            .or_else(|| accept.q("*"))
            .unwrap_or(1.0);
        if best.is_none_or(|(_, b)| q > b) {
            best = Some((coding, q));
        }
    }
    best.map(|(c, _)| c)
}

/// `Accept-Encoding` with q-values (RFC 9110 §12.5.3).
struct AcceptEncoding<'a> {
    entries: Vec<(&'a str, f32)>,
    present: bool,
}

impl<'a> AcceptEncoding<'a> {
    fn parse(header: Option<&'a str>) -> Self {
        let entries = header
            .unwrap_or_default()
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';');
                let coding = pieces.next()?.trim();
                if coding.is_empty() {
                    return None;
                }
                let q = pieces
                    .find_map(|p| {
                        p.trim()
                            .strip_prefix("q=")
                            .or_else(|| p.trim().strip_prefix("Q="))
                    })
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                Some((coding, q))
            })
            .collect();
        AcceptEncoding {
            entries,
            present: header.is_some(),
        }
    }

    fn q(&self, coding: &str) -> Option<f32> {
        self.entries
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(coding))
            .map(|(_, q)| *q)
    }

    fn allows(&self, coding: &str) -> bool {
        if let Some(q) = self.q(coding) {
            return q > 0.0;
        }
        if coding == "identity" {
            // Identity is acceptable unless refused by name or by `*;q=0`.
            return self.q("*").is_none_or(|q| q > 0.0);
        }
        // No header: the client takes identity only; `*` admits every coding.
        self.present && self.q("*").is_some_and(|q| q > 0.0)
    }
}

enum RangeSpec {
    Satisfiable(usize, usize),
    Unsatisfiable,
    /// Malformed or multiple ranges: answer with the whole file.
    Ignore,
}

fn parse_range(header: &str, len: usize) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.parse::<usize>(), b.parse::<usize>()) {
        (Ok(start), Ok(end)) if start <= end => {
            if start >= len {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Satisfiable(start, end.min(len - 1))
            }
        }
        (Ok(start), Err(_)) if b.is_empty() => {
            if start >= len {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Satisfiable(start, len - 1)
            }
        }
        (Err(_), Ok(suffix)) if a.is_empty() => {
            if suffix == 0 || len == 0 {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Satisfiable(len.saturating_sub(suffix), len - 1)
            }
        }
        _ => RangeSpec::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_honours_q_values() {
        let a = AcceptEncoding::parse(Some("gzip;q=0.5, br;q=0, *;q=0.1"));
        assert!(a.allows("gzip") && !a.allows("br") && a.allows("identity") && a.allows("zstd"));
        let none = AcceptEncoding::parse(None);
        assert!(!none.allows("br") && !none.allows("gzip") && none.allows("identity"));
        let no_identity = AcceptEncoding::parse(Some("br, identity;q=0"));
        assert!(no_identity.allows("br") && !no_identity.allows("identity"));
        let star_zero = AcceptEncoding::parse(Some("*;q=0"));
        assert!(!star_zero.allows("identity") && !star_zero.allows("gzip"));
        let bad_q = AcceptEncoding::parse(Some("br;q=x, gzip"));
        assert!(!bad_q.allows("br") && bad_q.allows("gzip"));
    }

    #[test]
    fn ranges_parse_like_rfc_9110() {
        let s = |h: &str, len| match parse_range(h, len) {
            RangeSpec::Satisfiable(a, b) => format!("{a}-{b}"),
            RangeSpec::Unsatisfiable => "416".to_owned(),
            RangeSpec::Ignore => "all".to_owned(),
        };
        assert_eq!(s("bytes=0-9", 100), "0-9");
        assert_eq!(s("bytes=90-", 100), "90-99");
        assert_eq!(s("bytes=-10", 100), "90-99");
        assert_eq!(s("bytes=95-200", 100), "95-99");
        assert_eq!(s("bytes=100-", 100), "416");
        assert_eq!(s("bytes=-0", 100), "416");
        assert_eq!(s("bytes=0-1,5-6", 100), "all");
        assert_eq!(s("items=0-1", 100), "all");
        assert_eq!(s("bytes=5-1", 100), "all");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "a\\b",
            "a\0",
            "%2e%2e/x",
            "./a",
            "C:/x",
        ] {
            assert!(safe_name(bad).is_none(), "{bad:?}");
        }
        assert_eq!(safe_name("css/app.css"), Some("css/app.css"));
    }
}
