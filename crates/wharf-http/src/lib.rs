//! Wharf's HTTP server: `wasi:http/proxy` components behind routes, a fresh sandboxed instance
//! per request. Knows nothing about MCP or OCI; components arrive already loaded and linked.
//!
//! - [`manifest`]: the `wharf.toml` app manifest (components, their grants, routes).
//! - [`messaging`]: message triggers (`[[trigger.messaging]]`), a fresh instance per message.
//! - [`jetstream`]: at-least-once triggers on a JetStream stream (retries, dead letters).
//! - [`router`]: Spin-style routes (`/exact`, `/prefix/...`).
//! - [`server`]: the hyper server, concurrency bound, timeouts and graceful shutdown.
//! - [`listener`]: the accept loop (also used by `wharf mcp --http`): connection cap, header
//!   and idle timeout, accept back-off.
pub mod jetstream;
pub mod listener;
pub mod manifest;
pub mod messaging;
mod p3;
pub mod router;
pub mod server;

pub use listener::{Evictable, ListenerOptions, PeerAddr};
pub use manifest::{AppManifest, ComponentSpec, ManifestError, ReuseSpec};
pub use messaging::{DEFAULT_TRIGGER_CONCURRENCY, MessagingTrigger, MessagingTriggerSpec};
pub use p3::Reuse;
pub use router::{RouteError, Router};
pub use server::{Server, ServerOptions, Target};
