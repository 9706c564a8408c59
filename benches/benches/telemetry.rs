//! Telemetry's per-request work on its own: the request's JSON line formatted into
//! a reused buffer, and a request's duration recorded in the HTTP metrics. These
//! run once for every request a cached page answers, so their cost is the floor
//! of telemetry's share of such a page (docs/performance.md, "Telemetry's cost").
//! Run: `cargo bench -p napiatke-benches --bench telemetry`; for instruction
//! counts, the bench binary under `valgrind --tool=callgrind` with `--quick`.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use napiatke_telemetry::metrics::HttpMetrics;
use napiatke_telemetry::{CacheCounts, RequestLine};

/// A tutor's cached lesson list, as the line of a real request has it.
fn line() -> RequestLine<'static> {
    RequestLine {
        method: "GET",
        route: "/lessons/",
        path: "/lessons/",
        status: 200,
        request_id: "9f3c2a1b00000017",
        duration: Duration::from_micros(187),
        user_id: Some(12),
        role: Some("tutor"),
        htmx: false,
        statements: 0,
        db_micros: 0,
        cache: CacheCounts {
            l1_hits: 1,
            ..CacheCounts::default()
        },
        render_micros: 0,
        bytes: Some(4_213),
    }
}

fn request_line(c: &mut Criterion) {
    let line = line();
    let now = SystemTime::now();
    let mut out = Vec::with_capacity(64 * 1024);
    c.bench_function("telemetry/request line as JSON", |b| {
        b.iter(|| {
            if out.len() > 60 * 1024 {
                out.clear();
            }
            black_box(&line).write_json(&mut out, black_box(now));
        });
    });
}

fn metrics(c: &mut Criterion) {
    let http = HttpMetrics::default();
    // As the middleware does it: `enter` at the start, `finish` at the end.
    c.bench_function("telemetry/metrics enter, finish", |b| {
        b.iter(|| {
            http.enter();
            http.finish(
                black_box("/lessons/"),
                black_box("GET"),
                200,
                Duration::from_micros(187),
                0,
            );
        });
    });
}

criterion_group!(benches, request_line, metrics);
criterion_main!(benches);
