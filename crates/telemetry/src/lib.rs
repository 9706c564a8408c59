//! Per-request accounting through `tracing` alone.
//!
//! Lower crates emit events (db: one per statement on target `napiatke_db::statement`
//! with a `duration_us` field); they know nothing of requests. The web shell polls
//! each request inside a [`RequestCost`]'s scope ([`RequestCost::scope`]); the
//! [`AccountingLayer`] adds every statement, cache and render event emitted during
//! those polls, or inside a span made during them (on any thread the span is entered
//! on), to that cost. A span can also be given a cost directly with [`attach`]:
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

mod accounted;
mod line;
pub mod metrics;
pub mod otel;
pub mod record;
pub mod report;
mod scope;
mod shape;
mod subscriber;
mod writer;

pub use line::{fixed_millis as push_millis, log_request, RequestLine, REQUEST_TARGET};
pub use scope::{Scoped, WORK_TARGET};
pub use shape::shape;
pub use subscriber::{init, Format, LogGuard, Options};
pub use writer::{Line, LineWriter, WriterGuard};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The target db's statement events use (kept equal to `napiatke_db::STATEMENT_TARGET`
/// without depending on db; a test in apps/web checks they agree).
pub const STATEMENT_TARGET: &str = "napiatke_db::statement";

/// The target of the cache's per-lookup events (fields `tier` = "l1" | "l2", `hit`,
/// and `duration_us` for L2: L1 lookups are untimed, 0); kept equal to what
/// napiatke-cache emits, checked by a test in apps/web.
pub const CACHE_TARGET: &str = "napiatke_cache::op";

/// The target of the template renderer's per-render events (fields `template`,
/// `duration_us`); kept equal to what napiatke-htmx emits, checked by a test in
/// apps/web.
pub const RENDER_TARGET: &str = "napiatke_htmx::render";

/// A statement shape run this many times in one request is an N+1 (a query per row).
pub const N_PLUS_ONE: u32 = 3;

/// What one request has cost so far, and its id. Cheap to clone; all clones share
/// the counters.
#[derive(Debug, Clone, Default)]
pub struct RequestCost(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    request_id: Box<str>,
    /// The debug toolbar's record of each event, when it is on.
    recording: OnceLock<record::Recording>,
    statements: AtomicU64,
    db_micros: AtomicU64,
    l1_hits: AtomicU64,
    l1_misses: AtomicU64,
    l2_hits: AtomicU64,
    l2_misses: AtomicU64,
    cache_micros: AtomicU64,
    renders: AtomicU64,
    render_micros: AtomicU64,
    /// Statement shapes ([`shape`]) and how often each ran.
    shapes: Mutex<HashMap<String, u32>>,
}

/// Cache lookups of one request by tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Answered in process.
    pub l1_hits: u64,
    /// Not in process.
    pub l1_misses: u64,
    /// Answered by Redis.
    pub l2_hits: u64,
    /// Not in Redis either (then computed).
    pub l2_misses: u64,
    /// Time spent in Redis lookups, microseconds.
    pub l2_micros: u64,
}

impl RequestCost {
    /// A new request's (nothing counted yet). Its id is what log lines emitted for it
    /// carry as `request_id`.
    #[must_use]
    pub fn new(request_id: &str) -> RequestCost {
        RequestCost(Arc::new(Counters {
            request_id: request_id.into(),
            ..Counters::default()
        }))
    }

    /// The request's id (empty for a default cost).
    #[must_use]
    pub fn request_id(&self) -> &str {
        &self.0.request_id
    }

    /// Also keeps each of this request's events, one by one, in `recording` (the
    /// debug toolbar). A second call is ignored.
    pub fn record_into(&self, recording: record::Recording) {
        let _ = self.0.recording.set(recording);
    }

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

    /// Cache lookups so far.
    #[must_use]
    pub fn cache(&self) -> CacheCounts {
        let c = &self.0;
        CacheCounts {
            l1_hits: c.l1_hits.load(Ordering::Relaxed),
            l1_misses: c.l1_misses.load(Ordering::Relaxed),
            l2_hits: c.l2_hits.load(Ordering::Relaxed),
            l2_misses: c.l2_misses.load(Ordering::Relaxed),
            l2_micros: c.cache_micros.load(Ordering::Relaxed),
        }
    }

    /// Templates rendered and the time that took, microseconds.
    #[must_use]
    pub fn render(&self) -> (u64, u64) {
        (
            self.0.renders.load(Ordering::Relaxed),
            self.0.render_micros.load(Ordering::Relaxed),
        )
    }

    /// The `Server-Timing` entries for this request, appended to `out` (after any
    /// the handler set, which the caller copies first):
    /// `db;dur=1.234;desc="3 statements", cache;dur=…;desc="L1 2/2 L2 0/0
    /// (hits/lookups)", render;dur=…;desc="1 templates", total;dur=…;desc="whole
    /// request"`, durations in milliseconds. Written by hand: `format!` of the same
    /// cost a cached page about 4,000 instructions.
    ///
    /// ```
    /// let cost = napiatke_telemetry::RequestCost::new("r-1");
    /// let mut out = Vec::new();
    /// cost.server_timing(std::time::Duration::from_micros(1500), &mut out);
    /// assert_eq!(
    ///     String::from_utf8(out).unwrap(),
    ///     "db;dur=0.000;desc=\"0 statements\", cache;dur=0.000;desc=\"L1 0/0 L2 0/0 (hits/lookups)\", \
    ///      render;dur=0.000;desc=\"0 templates\", total;dur=1.500;desc=\"whole request\""
    /// );
    /// ```
    pub fn server_timing(&self, total: std::time::Duration, out: &mut Vec<u8>) {
        use line::{fixed_millis, number};
        let c = self.cache();
        let (renders, render_micros) = self.render();
        out.extend_from_slice(b"db;dur=");
        fixed_millis(out, self.db_micros());
        out.extend_from_slice(b";desc=\"");
        number(out, self.statements());
        out.extend_from_slice(b" statements\", cache;dur=");
        fixed_millis(out, c.l2_micros);
        out.extend_from_slice(b";desc=\"L1 ");
        number(out, c.l1_hits);
        out.push(b'/');
        number(out, c.l1_hits + c.l1_misses);
        out.extend_from_slice(b" L2 ");
        number(out, c.l2_hits);
        out.push(b'/');
        number(out, c.l2_hits + c.l2_misses);
        out.extend_from_slice(b" (hits/lookups)\", render;dur=");
        fixed_millis(out, render_micros);
        out.extend_from_slice(b";desc=\"");
        number(out, renders);
        out.extend_from_slice(b" templates\", total;dur=");
        fixed_millis(out, u64::try_from(total.as_micros()).unwrap_or(u64::MAX));
        out.extend_from_slice(b";desc=\"whole request\"");
    }

    /// The statement shapes run at least `times` times so far, most frequent first
    /// (an N+1 at [`N_PLUS_ONE`]).
    #[must_use]
    pub fn repeated_statements(&self, times: u32) -> Vec<(String, u32)> {
        let shapes = self.0.shapes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut found: Vec<(String, u32)> = shapes
            .iter()
            .filter(|(_, n)| **n >= times)
            .map(|(s, n)| (s.clone(), *n))
            .collect();
        found.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        found
    }

    fn add_cache(&self, op: &CacheOp) {
        let c = &self.0;
        let counter = match (op.l2, op.hit) {
            (false, true) => &c.l1_hits,
            (false, false) => &c.l1_misses,
            (true, true) => &c.l2_hits,
            (true, false) => &c.l2_misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if op.l2 {
            c.cache_micros.fetch_add(op.micros, Ordering::Relaxed);
        }
    }

    fn add_statement(&self, statement: &Statement) {
        self.0.statements.fetch_add(1, Ordering::Relaxed);
        self.0
            .db_micros
            .fetch_add(statement.micros, Ordering::Relaxed);
        if !statement.sql.is_empty() {
            let mut shapes = self.0.shapes.lock().unwrap_or_else(PoisonError::into_inner);
            *shapes.entry(shape(&statement.sql)).or_default() += 1;
        }
    }

    fn add_render(&self, micros: u64) {
        self.0.renders.fetch_add(1, Ordering::Relaxed);
        self.0.render_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Makes `span` collect into `cost`. Does nothing when the current subscriber has no
/// span registry (then nothing is counted, and nothing breaks).
pub fn attach(span: &tracing::Span, cost: RequestCost) {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch
            .downcast_ref::<tracing_subscriber::Registry>()
            .or_else(|| dispatch.downcast_ref::<accounted::Accounted>()?.registry());
        if let Some(registry) = registry {
            if let Some(span) = registry.span(id) {
                span.extensions_mut().insert(cost);
            }
        }
    });
}

/// The layer that adds statement, cache and render events up per request. Install
/// it on the registry with whatever other layers log or export. It emits nothing
/// itself: an event emitted from inside a layer's callback upsets the per-layer
/// filters of the others (they then let the outer event through).
///
/// An event counts for the request in whose scope it was emitted
/// ([`RequestCost::scope`]), else for the cost of the innermost span around it that
/// has one. A span made in a request's scope, or under a span with a cost, gets
/// that cost (so work a request hands to another thread in a span counts for it).
#[derive(Debug, Default)]
pub struct AccountingLayer {
    _private: (),
}

impl<S> Layer<S> for AccountingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let inherited = scope::with_current(|c| c.cloned()).or_else(|| {
            span.parent()
                .and_then(|p| p.extensions().get::<RequestCost>().cloned())
        });
        if let Some(cost) = inherited {
            let mut ext = span.extensions_mut();
            if ext.get_mut::<RequestCost>().is_none() {
                ext.insert(cost);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(kind) = Kind::of(event.metadata()) else {
            return;
        };
        // The request this thread is polling: no span to look up.
        let counted = scope::with_current(|cost| cost.map(|c| c.add(kind, event)));
        if counted.is_none() {
            let found = ctx.event_scope(event).and_then(|mut spans| {
                spans.find_map(|span| span.extensions().get::<RequestCost>().cloned())
            });
            if let Some(cost) = found {
                cost.add(kind, event);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Statement,
    Cache,
    Render,
}

impl Kind {
    /// What an event adds to its request's cost, by its target; `None` for any
    /// other event, and for any span.
    fn of(meta: &tracing::Metadata<'_>) -> Option<Kind> {
        if !meta.is_event() {
            return None;
        }
        match meta.target() {
            STATEMENT_TARGET => Some(Kind::Statement),
            CACHE_TARGET => Some(Kind::Cache),
            RENDER_TARGET => Some(Kind::Render),
            _ => None,
        }
    }
}

impl RequestCost {
    fn add(&self, kind: Kind, event: &Event<'_>) {
        let recording = self.0.recording.get();
        match kind {
            Kind::Statement => {
                let mut statement = Statement::default();
                event.record(&mut statement);
                self.add_statement(&statement);
                if let Some(r) = recording {
                    r.statement(&statement.sql, statement.micros);
                }
            }
            Kind::Cache => {
                let mut op = CacheOp::default();
                event.record(&mut op);
                self.add_cache(&op);
                if let Some(r) = recording {
                    r.cache_op(event);
                }
            }
            Kind::Render => {
                let mut micros = Micros(0);
                event.record(&mut micros);
                self.add_render(micros.0);
                if let Some(r) = recording {
                    r.render(event);
                }
            }
        }
    }
}

/// A statement event's SQL and duration.
#[derive(Default)]
struct Statement {
    sql: String,
    micros: u64,
}

impl Visit for Statement {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "duration_us" {
            self.micros = value;
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "duration_us" {
            self.micros = u64::try_from(value).unwrap_or(0);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "sql" {
            value.clone_into(&mut self.sql);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `sql = %text` arrives here; Display's text is what Debug of it prints.
        if field.name() == "sql" {
            self.sql = format!("{value:?}");
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

#[derive(Default)]
struct CacheOp {
    l2: bool,
    hit: bool,
    micros: u64,
}

impl Visit for CacheOp {
    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "hit" {
            self.hit = value;
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "tier" {
            self.l2 = value == "l2";
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "duration_us" {
            self.micros = value;
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context as TaskContext, Poll, Waker};
    use tracing_subscriber::layer::SubscriberExt;

    fn hit() {
        tracing::debug!(target: CACHE_TARGET, ns = "x", tier = "l1", hit = true, duration_us = 0u64);
    }

    /// Returns `Pending` once (after a cache hit), then `Ready` (after another).
    struct TwoPolls(bool);

    impl Future for TwoPolls {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
            hit();
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    #[test]
    fn two_requests_polled_in_turn_on_one_thread_each_count_their_own() {
        let subscriber = tracing_subscriber::registry().with(AccountingLayer::default());
        tracing::subscriber::with_default(subscriber, || {
            let (a, b) = (RequestCost::new("a"), RequestCost::new("b"));
            let mut fa = Box::pin(a.scope(TwoPolls(false)));
            let mut fb = Box::pin(b.scope(async {
                hit();
                TwoPolls(false).await;
                hit();
            }));
            let mut cx = TaskContext::from_waker(Waker::noop());
            assert!(fa.as_mut().poll(&mut cx).is_pending());
            assert!(fb.as_mut().poll(&mut cx).is_pending());
            hit(); // between polls: nobody's
            assert!(fb.as_mut().poll(&mut cx).is_ready());
            assert!(fa.as_mut().poll(&mut cx).is_ready());
            assert_eq!((a.cache().l1_hits, b.cache().l1_hits), (2, 4));
            // Nested scopes: the inner request, then the outer again.
            a.in_scope(|| {
                b.in_scope(hit);
                hit();
            });
            assert_eq!((a.cache().l1_hits, b.cache().l1_hits), (3, 5));
        });
    }

    #[test]
    fn a_span_made_in_a_request_carries_its_cost_to_another_thread() {
        let subscriber = tracing_subscriber::registry().with(AccountingLayer::default());
        tracing::subscriber::with_default(subscriber, || {
            let cost = RequestCost::new("r");
            let work = cost.in_scope(|| tracing::info_span!(target: WORK_TARGET, "work"));
            // Made outside any request, under the work span: inherits from it.
            let inner = tracing::info_span!(target: WORK_TARGET, parent: &work, "work");
            let stranger = tracing::info_span!(target: WORK_TARGET, "work");
            let dispatch = tracing::dispatcher::get_default(Clone::clone);
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    work.in_scope(|| {
                        tracing::debug!(target: STATEMENT_TARGET, sql = "SELECT 1", duration_us = 5u64);
                    });
                    inner.in_scope(|| {
                        tracing::debug!(target: STATEMENT_TARGET, sql = "SELECT 2", duration_us = 7u64);
                    });
                    stranger.in_scope(|| {
                        tracing::debug!(target: STATEMENT_TARGET, sql = "SELECT 3", duration_us = 9u64);
                    });
                });
            })
            .join()
            .ok();
            assert_eq!((cost.statements(), cost.db_micros()), (2, 12));
        });
    }

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
            span.in_scope(|| {
                tracing::debug!(target: CACHE_TARGET, ns = "x", tier = "l1", hit = false, duration_us = 1u64);
                tracing::debug!(target: CACHE_TARGET, ns = "x", tier = "l2", hit = true, duration_us = 90u64);
                tracing::debug!(target: CACHE_TARGET, ns = "x", tier = "l1", hit = true, duration_us = 0u64);
            });
            assert_eq!(
                cost.cache(),
                CacheCounts {
                    l1_hits: 1,
                    l1_misses: 1,
                    l2_hits: 1,
                    l2_misses: 0,
                    l2_micros: 90
                }
            );
        });
    }
}
