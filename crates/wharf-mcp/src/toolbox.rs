//! Calls tools in their sandboxes: a fresh instance per call, or, for a component that exports
//! resources, one instance per session whose handles live as long as the session.
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::{Mutex, Semaphore};
use wasmtime::Store;
use wasmtime::component::{Component, Instance, InstancePre, ResourceAny, Val};
use wharf_host::{HostState, RunError, Sandbox, Stdio, WharfEngine, guest_failure};

use crate::catalog::{Catalog, Function, catalog, tool_name};
use crate::docs::PackageDocs;
use crate::value::{ArgError, Handles, from_json, to_json};

/// Calls running at once across all sessions; more wait their turn.
const MAX_CONCURRENT_CALLS: usize = 64;

/// A component linked and sandboxed, ready to be offered as tools.
pub struct ToolComponent {
    /// Prefix of its tool names: the file stem or reference name.
    pub name: String,
    /// The component linked against the host.
    pub pre: InstancePre<HostState>,
    /// Its policy, made ready.
    pub sandbox: Sandbox,
    /// Its exported functions.
    pub catalog: Catalog,
}

impl ToolComponent {
    /// Describes `component`'s exports as tools named `name.*`. `bytes` are the component's
    /// bytes, read for WIT doc comments.
    pub fn new(
        engine: &WharfEngine,
        name: &str,
        component: &Component,
        bytes: &[u8],
        pre: InstancePre<HostState>,
        sandbox: Sandbox,
    ) -> Self {
        let name = tool_name(name);
        let docs = PackageDocs::from_component(bytes);
        let catalog = catalog(engine.engine(), component, &name, &docs);
        let sandbox = sandbox.with_label(&name);
        ToolComponent { name, pre, sandbox, catalog }
    }

    /// Whether calls share one instance per session (the component exports resources).
    pub fn is_stateful(&self) -> bool {
        !self.catalog.resources.is_empty()
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The function returned: its result as JSON, `None` when it returns nothing.
    Returned(Option<Value>),
    /// The function returned `err(...)` (a top-level `result`): the whole result as JSON.
    ErrResult(Value),
    /// The arguments do not fit the tool's schema.
    Invalid(ArgError),
    /// The guest trapped, timed out, ran out of memory, or could not be instantiated.
    Failed(String),
}

/// Every loaded component's tools, callable by name.
pub struct Toolbox {
    engine: WharfEngine,
    components: Vec<ToolComponent>,
    // Tool name -> (component, function) indices.
    by_name: HashMap<String, (usize, usize)>,
    order: Vec<(usize, usize)>,
    calls: Semaphore,
}

impl Toolbox {
    /// Gathers the tools of `components`. Component names are made unique first (`name`,
    /// `name-2`, ...), so every tool name is unique and stable for the same arguments.
    pub fn new(engine: WharfEngine, mut components: Vec<ToolComponent>) -> Self {
        let mut seen = HashMap::<String, usize>::new();
        for component in &mut components {
            let count = seen.entry(component.name.clone()).or_default();
            *count += 1;
            if *count > 1 {
                let renamed = format!("{}-{count}", component.name);
                let old = format!("{}.", component.name);
                for f in &mut component.catalog.functions {
                    f.name = tool_name(&format!("{renamed}.{}", &f.name[old.len()..]));
                }
                component.name = renamed;
            }
        }
        let mut by_name = HashMap::new();
        let mut order = Vec::new();
        for (c, component) in components.iter_mut().enumerate() {
            for (f, function) in component.catalog.functions.iter_mut().enumerate() {
                // Two interfaces of the same short name in one component: number the later.
                let base = function.name.clone();
                let mut n = 1;
                while by_name.contains_key(&function.name) {
                    n += 1;
                    function.name = tool_name(&format!("{base}-{n}"));
                }
                by_name.insert(function.name.clone(), (c, f));
                order.push((c, f));
            }
            for skipped in &component.catalog.skipped {
                tracing::info!(component = %component.name, "not a tool: {skipped}");
            }
        }
        Toolbox { engine, components, by_name, order, calls: Semaphore::new(MAX_CONCURRENT_CALLS) }
    }

    /// Every tool, in component then export order.
    pub fn functions(&self) -> impl Iterator<Item = &Function> {
        self.order.iter().map(|&(c, f)| &self.components[c].catalog.functions[f])
    }

    /// The loaded components.
    pub fn components(&self) -> &[ToolComponent] {
        &self.components
    }

    /// A new session: its own instances of stateful components, its own handles.
    pub fn session(self: &Arc<Self>) -> Session {
        let live = self.components.iter().map(|_| Mutex::new(None)).collect();
        Session { toolbox: self.clone(), live }
    }
}

/// One client's view of the toolbox. Dropping it drops its instances and handles.
pub struct Session {
    toolbox: Arc<Toolbox>,
    // Per component: the session's instance, for components that export resources.
    live: Vec<Mutex<Option<Live>>>,
}

struct Live {
    store: Store<HostState>,
    instance: Instance,
    handles: HandleTable,
}

impl Session {
    /// Calls tool `name` with `args`; `None` if there is no such tool.
    pub async fn call(&self, name: &str, args: &Map<String, Value>) -> Option<Outcome> {
        let &(c, f) = self.toolbox.by_name.get(name)?;
        let component = &self.toolbox.components[c];
        let function = &component.catalog.functions[f];
        let _permit = self.toolbox.calls.acquire().await.ok()?;
        Some(if component.is_stateful() {
            let mut slot = self.live[c].lock().await;
            let outcome = self.call_stateful(component, function, args, &mut slot).await;
            // A trap or timeout leaves the instance unusable: start over on the next call.
            match outcome {
                Outcome::Failed(message) if slot.take().is_some() => Outcome::Failed(format!(
                    "{message} (this session's instance of {} was reset: its handles are gone)",
                    component.name
                )),
                outcome => outcome,
            }
        } else {
            self.call_fresh(component, function, args).await
        })
    }

    async fn call_fresh(&self, component: &ToolComponent, function: &Function, args: &Map<String, Value>) -> Outcome {
        let mut handles = HandleTable::default();
        let params = match read_args(component, function, args, &mut handles) {
            Ok(params) => params,
            Err(e) => return Outcome::Invalid(e),
        };
        let mut store = match component.sandbox.store(&self.toolbox.engine, &[], Stdio::Log) {
            Ok(store) => store,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let call = async {
            let instance = component.pre.instantiate_async(&mut store).await?;
            invoke(&mut store, &instance, function, params).await
        };
        let result = bounded(&component.sandbox, call).await;
        finish(component, function, result, &mut store, &mut handles)
    }

    async fn call_stateful(
        &self,
        component: &ToolComponent,
        function: &Function,
        args: &Map<String, Value>,
        slot: &mut Option<Live>,
    ) -> Outcome {
        if slot.is_none() {
            let mut store = match component.sandbox.store(&self.toolbox.engine, &[], Stdio::Log) {
                Ok(store) => store,
                Err(e) => return Outcome::Failed(e.to_string()),
            };
            let instance = match bounded(&component.sandbox, component.pre.instantiate_async(&mut store)).await {
                Ok(Ok(instance)) => instance,
                Ok(Err(e)) => return Outcome::Failed(failure(component, &e, &store)),
                Err(timeout) => return Outcome::Failed(timeout.to_string()),
            };
            *slot = Some(Live { store, instance, handles: HandleTable::default() });
        }
        let live = slot.as_mut().expect("instantiated above");
        let params = match read_args(component, function, args, &mut live.handles) {
            Ok(params) => params,
            Err(e) => return Outcome::Invalid(e),
        };
        component.sandbox.restart_deadline(&mut live.store);
        let result = bounded(&component.sandbox, invoke(&mut live.store, &live.instance, function, params)).await;
        finish(component, function, result, &mut live.store, &mut live.handles)
    }
}

/// Converts the arguments object; own handles are taken out only when every argument fits.
fn read_args(
    component: &ToolComponent,
    function: &Function,
    args: &Map<String, Value>,
    handles: &mut HandleTable,
) -> Result<Vec<Val>, ArgError> {
    let resources = &component.catalog.resources;
    if let Some(unknown) = args.keys().find(|k| !function.params.iter().any(|(name, _)| name == *k)) {
        return Err(ArgError { path: unknown.clone(), message: "unknown argument".into() });
    }
    let mut params = Vec::with_capacity(function.params.len());
    for (name, ty) in &function.params {
        let Some(value) = args.get(name) else {
            handles.pending.clear();
            return Err(ArgError { path: name.clone(), message: "missing argument".into() });
        };
        match from_json(ty, value, name, resources, handles) {
            Ok(val) => params.push(val),
            Err(e) => {
                handles.pending.clear();
                return Err(e);
            }
        }
    }
    handles.commit();
    Ok(params)
}

async fn invoke(
    store: &mut Store<HostState>,
    instance: &Instance,
    function: &Function,
    params: Vec<Val>,
) -> wasmtime::Result<Option<Val>> {
    let func = instance
        .get_func(&mut *store, function.export)
        .ok_or_else(|| wasmtime::Error::msg(format!("{} is not a function of this instance", function.name)))?;
    let mut results = vec![Val::Bool(false); usize::from(function.result.is_some())];
    func.call_async(&mut *store, &params, &mut results).await?;
    Ok(results.pop())
}

/// Runs `work` under the sandbox's wall-clock bound too: the epoch deadline stops guest code,
/// this also stops a guest blocked in a host call.
async fn bounded<T>(
    sandbox: &Sandbox,
    work: impl Future<Output = wasmtime::Result<T>>,
) -> Result<wasmtime::Result<T>, RunError> {
    match sandbox.timeout() {
        Some(timeout) => tokio::time::timeout(timeout, work).await.map_err(|_| RunError::Timeout(timeout)),
        None => Ok(work.await),
    }
}

fn finish(
    component: &ToolComponent,
    function: &Function,
    result: Result<wasmtime::Result<Option<Val>>, RunError>,
    store: &mut Store<HostState>,
    handles: &mut HandleTable,
) -> Outcome {
    match result {
        Err(timeout) => Outcome::Failed(timeout.to_string()),
        Ok(Err(e)) => Outcome::Failed(failure(component, &e, store)),
        Ok(Ok(None)) => Outcome::Returned(None),
        Ok(Ok(Some(val))) => {
            let is_err = matches!(val, Val::Result(Err(_)));
            let ty = function.result.as_ref().expect("a value means a result type");
            let json = to_json(ty, val, &component.catalog.resources, handles);
            if is_err { Outcome::ErrResult(json) } else { Outcome::Returned(Some(json)) }
        }
    }
}

fn failure(component: &ToolComponent, e: &wasmtime::Error, store: &Store<HostState>) -> String {
    match guest_failure(e, store.data(), &component.sandbox) {
        Some(failure) => failure.to_string(),
        None => format!("{e:#}").lines().next().unwrap_or_default().to_string(),
    }
}

/// A session's handles: opaque, unguessable names for resources its instance created.
#[derive(Default)]
struct HandleTable {
    live: HashMap<String, (String, ResourceAny)>,
    // Own handles passed in the call being converted, removed once all arguments fit.
    pending: Vec<String>,
}

impl HandleTable {
    fn commit(&mut self) {
        for handle in self.pending.drain(..) {
            self.live.remove(&handle);
        }
    }
}

impl Handles for HandleTable {
    fn mint(&mut self, kind: &str, resource: ResourceAny) -> String {
        let handle = format!("{kind}-{}", uuid::Uuid::new_v4().simple());
        self.live.insert(handle.clone(), (kind.to_string(), resource));
        handle
    }

    fn take(&mut self, kind: &str, handle: &str, own: bool) -> Result<ResourceAny, String> {
        match self.live.get(handle) {
            None => Err(format!(
                "unknown handle `{handle}`: a handle is valid only in the session that created it, \
                 until it is passed as an owned argument"
            )),
            Some((actual, _)) if actual != kind => Err(format!("`{handle}` is a `{actual}` handle, not a `{kind}`")),
            Some(_) if self.pending.iter().any(|h| h == handle) => {
                Err(format!("handle `{handle}` is passed as owned more than once"))
            }
            Some((_, resource)) => {
                if own {
                    self.pending.push(handle.to_string());
                }
                Ok(*resource)
            }
        }
    }
}
