//! `wasi:keyvalue@0.2.0-draft`, the older draft: `u64` increment, no CAS, numeric cursor.
use wasmtime::component::Resource;

use crate::bindings::draft::wasi::keyvalue::{atomics, batch, store};
use crate::{Bucket, KeyValue};

version_common!();

impl store::HostBucket for KeyValue<'_> {
    bucket_methods!();

    /// Up to [`DRAFT_PAGE_SIZE`] keys from offset `cursor` on, and the offset of the next page
    /// when there are more. This draft's cursor is a number, so the backend's pages are walked
    /// from the start. A bucket of at most [`DRAFT_SORTED_KEYS`] keys is listed sorted and
    /// without the duplicates a Redis SCAN may return (stable offsets); a larger one in the
    /// backend's order, counted, keeping only the page returned (memory and redb list in key
    /// order; with Redis, keys written between calls may be repeated or missed). Before, every
    /// key of the bucket was gathered in host memory on each call.
    async fn list_keys(&mut self, bucket: Resource<Bucket>, cursor: Option<u64>) -> Result<store::KeyResponse> {
        let b = self.bucket(&bucket)?;
        let skip = cursor.unwrap_or(0);
        let mut walked = Vec::new();
        let mut next: Option<String> = None;
        loop {
            match b.store.list_keys(&b.name, next.as_deref()).await {
                Ok(page) => {
                    walked.extend(page.keys);
                    next = page.cursor;
                }
                Err(e) => return Ok(Err(store::Error::Other(e.0))),
            }
            if next.is_none() || walked.len() > DRAFT_SORTED_KEYS {
                break;
            }
        }
        if next.is_none() {
            walked.sort();
            walked.dedup();
            let start = usize::try_from(skip).unwrap_or(usize::MAX).min(walked.len());
            let end = start.saturating_add(DRAFT_PAGE_SIZE).min(walked.len());
            let cursor = (end < walked.len()).then_some(end as u64);
            return Ok(Ok(store::KeyResponse { keys: walked.drain(start..end).collect(), cursor }));
        }
        let mut page = Page { skip, seen: 0, keys: Vec::new() };
        if page.take(walked) {
            return Ok(Ok(page.response(true)));
        }
        while let Some(cursor) = next {
            match b.store.list_keys(&b.name, Some(&cursor)).await {
                Ok(more) => {
                    if page.take(more.keys) {
                        return Ok(Ok(page.response(true)));
                    }
                    next = more.cursor;
                }
                Err(e) => return Ok(Err(store::Error::Other(e.0))),
            }
        }
        Ok(Ok(page.response(false)))
    }
}

/// The page of a large bucket's walk that one `list-keys` call returns.
struct Page {
    skip: u64,
    seen: u64,
    keys: Vec<String>,
}

impl Page {
    /// Counts the walk's next keys, keeping those of the page; true once a key past the page
    /// is seen (there are more).
    fn take(&mut self, keys: Vec<String>) -> bool {
        for key in keys {
            if self.keys.len() == DRAFT_PAGE_SIZE {
                return true;
            }
            if self.seen >= self.skip {
                self.keys.push(key);
            }
            self.seen += 1;
        }
        false
    }

    fn response(self, more: bool) -> store::KeyResponse {
        store::KeyResponse { cursor: more.then_some(self.seen), keys: self.keys }
    }
}

/// Buckets of at most this many keys are listed sorted (see `list-keys`).
pub const DRAFT_SORTED_KEYS: usize = 10_000;

/// The most keys one `list-keys` of this draft returns.
pub const DRAFT_PAGE_SIZE: usize = 1_000;

impl atomics::Host for KeyValue<'_> {
    async fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: u64) -> Result<u64> {
        let b = self.bucket(&bucket)?;
        let Ok(delta) = i64::try_from(delta) else {
            return Ok(Err(store::Error::Other(format!("increment delta {delta} is larger than an s64"))));
        };
        Ok(match b.store.increment(&b.name, &key, delta).await {
            Ok(value) => u64::try_from(value)
                .map_err(|_| store::Error::Other(format!("the counter `{key}` is negative ({value})"))),
            Err(e) => Err(store::Error::Other(e.0)),
        })
    }
}

impl batch::Host for KeyValue<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>> {
        let b = self.bucket(&bucket)?;
        let values = b.store.get_many(&b.name, &keys).await;
        Ok(other(values.map(|values| keys.into_iter().zip(values).map(|(k, v)| Some((k, v?))).collect())))
    }

    batch_writes!();
}
