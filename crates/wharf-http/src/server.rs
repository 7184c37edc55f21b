//! The HTTP server: hyper HTTP/1.1 with keep-alive, a fresh store and instance per request
//! (pooling allocator, copy-on-write memory), bounded concurrency, graceful shutdown.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wharf_host::{HostState, RunError, Sandbox, Stdio, WharfEngine};

use crate::p3::{Pool, Reuse, hold_permit};
use crate::router::Router;

/// One routable component: linked once at startup, instantiated per request (or, with
/// [`Reuse`], per several requests).
pub struct Target {
    /// The component's name (in logs and as the guest's `argv[0]`).
    pub name: String,
    /// The component, linked as a `wasi:http/handler@0.3.x` service or a `wasi:http/proxy@0.2.x`.
    pub pre: ProxyPre<HostState>,
    /// Its policy, made ready.
    pub sandbox: Sandbox,
    /// How its instances are reused ([`Reuse::P3_DEFAULT`] / [`Reuse::P2_DEFAULT`] unless set).
    pub reuse: Reuse,
}

impl Target {
    /// Whether requests go through an instance pool: always for WASI 0.3 (whose handler is
    /// driven by the store's event loop), for 0.2 only when reuse is asked for.
    fn pooled(&self) -> bool {
        matches!(self.pre, ProxyPre::P3(_)) || self.reuse.reuses()
    }

    /// The compiled component behind [`Target::pre`].
    fn component(&self) -> &wasmtime::component::Component {
        match &self.pre {
            ProxyPre::P2(pre) => pre.instance_pre().component(),
            ProxyPre::P3(pre) => pre.instance_pre().component(),
        }
    }
}

/// Server-wide limits.
#[derive(Clone, Copy, Debug)]
pub struct ServerOptions {
    /// Requests handled at once; more get `503 Service Unavailable` at once.
    pub max_concurrency: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Connection cap and header/idle timeout.
    pub listener: crate::listener::ListenerOptions,
}

/// A running app: targets, routes and the request bound.
pub struct Server {
    targets: Vec<Arc<Target>>,
    // The engine each target's component was compiled for (same index as `targets`): its
    // stores are made there.
    engines: Vec<WharfEngine>,
    // The instance pool of each target that has one (same index as `targets`).
    pools: Vec<Option<Pool>>,
    router: Router,
    permits: Arc<Semaphore>,
    options: ServerOptions,
}

/// Why a request produced no response from its component.
#[derive(Clone)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Server {
    /// An app whose `router` indexes `targets`.
    pub fn new(engine: WharfEngine, targets: Vec<Target>, router: Router, options: ServerOptions) -> Arc<Self> {
        let targets: Vec<Arc<Target>> = targets.into_iter().map(Arc::new).collect();
        let engines: Vec<WharfEngine> = targets.iter().map(|target| engine.for_component(target.component())).collect();
        let pools = targets
            .iter()
            .zip(&engines)
            .map(|(target, engine)| target.pooled().then(|| Pool::new(engine.clone(), target.clone())))
            .collect();
        Arc::new(Server {
            targets,
            engines,
            pools,
            router,
            permits: Arc::new(Semaphore::new(options.max_concurrency)),
            options,
        })
    }

    /// Accepts connections on `listener` until `shutdown` resolves, then stops accepting and
    /// waits (up to the shutdown timeout) for in-flight requests to finish. Connections are
    /// bounded by [`ServerOptions::listener`] (see [`crate::listener`]).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let server = self.clone();
        let service = move |request| server.clone().handle(request);
        let graceful = crate::listener::serve(listener, self.options.listener, service, shutdown).await;
        tracing::info!("shutting down: no new connections; waiting for in-flight requests");
        match tokio::time::timeout(self.options.shutdown_timeout, graceful.shutdown()).await {
            Ok(()) => tracing::info!("all requests finished"),
            Err(_) => tracing::warn!(
                "gave up waiting for in-flight requests after {}",
                seconds(self.options.shutdown_timeout)
            ),
        }
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<HyperOutgoingBody> {
        let start = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let (response, component) = match self.router.route(&path) {
            None => (plain(StatusCode::NOT_FOUND, format!("no route for {path}\n")), "-"),
            Some(index) => (self.call(index, request).await, self.targets[index].name.as_str()),
        };
        tracing::info!(
            target: "wharf::access",
            "{method} {path} {} {component} {:.3}ms",
            response.status().as_u16(),
            start.elapsed().as_secs_f64() * 1000.0
        );
        response
    }

    async fn call(&self, index: usize, request: Request<Incoming>) -> Response<HyperOutgoingBody> {
        let target = self.targets[index].clone();
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let busy = format!("server busy: {} requests in flight\n", self.options.max_concurrency);
            return plain(StatusCode::SERVICE_UNAVAILABLE, busy);
        };
        if let Some(pool) = &self.pools[index] {
            return match pool.handle(request).await {
                Ok(response) => response.map(|body| hold_permit(body, permit)),
                Err(failure) => failure.into_response(&target),
            };
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let task = match self.start(index, request, sender, permit) {
            Ok(task) => task,
            Err(failure) => return failure.into_response(&target),
        };
        match receiver.await {
            Ok(Ok(response)) => response.map(|body| GuardedBody { inner: body, task: Some(task) }.boxed_unsync()),
            Ok(Err(code)) => Failure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("the component answered with an error: {code:?}"),
            }
            .into_response(&target),
            // The component dropped its response-outparam: the task says why.
            Err(_) => match task.await {
                Ok(Err(failure)) => failure.into_response(&target),
                Ok(Ok(())) => Failure {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "the component returned without sending a response".into(),
                }
                .into_response(&target),
                Err(e) => {
                    Failure { status: StatusCode::INTERNAL_SERVER_ERROR, message: format!("request task failed: {e}") }
                        .into_response(&target)
                }
            },
        }
    }

    /// Builds the store and spawns the guest. The task outlives the response headers: it keeps
    /// running while the guest streams the body, and holds the concurrency permit until done.
    fn start(
        &self,
        index: usize,
        request: Request<Incoming>,
        sender: tokio::sync::oneshot::Sender<
            Result<Response<HyperOutgoingBody>, wasmtime_wasi_http::p2::bindings::http::types::ErrorCode>,
        >,
        permit: OwnedSemaphorePermit,
    ) -> Result<tokio::task::JoinHandle<Result<(), Failure>>, Failure> {
        let internal = Failure::internal;
        let target = self.targets[index].clone();
        let ProxyPre::P2(pre) = &target.pre else {
            return Err(internal("a WASI 0.3 component must be served from its instance pool".into()));
        };
        let pre = pre.clone();
        let args = [target.name.clone()];
        let mut store =
            target.sandbox.store(&self.engines[index], &args, Stdio::Log).map_err(|e| internal(e.to_string()))?;
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(|e| internal(format!("{e:#}")))?;
        let outparam = store.data_mut().http().new_response_outparam(sender).map_err(|e| internal(format!("{e:#}")))?;
        Ok(tokio::spawn(async move {
            let _permit = permit;
            let handle = async |store: &mut Store<HostState>| {
                let proxy = pre.instantiate_async(&mut *store).await?;
                proxy.wasi_http_incoming_handler().call_handle(store, incoming, outparam).await
            };
            target.sandbox.call(&mut store, handle).await.map_err(Failure::from_run_error)
        }))
    }
}

impl Failure {
    /// A 500 with `message`.
    pub(crate) fn internal(message: String) -> Self {
        Failure { status: StatusCode::INTERNAL_SERVER_ERROR, message }
    }

    pub(crate) fn from_run_error(error: RunError) -> Self {
        let status = match error {
            RunError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            RunError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure { status, message: error.to_string() }
    }

    pub(crate) fn into_response(self, target: &Target) -> Response<HyperOutgoingBody> {
        let first_line = self.message.lines().next().unwrap_or_default();
        tracing::warn!(component = %target.name, "request failed: {first_line}");
        plain(self.status, format!("{}: {first_line}\n", self.status))
    }
}

/// A guest's response body that ends in an error instead of a clean end when the guest failed
/// after sending the headers (timeout, trap), so a cut-off body never looks complete: hyper
/// then aborts the connection rather than writing the final chunk.
struct GuardedBody {
    inner: HyperOutgoingBody,
    task: Option<tokio::task::JoinHandle<Result<(), Failure>>>,
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if let Some(frame) = ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            return Poll::Ready(Some(frame));
        }
        let Some(task) = self.task.as_mut() else { return Poll::Ready(None) };
        let outcome = ready!(Pin::new(task).poll(cx));
        self.task = None;
        let message = match outcome {
            Ok(Ok(())) => return Poll::Ready(None),
            Ok(Err(failure)) => failure.message,
            Err(e) => format!("request task failed: {e}"),
        };
        tracing::warn!("response body cut off: {message}");
        Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(message)))))
    }
}

fn plain(status: StatusCode, text: String) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain"));
    response
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
