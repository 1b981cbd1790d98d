//! Zeek `x509.log` (`zeek-x509`) → `cert_events`: one row per certificate seen on the wire,
//! activity `presented`.
//!
//! Read by [`super::log::ZeekParser`]. Mapping: `ts` → `time`; `fingerprint` (Zeek ≥ 4; older
//! logs: the file id `id`) → `cert_id`; `certificate.serial` → `serial` (lower-case hex);
//! `certificate.subject` / `certificate.issuer` → `subject` / `issuer` (RFC 4514 DNs, Zeek's
//! `\\` escapes undone so `Co.\,Ltd.` keeps its DN escape); `certificate.not_valid_before` /
//! `not_valid_after` (epoch float seconds) → `not_before` / `not_after`; the SANs (`san.dns`,
//! then `san.uri`, `san.email`, `san.ip`, set-separator split) → `sans`; the key →
//! `key_algorithm` as `RSA_2048` / `DSA_1024` / `EC_prime256v1` from `certificate.key_type`,
//! `key_length` and `curve`, else `certificate.key_alg` as written. `service` = `x509`.
//!
//! A masked or missing `ts` is quarantined (`bad_time` / `missing_field`), an unreadable
//! validity time `bad_field`. `certificate.version`, `sig_alg`, `exponent`,
//! `basic_constraints.*`, `host_cert`, `client_cert` are counted as unmapped.

use std::borrow::Cow;

use super::log::{self, Column, Kind, Line, ZeekParser, mapped};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::output::{Output, Record};
use crate::rows::CertEventRow;
use crate::schema::{Provider, Table};

/// Format name.
pub const NAME: &str = "zeek-x509";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Zeek,
    tables: &[Table::CertEvents],
    framing: Framing::Lines,
    description: "Zeek x509.log (TSV with #fields headers): certificates seen on the wire (activity presented); reads any Zeek log",
    example: "1334102677.000000\ta580247a25324adf4add5af648de4ac5798030dfd622f26a5f2280d7528ae244\t3\t36F5DA5300000000505E\tCN=*.gstatic.com,O=Google Inc,C=US\tCN=Google Internet Authority,O=Google Inc,C=US\t1334102677.000000\t1365639277.000000\trsaEncryption\tsha1WithRSAEncryption\trsa\t1024",
    sniff,
    new_parser,
};

fn sniff(record: &[u8]) -> u8 {
    log::sniff(record, "x509")
}

fn new_parser(_: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(ZeekParser::new(Kind::X509)))
}

const TS: usize = 0;
const FINGERPRINT: usize = 1;
const ID: usize = 2;
const SERIAL: usize = 3;
const SUBJECT: usize = 4;
const ISSUER: usize = 5;
const NOT_BEFORE: usize = 6;
const NOT_AFTER: usize = 7;
const KEY_ALG: usize = 8;
const KEY_TYPE: usize = 9;
const KEY_LENGTH: usize = 10;
const CURVE: usize = 11;
const SAN_DNS: usize = 12;
const SAN_URI: usize = 13;
const SAN_EMAIL: usize = 14;
const SAN_IP: usize = 15;

/// The columns read, in the order of the constants above.
pub(crate) const COLUMNS: &[Column] = &[
    mapped("ts"),
    mapped("fingerprint"),
    mapped("id"),
    mapped("certificate.serial"),
    mapped("certificate.subject"),
    mapped("certificate.issuer"),
    mapped("certificate.not_valid_before"),
    mapped("certificate.not_valid_after"),
    mapped("certificate.key_alg"),
    mapped("certificate.key_type"),
    mapped("certificate.key_length"),
    mapped("certificate.curve"),
    mapped("san.dns"),
    mapped("san.uri"),
    mapped("san.email"),
    mapped("san.ip"),
];

/// `RSA_2048`, `EC_prime256v1`, … from Zeek's key columns.
fn key_algorithm<'a>(line: &Line<'a, '_>) -> Option<Cow<'a, str>> {
    let length = line.raw(KEY_LENGTH).filter(|l| l.bytes().all(|b| b.is_ascii_digit()));
    match (line.raw(KEY_TYPE), length, line.raw(CURVE)) {
        (Some("rsa"), Some(len), _) => Some(Cow::Owned(format!("RSA_{len}"))),
        (Some("dsa"), Some(len), _) => Some(Cow::Owned(format!("DSA_{len}"))),
        (Some("ecdsa" | "ec"), _, Some(curve)) => Some(Cow::Owned(format!("EC_{curve}"))),
        _ => line.text(KEY_ALG),
    }
}

/// Map one data line; returns whether a row was appended.
pub(crate) fn emit(line: &Line<'_, '_>, record: &Record<'_>, out: &mut Output) -> bool {
    match row(line) {
        Ok(row) => {
            out.cert_event(record, &row);
            true
        }
        Err((reason, detail)) => {
            out.quarantine(record, reason, &detail);
            false
        }
    }
}

fn row<'a>(line: &Line<'a, '_>) -> Result<CertEventRow<'a>, crate::json::Rejection> {
    let time = log::time(line, TS, "ts")?;
    let not_before = log::opt_time(line, NOT_BEFORE, "certificate.not_valid_before")?;
    let not_after = log::opt_time(line, NOT_AFTER, "certificate.not_valid_after")?;
    let mut sans: Option<Vec<Cow<'a, str>>> = None;
    for c in [SAN_DNS, SAN_URI, SAN_EMAIL, SAN_IP] {
        if let Some(items) = line.list(c) {
            sans.get_or_insert_with(Vec::new).extend(items);
        }
    }
    Ok(CertEventRow {
        time,
        service: Some(Cow::Borrowed("x509")),
        activity: Some(Cow::Borrowed("presented")),
        cert_id: line.text(FINGERPRINT).or_else(|| line.text(ID)),
        serial: line.raw(SERIAL).map(log::serial),
        subject: line.text(SUBJECT),
        sans,
        issuer: line.text(ISSUER),
        not_before,
        not_after,
        key_algorithm: key_algorithm(line),
        ..CertEventRow::default()
    })
}
