//! Entra ID (Azure AD) sign-in logs from diagnostic settings (Event Hub messages and storage
//! blobs as `{"records":[...]}`, or one record per line), all six categories:
//! `SignInLogs`, `NonInteractiveUserSignInLogs`, `ServicePrincipalSignInLogs`,
//! `ManagedIdentitySignInLogs`, `MicrosoftServicePrincipalSignInLogs`, `ADFSSignInLogs`.
//!
//! Quirks handled: `time` in every shape Azure writes (ISO with 0–9 fractional digits, with or
//! without zone, `±hh:mm` offsets, US `M/D/YYYY h:mm:ss AM` with optional offset, Panther's
//! `YYYY-MM-DD HH:MM:SS.fff`), falling back to `properties.createdDateTime` (with a note) when
//! `time` is absent; `resultType` as string or number; `Level`/`level`, `durationMs` as number
//! or string (not mapped, counted); Panther's lower-cased top-level keys (`calleripaddress`,
//! `correlationid`, `tenantid`, `resulttype`, …); PascalCase keys in ADFS
//! `authenticationDetails`; `""` for unknown values (NULL).
//!
//! Mapping (one `signins` row per record; other categories in the same envelope are skipped):
//! - `outcome`: `status.errorCode` 0 → success, other → failure; without a status,
//!   `resultType` (`0`/`Success`/`Succeeded` vs. a non-zero code/`Failure`/`Failed`);
//!   `failure_reason` = `"<code>: <status.failureReason or resultDescription>"` on failure;
//! - `mfa`/`mfa_method`: MFA satisfied by a token claim (`additionalDetails` / step detail
//!   "MFA requirement satisfied by claim in the token", or a "Previously satisfied" step) →
//!   true / `claim_in_token`; else a succeeded second-factor step in `authenticationDetails` →
//!   true / its method (`push`, `totp`, `sms`, `voice`, `fido2`, `windows_hello`,
//!   `certificate`, …); else `authenticationRequirement` `multiFactorAuthentication` → true on
//!   success (method from `mfaDetail.authMethod` when given), false on failure;
//!   `singleFactorAuthentication` → false; otherwise (service principals) NULL;
//! - `user_type`: human for the user categories (interactive, non-interactive, ADFS), service
//!   for service principals, managed identities and Microsoft service principals, whose `user`
//!   is `servicePrincipalName` (or `appDisplayName`) and `user_id` `servicePrincipalId` (or
//!   `appId`);
//! - `via_idp` is always true: Entra ID is the primary IdP, every row is a sign-in through it;
//! - `risk_level` = `riskLevelDuringSignIn` (`riskLevelAggregated` when absent), lower-case;
//!   `conditional_access` = `conditionalAccessStatus` (`notApplied` → `not_applied`);
//! - `device_managed`/`device_compliant` from `deviceDetail.isManaged`/`isCompliant` (NULL when
//!   absent), `device_id` from `deviceDetail.deviceId` (`""` → NULL);
//! - `src_ip` = `callerIpAddress` (else `properties.ipAddress`), canonical; `country` =
//!   `location.countryOrRegion` (else the top-level `location`); `app` = `appDisplayName`;
//!   `session_id` = `properties.sessionId` (else `correlationId`); `account` = `tenantId`;
//!   `event` = the category.
//!
//! Types: fields whose type varies between producers are read leniently (`time`,
//! `resultType`, `status.errorCode`, `deviceDetail.isCompliant`/`isManaged`); the other mapped
//! fields are strings in every producer's output and a value of another type quarantines the
//! record (`bad_json`, naming the position).
//!
//! Fields that map to no column (authentication protocol, client app, resource, policies,
//! risk state, …) are counted per field and reported as unmapped at the end of the source.
//! The decoder borrows every string from the record and skips the fields it does not map.

use std::borrow::Cow;

use serde::Deserialize;

use super::common::{
    self, EnvelopeText, TimeField, lenient_bool, lenient_int, lenient_text, opt_str, time_field,
};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json;
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::SigninRow;
use crate::schema::{Provider, Table};

/// Format name.
pub const NAME: &str = "azure-entra-signin";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Azure,
    tables: &[Table::Signins],
    framing: Framing::Json,
    description: "Entra ID sign-in logs (diagnostic settings, {\"records\":[...]} or one per line): interactive, non-interactive, service principal, managed identity, Microsoft service principal, ADFS",
    example: r#"{"time":"2019-10-18T09:45:48.0729893Z","category":"SignInLogs","operationName":"Sign-in activity","resultType":"0","callerIpAddress":"81.2.69.144","correlationId":"8a4de8b5-095c-47d0-a96f-a75130c61d53","tenantId":"8a4de8b5-095c-47d0-a96f-a75130c61d53","properties":{"userPrincipalName":"user@example.com","userId":"1f2e3d4c-0000-0000-0000-000000000000","appDisplayName":"Office 365","authenticationRequirement":"singleFactorAuthentication","conditionalAccessStatus":"notApplied","status":{"errorCode":0},"location":{"countryOrRegion":"FR"}}}"#,
    sniff,
    new_parser,
};

const ENVELOPE: EnvelopeText = EnvelopeText {
    empty: "azure-entra-signin: empty records envelope",
    nested: "azure-entra-signin: records envelope nested inside records, parsed",
};

/// Confidence that a record is an Entra sign-in record or envelope: a sign-in category name
/// (they all end in `SignInLogs`) or the sign-in operation name.
fn sniff(record: &[u8]) -> u8 {
    let head = json::head(record, 2048);
    if json::contains(head, b"SignInLogs\"") || json::contains(head, b"\"Sign-in activity\"") {
        95
    } else {
        0
    }
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(SigninParser { options: options.clone(), unmapped: [0; UNMAPPED.len()] }))
}

/// Fields counted as unmapped, in the order of the flags in `count_unmapped`.
const UNMAPPED: [&str; 17] = [
    "properties.authenticationProtocol",
    "properties.clientAppUsed",
    "properties.resourceDisplayName",
    "properties.appliedConditionalAccessPolicies",
    "properties.riskState",
    "properties.riskDetail",
    "properties.riskEventTypes",
    "properties.isInteractive",
    "properties.tokenIssuerType",
    "properties.autonomousSystemNumber",
    "properties.userType",
    "properties.crossTenantAccessType",
    "properties.authenticationProcessingDetails",
    "properties.deviceDetail.trustType",
    "properties.deviceDetail.operatingSystem",
    "durationMs",
    "Level",
];

#[derive(Deserialize)]
struct SigninRecord<'a> {
    #[serde(default, borrow, deserialize_with = "time_field")]
    time: TimeField<'a>,
    #[serde(default, borrow, deserialize_with = "opt_str")]
    category: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "callerIpAddress", deserialize_with = "opt_str")]
    caller_ip: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "calleripaddress", deserialize_with = "opt_str")]
    caller_ip_lc: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "correlationId", deserialize_with = "opt_str")]
    correlation_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "correlationid", deserialize_with = "opt_str")]
    correlation_id_lc: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "tenantId", deserialize_with = "opt_str")]
    tenant_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "tenantid", deserialize_with = "opt_str")]
    tenant_id_lc: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "resultType", deserialize_with = "lenient_text")]
    result_type: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "resulttype", deserialize_with = "lenient_text")]
    result_type_lc: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "resultDescription", deserialize_with = "opt_str")]
    result_description: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "resultdescription", deserialize_with = "opt_str")]
    result_description_lc: Option<Cow<'a, str>>,
    /// Top-level `location`: the country code.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    location: Option<Cow<'a, str>>,
    #[serde(default, rename = "durationMs", deserialize_with = "json::de::present")]
    duration_ms: bool,
    #[serde(default, rename = "durationms", deserialize_with = "json::de::present")]
    duration_ms_lc: bool,
    #[serde(default, rename = "Level", deserialize_with = "json::de::present")]
    level: bool,
    #[serde(default, rename = "level", deserialize_with = "json::de::present")]
    level_lc: bool,
    #[serde(default, borrow)]
    properties: Properties<'a>,
}

#[derive(Deserialize, Default)]
struct Properties<'a> {
    #[serde(default, borrow, rename = "createdDateTime", deserialize_with = "opt_str")]
    created: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "userPrincipalName", deserialize_with = "opt_str")]
    upn: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "signInIdentifier", deserialize_with = "opt_str")]
    sign_in_identifier: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "userId", deserialize_with = "opt_str")]
    user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "servicePrincipalName", deserialize_with = "opt_str")]
    sp_name: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "servicePrincipalId", deserialize_with = "opt_str")]
    sp_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "appDisplayName", deserialize_with = "opt_str")]
    app_name: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "appId", deserialize_with = "opt_str")]
    app_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "ipAddress", deserialize_with = "opt_str")]
    ip: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "userAgent", deserialize_with = "opt_str")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "correlationId", deserialize_with = "opt_str")]
    correlation_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "sessionId", deserialize_with = "opt_str")]
    session_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "tenantId", deserialize_with = "opt_str")]
    tenant_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "conditionalAccessStatus", deserialize_with = "opt_str")]
    ca_status: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "riskLevelDuringSignIn", deserialize_with = "opt_str")]
    risk_during: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "riskLevelAggregated", deserialize_with = "opt_str")]
    risk_aggregated: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "authenticationRequirement", deserialize_with = "opt_str")]
    auth_requirement: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_str")]
    result: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    status: Option<Status<'a>>,
    #[serde(default, borrow, rename = "deviceDetail")]
    device: Option<DeviceDetail<'a>>,
    #[serde(default, borrow)]
    location: Option<Location<'a>>,
    #[serde(default, borrow, rename = "authenticationDetails")]
    steps: Option<Vec<AuthStep<'a>>>,
    #[serde(default, borrow, rename = "mfaDetail")]
    mfa_detail: Option<MfaDetail<'a>>,
    // Presence of unmapped fields (counted per row, reported at the end of the source).
    #[serde(default, rename = "authenticationProtocol", deserialize_with = "json::de::present")]
    auth_protocol: bool,
    #[serde(default, rename = "clientAppUsed", deserialize_with = "json::de::present")]
    client_app: bool,
    #[serde(default, rename = "resourceDisplayName", deserialize_with = "json::de::present")]
    resource: bool,
    #[serde(
        default,
        rename = "appliedConditionalAccessPolicies",
        deserialize_with = "json::de::present"
    )]
    policies: bool,
    #[serde(default, rename = "riskState", deserialize_with = "json::de::present")]
    risk_state: bool,
    #[serde(default, rename = "riskDetail", deserialize_with = "json::de::present")]
    risk_detail: bool,
    #[serde(default, rename = "riskEventTypes", deserialize_with = "json::de::present")]
    risk_events: bool,
    #[serde(default, rename = "isInteractive", deserialize_with = "json::de::present")]
    interactive: bool,
    #[serde(default, rename = "tokenIssuerType", deserialize_with = "json::de::present")]
    token_issuer: bool,
    #[serde(default, rename = "autonomousSystemNumber", deserialize_with = "json::de::present")]
    asn: bool,
    #[serde(default, rename = "userType", deserialize_with = "json::de::present")]
    user_type: bool,
    #[serde(default, rename = "crossTenantAccessType", deserialize_with = "json::de::present")]
    cross_tenant: bool,
    #[serde(
        default,
        rename = "authenticationProcessingDetails",
        deserialize_with = "json::de::present"
    )]
    processing: bool,
}

#[derive(Deserialize)]
struct Status<'a> {
    #[serde(default, rename = "errorCode", deserialize_with = "lenient_int")]
    error_code: Option<i64>,
    #[serde(default, borrow, rename = "failureReason", deserialize_with = "opt_str")]
    failure_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "additionalDetails", deserialize_with = "opt_str")]
    additional: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeviceDetail<'a> {
    #[serde(default, borrow, rename = "deviceId", deserialize_with = "opt_str")]
    device_id: Option<Cow<'a, str>>,
    #[serde(default, rename = "isCompliant", deserialize_with = "lenient_bool")]
    compliant: Option<bool>,
    #[serde(default, rename = "isManaged", deserialize_with = "lenient_bool")]
    managed: Option<bool>,
    #[serde(default, rename = "trustType", deserialize_with = "json::de::present")]
    trust_type: bool,
    #[serde(default, rename = "operatingSystem", deserialize_with = "json::de::present")]
    os: bool,
}

#[derive(Deserialize)]
struct Location<'a> {
    #[serde(default, borrow, rename = "countryOrRegion", deserialize_with = "opt_str")]
    country: Option<Cow<'a, str>>,
}

/// One step of `authenticationDetails` (camelCase, or PascalCase in some ADFS records).
#[derive(Deserialize)]
struct AuthStep<'a> {
    #[serde(default, borrow, rename = "authenticationMethod", deserialize_with = "opt_str")]
    method: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "AuthenticationMethod", deserialize_with = "opt_str")]
    method_pc: Option<Cow<'a, str>>,
    #[serde(default, rename = "succeeded", deserialize_with = "lenient_bool")]
    succeeded: Option<bool>,
    #[serde(default, rename = "Succeeded", deserialize_with = "lenient_bool")]
    succeeded_pc: Option<bool>,
    #[serde(
        default,
        borrow,
        rename = "authenticationStepRequirement",
        deserialize_with = "opt_str"
    )]
    requirement: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        rename = "AuthenticationStepRequirement",
        deserialize_with = "opt_str"
    )]
    requirement_pc: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        rename = "authenticationStepResultDetail",
        deserialize_with = "opt_str"
    )]
    detail: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        rename = "AuthenticationStepResultDetail",
        deserialize_with = "opt_str"
    )]
    detail_pc: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MfaDetail<'a> {
    #[serde(default, borrow, rename = "authMethod", deserialize_with = "opt_str")]
    auth_method: Option<Cow<'a, str>>,
}

/// Parser state for one source: options and unmapped-field counts.
#[derive(Debug)]
struct SigninParser {
    options: ParseOptions,
    unmapped: [u64; UNMAPPED.len()],
}

impl Parser for SigninParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let Self { options, unmapped } = self;
        common::for_each_record(record, options, out, ENVELOPE, &mut |element, out| {
            parse_one(element, options, unmapped, out);
        });
    }

    fn finish(&mut self, out: &mut Output) {
        for (field, n) in UNMAPPED.iter().zip(std::mem::take(&mut self.unmapped)) {
            out.note_unmapped(NAME, field, n);
        }
    }
}

/// What kind of principal a category's sign-ins are by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Principal {
    Human,
    Service,
}

/// The canonical category name and its principal kind; `None` for other categories.
fn category(name: &str) -> Option<(&'static str, Principal)> {
    const CATEGORIES: [(&str, Principal); 6] = [
        ("SignInLogs", Principal::Human),
        ("NonInteractiveUserSignInLogs", Principal::Human),
        ("ADFSSignInLogs", Principal::Human),
        ("ServicePrincipalSignInLogs", Principal::Service),
        ("ManagedIdentitySignInLogs", Principal::Service),
        ("MicrosoftServicePrincipalSignInLogs", Principal::Service),
    ];
    CATEGORIES.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)).copied()
}

fn parse_one(record: &Record<'_>, options: &ParseOptions, unmapped: &mut [u64], out: &mut Output) {
    let rec: SigninRecord<'_> = match json::decode(record.bytes, options) {
        Ok(r) => r,
        Err((reason, detail)) => {
            out.quarantine(record, reason, &detail);
            return;
        }
    };
    match build(&rec) {
        Ok(Some(row)) => {
            count_unmapped(&rec, unmapped);
            if rec.time.is_absent() {
                out.note("azure-entra-signin: time from properties.createdDateTime");
            }
            out.signin(record, &row);
        }
        Ok(None) => out.skip("azure-entra-signin: not a sign-in category"),
        Err((reason, detail)) => out.quarantine(record, reason, &detail),
    }
}

fn count_unmapped(rec: &SigninRecord<'_>, unmapped: &mut [u64]) {
    let p = &rec.properties;
    let device = rec.properties.device.as_ref();
    let flags = [
        p.auth_protocol,
        p.client_app,
        p.resource,
        p.policies,
        p.risk_state,
        p.risk_detail,
        p.risk_events,
        p.interactive,
        p.token_issuer,
        p.asn,
        p.user_type,
        p.cross_tenant,
        p.processing,
        device.is_some_and(|d| d.trust_type),
        device.is_some_and(|d| d.os),
        rec.duration_ms || rec.duration_ms_lc,
        rec.level || rec.level_lc,
    ];
    for (n, flag) in unmapped.iter_mut().zip(flags) {
        *n += u64::from(flag);
    }
}

fn text<'a>(v: &'a Option<Cow<'_, str>>) -> Option<Cow<'a, str>> {
    common::non_empty(v.as_deref().map(Cow::Borrowed))
}

fn either<'a>(a: &'a Option<Cow<'_, str>>, b: &'a Option<Cow<'_, str>>) -> Option<Cow<'a, str>> {
    text(a).or_else(|| text(b))
}

type Rejection = (Reason, String);

/// The row of a sign-in record; `None` for a record of another category.
fn build<'r>(rec: &'r SigninRecord<'_>) -> Result<Option<SigninRow<'r>>, Rejection> {
    let p = &rec.properties;
    let (event, principal) = match text(&rec.category) {
        Some(c) => match category(&c) {
            Some((name, kind)) => (Some(name), Some(kind)),
            None => return Ok(None),
        },
        None => (None, None),
    };
    let principal = principal.or_else(|| {
        if text(&p.upn).is_some() {
            Some(Principal::Human)
        } else if text(&p.sp_id).is_some() || text(&p.sp_name).is_some() {
            Some(Principal::Service)
        } else {
            None
        }
    });

    let time = match rec.time.parse("time")? {
        Some(t) => t,
        None => match text(&p.created) {
            Some(t) => json::parse_time(&t).ok_or_else(|| {
                let shown: String = t.chars().take(64).collect();
                (
                    Reason::BadTime,
                    format!("properties.createdDateTime: {shown:?} is not a timestamp in range"),
                )
            })?,
            None => return Err((Reason::MissingField, "time: absent".to_owned())),
        },
    };

    let src_ip = match either(&rec.caller_ip, &rec.caller_ip_lc).or_else(|| text(&p.ip)) {
        None => None,
        Some(ip) => Some(common::canonical_ip_text(ip).map_err(|shown| {
            (Reason::BadField, format!("callerIpAddress: invalid value {shown:?}"))
        })?),
    };

    let (outcome, failure_reason) = outcome(rec);
    let (mfa, mfa_method) = mfa(p, outcome);
    let (user, user_id) = match principal {
        Some(Principal::Service) => (
            text(&p.sp_name).or_else(|| text(&p.app_name)),
            text(&p.sp_id).or_else(|| text(&p.app_id)),
        ),
        _ => (text(&p.upn).or_else(|| text(&p.sign_in_identifier)), text(&p.user_id)),
    };
    let device = p.device.as_ref();
    let risk = text(&p.risk_during).or_else(|| text(&p.risk_aggregated));

    Ok(Some(SigninRow {
        time,
        account: either(&rec.tenant_id, &rec.tenant_id_lc).or_else(|| text(&p.tenant_id)),
        user,
        user_id,
        user_type: principal.map(|k| {
            Cow::Borrowed(match k {
                Principal::Human => "human",
                Principal::Service => "service",
            })
        }),
        via_idp: Some(true),
        outcome: outcome.map(Cow::Borrowed),
        failure_reason,
        mfa,
        mfa_method,
        src_ip,
        user_agent: text(&p.user_agent),
        device_id: device.and_then(|d| text(&d.device_id)),
        device_managed: device.and_then(|d| d.managed),
        device_compliant: device.and_then(|d| d.compliant),
        risk_level: risk.as_deref().and_then(risk_level).map(Cow::Borrowed),
        country: p.location.as_ref().and_then(|l| text(&l.country)).or_else(|| text(&rec.location)),
        app: text(&p.app_name),
        role: None,
        conditional_access: text(&p.ca_status)
            .as_deref()
            .and_then(conditional_access)
            .map(Cow::Borrowed),
        session_id: text(&p.session_id)
            .or_else(|| either(&rec.correlation_id, &rec.correlation_id_lc))
            .or_else(|| text(&p.correlation_id)),
        event: event.map(Cow::Borrowed),
    }))
}

/// `outcome` and `failure_reason`.
fn outcome<'r>(rec: &'r SigninRecord<'_>) -> (Option<&'static str>, Option<Cow<'r, str>>) {
    let p = &rec.properties;
    let status = p.status.as_ref();
    let result_type = either(&rec.result_type, &rec.result_type_lc);
    let code = status.and_then(|s| s.error_code).or_else(|| {
        result_type
            .as_deref()
            .filter(|r| r.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|r| r.parse().ok())
    });
    let success = match code {
        Some(c) => Some(c == 0),
        None => {
            let word = result_type.as_deref().or(p.result.as_deref()).map(str::trim);
            match word {
                Some(w)
                    if w.eq_ignore_ascii_case("success") || w.eq_ignore_ascii_case("succeeded") =>
                {
                    Some(true)
                }
                Some(w)
                    if w.eq_ignore_ascii_case("failure") || w.eq_ignore_ascii_case("failed") =>
                {
                    Some(false)
                }
                _ => None,
            }
        }
    };
    match success {
        Some(true) => (Some("success"), None),
        None => (None, None),
        Some(false) => {
            let text = status
                .and_then(|s| text(&s.failure_reason))
                .or_else(|| either(&rec.result_description, &rec.result_description_lc));
            let reason = match (code, text) {
                (Some(c), Some(t)) => Some(Cow::Owned(format!("{c}: {t}"))),
                (Some(c), None) => Some(Cow::Owned(c.to_string())),
                (None, t) => t,
            };
            (Some("failure"), reason)
        }
    }
}

const CLAIM: &str = "satisfied by claim in the token";

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// `mfa` and `mfa_method` (see the module docs for the order of evidence).
fn mfa(p: &Properties<'_>, outcome: Option<&str>) -> (Option<bool>, Option<Cow<'static, str>>) {
    let claim_in =
        |v: &Option<Cow<'_, str>>| v.as_deref().is_some_and(|d| contains_ignore_case(d, CLAIM));
    let steps = p.steps.as_deref().unwrap_or_default();
    let by_claim = p.status.as_ref().is_some_and(|s| claim_in(&s.additional))
        || steps.iter().any(|s| {
            claim_in(&s.detail)
                || claim_in(&s.detail_pc)
                || s.method
                    .as_deref()
                    .or(s.method_pc.as_deref())
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("Previously satisfied"))
        });
    if by_claim {
        return (Some(true), Some(Cow::Borrowed("claim_in_token")));
    }
    for step in steps {
        let succeeded = step.succeeded.or(step.succeeded_pc) == Some(true);
        let Some(method) = step.method.as_deref().or(step.method_pc.as_deref()).map(str::trim)
        else {
            continue;
        };
        if !succeeded || method.is_empty() {
            continue;
        }
        let multi = step
            .requirement
            .as_deref()
            .or(step.requirement_pc.as_deref())
            .is_some_and(|r| contains_ignore_case(r, "multi"));
        match mfa_method(method) {
            Some(m) => return (Some(true), Some(Cow::Borrowed(m))),
            None if multi && !is_first_factor(method) => {
                return (Some(true), Some(Cow::Owned(slug(method))));
            }
            None => {}
        }
    }
    let detail_method = p
        .mfa_detail
        .as_ref()
        .and_then(|d| d.auth_method.as_deref())
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| mfa_method(m).map_or_else(|| Cow::Owned(slug(m)), Cow::Borrowed));
    let requirement = p.auth_requirement.as_deref().map(str::trim).unwrap_or_default();
    if requirement.eq_ignore_ascii_case("multiFactorAuthentication") {
        match outcome {
            Some("success") => (Some(true), detail_method),
            Some(_) => (Some(false), None),
            None => (None, None),
        }
    } else if requirement.eq_ignore_ascii_case("singleFactorAuthentication") {
        (Some(false), None)
    } else if detail_method.is_some() && outcome == Some("success") {
        (Some(true), detail_method)
    } else {
        (None, None)
    }
}

fn is_first_factor(method: &str) -> bool {
    ["Password", "Password in the cloud", "Password Hash Sync", "Pass-through Authentication"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// The second factor a method name designates, in the `mfa_method` vocabulary.
fn mfa_method(method: &str) -> Option<&'static str> {
    const METHODS: &[(&str, &str)] = &[
        ("Mobile app notification", "push"),
        ("PhoneAppNotification", "push"),
        ("Notification through mobile app", "push"),
        ("Microsoft Authenticator (push notification)", "push"),
        ("Mobile app verification code", "totp"),
        ("PhoneAppOTP", "totp"),
        ("OATH verification code", "totp"),
        ("Software OATH token", "totp"),
        ("Hardware OATH token", "totp"),
        ("OATH Software token", "totp"),
        ("Verification code", "totp"),
        ("Microsoft Authenticator (verification code)", "totp"),
        ("Text message", "sms"),
        ("OneWaySMS", "sms"),
        ("SMS", "sms"),
        ("SMS Sign-in", "sms"),
        ("Phone call", "voice"),
        ("TwoWayVoiceMobile", "voice"),
        ("TwoWayVoiceOffice", "voice"),
        ("TwoWayVoiceAlternateMobile", "voice"),
        ("Voice", "voice"),
        ("FIDO2 security key", "fido2"),
        ("FIDO2", "fido2"),
        ("Passkey", "fido2"),
        ("Windows Hello for Business", "windows_hello"),
        ("Passwordless phone sign-in", "passwordless_phone"),
        ("Microsoft Authenticator (passwordless)", "passwordless_phone"),
        ("X.509 Certificate", "certificate"),
        ("Certificate", "certificate"),
        ("Certificate-based authentication", "certificate"),
        ("Temporary Access Pass", "temporary_access_pass"),
        ("Email", "email"),
        ("Email OTP", "email"),
        ("Email verification code", "email"),
    ];
    METHODS.iter().find(|(name, _)| name.eq_ignore_ascii_case(method)).map(|(_, m)| *m)
}

/// Lower-case, words joined by `_`: the `mfa_method` of a method name not in the vocabulary.
fn slug(method: &str) -> String {
    let mut s = String::with_capacity(method.len());
    for word in method.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if !s.is_empty() {
            s.push('_');
        }
        s.extend(word.chars().flat_map(char::to_lowercase));
    }
    s
}

fn risk_level(v: &str) -> Option<&'static str> {
    ["none", "low", "medium", "high", "hidden"].into_iter().find(|l| l.eq_ignore_ascii_case(v))
}

fn conditional_access(v: &str) -> Option<&'static str> {
    if v.eq_ignore_ascii_case("success") {
        Some("success")
    } else if v.eq_ignore_ascii_case("failure") {
        Some("failure")
    } else if v.eq_ignore_ascii_case("notApplied") {
        Some("not_applied")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SNIFF_THRESHOLD;
    use crate::golden::normalize_bytes;
    use crate::schema::Provider;
    use serde_json::{Map, Value};

    fn rows(input: &str) -> Vec<Map<String, Value>> {
        normalize_bytes("t", input.as_bytes(), NAME, &ParseOptions::default(), None)
    }

    fn one(input: &str) -> Map<String, Value> {
        let mut r = rows(input);
        assert_eq!(r.len(), 1, "{r:?}");
        r.remove(0)
    }

    #[test]
    fn example_maps_every_column() {
        let r = one(FORMAT.example);
        assert_eq!(r["time"], "2019-10-18T09:45:48.072989Z");
        assert_eq!(r["user"], "user@example.com");
        assert_eq!(r["user_type"], "human");
        assert_eq!(r["via_idp"], Value::Bool(true));
        assert_eq!(r["outcome"], "success");
        assert_eq!(r["mfa"], Value::Bool(false));
        assert_eq!(r["country"], "FR");
        assert_eq!(r["conditional_access"], "not_applied");
        assert_eq!(r["session_id"], "8a4de8b5-095c-47d0-a96f-a75130c61d53");
        assert_eq!(r["event"], "SignInLogs");
    }

    #[test]
    fn outcome_from_status_or_result_type() {
        let r = one(
            r#"{"time":"2025-01-15 08:15:23.456","category":"SignInLogs","resultType":"Failure","properties":{"status":{"errorCode":50053,"failureReason":"Account is locked."}}}"#,
        );
        assert_eq!(r["outcome"], "failure");
        assert_eq!(r["failure_reason"], "50053: Account is locked.");
        let r = one(
            r#"{"time":"2023-07-26 23:00:20.889","category":"ServicePrincipalSignInLogs","resulttype":7000215,"properties":{"servicePrincipalName":"sp","servicePrincipalId":"id-1"}}"#,
        );
        assert_eq!(
            (r["outcome"].as_str(), r["failure_reason"].as_str()),
            (Some("failure"), Some("7000215"))
        );
        assert_eq!((r["user"].as_str(), r["user_id"].as_str()), (Some("sp"), Some("id-1")));
        assert_eq!(r["user_type"], "service");
        assert_eq!(r["mfa"], Value::Null, "MFA does not apply to service principals");
        let r = one(
            r#"{"time":"2025-01-15 11:20:15.789","category":"SignInLogs","resultType":"Success"}"#,
        );
        assert_eq!(r["outcome"], "success");
        let r = one(
            r#"{"time":"2025-01-15 11:20:15.789","category":"SignInLogs","resultType":"Interrupted","resultDescription":"x"}"#,
        );
        assert_eq!((r["outcome"].as_str(), r["failure_reason"].as_str()), (None, None));
    }

    #[test]
    fn mfa_evidence_in_order() {
        let claim = one(
            r#"{"time":"2022-03-17T09:44:46Z","category":"NonInteractiveUserSignInLogs","properties":{"authenticationRequirement":"multiFactorAuthentication","status":{"errorCode":0},"authenticationDetails":[{"authenticationMethod":"Previously satisfied","succeeded":true}]}}"#,
        );
        assert_eq!(
            (claim["mfa"].as_bool(), claim["mfa_method"].as_str()),
            (Some(true), Some("claim_in_token"))
        );
        let push = one(
            r#"{"time":"2022-03-17T09:44:46Z","category":"SignInLogs","properties":{"authenticationRequirement":"multiFactorAuthentication","status":{"errorCode":0},"authenticationDetails":[{"authenticationMethod":"Password","succeeded":true,"authenticationStepRequirement":"Primary authentication"},{"AuthenticationMethod":"Mobile app notification","Succeeded":true}]}}"#,
        );
        assert_eq!(
            (push["mfa"].as_bool(), push["mfa_method"].as_str()),
            (Some(true), Some("push"))
        );
        let failed = one(
            r#"{"time":"2022-03-17T09:44:46Z","category":"SignInLogs","properties":{"authenticationRequirement":"multiFactorAuthentication","status":{"errorCode":500121},"authenticationDetails":[{"authenticationMethod":"Text message","succeeded":false}]}}"#,
        );
        assert_eq!((failed["mfa"].as_bool(), failed["mfa_method"].as_str()), (Some(false), None));
        let custom = one(
            r#"{"time":"2022-03-17T09:44:46Z","category":"SignInLogs","properties":{"status":{"errorCode":0},"authenticationDetails":[{"authenticationMethod":"Shiny New Factor","succeeded":true,"authenticationStepRequirement":"Multi-factor authentication"}]}}"#,
        );
        assert_eq!(custom["mfa_method"], "shiny_new_factor");
        let legacy = one(
            r#"{"time":"2022-03-17T09:44:46Z","category":"SignInLogs","properties":{"status":{"errorCode":0},"mfaDetail":{"authMethod":"PhoneAppOTP"}}}"#,
        );
        assert_eq!(
            (legacy["mfa"].as_bool(), legacy["mfa_method"].as_str()),
            (Some(true), Some("totp"))
        );
    }

    #[test]
    fn device_risk_and_envelope() {
        let input = r#"{"records":[
            {"time":"2022-03-17T09:44:46Z","category":"SignInLogs","properties":{"deviceDetail":{"deviceId":"","isCompliant":true},"riskLevelAggregated":"High","conditionalAccessStatus":"failure","ipAddress":"2001:DB8:0:0::1"}},
            {"time":"2022-03-17T09:44:46Z","category":"AuditLogs","properties":{}},
            {"category":"SignInLogs"},
            {"time":"yesterday","category":"SignInLogs"},
            {"time":"2022-03-17T09:44:46Z","category":"SignInLogs","callerIpAddress":"not an ip"},
            {"time":"2022-03-17T09:44:46Z","category":"SignInLogs","properties":{"location":"FR"}}]}"#;
        let r = rows(input);
        let tables: Vec<&str> = r.iter().filter_map(|r| r["table"].as_str()).collect();
        assert_eq!(tables, ["signins", "quarantine", "quarantine", "quarantine", "quarantine"]);
        let s = &r[0];
        assert_eq!(s["device_id"], Value::Null);
        assert_eq!(s["device_compliant"], Value::Bool(true));
        assert_eq!(s["device_managed"], Value::Null);
        assert_eq!(s["risk_level"], "high");
        assert_eq!(s["conditional_access"], "failure");
        assert_eq!(s["src_ip"], "2001:db8::1");
        let reasons: Vec<&str> = r[1..].iter().filter_map(|r| r["reason"].as_str()).collect();
        assert_eq!(reasons, ["missing_field", "bad_time", "bad_field", "bad_json"]);
    }

    #[test]
    fn time_falls_back_to_created_date_time() {
        let r = one(
            r#"{"category":"SignInLogs","properties":{"createdDateTime":"2019-10-18T04:45:48.0729893-05:00"}}"#,
        );
        assert_eq!(r["time"], "2019-10-18T09:45:48.072989Z");
    }

    #[test]
    fn sniff_claims_signins_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= SNIFF_THRESHOLD);
        assert!(
            sniff(br#"{"time": "1/9/2007 9:41:00 AM", "category": "ADFSSignInLogs"}"#)
                >= SNIFF_THRESHOLD
        );
        assert_eq!(sniff(br#"{"category":"AuditEvent","operationName":"VaultGet"}"#), 0);
        assert_eq!(
            sniff(br#"{"eventType":"ConsoleLogin","eventSource":"signin.amazonaws.com"}"#),
            0
        );
    }

    #[test]
    fn unmapped_fields_are_counted_per_row() {
        let mut parser = new_parser(&ParseOptions::default()).expect("parser");
        let mut out = Output::new(4, 0);
        out.begin_source(crate::output::SourceInfo::lines("k", "n"), [0; 4]);
        out.set_format(NAME, Provider::Azure);
        let records = [
            r#"{"time":"2024-01-01T00:00:00Z","category":"SignInLogs","durationMs":"0","properties":{"clientAppUsed":"IMAP4","authenticationProtocol":"ropc","deviceDetail":{"trustType":"Azure AD joined"}}}"#,
            r#"{"time":"2024-01-01T00:00:00Z","category":"SignInLogs","level":"Informational","properties":{"clientAppUsed":"Browser"}}"#,
            r#"{"category":"SignInLogs","properties":{"clientAppUsed":"Browser"}}"#,
        ];
        for (i, r) in records.iter().enumerate() {
            out.begin_record();
            parser.parse(&Record { line: i as u64 + 1, bytes: r.as_bytes() }, &mut out);
            out.end_record();
        }
        parser.finish(&mut out);
        let unmapped = &out.counts().unmapped;
        let get = |f: &str| unmapped.get(&format!("{NAME}: {f}")).copied();
        // The quarantined third record counts nothing.
        assert_eq!(get("properties.clientAppUsed"), Some(2));
        assert_eq!(get("properties.authenticationProtocol"), Some(1));
        assert_eq!(get("properties.deviceDetail.trustType"), Some(1));
        assert_eq!(get("durationMs"), Some(1));
        assert_eq!(get("Level"), Some(1));
        assert_eq!(get("properties.riskState"), None);
    }

    #[test]
    fn mfa_method_names_are_slugged() {
        assert_eq!(slug("Shiny  New-Factor (v2)"), "shiny_new_factor_v2");
        assert_eq!(mfa_method("text MESSAGE"), Some("sms"));
        assert_eq!(risk_level("unknownFutureValue"), None);
    }
}
