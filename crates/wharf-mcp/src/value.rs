//! JSON <-> component values, following the schema `schema.rs` publishes. Every rejection names
//! the path of the bad value (`items[2].qty: 300 is above the maximum 255 for u8`).
use std::fmt;

use serde_json::{Map, Number, Value};
use wasmtime::component::types::Type;
use wasmtime::component::{ResourceAny, ResourceType, Val};

/// The largest JSON number an `f32` accepts (and its schema's `maximum`): `f32::MAX` as the
/// shortest decimal that reads back as it, which is how results write it. That decimal is a
/// little above `f32::MAX` itself, so bounding by `f32::MAX` would refuse the value we return.
pub const F32_JSON_MAX: f64 = 3.4028235e38;

/// Names of the resource types a component exports, for handles and their schemas.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    names: Vec<(ResourceType, String)>,
}

impl Resources {
    /// Records that `ty` is exported under `name`.
    pub fn insert(&mut self, ty: ResourceType, name: &str) {
        if !self.names.iter().any(|(known, _)| *known == ty) {
            self.names.push((ty, name.to_string()));
        }
    }

    /// The name of `ty`, or `resource` for one the component does not export.
    pub fn name(&self, ty: &ResourceType) -> &str {
        self.names.iter().find(|(known, _)| known == ty).map_or("resource", |(_, name)| name)
    }

    /// Whether `ty` is exported by the component (only those can be handed out and back).
    pub fn contains(&self, ty: &ResourceType) -> bool {
        self.names.iter().any(|(known, _)| known == ty)
    }

    /// Whether the component exports no resources at all.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The session's resources: handles are minted for results and looked up for arguments.
pub trait Handles {
    /// Keeps `resource` (of type `kind`) and returns its new opaque handle.
    fn mint(&mut self, kind: &str, resource: ResourceAny) -> String;
    /// The resource behind `handle`, which must be of type `kind`; `own` takes it out of the
    /// session (the guest now owns it).
    fn take(&mut self, kind: &str, handle: &str, own: bool) -> Result<ResourceAny, String>;
}

/// A value that does not fit the parameter's schema, with the path to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError {
    /// Where, e.g. `items[2].qty`; empty for the arguments object itself.
    pub path: String,
    /// What is wrong, e.g. `300 is above the maximum 255 for u8`.
    pub message: String,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path.as_str() {
            "" => write!(f, "{}", self.message),
            path => write!(f, "{path}: {}", self.message),
        }
    }
}

impl std::error::Error for ArgError {}

/// Whether `ty`'s encoding can be `null`; `option<T>` wraps `some` of such a `T` as `{"some": v}`.
pub fn is_nullable(ty: &Type) -> bool {
    matches!(ty, Type::Option(_))
}

/// Converts a JSON argument to a value of `ty`. `path` names the argument in errors.
pub fn from_json(
    ty: &Type,
    json: &Value,
    path: &str,
    resources: &Resources,
    handles: &mut dyn Handles,
) -> Result<Val, ArgError> {
    let mut reader = Reader { path: vec![Segment::Field(path.to_string())], resources, handles };
    reader.read(ty, json)
}

/// Converts a result of type `ty` to JSON, minting handles for resources.
pub fn to_json(ty: &Type, val: Val, resources: &Resources, handles: &mut dyn Handles) -> Value {
    match (ty, val) {
        (_, Val::Bool(b)) => b.into(),
        (_, Val::U8(n)) => n.into(),
        (_, Val::U16(n)) => n.into(),
        (_, Val::U32(n)) => n.into(),
        (_, Val::U64(n)) => n.into(),
        (_, Val::S8(n)) => n.into(),
        (_, Val::S16(n)) => n.into(),
        (_, Val::S32(n)) => n.into(),
        (_, Val::S64(n)) => n.into(),
        // The shortest decimal that reads back as the same f32, not its widened f64 digits.
        (_, Val::Float32(x)) => float_json(x.to_string().parse().unwrap_or(f64::from(x))),
        (_, Val::Float64(x)) => float_json(x),
        (_, Val::Char(c)) => c.to_string().into(),
        (_, Val::String(s)) => s.into(),
        (Type::List(list), Val::List(items)) => {
            items.into_iter().map(|v| to_json(&list.ty(), v, resources, handles)).collect()
        }
        (Type::FixedLengthList(list), Val::FixedLengthList(items)) => {
            items.into_iter().map(|v| to_json(&list.ty(), v, resources, handles)).collect()
        }
        (Type::Map(map), Val::Map(pairs)) => pairs
            .into_iter()
            .map(|(k, v)| {
                Value::Array(vec![
                    to_json(&map.key(), k, resources, handles),
                    to_json(&map.value(), v, resources, handles),
                ])
            })
            .collect(),
        (Type::Tuple(t), Val::Tuple(items)) => {
            t.types().zip(items).map(|(ty, v)| to_json(&ty, v, resources, handles)).collect()
        }
        (Type::Record(record), Val::Record(fields)) => {
            let mut object = Map::new();
            for (field, (name, v)) in record.fields().zip(fields) {
                object.insert(name, to_json(&field.ty, v, resources, handles));
            }
            Value::Object(object)
        }
        (Type::Variant(variant), Val::Variant(name, payload)) => {
            let case_ty = variant.cases().find(|c| c.name == name).and_then(|c| c.ty);
            match (case_ty, payload) {
                (Some(ty), Some(v)) => one_key(name, to_json(&ty, *v, resources, handles)),
                _ => Value::String(name),
            }
        }
        (_, Val::Enum(name)) => Value::String(name),
        (_, Val::Flags(names)) => names.into_iter().map(Value::String).collect(),
        (Type::Option(option), Val::Option(v)) => match v {
            None => Value::Null,
            Some(v) => {
                let inner = option.ty();
                let json = to_json(&inner, *v, resources, handles);
                if is_nullable(&inner) { one_key("some".into(), json) } else { json }
            }
        },
        (Type::Result(result), Val::Result(r)) => {
            let (key, ty, payload) = match r {
                Ok(v) => ("ok", result.ok(), v),
                Err(v) => ("err", result.err(), v),
            };
            let json = match (ty, payload) {
                (Some(ty), Some(v)) => to_json(&ty, *v, resources, handles),
                _ => Value::Null,
            };
            one_key(key.into(), json)
        }
        (Type::Own(resource) | Type::Borrow(resource), Val::Resource(any)) => {
            handles.mint(resources.name(resource), any).into()
        }
        // Types without a JSON encoding never reach a tool (see `schema::Unsupported`).
        (_, other) => Value::String(format!("<{other:?}>")),
    }
}

fn float_json(x: f64) -> Value {
    match Number::from_f64(x) {
        Some(n) => Value::Number(n),
        None if x.is_nan() => "NaN".into(),
        None if x > 0.0 => "Infinity".into(),
        None => "-Infinity".into(),
    }
}

fn one_key(key: String, value: Value) -> Value {
    let mut object = Map::new();
    object.insert(key, value);
    Value::Object(object)
}

enum Segment {
    Field(String),
    Index(usize),
}

struct Reader<'a> {
    path: Vec<Segment>,
    resources: &'a Resources,
    handles: &'a mut dyn Handles,
}

impl Reader<'_> {
    fn error(&self, message: impl Into<String>) -> ArgError {
        let mut path = String::new();
        for segment in &self.path {
            match segment {
                Segment::Field(name) if path.is_empty() => path.push_str(name),
                Segment::Field(name) => {
                    path.push('.');
                    path.push_str(name);
                }
                Segment::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        ArgError { path, message: message.into() }
    }

    fn mismatch(&self, expected: &str, got: &Value) -> ArgError {
        self.error(format!("expected {expected}, got {}", describe(got)))
    }

    fn nested<T>(&mut self, segment: Segment, f: impl FnOnce(&mut Self) -> Result<T, ArgError>) -> Result<T, ArgError> {
        self.path.push(segment);
        let result = f(self);
        self.path.pop();
        result
    }

    fn read(&mut self, ty: &Type, json: &Value) -> Result<Val, ArgError> {
        Ok(match ty {
            Type::Bool => Val::Bool(json.as_bool().ok_or_else(|| self.mismatch("a boolean", json))?),
            Type::U8 => Val::U8(self.integer(json, "u8")?),
            Type::U16 => Val::U16(self.integer(json, "u16")?),
            Type::U32 => Val::U32(self.integer(json, "u32")?),
            Type::U64 => Val::U64(self.integer(json, "u64")?),
            Type::S8 => Val::S8(self.integer(json, "s8")?),
            Type::S16 => Val::S16(self.integer(json, "s16")?),
            Type::S32 => Val::S32(self.integer(json, "s32")?),
            Type::S64 => Val::S64(self.integer(json, "s64")?),
            Type::Float32 => {
                let x = self.float(json, "f32")?;
                if x.is_finite() && x.abs() > F32_JSON_MAX {
                    return Err(self.error(format!("{x} is out of range for f32")));
                }
                // Rounds to the nearest f32: `3.4028235e38` is `f32::MAX`.
                Val::Float32(x as f32)
            }
            Type::Float64 => Val::Float64(self.float(json, "f64")?),
            Type::Char => {
                let s = json.as_str().ok_or_else(|| self.mismatch("a one-character string (char)", json))?;
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Val::Char(c),
                    _ => {
                        let n = s.chars().count();
                        return Err(self.error(format!("expected exactly one character (char), got {n}")));
                    }
                }
            }
            Type::String => Val::String(json.as_str().ok_or_else(|| self.mismatch("a string", json))?.to_string()),
            Type::List(list) => Val::List(self.array(&list.ty(), json, None)?),
            Type::FixedLengthList(list) => Val::FixedLengthList(self.array(&list.ty(), json, Some(list.len()))?),
            Type::Map(map) => {
                let items = json.as_array().ok_or_else(|| self.mismatch("an array of [key, value] pairs", json))?;
                let mut pairs = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let pair = self.nested(Segment::Index(i), |r| match item.as_array().map(Vec::as_slice) {
                        Some([k, v]) => Ok((
                            r.nested(Segment::Index(0), |r| r.read(&map.key(), k))?,
                            r.nested(Segment::Index(1), |r| r.read(&map.value(), v))?,
                        )),
                        _ => Err(r.mismatch("a [key, value] pair", item)),
                    })?;
                    pairs.push(pair);
                }
                Val::Map(pairs)
            }
            Type::Tuple(t) => {
                let items = json.as_array().ok_or_else(|| self.mismatch("an array (tuple)", json))?;
                if items.len() != t.types().len() {
                    return Err(self.error(format!("expected {} items (tuple), got {}", t.types().len(), items.len())));
                }
                let mut values = Vec::with_capacity(items.len());
                for (i, (ty, item)) in t.types().zip(items).enumerate() {
                    values.push(self.nested(Segment::Index(i), |r| r.read(&ty, item))?);
                }
                Val::Tuple(values)
            }
            Type::Record(record) => {
                let object = json.as_object().ok_or_else(|| self.mismatch("an object (record)", json))?;
                if let Some(unknown) = object.keys().find(|k| !record.fields().any(|f| f.name == k.as_str())) {
                    let unknown = unknown.clone();
                    return self.nested(Segment::Field(unknown), |r| Err(r.error("unknown field")));
                }
                let mut fields = Vec::with_capacity(record.fields().len());
                for field in record.fields() {
                    let Some(value) = object.get(field.name) else {
                        let field = Segment::Field(field.name.to_string());
                        return self.nested(field, |r| Err(r.error("missing field")));
                    };
                    let val = self.nested(Segment::Field(field.name.to_string()), |r| r.read(&field.ty, value))?;
                    fields.push((field.name.to_string(), val));
                }
                Val::Record(fields)
            }
            Type::Variant(variant) => {
                let cases = || variant.cases().map(|c| c.name).collect::<Vec<_>>().join(", ");
                let (name, payload) = self.tagged(json, "a variant case")?;
                let Some(case) = variant.cases().find(|c| c.name == name) else {
                    return Err(self.error(format!("unknown case `{name}` (cases: {})", cases())));
                };
                match (&case.ty, payload) {
                    (None, None) => Val::Variant(name.to_string(), None),
                    (Some(ty), Some(payload)) => {
                        let val = self.nested(Segment::Field(name.to_string()), |r| r.read(ty, payload))?;
                        Val::Variant(name.to_string(), Some(Box::new(val)))
                    }
                    (None, Some(_)) => {
                        return Err(self.error(format!("case `{name}` has no payload: write \"{name}\"")));
                    }
                    (Some(_), None) => {
                        return Err(self.error(format!("case `{name}` needs a payload: write {{\"{name}\": ...}}")));
                    }
                }
            }
            Type::Enum(e) => {
                let name = json.as_str().ok_or_else(|| self.mismatch("a string (enum)", json))?;
                if !e.names().any(|n| n == name) {
                    let cases = e.names().collect::<Vec<_>>().join(", ");
                    return Err(self.error(format!("unknown case `{name}` (cases: {cases})")));
                }
                Val::Enum(name.to_string())
            }
            Type::Flags(flags) => {
                let items = json.as_array().ok_or_else(|| self.mismatch("an array of flag names", json))?;
                let mut set = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let name = item.as_str().filter(|n| flags.names().any(|f| f == *n));
                    let Some(name) = name else {
                        let known = flags.names().collect::<Vec<_>>().join(", ");
                        return Err(self.nested(Segment::Index(i), |r| {
                            Err(r.error(format!("expected one of the flags {known}, got {}", describe(item))))
                        })?);
                    };
                    if set.iter().any(|s| s == name) {
                        return Err(self.error(format!("flag `{name}` is listed twice")));
                    }
                    set.push(name.to_string());
                }
                // Declaration order, as the component model lifts flags (and results list them).
                Val::Flags(flags.names().filter(|f| set.iter().any(|s| s == f)).map(String::from).collect())
            }
            Type::Option(option) => {
                let inner = option.ty();
                match json {
                    Value::Null => Val::Option(None),
                    _ if is_nullable(&inner) => {
                        let some = json.as_object().filter(|o| o.len() == 1).and_then(|o| o.get("some"));
                        let some =
                            some.ok_or_else(|| self.mismatch("null or {\"some\": ...} (nested option)", json))?;
                        let val = self.nested(Segment::Field("some".into()), |r| r.read(&inner, some))?;
                        Val::Option(Some(Box::new(val)))
                    }
                    _ => Val::Option(Some(Box::new(self.read(&inner, json)?))),
                }
            }
            Type::Result(result) => {
                let (key, payload) = match json.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) {
                    Some((key, payload)) if key == "ok" || key == "err" => (key.as_str(), payload),
                    _ => return Err(self.mismatch("{\"ok\": ...} or {\"err\": ...} (result)", json)),
                };
                let ty = if key == "ok" { result.ok() } else { result.err() };
                let val = self.nested(Segment::Field(key.to_string()), |r| match (&ty, payload) {
                    (None, Value::Null) => Ok(None),
                    (None, other) => Err(r.mismatch("null", other)),
                    (Some(ty), payload) => Ok(Some(Box::new(r.read(ty, payload)?))),
                })?;
                Val::Result(if key == "ok" { Ok(val) } else { Err(val) })
            }
            Type::Own(resource) | Type::Borrow(resource) => {
                let handle = json.as_str().ok_or_else(|| self.mismatch("a handle string", json))?;
                let kind = self.resources.name(resource);
                let any = self.handles.take(kind, handle, matches!(ty, Type::Own(_))).map_err(|e| self.error(e))?;
                Val::Resource(any)
            }
            Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
                return Err(self.error("this type cannot be passed as JSON"));
            }
        })
    }

    fn integer<T: TryFrom<i64> + TryFrom<u64> + Bounded>(&self, json: &Value, name: &str) -> Result<T, ArgError> {
        let Value::Number(n) = json else { return Err(self.mismatch(&format!("an integer ({name})"), json)) };
        // JSON Schema counts 5.0 as an integer. Past 2^53 a float is not exact: an integer
        // literal too large for i64/u64 arrives as one, and must not be rounded into range.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        let whole = match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i128::from(i),
            (_, Some(u), _) => i128::from(u),
            (_, _, Some(x)) if x.fract() != 0.0 => return Err(self.error(format!("{n} is not an integer ({name})"))),
            (_, _, Some(x)) if x.abs() < EXACT => x as i128,
            (_, _, Some(x)) if x > 0.0 => {
                return Err(self.error(format!("{x:.0} is above the maximum {} for {name}", T::MAX)));
            }
            _ => return Err(self.error(format!("{n} is below the minimum {} for {name}", T::MIN))),
        };
        if whole > T::MAX {
            return Err(self.error(format!("{n} is above the maximum {} for {name}", T::MAX)));
        }
        if whole < T::MIN {
            return Err(self.error(format!("{n} is below the minimum {} for {name}", T::MIN)));
        }
        let converted = if whole < 0 { T::try_from(whole as i64).ok() } else { T::try_from(whole as u64).ok() };
        converted.ok_or_else(|| self.error(format!("{n} does not fit {name}")))
    }

    fn float(&self, json: &Value, name: &str) -> Result<f64, ArgError> {
        match json {
            Value::Number(n) => n.as_f64().ok_or_else(|| self.error(format!("{n} is not a number ({name})"))),
            Value::String(s) if s == "NaN" => Ok(f64::NAN),
            Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
            Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
            other => Err(self.mismatch(&format!("a number or \"NaN\", \"Infinity\", \"-Infinity\" ({name})"), other)),
        }
    }

    fn array(&mut self, elem: &Type, json: &Value, len: Option<u32>) -> Result<Vec<Val>, ArgError> {
        let items = json.as_array().ok_or_else(|| self.mismatch("an array", json))?;
        if let Some(len) = len.filter(|&len| items.len() != len as usize) {
            return Err(self.error(format!("expected {len} items, got {}", items.len())));
        }
        let mut values = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            values.push(self.nested(Segment::Index(i), |r| r.read(elem, item))?);
        }
        Ok(values)
    }

    /// A case name and its payload: `"name"` or `{"name": payload}`.
    fn tagged<'j>(&self, json: &'j Value, what: &str) -> Result<(&'j str, Option<&'j Value>), ArgError> {
        match json {
            Value::String(name) => Ok((name, None)),
            Value::Object(o) if o.len() == 1 => {
                let (name, payload) = o.iter().next().expect("one entry");
                Ok((name, Some(payload)))
            }
            other => Err(self.mismatch(&format!("\"case\" or {{\"case\": payload}} ({what})"), other)),
        }
    }
}

/// The bounds of the integer types, as `i128` so every pair compares.
trait Bounded {
    const MIN: i128;
    const MAX: i128;
}

macro_rules! bounded {
    ($($t:ty),*) => {$(
        impl Bounded for $t {
            const MIN: i128 = <$t>::MIN as i128;
            const MAX: i128 = <$t>::MAX as i128;
        }
    )*};
}
bounded!(u8, u16, u32, u64, i8, i16, i32, i64);

fn describe(json: &Value) -> String {
    let shown = |v: &Value| {
        let text = v.to_string();
        if text.chars().count() > 40 { format!("{}...", text.chars().take(40).collect::<String>()) } else { text }
    };
    match json {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => format!("string {}", shown(json)),
        Value::Array(a) => format!("array of {} items", a.len()),
        Value::Object(_) => format!("object {}", shown(json)),
    }
}
