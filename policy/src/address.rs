//! Which destination addresses a blind tunnel may reach: never the proxy's own neighbourhood.
//! (Pure address arithmetic, so it lives with the other decisions: `connection.rs` asks it of a
//! redirected connection's original destination, the proxy of what a name resolved to.)
//!
//! Checked on the addresses a name *resolves to*, so decimal/octal spellings and DNS names
//! pointing at 127.0.0.1 are caught the same way as literals.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True for loopback, private, link-local (incl. cloud metadata), CGNAT, unspecified,
/// broadcast, multicast, documentation, ULA and IPv4-mapped/compatible forms of those.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10: carrier-grade NAT, often the inside of a cloud VPC.
        || (a == 100 && (64..128).contains(&b))
        // 198.18.0.0/15: benchmarking networks.
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let seg = ip.segments();
    // ::a.b.c.d (IPv4-compatible, deprecated but still routed by some stacks).
    if seg[..6].iter().all(|&s| s == 0) && !ip.is_unspecified() && !ip.is_loopback() {
        let [_, _, _, _, _, _, hi, lo] = seg;
        let v4 = Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
        return internal_v4(v4);
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local.
        || (seg[0] & 0xfe00) == 0xfc00
        || (seg[0] & 0xffc0) == 0xfe80
        // 64:ff9b::/96 NAT64 can reach internal v4 space.
        || (seg[0] == 0x64 && seg[1] == 0xff9b)
        // 2001:db8::/32 documentation.
        || (seg[0] == 0x2001 && seg[1] == 0x0db8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses() {
        for s in [
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_internal(ip(s)), "{s} should be internal");
        }
    }

    #[test]
    fn public_addresses() {
        for s in [
            "151.101.0.223",
            "8.8.8.8",
            "172.32.0.1",
            "2a04:4e42::223",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip(s)), "{s} should be public");
        }
    }
}
