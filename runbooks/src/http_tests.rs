//! Tests over real HTTP on loopback: webhooks delivered to a live axum server (payload shapes,
//! retries on 5xx, redirects not followed, refused destinations), and the acknowledge/resolve
//! endpoint of `ztlake serve` (signed links honoured; tampered, misdirected and expired links
//! rejected). Time is a manual clock; nothing sleeps.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use ztlake_detections::Severity;

use crate::Clock as _;
use crate::dispatcher_tests::{ESCALATION, MINUTE, Setup, mails};
use crate::lifecycle::StepKind;
use crate::routing::tests::alert;
use crate::server::{ServerState, serve};

/// One request the hook server received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }
}

/// A loopback HTTP server recording every request; `/moved` redirects to `/elsewhere`, other
/// paths answer the next queued status (200 when none is queued).
#[derive(Debug, Default)]
struct Hook {
    received: Mutex<Vec<Received>>,
    statuses: Mutex<VecDeque<u16>>,
}

impl Hook {
    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    fn answer(&self, statuses: &[u16]) {
        self.statuses.lock().expect("lock").extend(statuses);
    }
}

async fn record(State(h): State<Arc<Hook>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    h.received.lock().expect("lock").push(Received { path: uri.path().to_owned(), headers, body });
    if uri.path() == "/moved" {
        return (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response();
    }
    let status = h.statuses.lock().expect("lock").pop_front().unwrap_or(200);
    StatusCode::from_u16(status).expect("status").into_response()
}

async fn start_hook() -> (Arc<Hook>, SocketAddr) {
    let hook = Arc::new(Hook::default());
    let app = Router::new().fallback(record).with_state(Arc::clone(&hook));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hook, addr)
}

fn hooks_config(addr: SocketAddr) -> String {
    format!(
        r#"
[[oncall.targets]]
name = "netsec"
webhooks = ["generic", "slack", "pd"]
[[oncall.routes]]
targets = ["netsec"]
[[oncall.webhooks]]
name = "generic"
format = "json"
url = "http://{addr}/generic"
signing_key = "webhook-signing-key"
allow_addresses = ["127.0.0.1/32"]
[[oncall.webhooks]]
name = "slack"
format = "slack"
url = "http://{addr}/slack"
allow_addresses = ["127.0.0.1/32"]
[[oncall.webhooks]]
name = "pd"
format = "pagerduty"
url = "http://{addr}/pd"
routing_key = "R0UTING-KEY"
allow_addresses = ["127.0.0.1/32"]
[oncall.delivery]
retry_initial = "30s"
retry_max = "5m"
"#
    )
}

#[tokio::test]
async fn webhooks_deliver_generic_slack_and_pagerduty_payloads() {
    let (hook, addr) = start_hook().await;
    let s = Setup::new();
    let d = s.dispatcher(&hooks_config(addr));
    let mut a = alert(Severity::High, "aws", &["T1133"]);
    a.entity.insert("user".into(), Some("<!channel> x\r\nBcc: attacker@example.com".into()));
    d.submit(&a).expect("submit");
    let r = d.tick().await.expect("tick");
    assert_eq!(r.delivered, 3, "{r:?}");
    let got = hook.received();
    let by = |p: &str| got.iter().find(|r| r.path == p).cloned().expect(p);

    let generic = by("/generic");
    let body = generic.json();
    assert_eq!(body["version"], 1);
    assert_eq!(body["alert"]["alert_id"], a.alert_id.as_str());
    assert_eq!(body["alert"]["severity"], "high");
    assert_eq!(body["alert"]["count"], 3);
    assert_eq!(
        body["alert"]["entity"]["user"], "<!channel> x\r\nBcc: attacker@example.com",
        "JSON keeps values as data"
    );
    assert!(
        body["runbook"]["text"].as_str().is_some_and(|t| t.contains("Check 10.0.0.5.")),
        "{body}"
    );
    assert!(
        body["links"]["acknowledge"]
            .as_str()
            .is_some_and(|l| l.starts_with("http://127.0.0.1:8425/ack?t=v1.")),
        "{body}"
    );
    let key = generic.header("idempotency-key");
    assert_eq!(body["idempotency_key"], key.as_str());
    assert!(!key.is_empty());
    let mut mac = Hmac::<Sha256>::new_from_slice(b"webhook-signing-key").expect("key");
    mac.update(&generic.body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(generic.header("x-ztlake-signature"), format!("sha256={expected}"));
    assert_eq!(generic.header("content-type"), "application/json");

    let slack = by("/slack").json();
    assert!(slack["text"].as_str().is_some_and(|t| t.contains("HIGH")), "{slack}");
    let blocks = slack["blocks"].as_array().expect("blocks");
    // mrkdwn (and the notification text) would turn `<!channel>` into a mention: escaped.
    let mut mrkdwn: Vec<String> = blocks
        .iter()
        .filter(|b| b["text"]["type"] == "mrkdwn")
        .filter_map(|b| b["text"]["text"].as_str().map(str::to_owned))
        .collect();
    mrkdwn.push(slack["text"].as_str().expect("text").to_owned());
    let text = mrkdwn.join("\n");
    assert!(!text.contains("<!channel>"), "Slack mentions are escaped: {text}");
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    let all = serde_json::to_string(blocks).expect("text");
    assert!(!all.contains("\\r\\nBcc"), "control characters are cleaned: {all}");
    let actions = blocks.iter().find(|b| b["type"] == "actions").expect("actions");
    assert!(actions["elements"][0]["url"].as_str().is_some_and(|u| u.contains("/ack?t=")));
    assert!(actions["elements"][1]["url"].as_str().is_some_and(|u| u.contains("/resolve?t=")));

    let pd = by("/pd").json();
    assert_eq!(pd["routing_key"], "R0UTING-KEY");
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["dedup_key"], format!("ztlake-{}", a.alert_id));
    assert_eq!(pd["payload"]["severity"], "error");
    assert_eq!(pd["payload"]["component"], "zt-net-admin-port-exposed");
    assert!(pd["payload"]["summary"].as_str().is_some_and(|t| !t.contains('\n')), "{pd}");

    let notified = s.sink.of_kind(StepKind::Notified);
    let mut channels: Vec<&str> = notified.iter().filter_map(|s| s.channel.as_deref()).collect();
    channels.sort_unstable();
    assert_eq!(channels, ["webhook:generic", "webhook:pd", "webhook:slack"]);
    assert!(notified.iter().all(|s| s.detail.as_deref().is_some_and(|d| d.contains("HTTP 200"))));

    // A higher count is an update of the same incident: same dedup key, next revision.
    let mut grown = a.clone();
    grown.count = 10;
    d.submit(&grown).expect("update");
    s.clock.advance(11 * MINUTE);
    assert_eq!(d.tick().await.expect("tick").delivered, 3);
    let got = hook.received();
    let pds: Vec<serde_json::Value> =
        got.iter().filter(|r| r.path == "/pd").map(Received::json).collect();
    assert_eq!(pds.len(), 2);
    assert_eq!(pds[0]["dedup_key"], pds[1]["dedup_key"]);
    assert_eq!(pds[1]["payload"]["custom_details"]["count"], 10);
    let keys: Vec<String> =
        got.iter().filter(|r| r.path == "/generic").map(|r| r.header("idempotency-key")).collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1], "each message has its own idempotency key");
}

#[tokio::test]
async fn a_webhook_answering_5xx_is_retried_until_it_accepts() {
    let (hook, addr) = start_hook().await;
    hook.answer(&[503, 502]);
    let s = Setup::new();
    let d = s.dispatcher(&format!(
        r#"
[[oncall.targets]]
name = "t"
webhooks = ["generic"]
[[oncall.routes]]
targets = ["t"]
[[oncall.webhooks]]
name = "generic"
format = "json"
url = "http://{addr}/generic"
allow_addresses = ["127.0.0.1/32"]
[oncall.delivery]
retry_initial = "30s"
"#
    ));
    d.submit(&alert(Severity::Critical, "aws", &[])).expect("submit");
    assert_eq!(d.tick().await.expect("tick").retrying, 1);
    s.clock.advance(Duration::from_secs(29));
    assert_eq!(d.tick().await.expect("tick"), crate::TickReport::default(), "backoff");
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(d.tick().await.expect("tick").retrying, 1, "502 is retried too");
    s.clock.advance(Duration::from_secs(60));
    assert_eq!(d.tick().await.expect("tick").delivered, 1);
    let got = hook.received();
    assert_eq!(got.len(), 3);
    let keys: Vec<String> = got.iter().map(|r| r.header("idempotency-key")).collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "retries carry the same key: {keys:?}");
    let failed = s.sink.of_kind(StepKind::DeliveryFailed);
    assert_eq!(failed.len(), 1, "the first failure is recorded as pending: {failed:?}");
    assert!(failed[0].detail.as_deref().is_some_and(|d| d.contains("HTTP 503")), "{failed:?}");
    assert_eq!(s.sink.of_kind(StepKind::Notified).len(), 1);

    // A 4xx will not change by retrying: given up at once.
    hook.answer(&[400]);
    let mut b = alert(Severity::Critical, "aws", &[]);
    b.alert_id = "00000000000000ee".into();
    d.submit(&b).expect("submit");
    assert_eq!(d.tick().await.expect("tick").failed, 1);
}

#[tokio::test]
async fn redirects_are_not_followed_and_private_destinations_are_refused() {
    let (hook, addr) = start_hook().await;
    let s = Setup::new();
    let d = s.dispatcher(&format!(
        r#"
[[oncall.targets]]
name = "t"
webhooks = ["moved", "by-name"]
[[oncall.routes]]
targets = ["t"]
[[oncall.webhooks]]
name = "moved"
format = "json"
url = "http://{addr}/moved"
allow_addresses = ["127.0.0.1/32"]
[[oncall.webhooks]]
name = "by-name"
format = "json"
url = "http://localhost:{port}/by-name"
"#,
        port = addr.port()
    ));
    d.submit(&alert(Severity::High, "aws", &[])).expect("submit");
    let r = d.tick().await.expect("tick");
    assert_eq!((r.failed, r.delivered), (2, 0), "{r:?}");
    let paths: Vec<String> = hook.received().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/moved"],
        "the redirect target is never requested; localhost is refused before connecting"
    );
    let failed = s.sink.of_kind(StepKind::DeliveryFailed);
    let detail = |c: &str| {
        failed
            .iter()
            .find(|s| s.channel.as_deref() == Some(c))
            .and_then(|s| s.detail.clone())
            .unwrap_or_default()
    };
    assert!(
        detail("webhook:moved").contains("HTTP 302: redirect to \"/elsewhere\" not followed"),
        "{failed:?}"
    );
    assert!(detail("webhook:by-name").contains("loopback address; refused"), "{failed:?}");

    // Literal private, link-local and metadata destinations are configuration errors.
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "https://10.1.2.3/hook",
        "https://[fd00:ec2::254]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://192.168.1.1/hook",
        "http://hooks.example.com/plain-http",
    ] {
        let text =
            format!("[[oncall.webhooks]]\nname = \"h\"\nformat = \"json\"\nurl = \"{url}\"\n");
        let e = crate::OncallConfig::from_toml(&text, None).expect_err(url);
        assert!(e.to_string().contains("oncall.webhooks[0].url"), "{url}: {e}");
    }
}

/// Start the link endpoint for the dispatcher of `s`; its base URL.
async fn start_links(s: &Setup, d: &crate::Dispatcher) -> String {
    let state = ServerState {
        signer: d.signer().clone(),
        sink: s.sink.clone(),
        clock: s.clock.clone(),
        dispatcher: Some(d.clone()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, state, futures::future::pending()));
    format!("http://{addr}")
}

/// The token of the `action` link (`ack`, `resolve`) in the newest mail to `to`.
fn token_in_mail(s: &Setup, to: &str, action: &str) -> String {
    let mails = mails(s.outbox());
    let (_, text) =
        mails.iter().rev().find(|(_, m)| m.contains(&format!("To: {to}"))).expect("mail");
    text.split(&format!("/{action}?t="))
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("link")
        .to_owned()
}

async fn post(base: &str, action: &str, form: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{base}/{action}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .expect("post");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn get(base: &str, path_and_query: &str) -> (u16, String) {
    let r = reqwest::get(format!("{base}{path_and_query}")).await.expect("get");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[tokio::test]
async fn a_signed_link_acknowledges_and_stops_escalation() {
    let s = Setup::new();
    let d = s.dispatcher(ESCALATION);
    let a = alert(Severity::High, "aws", &[]);
    d.submit(&a).expect("submit");
    d.tick().await.expect("tick");
    let base = start_links(&s, &d).await;
    let token = token_in_mail(&s, "netsec@example.com", "ack");

    // Opening the link only shows a confirmation form: mail scanners acknowledge nothing.
    s.clock.advance(10 * MINUTE);
    let (status, page) = get(&base, &format!("/ack?t={token}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<form method=\"post\" action=\"/ack\">"), "{page}");
    assert!(page.contains("as <b>netsec</b>"), "{page}");
    assert!(s.sink.of_kind(StepKind::Acknowledged).is_empty());

    let (status, page) = post(&base, "ack", &format!("t={token}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("acknowledged by <b>netsec</b> at 2023-11-14T22:23:20Z"), "{page}");
    let acks = s.sink.of_kind(StepKind::Acknowledged);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].actor.as_deref(), Some("netsec"));
    assert_eq!(acks[0].time, s.clock.now());
    assert_eq!(acks[0].provider.as_deref(), Some("aws"));

    // Acknowledged: the hour passes without escalation; a second click changes nothing.
    s.clock.advance(2 * 60 * MINUTE);
    assert_eq!(d.tick().await.expect("tick").escalated, 0);
    let (status, page) = post(&base, "ack", &format!("t={token}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("already acknowledged"), "{page}");
    assert_eq!(s.sink.of_kind(StepKind::Acknowledged).len(), 1);

    // Resolving through the other link, with a note (control characters dropped).
    let resolve = token_in_mail(&s, "netsec@example.com", "resolve");
    let (status, page) =
        post(&base, "resolve", &format!("t={resolve}&note=rule+removed%0D%0ABcc%3A+x")).await;
    assert_eq!(status, 200, "{page}");
    let resolved = s.sink.of_kind(StepKind::Resolved);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].detail.as_deref(), Some("rule removed\nBcc: x"));
}

#[tokio::test]
async fn tampered_misdirected_and_expired_links_are_rejected() {
    let s = Setup::new();
    let d = s.dispatcher(ESCALATION);
    let a = alert(Severity::High, "aws", &[]);
    d.submit(&a).expect("submit");
    d.tick().await.expect("tick");
    let base = start_links(&s, &d).await;
    let token = token_in_mail(&s, "netsec@example.com", "ack");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");

    // A payload naming someone else, with the original signature.
    let mut claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[1]).expect("b64")).expect("json");
    claims["by"] = "attacker".into();
    let forged = format!("v1.{}.{}", B64.encode(claims.to_string()), parts[2]);
    // One character of the signature changed.
    let mut sig = parts[2].to_owned();
    let last = if sig.ends_with('A') { 'B' } else { 'A' };
    sig.pop();
    sig.push(last);
    let flipped = format!("v1.{}.{sig}", parts[1]);
    for (what, form) in [
        ("forged payload", format!("t={forged}")),
        ("changed signature", format!("t={flipped}")),
        ("garbage", "t=v1.x.y".to_owned()),
        ("no token", String::new()),
    ] {
        let (status, page) = post(&base, "ack", &form).await;
        assert_eq!(status, 403, "{what}: {page}");
        assert!(page.contains("Link not valid"), "{what}: {page}");
    }
    let (status, _) = get(&base, &format!("/ack?t={forged}")).await;
    assert_eq!(status, 403, "the confirmation page is refused too");
    // An acknowledge link is not a resolve link.
    let (status, page) = post(&base, "resolve", &format!("t={token}")).await;
    assert_eq!(status, 403);
    assert!(page.contains("this link is for /ack"), "{page}");
    // Expired (links live 7 days by default).
    s.clock.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    let (status, page) = post(&base, "ack", &format!("t={token}")).await;
    assert_eq!(status, 403);
    assert!(page.contains("expired at"), "{page}");
    assert!(s.sink.of_kind(StepKind::Acknowledged).is_empty());
    assert!(s.sink.of_kind(StepKind::Resolved).is_empty());
}
