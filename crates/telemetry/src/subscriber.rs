//! The process's one `tracing` subscriber, set up in one place: the accounting layer
//! (sees statement, cache and render events whatever the log filter says) and the log
//! lines, filtered by RUST_LOG, human-readable or JSON.

use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::{AccountingLayer, CACHE_TARGET, RENDER_TARGET, STATEMENT_TARGET};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One readable line per event (development).
    Human,
    /// One JSON object per line, the event's fields flattened, with the request id
    /// of the request it belongs to (production: for a log shipper).
    Json,
}

/// What [`init`] sets up.
#[derive(Debug, Clone)]
pub struct Options {
    /// The line format.
    pub format: Format,
    /// The filter used when RUST_LOG is unset or unreadable.
    pub default_filter: String,
    /// Export spans to an OpenTelemetry collector (OTEL_EXPORTER_OTLP_ENDPOINT).
    pub otlp: Option<crate::otel::OtlpOptions>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Human,
            default_filter: "warn".to_owned(),
            otlp: None,
        }
    }
}

/// Keeps the log writer's thread and the span exporter alive; dropping it flushes
/// the lines and spans still queued. Hold it for as long as the process runs.
#[derive(Debug)]
pub struct LogGuard {
    _lines: crate::writer::WriterGuard,
    spans: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl LogGuard {
    /// Sends the spans finished so far to the collector now (tests; a process
    /// that ends drops its guard, which does the same).
    pub fn flush_spans(&self) {
        if let Some(p) = &self.spans {
            let _ = p.force_flush();
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(p) = self.spans.take() {
            let _ = p.shutdown();
        }
    }
}

/// Installs the subscriber for the whole process. Lines are written to stderr by a
/// thread of their own ([`crate::LineWriter`]: a request only formats its line and
/// appends it to a buffer; writing it in place cost a cached page 13–32 % of its
/// throughput, docs/performance.md); past 16 MiB waiting, new lines are dropped and
/// counted rather than slowing requests. A
/// second call (tests set up many apps in one process) leaves the first subscriber
/// in place and returns `Ok(None)`. An OTLP endpoint that cannot be used is an
/// error (start-up should stop and say so).
///
/// ```
/// use napiatke_telemetry::{init, Format, Options};
/// let _guard = init(Options { format: Format::Json, ..Options::default() })?;
/// tracing::warn!(target: "napiatke::example", answer = 42, "written as one JSON line");
/// # Ok::<(), napiatke_telemetry::otel::OtelError>(())
/// ```
pub fn init(options: Options) -> Result<Option<LogGuard>, crate::otel::OtelError> {
    let spans = options
        .otlp
        .as_ref()
        .map(crate::otel::provider)
        .transpose()?;
    let otel = spans.as_ref().map(|p| {
        // Only napiatke's own spans: request, statement, render, image work.
        crate::otel::layer(p).with_filter(filter_fn(|m| {
            m.is_span() && m.target().starts_with("napiatke")
        }))
    });
    let (writer, guard) = crate::writer::LineWriter::spawn(std::io::stderr(), options.format);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&options.default_filter));
    // Every span, whatever its level: accounting walks up to the request's span.
    // Leaving TRACE spans out here (they are for trace exporters) lost statement
    // events that followed a span no layer wanted (tracing-subscriber's per-layer
    // filter state), so the server-timing and monitoring tests failed: kept.
    let accounting = AccountingLayer::default().with_filter(filter_fn(|m| {
        m.is_span()
            || m.target() == STATEMENT_TARGET
            || m.target() == CACHE_TARGET
            || m.target() == RENDER_TARGET
    }));
    let lines = match options.format {
        // Colours only on a terminal: the writer thread hides it from the formatter,
        // and escape codes in a log file are noise.
        Format::Human => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
        Format::Json => tracing_subscriber::fmt::layer()
            .event_format(crate::line::JsonLine)
            .fmt_fields(crate::line::RequestIdOnly)
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(accounting)
        .with(otel)
        .with(lines)
        .try_init()
        .is_ok();
    Ok(installed.then_some(LogGuard {
        _lines: guard,
        spans,
    }))
}
