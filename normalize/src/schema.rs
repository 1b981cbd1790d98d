//! The canonical tables: the contract between parsers, the lake, rules, hunters and the SIEM feed.
//!
//! Every table is described once here, column by column ([`Column`]): name, Arrow type,
//! nullability and a one-line meaning. The Arrow schemas, `ztlake tables`, the README's schema
//! section and the golden tests are all derived from these lists, so they cannot drift apart.
//!
//! Conventions (DESIGN.md): times are `Timestamp(Microsecond, "UTC")`; IP addresses are canonical
//! text (IPv4 dotted quad, IPv6 compressed per RFC 5952); unknown is NULL, never `-` or `0`.
//! The columns DESIGN.md names come first, in its order; ztlake's extensions follow; the
//! partition column `date` (the UTC day of `time`) is last. `provider` and `date` are the
//! partition columns of every table.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The time zone of every timestamp column.
pub const UTC: &str = "UTC";

/// Columns every table is partitioned by, in directory order (`provider=<p>/date=<d>/`).
pub const PARTITION_COLUMNS: [&str; 2] = ["provider", "date"];

/// One column of a canonical table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name (snake_case, stable: rules and hunters depend on it).
    pub name: &'static str,
    /// Logical type.
    pub kind: Kind,
    /// Whether the column may be NULL.
    pub nullable: bool,
    /// What the column means, for the docs and `ztlake tables`.
    pub doc: &'static str,
}

/// The logical types used by the canonical tables (each maps to one Arrow type that every
/// engine reading Delta understands: no unsigned or dictionary types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text (`Utf8`).
    Text,
    /// 32-bit signed integer (`Int32`).
    Int32,
    /// 64-bit signed integer (`Int64`).
    Int64,
    /// Boolean.
    Bool,
    /// Microsecond timestamp in UTC.
    Timestamp,
    /// Calendar day (`Date32`), used by the `date` partition column.
    Date,
    /// List of UTF-8 text.
    TextList,
}

impl Kind {
    /// The Arrow type of this kind.
    pub fn data_type(self) -> DataType {
        match self {
            Kind::Text => DataType::Utf8,
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::Bool => DataType::Boolean,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            Kind::Date => DataType::Date32,
            Kind::TextList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        }
    }
}

const fn col(name: &'static str, kind: Kind, doc: &'static str) -> Column {
    Column { name, kind, nullable: true, doc }
}

const fn req(name: &'static str, kind: Kind, doc: &'static str) -> Column {
    Column { name, kind, nullable: false, doc }
}

use Kind::{Bool, Date, Int32, Int64, Text, TextList, Timestamp};

const PROVIDER_DOC: &str = "Platform that produced the record: aws, azure (incl. Entra ID), gcp (incl. Google Workspace), okta, kubernetes (incl. cert-manager and the service mesh), zeek (network sensors)";
const FORMAT_DOC: &str = "ztlake format name of the parser that produced the row (e.g. aws-vpcflow); see `ztlake formats`";
const EVENT_UID_DOC: &str =
    "Stable id of the record: hash of its source identity and position, identical on replay";
const SOURCE_DOC: &str = "Where the record came from: `path:line` for files, `key:line` for objects, `topic/partition@offset` for Kafka";
const DATE_DOC: &str = "Partition column: UTC calendar day of `time` (YYYY-MM-DD)";

/// `flows`: one row per flow record (VPC/VNet flow logs, mesh and proxy access logs).
pub const FLOWS: &[Column] = &[
    req(
        "time",
        Timestamp,
        "Start of the flow or of its aggregation interval (access logs: request time)",
    ),
    col("end_time", Timestamp, "End of the aggregation interval"),
    req("provider", Text, PROVIDER_DOC),
    col("account", Text, "Cloud account, subscription or project the record belongs to"),
    col("region", Text, "Cloud region"),
    col("vpc", Text, "VPC, VNet or network id"),
    col("subnet", Text, "Subnet id"),
    col(
        "resource",
        Text,
        "Resource that reported the flow: network interface, NIC, gateway attachment or proxy",
    ),
    col("src_ip", Text, "Source address (canonical text)"),
    col("src_port", Int32, "Source port (NULL for ICMP and when absent)"),
    col("dst_ip", Text, "Destination address (canonical text)"),
    col("dst_port", Int32, "Destination port (NULL for ICMP and when absent)"),
    col("protocol", Int32, "IANA protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6)"),
    col("direction", Text, "inbound | outbound, relative to `resource`"),
    col("action", Text, "allow | deny"),
    col("status", Text, "ok | nodata | skipdata (the collector's record status)"),
    col("bytes", Int64, "Bytes in the interval (both directions where the provider sums them)"),
    col("packets", Int64, "Packets in the interval"),
    col(
        "tcp_flags",
        Int32,
        "Bitwise OR of the TCP flags seen in the interval (2 SYN, 18 SYN-ACK, 1 FIN, 4 RST)",
    ),
    col(
        "rule",
        Text,
        "Rule, ACL or policy that decided the action (AWS: reject reason such as BPA)",
    ),
    col(
        "tls_version",
        Text,
        "TLS version of the connection when the record shows it (e.g. TLSv1.3)",
    ),
    col(
        "peer_identity",
        Text,
        "Verified peer identity (SPIFFE ID or certificate SAN) when the record shows one",
    ),
    col("tls_error", Text, "TLS handshake or certificate-verification failure"),
    col("event_uid", Text, EVENT_UID_DOC),
    col("source", Text, SOURCE_DOC),
    col("format", Text, FORMAT_DOC),
    col("instance", Text, "Instance, VM or pod behind `resource`"),
    col(
        "pkt_src_ip",
        Text,
        "Original packet source address when it differs from `src_ip` (NAT, load balancers)",
    ),
    col("pkt_dst_ip", Text, "Original packet destination address when it differs from `dst_ip`"),
    col(
        "src_service",
        Text,
        "Provider service owning the source address (AWS pkt-src-aws-service, e.g. S3)",
    ),
    col("dst_service", Text, "Provider service owning the destination address (e.g. CLOUDFRONT)"),
    col(
        "traffic_path",
        Text,
        "Egress path: same_vpc | igw_or_gateway_endpoint | vgw | intra_region_peering | inter_region_peering | local_gateway | gateway_endpoint | igw",
    ),
    col("encrypted", Bool, "Whether the provider reports the flow as encrypted in transit"),
    req("date", Date, DATE_DOC),
];

/// `signins`: one row per authentication attempt (console, SSO, IdP).
pub const SIGNINS: &[Column] = &[
    req("time", Timestamp, "When the sign-in happened"),
    req("provider", Text, PROVIDER_DOC),
    col("account", Text, "Cloud account, tenant or organisation signed in to"),
    col(
        "user",
        Text,
        "User name or principal (UPN, email, IAM user name); masked names are kept as the provider wrote them",
    ),
    col("user_id", Text, "Stable id of the principal (object id, ARN, Okta id)"),
    col("user_type", Text, "human | service | root | federated"),
    col(
        "via_idp",
        Bool,
        "Signed in through the primary IdP / federation rather than provider-native credentials",
    ),
    col("outcome", Text, "success | failure"),
    col("failure_reason", Text, "Why the attempt failed (provider code and text)"),
    col("mfa", Bool, "Whether multi-factor authentication was satisfied"),
    col("mfa_method", Text, "Second factor used (e.g. totp, push, u2f, sms, claim_in_token)"),
    col("src_ip", Text, "Client address (canonical text)"),
    col("user_agent", Text, "Client user agent"),
    col("device_id", Text, "Device id reported by the IdP"),
    col("device_managed", Bool, "Device is managed (MDM / domain joined)"),
    col("device_compliant", Bool, "Device is compliant with policy"),
    col("risk_level", Text, "none | low | medium | high | hidden (IdP risk during sign-in)"),
    col("country", Text, "Country of the client as reported by the provider"),
    col("app", Text, "Application or console signed in to"),
    col("role", Text, "Role assumed (AWS role ARN, Identity Center permission set)"),
    col(
        "conditional_access",
        Text,
        "Conditional Access / sign-on policy result: success | failure | not_applied",
    ),
    col("session_id", Text, "Session or correlation id"),
    col("event_uid", Text, EVENT_UID_DOC),
    col("source", Text, SOURCE_DOC),
    col("format", Text, FORMAT_DOC),
    col(
        "event",
        Text,
        "Provider event name (ConsoleLogin, user.session.start, AssumeRoleWithSAML, …)",
    ),
    req("date", Date, DATE_DOC),
];

/// `cert_events`: one row per certificate lifecycle or use event.
pub const CERT_EVENTS: &[Column] = &[
    req("time", Timestamp, "When the event happened"),
    req("provider", Text, PROVIDER_DOC),
    col(
        "service",
        Text,
        "acm | private-ca | key-vault | cas | cert-manager | kubernetes | elb | …",
    ),
    col("account", Text, "Cloud account, subscription or project"),
    col("region", Text, "Cloud region"),
    col(
        "activity",
        Text,
        "issued | renewed | revoked | expiring | expired | deleted | exported | imported | requested | handshake_failed | presented | …",
    ),
    col("cert_id", Text, "Provider id of the certificate (ARN, Key Vault id, resource name)"),
    col("serial", Text, "Serial number (lower-case hex, no separators)"),
    col("subject", Text, "Subject (common name or distinguished name)"),
    col("sans", TextList, "Subject alternative names"),
    col("issuer", Text, "Issuer (CA name, ARN or distinguished name)"),
    col("not_before", Timestamp, "Start of validity"),
    col("not_after", Timestamp, "End of validity"),
    col(
        "key_algorithm",
        Text,
        "Key or signing algorithm (RSA_2048, EC_prime256v1, SHA256WITHRSA, …)",
    ),
    col("actor", Text, "Principal that performed the action"),
    col("workload", Text, "Workload the certificate belongs to or was presented by"),
    col("reason", Text, "Revocation reason, failure reason or other detail"),
    col("event_uid", Text, EVENT_UID_DOC),
    col("source", Text, SOURCE_DOC),
    col("format", Text, FORMAT_DOC),
    col("event", Text, "Provider event name (RequestCertificate, CertificateNearExpiry, …)"),
    req("date", Date, DATE_DOC),
];

/// `quarantine`: every record that could not be normalized, with the reason.
pub const QUARANTINE: &[Column] = &[
    req("time", Timestamp, "When the record was quarantined"),
    req("provider", Text, "Provider of the format the record was read as, or `unknown`"),
    col("format", Text, "Format the record was read as, or NULL when no parser recognized it"),
    req(
        "reason",
        Text,
        "Reason code (see `ztlake tables` / README): line_too_long, invalid_utf8, bad_field, …",
    ),
    col("detail", Text, "Human-readable detail: which field, what was expected"),
    req("byte_len", Int64, "Length of the raw record in bytes"),
    req("raw_hash", Text, "xxh3-64 of the complete raw record (hex)"),
    col(
        "raw_prefix",
        Text,
        "First bytes of the raw record (capped), invalid UTF-8 replaced by U+FFFD",
    ),
    col("event_uid", Text, EVENT_UID_DOC),
    col("source", Text, SOURCE_DOC),
    req("date", Date, "Partition column: UTC day the record was quarantined"),
];

/// `alerts`: one row per alert (the latest state of each `alert_id`).
pub const ALERTS: &[Column] = &[
    req("time", Timestamp, "First event behind the alert (`first_seen`); the partition day"),
    req("provider", Text, "Provider of the evidence, or `multi` when it spans providers"),
    req(
        "alert_id",
        Text,
        "Deterministic id: hash of rule, dedupe key and dedupe period; reprocessing never duplicates it",
    ),
    req("rule_id", Text, "Id of the rule that raised it"),
    col("title", Text, "Rule title"),
    col("severity", Text, "info | low | medium | high | critical"),
    col("entity", Text, "What the alert is about, as a JSON object of the entity columns"),
    col("dedupe_key", Text, "The dedupe key values, as a JSON array"),
    col("first_seen", Timestamp, "Earliest event behind the alert"),
    col("last_seen", Timestamp, "Latest event behind the alert"),
    col("count", Int64, "Events or matches behind the alert"),
    col("runbook", Text, "Runbook id (see `ztlake runbooks`)"),
    col("evidence_uids", TextList, "`event_uid`s of the events behind the alert (capped)"),
    col("evidence", Text, "Compact summary of the matching rows"),
    col("tags", TextList, "MITRE ATT&CK technique ids and the Zero Trust control"),
    col("updated", Timestamp, "When this state of the alert was computed"),
    req("date", Date, DATE_DOC),
];

/// `alert_events`: every step of every alert's life, so response times are queryable.
pub const ALERT_EVENTS: &[Column] = &[
    req("time", Timestamp, "When the step happened"),
    req("provider", Text, "Provider of the alert (as in `alerts`)"),
    req("alert_id", Text, "The alert"),
    req(
        "event",
        Text,
        "raised | updated | notified | delivery_failed | acknowledged | escalated | resolved",
    ),
    col("rule_id", Text, "Rule of the alert"),
    col("severity", Text, "Severity of the alert"),
    col("channel", Text, "Delivery channel (email, webhook, kafka) for notification steps"),
    col("target", Text, "On-call target or recipient"),
    col("actor", Text, "Who acknowledged, resolved or escalated"),
    col("detail", Text, "Note, delivery error or other detail"),
    col("event_id", Text, "Stable id of the step (idempotent writes)"),
    req("date", Date, "Partition column: UTC day of `time`"),
];

/// A canonical table of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Network flows.
    Flows,
    /// Authentication attempts.
    Signins,
    /// Certificate lifecycle and use events.
    CertEvents,
    /// Records that could not be normalized.
    Quarantine,
    /// Alerts raised by the detection engine.
    Alerts,
    /// Lifecycle steps of alerts.
    AlertEvents,
}

impl Table {
    /// Number of tables.
    pub const COUNT: usize = 6;

    /// Every table, in display order.
    pub const ALL: [Table; Table::COUNT] = [
        Table::Flows,
        Table::Signins,
        Table::CertEvents,
        Table::Quarantine,
        Table::Alerts,
        Table::AlertEvents,
    ];

    /// The tables ingest writes: normalized telemetry and quarantine (indices 0..4).
    pub const DATA: [Table; 4] =
        [Table::Flows, Table::Signins, Table::CertEvents, Table::Quarantine];

    /// Table name in the lake and in SQL.
    pub fn name(self) -> &'static str {
        match self {
            Table::Flows => "flows",
            Table::Signins => "signins",
            Table::CertEvents => "cert_events",
            Table::Quarantine => "quarantine",
            Table::Alerts => "alerts",
            Table::AlertEvents => "alert_events",
        }
    }

    /// Look a table up by its SQL name.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// One-line description.
    pub fn description(self) -> &'static str {
        match self {
            Table::Flows => {
                "one row per flow record (VPC/VNet flow logs, mesh and proxy access logs)"
            }
            Table::Signins => "one row per authentication attempt (console, SSO, IdP)",
            Table::CertEvents => "one row per certificate lifecycle or use event",
            Table::Quarantine => "every record that could not be normalized, with the reason",
            Table::Alerts => "one row per alert raised by the detection engine (its latest state)",
            Table::AlertEvents => {
                "every step of every alert's life: raised, notified, acknowledged, escalated, resolved"
            }
        }
    }

    /// The column definitions.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Flows => FLOWS,
            Table::Signins => SIGNINS,
            Table::CertEvents => CERT_EVENTS,
            Table::Quarantine => QUARANTINE,
            Table::Alerts => ALERTS,
            Table::AlertEvents => ALERT_EVENTS,
        }
    }

    /// The Arrow schema, partition columns included.
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: LazyLock<[SchemaRef; Table::COUNT]> =
            LazyLock::new(|| Table::ALL.map(build_schema));
        SCHEMAS[self as usize].clone()
    }

    /// Index of a column in [`Table::schema`].
    pub fn index_of(self, name: &str) -> Option<usize> {
        self.columns().iter().position(|c| c.name == name)
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn build_schema(table: Table) -> SchemaRef {
    let fields: Vec<Field> = table
        .columns()
        .iter()
        .map(|c| Field::new(c.name, c.kind.data_type(), c.nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

/// The fixed vocabulary of `provider` values. Partition directories only ever take these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// Amazon Web Services.
    Aws,
    /// Microsoft Azure, including Entra ID.
    Azure,
    /// Google Cloud, including Google Workspace.
    Gcp,
    /// Okta.
    Okta,
    /// Kubernetes, including cert-manager and service-mesh access logs.
    Kubernetes,
    /// Zeek network sensors (TLS and X.509 logs seen on the wire).
    Zeek,
    /// Several providers (alerts correlating evidence across clouds).
    Multi,
    /// Not known (quarantine rows whose format was not recognized).
    Unknown,
}

impl Provider {
    /// Every provider value.
    pub const ALL: [Provider; 8] = [
        Provider::Aws,
        Provider::Azure,
        Provider::Gcp,
        Provider::Okta,
        Provider::Kubernetes,
        Provider::Zeek,
        Provider::Multi,
        Provider::Unknown,
    ];

    /// The value stored in the `provider` column and partition path.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Azure => "azure",
            Provider::Gcp => "gcp",
            Provider::Okta => "okta",
            Provider::Kubernetes => "kubernetes",
            Provider::Zeek => "zeek",
            Provider::Multi => "multi",
            Provider::Unknown => "unknown",
        }
    }

    /// Parse a stored provider value.
    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_columns_come_first_in_design_order() {
        // DESIGN.md's column lists, verbatim: the contract rules and hunters depend on.
        let flows = "time, end_time, provider, account, region, vpc, subnet, resource, src_ip, src_port, dst_ip, dst_port, protocol, direction, action, status, bytes, packets, tcp_flags, rule, tls_version, peer_identity, tls_error, event_uid, source";
        let signins = "time, provider, account, user, user_id, user_type, via_idp, outcome, failure_reason, mfa, mfa_method, src_ip, user_agent, device_id, device_managed, device_compliant, risk_level, country, app, role, conditional_access, session_id, event_uid, source";
        let certs = "time, provider, service, account, region, activity, cert_id, serial, subject, sans, issuer, not_before, not_after, key_algorithm, actor, workload, reason, event_uid, source";
        for (table, design) in
            [(Table::Flows, flows), (Table::Signins, signins), (Table::CertEvents, certs)]
        {
            let design: Vec<&str> = design.split(", ").collect();
            let ours: Vec<&str> =
                table.columns().iter().map(|c| c.name).take(design.len()).collect();
            assert_eq!(ours, design, "{table}");
        }
    }

    #[test]
    fn every_table_ends_with_the_date_partition_and_has_provider() {
        for table in Table::ALL {
            let schema = table.schema();
            let last = schema.fields().last().expect("non-empty");
            assert_eq!(last.name(), "date");
            assert_eq!(last.data_type(), &DataType::Date32);
            assert!(schema.field_with_name("provider").is_ok());
            assert!(schema.field_with_name("time").is_ok());
            assert_eq!(Table::from_name(table.name()), Some(table));
        }
    }

    #[test]
    fn column_names_are_unique_and_documented() {
        for table in Table::ALL {
            let mut names: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
            names.sort_unstable();
            let len = names.len();
            names.dedup();
            assert_eq!(names.len(), len, "duplicate column in {table}");
            assert!(table.columns().iter().all(|c| !c.doc.is_empty()));
        }
    }
}
