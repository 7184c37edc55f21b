#![no_main]
//! MCP tool arguments: any JSON, read as a value of each WIT type the `mcp_types` guest uses
//! (every parameter type and every type nested in one), gives a value or an `ArgError` that
//! names its path, never a panic; and an accepted value's JSON is canonical: it reads back and
//! writes out the same again.
//!
//! The guest comes from `crates/test-programs` (`run.sh` builds it); `WHARF_FUZZ_MCP_TYPES`
//! points elsewhere.
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wasmtime::component::Component;
use wasmtime::component::types::Type;
use wharf_mcp::{PackageDocs, catalog};

#[path = "common/json_check.rs"]
mod json_check;

const DEFAULT_GUEST: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/test-programs/target/wasm32-wasip2/release/mcp_types.wasm");

/// Every parameter type of every tool, then every type nested in those, depth first.
static TYPES: LazyLock<Vec<Type>> = LazyLock::new(|| {
    let path = std::env::var("WHARF_FUZZ_MCP_TYPES").unwrap_or_else(|_| DEFAULT_GUEST.to_string());
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let component = Component::from_file(&engine, &path)
        .unwrap_or_else(|e| panic!("{path}: {e:#} (build crates/test-programs, see fuzz/README.md)"));
    let functions = catalog(&engine, &component, "mcp_types", &PackageDocs::default()).functions;
    let mut types = Vec::new();
    for (_, ty) in functions.iter().flat_map(|f| &f.params) {
        collect(ty, &mut types);
    }
    assert!(types.len() > 30, "expected the nested types of echo's record, got {}", types.len());
    types
});

fn collect(ty: &Type, out: &mut Vec<Type>) {
    out.push(ty.clone());
    match ty {
        Type::List(list) => collect(&list.ty(), out),
        Type::Tuple(tuple) => tuple.types().for_each(|t| collect(&t, out)),
        Type::Record(record) => record.fields().for_each(|f| collect(&f.ty, out)),
        Type::Variant(variant) => variant.cases().filter_map(|c| c.ty).for_each(|t| collect(&t, out)),
        Type::Option(option) => collect(&option.ty(), out),
        Type::Result(result) => result.ok().into_iter().chain(result.err()).for_each(|t| collect(&t, out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<Value>(data) else { return };
    for ty in TYPES.iter() {
        json_check::check_json(ty, &json);
    }
});
