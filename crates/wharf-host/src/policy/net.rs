//! Outbound network grants: `HOST[:PORT]` rules with exact names, `*.suffix` wildcards, IP
//! addresses and CIDR ranges, and the checks that enforce them.
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

use super::PolicyError;
pub use super::special::is_internal;

/// Which hosts a rule names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// One DNS name, lower-cased, without a trailing dot.
    Name(String),
    /// `*.example.com`: any name strictly below `example.com` (stored as `.example.com`).
    Wildcard(String),
    /// One IP address.
    Ip(IpAddr),
    /// An address range such as `10.0.0.0/8`.
    Cidr(IpNet),
}

/// One `--allow-net` grant: an optional URL scheme, a host pattern and an optional port.
///
/// Without a scheme the rule grants sockets and outbound HTTP alike (any port when none is
/// given). With `http://` or `https://` it grants outbound HTTP only, with that scheme, on the
/// scheme's default port unless one is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRule {
    /// `Some("http")`/`Some("https")` for an HTTP-only rule.
    pub scheme: Option<&'static str>,
    /// The hosts this rule grants.
    pub host: HostPattern,
    /// The one port granted, or any port when `None`.
    pub port: Option<u16>,
}

impl FromStr for NetRule {
    type Err = PolicyError;

    /// Parses `host`, `host:port`, `*.suffix[:port]`, `1.2.3.4[:port]`, `10.0.0.0/8[:port]`,
    /// `[::1]:port`, `[fd00::/8]:port` or a bare IPv6 address/range. A port of `*` means any.
    fn from_str(text: &str) -> Result<Self, PolicyError> {
        let bad = |why: &str| PolicyError::invalid("allow-net", text, why);
        let (scheme, rest) = match text.split_once("://") {
            Some(("http", rest)) => (Some("http"), rest),
            Some(("https", rest)) => (Some("https"), rest),
            Some(_) => return Err(bad("the only schemes are http:// and https://")),
            None => (None, text),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(rest) = rest.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(|| bad("missing `]`"))?;
            match after {
                "" => (inside, None),
                _ => (inside, Some(after.strip_prefix(':').ok_or_else(|| bad("expected `:PORT` after `]`"))?)),
            }
        } else if rest.matches(':').count() == 1 {
            let (h, p) = rest.split_once(':').unwrap_or((rest, ""));
            (h, Some(p))
        } else {
            (rest, None)
        };
        let port = match (port, scheme) {
            (Some("*"), _) | (None, None) => None,
            (None, Some(scheme)) => Some(default_port(scheme)),
            (Some(p), _) => {
                Some(p.parse::<u16>().map_err(|_| bad("the port must be a number from 0 to 65535 or `*`"))?)
            }
        };
        Ok(NetRule { scheme, host: parse_host(host).map_err(|why| bad(&why))?, port })
    }
}

fn parse_host(host: &str) -> Result<HostPattern, String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host.contains('/') {
        return IpNet::from_str(host)
            .map(|net| HostPattern::Cidr(net.trunc()))
            .map_err(|e| format!("bad CIDR range: {e}"));
    }
    if let Ok(ip) = IpAddr::from_str(host) {
        return Ok(HostPattern::Ip(canonical(ip)));
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let (wild, base) = match name.strip_prefix("*.") {
        Some(base) => (true, base),
        None => (false, name.as_str()),
    };
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !base.split('.').all(label_ok) {
        return Err("not a valid host name, IP address or CIDR range (only a leading `*.` may be a wildcard)".into());
    }
    // A name made only of digits and dots is an IP address spelled in a form we do not accept
    // (e.g. `0x7f.1` or `2130706433`); refuse it rather than treat it as a DNS name.
    if base.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit())) || base.starts_with("0x") {
        return Err("not a dotted-quad IP address or a host name".into());
    }
    Ok(if wild { HostPattern::Wildcard(format!(".{base}")) } else { HostPattern::Name(base.to_string()) })
}

/// The port a URL of `scheme` uses when it names none.
pub fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) are compared as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl NetRule {
    fn port_matches(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    /// Whether this rule grants an outbound HTTP request with `scheme` to `host` (a DNS name
    /// or an IP literal) on `port`. Here, unlike for sockets, wildcards apply: the name is known.
    pub fn matches_http(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.scheme.is_none_or(|s| s == scheme) && self.matches_host(host, port)
    }

    fn matches_host(&self, host: &str, port: u16) -> bool {
        if !self.port_matches(port) {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = IpAddr::from_str(host) {
            return self.matches_ip(canonical(ip));
        }
        self.matches_name(&host.trim_end_matches('.').to_ascii_lowercase())
    }

    /// Whether this rule names `name` (lower-case, no trailing dot) or a wildcard above it.
    fn matches_name(&self, name: &str) -> bool {
        match &self.host {
            HostPattern::Name(n) => n == name,
            HostPattern::Wildcard(suffix) => name.len() > suffix.len() && name.ends_with(suffix.as_str()),
            HostPattern::Ip(_) | HostPattern::Cidr(_) => false,
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        match &self.host {
            HostPattern::Ip(allowed) => *allowed == ip,
            HostPattern::Cidr(net) => net.contains(&ip),
            HostPattern::Name(_) | HostPattern::Wildcard(_) => false,
        }
    }
}

/// The network grants of one policy, ready to check what a guest asks for: name lookups,
/// socket addresses and outbound HTTP requests. Nothing here resolves a name: lookups are made
/// by [`crate::dns`] for the guest (and checked here), so a name's answers are judged when they
/// are used, not once at startup.
///
/// The rule everywhere: an address or CIDR rule grants exactly what it names. A name or
/// wildcard rule grants the addresses the name resolves to, except internal ones (loopback,
/// link-local, private, unique-local, see [`is_internal`]): those need an address rule.
#[derive(Clone, Debug, Default)]
pub struct NetGrants {
    rules: Vec<NetRule>,
}

impl NetGrants {
    /// The grants of `rules` (`--allow-net`).
    pub fn new(rules: &[NetRule]) -> Self {
        NetGrants { rules: rules.to_vec() }
    }

    /// Whether any rule grants sockets (a rule without `http://`/`https://`).
    pub fn has_sockets(&self) -> bool {
        self.socket_rules().next().is_some()
    }

    fn socket_rules(&self) -> impl Iterator<Item = &NetRule> {
        self.rules.iter().filter(|r| r.scheme.is_none())
    }

    /// The ports under which the guest may look up `name` (lower-case, no trailing dot): one
    /// entry per socket rule that names it or a wildcard it falls under (`None` = any port).
    /// Empty when no rule does: the lookup is refused before any query is made.
    pub fn lookup_ports(&self, name: &str) -> Vec<Option<u16>> {
        self.socket_rules().filter(|r| r.matches_name(name)).map(|r| r.port).collect()
    }

    /// Whether an answer to a granted lookup may be given to the guest: a public address, or
    /// an internal one that a socket address rule names (on any port).
    pub fn answer_allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_internal(ip) || self.socket_rules().any(|r| r.matches_ip(ip))
    }

    /// Whether an address or CIDR rule grants a socket connect (or datagram) to `addr`.
    pub fn socket_address_granted(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        self.socket_rules().any(|r| r.port_matches(addr.port()) && r.matches_ip(ip))
    }

    /// Whether an outbound HTTP request's URL is granted: `host` (a name or an IP literal) by
    /// a rule with a matching scheme and port.
    pub fn http_allows_url(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.rules.iter().any(|r| r.matches_http(scheme, host, port))
    }

    /// Whether an outbound HTTP request to a granted name may connect to `ip`, one of the
    /// addresses the name resolved to: any public address, an internal one only when an
    /// address rule with a matching scheme and port names it.
    pub fn http_allows_address(&self, scheme: &str, ip: IpAddr, port: u16) -> bool {
        let ip = canonical(ip);
        !is_internal(ip)
            || self
                .rules
                .iter()
                .any(|r| r.scheme.is_none_or(|s| s == scheme) && r.port_matches(port) && r.matches_ip(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> NetRule {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(rule("example.com").host, HostPattern::Name("example.com".into()));
        assert_eq!(rule("Example.COM.:443").port, Some(443));
        assert_eq!(rule("*.example.com:*").host, HostPattern::Wildcard(".example.com".into()));
        assert_eq!(rule("127.0.0.1:80").host, HostPattern::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(rule("[::1]:80").port, Some(80));
        assert_eq!(rule("::1").host, HostPattern::Ip("::1".parse().unwrap()));
        assert_eq!(rule("10.1.2.3/8").host, HostPattern::Cidr("10.0.0.0/8".parse().unwrap()));
        assert_eq!(rule("[fd00::/8]:443").port, Some(443));
        for bad in
            ["", "a:b", "*.", "exa*mple.com", "foo.*.com", "0x7f000001", "2130706433", "[::1", "1.2.3.4/40", "h:70000"]
        {
            assert!(bad.parse::<NetRule>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let r = rule("*.example.test");
        assert!(r.matches_http("https", "api.example.test", 443));
        assert!(r.matches_http("http", "a.b.EXAMPLE.test.", 1));
        assert!(!r.matches_http("https", "example.test", 443));
        assert!(!r.matches_http("https", "evil.test", 443));
        assert!(!r.matches_http("https", "badexample.test", 443));
        assert!(!r.matches_http("https", "127.0.0.1", 443));
    }

    #[test]
    fn http_rules_check_scheme_and_port() {
        let r = rule("https://api.example.test");
        assert!(r.matches_http("https", "api.example.test", 443));
        assert!(!r.matches_http("http", "api.example.test", 443));
        assert!(!r.matches_http("https", "api.example.test", 8443));
        let r = rule("127.0.0.1:8080");
        assert!(r.matches_http("http", "127.0.0.1", 8080));
        assert!(r.matches_http("http", "[::ffff:127.0.0.1]", 8080));
        assert!(!r.matches_http("http", "127.0.0.1", 8081));
        assert!(!r.matches_http("http", "localhost", 8080), "names are not resolved for HTTP rules on addresses");
        // HTTP-only rules grant no sockets.
        assert!(
            !NetGrants::new(&[rule("http://127.0.0.1:80")]).socket_address_granted("127.0.0.1:80".parse().unwrap())
        );
    }

    #[test]
    fn addresses_and_ranges_are_enforced() {
        let grants = NetGrants::new(&[rule("127.0.0.1:8080"), rule("10.0.0.0/8"), rule("*.example.test")]);
        let granted = |a: &str| grants.socket_address_granted(a.parse().unwrap());
        assert!(granted("127.0.0.1:8080"));
        assert!(granted("[::ffff:127.0.0.1]:8080"));
        assert!(!granted("127.0.0.1:8081"));
        assert!(!granted("127.0.0.2:8080"));
        assert!(!granted("[::1]:8080"));
        assert!(granted("10.200.3.4:1"));
        assert!(!granted("11.0.0.1:1"));
    }

    #[test]
    fn names_grant_lookups_and_public_answers_only() {
        let grants = NetGrants::new(&[rule("api.example.test:443"), rule("*.wild.test"), rule("https://web.test")]);
        assert_eq!(grants.lookup_ports("api.example.test"), vec![Some(443)]);
        assert_eq!(grants.lookup_ports("a.b.wild.test"), vec![None]);
        assert!(grants.lookup_ports("wild.test").is_empty());
        assert!(grants.lookup_ports("evil.test").is_empty());
        // An HTTP-only rule grants the host's lookups, not the guest's.
        assert!(grants.lookup_ports("web.test").is_empty());
        for internal in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "169.254.169.254", "10.0.0.1", "fd00::1"] {
            assert!(!grants.answer_allowed(internal.parse().unwrap()), "{internal}");
            assert!(!grants.http_allows_address("https", internal.parse().unwrap(), 443), "{internal}");
        }
        assert!(grants.answer_allowed("93.184.216.34".parse().unwrap()));
        assert!(grants.http_allows_address("https", "93.184.216.34".parse().unwrap(), 443));
        // An address rule makes an internal answer usable, on its own port and scheme.
        let grants = NetGrants::new(&[rule("localhost:9000"), rule("127.0.0.1:9000"), rule("http://10.0.0.1")]);
        assert!(grants.answer_allowed("127.0.0.1".parse().unwrap()));
        assert!(!grants.answer_allowed("::1".parse().unwrap()));
        assert!(grants.http_allows_address("http", "127.0.0.1".parse().unwrap(), 9000));
        assert!(!grants.http_allows_address("http", "127.0.0.1".parse().unwrap(), 9001));
        assert!(grants.http_allows_address("http", "10.0.0.1".parse().unwrap(), 80));
        assert!(!grants.http_allows_address("https", "10.0.0.1".parse().unwrap(), 443));
        assert!(!grants.answer_allowed("10.0.0.1".parse().unwrap()), "an HTTP rule grants no socket");
    }
}
