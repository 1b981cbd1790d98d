//! GCP Application Load Balancer request logs (`gcp-lb` → `flows`): Cloud Logging `LogEntry`
//! with `httpRequest` and a `LoadBalancerLogEntry` `jsonPayload` (global external / classic
//! `projects/P/logs/requests`, resource `http_load_balancer`; regional and internal
//! `loadbalancing.googleapis.com%2F*_requests`, resources `l7_lb_rule`, `internal_http_lb_rule`).
//!
//! One row per request, seen from the proxy: `src_ip` = `httpRequest.remoteIp` (the client),
//! `dst_ip` = `httpRequest.serverIp` (the backend the request was sent to, when logged),
//! `resource` = the target proxy (else the forwarding rule), `direction` = `inbound`,
//! `time` = `LogEntry.timestamp`, `end_time` = `time` + `httpRequest.latency` (a protobuf
//! duration string such as `"0.005192s"`), `bytes` = `requestSize` + `responseSize` (int64
//! strings; both directions summed), `protocol` = 6 for HTTP/1.x and HTTP/2, 17 for HTTP/3/QUIC
//! (NULL when not logged). Ports are not logged and stay NULL.
//!
//! TLS: `jsonPayload.tls.protocol` → `tls_version` (normalized to the `TLSv1.3` spelling),
//! `jsonPayload.mtls.clientCertError` → `tls_error`, `jsonPayload.mtls.clientCertSpiffeId` →
//! `peer_identity` only when `clientCertChainVerified` is true; `encrypted` is true when a `tls`
//! block is present or the URL is `https://`, false for `http://`.
//!
//! Policy: Cloud Armor (`enforcedSecurityPolicy.outcome` `DENY`/`ACCEPT`, name → `rule`) or an
//! authorization policy (`authPolicyInfo.result` `DENIED`/`ALLOWED`) decides `action`; without
//! either, or with a `statusDetails` of `denied_by_security_policy`, the request was proxied
//! (`allow`) resp. refused (`deny`). The TLS cipher, HTTP status, method, URL and user agent map
//! to no flow column and are counted as unmapped.

use std::borrow::Cow;

use serde::Deserialize;

use super::common::{
    Num, Resource, SNIFF_WINDOW, Unmapped, add_micros, non_empty, opens_object,
    parse_duration_micros, string_value,
};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json::{self, Rejection, de};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::{FlowRow, Text};
use crate::schema::{Provider, Table};
use crate::values::canonical_ip;

/// Format name.
pub const NAME: &str = "gcp-lb";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Gcp,
    tables: &[Table::Flows],
    framing: Framing::Json,
    description: "GCP Application Load Balancer request logs (LoadBalancerLogEntry): client, backend, bytes, TLS version, mTLS result, Cloud Armor decision",
    example: r#"{"httpRequest":{"remoteIp":"198.51.100.20","serverIp":"10.20.0.4","requestSize":"29","responseSize":"780","latency":"0.005192s"},"jsonPayload":{"@type":"type.googleapis.com/google.cloud.loadbalancing.type.LoadBalancerLogEntry","tls":{"protocol":"TLSv1.3","cipher":"TLS_AES_128_GCM_SHA256"}},"logName":"projects/p/logs/requests","resource":{"type":"http_load_balancer","labels":{"project_id":"p","target_proxy_name":"web-proxy","zone":"global"}},"timestamp":"2025-11-20T13:35:27.558637Z"}"#,
    sniff,
    new_parser,
};

/// Confidence that `record` is a load balancer request LogEntry: the `LoadBalancerLogEntry`
/// payload type, an LB resource type, or an LB request `logName`.
fn sniff(record: &[u8]) -> u8 {
    let head = json::head(record, SNIFF_WINDOW);
    if !opens_object(head) || !json::contains(head, b"\"httpRequest\"") {
        return 0;
    }
    if json::contains(head, b"google.cloud.loadbalancing.type.LoadBalancerLogEntry") {
        return 95;
    }
    let lb_resource = string_value(head, b"\"type\"").is_some_and(|t| {
        matches!(t, b"http_load_balancer" | b"l7_lb_rule" | b"internal_http_lb_rule")
    });
    let lb_log = string_value(head, b"\"logName\"").is_some_and(|n| {
        n.ends_with(b"/logs/requests")
            || (json::contains(n, b"loadbalancing.googleapis.com%2F") && n.ends_with(b"requests"))
    });
    if lb_resource || lb_log { 85 } else { 0 }
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(LbParser::new(options)))
}

const U_CIPHER: usize = 0;
const U_STATUS: usize = 1;
const U_METHOD_URL: usize = 2;
const U_USER_AGENT: usize = 3;
const U_CLIENT_CERT: usize = 4;
const U_STATUS_DETAILS: usize = 5;

const UNMAPPED: &[&str] = &[
    "jsonPayload.tls.cipher",
    "httpRequest.status",
    "httpRequest.requestMethod/requestUrl",
    "httpRequest.userAgent",
    "jsonPayload.mtls client certificate (fingerprint, serial, subject, issuer, validity)",
    "jsonPayload.statusDetails",
];

/// Parser state for one source.
#[derive(Debug)]
pub struct LbParser {
    options: ParseOptions,
    unmapped: Unmapped,
}

impl LbParser {
    /// A parser with `options` (JSON caps).
    pub fn new(options: &ParseOptions) -> Self {
        Self { options: options.clone(), unmapped: Unmapped::new(NAME, UNMAPPED) }
    }
}

impl Parser for LbParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let entry: Entry<'_> = match json::decode(record.bytes, &self.options) {
            Ok(e) => e,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        let mut scratch = [String::new(), String::new()];
        match build_row(&entry, &mut scratch) {
            Ok(row) => {
                self.tally(&entry);
                out.flow(record, &row);
            }
            Err((reason, detail)) => out.quarantine(record, reason, &detail),
        }
    }

    fn finish(&mut self, out: &mut Output) {
        self.unmapped.flush(out);
    }
}

impl LbParser {
    fn tally(&mut self, entry: &Entry<'_>) {
        let u = &mut self.unmapped;
        let p = entry.payload.as_ref();
        u.add_if(p.and_then(|p| p.tls.as_ref()).is_some_and(|t| t.cipher), U_CIPHER);
        u.add_if(
            p.and_then(|p| p.mtls.as_ref()).is_some_and(Mtls::has_cert_details),
            U_CLIENT_CERT,
        );
        u.add_if(p.is_some_and(|p| p.status_details.is_some()), U_STATUS_DETAILS);
        if let Some(h) = &entry.http {
            u.add_if(h.status, U_STATUS);
            u.add_if(h.request_method || h.request_url.is_some(), U_METHOD_URL);
            u.add_if(h.user_agent, U_USER_AGENT);
        }
    }
}

#[derive(Debug, Deserialize)]
struct Entry<'a> {
    #[serde(rename = "httpRequest", borrow, default)]
    http: Option<HttpRequest<'a>>,
    #[serde(rename = "jsonPayload", borrow, default)]
    payload: Option<Payload<'a>>,
    #[serde(borrow, default)]
    resource: Resource<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    timestamp: Text<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpRequest<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    remote_ip: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    server_ip: Text<'a>,
    #[serde(default)]
    request_size: Num,
    #[serde(default)]
    response_size: Num,
    #[serde(borrow, default, deserialize_with = "de::text")]
    latency: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    protocol: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    request_url: Text<'a>,
    #[serde(default, deserialize_with = "de::present")]
    status: bool,
    #[serde(default, deserialize_with = "de::present")]
    request_method: bool,
    #[serde(default, deserialize_with = "de::present")]
    user_agent: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    #[serde(borrow, default)]
    tls: Option<Tls<'a>>,
    #[serde(borrow, default)]
    mtls: Option<Mtls<'a>>,
    #[serde(borrow, default)]
    enforced_security_policy: Option<Armor<'a>>,
    #[serde(borrow, default)]
    auth_policy_info: Option<AuthPolicy<'a>>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    status_details: Text<'a>,
}

#[derive(Debug, Deserialize)]
struct Tls<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    protocol: Text<'a>,
    #[serde(default, deserialize_with = "de::present")]
    cipher: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mtls<'a> {
    #[serde(default, deserialize_with = "de::boolean")]
    client_cert_chain_verified: Option<bool>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    client_cert_error: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    client_cert_spiffe_id: Text<'a>,
    #[serde(default, deserialize_with = "de::present")]
    client_cert_sha256_fingerprint: bool,
    #[serde(default, deserialize_with = "de::present")]
    client_cert_serial_number: bool,
    #[serde(default, deserialize_with = "de::present")]
    client_cert_subject_dn: bool,
}

impl Mtls<'_> {
    /// Whether the entry describes the client certificate itself (no column holds it).
    fn has_cert_details(&self) -> bool {
        self.client_cert_sha256_fingerprint
            || self.client_cert_serial_number
            || self.client_cert_subject_dn
    }
}

#[derive(Debug, Deserialize)]
struct Armor<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    outcome: Text<'a>,
}

#[derive(Debug, Deserialize)]
struct AuthPolicy<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    result: Text<'a>,
}

fn bad(field: &str, value: &str) -> Rejection {
    let shown: String = value.chars().take(64).collect();
    (Reason::BadField, format!("{field}: invalid value {shown:?}"))
}

/// `TLSv1.3` spelling of a TLS version as GCP (`TLSv1.3`) or others (`TLS 1.2`, `tls1.2`)
/// write it; unknown spellings are kept as written.
pub(crate) fn normalize_tls_version(v: &str) -> Cow<'_, str> {
    let t = v.trim();
    if t.starts_with("TLSv") || t.starts_with("SSLv") {
        return Cow::Borrowed(t);
    }
    let lower = t.to_ascii_lowercase();
    for (prefix, label) in [("tls", "TLSv"), ("ssl", "SSLv")] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            let rest = rest.trim_start_matches(['v', ' ', '_']).replace('_', ".");
            if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return Cow::Owned(format!("{label}{rest}"));
            }
        }
    }
    Cow::Borrowed(t)
}

fn ip<'a>(
    field: &str,
    value: &'a Text<'a>,
    scratch: &'a mut String,
) -> Result<Text<'a>, Rejection> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty() && *v != "-") {
        None => Ok(None),
        Some(v) => {
            canonical_ip(v, scratch).map(|s| Some(Cow::Borrowed(s))).ok_or_else(|| bad(field, v))
        }
    }
}

fn size(field: &str, n: Num) -> Result<Option<i64>, Rejection> {
    n.in_range(0..=i64::MAX).map_err(|()| (Reason::BadField, format!("{field}: not a byte count")))
}

fn borrowed<'a>(t: &'a Text<'a>) -> Text<'a> {
    non_empty(t.as_deref().map(Cow::Borrowed))
}

fn build_row<'a>(
    entry: &'a Entry<'a>,
    scratch: &'a mut [String; 2],
) -> Result<FlowRow<'a>, Rejection> {
    let time = match entry.timestamp.as_deref() {
        None => return Err((Reason::MissingField, "timestamp: absent".to_owned())),
        Some(t) => json::parse_time(t)
            .ok_or_else(|| (Reason::BadTime, format!("timestamp: {t:?} is not a time in range")))?,
    };
    let Some(http) = &entry.http else {
        return Err((Reason::MissingField, "httpRequest: absent".to_owned()));
    };
    let [s0, s1] = scratch;
    let src_ip = ip("httpRequest.remoteIp", &http.remote_ip, s0)?;
    let dst_ip = ip("httpRequest.serverIp", &http.server_ip, s1)?;
    let request = size("httpRequest.requestSize", http.request_size)?;
    let response = size("httpRequest.responseSize", http.response_size)?;
    let bytes = match (request, response) {
        (None, None) => None,
        (a, b) => a.unwrap_or(0).checked_add(b.unwrap_or(0)),
    };
    let end_time = match http.latency.as_deref() {
        None => None,
        Some(l) => Some(
            parse_duration_micros(l)
                .and_then(|d| add_micros(time, d))
                .ok_or_else(|| bad("httpRequest.latency", l))?,
        ),
    };
    let protocol = http.protocol.as_deref().and_then(|p| {
        let p = p.to_ascii_uppercase();
        if p.starts_with("HTTP/3") || p.contains("QUIC") || p == "H3" {
            Some(17)
        } else if p.starts_with("HTTP/") || p == "H2" {
            Some(6)
        } else {
            None
        }
    });
    let payload = entry.payload.as_ref();
    let tls = payload.and_then(|p| p.tls.as_ref());
    let tls_version = tls.and_then(|t| borrowed(&t.protocol)).map(|v| match v {
        Cow::Borrowed(b) => normalize_tls_version(b),
        Cow::Owned(o) => Cow::Owned(normalize_tls_version(&o).into_owned()),
    });
    let mtls = payload.and_then(|p| p.mtls.as_ref());
    let tls_error = mtls.and_then(|m| borrowed(&m.client_cert_error));
    let peer_identity = mtls
        .filter(|m| m.client_cert_chain_verified == Some(true))
        .and_then(|m| borrowed(&m.client_cert_spiffe_id));
    let url = http.request_url.as_deref().map(str::trim_start);
    let encrypted = if tls.is_some() || url.is_some_and(|u| starts_with_ci(u, "https://")) {
        Some(true)
    } else if url.is_some_and(|u| starts_with_ci(u, "http://")) {
        Some(false)
    } else {
        None
    };

    let armor = payload.and_then(|p| p.enforced_security_policy.as_ref());
    let authz = payload.and_then(|p| p.auth_policy_info.as_ref());
    let denied_by_details = payload
        .and_then(|p| p.status_details.as_deref())
        .is_some_and(|d| d.starts_with("denied_by_security_policy"));
    let outcome = |t: &Text<'_>, deny: &str, allow: &str| match t.as_deref().map(str::trim) {
        Some(o) if o.eq_ignore_ascii_case(deny) => Some(false),
        Some(o) if o.eq_ignore_ascii_case(allow) => Some(true),
        _ => None,
    };
    let armor_allows = armor.and_then(|a| outcome(&a.outcome, "DENY", "ACCEPT"));
    let authz_allows = authz.and_then(|a| outcome(&a.result, "DENIED", "ALLOWED"));
    let denied = armor_allows == Some(false) || authz_allows == Some(false) || denied_by_details;
    let action = if denied { "deny" } else { "allow" };
    let rule = armor.and_then(|a| borrowed(&a.name));

    let labels = &entry.resource.labels;
    let resource =
        borrowed(&labels.target_proxy_name).or_else(|| borrowed(&labels.forwarding_rule_name));
    let region =
        borrowed(&labels.region).or_else(|| borrowed(&labels.zone).filter(|z| z == "global"));

    Ok(FlowRow {
        time,
        end_time,
        account: borrowed(&labels.project_id),
        region,
        vpc: borrowed(&labels.network_name),
        resource,
        src_ip,
        dst_ip,
        protocol,
        direction: Some(Cow::Borrowed("inbound")),
        action: Some(Cow::Borrowed(action)),
        bytes,
        rule,
        tls_version,
        peer_identity,
        tls_error,
        encrypted,
        ..FlowRow::default()
    })
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
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
    fn tls_versions_are_spelled_one_way() {
        for (input, want) in [
            ("TLSv1.3", "TLSv1.3"),
            ("TLS 1.2", "TLSv1.2"),
            ("tls1.2", "TLSv1.2"),
            ("TLS_1_1", "TLSv1.1"),
            ("SSLv3", "SSLv3"),
            ("QUIC", "QUIC"),
        ] {
            assert_eq!(normalize_tls_version(input), want, "{input}");
        }
    }

    #[test]
    fn example_maps_client_backend_bytes_latency_and_tls() {
        let r = &rows(FORMAT.example)[0];
        assert_eq!(r["src_ip"], "198.51.100.20");
        assert_eq!(r["dst_ip"], "10.20.0.4");
        assert_eq!(r["bytes"], 809);
        assert_eq!(r["time"], "2025-11-20T13:35:27.558637Z");
        assert_eq!(r["end_time"], "2025-11-20T13:35:27.563829Z");
        assert_eq!(r["tls_version"], "TLSv1.3");
        assert_eq!(r["encrypted"], true);
        assert_eq!(r["resource"], "web-proxy");
        assert_eq!(r["region"], "global");
        assert_eq!(r["action"], "allow");
        assert_eq!(r["protocol"], Value::Null);
    }

    #[test]
    fn mtls_failure_and_armor_deny() {
        let line = r#"{"httpRequest":{"remoteIp":"203.0.113.9","requestUrl":"https://api.example/","protocol":"HTTP/2.0"},"jsonPayload":{"mtls":{"clientCertPresent":true,"clientCertChainVerified":false,"clientCertError":"client_cert_chain_invalid_eku","clientCertSpiffeId":"spiffe://evil/x"},"enforcedSecurityPolicy":{"name":"edge-policy","outcome":"DENY"}},"resource":{"type":"http_load_balancer","labels":{"forwarding_rule_name":"fr-1"}},"timestamp":"2025-01-01T00:00:00Z"}"#;
        let r = &rows(line)[0];
        assert_eq!(r["tls_error"], "client_cert_chain_invalid_eku");
        assert_eq!(r["peer_identity"], Value::Null, "unverified SPIFFE ids are not identities");
        assert_eq!(r["action"], "deny");
        assert_eq!(r["rule"], "edge-policy");
        assert_eq!(r["protocol"], 6);
        assert_eq!(r["resource"], "fr-1");
        assert_eq!(r["encrypted"], true);
    }

    #[test]
    fn bad_values_are_quarantined() {
        let r =
            &rows(r#"{"httpRequest":{"remoteIp":"not-an-ip"},"timestamp":"2025-01-01T00:00:00Z"}"#)
                [0];
        assert_eq!(r["reason"], "bad_field");
        let r =
            &rows(r#"{"httpRequest":{"latency":"fast"},"timestamp":"2025-01-01T00:00:00Z"}"#)[0];
        assert_eq!(r["reason"], "bad_field");
        let r = &rows(r#"{"httpRequest":{}}"#)[0];
        assert_eq!(r["reason"], "missing_field");
    }

    #[test]
    fn sniff_claims_lb_entries_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= 90);
        let cloud_run = br#"{"httpRequest":{},"logName":"projects/p/logs/run.googleapis.com%2Frequests","resource":{"type":"cloud_run_revision"}}"#;
        assert_eq!(sniff(cloud_run), 0);
    }
}
