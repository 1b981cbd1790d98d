//! Lake maintenance: statistics, compaction and retention (storage stage).
//!
//! - [`Lake::stats`] counts rows, files, bytes and partitions of the current snapshot from the
//!   Delta log alone (Add `numRecords`), without reading data.
//! - [`Lake::compact`] merges small files per partition (deltalake's OPTIMIZE), as one atomic
//!   commit that changes no data: readers see the old files or the new ones, never both.
//! - [`Lake::retain`] drops whole partitions older than N days with a metadata-only commit
//!   (Remove actions, no rewrite), then vacuums: files tombstoned longer ago than the grace
//!   period are deleted, and data files no commit ever referenced (a crashed writer's) once
//!   they are older than both the grace and [`ORPHAN_MIN_AGE`].

use std::collections::BTreeSet;
use std::num::NonZeroU64;
use std::time::Duration;

use chrono::NaiveDate;
use deltalake::DeltaTable;
use deltalake::kernel::Action;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::DeltaOperation;
use deltalake::table::config::TablePropertiesExt as _;
use futures::StreamExt as _;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;
use serde_json::Value;
use ztlake_normalize::schema::{Provider, Table};

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::layout::writer_properties;
use crate::partition::PartitionKey;
use crate::writer::{default_encoder_threads, default_zstd_level};

/// Untracked data files younger than this are never vacuumed, whatever the grace: they may
/// belong to a writer that has not committed yet.
pub const ORPHAN_MIN_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Attempts of a retention commit when it races with compaction.
const RETAIN_ATTEMPTS: usize = 3;

/// Row and file counts of a table's current snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Table version (None: the table does not exist).
    pub version: Option<i64>,
    /// Rows, from the Add statistics.
    pub rows: u64,
    /// Data files.
    pub files: usize,
    /// Bytes of data files.
    pub bytes: u64,
    /// Distinct (provider, date) partitions.
    pub partitions: usize,
    /// Files without a row count in their statistics (not counted in `rows`).
    pub files_without_stats: usize,
}

/// Options of [`Lake::compact`] (deserializable, so they can sit in the service config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactOptions {
    /// Files are merged up to about this size in bytes (default 256 MiB).
    #[serde(default = "default_target_file_bytes")]
    pub target_file_bytes: u64,
    /// zstd level of the merged files (default 1).
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// Partitions compacted in parallel (default: available parallelism).
    #[serde(default = "default_encoder_threads")]
    pub max_concurrent_tasks: usize,
}

/// Default size of compacted files: 256 MiB.
pub fn default_target_file_bytes() -> u64 {
    256 * 1024 * 1024
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            target_file_bytes: default_target_file_bytes(),
            zstd_level: default_zstd_level(),
            max_concurrent_tasks: default_encoder_threads(),
        }
    }
}

/// What [`Lake::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Data files before.
    pub files_before: usize,
    /// Data files after.
    pub files_after: usize,
    /// Files removed (merged into others).
    pub files_removed: u64,
    /// Files added.
    pub files_added: u64,
    /// Partitions rewritten.
    pub partitions_optimized: u64,
    /// Table version after compaction (None: the table does not exist).
    pub version: Option<i64>,
}

/// What [`Lake::retain`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainReport {
    /// Partitions dated before this day were dropped.
    pub cutoff: NaiveDate,
    /// The partitions dropped.
    pub partitions_dropped: Vec<(Provider, NaiveDate)>,
    /// Data files removed from the table.
    pub files_removed: usize,
    /// Rows removed, from the Add statistics.
    pub rows_removed: u64,
    /// Files deleted from storage by vacuum.
    pub files_vacuumed: usize,
    /// Table version after retention (None: the table does not exist).
    pub version: Option<i64>,
}

/// The version `table` is at, as the lake's signed version numbers.
pub(crate) fn version_of(table: &DeltaTable) -> Option<i64> {
    table.version().and_then(|v| i64::try_from(v).ok())
}

impl Lake {
    /// Row and file counts of table `t`'s current snapshot, from the Delta log only.
    pub async fn stats(&self, t: Table) -> Result<TableStats> {
        let Some(table) = self.existing(t).await? else {
            return Ok(TableStats::default());
        };
        let state = table.snapshot().map_err(|e| self.delta_err(t, "load", e))?;
        let mut stats = TableStats { version: version_of(&table), ..TableStats::default() };
        let mut partitions = BTreeSet::new();
        for file in state.log_data().iter() {
            stats.files += 1;
            stats.bytes += u64::try_from(file.size()).unwrap_or(0);
            match file.num_records() {
                Some(n) => stats.rows += n as u64,
                None => stats.files_without_stats += 1,
            }
            let values = file.partition_values_map();
            partitions.insert((
                values.get("provider").cloned().flatten(),
                values.get("date").cloned().flatten(),
            ));
        }
        stats.partitions = partitions.len();
        Ok(stats)
    }

    /// Merge small files of table `t` per partition, atomically (OPTIMIZE).
    pub async fn compact(&self, t: Table, opts: CompactOptions) -> Result<CompactReport> {
        let target = NonZeroU64::new(opts.target_file_bytes).ok_or_else(|| Error::Options {
            detail: "target_file_bytes must be positive".into(),
        })?;
        if opts.max_concurrent_tasks == 0 {
            return Err(Error::Options { detail: "max_concurrent_tasks must be positive".into() });
        }
        let props = writer_properties(t, opts.zstd_level)?;
        let Some(table) = self.existing(t).await? else {
            return Ok(CompactReport::default());
        };
        let files_before =
            table.snapshot().map_err(|e| self.delta_err(t, "load", e))?.log_data().num_files();
        let (table, metrics) = table
            .optimize()
            .with_target_size(target)
            .with_writer_properties(props)
            .with_max_concurrent_tasks(opts.max_concurrent_tasks)
            .await
            .map_err(|e| self.delta_err(t, "compact", e))?;
        let files_after =
            table.snapshot().map_err(|e| self.delta_err(t, "load", e))?.log_data().num_files();
        let report = CompactReport {
            files_before,
            files_after,
            files_removed: metrics.num_files_removed,
            files_added: metrics.num_files_added,
            partitions_optimized: metrics.partitions_optimized,
            version: version_of(&table),
        };
        self.remember(t, table).await;
        Ok(report)
    }

    /// Drop the partitions of table `t` dated before `today - days` (a metadata-only delete),
    /// then vacuum files tombstoned longer ago than `vacuum_grace` and untracked files older
    /// than both `vacuum_grace` and [`ORPHAN_MIN_AGE`].
    ///
    /// A grace below the table's `delta.deletedFileRetentionDuration` (7 days by default) is
    /// allowed; readers still running on a snapshot older than the grace may then fail.
    pub async fn retain(
        &self,
        t: Table,
        days: u32,
        today: NaiveDate,
        vacuum_grace: Duration,
    ) -> Result<RetainReport> {
        let cutoff = today
            .checked_sub_days(chrono::Days::new(u64::from(days)))
            .ok_or_else(|| Error::Options { detail: format!("{days} days before {today}") })?;
        let mut report = RetainReport {
            cutoff,
            partitions_dropped: Vec::new(),
            files_removed: 0,
            rows_removed: 0,
            files_vacuumed: 0,
            version: None,
        };
        if self.existing(t).await?.is_none() {
            return Ok(report);
        }
        for attempt in 1..=RETAIN_ATTEMPTS {
            match self.drop_partitions(t, cutoff, &mut report).await {
                Ok(()) => break,
                Err(e) if e.is_retryable() && attempt < RETAIN_ATTEMPTS => {
                    tracing::warn!(table = %t, error = %e, "retention commit raced, retrying");
                }
                Err(e) => return Err(e),
            }
        }
        let Some(table) = self.existing(t).await? else {
            return Ok(report);
        };
        let state = table.snapshot().map_err(|e| self.delta_err(t, "load", e))?;
        let minimum = state.table_config().deleted_file_retention_duration();
        let orphan_grace = vacuum_grace.max(ORPHAN_MIN_AGE);
        let mut table = table;
        for (mode, grace) in [(VacuumMode::Lite, vacuum_grace), (VacuumMode::Full, orphan_grace)] {
            let (vacuumed, deleted) = self.vacuum(t, table, mode, grace, grace >= minimum).await?;
            report.files_vacuumed += deleted;
            table = vacuumed;
        }
        report.version = version_of(&table);
        self.remember(t, table).await;
        Ok(report)
    }

    /// Vacuum `table` in `mode`, deleting files older than `grace`; returns the table and the
    /// number of files that existed and were deleted.
    ///
    /// Tombstones stay in the log for `delta.deletedFileRetentionDuration` after their files
    /// are gone, and deltalake would "delete" (and log a vacuum) them again on every run: a dry
    /// run first keeps only the files still there, and nothing happens when there are none.
    async fn vacuum(
        &self,
        t: Table,
        table: DeltaTable,
        mode: VacuumMode,
        grace: Duration,
        enforce_retention: bool,
    ) -> Result<(DeltaTable, usize)> {
        let period = chrono::Duration::from_std(grace)
            .map_err(|e| Error::Options { detail: format!("vacuum grace {grace:?}: {e}") })?;
        let (table, planned) = table
            .vacuum()
            .with_mode(mode.clone())
            .with_retention_period(period)
            .with_enforce_retention_duration(enforce_retention)
            .with_dry_run(true)
            .await
            .map_err(|e| self.delta_err(t, "vacuum", e))?;
        let store = table.object_store();
        let present = futures::stream::iter(planned.files_deleted)
            .map(|path| {
                let store = store.clone();
                async move { store.head(&Path::from(path.as_str())).await.is_ok() }
            })
            .buffer_unordered(16)
            .filter(|exists| futures::future::ready(*exists))
            .count()
            .await;
        if present == 0 {
            return Ok((table, 0));
        }
        let (table, _) = table
            .vacuum()
            .with_mode(mode)
            .with_retention_period(period)
            .with_enforce_retention_duration(enforce_retention)
            .await
            .map_err(|e| self.delta_err(t, "vacuum", e))?;
        Ok((table, present))
    }

    /// Remove every file of a partition dated before `cutoff`, in one commit.
    async fn drop_partitions(
        &self,
        t: Table,
        cutoff: NaiveDate,
        report: &mut RetainReport,
    ) -> Result<()> {
        let Some(table) = self.existing(t).await? else {
            return Ok(());
        };
        let state = table.snapshot().map_err(|e| self.delta_err(t, "load", e))?;
        let mut actions = Vec::new();
        let mut partitions = BTreeSet::new();
        let mut rows = 0u64;
        for file in state.log_data().iter() {
            let values = file.partition_values_map();
            let (Some(Some(provider)), Some(Some(date))) =
                (values.get("provider"), values.get("date"))
            else {
                continue;
            };
            let Some(key) = PartitionKey::parse(provider, date) else {
                continue;
            };
            if key.date < cutoff {
                rows += file.num_records().unwrap_or(0) as u64;
                partitions.insert((key.provider, key.date));
                actions.push(Action::Remove(file.remove_action(true)));
            }
        }
        report.files_removed = actions.len();
        report.rows_removed = rows;
        report.partitions_dropped = partitions.into_iter().collect();
        if actions.is_empty() {
            return Ok(());
        }
        let info = [
            ("ztlake.operation".to_string(), Value::from("retain")),
            ("ztlake.dateBefore".to_string(), Value::from(cutoff.format("%Y-%m-%d").to_string())),
        ];
        // No read predicate: appends racing with this commit (late rows of old days) do not
        // conflict; they are dropped by the next retention run.
        let operation = DeltaOperation::Delete { predicate: None };
        CommitBuilder::from(
            deltalake::kernel::transaction::CommitProperties::default().with_metadata(info),
        )
        .with_actions(actions)
        .build(Some(state), table.log_store(), operation)
        .await
        .map_err(|e| self.delta_err(t, "drop partitions", e))?;
        Ok(())
    }
}
