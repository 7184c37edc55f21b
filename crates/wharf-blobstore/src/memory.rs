//! The `memory` backend: containers in a process-local map, lost at exit, bounded by a quota
//! on the bytes of all objects (staged writes included).
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use crate::backend::{Backend, BlobError, BlobResult, BoxFuture, ObjectInfo, Reader, Spool, once};
use crate::now;

#[derive(Default)]
struct State {
    containers: BTreeMap<String, Container>,
    /// Bytes held by objects plus bytes reserved by writes in progress.
    used: u64,
}

struct Container {
    created_at: u64,
    objects: BTreeMap<String, (Bytes, u64)>,
}

/// A process-local store with a quota.
pub struct MemoryStore {
    quota: u64,
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// An empty store holding at most `quota` bytes.
    pub fn new(quota: u64) -> Self {
        MemoryStore { quota, state: Arc::default() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic elsewhere cannot leave the maps half-updated: every update is one insert/remove.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn missing(container: &str) -> BlobError {
    BlobError(format!("container `{container}` does not exist"))
}

fn no_object(container: &str, name: &str) -> BlobError {
    BlobError(format!("object {name:?} does not exist in container `{container}`"))
}

impl Backend for MemoryStore {
    fn describe(&self) -> String {
        format!("memory (quota {} bytes)", self.quota)
    }

    fn create_container<'a>(&'a self, container: &'a str) -> BoxFuture<'a, BlobResult<()>> {
        let mut s = self.lock();
        s.containers
            .entry(container.to_owned())
            .or_insert_with(|| Container { created_at: now(), objects: BTreeMap::new() });
        Box::pin(async { Ok(()) })
    }

    fn container_created<'a>(&'a self, container: &'a str) -> BoxFuture<'a, BlobResult<Option<u64>>> {
        let created = self.lock().containers.get(container).map(|c| c.created_at);
        Box::pin(async move { Ok(created) })
    }

    fn delete_container<'a>(&'a self, container: &'a str) -> BoxFuture<'a, BlobResult<()>> {
        let mut s = self.lock();
        if let Some(c) = s.containers.remove(container) {
            s.used -= c.objects.values().map(|(b, _)| b.len() as u64).sum::<u64>();
        }
        Box::pin(async { Ok(()) })
    }

    fn list_page<'a>(
        &'a self,
        container: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, BlobResult<Vec<String>>> {
        let s = self.lock();
        let page = match s.containers.get(container) {
            None => Err(missing(container)),
            Some(c) => {
                let from = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
                Ok(c.objects.range((from, Bound::Unbounded)).take(limit).map(|(k, _)| k.clone()).collect())
            }
        };
        Box::pin(async move { page })
    }

    fn info<'a>(&'a self, container: &'a str, name: &'a str) -> BoxFuture<'a, BlobResult<Option<ObjectInfo>>> {
        let s = self.lock();
        let info = match s.containers.get(container) {
            None => Err(missing(container)),
            Some(c) => Ok(c.objects.get(name).map(|(b, t)| ObjectInfo { created_at: *t, size: b.len() as u64 })),
        };
        Box::pin(async move { info })
    }

    fn read<'a>(
        &'a self,
        container: &'a str,
        name: &'a str,
        start: u64,
        end: u64,
        _chunk: usize,
    ) -> BoxFuture<'a, BlobResult<Reader>> {
        let s = self.lock();
        let bytes = match s.containers.get(container) {
            None => Err(missing(container)),
            Some(c) => match c.objects.get(name) {
                None => Err(no_object(container, name)),
                // `Bytes` is shared: the reader keeps this version alive, not a copy.
                Some((b, _)) => Ok(b.slice(start as usize..end as usize)),
            },
        };
        Box::pin(async move { Ok(once(bytes?)) })
    }

    fn put<'a>(&'a self, container: &'a str, name: &'a str, mut spool: Spool) -> BoxFuture<'a, BlobResult<()>> {
        Box::pin(async move {
            let fits = |s: &State| {
                let c = s.containers.get(container).ok_or_else(|| missing(container))?;
                let old = c.objects.get(name).map_or(0, |(b, _)| b.len() as u64);
                if s.used - old + spool.size > self.quota {
                    return Err(BlobError(format!("memory store quota of {} bytes exceeded", self.quota)));
                }
                Ok(())
            };
            fits(&self.lock())?;
            let mut bytes = Vec::with_capacity(spool.size as usize);
            spool.file.read_to_end(&mut bytes).await.map_err(|e| BlobError(format!("spool read: {}", e.kind())))?;
            let mut s = self.lock();
            // Checked again: another put may have used the room while this one read.
            fits(&s)?;
            let c = s.containers.get_mut(container).ok_or_else(|| missing(container))?;
            let old = c.objects.insert(name.to_owned(), (Bytes::from(bytes), now())).map_or(0, |(b, _)| b.len() as u64);
            s.used = s.used - old + spool.size;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, container: &'a str, name: &'a str) -> BoxFuture<'a, BlobResult<()>> {
        let mut s = self.lock();
        let removed = match s.containers.get_mut(container) {
            None => Err(missing(container)),
            Some(c) => Ok(c.objects.remove(name).map_or(0, |(b, _)| b.len() as u64)),
        };
        let result = removed.map(|n| s.used -= n);
        Box::pin(async move { result })
    }

    fn copy<'a>(
        &'a self,
        (sc, sn): (&'a str, &'a str),
        (dc, dn): (&'a str, &'a str),
        remove_source: bool,
    ) -> BoxFuture<'a, BlobResult<()>> {
        let result = (|| {
            let mut s = self.lock();
            if !s.containers.contains_key(dc) {
                return Err(missing(dc));
            }
            let src = s.containers.get_mut(sc).ok_or_else(|| missing(sc))?;
            let (bytes, _) = if remove_source { src.objects.remove(sn) } else { src.objects.get(sn).cloned() }
                .ok_or_else(|| no_object(sc, sn))?;
            let added = if remove_source { 0 } else { bytes.len() as u64 };
            let dst = s.containers.get_mut(dc).ok_or_else(|| missing(dc))?;
            let old = dst.objects.get(dn).map_or(0, |(b, _)| b.len() as u64);
            // A copy shares the bytes but counts against the quota like a new object.
            if !remove_source && s.used - old + added > self.quota {
                return Err(BlobError(format!("memory store quota of {} bytes exceeded", self.quota)));
            }
            let dst = s.containers.get_mut(dc).ok_or_else(|| missing(dc))?;
            dst.objects.insert(dn.to_owned(), (bytes, now()));
            s.used = s.used - old + added;
            Ok(())
        })();
        Box::pin(async move { result })
    }
}
