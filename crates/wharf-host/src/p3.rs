//! WASI 0.3 (p3) beside WASI 0.2: which generation a component's world is, and running a
//! `wasi:cli/run@0.3.x` command.
//!
//! Both generations share one [`HostState`]: the same `WasiCtx` (env, preopens, socket check),
//! the same `wasi:http` hooks (outbound policy), limits and deadline. So a grant cannot reach
//! one generation and miss the other: there is only one place it is put.
use wasmtime::Store;
use wasmtime::component::InstancePre;
use wasmtime_wasi::p2::bindings::CommandPre as CommandPre2;
use wasmtime_wasi::p3::bindings::CommandPre as CommandPre3;

use crate::sandbox::HostState;

/// Which WASI generation a component was built for, judged by the world it exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// WASI 0.2 (`wasi:cli/run@0.2.x`, `wasi:http/incoming-handler@0.2.x`).
    P2,
    /// WASI 0.3 (`wasi:cli/run@0.3.x`, `wasi:http/handler@0.3.x`): async exports, streams.
    P3,
}

impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Generation::P2 => "WASI 0.2",
            Generation::P3 => "WASI 0.3",
        })
    }
}

/// A component linked as a command of either generation (see [`crate::Host::prepare_command`]).
pub enum Command {
    /// Exports `wasi:cli/run@0.2.x`.
    P2(CommandPre2<HostState>),
    /// Exports `wasi:cli/run@0.3.x` (an `async func`).
    P3(CommandPre3<HostState>),
}

impl Command {
    /// Picks the generation from what `pre` exports: 0.3 first, as `wasmtime run` does (a
    /// component exporting both is run as 0.3). `Err` says what each generation was missing.
    pub(crate) fn new(pre: InstancePre<HostState>) -> Result<Self, String> {
        let p3 = match CommandPre3::new(pre.clone()) {
            Ok(pre) => return Ok(Command::P3(pre)),
            Err(e) => crate::host::one_line(&e),
        };
        CommandPre2::new(pre).map(Command::P2).map_err(|p2| format!("{} (0.3: {p3})", crate::host::one_line(&p2)))
    }

    /// The WASI generation of this command.
    pub fn generation(&self) -> Generation {
        match self {
            Command::P2(_) => Generation::P2,
            Command::P3(_) => Generation::P3,
        }
    }

    /// The compiled component (its engine is the one to make stores on).
    pub fn component(&self) -> &wasmtime::component::Component {
        match self {
            Command::P2(pre) => pre.instance_pre().component(),
            Command::P3(pre) => pre.instance_pre().component(),
        }
    }

    /// Instantiates the command in `store` and calls its `run` to completion. 0.3's `run` is
    /// an async export driven by the store's event loop (`run_concurrent`); it returns when
    /// `run` returns, even if the guest left tasks behind (as `wasmtime run` does).
    pub(crate) async fn run(&self, store: &mut Store<HostState>) -> wasmtime::Result<Result<(), ()>> {
        match self {
            Command::P2(pre) => {
                let command = pre.instantiate_async(&mut *store).await?;
                command.wasi_cli_run().call_run(&mut *store).await
            }
            Command::P3(pre) => {
                let command = pre.instantiate_async(&mut *store).await?;
                store.run_concurrent(async |accessor| command.wasi_cli_run().call_run(accessor).await).await?
            }
        }
    }
}
