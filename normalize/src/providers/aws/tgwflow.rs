//! AWS Transit Gateway flow logs (text), `aws-tgwflow`: one `flows` row per line.
//!
//! Like VPC flow logs the format is not self-describing. The layout comes from, in order: the
//! S3 header line (it may repeat mid-stream), `--vpc-fields` when it names `tgw-*` fields, and
//! otherwise the default format, which for Transit Gateway is every field (36, "version 6";
//! Elastic's 36-field samples say version 3 — the version is the highest version of any
//! selected field, not a layout id). A header-less line of another length is quarantined
//! (`field_count`) with a hint to set the layout.
//!
//! Quirks handled: `-` is NULL (numbers too); runs of spaces; NODATA / SKIPDATA rows are kept
//! with `status` (Elastic's generated samples even give them counters); ICMP rows get NULL
//! ports; IPv6 unbracketed; epoch-second `start`/`end`. There is no `action` field: a Transit
//! Gateway does not accept or reject, so `action` is NULL.
//!
//! Mapping decisions: `resource` is the attachment that reported the flow
//! (`tgw-attachment-id`); `direction` is `flow-direction` relative to that attachment
//! (`ingress` = into the transit gateway from the attachment = inbound). `vpc` and `subnet`
//! describe the same attachment's side: `tgw-src-vpc-id`/`tgw-src-subnet-id` for ingress,
//! `tgw-dst-*` for egress (src when the direction is unknown); the other side is counted as
//! unmapped, like `tgw-id`, the ENIs, AZs, accounts, the pair attachment, `type`,
//! `resource-type` and the four `packets-lost-*` counters (counted only where set).

use std::borrow::Cow;

use crate::format::{Error, Format, Framing, ParseOptions, Parser, Result};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::FlowRow;
use crate::schema::{Provider, Table};
use crate::values::{
    canonical_ip, micros_from_secs, parse_count, parse_port, parse_protocol, parse_u64,
};

use super::common::{flow_line_spaces, mentions_tgw};

/// Format name.
pub const NAME: &str = "aws-tgwflow";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Aws,
    tables: &[Table::Flows],
    framing: Framing::Lines,
    description: "AWS Transit Gateway flow logs, text: default 36-field format, S3 header line or --vpc-fields naming tgw-* fields",
    example: "6 TransitGateway 123456789012 tgw-0abc12345def67890 tgw-attach-0abc12345def67890 123456789012 123456789012 vpc-0abc12345def67890 vpc-0def12345abc67890 subnet-0abc12345def67890 subnet-0def12345abc67890 eni-0abc12345def67890 eni-0def12345abc67890 use1-az1 use1-az2 tgw-attach-0def12345abc67890 10.0.0.1 10.0.1.1 12345 443 6 10 1000 1700000000 1700000060 OK IPv4 0 0 0 0 2 us-east-1 ingress - -",
    sniff,
    new_parser,
};

/// The default Transit Gateway format: every field, in AWS's order.
const DEFAULT: &str = "version resource-type account-id tgw-id tgw-attachment-id tgw-src-vpc-account-id tgw-dst-vpc-account-id tgw-src-vpc-id tgw-dst-vpc-id tgw-src-subnet-id tgw-dst-subnet-id tgw-src-eni tgw-dst-eni tgw-src-az-id tgw-dst-az-id tgw-pair-attachment-id srcaddr dstaddr srcport dstport protocol packets bytes start end log-status type packets-lost-no-route packets-lost-blackhole packets-lost-mtu-exceeded packets-lost-ttl-expired tcp-flags region flow-direction pkt-src-aws-service pkt-dst-aws-service";

/// Most fields a line may have.
const MAX_FIELDS: usize = 64;

/// Canonical targets of Transit Gateway fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum Slot {
    Account,
    Attachment,
    SrcVpc,
    DstVpc,
    SrcSubnet,
    DstSubnet,
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    LogStatus,
    TcpFlags,
    Region,
    FlowDirection,
    PktSrcService,
    PktDstService,
}

const SLOTS: usize = Slot::PktDstService as usize + 1;
const ABSENT: u8 = u8::MAX;

fn slot_of(name: &str) -> Option<Slot> {
    Some(match name {
        "account-id" => Slot::Account,
        "tgw-attachment-id" => Slot::Attachment,
        "tgw-src-vpc-id" => Slot::SrcVpc,
        "tgw-dst-vpc-id" => Slot::DstVpc,
        "tgw-src-subnet-id" => Slot::SrcSubnet,
        "tgw-dst-subnet-id" => Slot::DstSubnet,
        "srcaddr" => Slot::SrcAddr,
        "dstaddr" => Slot::DstAddr,
        "srcport" => Slot::SrcPort,
        "dstport" => Slot::DstPort,
        "protocol" => Slot::Protocol,
        "packets" => Slot::Packets,
        "bytes" => Slot::Bytes,
        "start" => Slot::Start,
        "end" => Slot::End,
        "log-status" => Slot::LogStatus,
        "tcp-flags" => Slot::TcpFlags,
        "region" => Slot::Region,
        "flow-direction" => Slot::FlowDirection,
        "pkt-src-aws-service" => Slot::PktSrcService,
        "pkt-dst-aws-service" => Slot::PktDstService,
        _ => return None,
    })
}

/// Documented Transit Gateway field names that map to no column.
const UNMAPPED: &[&str] = &[
    "resource-type",
    "tgw-id",
    "tgw-src-vpc-account-id",
    "tgw-dst-vpc-account-id",
    "tgw-src-eni",
    "tgw-dst-eni",
    "tgw-src-az-id",
    "tgw-dst-az-id",
    "tgw-pair-attachment-id",
    "type",
    "packets-lost-no-route",
    "packets-lost-blackhole",
    "packets-lost-mtu-exceeded",
    "packets-lost-ttl-expired",
];

/// `${tgw-id}`, `tgw_id`, `TGW-ID` → `tgw-id`.
fn normalize_name(token: &str) -> String {
    let t = token.strip_prefix("${").and_then(|t| t.strip_suffix('}')).unwrap_or(token);
    t.to_ascii_lowercase().replace('_', "-")
}

fn looks_like_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn known(name: &str) -> bool {
    name == "version" || slot_of(name).is_some() || UNMAPPED.contains(&name)
}

/// A field layout and the unmapped-field counts of the rows parsed with it.
#[derive(Debug, Clone)]
struct Layout {
    len: usize,
    slots: [u8; SLOTS],
    /// (position, name, rows carrying a value) of fields that map to no column.
    unmapped: Vec<(u8, String, u64)>,
    /// Rows whose other-side VPC / subnet went unmapped, by field.
    other_side: [u64; 4],
}

impl Layout {
    fn from_names<'n>(names: impl IntoIterator<Item = &'n str>) -> Result<Layout, String> {
        let mut slots = [ABSENT; SLOTS];
        let mut unmapped = Vec::new();
        let mut len = 0usize;
        let mut seen: Vec<String> = Vec::new();
        for token in names {
            let name = normalize_name(token);
            if seen.contains(&name) {
                return Err(format!("field {name} appears twice"));
            }
            seen.push(name.clone());
            if !looks_like_name(&name) {
                return Err(format!("{token:?} is not a field name"));
            }
            if len >= MAX_FIELDS {
                return Err(format!("more than {MAX_FIELDS} fields"));
            }
            match slot_of(&name) {
                Some(slot) => {
                    if slots[slot as usize] != ABSENT {
                        return Err(format!("field {name} appears twice"));
                    }
                    slots[slot as usize] = len as u8;
                }
                None if name == "version" => {}
                None => unmapped.push((len as u8, name, 0)),
            }
            len += 1;
        }
        if len == 0 {
            return Err("no fields".to_owned());
        }
        Ok(Layout { len, slots, unmapped, other_side: [0; 4] })
    }

    fn report_unmapped(&mut self, out: &mut Output) {
        for (_, name, rows) in &mut self.unmapped {
            out.note_unmapped(NAME, name, *rows);
            *rows = 0;
        }
        let names = ["tgw-src-vpc-id", "tgw-dst-vpc-id", "tgw-src-subnet-id", "tgw-dst-subnet-id"];
        for (name, rows) in names.iter().zip(&mut self.other_side) {
            out.note_unmapped(NAME, name, *rows);
            *rows = 0;
        }
    }
}

/// A header: every token a field name, at least one `tgw-` field, most of them known.
fn header_layout(tokens: &[&str]) -> Option<Layout> {
    let mut known_count = 0;
    let mut tgw = false;
    for t in tokens {
        let name = normalize_name(t);
        if !looks_like_name(&name) {
            return None;
        }
        tgw |= name.starts_with("tgw-");
        if known(&name) {
            known_count += 1;
        }
    }
    if !tgw || known_count * 2 < tokens.len() {
        return None;
    }
    Layout::from_names(tokens.iter().copied()).ok()
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(TgwFlowParser::new(options)?))
}

/// Parser state for one source.
#[derive(Debug)]
pub struct TgwFlowParser {
    configured: Option<Layout>,
    header: Option<Layout>,
    default: Option<Layout>,
    scratch: [String; 2],
}

impl TgwFlowParser {
    /// A parser; `options.vpc_fields` is used (and validated) when it names a `tgw-` field.
    pub fn new(options: &ParseOptions) -> Result<Self> {
        let configured = match &options.vpc_fields {
            Some(spec) if spec.contains("tgw-") || spec.contains("tgw_") => Some(
                Layout::from_names(
                    spec.split(|c: char| c.is_whitespace() || c == ',').filter(|t| !t.is_empty()),
                )
                .map_err(|reason| Error::InvalidOption { option: "--vpc-fields", reason })?,
            ),
            _ => None,
        };
        Ok(Self { configured, header: None, default: None, scratch: Default::default() })
    }

    fn layout(&mut self) -> &mut Layout {
        if let Some(h) = self.header.as_mut() {
            return h;
        }
        if let Some(c) = self.configured.as_mut() {
            return c;
        }
        self.default.get_or_insert_with(|| {
            Layout::from_names(DEFAULT.split(' '))
                .unwrap_or_else(|e| unreachable!("built-in layout is invalid: {e}"))
        })
    }

    /// Parse one line; `fallback_account` (CloudWatch Logs `owner`) fills `account` when the
    /// layout has no `account-id`.
    pub fn parse_line_in(
        &mut self,
        record: &Record<'_>,
        fallback_account: Option<&str>,
        out: &mut Output,
    ) {
        let Ok(text) = std::str::from_utf8(record.bytes) else {
            return out.quarantine(record, Reason::InvalidUtf8, "flow log line is not valid UTF-8");
        };
        let mut tokens: [&str; MAX_FIELDS] = [""; MAX_FIELDS];
        let mut count = 0usize;
        for token in text.split(' ').filter(|t| !t.is_empty()) {
            if count == MAX_FIELDS {
                return out.quarantine(record, Reason::FieldCount, "more than 64 fields");
            }
            tokens[count] = token;
            count += 1;
        }
        let tokens = &tokens[..count];
        if count == 0 {
            return out.skip("aws-tgwflow: blank line");
        }
        if let Some(layout) = header_layout(tokens) {
            if let Some(mut old) = self.header.replace(layout) {
                old.report_unmapped(out);
            }
            return out.skip("aws-tgwflow: header line");
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let layout = self.layout();
        match fill_row(layout, tokens, &mut scratch) {
            Ok(mut row) => {
                if row.account.is_none() {
                    row.account = fallback_account.map(Cow::Borrowed);
                }
                out.flow(record, &row);
            }
            Err((reason, detail)) => out.quarantine(record, reason, &detail),
        }
        self.scratch = scratch;
    }
}

impl Parser for TgwFlowParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        self.parse_line_in(record, None, out);
    }

    fn finish(&mut self, out: &mut Output) {
        for layout in
            [&mut self.header, &mut self.configured, &mut self.default].into_iter().flatten()
        {
            layout.report_unmapped(out);
        }
    }
}

type Rejection = (Reason, String);

fn bad(field: &str, value: &str) -> Rejection {
    let shown: String = value.chars().take(64).collect();
    (Reason::BadField, format!("{field}: invalid value {shown:?}"))
}

fn fill_row<'a>(
    layout: &mut Layout,
    tokens: &[&'a str],
    scratch: &'a mut [String; 2],
) -> Result<FlowRow<'a>, Rejection> {
    if tokens.len() != layout.len {
        return Err((
            Reason::FieldCount,
            format!(
                "{} fields, layout has {} (set the layout with a header line or --vpc-fields)",
                tokens.len(),
                layout.len
            ),
        ));
    }
    let slots = layout.slots;
    let get = |slot: Slot| -> Option<&'a str> {
        let i = slots[slot as usize];
        if i == ABSENT {
            return None;
        }
        tokens.get(usize::from(i)).copied().filter(|v| *v != "-")
    };
    let text = |slot: Slot| get(slot).map(Cow::Borrowed);

    let [s0, s1] = scratch;
    let ip =
        |slot: Slot, name: &str, buf: &'a mut String| -> Result<Option<Cow<'a, str>>, Rejection> {
            match get(slot) {
                None => Ok(None),
                Some(v) => {
                    canonical_ip(v, buf).map(|s| Some(Cow::Borrowed(s))).ok_or_else(|| bad(name, v))
                }
            }
        };
    let src_ip = ip(Slot::SrcAddr, "srcaddr", s0)?;
    let dst_ip = ip(Slot::DstAddr, "dstaddr", s1)?;
    let num = |slot: Slot,
               name: &str,
               parse: fn(&[u8]) -> Option<i64>|
     -> Result<Option<i64>, Rejection> {
        match get(slot) {
            None => Ok(None),
            Some(v) => parse(v.as_bytes()).map(Some).ok_or_else(|| bad(name, v)),
        }
    };
    let protocol =
        num(Slot::Protocol, "protocol", |b| parse_protocol(b).map(i64::from))?.map(|v| v as i32);
    let icmp = matches!(protocol, Some(1) | Some(58));
    let port_of = |slot: Slot, name: &str| -> Result<Option<i32>, Rejection> {
        let p = num(slot, name, |b| parse_port(b).map(i64::from))?.map(|v| v as i32);
        Ok(if icmp && p == Some(0) { None } else { p })
    };
    let src_port = port_of(Slot::SrcPort, "srcport")?;
    let dst_port = port_of(Slot::DstPort, "dstport")?;
    let secs = |slot: Slot, name: &str| -> Result<Option<i64>, Rejection> {
        match get(slot) {
            None => Ok(None),
            Some(v) => {
                parse_u64(v.as_bytes()).and_then(micros_from_secs).map(Some).ok_or_else(|| {
                    (Reason::BadTime, format!("{name}: {v:?} is not epoch seconds in range"))
                })
            }
        }
    };
    let start = secs(Slot::Start, "start")?;
    let end = secs(Slot::End, "end")?;
    let Some(time) = start.or(end) else {
        return Err((Reason::MissingField, "start: no start or end time".to_owned()));
    };
    let status = match get(Slot::LogStatus) {
        None => None,
        Some("OK") => Some(Cow::Borrowed("ok")),
        Some("NODATA") => Some(Cow::Borrowed("nodata")),
        Some("SKIPDATA") => Some(Cow::Borrowed("skipdata")),
        Some(v) => return Err(bad("log-status", v)),
    };
    let (direction, egress) = match get(Slot::FlowDirection) {
        None => (None, false),
        Some("ingress") => (Some(Cow::Borrowed("inbound")), false),
        Some("egress") => (Some(Cow::Borrowed("outbound")), true),
        Some(v) => return Err(bad("flow-direction", v)),
    };
    let flags = |b: &[u8]| parse_u64(b).filter(|&v| v <= 0xFFFF).map(|v| v as i64);
    let row = FlowRow {
        time,
        end_time: end,
        account: text(Slot::Account),
        region: text(Slot::Region),
        vpc: text(if egress { Slot::DstVpc } else { Slot::SrcVpc }),
        subnet: text(if egress { Slot::DstSubnet } else { Slot::SrcSubnet }),
        resource: text(Slot::Attachment),
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        protocol,
        direction,
        status,
        bytes: num(Slot::Bytes, "bytes", parse_count)?,
        packets: num(Slot::Packets, "packets", parse_count)?,
        tcp_flags: num(Slot::TcpFlags, "tcp-flags", flags)?.map(|v| v as i32),
        src_service: text(Slot::PktSrcService),
        dst_service: text(Slot::PktDstService),
        ..FlowRow::default()
    };
    // Counts for the summary: fields carried by this row that no column holds.
    for (pos, _, rows) in &mut layout.unmapped {
        if tokens.get(usize::from(*pos)).is_some_and(|v| *v != "-") {
            *rows += 1;
        }
    }
    let other =
        if egress { [Slot::SrcVpc, Slot::SrcSubnet] } else { [Slot::DstVpc, Slot::DstSubnet] };
    for slot in other {
        if get(slot).is_some() {
            let i = match slot {
                Slot::SrcVpc => 0,
                Slot::DstVpc => 1,
                Slot::SrcSubnet => 2,
                _ => 3,
            };
            layout.other_side[i] += 1;
        }
    }
    Ok(row)
}

/// Confidence that a record is a Transit Gateway flow log line or header: the flow log
/// character set, at least four tokens, and a `tgw-` id or field name.
fn sniff(record: &[u8]) -> u8 {
    let Some(&first) = record.first() else { return 0 };
    if !(first.is_ascii_alphanumeric() || first == b'-' || first == b'$') || record.len() > 4096 {
        return 0;
    }
    if flow_line_spaces(record).is_none_or(|spaces| spaces < 3) || !mentions_tgw(record) {
        return 0;
    }
    if record.starts_with(b"version ") || record.starts_with(b"${") { 96 } else { 90 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SNIFF_THRESHOLD;
    use crate::output::SourceInfo;
    use arrow::array::{Array, AsArray};

    const HEADER: &str = "version account-id tgw-id tgw-attachment-id tgw-src-vpc-id tgw-dst-vpc-id tgw-src-subnet-id tgw-dst-subnet-id srcaddr dstaddr srcport dstport protocol packets bytes packets-lost-blackhole start end log-status flow-direction";

    fn run(
        lines: &[&str],
        options: &ParseOptions,
    ) -> (Output, Vec<arrow::record_batch::RecordBatch>) {
        let mut parser = TgwFlowParser::new(options).expect("options");
        let mut out = Output::new(16, 0);
        out.begin_source(SourceInfo::lines("k", "t.log"), [0; 4]);
        out.set_format(NAME, Provider::Aws);
        for (i, line) in lines.iter().enumerate() {
            out.begin_record();
            parser.parse(&Record { line: i as u64 + 1, bytes: line.as_bytes() }, &mut out);
            out.end_record();
        }
        parser.finish(&mut out);
        let batches = out.take_batches(0).into_iter().map(|(_, b)| b).collect();
        (out, batches)
    }

    fn col(b: &arrow::record_batch::RecordBatch, c: &str, i: usize) -> Option<String> {
        let a = b.column_by_name(c).expect(c).as_string::<i32>();
        a.is_valid(i).then(|| a.value(i).to_owned())
    }

    #[test]
    fn vpc_and_subnet_follow_the_direction() {
        let (out, batches) = run(
            &[
                HEADER,
                "6 1 tgw-1 tgw-attach-a vpc-src vpc-dst subnet-src subnet-dst 10.0.0.1 10.0.1.1 1 2 6 3 4 5 1700000000 1700000060 OK ingress",
                "6 1 tgw-1 tgw-attach-a vpc-src vpc-dst subnet-src subnet-dst 10.0.0.1 10.0.1.1 1 2 6 3 4 0 1700000000 1700000060 OK egress",
            ],
            &ParseOptions::default(),
        );
        assert_eq!(out.counts().rows_in(Table::Flows), 2);
        let b = &batches[0];
        assert_eq!(col(b, "vpc", 0).as_deref(), Some("vpc-src"));
        assert_eq!(col(b, "subnet", 0).as_deref(), Some("subnet-src"));
        assert_eq!(col(b, "direction", 0).as_deref(), Some("inbound"));
        assert_eq!(col(b, "vpc", 1).as_deref(), Some("vpc-dst"));
        assert_eq!(col(b, "direction", 1).as_deref(), Some("outbound"));
        assert_eq!(col(b, "resource", 1).as_deref(), Some("tgw-attach-a"));
        assert!(b.column_by_name("action").expect("action").is_null(0), "no action field");
        let unmapped = &out.counts().unmapped;
        assert_eq!(unmapped.get("aws-tgwflow: packets-lost-blackhole"), Some(&2), "0 is a value");
        assert_eq!(unmapped.get("aws-tgwflow: tgw-dst-vpc-id"), Some(&1));
        assert_eq!(unmapped.get("aws-tgwflow: tgw-src-vpc-id"), Some(&1));
        assert_eq!(unmapped.get("aws-tgwflow: tgw-id"), Some(&2));
    }

    #[test]
    fn default_layout_by_count_and_hint_otherwise() {
        let (out, batches) =
            run(&[FORMAT.example, "6 1 tgw-1 tgw-attach-a 10.0.0.1"], &ParseOptions::default());
        assert_eq!(out.counts().rows_in(Table::Flows), 1);
        assert_eq!(col(&batches[0], "account", 0).as_deref(), Some("123456789012"));
        assert_eq!(col(&batches[0], "region", 0).as_deref(), Some("us-east-1"));
        let q = &batches[1];
        assert_eq!(col(q, "reason", 0).as_deref(), Some("field_count"));
        assert!(col(q, "detail", 0).expect("detail").contains("--vpc-fields"));
    }

    #[test]
    fn vpc_fields_with_tgw_names_set_the_layout() {
        let opts = ParseOptions {
            vpc_fields: Some("${tgw-attachment-id} ${srcaddr} ${dstaddr} ${start}".into()),
            ..Default::default()
        };
        let (out, batches) = run(&["tgw-attach-x 10.0.0.1 10.0.0.2 1700000000"], &opts);
        assert_eq!(out.counts().rows_in(Table::Flows), 1);
        assert_eq!(col(&batches[0], "resource", 0).as_deref(), Some("tgw-attach-x"));
        // A VPC-only field list is not ours to validate.
        assert!(
            TgwFlowParser::new(&ParseOptions {
                vpc_fields: Some("version srcaddr".into()),
                ..Default::default()
            })
            .is_ok()
        );
        assert!(
            TgwFlowParser::new(&ParseOptions {
                vpc_fields: Some("tgw-id tgw-id".into()),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn sniff_wins_over_vpcflow_for_tgw_and_leaves_vpc_alone() {
        let vpc = crate::providers::aws::vpcflow::FORMAT.sniff;
        for tgw in [FORMAT.example, HEADER] {
            assert!(sniff(tgw.as_bytes()) >= SNIFF_THRESHOLD, "{tgw}");
            assert!(vpc(tgw.as_bytes()) < SNIFF_THRESHOLD, "{tgw}");
        }
        let v2 = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
        assert_eq!(sniff(v2.as_bytes()), 0);
        assert_eq!(sniff(b"{\"tgw-id\": 1}"), 0);
    }
}
