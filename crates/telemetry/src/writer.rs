//! The log lines' writer: a request appends its formatted line to one shared buffer
//! and goes on; a thread of its own writes the buffer to stderr every 25 ms, at once
//! when 64 KiB have gathered or a warning or error came in, and when the process
//! ends.
//!
//! It replaces tracing-appender's channel, which cost each line an allocation (the
//! line copied into a message), a free on the other thread and, when the writer
//! thread was idle, a wake-up (a futex call and a context switch on 2 cores): with a
//! line per request, the largest part of the 3.6–5.5 % the line cost a cached page
//! (docs/performance.md, "Telemetry cost"). Here a line costs a short lock and a copy
//! into a buffer that is reused; the writer thread wakes about 40 times a second
//! whatever the load.
//!
//! Bounded: past 16 MiB waiting (stderr blocked), lines are dropped and counted, and
//! the count is written as a line of its own once the writer catches up.
//!
//! The request lines ([`LineWriter::append_line`], one per request) skip even the
//! lock: each thread has a ring of its own that only it writes, with plain stores,
//! publishing how far it got with one release store; the writer thread reads every
//! ring before the shared buffer. A lock and its two atomic operations per line
//! were part of what the line cost a cached page (docs/performance.md). A full ring
//! sends the line through the shared buffer instead.

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
    /// Each thread's ring, in 8-byte words (a power of two).
    ring_words: usize,
}

const LIMITS: Limits = Limits {
    every: Duration::from_millis(25),
    high_water: 64 * 1024,
    cap: 16 * 1024 * 1024,
    // 512 KiB: a worker at 50,000 lines a second fills half of it in 25 ms.
    ring_words: 64 * 1024,
};

/// One thread's request lines on their way to the writer thread: a
/// single-producer, single-consumer ring of words. Each line is a word holding its
/// length, then its bytes eight to a word. Only the owning thread stores words and
/// `head`; only the writer thread stores `tail`. So no atomic read-modify-write is
/// needed: the owner's release store of `head` publishes the words before it, and
/// the writer's release store of `tail` hands the space back.
#[derive(Debug)]
struct Ring {
    words: Box<[AtomicU64]>,
    head: AtomicU64,
    tail: AtomicU64,
}

impl Ring {
    fn new(words: usize) -> Ring {
        Ring {
            words: (0..words.next_power_of_two())
                .map(|_| AtomicU64::new(0))
                .collect(),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
        }
    }

    fn slot(&self, at: u64) -> &AtomicU64 {
        // The length is a power of two: the mask keeps the index in bounds.
        #[allow(clippy::cast_possible_truncation)]
        &self.words[(at as usize) & (self.words.len() - 1)]
    }

    /// Adds `line` (owner thread only). `None` when it does not fit; otherwise
    /// whether the ring just passed half full (time to wake the writer).
    fn push(&self, line: &[u8]) -> Option<bool> {
        let cap = self.words.len() as u64;
        let need = 1 + line.len().div_ceil(8) as u64;
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head - tail + need > cap {
            return None;
        }
        let mut at = head;
        self.slot(at).store(line.len() as u64, Ordering::Relaxed);
        at += 1;
        let mut chunks = line.chunks_exact(8);
        for chunk in &mut chunks {
            let Ok(word) = <[u8; 8]>::try_from(chunk) else {
                return None;
            };
            self.slot(at)
                .store(u64::from_le_bytes(word), Ordering::Relaxed);
            at += 1;
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.slot(at)
                .store(u64::from_le_bytes(word), Ordering::Relaxed);
            at += 1;
        }
        self.head.store(at, Ordering::Release);
        Some(head - tail < cap / 2 && at - tail >= cap / 2)
    }

    /// Moves every published line to `out` (writer thread only).
    fn drain(&self, out: &mut Vec<u8>) {
        let head = self.head.load(Ordering::Acquire);
        let mut at = self.tail.load(Ordering::Relaxed);
        while at < head {
            #[allow(clippy::cast_possible_truncation)]
            let len = self.slot(at).load(Ordering::Relaxed) as usize;
            at += 1;
            let start = out.len();
            out.resize(start + len, 0);
            let mut chunks = out[start..].chunks_exact_mut(8);
            for chunk in &mut chunks {
                chunk.copy_from_slice(&self.slot(at).load(Ordering::Relaxed).to_le_bytes());
                at += 1;
            }
            let rest = chunks.into_remainder();
            if !rest.is_empty() {
                let word = self.slot(at).load(Ordering::Relaxed).to_le_bytes();
                rest.copy_from_slice(&word[..rest.len()]);
                at += 1;
            }
        }
        self.tail.store(at, Ordering::Release);
    }
}

thread_local! {
    /// This thread's ring of each line writer it wrote request lines to.
    static RINGS: std::cell::RefCell<Vec<(std::sync::Weak<Shared>, Arc<Ring>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Debug)]
struct Shared {
    lines: Mutex<Vec<u8>>,
    /// Every thread's ring of request lines (locked only when a thread makes its
    /// ring, and by the writer thread).
    rings: Mutex<Vec<Arc<Ring>>>,
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

    /// Moves every ring's lines to `out`, and lets go of the rings of threads that
    /// have ended once they are empty.
    fn drain_rings(&self, out: &mut Vec<u8>) {
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        for ring in rings.iter() {
            ring.drain(out);
        }
        // Only this list holds the ring of a thread that has ended, and that
        // thread wrote its last line before it ended, so the drain above took it.
        rings.retain(|r| Arc::strong_count(r) > 1);
    }

    fn wake(&self) {
        if let Some(t) = self.flusher.get() {
            t.unpark();
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
            lines: Mutex::new(Vec::with_capacity(limits.high_water * 2)),
            rings: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            flusher: OnceLock::new(),
            limits,
        });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                let mut out = Vec::with_capacity(theirs.limits.high_water * 2);
                let mut shared = Vec::with_capacity(theirs.limits.high_water * 2);
                loop {
                    std::thread::park_timeout(theirs.limits.every);
                    let stopping = theirs.stop.load(Ordering::Acquire);
                    // The shared buffer taken first, the rings drained after, and
                    // written in the other order: a thread's request line comes out
                    // before any warning it wrote after it, and no ring line written
                    // before a line taken now waits for a later turn. (A ring line
                    // written between the two steps may come out before a shared
                    // line written just before it; the timestamps tell.)
                    std::mem::swap(&mut *theirs.lines(), &mut shared);
                    theirs.drain_rings(&mut out);
                    out.extend_from_slice(&shared);
                    shared.clear();
                    if shared.capacity() > theirs.limits.high_water * 16 {
                        shared.shrink_to(theirs.limits.high_water * 2);
                    }
                    let dropped = theirs.dropped.swap(0, Ordering::Relaxed);
                    if dropped > 0 {
                        out.extend_from_slice(dropped_line(format, dropped).as_bytes());
                    }
                    if !out.is_empty() {
                        // Nowhere to report a failing stderr: the lines are lost.
                        let _ = sink.write_all(&out).and_then(|()| sink.flush());
                        out.clear();
                        // A burst's buffer is not kept for ever.
                        if out.capacity() > theirs.limits.high_water * 16 {
                            out.shrink_to(theirs.limits.high_water * 2);
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
    /// Appends finished lines to the buffer, as the fmt layer's writer does (dropped
    /// and counted past the cap; `urgent` wakes the writer thread at once).
    pub(crate) fn append(&self, lines: &[u8], urgent: bool) {
        let _ = Line {
            shared: &self.shared,
            urgent,
        }
        .write(lines);
    }

    /// Appends one finished line through this thread's ring (see the module's
    /// comment), or through the shared buffer when the ring is full.
    pub(crate) fn append_line(&self, line: &[u8]) {
        let pushed = RINGS.with(|cell| {
            let Ok(mut rings) = cell.try_borrow_mut() else {
                return None;
            };
            let me = Arc::as_ptr(&self.shared);
            if let Some((_, ring)) = rings.iter().find(|(w, _)| w.as_ptr() == me) {
                return ring.push(line);
            }
            rings.retain(|(w, _)| w.strong_count() > 0);
            let ring = Arc::new(Ring::new(self.shared.limits.ring_words));
            self.shared
                .rings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Arc::clone(&ring));
            let pushed = ring.push(line);
            rings.push((Arc::downgrade(&self.shared), ring));
            pushed
        });
        match pushed {
            Some(true) => self.shared.wake(),
            Some(false) => {}
            None => self.append(line, false),
        }
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
        let limits = self.shared.limits;
        let mut lines = self.shared.lines();
        let before = lines.len();
        if before + buf.len() > limits.cap {
            drop(lines);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(buf.len());
        }
        lines.extend_from_slice(buf);
        let crossed = before < limits.high_water && lines.len() >= limits.high_water;
        drop(lines);
        if self.urgent || crossed {
            self.shared.wake();
        }
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
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::time::Instant;
    use tracing_subscriber::layer::SubscriberExt;

    /// A sink the test can read, shared with the writer thread.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

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
        fn text(&self) -> String {
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
        ring_words: 1024,
    };

    #[test]
    fn a_ring_gives_back_every_line_whole_across_its_wrap() {
        let ring = Ring::new(16);
        let mut expected = Vec::new();
        let mut out = Vec::new();
        for round in 0..200usize {
            for len in [0usize, 1, 7, 8, 9, 20] {
                let line: Vec<u8> = (0..len).map(|i| b'a' + ((i + round) % 26) as u8).collect();
                ring.push(&line).expect("room after the last drain");
                expected.extend_from_slice(&line);
            }
            ring.drain(&mut out);
        }
        assert_eq!(out, expected);
        // 16 words: a line needing more is refused, not written over unread ones.
        assert!(ring.push(&[b'x'; 64]).is_some(), "9 words fit");
        assert!(ring.push(&[b'y'; 64]).is_none(), "9 more do not");
    }

    #[test]
    fn request_lines_from_many_threads_arrive_whole_and_in_order() {
        let sink = Sink::default();
        let (writer, guard) = LineWriter::spawn_with(sink.clone(), Format::Json, LIMITS);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        w.append_line(format!("{{\"thread\":{t},\"i\":{i}}}\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = sink.text();
        assert_eq!(text.lines().count(), 20_000);
        for t in 0..4 {
            let seq: Vec<u32> = text
                .lines()
                .filter(|l| l.starts_with(&format!("{{\"thread\":{t},")))
                .map(|l| {
                    l.rsplit("\"i\":")
                        .next()
                        .unwrap()
                        .trim_end_matches('}')
                        .parse()
                        .unwrap()
                })
                .collect();
            assert_eq!(seq, (0..5000).collect::<Vec<_>>(), "thread {t}");
        }
    }

    #[test]
    fn a_full_ring_sends_lines_through_the_shared_buffer_and_an_ended_threads_ring_is_let_go() {
        let sink = Sink::default();
        let tiny = Limits {
            every: Duration::from_millis(5),
            ring_words: 64,
            ..SLOW
        };
        let (writer, guard) = LineWriter::spawn_with(sink.clone(), Format::Json, tiny);
        let w = writer.clone();
        std::thread::spawn(move || {
            for i in 0..300 {
                w.append_line(format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "z".repeat(40)).as_bytes());
            }
        })
        .join()
        .unwrap();
        assert!(sink.wait_for("{\"i\":299,"), "the last line did not come");
        let text = sink.text();
        for i in 0..300 {
            assert!(text.contains(&format!("{{\"i\":{i},")), "line {i} lost");
        }
        // The writer's next turns drop the ended thread's ring.
        let until = Instant::now() + Duration::from_secs(5);
        while !writer.shared.rings.lock().unwrap().is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(writer.shared.rings.lock().unwrap().len(), 0);
        drop(guard);
        assert_eq!(sink.text().lines().count(), 300);
    }

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
