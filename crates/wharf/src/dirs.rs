//! Where Wharf keeps files, following the XDG base directory spec.
use std::path::PathBuf;

/// The compile cache: `$WHARF_CACHE_DIR`, else `$XDG_CACHE_HOME/wharf`, else `~/.cache/wharf`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WHARF_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    xdg("XDG_CACHE_HOME", ".cache").join("wharf")
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
