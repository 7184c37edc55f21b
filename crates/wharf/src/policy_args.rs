//! The sandbox flags shared by every subcommand that runs a component.
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use wharf_host::Policy;
use wharf_host::policy::{ConfigGrant, DirGrant, EnvGrant, KvGrant, NetRule, parse_duration, parse_size};

/// Grants for the component. Nothing is granted unless named here or in `--policy`.
#[derive(Args, Debug, Default)]
pub struct PolicyArgs {
    /// Pass an environment variable: NAME=VALUE, or NAME to pass the host's value.
    #[arg(long = "env", short = 'e', value_name = "NAME[=VALUE]")]
    env: Vec<String>,

    /// Grant a host directory, read-write, or read-only with a `:ro` suffix.
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]")]
    dirs: Vec<String>,

    /// Allow outbound connections: a host name, `*.domain`, an IP address or a CIDR range,
    /// each with an optional `:PORT`.
    #[arg(long = "allow-net", value_name = "HOST[:PORT]")]
    allow_net: Vec<String>,

    /// Memory limit for each linear memory, e.g. 64MiB (default 512MiB).
    #[arg(long, value_name = "SIZE")]
    max_memory: Option<String>,

    /// Stop the component after this long, e.g. 500ms, 30s, 2m.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,

    /// Read grants from a TOML policy file; flags add to it and override its limits.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Grant a wasi:keyvalue bucket, kept in the store `default` (a redb file under the data
    /// directory) or in STORE from `--runtime-config`.
    #[arg(long = "kv", value_name = "BUCKET[=STORE]")]
    kv: Vec<String>,

    /// Give the component a wasi:config value.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,

    /// Give the component the host environment variable NAME as wasi:config key KEY (default NAME).
    #[arg(long = "config-env", value_name = "[KEY=]NAME")]
    config_env: Vec<String>,

    /// Read key-value store definitions (`[keyvalue.stores.NAME]`, type redb, memory or redis)
    /// from a TOML file.
    #[arg(long, value_name = "FILE")]
    runtime_config: Option<PathBuf>,
}

impl PolicyArgs {
    /// Whether any grant flag or `--policy` was given.
    pub fn is_set(&self) -> bool {
        let no_grants = self.env.is_empty()
            && self.dirs.is_empty()
            && self.allow_net.is_empty()
            && self.kv.is_empty()
            && self.config.is_empty()
            && self.config_env.is_empty();
        !no_grants || self.max_memory.is_some() || self.timeout.is_some() || self.policy.is_some()
    }

    /// The policy from `--policy` (if any) with the flags merged on top.
    pub fn to_policy(&self) -> anyhow::Result<Policy> {
        let file = match &self.policy {
            Some(path) => read_policy_file(path)?,
            None => Policy::default(),
        };
        let flags = Policy {
            env: self.env.iter().map(|e| EnvGrant::parse(e)).collect::<Result<_, _>>()?,
            dirs: self.dirs.iter().map(|d| DirGrant::parse(d, Path::new(""))).collect::<Result<_, _>>()?,
            allow_net: self.allow_net.iter().map(|n| n.parse::<NetRule>()).collect::<Result<_, _>>()?,
            max_memory: self.max_memory.as_deref().map(parse_size).transpose()?,
            timeout: self.timeout.as_deref().map(parse_duration).transpose()?,
            keyvalue: self.kv.iter().map(|k| KvGrant::parse(k)).collect::<Result<_, _>>()?,
            config: (self.config.iter().map(|c| ConfigGrant::parse_value(c)))
                .chain(self.config_env.iter().map(|c| ConfigGrant::parse_env(c)))
                .collect::<Result<_, _>>()?,
        };
        Ok(file.merge(flags))
    }

    /// The key-value stores from `--runtime-config` (if any), plus the default redb store.
    pub fn stores(&self) -> anyhow::Result<wharf_keyvalue::Stores> {
        crate::runtime_config::stores(self.runtime_config.as_deref())
    }
}

/// Reads a policy file; relative paths in it are relative to the file.
pub fn read_policy_file(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read policy file {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new(""));
    Policy::from_toml(&text, base).with_context(|| format!("in policy file {}", path.display()))
}
