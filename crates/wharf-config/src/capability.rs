//! `wasi:config` as a Wharf capability: `--config KEY=VALUE` and `--config-env [KEY=]NAME`
//! grants (`config = [...]`, `config_env = [...]` in policy files), resolved once per sandbox.
use std::sync::Arc;

use wasmtime::component::Linker;
use wharf_capability::{Capability, GrantKey, HasCapability, NoRuntimeConfig, RuntimeContext};

use crate::{Config, ConfigVars};

/// The `wasi:config` capability (registered in `wharf-host`).
pub struct ConfigCapability;

/// Where a configuration value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// A literal value (`--config KEY=VALUE`).
    Value(String),
    /// The host environment variable of this name (`--config-env [KEY=]NAME`); the key is left
    /// out when the host does not have it.
    Env(String),
}

/// One configuration key the guest may read through `wasi:config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigGrant {
    /// The key the guest asks for.
    pub key: String,
    /// Its value.
    pub source: ConfigSource,
}

impl ConfigGrant {
    /// Parses `KEY=VALUE` (`--config`).
    pub fn parse_value(text: &str) -> Result<Self, String> {
        match text.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                Ok(ConfigGrant { key: key.to_owned(), source: ConfigSource::Value(value.to_owned()) })
            }
            _ => Err("expected KEY=VALUE".into()),
        }
    }

    /// Parses `NAME` or `KEY=NAME` (`--config-env`): the host variable `NAME` as key `KEY`
    /// (default: `NAME`).
    pub fn parse_env(text: &str) -> Result<Self, String> {
        let (key, var) = text.split_once('=').unwrap_or((text, text));
        if key.is_empty() || var.is_empty() || var.contains('\0') {
            return Err("expected NAME or KEY=NAME".into());
        }
        Ok(ConfigGrant { key: key.to_owned(), source: ConfigSource::Env(var.to_owned()) })
    }
}

const VALUE: GrantKey = GrantKey {
    key: "config",
    flag: "config",
    value_name: "KEY=VALUE",
    help: "Give the component a wasi:config value.",
};

const ENV: GrantKey = GrantKey {
    key: "config_env",
    flag: "config-env",
    value_name: "[KEY=]NAME",
    help: "Give the component the host environment variable NAME as wasi:config key KEY (default NAME).",
};

impl Capability for ConfigCapability {
    const NAME: &'static str = "config";
    const GRANTS: &'static [GrantKey] = &[VALUE, ENV];
    const INTERFACES: &'static [&'static str] = &[
        "wasi:config/store@0.2.0-rc.1",
        "wasi:config/store@0.2.0-draft-2024-09-27",
        "wasi:config/store@0.2.0-draft",
        "wasi:config/runtime@0.2.0-draft",
    ];

    type Grant = ConfigGrant;
    type RuntimeConfig = NoRuntimeConfig;
    type Backends = ();
    type Bound = ConfigVars;
    type State = Arc<ConfigVars>;

    fn parse_grant(key: &GrantKey, text: &str) -> Result<ConfigGrant, String> {
        if key.key == ENV.key { ConfigGrant::parse_env(text) } else { ConfigGrant::parse_value(text) }
    }

    fn grant_name(grant: &ConfigGrant) -> &str {
        &grant.key
    }

    fn backends(_config: NoRuntimeConfig, _context: &RuntimeContext) -> Result<(), String> {
        Ok(())
    }

    /// The granted values, with `--config-env` names looked up through `host_env` (left out
    /// when the host does not have them); a later grant of a key replaces an earlier one.
    fn bind(
        _backends: &(),
        grants: Vec<ConfigGrant>,
        host_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConfigVars, String> {
        let mut vars = ConfigVars::new();
        for grant in grants {
            let value = match grant.source {
                ConfigSource::Value(value) => Some(value),
                ConfigSource::Env(name) => host_env(&name),
            };
            if let Some(value) = value {
                vars.insert(grant.key, value);
            }
        }
        Ok(vars)
    }

    fn state(bound: &Arc<ConfigVars>) -> Arc<ConfigVars> {
        bound.clone()
    }

    fn add_to_linker<T: HasCapability<Self>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        crate::add_to_linker(linker, view::<T>)
    }
}

fn view<T: HasCapability<ConfigCapability>>(data: &mut T) -> Config<'_> {
    Config::new(data.capability().state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_syntax() {
        let value = ConfigGrant::parse_value("url=http://x?a=b").unwrap();
        assert_eq!(value.source, ConfigSource::Value("http://x?a=b".into()));
        assert!(ConfigGrant::parse_value("novalue").is_err());
        assert_eq!(ConfigGrant::parse_env("TOKEN").unwrap().key, "TOKEN");
        let env = ConfigGrant::parse_env("token=API_TOKEN").unwrap();
        assert_eq!((env.key.as_str(), env.source), ("token", ConfigSource::Env("API_TOKEN".into())));
    }
}
