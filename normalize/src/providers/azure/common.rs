//! Pieces shared by the Azure parsers: the `{"records":[...]}` envelope of diagnostic-setting
//! blobs and Event Hub messages, top-level JSON arrays (Event Grid batches), and Azure resource
//! id helpers.
//!
//! Envelopes are unpacked without re-serializing: the array elements are borrowed as raw JSON
//! slices (`&RawValue`) and each is decoded on its own, so one bad element is quarantined alone
//! and the good ones are kept.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::format::ParseOptions;
use crate::json;
use crate::output::{Output, Record};
use crate::quarantine::Reason;

/// `{"records":[...]}`: the elements, borrowed.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    records: Vec<&'a RawValue>,
}

/// The first non-blank byte of `bytes`, with its index.
fn first_byte(bytes: &[u8]) -> Option<(usize, u8)> {
    bytes.iter().copied().enumerate().find(|(_, b)| !b.is_ascii_whitespace())
}

/// Whether `bytes` is a JSON object whose first key is `records` (Azure blob / Event Hub
/// envelope). Only the first key is looked at, so the check is cheap.
pub(crate) fn starts_with_records(bytes: &[u8]) -> bool {
    let Some((i, b'{')) = first_byte(bytes) else { return false };
    let rest = bytes.get(i + 1..).unwrap_or_default();
    let Some((j, _)) = first_byte(rest) else { return false };
    rest.get(j..).is_some_and(|r| r.starts_with(b"\"records\""))
}

/// What the envelope walker says about unusual shapes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EnvelopeText {
    /// Skip reason for an envelope with an empty `records` array.
    pub(crate) empty: &'static str,
    /// Note for a `{"records":[...]}` nested inside `records` (parsed, one level deep).
    pub(crate) nested: &'static str,
}

/// Call `each` for every record of a framed record: the elements of a `{"records":[...]}`
/// envelope (an element that is itself such an envelope is unpacked too, one level deep, with
/// a note), or the record itself when it is not an envelope. An envelope that does not decode
/// is quarantined whole; elements are handed over as records on the envelope's line.
pub(crate) fn for_each_record<'a>(
    record: &Record<'a>,
    options: &ParseOptions,
    out: &mut Output,
    text: EnvelopeText,
    each: &mut dyn FnMut(&Record<'a>, &mut Output),
) {
    walk(record, options, out, text, each, 0);
}

fn walk<'a>(
    record: &Record<'a>,
    options: &ParseOptions,
    out: &mut Output,
    text: EnvelopeText,
    each: &mut dyn FnMut(&Record<'a>, &mut Output),
    depth: u8,
) {
    if !starts_with_records(record.bytes) {
        each(record, out);
        return;
    }
    let envelope: Envelope<'a> = match json::decode(record.bytes, options) {
        Ok(e) => e,
        Err((reason, detail)) => {
            out.quarantine(record, reason, &format!("records envelope: {detail}"));
            return;
        }
    };
    if envelope.records.is_empty() {
        out.skip(text.empty);
        return;
    }
    for raw in envelope.records {
        let element = Record { line: record.line, bytes: raw.get().as_bytes() };
        if depth == 0 && starts_with_records(element.bytes) {
            out.note(text.nested);
            walk(&element, options, out, text, each, depth + 1);
        } else {
            each(&element, out);
        }
    }
}

/// Call `each` for every element of a top-level JSON array (Event Grid and CloudEvents
/// batches), or for the record itself when it is not an array.
pub(crate) fn for_each_element<'a>(
    record: &Record<'a>,
    options: &ParseOptions,
    out: &mut Output,
    empty: &'static str,
    each: &mut dyn FnMut(&Record<'a>, &mut Output),
) {
    if !matches!(first_byte(record.bytes), Some((_, b'['))) {
        each(record, out);
        return;
    }
    let elements: Vec<&'a RawValue> = match json::decode(record.bytes, options) {
        Ok(e) => e,
        Err((reason, detail)) => {
            out.quarantine(record, reason, &format!("event array: {detail}"));
            return;
        }
    };
    if elements.is_empty() {
        out.skip(empty);
        return;
    }
    for raw in elements {
        each(&Record { line: record.line, bytes: raw.get().as_bytes() }, out);
    }
}

/// A string field borrowed from the record when it holds no escapes (serde's own
/// `Option<Cow<str>>` always allocates); `null` is `None`. For fields that are always strings;
/// use `json::de::text` where providers vary the type.
pub(crate) fn opt_str<'de: 'a, 'a, D>(d: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Borrowed<'x>(#[serde(borrow)] Cow<'x, str>);
    Option::<Borrowed<'a>>::deserialize(d).map(|o| o.map(|b| b.0))
}

/// A timestamp field as written: absent (or `null`, or blank), text (a string, or a number
/// kept as its text), or a value of another JSON type (an object, an array, a boolean).
#[derive(Debug, Default)]
pub(crate) enum TimeField<'a> {
    #[default]
    Absent,
    Text(Cow<'a, str>),
    Wrong,
}

/// A JSON value read without buffering: scalars kept, objects and arrays skipped. The lenient
/// field readers below are built on it (serde's untagged enums buffer every value first, which
/// costs more than the decoding itself on the sign-in hot path).
#[derive(Debug)]
enum Scalar<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Other,
}

struct ScalarVisitor;

impl<'de> serde::de::Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

fn scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Scalar<'de>, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

/// Text from a string, number or boolean; `None` for `null`, objects and arrays (the same
/// contract as `json::de::text`, without buffering).
pub(crate) fn lenient_text<'de: 'a, 'a, D>(d: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(match scalar(d)? {
        Scalar::Str(s) => Some(s),
        Scalar::Int(v) => Some(Cow::Owned(v.to_string())),
        Scalar::UInt(v) => Some(Cow::Owned(v.to_string())),
        Scalar::Float(v) => Some(Cow::Owned(v.to_string())),
        Scalar::Bool(v) => Some(Cow::Borrowed(if v { "true" } else { "false" })),
        Scalar::Null | Scalar::Other => None,
    })
}

/// An integer from a number or a decimal string; anything else `None` (the contract of
/// `json::de::int`, without buffering).
pub(crate) fn lenient_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Int(v) => Some(v),
        Scalar::UInt(v) => i64::try_from(v).ok(),
        Scalar::Float(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Some(v as i64),
        Scalar::Str(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A boolean from `true`, `"true"`, `"Yes"`, `1`… (case-insensitive); anything else `None`
/// (the contract of `json::de::boolean`, without buffering).
pub(crate) fn lenient_bool<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<bool>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Bool(v) => Some(v),
        Scalar::Int(v) => Some(v != 0),
        Scalar::UInt(v) => Some(v != 0),
        Scalar::Str(s) => json::parse_bool(&s),
        _ => None,
    })
}

/// Deserialize a [`TimeField`] (use with `#[serde(default, deserialize_with = "time_field")]`).
pub(crate) fn time_field<'de: 'a, 'a, D>(d: D) -> Result<TimeField<'a>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(match scalar(d)? {
        Scalar::Null => TimeField::Absent,
        Scalar::Str(s) if s.trim().is_empty() => TimeField::Absent,
        Scalar::Str(s) => TimeField::Text(s),
        Scalar::Int(v) => TimeField::Text(Cow::Owned(v.to_string())),
        Scalar::UInt(v) => TimeField::Text(Cow::Owned(v.to_string())),
        Scalar::Float(v) => TimeField::Text(Cow::Owned(v.to_string())),
        Scalar::Bool(_) | Scalar::Other => TimeField::Wrong,
    })
}

impl TimeField<'_> {
    /// Whether the field is absent, `null` or blank.
    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, TimeField::Absent)
    }

    /// UTC microseconds (`None` when absent); a value that is no timestamp in range, or of
    /// another JSON type, is a `bad_time` rejection naming `field`.
    pub(crate) fn parse(&self, field: &str) -> Result<Option<i64>, (Reason, String)> {
        match self {
            TimeField::Absent => Ok(None),
            TimeField::Wrong => Err((Reason::BadTime, format!("{field}: not a string or number"))),
            TimeField::Text(t) => json::parse_time(t).map(Some).ok_or_else(|| {
                let shown: String = t.chars().take(64).collect();
                (Reason::BadTime, format!("{field}: {shown:?} is not a timestamp in range"))
            }),
        }
    }
}

/// Canonical text of an address: IPv4 borrowed as written, IPv6 compressed. On error, the
/// value (at most 64 characters) for the quarantine detail.
pub(crate) fn canonical_ip_text(v: Cow<'_, str>) -> Result<Cow<'_, str>, String> {
    if crate::values::is_canonical_ipv4(v.as_bytes()) {
        return Ok(v);
    }
    let mut scratch = String::new();
    match crate::values::canonical_ip(&v, &mut scratch) {
        Some(s) => Ok(Cow::Owned(s.to_owned())),
        None => Err(v.chars().take(64).collect()),
    }
}

/// `Some(value)` trimmed, or `None` when absent or blank: Azure writes `""` for unknown.
pub(crate) fn non_empty<'a>(value: Option<Cow<'a, str>>) -> Option<Cow<'a, str>> {
    match value {
        Some(Cow::Borrowed(s)) => {
            let t = s.trim();
            (!t.is_empty()).then_some(Cow::Borrowed(t))
        }
        Some(Cow::Owned(s)) => {
            let t = s.trim();
            if t.is_empty() {
                None
            } else if t.len() == s.len() {
                Some(Cow::Owned(s))
            } else {
                Some(Cow::Owned(t.to_owned()))
            }
        }
        None => None,
    }
}

/// Byte offset just past `/<segment>/` in `id`, compared case-insensitively
/// (`/SUBSCRIPTIONS/` and `/subscriptions/` both match).
fn after_segment(id: &str, segment: &str) -> Option<usize> {
    let b = id.as_bytes();
    let seg = segment.as_bytes();
    let want = seg.len() + 2;
    (0..b.len().saturating_sub(want - 1)).find_map(|i| {
        let w = b.get(i..i + want)?;
        let ok = w.first() == Some(&b'/')
            && w.last() == Some(&b'/')
            && w.get(1..want - 1).is_some_and(|m| m.eq_ignore_ascii_case(seg));
        ok.then_some(i + want)
    })
}

/// The path segment that follows `/<segment>/` in `id`.
fn segment_value<'a>(id: &'a str, segment: &str) -> Option<&'a str> {
    let start = after_segment(id, segment)?;
    let rest = id.get(start..)?;
    let value = rest.split('/').next().unwrap_or_default();
    (!value.is_empty()).then_some(value)
}

/// The subscription id in an Azure resource id (`/subscriptions/<id>/...`), lower-cased
/// (Azure writes resource ids upper-cased in some logs and mixed-case in others). A value that
/// is not an id (doc placeholders such as `{subscription-id}`) gives `None`.
pub(crate) fn subscription(resource_id: &str) -> Option<Cow<'_, str>> {
    let value = segment_value(resource_id, "subscriptions")?;
    if value.len() > 64 || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    Some(if value.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(value.to_ascii_lowercase())
    } else {
        Cow::Borrowed(value)
    })
}

/// The prefix of `id` up to and including the name after `/<segment>/`, e.g. the VNet id
/// `/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v` of a
/// subnet id.
pub(crate) fn id_through<'a>(id: &'a str, segment: &str) -> Option<&'a str> {
    let start = after_segment(id, segment)?;
    let len = id.get(start..)?.split('/').next().unwrap_or_default().len();
    if len == 0 {
        return None;
    }
    id.get(..start + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::SourceInfo;
    use crate::schema::Provider;

    #[test]
    fn envelope_detection_looks_at_the_first_key_only() {
        assert!(starts_with_records(b" {\n \"records\" : []}"));
        assert!(!starts_with_records(b"{\"time\":1,\"records\":[]}"));
        assert!(!starts_with_records(b"[{\"records\":[]}]"));
        assert!(!starts_with_records(b""));
        assert!(!starts_with_records(b"{"));
    }

    #[test]
    fn elements_are_visited_and_bad_envelopes_quarantined() {
        let text = EnvelopeText { empty: "t: empty", nested: "t: nested" };
        let mut out = Output::new(4, 0);
        out.begin_source(SourceInfo::lines("k", "n"), [0; 4]);
        out.set_format("t", Provider::Azure);
        let mut seen = Vec::new();
        let rec = Record {
            line: 3,
            bytes: br#"{"records":[{"a":1},{"records":[{"b":2},{"records":[]}]},7]}"#,
        };
        out.begin_record();
        for_each_record(&rec, &Default::default(), &mut out, text, &mut |r, _| {
            seen.push((r.line, String::from_utf8_lossy(r.bytes).into_owned()));
        });
        // The nested envelope is unpacked one level; deeper envelopes are handed over as is.
        assert_eq!(
            seen,
            [
                (3, r#"{"a":1}"#.to_owned()),
                (3, r#"{"b":2}"#.to_owned()),
                (3, r#"{"records":[]}"#.to_owned()),
                (3, "7".to_owned()),
            ]
        );
        assert_eq!(out.counts().notes.get("t: nested"), Some(&1));

        let bad = Record { line: 4, bytes: br#"{"records":{"a":1}}"# };
        for_each_record(&bad, &Default::default(), &mut out, text, &mut |_, _| {
            panic!("no element expected")
        });
        assert_eq!(out.counts().quarantined.get(Reason::BadJson.as_str()), Some(&1));
        let empty = Record { line: 5, bytes: br#"{"records":[]}"# };
        for_each_record(&empty, &Default::default(), &mut out, text, &mut |_, _| {
            panic!("no element expected")
        });
        assert_eq!(out.counts().skipped.get("t: empty"), Some(&1));
    }

    #[test]
    fn resource_id_parts() {
        let nsg = "/SUBSCRIPTIONS/AAAA0A0A-BB1B/RESOURCEGROUPS/G/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/N";
        assert_eq!(subscription(nsg).as_deref(), Some("aaaa0a0a-bb1b"));
        assert!(matches!(subscription("/subscriptions/abc-1/x"), Some(Cow::Borrowed("abc-1"))));
        assert_eq!(subscription("/subscriptions/{subscription-id}/resourceGroups/x"), None);
        assert_eq!(subscription("/subscriptions/"), None);
        assert_eq!(subscription("/tenants/t/providers/Microsoft.aadiam"), None);
        let subnet = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/a";
        assert_eq!(
            id_through(subnet, "virtualnetworks"),
            Some("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v")
        );
        assert_eq!(id_through(subnet, "subnets"), Some(subnet));
        assert_eq!(id_through("/virtualNetworks/", "virtualnetworks"), None);
        assert_eq!(non_empty(Some(Cow::Borrowed("  "))), None);
        assert_eq!(non_empty(Some(Cow::Owned(" x ".to_owned()))).as_deref(), Some("x"));
    }

    #[test]
    fn time_fields_tell_absent_from_wrong() {
        #[derive(Deserialize)]
        struct R<'a> {
            #[serde(default, borrow, deserialize_with = "time_field")]
            a: TimeField<'a>,
            #[serde(default, borrow, deserialize_with = "time_field")]
            b: TimeField<'a>,
            #[serde(default, borrow, deserialize_with = "time_field")]
            c: TimeField<'a>,
            #[serde(default, borrow, deserialize_with = "time_field")]
            d: TimeField<'a>,
            #[serde(default, borrow, deserialize_with = "time_field")]
            e: TimeField<'a>,
        }
        let r: R<'_> = json::decode(
            br#"{"a":"2021-03-04T05:06:07Z","b":1614834367,"c":{"v":1},"d":null}"#,
            &ParseOptions::default(),
        )
        .expect("decode");
        assert_eq!(r.a.parse("a"), Ok(Some(1_614_834_367_000_000)));
        assert_eq!(r.b.parse("b"), Ok(Some(1_614_834_367_000_000)));
        assert_eq!(r.c.parse("c").map_err(|e| e.0), Err(Reason::BadTime));
        assert!(r.d.is_absent() && r.e.is_absent());
    }

    #[test]
    fn lenient_readers_match_the_shared_contract() {
        #[derive(Deserialize)]
        struct R<'a> {
            #[serde(default, borrow, deserialize_with = "lenient_text")]
            t: Option<Cow<'a, str>>,
            #[serde(default, deserialize_with = "lenient_int")]
            i: Option<i64>,
            #[serde(default, deserialize_with = "lenient_bool")]
            b: Option<bool>,
        }
        type Case<'c> = (&'c [u8], Option<&'c str>, Option<i64>, Option<bool>);
        let cases: [Case<'_>; 6] = [
            (br#"{"t":"x","i":"36352","b":"YES"}"#, Some("x"), Some(36352), Some(true)),
            (br#"{"t":4,"i":4.0,"b":0}"#, Some("4"), Some(4), Some(false)),
            (br#"{"t":true,"i":true,"b":false}"#, Some("true"), None, Some(false)),
            (br#"{"t":null,"i":null,"b":null}"#, None, None, None),
            (br#"{"t":{"a":[1,{"b":2}]},"i":[1],"b":{"x":1}}"#, None, None, None),
            (br#"{}"#, None, None, None),
        ];
        for (input, t, i, b) in cases {
            let r: R<'_> = json::decode(input, &ParseOptions::default()).expect("decode");
            assert_eq!((r.t.as_deref(), r.i, r.b), (t, i, b), "{}", String::from_utf8_lossy(input));
        }
        let r: R<'_> = json::decode(br#"{"t":"plain"}"#, &ParseOptions::default()).expect("decode");
        assert!(matches!(r.t, Some(Cow::Borrowed("plain"))), "strings are borrowed");
        assert!(json::decode::<R<'_>>(br#"{"t":[1,}"#, &ParseOptions::default()).is_err());
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        #[derive(Deserialize)]
        struct R<'a> {
            #[serde(default, borrow, deserialize_with = "opt_str")]
            a: Option<Cow<'a, str>>,
            #[serde(default, borrow, deserialize_with = "opt_str")]
            b: Option<Cow<'a, str>>,
            #[serde(default, borrow, deserialize_with = "opt_str")]
            c: Option<Cow<'a, str>>,
            #[serde(default, borrow, deserialize_with = "opt_str")]
            d: Option<Cow<'a, str>>,
        }
        let r: R<'_> =
            json::decode(br#"{"a":"x","b":"\u0041","c":null}"#, &ParseOptions::default())
                .expect("decode");
        assert!(matches!(r.a, Some(Cow::Borrowed("x"))));
        assert!(matches!(r.b, Some(Cow::Owned(ref s)) if s == "A"));
        assert!(r.c.is_none() && r.d.is_none());
        assert!(json::decode::<R<'_>>(br#"{"a":1}"#, &ParseOptions::default()).is_err());
        assert!(matches!(canonical_ip_text(Cow::Borrowed("10.0.0.1")), Ok(Cow::Borrowed(_))));
        assert_eq!(canonical_ip_text(Cow::Borrowed("[::1]")).as_deref(), Ok("::1"));
        assert_eq!(canonical_ip_text(Cow::Borrowed("x")), Err("x".to_owned()));
    }
}
