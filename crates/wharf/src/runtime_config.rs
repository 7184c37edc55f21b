//! The runtime-config file (`--runtime-config FILE`): how named key-value stores are provided,
//! in Spin's style. Relative redb paths are relative to the file's directory.
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
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use wharf_keyvalue::{StoreConfig, Stores};

use crate::exit::BadInput;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RuntimeConfig {
    #[serde(default)]
    keyvalue: KeyValueSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeyValueSection {
    #[serde(default)]
    stores: BTreeMap<String, StoreConfig>,
}

/// The stores defined in `file` (if any), plus `default`: a redb file under the data directory.
pub fn stores(file: Option<&Path>) -> anyhow::Result<Stores> {
    let mut configs = BTreeMap::new();
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read runtime config {}", path.display()))?;
        let config: RuntimeConfig = toml::from_str(&text)
            .map_err(|e| BadInput(format!("in runtime config {}: {}", path.display(), e.message().trim())))?;
        let base = path.parent().unwrap_or(Path::new(""));
        for (name, mut store) in config.keyvalue.stores {
            if let StoreConfig::Redb { path } = &mut store {
                *path = base.join(&*path);
            }
            configs.insert(name, store);
        }
    }
    let default_path = crate::dirs::data_dir().join("keyvalue").join("default.redb");
    Stores::new(&configs, default_path).map_err(|e| {
        BadInput(format!("in runtime config {}: {e}", file.map(|f| f.display().to_string()).unwrap_or_default())).into()
    })
}
