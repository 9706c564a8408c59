//! Decodes the still AVIF images napiatke's encoder (ravif) writes back to 8-bit
//! RGBA, as a browser would show them, so that the image pipeline can score each
//! encoding against its source. The AV1 decoder is rav1d, the pure-Rust port of
//! dav1d; the container reader understands what ravif writes (a primary item, an
//! optional `auxl` alpha item, `nclx` colour) and refuses anything it cannot place.
//!
//! Only for bytes ravif has just written, never for uploads: rav1d 1.1 panics on
//! some malformed AV1 data inside its C-style API, which cannot unwind and aborts.
//!
//! ```
//! let rgba: Vec<ravif::RGBA8> = (0..64 * 48)
//!     .map(|i| ravif::RGBA8::new((i % 64 * 4) as u8, (i / 64 * 5) as u8, 90, 255))
//!     .collect();
//! let avif = ravif::Encoder::new()
//!     .with_quality(90.0)
//!     .with_speed(10)
//!     .encode_rgba(ravif::Img::new(rgba.as_slice(), 64, 48))
//!     .unwrap()
//!     .avif_file;
//! let image = napiatke_avif_decode::decode(&avif)?;
//! assert_eq!((image.width, image.height, image.rgba.len()), (64, 48, 64 * 48 * 4));
//! // Close to the source: a gradient survives quality 90 within a few levels.
//! let worst = image.rgba.iter().zip(rgba.iter().flat_map(|p| [p.r, p.g, p.b, p.a]))
//!     .map(|(&a, b)| a.abs_diff(b)).max().unwrap();
//! assert!(worst <= 8, "{worst}");
//! assert!(napiatke_avif_decode::decode(b"not an avif").is_err());
//! # Ok::<(), napiatke_avif_decode::DecodeError>(())
//! ```

mod av1;
mod container;

/// Why a file could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The HEIF boxes are damaged or not what ravif writes.
    #[error("AVIF container: {0}")]
    Container(String),
    /// The AV1 decoder refused the data.
    #[error("AV1 data: {0}")]
    Av1(String),
    /// Valid, but a layout or colour description this decoder does not convert.
    #[error("unsupported AVIF: {0}")]
    Unsupported(String),
}

/// A decoded image: `width`×`height` pixels of 8-bit RGBA, unassociated alpha.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// Row-major RGBA, 4 bytes a pixel.
    pub rgba: Vec<u8>,
}

/// Decodes `avif` (see the crate docs).
pub fn decode(avif: &[u8]) -> Result<Image, DecodeError> {
    let items = container::parse(avif)?;
    let color = av1::decode(&items.color.concat())?;
    let (width, height) = (color.width, color.height);
    let alpha = match &items.alpha {
        Some(data) => {
            let alpha = av1::decode(&data.concat())?;
            if (alpha.width, alpha.height) != (width, height) || alpha.planes.len() != 1 {
                return Err(DecodeError::Unsupported(
                    "an alpha plane of another size".into(),
                ));
            }
            Some(alpha)
        }
        None => None,
    };
    let max = f32::from(u16::try_from((1u32 << color.bits) - 1).unwrap_or(u16::MAX));
    let to8 = |v: f32| (v * 255.0 / max).round().clamp(0.0, 255.0) as u8;
    // Limited range stretches [16, 235] (scaled to the depth) to the full scale.
    let (offset, range) = if items.full_range {
        (0.0, max)
    } else {
        let unit = max / 255.0;
        (16.0 * unit, 219.0 * unit)
    };
    let luma = |y: u16| (f32::from(y) - offset) * max / range;
    let mut rgba = Vec::with_capacity(width * height * 4);
    match (color.planes.as_slice(), items.matrix.unwrap_or(6)) {
        ([g], _) => {
            for &y in g {
                let v = to8(luma(y));
                rgba.extend([v, v, v, 255]);
            }
        }
        ([y, u, v], 0) => {
            // Identity: the planes are G, B and R.
            for ((&g, &b), &r) in y.iter().zip(u).zip(v) {
                rgba.extend([to8(f32::from(r)), to8(f32::from(g)), to8(f32::from(b)), 255]);
            }
        }
        ([y, u, v], matrix @ (1 | 5 | 6)) => {
            let (kr, kb) = if matrix == 1 {
                (0.2126, 0.0722)
            } else {
                (0.299, 0.114)
            };
            let kg = 1.0 - kr - kb;
            let half = (max * 0.5).round();
            let chroma_scale = if items.full_range {
                1.0
            } else {
                max / (224.0 * max / 255.0)
            };
            for ((&y, &cb), &cr) in y.iter().zip(u).zip(v) {
                let y = luma(y);
                let cb = (f32::from(cb) - half) * chroma_scale;
                let cr = (f32::from(cr) - half) * chroma_scale;
                let r = y + 2.0 * (1.0 - kr) * cr;
                let b = y + 2.0 * (1.0 - kb) * cb;
                let g = (y - kr * r - kb * b) / kg;
                rgba.extend([to8(r), to8(g), to8(b), 255]);
            }
        }
        (_, matrix) => {
            return Err(DecodeError::Unsupported(format!(
                "matrix coefficients {matrix}"
            )))
        }
    }
    if let Some(alpha) = alpha {
        let amax = f32::from(u16::try_from((1u32 << alpha.bits) - 1).unwrap_or(u16::MAX));
        for (px, &a) in rgba.chunks_exact_mut(4).zip(&alpha.planes[0]) {
            px[3] = (f32::from(a) * 255.0 / amax).round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(Image {
        width: u32::try_from(width).map_err(|_| DecodeError::Av1("width".into()))?,
        height: u32::try_from(height).map_err(|_| DecodeError::Av1("height".into()))?,
        rgba,
    })
}
