//! The host side of `blobstore`, `container` and `types`: grants checked, names checked, calls
//! sent to the container's backend. Errors are the WIT's `string`.
use std::sync::Arc;

use futures_util::TryStreamExt;
use tokio::io::AsyncWriteExt;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynInputStream;
use wasmtime_wasi::p2::DynOutputStream;

use crate::backend::{BlobError, BlobResult, READ_CHUNK, Reader, SMALL_READ_CHUNK, check_object_name};
use crate::bindings::wasi::blobstore::types::{ContainerMetadata, ObjectId, ObjectMetadata};
use crate::bindings::wasi::blobstore::{blobstore, container, types};
use crate::streams::{BodyStream, IncomingStream, OutgoingValue, Target};
use crate::{Blobstore, Granted};

type Result<T> = wasmtime::Result<std::result::Result<T, String>>;

/// The most bytes `incoming-value-consume-sync` returns in one list; bigger values must be
/// read as a stream.
const MAX_SYNC_VALUE: u64 = 64 * 1024 * 1024;

/// How many names a listing fetches from the backend at once.
const LIST_PAGE: usize = 1000;

/// An open container (the `container` resource).
pub struct ContainerHandle {
    name: String,
    granted: Granted,
}

/// A listing in progress (the `stream-object-names` resource): pages are fetched from the
/// backend as the guest reads, after the last name returned.
pub struct ObjectNames {
    container: String,
    granted: Granted,
    after: Option<String>,
    done: bool,
}

/// A value being read (the `incoming-value` resource).
pub struct IncomingValue {
    reader: Reader,
    size: u64,
    /// Room in the component's budget for large chunks, if the reader got it.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

fn fail<T>(e: BlobError) -> std::result::Result<T, String> {
    Err(e.0)
}

impl Blobstore<'_> {
    /// The grant for `container`, or "access denied".
    fn granted(&self, container: &str) -> BlobResult<Granted> {
        match self.ctx.containers.get(container) {
            Some(g) => Ok(g.clone()),
            None => {
                tracing::debug!(container, "blobstore container denied by policy");
                Err(BlobError(format!("access denied: container `{container}` is not granted")))
            }
        }
    }

    /// Logs a backend failure with its store (the guest gets the error text).
    fn logged<T>(&self, granted: &Granted, op: &str, result: BlobResult<T>) -> std::result::Result<T, String> {
        result.map_err(|e| {
            tracing::debug!(store = %granted.store, backend = %granted.backend.describe(), op, error = %e, "blobstore call failed");
            e.0
        })
    }

    fn handle(&self, c: &Resource<ContainerHandle>) -> wasmtime::Result<(String, Granted)> {
        let h = self.table.get(c)?;
        Ok((h.name.clone(), h.granted.clone()))
    }

    async fn copy_or_move(
        &mut self,
        src: ObjectId,
        dest: ObjectId,
        remove_source: bool,
    ) -> std::result::Result<(), String> {
        let op = if remove_source { "move-object" } else { "copy-object" };
        let from = self.granted(&src.container).map_err(|e| e.0)?;
        let to = self.granted(&dest.container).map_err(|e| e.0)?;
        check_object_name(&src.object).map_err(|e| e.0)?;
        check_object_name(&dest.object).map_err(|e| e.0)?;
        if Arc::ptr_eq(&from.backend, &to.backend) {
            let result =
                from.backend.copy((&src.container, &src.object), (&dest.container, &dest.object), remove_source).await;
            return self.logged(&from, op, result);
        }
        // Different stores: stream through a spool, then remove the source.
        let result = async {
            if to.backend.container_created(&dest.container).await?.is_none() {
                return Err(BlobError(format!("container `{}` does not exist", dest.container)));
            }
            let info = from.backend.info(&src.container, &src.object).await?.ok_or_else(|| {
                BlobError(format!("object {:?} does not exist in container `{}`", src.object, src.container))
            })?;
            let mut reader = from.backend.read(&src.container, &src.object, 0, info.size, SMALL_READ_CHUNK).await?;
            let mut spool = self.ctx.spool.create().await?;
            let staging = |e: std::io::Error| BlobError(format!("cannot stage the value: {}", e.kind()));
            while let Some(chunk) = reader.try_next().await.map_err(|e| BlobError(format!("read failed: {e}")))? {
                spool.file.write_all(&chunk).await.map_err(staging)?;
                spool.size += chunk.len() as u64;
            }
            spool.file.flush().await.map_err(staging)?;
            tokio::io::AsyncSeekExt::seek(&mut spool.file, std::io::SeekFrom::Start(0)).await.map_err(staging)?;
            to.backend.put(&dest.container, &dest.object, spool).await?;
            if remove_source {
                from.backend.delete(&src.container, &src.object).await?;
            }
            Ok(())
        }
        .await;
        self.logged(&from, op, result)
    }
}

impl blobstore::Host for Blobstore<'_> {
    async fn create_container(&mut self, name: String) -> Result<Resource<ContainerHandle>> {
        let granted = match self.granted(&name) {
            Ok(g) => g,
            Err(e) => return Ok(fail(e)),
        };
        let result = granted.backend.create_container(&name).await;
        if let Err(e) = self.logged(&granted, "create-container", result) {
            return Ok(Err(e));
        }
        Ok(Ok(self.table.push(ContainerHandle { name, granted })?))
    }

    async fn get_container(&mut self, name: String) -> Result<Resource<ContainerHandle>> {
        let granted = match self.granted(&name) {
            Ok(g) => g,
            Err(e) => return Ok(fail(e)),
        };
        let result = granted.backend.container_created(&name).await;
        match self.logged(&granted, "get-container", result) {
            Err(e) => Ok(Err(e)),
            Ok(None) => Ok(Err(format!("container `{name}` does not exist"))),
            Ok(Some(_)) => Ok(Ok(self.table.push(ContainerHandle { name, granted })?)),
        }
    }

    async fn delete_container(&mut self, name: String) -> Result<()> {
        let granted = match self.granted(&name) {
            Ok(g) => g,
            Err(e) => return Ok(fail(e)),
        };
        let result = granted.backend.delete_container(&name).await;
        Ok(self.logged(&granted, "delete-container", result))
    }

    async fn container_exists(&mut self, name: String) -> Result<bool> {
        let granted = match self.granted(&name) {
            Ok(g) => g,
            Err(e) => return Ok(fail(e)),
        };
        let result = granted.backend.container_created(&name).await.map(|c| c.is_some());
        Ok(self.logged(&granted, "container-exists", result))
    }

    async fn copy_object(&mut self, src: ObjectId, dest: ObjectId) -> Result<()> {
        Ok(self.copy_or_move(src, dest, false).await)
    }

    async fn move_object(&mut self, src: ObjectId, dest: ObjectId) -> Result<()> {
        Ok(self.copy_or_move(src, dest, true).await)
    }
}

impl container::Host for Blobstore<'_> {}

impl container::HostContainer for Blobstore<'_> {
    async fn name(&mut self, c: Resource<ContainerHandle>) -> Result<String> {
        Ok(Ok(self.table.get(&c)?.name.clone()))
    }

    async fn info(&mut self, c: Resource<ContainerHandle>) -> Result<ContainerMetadata> {
        let (name, granted) = self.handle(&c)?;
        let result = granted
            .backend
            .container_created(&name)
            .await
            .and_then(|created| created.ok_or_else(|| BlobError(format!("container `{name}` does not exist"))));
        Ok(self.logged(&granted, "info", result).map(|created_at| ContainerMetadata { name, created_at }))
    }

    async fn get_data(
        &mut self,
        c: Resource<ContainerHandle>,
        name: String,
        start: u64,
        end: u64,
    ) -> Result<Resource<IncomingValue>> {
        let (container, granted) = self.handle(&c)?;
        if let Err(e) = check_object_name(&name) {
            return Ok(fail(e));
        }
        let result = async {
            let info = granted.backend.info(&container, &name).await?;
            let info =
                info.ok_or_else(|| BlobError(format!("object {name:?} does not exist in container `{container}`")))?;
            if start > end {
                return Err(BlobError(format!("invalid range: start {start} is after end {end}")));
            }
            // `end` is inclusive; a range past the end is cut at the end.
            let stop = end.saturating_add(1).min(info.size);
            let begin = start.min(stop);
            // Large chunks (read ahead: up to three held) if the component has room for them.
            let size = stop - begin;
            let permit = (size > SMALL_READ_CHUNK as u64).then(|| self.ctx.large_buffers(3 * READ_CHUNK)).flatten();
            let chunk = if permit.is_some() { READ_CHUNK } else { SMALL_READ_CHUNK };
            let reader = granted.backend.read(&container, &name, begin, stop, chunk).await?;
            Ok(IncomingValue { reader, size, permit })
        }
        .await;
        match self.logged(&granted, "get-data", result) {
            Ok(value) => Ok(Ok(self.table.push(value)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn write_data(
        &mut self,
        c: Resource<ContainerHandle>,
        name: String,
        data: Resource<OutgoingValue>,
    ) -> Result<()> {
        let (container, granted) = self.handle(&c)?;
        if let Err(e) = check_object_name(&name) {
            return Ok(fail(e));
        }
        let value = self.table.get_mut(&data)?;
        value.target = Some(Target { granted, container, name });
        Ok(Ok(()))
    }

    async fn list_objects(&mut self, c: Resource<ContainerHandle>) -> Result<Resource<ObjectNames>> {
        let (container, granted) = self.handle(&c)?;
        let result = granted.backend.container_created(&container).await;
        match self.logged(&granted, "list-objects", result) {
            Err(e) => Ok(Err(e)),
            Ok(None) => Ok(Err(format!("container `{container}` does not exist"))),
            Ok(Some(_)) => Ok(Ok(self.table.push(ObjectNames { container, granted, after: None, done: false })?)),
        }
    }

    async fn delete_object(&mut self, c: Resource<ContainerHandle>, name: String) -> Result<()> {
        let (container, granted) = self.handle(&c)?;
        if let Err(e) = check_object_name(&name) {
            return Ok(fail(e));
        }
        let result = granted.backend.delete(&container, &name).await;
        Ok(self.logged(&granted, "delete-object", result))
    }

    async fn delete_objects(&mut self, c: Resource<ContainerHandle>, names: Vec<String>) -> Result<()> {
        let (container, granted) = self.handle(&c)?;
        for name in &names {
            if let Err(e) = check_object_name(name) {
                return Ok(fail(e));
            }
        }
        let result = async {
            for name in &names {
                granted.backend.delete(&container, name).await?;
            }
            Ok(())
        }
        .await;
        Ok(self.logged(&granted, "delete-objects", result))
    }

    async fn has_object(&mut self, c: Resource<ContainerHandle>, name: String) -> Result<bool> {
        let (container, granted) = self.handle(&c)?;
        if let Err(e) = check_object_name(&name) {
            return Ok(fail(e));
        }
        let result = granted.backend.info(&container, &name).await.map(|i| i.is_some());
        Ok(self.logged(&granted, "has-object", result))
    }

    async fn object_info(&mut self, c: Resource<ContainerHandle>, name: String) -> Result<ObjectMetadata> {
        let (container, granted) = self.handle(&c)?;
        if let Err(e) = check_object_name(&name) {
            return Ok(fail(e));
        }
        let result = granted.backend.info(&container, &name).await.and_then(|i| {
            i.ok_or_else(|| BlobError(format!("object {name:?} does not exist in container `{container}`")))
        });
        Ok(self.logged(&granted, "object-info", result).map(|i| ObjectMetadata {
            name,
            container,
            created_at: i.created_at,
            size: i.size,
        }))
    }

    async fn clear(&mut self, c: Resource<ContainerHandle>) -> Result<()> {
        let (container, granted) = self.handle(&c)?;
        let result = async {
            loop {
                let page = granted.backend.list_page(&container, None, LIST_PAGE).await?;
                if page.is_empty() {
                    return Ok(());
                }
                for name in &page {
                    granted.backend.delete(&container, name).await?;
                }
            }
        }
        .await;
        Ok(self.logged(&granted, "clear", result))
    }

    async fn drop(&mut self, c: Resource<ContainerHandle>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl container::HostStreamObjectNames for Blobstore<'_> {
    async fn read_stream_object_names(&mut self, s: Resource<ObjectNames>, len: u64) -> Result<(Vec<String>, bool)> {
        let names = self.table.get(&s)?;
        if names.done || len == 0 {
            return Ok(Ok((Vec::new(), names.done)));
        }
        let (container, granted, after) = (names.container.clone(), names.granted.clone(), names.after.clone());
        let want = usize::try_from(len).unwrap_or(usize::MAX).min(LIST_PAGE);
        let result = granted.backend.list_page(&container, after.as_deref(), want).await;
        let page = match self.logged(&granted, "read-stream-object-names", result) {
            Ok(page) => page,
            Err(e) => return Ok(Err(e)),
        };
        let names = self.table.get_mut(&s)?;
        names.done = page.len() < want;
        names.after = page.last().cloned().or(after);
        Ok(Ok((page, names.done)))
    }

    async fn skip_stream_object_names(&mut self, s: Resource<ObjectNames>, num: u64) -> Result<(u64, bool)> {
        let mut skipped = 0;
        while skipped < num {
            match self.read_stream_object_names(Resource::new_borrow(s.rep()), num - skipped).await? {
                Err(e) => return Ok(Err(e)),
                Ok((page, done)) => {
                    skipped += page.len() as u64;
                    if done {
                        return Ok(Ok((skipped, true)));
                    }
                }
            }
        }
        Ok(Ok((skipped, self.table.get(&s)?.done)))
    }

    async fn drop(&mut self, s: Resource<ObjectNames>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}

impl types::Host for Blobstore<'_> {}

impl types::HostOutgoingValue for Blobstore<'_> {
    async fn new_outgoing_value(&mut self) -> wasmtime::Result<Resource<OutgoingValue>> {
        let permit = self.ctx.large_buffers(crate::streams::BUDGET);
        Ok(self.table.push(OutgoingValue::new(self.ctx.spool.clone(), permit))?)
    }

    async fn outgoing_value_write_body(
        &mut self,
        v: Resource<OutgoingValue>,
    ) -> wasmtime::Result<std::result::Result<Resource<DynOutputStream>, ()>> {
        let value = self.table.get_mut(&v)?;
        if value.body_taken {
            return Ok(Err(()));
        }
        value.body_taken = true;
        let stream: DynOutputStream = Box::new(BodyStream(value.body.clone()));
        // A child: the stream must be dropped before the value is finished or dropped.
        Ok(Ok(self.table.push_child(stream, &v)?))
    }

    async fn finish(&mut self, v: Resource<OutgoingValue>) -> Result<()> {
        let value = self.table.delete(v)?;
        let Some(Target { granted, container, name }) = value.target else {
            return Ok(Err("finish before write-data: the value has no destination".into()));
        };
        let result = async {
            let spool = value.body.lock().await.finish().await?;
            granted.backend.put(&container, &name, spool).await
        }
        .await;
        Ok(self.logged(&granted, "write-data", result))
    }

    async fn drop(&mut self, v: Resource<OutgoingValue>) -> wasmtime::Result<()> {
        // Unfinished: the spool is deleted with it and nothing is written.
        self.table.delete(v)?;
        Ok(())
    }
}

impl types::HostIncomingValue for Blobstore<'_> {
    async fn incoming_value_consume_sync(&mut self, v: Resource<IncomingValue>) -> Result<Vec<u8>> {
        let IncomingValue { mut reader, size, .. } = self.table.delete(v)?;
        if size > MAX_SYNC_VALUE {
            return Ok(Err(format!(
                "the value is {size} bytes, over the {MAX_SYNC_VALUE} bytes consume-sync returns; use consume-async"
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        loop {
            match reader.try_next().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => return Ok(Ok(bytes)),
                Err(e) => return Ok(Err(format!("read failed: {e}"))),
            }
        }
    }

    async fn incoming_value_consume_async(&mut self, v: Resource<IncomingValue>) -> Result<Resource<DynInputStream>> {
        let IncomingValue { reader, permit, .. } = self.table.delete(v)?;
        let stream: DynInputStream = Box::new(IncomingStream::new(reader, permit));
        Ok(Ok(self.table.push(stream)?))
    }

    async fn size(&mut self, v: Resource<IncomingValue>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&v)?.size)
    }

    async fn drop(&mut self, v: Resource<IncomingValue>) -> wasmtime::Result<()> {
        self.table.delete(v)?;
        Ok(())
    }
}
