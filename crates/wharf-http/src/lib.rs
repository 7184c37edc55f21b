//! Wharf's HTTP server: `wasi:http/proxy` components behind routes, a fresh sandboxed instance
//! per request. Knows nothing about MCP or OCI; components arrive already loaded and linked.
//!
//! - [`manifest`]: the `wharf.toml` app manifest (components, their grants, routes).
//! - [`router`]: Spin-style routes (`/exact`, `/prefix/...`).
//! - [`server`]: the hyper server, concurrency bound, timeouts and graceful shutdown.
pub mod manifest;
mod p3;
pub mod router;
pub mod server;

pub use manifest::{AppManifest, ComponentSpec, ManifestError, ReuseSpec};
pub use p3::Reuse;
pub use router::{RouteError, Router};
pub use server::{Server, ServerOptions, Target};
