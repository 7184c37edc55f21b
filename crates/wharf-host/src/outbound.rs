//! Outbound `wasi:http` requests (WASI 0.2 and 0.3 share these hooks), sent only to what the
//! policy grants, checked on the address actually connected to.
//!
//! wasmtime-wasi-http's `default_send_request` connects by the URL's authority, resolving the
//! name itself (on tokio's blocking pool). Checking the URL and then letting it resolve would
//! let a granted name that answers `127.0.0.1` reach the host's own services (DNS rebinding),
//! and a URL with userinfo (`http://evil@api.example/`) connect to a host other than the one
//! checked. So this module resolves once ([`GuestNet::http_targets`]), checks every address,
//! and connects to a checked one itself; TLS still verifies the certificate against the name.
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body_util::BodyExt;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::guest_net::{GuestNet, HttpRefusal};
use crate::policy::net::default_port;

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type ResponseFuture = Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

/// The `wasi:http` hooks of one store: every outgoing request is checked against the granted
/// rules by scheme, host (wildcards included) and port, then by the addresses its host resolves
/// to, before anything is sent. A denied request fails with `HTTP-request-denied`, which the
/// guest sees as an error, not a hang. The guest cannot pick the `Host` header: wasmtime-wasi-http
/// forbids it and sets it from the URL's authority, which is what is checked here.
#[derive(Clone)]
pub(crate) struct OutboundHttp {
    net: Arc<GuestNet>,
}

impl OutboundHttp {
    pub(crate) fn new(net: Arc<GuestNet>) -> Self {
        OutboundHttp { net }
    }
}

/// The most an outgoing body's stream takes per write. wasmtime-wasi-http buffers two such
/// chunks per body until it is sent; its 1 MiB default let a guest that hoards unsent bodies
/// make wharf hold 2 MiB each (measured). 64 KiB caps that at about 130 KiB per body, so the
/// resource-table cap ([`crate::sandbox`]) bounds the total; guests are told what fits by
/// `check-write`, and std and `blocking-write-and-flush` write 4 KiB at a time anyway.
const OUTGOING_BODY_CHUNK: usize = 64 * 1024;

impl WasiHttpHooks for OutboundHttp {
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        OUTGOING_BODY_CHUNK
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        let net = self.net.clone();
        Box::new(async move {
            let uri = request.uri().clone();
            let (targets, host) = match check(&net, &uri).await {
                Ok(checked) => checked,
                Err(HttpRefusal::Denied(why)) => {
                    tracing::warn!("outbound HTTP request denied by policy: {why}");
                    return Err(Error::HttpRequestDenied);
                }
                Err(HttpRefusal::Dns(e)) => {
                    tracing::debug!(%uri, "outbound HTTP request: {e}");
                    return Err(Error::DnsError { rcode: Some("NXDOMAIN".into()), info_code: None });
                }
            };
            let (response, io) = send(request, options, targets, host).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
        })
    }
}

/// The checked addresses a request may go to, and the host name (or IP) TLS verifies.
async fn check(net: &GuestNet, uri: &http::Uri) -> Result<(Vec<SocketAddr>, String), HttpRefusal> {
    let denied = |why: &str| Err(HttpRefusal::Denied(format!("{uri}: {why}")));
    let Some(authority) = uri.authority() else { return denied("no host") };
    // `user@host` is refused outright: the check and the connection must read one host.
    if authority.as_str().contains('@') {
        return denied("a URL with userinfo (`user@`) is refused");
    }
    let scheme = uri.scheme_str().unwrap_or("https");
    let port = authority.port_u16().unwrap_or_else(|| default_port(scheme));
    let host = authority.host().to_string();
    Ok((net.http_targets(scheme, &host, port).await?, host))
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
            Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
        })
        .clone()
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// Connects to the first of `targets` that answers, within the connect timeout.
async fn connect(targets: &[SocketAddr], timeout: Duration) -> Result<TcpStream, Error> {
    let attempt = async {
        let mut last = None;
        for target in targets {
            match TcpStream::connect(target).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(Error::Connect(last.unwrap_or_else(|| std::io::Error::other("no address to connect to"))))
    };
    tokio::time::timeout(timeout, attempt).await.unwrap_or(Err(Error::ConnectionTimeout))
}

/// wasmtime-wasi-http 48's `default_send_request` (Apache-2.0 WITH LLVM-exception), with the
/// connection made to a checked address instead of the URL's authority, and one TLS
/// configuration per process instead of one per request.
async fn send(
    mut req: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    targets: Vec<SocketAddr>,
    host: String,
) -> Result<
    (
        http::Response<impl http_body::Body<Data = bytes::Bytes, Error = Error>>,
        impl Future<Output = Result<(), Error>> + Send,
    ),
    Error,
> {
    let use_tls = req.uri().scheme() == Some(&http::uri::Scheme::HTTPS);
    let connect_timeout = options.and_then(|r| r.connect_timeout).unwrap_or(Duration::from_secs(600));
    let first_byte_timeout = options.and_then(|r| r.first_byte_timeout).unwrap_or(Duration::from_secs(600));
    let between_bytes_timeout = options.and_then(|r| r.between_bytes_timeout).unwrap_or(Duration::from_secs(600));

    let tcp = connect(&targets, connect_timeout).await?;
    let stream: Box<dyn Stream> = if use_tls {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = match bare.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::from(ip),
            Err(_) => ServerName::try_from(bare.to_string()).map_err(Error::InvalidDnsNameError)?,
        };
        let connector = tokio_rustls::TlsConnector::from(tls_config());
        Box::new(connector.connect(name, tcp).await.map_err(Error::Tls)?)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    // The request holds the scheme and authority; on the wire only the path and query go
    // (the `Host` header carries the authority), as to any server that is not a proxy.
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    *req.uri_mut() = http::Uri::builder().path_and_query(path).build().map_err(|_| Error::HttpRequestUriInvalid)?;

    let send = async move {
        let res = tokio::time::timeout(first_byte_timeout, sender.send_request(req))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)?;
        // tokio panics on a zero interval.
        let between_bytes_timeout = between_bytes_timeout.max(Duration::from_nanos(1));
        let mut timeout = tokio::time::interval(between_bytes_timeout);
        timeout.reset();
        Ok(res.map(|incoming| IncomingBody { incoming, timeout }))
    };
    let mut send = pin!(send);
    let mut conn = Some(conn);
    // Wait for the response while driving the connection.
    let res = std::future::poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(result),
        Poll::Pending => {
            let Some(fut) = conn.as_mut() else { return Poll::Pending };
            let res = ready!(Pin::new(fut).poll(cx));
            conn = None;
            match res {
                Ok(()) => send.as_mut().poll(cx),
                Err(err) => Poll::Ready(Err(Error::from(err))),
            }
        }
    })
    .await?;
    Ok((res, async move {
        let Some(conn) = conn.take() else { return Ok(()) };
        match conn.await {
            Err(err) if err.is_timeout() => Err(Error::HttpResponseTimeout),
            Err(err) => Err(err.into()),
            Ok(()) => Ok(()),
        }
    }))
}

/// A response body that fails when no bytes arrive for the between-bytes timeout.
struct IncomingBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl http_body::Body for IncomingBody {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(err))) => {
                Poll::Ready(Some(Err(if err.is_timeout() { Error::HttpResponseTimeout } else { Error::from(err) })))
            }
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}
