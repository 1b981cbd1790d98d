//! Lifecycle steps of an alert after it is raised — notified, delivery failed, escalated,
//! acknowledged, resolved — and the [`LifecycleSink`] they are recorded through.
//!
//! This crate knows nothing of the lake: the binary implements the sink by appending the
//! steps to `alert_events` (so time to acknowledge and time to resolve are SQL over the lake).
//! Every step carries a stable [`LifecycleStep::step_id`]; recording the same step twice (a
//! retry after a crash) must not duplicate it, which the lake's `event_id` check guarantees.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use ztlake_detections::Alert;

use crate::error::{Error, Result};

/// The kinds of lifecycle steps (the `event` column of `alert_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A message reached a channel (email accepted by the server or written to the outbox,
    /// webhook answered 2xx).
    Notified,
    /// A delivery attempt failed; `detail` says why and whether it is retried.
    DeliveryFailed,
    /// Not acknowledged in time: the next target was paged.
    Escalated,
    /// Someone took the alert.
    Acknowledged,
    /// The alert was closed.
    Resolved,
}

impl StepKind {
    /// The name stored in `alert_events.event`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Notified => "notified",
            StepKind::DeliveryFailed => "delivery_failed",
            StepKind::Escalated => "escalated",
            StepKind::Acknowledged => "acknowledged",
            StepKind::Resolved => "resolved",
        }
    }
}

/// One step of an alert's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleStep {
    /// The alert.
    pub alert_id: String,
    /// What happened.
    pub kind: StepKind,
    /// When, µs since the epoch.
    pub time: i64,
    /// Channel of notification steps (`email`, `webhook:<name>`).
    pub channel: Option<String>,
    /// On-call target (notification and escalation steps: the target paged).
    pub target: Option<String>,
    /// Who acknowledged, resolved or escalated (`ztlake` for automatic escalation).
    pub actor: Option<String>,
    /// Note, delivery error or other detail.
    pub detail: Option<String>,
    /// Stable id: the same step recorded again has the same id (16 hex digits).
    pub step_id: String,
    /// Provider of the alert, when the caller knows it (else the sink looks it up).
    pub provider: Option<String>,
    /// Rule of the alert, when known.
    pub rule_id: Option<String>,
    /// Severity of the alert, when known.
    pub severity: Option<String>,
}

impl LifecycleStep {
    /// A step of `kind` for `alert_id`, identified by `identity` (the parts that make this step
    /// distinct from every other step of the alert: channel, target, revision, time…).
    pub fn new(alert_id: &str, kind: StepKind, time: i64, identity: &[&str]) -> LifecycleStep {
        let mut h = Sha256::new();
        h.update(alert_id.as_bytes());
        h.update([0x1f]);
        h.update(kind.as_str().as_bytes());
        for part in identity {
            h.update([0x1f]);
            h.update(part.as_bytes());
        }
        let digest = h.finalize();
        let step_id: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        LifecycleStep {
            alert_id: alert_id.to_owned(),
            kind,
            time,
            channel: None,
            target: None,
            actor: None,
            detail: None,
            step_id,
            provider: None,
            rule_id: None,
            severity: None,
        }
    }

    /// The same step with the alert's provider, rule and severity filled in.
    pub fn of_alert(mut self, alert: &Alert) -> LifecycleStep {
        self.provider = Some(alert.provider.clone());
        self.rule_id = Some(alert.rule_id.clone());
        self.severity = Some(alert.severity.to_string());
        self
    }

    /// An acknowledgement or resolution by `actor` at `time` (one per actor and time).
    pub fn by_actor(
        alert_id: &str,
        kind: StepKind,
        actor: &str,
        note: Option<String>,
        time: i64,
    ) -> LifecycleStep {
        let mut step = LifecycleStep::new(alert_id, kind, time, &[actor, &time.to_string()]);
        step.actor = Some(actor.to_owned());
        step.detail = note;
        step
    }
}

/// Where an alert stands, as far as acknowledgement goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Neither acknowledged nor resolved.
    Open,
    /// Acknowledged, not resolved.
    Acknowledged,
    /// Resolved.
    Resolved,
}

/// Where lifecycle steps are recorded, and where acknowledgement status is read back from.
///
/// The binary implements it over the lake (`alert_events`); [`MemorySink`] keeps steps in
/// memory for tests. Implementations must be idempotent per [`LifecycleStep::step_id`].
///
/// # Errors
/// [`Error::Sink`] when the steps cannot be recorded; the dispatcher keeps them in its outbox
/// and records them again later.
///
/// # Example
/// ```
/// use ztlake_runbooks::{LifecycleSink, LifecycleStep, MemorySink, StepKind};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let sink = MemorySink::default();
/// let step = LifecycleStep::by_actor("00000000000000aa", StepKind::Acknowledged, "alice", None, 5);
/// sink.record(&[step.clone(), step]).await.unwrap();
/// assert_eq!(sink.steps().len(), 1);
/// # });
/// ```
#[async_trait::async_trait]
pub trait LifecycleSink: Send + Sync {
    /// Record `steps` (a batch; already recorded step ids are skipped).
    async fn record(&self, steps: &[LifecycleStep]) -> Result<()>;

    /// The status of each of `alert_ids` that the sink knows (absent: open or unknown).
    async fn statuses(&self, alert_ids: &[String]) -> Result<HashMap<String, AlertStatus>>;
}

/// A [`LifecycleSink`] in memory (tests, and library users without a lake).
#[derive(Debug, Default)]
pub struct MemorySink {
    steps: Mutex<Vec<LifecycleStep>>,
    fail: Mutex<Option<String>>,
}

impl MemorySink {
    /// Every step recorded, in order.
    pub fn steps(&self) -> Vec<LifecycleStep> {
        self.steps.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The steps of one kind.
    pub fn of_kind(&self, kind: StepKind) -> Vec<LifecycleStep> {
        self.steps().into_iter().filter(|s| s.kind == kind).collect()
    }

    /// Make `record` fail with `message` (None: succeed again) — to test that steps survive.
    pub fn fail_with(&self, message: Option<&str>) {
        if let Ok(mut f) = self.fail.lock() {
            *f = message.map(str::to_owned);
        }
    }
}

#[async_trait::async_trait]
impl LifecycleSink for MemorySink {
    async fn record(&self, steps: &[LifecycleStep]) -> Result<()> {
        if let Some(message) = self.fail.lock().ok().and_then(|f| f.clone()) {
            return Err(Error::Sink(message));
        }
        let mut all = self.steps.lock().map_err(|_| Error::Sink("poisoned".into()))?;
        for step in steps {
            if !all.iter().any(|s| s.step_id == step.step_id) {
                all.push(step.clone());
            }
        }
        Ok(())
    }

    async fn statuses(&self, alert_ids: &[String]) -> Result<HashMap<String, AlertStatus>> {
        let all = self.steps.lock().map_err(|_| Error::Sink("poisoned".into()))?;
        let mut out = HashMap::new();
        for step in all.iter().filter(|s| alert_ids.contains(&s.alert_id)) {
            let status = match step.kind {
                StepKind::Acknowledged => AlertStatus::Acknowledged,
                StepKind::Resolved => AlertStatus::Resolved,
                _ => continue,
            };
            let entry = out.entry(step.alert_id.clone()).or_insert(AlertStatus::Open);
            if *entry != AlertStatus::Resolved {
                *entry = status;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids_are_stable_and_distinct() {
        let a = LifecycleStep::new("a1", StepKind::Notified, 1, &["email", "netsec", "0"]);
        let b = LifecycleStep::new("a1", StepKind::Notified, 99, &["email", "netsec", "0"]);
        assert_eq!(a.step_id, b.step_id, "time is not part of a notification's identity");
        assert_eq!(a.step_id.len(), 16);
        let c = LifecycleStep::new("a1", StepKind::Notified, 1, &["email", "netsec", "1"]);
        assert_ne!(a.step_id, c.step_id);
        let d = LifecycleStep::new("a1", StepKind::Notified, 1, &["emailnetsec", "1"]);
        assert_ne!(c.step_id, d.step_id, "parts are separated");
        assert_eq!(StepKind::DeliveryFailed.as_str(), "delivery_failed");
    }

    #[tokio::test]
    async fn the_memory_sink_is_idempotent_and_reports_status() {
        let sink = MemorySink::default();
        let ack = LifecycleStep::by_actor("x", StepKind::Acknowledged, "alice", None, 5);
        sink.record(&[ack.clone(), ack.clone()]).await.expect("record");
        sink.record(std::slice::from_ref(&ack)).await.expect("record");
        assert_eq!(sink.steps().len(), 1);
        let s = sink.statuses(&["x".into(), "y".into()]).await.expect("statuses");
        assert_eq!(s.get("x"), Some(&AlertStatus::Acknowledged));
        assert_eq!(s.get("y"), None);
        sink.fail_with(Some("lake down"));
        assert!(sink.record(&[ack]).await.is_err());
    }
}
