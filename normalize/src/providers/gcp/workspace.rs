//! Google Workspace login activity from the Admin SDK Reports API (`gcp-workspace-login` →
//! `signins`): `kind: admin#reports#activity` items of the `login` and `saml` applications, one
//! per record, or the API's list page `{"kind":"admin#reports#activities","items":[...]}`
//! (unpacked without re-serializing; a bad item is quarantined alone, the others are kept).
//!
//! Quirks handled:
//! - `events` is an **array** in the API and a single **object** in Elastic's test data; both
//!   are accepted, and every sign-in event of an activity becomes one row.
//! - `id.time` has millisecond precision; a `login_timestamp` parameter (`intValue`,
//!   microseconds) is preferred when present. A record with a sign-in event and neither time is
//!   quarantined (`missing_field` / `bad_time` naming `id.time`) as a whole.
//! - `id.uniqueQualifier` and `actor.profileId` are numbers or strings (`profileId` → `user_id`).
//! - Which events are sign-ins and how parameters map is shared with Cloud Audit login entries:
//!   see [`super::login`]. Non-sign-in events are skipped with a reason; activities of other
//!   applications (`admin`, `drive`, `token`, …) are skipped as a whole.
//!
//! Columns: `account` = `id.customerId`, `user` = `actor.email`, `user_type` = `service` for
//! `*.gserviceaccount.com` actors and non-user callers, else `human`; `src_ip` = `ipAddress`
//! (a value that is not an address becomes NULL with a note: the sign-in is kept).

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::common::{SNIFF_WINDOW, Unmapped, non_empty, opens_object, string_value};
use super::login::{self, App, Decision, Param};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json::{self, Rejection, de};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::{SigninRow, Text};
use crate::schema::{Provider, Table};
use crate::values::canonical_ip;

/// Format name.
pub const NAME: &str = "gcp-workspace-login";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Gcp,
    tables: &[Table::Signins],
    framing: Framing::Json,
    description: "Google Workspace login and SAML activity (Admin SDK Reports API admin#reports#activity, single items or list pages)",
    example: r#"{"kind":"admin#reports#activity","id":{"time":"2025-02-27T05:59:58.481Z","uniqueQualifier":"123","applicationName":"login","customerId":"C0abc"},"actor":{"email":"ana@example.com","profileId":"1001"},"ipAddress":"198.51.100.14","events":[{"type":"login","name":"login_success","parameters":[{"name":"login_type","value":"google_password"},{"name":"login_challenge_method","multiValue":["password","security_key"]},{"name":"is_suspicious","boolValue":false}]}]}"#,
    sniff,
    new_parser,
};

/// Confidence that `record` is a Reports API activity or list page (its `kind`).
fn sniff(record: &[u8]) -> u8 {
    let head = json::head(record, SNIFF_WINDOW);
    if !opens_object(head) {
        return 0;
    }
    match string_value(head, b"\"kind\"") {
        Some(b"admin#reports#activity" | b"admin#reports#activities") => 95,
        _ => 0,
    }
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(WorkspaceParser::new(options)))
}

const U_PARAMS: usize = 0;
const U_OWNER_DOMAIN: usize = 1;
const U_EVENT_TYPE: usize = 2;

const UNMAPPED: &[&str] = &[
    "events.parameters (sensitive_action_name, saml_status_code, initiated_by, orgunit_path, …)",
    "ownerDomain",
    "events.type",
];

/// Parser state for one source.
#[derive(Debug)]
pub struct WorkspaceParser {
    options: ParseOptions,
    unmapped: Unmapped,
}

impl WorkspaceParser {
    /// A parser with `options` (JSON caps).
    pub fn new(options: &ParseOptions) -> Self {
        Self { options: options.clone(), unmapped: Unmapped::new(NAME, UNMAPPED) }
    }
}

impl Parser for WorkspaceParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let activity: Activity<'_> = match json::decode(record.bytes, &self.options) {
            Ok(a) => a,
            Err((reason, detail)) => return out.quarantine(record, reason, &detail),
        };
        let Some(items) = &activity.items else {
            return self.activity(record, &activity, out);
        };
        if items.is_empty() {
            return out.skip("gcp-workspace-login: list page without items");
        }
        for item in items {
            let element = Record { line: record.line, bytes: item.get().as_bytes() };
            match json::decode::<Activity<'_>>(element.bytes, &self.options) {
                Ok(a) if a.items.is_some() => out.quarantine(
                    &element,
                    Reason::BadJson,
                    "items[]: a list page nested in a list page",
                ),
                Ok(a) => self.activity(&element, &a, out),
                Err((reason, detail)) => {
                    out.quarantine(&element, reason, &format!("items[]: {detail}"))
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Output) {
        self.unmapped.flush(out);
    }
}

impl WorkspaceParser {
    /// Normalize one activity (a record, or an item of a list page passed as its own record).
    fn activity(&mut self, record: &Record<'_>, a: &Activity<'_>, out: &mut Output) {
        let id = a.id.as_ref();
        let app = match id.and_then(|i| i.application_name.as_deref()) {
            None | Some("login") => App::Login,
            Some("saml") => App::Saml,
            Some(_) => return out.skip("gcp-workspace-login: activity of another application"),
        };
        let events = &a.events.0;
        if events.is_empty() {
            return out.quarantine(record, Reason::MissingField, "events: absent or empty");
        }
        // Validate the time before emitting anything, so a record ends in one place.
        let id_time: Result<i64, Rejection> = match id.and_then(|i| i.time.as_deref()) {
            None => Err((Reason::MissingField, "id.time: absent".to_owned())),
            Some(t) => json::parse_time(t)
                .ok_or_else(|| (Reason::BadTime, format!("id.time: {t:?} is not a time in range"))),
        };
        let needs_id_time = events.iter().any(|e| {
            login::decide(app, e.name()) == Decision::Signin
                && login::login_time(&e.parameters).is_none()
        });
        if needs_id_time && let Err((reason, detail)) = &id_time {
            return out.quarantine(record, *reason, detail);
        }

        let mut scratch = String::new();
        let src_ip = match a.ip_address.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(ip) => {
                let canonical = canonical_ip(ip, &mut scratch);
                if canonical.is_none() {
                    out.note(
                        "gcp-workspace-login: ipAddress is not an IP address, src_ip left NULL",
                    );
                }
                canonical
            }
        };
        let actor = a.actor.as_ref();
        let email = actor.and_then(|x| non_empty(x.email.as_deref().map(Cow::Borrowed)));
        let caller = actor.and_then(|x| x.caller_type.as_deref());
        let user_type = match (&email, caller) {
            (Some(e), _) if e.ends_with(".gserviceaccount.com") => Some("service"),
            (_, Some(c)) if !c.eq_ignore_ascii_case("USER") => Some("service"),
            (Some(_), _) | (_, Some(_)) => Some("human"),
            (None, None) => None,
        };
        self.unmapped.add_if(a.owner_domain, U_OWNER_DOMAIN);

        for event in events {
            let name = event.name();
            match login::decide(app, name) {
                Decision::Skip(reason) => out.skip(reason),
                Decision::Signin => {
                    let time = match login::login_time(&event.parameters)
                        .or(id_time.as_ref().ok().copied())
                    {
                        Some(t) => t,
                        // Checked above; unreachable for valid state, kept total.
                        None => {
                            return out.quarantine(record, Reason::MissingField, "id.time: absent");
                        }
                    };
                    let mut row = SigninRow {
                        time,
                        account: id
                            .and_then(|i| non_empty(i.customer_id.as_deref().map(Cow::Borrowed))),
                        user: email.clone(),
                        user_id: actor
                            .and_then(|x| non_empty(x.profile_id.as_deref().map(Cow::Borrowed))),
                        user_type: user_type.map(Cow::Borrowed),
                        src_ip: src_ip.map(Cow::Borrowed),
                        ..SigninRow::default()
                    };
                    login::apply(app, name, &event.parameters, &mut row);
                    let other = event
                        .parameters
                        .iter()
                        .any(|p| p.name.as_deref().is_some_and(|n| !login::is_mapped(n)));
                    self.unmapped.add_if(other, U_PARAMS);
                    self.unmapped.add_if(event.kind, U_EVENT_TYPE);
                    out.signin(record, &row);
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Activity<'a> {
    #[serde(borrow, default)]
    id: Option<Id<'a>>,
    #[serde(borrow, default)]
    actor: Option<Actor<'a>>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    ip_address: Text<'a>,
    #[serde(borrow, default)]
    events: Events<'a>,
    #[serde(borrow, default)]
    items: Option<Vec<&'a RawValue>>,
    #[serde(default, deserialize_with = "de::present")]
    owner_domain: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Id<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    time: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    application_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    customer_id: Text<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Actor<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    email: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    profile_id: Text<'a>,
    #[serde(borrow, default, deserialize_with = "de::text")]
    caller_type: Text<'a>,
}

#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(borrow, default, deserialize_with = "de::text")]
    name: Text<'a>,
    #[serde(rename = "type", default, deserialize_with = "de::present")]
    kind: bool,
    #[serde(borrow, default)]
    parameters: Vec<Param<'a>>,
}

impl Event<'_> {
    fn name(&self) -> &str {
        self.name.as_deref().map(str::trim).unwrap_or_default()
    }
}

/// `events`: an array of events (API) or a single event object (Elastic's test data).
#[derive(Debug, Default)]
struct Events<'a>(Vec<Event<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Events<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Events<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an event object or an array of events")
            }

            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut events = Vec::new();
                while let Some(e) = seq.next_element::<Event<'a>>()? {
                    events.push(e);
                }
                Ok(Events(events))
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                Event::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|e| Events(vec![e]))
            }

            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
                Ok(Events(Vec::new()))
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
    fn array_and_object_events_both_work() {
        let r = &rows(FORMAT.example)[0];
        assert_eq!(r["user"], "ana@example.com");
        assert_eq!(r["user_id"], "1001");
        assert_eq!(r["account"], "C0abc");
        assert_eq!(r["outcome"], "success");
        assert_eq!(r["mfa"], true);
        assert_eq!(r["mfa_method"], "u2f");
        assert_eq!(r["via_idp"], false);
        assert_eq!(r["time"], "2025-02-27T05:59:58.481Z");

        let object = FORMAT.example.replace("\"events\":[", "\"events\":").replace("}]}]}", "}]}}");
        let r = &rows(&object)[0];
        assert_eq!(r["outcome"], "success", "{object}");
        assert_eq!(r["event"], "login_success");
    }

    #[test]
    fn login_timestamp_is_preferred_and_bad_id_time_quarantines() {
        let line = r#"{"kind":"admin#reports#activity","id":{"time":"2020-10-02T15:00:00Z"},"events":{"name":"login_failure","parameters":[{"name":"login_timestamp","intValue":1593695305123456},{"name":"login_failure_type","value":"login_failure_invalid_password"}]}}"#;
        let r = &rows(line)[0];
        assert_eq!(r["time"], "2020-07-02T13:08:25.123456Z");
        assert_eq!(r["failure_reason"], "login_failure_invalid_password");

        let line = r#"{"kind":"admin#reports#activity","id":{"time":"soon"},"events":[{"name":"logout"},{"name":"login_success"}]}"#;
        let all = rows(line);
        assert_eq!(all.len(), 1, "one quarantine row, no skip-then-quarantine");
        assert_eq!(all[0]["reason"], "bad_time");
    }

    #[test]
    fn list_pages_are_unpacked_and_bad_items_quarantined_alone() {
        let page = format!(
            r#"{{"kind":"admin#reports#activities","items":[{},{{"kind":"admin#reports#activity","events":"x"}},{{"kind":"admin#reports#activity","id":{{"applicationName":"drive"}}}}]}}"#,
            FORMAT.example
        );
        let all = rows(&page);
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[0]["table"], "signins");
        assert_eq!(all[1]["table"], "quarantine");
        assert_eq!(all[1]["reason"], "bad_json");
    }

    #[test]
    fn sniff_claims_reports_activities_only() {
        assert_eq!(sniff(FORMAT.example.as_bytes()), 95);
        assert_eq!(sniff(br#"{"kind":"admin#reports#activities","items":[]}"#), 95);
        assert_eq!(sniff(br#"{"kind":"compute#instance"}"#), 0);
    }
}
