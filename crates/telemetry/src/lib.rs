//! Per-request accounting through `tracing` alone.
//!
//! Lower crates emit events (db: one per statement on target `napiatke_db::statement`
//! with a `duration_us` field); they know nothing of requests. The web shell opens a
//! span per request and attaches a [`RequestCost`] to it with [`attach`]. The
//! [`AccountingLayer`] adds every statement event emitted inside that span (or any span
//! below it, on any thread, as long as the span was entered there) to that cost.
//!
//! ```
//! use napiatke_telemetry::{attach, AccountingLayer, RequestCost, STATEMENT_TARGET};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let subscriber = tracing_subscriber::registry().with(AccountingLayer::default());
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("request");
//!     let cost = RequestCost::default();
//!     attach(&span, cost.clone());
//!     span.in_scope(|| {
//!         tracing::debug!(target: STATEMENT_TARGET, sql = "SELECT 1", duration_us = 40u64, "statement");
//!         tracing::debug!(target: STATEMENT_TARGET, sql = "SELECT 2", duration_us = 60u64, "statement");
//!     });
//!     assert_eq!(cost.statements(), 2);
//!     assert_eq!(cost.db_micros(), 100);
//! });
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The target db's statement events use (kept equal to `napiatke_db::STATEMENT_TARGET`
/// without depending on db; a test in apps/web checks they agree).
pub const STATEMENT_TARGET: &str = "napiatke_db::statement";

/// What one request has cost so far. Cheap to clone; all clones share the counters.
#[derive(Debug, Clone, Default)]
pub struct RequestCost(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    statements: AtomicU64,
    db_micros: AtomicU64,
}

impl RequestCost {
    /// Statements executed.
    #[must_use]
    pub fn statements(&self) -> u64 {
        self.0.statements.load(Ordering::Relaxed)
    }

    /// Time spent in them, in microseconds.
    #[must_use]
    pub fn db_micros(&self) -> u64 {
        self.0.db_micros.load(Ordering::Relaxed)
    }

    fn add_statement(&self, micros: u64) {
        self.0.statements.fetch_add(1, Ordering::Relaxed);
        self.0.db_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Makes `span` collect into `cost`. Does nothing when the current subscriber has no
/// span registry (then nothing is counted, and nothing breaks).
pub fn attach(span: &tracing::Span, cost: RequestCost) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() {
            if let Some(span) = registry.span(id) {
                span.extensions_mut().insert(cost);
            }
        }
    });
}

/// The layer that adds statement events up per request. Install it on the registry
/// with whatever other layers log or export.
#[derive(Debug, Default)]
pub struct AccountingLayer {
    _private: (),
}

impl<S> Layer<S> for AccountingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != STATEMENT_TARGET {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if let Some(cost) = span.extensions().get::<RequestCost>() {
                let mut micros = Micros(0);
                event.record(&mut micros);
                cost.add_statement(micros.0);
                return;
            }
        }
    }
}

struct Micros(u64);

impl Visit for Micros {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "duration_us" {
            self.0 = value;
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "duration_us" {
            self.0 = u64::try_from(value).unwrap_or(0);
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_outside_a_request_or_on_other_targets_are_not_counted() {
        let subscriber = tracing_subscriber::registry().with(AccountingLayer::default());
        tracing::subscriber::with_default(subscriber, || {
            let cost = RequestCost::default();
            let span = tracing::info_span!("request");
            attach(&span, cost.clone());
            tracing::debug!(target: STATEMENT_TARGET, duration_us = 5u64, "outside");
            span.in_scope(|| {
                tracing::info!(target: "something_else", duration_us = 5u64, "other");
                let child = tracing::info_span!("render");
                child.in_scope(|| {
                    tracing::debug!(target: STATEMENT_TARGET, duration_us = 7u64, "nested");
                });
            });
            // Entered from another thread, as blocking DB work is.
            let s2 = span.clone();
            let dispatch = tracing::dispatcher::get_default(Clone::clone);
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    s2.in_scope(|| {
                        tracing::debug!(target: STATEMENT_TARGET, duration_us = 3u64, "thread");
                    });
                });
            })
            .join()
            .ok();
            assert_eq!((cost.statements(), cost.db_micros()), (2, 10));
        });
    }
}
