//! Where Wharf keeps files, following the XDG base directory spec.
use std::path::PathBuf;

/// The compile cache: `$WHARF_CACHE_DIR`, else `$XDG_CACHE_HOME/wharf`, else `~/.cache/wharf`;
/// `None` when none of these is known. Never a shared directory such as `/tmp`: entries are
/// native code, and others could plant them there.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WHARF_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("wharf"));
    }
    std::env::home_dir().filter(|h| !h.as_os_str().is_empty()).map(|home| home.join(".cache/wharf"))
}

/// The compile cache, if there is a directory for it (else components compile in memory).
pub fn compile_cache() -> Option<wharf_host::CompileCache> {
    let cache = cache_dir().map(wharf_host::CompileCache::new);
    if cache.is_none() {
        tracing::debug!("no compile cache: set WHARF_CACHE_DIR, XDG_CACHE_HOME or HOME");
    }
    cache
}

/// Persistent data (pulled artifacts, logins, the default key-value store): `$WHARF_DATA_DIR`,
/// else `$XDG_DATA_HOME/wharf`, else `~/.local/share/wharf`.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WHARF_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    xdg("XDG_DATA_HOME", ".local/share").join("wharf")
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var).filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::home_dir().unwrap_or_else(std::env::temp_dir).join(fallback),
    }
}

/// Wharf's own state on disk, which no read-write directory grant may hold or lie inside: the
/// compile cache (entries are native code, loaded on a checksum the guest can compute or keep
/// valid by renaming one entry over another), the data directory (tags of pulled artifacts,
/// logins, the default key-value and blob stores) and the stores a runtime config puts
/// elsewhere (`path = ...`). A guest with such a grant could make a later `wharf run` execute
/// code of its choosing, or read and rewrite buckets and containers it was never granted.
/// Read-only grants are the operator's to give.
pub struct StateDirs(Vec<(String, PathBuf)>);

impl StateDirs {
    /// The cache, the data directory and the store paths of `runtime_config` (if any).
    pub fn new(runtime_config: Option<&std::path::Path>) -> Self {
        let mut dirs: Vec<(String, PathBuf)> =
            cache_dir().map(|dir| ("compile cache".to_string(), dir)).into_iter().collect();
        dirs.push(("data directory".into(), data_dir()));
        dirs.extend(runtime_config.map(crate::runtime_config::store_paths).unwrap_or_default());
        StateDirs(dirs.into_iter().map(|(what, dir)| (what, real_path(&dir))).collect())
    }

    /// Refuses `policy`'s read-write grants that hold one of these or lie inside one.
    pub fn check(&self, policy: &wharf_host::policy::Policy) -> Result<(), crate::exit::BadInput> {
        for grant in policy.dirs.iter().filter(|grant| !grant.read_only) {
            // A grant that does not exist is reported by the sandbox.
            let Ok(granted) = std::fs::canonicalize(&grant.host) else { continue };
            for (what, dir) in &self.0 {
                if dir.starts_with(&granted) || granted.starts_with(dir) {
                    return Err(crate::exit::BadInput(format!(
                        "cannot grant directory {} read-write: it {} wharf's {what} ({}); a guest could plant \
                         code or data there. Grant a narrower directory, add `:ro`, or move the {what} elsewhere",
                        grant.host.display(),
                        if dir.starts_with(&granted) { "holds" } else { "lies inside" },
                        dir.display(),
                    )));
                }
            }
        }
        Ok(())
    }
}

/// `path` with symlinks resolved, as far as it exists (the cache may not be created yet).
fn real_path(path: &std::path::Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            return rest.iter().rev().fold(real, |acc: PathBuf, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}
