//! The in-memory store: a map per bucket, gone when the process ends. For tests and scratch data.
//! Its keys and values count against a quota ([`DEFAULT_MEMORY_QUOTA`] unless configured), so
//! guests cannot grow the host's memory through it without bound.
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use crate::backend::{Backend, BoxFuture, KeyPage, LIST_PAGE_SIZE, StoreError, StoreResult, add_to_counter};

/// The bytes (keys plus values) a memory store holds at most unless configured otherwise.
pub const DEFAULT_MEMORY_QUOTA: u64 = 64 * 1024 * 1024;

/// A process-local store (`type = "memory"`).
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    quota: u64,
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<String, BTreeMap<String, Vec<u8>>>,
    // Bytes of every key and value held.
    used: u64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_quota(DEFAULT_MEMORY_QUOTA)
    }
}

/// What `key` = `value` costs against the quota.
fn cost(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl MemoryStore {
    /// An empty store with the default quota.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that holds at most `quota` bytes of keys and values.
    pub fn with_quota(quota: u64) -> Self {
        MemoryStore { state: Mutex::default(), quota }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a map half-updated, so poisoning is moot.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_bucket<R>(&self, bucket: &str, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> R) -> R {
        f(self.lock().buckets.entry(bucket.to_owned()).or_default())
    }

    /// Stores `key` = `value` if the quota allows it (counting the value it replaces as freed).
    fn put(&self, state: &mut State, bucket: &str, key: &str, value: Vec<u8>) -> StoreResult<()> {
        let map = state.buckets.entry(bucket.to_owned()).or_default();
        let freed = map.get(key).map_or(0, |old| cost(key, old));
        let used = state.used - freed + cost(key, &value);
        if used > self.quota {
            return Err(StoreError::new(format!("the memory store is full (its quota is {} bytes)", self.quota)));
        }
        map.insert(key.to_owned(), value);
        state.used = used;
        Ok(())
    }
}

impl Backend for MemoryStore {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        let value = self.with_bucket(bucket, |map| map.get(key).cloned());
        Box::pin(async move { Ok(value) })
    }

    fn set<'a>(&'a self, bucket: &'a str, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        let result = self.put(&mut self.lock(), bucket, key, value.to_vec());
        Box::pin(async move { result })
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        let mut state = self.lock();
        if let Some(old) = state.buckets.get_mut(bucket).and_then(|map| map.remove(key)) {
            state.used -= cost(key, &old);
        }
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
        let mut state = self.lock();
        let current = state.buckets.get(bucket).and_then(|map| map.get(key)).map(Vec::as_slice);
        let result = add_to_counter(key, current, delta)
            .and_then(|new| self.put(&mut state, bucket, key, new.to_string().into_bytes()).map(|()| new));
        Box::pin(async move { result })
    }

    fn compare_and_swap<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expected: Option<&'a [u8]>,
        value: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let mut state = self.lock();
        let result = if state.buckets.get(bucket).and_then(|map| map.get(key)).map(Vec::as_slice) != expected {
            Ok(false)
        } else {
            self.put(&mut state, bucket, key, value.to_vec()).map(|()| true)
        };
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_quota_counts_keys_and_values_and_frees_on_delete() {
        let store = MemoryStore::with_quota(100);
        store.set("b", "k1", &[0; 40]).await.unwrap();
        store.set("c", "k2", &[0; 40]).await.unwrap();
        let full = store.set("b", "k3", &[0; 40]).await.unwrap_err();
        assert!(full.0.contains("quota is 100 bytes"), "{full}");
        assert_eq!(store.get("b", "k3").await.unwrap(), None, "nothing stored past the quota");
        // Replacing a value counts only the difference; deleting frees.
        store.set("b", "k1", &[1; 50]).await.unwrap();
        assert!(store.compare_and_swap("b", "k1", Some(&[1; 50]), &[2; 70]).await.is_err());
        store.delete("c", "k2").await.unwrap();
        store.set("b", "k3", &[0; 40]).await.unwrap();
        assert!(store.increment("b", "n", 1).await.is_ok());
    }
}
