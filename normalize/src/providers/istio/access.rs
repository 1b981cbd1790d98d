//! Istio / Envoy sidecar and gateway access logs (`istio-access`) → `flows`, in Istio's
//! default TEXT format and in its JSON encoding (`meshConfig.accessLogEncoding: JSON`).
//!
//! Text layout (Istio ≥ 1.9, 22 fields; `-` = absent):
//!
//! ```text
//! [START_TIME] "METHOD PATH PROTOCOL" RESPONSE_CODE RESPONSE_FLAGS RESPONSE_CODE_DETAILS
//! CONNECTION_TERMINATION_DETAILS "UPSTREAM_TRANSPORT_FAILURE_REASON" BYTES_RECEIVED BYTES_SENT
//! DURATION UPSTREAM_SERVICE_TIME "X-FORWARDED-FOR" "USER-AGENT" "X-REQUEST-ID" "AUTHORITY"
//! "UPSTREAM_HOST" UPSTREAM_CLUSTER UPSTREAM_LOCAL DOWNSTREAM_LOCAL DOWNSTREAM_REMOTE
//! REQUESTED_SERVER_NAME ROUTE_NAME
//! ```
//!
//! The pre-1.9 layout (21 fields: a quoted mixer status instead of the two details fields) is
//! read too. Quirks handled: quoted and bare fields mix; quoted values are attacker-controlled
//! (user agent, authority, request id, X-Forwarded-For) and Envoy does not escape quotes in
//! them, so the line is read from both ends: the fixed prefix left to right, the six bare
//! trailing fields right to left, and the five quoted header fields in between split on `" "`
//! (a `\"` is taken as an escaped quote; extra separators are attributed to the user agent,
//! which maps to no column); duration and upstream service time may be `-`; IPv6 peers are
//! bracketed (`[2a02:cf40::4e36]:5000`); Envoy writes port `0` for a downstream address taken
//! from X-Forwarded-For, stored as a NULL port; JSON mixes `null` and `"-"` for the same field
//! and writes numbers as strings (`upstream_service_time`).
//!
//! Mapping (one row per request or TCP connection):
//! - `time` = start time, `end_time` = start + duration (ms) when logged; `protocol` 6;
//!   `bytes` = bytes received + bytes sent;
//! - `direction` from the upstream cluster: `inbound|…` / `InboundPassthroughCluster*` →
//!   inbound, `outbound|…` / `PassthroughCluster` / `BlackHoleCluster` → outbound;
//! - `src` = downstream remote address; `dst` = downstream local address for inbound traffic,
//!   else the upstream host (the endpoint actually reached), falling back to the downstream
//!   local address when no upstream was picked (`503 UH`); for outbound traffic the service
//!   address the client dialled (downstream local) is kept in `pkt_dst_ip` when it differs
//!   from the endpoint (the mesh load-balanced a service VIP);
//! - `action` = allow unless the proxy refused the request by policy: response code details or
//!   connection termination details `rbac_access_denied…` / `ext_authz_denied…`, response flag
//!   `UAEX` (external authorization or network RBAC denial), or the `BlackHoleCluster`
//!   (outbound traffic policy REGISTRY_ONLY) → deny. Upstream failures (`UH`, `UF`, `URX`, …)
//!   are not policy decisions: they stay `allow`;
//! - `rule` = the RBAC denial details when the request was denied by RBAC (the policy that
//!   decided, e.g. `rbac_access_denied_matched_policy[ns[foo]-policy[deny-all]-rule[0]]`), else
//!   the route name; `resource` = the upstream cluster, else the authority;
//! - `tls_version`, `peer_identity`: only when logged (JSON custom formats with
//!   `downstream_tls_version` / `upstream_tls_version` and `downstream_peer_uri_san` /
//!   `upstream_peer_uri_san`): the downstream side for inbound traffic, the upstream side for
//!   outbound. The identity is never derived from the SNI;
//! - `tls_error` = the first of upstream / downstream transport failure reason, response code
//!   details and connection termination details that names a TLS failure (`TLS error`,
//!   `TLS_error`, `SSL`, `CERTIFICATE_VERIFY_FAILED`, `handshake`); non-TLS failures (`UH
//!   no_healthy_upstream`, `delayed connect error: 111`) leave it NULL;
//! - `encrypted` = true when the downstream connection carried a TLS SNI
//!   (`requested_server_name`, e.g. Istio's mTLS SNI `outbound_.9080_._.reviews.default.svc…`),
//!   a TLS version or a peer identity — a SNI only exists in a TLS ClientHello. Otherwise NULL
//!   (the sidecar's plaintext leg says nothing about the mesh leg). Rows whose encryption is
//!   inferred from the SNI alone are counted in a note.
//!
//! Fields without a column (request line, response code and flags, user agent,
//! X-Forwarded-For, request id, SNI, upstream service time, upstream local address) are
//! counted as unmapped. Records without a start time are quarantined (`missing_field`), with an
//! unparseable one `bad_time`; malformed addresses, ports and counters `bad_field` naming the
//! field; a text line that does not have the default layout `field_count`.

use std::borrow::Cow;

use serde::Deserialize;

use crate::format::{Format, Framing, ParseOptions, Parser, Result};
use crate::json::{self, Rejection, de};
use crate::output::{Output, Record};
use crate::quarantine::Reason;
use crate::rows::{FlowRow, Text};
use crate::schema::{Provider, Table};
use crate::values::{canonical_ip, checked_micros, parse_count, parse_port};

/// Format name.
pub const NAME: &str = "istio-access";

/// Registry entry.
pub static FORMAT: Format = Format {
    name: NAME,
    provider: Provider::Kubernetes,
    tables: &[Table::Flows],
    framing: Framing::Lines,
    description: "Istio/Envoy access logs: the default text format (Istio >= 1.9 and older) and the JSON encoding",
    example: r#"[2022-08-22T13:08:23.448Z] "GET /details/0 HTTP/1.1" 200 - via_upstream - "-" 0 178 3 3 "-" "curl/7.79.1" "d3bbd98a-ab12-9e96-b539-a419c2c8091f" "details:9080" "10.124.0.10:9080" outbound|9080||details.default.svc.cluster.local 10.124.2.6:58408 10.0.16.224:9080 10.124.2.6:49098 - default"#,
    sniff,
    new_parser,
};

fn new_parser(options: &ParseOptions) -> Result<Box<dyn Parser>> {
    Ok(Box::new(IstioAccessParser::new(options)))
}

/// One access-log entry, from either encoding. Text values `-` and JSON `null`/`"-"` are
/// mapped to `None` by [`Entry::clean`].
#[derive(Debug, Default, Deserialize)]
struct Entry<'a> {
    #[serde(default, borrow, deserialize_with = "de::text")]
    start_time: Text<'a>,
    #[serde(default, deserialize_with = "de::int")]
    response_code: Option<i64>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    response_flags: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    response_code_details: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    connection_termination_details: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    upstream_transport_failure_reason: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    downstream_transport_failure_reason: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    bytes_received: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    bytes_sent: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    duration: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    authority: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    upstream_host: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    upstream_cluster: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    downstream_local_address: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    downstream_remote_address: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    requested_server_name: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    route_name: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    downstream_peer_uri_san: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    upstream_peer_uri_san: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    downstream_tls_version: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    upstream_tls_version: Text<'a>,
    // Mapped to no column; read so they can be counted.
    #[serde(default, borrow, deserialize_with = "de::text")]
    method: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    path: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    user_agent: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    x_forwarded_for: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    request_id: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    upstream_service_time: Text<'a>,
    #[serde(default, borrow, deserialize_with = "de::text")]
    upstream_local_address: Text<'a>,
}

fn absent(v: &mut Text<'_>) {
    if v.as_deref().is_some_and(|s| s.is_empty() || s == "-") {
        *v = None;
    }
}

impl Entry<'_> {
    /// Map the "absent" spellings (`-`, empty) to `None`.
    fn clean(&mut self) {
        for v in [
            &mut self.start_time,
            &mut self.response_flags,
            &mut self.response_code_details,
            &mut self.connection_termination_details,
            &mut self.upstream_transport_failure_reason,
            &mut self.downstream_transport_failure_reason,
            &mut self.bytes_received,
            &mut self.bytes_sent,
            &mut self.duration,
            &mut self.authority,
            &mut self.upstream_host,
            &mut self.upstream_cluster,
            &mut self.downstream_local_address,
            &mut self.downstream_remote_address,
            &mut self.requested_server_name,
            &mut self.route_name,
            &mut self.downstream_peer_uri_san,
            &mut self.upstream_peer_uri_san,
            &mut self.downstream_tls_version,
            &mut self.upstream_tls_version,
            &mut self.method,
            &mut self.path,
            &mut self.user_agent,
            &mut self.x_forwarded_for,
            &mut self.request_id,
            &mut self.upstream_service_time,
            &mut self.upstream_local_address,
        ] {
            absent(v);
        }
    }
}

/// Fields that map to no column, counted per row that carries them.
const UNMAPPED: [&str; 9] = [
    "request (method, path, protocol)",
    "response_code",
    "response_flags",
    "user_agent",
    "x_forwarded_for",
    "request_id",
    "requested_server_name",
    "upstream_service_time",
    "upstream_local_address",
];

/// Parser state for one source: unmapped-field counts, address scratch buffers, and a start
/// time framed apart from the rest of its line (see [`IstioAccessParser::parse`]).
#[derive(Debug)]
pub struct IstioAccessParser {
    options: ParseOptions,
    unmapped: [u64; UNMAPPED.len()],
    scratch: [String; 3],
    split_start: Option<(u64, String)>,
}

impl IstioAccessParser {
    /// A parser; `options` carry the JSON caps.
    pub fn new(options: &ParseOptions) -> Self {
        Self {
            options: options.clone(),
            unmapped: [0; UNMAPPED.len()],
            scratch: Default::default(),
            split_start: None,
        }
    }

    fn count_unmapped(&mut self, e: &Entry<'_>) {
        let present = [
            e.method.is_some() || e.path.is_some(),
            e.response_code.is_some(),
            e.response_flags.is_some(),
            e.user_agent.is_some(),
            e.x_forwarded_for.is_some(),
            e.request_id.is_some(),
            e.requested_server_name.is_some(),
            e.upstream_service_time.is_some(),
            e.upstream_local_address.is_some(),
        ];
        for (count, present) in self.unmapped.iter_mut().zip(present) {
            *count += u64::from(present);
        }
    }

    fn emit(&mut self, record: &Record<'_>, mut entry: Entry<'_>, out: &mut Output) {
        entry.clean();
        let mut scratch = std::mem::take(&mut self.scratch);
        match build_row(&entry, &mut scratch) {
            Ok((row, sni_only)) => {
                if sni_only {
                    out.note("istio-access: encrypted inferred from the TLS SNI; peer identity not logged");
                }
                out.flow(record, &row);
                self.count_unmapped(&entry);
            }
            Err((reason, detail)) => out.quarantine(record, reason, &detail),
        }
        self.scratch = scratch;
    }
}

impl Parser for IstioAccessParser {
    fn parse(&mut self, record: &Record<'_>, out: &mut Output) {
        let Ok(text) = std::str::from_utf8(record.bytes) else {
            out.quarantine(record, Reason::InvalidUtf8, "access log record is not valid UTF-8");
            return;
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            out.skip("istio-access: blank line");
            return;
        }
        if trimmed.starts_with('{') {
            match json::decode::<Entry<'_>>(trimmed.as_bytes(), &self.options) {
                Ok(entry) => self.emit(record, entry, out),
                Err((reason, detail)) => out.quarantine(record, reason, &detail),
            }
            return;
        }
        // Under JSON framing (`--format auto` picks it for content starting with `[`) a text
        // line arrives as two records on the same line: `[START_TIME]`, then the rest. The
        // first is kept and joined with the second.
        if is_bare_start_time(trimmed) {
            self.split_start = Some((record.line, trimmed.to_owned()));
            out.skip("istio-access: start time framed apart from its line; joined with the rest");
            return;
        }
        let split = self.split_start.take();
        if trimmed.starts_with('"')
            && let Some((_, start)) = split.filter(|(line, _)| *line == record.line)
        {
            let joined = format!("{start} {trimmed}");
            match parse_text(&joined) {
                Ok(entry) => self.emit(record, entry, out),
                Err((reason, detail)) => out.quarantine(record, reason, &detail),
            }
            return;
        }
        match parse_text(trimmed) {
            Ok(entry) => self.emit(record, entry, out),
            Err((reason, detail)) => out.quarantine(record, reason, &detail),
        }
    }

    fn finish(&mut self, out: &mut Output) {
        for (name, count) in UNMAPPED.iter().zip(&mut self.unmapped) {
            out.note_unmapped(NAME, name, *count);
            *count = 0;
        }
    }
}

fn field_count(what: &str) -> Rejection {
    (
        Reason::FieldCount,
        format!(
            "not Istio's default access-log layout: {what} (22 fields, or 21 before Istio 1.9)"
        ),
    )
}

fn bad(field: &str, value: &str) -> Rejection {
    let shown: String = value.chars().take(64).collect();
    (Reason::BadField, format!("{field}: invalid value {shown:?}"))
}

/// Position of the quote closing a quoted field in `s` (which starts after the opening quote):
/// the first `"` not preceded by a backslash and followed by a space or the end.
fn closing_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(k) = b.get(from..).and_then(|rest| memchr::memchr(b'"', rest)) {
        let at = from + k;
        let escaped = at > 0 && b.get(at - 1) == Some(&b'\\');
        let next = b.get(at + 1);
        if !escaped && matches!(next, None | Some(b' ')) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// A cursor over the fields of a text line.
struct Fields<'a> {
    rest: &'a str,
}

impl<'a> Fields<'a> {
    fn bare(&mut self, name: &str) -> Result<&'a str, Rejection> {
        let s = self.rest.trim_start_matches(' ');
        if s.is_empty() || s.starts_with('"') {
            return Err(field_count(&format!("{name} missing")));
        }
        let end = s.find(' ').unwrap_or(s.len());
        let (token, rest) = s.split_at(end);
        self.rest = rest;
        Ok(token)
    }

    fn quoted(&mut self, name: &str) -> Result<&'a str, Rejection> {
        let s = self.rest.trim_start_matches(' ');
        let Some(inner) = s.strip_prefix('"') else {
            return Err(field_count(&format!("{name} is not quoted")));
        };
        let Some(end) = closing_quote(inner) else {
            return Err(field_count(&format!("{name} has no closing quote")));
        };
        let (value, rest) = inner.split_at(end);
        self.rest = rest.get(1..).unwrap_or_default();
        Ok(value)
    }

    fn next_is_quoted(&self) -> bool {
        self.rest.trim_start_matches(' ').starts_with('"')
    }

    /// The last bare field (read from the right).
    fn bare_from_end(&mut self, name: &str) -> Result<&'a str, Rejection> {
        let s = self.rest.trim_end_matches(' ');
        let (rest, token) =
            s.rsplit_once(' ').ok_or_else(|| field_count(&format!("{name} missing")))?;
        if token.is_empty() || token.contains('"') {
            return Err(field_count(&format!("{name} missing")));
        }
        self.rest = rest;
        Ok(token)
    }
}

/// A quoted value with `\"` unescaped (allocates only when it holds one).
fn unquote(s: &str) -> Cow<'_, str> {
    if s.contains("\\\"") { Cow::Owned(s.replace("\\\"", "\"")) } else { Cow::Borrowed(s) }
}

/// Split the run of quoted header fields `"a" "b" "c"` (outer quotes included) on unescaped
/// `" "` separators.
fn split_quoted_run(run: &str) -> Option<Vec<&str>> {
    let inner = run.strip_prefix('"')?.strip_suffix('"')?;
    let b = inner.as_bytes();
    let mut parts = Vec::with_capacity(5);
    let mut start = 0;
    let mut from = 0;
    while let Some(k) = b.get(from..).and_then(|rest| memchr::memmem::find(rest, b"\" \"")) {
        let at = from + k;
        let escaped = at > 0 && b.get(at - 1) == Some(&b'\\');
        if !escaped {
            parts.push(inner.get(start..at)?);
            start = at + 3;
        }
        from = at + 1;
    }
    parts.push(inner.get(start..)?);
    Some(parts)
}

fn borrowed(v: &str) -> Text<'_> {
    Some(Cow::Borrowed(v))
}

fn parse_text(line: &str) -> Result<Entry<'_>, Rejection> {
    let Some(after) = line.strip_prefix('[') else {
        return Err(field_count("no [START_TIME] at the start"));
    };
    let Some((start, rest)) = after.split_once("] ") else {
        return Err(field_count("[START_TIME] is not closed"));
    };
    let mut f = Fields { rest };
    let request = f.quoted("request line")?;
    let code = f.bare("response code")?;
    let flags = f.bare("response flags")?;
    let (details, termination) = if f.next_is_quoted() {
        // Before Istio 1.9: a quoted mixer status here, no details fields.
        f.quoted("mixer status")?;
        (None, None)
    } else {
        (Some(f.bare("response code details")?), Some(f.bare("connection termination details")?))
    };
    let transport = f.quoted("upstream transport failure reason")?;
    let bytes_received = f.bare("bytes received")?;
    let bytes_sent = f.bare("bytes sent")?;
    let duration = f.bare("duration")?;
    let service_time = f.bare("upstream service time")?;
    let route = f.bare_from_end("route name")?;
    let sni = f.bare_from_end("requested server name")?;
    let downstream_remote = f.bare_from_end("downstream remote address")?;
    let downstream_local = f.bare_from_end("downstream local address")?;
    let upstream_local = f.bare_from_end("upstream local address")?;
    let cluster = f.bare_from_end("upstream cluster")?;
    let headers =
        split_quoted_run(f.rest.trim_matches(' ')).filter(|p| p.len() >= 5).ok_or_else(|| {
            field_count("expected five quoted fields from X-Forwarded-For to UPSTREAM_HOST")
        })?;
    // parts: xff, user agent (may have absorbed extra separators), request id, authority,
    // upstream host.
    let n = headers.len();
    let at = |i: usize| headers.get(i).copied().unwrap_or_default();
    let response_code = match code {
        "-" => None,
        c => Some(parse_count(c.as_bytes()).ok_or_else(|| bad("response_code", c))?),
    };
    let (method, path) = {
        let mut parts = request.split(' ');
        (parts.next(), parts.next())
    };
    Ok(Entry {
        start_time: borrowed(start),
        response_code,
        response_flags: borrowed(flags),
        response_code_details: details.and_then(borrowed),
        connection_termination_details: termination.and_then(borrowed),
        upstream_transport_failure_reason: borrowed(transport),
        downstream_transport_failure_reason: None,
        bytes_received: borrowed(bytes_received),
        bytes_sent: borrowed(bytes_sent),
        duration: borrowed(duration),
        authority: Some(unquote(at(n - 2))),
        upstream_host: Some(unquote(at(n - 1))),
        upstream_cluster: borrowed(cluster),
        downstream_local_address: borrowed(downstream_local),
        downstream_remote_address: borrowed(downstream_remote),
        requested_server_name: borrowed(sni),
        route_name: borrowed(route),
        downstream_peer_uri_san: None,
        upstream_peer_uri_san: None,
        downstream_tls_version: None,
        upstream_tls_version: None,
        method: method.and_then(borrowed),
        path: path.and_then(borrowed),
        user_agent: borrowed(at(1)),
        x_forwarded_for: borrowed(at(0)),
        request_id: Some(unquote(at(n - 3))),
        upstream_service_time: borrowed(service_time),
        upstream_local_address: borrowed(upstream_local),
    })
}

/// `ip:port`, `[v6]:port` or a bare address, split. `None` for Envoy's non-IP addresses
/// (`envoy://internal…`, `unix:…`, abstract sockets `@…`).
fn split_addr(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with("envoy://") || s.starts_with("unix:") || s.starts_with('@') {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, "")) => Some((ip, None)),
            Some((ip, after)) => Some((ip, Some(after.strip_prefix(':').unwrap_or(after)))),
            None => Some((s, None)),
        };
    }
    match s.split_once(':') {
        Some((ip, port)) if !port.contains(':') => Some((ip, Some(port))),
        _ => Some((s, None)),
    }
}

type Endpoint<'a> = (Option<Cow<'a, str>>, Option<i32>);

/// Canonical IP and port of an address field; port 0 (address from X-Forwarded-For) is NULL.
fn endpoint<'a>(
    field: &str,
    value: Option<&'a str>,
    scratch: &'a mut String,
) -> Result<Endpoint<'a>, Rejection> {
    let Some(value) = value else { return Ok((None, None)) };
    let Some((ip, port)) = split_addr(value) else { return Ok((None, None)) };
    let port = match port {
        None => None,
        Some(p) => match parse_port(p.as_bytes()) {
            Some(0) => None,
            Some(p) => Some(p),
            None => return Err(bad(field, value)),
        },
    };
    let ip = canonical_ip(ip, scratch).ok_or_else(|| bad(field, value))?;
    Ok((Some(Cow::Borrowed(ip)), port))
}

/// Whether a failure text names a TLS failure.
fn is_tls_failure(s: &str) -> bool {
    let b = s.as_bytes();
    ["tls", "ssl", "certificate", "handshake"]
        .iter()
        .any(|needle| b.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes())))
}

fn direction_of(cluster: Option<&str>) -> Option<&'static str> {
    let c = cluster?;
    if c.starts_with("inbound|") || c.starts_with("InboundPassthroughCluster") {
        Some("inbound")
    } else if c.starts_with("outbound|") || c == "PassthroughCluster" || c == "BlackHoleCluster" {
        Some("outbound")
    } else {
        None
    }
}

fn count(field: &str, v: Option<&str>) -> Result<Option<i64>, Rejection> {
    match v {
        None => Ok(None),
        Some(s) => parse_count(s.trim().as_bytes()).map(Some).ok_or_else(|| bad(field, s)),
    }
}

/// Build the row; the flag says encryption was inferred from the SNI alone.
fn build_row<'a>(
    e: &'a Entry<'a>,
    scratch: &'a mut [String; 3],
) -> Result<(FlowRow<'a>, bool), Rejection> {
    let Some(start) = e.start_time.as_deref() else {
        return Err((Reason::MissingField, "start_time: absent".to_owned()));
    };
    let Some(time) = json::parse_time(start) else {
        let shown: String = start.chars().take(64).collect();
        return Err((Reason::BadTime, format!("start_time: {shown:?} is not a time in range")));
    };
    let duration_ms = count("duration", e.duration.as_deref())?;
    let end_time = duration_ms
        .and_then(|ms| ms.checked_mul(1_000))
        .and_then(|us| time.checked_add(us))
        .and_then(checked_micros);
    let received = count("bytes_received", e.bytes_received.as_deref())?;
    let sent = count("bytes_sent", e.bytes_sent.as_deref())?;
    let bytes = match (received, sent) {
        (Some(r), Some(s)) => Some(r.checked_add(s).ok_or_else(|| bad("bytes_sent", "overflow"))?),
        (r, s) => r.or(s),
    };

    let cluster = e.upstream_cluster.as_deref();
    let direction = direction_of(cluster);
    let inbound = direction == Some("inbound");
    let [s_src, s_dst, s_local] = scratch;
    let (src_ip, src_port) =
        endpoint("downstream_remote_address", e.downstream_remote_address.as_deref(), s_src)?;
    let (local_ip, local_port) =
        endpoint("downstream_local_address", e.downstream_local_address.as_deref(), s_local)?;
    let (upstream_ip, upstream_port) =
        endpoint("upstream_host", e.upstream_host.as_deref(), s_dst)?;
    let (dst_ip, dst_port, pkt_dst_ip) = if inbound || upstream_ip.is_none() {
        (local_ip, local_port, None)
    } else {
        let vip = local_ip.filter(|l| Some(l) != upstream_ip.as_ref());
        (upstream_ip, upstream_port, vip)
    };

    let details = e.response_code_details.as_deref();
    let termination = e.connection_termination_details.as_deref();
    let denied_by = |d: Option<&'a str>| {
        d.filter(|d| d.starts_with("rbac_access_denied") || d.starts_with("ext_authz_denied"))
    };
    let policy_denial = denied_by(details).or_else(|| denied_by(termination));
    let flag_denial =
        e.response_flags.as_deref().is_some_and(|flags| flags.split(',').any(|f| f == "UAEX"));
    let deny = policy_denial.is_some() || flag_denial || cluster == Some("BlackHoleCluster");
    let rule = match policy_denial {
        Some(d) => Some(Cow::Borrowed(d)),
        None => e.route_name.as_deref().map(Cow::Borrowed),
    };

    let tls_error = [
        e.upstream_transport_failure_reason.as_deref(),
        e.downstream_transport_failure_reason.as_deref(),
        details,
        termination,
    ]
    .into_iter()
    .flatten()
    .find(|s| is_tls_failure(s))
    .map(Cow::Borrowed);

    let (near, far) = if inbound {
        (&e.downstream_tls_version, &e.upstream_tls_version)
    } else {
        (&e.upstream_tls_version, &e.downstream_tls_version)
    };
    let tls_version = near.as_deref().or(far.as_deref()).map(Cow::Borrowed);
    let (near, far) = if inbound {
        (&e.downstream_peer_uri_san, &e.upstream_peer_uri_san)
    } else {
        (&e.upstream_peer_uri_san, &e.downstream_peer_uri_san)
    };
    let peer_identity = near.as_deref().or(far.as_deref()).map(Cow::Borrowed);
    let sni = e.requested_server_name.is_some();
    let encrypted = (sni || tls_version.is_some() || peer_identity.is_some()).then_some(true);
    let sni_only = sni && tls_version.is_none() && peer_identity.is_none();

    let resource = cluster.or(e.authority.as_deref()).map(Cow::Borrowed);
    let row = FlowRow {
        time,
        end_time,
        resource,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        protocol: Some(6),
        direction: direction.map(Cow::Borrowed),
        action: Some(Cow::Borrowed(if deny { "deny" } else { "allow" })),
        bytes,
        rule,
        tls_version,
        peer_identity,
        tls_error,
        pkt_dst_ip,
        encrypted,
        ..FlowRow::default()
    };
    Ok((row, sni_only))
}

/// `[2022-07-20T09:52:24.955Z]` alone: the start time of a text line that JSON framing cut off.
fn is_bare_start_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() <= 48
        && s.starts_with('[')
        && s.ends_with(']')
        && b.get(1..5).is_some_and(|y| y.iter().all(u8::is_ascii_digit))
        && b.get(5) == Some(&b'-')
        && !s.contains([' ', '"'])
}

/// The rest of a text line after its start time: `"METHOD PATH PROTOCOL" CODE …` (or the TCP
/// form `"- - -" 0 …`).
fn is_line_after_start_time(h: &[u8]) -> bool {
    let Some(rest) = h.strip_prefix(b"\"") else { return false };
    let method = rest.iter().take_while(|b| b.is_ascii_uppercase() || **b == b'-').count();
    method > 0
        && rest.get(method) == Some(&b' ')
        && json::contains(h, b"\" ")
        && !json::contains(json::head(h, 16), b"\":")
}

/// Text: `[YYYY-` at the start and `] "` after the timestamp. JSON: Envoy's access-log keys
/// `upstream_cluster`, or `response_flags` with `downstream_remote_address`.
fn sniff(record: &[u8]) -> u8 {
    let h = json::head(record, 2048);
    let start = h.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(h.len());
    let h = h.get(start..).unwrap_or_default();
    match h.first() {
        Some(b'[') => {
            let year = h.get(1..5).is_some_and(|y| y.iter().all(u8::is_ascii_digit));
            if year && h.get(5) == Some(&b'-') && json::contains(h, b"] \"") {
                95
            } else if std::str::from_utf8(h).is_ok_and(is_bare_start_time) {
                70
            } else {
                0
            }
        }
        Some(b'"') if is_line_after_start_time(h) => 70,
        Some(b'{') => {
            let envoy = json::contains(h, b"\"upstream_cluster\"")
                || (json::contains(h, b"\"response_flags\"")
                    && json::contains(h, b"\"downstream_remote_address\""));
            if envoy { 95 } else { 0 }
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::SourceInfo;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
    use arrow::record_batch::RecordBatch;

    fn run(lines: &[&str]) -> (Output, Vec<(Table, RecordBatch)>) {
        let mut parser = IstioAccessParser::new(&ParseOptions::default());
        let mut out = Output::new(16, 0);
        out.begin_source(SourceInfo::lines("k", "access.log"), [0; 4]);
        out.set_format(NAME, Provider::Kubernetes);
        for (i, line) in lines.iter().enumerate() {
            out.begin_record();
            parser.parse(&Record { line: i as u64 + 1, bytes: line.as_bytes() }, &mut out);
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

    fn i32_of(b: &RecordBatch, c: &str, i: usize) -> Option<i32> {
        let a = b.column_by_name(c).expect(c).as_primitive::<Int32Type>();
        a.is_valid(i).then(|| a.value(i))
    }

    const OUTBOUND: &str = r#"[2022-08-22T13:08:23.188Z] "GET /reviews/0 HTTP/1.1" 200 - via_upstream - "-" 0 442 12 12 "-" "curl/7.79.1" "00bc" "reviews:9080" "10.124.1.5:9080" outbound|9080||reviews.default.svc.cluster.local 10.124.2.6:50960 10.0.18.132:9080 10.124.2.6:52930 - default"#;

    #[test]
    fn outbound_text_line_maps_endpoint_vip_and_bytes() {
        let (out, batches) = run(&[OUTBOUND]);
        assert_eq!(out.counts().rows_in(Table::Flows), 1);
        let b = &batches[0].1;
        assert_eq!(s(b, "direction", 0).as_deref(), Some("outbound"));
        assert_eq!(s(b, "src_ip", 0).as_deref(), Some("10.124.2.6"));
        assert_eq!(i32_of(b, "src_port", 0), Some(52930));
        assert_eq!(s(b, "dst_ip", 0).as_deref(), Some("10.124.1.5"));
        assert_eq!(s(b, "pkt_dst_ip", 0).as_deref(), Some("10.0.18.132"));
        assert_eq!(s(b, "action", 0).as_deref(), Some("allow"));
        assert_eq!(s(b, "rule", 0).as_deref(), Some("default"));
        assert!(b.column_by_name("encrypted").expect("c").is_null(0), "no SNI: unknown");
        let bytes = b.column_by_name("bytes").expect("c").as_primitive::<Int64Type>();
        assert_eq!(bytes.value(0), 442);
        let t = b.column_by_name("time").expect("c").as_primitive::<TimestampMicrosecondType>();
        let e = b.column_by_name("end_time").expect("c").as_primitive::<TimestampMicrosecondType>();
        assert_eq!(e.value(0) - t.value(0), 12_000);
        assert_eq!(out.counts().unmapped.get("istio-access: user_agent"), Some(&1));
    }

    #[test]
    fn inbound_mtls_sni_sets_encrypted_but_no_identity() {
        let line = r#"[2022-07-20T09:52:25.642Z] "GET /x HTTP/1.1" 200 - via_upstream - "-" 0 18028 3 3 "10.128.0.64" "UA" "96bf" "35.184.82.199" "10.68.1.7:9080" inbound|9080|| 127.0.0.6:41929 10.68.1.7:9080 10.128.0.64:0 outbound_.9080_._.productpage.default.svc.cluster.local default"#;
        let (out, batches) = run(&[line]);
        let b = &batches[0].1;
        assert_eq!(s(b, "direction", 0).as_deref(), Some("inbound"));
        assert_eq!(i32_of(b, "src_port", 0), None, "port 0 from X-Forwarded-For is unknown");
        assert_eq!(s(b, "dst_ip", 0).as_deref(), Some("10.68.1.7"));
        assert_eq!(s(b, "pkt_dst_ip", 0), None);
        let enc = b.column_by_name("encrypted").expect("c").as_boolean();
        assert!(enc.value(0));
        assert_eq!(s(b, "peer_identity", 0), None);
        assert_eq!(out.counts().notes.len(), 1);
    }

    #[test]
    fn tls_failure_is_recorded_and_upstream_failures_stay_allowed() {
        let tls = r#"[2024-03-01T10:00:00.000Z] "GET / HTTP/1.1" 503 UF,URX upstream_reset_before_response_started{connection_failure,TLS_error:_268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED} - "TLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED" 0 190 5 - "-" "curl/8.5.0" "r1" "pay:8443" "10.1.2.3:8443" outbound|8443||pay.prod.svc.cluster.local - 10.96.0.20:8443 10.1.9.9:40000 - default"#;
        let uh = r#"[2022-06-22T10:17:14.118Z] "GET /status/418 HTTP/1.1" 503 UH no_healthy_upstream - "-" 0 19 1 - "-" "curl" "57" "httpbin:8000" "-" outbound|8000||httpbin.default.svc.cluster.local - 10.99.37.119:8000 172.17.0.6:44690 - default"#;
        let (_, batches) = run(&[tls, uh]);
        let b = &batches[0].1;
        assert_eq!(
            s(b, "tls_error", 0).as_deref(),
            Some("TLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED")
        );
        assert_eq!(s(b, "action", 0).as_deref(), Some("allow"));
        assert_eq!(s(b, "tls_error", 1), None);
        assert_eq!(s(b, "dst_ip", 1).as_deref(), Some("10.99.37.119"), "no upstream: VIP");
        assert!(b.column_by_name("end_time").expect("c").is_valid(1));
    }

    #[test]
    fn rbac_denials_are_deny_with_the_policy_as_rule() {
        let http = r#"[2024-03-01T10:00:00.000Z] "GET /admin HTTP/1.1" 403 - rbac_access_denied_matched_policy[ns[prod]-policy[deny-admin]-rule[0]] - "-" 0 19 0 - "-" "curl" "r2" "api:80" "-" inbound|80|| - 10.1.2.3:80 10.1.9.9:40000 outbound_.80_._.api.prod.svc.cluster.local -"#;
        let tcp = r#"[2024-03-01T10:00:01.000Z] "- - -" 0 UAEX - rbac_access_denied_matched_policy[none] "-" 0 0 1 - "-" "-" "-" "-" "-" inbound|5432|| - 10.1.2.4:5432 10.1.9.9:40001 - -"#;
        let blackhole = r#"[2024-03-01T10:00:02.000Z] "- - -" 0 UH - - "-" 0 0 0 - "-" "-" "-" "-" "-" BlackHoleCluster - 93.184.216.34:443 10.1.9.9:40002 - block_all"#;
        let (out, batches) = run(&[http, tcp, blackhole]);
        assert_eq!(out.counts().rows_in(Table::Flows), 3, "{:?}", out.counts());
        let b = &batches[0].1;
        for i in 0..3 {
            assert_eq!(s(b, "action", i).as_deref(), Some("deny"), "row {i}");
        }
        assert_eq!(
            s(b, "rule", 0).as_deref(),
            Some("rbac_access_denied_matched_policy[ns[prod]-policy[deny-admin]-rule[0]]")
        );
        assert_eq!(s(b, "rule", 1).as_deref(), Some("rbac_access_denied_matched_policy[none]"));
        assert_eq!(s(b, "rule", 2).as_deref(), Some("block_all"));
        assert_eq!(s(b, "direction", 2).as_deref(), Some("outbound"));
    }

    #[test]
    fn quotes_inside_header_fields_do_not_shift_columns() {
        let line = r#"[2024-03-01T10:00:00.000Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 1 2 3 3 "-" "evil" "agent \" \"with quotes" "rid" "host:80" "10.1.2.3:80" outbound|80||host.ns.svc.cluster.local 10.1.9.9:1 10.96.0.1:80 10.1.9.9:2 - default"#;
        let (out, batches) = run(&[line]);
        assert_eq!(out.counts().rows_in(Table::Flows), 1);
        let b = &batches[0].1;
        assert_eq!(s(b, "dst_ip", 0).as_deref(), Some("10.1.2.3"));
        assert_eq!(s(b, "resource", 0).as_deref(), Some("outbound|80||host.ns.svc.cluster.local"));
    }

    #[test]
    fn json_mixes_null_and_dash_and_string_numbers() {
        let line = r#"{"authority":"-","bytes_received":"5","bytes_sent":11,"downstream_local_address":"10.124.2.10:8080","downstream_remote_address":"[2a02:cf40:0::4e36]:5000","duration":"46","response_code":400,"response_code_details":"http1.codec_error","response_flags":"DPE","route_name":"-","start_time":"2022-09-01T09:36:33.553Z","upstream_cluster":null,"upstream_host":"-","upstream_transport_failure_reason":"-","downstream_peer_uri_san":"spiffe://cluster.local/ns/a/sa/b","downstream_tls_version":"TLSv1.3"}"#;
        let (out, batches) = run(&[line]);
        assert_eq!(out.counts().rows_in(Table::Flows), 1, "{:?}", out.counts());
        let b = &batches[0].1;
        assert_eq!(s(b, "src_ip", 0).as_deref(), Some("2a02:cf40::4e36"));
        assert_eq!(i32_of(b, "src_port", 0), Some(5000));
        assert_eq!(s(b, "resource", 0), None);
        assert_eq!(s(b, "rule", 0), None);
        assert_eq!(s(b, "peer_identity", 0).as_deref(), Some("spiffe://cluster.local/ns/a/sa/b"));
        assert_eq!(s(b, "tls_version", 0).as_deref(), Some("TLSv1.3"));
        let bytes = b.column_by_name("bytes").expect("c").as_primitive::<Int64Type>();
        assert_eq!(bytes.value(0), 16);
    }

    #[test]
    fn hostile_lines_are_quarantined_with_a_reason() {
        let (out, batches) = run(&[
            r#"[not a time] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 1 1 1 "-" "-" "-" "-" "-" - - - - - -"#,
            r#"[2024-03-01T10:00:00.000Z] "GET / HTTP/1.1" 200"#,
            r#"[2024-03-01T10:00:00.000Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 x 1 1 "-" "-" "-" "-" "-" - - - - - -"#,
            r#"[2024-03-01T10:00:00.000Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 1 1 1 "-" "-" "-" "-" "-" - - - 999.1.1.1:80 - -"#,
            r#"{"start_time": "2024-03-01T10:00:00Z", "bytes_sent": "#,
            r#"{"upstream_cluster": "outbound|80||a"}"#,
        ]);
        assert_eq!(out.counts().rows_in(Table::Flows), 0);
        let q = &batches[0].1;
        let reasons: Vec<String> = (0..6).filter_map(|i| s(q, "reason", i)).collect();
        assert_eq!(
            reasons,
            ["bad_time", "field_count", "bad_field", "bad_field", "bad_json", "missing_field"]
        );
        assert!(s(q, "detail", 2).expect("detail").starts_with("bytes_sent"));
        assert!(s(q, "detail", 3).expect("detail").starts_with("downstream_remote_address"));
    }

    #[test]
    fn a_line_split_by_json_framing_is_joined() {
        let mut parser = IstioAccessParser::new(&ParseOptions::default());
        let mut out = Output::new(4, 0);
        out.begin_source(SourceInfo::lines("k", "access.log"), [0; 4]);
        out.set_format(NAME, Provider::Kubernetes);
        let (start, rest) = OUTBOUND.split_at(OUTBOUND.find(' ').expect("space"));
        assert!(sniff(start.as_bytes()) >= 50 && sniff(rest.trim().as_bytes()) >= 50);
        for part in [start, rest.trim()] {
            out.begin_record();
            parser.parse(&Record { line: 3, bytes: part.as_bytes() }, &mut out);
            out.end_record();
        }
        // The rest alone, on another line, has no start time.
        out.begin_record();
        parser.parse(&Record { line: 4, bytes: rest.trim().as_bytes() }, &mut out);
        out.end_record();
        assert_eq!(out.counts().rows_in(Table::Flows), 1);
        assert_eq!(out.counts().quarantined.get("field_count"), Some(&1));
        let batches = out.take_batches(0);
        assert_eq!(s(&batches[0].1, "source", 0).as_deref(), Some("access.log:3"));
        assert_eq!(s(&batches[0].1, "dst_ip", 0).as_deref(), Some("10.124.1.5"));
    }

    #[test]
    fn sniff_claims_istio_only() {
        assert!(sniff(FORMAT.example.as_bytes()) >= 90);
        assert!(sniff(br#"{"upstream_cluster":"inbound|9080||","start_time":"x"}"#) >= 90);
        assert_eq!(sniff(b"[{\"a\":1}]"), 0);
        assert_eq!(sniff(b"2 123 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1 2 ACCEPT OK"), 0);
        assert_eq!(sniff(b"{\"records\":[]}"), 0);
        assert_eq!(sniff(b"\"just a json string\""), 0);
        assert_eq!(sniff(b"[2022-07-20 bad]"), 0);
    }
}
