//! [`GuestNet`]: one store's network checks, shared by every way a guest reaches the network
//! (`wasi:sockets` of WASI 0.2 and 0.3, `wasi:http` outbound of both), so each generation's
//! bindings only have to call it.
//!
//! - Name lookups ([`GuestNet::lookup`]): only names a socket rule grants are looked up (any
//!   other name fails before a query is made), on wharf's DNS threads ([`crate::dns`]), at most
//!   [`MAX_LOOKUPS_IN_FLIGHT`] at a time and [`MAX_LOOKUPS`] in all per store. Answers are
//!   filtered by the address rules ([`NetGrants::answer_allowed`]); the public ones are
//!   remembered, with the ports of the rules that granted the name, for the socket check.
//! - Socket addresses ([`GuestNet::allows_socket`]): an address rule, or a public address a
//!   granted lookup of this store returned.
//! - Outbound HTTP ([`GuestNet::http_targets`]): the URL's host must be granted; a name is
//!   resolved here and the request goes to one of the checked addresses, never to a second
//!   lookup's answer.
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;
use wasmtime_wasi::sockets::SocketAddrUse;

use crate::dns::{Dns, DnsError};
use crate::policy::NetGrants;
use crate::policy::net::is_internal;

/// Name lookups (guest lookups and outbound HTTP requests by name) one store may have waiting
/// on the resolver at once; more wait their turn without taking a DNS thread.
pub const MAX_LOOKUPS_IN_FLIGHT: usize = 4;

/// Guest name lookups (`ip-name-lookup`) one store may make in its life; past it every lookup
/// fails. Outbound HTTP requests are not counted.
pub const MAX_LOOKUPS: usize = 1_024;

/// Why a guest's name lookup gave no address. Each maps onto the `ip-name-lookup` error codes
/// of WASI 0.2 and 0.3 alike (see [`LookupError::code`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The text is neither a valid host name nor an IP address.
    #[error("not a host name or IP address")]
    InvalidName,
    /// No socket rule grants the name: nothing was asked of any resolver.
    #[error("not granted by the policy")]
    Denied,
    /// The store has made [`MAX_LOOKUPS`] lookups.
    #[error("this instance has made its {MAX_LOOKUPS} name lookups")]
    LimitReached,
    /// The name does not resolve, or none of its addresses is granted.
    #[error("no granted address")]
    Unresolvable,
    /// The resolver is overloaded; trying later may work.
    #[error("the resolver is busy")]
    Busy,
}

/// The WASI `ip-name-lookup` error a [`LookupError`] becomes (same names in 0.2 and 0.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupCode {
    /// `invalid-argument`
    InvalidArgument,
    /// `access-denied`
    AccessDenied,
    /// `name-unresolvable`
    NameUnresolvable,
    /// `temporary-resolver-failure`
    TemporaryResolverFailure,
    /// `permanent-resolver-failure`
    PermanentResolverFailure,
}

impl LookupError {
    /// The WASI error code the guest sees.
    pub fn code(&self) -> LookupCode {
        match self {
            LookupError::InvalidName => LookupCode::InvalidArgument,
            LookupError::Denied => LookupCode::AccessDenied,
            LookupError::LimitReached => LookupCode::PermanentResolverFailure,
            LookupError::Unresolvable => LookupCode::NameUnresolvable,
            LookupError::Busy => LookupCode::TemporaryResolverFailure,
        }
    }
}

/// Why an outbound HTTP request was not sent.
#[derive(Debug)]
pub(crate) enum HttpRefusal {
    /// The URL or every address the host resolved to is outside the policy.
    Denied(String),
    /// The name does not resolve.
    Dns(DnsError),
}

/// The network checks of one store. Build one per store with [`GuestNet::new`]; it is shared
/// (behind an `Arc`) by the socket check, the lookup bindings and the outbound HTTP hooks.
#[derive(Debug)]
pub struct GuestNet {
    grants: Arc<NetGrants>,
    dns: Dns,
    // Public addresses that granted lookups returned, with the granting rules' ports.
    learned: Mutex<HashSet<(IpAddr, Option<u16>)>>,
    in_flight: Arc<Semaphore>,
    lookups: AtomicUsize,
}

impl GuestNet {
    /// The checks of `grants`, resolving through `dns`.
    pub fn new(grants: Arc<NetGrants>, dns: Dns) -> Self {
        GuestNet {
            grants,
            dns,
            learned: Mutex::default(),
            in_flight: Arc::new(Semaphore::new(MAX_LOOKUPS_IN_FLIGHT)),
            lookups: AtomicUsize::new(0),
        }
    }

    /// Resolves `name` for the guest (the `resolve-addresses` of either WASI generation). An
    /// IP address is returned as is, without a query (connecting to it is checked anyway).
    pub fn lookup(
        self: &Arc<Self>,
        name: &str,
    ) -> impl Future<Output = Result<Vec<IpAddr>, LookupError>> + Send + 'static + use<> {
        let this = self.clone();
        let parsed = parse_lookup_name(name);
        async move {
            let name = match parsed? {
                Target::Ip(ip) => return Ok(vec![ip]),
                Target::Name(name) => name,
            };
            let ports = this.grants.lookup_ports(&name);
            if ports.is_empty() {
                tracing::debug!(%name, "name lookup denied by policy");
                return Err(LookupError::Denied);
            }
            if this.lookups.fetch_add(1, Ordering::Relaxed) >= MAX_LOOKUPS {
                return Err(LookupError::LimitReached);
            }
            let answers = this.resolve(&name).await.map_err(|e| match e {
                DnsError::Busy => LookupError::Busy,
                DnsError::Failed { .. } => {
                    tracing::debug!("{e}");
                    LookupError::Unresolvable
                }
            })?;
            let (granted, refused): (Vec<IpAddr>, Vec<IpAddr>) =
                answers.into_iter().map(|ip| ip.to_canonical()).partition(|ip| this.grants.answer_allowed(*ip));
            if !refused.is_empty() {
                tracing::debug!(%name, ?refused, "lookup answers outside the policy withheld from the guest");
            }
            let mut learned = this.learned.lock().unwrap_or_else(PoisonError::into_inner);
            for ip in granted.iter().filter(|ip| !is_internal(**ip)) {
                learned.extend(ports.iter().map(|port| (*ip, *port)));
            }
            if granted.is_empty() { Err(LookupError::Unresolvable) } else { Ok(granted) }
        }
    }

    /// Whether a socket may use `addr` for `use_`: only implicit binds (wildcard address, port
    /// 0) before a connect or send; connects, datagrams sent and datagrams received with a peer
    /// that an address rule grants or that a granted lookup returned; never listen or accept.
    pub fn allows_socket(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        let allowed = match use_ {
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => addr.ip().is_unspecified() && addr.port() == 0,
            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => self.peer_allowed(addr),
            SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => false,
        };
        if !allowed {
            tracing::debug!(%addr, ?use_, "socket address denied by policy");
        }
        allowed
    }

    fn peer_allowed(&self, addr: SocketAddr) -> bool {
        if self.grants.socket_address_granted(addr) {
            return true;
        }
        let ip = addr.ip().to_canonical();
        let learned = self.learned.lock().unwrap_or_else(PoisonError::into_inner);
        !is_internal(ip) && (learned.contains(&(ip, Some(addr.port()))) || learned.contains(&(ip, None)))
    }

    /// Where an outbound HTTP request to `scheme://host:port` may connect: the address of an
    /// IP literal the rules grant, or the granted addresses of a granted name, resolved once
    /// here. Userinfo is refused by the caller.
    pub(crate) async fn http_targets(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, HttpRefusal> {
        let denied = |why: &str| Err(HttpRefusal::Denied(format!("{scheme}://{host}:{port} {why}")));
        if !self.grants.http_allows_url(scheme, host, port) {
            return denied("is not granted");
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = IpAddr::from_str(bare) {
            return Ok(vec![SocketAddr::new(ip.to_canonical(), port)]);
        }
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        let answers = self.resolve(&name).await.map_err(HttpRefusal::Dns)?;
        let targets: Vec<SocketAddr> = answers
            .iter()
            .map(|ip| ip.to_canonical())
            .filter(|ip| self.grants.http_allows_address(scheme, *ip, port))
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
        if targets.is_empty() {
            return denied(&format!("resolves only to addresses outside the policy ({answers:?})"));
        }
        Ok(targets)
    }

    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let _permit = self.in_flight.acquire().await.map_err(|_| DnsError::Busy)?;
        self.dns.resolve(name).await
    }
}

enum Target {
    Ip(IpAddr),
    Name(String),
}

/// A lookup's name as WASI defines it (a domain name, IDNA-encoded, or an IP address), checked
/// the way wasmtime-wasi does, then held to host-name syntax: ASCII letters, digits, `-` and
/// `_`, labels of 1 to 63 characters, 253 in all, one trailing dot ignored.
fn parse_lookup_name(name: &str) -> Result<Target, LookupError> {
    let domain = match url::Host::parse(name) {
        Ok(url::Host::Domain(domain)) => domain,
        Ok(url::Host::Ipv4(ip)) => return Ok(Target::Ip(IpAddr::V4(ip))),
        Ok(url::Host::Ipv6(ip)) => return Ok(Target::Ip(IpAddr::V6(ip))),
        Err(_) => match std::net::Ipv6Addr::from_str(name) {
            Ok(ip) => return Ok(Target::Ip(IpAddr::V6(ip))),
            Err(_) => return Err(LookupError::InvalidName),
        },
    };
    let domain = domain.strip_suffix('.').unwrap_or(&domain).to_ascii_lowercase();
    let label_ok =
        |l: &str| (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(LookupError::InvalidName);
    }
    Ok(Target::Name(domain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::Resolver;
    use crate::policy::NetRule;

    /// A resolver that knows a few names and records every query it receives.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);

    impl Resolver for Recording {
        fn lookup(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
            self.0.lock().unwrap().push(name.to_string());
            let ips: &[&str] = match name {
                "api.test" => &["93.184.216.34", "127.0.0.1", "::ffff:10.0.0.1", "fd00::1"],
                "inside.test" => &["127.0.0.1", "::1"],
                _ => return Err(std::io::Error::other("no such name")),
            };
            Ok(ips.iter().map(|ip| ip.parse().unwrap()).collect())
        }
    }

    fn net(rules: &[&str]) -> (Arc<GuestNet>, Arc<Recording>) {
        let rules: Vec<NetRule> = rules.iter().map(|r| r.parse().unwrap()).collect();
        let recording = Arc::new(Recording::default());
        (Arc::new(GuestNet::new(Arc::new(NetGrants::new(&rules)), Dns::new(recording.clone()))), recording)
    }

    #[tokio::test]
    async fn only_granted_names_are_queried_and_answers_are_filtered() {
        let (net, queries) = net(&["api.test:443", "inside.test:8080", "127.0.0.1:8080"]);
        assert_eq!(net.lookup("evil.test").await, Err(LookupError::Denied));
        assert_eq!(net.lookup("secret.api.test").await, Err(LookupError::Denied));
        assert_eq!(net.lookup("bad name").await, Err(LookupError::InvalidName));
        assert_eq!(net.lookup("10.0.0.1").await, Ok(vec!["10.0.0.1".parse().unwrap()]));
        assert!(queries.0.lock().unwrap().is_empty(), "no query may leave for an ungranted name");

        // 127.0.0.1 is given because an address rule names it (on its own port only).
        let api = ["93.184.216.34".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        assert_eq!(net.lookup("API.test.").await, Ok(api.to_vec()));
        assert!(net.allows_socket("93.184.216.34:443".parse().unwrap(), SocketAddrUse::TcpConnect));
        assert!(!net.allows_socket("93.184.216.34:444".parse().unwrap(), SocketAddrUse::TcpConnect));
        assert!(!net.allows_socket("127.0.0.1:443".parse().unwrap(), SocketAddrUse::TcpConnect));
        // A name whose answers are all internal gives only what an address rule grants.
        assert_eq!(net.lookup("inside.test").await, Ok(vec!["127.0.0.1".parse().unwrap()]));
        assert!(net.allows_socket("127.0.0.1:8080".parse().unwrap(), SocketAddrUse::UdpReceive));
        assert!(!net.allows_socket("[::1]:8080".parse().unwrap(), SocketAddrUse::TcpConnect));
        assert_eq!(*queries.0.lock().unwrap(), ["api.test", "inside.test"]);
    }

    #[tokio::test]
    async fn http_connects_only_to_checked_addresses() {
        let (net, _) = net(&["https://api.test", "http://inside.test:8080", "*.wild.test", "http://127.0.0.1:9"]);
        let targets = net.http_targets("https", "api.test", 443).await.unwrap();
        assert_eq!(targets, vec!["93.184.216.34:443".parse().unwrap()]);
        assert!(matches!(net.http_targets("http", "inside.test", 8080).await, Err(HttpRefusal::Denied(_))));
        assert!(matches!(net.http_targets("https", "other.test", 443).await, Err(HttpRefusal::Denied(_))));
        assert!(matches!(net.http_targets("https", "x.wild.test", 443).await, Err(HttpRefusal::Dns(_))));
        assert_eq!(net.http_targets("http", "127.0.0.1", 9).await.unwrap(), vec!["127.0.0.1:9".parse().unwrap()]);
        assert!(matches!(net.http_targets("http", "[::1]", 9).await, Err(HttpRefusal::Denied(_))));
    }

    #[tokio::test]
    async fn lookups_per_store_are_capped() {
        let (net, _) = net(&["api.test"]);
        for _ in 0..MAX_LOOKUPS {
            net.lookup("api.test").await.unwrap();
        }
        assert_eq!(net.lookup("api.test").await, Err(LookupError::LimitReached));
        assert_eq!(net.lookup("api.test").await.unwrap_err().code(), LookupCode::PermanentResolverFailure);
    }
}
