//! Where `wharf run` and `wharf serve` (and later mcp) get a component: a file, an `oci:DIR[:NAME]`
//! layout, or a registry reference pulled once into the local store.
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use wharf_oci::{Layout, Pulled, WasmConfig};

use super::oci::{Bar, RegistryArgs, Source};
use crate::exit::BadInput;

/// When to contact the registry for a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullPolicy {
    /// Use the local store only.
    Never,
    /// Pull if the reference is not in the local store (default).
    Missing,
    /// Pull every time (blobs already stored are not downloaded again).
    Always,
}

/// Flags for components given by reference.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// When to pull a reference: `never`, `missing` or `always`.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "missing")]
    pub pull: PullPolicy,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// A component's bytes, and the imports its artifact declares (when it came from one).
pub struct Loaded {
    /// What to call it in messages.
    pub name: String,
    /// The Wasm bytes (verified against their digest when they came from a store).
    pub bytes: Vec<u8>,
    /// The config's `component.imports`, for an artifact with a Wasm config.
    pub declared_imports: Option<Vec<String>>,
}

impl SourceArgs {
    /// Reads `input` as a file, a layout or a reference (pulling per `--pull`).
    pub async fn load(&self, input: &str) -> anyhow::Result<Loaded> {
        let (pulled, layout) = match super::oci::parse_source(input)? {
            Source::File(path) => return load_file(input, path),
            Source::Layout { dir, name } => {
                let layout = Layout::open(&dir)?;
                (Pulled::from_layout(&layout, name.as_deref())?, layout)
            }
            Source::Registry(reference) => {
                let store = super::oci::store()?;
                let name = reference.whole();
                let local = match self.pull {
                    PullPolicy::Always => None,
                    PullPolicy::Never | PullPolicy::Missing => match Pulled::from_layout(&store, Some(&name)) {
                        Ok(pulled) => Some(pulled),
                        Err(wharf_oci::Error::NotInStore { .. }) if self.pull == PullPolicy::Missing => None,
                        Err(wharf_oci::Error::NotInStore { .. }) => {
                            return Err(BadInput(format!(
                                "{name} is not in the local store and --pull=never was given"
                            ))
                            .into());
                        }
                        Err(e) => return Err(e.into()),
                    },
                };
                let pulled = match local {
                    Some(pulled) => pulled,
                    None => {
                        let credential = super::oci::credential(&reference)?;
                        let registry = self.registry.registry(input)?;
                        registry.pull(&reference, &credential, &store, &Bar::new("pulling")).await?
                    }
                };
                (pulled, store)
            }
        };
        let bytes = layout.read_blob(&pulled.wasm_layer().digest)?;
        let config = WasmConfig::parse(&pulled.config_bytes);
        let declared_imports = config.and_then(|c| c.component).map(|c| c.imports);
        Ok(Loaded { name: input.to_string(), bytes, declared_imports })
    }
}

impl Loaded {
    /// Refuses, listing every one, imports the artifact declares that the host cannot provide
    /// (checked before anything is compiled).
    pub fn check_declared_imports(&self) -> anyhow::Result<()> {
        let Some(imports) = &self.declared_imports else { return Ok(()) };
        let missing = wharf_host::provides::missing_imports(imports.iter().map(String::as_str));
        if missing.is_empty() {
            return Ok(());
        }
        let list = missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
        Err(BadInput(format!("{} imports {list}, which wharf does not provide", self.name)).into())
    }
}

fn load_file(input: &str, path: PathBuf) -> anyhow::Result<Loaded> {
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Loaded { name: input.to_string(), bytes, declared_imports: None }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BadInput(format!(
            "cannot read {input}: no such file (a registry reference looks like host[:port]/repository[:tag])"
        ))
        .into()),
        Err(e) => Err(BadInput(format!("cannot read {input}: {e}")).into()),
    }
}
