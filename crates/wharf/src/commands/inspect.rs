//! `wharf inspect REF|FILE`: what an artifact holds, as a table or JSON.
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use clap::Args;
use wharf_oci::{BuildOptions, Description, Layout, Pulled};

use super::oci::{RegistryArgs, Source};

/// Show an artifact's media types, digests, sizes, and the component's imports and exports.
///
/// Reads a registry reference (manifest and config only), an `oci:DIR[:NAME]` layout, or a
/// local `.wasm` file (showing the artifact `wharf push` would build from it).
#[derive(Args, Debug)]
pub struct InspectCommand {
    #[command(flatten)]
    registry: RegistryArgs,

    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,

    /// `host[:port]/repository[:tag|@digest]`, `oci:DIR[:NAME]`, or a `.wasm` file.
    source: String,
}

impl InspectCommand {
    /// Reads the artifact and prints it.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let pulled = match super::oci::parse_source(&self.source)? {
            Source::Registry(reference) => {
                let credential = super::oci::credential(&reference)?;
                self.registry.registry(&self.source)?.fetch(&reference, &credential).await?
            }
            Source::Layout { dir, name } => Pulled::from_layout(&Layout::open(&dir)?, name.as_deref())?,
            Source::File(path) => {
                let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let title = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                let options = BuildOptions {
                    created: SystemTime::UNIX_EPOCH,
                    author: None,
                    title,
                    target_world: None,
                    annotations: Default::default(),
                };
                let artifact = wharf_oci::build(&path.display().to_string(), bytes, &options)?;
                Pulled {
                    manifest_digest: artifact.manifest_digest(),
                    index_digest: None,
                    manifest_size: artifact.manifest_bytes.len() as u64,
                    manifest: artifact.manifest,
                    config_bytes: artifact.config_bytes,
                }
            }
        };
        let description = wharf_oci::describe(&self.source, &pulled);
        if self.json {
            println!("{}", serde_json::to_string_pretty(&description)?);
        } else {
            print!("{}", table(&description));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The human form: one `key value` line per fact, then the layers, annotations and world.
fn table(d: &Description) -> String {
    let mut out = String::new();
    let mut row = |key: &str, value: &str| {
        let _ = writeln!(out, "{key:<13}{value}");
    };
    row("Reference", &d.reference);
    if let Some(index) = &d.index_digest {
        row("Index", index);
    }
    row("Manifest", &format!("{}  {}  {}", d.manifest.digest, d.manifest.media_type, size(d.manifest.size)));
    row("Config", &format!("{}  {}  {}", d.config.digest, d.config.media_type, size(d.config.size)));
    if let (Some(os), Some(arch)) = (&d.os, &d.architecture) {
        row("Platform", &format!("{os}/{arch}"));
    }
    if let Some(created) = &d.created {
        row("Created", created);
    }
    if let Some(author) = &d.author {
        row("Author", author);
    }
    let _ = writeln!(out, "Layers");
    for (i, layer) in d.layers.iter().enumerate() {
        let entry = if i == 0 { "  (entry)" } else { "" };
        let title = layer.title.as_deref().unwrap_or("-");
        let _ = writeln!(out, "  {i}  {}  {}  {}  {title}{entry}", layer.digest, layer.media_type, size(layer.size));
    }
    if !d.annotations.is_empty() {
        let _ = writeln!(out, "Annotations");
        for (key, value) in &d.annotations {
            let _ = writeln!(out, "  {key}={value}");
        }
    }
    match &d.component {
        Some(world) => {
            if let Some(target) = &world.target {
                let _ = writeln!(out, "{:<13}{target}", "Target");
            }
            if let Some(generation) = wasi_generation(&world.exports, &world.imports) {
                let _ = writeln!(out, "{:<13}{generation}", "WASI");
            }
            for (title, names) in [("Exports", &world.exports), ("Imports", &world.imports)] {
                let _ = writeln!(out, "{title} ({})", names.len());
                for name in names {
                    let _ = writeln!(out, "  {name}");
                }
            }
        }
        None => {
            let _ = writeln!(out, "World        unknown (the config is not a Wasm config with a `component`)");
        }
    }
    out
}

/// Which WASI generation a world is, from its `wasi:` names: 0.3 when it exports (or, for a
/// library, imports) a `@0.3.x` interface. rustc's std makes 0.3 components import
/// `wasi:cli@0.2.x` too, so a 0.2 import alone does not decide.
fn wasi_generation(exports: &[String], imports: &[String]) -> Option<&'static str> {
    let at = |names: &[String], line: &str| names.iter().any(|n| n.starts_with("wasi:") && n.contains(line));
    if at(exports, "@0.3.") || (!at(exports, "@0.2.") && at(imports, "@0.3.")) {
        Some("0.3 (async: streams, futures, async exports)")
    } else if at(exports, "@0.2.") || at(imports, "@0.2.") {
        Some("0.2")
    } else {
        None
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}
