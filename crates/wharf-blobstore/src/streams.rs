//! The `outgoing-value` resource and its body stream: bytes the guest writes are staged in a
//! temp file through a small buffer, so a value of any size costs the host a bounded amount
//! of memory.
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::backend::{BlobError, BlobResult, Spool};
use crate::{Granted, SpoolDir};

/// How many bytes the body stream accepts before the guest must wait for them to be staged.
const BUDGET: usize = 256 * 1024;

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
    spool: Option<Spool>,
    pending: BytesMut,
    /// Bytes accepted so far (staged or pending).
    accepted: u64,
    failed: Option<String>,
}

impl OutgoingValue {
    pub(crate) fn new(spool_dir: SpoolDir) -> Self {
        let body = Body { spool_dir, spool: None, pending: BytesMut::new(), accepted: 0, failed: None };
        OutgoingValue { body: Arc::new(tokio::sync::Mutex::new(body)), body_taken: false, target: None }
    }
}

impl Body {
    /// Writes the pending bytes to the spool (creating it on first use).
    async fn stage(&mut self) -> BlobResult<()> {
        if let Some(why) = &self.failed {
            return Err(BlobError(why.clone()));
        }
        let result = self.stage_pending().await;
        if let Err(e) = &result {
            self.failed = Some(e.0.clone());
        }
        result
    }

    async fn stage_pending(&mut self) -> BlobResult<()> {
        if self.spool.is_none() {
            self.spool = Some(self.spool_dir.create().await?);
        }
        let Some(spool) = self.spool.as_mut() else { return Ok(()) };
        if !self.pending.is_empty() {
            let bytes = self.pending.split();
            spool
                .file
                .write_all(&bytes)
                .await
                .map_err(|e| BlobError(format!("cannot stage the value: {}", e.kind())))?;
            spool.size += bytes.len() as u64;
        }
        Ok(())
    }

    /// The whole staged value, positioned at its start.
    pub(crate) async fn finish(&mut self) -> BlobResult<Spool> {
        self.stage().await?;
        let mut spool = self.spool.take().ok_or_else(|| BlobError::new("the value was already finished"))?;
        spool.file.flush().await.map_err(|e| BlobError(format!("cannot stage the value: {}", e.kind())))?;
        spool
            .file
            .seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(|e| BlobError(format!("cannot stage the value: {}", e.kind())))?;
        Ok(spool)
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
        let mut body = self.body()?;
        if let Some(why) = &body.failed {
            return Err(failed(why));
        }
        if body.pending.len() + bytes.len() > BUDGET {
            return Err(StreamError::trap("write exceeded check-write"));
        }
        let max = body.spool_dir.max_object_size;
        if body.accepted + bytes.len() as u64 > max {
            let why = format!("the value is larger than the limit of {max} bytes");
            body.failed = Some(why.clone());
            return Err(failed(why));
        }
        body.accepted += bytes.len() as u64;
        body.pending.extend_from_slice(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Staging happens in `ready`; `finish` stages whatever is left.
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let body = self.body()?;
        if let Some(why) = &body.failed {
            return Err(failed(why));
        }
        Ok(BUDGET.saturating_sub(body.pending.len()))
    }
}

#[async_trait::async_trait]
impl Pollable for BodyStream {
    async fn ready(&mut self) {
        // An error is kept in the body and reported by the next write or check.
        let _ = self.0.lock().await.stage().await;
    }
}
