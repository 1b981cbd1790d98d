//! The Zeek ASCII (TSV) log reader shared by the `zeek-*` formats.
//!
//! Zeek writes self-describing logs: header lines name the separator (`#separator \x09`), the
//! set separator (`#set_separator ,`), the empty-set and unset markers (`#empty_field (empty)`,
//! `#unset_field -`), the log (`#path ssl`), and the columns (`#fields ts uid id.orig_h …`,
//! `#types time string addr …`). The `#fields` line defines the layout of the data lines that
//! follow; headers may repeat mid-stream (rotated or concatenated logs), and each new `#path` or
//! `#fields` line replaces the layout. Columns are found by name, so added, removed or reordered
//! columns (Zeek versions, site scripts) need no configuration.
//!
//! Values: the unset marker (`-`) and the empty-set marker (`(empty)`) are NULL; Zeek's escapes
//! (`\xHH`, `\\`) are undone; vectors and sets are split on the set separator. Header and
//! comment lines (btest's `### BTest baseline …`) are skipped; a data line before any `#fields`
//! header is quarantined (`missing_field`), one with a different number of fields than the
//! header `field_count`. Lines of logs that map to no table (`conn`, `dns`, …) are skipped with
//! the log named. Each data line is dispatched on the current `#path` (falling back to the
//! format the parser was created for) to [`super::ssl`], [`super::x509`], [`super::notice`] or
//! [`super::ocsp`], and its rows carry that log's format name.

use std::borrow::Cow;

use crate::format::{Parser, SNIFF_THRESHOLD};
use crate::json::{self, Rejection};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::schema::Provider;

/// The Zeek logs ztlake maps, and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `ssl.log` → flows.
    Ssl,
    /// `x509.log` → cert_events.
    X509,
    /// `notice.log` (certificate notices) → cert_events.
    Notice,
    /// `ocsp.log` → cert_events.
    Ocsp,
    /// Any other log: skipped.
    Other,
}

impl Kind {
    fn from_path(path: &str) -> Kind {
        match path {
            "ssl" => Kind::Ssl,
            "x509" => Kind::X509,
            "notice" => Kind::Notice,
            "ocsp" => Kind::Ocsp,
            _ => Kind::Other,
        }
    }

    /// Format name of the rows of this log.
    fn format(self) -> &'static str {
        match self {
            Kind::Ssl => super::ssl::NAME,
            Kind::X509 => super::x509::NAME,
            Kind::Notice => super::notice::NAME,
            Kind::Ocsp => super::ocsp::NAME,
            Kind::Other => "",
        }
    }

    /// The columns the log's mapping reads, in the order its code indexes them.
    fn columns(self) -> &'static [Column] {
        match self {
            Kind::Ssl => super::ssl::COLUMNS,
            Kind::X509 => super::x509::COLUMNS,
            Kind::Notice => super::notice::COLUMNS,
            Kind::Ocsp => super::ocsp::COLUMNS,
            Kind::Other => &[],
        }
    }
}

/// A column a log's mapping reads: its Zeek name and whether it feeds a canonical column (read
/// but unmapped columns are counted as unmapped too).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) mapped: bool,
}

/// A mapped column.
pub(crate) const fn mapped(name: &'static str) -> Column {
    Column { name, mapped: true }
}

/// A column read for a decision but stored in no canonical column.
pub(crate) const fn read(name: &'static str) -> Column {
    Column { name, mapped: false }
}

/// The layout of the data lines under the current `#fields` header.
#[derive(Debug)]
struct Layout {
    kind: Kind,
    len: usize,
    /// Position of each of the kind's columns, by the kind's column order.
    index: Vec<Option<usize>>,
    /// Fields that map to no column.
    unmapped: Vec<String>,
    /// Rows produced under this layout, for the unmapped counts.
    rows: u64,
}

/// One data line as seen by a log's mapping: the kind's columns, unescaped on access.
pub(crate) struct Line<'a, 'p> {
    text: &'a str,
    ranges: &'p [(usize, usize)],
    index: &'p [Option<usize>],
    unset: &'p str,
    empty: &'p str,
    set_sep: u8,
}

impl<'a> Line<'a, '_> {
    /// The raw value of the kind's column `c`; `None` when the column is absent from the
    /// layout, unset or the empty set.
    pub(crate) fn raw(&self, c: usize) -> Option<&'a str> {
        let i = (*self.index.get(c)?)?;
        let &(start, end) = self.ranges.get(i)?;
        let v = self.text.get(start..end)?;
        (v != self.unset && v != self.empty && !v.is_empty()).then_some(v)
    }

    /// The unescaped value of column `c`.
    pub(crate) fn text(&self, c: usize) -> Option<Cow<'a, str>> {
        self.raw(c).map(unescape)
    }

    /// The elements of the vector or set in column `c`, unescaped; `None` when unset or empty.
    pub(crate) fn list(&self, c: usize) -> Option<Vec<Cow<'a, str>>> {
        let raw = self.raw(c)?;
        let sep = self.set_sep;
        Some(
            raw.split(|ch: char| ch.is_ascii() && ch as u32 == u32::from(sep))
                .filter(|v| !v.is_empty())
                .map(unescape)
                .collect(),
        )
    }
}

/// Undo Zeek's ASCII escapes: `\xHH` and `\\`. Allocates only when the value has a backslash;
/// bytes that do not form UTF-8 become U+FFFD.
pub(crate) fn unescape(v: &str) -> Cow<'_, str> {
    if !v.contains('\\') {
        return Cow::Borrowed(v);
    }
    Cow::Owned(String::from_utf8_lossy(&unescape_bytes(v.as_bytes())).into_owned())
}

fn unescape_bytes(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            match b.get(i + 1) {
                Some(b'\\') => {
                    out.push(b'\\');
                    i += 2;
                    continue;
                }
                Some(b'x') => {
                    let hex = b.get(i + 2..i + 4).and_then(|h| std::str::from_utf8(h).ok());
                    if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The event time of a Zeek record (`ts`, epoch seconds with a fraction).
pub(crate) fn time(line: &Line<'_, '_>, c: usize, name: &str) -> Result<i64, Rejection> {
    let Some(raw) = line.raw(c) else {
        return Err((Reason::MissingField, format!("{name}: unset")));
    };
    json::parse_time(raw).ok_or_else(|| {
        let shown: String = raw.chars().take(40).collect();
        (Reason::BadTime, format!("{name}: {shown:?} is not epoch seconds in range"))
    })
}

/// An optional epoch time that is not the event time (validity, revocation).
pub(crate) fn opt_time(
    line: &Line<'_, '_>,
    c: usize,
    name: &str,
) -> Result<Option<i64>, Rejection> {
    match line.raw(c) {
        None => Ok(None),
        Some(raw) => json::parse_time(raw).map(Some).ok_or_else(|| bad(name, raw)),
    }
}

/// A `bad_field` rejection naming the field and showing the value.
pub(crate) fn bad(field: &str, value: &str) -> Rejection {
    let shown: String = value.chars().take(64).collect();
    (Reason::BadField, format!("{field}: invalid value {shown:?}"))
}

/// A serial number as lower-case hex without separators.
pub(crate) fn serial(v: &str) -> Cow<'_, str> {
    if v.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) {
        return Cow::Borrowed(v);
    }
    Cow::Owned(
        v.chars().filter(|c| *c != ':' && *c != ' ').map(|c| c.to_ascii_lowercase()).collect(),
    )
}

/// Reads Zeek ASCII logs; see the module docs. Created by every `zeek-*` format.
#[derive(Debug)]
pub struct ZeekParser {
    /// The log assumed while no `#path` header has been seen.
    default_kind: Kind,
    sep: u8,
    set_sep: u8,
    empty: String,
    unset: String,
    kind: Kind,
    skip_reason: String,
    layout: Option<Layout>,
    ranges: Vec<(usize, usize)>,
    scratch: [String; 2],
}

impl ZeekParser {
    pub(crate) fn new(default_kind: Kind) -> Self {
        Self {
            default_kind,
            sep: b'\t',
            set_sep: b',',
            empty: "(empty)".to_owned(),
            unset: "-".to_owned(),
            kind: default_kind,
            skip_reason: String::new(),
            layout: None,
            ranges: Vec::with_capacity(32),
            scratch: Default::default(),
        }
    }

    fn set_kind(&mut self, path: &str, out: &mut Output) {
        self.retire_layout(out);
        self.kind = Kind::from_path(path);
        let shown: String = path.chars().take(40).collect();
        self.skip_reason = format!("zeek: {shown} log is not mapped to a table");
    }

    fn retire_layout(&mut self, out: &mut Output) {
        if let Some(layout) = self.layout.take() {
            for name in &layout.unmapped {
                out.note_unmapped(layout.kind.format(), name, layout.rows);
            }
        }
    }

    fn set_fields(&mut self, names: &[&str], out: &mut Output) {
        self.retire_layout(out);
        let kind = self.kind;
        let columns = kind.columns();
        let index = columns.iter().map(|c| names.iter().position(|n| *n == c.name)).collect();
        let unmapped = names
            .iter()
            .filter(|n| !columns.iter().any(|c| c.mapped && c.name == **n))
            .map(|n| n.chars().take(64).collect())
            .collect();
        self.layout = Some(Layout { kind, len: names.len(), index, unmapped, rows: 0 });
    }

    /// A header or comment line (starting with `#`).
    fn header(&mut self, record: &Record<'_>, text: &str, out: &mut Output) {
        let sep = char::from(self.sep);
        let body = text.get(1..).unwrap_or_default();
        let name_end = body.find([sep, ' ']).unwrap_or(body.len());
        let (name, rest) = body.split_at(name_end);
        let value = rest.get(1..).unwrap_or_default();
        match name {
            "separator" => match single_byte(value) {
                Some(b) => self.sep = b,
                None => {
                    out.set_format(self.kind_or_default().format(), Provider::Zeek);
                    out.quarantine(
                        record,
                        Reason::BadField,
                        "#separator: only single-byte separators are supported",
                    );
                    return;
                }
            },
            "set_separator" => match single_byte(value) {
                Some(b) => self.set_sep = b,
                None => {
                    out.set_format(self.kind_or_default().format(), Provider::Zeek);
                    out.quarantine(
                        record,
                        Reason::BadField,
                        "#set_separator: only single-byte separators are supported",
                    );
                    return;
                }
            },
            "empty_field" => self.empty = value.to_owned(),
            "unset_field" => self.unset = value.to_owned(),
            "path" => self.set_kind(value, out),
            "fields" => {
                let names: Vec<&str> = value.split(sep).collect();
                self.set_fields(&names, out);
            }
            "types" | "open" | "close" => {}
            _ => {
                out.skip("zeek: comment line");
                return;
            }
        }
        out.skip("zeek: header line");
    }

    fn kind_or_default(&self) -> Kind {
        if self.kind == Kind::Other { self.default_kind } else { self.kind }
    }

    fn data(&mut self, record: &Record<'_>, text: &str, out: &mut Output) {
        let Some(layout) = self.layout.as_mut() else {
            out.set_format(self.kind_or_default().format(), Provider::Zeek);
            out.quarantine(
                record,
                Reason::MissingField,
                "#fields: data line before any #fields header line",
            );
            return;
        };
        if layout.kind == Kind::Other {
            out.skip(&self.skip_reason);
            return;
        }
        out.set_format(layout.kind.format(), Provider::Zeek);
        self.ranges.clear();
        let mut start = 0;
        for end in memchr::memchr_iter(self.sep, text.as_bytes()) {
            self.ranges.push((start, end));
            start = end + 1;
        }
        self.ranges.push((start, text.len()));
        if self.ranges.len() != layout.len {
            let detail =
                format!("{} fields, the #fields header has {}", self.ranges.len(), layout.len);
            out.quarantine(record, Reason::FieldCount, &detail);
            return;
        }
        let line = Line {
            text,
            ranges: &self.ranges,
            index: &layout.index,
            unset: &self.unset,
            empty: &self.empty,
            set_sep: self.set_sep,
        };
        let produced = match layout.kind {
            Kind::Ssl => super::ssl::emit(&line, record, out, &mut self.scratch),
            Kind::X509 => super::x509::emit(&line, record, out),
            Kind::Notice => super::notice::emit(&line, record, out, &mut self.scratch),
            Kind::Ocsp => super::ocsp::emit(&line, record, out),
            Kind::Other => false,
        };
        layout.rows += u64::from(produced);
    }
}

/// The single byte an escaped header value (`\x09`, `,`) stands for.
fn single_byte(v: &str) -> Option<u8> {
    match unescape_bytes(v.as_bytes()).as_slice() {
        [b] => Some(*b),
        _ => None,
    }
}

impl Parser for ZeekParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let Ok(text) = std::str::from_utf8(record.bytes) else {
            out.set_format(self.kind_or_default().format(), Provider::Zeek);
            out.quarantine(record, Reason::InvalidUtf8, "Zeek log line is not valid UTF-8");
            return;
        };
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() {
            out.skip("zeek: blank line");
        } else if text.starts_with('#') {
            self.header(record, text, out);
        } else {
            self.data(record, text, out);
        }
    }

    fn finish(&mut self, out: &mut Output) {
        self.retire_layout(out);
    }
}

const HEADERS: [&str; 9] = [
    "separator",
    "set_separator",
    "empty_field",
    "unset_field",
    "path",
    "open",
    "close",
    "fields",
    "types",
];

/// The sniff shared by the `zeek-*` formats. Zeek header lines score 95 in every Zeek format (a
/// `#path` naming this format's own log 96), btest's banner 95, and a TAB-separated data line
/// whose first field is an epoch time (or btest's `XXXXXXXXXX.XXXXXX`) or `-` 60: so `--format
/// auto` keeps the one reader that saw a file's headers for all of its lines.
pub(crate) fn sniff(record: &[u8], own_path: &str) -> u8 {
    let h = json::head(record, 2048);
    if let Some(body) = h.strip_prefix(b"#") {
        if h.starts_with(b"### BTest baseline data") {
            return 95;
        }
        // The header name runs up to the separator, whatever it is (`#separator \x7c` switches
        // the following headers to `|`).
        let end =
            body.iter().position(|b| !(b.is_ascii_lowercase() || *b == b'_')).unwrap_or(body.len());
        let (name, rest) = body.split_at(end);
        if !HEADERS.iter().any(|n| n.as_bytes() == name) {
            return 0;
        }
        if name == b"path" && rest.get(1..) == Some(own_path.as_bytes()) {
            return 96;
        }
        return 95;
    }
    // A data line: a first field like an epoch time (`1334102677.000000`, btest's
    // `XXXXXXXXXX.XXXXXX`) or unset (`-`), then a separator byte that recurs at least 3 times.
    let first_len =
        h.iter().position(|b| !(b.is_ascii_digit() || *b == b'.' || *b == b'X' || *b == b'-'));
    let Some(first_len) = first_len else { return 0 };
    let (first, rest) = h.split_at(first_len);
    let ts_like = first == b"-"
        || (first.contains(&b'.')
            && !first.contains(&b'-')
            && first.first().is_some_and(|b| b.is_ascii_digit() || *b == b'X'));
    let Some(&sep) = rest.first() else { return 0 };
    if !ts_like || sep.is_ascii_alphanumeric() || sep == b' ' || sep == b'"' {
        return 0;
    }
    if memchr::memchr_iter(sep, rest).count() >= 3 { 60 } else { 0 }
}

const _: () = assert!(60 >= SNIFF_THRESHOLD);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_undone() {
        assert_eq!(unescape("plain"), "plain");
        assert_eq!(unescape(r"Co.\\,Ltd."), r"Co.\,Ltd.");
        assert_eq!(unescape(r"a\x09b"), "a\tb");
        assert_eq!(unescape(r"bad\xZZ"), r"bad\xZZ");
        assert_eq!(unescape(r"trailing\"), r"trailing\");
        assert_eq!(unescape(r"\xff"), "\u{fffd}");
        assert_eq!(single_byte(r"\x09"), Some(b'\t'));
        assert_eq!(single_byte(","), Some(b','));
        assert_eq!(single_byte(r"\x09\x09"), None);
    }

    #[test]
    fn serials_are_lower_hex_without_separators() {
        assert_eq!(serial("36F5DA5300000000505E"), "36f5da5300000000505e");
        assert_eq!(serial("0b:67:71"), "0b6771");
        assert!(matches!(serial("0b6771"), Cow::Borrowed(_)));
    }

    #[test]
    fn headers_drive_the_layout_and_unmapped_columns_are_counted() {
        use crate::output::SourceInfo;
        use crate::schema::Table;
        let lines = [
            "#separator \\x09",
            "#path\tssl",
            "#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tversion\tcipher",
            "1707127200.000000\t10.0.0.1\t1\t10.0.0.2\t443\tTLSv12\tTLS_AES_128_GCM_SHA256",
            "#path\tconn",
            "#fields\tts\tuid",
            "1707127200.000000\tC1",
            "#path\tx509",
            "#fields\tts\tcertificate.serial\tcertificate.sig_alg",
            "1707127200.000000\t0A\tsha256WithRSAEncryption",
        ];
        let mut parser = ZeekParser::new(Kind::Ssl);
        let mut out = Output::new(8, 0);
        out.begin_source(SourceInfo::lines("k", "z.log"), [0; 4]);
        for (i, l) in lines.iter().enumerate() {
            out.begin_record();
            parser.parse(&Record { line: i as u64 + 1, bytes: l.as_bytes() }, &mut out);
            out.end_record();
        }
        parser.finish(&mut out);
        let c = out.counts();
        assert_eq!(c.rows_in(Table::Flows), 1);
        assert_eq!(c.rows_in(Table::CertEvents), 1);
        assert_eq!(c.skipped.get("zeek: conn log is not mapped to a table"), Some(&1));
        assert_eq!(c.skipped.get("zeek: header line"), Some(&7));
        assert_eq!(c.unmapped.get("zeek-ssl: cipher"), Some(&1));
        assert_eq!(c.unmapped.get("zeek-x509: certificate.sig_alg"), Some(&1));
        assert_eq!(c.unmapped.get("zeek-ssl: ts"), None, "mapped columns are not counted");
        let formats: Vec<String> = out
            .take_batches(0)
            .iter()
            .map(|(_, b)| {
                let f = b.column_by_name("format").expect("format");
                arrow::array::AsArray::as_string::<i32>(f).value(0).to_owned()
            })
            .collect();
        assert_eq!(formats, ["zeek-ssl", "zeek-x509"]);
    }

    #[test]
    fn sniff_scores_headers_and_data_lines() {
        assert_eq!(sniff(b"#separator \\x09", "ssl"), 95);
        assert_eq!(sniff(b"#path\tssl", "ssl"), 96);
        assert_eq!(sniff(b"#path\tx509", "ssl"), 95);
        assert_eq!(sniff(b"#fields\tts\tuid", "x509"), 95);
        assert_eq!(sniff(b"XXXXXXXXXX.XXXXXX\tC1\t1.2.3.4\t1", "ssl"), 60);
        assert_eq!(sniff(b"1334102677.000000\tC1\t1.2.3.4\t1", "ssl"), 60);
        assert_eq!(sniff(b"# just a comment", "ssl"), 0);
        assert_eq!(sniff(b"hello\tworld\tfoo\tbar", "ssl"), 0);
        assert_eq!(sniff(b"2 123 eni-1 10.0.0.1 10.0.0.2", "ssl"), 0);
        assert_eq!(sniff(b"#set_separator|;", "ssl"), 95);
        assert_eq!(sniff(b"#path|ocsp", "ocsp"), 96);
        assert_eq!(sniff(b"1707127400.000000|Fo1|sha1|AA", "ocsp"), 60);
        assert_eq!(sniff(b"2024-02-05T10:00:00.000Z|a|b|c", "ocsp"), 0);
        assert_eq!(sniff(b"1.5 a b c d", "ssl"), 0);
    }
}
