//! Instance reuse: a pool of live instances per component, each serving several requests (and,
//! for WASI 0.3, several at once), on wasmtime-wasi-http's `ProxyHandler`.
//!
//! Each instance's store comes from the component's [`Sandbox`] like a fresh-per-request one
//! (same grants, same memory limit, now per instance). Time is bounded per request
//! ([`WorkerState::on_request_start`]) and, because a spinning guest holds the store, also from
//! outside the event loop ([`WorkerExpiration`]): past the timeout the instance is dropped with
//! every request on it. A trap or a timeout retires the instance; each request that was on it
//! learns why through its [`Verdict`].
use std::collections::VecDeque;
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
                let (head, body) = response.into_parts();
                let mut body =
                    VerdictBody { inner: body, ready: VecDeque::new(), ended: false, verdict: Some(verdict_rx) };
                body.gather().await;
                return Ok(hyper::Response::from_parts(head, body.boxed_unsync()));
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
        // The status changes two or three times per request, and each new deadline used to
        // re-arm the timer (a timer-wheel removal and insertion under its lock). Now the timer
        // is re-armed only when the deadline moves earlier; a later one is checked when the
        // timer fires, so under steady load (the idle deadline moving later each time) it is
        // not touched at all between firings.
        if deadline < self.sleep.deadline() {
            self.sleep.as_mut().reset(deadline);
        }
        loop {
            std::task::ready!(self.sleep.as_mut().poll(cx));
            if tokio::time::Instant::now() >= deadline {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(deadline);
        }
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

/// Bytes of a response body gathered before its head goes out (see [`VerdictBody::gather`]).
const GATHER_MAX: usize = 64 << 10;

/// Scheduler turns [`VerdictBody::gather`] waits for more of a body the instance is producing.
const GATHER_TURNS: usize = 2;

/// A response body from a pooled instance that ends in an error when the instance was dropped
/// in failure (its verdict came) before the body's own end.
struct VerdictBody {
    inner: wasmtime_wasi_http::WasiBody,
    /// Frames (and the end, `None`) already taken from `inner`, sent before anything else.
    ready: VecDeque<Option<Result<hyper::body::Frame<bytes::Bytes>, wasmtime_wasi_http::Error>>>,
    /// `inner` has ended (its end or error is in `ready` or was passed on): not polled again.
    ended: bool,
    verdict: Option<oneshot::Receiver<Failure>>,
}

impl VerdictBody {
    /// Takes the frames the instance has produced by now (up to [`GATHER_MAX`] bytes, waiting
    /// at most [`GATHER_TURNS`] scheduler turns for more), so that hyper writes a short
    /// response's head, body and end in one write. A guest's body arrives a moment after its
    /// head (a 0.3 guest writes it from a task it spawns before returning the response): sent
    /// at once, the head went out alone and the end of the body in a third write about a third
    /// of the time under load (each write also waking the client). A body that is slower than
    /// that (a stream) is not waited for: its head goes out after those turns.
    async fn gather(&mut self) {
        let mut bytes = 0;
        let mut turns = 0;
        while !self.ended && bytes < GATHER_MAX {
            match std::future::poll_fn(|cx| Poll::Ready(hyper::body::Body::poll_frame(Pin::new(&mut self.inner), cx)))
                .await
            {
                Poll::Ready(frame) => {
                    self.ended = !matches!(frame, Some(Ok(_)));
                    if let Some(Ok(frame)) = &frame
                        && let Some(data) = frame.data_ref()
                    {
                        bytes += data.len();
                    }
                    self.ready.push_back(frame);
                }
                Poll::Pending if turns < GATHER_TURNS => {
                    turns += 1;
                    tokio::task::yield_now().await;
                }
                Poll::Pending => break,
            }
        }
    }
}

impl hyper::body::Body for VerdictBody {
    type Data = bytes::Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let frame = match self.ready.pop_front() {
            Some(frame) => frame,
            None if self.ended => None,
            None => {
                let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
                self.ended = !matches!(frame, Some(Ok(_)));
                frame
            }
        };
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
        // Frames gathered ahead are all Ready, so hyper takes them (and the end) into the same
        // write without being told the end is near.
        self.ready.is_empty() && !self.ended && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        // The inner hint no longer counts the gathered frames.
        if self.ready.is_empty() && !self.ended {
            return self.inner.size_hint();
        }
        hyper::body::SizeHint::default()
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

#[cfg(test)]
mod tests {
    use hyper::body::{Body as _, Frame};
    use tokio::sync::mpsc;

    use super::*;

    /// A body whose frames come from a channel (closing it ends the body), like a guest's.
    struct Channel(mpsc::Receiver<Frame<bytes::Bytes>>);

    impl hyper::body::Body for Channel {
        type Data = bytes::Bytes;
        type Error = wasmtime_wasi_http::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<bytes::Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|frame| frame.map(Ok))
        }
    }

    struct Sender(mpsc::Sender<Frame<bytes::Bytes>>);

    impl Sender {
        async fn send_data(&mut self, data: bytes::Bytes) -> Result<(), ()> {
            self.0.send(Frame::data(data)).await.map_err(|_| ())
        }
    }

    fn body(verdict: oneshot::Receiver<Failure>) -> (Sender, VerdictBody) {
        let (tx, rx) = mpsc::channel(4);
        let inner = Channel(rx).boxed_unsync();
        (Sender(tx), VerdictBody { inner, ready: VecDeque::new(), ended: false, verdict: Some(verdict) })
    }

    async fn frames(mut body: VerdictBody) -> Vec<Result<Frame<bytes::Bytes>, String>> {
        let mut out = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            out.push(frame.map_err(|e| e.to_string()));
        }
        out
    }

    #[tokio::test]
    async fn a_finished_body_is_gathered_whole_with_its_end() {
        let (_verdict, verdict_rx) = oneshot::channel();
        let (mut tx, mut body) = body(verdict_rx);
        tx.send_data(bytes::Bytes::from_static(b"hello ")).await.unwrap();
        tx.send_data(bytes::Bytes::from_static(b"world")).await.unwrap();
        drop(tx);
        body.gather().await;
        assert!(body.ended, "the end was not gathered");
        assert_eq!(body.ready.len(), 3);
        // Nothing left for hyper to wait for: every frame and the end are Ready.
        let got = frames(body).await;
        let data: Vec<_> = got.iter().map(|f| f.as_ref().unwrap().data_ref().unwrap().clone()).collect();
        assert_eq!(data, [&b"hello "[..], &b"world"[..]]);
    }

    #[tokio::test]
    async fn a_body_still_being_produced_does_not_hold_the_head_back() {
        let (_verdict, verdict_rx) = oneshot::channel();
        let (mut tx, mut body) = body(verdict_rx);
        tx.send_data(bytes::Bytes::from_static(b"first")).await.unwrap();
        // The rest comes later (a stream): gather returns after its few turns, not at the end.
        tokio::time::timeout(Duration::from_secs(5), body.gather()).await.expect("gather waited for the stream");
        assert_eq!(body.ready.len(), 1);
        assert!(!body.ended);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send_data(bytes::Bytes::from_static(b"second")).await.unwrap();
        });
        let got = frames(body).await;
        sender.await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].as_ref().unwrap().data_ref().unwrap(), &b"second"[..]);
    }

    #[tokio::test]
    async fn a_gathered_end_still_reports_the_instance_failure() {
        // The instance failed (its verdict came) after the body seemed complete: the gathered
        // end must become an error, so the cut-off body never looks whole.
        let (verdict, verdict_rx) = oneshot::channel();
        let (mut tx, mut body) = body(verdict_rx);
        tx.send_data(bytes::Bytes::from_static(b"partial")).await.unwrap();
        drop(tx);
        body.gather().await;
        assert!(body.ended);
        let _ = verdict.send(Failure::internal("guest trapped".into()));
        let got = frames(body).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[1].as_ref().is_err_and(|e| e.contains("guest trapped")), "{got:?}");
    }

    /// Polls `expiry` with `status` since `start` until it fires (or `limit` passes).
    async fn fires_after(expiry: &mut Pin<Box<Expiry>>, status: WorkerStatus, start: Instant) -> Option<Duration> {
        let limit = Duration::from_secs(3);
        let poll = std::future::poll_fn(|cx| expiry.as_mut().poll(cx, status, start));
        tokio::time::timeout(limit, poll).await.ok().map(|()| start.elapsed())
    }

    #[tokio::test]
    async fn instance_expiry_follows_the_latest_deadline_both_ways() {
        let mut expiry = Box::pin(Expiry {
            idle_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(600),
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
        });
        // Idle since now: armed for 300 ms; then a request starts at once (600 ms, later).
        let start = Instant::now();
        let poll = std::future::poll_fn(|cx| Poll::Ready(expiry.as_mut().poll(cx, WorkerStatus::Idle, start)));
        assert!(poll.await.is_pending());
        // The timer still holds the earlier (idle) deadline; firing then must not end the
        // instance before the request's own deadline.
        let fired = fires_after(&mut expiry, WorkerStatus::Requests, start).await.expect("never expired");
        assert!(fired >= Duration::from_millis(600), "expired after {fired:?}, before the request timeout");
        // A deadline earlier than the armed one is honoured on time.
        let start = Instant::now();
        let poll = std::future::poll_fn(|cx| Poll::Ready(expiry.as_mut().poll(cx, WorkerStatus::Requests, start)));
        assert!(poll.await.is_pending());
        let fired = fires_after(&mut expiry, WorkerStatus::Idle, start).await.expect("never expired");
        assert!(
            fired >= Duration::from_millis(300) && fired < Duration::from_millis(550),
            "idle expiry after {fired:?}"
        );
    }

    #[tokio::test]
    async fn gathering_stops_at_its_byte_bound() {
        let (_verdict, verdict_rx) = oneshot::channel();
        let (mut tx, mut body) = body(verdict_rx);
        let chunk = bytes::Bytes::from(vec![7u8; 48 << 10]);
        let producer = tokio::spawn(async move {
            for _ in 0..8 {
                if tx.send_data(chunk.clone()).await.is_err() {
                    return;
                }
            }
        });
        body.gather().await;
        let gathered: usize = body.ready.iter().flatten().flatten().filter_map(|f| f.data_ref()).map(|d| d.len()).sum();
        assert!(gathered <= GATHER_MAX + (48 << 10), "gathered {gathered} bytes");
        drop(body);
        producer.await.unwrap();
    }
}
