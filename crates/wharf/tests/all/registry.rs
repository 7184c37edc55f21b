//! A real CNCF distribution registry (Debian's `docker-registry`) on 127.0.0.1, started per
//! test with a temp config and storage, optionally behind htpasswd basic auth; plus a tiny
//! HTTP/1.1 client for pushing hand-made manifests the way other tools do.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest as _;

/// A running registry, stopped when dropped.
pub struct TestRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    dir: tempfile::TempDir,
}

impl TestRegistry {
    /// A registry without authentication.
    pub fn anonymous() -> TestRegistry {
        TestRegistry::start(None)
    }

    /// A registry that requires `user`/`password` (bcrypt htpasswd file).
    pub fn with_basic_auth(user: &str, password: &str) -> TestRegistry {
        TestRegistry::start(Some((user, password)))
    }

    fn start(auth: Option<(&str, &str)>) -> TestRegistry {
        let htpasswd = auth.map(|(user, password)| {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils) must be installed: run scripts/setup.sh");
            assert!(out.status.success(), "htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        });
        // Bind to port 0 to find a free port, then hand it to the registry; retry on a race.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let mut auth_section = String::new();
            if let Some(htpasswd) = &htpasswd {
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, htpasswd).unwrap();
                auth_section = format!("auth:\n  htpasswd:\n    realm: wharf-test\n    path: {}\n", file.display());
            }
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let host = format!("127.0.0.1:{port}");
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n{auth_section}",
                dir.path().join("data").display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("docker-registry must be installed: run scripts/setup.sh");
            let mut registry = TestRegistry { child, host, dir };
            if registry.wait_ready() {
                return registry;
            }
            let _ = registry.child.kill();
        }
        panic!("docker-registry did not start");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(response) = http(&self.host, "GET", "/v2/", None, &[])
                && (response.status == 200 || response.status == 401)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Where the registry keeps the blob `digest` on disk (distribution's filesystem driver).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir.path().join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    /// `HOST/name:tag`.
    pub fn reference(&self, name_and_tag: &str) -> String {
        format!("{}/{name_and_tag}", self.host)
    }

    /// Uploads a blob (POST, then one PUT) as other tools would; returns its digest.
    pub fn push_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let start = http(&self.host, "POST", &format!("/v2/{repository}/blobs/uploads/"), None, &[]).unwrap();
        assert_eq!(start.status, 202, "upload start failed: {}", String::from_utf8_lossy(&start.body));
        let location = start.header("location").expect("a Location header");
        let location = location.split_once(&self.host).map_or(location.as_str(), |(_, path)| path);
        let separator = if location.contains('?') { '&' } else { '?' };
        let path = format!("{location}{separator}digest={digest}");
        let done = http(&self.host, "PUT", &path, Some("application/octet-stream"), bytes).unwrap();
        assert_eq!(done.status, 201, "blob upload failed: {}", String::from_utf8_lossy(&done.body));
        digest
    }

    /// Puts a manifest (or index) under `tag`; returns its digest.
    pub fn push_manifest(&self, repository: &str, tag: &str, media_type: &str, bytes: &[u8]) -> String {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let response = http(&self.host, "PUT", &path, Some(media_type), bytes).unwrap();
        assert_eq!(response.status, 201, "manifest upload failed: {}", String::from_utf8_lossy(&response.body));
        sha256(bytes)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sha256:<hex>`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// An HTTP response.
pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

/// One HTTP/1.1 request with `Connection: close` that accepts OCI manifests and indexes.
pub fn http(
    host: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: {accept}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(content_type) = content_type {
        head += &format!("Content-Type: {content_type}\r\n");
    }
    head += "\r\n";
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let body_start = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&response[..body_start]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().into(), v.trim().into())).collect();
    Ok(Response { status, headers, body: response[body_start..].to_vec() })
}

/// A hand-written registry that serves fixed responses, for misbehaviour a real one will not
/// produce (a connection cut mid-blob). Each route is `(path, content type, body, bytes to
/// actually send before hanging up)`.
pub struct FakeRegistry {
    /// `127.0.0.1:PORT`.
    pub host: String,
}

impl FakeRegistry {
    /// Serves `routes` (and `200 {}` for `/v2/`) until the test process ends.
    pub fn start(routes: Vec<(String, String, Vec<u8>, usize)>) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split(' ').nth(1).unwrap_or("/").to_string();
                let route = routes.iter().find(|(p, ..)| *p == path);
                let (status, content_type, body, send) = match route {
                    Some((_, content_type, body, send)) => ("200 OK", content_type.as_str(), body.as_slice(), *send),
                    None if path == "/v2/" => ("200 OK", "application/json", &b"{}"[..], 2),
                    None => (
                        "404 Not Found",
                        "application/json",
                        &br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#[..],
                        63,
                    ),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body[..send.min(body.len())]);
            }
        });
        FakeRegistry { host }
    }
}

/// One request a [`FakeServer`] saw: the request line and headers, lower-cased names.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// What a [`FakeServer`] does with a request.
pub enum Reply {
    /// A whole response: status line (e.g. `401 Unauthorized`), extra header lines, body.
    Full(&'static str, Vec<String>, Vec<u8>),
    /// `200 OK` with a chunked body that repeats `chunk` until `total` bytes or the client
    /// leaves, waiting `pause` between chunks (a slow or endless answer).
    Stream { chunk: Vec<u8>, total: usize, pause: Duration },
    /// The same stream under another status line (an endless error body).
    StreamStatus(&'static str, Vec<u8>, usize, Duration),
    /// Read the request, then say nothing for `hold` (a registry that never answers).
    Silence(Duration),
}

/// A scripted HTTP/1.1 server on 127.0.0.1 for misbehaviour no real registry produces; it
/// records every request and stops with the test process. Each connection gets one reply.
pub struct FakeServer {
    /// `127.0.0.1:PORT`.
    pub host: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl FakeServer {
    /// Serves `reply(path)` to each request, one thread per connection.
    pub fn start(reply: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (log, reply) = (seen.clone(), std::sync::Arc::new(reply));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (log, reply) = (log.clone(), reply.clone());
                std::thread::spawn(move || serve_one(stream, &log, &*reply));
            }
        });
        FakeServer { host, seen }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_one(mut stream: TcpStream, log: &std::sync::Mutex<Vec<Seen>>, reply: &dyn Fn(&str) -> Reply) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let mut lines = text.lines();
    let path = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or("/").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    log.lock().unwrap().push(Seen { path: path.clone(), headers });
    match reply(&path) {
        Reply::Full(status, headers, body) => {
            let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
            for header in headers {
                head += &format!("{header}\r\n");
            }
            let _ = stream.write_all(format!("{head}\r\n").as_bytes());
            let _ = stream.write_all(&body);
        }
        Reply::Stream { chunk, total, pause } => stream_body(stream, "200 OK", chunk, total, pause),
        Reply::StreamStatus(status, chunk, total, pause) => stream_body(stream, status, chunk, total, pause),
        Reply::Silence(hold) => std::thread::sleep(hold),
    }
}

/// Answers `status` with a chunked body repeating `chunk` until `total` bytes or the client leaves.
fn stream_body(mut stream: TcpStream, status: &str, chunk: Vec<u8>, total: usize, pause: Duration) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut sent = 0;
    while sent < total {
        let piece = format!("{:x}\r\n", chunk.len());
        let ok = stream
            .write_all(piece.as_bytes())
            .and_then(|_| stream.write_all(&chunk))
            .and_then(|_| stream.write_all(b"\r\n"));
        if ok.is_err() {
            return; // the client went away
        }
        sent += chunk.len();
        std::thread::sleep(pause);
    }
    let _ = stream.write_all(b"0\r\n\r\n");
}
