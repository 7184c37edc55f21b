//! Message triggers under pressure and under attack, against a real `nats-server` on
//! 127.0.0.1: triggers busy with hanging handlers leave HTTP its own instances; a component
//! cannot reach subjects outside its grant (wildcards, `_INBOX`, `$JS`, header injection, reply
//! subjects chosen by the sender, `Nats-` control headers); oversized messages stop the guest,
//! not the server; a flood of header-heavy messages stays within the byte budget; credentials
//! appear in no error.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use test_programs_artifacts::{MSG_HANDLER, MSG_HTTP};

use crate::messaging::{NatsServer, wait_for};
use crate::util::{Served, get, wharf};

/// `web` (msg_http, may publish to `orders.*`) on every path; `handler` (msg_handler) on
/// `orders.*` and `echo.*`, and on `jobs.*` with `max_concurrency = JOBS_SLOTS` (a payload
/// starting with `hang` spins until the 60s timeout). Both may publish to `done.>` only.
struct App {
    dir: tempfile::TempDir,
    manifest: PathBuf,
    runtime: PathBuf,
}

const JOBS_SLOTS: usize = 2;

impl App {
    fn new(nats: &NatsServer) -> Self {
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
subject = "echo.*"
component = "handler"
[[trigger.messaging]]
subject = "jobs.*"
component = "handler"
max_concurrency = {JOBS_SLOTS}

[component.web]
source = "{MSG_HTTP}"
keyvalue = ["msgs"]
messaging_publish = ["orders.*"]

[component.handler]
source = "{MSG_HANDLER}"
keyvalue = ["msgs"]
messaging_subscribe = ["orders.*", "echo.*", "jobs.*"]
messaging_publish = ["done.>"]
timeout = "60s"
"#
            ),
        )
        .unwrap();
        let runtime = dir.path().join("runtime.toml");
        std::fs::write(&runtime, format!("[messaging.stores.default]\ntype = \"nats\"\nurl = \"{}\"\n", nats.url()))
            .unwrap();
        App { dir, manifest, runtime }
    }

    fn serve(&self, extra: &[&str]) -> Served {
        let mut cmd = wharf(&["serve", "--listen", "127.0.0.1:0", "--runtime-config"]);
        cmd.arg(&self.runtime).args(extra).arg(&self.manifest).env("WHARF_DATA_DIR", self.dir.path().join("data"));
        let served = Served::spawn(cmd);
        wait_for(Duration::from_secs(60), || served.log().matches("message trigger subscribed").count() == 3);
        served
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Publishes each of `payloads` (with `headers`) to `subject` and flushes.
fn publish_all(nats: &NatsServer, subject: &'static str, payloads: Vec<String>, headers: async_nats::HeaderMap) {
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        for payload in payloads {
            client.publish_with_headers(subject, headers.clone(), payload.into()).await.unwrap();
        }
        client.flush().await.unwrap();
    });
}

/// Whether the handler has started on job `id` (it counts its attempts in key-value).
fn started(server: &Served, id: &str) -> bool {
    get(&server.url(&format!("/kv/attempts.{id}"))).0 == 200
}

/// Every slot of a trigger busy with handlers that hang (until their 60s timeout): HTTP (its
/// own `--max-concurrency 2`) still answers 200 and the other triggers still handle messages,
/// while the busy trigger takes no more than its slots. (A timed-out handler's slot coming
/// back is `jetstream_retries_then_dead_letters`'s.)
#[test]
fn busy_triggers_leave_http_its_instances() {
    let nats = NatsServer::start();
    let app = App::new(&nats);
    let server = app.serve(&["--max-concurrency", "2"]);
    let hangs = (0..=JOBS_SLOTS).map(|i| format!("hang-{i}")).collect();
    publish_all(&nats, "jobs.x", hangs, async_nats::HeaderMap::new());
    wait_for(Duration::from_secs(30), || (0..JOBS_SLOTS).all(|i| started(&server, &format!("hang-{i}"))));
    let busy = Instant::now();
    for i in 0..6 {
        let answer = get(&server.url(&format!("/publish/orders.o{i}/v{i}")));
        assert_eq!(answer, (200, "sent\n".into()), "{}", server.log());
    }
    for i in 0..6 {
        wait_for(Duration::from_secs(10), || get(&server.url(&format!("/kv/orders.o{i}"))) == (200, format!("v{i}")));
    }
    // All of that while the trigger's slots were taken: the next hang has not started.
    let elapsed = busy.elapsed();
    assert!(!started(&server, &format!("hang-{JOBS_SLOTS}")), "a third handler ran ({elapsed:?})\n{}", server.log());
    assert!(!server.log().contains("busy"), "{}", server.log());
}

/// A trigger's `max_concurrency` must be from 1 to 10,000; the error names the field.
#[test]
fn trigger_max_concurrency_is_checked() {
    let nats = NatsServer::start();
    let app = App::new(&nats);
    for bad in ["0", "-1", "10001"] {
        let text = std::fs::read_to_string(&app.manifest).unwrap();
        let text = text.replace(&format!("max_concurrency = {JOBS_SLOTS}"), &format!("max_concurrency = {bad}"));
        let path = app.dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = wharf(&["serve", "--listen", "127.0.0.1:0"]).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("max_concurrency"), "{bad}: {stderr}");
    }
}

/// The web component (granted `orders.*` only) tries subjects no grant covers, by send and by
/// request: every one is refused, and a NATS subscriber on everything sees none of them.
#[test]
fn subjects_outside_the_grant_are_refused() {
    let nats = NatsServer::start();
    let app = App::new(&nats);
    let server = app.serve(&[]);
    let rt = runtime();
    let (client, mut all) = rt.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let all = client.subscribe(">").await.unwrap();
        client.flush().await.unwrap();
        (client, all)
    });
    let (status, report) = get(&server.url("/attack"));
    assert_eq!(status, 200, "{report}");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 2 * 18 + 1, "{report}");
    for line in &lines[..lines.len() - 1] {
        assert!(line.contains("PermissionDenied(") || line.contains("Other(\"invalid subject"), "{line}");
    }
    assert!(lines.last().unwrap().contains("no reply subject"), "{report}");
    // The control: a granted subject goes through, and is the only thing the server saw.
    assert_eq!(get(&server.url("/publish/orders.ok/x")), (200, "sent\n".into()));
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut seen = Vec::new();
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, all.next()).await {
            seen.push(msg.subject.to_string());
        }
        // The handler's `orders.*` trigger writes to key-value only; nothing else moves.
        assert_eq!(seen, ["orders.ok"], "{seen:?}");
        drop(client);
    });
}

/// Reply subjects are chosen by whoever sends the message: the handler (granted `done.>`)
/// answers a literal `_INBOX.` subject or one it may publish to, and refuses a subject it may
/// not publish to, a wildcard inbox, or `$JS` API subjects.
#[test]
fn reply_subjects_chosen_by_the_sender_are_checked() {
    let nats = NatsServer::start();
    let app = App::new(&nats);
    let server = app.serve(&[]);
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let mut watch = Vec::new();
        for pattern in ["forbidden.>", "_INBOX.>", "orders.>", "done.>", "$JS.API.>"] {
            watch.push(client.subscribe(pattern).await.unwrap());
        }
        client.flush().await.unwrap();
        let replies =
            ["forbidden.x", "_INBOX.>", "_INBOX.*", "orders.new", "$JS.API.STREAM.DELETE.JOBS", "done.x", "_INBOX.ok"];
        for reply in replies {
            client.publish_with_reply("echo.x", reply, "hi".into()).await.unwrap();
        }
        client.flush().await.unwrap();
        let mut seen = Vec::new();
        for sub in &mut watch {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, sub.next()).await {
                if msg.payload == "re: hi" {
                    seen.push(msg.subject.to_string());
                }
            }
        }
        seen.sort();
        assert_eq!(seen, ["_INBOX.ok", "done.x"], "{}", server.log());
    });
    let refused = ["forbidden.x", "_INBOX.>", "_INBOX.*", "orders.new", "$JS.API.STREAM.DELETE.JOBS"];
    let lines: Vec<String> = refused.iter().map(|r| format!("replying to `{r}` is not granted")).collect();
    let log = server.log_with(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    for line in &lines {
        assert!(log.contains(line), "{line}: {log}");
    }
}

/// Metadata a guest sets: no `Nats-` control header (a rollup would purge a stream), no header
/// injection, at most 64 entries; and a message past 1 MiB stops the guest's request with an
/// error while the server keeps serving.
#[test]
fn guest_headers_and_sizes_are_bounded() {
    let nats = NatsServer::start();
    let app = App::new(&nats);
    let server = app.serve(&[]);
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let mut sub = client.subscribe("orders.meta").await.unwrap();
        client.flush().await.unwrap();
        assert_eq!(get(&server.url("/meta/orders.meta")), (200, "sent\n".into()));
        let msg = tokio::time::timeout(Duration::from_secs(10), sub.next()).await.unwrap().unwrap();
        let headers = msg.headers.expect("headers");
        let names: Vec<String> = headers.iter().map(|(name, _)| name.to_string()).collect();
        assert!(names.iter().any(|n| n == "X-Ok"), "{names:?}");
        assert!(!names.iter().any(|n| n.to_ascii_lowercase().starts_with("nats-")), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("X-Bad")), "{names:?}");
        assert_eq!(names.len(), 64, "X-Ok and the first 63 of 200 entries");
    });
    assert_eq!(get(&server.url("/big/1000000")), (200, "sent\n".into()));
    let (status, body) = get(&server.url("/big/1048577"));
    assert_eq!(status, 500, "{body}");
    let why = "exceeds the limit of 1048576";
    assert!(body.contains(why) || server.log().contains(why), "{body}\n{}", server.log());
    assert_eq!(get(&server.url("/publish/orders.still/up")), (200, "sent\n".into()));
}

/// wharf's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A flood of messages whose weight is in their headers (about 900 KB each, a 4-byte payload)
/// far faster than the trigger's 2 slots handle them: the byte budget counts headers too, so
/// wharf's memory stays bounded and the excess is dropped.
#[test]
fn flood_of_header_heavy_messages_stays_bounded() {
    const MESSAGES: usize = 300;
    let nats = NatsServer::start();
    let app = App::new(&nats);
    let server = app.serve(&[]);
    let pid = server.child.id();
    let before = rss_kib(pid);
    let mut headers = async_nats::HeaderMap::new();
    for i in 0..90 {
        headers.insert(format!("X-Fill-{i}").as_str(), "h".repeat(10_000).as_str());
    }
    let publisher = std::thread::spawn({
        let url = nats.url();
        move || {
            runtime().block_on(async {
                let client = async_nats::connect(url).await.unwrap();
                for _ in 0..MESSAGES {
                    client.publish_with_headers("jobs.flood", headers.clone(), "hang".into()).await.unwrap();
                }
                client.flush().await.unwrap();
            })
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
    let grown = peak.saturating_sub(before) / 1024;
    eprintln!("wharf grew by {grown} MiB for {MESSAGES} messages of 900 KB headers");
    // 64 MiB of buffered messages, and what is in transit (async-nats parses every message
    // before wharf weighs it); without headers in the budget all 270 MB would be held.
    assert!(grown < 220, "wharf grew by {grown} MiB for {MESSAGES} messages of 900 KB headers");
    wait_for(Duration::from_secs(10), || server.log().contains("messages dropped"));
    assert_eq!(get(&server.url("/kv/none")).0, 404);
}

/// NATS credentials from the runtime config (token; user and password) appear in no log line
/// while the server refuses them, and in no error about a malformed value.
#[test]
fn nats_credentials_stay_out_of_logs_and_errors() {
    const TOKEN: &str = "tok-s3cret-77";
    const PASSWORD: &str = "pw-s3cret-88";
    let nats = NatsServer::start_with(crate::redis::free_port(), &["--user", "wharf", "--pass", "right"]);
    let app = App::new(&nats);
    for (auth, secret) in
        [(format!("token = \"{TOKEN}\""), TOKEN), (format!("user = \"wharf\"\npassword = \"{PASSWORD}\""), PASSWORD)]
    {
        let text = format!("[messaging.stores.default]\ntype = \"nats\"\nurl = \"{}\"\n{auth}\n", nats.url());
        std::fs::write(&app.runtime, text).unwrap();
        let mut cmd = wharf(&["serve", "--listen", "127.0.0.1:0", "--runtime-config"]);
        cmd.arg(&app.runtime).arg(&app.manifest).env("WHARF_DATA_DIR", app.dir.path().join("data"));
        let server = Served::spawn(cmd);
        wait_for(Duration::from_secs(30), || server.log().matches("cannot subscribe").count() >= 3);
        let (status, body) = get(&server.url("/publish/orders.x/y"));
        assert_eq!(status, 403, "{body}");
        assert!(!body.contains(secret), "{body}");
        assert!(!server.log().contains(secret), "{}", server.log());
    }
    // A numeric password is a wrong type: the error says so without quoting it.
    let text =
        format!("[messaging.stores.default]\ntype = \"nats\"\nurl = \"{}\"\npassword = 98765432109\n", nats.url());
    std::fs::write(&app.runtime, text).unwrap();
    let out = wharf(&["serve", "--listen", "127.0.0.1:0", "--runtime-config"])
        .arg(&app.runtime)
        .arg(&app.manifest)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid type: integer") && !stderr.contains("98765432109"), "{stderr}");
}
