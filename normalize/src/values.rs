//! Value conversions shared by the parsers: integers straight from bytes, canonical IP text,
//! and times as UTC microseconds within the range the lake accepts.
//!
//! Every function here is total: hostile input yields `None` (the caller quarantines the record
//! naming the field), never a panic.

use std::fmt::Write as _;
use std::net::Ipv6Addr;

/// Microseconds per second.
pub const MICROS_PER_SEC: i64 = 1_000_000;
/// Microseconds per day.
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;
/// First instant the lake accepts (1970-01-01T00:00:00Z): earlier times are rejected as bad times.
pub const MIN_TIME_MICROS: i64 = 0;
/// First instant past the accepted range (10000-01-01T00:00:00Z), so the `date` partition is
/// always a four-digit-year `YYYY-MM-DD`.
pub const END_TIME_MICROS: i64 = 253_402_300_800 * MICROS_PER_SEC;

/// Parse an unsigned decimal integer from ASCII digits (no sign, no spaces, ≤ 19 digits).
#[inline]
pub fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    Some(v)
}

/// Parse a decimal integer that must fit `i64` and be non-negative.
#[inline]
pub fn parse_count(b: &[u8]) -> Option<i64> {
    parse_u64(b).and_then(|v| i64::try_from(v).ok())
}

/// Parse a port number (0–65535).
#[inline]
pub fn parse_port(b: &[u8]) -> Option<i32> {
    if b.len() > 5 {
        return None;
    }
    parse_u64(b).filter(|&v| v <= 65_535).map(|v| v as i32)
}

/// Parse an IANA protocol number (0–255).
#[inline]
pub fn parse_protocol(b: &[u8]) -> Option<i32> {
    if b.len() > 3 {
        return None;
    }
    parse_u64(b).filter(|&v| v <= 255).map(|v| v as i32)
}

/// Whether `b` is an IPv4 address in canonical dotted-quad form (no leading zeros).
#[inline]
pub fn is_canonical_ipv4(b: &[u8]) -> bool {
    if b.len() < 7 || b.len() > 15 {
        return false;
    }
    let mut octets = 0;
    let mut digits = 0;
    let mut value: u32 = 0;
    let mut first = 0u8;
    for &c in b {
        if c == b'.' {
            if digits == 0 || value > 255 || (digits > 1 && first == b'0') {
                return false;
            }
            octets += 1;
            digits = 0;
            value = 0;
        } else if c.is_ascii_digit() {
            if digits == 0 {
                first = c;
            }
            digits += 1;
            if digits > 3 {
                return false;
            }
            value = value * 10 + u32::from(c - b'0');
        } else {
            return false;
        }
    }
    octets == 3 && digits > 0 && value <= 255 && !(digits > 1 && first == b'0')
}

/// Canonical text of an IP address, or `None` when `s` is not an address.
///
/// IPv4 in canonical form is returned as is (no allocation: the common case); IPv6 is parsed and
/// re-formatted in RFC 5952 compressed form into `scratch`. A bracketed IPv6 (`[::1]`) is
/// accepted. Non-canonical IPv4 (leading zeros) is rejected rather than guessed at.
#[inline]
pub fn canonical_ip<'a>(s: &'a str, scratch: &'a mut String) -> Option<&'a str> {
    let b = s.as_bytes();
    if is_canonical_ipv4(b) {
        return Some(s);
    }
    let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    if !inner.contains(':') {
        return None;
    }
    let v6: Ipv6Addr = inner.parse().ok()?;
    scratch.clear();
    // Writing to a String cannot fail.
    let _ = write!(scratch, "{v6}");
    Some(scratch.as_str())
}

/// Epoch seconds to microseconds, within the accepted range.
#[inline]
pub fn micros_from_secs(secs: u64) -> Option<i64> {
    let secs = i64::try_from(secs).ok()?;
    checked_micros(secs.checked_mul(MICROS_PER_SEC)?)
}

/// Epoch milliseconds to microseconds, within the accepted range.
#[inline]
pub fn micros_from_millis(ms: u64) -> Option<i64> {
    let ms = i64::try_from(ms).ok()?;
    checked_micros(ms.checked_mul(1_000)?)
}

/// `micros` if it lies in the accepted range [1970-01-01, 10000-01-01).
#[inline]
pub fn checked_micros(micros: i64) -> Option<i64> {
    (MIN_TIME_MICROS..END_TIME_MICROS).contains(&micros).then_some(micros)
}

/// The `date` partition value (days since the epoch) of a time in microseconds.
#[inline]
pub fn day_of(micros: i64) -> i32 {
    // In range by construction (checked_micros); saturate rather than wrap otherwise.
    i32::try_from(micros.div_euclid(MICROS_PER_DAY)).unwrap_or(i32::MAX)
}

/// Parse an RFC 3339 / ISO 8601 timestamp with any number of fractional digits (0–9) and a
/// `Z` or `±hh:mm` offset into UTC microseconds. Fractions beyond microseconds are truncated.
pub fn parse_rfc3339_micros(s: &str) -> Option<i64> {
    let dt = chrono::DateTime::parse_from_rfc3339(s.trim()).ok()?;
    checked_micros(dt.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_from_bytes_and_reject_garbage() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), None, "20 digits rejected");
        assert_eq!(parse_u64(b"9999999999999999999"), Some(9_999_999_999_999_999_999));
        assert_eq!(parse_count(b"9999999999999999999"), None, "does not fit i64");
        for bad in [&b""[..], b"-", b"1a", b" 1", b"+1", b"1.0"] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
        assert_eq!(parse_port(b"65535"), Some(65_535));
        assert_eq!(parse_port(b"65536"), None);
        assert_eq!(parse_protocol(b"58"), Some(58));
        assert_eq!(parse_protocol(b"256"), None);
    }

    #[test]
    fn ipv4_canonical_form_is_checked() {
        for ok in ["0.0.0.0", "10.0.0.1", "255.255.255.255", "172.31.16.139"] {
            assert!(is_canonical_ipv4(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..3.4",
            "1.2.3.",
            "a.b.c.d",
            "1.2.3.4 ",
        ] {
            assert!(!is_canonical_ipv4(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn ipv6_is_compressed_and_garbage_rejected() {
        let mut s = String::new();
        assert_eq!(
            canonical_ip("2001:0db8:0000:0000:0000:0000:0000:0001", &mut s),
            Some("2001:db8::1")
        );
        let mut s = String::new();
        assert_eq!(canonical_ip("[2a02:cf40::]", &mut s), Some("2a02:cf40::"));
        let mut s = String::new();
        assert_eq!(canonical_ip("2600:1F18:0:0:0:0:0:1", &mut s), Some("2600:1f18::1"));
        for bad in ["", "-", "eni-123", "1.2.3.4:80", "::g", "<script>"] {
            let mut s = String::new();
            assert_eq!(canonical_ip(bad, &mut s), None, "{bad}");
        }
    }

    #[test]
    fn times_stay_in_the_accepted_range() {
        assert_eq!(micros_from_secs(1_418_530_010), Some(1_418_530_010_000_000));
        assert_eq!(micros_from_secs(253_402_300_800), None, "year 10000");
        assert_eq!(micros_from_secs(u64::MAX), None);
        assert_eq!(micros_from_millis(1_418_530_010_000), Some(1_418_530_010_000_000));
        assert_eq!(day_of(1_418_530_010_000_000), 16_418);
        assert_eq!(
            parse_rfc3339_micros("2018-11-13T12:00:35.3899262Z"),
            Some(1_542_110_435_389_926)
        );
        assert_eq!(
            parse_rfc3339_micros("2019-10-18T04:45:48.0729893-05:00"),
            Some(1_571_391_948_072_989)
        );
        assert_eq!(parse_rfc3339_micros("not a time"), None);
    }
}
