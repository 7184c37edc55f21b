//! `wasi:keyvalue@0.2.0-draft2`: store, atomics (increment, CAS), batch.
use wasmtime::component::Resource;

use crate::bindings::draft2::wasi::keyvalue::{atomics, batch, store};
use crate::{Bucket, Cas, KeyValue, KvError};

type Result<T, E = store::Error> = wasmtime::Result<std::result::Result<T, E>>;

fn convert<T>(result: std::result::Result<T, KvError>) -> std::result::Result<T, store::Error> {
    result.map_err(|e| match e {
        KvError::AccessDenied => store::Error::AccessDenied,
        KvError::Other(message) => store::Error::Other(message),
    })
}

impl store::Host for KeyValue<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>> {
        Ok(convert(KeyValue::open(self, identifier)))
    }
}

impl store::HostBucket for KeyValue<'_> {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>> {
        let b = self.bucket(&bucket)?;
        Ok(convert(b.store.get(&b.name, &key).await.map_err(Into::into)))
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Result<()> {
        let b = self.bucket(&bucket)?;
        Ok(convert(b.store.set(&b.name, &key, &value).await.map_err(Into::into)))
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<()> {
        let b = self.bucket(&bucket)?;
        Ok(convert(b.store.delete(&b.name, &key).await.map_err(Into::into)))
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool> {
        let b = self.bucket(&bucket)?;
        Ok(convert(b.store.exists(&b.name, &key).await.map_err(Into::into)))
    }

    async fn list_keys(&mut self, bucket: Resource<Bucket>, cursor: Option<String>) -> Result<store::KeyResponse> {
        let b = self.bucket(&bucket)?;
        let page = b.store.list_keys(&b.name, cursor.as_deref()).await;
        Ok(convert(page.map(|p| store::KeyResponse { keys: p.keys, cursor: p.cursor }).map_err(Into::into)))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValue<'_> {
    async fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: i64) -> Result<i64> {
        let b = self.bucket(&bucket)?;
        Ok(convert(b.store.increment(&b.name, &key, delta).await.map_err(Into::into)))
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
        Ok(convert(values.map(|values| keys.into_iter().zip(values).collect()).map_err(Into::into)))
    }

    async fn set_many(&mut self, bucket: Resource<Bucket>, key_values: Vec<(String, Vec<u8>)>) -> Result<()> {
        let b = self.bucket(&bucket)?;
        Ok(convert(b.store.set_many(&b.name, &key_values).await.map_err(Into::into)))
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Result<()> {
        let b = self.bucket(&bucket)?;
        Ok(convert(b.store.delete_many(&b.name, &keys).await.map_err(Into::into)))
    }
}
