//! Message triggers (`[[trigger.messaging]]` in `wharf.toml`): each message on a subscribed
//! subject runs the component's `wasi:messaging/incoming-handler` in a fresh sandboxed
//! instance, beside the HTTP server in the same process.
//!
//! Back-pressure: a trigger takes the next message from its subscription only once one of its
//! `max_concurrency` slots is free (its own bound, default [`DEFAULT_TRIGGER_CONCURRENCY`]; the
//! instance pool has room for every trigger's slots beside HTTP's `--max-concurrency`, so
//! neither starves the other), so the only buffer is the subscription's own bounded one
//! (see `wharf_messaging::broker`). Every message gets the component's timeout and memory
//! limit; a failed or timed-out handler is logged and the trigger goes on. With a `stream`,
//! the trigger consumes JetStream at least once instead ([`crate::jetstream`]).
//!
//! A trigger that cannot subscribe (NATS unreachable at start, or the subscription ended)
//! tries again with a doubling back-off, while the rest of the process serves.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::Store;
use wharf_host::{Backends, HostState, RunError, Sandbox, Stdio, WharfEngine};
use wharf_messaging::broker::{Broker, BrokerError};
use wharf_messaging::jetstream::DurableConfig;
use wharf_messaging::{Direction, HandlerPre, MessagingCapability};

/// The first wait before subscribing again.
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// The longest wait before subscribing again.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// A trigger's `max_concurrency` when the manifest sets none: enough to overlap handlers that
/// wait on I/O, few enough that a busy trigger holds a small share of the instance pool.
pub const DEFAULT_TRIGGER_CONCURRENCY: usize = 32;
/// The largest `max_concurrency` a trigger may ask for.
pub const MAX_TRIGGER_CONCURRENCY: usize = 10_000;

/// Failed pulls in a row (each a missed 5s heartbeat at least) before the consumer is opened
/// again.
const MAX_PULL_ERRORS: u32 = 6;

/// One `[[trigger.messaging]]` as written in the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagingTriggerSpec {
    /// The subject pattern (NATS wildcards).
    pub subject: String,
    /// The queue group, if any: each message then goes to one member across processes.
    pub queue: Option<String>,
    /// The store (broker) to subscribe on.
    pub store: String,
    /// The index of the component in the manifest.
    pub component: usize,
    /// JetStream at-least-once settings, when the trigger names a `stream`.
    pub durable: Option<crate::jetstream::DurableSpec>,
    /// Messages this trigger handles at once (`max_concurrency`, default
    /// [`DEFAULT_TRIGGER_CONCURRENCY`]): each holds one instance of its own, apart from the
    /// HTTP requests' `--max-concurrency`.
    pub max_concurrency: usize,
}

/// A `[[trigger.messaging]]` table's fields, borrowed from the manifest.
pub(crate) struct RawSpec<'a> {
    pub subject: &'a str,
    pub queue: Option<&'a str>,
    pub store: Option<&'a str>,
    pub component: &'a str,
    pub max_concurrency: Option<i64>,
    pub durable: crate::jetstream::RawDurable<'a>,
}

/// Checks the triggers' subjects and queue groups and resolves their components; the error
/// names the trigger and the field.
pub(crate) fn parse_triggers(
    raw: &[RawSpec<'_>],
    components: &[crate::ComponentSpec],
) -> Result<Vec<MessagingTriggerSpec>, String> {
    let mut specs = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let at = format!("trigger.messaging[{i}]");
        wharf_messaging::subject::check_pattern(t.subject).map_err(|e| format!("{at}.subject `{}`: {e}", t.subject))?;
        if let Some(queue) = t.queue {
            wharf_messaging::subject::check_subject(queue)
                .ok()
                .filter(|()| !queue.contains('.'))
                .ok_or_else(|| format!("{at}.queue `{queue}`: expected letters, digits, `_`, `-`, `$`"))?;
        }
        let Some(component) = components.iter().position(|c| c.name == t.component) else {
            return Err(format!("{at}: component `{}` is not defined", t.component));
        };
        let max_concurrency = match t.max_concurrency {
            None => DEFAULT_TRIGGER_CONCURRENCY,
            Some(n) if (1..=MAX_TRIGGER_CONCURRENCY as i64).contains(&n) => n as usize,
            Some(n) => {
                return Err(format!("{at}.max_concurrency: must be from 1 to {MAX_TRIGGER_CONCURRENCY}, got {n}"));
            }
        };
        let durable = t.durable.check(&at, t.subject, t.component)?;
        if durable.is_some() && t.queue.is_some() {
            return Err(format!(
                "{at}.queue: a JetStream trigger's durable consumer is shared by every process already; drop `queue`"
            ));
        }
        specs.push(MessagingTriggerSpec {
            subject: t.subject.to_owned(),
            queue: t.queue.map(str::to_owned),
            store: t.store.unwrap_or(wharf_messaging::DEFAULT_STORE).to_owned(),
            component,
            durable,
            max_concurrency,
        });
    }
    crate::jetstream::check_unique(&specs)?;
    Ok(specs)
}

/// A trigger ready to run: the subscription's broker and the linked handler.
pub struct MessagingTrigger {
    name: String,
    spec: MessagingTriggerSpec,
    broker: Arc<Broker>,
    pre: HandlerPre<HostState>,
    // The engine that compiled the component: its stores are made there.
    engine: WharfEngine,
    sandbox: Sandbox,
}

/// Why a trigger cannot run.
#[derive(Debug, thiserror::Error)]
#[error("trigger on `{subject}` for component {component}: {reason}")]
pub struct TriggerError {
    /// The trigger's subject.
    pub subject: String,
    /// The component's name.
    pub component: String,
    /// What is wrong.
    pub reason: String,
}

impl MessagingTrigger {
    /// Checks that the component `name` may subscribe to the trigger's subject on its store
    /// (its policy's `messaging_subscribe` grants) and exports the handler.
    pub fn new(
        name: &str,
        spec: MessagingTriggerSpec,
        pre: wasmtime::component::InstancePre<HostState>,
        sandbox: Sandbox,
        backends: &Backends,
        engine: &WharfEngine,
    ) -> Result<Self, TriggerError> {
        let err = |reason: String| TriggerError { subject: spec.subject.clone(), component: name.into(), reason };
        // Stores are made on the engine that compiled the component.
        let engine = &engine.for_component(pre.component());
        let pre = HandlerPre::new(pre)
            .map_err(|e| err(format!("it does not export `wasi:messaging/incoming-handler@0.2.0-draft` ({e})")))?;
        // The grants as bound in this sandbox: a store shows them.
        let mut store = sandbox.store(engine, &[], Stdio::Null).map_err(|e| err(e.to_string()))?;
        let ctx = wharf_capability::HasCapability::<MessagingCapability>::capability(store.data_mut()).state.clone();
        if !ctx.allows(Direction::Subscribe, &spec.store, &spec.subject) {
            return Err(err(format!(
                "its policy does not grant subscribing to `{}` on store `{}` (add messaging_subscribe = [\"{}{}\"])",
                spec.subject,
                spec.store,
                spec.subject,
                if spec.store == wharf_messaging::DEFAULT_STORE { String::new() } else { format!("={}", spec.store) },
            )));
        }
        let broker = backends
            .get::<MessagingCapability>()
            .and_then(|stores| stores.broker(&spec.store))
            .ok_or_else(|| err(format!("no messaging store named `{}` is configured", spec.store)))?
            .clone();
        if spec.durable.is_some() && !broker.is_nats() {
            return Err(err(format!(
                "`stream` needs a NATS store with JetStream, and store `{}` is the in-process broker",
                spec.store
            )));
        }
        Ok(MessagingTrigger { name: name.into(), spec, broker, pre, sandbox, engine: engine.clone() })
    }

    /// Subscribes and handles messages, at most the trigger's `max_concurrency` at once, for as
    /// long as the process runs: a subscription that cannot be made, or that ends, is made
    /// again after a back-off (0.25s doubling to 10s), logged each time.
    pub async fn run(self: Arc<Self>) {
        let engine = self.engine.clone();
        let max_concurrency = self.spec.max_concurrency.max(1);
        let slots = Arc::new(Semaphore::new(max_concurrency));
        let mut backoff = RETRY_FIRST;
        loop {
            let started = tokio::time::Instant::now();
            let result = match &self.spec.durable {
                None => self.consume(&engine, &slots).await,
                Some(durable) => {
                    let config = durable.config(self.sandbox.timeout(), max_concurrency);
                    self.consume_durable(&engine, &slots, Arc::new(config)).await
                }
            };
            // A subscription that lasted a while starts the back-off afresh.
            if started.elapsed() > RETRY_MAX {
                backoff = RETRY_FIRST;
            }
            let why = match result {
                Ok(()) => "the subscription ended".to_owned(),
                Err(e) => format!("cannot subscribe: {e}"),
            };
            tracing::warn!(subject = %self.spec.subject, component = %self.name, "{why}; retrying in {backoff:?}");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }

    fn subscribed(&self) {
        tracing::info!(subject = %self.spec.subject, queue = ?self.spec.queue, stream = ?self.spec.durable.as_ref().map(|d| &d.stream), component = %self.name, "message trigger subscribed");
    }

    /// Core NATS (or the in-process broker): at most once.
    async fn consume(self: &Arc<Self>, engine: &WharfEngine, slots: &Arc<Semaphore>) -> Result<(), BrokerError> {
        let mut subscription = self.broker.subscribe(&self.spec.subject, self.spec.queue.as_deref()).await?;
        self.subscribed();
        loop {
            // A free slot first, then the next message: a busy trigger leaves messages in the
            // subscription's bounded buffer instead of piling up tasks.
            let Ok(slot) = slots.clone().acquire_owned().await else { return Ok(()) };
            let Some(msg) = subscription.next().await else { return Ok(()) };
            let trigger = self.clone();
            let engine = engine.clone();
            tokio::spawn(async move {
                let _ = trigger.handle_one(&engine, msg).await;
                drop(slot);
            });
        }
    }

    /// JetStream through a durable consumer: at least once, settled by each call's outcome.
    async fn consume_durable(
        self: &Arc<Self>,
        engine: &WharfEngine,
        slots: &Arc<Semaphore>,
        config: Arc<DurableConfig>,
    ) -> Result<(), BrokerError> {
        let mut subscription = self.broker.consume_durable(&self.spec.subject, &config).await?;
        self.subscribed();
        let mut errors = 0;
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else { return Ok(()) };
            let delivery = match subscription.next().await {
                None => return Ok(()),
                // The server is away or slow (a missed heartbeat): async-nats pulls again once
                // it is back. Several in a row: open the consumer again.
                Some(Err(e)) => {
                    errors += 1;
                    tracing::debug!(subject = %self.spec.subject, component = %self.name, "JetStream: {e}");
                    if errors >= MAX_PULL_ERRORS {
                        tracing::warn!(subject = %self.spec.subject, component = %self.name, "JetStream pulls keep failing ({e})");
                        return Ok(());
                    }
                    continue;
                }
                Some(Ok(delivery)) => delivery,
            };
            errors = 0;
            let (trigger, engine, config) = (self.clone(), engine.clone(), config.clone());
            tokio::spawn(async move {
                let msg = delivery.msg();
                crate::jetstream::settle(delivery, &config, &trigger.name, trigger.handle_one(&engine, msg)).await;
                drop(slot);
            });
        }
    }

    /// Runs the handler on `msg` in a fresh store; `Err` says why it did not return `ok`.
    async fn handle_one(&self, engine: &WharfEngine, msg: wharf_messaging::broker::Msg) -> Result<(), String> {
        let subject = msg.subject.clone();
        let mut store = match self.sandbox.store(engine, &[], Stdio::Log) {
            Ok(store) => store,
            Err(e) => {
                tracing::error!(component = %self.name, "cannot build a store: {e}");
                return Err(format!("cannot build a store: {e}"));
            }
        };
        let handle = async |store: &mut Store<HostState>| self.pre.handle(store, msg, self.broker.clone()).await;
        match self.sandbox.call(&mut store, handle).await {
            Ok(Ok(())) => {
                tracing::debug!(component = %self.name, %subject, "message handled");
                Ok(())
            }
            Ok(Err(text)) => {
                tracing::warn!(component = %self.name, %subject, "handler returned an error: {text}");
                Err(text)
            }
            Err(RunError::Timeout(timeout)) => {
                tracing::warn!(component = %self.name, %subject, "handler timed out after {timeout:?}");
                Err(format!("timed out after {timeout:?}"))
            }
            Err(why) => {
                tracing::warn!(component = %self.name, %subject, "handler failed: {why}");
                Err(why.to_string())
            }
        }
    }
}
