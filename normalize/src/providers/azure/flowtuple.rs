//! Bare Azure flow tuples, one CSV line each: NSG v1 (8 fields), NSG v2 and VNet v4 (13 fields,
//! told apart by the protocol field: `T`/`U` for NSG, the IANA number for VNet).
//!
//! This is the shape of Microsoft's "log tuple and bandwidth calculation" examples and of
//! pipelines that flatten `flowTuples` to lines. Quirks tolerated: the VNet example writes
//! 10-digit SECONDS instead of milliseconds (read by magnitude, with a note) and its B tuple is
//! later in time than the C/E tuples of the same flow (`time`/`end_time` are the earliest and
//! latest tuple, with a note).
//!
//! Row model (as in `tuples`): one row per flow. Because lines are separate records, this
//! parser keeps the open flows of the source (keyed by 5-tuple and direction) across lines:
//! B and C lines are skipped with the reason "summed into its flow's row", the E line emits
//! the summed row; denied and v1 tuples are rows of their own; flows still open when the source
//! ends are emitted then, attached to the last line read (with a note). At most
//! [`MAX_OPEN_FLOWS`] flows are kept open; beyond that they are all emitted early (with a
//! note), so hostile input cannot grow memory without bound. Rows carry no resource, account or
//! rule: bare tuples do not say which NIC or rule they belong to.

use std::collections::HashMap;

use super::tuples::{self, Base, FlowAcc, FlowKey, Shape};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::schema::{Provider, Table};

/// Format name.
pub const NAME: &str = "azure-flowtuple";

/// Most flows kept open across lines.
pub const MAX_OPEN_FLOWS: usize = 65_536;

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Azure,
    tables: &[Table::Flows],
    framing: Framing::Lines,
    description: "Azure NSG (v1/v2) and VNet (v4) flow tuples as bare CSV lines; counters summed per flow across lines",
    example: "1708978215,203.0.113.105,10.0.0.5,35370,443,T,I,A,C,1021,588096,8005,4610880",
    sniff,
    new_parser,
};

const SUMMED: &str = "azure-flowtuple: tuple summed into its flow's row";
const OUT_OF_ORDER: &str = "azure-flowtuple: tuple times out of order within a flow";
const AT_END: &str = "azure-flowtuple: flow without an end tuple, emitted at the end of the source";
const OVERFLOW: &str = "azure-flowtuple: too many open flows, emitted before their end tuple";
const SECONDS: &str =
    "azure-flowtuple: VNet tuple time in epoch seconds (VNet tuples use milliseconds)";

/// Confidence that a line is a flow tuple: 8 or 13 comma-separated fields, no spaces, an epoch
/// number first, addresses next, `I`/`O` as the direction.
fn sniff(record: &[u8]) -> u8 {
    if record.len() > 256 || !record.first().is_some_and(u8::is_ascii_digit) {
        return 0;
    }
    let mut fields = record.split(|&b| b == b',');
    let mut count = 0usize;
    let mut ok = true;
    for (i, field) in fields.by_ref().enumerate() {
        count += 1;
        ok &= match i {
            0 => (9..=13).contains(&field.len()) && field.iter().all(u8::is_ascii_digit),
            1 | 2 => {
                !field.is_empty()
                    && field.iter().all(|b| b.is_ascii_hexdigit() || *b == b'.' || *b == b':')
            }
            3 | 4 => field.iter().all(u8::is_ascii_digit),
            6 => field == b"I" || field == b"O",
            _ => field.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_'),
        };
        if !ok {
            return 0;
        }
    }
    if count == 8 || count == 13 { 90 } else { 0 }
}

fn new_parser(_options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(FlowTupleParser::default()))
}

/// Parser state for one source: the flows still open, in order of their first tuple.
#[derive(Debug, Default)]
struct FlowTupleParser {
    open: HashMap<FlowKey<'static>, (u64, FlowAcc<'static>)>,
    seq: u64,
    last_line: Option<u64>,
}

impl FlowTupleParser {
    /// Emit every open flow, in order of first tuple, as rows of `record`.
    fn flush(&mut self, record: &Record<'_>, out: &mut Output, note: &str) {
        let mut flows: Vec<(u64, FlowAcc<'static>)> = self.open.drain().map(|(_, v)| v).collect();
        flows.sort_by_key(|(seq, _)| *seq);
        for (_, acc) in flows {
            out.note(note);
            emit(record, out, acc);
        }
    }
}

fn emit(record: &Record<'_>, out: &mut Output, acc: FlowAcc<'_>) {
    if acc.out_of_order {
        out.note(OUT_OF_ORDER);
    }
    out.flow(record, &acc.into_row());
}

impl Parser for FlowTupleParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        self.last_line = Some(record.line);
        let Ok(text) = std::str::from_utf8(record.bytes) else {
            out.quarantine(record, Reason::InvalidUtf8, "flow tuple line is not valid UTF-8");
            return;
        };
        let text = text.trim();
        if text.is_empty() {
            out.skip("azure-flowtuple: blank line");
            return;
        }
        let t = match tuples::parse(text, Shape::Any) {
            Ok(t) => t,
            Err((reason, detail)) => {
                out.quarantine(record, reason, &detail);
                return;
            }
        };
        if t.vnet_seconds {
            out.note(SECONDS);
        }
        if t.standalone() {
            emit(record, out, FlowAcc::new(t, &Base::default()));
            return;
        }
        let key = FlowKey::of("", &t).into_static();
        if let Some((_, acc)) = self.open.get_mut(&key) {
            acc.add(&t);
            if acc.closed {
                if let Some((_, acc)) = self.open.remove(&key) {
                    emit(record, out, acc);
                }
            } else {
                out.skip(SUMMED);
            }
            return;
        }
        let acc = FlowAcc::new(t, &Base::default());
        if acc.closed {
            // An end tuple whose earlier tuples are not in this source.
            emit(record, out, acc);
            return;
        }
        if self.open.len() >= MAX_OPEN_FLOWS {
            self.flush(record, out, OVERFLOW);
        }
        self.seq += 1;
        self.open.insert(key, (self.seq, acc.into_static()));
        out.skip(SUMMED);
    }

    fn finish(&mut self, out: &mut Output) {
        if let Some(line) = self.last_line {
            self.flush(&Record { line, bytes: b"" }, out, AT_END);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SNIFF_THRESHOLD;
    use crate::golden::normalize_bytes;
    use serde_json::Value;

    fn run(text: &str) -> Vec<serde_json::Map<String, Value>> {
        normalize_bytes("t.csv", text.as_bytes(), NAME, &ParseOptions::default(), None)
    }

    #[test]
    fn nsg_bandwidth_example_sums_to_one_flow() {
        let rows = run("1708978215,203.0.113.105,10.0.0.5,35370,443,T,I,A,B,,,,\n\
             1708978215,203.0.113.105,10.0.0.5,35370,443,T,I,A,C,1021,588096,8005,4610880\n\
             1708978215,203.0.113.105,10.0.0.5,35370,443,T,I,A,E,52,29952,47,27072\n");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["bytes"], Value::from(588_096 + 4_610_880 + 29_952 + 27_072));
        assert_eq!(rows[0]["packets"], Value::from(1021 + 8005 + 52 + 47));
        assert_eq!(rows[0]["source"], "t.csv:3");
    }

    #[test]
    fn open_flows_are_emitted_at_the_end_and_bad_lines_quarantined() {
        let rows = run("1708978215,203.0.113.105,10.0.0.5,35370,443,T,I,A,B,,,,\n\
             1708978216,203.0.113.105,10.0.0.5,35370,443,T,I,A,C,1,10,1,10\n\
             not,a,tuple\n\
             1708978217,203.0.113.9,10.0.0.5,1,22,T,I,D\n");
        let tables: Vec<&str> = rows.iter().filter_map(|r| r["table"].as_str()).collect();
        assert_eq!(tables, ["flows", "flows", "quarantine"]);
        assert_eq!(rows[0]["action"], "deny");
        assert_eq!(rows[0]["source"], "t.csv:4");
        assert_eq!(rows[1]["bytes"], Value::from(20));
        assert_eq!(rows[1]["end_time"], "2024-02-26T20:10:16Z");
        assert_eq!(rows[1]["source"], "t.csv:4#1", "attached to the last line read");
    }

    #[test]
    fn sniff_claims_tuples_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= SNIFF_THRESHOLD);
        assert!(sniff(b"1487282421,192.0.2.95,10.1.0.4,51529,5358,T,I,D") >= SNIFF_THRESHOLD);
        assert!(
            sniff(b"1493763938,185.170.185.105,10.2.0.4,35370,23,6,I,B,NX,,,,") >= SNIFF_THRESHOLD
        );
        for other in [
            &b"2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK"[..],
            b"1418530010,hello,world,1,2,3,4,5",
            b"{\"a\":1}",
            b"1300000000.000000\tCHhAvVGS1DHFjwGM9\t10.0.0.1",
            b"",
        ] {
            assert_eq!(sniff(other), 0, "{}", String::from_utf8_lossy(other));
        }
    }
}
