//! collectstatic on real files: hashing, CSS rewriting, precompression, idempotence,
//! incremental runs, and clear failures.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use napiatke_assets::{collect, AssetsError, Manifest, MANIFEST};

struct Dirs {
    base: PathBuf,
    src: PathBuf,
    root: PathBuf,
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn dirs(name: &str) -> Dirs {
    let base = std::env::temp_dir().join(format!("napiatke-assets-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let d = Dirs {
        src: base.join("assets"),
        root: base.join("static"),
        base,
    };
    for (path, content) in [
        ("css/base.css", "html { font: 16px/1.5 system-ui; }\n".repeat(40)),
        (
            "css/app.css",
            format!(
                "@import \"base.css\";\n.logo {{ background: url('../img/logo.svg') no-repeat; }}\n\
                 @font-face {{ src: url(../fonts/f.woff2?v=3#iefix); }}\n.x {{ background: url(data:image/png;base64,AAAA); }}\n\
                 .y {{ background: url(https://cdn.example/a.png); }}\n{}",
                ".row { padding: 0.25rem 0.5rem; border-bottom: 1px solid #dde2e8; }\n".repeat(200)
            ),
        ),
        ("img/logo.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"><rect width=\"10\" height=\"10\"/></svg>\n".repeat(20)),
        ("fonts/f.woff2", "wOF2 not really a font".to_owned()),
        ("js/app.js", "document.addEventListener('htmx:load', () => {});\n".repeat(30)),
        ("js/tiny.js", "x".to_owned()),
        (".hidden", "skip me".to_owned()),
    ] {
        write(&d.src.join(path), content.as_bytes());
    }
    // Incompressible: pseudo-random bytes.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x & 0xff) as u8
        })
        .collect();
    write(&d.src.join("js/noise.js"), &noise);
    d
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

fn manifest(root: &Path) -> Manifest {
    let bytes = std::fs::read(root.join(MANIFEST)).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn read(root: &Path, name: &str) -> String {
    String::from_utf8_lossy(
        &std::fs::read(root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")),
    )
    .into_owned()
}

#[test]
fn hashes_rewrites_and_precompresses() {
    let d = dirs("full");
    let report = collect(&d.src, &d.root).unwrap();
    assert_eq!(report.files, 7, "the hidden file is skipped");
    let m = manifest(&d.root);
    let hashed = |n: &str| {
        m.paths
            .get(n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} not in manifest"))
    };
    let app = hashed("css/app.css");
    assert!(app.starts_with("css/app.") && app.ends_with(".css") && app != "css/app.css");
    let css = read(&d.root, &app);
    let logo = hashed("img/logo.svg");
    let logo_file = logo.rsplit('/').next().unwrap_or_default();
    assert!(
        css.contains(&format!("url('../img/{logo_file}')")),
        "{}",
        &css[..300]
    );
    let base_file = hashed("css/base.css")
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(css.starts_with(&format!("@import \"{base_file}\";")));
    let font_file = hashed("fonts/f.woff2")
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(css.contains(&format!("url(../fonts/{font_file}?v=3#iefix)")));
    assert!(
        css.contains("url(data:image/png;base64,AAAA)")
            && css.contains("url(https://cdn.example/a.png)")
    );
    assert_eq!(
        read(&d.root, "css/app.css"),
        css,
        "the unhashed copy has the same content"
    );

    for name in [&app, "css/app.css", &logo, "js/app.js"] {
        for ext in ["br", "gz"] {
            assert!(
                d.root.join(format!("{name}.{ext}")).is_file(),
                "{name}.{ext}"
            );
        }
    }
    let br = std::fs::metadata(d.root.join(format!("{app}.br")))
        .map(|m| m.len())
        .unwrap_or(0);
    let gz = std::fs::metadata(d.root.join(format!("{app}.gz")))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(br > 0 && br < gz, "brotli beats gzip: {br} vs {gz}");
    assert!(
        !d.root
            .join(format!("{}.br", hashed("fonts/f.woff2")))
            .exists(),
        "fonts are not compressed"
    );
    assert!(
        !d.root
            .join(format!("{}.gz", hashed("js/noise.js")))
            .exists(),
        "no gain, no variant"
    );
    assert_eq!(m.variants.get(&hashed("js/noise.js")), Some(&Vec::new()));
    assert!(!d.root.join(".hidden").exists());
}

#[test]
fn runs_are_idempotent_and_incremental() {
    let d = dirs("incr");
    let first = collect(&d.src, &d.root).unwrap();
    assert!(first.compressed >= 8, "{first:?}");
    let m1 = manifest(&d.root);
    let app = m1.paths.get("css/app.css").cloned().unwrap_or_default();
    let mtime = |n: &str| {
        std::fs::metadata(d.root.join(n))
            .and_then(|m| m.modified())
            .ok()
    };
    let before = (mtime(&app), mtime(&format!("{app}.br")), mtime(MANIFEST));

    let second = collect(&d.src, &d.root).unwrap();
    assert_eq!(second.compressed, 0, "{second:?}");
    assert_eq!(
        second.reused,
        first.reused + 6,
        "every compressible file reused"
    );
    assert_eq!(manifest(&d.root), m1);
    assert_eq!(
        (mtime(&app), mtime(&format!("{app}.br")), mtime(MANIFEST)),
        before,
        "nothing rewritten"
    );

    // Change one image: it and the CSS that refers to it get new names; only those two
    // are compressed again.
    write(
        &d.src.join("img/logo.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><circle r=\"4\"/></svg>\n"
            .repeat(20)
            .as_bytes(),
    );
    let third = collect(&d.src, &d.root).unwrap();
    assert_eq!(
        third.compressed, 4,
        "logo.svg and app.css, br and gz: {third:?}"
    );
    let m3 = manifest(&d.root);
    assert_ne!(m3.paths.get("css/app.css"), m1.paths.get("css/app.css"));
    assert_eq!(m3.paths.get("js/app.js"), m1.paths.get("js/app.js"));
    assert!(
        d.root.join(&app).is_file(),
        "old hashed files stay for pages still cached"
    );
}

#[test]
fn a_missing_reference_fails_naming_file_and_reference() {
    let d = dirs("missing");
    write(
        &d.src.join("css/broken.css"),
        b".a { background: url(\"../img/nope.png\"); }",
    );
    let err = collect(&d.src, &d.root).err();
    assert!(
        matches!(err, Some(AssetsError::MissingReference { .. })),
        "{err:?}"
    );
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(msg, "css/broken.css: \"../img/nope.png\" refers to \"img/nope.png\", which is not in the static files");
    write(
        &d.src.join("css/broken.css"),
        b".a { background: url(../../../etc/passwd); }",
    );
    let msg = collect(&d.src, &d.root)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.starts_with("css/broken.css: \"../../../etc/passwd\" refers to"),
        "{msg}"
    );
}

#[test]
fn import_cycles_are_reported() {
    let d = dirs("cycle");
    write(&d.src.join("css/a.css"), b"@import \"b.css\";");
    write(&d.src.join("css/b.css"), b"@import \"a.css\";");
    let msg = collect(&d.src, &d.root)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.ends_with("CSS imports form a cycle"), "{msg}");
}
