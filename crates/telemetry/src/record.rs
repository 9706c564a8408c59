//! A request's statements, cache lookups and renders one by one, for the
//! development debug toolbar. [`RequestCost`](crate::RequestCost) only adds them up;
//! a [`Recording`] keeps each with its text and when it happened. It costs nothing
//! unless a request's cost is given one ([`RequestCost::record_into`](crate::RequestCost::record_into)).
//!
//! ```
//! use napiatke_telemetry::record::Recording;
//! use napiatke_telemetry::{AccountingLayer, RequestCost, STATEMENT_TARGET};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let subscriber = tracing_subscriber::registry().with(AccountingLayer::default());
//! tracing::subscriber::with_default(subscriber, || {
//!     let cost = RequestCost::new("r-1");
//!     let recording = Recording::default();
//!     cost.record_into(recording.clone());
//!     cost.in_scope(|| {
//!         tracing::debug!(target: STATEMENT_TARGET, sql = "SELECT 1", duration_us = 40u64);
//!     });
//!     let taken = recording.take();
//!     assert_eq!(taken.statements[0].sql, "SELECT 1");
//!     assert_eq!(taken.statements[0].micros, 40);
//! });
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tracing::field::{Field, Visit};

/// One statement as db reported it: its SQL without bind values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedStatement {
    /// The SQL text, placeholders where the values were bound.
    pub sql: String,
    /// How long it ran, microseconds.
    pub micros: u64,
    /// When it finished, microseconds after the recording started.
    pub at_micros: u64,
}

/// One cache lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCacheOp {
    /// "l1" (in process) or "l2" (Redis).
    pub tier: String,
    /// The cache's namespace (`html`, `page`, `lesson`...).
    pub namespace: String,
    /// Whether the tier had it.
    pub hit: bool,
    /// How long the lookup took, microseconds.
    pub micros: u64,
    /// When it finished, microseconds after the recording started.
    pub at_micros: u64,
}

/// One template render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRender {
    /// `page.html`, or `page.html#block` for a fragment.
    pub template: String,
    /// The blocks the template and its parents define (empty when not reported).
    pub blocks: Vec<String>,
    /// The names in its context (empty when not reported).
    pub context: Vec<String>,
    /// How long it took, microseconds.
    pub micros: u64,
    /// When it finished, microseconds after the recording started.
    pub at_micros: u64,
}

/// What a [`Recording`] holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Statements in the order they finished.
    pub statements: Vec<RecordedStatement>,
    /// Cache lookups in the order they finished.
    pub cache: Vec<RecordedCacheOp>,
    /// Renders in the order they finished.
    pub renders: Vec<RecordedRender>,
}

/// A request's events one by one. Cheap to clone; clones share the record.
#[derive(Debug, Clone)]
pub struct Recording(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    started: Instant,
    /// A request that loops over rows must not grow without bound.
    limit: usize,
    recorded: Mutex<Recorded>,
}

impl Default for Recording {
    fn default() -> Self {
        Recording::with_limit(1000)
    }
}

impl Recording {
    /// Keeps at most `limit` events of each kind (statements, cache lookups, renders).
    #[must_use]
    pub fn with_limit(limit: usize) -> Recording {
        Recording(Arc::new(Inner {
            started: Instant::now(),
            limit,
            recorded: Mutex::new(Recorded::default()),
        }))
    }

    /// What was recorded so far; the recording is empty after.
    #[must_use]
    pub fn take(&self) -> Recorded {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.0
            .recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn at(&self) -> u64 {
        u64::try_from(self.0.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub(crate) fn statement(&self, sql: &str, micros: u64) {
        let at_micros = self.at();
        let mut r = self.lock();
        if r.statements.len() < self.0.limit {
            r.statements.push(RecordedStatement {
                sql: sql.to_owned(),
                micros,
                at_micros,
            });
        }
    }

    pub(crate) fn cache_op(&self, event: &tracing::Event<'_>) {
        let mut op = CacheFields::default();
        event.record(&mut op);
        let at_micros = self.at();
        let mut r = self.lock();
        if r.cache.len() < self.0.limit {
            r.cache.push(RecordedCacheOp {
                tier: op.tier,
                namespace: op.namespace,
                hit: op.hit,
                micros: op.micros,
                at_micros,
            });
        }
    }

    pub(crate) fn render(&self, event: &tracing::Event<'_>) {
        let mut fields = RenderFields::default();
        event.record(&mut fields);
        let split = |s: String| -> Vec<String> {
            s.split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let at_micros = self.at();
        let mut r = self.lock();
        if r.renders.len() < self.0.limit {
            r.renders.push(RecordedRender {
                template: fields.template,
                blocks: split(fields.blocks),
                context: split(fields.context),
                micros: fields.micros,
                at_micros,
            });
        }
    }
}

#[derive(Default)]
struct CacheFields {
    tier: String,
    namespace: String,
    hit: bool,
    micros: u64,
}

impl Visit for CacheFields {
    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "hit" {
            self.hit = value;
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "tier" => value.clone_into(&mut self.tier),
            "ns" => value.clone_into(&mut self.namespace),
            _ => {}
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "duration_us" {
            self.micros = value;
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "tier" => self.tier = format!("{value:?}"),
            "ns" => self.namespace = format!("{value:?}"),
            _ => {}
        }
    }
}

#[derive(Default)]
struct RenderFields {
    template: String,
    blocks: String,
    context: String,
    micros: u64,
}

impl Visit for RenderFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "template" => value.clone_into(&mut self.template),
            "blocks" => value.clone_into(&mut self.blocks),
            "context" => value.clone_into(&mut self.context),
            _ => {}
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "duration_us" {
            self.micros = value;
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = || format!("{value:?}");
        match field.name() {
            "template" => self.template = text(),
            "blocks" => self.blocks = text(),
            "context" => self.context = text(),
            _ => {}
        }
    }
}
