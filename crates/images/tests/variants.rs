//! The outputs: each format is what it claims, alpha survives where it can and becomes
//! white where it cannot, nothing of the input's metadata leaves, sizes are right.

mod photos;

use image::{Rgba, RgbaImage};
use napiatke_images::variants::{self, Format, Options};
use napiatke_images::{decode, Limits, SourceFormat};

/// 64×40: left half transparent, right half an opaque gradient.
fn half_transparent() -> RgbaImage {
    RgbaImage::from_fn(64, 40, |x, y| {
        if x < 32 {
            Rgba([0, 0, 0, 0])
        } else {
            Rgba([(x * 4) as u8, (y * 6) as u8, 200, 255])
        }
    })
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
fn each_format_is_what_it_claims() {
    let img = half_transparent();
    let avif = variants::encode(&img, Format::Avif, &fast()).unwrap();
    assert_eq!(&avif[4..12], b"ftypavif", "an AVIF file");
    let webp = variants::encode(&img, Format::WebP, &fast()).unwrap();
    assert!(webp.starts_with(b"RIFF") && &webp[8..12] == b"WEBP");
    assert!(
        webp.windows(4).any(|w| w == b"VP8 "),
        "lossy (VP8), not lossless (VP8L)"
    );
    let jpeg = variants::encode(&img, Format::Jpeg, &fast()).unwrap();
    assert!(jpeg.starts_with(&[0xFF, 0xD8]));
    assert!(
        jpeg.windows(2).any(|w| w == [0xFF, 0xC2]),
        "progressive (SOF2)"
    );
    for bytes in [&avif, &webp, &jpeg] {
        assert!(
            !bytes.windows(4).any(|w| w == b"Exif"),
            "no metadata written"
        );
    }
}

#[test]
fn alpha_survives_in_webp_and_becomes_white_in_jpeg() {
    let img = half_transparent();
    let webp = variants::encode(&img, Format::WebP, &fast()).unwrap();
    let back = decode(&webp, &Limits::default()).unwrap();
    assert_eq!(back.format, SourceFormat::WebP);
    assert!(back.has_alpha);
    assert_eq!(back.pixels.get_pixel(5, 5).0[3], 0, "still transparent");
    let jpeg = variants::encode(&img, Format::Jpeg, &fast()).unwrap();
    let back = decode(&jpeg, &Limits::default()).unwrap();
    let p = back.pixels.get_pixel(5, 5).0;
    assert!(
        p[0] > 245 && p[1] > 245 && p[2] > 245,
        "white, not black: {p:?}"
    );
}

#[test]
fn resize_thumbnail_and_placeholder() {
    let img = RgbaImage::from_fn(640, 400, |x, y| {
        Rgba([(x % 256) as u8, (y % 256) as u8, 60, 255])
    });
    let small = variants::resize(&img, 320, 200).unwrap();
    assert_eq!(small.dimensions(), (320, 200));
    let thumb = variants::thumbnail(&img, 300).unwrap();
    assert_eq!(thumb.dimensions(), (300, 300));
    let tiny = variants::thumbnail(&half_transparent(), 300).unwrap();
    assert_eq!(tiny.dimensions(), (40, 40), "never upscaled");
    let ph = variants::placeholder(&img).unwrap();
    assert!(ph.starts_with("data:image/webp;base64,"));
    assert!(ph.len() <= 600, "{} bytes", ph.len());
}

#[test]
fn a_real_photograph_shrinks() {
    let Some(original) = photos::dir().and_then(|d| std::fs::read(d.join("Storm.jpg")).ok()) else {
        eprintln!("Storm.jpg not present: skipped");
        return;
    };
    let d = decode(&original, &Limits::default()).unwrap();
    let sizes = variants::ladder(d.width(), d.height(), &Options::default());
    assert_eq!(sizes.first(), Some(&(320, 213)));
    assert_eq!(
        sizes.last(),
        Some(&(1620, 1080)),
        "1920×1280 capped at 1080 high"
    );
    let (w, h) = sizes[0];
    let small = variants::resize(&d.pixels, w, h).unwrap();
    let webp = variants::encode(&small, Format::WebP, &Options::default()).unwrap();
    assert!(
        webp.len() * 20 < original.len(),
        "{} vs {}",
        webp.len(),
        original.len()
    );
    let ph = variants::placeholder(&d.pixels).unwrap();
    assert!(ph.len() <= 600, "{} bytes", ph.len());
}
