//! The streaming WASI 0.3 guests of their own: `p3_echo` (a large body echoed while the host's
//! memory stays bounded) and `p3_fetch` (outbound `wasi:http/client@0.3.0`, allowed or denied
//! by policy, the upstream body streamed through).
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use sha2::{Digest, Sha256};
use test_programs_artifacts::{P3_ECHO, P3_FETCH};

use crate::util::{Served, get, http};

/// The byte at offset `i` of a test body: not a repeating power-of-two pattern, so a chunk
/// lost, doubled or reordered changes the hash.
fn pattern(i: u64) -> u8 {
    (i * 7 % 251) as u8
}

/// Peak resident memory of process `pid` (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

/// POSTs `len` bytes of [`pattern`] to `/` on `port` while reading the response on another
/// thread (a streaming echo answers before the request ends: a client that wrote everything
/// first would deadlock on back-pressure, which is the point). Returns the status line, and
/// the length and SHA-256 of the de-chunked response body.
fn echo_through(port: u16, len: u64) -> (String, u64, Vec<u8>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let head = format!("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n");
        writer.write_all(head.as_bytes()).unwrap();
        let mut chunk = vec![0u8; 256 << 10];
        let mut sent = 0u64;
        while sent < len {
            let n = chunk.len().min((len - sent) as usize);
            for (k, byte) in chunk[..n].iter_mut().enumerate() {
                *byte = pattern(sent + k as u64);
            }
            writer.write_all(&chunk[..n]).unwrap();
            sent += n as u64;
        }
    });
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        chunked |= line.to_ascii_lowercase().starts_with("transfer-encoding: chunked");
    }
    assert!(chunked, "a streamed echo has no length up front");
    let (mut total, mut hash, mut buf) = (0u64, Sha256::new(), vec![0u8; 256 << 10]);
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let size = u64::from_str_radix(size.trim_end().split(';').next().unwrap(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        let mut left = size;
        while left > 0 {
            let n = buf.len().min(left as usize);
            reader.read_exact(&mut buf[..n]).unwrap();
            hash.update(&buf[..n]);
            left -= n as u64;
        }
        total += size;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).unwrap();
    }
    sender.join().unwrap();
    (status.trim_end().to_string(), total, hash.finalize().to_vec())
}

fn pattern_sha256(len: u64) -> Vec<u8> {
    let mut hash = Sha256::new();
    let mut chunk = vec![0u8; 256 << 10];
    let mut done = 0u64;
    while done < len {
        let n = chunk.len().min((len - done) as usize);
        for (k, byte) in chunk[..n].iter_mut().enumerate() {
            *byte = pattern(done + k as u64);
        }
        hash.update(&chunk[..n]);
        done += n as u64;
    }
    hash.finalize().to_vec()
}

fn port_of(server: &Served) -> u16 {
    server.base.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
pub fn p3_echo() {
    // The guest may hold 16 MiB: a body 16 times that must stream through it.
    let server = Served::start(&["--max-memory", "16MiB", "--timeout", "120s", P3_ECHO]);
    let port = port_of(&server);
    let pid = server.child.id();
    // A small echo first, so the baseline includes the instance, the pool and the runtime.
    let (status, len, hash) = echo_through(port, 100_000);
    assert_eq!((status.as_str(), len, hash), ("HTTP/1.1 200 OK", 100_000, pattern_sha256(100_000)));
    let before = peak_rss(pid);

    const LARGE: u64 = 256 << 20;
    let (status, len, hash) = echo_through(port, LARGE);
    assert_eq!((status.as_str(), len), ("HTTP/1.1 200 OK", LARGE));
    assert!(hash == pattern_sha256(LARGE), "the 256 MiB body came back changed");
    // Neither the host nor the guest held the body: the peak grew by far less than its size.
    let grown = peak_rss(pid).saturating_sub(before);
    assert!(grown < 48 << 20, "peak RSS grew by {} MiB while echoing 256 MiB", grown >> 20);

    // Headers and an empty body; the server still answers.
    let mut response = http().get(&server.url("/anything")).call().unwrap();
    assert_eq!(response.headers().get("x-echo").unwrap(), "p3-echo");
    assert_eq!(response.body_mut().read_to_string().unwrap(), "");
}

/// An upstream on 127.0.0.1: `/x` answers `upstream`, `/missing` a 404, `/big` 8 MiB of
/// [`pattern`], `/cut` promises 1000 bytes and closes after 10.
fn upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let path = request.split(' ').nth(1).unwrap_or("/").to_string();
                let mut writer = &stream;
                let _ = match path.as_str() {
                    "/x" => writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/x-up\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream"),
                    "/big" => {
                        let len = 8u64 << 20;
                        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n");
                        let body: Vec<u8> = (0..len).map(pattern).collect();
                        writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(&body))
                    }
                    "/cut" => writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nconnection: close\r\n\r\nonly ten b"),
                    _ => writer.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"),
                };
            });
        }
    });
    port
}

#[test]
pub fn p3_fetch() {
    let port = upstream();
    let allowed = Served::start(&["--allow-net", &format!("http://127.0.0.1:{port}"), P3_FETCH]);
    let fetch = |server: &Served, url: &str| get(&server.url(&format!("/?{url}")));

    let mut response = http().get(&allowed.url(&format!("/?http://127.0.0.1:{port}/x"))).call().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-type").unwrap(), "text/x-up");
    assert_eq!(response.headers().get("x-fetched").unwrap(), &format!("http://127.0.0.1:{port}/x"));
    assert_eq!(response.body_mut().read_to_string().unwrap(), "upstream");
    // The upstream's status passes through; a large body streams through unchanged.
    assert_eq!(fetch(&allowed, &format!("http://127.0.0.1:{port}/missing")), (404, "nope".into()));
    let mut response = http().get(&allowed.url(&format!("/?http://127.0.0.1:{port}/big"))).call().unwrap();
    let body = response.body_mut().with_config().limit(u64::MAX).read_to_vec().unwrap();
    assert!(Sha256::digest(&body).to_vec() == pattern_sha256(8 << 20), "{} bytes back", body.len());
    // An upstream that breaks its promise of a length: the client never sees a complete body.
    let cut = http().get(&allowed.url(&format!("/?http://127.0.0.1:{port}/cut"))).call();
    let complete = cut.is_ok_and(|mut r| r.body_mut().read_to_string().is_ok_and(|b| b.len() == 1000));
    assert!(!complete, "a cut upstream body must not look complete");

    // Denied: another name for the same server, another port, another scheme.
    let denied = |server: &Served, url: &str| {
        let (status, body) = fetch(server, url);
        assert_eq!((status, body.as_str()), (502, "fetch failed: ErrorCode::HttpRequestDenied\n"), "{url}");
    };
    denied(&allowed, &format!("http://localhost:{port}/x"));
    denied(&allowed, &format!("http://127.0.0.1:{}/x", port.wrapping_add(1)));
    denied(&allowed, &format!("https://127.0.0.1:{port}/x"));
    assert_eq!(fetch(&allowed, "no-url").0, 400);
    // Nothing granted, nothing fetched; the refusal is logged.
    let closed = Served::start(&[P3_FETCH]);
    denied(&closed, &format!("http://127.0.0.1:{port}/x"));
    let log = closed.log_with(&["outbound HTTP request denied by policy"]);
    assert!(log.contains("outbound HTTP request denied by policy"), "{log}");
    assert_eq!(fetch(&allowed, &format!("http://127.0.0.1:{port}/x")), (200, "upstream".into()));
}
