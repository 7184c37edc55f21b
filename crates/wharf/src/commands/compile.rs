//! `wharf compile`: compile a component into the cache ahead of time.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use wharf_host::{CacheStatus, EngineOptions};

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
        let (_, status) = host.load_file(&self.component)?;
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
