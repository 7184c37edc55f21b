//! Pushes over [`Transport`]'s bounded HTTP, as pulls are: oci-client's push reads a refusal's
//! body whole (a registry streaming an endless error grows the process without bound) and has
//! no deadline for a whole request (a registry that trickles keeps a push alive forever).
//!
//! The protocol is the distribution spec's monolithic upload: `HEAD` the blob (skip it if the
//! registry has it), `POST .../blobs/uploads/`, `PUT <Location>?digest=...` with the bytes, and
//! `PUT .../manifests/<tag>` with the exact manifest bytes. Every request has a deadline
//! ([`RegistryConfig::timeout`], plus time for the bytes at [`MIN_UPLOAD_RATE`] for uploads);
//! success bodies are never read and refusals are read through the same capped path as pulls
//! (status and error codes only). The credential goes to the registry's own origin only: an
//! upload `Location` on another host (a storage service) is sent the bytes, never the
//! credential, and redirects follow the transport's policy (at most 5, never to plain HTTP).
use std::time::Duration;

use oci_client::Reference;

use crate::Error;
use crate::transport::{RegistryConfig, Session, Transport, status_error};

/// The slowest upload a push waits for: a blob of N bytes may take the timeout plus N / this
/// many seconds.
pub const MIN_UPLOAD_RATE: u64 = 64 * 1024;

impl Transport {
    fn base(&self, reference: &Reference) -> Result<reqwest::Url, Error> {
        let registry = reference.resolve_registry();
        let url = format!("{}://{registry}/v2/{}/", self.scheme(registry), reference.repository());
        reqwest::Url::parse(&url).map_err(|e| Error::Registry { reference: reference.whole(), detail: e.to_string() })
    }

    /// Sends `request` (to `url`) with the session's credential when `url` is the registry's
    /// own origin; a status other than `expected` becomes an error.
    async fn send_checked(
        &self,
        reference: &Reference,
        session: &Session,
        url: &reqwest::Url,
        request: reqwest::RequestBuilder,
        expected: &[u16],
    ) -> Result<reqwest::Response, Error> {
        let mut request = request;
        if url.origin() == self.base(reference)?.origin()
            && let Some(header) = session.header()
        {
            request = request.header(reqwest::header::AUTHORIZATION, header);
        }
        let response = request.send().await.map_err(|e| Self::transport_error(reference, e))?;
        if expected.contains(&response.status().as_u16()) {
            return Ok(response);
        }
        Err(session.explain(status_error(reference, response, self.config.timeout).await))
    }

    /// Whether the registry already holds blob `digest` of `reference`'s repository.
    pub async fn blob_exists(&self, reference: &Reference, session: &Session, digest: &str) -> Result<bool, Error> {
        let url = self.join(reference, &format!("blobs/{digest}"))?;
        let request = self.http.head(url.clone()).timeout(self.config.timeout);
        match self.send_checked(reference, session, &url, request, &[200, 404]).await?.status().as_u16() {
            200 => Ok(true),
            _ => Ok(false),
        }
    }

    /// Uploads `bytes` as blob `digest` in one `PUT`.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        session: &Session,
        digest: &str,
        bytes: Vec<u8>,
    ) -> Result<(), Error> {
        let start = self.join(reference, "blobs/uploads/")?;
        let request = self.http.post(start.clone()).timeout(self.config.timeout).header("content-length", "0");
        let started = self.send_checked(reference, session, &start, request, &[202]).await?;
        let location = started
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|location| start.join(location).ok())
            .filter(|url| matches!(url.scheme(), "http" | "https"));
        drop(started);
        let Some(mut upload) = location else {
            return Err(Error::Registry {
                reference: reference.whole(),
                detail: "the registry started an upload without a usable Location".into(),
            });
        };
        upload.query_pairs_mut().append_pair("digest", digest);
        let request = self
            .http
            .put(upload.clone())
            .timeout(upload_timeout(&self.config, bytes.len()))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        self.send_checked(reference, session, &upload, request, &[201, 204]).await?;
        Ok(())
    }

    /// Puts `bytes` (of `media_type`) as the manifest tagged by `reference`.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        session: &Session,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(), Error> {
        let target = reference.tag().or(reference.digest()).unwrap_or("latest");
        let url = self.join(reference, &format!("manifests/{target}"))?;
        let request = self
            .http
            .put(url.clone())
            .timeout(upload_timeout(&self.config, bytes.len()))
            .header(reqwest::header::CONTENT_TYPE, media_type)
            .body(bytes);
        self.send_checked(reference, session, &url, request, &[200, 201, 202, 204]).await?;
        Ok(())
    }

    fn join(&self, reference: &Reference, path: &str) -> Result<reqwest::Url, Error> {
        self.base(reference)?
            .join(path)
            .map_err(|e| Error::Registry { reference: reference.whole(), detail: e.to_string() })
    }
}

/// The deadline of a request that sends `len` bytes.
fn upload_timeout(config: &RegistryConfig, len: usize) -> Duration {
    config.timeout + Duration::from_secs(len as u64 / MIN_UPLOAD_RATE)
}
