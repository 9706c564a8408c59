//! The napiatke web shell: settings, the actix-web app (route table and middleware
//! order in [`app`]), thin handlers, and the CLI. Handlers extract, call a service,
//! render; they hold no SQL and no cache keys.

pub mod app;
pub mod cli;
pub mod config;
mod debug;
mod error;
mod handlers;
mod media;
pub use media::MediaFiles;
pub mod middleware;
pub mod origin;
mod params;
pub mod routing;
mod session;

pub use app::{build_state, init_logging, init_tracing, AppState};
pub use error::AppError;

/// The templates and the collected static files, embedded at build time.
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
    include!(concat!(env!("OUT_DIR"), "/static_files.rs"));
}
