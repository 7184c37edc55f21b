//! What a component may touch. Everything is denied unless a [`Policy`] grants it; every
//! subcommand (run, serve, mcp) builds its sandbox from one.
//!
//! A policy comes from flags, from a TOML file, or both ([`Policy::merge`]). The file uses the
//! flags' own syntax, so there is one grammar to learn:
//!
//! ```toml
//! env = ["GREETING=hello", "HOME"]          # NAME=VALUE, or NAME to pass the host's value
//! dirs = ["./data::/data", "./static::/static:ro"]
//! allow_net = ["api.example.com:443", "*.example.test", "10.0.0.0/8", "[::1]:8080"]
//! max_memory = "64MiB"
//! timeout = "30s"
//! keyvalue = ["counters", "cache=shared"]  # BUCKET or BUCKET=STORE
//! config = ["api_url=https://api.example.com"]
//! config_env = ["API_TOKEN"]                # NAME or KEY=NAME: a host variable as config
//! ```
//!
//! The keys after `timeout` belong to capabilities ([`crate::capabilities`]): each checks its
//! own grants, and the policy keeps them as [`CapabilityGrant`]s.
pub(crate) mod net;
mod special;
mod units;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use net::{HostPattern, NetGrants, NetRule};
pub use units::{format_size, parse_size};

/// Memory a component may use when no policy says otherwise.
pub const DEFAULT_MAX_MEMORY: u64 = 512 << 20;

/// A policy that could not be parsed: which setting, what value, and why.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// One setting has a value that cannot be used.
    #[error("invalid {field} `{value}`: {reason}")]
    Invalid {
        /// The flag or file key, e.g. `allow-net`.
        field: &'static str,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TOML file itself is malformed or has unknown keys.
    #[error("line {line}, column {column}: {message}")]
    Toml {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A table's keys or value types are wrong (no position is known).
    #[error("{0}")]
    Keys(String),
}

impl PolicyError {
    pub(crate) fn invalid(field: &'static str, value: &str, reason: impl Into<String>) -> Self {
        PolicyError::Invalid { field, value: value.to_string(), reason: reason.into() }
    }
}

/// One environment variable granted to the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvGrant {
    /// The variable's name.
    pub name: String,
    /// Its value, or `None` to pass the host's value (if the host has one).
    pub value: Option<String>,
}

impl EnvGrant {
    /// Parses `NAME=VALUE` or `NAME`.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let (name, value) = match text.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (text, None),
        };
        if name.is_empty() || name.contains('\0') {
            return Err(PolicyError::invalid("env", text, "expected NAME=VALUE or NAME"));
        }
        Ok(EnvGrant { name: name.to_string(), value })
    }
}

/// One host directory made visible to the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

impl DirGrant {
    /// Parses `HOST[::GUEST][:ro]` (wasmtime's `--dir` syntax plus a read-only suffix). A
    /// relative `HOST` is taken relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, PolicyError> {
        let (spec, read_only) = match text.strip_suffix(":ro") {
            Some(spec) if !spec.ends_with(':') => (spec, true),
            _ => (text, false),
        };
        let (host, guest) = match spec.split_once("::") {
            Some((h, g)) => (h, g.to_string()),
            None => (spec, spec.to_string()),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(PolicyError::invalid("dir", text, "expected HOST[::GUEST][:ro]"));
        }
        // `X::/data:RO`, `X::/data:ro ` or `X::/data:rw` would be a read-write grant named
        // `/data:RO`: refuse a guest path with `:` rather than read it as a flag or as a name.
        if guest.contains(':') || guest.ends_with(char::is_whitespace) {
            return Err(PolicyError::invalid(
                "dir",
                text,
                "the guest path may not hold `:` or end in a space (only a final `:ro`, in lower case, makes a grant \
                 read-only; name the guest path with HOST::GUEST if HOST holds `:`)",
            ));
        }
        Ok(DirGrant { host: base.join(host), guest, read_only })
    }
}

/// Everything a component is allowed: environment, directories, network, memory and time.
/// The default grants nothing, with [`DEFAULT_MAX_MEMORY`] and no timeout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Environment variables the guest sees.
    pub env: Vec<EnvGrant>,
    /// Directories the guest sees.
    pub dirs: Vec<DirGrant>,
    /// Hosts the guest may connect to.
    pub allow_net: Vec<NetRule>,
    /// Ceiling in bytes for each linear memory of an instance.
    pub max_memory: Option<u64>,
    /// Wall-clock budget for one run or one request.
    pub timeout: Option<Duration>,
    /// Grants of the capabilities (key-value buckets, config values, ...), in the order given.
    pub grants: Vec<CapabilityGrant>,
}

/// One grant of a capability ([`crate::capabilities`]): a key-value bucket, a config value, ...
/// checked by its capability when parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityGrant {
    /// The capability, e.g. `keyvalue`.
    pub capability: &'static str,
    /// The policy key it was written under, e.g. `keyvalue` or `config_env`.
    pub key: &'static str,
    /// What it grants (a bucket, a config key): when policies merge, a later grant of the same
    /// name replaces an earlier one.
    pub name: String,
    /// The grant as written, e.g. `cache=shared`.
    pub value: String,
}

impl CapabilityGrant {
    /// Parses `text` as a grant under the policy key `key` (e.g. `keyvalue`, whose flag is
    /// `--kv`); the error names the flag and the value.
    pub fn parse(key: &str, text: &str) -> Result<Self, PolicyError> {
        crate::capabilities::parse_grant(key, text)?
            .ok_or_else(|| PolicyError::Keys(format!("no capability takes grants under `{key}`")))
    }
}

/// The policy keys that are not capability grants.
pub(crate) const CORE_KEYS: &[&str] = &["env", "dirs", "allow_net", "max_memory", "timeout"];

// Capability keys are read separately (`Policy::with_grants`), so unknown keys are checked
// there rather than by serde.
#[derive(Deserialize, Default)]
struct PolicyFile {
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    dirs: Vec<String>,
    #[serde(default)]
    allow_net: Vec<String>,
    max_memory: Option<String>,
    timeout: Option<String>,
}

impl Policy {
    /// Parses a policy file's text. Relative directories are taken relative to `base` (the
    /// file's own directory), as Docker Compose does.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let keys: BTreeMap<String, toml::Spanned<toml::Value>> =
            toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let entries = keys.into_iter().map(|(key, value)| (key, value.span(), value.into_inner()));
        Self::from_file(file, base)?.with_grants(entries).map_err(|(span, message)| {
            let (line, column) = position(text, span.start);
            PolicyError::Toml { line, column, message }
        })
    }

    /// Reads the policy keys of an already parsed TOML table (e.g. a component in an app
    /// manifest, after its own keys were removed). Unknown keys are errors here too.
    pub fn from_toml_table(table: toml::Table, base: &Path) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| PolicyError::Keys(e.message().trim().replace('\n', " ")))?;
        let entries = table.into_iter().map(|(key, value)| (key, 0..0, value));
        Self::from_file(file, base)?.with_grants(entries).map_err(|(_, message)| PolicyError::Keys(message))
    }

    /// Adds the capability grants among `entries` (key, where its value is, value), refusing
    /// keys that neither the policy nor a capability knows.
    fn with_grants(
        mut self,
        entries: impl Iterator<Item = (String, Range<usize>, toml::Value)>,
    ) -> Result<Self, (Range<usize>, String)> {
        for (key, span, value) in entries {
            if CORE_KEYS.contains(&key.as_str()) {
                continue;
            }
            if !crate::capabilities::grant_keys().any(|k| k.key == key) {
                let known: Vec<String> = (CORE_KEYS.iter().copied())
                    .chain(crate::capabilities::grant_keys().map(|k| k.key))
                    .map(|k| format!("`{k}`"))
                    .collect();
                return Err((span, format!("unknown field `{key}`, expected one of {}", known.join(", "))));
            }
            let texts: Vec<String> =
                value.try_into().map_err(|_| (span.clone(), format!("`{key}` must be an array of strings")))?;
            for text in texts {
                self.grants.push(CapabilityGrant::parse(&key, &text).map_err(|e| (span.clone(), e.to_string()))?);
            }
        }
        Ok(self)
    }

    fn from_file(file: PolicyFile, base: &Path) -> Result<Self, PolicyError> {
        Ok(Policy {
            env: file.env.iter().map(|e| EnvGrant::parse(e)).collect::<Result<_, _>>()?,
            dirs: file.dirs.iter().map(|d| DirGrant::parse(d, base)).collect::<Result<_, _>>()?,
            allow_net: file.allow_net.iter().map(|n| n.parse()).collect::<Result<_, _>>()?,
            max_memory: file.max_memory.as_deref().map(parse_size).transpose()?,
            timeout: file.timeout.as_deref().map(parse_duration).transpose()?,
            grants: Vec::new(),
        })
    }

    /// Combines two policies, `other` (typically the flags) on top of `self` (the file):
    /// grants are added together, a variable set by both takes `other`'s value, and a limit set
    /// by `other` replaces `self`'s. A capability grant of the same name (a bucket, a config
    /// key) in both takes `other`'s.
    pub fn merge(mut self, other: Policy) -> Policy {
        self.env.retain(|e| !other.env.iter().any(|o| o.name == e.name));
        self.env.extend(other.env);
        self.dirs.extend(other.dirs);
        self.allow_net.extend(other.allow_net);
        self.max_memory = other.max_memory.or(self.max_memory);
        self.timeout = other.timeout.or(self.timeout);
        let same = |a: &CapabilityGrant, b: &CapabilityGrant| a.capability == b.capability && a.name == b.name;
        self.grants.retain(|g| !other.grants.iter().any(|o| same(g, o)));
        self.grants.extend(other.grants);
        self
    }

    /// The memory ceiling in force: the granted one or [`DEFAULT_MAX_MEMORY`].
    pub fn memory_limit(&self) -> u64 {
        self.max_memory.unwrap_or(DEFAULT_MAX_MEMORY)
    }

    /// The environment the guest sees, with inherited names looked up through `host_env`
    /// (the binary passes `std::env::var`; libraries never read the process environment).
    /// An inherited name the host does not have is left out, as `docker run -e NAME` does.
    pub fn resolved_env(&self, host_env: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        self.env.iter().filter_map(|e| Some((e.name.clone(), e.value.clone().or_else(|| host_env(&e.name))?))).collect()
    }
}

/// A TOML error as one line that names where the problem is.
fn toml_error(text: &str, e: &toml::de::Error) -> PolicyError {
    let (line, column) = position(text, e.span().map_or(0, |span| span.start));
    PolicyError::Toml { line, column, message: e.message().trim().replace('\n', " ") }
}

/// The 1-based line and column of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Parses a duration such as `500ms`, `30s` or `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, PolicyError> {
    let d = humantime::parse_duration(text).map_err(|e| PolicyError::invalid("timeout", text, e.to_string()))?;
    if d.is_zero() {
        return Err(PolicyError::invalid("timeout", text, "must be greater than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_flags_merge() {
        let file = Policy::from_toml(
            r#"
            env = ["A=1", "B=file", "HOME"]
            dirs = ["data::/data:ro"]
            allow_net = ["127.0.0.1:80"]
            max_memory = "64MiB"
            timeout = "30s"
            "#,
            Path::new("/etc/wharf"),
        )
        .unwrap();
        assert_eq!(file.dirs[0], DirGrant { host: "/etc/wharf/data".into(), guest: "/data".into(), read_only: true });
        assert_eq!(file.max_memory, Some(64 << 20));
        let flags = Policy {
            env: vec![EnvGrant::parse("B=flag").unwrap()],
            timeout: Some(Duration::from_secs(1)),
            ..Policy::default()
        };
        let merged = file.merge(flags);
        let env = merged.resolved_env(|name| (name == "HOME").then(|| "/root".to_string()));
        assert_eq!(env, [("A".into(), "1".into()), ("HOME".into(), "/root".into()), ("B".into(), "flag".into())]);
        assert_eq!(merged.timeout, Some(Duration::from_secs(1)));
        assert_eq!(merged.max_memory, Some(64 << 20));
        assert_eq!(merged.allow_net.len(), 1);
    }

    #[test]
    fn keyvalue_and_config_grants_merge_by_name() {
        let file = Policy::from_toml(
            "keyvalue = [\"a\", \"b=shared\"]\nconfig = [\"k=file\", \"x=1\"]\nconfig_env = [\"token=TOKEN\"]",
            Path::new("."),
        )
        .unwrap();
        let flags = Policy {
            grants: vec![
                CapabilityGrant::parse("keyvalue", "b").unwrap(),
                CapabilityGrant::parse("config", "k=flag").unwrap(),
            ],
            ..Policy::default()
        };
        let merged = file.merge(flags);
        let grants: Vec<_> = merged.grants.iter().map(|g| (g.key, g.name.as_str(), g.value.as_str())).collect();
        assert_eq!(
            grants,
            [
                ("config", "x", "x=1"),
                ("config_env", "token", "token=TOKEN"),
                ("keyvalue", "a", "a"),
                ("keyvalue", "b", "b"),
                ("config", "k", "k=flag"),
            ]
        );
        let err = Policy::from_toml("keyvalue = [\"a/b\"]", Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("invalid kv `a/b`"), "{err}");
        let err = Policy::from_toml("\nkeyvalue = \"a\"", Path::new(".")).unwrap_err();
        assert_eq!(err.to_string(), "line 2, column 12: `keyvalue` must be an array of strings");
        let err = Policy::from_toml("env = []\nevil = 1", Path::new(".")).unwrap_err();
        assert!(err.to_string().starts_with("line 2, column 8: unknown field `evil`, expected one of `env`"), "{err}");
        let table: toml::Table = toml::from_str("config_env = [\"=X\"]").unwrap();
        let err = Policy::from_toml_table(table, Path::new(".")).unwrap_err();
        assert_eq!(err.to_string(), "invalid config-env `=X`: expected NAME or KEY=NAME");
    }

    #[test]
    fn errors_name_the_field() {
        let err = Policy::from_toml("max_memory = \"lots\"", Path::new(".")).unwrap_err();
        assert!(err.to_string().starts_with("invalid max-memory `lots`"), "{err}");
        let err = Policy::from_toml("allow_net = [\"a:b\"]", Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("allow-net `a:b`"), "{err}");
        let err = Policy::from_toml("allow_network = []", Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("unknown field `allow_network`"), "{err}");
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn dir_syntax() {
        let base = Path::new("/base");
        assert_eq!(
            DirGrant::parse("/a", base).unwrap(),
            DirGrant { host: "/a".into(), guest: "/a".into(), read_only: false }
        );
        assert_eq!(
            DirGrant::parse("a::/g:ro", base).unwrap(),
            DirGrant { host: "/base/a".into(), guest: "/g".into(), read_only: true }
        );
        assert!(DirGrant::parse("::/g", base).is_err());
        // A read-only suffix in another case or with a space is not a guest path.
        for text in ["a::/g:RO", "a::/g:Ro", "a::/g:ro ", "a::/g:rw", "a::/g:ro:ro", "a:RO", "a::/g "] {
            assert!(DirGrant::parse(text, base).is_err(), "{text}");
        }
        assert!(DirGrant::parse("a:b::/g:ro", base).unwrap().read_only);
    }
}
