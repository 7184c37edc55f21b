//! Paths of the guest components built from `crates/test-programs` for wasm32-wasip2.
include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
