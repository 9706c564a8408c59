//! A really full disk: LocalStorage on a 256 KiB tmpfs. The write that does not fit
//! fails as "storage full" (the app answers 507) and leaves no half-written or
//! temporary file behind; what was stored before is intact.
//!
//! Mounting needs root (CI and the README's test command run as root); elsewhere the
//! test says so and does nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use napiatke_images::pipeline::{is_full, LocalStorage, Storage};

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                );
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_write_that_does_not_fit_fails_as_full_and_leaves_nothing() {
    let root = std::env::temp_dir().join(format!("napiatke-full-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&root)
        .output();
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    match mounted {
        Ok(o) if o.status.success() => {}
        other => {
            let _ = std::fs::remove_dir(&root);
            assert!(
                !root_user,
                "running as root, yet tmpfs could not be mounted: {other:?}"
            );
            eprintln!("skipped: mounting a tmpfs needs root");
            return;
        }
    }
    let guard = Mounted(root.clone());
    let storage = LocalStorage::new(&root);
    storage
        .put("aa/aa00000000000001/t64-00000000.webp", &[7u8; 100 * 1024])
        .unwrap();
    let e = storage
        .put("bb/bb00000000000002/t64-00000000.webp", &[9u8; 200 * 1024])
        .unwrap_err();
    assert!(is_full(&e), "{e:?}");
    assert_eq!(
        files(&root),
        vec!["aa/aa00000000000001/t64-00000000.webp".to_owned()]
    );
    assert_eq!(
        storage
            .get("aa/aa00000000000001/t64-00000000.webp")
            .unwrap(),
        vec![7u8; 100 * 1024]
    );
    // Kept free space is checked before writing: with 100 KiB of the 256 free, asking
    // to keep 200 refuses even a small file.
    let keeping = LocalStorage::new(&root).keeping_free(200 * 1024);
    let e = keeping
        .put("cc/cc00000000000003/t64-00000000.webp", &[1u8; 10])
        .unwrap_err();
    assert!(is_full(&e), "{e:?}");
    assert!(storage
        .remove("aa/aa00000000000001/t64-00000000.webp")
        .unwrap());
    keeping
        .put("cc/cc00000000000003/t64-00000000.webp", &[1u8; 10])
        .unwrap();
    drop(guard);
}
