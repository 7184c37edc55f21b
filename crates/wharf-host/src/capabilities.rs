//! The capabilities this host offers beyond WASI 0.2, registered in one list ([`REGISTERED`]),
//! and the type-erased glue that lets policies, sandboxes, stores and the linker handle each
//! one without naming it. The trait they implement is [`wharf_capability::Capability`].
use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::Arc;

use wasmtime::component::Linker;
use wharf_capability::{Capability, HasCapability, StoreParts};
pub use wharf_capability::{GrantKey, RuntimeContext};

use crate::policy::{CapabilityGrant, PolicyError};
use crate::sandbox::HostState;

/// Every capability, in the order they are linked and listed. Adding one: a crate that
/// implements [`Capability`], a dependency in Cargo.toml, and one line here.
static REGISTERED: &[&dyn Registered] = &[
    &Registration::<wharf_keyvalue::KeyValueCapability>(PhantomData),
    &Registration::<wharf_config::ConfigCapability>(PhantomData),
    &Registration::<wharf_blobstore::BlobstoreCapability>(PhantomData),
    &Registration::<wharf_messaging::MessagingCapability>(PhantomData),
];

/// Every grant key (policy key and flag) of every registered capability.
pub fn grant_keys() -> impl Iterator<Item = &'static GrantKey> {
    REGISTERED.iter().flat_map(|c| c.grant_keys())
}

/// Every interface name the registered capabilities link, exactly as linked.
pub fn interfaces() -> impl Iterator<Item = &'static str> {
    REGISTERED.iter().flat_map(|c| c.interfaces()).copied()
}

/// The registered capability names, which are also their runtime-config sections.
pub fn names() -> impl Iterator<Item = &'static str> {
    REGISTERED.iter().map(|c| c.name())
}

/// Parses one grant written under the policy key `key`: `Ok(None)` if no capability owns the
/// key.
pub(crate) fn parse_grant(key: &str, text: &str) -> Result<Option<CapabilityGrant>, PolicyError> {
    for capability in REGISTERED {
        if let Some(grant_key) = capability.grant_keys().iter().find(|k| k.key == key) {
            let name = capability
                .grant_name(grant_key, text)
                .map_err(|reason| PolicyError::invalid(grant_key.flag, text, reason))?;
            return Ok(Some(CapabilityGrant {
                capability: capability.name(),
                key: grant_key.key,
                name,
                value: text.to_owned(),
            }));
        }
    }
    Ok(None)
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    REGISTERED.iter().try_for_each(|c| c.add_to_linker(linker))
}

/// A runtime-config section that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackendsError {
    /// A section no capability owns.
    #[error("unknown section `[{section}]` (known: {known})")]
    UnknownSection {
        /// The section's name.
        section: String,
        /// The registered capability names, comma-separated.
        known: String,
    },
    /// A capability refused its section.
    #[error("[{capability}]: {reason}")]
    Invalid {
        /// The capability (and section) name.
        capability: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The backends of every capability for one process, built once from the runtime config
/// (e.g. the key-value stores) and shared by every sandbox built from it.
#[derive(Clone)]
pub struct Backends {
    // One per registered capability, in `REGISTERED` order.
    backends: Arc<[Arc<dyn Any + Send + Sync>]>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(names()).finish()
    }
}

impl Backends {
    /// Builds every capability's backends from a runtime-config file's top-level table, each
    /// from its own `[NAME]` section (its defaults when absent). An unknown section is an error.
    pub fn new(sections: &toml::Table, context: &RuntimeContext) -> Result<Self, BackendsError> {
        if let Some(section) = sections.keys().find(|s| !names().any(|n| n == s.as_str())) {
            let known = names().collect::<Vec<_>>().join(", ");
            return Err(BackendsError::UnknownSection { section: section.clone(), known });
        }
        let backends = REGISTERED
            .iter()
            .map(|c| {
                c.backends(sections.get(c.name()), context)
                    .map_err(|reason| BackendsError::Invalid { capability: c.name(), reason })
            })
            .collect::<Result<_, _>>()?;
        Ok(Backends { backends })
    }

    /// The backends of capability `C` (e.g. the message brokers a trigger subscribes with).
    pub fn get<C: Capability>(&self) -> Option<&C::Backends> {
        REGISTERED
            .iter()
            .zip(self.backends.iter())
            .find(|(c, _)| c.capability_id() == TypeId::of::<C>())
            .and_then(|(_, backends)| backends.downcast_ref::<C::Backends>())
    }

    /// Every capability's defaults (no runtime-config file), with files under `data_dir`.
    pub fn defaults(data_dir: &std::path::Path) -> Result<Self, BackendsError> {
        let context = RuntimeContext { base: data_dir.to_path_buf(), data_dir: data_dir.to_path_buf() };
        Self::new(&toml::Table::new(), &context)
    }
}

/// One component's grants bound to the backends, one entry per registered capability: what a
/// sandbox holds and clones into each store's state.
#[derive(Clone)]
pub(crate) struct Bound(Arc<[Arc<dyn Any + Send + Sync>]>);

impl Bound {
    /// Binds `grants` (every capability's, in policy order) to `backends`.
    pub(crate) fn new(
        backends: &Backends,
        grants: &[CapabilityGrant],
        host_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let bound = REGISTERED
            .iter()
            .zip(backends.backends.iter())
            .map(|(c, backends)| {
                let mine = grants.iter().filter(|g| g.capability == c.name());
                c.bind(backends.as_ref(), &mut mine.map(|g| (g.key, g.value.as_str())), host_env)
            })
            .collect::<Result<_, _>>()?;
        Ok(Bound(bound))
    }

    /// The per-store state of every capability, for a new store.
    pub(crate) fn states(&self) -> States {
        States(REGISTERED.iter().zip(self.0.iter()).map(|(c, bound)| (c.capability_id(), c.state(bound))).collect())
    }
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(names()).finish()
    }
}

/// The per-store state of every capability, found by the capability's type.
pub(crate) struct States(Vec<(TypeId, Box<dyn Any + Send>)>);

impl<C: Capability> HasCapability<C> for HostState {
    fn capability(&mut self) -> StoreParts<'_, C::State> {
        let (states, table) = self.capabilities();
        let state = states
            .0
            .iter_mut()
            .find(|(id, _)| *id == TypeId::of::<C>())
            .and_then(|(_, state)| state.downcast_mut::<C::State>())
            // Every registered capability has a state in every store (`Bound::states`), and
            // only registered capabilities are linked.
            .unwrap_or_else(|| panic!("capability `{}` has no state in this store", C::NAME));
        StoreParts { state, table }
    }
}

/// A capability with its types erased, so [`REGISTERED`] can list them side by side.
trait Registered: Send + Sync {
    fn name(&self) -> &'static str;
    fn grant_keys(&self) -> &'static [GrantKey];
    fn interfaces(&self) -> &'static [&'static str];
    fn capability_id(&self) -> TypeId;
    fn grant_name(&self, key: &GrantKey, text: &str) -> Result<String, String>;
    fn backends(
        &self,
        section: Option<&toml::Value>,
        context: &RuntimeContext,
    ) -> Result<Arc<dyn Any + Send + Sync>, String>;
    fn bind(
        &self,
        backends: &(dyn Any + Send + Sync),
        grants: &mut dyn Iterator<Item = (&'static str, &str)>,
        host_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn Any + Send + Sync>, String>;
    fn state(&self, bound: &Arc<dyn Any + Send + Sync>) -> Box<dyn Any + Send>;
    fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()>;
}

struct Registration<C>(PhantomData<fn() -> C>);

impl<C: Capability> Registration<C> {
    fn parse(key: &str, text: &str) -> Result<C::Grant, String> {
        let key = C::GRANTS.iter().find(|k| k.key == key).ok_or_else(|| format!("no grant key `{key}`"))?;
        C::parse_grant(key, text)
    }
}

impl<C: Capability> Registered for Registration<C> {
    fn name(&self) -> &'static str {
        C::NAME
    }

    fn grant_keys(&self) -> &'static [GrantKey] {
        C::GRANTS
    }

    fn interfaces(&self) -> &'static [&'static str] {
        C::INTERFACES
    }

    fn capability_id(&self) -> TypeId {
        TypeId::of::<C>()
    }

    fn grant_name(&self, key: &GrantKey, text: &str) -> Result<String, String> {
        C::parse_grant(key, text).map(|grant| C::grant_name(&grant).to_owned())
    }

    fn backends(
        &self,
        section: Option<&toml::Value>,
        context: &RuntimeContext,
    ) -> Result<Arc<dyn Any + Send + Sync>, String> {
        let config = match section {
            Some(value) => value
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| redact_value(e.message().trim()).replace('\n', " "))?,
            None => C::RuntimeConfig::default(),
        };
        Ok(Arc::new(C::backends(config, context)?))
    }

    fn bind(
        &self,
        backends: &(dyn Any + Send + Sync),
        grants: &mut dyn Iterator<Item = (&'static str, &str)>,
        host_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn Any + Send + Sync>, String> {
        let backends = backends.downcast_ref::<C::Backends>().ok_or("backends of another capability")?;
        // The grants were checked when the policy was parsed; parsing again cannot fail.
        let grants = grants.map(|(key, text)| Self::parse(key, text)).collect::<Result<_, _>>()?;
        Ok(Arc::new(C::bind(backends, grants, host_env)?))
    }

    fn state(&self, bound: &Arc<dyn Any + Send + Sync>) -> Box<dyn Any + Send> {
        // `Bound::new` made this entry with this capability's `bind`.
        let bound = Arc::downcast::<C::Bound>(bound.clone())
            .unwrap_or_else(|_| panic!("capability `{}` was bound by another", C::NAME));
        Box::new(C::state(&bound))
    }

    fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        C::add_to_linker(linker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EngineOptions, Host, Policy, Sandbox, Stdio, WharfEngine};

    /// Whether `linker` defines something under the top-level name `name`: defining a function
    /// there fails exactly then (shadowing is off).
    fn defines(linker: &Linker<HostState>, name: &str) -> bool {
        let mut probe = linker.clone();
        probe.root().func_new(name, |_, _, _, _| Ok(())).is_err()
    }

    #[test]
    fn every_listed_interface_links_and_is_provided() {
        let host = Host::new(WharfEngine::new(&EngineOptions::default()).unwrap(), None).unwrap();
        assert!(interfaces().count() >= 10);
        // Both engines' linkers: a capability reaches components of either.
        for kind in [crate::EngineKind::Sync, crate::EngineKind::Concurrent] {
            for name in interfaces() {
                assert!(defines(host.linker_of(kind), name), "{name} is listed but not linked ({kind:?})");
                assert!(crate::provides::provides(name), "{name}");
            }
        }
        // The check can fail: a name nobody links.
        let unlinked = "wasi:keyvalue/store@0.2.0-draft9";
        assert!(!defines(host.linker_of(crate::EngineKind::Concurrent), unlinked));
        assert!(!crate::provides::provides(unlinked));
    }

    #[test]
    fn grant_keys_and_sections_are_unique() {
        let keys: Vec<_> = grant_keys().collect();
        for (i, key) in keys.iter().enumerate() {
            assert!(!keys[..i].iter().any(|k| k.key == key.key || k.flag == key.flag), "{key:?} twice");
            assert!(!crate::policy::CORE_KEYS.contains(&key.key), "{key:?} shadows a policy key");
        }
        let names: Vec<_> = names().collect();
        assert!(names.iter().enumerate().all(|(i, n)| !names[..i].contains(n)), "{names:?}");
    }

    #[test]
    fn a_store_reaches_every_capability() {
        let dir = tempfile::tempdir().unwrap();
        let sections: toml::Table = toml::from_str("[keyvalue.stores.default]\ntype = \"memory\"").unwrap();
        let context = RuntimeContext { base: dir.path().into(), data_dir: dir.path().into() };
        let backends = Backends::new(&sections, &context).unwrap();
        let policy = Policy::from_toml("keyvalue = [\"b\"]\nconfig_env = [\"k=HOSTVAR\"]", dir.path()).unwrap();
        let sandbox = Sandbox::new(&policy, &backends, |name| (name == "HOSTVAR").then(|| "v".into())).unwrap();
        let engine = WharfEngine::new(&EngineOptions::default()).unwrap();
        let mut store = sandbox.store(&engine, &[], Stdio::Null).unwrap();
        let kv = HasCapability::<wharf_keyvalue::KeyValueCapability>::capability(store.data_mut());
        assert_eq!(kv.state.buckets().collect::<Vec<_>>(), ["b"]);
        let config = HasCapability::<wharf_config::ConfigCapability>::capability(store.data_mut());
        assert_eq!(config.state.get("k"), Some("v"));

        // A section nobody owns, and a bad one, are refused by name.
        let bad: toml::Table = toml::from_str("[floppy]").unwrap();
        let err = Backends::new(&bad, &context).unwrap_err().to_string();
        assert!(err.starts_with("unknown section `[floppy]` (known: keyvalue, config"), "{err}");
        let bad: toml::Table = toml::from_str("[keyvalue.stores.x]\ntype = \"floppy\"").unwrap();
        let err = Backends::new(&bad, &context).unwrap_err();
        assert!(err.to_string().starts_with("[keyvalue]: unknown variant `floppy`"), "{err}");
        let bad: toml::Table = toml::from_str("[config]\nx = 1").unwrap();
        assert!(Backends::new(&bad, &context).unwrap_err().to_string().starts_with("[config]: unknown field `x`"));
        // A grant bound to a store that is not configured.
        let policy = Policy::from_toml("keyvalue = [\"b=elsewhere\"]", dir.path()).unwrap();
        let err = Sandbox::new(&policy, &backends, |_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot grant key-value bucket `b`: no store named `elsewhere` is configured (known: default)"
        );
    }
}

/// A runtime-config error without the value it quotes: serde's "invalid type: integer
/// `12345`, expected a string" would print a numeric password or token (runtime configs hold
/// NATS, Redis and S3 credentials); only the value's kind stays. Field names (`unknown field
/// `x``) stay too.
fn redact_value(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let (Some(rest), Some(end)) = (message.strip_prefix(prefix), message.rfind(", expected")) {
            let kind = rest.split([' ', ',']).next().unwrap_or_default();
            return format!("{prefix}{kind}{}", &message[end.max(prefix.len())..]);
        }
    }
    message.to_owned()
}

#[cfg(test)]
mod redact_tests {
    #[test]
    fn runtime_config_errors_do_not_quote_values() {
        let e = super::redact_value("invalid type: integer `98765432109`, expected a string");
        assert_eq!(e, "invalid type: integer, expected a string");
        let e = super::redact_value("invalid value: string \"s3cr, expected et\", expected x");
        assert!(!e.contains("s3cr"), "{e}");
        assert_eq!(super::redact_value("unknown field `passwd`"), "unknown field `passwd`");
    }
}
