//! The napiatke web shell: settings, the actix-web app (route table and middleware
//! order in [`app`]), thin handlers, and the CLI. Handlers extract, call a service,
//! render; they hold no SQL and no cache keys.

pub mod app;
pub mod cli;
pub mod config;
mod error;
mod handlers;
mod middleware;
mod session;

pub use app::{build_state, init_tracing, AppState};
pub use error::AppError;

/// The templates embedded at build time.
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

/// Runs blocking work (database, argon2) on actix's blocking pool inside the current
/// request span, so statements it runs are counted for this request.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, AppError>
where
    F: FnOnce() -> Result<T, napiatke_services::ServiceError> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    actix_web::web::block(move || span.in_scope(f))
        .await
        .map_err(|e| AppError::Unavailable(format!("worker pool: {e}")))?
        .map_err(AppError::from)
}
