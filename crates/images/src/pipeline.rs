//! One upload, end to end: decode within limits, make every variant, name each from a
//! hash of the source and of the parameters that shaped it (so its URL never changes
//! meaning and reprocessing is idempotent), and store them.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::quality::{self, Encoded, Reference};
use crate::variants::{self, Format, Options};
use crate::{decode, Decoded, ImageError, Limits};

/// Where variants live. Names are relative, `/`-separated, made by this crate.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `name` (replacing nothing: names are content-addressed).
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// The size of what is stored under `name`, or `None` when nothing is.
    fn size(&self, name: &str) -> Option<u64>;
    /// The bytes stored under `name`.
    fn get(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Removes what is stored under `name`; `false` when nothing was.
    fn remove(&self, name: &str) -> io::Result<bool>;
    /// Whether `e`, from this store, means it cannot be reached now rather than a
    /// fault of the name or the bytes: the caller answers 503 and the user tries
    /// again. By default, network errors and timeouts.
    fn is_unavailable(&self, e: &io::Error) -> bool {
        use io::ErrorKind as K;
        matches!(
            e.kind(),
            K::TimedOut
                | K::ConnectionRefused
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::NotConnected
                | K::BrokenPipe
                | K::HostUnreachable
                | K::NetworkUnreachable
                | K::NetworkDown
        )
    }
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
        is_safe_name(name).then(|| self.root.join(name))
    }
}

/// Whether `name` is one a store may hold: `/`-separated parts of ASCII letters,
/// digits, `-`, `_` and `.`, none empty, `.` or `..`. Every [`Storage`] checks it, so
/// no name can leave the store's root (a folder, a bucket's prefix).
///
/// ```
/// use napiatke_images::pipeline::is_safe_name;
/// assert!(is_safe_name("ab/abcd/t64-00000000.webp"));
/// assert!(!is_safe_name("ab/../secret"));
/// assert!(!is_safe_name("/etc/passwd"));
/// ```
#[must_use]
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// The encoder quality chosen (`None` when it was already stored: reprocessing
    /// does not encode it again).
    pub quality: Option<u8>,
    /// Its SSIMULACRA2 against the resized source (`None` when already stored, or
    /// made at a fixed quality without a target).
    pub score: Option<f32>,
}

/// A format left out of an image because it did not pay: AVIF whose ladder, at the
/// target score, is not at least [`AVIF_MUST_SAVE`] smaller than the WebP ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The format not made.
    pub format: Format,
    /// What its variants would have weighed, all sizes together.
    pub bytes: usize,
    /// What the WebP variants of the same sizes weigh.
    pub against: usize,
}

/// AVIF is made for an image only when its variants at the target score weigh at
/// most this fraction of the WebP variants' (issue 16: at least 10 % smaller): a
/// browser that takes AVIF pays in decoding time for it, so a saving of a few
/// per cent is not worth the extra files.
pub const AVIF_MUST_SAVE: f64 = 0.9;

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
    /// Formats left out because they did not pay.
    pub skipped: Vec<Skipped>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The parameters that shape a variant's bytes, hashed into its name. With a target
/// the name says the target (and the search's version), not the quality it found:
/// the same source and target always give the same name, so reprocessing finds it.
fn params(format: Format, options: &Options) -> String {
    if let Some(target) = options.target {
        return match format {
            Format::Avif => format!("avif-t{target}-s{}-search1", options.avif_speed),
            Format::WebP => format!("webp-t{target}-search1"),
            Format::Jpeg => format!("jpeg-t{target}-mozjpeg-search1"),
        };
    }
    match format {
        Format::Avif => format!("avif-q{}-s{}", options.avif_quality, options.avif_speed),
        Format::WebP => format!("webp-q{}", options.webp_quality),
        Format::Jpeg => format!("jpeg-q{}-mozjpeg", options.jpeg_quality),
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
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Made {
    /// What was made or found, ladder steps ascending then the thumbnail, per format.
    pub variants: Vec<VariantInfo>,
    /// How many were already stored (reprocessing skips them).
    pub reused: usize,
    /// Formats left out because they did not pay.
    pub skipped: Vec<Skipped>,
    /// Every encoding the target search made, in order, with what it cost: what the
    /// job logs and the image-quality benchmark breaks its time down by.
    pub tries: Vec<Try>,
}

/// One encoding tried by the target search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Try {
    /// Its format.
    pub format: Format,
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// The encoder quality tried.
    pub quality: u8,
    /// What it scored.
    pub score: f64,
    /// Time to encode.
    pub encode: Duration,
    /// Time to decode it again and score it.
    pub judge: Duration,
}

/// How hard the target search tries, per format and image. The smallest size starts
/// from the format's default quality with the most tries (it costs least); each
/// larger one starts from the quality the size before it needed; both step by the
/// score's distance from the target ([`quality::refine`]), because the quality a
/// picture needs moves little from one width to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchBudget {
    /// Lowest quality considered.
    pub floor: u8,
    /// Encodings for the first (smallest) size.
    pub first: usize,
    /// Encodings for each later size.
    pub later: usize,
}

impl Default for SearchBudget {
    fn default() -> Self {
        SearchBudget {
            floor: 20,
            first: 5,
            later: 3,
        }
    }
}

/// Score points per quality step assumed before anything is known: about what
/// libwebp, rav1e and the JPEG encoder give around a score of 80 on photographs
/// (0.4–0.6); the secant replaces it after the second try.
const FIRST_SLOPE: f64 = 0.5;

/// What the search learned on the sizes before, per format.
#[derive(Debug, Clone, Copy)]
struct Learned {
    quality: u8,
    /// Score points per quality step.
    slope: f64,
}

/// Encodes `image` as `format` at the lowest quality found to reach `target` against
/// `reference` (see [`SearchBudget`]); where nothing up to 100 reaches it, the
/// best-scoring encoding tried, with its score.
fn encode_to_target(
    image: &image::RgbaImage,
    format: Format,
    reference: &Reference,
    target: f64,
    learned: &mut Option<Learned>,
    options: &Options,
) -> Result<(Encoded, Vec<Try>), ImageError> {
    let budget = SearchBudget::default();
    // Every try, read between searches for the slope.
    let log: std::cell::RefCell<Vec<Try>> = std::cell::RefCell::default();
    let slope_so_far = || {
        let points: Vec<(u8, f64)> = log.borrow().iter().map(|t| (t.quality, t.score)).collect();
        quality::slope(&points)
    };
    let (w, h) = image.dimensions();
    let speed = variants::avif_speed_for(w, h, options);
    let probe_at = |q: u8, how: How| -> Result<Encoded, ImageError> {
        let start = Instant::now();
        let bytes = match (format, how) {
            (Format::Avif, How::QuickAvif) => variants::encode_avif(image, q, options.avif_speed)?,
            (Format::WebP, How::SharpWebp) => variants::encode_webp(image, q, true)?,
            _ => variants::encode_at(image, format, q, options)?,
        };
        let encoded = Instant::now();
        let score = quality::score(reference, &variants::decode_output(&bytes, format)?)?;
        log.borrow_mut().push(Try {
            format,
            width: image.width(),
            height: image.height(),
            quality: q,
            score,
            encode: encoded - start,
            judge: encoded.elapsed(),
        });
        Ok(Encoded {
            bytes,
            quality: q,
            score,
        })
    };
    let goal = |probes| quality::Goal {
        target,
        floor: budget.floor,
        probes,
        pixels: u64::from(w) * u64::from(h),
    };
    let mut failed = None;
    let found = match *learned {
        // The first AVIF size is small and encoded two speeds slower (2–3× the
        // time): search at the usual speed, then go on from its answer at the slow
        // speed, which scores within a few tenths of it at one quality.
        None if format == Format::Avif && speed < options.avif_speed.clamp(1, 10) => {
            let mut rough_failed = None;
            let rough = quality::refine(
                &goal(budget.first),
                options.quality_of(format),
                FIRST_SLOPE,
                &mut rough_failed,
                |q| probe_at(q, How::QuickAvif),
            )?;
            let start = rough
                .map(|e| e.quality)
                .or(rough_failed.map(|e| e.quality.saturating_add(1)))
                .unwrap_or(100);
            let slope = slope_so_far().unwrap_or(FIRST_SLOPE);
            quality::refine(&goal(budget.later), start, slope, &mut failed, |q| {
                probe_at(q, How::Usual)
            })?
        }
        None => quality::refine(
            &goal(budget.first),
            options.quality_of(format),
            FIRST_SLOPE,
            &mut failed,
            |q| probe_at(q, How::Usual),
        )?,
        Some(before) => quality::refine(
            &goal(budget.later),
            before.quality,
            before.slope,
            &mut failed,
            |q| probe_at(q, How::Usual),
        )?,
    };
    // Not reached within the tries: climb from the best failure, at least two steps a
    // try (a flat stretch of the curve must not eat the tries), and take the first
    // that passes: the target is what must be met, a step saved after this is not
    // worth another encoding.
    let found = match (found, failed.take()) {
        (None, Some(best)) => {
            let slope = learned.map_or(FIRST_SLOPE, |l| l.slope);
            let mut q = best.quality;
            let mut gap = target - best.score;
            failed = Some(best);
            let mut passed = None;
            for _ in 0..=budget.later {
                if q >= 100 {
                    break;
                }
                let step = ((gap + quality::AIM_ABOVE) / slope).ceil().clamp(2.0, 10.0) as u8;
                q = q.saturating_add(step).min(100);
                let e = probe_at(q, How::Usual)?;
                if e.score >= target {
                    passed = Some(e);
                    break;
                }
                gap = target - e.score;
                if failed.as_ref().is_none_or(|b| e.score > b.score) {
                    failed = Some(e);
                }
            }
            passed
        }
        (found, best) => {
            failed = best;
            found
        }
    };
    let chosen = match (found, failed) {
        (Some(e), _) => e,
        (None, Some(best)) if best.quality == 100 => best,
        (None, _) => probe_at(100, How::Usual)?,
    };

    // A slope from so few points is rough; keep the last good one when these say
    // nothing (or something implausible).
    let slope = slope_so_far().or(learned.map(|l| l.slope)).unwrap_or(1.0);
    *learned = Some(Learned {
        quality: chosen.quality,
        slope,
    });

    // Lossy WebP averages chroma when it converts to YUV, which coloured noise (a
    // night sky) cannot afford: where the usual conversion needs quality SHARP_FROM
    // or more, or never reaches the target, libwebp's sharp conversion is searched
    // too and the smaller passing file kept. (It costs bytes on most photographs,
    // so it is not the default.)
    if format == Format::WebP && (chosen.score < target || chosen.quality >= SHARP_FROM) {
        let mut sharp_failed = None;
        let sharp = quality::refine(
            &goal(budget.later + 1),
            chosen.quality.min(SHARP_FROM - 5),
            slope,
            &mut sharp_failed,
            |q| probe_at(q, How::SharpWebp),
        )?;
        if let Some(sharp) = sharp {
            if chosen.score < target || sharp.bytes.len() < chosen.bytes.len() {
                return Ok((sharp, log.into_inner()));
            }
        }
    }
    Ok((chosen, log.into_inner()))
}

/// From this quality up, a WebP is also tried with sharp YUV (see `encode_to_target`).
const SHARP_FROM: u8 = 95;

/// How one try of the search encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// As `variants::encode_at` would.
    Usual,
    /// An AVIF at `Options::avif_speed` even where its size is encoded slower.
    QuickAvif,
    /// A WebP with sharp YUV conversion.
    SharpWebp,
}

/// Makes and stores every size in each of `formats` (a phase: WebP and JPEG first so
/// the image can be shown, AVIF after); variants already stored under their name are
/// not made again. With a target ([`Options::target`]) each variant's quality is
/// searched for, and AVIF is left out ([`Made::skipped`]) unless it saves at least
/// 10 % against the WebP variants in `earlier` (the first phase's).
pub fn make_variants(
    prepared: &Prepared,
    options: &Options,
    formats: &[Format],
    storage: &dyn Storage,
    earlier: &[VariantInfo],
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
    // Smallest first: the search narrows from the cheapest size upwards. The result
    // keeps the ladder-then-thumbnail order.
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| u64::from(sizes[i].1) * u64::from(sizes[i].2));
    let target = options.target.map(f64::from);
    let mut learned: Vec<Option<Learned>> = vec![None; formats.len()];
    // (position in `sizes`, variant, bytes still to store)
    let mut made: Vec<(usize, VariantInfo, Option<Vec<u8>>)> = Vec::new();
    let mut reused = 0;
    let mut tries = Vec::new();
    for &i in &order {
        let (kind, w, h) = sizes[i];
        // Per format: its variant, and whether it still has to be made.
        let mut todo: Vec<(usize, VariantInfo)> = Vec::new();
        for (f, &format) in formats.iter().enumerate() {
            let p = hex(&Sha256::digest(params(format, options).as_bytes())[..4]);
            let tag = match kind {
                Kind::Width => format!("w{w}x{h}"),
                Kind::Thumbnail => format!("t{w}"),
            };
            let name = format!("{}/{source}/{tag}-{p}.{}", &source[..2], format.extension());
            let mut info = VariantInfo {
                path: name,
                format,
                kind,
                width: w,
                height: h,
                bytes: 0,
                quality: None,
                score: None,
            };
            if let Some(stored) = storage.size(&info.path) {
                reused += 1;
                info.bytes = usize::try_from(stored).unwrap_or(usize::MAX);
                made.push((i, info, None));
            } else {
                todo.push((f, info));
            }
        }
        if todo.is_empty() {
            continue;
        }
        let image = match kind {
            Kind::Width => variants::resize(&decoded.pixels, w, h)?,
            Kind::Thumbnail => variants::thumbnail(&decoded.pixels, w)?,
        };
        // The JPEG fallback is judged as shown: on white; the others as they are.
        let on_white = |format: Format| format == Format::Jpeg && decoded.has_alpha;
        let references: [Option<Reference>; 2] = match target {
            None => [None, None],
            Some(_) => [
                todo.iter()
                    .any(|(_, v)| !on_white(v.format))
                    .then(|| Reference::new(&image))
                    .transpose()?,
                todo.iter()
                    .any(|(_, v)| on_white(v.format))
                    .then(|| Reference::new(&variants::flattened(&image)))
                    .transpose()?,
            ],
        };
        // Each format's search depends only on its own sizes before, so the formats
        // of one size are searched side by side (WebP and JPEG: each encoder is
        // single-threaded).
        let mut todo = todo.into_iter().peekable();
        let slots: Vec<(VariantInfo, &mut Option<Learned>)> = learned
            .iter_mut()
            .enumerate()
            .filter_map(|(f, l)| todo.next_if(|(g, _)| *g == f).map(|(_, info)| (info, l)))
            .collect();
        let results = slots
            .into_par_iter()
            .map(|(mut info, learned)| {
                let format = info.format;
                let (encoded, log) = match (target, &references[usize::from(on_white(format))]) {
                    (Some(target), Some(reference)) => {
                        encode_to_target(&image, format, reference, target, learned, options)?
                    }
                    _ => (
                        Encoded {
                            bytes: variants::encode(&image, format, options)?,
                            quality: options.quality_of(format),
                            score: f64::NAN,
                        },
                        Vec::new(),
                    ),
                };
                info.bytes = encoded.bytes.len();
                info.quality = Some(encoded.quality);
                info.score = target.map(|_| (encoded.score * 100.0).round() as f32 / 100.0);
                Ok((info, encoded, log))
            })
            .collect::<Result<Vec<_>, ImageError>>()?;
        for (info, encoded, log) in results {
            tries.extend(log);
            made.push((i, info, Some(encoded.bytes)));
        }
    }
    let mut skipped = Vec::new();
    if target.is_some() && formats.contains(&Format::Avif) {
        let webp: std::collections::HashMap<(Kind, u32, u32), usize> = earlier
            .iter()
            .filter(|v| v.format == Format::WebP)
            .map(|v| ((v.kind, v.width, v.height), v.bytes))
            .collect();
        let (mut avif, mut against) = (0, 0);
        for (_, v, _) in made.iter().filter(|(_, v, _)| v.format == Format::Avif) {
            if let Some(&b) = webp.get(&(v.kind, v.width, v.height)) {
                avif += v.bytes;
                against += b;
            }
        }
        if against > 0 && avif as f64 > against as f64 * AVIF_MUST_SAVE {
            skipped.push(Skipped {
                format: Format::Avif,
                bytes: avif,
                against,
            });
            // Made and judged, never stored: a stored one (an earlier run that found
            // AVIF worth it) is left to the collector.
            made.retain(|(_, v, _)| v.format != Format::Avif);
        }
    }
    made.sort_by_key(|(i, v, _)| (*i, formats.iter().position(|f| *f == v.format)));
    let mut out = Made {
        variants: Vec::with_capacity(made.len()),
        reused,
        skipped,
        tries,
    };
    for (_, info, bytes) in made {
        if let Some(bytes) = bytes {
            storage
                .put(&info.path, &bytes)
                .map_err(|e| ImageError::Encode(format!("storing {}: {e}", info.path)))?;
        }
        out.variants.push(info);
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
    let first = make_variants(
        &prepared,
        options,
        &[Format::WebP, Format::Jpeg],
        storage,
        &[],
    )?;
    let avif = make_variants(
        &prepared,
        options,
        &[Format::Avif],
        storage,
        &first.variants,
    )?;
    let mut variants = first.variants;
    variants.extend(avif.variants);
    Ok(Processed {
        width: prepared.decoded.width(),
        height: prepared.decoded.height(),
        has_alpha: prepared.decoded.has_alpha,
        placeholder: prepared.placeholder,
        variants,
        reused: first.reused + avif.reused,
        skipped: avif.skipped,
    })
}
