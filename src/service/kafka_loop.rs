//! One Kafka source inside the service: the consumer's events in, lake commits out, offsets
//! acknowledged only after the commit that holds them.
//!
//! - **Assigned**: every data table's txns are read from the lake; the partition resumes after
//!   the smallest version over the tables (`lake_version`), and each table's own version is
//!   remembered so rows a table already holds are not appended again (a crash between two
//!   tables' commits) and its txn never goes back.
//! - **Batch**: parsed on a blocking thread into the current generation (rows to the writers,
//!   the streaming rules and the SIEM hold); the generation is flushed when due.
//! - **Revoked**: everything is flushed and every in-flight commit awaited and marked durable
//!   before the partitions go; a *lost* assignment (session timeout) instead drops what is not
//!   committed yet — another member may already read those partitions from the lake's version.
//! - **Committed** (the committer's answer): offsets marked durable and committed to the group.
//! - **Shutdown**: stop taking events, flush, await the commits, commit offsets, leave the group.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use tokio::sync::{Notify, mpsc, oneshot};
use ztlake_ingest::kafka::rdkafka::consumer::{BaseConsumer, Consumer as _};
use ztlake_ingest::kafka::{
    Assignment, KafkaConfig, KafkaEvent, KafkaSource, MessageBatch, PartitionId, Revocation,
    lake_version,
};
use ztlake_normalize::Table;

use super::Ctx;
use super::flush::{Done, Job, Stage, spawn_committer, txns_for};

/// What the parser needs to know of an assigned partition.
#[derive(Debug, Clone)]
struct PartInfo {
    key: String,
    name: String,
    format: String,
    /// Per data table, the last offset the table held at assignment.
    committed: [Option<u64>; 4],
}

/// The state moved into the parse thread and back.
#[derive(Debug)]
struct Work {
    stage: Stage,
    /// topic → partition → info.
    parts: HashMap<String, HashMap<i32, PartInfo>>,
}

struct KafkaLoop {
    ctx: Arc<Ctx>,
    id: usize,
    name: String,
    config: KafkaConfig,
    source: KafkaSource,
    work: Option<Work>,
    committer: mpsc::Sender<Job>,
    inflight: VecDeque<oneshot::Receiver<Result<Done>>>,
    /// Per data table, the txn version of every assigned partition's key.
    recorded: [HashMap<String, i64>; 4],
    flush_now: Arc<Notify>,
    lag_client: Option<Arc<BaseConsumer>>,
    last_lag: Instant,
    /// When the consumer last handed a batch (the idle flush).
    last_batch: Option<Instant>,
}

/// Run Kafka source number `id` until shutdown (or a fatal error).
pub(crate) async fn run(ctx: Arc<Ctx>, id: usize, config: KafkaConfig) -> Result<()> {
    let name = format!("kafka:{}/{}", config.group_id, config.topic_names().join(","));
    let source = KafkaSource::start(config.clone())
        .with_context(|| format!("starting {}", config.display()))?;
    let lag_client =
        config.client_config().ok().and_then(|c| c.create::<BaseConsumer>().ok()).map(Arc::new);
    let committer = spawn_committer(ctx.clone(), name.clone());
    let flush_now = ctx.progress.register(id);
    let work = Work { stage: Stage::new(ctx.clone(), id), parts: HashMap::new() };
    let mut lp = KafkaLoop {
        ctx: ctx.clone(),
        id,
        name: name.clone(),
        config,
        source,
        work: Some(work),
        committer,
        inflight: VecDeque::new(),
        recorded: Default::default(),
        flush_now,
        lag_client,
        last_lag: Instant::now(),
        last_batch: None,
    };
    ctx.metrics.source_up(&name, true);
    let result = lp.run().await;
    let closed = lp.close().await;
    ctx.metrics.source_up(&name, false);
    result.and(closed)
}

/// The oldest in-flight commit's answer (pending forever when there is none).
async fn front(inflight: &mut VecDeque<oneshot::Receiver<Result<Done>>>) -> Result<Done> {
    match inflight.front_mut() {
        Some(rx) => rx.await.context("the committer stopped")?,
        None => std::future::pending().await,
    }
}

impl KafkaLoop {
    async fn run(&mut self) -> Result<()> {
        let mut shutdown = self.ctx.shutdown.clone();
        let period = (self.ctx.config.pipeline.flush_interval / 4)
            .clamp(Duration::from_millis(20), Duration::from_millis(250));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The least age of a generation flushed because its source is idle.
        let min_age = (self.ctx.config.pipeline.flush_interval / 4).min(Duration::from_secs(1));
        let flush_now = self.flush_now.clone();
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let waiting = Instant::now();
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Ok(()),
                done = front(&mut self.inflight) => {
                    self.inflight.pop_front();
                    self.acknowledge(done?).await;
                }
                event = self.source.next_event() => match event {
                    Some(KafkaEvent::Batch(batch)) => self.batch(batch, waiting.elapsed()).await?,
                    Some(KafkaEvent::Assigned(a)) => self.assigned(a).await?,
                    Some(KafkaEvent::Revoked(r)) => self.revoked(r).await?,
                    Some(KafkaEvent::Failed(e)) => {
                        return Err(anyhow::Error::new(e).context(self.config.display()));
                    }
                    None => anyhow::bail!("{}: the consumer stopped", self.config.display()),
                },
                _ = flush_now.notified() => self.flush().await?,
                _ = tick.tick() => {
                    // Due, or idle: the source handed nothing for a tick while the generation
                    // is at least `min_age` old (a backlog read to its end commits at once; a
                    // trickle of records commits no more often than every `min_age`).
                    let idle = self.last_batch.is_some_and(|t| t.elapsed() >= period);
                    if self.work.as_ref().is_some_and(|w| {
                        let g = &w.stage.generation;
                        g.due(&self.ctx) || (idle && g.older_than(min_age))
                    }) {
                        self.flush().await?;
                    }
                    self.report_lag();
                }
            }
        }
    }

    /// Flush, await every commit, then commit the offsets and leave the group.
    async fn close(mut self) -> Result<()> {
        let flushed = self.flush().await;
        let drained = self.drain().await;
        if let Err(e) = self.source.commit().await {
            tracing::warn!(source = %self.name, error = %e, "final offset commit failed");
        }
        self.source.close().await.context("closing the Kafka consumer")?;
        flushed.and(drained)
    }

    async fn batch(&mut self, batch: MessageBatch, waited: Duration) -> Result<()> {
        let mut topics: HashMap<&str, u64> = HashMap::new();
        for m in &batch.messages {
            *topics.entry(&*m.topic).or_default() += 1;
        }
        for (topic, n) in topics {
            self.ctx.metrics.messages_in(topic, n);
        }
        let mut work = self.work.take().context("parse state lost")?;
        let handed = Instant::now();
        let (mut work, result) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let r = parse_batch(&mut work, &batch);
            work.stage.generation.times.parse_inner += started.elapsed();
            (work, r)
        })
        .await
        .context("parse thread")?;
        let times = &mut work.stage.generation.times;
        times.parse += handed.elapsed();
        times.idle += waited;
        times.batches += 1;
        self.work = Some(work);
        // Idle time counts from the end of the parse: a long parse is not the source idling.
        self.last_batch = Some(Instant::now());
        let records = result?;
        self.ctx.metrics.records_in(&self.name, records);
        if self.work.as_ref().is_some_and(|w| w.stage.generation.due(&self.ctx)) {
            self.flush().await?;
        }
        Ok(())
    }

    async fn assigned(&mut self, assignment: Assignment) -> Result<()> {
        let keys = assignment.source_keys();
        let mut per_table = Vec::new();
        let deadline = Instant::now() + self.config.rebalance_timeout / 2;
        for table in Table::DATA {
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.ctx.lake.all_txns(table).await {
                    Ok(t) => {
                        per_table.push(t);
                        break;
                    }
                    Err(e) if Instant::now() < deadline => {
                        tracing::warn!(source = %self.name, %table, error = %e, "reading the lake's txns failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        return Err(
                            anyhow::Error::new(e).context("reading the lake's txns on assignment")
                        );
                    }
                }
            }
        }
        let mut versions = HashMap::new();
        let work = self.work.as_mut().context("parse state lost")?;
        for (p, key) in assignment.partitions().iter().zip(&keys) {
            let mut committed = [None; 4];
            for (i, table) in per_table.iter().enumerate() {
                match table.get(key) {
                    Some(&v) => {
                        self.recorded[i].insert(key.clone(), v);
                        committed[i] = u64::try_from(v).ok();
                    }
                    None => {
                        self.recorded[i].remove(key);
                    }
                }
            }
            if let Some(v) = lake_version(&per_table, key) {
                versions.insert(key.clone(), v);
            }
            let info = PartInfo {
                key: key.clone(),
                name: p.source_name(),
                format: self.config.format_for(&p.topic).to_owned(),
                committed,
            };
            work.parts.entry(p.topic.clone()).or_default().insert(p.partition, info);
        }
        if self.leads(assignment.partitions()) {
            self.ctx.maintenance_leader.store(true, std::sync::atomic::Ordering::Release);
            tracing::info!(source = %self.name, "this instance runs compaction and retention");
        }
        tracing::info!(source = %self.name, partitions = ?assignment.partitions(), lake = ?versions, "assigned");
        assignment.resume(&versions);
        Ok(())
    }

    async fn revoked(&mut self, revocation: Revocation) -> Result<()> {
        if revocation.lost() {
            // Another member may already read these partitions from the lake's version: what
            // is not committed yet must not be (it would duplicate their rows).
            if let Some(work) = self.work.as_mut() {
                let generation = work.stage.discard();
                self.ctx.progress.committed(self.id, generation);
            }
            tracing::warn!(source = %self.name, partitions = ?revocation.partitions(), "assignment lost; uncommitted rows dropped");
        } else {
            self.flush().await?;
        }
        self.drain().await?;
        let gone: Vec<PartitionId> = revocation.partitions().to_vec();
        if let Some(work) = self.work.as_mut() {
            for p in &gone {
                let key = p.source_key(&self.config.group_id);
                for table in &mut self.recorded {
                    table.remove(&key);
                }
                work.stage.norm.forget(&key);
                if let Some(parts) = work.parts.get_mut(&p.topic) {
                    parts.remove(&p.partition);
                }
            }
        }
        if self.leads(revocation.partitions()) {
            // Another instance takes maintenance over: wait for a compaction running here.
            self.ctx.maintenance_leader.store(false, std::sync::atomic::Ordering::Release);
            drop(self.ctx.maintenance_lock.lock().await);
        }
        revocation.done();
        Ok(())
    }

    /// Whether `partitions` hold the maintenance leader partition (partition 0 of the first
    /// topic of the first `[[kafka]]` section).
    fn leads(&self, partitions: &[PartitionId]) -> bool {
        self.id == 0
            && self
                .config
                .topics
                .first()
                .is_some_and(|t| partitions.iter().any(|p| p.partition == 0 && p.topic == t.name))
    }

    /// Seal the current generation and queue it for the committer (waits while the committer
    /// holds one already: backpressure).
    async fn flush(&mut self) -> Result<()> {
        let decided = Instant::now();
        let mut work = self.work.take().context("parse state lost")?;
        let (work, sealed) = tokio::task::spawn_blocking(move || {
            let r = work.stage.seal();
            (work, r)
        })
        .await
        .context("parse thread")?;
        self.work = Some(work);
        let (generation, counts) = sealed?;
        if generation.is_empty() {
            return Ok(());
        }
        let txns = txns_for(&generation.positions, &mut self.recorded);
        let (reply, rx) = oneshot::channel();
        let (id, sealed) = (generation.id, Instant::now());
        self.committer
            .send(Job { generation, txns, counts, decided, reply })
            .await
            .map_err(|_| anyhow::anyhow!("{}: the committer stopped", self.name))?;
        tracing::debug!(
            source = %self.name,
            generation = id,
            seal_ms = sealed.duration_since(decided).as_millis(),
            slot_wait_ms = sealed.elapsed().as_millis(),
            "generation sealed"
        );
        self.inflight.push_back(rx);
        Ok(())
    }

    /// Await every in-flight commit, in order, acknowledging each.
    async fn drain(&mut self) -> Result<()> {
        while let Some(rx) = self.inflight.pop_front() {
            let done = rx.await.context("the committer stopped")??;
            self.acknowledge(done).await;
        }
        Ok(())
    }

    /// A generation is in the lake: its offsets are durable; commit them to the group.
    async fn acknowledge(&mut self, done: Done) {
        self.source.mark_durable(&done.spans);
        self.ctx.progress.committed(self.id, done.gen_id);
        self.ctx.metrics.flushed(&self.name, done.decided.elapsed());
        let started = Instant::now();
        if let Err(e) = self.source.commit().await {
            // Retryable: the next commit covers the same offsets; the lake is the truth.
            tracing::warn!(source = %self.name, error = %e, "offset commit failed");
        }
        tracing::debug!(
            source = %self.name,
            generation = done.gen_id,
            offset_commit_ms = started.elapsed().as_millis(),
            since_flush_ms = done.decided.elapsed().as_millis(),
            "generation acknowledged"
        );
    }

    /// Every 5 s: per owned partition, high watermark minus the end of the durable prefix.
    fn report_lag(&mut self) {
        if self.last_lag.elapsed() < Duration::from_secs(5) {
            return;
        }
        self.last_lag = Instant::now();
        let Some(client) = self.lag_client.clone() else { return };
        let owned: Vec<(PartitionId, Option<i64>)> = self
            .source
            .assigned()
            .into_iter()
            .map(|p| {
                let d = self.source.durable_through(&p);
                (p, d)
            })
            .collect();
        let metrics = self.ctx.metrics.clone();
        let group = self.config.group_id.clone();
        tokio::task::spawn_blocking(move || {
            let ids: Vec<(String, i32)> =
                owned.iter().map(|(p, _)| (p.topic.clone(), p.partition)).collect();
            metrics.retain_lag(&group, &ids);
            for (p, durable) in owned {
                if let Ok((low, high)) =
                    client.fetch_watermarks(&p.topic, p.partition, Duration::from_secs(2))
                {
                    let next = durable.map_or(low, |d| d + 1);
                    metrics.set_lag(&group, &p.topic, p.partition, high - next);
                }
            }
        });
    }
}

/// Parse every message of `batch` into the current generation (blocking).
fn parse_batch(work: &mut Work, batch: &MessageBatch) -> Result<u64> {
    let Work { stage, parts } = work;
    let mut records = 0u64;
    // Messages come in runs of one partition: its info is looked up once per run, and the
    // generation's position advanced once per run, to the run's last parsed offset.
    let mut run: Option<(&Arc<str>, i32, &PartInfo, Option<i64>)> = None;
    for m in &batch.messages {
        // Topics are interned by the consumer: the pointer usually decides.
        let same = run.as_ref().is_some_and(|r| {
            r.1 == m.partition && (Arc::ptr_eq(r.0, &m.topic) || **r.0 == *m.topic)
        });
        if !same {
            if let Some((_, _, info, Some(offset))) = run.take() {
                stage.generation.advance(&info.key, offset);
            }
            match parts.get(&*m.topic).and_then(|p| p.get(&m.partition)) {
                Some(info) => run = Some((&m.topic, m.partition, info, None)),
                None => {
                    // Only assigned partitions are handed out; stay safe anyway.
                    tracing::warn!(position = %m.position(), "message of a partition not assigned; skipped");
                    continue;
                }
            }
        }
        let Some((_, _, info, parsed_through)) = run.as_mut() else { continue };
        let parsed =
            stage.norm.message(m, &info.key, &info.name, &info.format, info.committed, same)?;
        *parsed_through = Some(parsed_through.map_or(m.offset, |o| o.max(m.offset)));
        records += parsed.records;
        let generation = &mut stage.generation;
        generation.bytes += parsed.bytes;
        generation.records += parsed.records;
        stage.deliver_full()?;
    }
    if let Some((_, _, info, Some(offset))) = run {
        stage.generation.advance(&info.key, offset);
    }
    stage.generation.spans.extend(batch.spans());
    Ok(records)
}
