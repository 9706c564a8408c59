//! The subscriber in front of the registry: statement, cache and render events go
//! straight to their request's cost; everything else goes on to the registry and
//! its layers.
//!
//! As a layer under per-layer filters, each such event cost about 650
//! instructions (a cached page has two): the lines' filter said never and the
//! accounting's always, so `tracing` asked every filter again at every event, and
//! the registry kept each answer in a thread-local for the layers' `on_event`.
//! Here the callsite is always on and the event is one comparison of its target
//! away from the cost (docs/performance.md, "Telemetry's cost, stop 36").
//!
//! Only when no span leaves the process: a subscriber that is not the registry
//! answers no downcast (forwarding one takes `unsafe`, which the workspace
//! forbids), and tracing-opentelemetry finds its span context through one. With
//! an OTLP endpoint set, the accounting stays a layer.

use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Registry;

use crate::{scope, Kind, RequestCost};

/// `inner` (the registry and its layers), with the accounting's events taken off
/// the top. Not generic, so that [`crate::attach`] can find it by downcasting the
/// dispatcher (a generic one would need the stack's full type named).
pub(crate) struct Accounted {
    inner: Box<dyn Subscriber + Send + Sync>,
    /// Whether the layers below may want DEBUG events too (RUST_LOG at debug for
    /// some target): then each accounting event is also offered to them, with the
    /// usual questions.
    inner_debug: bool,
}

impl Accounted {
    pub(crate) fn new(inner: impl Subscriber + Send + Sync) -> Accounted {
        let inner_debug = inner
            .max_level_hint()
            .is_none_or(|l| l >= LevelFilter::DEBUG);
        Accounted {
            inner: Box::new(inner),
            inner_debug,
        }
    }

    /// The span registry at the bottom of the stack, for span lookups.
    pub(crate) fn registry(&self) -> Option<&Registry> {
        let inner: &dyn Subscriber = &*self.inner;
        inner.downcast_ref::<Registry>()
    }

    /// Adds `event` to the request this thread is polling, else to the cost of the
    /// innermost span around it that has one (work moved to another thread).
    fn count(&self, kind: Kind, event: &Event<'_>) {
        if scope::with_current(|c| c.map(|c| c.add(kind, event))).is_some() {
            return;
        }
        let id = if event.is_contextual() {
            self.inner.current_span().id().cloned()
        } else {
            event.parent().cloned()
        };
        let cost = id.zip(self.registry()).and_then(|(id, registry)| {
            registry.span(&id).and_then(|span| {
                span.scope()
                    .find_map(|s| s.extensions().get::<RequestCost>().cloned())
            })
        });
        if let Some(cost) = cost {
            cost.add(kind, event);
        }
    }
}

/// Accounting events are DEBUG (TRACE ones are not counted).
fn accounted(meta: &Metadata<'_>) -> Option<Kind> {
    if *meta.level() > tracing::Level::DEBUG {
        return None;
    }
    Kind::of(meta)
}

impl Subscriber for Accounted {
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // Asked whatever the answer: per-layer filters keep their own.
        let inner = self.inner.register_callsite(meta);
        if accounted(meta).is_some() {
            Interest::always()
        } else {
            inner
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.inner
            .max_level_hint()
            .map(|l| l.max(LevelFilter::DEBUG))
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        accounted(meta).is_some() || self.inner.enabled(meta)
    }

    fn event_enabled(&self, event: &Event<'_>) -> bool {
        accounted(event.metadata()).is_some() || self.inner.event_enabled(event)
    }

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let Some(kind) = accounted(meta) else {
            self.inner.event(event);
            return;
        };
        self.count(kind, event);
        if self.inner_debug && self.inner.enabled(meta) && self.inner.event_enabled(event) {
            self.inner.event(event);
        }
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.inner.new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.inner.record(span, values);
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner.record_follows_from(span, follows);
    }

    fn enter(&self, span: &Id) {
        self.inner.enter(span);
    }

    fn exit(&self, span: &Id) {
        self.inner.exit(span);
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.inner.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.inner.try_close(id)
    }

    fn current_span(&self) -> tracing_core::span::Current {
        self.inner.current_span()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;

    use super::Accounted;
    use crate::subscriber::Static;
    use crate::writer::tests::Sink as Lines;
    use crate::{AccountingLayer, RequestCost, CACHE_TARGET, WORK_TARGET};

    /// As `init` sets it up with no span export: the layer for work spans only,
    /// lines filtered by `filter`.
    fn subscriber(filter: &str, lines: &Lines) -> Accounted {
        let lines = lines.clone();
        Accounted::new(
            tracing_subscriber::registry()
                .with(
                    AccountingLayer::default()
                        .with_filter(Static(LevelFilter::INFO, crate::subscriber::work_span)),
                )
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .with_writer(move || lines.clone())
                        .with_filter(EnvFilter::new(filter)),
                ),
        )
    }

    fn lookup(hit: bool) {
        tracing::debug!(target: CACHE_TARGET, ns = "html", tier = "l1", hit, duration_us = 3u64);
    }

    #[test]
    fn a_cache_event_counts_for_its_request_and_is_no_line_at_info() {
        let lines = Lines::default();
        let cost = RequestCost::new("r-1");
        let front = subscriber("info", &lines);
        // Nothing below wants DEBUG: the accounting's events stop at the front.
        assert!(!front.inner_debug);
        assert!(subscriber("debug", &lines).inner_debug);
        tracing::subscriber::with_default(front, || {
            cost.in_scope(|| {
                lookup(true);
                lookup(false);
                tracing::info!("an ordinary line");
            });
            lookup(true); // outside the request
        });
        let cache = cost.cache();
        assert_eq!((cache.l1_hits, cache.l1_misses), (1, 1));
        let text = lines.text();
        assert!(text.contains("an ordinary line"), "{text}");
        assert!(!text.contains("html"), "a DEBUG event was written: {text}");
    }

    #[test]
    fn at_debug_the_lines_get_the_cache_events_too() {
        let lines = Lines::default();
        let cost = RequestCost::new("r-2");
        tracing::subscriber::with_default(subscriber("info,napiatke_cache=debug", &lines), || {
            cost.in_scope(|| lookup(true));
        });
        assert_eq!(cost.cache().l1_hits, 1);
        let text = lines.text();
        assert_eq!(text.matches("ns=\"html\"").count(), 1, "{text}");
    }

    #[test]
    fn attach_finds_the_registry_behind_the_front() {
        let lines = Lines::default();
        let cost = RequestCost::new("r-4");
        tracing::subscriber::with_default(subscriber("warn", &lines), || {
            // Made outside any request: it has no cost until attached.
            let span = tracing::info_span!(target: WORK_TARGET, "work");
            crate::attach(&span, cost.clone());
            span.in_scope(|| lookup(true));
        });
        assert_eq!(cost.cache().l1_hits, 1);
    }

    #[test]
    fn work_moved_to_another_thread_in_a_work_span_counts_for_the_request() {
        let lines = Lines::default();
        let cost = RequestCost::new("r-3");
        let dispatch = tracing::Dispatch::new(subscriber("warn", &lines));
        tracing::dispatcher::with_default(&dispatch, || {
            let span = cost.in_scope(|| tracing::info_span!(target: WORK_TARGET, "work"));
            let d = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&d, || {
                    span.in_scope(|| lookup(false));
                    lookup(false); // outside the span: nobody's
                });
            })
            .join()
            .unwrap();
        });
        assert_eq!(cost.cache().l1_misses, 1);
    }
}
