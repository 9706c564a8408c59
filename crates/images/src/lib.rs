//! Uploaded images made safe: [`decode`] identifies the format from the bytes
//! themselves (never a file name), refuses what is too big from the header alone,
//! before a single pixel is allocated (a decompression bomb costs nothing), applies
//! the EXIF orientation, converts colour to sRGB when an embedded ICC profile says the
//! pixels are in another space (Display P3, Adobe RGB, a grey gamma...), and hands back
//! 8-bit RGBA with its alpha kept. Nothing of the input's metadata survives: outputs
//! are built from pixels only.
//!
//! ```
//! use napiatke_images::{decode, Limits, SourceFormat};
//! // A 1x1 transparent PNG.
//! let mut png = Vec::new();
//! image::RgbaImage::from_pixel(1, 1, image::Rgba([0, 0, 0, 0]))
//!     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
//!     .unwrap();
//! let d = decode(&png, &Limits::default())?;
//! assert_eq!((d.format, d.width(), d.height(), d.has_alpha), (SourceFormat::Png, 1, 1, true));
//! assert!(decode(b"GIF89a but not really", &Limits::default()).is_err());
//! # Ok::<(), napiatke_images::ImageError>(())
//! ```

pub mod jobs;
pub mod pipeline;
pub mod quality;
pub mod variants;

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbaImage};

/// What an upload may be. The defaults are the issue's: 20 MB, 50 megapixels, and
/// no side over 20,000 pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest upload in bytes.
    pub max_bytes: usize,
    /// Largest width × height.
    pub max_pixels: u64,
    /// Largest width or height.
    pub max_side: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 20 * 1000 * 1000,
            max_pixels: 50_000_000,
            max_side: 20_000,
        }
    }
}

/// The formats accepted, identified by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// JPEG (baseline or progressive; CMYK is converted).
    Jpeg,
    /// PNG (8 or 16 bits, grey or colour, with or without alpha).
    Png,
    /// WebP (lossy or lossless).
    WebP,
    /// GIF (the first frame of an animation).
    Gif,
}

impl SourceFormat {
    /// Lower-case name ("jpeg").
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "jpeg",
            SourceFormat::Png => "png",
            SourceFormat::WebP => "webp",
            SourceFormat::Gif => "gif",
        }
    }
}

/// Why an upload was refused. Every variant but [`ImageError::Encode`] is the
/// uploader's to fix (a 4xx), and its message says how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Zero bytes.
    #[error("the file is empty")]
    Empty,
    /// Over [`Limits::max_bytes`].
    #[error("the file is {bytes} bytes; the most accepted is {max} bytes")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Not a format we read (or not an image at all).
    #[error("this is not a JPEG, PNG, WebP or GIF image{}", .0.as_ref().map(|f| format!(" (it looks like {f})")).unwrap_or_default())]
    NotAnImage(Option<String>),
    /// Width or height over the limit, or too many pixels, by the header.
    #[error("the image is {width}×{height} pixels; the most accepted is {max_side} pixels a side and {max_pixels} pixels in all")]
    TooManyPixels {
        /// Width by the header.
        width: u32,
        /// Height by the header.
        height: u32,
        /// The side limit.
        max_side: u32,
        /// The pixel limit.
        max_pixels: u64,
    },
    /// The data is damaged or cut short.
    #[error("the image could not be read ({0}); it may be damaged or incomplete")]
    Corrupt(String),
    /// Resizing or encoding failed: not the uploader's doing (a 500).
    #[error("the image could not be processed: {0}")]
    Encode(String),
}

/// A decoded image: 8-bit RGBA, upright.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The pixels, orientation applied.
    pub pixels: RgbaImage,
    /// What the bytes were.
    pub format: SourceFormat,
    /// Whether any pixel is not fully opaque (then no output may be flattened onto
    /// black; the JPEG fallback flattens onto white).
    pub has_alpha: bool,
    /// Whether an EXIF orientation other than "upright" was applied.
    pub rotated: bool,
    /// Whether the pixels were converted to sRGB from an embedded ICC profile. False
    /// with no profile, an sRGB one, or one that could not be used (then the pixels
    /// are kept as they were: a bad profile never fails an upload).
    pub icc_converted: bool,
}

impl Decoded {
    /// Width after orientation.
    #[must_use]
    pub fn width(&self) -> u32 {
        self.pixels.width()
    }

    /// Height after orientation.
    #[must_use]
    pub fn height(&self) -> u32 {
        self.pixels.height()
    }
}

fn corrupt(e: &image::ImageError) -> ImageError {
    ImageError::Corrupt(e.to_string())
}

/// Decodes an upload within `limits` (see the crate docs).
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Decoded, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(ImageError::TooLarge {
            bytes: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let format = match reader.format() {
        Some(ImageFormat::Jpeg) => SourceFormat::Jpeg,
        Some(ImageFormat::Png) => SourceFormat::Png,
        Some(ImageFormat::WebP) => SourceFormat::WebP,
        Some(ImageFormat::Gif) => SourceFormat::Gif,
        Some(other) => return Err(ImageError::NotAnImage(Some(format!("{other:?}")))),
        None => return Err(ImageError::NotAnImage(None)),
    };
    let too_many = |width, height| ImageError::TooManyPixels {
        width,
        height,
        max_side: limits.max_side,
        max_pixels: limits.max_pixels,
    };
    // What the header claims is checked before any decoder runs: a decoder that
    // allocated first and checked later would already have lost.
    let claimed = header_dimensions(bytes, format)?;
    if let Some((w, h)) = claimed {
        if w > limits.max_side
            || h > limits.max_side
            || u64::from(w) * u64::from(h) > limits.max_pixels
        {
            return Err(too_many(w, h));
        }
    }
    // Then the decoder reads the header alone: its claims are checked before it
    // allocates anything for pixels.
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    // 16-bit RGBA is 8 bytes a pixel: the most an accepted image can need.
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(decoder_limits);
    let mut decoder = match reader.into_decoder() {
        Ok(d) => d,
        Err(image::ImageError::Limits(_)) => {
            let (w, h) = claimed.unwrap_or((0, 0));
            return Err(too_many(w, h));
        }
        Err(e) => return Err(corrupt(&e)),
    };
    let (width, height) = decoder.dimensions();
    // A GIF's screen may say 24×0 and still decode (found by the fuzz target): an
    // image with no pixels would reach the resizer and the encoders.
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt(format!(
            "it says it is {width}×{height} pixels"
        )));
    }
    if width > limits.max_side
        || height > limits.max_side
        || u64::from(width) * u64::from(height) > limits.max_pixels
    {
        return Err(too_many(width, height));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // Read before the decoder is consumed; an unreadable profile is no profile.
    let icc = decoder.icc_profile().ok().flatten();
    let grey = !decoder.color_type().has_color();
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => too_many(width, height),
        other => corrupt(&other),
    })?;
    let rotated = orientation != image::metadata::Orientation::NoTransforms;
    image.apply_orientation(orientation);
    // Moved rather than copied when it is RGBA already: one full-size buffer at a time.
    let mut pixels = image.into_rgba8();
    let icc_converted = icc.is_some_and(|icc| to_srgb(&mut pixels, &icc, grey));
    let has_alpha = pixels.pixels().any(|p| p.0[3] != u8::MAX);
    Ok(Decoded {
        pixels,
        format,
        has_alpha,
        rotated,
        icc_converted,
    })
}

/// Converts `pixels` (8-bit RGBA, grey repeated in R, G and B when `grey`) from the
/// space `icc` describes to sRGB, in place, a row at a time. Returns whether anything
/// was done: not for a profile that cannot be parsed or used (the pixels are kept as
/// they are, never an error), not for a CMYK profile (the JPEG decoder has already
/// turned CMYK into RGB without one), and not for a profile that is sRGB in all but
/// name (left untouched rather than rounded).
fn to_srgb(pixels: &mut RgbaImage, icc: &[u8], grey: bool) -> bool {
    use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};
    let Ok(source) = ColorProfile::new_from_slice(icc) else {
        return false;
    };
    let layout = match source.color_space {
        DataColorSpace::Rgb => Layout::Rgba,
        DataColorSpace::Gray if grey => Layout::GrayAlpha,
        _ => return false,
    };
    let Ok(transform) = source.create_transform_8bit(
        layout,
        &ColorProfile::new_srgb(),
        Layout::Rgba,
        TransformOptions::default(),
    ) else {
        return false;
    };
    // RGBA goes in as it is; grey as grey and alpha, taken from R and A.
    let fill = |rgba: &[u8], out: &mut Vec<u8>| {
        out.clear();
        if layout == Layout::Rgba {
            out.extend_from_slice(rgba);
        } else {
            out.extend(rgba.chunks_exact(4).flat_map(|p| [p[0], p[3]]));
        }
    };
    // sRGB under another name (v2 or v4, a curve or a table, a camera maker's copy)
    // moves no value by more than rounding: probe a grid of colours and leave it be.
    let levels = (0..=255u8).step_by(17);
    let grid: Vec<[u8; 4]> = levels
        .clone()
        .flat_map(|r| levels.clone().map(move |g| (r, g)))
        .flat_map(|(r, g)| levels.clone().map(move |b| [r, g, b, u8::MAX]))
        .filter(|p| layout == Layout::Rgba || (p[0] == p[1] && p[1] == p[2]))
        .collect();
    let mut probe = Vec::new();
    fill(grid.as_flattened(), &mut probe);
    let mut probed = vec![0; grid.len() * 4];
    if transform.transform(&probe, &mut probed).is_err() {
        return false;
    }
    let moved = grid
        .iter()
        .zip(probed.chunks_exact(4))
        .any(|(s, d)| (0..3).any(|c| s[c].abs_diff(d[c]) > 1));
    if !moved {
        return false;
    }
    let width = pixels.width() as usize;
    let mut source_row = Vec::with_capacity(width * 4);
    let mut converted = vec![0; width * 4];
    for row in pixels.chunks_exact_mut(width * 4) {
        fill(row, &mut source_row);
        // The lengths match by construction, the only thing a transform checks.
        if transform.transform(&source_row, &mut converted).is_ok() {
            row.copy_from_slice(&converted);
        }
    }
    true
}

/// The dimensions the header claims, read from the bytes without a decoder so that
/// they are checked before one allocates anything (`None` when the header is too short
/// to say: the decoder then reports the damage). Two shapes that would pass a
/// dimension check and still hurt are refused here as [`ImageError::Corrupt`]: a WebP
/// chunk claiming more bytes than the file holds (image-webp allocates a chunk's
/// claimed size before reading it, up to 4 GB), and a CMYK JPEG layout zune-jpeg
/// decodes to garbage.
fn header_dimensions(bytes: &[u8], format: SourceFormat) -> Result<Option<(u32, u32)>, ImageError> {
    let u16_le = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
    };
    Ok(match format {
        SourceFormat::Png => {
            // IHDR is the first chunk, at a fixed place.
            if bytes.len() >= 24 && &bytes[12..16] == b"IHDR" {
                let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
                let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
                Some((w, h))
            } else {
                None
            }
        }
        // The logical screen; frames are bounded by the gif crate's own memory limit.
        SourceFormat::Gif => u16_le(6).zip(u16_le(8)),
        SourceFormat::WebP => webp_dimensions(bytes)?,
        SourceFormat::Jpeg => jpeg_dimensions(bytes)?,
    })
}

/// Walks a WebP's RIFF chunks (each step moves on at least 8 bytes), refusing one that
/// claims more bytes than remain, and reads the size from the first: VP8X's canvas
/// (24 bits a side, so it can claim 100,000 × 100,000), VP8's or VP8L's frame.
fn webp_dimensions(bytes: &[u8]) -> Result<Option<(u32, u32)>, ImageError> {
    let le = |b: &[u8]| {
        b.iter()
            .rev()
            .fold(0u32, |n, &byte| n << 8 | u32::from(byte))
    };
    let Some(riff_size) = bytes.get(4..8).map(le) else {
        return Ok(None);
    };
    // Bytes after the RIFF's own size are not ours to judge (the decoder ignores them).
    let end = bytes.len().min((riff_size as usize).saturating_add(8));
    let mut dimensions = None;
    let mut at = 12;
    while at + 8 <= end {
        let kind = &bytes[at..at + 4];
        let size = le(&bytes[at + 4..at + 8]) as usize;
        let data = at + 8;
        if size > end - data {
            return Err(ImageError::Corrupt(format!(
                "a WebP {} chunk claims {size} bytes; the file holds {}",
                kind.escape_ascii().to_string().trim_end(),
                end - data
            )));
        }
        let body = &bytes[data..data + size];
        if at == 12 {
            dimensions = match kind {
                b"VP8X" if size >= 10 => Some((le(&body[4..7]) + 1, le(&body[7..10]) + 1)),
                b"VP8 " if size >= 10 => {
                    Some((le(&body[6..8]) & 0x3FFF, le(&body[8..10]) & 0x3FFF))
                }
                b"VP8L" if size >= 5 => {
                    let bits = le(&body[1..5]);
                    Some(((bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1))
                }
                _ => None,
            };
        }
        // Chunks are padded to an even length.
        at = data + size + (size & 1);
    }
    Ok(dimensions)
}

/// Reads a JPEG's frame header (SOFn) by walking the marker segments before it: each
/// step moves on, and the walk stops at the first scan, so it is bounded by the file.
fn jpeg_dimensions(bytes: &[u8]) -> Result<Option<(u32, u32)>, ImageError> {
    let mut at = 2; // after SOI
    loop {
        // Fill bytes (0xFF) may precede a marker.
        while bytes.get(at).is_some_and(|&b| b != 0xFF) {
            at += 1;
        }
        while bytes.get(at) == Some(&0xFF) {
            at += 1;
        }
        let Some(&marker) = bytes.get(at) else {
            return Ok(None);
        };
        at += 1;
        match marker {
            // Markers without a segment: TEM, RSTn, SOI.
            0x01 | 0xD0..=0xD8 => continue,
            // EOI or a scan before any frame header: the decoder will say what is wrong.
            0xD9 | 0xDA => return Ok(None),
            _ => {}
        }
        let Some(length) = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return Ok(None);
        };
        let Some(segment) = bytes.get(at + 2..at + length.max(2)) else {
            return Ok(None);
        };
        // SOF0..SOF15, but for DHT (C4), JPG (C8) and DAC (CC).
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let [_precision, h1, h0, w1, w0, count, components @ ..] = segment else {
                return Ok(None);
            };
            let sampling: Vec<(u8, u8)> = components
                .chunks_exact(3)
                .take(usize::from(*count))
                .map(|c| (c[1] >> 4, c[1] & 15))
                .collect();
            // zune-jpeg 0.5 sizes its upsampling from the first component, so a
            // four-component (CMYK or YCCK) image whose first channel is sampled more
            // coarsely than another decodes to black bands (or fails when progressive).
            // jpeg-encoder writes CMYK that way below quality 90 (black at 2×2, C, M
            // and Y at 1×1); Photoshop and libjpeg put the finest sampling first.
            if let [(h, v), rest @ ..] = sampling.as_slice() {
                if sampling.len() == 4 && rest.iter().any(|(rh, rv)| rh > h || rv > v) {
                    return Err(ImageError::Corrupt(
                        "this CMYK JPEG's channel layout is not supported; save it as an RGB JPEG"
                            .into(),
                    ));
                }
            }
            let w = u32::from(u16::from_be_bytes([*w1, *w0]));
            let h = u32::from(u16::from_be_bytes([*h1, *h0]));
            return Ok(Some((w, h)));
        }
        at += length.max(2);
    }
}
