//! Name lookups made for guests: a [`Resolver`] (the system's by default) run on wharf's own
//! DNS threads, never on tokio's blocking pool, so lookups that hang (a slow or silent DNS
//! server) cannot delay the file I/O of other requests, which uses that pool.
//!
//! Lookups of one name that are in flight at the same time share one query: a guest that asks
//! for the same name thousands of times ties up one thread, not thousands. The number of
//! distinct names waiting is capped ([`MAX_PENDING_NAMES`]); past it a lookup fails at once
//! with [`DnsError::Busy`]. Which names may be looked up is decided before a query reaches this
//! module ([`crate::guest_net`]).
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};

use tokio::sync::oneshot;

/// Threads that run lookups, started as needed. A thread blocked in a hung lookup is lost until
/// the lookup returns (getaddrinfo cannot be cancelled), so this bounds what hung lookups take.
pub const DNS_THREADS: usize = 16;

/// Distinct names that may wait for a thread at one time (across all guests).
pub const MAX_PENDING_NAMES: usize = 1_024;

/// Turns a host name into addresses. Implementations block; [`Dns`] runs them on its threads.
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of `name` (an ASCII host name, lower-case, without a trailing dot).
    fn lookup(&self, name: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`: `/etc/hosts`, then DNS as configured).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok((name, 0).to_socket_addrs()?.map(|addr| addr.ip()).collect())
    }
}

/// Why a lookup gave no addresses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The resolver answered with an error (no such name, no answer, resolver failure).
    #[error("`{name}` does not resolve: {reason}")]
    Failed {
        /// The name looked up.
        name: String,
        /// The resolver's error.
        reason: String,
    },
    /// Too many distinct names are already waiting for a lookup thread.
    #[error("too many DNS lookups in flight")]
    Busy,
}

type Answer = Result<Vec<IpAddr>, DnsError>;

/// A handle to a resolver and the threads that run it. Cheap to clone; build one per process
/// (or use [`Dns::system`]) and hand it to every [`crate::Sandbox`].
#[derive(Clone)]
pub struct Dns {
    inner: Arc<Inner>,
}

struct Inner {
    resolver: Arc<dyn Resolver>,
    state: Mutex<State>,
    work: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    // Everyone waiting for a name that is queued or being looked up.
    waiters: HashMap<String, Vec<oneshot::Sender<Answer>>>,
    threads: usize,
    idle: usize,
}

impl fmt::Debug for Dns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dns").finish_non_exhaustive()
    }
}

impl Dns {
    /// Lookups through `resolver`.
    pub fn new(resolver: Arc<dyn Resolver>) -> Self {
        Dns { inner: Arc::new(Inner { resolver, state: Mutex::default(), work: Condvar::new() }) }
    }

    /// The process-wide lookups through the [`SystemResolver`].
    pub fn system() -> Self {
        static SYSTEM: OnceLock<Dns> = OnceLock::new();
        SYSTEM.get_or_init(|| Dns::new(Arc::new(SystemResolver))).clone()
    }

    /// Looks `name` up on a DNS thread. The future may be dropped at any time (the query then
    /// finishes unobserved).
    pub fn resolve(&self, name: &str) -> impl Future<Output = Answer> + Send + 'static + use<> {
        let (tx, rx) = oneshot::channel();
        let queued = self.enqueue(name, tx);
        async move {
            queued?;
            rx.await.unwrap_or(Err(DnsError::Busy))
        }
    }

    fn enqueue(&self, name: &str, tx: oneshot::Sender<Answer>) -> Result<(), DnsError> {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waiting) = state.waiters.get_mut(name) {
            waiting.push(tx);
            return Ok(());
        }
        if state.waiters.len() >= MAX_PENDING_NAMES {
            return Err(DnsError::Busy);
        }
        state.waiters.insert(name.to_string(), vec![tx]);
        state.queue.push_back(name.to_string());
        if state.idle == 0 && state.threads < DNS_THREADS {
            let inner = self.inner.clone();
            let spawned = std::thread::Builder::new().name("wharf-dns".into()).spawn(move || inner.work());
            match spawned {
                Ok(_) => state.threads += 1,
                Err(e) => tracing::warn!("cannot start a DNS thread: {e}"),
            }
        }
        drop(state);
        self.inner.work.notify_one();
        Ok(())
    }
}

impl Inner {
    fn work(&self) {
        loop {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let name = loop {
                if let Some(name) = state.queue.pop_front() {
                    break name;
                }
                state.idle += 1;
                state = self.work.wait(state).unwrap_or_else(PoisonError::into_inner);
                state.idle -= 1;
            };
            drop(state);
            let resolver = &self.resolver;
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| resolver.lookup(&name)))
                .unwrap_or_else(|_| Err(std::io::Error::other("the resolver panicked")))
                .map_err(|e| DnsError::Failed { name: name.clone(), reason: e.to_string() });
            let waiting = self.state.lock().unwrap_or_else(PoisonError::into_inner).waiters.remove(&name);
            for tx in waiting.into_iter().flatten() {
                let _ = tx.send(answer.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Answers `127.0.0.1` after a pause (milliseconds), counting the queries it receives.
    struct Slow(AtomicUsize, u64);

    impl Resolver for Slow {
        fn lookup(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(self.1));
            match name {
                "fail.test" => Err(std::io::Error::other("no such name")),
                _ => Ok(vec![IpAddr::from([127, 0, 0, 1])]),
            }
        }
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_name_share_a_query() {
        let slow = Arc::new(Slow(AtomicUsize::new(0), 200));
        let dns = Dns::new(slow.clone());
        let lookups: Vec<_> = (0..500).map(|_| dns.resolve("a.test")).collect();
        for answer in futures_join(lookups).await {
            assert_eq!(answer, Ok(vec![IpAddr::from([127, 0, 0, 1])]));
        }
        assert_eq!(slow.0.load(Ordering::SeqCst), 1);
        let err = dns.resolve("fail.test").await.unwrap_err();
        assert_eq!(err.to_string(), "`fail.test` does not resolve: no such name");
    }

    #[tokio::test]
    async fn too_many_distinct_names_are_refused_at_once() {
        // Every thread stays busy for longer than the test: the queue only fills.
        let dns = Dns::new(Arc::new(Slow(AtomicUsize::new(0), 3_000)));
        let mut lookups: Vec<_> = (0..MAX_PENDING_NAMES + 10).map(|i| dns.resolve(&format!("n{i}.test"))).collect();
        let refused = lookups.split_off(MAX_PENDING_NAMES);
        for answer in futures_join(refused).await {
            assert_eq!(answer, Err(DnsError::Busy));
        }
    }

    async fn futures_join<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
        let mut out = Vec::new();
        for f in futures {
            out.push(f.await);
        }
        out
    }
}
