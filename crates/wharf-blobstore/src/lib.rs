//! `wasi:blobstore@0.2.0-draft` for Wharf (the WASI proposal's tagged draft, the version
//! wasmCloud serves): containers granted per component, kept in a directory (`fs`, the
//! default), in memory (with a quota) or in an S3 bucket (`s3`, a key prefix per container).
//!
//! A component may use only the containers in its [`BlobCtx`]; any other name is refused with
//! "access denied", whether or not it exists. Object names are checked
//! ([`check_object_name`]) before a backend sees them.
//!
//! Values stream both ways with bounded host memory: an `outgoing-value`'s body goes to a temp
//! file ([`SpoolDir`]) and becomes the object on `finish` (after `write-data` named it; a value
//! dropped unfinished is discarded); an `incoming-value` reads the backend through a small
//! buffer.
mod backend;
mod capability;
mod fs;
mod host;
mod memory;
mod s3;
mod stale;
mod streams;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::component::{HasData, Linker, ResourceTable};

pub use backend::{
    Backend, BlobError, BlobResult, BoxFuture, MAX_OBJECT_NAME, ObjectInfo, READ_CHUNK, Reader, SMALL_READ_CHUNK,
    Spool, check_object_name,
};
pub use capability::{BlobGrant, BlobstoreCapability, BlobstoreConfig, StoreConfig};
pub use fs::FsStore;
pub use memory::MemoryStore;
pub use s3::{S3Config, S3Store, Secret};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasi:blobstore/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:blobstore/container.container": crate::host::ContainerHandle,
            "wasi:blobstore/container.stream-object-names": crate::host::ObjectNames,
            "wasi:blobstore/types.outgoing-value": crate::streams::OutgoingValue,
            "wasi:blobstore/types.incoming-value": crate::host::IncomingValue,
        },
    });
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Where outgoing values are staged, and how big one may grow.
#[derive(Clone, Debug)]
pub struct SpoolDir {
    /// The directory (created on first use); best on the same filesystem as `fs` stores, so
    /// that a finished value is published by one rename.
    pub dir: PathBuf,
    /// The most bytes one outgoing value may hold.
    pub max_object_size: u64,
}

impl SpoolDir {
    pub(crate) async fn create(&self) -> BlobResult<Spool> {
        let dir = self.dir.clone();
        let made = tokio::task::spawn_blocking(move || stale::locked_temp(&dir))
            .await
            .map_err(|e| BlobError(e.to_string()))?;
        let temp = made.map_err(|e| {
            tracing::warn!(dir = %self.dir.display(), error = %e, "blobstore spool");
            BlobError(format!("cannot stage the value: {}", e.kind()))
        })?;
        let (file, path) = temp.into_parts();
        Ok(Spool { file: tokio::fs::File::from_std(file), path, size: 0 })
    }
}

/// A granted container: the store that holds it and the store's name (for logs).
#[derive(Clone)]
pub struct Granted {
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// The configured store's name.
    pub store: String,
}

/// How many bytes of stream buffers one component's streams may hold beyond the small ones
/// every stream gets: a stream that finds room here reads ahead [`READ_CHUNK`]s or accepts
/// 1 MiB of writes before waiting; one that does not uses [`SMALL_READ_CHUNK`]s and 256 KiB, so
/// thousands of open streams cannot multiply the large buffers.
pub const STREAM_BUFFER_BUDGET: usize = 16 * 1024 * 1024;

/// The containers one component may use, where values are staged, and the room left for large
/// stream buffers ([`STREAM_BUFFER_BUDGET`]).
#[derive(Clone)]
pub struct BlobCtx {
    containers: BTreeMap<String, Granted>,
    spool: SpoolDir,
    buffers: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for BlobCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.containers.keys()).finish()
    }
}

impl BlobCtx {
    /// No containers: every container call is denied.
    pub fn new(spool: SpoolDir) -> Self {
        BlobCtx {
            containers: BTreeMap::new(),
            spool,
            buffers: Arc::new(tokio::sync::Semaphore::new(STREAM_BUFFER_BUDGET)),
        }
    }

    /// Room for `bytes` of large stream buffers, held until the permit is dropped; `None` when
    /// the component's streams already hold [`STREAM_BUFFER_BUDGET`].
    pub(crate) fn large_buffers(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.buffers.clone().try_acquire_many_owned(u32::try_from(bytes).ok()?).ok()
    }

    /// Lets the component use `container`, kept in `store` (named `store_name`).
    pub fn grant(&mut self, container: impl Into<String>, store_name: impl Into<String>, store: Arc<dyn Backend>) {
        self.containers.insert(container.into(), Granted { backend: store, store: store_name.into() });
    }

    /// The granted container names.
    pub fn containers(&self) -> impl Iterator<Item = &str> {
        self.containers.keys().map(String::as_str)
    }
}

/// A borrowed view of one store's blobstore state, what [`add_to_linker`]'s getter returns.
pub struct Blobstore<'a> {
    ctx: &'a BlobCtx,
    table: &'a mut ResourceTable,
}

impl<'a> Blobstore<'a> {
    /// A view of `ctx`, keeping handles in `table`.
    pub fn new(ctx: &'a BlobCtx, table: &'a mut ResourceTable) -> Self {
        Blobstore { ctx, table }
    }
}

/// Adds `wasi:blobstore@0.2.0-draft` (`blobstore`, `container`, `types`) to an async `linker`
/// that already has `wasi:io`; `getter` returns the view of a store's blobstore state.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> Blobstore<'_>,
) -> wasmtime::Result<()> {
    use bindings::wasi::blobstore;
    blobstore::types::add_to_linker::<T, HasBlobstore>(linker, getter)?;
    blobstore::container::add_to_linker::<T, HasBlobstore>(linker, getter)?;
    blobstore::blobstore::add_to_linker::<T, HasBlobstore>(linker, getter)?;
    Ok(())
}

struct HasBlobstore;

impl HasData for HasBlobstore {
    type Data<'a> = Blobstore<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_stream_buffers_are_capped_per_component() {
        let ctx = BlobCtx::new(SpoolDir { dir: PathBuf::from("/nonexistent"), max_object_size: 1 });
        let shared = ctx.clone();
        let mut held: Vec<_> = std::iter::from_fn(|| ctx.large_buffers(3 * READ_CHUNK)).take(100).collect();
        assert_eq!(held.len(), STREAM_BUFFER_BUDGET / (3 * READ_CHUNK));
        held.extend(shared.large_buffers(STREAM_BUFFER_BUDGET % (3 * READ_CHUNK)));
        assert!(ctx.large_buffers(1).is_none(), "a clone (another instance) shares the budget");
        held.pop();
        assert!(shared.large_buffers(1).is_some(), "a dropped stream gives its room back");
    }
}
