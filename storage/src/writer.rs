//! The table writer: canonical Arrow batches in, zstd Parquet data files out (storage stage).
//!
//! Encoding dominates the pipeline's cost (PERFORMANCE.md), so it is parallel at the file
//! level: [`TableWriter::write`] checks a batch, splits it by partition and hands the pieces to
//! `encoder_threads` plain threads through one bounded queue (a full queue blocks the caller —
//! backpressure, never an unbounded buffer). Each encoder owns its own files: one open Parquet
//! writer per partition it has seen, rolled at `target_file_rows`, and at most
//! `max_open_files_per_encoder` open at once (the least recently used is closed first), so
//! memory stays bounded however many days a batch spans. Two encoders working on one partition
//! simply produce two files.
//!
//! [`TableWriter::finish`] closes everything, waits for remote uploads and returns the
//! [`DataFile`]s for [`crate::Lake::commit`]. The API is blocking: call it from a plain thread or
//! `spawn_blocking`, never from async code. A writer that fails, or is dropped before
//! `finish`, deletes the files it wrote (nothing was committed, so nothing refers to them).
//!
//! Remote lakes (s3, gs, az): each file is encoded into a local spool file and uploaded when it
//! is closed, on the lake's upload runtime, overlapping with encoding (see `sink`).

use std::collections::HashMap;
use std::fs::File;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use tokio::sync::Semaphore;
use ztlake_normalize::schema::Table;

use crate::commit::DataFile;
use crate::error::{Error, Result};
use crate::layout::{data_schema, writer_properties};
use crate::partition::{PartitionKey, Piece, check_schema, split};
use crate::sink::{Remote, Sink, UploadResult, UploadRuntime};
use crate::stats::delta_stats;

/// Options of a [`TableWriter`] (deserializable, so they can sit in the service config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriterOptions {
    /// Encoder threads, each writing its own files (default: available parallelism).
    #[serde(default = "default_encoder_threads")]
    pub encoder_threads: usize,
    /// Rows per data file before it is rolled (default 4 M).
    #[serde(default = "default_target_file_rows")]
    pub target_file_rows: usize,
    /// zstd compression level, 1–22 (default 1).
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// Open files per encoder; beyond it the least recently used one is closed (default 32).
    #[serde(default = "default_max_open_files")]
    pub max_open_files_per_encoder: usize,
    /// Pieces (batch parts of one partition) queued for the encoders before `write` blocks
    /// (default: 2 per available core).
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
    /// Remote lakes: directory of the spool files encoded before upload (default: the system
    /// temporary directory).
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            encoder_threads: default_encoder_threads(),
            target_file_rows: default_target_file_rows(),
            zstd_level: default_zstd_level(),
            max_open_files_per_encoder: default_max_open_files(),
            queue_depth: default_queue_depth(),
            spool_dir: None,
        }
    }
}

/// Default queue depth: two pieces per available core.
pub fn default_queue_depth() -> usize {
    2 * default_encoder_threads()
}

/// Default encoder threads: the available parallelism.
pub fn default_encoder_threads() -> usize {
    std::thread::available_parallelism().map_or(2, NonZeroUsize::get)
}

/// Default rows per data file.
pub fn default_target_file_rows() -> usize {
    4 * 1024 * 1024
}

/// Default zstd level.
pub fn default_zstd_level() -> i32 {
    1
}

/// Default open files per encoder.
pub fn default_max_open_files() -> usize {
    32
}

impl WriterOptions {
    /// Check the options.
    pub fn validate(&self) -> Result<()> {
        let bad = |detail: &str| Err(Error::Options { detail: detail.to_string() });
        if self.encoder_threads == 0 {
            return bad("encoder_threads must be at least 1");
        }
        if self.target_file_rows == 0 {
            return bad("target_file_rows must be at least 1");
        }
        if self.max_open_files_per_encoder == 0 {
            return bad("max_open_files_per_encoder must be at least 1");
        }
        if self.queue_depth == 0 {
            return bad("queue_depth must be at least 1");
        }
        if !(1..=22).contains(&self.zstd_level) {
            return bad("zstd_level must be within 1..=22");
        }
        Ok(())
    }
}

/// State shared by the writer and its encoders.
#[derive(Default)]
struct Shared {
    /// An encoder failed: stop accepting batches.
    failed: AtomicBool,
    /// The writer is being dropped: encoders skip what is left and delete their files.
    abort: AtomicBool,
}

/// What an encoder hands back: the data files it closed (remote: their uploads started) and
/// the error that stopped it, if any.
#[derive(Default)]
struct EncoderOutput {
    files: Vec<DataFile>,
    error: Option<Error>,
}

/// Encodes canonical batches of one table into data files. See the module docs.
pub struct TableWriter {
    table: Table,
    url: String,
    tx: Option<SyncSender<Piece>>,
    threads: Vec<JoinHandle<EncoderOutput>>,
    shared: Arc<Shared>,
    sink: Arc<Sink>,
    upload_results: Option<mpsc::Receiver<UploadResult>>,
    rows: u64,
    done: bool,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("table", &self.table)
            .field("url", &self.url)
            .field("encoders", &self.threads.len())
            .field("rows", &self.rows)
            .finish()
    }
}

/// Where a writer puts its files, as decided by the lake.
pub(crate) enum Destination {
    /// Local table directory.
    Local(PathBuf),
    /// Remote table: store rooted at the table, and the lake's upload runtime.
    Remote {
        /// Store rooted at the table.
        store: Arc<dyn object_store::ObjectStore>,
        /// Runs the uploads.
        runtime: Arc<UploadRuntime>,
    },
}

impl TableWriter {
    /// Start a writer for `table` at `url` (used by [`crate::Lake::writer`]).
    pub(crate) fn start(
        table: Table,
        url: String,
        destination: Destination,
        opts: WriterOptions,
    ) -> Result<TableWriter> {
        opts.validate()?;
        let props = writer_properties(table, opts.zstd_level)?;
        let (sink, upload_results) = match destination {
            Destination::Local(table_dir) => (Sink::Local { table_dir }, None),
            Destination::Remote { store, runtime } => {
                let (results_tx, results_rx) = mpsc::channel();
                let remote = Remote {
                    store,
                    url: url.clone(),
                    runtime,
                    spool_dir: opts.spool_dir.clone().unwrap_or_else(std::env::temp_dir),
                    permits: Arc::new(Semaphore::new(2 * opts.encoder_threads)),
                    results: results_tx,
                };
                (Sink::Remote(remote), Some(results_rx))
            }
        };
        let sink = Arc::new(sink);
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::sync_channel::<Piece>(opts.queue_depth);
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(opts.encoder_threads);
        for i in 0..opts.encoder_threads {
            let encoder = Encoder {
                table,
                props: props.clone(),
                schema: data_schema(table),
                target_rows: opts.target_file_rows as u64,
                max_open: opts.max_open_files_per_encoder,
                sink: sink.clone(),
                open: HashMap::new(),
                tick: 0,
                output: EncoderOutput::default(),
            };
            let rx = rx.clone();
            let shared_enc = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("ztlake-encode-{table}-{i}"))
                .spawn(move || encoder.run(&rx, &shared_enc))
                .map_err(|e| Error::io("encoder thread", e))?;
            threads.push(handle);
        }
        Ok(TableWriter {
            table,
            url,
            tx: Some(tx),
            threads,
            shared,
            sink,
            upload_results,
            rows: 0,
            done: false,
        })
    }

    /// The table this writer encodes.
    pub fn table(&self) -> Table {
        self.table
    }

    /// Rows accepted so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Encode `batch`, which has exactly `Table::schema()` (partition columns included).
    ///
    /// Blocks while the encoders' queue is full.
    ///
    /// # Errors
    /// [`Error::Schema`] or [`Error::Partition`] (nothing of the batch is written), or the error
    /// of a failed encoder (the writer then deleted its files and accepts nothing more).
    pub fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if self.done {
            return Err(Error::internal(self.table, "write after the writer finished or failed"));
        }
        check_schema(self.table, &batch)?;
        let pieces = split(self.table, &batch)?;
        for piece in pieces {
            if self.shared.failed.load(Ordering::Acquire) {
                return Err(self.fail());
            }
            let rows = piece.batch.num_rows() as u64;
            let Some(tx) = &self.tx else {
                return Err(self.fail());
            };
            if tx.send(piece).is_err() {
                return Err(self.fail());
            }
            self.rows += rows;
        }
        Ok(())
    }

    /// Close all files, wait for uploads (remote lakes) and return the data files to commit.
    ///
    /// # Errors
    /// The first encoder, file-system or upload error; all files of this writer are deleted.
    pub fn finish(mut self) -> Result<Vec<DataFile>> {
        if self.done {
            return Err(Error::internal(self.table, "finish after the writer failed"));
        }
        self.done = true;
        drop(self.tx.take());
        let (files, error) = self.join_encoders();
        if let Some(err) = error {
            self.discard(&files);
            return Err(err);
        }
        if let Some(err) = self.wait_uploads(&files) {
            self.discard(&files);
            return Err(err);
        }
        Ok(files)
    }

    /// Join every encoder; return all files they closed and the first error.
    fn join_encoders(&mut self) -> (Vec<DataFile>, Option<Error>) {
        let mut files = Vec::new();
        let mut error = None;
        for handle in self.threads.drain(..) {
            match handle.join() {
                Ok(output) => {
                    files.extend(output.files);
                    if let Some(e) = output.error {
                        error.get_or_insert(e);
                    }
                }
                Err(_) => {
                    error.get_or_insert(Error::internal(self.table, "an encoder thread panicked"));
                }
            }
        }
        (files, error)
    }

    /// Wait for the uploads of `files` (remote lakes: every closed file is being uploaded);
    /// return the first failure.
    fn wait_uploads(&mut self, files: &[DataFile]) -> Option<Error> {
        let rx = self.upload_results.take()?;
        let mut first = None;
        for _ in 0..files.len() {
            match rx.recv() {
                Ok((_, Ok(()))) => {}
                Ok((_, Err(e))) => {
                    first.get_or_insert(e);
                }
                Err(_) => {
                    first.get_or_insert(Error::internal(self.table, "upload runtime stopped"));
                    break;
                }
            }
        }
        first
    }

    /// Delete every file of this writer (best effort).
    fn discard(&self, files: &[DataFile]) {
        match self.sink.as_ref() {
            Sink::Local { table_dir } => {
                for f in files {
                    Sink::discard_local(&table_dir.join(f.path()));
                }
            }
            Sink::Remote(_) => {
                let paths = files.iter().map(|f| f.path().to_string()).collect();
                self.sink.discard_remote(self.table, paths);
            }
        }
    }

    /// Stop everything, delete all files, return the first error.
    fn fail(&mut self) -> Error {
        self.done = true;
        self.shared.abort.store(true, Ordering::Release);
        drop(self.tx.take());
        let (files, error) = self.join_encoders();
        // Uploads still running finish or fail; their files are deleted either way.
        let _ = self.wait_uploads(&files);
        self.discard(&files);
        error.unwrap_or_else(|| Error::internal(self.table, "the writer was stopped"))
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.fail();
        }
    }
}

/// One encoder thread's state.
struct Encoder {
    table: Table,
    props: WriterProperties,
    schema: SchemaRef,
    target_rows: u64,
    max_open: usize,
    sink: Arc<Sink>,
    open: HashMap<PartitionKey, OpenFile>,
    tick: u64,
    output: EncoderOutput,
}

/// A data file being written.
struct OpenFile {
    writer: ArrowWriter<File>,
    rel_path: String,
    local: PathBuf,
    rows: u64,
    nulls: Vec<u64>,
    last_used: u64,
}

impl Encoder {
    /// Encode pieces until the queue closes; on error or abort abandon the open files.
    fn run(mut self, rx: &Mutex<Receiver<Piece>>, shared: &Shared) -> EncoderOutput {
        let result = self.drain(rx, shared);
        if let Err(e) = result {
            shared.failed.store(true, Ordering::Release);
            self.output.error = Some(e);
        }
        if self.output.error.is_some() || shared.abort.load(Ordering::Acquire) {
            self.discard_open();
        }
        self.output
    }

    fn drain(&mut self, rx: &Mutex<Receiver<Piece>>, shared: &Shared) -> Result<()> {
        loop {
            let next = {
                let guard =
                    rx.lock().map_err(|_| Error::internal(self.table, "encoder queue poisoned"))?;
                guard.recv()
            };
            let Ok(piece) = next else {
                break;
            };
            if shared.abort.load(Ordering::Acquire) {
                continue;
            }
            self.write(piece)?;
        }
        if shared.abort.load(Ordering::Acquire) {
            return Ok(());
        }
        let keys: Vec<PartitionKey> = self.open.keys().copied().collect();
        for key in keys {
            self.close(key)?;
        }
        Ok(())
    }

    fn write(&mut self, piece: Piece) -> Result<()> {
        let Piece { key, mut batch } = piece;
        let (table, target_rows) = (self.table, self.target_rows);
        while batch.num_rows() > 0 {
            self.tick += 1;
            let tick = self.tick;
            let file = self.file_for(key)?;
            file.last_used = tick;
            let room = (target_rows - file.rows) as usize;
            let take = room.min(batch.num_rows());
            let part = batch.slice(0, take);
            batch = batch.slice(take, batch.num_rows() - take);
            for (n, column) in file.nulls.iter_mut().zip(part.columns()) {
                *n += column.null_count() as u64;
            }
            file.writer.write(&part).map_err(|e| Error::Parquet {
                table,
                path: file.rel_path.clone(),
                source: Box::new(e),
            })?;
            file.rows += take as u64;
            if file.rows >= target_rows {
                self.close(key)?;
            }
        }
        Ok(())
    }

    /// The open file of partition `key`, opening one (and closing the least recently used one
    /// beyond the limit) when needed.
    fn file_for(&mut self, key: PartitionKey) -> Result<&mut OpenFile> {
        if !self.open.contains_key(&key) {
            if self.open.len() >= self.max_open
                && let Some(lru) =
                    self.open.iter().min_by_key(|(_, f)| f.last_used).map(|(k, _)| *k)
            {
                self.close(lru)?;
            }
            let rel_path =
                format!("{}/part-{}.zstd.parquet", key.dir(), uuid::Uuid::new_v4().simple());
            let (file, local) = self.sink.create(&rel_path)?;
            let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(self.props.clone()))
                .map_err(|e| Error::Parquet {
                    table: self.table,
                    path: rel_path.clone(),
                    source: Box::new(e),
                })?;
            let nulls = vec![0; self.schema.fields().len()];
            self.open
                .insert(key, OpenFile { writer, rel_path, local, rows: 0, nulls, last_used: 0 });
        }
        self.open.get_mut(&key).ok_or_else(|| Error::internal(self.table, "open file vanished"))
    }

    /// Close the file of partition `key`: write the footer, compute its Delta statistics and
    /// publish it.
    fn close(&mut self, key: PartitionKey) -> Result<()> {
        let Some(file) = self.open.remove(&key) else {
            return Ok(());
        };
        let OpenFile { writer, rel_path, local, rows, nulls, .. } = file;
        let meta = match writer.close() {
            Ok(meta) => meta,
            Err(e) => {
                Sink::discard_local(&local);
                return Err(Error::Parquet {
                    table: self.table,
                    path: rel_path,
                    source: Box::new(e),
                });
            }
        };
        let size = std::fs::metadata(&local).map_err(|e| Error::io(&local, e))?.len();
        let stats = delta_stats(self.table, &meta, &nulls, rows);
        let data_file = DataFile::new(self.table, rel_path.clone(), key, size, rows, stats);
        self.output.files.push(data_file);
        self.sink.publish(local, rel_path);
        Ok(())
    }

    /// Abandon the open files (their local files are deleted).
    fn discard_open(&mut self) {
        for (_, file) in self.open.drain() {
            drop(file.writer);
            Sink::discard_local(&file.local);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_deserialize_with_defaults_and_reject_unknown_fields() {
        let opts: WriterOptions =
            serde_json::from_str(r#"{"encoder_threads": 3, "zstd_level": 3}"#).expect("options");
        assert_eq!(opts.encoder_threads, 3);
        assert_eq!(opts.target_file_rows, default_target_file_rows());
        assert!(opts.validate().is_ok());
        assert!(serde_json::from_str::<WriterOptions>(r#"{"threads": 3}"#).is_err());
        let bad = WriterOptions { encoder_threads: 0, ..WriterOptions::default() };
        assert!(matches!(bad.validate(), Err(Error::Options { .. })));
        let bad = WriterOptions { zstd_level: 0, ..WriterOptions::default() };
        assert!(bad.validate().is_err());
    }
}
