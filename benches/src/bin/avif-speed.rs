//! rav1e's speed settings against AVIF bytes at equal SSIMULACRA2 and encode time, on
//! one picture resized to one width: what `Options::avif_speed` and the slower speed
//! for small sizes rest on (docs/performance.md, issue 16).
//!
//! Run: `cargo run --release -p napiatke-benches --bin avif-speed -- PHOTO WIDTH`.
use std::time::Instant;

use napiatke_images::quality::{self, Reference};
use napiatke_images::variants::{self, Format, Options};
use napiatke_images::Limits;

type Res<T> = Result<T, String>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, width] = args.as_slice() else {
        return Err("usage: avif-speed PHOTO WIDTH".into());
    };
    let width: u32 = width.parse().map_err(|e| format!("{width}: {e}"))?;
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let e = |e: napiatke_images::ImageError| e.to_string();
    let decoded = napiatke_images::decode(&bytes, &Limits::default()).map_err(e)?;
    let h = (u64::from(decoded.height()) * u64::from(width) / u64::from(decoded.width())) as u32;
    let image = variants::resize(&decoded.pixels, width, h).map_err(e)?;
    let reference = Reference::new(&image).map_err(e)?;
    for speed in [4u8, 5, 6, 7, 8, 9, 10] {
        let options = Options {
            avif_speed: speed,
            ..Options::default()
        };
        let mut points = Vec::new();
        let mut time = 0.0;
        for q in (60..=95).step_by(5) {
            let start = Instant::now();
            let out = variants::encode_at(&image, Format::Avif, q, &options).map_err(e)?;
            time += start.elapsed().as_secs_f64();
            let s = quality::score(
                &reference,
                &variants::decode_output(&out, Format::Avif).map_err(e)?,
            )
            .map_err(e)?;
            points.push((q, s, out.len()));
        }
        let at = |t: f64| {
            points
                .windows(2)
                .find(|w| w[0].1 < t && w[1].1 >= t)
                .map(|w| {
                    let f = (t - w[0].1) / (w[1].1 - w[0].1);
                    ((w[0].2 as f64).ln() * (1.0 - f) + (w[1].2 as f64).ln() * f).exp()
                })
        };
        println!(
            "speed {speed}: {:.0} ms/encode, bytes at 75: {:?}, at 80: {:?}, at 85: {:?}  {:?}",
            time / points.len() as f64 * 1e3,
            at(75.0).map(|b| b as u64),
            at(80.0).map(|b| b as u64),
            at(85.0).map(|b| b as u64),
            points
                .iter()
                .map(|p| (p.0, (p.1 * 10.0).round() / 10.0))
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}
