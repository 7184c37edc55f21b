//! A real S3-compatible server for the blobstore tests: `moto` in server mode (PyPI, pinned in
//! `tests/s3/requirements.txt`, installed into `<repo>/.venv` by `scripts/setup.sh`) on
//! 127.0.0.1 and a free port; stopped when dropped. A missing venv fails the test, never skips it.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis::free_port;

/// The credentials the tests configure (moto accepts any; the tests check they never leak).
pub const KEY_ID: &str = "AKIDWHARFTEST0001";
pub const SECRET: &str = "wharf-s3-secret-9f8e7d6c5b4a";

pub struct Moto {
    child: Option<Child>,
    pub port: u16,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap()
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (connection closed after): status and body. It
/// carries a dummy signature: moto checks none, but treats an unsigned read as anonymous (403).
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20261201/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=00\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").map_or(out.len(), |i| i + 4);
    Ok((status, out[at..].to_vec()))
}

impl Moto {
    pub fn start() -> Self {
        let python = repo().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: the S3 tests need moto; run `bash scripts/setup.sh` first",
            python.display()
        );
        let port = free_port();
        let child = Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start moto");
        let moto = Moto { child: Some(child), port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(http(port, "GET", "/", b""), Ok((200, _))) {
            assert!(Instant::now() < deadline, "moto did not answer on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = http(self.port, "PUT", &format!("/{bucket}"), b"").unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }

    /// An object's bytes as stored in the bucket, if it exists.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let (status, body) = http(self.port, "GET", &format!("/{bucket}/{key}"), b"").unwrap();
        (status == 200).then_some(body)
    }

    /// The runtime config of a store `name` in `bucket`, credentials in the file.
    pub fn store_config(&self, name: &str, bucket: &str) -> String {
        format!(
            "[blobstore.stores.{name}]\ntype = \"s3\"\nendpoint = \"{}\"\nbucket = \"{bucket}\"\n\
             access_key_id = \"{KEY_ID}\"\nsecret_access_key = \"{SECRET}\"\n",
            self.url()
        )
    }

    /// Stops the server (the port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
