//! Wharf's wasmtime host: the [`WharfEngine`]s of a process (without and with component-model
//! concurrency, [`EngineKind`]), the [`CompileCache`], the
//! deny-by-default [`Policy`] and the [`Sandbox`] that applies it, and the [`Host`] that loads,
//! links and runs components.
//!
//! This crate knows nothing about OCI transport, HTTP serving or MCP, and never reads flags,
//! environment variables or the terminal: the binary hands it everything.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use wharf_host::{Backends, EngineOptions, Host, Policy, Sandbox, Stdio, WharfEngine};
//!
//! let host = Host::new(WharfEngine::new(&EngineOptions::default())?, None)?;
//! let (component, _) = host.load_file("hello.wasm".as_ref())?;
//! let command = host.prepare_command("hello.wasm", &component)?;
//! let backends = Backends::defaults("/var/lib/wharf".as_ref())?;
//! let sandbox = Sandbox::new(&Policy::default(), &backends, |_| None)?;
//! let code = host.run_command(&command, &sandbox, &["hello".into()], Stdio::Inherit).await?;
//! # Ok(()) }
//! ```
mod abi;
mod cache;
mod call;
pub mod capabilities;
pub mod dns;
mod engine;
mod expansion;
mod guest_links;
mod guest_log;
pub mod guest_net;
mod host;
mod outbound;
mod p2_lookup;
mod p3;
mod p3_lookup;
pub mod policy;
pub mod provides;
mod sandbox;

pub use abi::{data_segment_bytes, engine_kind};
pub use cache::{CacheStatus, CompileCache};
pub use call::RunError;
pub use capabilities::Backends;
pub use engine::{COPY_DATA_UP_TO, EPOCH_TICK, EngineKind, EngineOptions, PoolOptions, WharfEngine};
pub use expansion::Expansion;
pub use host::{Host, LoadError};
pub use p3::{Command, Generation};
pub use policy::Policy;
pub use sandbox::{HostState, Sandbox, SandboxError, Stdio};
