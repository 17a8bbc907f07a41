//! IP addresses as the Python parser wrote them (`as_ip`: `str(ipaddress.ip_address(…))`
//! of Python 3.11, whose IPv6 text is always hexadecimal, RFC 5952 compressed).

use std::net::{Ipv4Addr, Ipv6Addr};

/// The canonical text of an IP address, or None for a host name: `[1.2.3.4]` brackets
/// and an IPv4-mapped `::ffff:1.2.3.4` prefix are taken off, a `%scope` is dropped.
pub fn as_ip(text: &str) -> Option<String> {
    let t = unmapped(text.trim_matches(|c| c == '[' || c == ']'));
    let t = t.split('%').next().unwrap_or("");
    if t.contains(':') {
        // Rust's parser takes what Python's does for the forms logs hold (hex groups,
        // `::`, a trailing dotted quad); it refuses a dotted quad with leading zeros, as
        // Python 3.9.5+ does
        t.parse::<Ipv6Addr>().ok().map(|a| v6_text(&a))
    } else {
        // a dotted quad Rust takes (no leading zeros, as Python) is its own canonical text
        t.parse::<Ipv4Addr>().ok().map(|_| t.to_string())
    }
}

/// An IPv4-mapped `::ffff:1.2.3.4` as the IPv4 address it stands for (any case; a
/// text with multi-byte characters is compared by bytes, never cut inside one).
pub fn unmapped(t: &str) -> &str {
    match t.get(..7) {
        Some(head) if head.eq_ignore_ascii_case("::ffff:") && t.contains('.') => &t[7..],
        _ => t,
    }
}

/// Python's `str(IPv6Address)`: lowercase hex groups, the longest run of two or more zero
/// groups (the first of equal runs) as `::`.
pub fn v6_text(a: &Ipv6Addr) -> String {
    let g = a.segments();
    let (mut best, mut best_len, mut run, mut run_len) = (0, 0, 0, 0);
    for (i, &x) in g.iter().enumerate() {
        if x == 0 {
            if run_len == 0 {
                run = i;
            }
            run_len += 1;
            if run_len > best_len {
                best = run;
                best_len = run_len;
            }
        } else {
            run_len = 0;
        }
    }
    let hex = |s: &[u16]| {
        s.iter()
            .map(|x| format!("{x:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len < 2 {
        return hex(&g);
    }
    format!("{}::{}", hex(&g[..best]), hex(&g[best + best_len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_python_writes_them() {
        // expected values from Python 3.11's ipaddress
        for (t, want) in [
            ("1.2.3.4", Some("1.2.3.4")),
            ("[1.2.3.4]", Some("1.2.3.4")),
            ("::ffff:1.2.3.4", Some("1.2.3.4")),
            ("::FFFF:1.2.3.4", Some("1.2.3.4")),
            ("::ffff:0102:0304", Some("::ffff:102:304")),
            ("::1.2.3.4", Some("::102:304")),
            ("2001:DB8::1", Some("2001:db8::1")),
            ("1:0:0:1:0:0:0:1", Some("1:0:0:1::1")),
            ("2001:db8:0:0:1:0:0:1", Some("2001:db8::1:0:0:1")),
            ("0:0:0:0:0:0:0:0", Some("::")),
            ("1:2:3:4:5:6:7:8", Some("1:2:3:4:5:6:7:8")),
            ("1:0:2:3:4:5:6:7", Some("1:0:2:3:4:5:6:7")),
            ("fe80::1%eth0", Some("fe80::1")),
            ("01.2.3.4", None),
            ("1.2.3", None),
            (" 1.2.3.4", None),
            ("mail.example.org", None),
            ("unknown", None),
            // a multi-byte character across the 7th byte: no panic, no address
            ("abcdefé.org", None),
            ("::ffé:1.2.3.4", None),
        ] {
            assert_eq!(as_ip(t).as_deref(), want, "{t}");
        }
    }
}
