//! The long-running service (`ztlake run --config ztlake.toml`): sources → normalization →
//! lake commits → acknowledgement, with streaming and scheduled detections, the SIEM feed,
//! on-call hand-over, scheduled maintenance and `/healthz` + `/metrics`, in one process.
//!
//! ```text
//!  [[kafka]] ─► poll thread ─► batches ─┐          ┌─► streaming rules (own thread) ─► alerts ─┐
//!  [[objects]] ─► poll + download ──────┴► parse ──┤                                            │
//!                         (spawn_blocking)         └─► table writers (own threads)              │
//!                                                        │ flush: 5 s / 1 M rows / bytes        │
//!                                                        ▼                                      │
//!                                committer: lake commit (txns) ─► SIEM feed (rows) ─► ack        │
//!                                                                  (offsets, objects settled)  │
//!  released once their rows are committed: SIEM feed (findings), on-call, alerts table ◄────────┘
//! ```
//!
//! Every stage is bounded: the consumer's queue (`queue_batches`), the writers' queues, the
//! streaming rules' queue (`detect_queue`), one generation being parsed plus one being
//! committed per source (each capped by `flush_rows` / `flush_bytes`), the producer's queue. A
//! slow lake, SIEM cluster or rule engine therefore pauses the sources; memory stays bounded.
//!
//! Shutdown (SIGINT or SIGTERM): the sources stop reading, flush what they hold, await their
//! commits and commit offsets; the streaming rules close their windows and the last alerts are
//! released; the SIEM producer is flushed; on-call delivery drains; the process exits 0.
//!
//! Module map: [`config`] (the TOML file), `kafka_loop` / `objects_loop` (one task per source),
//! `parse` (framing and parsers), `flush` (generations and the committer), `detect` (engine
//! thread, alert gating, scheduled rules), `release` (alerts out), `siem` (OCSF + producer),
//! `maintenance`, [`metrics`], `http`.

pub mod config;
mod detect;
mod flush;
mod http;
mod kafka_loop;
mod maintenance;
pub mod metrics;
mod objects_loop;
mod parse;
mod release;
pub mod siem;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::sync::{mpsc, watch};
use ztlake_storage::Lake;

pub use config::{ConfigErrors, ServiceConfig};
use detect::{Detector, Progress};
use metrics::Metrics;
use siem::Siem;

/// What every task of the service shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) config: Arc<ServiceConfig>,
    pub(crate) lake: Lake,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) detector: Option<Detector>,
    pub(crate) siem: Option<Arc<Siem>>,
    pub(crate) progress: Arc<Progress>,
    /// Turns true when the service shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Whether this instance runs compaction and retention: always without Kafka sources;
    /// with them, only while it owns partition 0 of the first `[[kafka]]` section's first
    /// topic, so two instances of a group never compact the same table at once.
    pub(crate) maintenance_leader: std::sync::atomic::AtomicBool,
    /// Held by a maintenance run; a revocation of the leader partition waits for it.
    pub(crate) maintenance_lock: tokio::sync::Mutex<()>,
}

/// Open the lake named by `[lake]`.
pub async fn open_lake(config: &ServiceConfig) -> Result<Lake> {
    let options: HashMap<String, String> = config
        .lake
        .options
        .resolve()
        .map_err(|e| anyhow::anyhow!("lake.options: {e}"))?
        .into_iter()
        .collect();
    Lake::open_with_options(&config.lake.location, options)
        .await
        .with_context(|| format!("lake.location: opening {}", config.lake.location))
}

/// `ztlake config check`: every problem of the configuration at `path`, including the
/// detection pack it names and the lake location (empty: valid).
pub async fn check(path: &std::path::Path) -> Vec<String> {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => return e.problems,
    };
    let mut problems = Vec::new();
    if let Err(e) = open_lake(&config).await {
        problems.push(format!("{e:#}"));
    }
    if config.detections.enabled {
        let paths = crate::pack::PackPaths {
            rules: config.detections.rules.clone(),
            runbooks: config.detections.runbooks.clone(),
            reference: config.detections.reference.clone(),
        };
        if let Err(e) = crate::pack::load(&paths).await {
            problems.extend(e.0.into_iter().map(|p| format!("detections: {p}")));
        }
    }
    problems
}

/// Wait for SIGINT or SIGTERM; returns the signal's name.
async fn signalled() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the service");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// Run the service until SIGINT / SIGTERM (then drain and return `Ok`) or a fatal error of a
/// source (then stop the others the same way and return the error).
pub async fn run(config: ServiceConfig) -> Result<()> {
    let lake = open_lake(&config).await?;
    let metrics = Arc::new(Metrics::default());
    metrics.started(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    let (shutdown_tx, shutdown) = watch::channel(false);

    let pack = if config.detections.enabled {
        let paths = crate::pack::PackPaths {
            rules: config.detections.rules.clone(),
            runbooks: config.detections.runbooks.clone(),
            reference: config.detections.reference.clone(),
        };
        Some(crate::pack::load(&paths).await.map_err(|e| anyhow::anyhow!("detections: {e}"))?)
    } else {
        None
    };
    let siem = match &config.siem {
        Some(s) => Some(Arc::new(Siem::start(s, metrics.clone())?)),
        None => None,
    };
    let detector = match &pack {
        Some(p) if !p.rules.streaming().is_empty() => Some(
            Detector::start(
                &p.rules,
                config.detections.engine.clone(),
                config.pipeline.detect_queue,
            )
            .await?,
        ),
        _ => None,
    };
    let config_has_no_kafka = config.kafka.is_empty();
    let ctx = Arc::new(Ctx {
        config: Arc::new(config),
        lake,
        metrics: metrics.clone(),
        detector: detector.clone(),
        siem: siem.clone(),
        progress: Arc::new(Progress::default()),
        shutdown: shutdown.clone(),
        maintenance_leader: std::sync::atomic::AtomicBool::new(config_has_no_kafka),
        maintenance_lock: tokio::sync::Mutex::new(()),
    });
    if ctx.config.http.enabled {
        http::serve(&ctx.config.http.listen, metrics.clone(), shutdown.clone()).await?;
    }

    let (release_tx, release_rx) = mpsc::channel(64);
    let oncall = release::OnCall::start(&ctx, pack.as_ref().map(|p| p.runbooks.clone()))?;
    let releaser = tokio::spawn(release::run(ctx.clone(), oncall, release_rx));
    let (finish_tx, finish_rx) = watch::channel(false);
    let streaming = detector.map(|d| {
        tokio::spawn(detect::run_streaming(ctx.clone(), d, release_tx.clone(), finish_rx))
    });
    let scheduled = match pack {
        Some(p) => {
            detect::spawn_scheduled(ctx.clone(), p.rules, release_tx.clone(), shutdown.clone())?
        }
        None => None,
    };
    drop(release_tx);

    let mut sources = tokio::task::JoinSet::new();
    let mut id = 0usize;
    for k in ctx.config.kafka.clone() {
        sources.spawn(kafka_loop::run(ctx.clone(), id, k));
        id += 1;
    }
    for o in ctx.config.objects.clone() {
        sources.spawn(objects_loop::run(ctx.clone(), id, o));
        id += 1;
    }
    let maintenance = tokio::spawn(maintenance::run(ctx.clone()));
    tracing::info!(
        lake = %ctx.lake.url(),
        kafka = ctx.config.kafka.len(),
        objects = ctx.config.objects.len(),
        streaming_rules = streaming.is_some(),
        siem = ctx.siem.is_some(),
        "ztlake run: started"
    );

    let mut failures: Vec<anyhow::Error> = Vec::new();
    tokio::select! {
        signal = signalled() => tracing::info!(signal, "shutting down: flushing and acknowledging"),
        Some(ended) = sources.join_next() => match ended {
            Ok(Ok(())) => tracing::warn!("a source stopped; shutting down"),
            Ok(Err(e)) => {
                tracing::error!(error = format!("{e:#}"), "a source failed; shutting down");
                failures.push(e);
            }
            Err(e) => failures.push(anyhow::anyhow!("a source task panicked: {e}")),
        },
    }
    let _ = shutdown_tx.send(true);
    let budget = ctx.config.pipeline.shutdown_timeout;
    let deadline = tokio::time::Instant::now() + budget;
    loop {
        match tokio::time::timeout_at(deadline, sources.join_next()).await {
            Ok(None) => break,
            Ok(Some(Ok(Ok(())))) => {}
            Ok(Some(Ok(Err(e)))) => failures.push(e),
            Ok(Some(Err(e))) => failures.push(anyhow::anyhow!("a source task panicked: {e}")),
            Err(_) => {
                failures.push(anyhow::anyhow!("the sources did not drain within {budget:?}"));
                sources.abort_all();
                break;
            }
        }
    }
    // Every source flushed and acknowledged: close the windows, release the last alerts.
    let _ = finish_tx.send(true);
    if let Some(task) = streaming {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e.context("streaming detection")),
            Err(e) => failures.push(anyhow::anyhow!("streaming detection task: {e}")),
        }
    }
    if let Some(thread) = scheduled {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    match releaser.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => failures.push(e.context("releasing alerts")),
        Err(e) => failures.push(anyhow::anyhow!("alert release task: {e}")),
    }
    if let Some(siem) = siem {
        let flushed =
            tokio::task::spawn_blocking(move || siem.flush(Duration::from_secs(30))).await;
        if let Ok(Err(e)) | Err(e) = flushed.map_err(anyhow::Error::from) {
            failures.push(e);
        }
    }
    let _ = maintenance.await;
    match failures.into_iter().next() {
        None => {
            tracing::info!("ztlake run: stopped cleanly");
            Ok(())
        }
        Some(e) => Err(e),
    }
}
