//! Checks shared by the `json_value` targets: what any JSON read as a WIT type must satisfy.
use serde_json::Value;
use wasmtime::component::ResourceAny;
use wasmtime::component::types::Type;
use wharf_mcp::value::{ArgError, Handles, Resources, from_json, to_json};

/// For types without resources: no handle is ever minted or found.
pub struct NoHandles;

impl Handles for NoHandles {
    fn mint(&mut self, _: &str, _: ResourceAny) -> String {
        unreachable!("the fuzzed types have no resources")
    }
    fn take(&mut self, _: &str, handle: &str, _: bool) -> Result<ResourceAny, String> {
        Err(format!("unknown handle `{handle}`"))
    }
}

/// Reads `json` as an argument `arg` of type `ty`: a refusal must name a path that starts at
/// the argument; an accepted value must be written as JSON that reads back and writes out the
/// same again (the encoding is canonical and stable).
pub fn check_json(ty: &Type, json: &Value) {
    let resources = Resources::default();
    match from_json(ty, json, "arg", &resources, &mut NoHandles) {
        Err(ArgError { path, message }) => {
            assert!(path.starts_with("arg"), "error path `{path}` does not start at the argument");
            assert!(!message.is_empty(), "empty message at `{path}` for {ty:?}");
        }
        Ok(val) => {
            let written = to_json(ty, val, &resources, &mut NoHandles);
            let reread = from_json(ty, &written, "arg", &resources, &mut NoHandles)
                .unwrap_or_else(|e| panic!("{written} (written for {json}) is refused: {e}"));
            let rewritten = to_json(ty, reread, &resources, &mut NoHandles);
            assert_eq!(rewritten, written, "not canonical: {json} -> {written} -> {rewritten}");
        }
    }
}
