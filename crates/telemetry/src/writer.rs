//! The log lines' writer: a request formats its line into one shared buffer (the fmt
//! layer copies its finished lines in) and goes on; a thread of its own writes the
//! buffer to stderr every 25 ms, at once when 1 MiB has gathered or a warning or
//! error came in, and when the process ends.
//!
//! It replaces tracing-appender's channel, which cost each line an allocation (the
//! line copied into a message), a free on the other thread and, when the writer
//! thread was idle, a wake-up (a futex call and a context switch on 2 cores): with a
//! line per request, the largest part of the 3.6–5.5 % the line cost a cached page
//! (docs/performance.md, "Telemetry cost"). Here a line costs a short lock and its
//! bytes in a buffer that is reused; the writer thread wakes about 40 times a second
//! whatever the load.
//!
//! Bounded: past 16 MiB waiting (stderr blocked), lines are dropped and counted, and
//! the count is written as a line of its own once the writer catches up.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use crate::subscriber::Format;

/// How often, how much and how far behind (tests shorten them).
#[derive(Debug, Clone, Copy)]
struct Limits {
    every: Duration,
    high_water: usize,
    cap: usize,
}

/// The high-water mark is well above what 25 ms of lines come to at the rates
/// measured (about 440 KiB at 45,000 req/s): a wake-up per 64 KiB meant a futex call
/// and two context switches several hundred times a second, and cost a cached page
/// about 5 % of its req/s with the server on one CPU (docs/performance.md).
const LIMITS: Limits = Limits {
    every: Duration::from_millis(25),
    high_water: 1024 * 1024,
    cap: 16 * 1024 * 1024,
};

#[derive(Debug)]
struct Shared {
    lines: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stop: AtomicBool,
    flusher: OnceLock<Thread>,
    limits: Limits,
}

impl Shared {
    fn lines(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while a line was copied leaves at worst a partial line: keep going.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        if let Some(t) = self.flusher.get() {
            t.unpark();
        }
    }

    /// Puts a line in the buffer with `write`, under the buffer's lock; past the cap
    /// it is taken back out whole and counted as dropped. Wakes the writer thread
    /// when the line is `urgent` or crossed the high-water mark.
    fn push(&self, urgent: bool, write: impl FnOnce(&mut Vec<u8>)) {
        let limits = self.limits;
        let mut lines = self.lines();
        let before = lines.len();
        write(&mut lines);
        if lines.len() > limits.cap {
            lines.truncate(before);
            drop(lines);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let crossed = before < limits.high_water && lines.len() >= limits.high_water;
        drop(lines);
        if urgent || crossed {
            self.wake();
        }
    }
}

/// The [`MakeWriter`] for tracing-subscriber's fmt layer; clones share one buffer.
///
/// ```
/// use napiatke_telemetry::{Format, LineWriter};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let (writer, guard) = LineWriter::spawn(std::io::stderr(), Format::Human);
/// let subscriber = tracing_subscriber::registry()
///     .with(tracing_subscriber::fmt::layer().with_writer(writer));
/// tracing::subscriber::with_default(subscriber, || tracing::warn!("written at once"));
/// drop(guard); // writes what is still waiting
/// ```
#[derive(Debug, Clone)]
pub struct LineWriter {
    shared: Arc<Shared>,
}

/// Ends the writer thread when dropped, after it wrote every line still waiting.
#[derive(Debug)]
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LineWriter {
    /// Starts the writer thread over `sink`; `format` is how it words the line that
    /// counts dropped lines.
    pub fn spawn<W: Write + Send + 'static>(sink: W, format: Format) -> (LineWriter, WriterGuard) {
        Self::spawn_with(sink, format, LIMITS)
    }

    fn spawn_with<W: Write + Send + 'static>(
        mut sink: W,
        format: Format,
        limits: Limits,
    ) -> (LineWriter, WriterGuard) {
        let shared = Arc::new(Shared {
            lines: Mutex::new(Vec::with_capacity(limits.high_water)),
            dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            flusher: OnceLock::new(),
            limits,
        });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                let mut out = Vec::with_capacity(theirs.limits.high_water);
                loop {
                    std::thread::park_timeout(theirs.limits.every);
                    let stopping = theirs.stop.load(Ordering::Acquire);
                    std::mem::swap(&mut *theirs.lines(), &mut out);
                    let dropped = theirs.dropped.swap(0, Ordering::Relaxed);
                    if dropped > 0 {
                        out.extend_from_slice(dropped_line(format, dropped).as_bytes());
                    }
                    if !out.is_empty() {
                        // Nowhere to report a failing stderr: the lines are lost.
                        let _ = sink.write_all(&out).and_then(|()| sink.flush());
                        out.clear();
                        // A burst's buffer is not kept for ever.
                        if out.capacity() > theirs.limits.high_water * 4 {
                            out.shrink_to(theirs.limits.high_water);
                        }
                    }
                    if stopping {
                        break;
                    }
                }
            });
        let thread = match thread {
            Ok(t) => {
                let _ = shared.flusher.set(t.thread().clone());
                Some(t)
            }
            // No thread (the process is out of them): lines gather up to the cap and
            // are then counted as dropped; requests are never held up.
            Err(_) => None,
        };
        (
            LineWriter {
                shared: Arc::clone(&shared),
            },
            WriterGuard { shared, thread },
        )
    }
}

impl LineWriter {
    /// Formats a line straight into the buffer with `write`, under the buffer's lock:
    /// no copy of the line, and its stores overlap with its formatting rather than
    /// all waiting at the lock's release (a line copied in whole stalled there for
    /// about 200 ns, the buffer's memory being cold after a cycle). Past the cap the
    /// line is taken back out and counted as dropped.
    pub(crate) fn append_with(&self, write: impl FnOnce(&mut Vec<u8>)) {
        self.shared.push(false, write);
    }
}

fn dropped_line(format: Format, n: u64) -> String {
    let message = format!("{n} log lines dropped: the log writer fell behind");
    match format {
        Format::Json => {
            format!(
                "{{\"level\":\"WARN\",\"target\":\"napiatke::log\",\"message\":\"{message}\"}}\n"
            )
        }
        Format::Human => format!(" WARN napiatke::log: {message}\n"),
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One event's line on its way into the buffer.
#[derive(Debug)]
pub struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.shared
            .push(self.urgent, |lines| lines.extend_from_slice(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LineWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            shared: &self.shared,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Line {
            shared: &self.shared,
            // Warnings and errors go out at once: they are what someone is waiting for.
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::time::Instant;
    use tracing_subscriber::layer::SubscriberExt;

    /// A sink the test can read, shared with the writer thread.
    #[derive(Clone, Default)]
    pub(crate) struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
        fn wait_for(&self, needle: &str) -> bool {
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                if self.text().contains(needle) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            false
        }
    }

    fn subscriber(writer: LineWriter) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer),
        )
    }

    const SLOW: Limits = Limits {
        every: Duration::from_secs(3600),
        high_water: 64 * 1024,
        cap: 1024 * 1024,
    };

    #[test]
    fn every_line_arrives_whole_and_in_order_per_thread_when_the_guard_drops() {
        let sink = Sink::default();
        let (writer, guard) = LineWriter::spawn_with(sink.clone(), Format::Human, LIMITS);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = writer.clone();
                std::thread::spawn(move || {
                    tracing::subscriber::with_default(subscriber(w), || {
                        for i in 0..2000 {
                            tracing::info!(thread = t, i, "line");
                        }
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = sink.text();
        assert_eq!(text.lines().count(), 8000);
        for t in 0..4 {
            let seq: Vec<u32> = text
                .lines()
                .filter(|l| l.contains(&format!("thread={t} ")))
                .map(|l| l.rsplit("i=").next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(seq, (0..2000).collect::<Vec<_>>(), "thread {t}");
        }
    }

    #[test]
    fn a_warning_is_written_at_once_an_info_line_waits_for_its_turn() {
        let sink = Sink::default();
        let (writer, guard) = LineWriter::spawn_with(sink.clone(), Format::Human, SLOW);
        tracing::subscriber::with_default(subscriber(writer), || {
            tracing::info!("quiet line");
            std::thread::sleep(Duration::from_millis(100));
            assert!(
                !sink.text().contains("quiet line"),
                "written before its turn"
            );
            tracing::warn!("loud line");
        });
        assert!(
            sink.wait_for("loud line"),
            "the warning was not written at once"
        );
        // Both, in order: the warning took the waiting line with it.
        let text = sink.text();
        assert!(text.find("quiet line").unwrap() < text.find("loud line").unwrap());
        drop(guard);
    }

    #[test]
    fn a_full_buffer_goes_out_without_waiting_for_the_timer() {
        let sink = Sink::default();
        let (writer, guard) = LineWriter::spawn_with(sink.clone(), Format::Human, SLOW);
        tracing::subscriber::with_default(subscriber(writer), || {
            for i in 0..1000 {
                tracing::info!(i, "{}", "x".repeat(100));
            }
        });
        assert!(
            sink.wait_for("i=0\n"),
            "64 KiB gathered and nothing was written"
        );
        drop(guard);
        assert_eq!(sink.text().lines().count(), 1000);
    }

    #[test]
    fn lines_formatted_in_place_past_the_cap_are_taken_out_whole_and_counted() {
        let sink = Sink::default();
        let tight = Limits {
            cap: 1000,
            high_water: 1024 * 1024,
            ..SLOW
        };
        let (writer, guard) = LineWriter::spawn_with(sink.clone(), Format::Json, tight);
        for i in 0..25 {
            // 100 bytes a line: ten fit under the cap.
            writer.append_with(|out| {
                out.extend_from_slice(format!("{i:02} {}\n", "z".repeat(96)).as_bytes());
            });
        }
        drop(guard);
        let text = sink.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 11, "{text}");
        for (i, line) in lines[..10].iter().enumerate() {
            assert_eq!(*line, format!("{i:02} {}", "z".repeat(96)));
        }
        assert!(
            lines[10].contains("\"15 log lines dropped: the log writer fell behind\""),
            "{}",
            lines[10]
        );
    }

    #[test]
    fn lines_formatted_in_place_go_out_when_the_buffer_fills() {
        let sink = Sink::default();
        let (writer, guard) = LineWriter::spawn_with(sink.clone(), Format::Json, SLOW);
        for i in 0..1000 {
            writer.append_with(|out| {
                out.extend_from_slice(format!("{i} {}\n", "x".repeat(100)).as_bytes());
            });
        }
        assert!(
            sink.wait_for("\n1 x"),
            "64 KiB gathered and nothing was written"
        );
        drop(guard);
        assert_eq!(sink.text().lines().count(), 1000);
    }

    #[test]
    fn past_the_cap_lines_are_dropped_and_counted_in_a_json_line() {
        let sink = Sink::default();
        let tight = Limits {
            cap: 10 * 1024,
            high_water: 1024 * 1024,
            ..SLOW
        };
        let (writer, guard) = LineWriter::spawn_with(sink.clone(), Format::Json, tight);
        tracing::subscriber::with_default(subscriber(writer), || {
            for i in 0..200 {
                tracing::info!(i, "{}", "y".repeat(100));
            }
        });
        drop(guard);
        let text = sink.text();
        let kept = text.lines().filter(|l| l.contains("yyyy")).count();
        assert!(kept > 0 && kept < 200, "{kept} kept");
        let last = text.lines().last().unwrap();
        assert_eq!(
            last,
            format!(
                "{{\"level\":\"WARN\",\"target\":\"napiatke::log\",\"message\":\"{} log lines dropped: the log writer fell behind\"}}",
                200 - kept
            )
        );
    }
}
