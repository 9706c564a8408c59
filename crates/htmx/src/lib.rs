//! Rendering pages and htmx fragments from one set of tera templates.
//!
//! A page template marks the parts htmx may ask for alone as named blocks closed by a
//! named `{% endblock NAME %}`. [`Templates::load`] registers each such block a second
//! time as its own template, `page.html#NAME`, so the fragment is the page's own block,
//! never a copy. [`Hx`] reads the request's `HX-*` headers; [`Templates::respond`]
//! renders the page or the fragment and always sets `Vary: HX-Request`, so no cache
//! (nor the browser's back button) serves one in place of the other.
//!
//! ```
//! use napiatke_htmx::{Hx, Templates};
//! let t = Templates::from_sources(&[(
//!     "list.html",
//!     "<h1>List</h1>{% block rows %}{% for r in rows %}<li>{{ r }}</li>{% endfor %}{% endblock rows %}",
//! )])?;
//! let mut ctx = tera::Context::new();
//! ctx.insert("rows", &["a", "b"]);
//! assert_eq!(t.render("list.html", &ctx)?, "<h1>List</h1><li>a</li><li>b</li>");
//! assert_eq!(t.render("list.html#rows", &ctx)?, "<li>a</li><li>b</li>");
//! # Ok::<(), napiatke_htmx::HtmxError>(())
//! ```
//!
//! ## Template functions
//!
//! Every [`Templates`] has, besides `static()` (when given [`StaticUrls`]) and the
//! `date` filter:
//! - `responsive_image(image, alt, sizes="100vw", eager=false, class="")`: a
//!   `<picture>` with AVIF/WebP/JPEG width ladders for an uploaded photo;
//! - `lazy_image(image, alt, size=48, class="")`: a small square picture (avatars)
//!   from the photo's thumbnails.
//!
//! Both take the image record as the images crate serialises it (or null, which
//! renders nothing) and show its placeholder until variants exist; see
//! [`images`] for the markup and its guarantees.

mod chunked;
mod hx;
pub mod images;
mod response;
mod stored;
mod templates;
mod text;

pub use chunked::Parts;
pub use hx::{html, varying_html, Hx};
pub use response::HxHeaders;
pub use stored::{CacheStatus, Effort, FragmentKey, HtmlCache, StoredHtml, MIN_COMPRESS_BYTES};
pub use templates::{StaticUrls, Templates, ToLocal, RENDER_TARGET};
pub use text::{escape_html_into, percent_encode};

/// What can go wrong loading or rendering templates.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HtmxError {
    /// A template failed to parse or render; the message walks tera's cause chain.
    #[error("template error: {0}")]
    Template(String),
    /// The template folder could not be read.
    #[error("cannot read templates in {dir}: {reason}")]
    Io {
        /// The folder.
        dir: String,
        /// Why.
        reason: String,
    },
}

impl From<tera::Error> for HtmxError {
    fn from(e: tera::Error) -> Self {
        // tera's Display is the outermost message only; the useful part is the cause.
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        HtmxError::Template(msg)
    }
}
