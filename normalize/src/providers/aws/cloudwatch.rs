//! CloudWatch Logs subscription messages, `aws-cloudwatch-logs`: the envelope a subscription
//! filter delivers to Lambda, Kinesis or Firehose (`{"messageType":"DATA_MESSAGE","owner",
//! "logGroup","logStream","subscriptionFilters","logEvents":[{"id","timestamp","message"}]}`;
//! gzip as Firehose delivers it is undone by ingest).
//!
//! Each `logEvents[].message` is handed to the format that claims it, and its rows carry that
//! format: VPC flow log lines go to `aws-vpcflow` with the event `timestamp` (epoch
//! milliseconds) as the time of layouts without `start`/`end` and the envelope `owner` as the
//! account of layouts without `account-id`; Transit Gateway lines go to `aws-tgwflow` (owner as
//! account likewise); anything else (CloudTrail events sent to CloudWatch Logs, …) is detected
//! among the registered formats. VPC flow logs in CloudWatch have no header line, so custom
//! formats need `--vpc-fields`; without it, a line whose field count matches no known layout is
//! quarantined (`field_count`) with a detail saying so.
//!
//! With `--vpc-fields` set, a message no format claims (layouts of three fields or fewer are too
//! short to sniff) is read as a VPC flow log line with that layout.
//!
//! A record may hold several envelopes back to back (`{…}{…}`, no separator): that is what a
//! Firehose-delivered S3 object looks like once its concatenated gzip members are decompressed.
//! Each envelope is handled in turn; an undecodable one quarantines the rest of the record.
//!
//! `CONTROL_MESSAGE` envelopes (CloudWatch's delivery health checks) are skipped. A log event
//! that is not an object or has no message is quarantined on its own (its bytes, the
//! envelope's line); the other events of the envelope are kept.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::tgwflow::TgwFlowParser;
use super::vpcflow::VpcFlowParser;
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json::{self, de};
use crate::output::{Output, Record};
use crate::providers::generic::Delegate;
use crate::providers::generic::message::ENVELOPES;
use crate::quarantine::Reason;
use crate::schema::{Provider, Table};
use crate::values::checked_micros;

/// Format name.
pub const NAME: &str = "aws-cloudwatch-logs";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Aws,
    tables: &[Table::Flows, Table::Signins, Table::CertEvents],
    framing: Framing::Json,
    description: "CloudWatch Logs subscription envelopes (DATA_MESSAGE logEvents): each message is parsed by its own format (VPC / Transit Gateway flow logs, CloudTrail…)",
    example: r#"{"messageType":"DATA_MESSAGE","owner":"123456789010","logGroup":"/aws/vpc/flowlogs","logStream":"eni-1235b8ca123456789","subscriptionFilters":["MyFlowLogSubscription"],"logEvents":[{"id":"eventId1","timestamp":1418530010000,"message":"2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK"}]}"#,
    sniff,
    new_parser,
};

fn sniff(record: &[u8]) -> u8 {
    if !super::common::is_json_object(record) {
        return 0;
    }
    let h = json::head(record, 2048);
    if json::contains(h, b"\"messageType\"") && json::contains(h, b"\"logEvents\"") {
        95
    } else {
        0
    }
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(CloudWatchParser {
        vpc: VpcFlowParser::new(options)?,
        tgw: TgwFlowParser::new(options)?,
        delegate: Delegate::new(options, ENVELOPES),
        options: options.clone(),
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Envelope<'a> {
    #[serde(rename = "messageType", borrow, deserialize_with = "de::text")]
    message_type: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "de::text")]
    owner: Option<Cow<'a, str>>,
    #[serde(rename = "logEvents", borrow)]
    log_events: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LogEvent<'a> {
    #[serde(deserialize_with = "de::int")]
    timestamp: Option<i64>,
    #[serde(borrow, deserialize_with = "de::text")]
    message: Option<Cow<'a, str>>,
}

/// Parser state for one source: the inner parsers (their layouts and counts live per source).
struct CloudWatchParser {
    vpc: VpcFlowParser,
    tgw: TgwFlowParser,
    delegate: Delegate,
    options: ParseOptions,
}

impl CloudWatchParser {
    fn quarantine(record: &Record<'_>, reason: Reason, detail: &str, out: &mut Output) {
        out.set_format(NAME, Provider::Aws);
        out.quarantine(record, reason, detail);
    }

    fn message(
        &mut self,
        record: &Record<'_>,
        i: usize,
        raw: &RawValue,
        owner: Option<&str>,
        out: &mut Output,
    ) {
        let element = Record { line: record.line, bytes: raw.get().as_bytes() };
        let event: LogEvent<'_> = match serde_json::from_str(raw.get()) {
            Ok(e) => e,
            Err(e) => {
                return Self::quarantine(
                    &element,
                    Reason::BadJson,
                    &format!("logEvents[{i}]: {e}"),
                    out,
                );
            }
        };
        let Some(message) = event
            .message
            .as_deref()
            .map(|m| m.trim_end_matches(['\r', '\n']))
            .filter(|m| !m.trim().is_empty())
        else {
            return Self::quarantine(
                &element,
                Reason::MissingField,
                &format!("logEvents[{i}].message: absent or empty"),
                out,
            );
        };
        let timestamp = event.timestamp.and_then(|ms| checked_micros(ms.checked_mul(1_000)?));
        let inner = Record { line: record.line, bytes: message.as_bytes() };
        match self.delegate.detect(inner.bytes).map(|f| f.name) {
            Some(super::vpcflow::NAME) => {
                out.set_format(super::vpcflow::NAME, Provider::Aws);
                self.vpc.parse_line_in(&inner, timestamp, owner, out);
            }
            Some(super::tgwflow::NAME) => {
                out.set_format(super::tgwflow::NAME, Provider::Aws);
                self.tgw.parse_line_in(&inner, owner, out);
            }
            Some(_) => {
                self.delegate.parse(&inner, out);
            }
            // The user declared a VPC layout (`--vpc-fields`): a line nothing else claims (a
            // layout of three fields or fewer is too short to sniff) is read with it.
            None if self.options.vpc_fields.is_some() => {
                out.set_format(super::vpcflow::NAME, Provider::Aws);
                self.vpc.parse_line_in(&inner, timestamp, owner, out);
            }
            None => Self::quarantine(
                &element,
                Reason::UnknownFormat,
                &format!("logEvents[{i}].message: no registered format recognizes it"),
                out,
            ),
        }
    }
}

impl Parser for CloudWatchParser {
    /// A record may hold several envelopes back to back (`{…}{…}`): Firehose concatenates
    /// the gzip members of its records, so a decompressed S3 object is one line of envelopes.
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        if let Err((reason, detail)) = json::check_caps(record.bytes, &self.options) {
            return Self::quarantine(record, reason, &detail, out);
        }
        let mut stream =
            serde_json::Deserializer::from_slice(record.bytes).into_iter::<Envelope<'_>>();
        let mut seen = 0usize;
        loop {
            match stream.next() {
                None if seen == 0 => {
                    return Self::quarantine(record, Reason::BadJson, "no JSON value", out);
                }
                None => return,
                Some(Ok(envelope)) => self.envelope(record, envelope, out),
                Some(Err(e)) => {
                    let reason = if std::str::from_utf8(record.bytes).is_err() {
                        Reason::InvalidUtf8
                    } else {
                        Reason::BadJson
                    };
                    let detail = if seen == 0 {
                        e.to_string()
                    } else {
                        format!("envelope {}: {e}", seen + 1)
                    };
                    return Self::quarantine(record, reason, &detail, out);
                }
            }
            seen += 1;
        }
    }

    fn finish(&mut self, out: &mut Output) {
        out.set_format(super::vpcflow::NAME, Provider::Aws);
        self.vpc.finish(out);
        out.set_format(super::tgwflow::NAME, Provider::Aws);
        self.tgw.finish(out);
        self.delegate.finish(out);
    }
}

impl CloudWatchParser {
    /// One subscription envelope.
    fn envelope(&mut self, record: &Record<'_>, envelope: Envelope<'_>, out: &mut Output) {
        match envelope.message_type.as_deref() {
            Some("DATA_MESSAGE") => {}
            Some("CONTROL_MESSAGE") => return out.skip("aws-cloudwatch-logs: control message"),
            Some(other) => {
                let shown: String = other.chars().take(64).collect();
                return Self::quarantine(
                    record,
                    Reason::BadField,
                    &format!("messageType: unknown value {shown:?}"),
                    out,
                );
            }
            None => {
                return Self::quarantine(record, Reason::MissingField, "messageType: absent", out);
            }
        }
        let events = envelope.log_events.unwrap_or_default();
        if events.is_empty() {
            return out.skip("aws-cloudwatch-logs: no log events");
        }
        let owner = envelope.owner.as_deref().filter(|o| !o.is_empty());
        for (i, raw) in events.iter().enumerate() {
            self.message(record, i, raw, owner, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SNIFF_THRESHOLD;

    #[test]
    fn owner_and_event_time_fill_layouts_without_them() {
        use crate::output::SourceInfo;
        use arrow::array::AsArray;
        use arrow::datatypes::TimestampMicrosecondType;
        let options = ParseOptions {
            vpc_fields: Some("interface-id srcaddr dstaddr".into()),
            ..ParseOptions::default()
        };
        let mut parser = new_parser(&options).expect("parser");
        let mut out = Output::new(4, 0);
        out.begin_source(SourceInfo::lines("k", "cw.json"), [0; 4]);
        let record = r#"{"messageType":"DATA_MESSAGE","owner":"111122223333","logEvents":[{"id":"1","timestamp":1700000000123,"message":"eni-1 10.0.0.1 10.0.0.2"}]}"#;
        out.begin_record();
        parser.parse(&Record { line: 1, bytes: record.as_bytes() }, &mut out);
        out.end_record();
        let batches = out.take_batches(0);
        let (table, flows) = &batches[0];
        assert_eq!(*table, Table::Flows);
        let account = flows.column_by_name("account").expect("account").as_string::<i32>();
        assert_eq!(account.value(0), "111122223333");
        let time =
            flows.column_by_name("time").expect("time").as_primitive::<TimestampMicrosecondType>();
        assert_eq!(time.value(0), 1_700_000_000_123_000);
        let format = flows.column_by_name("format").expect("format").as_string::<i32>();
        assert_eq!(format.value(0), "aws-vpcflow");
    }

    #[test]
    fn concatenated_envelopes_are_all_read() {
        use crate::output::SourceInfo;
        let mut parser = new_parser(&ParseOptions::default()).expect("parser");
        let mut out = Output::new(4, 0);
        out.begin_source(SourceInfo::lines("k", "firehose"), [0; 4]);
        let one = FORMAT.example;
        let record =
            format!("{one}{one}  {one}{{\"messageType\":\"CONTROL_MESSAGE\",\"logEvents\":[]}}{{");
        out.begin_record();
        parser.parse(&Record { line: 1, bytes: record.as_bytes() }, &mut out);
        out.end_record();
        assert_eq!(out.counts().rows_in(Table::Flows), 3);
        assert_eq!(out.counts().skipped.get("aws-cloudwatch-logs: control message"), Some(&1));
        assert_eq!(out.counts().quarantined.get("bad_json"), Some(&1), "the truncated tail");
    }

    #[test]
    fn sniff_claims_subscription_envelopes_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= SNIFF_THRESHOLD);
        assert_eq!(sniff(br#"{"message":"2 1 eni-1 - - - - - - - 1 2 - NODATA"}"#), 0);
        assert_eq!(sniff(br#"{"Records":[{"eventVersion":"1.05"}]}"#), 0);
        assert_eq!(sniff(b"messageType logEvents"), 0);
    }
}
