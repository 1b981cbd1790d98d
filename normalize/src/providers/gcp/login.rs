//! Google Workspace login events, shared by the Admin SDK Reports API format
//! (`gcp-workspace-login`) and Cloud Audit Logs entries of `login.googleapis.com`
//! (`gcp-audit`): which event names are sign-ins, and how their parameters fill a sign-in row.
//!
//! Parameters arrive as `[{name, value | intValue | boolValue | multiValue}]` (Reports API) or
//! `[{name, type, value | boolValue | intValue | multiStrValue}]` (Cloud Audit `ActivityProto`);
//! values are read leniently (numbers as strings and the reverse).
//!
//! Decisions (documented in the row semantics):
//! - `login_success` → success, `login_failure` → failure (`login_failure_type`, for SAML
//!   `failure_type`, → `failure_reason`); `login_challenge` / `login_verification` are rows whose
//!   outcome comes from `login_challenge_status` (`Challenge Passed.` / `passed` → success,
//!   `Challenge Failed.` / `failed` → failure, anything else NULL).
//! - Not sign-ins, skipped with a reason: `logout`; `account_disabled_*` (account state changes);
//!   `suspicious_login*`, `gov_attack_warning` and other `account_warning` events (alerts about
//!   a sign-in that is itself logged as `login_*` with `is_suspicious`); `risky_sensitive_action_*`
//!   (a step-up check for an action, not a sign-in); password, 2SV and recovery changes.
//! - `login_timestamp` (`intValue`, **microseconds**) is the time of the sign-in when present.
//! - `login_type` `saml` (signed in to Google through an external SAML IdP) and every event of
//!   the `saml` application (Google as the IdP of a SAML app) set `via_idp`; `google_password`,
//!   `exchange` and `reauth` clear it.
//! - `is_second_factor` is the evidence of a second factor when present; otherwise it is inferred
//!   from `login_challenge_method` (a second-factor method appears, or only `password` does).
//!   `mfa` is true only when the evidence shows a second factor and the attempt succeeded, false
//!   when it shows none or the attempt failed, NULL when undecided. `mfa_method` (NULL when
//!   `is_second_factor` is false) lists the second-factor methods in the shared vocabulary
//!   (`google_authenticator`/`offline_otp` → `totp`, `google_prompt`/`phone_prompt` → `push`,
//!   `idv_*_phone` → `sms`, `security_key` → `u2f`, `backup_code`, `passkey`), comma-joined.
//! - `is_suspicious` true → `risk_level` `high`, false → `none`.

use std::borrow::Cow;

use serde::Deserialize;

use super::common::non_empty;
use crate::json::de;
use crate::rows::{SigninRow, Text};
use crate::values::checked_micros;

/// One text item of a multi-valued parameter, read leniently.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct Item<'a>(#[serde(borrow, deserialize_with = "de::text")] pub(crate) Text<'a>);

/// A login event parameter.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Param<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    pub(crate) name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    value: Text<'a>,
    #[serde(default, deserialize_with = "de::int")]
    int_value: Option<i64>,
    #[serde(default, deserialize_with = "de::boolean")]
    bool_value: Option<bool>,
    #[serde(borrow, default, alias = "multiStrValue")]
    multi_value: Option<Vec<Item<'a>>>,
}

impl<'a> Param<'a> {
    fn text(&self) -> Option<&str> {
        self.value.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    fn flag(&self) -> Option<bool> {
        self.bool_value.or_else(|| self.text().and_then(crate::json::parse_bool))
    }

    /// Every text value: `value` and the items of `multiValue`.
    fn texts(&self) -> impl Iterator<Item = &str> {
        self.text().into_iter().chain(
            self.multi_value
                .iter()
                .flatten()
                .filter_map(|i| i.0.as_deref().map(str::trim).filter(|v| !v.is_empty())),
        )
    }
}

/// Which Workspace application the event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum App {
    /// Signing in to Google (`login`).
    Login,
    /// Signing in to a SAML application with Google as the IdP (`saml`).
    Saml,
}

/// What to do with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A sign-in row.
    Signin,
    /// Not a sign-in: skip with this reason.
    Skip(&'static str),
}

/// Whether `name` (an event name such as `login_success`) is a sign-in of `app`.
pub(crate) fn decide(app: App, name: &str) -> Decision {
    match (app, name) {
        (_, "login_success" | "login_failure") => Decision::Signin,
        (App::Login, "login_challenge" | "login_verification") => Decision::Signin,
        (_, "logout") => Decision::Skip("gcp-workspace-login: logout is not a sign-in"),
        (_, n) if n.starts_with("account_disabled_") => {
            Decision::Skip("gcp-workspace-login: account_disabled_* is an account state change")
        }
        (_, n) if n.starts_with("suspicious_") || n == "gov_attack_warning" => Decision::Skip(
            "gcp-workspace-login: account warning (the sign-in itself is a login_* event with is_suspicious)",
        ),
        (_, n) if n.starts_with("risky_sensitive_action") => Decision::Skip(
            "gcp-workspace-login: risky_sensitive_action_* is a step-up check of an action, not a sign-in",
        ),
        _ => Decision::Skip(
            "gcp-workspace-login: not a sign-in event (password, 2SV, recovery or other)",
        ),
    }
}

/// The microsecond `login_timestamp` of an event, when present and in range.
pub(crate) fn login_time(params: &[Param<'_>]) -> Option<i64> {
    params
        .iter()
        .find(|p| p.name.as_deref() == Some("login_timestamp"))
        .and_then(|p| p.int_value.or_else(|| p.text().and_then(|t| t.parse().ok())))
        .and_then(checked_micros)
}

/// Parameters this module maps to a column; others are counted as unmapped by the callers.
pub(crate) fn is_mapped(name: &str) -> bool {
    matches!(
        name,
        "login_type"
            | "login_challenge_method"
            | "login_challenge_status"
            | "is_second_factor"
            | "is_suspicious"
            | "login_failure_type"
            | "login_timestamp"
            | "application_name"
            | "failure_type"
            | "device_id"
    )
}

/// The shared-vocabulary name of a Google second-factor method, or `None` for first-factor and
/// identity-verification methods (`password`, `knowledge_*`, `login_location`, `none`).
fn second_factor(method: &str) -> Option<&'static str> {
    Some(match method {
        "google_authenticator" | "offline_otp" | "totp" => "totp",
        "google_prompt" | "phone_prompt" => "push",
        "idv_preregistered_phone" | "idv_any_phone" | "sms" => "sms",
        "security_key" | "security_key_otp" => "u2f",
        "backup_code" => "backup_code",
        "passkey" => "passkey",
        "internal_two_factor" => "internal_two_factor",
        _ => return None,
    })
}

/// Fill the columns a login event of `app` named `name` carries. `row.time` is not touched.
pub(crate) fn apply<'a>(app: App, name: &'a str, params: &'a [Param<'a>], row: &mut SigninRow<'a>) {
    let find = |n: &str| params.iter().find(|p| p.name.as_deref() == Some(n));
    row.event = Some(Cow::Borrowed(name));
    let challenge_status = find("login_challenge_status").and_then(Param::text);
    row.outcome = match name {
        "login_success" => Some(Cow::Borrowed("success")),
        "login_failure" => Some(Cow::Borrowed("failure")),
        _ => challenge_status.and_then(|s| {
            let s = s.to_ascii_lowercase();
            if s.contains("passed") {
                Some(Cow::Borrowed("success"))
            } else if s.contains("failed") {
                Some(Cow::Borrowed("failure"))
            } else {
                None
            }
        }),
    };
    if row.outcome.as_deref() == Some("failure") {
        row.failure_reason = find("login_failure_type")
            .or_else(|| find("failure_type"))
            .and_then(|p| non_empty(p.value.as_deref().map(Cow::Borrowed)))
            .or_else(|| challenge_status.map(Cow::Borrowed));
    }
    row.via_idp = match app {
        App::Saml => Some(true),
        App::Login => find("login_type").and_then(Param::text).and_then(|t| match t {
            "saml" => Some(true),
            "google_password" | "exchange" | "reauth" => Some(false),
            _ => None,
        }),
    };

    // Second factors, in order of appearance, without repeats.
    let mut methods: Vec<&'static str> = Vec::new();
    let mut saw_method = false;
    if let Some(p) = find("login_challenge_method") {
        for m in p.texts() {
            saw_method = true;
            if let Some(f) = second_factor(m)
                && !methods.contains(&f)
            {
                methods.push(f);
            }
        }
    }
    // Evidence of a second factor: the explicit flag, else the methods seen. MFA is satisfied
    // only when the attempt succeeded; a failed attempt with a second factor is `false`.
    let evidence = find("is_second_factor")
        .and_then(Param::flag)
        .or_else(|| saw_method.then_some(!methods.is_empty()));
    row.mfa = match (evidence, row.outcome.as_deref()) {
        (Some(false), _) => Some(false),
        (Some(true), Some("success")) => Some(true),
        (Some(true), Some(_)) => Some(false),
        (Some(true), None) | (None, _) => None,
    };
    row.mfa_method = match (evidence, methods.as_slice()) {
        (Some(false), _) | (_, []) => None,
        (_, [one]) => Some(Cow::Borrowed(*one)),
        (_, many) => Some(Cow::Owned(many.join(","))),
    };
    row.risk_level = find("is_suspicious")
        .and_then(Param::flag)
        .map(|s| Cow::Borrowed(if s { "high" } else { "none" }));
    if app == App::Saml {
        row.app =
            find("application_name").and_then(|p| non_empty(p.value.as_deref().map(Cow::Borrowed)));
    }
    if let Some(device) =
        find("device_id").and_then(|p| non_empty(p.value.as_deref().map(Cow::Borrowed)))
    {
        row.device_id = Some(device);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ParseOptions;

    fn params(json: &str) -> Vec<Param<'_>> {
        crate::json::decode(json.as_bytes(), &ParseOptions::default()).expect("params")
    }

    #[test]
    fn success_with_security_key_multivalue_is_mfa_u2f() {
        let p = params(
            r#"[{"name":"login_type","value":"saml"},{"name":"login_challenge_method","multiValue":["password","password","security_key"]},{"name":"is_suspicious","boolValue":false}]"#,
        );
        let mut row = SigninRow::default();
        apply(App::Login, "login_success", &p, &mut row);
        assert_eq!(row.outcome.as_deref(), Some("success"));
        assert_eq!(row.mfa, Some(true));
        assert_eq!(row.mfa_method.as_deref(), Some("u2f"));
        assert_eq!(row.via_idp, Some(true));
        assert_eq!(row.risk_level.as_deref(), Some("none"));
    }

    #[test]
    fn explicit_second_factor_flag_wins_and_password_only_is_not_mfa() {
        let p = params(
            r#"[{"name":"is_second_factor","boolValue":false},{"name":"login_challenge_method","value":"backup_code"},{"name":"login_challenge_status","value":"Challenge Failed."}]"#,
        );
        let mut row = SigninRow::default();
        apply(App::Login, "login_verification", &p, &mut row);
        assert_eq!(row.mfa, Some(false));
        assert_eq!(row.mfa_method, None, "not a second factor, says Google");
        assert_eq!(row.outcome.as_deref(), Some("failure"));

        let p = params(
            r#"[{"name":"login_challenge_method","value":"google_prompt"},{"name":"login_challenge_status","value":"Challenge Failed."}]"#,
        );
        let mut row = SigninRow::default();
        apply(App::Login, "login_challenge", &p, &mut row);
        assert_eq!(row.mfa, Some(false), "a failed second factor is not satisfied MFA");
        assert_eq!(row.mfa_method.as_deref(), Some("push"));
        assert_eq!(row.failure_reason.as_deref(), Some("Challenge Failed."));

        let p = params(
            r#"[{"name":"login_challenge_method","value":"password"},{"name":"login_type","value":"google_password"}]"#,
        );
        let mut row = SigninRow::default();
        apply(App::Login, "login_success", &p, &mut row);
        assert_eq!(row.mfa, Some(false));
        assert_eq!(row.mfa_method, None);
        assert_eq!(row.via_idp, Some(false));
    }

    #[test]
    fn decisions_and_login_time() {
        assert_eq!(decide(App::Login, "login_challenge"), Decision::Signin);
        assert!(matches!(decide(App::Login, "logout"), Decision::Skip(_)));
        assert!(matches!(decide(App::Login, "account_disabled_hijacked"), Decision::Skip(_)));
        assert!(matches!(decide(App::Saml, "login_challenge"), Decision::Skip(_)));
        let p = params(r#"[{"name":"login_timestamp","intValue":"1593695305123456"}]"#);
        assert_eq!(login_time(&p), Some(1_593_695_305_123_456));
        let p = params(r#"[{"name":"login_timestamp","intValue":-5}]"#);
        assert_eq!(login_time(&p), None);
    }
}
