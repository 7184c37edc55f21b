//! `wharf`: run, serve and distribute WebAssembly components, sandboxed by default.
//!
//! This binary is the only place that reads flags, environment variables and terminal state;
//! it hands plain values to the library crates. One module per subcommand under `commands/`.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod compile_notice;
mod dirs;
mod exit;
mod log_buffer;
mod policy_args;
mod resolver;
mod runtime_config;

/// Run WebAssembly components, sandboxed by default.
#[derive(Parser, Debug)]
#[command(name = "wharf", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
// Parsed once per process; boxing the sandbox flags would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    Run(commands::run::RunCommand),
    Serve(commands::serve::ServeCommand),
    Compile(commands::compile::CompileCommand),
    #[command(subcommand)]
    Cache(commands::cache::CacheCommand),
    Push(commands::push::PushCommand),
    Pull(commands::pull::PullCommand),
    Inspect(commands::inspect::InspectCommand),
    Mcp(commands::mcp::McpCommand),
    Call(commands::mcp::CallCommand),
    Login(commands::login::LoginCommand),
    Logout(commands::login::LogoutCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Servers log one access line per request unless WHARF_LOG says otherwise.
    // A server's log lines (one per request) go through a buffer written by its own thread
    // (see `log_buffer`); other commands write each line to stderr at once.
    let buffered = matches!(cli.command, Command::Serve(_));
    init_logging(
        buffered,
        match cli.command {
            // Guest output is logged too: labelled, escaped and bounded (wharf::guest).
            Command::Serve(_) => "warn,wharf::access=info,wharf_http=info,wharf::guest=info",
            // Guest output is logged, never written to stdout (the stdio transport).
            Command::Mcp(_) => "warn,wharf::guest=info,wharf::calls=info",
            Command::Call(_) => "warn,wharf::guest=info",
            _ => "warn",
        },
    );
    // A command that runs one component, or none, does its work on this thread: a worker
    // thread per core would only be started, parked and torn down again (two clones, stacks
    // and wake-ups on each `wharf run`). Servers and transfers keep one worker per core.
    let mut builder = match cli.command {
        Command::Run(_) | Command::Compile(_) | Command::Cache(_) | Command::Login(_) | Command::Logout(_) => {
            tokio::runtime::Builder::new_current_thread()
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return exit::report(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(cmd) => cmd.execute().await,
            Command::Serve(cmd) => cmd.execute().await,
            Command::Compile(cmd) => cmd.execute(),
            Command::Cache(cmd) => cmd.execute(),
            Command::Push(cmd) => cmd.execute().await,
            Command::Pull(cmd) => cmd.execute().await,
            Command::Inspect(cmd) => cmd.execute().await,
            Command::Mcp(cmd) => cmd.execute().await,
            Command::Call(cmd) => cmd.execute().await,
            Command::Login(cmd) => cmd.execute(),
            Command::Logout(cmd) => cmd.execute(),
        }
    });
    // Do not wait for guest I/O threads (e.g. a blocked stdin read) once the guest is done.
    runtime.shutdown_background();
    log_buffer::flush();
    match result {
        Ok(code) => code,
        Err(e) => exit::report(e),
    }
}

/// Logs go to stderr, filtered by `WHARF_LOG` (tracing's `EnvFilter` syntax), else `default`;
/// `buffered`: through [`log_buffer`] (falling back to direct writes if its thread cannot start).
fn init_logging(buffered: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WHARF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match buffered.then(log_buffer::install) {
        Some(Ok(buffer)) => builder.with_writer(buffer).init(),
        _ => builder.with_writer(std::io::stderr).init(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
