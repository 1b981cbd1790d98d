//! Lake maintenance on a schedule: compaction of the small files streaming commits make, and
//! retention (partition drop + vacuum).
//!
//! Both are single Delta commits (OPTIMIZE removes and adds files with `dataChange=false`;
//! retention removes whole partitions), so queries running meanwhile see the table before or
//! after, never in between, and the service's own appends keep committing concurrently (an
//! append does not conflict with either). Files taken out of the table are deleted only after
//! `vacuum_grace`, so a query still reading an older snapshot keeps working.
//!
//! One instance of a consumer group runs maintenance: the one owning partition 0 of the first
//! `[[kafka]]` section's first topic (`Ctx::maintenance_leader`). Two concurrent OPTIMIZE runs
//! on one table are not safe with delta-rs (both may rewrite the same files: duplicated rows),
//! so a revocation of that partition waits for a running compaction before the partition goes.

use std::sync::Arc;
use std::time::Duration;

use ztlake_normalize::Table;

use super::Ctx;

/// Run compaction and retention until shutdown.
pub(crate) async fn run(ctx: Arc<Ctx>) {
    let m = &ctx.config.maintenance;
    let far = Duration::from_secs(365 * 24 * 3600);
    let compact_every = if m.compact { m.compact_every } else { far };
    let retain_every = if m.retain_days.is_some() { m.retain_every } else { far };
    let start = tokio::time::Instant::now();
    let mut compact = tokio::time::interval_at(start + compact_every, compact_every);
    let mut retain = tokio::time::interval_at(start + retain_every, retain_every);
    compact.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    retain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = compact.tick() => {
                let _running = ctx.maintenance_lock.lock().await;
                compact_all(&ctx).await;
            }
            _ = retain.tick() => {
                let _running = ctx.maintenance_lock.lock().await;
                retain_all(&ctx).await;
            }
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// Whether this instance is the group's maintenance leader now.
fn leader(ctx: &Ctx) -> bool {
    ctx.maintenance_leader.load(std::sync::atomic::Ordering::Acquire)
}

/// Compact every table once (while this instance leads maintenance).
pub(crate) async fn compact_all(ctx: &Ctx) {
    for table in Table::ALL {
        if !leader(ctx) {
            return;
        }
        match ctx.lake.compact(table, ctx.config.maintenance.compaction.clone()).await {
            Ok(r) => {
                ctx.metrics.maintenance("compact", table.name(), "ok");
                if r.files_removed > 0 {
                    tracing::info!(%table, before = r.files_before, after = r.files_after, version = ?r.version, "compacted");
                }
            }
            Err(e) => {
                ctx.metrics.maintenance("compact", table.name(), "error");
                tracing::warn!(%table, error = %e, "compaction failed; the next run retries");
            }
        }
    }
}

/// Apply retention to every table once.
pub(crate) async fn retain_all(ctx: &Ctx) {
    let Some(days) = ctx.config.maintenance.retain_days else { return };
    let today = chrono::Utc::now().date_naive();
    for table in Table::ALL {
        if !leader(ctx) {
            return;
        }
        match ctx.lake.retain(table, days, today, ctx.config.maintenance.vacuum_grace).await {
            Ok(r) => {
                ctx.metrics.maintenance("retain", table.name(), "ok");
                if !r.partitions_dropped.is_empty() || r.files_vacuumed > 0 {
                    tracing::info!(%table, dropped = r.partitions_dropped.len(), rows = r.rows_removed, vacuumed = r.files_vacuumed, "retention applied");
                }
            }
            Err(e) => {
                ctx.metrics.maintenance("retain", table.name(), "error");
                tracing::warn!(%table, error = %e, "retention failed; the next run retries");
            }
        }
    }
}
