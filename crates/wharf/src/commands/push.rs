//! `wharf push FILE REF`: publish a component as a Wasm OCI artifact.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use wharf_oci::BuildOptions;

use super::oci::{Bar, RegistryArgs};
use crate::exit::BadInput;

/// Push a component (or core module) to a registry in the CNCF Wasm OCI artifact layout.
///
/// With `SOURCE_DATE_EPOCH` set, the same bytes give the same manifest digest.
#[derive(Args, Debug)]
pub struct PushCommand {
    #[command(flatten)]
    registry: RegistryArgs,

    /// A manifest annotation `KEY=VALUE` (repeatable), e.g.
    /// `org.opencontainers.image.source=https://...`.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    annotations: Vec<String>,

    /// The config's `author`.
    #[arg(long)]
    author: Option<String>,

    /// The config's `component.target`, e.g. `wasi:http/proxy@0.2.0`.
    #[arg(long, value_name = "WORLD")]
    target_world: Option<String>,

    /// The `.wasm` file.
    file: PathBuf,

    /// Where to push: `host[:port]/repository[:tag]`.
    reference: String,
}

impl PushCommand {
    /// Checks the flags, builds the artifact, pushes it, prints `REF@DIGEST`.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let reference = wharf_oci::parse_reference(&self.reference)?;
        let annotations = parse_annotations(&self.annotations)?;
        let created = created_time()?;
        let bytes = std::fs::read(&self.file).with_context(|| format!("cannot read {}", self.file.display()))?;
        let title = self.file.file_name().map_or_else(|| "component.wasm".into(), |n| n.to_string_lossy().into_owned());
        let options =
            BuildOptions { created, author: self.author, title, target_world: self.target_world, annotations };
        let artifact = wharf_oci::build(&self.file.display().to_string(), bytes, &options)?;

        let credential = super::oci::credential(&reference)?;
        let registry = self.registry.registry(&self.reference)?;
        let digest = registry.push(&reference, &credential, &artifact, &Bar::new("pushing")).await?;
        println!("{}@{digest}", reference.whole().split('@').next().unwrap_or_default());
        Ok(ExitCode::SUCCESS)
    }
}

fn parse_annotations(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for pair in pairs {
        match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                map.insert(key.to_string(), value.to_string());
            }
            _ => return Err(BadInput(format!("--annotation {pair:?}: expected KEY=VALUE")).into()),
        }
    }
    Ok(map)
}

/// `SOURCE_DATE_EPOCH` (reproducible builds) if set, else now.
fn created_time() -> anyhow::Result<SystemTime> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => {
            let secs: u64 = value
                .trim()
                .parse()
                .map_err(|_| BadInput(format!("SOURCE_DATE_EPOCH={value:?} is not a number of seconds since 1970")))?;
            Ok(UNIX_EPOCH + Duration::from_secs(secs))
        }
        _ => Ok(SystemTime::now()),
    }
}
