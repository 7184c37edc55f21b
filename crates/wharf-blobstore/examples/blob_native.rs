//! The native peer of `bench/blobstore.sh`: writes then reads one object of MIB MiB straight
//! through the backend's own library, no guest, no Wharf. Prints `write-ms N read-ms N`.
//!
//! - `blob_native fs DIR MIB`: a file in DIR, written in 256 KiB writes, synced (as the `fs`
//!   store syncs before its rename), read back in 1 MiB reads;
//! - `blob_native s3 ENDPOINT BUCKET MIB`: `object_store`'s S3 client (the crate the `s3` store
//!   uses) over plain reqwest: a multipart upload of 8 MiB parts, two in flight (as the store
//!   does), then one streamed GET.
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStoreExt, StaticCredentialProvider, WriteMultipart};

fn pattern(i: u64) -> u8 {
    (i ^ (i >> 8) ^ (i >> 16)) as u8
}

fn chunk(len: usize) -> Vec<u8> {
    (0..len as u64).map(pattern).collect()
}

fn fs(dir: &str, size: u64) -> (u128, u128) {
    let path = std::path::Path::new(dir).join("native.bin");
    let data = chunk(256 * 1024);
    let started = Instant::now();
    let mut file = std::fs::File::create(&path).expect("create");
    let mut at = 0;
    while at < size {
        file.write_all(&data).expect("write");
        at += data.len() as u64;
    }
    file.sync_all().expect("sync");
    let write = started.elapsed().as_millis();
    let started = Instant::now();
    let mut file = std::fs::File::open(&path).expect("open");
    let mut buf = vec![0; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    assert_eq!(read, size);
    let _ = std::fs::remove_file(path);
    (write, started.elapsed().as_millis())
}

#[derive(Debug)]
struct Plain(reqwest::Client);

#[async_trait::async_trait]
impl HttpService for Plain {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        use http_body_util::BodyExt;
        let (parts, body) = req.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| HttpError::new(HttpErrorKind::Request, e))?;
        let mut request = reqwest::Request::new(parts.method, url);
        *request.headers_mut() = parts.headers;
        *request.body_mut() = Some(reqwest::Body::wrap(body));
        let response = self.0.execute(request).await.map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
        let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
        let body = HttpResponseBody::new(body.map_err(|e| HttpError::new(HttpErrorKind::Unknown, e)));
        Ok(HttpResponse::from_parts(parts, body))
    }
}

#[derive(Debug)]
struct PlainConnector;

impl HttpConnector for PlainConnector {
    fn connect(&self, _: &ClientOptions) -> object_store::Result<HttpClient> {
        // reqwest is built without a default crypto provider (as in the store).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(HttpClient::new(Plain(reqwest::Client::new())))
    }
}

async fn s3(endpoint: &str, bucket: &str, size: u64) -> (u128, u128) {
    let store = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_allow_http(true)
        .with_credentials(Arc::new(StaticCredentialProvider::new(AwsCredential {
            key_id: "bench".into(),
            secret_key: "bench".into(),
            token: None,
        })))
        .with_http_connector(PlainConnector)
        .build()
        .expect("s3 client");
    let path = Path::from("native/bench");
    let part = 8 * 1024 * 1024;
    let data = bytes::Bytes::from(chunk(part));
    let started = Instant::now();
    let mut writer = WriteMultipart::new_with_chunk_size(store.put_multipart(&path).await.expect("upload"), part);
    let mut at = 0;
    while at < size {
        writer.wait_for_capacity(2).await.expect("part");
        let n = (size - at).min(part as u64) as usize;
        writer.put(data.slice(..n));
        at += n as u64;
    }
    writer.finish().await.expect("finish");
    let write = started.elapsed().as_millis();
    let started = Instant::now();
    let mut stream = store.get(&path).await.expect("get").into_stream();
    let mut read = 0u64;
    while let Some(bytes) = stream.next().await {
        read += bytes.expect("read").len() as u64;
    }
    assert_eq!(read, size);
    (write, started.elapsed().as_millis())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib = |s: &str| s.parse::<u64>().expect("MIB") * 1024 * 1024;
    let (write, read) = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["fs", dir, size] => fs(dir, mib(size)),
        ["s3", endpoint, bucket, size] => {
            tokio::runtime::Runtime::new().expect("runtime").block_on(s3(endpoint, bucket, mib(size)))
        }
        _ => {
            eprintln!("usage: blob_native fs DIR MIB | s3 ENDPOINT BUCKET MIB");
            std::process::exit(2)
        }
    };
    println!("write-ms {write} read-ms {read}");
}
