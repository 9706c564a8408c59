//! One upload, end to end: decode within limits, make every variant, name each from a
//! hash of the source and of the parameters that shaped it (so its URL never changes
//! meaning and reprocessing is idempotent), and store them.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::variants::{self, Format, Options};
use crate::{decode, ImageError, Limits};

/// Where variants live. Names are relative, `/`-separated, made by this crate.
pub trait Storage: Send + Sync {
    /// Stores `bytes` under `name` (replacing nothing: names are content-addressed).
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// The size of what is stored under `name`, or `None` when nothing is.
    fn size(&self, name: &str) -> Option<u64>;
}

/// Files under a root folder (MEDIA_ROOT), written atomically (temporary file, then
/// rename), so a reader never sees half a file.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Storage under `root` (created when needed).
    pub fn new(root: impl Into<PathBuf>) -> LocalStorage {
        LocalStorage { root: root.into() }
    }

    /// The file behind `name`, or `None` for a name that could leave the root.
    #[must_use]
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        let safe = !name.is_empty()
            && name.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
        safe.then(|| self.root.join(name))
    }
}

impl Storage for LocalStorage {
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(name).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("bad name {name:?}"))
        })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)
    }

    fn size(&self, name: &str) -> Option<u64> {
        let path = self.path(name)?;
        std::fs::metadata(Path::new(&path))
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len())
    }
}

/// What a variant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A step of the width ladder (srcset).
    Width,
    /// The square thumbnail.
    Thumbnail,
}

/// One stored variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantInfo {
    /// Storage name (the URL under /media/).
    pub path: String,
    /// "avif", "webp" or "jpeg".
    pub format: &'static str,
    /// Ladder step or thumbnail.
    pub kind: Kind,
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// Encoded size.
    pub bytes: usize,
}

/// The result of processing one upload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Processed {
    /// Source size after orientation.
    pub width: u32,
    /// Source height after orientation.
    pub height: u32,
    /// Whether the source has transparency.
    pub has_alpha: bool,
    /// The blur placeholder (data URI).
    pub placeholder: String,
    /// Every variant, ladder steps ascending then the thumbnail, per format.
    pub variants: Vec<VariantInfo>,
    /// How many were already stored (reprocessing skips them).
    pub reused: usize,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The parameters that shape a variant's bytes, hashed into its name.
fn params(format: Format, options: &Options) -> String {
    match format {
        Format::Avif => format!("avif-q{}-s{}", options.avif_quality, options.avif_speed),
        Format::WebP => format!("webp-q{}", options.webp_quality),
        Format::Jpeg => format!("jpeg-q{}-progressive", options.jpeg_quality),
    }
}

/// Decodes `bytes`, makes every variant `options` asks for in each format and stores
/// them; variants already stored under their name are not made again.
pub fn process(
    bytes: &[u8],
    limits: &Limits,
    options: &Options,
    storage: &dyn Storage,
) -> Result<Processed, ImageError> {
    let decoded = decode(bytes, limits)?;
    let source = hex(&Sha256::digest(bytes)[..8]);
    let placeholder = variants::placeholder(&decoded.pixels)?;
    let mut sizes: Vec<(Kind, u32, u32)> =
        variants::ladder(decoded.width(), decoded.height(), options)
            .into_iter()
            .map(|(w, h)| (Kind::Width, w, h))
            .collect();
    let side = options
        .thumbnail
        .min(decoded.width())
        .min(decoded.height())
        .max(1);
    sizes.push((Kind::Thumbnail, side, side));
    let mut out = Vec::new();
    let mut reused = 0;
    for (kind, w, h) in sizes {
        let mut resized = None;
        for format in Format::ALL {
            let p = hex(&Sha256::digest(params(format, options).as_bytes())[..4]);
            let tag = match kind {
                Kind::Width => format!("w{w}x{h}"),
                Kind::Thumbnail => format!("t{w}"),
            };
            let name = format!("{}/{source}/{tag}-{p}.{}", &source[..2], format.extension());
            let size = if let Some(stored) = storage.size(&name) {
                reused += 1;
                usize::try_from(stored).unwrap_or(usize::MAX)
            } else {
                if resized.is_none() {
                    resized = Some(match kind {
                        Kind::Width => variants::resize(&decoded.pixels, w, h)?,
                        Kind::Thumbnail => variants::thumbnail(&decoded.pixels, w)?,
                    });
                }
                let image = resized
                    .as_ref()
                    .ok_or_else(|| ImageError::Encode("resize".to_owned()))?;
                let encoded = variants::encode(image, format, options)?;
                storage
                    .put(&name, &encoded)
                    .map_err(|e| ImageError::Encode(format!("storing {name}: {e}")))?;
                encoded.len()
            };
            out.push(VariantInfo {
                path: name,
                format: format.name(),
                kind,
                width: w,
                height: h,
                bytes: size,
            });
        }
    }
    Ok(Processed {
        width: decoded.width(),
        height: decoded.height(),
        has_alpha: decoded.has_alpha,
        placeholder,
        variants: out,
        reused,
    })
}
