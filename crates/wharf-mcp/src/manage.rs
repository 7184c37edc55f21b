//! `--allow-load`: the `wharf.load`, `wharf.unload` and `wharf.list` tools, which change the
//! tool list while serving. Loaded components get the server's policy; no tool grants anything.
//! Where a component may come from is the [`Loader`]'s business (the binary checks the
//! `--allow-load` places); here: a loaded component belongs to the session that loaded it (no
//! other session sees, calls or unloads it), components given on the command line are never
//! unloaded, and at most [`MAX_CLIENT_LOADS`] are loaded across all sessions.
use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, Tool};
use serde_json::{Map, Value, json};

use crate::catalog::ToolNames;
use crate::schema::DIALECT;
use crate::server::Loader;
use crate::toolbox::{Session, Unload};

const LOAD: &str = "wharf.load";
const UNLOAD: &str = "wharf.unload";
const LIST: &str = "wharf.list";

/// The management tools' names (dotted): no component's tool may take them, in either spelling
/// (a component's clashing tool is numbered, see `Tools::with`).
pub(crate) const NAMES: [&str; 3] = [LOAD, UNLOAD, LIST];

/// Whether `name` is a management tool's name in some spelling.
pub(crate) fn reserved(name: &str) -> bool {
    NAMES.iter().any(|m| *m == name || ToolNames::Underscore.apply(m) == name)
}

/// Components loaded by clients at most, at once.
pub const MAX_CLIENT_LOADS: usize = 64;

/// The load cap shared by all sessions: a permit per loaded component, returned when it is
/// unloaded or its session ends.
pub(crate) fn load_cap() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(MAX_CLIENT_LOADS))
}

/// A management call's result, and whether the tool list changed.
pub(crate) struct Managed {
    pub(crate) result: CallToolResult,
    pub(crate) changed: bool,
}

/// The management tools' definitions.
pub(crate) fn tools(names: ToolNames) -> Vec<Tool> {
    let string_arg = |name: &str, what: &str| {
        object(json!({
            "$schema": DIALECT, "type": "object",
            "properties": {name: {"type": "string", "description": what}},
            "required": [name], "additionalProperties": false,
        }))
    };
    let components = json!({
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "tools": {"type": "array", "items": {"type": "string"}}},
            "required": ["name", "tools"], "additionalProperties": false,
        },
    });
    let output = |schema: Value| {
        object(json!({
            "$schema": DIALECT, "type": "object", "properties": {"result": schema},
            "required": ["result"], "additionalProperties": false,
        }))
    };
    vec![
        Tool::new(
            names.apply(LOAD),
            "Loads a WebAssembly component (a .wasm path or an OCI reference) and offers its exported \
             functions as tools. It runs under this server's policy: loading grants nothing.",
            string_arg("source", "a .wasm file, oci:DIR[:NAME] or a registry reference"),
        )
        .with_raw_output_schema(output(components["items"].clone())),
        Tool::new(
            names.apply(UNLOAD),
            "Unloads a component loaded before, with its tools.",
            string_arg("component", "the component's name (the prefix of its tool names)"),
        )
        .with_raw_output_schema(output(json!({"type": "boolean"}))),
        Tool::new(
            names.apply(LIST),
            "Lists the loaded components and their tools.",
            object(json!({"$schema": DIALECT, "type": "object", "properties": {}, "additionalProperties": false})),
        )
        .with_raw_output_schema(output(components)),
    ]
}

/// Handles `name` if it is a management tool, for `session`; `loads` is the load cap.
pub(crate) async fn call(
    session: &Session,
    loader: &dyn Loader,
    loads: &Arc<tokio::sync::Semaphore>,
    names: ToolNames,
    name: &str,
    args: &Map<String, Value>,
) -> Option<Managed> {
    let refuse =
        |message: String| Managed { result: CallToolResult::error(vec![ContentBlock::text(message)]), changed: false };
    let string = |key: &str| match (args.get(key), args.len()) {
        (Some(Value::String(s)), 1) => Ok(s.clone()),
        _ => Err(Box::new(Managed {
            result: CallToolResult::error(vec![ContentBlock::text(format!(
                "invalid arguments: {name} takes one argument, the string `{key}`"
            ))]),
            changed: false,
        })),
    };
    // The name as `tools` spelled it, back to the dotted one.
    let name = NAMES.into_iter().find(|m| names.apply(m) == name).unwrap_or_default();
    Some(match name {
        LOAD => {
            let source = match string("source") {
                Ok(source) => source,
                Err(e) => return Some(*e),
            };
            let Ok(permit) = loads.clone().try_acquire_owned() else {
                return Some(refuse(format!("cannot load {source}: {MAX_CLIENT_LOADS} components are loaded already")));
            };
            match loader.load(source.clone()).await {
                Ok(component) => {
                    let name = session.load(component, permit);
                    tracing::info!(component = %name, %source, "loaded");
                    let snapshot = session.snapshot();
                    let entry = snapshot.components().find(|c| c.name == name).map(describe);
                    Managed { result: CallToolResult::structured(json!({ "result": entry })), changed: true }
                }
                Err(e) => Managed {
                    result: CallToolResult::error(vec![ContentBlock::text(format!("cannot load {source}: {e:#}"))]),
                    changed: false,
                },
            }
        }
        UNLOAD => {
            let component = match string("component") {
                Ok(component) => component,
                Err(e) => return Some(*e),
            };
            match session.unload(&component) {
                Ok(()) => {
                    tracing::info!(%component, "unloaded");
                    Managed { result: CallToolResult::structured(json!({ "result": true })), changed: true }
                }
                Err(Unload::CommandLine) => {
                    refuse(format!("`{component}` was given on the command line and cannot be unloaded"))
                }
                // Another session's components are invisible here: the same answer as for none.
                Err(Unload::NotLoaded) => refuse(format!("no component named `{component}` is loaded")),
            }
        }
        LIST => {
            let snapshot = session.snapshot();
            let list: Vec<Value> = snapshot.components().map(describe).collect();
            Managed { result: CallToolResult::structured(json!({ "result": list })), changed: false }
        }
        _ => return None,
    })
}

fn describe(component: &crate::ToolComponent) -> Value {
    let tools: Vec<&str> = component.catalog.functions.iter().map(|f| f.name.as_str()).collect();
    json!({"name": component.name, "tools": tools})
}

fn object(value: Value) -> Arc<Map<String, Value>> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("built from an object literal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_names_are_reserved_in_both_spellings() {
        for name in ["wharf.load", "wharf_load", "wharf.unload", "wharf_unload", "wharf.list", "wharf_list"] {
            assert!(reserved(name), "{name}");
        }
        for name in ["wharf.loader", "wharf", "load", "wharf-load"] {
            assert!(!reserved(name), "{name}");
        }
        let names: Vec<_> = tools(ToolNames::Underscore).into_iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names, ["wharf_load", "wharf_unload", "wharf_list"]);
    }
}
