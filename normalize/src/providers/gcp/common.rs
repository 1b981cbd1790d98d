//! Pieces shared by the GCP formats: cheap sniff helpers for Cloud Logging `LogEntry` records,
//! a lenient number type that remembers whether a field was present but unusable, the
//! `LogEntry.resource` block, durations (`"0.005192s"`, `"2592000s"`), `google.rpc.Code` names,
//! and the project of a `logName`.
//!
//! Nothing here allocates on the common path; every function is total (hostile input yields
//! `None`/[`Num::Invalid`], never a panic).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

use crate::json::de;
use crate::rows::Text;
use crate::values::{MICROS_PER_SEC, checked_micros};

/// How far into a record the GCP sniffs look. Cloud Logging writes `LogEntry` keys in
/// alphabetical order in exports, so the markers (`jsonPayload`, `logName`, `protoPayload`) sit
/// near the start; a pretty-printed entry can push `logName` past 2 KB, hence 4 KB.
pub(crate) const SNIFF_WINDOW: usize = 4096;

/// The raw bytes of the string value of the first `"key"` (passed with its quotes) in `bytes`
/// that is followed by a colon, tolerating whitespace around the colon. Escapes are not decoded:
/// for sniffing only.
pub(crate) fn string_value<'a>(bytes: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut from = 0usize;
    // A key can also appear as a value; look at a few occurrences, not all.
    for _ in 0..4 {
        let hay = bytes.get(from..)?;
        let at = memchr::memmem::find(hay, key)?;
        let after = from + at + key.len();
        let rest = skip_ws(bytes.get(after..)?);
        if let Some(rest) = rest.strip_prefix(b":") {
            let rest = skip_ws(rest).strip_prefix(b"\"")?;
            let end = memchr::memchr(b'"', rest)?;
            return rest.get(..end);
        }
        from = after;
    }
    None
}

/// Whether the first non-blank byte of `head` opens a JSON object.
pub(crate) fn opens_object(head: &[u8]) -> bool {
    skip_ws(head).first() == Some(&b'{')
}

fn skip_ws(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    b.get(n..).unwrap_or_default()
}

/// A number as providers write it: a JSON number or a decimal string (int64 fields are strings
/// in Cloud Logging). Unlike [`de::int`], a value that is present but unusable stays visible as
/// [`Num::Invalid`], so the record can be quarantined naming the field.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Num {
    /// Absent or `null`.
    #[default]
    Absent,
    /// A whole number that fits `i64`.
    Int(i64),
    /// Present but not a whole number that fits `i64`.
    Invalid,
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any<'x> {
            I(i64),
            U(u64),
            F(f64),
            #[serde(borrow)]
            S(Cow<'x, str>),
            Null(()),
            Other(serde::de::IgnoredAny),
        }
        Ok(match Any::deserialize(d)? {
            Any::I(v) => Num::Int(v),
            Any::U(v) => i64::try_from(v).map_or(Num::Invalid, Num::Int),
            Any::F(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Num::Int(v as i64),
            Any::S(s) => s.trim().parse().map_or(Num::Invalid, Num::Int),
            Any::Null(()) => Num::Absent,
            Any::F(_) | Any::Other(_) => Num::Invalid,
        })
    }
}

impl Num {
    /// The value if it lies in `range`; `Err(())` when present but invalid or out of range.
    pub(crate) fn in_range(self, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>, ()> {
        match self {
            Num::Absent => Ok(None),
            Num::Int(v) if range.contains(&v) => Ok(Some(v)),
            Num::Int(_) | Num::Invalid => Err(()),
        }
    }
}

/// `LogEntry.resource`: the monitored resource that wrote the entry.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Resource<'a> {
    /// Its labels (the resource `type` is not needed: the sniffs and log names tell the kind).
    #[serde(borrow, default)]
    pub(crate) labels: ResourceLabels<'a>,
}

/// The `LogEntry.resource.labels` any of the GCP formats read.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResourceLabels<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    pub(crate) project_id: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    pub(crate) location: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    pub(crate) region: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    pub(crate) zone: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    pub(crate) subnetwork_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    pub(crate) network_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    pub(crate) target_proxy_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    pub(crate) forwarding_rule_name: Text<'a>,
}

/// The project id of a `logName` (`projects/<id>/logs/...`), or the parent as written for
/// organization, folder and billing-account logs (`organizations/123`).
pub(crate) fn log_parent(log_name: &str) -> Option<&str> {
    let (parent, _) = log_name.split_once("/logs/")?;
    let parent = parent.strip_prefix("projects/").unwrap_or(parent);
    (!parent.is_empty()).then_some(parent)
}

/// A protobuf JSON duration (`"0.005192s"`, `"2592000s"`, `"-1.5s"` rejected) in microseconds.
pub(crate) fn parse_duration_micros(s: &str) -> Option<i64> {
    let s = s.trim().strip_suffix('s')?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty()
        || secs.len() > 12
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 9
    {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let digits = frac.get(..frac.len().min(6)).unwrap_or_default();
    let frac_micros = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10i64.pow(6 - digits.len() as u32)
    };
    secs.checked_mul(MICROS_PER_SEC)?.checked_add(frac_micros)
}

/// `time + duration`, within the accepted time range.
pub(crate) fn add_micros(time: i64, duration: i64) -> Option<i64> {
    checked_micros(time.checked_add(duration)?)
}

/// The canonical name of a `google.rpc.Code`.
pub(crate) fn rpc_code_name(code: i64) -> Option<&'static str> {
    Some(match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => return None,
    })
}

/// Counts of fields that map to no column, per format, reported once per source in `finish`.
#[derive(Debug)]
pub(crate) struct Unmapped {
    format: &'static str,
    names: &'static [&'static str],
    counts: Vec<u64>,
}

impl Unmapped {
    /// A tally for `format` over the field names `names` (indices are the callers' constants).
    pub(crate) fn new(format: &'static str, names: &'static [&'static str]) -> Self {
        Self { format, names, counts: vec![0; names.len()] }
    }

    /// Count one row carrying field number `index`.
    pub(crate) fn add(&mut self, index: usize) {
        if let Some(c) = self.counts.get_mut(index) {
            *c += 1;
        }
    }

    /// Count one row carrying field number `index` when `present`.
    pub(crate) fn add_if(&mut self, present: bool, index: usize) {
        if present {
            self.add(index);
        }
    }

    /// Report the counts to `out` and reset them.
    pub(crate) fn flush(&mut self, out: &mut crate::output::Output) {
        for (name, count) in self.names.iter().zip(self.counts.iter_mut()) {
            out.note_unmapped(self.format, name, *count);
            *count = 0;
        }
    }
}

/// `text` unless it is empty or one of the placeholders providers write for "none".
pub(crate) fn non_empty<'a>(text: Text<'a>) -> Text<'a> {
    text.filter(|t| {
        let t = t.trim();
        !(t.is_empty() || t == "-" || t.eq_ignore_ascii_case("null"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ParseOptions;

    #[test]
    fn string_values_are_found_with_any_spacing_and_not_in_values() {
        let compact = br#"{"a":"logName","logName":"projects/p/logs/x"}"#;
        assert_eq!(string_value(compact, b"\"logName\""), Some(&b"projects/p/logs/x"[..]));
        let pretty = b"{\n  \"logName\" :\t \"projects/p\"\n}";
        assert_eq!(string_value(pretty, b"\"logName\""), Some(&b"projects/p"[..]));
        assert_eq!(string_value(br#"{"logName":5}"#, b"\"logName\""), None);
        assert_eq!(string_value(br#"{"logName":"unterminated"#, b"\"logName\""), None);
        assert_eq!(string_value(b"", b"\"logName\""), None);
    }

    #[test]
    fn numbers_keep_invalid_apart_from_absent() {
        #[derive(Deserialize)]
        struct R {
            #[serde(default)]
            a: Num,
            #[serde(default)]
            b: Num,
            #[serde(default)]
            c: Num,
            #[serde(default)]
            d: Num,
            #[serde(default)]
            e: Num,
        }
        let r: R = crate::json::decode(
            br#"{"a":"36352","b":22,"c":"x","d":null,"e":1.5}"#,
            &ParseOptions::default(),
        )
        .expect("decode");
        assert_eq!(r.a, Num::Int(36352));
        assert_eq!(r.b, Num::Int(22));
        assert_eq!(r.c, Num::Invalid);
        assert_eq!(r.d, Num::Absent);
        assert_eq!(r.e, Num::Invalid);
        assert_eq!(Num::Int(70000).in_range(0..=65535), Err(()));
        assert_eq!(Num::Absent.in_range(0..=65535), Ok(None));
    }

    #[test]
    fn durations_and_parents() {
        assert_eq!(parse_duration_micros("0.005192s"), Some(5192));
        assert_eq!(parse_duration_micros("2592000s"), Some(2_592_000_000_000));
        assert_eq!(parse_duration_micros("1.123456789s"), Some(1_123_456));
        for bad in ["", "s", "5", "-1s", "1.2.3s", "abc s", "99999999999999999999s"] {
            assert_eq!(parse_duration_micros(bad), None, "{bad}");
        }
        assert_eq!(log_parent("projects/p-1/logs/x%2Fy"), Some("p-1"));
        assert_eq!(log_parent("organizations/123/logs/x"), Some("organizations/123"));
        assert_eq!(log_parent("nonsense"), None);
        assert_eq!(rpc_code_name(7), Some("PERMISSION_DENIED"));
        assert_eq!(rpc_code_name(99), None);
    }
}
