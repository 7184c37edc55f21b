//! The seam between Wharf's host and the crates that give components a WASI interface beyond
//! WASI 0.2 itself (`wasi:keyvalue`, `wasi:config`, ...).
//!
//! A capability is one crate with one type implementing [`Capability`], registered with one
//! line in `wharf-host`'s `capabilities.rs`. The trait owns everything about it, in the order a
//! process meets it (after Spin's factors, without their macros):
//!
//! 1. **Grants** ([`Capability::GRANTS`], [`Capability::parse_grant`]): the policy keys and
//!    flags that grant it (`keyvalue = ["cache"]`, `--kv cache`), checked when the policy is
//!    parsed, wherever it comes from (flags, a policy file, a `wharf.toml` component).
//! 2. **Backends** ([`Capability::RuntimeConfig`], [`Capability::backends`]): its
//!    `[NAME]` section of the runtime-config file (e.g. `[keyvalue.stores.NAME]`), built once
//!    per process and shared.
//! 3. **Binding** ([`Capability::bind`]): one component's grants bound to those backends,
//!    once per sandbox; a grant that cannot be honoured is refused here, before anything runs.
//! 4. **Per-store state** ([`Capability::State`], [`Capability::state`]): made from the
//!    binding for every store (every run, HTTP request or MCP call).
//! 5. **Linking** ([`Capability::add_to_linker`], [`Capability::INTERFACES`]): the exact
//!    interface names it links, from which the host derives what it provides; a host test
//!    checks that every listed name really links.
//!
//! This crate knows nothing about policies, sandboxes or the host's store type: the host
//! reaches a capability's per-store state through [`HasCapability`].
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use wasmtime::component::{Linker, ResourceTable};

/// One policy key and its flag, e.g. key `keyvalue`, flag `--kv`. Both take the same text
/// (`BUCKET[=STORE]`), once per grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantKey {
    /// The key in policy files and `wharf.toml` components (a list of strings), e.g. `keyvalue`.
    pub key: &'static str,
    /// The command-line flag without dashes, e.g. `kv`; errors name grants by it.
    pub flag: &'static str,
    /// The flag's value in `--help`, e.g. `BUCKET[=STORE]`.
    pub value_name: &'static str,
    /// One line of `--help`.
    pub help: &'static str,
}

/// What [`Capability::backends`] may need besides its section.
#[derive(Clone, Debug)]
pub struct RuntimeContext {
    /// The runtime-config file's directory: relative paths in a section are relative to it.
    pub base: PathBuf,
    /// Wharf's data directory, where embedded default backends keep their files.
    pub data_dir: PathBuf,
}

/// The runtime config of a capability that has none: an empty section or none at all.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoRuntimeConfig {}

/// What a store's data lends a capability's host functions: its own per-store state and the
/// store's resource table (for the handles it gives the guest).
pub struct StoreParts<'a, S> {
    /// The capability's [`Capability::State`] in this store.
    pub state: &'a mut S,
    /// The store's resource table, shared with WASI.
    pub table: &'a mut ResourceTable,
}

/// A store's data (wharf-host's `HostState`) that holds `C`'s per-store state.
pub trait HasCapability<C: Capability>: Send + 'static {
    /// `C`'s state in this store and the resource table.
    fn capability(&mut self) -> StoreParts<'_, C::State>;
}

/// A WASI interface (or a family of versions of one) that the host can grant. See the crate
/// docs for the life cycle; `wharf-keyvalue` and `wharf-config` are the examples to copy.
pub trait Capability: Sized + Send + Sync + 'static {
    /// Its name: the runtime-config section (`[keyvalue]`), and how errors and logs call it.
    const NAME: &'static str;
    /// The policy keys and flags that grant it.
    const GRANTS: &'static [GrantKey];
    /// Every interface [`add_to_linker`](Capability::add_to_linker) links, by its exact name
    /// (`wasi:keyvalue/store@0.2.0-draft2`).
    const INTERFACES: &'static [&'static str];

    /// One parsed grant (a bucket, a config key, ...).
    type Grant;
    /// The `[NAME]` section of the runtime-config file; `Default` when it is absent.
    type RuntimeConfig: DeserializeOwned + Default;
    /// The backends of a process, built once and shared by every sandbox.
    type Backends: Send + Sync + 'static;
    /// One component's grants bound to backends, built once per sandbox.
    type Bound: Send + Sync + 'static;
    /// What one store holds, made from the binding for each store.
    type State: Send + 'static;

    /// Parses and checks one grant, written `text` under `key` (one of [`Self::GRANTS`]).
    /// The error says what is wrong; the caller names the flag and the value.
    fn parse_grant(key: &GrantKey, text: &str) -> Result<Self::Grant, String>;

    /// What `grant` grants (a bucket name, a config key): a later grant of the same name
    /// replaces an earlier one when policies merge (flags over a policy file).
    fn grant_name(grant: &Self::Grant) -> &str;

    /// Builds the backends from the runtime config. Nothing needs to be opened or connected
    /// yet; the error says what is wrong with the section.
    fn backends(config: Self::RuntimeConfig, context: &RuntimeContext) -> Result<Self::Backends, String>;

    /// Binds one component's grants (in policy order) to `backends`; `host_env` looks up host
    /// environment variables (libraries never read the process environment). The error is a
    /// whole sentence naming the grant, e.g. "cannot grant key-value bucket `b`: ...".
    fn bind(
        backends: &Self::Backends,
        grants: Vec<Self::Grant>,
        host_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self::Bound, String>;

    /// The state of one new store.
    fn state(bound: &Arc<Self::Bound>) -> Self::State;

    /// Links every interface in [`Self::INTERFACES`]; host functions reach their state through
    /// [`HasCapability`].
    fn add_to_linker<T: HasCapability<Self>>(linker: &mut Linker<T>) -> wasmtime::Result<()>;
}
