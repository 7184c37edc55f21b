//! [`Host`]: loads components (through the compile cache), links them against WASI, and runs
//! commands in a [`Sandbox`].
use std::path::Path;

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi_http::handler::ProxyPre;

use crate::cache::{CacheStatus, CompileCache};
use crate::call::RunError;
use crate::engine::WharfEngine;
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

/// Loads, links and runs components on one engine with one linker.
pub struct Host {
    engine: WharfEngine,
    cache: Option<CompileCache>,
    linker: Linker<HostState>,
}

impl Host {
    /// A host that links the full WASI 0.2 and 0.3 command worlds (guests built by rustc import
    /// `wasi:cli/*@0.2.x` even for non-command worlds, and 0.3 guests import both) plus
    /// `wasi:http` of both generations (outbound requests are checked against the policy by the
    /// same hook), and every registered capability (`wasi:keyvalue`, `wasi:config`, ...).
    /// `cache: None` disables the compile cache.
    pub fn new(engine: WharfEngine, cache: Option<CompileCache>) -> wasmtime::Result<Self> {
        let mut linker = Linker::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // Name lookups only for granted names, on wharf's DNS threads.
        crate::p2_lookup::add_to_linker(&mut linker, HostState::lookups)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        // 0.3 lookups through the same checks as 0.2's; guest symlinks kept inside their grant.
        crate::p3_lookup::add_to_linker(&mut linker, HostState::guest_net)?;
        crate::guest_links::add_to_linker(&mut linker)?;
        // WASI cloud interfaces; what a component may use is decided by its sandbox.
        crate::capabilities::add_to_linker(&mut linker)?;
        Ok(Host { engine, cache, linker })
    }

    /// The linker every component is checked and instantiated against.
    #[cfg(test)]
    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    /// The engine components are compiled for.
    pub fn engine(&self) -> &WharfEngine {
        &self.engine
    }

    /// The linker, for an embedder that provides host interfaces of its own (`wharf mcp` adds
    /// `wharf:mcp/context`); their per-store data lives in [`HostState::extension`].
    pub fn linker_mut(&mut self) -> &mut Linker<HostState> {
        &mut self.linker
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
        match bytes {
            [0, b'a', b's', b'm', 1, 0, 0, 0, ..] => return Err(LoadError::CoreModule { name: name.into() }),
            [0, b'a', b's', b'm', ..] => {}
            _ => return Err(LoadError::NotWasm { name: name.into() }),
        }
        crate::expansion::check(bytes, MAX_INSTANCES)
            .map_err(|reason| LoadError::TooLarge { name: name.into(), reason })?;
        let compile = || {
            let _compiling = on_compile();
            Component::new(self.engine.engine(), bytes)
        };
        let result = match &self.cache {
            Some(cache) => cache.get_or_compile(&self.engine, bytes, compile),
            None => compile().map(|c| (c, CacheStatus::Disabled)),
        };
        result.map_err(|e| LoadError::Invalid { name: name.into(), reason: one_line(&e) })
    }

    /// Links `component` for calls to any of its exports, checking every import up front.
    pub fn prepare(&self, name: &str, component: &Component) -> Result<InstancePre<HostState>, LoadError> {
        self.linker.instantiate_pre(component).map_err(|e| link_error(name, &e))
    }

    /// Links `component` as a `wasi:cli/command` of WASI 0.3 or 0.2 (by what it exports),
    /// checking every import up front.
    pub fn prepare_command(&self, name: &str, component: &Component) -> Result<Command, LoadError> {
        let pre = self.linker.instantiate_pre(component).map_err(|e| link_error(name, &e))?;
        let http_service = is_http_service(component, self.engine.engine());
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
        let pre = self.linker.instantiate_pre(component).map_err(|e| link_error(name, &e))?;
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
        let mut store = sandbox.store(&self.engine, args, stdio)?;
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
fn is_http_service(component: &Component, engine: &wasmtime::Engine) -> Option<&'static str> {
    let exports: Vec<String> = component.component_type().exports(engine).map(|(name, _)| name.to_string()).collect();
    let has = |prefix: &str| exports.iter().any(|name| name.starts_with(prefix));
    if has("wasi:http/handler@0.3") {
        Some("wasi:http/handler@0.3.x")
    } else if has("wasi:http/incoming-handler@0.2") {
        Some("wasi:http/incoming-handler@0.2.x")
    } else {
        None
    }
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
