//! The sandbox flags shared by every subcommand that runs a component.
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use wharf_host::policy::{CapabilityGrant, DirGrant, EnvGrant, NetRule, parse_duration, parse_size};
use wharf_host::{Backends, Policy};

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

    /// The capabilities' grant flags (`--kv`, `--config`, `--config-env`, ...).
    #[command(flatten)]
    capabilities: CapabilityArgs,

    /// Read the capabilities' backends from a TOML file: key-value stores
    /// (`[keyvalue.stores.NAME]`, type redb, memory or redis), ...
    #[arg(long, value_name = "FILE")]
    runtime_config: Option<PathBuf>,
}

impl PolicyArgs {
    /// Whether any grant flag or `--policy` was given.
    pub fn is_set(&self) -> bool {
        let no_grants = self.env.is_empty()
            && self.dirs.is_empty()
            && self.allow_net.is_empty()
            && self.capabilities.grants.is_empty();
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
            grants: (self.capabilities.grants.iter())
                .map(|(key, value)| CapabilityGrant::parse(key, value))
                .collect::<Result<_, _>>()?,
        };
        Ok(file.merge(flags))
    }

    /// The capabilities' backends from `--runtime-config` (if any) and their defaults (the
    /// key-value store `default` is a redb file under the data directory).
    pub fn backends(&self) -> anyhow::Result<Backends> {
        crate::runtime_config::backends(self.runtime_config.as_deref())
    }

    /// Wharf's state on disk (cache, data directory, `--runtime-config` stores), which no
    /// read-write grant may reach.
    pub fn state_dirs(&self) -> crate::dirs::StateDirs {
        crate::dirs::StateDirs::new(self.runtime_config.as_deref())
    }
}

/// The grant flags that the capabilities declare (`wharf_host::capabilities::grant_keys`),
/// each repeatable, kept as (policy key, value) in the order given per flag.
#[derive(Clone, Debug, Default)]
struct CapabilityArgs {
    grants: Vec<(&'static str, String)>,
}

impl Args for CapabilityArgs {
    fn augment_args(command: Command) -> Command {
        wharf_host::capabilities::grant_keys().fold(command, |command, key| {
            command.arg(
                Arg::new(key.flag).long(key.flag).value_name(key.value_name).help(key.help).action(ArgAction::Append),
            )
        })
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for CapabilityArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = CapabilityArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for key in wharf_host::capabilities::grant_keys() {
            let values = matches
                .try_get_many::<String>(key.flag)
                .map_err(|e| clap::Error::raw(clap::error::ErrorKind::InvalidValue, e))?;
            self.grants.extend(values.into_iter().flatten().map(|value| (key.key, value.clone())));
        }
        Ok(())
    }
}

/// Reads a policy file; relative paths in it are relative to the file.
pub fn read_policy_file(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read policy file {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new(""));
    Policy::from_toml(&text, base).with_context(|| format!("in policy file {}", path.display()))
}
