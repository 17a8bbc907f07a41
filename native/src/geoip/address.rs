//! Which texts are addresses worth a GeoIP lookup: the parse of a field's value (never a
//! name resolution) and the table of ranges that are not publicly routed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use crate::ip::v6_text;

/// An address literal: its version, its integer and its canonical text (what the
/// logstash layout's `geoip.ip` holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub ip: IpAddr,
    pub text: String,
}

impl Address {
    pub fn version(&self) -> u8 {
        match self.ip {
            IpAddr::V4(_) => 4,
            IpAddr::V6(_) => 6,
        }
    }

    pub fn int(&self) -> u128 {
        match self.ip {
            IpAddr::V4(a) => u32::from(a).into(),
            IpAddr::V6(a) => u128::from(a),
        }
    }
}

/// The address of a field's text, or None for anything else (a host name, a port after
/// it, garbage). A strict dotted quad is its own canonical text (no leading zeros: `081`
/// could be octal); IPv6 may carry a scope id (`fe80::1%eth0`: a non-empty one, a single
/// `%`), dropped. An IPv4-mapped IPv6 address is its IPv4 address.
pub fn parse(text: &str) -> Option<Address> {
    if let Ok(a) = text.parse::<Ipv4Addr>() {
        return Some(Address {
            ip: IpAddr::V4(a),
            text: text.to_string(),
        });
    }
    let bare = match text.split_once('%') {
        None => text,
        Some((addr, scope)) if !scope.is_empty() && !scope.contains('%') => addr,
        Some(_) => return None,
    };
    let a = bare.parse::<Ipv6Addr>().ok()?;
    Some(match a.to_ipv4_mapped() {
        Some(v4) => Address {
            ip: IpAddr::V4(v4),
            text: v4.to_string(),
        },
        None => Address {
            ip: IpAddr::V6(a),
            text: v6_text(&a),
        },
    })
}

/// Not looked up: IPv4 ranges of the IANA special-purpose registry that are not globally
/// reachable (this network, private, CGNAT, loopback, link-local, IETF protocol,
/// documentation, benchmarking) and 224/3 (multicast, reserved, broadcast); IPv6 outside
/// global unicast 2000::/3 (loopback, ULA, link- and site-local, multicast, NAT64...)
/// and, inside it, the IETF protocol and documentation ranges. A table rather than the
/// standard library's "is global": that calls multicast global, and Python's changed
/// between patch releases.
pub const NOT_PUBLIC_V4: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/3",
];
pub const NOT_PUBLIC_V6: &[&str] = &["::/3", "2001::/23", "2001:db8::/32", "4000::/2", "8000::/1"];

/// Sorted, disjoint (first, last) pairs of one version's table.
struct Ranges(Vec<(u128, u128)>);

impl Ranges {
    fn new(nets: &[&str], bits: u32) -> Ranges {
        let mut pairs: Vec<(u128, u128)> = nets
            .iter()
            .map(|net| {
                let (addr, len) = net.split_once('/').expect("a CIDR");
                let first = match addr.parse::<IpAddr>().expect("an address") {
                    IpAddr::V4(a) => u128::from(u32::from(a)),
                    IpAddr::V6(a) => u128::from(a),
                };
                let host_bits = bits - len.parse::<u32>().expect("a prefix length");
                let span = if host_bits == 128 {
                    u128::MAX
                } else {
                    (1u128 << host_bits) - 1
                };
                (first, first | span)
            })
            .collect();
        pairs.sort_unstable();
        Ranges(pairs)
    }

    fn contains(&self, n: u128) -> bool {
        // the last range starting at or before n (bisect_right - 1)
        let i = self.0.partition_point(|&(first, _)| first <= n);
        i > 0 && n <= self.0[i - 1].1
    }
}

static V4: LazyLock<Ranges> = LazyLock::new(|| Ranges::new(NOT_PUBLIC_V4, 32));
static V6: LazyLock<Ranges> = LazyLock::new(|| Ranges::new(NOT_PUBLIC_V6, 128));

/// Whether an address (by version and integer) is outside every skipped range.
pub fn is_public(version: u8, n: u128) -> bool {
    match version {
        4 => !V4.contains(n),
        _ => !V6.contains(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(t: &str) -> bool {
        let a = parse(t).unwrap();
        is_public(a.version(), a.int())
    }

    #[test]
    fn parses_as_python_did() {
        // (text, canonical text) as Python's inet_pton / ipaddress gave them
        for (t, want) in [
            ("81.2.69.142", Some("81.2.69.142")),
            ("::ffff:81.2.69.142", Some("81.2.69.142")),
            ("::FFFF:81.2.69.142", Some("81.2.69.142")),
            ("::ffff:5102:458e", Some("81.2.69.142")),
            ("2001:0218:0000:0000::0001", Some("2001:218::1")),
            ("2001:DB8::1", Some("2001:db8::1")),
            ("fe80::1%eth0", Some("fe80::1")),
            ("fe80::1%", None),
            ("fe80::1%a%b", None),
            ("1.2.3.4%eth0", None),
            ("081.2.69.142", None),
            ("81.2.69.142:22", None),
            ("[81.2.69.142]", None),
            (" 81.2.69.142", None),
            ("1.2.3", None),
            ("mail.example.com", None),
            ("", None),
            ("unknown", None),
            ("١.٢.٣.٤", None),
        ] {
            assert_eq!(parse(t).map(|a| a.text).as_deref(), want, "{t}");
        }
        let a = parse("::ffff:10.0.0.1").unwrap();
        assert_eq!((a.version(), a.int()), (4, 0x0a00_0001));
        let a = parse("2001:218::1").unwrap();
        assert_eq!((a.version(), a.int()), (6, 0x2001_0218 << 96 | 1));
    }

    #[test]
    fn range_table() {
        for t in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "127.0.0.1",
            "0.0.0.0",
            "169.254.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "2001:db8::1",
            "ff02::1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fec0::1",
            "2001::1",
            "2001:1ff:ffff::1",
            "4000::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            assert!(!public(t), "{t}");
        }
        for t in [
            "81.2.69.142",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "1.0.0.1",
            "2001:218::1",
            "2001:200::",
            "2001:db7:ffff::1",
            "2001:db9::",
            "2000::",
            "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            assert!(public(t), "{t}");
        }
    }
}
