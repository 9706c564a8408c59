//! Colour: pixels tagged with an ICC profile other than sRGB come out in sRGB (checked
//! against the colour-space maths done here by hand, not against moxcms itself), sRGB
//! and broken profiles leave them alone, and CMYK/YCCK JPEGs come out in the right
//! RGB.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgba, RgbaImage};
use napiatke_images::{decode, Decoded, ImageError, Limits};

fn ok(bytes: &[u8]) -> Decoded {
    decode(bytes, &Limits::default()).unwrap()
}

fn icc(profile: &moxcms::ColorProfile) -> Vec<u8> {
    profile.encode().unwrap()
}

/// A 2×2 block of each colour, side by side.
fn swatches(colours: &[[u8; 4]]) -> RgbaImage {
    RgbaImage::from_fn(2 * colours.len() as u32, 2, |x, _| {
        Rgba(colours[(x / 2) as usize])
    })
}

fn swatch(d: &Decoded, i: usize) -> [u8; 4] {
    d.pixels.get_pixel(2 * i as u32, 1).0
}

/// Writes `img` through `enc`, with `profile` embedded when given.
fn write_with(mut enc: impl image::ImageEncoder, img: &RgbaImage, profile: Option<Vec<u8>>) {
    if let Some(p) = profile {
        enc.set_icc_profile(p).unwrap();
    }
    enc.write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        ExtendedColorType::Rgba8,
    )
    .unwrap();
}

fn png_with(img: &RgbaImage, profile: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    write_with(PngEncoder::new(&mut out), img, profile);
    out
}

/// The sRGB transfer function and its inverse, on 0–1.
fn srgb_to_linear(v: f64) -> f64 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb(v: f64) -> f64 {
    let v = v.clamp(0.0, 1.0);
    if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

/// What an RGB colour in another space is in sRGB: linearise with `decode`, apply
/// the space's linear-to-linear-sRGB matrix, clip, encode.
fn expected(rgb: [u8; 3], decode: impl Fn(f64) -> f64, m: [[f64; 3]; 3]) -> [u8; 3] {
    let lin = rgb.map(|c| decode(f64::from(c) / 255.0));
    let out: [f64; 3] = std::array::from_fn(|i| (0..3).map(|j| m[i][j] * lin[j]).sum());
    out.map(|v| (linear_to_srgb(v) * 255.0).round() as u8)
}

/// Display P3 (D65, sRGB's curve) to sRGB, linear.
const P3_TO_SRGB: [[f64; 3]; 3] = [
    [1.224_940_2, -0.224_940_2, 0.0],
    [-0.042_056_9, 1.042_057_1, 0.0],
    [-0.019_637_6, -0.078_636_1, 1.098_273_5],
];

/// Adobe RGB (1998) (D65, gamma 563/256) to sRGB, linear.
const ADOBE_TO_SRGB: [[f64; 3]; 3] = [
    [1.398_2, -0.398_2, 0.0],
    [0.0, 1.0, 0.0],
    [0.0, -0.042_9, 1.042_9],
];

fn close(got: [u8; 4], want: [u8; 3], tolerance: u8, what: &str) {
    assert!(
        (0..3).all(|c| got[c].abs_diff(want[c]) <= tolerance),
        "{what}: got {got:?}, expected {want:?} ± {tolerance}"
    );
}

const SAMPLES: [[u8; 4]; 4] = [
    [255, 0, 0, 255],     // the most saturated red: out of sRGB, clipped
    [200, 100, 50, 255],  // an orange: inside sRGB, moved
    [40, 180, 90, 128],   // a half-transparent green
    [128, 128, 128, 255], // grey stays grey
];

#[test]
fn a_display_p3_png_comes_out_in_srgb() {
    let img = swatches(&SAMPLES);
    let d = ok(&png_with(
        &img,
        Some(icc(&moxcms::ColorProfile::new_display_p3())),
    ));
    assert!(d.icc_converted);
    for (i, s) in SAMPLES.iter().enumerate() {
        let want = expected([s[0], s[1], s[2]], srgb_to_linear, P3_TO_SRGB);
        close(swatch(&d, i), want, 2, &format!("P3 {s:?}"));
        assert_eq!(swatch(&d, i)[3], s[3], "alpha kept");
    }
    // P3's red is redder than sRGB can show: clipped to sRGB's red. The orange, inside
    // both gamuts, has numbers unlike its P3 ones.
    close(swatch(&d, 0), [255, 0, 0], 2, "clipped red");
    assert!(
        swatch(&d, 1)[0] >= 210 && swatch(&d, 1)[2] <= 40,
        "{:?}",
        swatch(&d, 1)
    );
    assert!(d.has_alpha);
}

#[test]
fn an_adobe_rgb_jpeg_comes_out_in_srgb() {
    let colours = [[200u8, 100, 50], [60, 160, 200]];
    let img = image::RgbImage::from_fn(32, 16, |x, _| image::Rgb(colours[(x / 16) as usize]));
    let mut jpeg = Vec::new();
    let mut enc = JpegEncoder::new_with_quality(&mut jpeg, 100);
    enc.set_icc_profile(icc(&moxcms::ColorProfile::new_adobe_rgb()))
        .unwrap();
    enc.write_image(img.as_raw(), 32, 16, ExtendedColorType::Rgb8)
        .unwrap();
    assert!(
        jpeg.windows(12).any(|w| w == b"ICC_PROFILE\0"),
        "APP2 written"
    );
    let d = ok(&jpeg);
    assert!(d.icc_converted);
    let gamma = |v: f64| v.powf(563.0 / 256.0);
    for (i, c) in colours.iter().enumerate() {
        let want = expected(*c, gamma, ADOBE_TO_SRGB);
        close(
            d.pixels.get_pixel(16 * i as u32 + 8, 8).0,
            want,
            4,
            "Adobe RGB",
        );
    }
}

#[test]
fn a_webp_iccp_chunk_is_honoured() {
    let img = swatches(&SAMPLES);
    let mut webp = Vec::new();
    write_with(
        WebPEncoder::new_lossless(Cursor::new(&mut webp)),
        &img,
        Some(icc(&moxcms::ColorProfile::new_display_p3())),
    );
    assert!(webp.windows(4).any(|w| w == b"ICCP"));
    let d = ok(&webp);
    assert!(d.icc_converted);
    let want = expected([200, 100, 50], srgb_to_linear, P3_TO_SRGB);
    close(swatch(&d, 1), want, 2, "P3 orange in WebP");
    assert_eq!(swatch(&d, 2)[3], 128, "alpha kept");
}

#[test]
fn srgb_no_profile_and_broken_profiles_leave_pixels_alone() {
    let img = swatches(&SAMPLES);
    let garbage = b"not an ICC profile at all, just some bytes that claim to be".to_vec();
    // A header that parses, for a colour space we cannot use: a CMYK printer profile
    // on RGB pixels.
    let mut cmyk = icc(&moxcms::ColorProfile::new_srgb());
    cmyk[16..20].copy_from_slice(b"CMYK");
    for profile in [
        None,
        Some(icc(&moxcms::ColorProfile::new_srgb())),
        Some(garbage),
        Some(cmyk),
        Some(Vec::new()),
    ] {
        let what = format!("{:?}", profile.as_ref().map(|p| p.len()));
        let d = ok(&png_with(&img, profile));
        assert!(!d.icc_converted, "{what}");
        assert_eq!(d.pixels.as_raw(), img.as_raw(), "{what}: unchanged");
    }
}

#[test]
fn a_grey_png_with_a_linear_grey_profile_is_brightened_and_keeps_alpha() {
    let grey = image::GrayAlphaImage::from_pixel(3, 3, image::LumaA([128, 77]));
    let mut png = Vec::new();
    let mut enc = PngEncoder::new(&mut png);
    enc.set_icc_profile(icc(&moxcms::ColorProfile::new_gray_with_gamma(1.0)))
        .unwrap();
    enc.write_image(grey.as_raw(), 3, 3, ExtendedColorType::La8)
        .unwrap();
    let d = ok(&png);
    assert!(d.icc_converted);
    // 128/255 of linear light is sRGB 188.
    let want = (linear_to_srgb(128.0 / 255.0) * 255.0).round() as u8;
    close(d.pixels.get_pixel(1, 1).0, [want; 3], 2, "linear grey");
    assert_eq!(d.pixels.get_pixel(1, 1).0[3], 77);
}

/// A flat `w`×`h` JPEG of one CMYK colour (ink amounts, 0 = none), written by
/// jpeg-encoder as Photoshop does: an Adobe APP14 marker and inverted samples, as
/// plain CMYK (transform 0) or YCCK (transform 2).
fn cmyk_jpeg(ink: [u8; 4], ycck: bool, quality: u8, progressive: bool) -> Vec<u8> {
    let (w, h) = (37u16, 23u16);
    let data: Vec<u8> = (0..usize::from(w) * usize::from(h))
        .flat_map(|_| ink)
        .collect();
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.set_progressive(progressive);
    let colour = if ycck {
        jpeg_encoder::ColorType::CmykAsYcck
    } else {
        jpeg_encoder::ColorType::Cmyk
    };
    enc.encode(&data, w, h, colour).unwrap();
    out
}

#[test]
fn cmyk_and_ycck_jpegs_come_out_in_the_right_rgb() {
    let inks: [([u8; 4], [u8; 3]); 6] = [
        ([0, 0, 0, 0], [255, 255, 255]),      // paper
        ([0, 255, 255, 0], [255, 0, 0]),      // red
        ([255, 0, 0, 0], [0, 255, 255]),      // cyan
        ([0, 0, 0, 128], [127, 127, 127]),    // half black: mid grey
        ([0, 0, 0, 255], [0, 0, 0]),          // black
        ([84, 41, 112, 45], [141, 176, 118]), // (255 - ink) × (255 - black) / 255
    ];
    // Plain CMYK at full quality (every channel 1×1), YCCK as libjpeg lays it out
    // (Y and K 2×2 below quality 90), baseline and progressive.
    for (ycck, quality, progressive) in [
        (false, 100, false),
        (false, 100, true),
        (true, 100, false),
        (true, 80, false),
        (true, 80, true),
    ] {
        let adobe_transform = if ycck { 2 } else { 0 };
        for (ink, rgb) in inks {
            let jpeg = cmyk_jpeg(ink, ycck, quality, progressive);
            let app14 = jpeg
                .windows(5)
                .position(|w| w == b"Adobe")
                .unwrap_or_else(|| panic!("an Adobe APP14 marker"));
            assert_eq!(jpeg[app14 + 11], adobe_transform);
            let d = ok(&jpeg);
            let what = format!("ycck {ycck} q{quality} progressive {progressive} {ink:?}");
            for (x, y) in [(0, 0), (18, 11), (36, 22)] {
                close(d.pixels.get_pixel(x, y).0, rgb, 3, &what);
            }
            assert!(!d.has_alpha);
        }
    }
}

#[test]
fn a_cmyk_jpeg_with_its_black_sampled_finer_than_cyan_is_refused() {
    // jpeg-encoder below quality 90 samples K at 2×2 and C, M, Y at 1×1; zune-jpeg
    // sizes its upsampling from the first channel and decodes that to black bands (or,
    // progressive, fails), where libjpeg's djpeg gives flat red.
    for progressive in [false, true] {
        match decode(
            &cmyk_jpeg([0, 255, 255, 0], false, 80, progressive),
            &Limits::default(),
        ) {
            Err(ImageError::Corrupt(msg)) => assert!(msg.contains("CMYK"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
}
