//! Event loops for `wharf serve`: one single-threaded tokio runtime per core, each running the
//! connections the accept loop hands it (round robin), with its own instance pools.
//!
//! Why: on tokio's work-stealing runtime a request's work moves between threads (the
//! connection task, the instance's task, the response channel, the body), and every move is a
//! cross-core wake-up; each also keeps the process's address space live on both cores, so each
//! copy-on-write fault or `madvise` of a pooled instance becomes a TLB-shootdown IPI to the
//! other core. Here a connection, its requests, their instances and their response bodies stay
//! on one thread (measured in BENCHMARKS.md, 2026-12-01 stop 13).
//!
//! A guest that spins holds its thread like before (it yields to the other tasks of that loop
//! every epoch tick, 10 ms, and is stopped at its timeout); requests on other loops do not wait
//! for it.
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A task handed to a loop: one connection.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

thread_local! {
    // Which loop this thread runs (0 outside the loops).
    static LOOP: Cell<usize> = const { Cell::new(0) };
}

/// The index of the loop running the caller (0 on any other thread).
pub(crate) fn current() -> usize {
    LOOP.with(Cell::get)
}

/// Running loops; [`EventLoops::stop`] ends them.
pub(crate) struct EventLoops {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    next: AtomicUsize,
}

impl EventLoops {
    /// Starts `count` loops (threads `wharf-serve-N`).
    pub(crate) fn start(count: usize) -> std::io::Result<Self> {
        let mut loops =
            EventLoops { handles: Vec::new(), stops: Vec::new(), threads: Vec::new(), next: AtomicUsize::new(0) };
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            loops.handles.push(runtime.handle().clone());
            loops.stops.push(stop);
            let thread = std::thread::Builder::new().name(format!("wharf-serve-{index}")).spawn(move || {
                LOOP.with(|cell| cell.set(index));
                // A current-thread runtime runs its tasks only while it is blocked on.
                runtime.block_on(async move {
                    let _ = stopped.await;
                });
                // Tasks still there (idle instances, connections past the shutdown timeout) are
                // dropped with the runtime.
                drop(runtime);
            })?;
            loops.threads.push(thread);
        }
        Ok(loops)
    }

    /// How many loops run.
    pub(crate) fn len(&self) -> usize {
        self.handles.len()
    }

    /// Runs `task` on the next loop (round robin).
    pub(crate) fn spawn(&self, task: Task) {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        drop(self.handles[index].spawn(task));
    }

    /// Ends every loop (dropping what still runs on them) and waits for their threads.
    pub(crate) async fn stop(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}
