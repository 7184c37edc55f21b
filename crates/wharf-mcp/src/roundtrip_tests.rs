//! Property tests: any JSON value that follows a parameter's schema converts to a component
//! value and back to the same JSON, for every parameter type of the `mcp_types` guest (which
//! between them use every WIT type but resources, tested end to end in the CLI tests).
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use wasmtime::component::types::Type;
use wasmtime::component::{Component, ResourceAny};

use crate::catalog::{Function, catalog};
use crate::docs::PackageDocs;
use crate::value::{Handles, Resources, from_json, is_nullable, to_json};

struct NoHandles;

impl Handles for NoHandles {
    fn mint(&mut self, _: &str, _: ResourceAny) -> String {
        unreachable!("mcp_types has no resources")
    }
    fn take(&mut self, _: &str, handle: &str, _: bool) -> Result<ResourceAny, String> {
        Err(format!("unknown handle `{handle}`"))
    }
}

fn functions() -> Vec<Function> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let component = Component::from_file(&engine, test_programs_artifacts::MCP_TYPES).unwrap();
    catalog(&engine, &component, "mcp_types", &PackageDocs::default()).functions
}

/// JSON values of type `ty`, in the encoding the schema publishes.
fn arb(ty: &Type) -> BoxedStrategy<Value> {
    fn int<T: Into<Value> + std::fmt::Debug + 'static>(s: impl Strategy<Value = T> + 'static) -> BoxedStrategy<Value> {
        s.prop_map(Into::into).boxed()
    }
    let special = || prop_oneof![Just(json!("NaN")), Just(json!("Infinity")), Just(json!("-Infinity"))];
    match ty {
        Type::Bool => any::<bool>().prop_map(Value::from).boxed(),
        Type::U8 => int(any::<u8>()),
        Type::U16 => int(any::<u16>()),
        Type::U32 => int(any::<u32>()),
        Type::U64 => int(any::<u64>()),
        Type::S8 => int(any::<i8>()),
        Type::S16 => int(any::<i16>()),
        Type::S32 => int(any::<i32>()),
        Type::S64 => int(any::<i64>()),
        // An f32 as the shortest decimal that reads back as it (what results use).
        Type::Float32 => prop_oneof![
            4 => any::<f32>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| json!(x.to_string().parse::<f64>().unwrap())),
            1 => special(),
        ]
        .boxed(),
        Type::Float64 => prop_oneof![4 => any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| json!(x)), 1 => special()].boxed(),
        Type::Char => any::<char>().prop_map(|c| Value::String(c.to_string())).boxed(),
        Type::String => any::<String>().prop_map(Value::String).boxed(),
        Type::List(list) => prop::collection::vec(arb(&list.ty()), 0..4).prop_map(Value::Array).boxed(),
        Type::Tuple(t) => t.types().map(|ty| arb(&ty)).collect::<Vec<_>>().prop_map(Value::Array).boxed(),
        Type::Record(record) => {
            let fields: Vec<_> = record.fields().map(|f| (f.name.to_string(), arb(&f.ty))).collect();
            let names: Vec<String> = fields.iter().map(|(n, _)| n.clone()).collect();
            fields
                .into_iter()
                .map(|(_, s)| s)
                .collect::<Vec<_>>()
                .prop_map(move |values| Value::Object(names.iter().cloned().zip(values).collect::<Map<_, _>>()))
                .boxed()
        }
        Type::Variant(variant) => {
            let cases: Vec<BoxedStrategy<Value>> = variant
                .cases()
                .map(|case| {
                    let name = case.name.to_string();
                    match &case.ty {
                        None => Just(Value::String(name)).boxed(),
                        Some(ty) => arb(ty).prop_map(move |v| json!({ name.clone(): v })).boxed(),
                    }
                })
                .collect();
            prop::strategy::Union::new(cases).boxed()
        }
        Type::Enum(e) => prop::sample::select(e.names().map(|n| json!(n)).collect::<Vec<_>>()).boxed(),
        Type::Flags(flags) => {
            let names: Vec<String> = flags.names().map(String::from).collect();
            prop::collection::vec(any::<bool>(), names.len())
                .prop_map(move |set| names.iter().zip(set).filter(|(_, on)| *on).map(|(n, _)| json!(n)).collect())
                .boxed()
        }
        Type::Option(option) => {
            let inner = option.ty();
            let nested = is_nullable(&inner);
            prop_oneof![1 => Just(Value::Null), 3 => arb(&inner).prop_map(move |v| if nested { json!({"some": v}) } else { v })]
                .boxed()
        }
        Type::Result(result) => {
            let side = |key: &'static str, ty: Option<Type>| match ty {
                Some(ty) => arb(&ty).prop_map(move |v| json!({ key: v })).boxed(),
                None => Just(json!({ key: null })).boxed(),
            };
            prop_oneof![side("ok", result.ok()), side("err", result.err())].boxed()
        }
        other => panic!("mcp_types does not use {other:?}"),
    }
}

#[test]
fn every_parameter_type_round_trips_through_json() {
    let functions = functions();
    let resources = Resources::default();
    let mut checked = 0;
    for function in &functions {
        for (name, ty) in &function.params {
            let mut runner = TestRunner::new(Config { cases: 300, ..Config::default() });
            runner
                .run(&arb(ty), |json| {
                    let val = from_json(ty, &json, name, &resources, &mut NoHandles)
                        .map_err(|e| TestCaseError::fail(format!("{} {name}: {e} for {json}", function.name)))?;
                    let back = to_json(ty, val, &resources, &mut NoHandles);
                    prop_assert_eq!(&back, &json, "{} {}", function.name, name);
                    Ok(())
                })
                .unwrap();
            checked += 1;
        }
    }
    assert!(checked >= 8, "expected the parameters of echo, total, area, divide, add, chatty, hog");
}

#[test]
fn flags_come_back_in_declaration_order_and_bad_values_name_their_path() {
    let functions = functions();
    let echo = functions.iter().find(|f| f.name == "mcp_types.types.echo").unwrap();
    let ty = &echo.params[0].1;
    let Type::Record(record) = ty else { panic!("everything is a record") };
    let perms = record.fields().find(|f| f.name == "perms").unwrap().ty;
    let resources = Resources::default();
    let val = from_json(&perms, &json!(["exec", "read"]), "p", &resources, &mut NoHandles).unwrap();
    assert_eq!(to_json(&perms, val, &resources, &mut NoHandles), json!(["read", "exec"]));
    let err = from_json(&perms, &json!(["read", "read"]), "p", &resources, &mut NoHandles).unwrap_err();
    assert_eq!(err.to_string(), "p: flag `read` is listed twice");

    let total = functions.iter().find(|f| f.name == "mcp_types.types.total").unwrap();
    let items = json!([
        {"name": "a", "qty": 1, "tags": []},
        {"name": "b", "qty": 2, "tags": ["x"]},
        {"name": "c", "qty": 300, "tags": []},
    ]);
    let err = from_json(&total.params[0].1, &items, "items", &resources, &mut NoHandles).unwrap_err();
    assert_eq!(err.to_string(), "items[2].qty: 300 is above the maximum 255 for u8");
    let cases = [
        (json!([{"name": "a", "qty": 1}]), "items[0].tags: missing field"),
        (json!([{"name": "a", "qty": 1, "tags": [], "x": 1}]), "items[0].x: unknown field"),
        (json!([{"name": "a", "qty": -1, "tags": []}]), "items[0].qty: -1 is below the minimum 0 for u8"),
        (json!([{"name": "a", "qty": 1.5, "tags": []}]), "items[0].qty: 1.5 is not an integer (u8)"),
        (json!([{"name": "a", "qty": 1, "tags": [3]}]), "items[0].tags[0]: expected a string, got number 3"),
        (json!({"name": "a"}), "items: expected an array, got object {\"name\":\"a\"}"),
    ];
    for (json, expected) in cases {
        let err = from_json(&total.params[0].1, &json, "items", &resources, &mut NoHandles).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
}

/// Found by the `json_value_wit` fuzz target: `f32::MAX` is written as `3.4028235e38`, a
/// decimal just above `f32::MAX`, which both the reader and the schema's bound once refused.
#[test]
fn f32_extremes_round_trip_within_the_published_bounds() {
    let functions = functions();
    let echo = functions.iter().find(|f| f.name == "mcp_types.types.echo").unwrap();
    let Type::Record(record) = &echo.params[0].1 else { panic!("everything is a record") };
    let single = record.fields().find(|f| f.name == "single").unwrap().ty;
    let schema = crate::schema::schema(&single, &Resources::default()).unwrap();
    let bounds = &schema["anyOf"][0];
    let resources = Resources::default();
    for x in [f32::MAX, f32::MIN, f32::MIN_POSITIVE, -f32::MIN_POSITIVE, f32::from_bits(1), -0.0] {
        let json = to_json(&single, wasmtime::component::Val::Float32(x), &resources, &mut NoHandles);
        let n = json.as_f64().unwrap();
        assert!(
            n <= bounds["maximum"].as_f64().unwrap() && n >= bounds["minimum"].as_f64().unwrap(),
            "{json} outside {bounds}"
        );
        let back = from_json(&single, &json, "single", &resources, &mut NoHandles).unwrap();
        assert!(
            matches!(back, wasmtime::component::Val::Float32(y) if y.to_bits() == x.to_bits()),
            "{x} -> {json} -> {back:?}"
        );
    }
    let err = from_json(&single, &json!(3.5e38), "single", &resources, &mut NoHandles).unwrap_err();
    assert_eq!(err.to_string(), "single: 350000000000000000000000000000000000000 is out of range for f32");
}
