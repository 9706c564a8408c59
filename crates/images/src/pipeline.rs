//! One upload, end to end: decode within limits, make every variant, name each from a
//! hash of the source and of the parameters that shaped it (so its URL never changes
//! meaning and reprocessing is idempotent), and store them.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::variants::{self, Format, Options};
use crate::{decode, Decoded, ImageError, Limits};

/// Where variants live. Names are relative, `/`-separated, made by this crate.
pub trait Storage: Send + Sync {
    /// Stores `bytes` under `name` (replacing nothing: names are content-addressed).
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// The size of what is stored under `name`, or `None` when nothing is.
    fn size(&self, name: &str) -> Option<u64>;
    /// The bytes stored under `name`.
    fn get(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Removes what is stored under `name`; `false` when nothing was.
    fn remove(&self, name: &str) -> io::Result<bool>;
}

/// Whether a storage error means there is no room left (the disk or a quota is
/// full): the caller answers 507, not 500.
#[must_use]
pub fn is_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Files under a root folder (MEDIA_ROOT), written atomically (temporary file, then
/// rename), so a reader never sees half a file.
///
/// ```
/// use napiatke_images::pipeline::{LocalStorage, Storage};
///
/// let root = std::env::temp_dir().join(format!("napiatke-doc-{}", std::process::id()));
/// let storage = LocalStorage::new(&root);
/// storage.put("ab/abcd/t64-00000000.webp", b"RIFF")?;
/// assert_eq!(storage.size("ab/abcd/t64-00000000.webp"), Some(4));
/// assert!(storage.remove("ab/abcd/t64-00000000.webp")?);
/// // Keeping more free than any disk has refuses every write, before writing.
/// let full = LocalStorage::new(&root).keeping_free(u64::MAX / 2);
/// let e = full.put("ab/abcd/t64-00000000.webp", b"RIFF").unwrap_err();
/// assert!(napiatke_images::pipeline::is_full(&e));
/// assert_eq!(storage.size("ab/abcd/t64-00000000.webp"), None);
/// # std::fs::remove_dir_all(&root)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    keep_free: u64,
}

impl LocalStorage {
    /// Storage under `root` (created when needed).
    pub fn new(root: impl Into<PathBuf>) -> LocalStorage {
        LocalStorage {
            root: root.into(),
            keep_free: 0,
        }
    }

    /// Refuses a write that would leave less than `bytes` free on the file system
    /// (MEDIA_KEEP_FREE): the database, its journal and the logs often share the
    /// disk, and must not be the ones to find it full.
    #[must_use]
    pub fn keeping_free(mut self, bytes: u64) -> LocalStorage {
        self.keep_free = bytes;
        self
    }

    /// A `StorageFull` error if writing `len` bytes under `dir` would go below the
    /// free space kept. A file system that cannot say how full it is lets the write
    /// decide.
    fn room_for(&self, dir: &Path, len: usize) -> io::Result<()> {
        if self.keep_free == 0 {
            return Ok(());
        }
        let Ok(stat) = rustix::fs::statvfs(dir) else {
            return Ok(());
        };
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        let wanted = self.keep_free.saturating_add(len as u64);
        if free < wanted {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "{} has {free} bytes free and keeps {} free; {len} more do not fit",
                    self.root.display(),
                    self.keep_free
                ),
            ));
        }
        Ok(())
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

impl LocalStorage {
    /// [`LocalStorage::path`], or an `InvalidInput` error naming the refused name.
    fn checked_path(&self, name: &str) -> io::Result<PathBuf> {
        self.path(name).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("bad name {name:?}"))
        })
    }
}

impl Storage for LocalStorage {
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.checked_path(name)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
            self.room_for(dir, bytes.len())?;
        }
        // Unique per write: two threads (or processes) storing the same name at once
        // (the same photo uploaded twice) must not share a temporary file, or one
        // could publish the other's half-written bytes.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, bytes));
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(())
    }

    fn size(&self, name: &str) -> Option<u64> {
        let path = self.path(name)?;
        std::fs::metadata(Path::new(&path))
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len())
    }

    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        let path = self.checked_path(name)?;
        std::fs::read(path)
    }

    fn remove(&self, name: &str) -> io::Result<bool> {
        let path = self.checked_path(name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        // Folders left empty go too (a failure means another file is in one, or one
        // was just made for a new file: both fine to leave).
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != self.root && d.starts_with(&self.root)) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(true)
    }
}

/// The format of a variant by its storage name, or `None` for any name this crate
/// does not make: `{2 hex}/{16 hex}/{w{W}x{H}|t{S}}-{8 hex}.{avif|webp|jpg}`. Serving
/// only such names keeps originals (which may carry GPS data) and anything else under
/// the media root private, and leaves no room for `..` or odd bytes.
#[must_use]
pub fn variant_format(name: &str) -> Option<Format> {
    let is_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let mut parts = name.split('/');
    let (shard, source, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || !is_hex(shard, 2)
        || !is_hex(source, 16)
        || !source.starts_with(shard)
    {
        return None;
    }
    let (stem, extension) = file.rsplit_once('.')?;
    let format = Format::ALL
        .into_iter()
        .find(|f| f.extension() == extension)?;
    let (tag, params) = stem.rsplit_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    let tag_ok = match tag.split_at_checked(1)? {
        ("w", size) => size
            .split_once('x')
            .is_some_and(|(w, h)| digits(w) && digits(h)),
        ("t", side) => digits(side),
        _ => false,
    };
    (tag_ok && is_hex(params, 8)).then_some(format)
}

/// What a variant is for (the domain's).
pub use napiatke_domain::VariantKind as Kind;

/// One stored variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantInfo {
    /// Storage name (the URL under /media/).
    pub path: String,
    /// Its encoding.
    pub format: Format,
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

/// An upload decoded and checked, with what can be shown at once: its size and the
/// placeholder. Variants are made from it by [`make_variants`], phase by phase.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The decoded pixels.
    pub decoded: Decoded,
    /// 16 hex digits of the source's SHA-256: the folder its variants live in.
    pub source: String,
    /// The blur placeholder (data URI).
    pub placeholder: String,
}

/// Decodes and checks `bytes` and makes the placeholder: what a request can afford to
/// do before answering (tens of milliseconds for a photograph).
pub fn prepare(bytes: &[u8], limits: &Limits) -> Result<Prepared, ImageError> {
    let decoded = decode(bytes, limits)?;
    let placeholder = variants::placeholder(&decoded.pixels)?;
    Ok(Prepared {
        source: source_hash(bytes),
        decoded,
        placeholder,
    })
}

/// 16 hex digits of the SHA-256 of `bytes`: names an upload's variants, and its
/// original.
#[must_use]
pub fn source_hash(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes)[..8])
}

/// The variants of one phase: every size `options` asks for, in each of `formats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Made {
    /// What was made or found, ladder steps ascending then the thumbnail, per format.
    pub variants: Vec<VariantInfo>,
    /// How many were already stored (reprocessing skips them).
    pub reused: usize,
}

/// Makes and stores every size in each of `formats` (a phase: WebP and JPEG first so
/// the image can be shown, AVIF after); variants already stored under their name are
/// not made again.
pub fn make_variants(
    prepared: &Prepared,
    options: &Options,
    formats: &[Format],
    storage: &dyn Storage,
) -> Result<Made, ImageError> {
    let decoded = &prepared.decoded;
    let source = &prepared.source;
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
    let mut out = Made::default();
    for (kind, w, h) in sizes {
        let mut resized = None;
        for &format in formats {
            let p = hex(&Sha256::digest(params(format, options).as_bytes())[..4]);
            let tag = match kind {
                Kind::Width => format!("w{w}x{h}"),
                Kind::Thumbnail => format!("t{w}"),
            };
            let name = format!("{}/{source}/{tag}-{p}.{}", &source[..2], format.extension());
            let size = if let Some(stored) = storage.size(&name) {
                out.reused += 1;
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
            out.variants.push(VariantInfo {
                path: name,
                format,
                kind,
                width: w,
                height: h,
                bytes: size,
            });
        }
    }
    Ok(out)
}

/// Decodes `bytes`, makes every variant `options` asks for in each format and stores
/// them; variants already stored under their name are not made again.
pub fn process(
    bytes: &[u8],
    limits: &Limits,
    options: &Options,
    storage: &dyn Storage,
) -> Result<Processed, ImageError> {
    let prepared = prepare(bytes, limits)?;
    let made = make_variants(&prepared, options, &Format::ALL, storage)?;
    Ok(Processed {
        width: prepared.decoded.width(),
        height: prepared.decoded.height(),
        has_alpha: prepared.decoded.has_alpha,
        placeholder: prepared.placeholder,
        variants: made.variants,
        reused: made.reused,
    })
}
