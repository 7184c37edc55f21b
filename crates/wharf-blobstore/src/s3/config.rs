//! `[blobstore.stores.NAME] type = "s3"`: what the runtime config says about an S3 store, and
//! its checks. Credentials are [`Secret`]s (never shown by `Debug`), given in the file or named
//! as environment variables that the binary looks up when a component is granted the store.
use object_store::aws::AwsCredential;
use serde::Deserialize;

/// A credential from the runtime config: `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// An S3 store:
///
/// ```toml
/// [blobstore.stores.cloud]
/// type = "s3"
/// bucket = "wharf-blobs"
/// endpoint = "http://127.0.0.1:9000"   # default: AWS, https://s3.REGION.amazonaws.com
/// region = "us-east-1"
/// path_style = true                    # default: true with `endpoint`, false on AWS
/// prefix = "apps/"                     # keys under this prefix (default: none)
/// access_key_id_env = "S3_KEY_ID"      # or access_key_id = "..."
/// secret_access_key_env = "S3_SECRET"  # or secret_access_key = "..."
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (which must exist): S3's rules, 3 to 63 of `a-z`, `0-9`, `.`, `-`.
    pub bucket: String,
    /// The server's URL (`http://` or `https://`, no user, query or fragment).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    #[serde(default = "default_region")]
    pub region: String,
    /// Bucket in the path (`http://host/bucket/key`) rather than the host name.
    #[serde(default)]
    pub path_style: Option<bool>,
    /// A key prefix for everything this store keeps (`apps/`; a `/` is added if missing).
    #[serde(default)]
    pub prefix: String,
    /// The access key id.
    #[serde(default)]
    pub access_key_id: Option<Secret>,
    /// The environment variable holding the access key id.
    #[serde(default)]
    pub access_key_id_env: Option<String>,
    /// The secret access key.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// The environment variable holding the secret access key.
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    /// A session token (temporary credentials).
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// The environment variable holding a session token.
    #[serde(default)]
    pub session_token_env: Option<String>,
    /// Seconds for a whole request other than an object read (default 30).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: u64,
    /// Seconds to connect (default 5).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: u64,
    /// Seconds any one read from the server may wait (default 30): a stalled server fails the
    /// call instead of holding it.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: u64,
    /// Retries of a failed idempotent request (default 2).
    #[serde(default = "default_retries")]
    pub retries: usize,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_request_timeout() -> u64 {
    30
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_read_timeout() -> u64 {
    30
}
fn default_retries() -> usize {
    2
}

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric())
        && !b.contains("..")
}

fn valid_region(r: &str) -> bool {
    !r.is_empty() && r.len() <= 32 && r.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

impl S3Config {
    /// Whether the bucket goes in the path (the default with an `endpoint`).
    pub fn path_style(&self) -> bool {
        self.path_style.unwrap_or(self.endpoint.is_some())
    }

    /// The key prefix, empty or ending in `/`.
    pub fn prefix(&self) -> String {
        let p = self.prefix.trim_matches('/');
        if p.is_empty() { String::new() } else { format!("{p}/") }
    }

    /// The checked endpoint: the configured one, else AWS's for the region.
    pub fn endpoint(&self) -> Result<url::Url, String> {
        if !valid_bucket(&self.bucket) {
            return Err(format!("invalid bucket `{}`: 3 to 63 of a-z, 0-9, `.`, `-`", self.bucket));
        }
        if !valid_region(&self.region) {
            return Err(format!("invalid region `{}`", self.region));
        }
        let prefix = self.prefix.trim_matches('/');
        if !prefix.is_empty()
            && (prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..")
                || prefix.chars().any(char::is_control))
        {
            return Err(format!("invalid prefix {:?}: no empty, `.` or `..` segment", self.prefix));
        }
        for (name, value) in [
            ("request_timeout", self.request_timeout),
            ("connect_timeout", self.connect_timeout),
            ("read_timeout", self.read_timeout),
        ] {
            if value == 0 || value > 24 * 3600 {
                return Err(format!("`{name}` must be 1 to 86400 seconds"));
            }
        }
        let text = match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("https://s3.{}.amazonaws.com", self.region),
        };
        let url = url::Url::parse(&text).map_err(|e| format!("invalid endpoint `{text}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!("invalid endpoint `{text}`: expected http:// or https:// and a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Never echo it: the user part may be a credential.
            return Err("invalid endpoint: credentials go in access_key_id/secret_access_key, not the URL".into());
        }
        if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
            return Err(format!("invalid endpoint `{text}`: no path, query or fragment"));
        }
        for (literal, env, what) in [
            (self.access_key_id.is_some(), &self.access_key_id_env, "access_key_id"),
            (self.secret_access_key.is_some(), &self.secret_access_key_env, "secret_access_key"),
            (self.session_token.is_some(), &self.session_token_env, "session_token"),
        ] {
            if literal && env.is_some() {
                return Err(format!("give `{what}` or `{what}_env`, not both"));
            }
            if env.as_ref().is_some_and(|e| e.is_empty() || e.contains(['=', '\0'])) {
                return Err(format!("`{what}_env` must name an environment variable"));
            }
        }
        let has = |literal: bool, env: &Option<String>| literal || env.is_some();
        if has(self.access_key_id.is_some(), &self.access_key_id_env)
            != has(self.secret_access_key.is_some(), &self.secret_access_key_env)
        {
            return Err("`access_key_id` and `secret_access_key` go together".into());
        }
        Ok(url)
    }

    /// The bucket's URL, for logs and `describe` (path or virtual-host style).
    pub fn bucket_url(&self) -> Result<url::Url, String> {
        let mut url = self.endpoint()?;
        if self.path_style() {
            url.set_path(&self.bucket);
        } else {
            let host = format!("{}.{}", self.bucket, url.host_str().unwrap_or_default());
            url.set_host(Some(&host)).map_err(|e| format!("invalid endpoint host `{host}`: {e}"))?;
        }
        Ok(url)
    }

    /// The credential (`None`: anonymous, unsigned requests), looking named variables up
    /// through `host_env`.
    pub fn credential(&self, host_env: &dyn Fn(&str) -> Option<String>) -> Result<Option<AwsCredential>, String> {
        let get = |literal: &Option<Secret>, env: &Option<String>, what: &str| -> Result<Option<String>, String> {
            match (literal, env) {
                (Some(s), _) => Ok(Some(s.0.clone())),
                (None, Some(var)) => host_env(var)
                    .map(Some)
                    .ok_or_else(|| format!("environment variable `{var}` ({what}_env) is not set")),
                (None, None) => Ok(None),
            }
        };
        let key_id = get(&self.access_key_id, &self.access_key_id_env, "access_key_id")?;
        let secret = get(&self.secret_access_key, &self.secret_access_key_env, "secret_access_key")?;
        let token = get(&self.session_token, &self.session_token_env, "session_token")?;
        Ok(match (key_id, secret) {
            (Some(key_id), Some(secret_key)) => Some(AwsCredential { key_id, secret_key, token }),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<S3Config, String> {
        toml::from_str::<S3Config>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn checks_and_redacts() {
        let c = parse(
            "bucket = \"b-1\"\nendpoint = \"http://127.0.0.1:9000\"\naccess_key_id = \"AKID\"\nsecret_access_key = \"SUPERSECRET\"\n",
        )
        .unwrap();
        assert_eq!(c.bucket_url().unwrap().as_str(), "http://127.0.0.1:9000/b-1");
        let debug = format!("{c:?}");
        assert!(!debug.contains("SUPERSECRET") && !debug.contains("AKID"), "{debug}");
        let aws = parse("bucket = \"b-1\"\nregion = \"eu-west-1\"\n").unwrap();
        assert_eq!(aws.bucket_url().unwrap().as_str(), "https://b-1.s3.eu-west-1.amazonaws.com/");
        for bad in [
            "bucket = \"B\"\n",
            "bucket = \"../x\"\n",
            "bucket = \"bb\"\nendpoint = \"ftp://h\"\n",
            "bucket = \"bbb\"\nendpoint = \"http://user:pw@h\"\n",
            "bucket = \"bbb\"\nendpoint = \"http://h/other-bucket\"\n",
            "bucket = \"bbb\"\nendpoint = \"http://h/?x=1\"\n",
            "bucket = \"bbb\"\nregion = \"x.evil.com/\"\n",
            "bucket = \"bbb\"\nprefix = \"a/../b\"\n",
            "bucket = \"bbb\"\naccess_key_id = \"a\"\n",
            "bucket = \"bbb\"\naccess_key_id = \"a\"\naccess_key_id_env = \"A\"\nsecret_access_key = \"s\"\n",
            "bucket = \"bbb\"\nrequest_timeout = 0\n",
        ] {
            let result = parse(bad).and_then(|c| c.bucket_url().map(drop));
            assert!(result.is_err(), "{bad}");
            assert!(!result.unwrap_err().contains("pw"), "{bad}");
        }
        assert!(parse("bucket = \"bbb\"\nbogus = 1\n").is_err());
    }

    #[test]
    fn credentials_from_named_variables() {
        let c = parse("bucket = \"bbb\"\naccess_key_id_env = \"K\"\nsecret_access_key_env = \"S\"\n").unwrap();
        let env = |name: &str| (name == "K" || name == "S").then(|| format!("v{name}"));
        let cred = c.credential(&env).unwrap().unwrap();
        assert_eq!((cred.key_id.as_str(), cred.secret_key.as_str()), ("vK", "vS"));
        let err = c.credential(&|_: &str| None).unwrap_err();
        assert!(err.contains("`K`"), "{err}");
        assert!(parse("bucket = \"bbb\"\n").unwrap().credential(&|_: &str| None).unwrap().is_none());
    }
}
