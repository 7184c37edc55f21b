//! A registry cannot hang or exhaust `wharf pull`, `push`, `run REF` or `serve REF`: one that accepts
//! and never answers, one that trickles, and endless manifests, token answers and error bodies
//! (fake servers on 127.0.0.1, each stream bounded so the test stops by itself).
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_programs_artifacts::CLI_ECHO;

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

/// A registry for pushes: `/v2/` answers, blobs are missing, and `upload(path)` answers the
/// upload and manifest requests.
fn push_registry(upload: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeServer {
    FakeServer::start(move |path| match path {
        "/v2/" => Reply::Full("200 OK", vec![], b"{}".to_vec()),
        p if p.starts_with("/v2/app/blobs/sha256:") => Reply::Full("404 Not Found", vec![], vec![]),
        p => upload(p),
    })
}

/// An endless error body: 64 KiB every 10 ms (never slow enough for a read timeout).
fn endless_error() -> Reply {
    Reply::StreamStatus("500 Internal Server Error", vec![b'x'; 64 * 1024], 4 << 30, Duration::from_millis(10))
}

#[test]
fn push_has_timeouts_and_bounded_reads() {
    let env = Env::new();
    let started = |p: &str| p.starts_with("/v2/app/blobs/uploads/") && p.contains("digest=");
    let accepted = |location: &str| Reply::Full("202 Accepted", vec![format!("Location: {location}")], vec![]);
    let registries = [
        // Accepts the connection, reads the request, never answers: at the upload's start,
        // at its `PUT`, at the manifest.
        (push_registry(|_| Reply::Silence(Duration::from_secs(120))), "did not answer within the timeout"),
        (
            push_registry(move |p| if started(p) { Reply::Silence(Duration::from_secs(120)) } else { accepted("u1") }),
            "did not answer within the timeout",
        ),
        (
            push_registry(move |p| match p {
                p if p.starts_with("/v2/app/manifests/") => Reply::Silence(Duration::from_secs(120)),
                p if started(p) => Reply::Full("201 Created", vec![], vec![]),
                _ => accepted("/v2/app/blobs/uploads/u1"),
            }),
            "did not answer within the timeout",
        ),
        // Error bodies that never end, at each step.
        (push_registry(|_| endless_error()), "answered 500 Internal Server Error"),
        (
            push_registry(move |p| if started(p) { endless_error() } else { accepted("u1?state=x") }),
            "answered 500 Internal Server Error",
        ),
        (
            push_registry(move |p| match p {
                p if p.starts_with("/v2/app/manifests/") => endless_error(),
                p if started(p) => Reply::Full("201 Created", vec![], vec![]),
                _ => accepted("u1"),
            }),
            "answered 500 Internal Server Error",
        ),
        // A redirect loop.
        (push_registry(|p| Reply::Full("307 Temporary Redirect", vec![format!("Location: {p}")], vec![])), "redirect"),
    ];
    for (server, needle) in &registries {
        let reference = format!("{}/app:v1", server.host);
        let args = ["push", "--registry-timeout", "2s", "--insecure", &server.host, CLI_ECHO, &reference];
        let (out, took) = run_bounded(env.wharf(&args), Duration::from_secs(40));
        assert_eq!(out.code, 1, "{needle}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "expected {needle:?} in {}", out.stderr);
        assert!(!out.stderr.contains("xxxx"), "the error body was echoed: {}", out.stderr);
        assert!(took < Duration::from_secs(20), "{needle}: took {took:?}");
    }
}

#[test]
fn push_credentials_stay_with_the_registry() {
    // The upload's Location and a redirect both point at another host: it may get the bytes
    // (a storage service), never the credential.
    let other = FakeServer::start(|_| Reply::Full("201 Created", vec![], vec![]));
    let elsewhere = format!("http://{}/upload", other.host);
    // `/v2/` asks for Basic authentication, so the registry itself gets the credential.
    let registry = FakeServer::start(move |p| match p {
        "/v2/" => Reply::Full("401 Unauthorized", vec!["WWW-Authenticate: Basic realm=\"r\"".into()], vec![]),
        p if p.starts_with("/v2/app/blobs/sha256:") => Reply::Full("404 Not Found", vec![], vec![]),
        p if p.starts_with("/v2/app/manifests/") => {
            Reply::Full("307 Temporary Redirect", vec![format!("Location: {elsewhere}/manifest")], vec![])
        }
        _ => Reply::Full("202 Accepted", vec![format!("Location: {elsewhere}")], vec![]),
    });
    let env = Env::new();
    let reference = format!("{}/app:v1", registry.host);
    let mut cmd = env.wharf(&["push", "--registry-timeout", "5s", "--insecure", &registry.host, CLI_ECHO, &reference]);
    cmd.env("WHARF_REGISTRY_USERNAME", "user")
        .env("WHARF_REGISTRY_PASSWORD", "hunter2")
        .env("WHARF_REGISTRY_HOST", &registry.host);
    let (out, _) = run_bounded(cmd, Duration::from_secs(40));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let uploads = other.seen();
    assert!(uploads.len() >= 2, "{uploads:?}");
    assert!(uploads.iter().all(|s| s.header("authorization").is_none()), "credential sent elsewhere: {uploads:?}");
    let own = registry.seen();
    assert!(own.iter().any(|s| s.path.starts_with("/v2/app/blobs/uploads/") && s.header("authorization").is_some()));
}
