//! Limits on what a guest may store, applied to every bucket whatever its backend (see
//! [`KeyValueCtx::grant`](crate::KeyValueCtx::grant)): keys of at most [`MAX_KEY_BYTES`] and
//! values of at most [`MAX_VALUE_BYTES`], as Spin has them. Without them a guest could write
//! values as large as its memory into a shared store, and keys that Redis and redb keep in full.
use std::sync::Arc;

use crate::backend::{Backend, BoxFuture, KeyPage, StoreError, StoreResult};

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// The largest value, in bytes (1 MiB).
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// A backend whose keys and values are checked against the limits before it sees them.
pub(crate) struct Bounded(pub(crate) Arc<dyn Backend>);

fn key(key: &str) -> StoreResult<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::new(format!("a key is {} bytes, more than the limit of {MAX_KEY_BYTES}", key.len())));
    }
    Ok(())
}

fn value(value: &[u8]) -> StoreResult<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::new(format!(
            "a value is {} bytes, more than the limit of {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

fn keys(keys: &[String]) -> StoreResult<()> {
    keys.iter().try_for_each(|k| key(k))
}

/// `check` first, then `then` (a backend call) only if it passed.
fn checked<'a, T: Send + 'a>(
    check: StoreResult<()>,
    then: impl FnOnce() -> BoxFuture<'a, StoreResult<T>>,
) -> BoxFuture<'a, StoreResult<T>> {
    match check {
        Ok(()) => then(),
        Err(e) => Box::pin(async move { Err(e) }),
    }
}

impl Backend for Bounded {
    fn get<'a>(&'a self, bucket: &'a str, k: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        checked(key(k), || self.0.get(bucket, k))
    }

    fn set<'a>(&'a self, bucket: &'a str, k: &'a str, v: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        checked(key(k).and_then(|()| value(v)), || self.0.set(bucket, k, v))
    }

    fn delete<'a>(&'a self, bucket: &'a str, k: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        checked(key(k), || self.0.delete(bucket, k))
    }

    fn exists<'a>(&'a self, bucket: &'a str, k: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        checked(key(k), || self.0.exists(bucket, k))
    }

    fn list_keys<'a>(&'a self, bucket: &'a str, cursor: Option<&'a str>) -> BoxFuture<'a, StoreResult<KeyPage>> {
        self.0.list_keys(bucket, cursor)
    }

    fn increment<'a>(&'a self, bucket: &'a str, k: &'a str, delta: i64) -> BoxFuture<'a, StoreResult<i64>> {
        checked(key(k), || self.0.increment(bucket, k, delta))
    }

    fn compare_and_swap<'a>(
        &'a self,
        bucket: &'a str,
        k: &'a str,
        expected: Option<&'a [u8]>,
        v: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<bool>> {
        checked(key(k).and_then(|()| value(v)), || self.0.compare_and_swap(bucket, k, expected, v))
    }

    fn get_many<'a>(&'a self, bucket: &'a str, ks: &'a [String]) -> BoxFuture<'a, StoreResult<Vec<Option<Vec<u8>>>>> {
        checked(keys(ks), || self.0.get_many(bucket, ks))
    }

    fn set_many<'a>(&'a self, bucket: &'a str, pairs: &'a [(String, Vec<u8>)]) -> BoxFuture<'a, StoreResult<()>> {
        let check = pairs.iter().try_for_each(|(k, v)| key(k).and_then(|()| value(v)));
        checked(check, || self.0.set_many(bucket, pairs))
    }

    fn delete_many<'a>(&'a self, bucket: &'a str, ks: &'a [String]) -> BoxFuture<'a, StoreResult<()>> {
        checked(keys(ks), || self.0.delete_many(bucket, ks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn keys_and_values_over_the_limits_are_refused_before_the_store() {
        let store = Arc::new(MemoryStore::new());
        let bounded = Bounded(store.clone());
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        assert!(bounded.set("b", &long, b"v").await.unwrap_err().0.contains("257 bytes"));
        assert!(bounded.set("b", "k", &big).await.is_err());
        assert!(bounded.set_many("b", &[("a".into(), b"1".to_vec()), ("k".into(), big.clone())]).await.is_err());
        assert!(bounded.compare_and_swap("b", "k", None, &big).await.is_err());
        assert!(bounded.increment("b", &long, 1).await.is_err());
        assert!(bounded.get_many("b", std::slice::from_ref(&long)).await.is_err());
        assert_eq!(store.list_keys("b", None).await.unwrap().keys, Vec::<String>::new(), "nothing was stored");
        bounded.set("b", &"k".repeat(MAX_KEY_BYTES), &vec![1u8; MAX_VALUE_BYTES]).await.unwrap();
    }
}
