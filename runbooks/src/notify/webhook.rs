//! Webhooks (stage 5, delivery): ztlake's JSON document, Slack-compatible messages and PagerDuty
//! Events API v2 events, posted with reqwest (rustls).
//!
//! Destinations are guarded: `https` only (plain `http` only to a loopback host); redirects are
//! never followed (a 3xx is a failure naming the `Location`); no proxy from the environment is
//! used; and a DNS resolver refuses names that resolve to loopback, private (RFC 1918, RFC 4193,
//! CGNAT), link-local (169.254/16, fe80::/10 — cloud metadata lives there, as does
//! `fd00:ec2::254`), unspecified, multicast or broadcast addresses, unless the webhook lists them
//! in `allow_addresses`. URLs with a literal address are checked the same way. Every request
//! carries an `Idempotency-Key` stable across retries of the same message, and the payload a
//! `dedup_key` stable per alert.
//!
//! Alert values are data: JSON escapes them, and Slack text is cleaned and has `&`, `<`, `>`
//! escaped, so a log value cannot become a link, a mention or formatting.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit as _, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

use super::message::{clean, entity_line, evidence_line, subject};
use super::{BuildContext, Notification, Notifier, NotifierKind, canonical_ip};
use crate::clock::rfc3339;
use crate::config::{Cidr, WebhookConfig, WebhookFormat, resolve};
use crate::error::{Error, Result};

/// The registry entry.
pub(crate) const KIND: NotifierKind = NotifierKind { name: "webhook", build };

/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

fn build(ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Notifier>>> {
    let mut out: Vec<Arc<dyn Notifier>> = Vec::new();
    for w in &ctx.config.webhooks {
        out.push(Arc::new(WebhookNotifier::new(w)?));
    }
    Ok(out)
}

/// Why an address is refused as a webhook destination, if it is.
pub fn refused_reason(ip: IpAddr) -> Option<&'static str> {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared address space (CGNAT)")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast, broadcast or reserved")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if first & 0xffc0 == 0xfec0 {
        Some("site-local")
    } else {
        None
    }
}

/// Whether `ip` may be reached: not refused, or explicitly allowed.
fn permitted(ip: IpAddr, allow: &[Cidr]) -> std::result::Result<(), String> {
    match refused_reason(ip) {
        None => Ok(()),
        Some(_) if allow.iter().any(|c| c.contains(ip)) => Ok(()),
        Some(why) => Err(format!(
            "{ip} is a {why} address; refused (list it in allow_addresses to allow it)"
        )),
    }
}

/// Check a webhook URL: `https` (or `http` to a loopback host), and a literal address must be
/// permitted.
///
/// # Errors
/// A message saying what is wrong (without the URL's path or query, which may hold secrets).
pub fn check_url(url: &str, allow: &[Cidr]) -> std::result::Result<url::Url, String> {
    let u = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let host = u.host_str().ok_or("the URL has no host")?.to_owned();
    match u.scheme() {
        "https" => {}
        "http" if crate::config::is_loopback_host(&host) => {}
        other => {
            return Err(format!(
                "{other}:// is not allowed for {host} (https only; plain http only to a loopback host)"
            ));
        }
    }
    if let Some(url::Host::Ipv4(ip)) = u.host() {
        permitted(IpAddr::V4(ip), allow)?;
    }
    if let Some(url::Host::Ipv6(ip)) = u.host() {
        permitted(IpAddr::V6(ip), allow)?;
    }
    Ok(u)
}

/// A destination refused by the resolver.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// A DNS resolver that refuses names resolving to refused addresses (all of a name's
/// addresses must be permitted, so a mixed answer cannot slip a private address through).
#[derive(Debug, Clone)]
struct GuardedResolver {
    allow: Arc<Vec<Cidr>>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = Arc::clone(&self.allow);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no addresses").into());
            }
            for a in &addrs {
                if let Err(why) = permitted(a.ip(), &allow) {
                    return Err(Box::new(Refused(format!("{host} resolves to {why}")))
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A webhook destination.
pub struct WebhookNotifier {
    channel: String,
    format: WebhookFormat,
    url: url::Url,
    routing_key: Option<String>,
    signing: Option<Hmac<Sha256>>,
    client: reqwest::Client,
    destination: String,
    timeout: Duration,
}

impl WebhookNotifier {
    /// The notifier of `config` (secrets read now).
    ///
    /// # Errors
    /// [`Error::Config`] naming the webhook when a secret cannot be read, the URL is refused or
    /// the HTTP client cannot be built.
    pub fn new(config: &WebhookConfig) -> Result<WebhookNotifier> {
        let key = |k: &str| format!("oncall.webhooks.{}.{k}", config.name);
        let url = match &config.url {
            Some(v) => resolve(v, &key("url"))?,
            None => PAGERDUTY_URL.to_owned(),
        };
        let allow = config.allow_cidrs();
        let url =
            check_url(&url, &allow).map_err(|e| Error::config(format!("{}: {e}", key("url"))))?;
        let routing_key =
            config.routing_key.as_ref().map(|v| resolve(v, &key("routing_key"))).transpose()?;
        let signing = match &config.signing_key {
            Some(v) => Some(
                Hmac::<Sha256>::new_from_slice(resolve(v, &key("signing_key"))?.as_bytes())
                    .map_err(|e| Error::config(format!("{}: {e}", key("signing_key"))))?,
            ),
            None => None,
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow: Arc::new(allow) }))
            .https_only(url.scheme() == "https")
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("ztlake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config(format!("{}: HTTP client: {e}", key("url"))))?;
        let destination = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        Ok(WebhookNotifier {
            channel: format!("webhook:{}", config.name),
            format: config.format,
            url,
            routing_key,
            signing,
            client,
            destination,
            timeout: config.timeout,
        })
    }
}

/// Is this error (or one of its causes) a refused destination?
fn refused_in(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        cur = err.source();
    }
    None
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cur = s.source();
    }
    text
}

#[async_trait::async_trait]
impl Notifier for WebhookNotifier {
    fn channel(&self) -> &str {
        &self.channel
    }

    fn destination(&self) -> String {
        self.destination.clone()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn send(&self, n: &Notification) -> Result<String> {
        let fail = |message: String, transient: bool| Error::Delivery {
            channel: self.channel.clone(),
            destination: self.destination.clone(),
            message,
            transient,
        };
        let body = match self.format {
            WebhookFormat::Json => json_payload(n),
            WebhookFormat::Slack => slack_payload(n),
            WebhookFormat::Pagerduty => {
                pagerduty_payload(n, self.routing_key.as_deref().unwrap_or_default())
            }
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| fail(format!("payload: {e}"), false))?;
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &n.idempotency_key);
        if let Some(mac) = &self.signing {
            let mut mac = mac.clone();
            mac.update(&bytes);
            let sig: String =
                mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
            request = request.header("X-Ztlake-Signature", format!("sha256={sig}"));
        }
        let response = match request.body(bytes).send().await {
            Ok(r) => r,
            Err(e) => {
                if let Some(why) = refused_in(&e) {
                    return Err(fail(why, false));
                }
                return Err(fail(chain(&e), true));
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(format!("HTTP {}", status.as_u16()));
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(|l| clean(l, 200))
                .unwrap_or_default();
            return Err(fail(
                format!("HTTP {}: redirect to {location:?} not followed", status.as_u16()),
                false,
            ));
        }
        let text = response.text().await.unwrap_or_default();
        let transient = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
        Err(fail(format!("HTTP {}: {}", status.as_u16(), clean(&text, 200)), transient))
    }
}

/// Alert fields as JSON (values are data; JSON escapes them).
fn alert_json(n: &Notification) -> Value {
    let a = &n.alert;
    json!({
        "alert_id": a.alert_id,
        "rule_id": a.rule_id,
        "title": a.title,
        "severity": a.severity.as_str(),
        "provider": a.provider,
        "entity": a.entity,
        "count": a.count,
        "previous_count": n.previous_count,
        "first_seen": rfc3339(a.first_seen),
        "last_seen": rfc3339(a.last_seen),
        "runbook": a.runbook,
        "tags": a.tags,
        "evidence": evidence_line(a),
    })
}

/// ztlake's JSON document.
pub fn json_payload(n: &Notification) -> Value {
    json!({
        "version": 1,
        "source": "ztlake",
        "kind": n.kind.as_str(),
        "idempotency_key": n.idempotency_key,
        "dedup_key": n.incident_key,
        "revision": n.revision,
        "target": n.target,
        "escalated_from": n.escalated_from,
        "summary": subject(n),
        "alert": alert_json(n),
        "runbook": n.runbook.as_ref().map(|r| json!({
            "id": r.id, "title": r.title, "owner": r.owner, "text": r.text,
        })),
        "links": { "acknowledge": n.ack_url, "resolve": n.resolve_url },
        "sent_at": rfc3339(n.time),
    })
}

/// Text for Slack mrkdwn: cleaned, `&`, `<` and `>` escaped (no links, mentions or commands).
fn slack_text(value: &str, cap: usize) -> String {
    clean(value, cap).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A Slack incoming-webhook message (blocks plus a plain `text` fallback).
pub fn slack_payload(n: &Notification) -> Value {
    let a = &n.alert;
    let mut facts = vec![
        format!("*Severity:* {}", a.severity.as_str().to_ascii_uppercase()),
        format!("*Rule:* {}", slack_text(&a.rule_id, 128)),
        format!("*Entity:* {}", slack_text(&entity_line(a), 256)),
        format!(
            "*Count:* {}{}",
            a.count,
            n.previous_count
                .filter(|_| n.kind == super::MessageKind::Update)
                .map(|p| format!(" (was {p})"))
                .unwrap_or_default()
        ),
        format!("*First seen:* {}  *Last seen:* {}", rfc3339(a.first_seen), rfc3339(a.last_seen)),
        format!(
            "*Alert:* {}  *Provider:* {}",
            slack_text(&a.alert_id, 64),
            slack_text(&a.provider, 32)
        ),
    ];
    if let Some(rb) = &n.runbook {
        facts.push(format!(
            "*Runbook:* {} ({}), owner {}",
            slack_text(&rb.title, 128),
            slack_text(&rb.id, 128),
            slack_text(&rb.owner, 64)
        ));
    }
    let evidence: Vec<String> = evidence_line(a).iter().map(|l| slack_text(l, 300)).collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clean(&subject(n), 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": facts.join("\n")}}),
    ];
    if !evidence.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Evidence*\n{}", evidence.join("\n"))}}));
    }
    blocks.push(json!({"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Acknowledge"}, "url": n.ack_url, "style": "primary"},
        {"type": "button", "text": {"type": "plain_text", "text": "Resolve"}, "url": n.resolve_url},
    ]}));
    json!({
        "text": slack_text(&subject(n), 300),
        "blocks": blocks,
    })
}

/// A PagerDuty Events API v2 `trigger` event, deduplicated per alert.
pub fn pagerduty_payload(n: &Notification, routing_key: &str) -> Value {
    let a = &n.alert;
    let severity = match a.severity {
        ztlake_detections::Severity::Critical => "critical",
        ztlake_detections::Severity::High => "error",
        ztlake_detections::Severity::Medium => "warning",
        ztlake_detections::Severity::Low | ztlake_detections::Severity::Info => "info",
    };
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.incident_key,
        "payload": {
            "summary": clean(&subject(n), 1024),
            "source": clean(&entity_line(a), 255),
            "severity": severity,
            "timestamp": rfc3339(a.first_seen),
            "component": a.rule_id,
            "group": a.provider,
            "class": a.rule_id,
            "custom_details": alert_json(n),
        },
        "client": "ztlake",
        "client_url": n.ack_url,
        "links": [
            {"href": n.ack_url, "text": "Acknowledge in ztlake"},
            {"href": n.resolve_url, "text": "Resolve in ztlake"},
        ],
    })
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("channel", &self.channel)
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::MessageKind;
    use crate::notify::message::tests::notification;

    #[test]
    fn private_link_local_and_metadata_addresses_are_refused() {
        for (ip, why) in [
            ("169.254.169.254", "cloud metadata"),
            ("fd00:ec2::254", "cloud metadata"),
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.10.1", "link-local"),
            ("fe80::1", "link-local"),
            ("fc00::1", "private (unique local)"),
            ("100.64.0.1", "shared address space (CGNAT)"),
            ("0.0.0.0", "unspecified"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "cloud metadata"),
        ] {
            assert_eq!(refused_reason(ip.parse().expect("ip")), Some(why), "{ip}");
        }
        for ip in ["8.8.8.8", "2606:4700::1111", "91.240.118.7"] {
            assert_eq!(refused_reason(ip.parse().expect("ip")), None, "{ip}");
        }
        let loopback = [Cidr::parse("127.0.0.0/8").expect("cidr")];
        assert!(permitted("127.0.0.1".parse().expect("ip"), &loopback).is_ok());
        assert!(permitted("169.254.169.254".parse().expect("ip"), &loopback).is_err());
    }

    #[test]
    fn urls_must_be_https_except_to_loopback_and_literals_are_checked() {
        assert!(check_url("https://hooks.example.com/x", &[]).is_ok());
        let e = check_url("http://hooks.example.com/x", &[]).expect_err("http");
        assert!(e.contains("https only"), "{e}");
        assert!(check_url("ftp://hooks.example.com/x", &[]).is_err());
        let e = check_url("https://169.254.169.254/latest/meta-data", &[]).expect_err("metadata");
        assert!(e.contains("cloud metadata"), "{e}");
        assert!(check_url("https://[fd00:ec2::254]/", &[]).is_err());
        assert!(check_url("http://127.0.0.1:8080/hook", &[]).is_err(), "loopback must be allowed");
        let allow = [Cidr::parse("127.0.0.1").expect("cidr")];
        assert!(check_url("http://127.0.0.1:8080/hook", &allow).is_ok());
        assert!(check_url("not a url", &[]).is_err());
    }

    #[test]
    fn payloads_have_their_shapes_and_keep_values_as_data() {
        let n = notification(MessageKind::New);
        let j = json_payload(&n);
        assert_eq!(j["version"], 1);
        assert_eq!(j["dedup_key"], "ztlake-00000000000000aa");
        assert_eq!(j["idempotency_key"], "0123456789abcdef-0");
        assert_eq!(j["alert"]["entity"]["user"], "x\r\nBcc: attacker@example.com");
        assert_eq!(j["links"]["acknowledge"], "https://z.example.com/ack?t=v1.abc.def");
        assert_eq!(j["runbook"]["id"], "exposed-admin-port");

        let mut hostile = notification(MessageKind::New);
        hostile
            .alert
            .entity
            .insert("user".into(), Some("<!channel> <https://evil.example|click>".into()));
        let s = slack_payload(&hostile);
        // mrkdwn texts (the fallback and the sections) escape; the header is plain_text, which
        // Slack never parses for links or mentions.
        for text in [&s["text"], &s["blocks"][1]["text"]["text"]] {
            let text = text.as_str().expect("text");
            assert!(!text.contains("<!channel>") && !text.contains("<https://evil"), "{text}");
            assert!(text.contains("&lt;!channel&gt;"), "{text}");
        }
        assert_eq!(s["blocks"][0]["text"]["type"], "plain_text");
        assert_eq!(s["blocks"][3]["elements"][0]["url"], "https://z.example.com/ack?t=v1.abc.def");

        let p = pagerduty_payload(&n, "R0UTING");
        assert_eq!(p["routing_key"], "R0UTING");
        assert_eq!(p["event_action"], "trigger");
        assert_eq!(p["dedup_key"], "ztlake-00000000000000aa");
        assert_eq!(p["payload"]["severity"], "error");
        assert_eq!(p["payload"]["custom_details"]["count"], 3);
        assert!(p["payload"]["summary"].as_str().is_some_and(|s| s.len() <= 1024 * 4));
        assert_eq!(p["links"][1]["href"], "https://z.example.com/resolve?t=v1.abc.ghi");
    }
}
