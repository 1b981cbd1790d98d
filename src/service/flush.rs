//! Flushing: a generation of parsed rows → data files → one lake commit per table carrying each
//! source's position as a Delta txn → (then, and only then) acknowledgement and the SIEM feed.
//!
//! A source loop parses into a [`Stage`]: the Normalizer's builders and the current
//! [`Generation`] (table writers encoding on their own threads, the positions read, the rows held
//! for the SIEM feed). When the generation is due — `flush_interval` since its first row,
//! `flush_rows` rows or `flush_bytes` bytes read, a revocation, an alert waiting for its
//! evidence, or shutdown — it is sealed and handed to the source's committer task through a
//! channel of one slot, and parsing goes on into a fresh generation. The committer finishes the
//! files, commits the four data tables (each with its own txns: a crash between two tables'
//! commits is repaired on restart, each table skipping what it holds), retries a failed commit
//! with backoff (the files stay until it succeeds; the source pauses meanwhile: the slot is
//! full), publishes the held rows to the SIEM feed, and answers the loop, which then marks the
//! positions durable (Kafka offsets commit) or settles the objects. Commits happen in generation
//! order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use arrow::array::RecordBatch;
use tokio::sync::{mpsc, oneshot};
use ztlake_ingest::kafka::PartitionSpan;
use ztlake_ingest::objects::ObjectEntry;
use ztlake_normalize::{Counts, Table};
use ztlake_storage::{CommitOutcome, DataFile, TableWriter, Txn};

use super::Ctx;
use super::parse::{BATCH_ROWS, Normalizer};

/// Rows of one source read since its last flush, on their way to the lake.
#[derive(Debug, Default)]
pub(crate) struct Generation {
    /// Number of this generation within its source (1, 2, …).
    pub(crate) id: u64,
    writers: [Option<TableWriter>; 4],
    /// Rows handed to the writers.
    pub(crate) rows: u64,
    /// Raw bytes read.
    pub(crate) bytes: u64,
    /// Records read.
    pub(crate) records: u64,
    /// When the first record arrived.
    pub(crate) started: Option<Instant>,
    /// Source key → last position read (the txn version).
    pub(crate) positions: BTreeMap<String, i64>,
    /// Kafka offsets read.
    pub(crate) spans: Vec<PartitionSpan>,
    /// Objects read.
    pub(crate) objects: Vec<ObjectEntry>,
    /// Rows kept for the SIEM feed until the commit.
    held: Vec<(Table, RecordBatch)>,
    /// Where the generation's time went (logged at debug level once it is committed).
    pub(crate) times: StageTimes,
}

/// Wall time a generation spent in each stage (summed over its batches).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StageTimes {
    /// Parsing on the blocking thread, from hand-off to return (includes the two waits below).
    pub(crate) parse: Duration,
    /// Waiting for room in the streaming rules' queue.
    pub(crate) detect_wait: Duration,
    /// Handing batches to the table writers.
    pub(crate) write: Duration,
    /// Parsing itself, on the blocking thread (`parse` minus this: waiting for a thread and
    /// for the loop to be scheduled again).
    pub(crate) parse_inner: Duration,
    /// The source loop waiting for the consumer's next batch.
    pub(crate) idle: Duration,
    /// Batches parsed.
    pub(crate) batches: u64,
}

impl Generation {
    fn new(id: u64) -> Self {
        Self { id, ..Self::default() }
    }

    /// Whether nothing was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Whether the generation should be flushed now.
    pub(crate) fn due(&self, ctx: &Ctx) -> bool {
        let p = &ctx.config.pipeline;
        self.rows >= p.flush_rows
            || self.bytes >= p.flush_bytes
            || self.older_than(p.flush_interval)
    }

    /// Whether the generation holds records read at least `age` ago.
    pub(crate) fn older_than(&self, age: Duration) -> bool {
        self.started.is_some_and(|s| s.elapsed() >= age)
    }

    /// Record that `key` was read through `position`.
    pub(crate) fn advance(&mut self, key: &str, position: i64) {
        self.started.get_or_insert_with(Instant::now);
        match self.positions.get_mut(key) {
            Some(p) => *p = (*p).max(position),
            None => {
                self.positions.insert(key.to_owned(), position);
            }
        }
    }
}

/// The parse state of a source loop: its Normalizer and current generation. Moved into
/// `spawn_blocking` closures for parsing and back.
#[derive(Debug)]
pub(crate) struct Stage {
    pub(crate) norm: Normalizer,
    pub(crate) generation: Generation,
    ctx: Arc<Ctx>,
    source: usize,
}

impl Stage {
    pub(crate) fn new(ctx: Arc<Ctx>, source: usize) -> Self {
        let norm = Normalizer::new(ctx.config.read_options());
        Self { norm, generation: Generation::new(1), ctx, source }
    }

    /// Hand the full batches of the builders on (blocking).
    pub(crate) fn deliver_full(&mut self) -> Result<()> {
        if self.norm.buffered_rows() >= BATCH_ROWS {
            for (table, batch) in self.norm.take_batches(BATCH_ROWS) {
                self.deliver(table, batch)?;
            }
        }
        Ok(())
    }

    /// Hand one batch to the streaming rules, the SIEM hold and its table's writer (blocking).
    pub(crate) fn deliver(&mut self, table: Table, batch: RecordBatch) -> Result<()> {
        deliver(&self.ctx, self.source, &mut self.generation, table, batch)
    }

    /// Seal the generation (blocking): every buffered row goes to the writers; returns it with
    /// the counts of its records, and starts the next one.
    pub(crate) fn seal(&mut self) -> Result<(Generation, Counts)> {
        for (table, batch) in self.norm.take_batches(0) {
            self.deliver(table, batch)?;
        }
        let counts = self.norm.take_counts();
        let next = Generation::new(self.generation.id + 1);
        Ok((std::mem::replace(&mut self.generation, next), counts))
    }

    /// Drop the generation and what the builders hold (a lost assignment): nothing of it is
    /// committed; its files are deleted by the writers.
    pub(crate) fn discard(&mut self) -> u64 {
        drop(self.norm.take_batches(0));
        drop(self.norm.take_counts());
        let next = Generation::new(self.generation.id + 1);
        std::mem::replace(&mut self.generation, next).id
    }
}

/// See [`Stage::deliver`]; also usable while the Normalizer is borrowed.
pub(crate) fn deliver(
    ctx: &Ctx,
    source: usize,
    generation: &mut Generation,
    table: Table,
    batch: RecordBatch,
) -> Result<()> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let index = table as usize;
    if table != Table::Quarantine {
        if let Some(d) = &ctx.detector {
            let waited = Instant::now();
            d.push(source, generation.id, table, batch.clone())?;
            generation.times.detect_wait += waited.elapsed();
        }
        if ctx.siem.as_ref().is_some_and(|s| s.wants(table)) {
            generation.held.push((table, batch.clone()));
        }
    }
    generation.rows += batch.num_rows() as u64;
    let slot = generation.writers.get_mut(index).context("not a data table")?;
    if slot.is_none() {
        *slot = Some(ctx.lake.writer(table, ctx.config.lake.writer.clone())?);
    }
    if let Some(w) = slot.as_mut() {
        let started = Instant::now();
        w.write(batch).with_context(|| format!("writing {table} data files"))?;
        generation.times.write += started.elapsed();
    }
    Ok(())
}

/// A sealed generation on its way to the lake.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) generation: Generation,
    /// Per data table (`Table as usize`), the txns of its commit.
    pub(crate) txns: [Vec<Txn>; 4],
    pub(crate) counts: Counts,
    /// When the flush was decided (for the latency metric).
    pub(crate) decided: Instant,
    pub(crate) reply: oneshot::Sender<Result<Done>>,
}

/// A committed generation, back to its loop for acknowledgement.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) gen_id: u64,
    pub(crate) spans: Vec<PartitionSpan>,
    pub(crate) objects: Vec<ObjectEntry>,
    pub(crate) decided: Instant,
}

/// Start the committer task of source `name`; jobs queue in a channel of one slot.
pub(crate) fn spawn_committer(ctx: Arc<Ctx>, name: String) -> mpsc::Sender<Job> {
    let (tx, mut rx) = mpsc::channel::<Job>(1);
    tokio::spawn(async move {
        while let Some(job) = rx.recv().await {
            let Job { generation, txns, counts, decided, reply } = job;
            let result = commit(&ctx, &name, generation, txns, &counts, decided)
                .await
                .map(|(spans, objects, id)| Done { gen_id: id, spans, objects, decided });
            let failed = result.is_err();
            let _ = reply.send(result);
            if failed {
                break;
            }
        }
    });
    tx
}

type Committed = (Vec<PartitionSpan>, Vec<ObjectEntry>, u64);

async fn commit(
    ctx: &Ctx,
    name: &str,
    mut generation: Generation,
    txns: [Vec<Txn>; 4],
    counts: &Counts,
    decided: Instant,
) -> Result<Committed> {
    let started = Instant::now();
    // Close the data files (blocking: encoders finish their row groups).
    let writers = std::mem::take(&mut generation.writers);
    let files: Vec<(Table, Vec<DataFile>)> = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (i, w) in writers.into_iter().enumerate() {
            let table = Table::DATA[i];
            let files = match w {
                Some(w) => w.finish().with_context(|| format!("closing {table} data files"))?,
                None => Vec::new(),
            };
            out.push((table, files));
        }
        anyhow::Ok(out)
    })
    .await
    .context("data file task")??;
    let finished = Instant::now();
    let mut pending: Vec<(Table, Vec<DataFile>, Vec<Txn>)> =
        files.into_iter().zip(txns).map(|((table, files), txns)| (table, files, txns)).collect();
    let mut info = serde_json::Map::new();
    info.insert(
        "ztlake".into(),
        serde_json::json!({
            "operation": "service",
            "source": name,
            "generation": generation.id,
            "positions": generation.positions.len(),
        }),
    );
    let mut backoff = Duration::from_millis(200);
    let mut shutdown = ctx.shutdown.clone();
    let mut shutdown_since: Option<Instant> = None;
    loop {
        let attempts = pending.iter().map(|(t, files, txns)| {
            let info = info.clone();
            async move { (*t, ctx.lake.commit(*t, files.clone(), txns.clone(), info).await) }
        });
        let results = futures::future::join_all(attempts).await;
        let mut failed = Vec::new();
        for (table, result) in results {
            match result {
                Ok(
                    CommitOutcome::Committed { .. }
                    | CommitOutcome::AlreadyCommitted
                    | CommitOutcome::Empty,
                ) => {}
                Err(e) => {
                    tracing::warn!(source = name, %table, error = %e, "lake commit failed; retrying");
                    failed.push(table);
                }
            }
        }
        pending.retain(|(t, _, _)| failed.contains(t));
        if pending.is_empty() {
            break;
        }
        ctx.metrics.flush_failed(name);
        if *shutdown.borrow() {
            let since = *shutdown_since.get_or_insert_with(Instant::now);
            if since.elapsed() > ctx.config.pipeline.shutdown_timeout {
                anyhow::bail!("{name}: the lake commit kept failing during shutdown");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    let committed = Instant::now();
    for (table, n) in &counts.rows {
        ctx.metrics.rows_out(table, *n);
    }
    for (reason, n) in &counts.quarantined {
        ctx.metrics.quarantined(reason, *n);
    }
    // The feed lags the lake: the rows go out only now that they are committed.
    if let Some(siem) = &ctx.siem {
        let held = std::mem::take(&mut generation.held);
        if !held.is_empty() {
            let siem = siem.clone();
            tokio::task::spawn_blocking(move || siem.publish_rows(&held))
                .await
                .context("SIEM feed task")??;
        }
    }
    let t = generation.times;
    tracing::debug!(
        source = name,
        generation = generation.id,
        records = generation.records,
        rows = generation.rows,
        age_ms = generation.started.map_or(0, |s| s.elapsed().as_millis()),
        batches = t.batches,
        idle_ms = t.idle.as_millis(),
        parse_ms = t.parse.as_millis(),
        parse_inner_ms = t.parse_inner.as_millis(),
        detect_wait_ms = t.detect_wait.as_millis(),
        write_ms = t.write.as_millis(),
        queued_ms = started.duration_since(decided).as_millis(),
        finish_ms = finished.duration_since(started).as_millis(),
        commit_ms = committed.duration_since(finished).as_millis(),
        siem_ms = committed.elapsed().as_millis(),
        "generation committed"
    );
    Ok((
        std::mem::take(&mut generation.spans),
        std::mem::take(&mut generation.objects),
        generation.id,
    ))
}

/// Per data table, the txns of a generation's commit: each source's last position, never below
/// what the table already records for it (a table that ran ahead before a crash must not see
/// its txn go back). `recorded` is updated to the new versions.
pub(crate) fn txns_for(
    positions: &BTreeMap<String, i64>,
    recorded: &mut [std::collections::HashMap<String, i64>; 4],
) -> [Vec<Txn>; 4] {
    let mut out: [Vec<Txn>; 4] = Default::default();
    for (i, table) in recorded.iter_mut().enumerate() {
        for (key, &last) in positions {
            let version = table.get(key).map_or(last, |&r| r.max(last));
            table.insert(key.clone(), version);
            if let Some(list) = out.get_mut(i) {
                list.push(Txn::new(key.clone(), version));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn txns_never_go_back_per_table() {
        let mut positions = BTreeMap::new();
        positions.insert("kafka:g/t/0".to_owned(), 80);
        positions.insert("kafka:g/t/1".to_owned(), 10);
        let mut recorded: [HashMap<String, i64>; 4] = Default::default();
        recorded[0].insert("kafka:g/t/0".to_owned(), 100);
        let txns = txns_for(&positions, &mut recorded);
        assert_eq!(txns[0], vec![Txn::new("kafka:g/t/0", 100), Txn::new("kafka:g/t/1", 10)]);
        assert_eq!(txns[3], vec![Txn::new("kafka:g/t/0", 80), Txn::new("kafka:g/t/1", 10)]);
        assert_eq!(recorded[3]["kafka:g/t/0"], 80);
    }
}
