//! Where the test photographs are: NAPIATKE_PHOTOS when set, else ../shared beside
//! the repository, else the workplace's /work/shared (a clone elsewhere, as CI's);
//! and the varied set the repository ships (testdata/photos, licences beside them).

#![allow(dead_code)]

use std::path::PathBuf;

/// The photographs' folder, if any of the places holds it.
pub fn dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("NAPIATKE_PHOTOS") {
        return Some(dir.into());
    }
    [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/photos"),
        PathBuf::from("/work/shared/testdata/photos"),
    ]
    .into_iter()
    .find(|d| d.is_dir())
}

/// The repository's own photographs (always there).
pub fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/photos")
}

/// Every test image: the shared three (when found) and the shipped ones, sorted.
pub fn all() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in dir().into_iter().chain([shipped()]) {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "jpg" | "jpeg" | "png" | "webp" | "JPG"))
            })
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}
