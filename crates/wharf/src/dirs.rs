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
