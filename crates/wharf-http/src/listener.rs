//! The accept loop shared by `wharf serve` and `wharf mcp --http`: HTTP/1.1 connections that
//! cannot exhaust the server.
//!
//! - **Header timeout**: a request's headers must arrive within [`ListenerOptions::header_timeout`]
//!   of the connection opening or the previous response ending (hyper's timer starts as soon as
//!   it waits for a request head), so it is also the keep-alive idle timeout.
//! - **Connection cap**: at most [`ListenerOptions::max_connections`] open connections. At the
//!   cap, a new connection closes the least recently active *idle* one (no request in the
//!   service, no response body streaming); if every one is busy, the new one is closed. Slow
//!   or idle clients therefore never lock out a new client.
//! - **Write timeout**: a client that keeps wharf's writes waiting for
//!   [`ListenerOptions::write_timeout`] in all while accepting fewer than
//!   [`MIN_WRITE_PROGRESS`] bytes is disconnected (so neither a client that reads nothing nor
//!   one that trickles a few bytes before each timeout holds its connection). A response
//!   in progress marks its connection busy (never closed to make room), so without this a client
//!   that asks for large responses and never reads them held its connections for ever, and
//!   [`ListenerOptions::max_connections`] of them locked every other client out.
//! - **Evictable streams**: a response marked [`Evictable`] leaves its connection idle while
//!   it streams, so such streams never hold the cap against new clients.
//! - **Accept errors** (EMFILE: out of file descriptors) free an idle connection and back off;
//!   the warning is logged at most once a second with a count of the ones suppressed.
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// Limits of the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct ListenerOptions {
    /// Open connections at most; at the cap the least recently active idle one is closed.
    pub max_connections: usize,
    /// Time to receive a request's headers, counted from the connection opening or the
    /// previous response ending (hence also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// How long writes to the client may wait in all while it accepts fewer than
    /// [`MIN_WRITE_PROGRESS`] bytes before the connection is closed.
    pub write_timeout: Duration,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Bytes a client must accept per [`ListenerOptions::write_timeout`] of waiting writes; see
/// [`WriteDeadline`].
pub const MIN_WRITE_PROGRESS: usize = 64 << 10;

/// A connection's stream whose writes fail once they have waited (the client's receive window
/// full) for `timeout` in all while the client accepted fewer than [`MIN_WRITE_PROGRESS`]
/// bytes. hyper has no write timeout of its own. Counting progress in bytes, not "any byte",
/// is what stops a client that reads a few bytes just before each timeout to hold its
/// connection (and a place under the cap) for ever; only time spent waiting counts, so a
/// keep-alive connection idle between responses never accrues any.
struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    /// Since when the current write has been waiting, if it is.
    blocked_at: Option<Instant>,
    /// Waiting time of earlier writes since progress was last reset.
    blocked: Duration,
    /// Bytes accepted since progress was last reset.
    accepted: usize,
    /// Wakes the waiting write when its time is up.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        WriteDeadline { inner, timeout, blocked_at: None, blocked: Duration::ZERO, accepted: 0, timer: None }
    }

    /// Passes a result through, counting `written` bytes of a ready one; on `Pending`, fails
    /// once the waiting time since the last [`MIN_WRITE_PROGRESS`] bytes reaches `timeout` (the
    /// timer's waker is `cx`'s, so it is polled again then).
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
        written: impl FnOnce(&T) -> usize,
    ) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(result) = &poll {
            if let Some(at) = self.blocked_at.take() {
                self.blocked += at.elapsed();
            }
            if let Ok(value) = result {
                self.accepted = self.accepted.saturating_add(written(value));
                if self.accepted >= MIN_WRITE_PROGRESS {
                    (self.blocked, self.accepted) = (Duration::ZERO, 0);
                }
            }
            return poll;
        }
        let now = Instant::now();
        let at = *self.blocked_at.get_or_insert(now);
        let Some(left) = self.timeout.checked_sub(self.blocked + (now - at)).filter(|left| !left.is_zero()) else {
            return self.timed_out();
        };
        let deadline = tokio::time::Instant::from_std(now + left);
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().reset(deadline);
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => self.timed_out(),
            Poll::Pending => Poll::Pending,
        }
    }

    fn timed_out<T>(&self) -> Poll<std::io::Result<T>> {
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the client accepted under {} KiB of the response in {:?} of waiting",
                MIN_WRITE_PROGRESS >> 10,
                self.timeout
            ),
        )))
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteDeadline<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll, |n| *n)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll, |n| *n)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll, |()| 0)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll, |()| 0)
    }
}

/// One open connection, as the accept loop sees it.
struct Tracked {
    /// Requests (or response bodies) in progress.
    busy: Arc<AtomicUsize>,
    /// When it last started or finished a request (milliseconds since the loop started).
    active: Arc<AtomicU64>,
    /// Closes it (the connection task drops the connection).
    close: tokio::sync::oneshot::Sender<()>,
}

#[derive(Default)]
struct Connections {
    open: Mutex<HashMap<u64, Tracked>>,
    next: AtomicU64,
}

impl Connections {
    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Closes the least recently active idle connection; false if every one is busy.
    fn evict_idle(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let victim = open
            .iter()
            .filter(|(_, t)| t.busy.load(Ordering::SeqCst) == 0)
            .min_by_key(|(_, t)| t.active.load(Ordering::SeqCst))
            .map(|(id, _)| *id);
        match victim.and_then(|id| open.remove(&id)) {
            Some(tracked) => {
                let _ = tracked.close.send(());
                true
            }
            None => false,
        }
    }
}

/// Logs one kind of warning at most once a second, counting the ones it held back.
struct RateLimited {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    fn warn(&mut self, message: std::fmt::Arguments<'_>) {
        if self.last.is_some_and(|last| last.elapsed() < Duration::from_secs(1)) {
            self.suppressed += 1;
            return;
        }
        if self.suppressed > 0 {
            tracing::warn!("{message} ({} more since the last such message)", self.suppressed);
        } else {
            tracing::warn!("{message}");
        }
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}

/// Marks its connection busy while alive (a request in the service, then its response body).
struct BusyGuard {
    busy: Arc<AtomicUsize>,
    active: Arc<AtomicU64>,
    epoch: Instant,
}

impl BusyGuard {
    fn new(busy: &Arc<AtomicUsize>, active: &Arc<AtomicU64>, epoch: Instant) -> BusyGuard {
        busy.fetch_add(1, Ordering::SeqCst);
        active.store(epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
        BusyGuard { busy: busy.clone(), active: active.clone(), epoch }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.active.store(self.epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its connection marked busy until it ends or is dropped.
pub struct BusyBody<B> {
    inner: B,
    _guard: Option<BusyGuard>,
}

/// A marker a service puts in a response's extensions when its body is a long-lived stream
/// the client may reopen (an MCP `GET` notification stream): the connection then counts as idle
/// as soon as the headers are sent, so at the connection cap it is closed to make room. Without
/// it, one client holding `max_connections` such streams (all on one session) turned every
/// other client away.
#[derive(Clone, Copy, Debug)]
pub struct Evictable;

impl<B: Body + Unpin> Body for BusyBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The address of the connection a request came on, in the request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Accepts connections on `listener` and serves each with `service` until `shutdown`
/// resolves; then stops accepting and returns a [`GracefulShutdown`] watching the open
/// connections (the caller decides how long to wait for them).
pub async fn serve<S, F, B>(
    listener: TcpListener,
    options: ListenerOptions,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> GracefulShutdown
where
    S: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Connections::default());
    let epoch = Instant::now();
    let mut accept_log = RateLimited { last: None, suppressed: 0 };
    let mut cap_log = RateLimited { last: None, suppressed: 0 };
    let mut backoff = Duration::from_millis(5);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically EMFILE: free a descriptor if an idle connection holds one, and
                    // back off instead of spinning on the same error.
                    let freed = connections.evict_idle();
                    accept_log.warn(format_args!("accept failed: {e} (closed an idle connection: {freed})"));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        backoff = Duration::from_millis(5);
        if connections.len() >= options.max_connections && !connections.evict_idle() {
            cap_log.warn(format_args!(
                "{} connections open, all busy: closing a new one from {peer}",
                options.max_connections
            ));
            drop(stream);
            continue;
        }
        // Small response chunks must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let id = connections.next.fetch_add(1, Ordering::SeqCst);
        let (close, closed) = tokio::sync::oneshot::channel();
        let busy = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicU64::new(epoch.elapsed().as_millis() as u64));
        let tracked = Tracked { busy: busy.clone(), active: active.clone(), close };
        connections.open.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tracked);

        let service = service.clone();
        let handler = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer));
            let guard = BusyGuard::new(&busy, &active, epoch);
            let response = service(request);
            async move {
                let response = response.await;
                let guard = response.extensions().get::<Evictable>().is_none().then_some(guard);
                Ok::<_, Infallible>(response.map(|inner| BusyBody { inner, _guard: guard }))
            }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(WriteDeadline::new(stream, options.write_timeout)), handler);
        let connection = graceful.watch(connection);
        let connections = connections.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = connection => if let Err(e) = result {
                    tracing::debug!(%peer, "connection closed with an error: {e}");
                },
                _ = closed => tracing::debug!(%peer, "closed an idle connection to make room"),
            }
            connections.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        });
    }
    drop(listener);
    graceful
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Writes to a 64 KiB pipe whose reader takes `chunk` bytes every 50 ms, through a
    /// `WriteDeadline` of 500 ms; how long until the writes fail (`None`: not within 3 s).
    async fn trickle(chunk: usize) -> Option<Duration> {
        let (client, server) = tokio::io::duplex(64 << 10);
        let reader = tokio::spawn(async move {
            let (mut client, mut buf) = (client, vec![0u8; chunk]);
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if client.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
            }
        });
        let mut writer = WriteDeadline::new(server, Duration::from_millis(500));
        let start = Instant::now();
        let block = vec![7u8; 16 << 10];
        let failed = loop {
            if start.elapsed() > Duration::from_secs(3) {
                break None;
            }
            if writer.write_all(&block).await.is_err() {
                break Some(start.elapsed());
            }
        };
        reader.abort();
        failed
    }

    #[tokio::test]
    async fn a_trickle_of_progress_does_not_reset_the_write_timeout() {
        // 64 bytes per 50 ms: progress every time, far under 64 KiB per 500 ms of waiting.
        // (Any progress used to reset the timer, so this never failed.)
        let failed = trickle(64).await.expect("a trickling reader kept the connection");
        assert!(failed < Duration::from_millis(1500), "failed only after {failed:?}");
    }

    #[tokio::test]
    async fn a_reader_that_keeps_up_is_never_cut() {
        // 48 KiB per 50 ms (~1 MB/s): 64 KiB per 500 ms of waiting takes two of its ten
        // reads, so a loaded machine delaying a few of them does not cut it.
        assert_eq!(trickle(48 << 10).await, None);
    }
}
