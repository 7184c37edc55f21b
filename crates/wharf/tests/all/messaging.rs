//! wasi:messaging and message triggers: the in-process broker, and a real `nats-server`
//! (127.0.0.1, a free port, JetStream on in a temp dir) started per test. `scripts/setup.sh`
//! installs it; a missing server fails the test rather than skipping it.
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use test_programs_artifacts::{MSG_HANDLER, MSG_HTTP};

use crate::redis::free_port;
use crate::util::{Served, get, wharf};

pub struct NatsServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl NatsServer {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// A server on `port` (one a client was told about before it was up).
    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, &[])
    }

    /// A server on `port` with more command-line `args` (`--user`, `--pass`).
    pub fn start_with(port: u16, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        NatsServer { child: Self::spawn(port, dir.path(), &args), port, dir, args }
    }

    fn spawn(port: u16, dir: &Path, args: &[String]) -> Child {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start nats-server; run scripts/setup.sh (apt-get install nats-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Kills the server, runs `meanwhile`, and starts it again on the same port and store.
    pub fn restart_after(&mut self, meanwhile: impl FnOnce()) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        meanwhile();
        self.child = Self::spawn(self.port, self.dir.path(), &self.args);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An app: `web` (msg_http) on every path, `handler` (msg_handler) on message triggers.
struct App {
    dir: tempfile::TempDir,
    manifest: PathBuf,
    runtime: PathBuf,
}

impl App {
    fn new(nats: Option<&NatsServer>, queue: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let queue = queue.map(|q| format!("queue = \"{q}\"\n")).unwrap_or_default();
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
subject = "echo.*"
component = "handler"
[[trigger.messaging]]
subject = "sneaky.*"
component = "handler"
[[trigger.messaging]]
subject = "work.*"
{queue}component = "handler"

[component.web]
source = "{MSG_HTTP}"
keyvalue = ["msgs"]
messaging_publish = ["orders.*", "echo.*", "sneaky.*", "work.*"]

[component.handler]
source = "{MSG_HANDLER}"
keyvalue = ["msgs"]
messaging_subscribe = ["orders.*", "echo.*", "sneaky.*", "work.*"]
messaging_publish = ["done.>"]
timeout = "10s"
"#
            ),
        )
        .unwrap();
        let runtime = dir.path().join("runtime.toml");
        let section = match nats {
            Some(nats) => format!("[messaging.stores.default]\ntype = \"nats\"\nurl = \"{}\"\n", nats.url()),
            None => String::new(),
        };
        std::fs::write(&runtime, section).unwrap();
        App { dir, manifest, runtime }
    }

    fn serve(&self, data: &str) -> Served {
        let mut cmd = wharf(&["serve", "--listen", "127.0.0.1:0", "--runtime-config"]);
        cmd.arg(&self.runtime).arg(&self.manifest).env("WHARF_DATA_DIR", self.dir.path().join(data));
        let served = Served::spawn(cmd);
        wait_for(Duration::from_secs(60), || served.log().matches("message trigger subscribed").count() == 4);
        served
    }
}

pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "condition not met within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Publish, trigger, key-value, request-reply, denial and a failing handler, on one app.
fn round_trip(server: &Served) {
    assert_eq!(get(&server.url("/publish/orders.new/apple")), (200, "sent\n".into()));
    wait_for(Duration::from_secs(30), || get(&server.url("/kv/orders.new")) == (200, "apple".into()));
    assert_eq!(get(&server.url("/request/echo.x/hi")), (200, "re: hi".into()));
    // Not granted to the web component: refused before anything is sent.
    let (status, body) = get(&server.url("/publish/payments.new/x"));
    assert_eq!(status, 403);
    assert!(body.contains("PermissionDenied") && body.contains("payments.new"), "{body}");
    // The handler may not publish to `forbidden.x` either.
    get(&server.url("/publish/sneaky.a/x"));
    wait_for(Duration::from_secs(30), || get(&server.url("/kv/denied")).1.contains("PermissionDenied"));
    // A failing handler is logged and the trigger goes on.
    get(&server.url("/publish/orders.bad/fail"));
    wait_for(Duration::from_secs(30), || server.log().contains("handler returned an error: asked to fail"));
    assert_eq!(get(&server.url("/publish/orders.after/pear")), (200, "sent\n".into()));
    wait_for(Duration::from_secs(30), || get(&server.url("/kv/orders.after")) == (200, "pear".into()));
}

#[test]
pub fn msg_handler() {
    // In-process broker (the default store): everything in one process.
    let app = App::new(None, None);
    let server = app.serve("data");
    round_trip(&server);
}

#[test]
pub fn msg_http() {
    let nats = NatsServer::start();
    let app = App::new(Some(&nats), None);
    let server = app.serve("data");
    round_trip(&server);
}

#[test]
fn messaging_trigger_needs_a_subscribe_grant() {
    let app = App::new(None, None);
    let text = std::fs::read_to_string(&app.manifest).unwrap().replace(
        "\"sneaky.*\", \"work.*\"]\nmessaging_publish = [\"done",
        "\"sneaky.*\"]\nmessaging_publish = [\"done",
    );
    std::fs::write(&app.manifest, text).unwrap();
    let out = wharf(&["serve", "--listen", "127.0.0.1:0"]).arg(&app.manifest).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("does not grant subscribing to `work.*`"), "{stderr}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Publishes `work.<i>` for `ids` and counts `done.<i>` until every id arrived (or time ran out).
async fn publish_and_count(
    client: &async_nats::Client,
    done: &mut async_nats::Subscriber,
    ids: std::ops::Range<usize>,
    counts: &mut [u32],
) {
    for i in ids.clone() {
        client.publish(format!("work.{i}"), bytes::Bytes::from(i.to_string())).await.unwrap();
    }
    client.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while counts[ids.clone()].contains(&0) {
        let Ok(Some(msg)) = tokio::time::timeout_at(deadline, done.next()).await else { break };
        let id: usize = std::str::from_utf8(&msg.payload).unwrap().parse().unwrap();
        counts[id] += 1;
    }
}

/// N messages to a queue group across two `wharf serve` processes: each handled exactly once.
#[test]
fn nats_queue_group_handles_each_message_once() {
    const N: usize = 10_000;
    let nats = NatsServer::start();
    let app = App::new(Some(&nats), Some("workers"));
    let (a, b) = (app.serve("a"), app.serve("b"));
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let mut done = client.subscribe("done.*").await.unwrap();
        let mut counts = vec![0u32; N];
        publish_and_count(&client, &mut done, 0..N, &mut counts).await;
        // Late duplicates would arrive now.
        while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(2), done.next()).await {
            let id: usize = std::str::from_utf8(&msg.payload).unwrap().parse().unwrap();
            counts[id] += 1;
        }
        let missing = counts.iter().filter(|&&c| c == 0).count();
        let twice = counts.iter().filter(|&&c| c > 1).count();
        assert_eq!((missing, twice), (0, 0), "{missing} never handled, {twice} handled more than once");
    });
    // Both members took part.
    for server in [&a, &b] {
        assert!(!server.log().contains("handler failed"), "{}", server.log());
    }
}

/// nats-server killed and restarted: wharf keeps serving HTTP meanwhile and its trigger
/// handles messages again once the server is back.
#[test]
fn nats_restart_reconnects() {
    let mut nats = NatsServer::start();
    let app = App::new(Some(&nats), None);
    let server = app.serve("data");
    let rt = runtime();
    let mut counts = vec![0u32; 201];
    rt.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let mut done = client.subscribe("done.*").await.unwrap();
        publish_and_count(&client, &mut done, 0..100, &mut counts).await;
    });
    assert!(counts[..100].iter().all(|&c| c == 1));
    nats.restart_after(|| {
        // Down: HTTP still answers (key-value is local), publishing fails or is buffered.
        assert_eq!(get(&server.url("/kv/none")).0, 404);
    });
    rt.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let mut done = client.subscribe("done.*").await.unwrap();
        // Wharf resubscribes once it has reconnected: probe (id 200) until a handler answers.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while counts[200] == 0 {
            assert!(tokio::time::Instant::now() < deadline, "wharf did not resubscribe after the restart");
            client.publish("work.200", bytes::Bytes::from("200")).await.unwrap();
            if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(500), done.next()).await {
                let id: usize = std::str::from_utf8(&msg.payload).unwrap().parse().unwrap();
                counts[id] += 1;
            }
        }
        publish_and_count(&client, &mut done, 100..200, &mut counts).await;
    });
    let missing = counts[100..].iter().filter(|&&c| c == 0).count();
    assert_eq!(missing, 0, "after the restart, {missing} of 100 messages were not handled");
    assert_eq!(get(&server.url("/publish/orders.back/ok")), (200, "sent\n".into()));
}
