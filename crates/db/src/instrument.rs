//! Statement instrumentation: every executed statement becomes a `tracing` event, so
//! upper layers (telemetry's per-request accounting, the debug toolbar, tests) can
//! count and time statements without this crate knowing about HTTP.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use diesel::connection::{Instrumentation, InstrumentationEvent};

/// The `tracing` target of the per-statement event. Its fields are `sql` (the
/// statement without bind values, which may hold personal data), `duration_us`
/// and `failed`.
pub const STATEMENT_TARGET: &str = "napiatke_db::statement";

/// The target of the slow-statement warning.
pub const SLOW_STATEMENT_TARGET: &str = "napiatke_db::slow";

/// Microseconds above which a statement is also a warning (100 ms until set).
static SLOW_MICROS: AtomicU64 = AtomicU64::new(100_000);

/// Statements slower than `threshold` are logged as warnings on
/// [`SLOW_STATEMENT_TARGET`] with their SQL (never the bind values). For the whole
/// process: set once at start (SLOW_STATEMENT_THRESHOLD).
pub fn set_slow_statement_threshold(threshold: Duration) {
    SLOW_MICROS.store(
        u64::try_from(threshold.as_micros()).unwrap_or(u64::MAX),
        Relaxed,
    );
}

/// Emits one DEBUG event on [`STATEMENT_TARGET`] per finished statement, and a WARN
/// on [`SLOW_STATEMENT_TARGET`] for one slower than the threshold
/// ([`set_slow_statement_threshold`]).
///
/// Installed on every pooled connection by [`crate::Db`]; install it yourself on a
/// connection made with [`crate::DatabaseUrl::establish`]:
///
/// ```
/// use diesel::Connection;
/// let mut conn = napiatke_db::DatabaseUrl::parse("sqlite::memory:")?.establish()?;
/// conn.set_instrumentation(napiatke_db::StatementTracer::default());
/// # Ok::<(), napiatke_db::DbError>(())
/// ```
#[derive(Debug, Default)]
pub struct StatementTracer {
    started: Option<Instant>,
    /// The statement's span (for trace exporters), from start to finish.
    span: Option<tracing::Span>,
    /// `db.system.name` as OpenTelemetry names it.
    system: &'static str,
    /// The running statement's SQL, binds cut off.
    sql: String,
}

impl StatementTracer {
    /// A tracer for connections to `engine` (names the database system in spans).
    #[must_use]
    pub fn for_engine(engine: crate::Engine) -> StatementTracer {
        StatementTracer {
            system: match engine {
                crate::Engine::Sqlite => "sqlite",
                crate::Engine::Postgres => "postgresql",
            },
            ..StatementTracer::default()
        }
    }
}

/// The statement's first word (SELECT, INSERT...): `db.operation.name`.
fn operation(sql: &str) -> &str {
    sql.split_whitespace().next().unwrap_or_default()
}

impl Instrumentation for StatementTracer {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                let text = query.to_string();
                self.sql = without_binds(&text).to_owned();
                let sql = self.sql.as_str();
                // A child of whatever span runs the statement (a request's, through
                // the blocking pool); exporters see it with the statement's own
                // start and end. Named and attributed as OpenTelemetry's database
                // conventions ask, with the SQL's placeholders and no bind values.
                self.span = Some(tracing::trace_span!(
                    target: STATEMENT_TARGET,
                    "statement",
                    otel.name = %format!("{} {}", operation(sql), self.system),
                    otel.kind = "client",
                    db.system.name = self.system,
                    db.operation.name = operation(sql),
                    db.query.text = sql,
                    otel.status_code = tracing::field::Empty,
                ));
                self.started = Some(Instant::now());
            }
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                let micros = self.started.take().map_or(0, |t| {
                    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
                });
                // The text from the start: the same statement, formatted once.
                let text = std::mem::take(&mut self.sql);
                let sql = if text.is_empty() {
                    without_binds(&query.to_string()).to_owned()
                } else {
                    text
                };
                let sql = sql.as_str();
                tracing::debug!(
                    target: STATEMENT_TARGET,
                    sql = %sql,
                    duration_us = micros,
                    failed = error.is_some(),
                    "statement"
                );
                if micros > SLOW_MICROS.load(Relaxed) {
                    tracing::warn!(
                        target: SLOW_STATEMENT_TARGET,
                        duration_ms = micros / 1000,
                        sql = %sql,
                        "slow statement"
                    );
                }
                if error.is_some() {
                    if let Some(span) = &self.span {
                        span.record("otel.status_code", "ERROR");
                    }
                }
                self.span = None;
            }
            _ => {}
        }
    }
}

/// diesel's debug form is `SQL -- binds: [...]`; the binds stay out of logs.
fn without_binds(s: &str) -> &str {
    s.split_once(" -- binds: ")
        .map_or(s, |(sql, _)| sql)
        .trim_end()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::SimpleConnection;
    use diesel::{Connection, RunQueryDsl};
    use tracing_subscriber::layer::SubscriberExt;

    /// Every WARN event's target and fields, as text.
    #[derive(Clone, Default)]
    struct Warnings(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Text(String);
            impl tracing::field::Visit for Text {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    self.0.push_str(&format!(" {}={v:?}", f.name()));
                }
            }
            if *event.metadata().level() == tracing::Level::WARN {
                let mut text = Text(event.metadata().target().to_owned());
                event.record(&mut text);
                self.0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(text.0);
            }
        }
    }

    #[test]
    fn statements_over_the_threshold_warn_with_their_sql_and_no_binds() {
        let warnings = Warnings::default();
        let subscriber = tracing_subscriber::registry().with(warnings.clone());
        tracing::subscriber::with_default(subscriber, || {
            let mut conn = crate::DatabaseUrl::parse("sqlite::memory:")
                .and_then(|u| u.establish())
                .unwrap_or_else(|e| panic!("{e}"));
            conn.set_instrumentation(super::StatementTracer::default());
            // Nothing is slower than an hour.
            super::set_slow_statement_threshold(std::time::Duration::from_secs(3600));
            conn.batch_execute("SELECT 1")
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(warnings
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_empty());
            // Everything is slower than nothing.
            super::set_slow_statement_threshold(std::time::Duration::ZERO);
            diesel::sql_query("SELECT 1 WHERE 'secret-value' = ?")
                .bind::<diesel::sql_types::Text, _>("secret-bind")
                .execute(&mut conn)
                .unwrap_or_else(|e| panic!("{e}"));
            super::set_slow_statement_threshold(std::time::Duration::from_millis(100));
        });
        let seen = warnings
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            seen[0].starts_with(super::SLOW_STATEMENT_TARGET),
            "{seen:?}"
        );
        assert!(seen[0].contains("SELECT 1 WHERE"), "{seen:?}");
        assert!(!seen[0].contains("secret-bind"), "{seen:?}");
        assert!(seen[0].contains("duration_ms="), "{seen:?}");
    }

    #[test]
    fn binds_are_cut_off() {
        assert_eq!(
            super::without_binds("SELECT 1 WHERE a = ? -- binds: [\"secret\"]"),
            "SELECT 1 WHERE a = ?"
        );
        assert_eq!(super::without_binds("BEGIN"), "BEGIN");
    }
}
