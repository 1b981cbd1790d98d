//! The sign-in half of `aws-cloudtrail`: how a routed sign-in event (console, IAM Identity
//! Center, STS federation) becomes a `signins` row — who signed in and as what, through which
//! path, with which outcome and which second factor. The rules are listed in the parent
//! module's documentation; this module is pure field logic over the decoded [`Doc`].

use std::borrow::Cow;

use super::{Doc, EnvelopeCtx, account_of, error_text};
use crate::providers::aws::common::{Arn, cow, present};
use crate::rows::SigninRow;
use crate::values::canonical_ip;

/// `Success` / `Failure` in any case.
fn result_word(v: Option<&str>) -> Option<bool> {
    let v = v?.trim();
    if v.eq_ignore_ascii_case("success") {
        Some(true)
    } else if v.eq_ignore_ascii_case("failure") || v.eq_ignore_ascii_case("failed") {
        Some(false)
    } else {
        None
    }
}

/// The MFA method of an `MFAIdentifier` (an ARN path or a hardware serial).
fn mfa_method_of_identifier(id: &str) -> &'static str {
    match Arn::parse(id) {
        Some(arn) if arn.resource.starts_with("u2f/") => "u2f",
        Some(_) => "virtual",
        None => "hardware",
    }
}

/// The MFA method of `CheckMfa`'s `MfaType`; `None` when it does not name one.
fn mfa_method_of_type(t: &str) -> Option<&'static str> {
    let t = t.to_ascii_lowercase();
    if t.contains("u2f") || t.contains("fido") || t.contains("passkey") {
        Some("u2f")
    } else if t.contains("virtual") {
        Some("virtual")
    } else if t.contains("hardware") {
        Some("hardware")
    } else {
        None
    }
}

/// Identity Center `CredentialType` (`PASSWORD`, `PASSWORD,TOTP`, `EXTERNAL_IDP`…): the second
/// factors, lower-cased and comma-joined, and whether a password or second factor was used.
fn credential_factors(t: &str) -> (Option<String>, bool) {
    let mut factors = String::new();
    let mut any = false;
    for f in t.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        any = true;
        if f.eq_ignore_ascii_case("PASSWORD") || f.eq_ignore_ascii_case("EXTERNAL_IDP") {
            continue;
        }
        if !factors.is_empty() {
            factors.push(',');
        }
        factors.push_str(&f.to_ascii_lowercase());
    }
    ((!factors.is_empty()).then_some(factors), any)
}

/// The session name of an assumed-role ARN (`…:assumed-role/Role/session` → `session`) and the
/// role part (`…:assumed-role/Role`).
fn assumed_role_parts(arn: &str) -> Option<(&str, &str)> {
    let parsed = Arn::parse(arn)?;
    let rest = parsed.resource.strip_prefix("assumed-role/")?;
    let (_, session) = rest.split_once('/')?;
    let role = arn.get(..arn.len() - session.len() - 1)?;
    Some((role, session))
}

/// Strip the query and fragment of a URL (Identity Center puts one-time codes there).
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Who signed in: user, id, type, via_idp and role.
struct Who<'b> {
    user: Option<Cow<'b, str>>,
    user_id: Option<&'b str>,
    user_type: Option<&'static str>,
    via_idp: Option<bool>,
    role: Option<&'b str>,
}

fn who<'b>(ev: &'b Doc<'_>, name: &str, source: &str) -> Who<'b> {
    let ui = ev.user_identity.as_ref();
    let kind = ui.and_then(|u| present(u.kind.as_deref())).unwrap_or("");
    let arn = ui.and_then(|u| present(u.arn.as_deref()));
    let principal = ui.and_then(|u| present(u.principal_id.as_deref()));
    let user_name = ui.and_then(|u| present(u.user_name.as_deref()));
    let issuer = ui.and_then(|u| u.session.as_ref()).and_then(|s| s.issuer.as_ref());
    let issuer_arn = issuer.and_then(|i| present(i.arn.as_deref()));
    let issuer_name = issuer.and_then(|i| present(i.user_name.as_deref()));
    let aed = ev.additional.as_ref();
    let aed_user = aed.and_then(|a| present(a.user_name.as_deref()));
    let assumed = arn.and_then(assumed_role_parts);

    let mut w = Who {
        user: user_name.map(Cow::Borrowed),
        user_id: arn.or(principal),
        user_type: None,
        via_idp: None,
        role: None,
    };
    match kind {
        "Root" => {
            w.user = Some(Cow::Borrowed(user_name.unwrap_or("root")));
            w.user_type = Some("root");
            w.via_idp = Some(false);
        }
        "IAMUser" => {
            w.user_type = Some("human");
            w.via_idp = Some(false);
        }
        "AssumedRole" => {
            let session = assumed
                .map(|(_, s)| s)
                .or_else(|| principal.and_then(|p| p.split_once(':')).map(|(_, s)| s));
            w.user = session.map(Cow::Borrowed).or(w.user);
            w.user_type = Some("federated");
            w.role = issuer_arn.or(assumed.map(|(r, _)| r));
        }
        "SAMLUser" | "WebIdentityUser" => {
            w.user_id = principal.or(arn);
            w.user_type = Some("federated");
            w.via_idp = Some(true);
        }
        "IdentityCenterUser" | "Unknown" => {
            w.user = aed_user.or(user_name).map(Cow::Borrowed);
            // The legacy `Unknown` shape puts the account id in `principalId`: not a user id.
            w.user_id = ui
                .and_then(|u| u.on_behalf_of.as_ref())
                .and_then(|o| present(o.user_id.as_deref()));
            w.user_type = Some("federated");
            w.via_idp = Some(true);
        }
        "FederatedUser" => w.user_type = Some("federated"),
        "AWSService" => {
            w.user = ui.and_then(|u| present(u.invoked_by.as_deref())).map(Cow::Borrowed);
            w.user_type = Some("service");
        }
        _ => {}
    }
    let saml = aed.and_then(|a| present(a.saml_provider_arn.as_deref())).is_some();
    let sso_role =
        [arn, issuer_arn, issuer_name].into_iter().flatten().any(|s| s.contains("AWSReservedSSO_"));
    let identity_center = source == "sso.amazonaws.com"
        || matches!(name, "CredentialChallenge" | "CredentialVerification" | "UserAuthentication");
    let sts_federation = matches!(name, "AssumeRoleWithSAML" | "AssumeRoleWithWebIdentity");
    if saml || sso_role || identity_center || sts_federation {
        w.user_type = Some("federated");
        w.via_idp = Some(true);
    }
    if identity_center && w.user.is_none() {
        w.user = aed_user.map(Cow::Borrowed);
    }
    if sts_federation {
        let resp = ev.response.as_ref();
        if w.user.is_none() {
            w.user = resp
                .and_then(|r| {
                    present(r.subject.as_deref())
                        .or_else(|| present(r.web_identity_subject.as_deref()))
                })
                .map(Cow::Borrowed);
        }
        w.role = ev.request.as_ref().and_then(|r| present(r.role_arn.as_deref())).or(w.role);
    }
    w
}

pub(super) fn signin_row<'b>(
    ev: &'b Doc<'_>,
    name: &'b str,
    source: &str,
    time: i64,
    env: EnvelopeCtx<'b>,
    ip: &'b mut String,
) -> SigninRow<'b> {
    let w = who(ev, name, source);
    let resp = ev.response.as_ref();
    let aed = ev.additional.as_ref();
    let details = ev.service_details.as_ref();
    let explicit = match name {
        "ConsoleLogin" => resp.and_then(|r| r.console_login.as_deref()),
        "CheckMfa" => resp.and_then(|r| r.check_mfa.as_deref()),
        "SwitchRole" => resp.and_then(|r| r.switch_role.as_deref()),
        "CredentialChallenge" => details.and_then(|d| d.credential_challenge.as_deref()),
        "CredentialVerification" => details.and_then(|d| d.credential_verification.as_deref()),
        "UserAuthentication" => details.and_then(|d| d.user_authentication.as_deref()),
        _ => None,
    };
    let errored = present(ev.error_code.as_deref()).is_some()
        || present(ev.error_message.as_deref()).is_some();
    let success = result_word(explicit).unwrap_or(!errored);
    let failure_reason = if success { None } else { error_text(ev) };

    let session_mfa = ev
        .user_identity
        .as_ref()
        .and_then(|u| u.session.as_ref())
        .and_then(|s| s.attributes.as_ref())
        .and_then(|a| a.mfa_authenticated);
    let mut mfa_method: Option<Cow<'b, str>> = aed
        .and_then(|a| present(a.mfa_identifier.as_deref()))
        .map(|id| Cow::Borrowed(mfa_method_of_identifier(id)));
    let mfa = match name {
        "CheckMfa" => {
            mfa_method = aed
                .and_then(|a| present(a.mfa_type.as_deref()))
                .and_then(mfa_method_of_type)
                .map(Cow::Borrowed);
            Some(success)
        }
        "CredentialChallenge" | "CredentialVerification" | "UserAuthentication" => {
            let (factors, any) = aed
                .and_then(|a| present(a.credential_type.as_deref()))
                .map_or((None, false), credential_factors);
            let external = aed
                .and_then(|a| a.credential_type.as_deref())
                .is_some_and(|t| t.to_ascii_uppercase().contains("EXTERNAL_IDP"));
            let mfa =
                (name == "UserAuthentication" && any && !external).then_some(factors.is_some());
            mfa_method = factors.map(Cow::Owned);
            mfa
        }
        "AssumeRoleWithSAML" | "AssumeRoleWithWebIdentity" | "Authenticate" => None,
        _ => {
            let used = aed.and_then(|a| a.mfa_used);
            if used == Some(true) || session_mfa == Some(true) {
                Some(true)
            } else if w.via_idp == Some(true) {
                None
            } else {
                used.or(session_mfa)
            }
        }
    };
    let session_id = aed.and_then(|a| present(a.auth_workflow_id.as_deref())).or_else(|| {
        resp.and_then(|r| r.assumed_role_user.as_ref())
            .and_then(|u| present(u.assumed_role_id.as_deref()))
    });
    let src_ip =
        present(ev.source_ip.as_deref()).and_then(|s| canonical_ip(s, ip)).map(Cow::Borrowed);
    SigninRow {
        time,
        account: account_of(ev, env).map(Cow::Borrowed),
        user: w.user,
        user_id: w.user_id.map(Cow::Borrowed),
        user_type: w.user_type.map(Cow::Borrowed),
        via_idp: w.via_idp,
        outcome: Some(Cow::Borrowed(if success { "success" } else { "failure" })),
        failure_reason,
        mfa,
        mfa_method,
        src_ip,
        user_agent: cow(ev.user_agent.as_deref()),
        app: aed
            .and_then(|a| present(a.login_to.as_deref()))
            .map(|u| Cow::Borrowed(without_query(u))),
        role: w.role.map(Cow::Borrowed),
        session_id: session_id.map(Cow::Borrowed),
        event: Some(Cow::Borrowed(name)),
        ..SigninRow::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> Doc<'_> {
        serde_json::from_str(json).expect("doc")
    }

    #[test]
    fn mfa_methods_come_from_arn_paths_types_and_credential_types() {
        assert_eq!(
            mfa_method_of_identifier("arn:aws:iam::111122223333:u2f/user/anaya/default-AAAA"),
            "u2f"
        );
        assert_eq!(
            mfa_method_of_identifier("arn:aws:iam::111122223333:mfa/root-account-mfa-device"),
            "virtual"
        );
        assert_eq!(mfa_method_of_identifier("GAHT12345678"), "hardware");
        assert_eq!(mfa_method_of_type("U2F MFA"), Some("u2f"));
        assert_eq!(mfa_method_of_type("Multiple MFA Devices"), None);
        assert_eq!(credential_factors("PASSWORD,TOTP"), (Some("totp".to_owned()), true));
        assert_eq!(credential_factors("PASSWORD"), (None, true));
        assert_eq!(credential_factors(""), (None, false));
    }

    #[test]
    fn assumed_role_arns_split_into_role_and_session() {
        assert_eq!(
            assumed_role_parts(
                "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin/user@example.com"
            ),
            Some((
                "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin",
                "user@example.com"
            ))
        );
        assert_eq!(assumed_role_parts("arn:aws:iam::123456789012:user/x"), None);
        assert_eq!(
            without_query("https://console.aws.amazon.com/console/home?state=x#y"),
            "https://console.aws.amazon.com/console/home"
        );
    }

    #[test]
    fn federated_console_login_without_aws_mfa_is_unknown_not_false() {
        let ev = doc(
            r#"{"eventName":"ConsoleLogin","eventSource":"signin.amazonaws.com","responseElements":{"ConsoleLogin":"Success"},"additionalEventData":{"MFAUsed":"No","SamlProviderArn":"arn:aws:iam::1:saml-provider/Okta"},"userIdentity":{"type":"IAMUser","userName":"t"}}"#,
        );
        let mut ip = String::new();
        let row = signin_row(
            &ev,
            "ConsoleLogin",
            "signin.amazonaws.com",
            1,
            EnvelopeCtx::default(),
            &mut ip,
        );
        assert_eq!(
            (row.via_idp, row.mfa, row.user_type.as_deref()),
            (Some(true), None, Some("federated"))
        );
        let ev = doc(
            r#"{"responseElements":{"ConsoleLogin":"Success"},"additionalEventData":{"MFAUsed":"No"},"userIdentity":{"type":"IAMUser","userName":"t"}}"#,
        );
        let row = signin_row(
            &ev,
            "ConsoleLogin",
            "signin.amazonaws.com",
            1,
            EnvelopeCtx::default(),
            &mut ip,
        );
        assert_eq!(
            (row.via_idp, row.mfa, row.user_type.as_deref()),
            (Some(false), Some(false), Some("human"))
        );
    }

    #[test]
    fn outcome_falls_back_to_error_presence() {
        let mut ip = String::new();
        let ev = doc(r#"{"errorMessage":"Failed authentication","userIdentity":{"type":"Root"}}"#);
        let row = signin_row(
            &ev,
            "ConsoleLogin",
            "signin.amazonaws.com",
            1,
            EnvelopeCtx::default(),
            &mut ip,
        );
        assert_eq!(row.outcome.as_deref(), Some("failure"));
        assert_eq!(row.failure_reason.as_deref(), Some("Failed authentication"));
        assert_eq!(row.user.as_deref(), Some("root"));
        let ev = doc(
            r#"{"responseElements":{"ConsoleLogin":"FAILURE"},"errorCode":"X","errorMessage":"y"}"#,
        );
        let row = signin_row(
            &ev,
            "ConsoleLogin",
            "signin.amazonaws.com",
            1,
            EnvelopeCtx::default(),
            &mut ip,
        );
        assert_eq!(row.failure_reason.as_deref(), Some("X: y"));
        let ev = doc(r#"{"sourceIPAddress":"AWS Internal"}"#);
        let row = signin_row(
            &ev,
            "GetSigninToken",
            "signin.amazonaws.com",
            1,
            EnvelopeCtx::default(),
            &mut ip,
        );
        assert_eq!((row.outcome.as_deref(), row.src_ip), (Some("success"), None));
    }
}
