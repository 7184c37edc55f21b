//! Hostile guests: each attack ends in a specific, clear outcome and the host keeps working.
use std::process::Stdio;
use std::time::Duration;

use test_programs_artifacts::{CLI_NET, CLI_RECURSION, CLI_SPEW, HTTP_ECHO};

use crate::util::{Served, get, http, run, wharf};

#[test]
pub fn cli_recursion() {
    let out = run(wharf(&["run", CLI_RECURSION])).expect_code(134);
    assert_eq!(out.stdout, "recursing\n");
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: guest trapped: wasm trap: "), "{}", out.stderr);
}

#[test]
pub fn cli_spew() {
    // Gigabytes to stdout and stderr: streamed through, never buffered; the timeout ends it.
    let mut cmd = wharf(&["run", "--timeout", "2s", CLI_SPEW, "100"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    assert_eq!(cmd.status().unwrap().code(), Some(124));
}

#[test]
fn denied_address_spellings() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for target in [format!("127.0.0.1:{port}"), format!("[::1]:{port}"), format!("[::ffff:127.0.0.1]:{port}")] {
        // The listener never answers: if the connect were allowed, the timeout makes it exit 124.
        let args = ["run", "--timeout", "10s", "--allow-net", "*.example.test", CLI_NET, "connect", &target];
        let out = run(wharf(&args)).expect_code(1);
        assert!(out.stdout.starts_with("error: "), "{target}: {}", out.stdout);
    }
}

#[test]
fn endless_response_body_is_cut_at_the_timeout() {
    let server = Served::start(&["--timeout", "2s", HTTP_ECHO]);
    let mut response = http().get(&server.url("/forever")).call().unwrap();
    assert_eq!(response.status(), 200);
    let read = std::io::copy(&mut response.body_mut().with_config().limit(u64::MAX).reader(), &mut std::io::sink());
    assert!(read.is_err(), "an endless body must be cut off, got {read:?}");
    assert_eq!(get(&server.url("/")).0, 200);
}

#[test]
fn outbound_host_header_cannot_be_forged() {
    let server = Served::start(&["--allow-net", "http://127.0.0.1:9", HTTP_ECHO]);
    let (status, body) = get(&server.url("/fetch?url=http://127.0.0.1:9/&host=evil.test"));
    assert_eq!((status, body.as_str()), (502, "outbound request failed: cannot set Host: HeaderError::Forbidden"));
}

#[test]
fn request_flood_is_bounded() {
    let server = Served::start(&["--max-concurrency", "4", HTTP_ECHO]);
    let url = server.url("/sleep?ms=100");
    let clients: Vec<_> = (0..40)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || (0..10).map(|_| get(&url).0).collect::<Vec<u16>>())
        })
        .collect();
    let statuses: Vec<u16> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    assert_eq!(statuses.len(), 400);
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    assert!(statuses.contains(&503) && statuses.contains(&200), "{statuses:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(&server.url("/")).0, 200);
}
