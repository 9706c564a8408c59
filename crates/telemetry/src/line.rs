//! JSON log lines written straight from the event, for production.
//!
//! tracing-subscriber's JSON formatter keeps every span's fields as a JSON string,
//! parses and re-serialises it each time a field is recorded on the span (the
//! request span records four), and parses it again for every line that shows the
//! span. At tens of thousands of requests a second that was most of what the
//! request log line cost (docs/performance.md). Here a span keeps only its
//! `request_id` (kept once when the span starts) and a line is
//! the event's own fields, flattened, plus its request's id when the event has none.
//!
//! The per-request line ([`RequestLine`]) does not go through `tracing` at all in
//! production: [`log_request`] formats it straight into the line writer's buffer
//! (numbers by hand, the timestamp's date and time of day kept per second), which
//! is a small part of what an event through the subscriber's layers and the
//! formatter cost.

use std::fmt::{self, Write};
use std::sync::OnceLock;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The span field a line inherits from the spans it was emitted in.
const REQUEST_ID: &str = "request_id";

/// Formats one event as one JSON object on one line:
/// `{"timestamp":…,"level":…,"target":…,"message":…,<fields>,"request_id":…}`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct JsonLine;

/// Keeps, of a span's fields, only its request id (as given; escaped when written).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RequestIdOnly;

impl<'w> FormatFields<'w> for RequestIdOnly {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = RequestIdVisitor {
            out: &mut writer,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }

    /// A request id is given when the span starts and never recorded later, so the
    /// fields a span records afterwards (status, route) are not even visited.
    fn add_fields(
        &self,
        _current: &mut FormattedFields<Self>,
        _fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        Ok(())
    }
}

struct RequestIdVisitor<'a, W: Write> {
    out: &'a mut W,
    result: fmt::Result,
}

impl<W: Write> Visit for RequestIdVisitor<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == REQUEST_ID {
            self.result = self.out.write_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == REQUEST_ID {
            self.result = write!(self.out, "{value:?}");
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        // The same stamp as the request line's (one formatter for both).
        let mut stamp = Vec::with_capacity(27);
        timestamp(&mut stamp, std::time::SystemTime::now());
        writer.write_str(std::str::from_utf8(&stamp).map_err(|_| fmt::Error)?)?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(meta.level().as_str())?;
        writer.write_str("\",\"target\":\"")?;
        Escaped(&mut writer).write_str(meta.target())?;
        writer.write_char('"')?;
        let mut fields = JsonFields {
            out: &mut writer,
            has_request_id: false,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        if !fields.has_request_id {
            if let Some(id) = request_id(ctx) {
                writer.write_str(",\"request_id\":\"")?;
                Escaped(&mut writer).write_str(&id)?;
                writer.write_char('"')?;
            }
        }
        writer.write_str("}\n")
    }
}

/// The id of the request an event belongs to: the request this thread is polling,
/// else the request of the innermost span around the event that carries one (the
/// work a service runs on a blocking thread), else a span's `request_id` field.
pub(crate) fn request_id<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let current = crate::scope::with_current(|c| c.map(|c| c.request_id().to_owned()));
    if let Some(id) = current.filter(|id| !id.is_empty()) {
        return Some(id);
    }
    ctx.event_scope()?.find_map(|span| {
        let extensions = span.extensions();
        if let Some(cost) = extensions.get::<crate::RequestCost>() {
            return Some(cost.request_id().to_owned()).filter(|id| !id.is_empty());
        }
        extensions
            .get::<FormattedFields<N>>()
            .filter(|f| !f.fields.is_empty())
            .map(|f| f.fields.clone())
    })
}

/// Writes each field as `,"name":value`.
struct JsonFields<'a, W: Write> {
    out: &'a mut W,
    has_request_id: bool,
    result: fmt::Result,
}

impl<W: Write> JsonFields<'_, W> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        if field.name() == REQUEST_ID {
            self.has_request_id = true;
        }
        self.out.write_str(",\"")?;
        Escaped(self.out).write_str(field.name())?;
        self.out.write_str("\":")
    }

    fn raw(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| self.out.write_fmt(value));
        }
    }
}

impl<W: Write> Visit for JsonFields<'_, W> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; Rust's Display never writes an exponent.
        if value.is_finite() {
            self.raw(field, format_args!("{value}"));
        } else {
            self.raw(field, format_args!("null"));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| {
                self.out.write_char('"')?;
                Escaped(self.out).write_str(value)?;
                self.out.write_char('"')
            });
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| {
                self.out.write_char('"')?;
                write!(Escaped(self.out), "{value:?}")?;
                self.out.write_char('"')
            });
        }
    }
}

/// Escapes what passes through it for the inside of a JSON string.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            // Only ASCII bytes are escaped, so `start..i` is on char boundaries.
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

/// The target of the one line logged per request (INFO).
pub const REQUEST_TARGET: &str = "napiatke::request";

/// What the per-request line says. `route` is the route template, never the raw
/// path's parameters alone; `path` is the path as asked.
#[derive(Debug, Clone, Copy)]
pub struct RequestLine<'a> {
    /// As the client sent it (HEAD stays HEAD).
    pub method: &'a str,
    /// `/lessons/{id}/`, or `(unmatched)`.
    pub route: &'a str,
    /// The path asked for.
    pub path: &'a str,
    /// The answer's status.
    pub status: u16,
    /// The request's id (X-Request-Id).
    pub request_id: &'a str,
    /// From the first byte of work to the answer's head.
    pub duration: Duration,
    /// The logged-in user's id, if any.
    pub user_id: Option<i64>,
    /// Their role.
    pub role: Option<&'a str>,
    /// An htmx request.
    pub htmx: bool,
    /// Statements run.
    pub statements: u64,
    /// Time in them, microseconds.
    pub db_micros: u64,
    /// Cache lookups by tier.
    pub cache: crate::CacheCounts,
    /// Time rendering templates, microseconds.
    pub render_micros: u64,
    /// The body's length, when known before it is sent.
    pub bytes: Option<u64>,
}

/// Where [`log_request`] writes JSON lines itself ([`crate::init`] with
/// [`Format::Json`](crate::Format::Json), when RUST_LOG lets the request line through).
static DIRECT: OnceLock<crate::LineWriter> = OnceLock::new();

/// Sends this request's line straight to `writer` from now on (once per process).
pub(crate) fn write_requests_to(writer: crate::LineWriter) {
    let _ = DIRECT.set(writer);
}

/// Logs the request's line at INFO on [`REQUEST_TARGET`]. After [`crate::init`] in
/// JSON, with the line enabled, it is formatted by hand into the line writer;
/// otherwise it is a `tracing` event like any other (human-readable lines, tests'
/// subscribers).
///
/// ```
/// use std::time::Duration;
/// use napiatke_telemetry::{log_request, CacheCounts, RequestLine};
/// log_request(&RequestLine {
///     method: "GET", route: "/lessons/{id}/", path: "/lessons/7/", status: 200,
///     request_id: "r-1", duration: Duration::from_micros(1234), user_id: Some(3),
///     role: Some("admin"), htmx: false, statements: 0, db_micros: 0,
///     cache: CacheCounts::default(), render_micros: 0, bytes: Some(3230),
/// });
/// ```
pub fn log_request(line: &RequestLine<'_>) {
    if let Some(writer) = DIRECT.get() {
        let now = std::time::SystemTime::now();
        writer.append_with(|out| line.write_json(out, now));
        return;
    }
    let c = line.cache;
    tracing::info!(
        target: REQUEST_TARGET,
        method = line.method,
        route = line.route,
        path = line.path,
        status = line.status,
        request_id = line.request_id,
        duration_ms = millis(line.duration.as_micros()),
        user_id = line.user_id,
        role = line.role,
        htmx = line.htmx,
        statements = line.statements,
        db_ms = millis(u128::from(line.db_micros)),
        l1_hits = c.l1_hits,
        l1_misses = c.l1_misses,
        l2_hits = c.l2_hits,
        l2_misses = c.l2_misses,
        render_ms = millis(u128::from(line.render_micros)),
        bytes = line.bytes,
    );
}

/// Whole microseconds as milliseconds, so a line reads 0.014, not 0.01381999....
#[allow(clippy::cast_precision_loss)]
fn millis(micros: u128) -> f64 {
    micros as f64 / 1000.0
}

impl RequestLine<'_> {
    /// The line as JSON (one object and a newline), as the JSON log format writes
    /// every event: timestamp, level, target, then the fields in order; `user_id`,
    /// `role` and `bytes` only when known.
    pub fn write_json(&self, out: &mut Vec<u8>, now: std::time::SystemTime) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(out, now);
        out.extend_from_slice(
            b"\",\"level\":\"INFO\",\"target\":\"napiatke::request\",\"method\":\"",
        );
        escaped(out, self.method);
        out.extend_from_slice(b"\",\"route\":\"");
        escaped(out, self.route);
        out.extend_from_slice(b"\",\"path\":\"");
        escaped(out, self.path);
        out.extend_from_slice(b"\",\"status\":");
        number(out, u64::from(self.status));
        out.extend_from_slice(b",\"request_id\":\"");
        escaped(out, self.request_id);
        out.extend_from_slice(b"\",\"duration_ms\":");
        decimal_millis(
            out,
            u64::try_from(self.duration.as_micros()).unwrap_or(u64::MAX),
        );
        if let Some(id) = self.user_id {
            out.extend_from_slice(b",\"user_id\":");
            if id < 0 {
                out.push(b'-');
            }
            number(out, id.unsigned_abs());
        }
        if let Some(role) = self.role {
            out.extend_from_slice(b",\"role\":\"");
            escaped(out, role);
            out.push(b'"');
        }
        out.extend_from_slice(if self.htmx {
            b",\"htmx\":true,\"statements\":"
        } else {
            b",\"htmx\":false,\"statements\":"
        });
        number(out, self.statements);
        out.extend_from_slice(b",\"db_ms\":");
        decimal_millis(out, self.db_micros);
        let c = self.cache;
        for (key, n) in [
            (&b",\"l1_hits\":"[..], c.l1_hits),
            (b",\"l1_misses\":", c.l1_misses),
            (b",\"l2_hits\":", c.l2_hits),
            (b",\"l2_misses\":", c.l2_misses),
        ] {
            out.extend_from_slice(key);
            number(out, n);
        }
        out.extend_from_slice(b",\"render_ms\":");
        decimal_millis(out, self.render_micros);
        if let Some(bytes) = self.bytes {
            out.extend_from_slice(b",\"bytes\":");
            number(out, bytes);
        }
        out.extend_from_slice(b"}\n");
    }
}

/// `n` in decimal. Most of a line's counts are one digit (statements, cache
/// lookups): those skip itoa's buffer.
pub(crate) fn number(out: &mut Vec<u8>, n: u64) {
    if n < 10 {
        #[allow(clippy::cast_possible_truncation)]
        out.push(b'0' + n as u8);
        return;
    }
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Microseconds as milliseconds the way Rust prints the `f64` `micros / 1000`:
/// `12`, `1.5`, `0.014` (trailing zeros of the fraction left out).
pub(crate) fn decimal_millis(out: &mut Vec<u8>, micros: u64) {
    number(out, micros / 1000);
    let fraction = micros % 1000;
    if fraction == 0 {
        return;
    }
    #[allow(clippy::cast_possible_truncation)]
    let text = [
        b'.',
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ];
    let mut keep = 4;
    while text[keep - 1] == b'0' {
        keep -= 1;
    }
    out.extend_from_slice(&text[..keep]);
}

/// Microseconds as milliseconds with three decimals, appended: `1.234`, `0.000`
/// (the timing headers' figures).
///
/// ```
/// let mut out = b"t=".to_vec();
/// napiatke_telemetry::push_millis(&mut out, 12_045);
/// assert_eq!(out, b"t=12.045");
/// ```
pub fn fixed_millis(out: &mut Vec<u8>, micros: u64) {
    number(out, micros / 1000);
    let fraction = micros % 1000;
    #[allow(clippy::cast_possible_truncation)]
    out.extend_from_slice(&[
        b'.',
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ]);
}

/// JSON string content: `"`, `\\` and control characters escaped. The check and
/// the copy are inlined into the line's writer and the escaping is out of line:
/// with both in one function, every call paid the escaping's register saves (a
/// line's five strings took about 1,000 instructions, most of the line's cost).
#[inline]
fn escaped(out: &mut Vec<u8>, s: &str) {
    if plain(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
    } else {
        escape_into(out, s);
    }
}

#[cold]
#[inline(never)]
fn escape_into(out: &mut Vec<u8>, s: &str) {
    let mut text = String::new();
    let _ = Escaped(&mut text).write_str(s);
    out.extend_from_slice(text.as_bytes());
}

/// Whether `s` has nothing JSON escapes (no `"`, `\\` or control character),
/// looked at eight bytes at a time: a byte at a time took about ten instructions a
/// byte, a fifth of the whole line's cost. A word may be flagged that holds none
/// (the bit tricks are exact only for "any"): then the caller escapes, which is
/// still right.
#[inline]
fn plain(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `w` is zero, or below `n` (n <= 128), where the high bit comes out
    // set (Hacker's Delight, 6-1).
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
    let mut words = s.chunks_exact(8);
    for word in &mut words {
        let Ok(bytes) = <[u8; 8]>::try_from(word) else {
            return false;
        };
        let w = u64::from_le_bytes(bytes);
        if below(w, 0x20)
            | below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            != 0
        {
            return false;
        }
    }
    words.remainder().iter().all(|&b| PLAIN[usize::from(b)])
}

/// The bytes JSON leaves as they are in a string (the tail of [`plain`]'s check,
/// one load a byte instead of three comparisons).
static PLAIN: [bool; 256] = {
    let mut table = [true; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = false;
        b += 1;
    }
    table[b'"' as usize] = false;
    table[b'\\' as usize] = false;
    table
};

/// `2026-12-07T06:33:50.123456Z` (the format of tracing-subscriber's `SystemTime`),
/// for every JSON line.
/// The date and time of day are worked out once a second per thread.
fn timestamp(out: &mut Vec<u8>, now: std::time::SystemTime) {
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (cached, mut text) = SECOND.get();
    if cached != secs {
        text = civil(secs);
        SECOND.set((secs, text));
    }
    out.extend_from_slice(&text);
    out.push(b'.');
    let micros = u64::from(since.subsec_micros());
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for d in digits.iter_mut().rev() {
        #[allow(clippy::cast_possible_truncation)]
        {
            *d = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` of Unix time `secs` (UTC; years 1970–9999), by Howard
/// Hinnant's days-to-civil algorithm.
fn civil(secs: u64) -> [u8; 19] {
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + u64::from(month <= 2)).min(9999);
    let mut text = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            #[allow(clippy::cast_possible_truncation)]
            {
                text[i] = b'0' + (v % 10) as u8;
            }
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(emit: impl FnOnce()) -> Vec<serde_json::Value> {
        text(emit)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn text(emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLine)
                .fmt_fields(RequestIdOnly)
                .with_writer(move || out.clone()),
        );
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn a_line_is_the_events_fields_flattened_with_its_requests_id() {
        let got = lines(|| {
            let span = tracing::info_span!(
                "request",
                path = "/x",
                request_id = %"r-1",
                status = tracing::field::Empty
            );
            span.record("status", 200);
            let _in = span.enter();
            tracing::warn!(
                target: "napiatke::test",
                route = %"/lessons/{id}/",
                statements = 3u64,
                late = -2i64,
                ms = 0.014,
                nan = f64::NAN,
                cached = true,
                quote = "a \"b\"\\ \n\t\u{1}ż",
                "slow {}", "request"
            );
        });
        assert_eq!(got.len(), 1);
        let line = &got[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["target"], "napiatke::test");
        assert_eq!(line["message"], "slow request");
        assert_eq!(line["route"], "/lessons/{id}/");
        assert_eq!(line["statements"], 3);
        assert_eq!(line["late"], -2);
        assert_eq!(line["ms"], 0.014);
        assert!(line["nan"].is_null());
        assert_eq!(line["cached"], true);
        assert_eq!(line["quote"], "a \"b\"\\ \n\t\u{1}ż");
        assert_eq!(line["request_id"], "r-1");
        // The span's other fields stay out of its lines.
        assert!(line.get("path").is_none() && line.get("status").is_none());
        let stamp = line["timestamp"].as_str().unwrap();
        assert!(stamp.len() >= 20 && stamp.ends_with('Z'), "{stamp}");
    }

    #[test]
    fn an_event_with_its_own_request_id_keeps_it_once() {
        let got = lines(|| {
            let span = tracing::info_span!("request", request_id = "outer");
            let _in = span.enter();
            tracing::info!(request_id = "inner", "done");
            tracing::info!("outside any request");
        });
        assert_eq!(got[0]["request_id"], "inner");
        assert_eq!(got[1]["request_id"], "outer");
        // Parsing would hide a repeated key: count them in the text.
        let raw = text(|| {
            let span = tracing::info_span!("request", request_id = "outer");
            let _in = span.enter();
            tracing::info!(request_id = "inner", "done");
        });
        assert_eq!(raw.matches("request_id").count(), 1, "{raw}");
        let none = lines(|| tracing::error!(code = 7u64, "no span"));
        assert!(none[0].get("request_id").is_none());
        assert_eq!(none[0]["level"], "ERROR");
    }

    fn sample(bytes: Option<u64>, user: Option<i64>) -> RequestLine<'static> {
        RequestLine {
            method: "GET",
            route: "/lessons/{id}/",
            path: "/lessons/7/\"q",
            status: 200,
            request_id: "r-9",
            duration: Duration::from_micros(1_230),
            user_id: user,
            role: user.map(|_| "tutor"),
            htmx: true,
            statements: 3,
            db_micros: 14,
            cache: crate::CacheCounts {
                l1_hits: 2,
                l1_misses: 1,
                l2_hits: 1,
                l2_misses: 0,
                l2_micros: 90,
            },
            render_micros: 120_000,
            bytes,
        }
    }

    #[test]
    fn the_request_line_by_hand_says_what_the_event_would() {
        for (bytes, user) in [(Some(3230), Some(4)), (None, None)] {
            let line = sample(bytes, user);
            let mut out = Vec::new();
            line.write_json(&mut out, std::time::SystemTime::now());
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text.matches('\n').count(), 1);
            assert!(text.ends_with('\n'));
            let mut by_hand: serde_json::Value = serde_json::from_str(&text).unwrap();
            // No DIRECT writer in this process: the same line as a tracing event.
            let mut event = lines(|| log_request(&line)).remove(0);
            let stamp = by_hand["timestamp"].as_str().unwrap().to_owned();
            assert_eq!(stamp.len(), 27, "{stamp}");
            assert!(
                stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
                "{stamp}"
            );
            by_hand["timestamp"] = serde_json::Value::Null;
            event["timestamp"] = serde_json::Value::Null;
            assert_eq!(by_hand, event);
            assert_eq!(by_hand["path"], "/lessons/7/\"q");
            assert_eq!(by_hand["duration_ms"], 1.23);
            assert_eq!(by_hand["db_ms"], 0.014);
            assert_eq!(by_hand["render_ms"], 120);
            assert_eq!(by_hand["l1_misses"], 1);
            assert_eq!(by_hand.get("bytes").is_some(), bytes.is_some());
            assert_eq!(by_hand.get("user_id").is_some(), user.is_some());
        }
    }

    #[test]
    fn a_string_is_plain_exactly_when_json_escapes_nothing_in_it() {
        let slow = |s: &[u8]| s.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\');
        // Every special byte (and its neighbours) at every place of strings of 0 to
        // 24 bytes, around plain ASCII and two-byte UTF-8.
        let specials = [
            0u8, 0x1f, 0x20, b'"', b'\\', 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xc4, 0xff,
        ];
        let mut checked = 0;
        for len in 0..24 {
            for fill in [b'a', 0x85] {
                let base = vec![fill; len];
                assert_eq!(super::plain(&base), slow(&base), "{base:?}");
                for at in 0..len {
                    for &b in &specials {
                        let mut s = base.clone();
                        s[at] = b;
                        assert_eq!(super::plain(&s), slow(&s), "{s:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 5000);
        let mut out = Vec::new();
        super::escaped(&mut out, "/lessons/?q=\"x\"");
        assert_eq!(out, br#"/lessons/?q=\"x\""#);
        out.clear();
        super::escaped(&mut out, "/zażółć/");
        assert_eq!(String::from_utf8(out).unwrap(), "/zażółć/");
    }

    #[test]
    fn milliseconds_and_dates_are_written_as_rust_and_tracing_write_them() {
        for micros in [
            0u64,
            1,
            10,
            14,
            100,
            999,
            1000,
            1001,
            1230,
            12_000,
            123_456_789,
        ] {
            let mut out = Vec::new();
            decimal_millis(&mut out, micros);
            #[allow(clippy::cast_precision_loss)]
            let expected = (micros as f64 / 1000.0).to_string();
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{micros}");
            let mut fixed = Vec::new();
            fixed_millis(&mut fixed, micros);
            assert_eq!(
                String::from_utf8(fixed).unwrap(),
                format!("{}.{:03}", micros / 1000, micros % 1000)
            );
        }
        for (secs, text) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_796_600_096, "2026-12-06T23:34:56"),
            (4_102_444_799, "2099-12-31T23:59:59"),
            (4_107_542_400, "2100-03-01T00:00:00"),
        ] {
            assert_eq!(std::str::from_utf8(&civil(secs)).unwrap(), text, "{secs}");
        }
        let now = std::time::SystemTime::now();
        let mut ours = Vec::new();
        timestamp(&mut ours, now);
        let micros = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_micros();
        assert!(String::from_utf8(ours)
            .unwrap()
            .ends_with(&format!(".{micros:06}Z")));
    }

    #[test]
    fn a_line_written_on_another_thread_for_a_request_names_it() {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::registry()
            .with(crate::AccountingLayer::default())
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonLine)
                    .fmt_fields(RequestIdOnly)
                    .with_writer(move || out.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            let cost = crate::RequestCost::new("req-7");
            let work = cost.in_scope(|| {
                tracing::warn!("in the request's own task");
                tracing::info_span!(target: crate::WORK_TARGET, "work")
            });
            let dispatch = tracing::dispatcher::get_default(Clone::clone);
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    work.in_scope(|| tracing::warn!("slow statement"));
                });
            })
            .join()
            .ok();
            tracing::warn!("after it");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let got: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got.len(), 3, "{text}");
        assert_eq!(got[0]["request_id"], "req-7");
        assert_eq!(got[1]["request_id"], "req-7");
        assert!(got[2].get("request_id").is_none(), "{text}");
    }
}
