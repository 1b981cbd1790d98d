//! Atomic, idempotent commits of data files (storage stage).
//!
//! [`Lake::commit`] turns the [`DataFile`]s of a [`crate::TableWriter`] into ONE Delta commit:
//! their Add actions (with statistics), one `txn` action per source (`appId` → version, e.g.
//! `file:<fingerprint>` → lines consumed) and commitInfo metadata (sources, line ranges). A
//! reader sees all of it or nothing. A source position may be acknowledged once the commit
//! holding it returned [`CommitOutcome::Committed`] or [`CommitOutcome::AlreadyCommitted`].
//!
//! Replays commit nothing: when every txn's recorded version is already at or past the one
//! given — checked against the latest table version, and again after a conflict with a
//! concurrent writer recording the same appId — the commit is skipped and its data files, now
//! orphans, are deleted.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use deltalake::DeltaTable;
use deltalake::DeltaTableError;
use deltalake::kernel::transaction::{
    CommitBuilder, CommitConflictError, CommitProperties, TransactionError,
};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use object_store::ObjectStoreExt as _;
use object_store::path::Path;
use serde_json::{Map, Value};
use ztlake_normalize::schema::{PARTITION_COLUMNS, Provider, Table};

use crate::error::{Error, Result};
use crate::lake::{Lake, txn_versions_of};
use crate::maintenance::version_of;
use crate::partition::PartitionKey;

/// Attempts of one commit when concurrent writers record the same appId.
const COMMIT_ATTEMPTS: usize = 5;

/// A Delta application transaction: "source `app_id` has been consumed up to `version`".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Txn {
    /// Stable id of the source (e.g. `file:<hex fingerprint>`).
    pub app_id: String,
    /// Monotonic progress of the source (e.g. lines consumed).
    pub version: i64,
}

impl Txn {
    /// A transaction for `app_id` at `version`.
    pub fn new(app_id: impl Into<String>, version: i64) -> Txn {
        Txn { app_id: app_id.into(), version }
    }
}

/// What [`Lake::commit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new table version holds the files and the txns.
    Committed {
        /// The new table version.
        version: i64,
        /// Data files added.
        files: usize,
        /// Rows added.
        rows: u64,
    },
    /// Every txn was already recorded at this version or later: nothing was committed and the
    /// files were deleted.
    AlreadyCommitted,
    /// No files and no txns: nothing to do.
    Empty,
}

/// A data file written by a [`crate::TableWriter`], ready to be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    table: Table,
    path: String,
    key: PartitionKey,
    size: u64,
    rows: u64,
    stats: String,
}

impl DataFile {
    pub(crate) fn new(
        table: Table,
        path: String,
        key: PartitionKey,
        size: u64,
        rows: u64,
        stats: String,
    ) -> DataFile {
        DataFile { table, path, key, size, rows, stats }
    }

    /// The table it belongs to.
    pub fn table(&self) -> Table {
        self.table
    }

    /// Path relative to the table root: `provider=<p>/date=<d>/part-<uuid>.zstd.parquet`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `provider` partition value.
    pub fn provider(&self) -> Provider {
        self.key.provider
    }

    /// The `date` partition value.
    pub fn date(&self) -> NaiveDate {
        self.key.date
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Rows.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The Delta statistics JSON of its Add action.
    pub fn stats(&self) -> &str {
        &self.stats
    }

    fn to_add(&self, now_ms: i64) -> Add {
        let partition_values = HashMap::from([
            ("provider".to_string(), Some(self.key.provider.as_str().to_string())),
            ("date".to_string(), Some(self.key.date_value())),
        ]);
        Add {
            path: self.path.clone(),
            partition_values,
            size: i64::try_from(self.size).unwrap_or(i64::MAX),
            modification_time: now_ms,
            data_change: true,
            stats: Some(self.stats.clone()),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        }
    }
}

/// Where the txns of a commit stand in the table.
enum TxnState {
    /// At least one txn advances and none goes back.
    New,
    /// Every txn is recorded at its version or later.
    Done,
    /// One txn is recorded past its version while another advances.
    Regression { app_id: String, given: i64, recorded: i64 },
}

fn txn_state(txns: &[Txn], recorded: &HashMap<String, i64>) -> TxnState {
    let mut all_done = !txns.is_empty();
    let mut regression = None;
    for txn in txns {
        match recorded.get(&txn.app_id) {
            Some(&r) if r >= txn.version => {
                if r > txn.version && regression.is_none() {
                    regression = Some((txn.app_id.clone(), txn.version, r));
                }
            }
            _ => all_done = false,
        }
    }
    match (all_done, regression) {
        (true, _) => TxnState::Done,
        (false, Some((app_id, given, recorded))) => {
            TxnState::Regression { app_id, given, recorded }
        }
        (false, None) => TxnState::New,
    }
}

fn is_concurrent_txn(e: &DeltaTableError) -> bool {
    matches!(
        e,
        DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction)
        }
    )
}

/// Refuse data files of another table than `t` (nothing is deleted).
fn own_files(t: Table, files: &[DataFile]) -> Result<()> {
    match files.iter().find(|f| f.table != t) {
        Some(f) => {
            Err(Error::internal(t, format!("data file {} belongs to table {}", f.path, f.table)))
        }
        None => Ok(()),
    }
}

impl Lake {
    /// Atomically commit `files` to table `t` as one Delta commit carrying `txns` and the
    /// commitInfo metadata `info`. Creates the table when missing.
    ///
    /// Idempotent: when every txn is already recorded at its version or later, nothing is
    /// committed, the files are deleted and [`CommitOutcome::AlreadyCommitted`] is returned.
    /// Empty `files` with txns still commit (the progress of a source that produced no rows for
    /// this table is recorded).
    ///
    /// # Errors
    /// [`Error::Internal`] for files of another table or duplicate app ids (nothing is
    /// deleted); [`Error::TxnRegression`] when one txn goes back while another advances
    /// (committing would duplicate rows; the files are deleted); [`Error::Delta`] when the
    /// commit fails (retryable: the files stay until the caller retries or vacuum removes them).
    pub async fn commit(
        &self,
        t: Table,
        files: Vec<DataFile>,
        txns: Vec<Txn>,
        info: Map<String, Value>,
    ) -> Result<CommitOutcome> {
        if files.is_empty() && txns.is_empty() {
            return Ok(CommitOutcome::Empty);
        }
        own_files(t, &files)?;
        let mut seen = HashSet::new();
        if let Some(dup) = txns.iter().find(|txn| !seen.insert(txn.app_id.as_str())) {
            return Err(Error::internal(
                t,
                format!("txn {} appears twice in one commit", dup.app_id),
            ));
        }
        let app_ids: Vec<String> = txns.iter().map(|txn| txn.app_id.clone()).collect();
        let rows: u64 = files.iter().map(|f| f.rows).sum();

        for attempt in 1..=COMMIT_ATTEMPTS {
            let table = self.table(t).await?;
            let recorded = txn_versions_of(self, t, &table, &app_ids).await?;
            match txn_state(&txns, &recorded) {
                TxnState::Done => {
                    self.delete_orphans(t, &table, &files).await;
                    tracing::info!(table = %t, files = files.len(), "commit skipped: already committed");
                    return Ok(CommitOutcome::AlreadyCommitted);
                }
                TxnState::Regression { app_id, given, recorded } => {
                    self.delete_orphans(t, &table, &files).await;
                    return Err(Error::TxnRegression {
                        url: self.table_url(t).to_string(),
                        table: t,
                        app_id,
                        given,
                        recorded,
                    });
                }
                TxnState::New => {}
            }
            match self.try_commit(t, &table, &files, &txns, &info, None).await {
                Ok(version) => {
                    tracing::debug!(table = %t, version, files = files.len(), rows, "committed");
                    return Ok(CommitOutcome::Committed { version, files: files.len(), rows });
                }
                Err(e) if is_concurrent_txn(&e) && attempt < COMMIT_ATTEMPTS => {
                    tracing::info!(table = %t, attempt, "a concurrent commit recorded the same source, re-checking");
                }
                Err(e) => return Err(self.delta_err(t, "commit", e)),
            }
        }
        Err(Error::internal(t, "commit attempts exhausted"))
    }

    /// Append `files` to table `t` only if no commit landed after `version` (the version a
    /// caller read before deciding that these rows are new): one Delta commit without retries.
    /// Returns `false`, with the files deleted, when the table moved on or another writer won
    /// the race — the caller falls back to a merge. Creates the table when missing (`version`
    /// is then the new table's).
    ///
    /// # Errors
    /// [`Error::Internal`] for files of another table; [`Error::Delta`] when the commit fails
    /// for another reason (the files stay, as with [`Lake::commit`]).
    pub async fn append_at(
        &self,
        t: Table,
        files: Vec<DataFile>,
        version: i64,
        info: Map<String, Value>,
    ) -> Result<bool> {
        own_files(t, &files)?;
        let table = self.table(t).await?;
        let moved = version_of(&table) != Some(version);
        let committed = if moved {
            None
        } else {
            match self.try_commit(t, &table, &files, &[], &info, Some(0)).await {
                Ok(v) => Some(v),
                Err(DeltaTableError::Transaction {
                    source: TransactionError::MaxCommitAttempts(_),
                })
                | Err(DeltaTableError::VersionAlreadyExists(_)) => None,
                Err(e) => return Err(self.delta_err(t, "commit", e)),
            }
        };
        match committed {
            Some(v) => {
                tracing::debug!(table = %t, version = v, files = files.len(), "appended");
                Ok(true)
            }
            None => {
                let table = self.table(t).await?;
                self.delete_orphans(t, &table, &files).await;
                tracing::debug!(table = %t, read = version, "table moved on; append not committed");
                Ok(false)
            }
        }
    }

    /// The version table `t` is at now (created when missing).
    ///
    /// # Errors
    /// [`Error::Delta`] when the table cannot be loaded or created.
    pub async fn version(&self, t: Table) -> Result<i64> {
        let table = self.table(t).await?;
        Ok(version_of(&table).unwrap_or(0))
    }

    /// One commit attempt on top of `table`'s state; returns the new version. `retries`:
    /// how often deltalake may rebase onto concurrent commits (its default when `None`).
    async fn try_commit(
        &self,
        t: Table,
        table: &DeltaTable,
        files: &[DataFile],
        txns: &[Txn],
        info: &Map<String, Value>,
        retries: Option<usize>,
    ) -> Result<i64, DeltaTableError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let actions: Vec<Action> = files.iter().map(|f| Action::Add(f.to_add(now_ms))).collect();
        let transactions = txns
            .iter()
            .map(|txn| Transaction::new_with_last_update(&txn.app_id, txn.version, Some(now_ms)))
            .collect();
        let mut properties = CommitProperties::default()
            .with_application_transactions(transactions)
            .with_metadata(info.clone());
        if let Some(n) = retries {
            properties = properties.with_max_retries(n);
        }
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(PARTITION_COLUMNS.iter().map(|c| c.to_string()).collect()),
            predicate: None,
        };
        let state = table.snapshot()?;
        let post = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(state), table.log_store(), operation)
            .into_prepared_commit_future()
            .await?
            .await?;
        // The commit is durable now. Post-commit hooks (checkpoint, log cleanup) failing must
        // not turn it into an error: a retry would see AlreadyCommitted and delete live files.
        let version = i64::try_from(post.version).unwrap_or(i64::MAX);
        if let Err(e) = post.await {
            tracing::warn!(table = %t, version, error = %e, "post-commit hook failed (checkpoint or log cleanup)");
        }
        Ok(version)
    }

    /// Delete data files that will never be committed, unless the table refers to them.
    async fn delete_orphans(&self, t: Table, table: &DeltaTable, files: &[DataFile]) {
        if files.is_empty() {
            return;
        }
        let live: HashSet<String> = match table.snapshot() {
            Ok(state) => state.log_data().iter().map(|f| f.path().to_string()).collect(),
            Err(_) => return,
        };
        let store = table.object_store();
        for f in files.iter().filter(|f| !live.contains(&f.path)) {
            match store.delete(&Path::from(f.path.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(table = %t, path = %f.path, error = %e, "could not delete orphan data file");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn txn_state_classifies() {
        let txns = vec![Txn::new("a", 10), Txn::new("b", 5)];
        assert!(matches!(txn_state(&txns, &recorded(&[])), TxnState::New));
        assert!(matches!(txn_state(&txns, &recorded(&[("a", 10), ("b", 5)])), TxnState::Done));
        assert!(matches!(txn_state(&txns, &recorded(&[("a", 12), ("b", 9)])), TxnState::Done));
        assert!(matches!(txn_state(&txns, &recorded(&[("a", 10), ("b", 4)])), TxnState::New));
        assert!(matches!(
            txn_state(&txns, &recorded(&[("a", 11), ("b", 4)])),
            TxnState::Regression { .. }
        ));
        assert!(matches!(txn_state(&[], &recorded(&[("a", 1)])), TxnState::New));
    }
}
