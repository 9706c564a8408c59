//! GET and HEAD `/media/<variant>`: stored variants, through actix-files.
//!
//! Only names the image pipeline makes are served (originals and anything else under
//! MEDIA_ROOT stay private, and no `..` gets in); the name is checked before the
//! disk is touched. A variant's name changes whenever its bytes would, so it is
//! cached for a year, its ETag is the name itself, and a matching If-None-Match is
//! answered 304 without opening the file. Everything else (ranges, If-Range,
//! Last-Modified, streaming from disk in chunks instead of reading the file into
//! memory first) is actix-files' `NamedFile`.

use actix_files::NamedFile;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::{AppError, AppState};

/// GET and HEAD /media/<variant>.
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
    let path = state.media.path(name).ok_or_else(missing)?;
    let etag = format!("\"{}\"", name.rsplit('/').next().unwrap_or_default());
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if fresh {
        HttpResponse::NotModified().finish()
    } else {
        let file = NamedFile::open_async(&path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => missing(),
                _ => AppError::Internal(format!("media read {}: {e}", path.display())),
            })?;
        file.set_content_type(format.mime().parse().map_err(|_| missing())?)
            // The name is the version: no weak ETag from inode and mtime.
            .use_etag(false)
            .disable_content_disposition()
            .into_response(&req)
    };
    let headers = res.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    if fresh {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.mime()),
        );
    }
    Ok(res)
}
