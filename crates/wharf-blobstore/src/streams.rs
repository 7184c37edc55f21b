//! The value streams, both with bounded host memory whatever the value's size.
//!
//! - `outgoing-value`'s body: the buffers the guest writes (already copied out of its memory by
//!   wasmtime) are handed, without another copy, to writes on tokio's blocking pool into a temp
//!   file (the spool), a batch at a time while the guest keeps writing. At most [`BUDGET`] bytes
//!   (256 KiB once the component's [`STREAM_BUFFER_BUDGET`](crate::STREAM_BUFFER_BUDGET) is
//!   spent) are accepted and not yet written; past that the guest waits.
//! - `incoming-value`'s body: a task pulls the backend's [`Reader`] one chunk ahead of the guest
//!   (at most three chunks held: one being read, one queued, one being consumed), and the
//!   guest's reads are cut from those chunks without another copy.
use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tempfile::TempPath;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;

use crate::backend::{BlobError, BlobResult, Reader, Spool};
use crate::{Granted, SpoolDir};

/// How many bytes the body stream holds accepted but not yet written to the spool; the guest
/// must wait (`check-write` returns 0) until a write finishes. Taken from the component's
/// [`STREAM_BUFFER_BUDGET`](crate::STREAM_BUFFER_BUDGET).
pub(crate) const BUDGET: usize = 1024 * 1024;

/// The same for a body that found no room in the component's budget.
const SMALL_BUDGET: usize = 256 * 1024;

/// How many pending bytes start a write to the spool while the guest keeps writing.
const BATCH: usize = 256 * 1024;

/// The spool file once created (by the first write).
type Staged = Option<(File, TempPath)>;

/// The `outgoing-value` resource: its staged body and, once `write-data` named it, where the
/// value goes on `finish`.
pub struct OutgoingValue {
    pub(crate) body: Arc<tokio::sync::Mutex<Body>>,
    pub(crate) body_taken: bool,
    pub(crate) target: Option<Target>,
}

/// Where a finished value is put.
pub(crate) struct Target {
    pub(crate) granted: Granted,
    pub(crate) container: String,
    pub(crate) name: String,
}

pub(crate) struct Body {
    spool_dir: SpoolDir,
    /// [`BUDGET`] with the permit for it, or [`SMALL_BUDGET`].
    budget: usize,
    _permit: Option<OwnedSemaphorePermit>,
    queue: Arc<Queue>,
    /// Bytes accepted so far (written, being written or queued).
    accepted: u64,
    /// Why the body can take no more (over the size limit, finished).
    refused: Option<String>,
}

/// The buffers accepted and not yet written, shared with the writer: one blocking task at a
/// time that writes until the queue is empty, so a guest that keeps the queue filled costs one
/// hand-off in all, not one per batch.
struct Queue {
    state: std::sync::Mutex<QueueState>,
    /// Signalled whenever the writer wrote a batch, failed or stopped.
    progress: tokio::sync::Notify,
}

#[derive(Default)]
struct QueueState {
    bufs: Vec<Bytes>,
    /// Bytes queued or being written.
    outstanding: usize,
    /// A writer task is running (it holds the spool meanwhile).
    writing: bool,
    spool: Staged,
    failed: Option<String>,
}

impl OutgoingValue {
    /// A value whose body may hold [`BUDGET`] bytes with `permit` for them, or less without.
    pub(crate) fn new(spool_dir: SpoolDir, permit: Option<OwnedSemaphorePermit>) -> Self {
        let body = Body {
            spool_dir,
            budget: if permit.is_some() { BUDGET } else { SMALL_BUDGET },
            _permit: permit,
            queue: Arc::new(Queue { state: Default::default(), progress: tokio::sync::Notify::new() }),
            accepted: 0,
            refused: None,
        };
        OutgoingValue { body: Arc::new(tokio::sync::Mutex::new(body)), body_taken: false, target: None }
    }
}

fn staging(e: io::Error) -> String {
    format!("cannot stage the value: {}", e.kind())
}

/// Appends `bufs` to the spool, creating it in `dir` first if needed (blocking).
fn write_spool(staged: &mut Staged, dir: &Path, bufs: &[Bytes]) -> io::Result<()> {
    if staged.is_none() {
        let made = crate::stale::locked_temp(dir);
        let temp = made.inspect_err(|e| tracing::warn!(dir = %dir.display(), error = %e, "blobstore spool"))?;
        *staged = Some(temp.into_parts());
    }
    if let Some((file, _)) = staged {
        for buf in bufs {
            file.write_all(buf)?;
        }
    }
    Ok(())
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // A writer that panicked leaves consistent state (it only swaps fields under the lock).
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the writer if there is something to write and none runs (called with the lock).
    fn start_writer(self: &Arc<Self>, state: &mut QueueState, dir: &Path) {
        if state.writing || state.bufs.is_empty() || state.failed.is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        state.writing = true;
        let mut staged = state.spool.take();
        let (queue, dir) = (self.clone(), dir.to_owned());
        runtime.spawn_blocking(move || {
            loop {
                let bufs = {
                    let mut state = queue.lock();
                    if state.bufs.is_empty() || state.failed.is_some() {
                        state.writing = false;
                        state.spool = staged;
                        break;
                    }
                    std::mem::take(&mut state.bufs)
                };
                let len: usize = bufs.iter().map(Bytes::len).sum();
                let result = write_spool(&mut staged, &dir, &bufs);
                drop(bufs);
                let mut state = queue.lock();
                state.outstanding -= len;
                if let Err(e) = result {
                    state.failed.get_or_insert(staging(e));
                }
                drop(state);
                queue.progress.notify_one();
            }
            queue.progress.notify_one();
        });
    }
}

impl Body {
    fn accept(&mut self, bytes: Bytes) -> StreamResult<()> {
        if let Some(why) = &self.refused {
            return Err(failed(why));
        }
        let mut state = self.queue.lock();
        if let Some(why) = &state.failed {
            return Err(failed(why));
        }
        if state.outstanding + bytes.len() > self.budget {
            return Err(StreamError::trap("write exceeded check-write"));
        }
        let max = self.spool_dir.max_object_size;
        if self.accepted + bytes.len() as u64 > max {
            let why = format!("the value is larger than the limit of {max} bytes");
            self.refused = Some(why.clone());
            return Err(failed(why));
        }
        if bytes.is_empty() {
            return Ok(());
        }
        self.accepted += bytes.len() as u64;
        state.outstanding += bytes.len();
        state.bufs.push(bytes);
        // Small writes pile up into a batch before a writer starts; a running one takes them.
        if state.outstanding >= BATCH {
            self.queue.start_writer(&mut state, &self.spool_dir.dir);
        }
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        if let Some(why) = &self.refused {
            return Err(failed(why));
        }
        let state = self.queue.lock();
        if let Some(why) = &state.failed {
            return Err(failed(why));
        }
        Ok(self.budget.saturating_sub(state.outstanding))
    }

    /// Waits until the guest may write again (or the body failed).
    async fn ready(&mut self) {
        loop {
            {
                let mut state = self.queue.lock();
                if state.failed.is_some() || self.refused.is_some() || state.outstanding < self.budget {
                    return;
                }
                self.queue.start_writer(&mut state, &self.spool_dir.dir);
            }
            // A notification sent since the check is kept for this wait: none is lost.
            self.queue.progress.notified().await;
        }
    }

    /// The whole staged value, positioned at its start.
    pub(crate) async fn finish(&mut self) -> BlobResult<Spool> {
        if let Some(why) = &self.refused {
            return Err(BlobError(why.clone()));
        }
        let staged = loop {
            {
                let mut state = self.queue.lock();
                if let Some(why) = &state.failed {
                    return Err(BlobError(why.clone()));
                }
                if !state.writing && state.bufs.is_empty() {
                    break state.spool.take();
                }
                self.queue.start_writer(&mut state, &self.spool_dir.dir);
            }
            self.queue.progress.notified().await;
        };
        self.refused = Some("the value was already finished".into());
        self._permit = None;
        let (mut file, path) = match staged {
            Some(staged) => staged,
            None => {
                let spool = self.spool_dir.create().await?;
                (spool.file.into_std().await, spool.path)
            }
        };
        file.rewind().map_err(|e| BlobError(staging(e)))?;
        Ok(Spool { file: tokio::fs::File::from_std(file), path, size: self.accepted })
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // Unfinished: a running writer stops after its batch (the spool is deleted with the
        // queue).
        let mut state = self.queue.lock();
        state.bufs.clear();
        state.failed.get_or_insert_with(|| "the value was dropped".into());
    }
}

/// The `output-stream` returned by `outgoing-value-write-body`.
pub(crate) struct BodyStream(pub(crate) Arc<tokio::sync::Mutex<Body>>);

fn failed(why: impl std::fmt::Display) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::format_err!("{why}"))
}

impl BodyStream {
    fn body(&self) -> StreamResult<tokio::sync::MutexGuard<'_, Body>> {
        // Only `ready` and `finish` hold the lock across an await, and neither runs while the
        // guest is in a non-blocking stream call of the same store.
        self.0.try_lock().map_err(|_| StreamError::trap("outgoing-value body is busy"))
    }
}

#[async_trait::async_trait]
impl OutputStream for BodyStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.body()?.accept(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Writes go on in the background; `finish` waits for all of them.
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.body()?.check_write()
    }
}

#[async_trait::async_trait]
impl Pollable for BodyStream {
    async fn ready(&mut self) {
        // An error is kept in the body and reported by the next write or check.
        self.0.lock().await.ready().await;
    }
}

/// The `input-stream` of `incoming-value-consume-async`: the reader's chunks, pulled one ahead
/// by a task (stopped when the stream is dropped).
pub(crate) struct IncomingStream {
    /// What is left of the chunk being consumed.
    buffer: Bytes,
    /// The read error or end that `ready` received, for the next `read`.
    ended: Option<StreamError>,
    closed: bool,
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    _pump: AbortOnDropJoinHandle<()>,
    /// The room the reader's chunks were sized for, if large.
    _permit: Option<OwnedSemaphorePermit>,
}

impl IncomingStream {
    pub(crate) fn new(mut reader: Reader, permit: Option<OwnedSemaphorePermit>) -> Self {
        let (tx, chunks) = mpsc::channel(1);
        let pump = wasmtime_wasi::runtime::spawn(async move {
            while let Some(item) = reader.next().await {
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    break;
                }
            }
        });
        IncomingStream { buffer: Bytes::new(), ended: None, closed: false, chunks, _pump: pump, _permit: permit }
    }

    /// Takes in what the pump sent, if anything.
    fn received(&mut self, item: Option<io::Result<Bytes>>) {
        match item {
            Some(Ok(bytes)) => self.buffer = bytes,
            Some(Err(e)) => self.ended = Some(StreamError::LastOperationFailed(e.into())),
            None => self.ended = Some(StreamError::Closed),
        }
    }
}

#[async_trait::async_trait]
impl InputStream for IncomingStream {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if self.buffer.is_empty() && self.ended.is_none() && !self.closed {
            match self.chunks.try_recv() {
                Ok(item) => self.received(Some(item)),
                Err(mpsc::error::TryRecvError::Disconnected) => self.received(None),
                Err(mpsc::error::TryRecvError::Empty) => return Ok(Bytes::new()),
            }
        }
        if !self.buffer.is_empty() {
            return Ok(self.buffer.split_to(size.min(self.buffer.len())));
        }
        self.closed = true;
        Err(self.ended.take().unwrap_or(StreamError::Closed))
    }
}

#[async_trait::async_trait]
impl Pollable for IncomingStream {
    async fn ready(&mut self) {
        if self.buffer.is_empty() && self.ended.is_none() && !self.closed {
            let item = self.chunks.recv().await;
            self.received(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Not periodic at any power of two a chunk or batch boundary could hide behind.
    fn data(len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| (i ^ (i >> 8) ^ (i >> 16) ^ (i / 251)) as u8).collect()
    }

    fn spool_dir(dir: &tempfile::TempDir) -> SpoolDir {
        SpoolDir { dir: dir.path().join("spool"), max_object_size: 64 << 20 }
    }

    #[tokio::test]
    async fn body_stream_stages_every_byte_in_order_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let permit = Arc::new(tokio::sync::Semaphore::new(BUDGET)).try_acquire_many_owned(BUDGET as u32).ok();
        let value = OutgoingValue::new(spool_dir(&dir), permit);
        let mut stream = BodyStream(value.body.clone());
        assert_eq!(stream.check_write().unwrap(), BUDGET);
        assert!(matches!(stream.write(Bytes::from(vec![0; BUDGET + 1])), Err(StreamError::Trap(_))));
        let want = data(5 * 1024 * 1024 + 12_345);
        let (mut at, mut waits) = (0, 0);
        while at < want.len() {
            let permit = stream.check_write().unwrap();
            assert!(permit <= BUDGET);
            if permit == 0 {
                stream.ready().await;
                waits += 1;
                continue;
            }
            let n = permit.min(100_003).min(want.len() - at);
            stream.write(Bytes::copy_from_slice(&want[at..at + n])).unwrap();
            at += n;
        }
        eprintln!("{waits} waits for the writer");
        drop(stream);
        let mut spool = value.body.lock().await.finish().await.unwrap();
        assert_eq!(spool.size, want.len() as u64);
        let mut got = Vec::new();
        spool.file.read_to_end(&mut got).await.unwrap();
        assert!(got == want, "the staged value differs");
        assert!(value.body.lock().await.finish().await.is_err(), "finished twice");
    }

    #[tokio::test]
    async fn a_body_dropped_unfinished_leaves_no_staged_file() {
        let dir = tempfile::tempdir().unwrap();
        let value = OutgoingValue::new(spool_dir(&dir), None);
        let mut stream = BodyStream(value.body.clone());
        for _ in 0..3 {
            let n = stream.check_write().unwrap();
            stream.write(Bytes::from(vec![1; n])).unwrap();
            stream.ready().await;
        }
        let spool = dir.path().join("spool");
        assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 1, "nothing was staged");
        drop((stream, value));
        for _ in 0..500 {
            if std::fs::read_dir(&spool).map_or(0, |d| d.count()) == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("a staged file was left behind");
    }

    #[tokio::test]
    async fn body_stream_over_the_size_limit_fails_and_stays_failed() {
        let dir = tempfile::tempdir().unwrap();
        let value = OutgoingValue::new(SpoolDir { dir: dir.path().join("spool"), max_object_size: 10 }, None);
        let mut stream = BodyStream(value.body.clone());
        stream.write(Bytes::from_static(b"12345678")).unwrap();
        assert!(matches!(stream.write(Bytes::from_static(b"abc")), Err(StreamError::LastOperationFailed(_))));
        assert!(stream.check_write().is_err());
        drop(stream);
        let Err(err) = value.body.lock().await.finish().await else { panic!("finished over the limit") };
        assert!(err.0.contains("larger than the limit of 10 bytes"), "{err}");
    }

    #[tokio::test]
    async fn empty_body_finishes_as_an_empty_value() {
        let dir = tempfile::tempdir().unwrap();
        let value = OutgoingValue::new(spool_dir(&dir), None);
        assert_eq!(BodyStream(value.body.clone()).check_write().unwrap(), SMALL_BUDGET);
        let spool = value.body.lock().await.finish().await.unwrap();
        assert_eq!((spool.size, spool.file.metadata().await.unwrap().len()), (0, 0));
    }

    #[tokio::test]
    async fn incoming_stream_cuts_chunks_without_losing_or_reordering_bytes() {
        let want = data(3 * 1024 * 1024 + 7);
        let cuts = [0, 3, 3 + 1024 * 1024, 3 + 1024 * 1024 + 17, want.len()];
        let mut items: Vec<io::Result<Bytes>> =
            cuts.windows(2).map(|w| Ok(Bytes::copy_from_slice(&want[w[0]..w[1]]))).collect();
        items.push(Err(io::Error::other("backend went away")));
        let mut stream = IncomingStream::new(Box::pin(futures_util::stream::iter(items)), None);
        let mut got = Vec::new();
        let error = loop {
            stream.ready().await;
            match stream.read(65_537) {
                Ok(bytes) => {
                    assert!(!bytes.is_empty() && bytes.len() <= 65_537);
                    got.extend_from_slice(&bytes);
                }
                Err(e) => break e,
            }
        };
        assert!(got == want, "the bytes read differ");
        assert!(matches!(&error, StreamError::LastOperationFailed(e) if e.to_string().contains("went away")));
        assert!(matches!(stream.read(1), Err(StreamError::Closed)));
    }
}
