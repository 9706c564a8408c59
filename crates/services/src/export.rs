//! The lesson list as CSV, streamed: chunks of lessons read by seeking after the last
//! row sent, so memory stays flat and the first bytes leave before the last row is
//! read, whatever the list's length.

use chrono::NaiveDateTime;
use napiatke_db::queries::lessons::{self, LessonCard, PageStart};
use napiatke_domain::User;
use tokio::sync::mpsc;

use crate::lists::{lesson_filter, LessonQuery};
use crate::{ServiceResult, Services};

/// Lessons per chunk: about 100 KB of CSV, two statements.
pub const EXPORT_CHUNK: u32 = 1000;

/// The columns, in order.
pub const EXPORT_HEADER: &str =
    "id,title,start_utc,end_utc,status,tutor,subject,room,students,present\r\n";

/// Chunks that may wait for a slow client: what bounds the export's memory.
const BUFFERED_CHUNKS: usize = 2;

impl Services {
    /// The lesson list under `query`'s filters (its page is ignored), with the list's
    /// rights (students get their own lessons), as CSV text chunks: the header, then
    /// one chunk per [`EXPORT_CHUNK`] lessons, newest first. Filters are checked
    /// before anything is sent (a bad subject is an error here, not a cut stream).
    /// Each chunk runs two statements on a connection of its own; at most
    /// `BUFFERED_CHUNKS` wait in memory; dropping the receiver stops the walk.
    #[tracing::instrument(level = "trace", name = "service.lesson_export", skip_all)]
    pub async fn lesson_export(
        &self,
        user: &User,
        query: LessonQuery,
    ) -> ServiceResult<mpsc::Receiver<ServiceResult<String>>> {
        self.lesson_export_in(user, query, EXPORT_CHUNK).await
    }

    /// As [`Services::lesson_export`] with `chunk` lessons per chunk.
    pub async fn lesson_export_in(
        &self,
        user: &User,
        query: LessonQuery,
        chunk: u32,
    ) -> ServiceResult<mpsc::Receiver<ServiceResult<String>>> {
        let filter = lesson_filter(user, query);
        self.checked_subjects(filter.subject).await?;
        let (tx, rx) = mpsc::channel(BUFFERED_CHUNKS);
        let this = self.clone();
        let span = crate::work_span();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                if tx.send(Ok(EXPORT_HEADER.to_owned())).await.is_err() {
                    return;
                }
                let mut after: Option<PageStart> = None;
                loop {
                    let read = this
                        .blocking(move |s| {
                            let mut conn = s.conn()?;
                            let cards = lessons::cards_after(&mut conn, &filter, after, chunk)?;
                            let ids: Vec<_> = cards.iter().map(|c| c.lesson.id).collect();
                            let counts = lessons::student_counts(&mut conn, &ids)?;
                            Ok((cards, counts))
                        })
                        .await;
                    let (cards, counts) = match read {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::error!(error = ?e, "lesson export failed");
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    let Some(last) = cards.last() else { return };
                    after = Some(PageStart {
                        start_time: last.lesson.start_time,
                        id: last.lesson.id,
                    });
                    let mut text = String::with_capacity(cards.len() * 100);
                    for card in &cards {
                        let c = counts.get(&card.lesson.id).copied().unwrap_or_default();
                        csv_row(&mut text, card, c.students, c.present);
                    }
                    if tx.send(Ok(text)).await.is_err() {
                        return;
                    }
                    if cards.len() < chunk as usize {
                        return;
                    }
                }
            },
            span,
        ));
        Ok(rx)
    }
}

fn csv_row(out: &mut String, card: &LessonCard, students: i64, present: i64) {
    let l = &card.lesson;
    let time = |t: NaiveDateTime| t.format("%Y-%m-%d %H:%M").to_string();
    let fields = [
        l.id.to_string(),
        l.title.clone(),
        time(l.start_time),
        time(l.end_time),
        l.status.as_str().to_owned(),
        format!("{} {}", card.tutor.first_name, card.tutor.last_name),
        card.subject.name.clone(),
        card.room
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_default(),
        students.to_string(),
        present.to_string(),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break, quotes
/// doubled; text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR
/// first) gets a leading `'` so it stays text (OWASP's CSV injection advice).
fn csv_field(out: &mut String, field: &str) {
    let formula = field.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = formula || field.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for c in field.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        let f = |s: &str| {
            let mut out = String::new();
            super::csv_field(&mut out, s);
            out
        };
        assert_eq!(f("Math 1"), "Math 1");
        assert_eq!(f("a,b"), "\"a,b\"");
        assert_eq!(f("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(f("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(f("-5"), "\"'-5\"");
        assert_eq!(f("two\nlines"), "\"two\nlines\"");
    }
}
