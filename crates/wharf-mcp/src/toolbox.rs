//! Calls tools in their sandboxes: a fresh instance per call, or, for a component that exports
//! resources, one instance per session whose handles live as long as the session.
//!
//! Components given on the command line are the [`Toolbox`]'s and every session sees them;
//! components a client loads (`wharf.load`) belong to the loading [`Session`] alone: no other
//! session sees, calls or unloads them, and they go when the session ends.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;
use wasmtime::component::{Component, Instance, InstancePre, ResourceAny, Val};
use wharf_host::{HostState, RunError, Sandbox, Stdio, WharfEngine};

use crate::catalog::{Catalog, Function, ToolNames, catalog, tool_name};
use crate::docs::PackageDocs;
use crate::talk::Talk;
use crate::value::{ArgError, Handles, from_json, to_json};

/// Calls running at once across all sessions; more fail at once (as `serve` answers 503).
const MAX_CONCURRENT_CALLS: usize = 64;
/// Session instances (of components with resources) alive at once across all sessions: each
/// may hold up to its memory limit, so sessions cannot multiply host memory without bound.
const MAX_LIVE_INSTANCES: usize = 64;

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
        // The engine that compiled it (a concurrent component's types live there).
        let catalog = catalog(engine.for_component(component).engine(), component, &name, &docs);
        let sandbox = sandbox.with_label(&name);
        ToolComponent { name, pre, sandbox, catalog }
    }

    /// Whether calls share one instance per session (the component exports resources).
    pub fn is_stateful(&self) -> bool {
        !self.catalog.resources.is_empty()
    }
}

/// How a call ended.
#[derive(Debug)]
pub enum Outcome {
    /// The function returned: its result as JSON, `None` when it returns nothing.
    Returned(Option<Value>),
    /// The function returned `err(...)` (a top-level `result`): the whole result as JSON.
    ErrResult(Value),
    /// The arguments do not fit the tool's schema.
    Invalid(ArgError),
    /// The guest trapped, timed out, ran out of memory, or could not be instantiated.
    Failed(Failure),
}

/// Why a call did not return.
#[derive(Debug)]
pub struct Failure {
    /// What happened to the guest (trap, timeout, memory limit, host error).
    pub error: RunError,
    /// Set when the session's instance was thrown away with its handles.
    pub reset: Option<String>,
}

impl From<RunError> for Failure {
    fn from(error: RunError) -> Self {
        Failure { error, reset: None }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reset {
            None => write!(f, "{}", self.error),
            Some(reset) => write!(f, "{} ({reset})", self.error),
        }
    }
}

/// Every loaded component's tools, callable by name. Components can be added and removed
/// while serving (`--allow-load`); calls see a consistent snapshot.
pub struct Toolbox {
    engine: WharfEngine,
    snapshot: RwLock<Arc<Tools>>,
    next_id: AtomicU64,
    calls: Semaphore,
    live_instances: Arc<Semaphore>,
    names: ToolNames,
}

/// The tools at one moment: an immutable snapshot, replaced whole by a load or unload.
#[derive(Default)]
pub struct Tools {
    components: Vec<Arc<Entry>>,
    // Tool name -> (component, function) indices.
    by_name: HashMap<String, (usize, usize)>,
}

struct Entry {
    // Keys a session's instance; never reused, so an unloaded component's instance is never
    // mistaken for its successor's.
    id: u64,
    component: ToolComponent,
    // `Some` for a component a session loaded (what it holds of the load cap); `None` for one
    // given on the command line, which can never be unloaded.
    load: Option<OwnedSemaphorePermit>,
}

impl Tools {
    /// Every tool, in component then export order.
    pub fn functions(&self) -> impl Iterator<Item = &Function> {
        self.components.iter().flat_map(|e| e.component.catalog.functions.iter())
    }

    /// The loaded components, in load order.
    pub fn components(&self) -> impl Iterator<Item = &ToolComponent> {
        self.components.iter().map(|e| &e.component)
    }

    /// Tool `name`: its component and function.
    pub fn get(&self, name: &str) -> Option<(&ToolComponent, &Function)> {
        let &(c, f) = self.by_name.get(name)?;
        let component = &self.components[c].component;
        Some((component, &component.catalog.functions[f]))
    }

    /// These tools plus `component`'s, and the name its tools start with: its own, or
    /// `name-2`, `name-3`, ... if taken, so every tool name is unique and stable for the same
    /// arguments.
    fn with(
        &self,
        mut component: ToolComponent,
        names: ToolNames,
        id: u64,
        load: Option<OwnedSemaphorePermit>,
    ) -> (Tools, String) {
        let taken = |name: &str| self.components.iter().any(|e| e.component.name == name);
        // (Components served without a prefix keep their names; clashes are numbered below.)
        if !component.name.is_empty() && taken(&component.name) {
            let base = component.name.clone();
            let renamed = (2..).map(|n| format!("{base}-{n}")).find(|n| !taken(n)).expect("a free name");
            for f in &mut component.catalog.functions {
                f.name = tool_name(&format!("{renamed}.{}", &f.name[base.len() + 1..]));
            }
            component.name = renamed;
        }
        let mut by_name = self.by_name.clone();
        let index = self.components.len();
        for (f, function) in component.catalog.functions.iter_mut().enumerate() {
            // Two interfaces of the same short name in one component: number the later.
            function.name = names.apply(&function.name);
            let base = function.name.clone();
            let mut n = 1;
            // Management tools (`wharf.load`, ...) keep their names whether or not loading is on.
            while by_name.contains_key(&function.name) || crate::manage::reserved(&function.name) {
                n += 1;
                function.name = names.apply(&tool_name(&format!("{base}-{n}")));
            }
            by_name.insert(function.name.clone(), (index, f));
        }
        for skipped in &component.catalog.skipped {
            tracing::info!(component = %component.name, "not a tool: {skipped}");
        }
        let name = component.name.clone();
        let mut components = self.components.clone();
        components.push(Arc::new(Entry { id, component, load }));
        (Tools { components, by_name }, name)
    }

    /// These tools without the loaded component `name`'s.
    fn without(&self, name: &str) -> Result<Tools, Unload> {
        let Some(index) = self.components.iter().position(|e| e.component.name == name) else {
            return Err(Unload::NotLoaded);
        };
        if self.components[index].load.is_none() {
            return Err(Unload::CommandLine);
        }
        let mut components = self.components.clone();
        components.remove(index);
        let mut by_name = HashMap::new();
        for (c, entry) in components.iter().enumerate() {
            for (f, function) in entry.component.catalog.functions.iter().enumerate() {
                by_name.insert(function.name.clone(), (c, f));
            }
        }
        Ok(Tools { components, by_name })
    }
}

/// Why [`Session::unload`] refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Unload {
    /// The session has loaded no component of that name (another session's are invisible).
    NotLoaded,
    /// The component was given on the command line.
    CommandLine,
}

impl Toolbox {
    /// Gathers the tools of `components` (see [`Toolbox::add`] for naming).
    pub fn new(engine: WharfEngine, components: Vec<ToolComponent>) -> Self {
        Self::with_names(engine, ToolNames::default(), components)
    }

    /// How tool names are spelled (`--tool-names`).
    pub fn tool_names(&self) -> ToolNames {
        self.names
    }

    /// The same with tool names spelled `names` way.
    pub fn with_names(engine: WharfEngine, names: ToolNames, components: Vec<ToolComponent>) -> Self {
        let toolbox = Toolbox {
            engine,
            snapshot: RwLock::default(),
            next_id: AtomicU64::new(0),
            calls: Semaphore::new(MAX_CONCURRENT_CALLS),
            live_instances: Arc::new(Semaphore::new(MAX_LIVE_INSTANCES)),
            names,
        };
        for component in components {
            toolbox.add(component);
        }
        toolbox
    }

    /// The engine components run on.
    pub fn engine(&self) -> &WharfEngine {
        &self.engine
    }

    /// The current tools.
    pub fn snapshot(&self) -> Arc<Tools> {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds a command-line `component` (see [`Tools::with`] for naming); returns its name.
    pub fn add(&self, component: ToolComponent) -> String {
        let mut guard = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tools, name) = guard.with(component, self.names, id, None);
        *guard = Arc::new(tools);
        name
    }

    /// A new session: its own instances of stateful components, its own handles.
    pub fn session(self: &Arc<Self>) -> Session {
        Session { toolbox: self.clone(), live: StdMutex::default(), own: RwLock::default() }
    }
}

/// One client's view of the toolbox. Dropping it drops its instances and handles.
pub struct Session {
    toolbox: Arc<Toolbox>,
    // Per component id: the session's instance, for components that export resources.
    live: StdMutex<HashMap<u64, Arc<Mutex<Option<Live>>>>>,
    // With components this session loaded: the command-line ones plus those. `None` until it
    // loads one (the toolbox's snapshot is its view).
    own: RwLock<Option<Arc<Tools>>>,
}

struct Live {
    store: Store<HostState>,
    instance: Instance,
    handles: HandleTable,
    _slot: OwnedSemaphorePermit,
}

/// Who a call is for: its line back to the client, and the signal that the client gave up.
#[derive(Clone, Default)]
pub struct Caller {
    /// What `wharf:mcp/context` reaches (nothing by default).
    pub talk: Talk,
    /// Cancelled when the client cancels the call (`notifications/cancelled`): the guest stops.
    pub cancel: tokio_util::sync::CancellationToken,
}

impl Session {
    /// The tools this session sees: the command line's and those it loaded.
    pub fn snapshot(&self) -> Arc<Tools> {
        match &*self.own.read().unwrap_or_else(|e| e.into_inner()) {
            Some(own) => own.clone(),
            None => self.toolbox.snapshot(),
        }
    }

    /// Adds `component`, loaded by this session, to this session's tools (named as by
    /// [`Toolbox::add`], among the tools it sees); `load` is its share of the load cap, held
    /// until it is unloaded or the session ends. Returns its name.
    pub fn load(&self, component: ToolComponent, load: OwnedSemaphorePermit) -> String {
        let mut own = self.own.write().unwrap_or_else(|e| e.into_inner());
        let current = own.clone().unwrap_or_else(|| self.toolbox.snapshot());
        let id = self.toolbox.next_id.fetch_add(1, Ordering::Relaxed);
        let (tools, name) = current.with(component, self.toolbox.names, id, Some(load));
        *own = Some(Arc::new(tools));
        name
    }

    /// Removes component `name`, which this session must have loaded.
    pub fn unload(&self, name: &str) -> Result<(), Unload> {
        let mut own = self.own.write().unwrap_or_else(|e| e.into_inner());
        let current = own.clone().unwrap_or_else(|| self.toolbox.snapshot());
        *own = Some(Arc::new(current.without(name)?));
        Ok(())
    }

    /// The handles this session's instances hold now (for the server-held instances of
    /// stateless clients, which index them).
    pub(crate) async fn handles(&self) -> Vec<String> {
        let slots: Vec<_> = self.live.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        let mut handles = Vec::new();
        for slot in slots {
            if let Some(live) = &*slot.lock().await {
                handles.extend(live.handles.live.keys().cloned());
            }
        }
        handles
    }

    /// Calls tool `name` with `args`; `None` if there is no such tool.
    pub async fn call(&self, name: &str, args: &Map<String, Value>) -> Option<Outcome> {
        self.call_as(name, args, &Caller::default()).await
    }

    /// Calls tool `name` with `args` for `caller`; `None` if there is no such tool.
    pub async fn call_as(&self, name: &str, args: &Map<String, Value>, caller: &Caller) -> Option<Outcome> {
        let tools = self.snapshot();
        let &(c, f) = tools.by_name.get(name)?;
        let entry = &tools.components[c];
        let component = &entry.component;
        let function = &component.catalog.functions[f];
        // A call that cannot start fails now rather than wait: over HTTP a waiting call keeps its
        // connection busy (never closed to make room), so a client with many connections and
        // slow calls locked every other client out for (its calls / 64) timeouts in a row.
        let Ok(_permit) = self.toolbox.calls.try_acquire() else {
            let busy = format!("the server is running its maximum of {MAX_CONCURRENT_CALLS} tool calls; try again");
            return Some(Outcome::Failed(RunError::Host(busy).into()));
        };
        Some(if component.is_stateful() {
            let slot = self.slot(entry.id, &tools);
            // Calls of one session on its instance take turns, each waiting at most one timeout.
            let wait = component.sandbox.timeout().unwrap_or(Duration::from_secs(30));
            let Ok(mut slot) = tokio::time::timeout(wait, slot.lock()).await else {
                let busy =
                    format!("this session's instance of {} was busy with other calls for {wait:?}", component.name);
                return Some(Outcome::Failed(RunError::Host(busy).into()));
            };
            let outcome = self.call_stateful(component, function, args, caller, &mut slot).await;
            // A trap or timeout leaves the instance unusable: start over on the next call.
            match outcome {
                Outcome::Failed(failure) if slot.take().is_some() => Outcome::Failed(Failure {
                    reset: Some(format!(
                        "this session's instance of {} was reset: its handles are gone",
                        component.name
                    )),
                    ..failure
                }),
                outcome => outcome,
            }
        } else {
            self.call_fresh(component, function, args, caller).await
        })
    }

    /// The session's instance slot for component `id`; slots of unloaded components go.
    fn slot(&self, id: u64, tools: &Tools) -> Arc<Mutex<Option<Live>>> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|known, _| *known == id || tools.components.iter().any(|e| e.id == *known));
        live.entry(id).or_default().clone()
    }

    async fn call_fresh(
        &self,
        component: &ToolComponent,
        function: &Function,
        args: &Map<String, Value>,
        caller: &Caller,
    ) -> Outcome {
        let mut handles = HandleTable::default();
        let params = match read_args(component, function, args, &mut handles) {
            Ok(params) => params,
            Err(e) => return Outcome::Invalid(e),
        };
        let mut store = match component.sandbox.store(
            &self.toolbox.engine.for_component(component.pre.component()),
            &[],
            Stdio::Log,
        ) {
            Ok(store) => store,
            Err(e) => return Outcome::Failed(RunError::Sandbox(e).into()),
        };
        caller.talk.attach(store.data_mut());
        let call = async |store: &mut Store<HostState>| {
            let instance = component.pre.instantiate_async(&mut *store).await?;
            invoke(store, &instance, function, params).await
        };
        let result = cancellable(&caller.cancel, component.sandbox.call(&mut store, call)).await;
        finish(component, function, result, &store, &mut handles)
    }

    async fn call_stateful(
        &self,
        component: &ToolComponent,
        function: &Function,
        args: &Map<String, Value>,
        caller: &Caller,
        slot: &mut Option<Live>,
    ) -> Outcome {
        // A session's first call is checked before an instance exists: bad arguments must not
        // cost an instance (no handle can be valid yet, so an empty table decides).
        let (live, params) = match slot {
            Some(live) => match read_args(component, function, args, &mut live.handles) {
                Ok(params) => (live, params),
                Err(e) => return Outcome::Invalid(e),
            },
            None => {
                let mut handles = HandleTable::default();
                let params = match read_args(component, function, args, &mut handles) {
                    Ok(params) => params,
                    Err(e) => return Outcome::Invalid(e),
                };
                let Ok(permit) = self.toolbox.live_instances.clone().try_acquire_owned() else {
                    let busy =
                        format!("too many sessions hold an instance ({MAX_LIVE_INSTANCES}); try again when one ends");
                    return Outcome::Failed(RunError::Host(busy).into());
                };
                let mut store = match component.sandbox.store(
                    &self.toolbox.engine.for_component(component.pre.component()),
                    &[],
                    Stdio::Log,
                ) {
                    Ok(store) => store,
                    Err(e) => return Outcome::Failed(RunError::Sandbox(e).into()),
                };
                let instantiate = async |store: &mut Store<HostState>| component.pre.instantiate_async(store).await;
                let instance = match cancellable(&caller.cancel, component.sandbox.call(&mut store, instantiate)).await
                {
                    Ok(instance) => instance,
                    Err(e) => return Outcome::Failed(with_stderr(e, &store).into()),
                };
                (slot.insert(Live { store, instance, handles, _slot: permit }), params)
            }
        };
        caller.talk.attach(live.store.data_mut());
        let call = async |store: &mut Store<HostState>| invoke(store, &live.instance, function, params).await;
        let result = cancellable(&caller.cancel, component.sandbox.call(&mut live.store, call)).await;
        live.store.data_mut().set_extension(None);
        finish(component, function, result, &live.store, &mut live.handles)
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
        return Err(ArgError { path: unknown.clone(), message: "unknown field".into() });
    }
    let mut params = Vec::with_capacity(function.params.len());
    for (name, ty) in &function.params {
        let Some(value) = args.get(name) else {
            handles.pending.clear();
            return Err(ArgError { path: name.clone(), message: "missing field".into() });
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
    if func.ty(&*store).async_() {
        // An `async func` (component-model async ABI) runs as a task on the store's event loop;
        // the call returns when the task returns its value.
        store.run_concurrent(async |accessor| func.call_concurrent(accessor, &params, &mut results).await).await??;
    } else {
        func.call_async(&mut *store, &params, &mut results).await?;
    }
    Ok(results.pop())
}

/// Stops `call` when the client cancels it (dropping it, as its timeout does).
async fn cancellable<T>(
    cancel: &tokio_util::sync::CancellationToken,
    call: impl Future<Output = Result<T, RunError>>,
) -> Result<T, RunError> {
    tokio::select! {
        result = call => result,
        () = cancel.cancelled() => Err(RunError::Host("cancelled by the client".into())),
    }
}

fn finish(
    component: &ToolComponent,
    function: &Function,
    result: Result<Option<Val>, RunError>,
    store: &Store<HostState>,
    handles: &mut HandleTable,
) -> Outcome {
    match result {
        Err(e) => Outcome::Failed(with_stderr(e, store).into()),
        Ok(None) => Outcome::Returned(None),
        Ok(Some(val)) => {
            let is_err = matches!(val, Val::Result(Err(_)));
            let ty = function.result.as_ref().expect("a value means a result type");
            let json = to_json(ty, val, &component.catalog.resources, handles);
            if is_err { Outcome::ErrResult(json) } else { Outcome::Returned(Some(json)) }
        }
    }
}

/// What the guest said last (a panic's text) is the useful part of a trap. Only here: the MCP
/// client is the one calling the tool, whereas `wharf serve` answers strangers.
fn with_stderr(error: RunError, store: &Store<HostState>) -> RunError {
    match error {
        RunError::Trap(trap) => RunError::Trap(match store.data().stderr_tail() {
            Some(said) => format!("{trap} (guest stderr: {said})"),
            None => trap,
        }),
        error => error,
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
                "unknown handle `{handle}`: a handle is valid only for the session or client it was \
                 issued to, until it is passed as an owned argument or expires"
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
