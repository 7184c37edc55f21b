//! Message brokers: the in-process [`MemoryBroker`] (the embedded default, one process) and
//! [`NatsBroker`] (core NATS: subjects, queue groups, request-reply) behind one [`Broker`].
//!
//! Both buffer a bounded number of messages, and of payload bytes, per subscription: when a
//! subscriber falls that far behind, further messages to it are dropped and logged (NATS
//! core's "slow consumer" rule, which the NATS server applies to the connection too). Nothing
//! grows without bound: a NATS subscription's messages are moved off async-nats' own channel
//! as they arrive, so its count-only bound never holds megabytes of payload per message.
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{OnceCell, mpsc};

/// Messages buffered per in-process subscription before further ones are dropped.
pub const MEMORY_SUBSCRIPTION_CAPACITY: usize = 4096;
/// Messages buffered per NATS subscription before further ones are dropped.
pub const NATS_SUBSCRIPTION_CAPACITY: usize = 65_536;
/// Message bytes (payload and headers, [`Msg::size`]) buffered per subscription (either
/// broker) before further messages are dropped: 65,536 messages of up to 1 MiB each would
/// otherwise be 64 GiB.
pub const SUBSCRIPTION_BYTES: usize = 64 * 1024 * 1024;

/// The `content-type` header a message's content type travels in.
pub(crate) const CONTENT_TYPE: &str = "Content-Type";

/// A message as the host moves it: what a guest sent or is handed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Msg {
    /// The subject it was sent to (empty for a message a guest built and has not sent).
    pub subject: String,
    /// Where replies go (request-reply), if anywhere.
    pub reply_to: Option<String>,
    /// The payload.
    pub data: Bytes,
    /// Its content type, if given.
    pub content_type: Option<String>,
    /// Metadata (headers), in order.
    pub metadata: Vec<(String, String)>,
}

impl Msg {
    /// The bytes it holds, as a subscription's byte budget counts them: payload, subject,
    /// reply subject, content type and metadata (a message of large headers and no payload
    /// weighs what its headers do).
    pub fn size(&self) -> usize {
        let metadata: usize = self.metadata.iter().map(|(k, v)| k.len() + v.len() + 16).sum();
        self.data.len()
            + self.subject.len()
            + self.reply_to.as_ref().map_or(0, String::len)
            + self.content_type.as_ref().map_or(0, String::len)
            + metadata
    }
}

/// Why a broker could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No connection to the broker (yet), or it was lost; async-nats keeps reconnecting.
    #[error("connection: {0}")]
    Connection(String),
    /// No reply came in time.
    #[error("timed out")]
    Timeout,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// A subscription: messages in arrival order, bounded (see the module docs).
pub struct Subscription {
    rx: mpsc::Receiver<Msg>,
    used: Arc<AtomicUsize>,
    // A NATS subscription's mover (see the module docs), stopped with the subscription.
    mover: Option<tokio::task::JoinHandle<()>>,
}

impl Subscription {
    /// The next message; `None` when the broker has closed the subscription.
    pub async fn next(&mut self) -> Option<Msg> {
        let msg = self.rx.recv().await?;
        self.used.fetch_sub(msg.size(), Ordering::Relaxed);
        Some(msg)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(mover) = &self.mover {
            mover.abort();
        }
    }
}

/// The sending side of a subscription's buffer, bounded in messages and payload bytes.
#[derive(Clone)]
struct QueueTx {
    tx: mpsc::Sender<Msg>,
    used: Arc<AtomicUsize>,
}

fn bounded_queue(capacity: usize) -> (QueueTx, Subscription) {
    let (tx, rx) = mpsc::channel(capacity);
    let used = Arc::new(AtomicUsize::new(0));
    (QueueTx { tx, used: used.clone() }, Subscription { rx, used, mover: None })
}

impl QueueTx {
    /// Queues `msg` unless the buffer is full (in messages or bytes): `false` when dropped.
    fn try_push(&self, msg: Msg) -> bool {
        let len = msg.size();
        let reserved = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + len <= SUBSCRIPTION_BYTES).then_some(used + len)
            })
            .is_ok();
        if !reserved {
            return false;
        }
        if self.tx.try_send(msg).is_err() {
            self.used.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// One configured store's broker, shared by every sandbox and trigger of the process.
pub enum Broker {
    /// The in-process broker.
    Memory(MemoryBroker),
    /// A NATS server.
    Nats(Box<NatsBroker>),
}

impl Broker {
    /// Publishes `msg` to `msg.subject`.
    pub async fn publish(&self, msg: Msg) -> Result<(), BrokerError> {
        match self {
            Broker::Memory(broker) => {
                broker.publish(msg);
                Ok(())
            }
            Broker::Nats(broker) => broker.publish(msg).await,
        }
    }

    /// Subscribes to `pattern`, in queue group `queue` if given (each message then goes to one
    /// member of the group).
    pub async fn subscribe(&self, pattern: &str, queue: Option<&str>) -> Result<Subscription, BrokerError> {
        match self {
            Broker::Memory(broker) => Ok(broker.subscribe(pattern, queue)),
            Broker::Nats(broker) => broker.subscribe(pattern, queue).await,
        }
    }

    /// Opens the durable JetStream consumer `config` describes, filtered on `pattern`
    /// (at-least-once delivery). Only a NATS store has JetStream.
    pub async fn consume_durable(
        &self,
        pattern: &str,
        config: &crate::jetstream::DurableConfig,
    ) -> Result<crate::jetstream::DurableSubscription, BrokerError> {
        match self {
            Broker::Memory(_) => Err(BrokerError::Other("the in-process broker has no JetStream streams".into())),
            Broker::Nats(broker) => {
                crate::jetstream::DurableSubscription::open(broker.client().await?.clone(), pattern, config).await
            }
        }
    }

    /// Whether this is a NATS store (the only kind with JetStream).
    pub fn is_nats(&self) -> bool {
        matches!(self, Broker::Nats(_))
    }

    /// Sends `msg` with a fresh reply subject and collects replies until `expected` arrived or
    /// `timeout` passed (an error if none did).
    pub async fn request(&self, mut msg: Msg, timeout: Duration, expected: usize) -> Result<Vec<Msg>, BrokerError> {
        let inbox = match self {
            Broker::Memory(broker) => format!("_INBOX.{}", broker.next_id.fetch_add(1, Ordering::Relaxed)),
            Broker::Nats(broker) => broker.client().await?.new_inbox(),
        };
        let mut replies = self.subscribe(&inbox, None).await?;
        msg.reply_to = Some(inbox);
        self.publish(msg).await?;
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while got.len() < expected {
            match tokio::time::timeout_at(deadline, replies.next()).await {
                Ok(Some(reply)) => got.push(reply),
                Ok(None) | Err(_) => break,
            }
        }
        if got.is_empty() { Err(BrokerError::Timeout) } else { Ok(got) }
    }
}

/// The embedded default: subjects, wildcards and queue groups inside one process.
#[derive(Default)]
pub struct MemoryBroker {
    subscriptions: Mutex<Vec<MemorySubscription>>,
    next_id: AtomicU64,
    round_robin: AtomicUsize,
}

struct MemorySubscription {
    pattern: String,
    queue: Option<String>,
    tx: QueueTx,
}

impl MemoryBroker {
    fn subscribe(&self, pattern: &str, group: Option<&str>) -> Subscription {
        let (tx, rx) = bounded_queue(MEMORY_SUBSCRIPTION_CAPACITY);
        let subscription = MemorySubscription { pattern: pattern.to_owned(), queue: group.map(str::to_owned), tx };
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner()).push(subscription);
        rx
    }

    fn publish(&self, msg: Msg) {
        let targets = {
            let mut subscriptions = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
            subscriptions.retain(|s| !s.tx.is_closed());
            let matching: Vec<&MemorySubscription> =
                subscriptions.iter().filter(|s| crate::subject::matches(&s.pattern, &msg.subject)).collect();
            let mut targets: Vec<QueueTx> =
                matching.iter().filter(|s| s.queue.is_none()).map(|s| s.tx.clone()).collect();
            // One member of each queue group, in turn.
            let mut groups: Vec<&str> = matching.iter().filter_map(|s| s.queue.as_deref()).collect();
            groups.sort_unstable();
            groups.dedup();
            for group in groups {
                let members: Vec<_> = matching.iter().filter(|s| s.queue.as_deref() == Some(group)).collect();
                let turn = self.round_robin.fetch_add(1, Ordering::Relaxed) % members.len();
                targets.push(members[turn].tx.clone());
            }
            targets
        };
        for tx in targets {
            if !tx.try_push(msg.clone()) {
                tracing::warn!(subject = %msg.subject, "in-process subscriber is full; message dropped");
            }
        }
    }
}

/// Credentials for a NATS server. Never logged: `Debug` shows only which kind is set.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsAuth {
    /// A token.
    pub token: Option<String>,
    /// A user name (with `password`).
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<String>,
    /// A `.creds` file (JWT and NKey seed), relative to the runtime-config file.
    pub creds: Option<PathBuf>,
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsAuth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("creds", &self.creds)
            .finish()
    }
}

/// A NATS server, connected on first use and reconnected by async-nats for ever after.
pub struct NatsBroker {
    url: String,
    // `url` without user info (`nats://user:password@host`), for messages and logs.
    shown: String,
    auth: NatsAuth,
    client: OnceCell<async_nats::Client>,
}

impl NatsBroker {
    /// A broker for the server at `url` (`nats://host:port`, or a comma-separated list).
    pub fn new(url: String, auth: NatsAuth) -> Self {
        NatsBroker { shown: redact_url(&url), url, auth, client: OnceCell::new() }
    }

    /// The connected client. The first call connects and fails if the server cannot be
    /// reached; after that, async-nats reconnects in the background and queues what is sent
    /// meanwhile in its bounded buffer.
    pub async fn client(&self) -> Result<&async_nats::Client, BrokerError> {
        self.client.get_or_try_init(|| self.connect()).await
    }

    async fn connect(&self) -> Result<async_nats::Client, BrokerError> {
        let url = self.shown.clone();
        let mut options = async_nats::ConnectOptions::new()
            .name("wharf")
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            .subscription_capacity(NATS_SUBSCRIPTION_CAPACITY)
            .event_callback(move |event| {
                let url = url.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => tracing::info!(%url, "NATS connected"),
                        async_nats::Event::Disconnected => tracing::warn!(%url, "NATS disconnected; reconnecting"),
                        other => tracing::warn!(%url, "NATS: {other}"),
                    }
                }
            });
        if let Some(token) = &self.auth.token {
            options = options.token(token.clone());
        }
        if let (Some(user), Some(password)) = (&self.auth.user, &self.auth.password) {
            options = options.user_and_password(user.clone(), password.clone());
        } else if self.auth.token.is_none() && self.auth.creds.is_none() {
            // async-nats ignores user info in a URL; NATS clients take `user:password@` as
            // user and password and `token@` as a token, so Wharf does too.
            let from_url = self
                .url
                .split(',')
                .filter_map(|url| url.trim().parse::<async_nats::ServerAddr>().ok())
                .find_map(|addr| addr.username().map(|user| (user.to_owned(), addr.password().map(str::to_owned))));
            match from_url {
                Some((user, Some(password))) => options = options.user_and_password(user, password),
                Some((token, None)) => options = options.token(token),
                None => {}
            }
        }
        if let Some(creds) = &self.auth.creds {
            options = options.credentials_file(creds).await.map_err(|e| {
                BrokerError::Connection(format!("cannot read credentials file {}: {}", creds.display(), e.kind()))
            })?;
        }
        // The error names the server, never the credentials.
        options
            .connect(self.url.as_str())
            .await
            .map_err(|e| BrokerError::Connection(format!("cannot connect to {}: {}", self.shown, e.kind())))
    }

    async fn publish(&self, msg: Msg) -> Result<(), BrokerError> {
        let client = self.client().await?;
        let mut headers = async_nats::HeaderMap::new();
        if let Some(content_type) = &msg.content_type {
            headers.insert(CONTENT_TYPE, content_type.as_str());
        }
        for (key, value) in &msg.metadata {
            headers.insert(key.as_str(), value.as_str());
        }
        // Without headers a plain PUB: no header block for the server and subscribers to parse.
        let result = match (msg.reply_to, headers.is_empty()) {
            (Some(reply), false) => client.publish_with_reply_and_headers(msg.subject, reply, headers, msg.data).await,
            (Some(reply), true) => client.publish_with_reply(msg.subject, reply, msg.data).await,
            (None, false) => client.publish_with_headers(msg.subject, headers, msg.data).await,
            (None, true) => client.publish(msg.subject, msg.data).await,
        };
        result.map_err(|e| BrokerError::Connection(e.to_string()))
    }

    async fn subscribe(&self, pattern: &str, queue: Option<&str>) -> Result<Subscription, BrokerError> {
        let client = self.client().await?;
        let subscriber = match queue {
            Some(queue) => client.queue_subscribe(pattern.to_owned(), queue.to_owned()).await,
            None => client.subscribe(pattern.to_owned()).await,
        };
        let mut subscriber = subscriber.map_err(|e| BrokerError::Connection(e.to_string()))?;
        let (tx, mut rx) = bounded_queue(NATS_SUBSCRIPTION_CAPACITY);
        let subject = pattern.to_owned();
        rx.mover = Some(tokio::spawn(async move {
            let mut dropped = 0u64;
            while let Some(message) = subscriber.next().await {
                let mut msg = from_nats(message);
                // The payload is a slice of async-nats' read buffer, which a tiny payload
                // behind large headers would keep alive whole: a copy of its own lets the
                // buffer go, so a queued message holds only the bytes `Msg::size` counts.
                msg.data = Bytes::copy_from_slice(&msg.data);
                if !tx.try_push(msg) {
                    dropped += 1;
                    // The first drop, then one line per thousand.
                    if dropped % 1000 == 1 {
                        tracing::warn!(%subject, dropped, "NATS subscriber is full; messages dropped");
                    }
                }
            }
        }));
        Ok(rx)
    }
}

/// `urls` (comma-separated) with any user info replaced by `***`: a password in a URL must
/// not reach a log line.
pub(crate) fn redact_url(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let start = url.find("://").map_or(0, |i| i + 3);
            let authority_end = url[start..].find('/').map_or(url.len(), |i| start + i);
            match url[start..authority_end].rfind('@') {
                Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
                None => url.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn from_nats(message: async_nats::Message) -> Msg {
    let mut content_type = None;
    let mut metadata = Vec::new();
    for (name, values) in message.headers.iter().flat_map(|h| h.iter()) {
        let Some(value) = values.first() else { continue };
        if name.to_string().eq_ignore_ascii_case(CONTENT_TYPE) {
            content_type = Some(value.as_str().to_owned());
        } else {
            metadata.push((name.to_string(), value.as_str().to_owned()));
        }
    }
    Msg {
        subject: message.subject.to_string(),
        reply_to: message.reply.map(|r| r.to_string()),
        data: message.payload,
        content_type,
        metadata,
    }
}

/// A [`MemoryBroker`] as a [`Broker`], for tests and embedding.
pub fn memory() -> Arc<Broker> {
    Arc::new(Broker::Memory(MemoryBroker::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(subject: &str, data: &str) -> Msg {
        Msg { subject: subject.into(), data: Bytes::from(data.to_owned()), ..Msg::default() }
    }

    #[tokio::test]
    async fn memory_wildcards_queue_groups_and_request_reply() {
        let broker = memory();
        let mut all = broker.subscribe("orders.>", None).await.unwrap();
        let mut q1 = broker.subscribe("orders.*", Some("workers")).await.unwrap();
        let mut q2 = broker.subscribe("orders.*", Some("workers")).await.unwrap();
        for i in 0..10 {
            broker.publish(msg("orders.new", &i.to_string())).await.unwrap();
        }
        broker.publish(msg("payments.new", "x")).await.unwrap();
        let mut seen = 0;
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(50), all.next()).await {
            assert_eq!(m.subject, "orders.new");
            seen += 1;
        }
        assert_eq!(seen, 10);
        let (mut a, mut b) = (0, 0);
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), q1.next()).await {
            a += 1;
        }
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), q2.next()).await {
            b += 1;
        }
        assert_eq!((a, b), (5, 5));

        let responder = broker.clone();
        let mut service = broker.subscribe("echo", None).await.unwrap();
        tokio::spawn(async move {
            let m = service.next().await.unwrap();
            let reply = Msg { subject: m.reply_to.unwrap(), data: m.data, ..Msg::default() };
            responder.publish(reply).await.unwrap();
        });
        let replies = broker.request(msg("echo", "hi"), Duration::from_secs(5), 1).await.unwrap();
        assert_eq!(replies[0].data, "hi");
        let err = broker.request(msg("nobody", "hi"), Duration::from_millis(50), 1).await.unwrap_err();
        assert!(matches!(err, BrokerError::Timeout));
    }

    #[test]
    fn credentials_are_not_in_debug_output() {
        let auth = NatsAuth { token: Some("s3cret".into()), password: Some("hunter2".into()), ..NatsAuth::default() };
        let text = format!("{auth:?}");
        assert!(!text.contains("s3cret") && !text.contains("hunter2"), "{text}");
        let store = crate::StoreConfig::Nats {
            url: "nats://u:pw1@a".into(),
            token: Some("s3cret".into()),
            user: None,
            password: Some("hunter2".into()),
            creds: None,
        };
        let text = format!("{store:?}");
        assert!(!text.contains("s3cret") && !text.contains("hunter2") && !text.contains("pw1"), "{text}");
        assert_eq!(redact_url("nats://u:pw@a:4222,tls://tok@b/x,c:4222"), "nats://***@a:4222,tls://***@b/x,c:4222");
    }
}
