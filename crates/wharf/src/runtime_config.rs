//! The runtime-config file (`--runtime-config FILE`): how each capability's backends are
//! provided, in Spin's style, one section per capability (`[keyvalue.stores.NAME]`, ...).
//! Relative paths are relative to the file's directory.
//!
//! ```toml
//! [keyvalue.stores.default]      # replaces the default redb file under the data directory
//! type = "redb"
//! path = "kv.redb"
//!
//! [keyvalue.stores.shared]
//! type = "redis"
//! url = "redis://127.0.0.1:6379/0"
//! ```
use std::path::Path;

use anyhow::Context;
use wharf_host::Backends;
use wharf_host::capabilities::RuntimeContext;

use crate::exit::BadInput;

/// Every capability's backends, from `file` (if any) and their defaults (e.g. the key-value
/// store `default`: a redb file under the data directory).
pub fn backends(file: Option<&Path>) -> anyhow::Result<Backends> {
    let data_dir = crate::dirs::data_dir();
    let Some(path) = file else {
        return Backends::defaults(&data_dir).map_err(|e| BadInput(e.to_string()).into());
    };
    let in_file = |message: String| BadInput(format!("in runtime config {}: {message}", path.display()));
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read runtime config {}", path.display()))?;
    let sections: toml::Table = toml::from_str(&text).map_err(|e| in_file(e.message().trim().replace('\n', " ")))?;
    let context = RuntimeContext { base: path.parent().unwrap_or(Path::new("")).to_path_buf(), data_dir };
    Backends::new(&sections, &context).map_err(|e| in_file(e.to_string()).into())
}

/// The files and directories the stores of runtime config `file` keep their data in (`path` of
/// a `[CAPABILITY.stores.NAME]` section, relative to the file), named for error messages. A file
/// that cannot be read gives none: [`backends`] reports it.
pub fn store_paths(file: &Path) -> Vec<(String, std::path::PathBuf)> {
    let base = file.parent().unwrap_or(Path::new(""));
    let Ok(sections) = std::fs::read_to_string(file).map(|text| toml::from_str::<toml::Table>(&text)) else {
        return Vec::new();
    };
    let Ok(sections) = sections else { return Vec::new() };
    let mut paths = Vec::new();
    for (capability, section) in &sections {
        let Some(stores) = section.get("stores").and_then(|s| s.as_table()) else { continue };
        for (name, store) in stores {
            if let Some(path) = store.get("path").and_then(|p| p.as_str()) {
                paths.push((format!("{capability} store `{name}`"), base.join(path)));
            }
        }
    }
    paths
}
