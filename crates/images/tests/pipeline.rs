//! The whole pipeline into local storage: names, idempotence, traversal-proof paths.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use image::{Rgba, RgbaImage};
use napiatke_images::pipeline::{process, Kind, LocalStorage, Storage};
use napiatke_images::variants::{Format, Options};
use napiatke_images::Limits;

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, y| {
        Rgba([(x % 256) as u8, (y % 256) as u8, 99, 255])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("napiatke-images-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Fixed qualities (no search) at AVIF's fastest speed: these tests are about names,
/// formats and sizes; tests/quality.rs is about the search.
fn fast() -> Options {
    Options {
        avif_speed: 10,
        target: None,
        ..Options::default()
    }
}

#[test]
fn every_variant_is_stored_under_a_content_name_and_reprocessing_reuses_them() {
    let dir = scratch("pipeline");
    let storage = LocalStorage::new(&dir);
    let source = png(700, 350);
    let first = process(&source, &Limits::default(), &fast(), &storage).unwrap();
    // 320 and 640 wide, and the 300 thumbnail (capped by the 350 height), in 3 formats.
    let sizes: Vec<(Kind, u32, u32)> = first
        .variants
        .iter()
        .map(|v| (v.kind, v.width, v.height))
        .collect();
    assert_eq!(first.variants.len(), 9);
    assert!(sizes.contains(&(Kind::Width, 320, 160)) && sizes.contains(&(Kind::Width, 640, 320)));
    assert!(sizes.contains(&(Kind::Thumbnail, 300, 300)));
    assert_eq!(first.reused, 0);
    for v in &first.variants {
        assert_eq!(storage.size(&v.path), Some(v.bytes as u64), "{}", v.path);
        assert!(v.path.ends_with(match v.format {
            Format::Avif => ".avif",
            Format::WebP => ".webp",
            Format::Jpeg => ".jpg",
        }));
    }
    assert!(
        first.placeholder.starts_with("data:image/webp;base64,") && first.placeholder.len() <= 600
    );

    let again = process(&source, &Limits::default(), &fast(), &storage).unwrap();
    let names = |p: &napiatke_images::pipeline::Processed| {
        p.variants
            .iter()
            .map(|v| (v.path.clone(), v.bytes))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&again), names(&first), "same names, same sizes");
    assert!(
        again.variants.iter().all(|v| v.quality.is_none()),
        "found stored, not encoded"
    );
    assert_eq!(again.reused, 9, "nothing encoded twice");

    // Other parameters, other names: an old URL never serves new bytes.
    let q70 = Options {
        webp_quality: 70.0,
        ..fast()
    };
    let other = process(&source, &Limits::default(), &q70, &storage).unwrap();
    let webp = |p: &napiatke_images::pipeline::Processed| {
        p.variants
            .iter()
            .filter(|v| v.format == Format::WebP)
            .map(|v| v.path.clone())
            .collect::<Vec<_>>()
    };
    assert!(webp(&other).iter().all(|p| !webp(&first).contains(p)));
    assert_eq!(other.reused, 6, "AVIF and JPEG unchanged");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn storage_names_cannot_leave_the_root() {
    let storage = LocalStorage::new(scratch("names"));
    for bad in [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a//b",
        "",
        "a/./b",
        "a\\b",
        "a b",
    ] {
        assert!(storage.path(bad).is_none(), "{bad:?}");
        assert!(storage.put(bad, b"x").is_err(), "{bad:?}");
    }
    assert!(storage.path("ab/0123/w320x160-abcd.webp").is_some());
}

#[test]
fn only_names_the_pipeline_makes_are_variant_names() {
    use napiatke_images::pipeline::variant_format;
    let dir = scratch("names");
    let storage = LocalStorage::new(&dir);
    let made = process(&png(400, 300), &Limits::default(), &fast(), &storage).unwrap();
    for v in &made.variants {
        assert_eq!(variant_format(&v.path), Some(v.format), "{}", v.path);
    }
    for bad in [
        "",
        "originals/ab/ab12cd34ef56ab12",
        "ab/ab12cd34ef56ab12/w320x240-1a2b3c4d.png",
        "ab/ab12cd34ef56ab12/../w320x240-1a2b3c4d.webp",
        "ab/../ab12cd34ef56ab12/w320x240-1a2b3c4d.webp",
        "cd/ab12cd34ef56ab12/w320x240-1a2b3c4d.webp",
        "ab/AB12CD34EF56AB12/w320x240-1a2b3c4d.webp",
        "ab/ab12cd34ef56ab12/w320x240-1a2b3c4d.webp/x",
        "ab/ab12cd34ef56ab12/x320-1a2b3c4d.webp",
        "ab/ab12cd34ef56ab12/t300-1a2b3c4.webp",
        "/ab/ab12cd34ef56ab12/t300-1a2b3c4d.webp",
        "ab/ab12cd34ef56ab12/t300-1a2b3c4d.webp\0",
    ] {
        assert_eq!(variant_format(bad), None, "{bad:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
