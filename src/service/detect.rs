//! Detections inside the service: the streaming rules on their own thread, alerts released only
//! once the rows behind them are committed, scheduled rules on their interval.
//!
//! - [`Detector`]: the streaming engine on a thread with its own single-threaded runtime (so
//!   DataFusion never starves the IO runtime), fed every normalized batch through a bounded
//!   queue (a full queue pauses the source). Each batch is tagged with its source and flush
//!   generation. Asked to collect, the engine evaluates the open windows that are due and
//!   returns the alerts that are new or changed since the last collection, with, per source,
//!   the newest generation whose rows it has seen.
//! - [`run_streaming`]: collects every `alert_check`, holds each collection until every
//!   generation it saw is committed to the lake (asking those sources to flush at once, so an
//!   alert waits for one commit, not for the flush interval), then releases it: metrics, SIEM
//!   feed, on-call delivery, and the `alerts` table (written by its own thread, coalesced).
//! - [`spawn_scheduled`]: every `scheduled_check`, each scheduled rule whose next run (a
//!   multiple of its `interval`) has come runs over the lake (`[run − lookback, run)`), on its
//!   own thread and runtime; its alerts are released at once (the lake holds their rows).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use tokio::sync::{Notify, mpsc, oneshot};
use ztlake_detections::{Alert, BackfillOptions, Engine, EngineOptions, Mode, RuleSet};
use ztlake_normalize::Table;

use super::Ctx;

/// An alert and whether this process raises it for the first time.
pub(crate) type Raised = (Alert, bool);

/// What a collection returns.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    /// Alerts new or changed since the last collection.
    pub(crate) alerts: Vec<Raised>,
    /// Per source, the newest generation whose rows the engine has seen.
    pub(crate) watermarks: HashMap<usize, u64>,
}

enum Cmd {
    Push { source: usize, generation: u64, table: Table, batch: RecordBatch },
    Collect(oneshot::Sender<Collected>),
    Finish(oneshot::Sender<Collected>),
}

/// Handle of the streaming engine thread. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Detector {
    tx: mpsc::Sender<Cmd>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Detector")
    }
}

impl Detector {
    /// Start the streaming rules of `rules` on their own thread; `queue` batches wait at most.
    pub(crate) async fn start(
        rules: &RuleSet,
        options: EngineOptions,
        queue: usize,
    ) -> Result<Detector> {
        let engine = Engine::new(
            &rules.streaming(),
            rules.reference(),
            options,
            ztlake_detections::Clock::Data,
        )
        .await
        .context("starting the streaming rules")?;
        let (tx, rx) = mpsc::channel(queue.max(1));
        std::thread::Builder::new()
            .name("ztlake-detect".into())
            .spawn(move || engine_thread(engine, rx))
            .context("starting the detection thread")?;
        Ok(Detector { tx })
    }

    /// Feed a batch (blocking while the queue is full: call from a blocking thread).
    pub(crate) fn push(
        &self,
        source: usize,
        generation: u64,
        table: Table,
        batch: RecordBatch,
    ) -> Result<()> {
        self.tx
            .blocking_send(Cmd::Push { source, generation, table, batch })
            .map_err(|_| anyhow::anyhow!("the streaming detection thread stopped"))
    }

    /// Evaluate what is due and return the new and changed alerts.
    pub(crate) async fn collect(&self) -> Result<Collected> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Collect(reply))
            .await
            .map_err(|_| anyhow::anyhow!("detection stopped"))?;
        rx.await.context("the streaming detection thread stopped")
    }

    /// Close every window (end of the run) and return the last new and changed alerts.
    pub(crate) async fn finish(&self) -> Result<Collected> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Cmd::Finish(reply)).await.map_err(|_| anyhow::anyhow!("detection stopped"))?;
        rx.await.context("the streaming detection thread stopped")
    }
}

/// What the engine thread did since `since`: time in pushes and collections, rows pushed.
struct Busy {
    push: Duration,
    collect: Duration,
    rows: u64,
    since: std::time::Instant,
}

impl Busy {
    fn since(since: std::time::Instant) -> Self {
        Self { push: Duration::ZERO, collect: Duration::ZERO, rows: 0, since }
    }
}

fn engine_thread(mut engine: Engine, mut rx: mpsc::Receiver<Cmd>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the detection runtime");
            return;
        }
    };
    let mut emitted: HashMap<String, Alert> = HashMap::new();
    let mut watermarks: HashMap<usize, u64> = HashMap::new();
    // Busy time of the thread, logged at debug level every few seconds.
    let mut busy = Busy::since(std::time::Instant::now());
    runtime.block_on(async {
        while let Some(cmd) = rx.recv().await {
            let started = std::time::Instant::now();
            match cmd {
                Cmd::Push { source, generation, table, batch } => {
                    let w = watermarks.entry(source).or_insert(0);
                    *w = (*w).max(generation);
                    if let Err(e) = engine.push(table, &batch).await {
                        tracing::error!(error = %e, %table, "streaming rule evaluation failed; batch skipped");
                    }
                    busy.push += started.elapsed();
                    busy.rows += batch.num_rows() as u64;
                }
                Cmd::Collect(reply) => {
                    if let Err(e) = engine.evaluate_due().await {
                        tracing::error!(error = %e, "streaming rule evaluation failed");
                    }
                    let _ = reply.send(changes(&mut engine, &mut emitted, &watermarks));
                    busy.collect += started.elapsed();
                }
                Cmd::Finish(reply) => {
                    if let Err(e) = engine.flush().await {
                        tracing::error!(error = %e, "closing the streaming windows failed");
                    }
                    let _ = reply.send(changes(&mut engine, &mut emitted, &watermarks));
                }
            }
            if busy.since.elapsed() >= Duration::from_secs(2) {
                tracing::debug!(
                    rows = busy.rows,
                    push_ms = busy.push.as_millis(),
                    collect_ms = busy.collect.as_millis(),
                    over_ms = busy.since.elapsed().as_millis(),
                    "streaming rules busy"
                );
                busy = Busy::since(std::time::Instant::now());
            }
        }
    });
}

/// The alerts whose state differs from what was emitted before.
fn changes(
    engine: &mut Engine,
    emitted: &mut HashMap<String, Alert>,
    watermarks: &HashMap<usize, u64>,
) -> Collected {
    let now = chrono::Utc::now().timestamp_micros();
    let mut alerts = Vec::new();
    let changed = engine.changed_alerts(now);
    for alert in changed.alerts {
        match emitted.get(&alert.alert_id) {
            Some(old) if old.same_state(&alert) => {}
            Some(_) => {
                emitted.insert(alert.alert_id.clone(), alert.clone());
                alerts.push((alert, false));
            }
            None => {
                emitted.insert(alert.alert_id.clone(), alert.clone());
                alerts.push((alert, true));
            }
        }
    }
    // Final now (and already emitted): nothing will change them again.
    for id in &changed.finished {
        emitted.remove(id);
    }
    Collected { alerts, watermarks: watermarks.clone() }
}

/// Which flush generation of each source is committed, and how to ask a source to flush now.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    committed: Mutex<HashMap<usize, u64>>,
    flush: Mutex<HashMap<usize, Arc<Notify>>>,
}

impl Progress {
    /// Register a source; returns what it waits on for "flush now".
    pub(crate) fn register(&self, source: usize) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        self.flush.lock().unwrap_or_else(|p| p.into_inner()).insert(source, notify.clone());
        notify
    }

    /// Generation `generation` of `source` is committed (or discarded: it will never be).
    pub(crate) fn committed(&self, source: usize, generation: u64) {
        let mut map = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        let c = map.entry(source).or_insert(0);
        *c = (*c).max(generation);
    }

    /// Whether every generation in `watermarks` is committed; asks the others to flush.
    fn settled(&self, watermarks: &HashMap<usize, u64>) -> bool {
        let committed = self.committed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut all = true;
        for (source, generation) in watermarks {
            if committed.get(source).copied().unwrap_or(0) < *generation {
                all = false;
                if let Some(n) = self.flush.lock().unwrap_or_else(|p| p.into_inner()).get(source) {
                    n.notify_one();
                }
            }
        }
        all
    }
}

/// Collect the streaming rules' alerts every `alert_check` and release each collection once
/// the rows it saw are committed; at shutdown (`finish` is signalled) close every window and
/// release the rest. Returns when released everything.
pub(crate) async fn run_streaming(
    ctx: Arc<Ctx>,
    detector: Detector,
    release: mpsc::Sender<Vec<Raised>>,
    mut finish: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let mut pending: VecDeque<Collected> = VecDeque::new();
    let mut tick = tokio::time::interval(ctx.config.detections.alert_check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = finish.changed() => true,
        };
        let collected = if last { detector.finish().await? } else { detector.collect().await? };
        if !collected.alerts.is_empty() || !pending.is_empty() {
            pending.push_back(collected);
        }
        let deadline = tokio::time::Instant::now() + ctx.config.pipeline.shutdown_timeout;
        loop {
            while let Some(front) = pending.front() {
                if !ctx.progress.settled(&front.watermarks) {
                    break;
                }
                if let Some(c) = pending.pop_front()
                    && !c.alerts.is_empty()
                {
                    release.send(c.alerts).await.context("alert release stopped")?;
                }
            }
            if !last || pending.is_empty() {
                break;
            }
            // Shutdown: the sources flushed everything; wait (bounded) for their last commits.
            if tokio::time::Instant::now() > deadline {
                tracing::warn!(
                    pending = pending.len(),
                    "alerts whose rows never committed were not released"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if last {
            return Ok(());
        }
    }
}

/// Start the scheduled rules of `rules` on their own thread; alerts go to `release`. The thread
/// ends when `stop` turns true.
pub(crate) fn spawn_scheduled(
    ctx: Arc<Ctx>,
    rules: RuleSet,
    release: mpsc::Sender<Vec<Raised>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<std::thread::JoinHandle<()>>> {
    let scheduled: Vec<String> = rules
        .rules()
        .iter()
        .filter(|r| r.mode() == Mode::Scheduled)
        .map(|r| r.id().to_owned())
        .collect();
    if scheduled.is_empty() {
        return Ok(None);
    }
    let handle = std::thread::Builder::new()
        .name("ztlake-scheduled".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the scheduled-rules runtime");
                    return;
                }
            };
            runtime.block_on(async move {
                let mut last: HashMap<String, i64> = HashMap::new();
                loop {
                    for id in &scheduled {
                        let Some(rule) = rules.get(id) else { continue };
                        let step =
                            i64::try_from(rule.interval.as_micros()).unwrap_or(i64::MAX).max(1);
                        let now = chrono::Utc::now().timestamp_micros();
                        let run = now.div_euclid(step).saturating_mul(step);
                        if last.get(id).is_some_and(|&l| l >= run) {
                            continue;
                        }
                        match run_scheduled(&ctx, &rules.only(std::slice::from_ref(id)), run, step)
                            .await
                        {
                            Ok(alerts) => {
                                last.insert(id.clone(), run);
                                if !alerts.is_empty() && release.send(alerts).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(rule = %id, error = %e, "scheduled rule run failed")
                            }
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(ctx.config.detections.scheduled_check) => {}
                        _ = stop.changed() => {}
                    }
                    if *stop.borrow() {
                        return;
                    }
                }
            });
        })
        .context("starting the scheduled-rules thread")?;
    Ok(Some(handle))
}

/// One run of one scheduled rule at `run` (µs), over the lake.
async fn run_scheduled(ctx: &Ctx, rule: &RuleSet, run: i64, step: i64) -> Result<Vec<Raised>> {
    let session = SessionContext::new();
    ctx.lake.register(&session).await?;
    let options = BackfillOptions {
        from: Some(run.saturating_sub(step)),
        to: Some(run),
        engine: ctx.config.detections.engine.clone(),
        ..BackfillOptions::default()
    };
    let report = ztlake_detections::backfill(rule, &session, &options).await?;
    Ok(report.alerts.into_iter().map(|a| (a, true)).collect())
}
