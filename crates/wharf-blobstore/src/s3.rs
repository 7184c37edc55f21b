//! The `s3` backend: one bucket per store (configured, never chosen by a guest), a key prefix
//! per container, on `object_store`'s S3 client.
//!
//! Layout in the bucket (under the store's optional `prefix`):
//! - object `NAME` of container `C` is the key `C/NAME` (names are kept as they are, so other
//!   S3 tools see them; [`check_object_name`](crate::check_object_name) already refused empty,
//!   `.` and `..` segments and control characters);
//! - container `C` exists while the empty marker `.wharf-containers/C` does (its time is the
//!   container's `created-at`); no container name starts with `.`, so no container's objects
//!   can reach the markers.
//!
//! Writes: the staged value is uploaded with one `PUT` up to 8 MiB, else as a multipart upload
//! of 8 MiB parts, at most two in flight (host memory stays bounded whatever the size); S3
//! publishes either whole, so a reader sees the old object or the new one. Reads are one ranged
//! `GET`, streamed. Copies are server-side (`CopyObject`); a move is a copy, then a delete.
//!
//! The HTTP client is wharf's own (see [`net`]): no redirects followed (a signed request or a
//! session token never goes to another host), no proxy from the environment, connect/request/
//! read timeouts, and every response body but a successful object read bounded in size.
mod config;
mod net;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsCredential};
use object_store::path::Path;
use object_store::{
    BackoffConfig, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    StaticCredentialProvider, WriteMultipart,
};
use tokio::io::AsyncReadExt;

pub use config::{S3Config, Secret};

use crate::backend::{Backend, BlobError, BlobResult, BoxFuture, ObjectInfo, Reader, Spool, cut, once};

/// Values up to this size go up in one `PUT`; bigger ones in parts of this size.
const PART: usize = 8 * 1024 * 1024;
/// Parts of one value uploading at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Where container markers live, beside the containers (no container name starts with `.`).
const MARKERS: &str = ".wharf-containers";

/// A store in an S3 bucket (or any S3-compatible server).
pub struct S3Store {
    log: Arc<LogCtx>,
    config: S3Config,
    /// The bucket's base URL (endpoint, bucket in the path or the host).
    url: url::Url,
    clients: OnceLock<Clients>,
}

/// What failure logs name: the store, its URL, and the secrets to blank out of any text.
struct LogCtx {
    store: String,
    url: String,
    secrets: OnceLock<Vec<String>>,
}

impl LogCtx {
    /// `text` with every configured secret replaced.
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in self.secrets.get().into_iter().flatten() {
            out = out.replace(secret.as_str(), "[redacted]");
        }
        out
    }

    /// Logs a failed request (store, URL, the error's chain, redacted) and returns what the
    /// guest sees: the kind of failure, no URL.
    fn fail(&self, op: &str, e: &object_store::Error) -> BlobError {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        tracing::warn!(store = %self.store, url = %self.url, op, error = %self.redact(&text), "blobstore s3 request failed");
        BlobError(format!("storage error: s3 {op} failed: {}", kind(e)))
    }
}

/// A short, host-detail-free account of an `object_store` error.
fn kind(e: &object_store::Error) -> &'static str {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => "not found",
        E::PermissionDenied { .. } => "permission denied",
        E::Unauthenticated { .. } => "not authenticated",
        E::Precondition { .. } | E::AlreadyExists { .. } => "precondition failed",
        _ => {
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                if let Some(h) = s.downcast_ref::<object_store::client::HttpError>() {
                    return match h.kind() {
                        object_store::client::HttpErrorKind::Connect => "cannot connect to the S3 endpoint",
                        object_store::client::HttpErrorKind::Timeout => "the S3 endpoint timed out",
                        _ => "the S3 endpoint failed",
                    };
                }
                source = s.source();
            }
            "the S3 endpoint refused the request"
        }
    }
}

/// The two clients of a store: `control` for every request but object reads (bounded by the
/// request timeout), `data` for object reads (streamed as the guest reads: only the
/// connect and per-read timeouts apply).
struct Clients {
    control: AmazonS3,
    data: AmazonS3,
}

fn missing(container: &str) -> BlobError {
    BlobError(format!("container `{container}` does not exist"))
}

fn no_object(container: &str, name: &str) -> BlobError {
    BlobError(format!("object {name:?} does not exist in container `{container}`"))
}

fn seconds(t: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

impl S3Store {
    /// The store `name` as `config` describes it; the error says what is wrong with the
    /// config. Nothing is connected yet; credentials are resolved by [`Backend::prepare`].
    pub fn new(name: &str, config: S3Config) -> Result<Self, String> {
        let url = config.bucket_url()?;
        let log = Arc::new(LogCtx { store: name.to_owned(), url: url.to_string(), secrets: OnceLock::new() });
        Ok(S3Store { log, config, url, clients: OnceLock::new() })
    }

    fn build(&self, host_env: &dyn Fn(&str) -> Option<String>) -> Result<Clients, String> {
        let credential = self.config.credential(host_env)?;
        let _ = self.log.secrets.set(match &credential {
            Some(c) => [Some(&c.key_id), Some(&c.secret_key), c.token.as_ref()]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            None => Vec::new(),
        });
        let anonymous = credential.is_none();
        // A fixed provider even when anonymous: object_store would otherwise fall back to the
        // instance metadata service, a request to a host nobody configured.
        let credential =
            credential.unwrap_or(AwsCredential { key_id: String::new(), secret_key: String::new(), token: None });
        let c = &self.config;
        let allow_http = self.url.scheme() == "http";
        // Path style: object_store appends `/bucket`; virtual-host style: the bucket's own URL.
        let endpoint = if c.path_style() { c.endpoint()? } else { self.url.clone() };
        let endpoint = endpoint.as_str().trim_end_matches('/').to_owned();
        let builder = |connector: net::Connector| {
            AmazonS3Builder::new()
                .with_bucket_name(&c.bucket)
                .with_region(&c.region)
                .with_endpoint(&endpoint)
                .with_virtual_hosted_style_request(!c.path_style())
                .with_allow_http(allow_http)
                .with_skip_signature(anonymous)
                .with_credentials(Arc::new(StaticCredentialProvider::new(AwsCredential {
                    key_id: credential.key_id.clone(),
                    secret_key: credential.secret_key.clone(),
                    token: credential.token.clone(),
                })))
                .with_retry(RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: c.retries,
                    retry_timeout: Duration::from_secs(c.request_timeout.saturating_mul(2)),
                })
                .with_http_connector(connector)
                .build()
                .map_err(|e| self.log.redact(&e.to_string()))
        };
        let connect = Duration::from_secs(c.connect_timeout);
        let read = Duration::from_secs(c.read_timeout);
        let control = builder(net::Connector {
            allow_http,
            connect_timeout: connect,
            read_timeout: read,
            total_timeout: Some(Duration::from_secs(c.request_timeout)),
        })?;
        let data =
            builder(net::Connector { allow_http, connect_timeout: connect, read_timeout: read, total_timeout: None })?;
        Ok(Clients { control, data })
    }

    fn clients(&self) -> BlobResult<&Clients> {
        self.clients.get().ok_or_else(|| BlobError::new("the s3 store was not prepared"))
    }

    fn key(&self, text: String) -> BlobResult<Path> {
        Path::parse(&text).map_err(|_| BlobError(format!("invalid object key {text:?}")))
    }

    fn object(&self, container: &str, name: &str) -> BlobResult<Path> {
        self.key(format!("{}{container}/{name}", self.config.prefix()))
    }

    fn marker(&self, container: &str) -> BlobResult<Path> {
        self.key(format!("{}{MARKERS}/{container}", self.config.prefix()))
    }

    fn container_prefix(&self, container: &str) -> BlobResult<Path> {
        self.key(format!("{}{container}", self.config.prefix()))
    }

    async fn created(&self, container: &str) -> BlobResult<Option<u64>> {
        let clients = self.clients()?;
        match clients.control.head(&self.marker(container)?).await {
            Ok(meta) => Ok(Some(seconds(meta.last_modified))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.log.fail("head-container", &e)),
        }
    }

    async fn existing(&self, container: &str) -> BlobResult<&Clients> {
        match self.created(container).await? {
            Some(_) => self.clients(),
            None => Err(missing(container)),
        }
    }

    /// Uploads `spool` in parts (it is bigger than one part).
    async fn put_parts(&self, clients: &Clients, path: &Path, spool: &mut Spool) -> BlobResult<()> {
        let upload = clients.control.put_multipart(path).await.map_err(|e| self.log.fail("put", &e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let result = async {
            let mut left = spool.size;
            while left > 0 {
                let want = usize::try_from(left).unwrap_or(PART).min(PART);
                let mut part = BytesMut::zeroed(want);
                spool
                    .file
                    .read_exact(&mut part)
                    .await
                    .map_err(|e| BlobError(format!("cannot read the staged value: {}", e.kind())))?;
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| self.log.fail("put", &e))?;
                writer.put(part.freeze());
                left -= want as u64;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => writer.finish().await.map(drop).map_err(|e| self.log.fail("put", &e)),
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }
}

impl Backend for S3Store {
    fn describe(&self) -> String {
        format!("s3 {}", self.url)
    }

    fn prepare(&self, host_env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        if self.clients.get().is_none() {
            let clients = self.build(host_env)?;
            let _ = self.clients.set(clients);
        }
        Ok(())
    }

    fn create_container<'a>(&'a self, container: &'a str) -> BoxFuture<'a, BlobResult<()>> {
        Box::pin(async move {
            if self.created(container).await?.is_some() {
                return Ok(());
            }
            let clients = self.clients()?;
            let marker = self.marker(container)?;
            clients
                .control
                .put(&marker, PutPayload::new())
                .await
                .map(drop)
                .map_err(|e| self.log.fail("create-container", &e))
        })
    }

    fn container_created<'a>(&'a self, container: &'a str) -> BoxFuture<'a, BlobResult<Option<u64>>> {
        Box::pin(self.created(container))
    }

    fn delete_container<'a>(&'a self, container: &'a str) -> BoxFuture<'a, BlobResult<()>> {
        Box::pin(async move {
            let Some(_) = self.created(container).await? else { return Ok(()) };
            let clients = self.clients()?;
            // Objects first, the marker last: a failure half-way leaves a container that still
            // exists, with fewer objects, never orphans under a container that is gone.
            let prefix = self.container_prefix(container)?;
            let keys = clients.control.list(Some(&prefix)).map_ok(|meta| meta.location).boxed();
            let mut deleted = clients.control.delete_stream(keys);
            while let Some(result) = deleted.next().await {
                match result {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.log.fail("delete-container", &e)),
                }
            }
            match clients.control.delete(&self.marker(container)?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.log.fail("delete-container", &e)),
            }
        })
    }

    fn list_page<'a>(
        &'a self,
        container: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, BlobResult<Vec<String>>> {
        Box::pin(async move {
            let clients = self.existing(container).await?;
            let prefix = self.container_prefix(container)?;
            let mut listing = match after {
                Some(after) => clients.control.list_with_offset(Some(&prefix), &self.object(container, after)?),
                None => clients.control.list(Some(&prefix)),
            };
            let strip = format!("{}/", prefix.as_ref());
            let mut page = Vec::new();
            while page.len() < limit {
                match listing.next().await {
                    None => break,
                    Some(Ok(meta)) => {
                        if let Some(name) = meta.location.as_ref().strip_prefix(&strip) {
                            page.push(name.to_owned());
                        }
                    }
                    Some(Err(e)) => return Err(self.log.fail("list-objects", &e)),
                }
            }
            Ok(page)
        })
    }

    fn info<'a>(&'a self, container: &'a str, name: &'a str) -> BoxFuture<'a, BlobResult<Option<ObjectInfo>>> {
        Box::pin(async move {
            let clients = self.existing(container).await?;
            match clients.control.head(&self.object(container, name)?).await {
                Ok(meta) => Ok(Some(ObjectInfo { created_at: seconds(meta.last_modified), size: meta.size })),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.log.fail("object-info", &e)),
            }
        })
    }

    fn read<'a>(
        &'a self,
        container: &'a str,
        name: &'a str,
        start: u64,
        end: u64,
        _chunk: usize,
    ) -> BoxFuture<'a, BlobResult<Reader>> {
        Box::pin(async move {
            if start >= end {
                return Ok(once(bytes::Bytes::new()));
            }
            let clients = self.clients()?;
            let options = GetOptions { range: Some(GetRange::Bounded(start..end)), ..GetOptions::default() };
            let got = match clients.data.get_opts(&self.object(container, name)?, options).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => return Err(no_object(container, name)),
                Err(e) => return Err(self.log.fail("get-data", &e)),
            };
            let log = self.log.clone();
            let stream = got.into_stream().map_err(move |e| {
                let guest = log.fail("get-data", &e);
                std::io::Error::other(guest.0)
            });
            // At most the bytes asked for, whatever the server sends.
            Ok(cut(Box::pin(stream), end - start))
        })
    }

    fn put<'a>(&'a self, container: &'a str, name: &'a str, mut spool: Spool) -> BoxFuture<'a, BlobResult<()>> {
        Box::pin(async move {
            let clients = self.existing(container).await?;
            let path = self.object(container, name)?;
            if spool.size > PART as u64 {
                return self.put_parts(clients, &path, &mut spool).await;
            }
            let mut bytes = Vec::with_capacity(spool.size as usize);
            spool
                .file
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| BlobError(format!("cannot read the staged value: {}", e.kind())))?;
            clients.control.put(&path, PutPayload::from(bytes)).await.map(drop).map_err(|e| self.log.fail("put", &e))
        })
    }

    fn delete<'a>(&'a self, container: &'a str, name: &'a str) -> BoxFuture<'a, BlobResult<()>> {
        Box::pin(async move {
            let clients = self.existing(container).await?;
            match clients.control.delete(&self.object(container, name)?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.log.fail("delete-object", &e)),
            }
        })
    }

    fn copy<'a>(
        &'a self,
        (sc, sn): (&'a str, &'a str),
        (dc, dn): (&'a str, &'a str),
        remove_source: bool,
    ) -> BoxFuture<'a, BlobResult<()>> {
        Box::pin(async move {
            let clients = self.existing(sc).await?;
            self.existing(dc).await?;
            let (src, dst) = (self.object(sc, sn)?, self.object(dc, dn)?);
            if src == dst {
                // S3 refuses a copy onto itself; a move onto itself changes nothing.
                return match clients.control.head(&src).await {
                    Ok(_) => Ok(()),
                    Err(object_store::Error::NotFound { .. }) => Err(no_object(sc, sn)),
                    Err(e) => Err(self.log.fail("copy-object", &e)),
                };
            }
            match clients.control.copy(&src, &dst).await {
                Ok(()) => {}
                Err(object_store::Error::NotFound { .. }) => return Err(no_object(sc, sn)),
                Err(e) => return Err(self.log.fail("copy-object", &e)),
            }
            if remove_source {
                match clients.control.delete(&src).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.log.fail("move-object", &e)),
                }
            }
            Ok(())
        })
    }
}
