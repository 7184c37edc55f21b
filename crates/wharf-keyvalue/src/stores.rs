//! Named stores chosen by configuration (Spin's runtime-config model): each name maps to a
//! backend `type` with its settings, and a bucket grant names the store that holds it.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::backend::{Backend, StoreError};
use crate::memory::MemoryStore;
use crate::redb_store::RedbStore;
use crate::redis_store::RedisStore;

/// The store a bucket uses when its grant names none.
pub const DEFAULT_STORE: &str = "default";

/// How one named store is provided, as written in a runtime-config file:
///
/// ```toml
/// [keyvalue.stores.default]
/// type = "redb"
/// path = "/var/lib/wharf/kv.redb"
///
/// [keyvalue.stores.shared]
/// type = "redis"
/// url = "redis://127.0.0.1:6379/0"
///
/// [keyvalue.stores.scratch]
/// type = "memory"
/// quota = 67108864   # bytes of keys and values at most (the default, 64 MiB)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// An embedded redb file.
    Redb {
        /// The file; created with its directory on first use.
        path: PathBuf,
    },
    /// A process-local map, lost at exit.
    Memory {
        /// The most bytes its keys and values may hold (default 64 MiB).
        #[serde(default = "default_quota")]
        quota: u64,
    },
    /// A Redis server.
    Redis {
        /// `redis://[user:password@]host[:port][/db]` (or `rediss://`).
        url: String,
    },
}

fn default_quota() -> u64 {
    crate::memory::DEFAULT_MEMORY_QUOTA
}

impl StoreConfig {
    /// Builds the backend; nothing is opened or connected until first use.
    pub fn build(&self, name: &str) -> Result<Arc<dyn Backend>, StoreError> {
        Ok(match self {
            StoreConfig::Redb { path } => Arc::new(RedbStore::new(name, path)),
            StoreConfig::Memory { quota } => Arc::new(MemoryStore::with_quota(*quota)),
            StoreConfig::Redis { url } => Arc::new(RedisStore::new(name, url)?),
        })
    }
}

/// The stores of one process, by name. Build once and share: every component whose policy
/// maps a bucket to the same store shares that store's backend (one redb handle, one Redis
/// connection manager).
#[derive(Clone, Default)]
pub struct Stores {
    stores: BTreeMap<String, Arc<dyn Backend>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.stores.keys()).finish()
    }
}

impl Stores {
    /// The configured stores, plus [`DEFAULT_STORE`] as a redb file at `default_path` unless
    /// `configs` defines it.
    pub fn new(configs: &BTreeMap<String, StoreConfig>, default_path: PathBuf) -> Result<Self, StoreError> {
        let mut stores = Stores::default();
        if !configs.contains_key(DEFAULT_STORE) {
            stores.insert(DEFAULT_STORE, Arc::new(RedbStore::new(DEFAULT_STORE, default_path)));
        }
        for (name, config) in configs {
            stores.insert(name, config.build(name)?);
        }
        Ok(stores)
    }

    /// Adds (or replaces) the store `name`.
    pub fn insert(&mut self, name: &str, backend: Arc<dyn Backend>) -> &mut Self {
        self.stores.insert(name.to_owned(), backend);
        self
    }

    /// The store `name`, if configured.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Backend>> {
        self.stores.get(name).cloned()
    }

    /// The configured store names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.stores.keys().map(String::as_str)
    }
}
