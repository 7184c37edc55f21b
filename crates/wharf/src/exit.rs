//! Exit codes and how errors are printed. A guest's own exit code passes through unchanged;
//! wharf's own outcomes use codes in the style of `timeout(1)` and container runtimes.
use std::process::ExitCode;

use wharf_host::policy::PolicyError;
use wharf_host::{LoadError, RunError, SandboxError};

/// Wharf itself failed (I/O, runtime).
pub const FAILURE: u8 = 1;
/// Bad input: flags, policy, malformed or unlinkable component (clap also uses 2).
pub const BAD_INPUT: u8 = 2;
/// The guest ran past `--timeout` (as `timeout(1)` does).
pub const TIMEOUT: u8 = 124;
/// The guest trapped (128 + SIGABRT, as `wasmtime run` does).
pub const TRAP: u8 = 134;
/// The guest exceeded `--max-memory` or another of wharf's caps (table elements, instances,
/// live host resources) (128 + SIGKILL, as an OOM-killed container).
pub const MEMORY_LIMIT: u8 = 137;

/// Converts a guest's exit code to the process's (truncated to 0..=255 as POSIX does).
pub fn guest(code: i32) -> ExitCode {
    ExitCode::from(code as u8)
}

/// Prints `error: ...` on one line (the whole context chain) and picks the exit code.
pub fn report(error: anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(code_for(&error))
}

fn code_for(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(run) = cause.downcast_ref::<RunError>() {
            return match run {
                RunError::Timeout(_) => TIMEOUT,
                RunError::MemoryLimit(_) | RunError::Limit(_) => MEMORY_LIMIT,
                RunError::Trap(_) => TRAP,
                RunError::Sandbox(_) => BAD_INPUT,
                RunError::Host(_) | RunError::Busy => FAILURE,
            };
        }
        if cause.is::<LoadError>()
            || cause.is::<PolicyError>()
            || cause.is::<SandboxError>()
            || cause.is::<BadInput>()
            || cause.is::<wharf_http::ManifestError>()
        {
            return BAD_INPUT;
        }
        if cause.downcast_ref::<wharf_oci::Error>().is_some_and(wharf_oci::Error::is_bad_input) {
            return BAD_INPUT;
        }
    }
    FAILURE
}

/// A usage problem found after flag parsing (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);
