//! At-least-once message triggers: a `[[trigger.messaging]]` with a `stream` consumes a
//! JetStream stream through a durable consumer, and the outcome of each handler call settles
//! its message: `ok` acknowledges it; an error, a trap or a timeout asks for it again after a
//! delay (doubling per attempt); after `max_deliver` attempts it goes to the `dead_letter`
//! subject and is terminated.
//!
//! ```toml
//! [[trigger.messaging]]
//! subject = "jobs.*"
//! component = "worker"
//! stream = "JOBS"            # created (work queue, file storage) if missing
//! consumer = "workers"       # durable name; default: the component's name
//! max_deliver = 5            # attempts, then the dead-letter subject
//! retry_delay = "1s"         # before the 2nd attempt; doubles, at most 5 minutes
//! ack_wait = "40s"           # default: the component's timeout + 10s
//! dead_letter = "dead.jobs"  # default: none (logged and terminated)
//! ```
use std::future::Future;
use std::time::Duration;

use wharf_messaging::jetstream::{Delivery, DurableConfig, check_name};
use wharf_messaging::subject::{check_subject, covers};

/// `max_deliver` when the manifest sets none.
pub const DEFAULT_MAX_DELIVER: u32 = 5;
/// `retry_delay` when the manifest sets none.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);
/// What `ack_wait` adds to the component's timeout when the manifest sets none.
pub const ACK_WAIT_MARGIN: Duration = Duration::from_secs(10);
/// Messages a trigger pulls ahead at most: 64 of NATS' largest (1 MiB) is the buffer's worst case.
const MAX_BATCH: usize = 64;
/// Unacknowledged messages a consumer lets out at least (NATS' own default).
const MIN_ACK_PENDING: usize = 1000;

/// A trigger's JetStream settings, as checked from the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableSpec {
    /// The stream.
    pub stream: String,
    /// The durable consumer's name.
    pub consumer: String,
    /// Attempts at most.
    pub max_deliver: u32,
    /// `None`: the component's timeout plus [`ACK_WAIT_MARGIN`].
    pub ack_wait: Option<Duration>,
    /// The first retry's delay.
    pub retry_delay: Duration,
    /// Where exhausted messages go.
    pub dead_letter: Option<String>,
}

/// The JetStream keys of one `[[trigger.messaging]]`, as written.
#[derive(Default)]
pub(crate) struct RawDurable<'a> {
    pub stream: Option<&'a str>,
    pub consumer: Option<&'a str>,
    pub max_deliver: Option<i64>,
    pub ack_wait: Option<&'a str>,
    pub retry_delay: Option<&'a str>,
    pub dead_letter: Option<&'a str>,
}

impl RawDurable<'_> {
    /// Checks the keys of trigger `at` (on `subject`, for `component`); `None` without a
    /// `stream`, an error naming the field when one is wrong or set without a `stream`.
    pub(crate) fn check(&self, at: &str, subject: &str, component: &str) -> Result<Option<DurableSpec>, String> {
        let Some(stream) = self.stream else {
            let set = [
                ("consumer", self.consumer.is_some()),
                ("max_deliver", self.max_deliver.is_some()),
                ("ack_wait", self.ack_wait.is_some()),
                ("retry_delay", self.retry_delay.is_some()),
                ("dead_letter", self.dead_letter.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
                return Err(format!("{at}.{key}: applies to JetStream triggers only; set `stream` too"));
            }
            return Ok(None);
        };
        check_name(stream).map_err(|e| format!("{at}.stream `{stream}`: {e}"))?;
        let consumer = self.consumer.unwrap_or(component);
        check_name(consumer).map_err(|e| match self.consumer {
            Some(_) => format!("{at}.consumer `{consumer}`: {e}"),
            None => format!("{at}: the component's name `{component}` is no consumer name ({e}); set `consumer`"),
        })?;
        let max_deliver = match self.max_deliver {
            None => DEFAULT_MAX_DELIVER,
            Some(n @ 1..=1000) => n as u32,
            Some(n) => return Err(format!("{at}.max_deliver: must be from 1 to 1000, got {n}")),
        };
        let duration = |key: &str, text: Option<&str>| -> Result<Option<Duration>, String> {
            text.map(|text| {
                wharf_host::policy::parse_duration(text)
                    .ok()
                    .filter(|d| !d.is_zero() && *d <= Duration::from_secs(24 * 3600))
                    .ok_or_else(|| format!("{at}.{key} `{text}`: expected a duration like \"30s\", at most a day"))
            })
            .transpose()
        };
        let ack_wait = duration("ack_wait", self.ack_wait)?;
        let retry_delay = duration("retry_delay", self.retry_delay)?.unwrap_or(DEFAULT_RETRY_DELAY);
        if let Some(dead) = self.dead_letter {
            check_subject(dead).map_err(|e| format!("{at}.dead_letter `{dead}`: {e}"))?;
            if covers(subject, dead) {
                return Err(format!(
                    "{at}.dead_letter `{dead}`: the trigger's own subject `{subject}` matches it, so dead letters \
                     would come back to it"
                ));
            }
        }
        Ok(Some(DurableSpec {
            stream: stream.to_owned(),
            consumer: consumer.to_owned(),
            max_deliver,
            ack_wait,
            retry_delay,
            dead_letter: self.dead_letter.map(str::to_owned),
        }))
    }
}

/// Two JetStream triggers sharing a stream and a consumer would take each other's messages.
pub(crate) fn check_unique(specs: &[crate::MessagingTriggerSpec]) -> Result<(), String> {
    let durable: Vec<(usize, &DurableSpec)> =
        specs.iter().enumerate().filter_map(|(i, s)| s.durable.as_ref().map(|d| (i, d))).collect();
    for (n, (i, a)) in durable.iter().enumerate() {
        if let Some((j, _)) = durable[n + 1..].iter().find(|(_, b)| a.stream == b.stream && a.consumer == b.consumer) {
            return Err(format!(
                "trigger.messaging[{j}]: consumer `{}` on stream `{}` is trigger.messaging[{i}]'s already; set \
                 another `consumer`",
                a.consumer, a.stream
            ));
        }
    }
    Ok(())
}

impl DurableSpec {
    /// The consumer settings for a trigger whose component times out after `timeout` and
    /// that handles `slots` messages at once.
    pub fn config(&self, timeout: Option<Duration>, slots: usize) -> DurableConfig {
        let ack_wait = self.ack_wait.unwrap_or_else(|| timeout.unwrap_or(Duration::from_secs(30)) + ACK_WAIT_MARGIN);
        DurableConfig {
            stream: self.stream.clone(),
            consumer: self.consumer.clone(),
            ack_wait,
            max_deliver: self.max_deliver,
            retry_delay: self.retry_delay,
            dead_letter: self.dead_letter.clone(),
            batch: slots.clamp(1, MAX_BATCH),
            max_ack_pending: slots.saturating_mul(4).max(MIN_ACK_PENDING) as i64,
        }
    }
}

/// Runs `call` (the handler on `delivery`'s message) and settles the message by its outcome
/// (`Err` with the reason when the handler did not return `ok`). While the call runs, the
/// server hears every `ack_wait / 2` that it is in progress, so a slow handler within its
/// timeout is not redelivered behind its back.
pub async fn settle<F>(delivery: Delivery, config: &DurableConfig, label: &str, call: F)
where
    F: Future<Output = Result<(), String>>,
{
    let attempt = delivery.attempt();
    let subject = delivery.subject().to_owned();
    let outcome = if attempt > u64::from(config.max_deliver) {
        // Its last attempt ended without a settlement (the process died, or the dead letter
        // could not be sent): no further attempt.
        Err(format!("no attempt left after {} deliveries", attempt - 1))
    } else {
        let beat = (config.ack_wait / 2).max(Duration::from_millis(100));
        if delivery.age() > config.ack_wait / 4 {
            let _ = delivery.in_progress().await;
        }
        let mut call = std::pin::pin!(call);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        loop {
            tokio::select! {
                outcome = &mut call => break outcome,
                _ = ticks.tick() => {
                    if let Err(e) = delivery.in_progress().await {
                        tracing::debug!(component = %label, %subject, "in-progress signal not sent: {e}");
                    }
                }
            }
        }
    };
    let settled = match outcome {
        Ok(()) => delivery.ack().await,
        Err(why) if attempt >= u64::from(config.max_deliver) => match &config.dead_letter {
            Some(dead) => match delivery.dead_letter(dead, &why).await {
                Ok(()) => {
                    tracing::warn!(component = %label, %subject, attempt, dead_letter = %dead, "message dead-lettered: {why}");
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(component = %label, %subject, "dead letter to `{dead}` failed, retrying later: {e}");
                    delivery.retry(config.delay_after(attempt)).await
                }
            },
            None => {
                tracing::error!(component = %label, %subject, attempt, "message dropped after its last attempt (no dead_letter): {why}");
                delivery.terminate().await
            }
        },
        Err(_) => delivery.retry(config.delay_after(attempt)).await,
    };
    if let Err(e) = settled {
        // Not settled: the server delivers it again after `ack_wait`.
        tracing::warn!(component = %label, %subject, attempt, "message not settled, the server will redeliver it: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: RawDurable<'_>) -> Result<Option<DurableSpec>, String> {
        raw.check("trigger.messaging[0]", "jobs.*", "worker")
    }

    #[test]
    fn defaults_and_keys() {
        assert_eq!(check(RawDurable::default()), Ok(None));
        let spec = check(RawDurable { stream: Some("JOBS"), ..RawDurable::default() }).unwrap().unwrap();
        assert_eq!((spec.consumer.as_str(), spec.max_deliver, spec.dead_letter.as_deref()), ("worker", 5, None));
        let config = spec.config(Some(Duration::from_secs(2)), 1000);
        assert_eq!((config.ack_wait, config.batch, config.max_ack_pending), (Duration::from_secs(12), 64, 4000));
        let spec = check(RawDurable {
            stream: Some("JOBS"),
            consumer: Some("w-1"),
            max_deliver: Some(3),
            ack_wait: Some("5s"),
            retry_delay: Some("100ms"),
            dead_letter: Some("dead.jobs"),
        })
        .unwrap()
        .unwrap();
        assert_eq!(spec.dead_letter.as_deref(), Some("dead.jobs"));
        assert_eq!(spec.config(None, 1).ack_wait, Duration::from_secs(5));
    }

    #[test]
    fn bad_keys_name_the_field() {
        let js = |raw: RawDurable<'static>| RawDurable { stream: Some("JOBS"), ..raw };
        let cases: Vec<(RawDurable<'static>, &str)> = vec![
            (
                RawDurable { dead_letter: Some("dead.x"), ..RawDurable::default() },
                "[0].dead_letter: applies to JetStream",
            ),
            (RawDurable { stream: Some("a.b"), ..RawDurable::default() }, "[0].stream `a.b`"),
            (RawDurable { stream: Some("a b"), ..RawDurable::default() }, "[0].stream `a b`"),
            (js(RawDurable { consumer: Some("c*"), ..RawDurable::default() }), "[0].consumer `c*`"),
            (js(RawDurable { consumer: Some("../c"), ..RawDurable::default() }), "[0].consumer `../c`"),
            (js(RawDurable { max_deliver: Some(0), ..RawDurable::default() }), "[0].max_deliver: must be from 1"),
            (js(RawDurable { max_deliver: Some(-1), ..RawDurable::default() }), "[0].max_deliver"),
            (js(RawDurable { ack_wait: Some("0s"), ..RawDurable::default() }), "[0].ack_wait `0s`"),
            (js(RawDurable { retry_delay: Some("soon"), ..RawDurable::default() }), "[0].retry_delay `soon`"),
            (js(RawDurable { dead_letter: Some("dead.*"), ..RawDurable::default() }), "[0].dead_letter `dead.*`"),
            (js(RawDurable { dead_letter: Some("dead.>"), ..RawDurable::default() }), "[0].dead_letter `dead.>`"),
            (js(RawDurable { dead_letter: Some("dead x"), ..RawDurable::default() }), "[0].dead_letter `dead x`"),
            (js(RawDurable { dead_letter: Some("d\r\nPUB x 1"), ..RawDurable::default() }), "[0].dead_letter"),
            (js(RawDurable { dead_letter: Some("jobs.dead"), ..RawDurable::default() }), "would come back"),
        ];
        for (raw, needle) in cases {
            let e = check(raw).unwrap_err();
            assert!(e.contains(needle), "expected {needle:?} in {e:?}");
        }
        let e = RawDurable { stream: Some("JOBS"), ..RawDurable::default() }
            .check("trigger.messaging[0]", "jobs.*", "my.worker")
            .unwrap_err();
        assert!(e.contains("set `consumer`"), "{e}");
    }
}
