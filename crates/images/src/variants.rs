//! From one decoded image to what pages send: a width ladder (never upscaled, within
//! 1920×1080), a centre-cropped square thumbnail, each as AVIF, lossy WebP and a
//! progressive JPEG fallback, and a tiny blurred placeholder as a data URI.

use fast_image_resize::{ResizeOptions, Resizer};
use image::RgbaImage;

use crate::ImageError;

/// What to make. Defaults follow the issue: widths 320–1920 within 1920×1080, a
/// 300-px thumbnail, WebP quality 85 (as the reference design), AVIF quality 80 at
/// speed 6, JPEG quality 85.
///
/// AVIF quality 80 rather than the 70 first planned: measured on the test photographs
/// (docs/performance.md, "Images"), ravif at 70 fell up to 0.036 SSIM below `cwebp -q
/// 85` on finely textured wood; at 80 it is at or above cwebp's SSIM at every width
/// with 32–63 % fewer bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Target widths, ascending.
    pub widths: Vec<u32>,
    /// No variant is wider than this...
    pub max_width: u32,
    /// ...or taller than this.
    pub max_height: u32,
    /// Side of the square thumbnail.
    pub thumbnail: u32,
    /// Lossy WebP quality, 0–100.
    pub webp_quality: f32,
    /// AVIF quality, 1–100.
    pub avif_quality: f32,
    /// AVIF encoder speed, 1 (slow, small) – 10 (fast). Images of at most 120,000
    /// pixels (the 320-px step, the thumbnail) are encoded two steps slower: they
    /// cost little, and gain the most, from speed 4's 4×4 blocks and (at quality 80
    /// and above, as ravif sets it) rav1e's RDO transform choice (the 320-px step of
    /// a wood texture: 4 % fewer bytes at 0.003 better SSIM than at speed 6).
    pub avif_speed: u8,
    /// JPEG quality, 1–100.
    pub jpeg_quality: u8,
    /// The SSIMULACRA2 score every variant must reach (IMAGE_TARGET_QUALITY): each
    /// one's quality is then searched for ([`crate::quality`]) and the fixed
    /// qualities above are only where the search starts. `None`: the fixed qualities.
    pub target: Option<f32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            widths: vec![320, 640, 960, 1280, 1920],
            max_width: 1920,
            max_height: 1080,
            thumbnail: 300,
            webp_quality: 85.0,
            avif_quality: 80.0,
            avif_speed: 6,
            jpeg_quality: 85,
            target: Some(DEFAULT_TARGET),
        }
    }
}

/// The default target score: what libwebp at quality 85 reaches on typical photographs
/// (78–81 on the detailed ones issue 16 measured; see docs/performance.md, "Images").
pub const DEFAULT_TARGET: f32 = 80.0;

/// At most this many pixels (about 400×300: the 320-px step and the thumbnail), an
/// AVIF is encoded at `avif_speed - 2` (see [`Options::avif_speed`]).
pub const SMALL_AVIF_PIXELS: u64 = 120_000;

/// An output format: the domain's, so the pipeline, the database and the templates
/// speak one vocabulary.
pub use napiatke_domain::ImageFormat as Format;

/// The sizes of the width ladder for a `width`×`height` source: each target width
/// the source reaches (no upscaling), scaled down further where it would be taller
/// than the cap; duplicates removed. A source narrower than every target gets one
/// variant at its own size (capped).
#[must_use]
pub fn ladder(width: u32, height: u32, options: &Options) -> Vec<(u32, u32)> {
    if width == 0 || height == 0 {
        return Vec::new();
    }
    let fit = |w: u32| -> (u32, u32) {
        let w = w.min(width).min(options.max_width);
        let h = scaled(height, w, width);
        if h > options.max_height {
            let h = options.max_height;
            (scaled(width, h, height).max(1), h)
        } else {
            (w, h.max(1))
        }
    };
    let mut out: Vec<(u32, u32)> = options
        .widths
        .iter()
        .filter(|&&w| w <= width)
        .map(|&w| fit(w))
        .collect();
    if out.is_empty() {
        out.push(fit(width));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// `value` × `num` / `den`, rounded, in u64 so nothing overflows.
fn scaled(value: u32, num: u32, den: u32) -> u32 {
    let v = (u64::from(value) * u64::from(num) + u64::from(den) / 2) / u64::from(den.max(1));
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Lanczos3 with premultiplied alpha (so transparent pixels do not bleed dark
/// fringes), by fast_image_resize's SIMD code.
pub fn resize(image: &RgbaImage, width: u32, height: u32) -> Result<RgbaImage, ImageError> {
    let mut out = RgbaImage::new(width.max(1), height.max(1));
    Resizer::new()
        .resize(image, &mut out, &ResizeOptions::new())
        .map_err(|e| ImageError::Encode(format!("resize: {e}")))?;
    Ok(out)
}

/// A `side`×`side` thumbnail cropped from the centre (never upscaled past the
/// source's shorter side).
pub fn thumbnail(image: &RgbaImage, side: u32) -> Result<RgbaImage, ImageError> {
    let side = side.min(image.width()).min(image.height()).max(1);
    let mut out = RgbaImage::new(side, side);
    Resizer::new()
        .resize(
            image,
            &mut out,
            &ResizeOptions::new().fit_into_destination(Some((0.5, 0.5))),
        )
        .map_err(|e| ImageError::Encode(format!("thumbnail: {e}")))?;
    Ok(out)
}

impl Options {
    /// The fixed quality for `format` (where a search starts), 1–100.
    #[must_use]
    pub fn quality_of(&self, format: Format) -> u8 {
        let q = match format {
            Format::WebP => self.webp_quality,
            Format::Avif => self.avif_quality,
            Format::Jpeg => f32::from(self.jpeg_quality),
        };
        q.round().clamp(1.0, 100.0) as u8
    }
}

/// Encodes `image` as `format` at the fixed quality of `options`. No metadata is
/// written: outputs carry pixels only.
pub fn encode(image: &RgbaImage, format: Format, options: &Options) -> Result<Vec<u8>, ImageError> {
    encode_at(image, format, options.quality_of(format), options)
}

/// Decodes a variant this module encoded, for scoring it.
pub fn decode_output(bytes: &[u8], format: Format) -> Result<RgbaImage, ImageError> {
    let failed = |e: String| ImageError::Encode(format!("decoding our own {format:?}: {e}"));
    match format {
        Format::Avif => {
            let image = napiatke_avif_decode::decode(bytes).map_err(|e| failed(e.to_string()))?;
            RgbaImage::from_raw(image.width, image.height, image.rgba)
                .ok_or_else(|| failed("short pixel buffer".into()))
        }
        Format::WebP | Format::Jpeg => {
            let kind = if format == Format::WebP {
                image::ImageFormat::WebP
            } else {
                image::ImageFormat::Jpeg
            };
            image::load_from_memory_with_format(bytes, kind)
                .map(image::DynamicImage::into_rgba8)
                .map_err(|e| failed(e.to_string()))
        }
    }
}

/// Encodes `image` as `format` at `quality` (1–100; the other settings from `options`).
pub fn encode_at(
    image: &RgbaImage,
    format: Format,
    quality: u8,
    options: &Options,
) -> Result<Vec<u8>, ImageError> {
    let (w, h) = image.dimensions();
    let quality = quality.clamp(1, 100);
    match format {
        Format::WebP => encode_webp(image, quality, false),
        Format::Avif => encode_avif(image, quality, avif_speed_for(w, h, options)),
        Format::Jpeg => encode_jpeg(&on_white(image), w, h, quality),
    }
}

/// Encodes `image` as lossy WebP at `quality` (1–100). `sharp_yuv`: libwebp's
/// iterative RGB→YUV conversion, which keeps coloured detail (noise in a night sky)
/// that the usual averaging of chroma loses, at about 1.5× the time and, on most
/// photographs, a few per cent more bytes at the same score.
pub fn encode_webp(image: &RgbaImage, quality: u8, sharp_yuv: bool) -> Result<Vec<u8>, ImageError> {
    let (w, h) = image.dimensions();
    let mut config =
        webp::WebPConfig::new().map_err(|()| ImageError::Encode("webp: config".to_owned()))?;
    config.lossless = 0;
    config.alpha_compression = 1;
    config.quality = f32::from(quality.clamp(1, 100));
    config.use_sharp_yuv = i32::from(sharp_yuv);
    webp::Encoder::from_rgba(image.as_raw(), w, h)
        .encode_advanced(&config)
        .map(|m| m.to_vec())
        .map_err(|e| ImageError::Encode(format!("webp: {e:?}")))
}

/// The rav1e speed `encode_at` uses for an AVIF of `width`×`height`: two slower
/// (smaller files, 2–3× the time) at or below [`SMALL_AVIF_PIXELS`], where encoding
/// is cheap anyway.
#[must_use]
pub fn avif_speed_for(width: u32, height: u32, options: &Options) -> u8 {
    if u64::from(width) * u64::from(height) <= SMALL_AVIF_PIXELS {
        options.avif_speed.saturating_sub(2)
    } else {
        options.avif_speed
    }
    .clamp(1, 10)
}

/// Encodes `image` as AVIF at `quality` (1–100) and rav1e `speed` (1–10).
pub fn encode_avif(image: &RgbaImage, quality: u8, speed: u8) -> Result<Vec<u8>, ImageError> {
    let (w, h) = image.dimensions();
    let pixels: Vec<ravif::RGBA8> = image
        .as_raw()
        .chunks_exact(4)
        .map(|p| ravif::RGBA8::new(p[0], p[1], p[2], p[3]))
        .collect();
    let width = usize::try_from(w).unwrap_or(0);
    let height = usize::try_from(h).unwrap_or(0);
    let quality = f32::from(quality.clamp(1, 100));
    ravif::Encoder::new()
        .with_quality(quality)
        .with_alpha_quality(quality)
        .with_speed(speed.clamp(1, 10))
        // Colour under fully transparent pixels is irrelevant: let the encoder make
        // it cheap.
        .with_alpha_color_mode(ravif::AlphaColorMode::UnassociatedClean)
        .encode_rgba(ravif::Img::new(pixels.as_slice(), width, height))
        .map(|e| e.avif_file)
        .map_err(|e| ImageError::Encode(format!("avif: {e}")))
}

/// JPEG's own limit on either side.
const JPEG_MAX_SIDE: u32 = 65_500;

/// Encodes RGB pixels as a progressive MozJPEG at `quality` (trellis quantisation and
/// optimised scans: its defaults).
fn encode_jpeg(rgb: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, ImageError> {
    if width > JPEG_MAX_SIDE || height > JPEG_MAX_SIDE {
        return Err(ImageError::Encode(format!(
            "jpeg: {width}×{height} is too large"
        )));
    }
    let (w, h) = (width as usize, height as usize);
    if rgb.len() != w * h * 3 {
        return Err(ImageError::Encode("jpeg: pixel count".to_owned()));
    }
    // libjpeg reports an error by unwinding out of its error callback (the mozjpeg
    // crate's documented contract); the checks above leave none expected.
    std::panic::catch_unwind(|| -> std::io::Result<Vec<u8>> {
        let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        compress.set_size(w, h);
        compress.set_quality(f32::from(quality.clamp(1, 100)));
        compress.set_progressive_mode();
        compress.set_optimize_scans(true);
        let mut started = compress.start_compress(Vec::new())?;
        started.write_scanlines(rgb)?;
        started.finish()
    })
    .map_err(|_| ImageError::Encode("jpeg: the encoder failed".to_owned()))?
    .map_err(|e| ImageError::Encode(format!("jpeg: {e}")))
}

/// `image` composited onto white, as the JPEG fallback shows it: what a JPEG's
/// score is judged against.
#[must_use]
pub fn flattened(image: &RgbaImage) -> RgbaImage {
    let rgb = on_white(image);
    let pixels = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    RgbaImage::from_raw(image.width(), image.height(), pixels)
        .unwrap_or_else(|| RgbaImage::new(image.width(), image.height()))
}

/// RGB bytes with transparency composited onto white (never black).
fn on_white(image: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::with_capacity(image.as_raw().len() / 4 * 3);
    for p in image.pixels() {
        let [r, g, b, a] = p.0;
        let a = u16::from(a);
        for c in [r, g, b] {
            let v = (u16::from(c) * a + 255 * (255 - a) + 127) / 255;
            out.push(u8::try_from(v).unwrap_or(u8::MAX));
        }
    }
    out
}

/// A placeholder to show until the image loads: the picture shrunk to 16 pixels
/// across (the browser's upscaling blurs it), as a low-quality WebP data URI of a
/// few hundred bytes.
pub fn placeholder(image: &RgbaImage) -> Result<String, ImageError> {
    let w = image.width().clamp(1, 16);
    let h = scaled(image.height(), w, image.width()).clamp(1, 16);
    let tiny = resize(image, w, h)?;
    let bytes = webp::Encoder::from_rgba(tiny.as_raw(), w, h)
        .encode_simple(false, 30.0)
        .map_err(|e| ImageError::Encode(format!("placeholder: {e:?}")))?;
    Ok(format!("data:image/webp;base64,{}", base64(&bytes)))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn the_ladder_never_upscales_and_keeps_within_1920x1080() {
        let o = Options::default();
        assert_eq!(
            ladder(2560, 1600, &o),
            [
                (320, 200),
                (640, 400),
                (960, 600),
                (1280, 800),
                (1728, 1080)
            ]
        );
        assert_eq!(ladder(800, 600, &o), [(320, 240), (640, 480)]);
        assert_eq!(
            ladder(200, 100, &o),
            [(200, 100)],
            "small: its own size only"
        );
        assert_eq!(
            ladder(1000, 5000, &o)[0],
            (216, 1080),
            "tall: capped by height"
        );
        assert!(ladder(0, 10, &o).is_empty());
    }
}
