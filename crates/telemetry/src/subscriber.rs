//! The process's one `tracing` subscriber, set up in one place: the accounting layer
//! (sees statement, cache and render events whatever the log filter says) and the log
//! lines, filtered by RUST_LOG, human-readable or JSON.

use std::fmt;

use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, Targets};
use tracing_subscriber::fmt::format::{Format as Formatter, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::{AccountingLayer, WORK_TARGET};

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
    /// Install the [`AccountingLayer`] (per-request statement, cache and render
    /// figures). Off, only the log lines remain: the baseline telemetry's cost is
    /// measured against.
    pub accounting: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Human,
            default_filter: "warn".to_owned(),
            otlp: None,
            accounting: true,
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
        // Only napiatke's own spans: request, service calls, statements, renders,
        // image work.
        crate::otel::layer(p).with_filter(Static(LevelFilter::TRACE, |m| {
            m.is_span() && m.target().starts_with("napiatke")
        }))
    });
    let (writer, guard) = crate::writer::LineWriter::spawn(std::io::stderr(), options.format);
    // RUST_LOG when it parses, else the default; the text is kept for the request
    // line's decision below.
    let (directives, filter) = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .and_then(|d| EnvFilter::try_new(&d).ok().map(|f| (d, f)))
        .unwrap_or_else(|| {
            let d = options.default_filter.clone();
            let f = EnvFilter::new(&d);
            (d, f)
        });
    // The events it adds up, and the spans that carry a request's cost to other
    // threads; nothing else, so that no other span is made for it (a span nobody
    // wants is never made: each is a slot in the span slab and a call through every
    // layer on enter, exit and close).
    // With no span export, its events go straight to the request's cost from a
    // subscriber in front of the registry ([`crate::accounted`]); the layer then
    // sees only the work spans.
    let front = options.accounting && otel.is_none();
    let accounting = options.accounting.then(|| {
        // Its events are DEBUG, work spans INFO. In front mode, INFO: a DEBUG hint
        // would have the front offer every event to the layers below as well.
        if front {
            AccountingLayer::default().with_filter(Static(LevelFilter::INFO, work_span))
        } else {
            AccountingLayer::default().with_filter(Static(LevelFilter::DEBUG, |m| {
                work_span(m) || crate::Kind::of(m).is_some()
            }))
        }
    });
    // The work spans too, whatever RUST_LOG says: a line written on a blocking
    // thread finds its request's id through them.
    let filter = filter.or(Static(LevelFilter::INFO, work_span));
    let lines = match options.format {
        // Colours only on a terminal: the writer thread hides it from the formatter,
        // and escape codes in a log file are noise.
        Format::Human => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            tracing_subscriber::fmt::layer()
                .with_ansi(ansi)
                .event_format(HumanLine::default())
                .with_writer(writer.clone())
                .with_filter(filter)
                .boxed()
        }
        Format::Json => tracing_subscriber::fmt::layer()
            .event_format(crate::line::JsonLine)
            .fmt_fields(crate::line::RequestIdOnly)
            .with_writer(writer.clone())
            .with_filter(filter)
            .boxed(),
    };
    let stack = tracing_subscriber::registry()
        .with(accounting)
        .with(otel)
        .with(lines);
    let installed = if front {
        crate::accounted::Accounted::new(stack).try_init().is_ok()
    } else {
        stack.try_init().is_ok()
    };
    // Decided once (RUST_LOG is read at start and never reloaded), from directives
    // by target and level; with span or field directives, the line stays a
    // `tracing` event for the filter to judge.
    let request_lines = directives
        .parse::<Targets>()
        .is_ok_and(|t| t.would_enable(crate::REQUEST_TARGET, &tracing::Level::INFO));
    if installed && options.format == Format::Json && request_lines {
        crate::line::write_requests_to(writer);
    }
    Ok(installed.then_some(LogGuard {
        _lines: guard,
        spans,
    }))
}

/// A span that carries a request's cost to another thread ([`WORK_TARGET`]).
pub(crate) fn work_span(m: &Metadata<'_>) -> bool {
    m.is_span() && m.target() == WORK_TARGET
}

/// A per-layer filter decided by the callsite alone, so that `tracing` caches the
/// answer per callsite, with the most verbose level it lets through. (`filter_fn`
/// is asked again at every event: every `trace!` in actix-http and tokio went
/// through each layer's filter, about 3,000 instructions per cached page; and with
/// no level hint, every span and event below WARN got as far as that question.)
pub(crate) struct Static(pub(crate) LevelFilter, pub(crate) fn(&Metadata<'_>) -> bool);

impl<S> Filter<S> for Static {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.0 >= *meta.level() && (self.1)(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.0 >= *meta.level() && (self.1)(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.0)
    }
}

/// tracing-subscriber's readable line, with ` request_id=…` at its end when the
/// event belongs to a request and does not name one itself.
#[derive(Default)]
struct HumanLine {
    plain: Formatter,
}

impl<S, N> FormatEvent<S, N> for HumanLine
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
        let named = event.metadata().fields().field("request_id").is_some();
        let id = if named {
            None
        } else {
            crate::line::request_id(ctx)
        };
        let Some(id) = id else {
            return self.plain.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.plain
            .clone()
            .with_ansi(writer.has_ansi_escapes())
            .format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.strip_suffix('\n').unwrap_or(&line);
        writeln!(writer, "{body} request_id={id}")
    }
}
