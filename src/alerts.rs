//! Alerts in the lake: writing them (upsert by `alert_id`, merged with what is stored),
//! their lifecycle events (append-only, each with a stable `event_id`), and reading them back
//! with filters for `ztlake alerts`.
//!
//! Writing is idempotent: a newly computed alert is merged into the stored one
//! ([`Alert::merge`]); unchanged alerts are not written, and events whose `event_id` is already
//! stored are not appended — re-running `ztlake detect` over the same range writes nothing.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context as _, Result};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::logical_expr::{col, lit};
use datafusion::prelude::SessionContext;
use ztlake_detections::{
    Alert, AlertEvent, Severity, alerts_batch, alerts_from_batch, events_batch,
};
use ztlake_normalize::Table;
use ztlake_storage::{Lake, WriterOptions};

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

/// Rows of `table` whose `column` is one of `values` (in chunks).
async fn rows_with(
    ctx: &SessionContext,
    table: Table,
    column: &str,
    values: &[String],
) -> Result<Vec<RecordBatch>> {
    if !ctx.table_exist(table.name())? {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for chunk in values.chunks(500) {
        let list = chunk.iter().map(|v| lit(v.as_str())).collect();
        let df = ctx.table(table.name()).await?.filter(col(column).in_list(list, false))?;
        out.extend(df.collect().await?);
    }
    Ok(out)
}

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
    if events.is_empty() {
        return Ok(0);
    }
    let ctx = session(lake).await?;
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let mut stored = HashSet::new();
    for batch in rows_with(&ctx, Table::AlertEvents, "event_id", &ids).await? {
        let column = arrow::compute::cast(
            batch.column_by_name("event_id").context("alert_events has no event_id")?,
            &DataType::Utf8,
        )?;
        stored.extend(column.as_string::<i32>().iter().flatten().map(str::to_owned));
    }
    let mut seen = HashSet::new();
    let fresh: Vec<AlertEvent> = events
        .into_iter()
        .filter(|e| !stored.contains(&e.event_id) && seen.insert(e.event_id.clone()))
        .collect();
    if fresh.is_empty() {
        return Ok(0);
    }
    let batch = events_batch(&fresh)?;
    let options = WriterOptions { encoder_threads: 1, ..WriterOptions::default() };
    let mut writer = lake.writer(Table::AlertEvents, options)?;
    let files = tokio::task::spawn_blocking(move || {
        writer.write(batch)?;
        writer.finish()
    })
    .await
    .context("alert event writer")??;
    let mut info = serde_json::Map::new();
    info.insert(
        "ztlake".into(),
        serde_json::json!({"operation": "alert_events", "events": fresh.len()}),
    );
    lake.commit(Table::AlertEvents, files, Vec::new(), info).await?;
    Ok(fresh.len())
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
    let mut report = AlertWrite::default();
    if alerts.is_empty() {
        return Ok(report);
    }
    let ids: Vec<String> = alerts.iter().map(|a| a.alert_id.clone()).collect();
    let stored = stored_alerts(lake, &ids).await?;
    let now = chrono::Utc::now().timestamp_micros();
    let mut rows = Vec::new();
    let mut events = Vec::new();
    for alert in alerts {
        match stored.get(&alert.alert_id) {
            None => {
                let mut a = alert.into_owned();
                a.updated = now;
                events.push(AlertEvent::raised(&a, now));
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
    if !rows.is_empty() {
        lake.upsert(Table::Alerts, alerts_batch(&rows)?, "alert_id").await?;
    }
    report.events = append_events(lake, events).await?;
    Ok(report)
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
    out.sort_by(|a, b| {
        b.alert.last_seen.cmp(&a.alert.last_seen).then(a.alert.alert_id.cmp(&b.alert.alert_id))
    });
    Ok(out)
}
