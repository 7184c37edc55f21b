//! `wharf compile`: compile a component into the cache ahead of time.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use wharf_host::{CacheStatus, EngineOptions, PoolOptions};

/// Compile a component into the compile cache without running it.
#[derive(Args, Debug)]
pub struct CompileCommand {
    /// The component file.
    #[arg(value_name = "COMPONENT")]
    component: PathBuf,
}

impl CompileCommand {
    /// Compiles (or finds in the cache) and reports which.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let host = super::new_host(&EngineOptions::default())?;
        let name = self.component.display().to_string();
        let bytes = std::fs::read(&self.component).with_context(|| format!("cannot read {name}"))?;
        let (_, status) = host.load(&name, &bytes)?;
        // `wharf serve` runs components with little data on an engine that copies it into
        // memory instead of mapping an image (`PoolOptions::copy_data`): another compiled form,
        // so it is compiled too, or the first `wharf serve` would compile again. Best effort: a
        // component the default pool cannot hold is compiled by the `wharf serve` that sizes one.
        if wharf_host::data_segment_bytes(&bytes).is_some_and(|n| n <= wharf_host::COPY_DATA_UP_TO) {
            let pool =
                PoolOptions { instances: 1, max_memory: wharf_host::policy::DEFAULT_MAX_MEMORY, copy_data: true };
            if let Err(error) = super::new_host(&EngineOptions { pooling: Some(pool) })?.load(&name, &bytes) {
                tracing::debug!(%error, "not compiled for wharf serve's pool");
            }
        }
        let what = match status {
            CacheStatus::Hit => "already cached",
            CacheStatus::Miss => "compiled",
            CacheStatus::Recovered => "compiled (replaced a corrupt cache entry)",
            CacheStatus::Disabled => "compiled (cache disabled)",
        };
        println!("{}: {what}", self.component.display());
        Ok(ExitCode::SUCCESS)
    }
}
