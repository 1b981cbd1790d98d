//! Azure flow tuples (the CSV strings inside NSG and VNet flow logs) and the per-flow summing
//! of their counters, shared by `azure-nsgflow`, `azure-vnetflow` and `azure-flowtuple`.
//!
//! Tuple shapes, told apart by field count and by the type of the protocol field:
//! - NSG v1, 8 fields: `ts,src,dst,sport,dport,T|U,I|O,A|D`;
//! - NSG v2, 13 fields: v1 + `state B|C|E` + packets/bytes src→dst + packets/bytes dst→src;
//!   Begin tuples have empty counters (`B,,,,`);
//! - VNet v4, 13 fields: `ts,src,dst,sport,dport,<IANA number>,I|O,B|C|E|D,X|NX|NX_*` + the four
//!   counters; D means denied (counters 0).
//!
//! Timestamps are epoch seconds (NSG) or milliseconds (VNet) and are read by magnitude, so the
//! VNet documentation's 10-digit example is accepted (with a note).
//!
//! **Row model: one row per flow.** Counters of C and E tuples are deltas since the previous
//! tuple of the flow, so the tuples of an allowed flow (same reporting NIC, 5-tuple and
//! direction) are merged into one row: `time` = earliest tuple, `end_time` = latest tuple (NULL
//! for a flow seen in one B tuple), `bytes`/`packets` = sum of the deltas of both directions
//! (NULL when no tuple carried counters: Begin-only flows). An E tuple closes the flow; a later
//! B with the same 5-tuple starts a new one. Denied tuples (NSG action D, VNet state D) and v1
//! tuples (no state) are rows of their own, with NULL counters (Azure writes empty or `0`
//! placeholders there). Because a row only ever carries deltas, summing `bytes` over rows stays
//! correct when a long flow is split across blobs or hours.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::{FlowRow, Text};
use crate::values::{
    MICROS_PER_SEC, canonical_ip, checked_micros, is_canonical_ipv4, parse_count, parse_port,
    parse_protocol,
};

/// Why a tuple was rejected.
pub(crate) type Rejection = (Reason, String);

/// Which tuple shapes a caller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// NSG flow log tuples (v1 or v2).
    Nsg,
    /// VNet flow log tuples (v4).
    VNet,
    /// Any of them, told apart by field count and protocol type (bare tuple lines).
    Any,
}

/// Flow state of a v2/v4 tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// B: the flow was created.
    Begin,
    /// C: the flow continues (counters since the previous tuple).
    Continue,
    /// E: the flow ended (counters since the previous tuple).
    End,
    /// D: the flow was denied (VNet).
    Denied,
}

/// One decoded tuple.
#[derive(Debug, Clone)]
pub(crate) struct Tuple<'a> {
    /// Source address as written (flow key).
    pub(crate) raw_src: &'a str,
    /// Destination address as written (flow key).
    pub(crate) raw_dst: &'a str,
    /// Tuple time, UTC microseconds.
    pub(crate) time: i64,
    pub(crate) src_ip: Cow<'a, str>,
    pub(crate) dst_ip: Cow<'a, str>,
    pub(crate) src_port: Option<i32>,
    pub(crate) dst_port: Option<i32>,
    pub(crate) protocol: i32,
    pub(crate) inbound: bool,
    pub(crate) allow: bool,
    /// None for v1 tuples.
    pub(crate) state: Option<State>,
    /// VNet encryption flag (X / NX*).
    pub(crate) encrypted: Option<bool>,
    /// Packets of both directions, when the tuple carries counters.
    pub(crate) packets: Option<i64>,
    /// Bytes of both directions, when the tuple carries counters.
    pub(crate) bytes: Option<i64>,
    /// A VNet tuple whose time was written in seconds instead of milliseconds.
    pub(crate) vnet_seconds: bool,
}

impl Tuple<'_> {
    /// Whether the tuple is a flow of its own (v1, denied), never merged with others.
    pub(crate) fn standalone(&self) -> bool {
        !self.allow || matches!(self.state, None | Some(State::Denied))
    }
}

fn bad(field: &str, value: &str) -> Rejection {
    let shown: String = value.chars().take(64).collect();
    (Reason::BadField, format!("flowTuples: {field}: invalid value {shown:?}"))
}

/// Tuple time by magnitude: ≤ 11 digits are seconds, 12–14 milliseconds.
fn tuple_time(v: &str) -> Result<(i64, bool), Rejection> {
    let err = || {
        let shown: String = v.chars().take(32).collect();
        (
            Reason::BadTime,
            format!("flowTuples: time: {shown:?} is not epoch seconds or milliseconds in range"),
        )
    };
    if v.is_empty() {
        return Err((Reason::MissingField, "flowTuples: time: empty".to_owned()));
    }
    let n = parse_count(v.as_bytes()).ok_or_else(err)?;
    let (micros, seconds) = match v.len() {
        1..=11 => (n.checked_mul(MICROS_PER_SEC), true),
        12..=14 => (n.checked_mul(1_000), false),
        _ => (None, false),
    };
    micros.and_then(checked_micros).map(|m| (m, seconds)).ok_or_else(err)
}

fn counter(field: &str, v: &str) -> Result<Option<i64>, Rejection> {
    if v.is_empty() {
        return Ok(None);
    }
    parse_count(v.as_bytes()).map(Some).ok_or_else(|| bad(field, v))
}

fn add(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}

/// Canonical text of an address field: IPv4 borrowed as written, IPv6 compressed.
fn ip<'a>(name: &str, v: &'a str) -> Result<Cow<'a, str>, Rejection> {
    if is_canonical_ipv4(v.as_bytes()) {
        return Ok(Cow::Borrowed(v));
    }
    let mut scratch = String::new();
    match canonical_ip(v, &mut scratch) {
        Some(s) => Ok(Cow::Owned(s.to_owned())),
        None => Err(bad(name, v)),
    }
}

/// Decode one tuple (borrowing from `text`; only IPv6 addresses are re-written).
pub(crate) fn parse(text: &str, shape: Shape) -> Result<Tuple<'_>, Rejection> {
    let mut f: [&str; 13] = [""; 13];
    let mut count = 0usize;
    for field in text.split(',') {
        if count == f.len() {
            return Err((Reason::FieldCount, "flowTuples: more than 13 fields".to_owned()));
        }
        f[count] = field.trim();
        count += 1;
    }
    let numeric_protocol = f[5].bytes().next().is_some_and(|b| b.is_ascii_digit());
    let vnet = match (count, shape) {
        (8, Shape::Nsg | Shape::Any) => false,
        (13, Shape::Nsg) => false,
        (13, Shape::VNet) => true,
        (13, Shape::Any) => numeric_protocol,
        _ => {
            let want = match shape {
                Shape::Nsg => "8 (v1) or 13 (v2)",
                Shape::VNet => "13",
                Shape::Any => "8 or 13",
            };
            return Err((
                Reason::FieldCount,
                format!("flowTuples: {count} fields, expected {want}"),
            ));
        }
    };
    let (time, seconds) = tuple_time(f[0])?;
    let src_ip = ip("srcaddr", f[1])?;
    let dst_ip = ip("dstaddr", f[2])?;
    let protocol = if vnet {
        parse_protocol(f[5].as_bytes()).ok_or_else(|| bad("protocol", f[5]))?
    } else {
        match f[5] {
            "T" => 6,
            "U" => 17,
            other => return Err(bad("protocol", other)),
        }
    };
    let icmp = matches!(protocol, 1 | 58);
    let port = |name: &str, v: &str| -> Result<Option<i32>, Rejection> {
        if v.is_empty() {
            return Ok(None);
        }
        let p = parse_port(v.as_bytes()).ok_or_else(|| bad(name, v))?;
        Ok(if icmp && p == 0 { None } else { Some(p) })
    };
    let src_port = port("srcport", f[3])?;
    let dst_port = port("dstport", f[4])?;
    let inbound = match f[6] {
        "I" => true,
        "O" => false,
        other => return Err(bad("direction", other)),
    };
    let (allow, state, encrypted) = if vnet {
        let state = match f[7] {
            "B" => State::Begin,
            "C" => State::Continue,
            "E" => State::End,
            "D" => State::Denied,
            other => return Err(bad("state", other)),
        };
        let encrypted = match f[8] {
            "" => None,
            "X" => Some(true),
            v if v == "NX" || v.starts_with("NX_") => Some(false),
            other => return Err(bad("encryption", other)),
        };
        (state != State::Denied, Some(state), encrypted)
    } else {
        let allow = match f[7] {
            "A" => true,
            "D" => false,
            other => return Err(bad("action", other)),
        };
        let state = if count == 8 {
            None
        } else {
            Some(match f[8] {
                "B" => State::Begin,
                "C" => State::Continue,
                "E" => State::End,
                other => return Err(bad("state", other)),
            })
        };
        (allow, state, None)
    };
    let (mut packets, mut bytes) = (None, None);
    if count == 13 {
        packets = add(counter("packets_sent", f[9])?, counter("packets_received", f[11])?);
        bytes = add(counter("bytes_sent", f[10])?, counter("bytes_received", f[12])?);
    }
    // Begin and denied tuples carry no traffic: Azure writes empty or 0 placeholders.
    if matches!(state, Some(State::Begin | State::Denied)) || !allow {
        packets = None;
        bytes = None;
    }
    Ok(Tuple {
        raw_src: f[1],
        raw_dst: f[2],
        time,
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        protocol,
        inbound,
        allow,
        state,
        encrypted,
        packets,
        bytes,
        vnet_seconds: vnet && seconds,
    })
}

/// What identifies a flow: the reporting NIC (MAC) and the 5-tuple with its direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FlowKey<'a> {
    pub(crate) scope: Cow<'a, str>,
    pub(crate) src: Cow<'a, str>,
    pub(crate) dst: Cow<'a, str>,
    pub(crate) src_port: Option<i32>,
    pub(crate) dst_port: Option<i32>,
    pub(crate) protocol: i32,
    pub(crate) inbound: bool,
}

impl<'a> FlowKey<'a> {
    /// The key of `t` seen by the NIC `scope`.
    pub(crate) fn of(scope: &'a str, t: &Tuple<'a>) -> Self {
        FlowKey {
            scope: Cow::Borrowed(scope),
            src: Cow::Borrowed(t.raw_src),
            dst: Cow::Borrowed(t.raw_dst),
            src_port: t.src_port,
            dst_port: t.dst_port,
            protocol: t.protocol,
            inbound: t.inbound,
        }
    }

    /// An owned copy, for state kept across records.
    pub(crate) fn into_static(self) -> FlowKey<'static> {
        FlowKey {
            scope: Cow::Owned(self.scope.into_owned()),
            src: Cow::Owned(self.src.into_owned()),
            dst: Cow::Owned(self.dst.into_owned()),
            src_port: self.src_port,
            dst_port: self.dst_port,
            protocol: self.protocol,
            inbound: self.inbound,
        }
    }
}

/// Columns shared by every row of a record or rule group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Base<'a> {
    pub(crate) account: Text<'a>,
    pub(crate) vpc: Text<'a>,
    pub(crate) subnet: Text<'a>,
    pub(crate) resource: Text<'a>,
    pub(crate) rule: Text<'a>,
}

/// A flow being summed.
#[derive(Debug, Clone)]
pub(crate) struct FlowAcc<'a> {
    row: FlowRow<'a>,
    last: i64,
    tuples: u32,
    /// An E tuple was seen.
    pub(crate) closed: bool,
    /// A tuple arrived earlier in time than one before it.
    pub(crate) out_of_order: bool,
}

impl<'a> FlowAcc<'a> {
    /// A flow started by `t`.
    pub(crate) fn new(t: Tuple<'a>, base: &Base<'a>) -> Self {
        let row = FlowRow {
            time: t.time,
            end_time: None,
            account: base.account.clone(),
            vpc: base.vpc.clone(),
            subnet: base.subnet.clone(),
            resource: base.resource.clone(),
            rule: base.rule.clone(),
            src_ip: Some(t.src_ip),
            src_port: t.src_port,
            dst_ip: Some(t.dst_ip),
            dst_port: t.dst_port,
            protocol: Some(t.protocol),
            direction: Some(Cow::Borrowed(if t.inbound { "inbound" } else { "outbound" })),
            action: Some(Cow::Borrowed(if t.allow { "allow" } else { "deny" })),
            bytes: t.bytes,
            packets: t.packets,
            encrypted: t.encrypted,
            ..FlowRow::default()
        };
        let counted = matches!(t.state, Some(State::Continue | State::End));
        let mut acc = FlowAcc {
            row,
            last: t.time,
            tuples: 1,
            closed: t.state == Some(State::End),
            out_of_order: false,
        };
        if counted {
            acc.row.end_time = Some(t.time);
        }
        acc
    }

    /// Add a later tuple of the same flow.
    pub(crate) fn add(&mut self, t: &Tuple<'_>) {
        if t.time < self.last {
            self.out_of_order = true;
        }
        self.row.time = self.row.time.min(t.time);
        self.last = self.last.max(t.time);
        self.tuples += 1;
        self.row.end_time = Some(self.last.max(self.row.end_time.unwrap_or(i64::MIN)));
        self.row.bytes = add(self.row.bytes, t.bytes);
        self.row.packets = add(self.row.packets, t.packets);
        if t.encrypted.is_some() {
            self.row.encrypted = t.encrypted;
        }
        if t.state == Some(State::End) {
            self.closed = true;
        }
    }

    /// The finished row.
    pub(crate) fn into_row(self) -> FlowRow<'a> {
        self.row
    }

    /// An owned copy, for state kept across records.
    pub(crate) fn into_static(self) -> FlowAcc<'static> {
        fn own(t: Text<'_>) -> Text<'static> {
            t.map(|c| Cow::Owned(c.into_owned()))
        }
        let r = self.row;
        FlowAcc {
            row: FlowRow {
                time: r.time,
                end_time: r.end_time,
                account: own(r.account),
                vpc: own(r.vpc),
                subnet: own(r.subnet),
                resource: own(r.resource),
                rule: own(r.rule),
                src_ip: own(r.src_ip),
                src_port: r.src_port,
                dst_ip: own(r.dst_ip),
                dst_port: r.dst_port,
                protocol: r.protocol,
                direction: own(r.direction),
                action: own(r.action),
                bytes: r.bytes,
                packets: r.packets,
                encrypted: r.encrypted,
                ..FlowRow::default()
            },
            last: self.last,
            tuples: self.tuples,
            closed: self.closed,
            out_of_order: self.out_of_order,
        }
    }
}

/// The flows of one framed record, summed, in order of their first tuple.
#[derive(Debug, Default)]
pub(crate) struct FlowTable<'a> {
    flows: Vec<FlowAcc<'a>>,
    open: HashMap<FlowKey<'a>, usize>,
}

impl<'a> FlowTable<'a> {
    /// Add a tuple seen by the NIC `scope`, with the columns of its record and rule in `base`.
    pub(crate) fn add(&mut self, scope: &'a str, t: Tuple<'a>, base: &Base<'a>) {
        if t.standalone() {
            self.flows.push(FlowAcc::new(t, base));
            return;
        }
        let key = FlowKey::of(scope, &t);
        let closes = t.state == Some(State::End);
        if let Some(&i) = self.open.get(&key)
            && let Some(acc) = self.flows.get_mut(i)
        {
            acc.add(&t);
            if closes {
                self.open.remove(&key);
            }
            return;
        }
        self.flows.push(FlowAcc::new(t, base));
        if !closes {
            self.open.insert(key, self.flows.len() - 1);
        }
    }

    /// Flows so far.
    pub(crate) fn len(&self) -> usize {
        self.flows.len()
    }

    /// Append every flow as a row of `record`; returns how many rows were written.
    pub(crate) fn emit(self, record: &Record<'_>, out: &mut Output, out_of_order: &str) -> u64 {
        let mut n = 0;
        for acc in self.flows {
            if acc.out_of_order {
                out.note(out_of_order);
            }
            out.flow(record, &acc.into_row());
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tuple_shape_decodes() {
        let v1 = parse("1487282421,192.0.2.95,10.1.0.4,51529,5358,T,I,D", Shape::Nsg).expect("v1");
        assert_eq!((v1.protocol, v1.inbound, v1.allow, v1.state), (6, true, false, None));
        assert_eq!(v1.time, 1_487_282_421_000_000);
        assert!(v1.standalone());

        let b = parse("1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,A,B,,,,", Shape::Nsg)
            .expect("v2 B");
        assert_eq!((b.state, b.packets, b.bytes), (Some(State::Begin), None, None));
        let c = parse(
            "1542110379,10.5.16.4,203.0.113.115,44931,443,T,O,A,C,30,16978,24,14008",
            Shape::Any,
        )
        .expect("v2 C");
        assert_eq!((c.packets, c.bytes, c.encrypted), (Some(54), Some(30_986), None));

        let e = parse(
            "1663146003606,10.0.0.6,52.239.184.180,23956,443,6,O,E,NX,3,767,2,1580",
            Shape::VNet,
        )
        .expect("v4 E");
        assert_eq!((e.time, e.protocol, e.encrypted), (1_663_146_003_606_000, 6, Some(false)));
        assert_eq!((e.packets, e.bytes, e.vnet_seconds), (Some(5), Some(2_347), false));
        let d = parse(
            "1663145998065,101.33.218.153,10.0.0.6,55188,22,6,I,D,NX_NOT_ACCEPTED,0,0,0,0",
            Shape::Any,
        )
        .expect("v4 D");
        assert!(d.encrypted == Some(false) && !d.allow && d.standalone());
        assert_eq!((d.packets, d.bytes), (None, None), "denied counters are placeholders");
        let s = parse("1493763938,185.170.185.105,10.2.0.4,35370,23,6,I,B,X,,,,", Shape::Any)
            .expect("v4 seconds");
        assert!(s.vnet_seconds);
        assert_eq!(s.encrypted, Some(true));
        let icmp = parse("1663146003606,2001:DB8::1,10.0.0.6,0,0,1,I,C,NX,1,84,1,84", Shape::VNet)
            .expect("icmp");
        assert_eq!((icmp.src_port, icmp.dst_port), (None, None));
        assert_eq!(icmp.src_ip, "2001:db8::1");
    }

    #[test]
    fn bad_tuples_name_the_field() {
        let cases = [
            ("1,2,3", Shape::Any, Reason::FieldCount, "3 fields"),
            (
                "1542110377,10.5.16.4,203.0.113.118,59831,443,6,O,B,NX,0,0,0,0",
                Shape::Nsg,
                Reason::BadField,
                "protocol",
            ),
            (
                "1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,A,B,,,,",
                Shape::VNet,
                Reason::BadField,
                "protocol",
            ),
            ("x,10.5.16.4,203.0.113.118,59831,443,T,O,A", Shape::Nsg, Reason::BadTime, "time"),
            (",10.5.16.4,203.0.113.118,59831,443,T,O,A", Shape::Nsg, Reason::MissingField, "time"),
            (
                "999999999999999,10.5.16.4,203.0.113.118,59831,443,T,O,A",
                Shape::Nsg,
                Reason::BadTime,
                "time",
            ),
            ("1e9,10.5.16.4,203.0.113.118,59831,443,T,O,A", Shape::Nsg, Reason::BadTime, "time"),
            (
                "1542110377,10.5.16.999,203.0.113.118,59831,443,T,O,A",
                Shape::Nsg,
                Reason::BadField,
                "srcaddr",
            ),
            (
                "1542110377,10.5.16.4,203.0.113.118,65536,443,T,O,A",
                Shape::Nsg,
                Reason::BadField,
                "srcport",
            ),
            (
                "1542110377,10.5.16.4,203.0.113.118,1,443,T,X,A",
                Shape::Nsg,
                Reason::BadField,
                "direction",
            ),
            (
                "1542110377,10.5.16.4,203.0.113.118,1,443,T,O,Q",
                Shape::Nsg,
                Reason::BadField,
                "action",
            ),
            (
                "1542110377,10.5.16.4,203.0.113.118,1,443,T,O,A,Z,,,,",
                Shape::Nsg,
                Reason::BadField,
                "state",
            ),
            (
                "1542110377,10.5.16.4,203.0.113.118,1,443,T,O,A,C,1,-2,3,4",
                Shape::Nsg,
                Reason::BadField,
                "bytes_sent",
            ),
            (
                "1663146003606,10.0.0.6,52.239.184.180,1,443,6,O,E,YES,3,767,2,1580",
                Shape::VNet,
                Reason::BadField,
                "encryption",
            ),
            (
                "1663146003606,10.0.0.6,52.239.184.180,1,443,300,O,E,NX,3,767,2,1580",
                Shape::VNet,
                Reason::BadField,
                "protocol",
            ),
            ("1,2,3,4,5,6,7,8,9,10,11,12,13,14", Shape::Any, Reason::FieldCount, "more than 13"),
        ];
        for (text, shape, reason, needle) in cases {
            let (r, detail) = parse(text, shape).err().unwrap_or_else(|| panic!("{text} parsed"));
            assert_eq!(r, reason, "{text}: {detail}");
            assert!(detail.contains(needle), "{text}: {detail}");
        }
    }

    #[test]
    fn flows_are_summed_until_their_end_tuple() {
        let base = Base { rule: Some(Cow::Borrowed("r")), ..Base::default() };
        let mut table = FlowTable::default();
        for t in [
            "1708978215,203.0.113.105,10.0.0.5,35370,443,T,I,A,B,,,,",
            "1708978215,203.0.113.105,10.0.0.5,35370,443,T,I,A,C,1021,588096,8005,4610880",
            "1708978216,198.51.100.1,10.0.0.5,1,22,T,I,D,B,,,,",
            "1708978275,203.0.113.105,10.0.0.5,35370,443,T,I,A,E,52,29952,47,27072",
            "1708978300,203.0.113.105,10.0.0.5,35370,443,T,I,A,B,,,,",
        ] {
            table.add("mac", parse(t, Shape::Nsg).expect("tuple"), &base);
        }
        let rows: Vec<FlowRow<'_>> = table.flows.into_iter().map(FlowAcc::into_row).collect();
        assert_eq!(rows.len(), 3, "summed flow, denied flow, flow re-opened after its end");
        assert_eq!(rows[0].time, 1_708_978_215_000_000);
        assert_eq!(rows[0].end_time, Some(1_708_978_275_000_000));
        assert_eq!(rows[0].bytes, Some(588_096 + 4_610_880 + 29_952 + 27_072));
        assert_eq!(rows[0].packets, Some(1021 + 8005 + 52 + 47));
        assert_eq!(rows[1].action.as_deref(), Some("deny"));
        assert_eq!((rows[1].bytes, rows[1].end_time), (None, None));
        assert_eq!(rows[2].time, 1_708_978_300_000_000);
        assert_eq!((rows[2].bytes, rows[2].end_time), (None, None));
        assert_eq!(rows[2].rule.as_deref(), Some("r"));
    }
}
