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
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
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

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
}
