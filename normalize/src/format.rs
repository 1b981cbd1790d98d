//! Formats and parsers: what a provider format is ([`Format`]), the parser interface
//! ([`Parser`]), per-record format detection ([`AutoParser`]) and parse options.
//!
//! A parser is sans-IO: it receives framed records ([`Record`]) and appends rows to an
//! [`Output`]. The registry of formats is the plain list in [`crate::providers::FORMATS`].

use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::schema::{Provider, Table};

/// How a format's records are framed in a byte stream (the ingest stage does the framing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One record per line.
    Lines,
    /// One record per top-level JSON value (NDJSON, pretty-printed documents, arrays).
    Json,
}

/// Options that change how records are parsed.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// AWS VPC flow log field list (`--vpc-fields`), used when a file has no header line.
    pub vpc_fields: Option<String>,
    /// Maximum JSON nesting depth; deeper records are quarantined (`json_too_deep`).
    pub max_json_depth: usize,
    /// Maximum size of one field in bytes; larger fields are quarantined (`field_too_large`).
    pub max_field_len: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self { vpc_fields: None, max_json_depth: 64, max_field_len: 64 * 1024 }
    }
}

/// Errors of this crate: invalid options and unknown format names. Bad records are not errors;
/// they are quarantined.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option value is invalid.
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        /// The option, as the user wrote it (e.g. `--vpc-fields`).
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `--format` names no registered format.
    #[error("unknown format {0:?}; `ztlake formats` lists the formats")]
    UnknownFormat(String),
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parses the records of one source. Implementations keep per-source state (a VPC header
/// layout, partially summed flows) and must never panic, whatever the bytes.
pub trait Parser: Send {
    /// Parse one framed record: append rows, quarantine it, or skip it, through `out`.
    fn parse(&mut self, record: &Record<'_>, out: &mut Output);

    /// The source ended: emit whatever state is still pending (and unmapped-field counts).
    fn finish(&mut self, _out: &mut Output) {}
}

/// A provider format: one entry of the registry.
#[derive(Debug)]
pub struct Format {
    /// Name used by `--format` and in the `format` column (kebab-case, `<provider>-<kind>`).
    pub name: &'static str,
    /// Provider of the rows it produces.
    pub provider: Provider,
    /// Tables it writes to.
    pub tables: &'static [Table],
    /// How its records are framed.
    pub framing: Framing,
    /// One-line description for `ztlake formats`.
    pub description: &'static str,
    /// A short example record.
    pub example: &'static str,
    /// Confidence (0–100) that a record is in this format; must be cheap, it runs per record
    /// in `--format auto`.
    pub sniff: fn(&[u8]) -> u8,
    /// A new parser for one source.
    pub new_parser: fn(&ParseOptions) -> Result<Box<dyn Parser>>,
}

/// Below this confidence a sniff does not claim a record.
pub const SNIFF_THRESHOLD: u8 = 50;

/// Look a format up by name.
pub fn format_by_name(name: &str) -> Result<&'static Format> {
    crate::providers::FORMATS
        .iter()
        .find(|f| f.name == name)
        .copied()
        .ok_or_else(|| Error::UnknownFormat(name.to_owned()))
}

/// The registered format that claims `record` with the highest confidence.
pub fn detect(record: &[u8]) -> Option<&'static Format> {
    let mut best: Option<(&'static Format, u8)> = None;
    for &format in crate::providers::FORMATS {
        let score = (format.sniff)(record);
        if score >= SNIFF_THRESHOLD && best.is_none_or(|(_, s)| score > s) {
            best = Some((format, score));
        }
    }
    best.map(|(f, _)| f)
}

/// Whether content starting with `head` is JSON: the first non-blank byte opens an object, or
/// opens an array whose first element looks like JSON (so Istio's `[2024-05-01T…] "GET …` text
/// lines are not mistaken for arrays).
pub fn is_json_content(head: &[u8]) -> bool {
    let mut bytes = head.iter().copied().skip_while(u8::is_ascii_whitespace);
    match bytes.next() {
        Some(b'{') => true,
        Some(b'[') => {
            let rest: Vec<u8> = bytes.skip_while(u8::is_ascii_whitespace).take(5).collect();
            match rest.first() {
                Some(b'{' | b'[' | b'"' | b']' | b't' | b'f' | b'n' | b'-') => true,
                // `[2024-…` is a timestamp, `[2024,…` or `[7]` an array of numbers.
                Some(d) if d.is_ascii_digit() => {
                    !(rest.len() == 5
                        && rest[..4].iter().all(u8::is_ascii_digit)
                        && rest[4] == b'-')
                }
                _ => false,
            }
        }
        _ => false,
    }
}

/// The framing to use for an input whose content starts with `head`:
/// - JSON whose first line is a complete value (NDJSON, single-line documents such as
///   CloudTrail files) is framed by lines, so a truncated line cannot swallow the lines after
///   it (use the JSON size limit for those lines: see [`is_json_content`]);
/// - JSON documents spanning several lines (pretty-printed blobs) are framed by JSON values;
/// - everything else by lines.
pub fn sniff_framing(head: &[u8]) -> Framing {
    if !is_json_content(head) {
        return Framing::Lines;
    }
    let start = head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
    let first_line = head[start..].split(|&b| b == b'\n').next().unwrap_or_default();
    if first_line.len() + start >= head.len() {
        // The first line does not end within the sample: a long single-line document.
        return Framing::Lines;
    }
    if balanced(first_line) { Framing::Lines } else { Framing::Json }
}

/// Whether a line of JSON closes every object and array it opens (strings and escapes honoured).
fn balanced(line: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0i64, false, false);
    for &b in line {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    depth == 0 && !in_string
}

/// Build the parser for `--format NAME` (`auto` detects per record).
pub fn parser_for(name: &str, options: &ParseOptions) -> Result<Box<dyn Parser>> {
    if name == "auto" {
        // Validate format-specific options up front so a bad option fails before any input.
        for format in crate::providers::FORMATS {
            (format.new_parser)(options)?;
        }
        return Ok(Box::new(AutoParser::new(options.clone())));
    }
    let format = format_by_name(name)?;
    Ok(Box::new(Single { format, inner: (format.new_parser)(options)? }))
}

/// A parser for one named format: sets the output's format, then delegates.
struct Single {
    format: &'static Format,
    inner: Box<dyn Parser>,
}

impl Parser for Single {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        out.set_format(self.format.name, self.format.provider);
        self.inner.parse(record, out);
    }

    fn finish(&mut self, out: &mut Output) {
        out.set_format(self.format.name, self.format.provider);
        self.inner.finish(out);
    }
}

/// `--format auto`: detects the format of every record (sticking to the previous record's
/// format while it still claims the record, so a homogeneous stream costs one sniff per record)
/// and keeps one parser per format seen in the source, so stateful formats keep their state.
pub struct AutoParser {
    options: ParseOptions,
    parsers: Vec<(&'static Format, Box<dyn Parser>)>,
    last: Option<usize>,
}

impl AutoParser {
    /// A detecting parser with `options` for the parsers it creates.
    pub fn new(options: ParseOptions) -> Self {
        Self { options, parsers: Vec::new(), last: None }
    }

    fn parser_index(&mut self, format: &'static Format) -> Option<usize> {
        if let Some(i) = self.parsers.iter().position(|(f, _)| std::ptr::eq(*f, format)) {
            return Some(i);
        }
        // Options were validated in `parser_for`; a failure here is reported as quarantine.
        let parser = (format.new_parser)(&self.options).ok()?;
        self.parsers.push((format, parser));
        Some(self.parsers.len() - 1)
    }
}

impl Parser for AutoParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let sticky = self.last.filter(|&i| {
            self.parsers.get(i).is_some_and(|(f, _)| (f.sniff)(record.bytes) >= SNIFF_THRESHOLD)
        });
        let index = match sticky {
            Some(i) => Some(i),
            None => detect(record.bytes).and_then(|f| self.parser_index(f)),
        };
        match index.and_then(|i| self.parsers.get_mut(i).map(|p| (i, p))) {
            Some((i, (format, parser))) => {
                self.last = Some(i);
                out.set_format(format.name, format.provider);
                parser.parse(record, out);
            }
            None => {
                out.set_format("", Provider::Unknown);
                if std::str::from_utf8(record.bytes).is_err() {
                    out.quarantine(
                        record,
                        Reason::InvalidUtf8,
                        "record is not valid UTF-8 and no format recognizes it",
                    );
                } else {
                    out.quarantine(
                        record,
                        Reason::UnknownFormat,
                        "no registered format recognizes this record",
                    );
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Output) {
        for (format, parser) in &mut self.parsers {
            out.set_format(format.name, format.provider);
            parser.finish(out);
        }
    }
}

#[cfg(test)]
mod framing_tests {
    use super::*;

    #[test]
    fn framing_follows_the_content() {
        assert_eq!(sniff_framing(b"2 123 eni-1 10.0.0.1"), Framing::Lines);
        assert_eq!(
            sniff_framing(b"[2022-07-20T09:52:24.955Z] \"GET / HTTP/1.1\" 200\n"),
            Framing::Lines
        );
        assert!(!is_json_content(b"[2022-07-20T09:52:24.955Z] \"GET"));
        assert!(is_json_content(b"[{\"a\":1}]"));
        assert!(is_json_content(b"  [ 2024, 5 ]"));
        assert_eq!(sniff_framing(b"{\"a\":1}\n{\"b\":2}\n"), Framing::Lines, "NDJSON");
        assert_eq!(
            sniff_framing(b"{\"a\":\"}{\"}\n{\"b\":2}\n"),
            Framing::Lines,
            "braces in strings"
        );
        assert_eq!(sniff_framing(b"{\n  \"records\": [\n"), Framing::Json, "pretty-printed");
        assert_eq!(sniff_framing(b"[\n {\"a\":1}\n]\n"), Framing::Json);
        assert_eq!(sniff_framing(b"{\"Records\":[{\"a\":1}"), Framing::Lines, "one long line");
    }
}
