//! `wharf mcp`: serve components' exported functions as MCP tools; `wharf call`: call one
//! such function from the command line, with the same JSON encoding.
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{Map, Value};
use wharf_host::{Backends, EngineOptions, Host, Policy, Sandbox};
use wharf_mcp::{Loader, Outcome, ToolComponent, ToolNames, Toolbox};

use super::oci::{Source, parse_source};
use super::source::SourceArgs;
use crate::exit::BadInput;
use crate::policy_args::{PolicyArgs, read_policy_file};

/// Per-call timeout for components whose policy sets none: deny unbounded CPU time by default.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve every function the components export as an MCP tool (stdio, or streamable HTTP).
#[derive(Args, Debug)]
pub struct McpCommand {
    /// Serve streamable HTTP at http://ADDR/mcp instead of stdio (e.g. 127.0.0.1:8090).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,

    /// Offer the tools `wharf.load`, `wharf.unload` and `wharf.list`, so the client can load
    /// more components from WHERE: a directory (`/srv/tools`, `./tools`; regular `.wasm` files
    /// or layouts under it) or a registry prefix (`ghcr.io/acme/tools`). Repeatable. Loaded
    /// components get the flags' policy; loading never grants anything.
    #[arg(long, value_name = "WHERE")]
    allow_load: Vec<String>,

    /// How tool names are spelled: `dotted` (`types.types.echo`) or `underscore`
    /// (`types_types_echo`, at most 64 characters, for APIs that accept only
    /// `[a-zA-Z0-9_-]{1,64}`).
    #[arg(long, value_name = "STYLE", default_value = "dotted")]
    tool_names: ToolNamesArg,

    /// How long an instance held for a stateless client (protocol 2026-07-28) lives without a
    /// call; its handles expire with it.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_timeout)]
    handle_idle_timeout: Duration,

    /// Grants for every component (`--timeout` is per call, default 30s).
    #[command(flatten)]
    policy: PolicyArgs,

    #[command(flatten)]
    pull: SourceArgs,

    #[command(flatten)]
    http_limits: McpHttpArgs,

    /// Components (`.wasm` file, `oci:DIR[:NAME]` or registry reference), each optionally
    /// followed by `::POLICY.toml`, a policy file for that component alone (merged over the
    /// flags), and preceded by `NAME=` to name its tools `NAME.*` (`=` alone: no prefix).
    #[arg(value_name = "[NAME=]COMPONENT[::POLICY]", required = true)]
    components: Vec<String>,
}

/// `--tool-names`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ToolNamesArg {
    Dotted,
    Underscore,
}

/// Limits and access control of `--http`.
#[derive(Args, Debug)]
struct McpHttpArgs {
    #[command(flatten)]
    connections: super::serve::ListenArgs,

    /// Live MCP sessions at most; at the cap a new session closes the oldest unused one, or
    /// gets 503 when all are in use.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_sessions: u32,

    /// How long a session that has not made a request since `initialize` lives.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    unused_session_timeout: Duration,

    /// How long any session lives without a request.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_timeout)]
    session_idle_timeout: Duration,

    /// Require `Authorization: Bearer TOKEN` on every request, TOKEN being the value of the
    /// environment variable NAME (read once at startup; it must be set and non-empty).
    #[arg(long, value_name = "NAME")]
    auth_token_env: Option<String>,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    wharf_host::policy::parse_duration(text).map_err(|e| e.to_string())
}

impl McpHttpArgs {
    fn limits(&self) -> anyhow::Result<wharf_mcp::HttpLimits> {
        let bearer_token = match &self.auth_token_env {
            None => None,
            Some(name) => match std::env::var(name) {
                Ok(token) if !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()) => Some(token),
                Ok(_) => {
                    return Err(BadInput(format!(
                        "--auth-token-env {name}: the token must be non-empty printable ASCII without spaces"
                    ))
                    .into());
                }
                Err(_) => return Err(BadInput(format!("--auth-token-env {name}: {name} is not set")).into()),
            },
        };
        Ok(wharf_mcp::HttpLimits {
            listener: self.connections.options(),
            max_sessions: self.max_sessions as usize,
            unused_session_timeout: self.unused_session_timeout,
            session_idle_timeout: self.session_idle_timeout,
            bearer_token,
            held_idle_timeout: Duration::from_secs(300),
        })
    }
}

impl McpCommand {
    /// Loads, links and catalogs every component, then serves until stdin closes (stdio) or
    /// SIGINT/SIGTERM (HTTP).
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let mut limits = self.http_limits.limits()?;
        limits.held_idle_timeout = self.handle_idle_timeout;
        if self.http.is_none() && self.http_limits.auth_token_env.is_some() {
            return Err(BadInput("--auth-token-env applies to --http only".into()).into());
        }
        let mut loader = ComponentLoader::new(&self.policy, self.pull.clone())?;
        loader.allowed = AllowedLoads::parse(&self.allow_load)?;
        let loader = Arc::new(loader);
        let names = match self.tool_names {
            ToolNamesArg::Dotted => ToolNames::Dotted,
            ToolNamesArg::Underscore => ToolNames::Underscore,
        };
        let toolbox = loader.toolbox(&self.components, names).await?;
        let count = toolbox.snapshot().functions().count();
        let loader = (!self.allow_load.is_empty()).then_some(loader as Arc<dyn Loader>);
        match self.http {
            None => {
                tracing::info!("serving {count} tools on stdio");
                wharf_mcp::serve_stdio(toolbox, loader, self.handle_idle_timeout).await?;
            }
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address}"))?;
                let address = listener.local_addr()?;
                eprintln!("Serving {count} MCP tools on http://{address}{}", wharf_mcp::MCP_PATH);
                wharf_mcp::serve_http(toolbox, loader, listener, limits, super::serve::shutdown_signal()).await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Call one exported function: `wharf call COMPONENT TOOL --args JSON`.
#[derive(Args, Debug)]
pub struct CallCommand {
    /// The arguments, as the JSON object the tool's input schema describes.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    args: String,

    #[command(flatten)]
    policy: PolicyArgs,

    #[command(flatten)]
    pull: SourceArgs,

    /// The component: a `.wasm` file, `oci:DIR[:NAME]` or a registry reference.
    #[arg(value_name = "COMPONENT")]
    component: String,

    /// The function's tool name, with or without the component prefix (`types.echo`).
    #[arg(value_name = "TOOL")]
    tool: String,
}

impl CallCommand {
    /// Prints the result as JSON on stdout: exit 0, or 1 for an `err` result; bad arguments
    /// exit 2; a trap, timeout or memory limit exits as `wharf run` does.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let args: Map<String, Value> = match serde_json::from_str(&self.args) {
            Ok(Value::Object(args)) => args,
            Ok(other) => return Err(BadInput(format!("--args must be a JSON object, not {other}")).into()),
            Err(e) => return Err(BadInput(format!("--args is not valid JSON: {e}")).into()),
        };
        let loader = ComponentLoader::new(&self.policy, self.pull.clone())?;
        let toolbox = loader.toolbox(std::slice::from_ref(&self.component), ToolNames::Dotted).await?;
        let snapshot = toolbox.snapshot();
        let prefix = &snapshot.components().next().expect("one component").name;
        let full = if prefix.is_empty() || self.tool.starts_with(&format!("{prefix}.")) {
            self.tool.clone()
        } else {
            format!("{prefix}.{}", self.tool)
        };
        let session = toolbox.session();
        let Some(outcome) = session.call(&full, &args).await else {
            let short = |name: &'_ str| name.strip_prefix(&format!("{prefix}.")).unwrap_or(name).to_string();
            let known = snapshot.functions().map(|f| short(&f.name)).collect::<Vec<_>>().join(", ");
            return Err(BadInput(format!("{} has no tool `{}` (tools: {known})", self.component, self.tool)).into());
        };
        match outcome {
            Outcome::Returned(Some(value)) => println!("{value}"),
            Outcome::Returned(None) => {}
            Outcome::ErrResult(value) => {
                println!("{value}");
                return Ok(ExitCode::FAILURE);
            }
            Outcome::Invalid(e) => return Err(BadInput(format!("invalid arguments: {e}")).into()),
            // The exit code says which: 124 timeout, 134 trap, 137 memory limit (as `run`).
            Outcome::Failed(failure) => return Err(failure.error.into()),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Loads components for the toolbox: files, layouts or references, each in its own sandbox.
struct ComponentLoader {
    host: Host,
    base: Policy,
    backends: Backends,
    /// Wharf's state on disk, which no read-write grant may reach.
    state: crate::dirs::StateDirs,
    pull: SourceArgs,
    /// Where `wharf.load` may read from (`--allow-load`).
    allowed: AllowedLoads,
}

impl ComponentLoader {
    fn new(flags: &PolicyArgs, pull: SourceArgs) -> anyhow::Result<Self> {
        let mut host = super::new_host(&EngineOptions::default())?;
        // Tools may talk back to the client (progress, logs, content, sampling, elicitation).
        host.extend_linkers(wharf_mcp::talk::add_to_linker)?;
        let allowed = AllowedLoads::default();
        let state = flags.state_dirs();
        Ok(ComponentLoader { host, base: flags.to_policy()?, backends: flags.backends()?, state, pull, allowed })
    }

    /// Loads every `[NAME=]COMPONENT[::POLICY]`; a bad input fails here, before anything is
    /// served. The components' directory grants are checked against each other first.
    async fn toolbox(&self, inputs: &[String], names: ToolNames) -> anyhow::Result<Arc<Toolbox>> {
        let mut prepared = Vec::new();
        for input in inputs {
            let (name, input) = split_name(input);
            let (source, policy) = match input.split_once("::") {
                Some((source, file)) => (source, self.base.clone().merge(read_policy_file(Path::new(file))?)),
                None => (input, self.base.clone()),
            };
            prepared.push((name, source, self.sandbox(source, policy)?));
        }
        Sandbox::check_shared_dirs(prepared.iter().map(|(name, source, sandbox)| (name.unwrap_or(source), sandbox)))?;
        let mut components = Vec::new();
        for (name, source, sandbox) in prepared {
            let loaded = self.pull.load(source).await?;
            components.push(self.build(source, name, loaded, sandbox)?);
        }
        Ok(Arc::new(Toolbox::with_names(self.host.engine().clone(), names, components)))
    }

    /// `policy` made ready for the component from `source` (a per-call timeout by default).
    fn sandbox(&self, source: &str, mut policy: Policy) -> anyhow::Result<Sandbox> {
        policy.timeout.get_or_insert(DEFAULT_CALL_TIMEOUT);
        self.state.check(&policy).with_context(|| format!("component {source}"))?;
        Sandbox::new(&policy, &self.backends, |name| std::env::var(name).ok())
            .map(|sandbox| sandbox.with_dns(crate::resolver::dns()))
            .with_context(|| format!("component {source}"))
    }

    /// Builds the tools of `loaded`, named `name.*` (`Some("")`: no prefix), by default after
    /// its file or repository name.
    fn build(
        &self,
        source: &str,
        name: Option<&str>,
        loaded: super::source::Loaded,
        sandbox: Sandbox,
    ) -> anyhow::Result<ToolComponent> {
        loaded.check_declared_imports()?;
        let (component, _) =
            self.host.load_with(&loaded.name, &loaded.bytes, || crate::compile_notice::Notice::start(&loaded.name))?;
        let pre = self.host.prepare(source, &component)?;
        let name = match name {
            Some(name) => name.to_string(),
            None => component_name(source)?,
        };
        Ok(ToolComponent::new(self.host.engine(), &name, &component, &loaded.bytes, pre, sandbox))
    }
}

impl Loader for ComponentLoader {
    /// `wharf.load` from the client: the flags' policy only, never a `::POLICY` of its choosing.
    fn load(&self, source: String) -> Pin<Box<dyn Future<Output = anyhow::Result<ToolComponent>> + Send + '_>> {
        Box::pin(async move {
            let loaded = match self.allowed.check(&source)? {
                Some(file) => super::source::Loaded { name: source.clone(), bytes: file, declared_imports: None },
                None => self.pull.load(&source).await?,
            };
            // The flags' grants lie in every command-line component's policy too, so they were
            // checked against theirs at start.
            let sandbox = self.sandbox(&source, self.base.clone())?;
            self.build(&source, None, loaded, sandbox)
        })
    }
}

/// `NAME=REST` -> (`Some(NAME)`, `REST`) when NAME is empty or a plain name
/// (`[A-Za-z0-9_-]`), so a path such as `./a=b.wasm` is never split.
fn split_name(input: &str) -> (Option<&str>, &str) {
    match input.split_once('=') {
        Some((name, rest))
            if !rest.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) =>
        {
            (Some(name), rest)
        }
        _ => (None, input),
    }
}

/// The prefix of a component's tool names: the file stem, the image name in a layout, or the
/// last path segment of a registry repository.
fn component_name(source: &str) -> anyhow::Result<String> {
    let name = match parse_source(source)? {
        Source::File(path) => path.file_stem().map(|s| s.to_string_lossy().into_owned()),
        Source::Layout { dir, name } => name
            .map(|n| n.rsplit('/').next().unwrap_or(&n).split([':', '@']).next().unwrap_or_default().to_string())
            .or_else(|| dir.file_name().map(|s| s.to_string_lossy().into_owned())),
        Source::Registry(reference) => Some(reference.repository().rsplit('/').next().unwrap_or_default().to_string()),
    };
    Ok(name.filter(|n| !n.is_empty()).unwrap_or_else(|| "component".into()))
}

/// The most a component loaded with `wharf.load` may weigh.
const MAX_LOAD_BYTES: u64 = 256 * 1024 * 1024;

/// Where `wharf.load` may read from: directories (canonical) and registry prefixes.
#[derive(Debug, Default)]
struct AllowedLoads {
    dirs: Vec<std::path::PathBuf>,
    registries: Vec<String>,
}

impl AllowedLoads {
    /// `--allow-load` values: a path (starting with `/` or `.`) must be an existing directory;
    /// anything else is a registry prefix `host[:port]/path`.
    fn parse(values: &[String]) -> anyhow::Result<AllowedLoads> {
        let mut allowed = AllowedLoads::default();
        for value in values {
            if value.starts_with(['/', '.']) {
                let dir = std::fs::canonicalize(value)
                    .ok()
                    .filter(|d| d.is_dir())
                    .ok_or_else(|| BadInput(format!("--allow-load {value}: not an existing directory")))?;
                allowed.dirs.push(dir);
            } else {
                let prefix = value.trim_end_matches('/').to_ascii_lowercase();
                if !prefix.contains('/') || prefix.contains("://") {
                    return Err(BadInput(format!(
                        "--allow-load {value}: neither a directory (./dir, /dir) nor a registry prefix (host[:port]/path)"
                    ))
                    .into());
                }
                allowed.registries.push(prefix);
            }
        }
        Ok(allowed)
    }

    /// Checks a client's `wharf.load` source against the allowed places. A file is read here,
    /// once (regular files only, size-capped), and returned; other sources load as usual.
    /// Refusals never say whether a path exists outside the allowed directories.
    fn check(&self, source: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let refused = || anyhow::anyhow!("not under any --allow-load location");
        if source.contains("::") {
            anyhow::bail!("a policy file cannot be named by the client");
        }
        let under = |path: &Path| -> anyhow::Result<std::path::PathBuf> {
            let real = std::fs::canonicalize(path).map_err(|_| refused())?;
            if self.dirs.iter().any(|dir| real.starts_with(dir)) { Ok(real) } else { Err(refused()) }
        };
        match parse_source(source)? {
            Source::File(path) => {
                use std::io::Read;
                use std::os::unix::fs::OpenOptionsExt;
                let real = under(&path)?;
                // O_NONBLOCK: opening a FIFO (or a device) in an allowed directory must not block
                // a runtime thread until a writer comes; a few such loads froze the server.
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                    .open(&real)
                    .map_err(|_| refused())?;
                let meta = file.metadata()?;
                if !meta.is_file() {
                    anyhow::bail!("not a regular file");
                }
                if meta.len() > MAX_LOAD_BYTES {
                    anyhow::bail!("larger than {MAX_LOAD_BYTES} bytes");
                }
                let mut bytes = Vec::new();
                file.take(MAX_LOAD_BYTES + 1).read_to_end(&mut bytes)?;
                if bytes.len() as u64 > MAX_LOAD_BYTES {
                    anyhow::bail!("larger than {MAX_LOAD_BYTES} bytes");
                }
                Ok(Some(bytes))
            }
            Source::Layout { dir, .. } => under(&dir).map(|_| None),
            Source::Registry(reference) => {
                let name = format!("{}/{}", reference.registry(), reference.repository()).to_ascii_lowercase();
                let matches = |p: &String| name == *p || name.starts_with(&format!("{p}/"));
                if self.registries.iter().any(matches) { Ok(None) } else { Err(refused()) }
            }
        }
    }
}
