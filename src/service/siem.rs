//! The SIEM feed: normalized events and alerts as OCSF JSON on Kafka topics, written by an
//! idempotent producer (`enable.idempotence=true`, `acks=all`), keyed for ordering.
//!
//! Rows are published only after the lake commit that holds them (the committer calls
//! [`Siem::publish_rows`] once the commit succeeded), so the feed lags the lake and is never
//! ahead of it. Mapping (OCSF 1.3):
//!
//! | ztlake | OCSF class | key |
//! |---|---|---|
//! | `flows` | Network Activity (4001), activity Traffic (6) | `src_ip` |
//! | `signins` | Authentication (3002), activity Logon (1); status Success/Failure | `user_id`, else `user` |
//! | `cert_events` with activity `handshake_failed` | Network Activity (4001), activity Fail (4), the certificate under `tls.certificate` | `cert_id`, else `serial`, else `subject` |
//! | other `cert_events` | Entity Management (3004): issued/imported/requested → Create (1), exported → Read (2), renewed → Update (3), revoked/deleted → Delete (4), others → Other (99); the certificate as `entity` (type `Certificate`) | `cert_id`, else `serial`, else `subject` |
//! | alerts | Detection Finding (2004), Create (1) when first raised, Update (2) after | `alert_id` |
//!
//! Every event carries `metadata.uid` = the row's `event_uid` (stable across replays: a SIEM can
//! deduplicate), `metadata.log_name` = the ztlake format, `cloud.provider`/`account`/`region`,
//! and what has no OCSF attribute under `unmapped` (`source`, …). Times are epoch milliseconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use serde_json::{Map, Value, json};
use ztlake_detections::Alert;
use ztlake_detections::alert::rfc3339;
use ztlake_ingest::kafka::rdkafka::ClientConfig;
use ztlake_ingest::kafka::rdkafka::error::KafkaError;
use ztlake_ingest::kafka::rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
};
use ztlake_ingest::kafka::rdkafka::types::RDKafkaErrorCode;
use ztlake_ingest::kafka::rdkafka::{ClientContext, Message};
use ztlake_normalize::Table;

use super::config::SiemSection;
use super::metrics::Metrics;

/// The OCSF schema version the feed writes.
pub const OCSF_VERSION: &str = "1.3.0";

/// Counts deliveries per topic into the metrics.
struct FeedContext {
    metrics: Arc<Metrics>,
}

impl ClientContext for FeedContext {}

impl ProducerContext for FeedContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => self.metrics.siem_sent(m.topic(), 1),
            Err((e, m)) => {
                self.metrics.siem_error(m.topic());
                tracing::warn!(topic = m.topic(), error = %e, "SIEM feed message not delivered");
            }
        }
    }
}

/// The feed's producer and settings.
pub(crate) struct Siem {
    producer: ThreadedProducer<FeedContext>,
    config: SiemSection,
    tables: Vec<Table>,
}

impl std::fmt::Debug for Siem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Siem").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Siem {
    /// Create the idempotent producer.
    pub(crate) fn start(config: &SiemSection, metrics: Arc<Metrics>) -> Result<Siem> {
        let mut client = ClientConfig::new();
        let props =
            config.properties.resolve().map_err(|e| anyhow::anyhow!("siem.properties: {e}"))?;
        for (k, v) in props {
            client.set(k, v);
        }
        client
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all");
        let producer: ThreadedProducer<FeedContext> = client
            .create_with_context(FeedContext { metrics })
            .with_context(|| format!("siem: creating the producer for {}", config.brokers))?;
        let tables = config.tables.iter().filter_map(|t| Table::from_name(t)).collect();
        Ok(Siem { producer, config: config.clone(), tables })
    }

    /// Whether rows of `table` go to the feed.
    pub(crate) fn wants(&self, table: Table) -> bool {
        !self.config.events_topic.is_empty() && self.tables.contains(&table)
    }

    /// Send one message, waiting while the producer's queue is full (blocking).
    fn send(&self, topic: &str, key: &str, payload: &str) -> Result<()> {
        let mut record = BaseRecord::<str, str>::to(topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    return Err(anyhow::anyhow!("siem: producing to {topic}: {e}"));
                }
            }
        }
    }

    /// Publish committed rows (blocking).
    pub(crate) fn publish_rows(&self, batches: &[(Table, RecordBatch)]) -> Result<()> {
        let topic = self.config.events_topic.as_str();
        for (table, batch) in batches {
            let view = View::new(batch);
            for i in 0..batch.num_rows() {
                let (key, event) = match table {
                    Table::Flows => flow_event(&view, i),
                    Table::Signins => signin_event(&view, i),
                    Table::CertEvents => cert_event(&view, i),
                    _ => continue,
                };
                self.send(topic, &key, &event.to_string())?;
            }
        }
        Ok(())
    }

    /// Publish alerts as Detection Findings (blocking).
    pub(crate) fn publish_alerts(&self, alerts: &[(Alert, bool)]) -> Result<()> {
        if self.config.alerts_topic.is_empty() {
            return Ok(());
        }
        for (alert, new) in alerts {
            let finding = detection_finding(alert, *new);
            self.send(&self.config.alerts_topic, &alert.alert_id, &finding.to_string())?;
        }
        Ok(())
    }

    /// Wait (at most `timeout`) until every queued message is delivered.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(timeout).context("siem: flushing the producer")
    }
}

/// Typed, by-name access to a batch's columns (cast once per batch).
pub(crate) struct View {
    text: HashMap<String, StringArray>,
    ints: HashMap<String, Int64Array>,
    times: HashMap<String, TimestampMicrosecondArray>,
    bools: HashMap<String, BooleanArray>,
    lists: HashMap<String, ListArray>,
}

impl View {
    pub(crate) fn new(batch: &RecordBatch) -> View {
        let mut v = View {
            text: HashMap::new(),
            ints: HashMap::new(),
            times: HashMap::new(),
            bools: HashMap::new(),
            lists: HashMap::new(),
        };
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name().clone();
            let cast = |to: &DataType| -> Option<ArrayRef> {
                if col.data_type() == to {
                    Some(col.clone())
                } else {
                    arrow::compute::cast(col, to).ok()
                }
            };
            match col.data_type() {
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                    if let Some(a) = cast(&DataType::Int64) {
                        v.ints.insert(name, a.as_primitive::<Int64Type>().clone());
                    }
                }
                DataType::Timestamp(..) => {
                    if let Some(a) = cast(&ts) {
                        v.times.insert(name, a.as_primitive::<TimestampMicrosecondType>().clone());
                    }
                }
                DataType::Boolean => {
                    v.bools.insert(name, col.as_boolean().clone());
                }
                DataType::List(_) => {
                    v.lists.insert(name, col.as_list::<i32>().clone());
                }
                _ => {
                    if let Some(a) = cast(&DataType::Utf8) {
                        v.text.insert(name, a.as_string::<i32>().clone());
                    }
                }
            }
        }
        v
    }

    pub(crate) fn s(&self, name: &str, i: usize) -> Option<&str> {
        let a = self.text.get(name)?;
        (i < a.len() && !a.is_null(i)).then(|| a.value(i))
    }

    pub(crate) fn n(&self, name: &str, i: usize) -> Option<i64> {
        let a = self.ints.get(name)?;
        (i < a.len() && !a.is_null(i)).then(|| a.value(i))
    }

    /// A timestamp in epoch milliseconds.
    pub(crate) fn ms(&self, name: &str, i: usize) -> Option<i64> {
        let a = self.times.get(name)?;
        (i < a.len() && !a.is_null(i)).then(|| a.value(i).div_euclid(1000))
    }

    pub(crate) fn b(&self, name: &str, i: usize) -> Option<bool> {
        let a = self.bools.get(name)?;
        (i < a.len() && !a.is_null(i)).then(|| a.value(i))
    }

    pub(crate) fn list(&self, name: &str, i: usize) -> Option<Vec<String>> {
        let a = self.lists.get(name)?;
        if i >= a.len() || a.is_null(i) {
            return None;
        }
        let values = a.value(i);
        let values = arrow::compute::cast(&values, &DataType::Utf8).ok()?;
        let values = values.as_string::<i32>();
        Some(values.iter().flatten().map(str::to_owned).collect())
    }
}

/// Insert `value` under `key` unless it is null.
fn put(map: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    let value = value.into();
    if !value.is_null() {
        map.insert(key.to_owned(), value);
    }
}

/// An object without its null members; `None` when nothing is left.
fn obj(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        let empty_obj = v.as_object().is_some_and(Map::is_empty);
        if !v.is_null() && !empty_obj {
            m.insert(k.to_owned(), v);
        }
    }
    if m.is_empty() { Value::Null } else { Value::Object(m) }
}

fn text(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

/// The members every event shares: class, activity, time, metadata, cloud.
fn base(
    v: &View,
    i: usize,
    class: (u32, &str, u32, &str),
    activity: (u32, &str),
) -> Map<String, Value> {
    let (class_uid, class_name, category_uid, category_name) = class;
    let (activity_id, activity_name) = activity;
    let mut m = Map::new();
    put(&mut m, "class_uid", class_uid);
    put(&mut m, "class_name", class_name);
    put(&mut m, "category_uid", category_uid);
    put(&mut m, "category_name", category_name);
    put(&mut m, "activity_id", activity_id);
    put(&mut m, "activity_name", activity_name);
    put(&mut m, "type_uid", u64::from(class_uid) * 100 + u64::from(activity_id));
    put(&mut m, "type_name", format!("{class_name}: {activity_name}"));
    put(&mut m, "severity_id", 1);
    put(&mut m, "severity", "Informational");
    put(&mut m, "time", v.ms("time", i).map_or(Value::Null, Value::from));
    put(
        &mut m,
        "metadata",
        json!({
            "version": OCSF_VERSION,
            "uid": v.s("event_uid", i),
            "log_name": v.s("format", i),
            "log_provider": v.s("provider", i),
            "product": { "name": "ztlake", "vendor_name": "ztlake", "version": env!("CARGO_PKG_VERSION") },
        }),
    );
    put(
        &mut m,
        "cloud",
        obj(vec![
            ("provider", text(v.s("provider", i))),
            ("account", obj(vec![("uid", text(v.s("account", i)))])),
            ("region", text(v.s("region", i))),
        ]),
    );
    m
}

fn key_of(candidates: &[Option<&str>], fallback: Option<&str>) -> String {
    candidates.iter().flatten().next().copied().or(fallback).unwrap_or_default().to_owned()
}

/// A `flows` row as OCSF Network Activity (4001) Traffic.
pub(crate) fn flow_event(v: &View, i: usize) -> (String, Value) {
    let mut m = base(v, i, (4001, "Network Activity", 4, "Network Activity"), (6, "Traffic"));
    put(&mut m, "start_time", v.ms("time", i).map_or(Value::Null, Value::from));
    put(&mut m, "end_time", v.ms("end_time", i).map_or(Value::Null, Value::from));
    let endpoint = |ip: &str, port: &str| {
        obj(vec![("ip", text(v.s(ip, i))), ("port", v.n(port, i).map_or(Value::Null, Value::from))])
    };
    let mut src = endpoint("src_ip", "src_port");
    if let Value::Object(o) = &mut src {
        put(o, "vpc_uid", text(v.s("vpc", i)));
        put(o, "subnet_uid", text(v.s("subnet", i)));
        put(o, "interface_uid", text(v.s("resource", i)));
        put(o, "instance_uid", text(v.s("instance", i)));
    }
    put(&mut m, "src_endpoint", src);
    put(&mut m, "dst_endpoint", endpoint("dst_ip", "dst_port"));
    let (direction_id, direction) = match v.s("direction", i) {
        Some("inbound") => (1, "Inbound"),
        Some("outbound") => (2, "Outbound"),
        _ => (0, "Unknown"),
    };
    let protocol = v.n("protocol", i);
    let protocol_name = match protocol {
        Some(6) => Value::from("tcp"),
        Some(17) => Value::from("udp"),
        Some(1) => Value::from("icmp"),
        Some(58) => Value::from("ipv6-icmp"),
        _ => Value::Null,
    };
    put(
        &mut m,
        "connection_info",
        obj(vec![
            ("protocol_num", protocol.map_or(Value::Null, Value::from)),
            ("protocol_name", protocol_name),
            ("direction_id", Value::from(direction_id)),
            ("direction", Value::from(direction)),
            ("tcp_flags", v.n("tcp_flags", i).map_or(Value::Null, Value::from)),
        ]),
    );
    put(
        &mut m,
        "traffic",
        obj(vec![
            ("bytes", v.n("bytes", i).map_or(Value::Null, Value::from)),
            ("packets", v.n("packets", i).map_or(Value::Null, Value::from)),
        ]),
    );
    match v.s("action", i) {
        Some("allow") => {
            put(&mut m, "action_id", 1);
            put(&mut m, "action", "Allowed");
            put(&mut m, "disposition_id", 1);
            put(&mut m, "disposition", "Allowed");
        }
        Some("deny") => {
            put(&mut m, "action_id", 2);
            put(&mut m, "action", "Denied");
            put(&mut m, "disposition_id", 2);
            put(&mut m, "disposition", "Blocked");
        }
        _ => {}
    }
    put(&mut m, "tls", obj(vec![("version", text(v.s("tls_version", i)))]));
    put(
        &mut m,
        "unmapped",
        obj(vec![
            ("source", text(v.s("source", i))),
            ("status", text(v.s("status", i))),
            ("rule", text(v.s("rule", i))),
            ("peer_identity", text(v.s("peer_identity", i))),
            ("tls_error", text(v.s("tls_error", i))),
            ("traffic_path", text(v.s("traffic_path", i))),
            ("encrypted", v.b("encrypted", i).map_or(Value::Null, Value::from)),
        ]),
    );
    (key_of(&[v.s("src_ip", i)], v.s("event_uid", i)), Value::Object(m))
}

/// A `signins` row as OCSF Authentication (3002) Logon.
pub(crate) fn signin_event(v: &View, i: usize) -> (String, Value) {
    let mut m =
        base(v, i, (3002, "Authentication", 3, "Identity & Access Management"), (1, "Logon"));
    match v.s("outcome", i) {
        Some("success") => {
            put(&mut m, "status_id", 1);
            put(&mut m, "status", "Success");
        }
        Some("failure") => {
            put(&mut m, "status_id", 2);
            put(&mut m, "status", "Failure");
        }
        _ => {}
    }
    put(&mut m, "status_detail", text(v.s("failure_reason", i)));
    let (type_id, type_name) = match v.s("user_type", i) {
        Some("human" | "federated") => (1, "User"),
        Some("root") => (2, "Admin"),
        Some("service") => (3, "System"),
        _ => (0, "Unknown"),
    };
    put(
        &mut m,
        "user",
        obj(vec![
            ("name", text(v.s("user", i))),
            ("uid", text(v.s("user_id", i))),
            ("type_id", Value::from(type_id)),
            ("type", Value::from(type_name)),
        ]),
    );
    put(&mut m, "is_mfa", v.b("mfa", i).map_or(Value::Null, Value::from));
    if let Some(method) = v.s("mfa_method", i) {
        put(&mut m, "auth_factors", json!([{ "factor_type": method }]));
    }
    put(
        &mut m,
        "src_endpoint",
        obj(vec![
            ("ip", text(v.s("src_ip", i))),
            ("location", obj(vec![("country", text(v.s("country", i)))])),
        ]),
    );
    put(&mut m, "http_request", obj(vec![("user_agent", text(v.s("user_agent", i)))]));
    put(
        &mut m,
        "device",
        obj(vec![
            ("uid", text(v.s("device_id", i))),
            ("is_managed", v.b("device_managed", i).map_or(Value::Null, Value::from)),
            ("is_compliant", v.b("device_compliant", i).map_or(Value::Null, Value::from)),
        ]),
    );
    put(&mut m, "service", obj(vec![("name", text(v.s("app", i)))]));
    put(&mut m, "session", obj(vec![("uid", text(v.s("session_id", i)))]));
    put(&mut m, "risk_level", text(v.s("risk_level", i)));
    put(
        &mut m,
        "unmapped",
        obj(vec![
            ("source", text(v.s("source", i))),
            ("event", text(v.s("event", i))),
            ("via_idp", v.b("via_idp", i).map_or(Value::Null, Value::from)),
            ("role", text(v.s("role", i))),
            ("conditional_access", text(v.s("conditional_access", i))),
        ]),
    );
    (key_of(&[v.s("user_id", i), v.s("user", i)], v.s("event_uid", i)), Value::Object(m))
}

/// A `cert_events` row: handshake failures as Network Activity (4001) Fail, lifecycle events as
/// Entity Management (3004).
pub(crate) fn cert_event(v: &View, i: usize) -> (String, Value) {
    let activity = v.s("activity", i).unwrap_or_default();
    let certificate = obj(vec![
        ("uid", text(v.s("cert_id", i))),
        ("serial_number", text(v.s("serial", i))),
        ("subject", text(v.s("subject", i))),
        ("issuer", text(v.s("issuer", i))),
        ("sans", v.list("sans", i).map_or(Value::Null, Value::from)),
        ("created_time", v.ms("not_before", i).map_or(Value::Null, Value::from)),
        ("expiration_time", v.ms("not_after", i).map_or(Value::Null, Value::from)),
        ("key_algorithm", text(v.s("key_algorithm", i))),
    ]);
    let mut m = if activity == "handshake_failed" {
        let mut m = base(v, i, (4001, "Network Activity", 4, "Network Activity"), (4, "Fail"));
        put(&mut m, "tls", obj(vec![("certificate", certificate)]));
        put(&mut m, "status_detail", text(v.s("reason", i)));
        m
    } else {
        let (id, name) = match activity {
            "issued" | "imported" | "requested" => (1, "Create"),
            "exported" => (2, "Read"),
            "renewed" => (3, "Update"),
            "revoked" | "deleted" => (4, "Delete"),
            _ => (99, "Other"),
        };
        let mut m =
            base(v, i, (3004, "Entity Management", 3, "Identity & Access Management"), (id, name));
        let mut entity = obj(vec![
            ("type", Value::from("Certificate")),
            ("uid", text(v.s("cert_id", i).or(v.s("serial", i)))),
            ("name", text(v.s("subject", i))),
        ]);
        if let Value::Object(e) = &mut entity {
            put(e, "data", certificate);
        }
        put(&mut m, "entity", entity);
        put(&mut m, "comment", text(v.s("reason", i)));
        m
    };
    put(&mut m, "actor", obj(vec![("user", obj(vec![("name", text(v.s("actor", i)))]))]));
    put(
        &mut m,
        "unmapped",
        obj(vec![
            ("source", text(v.s("source", i))),
            ("service", text(v.s("service", i))),
            ("activity", text(Some(activity).filter(|a| !a.is_empty()))),
            ("event", text(v.s("event", i))),
            ("workload", text(v.s("workload", i))),
        ]),
    );
    let key =
        key_of(&[v.s("cert_id", i), v.s("serial", i), v.s("subject", i)], v.s("event_uid", i));
    (key, Value::Object(m))
}

/// An alert as OCSF Detection Finding (2004): Create when first raised, Update after.
pub(crate) fn detection_finding(a: &Alert, new: bool) -> Value {
    let (activity_id, activity_name) = if new { (1, "Create") } else { (2, "Update") };
    let (severity_id, severity) = match a.severity.as_str() {
        "info" => (1, "Informational"),
        "low" => (2, "Low"),
        "medium" => (3, "Medium"),
        "high" => (4, "High"),
        "critical" => (5, "Critical"),
        _ => (0, "Unknown"),
    };
    let ms = |us: i64| us.div_euclid(1000);
    let attacks: Vec<Value> = a
        .tags
        .iter()
        .filter(|t| {
            t.starts_with('T')
                && t.len() > 1
                && t[1..].chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .map(|t| json!({ "technique": { "uid": t } }))
        .collect();
    json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": 200400 + activity_id,
        "type_name": format!("Detection Finding: {activity_name}"),
        "time": ms(a.updated),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "status": "New",
        "count": a.count,
        "finding_info": {
            "uid": a.alert_id,
            "title": a.title,
            "analytic": { "uid": a.rule_id, "name": a.title, "type_id": 1, "type": "Rule" },
            "first_seen_time": ms(a.first_seen),
            "last_seen_time": ms(a.last_seen),
            "attacks": attacks,
            "related_events": a.evidence_uids.iter().map(|u| json!({ "uid": u })).collect::<Vec<_>>(),
            "types": a.tags,
        },
        "evidences": [{ "data": a.entity }],
        "cloud": { "provider": a.provider },
        "metadata": {
            "version": OCSF_VERSION,
            "uid": a.alert_id,
            "product": { "name": "ztlake", "vendor_name": "ztlake", "version": env!("CARGO_PKG_VERSION") },
        },
        "unmapped": {
            "runbook": a.runbook,
            "dedupe_key": a.dedupe_key,
            "first_seen": rfc3339(a.first_seen),
            "last_seen": rfc3339(a.last_seen),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ztlake_normalize::{Output, Record, SourceInfo};

    fn rows(format: &str, line: &[u8]) -> Vec<(Table, RecordBatch)> {
        let mut out = Output::new(16, 0);
        out.begin_source(SourceInfo::lines("k", "n"), [0; 4]);
        let mut parser =
            ztlake_normalize::format::parser_for(format, &Default::default()).expect("parser");
        out.begin_record();
        parser.parse(&Record { line: 1, bytes: line }, &mut out);
        out.end_record();
        out.take_batches(0)
    }

    #[test]
    fn a_flow_becomes_network_activity_keyed_by_source_address() {
        let line = b"2 123456789012 eni-1 91.240.118.7 10.0.0.5 40000 3389 6 3 180 1700000000 1700000060 ACCEPT OK";
        let batches = rows("aws-vpcflow", line);
        let (table, batch) = &batches[0];
        assert_eq!(*table, Table::Flows);
        let (key, e) = flow_event(&View::new(batch), 0);
        assert_eq!(key, "91.240.118.7");
        assert_eq!(e["class_uid"], 4001);
        assert_eq!(e["type_uid"], 400106);
        assert_eq!(e["src_endpoint"]["ip"], "91.240.118.7");
        assert_eq!(e["dst_endpoint"]["port"], 3389);
        assert_eq!(e["connection_info"]["protocol_name"], "tcp");
        assert_eq!(e["disposition"], "Allowed");
        assert_eq!(e["traffic"]["bytes"], 180);
        assert_eq!(e["time"], 1_700_000_000_000i64);
        assert_eq!(e["cloud"]["account"]["uid"], "123456789012");
        assert!(e["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 16), "{e}");
        assert_eq!(e["unmapped"]["source"], "n:1");
    }
}
