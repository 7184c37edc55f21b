//! The in-memory store: a map per bucket, gone when the process ends. For tests and scratch data.
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use crate::backend::{Backend, BoxFuture, KeyPage, LIST_PAGE_SIZE, StoreResult, add_to_counter};

/// A process-local store (`type = "memory"`).
#[derive(Debug, Default)]
pub struct MemoryStore {
    buckets: Mutex<HashMap<String, BTreeMap<String, Vec<u8>>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, BTreeMap<String, Vec<u8>>>> {
        // A panic while holding the lock cannot leave a map half-updated, so poisoning is moot.
        self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_bucket<R>(&self, bucket: &str, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> R) -> R {
        f(self.lock().entry(bucket.to_owned()).or_default())
    }
}

impl Backend for MemoryStore {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        let value = self.with_bucket(bucket, |map| map.get(key).cloned());
        Box::pin(async move { Ok(value) })
    }

    fn set<'a>(&'a self, bucket: &'a str, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        self.with_bucket(bucket, |map| map.insert(key.to_owned(), value.to_vec()));
        Box::pin(async move { Ok(()) })
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        self.with_bucket(bucket, |map| map.remove(key));
        Box::pin(async move { Ok(()) })
    }

    fn list_keys<'a>(&'a self, bucket: &'a str, cursor: Option<&'a str>) -> BoxFuture<'a, StoreResult<KeyPage>> {
        let page = self.with_bucket(bucket, |map| {
            let start = cursor.map_or(Bound::Unbounded, |c| Bound::Excluded(c.to_owned()));
            let mut keys: Vec<String> =
                map.range((start, Bound::Unbounded)).take(LIST_PAGE_SIZE + 1).map(|(k, _)| k.clone()).collect();
            let more = keys.len() > LIST_PAGE_SIZE;
            keys.truncate(LIST_PAGE_SIZE);
            let cursor = if more { keys.last().cloned() } else { None };
            KeyPage { keys, cursor }
        });
        Box::pin(async move { Ok(page) })
    }

    fn increment<'a>(&'a self, bucket: &'a str, key: &'a str, delta: i64) -> BoxFuture<'a, StoreResult<i64>> {
        let result = self.with_bucket(bucket, |map| {
            let new = add_to_counter(key, map.get(key).map(Vec::as_slice), delta)?;
            map.insert(key.to_owned(), new.to_string().into_bytes());
            Ok(new)
        });
        Box::pin(async move { result })
    }

    fn compare_and_swap<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expected: Option<&'a [u8]>,
        value: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let swapped = self.with_bucket(bucket, |map| {
            if map.get(key).map(Vec::as_slice) != expected {
                return false;
            }
            map.insert(key.to_owned(), value.to_vec());
            true
        });
        Box::pin(async move { Ok(swapped) })
    }
}
