//! Grants for the WASI cloud interfaces: key-value buckets and configuration values.
use super::PolicyError;

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
    /// Parses `BUCKET` or `BUCKET=STORE`.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let (bucket, store) = text.split_once('=').unwrap_or((text, "default"));
        if !valid_name(bucket) || !valid_name(store) {
            return Err(PolicyError::invalid(
                "kv",
                text,
                "expected BUCKET or BUCKET=STORE (letters, digits, `_`, `-`, `.`)",
            ));
        }
        Ok(KvGrant { bucket: bucket.to_owned(), store: store.to_owned() })
    }
}

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
    pub fn parse_value(text: &str) -> Result<Self, PolicyError> {
        match text.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                Ok(ConfigGrant { key: key.to_owned(), source: ConfigSource::Value(value.to_owned()) })
            }
            _ => Err(PolicyError::invalid("config", text, "expected KEY=VALUE")),
        }
    }

    /// Parses `NAME` or `KEY=NAME` (`--config-env`): the host variable `NAME` as key `KEY`
    /// (default: `NAME`).
    pub fn parse_env(text: &str) -> Result<Self, PolicyError> {
        let (key, var) = text.split_once('=').unwrap_or((text, text));
        if key.is_empty() || var.is_empty() || var.contains('\0') {
            return Err(PolicyError::invalid("config-env", text, "expected NAME or KEY=NAME"));
        }
        Ok(ConfigGrant { key: key.to_owned(), source: ConfigSource::Env(var.to_owned()) })
    }
}

/// `other` on top of `base`, a grant for the same name (`same`) replacing the earlier one.
pub(crate) fn merge_by<T>(base: &mut Vec<T>, other: Vec<T>, same: impl Fn(&T, &T) -> bool) {
    base.retain(|b| !other.iter().any(|o| same(b, o)));
    base.extend(other);
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
        let value = ConfigGrant::parse_value("url=http://x?a=b").unwrap();
        assert_eq!(value.source, ConfigSource::Value("http://x?a=b".into()));
        assert!(ConfigGrant::parse_value("novalue").is_err());
        assert_eq!(ConfigGrant::parse_env("TOKEN").unwrap().key, "TOKEN");
        let env = ConfigGrant::parse_env("token=API_TOKEN").unwrap();
        assert_eq!((env.key.as_str(), env.source), ("token", ConfigSource::Env("API_TOKEN".into())));
    }
}
