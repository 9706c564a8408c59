//! `responsive_image` and `lazy_image`: the markup for an uploaded photo, from the
//! image record the images crate serialises (`{"width", "height", "placeholder",
//! "status", "variants": [{"path", "format", "kind", "width", ...}]}`).
//!
//! Both are registered on every [`Templates`](crate::Templates); templates call them
//! as `{{ responsive_image(image=room.photo, alt=room.name) }}`. They are read from
//! JSON rather than the images crate's types so this crate stays a rendering layer
//! that knows nothing of the domain.
//!
//! Policy:
//! - Every attribute value is HTML-escaped, and variant paths are percent-encoded
//!   too, because a path with a space or a comma would split a `srcset` entry.
//! - `width` and `height` are always the source image's own, so the browser
//!   reserves the right box before any byte arrives and nothing shifts.
//! - Variants of a format or kind this crate does not know are skipped, so the
//!   images crate can add one without breaking pages; a record of the wrong shape,
//!   or an argument of the wrong type or name, is a render error, never a panic.
//! - A null (or absent) image renders as nothing; an image without variants yet
//!   renders its blurred placeholder, marked `data-processing` while it is still
//!   being processed, so a script may poll for the real one.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::num::NonZeroU64;

use serde::Deserialize;
use tera::Value;

/// Where uploaded images' variants are served unless told otherwise
/// ([`Templates::linking_media_at`](crate::Templates::linking_media_at)): a
/// variant's URL is this followed by its `path`.
///
/// ```
/// use napiatke_htmx::images::MEDIA_URL;
/// let path = "ab/ab12cd34ef56ab12/w320x200-1a2b3c4d.webp";
/// assert_eq!(format!("{MEDIA_URL}{path}"), "/media/ab/ab12cd34ef56ab12/w320x200-1a2b3c4d.webp");
/// ```
pub const MEDIA_URL: &str = "/media/";

/// The width the `<img>` fallback's `src` aims for: a browser that ignores `srcset`
/// is an old or odd one, where a middling size is the safest guess.
const FALLBACK_SRC_WIDTH: u64 = 960;

/// `responsive_image(image, alt, sizes="100vw", eager=false, class="")`: a
/// `<picture>` with one `<source>` per modern format holding its width ladder, and
/// an `<img>` holding the JPEG ladder (or the best format there is).
///
/// `alt` is required (`alt=""` for a decorative image). `eager=true` is for the
/// page's main image: it loads at once with `fetchpriority="high"` instead of
/// lazily.
///
/// ```
/// use napiatke_htmx::Templates;
/// let t = Templates::from_sources(&[(
///     "p.html",
///     "{{ responsive_image(image=photo, alt=name, sizes='(min-width: 60rem) 50vw, 100vw') }}",
/// )])?;
/// let photo: tera::Value = r#"{"id": 7, "width": 2560, "height": 1600, "status": "ready",
///     "placeholder": "data:image/webp;base64,UklG",
///     "variants": [
///         {"path": "ab/x/w640.jpg", "format": "jpeg", "kind": "width", "width": 640, "height": 400},
///         {"path": "ab/x/w320.jpg", "format": "jpeg", "kind": "width", "width": 320, "height": 200},
///         {"path": "ab/x/w320.webp", "format": "webp", "kind": "width", "width": 320, "height": 200}
///     ]}"#.parse().map_err(|e| napiatke_htmx::HtmxError::Template(format!("{e}")))?;
/// let mut ctx = tera::Context::new();
/// ctx.insert("photo", &photo);
/// ctx.insert("name", "Room 4");
/// assert_eq!(
///     t.render("p.html", &ctx)?,
///     "<span class=\"ph ph-block\">\
///      <img class=\"ph-blur\" src=\"data:image/webp;base64,UklG\" alt=\"\" aria-hidden=\"true\">\
///      <picture>\
///      <source type=\"image/webp\" srcset=\"/media/ab/x/w320.webp 320w\" sizes=\"(min-width: 60rem) 50vw, 100vw\">\
///      <img src=\"/media/ab/x/w640.jpg\" srcset=\"/media/ab/x/w320.jpg 320w, /media/ab/x/w640.jpg 640w\" \
///      sizes=\"(min-width: 60rem) 50vw, 100vw\" width=\"2560\" height=\"1600\" alt=\"Room 4\" \
///      loading=\"lazy\" decoding=\"async\" data-placeholder></picture></span>",
/// );
/// # Ok::<(), napiatke_htmx::HtmxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ResponsiveImage {
    media: std::sync::Arc<str>,
}

impl ResponsiveImage {
    /// Linking variants under `media` (ending in `/`).
    #[must_use]
    pub fn at(media: &str) -> ResponsiveImage {
        ResponsiveImage {
            media: media.into(),
        }
    }
}

impl Default for ResponsiveImage {
    fn default() -> Self {
        ResponsiveImage::at(MEDIA_URL)
    }
}

impl tera::Function for ResponsiveImage {
    fn call(&self, args: &HashMap<String, Value>) -> tera::Result<Value> {
        const NAME: &str = "responsive_image";
        known_args(NAME, args, &["image", "alt", "sizes", "eager", "class"])?;
        // Arguments are checked before the image so a template mistake shows on
        // the first render, not only once some record happens to have a photo.
        let opts = Options {
            alt: string_arg(NAME, args, "alt", None)?,
            class: string_arg(NAME, args, "class", Some(""))?,
            eager: bool_arg(NAME, args, "eager", false)?,
            media: &self.media,
        };
        let sizes = string_arg(NAME, args, "sizes", Some("100vw"))?;
        let Some(image) = Image::from_arg(NAME, args.get("image"))? else {
            return Ok(Value::String(String::new()));
        };
        Ok(Value::String(responsive(&image, sizes, &opts)))
    }

    fn is_safe(&self) -> bool {
        true
    }
}

/// `lazy_image(image, alt, size=48, class="")`: a small square picture (avatars,
/// list thumbnails) from the image's square thumbnail variants, `size` CSS pixels
/// wide and high, always loaded lazily.
///
/// ```
/// use napiatke_htmx::Templates;
/// let t = Templates::from_sources(&[("p.html", "{{ lazy_image(image=photo, alt='Ola', size=32) }}")])?;
/// let photo: tera::Value = r#"{"id": 3, "width": 800, "height": 600, "status": "ready",
///     "placeholder": null,
///     "variants": [
///         {"path": "cd/y/t300.webp", "format": "webp", "kind": "thumbnail", "width": 300, "height": 300},
///         {"path": "cd/y/t300.jpg", "format": "jpeg", "kind": "thumbnail", "width": 300, "height": 300}
///     ]}"#.parse().map_err(|e| napiatke_htmx::HtmxError::Template(format!("{e}")))?;
/// let mut ctx = tera::Context::new();
/// ctx.insert("photo", &photo);
/// assert_eq!(
///     t.render("p.html", &ctx)?,
///     "<picture><source type=\"image/webp\" srcset=\"/media/cd/y/t300.webp\">\
///      <img src=\"/media/cd/y/t300.jpg\" width=\"32\" height=\"32\" alt=\"Ola\" \
///      loading=\"lazy\" decoding=\"async\"></picture>",
/// );
/// # Ok::<(), napiatke_htmx::HtmxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LazyImage {
    media: std::sync::Arc<str>,
}

impl LazyImage {
    /// Linking variants under `media` (ending in `/`).
    #[must_use]
    pub fn at(media: &str) -> LazyImage {
        LazyImage {
            media: media.into(),
        }
    }
}

impl Default for LazyImage {
    fn default() -> Self {
        LazyImage::at(MEDIA_URL)
    }
}

impl tera::Function for LazyImage {
    fn call(&self, args: &HashMap<String, Value>) -> tera::Result<Value> {
        const NAME: &str = "lazy_image";
        known_args(NAME, args, &["image", "alt", "size", "class"])?;
        let opts = Options {
            alt: string_arg(NAME, args, "alt", None)?,
            class: string_arg(NAME, args, "class", Some(""))?,
            eager: false,
            media: &self.media,
        };
        let size = match args.get("size") {
            None => 48,
            Some(v) => v.as_u64().filter(|&s| s > 0).ok_or_else(|| {
                tera::Error::msg(format!(
                    "{NAME}(): size must be a positive whole number of CSS pixels, got {}",
                    describe(v)
                ))
            })?,
        };
        let Some(image) = Image::from_arg(NAME, args.get("image"))? else {
            return Ok(Value::String(String::new()));
        };
        Ok(Value::String(lazy(&image, size, &opts)))
    }

    fn is_safe(&self) -> bool {
        true
    }
}

/// The attributes both functions put on the `<img>` alike.
struct Options<'a> {
    alt: &'a str,
    class: &'a str,
    eager: bool,
    /// Where variants are linked (ends in `/`).
    media: &'a str,
}

/// A variant's encoding, as the record names it ("avif", "webp", "jpeg"); any other
/// is read as `Other` and skipped, so the images crate can add one without breaking
/// pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    Avif,
    Webp,
    Jpeg,
    #[serde(other)]
    Other,
}

impl Format {
    /// Order for `<source>`s: the browser takes the first it supports, so the
    /// smallest files come first.
    const SOURCES: [Format; 3] = [Format::Avif, Format::Webp, Format::Jpeg];
    /// Order for the `<img>` fallback, which every browser must be able to show.
    const FALLBACK: [Format; 3] = [Format::Jpeg, Format::Webp, Format::Avif];

    fn mime(self) -> &'static str {
        match self {
            Format::Avif => "image/avif",
            Format::Webp => "image/webp",
            Format::Jpeg | Format::Other => "image/jpeg",
        }
    }
}

/// What a variant is for ("width" or "thumbnail"); any other is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Width,
    Thumbnail,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Variant<'a> {
    #[serde(borrow)]
    path: &'a str,
    format: Format,
    kind: Kind,
    width: NonZeroU64,
}

impl Variant<'_> {
    fn url(&self, media: &str) -> String {
        format!("{media}{}", crate::percent_encode(self.path))
    }
}

struct Image<'a> {
    width: u64,
    height: u64,
    placeholder: Option<&'a str>,
    processing: bool,
    variants: Vec<Variant<'a>>,
}

impl<'a> Image<'a> {
    fn from_arg(func: &str, value: Option<&'a Value>) -> tera::Result<Option<Image<'a>>> {
        /// The record's shape; what the types cannot say is checked below.
        #[derive(Deserialize)]
        struct Record<'a> {
            width: NonZeroU64,
            height: NonZeroU64,
            #[serde(default, borrow)]
            placeholder: Option<&'a str>,
            #[serde(default, borrow)]
            status: Option<&'a str>,
            #[serde(default, borrow)]
            variants: Option<Vec<Variant<'a>>>,
        }
        let obj = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(v @ Value::Object(obj)) => (v, obj),
            Some(other) => {
                return Err(tera::Error::msg(format!(
                    "{func}(): image must be an image record or null, got {}",
                    describe(other)
                )))
            }
        };
        let which = match obj.1.get("id") {
            Some(id @ (Value::Number(_) | Value::String(_))) => format!("image {id}"),
            _ => "image".to_owned(),
        };
        let bad = |what: String| tera::Error::msg(format!("{func}(): {which}: {what}"));
        // The path of the offending field leads the message ("variants[0].width: ...").
        let record: Record<'a> = serde_path_to_error::deserialize(obj.0).map_err(|e| {
            match e.path().to_string().as_str() {
                "." => bad(e.inner().to_string()),
                path => bad(format!("`{path}`: {}", e.inner())),
            }
        })?;
        // Only an inline image: anything else would make every page showing this
        // record fetch from wherever the string points.
        let placeholder = match record.placeholder {
            None | Some("") => None,
            Some(s) if s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) => Some(s),
            Some(_) => return Err(bad("`placeholder` must be a data: URI or null".to_owned())),
        };
        let mut variants = record.variants.unwrap_or_default();
        for (i, v) in variants.iter().enumerate() {
            // Paths are relative to the media folder; one that climbs out of it or
            // names another host is not a record the images crate wrote.
            let path = v.path;
            if path.is_empty()
                || path.starts_with(['/', '\\'])
                || path.split(['/', '\\']).any(|s| s == ".." || s == ".")
            {
                return Err(bad(format!(
                    "variant {i}: `path` {path:?} is not a relative path inside {MEDIA_URL}"
                )));
            }
        }
        variants.retain(|v| v.format != Format::Other && v.kind != Kind::Other);
        Ok(Some(Image {
            width: record.width.get(),
            height: record.height.get(),
            placeholder,
            processing: record
                .status
                .is_some_and(|s| s.eq_ignore_ascii_case("processing")),
            variants,
        }))
    }

    /// The width variants of `format`, narrowest first, one per width.
    fn ladder(&self, format: Format) -> Vec<&Variant<'a>> {
        let mut ladder: Vec<&Variant<'a>> = self
            .variants
            .iter()
            .filter(|v| v.kind == Kind::Width && v.format == format)
            .collect();
        ladder.sort_by_key(|v| v.width);
        ladder.dedup_by_key(|v| v.width);
        ladder
    }

    /// The largest thumbnail of `format`.
    fn thumbnail(&self, format: Format) -> Option<&Variant<'a>> {
        self.variants
            .iter()
            .filter(|v| v.kind == Kind::Thumbnail && v.format == format)
            .max_by_key(|v| v.width)
    }

    /// The blurred placeholder as an `<img>` of its own, stacked under the real
    /// picture (no inline style: the Content-Security-Policy allows none). The
    /// script drops it once the picture has loaded, so it cannot show through a
    /// transparent image.
    fn placeholder_layer(&self, class: &str) -> Option<String> {
        let uri = self.placeholder?;
        let mut out = String::from("<img");
        attr(&mut out, "class", &classes("ph-blur", class));
        attr(&mut out, "src", uri);
        out.push_str(" alt=\"\" aria-hidden=\"true\">");
        Some(out)
    }
}

/// Two class lists as one, either of them possibly empty.
fn classes(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (_, true) => a.to_owned(),
        (true, false) => b.to_owned(),
        (false, false) => format!("{a} {b}"),
    }
}

/// `<span class="ph ...">` + the placeholder layer + `picture`, or `picture` alone.
fn layered(image: &Image<'_>, wrapper: &str, class: &str, picture: String) -> String {
    match image.placeholder_layer(class) {
        Some(layer) => format!("<span class=\"{wrapper}\">{layer}{picture}</span>"),
        None => picture,
    }
}

fn responsive(image: &Image<'_>, sizes: &str, opts: &Options<'_>) -> String {
    let Some((img_format, img_ladder)) = Format::FALLBACK
        .into_iter()
        .map(|f| (f, image.ladder(f)))
        .find(|(_, ladder)| !ladder.is_empty())
    else {
        return placeholder_img(image, image.width, image.height, false, opts);
    };
    let mut out = String::from("<picture>");
    for format in Format::SOURCES.into_iter().filter(|&f| f != img_format) {
        let ladder = image.ladder(format);
        if ladder.is_empty() {
            continue;
        }
        out.push_str("<source");
        attr(&mut out, "type", format.mime());
        attr(&mut out, "srcset", &srcset(&ladder, opts.media));
        attr(&mut out, "sizes", sizes);
        out.push('>');
    }
    let src = img_ladder
        .iter()
        .rev()
        .find(|v| v.width.get() <= FALLBACK_SRC_WIDTH)
        .or_else(|| img_ladder.first())
        .map(|v| v.url(opts.media))
        .unwrap_or_default();
    out.push_str("<img");
    attr(&mut out, "src", &src);
    attr(&mut out, "srcset", &srcset(&img_ladder, opts.media));
    attr(&mut out, "sizes", sizes);
    img_tail(&mut out, image, image.width, image.height, opts);
    out.push_str("</picture>");
    layered(image, "ph ph-block", opts.class, out)
}

fn lazy(image: &Image<'_>, size: u64, opts: &Options<'_>) -> String {
    let Some(img) = Format::FALLBACK
        .into_iter()
        .find_map(|f| image.thumbnail(f))
    else {
        // The placeholder has the photo's shape, not a square: crop, don't squash.
        return placeholder_img(image, size, size, true, opts);
    };
    let mut out = String::from("<picture>");
    for format in Format::SOURCES.into_iter().filter(|&f| f != img.format) {
        if let Some(thumb) = image.thumbnail(format) {
            out.push_str("<source");
            attr(&mut out, "type", format.mime());
            attr(&mut out, "srcset", &thumb.url(opts.media));
            out.push('>');
        }
    }
    out.push_str("<img");
    attr(&mut out, "src", &img.url(opts.media));
    img_tail(&mut out, image, size, size, opts);
    out.push_str("</picture>");
    layered(image, "ph", opts.class, out)
}

/// The `<img>` for an image with no variant to show yet: its placeholder, at the
/// size the real one will have (`cover`: cropped to it, for square thumbnails).
fn placeholder_img(
    image: &Image<'_>,
    width: u64,
    height: u64,
    cover: bool,
    opts: &Options<'_>,
) -> String {
    let mut out = String::from("<img");
    if let Some(uri) = image.placeholder {
        attr(&mut out, "src", uri);
    }
    attr(&mut out, "width", &width.to_string());
    attr(&mut out, "height", &height.to_string());
    attr(&mut out, "alt", opts.alt);
    loading(&mut out, opts.eager);
    let class = classes(opts.class, if cover { "ph-cover" } else { "" });
    if !class.is_empty() {
        attr(&mut out, "class", &class);
    }
    if image.processing {
        out.push_str(" data-processing");
    }
    out.push('>');
    out
}

/// The `<img>` attributes after its sources, through the closing `>`.
fn img_tail(out: &mut String, image: &Image<'_>, width: u64, height: u64, opts: &Options<'_>) {
    attr(out, "width", &width.to_string());
    attr(out, "height", &height.to_string());
    attr(out, "alt", opts.alt);
    loading(out, opts.eager);
    if !opts.class.is_empty() {
        attr(out, "class", opts.class);
    }
    if image.placeholder.is_some() {
        // Lets the script drop the placeholder layer once the image has loaded.
        out.push_str(" data-placeholder");
    }
    out.push('>');
}

fn loading(out: &mut String, eager: bool) {
    if eager {
        out.push_str(" loading=\"eager\" fetchpriority=\"high\"");
    } else {
        out.push_str(" loading=\"lazy\"");
    }
    out.push_str(" decoding=\"async\"");
}

fn srcset(ladder: &[&Variant<'_>], media: &str) -> String {
    let mut out = String::new();
    for (i, v) in ladder.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{} {}w", v.url(media), v.width);
    }
    out
}

/// ` name="value"`, the value escaped (see [`escape_html_into`]).
fn attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    crate::escape_html_into(out, value);
    out.push('"');
}

/// A misspelt argument would otherwise be silently ignored (tera passes through
/// whatever the template wrote), leaving e.g. a `sizes` that never applies.
fn known_args(func: &str, args: &HashMap<String, Value>, known: &[&str]) -> tera::Result<()> {
    let mut unknown: Vec<&str> = args
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    Err(tera::Error::msg(format!(
        "{func}(): unknown argument(s) {}; it takes {}",
        unknown.join(", "),
        known.join(", ")
    )))
}

fn string_arg<'a>(
    func: &str,
    args: &'a HashMap<String, Value>,
    name: &str,
    default: Option<&'static str>,
) -> tera::Result<&'a str> {
    match (args.get(name), default) {
        (Some(Value::String(s)), _) => Ok(s),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(tera::Error::msg(format!(
            "{func}(): needs {name}=\"...\" ({name}=\"\" if the image is decorative)"
        ))),
        (Some(other), _) => Err(tera::Error::msg(format!(
            "{func}(): {name} must be a string, got {}",
            describe(other)
        ))),
    }
}

fn bool_arg(
    func: &str,
    args: &HashMap<String, Value>,
    name: &str,
    default: bool,
) -> tera::Result<bool> {
    match args.get(name) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(tera::Error::msg(format!(
            "{func}(): {name} must be true or false, got {}",
            describe(other)
        ))),
    }
}

/// What a value is, for error messages, without echoing a whole record (or
/// someone's text) into the logs.
fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
