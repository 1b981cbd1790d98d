//! Azure VNet flow logs, version 4 (`FlowLogFlowEvent`, `flowLogVersion` 4).
//!
//! Input: the hourly blob `PT1H.json` (`{"records":[...]}`) or one record per line. Nesting:
//! `flowRecords.flows[].aclID` → `.flowGroups[].rule` → `.flowTuples[]`, tuples being 13-field
//! CSV strings with epoch-millisecond times, the IANA protocol number, the state `B|C|E|D` and
//! the encryption flag `X|NX|NX_*` (see `tuples` for the row model). The record `time` has 7
//! fractional digits and is the blob write time; rows use tuple times.
//!
//! Promises:
//! - one `flows` row per flow (tuples of an allowed flow summed across the framed record; each
//!   D tuple a `deny` row with NULL counters), `encrypted` from X / NX*, `rule` from the flow
//!   group;
//! - `resource` = `targetResourceID` as written (the VNet, subnet or NIC the flow log
//!   targets), `vpc`/`subnet` = the VNet/subnet id within it when it names one, `account` =
//!   its subscription (lower-cased);
//! - a bad tuple is quarantined alone; a record without `flowRecords.flows` is quarantined
//!   (`missing_field`);
//! - `macAddress`, `aclID`, `flowLogGUID`, `flowLogResourceID`, `flowLogVersion` and the record
//!   `time` map to no column and are counted as unmapped.

use std::borrow::Cow;

use serde::Deserialize;

use super::common::{self, EnvelopeText};
use super::tuples::{self, Base, FlowTable, Shape};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json;
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::schema::{Provider, Table};

/// Format name.
pub const NAME: &str = "azure-vnetflow";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Azure,
    tables: &[Table::Flows],
    framing: Framing::Json,
    description: "Azure VNet flow logs v4 (PT1H.json {\"records\":[...]} blobs or one record per line); tuple counters summed per flow, encryption flag",
    example: r#"{"time":"2022-09-14T09:00:52.5625085Z","flowLogVersion":4,"macAddress":"00224871C205","category":"FlowLogFlowEvent","targetResourceID":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet","flowRecords":{"flows":[{"aclID":"00000000-1234-abcd-ef00-c1c2c3c4c5c6","flowGroups":[{"rule":"DefaultRule_AllowInternetOutBound","flowTuples":["1663146003599,10.0.0.6,52.239.184.180,23956,443,6,O,B,NX,0,0,0,0","1663146003606,10.0.0.6,52.239.184.180,23956,443,6,O,E,NX,3,767,2,1580"]}]}]}}"#,
    sniff,
    new_parser,
};

const ENVELOPE: EnvelopeText = EnvelopeText {
    empty: "azure-vnetflow: empty records envelope",
    nested: "azure-vnetflow: records envelope nested inside records, parsed",
};

/// Confidence that a record is a VNet flow log record or blob: its category or version key.
fn sniff(record: &[u8]) -> u8 {
    let head = json::head(record, 4096);
    if json::contains(head, b"\"FlowLogFlowEvent\"") {
        95
    } else if json::contains(head, b"\"flowLogVersion\"")
        && json::contains(head, b"\"flowRecords\"")
    {
        90
    } else {
        0
    }
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(VnetFlowParser { options: options.clone(), unmapped: Unmapped::default() }))
}

#[derive(Deserialize)]
struct VnetRecord<'a> {
    #[serde(default, deserialize_with = "json::de::present")]
    time: bool,
    #[serde(default, rename = "flowLogVersion", deserialize_with = "json::de::present")]
    version: bool,
    #[serde(default, rename = "flowLogGUID", deserialize_with = "json::de::present")]
    guid: bool,
    #[serde(default, borrow, rename = "macAddress", deserialize_with = "json::de::text")]
    mac: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "flowLogResourceID", deserialize_with = "json::de::text")]
    flow_log_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "targetResourceID", deserialize_with = "json::de::text")]
    target_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "flowRecords")]
    flow_records: Option<FlowRecords<'a>>,
}

#[derive(Deserialize)]
struct FlowRecords<'a> {
    #[serde(default, borrow)]
    flows: Option<Vec<AclGroup<'a>>>,
}

#[derive(Deserialize)]
struct AclGroup<'a> {
    #[serde(default, rename = "aclID", deserialize_with = "json::de::present")]
    acl_id: bool,
    #[serde(default, borrow, rename = "flowGroups")]
    flow_groups: Vec<RuleGroup<'a>>,
}

#[derive(Deserialize)]
struct RuleGroup<'a> {
    #[serde(default, borrow, deserialize_with = "json::de::text")]
    rule: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "flowTuples")]
    flow_tuples: Vec<Cow<'a, str>>,
}

/// Rows that carried fields mapping to no column, reported at the end of the source.
#[derive(Debug, Default)]
struct Unmapped {
    mac: u64,
    acl_id: u64,
    guid: u64,
    flow_log_id: u64,
    version: u64,
    time: u64,
}

/// Parser state for one source: options and unmapped-field counts.
#[derive(Debug)]
struct VnetFlowParser {
    options: ParseOptions,
    unmapped: Unmapped,
}

impl Parser for VnetFlowParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let options = &self.options;
        let mut decoded: Vec<(Record<'_>, VnetRecord<'_>)> = Vec::new();
        common::for_each_record(record, options, out, ENVELOPE, &mut |element, out| {
            match json::decode::<VnetRecord<'_>>(element.bytes, options) {
                Ok(r) => decoded.push((*element, r)),
                Err((reason, detail)) => out.quarantine(element, reason, &detail),
            }
        });
        let mut table = FlowTable::default();
        let mut empty = false;
        let mut seconds = 0u64;
        for (element, rec) in &decoded {
            let Some(acls) = rec.flow_records.as_ref().and_then(|f| f.flows.as_ref()) else {
                out.quarantine(
                    element,
                    Reason::MissingField,
                    "flowRecords.flows: absent from a VNet flow record",
                );
                continue;
            };
            let target = rec.target_id.as_deref().or(rec.flow_log_id.as_deref());
            let (vpc, subnet) = match rec.target_id.as_deref() {
                Some(t) => (
                    common::id_through(t, "virtualnetworks").map(Cow::Borrowed),
                    common::id_through(t, "subnets").map(Cow::Borrowed),
                ),
                None => (None, None),
            };
            let account = target.and_then(common::subscription);
            let scope = rec.mac.as_deref().unwrap_or_default();
            let before = table.len();
            let mut tuple_count = 0usize;
            for acl in acls {
                for group in &acl.flow_groups {
                    let base = Base {
                        account: account.clone(),
                        vpc: vpc.clone(),
                        subnet: subnet.clone(),
                        resource: common::non_empty(rec.target_id.as_deref().map(Cow::Borrowed)),
                        rule: common::non_empty(group.rule.as_deref().map(Cow::Borrowed)),
                    };
                    for text in &group.flow_tuples {
                        tuple_count += 1;
                        match tuples::parse(text, Shape::VNet) {
                            Ok(t) => {
                                seconds += u64::from(t.vnet_seconds);
                                table.add(scope, t, &base);
                            }
                            Err((reason, detail)) => out.quarantine(
                                &Record { line: record.line, bytes: text.as_bytes() },
                                reason,
                                &detail,
                            ),
                        }
                    }
                }
            }
            empty |= tuple_count == 0;
            let rows = (table.len() - before) as u64;
            let count = |present: bool| if present { rows } else { 0 };
            self.unmapped.mac += count(rec.mac.is_some());
            self.unmapped.acl_id += count(acls.iter().any(|a| a.acl_id));
            self.unmapped.guid += count(rec.guid);
            self.unmapped.flow_log_id += count(rec.flow_log_id.is_some());
            self.unmapped.version += count(rec.version);
            self.unmapped.time += count(rec.time);
        }
        for _ in 0..seconds {
            out.note("azure-vnetflow: tuple time in epoch seconds (VNet tuples use milliseconds)");
        }
        if empty && table.len() == 0 {
            out.skip("azure-vnetflow: record without flow tuples");
        }
        table.emit(record, out, "azure-vnetflow: tuple times out of order within a flow");
    }

    fn finish(&mut self, out: &mut Output) {
        let u = std::mem::take(&mut self.unmapped);
        out.note_unmapped(NAME, "macAddress", u.mac);
        out.note_unmapped(NAME, "aclID", u.acl_id);
        out.note_unmapped(NAME, "flowLogGUID", u.guid);
        out.note_unmapped(NAME, "flowLogResourceID", u.flow_log_id);
        out.note_unmapped(NAME, "flowLogVersion", u.version);
        out.note_unmapped(NAME, "time (record write time; rows use tuple times)", u.time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SNIFF_THRESHOLD;
    use crate::golden::normalize_bytes;
    use serde_json::Value;

    #[test]
    fn example_record_is_one_summed_encrypted_flag_flow() {
        let rows =
            normalize_bytes("t", FORMAT.example.as_bytes(), NAME, &ParseOptions::default(), None);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r["time"], "2022-09-14T09:00:03.599Z");
        assert_eq!(r["end_time"], "2022-09-14T09:00:03.606Z");
        assert_eq!((r["bytes"].as_i64(), r["packets"].as_i64()), (Some(767 + 1580), Some(5)));
        assert_eq!(r["encrypted"], Value::Bool(false));
        assert_eq!(
            r["vpc"],
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet"
        );
        assert_eq!(r["subnet"], Value::Null);
        assert_eq!(r["account"], "00000000-0000-0000-0000-000000000000");
    }

    #[test]
    fn missing_flow_records_are_quarantined() {
        let rows = normalize_bytes(
            "t",
            br#"{"records":[{"category":"FlowLogFlowEvent","time":"2022-09-14T09:00:52Z"},{"flowRecords":{"flows":[{"flowGroups":[]}]}}]}"#,
            NAME,
            &ParseOptions::default(),
            None,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["reason"], "missing_field");
        assert!(rows[0]["detail"].as_str().is_some_and(|d| d.contains("flowRecords.flows")));
    }

    #[test]
    fn sniff_claims_vnet_records_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= SNIFF_THRESHOLD);
        assert_eq!(sniff(br#"{"category":"NetworkSecurityGroupFlowEvent"}"#), 0);
    }
}
