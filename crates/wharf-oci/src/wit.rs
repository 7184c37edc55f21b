//! What a Wasm binary is (component or core module) and, for a component, the interfaces its
//! world imports and exports, read from the binary's own type information.
use wit_parser::decoding::{DecodedWasm, decode};
use wit_parser::{Resolve, WorldItem, WorldKey};

use crate::Error;
use crate::artifact::ComponentWorld;

/// The two kinds of Wasm binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A core module (`wasip1` in the config).
    Module,
    /// A component (`wasip2` in the config).
    Component,
}

/// Classifies `bytes` by their header, or `None` if they are not Wasm at all.
pub fn kind(bytes: &[u8]) -> Option<WasmKind> {
    match bytes {
        [0, b'a', b's', b'm', 1, 0, 0, 0, ..] => Some(WasmKind::Module),
        [0, b'a', b's', b'm', _, _, 1, 0, ..] => Some(WasmKind::Component),
        _ => None,
    }
}

/// The component's imports and exports, by name (`wasi:cli/run@0.2.0` for interfaces, the
/// plain name for functions), in the order the component declares them.
pub fn component_world(name: &str, bytes: &[u8]) -> Result<ComponentWorld, Error> {
    let wit_error = |reason: String| Error::Wit { name: name.into(), reason };
    let (resolve, world) = match decode(bytes).map_err(|e| wit_error(format!("{e:#}")))? {
        DecodedWasm::Component(resolve, world) => (resolve, world),
        DecodedWasm::WitPackage(..) => return Err(wit_error("it is a WIT package, not a component".into())),
    };
    let world = &resolve.worlds[world];
    let names = |items: &wit_parser::IndexMap<WorldKey, WorldItem>| -> Vec<String> {
        items.iter().filter_map(|(key, item)| item_name(&resolve, key, item)).collect()
    };
    Ok(ComponentWorld { exports: names(&world.exports), imports: names(&world.imports), target: None })
}

fn item_name(resolve: &Resolve, key: &WorldKey, item: &WorldItem) -> Option<String> {
    match item {
        WorldItem::Interface { .. } | WorldItem::Function(_) => Some(resolve.name_world_key(key)),
        // Types are not imports a host provides.
        WorldItem::Type { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_guest_world() {
        let bytes = std::fs::read(test_programs_artifacts::CLI_ECHO).unwrap();
        assert_eq!(kind(&bytes), Some(WasmKind::Component));
        let world = component_world("echo", &bytes).unwrap();
        assert!(world.exports.iter().any(|e| e.starts_with("wasi:cli/run@0.2.")), "{world:?}");
        assert!(world.imports.iter().any(|i| i.starts_with("wasi:cli/stdout@0.2.")), "{world:?}");
        assert!(world.imports.iter().all(|i| i.starts_with("wasi:")), "{world:?}");
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(kind(b"\0asm"), None);
        assert_eq!(kind(b"hello world"), None);
        assert!(matches!(component_world("x", b"\0asm\x0d\0\x01\0garbage"), Err(Error::Wit { .. })));
    }
}
