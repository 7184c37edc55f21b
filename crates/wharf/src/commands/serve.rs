//! `wharf serve`: serve `wasi:http` components over HTTP, a fresh instance per request.
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use wharf_host::policy::parse_duration;
use wharf_host::{EngineKind, EngineOptions, Host, PoolOptions, Sandbox, WharfEngine};
use wharf_http::{AppManifest, MessagingTrigger, Reuse, ReuseSpec, Server, ServerOptions, Target};

use super::oci::{Source, parse_source};
use super::source::SourceArgs;
use crate::exit::BadInput;
use crate::policy_args::PolicyArgs;

/// The instance pool's size at most: HTTP's `--max-concurrency` plus every trigger's.
const MAX_POOL_INSTANCES: u32 = 200_000;

/// Request timeout for components whose policy sets none: deny unbounded CPU time by default.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve a `wasi:http/proxy` component, or an app described by a `wharf.toml` manifest.
#[derive(Args, Debug)]
pub struct ServeCommand {
    /// Address to listen on.
    #[arg(long, visible_alias = "addr", value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// HTTP requests handled at once; further requests get 503 at once. Message triggers have
    /// their own bound beside it (`max_concurrency` in `[[trigger.messaging]]`, default 32).
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_concurrency: u32,

    /// How long SIGINT/SIGTERM waits for in-flight requests before exiting.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    shutdown_timeout: String,

    #[command(flatten)]
    connections: ListenArgs,

    /// Requests one instance serves before it is retired. Default: 128 for WASI 0.3
    /// components, 1 (a fresh instance per request) for 0.2. A manifest's
    /// `max_instance_reuse_count` overrides it per component.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_instance_reuse_count: Option<u32>,

    /// Requests one WASI 0.3 instance serves at once (default 16; 0.2 handlers take one at a
    /// time). Manifest key: `max_instance_concurrent_reuse_count`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_instance_concurrent_reuse_count: Option<u32>,

    /// How long an idle reused instance is kept for the next request (default 1s). Manifest
    /// key: `idle_instance_timeout`.
    #[arg(long, value_name = "DURATION")]
    idle_instance_timeout: Option<String>,

    /// Grants for a single component (`--timeout` is per request, default 30s). With a
    /// manifest, grants live in each `[component.NAME]` table instead.
    #[command(flatten)]
    policy: PolicyArgs,

    #[command(flatten)]
    pull: SourceArgs,

    /// A component (`.wasm` file, `oci:DIR[:NAME]` or registry reference) or an app manifest
    /// (`.toml`, whose `source` keys take the same forms).
    #[arg(value_name = "COMPONENT|REF|MANIFEST")]
    source: String,
}

/// Connection limits of an HTTP listener (`serve`, `mcp --http`).
#[derive(Args, Debug, Clone)]
pub struct ListenArgs {
    /// Open connections at most; at the cap the least recently active idle connection is
    /// closed to make room (keep the file descriptor limit, `ulimit -n`, above it).
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,

    /// Time a client has to send a request's headers, counted from connecting or from the end
    /// of its previous response (so also how long an idle keep-alive connection stays open).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    header_timeout: Duration,

    /// Time a client may take to accept any of a response's bytes while wharf has some to
    /// send; a client that stops reading is then disconnected.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    write_timeout: Duration,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

impl ListenArgs {
    /// The listener options these flags give.
    pub fn options(&self) -> wharf_http::ListenerOptions {
        wharf_http::ListenerOptions {
            max_connections: self.max_connections as usize,
            header_timeout: self.header_timeout,
            write_timeout: self.write_timeout,
        }
    }
}

impl ServeCommand {
    /// Validates every flag and the manifest, loads and links every component, then binds
    /// and serves until SIGINT or SIGTERM.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let shutdown_timeout = parse_duration(&self.shutdown_timeout).context("--shutdown-timeout")?;
        let reuse_flags = ReuseSpec {
            max_count: self.max_instance_reuse_count.map(|n| n as usize),
            max_concurrent: self.max_instance_concurrent_reuse_count.map(|n| n as usize),
            idle_timeout: self
                .idle_instance_timeout
                .as_deref()
                .map(parse_duration)
                .transpose()
                .context("--idle-instance-timeout")?,
        };
        let mut app = if self.source.ends_with(".toml") {
            if self.policy.is_set() {
                return Err(BadInput(format!(
                    "grant flags apply to a single component; with a manifest, put grants in its [component.NAME] tables ({})",
                    self.source
                ))
                .into());
            }
            let text = std::fs::read_to_string(&self.source)
                .with_context(|| format!("cannot read manifest {}", self.source))?;
            AppManifest::parse(&text, Path::new(&self.source))?
        } else {
            AppManifest::single(&self.source, self.policy.to_policy()?)
        };
        for component in &mut app.components {
            component.policy.timeout.get_or_insert(DEFAULT_REQUEST_TIMEOUT);
        }
        let backends = self.policy.backends()?;
        let state = self.policy.state_dirs();
        let sandboxes = app
            .components
            .iter()
            .map(|c| {
                state.check(&c.policy).with_context(|| format!("component {}", c.name))?;
                Sandbox::new(&c.policy, &backends, |name| std::env::var(name).ok())
                    .map(|sandbox| sandbox.with_label(&c.name).with_dns(crate::resolver::dns()))
                    .with_context(|| format!("component {}", c.name))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        // One component's read-write grant may not hold another's: it could rename it.
        Sandbox::check_shared_dirs(app.components.iter().map(|c| c.name.as_str()).zip(&sandboxes))?;

        let max_memory = app.components.iter().map(|c| c.policy.memory_limit()).max().unwrap_or_default();
        // HTTP requests and each message trigger get their own share of the pool: triggers
        // busy with slow handlers never make HTTP answer 503, nor the reverse.
        let trigger_instances: usize = app.messaging.iter().map(|t| t.max_concurrency).sum();
        let instances = u32::try_from(trigger_instances)
            .ok()
            .and_then(|n| n.checked_add(self.max_concurrency))
            .filter(|&n| n <= MAX_POOL_INSTANCES)
            .ok_or_else(|| {
                BadInput(format!(
                    "--max-concurrency {} plus the message triggers' max_concurrency ({trigger_instances}) exceeds \
                     {MAX_POOL_INSTANCES} instances",
                    self.max_concurrency
                ))
            })?;
        let mut components = Vec::new();
        for spec in &app.components {
            // Files are relative to the manifest; layouts and references are taken as written.
            let input = match parse_source(&spec.source)? {
                Source::File(_) => spec.source_path.display().to_string(),
                _ => spec.source.clone(),
            };
            let loaded = self.pull.load(&input).await?;
            loaded.check_declared_imports()?;
            components.push(loaded);
        }
        // Small images are copied at each instantiation rather than mapped copy-on-write
        // (fewer faults and TLB-shootdown IPIs per request; see `PoolOptions::copy_data`).
        let copy_data = components.iter().all(|loaded| {
            wharf_host::data_segment_bytes(&loaded.bytes).is_some_and(|n| n <= wharf_host::COPY_DATA_UP_TO)
        });
        let pool = PoolOptions { instances, max_memory, copy_data };
        let engine = WharfEngine::new(&EngineOptions { pooling: Some(pool) })?;
        let host = Host::new(engine.clone(), crate::dirs::compile_cache())?;
        let mut targets = Vec::new();
        // Components no route uses need not export wasi:http (message handlers).
        let mut http_index = Vec::new();
        let mut triggers = Vec::new();
        for (i, ((spec, sandbox), loaded)) in app.components.iter().zip(sandboxes).zip(components).enumerate() {
            let http = app.router.targets().any(|t| t == i) || app.messaging.iter().all(|t| t.component != i);
            // Reusing a WASI 0.2 component's instances runs it on wasmtime-wasi-http's event
            // loop, which needs the concurrent engine; otherwise the component's bytes decide.
            let least = match http && spec.reuse.or(reuse_flags.or(Reuse::P2_DEFAULT)).reuses() {
                true => EngineKind::Concurrent,
                false => EngineKind::Sync,
            };
            let (component, _) = host
                .load_for(&loaded.name, &loaded.bytes, least, || crate::compile_notice::Notice::start(&loaded.name))?;
            for trigger in app.messaging.iter().filter(|t| t.component == i) {
                let pre = host.prepare(&spec.source, &component)?;
                let trigger =
                    MessagingTrigger::new(&spec.name, trigger.clone(), pre, sandbox.clone(), &backends, &engine)
                        .map_err(|e| BadInput(e.to_string()))?;
                triggers.push(std::sync::Arc::new(trigger));
            }
            if http {
                let pre = host.prepare_proxy(&spec.source, &component)?;
                // Manifest keys first, then flags, then the generation's default.
                let reuse = spec.reuse.or(reuse_flags.or(Reuse::default_for(&pre)));
                tracing::debug!(component = %spec.name, ?reuse, "instance reuse");
                http_index.push(targets.len());
                targets.push(Target { name: spec.name.clone(), pre, sandbox, reuse });
            } else {
                http_index.push(usize::MAX);
            }
        }
        app.router.remap(|i| http_index[i]);

        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        let address = listener.local_addr()?;
        // Lines logged while loading come first.
        crate::log_buffer::flush();
        eprintln!("Serving HTTP on http://{address}/");
        let options = ServerOptions {
            max_concurrency: self.max_concurrency as usize,
            shutdown_timeout,
            listener: self.connections.options(),
        };
        for trigger in triggers {
            tokio::spawn(trigger.run());
        }
        let server = Server::new(engine, targets, app.router, options);
        server.serve(listener, shutdown_signal()).await;
        Ok(ExitCode::SUCCESS)
    }
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        tracing::warn!("cannot install signal handlers; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
