//! At-least-once message triggers on JetStream (`stream` in `[[trigger.messaging]]`) against a
//! real `nats-server -js` (127.0.0.1, a temp store); triggers whose NATS server is not up
//! when `wharf serve` starts; a flood of large messages on a core trigger.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use test_programs_artifacts::{MSG_HANDLER, MSG_HTTP};

use crate::messaging::{NatsServer, wait_for};
use crate::redis::free_port;
use crate::util::{Served, get, wharf};

/// Attempts before a message is dead-lettered in these tests.
const MAX_DELIVER: u32 = 3;

/// `web` (msg_http) on every path; `handler` (msg_handler) on `orders.*` (core NATS) and on
/// `jobs.*` through stream `JOBS` (3 attempts, dead letters to `dead.jobs`), a 2s timeout.
struct App {
    dir: tempfile::TempDir,
    manifest: PathBuf,
    runtime: PathBuf,
}

impl App {
    fn new(nats_port: u16) -> Self {
        Self::with_url(&format!("nats://127.0.0.1:{nats_port}"))
    }

    fn with_url(url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("wharf.toml");
        std::fs::write(
            &manifest,
            format!(
                r#"
[[trigger.http]]
route = "/..."
component = "web"
[[trigger.messaging]]
subject = "orders.*"
component = "handler"
[[trigger.messaging]]
subject = "jobs.*"
component = "handler"
stream = "JOBS"
consumer = "workers"
max_deliver = {MAX_DELIVER}
retry_delay = "100ms"
dead_letter = "dead.jobs"

[component.web]
source = "{MSG_HTTP}"
keyvalue = ["msgs"]
messaging_publish = ["orders.*"]

[component.handler]
source = "{MSG_HANDLER}"
keyvalue = ["msgs"]
messaging_subscribe = ["orders.*", "jobs.*"]
timeout = "2s"
"#
            ),
        )
        .unwrap();
        let runtime = dir.path().join("runtime.toml");
        let section = format!("[messaging.stores.default]\ntype = \"nats\"\nurl = \"{url}\"\n");
        std::fs::write(&runtime, section).unwrap();
        App { dir, manifest, runtime }
    }

    /// The `jobs.*` trigger handles `slots` messages at once (its `max_concurrency`).
    fn jobs_slots(&self, slots: usize) {
        let text = std::fs::read_to_string(&self.manifest).unwrap();
        let trigger = "subject = \"jobs.*\"\ncomponent = \"handler\"\n";
        assert!(text.contains(trigger));
        let text = text.replace(trigger, &format!("{trigger}max_concurrency = {slots}\n"));
        std::fs::write(&self.manifest, text).unwrap();
    }

    /// `wharf serve` on the app, started (HTTP up) but not necessarily subscribed.
    fn serve(&self, extra: &[&str]) -> Served {
        let mut cmd = wharf(&["serve", "--listen", "127.0.0.1:0", "--runtime-config"]);
        cmd.arg(&self.runtime).args(extra).arg(&self.manifest).env("WHARF_DATA_DIR", self.dir.path().join("data"));
        Served::spawn(cmd)
    }
}

fn subscribed(server: &Served) {
    wait_for(Duration::from_secs(60), || server.log().matches("message trigger subscribed").count() >= 2);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// How many attempts the handler made at `id` (0 when none).
fn attempts(server: &Served, id: &str) -> u32 {
    match get(&server.url(&format!("/kv/attempts.{id}"))) {
        (200, n) => n.parse().unwrap(),
        _ => 0,
    }
}

/// Publishes to the stream and waits for its acknowledgement, retrying while the server is
/// away (for at most a minute).
async fn publish(js: &async_nats::jetstream::Context, subject: &str, payload: String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = match js.publish(subject.to_owned(), payload.clone().into()).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "cannot publish {payload} to the stream: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A handler failing its first attempt gets the message again; one always failing, or
/// hanging past its timeout, is tried `max_deliver` times and lands in the dead-letter subject
/// (counted). With one slot, a hanging handler's timeout frees the slot for the next message.
#[test]
fn jetstream_retries_then_dead_letters() {
    let nats = NatsServer::start();
    let app = App::new(nats.port);
    app.jobs_slots(1);
    let server = app.serve(&[]);
    subscribed(&server);
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let mut dead = client.subscribe("dead.jobs").await.unwrap();
        let js = async_nats::jetstream::new(client);
        for id in ["flaky-1", "fail-1", "hang-1", "ok-1"] {
            publish(&js, "jobs.x", id.to_owned()).await;
        }
        let mut letters = Vec::new();
        while letters.len() < 2 {
            let msg = tokio::time::timeout(Duration::from_secs(60), dead.next())
                .await
                .expect("no dead letter within a minute")
                .unwrap();
            let header = |name: &str| msg.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
            assert_eq!(header("Wharf-Original-Subject").as_deref(), Some("jobs.x"));
            assert_eq!(header("Wharf-Attempts"), Some(MAX_DELIVER.to_string()));
            assert!(header("Wharf-Source").is_some_and(|s| s.starts_with("JOBS:")), "{:?}", msg.headers);
            letters.push((String::from_utf8(msg.payload.to_vec()).unwrap(), header("Wharf-Error").unwrap()));
        }
        letters.sort();
        assert_eq!(letters[0].0, "fail-1");
        assert!(letters[0].1.contains("attempt 3 at fail-1 fails"), "{letters:?}");
        assert_eq!(letters[1].0, "hang-1");
        assert!(letters[1].1.contains("timed out"), "{letters:?}");
    });
    wait_for(Duration::from_secs(30), || attempts(&server, "flaky-1") == 2 && attempts(&server, "ok-1") == 1);
    // Nothing comes back after the dead letter or the acknowledgement.
    std::thread::sleep(Duration::from_secs(2));
    let counted: Vec<u32> = ["flaky-1", "fail-1", "hang-1", "ok-1"].iter().map(|id| attempts(&server, id)).collect();
    assert_eq!(counted, [2, MAX_DELIVER, MAX_DELIVER, 1], "{}", server.log());
}

/// nats-server killed and restarted mid-stream (same store): every message published to the
/// stream is handled at least once, and HTTP answers while NATS is down.
#[test]
fn jetstream_nothing_lost_across_nats_restart() {
    const N: usize = 400;
    let mut nats = NatsServer::start();
    let app = App::new(nats.port);
    let server = app.serve(&[]);
    subscribed(&server);
    let rt = runtime();
    let js = rt.block_on(async { async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap()) });
    rt.block_on(async {
        for i in 0..N / 2 {
            publish(&js, "jobs.n", format!("n-{i}")).await;
        }
    });
    // Handlers are still at work on the first half.
    nats.restart_after(|| {
        assert_eq!(get(&server.url("/kv/none")).0, 404);
        std::thread::sleep(Duration::from_millis(500));
    });
    rt.block_on(async {
        for i in N / 2..N {
            publish(&js, "jobs.n", format!("n-{i}")).await;
        }
    });
    let mut missing: Vec<usize> = (0..N).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !missing.is_empty() && Instant::now() < deadline {
        missing.retain(|i| attempts(&server, &format!("n-{i}")) == 0);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(missing.is_empty(), "{} of {N} never handled: {missing:?}\n{}", missing.len(), server.log());
}

/// NATS is not up when `wharf serve` starts: HTTP serves at once, the triggers keep trying
/// (with back-off) and start consuming once nats-server comes up. The password in the store's
/// URL appears in no log line, though every failed try is logged.
#[test]
fn triggers_wait_for_an_unreachable_nats() {
    const PASSWORD: &str = "pw-s3cret-1";
    let port = free_port();
    let app = App::with_url(&format!("nats://wharf:{PASSWORD}@127.0.0.1:{port}"));
    let server = app.serve(&[]);
    assert_eq!(get(&server.url("/kv/none")).0, 404);
    wait_for(Duration::from_secs(30), || server.log().matches("cannot subscribe").count() >= 4);
    let nats = NatsServer::start_with(port, &["--user", "wharf", "--pass", PASSWORD]);
    subscribed(&server);
    assert_eq!(get(&server.url("/publish/orders.late/plum")), (200, "sent\n".into()));
    wait_for(Duration::from_secs(30), || get(&server.url("/kv/orders.late")) == (200, "plum".into()));
    runtime().block_on(async {
        let client = async_nats::ConnectOptions::with_user_and_password("wharf".into(), PASSWORD.into())
            .connect(nats.url())
            .await
            .unwrap();
        publish(&async_nats::jetstream::new(client), "jobs.late", "ok-late".into()).await;
    });
    wait_for(Duration::from_secs(30), || attempts(&server, "ok-late") == 1);
    assert!(!server.log().contains(PASSWORD), "{}", server.log());
}

/// wharf's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A publisher flooding a core trigger with 1 MB messages far faster than its one slot
/// handles them (each hangs until its 2s timeout): wharf buffers at most its byte budget
/// (64 MiB) and drops the rest, so its memory stays bounded, and it keeps serving.
#[test]
fn flood_of_large_messages_stays_bounded() {
    const MESSAGES: usize = 300;
    let nats = NatsServer::start();
    let app = App::new(nats.port);
    // The same handler on `jobs.*`, but core NATS (no stream): the flood is buffered by wharf.
    let text = std::fs::read_to_string(&app.manifest).unwrap();
    let start = text.find("stream = ").unwrap();
    let end = text.find("\n\n[component.web]").unwrap();
    std::fs::write(&app.manifest, format!("{}{}", &text[..start], &text[end..])).unwrap();
    app.jobs_slots(1);
    let server = app.serve(&["--max-concurrency", "1"]);
    subscribed(&server);
    let pid = server.child.id();
    let before = rss_kib(pid);
    let rt = runtime();
    let publisher = rt.spawn({
        let url = nats.url();
        async move {
            let client = async_nats::connect(url).await.unwrap();
            let mut payload = vec![b'x'; 1_000_000];
            payload[..4].copy_from_slice(b"hang");
            let payload = bytes::Bytes::from(payload);
            for _ in 0..MESSAGES {
                client.publish("jobs.flood", payload.clone()).await.unwrap();
            }
            client.flush().await.unwrap();
        }
    });
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !publisher.is_finished() && Instant::now() < deadline {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..100 {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(publisher.is_finished(), "the publisher did not finish within a minute");
    let grown = (peak.saturating_sub(before)) / 1024;
    assert!(grown < 160, "wharf grew by {grown} MiB for {MESSAGES} MB published");
    wait_for(Duration::from_secs(10), || server.log().contains("messages dropped"));
    // Still answering: HTTP's one instance (`--max-concurrency 1`) is its own, beside the
    // trigger's one slot busy with hanging handlers.
    assert_eq!(get(&server.url("/kv/none")).0, 404);
}
