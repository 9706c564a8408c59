//! Prometheus metrics: the request figures kept as they happen, and a writer for the
//! text exposition format (version 0.0.4) that the app also uses for figures read at
//! scrape time (pool, cache, image jobs).
//!
//! Hand-written rather than a client crate: the app needs three instruments and a
//! writer, the hot path is a read lock and a few relaxed atomic adds, and nothing
//! else is pulled into the build. Names and units follow the OpenTelemetry HTTP
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

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
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

    /// Adds one observation of `units` (in `1 / scale` of the exposed unit).
    pub fn observe_units(&self, units: u64) {
        let value = units as f64 / self.scale;
        // Buckets are stored non-cumulative; the writer adds them up.
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(units, Relaxed);
    }

    fn write(&self, out: &mut Exposition, name: &str, labels: &[(&str, &str)]) {
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += bucket.load(Relaxed);
            let le = format_float(*bound);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            out.sample(&format!("{name}_bucket"), &with_le, cumulative as f64);
        }
        let count = self.count.load(Relaxed);
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        out.sample(&format!("{name}_bucket"), &with_le, count as f64);
        out.sample(
            &format!("{name}_sum"),
            labels,
            self.sum.load(Relaxed) as f64 / self.scale,
        );
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
#[derive(Debug)]
pub struct HttpMetrics {
    /// By route, then a short list by method and status: a request finds its series
    /// by borrowed strings, with no key to allocate.
    durations: RwLock<HashMap<String, Vec<Series>>>,
    active: Arc<AtomicI64>,
    statements: Histogram,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            durations: RwLock::new(HashMap::new()),
            active: Arc::new(AtomicI64::new(0)),
            statements: Histogram::new(STATEMENT_BUCKETS, 1.0),
        }
    }
}

/// Counts a request as in flight until dropped (so a cancelled request stops
/// counting too).
#[derive(Debug)]
pub struct InFlight(Arc<AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl HttpMetrics {
    /// A request has started; it is in flight until the guard is dropped.
    #[must_use]
    pub fn start(&self) -> InFlight {
        self.active.fetch_add(1, Relaxed);
        InFlight(Arc::clone(&self.active))
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
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.statements.observe_units(statements);
        let matches = |s: &Series| s.status == status && s.method == method;
        {
            let map = self
                .durations
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = map.get(route).and_then(|v| v.iter().find(|s| matches(s))) {
                series.histogram.observe_units(micros);
                return;
            }
        }
        let mut map = self
            .durations
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let list = map.entry(route.to_owned()).or_default();
        if let Some(series) = list.iter().find(|s| matches(s)) {
            series.histogram.observe_units(micros);
        } else {
            let histogram = Histogram::new(DURATION_BUCKETS, 1e6);
            histogram.observe_units(micros);
            list.push(Series {
                method: method.to_owned(),
                status,
                histogram,
            });
        }
    }

    /// Writes the HTTP figures.
    pub fn write(&self, out: &mut Exposition) {
        out.header(
            "http_server_request_duration_seconds",
            "histogram",
            "Duration of HTTP server requests.",
        );
        let map = self
            .durations
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<(&String, &Series)> = map
            .iter()
            .flat_map(|(route, list)| list.iter().map(move |s| (route, s)))
            .collect();
        all.sort_by(|a, b| (a.0, a.1.status, &a.1.method).cmp(&(b.0, b.1.status, &b.1.method)));
        for (route, series) in all {
            let status = series.status.to_string();
            series.histogram.write(
                out,
                "http_server_request_duration_seconds",
                &[
                    ("http_route", route),
                    ("http_request_method", &series.method),
                    ("http_response_status_code", &status),
                ],
            );
        }
        drop(map);
        out.gauge(
            "http_server_active_requests",
            "Number of active HTTP server requests.",
            &[(&[], self.active.load(Relaxed) as f64)],
        );
        out.header(
            "napiatke_request_statements",
            "histogram",
            "SQL statements run per HTTP request.",
        );
        self.statements
            .write(out, "napiatke_request_statements", &[]);
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
        out.gauge("g", "help", &[(&[("k", "a\"b\\c\nd")], 1.5)]);
        assert_eq!(
            out.finish(),
            "# HELP g help\n# TYPE g gauge\ng{k=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        );
    }
}
