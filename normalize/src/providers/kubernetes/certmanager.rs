//! cert-manager certificate events (`k8s-cert-manager`) → `cert_events`, from the two text
//! shapes cert-manager activity is usually captured in:
//!
//! - **Kubernetes events as kubectl prints them**: `kubectl describe` rows (`Type  Reason  Age
//!   From  Message`, e.g. `Normal  Issuing  105s  cert-manager-certificates-trigger  Issuing
//!   certificate as Secret does not exist`) and `kubectl get events` rows (`LAST SEEN  TYPE
//!   REASON  OBJECT  MESSAGE`, optionally led by `NAMESPACE`). Columns are separated by two or
//!   more spaces (kubectl's tab writer), so single spaces inside a column (`101s (x3 over
//!   106s)`) and the message's own spacing survive. Header lines (`Events:`, `Type  Reason …`,
//!   `----  ------`, `LAST SEEN  TYPE …`) are skipped.
//! - **cert-manager controller klog lines** ([`super::klog`]): `I0719 15:21:28.113411  1
//!   sync.go:206] Certificate my-cert scheduled for renewal in 292 hours`.
//!
//! **Times.** Neither shape carries a full date. An event row's time is the source's delivery
//! time (file modification time, message time) minus its age (`105s`, `8m20s`, `18m`, `3d4h`;
//! for `101s (x3 over 106s)` the last occurrence, 101 s); kubectl rounds ages, so the time is
//! approximate to the age's last unit. A klog line takes its year from a full date in its own
//! message when one has the same month and day (`… to 2022-01-13 16:51:59 +0000 UTC`), else from
//! the delivery time — the previous year when the date would otherwise lie more than a day after
//! delivery (a December line read in January). Both derivations are counted as notes; without a
//! delivery time the record is quarantined (`missing_field`), with an unreadable age `bad_time`.
//!
//! **Mapping** (`service` = `cert-manager`, `event` = the Kubernetes reason, `reason` = the
//! message, `actor` = the reporting component (From), `workload` = the namespace when shown):
//!
//! | reason | activity |
//! |---|---|
//! | `Issuing` "…successfully issued" / `Issued` / `CertIssued` | `issued` |
//! | `Issuing` "Renewing …" | `renewing` |
//! | `Issuing` (trigger), `IssueCert` | `issuing` |
//! | `Requested`, `Requesting` | `requested` |
//! | `Generated`, `GenerateKey` | `key_generated` |
//! | `cert-manager.io` (approver), `Approved` | `approved` |
//! | `Denied` | `denied` |
//! | `Expired` | `expired` |
//! | `CreateCertificate` (ingress-shim) | `created` (cert_id from the message) |
//! | any other `Warning` from cert-manager (`Failed`, `PresentError`, `ErrUpdateACMEAccount`, …) | `issue_failed` |
//!
//! Other `Normal` events of cert-manager (ACME order and challenge progress: `OrderCreated`,
//! `Presented`, `DomainVerified`, …; issuer checks; `CertObtained` / `Retrieve`, which precede
//! the `CertIssued` of the same issuance) and events of other controllers
//! (`loadbalancer-controller`) are skipped with a reason. `cert_id` is the object name when a
//! `get events` row names a `certificate/…` or `certificaterequest/…`; `describe` rows name no
//! object, so `cert_id` stays NULL (the X.509 subject is never guessed from a resource name).
//!
//! klog lines: `Certificate <name> scheduled for renewal in N hours` → `renewal_scheduled`;
//! `Setting lastTransitionTime for CertificateRequest|Certificate "<name>" condition
//! "Approved"|"Denied"|"InvalidRequest"|"Issuing"` → `approved` / `denied` / `issue_failed` /
//! `issuing`; `Updated … TLS certificate` (with `DNSNames`) and `Detected root CA rotation` →
//! `renewed`; admission-policy mutations of a `Certificate` (`kind="Certificate"`,
//! `operation="UPDATE"`) → `updated` with the requesting user as actor. `key="ns/name"` gives
//! workload and cert_id. Every other controller line is skipped.

use std::borrow::Cow;

use serde::Deserialize;

use super::klog;
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json::{self, Rejection, de};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::{CertEventRow, Text};
use crate::schema::{Provider, Table};
use crate::values::{MICROS_PER_DAY, MICROS_PER_SEC, checked_micros};

/// Format name.
pub const NAME: &str = "k8s-cert-manager";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Kubernetes,
    tables: &[Table::CertEvents],
    framing: Framing::Lines,
    description: "cert-manager certificate events: kubectl describe / get events rows (relative ages) and controller klog lines (no year); times derived from the delivery time",
    example: "Normal  Issuing    105s  cert-manager-certificates-trigger  Issuing certificate as Secret does not exist",
    sniff,
    new_parser,
};

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(CertManagerParser::new(options)))
}

const NOTE_AGE: &str =
    "k8s-cert-manager: time is the delivery time minus the kubectl event age (approximate)";
const NOTE_YEAR_DELIVERED: &str =
    "k8s-cert-manager: klog time has no year; year taken from the delivery time";
const NOTE_YEAR_MESSAGE: &str =
    "k8s-cert-manager: klog time has no year; year taken from a date in the message";

/// Parser state: options and the count of aggregated events (`(x3 over 106s)`).
#[derive(Debug)]
pub struct CertManagerParser {
    options: ParseOptions,
    aggregated: u64,
}

impl CertManagerParser {
    /// A parser; `options` carry the caps for JSON values embedded in klog lines.
    pub fn new(options: &ParseOptions) -> Self {
        Self { options: options.clone(), aggregated: 0 }
    }
}

impl Parser for CertManagerParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let Ok(text) = std::str::from_utf8(record.bytes) else {
            out.quarantine(record, Reason::InvalidUtf8, "line is not valid UTF-8");
            return;
        };
        let line = text.trim();
        if line.is_empty() {
            return out.skip("k8s-cert-manager: blank line");
        }
        if let Some(k) = klog::parse(line) {
            return self.klog_line(record, &k, out);
        }
        if is_header(line) {
            return out.skip("k8s-cert-manager: kubectl header line");
        }
        match EventRow::parse(line) {
            Some(row) => self.event_row(record, &row, out),
            None => out.quarantine(
                record,
                Reason::FieldCount,
                "neither a kubectl event row (Type Reason Age From Message / LAST SEEN TYPE REASON OBJECT MESSAGE) nor a klog line",
            ),
        }
    }

    fn finish(&mut self, out: &mut Output) {
        out.note_unmapped(NAME, "count (xN over …)", self.aggregated);
        self.aggregated = 0;
    }
}

fn is_header(line: &str) -> bool {
    line.starts_with("Events:")
        || line.starts_with("----")
        || line.starts_with("LAST SEEN")
        || (line.starts_with("NAMESPACE") && line.contains("LAST SEEN"))
        || (line.starts_with("Type") && line.contains("Reason"))
}

/// Columns of a line separated by runs of two or more spaces, as (start, end) offsets.
fn columns(line: &str, max: usize) -> Vec<(usize, usize)> {
    let b = line.as_bytes();
    let mut cols = Vec::with_capacity(max);
    let mut start = 0;
    let mut i = 0;
    while i < b.len() && cols.len() + 1 < max {
        if b.get(i) == Some(&b' ') && b.get(i + 1) == Some(&b' ') {
            cols.push((start, i));
            while b.get(i) == Some(&b' ') {
                i += 1;
            }
            start = i;
        } else {
            i += 1;
        }
    }
    cols.push((start, b.len()));
    cols
}

/// A kubectl event row.
#[derive(Debug, PartialEq, Eq)]
struct EventRow<'a> {
    warning: bool,
    reason: &'a str,
    age: &'a str,
    /// The reporting component (`describe` rows).
    from: Option<&'a str>,
    /// `kind/name` (`get events` rows).
    object: Option<&'a str>,
    namespace: Option<&'a str>,
    message: &'a str,
}

impl<'a> EventRow<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let cols = columns(line, 6);
        let col = |i: usize| cols.get(i).and_then(|&(s, e)| line.get(s..e));
        let kind_at = (0..3).find(|&i| matches!(col(i), Some("Normal" | "Warning")))?;
        let warning = col(kind_at) == Some("Warning");
        let row = match kind_at {
            // Type Reason Age From Message
            0 => {
                let cols = columns(line, 5);
                let col = |i: usize| cols.get(i).and_then(|&(s, e)| line.get(s..e));
                EventRow {
                    warning,
                    reason: col(1)?,
                    age: col(2)?,
                    from: Some(col(3)?),
                    object: None,
                    namespace: None,
                    message: col(4).unwrap_or_default(),
                }
            }
            // [NAMESPACE] LAST SEEN TYPE REASON OBJECT MESSAGE
            i => {
                let cols = columns(line, i + 4);
                let col = |i: usize| cols.get(i).and_then(|&(s, e)| line.get(s..e));
                EventRow {
                    warning,
                    reason: col(i + 1)?,
                    age: col(i - 1)?,
                    from: None,
                    object: Some(col(i + 2)?),
                    namespace: if i == 2 { col(0) } else { None },
                    message: col(i + 3).unwrap_or_default(),
                }
            }
        };
        // kubectl prints `<unknown>` / `<invalid>` for ages it cannot compute: still an event
        // row (its time is then unreadable), unlike a column that is no age at all.
        if age_micros(row.age).is_none() && !row.age.starts_with('<') {
            return None;
        }
        Some(row)
    }
}

/// A kubectl age (`105s`, `8m20s`, `3d4h`, `2y`; `101s (x3 over 106s)` → 101 s) in
/// microseconds; `None` for `<unknown>`, `<invalid>` and anything else.
fn age_micros(age: &str) -> Option<i64> {
    let age = age.split(" (").next()?.trim();
    if age.is_empty() || age.len() > 24 {
        return None;
    }
    let mut total: i64 = 0;
    let mut number: Option<i64> = None;
    for c in age.chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(number.unwrap_or(0).checked_mul(10)?.checked_add(i64::from(d))?);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'y' => 365 * 86_400,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    if number.is_some() {
        return None;
    }
    total.checked_mul(MICROS_PER_SEC)
}

/// Whether an event belongs to cert-manager: its component (`cert-manager`,
/// `cert-manager-certificates-trigger`, …) or its object's kind.
fn from_cert_manager(row: &EventRow<'_>) -> bool {
    if let Some(from) = row.from {
        return from.starts_with("cert-manager");
    }
    let kind = row.object.and_then(|o| o.split_once('/')).map(|(k, _)| k).unwrap_or_default();
    let kind = kind
        .strip_suffix(".cert-manager.io")
        .or(kind.strip_suffix(".acme.cert-manager.io"))
        .unwrap_or(kind);
    matches!(
        kind.to_ascii_lowercase().as_str(),
        "certificate" | "certificaterequest" | "order" | "challenge" | "issuer" | "clusterissuer"
    )
}

/// The activity of a cert-manager event, or `None` for progress events.
fn event_activity(row: &EventRow<'_>) -> Option<&'static str> {
    if row.warning {
        return Some(if row.reason == "Denied" { "denied" } else { "issue_failed" });
    }
    Some(match row.reason {
        "Issuing" if row.message.contains("successfully issued") => "issued",
        "Issuing" if row.message.starts_with("Renewing") => "renewing",
        "Issuing" | "IssueCert" => "issuing",
        "Issued" | "CertIssued" => "issued",
        "Requested" | "Requesting" => "requested",
        "Generated" | "GenerateKey" => "key_generated",
        "cert-manager.io" | "Approved" => "approved",
        "Denied" => "denied",
        "Expired" => "expired",
        "CreateCertificate" => "created",
        _ => return None,
    })
}

/// The first double-quoted word of a message (`Successfully created Certificate "web-ssl"`).
fn first_quoted(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once('"')?;
    let (name, _) = rest.split_once('"')?;
    (!name.is_empty()).then_some(name)
}

impl CertManagerParser {
    fn event_row(&mut self, record: &Record<'_>, row: &EventRow<'_>, out: &mut Output) {
        if !from_cert_manager(row) {
            return out.skip("k8s-cert-manager: event of another controller");
        }
        let Some(activity) = event_activity(row) else {
            return out.skip("k8s-cert-manager: ACME order/challenge or issuer progress event");
        };
        let Some(delivered) = out.source().delivered else {
            return out.quarantine(
                record,
                Reason::MissingField,
                "age: kubectl events carry no date and the source has no delivery time",
            );
        };
        let time =
            age_micros(row.age).and_then(|age| delivered.checked_sub(age)).and_then(checked_micros);
        let Some(time) = time else {
            let shown: String = row.age.chars().take(40).collect();
            return out.quarantine(
                record,
                Reason::BadTime,
                &format!("age: {shown:?} is no age kubectl could compute, or reaches before 1970"),
            );
        };
        let object = row.object.and_then(|o| o.split_once('/'));
        let cert_id = match object {
            Some((kind, name))
                if kind.to_ascii_lowercase().starts_with("certificate") && !name.is_empty() =>
            {
                Some(name)
            }
            _ if activity == "created" => first_quoted(row.message),
            _ => None,
        };
        if row.age.contains(" (x") {
            self.aggregated += 1;
        }
        let event = CertEventRow {
            time,
            service: Some(Cow::Borrowed("cert-manager")),
            activity: Some(Cow::Borrowed(activity)),
            cert_id: cert_id.map(Cow::Borrowed),
            actor: row.from.map(Cow::Borrowed),
            workload: row.namespace.map(Cow::Borrowed),
            reason: (!row.message.is_empty()).then_some(Cow::Borrowed(row.message)),
            event: Some(Cow::Borrowed(row.reason)),
            ..CertEventRow::default()
        };
        out.note(NOTE_AGE);
        out.cert_event(record, &event);
    }

    fn klog_line(&mut self, record: &Record<'_>, line: &klog::Line<'_>, out: &mut Output) {
        let payload = line.payload;
        let message = klog::message(payload);
        let Some(mut event) = self.classify_klog(payload, &message) else {
            return out.skip(
                "k8s-cert-manager: controller log line without a certificate lifecycle step",
            );
        };
        match klog_time(line, &message, out.source().delivered) {
            Ok((time, note)) => {
                event.time = time;
                out.note(note);
                out.cert_event(record, &event);
            }
            Err((reason, detail)) => out.quarantine(record, reason, &detail),
        }
    }

    /// The row a klog payload describes (time not yet set), or `None` to skip it.
    fn classify_klog<'a>(
        &self,
        payload: &'a str,
        message: &Cow<'a, str>,
    ) -> Option<CertEventRow<'a>> {
        let msg: &str = message;
        let owned = |s: &str| Some(Cow::Owned(s.to_owned()));
        let mut row = CertEventRow {
            service: Some(Cow::Borrowed("cert-manager")),
            reason: owned(msg),
            ..CertEventRow::default()
        };
        if let Some(key) = klog::text(payload, "key")
            && let Some((ns, name)) = key.split_once('/')
        {
            row.workload = owned(ns);
            row.cert_id = owned(name);
        }
        if let Some(rest) = msg.strip_prefix("Certificate ")
            && let Some((name, _)) = rest.split_once(" scheduled for renewal")
        {
            row.activity = Some(Cow::Borrowed("renewal_scheduled"));
            row.cert_id = owned(name.trim_matches('"'));
            return Some(row);
        }
        if let Some(rest) = msg.strip_prefix("Setting lastTransitionTime for ") {
            let (kind, rest) = rest.split_once(' ')?;
            let (name, rest) = rest.trim_start_matches('"').split_once('"')?;
            let condition = rest.split_once("condition \"")?.1.split_once('"')?.0;
            let activity = match (kind, condition) {
                (_, "Approved") => "approved",
                (_, "Denied") => "denied",
                (_, "InvalidRequest") => "issue_failed",
                ("Certificate", "Issuing") => "issuing",
                _ => return None,
            };
            row.activity = Some(Cow::Borrowed(activity));
            row.cert_id = owned(name);
            row.event = Some(Cow::Owned(format!("condition {condition}")));
            return Some(row);
        }
        if msg.starts_with("Detected root CA rotation") {
            row.activity = Some(Cow::Borrowed("renewed"));
            return Some(row);
        }
        if msg.starts_with("Updated ") && msg.contains("certificate") {
            row.activity = Some(Cow::Borrowed("renewed"));
            if let Some(klog::Value::Json(names)) = klog::value(payload, "DNSNames") {
                row.sans = json::decode_str::<Vec<Cow<'_, str>>>(names, &self.options)
                    .ok()
                    .filter(|v| !v.is_empty());
            }
            return Some(row);
        }
        let kind = klog::text(payload, "kind");
        let operation = klog::text(payload, "operation");
        if kind.as_deref() == Some("Certificate") && operation.as_deref() == Some("UPDATE") {
            row.activity = Some(Cow::Borrowed("updated"));
            row.cert_id = klog::text(payload, "name");
            row.workload = klog::text(payload, "namespace");
            if let Some(klog::Value::Json(user)) = klog::value(payload, "user") {
                row.actor = json::decode_str::<KlogUser<'_>>(user, &self.options)
                    .ok()
                    .and_then(|u| u.username);
            }
            if let Some(policy) = klog::text(payload, "policy") {
                row.reason = Some(Cow::Owned(format!("{msg} (policy {policy})")));
            }
            return Some(row);
        }
        None
    }
}

#[derive(Deserialize)]
struct KlogUser<'a> {
    #[serde(default, borrow, deserialize_with = "de::text")]
    username: Text<'a>,
}

/// The time of a klog line and the note saying where its year came from.
fn klog_time(
    line: &klog::Line<'_>,
    message: &str,
    delivered: Option<i64>,
) -> Result<(i64, &'static str), Rejection> {
    if let Some(year) = year_in_message(message, line.month, line.day)
        && let Some(t) = klog::time_in_year(line, year)
    {
        return Ok((t, NOTE_YEAR_MESSAGE));
    }
    let Some(delivered) = delivered else {
        return Err((
            Reason::MissingField,
            "time: klog lines carry no year and the source has no delivery time".to_owned(),
        ));
    };
    let year = chrono::DateTime::from_timestamp_micros(delivered)
        .map(|d| chrono::Datelike::year(&d))
        .ok_or_else(|| (Reason::BadTime, "time: delivery time out of range".to_owned()))?;
    for y in [year, year - 1] {
        if let Some(t) = klog::time_in_year(line, y)
            && t <= delivered.saturating_add(MICROS_PER_DAY)
        {
            return Ok((t, NOTE_YEAR_DELIVERED));
        }
    }
    Err((
        Reason::BadTime,
        format!(
            "time: {:02}-{:02} is not a date in {} or {}",
            line.month,
            line.day,
            year,
            year - 1
        ),
    ))
}

/// The year of a `YYYY-MM-DD` date in `message` whose month and day are `month` and `day`.
fn year_in_message(message: &str, month: u32, day: u32) -> Option<i32> {
    let b = message.as_bytes();
    let want = format!("-{month:02}-{day:02}");
    memchr::memmem::find_iter(b, want.as_bytes()).find_map(|at| {
        let year = message.get(at.checked_sub(4)?..at)?;
        let before = at.checked_sub(5).and_then(|i| b.get(i));
        if before.is_some_and(u8::is_ascii_digit) || !year.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        year.parse().ok()
    })
}

/// klog lines, kubectl event rows (`Normal`/`Warning` in one of the first three columns with an
/// age beside it) and kubectl event headers.
fn sniff(record: &[u8]) -> u8 {
    let h = json::head(record, 2048);
    let Ok(text) = std::str::from_utf8(h) else { return 0 };
    let line = text.trim();
    if klog::parse(line).is_some() {
        return 90;
    }
    if line == "Events:" || line.starts_with("Events:  <none>") {
        return 60;
    }
    if is_header(line)
        && (line.contains("Reason") || line.contains("REASON") || line.starts_with("----"))
    {
        return 90;
    }
    // Cheap filter before splitting columns: an event row has its type followed by padding.
    let typed = json::contains(h, b"Normal  ") || json::contains(h, b"Warning  ");
    if typed && EventRow::parse(line).is_some() { 90 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::SourceInfo;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMicrosecondType;
    use arrow::record_batch::RecordBatch;

    const DELIVERED: i64 = 1_700_000_000_000_000; // 2023-11-14T22:13:20Z

    fn run(lines: &[&str], delivered: Option<i64>) -> (Output, Vec<(Table, RecordBatch)>) {
        let mut parser = CertManagerParser::new(&ParseOptions::default());
        let mut out = Output::new(16, 0);
        let mut info = SourceInfo::lines("k", "events.txt");
        info.delivered = delivered;
        out.begin_source(info, [0; 4]);
        out.set_format(NAME, Provider::Kubernetes);
        for (i, l) in lines.iter().enumerate() {
            out.begin_record();
            parser.parse(&Record { line: i as u64 + 1, bytes: l.as_bytes() }, &mut out);
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

    fn t(b: &RecordBatch, i: usize) -> i64 {
        b.column_by_name("time").expect("time").as_primitive::<TimestampMicrosecondType>().value(i)
    }

    #[test]
    fn ages_parse_like_kubectl_prints_them() {
        assert_eq!(age_micros("105s"), Some(105_000_000));
        assert_eq!(age_micros("8m20s"), Some(500_000_000));
        assert_eq!(age_micros("101s (x3 over 106s)"), Some(101_000_000));
        assert_eq!(age_micros("3d4h"), Some((3 * 86_400 + 4 * 3600) * 1_000_000));
        assert_eq!(age_micros("2y"), Some(2 * 365 * 86_400 * 1_000_000));
        for bad in
            ["<unknown>", "<invalid>", "", "5", "m5", "99999999999999999999s", "cert-manager"]
        {
            assert_eq!(age_micros(bad), None, "{bad}");
        }
    }

    #[test]
    fn describe_and_get_rows_split_on_double_spaces() {
        let r = EventRow::parse("Warning  ErrUpdateACMEAccount  101s (x3 over 106s)  cert-manager  Failed to update:  400")
            .expect("row");
        assert_eq!(
            (r.reason, r.age, r.from),
            ("ErrUpdateACMEAccount", "101s (x3 over 106s)", Some("cert-manager"))
        );
        assert_eq!(r.message, "Failed to update:  400");
        let r = EventRow::parse("prod   2m10s   Normal   Issuing   certificate/web   The certificate has been successfully issued")
            .expect("row");
        assert_eq!(
            (r.namespace, r.object, r.age),
            (Some("prod"), Some("certificate/web"), "2m10s")
        );
        assert_eq!(EventRow::parse("Normal Issuing 18m cert-manager single spaces"), None);
        assert_eq!(EventRow::parse("Normal  Issuing  soon  cert-manager  bad age"), None);
    }

    #[test]
    fn event_rows_map_to_activities_with_derived_times() {
        let (out, batches) = run(
            &[
                "Normal  Requested  104s  cert-manager-certificates-request-manager  Created new CertificateRequest resource \"x-1\"",
                "Normal  Issuing    26m   cert-manager-certificates-issuing  The certificate has been successfully issued",
                "Warning  Failed  5s  cert-manager-certificates-issuing  The certificate request has failed to complete",
                "Normal  OrderCreated  18m   cert-manager  Created Order resource default/x-1-1",
                "Normal   Sync  28m  loadbalancer-controller  UrlMap updated",
                "Normal   CreateCertificate  28m  cert-manager-ingress-shim  Successfully created Certificate \"web-ssl\"",
            ],
            Some(DELIVERED),
        );
        assert_eq!(out.counts().rows_in(Table::CertEvents), 4);
        assert_eq!(out.counts().skipped_total(), 2);
        let b = &batches[0].1;
        let acts: Vec<String> = (0..4).filter_map(|i| s(b, "activity", i)).collect();
        assert_eq!(acts, ["requested", "issued", "issue_failed", "created"]);
        assert_eq!(t(b, 0), DELIVERED - 104_000_000);
        assert_eq!(t(b, 1), DELIVERED - 26 * 60_000_000);
        assert_eq!(s(b, "cert_id", 3).as_deref(), Some("web-ssl"));
        assert_eq!(s(b, "cert_id", 0), None);
        assert_eq!(s(b, "actor", 0).as_deref(), Some("cert-manager-certificates-request-manager"));
        assert_eq!(s(b, "event", 2).as_deref(), Some("Failed"));
        assert_eq!(out.counts().notes.get(NOTE_AGE), Some(&4));
    }

    #[test]
    fn without_a_delivery_time_event_rows_are_quarantined() {
        let (out, batches) =
            run(&["Normal  Issued  5s  cert-manager  Certificate issued successfully"], None);
        assert_eq!(out.counts().quarantined.get("missing_field"), Some(&1));
        assert!(s(&batches[0].1, "detail", 0).expect("detail").starts_with("age"));
    }

    #[test]
    fn klog_years_come_from_the_message_or_the_delivery_time() {
        let (out, batches) = run(
            &[
                r#"I0113 16:51:59.186482       1 conditions.go:261] Setting lastTransitionTime for CertificateRequest "istio-csr-8ddcs" condition "Approved" to 2022-01-13 16:51:59.186455713 +0000 UTC m=+3507.098466775"#,
                "I1025 21:54:02.869269       1 sync.go:206] Certificate my-cert scheduled for renewal in 292 hours",
                "I1231 23:00:00.000000       1 sync.go:206] Certificate old-cert scheduled for renewal in 1 hours",
                r#"E0425 09:04:01.520150       1 leaderelection.go:334] error initially creating leader election record"#,
            ],
            Some(DELIVERED),
        );
        assert_eq!(out.counts().rows_in(Table::CertEvents), 3);
        let b = &batches[0].1;
        assert_eq!(t(b, 0), 1_642_092_719_186_482, "2022-01-13T16:51:59.186482Z");
        assert_eq!(s(b, "activity", 0).as_deref(), Some("approved"));
        assert_eq!(s(b, "cert_id", 0).as_deref(), Some("istio-csr-8ddcs"));
        assert_eq!(t(b, 1), 1_698_270_842_869_269, "2023-10-25T21:54:02.869269Z");
        assert_eq!(t(b, 2), 1_672_527_600_000_000, "a December line read in November: last year");
        assert_eq!(s(b, "activity", 1).as_deref(), Some("renewal_scheduled"));
        assert_eq!(out.counts().notes.get(NOTE_YEAR_MESSAGE), Some(&1));
        let (out, _) = run(
            &[
                "I1025 21:54:02.869269 1 sync.go:206] Certificate c scheduled for renewal in 1 hours",
            ],
            None,
        );
        assert_eq!(out.counts().quarantined.get("missing_field"), Some(&1));
    }

    #[test]
    fn sniff_claims_events_and_klog_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= 90);
        assert!(sniff(b"I0719 15:21:28.113411       1 dynamic_source.go:172] \"x\"") >= 90);
        assert!(sniff(b"  Type    Reason     Age   From          Message") >= 90);
        assert!(
            sniff(b"Normal  Started    19s   cert-manager  Challenge scheduled for processing")
                > 60
        );
        assert_eq!(sniff(b"2 123 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1 2 ACCEPT OK"), 0);
        assert_eq!(sniff(b"{\"kind\":\"Event\"}"), 0);
        assert_eq!(sniff(b"#fields\tts\tuid"), 0);
    }
}
