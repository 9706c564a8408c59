//! Static files done the way WhiteNoise's CompressedManifestStaticFilesStorage does
//! them for Django, without tying them to one HTTP library.
//!
//! - [`collect`] copies a source folder into a static root: every file also under a
//!   content-hashed name (`app.3f2a9c1b0e4d.css`), CSS `url(...)` and `@import`
//!   references rewritten to the hashed names (a reference to nothing is an error
//!   naming the file and the reference), text files precompressed to `.br` (quality 11)
//!   and `.gz` (level 9) unless that saves under 5 %, and a manifest
//!   (`staticfiles.json`). Re-running it compresses nothing that did not change.
//! - [`StaticFiles`] loads the manifest and the files at start and answers requests:
//!   immutable year-long caching for hashed names, a short max-age with ETag for the
//!   rest, `Accept-Encoding` negotiation (br, then gzip, then identity, q-values
//!   honoured), 304s for `If-None-Match` / `If-Modified-Since`, HEAD, single byte
//!   ranges on identity responses. Only names in its index are served, so no request
//!   path can reach outside the static root.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("napiatke-assets-doc-{}", std::process::id()));
//! # let (src, root) = (dir.join("src"), dir.join("root"));
//! # std::fs::create_dir_all(src.join("css")).unwrap();
//! std::fs::write(src.join("css/app.css"), "body { color: #123; }\n".repeat(50))?;
//! let report = napiatke_assets::collect(&src, &root)?;
//! assert_eq!(report.files, 1);
//! let files = napiatke_assets::StaticFiles::load(&root)?;
//! let hashed = files.url("css/app.css").unwrap();
//! assert!(hashed.starts_with("/static/css/app.") && hashed.ends_with(".css"));
//! let res = files.respond(&napiatke_assets::Request {
//!     path: hashed.trim_start_matches("/static/"),
//!     accept_encoding: Some("gzip, br"),
//!     ..Default::default()
//! });
//! assert_eq!(res.status, 200);
//! assert_eq!(res.header("content-encoding"), Some("br"));
//! assert_eq!(res.header("cache-control"), Some("max-age=31536000, immutable"));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod collect;
mod serve;

pub use collect::{collect, CollectReport, Manifest, MANIFEST};
pub use serve::{negotiate, Body, Coding, HeaderText, Method, Request, Response, StaticFiles};

/// What can go wrong collecting or loading static files.
#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A CSS file refers to a file that is not there.
    #[error("{file}: {reference:?} refers to {resolved:?}, which is not in the static files")]
    MissingReference {
        /// The CSS file.
        file: String,
        /// The reference as written.
        reference: String,
        /// Where it points, relative to the source folder.
        resolved: String,
    },
    /// CSS files import each other in a circle.
    #[error("{0}: CSS imports form a cycle")]
    Cycle(String),
    /// The manifest is missing or unreadable.
    #[error("manifest {path}: {reason}")]
    Manifest {
        /// Where it was looked for.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AssetsError + '_ {
    move |source| AssetsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Content-Type by extension; text types carry `charset=utf-8`.
#[must_use]
pub fn content_type(name: &str) -> &'static str {
    match name
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "xml" => "application/xml",
        "ico" => "image/x-icon",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Whether compressing a file of this name is worth trying (already-compressed formats
/// are not).
#[must_use]
pub fn compressible(name: &str) -> bool {
    matches!(
        name.rsplit('.')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str(),
        "css"
            | "js"
            | "mjs"
            | "json"
            | "map"
            | "html"
            | "htm"
            | "txt"
            | "svg"
            | "xml"
            | "ico"
            | "wasm"
    )
}
