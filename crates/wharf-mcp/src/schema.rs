//! WIT types as JSON Schema (2020-12). The encoding is the one `value.rs` reads and writes;
//! docs/mcp.md shows it with examples.
use serde_json::{Map, Value, json};
use wasmtime::component::types::Type;

use crate::value::{F32_JSON_MAX, Resources, is_nullable};

/// The `$schema` every tool's input and output schema names.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// A type that has no JSON encoding (async streams and futures, error contexts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} values cannot be passed as JSON")]
pub struct Unsupported(pub &'static str);

/// The most schema nodes (types written out) one tool's parameters and result may take. A WIT
/// type is written once in the binary but inline in a schema, so a record of two records of
/// two records ... doubles per level: 18 levels are 2^18 leaves from a few hundred bytes of
/// WIT (wasmparser lets a type reach a million). Past this the function is not a tool.
pub const MAX_TOOL_SCHEMA_NODES: usize = 10_000;

/// The most schema nodes all the tools of one component may take; later functions past it are
/// not tools.
pub const MAX_COMPONENT_SCHEMA_NODES: usize = 100_000;

/// Takes the number of schema nodes `ty` writes out from `budget`; `false` (and `budget` 0) if
/// it does not fit. Stops as soon as the budget is spent, so its cost is bounded by it.
pub fn fits(ty: &Type, budget: &mut usize) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    match ty {
        Type::List(l) => fits(&l.ty(), budget),
        Type::FixedLengthList(l) => fits(&l.ty(), budget),
        Type::Map(m) => fits(&m.key(), budget) && fits(&m.value(), budget),
        Type::Tuple(t) => t.types().all(|ty| fits(&ty, budget)),
        Type::Record(r) => r.fields().all(|f| fits(&f.ty, budget)),
        Type::Variant(v) => v.cases().all(|c| c.ty.as_ref().is_none_or(|ty| fits(ty, budget))),
        Type::Option(o) => fits(&o.ty(), budget),
        Type::Result(r) => r.ok().is_none_or(|ty| fits(&ty, budget)) && r.err().is_none_or(|ty| fits(&ty, budget)),
        _ => true,
    }
}

/// The schema of values of `ty`.
pub fn schema(ty: &Type, resources: &Resources) -> Result<Value, Unsupported> {
    Ok(match ty {
        Type::Bool => json!({"type": "boolean"}),
        Type::U8 => integer(u8::MIN, u8::MAX),
        Type::U16 => integer(u16::MIN, u16::MAX),
        Type::U32 => integer(u32::MIN, u32::MAX),
        Type::U64 => integer(u64::MIN, u64::MAX),
        Type::S8 => integer(i8::MIN, i8::MAX),
        Type::S16 => integer(i16::MIN, i16::MAX),
        Type::S32 => integer(i32::MIN, i32::MAX),
        Type::S64 => integer(i64::MIN, i64::MAX),
        Type::Float32 => float(Some(F32_JSON_MAX)),
        Type::Float64 => float(None),
        Type::Char => json!({"type": "string", "minLength": 1, "maxLength": 1}),
        Type::String => json!({"type": "string"}),
        Type::List(list) => json!({"type": "array", "items": schema(&list.ty(), resources)?}),
        Type::FixedLengthList(list) => {
            let len = list.len();
            json!({"type": "array", "items": schema(&list.ty(), resources)?, "minItems": len, "maxItems": len})
        }
        Type::Map(map) => {
            let pair = tuple([schema(&map.key(), resources)?, schema(&map.value(), resources)?]);
            json!({"type": "array", "items": pair})
        }
        Type::Tuple(t) => tuple(t.types().map(|ty| schema(&ty, resources)).collect::<Result<Vec<_>, _>>()?),
        Type::Record(record) => {
            let mut properties = Map::new();
            for field in record.fields() {
                properties.insert(field.name.to_string(), schema(&field.ty, resources)?);
            }
            object(properties)
        }
        Type::Variant(variant) => {
            let mut cases = Vec::new();
            for case in variant.cases() {
                cases.push(match &case.ty {
                    None => json!({"const": case.name}),
                    Some(ty) => one_key(case.name, schema(ty, resources)?),
                });
            }
            json!({"oneOf": cases})
        }
        Type::Enum(e) => json!({"type": "string", "enum": e.names().collect::<Vec<_>>()}),
        Type::Flags(flags) => json!({
            "type": "array",
            "items": {"type": "string", "enum": flags.names().collect::<Vec<_>>()},
            "uniqueItems": true,
        }),
        Type::Option(option) => {
            let inner = option.ty();
            let some = schema(&inner, resources)?;
            let some = if is_nullable(&inner) { one_key("some", some) } else { some };
            json!({"oneOf": [{"type": "null"}, some]})
        }
        Type::Result(result) => {
            let payload = |ty: Option<Type>| match ty {
                Some(ty) => schema(&ty, resources),
                None => Ok(json!({"type": "null"})),
            };
            json!({"oneOf": [one_key("ok", payload(result.ok())?), one_key("err", payload(result.err())?)]})
        }
        Type::Own(resource) | Type::Borrow(resource) => {
            let name = resources.name(resource);
            json!({
                "type": "string",
                "pattern": format!("^{}-[0-9a-f]{{32}}$", regex_escape(name)),
                "description": format!("a `{name}` handle from this session"),
            })
        }
        Type::Future(_) => return Err(Unsupported("future")),
        Type::Stream(_) => return Err(Unsupported("stream")),
        Type::ErrorContext => return Err(Unsupported("error-context")),
    })
}

/// The input schema of a function: one required property per parameter.
pub fn params_schema<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a Type)>,
    resources: &Resources,
) -> Result<Map<String, Value>, Unsupported> {
    let mut properties = Map::new();
    for (name, ty) in params {
        properties.insert(name.to_string(), schema(ty, resources)?);
    }
    Ok(with_dialect(object(properties)))
}

/// The output schema of a function returning `ty`: `{"result": ...}` (MCP wants an object).
pub fn result_schema(ty: &Type, resources: &Resources) -> Result<Map<String, Value>, Unsupported> {
    let mut properties = Map::new();
    properties.insert("result".into(), schema(ty, resources)?);
    Ok(with_dialect(object(properties)))
}

fn with_dialect(schema: Value) -> Map<String, Value> {
    let Value::Object(object) = schema else { unreachable!("object() builds an object") };
    let mut with = Map::new();
    with.insert("$schema".into(), DIALECT.into());
    with.extend(object);
    with
}

fn integer<T: Into<Value>>(min: T, max: T) -> Value {
    json!({"type": "integer", "minimum": min.into(), "maximum": max.into()})
}

fn float(bound: Option<f64>) -> Value {
    let mut number = json!({"type": "number"});
    if let Some(max) = bound {
        number["minimum"] = json!(-max);
        number["maximum"] = json!(max);
    }
    json!({"anyOf": [number, {"enum": ["NaN", "Infinity", "-Infinity"]}]})
}

/// `prefixItems` (2020-12) with the length fixed by `minItems`/`maxItems`, and no `items`:
/// draft-07 validators (the TypeScript SDK's Ajv, MCP Inspector) ignore `$schema`, and to them
/// `items: false` means "no items at all", so every tuple would be refused. Without it both
/// dialects agree on the length; 2020-12 also checks each member.
fn tuple(items: impl Into<Vec<Value>>) -> Value {
    let items = items.into();
    let len = items.len();
    json!({"type": "array", "prefixItems": items, "minItems": len, "maxItems": len})
}

fn object(properties: Map<String, Value>) -> Value {
    let required: Vec<&String> = properties.keys().collect();
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn one_key(key: &str, schema: Value) -> Value {
    json!({"type": "object", "properties": {key: schema}, "required": [key], "additionalProperties": false})
}

/// Resource names are WIT identifiers (`[a-z0-9-]`), but escape anyway: a pattern must match
/// the name literally. (`-` stays: outside a class it is literal, and `\-` is an error in
/// ECMA-262's unicode mode.)
fn regex_escape(name: &str) -> String {
    let special = |c: char| "\\^$.|?*+()[]{}/".contains(c);
    name.chars().flat_map(|c| if special(c) { vec!['\\', c] } else { vec![c] }).collect()
}
