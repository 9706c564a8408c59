//! Every kind of upload the issue names, good and bad, built here byte by byte or with
//! the image crate's encoders, plus the real photographs in ../shared/testdata/photos
//! when present.

use std::io::Cursor;

use image::{ImageFormat, Luma, Rgb, Rgba, RgbaImage};
use napiatke_images::{decode, ImageError, Limits, SourceFormat};

fn encode(img: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format)
        .unwrap_or_else(|e| panic!("{e}"));
    out
}

fn gradient(w: u32, h: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| Rgba([(x * 40) as u8, (y * 40) as u8, 90, 255]))
}

fn ok(bytes: &[u8]) -> napiatke_images::Decoded {
    decode(bytes, &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_four_formats_are_read_by_content() {
    let img = image::DynamicImage::ImageRgba8(gradient(6, 4));
    for (format, expected) in [
        (ImageFormat::Png, SourceFormat::Png),
        (ImageFormat::Gif, SourceFormat::Gif),
        (ImageFormat::WebP, SourceFormat::WebP),
    ] {
        let d = ok(&encode(&img, format));
        assert_eq!((d.format, d.width(), d.height()), (expected, 6, 4));
    }
    let jpeg = encode(
        &image::DynamicImage::ImageRgb8(img.to_rgb8()),
        ImageFormat::Jpeg,
    );
    let d = ok(&jpeg);
    assert_eq!((d.format, d.has_alpha), (SourceFormat::Jpeg, false));
}

#[test]
fn a_wrong_extension_changes_nothing() {
    // There is no file name in the API at all: a PNG saved as photo.jpg is a PNG.
    let png = encode(
        &image::DynamicImage::ImageRgba8(gradient(3, 3)),
        ImageFormat::Png,
    );
    assert_eq!(ok(&png).format, SourceFormat::Png);
}

#[test]
fn alpha_is_kept_and_reported() {
    let mut img = gradient(4, 4);
    img.put_pixel(1, 1, Rgba([255, 0, 0, 0]));
    let d = ok(&encode(
        &image::DynamicImage::ImageRgba8(img),
        ImageFormat::Png,
    ));
    assert!(d.has_alpha);
    assert_eq!(
        d.pixels.get_pixel(1, 1).0,
        [255, 0, 0, 0],
        "not flattened onto black"
    );
    // An alpha channel that is opaque everywhere is no alpha.
    let opaque = ok(&encode(
        &image::DynamicImage::ImageRgba8(gradient(4, 4)),
        ImageFormat::Png,
    ));
    assert!(!opaque.has_alpha);
}

#[test]
fn sixteen_bit_and_grey_become_8_bit_rgba() {
    let deep =
        image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(3, 2, Rgb([65535u16, 32768, 0]));
    let d = ok(&encode(
        &image::DynamicImage::ImageRgb16(deep),
        ImageFormat::Png,
    ));
    assert_eq!(d.pixels.get_pixel(0, 0).0, [255, 128, 0, 255]);
    let grey = image::GrayImage::from_pixel(2, 2, Luma([77]));
    let d = ok(&encode(
        &image::DynamicImage::ImageLuma8(grey),
        ImageFormat::Png,
    ));
    assert_eq!(d.pixels.get_pixel(1, 1).0, [77, 77, 77, 255]);
}

#[test]
fn an_animated_gif_gives_its_first_frame() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut bytes);
        let frames = [Rgba([255, 0, 0, 255]), Rgba([0, 0, 255, 255])].map(|c| {
            Frame::from_parts(
                RgbaImage::from_pixel(5, 5, c),
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            )
        });
        enc.encode_frames(frames).unwrap_or_else(|e| panic!("{e}"));
    }
    let d = ok(&bytes);
    assert_eq!(d.format, SourceFormat::Gif);
    let p = d.pixels.get_pixel(2, 2).0;
    assert!(p[0] > 200 && p[2] < 50, "the first (red) frame: {p:?}");
}

/// A JPEG with an EXIF APP1 segment whose only tag is Orientation.
fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD right after the header
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let len = u16::try_from(app1.len() + 2).unwrap_or(u16::MAX);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied() {
    // 8 wide, 4 tall; orientation 6 means "rotate 90° clockwise to view".
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(8, 4, |x, _| {
        if x < 4 {
            Rgb([250, 0, 0])
        } else {
            Rgb([0, 0, 250])
        }
    }));
    let jpeg = encode(&img, ImageFormat::Jpeg);
    let plain = ok(&jpeg);
    assert_eq!(
        (plain.width(), plain.height(), plain.rotated),
        (8, 4, false)
    );
    let turned = ok(&with_orientation(&jpeg, 6));
    assert_eq!(
        (turned.width(), turned.height(), turned.rotated),
        (4, 8, true)
    );
    // The left (red) half is now on top.
    let top = turned.pixels.get_pixel(2, 1).0;
    assert!(top[0] > 200 && top[2] < 60, "{top:?}");
}

/// A PNG chunk with its length and CRC.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(&body);
    let mut out = u32::try_from(data.len())
        .unwrap_or(0)
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out
}

/// A well-formed PNG claiming `w`×`h` 8-bit RGBA pixels with a tiny (empty) IDAT:
/// a few dozen bytes that would ask a naive decoder for w × h × 4 bytes.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&chunk(b"IHDR", &ihdr));
    out.extend_from_slice(&chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    out.extend_from_slice(&chunk(b"IEND", &[]));
    out
}

#[test]
fn a_header_claiming_100000_square_is_refused_before_any_pixel() {
    let err = decode(&png_header(100_000, 100_000), &Limits::default()).err();
    assert_eq!(
        err,
        Some(ImageError::TooManyPixels {
            width: 100_000,
            height: 100_000,
            max_side: 20_000,
            max_pixels: 50_000_000
        })
    );
    // Within the side limit but over the pixel budget: 10,000 × 10,000 = 100 MP.
    let err = decode(&png_header(10_000, 10_000), &Limits::default()).err();
    assert!(
        matches!(
            err,
            Some(ImageError::TooManyPixels {
                width: 10_000,
                height: 10_000,
                ..
            })
        ),
        "{err:?}"
    );
}

#[test]
fn bad_bytes_get_a_message_not_a_crash() {
    assert_eq!(
        decode(b"", &Limits::default()).err(),
        Some(ImageError::Empty)
    );
    assert_eq!(
        decode(b"hello, I am a text file", &Limits::default()).err(),
        Some(ImageError::NotAnImage(None))
    );
    let bmp = encode(
        &image::DynamicImage::ImageRgba8(gradient(2, 2)),
        ImageFormat::Png,
    );
    // A BMP signature is recognised but not accepted.
    let mut fake_bmp = b"BM".to_vec();
    fake_bmp.extend_from_slice(&bmp);
    assert!(matches!(
        decode(&fake_bmp, &Limits::default()).err(),
        Some(ImageError::NotAnImage(_)) | Some(ImageError::Corrupt(_))
    ));
    let img =
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(gradient(64, 64)).to_rgb8());
    for format in [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::WebP,
    ] {
        let whole = encode(&img, format);
        let cut = &whole[..whole.len() / 2];
        match decode(cut, &Limits::default()) {
            Err(ImageError::Corrupt(msg)) => assert!(!msg.is_empty()),
            // Some decoders fill a cut-off tail rather than fail; that is a correct
            // output too, never a crash.
            Ok(d) => assert_eq!((d.width(), d.height()), (64, 64), "{format:?}"),
            Err(other) => panic!("{format:?}: {other}"),
        }
    }
    let limits = Limits {
        max_bytes: 100,
        ..Limits::default()
    };
    let big = encode(&img, ImageFormat::Png);
    assert_eq!(
        decode(&big, &limits).err(),
        Some(ImageError::TooLarge {
            bytes: big.len(),
            max: 100
        })
    );
    let msg = ImageError::TooLarge {
        bytes: 25_000_000,
        max: 20_000_000,
    }
    .to_string();
    assert_eq!(
        msg,
        "the file is 25000000 bytes; the most accepted is 20000000 bytes"
    );
}

#[test]
fn the_test_photographs_decode_upright_and_opaque() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/photos");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no photographs at {}: skipped", dir.display());
        return;
    };
    let mut seen = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jpg") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let d = ok(&bytes);
        assert_eq!(d.format, SourceFormat::Jpeg);
        assert!(!d.has_alpha && d.width() >= 1920, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 1 || !dir.exists());
}
