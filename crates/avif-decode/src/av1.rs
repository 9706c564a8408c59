//! One AV1 still frame decoded by rav1d through dav1d's C API (rav1d's only public
//! interface), copied out into owned planes before anything is released. Every
//! `unsafe` block is one of that API's calls, made as its documentation requires.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::ptr::NonNull;

use rav1d::include::dav1d::data::Dav1dData;
use rav1d::include::dav1d::dav1d::{Dav1dContext, Dav1dSettings};
use rav1d::include::dav1d::headers::{DAV1D_PIXEL_LAYOUT_I400, DAV1D_PIXEL_LAYOUT_I444};
use rav1d::include::dav1d::picture::Dav1dPicture;
use rav1d::src::lib::{
    dav1d_close, dav1d_data_create, dav1d_data_unref, dav1d_default_settings, dav1d_get_picture,
    dav1d_open, dav1d_picture_unref, dav1d_send_data,
};

use crate::DecodeError;

/// A decoded frame: one plane (monochrome) or three (4:4:4), each `width`×`height`
/// samples of `bits` bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub bits: u32,
    pub planes: Vec<Vec<u16>>,
}

fn failed(call: &str, code: i32) -> DecodeError {
    DecodeError::Av1(format!("{call} returned {code}"))
}

const EAGAIN: i32 = -11;

/// The decoder context, closed when dropped.
struct Context(Option<Dav1dContext>);

impl Drop for Context {
    fn drop(&mut self) {
        if self.0.is_some() {
            // SAFETY: the context came from `dav1d_open` and is closed only here.
            unsafe { dav1d_close(Some(NonNull::from(&mut self.0))) };
        }
    }
}

/// Data handed to the decoder, released when dropped (a no-op once consumed).
struct Data(Dav1dData);

impl Drop for Data {
    fn drop(&mut self) {
        // SAFETY: the data came from `dav1d_data_create`; unref accepts consumed data.
        unsafe { dav1d_data_unref(Some(NonNull::from(&mut self.0))) };
    }
}

/// A decoded picture, released when dropped.
struct Picture(Dav1dPicture);

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: the picture was written by `dav1d_get_picture` (or is the default,
        // which unref treats as empty).
        unsafe { dav1d_picture_unref(Some(NonNull::from(&mut self.0))) };
    }
}

/// Decodes the first frame of `obus` (a still image's temporal unit).
pub fn decode(obus: &[u8]) -> Result<Frame, DecodeError> {
    if obus.is_empty() {
        return Err(DecodeError::Av1("no AV1 data".into()));
    }
    let mut settings = MaybeUninit::<Dav1dSettings>::uninit();
    // SAFETY: `settings` is valid to write to; the call initialises all of it.
    let mut settings = unsafe {
        dav1d_default_settings(NonNull::new_unchecked(settings.as_mut_ptr()));
        settings.assume_init()
    };
    // The caller runs one image per thread already.
    settings.n_threads = 1;
    settings.max_frame_delay = 1;
    let mut context = Context(None);
    // SAFETY: both pointers are to live locals of the right types.
    let code = unsafe {
        dav1d_open(
            Some(NonNull::from(&mut context.0)),
            Some(NonNull::from(&mut settings)),
        )
    };
    let ctx = match (code.0, context.0) {
        (0, Some(ctx)) => ctx,
        (code, _) => return Err(failed("dav1d_open", code)),
    };
    let mut data = Data(Dav1dData::default());
    // SAFETY: `data.0` is valid to write to; the returned buffer is `obus.len()` long.
    let buffer = unsafe { dav1d_data_create(Some(NonNull::from(&mut data.0)), obus.len()) };
    if buffer.is_null() {
        return Err(DecodeError::Av1("dav1d_data_create failed".into()));
    }
    // SAFETY: `buffer` is a fresh allocation of `obus.len()` bytes, not overlapping
    // `obus`.
    unsafe { std::ptr::copy_nonoverlapping(obus.as_ptr(), buffer, obus.len()) };
    let mut picture = Picture(Dav1dPicture::default());
    // A still image: send until the data is consumed, taking the picture when the
    // decoder asks for room (EAGAIN); then ask for it.
    let mut got = false;
    for _ in 0..64 {
        if data.0.sz > 0 {
            // SAFETY: `ctx` is open; `data.0` is ours to read and write.
            let code = unsafe { dav1d_send_data(Some(ctx), Some(NonNull::from(&mut data.0))) };
            if code.0 != 0 && code.0 != EAGAIN {
                return Err(failed("dav1d_send_data", code.0));
            }
        }
        // SAFETY: `ctx` is open; `picture.0` is valid to write to (it holds no
        // reference yet: every earlier call returned EAGAIN, which writes an empty one).
        let code = unsafe { dav1d_get_picture(Some(ctx), Some(NonNull::from(&mut picture.0))) };
        match code.0 {
            0 => {
                got = true;
                break;
            }
            EAGAIN if data.0.sz > 0 => {}
            EAGAIN => return Err(DecodeError::Av1("the data holds no frame".into())),
            code => return Err(failed("dav1d_get_picture", code)),
        }
    }
    if !got {
        return Err(DecodeError::Av1("the decoder produced no frame".into()));
    }
    let p = &picture.0.p;
    let (width, height, bits) = (
        usize::try_from(p.w).map_err(|_| DecodeError::Av1("width".into()))?,
        usize::try_from(p.h).map_err(|_| DecodeError::Av1("height".into()))?,
        u32::try_from(p.bpc).map_err(|_| DecodeError::Av1("depth".into()))?,
    );
    let count = match p.layout {
        DAV1D_PIXEL_LAYOUT_I400 => 1,
        DAV1D_PIXEL_LAYOUT_I444 => 3,
        other => {
            return Err(DecodeError::Unsupported(format!(
                "pixel layout {other} (only 4:4:4 and monochrome)"
            )))
        }
    };
    let wide = bits > 8;
    let mut planes = Vec::with_capacity(count);
    for i in 0..count {
        let Some(base) = picture.0.data[i] else {
            return Err(DecodeError::Av1(format!("plane {i} missing")));
        };
        let stride = picture.0.stride[usize::from(i > 0)];
        let row_bytes = width * if wide { 2 } else { 1 };
        let mut plane = Vec::with_capacity(width * height);
        for y in 0..height {
            let offset = isize::try_from(y)
                .ok()
                .and_then(|y| y.checked_mul(stride))
                .ok_or_else(|| DecodeError::Av1("stride".into()))?;
            // SAFETY: dav1d guarantees each of the picture's `h` rows starts `stride`
            // bytes after the previous and holds `w` samples (2 bytes each above 8
            // bits); the picture is alive (released when `picture` drops, below).
            let row = unsafe {
                std::slice::from_raw_parts(
                    base.as_ptr().cast::<u8>().cast_const().offset(offset),
                    row_bytes,
                )
            };
            if wide {
                plane.extend(
                    row.chunks_exact(2)
                        .map(|b| u16::from_ne_bytes([b[0], b[1]])),
                );
            } else {
                plane.extend(row.iter().map(|&b| u16::from(b)));
            }
        }
        planes.push(plane);
    }
    Ok(Frame {
        width,
        height,
        bits,
        planes,
    })
}
