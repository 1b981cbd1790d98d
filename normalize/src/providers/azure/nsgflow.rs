//! Azure NSG flow logs, versions 1 and 2 (`NetworkSecurityGroupFlowEvent`).
//!
//! Input: the hourly blob `PT1H.json` (`{"records":[...]}`, one element per minute and NSG),
//! or one record per line (Event Hub / shipper NDJSON). Nesting:
//! `properties.flows[].rule` → `.flows[].mac` → `.flowTuples[]`, tuples being CSV strings
//! (8 fields in v1, 13 in v2; see `tuples` for the shapes and the row model).
//!
//! Promises:
//! - one `flows` row per flow (v2 tuples of an allowed flow summed across the whole framed
//!   record, i.e. the whole blob; v1 and denied tuples one row each), `time` from the tuples
//!   (epoch seconds), `rule` from the rule group, `resource` = the NSG `resourceId` as written,
//!   `account` = its subscription (lower-cased), protocol T/U → 6/17, I/O → inbound/outbound,
//!   A/D → allow/deny;
//! - a bad tuple is quarantined alone (its own bytes, the field named in the detail), the rest
//!   of the record is kept; a record without `properties.flows` is quarantined
//!   (`missing_field`) unless its category says it is another NSG log (skipped);
//! - the NSG v1 documentation sample nests a `{"records":[...]}` object inside `records`: it
//!   is parsed (one level deep) and counted as a note, so its rows appear as published
//!   (the sample repeats two of the outer records, so those rows appear twice);
//! - the MAC address, `systemId`, the record `time` (blob write time; rows use tuple times) and
//!   `properties.Version` map to no column and are counted as unmapped.

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
pub const NAME: &str = "azure-nsgflow";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Azure,
    tables: &[Table::Flows],
    framing: Framing::Json,
    description: "Azure NSG flow logs v1/v2 (PT1H.json {\"records\":[...]} blobs or one record per line); v2 tuple counters summed per flow",
    example: r#"{"records":[{"time":"2018-11-13T12:00:35.3899262Z","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/NSG","operationName":"NetworkSecurityGroupFlowEvents","properties":{"Version":2,"flows":[{"rule":"DefaultRule_AllowInternetOutBound","flows":[{"mac":"000D3AF87856","flowTuples":["1542110379,10.5.16.4,203.0.113.117,59932,443,T,O,A,E,1,66,1,66"]}]}]}}]}"#,
    sniff,
    new_parser,
};

const CATEGORY: &str = "NetworkSecurityGroupFlowEvent";

const ENVELOPE: EnvelopeText = EnvelopeText {
    empty: "azure-nsgflow: empty records envelope",
    nested: "azure-nsgflow: records envelope nested inside records (documentation sample), parsed",
};

/// Confidence that a record is an NSG flow log record or blob: its category name.
fn sniff(record: &[u8]) -> u8 {
    let head = json::head(record, 4096);
    if json::contains(head, b"\"NetworkSecurityGroupFlowEvent\"") {
        95
    } else if json::contains(head, b"\"NetworkSecurityGroupFlowEvents\"")
        && json::contains(record, b"\"flowTuples\"")
    {
        90
    } else {
        0
    }
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(NsgFlowParser { options: options.clone(), unmapped: Unmapped::default() }))
}

#[derive(Deserialize)]
struct NsgRecord<'a> {
    #[serde(default, deserialize_with = "json::de::present")]
    time: bool,
    #[serde(default, rename = "systemId", deserialize_with = "json::de::present")]
    system_id: bool,
    #[serde(default, borrow, deserialize_with = "json::de::text")]
    category: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "resourceId", deserialize_with = "json::de::text")]
    resource_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    properties: Option<Properties<'a>>,
}

#[derive(Deserialize)]
struct Properties<'a> {
    #[serde(default, rename = "Version", deserialize_with = "json::de::present")]
    version: bool,
    #[serde(default, borrow)]
    flows: Option<Vec<RuleGroup<'a>>>,
}

#[derive(Deserialize)]
struct RuleGroup<'a> {
    #[serde(default, borrow, deserialize_with = "json::de::text")]
    rule: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    flows: Vec<MacGroup<'a>>,
}

#[derive(Deserialize)]
struct MacGroup<'a> {
    #[serde(default, borrow, deserialize_with = "json::de::text")]
    mac: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "flowTuples")]
    flow_tuples: Vec<Cow<'a, str>>,
}

/// Rows that carried fields mapping to no column, reported at the end of the source.
#[derive(Debug, Default)]
struct Unmapped {
    mac: u64,
    system_id: u64,
    time: u64,
    version: u64,
}

/// Parser state for one source: options and unmapped-field counts.
#[derive(Debug)]
struct NsgFlowParser {
    options: ParseOptions,
    unmapped: Unmapped,
}

impl Parser for NsgFlowParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let options = &self.options;
        let mut decoded: Vec<(Record<'_>, NsgRecord<'_>)> = Vec::new();
        common::for_each_record(record, options, out, ENVELOPE, &mut |element, out| {
            match json::decode::<NsgRecord<'_>>(element.bytes, options) {
                Ok(r) => decoded.push((*element, r)),
                Err((reason, detail)) => out.quarantine(element, reason, &detail),
            }
        });
        let mut table = FlowTable::default();
        let mut any_tuple = false;
        for (element, rec) in &decoded {
            let Some(groups) = rec.properties.as_ref().and_then(|p| p.flows.as_ref()) else {
                match rec.category.as_deref() {
                    Some(c) if c != CATEGORY => out.skip("azure-nsgflow: not a flow event record"),
                    _ => out.quarantine(
                        element,
                        Reason::MissingField,
                        "properties.flows: absent from an NSG flow record",
                    ),
                }
                continue;
            };
            let resource = common::non_empty(rec.resource_id.as_deref().map(Cow::Borrowed));
            let account = rec.resource_id.as_deref().and_then(common::subscription);
            let before = table.len();
            for group in groups {
                let base = Base {
                    account: account.clone(),
                    resource: resource.clone(),
                    rule: common::non_empty(group.rule.as_deref().map(Cow::Borrowed)),
                    ..Base::default()
                };
                for mac_group in &group.flows {
                    let scope = mac_group.mac.as_deref().unwrap_or_default();
                    for text in &mac_group.flow_tuples {
                        any_tuple = true;
                        match tuples::parse(text, Shape::Nsg) {
                            Ok(t) => table.add(scope, t, &base),
                            Err((reason, detail)) => out.quarantine(
                                &Record { line: record.line, bytes: text.as_bytes() },
                                reason,
                                &detail,
                            ),
                        }
                    }
                }
            }
            let rows = (table.len() - before) as u64;
            let has_mac = groups.iter().any(|g| g.flows.iter().any(|m| m.mac.is_some()));
            self.unmapped.mac += if has_mac { rows } else { 0 };
            self.unmapped.system_id += if rec.system_id { rows } else { 0 };
            self.unmapped.time += if rec.time { rows } else { 0 };
            let version = rec.properties.as_ref().is_some_and(|p| p.version);
            self.unmapped.version += if version { rows } else { 0 };
        }
        let with_flows =
            decoded.iter().any(|(_, r)| r.properties.as_ref().is_some_and(|p| p.flows.is_some()));
        if !any_tuple && with_flows {
            out.skip("azure-nsgflow: record without flow tuples");
        }
        table.emit(record, out, "azure-nsgflow: tuple times out of order within a flow");
    }

    fn finish(&mut self, out: &mut Output) {
        let u = std::mem::take(&mut self.unmapped);
        out.note_unmapped(NAME, "mac", u.mac);
        out.note_unmapped(NAME, "systemId", u.system_id);
        out.note_unmapped(NAME, "time (record write time; rows use tuple times)", u.time);
        out.note_unmapped(NAME, "properties.Version", u.version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SNIFF_THRESHOLD;
    use crate::golden::normalize_bytes;
    use serde_json::Value;

    #[test]
    fn v2_blob_sums_flows_and_keeps_deny_tuples() {
        let blob = br#"{"records":[{"time":"2018-11-13T12:00:35.3899262Z","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/AB-CD/RESOURCEGROUPS/G/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/N","properties":{"Version":2,"flows":[
            {"rule":"R1","flows":[{"mac":"000D3AF87856","flowTuples":["1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,A,B,,,,","1542110402,192.0.2.190,10.5.16.4,28746,443,U,I,D,B,,,,","bad"]}]}]}},
            {"time":"2018-11-13T12:01:35Z","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/AB-CD/RESOURCEGROUPS/G/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/N","properties":{"Version":2,"flows":[
            {"rule":"R1","flows":[{"mac":"000D3AF87856","flowTuples":["1542110437,10.5.16.4,203.0.113.118,59831,443,T,O,A,E,3,300,2,200"]}]}]}}]}"#;
        let rows = normalize_bytes("t", blob, NAME, &ParseOptions::default(), None);
        let tables: Vec<&str> = rows.iter().filter_map(|r| r["table"].as_str()).collect();
        assert_eq!(tables, ["flows", "flows", "quarantine"]);
        let summed = &rows[0];
        assert_eq!(summed["bytes"], Value::from(500));
        assert_eq!(summed["packets"], Value::from(5));
        assert_eq!(summed["time"], "2018-11-13T11:59:37Z");
        assert_eq!(summed["end_time"], "2018-11-13T12:00:37Z");
        assert_eq!(summed["account"], "ab-cd");
        assert_eq!(summed["rule"], "R1");
        assert_eq!(summed["direction"], "outbound");
        let denied = &rows[1];
        assert_eq!(
            (denied["action"].as_str(), denied["protocol"].as_i64()),
            (Some("deny"), Some(17))
        );
        assert_eq!(denied["bytes"], Value::Null);
        assert_eq!(rows[2]["raw_prefix"], "bad");
        assert_eq!(rows[2]["reason"], "field_count");
    }

    #[test]
    fn records_without_flows() {
        let rows = normalize_bytes(
            "t",
            br#"{"category":"NetworkSecurityGroupFlowEvent","properties":{}}
{"category":"NetworkSecurityGroupRuleCounter","properties":{"x":1}}
{"category":"NetworkSecurityGroupFlowEvent","properties":{"flows":[]}}
{"category":"NetworkSecurityGroupFlowEvent","properties":{"flows":7}}"#,
            NAME,
            &ParseOptions::default(),
            None,
        );
        let reasons: Vec<&str> = rows.iter().filter_map(|r| r["reason"].as_str()).collect();
        assert_eq!(reasons, ["missing_field", "bad_json"]);
    }

    #[test]
    fn sniff_claims_nsg_records_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= SNIFF_THRESHOLD);
        assert_eq!(sniff(br#"{"category":"FlowLogFlowEvent","flowRecords":{}}"#), 0);
        assert_eq!(sniff(b"1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,A"), 0);
    }
}
