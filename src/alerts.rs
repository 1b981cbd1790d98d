//! Alerts in the lake: writing them (upsert by `alert_id`, merged with what is stored),
//! their lifecycle events (append-only, each with a stable `event_id`), and reading them back
//! with filters for `ztlake alerts`.
//!
//! Writing is idempotent: a newly computed alert is merged into the stored one
//! ([`Alert::merge`]); unchanged alerts are not written, and events whose `event_id` is already
//! stored are not appended — re-running `ztlake detect` over the same range writes nothing.
//! When every alert of a write is new, they are appended instead of merged (no join with the
//! stored rows), in a commit that succeeds only if the table did not move since the lookup that
//! found them new; if it did, the merge decides after all.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};
use datafusion::common::JoinType;
use datafusion::logical_expr::{cast, col, lit};
use datafusion::prelude::SessionContext;
use ztlake_detections::{
    Alert, AlertEvent, Severity, alerts_batch, alerts_from_batch, events_batch,
};
use ztlake_normalize::Table;
use ztlake_storage::{DataFile, Lake, WriterOptions};

/// What [`write_alerts`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AlertWrite {
    /// Alerts raised for the first time.
    pub new: usize,
    /// Stored alerts whose state changed.
    pub updated: usize,
    /// Alerts already stored in this state.
    pub unchanged: usize,
    /// Lifecycle events appended.
    pub events: usize,
}

async fn session(lake: &Lake) -> Result<SessionContext> {
    let ctx = SessionContext::new();
    lake.register(&ctx).await?;
    Ok(ctx)
}

/// Rows of `table` whose `column` is one of `values`: an `IN` list for a few values (row
/// groups prune on statistics), one scan semi-joined with the values otherwise — a list of
/// tens of thousands of alert ids would otherwise take as many scans as chunks.
async fn rows_with(
    ctx: &SessionContext,
    table: Table,
    column: &str,
    values: &[String],
) -> Result<Vec<RecordBatch>> {
    if values.is_empty() || !ctx.table_exist(table.name())? {
        return Ok(Vec::new());
    }
    let rows = ctx.table(table.name()).await?;
    if values.len() <= IN_LIST_MAX {
        let list = values.iter().map(|v| lit(v.as_str())).collect();
        return Ok(rows.filter(col(column).in_list(list, false))?.collect().await?);
    }
    let wanted = "ztlake_wanted";
    let schema = Arc::new(Schema::new(vec![Field::new(wanted, DataType::Utf8, false)]));
    let array = StringArray::from_iter_values(values.iter().map(String::as_str));
    let values = ctx.read_batch(RecordBatch::try_new(schema, vec![Arc::new(array)])?)?;
    let on = cast(col(column), DataType::Utf8).eq(col(wanted));
    Ok(rows.join_on(values, JoinType::LeftSemi, [on])?.collect().await?)
}

/// Most values [`rows_with`] looks up with an `IN` list.
const IN_LIST_MAX: usize = 500;

/// The stored alerts with these ids.
pub async fn stored_alerts(lake: &Lake, ids: &[String]) -> Result<HashMap<String, Alert>> {
    let ctx = session(lake).await?;
    let mut found = HashMap::new();
    for batch in rows_with(&ctx, Table::Alerts, "alert_id", ids).await? {
        for a in alerts_from_batch(&batch)? {
            found.insert(a.alert_id.clone(), a);
        }
    }
    Ok(found)
}

/// Append lifecycle `events` whose `event_id` is not stored yet; returns how many were new.
pub async fn append_events(lake: &Lake, events: Vec<AlertEvent>) -> Result<usize> {
    let prepared = prepare_events(lake.clone(), events).await?;
    commit_events(lake, prepared).await
}

/// The first half of [`append_events`]: drop the events already stored (and repeats), write
/// the data files of the rest (not committed yet).
async fn prepare_events(lake: Lake, events: Vec<AlertEvent>) -> Result<Vec<DataFile>> {
    let mut seen = HashSet::new();
    let once: Vec<AlertEvent> =
        events.into_iter().filter(|e| seen.insert(e.event_id.clone())).collect();
    if once.is_empty() {
        return Ok(Vec::new());
    }
    prepare_event_rows(lake, events_batch(&once)?).await
}

/// [`prepare_events`] of events given as rows of the `alert_events` table, their `event_id`s
/// distinct.
async fn prepare_event_rows(lake: Lake, rows: RecordBatch) -> Result<Vec<DataFile>> {
    let ids = column_texts(std::slice::from_ref(&rows), "event_id")?;
    let ctx = session(&lake).await?;
    let mut stored = HashSet::new();
    for batch in rows_with(&ctx, Table::AlertEvents, "event_id", &ids).await? {
        let column = arrow::compute::cast(
            batch.column_by_name("event_id").context("alert_events has no event_id")?,
            &DataType::Utf8,
        )?;
        stored.extend(column.as_string::<i32>().iter().flatten().map(str::to_owned));
    }
    let fresh = if stored.is_empty() {
        rows
    } else {
        let keep: BooleanArray = ids.iter().map(|id| Some(!stored.contains(id))).collect();
        arrow::compute::filter_record_batch(&rows, &keep)?
    };
    if fresh.num_rows() == 0 {
        return Ok(Vec::new());
    }
    write_files(&lake, Table::AlertEvents, vec![fresh], 1).await
}

/// The values of text column `name` of `batches`, in order (NULL as empty text).
fn column_texts(batches: &[RecordBatch], name: &str) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for batch in batches {
        let column = batch.column_by_name(name).with_context(|| format!("rows without {name}"))?;
        let text = column.as_string_opt::<i32>().with_context(|| format!("{name} is not text"))?;
        out.extend(text.iter().map(|v| v.unwrap_or_default().to_owned()));
    }
    Ok(out)
}

/// The rows of `alerts` in the `alerts` table's schema: tens of thousands of alerts (their
/// entity and evidence JSON) are built in two halves on two threads.
fn alert_batches(alerts: &[Alert]) -> Result<Vec<RecordBatch>> {
    if alerts.len() < PARALLEL_ROWS {
        return Ok(vec![alerts_batch(alerts)?]);
    }
    let (first, second) = alerts.split_at(alerts.len() / 2);
    std::thread::scope(|scope| {
        let other = std::thread::Builder::new()
            .name("ztlake-alert-rows".into())
            .spawn_scoped(scope, || alerts_batch(second));
        let mut batches = vec![alerts_batch(first)?];
        match other.map(|h| h.join()) {
            Ok(Ok(rest)) => batches.push(rest?),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            // No thread to be had: the second half here.
            Err(_) => batches.push(alerts_batch(second)?),
        }
        Ok(batches)
    })
}

/// Fewer alerts than this are turned into rows on one thread.
const PARALLEL_ROWS: usize = 4096;

/// The data files of `batches` in table `t` (written on a blocking thread with `threads`
/// encoders, not committed).
async fn write_files(
    lake: &Lake,
    t: Table,
    batches: Vec<RecordBatch>,
    threads: usize,
) -> Result<Vec<DataFile>> {
    let options = WriterOptions { encoder_threads: threads, ..WriterOptions::default() };
    let mut writer = lake.writer(t, options)?;
    tokio::task::spawn_blocking(move || {
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish().map_err(anyhow::Error::from)
    })
    .await
    .with_context(|| format!("{t} data file writer"))?
}

/// The second half of [`append_events`]: commit the prepared files; returns how many events
/// they hold.
async fn commit_events(lake: &Lake, files: Vec<DataFile>) -> Result<usize> {
    let count = usize::try_from(files.iter().map(DataFile::rows).sum::<u64>())?;
    if count == 0 {
        return Ok(0);
    }
    let mut info = serde_json::Map::new();
    info.insert("ztlake".into(), serde_json::json!({"operation": "alert_events", "events": count}));
    lake.commit(Table::AlertEvents, files, Vec::new(), info).await?;
    Ok(count)
}

/// Write `alerts` to the lake: merged with the stored state, upserted by `alert_id`, with a
/// `raised` event for new alerts and an `updated` event for changed ones.
pub async fn write_alerts(lake: &Lake, alerts: &[Alert]) -> Result<AlertWrite> {
    write_some(lake, alerts.iter().map(Cow::Borrowed).collect()).await
}

/// [`write_alerts`] of alerts the caller no longer needs (new alerts are not copied).
pub async fn write_owned_alerts(lake: &Lake, alerts: Vec<Alert>) -> Result<AlertWrite> {
    write_some(lake, alerts.into_iter().map(Cow::Owned).collect()).await
}

async fn write_some(lake: &Lake, alerts: Vec<Cow<'_, Alert>>) -> Result<AlertWrite> {
    if alerts.is_empty() {
        return Ok(AlertWrite::default());
    }
    let started = std::time::Instant::now();
    let ids: Vec<String> = alerts.iter().map(|a| a.alert_id.clone()).collect();
    let lookup = look_up(lake, &ids, started).await?;
    merge_and_store(lake, alerts, lookup).await
}

/// What the lake holds of alerts about to be written.
struct Lookup {
    /// The version the lookup sees (at least): new alerts are appended only if it still is the
    /// latest when they are committed.
    read: i64,
    /// Whether the alerts' ids are distinct.
    distinct: bool,
    /// The stored alerts with those ids.
    stored: HashMap<String, Alert>,
    /// When the write started, and how long the lookup took.
    started: std::time::Instant,
    took: std::time::Duration,
}

/// Look up the stored alerts with these `ids`, for a write that started at `started`.
async fn look_up(lake: &Lake, ids: &[String], started: std::time::Instant) -> Result<Lookup> {
    let read = lake.version(Table::Alerts).await?;
    // An engine's rows come sorted by id: strictly increasing ids are distinct.
    let distinct = ids.windows(2).all(|w| w[0] < w[1])
        || ids.iter().collect::<HashSet<_>>().len() == ids.len();
    let stored = stored_alerts(lake, ids).await?;
    Ok(Lookup { read, distinct, stored, started, took: started.elapsed() })
}

/// The second half of [`write_some`]: merge `alerts` into what `lookup` found, upsert the
/// changed ones, append their events.
async fn merge_and_store(
    lake: &Lake,
    alerts: Vec<Cow<'_, Alert>>,
    lookup: Lookup,
) -> Result<AlertWrite> {
    let Lookup { read, distinct, stored, started, took: looked_up } = lookup;
    let mut report = AlertWrite::default();
    let now = chrono::Utc::now().timestamp_micros();
    let mut rows = Vec::new();
    // `raised` events are made from `rows[i]` for these `i`, off this path (below).
    let mut raised = Vec::new();
    let mut events = Vec::new();
    for alert in alerts {
        match stored.get(&alert.alert_id) {
            None => {
                let mut a = alert.into_owned();
                a.updated = now;
                raised.push(rows.len());
                rows.push(a);
                report.new += 1;
            }
            Some(old) => {
                let mut merged = old.merge(&alert);
                if merged.same_state(old) {
                    report.unchanged += 1;
                    continue;
                }
                merged.updated = now;
                events.push(AlertEvent::updated(&merged, old, now));
                rows.push(merged);
                report.updated += 1;
            }
        }
    }
    // The events are made and their files written while the alerts are upserted (two cores at
    // work); they are committed after the alerts, so an event never names an alert the lake
    // lacks.
    let rows = Arc::new(rows);
    let events = {
        let (rows, lake) = (Arc::clone(&rows), lake.clone());
        tokio::spawn(async move {
            events.extend(raised.into_iter().map(|i| AlertEvent::raised(&rows[i], now)));
            prepare_events(lake, events).await
        })
    };
    let upserted = async {
        if rows.is_empty() {
            return anyhow::Ok(false);
        }
        let batches = alert_batches(&rows)?;
        tracing::debug!(ms = started.elapsed().as_millis(), "alert rows built");
        store_rows(lake, batches, read, report.new, report.updated == 0 && distinct).await
    }
    .await;
    let upsert_done = started.elapsed();
    let prepared = events.await.context("alert events")?;
    let appended = upserted?;
    report.events = commit_events(lake, prepared?).await?;
    tracing::debug!(
        alerts = rows.len(),
        appended,
        lookup_ms = looked_up.as_millis(),
        written_ms = upsert_done.as_millis(),
        total_ms = started.elapsed().as_millis(),
        "alerts written to the lake"
    );
    // Tens of thousands of alerts are many small allocations: free them off this path.
    let _ =
        std::thread::Builder::new().name("ztlake-free".into()).spawn(move || drop((rows, stored)));
    Ok(report)
}

/// Upsert alert `rows` by `alert_id`. When `all_new` (a backfill, a first ingest: none of
/// them was stored at table version `read`), a plain append is a merge that matches nothing,
/// without the merge's join — valid while no commit landed since that lookup; otherwise the
/// merge decides. Returns whether they were appended.
async fn store_rows(
    lake: &Lake,
    rows: Vec<RecordBatch>,
    read: i64,
    new: usize,
    all_new: bool,
) -> Result<bool> {
    if all_new {
        let files = write_files(lake, Table::Alerts, rows.clone(), 2).await?;
        let mut info = serde_json::Map::new();
        info.insert("ztlake".into(), serde_json::json!({"operation": "alerts", "new": new}));
        if lake.append_at(Table::Alerts, files, read, info).await? {
            return Ok(true);
        }
    }
    let schema = rows.first().map(RecordBatch::schema).context("no alert rows")?;
    let batch = arrow::compute::concat_batches(&schema, &rows)?;
    lake.upsert(Table::Alerts, batch, "alert_id").await?;
    Ok(false)
}

/// [`write_alerts`] of alerts given as rows of the `alerts` table, as a one-shot engine makes
/// them ([`ztlake_detections::Engine::into_alert_rows`]). When none of them is stored yet (a
/// first ingest) the rows are stored as they are, with a `raised` event each — no [`Alert`] is
/// built; otherwise they are read back as alerts and merged like [`write_owned_alerts`].
pub async fn write_alert_rows(lake: &Lake, rows: Vec<RecordBatch>) -> Result<AlertWrite> {
    let count: usize = rows.iter().map(RecordBatch::num_rows).sum();
    if count == 0 {
        return Ok(AlertWrite::default());
    }
    let started = std::time::Instant::now();
    let lookup = look_up(lake, &column_texts(&rows, "alert_id")?, started).await?;
    if !lookup.stored.is_empty() || !lookup.distinct {
        let mut alerts = Vec::with_capacity(count);
        for batch in &rows {
            alerts.extend(alerts_from_batch(batch)?.into_iter().map(Cow::Owned));
        }
        return merge_and_store(lake, alerts, lookup).await;
    }
    let Lookup { read, took: looked_up, .. } = lookup;
    let now = chrono::Utc::now().timestamp_micros();
    let report = AlertWrite { new: count, ..AlertWrite::default() };
    // As in `write_some`: the events are made and written meanwhile, committed after the alerts.
    let events = {
        let (rows, lake) = (rows.clone(), lake.clone());
        tokio::spawn(async move {
            let events: Vec<RecordBatch> = rows
                .iter()
                .map(|batch| AlertEvent::raised_rows(batch, now))
                .collect::<std::result::Result<_, _>>()?;
            let schema = Table::AlertEvents.schema();
            prepare_event_rows(lake, arrow::compute::concat_batches(&schema, &events)?).await
        })
    };
    let appended = store_rows(lake, rows, read, report.new, true).await;
    let prepared = events.await.context("alert events")?;
    let appended = appended?;
    let events = commit_events(lake, prepared?).await?;
    tracing::debug!(
        alerts = report.new,
        appended,
        lookup_ms = looked_up.as_millis(),
        total_ms = started.elapsed().as_millis(),
        "alert rows written to the lake"
    );
    Ok(AlertWrite { events, ..report })
}

/// Record a lifecycle step (`acknowledged`, `resolved`, …) of a stored alert.
pub async fn record_step(
    lake: &Lake,
    alert_id: &str,
    event: &str,
    actor: &str,
    detail: Option<String>,
) -> Result<()> {
    let alert = stored_alerts(lake, &[alert_id.to_owned()])
        .await?
        .remove(alert_id)
        .with_context(|| format!("no alert {alert_id} in the lake"))?;
    let now = chrono::Utc::now().timestamp_micros();
    append_events(lake, vec![AlertEvent::lifecycle(&alert, event, actor, detail, now)]).await?;
    Ok(())
}

/// An alert with its lifecycle status.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The alert.
    pub alert: Alert,
    /// open | acknowledged | resolved (the latest acknowledgement or resolution step).
    pub status: String,
}

/// Filters of [`list_alerts`].
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// At least this severity.
    pub min_severity: Option<Severity>,
    /// Only this rule.
    pub rule: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Last seen at or after this time (µs).
    pub since: Option<i64>,
}

/// The statuses of alerts, from their lifecycle events.
async fn statuses(ctx: &SessionContext) -> Result<HashMap<String, String>> {
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    if !ctx.table_exist(Table::AlertEvents.name())? {
        return Ok(HashMap::new());
    }
    let steps = vec![lit("acknowledged"), lit("resolved"), lit("reopened")];
    let df = ctx
        .table(Table::AlertEvents.name())
        .await?
        .filter(col("event").in_list(steps, false))?
        .select_columns(&["alert_id", "event", "time"])?;
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    for batch in df.collect().await? {
        let ids = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let events = arrow::compute::cast(batch.column(1), &DataType::Utf8)?;
        let times = arrow::compute::cast(batch.column(2), &ts)?;
        let (ids, events) = (ids.as_string::<i32>(), events.as_string::<i32>());
        let times = times.as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            if ids.is_null(i) || events.is_null(i) {
                continue;
            }
            let t = if times.is_null(i) { 0 } else { times.value(i) };
            let e = latest.entry(ids.value(i).to_owned()).or_insert((i64::MIN, String::new()));
            if t >= e.0 {
                *e = (t, events.value(i).to_owned());
            }
        }
    }
    Ok(latest
        .into_iter()
        .map(|(id, (_, e))| (id, if e == "reopened" { "open".to_owned() } else { e }))
        .collect())
}

/// The stored alerts passing `filter`, most recently seen first.
pub async fn list_alerts(lake: &Lake, filter: &AlertFilter) -> Result<Vec<Listed>> {
    let ctx = session(lake).await?;
    if !ctx.table_exist(Table::Alerts.name())? {
        return Ok(Vec::new());
    }
    let mut df = ctx.table(Table::Alerts.name()).await?;
    if let Some(rule) = &filter.rule {
        df = df.filter(col("rule_id").eq(lit(rule.as_str())))?;
    }
    let statuses = statuses(&ctx).await?;
    let mut out = Vec::new();
    for batch in df.collect().await? {
        for alert in alerts_from_batch(&batch)? {
            if filter.min_severity.is_some_and(|s| alert.severity < s)
                || filter.since.is_some_and(|t| alert.last_seen < t)
            {
                continue;
            }
            let status =
                statuses.get(&alert.alert_id).cloned().unwrap_or_else(|| "open".to_owned());
            if filter.status.as_ref().is_some_and(|s| *s != status) {
                continue;
            }
            out.push(Listed { alert, status });
        }
    }
    out.sort_by(|a, b| newest_first(&a.alert, &b.alert));
    Ok(out)
}

/// The order alerts are listed in: latest `last_seen` first, then by id.
fn newest_first(a: &Alert, b: &Alert) -> std::cmp::Ordering {
    b.last_seen.cmp(&a.last_seen).then(a.alert_id.cmp(&b.alert_id))
}

/// The alerts whose state was computed at or after `since` (µs), newest `last_seen` first: what
/// a command that just wrote alerts hands to on-call delivery. Only files whose `updated`
/// statistics reach `since` are read (not the lake's whole alert history), and no lifecycle
/// status is looked up.
pub async fn alerts_updated_since(lake: &Lake, since: i64) -> Result<Vec<Alert>> {
    let ctx = session(lake).await?;
    if !ctx.table_exist(Table::Alerts.name())? {
        return Ok(Vec::new());
    }
    let bound = datafusion::common::ScalarValue::TimestampMicrosecond(
        Some(since),
        Some(ztlake_normalize::schema::UTC.into()),
    );
    let df = ctx.table(Table::Alerts.name()).await?.filter(col("updated").gt_eq(lit(bound)))?;
    let mut out = Vec::new();
    for batch in df.collect().await? {
        out.extend(alerts_from_batch(&batch)?.into_iter().filter(|a| a.updated >= since));
    }
    out.sort_by(newest_first);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ztlake_detections::alert::{Aggregate, Evidence, WindowEvidence};

    use super::*;

    fn alert(i: usize, count: i64) -> Alert {
        let start = "2023-11-14T22:00:00Z".to_owned();
        Alert {
            alert_id: format!("{i:016x}"),
            rule_id: "zt-x".into(),
            title: "X".into(),
            severity: Severity::High,
            provider: "aws".into(),
            entity: BTreeMap::from([(
                "dst_ip".to_owned(),
                Some(format!("10.0.{}.{}", i / 250, i % 250)),
            )]),
            dedupe_key: vec![Some(i.to_string())],
            first_seen: 1_700_000_000_000_000,
            last_seen: 1_700_000_000_000_000 + count,
            count,
            runbook: "rb".into(),
            evidence_uids: vec![format!("uid-{i}")],
            evidence: Evidence {
                aggregate: Aggregate::Sum,
                windows: vec![WindowEvidence { start, count, summary: String::new() }],
            },
            tags: vec!["T1133".into()],
            updated: 0,
        }
    }

    #[tokio::test]
    async fn rewriting_many_alerts_changes_only_what_changed() {
        // More alerts than one IN list holds: the stored ones are found with one semi-join.
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(dir.path().to_str().expect("utf8")).await.expect("lake");
        let alerts: Vec<Alert> = (0..1200).map(|i| alert(i, 1)).collect();
        let first = write_alerts(&lake, &alerts).await.expect("write");
        assert_eq!((first.new, first.updated, first.unchanged, first.events), (1200, 0, 0, 1200));
        let ids: Vec<String> = alerts.iter().map(|a| a.alert_id.clone()).collect();
        assert_eq!(stored_alerts(&lake, &ids).await.expect("stored").len(), 1200);

        let again = write_owned_alerts(&lake, alerts.clone()).await.expect("rewrite");
        assert_eq!((again.new, again.updated, again.unchanged, again.events), (0, 0, 1200, 0));

        let mut changed = alerts;
        changed[7] = alert(7, 5);
        changed[1100] = alert(1100, 9);
        let third = write_alerts(&lake, &changed).await.expect("update");
        assert_eq!((third.new, third.updated, third.unchanged, third.events), (0, 2, 1198, 2));
        let stored = stored_alerts(&lake, &ids).await.expect("stored");
        assert_eq!(stored.len(), 1200, "an upsert, not an append");
        assert_eq!(stored[&changed[1100].alert_id].count, 9);
        assert_eq!(stored[&changed[8].alert_id].count, 1);
    }

    #[tokio::test]
    async fn new_alerts_are_appended_and_later_ones_merged_without_duplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(dir.path().to_str().expect("utf8")).await.expect("lake");
        // More than PARALLEL_ROWS: rows built in two halves, appended (no merge).
        let alerts: Vec<Alert> = (0..PARALLEL_ROWS + 904).map(|i| alert(i, 1)).collect();
        let first = write_alerts(&lake, &alerts).await.expect("write");
        assert_eq!((first.new, first.updated, first.events), (alerts.len(), 0, alerts.len()));
        let ids: Vec<String> = alerts.iter().map(|a| a.alert_id.clone()).collect();
        let stored = stored_alerts(&lake, &ids).await.expect("stored");
        assert_eq!(stored.len(), alerts.len());
        for a in [&alerts[0], &alerts[PARALLEL_ROWS / 2 + 1], &alerts[alerts.len() - 1]] {
            let back = Alert { updated: a.updated, ..stored[&a.alert_id].clone() };
            assert_eq!(&back, a, "read back as written");
        }
        // New and changed together: the merge decides, every id stays once.
        let mut next: Vec<Alert> = (alerts.len()..alerts.len() + 10).map(|i| alert(i, 1)).collect();
        next.push(alert(3, 4));
        let second = write_alerts(&lake, &next).await.expect("write");
        assert_eq!((second.new, second.updated), (10, 1));
        let listed = list_alerts(&lake, &AlertFilter::default()).await.expect("list");
        let distinct: HashSet<&str> = listed.iter().map(|l| l.alert.alert_id.as_str()).collect();
        assert_eq!(listed.len(), alerts.len() + 10);
        assert_eq!(distinct.len(), listed.len(), "no alert stored twice");
    }

    /// After a write, the alerts updated since a time are those written then: older states
    /// are not listed.
    #[tokio::test]
    async fn alerts_updated_since_are_the_later_states() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(dir.path().to_str().expect("utf8")).await.expect("lake");
        assert!(alerts_updated_since(&lake, 0).await.expect("empty lake").is_empty());
        let old: Vec<Alert> = (0..5).map(|i| Alert { updated: 100, ..alert(i, 1) }).collect();
        write_alert_rows(&lake, vec![ztlake_detections::alerts_batch(&old).expect("rows")])
            .await
            .expect("old");
        let new: Vec<Alert> =
            (5..8).map(|i| Alert { updated: 200, ..alert(i, i as i64) }).collect();
        write_alert_rows(&lake, vec![ztlake_detections::alerts_batch(&new).expect("rows")])
            .await
            .expect("new");
        let since = alerts_updated_since(&lake, 150).await.expect("since");
        let mut expected = new.clone();
        expected.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.alert_id.cmp(&b.alert_id)));
        assert_eq!(since, expected, "the later states, newest last_seen first");
        assert_eq!(alerts_updated_since(&lake, 100).await.expect("all").len(), 8);
    }

    /// Rows straight from an engine: stored as they are into a lake that lacks them (with the
    /// events `write_alerts` would add), merged like alerts once any of them is stored.
    #[tokio::test]
    async fn alert_rows_are_stored_like_the_alerts_they_hold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(dir.path().to_str().expect("utf8")).await.expect("lake");
        let alerts: Vec<Alert> = (0..700).map(|i| alert(i, 1)).collect();
        let rows = ztlake_detections::alerts_batch(&alerts).expect("rows");
        // Two batches, as an engine makes them.
        let halves = vec![rows.slice(0, 300), rows.slice(300, 400)];
        let first = write_alert_rows(&lake, halves).await.expect("write rows");
        assert_eq!((first.new, first.updated, first.unchanged, first.events), (700, 0, 0, 700));
        let ids: Vec<String> = alerts.iter().map(|a| a.alert_id.clone()).collect();
        let stored = stored_alerts(&lake, &ids).await.expect("stored");
        assert_eq!(stored.len(), 700);
        for a in &alerts {
            assert_eq!(&stored[&a.alert_id], a, "read back as written");
        }
        // The `raised` events are those of the alerts: written again, nothing is new.
        let raised: Vec<AlertEvent> = alerts.iter().map(|a| AlertEvent::raised(a, 5)).collect();
        assert_eq!(
            AlertEvent::raised_rows(&rows, 5).expect("event rows"),
            events_batch(&raised).expect("rows of the events"),
            "the events made from the rows are the events of the alerts"
        );
        assert_eq!(append_events(&lake, raised).await.expect("events"), 0);

        let again = write_alert_rows(&lake, vec![rows]).await.expect("rewrite rows");
        assert_eq!((again.new, again.updated, again.unchanged, again.events), (0, 0, 700, 0));
        let mut changed = alerts[..10].to_vec();
        changed[3] = alert(3, 6);
        changed.push(alert(900, 1));
        let rows = ztlake_detections::alerts_batch(&changed).expect("rows");
        let third = write_alert_rows(&lake, vec![rows]).await.expect("merge rows");
        assert_eq!((third.new, third.updated, third.unchanged, third.events), (1, 1, 9, 2));
        let listed = list_alerts(&lake, &AlertFilter::default()).await.expect("list");
        assert_eq!(listed.len(), 701, "an upsert: every id once");
        let stored = stored_alerts(&lake, &[alerts[3].alert_id.clone()]).await.expect("stored");
        assert_eq!(stored[&alerts[3].alert_id].count, 6);
    }
}
