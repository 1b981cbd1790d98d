//! Amazon EventBridge events, `aws-eventbridge`: ACM and AWS Private CA certificate events →
//! `cert_events`; `"… via CloudTrail"` envelopes are CloudTrail events and become
//! `aws-cloudtrail` rows; any other event is skipped
//! (`aws-eventbridge: not a certificate or CloudTrail event`).
//!
//! Envelope: `{"version","id","detail-type","source","account","time","region","resources":[…],
//! "detail":{…}}`; `time` (second precision) is the event time, `resources[]` the only place
//! that names the certificate. Mapping by `detail-type`:
//! - ACM (`service` `acm`, `cert_id` = `resources[0]`, `subject` = `detail.CommonName`):
//!   `ACM Certificate Approaching Expiration` → `expiring`; `… Expired` → `expired`;
//!   `… Available` → `issued` / `renewed` / `imported` by `detail.Action`
//!   (ISSUANCE|RENEWAL|IMPORT|REIMPORT); `… Renewal Action Required` → `expiring` with the
//!   renewal status in `reason`; `… Revoked` → `revoked`; `… Rotated` → `renewed`.
//!   `not_after` = `detail.CertificateExpirationDate` when given, else `time` +
//!   `DaysToExpiry` days — derived, day precision, and counted as a note.
//! - Private CA (`service` `private-ca`, `detail.result` success|failure, `detail.reason` →
//!   `reason`): `… Certificate Issuance` → `issued` / `issue_failed` (`cert_id` = the
//!   `…/certificate/…` resource, `issuer` = the CA), `… Certificate Revocation` → `revoked` /
//!   `revoke_failed`, `… CRL Generation` → `crl_generated` / `crl_generation_failed`
//!   (`issuer` = the CA), `… Creation` → `ca_created` / `ca_create_failed` (`cert_id` = the
//!   CA); `… Audit Report Generation` changes no certificate and is skipped.
//!
//! A missing or unparseable `time` is quarantined. Documentation placeholders (`account`,
//! `region1`) are kept as written. Detail fields without a column (certificate type,
//! validation method, in-use and exported flags) are counted as unmapped.

use std::borrow::Cow;

use serde::Deserialize;

use super::cloudtrail::{AwsEventsParser, Doc, EnvelopeCtx};
use super::common::{cow, lower_word, present};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json::{self, de};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::CertEventRow;
use crate::schema::{Provider, Table};
use crate::values::{MICROS_PER_DAY, checked_micros};

/// Format name.
pub const NAME: &str = "aws-eventbridge";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Aws,
    tables: &[Table::CertEvents, Table::Signins],
    framing: Framing::Json,
    description: "Amazon EventBridge events: ACM and Private CA certificate events (expiring, expired, issued, revoked, CRL…); CloudTrail API calls delivered through EventBridge",
    example: r#"{"version":"0","id":"9c95e8e4-96a4-ef3f-b739-b6aa5b193afb","detail-type":"ACM Certificate Approaching Expiration","source":"aws.acm","account":"123456789012","time":"2020-09-30T06:51:08Z","region":"us-east-1","resources":["arn:aws:acm:us-east-1:123456789012:certificate/61f50cd4-45b9-4259-b049-d0a53682fa4b"],"detail":{"DaysToExpiry":31,"CommonName":"My Awesome Service"}}"#,
    sniff,
    new_parser,
};

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(AwsEventsParser::new(options, &FORMAT)))
}

/// Confidence that a record is an EventBridge event: its envelope keys.
fn sniff(record: &[u8]) -> u8 {
    if !super::common::is_json_object(record) {
        return 0;
    }
    let h = json::head(record, 2048);
    if json::contains(h, b"\"detail-type\"") && json::contains(h, b"\"detail\"") { 85 } else { 0 }
}

/// The `detail` of ACM and Private CA events (fields of both; absent ones stay `None`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Detail<'a> {
    #[serde(rename = "DaysToExpiry", deserialize_with = "de::int")]
    days_to_expiry: Option<i64>,
    #[serde(rename = "CommonName", borrow, deserialize_with = "de::text")]
    common_name: Option<Cow<'a, str>>,
    #[serde(rename = "CertificateExpirationDate", borrow, deserialize_with = "de::text")]
    expiration: Option<Cow<'a, str>>,
    #[serde(rename = "Action", borrow, deserialize_with = "de::text")]
    action: Option<Cow<'a, str>>,
    #[serde(rename = "RenewalStatus", borrow, deserialize_with = "de::text")]
    renewal_status: Option<Cow<'a, str>>,
    #[serde(rename = "RenewalStatusReason", borrow, deserialize_with = "de::text")]
    renewal_reason: Option<Cow<'a, str>>,
    #[serde(rename = "RevocationReason", borrow, deserialize_with = "de::text")]
    revocation_reason: Option<Cow<'a, str>>,
    #[serde(rename = "CertificateType", deserialize_with = "de::present")]
    certificate_type: bool,
    #[serde(rename = "DomainValidationMethod", deserialize_with = "de::present")]
    validation_method: bool,
    #[serde(rename = "InUse", deserialize_with = "de::present")]
    in_use: bool,
    #[serde(rename = "Exported", deserialize_with = "de::present")]
    exported: bool,
    /// Private CA: `success` | `failure`.
    #[serde(borrow, deserialize_with = "de::text")]
    result: Option<Cow<'a, str>>,
    /// Private CA failure reason.
    #[serde(borrow, deserialize_with = "de::text")]
    reason: Option<Cow<'a, str>>,
}

/// How a service event maps: service, activity on success / failure, and whether it concerns
/// the CA itself.
struct Kind {
    service: &'static str,
    done: &'static str,
    failed: &'static str,
    ca_level: bool,
}

const fn kind(
    service: &'static str,
    done: &'static str,
    failed: &'static str,
    ca_level: bool,
) -> Kind {
    Kind { service, done, failed, ca_level }
}

fn kind_of(detail_type: &str) -> Option<Kind> {
    Some(match detail_type {
        "ACM Certificate Approaching Expiration" | "ACM Certificate Renewal Action Required" => {
            kind("acm", "expiring", "expiring", false)
        }
        "ACM Certificate Expired" => kind("acm", "expired", "expired", false),
        "ACM Certificate Available" => kind("acm", "issued", "issued", false),
        "ACM Certificate Revoked" => kind("acm", "revoked", "revoked", false),
        "ACM Certificate Rotated" => kind("acm", "renewed", "renewed", false),
        "ACM Private CA Certificate Issuance" => {
            kind("private-ca", "issued", "issue_failed", false)
        }
        "ACM Private CA Certificate Revocation" => {
            kind("private-ca", "revoked", "revoke_failed", false)
        }
        "ACM Private CA CRL Generation" => {
            kind("private-ca", "crl_generated", "crl_generation_failed", true)
        }
        "ACM Private CA Creation" => kind("private-ca", "ca_created", "ca_create_failed", true),
        _ => return None,
    })
}

/// Handle an EventBridge envelope (called by the shared parser for any record or `Records`
/// element that has a `detail-type`).
pub(crate) fn envelope(
    parser: &mut AwsEventsParser,
    record: &Record<'_>,
    doc: &Doc<'_>,
    out: &mut Output,
) {
    let detail_type = doc.detail_type.as_deref().unwrap_or_default();
    // `Err` holds an unparseable envelope time (quarantined for service events; for CloudTrail
    // envelopes the event's own `eventTime` decides).
    let time: Result<Option<i64>, &str> = match present(doc.time.as_deref()) {
        None => Ok(None),
        Some(t) => json::parse_time(t).map(Some).ok_or(t),
    };
    if detail_type.ends_with(" via CloudTrail") {
        let Some(raw) = doc.detail else {
            out.set_format(super::cloudtrail::NAME, Provider::Aws);
            return out.quarantine(
                record,
                Reason::MissingField,
                "detail: absent from a CloudTrail envelope",
            );
        };
        let event: Doc<'_> = match serde_json::from_str(raw.get()) {
            Ok(ev) => ev,
            Err(e) => {
                out.set_format(super::cloudtrail::NAME, Provider::Aws);
                return out.quarantine(record, Reason::BadJson, &format!("detail: {e}"));
            }
        };
        let ctx =
            EnvelopeCtx { time: time.ok().flatten(), account: present(doc.account.as_deref()) };
        return parser.event(record, &event, ctx, out);
    }
    out.set_format(NAME, Provider::Aws);
    if detail_type == "ACM Private CA Audit Report Generation" {
        return out.skip("aws-eventbridge: audit report, no certificate changed");
    }
    let Some(kind) = kind_of(detail_type) else {
        return out.skip("aws-eventbridge: not a certificate or CloudTrail event");
    };
    let time = match time {
        Ok(Some(t)) => t,
        Ok(None) => return out.quarantine(record, Reason::MissingField, "time: absent"),
        Err(t) => {
            let shown: String = t.chars().take(64).collect();
            return out.quarantine(
                record,
                Reason::BadTime,
                &format!("time: {shown:?} is not a time in range"),
            );
        }
    };
    let detail: Detail<'_> = match doc.detail {
        None => Detail::default(),
        Some(raw) => match serde_json::from_str(raw.get()) {
            Ok(d) => d,
            Err(e) => return out.quarantine(record, Reason::BadJson, &format!("detail: {e}")),
        },
    };
    let resources: &[Cow<'_, str>] = doc.resources.as_deref().unwrap_or_default();
    let ca = resources
        .iter()
        .map(|r| &**r)
        .find(|r| r.contains(":certificate-authority/") && !r.contains("/certificate/"));
    let cert = resources
        .iter()
        .map(|r| &**r)
        .find(|r| r.contains(":certificate/") || r.contains("/certificate/"));
    let (cert_id, issuer) = if kind.ca_level {
        (
            if kind.done == "crl_generated" { None } else { ca },
            if kind.done == "crl_generated" { ca } else { None },
        )
    } else if kind.service == "acm" {
        (cert.or_else(|| resources.first().map(|r| &**r)), None)
    } else {
        (cert, ca)
    };
    let failed = detail.result.as_deref().is_some_and(|r| r.trim().eq_ignore_ascii_case("failure"));
    let activity = match (detail_type, detail.action.as_deref().map(str::trim)) {
        ("ACM Certificate Available", Some(a)) if a.eq_ignore_ascii_case("RENEWAL") => "renewed",
        ("ACM Certificate Available", Some(a))
            if a.eq_ignore_ascii_case("IMPORT") || a.eq_ignore_ascii_case("REIMPORT") =>
        {
            "imported"
        }
        _ if failed => kind.failed,
        _ => kind.done,
    };
    let reason = if let Some(r) = present(detail.reason.as_deref()) {
        Some(Cow::Borrowed(r))
    } else if detail_type == "ACM Certificate Renewal Action Required" {
        let status = present(detail.renewal_status.as_deref()).unwrap_or("renewal action required");
        Some(match present(detail.renewal_reason.as_deref()) {
            Some(why) => Cow::Owned(format!("{status}: {why}")),
            None => Cow::Borrowed(status),
        })
    } else {
        detail.revocation_reason.as_deref().and_then(lower_word)
    };
    let mut derived = false;
    let not_after = match present(detail.expiration.as_deref()).and_then(json::parse_time) {
        Some(t) => Some(t),
        None => detail
            .days_to_expiry
            .and_then(|d| d.checked_mul(MICROS_PER_DAY))
            .and_then(|d| time.checked_add(d))
            .and_then(checked_micros)
            .inspect(|_| derived = true),
    };
    let row = CertEventRow {
        time,
        service: Some(Cow::Borrowed(kind.service)),
        account: cow(doc.account.as_deref()),
        region: cow(doc.region.as_deref()),
        activity: Some(Cow::Borrowed(activity)),
        cert_id: cert_id.map(Cow::Borrowed),
        subject: cow(detail.common_name.as_deref()),
        issuer: issuer.map(Cow::Borrowed),
        not_after,
        reason,
        event: Some(Cow::Borrowed(detail_type)),
        ..CertEventRow::default()
    };
    if derived {
        out.note("aws-eventbridge: not_after derived from the event time plus DaysToExpiry (day precision)");
    }
    for (present, field) in [
        (detail.certificate_type, "detail.CertificateType"),
        (detail.validation_method, "detail.DomainValidationMethod"),
        (detail.in_use, "detail.InUse"),
        (detail.exported, "detail.Exported"),
    ] {
        if present {
            out.note_unmapped(NAME, field, 1);
        }
    }
    out.cert_event(record, &row);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SNIFF_THRESHOLD;

    #[test]
    fn sniff_claims_eventbridge_envelopes_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= SNIFF_THRESHOLD);
        for other in [
            &br#"{"eventType":"Microsoft.KeyVault.CertificateNearExpiry","data":{}}"#[..],
            br#"{"detail":{"x":1}}"#,
            br#"[{"detail-type":"x","detail":{}}]"#,
            b"detail-type detail",
        ] {
            assert_eq!(sniff(other), 0, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn every_mapped_detail_type_has_a_service_and_activities() {
        for dt in [
            "ACM Certificate Approaching Expiration",
            "ACM Certificate Renewal Action Required",
            "ACM Certificate Expired",
            "ACM Certificate Available",
            "ACM Certificate Revoked",
            "ACM Certificate Rotated",
            "ACM Private CA Certificate Issuance",
            "ACM Private CA Certificate Revocation",
            "ACM Private CA CRL Generation",
            "ACM Private CA Creation",
        ] {
            let k = kind_of(dt).expect(dt);
            assert!(matches!(k.service, "acm" | "private-ca"), "{dt}");
            assert!(!k.done.is_empty() && !k.failed.is_empty(), "{dt}");
        }
        assert!(kind_of("EC2 Instance State-change Notification").is_none());
    }
}
