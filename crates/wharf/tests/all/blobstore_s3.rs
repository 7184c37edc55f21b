//! The `s3` blobstore backend: against a real moto server (`moto.rs`) for what S3 stores and
//! how it fails, and against hostile fake servers on 127.0.0.1 (`Fake`) for what a bad or
//! compromised endpoint can do: redirect elsewhere, never answer, answer for ever.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::blobstore::{Blob, big_round_trip, writers_and_readers};
use crate::moto::{KEY_ID, Moto, SECRET};
use crate::util::{Run, run};

#[test]
fn blobstore_s3_keeps_objects_under_container_prefixes() {
    let moto = Moto::start();
    moto.create_bucket("keys");
    let config = format!("{}prefix = \"apps/one\"\n", moto.store_config("default", "keys"));
    let blob = Blob::new(&config);
    blob.run(&["c"], &["write", "c", "dir/x", "7", "1", "1"]).expect_code(0);
    assert_eq!(moto.get("keys", "apps/one/c/dir/x"), Some(vec![7u8; 1024]));
    assert_eq!(moto.get("keys", "apps/one/.wharf-containers/c"), Some(Vec::new()), "the container marker");
    let out = blob.run(&["c"], &["read", "c", "dir/x", "1"]).expect_code(0);
    assert!(out.stdout.contains("read 1"), "{out:?}");
    // Escaping names are refused before S3 sees them; nothing lands outside the prefix.
    blob.run(&["c"], &["escape", "c"]).expect_code(0);
    assert_eq!(moto.get("keys", "escaped"), None);
    assert_eq!(moto.get("keys", "apps/escaped"), None);
    assert_eq!(moto.get("keys", "apps/one/escaped"), None);
}

#[test]
fn blobstore_s3_256_mib_streams_with_bounded_memory() {
    let moto = Moto::start();
    big_round_trip(&Blob::s3(&moto, "big"), "s3");
}

#[test]
fn blobstore_s3_concurrent_writers_and_readers_see_whole_values() {
    let moto = Moto::start();
    moto.create_bucket("race");
    // moto itself answers some concurrent PUTs with 500 (seen outside wharf too); this test is
    // about torn values, so give the client room to retry those.
    writers_and_readers(&Blob::new(&format!("{}retries = 8\n", moto.store_config("default", "race"))));
}

#[test]
fn blobstore_s3_ungranted_container_is_denied() {
    let moto = Moto::start();
    let blob = Blob::s3(&moto, "deny");
    blob.run(&["c"], &["write", "c", "x", "7", "1", "1"]).expect_code(0);
    let out = blob.run(&["other"], &["get", "c"]).expect_code(1);
    assert!(out.stdout.contains("access denied: container `c` is not granted"), "{out:?}");
    let out = blob.run(&[], &["all", "c", "d"]).expect_code(1);
    assert!(out.stdout.contains("access denied"), "{out:?}");
    assert_eq!(moto.get("deny", "c/x"), Some(vec![7u8; 1024]), "untouched");
}

/// The secret is nowhere in `out`.
#[track_caller]
fn assert_no_secret(out: &Run) {
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(SECRET), "secret leaked:\n{text}");
    }
}

/// Everything the S3 path logs, at its most verbose (not wasmtime's compiler).
const TRACE: &str = "warn,wharf_blobstore=trace,object_store=trace,reqwest=trace,hyper=trace,hyper_util=trace";

/// S3 down (the server stopped, its port closed): the guest gets an error, wharf logs the store
/// and its URL, and no output anywhere (trace-level logs included) holds the secret.
#[test]
fn blobstore_s3_down_is_an_error_logged_without_credentials() {
    let mut moto = Moto::start();
    moto.create_bucket("down");
    let config = format!(
        "[blobstore.stores.cloud]\ntype = \"s3\"\nendpoint = \"{}\"\nbucket = \"down\"\n\
         access_key_id_env = \"WHARF_TEST_S3_KEY\"\nsecret_access_key_env = \"WHARF_TEST_S3_SECRET\"\n\
         retries = 1\nconnect_timeout = 2\n",
        moto.url()
    );
    let blob = Blob::new(&config);
    let with_env = |args: &[&str], log: &str| {
        let mut cmd = blob.cmd(&["c=cloud"], args);
        cmd.env("WHARF_TEST_S3_KEY", KEY_ID).env("WHARF_TEST_S3_SECRET", SECRET).env("WHARF_LOG", log);
        run(cmd)
    };
    let out = with_env(&["write", "c", "x", "7", "1", "1"], TRACE);
    assert_eq!(out.code, 0, "{out:?}");
    assert_no_secret(&out);
    moto.stop();
    let started = Instant::now();
    for log in ["warn", TRACE] {
        let out = with_env(&["read", "c", "x", "1"], log);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stdout.contains("storage error: s3 head-container failed"), "{out:?}");
        assert!(out.stdout.contains("cannot connect"), "{out:?}");
        assert!(!out.stdout.contains("127.0.0.1"), "the guest is not told the URL: {out:?}");
        assert!(out.stderr.contains("store=cloud"), "{}", out.stderr);
        assert!(out.stderr.contains(&format!("{}/down", moto.url())), "{}", out.stderr);
        assert_no_secret(&out);
    }
    assert!(started.elapsed() < Duration::from_secs(60), "failing took {:?}", started.elapsed());
    // A named variable that is not set: refused before anything runs, the variable named.
    let out = run(blob.cmd(&["c=cloud"], &["get", "c"]));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("environment variable `WHARF_TEST_S3_KEY`"), "{out:?}");
}

/// A hostile S3 endpoint on `ip`, answering every request with `answer`; records request heads.
struct Fake {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

/// How long a fake keeps accepting, and the longest a handler holds a connection.
const FAKE_LIFETIME: Duration = Duration::from_secs(90);

impl Fake {
    fn start(ip: &str, answer: fn(&str, &mut TcpStream)) -> Fake {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + FAKE_LIFETIME;
            while Instant::now() < until {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    // Keep-alive: answer request after request on the connection.
                    loop {
                        let mut head = Vec::new();
                        let mut byte = [0u8];
                        while !head.ends_with(b"\r\n\r\n") {
                            if stream.read(&mut byte).unwrap_or(0) == 0 {
                                return;
                            }
                            head.push(byte[0]);
                        }
                        let head = String::from_utf8_lossy(&head).into_owned();
                        seen.lock().unwrap().push(head.clone());
                        answer(&head, &mut stream);
                    }
                });
            }
        });
        Fake { port, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// A blob setup whose store `default` is this fake (bucket `b`), short timeouts, no retries.
    fn blob(&self, extra: &str) -> Blob {
        Blob::new(&format!(
            "[blobstore.stores.default]\ntype = \"s3\"\nendpoint = \"http://127.0.0.1:{}\"\nbucket = \"bkt\"\n\
             access_key_id = \"{KEY_ID}\"\nsecret_access_key = \"{SECRET}\"\nretries = 0\n\
             request_timeout = 2\nread_timeout = 2\nconnect_timeout = 2\n{extra}",
            self.port
        ))
    }
}

const HEAD_OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nLast-Modified: Tue, 01 Dec 2026 00:00:00 GMT\r\n\
                       ETag: \"e\"\r\n\r\n";

/// Writes `chunk` as chunked-encoding frames until the peer goes or the time is up.
fn endless(stream: &mut TcpStream, chunk: &[u8]) {
    let until = Instant::now() + Duration::from_secs(60);
    let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
    while Instant::now() < until && stream.write_all(&frame).is_ok() {}
}

/// A redirect to another address is never followed, and the configured proxy variables are
/// ignored: the signed request (and the session token) reach the endpoint only.
#[test]
fn blobstore_s3_credentials_go_to_the_endpoint_only() {
    let elsewhere = Fake::start("127.0.0.2", |_, stream| {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    });
    static TARGET: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    TARGET.set(elsewhere.port).unwrap();
    let fake = Fake::start("127.0.0.1", |_, stream| {
        let to = format!("http://127.0.0.2:{}/b/x", TARGET.get().unwrap());
        let answer = format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n");
        let _ = stream.write_all(answer.as_bytes());
    });
    let blob = fake.blob("session_token = \"wharf-session-token-1234\"\n");
    let proxy = format!("http://127.0.0.2:{}", elsewhere.port);
    let mut cmd = blob.cmd(&["c"], &["get", "c"]);
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        cmd.env(var, &proxy);
    }
    let out = run(cmd);
    assert_eq!(out.code, 1, "{out:?}");
    assert_no_secret(&out);
    assert!(!out.stderr.contains("wharf-session-token-1234"), "{}", out.stderr);
    let heads = fake.heads();
    assert!(!heads.is_empty(), "the endpoint was never asked");
    let signed = heads[0].to_ascii_lowercase();
    assert!(signed.contains(&format!("credential={}", KEY_ID.to_ascii_lowercase())), "{signed}");
    assert!(signed.contains("x-amz-security-token: wharf-session-token-1234"), "{signed}");
    assert!(!signed.contains(&SECRET.to_ascii_lowercase()), "the secret itself is never sent: {signed}");
    assert_eq!(elsewhere.heads(), Vec::<String>::new(), "a request left for another host");
}

/// A server that accepts and never answers: the call fails after the request timeout.
#[test]
fn blobstore_s3_silent_server_times_out() {
    let fake = Fake::start("127.0.0.1", |_, _| std::thread::sleep(Duration::from_secs(30)));
    let started = Instant::now();
    let out = fake.blob("").run(&["c"], &["get", "c"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("timed out"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert_no_secret(&out);
}

/// The most resident memory (KiB) of `blob`'s wharf running `args`, and its output.
fn peak_of(blob: &Blob, args: &[&str]) -> (u64, std::process::Output) {
    let mut child = blob.cmd(&["c"], args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "still running after a minute");
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        if let Some(kib) = status.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
            peak = peak.max(kib.trim().trim_end_matches("kB").trim().parse().unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (peak, child.wait_with_output().unwrap())
}

/// A listing that never ends is cut at 16 MiB (an error for the guest); an object read whose
/// server sends far more than it announced yields exactly the object's size. Memory stays bounded in both.
#[test]
fn blobstore_s3_endless_responses_are_bounded() {
    let fake = Fake::start("127.0.0.1", |head, stream| {
        let line = head.lines().next().unwrap_or_default().to_owned();
        if line.starts_with("HEAD ") {
            let _ = stream.write_all(HEAD_OK.as_bytes());
        } else if line.contains('?') {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n");
            endless(stream, "<Contents><Key>c/endless</Key></Contents>".repeat(1000).as_bytes());
        } else {
            let _ = stream.write_all(
                b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/10\r\nLast-Modified: Tue, 01 Dec 2026 \
                  00:00:00 GMT\r\nETag: \"e\"\r\nContent-Length: 10\r\n\r\n",
            );
            // Far more than it announced, for as long as the peer reads.
            let until = Instant::now() + Duration::from_secs(60);
            while Instant::now() < until && stream.write_all(&[b'a'; 65536]).is_ok() {}
        }
    });
    let blob = fake.blob("");
    let (peak, out) = peak_of(&blob, &["list", "c"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("error: read-stream-object-names"), "{stdout}");
    assert!(peak < 160 * 1024, "listing: peak RSS {} MiB", peak / 1024);
    let (peak, out) = peak_of(&blob, &["read", "c", "x", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("read 1"), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(peak < 160 * 1024, "object read: peak RSS {} MiB", peak / 1024);
}
