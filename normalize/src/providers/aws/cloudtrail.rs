//! AWS CloudTrail, `aws-cloudtrail`: console sign-ins, IAM Identity Center and STS federation
//! → `signins`; ACM and Private CA certificate lifecycle calls → `cert_events`; every other
//! event is skipped (`aws-cloudtrail: not a sign-in or certificate event`).
//!
//! Shapes: the S3 log file `{"Records":[…]}` (each element decoded on its own: a bad element is
//! quarantined alone, the others kept), a bare JSON array of events, one event per record
//! (NDJSON, CloudWatch Logs messages), and EventBridge's `"… via CloudTrail"` envelopes whose
//! `detail` is the event (other EventBridge events go to [`super::eventbridge`]). Documents
//! written back to back without a separator (`{…}{…}`, as Firehose concatenates EventBridge
//! events) are read one after the other. Events are decoded into borrowed typed structs;
//! request/response payloads this parser does not read — Java ByteBuffer dumps
//! (`"csr":{"hb":[45,45,…]}`), PEM chains, `RunInstances` item sets — are skipped by serde
//! without being materialized.
//!
//! Time: only `eventTime` (or, for an EventBridge envelope without it, the envelope `time`) is
//! the event time. `credentials.expiration` (`Mar 23, 2016, 2:39:57 AM`), `createDate` and
//! `sessionContext.attributes.creationDate` are never parsed as times. A routed event without
//! a usable time is quarantined (`missing_field` / `bad_time`).
//!
//! Sign-ins (one row per attempt; `event` keeps the event name):
//! - `signin.amazonaws.com`: `ConsoleLogin`, `CheckMfa`, `SwitchRole`, `GetSigninToken`,
//!   `ExternalIdPDirectoryLogin`, and IAM Identity Center's `CredentialChallenge`,
//!   `CredentialVerification`, `UserAuthentication`; `sso.amazonaws.com` `Authenticate`;
//!   `sts.amazonaws.com` `AssumeRoleWithSAML` / `AssumeRoleWithWebIdentity`. Plain
//!   `AssumeRole`, `GetSessionToken`, `PasswordUpdated`… are not authentication attempts and
//!   are skipped.
//! - `outcome`: the event's own result (`responseElements.ConsoleLogin|CheckMfa|SwitchRole`,
//!   Identity Center `serviceEventDetails.<eventName>`), `Success`/`Failure` in any case;
//!   trimmed events without it are failures when `errorCode`/`errorMessage` is present,
//!   successes otherwise. `failure_reason` = `errorCode: errorMessage` (either alone).
//! - `mfa`: `additionalEventData.MFAUsed` (`Yes`/`No`/`YES`, any case) or, for role
//!   sessions, `sessionContext.attributes.mfaAuthenticated` (the strings `"true"`/`"false"`);
//!   `CheckMfa` = its outcome; Identity Center `UserAuthentication` = a non-password factor in
//!   `CredentialType`. For federated sign-ins AWS's "no MFA" says nothing about the IdP's own
//!   MFA, so it becomes NULL (unknown) rather than `false`. On failed attempts `mfa` reports
//!   whether MFA was part of the attempt, as AWS does.
//! - `mfa_method`: from the `MFAIdentifier` ARN path (`u2f/…` → `u2f`, `mfa/…` → `virtual`,
//!   a non-ARN serial → `hardware`), `CheckMfa`'s `MfaType` (`U2F MFA` → `u2f`…; `Multiple MFA
//!   Devices` → NULL), or Identity Center's `CredentialType` second factor (`totp`, `webauthn`).
//! - `user_type`: `Root` → root (`user` = `root` when AWS omits the name), `IAMUser` → human,
//!   role sessions, SAML, web identity and Identity Center users → federated, AWS services →
//!   service. `via_idp` is true for SAML (`additionalEventData.SamlProviderArn`), Identity
//!   Center (`AWSReservedSSO_*` roles, `sso.amazonaws.com`, the Identity Center sign-in
//!   events) and `AssumeRoleWith*`; false for IAM users and root; NULL for other role sessions
//!   (CloudTrail does not say whether a role was reached through an IdP).
//! - `user` keeps masked names as written (`HIDDEN_DUE_TO_SECURITY_REASONS`); role sessions use
//!   the session name; `role` = the role ARN (`sessionIssuer.arn`, the STS `roleArn`, or the
//!   `assumed-role/<name>` prefix of the session ARN); `app` = `LoginTo` without its query
//!   (Identity Center puts one-time auth codes there); `session_id` = Identity Center's
//!   `AuthWorkflowID` or the STS `assumedRoleId`.
//!
//! Certificate events (`service` `acm` / `private-ca`, `actor` = `userIdentity.arn` or the
//! invoking service): `RequestCertificate` requested, `IssueCertificate` issued (with
//! `validity` {value, DAYS|MONTHS|YEARS|ABSOLUTE|END_DATE}: relative validities give `not_after`
//! = eventTime + validity, noted as derived), `RevokeCertificate` revoked (serial colon-hex →
//! lower-case hex, `revocationReason` → `reason` in lower case), `ImportCertificate`
//! imported, `ExportCertificate` exported, `DeleteCertificate` deleted, `RenewCertificate`
//! renewed, Private CA `CreateCertificateAuthority` / `DeleteCertificateAuthority` /
//! `RestoreCertificateAuthority` / `ImportCertificateAuthorityCertificate` /
//! `UpdateCertificateAuthority` → `ca_created` / `ca_deleted` / `ca_restored` /
//! `ca_certificate_imported` / `ca_updated`, `GenerateCRL` → `crl_generated`. A call that
//! failed (`errorCode`) gets the `<verb>_failed` activity (`revoke_failed`, `ca_delete_failed`…)
//! with the error in `reason`, so rules on `revoked` never see attempts. Reads, lists, tags,
//! `GetCertificate`, `ResendValidationEmail`, OCSP responses and audit reports change no
//! certificate and are skipped.
//!
//! Notable fields without a column are counted as unmapped at the end of the source:
//! `awsRegion` and the SAML provider / source identity of sign-ins, the access key used, the MFA
//! device id, `tlsDetails`, and the source IP / user agent of certificate calls. `eventType`
//! (`AwsConsoleSignIn` or `AwsConsoleSignin`) is not used for routing, so its case never
//! matters.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::common::{cow, lenient, lower_word, normalize_serial, present};
use super::eventbridge;
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json::{self, de};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::CertEventRow;
use crate::schema::{Provider, Table};
use crate::values::{MICROS_PER_DAY, checked_micros, micros_from_secs};

mod signin;

/// Format name.
pub const NAME: &str = "aws-cloudtrail";

/// Skip reason of events that belong to no table.
pub(crate) const NOT_OURS: &str = "aws-cloudtrail: not a sign-in or certificate event";
/// Skip reason of certificate API calls that change no certificate.
const CERT_READ: &str =
    "aws-cloudtrail: certificate call that changes no certificate (read, list, tag)";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Aws,
    tables: &[Table::Signins, Table::CertEvents],
    framing: Framing::Json,
    description: "AWS CloudTrail events ({\"Records\":[…]} files, single events, EventBridge \"via CloudTrail\"): console/SSO/STS sign-ins and ACM / Private CA certificate calls",
    example: r#"{"eventVersion":"1.05","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/anaya","accountId":"111122223333","userName":"anaya"},"eventTime":"2022-11-10T16:24:34Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.0","responseElements":{"ConsoleLogin":"Success"},"additionalEventData":{"MFAUsed":"Yes"},"eventType":"AwsConsoleSignIn","recipientAccountId":"111122223333"}"#,
    sniff,
    new_parser,
};

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(AwsEventsParser::new(options, &FORMAT)))
}

/// Confidence that a record is CloudTrail: its event keys, or a `Records` envelope of events.
fn sniff(record: &[u8]) -> u8 {
    if !super::common::is_json_value(record) {
        return 0;
    }
    let h = json::head(record, 4096);
    let has = |k: &[u8]| json::contains(h, k);
    if has(b"\"eventSource\"") && (has(b"\"eventName\"") || has(b"\"eventTime\"")) {
        return 95;
    }
    if has(b"\"Records\"")
        && (has(b"\"eventVersion\"") || has(b"\"eventTime\"") || has(b"\"userIdentity\""))
    {
        return 95;
    }
    if has(b"\"eventVersion\"") && has(b"\"userIdentity\"") {
        return 85;
    }
    if has(b"\"detail-type\"") && has(b" via CloudTrail\"") {
        return 90;
    }
    // An empty log file: `{"Records":[]}` (any spacing).
    let compact: Vec<u8> =
        h.iter().copied().filter(|b| !b.is_ascii_whitespace()).take(32).collect();
    if compact == b"{\"Records\":[]}" {
        return 80;
    }
    0
}

// ---------------------------------------------------------------------------------------------
// Typed, borrowed view of a record: a CloudTrail event, a Records envelope or an EventBridge
// envelope (one struct so a record is decoded once, whatever its shape).

/// A CloudTrail event, `{"Records":[…]}` file or EventBridge envelope.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Doc<'a> {
    #[serde(rename = "Records", borrow)]
    pub(crate) records: Option<Vec<&'a RawValue>>,
    // EventBridge envelope.
    #[serde(rename = "detail-type", borrow, deserialize_with = "de::text")]
    pub(crate) detail_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) detail: Option<&'a RawValue>,
    #[serde(borrow, deserialize_with = "de::text")]
    pub(crate) source: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "de::text")]
    pub(crate) time: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "de::text")]
    pub(crate) account: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "de::text")]
    pub(crate) region: Option<Cow<'a, str>>,
    /// EventBridge: ARN strings; CloudTrail: objects whose `ARN` is kept.
    #[serde(borrow, deserialize_with = "lenient::text_list")]
    pub(crate) resources: Option<Vec<Cow<'a, str>>>,
    // CloudTrail event.
    #[serde(rename = "eventTime", borrow, deserialize_with = "de::text")]
    event_time: Option<Cow<'a, str>>,
    #[serde(rename = "eventSource", borrow, deserialize_with = "de::text")]
    event_source: Option<Cow<'a, str>>,
    #[serde(rename = "eventName", borrow, deserialize_with = "de::text")]
    event_name: Option<Cow<'a, str>>,
    #[serde(rename = "awsRegion", borrow, deserialize_with = "de::text")]
    aws_region: Option<Cow<'a, str>>,
    #[serde(rename = "sourceIPAddress", borrow, deserialize_with = "de::text")]
    source_ip: Option<Cow<'a, str>>,
    #[serde(rename = "userAgent", borrow, deserialize_with = "de::text")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(rename = "errorCode", borrow, deserialize_with = "de::text")]
    error_code: Option<Cow<'a, str>>,
    #[serde(rename = "errorMessage", borrow, deserialize_with = "de::text")]
    error_message: Option<Cow<'a, str>>,
    #[serde(rename = "recipientAccountId", borrow, deserialize_with = "de::text")]
    recipient_account: Option<Cow<'a, str>>,
    #[serde(rename = "userIdentity", borrow, deserialize_with = "lenient::object")]
    user_identity: Option<UserIdentity<'a>>,
    #[serde(rename = "requestParameters", borrow, deserialize_with = "lenient::object")]
    request: Option<RequestParameters<'a>>,
    #[serde(rename = "responseElements", borrow, deserialize_with = "lenient::object")]
    response: Option<ResponseElements<'a>>,
    #[serde(rename = "additionalEventData", borrow, deserialize_with = "lenient::object")]
    additional: Option<AdditionalEventData<'a>>,
    #[serde(rename = "serviceEventDetails", borrow, deserialize_with = "lenient::object")]
    service_details: Option<ServiceEventDetails<'a>>,
    #[serde(rename = "tlsDetails", deserialize_with = "de::present")]
    tls_details: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserIdentity<'a> {
    #[serde(rename = "type", borrow, deserialize_with = "de::text")]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "principalId", borrow, deserialize_with = "de::text")]
    principal_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "de::text")]
    arn: Option<Cow<'a, str>>,
    #[serde(rename = "accountId", borrow, deserialize_with = "de::text")]
    account_id: Option<Cow<'a, str>>,
    #[serde(rename = "userName", borrow, deserialize_with = "de::text")]
    user_name: Option<Cow<'a, str>>,
    #[serde(rename = "invokedBy", borrow, deserialize_with = "de::text")]
    invoked_by: Option<Cow<'a, str>>,
    #[serde(rename = "accessKeyId", borrow, deserialize_with = "de::text")]
    access_key_id: Option<Cow<'a, str>>,
    #[serde(rename = "sessionContext", borrow, deserialize_with = "lenient::object")]
    session: Option<SessionContext<'a>>,
    #[serde(rename = "onBehalfOf", borrow, deserialize_with = "lenient::object")]
    on_behalf_of: Option<OnBehalfOf<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SessionContext<'a> {
    #[serde(deserialize_with = "lenient::object")]
    attributes: Option<SessionAttributes>,
    #[serde(rename = "sessionIssuer", borrow, deserialize_with = "lenient::object")]
    issuer: Option<SessionIssuer<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SessionAttributes {
    /// The string `"true"` / `"false"` (booleans accepted too). `creationDate` is not read.
    #[serde(rename = "mfaAuthenticated", deserialize_with = "de::boolean")]
    mfa_authenticated: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SessionIssuer<'a> {
    #[serde(borrow, deserialize_with = "de::text")]
    arn: Option<Cow<'a, str>>,
    #[serde(rename = "userName", borrow, deserialize_with = "de::text")]
    user_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OnBehalfOf<'a> {
    #[serde(rename = "userId", borrow, deserialize_with = "de::text")]
    user_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RequestParameters<'a> {
    #[serde(rename = "roleArn", borrow, deserialize_with = "de::text")]
    role_arn: Option<Cow<'a, str>>,
    #[serde(rename = "principalArn", deserialize_with = "de::present")]
    principal_arn: bool,
    #[serde(rename = "sourceIdentity", deserialize_with = "de::present")]
    source_identity: bool,
    #[serde(rename = "certificateArn", borrow, deserialize_with = "de::text")]
    certificate_arn: Option<Cow<'a, str>>,
    #[serde(rename = "certificateAuthorityArn", borrow, deserialize_with = "de::text")]
    ca_arn: Option<Cow<'a, str>>,
    #[serde(rename = "domainName", borrow, deserialize_with = "de::text")]
    domain_name: Option<Cow<'a, str>>,
    #[serde(rename = "subjectAlternativeNames", borrow, deserialize_with = "lenient::text_list")]
    sans: Option<Vec<Cow<'a, str>>>,
    #[serde(rename = "keyAlgorithm", borrow, deserialize_with = "de::text")]
    key_algorithm: Option<Cow<'a, str>>,
    #[serde(rename = "signingAlgorithm", borrow, deserialize_with = "de::text")]
    signing_algorithm: Option<Cow<'a, str>>,
    #[serde(rename = "certificateSerial", borrow, deserialize_with = "de::text")]
    serial: Option<Cow<'a, str>>,
    #[serde(rename = "revocationReason", borrow, deserialize_with = "de::text")]
    revocation_reason: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::object")]
    validity: Option<Validity<'a>>,
    #[serde(rename = "validityNotBefore", borrow, deserialize_with = "lenient::object")]
    validity_not_before: Option<Validity<'a>>,
    #[serde(
        rename = "certificateAuthorityConfiguration",
        borrow,
        deserialize_with = "lenient::object"
    )]
    ca_config: Option<CaConfig<'a>>,
    #[serde(borrow, deserialize_with = "de::text")]
    status: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Validity<'a> {
    #[serde(deserialize_with = "de::int")]
    value: Option<i64>,
    #[serde(rename = "type", borrow, deserialize_with = "de::text")]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CaConfig<'a> {
    /// Current API name (`RSA_2048`, `EC_prime256v1`); `keyType` in older events.
    #[serde(rename = "keyAlgorithm", borrow, deserialize_with = "de::text")]
    key_algorithm: Option<Cow<'a, str>>,
    #[serde(rename = "keyType", borrow, deserialize_with = "de::text")]
    key_type: Option<Cow<'a, str>>,
    #[serde(rename = "signingAlgorithm", borrow, deserialize_with = "de::text")]
    signing_algorithm: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::object")]
    subject: Option<CaSubject<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CaSubject<'a> {
    #[serde(rename = "commonName", borrow, deserialize_with = "de::text")]
    common_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResponseElements<'a> {
    #[serde(rename = "ConsoleLogin", borrow, deserialize_with = "de::text")]
    console_login: Option<Cow<'a, str>>,
    #[serde(rename = "CheckMfa", borrow, deserialize_with = "de::text")]
    check_mfa: Option<Cow<'a, str>>,
    #[serde(rename = "SwitchRole", borrow, deserialize_with = "de::text")]
    switch_role: Option<Cow<'a, str>>,
    #[serde(rename = "certificateArn", borrow, deserialize_with = "de::text")]
    certificate_arn: Option<Cow<'a, str>>,
    #[serde(rename = "certificateAuthorityArn", borrow, deserialize_with = "de::text")]
    ca_arn: Option<Cow<'a, str>>,
    #[serde(rename = "assumedRoleUser", borrow, deserialize_with = "lenient::object")]
    assumed_role_user: Option<AssumedRoleUser<'a>>,
    /// SAML: the asserted subject.
    #[serde(borrow, deserialize_with = "de::text")]
    subject: Option<Cow<'a, str>>,
    /// Web identity: the token's subject.
    #[serde(rename = "subjectFromWebIdentityToken", borrow, deserialize_with = "de::text")]
    web_identity_subject: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AssumedRoleUser<'a> {
    #[serde(rename = "assumedRoleId", borrow, deserialize_with = "de::text")]
    assumed_role_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AdditionalEventData<'a> {
    /// `"Yes"` / `"No"` / `"YES"`.
    #[serde(rename = "MFAUsed", deserialize_with = "de::boolean")]
    mfa_used: Option<bool>,
    #[serde(rename = "MFAIdentifier", borrow, deserialize_with = "de::text")]
    mfa_identifier: Option<Cow<'a, str>>,
    #[serde(rename = "MfaType", borrow, deserialize_with = "de::text")]
    mfa_type: Option<Cow<'a, str>>,
    #[serde(rename = "LoginTo", borrow, deserialize_with = "de::text")]
    login_to: Option<Cow<'a, str>>,
    #[serde(rename = "SamlProviderArn", borrow, deserialize_with = "de::text")]
    saml_provider_arn: Option<Cow<'a, str>>,
    #[serde(rename = "CredentialType", borrow, deserialize_with = "de::text")]
    credential_type: Option<Cow<'a, str>>,
    #[serde(rename = "AuthWorkflowID", borrow, deserialize_with = "de::text")]
    auth_workflow_id: Option<Cow<'a, str>>,
    #[serde(rename = "UserName", borrow, deserialize_with = "de::text")]
    user_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ServiceEventDetails<'a> {
    #[serde(rename = "CredentialChallenge", borrow, deserialize_with = "de::text")]
    credential_challenge: Option<Cow<'a, str>>,
    #[serde(rename = "CredentialVerification", borrow, deserialize_with = "de::text")]
    credential_verification: Option<Cow<'a, str>>,
    #[serde(rename = "UserAuthentication", borrow, deserialize_with = "de::text")]
    user_authentication: Option<Cow<'a, str>>,
}

// ---------------------------------------------------------------------------------------------
// Routing.

/// What a CloudTrail event becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Signin,
    Cert(CertOp),
    Skip(&'static str),
}

/// A certificate operation: service, activity on success and on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CertOp {
    service: &'static str,
    done: &'static str,
    failed: &'static str,
}

const fn op(service: &'static str, done: &'static str, failed: &'static str) -> Route {
    Route::Cert(CertOp { service, done, failed })
}

fn route(source: &str, name: &str) -> Route {
    match (source, name) {
        (
            "signin.amazonaws.com",
            "ConsoleLogin"
            | "CheckMfa"
            | "SwitchRole"
            | "GetSigninToken"
            | "ExternalIdPDirectoryLogin"
            | "CredentialChallenge"
            | "CredentialVerification"
            | "UserAuthentication",
        )
        | ("sso.amazonaws.com", "Authenticate")
        | ("sts.amazonaws.com", "AssumeRoleWithSAML" | "AssumeRoleWithWebIdentity") => {
            Route::Signin
        }
        ("acm.amazonaws.com", name) => match name {
            "RequestCertificate" => op("acm", "requested", "request_failed"),
            "ImportCertificate" => op("acm", "imported", "import_failed"),
            "ExportCertificate" => op("acm", "exported", "export_failed"),
            "DeleteCertificate" => op("acm", "deleted", "delete_failed"),
            "RenewCertificate" => op("acm", "renewed", "renew_failed"),
            "RevokeCertificate" => op("acm", "revoked", "revoke_failed"),
            _ => Route::Skip(CERT_READ),
        },
        ("acm-pca.amazonaws.com", name) => match name {
            "IssueCertificate" => op("private-ca", "issued", "issue_failed"),
            "RevokeCertificate" => op("private-ca", "revoked", "revoke_failed"),
            "CreateCertificateAuthority" => op("private-ca", "ca_created", "ca_create_failed"),
            "DeleteCertificateAuthority" => op("private-ca", "ca_deleted", "ca_delete_failed"),
            "RestoreCertificateAuthority" => op("private-ca", "ca_restored", "ca_restore_failed"),
            "ImportCertificateAuthorityCertificate" => {
                op("private-ca", "ca_certificate_imported", "ca_certificate_import_failed")
            }
            "UpdateCertificateAuthority" => op("private-ca", "ca_updated", "ca_update_failed"),
            "GenerateCRL" => op("private-ca", "crl_generated", "crl_generation_failed"),
            _ => Route::Skip(CERT_READ),
        },
        _ => Route::Skip(NOT_OURS),
    }
}

// ---------------------------------------------------------------------------------------------
// The parser (shared with aws-eventbridge).

/// What an EventBridge envelope adds to the event it carries.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EnvelopeCtx<'e> {
    /// Envelope `time`, already parsed.
    pub(crate) time: Option<i64>,
    /// Envelope `account`.
    pub(crate) account: Option<&'e str>,
}

/// The parser of `aws-cloudtrail` and `aws-eventbridge` (they share shapes: either may meet
/// the other's events in one stream). Rows are labelled with the format that owns the event.
pub(crate) struct AwsEventsParser {
    options: ParseOptions,
    /// The format this parser was created for: label of quarantined records.
    own: &'static Format,
    /// Rows carrying each of [`UNMAPPED`], reported at the end of the source.
    unmapped: [u64; UNMAPPED.len()],
}

/// Notable CloudTrail fields that no column holds, counted on the rows that carry them.
const UNMAPPED: [&str; 9] = [
    "awsRegion (sign-ins)",
    "userIdentity.accessKeyId",
    "additionalEventData.MFAIdentifier",
    "additionalEventData.SamlProviderArn",
    "requestParameters.principalArn",
    "requestParameters.sourceIdentity",
    "tlsDetails",
    "sourceIPAddress (certificate events)",
    "userAgent (certificate events)",
];

impl AwsEventsParser {
    pub(crate) fn new(options: &ParseOptions, own: &'static Format) -> Self {
        Self { options: options.clone(), own, unmapped: [0; UNMAPPED.len()] }
    }

    /// Count the unmapped fields a row of `ev` carries.
    fn count_unmapped(&mut self, ev: &Doc<'_>, signin: bool) {
        let aed = ev.additional.as_ref();
        let req = ev.request.as_ref();
        let flags = if signin {
            [
                present(ev.aws_region.as_deref()).is_some(),
                ev.user_identity
                    .as_ref()
                    .and_then(|u| present(u.access_key_id.as_deref()))
                    .is_some(),
                aed.and_then(|a| present(a.mfa_identifier.as_deref())).is_some(),
                aed.and_then(|a| present(a.saml_provider_arn.as_deref())).is_some(),
                req.is_some_and(|r| r.principal_arn),
                req.is_some_and(|r| r.source_identity),
                ev.tls_details,
                false,
                false,
            ]
        } else {
            [
                false,
                ev.user_identity
                    .as_ref()
                    .and_then(|u| present(u.access_key_id.as_deref()))
                    .is_some(),
                false,
                false,
                false,
                false,
                ev.tls_details,
                present(ev.source_ip.as_deref()).is_some(),
                present(ev.user_agent.as_deref()).is_some(),
            ]
        };
        for (n, set) in self.unmapped.iter_mut().zip(flags) {
            *n += u64::from(set);
        }
    }

    fn quarantine(&self, record: &Record<'_>, reason: Reason, detail: &str, out: &mut Output) {
        out.set_format(self.own.name, self.own.provider);
        out.quarantine(record, reason, detail);
    }

    /// Handle a decoded top-level document.
    fn document(&mut self, record: &Record<'_>, doc: &Doc<'_>, out: &mut Output) {
        if let Some(records) = &doc.records {
            return self.elements(record, records, "Records", out);
        }
        if doc.detail_type.is_some() {
            return eventbridge::envelope(self, record, doc, out);
        }
        self.event(record, doc, EnvelopeCtx::default(), out);
    }

    /// Each element of a `Records` envelope (or top-level array) on its own.
    fn elements(&mut self, record: &Record<'_>, items: &[&RawValue], what: &str, out: &mut Output) {
        if items.is_empty() {
            return out.skip("aws-cloudtrail: empty envelope");
        }
        for (i, raw) in items.iter().enumerate() {
            let element = Record { line: record.line, bytes: raw.get().as_bytes() };
            let doc: Doc<'_> = match serde_json::from_str(raw.get()) {
                Ok(doc) => doc,
                Err(e) => {
                    self.quarantine(&element, Reason::BadJson, &format!("{what}[{i}]: {e}"), out);
                    continue;
                }
            };
            // Rows only use the record's line; quarantines keep the element's own bytes.
            if doc.records.is_some() {
                self.quarantine(
                    &element,
                    Reason::BadJson,
                    &format!("{what}[{i}]: nested Records envelope"),
                    out,
                );
            } else if doc.detail_type.is_some() {
                eventbridge::envelope(self, &element, &doc, out);
            } else {
                self.event(&element, &doc, EnvelopeCtx::default(), out);
            }
        }
    }

    /// One CloudTrail event (from any shape).
    pub(crate) fn event(
        &mut self,
        record: &Record<'_>,
        ev: &Doc<'_>,
        env: EnvelopeCtx<'_>,
        out: &mut Output,
    ) {
        let (Some(source), Some(name)) =
            (present(ev.event_source.as_deref()), present(ev.event_name.as_deref()))
        else {
            let missing = if present(ev.event_source.as_deref()).is_none() {
                "eventSource"
            } else {
                "eventName"
            };
            return self.quarantine(
                record,
                Reason::MissingField,
                &format!("{missing}: absent, the event cannot be classified"),
                out,
            );
        };
        let route = route(source, name);
        if let Route::Skip(reason) = route {
            out.set_format(NAME, Provider::Aws);
            return out.skip(reason);
        }
        let time = match present(ev.event_time.as_deref()) {
            Some(t) => match json::parse_time(t) {
                Some(t) => t,
                None => {
                    let shown: String = t.chars().take(64).collect();
                    return self.quarantine(
                        record,
                        Reason::BadTime,
                        &format!("eventTime: {shown:?} is not a time in range"),
                        out,
                    );
                }
            },
            None => match env.time {
                Some(t) => t,
                None => {
                    return self.quarantine(record, Reason::MissingField, "eventTime: absent", out);
                }
            },
        };
        out.set_format(NAME, Provider::Aws);
        match route {
            Route::Signin => {
                let mut ip = String::new();
                let row = signin::signin_row(ev, name, source, time, env, &mut ip);
                out.signin(record, &row);
                self.count_unmapped(ev, true);
            }
            Route::Cert(op) => self.cert(record, ev, name, op, time, env, out),
            Route::Skip(_) => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn cert(
        &mut self,
        record: &Record<'_>,
        ev: &Doc<'_>,
        name: &str,
        op: CertOp,
        time: i64,
        env: EnvelopeCtx<'_>,
        out: &mut Output,
    ) {
        let req = ev.request.as_ref();
        let resp = ev.response.as_ref();
        let failed = present(ev.error_code.as_deref()).is_some();
        let serial = match req.and_then(|r| present(r.serial.as_deref())) {
            None => None,
            Some(s) => match normalize_serial(s) {
                Some(hex) => Some(Cow::Owned(hex)),
                None => {
                    let shown: String = s.chars().take(64).collect();
                    return self.quarantine(
                        record,
                        Reason::BadField,
                        &format!("requestParameters.certificateSerial: {shown:?} is not hex"),
                        out,
                    );
                }
            },
        };
        let req_cert = req.and_then(|r| present(r.certificate_arn.as_deref()));
        let resp_cert = resp.and_then(|r| present(r.certificate_arn.as_deref()));
        let ca = req
            .and_then(|r| present(r.ca_arn.as_deref()))
            .or_else(|| resp.and_then(|r| present(r.ca_arn.as_deref())));
        let ca_level = op.done.starts_with("ca_");
        let cert_id = if ca_level {
            ca
        } else if op.done == "crl_generated" {
            None
        } else {
            resp_cert.or(req_cert)
        };
        let issuer = if ca_level {
            None
        } else {
            ca.or_else(|| {
                (op.done == "crl_generated")
                    .then(|| ev.resources.as_ref().and_then(|r| r.first()).map(|c| &**c))
                    .flatten()
            })
        };
        let ca_config = req.and_then(|r| r.ca_config.as_ref());
        let subject = req.and_then(|r| present(r.domain_name.as_deref())).or_else(|| {
            ca_config
                .and_then(|c| c.subject.as_ref())
                .and_then(|s| present(s.common_name.as_deref()))
        });
        let key_algorithm = req
            .and_then(|r| present(r.key_algorithm.as_deref()))
            .or_else(|| ca_config.and_then(|c| present(c.key_algorithm.as_deref())))
            .or_else(|| ca_config.and_then(|c| present(c.key_type.as_deref())))
            .or_else(|| req.and_then(|r| present(r.signing_algorithm.as_deref())))
            .or_else(|| ca_config.and_then(|c| present(c.signing_algorithm.as_deref())));
        let mut derived = false;
        let not_after = req
            .and_then(|r| r.validity.as_ref())
            .and_then(|v| validity_end(time, v))
            .map(|(t, d)| {
                derived = d;
                t
            });
        let not_before = req
            .and_then(|r| r.validity_not_before.as_ref())
            .and_then(|v| validity_end(time, v))
            .map(|(t, _)| t);
        let reason = if failed {
            error_text(ev)
        } else if let Some(r) = req.and_then(|r| r.revocation_reason.as_deref()) {
            lower_word(r)
        } else {
            req.and_then(|r| present(r.status.as_deref()))
                .map(|s| Cow::Owned(format!("status {s}")))
        };
        let ui = ev.user_identity.as_ref();
        let actor = ui
            .and_then(|u| present(u.arn.as_deref()))
            .or_else(|| ui.and_then(|u| present(u.invoked_by.as_deref())))
            .or_else(|| ui.and_then(|u| present(u.principal_id.as_deref())));
        let row = CertEventRow {
            time,
            service: Some(Cow::Borrowed(op.service)),
            account: account_of(ev, env).map(Cow::Borrowed),
            region: cow(ev.aws_region.as_deref()),
            activity: Some(Cow::Borrowed(if failed { op.failed } else { op.done })),
            cert_id: cert_id.map(Cow::Borrowed),
            serial,
            subject: subject.map(Cow::Borrowed),
            sans: req
                .and_then(|r| r.sans.as_ref())
                .filter(|s| !s.is_empty())
                .map(|s| s.iter().map(|c| Cow::Borrowed(&**c)).collect()),
            issuer: issuer.map(Cow::Borrowed),
            not_before,
            not_after,
            key_algorithm: key_algorithm.map(Cow::Borrowed),
            actor: actor.map(Cow::Borrowed),
            reason,
            event: Some(Cow::Borrowed(name)),
            ..CertEventRow::default()
        };
        if derived {
            out.note(
                "aws-cloudtrail: not_after derived from eventTime plus the requested validity",
            );
        }
        out.cert_event(record, &row);
        self.count_unmapped(ev, false);
    }
}

impl Parser for AwsEventsParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let first = record.bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            let items: Vec<&RawValue> = match json::decode(record.bytes, &self.options) {
                Ok(items) => items,
                Err((reason, detail)) => return self.quarantine(record, reason, &detail, out),
            };
            return self.elements(record, &items, "[]", out);
        }
        if let Err((reason, detail)) = json::check_caps(record.bytes, &self.options) {
            return self.quarantine(record, reason, &detail, out);
        }
        // Usually one document; Firehose-delivered EventBridge events arrive back to back
        // (`{…}{…}`) on one line, and each is handled in turn.
        let mut stream = serde_json::Deserializer::from_slice(record.bytes).into_iter::<Doc<'_>>();
        let mut seen = 0usize;
        loop {
            match stream.next() {
                None if seen == 0 => {
                    return self.quarantine(record, Reason::BadJson, "no JSON value", out);
                }
                None => return,
                Some(Ok(doc)) => self.document(record, &doc, out),
                Some(Err(e)) => {
                    let reason = if std::str::from_utf8(record.bytes).is_err() {
                        Reason::InvalidUtf8
                    } else {
                        Reason::BadJson
                    };
                    let detail = if seen == 0 {
                        e.to_string()
                    } else {
                        format!("document {}: {e}", seen + 1)
                    };
                    return self.quarantine(record, reason, &detail, out);
                }
            }
            seen += 1;
        }
    }

    fn finish(&mut self, out: &mut Output) {
        for (name, rows) in UNMAPPED.iter().zip(&mut self.unmapped) {
            out.note_unmapped(NAME, name, *rows);
            *rows = 0;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field logic.

fn account_of<'b>(ev: &'b Doc<'_>, env: EnvelopeCtx<'b>) -> Option<&'b str> {
    present(ev.recipient_account.as_deref())
        .or_else(|| ev.user_identity.as_ref().and_then(|u| present(u.account_id.as_deref())))
        .or(env.account)
}

/// `errorCode: errorMessage`, either alone, or `None`.
fn error_text<'b>(ev: &'b Doc<'_>) -> Option<Cow<'b, str>> {
    match (present(ev.error_code.as_deref()), present(ev.error_message.as_deref())) {
        (Some(c), Some(m)) => Some(Cow::Owned(format!("{c}: {m}"))),
        (Some(c), None) => Some(Cow::Borrowed(c)),
        (None, Some(m)) => Some(Cow::Borrowed(m)),
        (None, None) => None,
    }
}

/// Relative or absolute end of a Private CA validity; the flag says it was derived from the
/// event time.
fn validity_end(time: i64, v: &Validity<'_>) -> Option<(i64, bool)> {
    let value = v.value?;
    let kind = v.kind.as_deref()?.trim().to_ascii_uppercase();
    let add_months = |months: i64| -> Option<i64> {
        let months = u32::try_from(months).ok()?;
        let dt = chrono::DateTime::from_timestamp_micros(time)?;
        checked_micros(dt.checked_add_months(chrono::Months::new(months))?.timestamp_micros())
    };
    match kind.as_str() {
        "DAYS" => {
            Some((checked_micros(time.checked_add(value.checked_mul(MICROS_PER_DAY)?)?)?, true))
        }
        "MONTHS" => Some((add_months(value)?, true)),
        "YEARS" => Some((add_months(value.checked_mul(12)?)?, true)),
        "ABSOLUTE" => Some((micros_from_secs(u64::try_from(value).ok()?)?, false)),
        "END_DATE" => {
            let digits = value.to_string();
            let full = match digits.len() {
                14 => digits,
                // UTCTime YYMMDDHHMMSS: 50–99 → 19YY, 00–49 → 20YY.
                12 => {
                    let century = if digits.as_bytes()[0] >= b'5' { "19" } else { "20" };
                    format!("{century}{digits}")
                }
                _ => return None,
            };
            let dt = chrono::NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%S").ok()?;
            Some((checked_micros(dt.and_utc().timestamp_micros())?, false))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SNIFF_THRESHOLD;

    #[test]
    fn routes_sign_ins_certificates_and_the_rest() {
        assert_eq!(route("signin.amazonaws.com", "ConsoleLogin"), Route::Signin);
        assert_eq!(route("sts.amazonaws.com", "AssumeRoleWithSAML"), Route::Signin);
        assert_eq!(route("sts.amazonaws.com", "AssumeRole"), Route::Skip(NOT_OURS));
        assert_eq!(route("signin.amazonaws.com", "PasswordUpdated"), Route::Skip(NOT_OURS));
        assert_eq!(route("cloudtrail.amazonaws.com", "StopLogging"), Route::Skip(NOT_OURS));
        assert_eq!(route("acm.amazonaws.com", "GetCertificate"), Route::Skip(CERT_READ));
        assert!(matches!(
            route("acm-pca.amazonaws.com", "RevokeCertificate"),
            Route::Cert(CertOp { done: "revoked", .. })
        ));
    }

    #[test]
    fn validity_relative_absolute_and_hostile() {
        let t = 1_517_005_123_000_000; // 2018-01-26T22:18:43Z
        let v = |value: i64, kind: &'static str| Validity {
            value: Some(value),
            kind: Some(Cow::Borrowed(kind)),
        };
        assert_eq!(validity_end(t, &v(365, "DAYS")), Some((t + 365 * MICROS_PER_DAY, true)));
        let one_year = validity_end(t, &v(1, "YEARS")).expect("years");
        assert_eq!(one_year, (1_548_541_123_000_000, true));
        assert_eq!(validity_end(t, &v(12, "months")).map(|x| x.0), Some(one_year.0));
        assert_eq!(
            validity_end(t, &v(1_900_000_000, "ABSOLUTE")),
            Some((1_900_000_000_000_000, false))
        );
        assert_eq!(
            validity_end(t, &v(20_301_231_235_959, "END_DATE")).map(|x| x.0),
            Some(1_924_991_999_000_000)
        );
        assert_eq!(
            validity_end(t, &v(301_231_235_959, "END_DATE")).map(|x| x.0),
            Some(1_924_991_999_000_000)
        );
        for bad in [
            v(i64::MAX, "DAYS"),
            v(i64::MIN, "DAYS"),
            v(-5, "ABSOLUTE"),
            v(1, "WEEKS"),
            v(123, "END_DATE"),
            v(99_991_399_999_999, "END_DATE"),
            v(i64::MAX, "YEARS"),
            v(-1, "MONTHS"),
        ] {
            assert_eq!(validity_end(t, &bad), None, "{:?} {:?}", bad.value, bad.kind);
        }
        // A negative day count is arithmetic, not an error: it stays in range.
        assert_eq!(validity_end(t, &v(-1, "DAYS")).map(|x| x.0), Some(t - MICROS_PER_DAY));
    }

    #[test]
    fn unmapped_fields_are_counted_per_row_and_reported_at_the_end() {
        use crate::output::SourceInfo;
        let mut parser = AwsEventsParser::new(&ParseOptions::default(), &FORMAT);
        let mut out = Output::new(4, 0);
        out.begin_source(SourceInfo::lines("k", "ct.json"), [0; 4]);
        let records = [
            r#"{"eventTime":"2023-01-01T00:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"eu-west-1","userIdentity":{"type":"IAMUser","userName":"a","accessKeyId":""},"additionalEventData":{"MFAIdentifier":"arn:aws:iam::1:mfa/a","MFAUsed":"Yes"}}"#,
            r#"{"eventTime":"2023-01-01T00:00:00Z","eventSource":"acm.amazonaws.com","eventName":"DeleteCertificate","awsRegion":"eu-west-1","sourceIPAddress":"198.51.100.1","userIdentity":{"type":"IAMUser","accessKeyId":"AKIAEXAMPLE"}}"#,
            r#"{"eventTime":"2023-01-01T00:00:00Z","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","awsRegion":"eu-west-1"}"#,
        ];
        for (i, r) in records.iter().enumerate() {
            out.begin_record();
            parser.parse(&Record { line: i as u64 + 1, bytes: r.as_bytes() }, &mut out);
            out.end_record();
        }
        assert!(out.counts().unmapped.is_empty(), "reported at the end of the source");
        parser.finish(&mut out);
        let unmapped = &out.counts().unmapped;
        assert_eq!(unmapped.get("aws-cloudtrail: awsRegion (sign-ins)"), Some(&1));
        assert_eq!(
            unmapped.get("aws-cloudtrail: userIdentity.accessKeyId"),
            Some(&1),
            "empty keys are not counted"
        );
        assert_eq!(unmapped.get("aws-cloudtrail: additionalEventData.MFAIdentifier"), Some(&1));
        assert_eq!(unmapped.get("aws-cloudtrail: sourceIPAddress (certificate events)"), Some(&1));
        assert_eq!(out.counts().skipped.get(NOT_OURS), Some(&1));
    }

    #[test]
    fn sniff_claims_cloudtrail_shapes_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= SNIFF_THRESHOLD);
        assert!(sniff(br#"{"Records":[{"eventVersion":"1.05"}]}"#) >= SNIFF_THRESHOLD);
        assert!(
            sniff(br#"{"detail-type":"AWS API Call via CloudTrail","detail":{}}"#)
                >= SNIFF_THRESHOLD
        );
        assert!(sniff(b"{ \"Records\" : [ ] }\n") >= SNIFF_THRESHOLD, "an empty log file");
        for other in [
            &br#"{"detail-type":"ACM Certificate Expired","detail":{}}"#[..],
            br#"{"eventType":"Microsoft.KeyVault.SecretNewVersionCreated","eventTime":"2019"}"#,
            br#"{"messageType":"DATA_MESSAGE","logEvents":[]}"#,
            br#"{"protoPayload":{"methodName":"x"},"eventName":"y"}"#,
            b"2 1 eni-1 - - - - - - - 1 2 - NODATA",
        ] {
            assert_eq!(sniff(other), 0, "{}", String::from_utf8_lossy(other));
        }
    }
}
