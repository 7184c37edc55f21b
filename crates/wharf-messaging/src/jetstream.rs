//! JetStream at-least-once consumption for message triggers: a durable pull consumer on a
//! stream, one [`Delivery`] per message, settled by the trigger as acknowledged, retried later
//! (a negative acknowledgement with a delay) or dead-lettered (published to the dead-letter
//! subject, then terminated).
//!
//! The host counts attempts, not the server: the consumer's own `max_deliver` is unlimited, so
//! a message whose last attempt died with the process (no ack before `ack_wait`) comes back
//! once more and goes to the dead-letter subject instead of being dropped by the server.
//! What is in flight is bounded: the pull requests ask for at most `batch` messages, and the
//! consumer's `max_ack_pending` caps the unacknowledged ones across all processes.
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::StreamExt;

use crate::broker::{BrokerError, Msg, from_nats};

/// The headers a dead-lettered message carries, beside its own.
pub const HEADER_SUBJECT: &str = "Wharf-Original-Subject";
/// How many times it was delivered.
pub const HEADER_ATTEMPTS: &str = "Wharf-Attempts";
/// Why its last attempt failed (one line, truncated).
pub const HEADER_ERROR: &str = "Wharf-Error";
/// Its stream and stream sequence, `STREAM:SEQ`.
pub const HEADER_SOURCE: &str = "Wharf-Source";

/// The longest `Wharf-Error` header value.
const MAX_ERROR_HEADER: usize = 512;

/// A durable consumer's settings (from `[[trigger.messaging]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableConfig {
    /// The stream; created (work-queue retention, file storage, the trigger's subject) when
    /// it does not exist.
    pub stream: String,
    /// The durable consumer's name, shared by every process running the trigger.
    pub consumer: String,
    /// Server-side redelivery of a message nobody settled in this time (a crashed process).
    pub ack_wait: Duration,
    /// Attempts at most; after the last one fails the message is dead-lettered.
    pub max_deliver: u32,
    /// The delay before the second attempt; it doubles for each further one (at most
    /// [`MAX_RETRY_DELAY`]).
    pub retry_delay: Duration,
    /// Where exhausted messages go; without one they are logged and terminated (the stream
    /// keeps them unless its retention drops them).
    pub dead_letter: Option<String>,
    /// Messages asked for per pull request (the trigger's free slots).
    pub batch: usize,
    /// Unacknowledged messages the consumer lets out at once, across all processes.
    pub max_ack_pending: i64,
}

/// The longest delay between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

impl DurableConfig {
    /// The delay after failed attempt `attempt` (1-based): `retry_delay` doubled per attempt.
    pub fn delay_after(&self, attempt: u64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20) as u32;
        self.retry_delay.saturating_mul(1 << doublings).min(MAX_RETRY_DELAY)
    }
}

/// Whether `name` is a usable stream or consumer name: letters, digits, `_`, `-`, at most 64
/// bytes (NATS forbids `.`, `*`, `>`, whitespace and path separators; Wharf takes less).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)) {
        return Err("expected letters, digits, `_`, `-`, at most 64 bytes".into());
    }
    Ok(())
}

/// Messages of a durable consumer, in delivery order.
pub struct DurableSubscription {
    messages: consumer::pull::Stream,
    context: jetstream::Context,
}

impl DurableSubscription {
    /// Binds (creating when missing) the stream and the durable consumer filtered on
    /// `pattern`, and starts pulling.
    pub(crate) async fn open(
        client: async_nats::Client,
        pattern: &str,
        config: &DurableConfig,
    ) -> Result<Self, BrokerError> {
        let context = jetstream::new(client);
        let stream = match context.get_stream(&config.stream).await {
            Ok(stream) => stream,
            Err(e) if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref j) if j.code() == 404) => {
                context
                    .create_stream(stream::Config {
                        name: config.stream.clone(),
                        subjects: vec![pattern.to_owned()],
                        retention: stream::RetentionPolicy::WorkQueue,
                        storage: stream::StorageType::File,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| BrokerError::Connection(format!("cannot create stream `{}`: {e}", config.stream)))?
            }
            Err(e) => return Err(BrokerError::Connection(format!("cannot look up stream `{}`: {e}", config.stream))),
        };
        let wanted = consumer::pull::Config {
            durable_name: Some(config.consumer.clone()),
            filter_subject: pattern.to_owned(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            // Unlimited on the server: the host counts attempts (see the module docs).
            max_deliver: -1,
            max_ack_pending: config.max_ack_pending,
            ..Default::default()
        };
        let consumer: consumer::PullConsumer = match stream.create_consumer(wanted).await {
            Ok(consumer) => consumer,
            // A server that cannot update a consumer in place (before 2.10) refuses a changed
            // config: keep the existing one, whose filter must still be ours.
            Err(create) => match stream.get_consumer::<consumer::pull::Config>(&config.consumer).await {
                Ok(existing) if existing.cached_info().config.filter_subject == pattern => {
                    tracing::warn!(
                        stream = %config.stream, consumer = %config.consumer,
                        "using the existing durable consumer as it is ({create})"
                    );
                    existing
                }
                _ => {
                    return Err(BrokerError::Connection(format!(
                        "cannot create consumer `{}` on stream `{}`: {create}",
                        config.consumer, config.stream
                    )));
                }
            },
        };
        let messages = consumer
            .stream()
            .max_messages_per_batch(config.batch.max(1))
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| BrokerError::Connection(format!("cannot pull from consumer `{}`: {e}", config.consumer)))?;
        Ok(DurableSubscription { messages, context })
    }

    /// The next delivery; `Some(Err)` for a passing problem (a missed heartbeat while the
    /// server is away: async-nats pulls again once reconnected), `None` when the consumer is
    /// gone (deleted, or the connection closed) and must be opened again.
    pub async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        match self.messages.next().await? {
            Ok(message) => Some(Ok(Delivery::new(message, self.context.clone()))),
            Err(e) => match e.kind() {
                consumer::pull::MessagesErrorKind::ConsumerDeleted
                | consumer::pull::MessagesErrorKind::PushBasedConsumer
                | consumer::pull::MessagesErrorKind::RequestLimitExceeded => None,
                _ => Some(Err(BrokerError::Connection(e.to_string()))),
            },
        }
    }
}

/// One delivery of a stream message: the message, which attempt this is, and how to settle it.
pub struct Delivery {
    msg: Msg,
    attempt: u64,
    source: String,
    acker: jetstream::message::Acker,
    context: jetstream::Context,
    received: std::time::Instant,
}

impl Delivery {
    fn new(message: jetstream::Message, context: jetstream::Context) -> Self {
        let (attempt, source) = match message.info() {
            Ok(info) => (info.delivered.max(1) as u64, format!("{}:{}", info.stream, info.stream_sequence)),
            Err(_) => (1, String::new()),
        };
        let (message, acker) = message.split();
        let mut msg = from_nats(message);
        // The reply subject is the ack subject: a handler's `reply` must not settle it.
        msg.reply_to = None;
        Delivery { msg, attempt, source, acker, context, received: std::time::Instant::now() }
    }

    /// The message (a copy: payloads are reference-counted).
    pub fn msg(&self) -> Msg {
        self.msg.clone()
    }

    /// The subject it was published to.
    pub fn subject(&self) -> &str {
        &self.msg.subject
    }

    /// Which delivery this is, from 1.
    pub fn attempt(&self) -> u64 {
        self.attempt
    }

    /// How long ago it arrived (it may wait for a free slot).
    pub fn age(&self) -> Duration {
        self.received.elapsed()
    }

    /// Given up without a dead-letter subject: never delivered again.
    pub async fn terminate(&self) -> Result<(), BrokerError> {
        self.settle(AckKind::Term).await
    }

    /// Handled: the server forgets it (for this consumer).
    pub async fn ack(&self) -> Result<(), BrokerError> {
        self.settle(AckKind::Ack).await
    }

    /// Still being handled: the server's `ack_wait` starts again.
    pub async fn in_progress(&self) -> Result<(), BrokerError> {
        self.settle(AckKind::Progress).await
    }

    /// Not handled: delivered again after `delay`.
    pub async fn retry(&self, delay: Duration) -> Result<(), BrokerError> {
        self.settle(AckKind::Nak(Some(delay))).await
    }

    /// Out of attempts: published to `subject` (the original headers plus `Wharf-*` ones
    /// saying where it came from, after how many attempts and why), then terminated. When a
    /// stream captures `subject` the publish waits for its acknowledgement, so a message is
    /// terminated only once its dead letter is stored; otherwise it is a core publish, flushed.
    /// If publishing fails the message is left to come back (`retry`).
    pub async fn dead_letter(&self, subject: &str, error: &str) -> Result<(), BrokerError> {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(content_type) = &self.msg.content_type {
            headers.insert(crate::broker::CONTENT_TYPE, content_type.as_str());
        }
        for (key, value) in &self.msg.metadata {
            headers.insert(key.as_str(), value.as_str());
        }
        headers.insert(HEADER_SUBJECT, self.msg.subject.as_str());
        headers.insert(HEADER_ATTEMPTS, self.attempt.to_string().as_str());
        headers.insert(HEADER_SOURCE, self.source.as_str());
        headers.insert(HEADER_ERROR, header_text(error).as_str());
        // A core subscriber on the subject would keep a JetStream publish from failing fast
        // (it answers nothing): ask the server which stream, if any, captures the subject.
        let captured = self.context.stream_by_subject(subject).await.is_ok();
        if captured {
            let stored =
                match self.context.publish_with_headers(subject.to_owned(), headers, self.msg.data.clone()).await {
                    Ok(ack) => ack.await.map(|_| ()),
                    Err(e) => Err(e),
                };
            stored.map_err(|e| BrokerError::Connection(format!("dead letter to `{subject}` not stored: {e}")))?;
        } else {
            let client = self.context.client();
            client
                .publish_with_headers(subject.to_owned(), headers, self.msg.data.clone())
                .await
                .map_err(|e| BrokerError::Connection(e.to_string()))?;
            client.flush().await.map_err(|e| BrokerError::Connection(e.to_string()))?;
        }
        self.settle(AckKind::Term).await
    }

    async fn settle(&self, kind: AckKind) -> Result<(), BrokerError> {
        self.acker.ack_with(kind).await.map_err(|e| BrokerError::Connection(e.to_string()))
    }
}

/// One line of printable text, at most [`MAX_ERROR_HEADER`] bytes (a header value must not
/// break the header block, whatever a guest put in its error).
fn header_text(text: &str) -> String {
    let mut line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    line.truncate(line.floor_char_boundary(MAX_ERROR_HEADER));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let config = DurableConfig {
            stream: "S".into(),
            consumer: "c".into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            retry_delay: Duration::from_millis(100),
            dead_letter: None,
            batch: 1,
            max_ack_pending: 1,
        };
        assert_eq!(config.delay_after(1), Duration::from_millis(100));
        assert_eq!(config.delay_after(3), Duration::from_millis(400));
        assert_eq!(config.delay_after(u64::MAX), MAX_RETRY_DELAY);
    }

    #[test]
    fn names_and_header_text() {
        assert!(check_name("ORDERS_1-a").is_ok());
        for bad in ["", "a.b", "a*", "a>", "a b", "a/b", "a\r\nb", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(header_text("a\r\nPUB x 1\r\n"), "a  PUB x 1  ");
        assert_eq!(header_text(&"é".repeat(400)).len(), 512);
    }
}
