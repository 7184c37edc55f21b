//! The embedded store: one redb file, one table per bucket. The default backend.
//!
//! The file is opened on first use in redb's multi-writer mode, so several wharf processes can
//! share it: each write (set, increment, compare-and-swap) is its own transaction, committed
//! durably before the call returns, and write transactions are serialised across processes by
//! redb's file locks. A process killed mid-write leaves the last committed state.
//!
//! Writes wait for their commit's fsync, so they run on tokio's blocking pool. Reads run on the
//! calling thread: a read transaction is a B-tree walk over cached pages, a few microseconds,
//! while the hop to a blocking thread and back cost several times that (gets ran at a quarter
//! of native redb's rate; BENCHMARKS.md). The one wait a read can meet is a commit holding the
//! file's header lock through its fsync, so while a write of this process is in flight reads
//! take the blocking pool too; a commit by another process sharing the file can still delay a
//! read by that one header flush.
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use crate::backend::{Backend, BoxFuture, KeyPage, LIST_PAGE_SIZE, StoreError, StoreResult, add_to_counter};

/// A store in a redb file (`type = "redb"`).
pub struct RedbStore {
    name: String,
    path: PathBuf,
    db: Mutex<Option<Arc<Database>>>,
    /// This process's writes to the file that have not finished (queued or committing).
    writes: Arc<AtomicUsize>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").field("name", &self.name).field("path", &self.path).finish()
    }
}

fn table_name(bucket: &str) -> String {
    format!("bucket:{bucket}")
}

impl RedbStore {
    /// The store `name` (for messages) in the file at `path`, created (with its directory) on
    /// first use.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        RedbStore { name: name.into(), path: path.into(), db: Mutex::new(None), writes: Arc::default() }
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The guest learns the store and the cause; the file's path goes only to wharf's log.
    fn error(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        tracing::error!(store = %self.name, path = %self.path.display(), "key-value store failed: {what}: {e}");
        StoreError::new(format!("redb store `{}`: {what}: {e}", self.name))
    }

    fn database(&self) -> StoreResult<Arc<Database>> {
        let mut slot = self.db.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = &*slot {
            return Ok(db.clone());
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| self.error("cannot create its directory", e))?;
        }
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .create(&self.path)
            .map_err(|e| self.error("cannot open", e))?;
        let db = Arc::new(db);
        *slot = Some(db.clone());
        tracing::debug!(store = %self.name, path = %self.path.display(), "opened redb store");
        Ok(db)
    }

    /// Runs `f` on a blocking thread with the open database.
    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<R, redb::Error> + Send + 'static,
    ) -> StoreResult<R> {
        let db = self.database()?;
        let result = tokio::task::spawn_blocking(move || f(&db)).await;
        match result {
            Ok(result) => result.map_err(|e| self.error("operation failed", e)),
            Err(e) => Err(self.error("operation failed", e)),
        }
    }

    /// Reads with `f` in a read transaction; a bucket never written to reads as empty. On the
    /// calling thread unless a write of this process is in flight (see the module docs).
    async fn read<R: Send + 'static>(
        &self,
        bucket: &str,
        empty: R,
        f: impl FnOnce(&redb::ReadOnlyTable<&str, &[u8]>) -> Result<R, redb::Error> + Send + 'static,
    ) -> StoreResult<R> {
        let table = table_name(bucket);
        let read = move |db: &Database| {
            let txn = db.begin_read()?;
            match txn.open_table(TableDefinition::<&str, &[u8]>::new(&table)) {
                Ok(t) => f(&t),
                Err(TableError::TableDoesNotExist(_)) => Ok(empty),
                Err(e) => Err(e.into()),
            }
        };
        if self.writes.load(Ordering::Acquire) == 0 {
            let db = self.database()?;
            return read(&db).map_err(|e| self.error("operation failed", e));
        }
        self.blocking(read).await
    }

    /// Runs `f` in a write transaction, committed if `f` returns `(true, _)`.
    async fn write<R: Send + 'static>(
        &self,
        bucket: &str,
        f: impl FnOnce(&mut redb::Table<&str, &[u8]>) -> Result<(bool, R), redb::Error> + Send + 'static,
    ) -> StoreResult<R> {
        let table = table_name(bucket);
        // Counted until the closure is done or dropped, even if this future is dropped first
        // (the blocking task still commits).
        let in_flight = InFlight::new(&self.writes);
        self.blocking(move |db| {
            let _in_flight = in_flight;
            let txn = db.begin_write()?;
            let (commit, result) = {
                let mut t = txn.open_table(TableDefinition::<&str, &[u8]>::new(&table))?;
                f(&mut t)?
            };
            if commit {
                txn.commit()?;
            } else {
                txn.abort()?;
            }
            Ok(result)
        })
        .await
    }
}

/// One write counted in [`RedbStore::writes`] while this lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(writes: &Arc<AtomicUsize>) -> Self {
        writes.fetch_add(1, Ordering::AcqRel);
        InFlight(writes.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Backend for RedbStore {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        let key = key.to_owned();
        Box::pin(self.read(bucket, None, move |t| Ok(t.get(key.as_str())?.map(|v| v.value().to_vec()))))
    }

    fn set<'a>(&'a self, bucket: &'a str, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        let (key, value) = (key.to_owned(), value.to_vec());
        Box::pin(self.write(bucket, move |t| {
            t.insert(key.as_str(), value.as_slice())?;
            Ok((true, ()))
        }))
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        let key = key.to_owned();
        Box::pin(self.write(bucket, move |t| {
            let removed = t.remove(key.as_str())?.is_some();
            Ok((removed, ()))
        }))
    }

    fn exists<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        let key = key.to_owned();
        Box::pin(self.read(bucket, false, move |t| Ok(t.get(key.as_str())?.is_some())))
    }

    fn list_keys<'a>(&'a self, bucket: &'a str, cursor: Option<&'a str>) -> BoxFuture<'a, StoreResult<KeyPage>> {
        let cursor = cursor.map(str::to_owned);
        Box::pin(self.read(bucket, KeyPage::default(), move |t| {
            let start = cursor.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let mut keys = Vec::new();
            for entry in t.range::<&str>((start, Bound::Unbounded))?.take(LIST_PAGE_SIZE + 1) {
                keys.push(entry?.0.value().to_owned());
            }
            let more = keys.len() > LIST_PAGE_SIZE;
            keys.truncate(LIST_PAGE_SIZE);
            let cursor = if more { keys.last().cloned() } else { None };
            Ok(KeyPage { keys, cursor })
        }))
    }

    fn increment<'a>(&'a self, bucket: &'a str, key: &'a str, delta: i64) -> BoxFuture<'a, StoreResult<i64>> {
        let key = key.to_owned();
        Box::pin(async move {
            self.write(bucket, move |t| {
                let current = t.get(key.as_str())?.map(|v| v.value().to_vec());
                match add_to_counter(&key, current.as_deref(), delta) {
                    Ok(new) => {
                        t.insert(key.as_str(), new.to_string().as_bytes())?;
                        Ok((true, Ok(new)))
                    }
                    Err(e) => Ok((false, Err(e))),
                }
            })
            .await?
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expected: Option<&'a [u8]>,
        value: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let (key, expected, value) = (key.to_owned(), expected.map(<[u8]>::to_vec), value.to_vec());
        Box::pin(self.write(bucket, move |t| {
            let matches = t.get(key.as_str())?.map(|v| v.value().to_vec()) == expected;
            if matches {
                t.insert(key.as_str(), value.as_slice())?;
            }
            Ok((matches, matches))
        }))
    }

    fn get_many<'a>(&'a self, bucket: &'a str, keys: &'a [String]) -> BoxFuture<'a, StoreResult<Vec<Option<Vec<u8>>>>> {
        let keys = keys.to_vec();
        let empty = vec![None; keys.len()];
        Box::pin(self.read(bucket, empty, move |t| {
            keys.iter().map(|k| Ok(t.get(k.as_str())?.map(|v| v.value().to_vec()))).collect()
        }))
    }

    fn set_many<'a>(&'a self, bucket: &'a str, pairs: &'a [(String, Vec<u8>)]) -> BoxFuture<'a, StoreResult<()>> {
        let pairs = pairs.to_vec();
        Box::pin(self.write(bucket, move |t| {
            for (key, value) in &pairs {
                t.insert(key.as_str(), value.as_slice())?;
            }
            Ok((true, ()))
        }))
    }

    fn delete_many<'a>(&'a self, bucket: &'a str, keys: &'a [String]) -> BoxFuture<'a, StoreResult<()>> {
        let keys = keys.to_vec();
        Box::pin(self.write(bucket, move |t| {
            for key in &keys {
                t.remove(key.as_str())?;
            }
            Ok((true, ()))
        }))
    }
}
