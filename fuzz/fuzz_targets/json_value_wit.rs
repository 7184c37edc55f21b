#![no_main]
//! MCP tool arguments against WIT types generated from the input: the leading bytes describe a
//! type (records, variants, enums, flags, options, results, lists, tuples and every scalar,
//! nested up to four deep), which becomes a real component type (a component importing
//! `f: func(arg: T)`, compiled by wasmtime) so the conversion sees exactly what a tool's
//! parameter would. The next bytes give a value of that type: written with `to_json` it must
//! read back as the same value. The rest is read as JSON against the type (see `json_check`).
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, Val};
use wasmtime::{Config, Engine};
use wharf_mcp::value::{Resources, from_json, to_json};

#[path = "common/json_check.rs"]
mod json_check;
use json_check::{NoHandles, check_json};

const MAX_DEPTH: u32 = 4;
const MAX_TYPES: usize = 24;
/// Compiled types by their component text; mutations of the value and JSON keep the type.
const CACHE_LIMIT: usize = 4_096;

static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    let mut config = Config::new();
    config.wasm_component_model(true);
    Engine::new(&config).unwrap()
});
static CACHE: LazyLock<Mutex<HashMap<String, Type>>> = LazyLock::new(Default::default);

/// Builds the component text: type definitions (nominal ones imported under a name, as the
/// component model requires of types in an imported function's signature), then `f`.
struct Wit {
    defs: Vec<String>,
}

impl Wit {
    /// A type's text: a scalar keyword or `$tN` for one defined in `defs`.
    fn ty(&mut self, u: &mut Unstructured, depth: u32) -> Result<String> {
        const SCALARS: [&str; 13] =
            ["bool", "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "f32", "f64", "char", "string"];
        if depth >= MAX_DEPTH || self.defs.len() >= MAX_TYPES || u.ratio(1, 3)? {
            return Ok(u.choose(&SCALARS)?.to_string());
        }
        let (def, nominal) = match u.int_in_range(0..=8)? {
            0 => (format!("(list {})", self.ty(u, depth + 1)?), false),
            1 => (format!("(option {})", self.ty(u, depth + 1)?), false),
            2 => (format!("(tuple {})", self.several(u, depth, false)?), false),
            3 => (format!("(result {} (error {}))", self.ty(u, depth + 1)?, self.ty(u, depth + 1)?), false),
            4 => {
                let ok = if u.arbitrary()? { self.ty(u, depth + 1)? } else { String::new() };
                let err = if u.arbitrary()? { format!("(error {})", self.ty(u, depth + 1)?) } else { String::new() };
                (format!("(result {ok} {err})"), false)
            }
            5 => (format!("(record {})", self.several(u, depth, true)?), true),
            6 => {
                let cases = (0..u.int_in_range(1..=5)?)
                    .map(|i| match u.arbitrary()? {
                        true => Ok(format!("(case \"c{i}\" {})", self.ty(u, depth + 1)?)),
                        false => Ok(format!("(case \"c{i}\")")),
                    })
                    .collect::<Result<Vec<_>>>()?;
                (format!("(variant {})", cases.join(" ")), true)
            }
            7 => (format!("(enum {})", names(u, "e", 1..=40)?), true),
            _ => (format!("(flags {})", names(u, "g", 1..=32)?), true),
        };
        let n = self.defs.len();
        self.defs.push(format!("(type $d{n} {def})"));
        if !nominal {
            return Ok(format!("$d{n}"));
        }
        self.defs.push(format!("(import \"t{n}\" (type $t{n} (eq $d{n})))"));
        Ok(format!("$t{n}"))
    }

    /// One to four types: a tuple's, or a record's as fields `f0`, `f1`...
    fn several(&mut self, u: &mut Unstructured, depth: u32, fields: bool) -> Result<String> {
        let mut items = Vec::new();
        for i in 0..u.int_in_range(1..=4)? {
            let ty = self.ty(u, depth + 1)?;
            items.push(if fields { format!("(field \"f{i}\" {ty})") } else { ty });
        }
        Ok(items.join(" "))
    }
}

fn names(u: &mut Unstructured, prefix: &str, count: std::ops::RangeInclusive<usize>) -> Result<String> {
    Ok((0..u.int_in_range(count)?).map(|i| format!("\"{prefix}{i}\"")).collect::<Vec<_>>().join(" "))
}

/// The type of `f`'s parameter in the component `text`, compiled once.
fn param_type(text: String) -> Type {
    let mut cache = CACHE.lock().unwrap();
    if let Some(ty) = cache.get(&text) {
        return ty.clone();
    }
    let binary = wat::parse_str(&text).unwrap_or_else(|e| panic!("generated text does not parse: {e}\n{text}"));
    let component =
        Component::new(&ENGINE, &binary).unwrap_or_else(|e| panic!("generated type refused: {e:#}\n{text}"));
    let component_type = component.component_type();
    let (_, item) = component_type.imports(&ENGINE).find(|(name, _)| *name == "f").unwrap();
    let ComponentItem::ComponentFunc(func) = item.ty else { panic!("f is not a function: {text}") };
    let ty = func.params().next().unwrap().1;
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(text, ty.clone());
    ty
}

/// A value of `ty`.
fn value(ty: &Type, u: &mut Unstructured) -> Result<Val> {
    let boxed = |ty: Option<Type>, u: &mut Unstructured| ty.map(|t| value(&t, u).map(Box::new)).transpose();
    Ok(match ty {
        Type::Bool => Val::Bool(u.arbitrary()?),
        Type::U8 => Val::U8(u.arbitrary()?),
        Type::U16 => Val::U16(u.arbitrary()?),
        Type::U32 => Val::U32(u.arbitrary()?),
        Type::U64 => Val::U64(u.arbitrary()?),
        Type::S8 => Val::S8(u.arbitrary()?),
        Type::S16 => Val::S16(u.arbitrary()?),
        Type::S32 => Val::S32(u.arbitrary()?),
        Type::S64 => Val::S64(u.arbitrary()?),
        Type::Float32 => Val::Float32(u.arbitrary()?),
        Type::Float64 => Val::Float64(u.arbitrary()?),
        Type::Char => Val::Char(u.arbitrary()?),
        Type::String => Val::String(u.arbitrary()?),
        Type::List(list) => {
            Val::List((0..u.int_in_range(0..=3)?).map(|_| value(&list.ty(), u)).collect::<Result<_>>()?)
        }
        Type::Tuple(tuple) => Val::Tuple(tuple.types().map(|t| value(&t, u)).collect::<Result<_>>()?),
        Type::Record(record) => {
            Val::Record(record.fields().map(|f| Ok((f.name.to_string(), value(&f.ty, u)?))).collect::<Result<_>>()?)
        }
        Type::Variant(variant) => {
            let cases: Vec<_> = variant.cases().collect();
            let case = u.choose(&cases)?;
            Val::Variant(case.name.to_string(), boxed(case.ty.clone(), u)?)
        }
        Type::Enum(e) => Val::Enum(u.choose(&e.names().collect::<Vec<_>>())?.to_string()),
        Type::Flags(flags) => {
            let mut set = Vec::new();
            for name in flags.names() {
                if u.arbitrary()? {
                    set.push(name.to_string());
                }
            }
            Val::Flags(set)
        }
        Type::Option(option) => Val::Option(if u.arbitrary()? { boxed(Some(option.ty()), u)? } else { None }),
        Type::Result(result) => Val::Result(match u.arbitrary()? {
            true => Ok(boxed(result.ok(), u)?),
            false => Err(boxed(result.err(), u)?),
        }),
        other => unreachable!("not generated: {other:?}"),
    })
}

/// Equality that tells -0.0 from 0.0 and takes any NaN as equal (JSON has one `"NaN"`).
fn same(a: &Val, b: &Val) -> bool {
    let all = |a: &[Val], b: &[Val]| a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b));
    let boxed = |a: &Option<Box<Val>>, b: &Option<Box<Val>>| match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (a, b) => a.is_none() && b.is_none(),
    };
    match (a, b) {
        (Val::Float32(a), Val::Float32(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
        (Val::Float64(a), Val::Float64(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
        (Val::List(a), Val::List(b)) | (Val::Tuple(a), Val::Tuple(b)) => all(a, b),
        (Val::Record(a), Val::Record(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|((na, va), (nb, vb))| na == nb && same(va, vb))
        }
        (Val::Variant(na, a), Val::Variant(nb, b)) => na == nb && boxed(a, b),
        (Val::Option(a), Val::Option(b)) => boxed(a, b),
        (Val::Result(Ok(a)), Val::Result(Ok(b))) | (Val::Result(Err(a)), Val::Result(Err(b))) => boxed(a, b),
        (a, b) => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut wit = Wit { defs: Vec::new() };
    let Ok(param) = wit.ty(&mut u, 0) else { return };
    let text = format!("(component {} (import \"f\" (func (param \"arg\" {param}))))", wit.defs.join(" "));
    let ty = param_type(text);

    if let Ok(val) = value(&ty, &mut u) {
        let resources = Resources::default();
        let json = to_json(&ty, val.clone(), &resources, &mut NoHandles);
        let back = from_json(&ty, &json, "arg", &resources, &mut NoHandles)
            .unwrap_or_else(|e| panic!("{json} (written for {val:?}) is refused: {e}"));
        assert!(same(&back, &val), "{val:?} -> {json} -> {back:?}");
    }
    if let Ok(json) = serde_json::from_slice::<Value>(u.take_rest()) {
        check_json(&ty, &json);
    }
});
