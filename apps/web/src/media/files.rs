//! GET and HEAD `/media/<variant>`: stored variants, through actix-files.
//!
//! Only names the image pipeline makes are served (originals and anything else under
//! MEDIA_ROOT stay private, and no `..` gets in); the name is checked before the
//! disk is touched. A variant's name changes whenever its bytes would, so it is
//! cached for a year and its ETag is the name itself: the same on every machine
//! serving it, unlike one made from inode and mtime. The validators are answered
//! here (If-None-Match: 304; If-Match: 412 unless it names this variant); the body
//! is actix-files' `NamedFile`: ranges and streaming from disk in chunks instead of
//! reading the file into memory first. (actix-files 0.6 ignores If-Range and always
//! serves the range, which is right for content that never changes under its name.)
//!
//! With MEDIA_STORAGE=s3 the bytes come from the bucket (whole: variants are tens
//! to hundreds of kilobytes, and no range is offered), with the same headers; a
//! bucket that cannot be read is a 503, never a 500. With MEDIA_PUBLIC_URL set,
//! pages link to the variants there and `/media/` only redirects, for links made
//! before.

use actix_files::NamedFile;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use napiatke_images::pipeline::LocalStorage;

use crate::{AppError, AppState};

/// Where `/media/` finds the variants it serves.
#[derive(Debug, Clone)]
pub enum MediaFiles {
    /// Files under MEDIA_ROOT.
    Local(LocalStorage),
    /// Objects in the MEDIA_STORAGE=s3 bucket.
    Bucket(napiatke_bucket::Bucket),
    /// Served elsewhere (MEDIA_PUBLIC_URL, ending in `/`): `/media/` redirects.
    Public(String),
}

/// Whether a validator header (`If-None-Match`, `If-Match`) lists `etag` or `*`.
fn names(req: &HttpRequest, name: header::HeaderName, etag: &str) -> Option<bool> {
    let value = req.headers().get(name)?.to_str().ok()?;
    Some(
        value
            .split(',')
            .map(str::trim)
            .any(|t| t == etag || t == "*" || t.strip_prefix("W/") == Some(etag)),
    )
}

/// GET and HEAD `/media/<variant>`.
pub async fn media(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    match *req.method() {
        Method::GET | Method::HEAD => {}
        _ => {
            return Ok(HttpResponse::MethodNotAllowed()
                .insert_header((header::ALLOW, "GET, HEAD"))
                .finish())
        }
    }
    let missing = || AppError::NotFound("there is no such image".to_owned());
    // The raw path, not the decoded one: an encoded `..` must not become a real one.
    let name = req.uri().path().strip_prefix("/media/").unwrap_or_default();
    let format = napiatke_images::pipeline::variant_format(name).ok_or_else(missing)?;
    let etag = format!("\"{}\"", name.rsplit('/').next().unwrap_or_default());
    let storage = match &state.media {
        MediaFiles::Local(storage) => storage,
        MediaFiles::Bucket(bucket) => return from_bucket(bucket, name, &etag, &req).await,
        MediaFiles::Public(base) => {
            // Not permanent: MEDIA_PUBLIC_URL may change, and a browser would keep
            // a 301 for good.
            return Ok(HttpResponse::Found()
                .insert_header((header::LOCATION, format!("{base}{name}")))
                .insert_header((header::CACHE_CONTROL, "max-age=3600"))
                .finish());
        }
    };
    let path = storage.path(name).ok_or_else(missing)?;
    // Opened first: a validator never vouches for a variant that is gone.
    let file = NamedFile::open_async(&path)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => missing(),
            _ => AppError::Internal(format!("media read {}: {e}", path.display())),
        })?;
    let mut res = if names(&req, header::IF_MATCH, &etag) == Some(false) {
        HttpResponse::new(StatusCode::PRECONDITION_FAILED)
    } else if names(&req, header::IF_NONE_MATCH, &etag) == Some(true) {
        HttpResponse::NotModified().finish()
    } else if req.headers().contains_key(header::IF_MATCH) {
        // It matched; NamedFile, which knows no ETag of ours, would refuse it.
        let bytes = web::block(move || std::fs::read(path))
            .await
            .map_err(|e| AppError::Internal(format!("media read: {e}")))?
            .map_err(|e| AppError::Internal(format!("media read: {e}")))?;
        HttpResponse::Ok().body(bytes)
    } else {
        file.use_etag(false)
            .disable_content_disposition()
            .into_response(&req)
    };
    variant_headers(&mut res, format.mime(), &etag);
    Ok(res)
}

/// A variant from the bucket: read first (a validator never vouches for a variant
/// that is gone), then answered as a file would be, without ranges.
async fn from_bucket(
    bucket: &napiatke_bucket::Bucket,
    name: &str,
    etag: &str,
    req: &HttpRequest,
) -> Result<HttpResponse, AppError> {
    let object = bucket.read(name).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AppError::NotFound("there is no such image".to_owned()),
        _ => AppError::Unavailable(format!("media read {name} from {}: {e}", bucket.describe())),
    })?;
    let mut res = if names(req, header::IF_MATCH, etag) == Some(false) {
        HttpResponse::new(StatusCode::PRECONDITION_FAILED)
    } else if names(req, header::IF_NONE_MATCH, etag) == Some(true) {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok().body(object.bytes)
    };
    variant_headers(&mut res, object.content_type, etag);
    Ok(res)
}

/// What every variant answer carries: its type, a year's immutable caching and the
/// name as its ETag.
fn variant_headers(res: &mut HttpResponse, mime: &'static str, etag: &str) {
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000, immutable"),
    );
    if let Ok(etag) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, etag);
    }
}
