//! Zeek `ocsp.log` (`zeek-ocsp`) → `cert_events`: one row per OCSP certificate status seen in
//! a response.
//!
//! Read by [`super::log::ZeekParser`]. `certStatus` `revoked` → activity `revoked` with
//! `revokereason` (`keyCompromise`, `superseded`, …) as `reason`; `good` / `unknown` → activity
//! `ocsp_checked` with the status as `reason`. `ts` → `time` (when the response was seen; a
//! masked btest `XXXXXXXXXX.XXXXXX` is `bad_time`); `serialNumber` → `serial` (lower-case
//! hex); `service` = `ocsp`. The response's file `id`, the issuer name/key hashes (hashes, not
//! names), `revoketime`, `thisUpdate` and `nextUpdate` map to no column and are counted as
//! unmapped (`revoketime` is a schema-change proposal: a `revoked_at` column).

use std::borrow::Cow;

use super::log::{self, Column, Kind, Line, ZeekParser, mapped};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::output::{Output, Record};
use crate::rows::CertEventRow;
use crate::schema::{Provider, Table};

/// Format name.
pub const NAME: &str = "zeek-ocsp";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Zeek,
    tables: &[Table::CertEvents],
    framing: Framing::Lines,
    description: "Zeek ocsp.log (TSV with #fields headers): OCSP certificate status (revoked with reason, good, unknown)",
    example: "1436286600.000000\tFv1Mrl4zObGy9drLdg\tsha1\t74241467069FF5E0983F5E3E1A6BA0652A541575\t0159ABE7DD3A0B59A66463D6CF200757D591E76A\t010BF45E184C4169AB61B41168DF802E\trevoked\t1431615529.000000\tsuperseded\t1436286514.000000\t1443489162.000000",
    sniff,
    new_parser,
};

fn sniff(record: &[u8]) -> u8 {
    log::sniff(record, "ocsp")
}

fn new_parser(_: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(ZeekParser::new(Kind::Ocsp)))
}

const TS: usize = 0;
const SERIAL: usize = 1;
const STATUS: usize = 2;
const REVOKE_REASON: usize = 3;

/// The columns read, in the order of the constants above.
pub(crate) const COLUMNS: &[Column] =
    &[mapped("ts"), mapped("serialNumber"), mapped("certStatus"), mapped("revokereason")];

/// Map one data line; returns whether a row was appended.
pub(crate) fn emit(line: &Line<'_, '_>, record: &Record<'_>, out: &mut Output) -> bool {
    let time = match log::time(line, TS, "ts") {
        Ok(t) => t,
        Err((reason, detail)) => {
            out.quarantine(record, reason, &detail);
            return false;
        }
    };
    let status = line.text(STATUS);
    let (activity, reason) = match status.as_deref() {
        Some("revoked") => ("revoked", line.text(REVOKE_REASON)),
        Some(_) => ("ocsp_checked", status),
        None => {
            out.quarantine(record, crate::quarantine::Reason::MissingField, "certStatus: unset");
            return false;
        }
    };
    let row = CertEventRow {
        time,
        service: Some(Cow::Borrowed("ocsp")),
        activity: Some(Cow::Borrowed(activity)),
        serial: line.raw(SERIAL).map(log::serial),
        reason,
        ..CertEventRow::default()
    };
    out.cert_event(record, &row);
    true
}
