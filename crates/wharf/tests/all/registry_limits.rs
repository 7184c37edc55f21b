//! A registry cannot hang or exhaust `wharf pull`, `run REF` or `serve REF`: one that accepts
//! and never answers, one that trickles, and endless manifests, token answers and error bodies
//! (fake servers on 127.0.0.1, each stream bounded so the test stops by itself).
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::oci::Env;
use crate::registry::{FakeServer, Reply};
use crate::util::Run;

/// Runs `cmd`, killing it after `limit`; returns the run and how long it took.
fn run_bounded(mut cmd: Command, limit: Duration) -> (Run, Duration) {
    let start = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {limit:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (run, start.elapsed())
}

#[test]
fn a_registry_that_never_answers_times_out() {
    let silent = FakeServer::start(|_| Reply::Silence(Duration::from_secs(120)));
    let reference = format!("{}/app:v1", silent.host);
    let env = Env::new();
    // The default (30 s) applies with no flag.
    let (out, took) =
        run_bounded(env.wharf(&["pull", "--insecure", &silent.host, &reference]), Duration::from_secs(90));
    let out = out.expect_code(1);
    assert!(out.stderr.contains("did not answer within the timeout"), "{}", out.stderr);
    assert!(took >= Duration::from_secs(25), "{took:?}");
    for args in [
        vec!["pull", "--registry-timeout", "2s"],
        vec!["run", "--registry-timeout", "2s"],
        vec!["inspect", "--registry-timeout", "2s"],
        vec!["serve", "--listen", "127.0.0.1:0", "--registry-timeout", "2s"],
    ] {
        let mut args = args.clone();
        args.extend(["--insecure", &silent.host, &reference]);
        let (out, took) = run_bounded(env.wharf(&args), Duration::from_secs(30));
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("did not answer within the timeout"), "{args:?}: {}", out.stderr);
        assert!(took < Duration::from_secs(15), "{args:?} took {took:?}");
    }
}

#[test]
fn endless_and_slow_answers_are_cut() {
    // Manifest: 200 MiB of JSON whitespace, fast; and 1 byte every 300 ms.
    let endless = |_: &str| Reply::Stream { chunk: vec![b' '; 64 * 1024], total: 200 << 20, pause: Duration::ZERO };
    let fast = FakeServer::start(endless);
    let slow = FakeServer::start(|path| match path {
        "/v2/" => Reply::Full("200 OK", vec![], b"{}".to_vec()),
        _ => Reply::Stream { chunk: b" ".to_vec(), total: 1000, pause: Duration::from_millis(300) },
    });
    let fast_manifest = FakeServer::start(|path| match path {
        "/v2/" => Reply::Full("200 OK", vec![], b"{}".to_vec()),
        _ => Reply::Stream { chunk: vec![b' '; 64 * 1024], total: 200 << 20, pause: Duration::ZERO },
    });
    // A token service and an error body that never end.
    let tokens = FakeServer::start(endless);
    let realm = format!("http://{}/token", tokens.host);
    let challenged = FakeServer::start(move |_| {
        Reply::Full("401 Unauthorized", vec![format!("WWW-Authenticate: Bearer realm=\"{realm}\"")], vec![])
    });
    let env = Env::new();
    for (server, needle) in [
        (&fast_manifest, "the manifest is larger than 4194304 bytes"),
        (&slow, "did not answer within the timeout"),
        (&challenged, "the token service's answer is larger than 262144 bytes"),
        // /v2/ itself streams forever: its body is only drained up to the cap, then ignored;
        // the manifest request gets the same endless stream and is cut.
        (&fast, "the manifest is larger than 4194304 bytes"),
    ] {
        let reference = format!("{}/app:v1", server.host);
        let args = ["pull", "--registry-timeout", "3s", "--insecure", &server.host, &reference];
        let (out, took) = run_bounded(env.wharf(&args), Duration::from_secs(30));
        assert_eq!(out.code, 1, "{}: {}", server.host, out.stderr);
        assert!(out.stderr.contains(needle), "expected {needle:?} in {}", out.stderr);
        assert!(took < Duration::from_secs(15), "{needle}: took {took:?}");
    }
}

#[test]
fn an_endless_error_body_is_not_read_or_echoed() {
    let server = FakeServer::start(|path| match path {
        "/v2/" => Reply::Full("200 OK", vec![], b"{}".to_vec()),
        _ => Reply::Full("500 Internal Server Error", vec![], b"internal-secret: db password is hunter2".to_vec()),
    });
    let env = Env::new();
    let reference = format!("{}/app:v1", server.host);
    let (out, _) = run_bounded(env.wharf(&["pull", "--insecure", &server.host, &reference]), Duration::from_secs(30));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("500 Internal Server Error") && !out.stderr.contains("hunter2"), "{}", out.stderr);
}
