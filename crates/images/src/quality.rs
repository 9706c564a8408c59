//! Encoding at a target perceived quality: each variant's encoder quality is the
//! lowest that scores at least the target SSIMULACRA2 against the resized source.
//! SSIMULACRA2 (libjxl's metric) is judged on what the browser shows: every output is
//! decoded again (AVIF by rav1d) before it is scored. The scorer is fast-ssim2, whose
//! reference side is computed once per variant and reused for every try (about 0.1 s
//! a megapixel a try here, against 0.85 s for the `ssimulacra2` crate, which the
//! tests use to check it).
//!
//! ```
//! use napiatke_images::quality::{score, Reference};
//! let source = image::RgbaImage::from_fn(64, 64, |x, y| {
//!     image::Rgba([(x * 4) as u8, (y * 4) as u8, 128, 255])
//! });
//! let reference = Reference::new(&source)?;
//! // The same pixels score 100; a flat grey scores far lower.
//! assert!(score(&reference, &source)? > 99.9);
//! let grey = image::RgbaImage::from_pixel(64, 64, image::Rgba([128, 128, 128, 255]));
//! assert!(score(&reference, &grey)? < 30.0);
//! # Ok::<(), napiatke_images::ImageError>(())
//! ```

use fast_ssim2::{PixelDescriptor, PixelSlice, Ssimulacra2Reference};
use image::RgbaImage;

use crate::ImageError;

/// Backgrounds a transparent image is judged on (sRGB grey levels): one dark, one
/// light, the worse score counts, so an error hidden by one background shows on the
/// other (as libjxl's ssimulacra2 tool does).
const BACKGROUNDS: [u8; 2] = [32, 224];

fn scoring(e: impl std::fmt::Display) -> ImageError {
    ImageError::Encode(format!("scoring: {e}"))
}

/// RGB bytes of `rgba` composited on grey `background` in sRGB, as a browser draws
/// it (alpha ignored when `None`).
fn rgb_on(rgba: &[u8], background: Option<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for p in rgba.chunks_exact(4) {
        match background {
            Some(bg) if p[3] != 255 => {
                let a = u16::from(p[3]);
                for &c in &p[..3] {
                    let v = (u16::from(c) * a + u16::from(bg) * (255 - a) + 127) / 255;
                    out.push(u8::try_from(v).unwrap_or(u8::MAX));
                }
            }
            _ => out.extend_from_slice(&p[..3]),
        }
    }
    out
}

fn slice(rgb: &[u8], width: u32, height: u32) -> Result<PixelSlice<'_>, ImageError> {
    PixelSlice::new(
        rgb,
        width,
        height,
        width as usize * 3,
        PixelDescriptor::RGB8_SRGB,
    )
    .map_err(scoring)
}

/// A variant's source pixels, prepared once and scored against many encodings.
#[derive(Debug, Clone)]
pub struct Reference {
    width: u32,
    height: u32,
    /// One per background (one with no background when opaque).
    sides: Vec<(Option<u8>, Ssimulacra2Reference)>,
}

impl Reference {
    /// Prepares `source`; transparency is judged on a dark and a light grey when it has
    /// any (the worse score counts).
    pub fn new(source: &RgbaImage) -> Result<Reference, ImageError> {
        let has_alpha = source.pixels().any(|p| p.0[3] != 255);
        let backgrounds: Vec<Option<u8>> = if has_alpha {
            BACKGROUNDS.iter().copied().map(Some).collect()
        } else {
            vec![None]
        };
        let (width, height) = source.dimensions();
        let sides = backgrounds
            .into_iter()
            .map(|bg| {
                let rgb = rgb_on(source.as_raw(), bg);
                let prepared =
                    Ssimulacra2Reference::new(&slice(&rgb, width, height)?).map_err(scoring)?;
                Ok((bg, prepared))
            })
            .collect::<Result<_, ImageError>>()?;
        Ok(Reference {
            width,
            height,
            sides,
        })
    }
}

/// SSIMULACRA2 of `distorted` against `reference`: 100 is identical, 90 visually
/// lossless at 1:1, 80 very high quality, 70 high, 50 medium.
pub fn score(reference: &Reference, distorted: &RgbaImage) -> Result<f64, ImageError> {
    let (w, h) = distorted.dimensions();
    if (w, h) != (reference.width, reference.height) {
        return Err(ImageError::Encode(format!(
            "scoring: {w}×{h} against {}×{}",
            reference.width, reference.height
        )));
    }
    let mut worst = f64::INFINITY;
    for (bg, side) in &reference.sides {
        let rgb = rgb_on(distorted.as_raw(), *bg);
        worst = worst.min(side.compare(&slice(&rgb, w, h)?).map_err(scoring)?);
    }
    Ok(worst)
}

/// One encoding the search kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The file.
    pub bytes: Vec<u8>,
    /// The encoder quality that made it.
    pub quality: u8,
    /// Its SSIMULACRA2 against the reference.
    pub score: f64,
}

/// From a quality that reached the target on a neighbouring size: tries it, then
/// moves by the score's distance from the target over `slope` (score points per
/// quality step, learned on the sizes before), at most `goal.probes` encodings (and
/// [`NARROWING`] more for a pass far above a failure), never a step down that saves
/// too little ([`WORTH_SAVING`]). Returns
/// the lowest passing encoding tried, or `None` (then `best_failed` holds the best
/// try). From a neighbouring size, typically one or two encodings; from a default
/// quality (the first size), three or four.
pub fn refine(
    goal: &Goal,
    start: u8,
    slope: f64,
    best_failed: &mut Option<Encoded>,
    mut probe: impl FnMut(u8) -> Result<Encoded, ImageError>,
) -> Result<Option<Encoded>, ImageError> {
    let Goal {
        target,
        floor,
        probes,
        pixels,
    } = *goal;
    let slope = slope.clamp(*PLAUSIBLE_SLOPE.start(), *PLAUSIBLE_SLOPE.end());
    let mut pass: Option<Encoded> = None;
    let mut highest_fail: Option<u8> = None;
    let mut slope = slope;
    let mut q = start.clamp(floor.max(1), 100);
    let mut last: Option<(u8, f64)> = None;
    let mut tried = 0;
    let mut misses = 0;
    loop {
        // Out of tries, but holding a pass far above the target with untried
        // qualities between it and a failure: those bytes would be kept for ever, so
        // narrowing that gap is worth up to `NARROWING` more encodings.
        let far_above = match (&pass, highest_fail) {
            (Some(p), Some(f)) => p.score > target + FAR_ABOVE && p.quality > f + 1,
            _ => false,
        };
        if tried >= probes + if far_above { NARROWING } else { 0 } {
            break;
        }
        tried += 1;
        let e = probe(q)?;
        // Secant: the two latest tries say more about this size than the sizes before.
        if let Some((lq, ls)) = last.filter(|l| l.0 != q) {
            let local = (e.score - ls) / (f64::from(q) - f64::from(lq));
            if PLAUSIBLE_SLOPE.contains(&local) {
                slope = local;
            }
        }
        last = Some((q, e.score));
        let next = if e.score >= target {
            misses = 0;
            // Whole steps the margin pays for, keeping `AIM_ABOVE` in hand (a try
            // that lands just short costs a whole encoding); none: this is it.
            let steps = ((e.score - target - AIM_ABOVE) / slope).floor();
            if pass.as_ref().is_none_or(|p| e.quality < p.quality) {
                pass = Some(e);
            }
            let lowest = highest_fail.map_or(floor, |f| f.saturating_add(1));
            if steps < 1.0 || q <= lowest {
                break;
            }
            let next = q.saturating_sub(steps.min(30.0) as u8).max(lowest);
            if !worth_a_try(pass.as_ref(), next, pixels) {
                break;
            }
            next
        } else {
            highest_fail = Some(highest_fail.map_or(q, |f| f.max(q)));
            misses += 1;
            // Misses in a row double the step at least (galloping): a flat stretch
            // of the curve, which the secant reads as a tiny slope, must not be
            // crossed one quality at a time.
            let steps = ((target + AIM_ABOVE - e.score) / slope)
                .ceil()
                .clamp(1.0, 30.0)
                .max(f64::from(1u8 << (misses - 1).min(4))) as u8;
            if best_failed.as_ref().is_none_or(|b| e.score > b.score) {
                *best_failed = Some(e);
            }
            let next = q.saturating_add(steps).min(100);
            match &pass {
                // A passing quality just above: nothing between is worth a try.
                Some(p) if next >= p.quality => break,
                Some(_) if !worth_a_try(pass.as_ref(), next, pixels) => break,
                _ if q == 100 => break,
                _ => next,
            }
        };
        if next == q {
            break;
        }
        q = next;
    }
    Ok(pass)
}

/// The fewest bytes a try below a passing encoding must be expected to save, per
/// megapixel encoded: an encoding costs time in proportion to its pixels (a second or
/// more for a large AVIF), which a few hundred bytes do not repay.
pub const WORTH_SAVING: f64 = 1000.0;

/// Bytes saved per quality step down, as a fraction: about what the three encoders
/// give around a score of 80 (3–5 %).
const SAVED_PER_STEP: f64 = 0.04;

/// Whether trying `quality`, below the lowest pass so far, is expected to save at
/// least [`WORTH_SAVING`] for an image of `pixels`.
fn worth_a_try(pass: Option<&Encoded>, quality: u8, pixels: u64) -> bool {
    pass.is_none_or(|p| {
        let steps = f64::from(p.quality.saturating_sub(quality));
        p.bytes.len() as f64 * (1.0 - (1.0 - SAVED_PER_STEP).powf(steps))
            >= WORTH_SAVING * pixels as f64 / 1e6
    })
}

/// What [`refine`] looks for, and how hard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goal {
    /// The SSIMULACRA2 score to reach.
    pub target: f64,
    /// The lowest quality to try.
    pub floor: u8,
    /// Encodings allowed (plus [`NARROWING`] for a pass far above a failure).
    pub probes: usize,
    /// Pixels per encoding: what a try costs, against what it may save.
    pub pixels: u64,
}

/// A passing score this far above the target counts as far above: see [`NARROWING`].
pub const FAR_ABOVE: f64 = 1.5;

/// Extra encodings [`refine`] may spend, past its budget, narrowing a gap between a
/// failure and a pass more than [`FAR_ABOVE`] the target (a jump in the score curve, or
/// a first guess far off).
pub const NARROWING: usize = 2;

/// How far above the target [`refine`] aims when it moves, in score points: scores
/// wobble by a few tenths from one quality to the next, so aiming at the target
/// itself lands short about half the time, and each miss costs an encoding.
pub const AIM_ABOVE: f64 = 0.4;

/// Score points per quality step that the search believes: outside it, a slope comes
/// from too few or too noisy tries (a flat or inverted stretch of the curve).
pub const PLAUSIBLE_SLOPE: std::ops::RangeInclusive<f64> = 0.25..=5.0;

/// Score points per quality step from the tries of one size (least squares), or
/// `None` with fewer than two distinct qualities or outside [`PLAUSIBLE_SLOPE`].
#[must_use]
pub fn slope(tries: &[(u8, f64)]) -> Option<f64> {
    let n = tries.len() as f64;
    if tries
        .iter()
        .map(|t| t.0)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        < 2
    {
        return None;
    }
    let mq = tries.iter().map(|t| f64::from(t.0)).sum::<f64>() / n;
    let ms = tries.iter().map(|t| t.1).sum::<f64>() / n;
    let cov: f64 = tries
        .iter()
        .map(|t| (f64::from(t.0) - mq) * (t.1 - ms))
        .sum();
    let var: f64 = tries.iter().map(|t| (f64::from(t.0) - mq).powi(2)).sum();
    Some(cov / var).filter(|s| var > 0.0 && PLAUSIBLE_SLOPE.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(target: f64, floor: u8, probes: usize) -> Goal {
        Goal {
            target,
            floor,
            probes,
            pixels: 1_000_000,
        }
    }

    /// A fake encoder: `score` of the quality, `per_step` bytes a quality step.
    fn curve<'a>(
        calls: &'a mut Vec<u8>,
        per_step: usize,
        score: impl Fn(u8) -> f64 + 'a,
    ) -> impl FnMut(u8) -> Result<Encoded, ImageError> + 'a {
        move |q| {
            calls.push(q);
            Ok(Encoded {
                bytes: vec![0; usize::from(q) * per_step],
                quality: q,
                score: score(q),
            })
        }
    }

    /// A fake encoder whose score is its quality: the search must land on the target.
    fn fake(calls: &mut Vec<u8>) -> impl FnMut(u8) -> Result<Encoded, ImageError> + '_ {
        curve(calls, 1000, f64::from)
    }

    #[test]
    fn from_a_default_it_lands_at_most_the_aim_above_the_target() {
        // The first size: a prior slope half the true one, a start far above.
        let mut calls = Vec::new();
        let mut failed = None;
        let found = refine(&goal(77.0, 20, 5), 85, 0.5, &mut failed, fake(&mut calls))
            .unwrap()
            .unwrap();
        assert!(
            (77..=78).contains(&found.quality) && found.score >= 77.0,
            "{found:?} after {calls:?}"
        );
        assert!(calls.len() <= 4, "tried {calls:?}");
        assert_eq!(calls[0], 85, "starts where it was told");
    }

    #[test]
    fn few_probes_never_return_a_failing_quality() {
        let mut calls = Vec::new();
        let mut failed = None;
        let found = refine(&goal(77.0, 20, 2), 85, 0.5, &mut failed, fake(&mut calls))
            .unwrap()
            .unwrap();
        assert!(found.quality >= 77 && found.score >= 77.0, "{found:?}");
        assert!(calls[1] < 77, "the second try overshot below: {calls:?}");
        // 85 passed far above a failure at 70: narrowing went on past the budget.
        assert_eq!(calls, [85, 70, 78]);
        assert_eq!(found.quality, 78);
    }

    #[test]
    fn refining_from_a_neighbour_takes_one_or_two_tries() {
        // Right where it was: one try.
        let mut calls = Vec::new();
        let mut failed = None;
        let found = refine(&goal(80.0, 20, 4), 80, 1.0, &mut failed, fake(&mut calls)).unwrap();
        assert_eq!((found.unwrap().quality, calls.len()), (80, 1));
        // Below: steps up by the gap over the slope, aiming AIM_ABOVE over the
        // target so that one try is enough.
        let mut calls = Vec::new();
        let found = refine(&goal(80.0, 20, 4), 74, 1.0, &mut failed, fake(&mut calls)).unwrap();
        assert_eq!(found.unwrap().quality, 81, "tried {calls:?}");
        assert_eq!(calls, [74, 81]);
        // Above with margin: steps down, keeping the aim in hand, never to a
        // failing quality.
        let mut calls = Vec::new();
        let found = refine(&goal(80.0, 20, 4), 88, 1.0, &mut failed, fake(&mut calls)).unwrap();
        assert_eq!(found.unwrap().quality, 81, "tried {calls:?}");
        assert_eq!(calls, [88, 81]);
        // A wrong slope is corrected from the tries themselves (secant).
        let mut calls = Vec::new();
        let mut failed = None;
        let found = refine(&goal(80.0, 20, 3), 60, 4.0, &mut failed, fake(&mut calls)).unwrap();
        assert_eq!(found.map(|f| f.quality), Some(81), "after {calls:?}");
        assert_eq!(calls, [60, 66, 81]);
        // Out of tries below the target: none, the best try kept.
        let mut calls = Vec::new();
        let mut failed = None;
        let found = refine(&goal(95.0, 20, 2), 60, 4.0, &mut failed, fake(&mut calls)).unwrap();
        assert!(found.is_none(), "{found:?} after {calls:?}");
        assert_eq!(failed.unwrap().quality, calls[1], "the best try is kept");
    }

    #[test]
    fn slope_is_score_per_quality_step() {
        assert_eq!(slope(&[(70, 70.0), (80, 75.0), (90, 80.0)]), Some(0.5));
        assert_eq!(slope(&[(70, 70.0), (70, 72.0)]), None);
        assert_eq!(
            slope(&[(70, 75.0), (80, 70.0)]),
            None,
            "falling: not believed"
        );
    }

    #[test]
    fn a_pass_far_above_a_failure_is_narrowed_past_the_budget() {
        // A score curve with a jump of six points between qualities 81 and 82.
        let mut calls = Vec::new();
        let mut failed = None;
        let jumpy = curve(&mut calls, 1000, |q| {
            if q <= 81 {
                f64::from(q) - 1.0
            } else {
                f64::from(q) + 5.0
            }
        });
        let found = refine(&goal(80.0, 20, 3), 87, 1.0, &mut failed, jumpy)
            .unwrap()
            .unwrap();
        assert_eq!(found.quality, 81, "tried {calls:?}");
        assert_eq!(calls.len(), 3 + NARROWING, "tried {calls:?}");
    }

    #[test]
    fn a_step_down_that_saves_too_few_bytes_is_not_tried() {
        // The same curve as `fake`, but files of a few hundred bytes.
        let mut calls = Vec::new();
        let mut failed = None;
        let small = curve(&mut calls, 10, f64::from);
        let found = refine(&goal(80.0, 20, 4), 88, 1.0, &mut failed, small).unwrap();
        assert_eq!(found.map(|f| f.quality), Some(88));
        assert_eq!(
            calls,
            [88],
            "a try below would save under WORTH_SAVING a megapixel"
        );
    }

    #[test]
    fn misses_in_a_row_double_the_step() {
        // Flat at 79.5 up to quality 85, then rising one point a step.
        let mut calls = Vec::new();
        let mut failed = None;
        let flat = curve(&mut calls, 1000, |q| {
            if q <= 85 {
                79.5
            } else {
                f64::from(q) - 6.0
            }
        });
        let found = refine(&goal(80.0, 20, 4), 80, 1.0, &mut failed, flat).unwrap();
        assert_eq!(calls[..3], [80, 81, 83], "then 87: {calls:?}");
        assert_eq!(found.map(|f| f.quality), Some(87), "tried {calls:?}");
    }

    #[test]
    fn out_of_reach_reports_none_and_keeps_the_best_try() {
        // An encoder whose score stops rising at 90.
        let mut calls = Vec::new();
        let mut failed = None;
        let capped = curve(&mut calls, 1000, |q| f64::from(q.min(90)));
        let found = refine(&goal(95.0, 20, 5), 80, 1.0, &mut failed, capped).unwrap();
        assert!(found.is_none());
        assert_eq!(failed.unwrap().score, 90.0, "tried {calls:?}");
        assert_eq!(calls.last(), Some(&100), "it went as far as it could");
    }
}
