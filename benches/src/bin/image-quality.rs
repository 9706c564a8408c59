//! Issue 16's benchmark: our variants, made at a target SSIMULACRA2, against libwebp
//! (`cwebp`) and libjpeg-turbo (`cjpeg`) at equal score, on varied photographs.
//! Prints Markdown for docs/performance.md ("Images at equal perceived quality").
//!
//! Run: `bash scripts/image-quality.sh` (installs the tools when missing), or
//! `cargo run --release -p napiatke-benches --bin image-quality -- [--photos DIR]...
//! [--runs N] [--target SCORE] [--fixed] [--only NAME] [--tries] [--time-only]
//! [--avif-speed N]`
//! (`--fixed`: the fixed qualities of before, scored the same way; `--tries`: every
//! encoding the search made, with its cost, on stderr; `--time-only`: times only,
//! without the comparison against cwebp and cjpeg).
//!
//! How each figure is made:
//! - **Reference**: the decoded original resized to each ladder size with our Lanczos3
//!   ([`variants::resize`]; the thumbnail by [`variants::thumbnail`]), written as PNG.
//!   cwebp and cjpeg encode that PNG, so every encoder starts from equal pixels.
//! - **Score**: SSIMULACRA2 of each decoded output against the reference, by
//!   [`quality::score`] (the `ssimulacra2` crate; transparent images judged on a dark
//!   and a light background, the worse counting; JPEGs against the reference on
//!   white). **SSIM** as a second opinion: mean SSIM of luma over 8×8 windows
//!   (`image_compare::gray_similarity_structure`, `MSSIMSimple`).
//! - **Equal score**: cwebp (`-q Q -m 4`, libwebp's defaults as ours) and cjpeg
//!   (`-quality Q -optimize -progressive`) are run at qualities 30–100 in steps of 5;
//!   their bytes at our variant's score are interpolated (log bytes, linear in score)
//!   between the two qualities around it. A ratio under 1 means ours is smaller at
//!   the same perceived quality. Where the other encoder never reaches our score the
//!   ratio is against its highest quality (marked ≥).
//! - **Time**: [`pipeline::prepare`] then [`pipeline::make_variants`] for WebP+JPEG,
//!   then for AVIF, into a fresh temporary store; median of `--runs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use image::RgbaImage;
use image_compare::Algorithm;
use napiatke_images::pipeline::{self, Kind, LocalStorage, Made, VariantInfo};
use napiatke_images::quality::{self, Reference};
use napiatke_images::variants::{self, Format, Options};
use napiatke_images::Limits;

type Res<T> = Result<T, String>;

struct Args {
    runs: usize,
    photos: Vec<PathBuf>,
    target: Option<f32>,
    fixed: bool,
    only: Option<String>,
    tries: bool,
    time_only: bool,
    avif_speed: Option<u8>,
}

fn args() -> Res<Args> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Args {
        runs: 1,
        photos: Vec::new(),
        target: None,
        fixed: false,
        only: None,
        tries: false,
        time_only: false,
        avif_speed: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--runs" => out.runs = value()?.parse::<usize>().map_err(|e| e.to_string())?.max(1),
            "--photos" => out.photos.push(PathBuf::from(value()?)),
            "--target" => out.target = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "--only" => out.only = Some(value()?),
            "--fixed" => out.fixed = true,
            "--tries" => out.tries = true,
            "--avif-speed" => out.avif_speed = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "--time-only" => out.time_only = true,
            "-h" | "--help" => {
                println!("image-quality [--photos DIR]... [--runs N] [--target SCORE] [--fixed] [--only NAME] [--tries] [--time-only] [--avif-speed N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if out.photos.is_empty() {
        out.photos = vec![
            manifest.join("../../shared/testdata/photos"),
            PathBuf::from("/work/shared/testdata/photos"),
            manifest.join("../testdata/photos"),
        ];
    }
    Ok(out)
}

fn run(cmd: &mut Command) -> Res<Duration> {
    let start = Instant::now();
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(start.elapsed())
}

fn ssim(reference: &RgbaImage, other: &RgbaImage) -> f64 {
    let a = image::DynamicImage::ImageRgba8(reference.clone()).to_luma8();
    let b = image::DynamicImage::ImageRgba8(other.clone()).to_luma8();
    image_compare::gray_similarity_structure(&Algorithm::MSSIMSimple, &a, &b)
        .map(|s| s.score)
        .unwrap_or(f64::NAN)
}

/// One point of another encoder's curve: quality, bytes, score.
type Point = (u8, usize, f64);

/// Bytes the curve needs for `score` (log-linear between the points around it), and
/// whether it never got there (then its best point's bytes).
fn bytes_at(curve: &[Point], score: f64) -> (f64, bool) {
    let mut sorted: Vec<Point> = curve.to_vec();
    sorted.sort_by_key(|p| p.0);
    for pair in sorted.windows(2) {
        let ((_, b0, s0), (_, b1, s1)) = (pair[0], pair[1]);
        if (s0 <= score && score <= s1) || (s1 <= score && score <= s0) {
            let t = if (s1 - s0).abs() < 1e-9 {
                0.0
            } else {
                (score - s0) / (s1 - s0)
            };
            let (l0, l1) = ((b0 as f64).ln(), (b1 as f64).ln());
            return ((l0 + t * (l1 - l0)).exp(), false);
        }
    }
    match sorted.first() {
        Some(&(_, b, s)) if score < s => (b as f64, false),
        _ => (sorted.last().map_or(f64::NAN, |p| p.1 as f64), true),
    }
}

struct Row {
    photo: String,
    size: String,
    format: Format,
    bytes: usize,
    quality: u8,
    score: f64,
    ssim: f64,
    /// Other encoder's bytes at this score, and whether it fell short.
    against: (f64, bool),
    /// libwebp q85 (or cjpeg q85): bytes and score.
    at85: (usize, f64),
}

fn curve(
    reference_png: &Path,
    reference: &Reference,
    out: &Path,
    format: Format,
) -> Res<Vec<Point>> {
    let mut points = Vec::new();
    for q in (30..=100).step_by(5) {
        let file = out.with_extension(format!("q{q}.{}", format.extension()));
        match format {
            Format::WebP => run(Command::new("cwebp")
                .args(["-quiet", "-m", "4", "-q", &q.to_string()])
                .arg(reference_png)
                .arg("-o")
                .arg(&file))?,
            // Debian's cjpeg (libjpeg-turbo 2.1) reads PPM, not PNG.
            _ => run(Command::new("sh").arg("-c").arg(format!(
                "cjpeg -quality {q} -optimize -progressive '{}' > '{}'",
                reference_png.with_extension("ppm").display(),
                file.display()
            )))?,
        };
        let bytes = std::fs::read(&file).map_err(|e| e.to_string())?;
        let decoded = variants::decode_output(&bytes, format).map_err(|e| e.to_string())?;
        let score = quality::score(reference, &decoded).map_err(|e| e.to_string())?;
        points.push((q, bytes.len(), score));
    }
    Ok(points)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Timing {
    decode_fast: Vec<Duration>,
    avif: Vec<Duration>,
}

/// The search's log on stderr: every try, then per format the encodings and time.
fn print_tries(name: &str, made: &Made) {
    let mut per: BTreeMap<String, (usize, Duration, Duration)> = BTreeMap::new();
    for t in &made.tries {
        eprintln!(
            "{name} {:?} {}x{} q{} score {:.2} encode {:.0} ms judge {:.0} ms",
            t.format,
            t.width,
            t.height,
            t.quality,
            t.score,
            t.encode.as_secs_f64() * 1e3,
            t.judge.as_secs_f64() * 1e3
        );
        let e = per.entry(format!("{:?}", t.format)).or_default();
        e.0 += 1;
        e.1 += t.encode;
        e.2 += t.judge;
    }
    for (format, (n, encode, judge)) in per {
        eprintln!(
            "{name} {format}: {n} encodings, encode {:.2} s, judge {:.2} s",
            encode.as_secs_f64(),
            judge.as_secs_f64()
        );
    }
}

fn photo(
    path: &Path,
    args: &Args,
    options: &Options,
    rows: &mut Vec<Row>,
) -> Res<(Timing, Vec<String>)> {
    let runs = args.runs;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let work = std::env::temp_dir().join(format!("napiatke-quality-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let limits = Limits::default();
    let mut timing = Timing {
        decode_fast: Vec::new(),
        avif: Vec::new(),
    };
    let mut kept: Option<(LocalStorage, Made, Made)> = None;
    for i in 0..runs {
        eprintln!("{name}: run {} of {runs}", i + 1);
        let storage = LocalStorage::new(work.join(format!("ours-{i}")));
        let start = Instant::now();
        let prepared = pipeline::prepare(&bytes, &limits).map_err(|e| e.to_string())?;
        let fast = pipeline::make_variants(
            &prepared,
            options,
            &[Format::WebP, Format::Jpeg],
            &storage,
            &[],
        )
        .map_err(|e| e.to_string())?;
        timing.decode_fast.push(start.elapsed());
        let start = Instant::now();
        let avif = pipeline::make_variants(
            &prepared,
            options,
            &[Format::Avif],
            &storage,
            &fast.variants,
        )
        .map_err(|e| e.to_string())?;
        timing.avif.push(start.elapsed());
        if args.tries {
            print_tries(&name, &fast);
            print_tries(&name, &avif);
        }
        if kept.is_none() {
            kept = Some((storage, fast, avif));
        }
    }
    let (storage, fast, avif) = kept.ok_or("no run")?;
    let mut notes = Vec::new();
    if args.time_only {
        let _ = std::fs::remove_dir_all(&work);
        return Ok((timing, notes));
    }
    for s in &avif.skipped {
        notes.push(format!(
            "{name}: AVIF not made: {} B against WebP's {} B ({:.2}x)",
            s.bytes,
            s.against,
            s.bytes as f64 / s.against as f64
        ));
    }
    // The AVIFs of a skipped image were judged but not stored: make them again for
    // the table, at the quality the search would choose, into a store of their own.
    let skipped_avif: Vec<VariantInfo> = if avif.skipped.is_empty() {
        Vec::new()
    } else {
        let scratch = LocalStorage::new(work.join("skipped"));
        let prepared = pipeline::prepare(&bytes, &limits).map_err(|e| e.to_string())?;
        pipeline::make_variants(&prepared, options, &[Format::Avif], &scratch, &[])
            .map_err(|e| e.to_string())?
            .variants
    };
    let decoded = pipeline::prepare(&bytes, &limits)
        .map_err(|e| e.to_string())?
        .decoded;
    let mut curves: BTreeMap<(String, &str), Vec<Point>> = BTreeMap::new();
    let all: Vec<(&VariantInfo, bool)> = fast
        .variants
        .iter()
        .chain(&avif.variants)
        .map(|v| (v, false))
        .chain(skipped_avif.iter().map(|v| (v, true)))
        .collect();
    for (v, was_skipped) in all {
        let size = match v.kind {
            Kind::Width => format!("{}×{}", v.width, v.height),
            Kind::Thumbnail => format!("thumb {}", v.width),
        };
        let reference_image = match v.kind {
            Kind::Width => variants::resize(&decoded.pixels, v.width, v.height),
            Kind::Thumbnail => variants::thumbnail(&decoded.pixels, v.width),
        }
        .map_err(|e| e.to_string())?;
        let judged = if v.format == Format::Jpeg {
            variants::flattened(&reference_image)
        } else {
            reference_image.clone()
        };
        let reference = Reference::new(&judged).map_err(|e| e.to_string())?;
        let file = if was_skipped {
            work.join("skipped").join(&v.path)
        } else {
            storage.path(&v.path).ok_or("bad path")?
        };
        let ours = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let shown = variants::decode_output(&ours, v.format).map_err(|e| e.to_string())?;
        let score = quality::score(&reference, &shown).map_err(|e| e.to_string())?;
        // cwebp for WebP and AVIF, cjpeg for the JPEG fallback.
        let other = if v.format == Format::Jpeg {
            Format::Jpeg
        } else {
            Format::WebP
        };
        let key = (size.clone(), other.extension());
        if !curves.contains_key(&key) {
            let png = work.join(format!("ref-{}x{}-{:?}.png", v.width, v.height, v.kind));
            judged.save(&png).map_err(|e| e.to_string())?;
            let mut ppm = format!("P6\n{} {}\n255\n", judged.width(), judged.height()).into_bytes();
            ppm.extend(judged.pixels().flat_map(|p| [p.0[0], p.0[1], p.0[2]]));
            std::fs::write(png.with_extension("ppm"), ppm).map_err(|e| e.to_string())?;
            let points = curve(&png, &reference, &png, other)?;
            curves.insert(key.clone(), points);
        }
        let points = &curves[&key];
        let at85 = points
            .iter()
            .find(|p| p.0 == 85)
            .map_or((0, f64::NAN), |p| (p.1, p.2));
        rows.push(Row {
            photo: if was_skipped {
                format!("{name} (not served)")
            } else {
                name.clone()
            },
            size,
            format: v.format,
            bytes: ours.len(),
            quality: v.quality.unwrap_or(0),
            score,
            ssim: ssim(&judged, &shown),
            against: bytes_at(points, score),
            at85,
        });
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok((timing, notes))
}

fn photos(args: &Args) -> Vec<PathBuf> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for dir in &args.photos {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    ["jpg", "jpeg", "png", "webp"].contains(&e.to_ascii_lowercase().as_str())
                })
            })
            .collect();
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if args
                .only
                .as_ref()
                .is_some_and(|o| !name.contains(o.as_str()))
            {
                continue;
            }
            if seen.insert(name) {
                out.push(f);
            }
        }
    }
    out
}

fn main() -> Res<()> {
    let args = args()?;
    let mut options = Options::default();
    if let Some(t) = args.target {
        options.target = Some(t);
    }
    if let Some(speed) = args.avif_speed {
        options.avif_speed = speed;
    }
    if args.fixed {
        // The design before issue 16, for comparison: one quality per format.
        options.target = None;
    }
    let target = f64::from(options.target.unwrap_or(0.0));
    let list = photos(&args);
    if list.is_empty() {
        return Err("no photographs found (--photos DIR)".into());
    }
    let mut rows = Vec::new();
    let mut times = Vec::new();
    let mut notes = Vec::new();
    for path in &list {
        let (t, n) = photo(path, &args, &options, &mut rows)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (w, h) = image::image_dimensions(path).map_err(|e| e.to_string())?;
        times.push((name, w, h, t));
        notes.extend(n);
    }
    let mut md = String::new();
    let _ = writeln!(md, "Target SSIMULACRA2 {target}; ratios are bytes at equal score (cwebp for WebP and AVIF, cjpeg for JPEG).\n");
    let _ = writeln!(md, "| photo | size | format | quality | bytes | SSIMULACRA2 | SSIM | other at equal score | ours / other | other q85: bytes (score) |");
    let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        let (against, short) = r.against;
        let _ = writeln!(
            md,
            "| {} | {} | {:?} | {} | {} | {:.2} | {:.4} | {}{:.0} | {}{:.3} | {} ({:.2}) |",
            r.photo,
            r.size,
            r.format,
            r.quality,
            r.bytes,
            r.score,
            r.ssim,
            if short { "≤" } else { "" },
            against,
            if short { "≥" } else { "" },
            r.bytes as f64 / against,
            r.at85.0,
            r.at85.1
        );
    }
    let _ = writeln!(md, "\nPer photograph, medians over its sizes (ours / other at equal score), lowest score, time (median of runs):\n");
    let _ = writeln!(md, "| photo | source | WebP / cwebp | AVIF / cwebp | JPEG / cjpeg | lowest score | decode + WebP + JPEG | AVIF | total |");
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut per_format: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (name, w, h, t) in &times {
        let mine: Vec<&Row> = rows
            .iter()
            .filter(|r| r.photo.starts_with(name.as_str()))
            .collect();
        let ratio = |f: Format| {
            median(
                mine.iter()
                    .filter(|r| r.format == f)
                    .map(|r| r.bytes as f64 / r.against.0)
                    .collect(),
            )
        };
        let (webp, avif, jpeg) = (
            ratio(Format::WebP),
            ratio(Format::Avif),
            ratio(Format::Jpeg),
        );
        per_format.entry("WebP".into()).or_default().push(webp);
        per_format.entry("AVIF".into()).or_default().push(avif);
        per_format.entry("JPEG".into()).or_default().push(jpeg);
        let lowest = mine
            .iter()
            .filter(|r| !r.photo.contains("not served"))
            .map(|r| r.score)
            .fold(f64::INFINITY, f64::min);
        let secs = |v: &Vec<Duration>| median(v.iter().map(Duration::as_secs_f64).collect());
        let (fast, avif_t) = (secs(&t.decode_fast), secs(&t.avif));
        let served = if rows
            .iter()
            .any(|r| r.photo == format!("{name} (not served)"))
        {
            " (not served)"
        } else {
            ""
        };
        let _ = writeln!(
            md,
            "| {name} | {w}×{h} | {webp:.3} | {avif:.3}{served} | {jpeg:.3} | {lowest:.2} | {fast:.2} s | {avif_t:.2} s | {:.2} s |",
            fast + avif_t
        );
    }
    let _ = writeln!(
        md,
        "| **median of photographs** | | {:.3} | {:.3} | {:.3} | | | | |",
        median(per_format["WebP"].clone()),
        median(per_format["AVIF"].clone()),
        median(per_format["JPEG"].clone())
    );
    if !notes.is_empty() {
        let _ = writeln!(md);
        for n in notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    println!("{md}");
    Ok(())
}
