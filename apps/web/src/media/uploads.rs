//! The upload endpoints (room photos, avatars) and the status fragment an upload
//! polls.
//!
//! An upload is refused as early as it can be, cheapest first: who may upload, the
//! CSRF token (header, or a form field before the file), the declared size (413), one
//! of the user's places (429) and a place in the image queue (503, both with
//! Retry-After); only then is the body read, and a file growing past the limit is cut
//! off there. Past the user's storage allowance the answer is 429; with media storage
//! full, 507 (nothing written either way).

use actix_multipart::Multipart;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use napiatke_domain::{ImageId, RoomId, StoredImage};
use napiatke_htmx::Hx;
use napiatke_services::UploadTarget;

use crate::handlers::{no_store, see_other};
use crate::params::{Look, StatusParams};
use crate::session::Auth;
use crate::{AppError, AppState};

type State = web::Data<AppState>;

/// Room-for-form-fields on top of the file itself.
const FORM_OVERHEAD: usize = 64 * 1024;

/// How long an upload's body may take to arrive once its place is reserved.
const UPLOAD_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// How many times a processing image's fragment polls (about once a second) before
/// it asks for a reload instead.
pub(crate) const MAX_POLLS: u32 = 300;

fn unreadable(e: impl std::fmt::Display) -> AppError {
    AppError::BadRequest(format!("the upload could not be read: {e}"))
}

/// Reads the multipart field `image` (at most `max` bytes) after the checks above,
/// then hands it to the upload use case.
async fn receive(
    state: &AppState,
    req: &HttpRequest,
    auth: &Auth,
    target: UploadTarget,
    mut form: Multipart,
) -> Result<StoredImage, AppError> {
    state.services.authorize_upload(auth.user(), target).await?;
    let max = state.image_max_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max.saturating_add(FORM_OVERHEAD)) {
        return Err(too_large(max));
    }
    let slot = state.services.reserve_upload(auth.user())?;
    // A place is held while the body arrives: a client trickling it must not keep
    // it (and everyone else's uploads) forever.
    let bytes = tokio::time::timeout(UPLOAD_READ_TIMEOUT, read_form(&mut form, max))
        .await
        .map_err(|_| {
            AppError::Timeout(format!(
                "the upload took longer than {} s to arrive; try again on a faster connection",
                UPLOAD_READ_TIMEOUT.as_secs()
            ))
        })??;
    Ok(state
        .services
        .upload_image(auth.user(), target, slot, bytes)
        .await?)
}

/// Reads the form's file; every byte of every field counts against `max` plus
/// [`FORM_OVERHEAD`]. (Cross-site posts were refused before the body was read:
/// [`crate::origin`].)
async fn read_form(form: &mut Multipart, max: usize) -> Result<Vec<u8>, AppError> {
    let mut total = 0usize;
    let mut count = |n: usize| {
        total += n;
        if total > max.saturating_add(FORM_OVERHEAD) {
            Err(too_large(max))
        } else {
            Ok(())
        }
    };
    let mut image: Option<Vec<u8>> = None;
    let mut misnamed: Option<String> = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(unreadable)?;
        match field.name() {
            Some("image") => {
                if image.is_some() {
                    return Err(AppError::BadRequest("send one image at a time".to_owned()));
                }
                let mut bytes = Vec::new();
                while let Some(chunk) = field.next().await {
                    let chunk = chunk.map_err(unreadable)?;
                    if bytes.len() + chunk.len() > max {
                        return Err(too_large(max));
                    }
                    count(chunk.len())?;
                    bytes.extend_from_slice(&chunk);
                }
                image = Some(bytes);
            }
            other => {
                // Anything else is skipped, within the same size limit; a file sent
                // under another name is named in the answer.
                if let Some(name) = other.filter(|_| {
                    field
                        .content_disposition()
                        .and_then(|d| d.get_filename())
                        .is_some()
                }) {
                    misnamed = Some(name.to_owned());
                }
                while let Some(chunk) = field.next().await {
                    count(chunk.map_err(unreadable)?.len())?;
                }
            }
        }
    }
    image.ok_or_else(|| {
        AppError::BadRequest(match misnamed {
            Some(name) => {
                format!("the file came in the form field {name:?}; it must be sent as \"image\"")
            }
            None => "no file was sent: choose an image (form field \"image\")".to_owned(),
        })
    })
}

fn too_large(max: usize) -> AppError {
    AppError::TooLarge(format!(
        "the file is larger than {max} bytes ({} MB), the most accepted",
        max / 1_000_000
    ))
}

/// The image's status fragment: the placeholder while it is processed (polling
/// itself), then the image; `X-Image-Status` says which for scripts and tests.
fn status_fragment(
    state: &AppState,
    status: StatusCode,
    image: &StoredImage,
    look: Look,
    alt: &str,
    attempt: u32,
) -> Result<HttpResponse, AppError> {
    let mut ctx = tera::Context::new();
    ctx.insert("attempt", &attempt);
    ctx.insert("max_polls", &MAX_POLLS);
    ctx.insert("image", image);
    ctx.insert("look", look.name());
    ctx.insert("alt", alt);
    let body = state.templates.render("image_status.html", &ctx)?;
    let mut res = no_store(napiatke_htmx::html(status, body));
    res.headers_mut().insert(
        header::HeaderName::from_static("x-image-status"),
        HeaderValue::from_static(image.status.as_str()),
    );
    Ok(res)
}

fn uploaded(
    state: &AppState,
    hx: Hx,
    image: &StoredImage,
    look: Look,
    alt: &str,
    back: &str,
) -> Result<HttpResponse, AppError> {
    if hx.request {
        // Accepted, not done: the fragment polls until the variants exist.
        return status_fragment(state, StatusCode::ACCEPTED, image, look, alt, 0);
    }
    Ok(see_other(back))
}

fn room_id(raw: &str) -> Result<RoomId, AppError> {
    raw.parse()
        .map_err(|_| AppError::NotFound(format!("there is no room {raw:?}")))
}

/// POST /rooms/<id>/photo (admins; multipart field `image`).
pub async fn room_photo(
    state: State,
    req: HttpRequest,
    auth: Auth,
    hx: Hx,
    path: web::Path<String>,
    form: Multipart,
) -> Result<HttpResponse, AppError> {
    let room = room_id(&path)?;
    let image = receive(&state, &req, &auth, UploadTarget::RoomPhoto(room), form).await?;
    let name = state
        .services
        .rooms()
        .await?
        .iter()
        .find(|r| r.id == room)
        .map(|r| r.name.clone())
        .unwrap_or_default();
    uploaded(&state, hx, &image, Look::Photo, &name, "/rooms/")
}

/// POST /profile/avatar (any logged-in user, their own; multipart field `image`).
pub async fn avatar(
    state: State,
    req: HttpRequest,
    auth: Auth,
    hx: Hx,
    form: Multipart,
) -> Result<HttpResponse, AppError> {
    let image = receive(&state, &req, &auth, UploadTarget::Avatar, form).await?;
    let alt = auth.user().full_name();
    uploaded(&state, hx, &image, Look::Avatar, &alt, "/profile/")
}

/// GET /images/<id>/?look=photo|avatar&alt=...&attempt=N: the status fragment an
/// upload polls (about once a second, for at most [`MAX_POLLS`] times).
pub async fn image_status(
    state: State,
    req: HttpRequest,
    auth: Auth,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id: ImageId = path
        .parse()
        .map_err(|_| AppError::NotFound(format!("there is no image {:?}", path.as_str())))?;
    let q = StatusParams::from_query(req.query_string());
    let image = state.services.image(auth.user(), id).await?;
    status_fragment(&state, StatusCode::OK, &image, q.look, &q.alt, q.attempt)
}
