//! Prometheus metrics: the request figures kept as they happen, and a writer for the
//! text exposition format (version 0.0.4) that the app also uses for figures read at
//! scrape time (pool, cache, image jobs).
//!
//! Hand-written rather than a client crate: the app needs three instruments and a
//! writer, the hot path is the calling thread's own shard (plain loads and stores,
//! see [`HttpMetrics`]), and nothing else is pulled into the build. Names and units follow the OpenTelemetry HTTP
//! semantic conventions as Prometheus spells them (`http.server.request.duration` in
//! seconds becomes `http_server_request_duration_seconds`).
//!
//! ```
//! use napiatke_telemetry::metrics::{HttpMetrics, Exposition};
//! use std::time::Duration;
//!
//! let http = HttpMetrics::default();
//! let guard = http.start();
//! http.observe("/lessons/{id}/", "GET", 200, Duration::from_micros(800), 0);
//! drop(guard);
//! let mut out = Exposition::default();
//! http.write(&mut out);
//! out.gauge("db_client_connection_count", "Connections in the pool.", &[(&[("state", "idle")], 3.0)]);
//! let text = out.finish();
//! assert!(text.contains(
//!     "http_server_request_duration_seconds_bucket{http_route=\"/lessons/{id}/\",http_request_method=\"GET\",http_response_status_code=\"200\",le=\"0.001\"} 1"
//! ));
//! assert!(text.contains("db_client_connection_count{state=\"idle\"} 3"));
//! ```

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

/// The content type of [`Exposition::finish`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request duration buckets, seconds: OpenTelemetry's advice for
/// `http.server.request.duration`, with finer ones below 5 ms, where cached pages fall.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    7.5, 10.0,
];

/// Statements per request buckets: 0 is a page from the cache, above 20 is a warning.
pub const STATEMENT_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0];

/// A histogram with fixed upper bounds. Values are kept in integer units (`scale`
/// units per exposed unit: microseconds for seconds), so adding is one atomic add.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    scale: f64,
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
}

impl Histogram {
    /// A histogram over `bounds`, keeping sums in `1 / scale` of the exposed unit.
    #[must_use]
    pub fn new(bounds: &'static [f64], scale: f64) -> Histogram {
        Histogram {
            bounds,
            scale,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// The bucket `units` falls in (buckets are stored non-cumulative; the writer
    /// adds them up); none above the last bound (only `+Inf`, the count).
    fn bucket(&self, units: u64) -> Option<&AtomicU64> {
        let value = units as f64 / self.scale;
        let i = self.bounds.iter().position(|b| value <= *b)?;
        self.buckets.get(i)
    }

    /// Adds one observation of `units` (in `1 / scale` of the exposed unit).
    pub fn observe_units(&self, units: u64) {
        if let Some(bucket) = self.bucket(units) {
            bucket.fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(units, Relaxed);
    }

    /// [`Histogram::observe_units`] for a histogram only the calling thread writes:
    /// loads and stores, no atomic add (see [`HttpMetrics`]). Another thread
    /// writing it at the same time would lose counts.
    pub fn observe_owned(&self, units: u64) {
        if let Some(bucket) = self.bucket(units) {
            bump(bucket, 1);
        }
        bump(&self.count, 1);
        bump(&self.sum, units);
    }

    /// Writes the histogram's samples (`_bucket`, `_sum`, `_count`) as `name`.
    pub fn write(&self, out: &mut Exposition, name: &str, labels: &[(&str, &str)]) {
        let mut counts = Counts::of(self);
        counts.add(self);
        counts.write(out, name, labels);
    }
}

/// Histograms' figures read and added up: one histogram's, or every shard's of one
/// series.
#[derive(Debug)]
struct Counts {
    bounds: &'static [f64],
    scale: f64,
    buckets: Vec<u64>,
    count: u64,
    sum: u64,
}

impl Counts {
    /// Zero, over `bounds`, sums in `1 / scale` (as [`Histogram::new`]).
    fn new(bounds: &'static [f64], scale: f64) -> Counts {
        Counts {
            bounds,
            scale,
            buckets: vec![0; bounds.len()],
            count: 0,
            sum: 0,
        }
    }

    /// Zero, over `like`'s bounds and scale.
    fn of(like: &Histogram) -> Counts {
        Counts::new(like.bounds, like.scale)
    }

    fn add(&mut self, h: &Histogram) {
        for (total, b) in self.buckets.iter_mut().zip(h.buckets.iter()) {
            *total = total.wrapping_add(b.load(Relaxed));
        }
        self.count = self.count.wrapping_add(h.count.load(Relaxed));
        self.sum = self.sum.wrapping_add(h.sum.load(Relaxed));
    }

    /// The samples, from the non-cumulative bucket counts.
    fn write(&self, out: &mut Exposition, name: &str, labels: &[(&str, &str)]) {
        let (bounds, count) = (self.bounds, self.count);
        let sum = self.sum as f64 / self.scale;
        let mut cumulative = 0;
        for (bound, bucket) in bounds.iter().zip(&self.buckets) {
            cumulative += bucket;
            let le = format_float(*bound);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            out.sample(&format!("{name}_bucket"), &with_le, cumulative as f64);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        out.sample(&format!("{name}_bucket"), &with_le, count as f64);
        out.sample(&format!("{name}_sum"), labels, sum);
        out.sample(&format!("{name}_count"), labels, count as f64);
    }
}

/// One route's durations for one method and status.
#[derive(Debug)]
struct Series {
    method: String,
    status: u16,
    histogram: Histogram,
}

/// What the HTTP layer records per request: its duration by route, method and status,
/// the requests in flight, and the statements each ran.
///
/// Sharded by thread: each thread that records gets a shard of its own, which only
/// it writes, with plain loads and stores; a scrape adds the shards up. A shared
/// counter's atomic add (`lock xadd`) waits for every store before it to drain;
/// with a dozen such adds and a lock to find the series, switching the metrics off
/// gave a cached page 2.9 % more req/s (docs/performance.md).
///
/// ```
/// use std::time::Duration;
/// use napiatke_telemetry::metrics::{Exposition, HttpMetrics};
///
/// let http = HttpMetrics::default();
/// http.enter();
/// http.observe("/lessons/{id}/", "GET", 200, Duration::from_micros(700), 0);
/// http.leave();
/// let mut out = Exposition::default();
/// http.write(&mut out);
/// assert!(out.finish().contains("http_server_request_duration_seconds_count{http_route=\"/lessons/{id}/\",http_request_method=\"GET\",http_response_status_code=\"200\"} 1"));
/// ```
#[derive(Debug, Default)]
pub struct HttpMetrics {
    shards: Arc<Mutex<Vec<Arc<Shard>>>>,
}

/// One thread's figures. Written only by that thread; read by scrapes.
#[derive(Debug)]
struct Shard {
    /// Changed only when the thread meets a new route, method and status; the
    /// thread finds its series in its own index ([`Local`]) without this lock.
    durations: RwLock<Vec<(String, Arc<Series>)>>,
    statements: Histogram,
    /// Requests this thread started and finished: in flight is the sum of the
    /// first less the sum of the second, each counter having one writer.
    started: AtomicU64,
    finished: AtomicU64,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            durations: RwLock::new(Vec::new()),
            statements: Histogram::new(STATEMENT_BUCKETS, 1.0),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        }
    }
}

/// A thread's shard of one [`HttpMetrics`] and its index of the shard's series.
#[derive(Debug)]
struct Local {
    /// Whose shard: compared by address, and dead once the metrics are dropped
    /// (then the entry is pruned).
    owner: std::sync::Weak<Mutex<Vec<Arc<Shard>>>>,
    shard: Arc<Shard>,
    series: foldhash::HashMap<String, Vec<Arc<Series>>>,
}

/// A finished request into this thread's shard.
fn record(
    l: &mut Local,
    route: &str,
    method: &str,
    status: u16,
    duration: Duration,
    statements: u64,
) {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    l.shard.statements.observe_owned(statements);
    let matches = |s: &&Arc<Series>| s.status == status && s.method == method;
    if let Some(series) = l.series.get(route).and_then(|v| v.iter().find(matches)) {
        series.histogram.observe_owned(micros);
        return;
    }
    let series = Arc::new(Series {
        method: method.to_owned(),
        status,
        histogram: Histogram::new(DURATION_BUCKETS, 1e6),
    });
    series.histogram.observe_owned(micros);
    l.series
        .entry(route.to_owned())
        .or_default()
        .push(Arc::clone(&series));
    l.shard
        .durations
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .push((route.to_owned(), series));
}

thread_local! {
    static LOCAL: std::cell::RefCell<Vec<Local>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Adds one to a counter only this thread writes.
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(by), Relaxed);
}

/// Counts a request as in flight until dropped (so a cancelled request stops
/// counting too). It holds the metrics: [`HttpMetrics::enter`] and
/// [`HttpMetrics::leave`] do the same without the reference count.
#[derive(Debug)]
pub struct InFlight(HttpMetrics);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl HttpMetrics {
    /// Runs `f` with this thread's shard and index, made on first use.
    fn local<R>(&self, f: impl FnOnce(&mut Local) -> R) -> R {
        LOCAL.with(|cell| {
            let Ok(mut all) = cell.try_borrow_mut() else {
                // Only a panic inside `f` could leave it borrowed: record into a
                // shard of its own rather than not at all.
                return f(&mut self.new_local());
            };
            let me = Arc::as_ptr(&self.shards);
            if let Some(local) = all.iter_mut().find(|l| l.owner.as_ptr() == me) {
                return f(local);
            }
            all.retain(|l| l.owner.strong_count() > 0);
            all.push(self.new_local());
            let last = all.len() - 1;
            f(&mut all[last])
        })
    }

    fn new_local(&self) -> Local {
        let shard = Arc::new(Shard::new());
        self.shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&shard));
        Local {
            owner: Arc::downgrade(&self.shards),
            shard,
            series: foldhash::HashMap::default(),
        }
    }

    /// A request has started; it is in flight until [`HttpMetrics::leave`].
    pub fn enter(&self) {
        self.local(|l| bump(&l.shard.started, 1));
    }

    /// A request started with [`HttpMetrics::enter`] has ended (on any thread).
    pub fn leave(&self) {
        self.local(|l| bump(&l.shard.finished, 1));
    }

    /// A request has started; it is in flight until the guard is dropped.
    #[must_use]
    pub fn start(&self) -> InFlight {
        self.enter();
        InFlight(HttpMetrics {
            shards: Arc::clone(&self.shards),
        })
    }

    /// A finished request. `route` is the route template (never the raw path: the
    /// label set must stay bounded).
    pub fn observe(
        &self,
        route: &str,
        method: &str,
        status: u16,
        duration: Duration,
        statements: u64,
    ) {
        self.local(|l| record(l, route, method, status, duration, statements));
    }

    /// [`HttpMetrics::observe`] and [`HttpMetrics::leave`] in one: a request
    /// started with [`HttpMetrics::enter`] has ended. (One visit to the thread's
    /// shard instead of two, on every request.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use napiatke_telemetry::metrics::{Exposition, HttpMetrics};
    ///
    /// let http = HttpMetrics::default();
    /// http.enter();
    /// http.finish("/healthz", "GET", 200, Duration::from_micros(90), 1);
    /// let mut out = Exposition::default();
    /// http.write(&mut out);
    /// let text = out.finish();
    /// assert!(text.contains("http_server_active_requests 0"), "{text}");
    /// assert!(text.contains("http_server_request_duration_seconds_count{http_route=\"/healthz\",http_request_method=\"GET\",http_response_status_code=\"200\"} 1"));
    /// ```
    pub fn finish(
        &self,
        route: &str,
        method: &str,
        status: u16,
        duration: Duration,
        statements: u64,
    ) {
        self.local(|l| {
            bump(&l.shard.finished, 1);
            record(l, route, method, status, duration, statements);
        });
    }

    /// Writes the HTTP figures, every thread's shard added up.
    pub fn write(&self, out: &mut Exposition) {
        out.header(
            "http_server_request_duration_seconds",
            "histogram",
            "Duration of HTTP server requests.",
        );
        let shards: Vec<Arc<Shard>> = self
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut merged: std::collections::BTreeMap<(String, u16, String), Counts> =
            std::collections::BTreeMap::new();
        let mut statements = Counts::new(STATEMENT_BUCKETS, 1.0);
        let (mut started, mut finished) = (0u64, 0u64);
        for shard in &shards {
            finished = finished.wrapping_add(shard.finished.load(Relaxed));
            started = started.wrapping_add(shard.started.load(Relaxed));
            statements.add(&shard.statements);
            let durations = shard
                .durations
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            for (route, series) in durations.iter() {
                merged
                    .entry((route.clone(), series.status, series.method.clone()))
                    .or_insert_with(|| Counts::of(&series.histogram))
                    .add(&series.histogram);
            }
        }
        for ((route, status, method), counts) in &merged {
            let status = status.to_string();
            counts.write(
                out,
                "http_server_request_duration_seconds",
                &[
                    ("http_route", route),
                    ("http_request_method", method),
                    ("http_response_status_code", &status),
                ],
            );
        }
        // Shards are read one after another while requests go on, so a request
        // that ended may be counted where its start was not: never below zero.
        #[allow(clippy::cast_possible_wrap)]
        let active = started.wrapping_sub(finished) as i64;
        out.gauge(
            "http_server_active_requests",
            "Number of active HTTP server requests.",
            &[(&[], active.max(0) as f64)],
        );
        out.header(
            "napiatke_request_statements",
            "histogram",
            "SQL statements run per HTTP request.",
        );
        statements.write(out, "napiatke_request_statements", &[]);
    }
}

/// The text exposition format, written family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// One sample's labels and value.
pub type Sample<'a> = (&'a [(&'a str, &'a str)], f64);

impl Exposition {
    /// `# HELP` and `# TYPE` lines for a family.
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// A gauge family.
    pub fn gauge(&mut self, name: &str, help: &str, samples: &[Sample<'_>]) {
        self.family(name, "gauge", help, samples);
    }

    /// A counter family (`name` should end in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, samples: &[Sample<'_>]) {
        self.family(name, "counter", help, samples);
    }

    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[Sample<'_>]) {
        self.header(name, kind, help);
        for (labels, value) in samples {
            self.sample(name, labels, *value);
        }
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(k);
                self.text.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.text.push_str("\\\\"),
                        '"' => self.text.push_str("\\\""),
                        '\n' => self.text.push_str("\\n"),
                        c => self.text.push(c),
                    }
                }
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(&format_float(value));
        self.text.push('\n');
    }

    /// The text.
    #[must_use]
    pub fn finish(self) -> String {
        self.text
    }
}

/// Integers without a fraction, others as Rust prints them (shortest round trip).
fn format_float(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_sum_is_in_seconds() {
        let http = HttpMetrics::default();
        http.observe("/a/", "GET", 200, Duration::from_micros(400), 0);
        http.observe("/a/", "GET", 200, Duration::from_millis(30), 4);
        http.observe("/a/", "GET", 200, Duration::from_secs(20), 0);
        let mut out = Exposition::default();
        http.write(&mut out);
        let text = out.finish();
        let line = |s: &str| {
            text.lines()
                .find(|l| l.starts_with(s))
                .unwrap_or_else(|| panic!("no {s} in {text}"))
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        let labels =
            "http_route=\"/a/\",http_request_method=\"GET\",http_response_status_code=\"200\"";
        assert_eq!(
            line(&format!(
                "http_server_request_duration_seconds_bucket{{{labels},le=\"0.0005\"}}"
            )),
            "1"
        );
        assert_eq!(
            line(&format!(
                "http_server_request_duration_seconds_bucket{{{labels},le=\"0.05\"}}"
            )),
            "2"
        );
        assert_eq!(
            line(&format!(
                "http_server_request_duration_seconds_bucket{{{labels},le=\"10\"}}"
            )),
            "2"
        );
        assert_eq!(
            line(&format!(
                "http_server_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}}"
            )),
            "3"
        );
        assert_eq!(
            line(&format!(
                "http_server_request_duration_seconds_sum{{{labels}}}"
            )),
            "20.0304"
        );
        assert_eq!(line("napiatke_request_statements_bucket{le=\"5\"}"), "3");
        assert_eq!(line("napiatke_request_statements_bucket{le=\"0\"}"), "2");
        assert_eq!(line("napiatke_request_statements_sum"), "4");
    }

    #[test]
    fn in_flight_counts_until_dropped_and_labels_are_escaped() {
        let http = HttpMetrics::default();
        let a = http.start();
        let b = http.start();
        drop(a);
        let mut out = Exposition::default();
        http.write(&mut out);
        assert!(out.finish().contains("http_server_active_requests 1\n"));
        drop(b);
        let mut out = Exposition::default();
        http.write(&mut out);
        assert!(out.finish().contains("http_server_active_requests 0\n"));
        let mut out = Exposition::default();
        out.gauge("g", "help", &[(&[("k", "a\"b\\c\nd")], 1.5)]);
        assert_eq!(
            out.finish(),
            "# HELP g help\n# TYPE g gauge\ng{k=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        );
    }

    #[test]
    fn every_threads_shard_is_added_up_and_a_request_may_end_on_another_thread() {
        let http = std::sync::Arc::new(HttpMetrics::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let http = std::sync::Arc::clone(&http);
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        http.enter();
                        let status = if i % 10 == 0 { 404 } else { 200 };
                        http.observe(
                            "/lessons/{id}/",
                            "GET",
                            status,
                            Duration::from_micros(300 + t),
                            i % 3,
                        );
                        http.leave();
                    }
                    // Started here, ended on the main thread.
                    http.enter();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let scrape = || {
            let mut out = Exposition::default();
            http.write(&mut out);
            out.finish()
        };
        let text = scrape();
        let ok = "{http_route=\"/lessons/{id}/\",http_request_method=\"GET\",http_response_status_code=\"200\"}";
        let missing = "{http_route=\"/lessons/{id}/\",http_request_method=\"GET\",http_response_status_code=\"404\"}";
        assert!(
            text.contains(&format!(
                "http_server_request_duration_seconds_count{ok} 3600\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "http_server_request_duration_seconds_count{missing} 400\n"
            )),
            "{text}"
        );
        // Every request took 300-303 us: all in the 0.0005 s bucket.
        assert!(text.contains("http_server_request_duration_seconds_bucket{http_route=\"/lessons/{id}/\",http_request_method=\"GET\",http_response_status_code=\"200\",le=\"0.0005\"} 3600\n"), "{text}");
        assert!(
            text.contains("napiatke_request_statements_count 4000\n"),
            "{text}"
        );
        // One series per route, method and status however many threads saw it.
        assert_eq!(
            text.matches("http_server_request_duration_seconds_count{")
                .count(),
            2,
            "{text}"
        );
        assert!(text.contains("http_server_active_requests 4\n"), "{text}");
        // Ended here with `finish`: counted finished and observed in one go.
        for _ in 0..4 {
            http.finish("/healthz", "GET", 200, Duration::from_micros(50), 1);
        }
        let text = scrape();
        assert!(text.contains("http_server_active_requests 0\n"), "{text}");
        assert!(text.contains("http_server_request_duration_seconds_count{http_route=\"/healthz\",http_request_method=\"GET\",http_response_status_code=\"200\"} 4\n"), "{text}");
    }

    #[test]
    fn a_threads_shards_of_dropped_metrics_are_let_go() {
        for _ in 0..100 {
            let http = HttpMetrics::default();
            http.observe("/", "GET", 200, Duration::from_micros(1), 0);
        }
        let http = HttpMetrics::default();
        http.observe("/", "GET", 200, Duration::from_micros(1), 0);
        super::LOCAL.with(|l| assert!(l.borrow().len() <= 2, "{}", l.borrow().len()));
    }
}
