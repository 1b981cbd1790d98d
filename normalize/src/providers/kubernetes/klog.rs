//! klog lines, as Kubernetes controllers (cert-manager among them) write them:
//! `I0719 15:21:28.113411       1 dynamic_source.go:172] <payload>`.
//!
//! The header carries severity, month, day and time to the microsecond but **no year**; the
//! payload is plain text (`Certificate x scheduled for renewal in 292 hours`), klog structured
//! (`"message" key="value" key=["json"]`) or logr (`logger "msg"="…" "key"="value"`). This
//! module only splits; deciding what a line means and where the year comes from is the
//! caller's job.

use std::borrow::Cow;

use crate::values::{MICROS_PER_SEC, checked_micros};

/// A parsed klog header and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Line<'a> {
    /// `I`, `W`, `E` or `F`.
    pub(super) severity: u8,
    pub(super) month: u32,
    pub(super) day: u32,
    /// Microseconds since midnight.
    pub(super) micros_of_day: i64,
    /// `file.go:123`.
    pub(super) file: &'a str,
    /// Everything after `] `.
    pub(super) payload: &'a str,
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, &d| acc.checked_mul(10)?.checked_add(u32::from(d - b'0')))
}

/// Parse a klog line; `None` when it is not one.
pub(super) fn parse(line: &str) -> Option<Line<'_>> {
    let b = line.as_bytes();
    let severity = *b.first()?;
    if !matches!(severity, b'I' | b'W' | b'E' | b'F') {
        return None;
    }
    let month = digits(b.get(1..3)?)?;
    let day = digits(b.get(3..5)?)?;
    if b.get(5) != Some(&b' ')
        || b.get(8) != Some(&b':')
        || b.get(11) != Some(&b':')
        || b.get(14) != Some(&b'.')
    {
        return None;
    }
    let hour = digits(b.get(6..8)?)?;
    let minute = digits(b.get(9..11)?)?;
    let second = digits(b.get(12..14)?)?;
    let micros = digits(b.get(15..21)?)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let rest = line.get(21..)?.trim_start_matches(' ');
    let (thread, rest) = rest.split_once(' ')?;
    digits(thread.as_bytes())?;
    let (file, payload) =
        rest.split_once("] ").or_else(|| rest.strip_suffix(']').map(|f| (f, "")))?;
    if !file.contains(':') || file.contains(' ') {
        return None;
    }
    let micros_of_day = (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second))
        * MICROS_PER_SEC
        + i64::from(micros);
    Some(Line { severity, month, day, micros_of_day, file, payload })
}

/// UTC microseconds of the line in `year`; `None` for an impossible date (Feb 29 in a common
/// year) or a time out of range.
pub(super) fn time_in_year(line: &Line<'_>, year: i32) -> Option<i64> {
    let date = chrono::NaiveDate::from_ymd_opt(year, line.month, line.day)?;
    let midnight = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros();
    checked_micros(midnight.checked_add(line.micros_of_day)?)
}

/// A value in a structured payload: a quoted string (unescaped) or a bare token, or raw JSON
/// for `{…}` / `[…]` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value<'a> {
    Text(Cow<'a, str>),
    Json(&'a str),
}

/// The message of a payload: the `"msg"` value (logr), the leading quoted string (klog
/// structured) or the whole payload (plain).
pub(super) fn message(payload: &str) -> Cow<'_, str> {
    if let Some(Value::Text(m)) = value(payload, "msg") {
        return m;
    }
    if payload.starts_with('"')
        && let Some((m, _)) = quoted(payload)
    {
        return m;
    }
    Cow::Borrowed(payload)
}

/// The value of `key` (`key=…` or `"key"=…`) in a structured payload.
pub(super) fn value<'a>(payload: &'a str, key: &str) -> Option<Value<'a>> {
    let mut rest = payload;
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            return None;
        }
        // A key: quoted or bare, directly followed by '='.
        let (k, after) = if rest.starts_with('"') {
            let (k, after) = quoted(rest)?;
            (k, after)
        } else {
            let end = rest.find([' ', '=']).unwrap_or(rest.len());
            let (k, after) = rest.split_at(end);
            (Cow::Borrowed(k), after)
        };
        let Some(v) = after.strip_prefix('=') else {
            // Not a key (message text): go on after this token.
            rest = after;
            continue;
        };
        let (parsed, after) = match v.as_bytes().first() {
            Some(b'"') => {
                let (s, after) = quoted(v)?;
                (Value::Text(s), after)
            }
            Some(b'{' | b'[') => {
                let end = json_end(v)?;
                let (raw, after) = v.split_at(end);
                (Value::Json(raw), after)
            }
            _ => {
                let end = v.find(' ').unwrap_or(v.len());
                let (raw, after) = v.split_at(end);
                (Value::Text(Cow::Borrowed(raw)), after)
            }
        };
        if k == key {
            return Some(parsed);
        }
        rest = after;
    }
}

/// The text value of `key`, if it is text.
pub(super) fn text<'a>(payload: &'a str, key: &str) -> Option<Cow<'a, str>> {
    match value(payload, key)? {
        Value::Text(t) => Some(t),
        Value::Json(_) => None,
    }
}

/// A Go-quoted string at the start of `s` (`"…"` with `\"`, `\\`, `\n`, `\t` escapes), and the
/// rest after it.
fn quoted(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let inner = s.strip_prefix('"')?;
    let b = inner.as_bytes();
    let mut i = 0;
    let mut escaped = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => {
                escaped = true;
                i += 2;
                continue;
            }
            b'"' => {
                let raw = inner.get(..i)?;
                let rest = inner.get(i + 1..)?;
                let text = if escaped { Cow::Owned(unescape_go(raw)) } else { Cow::Borrowed(raw) };
                return Some((text, rest));
            }
            _ => i += 1,
        }
    }
    None
}

fn unescape_go(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// End (exclusive) of the JSON object or array at the start of `s`, by bracket depth outside
/// strings.
fn json_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_non_klog_is_rejected() {
        let l = parse(r#"I0719 15:21:28.113411       1 dynamic_source.go:172] "Detected" logger="cert-manager""#)
            .expect("klog");
        assert_eq!((l.severity, l.month, l.day), (b'I', 7, 19));
        assert_eq!(l.micros_of_day, (15 * 3600 + 21 * 60 + 28) * 1_000_000 + 113_411);
        assert_eq!(l.file, "dynamic_source.go:172");
        assert_eq!(message(l.payload), "Detected");
        assert_eq!(text(l.payload, "logger").as_deref(), Some("cert-manager"));
        for bad in [
            "I1319 15:21:28.113411 1 a.go:1] x",
            "X0719 15:21:28.113411 1 a.go:1] x",
            "I0719 15:21:28 1 a.go:1] x",
            "I0719 15:21:28.113411 abc a.go:1] x",
            "Normal  Issuing  18m  cert-manager  Issuing",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(
            time_in_year(&parse("I0229 00:00:00.000000 1 a.go:1] x").expect("l"), 2023),
            None
        );
        assert_eq!(
            time_in_year(&parse("I0101 00:00:01.000001 1 a.go:1] x").expect("l"), 1970),
            Some(1_000_001)
        );
    }

    #[test]
    fn structured_values_are_found_and_unescaped() {
        let p = r#"cert-manager/controller "msg"="re-queuing item" "key"="my-ns/my-cr" "error"="object \"my-cr\" modified" n=3 "user"={"username":"sa","groups":["a b"]} DNSNames=["x"]"#;
        assert_eq!(message(p), "re-queuing item");
        assert_eq!(text(p, "key").as_deref(), Some("my-ns/my-cr"));
        assert_eq!(text(p, "error").as_deref(), Some(r#"object "my-cr" modified"#));
        assert_eq!(text(p, "n").as_deref(), Some("3"));
        assert_eq!(value(p, "user"), Some(Value::Json(r#"{"username":"sa","groups":["a b"]}"#)));
        assert_eq!(value(p, "DNSNames"), Some(Value::Json(r#"["x"]"#)));
        assert_eq!(value(p, "absent"), None);
        assert_eq!(
            message("Certificate c scheduled for renewal"),
            "Certificate c scheduled for renewal"
        );
        assert_eq!(value(r#"k="unterminated"#, "k"), None);
        assert_eq!(value(r#"k={"a":"#, "k"), None);
    }
}
