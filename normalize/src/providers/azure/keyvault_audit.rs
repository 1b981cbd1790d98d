//! Azure Key Vault certificate operations from two audit streams:
//! - Key Vault diagnostic logs, category `AuditEvent` (`insights-logs-auditevent` blobs as
//!   `{"records":[...]}`, or Event Hub / one record per line), `operationName` such as
//!   `CertificateCreate`, `CertificateImport`, `CertificateDelete`,
//!   `CertificateNearExpiryEventGridNotification`; the caller in `identity.claim`;
//! - Azure Monitor Activity-log records for Key Vault certificates (`operationName`
//!   `Microsoft.KeyVault/vaults/certificates/<read|write|delete>`, whose case varies:
//!   `microsoft.keyvault/...` occurs), the caller in `identity.claims` or `caller`.
//!
//! Quirks handled: `resultType` `Success` or `Succeeded` (and `Failure`/`Failed`), Activity
//! `Start`/`Accept` events (skipped: the result event of the same operation follows),
//! `durationMs` as a string, masked ids (`XXXXXXXXXXXX`), 7 fractional digits in `time`,
//! Panther's lower-cased top-level keys.
//!
//! Promises: one `cert_events` row (`service` key-vault) per certificate operation, with
//! `activity` from the operation (create → requested, import → imported, delete → deleted,
//! purge → purged, recover → recovered, backup → exported, restore → restored, update/write →
//! updated, get/list/read → accessed, pending merge → issued, renew → renewed, near-expiry and
//! expired notifications → expiring/expired; other `Certificate*` operations keep a NULL
//! activity), `actor` = the caller's UPN, else name, else application id, else object id, else
//! `caller`; `reason` NULL on success and the result on failure (`Failure: Forbidden (403)`), so
//! `reason IS NULL` selects the operations that succeeded; `cert_id` = the certificate URL
//! (`properties.id`) or ARM id (`resourceId`); `account` = the subscription (lower-cased),
//! `region` = `location`; `event` = `operationName` as written. Operations on secrets, keys
//! and vaults are recognized as this format and skipped. `callerIpAddress`, `correlationId`,
//! `durationMs` and `properties.clientInfo` map to no column and are counted as unmapped.

use std::borrow::Cow;

use serde::Deserialize;

use super::common::{self, EnvelopeText, TimeField, opt_str, time_field};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json;
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::CertEventRow;
use crate::schema::{Provider, Table};

/// Format name.
pub const NAME: &str = "azure-keyvault-audit";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Azure,
    tables: &[Table::CertEvents],
    framing: Framing::Json,
    description: "Azure Key Vault AuditEvent diagnostic logs and Activity-log Key Vault certificate operations (create, import, delete, read, expiry notifications)",
    example: r#"{"records":[{"time":"2016-01-05T01:32:01.2691226Z","resourceId":"/SUBSCRIPTIONS/361DA5D4-A47A-4C79-AFDD-000000000000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV","operationName":"CertificateImport","category":"AuditEvent","resultType":"Success","resultSignature":"OK","durationMs":"78","callerIpAddress":"104.40.82.76","identity":{"claim":{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn":"admin@contoso.com","appid":"1950a258-227b-4e31-a9cf-717495945fc2"}},"properties":{"id":"https://kv.vault.azure.net/certificates/web/1234","httpStatusCode":200}}]}"#,
    sniff,
    new_parser,
};

const ENVELOPE: EnvelopeText = EnvelopeText {
    empty: "azure-keyvault-audit: empty records envelope",
    nested: "azure-keyvault-audit: records envelope nested inside records, parsed",
};

/// Confidence that a record is a Key Vault audit or Activity record: an operation name beside
/// a Key Vault resource type, in any of the cases Azure writes.
fn sniff(record: &[u8]) -> u8 {
    let head = json::head(record, 2048);
    let operation =
        json::contains(head, b"\"operationName\"") || json::contains(head, b"\"operationname\"");
    let vault = [
        &b"MICROSOFT.KEYVAULT/VAULTS"[..],
        b"Microsoft.KeyVault/vaults",
        b"microsoft.keyvault/vaults",
        b"Microsoft.KeyVault/Vaults",
    ]
    .iter()
    .any(|m| json::contains(head, m));
    if operation && vault { 85 } else { 0 }
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(AuditParser { options: options.clone(), unmapped: [0; UNMAPPED.len()] }))
}

const UNMAPPED: [&str; 4] =
    ["callerIpAddress", "correlationId", "durationMs", "properties.clientInfo"];

#[derive(Deserialize)]
struct AuditRecord<'a> {
    #[serde(default, borrow, deserialize_with = "time_field")]
    time: TimeField<'a>,
    #[serde(default, borrow, rename = "resourceId", deserialize_with = "opt_str")]
    resource_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "resourceid", deserialize_with = "opt_str")]
    resource_id_lc: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "operationName", deserialize_with = "opt_str")]
    operation: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "operationname", deserialize_with = "opt_str")]
    operation_lc: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "resultType", deserialize_with = "json::de::text")]
    result_type: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "resulttype", deserialize_with = "json::de::text")]
    result_type_lc: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "resultSignature", deserialize_with = "json::de::text")]
    result_signature: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "resultDescription", deserialize_with = "json::de::text")]
    result_description: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "json::de::text")]
    location: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "json::de::text")]
    caller: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    identity: Option<Identity<'a>>,
    #[serde(default, borrow)]
    properties: Option<Properties<'a>>,
    #[serde(default, rename = "callerIpAddress", deserialize_with = "json::de::present")]
    caller_ip: bool,
    #[serde(default, rename = "correlationId", deserialize_with = "json::de::present")]
    correlation_id: bool,
    #[serde(default, rename = "durationMs", deserialize_with = "json::de::present")]
    duration_ms: bool,
}

#[derive(Deserialize)]
struct Identity<'a> {
    /// AuditEvent.
    #[serde(default, borrow)]
    claim: Option<Claims<'a>>,
    /// Activity log.
    #[serde(default, borrow)]
    claims: Option<Claims<'a>>,
}

#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(
        default,
        borrow,
        rename = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
        deserialize_with = "json::de::text"
    )]
    upn: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        rename = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        deserialize_with = "json::de::text"
    )]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "json::de::text")]
    appid: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        rename = "http://schemas.microsoft.com/identity/claims/objectidentifier",
        deserialize_with = "json::de::text"
    )]
    oid: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Properties<'a> {
    #[serde(default, borrow, deserialize_with = "json::de::text")]
    id: Option<Cow<'a, str>>,
    #[serde(default, rename = "httpStatusCode", deserialize_with = "json::de::int")]
    http_status: Option<i64>,
    #[serde(default, rename = "clientInfo", deserialize_with = "json::de::present")]
    client_info: bool,
}

/// Parser state for one source: options and unmapped-field counts.
#[derive(Debug)]
struct AuditParser {
    options: ParseOptions,
    unmapped: [u64; UNMAPPED.len()],
}

impl Parser for AuditParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let Self { options, unmapped } = self;
        common::for_each_record(record, options, out, ENVELOPE, &mut |element, out| {
            let rec = match json::decode::<AuditRecord<'_>>(element.bytes, options) {
                Ok(r) => r,
                Err((reason, detail)) => {
                    out.quarantine(element, reason, &detail);
                    return;
                }
            };
            match build(&rec) {
                Ok(Built::Row(row)) => {
                    let flags = [
                        rec.caller_ip,
                        rec.correlation_id,
                        rec.duration_ms,
                        rec.properties.as_ref().is_some_and(|p| p.client_info),
                    ];
                    for (n, flag) in unmapped.iter_mut().zip(flags) {
                        *n += u64::from(flag);
                    }
                    if row.activity.is_none() {
                        out.note("azure-keyvault-audit: certificate operation without an activity mapping");
                    }
                    out.cert_event(element, &row);
                }
                Ok(Built::Skip(reason)) => out.skip(reason),
                Err((reason, detail)) => out.quarantine(element, reason, &detail),
            }
        });
    }

    fn finish(&mut self, out: &mut Output) {
        for (field, n) in UNMAPPED.iter().zip(std::mem::take(&mut self.unmapped)) {
            out.note_unmapped(NAME, field, n);
        }
    }
}

enum Built<'r> {
    Row(Box<CertEventRow<'r>>),
    Skip(&'static str),
}

type Rejection = (Reason, String);

fn text<'a>(v: &'a Option<Cow<'_, str>>) -> Option<Cow<'a, str>> {
    common::non_empty(v.as_deref().map(Cow::Borrowed))
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// Whether an operation concerns certificates, and its activity.
enum Operation {
    Certificate(Option<&'static str>),
    Other,
}

/// Classify an operation name: AuditEvent (`CertificateImport`) or Activity
/// (`Microsoft.KeyVault/vaults/certificates/read`, any case).
fn classify(op: &str) -> Operation {
    let op = op.trim();
    if starts_with_ignore_case(op, "Certificate") {
        let verb = op.get("Certificate".len()..).unwrap_or_default();
        const VERBS: &[(&str, &str)] = &[
            ("Create", "requested"),
            ("Import", "imported"),
            ("Delete", "deleted"),
            ("Purge", "purged"),
            ("Recover", "recovered"),
            ("Backup", "exported"),
            ("Restore", "restored"),
            ("Update", "updated"),
            ("Get", "accessed"),
            ("List", "accessed"),
            ("ListVersions", "accessed"),
            ("GetDeleted", "accessed"),
            ("ListDeleted", "accessed"),
            ("PolicyGet", "accessed"),
            ("PolicyUpdate", "updated"),
            ("PendingGet", "accessed"),
            ("PendingMerge", "issued"),
            ("Renew", "renewed"),
            ("NearExpiryEventGridNotification", "expiring"),
            ("ExpiredEventGridNotification", "expired"),
            ("NewVersionCreatedEventGridNotification", "issued"),
        ];
        let activity = VERBS.iter().find(|(v, _)| v.eq_ignore_ascii_case(verb)).map(|(_, a)| *a);
        return Operation::Certificate(activity);
    }
    let lower_marker = "microsoft.keyvault/vaults/certificates/";
    let Some(at) = op
        .as_bytes()
        .windows(lower_marker.len())
        .position(|w| w.eq_ignore_ascii_case(lower_marker.as_bytes()))
    else {
        return Operation::Other;
    };
    let action = op.get(at + lower_marker.len()..).unwrap_or_default();
    let activity = if action.eq_ignore_ascii_case("read") {
        Some("accessed")
    } else if action.eq_ignore_ascii_case("write") {
        Some("updated")
    } else if action.eq_ignore_ascii_case("delete") {
        Some("deleted")
    } else {
        None
    };
    Operation::Certificate(activity)
}

/// The result of an operation: success, a start event to skip, a failure with its reason, or
/// not stated.
enum Outcome {
    Success,
    Started,
    Failure(String),
    Unknown,
}

fn result(rec: &AuditRecord<'_>) -> Outcome {
    let result_type = text(&rec.result_type).or_else(|| text(&rec.result_type_lc));
    let status = rec.properties.as_ref().and_then(|p| p.http_status);
    let word = result_type.as_deref().unwrap_or_default();
    let is = |w: &str| word.eq_ignore_ascii_case(w);
    if is("Success") || is("Succeeded") {
        return Outcome::Success;
    }
    if is("Start") || is("Started") || is("Accept") || is("Accepted") {
        return Outcome::Started;
    }
    if word.is_empty() {
        return match status {
            Some(s) if s < 400 => Outcome::Success,
            Some(s) => Outcome::Failure(format!("HTTP {s}")),
            None => Outcome::Unknown,
        };
    }
    let mut reason = word.to_owned();
    let signature = text(&rec.result_signature);
    let description = text(&rec.result_description);
    for part in [signature, description].into_iter().flatten() {
        if !part.eq_ignore_ascii_case(word) {
            reason.push_str(if reason.contains(": ") { ", " } else { ": " });
            reason.push_str(&part);
        }
    }
    if let Some(s) = status {
        reason.push_str(&format!(" ({s})"));
    }
    Outcome::Failure(reason)
}

fn build<'r>(rec: &'r AuditRecord<'_>) -> Result<Built<'r>, Rejection> {
    let operation = text(&rec.operation).or_else(|| text(&rec.operation_lc));
    let Some(op) = operation else {
        return Err((Reason::MissingField, "operationName: absent".to_owned()));
    };
    let Operation::Certificate(activity) = classify(&op) else {
        return Ok(Built::Skip("azure-keyvault-audit: not a certificate operation"));
    };
    let reason = match result(rec) {
        Outcome::Started => {
            return Ok(Built::Skip(
                "azure-keyvault-audit: operation start event (its result event follows)",
            ));
        }
        Outcome::Success | Outcome::Unknown => None,
        Outcome::Failure(r) => Some(Cow::Owned(r)),
    };
    let Some(time) = rec.time.parse("time")? else {
        return Err((Reason::MissingField, "time: absent".to_owned()));
    };
    let resource = text(&rec.resource_id).or_else(|| text(&rec.resource_id_lc));
    let claims = rec.identity.as_ref().and_then(|i| i.claim.as_ref().or(i.claims.as_ref()));
    let actor = claims
        .and_then(|c| {
            text(&c.upn)
                .or_else(|| text(&c.name))
                .or_else(|| text(&c.appid))
                .or_else(|| text(&c.oid))
        })
        .or_else(|| text(&rec.caller));
    let certificate_url = rec
        .properties
        .as_ref()
        .and_then(|p| text(&p.id))
        .filter(|id| id.contains("/certificates/"));
    let cert_id = certificate_url.or_else(|| {
        resource
            .clone()
            .filter(|r| r.as_bytes().windows(14).any(|w| w.eq_ignore_ascii_case(b"/certificates/")))
    });
    Ok(Built::Row(Box::new(CertEventRow {
        time,
        service: Some(Cow::Borrowed("key-vault")),
        account: resource
            .as_deref()
            .and_then(common::subscription)
            .map(|c| Cow::Owned(c.into_owned())),
        region: text(&rec.location),
        activity: activity.map(Cow::Borrowed),
        cert_id,
        actor,
        reason,
        event: Some(op),
        ..CertEventRow::default()
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SNIFF_THRESHOLD;
    use crate::golden::normalize_bytes;
    use serde_json::Value;

    #[test]
    fn audit_event_operations() {
        let input = r#"{"records":[
 {"time":"2016-01-05T01:32:01.2691226Z","resourceId":"/SUBSCRIPTIONS/AB/RESOURCEGROUPS/G/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV","operationName":"CertificateDelete","category":"AuditEvent","resultType":"Failure","resultSignature":"Forbidden","identity":{"claim":{"appid":"app-1"}},"properties":{"id":"https://kv.vault.azure.net/certificates/web","httpStatusCode":403}},
 {"time":"2016-01-05T01:32:01Z","operationName":"SecretGet","category":"AuditEvent","resultType":"Success"},
 {"time":"2016-01-05T01:32:01Z","operationName":"CertificateContactsSet","category":"AuditEvent","resultType":"Success"},
 {"operationName":"CertificateImport","category":"AuditEvent"},
 {"time":"2016-01-05T01:32:01Z","category":"AuditEvent"}
]}"#;
        let rows = normalize_bytes("t", input.as_bytes(), NAME, &ParseOptions::default(), None);
        let tables: Vec<&str> = rows.iter().filter_map(|r| r["table"].as_str()).collect();
        assert_eq!(tables, ["cert_events", "cert_events", "quarantine", "quarantine"]);
        let r = &rows[0];
        assert_eq!(r["activity"], "deleted");
        assert_eq!(r["reason"], "Failure: Forbidden (403)");
        assert_eq!(r["actor"], "app-1");
        assert_eq!(r["account"], "ab");
        assert_eq!(r["cert_id"], "https://kv.vault.azure.net/certificates/web");
        assert_eq!(rows[1]["activity"], Value::Null);
        assert_eq!(rows[1]["reason"], Value::Null);
        assert_eq!(rows[2]["detail"], "time: absent");
        assert_eq!(rows[3]["detail"], "operationName: absent");
    }

    #[test]
    fn activity_operations_in_any_case() {
        for (op, want) in [
            ("Microsoft.KeyVault/vaults/certificates/read", Some("accessed")),
            ("microsoft.keyvault/vaults/certificates/write", Some("updated")),
            ("MICROSOFT.KEYVAULT/VAULTS/CERTIFICATES/DELETE", Some("deleted")),
            ("certificatenearexpiryeventgridnotification", Some("expiring")),
            ("CertificateCreate", Some("requested")),
        ] {
            match classify(op) {
                Operation::Certificate(a) => assert_eq!(a, want, "{op}"),
                Operation::Other => panic!("{op} not a certificate operation"),
            }
        }
        assert!(matches!(classify("Microsoft.KeyVault/vaults/secrets/read"), Operation::Other));
        assert!(matches!(classify("VaultGet"), Operation::Other));
        let rows = normalize_bytes(
            "t",
            br#"{"time":"2025-12-23T10:30:00Z","operationName":"Microsoft.KeyVault/vaults/certificates/read","resultType":"Start","resourceId":"/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v/certificates/c"}"#,
            NAME,
            &ParseOptions::default(),
            None,
        );
        assert!(rows.is_empty(), "start events are skipped");
    }

    #[test]
    fn sniff_claims_key_vault_audit_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= SNIFF_THRESHOLD);
        assert!(
            sniff(br#"{"operationName":"microsoft.keyvault/vaults/certificates/read"}"#)
                >= SNIFF_THRESHOLD
        );
        assert_eq!(sniff(br#"{"topic":"/subscriptions/x/providers/Microsoft.KeyVault/vaults/kv","eventType":"Microsoft.KeyVault.SecretNewVersionCreated"}"#), 0);
        assert_eq!(sniff(br#"{"operationName":"Sign-in activity","category":"SignInLogs"}"#), 0);
    }
}
