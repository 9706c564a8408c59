//! Our image variants against Debian's libvips (`vips thumbnail`), libwebp (`cwebp`)
//! and libavif (`avifenc`) on real photographs, in one run: bytes, SSIM against a
//! Lanczos3 resize of the original, and the time to make the whole ladder. Prints
//! Markdown for docs/performance.md ("Images").
//!
//! Run: `bash scripts/image-bench.sh` (installs the tools when missing), or
//! `cargo run --release -p napiatke-benches --bin image-compare -- [--runs N]
//! [--photos DIR] [--work DIR]`.
//!
//! How each figure is made:
//! - **Reference**: the decoded original resized to each ladder size with
//!   [`variants::resize`] (Lanczos3, fast_image_resize), written as an RGB PNG. cwebp
//!   and avifenc encode that PNG, so encoders are compared on equal pixels; vips
//!   resizes the original JPEG itself (its own shrink-on-load and Lanczos3), as it
//!   would in production.
//! - **SSIM**: every output is decoded (AVIF through `avifdec -d 8`) and compared
//!   with the reference on luma (`image::DynamicImage::to_luma8`, BT.709 weights on
//!   sRGB values) by `image_compare::gray_similarity_structure` with
//!   `Algorithm::MSSIMSimple`: mean SSIM over 8×8 windows, 1 = identical.
//! - **Ours**: [`pipeline::prepare`] then [`pipeline::make_variants`] into a fresh
//!   temporary [`LocalStorage`]: the WebP+JPEG phase (decode included: what an
//!   upload waits for) timed apart from the AVIF phase that follows it.
//! - **vips**: one `vips thumbnail SRC OUT[Q=85,strip] W --height H` per size and
//!   format (JPEG: `[Q=85,interlace,optimize_coding,strip]`, as ours is progressive
//!   with optimised Huffman tables), plus the 300-px centre-cropped thumbnail, run one
//!   after another: the same ladder as ours, process start-up included. libvips
//!   8.14.1 keeps the source's EXIF in WebP despite `strip`: its WebP bytes are
//!   counted after `webpmux -strip exif` (and xmp, icc); pixels are untouched.
//! - **avifenc**: `-s {speed} -j 2 -d 10 -y 444 --min Q --max Q` with Q ravif's
//!   quantizer for our quality scaled to 0–63 (ravif encodes 10-bit 4:4:4), through
//!   aom (avifenc's default) and rav1e; timed over the same PNGs (ladder and
//!   thumbnail), resizing excluded. Every size at our `avif_speed` (ours drops two
//!   steps below 120,000 pixels).
//! - Times are medians of `--runs` runs (default 3), tools interleaved per run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use image::{DynamicImage, GrayImage, ImageReader};
use image_compare::Algorithm;
use napiatke_images::pipeline::{self, Kind, LocalStorage, Made, Prepared};
use napiatke_images::variants::{self, Format, Options};
use napiatke_images::Limits;

type Res<T> = Result<T, String>;

struct Args {
    runs: usize,
    photos: PathBuf,
    work: PathBuf,
    keep: bool,
}

fn args() -> Res<Args> {
    let mut out = Args {
        runs: 3,
        photos: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/photos"),
        work: std::env::temp_dir().join(format!("napiatke-image-compare-{}", std::process::id())),
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--runs" => {
                out.runs = value()?
                    .parse::<usize>()
                    .map_err(|e| format!("--runs: {e}"))?
                    .max(1);
            }
            "--photos" => out.photos = PathBuf::from(value()?),
            "--work" => {
                out.work = PathBuf::from(value()?);
                out.keep = true;
            }
            "--keep" => out.keep = true,
            "-h" | "--help" => {
                println!("image-compare [--runs N] [--photos DIR] [--work DIR] [--keep]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    Ok(out)
}

/// Runs a command to completion; its wall time, or why it failed.
fn run(cmd: &mut Command) -> Res<Duration> {
    let start = Instant::now();
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let took = start.elapsed();
    if out.status.success() {
        Ok(took)
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn size_of(path: &Path) -> Res<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn open(path: &Path) -> Res<DynamicImage> {
    ImageReader::open(path)
        .and_then(ImageReader::with_guessed_format)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .decode()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Decodes `path` (AVIF through avifdec) to luma.
fn luma(path: &Path) -> Res<GrayImage> {
    if path.extension().is_some_and(|e| e == "avif") {
        let png = path.with_extension("avif.png");
        run(Command::new("avifdec")
            .arg("-d")
            .arg("8")
            .arg(path)
            .arg(&png))?;
        Ok(open(&png)?.to_luma8())
    } else {
        Ok(open(path)?.to_luma8())
    }
}

/// A copy of a WebP file without its EXIF, XMP and ICC chunks (libvips 8.14.1's
/// webpsave writes the source's EXIF despite `strip`; up to 36 KB here), so bytes
/// compare pixels with pixels.
fn webp_without_metadata(path: &Path) -> Res<PathBuf> {
    let out = path.with_extension("stripped.webp");
    std::fs::copy(path, &out).map_err(|e| format!("{}: {e}", path.display()))?;
    for chunk in ["exif", "xmp", "icc"] {
        // webpmux fails when there is no such chunk: then there is nothing to strip.
        let _ = run(Command::new("webpmux")
            .args(["-strip", chunk])
            .arg(&out)
            .arg("-o")
            .arg(&out));
    }
    Ok(out)
}

/// SSIM of `path` against the reference luma.
fn ssim(reference: &GrayImage, path: &Path) -> Res<f64> {
    let got = luma(path)?;
    if got.dimensions() != reference.dimensions() {
        return Err(format!(
            "{} is {:?}, the reference {:?}",
            path.display(),
            got.dimensions(),
            reference.dimensions()
        ));
    }
    image_compare::gray_similarity_structure(&Algorithm::MSSIMSimple, reference, &got)
        .map(|s| s.score)
        .map_err(|e| format!("ssim {}: {e}", path.display()))
}

/// ravif's quality → quantizer (0–255), as ravif 0.13 computes it.
fn ravif_quantizer(quality: f32) -> f32 {
    let q = quality / 100.0;
    let x = if q >= 0.82 {
        (1.0 - q) * 2.6
    } else if q > 0.25 {
        q.mul_add(-0.5, 1.0 - 0.125)
    } else {
        1.0 - q
    };
    (x * 255.0).round()
}

/// One size of the ladder (or the thumbnail) and its files.
struct Step {
    kind: Kind,
    width: u32,
    height: u32,
    /// The reference resize, as PNG (what cwebp and avifenc read).
    png: PathBuf,
    /// Its luma, for SSIM.
    luma: GrayImage,
    stem: String,
}

struct Timing {
    prepare: Vec<Duration>,
    ours_fast: Vec<Duration>,
    vips: Vec<Duration>,
    /// The same ladder less `vips`'s own start-up (`vips --version`, once per file).
    vips_bare: Vec<Duration>,
    ours_avif: Vec<Duration>,
    cwebp: Vec<Duration>,
    aom: Vec<Duration>,
    rav1e: Vec<Duration>,
}

#[derive(Default)]
struct Row {
    photo: String,
    width: u32,
    height: u32,
    ours_webp: (u64, f64),
    cwebp: (u64, f64),
    vips_webp: (u64, f64),
    ours_avif: (u64, f64),
    aom: (u64, f64),
    ours_jpeg: (u64, f64),
    vips_jpeg: (u64, f64),
}

struct PhotoResult {
    name: String,
    source: (u32, u32),
    original_bytes: u64,
    rows: Vec<Row>,
    timing: Timing,
    /// (width, our AVIF bytes, our WebP bytes) of what a 1280-px viewport loads.
    viewport: (u32, u64, u64),
}

fn stored(storage: &LocalStorage, made: &Made, step: &Step, format: Format) -> Res<PathBuf> {
    made.variants
        .iter()
        .find(|v| {
            v.kind == step.kind
                && v.width == step.width
                && v.height == step.height
                && v.format == format
        })
        .and_then(|v| storage.path(&v.path))
        .ok_or_else(|| {
            format!(
                "no {} variant {}x{}",
                format.name(),
                step.width,
                step.height
            )
        })
}

fn vips_ladder(src: &Path, dir: &Path, steps: &[Step], options: &Options) -> Res<Duration> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut took = Duration::ZERO;
    for step in steps {
        for (ext, save) in [
            ("webp", format!("[Q={},strip]", options.webp_quality)),
            (
                "jpg",
                format!(
                    "[Q={},interlace,optimize_coding,strip]",
                    options.jpeg_quality
                ),
            ),
        ] {
            let out = dir.join(format!("{}.{ext}{save}", step.stem));
            let mut cmd = Command::new("vips");
            cmd.arg("thumbnail")
                .arg(src)
                .arg(out)
                .arg(step.width.to_string())
                .arg("--height")
                .arg(step.height.to_string());
            if step.kind == Kind::Thumbnail {
                cmd.arg("--crop").arg("centre");
            }
            took += run(&mut cmd)?;
        }
    }
    Ok(took)
}

/// Encodes every step's PNG with `tool` into `dir`; the total time.
fn encode_all(
    steps: &[Step],
    dir: &Path,
    ext: &str,
    command: impl Fn(&Path, &Path) -> Command,
) -> Res<Duration> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut took = Duration::ZERO;
    for step in steps {
        let out = dir.join(format!("{}.{ext}", step.stem));
        took += run(&mut command(&step.png, &out))?;
    }
    Ok(took)
}

fn photo(path: &Path, args: &Args, options: &Options) -> Res<PhotoResult> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let work = args.work.join(name.replace('.', "_"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let limits = Limits::default();
    let prepared = pipeline::prepare(&bytes, &limits).map_err(|e| e.to_string())?;
    let pixels = &prepared.decoded.pixels;
    let (w, h) = pixels.dimensions();

    // The references: each ladder size and the thumbnail, by our Lanczos3.
    let mut steps = Vec::new();
    let ladder = variants::ladder(w, h, options);
    let side = options.thumbnail.min(w).min(h).max(1);
    let sizes = ladder
        .iter()
        .map(|&(lw, lh)| (Kind::Width, lw, lh))
        .chain([(Kind::Thumbnail, side, side)]);
    for (kind, sw, sh) in sizes {
        let resized = match kind {
            Kind::Width => variants::resize(pixels, sw, sh),
            Kind::Thumbnail => variants::thumbnail(pixels, sw),
        }
        .map_err(|e| e.to_string())?;
        let stem = match kind {
            Kind::Width => format!("w{sw}"),
            Kind::Thumbnail => format!("t{sw}"),
        };
        let image = DynamicImage::ImageRgba8(resized);
        let png = work.join(format!("ref-{stem}.png"));
        let luma = image.to_luma8();
        let save = if prepared.decoded.has_alpha {
            image.save(&png)
        } else {
            DynamicImage::ImageRgb8(image.to_rgb8()).save(&png)
        };
        save.map_err(|e| format!("{}: {e}", png.display()))?;
        steps.push(Step {
            kind,
            width: sw,
            height: sh,
            png,
            luma,
            stem,
        });
    }

    let q63 = (ravif_quantizer(options.avif_quality) * 63.0 / 255.0).round();
    let avifenc = |codec: &'static str| {
        let speed = options.avif_speed.to_string();
        let q = format!("{q63}");
        move |png: &Path, out: &Path| {
            let mut c = Command::new("avifenc");
            c.args([
                "-c", codec, "-s", &speed, "-j", "2", "-d", "10", "-y", "444",
            ])
            .args(["--min", &q, "--max", &q])
            .arg(png)
            .arg(out);
            c
        }
    };
    let quality = format!("{}", options.webp_quality);
    let cwebp = |png: &Path, out: &Path| {
        let mut c = Command::new("cwebp");
        c.args(["-quiet", "-q", &quality])
            .arg(png)
            .arg("-o")
            .arg(out);
        c
    };

    let mut timing = Timing {
        prepare: Vec::new(),
        ours_fast: Vec::new(),
        vips: Vec::new(),
        vips_bare: Vec::new(),
        ours_avif: Vec::new(),
        cwebp: Vec::new(),
        aom: Vec::new(),
        rav1e: Vec::new(),
    };
    let mut first: Option<(LocalStorage, Made, Made)> = None;
    for i in 0..args.runs {
        eprintln!("{name}: run {} of {}", i + 1, args.runs);
        let root = work.join(format!("ours-{i}"));
        let storage = LocalStorage::new(&root);
        // The WebP+JPEG phase, as an upload waits for it: decode, placeholder,
        // every size in both formats, stored.
        let start = Instant::now();
        let fresh: Prepared = pipeline::prepare(&bytes, &limits).map_err(|e| e.to_string())?;
        let prepared_in = start.elapsed();
        let fast = pipeline::make_variants(
            &fresh,
            options,
            &[Format::WebP, Format::Jpeg],
            &storage,
            &[],
        )
        .map_err(|e| e.to_string())?;
        timing.ours_fast.push(start.elapsed());
        timing.prepare.push(prepared_in);

        let vips = vips_ladder(path, &work.join(format!("vips-{i}")), &steps, options)?;
        let mut start_up = Duration::ZERO;
        for _ in 0..steps.len() * 2 {
            start_up += run(Command::new("vips").arg("--version"))?;
        }
        timing.vips.push(vips);
        timing.vips_bare.push(vips.saturating_sub(start_up));

        let start = Instant::now();
        let avif = pipeline::make_variants(&fresh, options, &[Format::Avif], &storage, &[])
            .map_err(|e| e.to_string())?;
        timing.ours_avif.push(start.elapsed());

        timing
            .cwebp
            .push(encode_all(&steps, &work.join("cwebp"), "webp", cwebp)?);
        timing.aom.push(encode_all(
            &steps,
            &work.join("avifenc-aom"),
            "avif",
            avifenc("aom"),
        )?);
        timing.rav1e.push(encode_all(
            &steps,
            &work.join("avifenc-rav1e"),
            "avif",
            avifenc("rav1e"),
        )?);
        if first.is_none() {
            first = Some((storage, fast, avif));
        }
    }
    let (storage, fast, avif) = first.ok_or("no run")?;

    eprintln!("{name}: measuring SSIM");
    let mut rows = Vec::new();
    for step in steps.iter().filter(|s| s.kind == Kind::Width) {
        let measure = |p: PathBuf| -> Res<(u64, f64)> { Ok((size_of(&p)?, ssim(&step.luma, &p)?)) };
        let vips = work.join("vips-0");
        rows.push(Row {
            photo: name.clone(),
            width: step.width,
            height: step.height,
            ours_webp: measure(stored(&storage, &fast, step, Format::WebP)?)?,
            cwebp: measure(work.join("cwebp").join(format!("{}.webp", step.stem)))?,
            vips_webp: measure(webp_without_metadata(
                &vips.join(format!("{}.webp", step.stem)),
            )?)?,
            ours_avif: measure(stored(&storage, &avif, step, Format::Avif)?)?,
            aom: measure(work.join("avifenc-aom").join(format!("{}.avif", step.stem)))?,
            ours_jpeg: measure(stored(&storage, &fast, step, Format::Jpeg)?)?,
            vips_jpeg: measure(vips.join(format!("{}.jpg", step.stem)))?,
        });
    }
    // What a browser with a 1280-px viewport (1x) picks from srcset with sizes=100vw:
    // the narrowest width at least 1280, else the widest there is.
    let view = rows
        .iter()
        .find(|r| r.width >= 1280)
        .or_else(|| rows.last())
        .map(|r| (r.width, r.ours_avif.0, r.ours_webp.0))
        .unwrap_or_default();
    if !args.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(PhotoResult {
        name,
        source: (w, h),
        original_bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        rows,
        timing,
        viewport: view,
    })
}

fn cell((bytes, ssim): (u64, f64)) -> String {
    format!("{} ({ssim:.4})", thousands(bytes))
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}

/// The first line a tool prints about its version.
fn version(tool: &str, flag: &str) -> String {
    Command::new(tool)
        .arg(flag)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn report(results: &[PhotoResult], options: &Options, runs: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Tools: {}; cwebp {}; avifenc {}. {} cores.\n",
        version("vips", "--version"),
        version("cwebp", "-version"),
        version("avifenc", "--version").trim_start_matches("Version: "),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
    );
    let q63 = (ravif_quantizer(options.avif_quality) * 63.0 / 255.0).round();
    let _ = writeln!(
        s,
        "Bytes (SSIM against the Lanczos3 reference; luma, 8×8 windows). Ours: WebP q{}, \
         AVIF q{} speed {} (ravif/rav1e), JPEG q{}; cwebp -q {}; vips thumbnail webpsave \
         Q={}; avifenc (aom) -s {} -d 10 -y 444 --min/--max {q63}.\n",
        options.webp_quality,
        options.avif_quality,
        options.avif_speed,
        options.jpeg_quality,
        options.webp_quality,
        options.webp_quality,
        options.avif_speed,
    );
    s.push_str(
        "| photo | size | ours WebP | cwebp | vips WebP | ours AVIF | avifenc (aom) | ours WebP / cwebp | ours AVIF / cwebp (ΔSSIM) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results.iter().flat_map(|p| &p.rows) {
        let _ = writeln!(
            s,
            "| {} | {}×{} | {} | {} | {} | {} | {} | {:.3} | {:.3} ({:+.4}) |",
            r.photo,
            r.width,
            r.height,
            cell(r.ours_webp),
            cell(r.cwebp),
            cell(r.vips_webp),
            cell(r.ours_avif),
            cell(r.aom),
            ratio(r.ours_webp.0, r.cwebp.0),
            ratio(r.ours_avif.0, r.cwebp.0),
            r.ours_avif.1 - r.cwebp.1,
        );
    }
    s.push_str("\nJPEG fallback, same measure:\n\n| photo | size | ours JPEG | vips JPEG | ours / vips |\n|---|---|---|---|---|\n");
    for r in results.iter().flat_map(|p| &p.rows) {
        let _ = writeln!(
            s,
            "| {} | {}×{} | {} | {} | {:.3} |",
            r.photo,
            r.width,
            r.height,
            cell(r.ours_jpeg),
            cell(r.vips_jpeg),
            ratio(r.ours_jpeg.0, r.vips_jpeg.0),
        );
    }
    let _ = writeln!(
        s,
        "\nTimes, medians of {runs} runs. WebP+JPEG ladder: every width and the 300-px \
         thumbnail in both formats (ours: decode + placeholder + resize + encode + store; \
         vips: one `vips thumbnail` per file; \"less start-up\" takes off one `vips \
         --version` per file, the cost of starting the process). AVIF: ours the AVIF \
         phase (resize + encode + store), avifenc encoding the same reference PNGs.\n"
    );
    s.push_str(
        "| photo | source | ours decode+placeholder | ours WebP+JPEG ladder | vips WebP+JPEG ladder | vips less start-up | ours / vips (less start-up) | ours AVIF ladder | avifenc aom ladder | avifenc rav1e ladder | cwebp ladder |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for p in results {
        let t = &p.timing;
        let (fast, vips) = (median(t.ours_fast.clone()), median(t.vips.clone()));
        let bare = median(t.vips_bare.clone());
        let _ = writeln!(
            s,
            "| {} | {}×{} | {} | {} | {} | {} | {:.2}x ({:.2}x) | {} | {} | {} | {} |",
            p.name,
            p.source.0,
            p.source.1,
            secs(median(t.prepare.clone())),
            secs(fast),
            secs(vips),
            secs(bare),
            fast.as_secs_f64() / vips.as_secs_f64().max(1e-9),
            fast.as_secs_f64() / bare.as_secs_f64().max(1e-9),
            secs(median(t.ours_avif.clone())),
            secs(median(t.aom.clone())),
            secs(median(t.rav1e.clone())),
            secs(median(t.cwebp.clone())),
        );
    }
    s.push_str(
        "\nA 1280-px viewport (srcset, sizes=100vw, 1x): the narrowest variant at least 1280 \
         wide.\n\n| photo | original upload | AVIF it loads | saved | WebP it loads | saved |\n\
         |---|---|---|---|---|---|\n",
    );
    for p in results {
        let (vw, avif, webp) = p.viewport;
        let _ = writeln!(
            s,
            "| {} | {} | {} (w{vw}) | {:.1} % | {} | {:.1} % |",
            p.name,
            thousands(p.original_bytes),
            thousands(avif),
            100.0 * (1.0 - ratio(avif, p.original_bytes)),
            thousands(webp),
            100.0 * (1.0 - ratio(webp, p.original_bytes)),
        );
    }

    // The targets.
    let rows: Vec<&Row> = results.iter().flat_map(|p| &p.rows).collect();
    let n = rows.len();
    let sum = |f: &dyn Fn(&Row) -> u64| rows.iter().map(|r| f(r)).sum::<u64>();
    let webp_ok = rows
        .iter()
        .filter(|r| r.ours_webp.0 <= r.cwebp.0 && r.ours_webp.1 >= r.cwebp.1)
        .count();
    // The worst size of one of ours against cwebp: (byte ratio, SSIM difference).
    let worst = |ours: fn(&Row) -> (u64, f64)| {
        rows.iter().fold((0.0_f64, f64::INFINITY), |(r, d), row| {
            let (bytes, ssim) = ours(row);
            (r.max(ratio(bytes, row.cwebp.0)), d.min(ssim - row.cwebp.1))
        })
    };
    let (worst_webp, worst_webp_ssim) = worst(|r| r.ours_webp);
    let avif_ok = rows
        .iter()
        .filter(|r| ratio(r.ours_avif.0, r.cwebp.0) <= 0.70 && r.ours_avif.1 >= r.cwebp.1 - 0.005)
        .count();
    let (worst_avif, worst_avif_ssim) = worst(|r| r.ours_avif);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let _ = writeln!(s, "\nTargets:\n");
    let _ = writeln!(
        s,
        "- WebP no larger than cwebp -q 85 at equal or better SSIM: {}, {webp_ok} of {n} sizes pass \
         (all bytes {:.3}x cwebp's; worst size {worst_webp:.3}x; worst SSIM difference {worst_webp_ssim:+.4}).",
        verdict(webp_ok == n),
        ratio(sum(&|r| r.ours_webp.0), sum(&|r| r.cwebp.0)),
    );
    let _ = writeln!(
        s,
        "- AVIF at least 30 % fewer bytes than cwebp -q 85, SSIM at most 0.005 below: {}, \
         {avif_ok} of {n} sizes pass (all bytes {:.3}x cwebp's, {:.1} % fewer; worst size {worst_avif:.3}x; \
         worst SSIM difference {worst_avif_ssim:+.4}).",
        verdict(avif_ok == n),
        ratio(sum(&|r| r.ours_avif.0), sum(&|r| r.cwebp.0)),
        100.0 * (1.0 - ratio(sum(&|r| r.ours_avif.0), sum(&|r| r.cwebp.0))),
    );
    let view_ok = results
        .iter()
        .filter(|p| ratio(p.viewport.1, p.original_bytes) <= 0.25)
        .count();
    let best_view = results
        .iter()
        .map(|p| 1.0 - ratio(p.viewport.1, p.original_bytes))
        .fold(f64::INFINITY, f64::min);
    let _ = writeln!(
        s,
        "- A 1280-px viewport downloads at least 75 % fewer bytes than the upload: {}, \
         {view_ok} of {} photos pass (least saving {:.1} %).",
        verdict(view_ok == results.len()),
        results.len(),
        100.0 * best_view,
    );
    // Judged against vips less its start-up, the stricter comparison.
    let ratios = |vips: &dyn Fn(&Timing) -> Duration| -> Vec<f64> {
        results
            .iter()
            .map(|p| {
                median(p.timing.ours_fast.clone()).as_secs_f64()
                    / vips(&p.timing).as_secs_f64().max(1e-9)
            })
            .collect()
    };
    let bare = ratios(&|t| median(t.vips_bare.clone()));
    let whole = ratios(&|t| median(t.vips.clone()));
    let time_ok = bare.iter().filter(|&&r| r <= 1.5).count();
    let worst = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let _ = writeln!(
        s,
        "- WebP+JPEG ladder within 1.5x libvips's time: {}, {time_ok} of {} photos pass (worst \
         {:.2}x vips less start-up, {:.2}x vips as run).",
        verdict(time_ok == results.len()),
        results.len(),
        worst(&bare),
        worst(&whole),
    );
    s
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("image-compare: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Res<()> {
    let args = args()?;
    let mut photos: Vec<PathBuf> = match std::fs::read_dir(&args.photos) {
        Ok(dir) => dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg")
                })
            })
            .collect(),
        Err(e) => {
            eprintln!("skipping: no photos at {} ({e})", args.photos.display());
            return Ok(());
        }
    };
    photos.sort();
    for (tool, flag) in [
        ("vips", "--version"),
        ("cwebp", "-version"),
        ("avifenc", "--version"),
        ("avifdec", "--version"),
        ("webpmux", "-version"),
    ] {
        if Command::new(tool).arg(flag).output().is_err() {
            eprintln!("skipping: {tool} not found (bash scripts/image-bench.sh installs it)");
            return Ok(());
        }
    }
    // The fixed qualities this table was made for (issue 8); `image-quality` measures
    // the target-quality search that replaced them (issue 16).
    let options = Options {
        target: None,
        ..Options::default()
    };
    let mut results = Vec::new();
    for p in &photos {
        results.push(photo(p, &args, &options)?);
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&args.work);
    } else {
        eprintln!("outputs kept in {}", args.work.display());
    }
    print!("{}", report(&results, &options, args.runs));
    Ok(())
}
