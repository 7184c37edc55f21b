//! Server-held instances for stateless clients (protocol `2026-07-28`, which has no sessions).
//!
//! A component that exports resources keeps state in an instance, and its handles name
//! resources of that instance. Without a session to hang the instance on, the handles
//! themselves address it: a call whose arguments carry no handle runs in a fresh instance,
//! which is kept only if the call returned handles; a call that passes handles runs in the
//! instance that minted them (handles of two instances in one call are refused). Handles are
//! 128-bit random strings, bound to the client they were issued to ([`Client`]): from any other
//! client they are unknown, with the same message as a handle that never existed.
//!
//! An instance goes when its last handle is consumed, when a call traps or times out in it, or
//! after [`Held::new`]'s idle time without a call. A client holds at most
//! [`MAX_HELD_PER_CLIENT`] instances; all instances (these and sessions') count against the
//! toolbox's cap on live instances. At a cap the new call fails; nothing in use is evicted.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use wharf_host::RunError;

use crate::toolbox::{Caller, Outcome, Session, Toolbox};
use crate::value::ArgError;

/// Instances one client may hold at once.
pub const MAX_HELD_PER_CLIENT: usize = 16;

/// Who a stateless request comes from: the per-client cap counts, and handles are bound, per
/// client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    /// The one client of a stdio server.
    Stdio,
    /// An HTTP client, by its address (every connection from one address is one client).
    Address(IpAddr),
}

/// The instances held for stateless clients, and the index from handle to instance.
pub(crate) struct Held {
    toolbox: Arc<Toolbox>,
    idle: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    instances: HashMap<u64, Instance>,
    // Every live handle of a held instance -> the instance.
    handles: HashMap<String, u64>,
    next: u64,
}

struct Instance {
    // A session of its own: one instance, its handle table.
    session: Arc<Session>,
    client: Client,
    component: String,
    handles: Vec<String>,
    last: Instant,
    // Calls running in it: an instance in use never expires.
    busy: usize,
}

impl State {
    /// Re-indexes instance `id` after a call: `handles` is what it holds now. An instance
    /// without handles goes (returned, to be dropped outside the lock).
    fn settle(&mut self, id: u64, handles: Vec<String>) -> Option<Instance> {
        let instance = self.instances.get_mut(&id)?;
        instance.busy -= 1;
        instance.last = Instant::now();
        for gone in instance.handles.iter().filter(|h| !handles.contains(h)) {
            self.handles.remove(gone);
        }
        for handle in &handles {
            self.handles.insert(handle.clone(), id);
        }
        instance.handles = handles;
        if instance.handles.is_empty() && instance.busy == 0 { self.instances.remove(&id) } else { None }
    }

    fn remove(&mut self, id: u64) -> Option<Instance> {
        let instance = self.instances.remove(&id)?;
        for handle in &instance.handles {
            self.handles.remove(handle);
        }
        Some(instance)
    }
}

impl Held {
    /// Holds instances of `toolbox`'s components, each for `idle` after its last call; a task
    /// sweeps expired ones while the returned value lives.
    pub(crate) fn new(toolbox: Arc<Toolbox>, idle: Duration) -> Arc<Held> {
        let held = Arc::new(Held { toolbox, idle, state: Mutex::default() });
        let weak = Arc::downgrade(&held);
        let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        tokio::spawn(sweep(weak, every));
        held
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the instances idle for longer than the idle time.
    pub(crate) fn expire(&self) {
        let expired: Vec<Instance> = {
            let mut state = self.state();
            let old: Vec<u64> = state
                .instances
                .iter()
                .filter(|(_, i)| i.busy == 0 && i.last.elapsed() > self.idle)
                .map(|(id, _)| *id)
                .collect();
            old.into_iter().filter_map(|id| state.remove(id)).collect()
        };
        for instance in &expired {
            tracing::debug!(component = %instance.component, handles = instance.handles.len(), "a held instance expired");
        }
    }

    /// Calls tool `name` with `args` for `client`; `None` if there is no such tool.
    pub(crate) async fn call(
        &self,
        name: &str,
        args: &Map<String, Value>,
        caller: &Caller,
        client: Client,
    ) -> Option<Outcome> {
        let component = {
            let tools = self.toolbox.snapshot();
            let (component, _) = tools.get(name)?;
            if !component.is_stateful() {
                // A fresh instance per call anyway: any session will do.
                drop(tools);
                return self.toolbox.session().call_as(name, args, caller).await;
            }
            component.name.clone()
        };
        let target = match self.target(&component, args, client) {
            Ok(target) => target,
            Err(e) => return Some(Outcome::Invalid(e)),
        };
        match target {
            Some((id, session)) => {
                let outcome = session.call_as(name, args, caller).await;
                let handles = session.handles().await;
                let gone = self.state().settle(id, handles);
                drop(gone);
                outcome
            }
            None => {
                let session = Arc::new(self.toolbox.session());
                let outcome = session.call_as(name, args, caller).await?;
                let handles = session.handles().await;
                if handles.is_empty() {
                    return Some(outcome);
                }
                let mut state = self.state();
                let holds = state.instances.values().filter(|i| i.client == client).count();
                if holds >= MAX_HELD_PER_CLIENT {
                    // Its handles die with it, so the result is of no use: an error instead.
                    drop(state);
                    let why = format!(
                        "this client holds {MAX_HELD_PER_CLIENT} instances with live handles already; pass their \
                         handles as owned arguments to release them, or wait until they expire"
                    );
                    return Some(Outcome::Failed(RunError::Host(why).into()));
                }
                let id = state.next;
                state.next += 1;
                for handle in &handles {
                    state.handles.insert(handle.clone(), id);
                }
                let instance = Instance { session, client, component, handles, last: Instant::now(), busy: 0 };
                state.instances.insert(id, instance);
                Some(outcome)
            }
        }
    }

    /// The instance whose handles `args` pass (marked busy), or `None` for a fresh one.
    fn target(
        &self,
        component: &str,
        args: &Map<String, Value>,
        client: Client,
    ) -> Result<Option<(u64, Arc<Session>)>, ArgError> {
        let mut state = self.state();
        let mut found: Option<u64> = None;
        let mut clash: Option<String> = None;
        for (param, value) in args {
            strings(value, &mut |s| {
                let Some(&id) = state.handles.get(s) else { return };
                let instance = &state.instances[&id];
                // Another client's handle, or another component's: unknown here, as the
                // component's own handle table will say.
                if instance.client != client || instance.component != component {
                    return;
                }
                match found {
                    None => found = Some(id),
                    Some(other) if other != id && clash.is_none() => clash = Some(param.clone()),
                    Some(_) => {}
                }
            });
        }
        if let Some(path) = clash {
            let message = "handles of two different instances in one call (each constructor call without \
                           handles makes its own instance; handles of different instances cannot meet)";
            return Err(ArgError { path, message: message.into() });
        }
        Ok(found.and_then(|id| {
            let instance = state.instances.get_mut(&id)?;
            instance.busy += 1;
            instance.last = Instant::now();
            Some((id, instance.session.clone()))
        }))
    }
}

/// Calls `f` with every string inside `value`.
fn strings(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, f)),
        Value::Object(map) => map.values().for_each(|v| strings(v, f)),
        _ => {}
    }
}

async fn sweep(held: Weak<Held>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match held.upgrade() {
            Some(held) => held.expire(),
            None => return,
        }
    }
}
