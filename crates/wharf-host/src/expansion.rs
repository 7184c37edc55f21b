//! How large a component becomes when it is instantiated, found before wasmtime compiles it.
//!
//! A component may define a component and instantiate it several times, nest that again, and so
//! on: each level multiplies. wasmtime flattens the whole instantiation graph when it compiles
//! a component, so a 700-byte component nesting seven levels of ten instantiations (10,000,000
//! core instances) took 26 s and 1.8 GB in `Component::new` before the store's instance cap
//! could refuse it, and each further level costs ten times more. [`check`] walks the same graph
//! on the parsed sections, counting as it goes and stopping at the first cap it passes, so the
//! work is bounded by the caps, not by the component.
//!
//! The walk follows the component model's index spaces: nested component definitions, imports,
//! outer aliases, instance-export aliases and exports (components and instances passed as
//! instantiation arguments included). What it cannot resolve (an index out of range, an item
//! the host would provide) counts as nothing; those components fail validation or linking.
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use wasmparser::{
    ComponentAlias, ComponentExternalKind, ComponentInstance, ComponentOuterAliasKind, ComponentTypeRef, Encoding,
    Instance, Parser, Payload,
};

/// Work units (index-space entries created, arguments and exports resolved, while
/// instantiating) one component may expand to.
/// Real components, composed ones included, instantiate each nested component about once: a
/// few hundred entries.
const MAX_STEPS: usize = 1_000_000;
/// How deep instantiations may nest (each one a level of recursion in the walk).
const MAX_DEPTH: usize = 100;

/// Why a component is refused before compiling.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Expansion {
    /// Instantiating it creates more core instances than a store allows.
    #[error("instantiating it would create more than {0} core instances (wharf's limit)")]
    CoreInstances(usize),
    /// Its nested instantiations multiply past what the walk allows.
    #[error("its nested component instantiations expand to more than {MAX_STEPS} items")]
    Steps,
    /// Instantiations nest deeper than [`MAX_DEPTH`].
    #[error("its component instantiations nest more than {MAX_DEPTH} levels deep")]
    Depth,
}

/// Checks that instantiating the component in `bytes` creates at most `max_core_instances`
/// core instances. Bytes that do not parse pass: compiling reports them.
pub fn check(bytes: &[u8], max_core_instances: usize) -> Result<(), Expansion> {
    let Some(defs) = parse(bytes) else { return Ok(()) };
    if defs.is_empty() {
        return Ok(());
    }
    let mut walk = Walk { defs: &defs, core_instances: 0, max_core_instances, steps: 0 };
    walk.instantiate(0, &HashMap::new(), None, 0).map(drop)
}

/// One component definition: what it adds to its index spaces, in order.
#[derive(Default)]
struct Def {
    ops: Vec<Op>,
    exports: Vec<(String, Item)>,
}

enum Op {
    /// A core module instantiated.
    CoreInstance,
    Component(ComponentSource),
    Instance(InstanceSource),
}

enum ComponentSource {
    Nested(usize),
    Import(String),
    Outer { count: u32, index: u32 },
    InstanceExport { instance: u32, name: String },
    Export(u32),
}

enum InstanceSource {
    Instantiate { component: u32, args: Vec<(String, Item)> },
    FromExports(Vec<(String, Item)>),
    Import(String),
    InstanceExport { instance: u32, name: String },
    Export(u32),
}

/// A reference to an item of the current component, by kind and index.
#[derive(Clone, Copy)]
enum Item {
    Component(u32),
    Instance(u32),
    Other,
}

impl Item {
    fn new(kind: ComponentExternalKind, index: u32) -> Item {
        match kind {
            ComponentExternalKind::Component => Item::Component(index),
            ComponentExternalKind::Instance => Item::Instance(index),
            _ => Item::Other,
        }
    }
}

/// Every component definition in `bytes` (the outermost first), or `None` if it does not parse.
fn parse(bytes: &[u8]) -> Option<Vec<Def>> {
    enum Frame {
        Component(usize),
        Module,
    }
    let mut defs: Vec<Def> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.ok()?;
        let current = match stack.last() {
            Some(Frame::Component(id)) => Some(*id),
            _ => None,
        };
        match payload {
            Payload::Version { encoding: Encoding::Component, .. } => {
                defs.push(Def::default());
                let id = defs.len() - 1;
                if let Some(parent) = current {
                    defs[parent].ops.push(Op::Component(ComponentSource::Nested(id)));
                }
                stack.push(Frame::Component(id));
            }
            Payload::Version { .. } => stack.push(Frame::Module),
            Payload::End(_) => drop(stack.pop()),
            _ => {
                let Some(id) = current else { continue };
                let def = &mut defs[id];
                match payload {
                    Payload::InstanceSection(reader) => {
                        for instance in reader {
                            if let Instance::Instantiate { .. } = instance.ok()? {
                                def.ops.push(Op::CoreInstance);
                            }
                        }
                    }
                    Payload::ComponentInstanceSection(reader) => {
                        for instance in reader {
                            let source = match instance.ok()? {
                                ComponentInstance::Instantiate { component_index, args } => {
                                    InstanceSource::Instantiate {
                                        component: component_index,
                                        args: args
                                            .iter()
                                            .map(|a| (a.name.to_string(), Item::new(a.kind, a.index)))
                                            .collect(),
                                    }
                                }
                                ComponentInstance::FromExports(exports) => InstanceSource::FromExports(
                                    exports
                                        .iter()
                                        .map(|e| (e.name.name.to_string(), Item::new(e.kind, e.index)))
                                        .collect(),
                                ),
                            };
                            def.ops.push(Op::Instance(source));
                        }
                    }
                    Payload::ComponentAliasSection(reader) => {
                        for alias in reader {
                            match alias.ok()? {
                                ComponentAlias::InstanceExport { kind, instance_index, name } => {
                                    let (instance, name) = (instance_index, name.to_string());
                                    match kind {
                                        ComponentExternalKind::Component => def
                                            .ops
                                            .push(Op::Component(ComponentSource::InstanceExport { instance, name })),
                                        ComponentExternalKind::Instance => def
                                            .ops
                                            .push(Op::Instance(InstanceSource::InstanceExport { instance, name })),
                                        _ => {}
                                    }
                                }
                                ComponentAlias::Outer { kind: ComponentOuterAliasKind::Component, count, index } => {
                                    def.ops.push(Op::Component(ComponentSource::Outer { count, index }));
                                }
                                _ => {}
                            }
                        }
                    }
                    Payload::ComponentImportSection(reader) => {
                        for import in reader {
                            let import = import.ok()?;
                            let name = import.name.name.to_string();
                            match import.ty {
                                ComponentTypeRef::Component(_) => {
                                    def.ops.push(Op::Component(ComponentSource::Import(name)))
                                }
                                ComponentTypeRef::Instance(_) => {
                                    def.ops.push(Op::Instance(InstanceSource::Import(name)))
                                }
                                _ => {}
                            }
                        }
                    }
                    Payload::ComponentExportSection(reader) => {
                        for export in reader {
                            let export = export.ok()?;
                            let item = Item::new(export.kind, export.index);
                            match item {
                                Item::Component(index) => def.ops.push(Op::Component(ComponentSource::Export(index))),
                                Item::Instance(index) => def.ops.push(Op::Instance(InstanceSource::Export(index))),
                                Item::Other => {}
                            }
                            def.exports.push((export.name.name.to_string(), item));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Some(defs)
}

/// A component or instance as the walk sees it; `Opaque` for what it cannot resolve.
#[derive(Clone)]
enum Value {
    Component(Rc<Closure>),
    Instance(Rc<HashMap<String, Value>>),
    Opaque,
}

/// A component definition with the scope it was defined in (for outer aliases).
struct Closure {
    def: usize,
    scope: Option<Rc<Scope>>,
}

/// One instantiation's component index space, and the one it is nested in.
struct Scope {
    components: RefCell<Vec<Value>>,
    parent: Option<Rc<Scope>>,
}

struct Walk<'a> {
    defs: &'a [Def],
    core_instances: usize,
    max_core_instances: usize,
    steps: usize,
}

impl Walk<'_> {
    /// Counts `units` of work (an index-space entry, or an argument or export resolved).
    fn charge(&mut self, units: usize) -> Result<(), Expansion> {
        self.steps = self.steps.saturating_add(units);
        if self.steps > MAX_STEPS { Err(Expansion::Steps) } else { Ok(()) }
    }

    /// Instantiates definition `def` with `args` in `outer`: returns its exports as an instance.
    fn instantiate(
        &mut self,
        def: usize,
        args: &HashMap<String, Value>,
        outer: Option<Rc<Scope>>,
        depth: usize,
    ) -> Result<Value, Expansion> {
        if depth > MAX_DEPTH {
            return Err(Expansion::Depth);
        }
        let Some(definition) = self.defs.get(def) else { return Ok(Value::Opaque) };
        let scope = Rc::new(Scope { components: RefCell::new(Vec::new()), parent: outer });
        let mut instances: Vec<Value> = Vec::new();
        let component_at = |index: u32| scope.components.borrow().get(index as usize).cloned().unwrap_or(Value::Opaque);
        let export_of = |instance: Option<&Value>, name: &str| match instance {
            Some(Value::Instance(exports)) => exports.get(name).cloned().unwrap_or(Value::Opaque),
            _ => Value::Opaque,
        };
        self.charge(definition.exports.len())?;
        for op in &definition.ops {
            self.charge(match op {
                Op::Instance(InstanceSource::Instantiate { args: items, .. } | InstanceSource::FromExports(items)) => {
                    1 + items.len()
                }
                _ => 1,
            })?;
            match op {
                Op::CoreInstance => {
                    self.core_instances += 1;
                    if self.core_instances > self.max_core_instances {
                        return Err(Expansion::CoreInstances(self.max_core_instances));
                    }
                }
                Op::Component(source) => {
                    let value = match source {
                        ComponentSource::Nested(id) => {
                            Value::Component(Rc::new(Closure { def: *id, scope: Some(scope.clone()) }))
                        }
                        ComponentSource::Import(name) => args.get(name).cloned().unwrap_or(Value::Opaque),
                        ComponentSource::Outer { count, index } => {
                            let mut target = Some(scope.clone());
                            for _ in 0..*count {
                                target = target.and_then(|s| s.parent.clone());
                            }
                            target
                                .and_then(|s| s.components.borrow().get(*index as usize).cloned())
                                .unwrap_or(Value::Opaque)
                        }
                        ComponentSource::InstanceExport { instance, name } => {
                            export_of(instances.get(*instance as usize), name)
                        }
                        ComponentSource::Export(index) => component_at(*index),
                    };
                    scope.components.borrow_mut().push(value);
                }
                Op::Instance(source) => {
                    let resolve = |items: &[(String, Item)], instances: &[Value]| -> HashMap<String, Value> {
                        let mut map = HashMap::new();
                        for (name, item) in items {
                            let value = match item {
                                Item::Component(index) => component_at(*index),
                                Item::Instance(index) => {
                                    instances.get(*index as usize).cloned().unwrap_or(Value::Opaque)
                                }
                                Item::Other => Value::Opaque,
                            };
                            map.insert(name.clone(), value);
                        }
                        map
                    };
                    let value = match source {
                        InstanceSource::Instantiate { component, args } => match component_at(*component) {
                            Value::Component(closure) => {
                                let args = resolve(args, &instances);
                                self.instantiate(closure.def, &args, closure.scope.clone(), depth + 1)?
                            }
                            _ => Value::Opaque,
                        },
                        InstanceSource::FromExports(items) => Value::Instance(Rc::new(resolve(items, &instances))),
                        InstanceSource::Import(name) => args.get(name).cloned().unwrap_or(Value::Opaque),
                        InstanceSource::InstanceExport { instance, name } => {
                            export_of(instances.get(*instance as usize), name)
                        }
                        InstanceSource::Export(index) => {
                            instances.get(*index as usize).cloned().unwrap_or(Value::Opaque)
                        }
                    };
                    instances.push(value);
                }
            }
        }
        let mut exports = HashMap::new();
        for (name, item) in &definition.exports {
            let value = match item {
                Item::Component(index) => component_at(*index),
                Item::Instance(index) => instances.get(*index as usize).cloned().unwrap_or(Value::Opaque),
                Item::Other => Value::Opaque,
            };
            exports.insert(name.clone(), value);
        }
        Ok(Value::Instance(Rc::new(exports)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` core instances of an empty module.
    fn core_instances(count: usize) -> String {
        "(core module $empty) ".to_string() + &"(core instance (instantiate $empty)) ".repeat(count)
    }

    fn check_wat(wat: &str) -> Result<(), Expansion> {
        check(&wat::parse_str(wat).unwrap(), 1_000)
    }

    /// Nests `depth` levels, each instantiating the one inside `fanout` times.
    fn nested(depth: usize, fanout: usize, leaf: &str) -> String {
        let mut level = leaf.to_string();
        for _ in 0..depth {
            level = format!("(component $c {level}) ") + &"(instance (instantiate $c)) ".repeat(fanout);
        }
        format!("(component {level})")
    }

    #[test]
    fn counts_what_instantiation_would_create() {
        assert_eq!(check_wat(&format!("(component {})", core_instances(1_000))), Ok(()));
        assert_eq!(check_wat(&nested(2, 10, &core_instances(10))), Ok(()));
        assert_eq!(check_wat(&nested(3, 10, &core_instances(1))), Ok(()));
        assert_eq!(check_wat(&nested(1, 40, &core_instances(50))), Err(Expansion::CoreInstances(1_000)));
        assert_eq!(check_wat(&nested(3, 10, &core_instances(2))), Err(Expansion::CoreInstances(1_000)));
    }

    #[test]
    fn exponential_nesting_stops_early() {
        // 10^30 core instances: refused after about a thousand.
        assert_eq!(check_wat(&nested(30, 10, &core_instances(1))), Err(Expansion::CoreInstances(1_000)));
        // No core instances at all, yet 2^40 component instances to flatten.
        assert_eq!(check_wat(&nested(40, 2, "")), Err(Expansion::Steps));
        // A thousand instantiations of a component that bundles 5,000 exports in one instance.
        let exports: String = (0..5_000).map(|i| format!(r#"(export "e{i}" (instance $i)) "#)).collect();
        let wide = format!("(component $w (instance $i) (instance {exports})) (instance (instantiate $w))");
        assert_eq!(check_wat(&nested(3, 10, &wide)), Err(Expansion::Steps));
        assert_eq!(check_wat(&nested(1, 10, &wide)), Ok(()));
    }

    #[test]
    fn follows_arguments_aliases_and_exports() {
        let big = format!("(component $big {})", core_instances(600));
        // A component instantiating its imported component twice, given the big one.
        let by_argument = format!(
            r#"(component
                {big}
                (component $twice
                    (import "c" (component $c))
                    (instance (instantiate $c))
                    (instance (instantiate $c)))
                (instance (instantiate $twice (with "c" (component $big)))))"#
        );
        assert_eq!(check_wat(&by_argument), Err(Expansion::CoreInstances(1_000)));
        // The same through an instance argument and an outer alias.
        let by_instance = format!(
            r#"(component
                {big}
                (instance $bag (export "c" (component $big)))
                (component $twice
                    (import "bag" (instance $bag (export "c" (component))))
                    (alias export $bag "c" (component $c))
                    (instance (instantiate $c))
                    (component $inner (alias outer $twice $c (component $cc)) (instance (instantiate $cc)))
                    (instance (instantiate $inner)))
                (instance (instantiate $twice (with "bag" (instance $bag)))))"#
        );
        assert_eq!(check_wat(&by_instance), Err(Expansion::CoreInstances(1_000)));
        // Exported by an instance it was nested in.
        let by_export = format!(
            r#"(component
                (component $outer {big} (export "big" (component $big)))
                (instance $o (instantiate $outer))
                (alias export $o "big" (component $b))
                (instance (instantiate $b))
                (instance (instantiate $b)))"#
        );
        assert_eq!(check_wat(&by_export), Err(Expansion::CoreInstances(1_000)));
    }

    #[test]
    fn garbage_passes_to_the_compiler() {
        assert_eq!(check(b"\0asm\x0d\0\x01\0\xff\xff", 1_000), Ok(()));
        assert_eq!(check(b"", 1_000), Ok(()));
    }
}
