//! The static files layer: answering a request from memory, and collectstatic on the
//! repository's assets. Run: `cargo bench -p napiatke-benches --bench assets`.

use criterion::{criterion_group, criterion_main, Criterion};
use napiatke_assets::{collect, Request, StaticFiles};

fn assets(c: &mut Criterion) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let root = std::env::temp_dir().join(format!("napiatke-bench-assets-{}", std::process::id()));
    if let Err(e) = collect(&src, &root) {
        eprintln!("skipping assets benches: {e}");
        return;
    }
    let files = match StaticFiles::load(&root) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("skipping assets benches: {e}");
            return;
        }
    };
    let url = files.url("js/htmx.min.js").unwrap_or_default();
    let path = url.trim_start_matches("/static/").to_owned();
    let mut g = c.benchmark_group("assets");
    g.bench_function("respond_hashed_br", |b| {
        b.iter(|| {
            files.respond(&Request {
                path: &path,
                accept_encoding: Some("gzip, deflate, br, zstd"),
                ..Request::default()
            })
        })
    });
    g.bench_function("respond_304", |b| {
        let etag = files
            .respond(&Request {
                path: "css/app.css",
                ..Request::default()
            })
            .header("etag")
            .map(str::to_owned)
            .unwrap_or_default();
        b.iter(|| {
            files.respond(&Request {
                path: "css/app.css",
                if_none_match: Some(&etag),
                ..Request::default()
            })
        })
    });
    g.bench_function("respond_404_traversal", |b| {
        b.iter(|| {
            files.respond(&Request {
                path: "../../etc/passwd",
                ..Request::default()
            })
        })
    });
    g.sample_size(10);
    g.bench_function("collect_unchanged", |b| b.iter(|| collect(&src, &root)));
    g.finish();
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, assets);
criterion_main!(benches);
