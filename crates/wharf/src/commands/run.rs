//! `wharf run`: run a WASI 0.2 command component to completion.
use std::process::ExitCode;

use clap::Args;
use wharf_host::{EngineOptions, Sandbox, Stdio};

use super::source::SourceArgs;
use crate::exit;
use crate::policy_args::PolicyArgs;

/// Run a WASI 0.2 command component (`wasi:cli/run`).
#[derive(Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct RunCommand {
    #[command(flatten)]
    policy: PolicyArgs,

    #[command(flatten)]
    source: SourceArgs,

    /// The component: a `.wasm` file, a registry reference (`host[:port]/repo[:tag]`), or
    /// `oci:DIR[:NAME]`.
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
        self.policy.state_dirs().check(&policy)?;
        let sandbox = Sandbox::new(&policy, &self.policy.backends()?, |name| std::env::var(name).ok())?
            .with_dns(crate::resolver::dns());
        let loaded = self.source.load(&self.component).await?;
        loaded.check_declared_imports()?;

        let host = super::new_host(&EngineOptions::default())?;
        let (component, cache) =
            host.load_with(&loaded.name, &loaded.bytes, || crate::compile_notice::Notice::start(&loaded.name))?;
        tracing::debug!(component = %loaded.name, ?cache, "loaded");
        let command = host.prepare_command(&self.component, &component)?;

        let mut argv = vec![self.component.clone()];
        argv.extend(self.args);
        let code = host.run_command(&command, &sandbox, &argv, Stdio::Inherit).await?;
        Ok(exit::guest(code))
    }
}
