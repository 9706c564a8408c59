//! Where the test photographs are: NAPIATKE_PHOTOS when set, else ../shared beside
//! the repository, else the workplace's /work/shared (a clone elsewhere, as CI's).

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
