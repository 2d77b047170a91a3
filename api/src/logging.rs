//! Logs: one JSON object per line on stdout, filtered by `API_LOG`.
//!
//! A request line looks like
//! `{"timestamp":"…","level":"INFO","message":"request","method":"GET","route":"/health","status":200,"latency_ms":0.041,"target":"api::request"}`.
//!
//! Lines are not written to stdout by the thread that logs them: a request would then
//! pay a `write(2)` and contend for the stdout lock on every request. They are appended
//! to a shared buffer, and one writer thread writes whatever has accumulated in a
//! single call (under load, many lines per syscall). The buffer is bounded: when the
//! reader of stdout falls 4 MiB behind, loggers wait, as they would on a plain write.
//! [`LogGuard`] flushes what is left when dropped.

use std::{
    io::{self, Write},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread,
};

use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFilter;

/// How long the writer lets lines gather after each write.
const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);

/// Lines waiting beyond this many bytes make loggers wait for the writer.
const MAX_PENDING: usize = 4 << 20;

/// Installs the global subscriber. Call once, before serving; keep the guard until exit.
pub fn init(filter: &LogFilter) -> LogGuard {
    let (writer, guard) = BatchedStdout::start();
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(writer),
        )
        .with(filter.to_targets())
        .init();
    guard
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when `lines` becomes non-empty or `closed` is set.
    filled: Condvar,
    /// Signalled when the writer has taken the lines.
    drained: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `MakeWriter` handed to the subscriber.
#[derive(Clone)]
struct BatchedStdout(Arc<Shared>);

impl BatchedStdout {
    fn start() -> (Self, LogGuard) {
        let shared = Arc::new(Shared::default());
        let for_thread = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || write_until_closed(&for_thread, &mut io::stdout()))
            .ok();
        (Self(Arc::clone(&shared)), LogGuard { shared, thread })
    }
}

fn write_until_closed(shared: &Shared, out: &mut impl Write) {
    let mut batch = Vec::new();
    loop {
        let closed = {
            let mut pending = shared.lock();
            while pending.lines.is_empty() && !pending.closed {
                pending = shared
                    .filled
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            std::mem::swap(&mut batch, &mut pending.lines);
            pending.closed
        };
        shared.drained.notify_all();
        // Nowhere to report a failed write of the log itself; keep serving.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if closed {
            return;
        }
        // Let lines gather: one write per interval under load instead of a wake-up and a
        // syscall per line. An idle server's lines still appear within this interval.
        thread::sleep(FLUSH_INTERVAL);
    }
}

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Write for BatchedStdout {
    /// The formatter hands over each event as one complete line.
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.0.lock();
        if pending.closed {
            drop(pending);
            io::stdout().write_all(line)?;
            return Ok(line.len());
        }
        while pending.lines.len() > MAX_PENDING && !pending.closed {
            pending = self
                .0
                .drained
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let was_empty = pending.lines.is_empty();
        pending.lines.extend_from_slice(line);
        drop(pending);
        if was_empty {
            self.0.filled.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Flushes the remaining lines and stops the writer thread when dropped.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.filled.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_line_in_order_and_flushes_on_close() {
        let shared = Arc::new(Shared::default());
        let for_thread = Arc::clone(&shared);
        let writer = thread::spawn(move || {
            let mut out = Vec::new();
            write_until_closed(&for_thread, &mut out);
            out
        });
        let mut log = BatchedStdout(Arc::clone(&shared));
        for i in 0..1000 {
            log.write_all(format!("line {i}\n").as_bytes())
                .expect("buffered");
        }
        shared.lock().closed = true;
        shared.filled.notify_one();
        let out = String::from_utf8(writer.join().expect("writer finished")).expect("utf-8");
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(out, expected);
    }
}
