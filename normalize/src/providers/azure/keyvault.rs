//! Azure Key Vault events delivered by Event Grid, in both envelopes: the Event Grid schema
//! (`eventType`, `eventTime`, `topic`, `dataVersion`) and the CloudEvents 1.0 schema (`type`,
//! `time`, `source`, `specversion`). Batches are JSON arrays; single events (one per line)
//! are accepted too.
//!
//! Quirks handled (all in Microsoft's published sample): `data.NBF`/`data.EXP` epoch seconds
//! as strings (numbers per the schema table, accepted too), the key `"ObjectName "` with a
//! trailing space, values with a leading space (`" ee05..."`, trimmed), and placeholder
//! subscription ids (`{subscription-id}` → NULL `account`).
//!
//! Promises: one `cert_events` row (`service` key-vault) per certificate event:
//! `Microsoft.KeyVault.CertificateNewVersionCreated` → `issued` (Event Grid does not say
//! whether the new version renews an older one), `CertificateNearExpiry` → `expiring`,
//! `CertificateExpired` → `expired` (other `Certificate*` types keep a NULL activity, with a
//! note); `cert_id` = `data.Id` (the versioned certificate URL), `not_before`/`not_after` from
//! NBF/EXP, `account` = the subscription of `topic`/`source`, `event` = the event type.
//! Secret, key and vault events are recognized as this format and skipped
//! ("not a certificate event"); events of other services in the same batch are skipped
//! ("not a Key Vault event"). A missing or bad event time, or a bad NBF/EXP, quarantines the
//! event alone. `subject` stays NULL: the Event Grid subject is the Key Vault object name (it is
//! part of `cert_id`), not the certificate's X.509 subject.

use std::borrow::Cow;

use serde::Deserialize;

use super::common::{self, TimeField, opt_str, time_field};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json;
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::CertEventRow;
use crate::schema::{Provider, Table};

/// Format name.
pub const NAME: &str = "azure-keyvault";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Azure,
    tables: &[Table::CertEvents],
    framing: Framing::Json,
    description: "Azure Key Vault Event Grid events (Event Grid and CloudEvents 1.0 schemas): certificate new version, near expiry, expired",
    example: r#"[{"id":"00eccf70-95a7-4e7c-8299-2eb17ee9ad64","topic":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv","subject":"webcert","eventType":"Microsoft.KeyVault.CertificateNearExpiry","eventTime":"2019-07-25T01:08:33.1036736Z","data":{"Id":"https://kv.vault.azure.net/certificates/webcert/ee059b2bb5bc48398a53b168c6cdcb10","VaultName":"kv","ObjectType":"Certificate","ObjectName":"webcert","Version":"ee059b2bb5bc48398a53b168c6cdcb10","NBF":"1559081980","EXP":"1561673980"},"dataVersion":"1","metadataVersion":"1"}]"#,
    sniff,
    new_parser,
};

const PREFIX: &str = "Microsoft.KeyVault.";

/// Confidence that a record is a Key Vault Event Grid event or batch: an event type starting
/// with `Microsoft.KeyVault.` beside an Event Grid or CloudEvents envelope key.
fn sniff(record: &[u8]) -> u8 {
    let head = json::head(record, 2048);
    let typed = json::contains(head, b"\"Microsoft.KeyVault.");
    let envelope = json::contains(head, b"\"eventType\"")
        || json::contains(head, b"\"specversion\"")
        || json::contains(head, b"\"eventTime\"");
    if typed && envelope { 95 } else { 0 }
}

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(KeyVaultParser { options: options.clone(), unmapped: [0; UNMAPPED.len()] }))
}

const UNMAPPED: [&str; 3] =
    ["subject (Key Vault object name, also in cert_id)", "data.VaultName", "data.Version"];

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(default, borrow, rename = "eventType", deserialize_with = "opt_str")]
    event_type: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "type", deserialize_with = "opt_str")]
    ce_type: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "eventTime", deserialize_with = "time_field")]
    event_time: TimeField<'a>,
    #[serde(default, borrow, deserialize_with = "time_field")]
    time: TimeField<'a>,
    #[serde(default, borrow, deserialize_with = "opt_str")]
    topic: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_str")]
    source: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "json::de::present")]
    subject: bool,
    #[serde(default, borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(default, borrow, rename = "Id", deserialize_with = "json::de::text")]
    id: Option<Cow<'a, str>>,
    #[serde(default, rename = "VaultName", deserialize_with = "json::de::present")]
    vault_name: bool,
    #[serde(default, rename = "Version", deserialize_with = "json::de::present")]
    version: bool,
    #[serde(default, borrow, rename = "NBF", deserialize_with = "json::de::text")]
    nbf: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "EXP", deserialize_with = "json::de::text")]
    exp: Option<Cow<'a, str>>,
}

/// Parser state for one source: options and unmapped-field counts.
#[derive(Debug)]
struct KeyVaultParser {
    options: ParseOptions,
    unmapped: [u64; UNMAPPED.len()],
}

impl Parser for KeyVaultParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let Self { options, unmapped } = self;
        common::for_each_element(
            record,
            options,
            out,
            "azure-keyvault: empty event array",
            &mut |event, out| match json::decode::<Event<'_>>(event.bytes, options) {
                Ok(e) => match build(&e) {
                    Ok(Some(row)) => {
                        unmapped[0] += u64::from(e.subject);
                        let data = e.data.as_ref();
                        unmapped[1] += u64::from(data.is_some_and(|d| d.vault_name));
                        unmapped[2] += u64::from(data.is_some_and(|d| d.version));
                        if row.activity.is_none() {
                            out.note("azure-keyvault: certificate event type without an activity mapping");
                        }
                        out.cert_event(event, &row);
                    }
                    Ok(None) => out.skip(skip_reason(&e)),
                    Err((reason, detail)) => out.quarantine(event, reason, &detail),
                },
                Err((reason, detail)) => out.quarantine(event, reason, &detail),
            },
        );
    }

    fn finish(&mut self, out: &mut Output) {
        for (field, n) in UNMAPPED.iter().zip(std::mem::take(&mut self.unmapped)) {
            out.note_unmapped(NAME, field, n);
        }
    }
}

fn event_type<'e>(e: &'e Event<'_>) -> Option<&'e str> {
    e.event_type.as_deref().or(e.ce_type.as_deref()).map(str::trim)
}

fn skip_reason(e: &Event<'_>) -> &'static str {
    match event_type(e) {
        Some(t) if t.starts_with(PREFIX) => "azure-keyvault: not a certificate event",
        _ => "azure-keyvault: not a Key Vault event",
    }
}

type Rejection = (Reason, String);

/// Epoch seconds (string or number) of a data field; `None` when absent or blank.
fn epoch(field: &str, v: &Option<Cow<'_, str>>) -> Result<Option<i64>, Rejection> {
    let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match json::parse_epoch(v) {
        Some(t) => Ok(Some(t)),
        None => {
            let shown: String = v.chars().take(64).collect();
            Err((Reason::BadField, format!("{field}: {shown:?} is not epoch seconds in range")))
        }
    }
}

/// The row of a certificate event; `None` for other events.
fn build<'r>(e: &'r Event<'_>) -> Result<Option<CertEventRow<'r>>, Rejection> {
    let Some(kind) = event_type(e).and_then(|t| t.strip_prefix(PREFIX)) else {
        return Ok(None);
    };
    if !kind.starts_with("Certificate") {
        return Ok(None);
    }
    let activity = match kind {
        "CertificateNewVersionCreated" => Some("issued"),
        "CertificateNearExpiry" => Some("expiring"),
        "CertificateExpired" => Some("expired"),
        _ => None,
    };
    let (field, name) =
        if e.event_time.is_absent() { (&e.time, "time") } else { (&e.event_time, "eventTime") };
    let Some(time) = field.parse(name)? else {
        return Err((Reason::MissingField, "eventTime: absent (nor CloudEvents time)".to_owned()));
    };
    let data = e.data.as_ref();
    let not_before = epoch("data.NBF", &data.and_then(|d| d.nbf.clone()))?;
    let not_after = epoch("data.EXP", &data.and_then(|d| d.exp.clone()))?;
    let scope = e.topic.as_deref().or(e.source.as_deref()).unwrap_or_default();
    Ok(Some(CertEventRow {
        time,
        service: Some(Cow::Borrowed("key-vault")),
        account: common::subscription(scope),
        activity: activity.map(Cow::Borrowed),
        cert_id: common::non_empty(data.and_then(|d| d.id.as_deref()).map(Cow::Borrowed)),
        not_before,
        not_after,
        event: event_type(e).map(Cow::Borrowed),
        ..CertEventRow::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SNIFF_THRESHOLD;
    use crate::golden::normalize_bytes;
    use serde_json::Value;

    #[test]
    fn both_envelopes_and_string_or_number_epochs() {
        let input = r#"[
 {"topic":"/subscriptions/AB-12/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv","subject":"c","eventType":"Microsoft.KeyVault.CertificateExpired","eventTime":"2019-07-25T01:08:33.1036736Z","data":{"Id":" https://kv.vault.azure.net/certificates/c/1","ObjectName ":"c","NBF":1559081980,"EXP":"1559082102"},"dataVersion":"1"},
 {"source":"/subscriptions/{subscription-id}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv","subject":"c","type":"Microsoft.KeyVault.CertificateNewVersionCreated","time":"2019-07-25T01:08:33Z","data":{"NBF":"","EXP":null},"specversion":"1.0"},
 {"eventType":"Microsoft.KeyVault.SecretNewVersionCreated","eventTime":"2019-07-25T01:08:33Z","data":{}},
 {"eventType":"Microsoft.Storage.BlobCreated","eventTime":"2019-07-25T01:08:33Z"},
 {"eventType":"Microsoft.KeyVault.CertificateNearExpiry","data":{}},
 {"eventType":"Microsoft.KeyVault.CertificateNearExpiry","eventTime":"2019-07-25T01:08:33Z","data":{"EXP":"soon"}}
]"#;
        let rows = normalize_bytes("t", input.as_bytes(), NAME, &ParseOptions::default(), None);
        let tables: Vec<&str> = rows.iter().filter_map(|r| r["table"].as_str()).collect();
        assert_eq!(tables, ["cert_events", "cert_events", "quarantine", "quarantine"]);
        let expired = &rows[0];
        assert_eq!(expired["activity"], "expired");
        assert_eq!(expired["account"], "ab-12");
        assert_eq!(expired["cert_id"], "https://kv.vault.azure.net/certificates/c/1");
        assert_eq!(expired["not_before"], "2019-05-28T22:19:40Z");
        assert_eq!(expired["not_after"], "2019-05-28T22:21:42Z");
        assert_eq!(expired["service"], "key-vault");
        let issued = &rows[1];
        assert_eq!(issued["activity"], "issued");
        assert_eq!(
            (issued["account"].clone(), issued["not_after"].clone()),
            (Value::Null, Value::Null)
        );
        assert_eq!(rows[2]["reason"], "missing_field");
        assert_eq!(rows[3]["reason"], "bad_field");
        assert!(rows[3]["detail"].as_str().is_some_and(|d| d.starts_with("data.EXP")));
    }

    #[test]
    fn sniff_claims_key_vault_events_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= SNIFF_THRESHOLD);
        assert_eq!(sniff(br#"{"operationName":"Microsoft.KeyVault/vaults/certificates/read"}"#), 0);
        assert_eq!(sniff(br#"{"eventType":"Microsoft.Storage.BlobCreated"}"#), 0);
    }
}
