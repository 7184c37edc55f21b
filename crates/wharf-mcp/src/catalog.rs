//! Finds the functions a component exports and describes each as a tool: a stable name, the
//! WIT doc comment, input and output schemas, and the export to call.
use std::sync::Arc;

use serde_json::{Map, Value};
use wasmtime::Engine;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, ComponentExportIndex};

use crate::docs::PackageDocs;
use crate::schema::{MAX_COMPONENT_SCHEMA_NODES, MAX_TOOL_SCHEMA_NODES, fits, params_schema, result_schema};
use crate::value::Resources;

/// MCP's limit on tool names.
const MAX_NAME: usize = 128;

/// One exported function, offered as a tool.
#[derive(Clone)]
pub struct Function {
    /// The tool name, e.g. `mcp_types.types.echo`.
    pub name: String,
    /// The WIT doc comment, if the component carries one.
    pub description: Option<String>,
    /// The function's export, for calls.
    pub export: ComponentExportIndex,
    /// Parameter names (a method's first is `self`) and types.
    pub params: Vec<(String, Type)>,
    /// The result type, if the function returns something.
    pub result: Option<Type>,
    /// JSON Schema of the arguments object.
    pub input_schema: Arc<Map<String, Value>>,
    /// JSON Schema of `{"result": ...}`, if the function returns something.
    pub output_schema: Option<Arc<Map<String, Value>>>,
}

/// The tools of one component.
pub struct Catalog {
    /// Functions offered as tools, in export order.
    pub functions: Vec<Function>,
    /// Resource types the component exports: their handles live in a session.
    pub resources: Resources,
    /// Exports that are not tools, with the reason (logged at startup).
    pub skipped: Vec<String>,
    /// Schema nodes the component's later tools may still take ([`MAX_COMPONENT_SCHEMA_NODES`]).
    schema_budget: usize,
}

/// Lists the tools of `component`; tool names start with `prefix` (the component's name).
pub fn catalog(engine: &Engine, component: &Component, prefix: &str, docs: &PackageDocs) -> Catalog {
    let ty = component.component_type();
    let mut resources = Resources::default();
    // Exported resource types first: schemas and handles need their names.
    for (name, export) in ty.exports(engine) {
        match export.ty {
            ComponentItem::Resource(resource) => resources.insert(resource, name),
            ComponentItem::ComponentInstance(instance) if is_tool_interface(name) => {
                for (item, export) in instance.exports(engine) {
                    if let ComponentItem::Resource(resource) = export.ty {
                        resources.insert(resource, item);
                    }
                }
            }
            _ => {}
        }
    }

    let mut catalog =
        Catalog { functions: Vec::new(), resources, skipped: Vec::new(), schema_budget: MAX_COMPONENT_SCHEMA_NODES };
    for (name, export) in ty.exports(engine) {
        match export.ty {
            ComponentItem::ComponentFunc(func) => {
                let Some(index) = component.get_export_index(None, name) else { continue };
                let tool = qualified(prefix, &local_name(name));
                let description = docs.function(None, name);
                catalog.add(tool, description, index, &func);
            }
            ComponentItem::ComponentInstance(instance) if is_tool_interface(name) => {
                let Some(instance_index) = component.get_export_index(None, name) else { continue };
                let short = interface_name(name);
                for (func_name, export) in instance.exports(engine) {
                    let ComponentItem::ComponentFunc(func) = export.ty else { continue };
                    let Some(index) = component.get_export_index(Some(&instance_index), func_name) else { continue };
                    let tool = qualified(prefix, &format!("{short}.{}", local_name(func_name)));
                    let description = docs.function(Some(short), func_name);
                    catalog.add(tool, description, index, &func);
                }
            }
            ComponentItem::ComponentInstance(_) => catalog.skipped.push(format!("{name}: a WASI interface")),
            _ => {}
        }
    }
    catalog
}

impl Catalog {
    fn add(
        &mut self,
        name: String,
        description: Option<String>,
        export: ComponentExportIndex,
        func: &wasmtime::component::types::ComponentFunc,
    ) {
        // `async func` exports (WASI 0.3 guests) are tools like any other; `toolbox::invoke`
        // drives them on the store's event loop. Stream and future parameters or results have
        // no JSON form and are skipped by the schema check below.
        let name = tool_name(&name);
        let params: Vec<(String, Type)> = func.params().map(|(n, ty)| (n.to_string(), ty)).collect();
        if let Some(kind) = params.iter().find_map(|(_, ty)| foreign_resource(ty, &self.resources)) {
            self.skipped.push(format!("{name}: takes a `{kind}` resource the component does not export"));
            return;
        }
        let result = func.results().next();
        // Schemas inline every type: count what they would write out before writing it.
        let allowed = MAX_TOOL_SCHEMA_NODES.min(self.schema_budget);
        let mut budget = allowed;
        let types = params.iter().map(|(_, ty)| ty).chain(result.as_ref());
        if !types.into_iter().all(|ty| fits(ty, &mut budget)) {
            let limit = if self.schema_budget < MAX_TOOL_SCHEMA_NODES {
                format!("the component's tools already take {MAX_COMPONENT_SCHEMA_NODES} schema nodes")
            } else {
                format!("its types written out as JSON Schema exceed {MAX_TOOL_SCHEMA_NODES} nodes")
            };
            self.skipped.push(format!("{name}: {limit}"));
            return;
        }
        self.schema_budget -= allowed - budget;
        let schemas = params_schema(params.iter().map(|(n, ty)| (n.as_str(), ty)), &self.resources).and_then(|input| {
            let output = result.as_ref().map(|ty| result_schema(ty, &self.resources)).transpose()?;
            Ok((input, output))
        });
        match schemas {
            Ok((input, output)) => self.functions.push(Function {
                name,
                description,
                export,
                params,
                result,
                input_schema: Arc::new(input),
                output_schema: output.map(Arc::new),
            }),
            Err(unsupported) => self.skipped.push(format!("{name}: {unsupported}")),
        }
    }
}

/// Interfaces that are tools: everything but WASI's own exports (`wasi:cli/run`,
/// `wasi:http/incoming-handler`), which need host resources a model cannot hand over.
fn is_tool_interface(export: &str) -> bool {
    !export.starts_with("wasi:")
}

/// `wharf:guests/types@0.1.0` -> `types`; a kebab name stays as it is.
fn interface_name(export: &str) -> &str {
    let name = export.rsplit_once('/').map_or(export, |(_, name)| name);
    name.split_once('@').map_or(name, |(name, _)| name)
}

/// `[constructor]counter` -> `counter.new`, `[method]counter.get` -> `counter.get`,
/// `[static]counter.merge` -> `counter.merge`, `greet` -> `greet`.
fn local_name(func: &str) -> String {
    if let Some(resource) = func.strip_prefix("[constructor]") {
        format!("{resource}.new")
    } else if let Some(rest) = func.strip_prefix("[method]").or_else(|| func.strip_prefix("[static]")) {
        rest.to_string()
    } else {
        func.to_string()
    }
}

/// `prefix.rest`, or `rest` alone for a component served without a prefix (`=COMPONENT`).
fn qualified(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() { rest.to_string() } else { format!("{prefix}.{rest}") }
}

/// How tool names are spelled (`--tool-names`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ToolNames {
    /// `component.interface.function`, as exported (MCP's alphabet, up to 128 characters).
    #[default]
    Dotted,
    /// `component_interface_function`: `.` and `-` become `_`, at most 64 characters, for
    /// APIs that accept only `[a-zA-Z0-9_-]{1,64}`.
    Underscore,
}

impl ToolNames {
    /// `name` (a dotted tool name) spelled this way; unique names stay unique unless they
    /// differ only in `.` against `-` (the toolbox numbers such a clash).
    pub fn apply(self, name: &str) -> String {
        match self {
            ToolNames::Dotted => name.to_string(),
            ToolNames::Underscore => {
                let clean: String = name.chars().map(|c| if c == '.' || c == '-' { '_' } else { c }).collect();
                cut(clean, name, MAX_UNDERSCORE_NAME)
            }
        }
    }
}

/// Longest name in [`ToolNames::Underscore`].
const MAX_UNDERSCORE_NAME: usize = 64;

/// `clean` cut to `max` characters with a hash of `original`, so it stays unique and stable.
fn cut(clean: String, original: &str, max: usize) -> String {
    if clean.len() <= max {
        return clean;
    }
    // FNV-1a: stable across runs and platforms.
    let hash = original.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("{}-{hash:08x}", &clean[..max - 9])
}

/// Keeps MCP's alphabet (`[A-Za-z0-9_.-]`, 1-128 characters): other characters become `_`;
/// a longer name is cut and given a hash of the whole, so it stays unique and stable.
pub(crate) fn tool_name(name: &str) -> String {
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).collect();
    cut(clean, name, MAX_NAME)
}

/// The name of a resource in `ty`'s parameters that the component does not export: no
/// session can hold a handle to it.
fn foreign_resource<'a>(ty: &Type, resources: &'a Resources) -> Option<&'a str> {
    match ty {
        Type::Own(r) | Type::Borrow(r) if !resources.contains(r) => Some("host"),
        Type::List(l) => foreign_resource(&l.ty(), resources),
        Type::FixedLengthList(l) => foreign_resource(&l.ty(), resources),
        Type::Map(m) => foreign_resource(&m.key(), resources).or_else(|| foreign_resource(&m.value(), resources)),
        Type::Tuple(t) => t.types().find_map(|ty| foreign_resource(&ty, resources)),
        Type::Record(r) => r.fields().find_map(|f| foreign_resource(&f.ty, resources)),
        Type::Variant(v) => v.cases().find_map(|c| c.ty.and_then(|ty| foreign_resource(&ty, resources))),
        Type::Option(o) => foreign_resource(&o.ty(), resources),
        Type::Result(r) => r
            .ok()
            .and_then(|ty| foreign_resource(&ty, resources))
            .or_else(|| r.err().and_then(|ty| foreign_resource(&ty, resources))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_mcp_rules() {
        assert_eq!(interface_name("wharf:guests/types@0.1.0"), "types");
        assert_eq!(interface_name("wharf:guests/types"), "types");
        assert_eq!(interface_name("inline-api"), "inline-api");
        assert_eq!(local_name("[constructor]counter"), "counter.new");
        assert_eq!(local_name("[method]counter.get"), "counter.get");
        assert_eq!(local_name("[static]counter.merge"), "counter.merge");
        assert_eq!(tool_name("my app.types.echo"), "my_app.types.echo");
        assert_eq!(ToolNames::Underscore.apply("mcp_docs.notes.word-count"), "mcp_docs_notes_word_count");
        assert_eq!(qualified("", "test-simple-text"), "test-simple-text");
        let long = ToolNames::Underscore.apply(&"a.".repeat(50));
        assert!(long.len() <= 64 && long.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)), "{long}");
        let long = "x".repeat(300);
        let cut = tool_name(&long);
        assert_eq!(cut.len(), MAX_NAME);
        assert_eq!(cut, tool_name(&long), "stable");
        assert_ne!(cut, tool_name(&format!("{long}y")), "distinct names stay distinct");
    }
}
