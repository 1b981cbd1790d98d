//! The [`Dispatcher`] (stage 5, delivery): alerts in, messages out, every step recorded.
//!
//! [`Dispatcher::submit`] routes an alert and queues one outbox entry per (alert, target,
//! channel) — durably, before it returns, and without waiting for any channel. An alert seen
//! again with a higher count queues an update of the same entry (one incident, one thread);
//! updates arriving while a message is still queued are merged into it, and updates of one
//! entry are at least `update_interval` apart.
//!
//! [`Dispatcher::tick`] does one round of work: escalate alerts not acknowledged in time,
//! deliver every due entry (each channel on its own, concurrently, each attempt bounded by a
//! timeout), retry failures with exponential backoff, and record the lifecycle steps through
//! the [`LifecycleSink`]. [`Dispatcher::run`] repeats that for a long-running service, each
//! channel in its own lane so a slow or down channel never holds back another.
//! [`Dispatcher::drain`] delivers what is due now and returns (one-shot commands).
//!
//! Steps (`notified`, `delivery_failed`, `escalated`, `acknowledged`, `resolved`) are journaled
//! in the outbox first and handed to the sink in batches; a sink that is down delays them,
//! never loses them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use ztlake_detections::Alert;

use crate::catalog::Catalog;
use crate::clock::{Clock, micros, rfc3339};
use crate::config::OncallConfig;
use crate::error::{Error, Result};
use crate::escalation::{can_escalate, escalation_after, next_targets};
use crate::lifecycle::{AlertStatus, LifecycleSink, LifecycleStep, StepKind};
use crate::links::{LinkAction, LinkSigner};
use crate::notify::{
    BuildContext, MessageKind, Notification, Notifier, RunbookText, build_all, channels_of,
};
use crate::outbox::{AlertState, Entry, Outbox, Tx, entry_key};
use crate::routing::{effective, quiet_until, rate_limited_until, route};

/// An entry claimed for delivery, with the notifier of its channel.
type Claimed = (Entry, Arc<dyn Notifier>);

/// Actor recorded for automatic escalations.
pub const SYSTEM_ACTOR: &str = "ztlake";

/// Lifecycle steps handed to the sink at once.
const STEP_CHUNK: usize = 10_000;

/// Extra lease on an entry beyond its notifier's timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// What [`Dispatcher::submit`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Submitted {
    /// The targets the alert goes to (routes, plus targets it escalated to earlier).
    pub targets: Vec<String>,
    /// Entries queued or updated.
    pub queued: usize,
    /// Entries that already report this state (nothing new to send).
    pub unchanged: usize,
}

/// What a round of work did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Messages delivered.
    pub delivered: usize,
    /// Attempts that failed and will be retried.
    pub retrying: usize,
    /// Messages given up (`delivery_failed`, final).
    pub failed: usize,
    /// Messages held back by quiet hours or a rate limit.
    pub deferred: usize,
    /// Escalations to a next target.
    pub escalated: usize,
    /// Lifecycle steps handed to the sink.
    pub steps_recorded: usize,
    /// Lifecycle steps still waiting for the sink.
    pub steps_pending: usize,
}

impl TickReport {
    fn add(&mut self, o: &TickReport) {
        self.delivered += o.delivered;
        self.retrying += o.retrying;
        self.failed += o.failed;
        self.deferred += o.deferred;
        self.escalated += o.escalated;
        self.steps_recorded += o.steps_recorded;
        self.steps_pending = o.steps_pending;
    }
}

/// Routes alerts to on-call targets and delivers them durably. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    config: OncallConfig,
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    sink: Arc<dyn LifecycleSink>,
    outbox: Outbox,
    notifiers: BTreeMap<String, Arc<dyn Notifier>>,
    signer: LinkSigner,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("outbox", &self.inner.outbox.dir())
            .field("channels", &self.inner.notifiers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher for `config` (whose `outbox` must be set), routing with the runbooks of
    /// `catalog`, timed by `clock`, recording steps through `sink`. Secrets are read and the
    /// notifiers built now; entries left in the outbox by an earlier run are picked up.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration, a secret that cannot be read or no
    /// outbox directory; [`Error::Outbox`] when the outbox cannot be created.
    pub fn new(
        config: OncallConfig,
        catalog: Catalog,
        clock: Arc<dyn Clock>,
        sink: Arc<dyn LifecycleSink>,
    ) -> Result<Dispatcher> {
        config.validate()?;
        let dir: PathBuf = config
            .outbox
            .clone()
            .ok_or_else(|| Error::config("oncall.outbox: no outbox directory given"))?;
        let config = effective(&config, &catalog);
        let outbox = Outbox::open(&dir)?;
        let ctx = BuildContext { config: &config, outbox: &dir };
        let notifiers = build_all(&ctx)?
            .into_iter()
            .map(|n| (n.channel().to_owned(), n))
            .collect::<BTreeMap<_, _>>();
        let signer = LinkSigner::from_config(&config.links, &dir)?;
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                config,
                catalog,
                clock,
                sink,
                outbox,
                notifiers,
                signer,
                wake: tokio::sync::Notify::new(),
            }),
        })
    }

    /// The effective configuration (owner targets filled in when none are configured).
    pub fn config(&self) -> &OncallConfig {
        &self.inner.config
    }

    /// The outbox directory.
    pub fn outbox_dir(&self) -> &Path {
        self.inner.outbox.dir()
    }

    /// The link signer (what `ztlake serve` verifies with).
    pub fn signer(&self) -> &LinkSigner {
        &self.inner.signer
    }

    /// The channels with a notifier (`email`, `webhook:<name>`).
    pub fn channels(&self) -> Vec<String> {
        self.inner.notifiers.keys().cloned().collect()
    }

    /// Route `alert` and queue its messages durably. Returns at once; delivery happens in
    /// [`Dispatcher::tick`] / [`Dispatcher::run`].
    ///
    /// # Errors
    /// [`Error::Outbox`] when the outbox cannot be written (nothing is half-queued: each entry
    /// is written atomically).
    pub fn submit(&self, alert: &Alert) -> Result<Submitted> {
        let mut reports = self.submit_all(std::slice::from_ref(alert))?;
        Ok(reports.pop().unwrap_or_default())
    }

    /// [`Dispatcher::submit`] for many alerts at once: one exclusive section of the outbox,
    /// whose files are synced together (what `ztlake detect` and `ingest --detect` hand over
    /// after a run). Returns one report per alert, in order.
    ///
    /// # Errors
    /// [`Error::Outbox`] when the outbox cannot be written (each entry is written atomically;
    /// the alerts before the failing one stay queued).
    pub fn submit_all(&self, alerts: &[Alert]) -> Result<Vec<Submitted>> {
        let i = &self.inner;
        let now = i.clock.now();
        let reports = i.outbox.with(|tx| {
            alerts.iter().map(|alert| self.submit_in(tx, alert, now)).collect::<Result<Vec<_>>>()
        })?;
        if reports.iter().any(|r| r.queued > 0) {
            i.wake.notify_waiters();
        }
        Ok(reports)
    }

    /// Route `alert` and queue its messages inside `tx`.
    fn submit_in(&self, tx: &Tx<'_>, alert: &Alert, now: i64) -> Result<Submitted> {
        let i = &self.inner;
        let runbook = i.catalog.get(&alert.runbook).ok();
        let routed = route(&i.config, alert, runbook.map(|r| r.owner.as_str()));
        let mut report = Submitted::default();
        let stored = tx.alert(&alert.alert_id)?;
        if routed.is_empty() && stored.is_none() {
            return Ok(report);
        }
        let mut state = stored.unwrap_or_else(|| AlertState {
            alert_id: alert.alert_id.clone(),
            alert: alert.clone(),
            routed_at: now,
            targets: Vec::new(),
            level_targets: routed.clone(),
            level: 0,
            next_escalation: None,
            closed: None,
        });
        let fresh = state.targets.is_empty();
        if alert.count >= state.alert.count {
            state.alert = alert.clone();
        }
        for t in &routed {
            if !state.targets.contains(t) {
                state.targets.push(t.clone());
            }
        }
        for target in &state.targets {
            let kind =
                if routed.contains(target) { MessageKind::New } else { MessageKind::Escalation };
            for channel in channels_of(&i.config, target) {
                if self.upsert(tx, &state.alert, target, &channel, kind, &[], now)? {
                    report.queued += 1;
                } else {
                    report.unchanged += 1;
                }
            }
        }
        if fresh {
            let after = escalation_after(runbook, alert.severity);
            state.next_escalation = after
                .filter(|_| can_escalate(&i.config, &state.level_targets, &state.targets))
                .map(|d| now.saturating_add(micros(d)));
        }
        report.targets = state.targets.clone();
        tx.put_alert(&state)?;
        Ok(report)
    }

    /// Queue (or update) the entry of `alert` to `channel` of `target`; true when something
    /// new is to be sent.
    #[allow(clippy::too_many_arguments)]
    fn upsert(
        &self,
        tx: &Tx<'_>,
        alert: &Alert,
        target: &str,
        channel: &str,
        kind: MessageKind,
        escalated_from: &[String],
        now: i64,
    ) -> Result<bool> {
        let key = entry_key(&alert.alert_id, target, channel);
        match tx.entry(&key)? {
            None => {
                tx.put_entry(&Entry {
                    key,
                    alert_id: alert.alert_id.clone(),
                    target: target.to_owned(),
                    channel: channel.to_owned(),
                    alert: alert.clone(),
                    kind,
                    escalated_from: escalated_from.to_vec(),
                    revision: 0,
                    pending: true,
                    delivered_revision: None,
                    delivered_count: None,
                    delivered_at: None,
                    attempts: 0,
                    first_failure: None,
                    last_error: None,
                    failed: false,
                    next_attempt: now,
                    waiting_for: None,
                    lease_until: 0,
                    created: now,
                })?;
                Ok(true)
            }
            Some(mut e) => {
                if alert.count <= e.alert.count {
                    return Ok(false);
                }
                e.alert = alert.clone();
                if !e.pending {
                    if e.delivered_revision == Some(e.revision) {
                        e.revision += 1;
                        e.kind = MessageKind::Update;
                    }
                    e.pending = true;
                    e.failed = false;
                    e.attempts = 0;
                    e.first_failure = None;
                    e.last_error = None;
                    let interval = micros(self.inner.config.delivery.update_interval);
                    let earliest = e.delivered_at.map_or(now, |t| t.saturating_add(interval));
                    e.next_attempt = earliest.max(now);
                    e.waiting_for = (earliest > now)
                        .then(|| format!("update interval until {}", rfc3339(earliest)));
                }
                tx.put_entry(&e)?;
                Ok(true)
            }
        }
    }

    /// One round: escalations due, deliveries due on every channel, lifecycle steps recorded.
    ///
    /// # Errors
    /// [`Error::Outbox`] when the outbox cannot be read or written. Delivery failures are not
    /// errors: they are retried and recorded.
    pub async fn tick(&self) -> Result<TickReport> {
        let mut report = self.escalate().await?;
        report.add(&self.deliver(None).await?);
        let steps = self.flush_steps().await?;
        report.steps_recorded += steps.steps_recorded;
        report.steps_pending = steps.steps_pending;
        Ok(report)
    }

    /// Deliver what is due now, repeating while rounds make progress (one-shot commands call
    /// it before exiting). Failed attempts wait for their backoff in the outbox; the next
    /// run picks them up.
    ///
    /// # Errors
    /// As [`Dispatcher::tick`].
    pub async fn drain(&self) -> Result<TickReport> {
        let mut total = TickReport::default();
        for _ in 0..16 {
            let r = self.tick().await?;
            total.add(&r);
            if r.delivered + r.escalated == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Work until `shutdown` completes: one lane per channel delivering as entries come due
    /// (woken by [`Dispatcher::submit`], else every `poll_interval`), and one lane for
    /// escalations and lifecycle steps. Lanes are independent: a channel that hangs or fails
    /// never delays another channel or the caller.
    ///
    /// # Errors
    /// Never for delivery problems (they are logged, retried and recorded).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<()> {
        let poll = self.inner.config.delivery.poll_interval;
        let lanes = self.channels().into_iter().map(|channel| {
            let d = self.clone();
            async move {
                loop {
                    let notified = d.inner.wake.notified();
                    if let Err(e) = d.deliver(Some(&channel)).await {
                        tracing::warn!(channel, error = %e, "delivery round failed");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(poll) => {}
                        () = notified => {}
                    }
                }
            }
        });
        let housekeeping = {
            let d = self.clone();
            async move {
                loop {
                    if let Err(e) = d.escalate().await {
                        tracing::warn!(error = %e, "escalation round failed");
                    }
                    if let Err(e) = d.flush_steps().await {
                        tracing::warn!(error = %e, "recording lifecycle steps failed");
                    }
                    tokio::time::sleep(poll).await;
                }
            }
        };
        tokio::select! {
            () = shutdown => {}
            _ = futures::future::join_all(lanes) => {}
            () = housekeeping => {}
        }
        self.flush_steps().await?;
        Ok(())
    }

    /// Every outbox entry (delivery state per alert, target and channel).
    ///
    /// # Errors
    /// [`Error::Outbox`].
    pub fn entries(&self) -> Result<Vec<Entry>> {
        self.inner.outbox.with(|tx| tx.entries())
    }

    /// Entries with something still to deliver.
    ///
    /// # Errors
    /// [`Error::Outbox`].
    pub fn pending(&self) -> Result<usize> {
        self.inner.outbox.with(|tx| Ok(tx.pending_keys()?.len()))
    }

    /// Record that `actor` acknowledged (or resolved) `alert_id`, with an optional note: the
    /// alert stops escalating here at once, and the step goes to the sink (kept in the outbox
    /// until the sink takes it). Returns the step and whether the sink has recorded it.
    ///
    /// # Errors
    /// [`Error::Outbox`] when the outbox cannot be written.
    pub async fn record_action(
        &self,
        alert_id: &str,
        action: LinkAction,
        actor: &str,
        note: Option<String>,
    ) -> Result<(LifecycleStep, bool)> {
        let now = self.inner.clock.now();
        let kind = action.step();
        let mut step = LifecycleStep::by_actor(alert_id, kind, actor, note, now);
        self.inner.outbox.with(|tx| {
            if let Some(mut st) = tx.alert(alert_id)? {
                step = step.clone().of_alert(&st.alert);
                if st.closed.as_deref() != Some(StepKind::Resolved.as_str()) {
                    st.closed = Some(kind.as_str().to_owned());
                }
                tx.put_alert(&st)?;
            }
            tx.journal(&step)
        })?;
        self.flush_steps().await?;
        let waiting = self
            .inner
            .outbox
            .with(|tx| Ok(tx.journaled()?.iter().any(|s| s.step_id == step.step_id)))?;
        let recorded = !waiting;
        Ok((step, recorded))
    }

    /// Escalate every alert whose time is up and that nobody acknowledged.
    async fn escalate(&self) -> Result<TickReport> {
        let i = &self.inner;
        let now = i.clock.now();
        let due: Vec<AlertState> = i.outbox.with(|tx| {
            Ok(tx
                .escalating()?
                .into_iter()
                .filter(|s| s.next_escalation.is_some_and(|t| t <= now))
                .collect())
        })?;
        let mut report = TickReport::default();
        if due.is_empty() {
            return Ok(report);
        }
        let ids: Vec<String> = due.iter().map(|s| s.alert_id.clone()).collect();
        // The lake knows acknowledgements made elsewhere (CLI, `ztlake serve`). When it cannot
        // answer, escalate: paging once too often beats missing an incident.
        let statuses = i.sink.statuses(&ids).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read alert statuses; escalating on local state");
            Default::default()
        });
        i.outbox.with(|tx| {
            for s in due {
                let Some(mut st) = tx.alert(&s.alert_id)? else { continue };
                if st.closed.is_some() || st.next_escalation.is_none_or(|t| t > now) {
                    continue;
                }
                match statuses.get(&st.alert_id) {
                    Some(AlertStatus::Acknowledged) => st.closed = Some("acknowledged".into()),
                    Some(AlertStatus::Resolved) => st.closed = Some("resolved".into()),
                    Some(AlertStatus::Open) | None => {}
                }
                if st.closed.is_some() {
                    tx.put_alert(&st)?;
                    continue;
                }
                let next = next_targets(&i.config, &st.level_targets, &st.targets);
                if next.is_empty() {
                    st.closed = Some("exhausted".into());
                    tx.put_alert(&st)?;
                    continue;
                }
                let runbook = i.catalog.get(&st.alert.runbook).ok();
                let after = escalation_after(runbook, st.alert.severity);
                let waited = humantime::format_duration(Duration::from_micros(
                    u64::try_from(now.saturating_sub(st.routed_at.max(0))).unwrap_or(0),
                ));
                for target in &next {
                    for channel in channels_of(&i.config, target) {
                        self.upsert(
                            tx,
                            &st.alert,
                            target,
                            &channel,
                            MessageKind::Escalation,
                            &st.level_targets,
                            now,
                        )?;
                    }
                    let level = (st.level + 1).to_string();
                    let mut step = LifecycleStep::new(
                        &st.alert_id,
                        StepKind::Escalated,
                        now,
                        &[target, &level],
                    )
                    .of_alert(&st.alert);
                    step.target = Some(target.clone());
                    step.actor = Some(SYSTEM_ACTOR.to_owned());
                    step.detail = Some(format!(
                        "not acknowledged {waited} after notifying {}; escalated to {target} (level {level})",
                        st.level_targets.join(", ")
                    ));
                    tx.journal(&step)?;
                    report.escalated += 1;
                }
                st.level += 1;
                st.targets.extend(next.iter().cloned());
                st.level_targets = next;
                st.routed_at = now;
                st.next_escalation = after
                    .filter(|_| can_escalate(&i.config, &st.level_targets, &st.targets))
                    .map(|d| now.saturating_add(micros(d)));
                tx.put_alert(&st)?;
            }
            Ok(())
        })?;
        if report.escalated > 0 {
            i.wake.notify_waiters();
        }
        Ok(report)
    }

    /// The message for entry `e`.
    fn notification(&self, e: &Entry, now: i64) -> Notification {
        let i = &self.inner;
        let runbook = i.catalog.get(&e.alert.runbook).ok().map(|rb| RunbookText {
            id: rb.id.clone(),
            title: rb.title.clone(),
            owner: rb.owner.clone(),
            text: crate::render::render(rb, &e.alert.placeholders()).text,
        });
        let recipients = i.config.target(&e.target).map(|t| t.email.clone()).unwrap_or_default();
        Notification {
            alert: e.alert.clone(),
            kind: e.kind,
            previous_count: e.delivered_count,
            escalated_from: e.escalated_from.clone(),
            target: e.target.clone(),
            recipients,
            channel: e.channel.clone(),
            incident_key: format!("ztlake-{}", e.alert_id),
            entry_key: e.key.clone(),
            revision: e.revision,
            idempotency_key: format!("{}-{}", e.key, e.revision),
            runbook,
            ack_url: i.signer.url(LinkAction::Acknowledge, &e.alert_id, &e.target, now),
            resolve_url: i.signer.url(LinkAction::Resolve, &e.alert_id, &e.target, now),
            time: now,
        }
    }

    fn backoff(&self, attempts: u32) -> i64 {
        let d = &self.inner.config.delivery;
        let factor = 1u32.checked_shl(attempts.saturating_sub(1).min(30)).unwrap_or(u32::MAX);
        micros(d.retry_initial.saturating_mul(factor).min(d.retry_max))
    }

    /// Claim the due entries (of `only` channel), deliver them, record the outcome.
    async fn deliver(&self, only: Option<&str>) -> Result<TickReport> {
        let i = &self.inner;
        let now = i.clock.now();
        let mut report = TickReport::default();
        let claimed: Vec<Claimed> = i.outbox.with(|tx| {
            let mut claimed = Vec::new();
            for key in tx.pending_keys()? {
                let Some(mut e) = tx.entry(&key)? else { continue };
                if only.is_some_and(|c| c != e.channel) {
                    continue;
                }
                if !e.pending {
                    tx.put_entry(&e)?; // a stale marker
                    continue;
                }
                if e.next_attempt > now || e.lease_until > now {
                    continue;
                }
                let target = i.config.target(&e.target);
                let notifier = i.notifiers.get(&e.channel);
                let (Some(target), Some(notifier)) = (target, notifier) else {
                    // The configuration changed since the entry was queued.
                    e.pending = false;
                    e.failed = true;
                    e.last_error = Some(format!(
                        "target {:?} or channel {:?} is no longer configured",
                        e.target, e.channel
                    ));
                    self.journal_failure(tx, &e, now, true)?;
                    tx.put_entry(&e)?;
                    report.failed += 1;
                    continue;
                };
                if let Some(until) =
                    target.quiet_hours.as_ref().and_then(|q| quiet_until(q, &e.alert, now))
                {
                    e.next_attempt = until;
                    e.waiting_for = Some(format!("quiet hours until {}", rfc3339(until)));
                    tx.put_entry(&e)?;
                    report.deferred += 1;
                    continue;
                }
                if let Some(limit) = &target.rate_limit {
                    let window = micros(limit.per);
                    let mut sends = tx.sends(&e.target)?;
                    sends.retain(|&t| t > now.saturating_sub(window));
                    if let Some(until) = rate_limited_until(limit, &sends, now) {
                        e.next_attempt = until;
                        e.waiting_for = Some(format!("rate limit until {}", rfc3339(until)));
                        tx.put_entry(&e)?;
                        report.deferred += 1;
                        continue;
                    }
                    sends.push(now);
                    tx.put_sends(&e.target, &sends)?;
                }
                e.lease_until = now.saturating_add(micros(notifier.timeout() + LEASE_MARGIN));
                e.waiting_for = None;
                tx.put_entry(&e)?;
                claimed.push((e, Arc::clone(notifier)));
            }
            Ok(claimed)
        })?;
        if claimed.is_empty() {
            return Ok(report);
        }
        // One lane per channel, lanes concurrently; within a lane, one message at a time.
        let mut lanes: BTreeMap<String, Vec<Claimed>> = BTreeMap::new();
        for (e, n) in claimed {
            lanes.entry(e.channel.clone()).or_default().push((e, n));
        }
        let results = futures::future::join_all(lanes.into_values().map(|lane| async move {
            let mut out = Vec::with_capacity(lane.len());
            for (e, notifier) in lane {
                let n = self.notification(&e, now);
                let limit = notifier.timeout() + Duration::from_secs(5);
                let result = match tokio::time::timeout(limit, notifier.send(&n)).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::Delivery {
                        channel: e.channel.clone(),
                        destination: notifier.destination(),
                        message: format!("no answer within {}", humantime::format_duration(limit)),
                        transient: true,
                    }),
                };
                out.push((e, result));
            }
            out
        }))
        .await;
        let done = i.clock.now();
        i.outbox.with(|tx| {
            for (claimed, result) in results.into_iter().flatten() {
                let mut e = tx.entry(&claimed.key)?.unwrap_or_else(|| claimed.clone());
                e.lease_until = 0;
                match result {
                    Ok(detail) => {
                        e.delivered_revision = Some(claimed.revision);
                        e.delivered_count = Some(claimed.alert.count);
                        e.delivered_at = Some(done);
                        let attempts = claimed.attempts + 1;
                        e.attempts = 0;
                        e.first_failure = None;
                        e.last_error = None;
                        e.failed = false;
                        if e.alert.count > claimed.alert.count {
                            // The alert grew while this message was on its way.
                            e.revision = claimed.revision + 1;
                            e.kind = MessageKind::Update;
                            e.pending = true;
                            let next =
                                done.saturating_add(micros(i.config.delivery.update_interval));
                            e.next_attempt = next;
                            e.waiting_for =
                                Some(format!("update interval until {}", rfc3339(next)));
                        } else {
                            e.pending = false;
                        }
                        let rev = claimed.revision.to_string();
                        let mut step = LifecycleStep::new(
                            &e.alert_id,
                            StepKind::Notified,
                            done,
                            &[&e.channel, &e.target, &rev],
                        )
                        .of_alert(&claimed.alert);
                        step.channel = Some(e.channel.clone());
                        step.target = Some(e.target.clone());
                        step.detail = Some(format!(
                            "{} message {} (count {}), attempt {attempts}: {detail}",
                            claimed.kind.as_str(),
                            crate::notify::email::message_id(&e.key, claimed.revision),
                            claimed.alert.count
                        ));
                        tx.journal(&step)?;
                        report.delivered += 1;
                    }
                    Err(err) => {
                        e.attempts = claimed.attempts + 1;
                        let first = *e.first_failure.get_or_insert(done);
                        e.last_error = Some(err.to_string());
                        let give_up = !err.is_transient()
                            || done.saturating_sub(first)
                                >= micros(i.config.delivery.give_up_after);
                        if give_up {
                            e.failed = true;
                            e.pending = false;
                            report.failed += 1;
                        } else {
                            let next = done.saturating_add(self.backoff(e.attempts));
                            e.next_attempt = next;
                            e.waiting_for = Some(format!("retry at {}", rfc3339(next)));
                            report.retrying += 1;
                        }
                        if give_up || e.attempts == 1 {
                            self.journal_failure(tx, &e, done, give_up)?;
                        }
                        // A failed attempt does not use up the target's rate limit.
                        if i.config.target(&e.target).is_some_and(|t| t.rate_limit.is_some()) {
                            let mut sends = tx.sends(&e.target)?;
                            if let Some(pos) = sends.iter().position(|&t| t == now) {
                                sends.remove(pos);
                                tx.put_sends(&e.target, &sends)?;
                            }
                        }
                    }
                }
                tx.put_entry(&e)?;
            }
            Ok(())
        })?;
        Ok(report)
    }

    /// Journal a `delivery_failed` step for `e` (final: given up; else: retrying).
    fn journal_failure(&self, tx: &Tx<'_>, e: &Entry, now: i64, fin: bool) -> Result<()> {
        let rev = e.revision.to_string();
        let attempt = e.attempts.to_string();
        let marker = if fin { "final" } else { attempt.as_str() };
        let mut step = LifecycleStep::new(
            &e.alert_id,
            StepKind::DeliveryFailed,
            now,
            &[&e.channel, &e.target, &rev, marker],
        )
        .of_alert(&e.alert);
        step.channel = Some(e.channel.clone());
        step.target = Some(e.target.clone());
        let reason = e.last_error.clone().unwrap_or_default();
        step.detail = Some(if fin {
            format!("failed: gave up after {} attempt(s): {reason}", e.attempts)
        } else {
            format!(
                "pending: attempt {} failed, retrying at {}: {reason}",
                e.attempts,
                rfc3339(e.next_attempt)
            )
        });
        tx.journal(&step)
    }

    /// Hand journaled steps to the sink; forget those it recorded.
    async fn flush_steps(&self) -> Result<TickReport> {
        let i = &self.inner;
        let steps = i.outbox.with(|tx| tx.journaled())?;
        let mut report = TickReport::default();
        let mut remaining = steps.len();
        // Large chunks: each is one commit to the lake for the binary's sink.
        for chunk in steps.chunks(STEP_CHUNK) {
            match i.sink.record(chunk).await {
                Ok(()) => {
                    let ids: Vec<String> = chunk.iter().map(|s| s.step_id.clone()).collect();
                    i.outbox.with(|tx| tx.forget_steps(&ids))?;
                    report.steps_recorded += chunk.len();
                    remaining -= chunk.len();
                }
                Err(e) => {
                    tracing::warn!(error = %e, steps = remaining, "lifecycle steps kept in the outbox for later");
                    break;
                }
            }
        }
        report.steps_pending = remaining;
        Ok(report)
    }
}
