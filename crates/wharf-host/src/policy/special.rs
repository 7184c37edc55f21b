//! Addresses that a name or wildcard grant never reaches: loopback, link-local (the cloud
//! metadata service at 169.254.169.254 among them), private, unique-local and the other
//! special-purpose ranges of the IANA registries. A name resolves to whatever its DNS server
//! says, so a granted name that answers `127.0.0.1` (DNS rebinding) must not open the host's
//! own services; only an address or CIDR rule that names such an address grants it.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is outside the public unicast Internet: only an explicit address or CIDR rule
/// may reach it. IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
/// (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses are judged by the IPv4 address they carry.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                   // "this network", 0.0.0.0/8
        || a == 10                           // private
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT), 100.64.0.0/10
        || a == 127                          // loopback
        || (a == 169 && b == 254)            // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)    // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)    // documentation
        || (a == 192 && b == 88 && c == 99)  // 6to4 relay anycast
        || (a == 192 && b == 168)            // private
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113)  // documentation
        || a >= 224 // multicast, reserved, broadcast
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d: none is a public peer.
        [0, 0, 0, 0, 0, 0, _, _] => true,
        // NAT64 well-known prefix: the IPv4 address it translates to decides.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => internal_v4(embedded(hi, lo)),
        // 6to4: the IPv4 address of the relay decides.
        [0x2002, hi, lo, ..] => internal_v4(embedded(hi, lo)),
        _ => {
            let first = s[0];
            (s[0] == 0x64 && s[1] == 0xff9b) // local-use NAT64 64:ff9b:1::/48 and the rest
                || (first == 0x100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
                || (first == 0x2001 && s[1] < 0x200) // IETF protocol assignments incl. Teredo, 2001::/23
                || (first == 0x2001 && s[1] == 0xdb8) // documentation
                || (first & 0xfe00) == 0xfc00 // unique-local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // deprecated site-local fec0::/10
                || (first & 0xff00) == 0xff00 // multicast
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal(s: &str) -> bool {
        is_internal(s.parse().unwrap())
    }

    #[test]
    fn special_ranges_are_internal() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::ffff:10.0.0.1",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "fec0::1",
            "ff02::1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "2001:db8::1",
            "2001::1",
        ] {
            assert!(internal(ip), "{ip} must be internal");
        }
    }

    #[test]
    fn public_addresses_are_not() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "::ffff:1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::101:101",
            "2002:101:101::1",
        ] {
            assert!(!internal(ip), "{ip} must be public");
        }
    }
}
