//! Kubernetes audit events about CertificateSigningRequests (`k8s-audit`) → `cert_events`.
//!
//! Three wrappers carry the same API-server audit event (CORPUS-NOTES "Kubernetes CSR
//! creation arrives in three wrappers"):
//! - audit.k8s.io `Event` (vanilla, EKS; also the `EventList` a webhook backend posts, whose
//!   `items` are read one by one);
//! - AKS `kube-audit` / `kube-audit-admin` diagnostic records, one per line or in the blob
//!   envelope `{"records":[…]}`, whose `properties.log` is the event JSON **encoded again as a
//!   string** (decoded a second time with the same caps; an object is accepted too);
//! - GKE Cloud Audit LogEntries whose `protoPayload.methodName` is
//!   `io.k8s.certificates.<version>.certificatesigningrequests[.<subresource>].<verb>`, with the
//!   principal in `authenticationInfo.principalEmail`, the object in `request` / `response`, the
//!   outcome in `status` and the project and location in `resource.labels`.
//!
//! Envelope elements are decoded as raw JSON slices and each is normalized or quarantined on its
//! own. Events about other resources and reads (`get`, `list`, `watch`) are skipped (recognized,
//! no table), as are the intermediate stages of a request (`RequestReceived`,
//! `ResponseStarted`): only `ResponseComplete` (or `Panic`, or an event without a stage) makes a
//! row, so one request is one row.
//!
//! Activity (decided from verb, subresource and outcome; a request refused with HTTP ≥ 400 or
//! a non-zero GKE status becomes the `*_failed` form with the status as `reason`):
//! - `create` → `requested` (`request_failed`); `reason` lists the requested `usages`;
//! - `update`/`patch` of `approval` → `approved` / `denied` from the last Approved/Denied
//!   condition, `reason` = its reason and message (`approval_failed`; `approval_updated` when no
//!   condition says which). Approval is not issuance: the signer issues later;
//! - `update`/`patch` of `status` → `issued` when `status.certificate` is set, `issue_failed`
//!   when a Failed condition is, else `status_updated`;
//! - other `update`/`patch` → `updated`; `delete`/`deletecollection` → `deleted`.
//!
//! Columns: `time` = `requestReceivedTimestamp` (else `stageTimestamp`, else the AKS record's
//! `time`; GKE: the LogEntry `timestamp`) — missing → `missing_field`, unparseable → `bad_time`;
//! `service` = `kubernetes`; `cert_id` = the CSR name (`objectRef.name`, GKE: the last segment
//! of `resourceName`); `issuer` = `spec.signerName`; `actor` = `user.username` (GKE:
//! `principalEmail`); `account` = GKE project / AKS subscription; `region` = GKE location;
//! `subject` and `key_algorithm` from the PEM CSR in `spec.request` when it decodes; for issued
//! certificates `serial`, `subject`, `issuer` (the certificate's issuer DN replaces the signer
//! name), `sans`, `not_before`, `not_after` and `key_algorithm` from `status.certificate`;
//! `event` = the verb. The response object is preferred over the request object (the API server
//! fills `spec.username` and the final status).
//!
//! Counted as unmapped: `sourceIPs` / `callerIP`, `userAgent`, `user.groups`,
//! `impersonatedUser`, `spec.groups`, `spec.username`, `spec.expirationSeconds`, and the cluster
//! name (GKE `cluster_name`, AKS resource id) — a schema-change proposal (`cluster`).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::der;
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json::{self, Rejection, de};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::{CertEventRow, Text};
use crate::schema::{Provider, Table};

/// Format name.
pub const NAME: &str = "k8s-audit";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Kubernetes,
    tables: &[Table::CertEvents],
    framing: Framing::Json,
    description: "Kubernetes audit events about CertificateSigningRequests: audit.k8s.io Event (EKS/vanilla), AKS kube-audit records (properties.log JSON string), GKE Cloud Audit io.k8s.certificates methods",
    example: r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","stage":"ResponseComplete","verb":"create","user":{"username":"alice@example.com"},"objectRef":{"resource":"certificatesigningrequests","name":"alice-csr","apiGroup":"certificates.k8s.io","apiVersion":"v1"},"responseStatus":{"code":201},"requestObject":{"spec":{"signerName":"kubernetes.io/kube-apiserver-client","usages":["client auth"]}},"requestReceivedTimestamp":"2024-05-01T10:00:00.000000Z"}"#,
    sniff,
    new_parser,
};

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(AuditParser::new(options)))
}

/// Any of the shapes a record may take: an audit Event, an AKS record, a GKE LogEntry, or an
/// envelope (`records`, `items`). Only the fields used are decoded.
#[derive(Debug, Default, Deserialize)]
struct Top<'a> {
    #[serde(default, borrow, deserialize_with = "de::text")]
    verb: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    stage: Text<'a>,
    #[serde(default, borrow)]
    user: Option<User<'a>>,
    #[serde(default, rename = "impersonatedUser", deserialize_with = "de::present")]
    impersonated_user: bool,
    #[serde(default, rename = "sourceIPs", deserialize_with = "de::present")]
    source_ips: bool,
    #[serde(default, rename = "userAgent", deserialize_with = "de::present")]
    user_agent: bool,
    #[serde(default, borrow, rename = "objectRef")]
    object_ref: Option<ObjectRef<'a>>,
    #[serde(default, borrow, rename = "responseStatus")]
    response_status: Option<HttpStatus<'a>>,
    #[serde(default, borrow, rename = "requestObject")]
    request_object: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "responseObject")]
    response_object: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "requestReceivedTimestamp", deserialize_with = "de::text")]
    request_received: Text<'a>,
    #[serde(default, borrow, rename = "stageTimestamp", deserialize_with = "de::text")]
    stage_timestamp: Text<'a>,
    // AKS diagnostic record.
    #[serde(default, borrow)]
    properties: Option<AksProperties<'a>>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    time: Text<'a>,
    #[serde(default, borrow, rename = "resourceId", deserialize_with = "de::text")]
    resource_id: Text<'a>,
    // Envelopes.
    #[serde(default, borrow)]
    records: Option<Vec<&'a RawValue>>,
    #[serde(default, borrow)]
    items: Option<Vec<&'a RawValue>>,
    // GKE LogEntry.
    #[serde(default, borrow, rename = "protoPayload")]
    proto_payload: Option<ProtoPayload<'a>>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    timestamp: Text<'a>,
    #[serde(default, borrow)]
    resource: Option<MonitoredResource<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct User<'a> {
    #[serde(default, borrow, deserialize_with = "de::text")]
    username: Text<'a>,
    #[serde(default, deserialize_with = "de::present")]
    groups: bool,
}

#[derive(Debug, Default, Deserialize)]
struct ObjectRef<'a> {
    #[serde(default, borrow, deserialize_with = "de::text")]
    resource: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    subresource: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    name: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
struct HttpStatus<'a> {
    #[serde(default, deserialize_with = "de::int")]
    code: Option<i64>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    reason: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    message: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
struct AksProperties<'a> {
    #[serde(default, borrow)]
    log: Option<&'a RawValue>,
}

#[derive(Debug, Default, Deserialize)]
struct ProtoPayload<'a> {
    #[serde(default, borrow, rename = "methodName", deserialize_with = "de::text")]
    method_name: Text<'a>,
    #[serde(default, borrow, rename = "resourceName", deserialize_with = "de::text")]
    resource_name: Text<'a>,
    #[serde(default, borrow, rename = "authenticationInfo")]
    authentication_info: Option<AuthenticationInfo<'a>>,
    #[serde(default, rename = "requestMetadata", deserialize_with = "de::present")]
    request_metadata: bool,
    #[serde(default, borrow)]
    request: Option<&'a RawValue>,
    #[serde(default, borrow)]
    response: Option<&'a RawValue>,
    #[serde(default, borrow)]
    status: Option<RpcStatus<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthenticationInfo<'a> {
    #[serde(default, borrow, rename = "principalEmail", deserialize_with = "de::text")]
    principal_email: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
struct RpcStatus<'a> {
    #[serde(default, deserialize_with = "de::int")]
    code: Option<i64>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    message: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
struct MonitoredResource<'a> {
    #[serde(default, borrow)]
    labels: Option<ResourceLabels<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct ResourceLabels<'a> {
    #[serde(default, borrow, deserialize_with = "de::text")]
    project_id: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    location: Text<'a>,
    #[serde(default, deserialize_with = "de::present")]
    cluster_name: bool,
}

/// The parts of a CertificateSigningRequest object used (request or response object).
#[derive(Debug, Default, Deserialize)]
struct Csr<'a> {
    #[serde(default, borrow)]
    spec: Option<CsrSpec<'a>>,
    #[serde(default, borrow)]
    status: Option<CsrStatus<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct CsrSpec<'a> {
    #[serde(default, borrow, rename = "signerName", deserialize_with = "de::text")]
    signer_name: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    request: Text<'a>,
    #[serde(default, borrow, deserialize_with = "string_list")]
    usages: Option<Vec<Cow<'a, str>>>,
    #[serde(default, deserialize_with = "de::present")]
    username: bool,
    #[serde(default, deserialize_with = "de::present")]
    groups: bool,
    #[serde(default, rename = "expirationSeconds", deserialize_with = "de::present")]
    expiration_seconds: bool,
}

#[derive(Debug, Default, Deserialize)]
struct CsrStatus<'a> {
    #[serde(default, borrow)]
    conditions: Option<Vec<Condition<'a>>>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    certificate: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
struct Condition<'a> {
    #[serde(default, borrow, rename = "type", deserialize_with = "de::text")]
    kind: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    reason: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    message: Text<'a>,
}

/// A list of strings, or one string as a list of one; any other type `None` (so one odd field
/// does not cost the whole object).
fn string_list<'de, 'a, D>(d: D) -> Result<Option<Vec<Cow<'a, str>>>, D::Error>
where
    D: serde::Deserializer<'de>,
    'de: 'a,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Any<'x> {
        #[serde(borrow)]
        List(Vec<Cow<'x, str>>),
        #[serde(borrow)]
        One(Cow<'x, str>),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Any::deserialize(d)? {
        Any::List(v) => Some(v),
        Any::One(s) => Some(vec![s]),
        Any::Other(_) => None,
    })
}

/// One audit event in wrapper-neutral form.
#[derive(Debug, Default)]
struct View<'a> {
    verb: Option<&'a str>,
    resource: Option<&'a str>,
    subresource: Option<&'a str>,
    name: Option<&'a str>,
    stage: Option<&'a str>,
    actor: Option<&'a str>,
    /// Failure status text, when the request was refused.
    failure: Option<String>,
    objects: [Option<&'a RawValue>; 2],
    /// Candidate event times, in order of preference, with the field name.
    times: [(&'static str, Option<&'a str>); 3],
    account: Option<&'a str>,
    region: Option<&'a str>,
    /// Unmapped fields present, by index into [`UNMAPPED`].
    present: [bool; UNMAPPED.len()],
}

/// Fields that map to no column, counted per row that carries them.
const UNMAPPED: [&str; 8] = [
    "sourceIPs",
    "userAgent",
    "user.groups",
    "impersonatedUser",
    "spec.groups",
    "spec.username",
    "spec.expirationSeconds",
    "cluster",
];

/// Parser state: options (JSON caps) and unmapped-field counts.
#[derive(Debug)]
pub struct AuditParser {
    options: ParseOptions,
    unmapped: [u64; UNMAPPED.len()],
}

impl AuditParser {
    /// A parser; `options` carry the JSON caps.
    pub fn new(options: &ParseOptions) -> Self {
        Self { options: options.clone(), unmapped: [0; UNMAPPED.len()] }
    }

    /// One record or envelope element. `nested` is set for envelope elements, which may not
    /// be envelopes again.
    fn one(&mut self, record: &Record<'_>, nested: bool, out: &mut Output) {
        if record.bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return out.quarantine(record, Reason::BadJson, "an audit record is a JSON object");
        }
        let top: Top<'_> = match json::decode(record.bytes, &self.options) {
            Ok(top) => top,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        if let Some(elements) = top.records.as_ref().or(top.items.as_ref()) {
            if nested {
                return out.quarantine(
                    record,
                    Reason::BadJson,
                    "records: envelope nested in an envelope",
                );
            }
            if elements.is_empty() {
                return out.skip("k8s-audit: empty envelope");
            }
            for raw in elements {
                let element = Record { line: record.line, bytes: raw.get().as_bytes() };
                self.one(&element, true, out);
            }
            return;
        }
        if let Some(payload) = &top.proto_payload {
            return self.gke(record, &top, payload, out);
        }
        if let Some(properties) = &top.properties {
            return self.aks(record, &top, properties, out);
        }
        if top.verb.is_some() || top.object_ref.is_some() {
            let view = event_view(&top);
            return self.emit(record, view, out);
        }
        out.quarantine(
            record,
            Reason::BadJson,
            "not a Kubernetes audit event: no verb/objectRef, protoPayload, properties.log or records",
        );
    }

    fn aks(
        &mut self,
        record: &Record<'_>,
        outer: &Top<'_>,
        properties: &AksProperties<'_>,
        out: &mut Output,
    ) {
        let Some(log) = properties.log else {
            return out.quarantine(record, Reason::MissingField, "properties.log: absent");
        };
        // `properties.log` is the event encoded as a JSON string; an object is accepted too.
        let text: Cow<'_, str> = if log.get().starts_with('"') {
            match serde_json::from_str::<Cow<'_, str>>(log.get()) {
                Ok(s) => s,
                Err(e) => {
                    return out.quarantine(
                        record,
                        Reason::BadJson,
                        &format!("properties.log: {e}"),
                    );
                }
            }
        } else {
            Cow::Borrowed(log.get())
        };
        let inner: Top<'_> = match json::decode_str(&text, &self.options) {
            Ok(t) => t,
            Err((reason, detail)) => {
                return out.quarantine(record, reason, &format!("properties.log: {detail}"));
            }
        };
        if inner.verb.is_none() && inner.object_ref.is_none() {
            return out.quarantine(
                record,
                Reason::BadJson,
                "properties.log: not a Kubernetes audit event (no verb or objectRef)",
            );
        }
        let mut view = event_view(&inner);
        view.times[2] = ("time", outer.time.as_deref());
        view.account = outer.resource_id.as_deref().and_then(subscription);
        view.present[7] = outer.resource_id.is_some();
        self.emit(record, view, out);
    }

    fn gke(&mut self, record: &Record<'_>, top: &Top<'_>, p: &ProtoPayload<'_>, out: &mut Output) {
        let Some(method) = p.method_name.as_deref() else {
            return out.quarantine(record, Reason::MissingField, "protoPayload.methodName: absent");
        };
        let Some((resource, subresource, verb)) = split_method(method) else {
            return out.skip("k8s-audit: GKE audit entry that is not a Kubernetes API method");
        };
        let name = p.resource_name.as_deref().and_then(|r| csr_name(r, resource));
        let failure = p
            .status
            .as_ref()
            .filter(|s| s.code.is_some_and(|c| c != 0))
            .map(|s| status_text("status", s.code, None, s.message.as_deref()));
        let labels = top.resource.as_ref().and_then(|r| r.labels.as_ref());
        let mut present = [false; UNMAPPED.len()];
        present[0] = p.request_metadata;
        present[7] = labels.is_some_and(|l| l.cluster_name);
        let view = View {
            verb: Some(verb),
            resource: Some(resource),
            subresource,
            name,
            stage: None,
            actor: p.authentication_info.as_ref().and_then(|a| a.principal_email.as_deref()),
            failure,
            objects: [p.response, p.request],
            times: [("timestamp", top.timestamp.as_deref()), ("", None), ("", None)],
            account: labels.and_then(|l| l.project_id.as_deref()),
            region: labels.and_then(|l| l.location.as_deref()),
            present,
        };
        self.emit(record, view, out);
    }

    fn emit(&mut self, record: &Record<'_>, view: View<'_>, out: &mut Output) {
        if view.resource != Some("certificatesigningrequests") {
            return out.skip("k8s-audit: not a CertificateSigningRequest event");
        }
        if view.stage.is_some_and(|s| s != "ResponseComplete" && s != "Panic") {
            return out
                .skip("k8s-audit: intermediate request stage (only ResponseComplete is kept)");
        }
        let verb = view.verb.unwrap_or_default();
        let failed = view.failure.is_some();
        let (ok, fail) = match (verb, view.subresource) {
            ("get" | "list" | "watch", _) => {
                return out.skip("k8s-audit: read of a CertificateSigningRequest");
            }
            ("create", None) => ("requested", "request_failed"),
            ("update" | "patch", Some("approval")) => ("approval_updated", "approval_failed"),
            ("update" | "patch", Some("status")) => ("status_updated", "status_update_failed"),
            ("update" | "patch", None) => ("updated", "update_failed"),
            ("delete" | "deletecollection", _) => ("deleted", "delete_failed"),
            _ => {
                return out
                    .skip("k8s-audit: CertificateSigningRequest verb without a lifecycle meaning");
            }
        };
        let time = match event_time(&view.times) {
            Ok(t) => t,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        // The response object first: the API server fills spec.username and the final status.
        let csrs: Vec<Csr<'_>> = view
            .objects
            .iter()
            .flatten()
            .filter_map(|raw| json::decode::<Csr<'_>>(raw.get().as_bytes(), &self.options).ok())
            .collect();
        let spec =
            |f: fn(&CsrSpec<'_>) -> bool| csrs.iter().any(|c| c.spec.as_ref().is_some_and(f));
        let mut present = view.present;
        present[4] = spec(|s| s.groups);
        present[5] = spec(|s| s.username);
        present[6] = spec(|s| s.expiration_seconds);
        let signer = csrs.iter().find_map(|c| c.spec.as_ref()?.signer_name.as_deref());
        let usages = csrs.iter().find_map(|c| c.spec.as_ref()?.usages.as_ref());
        let request_pem = csrs.iter().find_map(|c| c.spec.as_ref()?.request.as_deref());
        let certificate = csrs.iter().find_map(|c| c.status.as_ref()?.certificate.as_deref());
        // The last condition of the given types, from the first object that has one.
        let last_condition = |types: &[&str]| {
            csrs.iter().find_map(|c| {
                c.status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .rev()
                    .find(|c| c.kind.as_deref().is_some_and(|k| types.contains(&k)))
            })
        };

        let mut row = CertEventRow {
            time,
            service: Some(Cow::Borrowed("kubernetes")),
            account: view.account.map(Cow::Borrowed),
            region: view.region.map(Cow::Borrowed),
            cert_id: view.name.map(Cow::Borrowed),
            issuer: signer.map(Cow::Borrowed),
            actor: view.actor.map(Cow::Borrowed),
            event: Some(Cow::Borrowed(verb)),
            ..CertEventRow::default()
        };
        let mut activity = if failed { fail } else { ok };
        if let Some(failure) = view.failure {
            row.reason = Some(Cow::Owned(failure));
        } else {
            match ok {
                "requested" => {
                    row.reason = usages
                        .filter(|u| !u.is_empty())
                        .map(|u| Cow::Owned(format!("usages: {}", u.join(", "))));
                }
                "approval_updated" => {
                    if let Some(c) = last_condition(&["Approved", "Denied"]) {
                        activity =
                            if c.kind.as_deref() == Some("Denied") { "denied" } else { "approved" };
                        row.reason = condition_text(c);
                    }
                }
                "status_updated" => {
                    // Status updates repeat the earlier Approved condition: only the certificate
                    // or a Failed condition says what this update did.
                    if certificate.is_some() {
                        activity = "issued";
                    } else if let Some(c) = last_condition(&["Failed"]) {
                        activity = "issue_failed";
                        row.reason = condition_text(c);
                    }
                }
                _ => {}
            }
        }
        row.activity = Some(Cow::Borrowed(activity));
        if let Some(info) = request_pem.and_then(der::csr_from_base64_pem) {
            row.subject = info.subject.map(Cow::Owned);
            row.key_algorithm = info.key_algorithm.map(Cow::Owned);
        }
        if activity == "issued"
            && let Some(cert) = certificate.and_then(der::certificate_from_base64_pem)
        {
            row.serial = cert.serial.map(Cow::Owned);
            row.subject = cert.subject.map(Cow::Owned).or(row.subject);
            row.issuer = cert.issuer.map(Cow::Owned).or(row.issuer);
            row.sans = cert.sans.map(|s| s.into_iter().map(Cow::Owned).collect());
            row.not_before = cert.not_before;
            row.not_after = cert.not_after;
            row.key_algorithm = cert.key_algorithm.map(Cow::Owned).or(row.key_algorithm);
        }
        out.cert_event(record, &row);
        for (count, present) in self.unmapped.iter_mut().zip(present) {
            *count += u64::from(present);
        }
    }
}

impl Parser for AuditParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        self.one(record, false, out);
    }

    fn finish(&mut self, out: &mut Output) {
        for (name, count) in UNMAPPED.iter().zip(&mut self.unmapped) {
            out.note_unmapped(NAME, name, *count);
            *count = 0;
        }
    }
}

/// The wrapper-neutral view of an audit.k8s.io Event.
fn event_view<'a>(e: &'a Top<'a>) -> View<'a> {
    let object = e.object_ref.as_ref();
    let failure = e
        .response_status
        .as_ref()
        .filter(|s| s.code.is_some_and(|c| c >= 400))
        .map(|s| status_text("HTTP", s.code, s.reason.as_deref(), s.message.as_deref()));
    let mut present = [false; UNMAPPED.len()];
    present[0] = e.source_ips;
    present[1] = e.user_agent;
    present[2] = e.user.as_ref().is_some_and(|u| u.groups);
    present[3] = e.impersonated_user;
    View {
        verb: e.verb.as_deref(),
        resource: object.and_then(|o| o.resource.as_deref()),
        subresource: object.and_then(|o| o.subresource.as_deref()),
        name: object.and_then(|o| o.name.as_deref()),
        stage: e.stage.as_deref(),
        actor: e.user.as_ref().and_then(|u| u.username.as_deref()),
        failure,
        objects: [e.response_object, e.request_object],
        times: [
            ("requestReceivedTimestamp", e.request_received.as_deref()),
            ("stageTimestamp", e.stage_timestamp.as_deref()),
            ("", None),
        ],
        account: None,
        region: None,
        present,
    }
}

/// `403 Forbidden: message` / `status 7: PERMISSION_DENIED`.
fn status_text(
    label: &str,
    code: Option<i64>,
    reason: Option<&str>,
    message: Option<&str>,
) -> String {
    let mut s = label.to_owned();
    if let Some(code) = code {
        s.push(' ');
        s.push_str(&code.to_string());
    }
    if let Some(reason) = reason {
        s.push(' ');
        s.push_str(reason);
    }
    if let Some(message) = message {
        s.push_str(": ");
        s.extend(message.chars().take(256));
    }
    s
}

fn condition_text<'a>(c: &Condition<'a>) -> Text<'a> {
    match (c.reason.as_deref(), c.message.as_deref()) {
        (Some(r), Some(m)) => Some(Cow::Owned(format!("{r}: {m}"))),
        (Some(r), None) => Some(Cow::Owned(r.to_owned())),
        (None, Some(m)) => Some(Cow::Owned(m.to_owned())),
        (None, None) => None,
    }
}

/// The first present candidate time, parsed.
fn event_time(times: &[(&'static str, Option<&str>)]) -> Result<i64, Rejection> {
    let Some((field, value)) = times.iter().find_map(|(f, v)| v.map(|v| (*f, v))) else {
        let names: Vec<&str> = times.iter().map(|(f, _)| *f).filter(|f| !f.is_empty()).collect();
        return Err((Reason::MissingField, format!("{}: absent", names.join(" / "))));
    };
    json::parse_time(value).ok_or_else(|| {
        let shown: String = value.chars().take(64).collect();
        (Reason::BadTime, format!("{field}: {shown:?} is not a time in range"))
    })
}

/// `io.k8s.certificates.v1.certificatesigningrequests.approval.update` →
/// (`certificatesigningrequests`, Some(`approval`), `update`).
fn split_method(method: &str) -> Option<(&str, Option<&str>, &str)> {
    let rest = method.strip_prefix("io.k8s.")?;
    let mut parts = rest.split('.');
    let _group = parts.next()?;
    let _version = parts.next()?;
    let resource = parts.next()?;
    let first = parts.next()?;
    match (parts.next(), parts.next()) {
        (None, _) => Some((resource, None, first)),
        (Some(verb), None) => Some((resource, Some(first), verb)),
        _ => None,
    }
}

/// The object name in a GKE resource name
/// `certificates.k8s.io/v1/certificatesigningrequests/<name>[/<subresource>]`.
fn csr_name<'a>(resource_name: &'a str, resource: &str) -> Option<&'a str> {
    let mut parts = resource_name.split('/');
    parts.by_ref().find(|p| *p == resource)?;
    parts.next().filter(|n| !n.is_empty())
}

/// The subscription id in an Azure resource id `/SUBSCRIPTIONS/<id>/RESOURCEGROUPS/…`.
fn subscription(resource_id: &str) -> Option<&str> {
    let mut parts = resource_id.split('/');
    parts.by_ref().find(|p| p.eq_ignore_ascii_case("subscriptions"))?;
    parts.next().filter(|s| !s.is_empty())
}

/// audit.k8s.io events (apiVersion, or `objectRef` with `verb`), AKS `kube-audit` records and
/// GKE entries with `io.k8s.certificates` methods.
fn sniff(record: &[u8]) -> u8 {
    let h = json::head(record, 4096);
    if h.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return 0;
    }
    if json::contains(h, b"io.k8s.certificates") && json::contains(h, b"\"protoPayload\"") {
        96
    } else if json::contains(h, b"audit.k8s.io")
        || (json::contains(h, b"kube-audit") && json::contains(h, b"\"properties\""))
    {
        95
    } else if json::contains(h, b"\"objectRef\"") && json::contains(h, b"\"verb\"") {
        90
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::SourceInfo;
    use arrow::array::{Array, AsArray};
    use arrow::record_batch::RecordBatch;

    fn run(records: &[&str]) -> (Output, Vec<(Table, RecordBatch)>) {
        let mut parser = AuditParser::new(&ParseOptions::default());
        let mut out = Output::new(16, 0);
        out.begin_source(SourceInfo::lines("k", "audit.json"), [0; 4]);
        out.set_format(NAME, Provider::Kubernetes);
        for (i, r) in records.iter().enumerate() {
            out.begin_record();
            parser.parse(&Record { line: i as u64 + 1, bytes: r.as_bytes() }, &mut out);
            out.end_record();
        }
        parser.finish(&mut out);
        let batches = out.take_batches(0);
        (out, batches)
    }

    fn s(b: &RecordBatch, c: &str, i: usize) -> Option<String> {
        let a = b.column_by_name(c).expect(c).as_string::<i32>();
        a.is_valid(i).then(|| a.value(i).to_owned())
    }

    #[test]
    fn gke_methods_split_into_resource_subresource_and_verb() {
        assert_eq!(
            split_method("io.k8s.certificates.v1.certificatesigningrequests.create"),
            Some(("certificatesigningrequests", None, "create"))
        );
        assert_eq!(
            split_method("io.k8s.certificates.v1.certificatesigningrequests.approval.update"),
            Some(("certificatesigningrequests", Some("approval"), "update"))
        );
        assert_eq!(split_method("google.iam.v1.SetIamPolicy"), None);
        assert_eq!(
            csr_name(
                "certificates.k8s.io/v1/certificatesigningrequests/x/approval",
                "certificatesigningrequests"
            ),
            Some("x")
        );
        assert_eq!(subscription("/SUBSCRIPTIONS/abc/RESOURCEGROUPS/rg"), Some("abc"));
    }

    #[test]
    fn approval_denial_and_issuance_follow_the_conditions() {
        let approve = r#"{"kind":"Event","stage":"ResponseComplete","verb":"update","user":{"username":"admin"},"objectRef":{"resource":"certificatesigningrequests","name":"c1","subresource":"approval"},"responseStatus":{"code":200},"requestObject":{"status":{"conditions":[{"type":"Approved","status":"True","reason":"KubectlApprove","message":"approved by kubectl"}]}},"requestReceivedTimestamp":"2024-05-01T10:00:00Z"}"#;
        let deny = approve.replace("Approved", "Denied").replace("KubectlApprove", "KubectlDeny");
        let forbidden = approve.replace(r#""code":200"#, r#""code":403,"reason":"Forbidden""#);
        let issue = r#"{"kind":"Event","verb":"update","user":{"username":"system:kube-controller-manager"},"objectRef":{"resource":"certificatesigningrequests","name":"c1","subresource":"status"},"responseStatus":{"code":200},"requestObject":{"status":{"certificate":"bm90IGEgY2VydA=="}},"stageTimestamp":"2024-05-01T10:00:01Z"}"#;
        let stage = approve.replace("ResponseComplete", "RequestReceived");
        let (out, batches) = run(&[approve, &deny, &forbidden, issue, &stage]);
        assert_eq!(out.counts().rows_in(Table::CertEvents), 4);
        assert_eq!(out.counts().skipped_total(), 1);
        let b = &batches[0].1;
        let acts: Vec<String> = (0..4).filter_map(|i| s(b, "activity", i)).collect();
        assert_eq!(acts, ["approved", "denied", "approval_failed", "issued"]);
        assert_eq!(s(b, "reason", 0).as_deref(), Some("KubectlApprove: approved by kubectl"));
        assert_eq!(s(b, "reason", 2).as_deref(), Some("HTTP 403 Forbidden"));
        assert_eq!(s(b, "actor", 3).as_deref(), Some("system:kube-controller-manager"));
        assert_eq!(s(b, "serial", 3), None, "an undecodable certificate leaves NULLs");
    }

    #[test]
    fn aks_envelope_elements_are_handled_one_by_one() {
        let good = r#"{"category":"kube-audit","time":"2024-05-01T10:00:00Z","resourceId":"/SUBSCRIPTIONS/sub-1/RESOURCEGROUPS/rg/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/aks1","properties":{"log":"{\"kind\":\"Event\",\"verb\":\"create\",\"user\":{\"username\":\"u\"},\"objectRef\":{\"resource\":\"certificatesigningrequests\",\"name\":\"n\"},\"responseStatus\":{\"code\":201}}"}}"#;
        let bad = r#"{"category":"kube-audit","properties":{"log":"{\"kind\":"}}"#;
        let other = r#"{"category":"kube-audit","time":"2024-05-01T10:00:00Z","properties":{"log":"{\"verb\":\"get\",\"objectRef\":{\"resource\":\"pods\"}}"}}"#;
        let envelope = format!(r#"{{"records":[{good},{bad},{other}]}}"#);
        let (out, batches) = run(&[&envelope]);
        assert_eq!(out.counts().rows_in(Table::CertEvents), 1);
        assert_eq!(out.counts().quarantined.get("bad_json"), Some(&1));
        assert_eq!(out.counts().skipped_total(), 1);
        let certs = &batches.iter().find(|(t, _)| *t == Table::CertEvents).expect("certs").1;
        assert_eq!(s(certs, "account", 0).as_deref(), Some("sub-1"));
        assert_eq!(s(certs, "activity", 0).as_deref(), Some("requested"));
        assert_eq!(s(certs, "source", 0).as_deref(), Some("audit.json:1"));
        let q = &batches.iter().find(|(t, _)| *t == Table::Quarantine).expect("q").1;
        assert!(s(q, "detail", 0).expect("detail").starts_with("properties.log"));
        assert_eq!(s(q, "source", 0).as_deref(), Some("audit.json:1#1"));
    }

    #[test]
    fn sniff_claims_audit_shapes_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= 90);
        assert!(sniff(br#"{"records":[{"category":"kube-audit","properties":{}}]}"#) >= 90);
        assert_eq!(sniff(br#"{"protoPayload":{"methodName":"SetIamPolicy"}}"#), 0);
        assert_eq!(sniff(br#"{"kind":"Event","involvedObject":{}}"#), 0);
        assert_eq!(sniff(b"[2022-07-20T09:52:24.955Z] \"GET"), 0);
    }
}
