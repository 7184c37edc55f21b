//! `wasi:keyvalue` for Wharf: buckets granted per component, kept in a redb file (the
//! default), in memory, or in Redis.
//!
//! Two versions are linked, so guests built against either run:
//! - `wasi:keyvalue@0.2.0-draft2` (`store`, `atomics` with the `cas` resource, `batch`): the
//!   current draft, as Spin and upstream `main` define it;
//! - `wasi:keyvalue@0.2.0-draft` (`u64` increment, no CAS, numeric cursor): the older draft
//!   that wasmtime's and wasmCloud's bindings import. Its `list-keys` returns every key from the
//!   numeric cursor (an offset) on, with no further cursor.
//!
//! A component may open only the buckets in its [`KeyValueCtx`]; any other name is
//! `access-denied`, whether or not such a bucket exists. Each bucket lives in a [`Backend`] store
//! (see [`Stores`]); buckets sharing a store have separate key spaces.
//!
//! ```
//! use std::sync::Arc;
//! use wasmtime::component::{Linker, ResourceTable};
//! use wharf_keyvalue::{KeyValue, KeyValueCtx, MemoryStore};
//!
//! struct State {
//!     table: ResourceTable,
//!     keyvalue: KeyValueCtx,
//! }
//!
//! let mut config = wasmtime::Config::new();
//! config.async_support(true);
//! let engine = wasmtime::Engine::new(&config)?;
//! let mut linker = Linker::<State>::new(&engine);
//! wharf_keyvalue::add_to_linker(&mut linker, |s: &mut State| KeyValue::new(&s.keyvalue, &mut s.table))?;
//!
//! let mut keyvalue = KeyValueCtx::new();
//! keyvalue.grant("counters", Arc::new(MemoryStore::new()));
//! let state = State { table: ResourceTable::new(), keyvalue };
//! # let _ = state;
//! # Ok::<(), wasmtime::Error>(())
//! ```
/// What both versions' bindings share, given the version's `store` module in scope: error
/// conversions and `open`.
macro_rules! version_common {
    () => {
        type Result<T, E = store::Error> = wasmtime::Result<std::result::Result<T, E>>;

        fn other<T>(result: crate::StoreResult<T>) -> std::result::Result<T, store::Error> {
            result.map_err(|e| store::Error::Other(e.0))
        }

        impl store::Host for KeyValue<'_> {
            async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>> {
                Ok(KeyValue::open(self, identifier).map_err(|e| match e {
                    crate::KvError::AccessDenied => store::Error::AccessDenied,
                    crate::KvError::Other(message) => store::Error::Other(message),
                }))
            }
        }
    };
}

/// The `bucket` methods both versions share (all but `list-keys`).
macro_rules! bucket_methods {
    () => {
        async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>> {
            let b = self.bucket(&bucket)?;
            Ok(other(b.store.get(&b.name, &key).await))
        }

        async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Result<()> {
            let b = self.bucket(&bucket)?;
            Ok(other(b.store.set(&b.name, &key, &value).await))
        }

        async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<()> {
            let b = self.bucket(&bucket)?;
            Ok(other(b.store.delete(&b.name, &key).await))
        }

        async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool> {
            let b = self.bucket(&bucket)?;
            Ok(other(b.store.exists(&b.name, &key).await))
        }

        async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
            self.table.delete(bucket)?;
            Ok(())
        }
    };
}

/// The batch writes both versions share (`get-many` differs in shape).
macro_rules! batch_writes {
    () => {
        async fn set_many(&mut self, bucket: Resource<Bucket>, key_values: Vec<(String, Vec<u8>)>) -> Result<()> {
            let b = self.bucket(&bucket)?;
            Ok(other(b.store.set_many(&b.name, &key_values).await))
        }

        async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Result<()> {
            let b = self.bucket(&bucket)?;
            Ok(other(b.store.delete_many(&b.name, &keys).await))
        }
    };
}

mod backend;
mod bounded;
mod capability;
mod draft;
mod draft2;
mod memory;
mod redb_store;
mod redis_store;
mod stores;

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

pub use backend::{Backend, BoxFuture, KeyPage, LIST_PAGE_SIZE, StoreError, StoreResult};
pub use bounded::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
pub use capability::{KeyValueCapability, KeyValueConfig, KvGrant};
pub use memory::{DEFAULT_MEMORY_QUOTA, MemoryStore};
pub use redb_store::RedbStore;
pub use redis_store::RedisStore;
pub use stores::{DEFAULT_STORE, StoreConfig, Stores};

mod bindings {
    pub mod draft2 {
        wasmtime::component::bindgen!({
            path: "wit/draft2",
            world: "wasi:keyvalue/imports",
            imports: { default: async | trappable },
            with: {
                "wasi:keyvalue/store.bucket": crate::Bucket,
                "wasi:keyvalue/atomics.cas": crate::Cas,
            },
        });
    }
    pub mod draft {
        wasmtime::component::bindgen!({
            path: "wit/draft",
            world: "wasi:keyvalue/imports",
            imports: { default: async | trappable },
            with: { "wasi:keyvalue/store.bucket": crate::Bucket },
        });
    }
}

/// The buckets one component may open, each with the store that holds it. Cheap to clone (the
/// stores are shared); build one per component and clone it into each instance's state.
#[derive(Clone, Default)]
pub struct KeyValueCtx {
    buckets: BTreeMap<String, Arc<dyn Backend>>,
}

impl std::fmt::Debug for KeyValueCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.buckets.keys()).finish()
    }
}

impl KeyValueCtx {
    /// No buckets: every `open` is `access-denied`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets the component open `bucket`, kept in `store`. Keys and values the guest passes are
    /// held to [`MAX_KEY_BYTES`] and [`MAX_VALUE_BYTES`] before `store` sees them.
    pub fn grant(&mut self, bucket: impl Into<String>, store: Arc<dyn Backend>) -> &mut Self {
        self.buckets.insert(bucket.into(), Arc::new(bounded::Bounded(store)));
        self
    }

    /// The granted bucket names.
    pub fn buckets(&self) -> impl Iterator<Item = &str> {
        self.buckets.keys().map(String::as_str)
    }
}

/// A borrowed view of one store's key-value state, what [`add_to_linker`]'s getter returns.
pub struct KeyValue<'a> {
    ctx: &'a KeyValueCtx,
    table: &'a mut ResourceTable,
}

impl<'a> KeyValue<'a> {
    /// A view of `ctx`, keeping open buckets and CAS handles in `table`.
    pub fn new(ctx: &'a KeyValueCtx, table: &'a mut ResourceTable) -> Self {
        KeyValue { ctx, table }
    }

    fn open(&mut self, name: String) -> Result<Resource<Bucket>, KvError> {
        let Some(store) = self.ctx.buckets.get(&name).cloned() else {
            tracing::debug!(bucket = %name, "key-value bucket denied by policy");
            return Err(KvError::AccessDenied);
        };
        Ok(self.table.push(Bucket { name, store })?)
    }

    fn bucket(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<Bucket> {
        Ok(self.table.get(bucket)?.clone())
    }
}

/// An open bucket (the `bucket` resource of both versions).
#[doc(hidden)]
#[derive(Clone)]
pub struct Bucket {
    name: String,
    store: Arc<dyn Backend>,
}

/// A compare-and-swap in progress (the draft2 `cas` resource): the value seen when it began.
#[doc(hidden)]
pub struct Cas {
    bucket: Bucket,
    key: String,
    current: Option<Vec<u8>>,
}

/// What a key-value call can fail with, before conversion to a version's `error` variant.
enum KvError {
    AccessDenied,
    Other(String),
}

impl From<StoreError> for KvError {
    fn from(e: StoreError) -> Self {
        KvError::Other(e.0)
    }
}

impl From<wasmtime::component::ResourceTableError> for KvError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        KvError::Other(e.to_string())
    }
}

/// Adds `wasi:keyvalue` (both versions listed in the crate docs) to an async `linker`;
/// `getter` returns the view of a store's key-value state.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> KeyValue<'_>,
) -> wasmtime::Result<()> {
    use bindings::{draft, draft2};
    draft2::wasi::keyvalue::store::add_to_linker::<T, HasKeyValue>(linker, getter)?;
    draft2::wasi::keyvalue::atomics::add_to_linker::<T, HasKeyValue>(linker, getter)?;
    draft2::wasi::keyvalue::batch::add_to_linker::<T, HasKeyValue>(linker, getter)?;
    draft::wasi::keyvalue::store::add_to_linker::<T, HasKeyValue>(linker, getter)?;
    draft::wasi::keyvalue::atomics::add_to_linker::<T, HasKeyValue>(linker, getter)?;
    draft::wasi::keyvalue::batch::add_to_linker::<T, HasKeyValue>(linker, getter)?;
    Ok(())
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValue<'a>;
}
