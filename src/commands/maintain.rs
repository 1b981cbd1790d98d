//! `ztlake compact` and `ztlake retain`: keep the lake healthy.

use std::process::ExitCode;

use anyhow::Result;
use ztlake_storage::{CompactOptions, Lake};

use crate::cli::{CompactArgs, RetainArgs};
use crate::commands::tables_arg;

/// Merge small files per partition in each table.
pub async fn compact(lake: &Lake, args: CompactArgs) -> Result<ExitCode> {
    for table in tables_arg(args.table.as_deref())? {
        if !lake.exists(table).await? {
            continue;
        }
        let r = lake.compact(table, CompactOptions::default()).await?;
        println!(
            "{table}: {} files -> {} ({} partitions rewritten, {} files merged)",
            r.files_before, r.files_after, r.partitions_optimized, r.files_removed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Drop partitions older than the retention window, then vacuum.
pub async fn retain(lake: &Lake, args: RetainArgs) -> Result<ExitCode> {
    let today = chrono::Utc::now().date_naive();
    for table in tables_arg(args.table.as_deref())? {
        if !lake.exists(table).await? {
            continue;
        }
        let r = lake.retain(table, args.days, today, args.vacuum_grace).await?;
        println!(
            "{table}: dropped {} partitions before {} ({} files, {} rows), vacuumed {} files",
            r.partitions_dropped.len(),
            r.cutoff,
            r.files_removed,
            r.rows_removed,
            r.files_vacuumed
        );
    }
    Ok(ExitCode::SUCCESS)
}
