//! Upserts: insert or replace rows by a key column, atomically (storage stage).
//!
//! Alerts are few and change (their count and last-seen grow), so the `alerts` table is kept
//! with one row per `alert_id`: [`Lake::upsert`] runs a Delta MERGE (through DataFusion) that
//! replaces the rows whose key matches and inserts the others, in one commit. Rows may move to
//! another partition (a changed `time` changes its `date`). Re-running the same upsert rewrites
//! the same values; callers that want "nothing new" skip unchanged rows first.

use std::collections::HashSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use datafusion::prelude::{SessionContext, col};
use ztlake_normalize::schema::Table;

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::layout::writer_properties;
use crate::partition::check_schema;
use crate::writer::default_zstd_level;

/// What [`Lake::upsert`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertOutcome {
    /// Rows inserted (new keys).
    pub inserted: usize,
    /// Rows replaced (existing keys).
    pub updated: usize,
}

impl Lake {
    /// Insert the rows of `batch` into table `t`, replacing every existing row whose `key`
    /// column equals a row's key. One atomic commit; creates the table when missing.
    ///
    /// # Errors
    /// [`Error::Schema`] when the batch does not have the canonical schema, the key column is not
    /// text or a key is NULL or repeated; [`Error::Delta`] when the merge fails.
    pub async fn upsert(&self, t: Table, batch: RecordBatch, key: &str) -> Result<UpsertOutcome> {
        if batch.num_rows() == 0 {
            return Ok(UpsertOutcome::default());
        }
        check_schema(t, &batch)?;
        let bad = |detail: String| Error::Schema { table: t, detail };
        let keys = batch.column_by_name(key).ok_or_else(|| bad(format!("no key column {key}")))?;
        if keys.data_type() != &DataType::Utf8 {
            return Err(bad(format!("key column {key} must be text")));
        }
        let keys = keys.as_string::<i32>();
        let mut seen = HashSet::with_capacity(keys.len());
        for i in 0..keys.len() {
            if keys.is_null(i) {
                return Err(bad(format!("key column {key} is NULL in row {i}")));
            }
            if !seen.insert(keys.value(i)) {
                return Err(bad(format!("key {:?} appears twice in one upsert", keys.value(i))));
            }
        }
        // The merge writes its files with the lake's layout (zstd, the per-column dictionary and
        // statistics choices), as every other writer does, not with deltalake's defaults.
        let properties = writer_properties(t, default_zstd_level())?;
        let table = self.table(t).await?;
        let ctx = SessionContext::new();
        let df_err = |e| Error::DataFusion {
            url: self.table_url(t).to_string(),
            table: t,
            source: Box::new(e),
        };
        let source = ctx.read_batch(batch).map_err(df_err)?;
        let names: Vec<String> = t.schema().fields().iter().map(|f| f.name().clone()).collect();
        let predicate = col(format!("target.{key}")).eq(col(format!("source.{key}")));
        let merge = table
            .merge(source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_writer_properties(properties)
            .when_matched_update(|u| {
                names.iter().fold(u, |u, n| u.update(n.as_str(), col(format!("source.{n}"))))
            })
            .and_then(|m| {
                m.when_not_matched_insert(|i| {
                    names.iter().fold(i, |i, n| i.set(n.as_str(), col(format!("source.{n}"))))
                })
            })
            .map_err(|e| self.delta_err(t, "upsert", e))?;
        let (table, metrics) = merge.await.map_err(|e| self.delta_err(t, "upsert", e))?;
        self.remember(t, table).await;
        Ok(UpsertOutcome {
            inserted: metrics.num_target_rows_inserted,
            updated: metrics.num_target_rows_updated,
        })
    }
}
