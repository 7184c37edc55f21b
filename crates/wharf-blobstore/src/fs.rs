//! The `fs` backend: a directory per store, a subdirectory per container, a file per object.
//!
//! Object names never become paths: each is encoded into one file name (`%XX` for every byte
//! but ASCII letters, digits, `-`, `_` and a non-leading `.`), so `/`, `..` and absolute names
//! cannot leave the container whatever [`check_object_name`](crate::check_object_name) lets
//! through. Files are opened with `O_NOFOLLOW` and container directories must not be symlinks,
//! so a link planted in the store is refused rather than followed.
//!
//! Writes go to a temp file under `.tmp/` in the store directory (same filesystem), are synced,
//! then renamed over the object: a reader holds an open file and sees the old object or the
//! new one whole, never a mix.
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use tokio::io::AsyncSeekExt;

use crate::backend::{Backend, BlobError, BlobResult, BoxFuture, ObjectInfo, Reader, Spool};

/// A store kept in a directory (created on first use).
pub struct FsStore {
    root: PathBuf,
    /// Set once `.tmp` was swept of what dead processes left (see [`crate::stale`]).
    swept: std::sync::Once,
}

impl FsStore {
    /// A store in `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStore { root: root.into(), swept: std::sync::Once::new() }
    }

    fn container_dir(&self, container: &str) -> PathBuf {
        // Container names are grant names (letters, digits, `_`, `-`, `.`, not starting with
        // `.`), so they are safe as one path component.
        self.root.join(container)
    }

    /// The container's directory if it exists (and is a real directory, not a link).
    async fn existing(&self, container: &str) -> BlobResult<PathBuf> {
        let dir = self.container_dir(container);
        match tokio::fs::symlink_metadata(&dir).await {
            Ok(m) if m.is_dir() => Ok(dir),
            Ok(_) => Err(BlobError(format!("container `{container}` is not a directory in the store"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing(container)),
            Err(e) => Err(self.io(e)),
        }
    }

    fn object_path(&self, dir: &Path, name: &str) -> BlobResult<PathBuf> {
        let file = encode(name);
        if file.len() > 255 {
            return Err(BlobError(format!(
                "object name {name:?} is too long for an fs store (encoded over 255 bytes)"
            )));
        }
        Ok(dir.join(file))
    }

    fn temp_dir(&self) -> PathBuf {
        self.root.join(".tmp")
    }

    /// An I/O error as the guest sees it: no host paths.
    fn io(&self, e: io::Error) -> BlobError {
        tracing::warn!(store = %self.root.display(), error = %e, "blobstore fs I/O error");
        BlobError(format!("storage error: {}", e.kind()))
    }

    async fn temp_file(&self) -> BlobResult<(tokio::fs::File, tempfile::TempPath)> {
        let dir = self.temp_dir();
        let temp = tokio::task::spawn_blocking(move || crate::stale::locked_temp(&dir))
            .await
            .map_err(|e| BlobError(e.to_string()))?
            .map_err(|e| self.io(e))?;
        let (file, path) = temp.into_parts();
        Ok((tokio::fs::File::from_std(file), path))
    }
}

fn missing(container: &str) -> BlobError {
    BlobError(format!("container `{container}` does not exist"))
}

fn no_object(container: &str, name: &str) -> BlobError {
    BlobError(format!("object {name:?} does not exist in container `{container}`"))
}

/// One file name for an object name (see the module docs).
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The object name of a file name, or `None` for a file no object name encodes to.
fn decode(file: &str) -> Option<String> {
    let bytes = file.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = file.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(out).ok()?;
    (encode(&name) == file).then_some(name)
}

fn seconds(m: &std::fs::Metadata) -> u64 {
    m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
}

/// Opens an object file for reading without following a symlink (blocking).
fn open_nofollow(path: &Path) -> io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// Runs blocking file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

/// `len` bytes of `file` from its position, as chunks of up to `chunk` bytes: each is one
/// `read` into a fresh buffer on the blocking pool (one hand-off per chunk, not per 64 KiB
/// as through `tokio::fs`), handed on without another copy. The file stays open, so the
/// object read is the one opened even if it is replaced meanwhile.
fn chunks(file: std::fs::File, len: u64, chunk: usize) -> Reader {
    let chunk = chunk.max(1) as u64;
    Box::pin(futures_util::stream::try_unfold((file, len), move |(file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = left.min(chunk);
        let (file, buf) = blocking(move || {
            // `read_to_end` fills the spare capacity without zeroing it first.
            let mut buf = Vec::with_capacity(want as usize);
            (&file).take(want).read_to_end(&mut buf)?;
            Ok((file, buf))
        })
        .await?;
        if buf.is_empty() {
            // Only a file truncated behind the store's back ends early.
            return Ok(None);
        }
        let n = buf.len() as u64;
        Ok(Some((Bytes::from(buf), (file, left - n))))
    }))
}

impl Backend for FsStore {
    fn describe(&self) -> String {
        format!("fs {}", self.root.display())
    }

    fn prepare(&self, _host_env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        self.swept.call_once(|| {
            crate::stale::sweep(&self.temp_dir());
        });
        Ok(())
    }

    fn create_container<'a>(&'a self, container: &'a str) -> BoxFuture<'a, BlobResult<()>> {
        Box::pin(async move {
            match tokio::fs::create_dir_all(self.container_dir(container)).await {
                Ok(()) => self.existing(container).await.map(drop),
                Err(e) => Err(self.io(e)),
            }
        })
    }

    fn container_created<'a>(&'a self, container: &'a str) -> BoxFuture<'a, BlobResult<Option<u64>>> {
        Box::pin(async move {
            match self.existing(container).await {
                Ok(dir) => Ok(Some(tokio::fs::metadata(dir).await.map(|m| seconds(&m)).unwrap_or(0))),
                Err(e) if e == missing(container) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn delete_container<'a>(&'a self, container: &'a str) -> BoxFuture<'a, BlobResult<()>> {
        Box::pin(async move {
            let dir = match self.existing(container).await {
                Ok(dir) => dir,
                Err(e) if e == missing(container) => return Ok(()),
                Err(e) => return Err(e),
            };
            // Out of sight first (one rename), then removed at leisure.
            let temp = self.temp_dir();
            tokio::fs::create_dir_all(&temp).await.map_err(|e| self.io(e))?;
            let trash =
                tokio::task::spawn_blocking(move || tempfile::Builder::new().prefix("deleted").tempdir_in(temp))
                    .await
                    .map_err(|e| BlobError(e.to_string()))?
                    .map_err(|e| self.io(e))?;
            let gone = trash.path().join("c");
            tokio::fs::rename(&dir, &gone).await.map_err(|e| self.io(e))?;
            tokio::task::spawn_blocking(move || drop(trash)).await.map_err(|e| BlobError(e.to_string()))
        })
    }

    fn list_page<'a>(
        &'a self,
        container: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, BlobResult<Vec<String>>> {
        Box::pin(async move {
            let dir = self.existing(container).await?;
            let mut entries = tokio::fs::read_dir(dir).await.map_err(|e| self.io(e))?;
            // The `limit` smallest names after `after`, without holding the whole listing.
            let mut page = std::collections::BTreeSet::new();
            while let Some(entry) = entries.next_entry().await.map_err(|e| self.io(e))? {
                let Some(name) = entry.file_name().to_str().and_then(decode) else { continue };
                if after.is_some_and(|a| name.as_str() <= a) {
                    continue;
                }
                page.insert(name);
                if page.len() > limit {
                    page.pop_last();
                }
            }
            Ok(page.into_iter().collect())
        })
    }

    fn info<'a>(&'a self, container: &'a str, name: &'a str) -> BoxFuture<'a, BlobResult<Option<ObjectInfo>>> {
        Box::pin(async move {
            let path = self.object_path(&self.existing(container).await?, name)?;
            match tokio::fs::symlink_metadata(path).await {
                Ok(m) if m.is_file() => Ok(Some(ObjectInfo { created_at: seconds(&m), size: m.len() })),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.io(e)),
            }
        })
    }

    fn read<'a>(
        &'a self,
        container: &'a str,
        name: &'a str,
        start: u64,
        end: u64,
        chunk: usize,
    ) -> BoxFuture<'a, BlobResult<Reader>> {
        Box::pin(async move {
            let path = self.object_path(&self.existing(container).await?, name)?;
            let opened = blocking(move || {
                let mut file = open_nofollow(&path)?;
                file.seek(SeekFrom::Start(start))?;
                Ok(file)
            });
            match opened.await {
                Ok(file) => Ok(chunks(file, end.saturating_sub(start), chunk)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(no_object(container, name)),
                Err(e) => Err(self.io(e)),
            }
        })
    }

    fn put<'a>(&'a self, container: &'a str, name: &'a str, spool: Spool) -> BoxFuture<'a, BlobResult<()>> {
        Box::pin(async move {
            let dst = self.object_path(&self.existing(container).await?, name)?;
            let Spool { mut file, path, .. } = spool;
            file.sync_all().await.map_err(|e| self.io(e))?;
            // The spool is usually on the store's filesystem: then one rename publishes it.
            match path.persist(&dst) {
                Ok(_) => return Ok(()),
                Err(e) if e.error.kind() == io::ErrorKind::CrossesDevices => drop(e.path),
                Err(e) => return Err(self.io(e.error)),
            }
            let (mut to, temp) = self.temp_file().await?;
            file.seek(SeekFrom::Start(0)).await.map_err(|e| self.io(e))?;
            tokio::io::copy(&mut file, &mut to).await.map_err(|e| self.io(e))?;
            to.sync_all().await.map_err(|e| self.io(e))?;
            temp.persist(dst).map_err(|e| self.io(e.error))
        })
    }

    fn delete<'a>(&'a self, container: &'a str, name: &'a str) -> BoxFuture<'a, BlobResult<()>> {
        Box::pin(async move {
            let path = self.object_path(&self.existing(container).await?, name)?;
            match tokio::fs::remove_file(path).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(self.io(e)),
                _ => Ok(()),
            }
        })
    }

    fn copy<'a>(
        &'a self,
        (sc, sn): (&'a str, &'a str),
        (dc, dn): (&'a str, &'a str),
        remove_source: bool,
    ) -> BoxFuture<'a, BlobResult<()>> {
        Box::pin(async move {
            let src = self.object_path(&self.existing(sc).await?, sn)?;
            let dst = self.object_path(&self.existing(dc).await?, dn)?;
            let opened = blocking({
                let src = src.clone();
                move || open_nofollow(&src)
            });
            let mut from = match opened.await {
                Ok(f) => tokio::fs::File::from_std(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(no_object(sc, sn)),
                Err(e) => return Err(self.io(e)),
            };
            if remove_source {
                // rename(2) replaces the destination atomically and never follows a link.
                return tokio::fs::rename(src, dst).await.map_err(|e| self.io(e));
            }
            let (mut to, temp) = self.temp_file().await?;
            tokio::io::copy(&mut from, &mut to).await.map_err(|e| self.io(e))?;
            to.sync_all().await.map_err(|e| self.io(e))?;
            temp.persist(dst).map_err(|e| self.io(e.error))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_stay_one_component() {
        for name in ["a", "a/b", "../x", "/abs", ".hidden", "a%2Fb", "日本", "x..y"] {
            let file = encode(name);
            assert!(!file.contains('/') && !file.starts_with('.'), "{name} -> {file}");
            assert_eq!(decode(&file).as_deref(), Some(name));
        }
        assert_eq!(decode("%2"), None);
        assert_eq!(decode("%2e"), None, "not the canonical encoding");
        assert_eq!(decode(".tmp"), None);
    }

    async fn put(store: &FsStore, spool_dir: &crate::SpoolDir, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let mut spool = spool_dir.create().await.unwrap();
        spool.file.write_all(bytes).await.unwrap();
        spool.file.flush().await.unwrap();
        spool.file.seek(SeekFrom::Start(0)).await.unwrap();
        spool.size = bytes.len() as u64;
        store.put("c", "o", spool).await.unwrap();
    }

    use crate::backend::READ_CHUNK;

    async fn collect(mut reader: Reader) -> Vec<u8> {
        use futures_util::TryStreamExt;
        let mut out = Vec::new();
        while let Some(chunk) = reader.try_next().await.unwrap() {
            assert!(!chunk.is_empty() && chunk.len() <= READ_CHUNK);
            out.extend_from_slice(&chunk);
        }
        out
    }

    #[tokio::test]
    async fn reads_ranges_across_chunks_and_keep_the_object_opened() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().join("store"));
        let spool_dir = crate::SpoolDir { dir: dir.path().join("store/.spool"), max_object_size: u64::MAX };
        store.create_container("c").await.unwrap();
        let old: Vec<u8> = (0..(5 * READ_CHUNK / 2) as u64).map(|i| (i ^ (i >> 8) ^ (i / 251)) as u8).collect();
        put(&store, &spool_dir, &old).await;
        for (start, end) in [(0, old.len()), (READ_CHUNK - 1, 2 * READ_CHUNK + 5), (7, 7), (old.len() - 1, old.len())] {
            let got = collect(store.read("c", "o", start as u64, end as u64, READ_CHUNK).await.unwrap()).await;
            assert!(got == old[start..end], "range {start}..{end} differs");
        }
        // A reader opened before a replacement reads the old object whole.
        let mut reader = store.read("c", "o", 0, old.len() as u64, READ_CHUNK).await.unwrap();
        let first = futures_util::TryStreamExt::try_next(&mut reader).await.unwrap().unwrap();
        put(&store, &spool_dir, &[7; 1000]).await;
        let mut got = first.to_vec();
        got.extend(collect(reader).await);
        assert!(got == old, "the reader saw the replacement");
        assert_eq!(collect(store.read("c", "o", 0, 1000, 7).await.unwrap()).await, vec![7; 1000]);
    }
}
