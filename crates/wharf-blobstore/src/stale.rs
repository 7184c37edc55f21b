//! Temp files a process that died left behind. Values being written are staged in temp files
//! (the spool, an `fs` store's `.tmp`), deleted when dropped; but a process that exits without
//! dropping them (`wharf run` at its timeout, a crash, `kill -9`) leaves them, up to
//! `max_object_size` each, for ever. Every temp file is therefore locked (`flock`) by its
//! process for as long as it is open, and the first sandbox granted a store removes those no
//! live process holds ([`sweep`]).
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Files and directories younger than this are never removed: a temp file is locked right
/// after it is created, and a trash directory is being emptied by its owner.
pub(crate) const GRACE: Duration = Duration::from_secs(60);

/// A temp file in `dir` (created if needed), locked for as long as it is open (blocking).
pub(crate) fn locked_temp(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    std::fs::create_dir_all(dir)?;
    let temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.as_file().try_lock().map_err(io::Error::from)?;
    Ok(temp)
}

/// Removes from `dir` what dead processes left (blocking): files older than [`GRACE`] that no
/// process holds locked, and directories (trash of deleted containers) older than [`GRACE`].
/// Returns how many entries it removed; errors are logged, never fatal.
pub(crate) fn sweep(dir: &Path) -> usize {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return 0,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot look for stale blobstore temp files");
            return 0;
        }
    };
    let now = SystemTime::now();
    let old =
        |m: &std::fs::Metadata| m.modified().ok().and_then(|t| now.duration_since(t).ok()).is_some_and(|a| a > GRACE);
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !old(&meta) {
            continue;
        }
        let result = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else if meta.is_file() {
            if !unlocked(&path) {
                continue;
            }
            std::fs::remove_file(&path)
        } else {
            continue;
        };
        match result {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale blobstore temp file"),
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed blobstore temp files left by processes that ended");
    }
    removed
}

/// Whether no process holds `path` locked (it is not a value being written).
fn unlocked(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path);
    // Our lock goes when `file` is closed.
    file.is_ok_and(|f| f.try_lock().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_unlocked_leftovers_go() {
        let dir = tempfile::tempdir().unwrap();
        let ago = SystemTime::now() - 2 * GRACE;
        let held = locked_temp(dir.path()).unwrap();
        held.as_file().set_modified(ago).unwrap();
        let left = dir.path().join("left");
        std::fs::File::create(&left).unwrap().set_modified(ago).unwrap();
        let fresh = dir.path().join("fresh");
        std::fs::File::create(&fresh).unwrap();
        let trash = dir.path().join("deleted1");
        std::fs::create_dir_all(trash.join("c")).unwrap();
        std::fs::File::open(&trash).unwrap().set_modified(ago).unwrap();
        assert_eq!(sweep(dir.path()), 2);
        assert!(held.path().exists(), "a file its process holds stays");
        assert!(fresh.exists(), "a fresh file stays (it may be about to be locked)");
        assert!(!left.exists() && !trash.exists());
        assert_eq!(sweep(&dir.path().join("missing")), 0);
    }
}
