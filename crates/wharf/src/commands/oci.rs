//! What the OCI subcommands (push, pull, inspect, login, run REF) share: the `--insecure`
//! flag, where credentials and the content store live, how a source argument is read
//! (file, `oci:DIR[:NAME]` layout, or registry reference), and the progress bar.
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use wharf_oci::{Credential, CredentialSources, Layout, Progress, Reference, Registry, RegistryConfig};

/// Registry connection flags.
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Reach this registry (`host[:port]`) over plain HTTP; repeatable. A reference written
    /// `http://host/...` does the same for its host.
    /// Credentials go over plain HTTP only to these hosts, never to an `http://` reference's.
    #[arg(long, value_name = "HOST")]
    pub insecure: Vec<String>,

    /// How long to wait for a registry to connect, to send each piece of a response, and to
    /// answer a token, ping or manifest request in full (uploads: plus 1 s per 64 KiB), e.g.
    /// `10s`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub registry_timeout: std::time::Duration,
}

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    wharf_host::policy::parse_duration(text).map_err(|e| e.to_string())
}

impl RegistryArgs {
    /// A registry client for `input`: plain HTTP to `--insecure` hosts (which may be sent
    /// credentials) and to an `http://` input's host (which is never sent any).
    pub fn registry(&self, input: &str) -> anyhow::Result<Registry> {
        let plain_http = wharf_oci::plain_http_host(input)
            .filter(|host| !self.insecure.iter().any(|h| h.eq_ignore_ascii_case(host)))
            .into_iter()
            .collect();
        let config = RegistryConfig {
            insecure: self.insecure.clone(),
            plain_http,
            timeout: self.registry_timeout,
            ..RegistryConfig::default()
        };
        Ok(Registry::with_config(config)?)
    }
}

/// Where a component comes from.
pub enum Source {
    /// A Wasm file.
    File(PathBuf),
    /// `oci:DIR[:NAME]`: an OCI image layout on disk (skopeo's syntax).
    Layout { dir: PathBuf, name: Option<String> },
    /// A registry reference.
    Registry(Reference),
}

/// Reads a source argument: `oci:DIR[:NAME]`, an existing file (or a `*.wasm` path, or any
/// name without a `/`), or else a registry reference (`host[:port]/repo[:tag][@digest]`; the
/// registry is never implied, so a typo does not go to Docker Hub).
pub fn parse_source(input: &str) -> anyhow::Result<Source> {
    if let Some(rest) = input.strip_prefix("oci:") {
        // Like skopeo: the directory ends at the first `:`, so a name may hold `:` and `/`.
        let (dir, name) = match rest.split_once(':') {
            Some((dir, name)) => (dir, Some(name.to_string())),
            None => (rest, None),
        };
        return Ok(Source::Layout { dir: dir.into(), name });
    }
    let path = PathBuf::from(input);
    if path.exists() || input.ends_with(".wasm") || input.starts_with(['.', '/']) || !input.contains('/') {
        return Ok(Source::File(path));
    }
    let reference = wharf_oci::parse_reference(input)?;
    let bare = input.strip_prefix("http://").or_else(|| input.strip_prefix("https://")).unwrap_or(input);
    if !bare.starts_with(&format!("{}/", reference.registry())) {
        // `org/app` would mean Docker Hub; wharf wants the registry spelled out.
        return Ok(Source::File(path));
    }
    Ok(Source::Registry(reference))
}

/// The local content store (an OCI image layout): `<data dir>/store`.
pub fn store() -> anyhow::Result<Layout> {
    Ok(Layout::create(&crate::dirs::data_dir().join("store"))?)
}

/// The file `wharf login` writes: `<data dir>/auth.json` (Docker's format).
pub fn login_file() -> PathBuf {
    crate::dirs::data_dir().join("auth.json")
}

/// Credentials for `reference`'s registry: `WHARF_REGISTRY_USERNAME`/`WHARF_REGISTRY_PASSWORD`
/// when `WHARF_REGISTRY_HOST` names that registry, else `wharf login`'s file, else Docker's
/// `config.json` (`$DOCKER_CONFIG` or `~/.docker`), else anonymous.
pub fn credential(reference: &Reference) -> anyhow::Result<Credential> {
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let bad = |text: &str| -> anyhow::Error { crate::exit::BadInput(text.into()).into() };
    let explicit = match (env("WHARF_REGISTRY_USERNAME"), env("WHARF_REGISTRY_PASSWORD"), env("WHARF_REGISTRY_HOST")) {
        (Some(username), Some(password), Some(registry)) => {
            Some(wharf_oci::auth::ExplicitCredential { registry, username, password })
        }
        (Some(_), Some(_), None) => {
            return Err(bad("WHARF_REGISTRY_USERNAME/WHARF_REGISTRY_PASSWORD are only sent to the registry named by \
                 WHARF_REGISTRY_HOST (host[:port]); set it"));
        }
        (None, None, _) => None,
        _ => return Err(bad("set both WHARF_REGISTRY_USERNAME and WHARF_REGISTRY_PASSWORD, or neither")),
    };
    let docker_dir = match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => std::env::home_dir().map(|home| home.join(".docker")),
    };
    let sources = CredentialSources {
        explicit,
        login_file: Some(login_file()),
        docker_config: docker_dir.map(|d| d.join("config.json")),
    };
    Ok(wharf_oci::auth::resolve(reference.resolve_registry(), &sources)?)
}

/// A byte progress bar on stderr when it is a terminal; nothing otherwise.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar titled `message` (e.g. "pulling").
    pub fn new(message: &'static str) -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let bar = ProgressBar::new(0).with_message(message);
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Bar(Some(bar))
    }
}

impl Progress for Bar {
    fn add_total(&self, total: u64) {
        if let Some(bar) = &self.0 {
            bar.inc_length(total);
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
