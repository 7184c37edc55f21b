//! The [`Backend`] trait every store implements, and the error it returns.
use std::future::Future;
use std::pin::Pin;

/// A boxed future, so that [`Backend`] can be used as `Arc<dyn Backend>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many keys one `list-keys` call returns at most (the guest pages with the cursor).
pub const LIST_PAGE_SIZE: usize = 100;

/// A store operation that failed. The message names the store and the cause; it is what the
/// guest receives in `error::other`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl StoreError {
    /// An error with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        StoreError(message.into())
    }
}

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// One page of `list-keys`: the keys and the cursor for the next page (`None` at the end).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys of this page.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` when there are no more keys.
    pub cursor: Option<String>,
}

/// A key-value store holding any number of buckets (each its own key space).
///
/// Counters (`increment`) are stored as the decimal text of an `i64`, as Redis does, so a
/// counter written through one backend reads the same through any other. `compare_and_swap`
/// compares values, not versions.
pub trait Backend: Send + Sync + 'static {
    /// The value of `key`, if any.
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>>;

    /// Sets `key` to `value`.
    fn set<'a>(&'a self, bucket: &'a str, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, StoreResult<()>>;

    /// Removes `key`; removing a missing key is not an error.
    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>>;

    /// Whether `key` has a value.
    fn exists<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move { Ok(self.get(bucket, key).await?.is_some()) })
    }

    /// Up to about [`LIST_PAGE_SIZE`] keys, starting after `cursor` (a cursor this backend
    /// returned earlier, or `None` for the first page).
    fn list_keys<'a>(&'a self, bucket: &'a str, cursor: Option<&'a str>) -> BoxFuture<'a, StoreResult<KeyPage>>;

    /// Atomically adds `delta` to the counter at `key` (missing = 0) and returns the new value.
    fn increment<'a>(&'a self, bucket: &'a str, key: &'a str, delta: i64) -> BoxFuture<'a, StoreResult<i64>>;

    /// Atomically sets `key` to `value` if its current value is `expected` (`None` = absent).
    /// Returns whether the swap happened.
    fn compare_and_swap<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expected: Option<&'a [u8]>,
        value: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<bool>>;

    /// The values of `keys`, in order.
    fn get_many<'a>(&'a self, bucket: &'a str, keys: &'a [String]) -> BoxFuture<'a, StoreResult<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(self.get(bucket, key).await?);
            }
            Ok(values)
        })
    }

    /// Sets every pair (not atomically as a whole).
    fn set_many<'a>(&'a self, bucket: &'a str, pairs: &'a [(String, Vec<u8>)]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            for (key, value) in pairs {
                self.set(bucket, key, value).await?;
            }
            Ok(())
        })
    }

    /// Removes every key (not atomically as a whole).
    fn delete_many<'a>(&'a self, bucket: &'a str, keys: &'a [String]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            for key in keys {
                self.delete(bucket, key).await?;
            }
            Ok(())
        })
    }
}

/// Parses a stored counter (decimal `i64` text) and adds `delta`, as every backend must.
pub(crate) fn add_to_counter(key: &str, current: Option<&[u8]>, delta: i64) -> StoreResult<i64> {
    let current = match current {
        None => 0,
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .ok_or_else(|| StoreError::new(format!("the value of `{key}` is not an integer counter")))?,
    };
    current.checked_add(delta).ok_or_else(|| StoreError::new(format!("incrementing `{key}` overflows an s64")))
}
