//! One module per subcommand.
pub mod cache;
pub mod compile;
pub mod inspect;
pub mod login;
pub mod mcp;
pub mod oci;
pub mod pull;
pub mod push;
pub mod run;
pub mod serve;
pub mod source;

use wharf_host::{EngineOptions, Host, WharfEngine};

/// The process's host: one engine, the on-disk compile cache.
pub fn new_host(options: &EngineOptions) -> anyhow::Result<Host> {
    let engine = WharfEngine::new(options)?;
    Ok(Host::new(engine, crate::dirs::compile_cache())?)
}
