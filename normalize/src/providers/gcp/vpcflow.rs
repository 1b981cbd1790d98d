//! GCP VPC Flow Logs as Cloud Logging `LogEntry` JSON (`gcp-vpcflow` → `flows`).
//!
//! Both log names are read: the legacy `projects/P/logs/compute.googleapis.com%2Fvpc_flows`
//! (resource `gce_subnetwork`) and `networkmanagement.googleapis.com%2Fvpc_flows` (resource
//! `vpc_flow_logs_config`, `labels.target_resource_name`); the `%2F` is literal.
//!
//! Quirks handled:
//! - `jsonPayload.bytes_sent` / `packets_sent` are int64 **strings** (`"36352"`); ports and
//!   protocol are numbers; ICMP flows have **no** port keys at all (NULL ports).
//! - `start_time` / `end_time` are RFC 3339 with 9 fractional digits (truncated to µs);
//!   `start_time` is `time`, `end_time` is `end_time`. `LogEntry.timestamp` (minutes later, the
//!   logging time) is not used. A missing `start_time` is `missing_field`.
//! - `reporter` `SRC` / `DEST` says which side is the resource: the reporting side's
//!   `*_instance.vm_name` becomes `resource` and `instance`, its `*_vpc` gives `vpc`, `subnet`,
//!   `account` (project id) and `region`; `SRC` ⇒ `outbound`, `DEST` ⇒ `inbound`. An unknown or
//!   missing reporter leaves `direction` NULL (counted as a note).
//! - The far side may be described by `*_google_service` (→ `src_service` / `dst_service`:
//!   `service_name`, else `type` such as `GOOGLE_API`), by `*_location` (country, city, ASN: no
//!   column, counted as unmapped), by its own `*_instance` / `*_vpc` when both ends are VMs of
//!   the project (counted as unmapped), or by nothing.
//! - Fallbacks when the reporting side has no `*_vpc`: `resource.labels` (`project_id`,
//!   `location`, `subnetwork_name`), the project of `logName`, and the network named by
//!   `labels.target_resource_name` (`.../networks/NAME`).
//! - `managed_instance_group`, `internet_routing_details`, `network_service.dscp`,
//!   `*_gke_details`, `rtt_msec` map to no column and are counted as unmapped.
//!
//! Promises: GCP VPC Flow Logs only record traffic that was allowed (denied packets appear in
//! Firewall Rules Logging, not here), so `action` is `allow` on every row. Addresses are
//! canonical; an address, port, protocol or counter that is present but invalid quarantines the
//! record (`bad_field`, naming the field).

use std::borrow::Cow;

use serde::Deserialize;

use super::common::{
    Num, Resource, SNIFF_WINDOW, Unmapped, log_parent, non_empty, opens_object, string_value,
};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json::{self, Rejection, de};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::{FlowRow, Text};
use crate::schema::{Provider, Table};
use crate::values::canonical_ip;

/// Format name.
pub const NAME: &str = "gcp-vpcflow";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Gcp,
    tables: &[Table::Flows],
    framing: Framing::Json,
    description: "GCP VPC Flow Logs as Cloud Logging LogEntry JSON (compute.googleapis.com and networkmanagement.googleapis.com vpc_flows)",
    example: r#"{"jsonPayload":{"connection":{"src_ip":"10.0.0.2","src_port":22,"dest_ip":"198.51.100.7","dest_port":40100,"protocol":6},"bytes_sent":"36352","packets_sent":"32","reporter":"SRC","start_time":"2025-11-07T21:16:20.386845714Z","end_time":"2025-11-07T21:16:20.386845714Z","src_instance":{"vm_name":"vm-1","project_id":"p"},"src_vpc":{"vpc_name":"default","subnetwork_name":"default","subnetwork_region":"us-central1","project_id":"p"}},"logName":"projects/p/logs/compute.googleapis.com%2Fvpc_flows","resource":{"type":"gce_subnetwork"},"timestamp":"2025-11-07T21:23:01.160200757Z"}"#,
    sniff,
    new_parser,
};

/// Confidence that `record` is a VPC flow LogEntry: its `logName` names `vpc_flows`, or (when
/// `logName` lies past the sniff window) its payload has the flow keys.
fn sniff(record: &[u8]) -> u8 {
    let head = json::head(record, SNIFF_WINDOW);
    if !opens_object(head) {
        return 0;
    }
    if let Some(log_name) = string_value(head, b"\"logName\"") {
        return if json::contains(log_name, b"%2Fvpc_flows") && json::contains(head, b"jsonPayload")
        {
            95
        } else {
            0
        };
    }
    let flow_keys =
        [&b"\"jsonPayload\""[..], b"\"connection\"", b"\"reporter\"", b"\"bytes_sent\""];
    if flow_keys.iter().all(|k| json::contains(head, k)) { 70 } else { 0 }
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(VpcFlowParser::new(options)))
}

/// Indices into [`UNMAPPED`].
const U_SRC_LOCATION: usize = 0;
const U_DEST_LOCATION: usize = 1;
const U_MIG: usize = 2;
const U_ROUTING: usize = 3;
const U_DSCP: usize = 4;
const U_FAR_INSTANCE: usize = 5;
const U_GKE: usize = 6;
const U_RTT: usize = 7;
const U_CONNECTIVITY: usize = 8;

/// Fields that map to no column, counted per row.
const UNMAPPED: &[&str] = &[
    "jsonPayload.src_location (country, city, asn)",
    "jsonPayload.dest_location (country, city, asn)",
    "jsonPayload.*_instance.managed_instance_group",
    "jsonPayload.internet_routing_details",
    "jsonPayload.network_service.dscp",
    "jsonPayload.*_instance/*_vpc of the non-reporting side",
    "jsonPayload.*_gke_details",
    "jsonPayload.rtt_msec",
    "jsonPayload.*_google_service.connectivity",
];

/// Parser state for one source: the options and the unmapped-field tally.
#[derive(Debug)]
pub struct VpcFlowParser {
    options: ParseOptions,
    unmapped: Unmapped,
}

impl VpcFlowParser {
    /// A parser with `options` (JSON caps).
    pub fn new(options: &ParseOptions) -> Self {
        Self { options: options.clone(), unmapped: Unmapped::new(NAME, UNMAPPED) }
    }
}

impl Parser for VpcFlowParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let entry: Entry<'_> = match json::decode(record.bytes, &self.options) {
            Ok(e) => e,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        let mut scratch = [String::new(), String::new()];
        match build_row(&entry, &mut scratch) {
            Ok(built) => {
                if built.unknown_reporter {
                    out.note("gcp-vpcflow: reporter missing or unknown, direction left NULL");
                }
                self.tally(&entry);
                out.flow(record, &built.row);
            }
            Err((reason, detail)) => out.quarantine(record, reason, &detail),
        }
    }

    fn finish(&mut self, out: &mut Output) {
        self.unmapped.flush(out);
    }
}

impl VpcFlowParser {
    fn tally(&mut self, entry: &Entry<'_>) {
        let Some(p) = &entry.payload else { return };
        let u = &mut self.unmapped;
        u.add_if(p.src_location, U_SRC_LOCATION);
        u.add_if(p.dest_location, U_DEST_LOCATION);
        let mig = |i: &Option<Instance<'_>>| i.as_ref().is_some_and(|i| i.managed_instance_group);
        u.add_if(mig(&p.src_instance) || mig(&p.dest_instance), U_MIG);
        u.add_if(p.internet_routing_details, U_ROUTING);
        u.add_if(p.network_service, U_DSCP);
        let far = match reporter(p.reporter.as_deref()) {
            Some(Side::Src) => p.dest_instance.is_some() || p.dest_vpc.is_some(),
            Some(Side::Dest) => p.src_instance.is_some() || p.src_vpc.is_some(),
            None => false,
        };
        u.add_if(far, U_FAR_INSTANCE);
        u.add_if(p.src_gke_details || p.dest_gke_details, U_GKE);
        u.add_if(p.rtt_msec, U_RTT);
        let conn = |s: &Option<GoogleService<'_>>| s.as_ref().is_some_and(|s| s.connectivity);
        u.add_if(conn(&p.src_google_service) || conn(&p.dest_google_service), U_CONNECTIVITY);
    }
}

/// The fields of a flow LogEntry this parser reads.
#[derive(Debug, Deserialize)]
struct Entry<'a> {
    #[serde(rename = "jsonPayload", borrow, default)]
    payload: Option<Payload<'a>>,
    #[serde(borrow, default)]
    resource: Resource<'a>,
    #[serde(borrow, default)]
    labels: EntryLabels<'a>,
    #[serde(rename = "logName", borrow, default, deserialize_with = "de::text")]
    log_name: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
struct EntryLabels<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    target_resource_name: Text<'a>,
}

#[derive(Debug, Deserialize)]
struct Payload<'a> {
    #[serde(borrow, default)]
    connection: Option<Connection<'a>>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    start_time: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    end_time: Text<'a>,
    #[serde(default)]
    bytes_sent: Num,
    #[serde(default)]
    packets_sent: Num,
    #[serde(borrow, default, deserialize_with = "de::text")]
    reporter: Text<'a>,
    #[serde(borrow, default)]
    src_instance: Option<Instance<'a>>,
    #[serde(borrow, default)]
    dest_instance: Option<Instance<'a>>,
    #[serde(borrow, default)]
    src_vpc: Option<Vpc<'a>>,
    #[serde(borrow, default)]
    dest_vpc: Option<Vpc<'a>>,
    #[serde(borrow, default)]
    src_google_service: Option<GoogleService<'a>>,
    #[serde(borrow, default)]
    dest_google_service: Option<GoogleService<'a>>,
    #[serde(default, deserialize_with = "de::present")]
    src_location: bool,
    #[serde(default, deserialize_with = "de::present")]
    dest_location: bool,
    #[serde(default, deserialize_with = "de::present")]
    internet_routing_details: bool,
    #[serde(default, deserialize_with = "de::present")]
    network_service: bool,
    #[serde(default, deserialize_with = "de::present")]
    src_gke_details: bool,
    #[serde(default, deserialize_with = "de::present")]
    dest_gke_details: bool,
    #[serde(default, deserialize_with = "de::present")]
    rtt_msec: bool,
}

#[derive(Debug, Deserialize)]
struct Connection<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    src_ip: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    dest_ip: Text<'a>,
    #[serde(default)]
    src_port: Num,
    #[serde(default)]
    dest_port: Num,
    #[serde(default)]
    protocol: Num,
}

#[derive(Debug, Deserialize)]
struct Instance<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    vm_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    project_id: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    region: Text<'a>,
    #[serde(default, deserialize_with = "de::present")]
    managed_instance_group: bool,
}

#[derive(Debug, Deserialize)]
struct Vpc<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    vpc_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    subnetwork_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    subnetwork_region: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    project_id: Text<'a>,
}

#[derive(Debug, Deserialize)]
struct GoogleService<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    service_name: Text<'a>,
    #[serde(rename = "type", borrow, default, deserialize_with = "de::text")]
    kind: Text<'a>,
    #[serde(default, deserialize_with = "de::present")]
    connectivity: bool,
}

/// Which end of the connection reported the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dest,
}

fn reporter(value: Option<&str>) -> Option<Side> {
    match value.map(str::trim) {
        Some(r) if r.eq_ignore_ascii_case("SRC") => Some(Side::Src),
        Some(r) if r.eq_ignore_ascii_case("DEST") => Some(Side::Dest),
        _ => None,
    }
}

struct Built<'a> {
    row: FlowRow<'a>,
    unknown_reporter: bool,
}

fn bad(field: &str, value: &str) -> Rejection {
    let shown: String = value.chars().take(64).collect();
    (Reason::BadField, format!("{field}: invalid value {shown:?}"))
}

fn time_of(field: &str, value: &Text<'_>) -> Result<Option<i64>, Rejection> {
    match value.as_deref() {
        None => Ok(None),
        Some(v) => json::parse_time(v)
            .map(Some)
            .ok_or_else(|| (Reason::BadTime, format!("{field}: {v:?} is not a time in range"))),
    }
}

fn ip<'a>(
    field: &str,
    value: &'a Text<'a>,
    scratch: &'a mut String,
) -> Result<Text<'a>, Rejection> {
    match value.as_deref() {
        None => Ok(None),
        Some(v) => {
            canonical_ip(v, scratch).map(|s| Some(Cow::Borrowed(s))).ok_or_else(|| bad(field, v))
        }
    }
}

fn num(
    field: &str,
    value: Num,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, Rejection> {
    value.in_range(range).map_err(|()| match value {
        Num::Int(v) => bad(field, &v.to_string()),
        _ => (Reason::BadField, format!("{field}: not an integer")),
    })
}

/// The network name of a `target_resource_name` such as `projects/1/global/networks/default`.
fn network_of(target: &str) -> Option<&str> {
    let (_, name) = target.rsplit_once("/networks/")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

fn borrowed<'a>(t: &'a Text<'a>) -> Text<'a> {
    non_empty(t.as_deref().map(Cow::Borrowed))
}

fn build_row<'a>(
    entry: &'a Entry<'a>,
    scratch: &'a mut [String; 2],
) -> Result<Built<'a>, Rejection> {
    let Some(p) = &entry.payload else {
        return Err((Reason::MissingField, "jsonPayload: absent".to_owned()));
    };
    let time = time_of("jsonPayload.start_time", &p.start_time)?
        .ok_or_else(|| (Reason::MissingField, "jsonPayload.start_time: absent".to_owned()))?;
    let end_time = time_of("jsonPayload.end_time", &p.end_time)?;
    let Some(conn) = &p.connection else {
        return Err((Reason::MissingField, "jsonPayload.connection: absent".to_owned()));
    };
    let [s0, s1] = scratch;
    let src_ip = ip("jsonPayload.connection.src_ip", &conn.src_ip, s0)?;
    let dst_ip = ip("jsonPayload.connection.dest_ip", &conn.dest_ip, s1)?;
    let protocol =
        num("jsonPayload.connection.protocol", conn.protocol, 0..=255)?.map(|v| v as i32);
    let icmp = matches!(protocol, Some(1) | Some(58));
    let port = |field: &str, value: Num| -> Result<Option<i32>, Rejection> {
        let p = num(field, value, 0..=65_535)?.map(|v| v as i32);
        Ok(if icmp && p == Some(0) { None } else { p })
    };
    let src_port = port("jsonPayload.connection.src_port", conn.src_port)?;
    let dst_port = port("jsonPayload.connection.dest_port", conn.dest_port)?;
    let bytes = num("jsonPayload.bytes_sent", p.bytes_sent, 0..=i64::MAX)?;
    let packets = num("jsonPayload.packets_sent", p.packets_sent, 0..=i64::MAX)?;

    let side = reporter(p.reporter.as_deref());
    let (instance, vpc, direction) = match side {
        Some(Side::Src) => (p.src_instance.as_ref(), p.src_vpc.as_ref(), Some("outbound")),
        Some(Side::Dest) => (p.dest_instance.as_ref(), p.dest_vpc.as_ref(), Some("inbound")),
        // Without a reporter, describe whichever side the entry describes (source first).
        None => match (&p.src_instance, &p.dest_instance) {
            (Some(i), _) => (Some(i), p.src_vpc.as_ref(), None),
            (None, Some(i)) => (Some(i), p.dest_vpc.as_ref(), None),
            (None, None) => (None, p.src_vpc.as_ref().or(p.dest_vpc.as_ref()), None),
        },
    };
    let labels = &entry.resource.labels;
    let vm = instance.and_then(|i| borrowed(&i.vm_name));
    let account = vpc
        .and_then(|v| borrowed(&v.project_id))
        .or_else(|| instance.and_then(|i| borrowed(&i.project_id)))
        .or_else(|| borrowed(&labels.project_id))
        .or_else(|| entry.log_name.as_deref().and_then(log_parent).map(Cow::Borrowed));
    let region = vpc
        .and_then(|v| borrowed(&v.subnetwork_region))
        .or_else(|| instance.and_then(|i| borrowed(&i.region)))
        .or_else(|| borrowed(&labels.location).filter(|l| l != "global"));
    let vpc_name = vpc.and_then(|v| borrowed(&v.vpc_name)).or_else(|| {
        entry.labels.target_resource_name.as_deref().and_then(network_of).map(Cow::Borrowed)
    });
    let subnet = vpc
        .and_then(|v| borrowed(&v.subnetwork_name))
        .or_else(|| borrowed(&labels.subnetwork_name));
    let service = |s: &'a Option<GoogleService<'a>>| -> Text<'a> {
        s.as_ref().and_then(|s| borrowed(&s.service_name).or_else(|| borrowed(&s.kind)))
    };

    let row = FlowRow {
        time,
        end_time,
        account,
        region,
        vpc: vpc_name,
        subnet,
        resource: vm.clone(),
        instance: vm,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        protocol,
        direction: direction.map(Cow::Borrowed),
        action: Some(Cow::Borrowed("allow")),
        bytes,
        packets,
        src_service: service(&p.src_google_service),
        dst_service: service(&p.dest_google_service),
        ..FlowRow::default()
    };
    Ok(Built { row, unknown_reporter: side.is_none() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::normalize_bytes;
    use serde_json::Value;

    fn rows(input: &str) -> Vec<serde_json::Map<String, Value>> {
        normalize_bytes("t.ndjson", input.as_bytes(), NAME, &ParseOptions::default(), None)
    }

    #[test]
    fn reporter_decides_resource_side_and_direction() {
        let src = FORMAT.example;
        let r = &rows(src)[0];
        assert_eq!(r["table"], "flows");
        assert_eq!(r["direction"], "outbound");
        assert_eq!(r["resource"], "vm-1");
        assert_eq!(r["instance"], "vm-1");
        assert_eq!(r["account"], "p");
        assert_eq!(r["region"], "us-central1");
        assert_eq!(r["bytes"], 36352);
        assert_eq!(r["packets"], 32);
        assert_eq!(r["action"], "allow");
        assert_eq!(r["time"], "2025-11-07T21:16:20.386845Z");

        let dest = src.replace("\"SRC\"", "\"DEST\"");
        let r = &rows(&dest)[0];
        assert_eq!(r["direction"], "inbound");
        // The DEST side has no instance or vpc in this entry: fall back to the log's project.
        assert_eq!(r["resource"], Value::Null);
        assert_eq!(r["account"], "p");
        assert_eq!(r["vpc"], Value::Null);
    }

    #[test]
    fn icmp_without_ports_and_networkmanagement_fallbacks() {
        let line = r#"{"jsonPayload":{"connection":{"src_ip":"192.0.2.6","dest_ip":"2001:0db8::1","protocol":58},"bytes_sent":"800","packets_sent":"20","start_time":"2025-09-27T21:13:05.056628399Z"},"labels":{"target_resource_name":"projects/123/global/networks/prod-net"},"logName":"projects/proj-a/logs/networkmanagement.googleapis.com%2Fvpc_flows","resource":{"type":"vpc_flow_logs_config","labels":{"location":"global"}}}"#;
        let r = &rows(line)[0];
        assert_eq!(r["protocol"], 58);
        assert_eq!(r["src_port"], Value::Null);
        assert_eq!(r["dst_ip"], "2001:db8::1");
        assert_eq!(r["vpc"], "prod-net");
        assert_eq!(r["account"], "proj-a");
        assert_eq!(r["region"], Value::Null, "location global is not a region");
        assert_eq!(r["direction"], Value::Null);
        assert_eq!(r["end_time"], Value::Null);
    }

    #[test]
    fn invalid_fields_are_quarantined_by_name() {
        let cases = [
            (r#""src_ip":"10.0.0.999""#, "jsonPayload.connection.src_ip"),
            (r#""src_port":70000"#, "jsonPayload.connection.src_port"),
            (r#""protocol":"tcp""#, "jsonPayload.connection.protocol"),
        ];
        for (field, name) in cases {
            let line = format!(
                r#"{{"jsonPayload":{{"connection":{{{field}}},"start_time":"2025-01-01T00:00:00Z"}},"logName":"projects/p/logs/compute.googleapis.com%2Fvpc_flows"}}"#
            );
            let r = &rows(&line)[0];
            assert_eq!(r["table"], "quarantine", "{line}");
            assert_eq!(r["reason"], "bad_field");
            assert!(r["detail"].as_str().is_some_and(|d| d.starts_with(name)), "{r:?}");
        }
        let r = &rows(
            r#"{"jsonPayload":{"bytes_sent":"-5","connection":{},"start_time":"2025-01-01T00:00:00Z"}}"#,
        )[0];
        assert_eq!(r["reason"], "bad_field");
        let r = &rows(r#"{"jsonPayload":{"connection":{}}}"#)[0];
        assert_eq!(r["reason"], "missing_field");
        let r = &rows(r#"{"jsonPayload":{"connection":{},"start_time":"yesterday"}}"#)[0];
        assert_eq!(r["reason"], "bad_time");
    }

    #[test]
    fn unmapped_fields_notes_and_caps_are_counted() {
        use crate::output::SourceInfo;
        let mut parser = VpcFlowParser::new(&ParseOptions::default());
        let mut out = Output::new(8, 0);
        out.begin_source(SourceInfo::lines("k", "t"), [0; 4]);
        out.set_format(NAME, Provider::Gcp);
        let with_extras = FORMAT.example.replace(
            r#""reporter":"SRC","#,
            r#""network_service":{"dscp":46},"dest_location":{"country":"usa"},"#,
        );
        for (i, line) in [FORMAT.example, with_extras.as_str()].iter().enumerate() {
            out.begin_record();
            parser.parse(&Record { line: i as u64 + 1, bytes: line.as_bytes() }, &mut out);
            out.end_record();
        }
        parser.finish(&mut out);
        let c = out.counts();
        assert_eq!(c.rows_in(Table::Flows), 2);
        assert_eq!(c.unmapped.get("gcp-vpcflow: jsonPayload.network_service.dscp"), Some(&1));
        assert_eq!(
            c.unmapped.get("gcp-vpcflow: jsonPayload.dest_location (country, city, asn)"),
            Some(&1)
        );
        assert_eq!(
            c.notes.get("gcp-vpcflow: reporter missing or unknown, direction left NULL"),
            Some(&1),
            "the second line lost its reporter"
        );

        let tiny = ParseOptions { max_field_len: 8, ..ParseOptions::default() };
        let r = &normalize_bytes("t", FORMAT.example.as_bytes(), NAME, &tiny, None)[0];
        assert_eq!(r["reason"], "field_too_large");
    }

    #[test]
    fn sniff_claims_flow_entries_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= 90);
        assert_eq!(
            sniff(br#"{"protoPayload":{},"logName":"projects/p/logs/cloudaudit.googleapis.com%2Factivity"}"#),
            0
        );
        assert_eq!(sniff(b"2 123 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1 2 ACCEPT OK"), 0);
    }
}
