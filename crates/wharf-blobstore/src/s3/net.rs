//! The HTTP client under `object_store` (its `HttpConnector` seam), built by wharf so that:
//! - redirects are never followed: a redirect is an error, so a signed request (or the
//!   `x-amz-security-token` header, which reqwest does not strip on a cross-host redirect)
//!   reaches the configured endpoint and nothing else;
//! - no proxy comes from the environment (libraries read no environment variables);
//! - `http://` is allowed only when the endpoint is `http://`;
//! - connect, per-read and (for `total_timeout`) whole-request timeouts apply;
//! - every response body but a successful object read (a `GET` without a query, which the
//!   backend reads only as far as the range it asked for) is cut at [`MAX_BODY`]: a listing or
//!   an error page that never ends cannot grow the host's memory.
use std::time::Duration;

use http_body_util::BodyExt;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
};

/// The most bytes of a listing, an error or any other non-object response.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Builds [`Guarded`] clients (see the module docs).
#[derive(Debug, Clone)]
pub struct Connector {
    pub allow_http: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub total_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        // reqwest is built without a default crypto provider; pick ring once per process (as
        // wharf-oci does). Only `https://` endpoints use it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!self.allow_http)
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")));
        if let Some(total) = self.total_timeout {
            builder = builder.timeout(total);
        }
        let client = builder
            .build()
            .map_err(|e| object_store::Error::Generic { store: "S3", source: Box::new(e.without_url()) })?;
        Ok(HttpClient::new(Guarded { client }))
    }
}

/// A reqwest client behind the rules above.
#[derive(Debug)]
struct Guarded {
    client: reqwest::Client,
}

fn http_error(e: reqwest::Error) -> HttpError {
    let kind = if e.is_timeout() {
        HttpErrorKind::Timeout
    } else if e.is_connect() {
        HttpErrorKind::Connect
    } else if e.is_body() || e.is_request() {
        HttpErrorKind::Request
    } else if e.is_decode() {
        HttpErrorKind::Decode
    } else {
        HttpErrorKind::Unknown
    };
    HttpError::new(kind, e.without_url())
}

/// A response body over [`MAX_BODY`].
#[derive(Debug, thiserror::Error)]
#[error("the S3 server's response is longer than {MAX_BODY} bytes")]
struct TooLong;

#[async_trait::async_trait]
impl HttpService for Guarded {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let object_read = parts.method == http::Method::GET && parts.uri.query().is_none();
        let url = reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| HttpError::new(HttpErrorKind::Request, e))?;
        let mut request = reqwest::Request::new(parts.method, url);
        *request.headers_mut() = parts.headers;
        *request.body_mut() = Some(reqwest::Body::wrap(body));
        let response: http::Response<reqwest::Body> = self.client.execute(request).await.map_err(http_error)?.into();
        let (parts, body) = response.into_parts();
        let body = if object_read && parts.status.is_success() {
            HttpResponseBody::new(body.map_err(http_error))
        } else {
            HttpResponseBody::new(http_body_util::Limited::new(body, MAX_BODY).map_err(|e| {
                match e.downcast::<reqwest::Error>() {
                    Ok(e) => http_error(*e),
                    Err(_) => HttpError::new(HttpErrorKind::Decode, TooLong),
                }
            }))
        };
        Ok(HttpResponse::from_parts(parts, body))
    }
}
