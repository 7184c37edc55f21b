//! `wharf serve`: real HTTP against real guest components.
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use test_programs_artifacts::{CLI_ECHO, HTTP_ECHO, HTTP_HELLO};

use crate::util::{Served, assert_one_clean_error, get, http, run, wharf};

#[test]
pub fn http_hello() {
    let server = Served::start(&[HTTP_HELLO]);
    for _ in 0..3 {
        assert_eq!(get(&server.url("/")), (200, "Hello from a Wharf component!\n".to_string()));
    }
    let log = server.log_with(&["GET / 200 main"]);
    assert!(log.contains("GET / 200 main"), "access log missing:\n{log}");
}

#[test]
pub fn http_echo() {
    let server = Served::start(&[HTTP_ECHO]);
    let mut response = http()
        .post(&server.url("/echo?q=1&name=wharf"))
        .header("X-Test", "yes")
        .header("X-Many", "a,b")
        .send("request body")
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(header("x-path-with-query").as_deref(), Some("/echo?q=1&name=wharf"));
    assert_eq!(header("x-method").as_deref(), Some("Method::Post"));
    assert_eq!(header("x-echo-x-test").as_deref(), Some("yes"));
    assert_eq!(header("x-echo-x-many").as_deref(), Some("a,b"));
    assert_eq!(response.body_mut().read_to_string().unwrap(), "request body");
}

#[test]
fn no_request_sees_the_memory_of_an_earlier_one() {
    // A WASI 0.2 component gets a fresh instance per request; its pooled memory slot is reset
    // between requests. Each request scans all of linear memory for a marker and then leaves
    // it in the lowest 64 KiB, a static, the heap and the stack: none may survive.
    let server = Served::start(&[HTTP_ECHO]);
    for _ in 0..4 {
        assert_eq!(get(&server.url("/residue")), (200, "clean\n".to_string()));
    }
    // The scan finds what survives: a reused instance keeps its memory by design.
    let reused = Served::start(&["--max-instance-reuse-count", "2", HTTP_ECHO]);
    assert_eq!(get(&reused.url("/residue")), (200, "clean\n".to_string()));
    let (status, text) = get(&reused.url("/residue"));
    assert_eq!(status, 200);
    assert!(text.starts_with("seen "), "the second request on a reused instance saw nothing: {text}");
}

#[test]
fn large_bodies_stream_both_ways() {
    let server = Served::start(&[HTTP_ECHO]);
    let size = 12 * 1024 * 1024;
    let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut response = http().post(&server.url("/echo")).send(&body[..]).unwrap();
    assert_eq!(response.status(), 200);
    let echoed = response.body_mut().with_config().limit(u64::MAX).read_to_vec().unwrap();
    assert!(echoed == body, "echoed body differs ({} bytes back)", echoed.len());

    let (status, big) = get(&server.url(&format!("/big?bytes={size}")));
    assert_eq!((status, big.len()), (200, size));
}

#[test]
fn routes_between_components() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("wharf.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"
            [application]
            name = "two"
            [[trigger.http]]
            route = "/hello"
            component = "hello"
            [[trigger.http]]
            route = "/api/..."
            component = "echo"
            [component.hello]
            source = "{HTTP_HELLO}"
            [component.echo]
            source = "{HTTP_ECHO}"
            env = ["ROLE=api"]
            "#
        ),
    )
    .unwrap();
    let server = Served::start(&[manifest.to_str().unwrap()]);
    assert_eq!(get(&server.url("/hello")), (200, "Hello from a Wharf component!\n".into()));
    assert_eq!(get(&server.url("/api/anything")), (200, "hello from http_echo\n".into()));
    let (status, body) = get(&server.url("/nowhere"));
    assert_eq!((status, body.as_str()), (404, "no route for /nowhere\n"));
    // Routing uses the path as sent: `..` does not climb out of the `/api/...` route.
    assert_eq!(get(&server.url("/api/../hello")), (200, "hello from http_echo\n".into()));
    let log = server.log_with(&["GET /hello 200 hello", "GET /api/anything 200 echo"]);
    assert!(log.contains("GET /hello 200 hello") && log.contains("GET /api/anything 200 echo"), "{log}");
}

/// A minimal HTTP server on 127.0.0.1 that answers every request with `upstream`.
pub(crate) fn upstream_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream");
        }
    });
    port
}

#[test]
fn outbound_http_follows_the_allowlist() {
    let port = upstream_server();
    let fetch = |server: &Served, target: &str| get(&server.url(&format!("/fetch?url=http://{target}/x")));
    let allowed = Served::start(&["--allow-net", &format!("http://127.0.0.1:{port}"), HTTP_ECHO]);
    assert_eq!(fetch(&allowed, &format!("127.0.0.1:{port}")), (200, "upstream 200: upstream".into()));
    let (status, body) = fetch(&allowed, &format!("127.0.0.1:{}", port.wrapping_add(1)));
    assert_eq!((status, body.as_str()), (502, "outbound request failed: ErrorCode::HttpRequestDenied"));
    let (status, body) = fetch(&allowed, &format!("localhost:{port}"));
    assert_eq!((status, body.as_str()), (502, "outbound request failed: ErrorCode::HttpRequestDenied"));

    let denied = Served::start(&["--allow-net", "*.example.test", HTTP_ECHO]);
    let (status, body) = fetch(&denied, &format!("127.0.0.1:{port}"));
    assert_eq!((status, body.as_str()), (502, "outbound request failed: ErrorCode::HttpRequestDenied"));
    let log = denied.log_with(&["outbound HTTP request denied by policy"]);
    assert!(log.contains("outbound HTTP request denied by policy"), "{log}");
}

#[test]
fn hostile_requests_fail_alone() {
    let server = Served::start(&["--timeout", "3s", "--max-memory", "32MiB", HTTP_ECHO]);
    // More spinning guests than the runtime has worker threads: each must yield.
    let looping: Vec<_> = (0..4)
        .map(|_| {
            let url = server.url("/loop");
            std::thread::spawn(move || (get(&url), Instant::now()))
        })
        .collect();
    // While they spin, other requests are served: both answers arrive before any timeout does.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(&server.url("/")).0, 200);
    assert_eq!(get(&server.url("/sleep?ms=10")).0, 200);
    let served = Instant::now();
    for request in looping {
        let ((status, body), answered) = request.join().unwrap();
        assert_eq!((status, body.as_str()), (504, "504 Gateway Timeout: guest timed out after 3s\n"));
        assert!(served < answered, "a spinning guest held up other requests until it timed out");
    }

    let (status, body) = get(&server.url("/trap"));
    assert_eq!(status, 500);
    assert!(body.starts_with("500 Internal Server Error: guest trapped: "), "{body}");
    let (status, body) = get(&server.url("/memory?mb=100"));
    assert_eq!((status, body.as_str()), (500, "500 Internal Server Error: guest exceeded its memory limit of 32MiB\n"));
    assert_eq!(get(&server.url("/memory?mb=8")), (200, "allocated 8 MiB".into()));
    assert_eq!(get(&server.url("/")).0, 200, "the server keeps serving after every attack");
}

#[test]
fn over_the_bound_gets_503() {
    let server = Served::start(&["--max-concurrency", "2", HTTP_ECHO]);
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = server.url("/sleep?ms=1500");
            std::thread::spawn(move || get(&url))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = get(&server.url("/"));
    assert_eq!((status, body.as_str()), (503, "server busy: 2 requests in flight\n"));
    for request in slow {
        assert_eq!(request.join().unwrap(), (200, "slept 1500 ms".into()));
    }
    assert_eq!(get(&server.url("/")).0, 200);
}

#[test]
fn graceful_shutdown_drains() {
    let mut server = Served::start(&[HTTP_ECHO]);
    let in_flight = {
        let url = server.url("/sleep?ms=1500");
        std::thread::spawn(move || get(&url))
    };
    std::thread::sleep(Duration::from_millis(400));
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert_eq!(in_flight.join().unwrap(), (200, "slept 1500 ms".into()));
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(server.log().contains("all requests finished"), "{}", server.log());
    assert!(std::net::TcpStream::connect(server.base.trim_start_matches("http://")).is_err());
}

#[test]
fn no_log_line_is_lost_on_shutdown() {
    // Log lines are buffered and written by a thread a few milliseconds later (`log_buffer`):
    // the lines logged just before exit (the last access lines, "all requests finished") must
    // still come out.
    let mut server = Served::start(&[HTTP_HELLO]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let lines: Vec<String> = (0..40).map(|i| format!("GET /line-{i} 200")).collect();
    for i in 0..40 {
        // One connection per request, closed after it: shutdown then has nothing to wait for.
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(stream, "GET /line-{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert_eq!(server.child.wait().unwrap().code(), Some(0));
    let needles: Vec<&str> = lines.iter().map(String::as_str).chain(["all requests finished"]).collect();
    let log = server.log_with(&needles);
    for needle in needles {
        assert!(log.contains(needle), "`{needle}` missing:\n{log}");
    }
}

#[test]
fn configuration_is_checked_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("wharf.toml");
    std::fs::write(
        &manifest,
        "[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsource = \"a.wasm\"\ntimeout = \"soon\"\n",
    )
    .unwrap();
    let path = manifest.to_str().unwrap();
    let out = run(wharf(&["serve", path])).expect_code(2);
    assert_one_clean_error(&out, &format!("{path}: component.a: invalid timeout `soon`"));

    let out = run(wharf(&["serve", "--env", "A=1", path])).expect_code(2);
    assert_one_clean_error(&out, "grant flags apply to a single component");
    let out = run(wharf(&["serve", CLI_ECHO])).expect_code(2);
    assert_one_clean_error(&out, "exports neither `wasi:http/handler@0.3.x` nor `wasi:http/incoming-handler@0.2.x`");
    let out = run(wharf(&["serve", "--shutdown-timeout", "never", HTTP_HELLO])).expect_code(2);
    assert_one_clean_error(&out, "invalid timeout `never`");
    let out = run(wharf(&["serve", "--listen", "256.0.0.1:80", HTTP_HELLO])).expect_code(2);
    assert!(out.stderr.contains("invalid socket address"), "{}", out.stderr);
}
