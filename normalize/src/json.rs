//! Shared tools for JSON formats: cap checks, typed decoding into borrowed structs, lenient
//! field types, and timestamps in every shape the providers write.
//!
//! JSON parsers decode a record with [`decode`] into their own `#[derive(Deserialize)]` structs
//! that borrow from the record (`Cow<'a, str>` with `#[serde(borrow)]`), never into a
//! `serde_json::Value` tree. Before decoding, [`check_caps`] scans the bytes once and rejects
//! records nested deeper than the depth cap or holding a string larger than the field cap, so
//! hostile records are quarantined with a precise reason instead of costing memory or stack.
//!
//! Providers disagree on types for the same field (numbers as strings, booleans as `"Yes"`), so
//! the `de` helpers accept both and map unusable values to `None` rather than failing a record.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

use crate::format::ParseOptions;
use crate::quarantine::Reason;
use crate::values::{MICROS_PER_SEC, checked_micros};

/// Why a record was rejected: the quarantine reason and a detail.
pub type Rejection = (Reason, String);

/// Check nesting depth and string sizes of a JSON record in one pass over its bytes.
///
/// Most of a record's bytes are inside strings, so strings are crossed with `memchr2` (to the
/// closing quote or the next escape) rather than byte by byte; only the short spans between
/// strings are walked one byte at a time.
pub fn check_caps(bytes: &[u8], options: &ParseOptions) -> Result<(), Rejection> {
    let too_large = |len: usize| {
        (
            Reason::FieldTooLarge,
            format!("a string of {len} bytes exceeds the {} byte field cap", options.max_field_len),
        )
    };
    let mut depth = 0usize;
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                let end = loop {
                    match bytes.get(j..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) {
                        None => break None,
                        Some(k) if bytes.get(j + k) == Some(&b'\\') => j += k + 2,
                        Some(k) => break Some(j + k),
                    }
                };
                let Some(end) = end else {
                    // Unterminated: the decoder reports the syntax error; only the size matters.
                    let len = bytes.len().saturating_sub(start);
                    return if len > options.max_field_len { Err(too_large(len)) } else { Ok(()) };
                };
                if end - start > options.max_field_len {
                    return Err(too_large(end - start));
                }
                i = end + 1;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > options.max_json_depth {
                    return Err((
                        Reason::TooDeep,
                        format!("nesting deeper than {} levels", options.max_json_depth),
                    ));
                }
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Whether `bytes` cannot break either cap, by its length and its count of opening brackets
/// (a cheap bound, vectorised by the compiler; `false` means "look closer").
fn within_caps(bytes: &[u8], options: &ParseOptions) -> bool {
    if bytes.len() > options.max_field_len {
        return false;
    }
    // `{` and `[` are the only bytes equal to `{` once bit 0x20 is set; a chunk of 255 cannot
    // overflow the per-chunk count.
    let opening: usize = bytes
        .chunks(255)
        .map(|chunk| usize::from(chunk.iter().fold(0u8, |n, &b| n + u8::from((b | 0x20) == b'{'))))
        .sum();
    opening <= options.max_json_depth
}

/// Check caps, then decode `bytes` into `T`. Invalid UTF-8 and JSON that does not match `T`
/// become quarantine rejections naming what serde reported.
///
/// Most records are far inside the caps: no string can outgrow a record shorter than the field
/// cap, and no nesting can be deeper than the record's count of `{` and `[`, so such records
/// skip the [`check_caps`] walk. Valid UTF-8 is checked once for the whole record and decoded
/// with serde's `str` reader, which then skips validating every string again.
pub fn decode<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    options: &ParseOptions,
) -> Result<T, Rejection> {
    if !within_caps(bytes, options) {
        check_caps(bytes, options)?;
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return serde_json::from_str(text).map_err(|e| (Reason::BadJson, e.to_string()));
    }
    // Invalid UTF-8 somewhere: decode byte-wise, which still accepts a record whose bad bytes
    // sit only in fields the struct skips.
    serde_json::from_slice(bytes).map_err(|e| (Reason::InvalidUtf8, e.to_string()))
}

/// Decode a JSON document held in a string field (payloads that are JSON encoded again, such
/// as AKS `properties.log`), with the same caps.
pub fn decode_str<'a, T: Deserialize<'a>>(
    text: &'a str,
    options: &ParseOptions,
) -> Result<T, Rejection> {
    decode(text.as_bytes(), options)
}

/// Whether `haystack` contains `needle` (for cheap format sniffing).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// A window of a record for sniffing: the first `n` bytes.
pub fn head(record: &[u8], n: usize) -> &[u8] {
    &record[..record.len().min(n)]
}

/// Lenient deserializers for `#[serde(deserialize_with = "...", default)]`.
pub mod de {
    use super::*;

    /// A string, number or boolean as text; `null` and anything else as `None`.
    pub fn text<'de, 'a, D>(d: D) -> Result<Option<Cow<'a, str>>, D::Error>
    where
        D: Deserializer<'de>,
        'de: 'a,
    {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any<'x> {
            #[serde(borrow)]
            Str(Cow<'x, str>),
            I(i64),
            U(u64),
            F(f64),
            B(bool),
            Other(serde::de::IgnoredAny),
        }
        Ok(match Any::deserialize(d)? {
            Any::Str(s) => Some(s),
            Any::I(v) => Some(Cow::Owned(v.to_string())),
            Any::U(v) => Some(Cow::Owned(v.to_string())),
            Any::F(v) => Some(Cow::Owned(v.to_string())),
            Any::B(v) => Some(Cow::Borrowed(if v { "true" } else { "false" })),
            Any::Other(_) => None,
        })
    }

    /// An integer written as a number or a decimal string (`"36352"`); anything else `None`.
    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any<'x> {
            I(i64),
            U(u64),
            F(f64),
            #[serde(borrow)]
            Str(Cow<'x, str>),
            Other(serde::de::IgnoredAny),
        }
        Ok(match Any::deserialize(d)? {
            Any::I(v) => Some(v),
            Any::U(v) => i64::try_from(v).ok(),
            Any::F(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Some(v as i64),
            Any::Str(s) => s.trim().parse().ok(),
            _ => None,
        })
    }

    /// A boolean written as `true`, `"true"`, `"Yes"`, `"YES"`, `1`… (case-insensitive);
    /// anything else `None`.
    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any<'x> {
            B(bool),
            I(i64),
            #[serde(borrow)]
            Str(Cow<'x, str>),
            Other(serde::de::IgnoredAny),
        }
        Ok(match Any::deserialize(d)? {
            Any::B(v) => Some(v),
            Any::I(v) => Some(v != 0),
            Any::Str(s) => parse_bool(&s),
            Any::Other(_) => None,
        })
    }

    /// A value of any type, ignored; use for fields whose presence matters, not content.
    pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| true)
    }
}

/// `true`/`yes`/`1` and `false`/`no`/`0`, case-insensitive.
pub fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("yes") || s == "1" {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") || s.eq_ignore_ascii_case("no") || s == "0" {
        Some(false)
    } else {
        None
    }
}

/// Parse a timestamp in any shape the providers write, to UTC microseconds within the accepted
/// range. Tried in order:
/// - RFC 3339 / ISO 8601 with `T` or a space, 0–9 fractional digits, `Z`, `±hh:mm`, `±hhmm`
///   or no zone (taken as UTC): `2018-11-13T12:00:35.3899262Z`, `2024-04-02 19:17:37.621000000`;
/// - US locale as Entra writes it: `11/14/2025 1:48:53 AM`, `12/12/2025 15:03:58`,
///   with an optional trailing offset;
/// - compact `20131102T010628Z`;
/// - epoch numbers by magnitude: seconds (≤ 11 digits), milliseconds, microseconds,
///   nanoseconds, with an optional fraction for seconds (`1566848875.123`).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    let first = s.as_bytes()[0];
    if first.is_ascii_digit() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_epoch(s);
    }
    parse_iso(s).or_else(|| parse_us(s)).or_else(|| parse_compact(s))
}

/// Epoch seconds/ms/µs/ns chosen by magnitude.
pub fn parse_epoch(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || int.len() > 19 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = int.parse().ok()?;
    let micros = match int.len() {
        0..=11 => {
            let frac_micros: i64 = if frac.is_empty() {
                0
            } else {
                let digits = &frac[..frac.len().min(6)];
                digits.parse::<i64>().ok()? * 10i64.pow(6 - digits.len() as u32)
            };
            v.checked_mul(MICROS_PER_SEC)?.checked_add(frac_micros)?
        }
        12..=14 => v.checked_mul(1_000)?,
        15..=17 => v,
        _ => v / 1_000,
    };
    checked_micros(micros)
}

fn parse_iso(s: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDateTime};
    let b = s.as_bytes();
    if b.len() < 19 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    // Normalize the date/time separator so one parser covers 'T', 't' and ' '.
    let mut text = String::with_capacity(s.len());
    text.push_str(s.get(..10)?);
    text.push('T');
    text.push_str(s.get(11..)?);
    if let Ok(dt) = DateTime::parse_from_rfc3339(&text) {
        return checked_micros(dt.timestamp_micros());
    }
    if let Ok(dt) = DateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return checked_micros(dt.timestamp_micros());
    }
    let naive = text.trim_end_matches(['Z', 'z']);
    let dt = NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    checked_micros(dt.and_utc().timestamp_micros())
}

fn parse_us(s: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDateTime};
    if !s.as_bytes().get(1..3).is_some_and(|b| b.contains(&b'/')) {
        return None;
    }
    for fmt in [
        "%m/%d/%Y %I:%M:%S %p %z",
        "%m/%d/%Y %I:%M:%S%.f %p %z",
        "%m/%d/%Y %H:%M:%S %z",
        "%m/%d/%Y %H:%M:%S%.f %z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return checked_micros(dt.timestamp_micros());
        }
    }
    for fmt in [
        "%m/%d/%Y %I:%M:%S %p",
        "%m/%d/%Y %I:%M:%S%.f %p",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M:%S%.f",
        "%m/%d/%Y %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return checked_micros(dt.and_utc().timestamp_micros());
        }
    }
    None
}

fn parse_compact(s: &str) -> Option<i64> {
    let dt =
        chrono::NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y%m%dT%H%M%S").ok()?;
    checked_micros(dt.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Option<String> {
        parse_time(s).map(|us| {
            chrono::DateTime::from_timestamp_micros(us)
                .expect("in range")
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string()
        })
    }

    #[test]
    fn every_time_shape_in_the_corpus_parses() {
        let cases = [
            ("2014-07-08T17:35:27Z", "2014-07-08T17:35:27.000000Z"),
            ("2018-11-13T12:00:35.3899262Z", "2018-11-13T12:00:35.389926Z"),
            ("2019-10-18T04:45:48.0729893-05:00", "2019-10-18T09:45:48.072989Z"),
            ("2024-08-29T19:30:36.339983306Z", "2024-08-29T19:30:36.339983Z"),
            ("2024-08-29 19:30:36.339983306", "2024-08-29T19:30:36.339983Z"),
            ("2020-02-14T20:18:57.49Z", "2020-02-14T20:18:57.490000Z"),
            ("2025-11-14T01:48:53", "2025-11-14T01:48:53.000000Z"),
            ("2025-11-14T03:48:53+02:00", "2025-11-14T01:48:53.000000Z"),
            ("2025-11-14T03:48:53+0200", "2025-11-14T01:48:53.000000Z"),
            ("11/14/2025 1:48:53 AM", "2025-11-14T01:48:53.000000Z"),
            ("12/12/2025 3:03:58 PM", "2025-12-12T15:03:58.000000Z"),
            ("12/12/2025 15:03:58", "2025-12-12T15:03:58.000000Z"),
            ("20131102T010628Z", "2013-11-02T01:06:28.000000Z"),
            ("1418530010", "2014-12-14T04:06:50.000000Z"),
            ("1418530010000", "2014-12-14T04:06:50.000000Z"),
            ("1566848875.5", "2019-08-26T19:47:55.500000Z"),
        ];
        for (input, want) in cases {
            assert_eq!(t(input).as_deref(), Some(want), "{input}");
        }
        for bad in [
            "",
            "redacted",
            "XXXXXXXXXX.XXXXXX",
            "Mar 23, 2016",
            "99999-01-01T00:00:00Z",
            "2024-13-01T00:00:00Z",
            // A multi-byte character where the date/time separator goes (found by fuzzing).
            "2024-02-0\u{e9}10:00:00.000Z",
            "2024-02-05\u{2028}10:00:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn caps_reject_deep_and_huge_records() {
        let opts = ParseOptions { max_json_depth: 4, max_field_len: 8, ..ParseOptions::default() };
        assert!(check_caps(br#"{"a":[{"b":"12345678"}]}"#, &opts).is_ok());
        assert_eq!(check_caps(br#"[[[[[1]]]]]"#, &opts).map_err(|e| e.0), Err(Reason::TooDeep));
        assert_eq!(
            check_caps(br#"{"a":"123456789"}"#, &opts).map_err(|e| e.0),
            Err(Reason::FieldTooLarge)
        );
        // Braces inside strings do not count as nesting, escaped quotes do not end a string.
        assert!(check_caps(br#"{"a":"[[[[[[[["}"#, &ParseOptions::default()).is_ok());
        assert!(check_caps(br#"{"a":"\"[[[[[[[[\\"}"#, &ParseOptions::default()).is_ok());
        assert_eq!(
            check_caps(br#"{"a":"\"123456789"}"#, &opts).map_err(|e| e.0),
            Err(Reason::FieldTooLarge)
        );
        assert_eq!(
            check_caps(br#"{"a":"12345678"#, &opts).map_err(|e| e.0),
            Ok(()),
            "unterminated but small"
        );
        assert_eq!(
            check_caps(br#"{"a":"123456789"#, &opts).map_err(|e| e.0),
            Err(Reason::FieldTooLarge)
        );
        assert_eq!(check_caps(b"{\"a\":\"\\", &opts).map_err(|e| e.0), Ok(()), "dangling escape");
    }

    #[test]
    fn decode_applies_caps_whether_or_not_the_cheap_bound_holds() {
        #[derive(Deserialize, Debug)]
        struct R<'a> {
            #[serde(default, borrow)]
            a: Option<Cow<'a, str>>,
        }
        let opts = ParseOptions { max_json_depth: 4, ..ParseOptions::default() };
        // Short records (under the field cap) with more brackets than the depth cap: inside
        // strings they do not nest, so the record is kept; real nesting is still refused.
        let r: R<'_> = decode(br#"{"a":"[[[[{{{{","b":[1]}"#, &opts).expect("brackets in strings");
        assert_eq!(r.a.as_deref(), Some("[[[[{{{{"));
        let deep = decode::<R<'_>>(br#"{"a":"x","b":[[[[1]]]]}"#, &opts).map_err(|e| e.0);
        assert_eq!(deep.err(), Some(Reason::TooDeep));
        assert!(decode::<R<'_>>(br#"{"a":"x","b":[[[1]]]}"#, &opts).is_ok(), "depth 4 is allowed");
        // A field over the cap in a record over the cap.
        let small = ParseOptions { max_field_len: 4, ..ParseOptions::default() };
        let big = decode::<R<'_>>(br#"{"a":"12345"}"#, &small).map_err(|e| e.0);
        assert_eq!(big.err(), Some(Reason::FieldTooLarge));
    }

    #[test]
    fn decode_reports_invalid_utf8_only_where_it_matters() {
        #[derive(Deserialize, Debug)]
        struct R<'a> {
            #[serde(default, borrow)]
            a: Option<Cow<'a, str>>,
        }
        let opts = ParseOptions::default();
        // Bad bytes in a field the struct skips: the record still decodes, as before.
        let r: R<'_> = decode(b"{\"a\":\"ok\",\"skip\":\"\xff\xfe\"}", &opts).expect("skipped");
        assert_eq!(r.a.as_deref(), Some("ok"));
        let bad = decode::<R<'_>>(b"{\"a\":\"\xff\"}", &opts).map_err(|e| e.0);
        assert_eq!(bad.err(), Some(Reason::InvalidUtf8));
        let broken = decode::<R<'_>>(b"{\"a\":\"ok\"", &opts).map_err(|e| e.0);
        assert_eq!(broken.err(), Some(Reason::BadJson));
    }

    #[test]
    fn lenient_fields_accept_both_types() {
        #[derive(Deserialize)]
        struct R<'a> {
            #[serde(default, deserialize_with = "de::int")]
            n: Option<i64>,
            #[serde(default, deserialize_with = "de::boolean")]
            b: Option<bool>,
            #[serde(default, borrow, deserialize_with = "de::text")]
            s: Option<Cow<'a, str>>,
        }
        let r: R<'_> =
            decode(br#"{"n":"36352","b":"YES","s":4}"#, &ParseOptions::default()).expect("decode");
        assert_eq!((r.n, r.b, r.s.as_deref()), (Some(36352), Some(true), Some("4")));
        let r: R<'_> = decode(br#"{"n":null,"b":"maybe","s":{"x":1}}"#, &ParseOptions::default())
            .expect("decode");
        assert_eq!((r.n, r.b, r.s.as_deref()), (None, None, None));
        let e = decode::<R<'_>>(b"{\"n\":", &ParseOptions::default()).err().expect("error");
        assert_eq!(e.0, Reason::BadJson);
    }
}
