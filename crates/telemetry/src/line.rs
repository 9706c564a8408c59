//! JSON log lines written straight from the event, for production.
//!
//! tracing-subscriber's JSON formatter keeps every span's fields as a JSON string,
//! parses and re-serialises it each time a field is recorded on the span (the
//! request span records four), and parses it again for every line that shows the
//! span. At tens of thousands of requests a second that was most of what the
//! request log line cost (docs/performance.md). Here a span keeps only its
//! `request_id` (already escaped, written once when the span starts) and a line is
//! the event's own fields, flattened, plus that id when the event has none.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The span field a line inherits from the spans it was emitted in.
const REQUEST_ID: &str = "request_id";

/// Formats one event as one JSON object on one line:
/// `{"timestamp":…,"level":…,"target":…,"message":…,<fields>,"request_id":…}`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct JsonLine;

/// Keeps, of a span's fields, only its request id (escaped for JSON).
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
            self.result = Escaped(self.out).write_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == REQUEST_ID {
            self.result = write!(Escaped(self.out), "{value:?}");
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
        SystemTime.format_time(&mut writer)?;
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
            if let Some(scope) = ctx.event_scope() {
                for span in scope {
                    let extensions = span.extensions();
                    let Some(id) = extensions.get::<FormattedFields<N>>() else {
                        continue;
                    };
                    if !id.fields.is_empty() {
                        writer.write_str(",\"request_id\":\"")?;
                        writer.write_str(&id.fields)?;
                        writer.write_char('"')?;
                        break;
                    }
                }
            }
        }
        writer.write_str("}\n")
    }
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
}
