//! The compile cache: compiled components on disk, keyed by the component's SHA-256 and the
//! engine fingerprint, integrity-checked on every load and written atomically.
//!
//! An entry is native code that is run once its checksum matches, so whoever can write the
//! cache can run code as the user. The cache directory and its fingerprint directories are
//! therefore created owner-only (0700) and used only while they are owned by this user and
//! writable by no one else; an entry is loaded only if it is too. Otherwise the component is
//! compiled in memory and the cache left alone (logged).
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::engine::WharfEngine;

/// Magic prefix of a cache entry; bump the digit when the layout changes.
const MAGIC: &[u8; 8] = b"WHARFCC1";
const HEADER_LEN: usize = MAGIC.len() + 32;

/// How a component was obtained from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Loaded from a valid cache entry; nothing was compiled.
    Hit,
    /// No entry: compiled and stored.
    Miss,
    /// An entry existed but was corrupt or unusable: compiled again and replaced.
    Recovered,
    /// No cache is configured: compiled in memory only.
    Disabled,
}

/// A directory of compiled components.
#[derive(Clone, Debug)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// A cache rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CompileCache { dir: dir.into() }
    }

    /// The cache's root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, engine: &WharfEngine, wasm_sha256: &str) -> PathBuf {
        self.dir.join(engine.fingerprint()).join(format!("{wasm_sha256}.cwasm"))
    }

    /// Returns the compiled form of `wasm`, from the cache when a valid entry exists, else by
    /// compiling it (with `compile`) and storing the result. Cache I/O problems are logged and
    /// never fail the call: the cache can only make things faster.
    pub fn get_or_compile(
        &self,
        engine: &WharfEngine,
        wasm: &[u8],
        compile: impl FnOnce() -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<(Component, CacheStatus)> {
        let wasm_sha256 = hex::encode(Sha256::digest(wasm));
        let path = self.entry_path(engine, &wasm_sha256);
        if let Err(why) = prepare_private_dirs(&self.dir, path.parent().expect("entry paths have a parent")) {
            tracing::warn!("compile cache: not using {}: {why}; compiling in memory", self.dir.display());
            return Ok((compile()?, CacheStatus::Disabled));
        }
        let status = match check_private(&path).and_then(|()| std::fs::read(&path).map_err(CacheIoError::Io)) {
            Ok(entry) => match load_entry(engine, &entry) {
                Ok(component) => {
                    tracing::debug!(path = %path.display(), "compile cache: hit");
                    return Ok((component, CacheStatus::Hit));
                }
                Err(why) => {
                    tracing::warn!(path = %path.display(), "compile cache: discarding bad entry: {why}");
                    CacheStatus::Recovered
                }
            },
            Err(CacheIoError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => CacheStatus::Miss,
            Err(CacheIoError::Unsafe(why)) => {
                // Replaced below by an entry of our own, written owner-only.
                tracing::warn!(path = %path.display(), "compile cache: not loading entry: {why}");
                CacheStatus::Recovered
            }
            Err(CacheIoError::Io(e)) => {
                tracing::warn!(path = %path.display(), "compile cache: cannot read entry: {e}");
                CacheStatus::Miss
            }
        };
        tracing::debug!(path = %path.display(), "compile cache: {status:?}, compiling");
        let component = compile()?;
        match component.serialize() {
            Ok(compiled) => {
                if let Err(e) = write_entry(&path, &compiled) {
                    tracing::warn!(path = %path.display(), "compile cache: cannot store entry: {e}");
                }
            }
            Err(e) => tracing::warn!("compile cache: cannot serialize component: {e}"),
        }
        Ok((component, status))
    }

    /// Deletes every entry. Returns how many bytes were freed.
    pub fn clean(&self) -> std::io::Result<u64> {
        let freed = dir_size(&self.dir);
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(freed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }
}

enum CacheIoError {
    Io(std::io::Error),
    /// Owned by someone else, or writable by others.
    Unsafe(String),
}

/// Fails unless `path` is owned by this user and writable by no group or other user (a
/// missing path is `Io(NotFound)`). Symlinks are not followed: a link is refused.
fn check_private(path: &Path) -> Result<(), CacheIoError> {
    let meta = std::fs::symlink_metadata(path).map_err(CacheIoError::Io)?;
    private_metadata(&meta).map_err(CacheIoError::Unsafe)
}

#[cfg(unix)]
fn private_metadata(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() {
        return Err("it is a symbolic link".into());
    }
    if meta.uid() != me {
        return Err(format!("it is owned by uid {}, not by this user (uid {me})", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("others can write to it (mode {:o})", meta.mode() & 0o7777));
    }
    Ok(())
}

#[cfg(not(unix))]
fn private_metadata(_: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// Creates `root` and `dir` (inside it) owner-only if missing, then checks both are private.
fn prepare_private_dirs(root: &Path, dir: &Path) -> Result<(), String> {
    for path in [root, dir] {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        match check_private(path) {
            Ok(()) => {}
            Err(CacheIoError::Unsafe(why)) => return Err(format!("{}: {why}", path.display())),
            Err(CacheIoError::Io(e)) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(())
}

fn load_entry(engine: &WharfEngine, entry: &[u8]) -> Result<Component, String> {
    if entry.len() < HEADER_LEN || &entry[..MAGIC.len()] != MAGIC {
        return Err("not a wharf cache entry (truncated or wrong header)".into());
    }
    let (digest, payload) = entry[MAGIC.len()..].split_at(32);
    if Sha256::digest(payload).as_slice() != digest {
        return Err("checksum mismatch".into());
    }
    // SAFETY: the payload is byte-for-byte what `Component::serialize` produced for an engine
    // with this fingerprint: its SHA-256 matches the digest written beside it, so it was
    // neither truncated nor altered by accident. wasmtime still checks its own header.
    unsafe { Component::deserialize(engine.engine(), payload) }.map_err(|e| format!("{e:#}"))
}

fn write_entry(path: &Path, compiled: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("entry paths have a parent");
    // Created 0600 on Unix; renamed over any entry that was refused.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(MAGIC)?;
    tmp.write_all(&Sha256::digest(compiled))?;
    tmp.write_all(compiled)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
