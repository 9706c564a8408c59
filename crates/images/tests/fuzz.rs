//! Fuzz targets (see napiatke-fuzzing; `scripts/fuzz.sh` runs them for longer):
//! decoding mutated uploads stays within the limits and never panics, and storage
//! names never leave the media root or pass for variants they are not.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Component, Path};

use napiatke_fuzzing::{cases, mutate, text};
use napiatke_images::pipeline::{self, variant_format, LocalStorage};
use napiatke_images::Limits;

/// A small picture in each format uploads take.
fn seeds() -> Vec<Vec<u8>> {
    let (w, h) = (24u32, 16u32);
    let rgba = image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([
            (x * 10) as u8,
            (y * 15) as u8,
            99,
            if x < 4 { 128 } else { 255 },
        ])
    });
    let rgb = image::DynamicImage::ImageRgba8(rgba.clone()).to_rgb8();
    let rgba_copy = rgba.clone();
    let mut out = Vec::new();
    for (img, format) in [
        (
            image::DynamicImage::ImageRgba8(rgba.clone()),
            image::ImageFormat::Png,
        ),
        (
            image::DynamicImage::ImageRgb8(rgb.clone()),
            image::ImageFormat::Jpeg,
        ),
        (
            image::DynamicImage::ImageRgba8(rgba),
            image::ImageFormat::Gif,
        ),
    ] {
        let mut bytes = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
            .unwrap();
        out.push(bytes);
    }
    let options = napiatke_images::variants::Options::default();
    out.push(
        napiatke_images::variants::encode(
            &rgba_copy,
            napiatke_images::variants::Format::WebP,
            &options,
        )
        .unwrap(),
    );
    out
}

#[test]
fn fuzz_decoding_stays_within_limits() {
    let limits = Limits {
        max_bytes: 64 * 1024,
        max_pixels: 64 * 64,
        max_side: 256,
    };
    let seeds = seeds();
    let mut decoded = 0;
    let n = cases("image decoding", 300, |rng| {
        let seed = &seeds[rng.usize(..seeds.len())];
        let mut input = mutate(rng, seed);
        // A PNG claiming other dimensions in its header: the limits are checked
        // from the header, before any pixel is allocated.
        if rng.u8(..4) == 0 && input.len() >= 24 && input.starts_with(b"\x89PNG") {
            input[16..20].copy_from_slice(&rng.u32(..).to_be_bytes());
            input[20..24].copy_from_slice(&rng.u32(..).to_be_bytes());
        }
        match pipeline::prepare(&input, &limits) {
            Ok(p) => {
                let (w, h) = (p.decoded.width(), p.decoded.height());
                assert!(
                    w >= 1 && h >= 1 && w <= limits.max_side && h <= limits.max_side,
                    "{w}x{h} from {:?}",
                    &input[..input.len().min(40)]
                );
                assert!(u64::from(w) * u64::from(h) <= limits.max_pixels);
                assert!(p.placeholder.starts_with("data:image/"));
                assert_eq!(p.source.len(), 16);
                decoded += 1;
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    });
    // Not only refusals: some mutated files still decode, and were checked.
    assert!(n < 100 || decoded * 20 >= n, "{decoded} of {n} decoded");
}

#[test]
fn fuzz_storage_names_stay_under_the_root() {
    let alphabet = [
        "a",
        "0",
        "f",
        "/",
        "//",
        ".",
        "..",
        "-",
        "_",
        "%2e",
        "%2F",
        "\\",
        "\0",
        " ",
        "~",
        "ab",
        "ab12cd34ef56ab78",
        "w320x240-1a2b3c4d",
        "t300-00ff00ff",
        ".avif",
        ".webp",
        ".jpg",
        ".png",
        "originals",
        "ą",
        "\u{202e}",
        ":",
        "\n",
    ];
    let root = Path::new("/srv/napiatke/media");
    let storage = LocalStorage::new(root);
    let mut variants = 0;
    let n = cases("storage names", 5_000, |rng| {
        let hex = |rng: &mut napiatke_fuzzing::Rng, n: usize| -> String {
            (0..n)
                .map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)]))
                .collect()
        };
        let name = match rng.u8(..3) {
            0 => text(rng, &alphabet, 12),
            1 => {
                let valid = "ab/ab12cd34ef56ab78/w320x240-1a2b3c4d.avif";
                String::from_utf8_lossy(&mutate(rng, valid.as_bytes())).into_owned()
            }
            _ => {
                // Made the way the pipeline names variants, with random parts.
                let source = hex(rng, 16);
                let tag = if rng.bool() {
                    format!("w{}x{}", rng.u16(1..4000), rng.u16(1..4000))
                } else {
                    format!("t{}", rng.u16(1..600))
                };
                let ext = ["avif", "webp", "jpg", "png", "gif"][rng.usize(..5)];
                format!("{}/{source}/{tag}-{}.{ext}", &source[..2], hex(rng, 8))
            }
        };
        if let Some(path) = storage.path(&name) {
            assert!(path.starts_with(root), "{name:?} -> {path:?}");
            assert!(
                path.components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::RootDir)),
                "{name:?} -> {path:?}"
            );
            assert!(!name.contains(['\\', '\0', '\n', ' ']), "{name:?}");
        }
        if let Some(format) = variant_format(&name) {
            // Only names this crate makes: shard, source, file; never an original.
            let parts: Vec<&str> = name.split('/').collect();
            assert_eq!(parts.len(), 3, "{name:?}");
            assert!(parts[1].starts_with(parts[0]), "{name:?}");
            assert!(
                name.ends_with(&format!(".{}", format.extension())),
                "{name:?}"
            );
            assert!(!name.starts_with("originals"), "{name:?}");
            assert!(storage.path(&name).is_some(), "{name:?}");
            variants += 1;
        }
    });
    assert!(
        n < 100 || variants * 100 >= n,
        "{variants} of {n} were variant names"
    );
}
