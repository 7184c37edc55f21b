//! `wasi:keyvalue@0.2.0-draft2`: store, atomics (increment, CAS), batch.
use wasmtime::component::Resource;

use crate::bindings::draft2::wasi::keyvalue::{atomics, batch, store};
use crate::{Bucket, Cas, KeyValue};

version_common!();

impl store::HostBucket for KeyValue<'_> {
    bucket_methods!();

    async fn list_keys(&mut self, bucket: Resource<Bucket>, cursor: Option<String>) -> Result<store::KeyResponse> {
        let b = self.bucket(&bucket)?;
        let page = b.store.list_keys(&b.name, cursor.as_deref()).await;
        Ok(other(page.map(|p| store::KeyResponse { keys: p.keys, cursor: p.cursor })))
    }
}

impl atomics::Host for KeyValue<'_> {
    async fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: i64) -> Result<i64> {
        let b = self.bucket(&bucket)?;
        Ok(other(b.store.increment(&b.name, &key, delta).await))
    }

    async fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let cas = self.table.delete(cas)?;
        let Bucket { name, store } = &cas.bucket;
        match store.compare_and_swap(name, &cas.key, cas.current.as_deref(), &value).await {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                // The value changed since the handle was made: hand back a fresh one to retry.
                let current = match store.get(name, &cas.key).await {
                    Ok(current) => current,
                    Err(e) => return Ok(Err(atomics::CasError::StoreError(store::Error::Other(e.0)))),
                };
                let retry = self.table.push(Cas { current, ..cas })?;
                Ok(Err(atomics::CasError::CasFailed(retry)))
            }
            Err(e) => Ok(Err(atomics::CasError::StoreError(store::Error::Other(e.0)))),
        }
    }
}

impl atomics::HostCas for KeyValue<'_> {
    async fn new(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Resource<Cas>> {
        let bucket = self.bucket(&bucket)?;
        let current = match bucket.store.get(&bucket.name, &key).await {
            Ok(current) => current,
            Err(e) => return Ok(Err(store::Error::Other(e.0))),
        };
        Ok(Ok(self.table.push(Cas { bucket, key, current })?))
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KeyValue<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        let b = self.bucket(&bucket)?;
        let values = b.store.get_many(&b.name, &keys).await;
        Ok(other(values.map(|values| keys.into_iter().zip(values).collect())))
    }

    batch_writes!();
}
