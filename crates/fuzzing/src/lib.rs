//! Generated inputs for napiatke's fuzz targets.
//!
//! A fuzz target here is an ordinary test named `fuzz_*` that checks a property of
//! one parser or check (image decoding, static and media paths, htmx headers, query
//! strings, `next`, the cross-site check) on generated inputs. In the test suite it
//! runs a fixed number of seeded cases, so it is quick and a failure reproduces; under
//! `scripts/fuzz.sh SECONDS` (which sets `NAPIATKE_FUZZ_SECONDS`) it runs as many as
//! fit in that time from a random first seed. A failing case prints its seed; rerun it
//! alone with `NAPIATKE_FUZZ_SEED`, fix the bug and keep the input as a plain test.
//!
//! Why not cargo-fuzz: it needs a nightly toolchain and a libFuzzer build of each
//! target, and the inputs that matter here are shaped (mutated real files, strings
//! from alphabets of the characters that have broken such parsers) more than random;
//! coverage guidance is what this gives up.
//!
//! ```
//! let mut seen = 0;
//! let cases = napiatke_fuzzing::cases("doc", 50, |rng| {
//!     let input = napiatke_fuzzing::mutate(rng, b"GIF89a");
//!     assert!(input.len() <= 6 + 64);
//!     seen += 1;
//! });
//! assert!(cases >= 1 && seen == cases);
//! ```

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

pub use fastrand::Rng;

/// Runs `check` on generated cases and returns how many ran: seeds `0..default` in
/// the test suite; with `NAPIATKE_FUZZ_SECONDS` set, for that long from a random
/// seed; with `NAPIATKE_FUZZ_SEED`, that one case. A panicking case names its seed.
pub fn cases(name: &str, default: u64, mut check: impl FnMut(&mut Rng)) -> u64 {
    let env = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    if let Some(seed) = env("NAPIATKE_FUZZ_SEED").and_then(|s| s.trim().parse().ok()) {
        one(name, seed, &mut check);
        return 1;
    }
    let budget = env("NAPIATKE_FUZZ_SECONDS")
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64);
    let (first, deadline) = match budget {
        Some(b) => (fastrand::u64(..), Some(Instant::now() + b)),
        None => (0, None),
    };
    let mut n = 0u64;
    loop {
        one(name, first.wrapping_add(n), &mut check);
        n += 1;
        let done = match deadline {
            Some(d) => Instant::now() >= d,
            None => n >= default,
        };
        if done {
            break;
        }
    }
    if deadline.is_some() {
        eprintln!("fuzz {name}: {n} cases from seed {first}, all passed");
    }
    n
}

fn one(name: &str, seed: u64, check: &mut impl FnMut(&mut Rng)) {
    let mut rng = Rng::with_seed(seed);
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&mut rng))) {
        eprintln!(
            "fuzz {name}: the case from seed {seed} failed; NAPIATKE_FUZZ_SEED={seed} replays it"
        );
        resume_unwind(panic);
    }
}

/// `input` with one to eight changes: bits flipped, bytes set to values parsers
/// trip on (0, 0x7f, 0x80, 0xff), bytes inserted or removed, a run repeated, the end
/// cut off. Grows by at most 64 bytes.
pub fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    const EDGES: [u8; 6] = [0, 1, 0x7f, 0x80, 0xfe, 0xff];
    let mut out = input.to_vec();
    let limit = input.len() + 64;
    for _ in 0..rng.usize(1..=8) {
        let at = if out.is_empty() {
            0
        } else {
            rng.usize(..out.len())
        };
        match rng.u8(..7) {
            0 if !out.is_empty() => out[at] ^= 1 << rng.u8(..8),
            1 if !out.is_empty() => out[at] = EDGES[rng.usize(..EDGES.len())],
            2 if !out.is_empty() => out[at] = rng.u8(..),
            3 if out.len() < limit => out.insert(at, rng.u8(..)),
            4 if !out.is_empty() => {
                out.remove(at);
            }
            5 if !out.is_empty() => {
                let len = rng.usize(1..=16).min(out.len() - at).min(limit - out.len());
                let run: Vec<u8> = out[at..at + len].to_vec();
                out.splice(at..at, run);
            }
            6 => out.truncate(at),
            _ => {}
        }
    }
    out
}

/// Up to `max` pieces from `alphabet`, joined: strings made of the characters and
/// fragments that have broken parsers of this kind before.
pub fn text(rng: &mut Rng, alphabet: &[&str], max: usize) -> String {
    (0..rng.usize(0..=max))
        .map(|_| alphabet[rng.usize(..alphabet.len())])
        .collect()
}

/// Up to `max` bytes, any value.
pub fn bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    (0..rng.usize(0..=max)).map(|_| rng.u8(..)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_bounded_and_seeds_reproduce() {
        let input = b"\x89PNG\r\n\x1a\n0123456789";
        let mut a = Rng::with_seed(7);
        let mut b = Rng::with_seed(7);
        for _ in 0..1000 {
            let (x, y) = (mutate(&mut a, input), mutate(&mut b, input));
            assert_eq!(x, y);
            assert!(x.len() <= input.len() + 64);
        }
        let mut changed = 0;
        let mut rng = Rng::with_seed(1);
        for _ in 0..100 {
            changed += usize::from(mutate(&mut rng, input) != input);
        }
        assert!(changed > 90, "{changed}");
    }

    #[test]
    fn a_failing_case_panics_through() {
        let caught = catch_unwind(|| cases("t", 10, |rng| assert!(rng.u8(..) < 200)));
        assert!(caught.is_err());
    }
}
