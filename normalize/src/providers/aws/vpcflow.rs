//! AWS VPC flow logs (text): the default v2 format and custom formats of versions 2–11.
//!
//! The field layout comes from, in order: the S3 header line (which may repeat mid-stream when
//! objects are concatenated), `--vpc-fields`, and otherwise the default v2 list — except that a
//! header-less line whose field count matches one of AWS's "all fields" layouts (21 = v3,
//! 25 = v4, 29 = v5, 39 = v7, 40 = v8) is read with that layout, as Elastic does. `-` is NULL.
//! NODATA and SKIPDATA rows are kept with `status` set. ICMP rows get NULL ports.
//!
//! The parser writes straight into the `flows` builders: the line is validated as UTF-8 once,
//! split on runs of spaces (eight bytes at a time) into a stack array of field offsets, and each
//! canonical column reads its field through a slot table computed once per layout. Numbers,
//! keywords and IPv4 addresses are read from the bytes; only text columns are sliced as `str`.
//! Fields that map to no column are counted per layout and reported in the ingest summary.

use std::borrow::Cow;

use arrayvec::ArrayVec;

use crate::format::{Error, Format, Framing, ParseOptions, Parser, Result};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::FlowRow;
use crate::schema::{Provider, Table};
use crate::values::{
    canonical_ip, is_canonical_ipv4, micros_from_secs, parse_count, parse_port, parse_protocol,
    parse_u64,
};

use super::common::{flow_line_spaces, mentions_tgw};

/// Format name.
pub const NAME: &str = "aws-vpcflow";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Aws,
    tables: &[Table::Flows],
    framing: Framing::Lines,
    description: "AWS VPC flow logs, text: default v2 and custom formats (S3 header line, --vpc-fields, or field-count inference)",
    example: "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
    sniff,
    new_parser,
};

/// Most fields a line may have; longer lines are quarantined (`field_count`).
const MAX_FIELDS: usize = 64;

/// The canonical targets a VPC field can feed (index into a layout's slot table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum Slot {
    Account,
    Interface,
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    Action,
    LogStatus,
    Vpc,
    Subnet,
    Instance,
    TcpFlags,
    PktSrcAddr,
    PktDstAddr,
    Region,
    PktSrcService,
    PktDstService,
    FlowDirection,
    TrafficPath,
    RejectReason,
    Encryption,
}

const SLOTS: usize = Slot::Encryption as usize + 1;
const ABSENT: u8 = u8::MAX;

/// What a field name means: a slot, consumed without a column (`version`), or unmapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    Slot(Slot),
    Version,
    Unmapped,
}

/// Every documented field name (versions 2–11) and its meaning.
const FIELDS: &[(&str, Meaning)] = &[
    ("version", Meaning::Version),
    ("account-id", Meaning::Slot(Slot::Account)),
    ("interface-id", Meaning::Slot(Slot::Interface)),
    ("srcaddr", Meaning::Slot(Slot::SrcAddr)),
    ("dstaddr", Meaning::Slot(Slot::DstAddr)),
    ("srcport", Meaning::Slot(Slot::SrcPort)),
    ("dstport", Meaning::Slot(Slot::DstPort)),
    ("protocol", Meaning::Slot(Slot::Protocol)),
    ("packets", Meaning::Slot(Slot::Packets)),
    ("bytes", Meaning::Slot(Slot::Bytes)),
    ("start", Meaning::Slot(Slot::Start)),
    ("end", Meaning::Slot(Slot::End)),
    ("action", Meaning::Slot(Slot::Action)),
    ("log-status", Meaning::Slot(Slot::LogStatus)),
    ("vpc-id", Meaning::Slot(Slot::Vpc)),
    ("subnet-id", Meaning::Slot(Slot::Subnet)),
    ("instance-id", Meaning::Slot(Slot::Instance)),
    ("tcp-flags", Meaning::Slot(Slot::TcpFlags)),
    ("type", Meaning::Unmapped),
    ("pkt-srcaddr", Meaning::Slot(Slot::PktSrcAddr)),
    ("pkt-dstaddr", Meaning::Slot(Slot::PktDstAddr)),
    ("region", Meaning::Slot(Slot::Region)),
    ("az-id", Meaning::Unmapped),
    ("sublocation-type", Meaning::Unmapped),
    ("sublocation-id", Meaning::Unmapped),
    ("pkt-src-aws-service", Meaning::Slot(Slot::PktSrcService)),
    ("pkt-dst-aws-service", Meaning::Slot(Slot::PktDstService)),
    ("flow-direction", Meaning::Slot(Slot::FlowDirection)),
    ("traffic-path", Meaning::Slot(Slot::TrafficPath)),
    ("ecs-cluster-arn", Meaning::Unmapped),
    ("ecs-cluster-name", Meaning::Unmapped),
    ("ecs-container-instance-arn", Meaning::Unmapped),
    ("ecs-container-instance-id", Meaning::Unmapped),
    ("ecs-container-id", Meaning::Unmapped),
    ("ecs-second-container-id", Meaning::Unmapped),
    ("ecs-service-name", Meaning::Unmapped),
    ("ecs-task-definition-arn", Meaning::Unmapped),
    ("ecs-task-arn", Meaning::Unmapped),
    ("ecs-task-id", Meaning::Unmapped),
    ("reject-reason", Meaning::Slot(Slot::RejectReason)),
    ("resource-id", Meaning::Unmapped),
    ("encryption-status", Meaning::Slot(Slot::Encryption)),
    ("interface-type", Meaning::Unmapped),
];

/// The default (v2) format.
const V2: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
const V3_EXTRA: &str = " vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr";
const V4_EXTRA: &str = " region az-id sublocation-type sublocation-id";
const V5_EXTRA: &str = " pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path";
const V7_EXTRA: &str = " ecs-cluster-arn ecs-cluster-name ecs-container-instance-arn ecs-container-instance-id ecs-container-id ecs-second-container-id ecs-service-name ecs-task-definition-arn ecs-task-arn ecs-task-id";
const V8_EXTRA: &str = " reject-reason";

/// "All fields" layouts of each version, used by field-count inference on header-less lines.
fn all_fields_layout(count: usize) -> Option<String> {
    let layout = match count {
        21 => [V2, V3_EXTRA].concat(),
        25 => [V2, V3_EXTRA, V4_EXTRA].concat(),
        29 => [V2, V3_EXTRA, V4_EXTRA, V5_EXTRA].concat(),
        39 => [V2, V3_EXTRA, V4_EXTRA, V5_EXTRA, V7_EXTRA].concat(),
        40 => [V2, V3_EXTRA, V4_EXTRA, V5_EXTRA, V7_EXTRA, V8_EXTRA].concat(),
        _ => return None,
    };
    Some(layout)
}

/// Normalize a field name as written in a header, a format string (`${account-id}`) or an
/// Athena/Parquet column (`account_id`).
fn normalize_name(token: &str) -> String {
    let t = token.strip_prefix("${").and_then(|t| t.strip_suffix('}')).unwrap_or(token);
    t.to_ascii_lowercase().replace('_', "-")
}

fn meaning(name: &str) -> Option<Meaning> {
    FIELDS.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
}

fn looks_like_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A field layout: which slot each position feeds, and which fields map to no column.
#[derive(Debug, Clone)]
struct Layout {
    len: usize,
    /// Position of each slot's field, or ABSENT.
    slots: [u8; SLOTS],
    unmapped: Vec<String>,
    /// Rows parsed with this layout since it was (re)installed, for the unmapped counts.
    rows: u64,
}

impl Layout {
    /// Build a layout from field names. Unknown names are kept as unmapped fields (AWS adds
    /// fields over time); a duplicate name or more than [`MAX_FIELDS`] fields is an error.
    fn from_names<'n>(names: impl IntoIterator<Item = &'n str>) -> Result<Layout, String> {
        let mut slots = [ABSENT; SLOTS];
        let mut unmapped = Vec::new();
        let mut len = 0usize;
        for token in names {
            let name = normalize_name(token);
            if !looks_like_name(&name) {
                return Err(format!("{token:?} is not a field name"));
            }
            if len >= MAX_FIELDS {
                return Err(format!("more than {MAX_FIELDS} fields"));
            }
            match meaning(&name) {
                Some(Meaning::Slot(slot)) => {
                    if slots[slot as usize] != ABSENT {
                        return Err(format!("field {name} appears twice"));
                    }
                    slots[slot as usize] = len as u8;
                }
                Some(Meaning::Version) => {}
                Some(Meaning::Unmapped) | None => unmapped.push(name),
            }
            len += 1;
        }
        if len == 0 {
            return Err("no fields".to_owned());
        }
        Ok(Layout { len, slots, unmapped, rows: 0 })
    }

    fn report_unmapped(&mut self, out: &mut Output) {
        for name in &self.unmapped {
            out.note_unmapped(NAME, name, self.rows);
        }
        self.rows = 0;
    }
}

/// Whether the tokens of a line form a header: every token a field name, most of them known.
fn header_layout(tokens: &[&str]) -> Option<Layout> {
    let mut known = 0;
    for t in tokens {
        let name = normalize_name(t);
        if !looks_like_name(&name) {
            return None;
        }
        if meaning(&name).is_some() {
            known += 1;
        }
    }
    if known * 2 < tokens.len() || known == 0 {
        return None;
    }
    Layout::from_names(tokens.iter().copied()).ok()
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(VpcFlowParser::new(options)?))
}

/// Parser state for one source.
#[derive(Debug)]
pub struct VpcFlowParser {
    /// Layout from `--vpc-fields`.
    configured: Option<Layout>,
    /// Layout from the last header line seen in the source.
    header: Option<Layout>,
    /// Default and field-count-inferred layouts, by field count.
    inferred: Vec<Layout>,
    scratch: [String; 4],
}

impl VpcFlowParser {
    /// A parser; `options.vpc_fields` is validated here.
    pub fn new(options: &ParseOptions) -> Result<Self> {
        let configured = match &options.vpc_fields {
            Some(spec) => Some(
                Layout::from_names(
                    spec.split(|c: char| c.is_whitespace() || c == ',').filter(|t| !t.is_empty()),
                )
                .map_err(|reason| Error::InvalidOption { option: "--vpc-fields", reason })?,
            ),
            None => None,
        };
        Ok(Self { configured, header: None, inferred: Vec::new(), scratch: Default::default() })
    }

    /// The layout for a header-less line of `count` fields: configured, else inferred by count,
    /// else the default v2 layout.
    fn layout_for(&mut self, count: usize) -> &mut Layout {
        if self.header.is_some() {
            return self.header.as_mut().unwrap_or_else(|| unreachable!());
        }
        if self.configured.is_some() {
            return self.configured.as_mut().unwrap_or_else(|| unreachable!());
        }
        let wanted = if all_fields_layout(count).is_some() { count } else { 14 };
        let index = match self.inferred.iter().position(|l| l.len == wanted) {
            Some(i) => i,
            None => {
                let names = all_fields_layout(wanted).unwrap_or_else(|| V2.to_owned());
                let layout = Layout::from_names(names.split(' '))
                    .unwrap_or_else(|e| unreachable!("built-in layout is invalid: {e}"));
                self.inferred.push(layout);
                self.inferred.len() - 1
            }
        };
        &mut self.inferred[index]
    }

    /// Parse one flow log line (also used for messages inside envelopes: pass a `Record` whose
    /// bytes are the message). `fallback_time` is the delivery time (envelope timestamp, file
    /// time) used when the layout has neither `start` nor `end`.
    pub fn parse_line(
        &mut self,
        record: &Record<'_>,
        fallback_time: Option<i64>,
        out: &mut Output,
    ) {
        self.parse_line_in(record, fallback_time, None, out);
    }

    /// [`Self::parse_line`] for a line taken out of an envelope that knows the account (the
    /// CloudWatch Logs `owner`): `fallback_account` fills `account` when the layout has no
    /// `account-id`.
    pub fn parse_line_in(
        &mut self,
        record: &Record<'_>,
        fallback_time: Option<i64>,
        fallback_account: Option<&str>,
        out: &mut Output,
    ) {
        let Ok(text) = std::str::from_utf8(record.bytes) else {
            out.quarantine(record, Reason::InvalidUtf8, "flow log line is not valid UTF-8");
            return;
        };
        // Field offsets go into an uninitialized fixed-capacity array (no per-line zeroing, no
        // allocation). Boundaries are at ASCII spaces, hence char boundaries.
        let mut spans: Spans = ArrayVec::new();
        if split_spaces(record.bytes, &mut spans).is_err() {
            out.quarantine(record, Reason::FieldCount, "more than 64 fields");
            return;
        }
        let count = spans.len();
        let line = Line { text, spans: spans.as_slice() };
        let Some(first) = line.bytes(0) else {
            out.skip("aws-vpcflow: blank line");
            return;
        };
        // Data lines start with a digit or `-`; only a letter or `${` can start a header, so most
        // lines skip the header check (and its name normalization) entirely.
        let maybe_header = first.first().is_some_and(|&c| c.is_ascii_alphabetic() || c == b'$');
        let header = maybe_header.then(|| {
            let tokens: ArrayVec<&str, MAX_FIELDS> = (0..count).map(|i| line.str(i)).collect();
            header_layout(&tokens)
        });
        if let Some(layout) = header.flatten() {
            if let Some(mut old) = self.header.replace(layout) {
                old.report_unmapped(out);
            }
            out.skip("aws-vpcflow: header line");
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let layout = self.layout_for(count);
        let mut row = FlowRow::default();
        match fill_row(layout, &line, fallback_time, &mut scratch, &mut row) {
            Ok(delivery_time) => {
                layout.rows += 1;
                if row.account.is_none() {
                    row.account = fallback_account.map(Cow::Borrowed);
                }
                if delivery_time {
                    out.note(
                        "aws-vpcflow: time from the delivery time (layout has no start or end)",
                    );
                }
                out.flow(record, &row);
            }
            Err((reason, detail)) => out.quarantine(record, reason, &detail),
        }
        self.scratch = scratch;
    }
}

impl Parser for VpcFlowParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let delivered = out.source().delivered;
        self.parse_line(record, delivered, out);
    }

    fn finish(&mut self, out: &mut Output) {
        if let Some(mut h) = self.header.take() {
            h.report_unmapped(out);
        }
        if let Some(c) = self.configured.as_mut() {
            c.report_unmapped(out);
        }
        for layout in &mut self.inferred {
            layout.report_unmapped(out);
        }
    }
}

type Rejection = (Reason, String);

/// Byte offsets (start, end) of a line's fields.
type Spans = ArrayVec<(usize, usize), MAX_FIELDS>;

/// Split `line` on runs of spaces into `spans` (empty fields are not kept), eight bytes at a
/// time: each word's spaces are found with bit arithmetic, no call per field. `Err` when the
/// line has more than [`MAX_FIELDS`] fields.
fn split_spaces(line: &[u8], spans: &mut Spans) -> Result<(), ()> {
    const SPACES: u64 = 0x2020_2020_2020_2020;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut start = 0usize;
    let mut field_end = |start: &mut usize, at: usize| -> Result<(), ()> {
        if at > *start {
            spans.try_push((*start, at)).map_err(|_| ())?;
        }
        *start = at + 1;
        Ok(())
    };
    let mut chunks = line.chunks_exact(8);
    let mut base = 0usize;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let x = word ^ SPACES;
        // The high bit of every byte of x that is zero (a space in the line), exactly: no
        // carries cross bytes since (b & 0x7f) + 0x7f <= 0xfe.
        let mut spaces = !(((x & LOW7) + LOW7) | x | LOW7);
        while spaces != 0 {
            let at = base + (spaces.trailing_zeros() / 8) as usize;
            field_end(&mut start, at)?;
            spaces &= spaces - 1;
        }
        base += 8;
    }
    for (i, &b) in chunks.remainder().iter().enumerate() {
        if b == b' ' {
            field_end(&mut start, base + i)?;
        }
    }
    field_end(&mut start, line.len())
}

/// A split data line: its text and field offsets.
struct Line<'a, 's> {
    text: &'a str,
    spans: &'s [(usize, usize)],
}

impl<'a> Line<'a, '_> {
    /// Field `i` as bytes.
    #[inline]
    fn bytes(&self, i: usize) -> Option<&'a [u8]> {
        let &(start, end) = self.spans.get(i)?;
        self.text.as_bytes().get(start..end)
    }

    /// Field `i` as text (fields end at ASCII spaces, so at char boundaries).
    #[inline]
    fn str(&self, i: usize) -> &'a str {
        self.spans.get(i).and_then(|&(start, end)| self.text.get(start..end)).unwrap_or_default()
    }
}

fn bad(field: &str, value: &str) -> Rejection {
    let shown: String = value.chars().take(64).collect();
    (Reason::BadField, format!("{field}: invalid value {shown:?}"))
}

/// Fill `row` from one data line; `Ok(true)` says the time is the delivery time.
fn fill_row<'a>(
    layout: &Layout,
    line: &Line<'a, '_>,
    fallback_time: Option<i64>,
    scratch: &'a mut [String; 4],
    row: &mut FlowRow<'a>,
) -> Result<bool, Rejection> {
    if line.spans.len() != layout.len {
        return Err((
            Reason::FieldCount,
            format!(
                "{} fields, layout has {} (set the layout with a header line or --vpc-fields)",
                line.spans.len(),
                layout.len
            ),
        ));
    }
    // The field of a slot, as bytes: None when the layout lacks it or it is `-`.
    let get = |slot: Slot| -> Option<(usize, &'a [u8])> {
        let i = usize::from(layout.slots[slot as usize]);
        line.bytes(i).filter(|v| *v != b"-").map(|v| (i, v))
    };
    let text = |slot: Slot| get(slot).map(|(i, _)| Cow::Borrowed(line.str(i)));
    let bad_at = |name: &str, i: usize| bad(name, line.str(i));

    let [s0, s1, s2, s3] = scratch;
    let ip =
        |slot: Slot, name: &str, buf: &'a mut String| -> Result<Option<Cow<'a, str>>, Rejection> {
            match get(slot) {
                None => Ok(None),
                Some((i, v)) if is_canonical_ipv4(v) => Ok(Some(Cow::Borrowed(line.str(i)))),
                Some((i, _)) => canonical_ip(line.str(i), buf)
                    .map(|s| Some(Cow::Borrowed(s)))
                    .ok_or_else(|| bad_at(name, i)),
            }
        };
    row.src_ip = ip(Slot::SrcAddr, "srcaddr", s0)?;
    row.dst_ip = ip(Slot::DstAddr, "dstaddr", s1)?;
    row.pkt_src_ip = ip(Slot::PktSrcAddr, "pkt-srcaddr", s2)?;
    row.pkt_dst_ip = ip(Slot::PktDstAddr, "pkt-dstaddr", s3)?;

    let num = |slot: Slot,
               name: &str,
               parse: fn(&[u8]) -> Option<i64>|
     -> Result<Option<i64>, Rejection> {
        match get(slot) {
            None => Ok(None),
            Some((i, v)) => parse(v).map(Some).ok_or_else(|| bad_at(name, i)),
        }
    };
    let port = |b: &[u8]| parse_port(b).map(i64::from);
    let proto = |b: &[u8]| parse_protocol(b).map(i64::from);
    let flags = |b: &[u8]| parse_u64(b).filter(|&v| v <= 0xFFFF).map(|v| v as i64);

    let protocol = num(Slot::Protocol, "protocol", proto)?.map(|v| v as i32);
    let icmp = matches!(protocol, Some(1) | Some(58));
    let port_of = |slot: Slot, name: &str| -> Result<Option<i32>, Rejection> {
        let p = num(slot, name, port)?.map(|v| v as i32);
        Ok(if icmp && p == Some(0) { None } else { p })
    };
    row.src_port = port_of(Slot::SrcPort, "srcport")?;
    row.dst_port = port_of(Slot::DstPort, "dstport")?;
    row.protocol = protocol;

    let secs = |slot: Slot, name: &str| -> Result<Option<i64>, Rejection> {
        match get(slot) {
            None => Ok(None),
            Some((i, v)) => match parse_u64(v).and_then(micros_from_secs) {
                Some(t) => Ok(Some(t)),
                None => Err((
                    Reason::BadTime,
                    format!("{name}: {:?} is not epoch seconds in range", line.str(i)),
                )),
            },
        }
    };
    let start = secs(Slot::Start, "start")?;
    let end = secs(Slot::End, "end")?;
    let no_time_fields =
        layout.slots[Slot::Start as usize] == ABSENT && layout.slots[Slot::End as usize] == ABSENT;
    let (time, delivery_time) = match (start, end) {
        (Some(t), _) | (None, Some(t)) => (t, false),
        (None, None) => match fallback_time {
            Some(t) if no_time_fields => (t, true),
            _ => return Err((Reason::MissingField, "start: no start or end time".to_owned())),
        },
    };
    row.time = time;
    row.end_time = end;

    row.action = match get(Slot::Action) {
        None => None,
        Some((_, b"ACCEPT")) => Some(Cow::Borrowed("allow")),
        Some((_, b"REJECT")) => Some(Cow::Borrowed("deny")),
        Some((i, _)) => return Err(bad_at("action", i)),
    };
    row.status = match get(Slot::LogStatus) {
        None => None,
        Some((_, b"OK")) => Some(Cow::Borrowed("ok")),
        Some((_, b"NODATA")) => Some(Cow::Borrowed("nodata")),
        Some((_, b"SKIPDATA")) => Some(Cow::Borrowed("skipdata")),
        Some((i, _)) => return Err(bad_at("log-status", i)),
    };
    row.direction = match get(Slot::FlowDirection) {
        None => None,
        Some((_, b"ingress")) => Some(Cow::Borrowed("inbound")),
        Some((_, b"egress")) => Some(Cow::Borrowed("outbound")),
        Some((i, _)) => return Err(bad_at("flow-direction", i)),
    };
    row.traffic_path = match get(Slot::TrafficPath) {
        None => None,
        Some((i, v)) => Some(Cow::Borrowed(match v {
            b"1" => "same_vpc",
            b"2" => "igw_or_gateway_endpoint",
            b"3" => "vgw",
            b"4" => "intra_region_peering",
            b"5" => "inter_region_peering",
            b"6" => "local_gateway",
            b"7" => "gateway_endpoint",
            b"8" => "igw",
            _ => return Err(bad_at("traffic-path", i)),
        })),
    };
    row.encrypted = match get(Slot::Encryption) {
        None => None,
        Some((i, v)) => match parse_u64(v) {
            Some(0) => Some(false),
            Some(1..=3) => Some(true),
            _ => return Err(bad_at("encryption-status", i)),
        },
    };

    row.account = text(Slot::Account);
    row.region = text(Slot::Region);
    row.vpc = text(Slot::Vpc);
    row.subnet = text(Slot::Subnet);
    row.resource = text(Slot::Interface);
    row.bytes = num(Slot::Bytes, "bytes", parse_count)?;
    row.packets = num(Slot::Packets, "packets", parse_count)?;
    row.tcp_flags = num(Slot::TcpFlags, "tcp-flags", flags)?.map(|v| v as i32);
    row.rule = text(Slot::RejectReason);
    row.instance = text(Slot::Instance);
    row.src_service = text(Slot::PktSrcService);
    row.dst_service = text(Slot::PktDstService);
    Ok(delivery_time)
}

/// Confidence that a record is a VPC flow log line: space-separated tokens of the flow log
/// character set, at least four of them.
fn sniff(record: &[u8]) -> u8 {
    let Some(&first) = record.first() else { return 0 };
    if !(first.is_ascii_alphanumeric() || first == b'-') || record.len() > 4096 {
        return 0;
    }
    if flow_line_spaces(record).is_none_or(|spaces| spaces < 3) {
        return 0;
    }
    // Transit Gateway flow logs share the character set; their `tgw-` ids and field names
    // belong to aws-tgwflow.
    if mentions_tgw(record) {
        return 30;
    }
    if first.is_ascii_digit() || first == b'-' {
        80
    } else if record.starts_with(b"version ") || record.starts_with(b"${") {
        95
    } else if letter_first_looks_like_flow(record) {
        60
    } else {
        // Words separated by spaces (a `kubectl` event row, prose) are not flow logs.
        20
    }
}

/// A line starting with a letter is a flow log line or header only when it shows something
/// of one: a header whose first token is a field name, or a resource id / IP address token.
fn letter_first_looks_like_flow(record: &[u8]) -> bool {
    let text = std::str::from_utf8(record).unwrap_or_default();
    let mut tokens = text.split(' ').filter(|t| !t.is_empty());
    // The raw token first (headers as S3 writes them); `${…}`, `_` and capitals are normalized
    // (an allocation only for those).
    let is_field = |t: &str| {
        meaning(t).is_some()
            || (t.bytes().any(|b| b == b'_' || b == b'$' || b.is_ascii_uppercase())
                && meaning(&normalize_name(t)).is_some())
    };
    if tokens.next().is_some_and(is_field) {
        return true;
    }
    text.split(' ').any(|t| {
        ["eni-", "i-", "vpc-", "subnet-", "nat-"].iter().any(|p| t.starts_with(p))
            || crate::values::is_canonical_ipv4(t.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::SourceInfo;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};

    fn run(
        lines: &[&str],
        options: &ParseOptions,
    ) -> (Output, Vec<arrow::record_batch::RecordBatch>) {
        let mut parser = VpcFlowParser::new(options).expect("options");
        let mut out = Output::new(16, 0);
        out.begin_source(SourceInfo::lines("k", "t.log"), [0; 4]);
        out.set_format(NAME, Provider::Aws);
        for (i, line) in lines.iter().enumerate() {
            let rec = Record { line: i as u64 + 1, bytes: line.as_bytes() };
            out.begin_record();
            parser.parse(&rec, &mut out);
            out.end_record();
        }
        parser.finish(&mut out);
        let batches = out.take_batches(0).into_iter().map(|(_, b)| b).collect();
        (out, batches)
    }

    fn col_str(b: &arrow::record_batch::RecordBatch, c: &str, i: usize) -> Option<String> {
        let a = b.column_by_name(c).expect(c).as_string::<i32>();
        a.is_valid(i).then(|| a.value(i).to_owned())
    }

    #[test]
    fn default_v2_line() {
        let (out, batches) = run(
            &[
                "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
            ],
            &ParseOptions::default(),
        );
        assert_eq!(out.counts().rows_in(Table::Flows), 1);
        let b = &batches[0];
        assert_eq!(col_str(b, "account", 0).as_deref(), Some("123456789010"));
        assert_eq!(col_str(b, "resource", 0).as_deref(), Some("eni-1235b8ca123456789"));
        assert_eq!(col_str(b, "action", 0).as_deref(), Some("allow"));
        assert_eq!(col_str(b, "status", 0).as_deref(), Some("ok"));
        let dst_port = b.column_by_name("dst_port").expect("c").as_primitive::<Int32Type>();
        assert_eq!(dst_port.value(0), 22);
        let bytes = b.column_by_name("bytes").expect("c").as_primitive::<Int64Type>();
        assert_eq!(bytes.value(0), 4249);
        let time = b.column_by_name("time").expect("c").as_primitive::<TimestampMicrosecondType>();
        assert_eq!(time.value(0), 1_418_530_010_000_000);
    }

    #[test]
    fn nodata_keeps_status_with_nulls() {
        let (out, batches) = run(
            &["2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA"],
            &ParseOptions::default(),
        );
        assert_eq!(out.counts().rows_in(Table::Flows), 1);
        let b = &batches[0];
        assert_eq!(col_str(b, "status", 0).as_deref(), Some("nodata"));
        assert_eq!(col_str(b, "src_ip", 0), None);
        assert_eq!(col_str(b, "action", 0), None);
        assert!(b.column_by_name("bytes").expect("c").is_null(0));
    }

    #[test]
    fn header_sets_layout_and_may_repeat() {
        let (out, batches) = run(
            &[
                "version srcaddr dstaddr start end action",
                "5 10.0.0.1 10.0.0.2 1616729292 1616729349 ACCEPT",
                "version dstaddr srcaddr end start action",
                "5 10.0.0.2 10.0.0.1 1616729349 1616729292 REJECT",
            ],
            &ParseOptions::default(),
        );
        assert_eq!(out.counts().rows_in(Table::Flows), 2);
        assert_eq!(out.counts().skipped_total(), 2, "headers are counted as skipped");
        let b = &batches[0];
        assert_eq!(col_str(b, "src_ip", 1).as_deref(), Some("10.0.0.1"));
        assert_eq!(col_str(b, "action", 1).as_deref(), Some("deny"));
    }

    #[test]
    fn vpc_fields_option_and_double_spaces() {
        let opts = ParseOptions {
            vpc_fields: Some("${version} ${interface-id} ${srcaddr} ${dstaddr} ${start}".into()),
            ..Default::default()
        };
        let (out, batches) = run(&["2 eni-1  10.0.0.1 10.0.0.2   1616729292 "], &opts);
        assert_eq!(out.counts().rows_in(Table::Flows), 1);
        assert_eq!(col_str(&batches[0], "dst_ip", 0).as_deref(), Some("10.0.0.2"));
    }

    #[test]
    fn bad_values_are_quarantined_with_the_field_named() {
        let (out, batches) = run(
            &[
                "2 1 eni-1 10.0.0.999 10.0.0.2 1 2 6 1 1 1418530010 1418530070 ACCEPT OK",
                "2 1 eni-1 10.0.0.1 10.0.0.2 70000 2 6 1 1 1418530010 1418530070 ACCEPT OK",
                "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 99999999999999 1418530070 ACCEPT OK",
                "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1418530010 1418530070 MAYBE OK",
                "2 1 eni-1 10.0.0.1",
                "\u{0}\u{1} garbage",
            ],
            &ParseOptions::default(),
        );
        assert_eq!(out.counts().rows_in(Table::Flows), 0);
        assert_eq!(out.counts().quarantined_total(), 6);
        let b = &batches[0];
        assert!(col_str(b, "detail", 0).expect("detail").starts_with("srcaddr"));
        assert!(col_str(b, "detail", 1).expect("detail").starts_with("srcport"));
        assert_eq!(col_str(b, "reason", 2).as_deref(), Some("bad_time"));
        assert_eq!(col_str(b, "reason", 4).as_deref(), Some("field_count"));
    }

    #[test]
    fn icmp_and_ipv6() {
        let (_, batches) = run(
            &["2 1 eni-1 2001:0db8:0:0:0:0:0:1 [::1] 0 0 58 1 84 1418530010 1418530070 ACCEPT OK"],
            &ParseOptions::default(),
        );
        let b = &batches[0];
        assert_eq!(col_str(b, "src_ip", 0).as_deref(), Some("2001:db8::1"));
        assert_eq!(col_str(b, "dst_ip", 0).as_deref(), Some("::1"));
        assert!(b.column_by_name("src_port").expect("c").is_null(0));
    }

    #[test]
    fn all_fields_layouts_are_inferred_by_count_and_unmapped_fields_reported() {
        let line = "5 52.95.128.179 10.0.0.71 80 34210 6 1616729292 1616729349 IPv4 14 15044 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b eni-1235b8ca123456789 ap-southeast-2 apse2-az3 - - ACCEPT 19 52.95.128.179 10.0.0.71 S3 - - ingress OK";
        // That line is the v5 fields in a custom order: only a header explains it.
        let (out, _) = run(&[line], &ParseOptions::default());
        assert_eq!(out.counts().rows_in(Table::Flows), 0);
        let v5 = "5 64111117617 eni-069xxxxxb7a490 89.160.20.156 10.200.0.0 50041 33004 17 52 1 1640000066 1640000297 REJECT OK vpc-09676f97xxxxxb8a7 subnet-02d645xxxxxxxdbc0 i-0axxxxxx1ad77 1 IPv4 89.160.20.156 10.200.0.80 us-east-1 use1-az5 - - AMAZON CLOUDFRONT ingress 1";
        let (out, batches) = run(&[v5], &ParseOptions::default());
        assert_eq!(out.counts().rows_in(Table::Flows), 1);
        let b = &batches[0];
        assert_eq!(col_str(b, "region", 0).as_deref(), Some("us-east-1"));
        assert_eq!(col_str(b, "src_service", 0).as_deref(), Some("AMAZON"));
        assert_eq!(col_str(b, "direction", 0).as_deref(), Some("inbound"));
        assert_eq!(col_str(b, "traffic_path", 0).as_deref(), Some("same_vpc"));
        assert_eq!(out.counts().unmapped.get("aws-vpcflow: az-id"), Some(&1));
        assert_eq!(out.counts().unmapped.get("aws-vpcflow: type"), Some(&1));
    }

    #[test]
    fn split_spaces_matches_a_plain_split() {
        // Every split position relative to the 8-byte words, runs of spaces, other bytes.
        let mut lines: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b" ".to_vec(),
            b"        ".to_vec(),
            b"a".to_vec(),
            b"  a  b   ".to_vec(),
            b"\t\x00\xff \x80\xa0 \xe2\x80\x80x".to_vec(),
            FORMAT.example.as_bytes().to_vec(),
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..40 {
            for _ in 0..20 {
                let line = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        [b' ', b'a', b'-', 0x20 ^ 0x80, 0xa0][(state % 5) as usize]
                    })
                    .collect();
                lines.push(line);
            }
        }
        for line in &lines {
            let expected: Vec<&[u8]> =
                line.split(|&b| b == b' ').filter(|t| !t.is_empty()).collect();
            let mut spans = Spans::new();
            split_spaces(line, &mut spans).expect("at most 64 fields");
            let got: Vec<&[u8]> = spans.iter().map(|&(s, e)| &line[s..e]).collect();
            assert_eq!(got, expected, "{line:?}");
        }
        let wide = "x ".repeat(MAX_FIELDS + 1);
        assert!(split_spaces(wide.as_bytes(), &mut Spans::new()).is_err());
        let full = "x ".repeat(MAX_FIELDS);
        assert!(split_spaces(full.as_bytes(), &mut Spans::new()).is_ok());
    }

    #[test]
    fn invalid_vpc_fields_option_is_an_error() {
        let opts = ParseOptions {
            vpc_fields: Some("version srcaddr srcaddr".into()),
            ..Default::default()
        };
        assert!(VpcFlowParser::new(&opts).is_err());
        let opts = ParseOptions { vpc_fields: Some("  ".into()), ..Default::default() };
        assert!(VpcFlowParser::new(&opts).is_err());
        let opts = ParseOptions { vpc_fields: Some("version <b>".into()), ..Default::default() };
        assert!(VpcFlowParser::new(&opts).is_err());
    }

    #[test]
    fn sniff_claims_flow_lines_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= crate::format::SNIFF_THRESHOLD);
        assert!(
            sniff(b"version account-id interface-id srcaddr") >= crate::format::SNIFF_THRESHOLD
        );
        assert_eq!(sniff(b"{\"records\": []}"), 0);
        assert_eq!(sniff(b"hello world"), 0);
        // Headers and lines of custom layouts that start with a letter.
        for ok in [
            &b"instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr"[..],
            b"INSTANCE_ID interface_id srcaddr dstaddr",
            b"i-01234567890123456 eni-1111aaaa2222bbbb3 10.0.1.5 203.0.113.5",
            b"ACCEPT OK 10.0.0.1 10.0.0.2",
        ] {
            assert!(sniff(ok) >= crate::format::SNIFF_THRESHOLD, "{}", String::from_utf8_lossy(ok));
        }
        // Space-separated words (a kubectl event row) and Transit Gateway lines are not ours.
        for other in [
            &b"Normal   Started       6s               cert-manager  Challenge scheduled for processing"[..],
            b"version account-id tgw-id tgw-attachment-id srcaddr dstaddr",
        ] {
            assert!(sniff(other) < crate::format::SNIFF_THRESHOLD, "{}", String::from_utf8_lossy(other));
        }
    }
}
