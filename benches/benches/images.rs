//! The image pipeline's steps on a real photograph (TwoWings.jpg, 2560×1600, from
//! ../shared/testdata/photos): decode, a Lanczos3 resize to 1280 wide, WebP and JPEG
//! encodes of that, and an AVIF encode at speed 10 of a 640-px image (speed 6, the
//! default, takes seconds: that is for the comparison program; below 120,000 pixels
//! the encoder would drop two speed steps). Without the photos, a synthetic JPEG. Run:
//! `cargo bench -p napiatke-benches --bench images`; the comparison with libvips,
//! cwebp and avifenc is `bash scripts/image-bench.sh` (docs/performance.md, "Images").

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use napiatke_images::quality;
use napiatke_images::variants::{self, Format, Options};
use napiatke_images::{decode, Limits};

/// TwoWings.jpg from NAPIATKE_PHOTOS or else ../shared/testdata/photos; without them (a
/// clone elsewhere, as CI may run) a synthetic 2560×1600 JPEG of the same size, so
/// the benches still run (their figures are then not the photograph's).
fn source() -> (String, Vec<u8>) {
    // NAPIATKE_PHOTOS, when set, is the only place looked in.
    let dirs: Vec<std::path::PathBuf> = match std::env::var_os("NAPIATKE_PHOTOS") {
        Some(dir) => vec![dir.into()],
        None => vec![
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/photos"),
            "/work/shared/testdata/photos".into(),
        ],
    };
    for dir in dirs {
        if let Ok(bytes) = std::fs::read(dir.join("TwoWings.jpg")) {
            return ("photo".to_owned(), bytes);
        }
    }
    eprintln!("images benches: the test photographs are absent; using a synthetic JPEG");
    let mut state = 0x9E37_79B9_u32;
    let img = image::RgbImage::from_fn(2560, 1600, |x, y| {
        // A gradient with noise: something for the encoders to keep.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 32) as u8;
        image::Rgb([(x / 10) as u8 ^ n, (y / 7) as u8 ^ n, ((x + y) / 17) as u8])
    });
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    ("synthetic".to_owned(), bytes)
}

fn images(c: &mut Criterion) {
    let (kind, bytes) = source();
    let limits = Limits::default();
    let pixels = decode(&bytes, &limits)
        .unwrap_or_else(|e| panic!("{e}"))
        .pixels;
    let (w, h) = pixels.dimensions();
    let (mw, mh) = (1280, h * 1280 / w);
    let medium = variants::resize(&pixels, mw, mh).unwrap_or_else(|e| panic!("{e}"));
    let small = variants::resize(&pixels, 640, h * 640 / w).unwrap_or_else(|e| panic!("{e}"));
    let options = Options::default();
    let fast_avif = Options {
        avif_speed: 10,
        ..Options::default()
    };

    let mut g = c.benchmark_group("images");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function(format!("decode_{kind}_jpeg_2560x1600"), |b| {
        b.iter(|| decode(black_box(&bytes), &limits))
    });
    g.bench_function(format!("resize_{w}x{h}_to_{mw}x{mh}"), |b| {
        b.iter(|| variants::resize(black_box(&pixels), mw, mh))
    });
    g.bench_function(format!("webp_q{}_{mw}x{mh}", options.webp_quality), |b| {
        b.iter(|| variants::encode(black_box(&medium), Format::WebP, &options))
    });
    g.bench_function(format!("jpeg_q{}_{mw}x{mh}", options.jpeg_quality), |b| {
        b.iter(|| variants::encode(black_box(&medium), Format::Jpeg, &options))
    });
    let avif = format!(
        "avif_q{}_s10_{}x{}",
        fast_avif.avif_quality,
        small.width(),
        small.height()
    );
    g.bench_function(avif, |b| {
        b.iter(|| variants::encode(black_box(&small), Format::Avif, &fast_avif))
    });
    // The target search's own costs: decoding an AVIF again, scoring a try against a
    // reference prepared once, and preparing it.
    let small_avif =
        variants::encode(&small, Format::Avif, &fast_avif).unwrap_or_else(|e| panic!("{e}"));
    g.bench_function(
        format!("avif_decode_{}x{}", small.width(), small.height()),
        |b| b.iter(|| variants::decode_output(black_box(&small_avif), Format::Avif)),
    );
    let medium_webp =
        variants::encode(&medium, Format::WebP, &options).unwrap_or_else(|e| panic!("{e}"));
    let shown =
        variants::decode_output(&medium_webp, Format::WebP).unwrap_or_else(|e| panic!("{e}"));
    g.bench_function(format!("ssimulacra2_reference_{mw}x{mh}"), |b| {
        b.iter(|| quality::Reference::new(black_box(&medium)))
    });
    let reference = quality::Reference::new(&medium).unwrap_or_else(|e| panic!("{e}"));
    g.bench_function(format!("ssimulacra2_score_{mw}x{mh}"), |b| {
        b.iter(|| quality::score(&reference, black_box(&shown)))
    });
    g.finish();
}

criterion_group!(benches, images);
criterion_main!(benches);
