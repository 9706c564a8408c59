//! Target-quality encoding (issue 16): every variant reaches the target score on every
//! test photograph, judged again here from the stored files (the recorded scores are
//! not taken on trust); AVIF is left out where it does not save; reprocessing with the
//! same target makes nothing, with another target makes new names.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod photos;

use image::{Rgba, RgbaImage};
use napiatke_images::pipeline::{self, Kind, LocalStorage, Processed, Storage};
use napiatke_images::quality::{self, Reference};
use napiatke_images::variants::{self, Format, Options};
use napiatke_images::Limits;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("napiatke-quality-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Photographs shrunk to at most 640 px across (their content kept: a test run of the
/// full ladder of eight photographs would take minutes), as PNG.
fn shrunk(path: &std::path::Path) -> Vec<u8> {
    let img = image::open(path).unwrap();
    let img = if img.width() > 640 {
        img.resize(
            640,
            640 * img.height() / img.width(),
            image::imageops::FilterType::Triangle,
        )
    } else {
        img
    };
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// The target, at AVIF's fastest speed (the search checks whatever the speed).
fn options(target: f32) -> Options {
    Options {
        avif_speed: 10,
        target: Some(target),
        ..Options::default()
    }
}

/// Scores every stored variant of `made` again, from its file, against `source`.
fn rescore(source: &RgbaImage, made: &Processed, storage: &LocalStorage) -> Vec<(String, f64)> {
    made.variants
        .iter()
        .map(|v| {
            let resized = match v.kind {
                Kind::Width => variants::resize(source, v.width, v.height).unwrap(),
                Kind::Thumbnail => variants::thumbnail(source, v.width).unwrap(),
            };
            let judged = if v.format == Format::Jpeg {
                variants::flattened(&resized)
            } else {
                resized
            };
            let bytes = storage.get(&v.path).unwrap();
            let shown = variants::decode_output(&bytes, v.format).unwrap();
            let s = quality::score(&Reference::new(&judged).unwrap(), &shown).unwrap();
            (v.path.clone(), s)
        })
        .collect()
}

#[test]
fn every_variant_reaches_the_target_on_every_test_photograph() {
    let all = photos::all();
    assert!(
        all.len() >= 5,
        "the shipped photographs are missing: {:?}",
        photos::shipped()
    );
    let target = 80.0;
    for path in all {
        let dir = scratch(&format!(
            "target-{}",
            path.file_stem().unwrap().to_string_lossy()
        ));
        let storage = LocalStorage::new(&dir);
        let bytes = shrunk(&path);
        let made = pipeline::process(&bytes, &Limits::default(), &options(target), &storage)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let source = napiatke_images::decode(&bytes, &Limits::default())
            .unwrap()
            .pixels;
        assert!(
            made.variants.len() >= 4,
            "{}: {:?}",
            path.display(),
            made.variants
        );
        for ((name, score), v) in rescore(&source, &made, &storage).iter().zip(&made.variants) {
            assert!(
                *score >= f64::from(target) - 0.01,
                "{}: {name} scores {score:.2}, under the target {target}",
                path.display()
            );
            let recorded = f64::from(v.score.unwrap());
            assert!(
                (recorded - score).abs() < 0.02,
                "{name}: recorded {recorded}, scored again {score}"
            );
            assert!(v.quality.is_some_and(|q| (1..=100).contains(&q)));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Sharp-edged flat colour: what AV1's transforms handle worst and WebP's predictors
/// well (found with the image-quality bench). Text-like strokes on white.
/// The deep field's coloured noise at 960 px: lossy WebP with its usual chroma
/// averaging tops out at 79.5 (quality 100, 439 KB); with sharp YUV it reaches the
/// target, at half those bytes.
#[test]
fn webp_reaches_the_target_on_coloured_noise_through_sharp_yuv() {
    let dir = scratch("noise");
    let storage = LocalStorage::new(&dir);
    let bytes = std::fs::read(photos::shipped().join("night.jpg")).unwrap();
    let prepared = pipeline::prepare(&bytes, &Limits::default()).unwrap();
    let made =
        pipeline::make_variants(&prepared, &options(80.0), &[Format::WebP], &storage, &[]).unwrap();
    let largest = made
        .variants
        .iter()
        .filter(|v| v.kind == Kind::Width)
        .max_by_key(|v| v.width)
        .unwrap();
    assert_eq!(largest.width, 960, "{:?}", made.variants);
    let shown =
        variants::decode_output(&storage.get(&largest.path).unwrap(), Format::WebP).unwrap();
    let reference =
        Reference::new(&variants::resize(&prepared.decoded.pixels, 960, largest.height).unwrap())
            .unwrap();
    let score = quality::score(&reference, &shown).unwrap();
    assert!(score >= 80.0, "scores {score:.2}: {largest:?}");
    assert!(largest.bytes < 300_000, "{largest:?}");
    // The usual conversion was tried first and could not get there.
    assert!(
        made.tries
            .iter()
            .any(|t| t.width == 960 && t.quality == 100 && t.score < 80.0),
        "{:?}",
        made.tries
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn strokes() -> Vec<u8> {
    let img = RgbaImage::from_fn(320, 200, |x, y| {
        let ink = (x / 3 + y / 7) % 5 == 0 || (x % 37 < 2 && y % 23 < 15);
        if ink {
            Rgba([20, 20, 30, 255])
        } else {
            Rgba([255, 255, 255, 255])
        }
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[test]
fn avif_is_left_out_where_it_does_not_save_a_tenth() {
    let dir = scratch("skip");
    let storage = LocalStorage::new(&dir);
    let made = pipeline::process(&strokes(), &Limits::default(), &options(80.0), &storage).unwrap();
    let skipped = made
        .skipped
        .first()
        .expect("AVIF made where it did not win");
    assert_eq!(skipped.format, Format::Avif);
    assert!(
        skipped.bytes as f64 > 0.9 * skipped.against as f64,
        "{skipped:?}"
    );
    assert!(made.variants.iter().all(|v| v.format != Format::Avif));
    let stored = walk(&dir);
    assert!(stored.iter().all(|p| !p.ends_with(".avif")), "{stored:?}");
    assert_eq!(stored.len(), made.variants.len());

    // A photograph, where it wins, keeps its AVIFs.
    let photo = shrunk(&photos::shipped().join("portrait.jpg"));
    let made = pipeline::process(&photo, &Limits::default(), &options(80.0), &storage).unwrap();
    assert!(
        made.skipped.is_empty(),
        "{:?} {:#?}",
        made.skipped,
        made.variants
    );
    assert!(made.variants.iter().any(|v| v.format == Format::Avif));
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn reprocessing_with_the_same_target_makes_nothing_and_another_target_makes_new_names() {
    let dir = scratch("reprocess");
    let storage = LocalStorage::new(&dir);
    let photo = shrunk(&photos::shipped().join("coffee.png"));
    let first = pipeline::process(&photo, &Limits::default(), &options(80.0), &storage).unwrap();
    let files = walk(&dir);
    assert_eq!(files.len(), first.variants.len());

    let again = pipeline::process(&photo, &Limits::default(), &options(80.0), &storage).unwrap();
    assert_eq!(again.reused, first.variants.len(), "nothing encoded again");
    assert_eq!(walk(&dir), files, "nothing new stored");
    let names = |p: &Processed| {
        p.variants
            .iter()
            .map(|v| v.path.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&again), names(&first));
    assert!(
        again.variants.iter().all(|v| v.quality.is_none()),
        "not searched again"
    );

    let higher = pipeline::process(&photo, &Limits::default(), &options(85.0), &storage).unwrap();
    assert_eq!(higher.reused, 0, "another target: every name new");
    assert!(names(&higher).iter().all(|n| !names(&first).contains(n)));
    // And a higher target costs bytes, variant for variant.
    let total = |p: &Processed| p.variants.iter().map(|v| v.bytes).sum::<usize>();
    assert!(total(&higher) > total(&first));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The search's scorer (fast-ssim2) against the `ssimulacra2` crate on real variants:
/// the two implementations of the metric agree closely enough that a target met by
/// one is met by the other within a fraction of a point.
#[test]
fn the_scorer_agrees_with_the_ssimulacra2_crate() {
    let source = napiatke_images::decode(
        &shrunk(&photos::shipped().join("foliage.jpg")),
        &Limits::default(),
    )
    .unwrap()
    .pixels;
    let reference = variants::resize(&source, 320, 320 * source.height() / source.width()).unwrap();
    let linear = |img: &RgbaImage| {
        let data: Vec<[f32; 3]> = img
            .pixels()
            .map(|p| {
                std::array::from_fn(|c| {
                    let v = f32::from(p.0[c]) / 255.0;
                    if v <= 0.040_45 {
                        v / 12.92
                    } else {
                        ((v + 0.055) / 1.055).powf(2.4)
                    }
                })
            })
            .collect();
        ssimulacra2::LinearRgb::new(data, img.width() as usize, img.height() as usize).unwrap()
    };
    let prepared = Reference::new(&reference).unwrap();
    for (format, q) in [
        (Format::WebP, 60),
        (Format::WebP, 90),
        (Format::Avif, 70),
        (Format::Jpeg, 80),
    ] {
        let fast_avif = options(80.0);
        let bytes = variants::encode_at(&reference, format, q, &fast_avif).unwrap();
        let shown = variants::decode_output(&bytes, format).unwrap();
        let ours = quality::score(&prepared, &shown).unwrap();
        let theirs =
            ssimulacra2::compute_frame_ssimulacra2(linear(&reference), linear(&shown)).unwrap();
        assert!(
            (ours - theirs).abs() < 0.5,
            "{format:?} q{q}: fast-ssim2 {ours:.3}, ssimulacra2 {theirs:.3}"
        );
    }
}
