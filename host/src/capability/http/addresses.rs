//! Which addresses a wildcard grant may not reach: everything that is not a public unicast
//! address, after the IANA special-purpose registries
//! (<https://www.iana.org/assignments/iana-ipv4-special-registry>,
//! <https://www.iana.org/assignments/iana-ipv6-special-registry>), plus multicast.
//!
//! IPv6 forms that carry an IPv4 address — IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//! `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::` — are judged by the IPv4
//! address inside them as well, so `64:ff9b::7f00:1` is loopback. Teredo (`2001::/32`) sits in
//! the IETF protocol block, which is refused whole.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 blocks that are not public unicast, with the registry's name for each.
const V4: &[(u32, u8, &str)] = &[
    (0x0000_0000, 8, "\"this network\" 0.0.0.0/8"),
    (0x0a00_0000, 8, "private-use 10.0.0.0/8"),
    (0x6440_0000, 10, "shared address space 100.64.0.0/10"),
    (0x7f00_0000, 8, "loopback 127.0.0.0/8"),
    (0xa9fe_0000, 16, "link-local 169.254.0.0/16 (cloud metadata lives here)"),
    (0xac10_0000, 12, "private-use 172.16.0.0/12"),
    (0xc000_0000, 24, "IETF protocol assignments 192.0.0.0/24"),
    (0xc000_0200, 24, "documentation 192.0.2.0/24"),
    (0xc058_6300, 24, "6to4 relay anycast 192.88.99.0/24"),
    (0xc0a8_0000, 16, "private-use 192.168.0.0/16"),
    (0xc612_0000, 15, "benchmarking 198.18.0.0/15"),
    (0xc633_6400, 24, "documentation 198.51.100.0/24"),
    (0xcb00_7100, 24, "documentation 203.0.113.0/24"),
    (0xe000_0000, 4, "multicast 224.0.0.0/4"),
    (0xf000_0000, 4, "reserved 240.0.0.0/4 (and broadcast)"),
];

/// IPv6 blocks that are not public unicast (the IPv4-carrying forms are handled separately).
const V6: &[(u128, u8, &str)] = &[
    (0, 128, "unspecified ::/128"),
    (1, 128, "loopback ::1/128"),
    (0x0064_ff9b_0001 << 80, 48, "local-use NAT64 64:ff9b:1::/48"),
    (0x0100 << 112, 64, "discard-only 100::/64"),
    (
        0x2001 << 112,
        23,
        "IETF protocol assignments 2001::/23 (Teredo included)",
    ),
    (0x2001_0db8 << 96, 32, "documentation 2001:db8::/32"),
    (0x3fff << 112, 20, "documentation 3fff::/20"),
    (0x5f00 << 112, 16, "segment routing 5f00::/16"),
    (0xfc00 << 112, 7, "unique-local fc00::/7"),
    (0xfe80 << 112, 10, "link-local fe80::/10"),
    (0xfec0 << 112, 10, "site-local fec0::/10"),
    (0xff00 << 112, 8, "multicast ff00::/8"),
];

/// Why a wildcard grant may not reach `ip`, or `None` for a public unicast address.
pub fn restriction(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => restriction_v4(v4),
        IpAddr::V6(v6) => restriction_v6(v6),
    }
}

fn restriction_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let a = u32::from(ip);
    V4.iter()
        .find(|(net, len, _)| a >> (32 - len) == net >> (32 - len))
        .map(|(_, _, name)| *name)
}

fn restriction_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let a = u128::from(ip);
    if let Some((_, _, name)) = V6.iter().find(|(net, len, _)| a >> (128 - len) == net >> (128 - len)) {
        return Some(name);
    }
    if let Some(v4) = embedded_v4(a) {
        return restriction_v4(v4);
    }
    None
}

/// The IPv4 address an IPv6 address carries: mapped, compatible, NAT64 well-known prefix, 6to4.
fn embedded_v4(a: u128) -> Option<Ipv4Addr> {
    let low = Ipv4Addr::from(a as u32);
    match a >> 32 {
        // ::a.b.c.d, ::ffff:a.b.c.d, 64:ff9b::a.b.c.d
        0 | 0xffff | 0x0064_ff9b_0000_0000_0000_0000 => return Some(low),
        _ => {}
    }
    if a >> 112 == 0x2002 {
        return Some(Ipv4Addr::from((a >> 80) as u32)); // 2002:aabb:ccdd::/48
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.8",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "::",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378::1",
            "2001:db8::1",
            "100::1",
        ] {
            assert!(restriction(a.parse().unwrap()).is_some(), "{a} should be refused");
        }
    }

    #[test]
    fn public() {
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
            "2002:101:101::",
        ] {
            assert_eq!(restriction(a.parse().unwrap()), None, "{a} is public");
        }
    }
}
