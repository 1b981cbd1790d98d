//! Releasing alerts: once the rows behind an alert are in the lake, it is counted, published to
//! the SIEM feed (OCSF Detection Finding), handed to on-call delivery, and merged into the
//! `alerts` table (with its `raised` / `updated` lifecycle events).
//!
//! The lake write runs on its own thread (own runtime: its DataFusion MERGEs never occupy the
//! IO runtime the sources need) behind a bounded queue and coalesces the states queued
//! meanwhile (latest per `alert_id`), so a slow MERGE never delays delivery; writes are
//! idempotent (`write_alerts` merges into the stored state), so a restart that raises the same
//! alert again changes nothing.
//!
//! `hand_over` is the one place where alerts reach on-call delivery ([`OnCall`]); it runs as
//! its own task behind a bounded queue, so the outbox's fsyncs never delay the SIEM feed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::sync::{Notify, mpsc, oneshot};
use ztlake_detections::Alert;
use ztlake_runbooks::{
    Catalog, Clock, Dispatcher, LifecycleSink, OncallConfig, SystemClock, TickReport,
};
use ztlake_storage::Lake;

use super::Ctx;
use super::detect::Raised;
use super::metrics::Metrics;
use crate::oncall::LakeSink;

/// On-call delivery inside the service: the runbooks crate's [`Dispatcher`] over the lake
/// (`crate::oncall`), configured by the `[oncall]` section (absent: the defaults — each alert
/// to its runbook owner as an `.eml` file in the outbox, nothing sent anywhere).
/// [`Dispatcher::submit`] queues durably (an fsync'd file per message); a background thread
/// delivers (retries, escalations, lifecycle steps to `alert_events`) every
/// `delivery.poll_interval` and right after each submission. The outbox does blocking file IO
/// and fsyncs: delivery runs on its own thread and runtime, and submissions on a blocking
/// thread, so a burst of alerts never stalls the sources, commits and `/metrics` on the IO
/// runtime.
pub(crate) struct OnCall {
    dispatcher: Option<Dispatcher>,
    wake: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OnCall {
    /// Start delivery (`None` when the service runs without detections).
    pub(crate) fn start(ctx: &Ctx, catalog: Option<Catalog>) -> Result<OnCall> {
        let wake = Arc::new(Notify::new());
        let Some(catalog) = catalog else {
            return Ok(OnCall { dispatcher: None, wake, stop: None, thread: None });
        };
        let config = oncall_config(ctx.config.oncall.as_ref(), &ctx.lake)?;
        let poll = config.delivery.poll_interval;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let sink: Arc<dyn LifecycleSink> = Arc::new(LakeSink::new(ctx.lake.clone()));
        let dispatcher =
            Dispatcher::new(config, catalog, clock, sink).context("oncall: starting delivery")?;
        tracing::info!(outbox = %dispatcher.outbox_dir().display(), channels = ?dispatcher.channels(), "on-call delivery");
        let (stop, mut stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("oncall: starting the delivery runtime")?;
        let thread = {
            let d = dispatcher.clone();
            let wake = wake.clone();
            let metrics = ctx.metrics.clone();
            std::thread::Builder::new()
                .name("ztlake-oncall".into())
                .spawn(move || {
                    runtime.block_on(async move {
                        loop {
                            let started = std::time::Instant::now();
                            match d.tick().await {
                                Ok(r) => {
                                    count(&metrics, &r);
                                    if r.delivered > 0 {
                                        tracing::debug!(
                                            delivered = r.delivered,
                                            ms = started.elapsed().as_millis(),
                                            "on-call delivery round"
                                        );
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "on-call delivery round failed")
                                }
                            }
                            tokio::select! {
                                _ = &mut stopped => return,
                                () = wake.notified() => {}
                                () = tokio::time::sleep(poll) => {}
                            }
                        }
                    });
                })
                .context("oncall: starting the delivery thread")?
        };
        Ok(OnCall { dispatcher: Some(dispatcher), wake, stop: Some(stop), thread: Some(thread) })
    }

    /// Stop the background rounds, then deliver what is due (bounded) before the exit; what
    /// is left stays queued in the outbox for the next start.
    pub(crate) async fn drain(mut self, metrics: &Metrics) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let Some(d) = self.dispatcher.take() else { return };
        // On a blocking thread with its own runtime, as the rounds ran; what is not done
        // within the bound stays in the outbox (the process exits meanwhile).
        let drained = tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(d.drain()).map_err(anyhow::Error::from)
        });
        match tokio::time::timeout(Duration::from_secs(30), drained).await {
            Ok(Ok(Ok(r))) => count(metrics, &r),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "final on-call delivery failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "final on-call delivery task failed"),
            Err(_) => tracing::warn!("final on-call delivery timed out; the outbox keeps it"),
        }
    }
}

/// The `[oncall]` table of the service configuration as the runbooks crate reads it, with the
/// lake's default outbox.
///
/// # Errors
/// Every problem of the section, naming its key.
pub(crate) fn oncall_config(table: Option<&toml::Table>, lake: &Lake) -> Result<OncallConfig> {
    let config: OncallConfig = match table {
        Some(t) => toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e| anyhow::anyhow!("oncall: {}", e.message().trim()))?,
        None => OncallConfig::default(),
    };
    config.validate()?;
    Ok(config.with_default_outbox(crate::oncall::default_outbox(lake)))
}

fn count(metrics: &Metrics, r: &TickReport) {
    if r.delivered > 0 {
        metrics.alerts_delivered("oncall", r.delivered as u64);
    }
    if r.failed > 0 {
        metrics.alerts_delivery_failed("oncall", r.failed as u64);
    }
}

/// Hand released alerts to on-call delivery until `queue` closes: what is waiting is durably
/// queued in the outbox in one section (on a blocking thread: the outbox fsyncs its files),
/// then delivery is woken.
/// Its own task, so a burst of alerts waiting for the outbox never delays the SIEM feed of the
/// next ones.
async fn hand_over(
    dispatcher: Option<Dispatcher>,
    wake: Arc<Notify>,
    mut queue: mpsc::Receiver<Vec<Alert>>,
) {
    while let Some(mut alerts) = queue.recv().await {
        while let Ok(more) = queue.try_recv() {
            alerts.extend(more);
        }
        let Some(d) = dispatcher.clone() else { continue };
        let (started, n) = (std::time::Instant::now(), alerts.len());
        let queued = tokio::task::spawn_blocking(move || {
            if let Err(e) = d.submit_all(&alerts) {
                // The alerts are in the lake and the SIEM feed; the outbox write failed (those
                // before the failing one stay queued).
                tracing::error!(alerts = alerts.len(), error = %e, "alerts not queued for on-call delivery");
            }
        })
        .await;
        if let Err(e) = queued {
            tracing::error!(error = %e, "on-call hand-over task failed");
        }
        tracing::debug!(
            alerts = n,
            ms = started.elapsed().as_millis(),
            "alerts queued in the outbox"
        );
        wake.notify_one();
    }
}

/// Release alerts arriving on `rx` until it closes; then drain delivery and the lake writer.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    oncall: OnCall,
    mut rx: mpsc::Receiver<Vec<Raised>>,
) -> Result<()> {
    let (writes, queue) = mpsc::channel::<Vec<Alert>>(64);
    let writer = spawn_writer(ctx.clone(), queue)?;
    let (handovers, handover_queue) = mpsc::channel::<Vec<Alert>>(64);
    let handing =
        tokio::spawn(hand_over(oncall.dispatcher.clone(), oncall.wake.clone(), handover_queue));
    while let Some(alerts) = rx.recv().await {
        let mut per_rule: BTreeMap<&str, u64> = BTreeMap::new();
        for (a, _) in &alerts {
            *per_rule.entry(a.rule_id.as_str()).or_default() += 1;
        }
        for (rule, n) in per_rule {
            ctx.metrics.alerts_raised(rule, n);
        }
        tracing::info!(alerts = alerts.len(), "alerts released");
        if let Some(siem) = &ctx.siem {
            let siem = siem.clone();
            let batch = alerts.clone();
            let started = std::time::Instant::now();
            match tokio::task::spawn_blocking(move || siem.publish_alerts(&batch)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "alerts not published to the SIEM feed"),
                Err(e) => tracing::warn!(error = %e, "SIEM feed task failed"),
            }
            tracing::debug!(
                ms = started.elapsed().as_millis(),
                "alerts published to the SIEM feed"
            );
        }
        let states: Vec<Alert> = alerts.into_iter().map(|(a, _)| a).collect();
        handovers.send(states.clone()).await.context("the on-call hand-over stopped")?;
        writes.send(states).await.context("the alert writer stopped")?;
    }
    drop(handovers);
    drop(writes);
    if let Err(e) = handing.await {
        tracing::error!(error = %e, "on-call hand-over task failed");
    }
    // The alerts table first: the lifecycle steps of delivery refer to its rows.
    let written = tokio::task::spawn_blocking(move || writer.join())
        .await
        .context("alert writer task")?
        .map_err(|_| anyhow::anyhow!("the alert writer thread panicked"))?;
    oncall.drain(&ctx.metrics).await;
    written
}

/// Start [`write_loop`] on its own thread with a single-threaded runtime: its reads and
/// MERGEs run DataFusion plans, which would otherwise occupy the IO runtime's workers that the
/// sources, the committers and `/metrics` need (an alert storm raises hundreds of alerts per
/// second under a backlog).
fn spawn_writer(
    ctx: Arc<Ctx>,
    queue: mpsc::Receiver<Vec<Alert>>,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the alert writer runtime")?;
    std::thread::Builder::new()
        .name("ztlake-alerts".into())
        .spawn(move || runtime.block_on(write_loop(ctx, queue)))
        .context("starting the alert writer thread")
}

/// Least time between the starts of two alert writes. Each write looks the alerts up and
/// MERGEs them into the table, a fixed cost per write: releases come once per commit (several a
/// second when alerts ask the sources to flush), and what queues meanwhile is written together.
/// The table is for hunting and `ztlake alerts`; the SIEM feed and on-call do not wait for it.
const WRITE_EVERY: Duration = Duration::from_secs(2);

/// Write alert states to the lake, coalescing what queued meanwhile (at most one write per
/// [`WRITE_EVERY`]; at once when the queue closes); retries with backoff.
async fn write_loop(ctx: Arc<Ctx>, mut queue: mpsc::Receiver<Vec<Alert>>) -> Result<()> {
    let mut last_write: Option<tokio::time::Instant> = None;
    while let Some(first) = queue.recv().await {
        let mut latest: BTreeMap<String, Alert> = BTreeMap::new();
        let mut take = |states: Vec<Alert>| {
            for a in states {
                latest.insert(a.alert_id.clone(), a);
            }
        };
        take(first);
        // Wait for this write's turn, taking what arrives meanwhile; a closed queue (the
        // service stopping) writes at once.
        if let Some(due) = last_write.map(|t| t + WRITE_EVERY) {
            let sleep = tokio::time::sleep_until(due);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    more = queue.recv() => match more {
                        Some(states) => take(states),
                        None => break,
                    },
                }
            }
        }
        while let Ok(more) = queue.try_recv() {
            take(more);
        }
        last_write = Some(tokio::time::Instant::now());
        let alerts: Vec<Alert> = latest.into_values().collect();
        let mut backoff = Duration::from_millis(200);
        let mut attempts = 0;
        let started = std::time::Instant::now();
        loop {
            attempts += 1;
            match crate::alerts::write_alerts(&ctx.lake, &alerts).await {
                Ok(w) => {
                    tracing::debug!(
                        new = w.new,
                        updated = w.updated,
                        events = w.events,
                        ms = started.elapsed().as_millis(),
                        "alerts written"
                    );
                    break;
                }
                Err(e) if attempts < 8 => {
                    tracing::warn!(error = %e, attempts, "writing alerts failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(e.context("writing alerts to the lake")),
            }
        }
    }
    Ok(())
}
