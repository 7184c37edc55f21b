//! What a blobstore backend provides. Containers and objects are named by the host: container
//! names are grant names (checked at parse), object names passed [`check_object_name`].
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// A boxed future, so [`Backend`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A backend failure; the text goes to the guest (no paths outside the store, no credentials).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BlobError(pub String);

impl BlobError {
    /// An error with this text.
    pub fn new(text: impl Into<String>) -> Self {
        BlobError(text.into())
    }
}

/// A backend result.
pub type BlobResult<T> = Result<T, BlobError>;

/// An object's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// When it was written, in seconds since the Unix epoch.
    pub created_at: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// A byte range of an object being read, as the chunks the backend produces (none empty, each
/// at most [`READ_CHUNK`] bytes for `fs`, as they arrive for `s3`); the backend holds it open
/// so that a reader sees the object as it was when the read began, whatever is written
/// meanwhile. Chunks are handed to the guest without another copy.
pub type Reader = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// The largest chunk a backend reads at once for a [`Reader`]; a stream holds at most three
/// (one being read, one queued, one the guest is consuming).
pub const READ_CHUNK: usize = 1024 * 1024;

/// The chunk size of a stream that found no room in its component's buffer budget.
pub const SMALL_READ_CHUNK: usize = 64 * 1024;

/// `reader` cut after `len` bytes, whatever the source sends; empty chunks dropped.
pub(crate) fn cut(reader: Reader, len: u64) -> Reader {
    Box::pin(
        reader
            .scan(len, |left, item| {
                let item = match item {
                    Ok(_) if *left == 0 => None,
                    Ok(mut bytes) => {
                        if bytes.len() as u64 > *left {
                            bytes.truncate(*left as usize);
                        }
                        *left -= bytes.len() as u64;
                        Some(Ok(bytes))
                    }
                    Err(e) => Some(Err(e)),
                };
                std::future::ready(item)
            })
            .filter(|item| std::future::ready(!matches!(item, Ok(b) if b.is_empty()))),
    )
}

/// A reader of one chunk (empty if `bytes` is).
pub(crate) fn once(bytes: Bytes) -> Reader {
    let item = (!bytes.is_empty()).then_some(Ok(bytes));
    Box::pin(futures_util::stream::iter(item))
}

/// The bytes of an object being written, staged in a temp file (see [`crate::SpoolDir`]);
/// dropping it deletes the file.
pub struct Spool {
    /// The file, positioned at its start when handed to [`Backend::put`].
    pub file: tokio::fs::File,
    /// Its path (deleted on drop unless persisted).
    pub path: tempfile::TempPath,
    /// How many bytes it holds.
    pub size: u64,
}

/// One store of containers (a directory, a memory map).
pub trait Backend: Send + Sync + 'static {
    /// How logs name it: its type and location (never credentials).
    fn describe(&self) -> String;
    /// Gets it ready for a component granted one of its containers (once per sandbox, cheap
    /// after the first): e.g. resolves credentials named as host environment variables through
    /// `host_env`. The error says what is missing.
    fn prepare(&self, _host_env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        Ok(())
    }
    /// Creates the container if it does not exist.
    fn create_container<'a>(&'a self, container: &'a str) -> BoxFuture<'a, BlobResult<()>>;
    /// When the container was created, or `None` if it does not exist.
    fn container_created<'a>(&'a self, container: &'a str) -> BoxFuture<'a, BlobResult<Option<u64>>>;
    /// Deletes the container and its objects; not an error if it does not exist.
    fn delete_container<'a>(&'a self, container: &'a str) -> BoxFuture<'a, BlobResult<()>>;
    /// Up to `limit` object names after `after` (exclusive), in byte order.
    fn list_page<'a>(
        &'a self,
        container: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, BlobResult<Vec<String>>>;
    /// An object's metadata, or `None` if it does not exist.
    fn info<'a>(&'a self, container: &'a str, name: &'a str) -> BoxFuture<'a, BlobResult<Option<ObjectInfo>>>;
    /// Bytes `start..end` (exclusive, already clamped to the size) of an object that exists, in
    /// chunks of at most `chunk` bytes where the backend chooses (`fs`; `s3` passes on what the
    /// connection reads, `memory` its stored bytes).
    fn read<'a>(
        &'a self,
        container: &'a str,
        name: &'a str,
        start: u64,
        end: u64,
        chunk: usize,
    ) -> BoxFuture<'a, BlobResult<Reader>>;
    /// Makes `spool` the object `name` of `container` (which must exist), replacing any object
    /// of that name atomically: readers see the old object or the new one, whole.
    fn put<'a>(&'a self, container: &'a str, name: &'a str, spool: Spool) -> BoxFuture<'a, BlobResult<()>>;
    /// Deletes an object; not an error if it does not exist.
    fn delete<'a>(&'a self, container: &'a str, name: &'a str) -> BoxFuture<'a, BlobResult<()>>;
    /// Copies (`remove_source: false`) or moves an object within this store, replacing the
    /// destination atomically.
    fn copy<'a>(
        &'a self,
        src: (&'a str, &'a str),
        dst: (&'a str, &'a str),
        remove_source: bool,
    ) -> BoxFuture<'a, BlobResult<()>>;
}

/// The longest object name accepted, in bytes.
pub const MAX_OBJECT_NAME: usize = 1024;

/// Checks an object name before any backend sees it: not empty, at most [`MAX_OBJECT_NAME`]
/// bytes, no NUL or other control character, not absolute, and no empty, `.` or `..` segment
/// between `/`s. Backends also map names so that none can leave the store; this refuses the
/// names that could only be attempts.
pub fn check_object_name(name: &str) -> BlobResult<()> {
    let bad = |why: &str| Err(BlobError(format!("invalid object name {name:?}: {why}")));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_OBJECT_NAME {
        return bad("longer than 1024 bytes");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if name.starts_with('/') || name.starts_with('\\') {
        return bad("absolute");
    }
    if name.split(['/', '\\']).any(|s| s.is_empty() || s == "." || s == "..") {
        return bad("has an empty, `.` or `..` segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        for good in ["a", "a/b.txt", "x..y", ".hidden", "日本"] {
            assert!(check_object_name(good).is_ok(), "{good}");
        }
        for bad in ["", "/etc/passwd", "..", "a/../../b", "./a", "a//b", "a/", "a\0b", "\\x", "a\\..\\b"] {
            assert!(check_object_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_object_name(&"a".repeat(1025)).is_err());
    }
}
