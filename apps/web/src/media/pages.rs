//! The pages with an upload form: /rooms/ and /profile/.

use actix_web::{web, HttpRequest, HttpResponse};
use napiatke_htmx::Hx;

use crate::handlers::{base_context, render_page};
use crate::session::Auth;
use crate::{AppError, AppState};

type State = web::Data<AppState>;

/// What a page with an upload form gets: the base context and the size limit the
/// form states.
fn upload_page_context(state: &AppState, auth: &Auth, nav: &str) -> tera::Context {
    let mut ctx = base_context(auth, nav);
    ctx.insert("image_max_bytes", &state.image_max_bytes);
    ctx
}

/// GET /rooms/: every room with its photo; admins get an upload form on each.
pub async fn rooms(
    state: State,
    req: HttpRequest,
    auth: Auth,
    hx: Hx,
) -> Result<HttpResponse, AppError> {
    let rooms = state.services.rooms_with_photos().await?;
    let mut ctx = upload_page_context(&state, &auth, "rooms");
    ctx.insert("rooms", rooms.as_ref());
    render_page(&state, &req, hx, "rooms.html", None, &ctx)
}

/// GET /profile/: the user's own avatar and the form to change it.
pub async fn profile(
    state: State,
    req: HttpRequest,
    auth: Auth,
    hx: Hx,
) -> Result<HttpResponse, AppError> {
    let user = auth.user().id;
    let avatar = state.services.avatars(&[user]).await?.remove(&user);
    let mut ctx = upload_page_context(&state, &auth, "profile");
    ctx.insert("avatar", &avatar);
    render_page(&state, &req, hx, "profile.html", None, &ctx)
}
