//! `wasi:keyvalue` as a Wharf capability: `--kv BUCKET[=STORE]` grants (`keyvalue = [...]` in
//! policy files), `[keyvalue.stores.NAME]` runtime config, buckets bound to stores per sandbox.
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use wasmtime::component::Linker;
use wharf_capability::{Capability, GrantKey, HasCapability, RuntimeContext};

use crate::stores::{DEFAULT_STORE, StoreConfig, Stores};
use crate::{KeyValue, KeyValueCtx};

/// The `wasi:keyvalue` capability (registered in `wharf-host`).
pub struct KeyValueCapability;

/// One key-value bucket the guest may open (`--kv NAME` or `--kv NAME=STORE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvGrant {
    /// The name the guest passes to `open`.
    pub bucket: String,
    /// The configured store that holds it (`default` unless named).
    pub store: String,
}

/// Bucket and store names: ASCII letters, digits, `_`, `-` and `.` (so they need no escaping
/// in a redb table name or a Redis key prefix).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

impl KvGrant {
    /// Parses `BUCKET` or `BUCKET=STORE`; the error says what is expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (bucket, store) = text.split_once('=').unwrap_or((text, DEFAULT_STORE));
        if !valid_name(bucket) || !valid_name(store) {
            return Err("expected BUCKET or BUCKET=STORE (letters, digits, `_`, `-`, `.`)".into());
        }
        Ok(KvGrant { bucket: bucket.to_owned(), store: store.to_owned() })
    }
}

/// The `[keyvalue]` section of the runtime config: named stores (see [`StoreConfig`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValueConfig {
    /// Store name to backend.
    #[serde(default)]
    pub stores: BTreeMap<String, StoreConfig>,
}

impl Capability for KeyValueCapability {
    const NAME: &'static str = "keyvalue";
    const GRANTS: &'static [GrantKey] = &[GrantKey {
        key: "keyvalue",
        flag: "kv",
        value_name: "BUCKET[=STORE]",
        help: "Grant a wasi:keyvalue bucket, kept in the store `default` (a redb file under the data \
               directory) or in STORE from `--runtime-config`.",
    }];
    const INTERFACES: &'static [&'static str] = &[
        "wasi:keyvalue/store@0.2.0-draft2",
        "wasi:keyvalue/atomics@0.2.0-draft2",
        "wasi:keyvalue/batch@0.2.0-draft2",
        "wasi:keyvalue/store@0.2.0-draft",
        "wasi:keyvalue/atomics@0.2.0-draft",
        "wasi:keyvalue/batch@0.2.0-draft",
    ];

    type Grant = KvGrant;
    type RuntimeConfig = KeyValueConfig;
    type Backends = Stores;
    type Bound = KeyValueCtx;
    // Shared with the sandbox: a request's store must not copy the bucket map.
    type State = Arc<KeyValueCtx>;

    fn parse_grant(_key: &GrantKey, text: &str) -> Result<KvGrant, String> {
        KvGrant::parse(text)
    }

    fn grant_name(grant: &KvGrant) -> &str {
        &grant.bucket
    }

    /// The configured stores, plus `default` as a redb file under the data directory unless
    /// configured; relative redb paths are relative to the runtime-config file.
    fn backends(mut config: KeyValueConfig, context: &RuntimeContext) -> Result<Stores, String> {
        for store in config.stores.values_mut() {
            if let StoreConfig::Redb { path } = store {
                *path = context.base.join(&*path);
            }
        }
        let default_path = context.data_dir.join("keyvalue").join("default.redb");
        Stores::new(&config.stores, default_path).map_err(|e| e.to_string())
    }

    fn bind(
        stores: &Stores,
        grants: Vec<KvGrant>,
        _host_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<KeyValueCtx, String> {
        let mut ctx = KeyValueCtx::new();
        for grant in grants {
            let Some(store) = stores.get(&grant.store) else {
                let known = stores.names().collect::<Vec<_>>().join(", ");
                return Err(format!(
                    "cannot grant key-value bucket `{}`: no store named `{}` is configured (known: {known})",
                    grant.bucket, grant.store
                ));
            };
            ctx.grant(grant.bucket, store);
        }
        Ok(ctx)
    }

    fn state(bound: &Arc<KeyValueCtx>) -> Arc<KeyValueCtx> {
        bound.clone()
    }

    fn add_to_linker<T: HasCapability<Self>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        crate::add_to_linker(linker, view::<T>)
    }
}

fn view<T: HasCapability<KeyValueCapability>>(data: &mut T) -> KeyValue<'_> {
    let parts = data.capability();
    KeyValue::new(parts.state, parts.table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_syntax() {
        assert_eq!(KvGrant::parse("cache").unwrap(), KvGrant { bucket: "cache".into(), store: "default".into() });
        assert_eq!(KvGrant::parse("cache=shared").unwrap().store, "shared");
        for bad in ["", "a b", "a=", "=b", "a:b", "a*"] {
            assert!(KvGrant::parse(bad).is_err(), "{bad}");
        }
    }
}
