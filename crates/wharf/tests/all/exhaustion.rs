//! The servers cannot be exhausted by connections or sessions: `wharf serve` and `wharf mcp
//! --http` with 1,100 idle and half-sent connections, slow headers, idle keep-alive, 200 MCP
//! sessions against a cap, and `--auth-token-env`. Every loop is bounded; 127.0.0.1 only.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use test_programs_artifacts::{HTTP_ECHO, HTTP_HELLO, MCP_CONFORMANCE, MCP_TYPES};

use crate::util::{Served, http, wharf};

/// Open file descriptors of `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `count` connections to `host`; every other one sends half a request head and stops.
fn hog(host: &str, count: usize) -> Vec<TcpStream> {
    (0..count)
        .filter_map(|i| {
            let mut stream = TcpStream::connect(host).ok()?;
            if i % 2 == 1 {
                let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
            }
            Some(stream)
        })
        .collect()
}

/// Whether the server closes `stream` within `within` (reads until EOF or an error).
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return start.elapsed() < within,
        }
    }
}

#[test]
fn serve_survives_idle_and_slow_connections() {
    let server = Served::start(&["--header-timeout", "2s", HTTP_HELLO]);
    let host = server.base.trim_start_matches("http://").to_string();
    let hogs = hog(&host, 1_100);
    assert_eq!(hogs.len(), 1_100);
    let start = Instant::now();
    let mut response = http().get(&server.url("/")).call().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body_mut().read_to_string().unwrap(), "Hello from a Wharf component!\n");
    assert!(start.elapsed() < Duration::from_secs(5), "a normal request took {:?}", start.elapsed());
    let fds = open_fds(server.child.id());
    assert!(fds < 700, "at most 512 connections (default cap) are kept open, got {fds} descriptors");
    drop(hogs);

    // A half-sent head and an idle keep-alive connection are closed after --header-timeout.
    let mut slow = TcpStream::connect(&host).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
    let mut idle = TcpStream::connect(&host).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(closed_within(&mut slow, Duration::from_secs(6)), "a slow head is cut");
    assert!(closed_within(&mut idle, Duration::from_secs(6)), "an idle keep-alive connection is closed");
    assert_eq!(http().get(&server.url("/")).call().unwrap().status(), 200);
}

#[test]
fn serve_connection_cap_is_a_flag() {
    let server = Served::start(&["--max-connections", "20", HTTP_HELLO]);
    let host = server.base.trim_start_matches("http://").to_string();
    let hogs = hog(&host, 200);
    std::thread::sleep(Duration::from_millis(500));
    assert!(open_fds(server.child.id()) < 150, "{}", open_fds(server.child.id()));
    assert_eq!(http().get(&server.url("/")).call().unwrap().status(), 200);
    drop(hogs);
}

/// A plain GET on a fresh connection with a 5 s timeout: the status line, or why it failed.
fn status_line(host: &str, path: &str) -> Result<String, std::io::Error> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[test]
fn serve_closes_clients_that_stop_reading() {
    // Each of 10 clients asks for 50 MB and reads none of it: its response is in progress, so
    // its connection counts as busy and is never closed to make room. Before the write timeout
    // they held all 10 places for ever and every later client was turned away.
    let server = Served::start(&[
        "--max-connections",
        "10",
        "--max-concurrency",
        "32",
        "--write-timeout",
        "1s",
        "--timeout",
        "30s",
        HTTP_ECHO,
    ]);
    let host = server.base.trim_start_matches("http://").to_string();
    let stuck: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut stream = TcpStream::connect(&host).unwrap();
            stream.write_all(b"GET /big?bytes=50000000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let start = Instant::now();
    assert_eq!(status_line(&host, "/").unwrap(), "HTTP/1.1 200", "a client that reads is served");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    // The stalled ones were closed: reading one gets what was in flight, then its end.
    let mut first = &stuck[0];
    first.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = Vec::new();
    let ended = std::io::copy(&mut first, &mut sink);
    assert!(!matches!(&ended, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock), "still open: {ended:?}");
    assert!(sink.len() < 50_000_000, "the whole body was sent");
}

/// A connection to `host` with a small receive buffer, so that the server sees the few bytes
/// it reads as progress (on loopback the default buffer opens the window 64 KiB at a time).
fn small_window_connection(host: &str) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(host.parse().unwrap()).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// Reads `chunk` bytes from `stream` every `every` for `during`, then as fast as it comes until
/// the server ends the connection or sends nothing for 3 s; the bytes read in all.
fn read_slowly_then_drain(stream: &mut TcpStream, chunk: usize, every: Duration, during: Duration) -> usize {
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let (start, mut total, mut buf) = (Instant::now(), 0, vec![0u8; chunk.max(1 << 16)]);
    loop {
        let slow = start.elapsed() < during;
        match stream.read(&mut buf[..if slow { chunk } else { 1 << 16 }]) {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n,
        }
        if slow {
            std::thread::sleep(every);
        }
    }
}

#[test]
fn serve_closes_clients_that_read_a_trickle() {
    // A client that reads a few bytes before each write timeout is a client that stopped
    // reading: 1 KiB every 200 ms (~5 KiB/s, under 64 KiB per 2 s of waiting), cut; a slow
    // but honest reader beside it is not. On Linux the kernel wakes a blocked writer only once
    // about a third of its send buffer (up to 4 MB) has drained, so this trickle never shows
    // wharf any progress; the unit test `listener::tests::a_trickle_of_progress_...` covers
    // the case where it does (a small send buffer), which used to reset the timer.
    let server = Served::start(&["--write-timeout", "2s", "--timeout", "60s", HTTP_ECHO]);
    let host = server.base.trim_start_matches("http://").to_string();
    let request = b"GET /big?bytes=50000000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let mut trickle = small_window_connection(&host);
    trickle.write_all(request).unwrap();
    // Beside it, a slow but honest reader (~2.5 MB/s) gets the whole body.
    let mut honest = TcpStream::connect(&host).unwrap();
    honest.write_all(request).unwrap();
    let honest = std::thread::spawn(move || {
        read_slowly_then_drain(&mut honest, 256 << 10, Duration::from_millis(100), Duration::from_secs(6))
    });
    let read = read_slowly_then_drain(&mut trickle, 1024, Duration::from_millis(200), Duration::from_secs(6));
    assert!(read < 50_000_000, "the trickling client got the whole body ({read} bytes)");
    let read = honest.join().unwrap();
    assert!(read > 50_000_000, "the honest reader was cut after {read} bytes");
}

/// A `wharf mcp --http 127.0.0.1:0` process; killed on drop.
struct McpServer {
    child: Child,
    host: String,
}

impl McpServer {
    fn start(args: &[&str], env: &[(&str, &str)]) -> McpServer {
        use std::io::BufRead;
        let mut cmd: Command = wharf(&["mcp", "--http", "127.0.0.1:0"]);
        cmd.args(args).args([MCP_TYPES]).envs(env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some((_, rest)) = line.split_once(" on http://") {
                    let _ = tx.send(rest.trim_end_matches("/mcp").to_string());
                }
            }
        });
        let host = rx.recv_timeout(Duration::from_secs(120)).expect("wharf mcp --http did not start");
        McpServer { child, host }
    }

    /// POSTs one JSON-RPC message; returns status, session id and body.
    fn post(&self, session: Option<&str>, token: Option<&str>, body: &str) -> (u16, Option<String>, String) {
        let mut request = http()
            .post(format!("http://{}/mcp", self.host))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        if let Some(id) = session {
            request = request.header("Mcp-Session-Id", id);
        }
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.send(body).unwrap();
        let id = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(String::from);
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (response.status().as_u16(), id, text)
    }

    fn initialize(&self, token: Option<&str>) -> (u16, Option<String>) {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
        let (status, id, _) = self.post(None, token, body);
        (status, id)
    }

    /// `notifications/initialized` then `tools/list`: the session is in use.
    fn use_session(&self, id: &str) -> u16 {
        self.post(Some(id), None, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        self.post(Some(id), None, r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#).0
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn mcp_http_survives_idle_connections_and_caps_sessions() {
    let server = McpServer::start(&["--max-sessions", "20", "--unused-session-timeout", "2s"], &[]);
    let hogs = hog(&server.host, 1_100);
    let start = Instant::now();
    let (status, first) = server.initialize(None);
    assert_eq!(status, 200);
    assert!(start.elapsed() < Duration::from_secs(5), "initialize took {:?}", start.elapsed());
    assert!(open_fds(server.child.id()) < 700, "{}", open_fds(server.child.id()));
    drop(hogs);

    // 200 sessions that never call: each new one closes the oldest unused one.
    let first = first.unwrap();
    for _ in 0..200 {
        assert_eq!(server.initialize(None).0, 200);
    }
    assert_eq!(server.use_session(&first), 404, "the first, unused session was closed to make room");

    // 20 sessions in use: the 21st is refused, not an in-use one closed.
    let used: Vec<String> = (0..20).map(|_| server.initialize(None).1.unwrap()).collect();
    for id in &used {
        assert_eq!(server.use_session(id), 200);
    }
    assert_eq!(server.initialize(None).0, 503);
    assert_eq!(server.use_session(&used[0]), 200);

    // An unused session dies after --unused-session-timeout (reaped every 5 s).
    drop(server);
    let server = McpServer::start(&["--unused-session-timeout", "1s"], &[]);
    let (_, id) = server.initialize(None);
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(server.use_session(&id.unwrap()), 404);
}

#[test]
fn mcp_http_cuts_slow_request_bodies() {
    // 10 clients send a POST's headers, then one byte of its body a second: the body is read
    // before rmcp sees the request, so each connection was busy (never closed to make room)
    // for as long as the client kept trickling, and 10 of them locked everyone else out.
    let server = McpServer::start(&["--max-connections", "10", "--header-timeout", "1s"], &[]);
    let mut slow: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut stream = TcpStream::connect(&server.host).unwrap();
            let head = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                        Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{";
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(1));
        for stream in &mut slow {
            let _ = stream.write_all(b" ");
        }
    }
    let start = Instant::now();
    assert_eq!(server.initialize(None).0, 200, "a normal client is served");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    let mut answer = String::new();
    slow[0].set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = slow[0].read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[test]
fn mcp_http_notification_streams_do_not_lock_others_out() {
    // One session opens 10 `GET /mcp` notification streams (and reads them): each is a response
    // in progress, so they kept all 10 connections busy and every new client was reset.
    let server = McpServer::start(&["--max-connections", "10"], &[]);
    let (_, id) = server.initialize(None);
    let id = id.unwrap();
    assert_eq!(server.use_session(&id), 200);
    let streams: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut stream = TcpStream::connect(&server.host).unwrap();
            let head = format!(
                "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: {id}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).unwrap();
            let mut status = [0u8; 12];
            stream.read_exact(&mut status).unwrap();
            assert_eq!(&status, b"HTTP/1.1 200");
            stream
        })
        .collect();
    let start = Instant::now();
    assert_eq!(server.initialize(None).0, 200, "a new client is served");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    drop(streams);
}

#[test]
fn mcp_http_bearer_token() {
    let server =
        McpServer::start(&["--auth-token-env", "WHARF_TEST_MCP_TOKEN"], &[("WHARF_TEST_MCP_TOKEN", "t0ken-1")]);
    assert_eq!(server.initialize(None).0, 401);
    assert_eq!(server.initialize(Some("t0ken-2")).0, 401);
    assert_eq!(server.initialize(Some("t0ken-1")).0, 200);
    let mut cmd = wharf(&["mcp", "--http", "127.0.0.1:0", "--auth-token-env", "WHARF_TEST_NO_SUCH_VAR", MCP_TYPES]);
    cmd.env_remove("WHARF_TEST_NO_SUCH_VAR");
    let out = crate::util::run(cmd).expect_code(2);
    crate::util::assert_one_clean_error(&out, "WHARF_TEST_NO_SUCH_VAR is not set");
}

/// POSTs `body` to `host`'s `/mcp` on a new connection (closed after the answer); the raw answer,
/// empty if the server closed the connection without one.
fn post_once(host: &str, session: Option<&str>, body: &str) -> String {
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let session = session.map(|id| format!("Mcp-Session-Id: {id}\r\n")).unwrap_or_default();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{session}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn mcp_http_calls_that_cannot_start_do_not_hold_connections() {
    // 80 connections each call a tool that waits (sleeping, not spinning) until `--timeout`: 64
    // run (the call cap). Before, the other 16 waited for a slot, each keeping its connection
    // busy (never closed to make room), so with `--max-connections 80` every new client was
    // reset for two timeouts in a row; 512 such calls (the default cap) locked others out for 8.
    let conf = format!("conf={MCP_CONFORMANCE}");
    let server =
        McpServer::start(&["--max-connections", "80", "--timeout", "4s", "--tool-names", "underscore", &conf], &[]);
    let (_, id) = server.initialize(None);
    let id = id.unwrap();
    assert_eq!(server.use_session(&id), 200);
    let callers: Vec<_> = (0..80)
        .map(|n| {
            let (host, id) = (server.host.clone(), id.clone());
            let call = format!(
                r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"conf_wait_for_cancel","arguments":{{}}}}}}"#,
                100 + n
            );
            std::thread::spawn(move || post_once(&host, Some(&id), &call))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let start = Instant::now();
    let answer = post_once(
        &server.host,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "a new client was not served: {answer:?}");
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    let answers: Vec<String> = callers.into_iter().map(|t| t.join().unwrap()).collect();
    let refused = answers.iter().filter(|a| a.contains("maximum of 64 tool calls")).count();
    let timed_out = answers.iter().filter(|a| a.contains("timed out")).count();
    assert_eq!((refused, timed_out), (16, 64), "{:?}", &answers[..2]);
}
