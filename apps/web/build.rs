// Embeds every template under ../../templates in the binary, so it runs from any
// directory and a deploy is one file.
use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect_all(&root, &mut files);
    files.retain(|f| f.extension().is_some_and(|x| x == "html"));
    files.sort();
    let mut out = String::from("/// (name, source) of every template, embedded at build time.\npub const TEMPLATES: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f
            .strip_prefix(&root)
            .unwrap_or(f)
            .to_string_lossy()
            .replace('\\', "/");
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            f.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("templates.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("writing {}: {e}", dest.display());
    }
    static_files();
    versions();
}

/// Runs collectstatic over ../../assets into OUT_DIR (hashed names, manifest, br and
/// gzip variants) and embeds the result: `STATIC_FILES`, `(name, bytes)` pairs, and
/// `STATIC_BUILT`, the build's time in seconds (their Last-Modified).
fn static_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets");
    // A directory: cargo looks at every file under it.
    println!("cargo:rerun-if-changed={}", src.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let root = out.join("staticfiles");
    // From scratch: collectstatic keeps old hashed files for browsers holding old
    // pages, which a binary has no use for (it only ever serves its own).
    let _ = std::fs::remove_dir_all(&root);
    if let Err(e) = napiatke_assets::collect(&src, &root) {
        panic!(
            "collectstatic {} into {}: {e}",
            src.display(),
            root.display()
        );
    }
    let mut files = Vec::new();
    collect_all(&root, &mut files);
    files.sort();
    let mut code = String::from(
        "/// The collected static files, `(name, bytes)`, embedded at build time.\npub const STATIC_FILES: &[(&str, &[u8])] = &[\n",
    );
    for f in &files {
        let name = f
            .strip_prefix(&root)
            .unwrap_or(f)
            .to_string_lossy()
            .replace('\\', "/");
        // collectstatic's scratch files, if a run was interrupted.
        if name.ends_with(".tmp~") {
            continue;
        }
        let _ = writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            f.display().to_string()
        );
    }
    code.push_str("];\n");
    let built = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let _ = writeln!(
        code,
        "/// When they were collected (Unix seconds).\npub const STATIC_BUILT: u64 = {built};"
    );
    let dest = out.join("static_files.rs");
    if let Err(e) = std::fs::write(&dest, code) {
        panic!("writing {}: {e}", dest.display());
    }
}

fn collect_all(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_all(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The versions the debug toolbar shows: rustc's, and the main dependencies' from
/// Cargo.lock (`NAPIATKE_DEPENDENCIES`, `name version` pairs joined by `;`).
fn versions() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |v| v.trim().to_owned());
    println!("cargo:rustc-env=NAPIATKE_RUSTC={version}");
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let wanted = [
        "actix-web",
        "diesel",
        "tera",
        "moka",
        "redis",
        "bb8-redis",
        "image",
        "ravif",
        "tracing",
        "opentelemetry",
        "sentry-core",
        "libsqlite3-sys",
        "pq-sys",
    ];
    let mut found = Vec::new();
    let mut name = "";
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = n.trim_matches('"');
        } else if let Some(v) = line.strip_prefix("version = ") {
            if wanted.contains(&name) {
                found.push(format!("{name} {}", v.trim_matches('"')));
            }
        }
    }
    println!("cargo:rustc-env=NAPIATKE_DEPENDENCIES={}", found.join(";"));
}
