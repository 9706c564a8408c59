//! ravif's output decoded back: colour and alpha close to the source, and cut-short
//! or foreign files refused with an error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use napiatke_avif_decode::{decode, DecodeError};

fn source(w: usize, h: usize, alpha: bool) -> Vec<ravif::RGBA8> {
    (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            let a = if alpha { (x * 255 / w) as u8 } else { 255 };
            ravif::RGBA8::new((x * 255 / w) as u8, (y * 255 / h) as u8, 200, a)
        })
        .collect()
}

fn encode(pixels: &[ravif::RGBA8], w: usize, h: usize) -> Vec<u8> {
    ravif::Encoder::new()
        .with_quality(95.0)
        .with_alpha_quality(95.0)
        .with_speed(10)
        .encode_rgba(ravif::Img::new(pixels, w, h))
        .unwrap()
        .avif_file
}

fn worst(decoded: &[u8], pixels: &[ravif::RGBA8], skip_transparent: bool) -> u8 {
    decoded
        .chunks_exact(4)
        .zip(pixels)
        .filter(|(_, p)| !skip_transparent || p.a > 32)
        .flat_map(|(d, p)| {
            [
                d[0].abs_diff(p.r),
                d[1].abs_diff(p.g),
                d[2].abs_diff(p.b),
                d[3].abs_diff(p.a),
            ]
        })
        .max()
        .unwrap()
}

#[test]
fn opaque_and_transparent_images_come_back_close_to_their_source() {
    for alpha in [false, true] {
        let (w, h) = (96, 40);
        let pixels = source(w, h, alpha);
        let image = decode(&encode(&pixels, w, h)).unwrap();
        assert_eq!((image.width, image.height), (96, 40));
        let off = worst(&image.rgba, &pixels, alpha);
        assert!(off <= 12, "alpha {alpha}: a channel off by {off}");
        if alpha {
            assert!(image.rgba[3] < 16 && image.rgba[(w - 1) * 4 + 3] > 240);
        } else {
            assert!(image.rgba.chunks_exact(4).all(|p| p[3] == 255));
        }
    }
}

#[test]
fn damaged_files_are_errors() {
    let file = encode(&source(64, 64, true), 64, 64);
    // Every cut: the container no longer holds the items it lists.
    for len in (0..file.len()).step_by(7) {
        assert!(decode(&file[..len]).is_err(), "cut at {len}");
    }
    assert!(decode(&file).is_ok());
    assert!(matches!(decode(b""), Err(DecodeError::Container(_))));
    assert!(matches!(
        decode(b"\0\0\0\x10ftypavif\0\0\0\0"),
        Err(DecodeError::Container(_))
    ));
    // Not tested: scrambled AV1 data inside a well-formed container. rav1d 1.1
    // panics on some (an unwrap in decode.rs) inside its `extern "C"` API, which
    // aborts; this decoder is only ever given what ravif has just written in memory,
    // never an upload (the crate docs say so).
}
