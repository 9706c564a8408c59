//! Statement instrumentation: every executed statement becomes a `tracing` event, so
//! upper layers (telemetry's per-request accounting, the debug toolbar, tests) can
//! count and time statements without this crate knowing about HTTP.

use std::time::Instant;

use diesel::connection::{Instrumentation, InstrumentationEvent};

/// The `tracing` target of the per-statement event. Its fields are `sql` (the
/// statement without bind values, which may hold personal data), `duration_us`
/// and `failed`.
pub const STATEMENT_TARGET: &str = "napiatke_db::statement";

/// Emits one DEBUG event on [`STATEMENT_TARGET`] per finished statement.
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
}

impl Instrumentation for StatementTracer {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.started = Some(Instant::now()),
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                let micros = self.started.take().map_or(0, |t| {
                    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
                });
                tracing::debug!(
                    target: STATEMENT_TARGET,
                    sql = %without_binds(&query.to_string()),
                    duration_us = micros,
                    failed = error.is_some(),
                    "statement"
                );
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
    #[test]
    fn binds_are_cut_off() {
        assert_eq!(
            super::without_binds("SELECT 1 WHERE a = ? -- binds: [\"secret\"]"),
            "SELECT 1 WHERE a = ?"
        );
        assert_eq!(super::without_binds("BEGIN"), "BEGIN");
    }
}
