//! The image pipeline's steps on a real photograph (TwoWings.jpg, 2560×1600, from
//! ../shared/testdata/photos): decode, a Lanczos3 resize to 1280 wide, WebP and JPEG
//! encodes of that, and an AVIF encode at speed 10 of a 640-px image (speed 6, the
//! default, takes seconds: that is for the comparison program; below 120,000 pixels
//! the encoder would drop two speed steps). Skipped when the photos are absent. Run:
//! `cargo bench -p napiatke-benches --bench images`; the comparison with libvips,
//! cwebp and avifenc is `bash scripts/image-bench.sh` (docs/performance.md, "Images").

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use napiatke_images::variants::{self, Format, Options};
use napiatke_images::{decode, Limits};

fn images(c: &mut Criterion) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/photos/TwoWings.jpg");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipping images benches: {}: {e}", path.display());
            return;
        }
    };
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
    g.bench_function("decode_jpeg_2560x1600", |b| {
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
    g.finish();
}

criterion_group!(benches, images);
criterion_main!(benches);
