//! The local content store: an [OCI image layout] on disk (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`), readable by skopeo, oras and friends, and able to read theirs.
//!
//! Blobs are content-addressed and deduplicated. A blob becomes visible under its digest only
//! after its bytes were hashed and matched, and only by an atomic rename of a synced temp file
//! from `.wharf-tmp/` (inside the layout, so the rename never crosses file systems); a crash
//! leaves at most a stray temp file that nothing trusts, removed a day later. `index.json` is rewritten the same way
//! under an exclusive lock, so concurrent pulls do not lose each other's tags.
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::artifact::{Descriptor, INDEX_MEDIA_TYPE};
use crate::digest::{self, sha256_hex};

/// The index annotation holding an entry's name (a tag, or a full reference in wharf's store).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_JSON: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
const TMP_DIR: &str = ".wharf-tmp";
const LOCK_FILE: &str = ".wharf-lock";

/// `index.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexFile {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens the layout at `root`, creating an empty one if the directory has none.
    pub fn create(root: &Path) -> Result<Layout, Error> {
        let layout = Layout { root: root.to_path_buf() };
        fs::create_dir_all(layout.blobs_dir()).map_err(|e| io(root, e))?;
        fs::create_dir_all(layout.tmp_dir()).map_err(|e| io(root, e))?;
        if !root.join(LAYOUT_FILE).exists() {
            layout.write_atomically(&root.join(LAYOUT_FILE), LAYOUT_JSON.as_bytes())?;
        }
        layout.sweep_stale_temp_files();
        Ok(layout)
    }

    /// Removes temp files an interrupted pull left behind (older than a day, so a pull running
    /// in another process is never disturbed). Best effort: failures are only logged.
    fn sweep_stale_temp_files(&self) {
        const STALE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else { return };
        for entry in entries.flatten() {
            let age = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            if age.is_some_and(|age| age > STALE)
                && let Err(e) = fs::remove_file(entry.path())
            {
                tracing::debug!(path = %entry.path().display(), "cannot remove a stale temp file: {e}");
            }
        }
    }

    /// Opens an existing layout (e.g. one written by `skopeo copy ... oci:DIR`) for reading.
    pub fn open(root: &Path) -> Result<Layout, Error> {
        let text = match read_regular(&root.join(LAYOUT_FILE)).map(|b| String::from_utf8_lossy(&b).into_owned()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Layout { path: root.into(), reason: "it has no `oci-layout` file".into() });
            }
            Err(e) => return Err(io(&root.join(LAYOUT_FILE), e)),
        };
        if !text.contains("imageLayoutVersion") {
            return Err(Error::Layout { path: root.into(), reason: "`oci-layout` has no imageLayoutVersion".into() });
        }
        Ok(Layout { root: root.to_path_buf() })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// Where temp files are staged before they are renamed into place.
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP_DIR)
    }

    /// The path of the blob with `digest` (which must be a well-formed sha256 digest).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, Error> {
        Ok(self.blobs_dir().join(sha256_hex(digest)?))
    }

    /// Whether the blob is present (blobs only appear after their digest was checked).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Reads a blob and checks it against its digest (a layout written by another tool, or
    /// altered on disk, is not trusted).
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(digest)?;
        let bytes = read_regular(&path).map_err(|e| io(&path, e))?;
        digest::verify(&path.display().to_string(), digest, &bytes)?;
        Ok(bytes)
    }

    /// Stores `bytes` as the blob `digest` after checking they match; a no-op if present.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), Error> {
        digest::verify(digest, digest, bytes)?;
        if self.has_blob(digest) {
            return Ok(());
        }
        self.write_atomically(&self.blob_path(digest)?, bytes)
    }

    /// A temp file in the layout's staging area, for streaming a download into.
    pub(crate) fn temp_file(&self) -> Result<tempfile::NamedTempFile, Error> {
        fs::create_dir_all(self.tmp_dir()).map_err(|e| io(&self.tmp_dir(), e))?;
        tempfile::NamedTempFile::new_in(self.tmp_dir()).map_err(|e| io(&self.tmp_dir(), e))
    }

    /// A temp file in the staging area that a download streams a blob into (see [`Staged`]).
    pub(crate) fn stage(&self) -> Result<Staged, Error> {
        Ok(Staged { file: self.temp_file()?, written: 0, handed_off: 0 })
    }

    /// Syncs an already verified staged blob and moves it into place as the blob `digest`.
    pub(crate) fn commit_blob(&self, digest: &str, staged: Staged) -> Result<(), Error> {
        let path = self.blob_path(digest)?;
        if path.is_file() {
            return Ok(());
        }
        let file = staged.file;
        // fdatasync: the bytes and the size, which is all a new file needs to read back whole.
        file.as_file().sync_data().map_err(|e| io(file.path(), e))?;
        file.persist(&path).map_err(|e| io(&path, e.error))?;
        Ok(())
    }

    /// The entries of `index.json`.
    pub fn entries(&self) -> Result<Vec<Descriptor>, Error> {
        Ok(self.read_index()?.manifests)
    }

    /// The entry named `name` (its `org.opencontainers.image.ref.name`), or with no name, the
    /// only entry.
    pub fn find(&self, name: Option<&str>) -> Result<Descriptor, Error> {
        let entries = self.entries()?;
        let found = match name {
            Some(name) => {
                entries.into_iter().find(|d| d.annotations.get(REF_NAME_ANNOTATION).is_some_and(|n| n == name))
            }
            None if entries.len() == 1 => entries.into_iter().next(),
            None => {
                return Err(Error::Layout {
                    path: self.root.clone(),
                    reason: format!("it holds {} manifests; name one (oci:DIR:NAME)", entries.len()),
                });
            }
        };
        found.ok_or_else(|| Error::NotInStore { name: format!("{}:{}", self.root.display(), name.unwrap_or_default()) })
    }

    /// Points `name` at `manifest` in `index.json`, replacing an entry of the same name.
    pub fn set_ref(&self, name: &str, manifest: &Descriptor) -> Result<(), Error> {
        let lock_path = self.root.join(LOCK_FILE);
        let lock = File::create(&lock_path).map_err(|e| io(&lock_path, e))?;
        lock.lock().map_err(|e| io(&lock_path, e))?;
        let mut index = self.read_index()?;
        index.manifests.retain(|d| d.annotations.get(REF_NAME_ANNOTATION).is_none_or(|n| n != name));
        let mut entry = manifest.clone();
        entry.annotations.insert(REF_NAME_ANNOTATION.into(), name.into());
        index.manifests.push(entry);
        index.media_type = Some(INDEX_MEDIA_TYPE.into());
        let bytes = serde_json::to_vec(&index).map_err(|e| json(&self.root.join("index.json"), e))?;
        self.write_atomically(&self.root.join("index.json"), &bytes)
        // The lock is released when `lock` drops.
    }

    fn read_index(&self) -> Result<IndexFile, Error> {
        let path = self.root.join("index.json");
        match read_regular(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| json(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(IndexFile { schema_version: 2, media_type: Some(INDEX_MEDIA_TYPE.into()), manifests: vec![] })
            }
            Err(e) => Err(io(&path, e)),
        }
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        let mut file = self.temp_file()?;
        file.write_all(bytes).map_err(|e| io(file.path(), e))?;
        file.as_file().sync_data().map_err(|e| io(file.path(), e))?;
        file.persist(path).map_err(|e| io(path, e.error))?;
        Ok(())
    }
}

/// A blob being downloaded into the staging area. Every [`WRITEBACK_CHUNK`] bytes it asks the
/// kernel to start writing what came so far to disk, so the sync before the blob is renamed
/// into place ([`Layout::commit_blob`]) waits for the last piece only, not for the whole blob
/// after the download: the disk works while the network does.
pub(crate) struct Staged {
    file: tempfile::NamedTempFile,
    written: u64,
    handed_off: u64,
}

/// How many bytes [`Staged`] lets pile up before starting their writeback.
const WRITEBACK_CHUNK: u64 = 4 << 20;

impl Staged {
    /// Appends `chunk`.
    pub(crate) fn write(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.file.write_all(chunk).map_err(|e| io(self.file.path(), e))?;
        self.written += chunk.len() as u64;
        if self.written - self.handed_off >= WRITEBACK_CHUNK {
            start_writeback(self.file.as_file(), self.handed_off, self.written - self.handed_off);
            self.handed_off = self.written;
        }
        Ok(())
    }
}

/// Starts (does not wait for) writing `len` bytes at `offset` of `file` to disk. Only a hint:
/// durability comes from the sync in [`Layout::commit_blob`].
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
    // SAFETY: a valid open descriptor; the call only schedules I/O of the given range.
    unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: u64) {}

/// Reads a regular file whole. A layout may come from someone else (`wharf mcp --allow-load`):
/// a FIFO must not block the reader until a writer comes, nor a device (a blob linked to
/// `/dev/zero`) be read for ever, so the file is opened `O_NONBLOCK` and refused unless regular.
fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    // A hint only (a sparse file may claim more than memory holds): as `fs::read` does.
    let _ = bytes.try_reserve_exact(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.into(), source }
}

fn json(path: &Path, source: serde_json::Error) -> Error {
    Error::Json { what: path.display().to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_digest;

    #[test]
    fn blobs_are_verified_deduplicated_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let digest = sha256_digest(b"hello");
        assert!(matches!(layout.put_blob(&digest, b"HELLO"), Err(Error::DigestMismatch { .. })));
        assert!(!layout.has_blob(&digest));
        layout.put_blob(&digest, b"hello").unwrap();
        layout.put_blob(&digest, b"hello").unwrap();
        assert_eq!(layout.read_blob(&digest).unwrap(), b"hello");
        assert_eq!(fs::read_dir(layout.blobs_dir()).unwrap().count(), 1);
        assert_eq!(fs::read_dir(layout.tmp_dir()).unwrap().count(), 0);

        // A blob changed on disk is not trusted.
        fs::write(layout.blob_path(&digest).unwrap(), b"jello").unwrap();
        assert!(matches!(layout.read_blob(&digest), Err(Error::DigestMismatch { .. })));
        // Digests never escape the blobs directory.
        assert!(layout.blob_path("sha256:../../x").is_err());
    }

    #[test]
    fn refs_are_replaced_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let entry = |d: &str| Descriptor {
            media_type: crate::MANIFEST_MEDIA_TYPE.into(),
            digest: sha256_digest(d.as_bytes()),
            size: 1,
            annotations: Default::default(),
            platform: None,
        };
        layout.set_ref("a:1", &entry("one")).unwrap();
        layout.set_ref("b:1", &entry("two")).unwrap();
        layout.set_ref("a:1", &entry("three")).unwrap();
        assert_eq!(layout.entries().unwrap().len(), 2);
        assert_eq!(layout.find(Some("a:1")).unwrap().digest, sha256_digest(b"three"));
        assert!(matches!(layout.find(Some("c:1")), Err(Error::NotInStore { .. })));
        assert!(layout.find(None).is_err());
        Layout::open(dir.path()).unwrap();
    }
}
