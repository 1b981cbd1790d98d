//! Tests of the dispatcher with a manual clock, an in-memory sink and real channels: the
//! outbox of `.eml` files, and webhooks to loopback ports nothing listens on.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ztlake_detections::Severity;

use crate::catalog::tests::catalog;
use crate::lifecycle::{LifecycleSink as _, LifecycleStep, MemorySink, StepKind};
use crate::links::LinkAction;
use crate::routing::tests::alert;
use crate::{Clock as _, Dispatcher, ManualClock, OncallConfig};

pub(crate) const T0: i64 = 1_700_000_000_000_000;
pub(crate) const MINUTE: Duration = Duration::from_secs(60);

/// Decode quoted-printable text (soft line breaks and `=XX`).
pub(crate) fn qp_decode(text: &str) -> String {
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

/// The `.eml` files of an outbox, by name, decoded.
pub(crate) fn mails(outbox: &Path) -> Vec<(String, String)> {
    let dir = outbox.join("mail");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let raw = std::fs::read_to_string(e.path()).expect("read eml");
                    (name, qp_decode(&raw))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

pub(crate) struct Setup {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) sink: Arc<MemorySink>,
}

impl Setup {
    pub(crate) fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            clock: ManualClock::new(T0),
            sink: Arc::new(MemorySink::default()),
        }
    }

    pub(crate) fn outbox(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn dispatcher(&self, toml: &str) -> Dispatcher {
        let mut config = OncallConfig::from_toml(toml, None).expect("config");
        config.outbox = Some(self.dir.path().to_path_buf());
        Dispatcher::new(config, catalog(), self.clock.clone(), self.sink.clone())
            .expect("dispatcher")
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn the_default_setup_writes_every_message_to_the_outbox_and_survives_a_restart() {
    let s = Setup::new();
    let a = alert(Severity::High, "aws", &["T1133"]);
    {
        let d = s.dispatcher("");
        let r = d.submit(&a).expect("submit");
        assert_eq!(r.targets, ["netsec"], "the runbook owner, without configured targets");
        assert_eq!(r.queued, 1);
        assert!(mails(s.outbox()).is_empty(), "submit only queues");
        assert_eq!(d.pending().expect("pending"), 1);
    }
    // A new process over the same outbox delivers what the first one queued.
    let d = s.dispatcher("");
    let r = d.tick().await.expect("tick");
    assert_eq!((r.delivered, r.steps_recorded, r.steps_pending), (1, 1, 0), "{r:?}");
    let mails = mails(s.outbox());
    assert_eq!(mails.len(), 1);
    let (name, text) = &mails[0];
    assert!(name.ends_with(".0.eml"), "{name}");
    assert!(text.contains("To: netsec@localhost"), "{text}");
    assert!(
        text.contains("Subject: [ztlake] HIGH Admin port reachable from the internet"),
        "{text}"
    );
    assert!(text.contains("## Triage\r\nCheck 10.0.0.5."), "runbook filled in:\n{text}");
    assert!(text.contains("WHERE dst_ip = '10.0.0.5'"), "{text}");
    // The links verify and name the target.
    let token = text
        .split("http://127.0.0.1:8425/ack?t=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("ack link");
    let claims = d.signer().verify(token, T0).expect("valid link");
    assert_eq!((claims.alert_id.as_str(), claims.actor.as_str()), (a.alert_id.as_str(), "netsec"));
    let notified = s.sink.of_kind(StepKind::Notified);
    assert_eq!(notified.len(), 1);
    assert_eq!(notified[0].channel.as_deref(), Some("email"));
    assert_eq!(notified[0].target.as_deref(), Some("netsec"));
    assert_eq!(notified[0].time, T0);
    assert_eq!(notified[0].rule_id.as_deref(), Some("zt-net-admin-port-exposed"));
    assert_eq!(d.pending().expect("pending"), 0);
    assert_eq!(d.tick().await.expect("tick"), crate::TickReport::default(), "nothing twice");
}

#[tokio::test]
async fn one_incident_is_one_message_with_updates_when_the_count_grows() {
    let s = Setup::new();
    let d = s.dispatcher("[oncall.delivery]\nupdate_interval = \"10m\"\n");
    let mut a = alert(Severity::High, "aws", &[]);
    d.submit(&a).expect("submit");
    a.count = 4;
    let r = d.submit(&a).expect("submit");
    assert_eq!((r.queued, r.unchanged), (1, 0), "merged into the queued message");
    assert_eq!(d.tick().await.expect("tick").delivered, 1);
    let r = d.submit(&a).expect("same state again");
    assert_eq!((r.queued, r.unchanged), (0, 1));
    assert_eq!(d.tick().await.expect("tick").delivered, 0);
    let first = mails(s.outbox());
    assert_eq!(first.len(), 1);
    assert!(first[0].1.contains("Count:      4"), "the first message carries the newest count");

    a.count = 9;
    d.submit(&a).expect("grown");
    a.count = 12;
    d.submit(&a).expect("grown more");
    assert_eq!(d.tick().await.expect("tick").delivered, 0, "updates wait for the interval");
    s.clock.advance(10 * MINUTE);
    assert_eq!(d.tick().await.expect("tick").delivered, 1);
    let all = mails(s.outbox());
    assert_eq!(all.len(), 2, "one update for both increments");
    let (name, update) = &all[1];
    assert!(name.ends_with(".1.eml"), "{name}");
    assert!(update.contains("Subject: [ztlake] Update (12 events) HIGH"), "{update}");
    assert!(update.contains("Count:      12 (was 4)"), "{update}");
    assert!(update.contains("In-Reply-To: <"), "threaded under the first message");
    let notified = s.sink.of_kind(StepKind::Notified);
    assert_eq!(notified.len(), 2);
    assert_ne!(notified[0].step_id, notified[1].step_id);
}

pub(crate) const ESCALATION: &str = r#"
[[oncall.targets]]
name = "netsec"
email = ["netsec@example.com"]
escalate_to = "netsec-lead"

[[oncall.targets]]
name = "netsec-lead"
email = ["lead@example.com"]
escalate_to = "ciso"

[[oncall.targets]]
name = "ciso"
email = ["ciso@example.com"]

[[oncall.routes]]
targets = ["netsec"]
"#;

#[tokio::test]
async fn unacknowledged_alerts_escalate_after_the_runbook_time() {
    let s = Setup::new();
    let d = s.dispatcher(ESCALATION);
    let a = alert(Severity::High, "aws", &[]); // the runbook says: high → 1h
    d.submit(&a).expect("submit");
    d.tick().await.expect("tick");
    s.clock.advance(59 * MINUTE);
    assert_eq!(d.tick().await.expect("tick").escalated, 0, "not yet");
    s.clock.advance(2 * MINUTE);
    let r = d.tick().await.expect("tick");
    assert_eq!((r.escalated, r.delivered), (1, 1), "{r:?}");
    let esc = s.sink.of_kind(StepKind::Escalated);
    assert_eq!(esc.len(), 1);
    assert_eq!(esc[0].target.as_deref(), Some("netsec-lead"));
    assert_eq!(esc[0].actor.as_deref(), Some("ztlake"));
    assert_eq!(esc[0].time, T0 + 61 * 60_000_000);
    assert!(
        esc[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("not acknowledged 1h 1m after notifying netsec")),
        "{esc:?}"
    );
    let mails = mails(s.outbox());
    let lead = mails.iter().find(|(_, m)| m.contains("To: lead@example.com")).expect("lead mail");
    assert!(lead.1.contains("Subject: [ztlake] ESCALATED HIGH"), "{}", lead.1);
    assert!(lead.1.contains("Escalated:  not acknowledged by netsec"), "{}", lead.1);
    // Updates now reach the escalated target too.
    let mut grown = a.clone();
    grown.count += 1;
    assert_eq!(d.submit(&grown).expect("submit").targets, ["netsec", "netsec-lead"]);

    // The lead acknowledges through a link before the next hour is up: no third level.
    s.clock.advance(30 * MINUTE);
    let (step, recorded) = d
        .record_action(&a.alert_id, LinkAction::Acknowledge, "netsec-lead", None)
        .await
        .expect("ack");
    assert!(recorded);
    assert_eq!(step.actor.as_deref(), Some("netsec-lead"));
    assert_eq!(step.provider.as_deref(), Some("aws"));
    s.clock.advance(2 * 60 * MINUTE);
    assert_eq!(d.tick().await.expect("tick").escalated, 0);
    assert_eq!(s.sink.of_kind(StepKind::Acknowledged).len(), 1);
}

#[tokio::test]
async fn acknowledgements_recorded_elsewhere_stop_escalation_and_chains_end() {
    let s = Setup::new();
    let d = s.dispatcher(ESCALATION);
    let mut a = alert(Severity::Critical, "aws", &[]); // critical → 15m
    a.alert_id = "00000000000000bb".into();
    let mut b = alert(Severity::Critical, "aws", &[]);
    b.alert_id = "00000000000000cc".into();
    d.submit(&a).expect("a");
    d.submit(&b).expect("b");
    d.tick().await.expect("tick");
    // `ztlake alerts ack` in another process: only the lake (the sink) knows.
    let ack = LifecycleStep::by_actor(&a.alert_id, StepKind::Acknowledged, "alice", None, T0);
    s.sink.record(&[ack]).await.expect("record");
    for _ in 0..4 {
        s.clock.advance(16 * MINUTE);
        d.tick().await.expect("tick");
    }
    let esc = s.sink.of_kind(StepKind::Escalated);
    let targets: Vec<(&str, &str)> = esc
        .iter()
        .map(|e| (e.alert_id.as_str(), e.target.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        targets,
        [("00000000000000cc", "netsec-lead"), ("00000000000000cc", "ciso")],
        "a escalates never, b twice and then the chain ends"
    );
}

#[tokio::test]
async fn a_down_channel_is_retried_with_backoff_and_never_blocks_another() {
    let s = Setup::new();
    let port = closed_port();
    let d = s.dispatcher(&format!(
        r#"
[[oncall.targets]]
name = "netsec"
email = ["netsec@example.com"]
webhooks = ["down"]
[[oncall.routes]]
targets = ["netsec"]
[[oncall.webhooks]]
name = "down"
format = "json"
url = "http://127.0.0.1:{port}/hook"
allow_addresses = ["127.0.0.0/8"]
timeout = "2s"
[oncall.delivery]
retry_initial = "30s"
retry_max = "2m"
give_up_after = "10m"
"#
    ));
    d.submit(&alert(Severity::High, "aws", &[])).expect("submit");
    let r = d.tick().await.expect("tick");
    assert_eq!(
        (r.delivered, r.retrying),
        (1, 1),
        "email delivered although the webhook is down: {r:?}"
    );
    let failed = s.sink.of_kind(StepKind::DeliveryFailed);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].channel.as_deref(), Some("webhook:down"));
    let detail = failed[0].detail.clone().unwrap_or_default();
    assert!(
        detail.starts_with("pending: attempt 1 failed, retrying at 2023-11-14T22:13:50Z"),
        "{detail}"
    );
    // Backoff: nothing before 30 s, then 60 s, then capped at 2 m.
    assert_eq!(d.tick().await.expect("tick").retrying, 0);
    let mut waits = Vec::new();
    let mut last = s.clock.now();
    for _ in 0..12 {
        let r = loop {
            s.clock.advance(Duration::from_secs(10));
            let r = d.tick().await.expect("tick");
            if r.retrying + r.failed > 0 {
                break r;
            }
        };
        let now = s.clock.now();
        waits.push((now - last) / 1_000_000);
        last = now;
        if r.failed > 0 {
            break;
        }
    }
    assert_eq!(waits[..3], [30, 60, 120], "{waits:?}");
    let entries = d.entries().expect("entries");
    let hook = entries.iter().find(|e| e.channel == "webhook:down").expect("entry");
    assert!(hook.failed && !hook.pending, "given up after give_up_after: {hook:?}");
    let last_step = s.sink.of_kind(StepKind::DeliveryFailed).pop().expect("final");
    assert!(
        last_step.detail.as_deref().is_some_and(|d| d.starts_with("failed: gave up after")),
        "{last_step:?}"
    );
}

#[tokio::test]
async fn refused_destinations_fail_at_once() {
    let s = Setup::new();
    let port = closed_port();
    // localhost resolves to loopback, which this webhook does not allow.
    let d = s.dispatcher(&format!(
        r#"
[[oncall.targets]]
name = "t"
webhooks = ["internal"]
[[oncall.routes]]
targets = ["t"]
[[oncall.webhooks]]
name = "internal"
format = "json"
url = "http://localhost:{port}/hook"
"#
    ));
    d.submit(&alert(Severity::High, "aws", &[])).expect("submit");
    let r = d.tick().await.expect("tick");
    assert_eq!(r.failed, 1, "{r:?}");
    let step = s.sink.of_kind(StepKind::DeliveryFailed).pop().expect("failed");
    let detail = step.detail.unwrap_or_default();
    assert!(
        detail.contains("localhost resolves to 127.0.0.1 is a loopback address; refused"),
        "{detail}"
    );
}

#[tokio::test]
async fn rate_limits_and_quiet_hours_defer_without_dropping() {
    let s = Setup::new();
    let d = s.dispatcher(
        r#"
[[oncall.targets]]
name = "t"
email = ["t@example.com"]
rate_limit = { max = 1, per = "1h" }
[[oncall.targets]]
name = "sleepy"
email = ["s@example.com"]
quiet_hours = { start = "22:00", end = "07:00" }
[[oncall.routes]]
targets = ["t", "sleepy"]
"#,
    );
    // T0 is 22:13 UTC: inside sleepy's quiet hours.
    let mut a = alert(Severity::High, "aws", &[]);
    d.submit(&a).expect("a");
    a.alert_id = "00000000000000dd".into();
    d.submit(&a).expect("b");
    let r = d.tick().await.expect("tick");
    assert_eq!((r.delivered, r.deferred), (1, 3), "{r:?}");
    let waiting: Vec<String> = d
        .entries()
        .expect("entries")
        .into_iter()
        .filter(|e| e.pending)
        .filter_map(|e| e.waiting_for)
        .collect();
    assert!(
        waiting.iter().any(|w| w.starts_with("rate limit until 2023-11-14T23:13:20Z")),
        "{waiting:?}"
    );
    assert!(
        waiting.iter().any(|w| w.starts_with("quiet hours until 2023-11-15T07:00:00Z")),
        "{waiting:?}"
    );
    s.clock.advance(61 * MINUTE);
    assert_eq!(d.tick().await.expect("tick").delivered, 1, "the rate-limited message");
    s.clock.advance(8 * 60 * MINUTE);
    assert_eq!(d.tick().await.expect("tick").delivered, 2, "quiet hours over");
    assert_eq!(d.pending().expect("pending"), 0);
}

#[tokio::test]
async fn steps_wait_in_the_outbox_while_the_sink_is_down() {
    let s = Setup::new();
    s.sink.fail_with(Some("lake unreachable"));
    {
        let d = s.dispatcher("");
        d.submit(&alert(Severity::High, "aws", &[])).expect("submit");
        let r = d.tick().await.expect("tick");
        assert_eq!((r.delivered, r.steps_recorded, r.steps_pending), (1, 0, 1));
    }
    s.sink.fail_with(None);
    let d = s.dispatcher("");
    let r = d.tick().await.expect("tick");
    assert_eq!((r.delivered, r.steps_recorded, r.steps_pending), (0, 1, 0));
    assert_eq!(s.sink.of_kind(StepKind::Notified).len(), 1);
}

#[tokio::test]
async fn hostile_alert_ids_stay_inside_the_outbox() {
    let s = Setup::new();
    let d = s.dispatcher("");
    let mut a = alert(Severity::High, "aws", &[]);
    a.alert_id = "../../../escape\r\nx".into();
    d.submit(&a).expect("submit");
    d.tick().await.expect("tick");
    assert_eq!(mails(s.outbox()).len(), 1);
    assert!(!s.dir.path().parent().expect("parent").join("escape").exists());
    // Every file the outbox made has a plain name (ids are hashed into keys, never paths).
    let mut dirs = vec![s.outbox().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).expect("dir") {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'), "{name}");
            if e.path().is_dir() {
                dirs.push(e.path());
            }
        }
    }
    let entries = d.entries().expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].alert_id, a.alert_id, "the hostile id is kept as data");
}
