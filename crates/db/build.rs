// embed_migrations! reads ../../migrations at compile time: rebuild when they change.
// The fingerprint names the PostgreSQL template database the test helpers clone, so a
// changed migration gets a fresh template instead of a stale one.
use std::hash::Hasher;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
    let mut files = Vec::new();
    collect(Path::new("../../migrations"), &mut files);
    files.sort();
    // FNV-1a: stable across Rust versions, unlike DefaultHasher.
    let mut h = fnv::FnvHasher::default();
    for f in files {
        h.write(f.to_string_lossy().as_bytes());
        h.write(&std::fs::read(&f).unwrap_or_default());
    }
    println!(
        "cargo:rustc-env=NAPIATKE_MIGRATIONS_FINGERPRINT={:016x}",
        h.finish()
    );
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            println!("cargo:rerun-if-changed={}", p.display());
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}
