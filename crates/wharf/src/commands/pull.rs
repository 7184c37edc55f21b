//! `wharf pull REF [-o FILE]`: fetch a Wasm OCI artifact into the local store.
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use wharf_oci::{Layout, Pulled};

use super::oci::{Bar, RegistryArgs, Source};
use crate::exit::BadInput;

/// Pull a component into the local store (verified against its digests), and optionally
/// write it to a file. Prints `REF@DIGEST`.
#[derive(Args, Debug)]
pub struct PullCommand {
    #[command(flatten)]
    registry: RegistryArgs,

    /// Also write the component (layer 0) to this file.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// `host[:port]/repository[:tag|@digest]`, or `oci:DIR[:NAME]` for an OCI image layout.
    reference: String,
}

impl PullCommand {
    /// Pulls, then writes `--output` if asked.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let (pulled, layout) = match super::oci::parse_source(&self.reference)? {
            Source::Registry(reference) => {
                let credential = super::oci::credential(&reference)?;
                let store = super::oci::store()?;
                let registry = self.registry.registry(&self.reference)?;
                let pulled = registry.pull(&reference, &credential, &store, &Bar::new("pulling")).await?;
                println!("{}@{}", reference.whole().split('@').next().unwrap_or_default(), pulled.manifest_digest);
                (pulled, store)
            }
            Source::Layout { dir, name } => {
                let layout = Layout::open(&dir)?;
                let pulled = Pulled::from_layout(&layout, name.as_deref())?;
                println!("{}@{}", self.reference, pulled.manifest_digest);
                (pulled, layout)
            }
            Source::File(_) => {
                return Err(BadInput(format!(
                    "{}: not a reference (expected host[:port]/repository[:tag] or oci:DIR[:NAME])",
                    self.reference
                ))
                .into());
            }
        };
        if let Some(output) = &self.output {
            let wasm = layout.read_blob(&pulled.wasm_layer().digest)?;
            write_atomically(output, &wasm)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Writes `bytes` to a temp file next to `path` and renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let context = || format!("cannot write {}", path.display());
    let mut file = tempfile::NamedTempFile::new_in(dir).with_context(context)?;
    file.write_all(bytes).with_context(context)?;
    file.persist(path).map_err(|e| e.error).with_context(context)?;
    Ok(())
}
