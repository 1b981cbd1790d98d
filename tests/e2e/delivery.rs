//! On-call delivery end to end: email through a real SMTP server on loopback (Python
//! `aiosmtpd`, started by each test from the venv `.ci/run` prepares: recipients, subject,
//! runbook and links on the raw received message; STARTTLS required refuses a server without
//! it; a down server is retried and nothing is lost; hostile values add no header, recipient or
//! early end of DATA), and the whole loop through the binary: ingest with detection → email in
//! the outbox or the SMTP server → acknowledge (signed link through `ztlake serve`, or
//! `ztlake alerts ack`) → `alert_events` shows raised, notified, acknowledged with their times,
//! and the README's time-to-acknowledge SQL answers.
//!
//! The SMTP tests skip (printing SKIPPED) only when `ZTLAKE_PYTHON` is unset and
//! `ZTLAKE_REQUIRE_PEERS` is not set; in CI both are set and the tests must run.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ztlake_detections::alert::{Aggregate, Evidence, WindowEvidence};
use ztlake_detections::{Alert, Severity};
use ztlake_runbooks::{
    Catalog, Clock as _, Dispatcher, ManualClock, MemorySink, OncallConfig, StepKind,
};

use super::Scratch;

const T0: i64 = 1_700_000_000_000_000;

/// A runbook of the tests' own (the shipped ones belong to their authors): a line holding only
/// a dot, and one starting with two, which SMTP must carry through DATA unchanged.
const RUNBOOK: &str = "---\nid: smtp-test\ntitle: SMTP test runbook\nowner: netsec\nescalation:\n  high: 1h\n---\n# SMTP test runbook\n\n## What it means\nUser {{user}} reached {{dst_ip}}.\n\n## Triage\nCheck {{dst_ip}}.\n.\n..two dots\nafter-the-dot\n\n## Hunt\n```sql\nSELECT * FROM signins WHERE user = {{user}}\n```\n\n## Contain\nDisable the user.\n\n## Rollback\nRe-enable the user.\n\n## Escalate\nPage netsec.\n";

fn catalog() -> Catalog {
    Catalog::from_sources(&[(PathBuf::from("smtp-test.md"), RUNBOOK.to_owned())])
        .expect("test runbook")
}

fn alert(id: &str, user: &str) -> Alert {
    Alert {
        alert_id: id.to_owned(),
        rule_id: "zt-test-rule".into(),
        title: "Test alert".into(),
        severity: Severity::High,
        provider: "okta".into(),
        entity: BTreeMap::from([
            ("user".to_owned(), Some(user.to_owned())),
            ("dst_ip".to_owned(), Some("10.0.0.5".to_owned())),
        ]),
        dedupe_key: vec![Some(user.to_owned())],
        first_seen: T0,
        last_seen: T0 + 60_000_000,
        count: 4,
        runbook: "smtp-test".into(),
        evidence_uids: vec!["e1".into()],
        evidence: Evidence {
            aggregate: Aggregate::Sum,
            windows: vec![WindowEvidence {
                start: "2023-11-14T22:10:00Z".into(),
                count: 4,
                summary: format!("user={user}"),
            }],
        },
        tags: vec!["T1110".into()],
        updated: T0,
    }
}

/// The venv's Python with aiosmtpd, or None when the test should skip.
fn python_with_aiosmtpd() -> Option<String> {
    let require = std::env::var_os("ZTLAKE_REQUIRE_PEERS").is_some();
    let Ok(python) = std::env::var("ZTLAKE_PYTHON") else {
        assert!(!require, "ZTLAKE_PYTHON must name a Python with aiosmtpd (.ci/run sets it)");
        eprintln!("SKIPPED: ZTLAKE_PYTHON is not set (set ZTLAKE_REQUIRE_PEERS=1 to fail instead)");
        return None;
    };
    let probe = Command::new(&python).args(["-c", "import aiosmtpd"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "{python} cannot import aiosmtpd (pip install aiosmtpd; .ci/run installs it): {probe:?}"
    );
    Some(python)
}

/// aiosmtpd storing every message it accepts as JSON (envelope and raw bytes).
const SMTP_SERVER: &str = r#"
import json, os, sys
from aiosmtpd.controller import Controller

out, port = sys.argv[1], int(sys.argv[2])

class Store:
    async def handle_DATA(self, server, session, envelope):
        n = len([f for f in os.listdir(out) if f.endswith(".json")])
        with open(os.path.join(out, "%04d.eml" % n), "wb") as f:
            f.write(envelope.original_content or b"")
        tmp = os.path.join(out, "%04d.tmp" % n)
        with open(tmp, "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.rename(tmp, os.path.join(out, "%04d.json" % n))
        return "250 2.0.0 stored"

controller = Controller(Store(), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

/// A received message.
#[derive(Debug, Clone)]
struct Received {
    rcpt_tos: Vec<String>,
    raw: String,
}

impl Received {
    /// The header block (up to the first empty line), folded lines joined.
    fn headers(&self) -> String {
        let block = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        block.replace("\r\n ", " ").replace("\r\n\t", " ")
    }

    /// Top-level header names, in order.
    fn header_names(&self) -> Vec<String> {
        self.headers()
            .split("\r\n")
            .filter(|l| !l.starts_with([' ', '\t']) && !l.is_empty())
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
            .collect()
    }

    /// The raw message with quoted-printable soft breaks and escapes decoded.
    fn decoded(&self) -> String {
        qp_decode(&self.raw)
    }
}

/// The subject text (RFC 2047 encoded words are left as they are; ASCII subjects are plain).
fn text_subject(header: &str) -> String {
    header.trim_start_matches("Subject:").trim().to_owned()
}

fn qp_decode(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A running aiosmtpd on loopback; stopped when dropped.
struct SmtpServer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl SmtpServer {
    fn start(python: &str, port: u16) -> SmtpServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(python)
            .args(["-c", SMTP_SERVER, dir.path().to_str().expect("utf8"), &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start aiosmtpd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line =
            rx.recv_timeout(Duration::from_secs(30)).expect("aiosmtpd did not start in 30 s");
        assert_eq!(line.trim(), "ready", "aiosmtpd: {line:?}");
        SmtpServer { child, dir, port }
    }

    fn received(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(f).expect("read")).expect("json");
                let raw = std::fs::read(f.with_extension("eml")).expect("raw message");
                Received {
                    rcpt_tos: v["rcpt_tos"]
                        .as_array()
                        .expect("rcpt")
                        .iter()
                        .map(|r| r.as_str().expect("str").to_owned())
                        .collect(),
                    raw: String::from_utf8(raw).expect("the raw message is ASCII"),
                }
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn smtp_config(port: u16, security: &str, extra: &str) -> String {
    let plaintext = if security == "none" { "allow_plaintext = true\n" } else { "" };
    format!(
        r#"
[oncall]
from = "ztlake <ztlake@example.com>"
[[oncall.targets]]
name = "netsec"
email = ["oncall@example.com", "lead@example.com"]
[[oncall.routes]]
targets = ["netsec"]
[oncall.smtp]
host = "127.0.0.1"
port = {port}
security = "{security}"
timeout = "5s"
{plaintext}
[oncall.delivery]
retry_initial = "30s"
{extra}
"#
    )
}

struct Setup {
    outbox: tempfile::TempDir,
    clock: Arc<ManualClock>,
    sink: Arc<MemorySink>,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            outbox: tempfile::tempdir().expect("tempdir"),
            clock: ManualClock::new(T0),
            sink: Arc::new(MemorySink::default()),
        }
    }

    fn dispatcher(&self, toml: &str) -> Dispatcher {
        let config = OncallConfig::from_toml(toml, None)
            .expect("config")
            .with_default_outbox(self.outbox.path());
        Dispatcher::new(config, catalog(), self.clock.clone(), self.sink.clone())
            .expect("dispatcher")
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn smtp_delivers_recipients_subject_runbook_and_links_and_hostile_values_stay_data() {
    let Some(python) = python_with_aiosmtpd() else { return };
    let server = SmtpServer::start(&python, free_port());
    let s = Setup::new();
    let d = s.dispatcher(&smtp_config(server.port, "none", ""));
    let hostile = "x\r\nBcc: attacker@example.com\n.\nMAIL FROM:<evil@example.com>\r\n.\r\nRCPT TO:<attacker@example.com>\r\nDATA\r\n";
    let a = alert("00000000000000a1", hostile);
    let rt = runtime();
    d.submit(&a).expect("submit");
    let r = rt.block_on(d.tick()).expect("tick");
    assert_eq!(r.delivered, 1, "{r:?}");

    let got = server.received();
    assert_eq!(got.len(), 1, "exactly one message: the hostile value ended nothing early");
    let m = &got[0];
    let mut rcpt = m.rcpt_tos.clone();
    rcpt.sort();
    assert_eq!(rcpt, ["lead@example.com", "oncall@example.com"], "only the configured recipients");
    let mut names = m.header_names();
    names.sort();
    assert_eq!(
        names,
        ["Content-Type", "Date", "From", "MIME-Version", "Message-ID", "Subject", "To"],
        "exactly the expected headers:\n{}",
        m.headers()
    );
    assert!(!m.raw.to_ascii_lowercase().contains("\r\nbcc:"), "{}", m.raw);
    // (Inside the body, quoted-printable may wrap a line before `RCPT TO:`: that is data, and
    // only `CRLF.CRLF` ends DATA — the single message with intact text after the dot proves it.)
    let subject =
        m.headers().split("\r\n").find(|l| l.starts_with("Subject:")).expect("subject").to_owned();
    assert!(subject.starts_with("Subject: "), "{subject}");
    assert!(text_subject(&subject).starts_with("[ztlake] HIGH Test alert: "), "{subject}");

    let text = m.decoded();
    assert!(text.contains("To: oncall@example.com, lead@example.com"), "{text}");
    assert!(text.contains("Severity:   HIGH"), "{text}");
    assert!(text.contains("Runbook: SMTP test runbook (smtp-test), owner netsec"), "{text}");
    assert!(
        text.contains("Check 10.0.0.5.\r\n.\r\n..two dots\r\nafter-the-dot"),
        "dot lines arrive unchanged:\n{text}"
    );
    assert!(text.contains("WHERE user = 'x  Bcc: attacker@example.com"), "SQL literal: {text}");
    let ack = text
        .split("Acknowledge: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("ack link");
    let resolve = text
        .split("Resolve:     ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("resolve link");
    assert!(ack.starts_with("http://127.0.0.1:8425/ack?t=v1."), "{ack}");
    assert!(resolve.starts_with("http://127.0.0.1:8425/resolve?t=v1."), "{resolve}");
    let token = ack.split("?t=").nth(1).expect("token");
    let claims = d.signer().verify(token, s.clock.now()).expect("the link verifies");
    assert_eq!((claims.alert_id.as_str(), claims.actor.as_str()), ("00000000000000a1", "netsec"));
    assert!(text.contains("text/html"), "an HTML alternative: {text}");
    // No line of the body is a bare value line that starts a header or a command.
    for line in text.split("\r\n") {
        assert!(!line.starts_with("Bcc:") && !line.starts_with("RCPT TO:"), "{line:?} in\n{text}");
    }
    let notified = s.sink.of_kind(StepKind::Notified);
    assert_eq!(notified.len(), 1);
    assert!(
        notified[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("accepted by the SMTP server (250")),
        "{notified:?}"
    );
}

#[test]
fn starttls_required_refuses_a_server_that_does_not_offer_it() {
    let Some(python) = python_with_aiosmtpd() else { return };
    let server = SmtpServer::start(&python, free_port());
    let s = Setup::new();
    let d = s.dispatcher(&smtp_config(server.port, "starttls", ""));
    d.submit(&alert("00000000000000a2", "alice")).expect("submit");
    let r = runtime().block_on(d.tick()).expect("tick");
    assert_eq!(r.delivered, 0, "{r:?}");
    assert_eq!(r.retrying + r.failed, 1, "{r:?}");
    assert!(server.received().is_empty(), "nothing was sent in plaintext");
    let failed = s.sink.of_kind(StepKind::DeliveryFailed);
    assert_eq!(failed.len(), 1);
    let detail = failed[0].detail.clone().unwrap_or_default();
    assert!(detail.contains("refusing to send without TLS"), "{detail}");
}

#[test]
fn a_down_smtp_server_is_retried_and_every_message_arrives_once_it_is_back() {
    let Some(python) = python_with_aiosmtpd() else { return };
    let port = free_port();
    let s = Setup::new();
    let rt = runtime();
    {
        let d = s.dispatcher(&smtp_config(port, "none", ""));
        d.submit(&alert("00000000000000b1", "alice")).expect("submit");
        d.submit(&alert("00000000000000b2", "bob")).expect("submit");
        let r = rt.block_on(d.tick()).expect("tick");
        assert_eq!((r.delivered, r.retrying), (0, 2), "{r:?}");
        let failed = s.sink.of_kind(StepKind::DeliveryFailed);
        assert_eq!(failed.len(), 2);
        assert!(
            failed.iter().all(|f| f
                .detail
                .as_deref()
                .is_some_and(|d| d.starts_with("pending: attempt 1 failed"))),
            "{failed:?}"
        );
    }
    // The server comes back; a new process over the same outbox (a restart) delivers both
    // once the backoff has passed — not before.
    let server = SmtpServer::start(&python, port);
    let d = s.dispatcher(&smtp_config(port, "none", ""));
    s.clock.advance(Duration::from_secs(29));
    assert_eq!(rt.block_on(d.tick()).expect("tick").delivered, 0, "still backing off");
    s.clock.advance(Duration::from_secs(1));
    let r = rt.block_on(d.tick()).expect("tick");
    assert_eq!(r.delivered, 2, "{r:?}");
    let got = server.received();
    assert_eq!(got.len(), 2);
    let mut users: Vec<bool> = ["alice", "bob"]
        .iter()
        .map(|u| got.iter().any(|m| m.decoded().contains(&format!("user={u}"))))
        .collect();
    users.dedup();
    assert_eq!(users, [true]);
    assert_eq!(s.sink.of_kind(StepKind::Notified).len(), 2);
    assert_eq!(d.pending().expect("pending"), 0);
    assert_eq!(rt.block_on(d.tick()).expect("tick").delivered, 0, "nothing twice");
    assert_eq!(server.received().len(), 2);
}

// ---- the whole loop through the binary ----------------------------------------------------

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn pack_flags() -> Vec<String> {
    vec![
        "--rules".into(),
        root().join("detections/rules").display().to_string(),
        "--runbooks".into(),
        root().join("runbooks").display().to_string(),
        "--reference".into(),
        root().join("detections/reference").display().to_string(),
    ]
}

/// Two accepted RDP flows from the internet to 10.0.0.5: the admin-port rule's known incident.
const INCIDENT: &str = "\
2 123456789012 eni-1 91.240.118.7 10.0.0.5 40000 3389 6 3 180 1700000000 1700000060 ACCEPT OK
2 123456789012 eni-1 91.240.118.8 10.0.0.5 40001 3389 6 3 180 1700000100 1700000160 ACCEPT OK
2 123456789012 eni-1 10.0.1.7 10.0.0.9 40002 443 6 3 180 1700000100 1700000160 ACCEPT OK
";

const RULE: &str = "zt-net-admin-port-exposed";

/// The title of the shipped runbook `id` (from its front matter).
fn runbook_title(id: &str) -> String {
    let text =
        std::fs::read_to_string(root().join("runbooks").join(format!("{id}.md"))).expect("runbook");
    text.lines().find_map(|l| l.strip_prefix("title: ")).expect("title").trim().to_owned()
}

/// The id of the admin-port alert in the lake.
fn incident_id(s: &Scratch) -> String {
    let out = s.ok(&["alerts", "--rule", RULE, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let list = v.as_array().expect("array");
    assert_eq!(list.len(), 1, "{out}");
    list[0]["alert_id"].as_str().expect("id").to_owned()
}

/// `SELECT … FROM alert_events` of one alert, as JSON rows.
fn events(s: &Scratch, id: &str) -> Vec<serde_json::Value> {
    let sql = format!(
        "SELECT event, channel, target, actor, detail, CAST(time AS VARCHAR) AS time FROM alert_events WHERE alert_id = '{id}' ORDER BY time, event"
    );
    let out = s.ok(&["hunt", "--format", "json", &sql]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("hunt json");
    v.as_array().expect("rows").clone()
}

fn kinds(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter().map(|r| r["event"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The README's response-time query (kept identical to the README's on-call section).
const RESPONSE_TIMES: &str = "SELECT alert_id, min(severity) AS severity,
       min(CASE WHEN event = 'raised' THEN time END) AS raised,
       date_part('epoch', min(CASE WHEN event = 'acknowledged' THEN time END))
         - date_part('epoch', min(CASE WHEN event = 'raised' THEN time END)) AS seconds_to_ack,
       date_part('epoch', min(CASE WHEN event = 'resolved' THEN time END))
         - date_part('epoch', min(CASE WHEN event = 'raised' THEN time END)) AS seconds_to_resolve
FROM alert_events
GROUP BY alert_id
ORDER BY raised DESC";

/// `seconds_to_ack` or `seconds_to_resolve` of one alert, from [`RESPONSE_TIMES`].
fn seconds_to(s: &Scratch, id: &str, column: &str) -> f64 {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    assert!(readme.contains(RESPONSE_TIMES), "the README documents this query");
    let sql = format!("SELECT {column} FROM ({RESPONSE_TIMES}) WHERE alert_id = '{id}'");
    let out = s.ok(&["hunt", "--format", "json", &sql]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v[0][column].as_f64().unwrap_or_else(|| panic!("no {column}: {out}"))
}

/// `ztlake serve` as a child process; stopped when dropped.
struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start(s: &Scratch, extra: &[&str]) -> Serve {
        let lake = s.lake();
        let mut args =
            vec!["--lake", lake.to_str().expect("utf8"), "serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let runbooks = root().join("runbooks");
        args.extend(["--runbooks", runbooks.to_str().expect("utf8")]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ztlake"))
            .args(&args)
            .env_remove("ZTLAKE_LAKE")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ztlake serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("ztlake serve did not start");
        let addr = line
            .strip_prefix("listening on http://")
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("first line: {line:?}"))
            .to_owned();
        Serve { child, addr }
    }

    /// One HTTP/1.1 request; (status, body).
    fn request(&self, method: &str, path: &str, form: Option<&str>) -> (u16, String) {
        // The address is printed only once the listener is bound: connecting cannot race.
        let mut stream =
            TcpStream::connect(&self.addr).unwrap_or_else(|e| panic!("connect {}: {e}", self.addr));
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let body = form.unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("response: {response}"));
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ingest_detect_outbox_signed_link_ack_and_response_times_in_the_lake() {
    let s = Scratch::new();
    let input = s.path("incident.log");
    std::fs::write(&input, INCIDENT).expect("write");
    let mut args = vec!["ingest".to_owned(), "--detect".to_owned(), input.display().to_string()];
    args.extend(pack_flags());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.ok(&args);
    assert!(out.contains("on-call: "), "{out}");
    let id = incident_id(&s);

    // Without configuration: the owner's mailbox, as an .eml file in <lake>/outbox/mail.
    let mail_dir = s.lake().join("outbox").join("mail");
    let mails: Vec<String> = std::fs::read_dir(&mail_dir)
        .expect("outbox mail dir")
        .filter_map(|e| e.ok())
        .map(|e| qp_decode(&std::fs::read_to_string(e.path()).expect("eml")))
        .filter(|m| m.contains(&format!("Alert id:   {id}")))
        .collect();
    assert_eq!(mails.len(), 1, "one message for the incident");
    let mail = &mails[0];
    assert!(
        mail.contains("Subject: [ztlake] HIGH Admin port reachable from the internet"),
        "{mail}"
    );
    assert!(mail.contains("To: network-security@localhost"), "the runbook owner: {mail}");
    let runbook = format!(
        "Runbook: {} (exposed-admin-port), owner network-security",
        runbook_title("exposed-admin-port")
    );
    assert!(
        mail.contains(&runbook) && mail.contains("## Triage"),
        "the runbook travels with the alert:\n{mail}"
    );
    assert!(
        mail.contains("10.0.0.5") && !mail.contains("{{dst_ip}}"),
        "placeholders filled:\n{mail}"
    );
    let token = mail
        .split("/ack?t=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("ack link")
        .to_owned();
    let rows = events(&s, &id);
    assert_eq!(kinds(&rows), ["raised", "notified"], "{rows:?}");
    assert_eq!(rows[1]["channel"], "email");
    assert_eq!(rows[1]["target"], "network-security");

    // Acknowledge through the signed link served by `ztlake serve`.
    let serve = Serve::start(&s, &["--links-only"]);
    let (status, page) = serve.request("GET", &format!("/ack?t={token}"), None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(kinds(&events(&s, &id)), ["raised", "notified"], "opening the link records nothing");
    let mut tampered = token.clone();
    let last = if tampered.ends_with('x') { 'y' } else { 'x' };
    tampered.pop();
    tampered.push(last);
    let (status, _) = serve.request("POST", "/ack", Some(&format!("t={tampered}")));
    assert_eq!(status, 403, "a tampered link is rejected");
    let (status, page) = serve.request("POST", "/ack", Some(&format!("t={token}")));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("acknowledged by <b>network-security</b>"), "{page}");
    drop(serve);

    let rows = events(&s, &id);
    assert_eq!(kinds(&rows), ["raised", "notified", "acknowledged"], "{rows:?}");
    assert_eq!(rows[2]["actor"], "network-security");
    assert!(
        rows.iter().all(|r| r["time"].as_str().is_some_and(|t| t.starts_with("20"))),
        "{rows:?}"
    );
    let to_ack = seconds_to(&s, &id, "seconds_to_ack");
    assert!((0.0..600.0).contains(&to_ack), "time to acknowledge {to_ack}");
    let listed = s.ok(&["alerts", "--status", "acknowledged", "--format", "json"]);
    assert!(listed.contains(&id), "{listed}");

    // Detection again over the same data: nothing new to send, no second message.
    let mut again = vec!["detect".to_owned()];
    again.extend(pack_flags());
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    let out = s.ok(&again);
    assert!(out.contains("on-call: "), "{out}");
    assert_eq!(kinds(&events(&s, &id)), ["raised", "notified", "acknowledged"]);
    let count = std::fs::read_dir(&mail_dir)
        .expect("mail dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path())
                .is_ok_and(|m| qp_decode(&m).contains(&format!("Alert id:   {id}")))
        })
        .count();
    assert_eq!(count, 1, "one incident, one message");
}

#[test]
fn detect_mails_through_smtp_then_cli_ack_and_resolve_are_recorded() {
    let Some(python) = python_with_aiosmtpd() else { return };
    let server = SmtpServer::start(&python, free_port());
    let s = Scratch::new();
    let input = s.path("incident.log");
    std::fs::write(&input, INCIDENT).expect("write");
    s.ok(&["ingest", input.to_str().expect("utf8")]);
    let config = s.path("ztlake.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\nnote = \"other sections belong to other parts of ztlake\"\n{}\n[[oncall.routes]]\nrules = [\"{RULE}\"]\ntargets = [\"netsec\"]\nstop = true\n",
            smtp_config(server.port, "none", "")
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8");
    let mut args = vec!["--config".to_owned(), config.to_owned(), "detect".to_owned()];
    args.extend(pack_flags());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.ok(&args);
    assert!(out.contains("delivered"), "{out}");
    let id = incident_id(&s);

    let got = server.received();
    let m = got
        .iter()
        .find(|m| m.decoded().contains(&format!("Alert id:   {id}")))
        .unwrap_or_else(|| panic!("the incident's message: {got:?}"));
    let mut rcpt = m.rcpt_tos.clone();
    rcpt.sort();
    assert_eq!(rcpt, ["lead@example.com", "oncall@example.com"]);
    let text = m.decoded();
    assert!(
        text.contains("Subject: [ztlake] HIGH Admin port reachable from the internet"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Runbook: {} (exposed-admin-port)",
            runbook_title("exposed-admin-port")
        )),
        "{text}"
    );
    assert!(text.contains("/ack?t=v1.") && text.contains("/resolve?t=v1."), "{text}");
    assert!(
        !s.lake().join("outbox").join("mail").exists()
            || std::fs::read_dir(s.lake().join("outbox").join("mail"))
                .map(|d| d.count())
                .unwrap_or(0)
                == 0,
        "SMTP configured: no .eml files"
    );

    s.ok(&["--config", config, "alerts", "ack", &id, "--by", "alice"]);
    s.ok(&[
        "--config",
        config,
        "alerts",
        "resolve",
        &id,
        "--by",
        "alice",
        "--note",
        "rule removed",
    ]);
    let rows = events(&s, &id);
    assert_eq!(kinds(&rows), ["raised", "notified", "acknowledged", "resolved"], "{rows:?}");
    assert_eq!(rows[1]["channel"], "email");
    assert_eq!(rows[1]["target"], "netsec");
    assert_eq!(rows[2]["actor"], "alice");
    assert_eq!(rows[3]["detail"], "rule removed");
    let to_ack = seconds_to(&s, &id, "seconds_to_ack");
    let to_resolve = seconds_to(&s, &id, "seconds_to_resolve");
    assert!(0.0 <= to_ack && to_ack <= to_resolve, "{to_ack} {to_resolve}");
    let listed = s.ok(&["alerts", "--status", "resolved", "--format", "json"]);
    assert!(listed.contains(&id), "{listed}");
    // An unknown alert is an error naming it.
    let out = s.ztlake(&["alerts", "ack", "0000000000000000"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no alert \"0000000000000000\""));
}
