//! The ingest pipeline: inputs → framing → parsers → table writers → one atomic commit per table.
//!
//! This is where the crates meet (ingest → normalize → storage). For every input it computes a
//! content fingerprint (the source identity), asks the lake how far earlier ingests of that
//! source got (Delta `txn` versions), parses the rest on a blocking thread while the table
//! writers encode Parquet on their own threads, and finally commits each table once, carrying
//! one `txn` per source (`file:<fingerprint>` → last line read). Re-ingesting the same input, or
//! replaying after a crash, therefore commits nothing new.
//!
//! Every record read ends up counted: rows per table, quarantined (by reason), skipped (headers,
//! events of no table) or replayed (already committed).
//!
//! With detection on ([`IngestRequest::detect`]), every normalized batch also goes to the
//! streaming rules (`ztlake-detections`' engine on its own thread, behind a bounded queue) on
//! its way to the writers; the alerts are written after the data commits, so an alert never
//! points at events that are not in the lake.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use ztlake_detections::{Background, Clock, Engine, EngineOptions, EngineStats, RuleSet};
use ztlake_ingest::{Frame, InputFile, ReadOptions, RecordReader};
use ztlake_normalize::format::{
    Framing, ParseOptions, Parser, is_json_content, parser_for, sniff_framing,
};
use ztlake_normalize::{Counts, Output, Reason, Record, SourceInfo, Table};
use ztlake_storage::{CommitOutcome, DataFile, Lake, TableWriter, Txn, WriterOptions};

use crate::alerts::{AlertWrite, write_alert_rows};

/// Rows buffered per table before a batch goes to the writers.
pub const BATCH_ROWS: usize = 64 * 1024;

/// Batches waiting for the streaming rules at most (`ingest --detect`). The engine works in
/// bursts (each window close evaluates its rules), and a full queue stops the parser: with 4,
/// the 5 M-line pack benchmark took 3.72 s on average with the pack on, with 16 3.61 s
/// (six runs each), for ≈ 30 MB more peak memory.
const DETECT_QUEUE_BATCHES: usize = 16;

/// What to ingest and how.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    /// Files, directories (recursive) and `-` for stdin.
    pub inputs: Vec<PathBuf>,
    /// `auto` or a registered format name.
    pub format: String,
    /// Parser options (`--vpc-fields`, JSON caps).
    pub parse: ParseOptions,
    /// Framing limits and buffer sizes.
    pub read: ReadOptions,
    /// Parquet encoder settings.
    pub writer: WriterOptions,
    /// Streaming detection: the rules to run on every batch (None: off).
    pub detect: Option<Detection>,
    /// Threads parsing JSON records in parallel (NDJSON inputs; other inputs, and every input
    /// when streaming detection is on, are parsed in order on one thread: their records depend
    /// on earlier ones, e.g. header lines, and detection windows want rows in input order).
    pub parse_threads: usize,
}

/// Streaming detection during an ingest.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The rule pack (its streaming rules run).
    pub rules: Arc<RuleSet>,
    /// Engine settings.
    pub engine: EngineOptions,
}

/// What streaming detection did during an ingest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DetectionSummary {
    /// Streaming rules run.
    pub rules: usize,
    /// Engine counters.
    pub stats: EngineStats,
    /// Alerts raised.
    pub alerts: usize,
    /// What was written to the lake.
    pub written: AlertWrite,
}

impl IngestRequest {
    /// A request with default options.
    pub fn new(inputs: Vec<PathBuf>) -> Self {
        Self {
            inputs,
            format: "auto".to_owned(),
            parse: ParseOptions::default(),
            read: ReadOptions::default(),
            writer: WriterOptions::default(),
            detect: None,
            parse_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// What happened to one table in an ingest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableCommit {
    /// Rows written to new data files.
    pub rows: u64,
    /// Data files written.
    pub files: usize,
    /// Delta version committed, or `None` when everything was already committed.
    pub version: Option<i64>,
}

/// The result of an ingest, printed as the summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestSummary {
    /// Inputs read.
    pub inputs: usize,
    /// Raw (compressed) bytes read.
    pub bytes: u64,
    /// Per-record accounting.
    pub counts: Counts,
    /// Blank lines skipped by the framer (not records).
    pub blank_lines: u64,
    /// Inputs not read because another input of this run has the same content.
    pub duplicate_inputs: Vec<String>,
    /// Commit result per table.
    pub commits: BTreeMap<&'static str, TableCommit>,
    /// Streaming detection (None: off).
    pub detection: Option<DetectionSummary>,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl IngestSummary {
    /// Records per second over the whole run.
    pub fn records_per_sec(&self) -> f64 {
        self.counts.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Progress callbacks, so the CLI can draw a bar and tests can stay silent.
pub trait Progress: Send + Sync {
    /// Total raw bytes to read, when known.
    fn start(&self, total_bytes: Option<u64>);
    /// Raw bytes read so far and records so far.
    fn update(&self, bytes: u64, records: u64);
    /// A new input started.
    fn input(&self, name: &str);
    /// Reading is done; committing.
    fn finish(&self);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: Option<u64>) {}
    fn update(&self, _: u64, _: u64) {}
    fn input(&self, _: &str) {}
    fn finish(&self) {}
}

/// One input with its identity.
struct Source {
    input: InputFile,
    key: String,
    /// For stdin, the reader opened while fingerprinting (stdin cannot be opened twice).
    reader: Option<RecordReader<Box<dyn std::io::Read + Send>>>,
}

/// Everything the parse thread owns.
struct ParseState {
    output: Output,
    writers: HashMap<Table, TableWriter>,
    /// The streaming rules, when detection is on.
    detector: Option<Background>,
    /// Last line read per source key (the txn version to commit).
    lines: BTreeMap<String, u64>,
    blank_lines: u64,
    bytes: u64,
    /// When quarantined rows are stamped (the ingest's start), UTC microseconds.
    now: i64,
}

/// Run an ingest into `lake`.
pub async fn ingest(
    lake: &Lake,
    request: &IngestRequest,
    progress: Arc<dyn Progress>,
) -> Result<IngestSummary> {
    let started = Instant::now();
    // Fail on a bad --format / --vpc-fields before touching any input.
    parser_for(&request.format, &request.parse)?;
    let inputs = ztlake_ingest::expand_inputs(&request.inputs)?;
    let total: Option<u64> = inputs.iter().map(|i| i.size).sum();
    progress.start(total);

    // Identify every input by content and learn what earlier ingests committed.
    let read = request.read.clone();
    let (sources, duplicate_inputs) = tokio::task::spawn_blocking(move || identify(inputs, &read))
        .await
        .context("fingerprinting inputs")??;
    let keys: Vec<String> = sources.iter().map(|s| s.key.clone()).collect();
    let mut committed: HashMap<Table, HashMap<String, i64>> = HashMap::new();
    for table in Table::DATA {
        committed.insert(table, lake.txn_versions(table, &keys).await?);
    }

    let mut writers = HashMap::new();
    for table in Table::DATA {
        writers.insert(table, lake.writer(table, request.writer.clone())?);
    }
    let detector = match &request.detect {
        Some(d) => {
            let engine = Engine::new(
                &d.rules.streaming(),
                d.rules.reference(),
                d.engine.clone(),
                Clock::Data,
            )
            .await
            .context("starting the streaming rules")?;
            Some(Background::spawn(engine, DETECT_QUEUE_BATCHES)?)
        }
        None => None,
    };
    let now = chrono::Utc::now().timestamp_micros();
    let mut state = ParseState {
        output: Output::new(BATCH_ROWS, now),
        writers,
        detector,
        lines: BTreeMap::new(),
        blank_lines: 0,
        bytes: 0,
        now,
    };

    let progress_bytes = Arc::new(AtomicU64::new(0));
    let input_count = sources.len();
    for source in sources {
        progress.input(&source.input.display);
        let through: [u64; 4] = Table::DATA.map(|t| {
            committed
                .get(&t)
                .and_then(|m| m.get(&source.key))
                .map_or(0, |&v| u64::try_from(v).unwrap_or(0))
        });
        let request = request.clone();
        let done_bytes = Arc::clone(&progress_bytes);
        let bar = Arc::clone(&progress);
        let (returned, result) = tokio::task::spawn_blocking(move || {
            let mut state = state;
            let result = parse_source(source, through, &request, &mut state, &done_bytes, &*bar);
            (state, result)
        })
        .await
        .context("parse thread")?;
        state = returned;
        result?;
    }

    // Flush what is buffered, close the data files, commit each table.
    for (table, batch) in state.output.take_batches(0) {
        deliver(&mut state.writers, state.detector.as_ref(), table, batch)?;
    }
    progress.finish();
    tracing::debug!(elapsed_ms = started.elapsed().as_millis(), "input parsed");
    // The engine closes its last windows while the data files are closed and committed.
    let detecting = state.detector.take().map(|d| tokio::task::spawn_blocking(move || d.finish()));
    let txns: Vec<Txn> = state
        .lines
        .iter()
        .map(|(key, &line)| Txn::new(key.clone(), i64::try_from(line).unwrap_or(i64::MAX)))
        .collect();
    let mut writers = state.writers;
    let mut files_by_table: Vec<(Table, Vec<DataFile>)> = Vec::new();
    for table in Table::DATA {
        if let Some(w) = writers.remove(&table) {
            let files = tokio::task::spawn_blocking(move || w.finish())
                .await
                .context("closing data files")??;
            files_by_table.push((table, files));
        }
    }
    tracing::debug!(elapsed_ms = started.elapsed().as_millis(), "data files closed");
    let mut commits = BTreeMap::new();
    // Data tables first, quarantine last: each table records its own txn, so a crash between
    // commits is repaired by the next ingest of the same input.
    files_by_table.sort_by_key(|(t, _)| matches!(t, Table::Quarantine));
    for (table, files) in files_by_table {
        let rows: u64 = files.iter().map(|f| f.rows()).sum();
        let count = files.len();
        let mut info = serde_json::Map::new();
        info.insert("ztlake".into(), serde_json::json!({
            "operation": "ingest",
            "sources": state.lines.iter().map(|(k, l)| serde_json::json!({"key": k, "lines": l})).collect::<Vec<_>>(),
        }));
        let outcome = lake.commit(table, files, txns.clone(), info).await?;
        let version = match outcome {
            CommitOutcome::Committed { version, .. } => Some(version),
            CommitOutcome::AlreadyCommitted | CommitOutcome::Empty => None,
        };
        commits.insert(
            table.name(),
            TableCommit { rows: if version.is_some() { rows } else { 0 }, files: count, version },
        );
    }

    tracing::debug!(elapsed_ms = started.elapsed().as_millis(), "data committed");
    let detected = match detecting {
        Some(d) => Some(d.await.context("detection thread")??),
        None => None,
    };
    tracing::debug!(elapsed_ms = started.elapsed().as_millis(), "detection flushed");
    // Alerts after the data: they point at committed events only.
    let detection = match (detected, &request.detect) {
        (Some((rows, spent, stats)), Some(d)) => {
            let count = rows.iter().map(arrow::array::RecordBatch::num_rows).sum();
            let written = write_alert_rows(lake, rows).await.context("writing alerts");
            // Freed once the rows are written: freeing meanwhile slowed their encoding down.
            spent.free_later();
            let written = written?;
            tracing::debug!(elapsed_ms = started.elapsed().as_millis(), "alerts written");
            Some(DetectionSummary {
                rules: d.rules.streaming().len(),
                stats,
                alerts: count,
                written,
            })
        }
        _ => None,
    };
    Ok(IngestSummary {
        detection,
        inputs: input_count,
        bytes: state.bytes,
        counts: state.output.take_counts(),
        blank_lines: state.blank_lines,
        duplicate_inputs,
        commits,
        elapsed: started.elapsed(),
    })
}

/// Fingerprint every input (first 64 KiB of its decompressed content).
fn identify(inputs: Vec<InputFile>, read: &ReadOptions) -> Result<(Vec<Source>, Vec<String>)> {
    let mut sources = Vec::with_capacity(inputs.len());
    let mut duplicates = Vec::new();
    for input in inputs {
        let opened = ztlake_ingest::open(&input, read)?;
        let mut reader = opened.into_records(ztlake_ingest::Framing::Lines, read);
        let fingerprint = reader.fingerprint()?;
        let key = format!("file:{fingerprint:032x}");
        if let Some(first) = sources.iter().find(|s: &&Source| s.key == key) {
            duplicates.push(format!("{} (same content as {})", input.display, first.input.display));
            continue;
        }
        let keep = input.is_stdin().then_some(reader);
        sources.push(Source { input, key, reader: keep });
    }
    Ok((sources, duplicates))
}

fn to_ingest_framing(f: Framing) -> ztlake_ingest::Framing {
    match f {
        Framing::Lines => ztlake_ingest::Framing::Lines,
        Framing::Json => ztlake_ingest::Framing::Json,
    }
}

/// Parse one source into the state's output and writers (runs on a plain thread).
fn parse_source(
    source: Source,
    committed_through: [u64; 4],
    request: &IngestRequest,
    state: &mut ParseState,
    progress_bytes: &AtomicU64,
    progress: &dyn Progress,
) -> Result<()> {
    let Source { input, key, reader } = source;
    let (mut reader, raw_bytes) = match reader {
        Some(r) => (r, None),
        None => {
            let opened = ztlake_ingest::open(&input, &request.read)?;
            let counter = Arc::clone(&opened.raw_bytes);
            (opened.into_records(ztlake_ingest::Framing::Lines, &request.read), Some(counter))
        }
    };
    let head = reader.peek(4096);
    let json = is_json_content(head);
    // A JSON format reads NDJSON (the first line is one whole value) line by line, which is
    // cheap to frame and parses in parallel; pretty-printed documents and arrays need the JSON
    // value framer. `auto` decides the same way.
    let framing = match request.format.as_str() {
        "auto" => sniff_framing(head),
        name => match ztlake_normalize::format::format_by_name(name)?.framing {
            Framing::Json => sniff_framing(head),
            Framing::Lines => Framing::Lines,
        },
    };
    reader.set_framing(to_ingest_framing(framing));
    // NDJSON and single-line documents are framed by lines, under the JSON size limit.
    let line_limit = if json {
        request.read.max_line_len.max(request.read.max_json_len)
    } else {
        request.read.max_line_len
    };
    reader.set_max_line_len(line_limit);
    // The limit a too-long record broke, named in its quarantine detail.
    let limit = match framing {
        Framing::Json => request.read.max_json_len,
        Framing::Lines => line_limit,
    };
    let mut info = SourceInfo::lines(key.clone(), input.display.clone());
    info.delivered = delivery_time(&input);
    // Lines every table already holds need not be parsed at all.
    let skip_through = committed_through.iter().copied().min().unwrap_or(0);
    let base_bytes = progress_bytes.load(Ordering::Relaxed);
    // Streaming detection sees rows in input order (its windows evict by event time, and rows
    // from parallel workers would arrive out of order by up to a batch), so it parses on one
    // thread.
    if json && framing == Framing::Lines && request.parse_threads > 1 && request.detect.is_none() {
        let ctx = SourceCtx { info, committed_through, skip_through, limit, raw_bytes, base_bytes };
        return parse_parallel(reader, ctx, key, request, state, progress_bytes, progress);
    }
    let mut parser: Box<dyn Parser> = parser_for(&request.format, &request.parse)?;
    let out = &mut state.output;
    out.begin_source(info, committed_through);

    let mut last_line = 0u64;
    let mut since_flush = 0usize;
    while let Some(frame) = reader.next_record() {
        match frame {
            Frame::Record { line, bytes } => {
                last_line = line;
                if line <= skip_through {
                    out.begin_record();
                    out.replayed_record();
                    continue;
                }
                out.begin_record();
                parser.parse(&Record { line, bytes }, out);
                out.end_record();
            }
            Frame::TooLong { line, len, prefix } => {
                last_line = line;
                out.begin_record();
                let detail = format!("record of {len} bytes exceeds the {limit} byte limit");
                out.quarantine_raw(line, prefix, len, Reason::LineTooLong, &detail);
                out.end_record();
            }
            Frame::Broken { line, partial, len, error } => {
                // The damaged tail counts as read: ingesting the same input again must not
                // quarantine it twice.
                last_line = line;
                out.begin_record();
                out.quarantine_raw(line, partial, len, broken_reason(&error), &error.to_string());
                out.end_record();
            }
        }
        since_flush += 1;
        if since_flush >= 4096 {
            since_flush = 0;
            if out.buffered_rows() >= BATCH_ROWS {
                for (table, batch) in out.take_batches(BATCH_ROWS) {
                    deliver(&mut state.writers, state.detector.as_ref(), table, batch)?;
                }
            }
            if let Some(c) = &raw_bytes {
                progress_bytes.store(base_bytes + c.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            progress.update(progress_bytes.load(Ordering::Relaxed), out.records());
        }
    }
    parser.finish(out);
    state.blank_lines += reader.blank_lines();
    let read_bytes = raw_bytes.map_or(0, |c| c.load(Ordering::Relaxed));
    state.bytes += read_bytes;
    progress_bytes.store(base_bytes + read_bytes, Ordering::Relaxed);
    let entry = state.lines.entry(key).or_insert(0);
    *entry = (*entry).max(last_line);
    Ok(())
}

/// What a parallel parse needs to know about the source being read.
struct SourceCtx {
    info: SourceInfo,
    committed_through: [u64; 4],
    skip_through: u64,
    /// The record size limit the reader enforces (named in quarantine details).
    limit: usize,
    raw_bytes: Option<Arc<AtomicU64>>,
    base_bytes: u64,
}

/// Records of a source handed to a parse worker: the bytes of up to [`BLOCK_RECORDS`] framed
/// records, copied once out of the reader's buffer.
#[derive(Default)]
struct Block {
    data: Vec<u8>,
    entries: Vec<Entry>,
}

/// One framed record of a [`Block`]; ranges index `Block::data`.
enum Entry {
    Record { line: u64, start: usize, end: usize },
    TooLong { line: u64, len: u64, start: usize, end: usize },
    Broken { line: u64, len: u64, start: usize, end: usize, reason: Reason, detail: String },
}

/// Records per block handed to a parse worker.
const BLOCK_RECORDS: usize = 2048;

/// Parse a JSON-lines source on `request.parse_threads` workers. Every record is independent
/// (JSON formats keep no state across records), so blocks of records are parsed in any order:
/// rows keep their `event_uid` and `source` (both derive from the line number), counts merge
/// at the end, and the reader thread only frames and copies bytes.
fn parse_parallel(
    mut reader: RecordReader<Box<dyn std::io::Read + Send>>,
    ctx: SourceCtx,
    key: String,
    request: &IngestRequest,
    state: &mut ParseState,
    progress_bytes: &AtomicU64,
    progress: &dyn Progress,
) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Block>(request.parse_threads * 2);
    let rx = std::sync::Mutex::new(rx);
    // Parsed blocks go back to the reader to be filled again: a block's buffers are megabytes,
    // and fresh ones cost a page fault per 4 KiB touched (the block copy caused most of a JSON
    // ingest's page faults before).
    let (spare_tx, spare_rx) = std::sync::mpsc::channel::<Block>();
    let sinks = std::sync::Mutex::new((&mut state.writers, state.detector.as_ref()));
    let now = state.now;
    let mut replayed = 0u64;
    let mut last_line = 0u64;
    let failed = AtomicBool::new(false);
    let worker_counts = std::thread::scope(|scope| -> Result<Vec<Counts>> {
        let tx = tx;
        let mut workers = Vec::new();
        for _ in 0..request.parse_threads {
            let (rx, sinks, info) = (&rx, &sinks, ctx.info.clone());
            let spare_tx = spare_tx.clone();
            let failed = &failed;
            workers.push(scope.spawn(move || -> Result<Counts> {
                let work = || -> Result<Counts> {
                    let mut parser = parser_for(&request.format, &request.parse)?;
                    let mut out = Output::new(BATCH_ROWS, now);
                    out.begin_source(info, ctx.committed_through);
                    let flush = |out: &mut Output, min_rows: usize| -> Result<()> {
                        let batches = out.take_batches(min_rows);
                        if batches.is_empty() {
                            return Ok(());
                        }
                        let mut guard =
                            sinks.lock().map_err(|_| anyhow::anyhow!("a parse worker failed"))?;
                        let (writers, detector) = &mut *guard;
                        for (table, batch) in batches {
                            deliver(writers, *detector, table, batch)?;
                        }
                        Ok(())
                    };
                    loop {
                        let block = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => break,
                        };
                        let Ok(block) = block else { break };
                        for entry in &block.entries {
                            out.begin_record();
                            match entry {
                                Entry::Record { line, start, end } => {
                                    let bytes = block.data.get(*start..*end).unwrap_or_default();
                                    parser.parse(&Record { line: *line, bytes }, &mut out);
                                }
                                Entry::TooLong { line, len, start, end } => {
                                    let prefix = block.data.get(*start..*end).unwrap_or_default();
                                    let detail = format!(
                                        "record of {len} bytes exceeds the {} byte limit",
                                        ctx.limit
                                    );
                                    out.quarantine_raw(
                                        *line,
                                        prefix,
                                        *len,
                                        Reason::LineTooLong,
                                        &detail,
                                    );
                                }
                                Entry::Broken { line, len, start, end, reason, detail } => {
                                    let partial = block.data.get(*start..*end).unwrap_or_default();
                                    out.quarantine_raw(*line, partial, *len, *reason, detail);
                                }
                            }
                            out.end_record();
                        }
                        if out.buffered_rows() >= BATCH_ROWS {
                            flush(&mut out, BATCH_ROWS)?;
                        }
                        // The reader may have finished; then the block is simply dropped.
                        let _ = spare_tx.send(block);
                    }
                    parser.finish(&mut out);
                    flush(&mut out, 0)?;
                    Ok(out.take_counts())
                };
                let result = work();
                if result.is_err() {
                    // Stop the reader and drain what it already queued, so it never blocks on
                    // a full queue nobody reads.
                    failed.store(true, Ordering::Relaxed);
                    while let Ok(rx) = rx.lock() {
                        if rx.recv().is_err() {
                            break;
                        }
                    }
                }
                result
            }));
        }
        // The reader: frame, copy into blocks, hand them out (a full queue pauses reading).
        let mut block = Block::default();
        let mut sent = 0usize;
        let send =
            |block: Block| tx.send(block).map_err(|_| anyhow::anyhow!("the parse workers stopped"));
        while let Some(frame) = reader.next_record() {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let start = block.data.len();
            match frame {
                Frame::Record { line, bytes } => {
                    last_line = line;
                    if line <= ctx.skip_through {
                        replayed += 1;
                        continue;
                    }
                    block.data.extend_from_slice(bytes);
                    block.entries.push(Entry::Record { line, start, end: block.data.len() });
                }
                Frame::TooLong { line, len, prefix } => {
                    last_line = line;
                    block.data.extend_from_slice(prefix);
                    block.entries.push(Entry::TooLong { line, len, start, end: block.data.len() });
                }
                Frame::Broken { line, partial, len, error } => {
                    last_line = line;
                    let reason = broken_reason(&error);
                    block.data.extend_from_slice(partial);
                    let end = block.data.len();
                    block.entries.push(Entry::Broken {
                        line,
                        len,
                        start,
                        end,
                        reason,
                        detail: error.to_string(),
                    });
                }
            }
            if block.entries.len() >= BLOCK_RECORDS {
                let next = match spare_rx.try_recv() {
                    Ok(mut spare) => {
                        spare.data.clear();
                        spare.entries.clear();
                        spare
                    }
                    Err(_) => Block {
                        data: Vec::with_capacity(block.data.capacity()),
                        entries: Vec::with_capacity(BLOCK_RECORDS),
                    },
                };
                send(std::mem::replace(&mut block, next))?;
                sent += 1;
                if sent.is_multiple_of(16) {
                    if let Some(c) = &ctx.raw_bytes {
                        progress_bytes
                            .store(ctx.base_bytes + c.load(Ordering::Relaxed), Ordering::Relaxed);
                    }
                    progress.update(
                        progress_bytes.load(Ordering::Relaxed),
                        (sent * BLOCK_RECORDS) as u64,
                    );
                }
            }
        }
        if !block.entries.is_empty() {
            send(block)?;
        }
        drop(tx);
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a parse worker panicked"))))
            .collect()
    })?;
    for counts in &worker_counts {
        state.output.absorb(counts);
    }
    state.output.absorb(&Counts { records: replayed, replayed, ..Counts::default() });
    state.blank_lines += reader.blank_lines();
    let read_bytes = ctx.raw_bytes.map_or(0, |c| c.load(Ordering::Relaxed));
    state.bytes += read_bytes;
    progress_bytes.store(ctx.base_bytes + read_bytes, Ordering::Relaxed);
    let entry = state.lines.entry(key).or_insert(0);
    *entry = (*entry).max(last_line);
    Ok(())
}

/// Hand a batch to the streaming rules (data tables only) and to its table's writer.
fn deliver(
    writers: &mut HashMap<Table, TableWriter>,
    detector: Option<&Background>,
    table: Table,
    batch: arrow::array::RecordBatch,
) -> Result<()> {
    if let Some(d) = detector
        && table != Table::Quarantine
    {
        d.send(table, batch.clone()).context("streaming detection stopped")?;
    }
    if let Some(w) = writers.get_mut(&table) {
        w.write(batch)?;
    }
    Ok(())
}

/// When an input was delivered: the file's modification time, or now for stdin.
fn delivery_time(input: &InputFile) -> Option<i64> {
    let Some(path) = &input.path else { return Some(chrono::Utc::now().timestamp_micros()) };
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    ztlake_normalize::values::checked_micros(i64::try_from(since.as_micros()).ok()?)
}

/// The quarantine reason of a source that ends broken: the decompression cap, or a damaged or
/// unreadable tail.
fn broken_reason(error: &ztlake_ingest::Error) -> Reason {
    match error {
        ztlake_ingest::Error::DecompressedTooLarge { .. } => Reason::SizeCapExceeded,
        _ => Reason::TruncatedInput,
    }
}
