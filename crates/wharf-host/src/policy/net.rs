//! Outbound network grants: `HOST[:PORT]` rules with exact names, `*.suffix` wildcards, IP
//! addresses and CIDR ranges, and the checks that enforce them.
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use ipnet::IpNet;

use super::PolicyError;

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
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        match &self.host {
            HostPattern::Name(n) => *n == name,
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

/// The socket-level view of a set of rules: addresses only, since a socket never sees names.
///
/// Exact names are resolved once, when this is built; a socket may reach the addresses they
/// resolved to. Wildcard names cannot be checked against a bare address, so they grant no
/// socket access (they do apply to outbound HTTP, where the name is known).
#[derive(Clone, Debug, Default)]
pub struct SocketGrants {
    rules: Vec<NetRule>,
    resolved: HashSet<(IpAddr, Option<u16>)>,
}

impl SocketGrants {
    /// Resolves the exact names among `rules`. A name that does not resolve grants nothing.
    pub fn resolve(rules: &[NetRule]) -> Self {
        let mut resolved = HashSet::new();
        let rules: Vec<NetRule> = rules.iter().filter(|r| r.scheme.is_none()).cloned().collect();
        for rule in &rules {
            if let HostPattern::Name(name) = &rule.host {
                match (name.as_str(), 0).to_socket_addrs() {
                    Ok(addrs) => resolved.extend(addrs.map(|a| (canonical(a.ip()), rule.port))),
                    Err(e) => tracing::warn!(host = %name, "granted host does not resolve: {e}"),
                }
            }
        }
        SocketGrants { rules, resolved }
    }

    /// Whether any rule names a host by DNS name (so the guest needs name lookups).
    pub fn has_names(&self) -> bool {
        self.rules.iter().any(|r| matches!(r.host, HostPattern::Name(_) | HostPattern::Wildcard(_)))
    }

    /// Whether nothing at all is granted.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a socket may connect to (or send to) `addr`.
    pub fn allows(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        self.rules.iter().any(|r| r.port_matches(addr.port()) && r.matches_ip(ip))
            || self.resolved.contains(&(ip, Some(addr.port())))
            || self.resolved.contains(&(ip, None))
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
        assert!(!SocketGrants::resolve(&[rule("http://127.0.0.1:80")]).allows("127.0.0.1:80".parse().unwrap()));
    }

    #[test]
    fn addresses_and_ranges_are_enforced() {
        let grants = SocketGrants::resolve(&[rule("127.0.0.1:8080"), rule("10.0.0.0/8"), rule("*.example.test")]);
        assert!(grants.allows("127.0.0.1:8080".parse().unwrap()));
        assert!(grants.allows("[::ffff:127.0.0.1]:8080".parse().unwrap()));
        assert!(!grants.allows("127.0.0.1:8081".parse().unwrap()));
        assert!(!grants.allows("127.0.0.2:8080".parse().unwrap()));
        assert!(!grants.allows("[::1]:8080".parse().unwrap()));
        assert!(grants.allows("10.200.3.4:1".parse().unwrap()));
        assert!(!grants.allows("11.0.0.1:1".parse().unwrap()));
    }

    #[test]
    fn names_resolve_to_their_addresses() {
        let grants = SocketGrants::resolve(&[rule("localhost:9000")]);
        assert!(grants.allows("127.0.0.1:9000".parse().unwrap()));
        assert!(!grants.allows("127.0.0.1:9001".parse().unwrap()));
        assert!(grants.has_names());
    }
}
