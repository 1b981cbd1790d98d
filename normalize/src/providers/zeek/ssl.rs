//! Zeek `ssl.log` (`zeek-ssl`) → `flows`: one row per TLS/DTLS connection the sensor saw.
//!
//! Read by [`super::log::ZeekParser`] (headers, escapes, layout by column name). Mapping:
//! - `ts` → `time` (epoch seconds; btest's masked `XXXXXXXXXX.XXXXXX` → `bad_time`);
//! - `id.orig_h`/`id.orig_p` → `src`, `id.resp_h`/`id.resp_p` → `dst`; `protocol` 6, or 17
//!   for DTLS versions;
//! - `version` → `tls_version`, spelled like OpenSSL/Envoy (`TLSv10` → `TLSv1.0`, `TLSv13` →
//!   `TLSv1.3`, `DTLSv12` → `DTLSv1.2`; unknown spellings kept as written);
//! - `validation_status` (policy `validate-certs`) other than `ok` → `tls_error` (OpenSSL text,
//!   e.g. `unable to get local issuer certificate`); else, for a handshake that was not
//!   established, the `last_alert` (e.g. `handshake_failure`);
//! - `peer_identity` = `server_name` only when the record proves it: the chain validated
//!   (`validation_status` = `ok`) and the certificate matches the SNI (`sni_matches_cert` = `T`);
//! - `encrypted` = true when the handshake was `established`, else NULL.
//!
//! Zeek is a passive sensor: `action`, `direction` and `bytes` are NULL. `uid`, `cipher`,
//! `curve`, `server_name`, certificate fingerprints and the other columns are counted as
//! unmapped.

use std::borrow::Cow;

use super::log::{self, Column, Kind, Line, ZeekParser, mapped, read};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::output::{Output, Record};
use crate::rows::FlowRow;
use crate::schema::{Provider, Table};
use crate::values::{canonical_ip, parse_port};

/// Format name.
pub const NAME: &str = "zeek-ssl";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Zeek,
    tables: &[Table::Flows],
    framing: Framing::Lines,
    description: "Zeek ssl.log (TSV with #fields headers): TLS connections with version and validation status (the reader follows #path: x509, notice and ocsp lines are labelled with their own zeek-* format)",
    example: "1334102677.000000\tCHhAvVGS1DHFjwGM9\t192.168.1.105\t62045\t74.125.224.79\t443\tTLSv12\t-\t-\texample.org\tF\t-\t-\tT",
    sniff,
    new_parser,
};

fn sniff(record: &[u8]) -> u8 {
    log::sniff(record, "ssl")
}

fn new_parser(_: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(ZeekParser::new(Kind::Ssl)))
}

const TS: usize = 0;
const ORIG_H: usize = 1;
const ORIG_P: usize = 2;
const RESP_H: usize = 3;
const RESP_P: usize = 4;
const VERSION: usize = 5;
const SERVER_NAME: usize = 6;
const ESTABLISHED: usize = 7;
const LAST_ALERT: usize = 8;
const VALIDATION: usize = 9;
const SNI_MATCHES: usize = 10;

/// The columns read, in the order of the constants above.
pub(crate) const COLUMNS: &[Column] = &[
    mapped("ts"),
    mapped("id.orig_h"),
    mapped("id.orig_p"),
    mapped("id.resp_h"),
    mapped("id.resp_p"),
    mapped("version"),
    read("server_name"),
    mapped("established"),
    mapped("last_alert"),
    mapped("validation_status"),
    read("sni_matches_cert"),
];

/// Canonical spelling of a Zeek TLS version.
fn tls_version(v: &str) -> &str {
    match v {
        "TLSv10" => "TLSv1.0",
        "TLSv11" => "TLSv1.1",
        "TLSv12" => "TLSv1.2",
        "TLSv13" => "TLSv1.3",
        "DTLSv10" => "DTLSv1.0",
        "DTLSv12" => "DTLSv1.2",
        "DTLSv13" => "DTLSv1.3",
        other => other,
    }
}

/// Map one data line; returns whether a row was appended.
pub(crate) fn emit(
    line: &Line<'_, '_>,
    record: &Record<'_>,
    out: &mut Output,
    scratch: &mut [String; 2],
) -> bool {
    match row(line, scratch) {
        Ok(row) => {
            out.flow(record, &row);
            true
        }
        Err((reason, detail)) => {
            out.quarantine(record, reason, &detail);
            false
        }
    }
}

fn row<'a>(
    line: &Line<'a, '_>,
    scratch: &'a mut [String; 2],
) -> Result<FlowRow<'a>, crate::json::Rejection> {
    let time = log::time(line, TS, "ts")?;
    let [s_src, s_dst] = scratch;
    let ip = |c: usize, name: &str, buf: &'a mut String| match line.raw(c) {
        None => Ok(None),
        Some(v) => {
            canonical_ip(v, buf).map(|ip| Some(Cow::Borrowed(ip))).ok_or_else(|| log::bad(name, v))
        }
    };
    let port = |c: usize, name: &str| match line.raw(c) {
        None => Ok(None),
        Some(v) => parse_port(v.as_bytes()).map(Some).ok_or_else(|| log::bad(name, v)),
    };
    let src_ip = ip(ORIG_H, "id.orig_h", s_src)?;
    let dst_ip = ip(RESP_H, "id.resp_h", s_dst)?;
    let src_port = port(ORIG_P, "id.orig_p")?;
    let dst_port = port(RESP_P, "id.resp_p")?;
    let version = line.raw(VERSION);
    let protocol = if version.is_some_and(|v| v.starts_with("DTLS")) { 17 } else { 6 };
    let established = line.raw(ESTABLISHED) == Some("T");
    let validation = line.text(VALIDATION);
    let tls_error = match validation.as_deref() {
        Some("ok") | None => {
            if established {
                None
            } else {
                line.text(LAST_ALERT)
            }
        }
        Some(_) => validation.clone(),
    };
    let verified = validation.as_deref() == Some("ok") && line.raw(SNI_MATCHES) == Some("T");
    let peer_identity = if verified { line.text(SERVER_NAME) } else { None };
    Ok(FlowRow {
        time,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        protocol: Some(protocol),
        tls_version: version.map(|v| Cow::Borrowed(tls_version(v))),
        peer_identity,
        tls_error,
        encrypted: established.then_some(true),
        ..FlowRow::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_spelled_like_openssl() {
        assert_eq!(tls_version("TLSv10"), "TLSv1.0");
        assert_eq!(tls_version("TLSv13"), "TLSv1.3");
        assert_eq!(tls_version("DTLSv12"), "DTLSv1.2");
        assert_eq!(tls_version("SSLv3"), "SSLv3");
        assert_eq!(tls_version("unknown-64282"), "unknown-64282");
    }
}
