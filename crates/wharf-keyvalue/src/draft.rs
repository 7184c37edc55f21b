//! `wasi:keyvalue@0.2.0-draft`, the older draft: `u64` increment, no CAS, numeric cursor.
use wasmtime::component::Resource;

use crate::bindings::draft::wasi::keyvalue::{atomics, batch, store};
use crate::{Bucket, KeyValue, KvError, StoreError};

type Result<T> = wasmtime::Result<std::result::Result<T, store::Error>>;

fn convert<T>(result: std::result::Result<T, KvError>) -> std::result::Result<T, store::Error> {
    result.map_err(|e| match e {
        KvError::AccessDenied => store::Error::AccessDenied,
        KvError::Other(message) => store::Error::Other(message),
    })
}

fn other<T>(result: std::result::Result<T, StoreError>) -> std::result::Result<T, store::Error> {
    result.map_err(|e| store::Error::Other(e.0))
}

impl store::Host for KeyValue<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>> {
        Ok(convert(KeyValue::open(self, identifier)))
    }
}

impl store::HostBucket for KeyValue<'_> {
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

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
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

    async fn set_many(&mut self, bucket: Resource<Bucket>, key_values: Vec<(String, Vec<u8>)>) -> Result<()> {
        let b = self.bucket(&bucket)?;
        Ok(other(b.store.set_many(&b.name, &key_values).await))
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Result<()> {
        let b = self.bucket(&bucket)?;
        Ok(other(b.store.delete_many(&b.name, &keys).await))
    }
}
