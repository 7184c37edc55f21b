//! `wasi:config` for Wharf: a component reads the configuration its policy grants it, and
//! nothing else.
//!
//! The values are resolved by the caller (from `--config K=V`, the policy file, or granted
//! host environment variables); this crate only serves them. The interface is linked under
//! every name guests are built against: `wasi:config/store@0.2.0-rc.1` (current),
//! `wasi:config/store@0.2.0-draft-2024-09-27` (Spin), `wasi:config/store@0.2.0-draft` and its
//! older name `wasi:config/runtime@0.2.0-draft` (wasmCloud). All have the same two functions.
//!
//! ```
//! use wasmtime::component::Linker;
//! use wharf_config::{Config, ConfigVars};
//!
//! struct State {
//!     config: ConfigVars,
//! }
//!
//! let engine = wasmtime::Engine::default();
//! let mut linker = Linker::<State>::new(&engine);
//! wharf_config::add_to_linker(&mut linker, |state: &mut State| Config::new(&state.config))?;
//! let vars = ConfigVars::from_iter([("api_url", "https://api.example.com")]);
//! assert_eq!(vars.get("api_url"), Some("https://api.example.com"));
//! # Ok::<(), wasmtime::Error>(())
//! ```
use std::collections::BTreeMap;

use wasmtime::component::{HasData, Linker};

mod capability;

pub use capability::{ConfigCapability, ConfigGrant, ConfigSource};

mod bindings {
    pub mod rc1 {
        wasmtime::component::bindgen!({ path: "wit/rc1", world: "wasi:config/imports", imports: { default: trappable } });
    }
    pub mod draft_2024_09_27 {
        wasmtime::component::bindgen!({
            path: "wit/draft-2024-09-27",
            world: "wasi:config/imports",
            imports: { default: trappable },
        });
    }
    pub mod draft {
        wasmtime::component::bindgen!({ path: "wit/draft", world: "wasi:config/imports", imports: { default: trappable } });
    }
}

/// The configuration one component may read: key to value. Cheap to share between instances
/// only by reference; build one per component (a sandbox) and borrow it per store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigVars(BTreeMap<String, String>);

impl ConfigVars {
    /// No configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// The value of `key`, if granted.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every granted key and value, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ConfigVars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// A borrowed view of one store's [`ConfigVars`], what [`add_to_linker`]'s getter returns.
pub struct Config<'a> {
    vars: &'a ConfigVars,
}

impl<'a> Config<'a> {
    /// A view of `vars`.
    pub fn new(vars: &'a ConfigVars) -> Self {
        Config { vars }
    }

    fn get(&self, key: &str) -> Option<String> {
        self.vars.get(key).map(str::to_owned)
    }

    fn all(&self) -> Vec<(String, String)> {
        self.vars.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }
}

/// Implements one version's `store` (or `runtime`) host trait; the shapes are identical.
macro_rules! impl_host {
    ($($module:path, $error:ty;)*) => {$(
        impl $module for Config<'_> {
            fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, $error>> {
                Ok(Ok(Config::get(self, &key)))
            }

            fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, $error>> {
                Ok(Ok(self.all()))
            }
        }
    )*};
}

impl_host! {
    bindings::rc1::wasi::config::store::Host, bindings::rc1::wasi::config::store::Error;
    bindings::draft_2024_09_27::wasi::config::store::Host, bindings::draft_2024_09_27::wasi::config::store::Error;
    bindings::draft::wasi::config::store::Host, bindings::draft::wasi::config::store::Error;
    bindings::draft::wasi::config::runtime::Host, bindings::draft::wasi::config::runtime::ConfigError;
}

/// Adds `wasi:config` (every version listed in the crate docs) to `linker`; `getter` returns
/// the view of a store's configuration.
pub fn add_to_linker<T: 'static>(linker: &mut Linker<T>, getter: fn(&mut T) -> Config<'_>) -> wasmtime::Result<()> {
    bindings::rc1::wasi::config::store::add_to_linker::<T, HasConfig>(linker, getter)?;
    bindings::draft_2024_09_27::wasi::config::store::add_to_linker::<T, HasConfig>(linker, getter)?;
    bindings::draft::wasi::config::store::add_to_linker::<T, HasConfig>(linker, getter)?;
    bindings::draft::wasi::config::runtime::add_to_linker::<T, HasConfig>(linker, getter)?;
    Ok(())
}

struct HasConfig;

impl HasData for HasConfig {
    type Data<'a> = Config<'a>;
}
