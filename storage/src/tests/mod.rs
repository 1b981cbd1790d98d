//! Integration tests of the lake: real deltalake and DataFusion on temporary directories.

mod evolution;
mod idempotence;
mod maintenance;
mod pruning;
mod remote;
mod upsert;
mod write;

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use serde_json::Map;
use ztlake_normalize::schema::Table;

use crate::test_util::{RowSpec, table_batch};
use crate::{CommitOutcome, DataFile, Lake, Txn, WriterOptions};

/// Writer options for tests: two encoders, small queue.
pub(crate) fn opts() -> WriterOptions {
    WriterOptions { encoder_threads: 2, queue_depth: 2, ..WriterOptions::default() }
}

/// Encode `batches` of `table` with `options` (on a blocking thread) and return the files.
pub(crate) async fn encode(
    lake: &Lake,
    table: Table,
    batches: Vec<RecordBatch>,
    options: WriterOptions,
) -> Vec<DataFile> {
    let mut writer = lake.writer(table, options).expect("writer");
    tokio::task::spawn_blocking(move || {
        for batch in batches {
            writer.write(batch).expect("write");
        }
        writer.finish().expect("finish")
    })
    .await
    .expect("encoder task")
}

/// Write one batch of `rows` (event uids from `offset`) and commit it with `txns`.
pub(crate) async fn write_rows(
    lake: &Lake,
    table: Table,
    rows: &[RowSpec<'_>],
    offset: usize,
    txns: Vec<Txn>,
) -> CommitOutcome {
    let files = encode(lake, table, vec![table_batch(table, rows, offset)], opts()).await;
    lake.commit(table, files, txns, Map::new()).await.expect("commit")
}

/// Run `sql` on a fresh session with the lake registered.
pub(crate) async fn query(lake: &Lake, sql: &str) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    lake.register(&ctx).await.expect("register");
    ctx.sql(sql).await.expect("plan").collect().await.expect("run")
}

/// Pretty-printed result.
pub(crate) fn pretty(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).expect("pretty").to_string()
}

/// The physical plan of `sql`, as text.
pub(crate) async fn plan(lake: &Lake, sql: &str) -> String {
    let ctx = SessionContext::new();
    lake.register(&ctx).await.expect("register");
    let df = ctx.sql(sql).await.expect("plan");
    let physical = df.create_physical_plan().await.expect("physical plan");
    datafusion::physical_plan::displayable(physical.as_ref()).indent(true).to_string()
}

/// Every `.parquet` file under `dir`, relative to it, sorted.
pub(crate) fn parquet_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("_delta_log") {
                    walk(root, &path, out);
                }
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path.strip_prefix(root).expect("prefix").to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A temporary lake directory and the lake on it.
pub(crate) async fn temp_lake() -> (tempfile::TempDir, Lake, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("lake");
    let lake = Lake::open(root.to_str().expect("utf-8 path")).await.expect("open");
    (dir, lake, root)
}
