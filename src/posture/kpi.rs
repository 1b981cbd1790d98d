//! The posture KPIs: THE list ([`KPIS`]), one definition each — id, title, definition text,
//! measure (and so unit), whether higher is better, the SQL that extracts its facts from the
//! lake and reference tables, and the SQL (or computation) behind its top offenders.
//!
//! A KPI's *facts* SQL returns one row per (UTC day, provider, scope[, entity]) with the
//! columns `day` (date), `provider`, `scope` (the account, or the severity for response KPIs),
//! `num`, `den` and optionally `entity`; [`super::measure`] turns facts into values for any
//! window of days and any provider / scope. `den` is the number of rows the KPI looked at:
//! a window whose `den` is 0 has **no data** (never a division by zero, never a fake 0).
//!
//! SQL text holds `{placeholders}` that [`expand`] fills with the report's time bounds (which
//! ztlake computes, never text from the lake) and with the shared fragments below, so every
//! KPI states the same population the same way. The README's "Posture KPIs" table is
//! [`markdown`] of this list (a test keeps them equal).

use serde::Serialize;

/// Successful human principals: people, root accounts and federated users; service principals,
/// managed identities and sign-ins of unknown type are left out.
const HUMAN: &str = "user_type IN ('human', 'root', 'federated')";

/// Events that are steps or token refreshes, not interactive sign-ins.
const INTERACTIVE: &str = "coalesce(event, '') NOT IN ('NonInteractiveUserSignInLogs', 'CheckMfa', 'CredentialChallenge', 'CredentialVerification', 'policy.evaluate_sign_on')";

/// Mesh (service-mesh sidecar) telemetry.
const MESH: &str = "format LIKE 'istio-%'";

/// VPC / VNet flow logs of the three clouds.
const VPC_FLOWS: &str = "format IN ('aws-vpcflow', 'aws-tgwflow', 'azure-nsgflow', 'azure-vnetflow', 'azure-flowtuple', 'gcp-vpcflow')";

/// The service side's port of a flow: the lower of the two ports (a response flow has the
/// service port as its source port); the destination port when the source port is unknown.
const SERVICE_PORT: &str = "CASE WHEN src_port < dst_port THEN src_port ELSE dst_port END";

/// Ports whose protocol is encrypted (SSH, HTTPS, SMTPS, LDAPS, DNS over TLS, FTPS, IMAPS,
/// POP3S, Docker TLS, LDAP GC over TLS, SIPS, AMQPS, WinRM HTTPS, Kubernetes API, common TLS
/// alternates, Kafka TLS, Istio HBONE and east-west gateway).
const ENCRYPTED_PORTS: &str = "22, 443, 465, 636, 853, 989, 990, 993, 995, 2376, 3269, 5061, 5671, 5986, 6443, 8443, 9093, 9443, 15008, 15443";

/// Administration ports (SSH, Telnet, RDP, VNC, WinRM, Docker API, Kubernetes API, kubelet).
const ADMIN_PORTS: &str = "22, 23, 3389, 5900, 5985, 5986, 2375, 2376, 6443, 10250";

/// Legacy cleartext protocols (as the rule zt-net-legacy-plaintext-cross-segment): FTP, Telnet,
/// TFTP, NetBIOS/SMB, LDAP, r-services.
const LEGACY_PORTS: &str = "21, 23, 69, 139, 389, 445, 512, 513, 514";

/// Days a source must have reported within to count as silent when it stops.
pub const SILENT_LOOKBACK_DAYS: u32 = 7;

/// The horizon of [`Measure::Expiring`] KPIs.
pub const EXPIRY_HORIZON_DAYS: u32 = 14;

/// Which family a KPI belongs to (sections of the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Sign-ins: MFA, IdP consolidation, workload identities.
    Identity,
    /// Device trust.
    Devices,
    /// Encryption in transit, service identity.
    Network,
    /// Internet exposure and egress control.
    Exposure,
    /// Certificate hygiene.
    Certificates,
    /// Alert response times.
    Response,
    /// Telemetry coverage.
    Coverage,
}

impl Group {
    /// Display name.
    pub fn title(self) -> &'static str {
        match self {
            Group::Identity => "Identity",
            Group::Devices => "Devices",
            Group::Network => "Network encryption",
            Group::Exposure => "Exposure",
            Group::Certificates => "Certificates",
            Group::Response => "Response",
            Group::Coverage => "Telemetry coverage",
        }
    }
}

/// Which direction is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// A higher value is better.
    Higher,
    /// A lower value is better.
    Lower,
    /// Neither: a volume to watch.
    Neither,
}

impl Better {
    /// `Some(true)` when higher is better, `Some(false)` when lower is, `None` for neither.
    pub fn higher_is_better(self) -> Option<bool> {
        match self {
            Better::Higher => Some(true),
            Better::Lower => Some(false),
            Better::Neither => None,
        }
    }
}

/// The unit of a KPI's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A share, 0–100.
    Percent,
    /// A number of things.
    Count,
    /// A duration in seconds.
    Seconds,
}

/// How facts become a value for a window of days (see [`super::measure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// 100 · Σnum / Σden.
    Share,
    /// Σnum.
    Count,
    /// Number of distinct non-NULL `entity` values.
    Distinct,
    /// Σnum / Σden, in seconds.
    Mean,
    /// Nearest-rank 90th percentile of `num` over the rows with an `entity`, in seconds.
    P90,
    /// Entities seen in the [`SILENT_LOOKBACK_DAYS`] days before the window's last day but not
    /// on it.
    Silent,
    /// Entities whose latest `num` (a `not_after`, seconds since the epoch) seen in the window
    /// lies after the window's end and at most [`EXPIRY_HORIZON_DAYS`] days after it.
    Expiring,
}

impl Measure {
    /// The unit of the values this measure gives.
    pub fn unit(self) -> Unit {
        match self {
            Measure::Share => Unit::Percent,
            Measure::Mean | Measure::P90 => Unit::Seconds,
            Measure::Count | Measure::Distinct | Measure::Silent | Measure::Expiring => Unit::Count,
        }
    }
}

/// Offender lists computed from the facts rather than by SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Computed {
    /// Sources with the fewest reporting days in the period.
    FewestDays,
    /// Sources silent on the period's last day.
    Silent,
}

/// Where a KPI's top offenders come from.
#[derive(Debug, Clone, Copy)]
pub enum Offenders {
    /// A query over the current period (`{period}`, `{top}` placeholders).
    Sql {
        /// Table heading.
        title: &'static str,
        /// The query.
        sql: &'static str,
    },
    /// Computed from the KPI's facts.
    Computed {
        /// Table heading.
        title: &'static str,
        /// Which computation.
        kind: Computed,
    },
}

/// One KPI.
#[derive(Debug, Clone, Copy)]
pub struct Kpi {
    /// Stable id (JSON key, HTML anchor).
    pub id: &'static str,
    /// Section.
    pub group: Group,
    /// Short title.
    pub title: &'static str,
    /// The precise definition, in words.
    pub definition: &'static str,
    /// How facts become values.
    pub measure: Measure,
    /// Which direction is an improvement.
    pub better: Better,
    /// What the `scope` column holds: `account` or `severity`.
    pub scope: &'static str,
    /// The facts query (`{window}` and the shared placeholders).
    pub facts: &'static str,
    /// The top offenders behind the KPI.
    pub offenders: Option<Offenders>,
}

impl Kpi {
    /// The unit of its values.
    pub fn unit(&self) -> Unit {
        self.measure.unit()
    }
}

// ---------------------------------------------------------------------------------------------
// Sign-ins.

const MFA_FACTS: &str = "
SELECT date AS day, provider, account AS scope,
       sum(CASE WHEN mfa THEN 1 ELSE 0 END) AS num, count(*) AS den
FROM signins
WHERE {window} AND outcome = 'success' AND {human} AND {interactive} AND mfa IS NOT NULL
GROUP BY date, provider, account";

const MFA_OFFENDERS: &str = "
SELECT user, provider, account, count(*) AS signins_without_mfa, max(time) AS last_seen
FROM signins
WHERE {period} AND outcome = 'success' AND {human} AND {interactive} AND mfa = false
GROUP BY user, provider, account
ORDER BY signins_without_mfa DESC, user
LIMIT {top}";

const MFA_PRIVILEGED_FACTS: &str = "
SELECT date AS day, provider, account AS scope,
       sum(CASE WHEN mfa THEN 1 ELSE 0 END) AS num, count(*) AS den
FROM signins
WHERE {window} AND outcome = 'success' AND {human} AND {interactive} AND mfa IS NOT NULL
  AND identity_field(user, 'privileged') = 'true'
GROUP BY date, provider, account";

const MFA_PRIVILEGED_OFFENDERS: &str = "
SELECT user, provider, account, count(*) AS signins_without_mfa, max(time) AS last_seen
FROM signins
WHERE {period} AND outcome = 'success' AND {human} AND {interactive} AND mfa = false
  AND identity_field(user, 'privileged') = 'true'
GROUP BY user, provider, account
ORDER BY signins_without_mfa DESC, user
LIMIT {top}";

const WORKLOAD_FACTS: &str = "
SELECT date AS day, provider, account AS scope,
       sum(CASE WHEN user_type = 'service' AND outcome = 'success' THEN 1 ELSE 0 END) AS num,
       count(*) AS den
FROM signins
WHERE {window}
GROUP BY date, provider, account";

const WORKLOAD_OFFENDERS: &str = "
SELECT user, provider, account, count(*) AS signins, count(DISTINCT src_ip) AS source_addresses,
       max(time) AS last_seen
FROM signins
WHERE {period} AND user_type = 'service' AND outcome = 'success'
GROUP BY user, provider, account
ORDER BY signins DESC, user
LIMIT {top}";

const IDP_FACTS: &str = "
SELECT date AS day, provider, account AS scope,
       sum(CASE WHEN via_idp THEN 1 ELSE 0 END) AS num, count(*) AS den
FROM signins
WHERE {window} AND outcome = 'success' AND {human} AND {interactive}
  AND provider <> 'okta' AND via_idp IS NOT NULL
GROUP BY date, provider, account";

const IDP_OFFENDERS: &str = "
SELECT user, user_type, provider, account, count(*) AS native_signins, max(time) AS last_seen
FROM signins
WHERE {period} AND outcome = 'success' AND {human} AND {interactive}
  AND provider <> 'okta' AND via_idp = false
GROUP BY user, user_type, provider, account
ORDER BY native_signins DESC, user
LIMIT {top}";

const DEVICE_FACTS: &str = "
SELECT date AS day, provider, account AS scope,
       sum(CASE WHEN coalesce(device_managed, false) OR coalesce(device_compliant, false)
                THEN 1 ELSE 0 END) AS num,
       count(*) AS den
FROM signins
WHERE {window} AND outcome = 'success' AND {human} AND {interactive}
  AND (device_managed IS NOT NULL OR device_compliant IS NOT NULL)
GROUP BY date, provider, account";

const DEVICE_OFFENDERS: &str = "
SELECT user, provider, account, count(DISTINCT device_id) AS devices, count(*) AS signins,
       max(time) AS last_seen
FROM signins
WHERE {period} AND outcome = 'success' AND {human} AND {interactive}
  AND (device_managed IS NOT NULL OR device_compliant IS NOT NULL)
  AND NOT (coalesce(device_managed, false) OR coalesce(device_compliant, false))
GROUP BY user, provider, account
ORDER BY signins DESC, user
LIMIT {top}";

// ---------------------------------------------------------------------------------------------
// Flows.

const MESH_FACTS: &str = "
SELECT date AS day, provider, account AS scope,
       sum(CASE WHEN peer_identity IS NOT NULL THEN 1 ELSE 0 END) AS num, count(*) AS den
FROM flows
WHERE {window} AND {mesh} AND coalesce(action, 'allow') = 'allow'
  AND is_private_ip(src_ip) AND is_private_ip(dst_ip)
GROUP BY date, provider, account";

const MESH_OFFENDERS: &str = "
SELECT src_ip, dst_ip, dst_port, min(resource) AS cluster, count(*) AS flows, max(time) AS last_seen
FROM flows
WHERE {period} AND {mesh} AND coalesce(action, 'allow') = 'allow'
  AND is_private_ip(src_ip) AND is_private_ip(dst_ip) AND peer_identity IS NULL
GROUP BY src_ip, dst_ip, dst_port
ORDER BY flows DESC, dst_ip, src_ip
LIMIT {top}";

const ENCRYPTED_FACTS: &str = "
SELECT date AS day, provider, account AS scope,
       sum(CASE WHEN coalesce(encrypted, false) OR tls_version IS NOT NULL
                     OR {service_port} IN ({encrypted_ports}) THEN 1 ELSE 0 END) AS num,
       count(*) AS den
FROM flows
WHERE {window} AND {vpc_flows} AND action = 'allow' AND dst_port IS NOT NULL
  AND is_private_ip(src_ip) AND is_private_ip(dst_ip)
GROUP BY date, provider, account";

const ENCRYPTED_OFFENDERS: &str = "
SELECT server, service_port, provider, account, count(*) AS flows, sum(coalesce(bytes, 0)) AS bytes,
       max(time) AS last_seen
FROM (
  SELECT CASE WHEN src_port < dst_port THEN src_ip ELSE dst_ip END AS server,
         {service_port} AS service_port, provider, account, bytes, time
  FROM flows
  WHERE {period} AND {vpc_flows} AND action = 'allow' AND dst_port IS NOT NULL
    AND is_private_ip(src_ip) AND is_private_ip(dst_ip)
    AND NOT (coalesce(encrypted, false) OR tls_version IS NOT NULL
             OR {service_port} IN ({encrypted_ports})))
GROUP BY server, service_port, provider, account
ORDER BY flows DESC, server
LIMIT {top}";

const LEGACY_FACTS: &str = "
SELECT date AS day, provider, account AS scope,
       sum(CASE WHEN dst_port IN ({legacy_ports}) AND tls_version IS NULL
                     AND NOT coalesce(encrypted, false) AND is_private_ip(dst_ip)
                THEN 1 ELSE 0 END) AS num,
       count(*) AS den
FROM flows
WHERE {window} AND action = 'allow'
GROUP BY date, provider, account";

const LEGACY_OFFENDERS: &str = "
SELECT src_ip, dst_ip, dst_port, asset_field(dst_ip, 'app') AS app, provider, account,
       count(*) AS flows, sum(coalesce(bytes, 0)) AS bytes, max(time) AS last_seen
FROM flows
WHERE {period} AND action = 'allow' AND dst_port IN ({legacy_ports}) AND tls_version IS NULL
  AND NOT coalesce(encrypted, false) AND is_private_ip(dst_ip)
GROUP BY src_ip, dst_ip, dst_port, provider, account
ORDER BY flows DESC, dst_ip, src_ip
LIMIT {top}";

const EXPOSURE_FACTS: &str = "
SELECT date AS day, provider, account AS scope, 0 AS num, count(*) AS den,
       CAST(NULL AS VARCHAR) AS entity
FROM flows
WHERE {window}
GROUP BY date, provider, account
UNION ALL
SELECT date AS day, provider, account AS scope, 0 AS num, 0 AS den,
       concat(src_ip, ' -> ', dst_ip, ':', CAST(dst_port AS VARCHAR)) AS entity
FROM flows
WHERE {window} AND action = 'allow' AND dst_port IN ({admin_ports})
  AND is_public_ip(src_ip) AND is_private_ip(dst_ip)
GROUP BY date, provider, account, src_ip, dst_ip, dst_port";

const EXPOSURE_OFFENDERS: &str = "
SELECT dst_ip, dst_port, asset_field(dst_ip, 'app') AS app, provider, account,
       count(DISTINCT src_ip) AS internet_sources, count(*) AS flows, max(time) AS last_seen
FROM flows
WHERE {period} AND action = 'allow' AND dst_port IN ({admin_ports})
  AND is_public_ip(src_ip) AND is_private_ip(dst_ip)
GROUP BY dst_ip, dst_port, provider, account
ORDER BY internet_sources DESC, flows DESC, dst_ip
LIMIT {top}";

/// An accepted flow that bypasses the egress gateways (within the internet-egress population).
const BYPASS: &str = "NOT coalesce(is_egress_gateway(src_ip), false)
  AND NOT coalesce(is_egress_gateway(dst_ip), false)
  AND coalesce(traffic_path, 'igw') IN ('igw', 'igw_or_gateway_endpoint')";

const EGRESS_FACTS: &str = "
SELECT date AS day, provider, account AS scope,
       sum(CASE WHEN {bypass} THEN 1 ELSE 0 END) AS num, count(*) AS den
FROM flows
WHERE {window} AND action = 'allow' AND coalesce(dst_port < src_port, true)
  AND is_private_ip(src_ip) AND is_public_ip(dst_ip)
GROUP BY date, provider, account";

const EGRESS_OFFENDERS: &str = "
SELECT src_ip, asset_field(src_ip, 'app') AS app, asset_field(src_ip, 'segment') AS segment,
       provider, account, count(DISTINCT dst_ip) AS destinations, count(*) AS flows,
       sum(coalesce(bytes, 0)) AS bytes, max(time) AS last_seen
FROM flows
WHERE {period} AND action = 'allow' AND coalesce(dst_port < src_port, true)
  AND is_private_ip(src_ip) AND is_public_ip(dst_ip) AND {bypass}
GROUP BY src_ip, provider, account
ORDER BY flows DESC, src_ip
LIMIT {top}";

// ---------------------------------------------------------------------------------------------
// Certificates.

/// Facts of the lifetime KPIs: one row per issued certificate (serial, else id, else subject,
/// with its not_after), on the day of its first issuance event.
macro_rules! lifetime_facts {
    ($days:literal) => {
        concat!(
            "
SELECT day, provider, scope, CASE WHEN lifetime_days <= ",
            stringify!($days),
            " THEN 1 ELSE 0 END AS num, 1 AS den
FROM (
  SELECT min(date) AS day, provider, account AS scope,
         max(arrow_cast(not_after, 'Int64') - arrow_cast(coalesce(not_before, time), 'Int64')) / 86400e6 AS lifetime_days
  FROM cert_events
  WHERE {window} AND activity IN ('issued', 'renewed') AND not_after IS NOT NULL
  GROUP BY provider, account, coalesce(serial, cert_id, subject), not_after)"
        )
    };
}

macro_rules! lifetime_offenders {
    ($days:literal) => {
        concat!(
            "
SELECT subject, issuer, serial, provider, account, lifetime_days, not_after, issued
FROM (
  SELECT max(subject) AS subject, max(issuer) AS issuer, max(serial) AS serial, provider, account,
         round(max(arrow_cast(not_after, 'Int64') - arrow_cast(coalesce(not_before, time), 'Int64')) / 86400e6, 1)
           AS lifetime_days,
         not_after, min(time) AS issued
  FROM cert_events
  WHERE {period} AND activity IN ('issued', 'renewed') AND not_after IS NOT NULL
  GROUP BY provider, account, coalesce(serial, cert_id, subject), not_after)
WHERE lifetime_days > ",
            stringify!($days),
            "
ORDER BY lifetime_days DESC, subject
LIMIT {top}"
        )
    };
}

const EXPIRING_FACTS: &str = "
SELECT date AS day, provider, account AS scope,
       max(arrow_cast(not_after, 'Int64')) / 1e6 AS num, count(*) AS den,
       coalesce(cert_id, serial, subject) AS entity
FROM cert_events
WHERE {window} AND not_after IS NOT NULL
GROUP BY date, provider, account, coalesce(cert_id, serial, subject)";

const EXPIRING_OFFENDERS: &str = "
SELECT certificate, subject, issuer, provider, account, not_after, last_seen
FROM (
  SELECT coalesce(cert_id, serial, subject) AS certificate, max(subject) AS subject,
         max(issuer) AS issuer, provider, account, max(not_after) AS not_after,
         max(time) AS last_seen
  FROM cert_events
  WHERE {period} AND not_after IS NOT NULL AND coalesce(cert_id, serial, subject) IS NOT NULL
  GROUP BY coalesce(cert_id, serial, subject), provider, account)
WHERE not_after > {to} AND not_after <= {horizon}
ORDER BY not_after, certificate
LIMIT {top}";

/// A certificate seen in use (on the wire or in a handshake) after its `not_after`.
const EXPIRED_IN_USE: &str = "(activity IN ('presented', 'handshake_failed')
       OR (activity = 'expired' AND format = 'zeek-notice'))
  AND not_after < time";

const EXPIRED_FACTS: &str = "
SELECT date AS day, provider, account AS scope, 0 AS num, count(*) AS den,
       CAST(NULL AS VARCHAR) AS entity
FROM cert_events
WHERE {window}
GROUP BY date, provider, account
UNION ALL
SELECT date AS day, provider, account AS scope, 0 AS num, 0 AS den,
       coalesce(serial, cert_id, subject) AS entity
FROM cert_events
WHERE {window} AND {expired_in_use}
GROUP BY date, provider, account, coalesce(serial, cert_id, subject)";

const EXPIRED_OFFENDERS: &str = "
SELECT coalesce(serial, cert_id, subject) AS certificate, max(subject) AS subject,
       max(issuer) AS issuer, max(workload) AS workload, provider, max(not_after) AS not_after,
       count(*) AS times_seen, max(time) AS last_seen
FROM cert_events
WHERE {period} AND {expired_in_use}
GROUP BY coalesce(serial, cert_id, subject), provider
ORDER BY times_seen DESC, certificate
LIMIT {top}";

// ---------------------------------------------------------------------------------------------
// Response.

/// Alerts raised in the window, and their first acknowledgement-or-resolution / resolution
/// step before the report's end.
const RAISED: &str = "
WITH raised AS (
  SELECT alert_id, min(time) AS raised_at, min(provider) AS provider, min(severity) AS severity,
         min(rule_id) AS rule_id
  FROM alert_events
  WHERE {window} AND event = 'raised'
  GROUP BY alert_id),
acked AS (
  SELECT alert_id, min(time) AS at
  FROM alert_events
  WHERE {before_to} AND event IN ('acknowledged', 'resolved')
  GROUP BY alert_id),
resolved AS (
  SELECT alert_id, min(time) AS at
  FROM alert_events
  WHERE {before_to} AND event = 'resolved'
  GROUP BY alert_id)";

macro_rules! response_facts {
    ($step:literal) => {
        concat!(
            "{raised}
SELECT CAST(r.raised_at AS DATE) AS day, r.provider, coalesce(r.severity, 'unknown') AS scope,
       greatest(arrow_cast(s.at, 'Int64') - arrow_cast(r.raised_at, 'Int64'), 0) / 1e6 AS num,
       1 AS den, r.alert_id AS entity
FROM raised r JOIN ",
            $step,
            " s ON s.alert_id = r.alert_id"
        )
    };
}

macro_rules! response_offenders {
    ($step:literal, $column:literal) => {
        concat!(
            "{raised}
SELECT r.alert_id, r.rule_id, r.severity, r.raised_at, s.at AS ",
            $step,
            "_at,
       round(greatest(arrow_cast(s.at, 'Int64') - arrow_cast(r.raised_at, 'Int64'), 0) / 60e6, 1)
         AS ",
            $column,
            "
FROM raised r JOIN ",
            $step,
            " s ON s.alert_id = r.alert_id
ORDER BY ",
            $column,
            " DESC, r.alert_id
LIMIT {top}"
        )
    };
}

const UNACKED_FACTS: &str = "{raised}
SELECT CAST(r.raised_at AS DATE) AS day, r.provider, coalesce(r.severity, 'unknown') AS scope,
       CASE WHEN s.alert_id IS NULL THEN 1 ELSE 0 END AS num, 1 AS den
FROM raised r LEFT JOIN acked s ON s.alert_id = r.alert_id";

const UNACKED_OFFENDERS: &str = "{raised}
SELECT r.alert_id, r.rule_id, r.severity, a.entity, r.raised_at
FROM raised r
LEFT JOIN acked s ON s.alert_id = r.alert_id
LEFT JOIN alerts a ON a.alert_id = r.alert_id
WHERE s.alert_id IS NULL
ORDER BY r.raised_at, r.alert_id
LIMIT {top}";

// ---------------------------------------------------------------------------------------------
// Coverage.

/// One entity per source: table, provider, account and (flows) VPC, joined by U+001F.
const SOURCES_FACTS: &str = "
SELECT date AS day, provider, account AS scope, 0 AS num, count(*) AS den,
       concat('flows', chr(31), provider, chr(31), coalesce(account, ''), chr(31),
              coalesce(vpc, '')) AS entity
FROM flows
WHERE {window}
GROUP BY date, provider, account, vpc
UNION ALL
SELECT date AS day, provider, account AS scope, 0 AS num, count(*) AS den,
       concat('signins', chr(31), provider, chr(31), coalesce(account, ''), chr(31), '') AS entity
FROM signins
WHERE {window}
GROUP BY date, provider, account";

/// Every posture KPI, in report order.
pub static KPIS: &[Kpi] = &[
    Kpi {
        id: "mfa_coverage",
        group: Group::Identity,
        title: "MFA coverage",
        definition: "Share of successful interactive human sign-ins that satisfied MFA. Human: user_type human, root or federated — service principals and managed identities (user_type service) and sign-ins of unknown type are not in the denominator (see workload_signins). Interactive: every event except token refreshes and sign-in steps (Entra NonInteractiveUserSignInLogs; AWS CheckMfa, CredentialChallenge, CredentialVerification; Okta policy.evaluate_sign_on). Sign-ins whose record does not say whether MFA was satisfied (mfa NULL, e.g. AWS AssumeRoleWithSAML, where MFA happened at the IdP and is counted in the IdP's own sign-in) are in neither numerator nor denominator; mfa = false counts as without MFA. Each sign-in row counts once.",
        measure: Measure::Share,
        better: Better::Higher,
        scope: "account",
        facts: MFA_FACTS,
        offenders: Some(Offenders::Sql {
            title: "Users signing in without MFA",
            sql: MFA_OFFENDERS,
        }),
    },
    Kpi {
        id: "mfa_coverage_privileged",
        group: Group::Identity,
        title: "MFA coverage, privileged identities",
        definition: "MFA coverage (as mfa_coverage) restricted to privileged identities: sign-ins whose user is marked privileged = true in the identities reference table (identity_field(user, 'privileged') = 'true', user matched case-insensitively). Users absent from the table are not privileged.",
        measure: Measure::Share,
        better: Better::Higher,
        scope: "account",
        facts: MFA_PRIVILEGED_FACTS,
        offenders: Some(Offenders::Sql {
            title: "Privileged identities signing in without MFA",
            sql: MFA_PRIVILEGED_OFFENDERS,
        }),
    },
    Kpi {
        id: "workload_signins",
        group: Group::Identity,
        title: "Workload identity sign-ins",
        definition: "Number of successful sign-ins by service principals and managed identities (user_type service), reported on their own because they are excluded from the human KPIs. No data on a day without any sign-in rows.",
        measure: Measure::Count,
        better: Better::Neither,
        scope: "account",
        facts: WORKLOAD_FACTS,
        offenders: Some(Offenders::Sql {
            title: "Most active workload identities",
            sql: WORKLOAD_OFFENDERS,
        }),
    },
    Kpi {
        id: "idp_consolidation",
        group: Group::Identity,
        title: "IdP consolidation",
        definition: "Share of successful interactive human sign-ins (as mfa_coverage) to cloud consoles and apps that went through the primary IdP or federation (via_idp = true) rather than provider-native credentials (via_idp = false: IAM users, root, provider passwords). Sign-ins to the IdP itself (provider okta) and rows that do not say (via_idp NULL) are left out.",
        measure: Measure::Share,
        better: Better::Higher,
        scope: "account",
        facts: IDP_FACTS,
        offenders: Some(Offenders::Sql {
            title: "Provider-native users still signing in",
            sql: IDP_OFFENDERS,
        }),
    },
    Kpi {
        id: "device_trust",
        group: Group::Devices,
        title: "Device trust",
        definition: "Share of successful interactive human sign-ins (as mfa_coverage) from a managed or compliant device (device_managed = true or device_compliant = true), among those whose record reports the device state (device_managed or device_compliant not NULL). Sign-ins without device information (AWS console, most GCP) are left out.",
        measure: Measure::Share,
        better: Better::Higher,
        scope: "account",
        facts: DEVICE_FACTS,
        offenders: Some(Offenders::Sql {
            title: "Users signing in from unmanaged, non-compliant devices",
            sql: DEVICE_OFFENDERS,
        }),
    },
    Kpi {
        id: "mtls_mesh",
        group: Group::Network,
        title: "mTLS coverage, service mesh",
        definition: "Share of accepted east-west flows in mesh telemetry (format istio-*; both addresses private per is_private_ip; action allow or not logged) that carry a verified peer identity (peer_identity not NULL: SPIFFE ID or certificate SAN). Every sidecar record counts, inbound and outbound. Istio's default text access log does not log the peer: add downstream_peer_uri_san / upstream_peer_uri_san to the access log format, or this share reads 0.",
        measure: Measure::Share,
        better: Better::Higher,
        scope: "account",
        facts: MESH_FACTS,
        offenders: Some(Offenders::Sql {
            title: "Mesh flows without a verified peer identity",
            sql: MESH_OFFENDERS,
        }),
    },
    Kpi {
        id: "encrypted_east_west",
        group: Group::Network,
        title: "Encrypted east-west flows (VPC/VNet)",
        definition: "Share of accepted private-to-private flows in VPC/VNet flow logs (aws-vpcflow, aws-tgwflow, azure-nsgflow, azure-vnetflow, azure-flowtuple, gcp-vpcflow; flows with a port) that are encrypted: reported encrypted by the provider (encrypted = true), or with a TLS version, or whose service port — the lower of source and destination port — is an encrypted protocol's port: 22, 443, 465, 636, 853, 989, 990, 993, 995, 2376, 3269, 5061, 5671, 5986, 6443, 8443, 9093, 9443, 15008, 15443.",
        measure: Measure::Share,
        better: Better::Higher,
        scope: "account",
        facts: ENCRYPTED_FACTS,
        offenders: Some(Offenders::Sql {
            title: "Unencrypted east-west services",
            sql: ENCRYPTED_OFFENDERS,
        }),
    },
    Kpi {
        id: "legacy_plaintext",
        group: Group::Network,
        title: "Plaintext legacy protocol flows",
        definition: "Number of accepted flows to an internal address (is_private_ip(dst_ip)) on a legacy cleartext protocol port — FTP 21, Telnet 23, TFTP 69, NetBIOS/SMB 139 and 445, LDAP 389, r-services 512–514 — with no TLS version and not reported encrypted. No data on a day without accepted flows.",
        measure: Measure::Count,
        better: Better::Lower,
        scope: "account",
        facts: LEGACY_FACTS,
        offenders: Some(Offenders::Sql { title: "Legacy plaintext flows", sql: LEGACY_OFFENDERS }),
    },
    Kpi {
        id: "exposed_admin_paths",
        group: Group::Exposure,
        title: "Internet-exposed admin paths",
        definition: "Number of distinct (source address, destination address, destination port) paths of accepted flows from a public address (is_public_ip) to a private one (is_private_ip) on an administration port: SSH 22, Telnet 23, RDP 3389, VNC 5900, WinRM 5985/5986, Docker API 2375/2376, Kubernetes API 6443, kubelet 10250. Over a period, a path counts once however many days it was seen. No data on a day without flows.",
        measure: Measure::Distinct,
        better: Better::Lower,
        scope: "account",
        facts: EXPOSURE_FACTS,
        offenders: Some(Offenders::Sql { title: "Exposed hosts", sql: EXPOSURE_OFFENDERS }),
    },
    Kpi {
        id: "egress_bypass",
        group: Group::Exposure,
        title: "Internet egress bypassing the gateways",
        definition: "Share of accepted internet egress flows — private source, public destination, started by the internal side (destination port below source port, or a port unknown) — that bypass the egress gateways: neither address is an egress gateway (is_egress_gateway, egress_gateways reference table) and, for AWS records with a traffic path, the traffic left through the internet gateway directly (igw, igw_or_gateway_endpoint). As the rule zt-net-egress-bypass, without its PCI exclusion.",
        measure: Measure::Share,
        better: Better::Lower,
        scope: "account",
        facts: EGRESS_FACTS,
        offenders: Some(Offenders::Sql {
            title: "Sources egressing around the gateways",
            sql: EGRESS_OFFENDERS,
        }),
    },
    Kpi {
        id: "cert_lifetime_90d",
        group: Group::Certificates,
        title: "Short-lived certificates (≤ 90 days)",
        definition: "Share of issued certificates (cert_events with activity issued or renewed and a not_after; one certificate per serial — else id, else subject — and not_after, on the day of its first issuance event) whose lifetime — not_after minus not_before, or minus the issuance event's time when the record has no not_before (AWS Private CA) — is at most 90 days.",
        measure: Measure::Share,
        better: Better::Higher,
        scope: "account",
        facts: lifetime_facts!(90),
        offenders: Some(Offenders::Sql {
            title: "Long-lived certificates (over 90 days)",
            sql: lifetime_offenders!(90),
        }),
    },
    Kpi {
        id: "cert_lifetime_30d",
        group: Group::Certificates,
        title: "Short-lived certificates (≤ 30 days)",
        definition: "As cert_lifetime_90d with a lifetime of at most 30 days.",
        measure: Measure::Share,
        better: Better::Higher,
        scope: "account",
        facts: lifetime_facts!(30),
        offenders: Some(Offenders::Sql {
            title: "Certificates living over 30 days",
            sql: lifetime_offenders!(30),
        }),
    },
    Kpi {
        id: "cert_expiring_14d",
        group: Group::Certificates,
        title: "Certificates expiring within 14 days",
        definition: "Number of certificates seen in the window (any cert_events row with a not_after; a certificate is its id, else serial, else subject, so a renewal under the same id replaces the old expiry) whose latest not_after seen in the window lies after the window's end and no more than 14 days after it. The window's end is the period end for the period value and the end of each UTC day for the daily series.",
        measure: Measure::Expiring,
        better: Better::Lower,
        scope: "account",
        facts: EXPIRING_FACTS,
        offenders: Some(Offenders::Sql {
            title: "Certificates expiring within 14 days of the period end",
            sql: EXPIRING_OFFENDERS,
        }),
    },
    Kpi {
        id: "cert_expired_seen",
        group: Group::Certificates,
        title: "Expired certificates still seen",
        definition: "Number of distinct certificates (serial, else id, else subject) seen in use after their not_after: cert_events with activity presented or handshake_failed, or Zeek's expired-certificate notices, whose time is later than not_after. No data on a day without certificate events.",
        measure: Measure::Distinct,
        better: Better::Lower,
        scope: "account",
        facts: EXPIRED_FACTS,
        offenders: Some(Offenders::Sql {
            title: "Expired certificates still presented",
            sql: EXPIRED_OFFENDERS,
        }),
    },
    Kpi {
        id: "tta_mean",
        group: Group::Response,
        title: "Time to acknowledge, mean",
        definition: "Mean time from an alert's raised step to its first acknowledged or resolved step (alert_events), over the alerts raised in the window and acknowledged before the report's end, per severity (scope). Alerts not yet acknowledged are not in the mean: see alerts_unacknowledged. The day is the UTC day the alert was raised.",
        measure: Measure::Mean,
        better: Better::Lower,
        scope: "severity",
        facts: response_facts!("acked"),
        offenders: Some(Offenders::Sql {
            title: "Slowest acknowledged alerts",
            sql: response_offenders!("acked", "minutes_to_acknowledge"),
        }),
    },
    Kpi {
        id: "tta_p90",
        group: Group::Response,
        title: "Time to acknowledge, p90",
        definition: "90th percentile (nearest rank: the smallest time at or below which at least 90% of the times lie) of the times to acknowledge of tta_mean, per severity.",
        measure: Measure::P90,
        better: Better::Lower,
        scope: "severity",
        facts: response_facts!("acked"),
        offenders: None,
    },
    Kpi {
        id: "ttr_mean",
        group: Group::Response,
        title: "Time to resolve, mean",
        definition: "Mean time from an alert's raised step to its first resolved step (alert_events), over the alerts raised in the window and resolved before the report's end, per severity.",
        measure: Measure::Mean,
        better: Better::Lower,
        scope: "severity",
        facts: response_facts!("resolved"),
        offenders: Some(Offenders::Sql {
            title: "Slowest resolved alerts",
            sql: response_offenders!("resolved", "minutes_to_resolve"),
        }),
    },
    Kpi {
        id: "ttr_p90",
        group: Group::Response,
        title: "Time to resolve, p90",
        definition: "90th percentile (nearest rank) of the times to resolve of ttr_mean, per severity.",
        measure: Measure::P90,
        better: Better::Lower,
        scope: "severity",
        facts: response_facts!("resolved"),
        offenders: None,
    },
    Kpi {
        id: "alerts_unacknowledged",
        group: Group::Response,
        title: "Alerts not acknowledged",
        definition: "Number of alerts raised in the window with neither an acknowledged nor a resolved step before the report's end, per severity. No data on a day without raised alerts.",
        measure: Measure::Count,
        better: Better::Lower,
        scope: "severity",
        facts: UNACKED_FACTS,
        offenders: Some(Offenders::Sql {
            title: "Alerts not acknowledged (oldest first)",
            sql: UNACKED_OFFENDERS,
        }),
    },
    Kpi {
        id: "reporting_sources",
        group: Group::Coverage,
        title: "Reporting telemetry sources",
        definition: "Number of distinct sources that sent data: for flows each (provider, account, VPC/VNet/network), for sign-ins each (provider, account / tenant / project). Over a period, a source counts once.",
        measure: Measure::Distinct,
        better: Better::Higher,
        scope: "account",
        facts: SOURCES_FACTS,
        offenders: Some(Offenders::Computed {
            title: "Sources with the fewest reporting days",
            kind: Computed::FewestDays,
        }),
    },
    Kpi {
        id: "silent_sources",
        group: Group::Coverage,
        title: "Silent telemetry sources",
        definition: "Number of sources (as reporting_sources) that sent data in the 7 days before a day but none on that day. The period value is that count on the period's last day; a partly ingested last day shows sources as silent.",
        measure: Measure::Silent,
        better: Better::Lower,
        scope: "account",
        facts: SOURCES_FACTS,
        offenders: Some(Offenders::Computed {
            title: "Sources silent on the period's last day",
            kind: Computed::Silent,
        }),
    },
];

/// The values of the time placeholders: literals ztlake writes from the report's bounds.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// `{window}`: the facts' time filter (from the previous period's start minus the silent
    /// lookback to the report's end).
    pub window: String,
    /// `{period}`: the current period's time filter.
    pub period: String,
    /// `{before_to}`: rows before the report's end.
    pub before_to: String,
    /// `{to}`: the report's end as a timestamp literal.
    pub to: String,
    /// `{horizon}`: the report's end plus [`EXPIRY_HORIZON_DAYS`].
    pub horizon: String,
    /// `{top}`: the number of offenders listed.
    pub top: usize,
}

/// A `Timestamp(µs, "UTC")` SQL literal.
pub fn timestamp_literal(micros: i64) -> String {
    format!("arrow_cast({micros}, 'Timestamp(Microsecond, Some(\"UTC\"))')")
}

/// A DATE literal of the UTC day of `micros`.
pub fn date_literal(micros: i64) -> String {
    let days = micros.div_euclid(super::measure::DAY_MICROS);
    format!("DATE '{}'", super::measure::day_text(days))
}

/// The time filter `from <= time < to` plus the matching `date` partition filter (pruning).
pub fn time_filter(from: i64, to: i64) -> String {
    format!(
        "time >= {} AND time < {} AND date >= {} AND date <= {}",
        timestamp_literal(from),
        timestamp_literal(to),
        date_literal(from),
        date_literal(to.saturating_sub(1)),
    )
}

/// Fill the placeholders of `sql`.
pub fn expand(sql: &str, bounds: &Bounds) -> String {
    let fragments: [(&str, &str); 13] = [
        ("{raised}", RAISED),
        ("{bypass}", BYPASS),
        ("{expired_in_use}", EXPIRED_IN_USE),
        ("{human}", HUMAN),
        ("{interactive}", INTERACTIVE),
        ("{mesh}", MESH),
        ("{vpc_flows}", VPC_FLOWS),
        ("{service_port}", SERVICE_PORT),
        ("{encrypted_ports}", ENCRYPTED_PORTS),
        ("{admin_ports}", ADMIN_PORTS),
        ("{legacy_ports}", LEGACY_PORTS),
        ("{window}", &bounds.window),
        ("{period}", &bounds.period),
    ];
    let mut out = sql.to_owned();
    // Fragments may hold placeholders themselves ({raised} holds {window}): expand in order.
    for (name, value) in fragments {
        out = out.replace(name, value);
    }
    out.replace("{before_to}", &bounds.before_to)
        .replace("{horizon}", &bounds.horizon)
        .replace("{to}", &bounds.to)
        .replace("{top}", &bounds.top.to_string())
}

/// The KPI with this id.
pub fn find(id: &str) -> Option<&'static Kpi> {
    KPIS.iter().find(|k| k.id == id)
}

/// The definitions as a Markdown table (the README's "Posture KPIs" section).
pub fn markdown() -> String {
    let mut out = String::from(
        "| KPI | id | unit | better | per | definition |\n|---|---|---|---|---|---|\n",
    );
    for k in KPIS {
        let unit = match k.unit() {
            Unit::Percent => "%",
            Unit::Count => "count",
            Unit::Seconds => "duration",
        };
        let better = match k.better {
            Better::Higher => "higher",
            Better::Lower => "lower",
            Better::Neither => "—",
        };
        out.push_str(&format!(
            "| {} | `{}` | {unit} | {better} | {} | {} |\n",
            k.title,
            k.id,
            k.scope,
            k.definition.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            window: time_filter(0, 86_400_000_000),
            period: time_filter(0, 86_400_000_000),
            before_to: "time < 1".into(),
            to: timestamp_literal(1),
            horizon: timestamp_literal(2),
            top: 10,
        }
    }

    #[test]
    fn ids_are_unique_and_every_placeholder_expands() {
        let mut ids = HashSet::new();
        for k in KPIS {
            assert!(ids.insert(k.id), "duplicate KPI id {}", k.id);
            assert!(
                k.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
            assert!(!k.definition.is_empty() && !k.title.is_empty());
            let mut texts = vec![expand(k.facts, &bounds())];
            if let Some(Offenders::Sql { sql, .. }) = k.offenders {
                texts.push(expand(sql, &bounds()));
            }
            for t in texts {
                assert!(
                    !t.contains('{') && !t.contains('}'),
                    "{}: unexpanded placeholder in {t}",
                    k.id
                );
            }
        }
    }

    #[test]
    fn literals_are_utc() {
        assert_eq!(date_literal(1_714_521_600_000_000), "DATE '2024-05-01'");
        assert_eq!(date_literal(-1), "DATE '1969-12-31'");
        let f = time_filter(1_714_521_600_000_000, 1_714_608_000_000_000);
        assert!(f.ends_with("date >= DATE '2024-05-01' AND date <= DATE '2024-05-01'"), "{f}");
    }
}
