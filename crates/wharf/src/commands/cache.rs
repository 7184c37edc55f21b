//! `wharf cache`: look after the compile cache.
use std::process::ExitCode;

use clap::Subcommand;
use wharf_host::CompileCache;
use wharf_host::policy::format_size;

/// Manage the compile cache.
#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Print the cache directory.
    Dir,
    /// Delete every cached compilation.
    Clean,
}

impl CacheCommand {
    /// Runs the cache subcommand.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let Some(dir) = crate::dirs::cache_dir() else {
            return Err(crate::exit::BadInput(
                "no cache directory: set WHARF_CACHE_DIR, XDG_CACHE_HOME or HOME".into(),
            )
            .into());
        };
        let cache = CompileCache::new(dir);
        match self {
            CacheCommand::Dir => println!("{}", cache.dir().display()),
            CacheCommand::Clean => {
                let freed = cache.clean()?;
                println!("removed {} from {}", format_size(freed), cache.dir().display());
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
