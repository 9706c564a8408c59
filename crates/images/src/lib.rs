//! Uploaded images made safe: [`decode`] identifies the format from the bytes
//! themselves (never a file name), refuses what is too big from the header alone,
//! before a single pixel is allocated (a decompression bomb costs nothing), applies
//! the EXIF orientation and hands back 8-bit RGBA with its alpha kept. Nothing of the
//! input's metadata survives: outputs are built from pixels only.
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

pub mod pipeline;
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
    // A PNG's size is at a fixed place: check it before any decoder runs.
    if let Some((w, h)) = header_dimensions(bytes) {
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
            let (w, h) = header_dimensions(bytes).unwrap_or((0, 0));
            return Err(too_many(w, h));
        }
        Err(e) => return Err(corrupt(&e)),
    };
    let (width, height) = decoder.dimensions();
    if width > limits.max_side
        || height > limits.max_side
        || u64::from(width) * u64::from(height) > limits.max_pixels
    {
        return Err(too_many(width, height));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => too_many(width, height),
        other => corrupt(&other),
    })?;
    let rotated = orientation != image::metadata::Orientation::NoTransforms;
    image.apply_orientation(orientation);
    let pixels = image.to_rgba8();
    let has_alpha = image.color().has_alpha() && pixels.pixels().any(|p| p.0[3] != u8::MAX);
    Ok(Decoded {
        pixels,
        format,
        has_alpha,
        rotated,
    })
}

/// The dimensions a header claims, for the refusal message when the decoder stops at
/// its limits before reporting them (PNG's IHDR; other formats report 0×0).
fn header_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() >= 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR" {
        let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
        let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
        return Some((w, h));
    }
    None
}
