//! Inside the container: find the component, build its policy, and run it as `wharf run`
//! (a `wasi:cli` command) or `wharf serve` (a `wasi:http` component) would.
//!
//! This code runs in the container's init process, after youki's libcontainer has set up the
//! namespaces, mounts and cgroup and called `pivot_root`: paths are the container's own.
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use containerd_shim_wasm::sandbox::context::{RuntimeContext, Source, WasmLayer};
use wasmtime::component::Component;
use wharf_host::policy::PolicyError;
use wharf_host::{EngineOptions, Host, LoadError, RunError, Sandbox, SandboxError, Stdio, WharfEngine};
use wharf_http::{ListenerOptions, Reuse, Router, Server, ServerOptions, Target};

use crate::policy::{POLICY_MEDIA_TYPE, Settings, SettingsError};
use crate::tarlayer;

/// Wharf's own outcomes, with `wharf run`'s exit codes (crates/wharf/src/exit.rs): a guest's
/// own exit code passes through unchanged.
mod exit {
    pub const FAILURE: i32 = 1;
    pub const BAD_INPUT: i32 = 2;
    pub const TIMEOUT: i32 = 124;
    pub const TRAP: i32 = 134;
    pub const MEMORY_LIMIT: i32 = 137;
}

/// Requests a `wasi:http` component serves at once (as `wharf serve`'s default).
const MAX_CONCURRENCY: usize = 256;
/// A request's time budget when the policy sets none (as `wharf serve`).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests. Kubernetes' grace period is 30 s.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the container's component and returns the container's exit code. Errors are written
/// to the container's stderr (containerd's log, `kubectl logs`) on one line.
pub async fn run(ctx: &impl RuntimeContext) -> i32 {
    match run_component(ctx).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("containerd-shim-wharf: error: {error:#}");
            exit_code(&error)
        }
    }
}

/// The component as delivered: its name in errors, its bytes, the digest its compiled form is
/// sealed with if the bytes are this shim's sealed compiled form, and the artifact's policy
/// layer if it has one.
struct Delivered {
    name: String,
    bytes: Vec<u8>,
    precompiled: Option<String>,
    policy: Option<String>,
}

async fn run_component(ctx: &impl RuntimeContext) -> anyhow::Result<i32> {
    let delivered = delivered(ctx)?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut settings =
        Settings::new(ctx.envs(), delivered.policy.as_deref(), &mountinfo, |p| std::fs::read_to_string(p))?;
    // File mounts (`/etc/hosts`, `/dev/termination-log`) cannot be directory grants.
    settings.policy.dirs.retain(|d| d.host.is_dir());

    let engine = WharfEngine::new(&EngineOptions::default())
        .map_err(|e| anyhow::Error::from(e).context("cannot start the engine"))?;
    let host = Host::new(engine.clone(), None).map_err(|e| anyhow::Error::from(e).context("cannot link WASI"))?;
    let component = if let Some(sealed_with) = &delivered.precompiled {
        let invalid = |reason: String| LoadError::Invalid { name: delivered.name.clone(), reason };
        let payload = crate::precompiled::open(sealed_with, &delivered.bytes)
            .map_err(|e| invalid(format!("compiled form: {e}")))?;
        // SAFETY: the payload is byte for byte what this shim's `Compiler` produced with
        // `Component::serialize` from the layer (or tar-layer file) with this digest, for an
        // engine with the same options (the cache key runwasi stores it under includes the
        // engine fingerprint): the seal's SHA-256 over the digest and the payload matched.
        // wasmtime checks its own header and which of the host's engines (with or without
        // concurrency support) the compiled form belongs to.
        unsafe { host.deserialize(&delivered.name, payload) }?
    } else {
        host.load(&delivered.name, &delivered.bytes)?.0
    };

    // `config_env` grants name variables of the container's environment.
    let spec_env = |name: &str| {
        ctx.envs().iter().find_map(|kv| kv.split_once('=').filter(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    };
    if exports_http(&component) {
        settings.policy.timeout.get_or_insert(DEFAULT_REQUEST_TIMEOUT);
        let sandbox = Sandbox::new(&settings.policy, &settings.backends, spec_env)?.with_label(&delivered.name);
        let pre = host.prepare_proxy(&delivered.name, &component)?;
        let mut router = Router::default();
        router.add("/...", 0).expect("`/...` is a valid route");
        let reuse = Reuse::default_for(&pre);
        let targets = vec![Target { name: delivered.name.clone(), pre, sandbox, reuse }];
        let listener = tokio::net::TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.http_addr))?;
        eprintln!("containerd-shim-wharf: serving HTTP on http://{}/", listener.local_addr()?);
        let options = ServerOptions {
            max_concurrency: MAX_CONCURRENCY,
            shutdown_timeout: SHUTDOWN_TIMEOUT,
            // `wharf serve`'s defaults: 512 connections, 10 s to send a request's headers.
            listener: ListenerOptions::default(),
        };
        Server::new(engine, targets, router, options).serve(listener, shutdown_signal()).await;
        return Ok(0);
    }

    let sandbox = Sandbox::new(&settings.policy, &settings.backends, spec_env)?;
    let command = host.prepare_command(&delivered.name, &component)?;
    let mut argv = ctx.args().to_vec();
    if argv.is_empty() {
        argv.push(delivered.name.clone());
    }
    Ok(host.run_command(&command, &sandbox, &argv, Stdio::Inherit).await?)
}

/// The component from the artifact's layers, or else the file named by the entrypoint
/// (`args[0]`, the "image with a .wasm file in a tar layer" layout).
fn delivered(ctx: &impl RuntimeContext) -> anyhow::Result<Delivered> {
    let entrypoint = ctx.entrypoint();
    let layers = match entrypoint.source {
        Source::Oci(layers) => layers,
        Source::File(path) => return from_file(&path, &[], None),
    };
    let media_type = |l: &WasmLayer| l.config.media_type().to_string();
    let (tar, layers): (Vec<&WasmLayer>, Vec<&WasmLayer>) =
        layers.iter().partition(|l| tarlayer::is_tar(&media_type(l)));
    let (policy, wasm): (Vec<&WasmLayer>, Vec<&WasmLayer>) =
        layers.into_iter().partition(|l| media_type(l) == POLICY_MEDIA_TYPE);
    let policy = match policy[..] {
        [] => None,
        [layer] => Some(String::from_utf8(layer.layer.clone()).map_err(|_| SettingsError::Policy {
            origin: "the artifact's policy layer".into(),
            source: PolicyError::Keys("the policy layer is not UTF-8 text".into()),
        })?),
        _ => return Err(BadArtifact("more than one policy layer".into()).into()),
    };
    if wasm.is_empty() && !tar.is_empty() {
        // The tar layout (runwasi delivers the compiled tar layers of a `wasm` image): the
        // entrypoint's file, as `Source::File` would be (`path#func` names a file `path`).
        let arg0 = entrypoint.arg0.map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
        let path = arg0.split_once('#').map_or(arg0.as_str(), |(path, _)| path);
        return from_file(Path::new(path), &tar, policy);
    }
    let [layer] = wasm[..] else {
        return Err(BadArtifact(format!("expected exactly one component layer, found {}", wasm.len())).into());
    };
    let name = layer.config.digest().to_string();
    let precompiled = layer.precompiled.then(|| name.clone());
    Ok(Delivered { name, bytes: layer.layer.clone(), precompiled, policy })
}

/// The component in the file `path` of the container's rootfs, as its compiled form if one of
/// the (tar) `layers` is a compiled layer holding one for exactly these bytes.
fn from_file(path: &Path, layers: &[&WasmLayer], policy: Option<String>) -> anyhow::Result<Delivered> {
    if path.as_os_str().is_empty() {
        return Err(BadArtifact("no component: the image has no wasm layer and no entrypoint".into()).into());
    }
    let name = path.display().to_string();
    let bytes = std::fs::read(resolve(path)).map_err(|source| LoadError::Read { name: name.clone(), source })?;
    let sha256 = tarlayer::sha256(&bytes);
    let compiled = layers.iter().filter(|l| l.precompiled).find_map(|l| tarlayer::find(&l.layer, &sha256));
    Ok(match compiled {
        Some(sealed) => {
            log::info!("{name}: the compiled form from the image's compiled tar layer");
            Delivered { name, bytes: sealed.to_vec(), precompiled: Some(tarlayer::digest_string(&sha256)), policy }
        }
        None => Delivered { name, bytes, precompiled: None, policy },
    })
}

/// A relative entrypoint is looked up in the working directory, as runwasi does for files.
fn resolve(path: &Path) -> std::path::PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { Path::new(".").join(path) }
}

/// An image that does not carry one component.
#[derive(Debug, thiserror::Error)]
#[error("malformed Wasm image: {0}")]
struct BadArtifact(String);

fn exports_http(component: &Component) -> bool {
    // A WASI 0.2 proxy or a 0.3 service: both are served (instance reuse for 0.3).
    component
        .component_type()
        .exports(component.engine())
        .any(|(name, _)| name.starts_with("wasi:http/incoming-handler@") || name.starts_with("wasi:http/handler@0.3"))
}

fn exit_code(error: &anyhow::Error) -> i32 {
    for cause in error.chain() {
        if let Some(run) = cause.downcast_ref::<RunError>() {
            return match run {
                RunError::Timeout(_) => exit::TIMEOUT,
                RunError::MemoryLimit(_) | RunError::Limit(_) => exit::MEMORY_LIMIT,
                RunError::Trap(_) => exit::TRAP,
                RunError::Sandbox(_) => exit::BAD_INPUT,
                RunError::Host(_) | RunError::Busy => exit::FAILURE,
            };
        }
        if cause.is::<LoadError>()
            || cause.is::<SettingsError>()
            || cause.is::<SandboxError>()
            || cause.is::<BadArtifact>()
        {
            return exit::BAD_INPUT;
        }
    }
    exit::FAILURE
}

/// Resolves on SIGTERM (`ctr task kill`, the kubelet stopping a pod) or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
