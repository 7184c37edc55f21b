//! Registry credentials: explicit ones, wharf's own login file, and Docker's `config.json`
//! (inline `auths`, `credHelpers` and `credsStore` via `docker-credential-*` helpers).
//!
//! The caller decides where to look (the binary reads the environment); this module only
//! reads the files and runs the helpers it is pointed at. Both files use Docker's format, so
//! a `wharf login` file can be used as a Docker config and vice versa.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// No credentials: anonymous access (a bearer token is still fetched when the registry asks).
    Anonymous,
    /// A user name and password (or token) for HTTP basic auth or the token endpoint.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Anonymous => f.write_str("Anonymous"),
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
        }
    }
}

/// Credentials given explicitly (e.g. by environment variables), for one registry only.
#[derive(Clone)]
pub struct ExplicitCredential {
    /// The registry (`host[:port]`) they are for; no other registry is ever sent them.
    pub registry: String,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for ExplicitCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExplicitCredential({}, {}, ***)", self.registry, self.username)
    }
}

/// Where to look for credentials, in this order.
#[derive(Debug, Clone, Default)]
pub struct CredentialSources {
    /// Explicit credentials (e.g. from `WHARF_REGISTRY_USERNAME`/`WHARF_REGISTRY_PASSWORD`),
    /// used only for their own registry.
    pub explicit: Option<ExplicitCredential>,
    /// Wharf's login file (written by `wharf login`).
    pub login_file: Option<PathBuf>,
    /// Docker's `config.json`.
    pub docker_config: Option<PathBuf>,
}

/// Docker's `config.json` (the parts wharf uses; other fields are kept when rewriting).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    creds_store: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

/// Finds the credentials for `registry` (`host[:port]`), or [`Credential::Anonymous`]. Every
/// source is keyed by registry host: nothing found for one registry is offered to another.
pub fn resolve(registry: &str, sources: &CredentialSources) -> Result<Credential, Error> {
    if let Some(explicit) = &sources.explicit
        && registry_keys(registry).contains(&normalize(&explicit.registry))
    {
        let ExplicitCredential { username, password, .. } = explicit;
        return Ok(Credential::Basic { username: username.clone(), password: password.clone() });
    }
    for file in [&sources.login_file, &sources.docker_config].into_iter().flatten() {
        if let Some(credential) = from_config_file(file, registry)? {
            tracing::debug!(registry, file = %file.display(), "using stored credentials");
            return Ok(credential);
        }
    }
    Ok(Credential::Anonymous)
}

fn from_config_file(path: &Path, registry: &str) -> Result<Option<Credential>, Error> {
    let Some(config) = read_config(path)? else { return Ok(None) };
    let keys = registry_keys(registry);
    if let Some(helper) = keys.iter().find_map(|k| config.cred_helpers.get(k)) {
        return run_helper(helper, registry);
    }
    if let Some((_, entry)) = config.auths.iter().find(|(k, _)| keys.contains(&normalize(k)))
        && let Some(credential) = decode_entry(path, entry)?
    {
        return Ok(Some(credential));
    }
    match &config.creds_store {
        Some(store) => run_helper(store, registry),
        None => Ok(None),
    }
}

fn read_config(path: &Path) -> Result<Option<ConfigFile>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Json { what: path.display().to_string(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path: path.into(), source }),
    }
}

fn decode_entry(path: &Path, entry: &AuthEntry) -> Result<Option<Credential>, Error> {
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Credential::Basic { username: username.clone(), password: password.clone() }));
    }
    let Some(auth) = &entry.auth else { return Ok(None) };
    let bad = || Error::Credentials(format!("{}: an `auth` entry is not base64 of `user:password`", path.display()));
    let decoded = String::from_utf8(BASE64.decode(auth.trim()).map_err(|_| bad())?).map_err(|_| bad())?;
    let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some(Credential::Basic { username: username.into(), password: password.into() }))
}

/// Runs `docker-credential-<helper> get` with the server on stdin (Docker's helper protocol).
fn run_helper(helper: &str, registry: &str) -> Result<Option<Credential>, Error> {
    run_helper_program(&format!("docker-credential-{helper}"), registry)
}

fn run_helper_program(program: &str, registry: &str) -> Result<Option<Credential>, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HelperOutput {
        username: String,
        secret: String,
    }
    let failed = |reason: String| Error::Credentials(format!("{program}: {reason}"));
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot start it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(registry.as_bytes()).map_err(|e| failed(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // The protocol's answer when it has nothing for this server.
        if text.contains("credentials not found") {
            return Ok(None);
        }
        return Err(failed(format!("{} {}", out.status, text)));
    }
    let parsed: HelperOutput = serde_json::from_slice(&out.stdout).map_err(|e| failed(format!("bad output: {e}")))?;
    if parsed.username == "<token>" {
        // An identity (refresh) token for an OAuth2 flow oci-client does not speak.
        tracing::warn!(registry, "{program} returned an identity token, which wharf cannot use; trying anonymous");
        return Ok(None);
    }
    Ok(Some(Credential::Basic { username: parsed.username, password: parsed.secret }))
}

/// Records `username`/`password` for `registry` in the login file (created with mode 0600).
pub fn store_login(path: &Path, registry: &str, username: &str, password: &str) -> Result<(), Error> {
    let mut config = read_config(path)?.unwrap_or_default();
    let keys = registry_keys(registry);
    config.auths.retain(|k, _| !keys.contains(&normalize(k)));
    let auth = BASE64.encode(format!("{username}:{password}"));
    config.auths.insert(registry.into(), AuthEntry { auth: Some(auth), ..AuthEntry::default() });
    write_config(path, &config)
}

/// Forgets `registry` in the login file. Returns whether there was anything to forget.
pub fn remove_login(path: &Path, registry: &str) -> Result<bool, Error> {
    let Some(mut config) = read_config(path)? else { return Ok(false) };
    let keys = registry_keys(registry);
    let before = config.auths.len();
    config.auths.retain(|k, _| !keys.contains(&normalize(k)));
    if config.auths.len() == before {
        return Ok(false);
    }
    write_config(path, &config)?;
    Ok(true)
}

fn write_config(path: &Path, config: &ConfigFile) -> Result<(), Error> {
    let io = |source| Error::Io { path: path.into(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    // NamedTempFile is created 0600 on Unix, so the secret is never world-readable.
    serde_json::to_writer_pretty(&mut file, config)
        .map_err(|source| Error::Json { what: path.display().to_string(), source })?;
    file.as_file().sync_all().map_err(io)?;
    file.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// The spellings a registry may have as a key in `auths` (Docker Hub has a legacy URL).
fn registry_keys(registry: &str) -> Vec<String> {
    let registry = normalize(registry);
    match registry.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            vec!["docker.io".into(), "index.docker.io".into(), "registry-1.docker.io".into()]
        }
        _ => vec![registry],
    }
}

/// `https://host:port/v1/` -> `host:port`.
fn normalize(key: &str) -> String {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    key.split('/').next().unwrap_or(key).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(login: &Path, docker: &Path) -> CredentialSources {
        CredentialSources { explicit: None, login_file: Some(login.into()), docker_config: Some(docker.into()) }
    }

    fn basic(u: &str, p: &str) -> Credential {
        Credential::Basic { username: u.into(), password: p.into() }
    }

    #[test]
    fn login_file_round_trip_and_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let (login, docker) = (dir.path().join("auth.json"), dir.path().join("config.json"));
        assert_eq!(resolve("r.example:5000", &sources(&login, &docker)).unwrap(), Credential::Anonymous);

        std::fs::write(&docker, r#"{"auths":{"https://r.example:5000/v1/":{"auth":"ZG9jazpwdw=="}},"x":1}"#).unwrap();
        assert_eq!(resolve("r.example:5000", &sources(&login, &docker)).unwrap(), basic("dock", "pw"));

        store_login(&login, "r.example:5000", "me", "s:cret").unwrap();
        assert_eq!(resolve("r.example:5000", &sources(&login, &docker)).unwrap(), basic("me", "s:cret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&login).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let mut explicit = sources(&login, &docker);
        explicit.explicit = Some(ExplicitCredential {
            registry: "R.example:5000".into(),
            username: "env".into(),
            password: "pw".into(),
        });
        assert_eq!(resolve("r.example:5000", &explicit).unwrap(), basic("env", "pw"));
        // Bound to their registry: another host or port gets the stored (or no) credentials.
        assert_eq!(resolve("r.example:5001", &explicit).unwrap(), Credential::Anonymous);
        assert_eq!(resolve("r.example", &explicit).unwrap(), Credential::Anonymous);

        assert!(remove_login(&login, "r.example:5000").unwrap());
        assert!(!remove_login(&login, "r.example:5000").unwrap());
        assert_eq!(resolve("r.example:5000", &sources(&login, &docker)).unwrap(), basic("dock", "pw"));
        assert_eq!(resolve("other:5000", &sources(&login, &docker)).unwrap(), Credential::Anonymous);
    }

    #[test]
    fn credential_helpers_follow_dockers_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-wharftest");
        let script = "#!/bin/sh\ntest \"$1\" = get || exit 3\nread server\n\
            [ \"$server\" = none ] && { echo 'credentials not found in native keychain'; exit 1; }\n\
            printf '{\"ServerURL\":\"%s\",\"Username\":\"helped\",\"Secret\":\"%s-secret\"}' \"$server\" \"$server\"\n";
        std::fs::write(&helper, script).unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let program = helper.to_str().unwrap();
        assert_eq!(run_helper_program(program, "r.example").unwrap(), Some(basic("helped", "r.example-secret")));
        assert_eq!(run_helper_program(program, "none").unwrap(), None);
        assert!(matches!(run_helper("wharf-no-such-helper", "r.example"), Err(Error::Credentials(_))));
    }
}
