//! A log sink for servers that does not take stderr's lock once per line.
//!
//! `wharf serve` logs one access line per request. Written straight to stderr, each line took
//! stderr's lock around a `write` system call, so the two worker threads kept meeting on that
//! lock: ~0.9 `futex` calls per request (wasmtime serve: 0.09), ~5% of the requests a second
//! on a 2-core machine (BENCHMARKS.md, stop 16). Here a line is appended to a shared buffer
//! under a lock held only for the copy, and a dedicated flusher thread writes what has
//! gathered at most [`FLUSH_DELAY`] after the first line of a batch, in one `write`.
//!
//! Why a thread and not per-worker buffers flushed when the worker parks: a worker kept busy
//! by a spinning guest never parks, and its lines waited (BENCHMARKS.md, stop 15). The flusher
//! does not depend on any worker. No line is lost on a normal exit: [`LogBuffer::flush`] runs
//! before wharf prints its own messages and when `main` returns, and a panic flushes first.
//! Memory stays bounded: a writer that finds [`MAX_BUFFERED`] bytes waiting (stderr blocked,
//! e.g. a pipe nobody reads) writes them itself, and so waits as it did without the buffer.
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// How long the flusher lets lines gather after the first one of a batch.
pub const FLUSH_DELAY: Duration = Duration::from_millis(5);

/// Bytes waiting at most; a writer that finds more writes them itself.
pub const MAX_BUFFERED: usize = 256 << 10;

type Sink = Box<dyn Write + Send>;

/// A buffered, shared log sink (see the module docs). Clones share the buffer.
#[derive(Clone)]
pub struct LogBuffer {
    shared: Arc<Shared>,
}

struct Shared {
    /// Lines not written yet.
    pending: Mutex<Vec<u8>>,
    /// Wakes the flusher when a batch starts (the buffer was empty).
    started: Condvar,
    /// Held while a batch is taken and written, so batches reach the sink in order.
    sink: Mutex<Sink>,
}

impl Shared {
    fn lock_pending(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes everything buffered so far.
    fn flush(&self) {
        let mut sink = self.sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let batch = std::mem::take(&mut *self.lock_pending());
        if !batch.is_empty() {
            // Nowhere to report a failed write of the log itself; the lines are dropped as
            // stderr would drop them.
            let _ = sink.write_all(&batch);
            let _ = sink.flush();
        }
    }
}

impl LogBuffer {
    /// A buffer that writes to `sink` from a new thread named `wharf-log`.
    pub fn new(sink: Sink) -> std::io::Result<LogBuffer> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(16 << 10)),
            started: Condvar::new(),
            sink: Mutex::new(sink),
        });
        let flusher = shared.clone();
        std::thread::Builder::new().name("wharf-log".into()).spawn(move || {
            loop {
                {
                    let mut pending = flusher.lock_pending();
                    while pending.is_empty() {
                        pending = flusher.started.wait(pending).unwrap_or_else(|poisoned| poisoned.into_inner());
                    }
                }
                std::thread::sleep(FLUSH_DELAY);
                flusher.flush();
            }
        })?;
        Ok(LogBuffer { shared })
    }

    /// Appends `bytes` (one or more whole lines).
    fn append(&self, bytes: &[u8]) {
        let mut pending = self.shared.lock_pending();
        if pending.len() >= MAX_BUFFERED {
            // The flusher is behind (the sink blocks): write here, waiting as an unbuffered
            // writer would, rather than letting the buffer grow.
            drop(pending);
            self.shared.flush();
            pending = self.shared.lock_pending();
        }
        let was_empty = pending.is_empty();
        pending.extend_from_slice(bytes);
        drop(pending);
        if was_empty {
            self.shared.started.notify_one();
        }
    }

    /// Writes every line buffered so far, now.
    pub fn flush(&self) {
        self.shared.flush();
    }
}

/// One event's writer (tracing-subscriber formats an event, then writes it in one call).
pub struct EventWriter<'a>(&'a LogBuffer);

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter(self)
    }
}

/// The process's buffer, once [`install`] made it.
static GLOBAL: OnceLock<LogBuffer> = OnceLock::new();

/// Makes the process's buffer over stderr (once) and flushes it before any panic message.
pub fn install() -> std::io::Result<LogBuffer> {
    if let Some(buffer) = GLOBAL.get() {
        return Ok(buffer.clone());
    }
    let buffer = LogBuffer::new(Box::new(std::io::stderr()))?;
    let buffer = GLOBAL.get_or_init(|| buffer).clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush();
        previous(info);
    }));
    Ok(buffer)
}

/// Writes the process's buffered log lines now (nothing if [`install`] was not called): before
/// wharf writes to stderr itself, and at exit.
pub fn flush() {
    if let Some(buffer) = GLOBAL.get() {
        buffer.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A sink the test can read.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn a_line_reaches_the_sink_without_another_write_or_a_flush() {
        // The writer logs once and never again (a worker then kept busy by a spinning guest):
        // its line must still come out, from the flusher thread.
        let sink = Shared::default();
        let buffer = LogBuffer::new(Box::new(sink.clone())).unwrap();
        std::thread::spawn({
            let buffer = buffer.clone();
            move || EventWriter(&buffer).write_all(b"GET / 200\n").unwrap()
        })
        .join()
        .unwrap();
        let start = Instant::now();
        while sink.text().is_empty() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sink.text(), "GET / 200\n");
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    }

    #[test]
    fn flush_writes_everything_in_order() {
        let sink = Shared::default();
        let buffer = LogBuffer::new(Box::new(sink.clone())).unwrap();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        for i in 0..1000 {
            EventWriter(&buffer).write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        buffer.flush();
        assert_eq!(sink.text(), expected);
    }

    /// A sink that blocks until the test lets it go.
    struct Blocked(Arc<Mutex<()>>, Shared);

    impl Write for Blocked {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _gate = self.0.lock().unwrap();
            self.1.write(buf)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_blocked_sink_bounds_the_buffer_and_keeps_the_order() {
        let gate = Arc::new(Mutex::new(()));
        let closed = gate.lock().unwrap();
        let sink = Shared::default();
        let buffer = LogBuffer::new(Box::new(Blocked(gate.clone(), sink.clone()))).unwrap();
        let line = [b'x'; 1023].iter().copied().chain([b'\n']).collect::<Vec<u8>>();
        let writer = std::thread::spawn({
            let buffer = buffer.clone();
            move || {
                for _ in 0..2048 {
                    EventWriter(&buffer).write_all(&line).unwrap();
                }
            }
        });
        // The sink is stuck: the writer must end up waiting, not buffering all 2 MiB.
        std::thread::sleep(Duration::from_millis(300));
        assert!(!writer.is_finished(), "the writer buffered without bound");
        assert!(buffer.shared.lock_pending().len() <= MAX_BUFFERED + 1024);
        drop(closed);
        writer.join().unwrap();
        buffer.flush();
        let text = sink.text();
        assert_eq!(text.len(), 2048 * 1024);
        assert!(text.lines().all(|l| l.len() == 1023));
    }
}
