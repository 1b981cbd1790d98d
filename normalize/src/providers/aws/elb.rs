//! Elastic Load Balancing access logs (text), `aws-elb`: Application Load Balancer (`http`,
//! `https`, `h2`, `grpcs`, `ws`, `wss` lines), Network Load Balancer TLS listeners (`tls 2.0`
//! lines) and Classic Load Balancer lines (starting with the timestamp).
//!
//! Each line is one `flows` row: client → target (ALB, Classic) or client → listener
//! destination (NLB), TCP, `inbound` relative to `resource` = the load balancer
//! (`app/name/id`, `net/name/id`), `bytes` = received + sent, `time` = when the request (ALB:
//! `request_creation_time`) or the TLS connection (NLB: `tls_connection_creation_time`)
//! started, `end_time` = the line's own time (response sent / connection closed),
//! `tls_version` normalized (`tlsv12` → `TLSv1.2`, `TLSv1` → `TLSv1.0`), `tls_error` set when
//! the NLB line carries an `incoming_tls_alert` (a TLS alert code from the client: the
//! handshake failed), account and region from the target group or certificate ARN.
//!
//! When the listener served a certificate (`chosen_cert_arn`, not `-` and not ALB's
//! `session-reused`), the line also yields a `cert_events` row, activity `presented`, service
//! `elb`, so rules know which certificates are in use and where (`workload` = the load
//! balancer); the NLB `chosen_cert_serial` fills `serial`.
//!
//! Quirks handled: quoted fields with spaces (`"GET https://… HTTP/1.1"`, user agents), `\"`
//! escapes inside quotes, bracketed IPv6 `[fe80::1]:443`, `-` for absent values, NLB times
//! without a zone (UTC), extra trailing fields AWS adds over time (ignored). Notable fields
//! without a column (request line, user agent, status codes, SNI domain, cipher, ALPN,
//! actions, error reason, classification) are counted as unmapped.

use std::borrow::Cow;

use super::common::{Arn, cow, normalize_serial, present, tls_version};
use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json::parse_time;
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::{CertEventRow, FlowRow};
use crate::schema::{Provider, Table};
use crate::values::{canonical_ip, parse_count, parse_port};

/// Format name.
pub const NAME: &str = "aws-elb";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Aws,
    tables: &[Table::Flows, Table::CertEvents],
    framing: Framing::Lines,
    description: "AWS Elastic Load Balancing access logs (ALB, NLB TLS listeners, Classic): flows with TLS facts, plus the certificate each listener presented",
    example: "tls 2.0 2020-04-01T08:51:42 net/my-network-loadbalancer/c6e77e28c25b2234 g3d4b5e8bb8464cd 72.21.218.154:51341 172.100.100.185:443 5 2 98 246 - arn:aws:acm:us-east-2:671290407336:certificate/2a108f19-aded-46b0-8493-c63eb1ef4a99 - ECDHE-RSA-AES128-SHA tlsv12 - my-network-loadbalancer-c6e77e28c25b2234.elb.us-east-2.amazonaws.com h2 h2 \"h2\",\"http/1.1\" 2020-04-01T08:51:20",
    sniff,
    new_parser,
};

/// Most fields a line may have.
const MAX_FIELDS: usize = 48;

/// ALB request types (first field).
const ALB_TYPES: &[&str] = &["http", "https", "h2", "grpcs", "ws", "wss"];

/// Unmapped fields counted per source (index into `ElbParser::unmapped`).
const UNMAPPED: &[&str] = &[
    "request",
    "user_agent",
    "elb_status_code",
    "target_status_code",
    "ssl_cipher",
    "domain_name",
    "actions_executed",
    "error_reason",
    "classification",
    "listener",
    "alpn_fe_protocol",
    "tls_named_group",
    "processing_times",
];

#[derive(Debug, Clone, Copy)]
enum Unmapped {
    Request,
    UserAgent,
    ElbStatus,
    TargetStatus,
    Cipher,
    Domain,
    Actions,
    ErrorReason,
    Classification,
    Listener,
    Alpn,
    NamedGroup,
    Timings,
}

fn new_parser(_: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(ElbParser::default()))
}

/// Parser state for one source: the unmapped-field counts.
#[derive(Debug, Default)]
struct ElbParser {
    unmapped: [u64; 13],
}

impl ElbParser {
    fn count(&mut self, field: Unmapped, value: Option<&str>) {
        if present(value).is_some() {
            self.unmapped[field as usize] += 1;
        }
    }
}

/// Split a line on spaces, keeping double-quoted fields (with `\"` escapes) whole and without
/// their quotes. `None` when there are too many fields or a quote is not closed.
fn split_fields<'a>(line: &'a str, fields: &mut [&'a str; MAX_FIELDS]) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut n = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        if bytes[i] == b' ' {
            i += 1;
            continue;
        }
        if n == MAX_FIELDS {
            return None;
        }
        if bytes[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            let mut escaped = false;
            loop {
                let c = *bytes.get(j)?;
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    break;
                }
                j += 1;
            }
            // A quoted list such as "h2","http/1.1" continues after the closing quote.
            let mut end = j + 1;
            while end < bytes.len() && bytes[end] != b' ' {
                end += 1;
            }
            fields[n] = if end == j + 1 { line.get(start..j)? } else { line.get(i..end)? };
            n += 1;
            i = end;
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b' ' {
                i += 1;
            }
            fields[n] = line.get(start..i)?;
            n += 1;
        }
    }
    Some(n)
}

/// `10.0.0.1:80`, `[fe80::1]:443` → (address, port). `-` → `None`.
fn host_port(v: &str) -> Option<(&str, &str)> {
    let v = present(Some(v))?;
    if let Some(rest) = v.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host, port));
    }
    v.rsplit_once(':')
}

type Rejection = (Reason, String);

fn bad(field: &str, value: &str) -> Rejection {
    let shown: String = value.chars().take(64).collect();
    (Reason::BadField, format!("{field}: invalid value {shown:?}"))
}

/// The endpoint columns of one side: canonical IP and port.
fn endpoint<'a>(
    field: &str,
    value: &'a str,
    scratch: &'a mut String,
) -> Result<(Option<Cow<'a, str>>, Option<i32>), Rejection> {
    let Some((host, port)) = host_port(value) else { return Ok((None, None)) };
    let ip = canonical_ip(host, scratch).ok_or_else(|| bad(field, value))?;
    let port = parse_port(port.as_bytes()).ok_or_else(|| bad(field, value))?;
    Ok((Some(Cow::Borrowed(ip)), Some(port)))
}

fn time_of(field: &str, value: &str) -> Result<i64, Rejection> {
    match present(Some(value)) {
        None => Err((Reason::MissingField, format!("{field}: absent"))),
        Some(v) => parse_time(v)
            .ok_or_else(|| (Reason::BadTime, format!("{field}: {v:?} is not a time in range"))),
    }
}

fn count_of(field: &str, value: &str) -> Result<Option<i64>, Rejection> {
    match present(Some(value)) {
        None => Ok(None),
        Some(v) => parse_count(v.as_bytes()).map(Some).ok_or_else(|| bad(field, v)),
    }
}

fn sum(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => a.checked_add(b),
        (a, b) => a.or(b),
    }
}

/// The name of a TLS alert code (RFC 8446 §6), written as decimal or `0x` hex.
fn alert_name(code: &str) -> Option<&'static str> {
    let n = match code.strip_prefix("0x").or_else(|| code.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16).ok()?,
        None => code.parse::<u8>().ok()?,
    };
    Some(match n {
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return None,
    })
}

/// The certificate a listener presented, as a `cert_events` row.
fn presented<'a>(
    time: i64,
    cert_arn: &'a str,
    lb: Option<&'a str>,
    serial: Option<String>,
) -> CertEventRow<'a> {
    let arn = Arn::parse(cert_arn);
    CertEventRow {
        time,
        service: Some(Cow::Borrowed("elb")),
        account: arn.and_then(|a| a.account()).map(Cow::Borrowed),
        region: arn.and_then(|a| a.region()).map(Cow::Borrowed),
        activity: Some(Cow::Borrowed("presented")),
        cert_id: Some(Cow::Borrowed(cert_arn)),
        serial: serial.map(Cow::Owned),
        workload: lb.map(Cow::Borrowed),
        ..CertEventRow::default()
    }
}

impl ElbParser {
    fn parse_line(&mut self, record: &Record<'_>, out: &mut Output) -> Result<(), Rejection> {
        let text = std::str::from_utf8(record.bytes)
            .map_err(|_| (Reason::InvalidUtf8, "access log line is not valid UTF-8".to_owned()))?;
        let mut f: [&str; MAX_FIELDS] = [""; MAX_FIELDS];
        let n = split_fields(text, &mut f).ok_or_else(|| {
            (Reason::FieldCount, "unbalanced quotes or more than 48 fields".to_owned())
        })?;
        let f = &f[..n];
        let kind = f.first().copied().unwrap_or_default();
        let mut scratch = [String::new(), String::new()];
        if kind == "tls" {
            self.nlb(record, f, &mut scratch, out)
        } else if ALB_TYPES.contains(&kind) {
            self.alb(record, f, &mut scratch, out)
        } else {
            self.classic(record, f, &mut scratch, out)
        }
    }

    /// `type version time elb listener client:port destination:port connection_time
    /// tls_handshake_time received_bytes sent_bytes incoming_tls_alert chosen_cert_arn
    /// chosen_cert_serial tls_cipher tls_protocol_version tls_named_group domain_name
    /// alpn_fe_protocol alpn_be_protocol alpn_client_preference_list tls_connection_creation_time`
    fn nlb(
        &mut self,
        record: &Record<'_>,
        f: &[&str],
        scratch: &mut [String; 2],
        out: &mut Output,
    ) -> Result<(), Rejection> {
        if f.len() < 16 {
            return Err((
                Reason::FieldCount,
                format!("{} fields, an NLB TLS line has at least 16", f.len()),
            ));
        }
        let get = |i: usize| f.get(i).copied().unwrap_or("-");
        let end = time_of("time", get(2))?;
        let start = match present(Some(get(21))) {
            Some(v) => parse_time(v).ok_or_else(|| {
                (
                    Reason::BadTime,
                    format!("tls_connection_creation_time: {v:?} is not a time in range"),
                )
            })?,
            None => end,
        };
        let [s0, s1] = scratch;
        let (src_ip, src_port) = endpoint("client:port", get(5), s0)?;
        let (dst_ip, dst_port) = endpoint("destination:port", get(6), s1)?;
        let alert = present(Some(get(11)));
        let tls_error = alert.map(|code| {
            Cow::Owned(match alert_name(code) {
                Some(name) => format!("{name} (incoming_tls_alert {code})"),
                None => format!("incoming_tls_alert {code}"),
            })
        });
        let cert_arn = present(Some(get(12)));
        let arn = cert_arn.and_then(Arn::parse);
        let lb = present(Some(get(3)));
        let row = FlowRow {
            time: start,
            end_time: Some(end),
            account: arn.and_then(|a| a.account()).map(Cow::Borrowed),
            region: arn.and_then(|a| a.region()).map(Cow::Borrowed),
            resource: lb.map(Cow::Borrowed),
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            protocol: Some(6),
            direction: Some(Cow::Borrowed("inbound")),
            bytes: sum(count_of("received_bytes", get(9))?, count_of("sent_bytes", get(10))?),
            tls_version: tls_version(get(15)),
            tls_error,
            ..FlowRow::default()
        };
        out.flow(record, &row);
        self.count(Unmapped::Listener, Some(get(4)));
        self.count(Unmapped::Cipher, Some(get(14)));
        self.count(Unmapped::NamedGroup, Some(get(16)));
        self.count(Unmapped::Domain, Some(get(17)));
        self.count(Unmapped::Alpn, Some(get(18)));
        self.count(Unmapped::Timings, Some(get(8)));
        if let Some(cert) = cert_arn {
            let serial = present(Some(get(13))).and_then(normalize_serial);
            out.cert_event(record, &presented(start, cert, lb, serial));
        }
        Ok(())
    }

    /// `type time elb client:port target:port request_processing_time target_processing_time
    /// response_processing_time elb_status_code target_status_code received_bytes sent_bytes
    /// "request" "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id" "domain_name"
    /// "chosen_cert_arn" matched_rule_priority request_creation_time "actions_executed"
    /// "redirect_url" "error_reason" "target:port_list" "target_status_code_list"
    /// "classification" "classification_reason" conn_trace_id`
    fn alb(
        &mut self,
        record: &Record<'_>,
        f: &[&str],
        scratch: &mut [String; 2],
        out: &mut Output,
    ) -> Result<(), Rejection> {
        if f.len() < 16 {
            return Err((
                Reason::FieldCount,
                format!("{} fields, an ALB line has at least 16", f.len()),
            ));
        }
        let get = |i: usize| f.get(i).copied().unwrap_or("-");
        let end = time_of("time", get(1))?;
        let start = match present(Some(get(21))) {
            Some(v) => parse_time(v).ok_or_else(|| {
                (Reason::BadTime, format!("request_creation_time: {v:?} is not a time in range"))
            })?,
            None => end,
        };
        let [s0, s1] = scratch;
        let (src_ip, src_port) = endpoint("client:port", get(3), s0)?;
        let (dst_ip, dst_port) = endpoint("target:port", get(4), s1)?;
        let cert_arn = present(Some(get(19))).filter(|c| *c != "session-reused");
        let arn =
            present(Some(get(16))).and_then(Arn::parse).or_else(|| cert_arn.and_then(Arn::parse));
        let lb = present(Some(get(2)));
        let row = FlowRow {
            time: start,
            end_time: Some(end),
            account: arn.and_then(|a| a.account()).map(Cow::Borrowed),
            region: arn.and_then(|a| a.region()).map(Cow::Borrowed),
            resource: lb.map(Cow::Borrowed),
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            protocol: Some(6),
            direction: Some(Cow::Borrowed("inbound")),
            bytes: sum(count_of("received_bytes", get(10))?, count_of("sent_bytes", get(11))?),
            tls_version: tls_version(get(15)),
            ..FlowRow::default()
        };
        out.flow(record, &row);
        self.count(Unmapped::Request, Some(get(12)).filter(|r| *r != "- - - "));
        self.count(Unmapped::UserAgent, Some(get(13)));
        self.count(Unmapped::ElbStatus, Some(get(8)));
        self.count(Unmapped::TargetStatus, Some(get(9)));
        self.count(Unmapped::Cipher, Some(get(14)));
        self.count(Unmapped::Domain, Some(get(18)));
        self.count(Unmapped::Actions, Some(get(22)));
        self.count(Unmapped::ErrorReason, Some(get(24)));
        self.count(Unmapped::Classification, Some(get(27)));
        self.count(Unmapped::Timings, Some(get(5)));
        if let Some(cert) = cert_arn {
            out.cert_event(record, &presented(start, cert, lb, None));
        }
        Ok(())
    }

    /// `time elb client:port backend:port request_processing_time backend_processing_time
    /// response_processing_time elb_status_code backend_status_code received_bytes sent_bytes
    /// "request" "user_agent" ssl_cipher ssl_protocol`
    fn classic(
        &mut self,
        record: &Record<'_>,
        f: &[&str],
        scratch: &mut [String; 2],
        out: &mut Output,
    ) -> Result<(), Rejection> {
        if f.len() < 11 {
            return Err((
                Reason::FieldCount,
                format!("{} fields, a Classic ELB line has at least 11", f.len()),
            ));
        }
        let get = |i: usize| f.get(i).copied().unwrap_or("-");
        let time = time_of("time", get(0))?;
        let [s0, s1] = scratch;
        let (src_ip, src_port) = endpoint("client:port", get(2), s0)?;
        let (dst_ip, dst_port) = endpoint("backend:port", get(3), s1)?;
        let row = FlowRow {
            time,
            end_time: Some(time),
            resource: cow(Some(get(1))),
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            protocol: Some(6),
            direction: Some(Cow::Borrowed("inbound")),
            bytes: sum(count_of("received_bytes", get(9))?, count_of("sent_bytes", get(10))?),
            tls_version: tls_version(get(14)),
            ..FlowRow::default()
        };
        out.flow(record, &row);
        self.count(Unmapped::Request, Some(get(11)).filter(|r| *r != "- - - "));
        self.count(Unmapped::UserAgent, Some(get(12)));
        self.count(Unmapped::ElbStatus, Some(get(7)));
        self.count(Unmapped::TargetStatus, Some(get(8)));
        self.count(Unmapped::Cipher, Some(get(13)));
        self.count(Unmapped::Timings, Some(get(4)));
        Ok(())
    }
}

impl Parser for ElbParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        if let Err((reason, detail)) = self.parse_line(record, out) {
            out.quarantine(record, reason, &detail);
        }
    }

    fn finish(&mut self, out: &mut Output) {
        for (name, rows) in UNMAPPED.iter().zip(&mut self.unmapped) {
            out.note_unmapped(NAME, name, *rows);
            *rows = 0;
        }
    }
}

/// Whether `s` starts like an ISO 8601 timestamp (`2018-07-02T22:23:00`).
fn iso_start(s: &[u8]) -> bool {
    s.len() >= 19
        && s[..4].iter().all(u8::is_ascii_digit)
        && s[4] == b'-'
        && s[7] == b'-'
        && s[10] == b'T'
        && s[13] == b':'
}

/// Confidence that a line is an ELB access log line: an ALB type followed by an ISO time, an
/// NLB `tls <version> <ISO time>`, or a Classic `<ISO time>Z <name> <ip:port>`.
fn sniff(record: &[u8]) -> u8 {
    let head = crate::json::head(record, 512);
    let mut tokens = head.split(|&b| b == b' ').filter(|t| !t.is_empty());
    let (Some(a), Some(b), Some(c)) = (tokens.next(), tokens.next(), tokens.next()) else {
        return 0;
    };
    if ALB_TYPES.iter().any(|t| t.as_bytes() == a) && iso_start(b) {
        return 90;
    }
    if a == b"tls" && b.first().is_some_and(u8::is_ascii_digit) && iso_start(c) {
        return 90;
    }
    let d = tokens.next().unwrap_or_default();
    if iso_start(a) && a.ends_with(b"Z") && (d.contains(&b':') || d == b"-") {
        let client = std::str::from_utf8(c).ok().and_then(host_port);
        if client.is_some_and(|(h, p)| {
            let mut s = String::new();
            canonical_ip(h, &mut s).is_some() && parse_port(p.as_bytes()).is_some()
        }) {
            return 85;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SNIFF_THRESHOLD;

    #[test]
    fn fields_split_with_quotes_escapes_and_lists() {
        let mut f = [""; MAX_FIELDS];
        let n = split_fields(r#"a "b c" "say \"hi\"" "h2","http/1.1" d"#, &mut f).expect("split");
        assert_eq!(&f[..n], ["a", "b c", r#"say \"hi\""#, r#""h2","http/1.1""#, "d"]);
        assert_eq!(split_fields(r#"a "unterminated"#, &mut f), None);
    }

    #[test]
    fn endpoints_and_alerts() {
        assert_eq!(
            host_port("[fe80::202:b3ff:fe1e:8329]:443"),
            Some(("fe80::202:b3ff:fe1e:8329", "443"))
        );
        assert_eq!(host_port("10.0.0.1:80"), Some(("10.0.0.1", "80")));
        assert_eq!(host_port("-"), None);
        assert_eq!(alert_name("0x2a"), Some("bad_certificate"));
        assert_eq!(alert_name("48"), Some("unknown_ca"));
        assert_eq!(alert_name("zz"), None);
    }

    #[test]
    fn nlb_alert_is_a_tls_error_and_unmapped_fields_are_counted() {
        use crate::output::SourceInfo;
        use arrow::array::{Array, AsArray};
        let mut parser = ElbParser::default();
        let mut out = Output::new(4, 0);
        out.begin_source(SourceInfo::lines("k", "elb.log"), [0; 4]);
        out.set_format(NAME, Provider::Aws);
        let line = "tls 2.0 2023-11-14T23:00:05 net/n/1 l1 198.51.100.99:61000 10.1.0.50:443 12 - 310 7 0x2a arn:aws:acm:eu-west-1:1:certificate/c - - - - api.example.com - - - 2023-11-14T23:00:04";
        out.begin_record();
        parser.parse(&Record { line: 1, bytes: line.as_bytes() }, &mut out);
        out.end_record();
        parser.finish(&mut out);
        assert_eq!(out.counts().rows_in(Table::Flows), 1);
        assert_eq!(out.counts().rows_in(Table::CertEvents), 1);
        assert_eq!(out.counts().unmapped.get("aws-elb: domain_name"), Some(&1));
        assert_eq!(out.counts().unmapped.get("aws-elb: ssl_cipher"), None, "`-` is not a value");
        let batches = out.take_batches(0);
        let flows = &batches.iter().find(|(t, _)| *t == Table::Flows).expect("flows").1;
        let err = flows.column_by_name("tls_error").expect("tls_error").as_string::<i32>();
        assert_eq!(err.value(0), "bad_certificate (incoming_tls_alert 0x2a)");
        assert!(flows.column_by_name("tls_version").expect("v").is_null(0));
    }

    #[test]
    fn sniff_claims_elb_lines_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= SNIFF_THRESHOLD);
        let classic = r#"2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000073 0.001048 0.000057 200 200 0 29 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.38.0" - -"#;
        assert!(sniff(classic.as_bytes()) >= SNIFF_THRESHOLD);
        let vpc = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
        assert_eq!(sniff(vpc.as_bytes()), 0);
        assert_eq!(sniff(br#"[2022-07-20T09:52:24.955Z] "GET /path HTTP/1.1" 200"#), 0);
        assert_eq!(sniff(b"http is a protocol"), 0);
        assert!((crate::providers::aws::vpcflow::FORMAT.sniff)(FORMAT.example.as_bytes()) < 90);
    }
}
