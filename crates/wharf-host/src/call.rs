//! One way to run a guest call, whichever subcommand makes it: `run` (a command's `run`),
//! `serve` (a request's handler, fresh or pooled), message triggers (a message's handler) and
//! `mcp` (a tool's function). [`Sandbox::store`] builds the store (WASI context, limits, epoch
//! deadline); [`Sandbox::call`] runs one call on it within the policy's timeout and turns every
//! failure into a [`RunError`] with a one-line message ([`Sandbox::failure`]), which each
//! caller only maps to its own outcome (an exit code, an HTTP status, a tool error, a log line).
use std::time::Duration;

use wasmtime::component::ResourceTableError;
use wasmtime::{Store, Trap};

use crate::host::one_line;
use crate::policy::format_size;
use crate::sandbox::{
    HostState, MAX_INSTANCES, MAX_MEMORIES, MAX_RESOURCES, MAX_TABLE_ELEMENTS, MAX_TABLES, Sandbox, SandboxError,
};

/// Why a guest call did not return (or a command did not finish with an exit code of its own).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The policy could not be put in place.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The guest ran past its timeout and was stopped.
    #[error("guest timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The guest trapped after being refused memory beyond its limit.
    #[error("guest exceeded its memory limit of {}", format_size(*.0))]
    MemoryLimit(u64),
    /// The guest hit one of wharf's fixed caps: live host resources, table elements, instances,
    /// tables or memories (`what` names the cap, e.g. `1000 tables`).
    #[error("guest exceeded its limit of {0}")]
    Limit(String),
    /// The guest trapped (unreachable, out-of-bounds access, stack overflow, ...).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// Every slot of the engine's instance pool is taken (`serve`): nothing is wrong with the
    /// guest, and the same call may succeed later.
    #[error("instance pool exhausted")]
    Busy,
    /// Instantiation or a host call failed.
    #[error("{0}")]
    Host(String),
}

impl Sandbox {
    /// Runs one call into a guest on `store` (from [`Sandbox::store`], fresh or kept for several
    /// calls): `work` gets the store with a full timeout from now. Guest code past the deadline
    /// is interrupted by the epoch; a guest blocked in a host call is dropped by the wall clock
    /// (so is `work`, with whatever it borrowed). A failure is classified by
    /// [`Sandbox::failure`]; an error `work` recovers from itself (a command's `exit(n)`) is
    /// its own to turn into a value.
    pub async fn call<R>(
        &self,
        store: &mut Store<HostState>,
        work: impl AsyncFnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, RunError> {
        self.restart_deadline(store);
        let outcome = match self.timeout() {
            Some(timeout) => match tokio::time::timeout(timeout, work(&mut *store)).await {
                Ok(outcome) => outcome,
                Err(_) => return Err(RunError::Timeout(timeout)),
            },
            None => work(&mut *store).await,
        };
        outcome.map_err(|e| self.failure(&e, store.data()))
    }

    /// What a failed instantiation or call on a store in `state` means: the instance pool being
    /// full, a timeout (the epoch's interrupt), the memory limit, another of wharf's caps, a
    /// trap, or else a host error (its cause chain on one line, without the wasm backtrace).
    /// For a call made without [`Sandbox::call`] (the pooled HTTP handler is timed by
    /// wasmtime-wasi-http's own worker).
    pub fn failure(&self, error: &wasmtime::Error, state: &HostState) -> RunError {
        match (error.downcast_ref::<Trap>(), self.timeout()) {
            _ if error.is::<wasmtime::PoolConcurrencyLimitError>() => RunError::Busy,
            (Some(Trap::Interrupt), Some(timeout)) => RunError::Timeout(timeout),
            _ if state.memory_denied() => RunError::MemoryLimit(self.max_memory()),
            _ if let Some(desired) = state.table_denied() => {
                RunError::Limit(format!("{MAX_TABLE_ELEMENTS} table elements (it asked for {desired})"))
            }
            _ if let Some(what) = limit_hit(error) => RunError::Limit(what),
            (Some(trap), _) => RunError::Trap(trap.to_string()),
            (None, _) => RunError::Host(one_line(error)),
        }
    }
}

/// Which of the store's count caps `error` reports, if any: a full resource table, or
/// wasmtime's "resource limit exceeded: instance count too high at 1001" (and the table and
/// memory forms) from instantiation.
fn limit_hit(error: &wasmtime::Error) -> Option<String> {
    if error.downcast_ref::<ResourceTableError>().is_some_and(|e| matches!(e, ResourceTableError::Full)) {
        return Some(format!(
            "{MAX_RESOURCES} live host resources (handles to streams, pollables, HTTP fields and bodies, ...)"
        ));
    }
    error.chain().find_map(|cause| {
        let text = cause.to_string();
        let what = text.strip_prefix("resource limit exceeded: ")?.split(" count too high").next()?;
        Some(match what {
            "instance" => format!("{MAX_INSTANCES} core instances"),
            "table" => format!("{MAX_TABLES} tables"),
            "memory" => format!("{MAX_MEMORIES} memories"),
            other => format!("its {other} count"),
        })
    })
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
