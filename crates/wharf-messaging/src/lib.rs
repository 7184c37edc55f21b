//! `wasi:messaging` for Wharf: a component sends messages to the subjects its policy grants
//! (`producer.send`, `request-reply.request`), and message triggers hand it messages on the
//! subjects it may subscribe to (the exported `incoming-handler.handle`).
//!
//! The interface is `wasi:messaging@0.2.0-draft`, the proposal's current WIT (WebAssembly/
//! wasi-messaging at f027346, in `wit/`): `types` (resources `client`, `message`, variant
//! `error`), `producer`, `request-reply` and the export `incoming-handler`. It is the only
//! version with `client`/`message` resources; the older drafts (`0.2.0-rc`, with `channel`
//! records and `consumer.subscribe`) are not linked: no released guest toolchain targets them.
//!
//! Brokers ([`broker`]): the in-process [`broker::MemoryBroker`] (the store `default`) and
//! NATS ([`broker::NatsBroker`]), chosen per store in the runtime config. On NATS, a trigger
//! may consume a JetStream stream through a durable consumer instead ([`jetstream`]):
//! at-least-once, with bounded retries and a dead-letter subject.
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wasmtime::Store;
use wasmtime::component::{HasData, InstancePre, Linker, Resource, ResourceTable};
use wharf_capability::HasCapability;

pub mod broker;
mod capability;
pub mod jetstream;
pub mod subject;

use broker::{Broker, BrokerError, Msg};
pub use capability::{
    DEFAULT_STORE, Direction, MessagingCapability, MessagingConfig, MessagingCtx, MessagingGrant, StoreConfig, Stores,
};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasi:messaging/messaging-request-reply",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:messaging/types.client": crate::Client,
            "wasi:messaging/types.message": crate::GuestMessage,
            "wasi:messaging/request-reply.request-options": crate::RequestOptions,
        },
    });
}

use bindings::wasi::messaging::types::Error;

/// The largest payload a guest may build or send (NATS' default `max_payload`).
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// Metadata entries per message at most.
pub const MAX_METADATA: usize = 64;
/// The longest metadata key, and the longest metadata value or content type, in bytes.
const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 4096;
/// Replies one `request` collects at most.
pub const MAX_REPLIES: u32 = 1024;
/// How long a `request` without a timeout waits (the guest's own timeout may stop it sooner).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A guest's connection to one store (`client.connect(name)`).
pub struct Client {
    store: String,
    broker: Arc<Broker>,
}

/// A message a guest holds: built by it, delivered to it, or a reply it received.
pub struct GuestMessage {
    msg: Msg,
    // The broker it came from, where `reply` sends to.
    origin: Option<Arc<Broker>>,
}

/// `request-reply.request-options`.
#[derive(Default)]
pub struct RequestOptions {
    timeout_ms: Option<u32>,
    expected: Option<u32>,
}

/// A borrowed view of one store's messaging state, what [`add_to_linker`]'s getter returns.
pub struct Messaging<'a> {
    ctx: &'a MessagingCtx,
    table: &'a mut ResourceTable,
}

impl<'a> Messaging<'a> {
    /// A view of `ctx` with the store's resource `table`.
    pub fn new(ctx: &'a MessagingCtx, table: &'a mut ResourceTable) -> Self {
        Messaging { ctx, table }
    }

    fn publish_check(&self, store: &str, subject: &str) -> Result<(), Error> {
        subject::check_subject(subject).map_err(|e| Error::Other(format!("invalid subject `{subject}`: {e}")))?;
        if !self.ctx.allows(Direction::Publish, store, subject) {
            return Err(Error::PermissionDenied(format!(
                "publishing to `{subject}` on store `{store}` is not granted"
            )));
        }
        Ok(())
    }
}

fn broker_error(e: BrokerError) -> Error {
    match e {
        BrokerError::Timeout => Error::Timeout,
        BrokerError::Connection(text) => Error::Connection(text),
        BrokerError::Other(text) => Error::Other(text),
    }
}

/// Metadata keys: header-name characters only, so nothing can break a NATS header block; and
/// none of the `Nats-` headers the NATS server acts on (`Nats-Rollup` purges a stream,
/// `Nats-Msg-Id` makes it drop later messages as duplicates, `Nats-Expected-*` rejects them):
/// a component's grant is to send messages to subjects, not to steer the server.
fn check_metadata(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(format!("invalid metadata key: letters, digits, `-`, `_`, `.`, at most {MAX_KEY} bytes"));
    }
    if key.get(..5).is_some_and(|prefix| prefix.eq_ignore_ascii_case("nats-")) {
        return Err(format!("metadata key `{key}`: `Nats-` headers are the NATS server's"));
    }
    check_value(value)
}

fn check_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE || value.chars().any(char::is_control) {
        return Err(format!("invalid metadata value: no control characters, at most {MAX_VALUE} bytes"));
    }
    Ok(())
}

fn check_payload(len: usize) -> wasmtime::Result<()> {
    if len > MAX_PAYLOAD {
        // A guest that builds an oversized message is stopped rather than answered: the
        // constructor and `set-data` have no error to return.
        wasmtime::bail!("message payload of {len} bytes exceeds the limit of {MAX_PAYLOAD}");
    }
    Ok(())
}

impl bindings::wasi::messaging::types::Host for Messaging<'_> {}

impl bindings::wasi::messaging::types::HostClient for Messaging<'_> {
    async fn connect(&mut self, name: String) -> wasmtime::Result<Result<Resource<Client>, Error>> {
        let Some(broker) = self.ctx.broker(&name) else {
            return Ok(Err(Error::PermissionDenied(format!("no messaging grant on store `{name}`"))));
        };
        let client = Client { store: name, broker: broker.clone() };
        Ok(Ok(self.table.push(client)?))
    }

    async fn disconnect(&mut self, _client: Resource<Client>) -> wasmtime::Result<Result<(), Error>> {
        // The connection is the process's, shared; a guest's client only names it.
        Ok(Ok(()))
    }

    async fn drop(&mut self, client: Resource<Client>) -> wasmtime::Result<()> {
        self.table.delete(client)?;
        Ok(())
    }
}

impl bindings::wasi::messaging::types::HostMessage for Messaging<'_> {
    async fn new(&mut self, data: Vec<u8>) -> wasmtime::Result<Resource<GuestMessage>> {
        check_payload(data.len())?;
        let msg = Msg { data: Bytes::from(data), ..Msg::default() };
        Ok(self.table.push(GuestMessage { msg, origin: None })?)
    }

    async fn topic(&mut self, m: Resource<GuestMessage>) -> wasmtime::Result<Option<String>> {
        let msg = &self.table.get(&m)?.msg;
        Ok((!msg.subject.is_empty()).then(|| msg.subject.clone()))
    }

    async fn content_type(&mut self, m: Resource<GuestMessage>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&m)?.msg.content_type.clone())
    }

    async fn set_content_type(&mut self, m: Resource<GuestMessage>, content_type: String) -> wasmtime::Result<()> {
        // No error to return: an unusable content type is dropped (and logged).
        match check_value(&content_type) {
            Ok(()) => self.table.get_mut(&m)?.msg.content_type = Some(content_type),
            Err(e) => tracing::debug!("content type ignored: {e}"),
        }
        Ok(())
    }

    async fn data(&mut self, m: Resource<GuestMessage>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&m)?.msg.data.to_vec())
    }

    async fn set_data(&mut self, m: Resource<GuestMessage>, data: Vec<u8>) -> wasmtime::Result<()> {
        check_payload(data.len())?;
        self.table.get_mut(&m)?.msg.data = Bytes::from(data);
        Ok(())
    }

    async fn metadata(&mut self, m: Resource<GuestMessage>) -> wasmtime::Result<Option<Vec<(String, String)>>> {
        let msg = &self.table.get(&m)?.msg;
        Ok((!msg.metadata.is_empty()).then(|| msg.metadata.clone()))
    }

    async fn add_metadata(&mut self, m: Resource<GuestMessage>, key: String, value: String) -> wasmtime::Result<()> {
        let msg = &mut self.table.get_mut(&m)?.msg;
        if let Err(e) = check_metadata(&key, &value) {
            tracing::debug!("metadata ignored: {e}");
            return Ok(());
        }
        msg.metadata.retain(|(k, _)| *k != key);
        if msg.metadata.len() < MAX_METADATA {
            msg.metadata.push((key, value));
        }
        Ok(())
    }

    async fn set_metadata(&mut self, m: Resource<GuestMessage>, meta: Vec<(String, String)>) -> wasmtime::Result<()> {
        let msg = &mut self.table.get_mut(&m)?.msg;
        msg.metadata = meta.into_iter().filter(|(k, v)| check_metadata(k, v).is_ok()).take(MAX_METADATA).collect();
        Ok(())
    }

    async fn remove_metadata(&mut self, m: Resource<GuestMessage>, key: String) -> wasmtime::Result<()> {
        self.table.get_mut(&m)?.msg.metadata.retain(|(k, _)| *k != key);
        Ok(())
    }

    async fn drop(&mut self, m: Resource<GuestMessage>) -> wasmtime::Result<()> {
        self.table.delete(m)?;
        Ok(())
    }
}

impl bindings::wasi::messaging::producer::Host for Messaging<'_> {
    async fn send(
        &mut self,
        client: Resource<Client>,
        topic: String,
        message: Resource<GuestMessage>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let client = self.table.get(&client)?;
        let (store, broker) = (client.store.clone(), client.broker.clone());
        let message = self.table.delete(message)?;
        if let Err(e) = self.publish_check(&store, &topic) {
            return Ok(Err(e));
        }
        let msg = Msg { subject: topic, reply_to: None, ..message.msg };
        Ok(broker.publish(msg).await.map_err(broker_error))
    }
}

impl bindings::wasi::messaging::request_reply::Host for Messaging<'_> {
    async fn request(
        &mut self,
        client: Resource<Client>,
        topic: String,
        message: Resource<GuestMessage>,
        options: Option<Resource<RequestOptions>>,
    ) -> wasmtime::Result<Result<Vec<Resource<GuestMessage>>, Error>> {
        let client = self.table.get(&client)?;
        let (store, broker) = (client.store.clone(), client.broker.clone());
        let msg = Msg { subject: topic.clone(), reply_to: None, ..self.table.get(&message)?.msg.clone() };
        let options = match options {
            Some(options) => self.table.delete(options)?,
            None => RequestOptions::default(),
        };
        if let Err(e) = self.publish_check(&store, &topic) {
            return Ok(Err(e));
        }
        let timeout = options.timeout_ms.map_or(DEFAULT_REQUEST_TIMEOUT, |ms| Duration::from_millis(ms.into()));
        let expected = options.expected.unwrap_or(1).clamp(1, MAX_REPLIES) as usize;
        let replies = match broker.request(msg, timeout, expected).await {
            Ok(replies) => replies,
            Err(e) => return Ok(Err(broker_error(e))),
        };
        let mut handles = Vec::with_capacity(replies.len());
        for reply in replies {
            handles.push(self.table.push(GuestMessage { msg: reply, origin: Some(broker.clone()) })?);
        }
        Ok(Ok(handles))
    }

    async fn reply(
        &mut self,
        reply_to: Resource<GuestMessage>,
        message: Resource<GuestMessage>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let original = self.table.get(&reply_to)?;
        let (subject, origin) = (original.msg.reply_to.clone(), original.origin.clone());
        let message = self.table.delete(message)?;
        let (Some(subject), Some(broker)) = (subject, origin) else {
            return Ok(Err(Error::Other("the message has no reply subject".into())));
        };
        // Whoever sent the message chose its reply subject: a literal one only (no `_INBOX.>`
        // reaching every requester's inbox at once, no wildcard the grants would not cover).
        if let Err(e) = subject::check_subject(&subject) {
            return Ok(Err(Error::PermissionDenied(format!("replying to `{subject}` is not granted: {e}"))));
        }
        // A reply goes where the requester asked: to a request inbox, or to a subject the
        // component may publish to anyway. Anything else would let any publisher make the
        // component send to a subject it was never granted.
        let granted =
            self.ctx.brokers_store(&broker).is_some_and(|store| self.ctx.allows(Direction::Publish, store, &subject));
        if !subject.starts_with("_INBOX.") && !granted {
            return Ok(Err(Error::PermissionDenied(format!("replying to `{subject}` is not granted"))));
        }
        let msg = Msg { subject, reply_to: None, ..message.msg };
        Ok(broker.publish(msg).await.map_err(broker_error))
    }
}

impl bindings::wasi::messaging::request_reply::HostRequestOptions for Messaging<'_> {
    async fn new(&mut self) -> wasmtime::Result<Resource<RequestOptions>> {
        Ok(self.table.push(RequestOptions::default())?)
    }

    async fn set_timeout_ms(&mut self, options: Resource<RequestOptions>, timeout_ms: u32) -> wasmtime::Result<()> {
        self.table.get_mut(&options)?.timeout_ms = Some(timeout_ms);
        Ok(())
    }

    async fn set_expected_replies(&mut self, options: Resource<RequestOptions>, expected: u32) -> wasmtime::Result<()> {
        self.table.get_mut(&options)?.expected = Some(expected);
        Ok(())
    }

    async fn drop(&mut self, options: Resource<RequestOptions>) -> wasmtime::Result<()> {
        self.table.delete(options)?;
        Ok(())
    }
}

/// Adds the `wasi:messaging@0.2.0-draft` imports (`types`, `producer`, `request-reply`) to
/// `linker`; `getter` returns the view of a store's messaging state.
pub fn add_to_linker<T: 'static + Send>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> Messaging<'_>,
) -> wasmtime::Result<()> {
    bindings::wasi::messaging::types::add_to_linker::<T, HasMessaging>(linker, getter)?;
    bindings::wasi::messaging::producer::add_to_linker::<T, HasMessaging>(linker, getter)?;
    bindings::wasi::messaging::request_reply::add_to_linker::<T, HasMessaging>(linker, getter)?;
    Ok(())
}

struct HasMessaging;

impl HasData for HasMessaging {
    type Data<'a> = Messaging<'a>;
}

/// A component linked for message triggers: one that exports
/// `wasi:messaging/incoming-handler@0.2.0-draft`.
pub struct HandlerPre<T: 'static> {
    pre: bindings::MessagingRequestReplyPre<T>,
}

impl<T: HasCapability<MessagingCapability>> HandlerPre<T> {
    /// Checks that `pre`'s component exports the handler.
    pub fn new(pre: InstancePre<T>) -> wasmtime::Result<Self> {
        Ok(HandlerPre { pre: bindings::MessagingRequestReplyPre::new(pre)? })
    }

    /// Instantiates the component in `store` and hands it `msg`, received from `origin`:
    /// `Ok(Err(text))` when the handler returned an error, `Err` when instantiation or the
    /// call failed (a trap, a limit).
    pub async fn handle(
        &self,
        store: &mut Store<T>,
        msg: Msg,
        origin: Arc<Broker>,
    ) -> wasmtime::Result<Result<(), String>> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        let message = store.data_mut().capability().table.push(GuestMessage { msg, origin: Some(origin) })?;
        let outcome = instance.wasi_messaging_incoming_handler().call_handle(&mut *store, message).await?;
        Ok(outcome.map_err(|e| match e {
            Error::Timeout => "timeout".to_owned(),
            Error::Connection(text) => format!("connection: {text}"),
            Error::PermissionDenied(text) => format!("permission denied: {text}"),
            Error::Other(text) => text,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keys_cannot_steer_nats() {
        assert!(check_metadata("X-Trace", "1").is_ok());
        for key in ["Nats-Rollup", "nats-msg-id", "NATS-Expected-Stream", "Nats-TTL", "a b", "a\r\nb", ""] {
            assert!(check_metadata(key, "all").is_err(), "{key:?}");
        }
        assert!(check_metadata("X-Ok", "a\r\nNats-Rollup: all").is_err());
    }

    #[test]
    fn headers_count_in_the_byte_budget() {
        let msg = Msg { subject: "a.b".into(), metadata: vec![("k".into(), "v".repeat(1000))], ..Msg::default() };
        assert!(msg.size() > 1000, "{}", msg.size());
    }
}
