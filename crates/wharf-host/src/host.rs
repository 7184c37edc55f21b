//! [`Host`]: loads components (through the compile cache, each for the engine it needs), links
//! them against WASI, and runs commands in a [`Sandbox`].
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi_http::handler::ProxyPre;

use crate::cache::{CacheStatus, CompileCache};
use crate::call::RunError;
use crate::engine::{EngineKind, WharfEngine};
use crate::expansion::Expansion;
use crate::p3::Command;
use crate::sandbox::{HostState, MAX_INSTANCES, Sandbox, Stdio};

/// A component that could not be loaded or linked. `name` is the file or reference it came from.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {name}")]
    Read {
        /// The file.
        name: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes do not start with the WebAssembly magic number.
    #[error("{name} is not a WebAssembly file (it does not start with `\\0asm`)")]
    NotWasm {
        /// The file or reference.
        name: String,
    },
    /// A core module where a component was expected.
    #[error(
        "{name} is a core WebAssembly module, not a component; wharf runs WASI 0.2 components \
         (build for wasm32-wasip2, or wrap it with `wasm-tools component new`)"
    )]
    CoreModule {
        /// The file or reference.
        name: String,
    },
    /// The component failed validation or compilation.
    #[error("{name} is not a valid component: {reason}")]
    Invalid {
        /// The file or reference.
        name: String,
        /// wasmtime's explanation, on one line.
        reason: String,
    },
    /// Instantiating the component would pass one of wharf's caps (checked before compiling:
    /// nested instantiations multiply, and wasmtime's compiler flattens them all).
    #[error("{name} is refused: {reason}")]
    TooLarge {
        /// The file or reference.
        name: String,
        /// Which cap it passes.
        reason: Expansion,
    },
    /// The component imports something this host does not provide.
    #[error("{name} imports `{import}`, which wharf does not provide")]
    UnsatisfiedImport {
        /// The file or reference.
        name: String,
        /// The import, e.g. `wasi:keyvalue/store@0.2.0-draft2`.
        import: String,
    },
    /// The component does not export what the subcommand needs (e.g. `wasi:cli/run`).
    #[error("{name} does not fit: {reason}")]
    WrongWorld {
        /// The file or reference.
        name: String,
        /// What is missing.
        reason: String,
    },
}

/// Adds an embedder's host interfaces to a linker (see [`Host::extend_linkers`]).
pub type LinkerExtension = fn(&mut Linker<HostState>) -> wasmtime::Result<()>;

/// Loads, links and runs components. Each component is compiled for the engine it needs
/// ([`EngineKind`], chosen from its bytes by [`crate::engine_kind`]) and linked by that engine's
/// linker; both linkers hold the same host functions over the same [`HostState`], so a grant
/// reaches a component whichever engine it runs on.
pub struct Host {
    engine: WharfEngine,
    cache: Option<CompileCache>,
    // WASI 0.2 and the capabilities, on the synchronous engine.
    sync: Linker<HostState>,
    // WASI 0.2 and 0.3 and the capabilities, on the concurrent engine; made on first use.
    concurrent: OnceLock<Linker<HostState>>,
    creating: Mutex<()>,
    extensions: Vec<LinkerExtension>,
}

impl Host {
    /// A host that links the full WASI 0.2 and 0.3 command worlds (guests built by rustc import
    /// `wasi:cli/*@0.2.x` even for non-command worlds, and 0.3 guests import both) plus
    /// `wasi:http` of both generations (outbound requests are checked against the policy by the
    /// same hook), and every registered capability (`wasi:keyvalue`, `wasi:config`, ...).
    /// WASI 0.3 exists on the concurrent engine only, which is made when a component first
    /// needs it. `cache: None` disables the compile cache.
    pub fn new(engine: WharfEngine, cache: Option<CompileCache>) -> wasmtime::Result<Self> {
        let engine = engine.with_kind(EngineKind::Sync)?;
        let sync = link(&engine, &[])?;
        Ok(Host { engine, cache, sync, concurrent: OnceLock::new(), creating: Mutex::new(()), extensions: Vec::new() })
    }

    /// The linker of `kind`'s engine, made (with the concurrent engine) on first use.
    fn linker(&self, kind: EngineKind) -> wasmtime::Result<&Linker<HostState>> {
        if kind == EngineKind::Sync {
            return Ok(&self.sync);
        }
        if let Some(linker) = self.concurrent.get() {
            return Ok(linker);
        }
        let _creating = self.creating.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.concurrent.get().is_none() {
            let linker = link(&self.engine.with_kind(EngineKind::Concurrent)?, &self.extensions)?;
            let _ = self.concurrent.set(linker);
        }
        Ok(self.concurrent.get().expect("just set"))
    }

    /// The linker `component` was compiled for.
    fn linker_for(&self, name: &str, component: &Component) -> Result<&Linker<HostState>, LoadError> {
        let kind = self.engine.for_component(component).kind();
        self.linker(kind).map_err(|e| LoadError::Invalid { name: name.into(), reason: one_line(&e) })
    }

    /// The linker, for tests that look at what it defines.
    #[cfg(test)]
    pub(crate) fn linker_of(&self, kind: EngineKind) -> &Linker<HostState> {
        self.linker(kind).unwrap()
    }

    /// The engines components are compiled for, pinned to the synchronous one; use
    /// [`WharfEngine::for_component`] to make stores for a given component.
    pub fn engine(&self) -> &WharfEngine {
        &self.engine
    }

    /// Adds an embedder's host interfaces (`wharf mcp` adds `wharf:mcp/context`) to every
    /// linker, the concurrent one included when it is made later; their per-store data lives
    /// in [`HostState::extension`].
    pub fn extend_linkers(&mut self, extension: LinkerExtension) -> wasmtime::Result<()> {
        extension(&mut self.sync)?;
        if let Some(linker) = self.concurrent.get_mut() {
            extension(linker)?;
        }
        self.extensions.push(extension);
        Ok(())
    }

    /// Reads and compiles the component at `path`.
    pub fn load_file(&self, path: &Path) -> Result<(Component, CacheStatus), LoadError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { name: name.clone(), source })?;
        self.load(&name, &bytes)
    }

    /// Compiles `bytes` (named `name` in errors), or loads it from the compile cache.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<(Component, CacheStatus), LoadError> {
        self.load_with(name, bytes, || ())
    }

    /// [`Host::load`], calling `on_compile` just before `bytes` is actually compiled (never
    /// on a cache hit); what it returns is dropped when the compile ends. The binary uses it to
    /// say "compiling X" when a compile is slow.
    pub fn load_with<G>(
        &self,
        name: &str,
        bytes: &[u8],
        on_compile: impl FnOnce() -> G,
    ) -> Result<(Component, CacheStatus), LoadError> {
        self.load_for(name, bytes, EngineKind::Sync, on_compile)
    }

    /// [`Host::load_with`] for a component that must run on at least `least`'s engine whatever
    /// it is: `wharf serve` asks for [`EngineKind::Concurrent`] when a WASI 0.2 component's
    /// instances are reused (wasmtime-wasi-http's instance pool runs on the event loop).
    pub fn load_for<G>(
        &self,
        name: &str,
        bytes: &[u8],
        least: EngineKind,
        on_compile: impl FnOnce() -> G,
    ) -> Result<(Component, CacheStatus), LoadError> {
        match bytes {
            [0, b'a', b's', b'm', 1, 0, 0, 0, ..] => return Err(LoadError::CoreModule { name: name.into() }),
            [0, b'a', b's', b'm', ..] => {}
            _ => return Err(LoadError::NotWasm { name: name.into() }),
        }
        crate::expansion::check(bytes, MAX_INSTANCES)
            .map_err(|reason| LoadError::TooLarge { name: name.into(), reason })?;
        let kind = match least {
            EngineKind::Concurrent => EngineKind::Concurrent,
            EngineKind::Sync => crate::abi::engine_kind(bytes),
        };
        self.load_as(name, bytes, kind, on_compile)
    }

    /// Compiles checked `bytes` for `kind`'s engine, or for the concurrent one if the
    /// synchronous engine refuses them (what the scan missed).
    pub(crate) fn load_as<G>(
        &self,
        name: &str,
        bytes: &[u8],
        kind: EngineKind,
        on_compile: impl FnOnce() -> G,
    ) -> Result<(Component, CacheStatus), LoadError> {
        let invalid = |e: &wasmtime::Error| LoadError::Invalid { name: name.into(), reason: one_line(e) };
        let mut on_compile = Some(on_compile);
        let mut compiling = None;
        let mut compile_on = |engine: &WharfEngine| {
            if let Some(notice) = on_compile.take() {
                compiling = Some(notice());
            }
            Component::new(engine.engine(), bytes)
        };
        let engine = self.engine.with_kind(kind).map_err(|e| invalid(&e))?;
        let result = self.compile_cached(&engine, bytes, &mut compile_on);
        let result = match result {
            // The scan missed something only the concurrent engine validates: compile there.
            Err(sync_error) if kind == EngineKind::Sync => {
                tracing::debug!(
                    "{name}: not valid without concurrency support ({}); trying the concurrent engine",
                    one_line(&sync_error)
                );
                let engine = self.engine.with_kind(EngineKind::Concurrent).map_err(|e| invalid(&e))?;
                self.compile_cached(&engine, bytes, &mut compile_on)
            }
            result => result,
        };
        drop(compiling);
        let (component, status) = result.map_err(|e| invalid(&e))?;
        tracing::debug!(%name, engine = self.engine.for_component(&component).kind().as_str(), ?status, "loaded");
        Ok((component, status))
    }

    fn compile_cached(
        &self,
        engine: &WharfEngine,
        bytes: &[u8],
        compile_on: &mut impl FnMut(&WharfEngine) -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<(Component, CacheStatus)> {
        match &self.cache {
            Some(cache) => cache.get_or_compile(engine, bytes, || compile_on(engine)),
            None => compile_on(engine).map(|c| (c, CacheStatus::Disabled)),
        }
    }

    /// Loads a component compiled earlier by [`Component::serialize`] on either engine of a
    /// process with the same options (wasmtime checks which one it fits).
    ///
    /// # Safety
    /// As [`Component::deserialize`]: `payload` must come from a trusted `serialize`.
    pub unsafe fn deserialize(&self, name: &str, payload: &[u8]) -> Result<Component, LoadError> {
        let invalid = |e: &wasmtime::Error| LoadError::Invalid { name: name.into(), reason: one_line(e) };
        // SAFETY: the caller vouches for `payload`.
        match unsafe { Component::deserialize(self.engine.engine(), payload) } {
            Ok(component) => Ok(component),
            Err(sync_error) => {
                let engine = self.engine.with_kind(EngineKind::Concurrent).map_err(|e| invalid(&e))?;
                // SAFETY: as above; wasmtime refuses an artifact of the other engine.
                unsafe { Component::deserialize(engine.engine(), payload) }.map_err(|e| {
                    tracing::debug!("{name}: not for the synchronous engine either: {}", one_line(&sync_error));
                    invalid(&e)
                })
            }
        }
    }

    /// Links `component` for calls to any of its exports, checking every import up front.
    pub fn prepare(&self, name: &str, component: &Component) -> Result<InstancePre<HostState>, LoadError> {
        self.linker_for(name, component)?.instantiate_pre(component).map_err(|e| link_error(name, &e))
    }

    /// Links `component` as a `wasi:cli/command` of WASI 0.3 or 0.2 (by what it exports),
    /// checking every import up front.
    pub fn prepare_command(&self, name: &str, component: &Component) -> Result<Command, LoadError> {
        let pre = self.prepare(name, component)?;
        let http_service = is_http_service(component);
        let command = match Command::new(pre) {
            Ok(command) => command,
            Err(e) => {
                let reason = match http_service {
                    Some(world) => {
                        format!("it is an HTTP component ({world}), not a command; serve it with `wharf serve`")
                    }
                    None => format!("it is not a command: it exports neither `wasi:cli/run@0.3.x` nor `@0.2.x` ({e})"),
                };
                return Err(LoadError::WrongWorld { name: name.into(), reason });
            }
        };
        // rustc gives a `#![no_main]` HTTP component a `wasi:cli/run@0.2.0` that traps at once:
        // an HTTP component without a 0.3 `run` is meant for `serve`.
        if command.generation() == crate::Generation::P2
            && let Some(world) = http_service
        {
            let reason = format!("it is an HTTP component ({world}), not a command; serve it with `wharf serve`");
            return Err(LoadError::WrongWorld { name: name.into(), reason });
        }
        Ok(command)
    }

    /// Links `component` as a `wasi:http/handler@0.3.x` service or a `wasi:http/proxy@0.2.x`
    /// (0.3 first, as `wasmtime serve` does), checking every import up front.
    pub fn prepare_proxy(&self, name: &str, component: &Component) -> Result<ProxyPre<HostState>, LoadError> {
        let pre = self.prepare(name, component)?;
        if let Ok(service) = wasmtime_wasi_http::p3::bindings::ServicePre::new(pre.clone()) {
            return Ok(ProxyPre::P3(service));
        }
        wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre).map(ProxyPre::P2).map_err(|e| LoadError::WrongWorld {
            name: name.into(),
            reason: format!(
                "it exports neither `wasi:http/handler@0.3.x` nor `wasi:http/incoming-handler@0.2.x` ({})",
                one_line(&e)
            ),
        })
    }

    /// Runs a prepared command to completion in a fresh store and returns its exit code.
    pub async fn run_command(
        &self,
        pre: &Command,
        sandbox: &Sandbox,
        args: &[String],
        stdio: Stdio,
    ) -> Result<i32, RunError> {
        let mut store = sandbox.store(&self.engine.for_component(pre.component()), args, stdio)?;
        let run = async |store: &mut wasmtime::Store<HostState>| match pre.run(store).await {
            Ok(Ok(())) => Ok(0),
            Ok(Err(())) => Ok(1),
            // `exit(n)` is how a command returns its code, not a failure.
            Err(e) => e.downcast_ref::<I32Exit>().map(|exit| exit.0).ok_or(e),
        };
        sandbox.call(&mut store, run).await
    }
}

/// `Some(world)` when `component` exports a `wasi:http` handler of either generation, to say
/// so when it is given to `run`.
fn is_http_service(component: &Component) -> Option<&'static str> {
    let exports: Vec<String> =
        component.component_type().exports(component.engine()).map(|(name, _)| name.to_string()).collect();
    let has = |prefix: &str| exports.iter().any(|name| name.starts_with(prefix));
    if has("wasi:http/handler@0.3") {
        Some("wasi:http/handler@0.3.x")
    } else if has("wasi:http/incoming-handler@0.2") {
        Some("wasi:http/incoming-handler@0.2.x")
    } else {
        None
    }
}

/// A linker on `engine` with everything a component may import there: WASI 0.2, the 0.3 world
/// too on the concurrent engine (its host functions need concurrency support), wharf's own
/// lookups and symlink checks for each, every capability, and the embedder's `extensions`.
fn link(engine: &WharfEngine, extensions: &[LinkerExtension]) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine.engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // Name lookups only for granted names, on wharf's DNS threads.
    crate::p2_lookup::add_to_linker(&mut linker, HostState::lookups)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::guest_links::add_p2_to_linker(&mut linker)?;
    if engine.kind() == EngineKind::Concurrent {
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        // 0.3 lookups through the same checks as 0.2's; guest symlinks kept inside their grant.
        crate::p3_lookup::add_to_linker(&mut linker, HostState::guest_net)?;
        crate::guest_links::add_p3_to_linker(&mut linker)?;
    }
    // WASI cloud interfaces; what a component may use is decided by its sandbox.
    crate::capabilities::add_to_linker(&mut linker)?;
    for extension in extensions {
        extension(&mut linker)?;
    }
    Ok(linker)
}

fn link_error(name: &str, e: &wasmtime::Error) -> LoadError {
    let text = one_line(e);
    // wasmtime says "component imports instance `NAME`, but a matching implementation ...".
    match text.split('`').nth(1) {
        Some(import) if text.starts_with("component imports") => {
            tracing::debug!("link failure: {text}");
            LoadError::UnsatisfiedImport { name: name.into(), import: import.into() }
        }
        _ => LoadError::Invalid { name: name.into(), reason: text },
    }
}

/// An error chain on one line (`outer: inner: root`), without a backtrace: the first line of
/// each cause, skipping wasmtime's "error while executing at wasm backtrace:" context (whose
/// first line says nothing).
pub(crate) fn one_line(e: &wasmtime::Error) -> String {
    let causes: Vec<String> = e
        .chain()
        .map(|cause| cause.to_string().lines().next().unwrap_or_default().trim_end_matches(':').to_string())
        .filter(|line| !line.is_empty() && line != "error while executing at wasm backtrace")
        .collect();
    causes.join(": ")
}
