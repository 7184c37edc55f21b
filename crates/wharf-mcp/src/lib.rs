//! `wharf mcp`: every function a component exports becomes an MCP tool, called in the
//! component's sandbox. WIT types are published as JSON Schema (2020-12) and arguments and
//! results follow that schema exactly (docs/mcp.md); resources are handles that live in the
//! MCP session that created them, or, for stateless clients (protocol 2026-07-28), in
//! server-held instances the handles address.
//!
//! This crate knows nothing about HTTP routing or OCI, and never reads flags or the
//! environment: the binary hands it loaded components and their sandboxes.
mod catalog;
mod docs;
pub mod gate;
mod held;
mod jsonrpc;
mod manage;
mod reply;
#[cfg(test)]
mod roundtrip_tests;
pub mod schema;
mod server;
pub mod talk;
mod toolbox;
pub mod value;

pub use catalog::{Catalog, Function, ToolNames, catalog};
pub use docs::PackageDocs;
pub use gate::HttpLimits;
pub use held::{Client, MAX_HELD_PER_CLIENT};
pub use server::{Loader, MCP_PATH, McpHandler, call_result, serve_http, serve_stdio};
pub use toolbox::{Caller, Failure, Outcome, Session, ToolComponent, Toolbox, Tools, Unload};
