//! Okta System Log sign-in events (`okta-systemlog` → `signins`): one event per record (NDJSON),
//! a bare JSON array of events (the System Log API), or an event hook delivery
//! `{eventType: com.okta.event_hook, cloudEventsVersion: 0.1, data: {events: [...]}}`. Arrays and
//! envelopes are unpacked without re-serializing; a bad element is quarantined alone.
//!
//! Sign-ins: `user.session.start`, `user.session.access_admin_app`, every
//! `user.authentication.*` (sso, auth_via_mfa, verify, auth_via_IDP, …) except single logout,
//! `policy.evaluate_sign_on`, and MFA attempts `user.mfa.*` other than factor lifecycle
//! (`user.mfa.factor.*`). Everything else (session end, impersonation grants, factor enrolment,
//! push sent, admin changes) is skipped with a reason.
//!
//! Quirks handled: `published` with 3 or 2 fractional digits, Panther's
//! `2024-04-02 19:17:37.621000000`, and `"redacted"` (→ `bad_time`); a missing `published` is
//! `missing_field`. `client.zone` is the string `"null"`; `version` is the string `"0"`; `target`
//! is `null` or an array; `debugContext.debugData` values are strings; `actor.id` / `alternateId`
//! / `externalSessionId` may be `unknown` (→ NULL); `outcome` may be missing (→ NULL).
//!
//! Columns and decisions:
//! - `outcome`: `SUCCESS` / `ALLOW` → success, `FAILURE` / `DENY` → failure; `CHALLENGE`,
//!   `UNKNOWN`, `SKIPPED` and a missing outcome → NULL (the attempt was not decided by this
//!   event). `failure_reason` = `outcome.reason` on failures only. A denied Okta Verify push
//!   (`user.mfa.okta_verify.deny_push`) is a failure.
//! - `via_idp` is always true: Okta is the identity provider, so every Okta sign-in goes through it.
//! - `user` = `actor.alternateId`, `user_id` = `actor.id`, `user_type` = `human` for actor type
//!   `User`, else `service`.
//! - `mfa`: true for a successful `user.authentication.auth_via_mfa`, a successful verification of
//!   a second factor, or an event whose `AuthenticatorEnrollment` targets,
//!   `debugData.factor` or `authenticationContext.credentialType` show a second factor; false
//!   when such an event failed or when the only authenticator listed is a password; NULL when the
//!   event says nothing about factors. `mfa_method` is that factor in the shared vocabulary
//!   (`push`, `totp`, `sms`, `voice`, `email`, `webauthn`, `u2f`, `otp`, `okta_verify`, or the
//!   provider's name lower-cased).
//! - `risk_level`: the level in `debugData.risk` / `logOnlySecurityData` (`LOW` → `low`, …);
//!   `threatSuspected: "true"` → `high`; `"false"` alone → `none`.
//! - `conditional_access` (`policy.evaluate_sign_on` only): ALLOW → success, DENY → failure.
//! - `src_ip` = `client.ipAddress` (not an address → NULL with a note), `user_agent` =
//!   `client.userAgent.rawUserAgent`, `country` = `client.geographicalContext.country`,
//!   `device_id` / `device_managed` = the top-level `device` (Okta Verify device context), `app`
//!   = the `AppInstance` target's `displayName`, `session_id` =
//!   `authenticationContext.externalSessionId`, `event` = `eventType`. `client.device` (a device
//!   class such as `Computer`), `securityContext`, `debugData.behaviors`, policy and app-user
//!   targets map to no column and are counted as unmapped.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json::{self, de};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::{SigninRow, Text};
use crate::schema::{Provider, Table};
use crate::values::canonical_ip;

/// Format name.
pub const NAME: &str = "okta-systemlog";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Okta,
    tables: &[Table::Signins],
    framing: Framing::Json,
    description: "Okta System Log sign-in events (NDJSON, System Log API arrays, event hook deliveries)",
    example: r#"{"uuid":"3aeede38-4f67-11ea-abd3-1f5d113f2546","published":"2020-02-14T20:18:57.718Z","eventType":"user.session.start","version":"0","displayMessage":"User login to Okta","actor":{"id":"00u1abvz4pYqdM8ms4x6","type":"User","alternateId":"ana@example.com"},"client":{"ipAddress":"198.51.100.1","zone":"null","device":"Computer","userAgent":{"rawUserAgent":"Mozilla/5.0"},"geographicalContext":{"country":"United States"}},"outcome":{"result":"SUCCESS","reason":null},"target":null,"authenticationContext":{"externalSessionId":"102bZDNFfWaQSyEZQuDgWt-uQ"},"debugContext":{"debugData":{"threatSuspected":"false"}}}"#,
    sniff,
    new_parser,
};

/// How far into a record the sniff looks.
const SNIFF_WINDOW: usize = 4096;

/// Confidence that `record` holds Okta System Log events: an event hook envelope, or an
/// `eventType` in Okta's dotted lower-case form plus at least two of Okta's distinctive keys.
fn sniff(record: &[u8]) -> u8 {
    let head = json::head(record, SNIFF_WINDOW);
    let first = head.iter().find(|b| !b.is_ascii_whitespace());
    if !matches!(first, Some(b'{' | b'[')) {
        return 0;
    }
    let Some(event_type) = string_value(head, b"\"eventType\"") else { return 0 };
    if event_type == b"com.okta.event_hook" {
        return 95;
    }
    let okta_like = event_type.first().is_some_and(u8::is_ascii_lowercase)
        && event_type.contains(&b'.')
        && event_type
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._".contains(b));
    if !okta_like {
        return 0;
    }
    let markers = [
        &b"\"alternateId\""[..],
        b"\"published\"",
        b"\"displayMessage\"",
        b"\"legacyEventType\"",
        b"\"outcome\"",
        b"\"debugContext\"",
        b"\"authenticationContext\"",
    ];
    match markers.iter().filter(|m| json::contains(head, m)).count() {
        0 => 0,
        1 => 60,
        _ => 90,
    }
}

/// The raw string value of the first `"key"` followed by a colon (sniffing only).
fn string_value<'a>(bytes: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = memchr::memmem::find(bytes, key)?;
    let rest = bytes.get(at + key.len()..)?;
    let rest = rest.get(rest.iter().take_while(|b| b.is_ascii_whitespace()).count()..)?;
    let rest = rest.strip_prefix(b":")?;
    let rest = rest.get(rest.iter().take_while(|b| b.is_ascii_whitespace()).count()..)?;
    let rest = rest.strip_prefix(b"\"")?;
    rest.get(..memchr::memchr(b'"', rest)?)
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(OktaParser::new(options)))
}

const U_CLIENT_DEVICE: usize = 0;
const U_ZONE: usize = 1;
const U_SECURITY_CONTEXT: usize = 2;
const U_BEHAVIORS: usize = 3;
const U_REASON: usize = 4;
const U_POLICY_TARGET: usize = 5;
const U_APP_USER: usize = 6;
const U_CLIENT_ID: usize = 7;

const UNMAPPED: &[&str] = &[
    "client.device (device class)",
    "client.zone",
    "securityContext (asNumber, asOrg, isp, domain, isProxy)",
    "debugContext.debugData.behaviors",
    "outcome.reason (not a failure)",
    "target PolicyEntity/PolicyRule",
    "target AppUser",
    "client.id",
];

/// Parser state for one source.
#[derive(Debug)]
pub struct OktaParser {
    options: ParseOptions,
    unmapped: Vec<u64>,
}

impl OktaParser {
    /// A parser with `options` (JSON caps).
    pub fn new(options: &ParseOptions) -> Self {
        Self { options: options.clone(), unmapped: vec![0; UNMAPPED.len()] }
    }

    fn count(&mut self, present: bool, index: usize) {
        if let (true, Some(c)) = (present, self.unmapped.get_mut(index)) {
            *c += 1;
        }
    }
}

impl Parser for OktaParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let is_array = record.bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        if is_array {
            let elements: Vec<&RawValue> = match json::decode(record.bytes, &self.options) {
                Ok(e) => e,
                Err((reason, detail)) => return out.quarantine(record, reason, &detail),
            };
            if elements.is_empty() {
                return out.skip("okta-systemlog: empty event array");
            }
            return self.elements(record, &elements, "[]", out);
        }
        let event: Event<'_> = match json::decode(record.bytes, &self.options) {
            Ok(e) => e,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        if event.event_type.as_deref().map(str::trim) != Some("com.okta.event_hook") {
            return self.event(record, &event, out);
        }
        match event.data.as_ref().and_then(|d| d.events.as_ref()) {
            None => out.quarantine(
                record,
                Reason::MissingField,
                "data.events: absent in an event hook delivery",
            ),
            Some(events) if events.is_empty() => {
                out.skip("okta-systemlog: event hook delivery without events")
            }
            Some(events) => self.elements(record, events, "data.events[]", out),
        }
    }

    fn finish(&mut self, out: &mut Output) {
        for (name, count) in UNMAPPED.iter().zip(self.unmapped.iter_mut()) {
            out.note_unmapped(NAME, name, *count);
            *count = 0;
        }
    }
}

impl OktaParser {
    /// Normalize the events of an array or envelope; each element is quarantined on its own.
    fn elements(
        &mut self,
        record: &Record<'_>,
        elements: &[&RawValue],
        path: &str,
        out: &mut Output,
    ) {
        for raw in elements {
            let element = Record { line: record.line, bytes: raw.get().as_bytes() };
            match json::decode::<Event<'_>>(element.bytes, &self.options) {
                Ok(e) if e.data.is_some() => out.quarantine(
                    &element,
                    Reason::BadJson,
                    &format!("{path}: a nested event hook delivery"),
                ),
                Ok(e) => self.event(&element, &e, out),
                Err((reason, detail)) => {
                    out.quarantine(&element, reason, &format!("{path}: {detail}"))
                }
            }
        }
    }

    /// Normalize one event.
    fn event(&mut self, record: &Record<'_>, e: &Event<'_>, out: &mut Output) {
        let Some(event_type) = e.event_type.as_deref().map(str::trim).filter(|t| !t.is_empty())
        else {
            return out.quarantine(record, Reason::MissingField, "eventType: absent");
        };
        let kind = match classify(event_type) {
            Ok(k) => k,
            Err(reason) => return out.skip(reason),
        };
        let time = match e.published.as_deref() {
            None => return out.quarantine(record, Reason::MissingField, "published: absent"),
            Some(p) => match json::parse_time(p) {
                Some(t) => t,
                None => {
                    let shown: String = p.chars().take(64).collect();
                    return out.quarantine(
                        record,
                        Reason::BadTime,
                        &format!("published: {shown:?} is not a time in range"),
                    );
                }
            },
        };

        let result = e.outcome.as_ref().and_then(|o| o.result.as_deref()).map(str::trim);
        let mut outcome = match result {
            Some(r) if r.eq_ignore_ascii_case("SUCCESS") || r.eq_ignore_ascii_case("ALLOW") => {
                Some("success")
            }
            Some(r) if r.eq_ignore_ascii_case("FAILURE") || r.eq_ignore_ascii_case("DENY") => {
                Some("failure")
            }
            _ => None,
        };
        if kind == Kind::DeniedPush {
            outcome = Some("failure");
        }
        let reason = e.outcome.as_ref().and_then(|o| known(&o.reason));
        let failure_reason = match (outcome, &reason) {
            (Some("failure"), Some(r)) => Some(r.clone()),
            (Some("failure"), None) if kind == Kind::DeniedPush => {
                Some(Cow::Borrowed("push denied by the user"))
            }
            _ => None,
        };
        self.count(reason.is_some() && failure_reason.is_none(), U_REASON);

        let targets = &e.target;
        let debug = e.debug_context.as_ref().and_then(|d| d.debug_data.as_ref());
        let auth_ctx = e.authentication_context.as_ref();
        let second_factor = targets
            .second_factor
            .clone()
            .or_else(|| debug.and_then(|d| d.factor.as_deref()).and_then(factor_method))
            .or_else(|| {
                auth_ctx.and_then(|a| a.credential_type.as_deref()).and_then(credential_factor)
            });
        let (mfa, mfa_method) = match kind {
            Kind::DeniedPush => (Some(false), second_factor.or(Some(Cow::Borrowed("push")))),
            Kind::PolicyEvaluation => (None, None),
            Kind::AuthViaMfa | Kind::MfaAttempt => (outcome.map(|o| o == "success"), second_factor),
            _ => match (&second_factor, targets.enrollments) {
                (Some(_), _) => (outcome.map(|o| o == "success"), second_factor),
                (None, true) => (Some(false), None),
                (None, false) => (None, None),
            },
        };
        let conditional_access = match (kind, result) {
            (Kind::PolicyEvaluation, Some(r)) if r.eq_ignore_ascii_case("ALLOW") => Some("success"),
            (Kind::PolicyEvaluation, Some(r)) if r.eq_ignore_ascii_case("DENY") => Some("failure"),
            _ => None,
        };

        let actor = e.actor.as_ref();
        let client = e.client.as_ref();
        let mut scratch = String::new();
        let src_ip = match client
            .and_then(|c| c.ip_address.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty() && *v != "null")
        {
            None => None,
            Some(ip) => {
                let canonical = canonical_ip(ip, &mut scratch);
                if canonical.is_none() {
                    out.note(
                        "okta-systemlog: client.ipAddress is not an IP address, src_ip left NULL",
                    );
                }
                canonical.map(Cow::Borrowed)
            }
        };
        let device = e.device.as_ref();
        let row = SigninRow {
            time,
            user: actor.and_then(|a| known(&a.alternate_id)),
            user_id: actor.and_then(|a| known(&a.id)),
            user_type: actor.and_then(|a| a.kind.as_deref()).map(|t| {
                Cow::Borrowed(if t.trim().eq_ignore_ascii_case("User") {
                    "human"
                } else {
                    "service"
                })
            }),
            via_idp: Some(true),
            outcome: outcome.map(Cow::Borrowed),
            failure_reason,
            mfa,
            mfa_method,
            src_ip,
            user_agent: client
                .and_then(|c| c.user_agent.as_ref())
                .and_then(|u| known(&u.raw_user_agent)),
            device_id: device.and_then(|d| known(&d.id)),
            device_managed: device.and_then(|d| d.managed),
            risk_level: debug.and_then(DebugData::risk_level).map(Cow::Borrowed),
            country: client.and_then(|c| c.geo.as_ref()).and_then(|g| known(&g.country)),
            app: targets.app.clone(),
            conditional_access: conditional_access.map(Cow::Borrowed),
            session_id: auth_ctx.and_then(|a| known(&a.external_session_id)),
            event: Some(Cow::Borrowed(event_type)),
            ..SigninRow::default()
        };
        self.count(client.is_some_and(|c| known(&c.device).is_some()), U_CLIENT_DEVICE);
        self.count(client.is_some_and(|c| known(&c.zone).is_some()), U_ZONE);
        self.count(client.is_some_and(|c| known(&c.id).is_some()), U_CLIENT_ID);
        self.count(e.security_context, U_SECURITY_CONTEXT);
        self.count(debug.is_some_and(|d| d.behaviors), U_BEHAVIORS);
        self.count(targets.policy, U_POLICY_TARGET);
        self.count(targets.app_user, U_APP_USER);
        out.signin(record, &row);
    }
}

/// Sign-in event kinds that are mapped differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `user.session.start`, `user.session.access_admin_app`, other `user.authentication.*`.
    Session,
    /// `user.authentication.auth_via_mfa`.
    AuthViaMfa,
    /// `policy.evaluate_sign_on`.
    PolicyEvaluation,
    /// `user.mfa.okta_verify.deny_push`.
    DeniedPush,
    /// Other `user.mfa.*` attempts.
    MfaAttempt,
}

/// Whether an event type is a sign-in, and of which kind; the skip reason otherwise.
fn classify(event_type: &str) -> std::result::Result<Kind, &'static str> {
    Ok(match event_type {
        "user.session.start" | "user.session.access_admin_app" => Kind::Session,
        "policy.evaluate_sign_on" => Kind::PolicyEvaluation,
        "user.authentication.auth_via_mfa" => Kind::AuthViaMfa,
        "user.mfa.okta_verify.deny_push" => Kind::DeniedPush,
        t if t.starts_with("user.authentication.") => {
            if t.contains("slo") || t.contains("logout") {
                return Err("okta-systemlog: single logout is not a sign-in");
            }
            Kind::Session
        }
        t if t.starts_with("user.mfa.factor.") => {
            return Err(
                "okta-systemlog: MFA factor lifecycle (enrol, reset, suspend) is not a sign-in",
            );
        }
        t if t.starts_with("user.mfa.") => Kind::MfaAttempt,
        t if t.starts_with("user.session.") => {
            return Err("okta-systemlog: session end, clear or impersonation is not a sign-in");
        }
        "system.push.send_factor_verify_push" => {
            return Err("okta-systemlog: MFA push sent (a challenge, not a result)");
        }
        _ => return Err("okta-systemlog: not a sign-in event"),
    })
}

/// `text` unless absent, empty, or one of Okta's placeholders (`unknown`, `null`, `UNKNOWN`).
fn known<'a>(text: &'a Text<'a>) -> Text<'a> {
    let t = text.as_deref()?.trim();
    (!(t.is_empty()
        || t.eq_ignore_ascii_case("unknown")
        || t.eq_ignore_ascii_case("null")
        || t == "-"))
        .then_some(Cow::Borrowed(t))
}

/// [`known`] for a value taken by value: keeps the borrow of the record when there is one.
fn known_value(text: Text<'_>) -> Text<'_> {
    let placeholder = |t: &str| {
        t.is_empty()
            || t.eq_ignore_ascii_case("unknown")
            || t.eq_ignore_ascii_case("null")
            || t == "-"
    };
    match text? {
        Cow::Borrowed(b) => Some(b.trim()).filter(|t| !placeholder(t)).map(Cow::Borrowed),
        Cow::Owned(o) => {
            Some(o.trim()).filter(|t| !placeholder(t)).map(|t| Cow::Owned(t.to_owned()))
        }
    }
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The shared-vocabulary name of an Okta factor or authenticator (`OKTA_VERIFY_PUSH`,
/// `Google Authenticator`, `Security Key or Biometric`, …); `None` for passwords.
fn factor_method(name: &str) -> Option<Cow<'_, str>> {
    let n = name.trim();
    if n.is_empty() || contains_ci(n, "password") || n.eq_ignore_ascii_case("unknown") {
        return None;
    }
    let known = [
        ("push", "push"),
        ("totp", "totp"),
        ("authenticator", "totp"),
        ("token:software", "totp"),
        ("sms", "sms"),
        ("call", "voice"),
        ("voice", "voice"),
        ("email", "email"),
        ("webauthn", "webauthn"),
        ("biometric", "webauthn"),
        ("fido", "webauthn"),
        ("u2f", "u2f"),
        ("yubikey", "otp"),
        ("hotp", "otp"),
        ("token:hardware", "otp"),
        ("okta verify", "okta_verify"),
        ("okta_verify", "okta_verify"),
    ];
    if let Some((_, v)) = known.iter().find(|(k, _)| contains_ci(n, k)) {
        return Some(Cow::Borrowed(*v));
    }
    Some(Cow::Owned(n.to_ascii_lowercase().replace([' ', '-'], "_")))
}

/// The second factor an `authenticationContext.credentialType` names, if any.
fn credential_factor(credential: &str) -> Option<Cow<'_, str>> {
    match credential.trim().to_ascii_uppercase().as_str() {
        "OTP" => Some(Cow::Borrowed("otp")),
        "SMS" => Some(Cow::Borrowed("sms")),
        "EMAIL" => Some(Cow::Borrowed("email")),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    event_type: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    published: Text<'a>,
    #[serde(borrow, default)]
    actor: Option<Actor<'a>>,
    #[serde(borrow, default)]
    client: Option<Client<'a>>,
    #[serde(borrow, default)]
    outcome: Option<Outcome<'a>>,
    #[serde(borrow, default)]
    target: Targets<'a>,
    #[serde(borrow, default)]
    authentication_context: Option<AuthContext<'a>>,
    #[serde(borrow, default)]
    debug_context: Option<DebugContext<'a>>,
    #[serde(borrow, default)]
    device: Option<Device<'a>>,
    #[serde(default, deserialize_with = "de::present")]
    security_context: bool,
    #[serde(borrow, default)]
    data: Option<HookData<'a>>,
}

#[derive(Debug, Deserialize)]
struct HookData<'a> {
    #[serde(borrow, default)]
    events: Option<Vec<&'a RawValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Actor<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    id: Text<'a>,
    #[serde(rename = "type", borrow, default, deserialize_with = "de::text")]
    kind: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    alternate_id: Text<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Client<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    ip_address: Text<'a>,
    #[serde(borrow, default)]
    user_agent: Option<UserAgent<'a>>,
    #[serde(rename = "geographicalContext", borrow, default)]
    geo: Option<Geo<'a>>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    device: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    zone: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    id: Text<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserAgent<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    raw_user_agent: Text<'a>,
}

#[derive(Debug, Deserialize)]
struct Geo<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    country: Text<'a>,
}

#[derive(Debug, Deserialize)]
struct Outcome<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    result: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    reason: Text<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthContext<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    credential_type: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    external_session_id: Text<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DebugContext<'a> {
    #[serde(borrow, default)]
    debug_data: Option<DebugData<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DebugData<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    threat_suspected: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    risk: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    log_only_security_data: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    factor: Text<'a>,
    #[serde(default, deserialize_with = "de::present")]
    behaviors: bool,
}

impl DebugData<'_> {
    /// `low | medium | high | none` from the risk fields and `threatSuspected`.
    fn risk_level(&self) -> Option<&'static str> {
        let level = [&self.risk, &self.log_only_security_data]
            .into_iter()
            .find_map(|t| t.as_deref().and_then(level_in));
        match (self.threat_suspected.as_deref().and_then(json::parse_bool), level) {
            (Some(true), _) => Some("high"),
            (_, Some(l)) => Some(l),
            (Some(false), None) => Some("none"),
            (None, None) => None,
        }
    }
}

/// The risk level written after `level` in `{level=HIGH, reasons=…}` or `{"risk":{"level":"LOW"}}`.
fn level_in(text: &str) -> Option<&'static str> {
    let lower_at = text.as_bytes().windows(5).position(|w| w.eq_ignore_ascii_case(b"level"))?;
    let rest = text.get(lower_at + 5..)?;
    let rest =
        rest.trim_start_matches(|c: char| c == '"' || c == '=' || c == ':' || c.is_whitespace());
    let word: String = rest.chars().take_while(char::is_ascii_alphabetic).take(8).collect();
    match word.to_ascii_uppercase().as_str() {
        "LOW" => Some("low"),
        "MEDIUM" => Some("medium"),
        "HIGH" => Some("high"),
        "NONE" => Some("none"),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
struct Device<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    id: Text<'a>,
    #[serde(default, deserialize_with = "de::boolean")]
    managed: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "de::text")]
    kind: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    alternate_id: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    display_name: Text<'a>,
}

/// `target[]` folded while decoding (`null` or an array): the app, the second factor among the
/// authenticator enrolments, and which other target kinds appeared.
#[derive(Debug, Default)]
struct Targets<'a> {
    app: Text<'a>,
    second_factor: Option<Cow<'a, str>>,
    enrollments: bool,
    policy: bool,
    app_user: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for Targets<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Targets<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("null or an array of targets")
            }

            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Targets::default();
                while let Some(Target { kind, alternate_id, display_name }) =
                    seq.next_element::<Target<'a>>()?
                {
                    match kind.as_deref().map(str::trim).unwrap_or_default() {
                        "AppInstance" if out.app.is_none() => {
                            out.app =
                                known_value(display_name).or_else(|| known_value(alternate_id));
                        }
                        "AuthenticatorEnrollment" => {
                            out.enrollments = true;
                            if out.second_factor.is_none() {
                                out.second_factor =
                                    known_value(display_name).and_then(|n| match n {
                                        Cow::Borrowed(b) => factor_method(b),
                                        Cow::Owned(o) => {
                                            factor_method(&o).map(|m| Cow::Owned(m.into_owned()))
                                        }
                                    });
                            }
                        }
                        "PolicyEntity" | "PolicyRule" => out.policy = true,
                        "AppUser" => out.app_user = true,
                        _ => {}
                    }
                }
                Ok(out)
            }

            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
                Ok(Targets::default())
            }
        }
        d.deserialize_any(V(PhantomData))
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
    fn example_maps_the_sign_in() {
        let r = &rows(FORMAT.example)[0];
        assert_eq!(r["table"], "signins");
        assert_eq!(r["provider"], "okta");
        assert_eq!(r["user"], "ana@example.com");
        assert_eq!(r["user_id"], "00u1abvz4pYqdM8ms4x6");
        assert_eq!(r["user_type"], "human");
        assert_eq!(r["via_idp"], true);
        assert_eq!(r["outcome"], "success");
        assert_eq!(r["src_ip"], "198.51.100.1");
        assert_eq!(r["country"], "United States");
        assert_eq!(r["risk_level"], "none");
        assert_eq!(r["session_id"], "102bZDNFfWaQSyEZQuDgWt-uQ");
        assert_eq!(r["mfa"], Value::Null);
        assert_eq!(r["time"], "2020-02-14T20:18:57.718Z");
    }

    #[test]
    fn factors_risk_and_outcomes() {
        assert_eq!(factor_method("OKTA_VERIFY_PUSH").as_deref(), Some("push"));
        assert_eq!(factor_method("Google Authenticator").as_deref(), Some("totp"));
        assert_eq!(factor_method("Security Key or Biometric").as_deref(), Some("webauthn"));
        assert_eq!(factor_method("Okta Verify").as_deref(), Some("okta_verify"));
        assert_eq!(factor_method("Password"), None);
        assert_eq!(factor_method("Duo Security").as_deref(), Some("duo_security"));
        assert_eq!(level_in("{reasons=New Device, level=HIGH}"), Some("high"));
        assert_eq!(level_in(r#"{"risk":{"level":"LOW"}}"#), Some("low"));
        assert_eq!(level_in("levels"), None);

        let mfa = r#"{"published":"2024-01-01T00:00:00.49Z","eventType":"user.authentication.auth_via_mfa","actor":{"alternateId":"a@x","type":"User"},"outcome":{"result":"FAILURE","reason":"INVALID_CREDENTIALS"},"debugContext":{"debugData":{"factor":"OKTA_VERIFY_PUSH","threatSuspected":"true"}}}"#;
        let r = &rows(mfa)[0];
        assert_eq!(r["mfa"], false);
        assert_eq!(r["mfa_method"], "push");
        assert_eq!(r["outcome"], "failure");
        assert_eq!(r["failure_reason"], "INVALID_CREDENTIALS");
        assert_eq!(r["risk_level"], "high");
        assert_eq!(r["time"], "2024-01-01T00:00:00.490Z");

        let challenge = r#"{"published":"2024-01-01T00:00:00Z","eventType":"policy.evaluate_sign_on","outcome":{"result":"CHALLENGE","reason":"Sign-on policy evaluation resulted in CHALLENGE"}}"#;
        let r = &rows(challenge)[0];
        assert_eq!(r["outcome"], Value::Null);
        assert_eq!(r["failure_reason"], Value::Null);
        assert_eq!(r["conditional_access"], Value::Null);
    }

    #[test]
    fn envelopes_arrays_skips_and_bad_times() {
        let hook = format!(
            r#"{{"eventType":"com.okta.event_hook","cloudEventsVersion":"0.1","data":{{"events":[{},{{"eventType":"user.session.end","published":"2024-01-01T00:00:00Z"}},"oops"]}}}}"#,
            FORMAT.example
        );
        let all = rows(&hook);
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[0]["table"], "signins");
        assert_eq!(all[0]["source"], "t.ndjson:1");
        assert_eq!(all[1]["table"], "quarantine");
        assert_eq!(all[1]["source"], "t.ndjson:1#2");

        let array = format!(
            "[{}, {}]",
            FORMAT.example,
            FORMAT.example.replace("2020-02-14T20:18:57.718Z", "redacted")
        );
        let all = rows(&array);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1]["reason"], "bad_time");
        assert!(all[1]["detail"].as_str().is_some_and(|d| d.starts_with("published")));
    }

    #[test]
    fn skips_and_unmapped_fields_are_counted() {
        use crate::output::SourceInfo;
        let mut parser = OktaParser::new(&ParseOptions::default());
        let mut out = Output::new(8, 0);
        out.begin_source(SourceInfo::lines("k", "t"), [0; 4]);
        out.set_format(NAME, Provider::Okta);
        let lines = [
            FORMAT.example.to_owned(),
            FORMAT.example.replace("user.session.start", "user.session.end"),
            FORMAT.example.replace("user.session.start", "user.mfa.factor.reset_all"),
            FORMAT.example.replace("user.session.start", "group.user_membership.add"),
        ];
        for (i, line) in lines.iter().enumerate() {
            out.begin_record();
            parser.parse(&Record { line: i as u64 + 1, bytes: line.as_bytes() }, &mut out);
            out.end_record();
        }
        parser.finish(&mut out);
        let c = out.counts();
        assert_eq!(c.rows_in(Table::Signins), 1);
        assert_eq!(c.skipped_total(), 3);
        assert_eq!(c.skipped.get("okta-systemlog: not a sign-in event"), Some(&1));
        assert_eq!(c.unmapped.get("okta-systemlog: client.device (device class)"), Some(&1));

        let tiny = ParseOptions { max_field_len: 8, ..ParseOptions::default() };
        let r = &normalize_bytes("t", FORMAT.example.as_bytes(), NAME, &tiny, None)[0];
        assert_eq!(r["reason"], "field_too_large");
    }

    #[test]
    fn sniff_claims_okta_only() {
        assert_eq!(sniff(FORMAT.example.as_bytes()), 90);
        assert_eq!(sniff(br#"{"eventType": "com.okta.event_hook", "data": {}}"#), 95);
        assert_eq!(
            sniff(
                br#"{"eventType":"AwsConsoleSignIn","userIdentity":{},"eventName":"ConsoleLogin"}"#
            ),
            0
        );
        assert_eq!(
            sniff(br#"{"eventType":"Microsoft.KeyVault.SecretNewVersionCreated","subject":"s"}"#),
            0
        );
    }
}
