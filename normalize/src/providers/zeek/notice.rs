//! Zeek `notice.log` (`zeek-notice`) → `cert_events`, for the certificate notices of Zeek's SSL
//! policy scripts; every other notice is skipped (recognized, no table).
//!
//! | note | activity | from `msg` |
//! |---|---|---|
//! | `SSL::Certificate_Expired` | `expired` | `Certificate <DN> expired at <T>` → subject, not_after |
//! | `SSL::Certificate_Expires_Soon` | `expiring` | `… is going to expire at <T>` → subject, not_after |
//! | `SSL::Certificate_Not_Valid_Yet` | `not_yet_valid` | `… isn't valid until <T>` → subject, not_before |
//! | `SSL::Invalid_Server_Cert` | `validation_failed` | `… failed with (<OpenSSL error>)` → reason; `sub` = subject |
//! | `SSL::Invalid_Ocsp_Response` | `validation_failed` | `msg` → reason |
//! | `SSL::Weak_Key` | `weak_key` | `msg` → reason |
//!
//! Quirk: the certificate dates exist only inside the message text, formatted by Zeek's `%T`
//! as `2014-03-04-23:59:59.000000000` (UTC); DNs carry Zeek-escaped RFC 4514 escapes (`\\,`).
//! A message in another wording keeps the row (the notice is the event) with the message as
//! `reason` and a note. `ts` → `time`; `fuid` (Zeek's file id of the certificate, the `id` of
//! older x509.log) → `cert_id`; `id.resp_h` (else `dst`), the server that presented the
//! certificate → `workload`; the note name → `event`; `service` = `notice`.

use std::borrow::Cow;

use super::log::{self, Column, Kind, Line, ZeekParser, mapped, read};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::output::{Output, Record};
use crate::rows::CertEventRow;
use crate::schema::{Provider, Table};
use crate::values::{canonical_ip, checked_micros};

/// Format name.
pub const NAME: &str = "zeek-notice";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Zeek,
    tables: &[Table::CertEvents],
    framing: Framing::Lines,
    description: "Zeek notice.log (TSV with #fields headers): SSL certificate notices (expired, expiring, not yet valid, validation failed, weak key); other notices skipped",
    example: "1394000000.000000\tCHhAvVGS1DHFjwGM9\t192.168.4.149\t60539\t87.98.220.10\t443\tFDiucV3BOTYQ5gNgwb\t-\t-\ttcp\tSSL::Certificate_Expired\tCertificate CN=www.spidh.org expired at 2014-03-04-23:59:59.000000000",
    sniff,
    new_parser,
};

fn sniff(record: &[u8]) -> u8 {
    log::sniff(record, "notice")
}

fn new_parser(_: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(ZeekParser::new(Kind::Notice)))
}

const TS: usize = 0;
const RESP_H: usize = 1;
const FUID: usize = 2;
const NOTE: usize = 3;
const MSG: usize = 4;
const SUB: usize = 5;
const DST: usize = 6;

/// The columns read, in the order of the constants above.
pub(crate) const COLUMNS: &[Column] = &[
    mapped("ts"),
    mapped("id.resp_h"),
    mapped("fuid"),
    mapped("note"),
    mapped("msg"),
    read("sub"),
    read("dst"),
];

/// Which validity bound a notice's message states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    NotAfter,
    NotBefore,
    None,
}

fn activity_of(note: &str) -> Option<(&'static str, Bound)> {
    Some(match note {
        "SSL::Certificate_Expired" => ("expired", Bound::NotAfter),
        "SSL::Certificate_Expires_Soon" => ("expiring", Bound::NotAfter),
        "SSL::Certificate_Not_Valid_Yet" => ("not_yet_valid", Bound::NotBefore),
        "SSL::Invalid_Server_Cert" | "SSL::Invalid_Ocsp_Response" => {
            ("validation_failed", Bound::None)
        }
        "SSL::Weak_Key" => ("weak_key", Bound::None),
        _ => return None,
    })
}

/// Zeek's `%T` time format: `2014-03-04-23:59:59.000000000`, UTC.
fn parse_zeek_t(s: &str) -> Option<i64> {
    let dt = chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d-%H:%M:%S%.f").ok()?;
    checked_micros(dt.and_utc().timestamp_micros())
}

/// Subject and date of `Certificate <DN> expired at <T>` and its siblings.
fn subject_and_date(msg: &str) -> Option<(&str, i64)> {
    let rest = msg.strip_prefix("Certificate ")?;
    for marker in [" expired at ", " is going to expire at ", " isn't valid until "] {
        if let Some((subject, date)) = rest.rsplit_once(marker) {
            return Some((subject, parse_zeek_t(date)?));
        }
    }
    None
}

/// The OpenSSL error inside `SSL certificate validation failed with (…)`.
fn parenthesized(msg: &str) -> Option<&str> {
    let (_, rest) = msg.split_once('(')?;
    rest.strip_suffix(')')
}

/// Map one data line; returns whether a row was appended.
pub(crate) fn emit(
    line: &Line<'_, '_>,
    record: &Record<'_>,
    out: &mut Output,
    scratch: &mut [String; 2],
) -> bool {
    let Some(note) = line.raw(NOTE) else {
        out.skip("zeek-notice: notice without a note");
        return false;
    };
    let Some((activity, bound)) = activity_of(note) else {
        out.skip("zeek-notice: not a certificate notice");
        return false;
    };
    let time = match log::time(line, TS, "ts") {
        Ok(t) => t,
        Err((reason, detail)) => {
            out.quarantine(record, reason, &detail);
            return false;
        }
    };
    let [s_ip, _] = scratch;
    let server = line.raw(RESP_H).or_else(|| line.raw(DST));
    let workload = match server {
        None => None,
        Some(v) => match canonical_ip(v, s_ip) {
            Some(ip) => Some(Cow::Borrowed(ip)),
            None => {
                let (reason, detail) = log::bad("id.resp_h", v);
                out.quarantine(record, reason, &detail);
                return false;
            }
        },
    };
    let msg = line.text(MSG);
    let mut row = CertEventRow {
        time,
        service: Some(Cow::Borrowed("notice")),
        activity: Some(Cow::Borrowed(activity)),
        cert_id: line.text(FUID),
        workload,
        event: Some(Cow::Borrowed(note)),
        ..CertEventRow::default()
    };
    let parsed = match (&msg, bound) {
        (Some(m), Bound::NotAfter | Bound::NotBefore) => match subject_and_date(m) {
            Some((subject, date)) => {
                if bound == Bound::NotAfter {
                    row.not_after = Some(date);
                } else {
                    row.not_before = Some(date);
                }
                row.subject = Some(Cow::Owned(subject.to_owned()));
                true
            }
            None => false,
        },
        (Some(m), Bound::None) => {
            row.subject = line.text(SUB);
            row.reason = Some(Cow::Owned(parenthesized(m).unwrap_or(m).to_owned()));
            true
        }
        (None, _) => false,
    };
    if !parsed {
        row.reason = msg.clone();
        out.note("zeek-notice: certificate subject or date not found in msg");
    }
    out.cert_event(record, &row);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_subjects_come_out_of_the_message() {
        let (subject, t) =
            subject_and_date("Certificate CN=a,O=B\\,C expired at 2014-03-04-23:59:59.000000000")
                .expect("parsed");
        assert_eq!(subject, "CN=a,O=B\\,C");
        assert_eq!(t, 1_393_977_599_000_000);
        let (_, t) = subject_and_date(
            "Certificate CN=x is going to expire at 2014-03-14-23:59:59.500000000",
        )
        .expect("parsed");
        assert_eq!(t, 1_394_841_599_500_000);
        assert!(subject_and_date("Certificate CN=x expired at yesterday").is_none());
        assert!(subject_and_date("Something else").is_none());
        assert_eq!(
            parenthesized(
                "SSL certificate validation failed with (unable to get local issuer certificate)"
            ),
            Some("unable to get local issuer certificate")
        );
    }
}
