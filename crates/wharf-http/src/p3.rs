//! Instance reuse: a pool of live instances per component, each serving several requests (and,
//! for WASI 0.3, several at once), on wasmtime-wasi-http's `ProxyHandler`.
//!
//! Each instance's store comes from the component's [`Sandbox`] like a fresh-per-request one
//! (same grants, same memory limit, now per instance). Time is bounded per request
//! ([`WorkerState::on_request_start`]) and, because a spinning guest holds the store, also from
//! outside the event loop ([`WorkerExpiration`]): past the timeout the instance is dropped with
//! every request on it. A trap or a timeout retires the instance; each request that was on it
//! learns why through its [`Verdict`].
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::oneshot;
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, InstantiationError, ProxyHandler, ProxyPre, ShouldAccept,
    TrapOrPanicError, WorkerExpiration, WorkerState, WorkerStatus,
};
use wharf_host::{HostState, RunError, Sandbox, Stdio, WharfEngine};

use crate::server::{Failure, Target};

/// How a component's instances are reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reuse {
    /// Requests one instance serves before it is retired (1: a fresh instance per request).
    pub max_count: usize,
    /// Requests one instance serves at once (WASI 0.3 only; a 0.2 handler is synchronous).
    pub max_concurrent: usize,
    /// How long an idle instance is kept for the next request.
    pub idle_timeout: Duration,
}

impl Reuse {
    /// WASI 0.3 defaults, those of `wasmtime serve` 48 (docs/serve.md says why).
    pub const P3_DEFAULT: Reuse = Reuse { max_count: 128, max_concurrent: 16, idle_timeout: Duration::from_secs(1) };
    /// WASI 0.2 default: no reuse, a fresh instance per request.
    pub const P2_DEFAULT: Reuse = Reuse { max_count: 1, max_concurrent: 1, idle_timeout: Duration::from_secs(1) };

    /// The default for a component linked as `pre`: reuse for WASI 0.3, none for 0.2.
    pub fn default_for(pre: &ProxyPre<HostState>) -> Reuse {
        match pre {
            ProxyPre::P3(_) => Reuse::P3_DEFAULT,
            ProxyPre::P2(_) => Reuse::P2_DEFAULT,
        }
    }

    /// Whether this needs the pool (an instance serves more than one request).
    pub fn reuses(&self) -> bool {
        self.max_count > 1
    }
}

/// The instance pool of one component.
pub(crate) struct Pool {
    handler: ProxyHandler<PoolState>,
}

struct PoolState {
    engine: WharfEngine,
    target: Arc<Target>,
}

/// Why the instance a request was on ended, filled in when the instance is dropped.
type Verdict = oneshot::Sender<Failure>;

impl Pool {
    pub(crate) fn new(engine: WharfEngine, target: Arc<Target>) -> Self {
        Pool { handler: ProxyHandler::new(PoolState { engine, target }) }
    }

    /// Hands `request` to an instance (a live one if it can take it, else a new one) and
    /// returns its response; the body keeps streaming from the instance afterwards.
    pub(crate) async fn handle(
        &self,
        request: hyper::Request<Incoming>,
    ) -> Result<hyper::Response<wasmtime_wasi_http::WasiBody>, Failure> {
        let request = request.map(|body| body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
        let (verdict, verdict_rx) = oneshot::channel();
        let target = &self.handler.state().target;
        let error = match self.handler.handle(verdict, request).await {
            // The body keeps streaming from the instance: if the instance is dropped before the
            // body ends (timeout, trap), the body must end in an error, not look complete.
            Ok(response) => {
                return Ok(response.map(|body| VerdictBody { inner: body, verdict: Some(verdict_rx) }.boxed_unsync()));
            }
            Err(error) => error,
        };
        let timeout = target.sandbox.timeout().unwrap_or(Duration::MAX);
        if error.is::<ExpirationError>() {
            return Err(Failure::from_run_error(RunError::Timeout(timeout)));
        }
        if let Some(failed) = error.downcast_ref::<InstantiationError<Verdict>>() {
            return Err(match failed.error.downcast_ref::<Failure>() {
                Some(failure) => failure.clone(),
                None => Failure::internal(format!("cannot instantiate: {:#}", failed.error)),
            });
        }
        if error.is::<TrapOrPanicError>() {
            // The instance was dropped with this request on it; its drop says why (it runs
            // right after, on the instance's task).
            return Err(match tokio::time::timeout(Duration::from_secs(1), verdict_rx).await {
                Ok(Ok(failure)) => failure,
                _ => Failure::internal("the instance serving this request failed".into()),
            });
        }
        if let Some(code) = error.downcast_ref::<wasmtime_wasi_http::p3::bindings::http::types::ErrorCode>() {
            return Err(Failure::internal(format!("the component answered with an error: {code:?}")));
        }
        // A trap in this request's own call.
        Err(Failure::internal(error.to_string().lines().next().unwrap_or_default().to_string()))
    }
}

impl HandlerState for PoolState {
    type StoreData = HostState;
    type WorkerExpiration = Expiry;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HostState, Expiry, Worker>> {
        let target = &self.target;
        let sandbox = &target.sandbox;
        let args = [target.name.clone()];
        let failed = |e: RunError| wasmtime::Error::new(Failure::from_run_error(e));
        // Guest output becomes labelled, escaped, bounded `wharf::guest` lines, as for 0.2: written
        // to wharf's own stderr it could forge the access log (and flood it without bound).
        let mut store = sandbox.store(&self.engine, &args, Stdio::Log).map_err(|e| failed(e.into()))?;
        let instantiate = async |store: &mut Store<HostState>| target.pre.instantiate_async(store).await;
        let proxy = sandbox.call(&mut store, instantiate).await.map_err(failed)?;
        // A reused instance outlives any one request: time is bounded per request below, not
        // by the store's own deadline (which would end the instance, idle or not).
        Sandbox::clear_deadline(&mut store);
        let timeout = sandbox.timeout().unwrap_or(Duration::MAX);
        Ok(Instance {
            store,
            proxy,
            view: <HostState as WasiHttpView>::http,
            expiration: Expiry {
                idle_timeout: target.reuse.idle_timeout,
                request_timeout: timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
            },
            state: Worker { target: target.clone(), verdicts: Mutex::new(Vec::new()) },
        })
    }
}

/// When an instance is dropped: idle past the idle timeout, or busy (with requests, or with
/// work after their responses) past the request timeout.
pub(crate) struct Expiry {
    idle_timeout: Duration,
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiry {
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>, status: WorkerStatus, start: Instant) -> Poll<()> {
        let timeout = match status {
            WorkerStatus::Idle => self.idle_timeout,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.request_timeout,
        };
        let Some(deadline) = start.checked_add(timeout) else { return Poll::Pending };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

/// One live instance: how many requests it takes, and who to tell why it ended.
pub(crate) struct Worker {
    target: Arc<Target>,
    verdicts: Mutex<Vec<Verdict>>,
}

impl WorkerState for Worker {
    type StoreData = HostState;
    type RequestData = Verdict;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        let reuse = &self.target.reuse;
        if total >= reuse.max_count {
            ShouldAccept::Never
        } else if concurrent >= reuse.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, HostState>,
        verdict: Verdict,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Requests that already finished stop listening; keep only the live ones.
        verdicts.retain(|verdict| !verdict.is_closed());
        verdicts.push(verdict);
        let timeout = self.target.sandbox.timeout().unwrap_or(Duration::from_secs(86_400 * 365));
        Box::pin(tokio::time::sleep(timeout))
    }

    fn drop(&self, store: Store<HostState>, result: wasmtime::Result<()>) {
        let Err(error) = result else { return };
        let sandbox = &self.target.sandbox;
        // wasmtime-wasi-http's worker says so when a request outlived `on_request_start`'s timer.
        let failure = Failure::from_run_error(if error.to_string() == "guest timed out" {
            RunError::Timeout(sandbox.timeout().unwrap_or(Duration::MAX))
        } else {
            sandbox.failure(&error, store.data())
        });
        tracing::warn!(component = %self.target.name, "instance retired: {}", failure.message);
        // Verdicts go out before the store drops: dropping it closes the streams of bodies
        // still being sent, and their `VerdictBody` must then find the verdict waiting.
        let verdicts = std::mem::take(&mut *self.verdicts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for verdict in verdicts {
            let _ = verdict.send(failure.clone());
        }
        drop(store);
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for Failure {}

/// A response body from a pooled instance that ends in an error when the instance was dropped
/// in failure (its verdict came) before the body's own end.
struct VerdictBody {
    inner: wasmtime_wasi_http::WasiBody,
    verdict: Option<oneshot::Receiver<Failure>>,
}

impl hyper::body::Body for VerdictBody {
    type Data = bytes::Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if matches!(frame, Some(Ok(_))) {
            return Poll::Ready(frame);
        }
        // The end (or an error): did the instance fail meanwhile?
        if let Some(mut verdict) = self.verdict.take()
            && let Ok(failure) = verdict.try_recv()
        {
            tracing::warn!("response body cut off: {}", failure.message);
            return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(failure.message)))));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Keeps the response's concurrency permit until its body is done.
pub(crate) fn hold_permit(
    body: wasmtime_wasi_http::WasiBody,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> wasmtime_wasi_http::WasiBody {
    PermitBody { inner: body, _permit: permit }.boxed_unsync()
}

struct PermitBody {
    inner: wasmtime_wasi_http::WasiBody,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl hyper::body::Body for PermitBody {
    type Data = bytes::Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
