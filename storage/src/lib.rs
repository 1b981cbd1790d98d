//! ztlake-storage: the lake, stage 3 of ingest → normalize → **storage** → detections.
//!
//! Every canonical table (`flows`, `signins`, `cert_events`, `quarantine`) is a Delta Lake table
//! at `<lake>/<table>/`, partitioned by `provider` and `date`, on any object store (`file://`,
//! `s3://`, `gs://`, `az://`). Data files are plain zstd Parquet in
//! `provider=<p>/date=<YYYY-MM-DD>/` folders, with statistics that let time and provider filters
//! prune. What the crate promises:
//!
//! - **Fast encoding**: [`TableWriter`] encodes canonical Arrow batches on several threads, each
//!   writing its own files, behind a bounded queue (backpressure, bounded memory).
//! - **Atomic, idempotent commits**: [`Lake::commit`] adds a writer's files in one Delta commit
//!   that records each source's progress as a `txn` action; a replay commits nothing.
//! - **Partition values never come raw from a record**: providers outside the vocabulary and
//!   malformed dates are rejected before anything is written.
//! - **Maintenance**: [`Lake::compact`] (atomic OPTIMIZE), [`Lake::retain`] (partition drop +
//!   vacuum), [`Lake::stats`] (from the log alone).
//! - **Query**: [`Lake::register`] exposes the tables to DataFusion with file pruning.
//! - **Upserts**: [`Lake::upsert`] replaces rows by key in one commit (alerts).
//!
//! ```no_run
//! # async fn demo(batch: arrow::array::RecordBatch) -> ztlake_storage::Result<()> {
//! use ztlake_normalize::schema::Table;
//! use ztlake_storage::{Lake, Txn, WriterOptions};
//!
//! let lake = Lake::open("./lake").await?;
//! let mut writer = lake.writer(Table::Flows, WriterOptions::default())?;
//! // The writer is blocking: use it from a plain thread or spawn_blocking.
//! let files = tokio::task::spawn_blocking(move || {
//!     writer.write(batch)?;
//!     writer.finish()
//! })
//! .await
//! .expect("encoder task")?;
//! let txns = vec![Txn::new("file:0123abcd", 5_000)];
//! lake.commit(Table::Flows, files, txns, serde_json::Map::new()).await?;
//! # Ok(())
//! # }
//! ```

mod commit;
mod error;
mod lake;
mod layout;
mod maintenance;
mod partition;
mod query;
mod sink;
mod stats;
mod upsert;
mod writer;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

pub use commit::{CommitOutcome, DataFile, Txn};
pub use error::{Error, ErrorKind, Result};
pub use lake::Lake;
pub use layout::writer_properties;
pub use maintenance::{
    CompactOptions, CompactReport, ORPHAN_MIN_AGE, RetainReport, TableStats,
    default_target_file_bytes,
};
pub use upsert::UpsertOutcome;
pub use writer::{
    TableWriter, WriterOptions, default_encoder_threads, default_max_open_files,
    default_queue_depth, default_target_file_rows, default_zstd_level,
};

/// The Delta table type returned by [`Lake::table`].
pub use deltalake::DeltaTable;
