//! `json-message`: a raw log line forwarded by a shipper as a JSON object whose `message`
//! field holds the line (`{"message": "2 123456789010 eni-… NODATA"}`, as Filebeat, Fluent Bit
//! or Vector forward lines they did not parse).
//!
//! The inner line is detected among the registered formats (wrappers excluded, so nesting is
//! bounded) and parsed by that format's parser, kept for the whole source so header-driven
//! formats keep their layout; its rows carry the inner format and provider. Other fields of the
//! wrapper (`@timestamp`, `host`…) are not read. Quirks handled: the message may use JSON
//! escapes (decoded before detection); an empty or non-string `message` is quarantined
//! (`missing_field`); an inner line no format recognizes is quarantined (`unknown_format`)
//! under this format's name.
//!
//! The sniff is deliberately narrow: a JSON object with a top-level string `message` and none of
//! the distinctive keys of other JSON formats (CloudTrail, EventBridge, CloudWatch Logs, Azure
//! records, GCP LogEntry, Okta, Kubernetes audit…).

use std::borrow::Cow;

use serde::Deserialize;

use super::Delegate;
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json;
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::schema::{Provider, Table};

/// Format name.
pub const NAME: &str = "json-message";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Unknown,
    tables: &[Table::Flows, Table::Signins, Table::CertEvents],
    framing: Framing::Json,
    description: "A raw line forwarded by a shipper as {\"message\": \"...\"}: the inner line is detected and parsed by its own format",
    example: r#"{"message":"2 428961148399 eni-0e0bf7be352692297 - - - - - - - 1671029698 1671029728 - NODATA"}"#,
    sniff,
    new_parser,
};

/// Wrapper formats an inner record is never handed to (bounds nesting).
pub(crate) const ENVELOPES: &[&str] = &[NAME, crate::providers::aws::cloudwatch::NAME];

/// Top-level keys that mark another JSON format: a record carrying one is not a plain wrapper.
const FOREIGN_KEYS: &[&[u8]] = &[
    b"Records",
    b"records",
    b"logEvents",
    b"messageType",
    b"detail-type",
    b"eventSource",
    b"eventVersion",
    b"protoPayload",
    b"jsonPayload",
    b"logName",
    b"eventType",
    b"published",
    b"apiVersion",
    b"kind",
    b"properties",
    b"operationName",
    b"category",
    b"specversion",
    b"flowLogVersion",
];

fn sniff(record: &[u8]) -> u8 {
    if !crate::providers::aws::common::is_json_object(record) {
        return 0;
    }
    let head = json::head(record, 2048);
    let mut message = false;
    let mut first = true;
    let mut message_first = false;
    let mut foreign = false;
    crate::providers::aws::common::top_level_keys(head, |key, is_string| {
        if key == b"message" && is_string {
            message = true;
            message_first = first;
        }
        if FOREIGN_KEYS.contains(&key) {
            foreign = true;
            return false;
        }
        first = false;
        true
    });
    match (message, foreign, message_first) {
        (true, false, true) => 60,
        (true, false, false) => 55,
        _ => 0,
    }
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(MessageParser {
        delegate: Delegate::new(options, ENVELOPES),
        options: options.clone(),
    }))
}

#[derive(Deserialize)]
struct Wrapper<'a> {
    #[serde(borrow, default, deserialize_with = "json::de::text")]
    message: Option<Cow<'a, str>>,
}

/// Parser state for one source: the inner formats' parsers.
struct MessageParser {
    delegate: Delegate,
    options: ParseOptions,
}

impl Parser for MessageParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        out.set_format(NAME, Provider::Unknown);
        let wrapper: Wrapper<'_> = match json::decode(record.bytes, &self.options) {
            Ok(w) => w,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        let Some(message) = wrapper.message.filter(|m| !m.trim().is_empty()) else {
            return out.quarantine(record, Reason::MissingField, "message: absent or empty");
        };
        let inner =
            Record { line: record.line, bytes: message.trim_end_matches(['\r', '\n']).as_bytes() };
        if !self.delegate.parse(&inner, out) {
            out.set_format(NAME, Provider::Unknown);
            out.quarantine(
                record,
                Reason::UnknownFormat,
                "message: no registered format recognizes the inner line",
            );
        }
    }

    fn finish(&mut self, out: &mut Output) {
        self.delegate.finish(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SNIFF_THRESHOLD;

    #[test]
    fn sniff_claims_plain_wrappers_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= SNIFF_THRESHOLD);
        assert!(sniff(br#"{"@timestamp":"x","message":"a b c d"}"#) >= SNIFF_THRESHOLD);
        for other in [
            &br#"{"message":{"nested":1}}"#[..],
            br#"{"protoPayload":{"status":{"message":"OK"}}}"#,
            br#"{"messageType":"DATA_MESSAGE","logEvents":[{"message":"x"}]}"#,
            br#"{"a":{"message":"x"}}"#,
            br#"{"eventSource":"signin.amazonaws.com","message":"x"}"#,
            b"2 123 eni-1 - - - - - - - 1 2 - NODATA",
            b"[{\"message\":\"x\"}]",
        ] {
            assert_eq!(sniff(other), 0, "{}", String::from_utf8_lossy(other));
        }
    }
}
