//! One object-store source inside the service: every `poll_interval`, list the prefix, read each
//! object the lake has not recorded yet, commit, then settle the objects.
//!
//! An object's identity (`object:<url>@<etag>`) is recorded as a Delta txn (version: its last
//! line) in the same commit as its rows, in every data table; an object is processed once every
//! table records it, so a crash anywhere reads it again and each table skips the lines it
//! holds. Objects of one poll are committed together (one generation), or sooner when the
//! generation reaches `flush_rows` / `flush_bytes`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use tokio::sync::{mpsc, oneshot};
use ztlake_ingest::objects::{ObjectPoller, ObjectSourceConfig, processed_in_all};
use ztlake_normalize::Table;

use super::Ctx;
use super::flush::{Done, Job, Stage, deliver, spawn_committer, txns_for};

struct ObjectsLoop {
    ctx: Arc<Ctx>,
    id: usize,
    name: String,
    poller: Arc<ObjectPoller>,
    stage: Option<Stage>,
    committer: mpsc::Sender<Job>,
    inflight: VecDeque<oneshot::Receiver<Result<Done>>>,
    recorded: [HashMap<String, i64>; 4],
}

/// Run object-store source number `id` until shutdown (or a fatal error).
pub(crate) async fn run(ctx: Arc<Ctx>, id: usize, config: ObjectSourceConfig) -> Result<()> {
    let name = format!("objects:{}", config.url);
    let interval = config.poll_interval;
    let poller = Arc::new(ObjectPoller::new(config).with_context(|| format!("starting {name}"))?);
    let committer = spawn_committer(ctx.clone(), name.clone());
    let mut lp = ObjectsLoop {
        ctx: ctx.clone(),
        id,
        name: name.clone(),
        poller,
        stage: Some(Stage::new(ctx.clone(), id)),
        committer,
        inflight: VecDeque::new(),
        recorded: Default::default(),
    };
    let _flush_now = ctx.progress.register(id);
    ctx.metrics.source_up(&name, true);
    let mut shutdown = ctx.shutdown.clone();
    let result = async {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if let Err(e) = lp.poll_once().await {
                // Listing or reading failed (store down, credentials): the next poll retries.
                tracing::warn!(source = %lp.name, error = format!("{e:#}"), "object poll failed");
            }
            lp.flush().await?;
            lp.drain().await?;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
    .await;
    let flushed = lp.flush().await;
    let drained = lp.drain().await;
    ctx.metrics.source_up(&name, false);
    result.and(flushed).and(drained)
}

impl ObjectsLoop {
    /// List the prefix and read the new objects into the current generation.
    async fn poll_once(&mut self) -> Result<()> {
        let mut per_table = Vec::new();
        for table in Table::DATA {
            per_table.push(self.ctx.lake.all_txns(table).await?);
        }
        let processed: HashSet<String> = processed_in_all(&per_table);
        let entries = self.poller.poll(&processed).await?;
        let shutdown = self.ctx.shutdown.clone();
        let mut entries = entries.into_iter();
        while let Some(entry) = entries.next() {
            if *shutdown.borrow() {
                // Not read: the next run lists them again.
                self.poller.settle(&entry);
                entries.by_ref().for_each(|e| self.poller.settle(&e));
                break;
            }
            let key = entry.source_key().to_owned();
            let mut through = [0u64; 4];
            for (i, table) in per_table.iter().enumerate() {
                if let Some(&v) = table.get(&key) {
                    self.recorded[i].insert(key.clone(), v);
                    through[i] = u64::try_from(v).unwrap_or(0);
                }
            }
            let read = self.ctx.config.read_options();
            let opened = match self.poller.open(&entry, &read).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(source = %self.name, object = entry.url(), error = %e, "object not read; the next poll retries");
                    self.poller.settle(&entry);
                    continue;
                }
            };
            let mut stage = self.stage.take().context("parse state lost")?;
            let ctx = self.ctx.clone();
            let id = self.id;
            let format = self.poller.config().format.clone();
            let e = entry.clone();
            let (stage, result) = tokio::task::spawn_blocking(move || {
                let reader = opened.into_records(ztlake_ingest::Framing::Lines, &read);
                let Stage { norm, generation, .. } = &mut stage;
                let mut deliver_full = |out: &mut ztlake_normalize::Output| {
                    for (table, batch) in out.take_batches(super::parse::BATCH_ROWS) {
                        deliver(&ctx, id, generation, table, batch)?;
                    }
                    Ok(())
                };
                let r = norm.object(
                    reader,
                    e.source_key(),
                    e.name(),
                    &format,
                    Some(e.last_modified_micros),
                    through,
                    &mut deliver_full,
                );
                (stage, r)
            })
            .await
            .context("parse thread")?;
            self.stage = Some(stage);
            let (last_line, parsed) = match result {
                Ok(r) => r,
                Err(e) => {
                    self.poller.settle(&entry);
                    return Err(e.context(format!("reading {}", entry.url())));
                }
            };
            self.ctx.metrics.records_in(&self.name, parsed.records);
            let stage = self.stage.as_mut().context("parse state lost")?;
            let generation = &mut stage.generation;
            generation.advance(&key, i64::try_from(last_line).unwrap_or(i64::MAX));
            generation.bytes += entry.size;
            generation.records += parsed.records;
            generation.objects.push(entry);
            if generation.due(&self.ctx) {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let decided = Instant::now();
        let mut stage = self.stage.take().context("parse state lost")?;
        let (stage, sealed) = tokio::task::spawn_blocking(move || {
            let r = stage.seal();
            (stage, r)
        })
        .await
        .context("parse thread")?;
        self.stage = Some(stage);
        let (generation, counts) = sealed?;
        if generation.is_empty() {
            return Ok(());
        }
        let txns = txns_for(&generation.positions, &mut self.recorded);
        let (reply, rx) = oneshot::channel();
        self.committer
            .send(Job { generation, txns, counts, decided, reply })
            .await
            .map_err(|_| anyhow::anyhow!("{}: the committer stopped", self.name))?;
        self.inflight.push_back(rx);
        Ok(())
    }

    async fn drain(&mut self) -> Result<()> {
        while let Some(rx) = self.inflight.pop_front() {
            let done = rx.await.context("the committer stopped")??;
            for entry in &done.objects {
                self.poller.settle(entry);
                for table in &mut self.recorded {
                    table.remove(entry.source_key());
                }
            }
            self.ctx.metrics.objects_in(&self.name, done.objects.len() as u64);
            self.ctx.progress.committed(self.id, done.gen_id);
            self.ctx.metrics.flushed(&self.name, done.decided.elapsed());
        }
        Ok(())
    }
}
