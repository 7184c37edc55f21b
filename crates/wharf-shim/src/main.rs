//! `containerd-shim-wharf-v1`: a containerd shim (runtime type `io.containerd.wharf.v1`) that
//! runs WebAssembly components with Wharf's host, on runwasi's `containerd-shim-wasm`.
//!
//! containerd starts this binary per container (per pod under Kubernetes). runwasi's library
//! speaks the shim protocol, reads the image's Wasm layers from containerd's content store,
//! and creates the container with youki's libcontainer (namespaces, cgroup, mounts); inside
//! it, [`run::run`] runs the component as `wharf run` or `wharf serve` would. See
//! docs/kubernetes.md.
//!
//! Settings of the shim process itself (containerd's environment, not the container's):
//! `WHARF_CACHE_DIR` is Wharf's compile cache on the node (default `/var/cache/wharf`).
mod policy;
mod precompiled;
mod run;
mod tarlayer;

use std::hash::Hash;
use std::path::PathBuf;
use std::sync::OnceLock;

use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::{RuntimeContext, WasmLayer};
use containerd_shim_wasm::shim::{Cli, Compiler, Shim, Version};
use wharf_host::{CompileCache, EngineOptions, Host, WharfEngine};

/// The layers runwasi reads from containerd's content store for the shim (only of images whose
/// config says `architecture: wasm`).
const SUPPORTED_LAYERS: &[&str] = &[
    // The CNCF Wasm Working Group's layer (what `wharf push` writes).
    "application/wasm",
    // The Bytecode Alliance's older component layer, as runwasi accepts it.
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
    policy::POLICY_MEDIA_TYPE,
    // The tar layers of an image with a `.wasm` file: compiled once here, see `tarlayer`.
    tarlayer::TAR_MEDIA_TYPES[0],
    tarlayer::TAR_MEDIA_TYPES[1],
    tarlayer::TAR_MEDIA_TYPES[2],
    tarlayer::TAR_MEDIA_TYPES[3],
];

/// The shim: names the runtime and supplies the precompiler.
struct WharfShim;

impl Shim for WharfShim {
    type Sandbox = WharfSandbox;

    fn name() -> &'static str {
        "wharf"
    }

    fn version() -> Version {
        containerd_shim_wasm::shim::version!()
    }

    async fn compiler() -> Option<impl Compiler> {
        match Precompiler::get() {
            Ok(compiler) => Some(compiler),
            Err(e) => {
                log::warn!("precompilation disabled: {e:#}");
                None
            }
        }
    }

    fn supported_layers_types() -> &'static [&'static str] {
        SUPPORTED_LAYERS
    }
}

/// Runs one container's component (inside the container).
#[derive(Default)]
struct WharfSandbox;

impl Sandbox for WharfSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> anyhow::Result<i32> {
        Ok(run::run(ctx).await)
    }

    /// Takes every container that is not a native executable (runwasi runs those, e.g. a pod's
    /// pause container, as runc would): a missing or malformed component is reported by
    /// `run_wasi` on the container's stderr with an exit code, where users see it, instead of
    /// a start failure whose reason only reaches the shim's log.
    async fn can_handle(&self, _ctx: &impl RuntimeContext) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Compiles an image's component once, in the shim process: into Wharf's compile cache on the
/// node, and back to runwasi, which stores the compiled form in containerd's content store
/// (labelled with [`Compiler::cache_key`]) and hands it to later containers of the image.
/// Both layouts: a component layer, and the components in the tar layers of an image with a
/// `.wasm` file (see `tarlayer`).
#[derive(Clone)]
struct Precompiler {
    engine: &'static WharfEngine,
}

/// The precompiler's host (WASI linked), made on the first compile: a container whose image is
/// compiled already needs only the engine's fingerprint, for runwasi's cache key.
static HOST: OnceLock<Host> = OnceLock::new();

impl Precompiler {
    fn get() -> anyhow::Result<Self> {
        static ENGINE: OnceLock<WharfEngine> = OnceLock::new();
        if let Some(engine) = ENGINE.get() {
            return Ok(Precompiler { engine });
        }
        // The same options as the engine inside the container, so the compiled form loads there.
        let engine = WharfEngine::new(&EngineOptions::default())
            .map_err(|e| anyhow::Error::from(e).context("cannot start the engine"))?;
        Ok(Precompiler { engine: ENGINE.get_or_init(|| engine) })
    }

    fn host(&self) -> anyhow::Result<&'static Host> {
        if let Some(host) = HOST.get() {
            return Ok(host);
        }
        let cache_dir = std::env::var_os("WHARF_CACHE_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from("/var/cache/wharf"), PathBuf::from);
        let host = Host::new(self.engine.clone(), Some(CompileCache::new(cache_dir)))
            .map_err(|e| anyhow::Error::from(e).context("cannot link WASI"))?;
        Ok(HOST.get_or_init(|| host))
    }
}

impl Compiler for Precompiler {
    fn cache_key(&self) -> impl Hash {
        (env!("CARGO_PKG_VERSION"), self.engine.fingerprint())
    }

    async fn compile(&self, layers: &[WasmLayer]) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
        let mut compiled = Vec::with_capacity(layers.len());
        for layer in layers {
            if layer.config.media_type().to_string() == policy::POLICY_MEDIA_TYPE {
                // runwasi recompiles the whole image on every start while any layer lacks a
                // compiled form, so the policy gets one: its own text plus a TOML comment
                // (distinct content, same meaning).
                let mut text = layer.layer.clone();
                text.extend_from_slice(b"\n# kept by containerd-shim-wharf-v1\n");
                compiled.push(Some(text));
                continue;
            }
            if tarlayer::is_tar(layer.config.media_type().as_ref()) {
                compiled.push(self.compile_tar_layer(layer)?);
                continue;
            }
            let name = layer.config.digest().to_string();
            // A bad component is not compiled here; the container reports it on its stderr.
            match self.host()?.load(&name, &layer.layer) {
                Ok((component, status)) => {
                    log::info!("precompiled {name} ({status:?})");
                    compiled.push(Some(precompiled::seal(&name, &component.serialize()?)));
                }
                Err(e) => {
                    log::warn!("not precompiling {name}: {e}");
                    compiled.push(None);
                }
            }
        }
        Ok(compiled)
    }
}

impl Precompiler {
    /// A tar layer's compiled layer (every component file in it), or `None` if runwasi handed
    /// over a compiled layer already.
    fn compile_tar_layer(&self, layer: &WasmLayer) -> anyhow::Result<Option<Vec<u8>>> {
        if layer.precompiled {
            return Ok(None);
        }
        let media_type = layer.config.media_type().to_string();
        let mut entries = Vec::new();
        for wasm in tarlayer::wasm_files(&media_type, &layer.layer) {
            let sha256 = tarlayer::sha256(&wasm);
            let digest = tarlayer::digest_string(&sha256);
            // Not a component (a core module, a corrupt file): left to the container, which
            // reports it on its stderr if it is the entrypoint.
            match self.host()?.load(&digest, &wasm) {
                Ok((component, status)) => {
                    log::info!("precompiled {digest} from tar layer {} ({status:?})", layer.config.digest());
                    entries.push((sha256, precompiled::seal(&digest, &component.serialize()?)));
                }
                Err(e) => log::warn!("not precompiling {digest} from tar layer {}: {e}", layer.config.digest()),
            }
        }
        // Always a compiled layer, even an empty one: runwasi compiles an image again on every
        // start while any of its layers lacks one.
        Ok(Some(tarlayer::compiled_layer(&entries)))
    }
}

fn main() {
    WharfShim::run(None);
}
