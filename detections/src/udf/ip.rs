//! Address and CIDR arithmetic behind the network UDFs (pure functions, no Arrow).
//!
//! Addresses are parsed with the standard library (IPv4 dotted quad, any IPv6 text form);
//! IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are classified as the IPv4 address they carry.
//! A CIDR is `address/prefix`; a bare address is a /32 (or /128).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Parse an address; surrounding whitespace is ignored, anything else invalid gives `None`.
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    match plain_ipv4(s.as_bytes()) {
        Some(v4) => Some(IpAddr::V4(v4)),
        None => parse_general(s),
    }
}

/// [`parse_ip`] past its dotted-quad fast path: the standard parser, whitespace trimmed,
/// IPv4-mapped IPv6 unmapped.
fn parse_general(s: &str) -> Option<IpAddr> {
    Some(unmap(s.trim().parse().ok()?))
}

/// [`parse_ip`] for the UDFs' hot loops: a plain IPv4 address as its 32 bits (no [`IpAddr`]),
/// anything else through the general parser.
pub(crate) enum Parsed {
    /// A dotted-quad IPv4 address (or an IPv4-mapped IPv6 one), as bits.
    V4(u32),
    /// An IPv6 address.
    V6(Ipv6Addr),
}

impl Parsed {
    /// Parse `s` (see [`parse_ip`]).
    pub(crate) fn of(s: &str) -> Option<Parsed> {
        if let Some(v4) = plain_ipv4(s.as_bytes()) {
            return Some(Parsed::V4(u32::from(v4)));
        }
        Some(match parse_general(s)? {
            IpAddr::V4(v4) => Parsed::V4(u32::from(v4)),
            IpAddr::V6(v6) => Parsed::V6(v6),
        })
    }

    /// [`is_private`] of this address.
    pub(crate) fn is_private(&self) -> bool {
        match *self {
            Parsed::V4(bits) => in_any(bits, V4_PRIVATE),
            Parsed::V6(v6) => is_private(IpAddr::V6(v6)),
        }
    }

    /// [`is_public`] of this address.
    pub(crate) fn is_public(&self) -> bool {
        match *self {
            Parsed::V4(bits) => !in_any(bits, V4_PRIVATE) && !in_any(bits, V4_RESERVED),
            Parsed::V6(v6) => is_public(IpAddr::V6(v6)),
        }
    }
}

/// Whether `bits` lies in one of `nets` ((network, prefix length), prefix 1–32).
fn in_any(bits: u32, nets: &[(u32, u32)]) -> bool {
    nets.iter().any(|&(net, prefix)| (bits ^ net) >> (32 - prefix) == 0)
}

/// RFC 1918, loopback, link-local and CGNAT: the IPv4 ranges of [`is_private`].
const V4_PRIVATE: &[(u32, u32)] = &[
    (0x0a00_0000, 8),  // 10.0.0.0/8
    (0xac10_0000, 12), // 172.16.0.0/12
    (0xc0a8_0000, 16), // 192.168.0.0/16
    (0x7f00_0000, 8),  // 127.0.0.0/8
    (0xa9fe_0000, 16), // 169.254.0.0/16
    (0x6440_0000, 10), // 100.64.0.0/10
];

/// The IPv4 ranges of [`is_reserved`].
const V4_RESERVED: &[(u32, u32)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8
    (0xc000_0000, 24), // 192.0.0.0/24
    (0xc000_0200, 24), // 192.0.2.0/24
    (0xc612_0000, 15), // 198.18.0.0/15
    (0xc633_6400, 24), // 198.51.100.0/24
    (0xcb00_7100, 24), // 203.0.113.0/24
    (0xe000_0000, 4),  // 224.0.0.0/4
    (0xf000_0000, 4),  // 240.0.0.0/4
];

/// The common case of [`parse_ip`] without the general parser: four decimal octets (no
/// leading zeros, at most 255) separated by dots, nothing around them. `None` means "not in
/// that form" (the general parser decides), never "invalid".
fn plain_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    // One pass over the bytes: the octet so far and its digit count, the octets before it.
    if !(7..=15).contains(&b.len()) {
        return None;
    }
    let (mut bits, mut octet, mut digits, mut dots) = (0u32, 0u32, 0u32, 0u32);
    for &c in b {
        if c == b'.' {
            if digits == 0 || dots == 3 || octet > 255 {
                return None;
            }
            bits = bits << 8 | octet;
            (octet, digits, dots) = (0, 0, dots + 1);
            continue;
        }
        let d = c.wrapping_sub(b'0');
        // Not a digit, a fourth digit, or a digit after a leading zero.
        if d > 9 || digits == 3 || (digits == 1 && octet == 0) {
            return None;
        }
        octet = octet * 10 + u32::from(d);
        digits += 1;
    }
    (dots == 3 && digits > 0 && octet <= 255).then(|| Ipv4Addr::from(bits << 8 | octet))
}

/// An IPv4-mapped IPv6 address as IPv4; other addresses unchanged.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A network: address and prefix length, host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Cidr {
    /// The network address as bits (IPv4 in the low 32 bits).
    bits: u128,
    /// Prefix length.
    prefix: u8,
    /// IPv4 or IPv6.
    v4: bool,
}

impl Cidr {
    /// Parse `addr/prefix` or a bare address.
    pub(crate) fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.trim().parse::<u8>().ok()?)),
            None => (s, None),
        };
        let ip = parse_ip(addr)?;
        let (bits, max, v4) = to_bits(ip);
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        Some(Cidr { bits: bits & mask(prefix, max), prefix, v4 })
    }

    /// Whether `ip` lies in this network.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let (bits, max, v4) = to_bits(unmap(ip));
        v4 == self.v4 && bits & mask(self.prefix, max) == self.bits
    }

    /// Prefix length.
    pub(crate) fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether this is an IPv4 network.
    pub(crate) fn is_v4(&self) -> bool {
        self.v4
    }

    /// The network bits (host bits cleared).
    pub(crate) fn bits(&self) -> u128 {
        self.bits
    }
}

/// An address as bits, its width and whether it is IPv4.
pub(crate) fn to_bits(ip: IpAddr) -> (u128, u8, bool) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32, true),
        IpAddr::V6(v6) => (u128::from(v6), 128, false),
    }
}

/// The mask of a `prefix` in an address `width` bits wide.
pub(crate) fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let all: u128 = if width >= 128 { u128::MAX } else { (1u128 << width) - 1 };
    let host_bits = width.saturating_sub(prefix);
    if host_bits == 0 { all } else { all & !((1u128 << host_bits) - 1) }
}

fn v6_in(ip: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    let m = mask(prefix, 128);
    u128::from(ip) & m == u128::from(net) & m
}

/// RFC 1918, RFC 4193 (fc00::/7), loopback, link-local and CGNAT (100.64.0.0/10).
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match unmap(ip) {
        IpAddr::V4(v4) => in_any(u32::from(v4), V4_PRIVATE),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6_in(v6, Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7)
                || v6_in(v6, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10)
        }
    }
}

/// Reserved, special-purpose and documentation-only ranges (never routed on the internet).
fn is_reserved(ip: IpAddr) -> bool {
    match unmap(ip) {
        IpAddr::V4(v4) => in_any(u32::from(v4), V4_RESERVED),
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_multicast()
                || v6_in(v6, Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32)
                || v6_in(v6, Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20)
                || v6_in(v6, Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64)
                || v6_in(v6, Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10)
                // IPv4-compatible (deprecated) and other ::/96 forms.
                || v6_in(v6, Ipv6Addr::UNSPECIFIED, 96)
        }
    }
}

/// A valid address that is neither private nor reserved nor documentation-only.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    !is_private(ip) && !is_reserved(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        parse_ip(s).unwrap_or_else(|| panic!("{s}"))
    }

    /// `(is_private, is_public)` of `s`, checked to be the same through [`Parsed`].
    fn classes(s: &str) -> (bool, bool) {
        let parsed = Parsed::of(s).unwrap_or_else(|| panic!("{s}"));
        let (private, public) = (is_private(ip(s)), is_public(ip(s)));
        assert_eq!((parsed.is_private(), parsed.is_public()), (private, public), "{s}");
        (private, public)
    }

    #[test]
    fn private_and_public_edges() {
        for s in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.0",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "::1",
            "fd00::1",
            "fc00::",
            "fe80::1",
            "::ffff:10.1.2.3",
        ] {
            assert_eq!(classes(s), (true, false), "{s} is private, not public");
        }
        for s in ["172.15.255.255", "172.32.0.0", "100.63.255.255", "100.128.0.0", "11.0.0.1"] {
            assert_eq!(classes(s), (false, true), "{s} is public, not private");
        }
        for s in [
            "0.0.0.0",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.19.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "2001:db8::1",
            "3fff::1",
            "ff02::1",
            "::",
        ] {
            assert_eq!(classes(s), (false, false), "{s} is reserved or documentation");
        }
        for s in ["8.8.8.8", "2606:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.4.4"] {
            assert_eq!(classes(s), (false, true), "{s} is public");
        }
        // Each IPv4 range's first and last address are in it, their neighbours outside.
        for (net, prefix) in V4_PRIVATE.iter().chain(V4_RESERVED) {
            let last = net | (u32::MAX >> prefix);
            for bits in [*net, last] {
                let s = Ipv4Addr::from(bits).to_string();
                assert!(in_any(bits, &[(*net, *prefix)]), "{s} in {net:#x}/{prefix}");
                assert!(!classes(&s).1, "{s} is not public");
            }
            for bits in [net.wrapping_sub(1), last.wrapping_add(1)] {
                assert!(!in_any(bits, &[(*net, *prefix)]), "{bits:#x} outside {net:#x}/{prefix}");
            }
        }
        assert!(parse_ip("10.0.0").is_none());
        assert!(parse_ip("not an ip").is_none());
        assert!(parse_ip(" 10.0.0.1 ").is_some());
    }

    #[test]
    fn cidrs_contain() {
        let net = Cidr::parse("10.1.0.0/16").expect("cidr");
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "mapped IPv4 matches IPv4 networks");
        assert!(!net.contains(ip("2001:db8::1")));
        let host = Cidr::parse("10.1.2.3").expect("bare address");
        assert_eq!(host.prefix(), 32);
        assert!(host.contains(ip("10.1.2.3")) && !host.contains(ip("10.1.2.4")));
        let any = Cidr::parse("0.0.0.0/0").expect("any");
        assert!(any.contains(ip("1.2.3.4")) && !any.contains(ip("::1")));
        let v6 = Cidr::parse("2001:db8:abcd::/48").expect("v6");
        assert!(v6.contains(ip("2001:db8:abcd:12::1")));
        assert!(!v6.contains(ip("2001:db8:abce::1")));
        let all6 = Cidr::parse("::/0").expect("v6 any");
        assert!(all6.contains(ip("2001:db8::1")));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.0/x").is_none());
        assert!(Cidr::parse("2001:db8::/129").is_none());
        // Host bits are cleared.
        assert_eq!(Cidr::parse("10.1.2.3/8"), Cidr::parse("10.0.0.0/8"));
    }

    #[test]
    fn the_ipv4_fast_path_agrees_with_the_standard_parser() {
        for s in [
            "10.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "1.2.3.4",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.",
            ".1.2.3",
            "1..2.3",
            "1.2.3.4 ",
            " 1.2.3.4",
            "1.2.3.1000",
            "1.2.3.4a",
            "+1.2.3.4",
            "1.2.3.-4",
            "999.0.0.0",
            "",
            "::ffff:1.2.3.4",
            "1.2.3.٤",
        ] {
            let general = s.trim().parse::<IpAddr>().ok().map(unmap);
            assert_eq!(parse_ip(s), general, "{s:?}");
            if let Some(fast) = plain_ipv4(s.as_bytes()) {
                assert_eq!(Some(IpAddr::V4(fast)), general, "{s:?}");
            }
        }
        assert!(plain_ipv4(b"10.1.2.3").is_some());
    }

    #[test]
    fn the_ipv4_fast_path_agrees_with_the_standard_parser_on_generated_text() {
        // Every string of up to 16 characters drawn from digits, dots and a few others (a
        // pseudo-random walk, fixed seed): where the fast path answers, it answers as std does,
        // and it answers for every dotted quad std accepts.
        let alphabet = b"0123456789....0125 a:";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..200_000 {
            let len = (next() % 17) as usize;
            let text: String = (0..len)
                .map(|_| char::from(alphabet[(next() % alphabet.len() as u64) as usize]))
                .collect();
            let general = text.parse::<Ipv4Addr>().ok();
            assert_eq!(plain_ipv4(text.as_bytes()), general, "{text:?}");
            accepted += usize::from(general.is_some());
        }
        assert!(accepted > 100, "the walk must reach valid addresses ({accepted})");
    }

    #[test]
    fn masks() {
        assert_eq!(mask(0, 32), 0);
        assert_eq!(mask(32, 32), 0xffff_ffff);
        assert_eq!(mask(8, 32), 0xff00_0000);
        assert_eq!(mask(128, 128), u128::MAX);
        assert_eq!(mask(1, 128), 1u128 << 127);
    }
}
