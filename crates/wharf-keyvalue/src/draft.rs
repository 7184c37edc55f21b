//! `wasi:keyvalue@0.2.0-draft`, the older draft: `u64` increment, no CAS, numeric cursor.
use wasmtime::component::Resource;

use crate::bindings::draft::wasi::keyvalue::{atomics, batch, store};
use crate::{Bucket, KeyValue};

version_common!();

impl store::HostBucket for KeyValue<'_> {
    bucket_methods!();

    /// Every key from offset `cursor` on, sorted, in one response (this draft's cursor is a
    /// number, which cannot carry the backends' cursors).
    async fn list_keys(&mut self, bucket: Resource<Bucket>, cursor: Option<u64>) -> Result<store::KeyResponse> {
        let b = self.bucket(&bucket)?;
        let mut keys = Vec::new();
        let mut next: Option<String> = None;
        loop {
            match b.store.list_keys(&b.name, next.as_deref()).await {
                Ok(page) => {
                    keys.extend(page.keys);
                    next = page.cursor;
                }
                Err(e) => return Ok(Err(store::Error::Other(e.0))),
            }
            if next.is_none() {
                break;
            }
        }
        // Sorted (and without the duplicates a Redis SCAN may return) so offsets are stable.
        keys.sort();
        keys.dedup();
        let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX).min(keys.len());
        keys.drain(..skip);
        Ok(Ok(store::KeyResponse { keys, cursor: None }))
    }
}

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
