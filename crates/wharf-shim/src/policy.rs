//! How a container becomes a Wharf [`Policy`]: the container's environment, its mounts, and
//! policy files. Everything else stays denied.
//!
//! runwasi 1.0's `RuntimeContext` hands a shim the process args, env and entrypoint only (not
//! the spec's annotations or mounts), and the shim's code runs inside the container after
//! `pivot_root`. So the shim reads:
//! - the spec's environment: every variable is passed to the guest, except the `WHARF_*`
//!   settings below, which configure the shim and are removed;
//! - the container's mounts, from `/proc/self/mountinfo` in the container's own mount
//!   namespace: each directory mount (a Kubernetes volume, `ctr run --mount`) becomes a
//!   directory grant at the same path, read-only when mounted read-only;
//! - a policy file in Wharf's TOML grammar (`wharf run --policy`), from the artifact (a layer
//!   of type [`POLICY_MEDIA_TYPE`]), from `WHARF_POLICY` (inline TOML) and from
//!   `WHARF_POLICY_FILE` (a path inside the container, e.g. a mounted ConfigMap), merged in
//!   that order (later ones win where a setting has one value);
//! - key-value stores from `WHARF_RUNTIME_CONFIG` (a path inside the container to a file in
//!   `wharf run --runtime-config` syntax: `[keyvalue.stores.NAME]`); without it the `default`
//!   store is in memory, living as long as the container (its filesystem may be read-only).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wharf_host::Backends;
use wharf_host::capabilities::RuntimeContext;

use wharf_host::Policy;
use wharf_host::policy::{DirGrant, EnvGrant, PolicyError};

/// Media type of a policy file shipped as a layer of the artifact.
pub const POLICY_MEDIA_TYPE: &str = "application/vnd.wharf.policy.v1+toml";

/// Inline policy TOML.
pub const ENV_POLICY: &str = "WHARF_POLICY";
/// Path (inside the container) of a policy TOML file.
pub const ENV_POLICY_FILE: &str = "WHARF_POLICY_FILE";
/// Path (inside the container) of a runtime-config file: key-value stores.
pub const ENV_RUNTIME_CONFIG: &str = "WHARF_RUNTIME_CONFIG";
/// Address a `wasi:http` component is served on.
pub const ENV_HTTP_ADDR: &str = "WHARF_HTTP_ADDR";
/// Served when [`ENV_HTTP_ADDR`] is unset: every interface of the pod's network namespace,
/// port 8080 (runwasi's wasmtime shim uses the same default).
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:8080";

/// Variables with this prefix configure the shim and are not passed to the guest.
const SHIM_PREFIX: &str = "WHARF_";

/// A setting the shim could not use, naming where it came from.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A policy file or `WHARF_POLICY` does not parse.
    #[error("in {origin}: {source}")]
    Policy {
        /// `WHARF_POLICY`, the file's path, or the artifact's policy layer.
        origin: String,
        /// The parse error (with line and column).
        source: PolicyError,
    },
    /// `WHARF_POLICY_FILE` or `WHARF_RUNTIME_CONFIG` cannot be read.
    #[error("cannot read {var}={path}: {source}")]
    File {
        /// The variable naming the file.
        var: &'static str,
        /// The path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The runtime-config file is malformed or names an unusable store.
    #[error("in {ENV_RUNTIME_CONFIG}={path}: {message}")]
    RuntimeConfig {
        /// The path as given.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// `WHARF_HTTP_ADDR` is not `IP:PORT`.
    #[error("invalid {ENV_HTTP_ADDR}=`{0}`: expected IP:PORT, e.g. 0.0.0.0:8080")]
    HttpAddr(String),
}

/// What the shim takes from a container: the guest's environment and policy, and its own
/// settings.
#[derive(Debug)]
pub struct Settings {
    /// The complete policy (environment, directories, network, cloud grants, limits).
    pub policy: Policy,
    /// Where a `wasi:http` component listens.
    pub http_addr: std::net::SocketAddr,
    /// Every capability's backends (key-value stores, ...) the grants bind to.
    pub backends: Backends,
}

impl Settings {
    /// Builds the settings from the spec's `NAME=VALUE` list, the artifact's policy layer (if
    /// any) and the container's mounts (`mountinfo`: the text of `/proc/self/mountinfo`).
    /// `read_file` reads a file inside the container (for `WHARF_POLICY_FILE`).
    pub fn new(
        env: &[String],
        artifact_policy: Option<&str>,
        mountinfo: &str,
        read_file: impl Fn(&Path) -> std::io::Result<String>,
    ) -> Result<Self, SettingsError> {
        let root = Path::new("/");
        let mut policy = Policy::default();
        if let Some(text) = artifact_policy {
            policy = policy.merge(parse(text, "the artifact's policy layer", root)?);
        }
        let lookup =
            |name: &str| env.iter().find_map(|kv| kv.split_once('=').filter(|(n, _)| *n == name).map(|(_, v)| v));
        if let Some(text) = lookup(ENV_POLICY) {
            policy = policy.merge(parse(text, ENV_POLICY, root)?);
        }
        if let Some(path) = lookup(ENV_POLICY_FILE) {
            let text = read_file(Path::new(path)).map_err(|source| SettingsError::File {
                var: ENV_POLICY_FILE,
                path: path.to_string(),
                source,
            })?;
            let base = Path::new(path).parent().unwrap_or(root);
            policy = policy.merge(parse(&text, &format!("{ENV_POLICY_FILE}={path}"), base)?);
        }
        let backends = match lookup(ENV_RUNTIME_CONFIG) {
            Some(path) => {
                let text = read_file(Path::new(path)).map_err(|source| SettingsError::File {
                    var: ENV_RUNTIME_CONFIG,
                    path: path.to_string(),
                    source,
                })?;
                backends(&text, Path::new(path))?
            }
            None => backends("", root)?,
        };
        let http_addr = lookup(ENV_HTTP_ADDR).unwrap_or(DEFAULT_HTTP_ADDR);
        let http_addr = http_addr.parse().map_err(|_| SettingsError::HttpAddr(http_addr.to_string()))?;

        // The container's own environment is what the pod or `ctr run --env` asked for: the
        // guest gets all of it, with values (nothing is inherited from the shim).
        let container_env = Policy {
            env: guest_env(env).map(|(name, value)| EnvGrant { name, value: Some(value) }).collect(),
            ..Policy::default()
        };
        // A policy's own `env = ["NAME"]` (inherit) means "from the container's environment".
        let mut policy = container_env.merge(policy);
        for grant in &mut policy.env {
            if grant.value.is_none() {
                grant.value = lookup(&grant.name).map(str::to_string);
            }
        }
        policy.env.retain(|grant| grant.value.is_some());

        let granted: BTreeSet<String> = policy.dirs.iter().map(|d| d.guest.clone()).collect();
        policy.dirs.extend(mount_grants(mountinfo).into_iter().filter(|d| !granted.contains(&d.guest)));
        Ok(Settings { policy, http_addr, backends })
    }
}

/// Where embedded default backends would keep files inside the container (its filesystem is
/// ephemeral, and may be read-only).
const DATA_DIR: &str = "/var/lib/wharf";

/// The backends of a runtime-config file's `text` at `path` (relative paths are relative to
/// it), with the key-value store `default` in memory unless the file defines one: a container's
/// files do not outlive it, so a redb file there would only pretend to persist.
fn backends(text: &str, path: &Path) -> Result<Backends, SettingsError> {
    let bad = |message: String| SettingsError::RuntimeConfig { path: path.display().to_string(), message };
    let mut sections: toml::Table = toml::from_str(text).map_err(|e| bad(e.message().trim().replace('\n', " ")))?;
    let stores = sections
        .entry("keyvalue")
        .or_insert_with(|| toml::Table::new().into())
        .as_table_mut()
        .map(|kv| kv.entry("stores").or_insert_with(|| toml::Table::new().into()));
    if let Some(toml::Value::Table(stores)) = stores {
        stores.entry("default").or_insert_with(|| toml::toml! { type = "memory" }.into());
    }
    let base = if path == Path::new("/") { path } else { path.parent().unwrap_or(Path::new("/")) };
    let context = RuntimeContext { base: base.to_path_buf(), data_dir: PathBuf::from(DATA_DIR) };
    Backends::new(&sections, &context).map_err(|e| bad(e.to_string()))
}

fn parse(text: &str, origin: &str, base: &Path) -> Result<Policy, SettingsError> {
    Policy::from_toml(text, base).map_err(|source| SettingsError::Policy { origin: origin.to_string(), source })
}

/// The spec's variables the guest sees: all but the shim's own `WHARF_*` settings and
/// malformed entries (no `=`).
fn guest_env(env: &[String]) -> impl Iterator<Item = (String, String)> + '_ {
    env.iter()
        .filter_map(|kv| kv.split_once('='))
        .filter(|(name, _)| !name.is_empty() && !name.starts_with(SHIM_PREFIX))
        .map(|(name, value)| (name.to_string(), value.to_string()))
}

/// Kernel and runtime file systems a container always has; never data volumes.
const SYSTEM_FS: &[&str] = &["proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "securityfs", "debugfs"];
/// Mount points under these belong to the runtime (`/dev/shm`, `/proc/...` masks, ...).
const SYSTEM_DIRS: &[&str] = &["/proc", "/sys", "/dev"];

/// The directory mounts of a container as directory grants at the same path (read-only when
/// mounted `ro`), from the text of its `/proc/self/mountinfo`: the root, kernel file systems
/// and anything under `/proc`, `/sys` and `/dev` are left out; file mounts (`/etc/hosts`)
/// are left out by the caller's directory check, not here.
pub fn mount_grants(mountinfo: &str) -> Vec<DirGrant> {
    let mut grants: Vec<DirGrant> = Vec::new();
    for line in mountinfo.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let fields: Vec<&str> = left.split(' ').collect();
        let (Some(mount_point), Some(options)) = (fields.get(4), fields.get(5)) else { continue };
        let fs_type = right.split(' ').next().unwrap_or_default();
        let mount_point = unescape(mount_point);
        if mount_point == "/"
            || SYSTEM_FS.contains(&fs_type)
            || SYSTEM_DIRS.iter().any(|d| mount_point == *d || mount_point.starts_with(&format!("{d}/")))
        {
            continue;
        }
        let read_only = options.split(',').any(|o| o == "ro");
        // A later mount on the same point hides the earlier one.
        grants.retain(|g| g.guest != mount_point);
        grants.push(DirGrant { host: PathBuf::from(&mount_point), guest: mount_point, read_only });
    }
    grants
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
612 545 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
613 612 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
614 612 0:56 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
615 614 0:57 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620,ptmxmode=666
617 612 0:59 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
618 612 254:1 /var/lib/kubelet/pods/x/volumes/data /data rw,relatime - ext4 /dev/vda1 rw
619 612 254:1 /srv/static /srv/my\\040static ro,relatime - ext4 /dev/vda1 rw
620 612 254:1 /etc/hosts /etc/hosts rw,relatime - ext4 /dev/vda1 rw
621 612 0:60 / /config ro,relatime - tmpfs tmpfs rw
";

    #[test]
    fn mounts_become_grants_at_the_same_path() {
        let grants = mount_grants(MOUNTINFO);
        let got: Vec<(&str, bool)> = grants.iter().map(|g| (g.guest.as_str(), g.read_only)).collect();
        assert_eq!(got, [("/data", false), ("/srv/my static", true), ("/etc/hosts", false), ("/config", true)]);
        assert!(grants.iter().all(|g| g.host == Path::new(&g.guest)));
    }

    fn env(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn no_file(_: &Path) -> std::io::Result<String> {
        Err(std::io::ErrorKind::NotFound.into())
    }

    #[test]
    fn container_env_passes_but_shim_settings_do_not() {
        let s = Settings::new(&env(&["A=1", "WHARF_HTTP_ADDR=127.0.0.1:9000", "B=x=y", "junk"]), None, "", no_file)
            .unwrap();
        let got: Vec<(&str, Option<&str>)> =
            s.policy.env.iter().map(|e| (e.name.as_str(), e.value.as_deref())).collect();
        assert_eq!(got, [("A", Some("1")), ("B", Some("x=y"))]);
        assert_eq!(s.http_addr.to_string(), "127.0.0.1:9000");
        assert!(s.policy.allow_net.is_empty() && s.policy.dirs.is_empty(), "deny by default");
    }

    #[test]
    fn policies_merge_artifact_then_env_then_file() {
        let artifact = "allow_net = [\"a.example:443\"]\ntimeout = \"5s\"";
        let file = |p: &Path| {
            assert_eq!(p, Path::new("/etc/wharf/policy.toml"));
            Ok("timeout = \"7s\"\nenv = [\"FROM_POD\"]".to_string())
        };
        let e = env(&[
            "FROM_POD=yes",
            "WHARF_POLICY=allow_net = [\"b.example:443\"]\ntimeout = \"6s\"",
            "WHARF_POLICY_FILE=/etc/wharf/policy.toml",
        ]);
        let s = Settings::new(&e, Some(artifact), "", file).unwrap();
        assert_eq!(s.policy.allow_net.len(), 2);
        assert_eq!(s.policy.timeout, Some(std::time::Duration::from_secs(7)));
        assert_eq!(s.policy.env.iter().filter(|g| g.name == "FROM_POD").count(), 1);
        assert!(!s.policy.env.iter().any(|g| g.name.starts_with("WHARF_")));
    }

    #[test]
    fn keyvalue_grants_bind_to_an_in_memory_default_or_the_runtime_config() {
        let e = env(&["WHARF_POLICY=keyvalue = [\"counters\", \"cache=shared\"]"]);
        let s = Settings::new(&e[..1], None, "", no_file).unwrap();
        // `default` exists without any file; `shared` does not.
        let err = wharf_host::Sandbox::new(&s.policy, &s.backends, |_| None).unwrap_err().to_string();
        assert!(err.contains("shared"), "{err}");
        let config = |_: &Path| Ok("[keyvalue.stores.shared]\ntype = \"memory\"\n".to_string());
        let e = env(&[e[0].as_str(), "WHARF_RUNTIME_CONFIG=/etc/wharf/runtime.toml"]);
        let s = Settings::new(&e, None, "", config).unwrap();
        wharf_host::Sandbox::new(&s.policy, &s.backends, |_| None).unwrap();
        let bad = |_: &Path| Ok("[nonsense]\n".to_string());
        let err = Settings::new(&e, None, "", bad).unwrap_err().to_string();
        assert!(err.starts_with("in WHARF_RUNTIME_CONFIG=/etc/wharf/runtime.toml: unknown section"), "{err}");
    }

    #[test]
    fn bad_settings_name_their_origin() {
        let e = env(&["WHARF_POLICY=allow_net = 3"]);
        let err = Settings::new(&e, None, "", no_file).unwrap_err().to_string();
        assert!(err.starts_with("in WHARF_POLICY: line 1"), "{err}");
        let err = Settings::new(&env(&["WHARF_HTTP_ADDR=:80"]), None, "", no_file).unwrap_err().to_string();
        assert!(err.contains("invalid WHARF_HTTP_ADDR=`:80`"), "{err}");
        let err = Settings::new(&env(&["WHARF_POLICY_FILE=/nope"]), None, "", no_file).unwrap_err().to_string();
        assert!(err.starts_with("cannot read WHARF_POLICY_FILE=/nope"), "{err}");
    }
}
