//! `wasi:blobstore` as a Wharf capability: `--blob CONTAINER[=STORE]` grants (`blobstore =
//! [...]` in policy files), `[blobstore.stores.NAME]` runtime config, containers bound to stores
//! per sandbox.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use wasmtime::component::Linker;
use wharf_capability::{Capability, GrantKey, HasCapability, RuntimeContext};

use crate::{Backend, BlobCtx, Blobstore, FsStore, MemoryStore, S3Config, S3Store, SpoolDir};

/// The store a container uses when its grant names none.
pub const DEFAULT_STORE: &str = "default";

/// The `wasi:blobstore` capability (registered in `wharf-host`).
pub struct BlobstoreCapability;

/// One container the guest may use (`--blob NAME` or `--blob NAME=STORE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobGrant {
    /// The container name the guest uses.
    pub container: String,
    /// The configured store that holds it (`default` unless named).
    pub store: String,
}

/// Container and store names: ASCII letters, digits, `_`, `-` and `.`, starting with a letter
/// or digit (a container name is one directory name in an `fs` store).
fn valid_name(name: &str) -> bool {
    name.len() <= 128
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

impl BlobGrant {
    /// Parses `CONTAINER` or `CONTAINER=STORE`; the error says what is expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (container, store) = text.split_once('=').unwrap_or((text, DEFAULT_STORE));
        if !valid_name(container) || !valid_name(store) {
            return Err("expected CONTAINER or CONTAINER=STORE (letters, digits, `_`, `-`, `.`, starting with a letter or digit)".into());
        }
        Ok(BlobGrant { container: container.to_owned(), store: store.to_owned() })
    }
}

/// How one named store is provided, as written in a runtime-config file:
///
/// ```toml
/// [blobstore.stores.default]
/// type = "fs"
/// path = "/var/lib/wharf/blobs"
///
/// [blobstore.stores.scratch]
/// type = "memory"
/// quota = 67108864
///
/// [blobstore.stores.cloud]
/// type = "s3"
/// bucket = "wharf-blobs"
/// endpoint = "http://127.0.0.1:9000"
/// secret_access_key_env = "S3_SECRET"
/// access_key_id_env = "S3_KEY_ID"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// A directory (created on first use); relative to the runtime-config file.
    Fs {
        /// The directory.
        path: PathBuf,
    },
    /// A process-local map, lost at exit.
    Memory {
        /// The most bytes all its objects may hold (default 64 MiB).
        #[serde(default = "default_quota")]
        quota: u64,
    },
    /// A bucket of an S3-compatible server, a key prefix per container (see [`S3Config`]).
    S3(Box<S3Config>),
}

fn default_quota() -> u64 {
    64 * 1024 * 1024
}

fn default_max_object_size() -> u64 {
    4 * 1024 * 1024 * 1024
}

/// The `[blobstore]` section of the runtime config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobstoreConfig {
    /// Store name to backend.
    #[serde(default)]
    pub stores: BTreeMap<String, StoreConfig>,
    /// The most bytes one written value may hold (default 4 GiB).
    #[serde(default = "default_max_object_size")]
    pub max_object_size: u64,
}

impl Default for BlobstoreConfig {
    fn default() -> Self {
        BlobstoreConfig { stores: BTreeMap::new(), max_object_size: default_max_object_size() }
    }
}

/// The stores of one process, by name, and where values are staged.
pub struct BlobStores {
    stores: BTreeMap<String, Arc<dyn Backend>>,
    spool: SpoolDir,
    /// Set once the spool was swept of what dead processes left (see [`crate::stale`]).
    swept: std::sync::Once,
}

impl Capability for BlobstoreCapability {
    const NAME: &'static str = "blobstore";
    const GRANTS: &'static [GrantKey] = &[GrantKey {
        key: "blobstore",
        flag: "blob",
        value_name: "CONTAINER[=STORE]",
        help: "Grant a wasi:blobstore container, kept in the store `default` (a directory under the \
               data directory) or in STORE from `--runtime-config`.",
    }];
    const INTERFACES: &'static [&'static str] = &[
        "wasi:blobstore/types@0.2.0-draft",
        "wasi:blobstore/container@0.2.0-draft",
        "wasi:blobstore/blobstore@0.2.0-draft",
    ];

    type Grant = BlobGrant;
    type RuntimeConfig = BlobstoreConfig;
    type Backends = BlobStores;
    type Bound = BlobCtx;
    type State = Arc<BlobCtx>;

    fn parse_grant(_key: &GrantKey, text: &str) -> Result<BlobGrant, String> {
        BlobGrant::parse(text)
    }

    fn grant_name(grant: &BlobGrant) -> &str {
        &grant.container
    }

    /// The configured stores, plus `default` as the directory `blobstore/default` under the
    /// data directory unless configured; values are staged in `blobstore/.spool` there.
    fn backends(config: BlobstoreConfig, context: &RuntimeContext) -> Result<BlobStores, String> {
        let root = context.data_dir.join("blobstore");
        let mut stores: BTreeMap<String, Arc<dyn Backend>> = BTreeMap::new();
        for (name, store) in config.stores {
            if !valid_name(&name) {
                return Err(format!("invalid blobstore store name `{name}`: letters, digits, `_`, `-`, `.`"));
            }
            let backend: Arc<dyn Backend> = match store {
                StoreConfig::Fs { path } => Arc::new(FsStore::new(context.base.join(path))),
                StoreConfig::Memory { quota } => Arc::new(MemoryStore::new(quota)),
                StoreConfig::S3(config) => {
                    Arc::new(S3Store::new(&name, *config).map_err(|e| format!("blobstore store `{name}`: {e}"))?)
                }
            };
            stores.insert(name, backend);
        }
        stores.entry(DEFAULT_STORE.to_owned()).or_insert_with(|| Arc::new(FsStore::new(root.join(DEFAULT_STORE))));
        let spool = SpoolDir { dir: root.join(".spool"), max_object_size: config.max_object_size };
        Ok(BlobStores { stores, spool, swept: std::sync::Once::new() })
    }

    fn bind(
        backends: &BlobStores,
        grants: Vec<BlobGrant>,
        host_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BlobCtx, String> {
        let mut ctx = BlobCtx::new(backends.spool.clone());
        if !grants.is_empty() {
            backends.swept.call_once(|| {
                crate::stale::sweep(&backends.spool.dir);
            });
        }
        for grant in grants {
            let Some(store) = backends.stores.get(&grant.store) else {
                let known = backends.stores.keys().cloned().collect::<Vec<_>>().join(", ");
                return Err(format!(
                    "cannot grant blobstore container `{}`: no store named `{}` is configured (known: {known})",
                    grant.container, grant.store
                ));
            };
            store.prepare(host_env).map_err(|e| {
                format!("cannot grant blobstore container `{}`: store `{}`: {e}", grant.container, grant.store)
            })?;
            ctx.grant(grant.container, grant.store, store.clone());
        }
        Ok(ctx)
    }

    fn state(bound: &Arc<BlobCtx>) -> Arc<BlobCtx> {
        bound.clone()
    }

    fn add_to_linker<T: HasCapability<Self>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        crate::add_to_linker(linker, view::<T>)
    }
}

fn view<T: HasCapability<BlobstoreCapability>>(data: &mut T) -> Blobstore<'_> {
    let parts = data.capability();
    Blobstore::new(parts.state, parts.table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_syntax() {
        assert_eq!(
            BlobGrant::parse("photos").unwrap(),
            BlobGrant { container: "photos".into(), store: "default".into() }
        );
        assert_eq!(BlobGrant::parse("photos=s3").unwrap().store, "s3");
        for bad in ["", "a b", "a=", "=b", "..", ".", "../x", "a/b", ".hidden", "a=..", "a\0"] {
            assert!(BlobGrant::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn runtime_config() {
        let config: BlobstoreConfig =
            toml::from_str("[stores.m]\ntype = \"memory\"\nquota = 10\n[stores.d]\ntype = \"fs\"\npath = \"blobs\"\n")
                .unwrap();
        assert_eq!(config.stores["m"], StoreConfig::Memory { quota: 10 });
        assert!(toml::from_str::<BlobstoreConfig>("[stores.x]\ntype = \"fs\"\n").is_err());
        assert!(toml::from_str::<BlobstoreConfig>("[stores.x]\ntype = \"memory\"\nbogus = 1\n").is_err());
    }
}
