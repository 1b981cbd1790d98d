//! Notifiers (stage 5, delivery): the channels a message can take, and what every message says.
//!
//! [`NOTIFIERS`] is the one registry: each entry builds the notifiers of one kind from the
//! configuration (email: one notifier, through SMTP or into the outbox; webhooks: one per
//! `[[oncall.webhooks]]`). Adding a channel kind is one module and one line there.
//!
//! A [`Notification`] carries everything a channel shows: the alert (rule, severity, entity,
//! counts, first/last seen, evidence summary), the rendered runbook with the alert's values
//! filled in, and the signed acknowledge/resolve links. Alert values come from
//! attacker-controlled logs: [`clean`] turns every control character (CR and LF included) into
//! a space and caps the length, and every channel escapes for its own syntax on top (HTML,
//! Slack mrkdwn, JSON).

pub mod email;
pub(crate) mod message;
pub mod webhook;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use ztlake_detections::Alert;

use crate::config::OncallConfig;
use crate::error::Result;

pub use message::{clean, entity_line, evidence_line, html_body, subject, text_body};

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// The first message about an alert to a target.
    New,
    /// The alert's count grew since the last message.
    Update,
    /// The alert was not acknowledged in time and escalated to this target.
    Escalation,
}

impl MessageKind {
    /// `new`, `update`, `escalation`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::New => "new",
            MessageKind::Update => "update",
            MessageKind::Escalation => "escalation",
        }
    }
}

/// The runbook as a message shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookText {
    /// Runbook id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Owning team.
    pub owner: String,
    /// The Markdown, placeholders filled with the alert's values.
    pub text: String,
}

/// One message to one channel of one target.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The alert, in the state being reported.
    pub alert: Alert,
    /// Why it is sent.
    pub kind: MessageKind,
    /// The count the previous message reported (updates).
    pub previous_count: Option<i64>,
    /// For escalations: the targets that did not acknowledge.
    pub escalated_from: Vec<String>,
    /// The on-call target.
    pub target: String,
    /// The target's email recipients.
    pub recipients: Vec<String>,
    /// The channel (`email`, `webhook:<name>`).
    pub channel: String,
    /// Stable per alert: the incident key (PagerDuty `dedup_key`, email thread).
    pub incident_key: String,
    /// Stable per (alert, target, channel): the outbox entry.
    pub entry_key: String,
    /// Which message of the entry this is (0 = the first).
    pub revision: u32,
    /// Stable per message: `entry_key` and revision. Retries of one message carry the same
    /// key (the `Idempotency-Key` header, the email Message-ID).
    pub idempotency_key: String,
    /// The runbook, when the catalog has it.
    pub runbook: Option<RunbookText>,
    /// Signed link acknowledging the alert.
    pub ack_url: String,
    /// Signed link resolving the alert.
    pub resolve_url: String,
    /// When the message is composed, µs.
    pub time: i64,
}

/// A channel that delivers notifications.
///
/// Implementations classify failures: [`crate::Error::Delivery`] with `transient` true when a
/// later attempt may succeed. `send` must not block the thread; the dispatcher bounds it with
/// a timeout and runs channels independently.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    /// The channel name (`email`, `webhook:<name>`), as recorded in `alert_events.channel`.
    fn channel(&self) -> &str;

    /// Where messages go, for diagnostics (no secrets).
    fn destination(&self) -> String;

    /// Longest time one attempt may take.
    fn timeout(&self) -> std::time::Duration;

    /// Deliver `n`; returns a short description (message id, HTTP status).
    async fn send(&self, n: &Notification) -> Result<String>;
}

/// What a notifier kind needs to build its notifiers.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext<'a> {
    /// The (effective) configuration.
    pub config: &'a OncallConfig,
    /// The outbox directory.
    pub outbox: &'a Path,
}

/// The notifiers a kind builds (shared: the dispatcher hands them to its lanes).
pub type Notifiers = Vec<Arc<dyn Notifier>>;

/// One kind of notifier in the registry.
#[derive(Debug, Clone, Copy)]
pub struct NotifierKind {
    /// Name of the kind.
    pub name: &'static str,
    /// Build this kind's notifiers from the configuration.
    pub build: fn(&BuildContext<'_>) -> Result<Notifiers>,
}

/// The registry of notifier kinds.
pub const NOTIFIERS: &[NotifierKind] = &[email::KIND, webhook::KIND];

/// Every notifier the configuration asks for.
///
/// # Errors
/// The first kind that cannot be built (a secret that cannot be read, a bad URL).
pub fn build_all(ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Notifier>>> {
    let mut all = Vec::new();
    for kind in NOTIFIERS {
        all.extend((kind.build)(ctx)?);
    }
    Ok(all)
}

/// The channels of target `name`: `email` when it has addresses, then `webhook:<name>` per
/// webhook.
pub fn channels_of(config: &OncallConfig, name: &str) -> Vec<String> {
    let Some(t) = config.target(name) else { return Vec::new() };
    let mut out = Vec::new();
    if !t.email.is_empty() {
        out.push(email::CHANNEL.to_owned());
    }
    out.extend(t.webhooks.iter().map(|w| format!("webhook:{w}")));
    out
}

/// `ip`, with IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as the IPv4 address they carry.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
