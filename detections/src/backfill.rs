//! Backfill: every rule over stored data for a time range, with the streaming semantics.
//!
//! The source is any DataFusion session holding the canonical tables under their names (the
//! lake, registered by the binary; or in-memory tables in rule tests) — this crate does not know
//! where the data lives. Streaming rules see exactly what they would see live: the engine is fed
//! the stored rows chunk by chunk (an hour by default), each chunk read with the rules' own
//! pushed-down filters and columns, and the clock advanced to the chunk's end once the whole
//! chunk is in, so every window is evaluated once, complete. The range is widened to whole
//! windows of every rule. Scheduled rules run at every multiple of their interval from the first
//! after `from` to the first at or after `to`, each over `[run − lookback, run)`.
//!
//! Stretches without rows cost one query, not one per chunk or run: after an empty chunk (or an
//! empty scheduled run) the next row the rules can see is looked up and the loop jumps to its
//! chunk (run). Nothing is evaluated differently — an empty chunk only advances the clock, an
//! empty run raises nothing — so a lake holding two days a year apart is as fast as two days.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use datafusion::common::{Column, ScalarValue};
use datafusion::functions_aggregate::expr_fn::min;
use datafusion::logical_expr::utils::disjunction;
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use ztlake_normalize::schema::{Table, UTC};
use ztlake_normalize::values::day_of;

use crate::alert::Alert;
use crate::compile::Retain;
use crate::engine::{Clock, Engine, EngineOptions, EngineStats};
use crate::error::{Error, Result};
use crate::loader::RuleSet;
use crate::rule::{Mode, Rule};

/// Options of [`backfill`].
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Start of the range, µs (default: the earliest row of the tables the rules read).
    pub from: Option<i64>,
    /// End of the range (exclusive), µs (default: just after the latest row).
    pub to: Option<i64>,
    /// How much data is read at a time.
    pub chunk: Duration,
    /// Engine settings.
    pub engine: EngineOptions,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions {
            from: None,
            to: None,
            chunk: Duration::from_secs(3600),
            engine: EngineOptions::default(),
        }
    }
}

/// What a backfill did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BackfillReport {
    /// The range evaluated, µs (None: no data).
    pub range: Option<(i64, i64)>,
    /// Rules run.
    pub rules: usize,
    /// Rows read from the source.
    pub rows_read: u64,
    /// Scheduled runs evaluated (runs over stretches without rows are skipped).
    pub scheduled_runs: u64,
    /// Chunks of the range read for the streaming rules (stretches without rows are skipped).
    pub chunks: u64,
    /// Engine counters.
    pub stats: EngineStats,
    /// The alerts raised.
    #[serde(skip)]
    pub alerts: Vec<Alert>,
}

fn ts(v: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(Some(v), Some(Arc::from(UTC))))
}

fn align_down(t: i64, step: i64) -> i64 {
    t.div_euclid(step).saturating_mul(step)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX).max(1)
}

/// The earliest and latest `time` in `tables` of `source`.
async fn time_bounds(source: &SessionContext, tables: &[Table]) -> Result<Option<(i64, i64)>> {
    let mut bounds: Option<(i64, i64)> = None;
    for t in tables {
        if !source.table_exist(t.name()).unwrap_or(false) {
            continue;
        }
        let sql = format!("SELECT min(time) AS lo, max(time) AS hi FROM {}", t.name());
        let batches = source
            .sql(&sql)
            .await
            .map_err(|e| Error::df(t.name(), "reading the time range", e))?
            .collect()
            .await
            .map_err(|e| Error::df(t.name(), "reading the time range", e))?;
        for b in batches.iter().filter(|b| b.num_rows() > 0) {
            let ty = Table::Flows.schema().field(0).data_type().clone();
            let lo = arrow::compute::cast(b.column(0), &ty)
                .map_err(|e| Error::arrow(t.name(), "time range", e))?;
            let hi = arrow::compute::cast(b.column(1), &ty)
                .map_err(|e| Error::arrow(t.name(), "time range", e))?;
            let (lo, hi) = (
                lo.as_primitive::<TimestampMicrosecondType>(),
                hi.as_primitive::<TimestampMicrosecondType>(),
            );
            if lo.is_null(0) || hi.is_null(0) {
                continue;
            }
            let (l, h) = (lo.value(0), hi.value(0));
            bounds = Some(bounds.map_or((l, h), |(a, b)| (a.min(l), b.max(h))));
        }
    }
    Ok(bounds)
}

/// Read `columns` of `table` for `[from, to)` passing `predicate` into `out`; returns the rows.
async fn read(
    source: &SessionContext,
    table: Table,
    columns: &[String],
    predicate: Option<Expr>,
    from: i64,
    to: i64,
    out: &mut Vec<RecordBatch>,
) -> Result<u64> {
    let df = source.table(table.name()).await.map_err(|e| Error::df(table.name(), "reading", e))?;
    let time = Expr::Column(Column::new(Some(table.name()), "time"));
    let mut filter = time.clone().gt_eq(ts(from)).and(time.lt(ts(to)));
    if df.schema().has_column_with_unqualified_name("date") {
        let day = |t: i64| lit(ScalarValue::Date32(Some(day_of(t))));
        let date = Expr::Column(Column::new(Some(table.name()), "date"));
        filter =
            filter.and(date.clone().gt_eq(day(from))).and(date.lt_eq(day(to.saturating_sub(1))));
    }
    if let Some(p) = predicate {
        filter = filter.and(p);
    }
    let present: Vec<Expr> = columns
        .iter()
        .filter(|c| df.schema().has_column_with_unqualified_name(c))
        .map(|c| col(Column::new(Some(table.name()), c.as_str())))
        .collect();
    let df = df
        .filter(filter)
        .and_then(|df| df.select(present))
        .map_err(|e| Error::df(table.name(), "planning a read", e))?;
    let mut stream =
        df.execute_stream().await.map_err(|e| Error::df(table.name(), "reading", e))?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| Error::df(table.name(), "reading", e))?;
        rows += batch.num_rows() as u64;
        out.push(batch);
    }
    Ok(rows)
}

/// The earliest `time` in `[from, to)` of any of `reads` (table and the rules' filter), or None.
async fn next_time(
    source: &SessionContext,
    reads: &[(Table, Option<Expr>)],
    from: i64,
    to: i64,
) -> Result<Option<i64>> {
    let mut next: Option<i64> = None;
    for (table, predicate) in reads {
        if !source.table_exist(table.name()).unwrap_or(false) {
            continue;
        }
        let df =
            source.table(table.name()).await.map_err(|e| Error::df(table.name(), "reading", e))?;
        let time = Expr::Column(Column::new(Some(table.name()), "time"));
        let mut filter = time.clone().gt_eq(ts(from)).and(time.clone().lt(ts(to)));
        if df.schema().has_column_with_unqualified_name("date") {
            let date = Expr::Column(Column::new(Some(table.name()), "date"));
            filter = filter.and(date.gt_eq(lit(ScalarValue::Date32(Some(day_of(from))))));
        }
        if let Some(p) = predicate {
            filter = filter.and(p.clone());
        }
        let batches = df
            .filter(filter)
            .and_then(|df| df.aggregate(vec![], vec![min(time).alias("next")]))
            .map_err(|e| Error::df(table.name(), "planning a read", e))?
            .collect()
            .await
            .map_err(|e| Error::df(table.name(), "looking for the next row", e))?;
        let ty = Table::Flows.schema().field(0).data_type().clone();
        for b in batches.iter().filter(|b| b.num_rows() > 0) {
            let v = arrow::compute::cast(b.column(0), &ty)
                .map_err(|e| Error::arrow(table.name(), "next row", e))?;
            let v = v.as_primitive::<TimestampMicrosecondType>();
            if v.is_valid(0) {
                next = Some(next.map_or(v.value(0), |n| n.min(v.value(0))));
            }
        }
    }
    Ok(next)
}

/// What `retains` read of each table: the union of columns, the disjunction of filters.
fn reads(retains: &[(Arc<Rule>, Retain)]) -> Vec<(Table, Vec<String>, Option<Expr>)> {
    let mut out: Vec<(Table, Vec<String>, Option<Vec<Expr>>)> = Vec::new();
    for (_, r) in retains {
        let entry = match out.iter().position(|(t, _, _)| *t == r.table) {
            Some(i) => &mut out[i],
            None => {
                out.push((r.table, Vec::new(), Some(Vec::new())));
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        for c in &r.columns {
            if !entry.1.contains(c) {
                entry.1.push(c.clone());
            }
        }
        entry.2 = match (entry.2.take(), r.predicate()) {
            (Some(mut list), Some(p)) => {
                list.push(p);
                Some(list)
            }
            _ => None,
        };
    }
    out.into_iter().map(|(t, c, p)| (t, c, p.and_then(disjunction))).collect()
}

/// Run every rule of `set` over `source` for the range of `options`.
///
/// # Errors
/// A read or an evaluation failed.
pub async fn backfill(
    set: &RuleSet,
    source: &SessionContext,
    options: &BackfillOptions,
) -> Result<BackfillReport> {
    crate::udf::register(source, set.reference())
        .map_err(|e| Error::df("backfill", "registering UDFs", e))?;
    // Alerts are read once, at the end: no provisional evaluations.
    let mut engine =
        Engine::new(set.rules(), set.reference(), options.engine.clone(), Clock::Explicit)
            .await?
            .final_only();
    let mut report = BackfillReport { rules: set.rules().len(), ..BackfillReport::default() };
    let streaming = engine.retains();
    let mut tables: Vec<Table> =
        set.rules().iter().flat_map(|r| r.retains.iter().map(|x| x.table)).collect();
    tables.sort();
    tables.dedup();
    let bounds = time_bounds(source, &tables).await?;
    let from = options.from.or(bounds.map(|b| b.0));
    let to = options.to.or(bounds.map(|b| b.1.saturating_add(1)));
    let (Some(from), Some(to)) = (from, to) else {
        report.stats = engine.stats().clone();
        return Ok(report);
    };
    report.range = Some((from, to));
    if !streaming.is_empty() {
        engine.set_range(from, to);
        let (lo, hi) = engine.read_range(from, to);
        let step = micros(options.chunk);
        let plan = reads(&streaming);
        let lookups: Vec<(Table, Option<Expr>)> =
            plan.iter().map(|(t, _, p)| (*t, p.clone())).collect();
        let mut a = align_down(lo, step);
        while a < hi {
            let b = a.saturating_add(step).min(hi);
            let mut rows = 0u64;
            for (table, columns, predicate) in &plan {
                if !source.table_exist(table.name()).unwrap_or(false) {
                    continue;
                }
                let mut batches = Vec::new();
                rows +=
                    read(source, *table, columns, predicate.clone(), a.max(lo), b, &mut batches)
                        .await?;
                for batch in batches {
                    engine.push(*table, &batch).await?;
                }
            }
            report.rows_read += rows;
            report.chunks += 1;
            engine.advance_to(b).await?;
            a = b;
            if rows == 0 && a < hi {
                // Jump over the stretch without rows (the clock closes the windows in it).
                let Some(next) = next_time(source, &lookups, a, hi).await? else { break };
                let next = align_down(next, step).max(a);
                if next > a {
                    engine.advance_to(next).await?;
                    a = next;
                }
            }
        }
        engine.flush().await?;
    }
    for rule in set.rules().iter().filter(|r| r.mode() == Mode::Scheduled) {
        let step = micros(rule.interval);
        let lookback = micros(rule.lookback);
        // Every run whose data window can see rows of the range, the last one covering its end.
        let mut run = align_down(from, step).saturating_add(step);
        let last = align_down(to.saturating_sub(1), step).saturating_add(step);
        let lookups: Vec<(Table, Option<Expr>)> =
            rule.retains.iter().map(|r| (r.table, r.predicate())).collect();
        while run <= last {
            let mut rows = Vec::new();
            let mut read_rows = 0u64;
            for retain in &rule.retains {
                if !source.table_exist(retain.table.name()).unwrap_or(false) {
                    continue;
                }
                let mut batches = Vec::new();
                read_rows += read(
                    source,
                    retain.table,
                    &retain.columns,
                    retain.predicate(),
                    run.saturating_sub(lookback),
                    run,
                    &mut batches,
                )
                .await?;
                rows.push((retain.table, batches));
            }
            report.rows_read += read_rows;
            if read_rows == 0 {
                // An empty run raises nothing: go to the first run that sees the next row.
                let Some(next) = next_time(source, &lookups, run, to).await? else { break };
                run = run.saturating_add(step).max(align_down(next, step).saturating_add(step));
                continue;
            }
            engine.run_scheduled(rule.id(), run, &rows).await?;
            report.scheduled_runs += 1;
            run = run.saturating_add(step);
        }
    }
    report.stats = engine.stats().clone();
    report.alerts = engine.into_alerts(chrono::Utc::now().timestamp_micros());
    Ok(report)
}
