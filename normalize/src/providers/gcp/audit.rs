//! GCP Cloud Audit Logs (`gcp-audit` → `signins`, `cert_events`): Cloud Logging `LogEntry` with a
//! `protoPayload` of type `google.cloud.audit.AuditLog`.
//!
//! Every entry is first decoded for `serviceName` / `methodName` only (a cheap pass that skips
//! the rest of the document); entries that are neither sign-ins nor certificate operations are
//! skipped with a reason (recognized, not `unknown_format`), and only the others are decoded
//! into the typed structs of their kind.
//!
//! Sign-ins (credential use and interactive access):
//! - `iamcredentials.googleapis.com` `GenerateAccessToken`, `GenerateIdToken`, `SignJwt`,
//!   `SignBlob` (short or fully qualified method names): `role` = the service account whose
//!   credentials were minted (`request.name`, else `resourceName`, after `serviceAccounts/`).
//! - `sts.googleapis.com` `ExchangeToken` (workload / workforce identity federation).
//! - `iap.googleapis.com` `AuthorizeUser` (IAP TCP forwarding and web access).
//! - `oslogin.googleapis.com` `CheckPolicy` (`role` = `request.policy`, `LOGIN` / `ADMIN_LOGIN`;
//!   `response.success` false is a failure), `StartSession`, `ContinueSession` (the OS Login
//!   2-step verification; a successful `ContinueSession` sets `mfa`).
//! - `*ssh-serialport.googleapis.com` `connect` (serial console; `user` falls back to
//!   `request.username`).
//! - `login.googleapis.com` (Workspace logins shared to Cloud Logging): the
//!   `metadata.event[]` events are read like the Reports API ([`super::login`]).
//!
//! Not sign-ins, skipped: `SetIamPolicy` and every other admin or data call (service account,
//! SSO profile and workforce pool changes, SSH keys added through instance metadata), and GKE
//! entries whose `methodName` starts with `io.k8s.` (the Kubernetes formats read those).
//!
//! Sign-in columns: `user` = `authenticationInfo.principalEmail`, else `principalSubject`
//! without its `user:` / `serviceAccount:` prefix; `user_id` = `principalSubject`; `user_type`
//! = `federated` for `principal://` / `principalSet://` subjects (which also set `via_idp`),
//! `service` for `*.gserviceaccount.com` / `serviceAccount:`, else `human`; `outcome` is
//! `failure` when `status.code` is non-zero (`failure_reason` = `PERMISSION_DENIED: message`),
//! or when an `authorizationInfo[]` entry has `granted: false`, else `success` (`status` absent,
//! `{}` or `{"message":"OK"}`); `src_ip` = `requestMetadata.callerIp` (also spelled `callerIP`;
//! `gce-internal-ip` / `private` are not addresses and become NULL with a note); `user_agent` =
//! `callerSuppliedUserAgent` (`(none supplied)` → NULL); `app` = `serviceName`; `account` =
//! `resource.labels.project_id`, else the parent of `logName`; `time` = `timestamp` (RFC 3339
//! or Panther's `2024-08-29 19:30:36.339983306`).
//!
//! Certificates: Certificate Authority Service (`privateca.googleapis.com`)
//! `CertificateAuthorityService.CreateCertificate` → `issued` (`issue_failed` when the call
//! failed) and `RevokeCertificate` → `revoked` (`revoke_failed`), `service` `cas`. `cert_id` =
//! the certificate resource name (response `name`, else request `name`, else
//! `parent/certificates/certificateId`, else `resourceName`); `issuer` = the issuing CA from
//! the response, else the CA pool; `serial` (lower-case hex), `subject` (common name), `sans`,
//! `not_before`, `not_after` from the response's `certificateDescription`, else from the
//! requested `config` and `not_after` = `time` + `certificate.lifetime` (`"2592000s"`);
//! `actor` = the principal; `reason` = the revocation reason enum (`KEY_COMPROMISE`) or the
//! failure. Request fields are read in camelCase and snake_case (audit logs use both).

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::common::{
    Num, Resource, SNIFF_WINDOW, Unmapped, add_micros, log_parent, non_empty, opens_object,
    parse_duration_micros, rpc_code_name, string_value,
};
use super::login::{self, App, Decision, Item, Param};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json::{self, Rejection, de};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::{CertEventRow, SigninRow, Text};
use crate::schema::{Provider, Table};
use crate::values::canonical_ip;

/// Format name.
pub const NAME: &str = "gcp-audit";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Gcp,
    tables: &[Table::Signins, Table::CertEvents],
    framing: Framing::Json,
    description: "GCP Cloud Audit Logs: credential use and access sign-ins (IAM credentials, STS, IAP, OS Login, serial port, Workspace login) and Certificate Authority Service certificates",
    example: r#"{"protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","status":{},"authenticationInfo":{"principalEmail":"ci@proj.iam.gserviceaccount.com"},"requestMetadata":{"callerIp":"198.51.100.7","callerSuppliedUserAgent":"gcloud"},"serviceName":"iamcredentials.googleapis.com","methodName":"GenerateAccessToken","request":{"name":"projects/-/serviceAccounts/deployer@proj.iam.gserviceaccount.com"}},"resource":{"type":"service_account","labels":{"project_id":"proj"}},"timestamp":"2024-02-26T17:15:16.314854637Z","logName":"projects/proj/logs/cloudaudit.googleapis.com%2Fdata_access"}"#,
    sniff,
    new_parser,
};

/// Confidence that `record` is a Cloud Audit LogEntry: `protoPayload` with the AuditLog type or
/// a `methodName`, and not a GKE (`io.k8s.*`, service `k8s.io`) entry.
fn sniff(record: &[u8]) -> u8 {
    let head = json::head(record, SNIFF_WINDOW);
    if !opens_object(head) || !json::contains(head, b"\"protoPayload\"") {
        return 0;
    }
    let method = string_value(head, b"\"methodName\"");
    if method.is_some_and(|m| m.starts_with(b"io.k8s."))
        || string_value(head, b"\"serviceName\"") == Some(b"k8s.io")
    {
        return 0;
    }
    if json::contains(head, b"google.cloud.audit.AuditLog") || method.is_some() { 90 } else { 0 }
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(AuditParser::new(options)))
}

const U_DELEGATION: usize = 0;
const U_DELEGATION_CHAIN: usize = 1;
const U_KEY_NAME: usize = 2;
const U_RESOURCE_NAME: usize = 3;
const U_IAP_DEVICE: usize = 4;
const U_LOGIN_PARAMS: usize = 5;
const U_CERT_TEMPLATE: usize = 6;

const UNMAPPED: &[&str] = &[
    "protoPayload.authenticationInfo.serviceAccountDelegationInfo",
    "protoPayload.metadata.identityDelegationChain",
    "protoPayload.authenticationInfo.serviceAccountKeyName",
    "protoPayload.resourceName (sign-ins)",
    "protoPayload.metadata.device_state / iap_tcp_session_info",
    "protoPayload.metadata.event[].parameter (unmapped login parameters)",
    "protoPayload.request.certificate.certificateTemplate",
];

/// Parser state for one source.
#[derive(Debug)]
pub struct AuditParser {
    options: ParseOptions,
    unmapped: Unmapped,
}

impl AuditParser {
    /// A parser with `options` (JSON caps).
    pub fn new(options: &ParseOptions) -> Self {
        Self { options: options.clone(), unmapped: Unmapped::new(NAME, UNMAPPED) }
    }
}

/// Kinds of sign-in entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SigninKind {
    Credential,
    Sts,
    Iap,
    OsLoginPolicy,
    OsLoginSession { verified: bool },
    SerialPort,
    Login,
}

/// Certificate operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertOp {
    Issue,
    Revoke,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Signin(SigninKind),
    Cert(CertOp),
    Skip(&'static str),
}

const SKIP_K8S: &str = "gcp-audit: Kubernetes (GKE) audit entry, read by the kubernetes formats";
const SKIP_CAS: &str =
    "gcp-audit: Certificate Authority Service call without a certificate lifecycle event";
const SKIP_OTHER: &str = "gcp-audit: not a sign-in or certificate operation";

fn classify(service: &str, method: &str) -> Kind {
    if method.starts_with("io.k8s.") || service == "k8s.io" {
        return Kind::Skip(SKIP_K8S);
    }
    let last = method.rsplit('.').next().unwrap_or(method);
    match service {
        "iamcredentials.googleapis.com"
            if matches!(
                last,
                "GenerateAccessToken" | "GenerateIdToken" | "SignJwt" | "SignBlob"
            ) =>
        {
            Kind::Signin(SigninKind::Credential)
        }
        "sts.googleapis.com" if last == "ExchangeToken" => Kind::Signin(SigninKind::Sts),
        "iap.googleapis.com" if last == "AuthorizeUser" => Kind::Signin(SigninKind::Iap),
        "oslogin.googleapis.com" => match last {
            "CheckPolicy" => Kind::Signin(SigninKind::OsLoginPolicy),
            "StartSession" => Kind::Signin(SigninKind::OsLoginSession { verified: false }),
            "ContinueSession" => Kind::Signin(SigninKind::OsLoginSession { verified: true }),
            _ => Kind::Skip(SKIP_OTHER),
        },
        s if s.ends_with("ssh-serialport.googleapis.com") && last == "connect" => {
            Kind::Signin(SigninKind::SerialPort)
        }
        "login.googleapis.com" => Kind::Signin(SigninKind::Login),
        "privateca.googleapis.com" => match last {
            "CreateCertificate" => Kind::Cert(CertOp::Issue),
            "RevokeCertificate" => Kind::Cert(CertOp::Revoke),
            _ => Kind::Skip(SKIP_CAS),
        },
        _ => Kind::Skip(SKIP_OTHER),
    }
}

impl Parser for AuditParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let head: Head<'_> = match json::decode(record.bytes, &self.options) {
            Ok(h) => h,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        let Some(proto) = head.proto else {
            return out.quarantine(
                record,
                Reason::BadJson,
                "protoPayload: absent, not a Cloud Audit LogEntry",
            );
        };
        let service = proto.service_name.as_deref().unwrap_or_default();
        let Some(method) = proto.method_name.as_deref() else {
            return out.quarantine(record, Reason::MissingField, "protoPayload.methodName: absent");
        };
        match classify(service, method) {
            Kind::Skip(reason) => out.skip(reason),
            Kind::Signin(kind) => match serde_json::from_slice::<SigninEntry<'_>>(record.bytes) {
                Ok(entry) => self.signin(record, kind, &entry, out),
                Err(e) => out.quarantine(record, Reason::BadJson, &e.to_string()),
            },
            Kind::Cert(op) => match serde_json::from_slice::<CasEntry<'_>>(record.bytes) {
                Ok(entry) => self.cert(record, op, &entry, out),
                Err(e) => out.quarantine(record, Reason::BadJson, &e.to_string()),
            },
        }
    }

    fn finish(&mut self, out: &mut Output) {
        self.unmapped.flush(out);
    }
}

/// The first pass: only what classification needs.
#[derive(Debug, Deserialize)]
struct Head<'a> {
    #[serde(rename = "protoPayload", borrow, default)]
    proto: Option<HeadProto<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeadProto<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    service_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    method_name: Text<'a>,
}

/// `protoPayload.status` (a `google.rpc.Status`).
#[derive(Debug, Default, Deserialize)]
struct Status<'a> {
    #[serde(default)]
    code: Num,
    #[serde(borrow, default, deserialize_with = "de::text")]
    message: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthInfo<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    principal_email: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    principal_subject: Text<'a>,
    #[serde(default, deserialize_with = "de::present")]
    service_account_delegation_info: bool,
    #[serde(default, deserialize_with = "de::present")]
    service_account_key_name: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestMetadata<'a> {
    #[serde(borrow, default, alias = "callerIP", deserialize_with = "de::text")]
    caller_ip: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    caller_supplied_user_agent: Text<'a>,
}

#[derive(Debug, Deserialize)]
struct AuthzEntry<'a> {
    #[serde(default, deserialize_with = "de::boolean")]
    granted: Option<bool>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    permission: Text<'a>,
}

/// `authorizationInfo[]` folded while decoding: whether a check was not granted, and its
/// permission (no vector is built).
#[derive(Debug, Default)]
struct Denied<'a> {
    denied: bool,
    permission: Text<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Denied<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Denied<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of authorization checks")
            }

            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Denied::default();
                while let Some(check) = seq.next_element::<AuthzEntry<'a>>()? {
                    if check.granted == Some(false) && !out.denied {
                        out = Denied { denied: true, permission: check.permission };
                    }
                }
                Ok(out)
            }

            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
                Ok(Denied::default())
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

// ---------------------------------------------------------------------------------------------
// Sign-ins
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct SigninEntry<'a> {
    #[serde(rename = "protoPayload", borrow)]
    proto: SigninProto<'a>,
    #[serde(borrow, default)]
    resource: Resource<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    timestamp: Text<'a>,
    #[serde(rename = "logName", borrow, default, deserialize_with = "de::text")]
    log_name: Text<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigninProto<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    service_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    method_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    resource_name: Text<'a>,
    #[serde(borrow, default)]
    status: Option<Status<'a>>,
    #[serde(borrow, default)]
    authentication_info: Option<AuthInfo<'a>>,
    #[serde(borrow, default)]
    authorization_info: Denied<'a>,
    #[serde(borrow, default)]
    request_metadata: Option<RequestMetadata<'a>>,
    #[serde(borrow, default)]
    request: Option<SigninRequest<'a>>,
    #[serde(default)]
    response: Option<SigninResponse>,
    #[serde(borrow, default)]
    metadata: Option<SigninMetadata<'a>>,
}

#[derive(Debug, Deserialize)]
struct SigninRequest<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    username: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    policy: Text<'a>,
}

#[derive(Debug, Deserialize)]
struct SigninResponse {
    #[serde(default, deserialize_with = "de::boolean")]
    success: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct SigninMetadata<'a> {
    #[serde(borrow, default, alias = "deviceId", deserialize_with = "de::text")]
    device_id: Text<'a>,
    #[serde(default, alias = "deviceState", deserialize_with = "de::present")]
    device_state: bool,
    #[serde(default, alias = "iapTcpSessionInfo", deserialize_with = "de::present")]
    iap_tcp_session_info: bool,
    #[serde(rename = "identityDelegationChain", default, deserialize_with = "de::present")]
    identity_delegation_chain: bool,
    #[serde(borrow, default)]
    event: Vec<LoginEvent<'a>>,
}

/// An event of a `login.googleapis.com` entry (`ActivityProto`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoginEvent<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    event_name: Text<'a>,
    #[serde(borrow, default, alias = "parameters")]
    parameter: Vec<Param<'a>>,
}

fn borrowed<'a>(t: &'a Text<'a>) -> Text<'a> {
    non_empty(t.as_deref().map(Cow::Borrowed))
}

/// `user` and `user_type` of an audit principal.
fn principal<'a>(auth: Option<&'a AuthInfo<'a>>) -> (Text<'a>, Option<&'static str>) {
    let Some(auth) = auth else { return (None, None) };
    let email = borrowed(&auth.principal_email);
    let subject = auth.principal_subject.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let user_type = match (email.as_deref(), subject) {
        (_, Some(s)) if s.starts_with("principal://") || s.starts_with("principalSet://") => {
            Some("federated")
        }
        (Some(e), _) if e.ends_with(".gserviceaccount.com") => Some("service"),
        (_, Some(s)) if s.starts_with("serviceAccount:") => Some("service"),
        (Some(e), _) if e.contains('@') => Some("human"),
        (_, Some(s)) if s.starts_with("user:") => Some("human"),
        _ => None,
    };
    let user = email.or_else(|| {
        subject.map(|s| {
            let s =
                s.strip_prefix("user:").or_else(|| s.strip_prefix("serviceAccount:")).unwrap_or(s);
            Cow::Borrowed(s)
        })
    });
    (user, user_type)
}

/// `outcome` and `failure_reason` from `status` and `authorizationInfo`.
fn outcome<'a>(
    status: Option<&'a Status<'a>>,
    denied: &'a Denied<'a>,
) -> Result<(bool, Text<'a>), Rejection> {
    if let Some(status) = status {
        match status.code {
            Num::Absent | Num::Int(0) => {}
            Num::Int(code) => {
                let name =
                    rpc_code_name(code).map_or_else(|| format!("code {code}"), str::to_owned);
                let reason =
                    match status.message.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
                        Some(m) => format!("{name}: {m}"),
                        None => name,
                    };
                return Ok((false, Some(Cow::Owned(reason))));
            }
            Num::Invalid => {
                return Err((
                    Reason::BadField,
                    "protoPayload.status.code: not an integer".to_owned(),
                ));
            }
        }
    }
    if denied.denied {
        let reason = match denied.permission.as_deref() {
            Some(p) => format!("PERMISSION_DENIED: {p} not granted"),
            None => "PERMISSION_DENIED: authorization not granted".to_owned(),
        };
        return Ok((false, Some(Cow::Owned(reason))));
    }
    Ok((true, None))
}

fn event_time(timestamp: &Text<'_>) -> Result<i64, Rejection> {
    match timestamp.as_deref() {
        None => Err((Reason::MissingField, "timestamp: absent".to_owned())),
        Some(t) => json::parse_time(t)
            .ok_or_else(|| (Reason::BadTime, format!("timestamp: {t:?} is not a time in range"))),
    }
}

/// The login event name of a `login.googleapis.com` method, for entries without metadata
/// events, and whether it is a SAML login.
fn login_event_of(method: &str) -> (App, Option<&'static str>) {
    let last = method.rsplit('.').next().unwrap_or(method);
    match last {
        "loginSuccess" => (App::Login, Some("login_success")),
        "loginFailure" => (App::Login, Some("login_failure")),
        "loginChallenge" => (App::Login, Some("login_challenge")),
        "loginVerification" => (App::Login, Some("login_verification")),
        "logout" => (App::Login, Some("logout")),
        "SamlLoginSucceeded" => (App::Saml, Some("login_success")),
        "SamlLoginFailed" => (App::Saml, Some("login_failure")),
        _ => (if last.contains("Saml") { App::Saml } else { App::Login }, None),
    }
}

/// Whether a `login.googleapis.com` entry has a sign-in row without its own `login_timestamp`.
fn login_rows_need_entry_time(method: &str, metadata: Option<&SigninMetadata<'_>>) -> bool {
    let (app, fallback) = login_event_of(method);
    let events = metadata.map(|m| m.event.as_slice()).unwrap_or_default();
    if events.is_empty() {
        return fallback.is_some_and(|name| login::decide(app, name) == Decision::Signin);
    }
    events.iter().any(|ev| {
        let name = ev.event_name.as_deref().map(str::trim).or(fallback).unwrap_or_default();
        login::decide(app, name) == Decision::Signin && login::login_time(&ev.parameter).is_none()
    })
}

impl AuditParser {
    fn signin(
        &mut self,
        record: &Record<'_>,
        kind: SigninKind,
        entry: &SigninEntry<'_>,
        out: &mut Output,
    ) {
        let p = &entry.proto;
        let method = p.method_name.as_deref().unwrap_or_default();
        let entry_time = event_time(&entry.timestamp);
        // Workspace login rows take their own `login_timestamp` when present: check up front
        // that every sign-in row of the record has a time, so a record ends in one place.
        if let Err((reason, detail)) = &entry_time
            && kind == SigninKind::Login
            && login_rows_need_entry_time(method, p.metadata.as_ref())
        {
            return out.quarantine(record, *reason, detail);
        }
        let time = match &entry_time {
            Ok(t) => *t,
            Err((reason, detail)) if kind != SigninKind::Login => {
                return out.quarantine(record, *reason, detail);
            }
            // Never reaches a row: every login row has its own time (checked above).
            Err(_) => 0,
        };
        let (success, failure_reason) = match outcome(p.status.as_ref(), &p.authorization_info) {
            Ok(o) => o,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        let auth = p.authentication_info.as_ref();
        let (mut user, user_type) = principal(auth);
        let req = p.request.as_ref();
        if user.is_none() && kind == SigninKind::SerialPort {
            user = req.and_then(|r| borrowed(&r.username));
        }
        let mut scratch = String::new();
        let meta = p.request_metadata.as_ref();
        let src_ip = match meta
            .and_then(|m| m.caller_ip.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => None,
            Some(ip) => {
                let canonical = canonical_ip(ip, &mut scratch);
                if canonical.is_none() {
                    out.note("gcp-audit: callerIp is not an address (gce-internal-ip, private), src_ip left NULL");
                }
                canonical.map(Cow::Borrowed)
            }
        };
        let user_agent = meta
            .and_then(|m| borrowed(&m.caller_supplied_user_agent))
            .filter(|ua| ua != "(none supplied)");
        let labels = &entry.resource.labels;
        let account = borrowed(&labels.project_id)
            .or_else(|| entry.log_name.as_deref().and_then(log_parent).map(Cow::Borrowed));
        let federated = user_type == Some("federated");

        let mut row = SigninRow {
            time,
            account,
            user,
            user_id: auth.and_then(|a| borrowed(&a.principal_subject)),
            user_type: user_type.map(Cow::Borrowed),
            via_idp: federated.then_some(true),
            outcome: Some(Cow::Borrowed(if success { "success" } else { "failure" })),
            failure_reason,
            src_ip,
            user_agent,
            app: borrowed(&p.service_name),
            device_id: p.metadata.as_ref().and_then(|m| borrowed(&m.device_id)),
            event: Some(Cow::Borrowed(method)),
            ..SigninRow::default()
        };
        match kind {
            SigninKind::Credential => {
                let target = req
                    .and_then(|r| r.name.as_deref())
                    .or(p.resource_name.as_deref())
                    .and_then(|n| n.rsplit_once("serviceAccounts/"))
                    .map(|(_, sa)| sa)
                    .filter(|sa| !sa.is_empty());
                row.role = target.map(Cow::Borrowed);
            }
            SigninKind::OsLoginPolicy => {
                row.role = req.and_then(|r| borrowed(&r.policy));
                if success && p.response.as_ref().and_then(|r| r.success) == Some(false) {
                    row.outcome = Some(Cow::Borrowed("failure"));
                    row.failure_reason = Some(Cow::Borrowed("CheckPolicy: response.success false"));
                }
            }
            SigninKind::OsLoginSession { verified } => {
                if verified && success {
                    row.mfa = Some(true);
                }
            }
            SigninKind::Sts | SigninKind::Iap | SigninKind::SerialPort | SigninKind::Login => {}
        }
        self.tally_signin(entry);

        if kind != SigninKind::Login {
            return out.signin(record, &row);
        }
        // Workspace login entries: one row per sign-in event, read like the Reports API.
        let (app, fallback) = login_event_of(method);
        let events = p.metadata.as_ref().map(|m| m.event.as_slice()).unwrap_or_default();
        if events.is_empty() {
            let Some(name) = fallback else {
                return out.skip("gcp-audit: Workspace login entry that is not a sign-in");
            };
            return match login::decide(app, name) {
                Decision::Skip(reason) => out.skip(reason),
                Decision::Signin => {
                    let mut r = row.clone();
                    login::apply(app, name, &[], &mut r);
                    if !success {
                        r.outcome = Some(Cow::Borrowed("failure"));
                        r.failure_reason = row.failure_reason.clone();
                    }
                    out.signin(record, &r)
                }
            };
        }
        for ev in events {
            let name = ev.event_name.as_deref().map(str::trim).or(fallback).unwrap_or_default();
            match login::decide(app, name) {
                Decision::Skip(reason) => out.skip(reason),
                Decision::Signin => {
                    let mut r = row.clone();
                    r.time = login::login_time(&ev.parameter).unwrap_or(time);
                    // The login outcome comes from the event, not from the audit status.
                    r.outcome = None;
                    r.failure_reason = None;
                    login::apply(app, name, &ev.parameter, &mut r);
                    r.via_idp = r.via_idp.or(row.via_idp);
                    let other = ev
                        .parameter
                        .iter()
                        .any(|q| q.name.as_deref().is_some_and(|n| !login::is_mapped(n)));
                    self.unmapped.add_if(other, U_LOGIN_PARAMS);
                    out.signin(record, &r);
                }
            }
        }
    }

    fn tally_signin(&mut self, entry: &SigninEntry<'_>) {
        let p = &entry.proto;
        let u = &mut self.unmapped;
        let auth = p.authentication_info.as_ref();
        u.add_if(auth.is_some_and(|a| a.service_account_delegation_info), U_DELEGATION);
        u.add_if(auth.is_some_and(|a| a.service_account_key_name), U_KEY_NAME);
        let meta = p.metadata.as_ref();
        u.add_if(meta.is_some_and(|m| m.identity_delegation_chain), U_DELEGATION_CHAIN);
        u.add_if(meta.is_some_and(|m| m.device_state || m.iap_tcp_session_info), U_IAP_DEVICE);
        u.add_if(p.resource_name.is_some(), U_RESOURCE_NAME);
    }
}

// ---------------------------------------------------------------------------------------------
// Certificate Authority Service
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct CasEntry<'a> {
    #[serde(rename = "protoPayload", borrow)]
    proto: CasProto<'a>,
    #[serde(borrow, default)]
    resource: Resource<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    timestamp: Text<'a>,
    #[serde(rename = "logName", borrow, default, deserialize_with = "de::text")]
    log_name: Text<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CasProto<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    method_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    resource_name: Text<'a>,
    #[serde(borrow, default)]
    status: Option<Status<'a>>,
    #[serde(borrow, default)]
    authentication_info: Option<AuthInfo<'a>>,
    #[serde(borrow, default)]
    authorization_info: Denied<'a>,
    #[serde(borrow, default)]
    request: Option<CasRequest<'a>>,
    #[serde(borrow, default)]
    response: Option<CasCert<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CasRequest<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    parent: Text<'a>,
    #[serde(borrow, default, alias = "certificate_id", deserialize_with = "de::text")]
    certificate_id: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    reason: Text<'a>,
    #[serde(borrow, default)]
    certificate: Option<CasCert<'a>>,
}

/// A `Certificate` resource, as requested or as returned.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CasCert<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    lifetime: Text<'a>,
    #[serde(
        borrow,
        default,
        alias = "issuer_certificate_authority",
        deserialize_with = "de::text"
    )]
    issuer_certificate_authority: Text<'a>,
    #[serde(borrow, default)]
    config: Option<CertConfig<'a>>,
    #[serde(borrow, default, alias = "certificate_description")]
    certificate_description: Option<CertDescription<'a>>,
    #[serde(default, alias = "certificate_template", deserialize_with = "de::present")]
    certificate_template: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CertConfig<'a> {
    #[serde(borrow, default, alias = "subject_config")]
    subject_config: Option<SubjectBlock<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CertDescription<'a> {
    #[serde(borrow, default, alias = "subject_description")]
    subject_description: Option<SubjectBlock<'a>>,
}

/// `subjectConfig` (requested) and `subjectDescription` (issued) share these fields.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubjectBlock<'a> {
    #[serde(borrow, default)]
    subject: Option<Subject<'a>>,
    #[serde(borrow, default, alias = "subject_alt_name")]
    subject_alt_name: Option<Sans<'a>>,
    #[serde(borrow, default, alias = "hex_serial_number", deserialize_with = "de::text")]
    hex_serial_number: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    lifetime: Text<'a>,
    #[serde(borrow, default, alias = "not_before_time", deserialize_with = "de::text")]
    not_before_time: Text<'a>,
    #[serde(borrow, default, alias = "not_after_time", deserialize_with = "de::text")]
    not_after_time: Text<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subject<'a> {
    #[serde(borrow, default, alias = "common_name", deserialize_with = "de::text")]
    common_name: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sans<'a> {
    #[serde(borrow, default, alias = "dns_names")]
    dns_names: Vec<Item<'a>>,
    #[serde(borrow, default)]
    uris: Vec<Item<'a>>,
    #[serde(borrow, default, alias = "email_addresses")]
    email_addresses: Vec<Item<'a>>,
    #[serde(borrow, default, alias = "ip_addresses")]
    ip_addresses: Vec<Item<'a>>,
}

impl<'a> Sans<'a> {
    fn list(&'a self) -> Option<Vec<Cow<'a, str>>> {
        let all: Vec<Cow<'a, str>> =
            [&self.dns_names, &self.uris, &self.email_addresses, &self.ip_addresses]
                .into_iter()
                .flatten()
                .filter_map(|i| borrowed(&i.0))
                .collect();
        (!all.is_empty()).then_some(all)
    }
}

/// Serial as lower-case hex without separators (`7D:3E:01` → `7d3e01`).
fn normalize_serial(s: &str) -> Option<Cow<'_, str>> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b' ') {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Some(Cow::Borrowed(s));
    }
    Some(Cow::Owned(
        s.chars().filter(char::is_ascii_hexdigit).map(|c| c.to_ascii_lowercase()).collect(),
    ))
}

/// The `projects/<p>` and `locations/<l>` segments of a resource name.
fn segment<'n>(name: &'n str, key: &str) -> Option<&'n str> {
    let mut parts = name.split('/');
    while let Some(part) = parts.next() {
        if part == key {
            return parts.next().filter(|v| !v.is_empty());
        }
    }
    None
}

impl AuditParser {
    fn cert(&mut self, record: &Record<'_>, op: CertOp, entry: &CasEntry<'_>, out: &mut Output) {
        let p = &entry.proto;
        let time = match event_time(&entry.timestamp) {
            Ok(t) => t,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        let (success, failure) = match outcome(p.status.as_ref(), &p.authorization_info) {
            Ok(o) => o,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        let req = p.request.as_ref();
        let requested = req.and_then(|r| r.certificate.as_ref());
        let issued = p.response.as_ref().filter(|_| success);
        self.unmapped.add_if(requested.is_some_and(|c| c.certificate_template), U_CERT_TEMPLATE);

        let cert_id: Text<'_> = issued
            .and_then(|c| borrowed(&c.name))
            .or_else(|| req.and_then(|r| borrowed(&r.name)))
            .or_else(|| {
                let r = req?;
                match (r.parent.as_deref(), r.certificate_id.as_deref()) {
                    (Some(parent), Some(id)) if !parent.is_empty() && !id.is_empty() => {
                        Some(Cow::Owned(format!("{parent}/certificates/{id}")))
                    }
                    _ => None,
                }
            })
            .or_else(|| borrowed(&p.resource_name));
        let pool_of = |name: &str| -> Option<String> {
            name.split_once("/certificates/").map(|(pool, _)| pool.to_owned())
        };
        let issuer: Text<'_> = issued
            .and_then(|c| borrowed(&c.issuer_certificate_authority))
            .or_else(|| req.and_then(|r| borrowed(&r.parent)))
            .or_else(|| cert_id.as_deref().and_then(pool_of).map(Cow::Owned));

        let description = issued
            .and_then(|c| c.certificate_description.as_ref())
            .and_then(|d| d.subject_description.as_ref());
        let config =
            requested.and_then(|c| c.config.as_ref()).and_then(|c| c.subject_config.as_ref());
        let subject = description
            .and_then(|d| d.subject.as_ref())
            .or_else(|| config.and_then(|c| c.subject.as_ref()))
            .and_then(|s| borrowed(&s.common_name));
        let sans = description
            .and_then(|d| d.subject_alt_name.as_ref())
            .or_else(|| config.and_then(|c| c.subject_alt_name.as_ref()))
            .and_then(Sans::list);
        let serial =
            description.and_then(|d| d.hex_serial_number.as_deref()).and_then(normalize_serial);

        let time_field =
            |field: &str, v: &Text<'_>| -> std::result::Result<Option<i64>, Rejection> {
                match v.as_deref() {
                    None => Ok(None),
                    Some(t) => json::parse_time(t).map(Some).ok_or_else(|| {
                        (Reason::BadField, format!("{field}: {t:?} is not a time in range"))
                    }),
                }
            };
        let not_before = match time_field(
            "protoPayload.response.certificateDescription.subjectDescription.notBeforeTime",
            &description.and_then(|d| d.not_before_time.clone()),
        ) {
            Ok(t) => t,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        let described_not_after = match time_field(
            "protoPayload.response.certificateDescription.subjectDescription.notAfterTime",
            &description.and_then(|d| d.not_after_time.clone()),
        ) {
            Ok(t) => t,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        let lifetime = if op == CertOp::Issue && success {
            description
                .and_then(|d| d.lifetime.as_deref())
                .or_else(|| issued.and_then(|c| c.lifetime.as_deref()))
                .or_else(|| requested.and_then(|c| c.lifetime.as_deref()))
        } else {
            None
        };
        let not_after = match (described_not_after, lifetime) {
            (Some(t), _) => Some(t),
            (None, Some(l)) => match parse_duration_micros(l)
                .and_then(|d| add_micros(not_before.unwrap_or(time), d))
            {
                Some(t) => Some(t),
                None => {
                    let shown: String = l.chars().take(64).collect();
                    return out.quarantine(
                        record,
                        Reason::BadField,
                        &format!(
                            "protoPayload.request.certificate.lifetime: invalid value {shown:?}"
                        ),
                    );
                }
            },
            (None, None) => None,
        };

        let activity = match (op, success) {
            (CertOp::Issue, true) => "issued",
            (CertOp::Issue, false) => "issue_failed",
            (CertOp::Revoke, true) => "revoked",
            (CertOp::Revoke, false) => "revoke_failed",
        };
        let reason = failure.or_else(|| match op {
            CertOp::Revoke => req.and_then(|r| borrowed(&r.reason)),
            CertOp::Issue => None,
        });
        let labels = &entry.resource.labels;
        let name_for_segments =
            cert_id.as_deref().or(p.resource_name.as_deref()).unwrap_or_default();
        let account = borrowed(&labels.project_id)
            .or_else(|| segment(name_for_segments, "projects").map(|s| Cow::Owned(s.to_owned())))
            .or_else(|| entry.log_name.as_deref().and_then(log_parent).map(Cow::Borrowed));
        let region = borrowed(&labels.location)
            .or_else(|| segment(name_for_segments, "locations").map(|s| Cow::Owned(s.to_owned())));
        let (actor, _) = principal(p.authentication_info.as_ref());

        let row = CertEventRow {
            time,
            service: Some(Cow::Borrowed("cas")),
            account,
            region,
            activity: Some(Cow::Borrowed(activity)),
            cert_id: cert_id.clone(),
            serial,
            subject,
            sans,
            issuer,
            not_before,
            not_after,
            actor,
            reason,
            event: borrowed(&p.method_name),
            ..CertEventRow::default()
        };
        out.cert_event(record, &row);
    }
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
    fn credential_use_maps_principal_target_and_outcome() {
        let r = &rows(FORMAT.example)[0];
        assert_eq!(r["table"], "signins");
        assert_eq!(r["user"], "ci@proj.iam.gserviceaccount.com");
        assert_eq!(r["user_type"], "service");
        assert_eq!(r["role"], "deployer@proj.iam.gserviceaccount.com");
        assert_eq!(r["outcome"], "success");
        assert_eq!(r["src_ip"], "198.51.100.7");
        assert_eq!(r["app"], "iamcredentials.googleapis.com");
        assert_eq!(r["account"], "proj");

        let denied = FORMAT.example.replace(
            r#""status":{}"#,
            r#""status":{"code":7,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied"}"#,
        );
        let r = &rows(&denied)[0];
        assert_eq!(r["outcome"], "failure");
        assert_eq!(
            r["failure_reason"],
            "PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied"
        );
    }

    #[test]
    fn federated_subjects_and_internal_caller_ips() {
        let line = r#"{"protoPayload":{"authenticationInfo":{"principalSubject":"principal://iam.googleapis.com/locations/global/workforcePools/p/subject/ana"},"requestMetadata":{"callerIP":"gce-internal-ip"},"serviceName":"sts.googleapis.com","methodName":"google.identity.sts.v1.SecurityTokenService.ExchangeToken"},"timestamp":"2024-08-29 19:30:36.339983306"}"#;
        let r = &rows(line)[0];
        assert_eq!(r["user_type"], "federated");
        assert_eq!(r["via_idp"], true);
        assert_eq!(r["src_ip"], Value::Null);
        assert_eq!(r["time"], "2024-08-29T19:30:36.339983Z");
    }

    #[test]
    fn other_entries_are_skipped_and_k8s_left_alone() {
        for (service, method) in [
            ("iam.googleapis.com", "SetIamPolicy"),
            ("k8s.io", "io.k8s.certificates.v1.certificatesigningrequests.create"),
            (
                "privateca.googleapis.com",
                "google.cloud.security.privateca.v1.CertificateAuthorityService.GetCaPool",
            ),
        ] {
            let line = format!(
                r#"{{"protoPayload":{{"serviceName":"{service}","methodName":"{method}"}}}}"#
            );
            assert!(rows(&line).is_empty(), "{method} is skipped, not a row");
            assert!(matches!(classify(service, method), Kind::Skip(_)));
        }
        assert_eq!(
            sniff(br#"{"protoPayload":{"methodName":"io.k8s.certificates.v1.certificatesigningrequests.create","serviceName":"k8s.io"}}"#),
            0
        );
        assert!(sniff(FORMAT.example.as_bytes()) >= 90);
    }

    #[test]
    fn skip_reasons_and_unmapped_delegation_are_counted() {
        use crate::output::SourceInfo;
        let mut parser = AuditParser::new(&ParseOptions::default());
        let mut out = Output::new(8, 0);
        out.begin_source(SourceInfo::lines("k", "t"), [0; 4]);
        out.set_format(NAME, Provider::Gcp);
        let delegated = FORMAT.example.replace(
            r#""principalEmail":"ci@proj.iam.gserviceaccount.com""#,
            r#""principalEmail":"ci@proj.iam.gserviceaccount.com","serviceAccountDelegationInfo":[{"firstPartyPrincipal":{"principalEmail":"ana@example.com"}}]"#,
        );
        let admin = r#"{"protoPayload":{"serviceName":"iam.googleapis.com","methodName":"google.iam.admin.v1.CreateServiceAccount"},"timestamp":"2024-01-01T00:00:00Z"}"#;
        for (i, line) in [delegated.as_str(), admin].iter().enumerate() {
            out.begin_record();
            parser.parse(&Record { line: i as u64 + 1, bytes: line.as_bytes() }, &mut out);
            out.end_record();
        }
        parser.finish(&mut out);
        let c = out.counts();
        assert_eq!(c.rows_in(Table::Signins), 1);
        assert_eq!(c.skipped.get(SKIP_OTHER), Some(&1));
        assert_eq!(
            c.unmapped
                .get("gcp-audit: protoPayload.authenticationInfo.serviceAccountDelegationInfo"),
            Some(&1)
        );
    }

    #[test]
    fn cas_issue_computes_not_after_from_lifetime() {
        let line = r#"{"protoPayload":{"authenticationInfo":{"principalEmail":"pki-bot@proj.iam.gserviceaccount.com"},"serviceName":"privateca.googleapis.com","methodName":"google.cloud.security.privateca.v1.CertificateAuthorityService.CreateCertificate","request":{"parent":"projects/proj/locations/europe-west1/caPools/mesh","certificateId":"svc-a-1","certificate":{"lifetime":"2592000s","config":{"subjectConfig":{"subject":{"commonName":"svc-a"},"subjectAltName":{"dnsNames":["svc-a.internal"],"uris":["spiffe://proj/ns/a/sa/svc-a"]}}}}}},"timestamp":"2025-03-01T10:00:00Z"}"#;
        let r = &rows(line)[0];
        assert_eq!(r["table"], "cert_events");
        assert_eq!(r["activity"], "issued");
        assert_eq!(
            r["cert_id"],
            "projects/proj/locations/europe-west1/caPools/mesh/certificates/svc-a-1"
        );
        assert_eq!(r["issuer"], "projects/proj/locations/europe-west1/caPools/mesh");
        assert_eq!(r["not_after"], "2025-03-31T10:00:00Z");
        assert_eq!(r["account"], "proj");
        assert_eq!(r["region"], "europe-west1");
        assert_eq!(r["sans"], serde_json::json!(["svc-a.internal", "spiffe://proj/ns/a/sa/svc-a"]));
        assert_eq!(r["subject"], "svc-a");
        assert_eq!(normalize_serial("7D:3E:01").as_deref(), Some("7d3e01"));
        assert_eq!(normalize_serial("zz"), None);
    }
}
