//! Which engine a component needs, read from its bytes before it is compiled.
//!
//! A component needs the concurrent engine ([`EngineKind::Concurrent`]) when it uses the
//! component-model async ABI anywhere, in any world: an `async` function type, a `stream`,
//! `future` or `error-context` type, a canonical function other than lift, lower and the three
//! resource built-ins (`task.return`, `stream.new`, `waitable-set.wait`, `context.get`,
//! `thread.*`, ...), or an `async`/`callback` canonical option (componentize-qjs lifts its
//! exports that way even for a 0.2 world). It also needs it when it imports or exports a WASI
//! 0.3 interface (`@0.3.x`): those are linked on the concurrent engine only. Everything else is
//! a synchronous component and gets the engine without concurrency support.
//!
//! The scan reads section headers and types only (function bodies are skipped), so it costs far
//! less than validation. It only has to be right in one direction: a component it calls
//! synchronous that is not fails validation on the synchronous engine and is compiled again on
//! the concurrent one ([`crate::Host::load`]).
use wasmparser::{
    CanonicalFunction, CanonicalOption, ComponentDefinedType, ComponentFuncType, ComponentType,
    ComponentTypeDeclaration, ComponentValType, InstanceTypeDeclaration, Parser, Payload, PrimitiveValType,
};

use crate::engine::EngineKind;

/// The engine `bytes` (a component) needs. Bytes that do not parse are called synchronous:
/// compiling them reports the error.
pub fn engine_kind(bytes: &[u8]) -> EngineKind {
    if needs_concurrency(bytes).unwrap_or(false) { EngineKind::Concurrent } else { EngineKind::Sync }
}

fn needs_concurrency(bytes: &[u8]) -> wasmparser::Result<bool> {
    for payload in Parser::new(0).parse_all(bytes) {
        let found = match payload? {
            Payload::ComponentImportSection(imports) => {
                let mut any = false;
                for import in imports {
                    any |= is_wasi_03(import?.name.name);
                }
                any
            }
            Payload::ComponentExportSection(exports) => {
                let mut any = false;
                for export in exports {
                    any |= is_wasi_03(export?.name.name);
                }
                any
            }
            Payload::ComponentTypeSection(types) => {
                let mut any = false;
                for ty in types {
                    any |= component_type(&ty?);
                }
                any
            }
            Payload::ComponentCanonicalSection(canonicals) => {
                let mut any = false;
                for canonical in canonicals {
                    any |= canonical_function(&canonical?);
                }
                any
            }
            _ => false,
        };
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Bytes of active data segments in all of a component's core modules (what instantiating it
/// without a copy-on-write image copies into linear memory), or `None` if the bytes do not
/// parse. See [`crate::PoolOptions::copy_data`].
pub fn data_segment_bytes(bytes: &[u8]) -> Option<u64> {
    let mut total = 0u64;
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::DataSection(segments) = payload.ok()? {
            for segment in segments {
                let segment = segment.ok()?;
                if matches!(segment.kind, wasmparser::DataKind::Active { .. }) {
                    total = total.saturating_add(segment.data.len() as u64);
                }
            }
        }
    }
    Some(total)
}

/// `wasi:NAME@0.3.x` (the version of an interface or a whole package).
fn is_wasi_03(name: &str) -> bool {
    name.starts_with("wasi:") && name.split_once('@').is_some_and(|(_, version)| version.starts_with("0.3."))
}

fn canonical_function(function: &CanonicalFunction) -> bool {
    let async_option = |options: &[CanonicalOption]| {
        options.iter().any(|o| matches!(o, CanonicalOption::Async | CanonicalOption::Callback(_)))
    };
    match function {
        CanonicalFunction::Lift { options, .. } | CanonicalFunction::Lower { options, .. } => async_option(options),
        CanonicalFunction::ResourceNew { .. }
        | CanonicalFunction::ResourceDrop { .. }
        | CanonicalFunction::ResourceRep { .. } => false,
        // Every other built-in is a task, stream, future, waitable, context or thread one.
        _ => true,
    }
}

fn component_type(ty: &ComponentType) -> bool {
    match ty {
        ComponentType::Defined(defined) => defined_type(defined),
        ComponentType::Func(func) => func_type(func),
        ComponentType::Component(decls) => decls.iter().any(|decl| match decl {
            ComponentTypeDeclaration::Type(ty) => component_type(ty),
            ComponentTypeDeclaration::Import(import) => is_wasi_03(import.name.name),
            ComponentTypeDeclaration::Export { name, .. } => is_wasi_03(name.name),
            _ => false,
        }),
        ComponentType::Instance(decls) => decls.iter().any(|decl| match decl {
            InstanceTypeDeclaration::Type(ty) => component_type(ty),
            _ => false,
        }),
        ComponentType::Resource { .. } => false,
    }
}

fn func_type(func: &ComponentFuncType) -> bool {
    func.async_ || func.params.iter().any(|(_, ty)| val_type(ty)) || func.result.as_ref().is_some_and(val_type)
}

fn defined_type(defined: &ComponentDefinedType) -> bool {
    match defined {
        ComponentDefinedType::Future(_) | ComponentDefinedType::Stream(_) => true,
        ComponentDefinedType::Primitive(p) => *p == PrimitiveValType::ErrorContext,
        ComponentDefinedType::Record(fields) => fields.iter().any(|(_, ty)| val_type(ty)),
        ComponentDefinedType::Variant(cases) => cases.iter().any(|case| case.ty.as_ref().is_some_and(val_type)),
        ComponentDefinedType::List(ty) | ComponentDefinedType::Option(ty) => val_type(ty),
        ComponentDefinedType::FixedLengthList(ty, _) => val_type(ty),
        ComponentDefinedType::Map(key, value) => val_type(key) || val_type(value),
        ComponentDefinedType::Tuple(types) => types.iter().any(val_type),
        ComponentDefinedType::Result { ok, err } => {
            ok.as_ref().is_some_and(val_type) || err.as_ref().is_some_and(val_type)
        }
        ComponentDefinedType::Flags(_)
        | ComponentDefinedType::Enum(_)
        | ComponentDefinedType::Own(_)
        | ComponentDefinedType::Borrow(_) => false,
    }
}

/// An inline `error-context` (other types are referred to by index and scanned where defined).
fn val_type(ty: &ComponentValType) -> bool {
    matches!(ty, ComponentValType::Primitive(PrimitiveValType::ErrorContext))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(wat: &str) -> EngineKind {
        engine_kind(&wat::parse_str(wat).unwrap())
    }

    #[test]
    fn plain_components_are_sync() {
        assert_eq!(kind("(component)"), EngineKind::Sync);
        let lifted = r#"(component
            (core module $m (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func (export "f") (result u32) (canon lift (core func $i "f"))))"#;
        assert_eq!(kind(lifted), EngineKind::Sync);
        let p2_import = r#"(component (import "wasi:cli/environment@0.2.6" (instance)))"#;
        assert_eq!(kind(p2_import), EngineKind::Sync);
    }

    #[test]
    fn async_abi_needs_the_concurrent_engine() {
        let async_lift = r#"(component
            (core module $m (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func (export "f") async (canon lift (core func $i "f") async)))"#;
        assert_eq!(kind(async_lift), EngineKind::Concurrent);
        let stream_type = r#"(component (type (stream u8)))"#;
        assert_eq!(kind(stream_type), EngineKind::Concurrent);
        let in_instance = r#"(component (import "a" (instance (type (func async)))))"#;
        assert_eq!(kind(in_instance), EngineKind::Concurrent);
        let builtin = r#"(component (core func (canon waitable-set.new)))"#;
        assert_eq!(kind(builtin), EngineKind::Concurrent);
        let nested = r#"(component (component (type (future))))"#;
        assert_eq!(kind(nested), EngineKind::Concurrent);
    }

    #[test]
    fn wasi_03_names_need_the_concurrent_engine() {
        assert_eq!(kind(r#"(component (import "wasi:cli/environment@0.3.0" (instance)))"#), EngineKind::Concurrent);
        assert!(is_wasi_03("wasi:http/handler@0.3.0-rc-2026-01-06"));
        assert!(!is_wasi_03("wasi:keyvalue/store@0.2.0-draft2"));
        assert!(!is_wasi_03("example:x/y@0.3.0"));
    }

    #[test]
    fn data_segment_bytes_counts_active_segments_of_every_core_module() {
        let wat = r#"(component
            (core module (memory 1) (data (i32.const 16) "abcd") (data "passive, not counted"))
            (core module (memory 1) (data (i32.const 0) "xyz")))"#;
        assert_eq!(super::data_segment_bytes(&wat::parse_str(wat).unwrap()), Some(7));
        assert_eq!(super::data_segment_bytes(b"\0asm\x0d\0\x01\0garbage"), None);
    }

    #[test]
    fn garbage_is_sync() {
        assert_eq!(engine_kind(b"\0asm\x0d\0\x01\0garbage"), EngineKind::Sync);
    }
}

#[cfg(test)]
mod guest_tests {
    use test_programs_artifacts::{CLI_ECHO, HTTP_HELLO, KV_STORE, P3_CLI, P3_HTTP, P3_MCP};

    use crate::{EngineKind, EngineOptions, Host, WharfEngine};

    #[test]
    fn each_guest_gets_the_engine_it_needs() {
        let host = Host::new(WharfEngine::new(&EngineOptions::default()).unwrap(), None).unwrap();
        for path in [CLI_ECHO, HTTP_HELLO, KV_STORE] {
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(super::engine_kind(&bytes), EngineKind::Sync, "{path}");
            let (component, _) = host.load(path, &bytes).unwrap();
            assert!(!component.engine().get_concurrency_support(), "{path} on the concurrent engine");
            assert_eq!(host.engine().for_component(&component).kind(), EngineKind::Sync);
            host.prepare(path, &component).unwrap();
        }
        // Nothing needed the concurrent engine yet: it does not exist (no second pool).
        assert!(!host.engine().has_concurrent());
        for path in [P3_CLI, P3_HTTP, P3_MCP] {
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(super::engine_kind(&bytes), EngineKind::Concurrent, "{path}");
            let (component, _) = host.load(path, &bytes).unwrap();
            assert!(component.engine().get_concurrency_support(), "{path} on the synchronous engine");
            assert_eq!(host.engine().for_component(&component).kind(), EngineKind::Concurrent);
            host.prepare(path, &component).unwrap();
        }
        // Asked for, a synchronous component runs on the concurrent engine too.
        let bytes = std::fs::read(HTTP_HELLO).unwrap();
        let (component, _) = host.load_for(HTTP_HELLO, &bytes, EngineKind::Concurrent, || ()).unwrap();
        assert!(component.engine().get_concurrency_support());
        host.prepare_proxy(HTTP_HELLO, &component).unwrap();
    }

    #[test]
    fn a_component_the_scan_misses_is_compiled_on_the_concurrent_engine() {
        // Taken for synchronous, an async-ABI component fails validation on the synchronous
        // engine; wharf then compiles it on the concurrent one instead of refusing it.
        let host = Host::new(WharfEngine::new(&EngineOptions::default()).unwrap(), None).unwrap();
        let wat = r#"(component
            (core module $m
                (func (export "f") (result i32) i32.const 0)
                (func (export "cb") (param i32 i32 i32) (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func (export "f") async (canon lift (core func $i "f") async (callback (func $i "cb")))))"#;
        let bytes = wat::parse_str(wat).unwrap();
        assert_eq!(super::engine_kind(&bytes), EngineKind::Concurrent);
        let (component, _) = host.load_as("async.wasm", &bytes, EngineKind::Sync, || ()).unwrap();
        assert!(component.engine().get_concurrency_support());
        // A component neither engine takes is refused with the concurrent engine's reason.
        let bad = wat::parse_str(r#"(component (core module (func (result i32))))"#).unwrap();
        let e = host.load_as("bad.wasm", &bad, EngineKind::Sync, || ()).unwrap_err().to_string();
        assert!(e.starts_with("bad.wasm is not a valid component: "), "{e}");
    }

    #[test]
    fn the_engines_have_different_cache_keys() {
        let engine = WharfEngine::new(&EngineOptions::default()).unwrap();
        let concurrent = engine.with_kind(EngineKind::Concurrent).unwrap();
        assert_ne!(engine.fingerprint(), concurrent.fingerprint());
        // Pinning again reuses the one concurrent engine.
        let again = engine.with_kind(EngineKind::Concurrent).unwrap();
        assert!(wasmtime::Engine::same(concurrent.engine(), again.engine()));
        assert_eq!(concurrent.fingerprint(), again.fingerprint());
    }
}
