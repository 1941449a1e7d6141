//! The log sink: a bounded in-memory buffer that a background thread writes to stderr in
//! batches, so a request never waits for a `write(2)` to stderr (one blocking write per log
//! line cost about 40 µs of CPU per request on the bench box; see docs/PERFORMANCE.md).
//!
//! - **Batching.** Formatted lines are appended to one shared buffer under a short lock (a
//!   copy, no allocation once the buffer has grown). The writer thread swaps the buffer out
//!   and writes it with one `write_all`, then waits up to [`FLUSH_INTERVAL`] to collect the
//!   next batch; a line is on stderr at most about that long after it was logged. Request
//!   threads wake the writer only when it sits idle (nothing was logged) or when the buffer
//!   passes half of its capacity.
//! - **Bounded and lossy.** At most [`CAPACITY`] bytes wait. A line that does not fit is
//!   dropped and counted ([`dropped_lines`], exported as `orderly_log_lines_dropped_total`)
//!   rather than blocking the request: when stderr cannot keep up (a stalled pipe, a slow
//!   collector), serving requests matters more than their log lines, and the counter says
//!   how many went missing.
//! - **Flushed on shutdown.** [`LogSink::close`] (called by `telemetry::shutdown`) writes
//!   what is buffered and stops the thread; lines logged after that go straight to stderr.
//!   A crash (SIGKILL, abort) loses at most the last [`FLUSH_INTERVAL`] of lines.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer waits to collect a batch after writing one.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(5);
/// The most bytes that wait to be written (about 8,000 request lines); lines beyond are dropped.
pub const CAPACITY: usize = 2 << 20;

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    /// The writer waits for any line (nothing is buffered): the next line wakes it.
    idle: bool,
    /// The writer was woken early because the buffer passed half full; do not wake it twice.
    hurried: bool,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    dropped: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handle on the sink; `MakeWriter` for the fmt layer. Cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl LogSink {
    /// Starts the writer thread. If the thread cannot be started, lines are written to
    /// stderr directly (as if closed).
    pub fn start() -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { buf: Vec::with_capacity(16 << 10), ..State::default() }),
            wake: Condvar::new(),
            dropped: AtomicU64::new(0),
        });
        let worker = shared.clone();
        let thread =
            std::thread::Builder::new().name("log-writer".into()).spawn(move || write_batches(&worker, io::stderr()));
        let thread = match thread {
            Ok(t) => Some(t),
            Err(_) => {
                shared.lock().closed = true;
                None
            }
        };
        Self { shared, thread: Arc::new(Mutex::new(thread)) }
    }

    /// Lines dropped so far because the buffer was full.
    pub fn dropped_lines(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Writes everything buffered, stops the writer thread and waits for it. Later lines go
    /// to stderr directly. Idempotent.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
        let handle = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    fn append(&self, line: &[u8]) {
        let mut st = self.shared.lock();
        if st.closed {
            drop(st);
            let _ = io::stderr().write_all(line);
            return;
        }
        if st.buf.len() + line.len() > CAPACITY {
            drop(st);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        st.buf.extend_from_slice(line);
        let wake = if st.idle {
            st.idle = false;
            true
        } else if !st.hurried && st.buf.len() > CAPACITY / 2 {
            st.hurried = true;
            true
        } else {
            false
        };
        drop(st);
        if wake {
            self.shared.wake.notify_one();
        }
    }
}

/// The writer thread: swap the buffer out, write it, wait for the next batch; until closed.
fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::with_capacity(16 << 10);
    let mut st = shared.lock();
    loop {
        while st.buf.is_empty() && !st.closed {
            st.idle = true;
            st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.idle = false;
        st.hurried = false;
        std::mem::swap(&mut st.buf, &mut batch);
        let closed = st.closed;
        drop(st);
        // Nowhere to report a failed write to stderr; the lines are lost either way.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > CAPACITY {
            batch.shrink_to(16 << 10);
        }
        st = shared.lock();
        if closed && st.buf.is_empty() {
            return;
        }
        if !st.closed && st.buf.len() <= CAPACITY / 2 {
            st = shared.wake.wait_timeout(st, FLUSH_INTERVAL).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

/// One log line's writer: the fmt layer formats a whole line and writes it in one call.
pub struct Line<'a>(&'a LogSink);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink whose writer thread writes into a shared Vec instead of stderr.
    fn sink_into(out: Arc<Mutex<Vec<u8>>>) -> LogSink {
        struct To(Arc<Mutex<Vec<u8>>>);
        impl Write for To {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let shared = Arc::new(Shared { state: Mutex::default(), wake: Condvar::new(), dropped: AtomicU64::new(0) });
        let worker = shared.clone();
        let thread = std::thread::spawn(move || write_batches(&worker, To(out)));
        LogSink { shared, thread: Arc::new(Mutex::new(Some(thread))) }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_sink_is_closed() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = sink_into(out.clone());
        for i in 0..10_000 {
            sink.make_writer().write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        sink.close();
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10_000);
        assert!(lines.iter().enumerate().all(|(i, l)| *l == format!("line {i}")));
        assert_eq!(sink.dropped_lines(), 0);
    }

    #[test]
    fn lines_that_do_not_fit_are_dropped_and_counted_instead_of_blocking() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = sink_into(out.clone());
        // Hold the output so the writer thread cannot drain: the buffer fills up.
        let held = out.lock().unwrap();
        let line = vec![b'x'; 1 << 16];
        for _ in 0..(3 * CAPACITY / line.len()) {
            sink.make_writer().write_all(&line).unwrap();
        }
        assert!(sink.dropped_lines() > 0, "the writer could not drain, so lines beyond the capacity are dropped");
        drop(held);
        sink.close();
        let written = out.lock().unwrap().len() as u64;
        let total = 3 * (CAPACITY / line.len()) as u64;
        assert_eq!(written / line.len() as u64 + sink.dropped_lines(), total, "each line is written or counted");
    }
}
