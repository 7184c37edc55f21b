//! `wharf run`: run a WASI 0.2 command component to completion.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use wharf_host::{EngineOptions, Sandbox, Stdio};

use crate::exit::{self, BadInput};
use crate::policy_args::PolicyArgs;

/// Run a WASI 0.2 command component (`wasi:cli/run`).
#[derive(Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct RunCommand {
    #[command(flatten)]
    policy: PolicyArgs,

    /// The component: a `.wasm` file.
    #[arg(value_name = "COMPONENT")]
    component: String,

    /// Arguments passed to the component (after `--` or after COMPONENT).
    #[arg(value_name = "ARGS", allow_hyphen_values = true)]
    args: Vec<String>,
}

impl RunCommand {
    /// Checks every flag, loads the component, runs it, and returns its exit code.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let policy = self.policy.to_policy()?;
        let sandbox = Sandbox::new(&policy, |name| std::env::var(name).ok())?.with_keyvalue(&self.policy.stores()?)?;
        let path = resolve_source(&self.component)?;

        let host = super::new_host(&EngineOptions::default())?;
        let (component, cache) = host.load_file(&path)?;
        tracing::debug!(component = %path.display(), ?cache, "loaded");
        let command = host.prepare_command(&self.component, &component)?;

        let mut argv = vec![self.component.clone()];
        argv.extend(self.args);
        let code = host.run_command(&command, &sandbox, &argv, Stdio::Inherit).await?;
        Ok(exit::guest(code))
    }
}

/// Where the component comes from. Only files for now; OCI references plug in here.
fn resolve_source(component: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(component);
    if path.exists() || component.ends_with(".wasm") || component.contains(std::path::MAIN_SEPARATOR) {
        return Ok(path);
    }
    Err(BadInput(format!("{component}: no such file (running straight from an OCI reference is not supported yet)"))
        .into())
}
