//! Helpers shared by the AWS parsers: ARN parts, lenient JSON shapes AWS varies (objects that
//! may be `null` or a scalar, lists mixing strings and objects), certificate serials, TLS
//! version names and cheap JSON sniffing.
//!
//! Everything here is total: hostile input yields `None`, never a panic.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The bytes a flow log line (VPC or Transit Gateway) is made of: 1 for a token byte, 2 for
/// the space between tokens, 0 for anything else.
static FLOW_LINE_BYTES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric()
            || matches!(c, b'.' | b':' | b'-' | b'_' | b'/' | b'$' | b'{' | b'}')
        {
            table[b] = 1;
        }
        b += 1;
    }
    table[b' ' as usize] = 2;
    table
};

/// The number of spaces in `record` when every byte is of the flow log character set (tokens
/// of letters, digits and `. : - _ / $ { }` separated by spaces), else `None`. Runs on every
/// record under `--format auto`: one table lookup per byte, no branch per character class.
pub(crate) fn flow_line_spaces(record: &[u8]) -> Option<usize> {
    let mut spaces = 0usize;
    let mut foreign = false;
    for chunk in record.chunks(32) {
        for &b in chunk {
            let class = FLOW_LINE_BYTES[usize::from(b)];
            foreign |= class == 0;
            spaces += usize::from(class == 2);
        }
        if foreign {
            return None;
        }
    }
    Some(spaces)
}

/// Whether a flow log line holds a Transit Gateway id or field name (`tgw-`).
pub(crate) fn mentions_tgw(record: &[u8]) -> bool {
    static TGW: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"tgw-"));
    TGW.find(record).is_some()
}

/// The parts of an ARN (`arn:partition:service:region:account:resource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arn<'a> {
    pub(crate) partition: &'a str,
    pub(crate) service: &'a str,
    pub(crate) region: &'a str,
    pub(crate) account: &'a str,
    pub(crate) resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Split an ARN; `None` when `s` is not one.
    pub(crate) fn parse(s: &'a str) -> Option<Arn<'a>> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let partition = parts.next()?;
        let service = parts.next()?;
        let region = parts.next()?;
        let account = parts.next()?;
        let resource = parts.next()?;
        if partition.is_empty() || service.is_empty() {
            return None;
        }
        Some(Arn { partition, service, region, account, resource })
    }

    /// The region, `None` when empty (global services such as IAM).
    pub(crate) fn region(&self) -> Option<&'a str> {
        (!self.region.is_empty()).then_some(self.region)
    }

    /// The account, `None` when empty.
    pub(crate) fn account(&self) -> Option<&'a str> {
        (!self.account.is_empty()).then_some(self.account)
    }
}

/// `Some(v)` unless `v` is empty or the provider's placeholder `-`.
pub(crate) fn present(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty() && *s != "-")
}

/// A borrowed `Cow` of an optional `&str` that is present (see [`present`]).
pub(crate) fn cow<'a>(v: Option<&'a str>) -> Option<Cow<'a, str>> {
    present(v).map(Cow::Borrowed)
}

/// A certificate serial as lower-case hex without separators (`67:07:44` → `670744`); `None`
/// when it is not hex.
pub(crate) fn normalize_serial(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        match c {
            ':' | '-' | ' ' => {}
            c if c.is_ascii_hexdigit() => out.push(c.to_ascii_lowercase()),
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A TLS protocol name in one spelling (`TLSv1.2`), from AWS's `TLSv1.2`, `tlsv12`, `TLSv1`;
/// `None` for `-`. Unknown names are kept as written.
pub(crate) fn tls_version(s: &str) -> Option<Cow<'_, str>> {
    let v = present(Some(s))?;
    let known = match v.to_ascii_lowercase().as_str() {
        "tlsv1" | "tlsv10" | "tlsv1.0" => "TLSv1.0",
        "tlsv11" | "tlsv1.1" => "TLSv1.1",
        "tlsv12" | "tlsv1.2" => "TLSv1.2",
        "tlsv13" | "tlsv1.3" => "TLSv1.3",
        "sslv3" => "SSLv3",
        _ => return Some(Cow::Borrowed(v)),
    };
    Some(Cow::Borrowed(known))
}

/// Upper bound of a name in an `upper_snake` vocabulary we lower-case (revocation reasons…).
const MAX_WORD: usize = 64;

/// `KEY_COMPROMISE` → `key_compromise` (bounded).
pub(crate) fn lower_word(s: &str) -> Option<Cow<'_, str>> {
    let s = present(Some(s.trim()))?;
    if s.len() > MAX_WORD {
        return Some(Cow::Borrowed(s));
    }
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(s.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(s))
    }
}

/// Whether the first non-blank byte of `record` opens a JSON object.
pub(crate) fn is_json_object(record: &[u8]) -> bool {
    record.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Whether the first non-blank byte of `record` opens a JSON object or array.
pub(crate) fn is_json_value(record: &[u8]) -> bool {
    matches!(record.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
}

/// The keys of the top-level JSON object in `head` (a prefix of a record), in order, as raw
/// bytes without quotes (escapes are left as written), with whether each value starts as a
/// string. Stops at the end of `head`; cheap enough for sniffing.
pub(crate) fn top_level_keys(head: &[u8], mut visit: impl FnMut(&[u8], bool) -> bool) {
    let mut depth = 0usize;
    let mut i = 0usize;
    let mut expecting_key = false;
    while i < head.len() {
        let b = head[i];
        match b {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                let mut escaped = false;
                while j < head.len() {
                    let c = head[j];
                    if escaped {
                        escaped = false;
                    } else if c == b'\\' {
                        escaped = true;
                    } else if c == b'"' {
                        break;
                    }
                    j += 1;
                }
                if j >= head.len() {
                    return;
                }
                if depth == 1 && expecting_key {
                    let key = &head[start..j];
                    // Find the ':' and the first byte of the value.
                    let mut k = j + 1;
                    while k < head.len() && head[k].is_ascii_whitespace() {
                        k += 1;
                    }
                    if head.get(k) == Some(&b':') {
                        k += 1;
                        while k < head.len() && head[k].is_ascii_whitespace() {
                            k += 1;
                        }
                        let is_string = head.get(k) == Some(&b'"');
                        if !visit(key, is_string) {
                            return;
                        }
                    }
                    expecting_key = false;
                }
                i = j + 1;
                continue;
            }
            b'{' => {
                depth += 1;
                expecting_key = depth == 1;
            }
            b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expecting_key = true,
            _ => {}
        }
        i += 1;
    }
}

/// Lenient deserializers for AWS JSON shapes (use with `#[serde(default, deserialize_with)]`).
pub(crate) mod lenient {
    use super::*;

    /// An object decoded as `T`; `null`, scalars and arrays (shapes AWS uses for "nothing",
    /// such as `"responseElements": null`) become `None` instead of failing the record.
    pub(crate) fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                d.deserialize_any(self)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V(PhantomData))
    }

    /// A list whose string items are kept (borrowed) and whose object items yield their `ARN`
    /// or `arn` key (CloudTrail `resources`); other items are skipped. A non-list is `None`.
    pub(crate) fn text_list<'de, 'a, D>(d: D) -> Result<Option<Vec<Cow<'a, str>>>, D::Error>
    where
        D: Deserializer<'de>,
        'de: 'a,
    {
        #[derive(Deserialize)]
        struct ArnObject<'x> {
            #[serde(borrow, default, rename = "ARN", alias = "arn")]
            arn: Option<Cow<'x, str>>,
        }
        struct Item<'x>(Option<Cow<'x, str>>);
        impl<'de: 'x, 'x> Deserialize<'de> for Item<'x> {
            fn deserialize<D2: Deserializer<'de>>(d: D2) -> Result<Self, D2::Error> {
                struct IV<'x>(PhantomData<&'x ()>);
                impl<'de: 'x, 'x> Visitor<'de> for IV<'x> {
                    type Value = Item<'x>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string or an object")
                    }
                    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Item<'x>, E> {
                        Ok(Item(Some(Cow::Borrowed(v))))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Item<'x>, E> {
                        Ok(Item(Some(Cow::Owned(v.to_owned()))))
                    }
                    fn visit_string<E: de::Error>(self, v: String) -> Result<Item<'x>, E> {
                        Ok(Item(Some(Cow::Owned(v))))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item<'x>, A::Error> {
                        let o = ArnObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                        Ok(Item(o.arn))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<Item<'x>, A::Error> {
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(Item(None))
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<Item<'x>, E> {
                        Ok(Item(None))
                    }
                    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Item<'x>, E> {
                        Ok(Item(None))
                    }
                    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Item<'x>, E> {
                        Ok(Item(None))
                    }
                    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Item<'x>, E> {
                        Ok(Item(None))
                    }
                    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Item<'x>, E> {
                        Ok(Item(None))
                    }
                }
                d.deserialize_any(IV(PhantomData))
            }
        }
        let items: Option<Vec<Item<'a>>> = object_or_list(d)?;
        Ok(items.map(|v| v.into_iter().filter_map(|i| i.0).collect()))
    }

    /// A list of `T`; anything else (`null`, an object, a scalar) is `None`.
    fn object_or_list<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Option<Vec<T>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(item) = seq.next_element::<T>()? {
                    v.push(item);
                }
                Ok(Some(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_line_scan_accepts_the_flow_charset_only() {
        assert_eq!(flow_line_spaces(b"2 123 eni-1 10.0.0.1 ${vpc-id} a_b/c:d"), Some(5));
        assert_eq!(flow_line_spaces(b""), Some(0));
        // Every byte outside the set rejects the line, wherever it sits (also past 32 bytes).
        for b in 0..=255u8 {
            let allowed = b.is_ascii_alphanumeric() || b" .:-_/${}".contains(&b);
            let mut line = vec![b'a'; 40];
            line[35] = b;
            assert_eq!(flow_line_spaces(&line).is_some(), allowed, "byte {b:#04x}");
        }
        assert!(mentions_tgw(b"2 tgw-attach-1 x") && !mentions_tgw(b"2 tg w-1"));
    }

    #[test]
    fn arns_split_and_reject_garbage() {
        let a = Arn::parse("arn:aws:acm:us-east-2:123456789012:certificate/abc").expect("arn");
        assert_eq!(
            (a.service, a.region(), a.account()),
            ("acm", Some("us-east-2"), Some("123456789012"))
        );
        assert_eq!(a.resource, "certificate/abc");
        let iam = Arn::parse("arn:aws:iam::111122223333:root").expect("arn");
        assert_eq!((iam.region(), iam.resource), (None, "root"));
        for bad in ["", "arn", "arn:aws", "urn:aws:iam::1:root", "arn::iam::1:x", "-"] {
            assert_eq!(Arn::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn serials_tls_versions_and_words() {
        assert_eq!(
            normalize_serial("67:07:44:76:83:a9:B7:f4").as_deref(),
            Some("6707447683a9b7f4")
        );
        assert_eq!(normalize_serial("zz:01"), None);
        assert_eq!(normalize_serial(" : "), None);
        assert_eq!(tls_version("tlsv12").as_deref(), Some("TLSv1.2"));
        assert_eq!(tls_version("TLSv1").as_deref(), Some("TLSv1.0"));
        assert_eq!(tls_version("TLSv1.3").as_deref(), Some("TLSv1.3"));
        assert_eq!(tls_version("-"), None);
        assert_eq!(tls_version("QUICv1").as_deref(), Some("QUICv1"));
        assert_eq!(lower_word("KEY_COMPROMISE").as_deref(), Some("key_compromise"));
        assert_eq!(lower_word("-"), None);
    }

    #[test]
    fn top_level_keys_ignore_nested_objects_and_strings() {
        let mut keys = Vec::new();
        top_level_keys(
            br#"{"a":{"message":"x"},"b":"{\"message\":1}", "message" : "line", "n":[{"c":1}]}"#,
            |k, s| {
                keys.push((String::from_utf8_lossy(k).into_owned(), s));
                true
            },
        );
        let keys: Vec<(&str, bool)> = keys.iter().map(|(k, s)| (k.as_str(), *s)).collect();
        assert_eq!(keys, [("a", false), ("b", true), ("message", true), ("n", false)]);
        // Truncated input stops quietly.
        let mut seen = 0;
        top_level_keys(br#"{"a":1,"unterminat"#, |k, _| {
            assert_eq!(k, b"a");
            seen += 1;
            true
        });
        assert_eq!(seen, 1);
    }

    #[test]
    fn lenient_shapes_never_fail_the_record() {
        #[derive(Deserialize, Debug, Default)]
        struct Inner<'a> {
            #[serde(borrow, default)]
            x: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize, Debug)]
        struct R<'a> {
            #[serde(borrow, default, deserialize_with = "lenient::object")]
            o: Option<Inner<'a>>,
            #[serde(borrow, default, deserialize_with = "lenient::text_list")]
            l: Option<Vec<Cow<'a, str>>>,
        }
        let r: R<'_> =
            serde_json::from_str(r#"{"o":{"x":"1"},"l":["a",{"ARN":"b"},3,null,["c"]]}"#)
                .expect("decode");
        assert_eq!(r.o.and_then(|o| o.x).as_deref(), Some("1"));
        assert_eq!(r.l.unwrap_or_default(), ["a", "b"]);
        for odd in [r#"{"o":null,"l":null}"#, r#"{"o":"s","l":{"k":1}}"#, r#"{"o":[1,{}],"l":7}"#] {
            let r: R<'_> = serde_json::from_str(odd).expect("lenient");
            assert!(r.o.is_none() && r.l.is_none(), "{odd}");
        }
    }
}
