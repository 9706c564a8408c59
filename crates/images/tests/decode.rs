//! Every kind of upload the issue names, good and bad, built here byte by byte or with
//! the image crate's encoders, plus the real photographs in ../shared/testdata/photos
//! when present.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod photos;

use std::io::Cursor;

use image::{ImageFormat, Luma, Rgb, Rgba, RgbaImage};
use napiatke_images::{decode, ImageError, Limits, SourceFormat};

fn encode(img: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn gradient(w: u32, h: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| Rgba([(x * 40) as u8, (y * 40) as u8, 90, 255]))
}

fn ok(bytes: &[u8]) -> napiatke_images::Decoded {
    decode(bytes, &Limits::default()).unwrap()
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
        enc.encode_frames(frames).unwrap();
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
    with_exif(jpeg, &tiff)
}

/// `jpeg` with an EXIF APP1 segment holding `tiff` right after its SOI.
fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(tiff);
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
    let img = rgb_gradient(64, 64);
    for format in CUT_FORMATS {
        let whole = encode(&img, format);
        assert_cut_handled(format, &whole, whole.len() / 2, (64, 64));
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
    let Some(entries) = photos::dir().and_then(|d| std::fs::read_dir(d).ok()) else {
        eprintln!("no photographs: skipped");
        return;
    };
    let mut seen = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jpg") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let d = ok(&bytes);
        assert_eq!(d.format, SourceFormat::Jpeg);
        assert!(!d.has_alpha && d.width() >= 1920, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 1, "the photographs folder holds no JPEG");
}

#[test]
fn sixteen_bit_alpha_and_grey_alpha_keep_their_alpha() {
    let deep =
        image::ImageBuffer::<Rgba<u16>, _>::from_pixel(3, 2, Rgba([65535u16, 32768, 0, 32768]));
    let d = ok(&encode(
        &image::DynamicImage::ImageRgba16(deep),
        ImageFormat::Png,
    ));
    assert_eq!(d.pixels.get_pixel(2, 1).0, [255, 128, 0, 128]);
    assert!(d.has_alpha);
    let grey = image::GrayAlphaImage::from_pixel(2, 2, image::LumaA([77, 100]));
    let d = ok(&encode(
        &image::DynamicImage::ImageLumaA8(grey),
        ImageFormat::Png,
    ));
    assert_eq!(d.pixels.get_pixel(1, 1).0, [77, 77, 77, 100]);
    assert!(d.has_alpha);
    let grey16 = image::ImageBuffer::<image::LumaA<u16>, _>::from_pixel(
        2,
        2,
        image::LumaA([0x8080u16, 0xFFFF]),
    );
    let d = ok(&encode(
        &image::DynamicImage::ImageLumaA16(grey16),
        ImageFormat::Png,
    ));
    assert_eq!(d.pixels.get_pixel(0, 0).0, [128, 128, 128, 255]);
    assert!(!d.has_alpha, "an opaque alpha channel is no alpha");
    // A greyscale JPEG too.
    let d = ok(&encode(
        &image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(16, 16, Luma([77]))),
        ImageFormat::Jpeg,
    ));
    let p = d.pixels.get_pixel(8, 8).0;
    assert!(
        p[0] == p[1] && p[1] == p[2] && p[0].abs_diff(77) <= 2 && p[3] == 255,
        "{p:?}"
    );
}

#[test]
fn a_paletted_png_keeps_its_transparency() {
    // 2×1, palette of red and blue, red half transparent (tRNS), blue opaque.
    let mut ihdr = 2u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 3, 0, 0, 0]);
    let mut idat = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut idat, &[0, 0, 1]).unwrap();
    let idat = idat.finish().unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&chunk(b"IHDR", &ihdr));
    png.extend_from_slice(&chunk(b"PLTE", &[255, 0, 0, 0, 0, 255]));
    png.extend_from_slice(&chunk(b"tRNS", &[128]));
    png.extend_from_slice(&chunk(b"IDAT", &idat));
    png.extend_from_slice(&chunk(b"IEND", &[]));
    let d = ok(&png);
    assert_eq!(d.format, SourceFormat::Png);
    assert_eq!(d.pixels.get_pixel(0, 0).0, [255, 0, 0, 128]);
    assert_eq!(d.pixels.get_pixel(1, 0).0, [0, 0, 255, 255]);
    assert!(d.has_alpha);
}

/// A JPEG with an EXIF APP1 segment holding a GPS block: latitude N 52° 13' 48",
/// map datum "WGS-84".
fn with_gps(jpeg: &[u8]) -> Vec<u8> {
    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    // IFD0 at 8: one entry, the GPS IFD pointer.
    let gps_ifd = 8 + 2 + 12 + 4;
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x8825u16.to_le_bytes());
    tiff.extend_from_slice(&4u16.to_le_bytes()); // LONG
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&u32::try_from(gps_ifd).unwrap_or(0).to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    // The GPS IFD: three entries, then the rationals and the datum text.
    let data = gps_ifd + 2 + 3 * 12 + 4;
    tiff.extend_from_slice(&3u16.to_le_bytes());
    for (tag, kind, count, value) in [
        (0x0001u16, 2u16, 2u32, u32::from_le_bytes(*b"N\0\0\0")), // GPSLatitudeRef
        (0x0002, 5, 3, u32::try_from(data).unwrap_or(0)),         // GPSLatitude
        (0x0012, 2, 7, u32::try_from(data + 24).unwrap_or(0)),    // GPSMapDatum
    ] {
        tiff.extend_from_slice(&tag.to_le_bytes());
        tiff.extend_from_slice(&kind.to_le_bytes());
        tiff.extend_from_slice(&count.to_le_bytes());
        tiff.extend_from_slice(&value.to_le_bytes());
    }
    tiff.extend_from_slice(&0u32.to_le_bytes());
    for (n, d) in [(52u32, 1u32), (13, 1), (48, 1)] {
        tiff.extend_from_slice(&n.to_le_bytes());
        tiff.extend_from_slice(&d.to_le_bytes());
    }
    tiff.extend_from_slice(b"WGS-84\0");
    with_exif(jpeg, &tiff)
}

#[test]
fn a_jpeg_with_a_gps_block_decodes_and_no_output_carries_it() {
    use napiatke_images::variants::{self, Format, Options};
    let img =
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(gradient(24, 16)).to_rgb8());
    let jpeg = with_gps(&encode(&img, ImageFormat::Jpeg));
    assert!(jpeg.windows(6).any(|w| w == b"WGS-84"));
    let d = ok(&jpeg);
    assert_eq!(
        (d.format, d.width(), d.height(), d.rotated),
        (SourceFormat::Jpeg, 24, 16, false)
    );
    let options = Options {
        avif_speed: 10,
        ..Options::default()
    };
    for format in Format::ALL {
        let out = variants::encode(&d.pixels, format, &options).unwrap();
        for needle in [&b"Exif"[..], b"WGS-84", b"GPS"] {
            assert!(
                !out.windows(needle.len()).any(|w| w == needle),
                "{format:?} carries {}",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[test]
fn files_cut_anywhere_get_a_message_or_a_picture_never_a_panic() {
    let img = rgb_gradient(40, 24);
    for format in CUT_FORMATS {
        let whole = encode(&img, format);
        // Every length through the headers, then a few dozen through the data.
        let cuts =
            (1..whole.len().min(160)).chain((160..whole.len()).step_by(whole.len() / 40 + 1));
        for cut in cuts {
            assert_cut_handled(format, &whole, cut, (40, 24));
        }
    }
}

/// The formats files are cut in.
const CUT_FORMATS: [ImageFormat; 4] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::Gif,
    ImageFormat::WebP,
];

/// An opaque gradient.
fn rgb_gradient(w: u32, h: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(gradient(w, h)).to_rgb8())
}

/// `whole` cut to `cut` bytes gets a message, or a picture of the whole's size (some
/// decoders fill a cut-off tail rather than fail: a correct output too), never a
/// panic; "not an image" only while the signature itself is cut.
fn assert_cut_handled(format: ImageFormat, whole: &[u8], cut: usize, size: (u32, u32)) {
    match decode(&whole[..cut], &Limits::default()) {
        Ok(d) => assert_eq!((d.width(), d.height()), size, "{format:?} at {cut}"),
        Err(ImageError::Corrupt(msg)) => assert!(!msg.is_empty()),
        Err(ImageError::NotAnImage(_)) => assert!(cut < 16, "{format:?} at {cut}"),
        Err(other) => panic!("{format:?} cut at {cut}: {other:?}"),
    }
}

/// The `TooManyPixels` a header claiming `w`×`h` gets with the default limits.
fn too_many(w: u32, h: u32) -> Option<ImageError> {
    Some(ImageError::TooManyPixels {
        width: w,
        height: h,
        max_side: 20_000,
        max_pixels: 50_000_000,
    })
}

/// A lossless WebP of a small image: RIFF, WEBP, then one VP8L chunk at 12.
fn small_webp() -> Vec<u8> {
    encode(
        &image::DynamicImage::ImageRgba8(gradient(4, 4)),
        ImageFormat::WebP,
    )
}

/// A WebP with the given chunks, RIFF size filled in.
fn riff(chunks: &[&[u8]]) -> Vec<u8> {
    let body: Vec<u8> = chunks.concat();
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&u32::try_from(body.len() + 4).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&body);
    out
}

/// A VP8X chunk: flags, then the canvas size less one in 24 bits each.
fn vp8x(flags: u8, w: u32, h: u32) -> Vec<u8> {
    let mut out = b"VP8X".to_vec();
    out.extend_from_slice(&10u32.to_le_bytes());
    out.extend_from_slice(&[flags, 0, 0, 0]);
    out.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    out.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
    out
}

#[test]
fn huge_claims_in_every_format_are_refused_from_the_header() {
    // JPEG and GIF sizes are 16-bit: 65,535 a side is the most they can claim.
    let mut jpeg = encode(
        &image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(8, 8, Rgb([9, 9, 9]))),
        ImageFormat::Jpeg,
    );
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .unwrap_or_else(|| panic!("a baseline frame header"));
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(
        decode(&jpeg, &Limits::default()).err(),
        too_many(65_535, 65_535)
    );
    // One side over the limit, the pixel count well within it.
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0x00, 0x01, 0x4E, 0x21]);
    assert_eq!(decode(&jpeg, &Limits::default()).err(), too_many(20_001, 1));

    let mut gif = encode(
        &image::DynamicImage::ImageRgba8(gradient(4, 4)),
        ImageFormat::Gif,
    );
    gif[6..10].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(
        decode(&gif, &Limits::default()).err(),
        too_many(65_535, 65_535)
    );

    // An extended WebP's canvas is 24-bit: 100,000 × 100,000 fits in its header.
    let webp = small_webp();
    assert_eq!(&webp[12..16], b"VP8L");
    let claim = riff(&[&vp8x(0, 100_000, 100_000), &webp[12..]]);
    assert_eq!(
        decode(&claim, &Limits::default()).err(),
        too_many(100_000, 100_000)
    );
    // A lossless frame's own 14-bit size: 16,384² is within the side limit, over the
    // pixel budget.
    let mut lossless = webp.clone();
    let bits = 16_383u32 | 16_383 << 14;
    lossless[21..25].copy_from_slice(&bits.to_le_bytes());
    assert_eq!(
        decode(&lossless, &Limits::default()).err(),
        too_many(16_384, 16_384)
    );
    // The untouched file is fine.
    assert_eq!(ok(&webp).width(), 4);
}

#[test]
fn a_webp_chunk_claiming_more_than_the_file_holds_is_refused() {
    // image-webp would allocate the ICC chunk's claimed 4 GB before reading it.
    let webp = small_webp();
    let mut iccp = b"ICCP".to_vec();
    iccp.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    iccp.extend_from_slice(&[0; 16]);
    let claim = riff(&[&vp8x(0x20, 4, 4), &webp[12..], &iccp]);
    match decode(&claim, &Limits::default()) {
        Err(ImageError::Corrupt(msg)) => assert!(msg.contains("ICCP"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // The same with an honest ICC chunk (not a profile: ignored) reads.
    let mut iccp = b"ICCP".to_vec();
    iccp.extend_from_slice(&16u32.to_le_bytes());
    iccp.extend_from_slice(&[0; 16]);
    let d = ok(&riff(&[&vp8x(0x20, 4, 4), &webp[12..], &iccp]));
    assert_eq!((d.width(), d.icc_converted), (4, false));
}

/// Found by `fuzz_decoding_stays_within_limits` (seed 12953033376784036584): a GIF
/// whose screen is 24×0 decoded as an image with no pixels. Refused as damaged.
#[test]
fn an_image_with_no_pixels_is_refused() {
    let gif: &[u8] = &[
        71, 73, 70, 56, 57, 97, 24, 0, 0, 0, 128, 0, 0, 0, 0, 0, 0, 0, 0, 33, 249, 4, 8, 0, 0, 0,
        0, 44, 0, 0, 0, 0, 24, 0, 16, 0, 135, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let seeded = napiatke_images::decode(gif, &napiatke_images::Limits::default());
    assert!(
        matches!(seeded, Err(napiatke_images::ImageError::Corrupt(_))),
        "{seeded:?}"
    );
    // The same shape written by an encoder, its height then zeroed in the header.
    let mut made = encode(
        &image::DynamicImage::ImageRgba8(gradient(24, 16)),
        ImageFormat::Gif,
    );
    made[8..10].copy_from_slice(&0u16.to_le_bytes());
    let zero = napiatke_images::decode(&made, &napiatke_images::Limits::default());
    assert!(zero.is_err(), "{zero:?}");
}
