//! Alerts: identity, state, merging, and their rows in the `alerts` / `alert_events` tables.
//!
//! Identity (docs/rules.md): `alert_id = hex(xxh3_64(rule id, dedupe key values, dedupe
//! bucket))`, the bucket being `floor(first_seen / period)`. Exactly, the hashed bytes are the
//! rule id, then for each key value `0x1F` followed by `s` and the value (or `n` for NULL),
//! then `0x1F` and the bucket in decimal; the id is 16 lower-case hex digits.
//!
//! An alert gathers the matches of its key within its dedupe period. Its evidence keeps, per
//! window (streaming) or run (scheduled), the count and a summary of the rows — so re-evaluating
//! a window replaces that window's contribution and never adds it twice, and merging a newly
//! computed alert into a stored one ([`Alert::merge`]) is idempotent: reprocessing the same
//! data changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int64Type, TimeUnit, TimestampMicrosecondType};
use serde::{Deserialize, Serialize};
use ztlake_normalize::schema::{Provider, Table, UTC};
use ztlake_normalize::values::day_of;

use crate::error::{Error, Result};
use crate::rule::Severity;

/// Most `event_uid`s kept per alert (the smallest, so the choice does not depend on order).
pub const MAX_EVIDENCE_UIDS: usize = 100;

/// Most windows (or runs) kept in an alert's evidence.
pub const MAX_WINDOWS: usize = 2000;

/// Windows whose summary is kept (later windows keep only their count).
pub const MAX_SUMMARIES: usize = 20;

/// The alert id of `rule_id`, dedupe `key` values and dedupe `bucket`.
pub fn alert_id(rule_id: &str, key: &[Option<String>], bucket: i64) -> String {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(rule_id.as_bytes());
    for value in key {
        bytes.push(0x1f);
        match value {
            Some(v) => {
                bytes.push(b's');
                bytes.extend_from_slice(v.as_bytes());
            }
            None => bytes.push(b'n'),
        }
    }
    bytes.push(0x1f);
    bytes.extend_from_slice(bucket.to_string().as_bytes());
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))
}

/// How an alert's count follows from its windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Streaming windows are disjoint: the counts add up.
    #[default]
    Sum,
    /// Scheduled runs overlap (lookback ≥ interval): the largest count.
    Max,
}

/// The contribution of one window (or scheduled run) to an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowEvidence {
    /// Start of the window (streaming) or time of the run (scheduled), RFC 3339.
    pub start: String,
    /// Matches in the window.
    pub count: i64,
    /// `name=value` summary of the matching rows (empty past the first windows).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

/// An alert's evidence summary (stored as JSON in the `evidence` column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Evidence {
    /// How `count` follows from the windows.
    pub aggregate: Aggregate,
    /// The windows, by start time.
    pub windows: Vec<WindowEvidence>,
}

impl Evidence {
    fn count(&self) -> i64 {
        let counts = self.windows.iter().map(|w| w.count);
        match self.aggregate {
            Aggregate::Sum => counts.sum(),
            Aggregate::Max => counts.max().unwrap_or(0),
        }
    }

    /// Merge `other` into a copy of this evidence: per window the larger count wins (the same
    /// window computed twice is the same data, or more of it), windows are unioned.
    fn merge(&self, other: &Evidence) -> Evidence {
        let mut by_start: BTreeMap<String, WindowEvidence> = BTreeMap::new();
        for w in self.windows.iter().chain(&other.windows) {
            match by_start.get_mut(&w.start) {
                Some(have) if w.count > have.count => *have = w.clone(),
                Some(_) => {}
                None => {
                    by_start.insert(w.start.clone(), w.clone());
                }
            }
        }
        let mut windows: Vec<WindowEvidence> = by_start.into_values().collect();
        windows.truncate(MAX_WINDOWS);
        for w in windows.iter_mut().skip(MAX_SUMMARIES) {
            w.summary.clear();
        }
        Evidence { aggregate: self.aggregate, windows }
    }
}

/// An alert: the latest state of one `alert_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic id (see the module docs).
    pub alert_id: String,
    /// The rule that raised it.
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// The rule's severity.
    pub severity: Severity,
    /// Provider of the evidence rows, `multi` when several.
    pub provider: String,
    /// Entity column → value (text, capped; NULL as `null`).
    pub entity: BTreeMap<String, Option<String>>,
    /// Dedupe key values.
    pub dedupe_key: Vec<Option<String>>,
    /// Earliest event, µs since the epoch.
    pub first_seen: i64,
    /// Latest event, µs since the epoch.
    pub last_seen: i64,
    /// Events or matches behind the alert.
    pub count: i64,
    /// Runbook id.
    pub runbook: String,
    /// `event_uid`s behind the alert (sorted, at most [`MAX_EVIDENCE_UIDS`]).
    pub evidence_uids: Vec<String>,
    /// Per-window counts and summaries.
    pub evidence: Evidence,
    /// ATT&CK ids and `zero_trust:<control>`.
    pub tags: Vec<String>,
    /// When this state was computed, µs since the epoch.
    pub updated: i64,
}

/// The provider value for a set of evidence providers.
pub(crate) fn provider_of(providers: &BTreeSet<String>) -> String {
    // A set: two known names are two providers.
    let mut known = providers
        .iter()
        .map(String::as_str)
        .filter(|p| Provider::from_name(p).is_some_and(|p| p != Provider::Unknown));
    match (known.next(), known.next()) {
        (None, _) => Provider::Unknown.as_str().to_owned(),
        (Some(one), None) => one.to_owned(),
        (Some(_), Some(_)) => Provider::Multi.as_str().to_owned(),
    }
}

/// RFC 3339 text of a µs timestamp.
pub fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}

impl Alert {
    /// The same alert, ignoring `updated` (what reprocessing must reproduce).
    pub fn same_state(&self, other: &Alert) -> bool {
        // Destructured so that a new field is compared unless it is named here.
        let Alert {
            alert_id,
            rule_id,
            title,
            severity,
            provider,
            entity,
            dedupe_key,
            first_seen,
            last_seen,
            count,
            runbook,
            evidence_uids,
            evidence,
            tags,
            updated: _,
        } = self;
        *alert_id == other.alert_id
            && *first_seen == other.first_seen
            && *last_seen == other.last_seen
            && *count == other.count
            && *severity == other.severity
            && *rule_id == other.rule_id
            && *title == other.title
            && *provider == other.provider
            && *entity == other.entity
            && *dedupe_key == other.dedupe_key
            && *runbook == other.runbook
            && *evidence_uids == other.evidence_uids
            && *evidence == other.evidence
            && *tags == other.tags
    }

    /// Merge a newly computed state of this alert into this stored one. Idempotent:
    /// `a.merge(&a)` is `a`, and merging the same new state twice changes nothing more.
    pub fn merge(&self, new: &Alert) -> Alert {
        let evidence = self.evidence.merge(&new.evidence);
        let mut uids: Vec<String> =
            self.evidence_uids.iter().chain(&new.evidence_uids).cloned().collect();
        uids.sort_unstable();
        uids.dedup();
        uids.truncate(MAX_EVIDENCE_UIDS);
        let mut providers = BTreeSet::new();
        providers.insert(self.provider.clone());
        providers.insert(new.provider.clone());
        let provider = if providers.contains(Provider::Multi.as_str()) {
            Provider::Multi.as_str().to_owned()
        } else {
            provider_of(&providers)
        };
        let earliest = if new.first_seen < self.first_seen { new } else { self };
        Alert {
            alert_id: self.alert_id.clone(),
            rule_id: self.rule_id.clone(),
            title: new.title.clone(),
            severity: new.severity,
            provider,
            entity: earliest.entity.clone(),
            dedupe_key: self.dedupe_key.clone(),
            first_seen: self.first_seen.min(new.first_seen),
            last_seen: self.last_seen.max(new.last_seen),
            count: evidence.count(),
            runbook: new.runbook.clone(),
            evidence_uids: uids,
            evidence,
            tags: new.tags.clone(),
            updated: new.updated.max(self.updated),
        }
    }

    /// The entity as a JSON object.
    pub fn entity_json(&self) -> String {
        serde_json::to_string(&self.entity).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Values for a runbook's `{{placeholders}}`: the entity columns, then the alert's fields
    /// (`alert_id`, `rule_id`, `title`, `severity`, `provider`, `first_seen`, `last_seen`,
    /// `count`, `runbook`).
    pub fn placeholders(&self) -> BTreeMap<String, String> {
        let mut v: BTreeMap<String, String> = self
            .entity
            .iter()
            .map(|(k, val)| (k.clone(), val.clone().unwrap_or_default()))
            .collect();
        v.insert("alert_id".into(), self.alert_id.clone());
        v.insert("rule_id".into(), self.rule_id.clone());
        v.insert("title".into(), self.title.clone());
        v.insert("severity".into(), self.severity.to_string());
        v.insert("provider".into(), self.provider.clone());
        v.insert("first_seen".into(), rfc3339(self.first_seen));
        v.insert("last_seen".into(), rfc3339(self.last_seen));
        v.insert("count".into(), self.count.to_string());
        v.insert("runbook".into(), self.runbook.clone());
        v
    }
}

fn ts(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter(values).with_timezone(UTC))
}

/// Cast the column `name` of `batch` to `to` (lake reads may hand out other string types).
fn col(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let c = batch
        .column_by_name(name)
        .ok_or_else(|| Error::shape("alerts", format!("no column {name}")))?;
    if c.data_type() == to {
        return Ok(c.clone());
    }
    arrow::compute::cast(c, to).map_err(|e| Error::arrow("alerts", "reading alerts", e))
}

fn text_at(a: &StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_owned())
}

/// Build batches with `schema` (columns in its order) from arrays named in `arrays`.
fn assemble(table: Table, arrays: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let schema = table.schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            arrays
                .iter()
                .find(|(n, _)| *n == f.name())
                .map(|(_, a)| a.clone())
                .ok_or_else(|| Error::shape(table.name(), format!("no array for {}", f.name())))
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::arrow(table.name(), "building rows", e))
}

/// The rows of `alerts` in the `alerts` table's schema.
pub fn alerts_batch(alerts: &[Alert]) -> Result<RecordBatch> {
    let mut rows = AlertRows::with_capacity(alerts.len());
    for a in alerts {
        rows.push(&AlertRow::of(a));
    }
    rows.finish()
}

/// One alert's values, borrowed: what a row of the `alerts` table is made of. Built from an
/// [`Alert`] ([`AlertRow::of`]) or straight from an engine's alert state (no [`Alert`] made).
pub(crate) struct AlertRow<'a> {
    pub(crate) alert_id: &'a str,
    pub(crate) rule_id: &'a str,
    pub(crate) title: &'a str,
    pub(crate) severity: Severity,
    pub(crate) provider: &'a str,
    pub(crate) entity: &'a BTreeMap<String, Option<String>>,
    pub(crate) dedupe_key: &'a [Option<String>],
    pub(crate) first_seen: i64,
    pub(crate) last_seen: i64,
    pub(crate) count: i64,
    pub(crate) runbook: &'a str,
    pub(crate) evidence_uids: &'a [String],
    pub(crate) evidence: EvidenceJson<'a>,
    pub(crate) tags: &'a [String],
    pub(crate) updated: i64,
}

impl<'a> AlertRow<'a> {
    /// The row of `a`.
    pub(crate) fn of(a: &'a Alert) -> AlertRow<'a> {
        let windows = a
            .evidence
            .windows
            .iter()
            .map(|w| WindowJson { start: &w.start, count: w.count, summary: &w.summary })
            .collect();
        AlertRow {
            alert_id: &a.alert_id,
            rule_id: &a.rule_id,
            title: &a.title,
            severity: a.severity,
            provider: &a.provider,
            entity: &a.entity,
            dedupe_key: &a.dedupe_key,
            first_seen: a.first_seen,
            last_seen: a.last_seen,
            count: a.count,
            runbook: &a.runbook,
            evidence_uids: &a.evidence_uids,
            evidence: EvidenceJson { aggregate: a.evidence.aggregate, windows },
            tags: &a.tags,
            updated: a.updated,
        }
    }
}

/// [`Evidence`] borrowed: serializes to the same JSON.
#[derive(Serialize)]
pub(crate) struct EvidenceJson<'a> {
    pub(crate) aggregate: Aggregate,
    pub(crate) windows: Vec<WindowJson<'a>>,
}

/// [`WindowEvidence`] borrowed: serializes to the same JSON.
#[derive(Serialize)]
pub(crate) struct WindowJson<'a> {
    pub(crate) start: &'a str,
    pub(crate) count: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(crate) summary: &'a str,
}

/// The columns of the `alerts` table, filled one alert at a time: text and JSON are written
/// into the column buffers (through one reused buffer), no allocation per row.
pub(crate) struct AlertRows {
    alert_id: StringBuilder,
    rule_id: StringBuilder,
    title: StringBuilder,
    severity: StringBuilder,
    provider: StringBuilder,
    entity: StringBuilder,
    dedupe_key: StringBuilder,
    runbook: StringBuilder,
    evidence: StringBuilder,
    evidence_uids: ListBuilder<StringBuilder>,
    tags: ListBuilder<StringBuilder>,
    first_seen: Vec<i64>,
    last_seen: Vec<i64>,
    count: Vec<i64>,
    updated: Vec<i64>,
    buf: Vec<u8>,
}

impl AlertRows {
    pub(crate) fn with_capacity(n: usize) -> AlertRows {
        let text = |bytes: usize| StringBuilder::with_capacity(n, n * bytes);
        AlertRows {
            alert_id: text(16),
            rule_id: text(32),
            title: text(48),
            severity: text(8),
            provider: text(8),
            entity: text(64),
            dedupe_key: text(32),
            runbook: text(32),
            evidence: text(128),
            evidence_uids: ListBuilder::new(StringBuilder::new()),
            tags: ListBuilder::new(StringBuilder::new()),
            first_seen: Vec::with_capacity(n),
            last_seen: Vec::with_capacity(n),
            count: Vec::with_capacity(n),
            updated: Vec::with_capacity(n),
            buf: Vec::with_capacity(256),
        }
    }

    /// Append `row`.
    pub(crate) fn push(&mut self, row: &AlertRow<'_>) {
        self.alert_id.append_value(row.alert_id);
        self.rule_id.append_value(row.rule_id);
        self.title.append_value(row.title);
        self.severity.append_value(row.severity.as_str());
        self.provider.append_value(row.provider);
        json(&mut self.entity, &mut self.buf, row.entity, "{}");
        json(&mut self.dedupe_key, &mut self.buf, &row.dedupe_key, "");
        self.runbook.append_value(row.runbook);
        json(&mut self.evidence, &mut self.buf, &row.evidence, "");
        for (list, values) in
            [(&mut self.evidence_uids, row.evidence_uids), (&mut self.tags, row.tags)]
        {
            for v in values {
                list.values().append_value(v);
            }
            list.append(true);
        }
        self.first_seen.push(row.first_seen);
        self.last_seen.push(row.last_seen);
        self.count.push(row.count);
        self.updated.push(row.updated);
    }

    /// The rows, in the `alerts` table's schema.
    pub(crate) fn finish(mut self) -> Result<RecordBatch> {
        let micros = |v: &[i64]| ts(v.iter().copied().map(Some));
        let date = Date32Array::from_iter_values(self.first_seen.iter().map(|&t| day_of(t)));
        let arrays: Vec<(&str, ArrayRef)> = vec![
            ("time", micros(&self.first_seen)),
            ("provider", Arc::new(self.provider.finish())),
            ("alert_id", Arc::new(self.alert_id.finish())),
            ("rule_id", Arc::new(self.rule_id.finish())),
            ("title", Arc::new(self.title.finish())),
            ("severity", Arc::new(self.severity.finish())),
            ("entity", Arc::new(self.entity.finish())),
            ("dedupe_key", Arc::new(self.dedupe_key.finish())),
            ("first_seen", micros(&self.first_seen)),
            ("last_seen", micros(&self.last_seen)),
            ("count", Arc::new(Int64Array::from(std::mem::take(&mut self.count)))),
            ("runbook", Arc::new(self.runbook.finish())),
            ("evidence_uids", Arc::new(self.evidence_uids.finish())),
            ("evidence", Arc::new(self.evidence.finish())),
            ("tags", Arc::new(self.tags.finish())),
            ("updated", micros(&self.updated)),
            ("date", Arc::new(date)),
        ];
        assemble(Table::Alerts, arrays)
    }
}

/// Append `value` as JSON to `b` (`fallback` if it cannot be serialized).
fn json(b: &mut StringBuilder, buf: &mut Vec<u8>, value: &impl Serialize, fallback: &str) {
    buf.clear();
    match serde_json::to_writer(&mut *buf, value).ok().and_then(|()| std::str::from_utf8(buf).ok())
    {
        Some(v) => b.append_value(v),
        None => b.append_value(fallback),
    }
}

/// Alerts read back from rows of the `alerts` table (any column order; string columns of any
/// string type).
pub fn alerts_from_batch(batch: &RecordBatch) -> Result<Vec<Alert>> {
    let utf8 = DataType::Utf8;
    let tsu = DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()));
    let list = DataType::List(Field::new_list_field(DataType::Utf8, true).into());
    let s =
        |n: &str| -> Result<StringArray> { Ok(col(batch, n, &utf8)?.as_string::<i32>().clone()) };
    let (alert_id, rule_id, title, severity) =
        (s("alert_id")?, s("rule_id")?, s("title")?, s("severity")?);
    let (provider, entity, dedupe_key, runbook, evidence) =
        (s("provider")?, s("entity")?, s("dedupe_key")?, s("runbook")?, s("evidence")?);
    let t = |n: &str| -> Result<TimestampMicrosecondArray> {
        Ok(col(batch, n, &tsu)?.as_primitive::<TimestampMicrosecondType>().clone())
    };
    let (first_seen, last_seen, updated) = (t("first_seen")?, t("last_seen")?, t("updated")?);
    let count = col(batch, "count", &DataType::Int64)?;
    let count = count.as_primitive::<Int64Type>();
    let uids = col(batch, "evidence_uids", &list)?;
    let uids = uids.as_list::<i32>();
    let tags = col(batch, "tags", &list)?;
    let tags = tags.as_list::<i32>();
    let strings = |l: &arrow::array::ListArray, i: usize| -> Vec<String> {
        if l.is_null(i) {
            return Vec::new();
        }
        let v = l.value(i);
        v.as_string::<i32>().iter().flatten().map(str::to_owned).collect()
    };
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let first = if first_seen.is_null(i) { 0 } else { first_seen.value(i) };
        out.push(Alert {
            alert_id: text_at(&alert_id, i).unwrap_or_default(),
            rule_id: text_at(&rule_id, i).unwrap_or_default(),
            title: text_at(&title, i).unwrap_or_default(),
            severity: text_at(&severity, i)
                .and_then(|s| Severity::from_name(&s))
                .unwrap_or_default(),
            provider: text_at(&provider, i).unwrap_or_else(|| "unknown".into()),
            entity: text_at(&entity, i)
                .and_then(|e| serde_json::from_str(&e).ok())
                .unwrap_or_default(),
            dedupe_key: text_at(&dedupe_key, i)
                .and_then(|e| serde_json::from_str(&e).ok())
                .unwrap_or_default(),
            first_seen: first,
            last_seen: if last_seen.is_null(i) { first } else { last_seen.value(i) },
            count: if count.is_null(i) { 0 } else { count.value(i) },
            runbook: text_at(&runbook, i).unwrap_or_default(),
            evidence_uids: strings(uids, i),
            evidence: text_at(&evidence, i)
                .and_then(|e| serde_json::from_str(&e).ok())
                .unwrap_or_default(),
            tags: strings(tags, i),
            updated: if updated.is_null(i) { 0 } else { updated.value(i) },
        });
    }
    Ok(out)
}

/// A step in an alert's life (a row of `alert_events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// When it happened, µs.
    pub time: i64,
    /// Provider of the alert.
    pub provider: String,
    /// The alert.
    pub alert_id: String,
    /// raised | updated | notified | delivery_failed | acknowledged | escalated | resolved.
    pub event: String,
    /// Rule of the alert.
    pub rule_id: Option<String>,
    /// Severity of the alert.
    pub severity: Option<String>,
    /// Delivery channel (notification steps).
    pub channel: Option<String>,
    /// On-call target or recipient.
    pub target: Option<String>,
    /// Who acknowledged, resolved or escalated.
    pub actor: Option<String>,
    /// Note or other detail.
    pub detail: Option<String>,
    /// Stable id of the step: writing the same step twice is recognized.
    pub event_id: String,
}

impl AlertEvent {
    /// `raised` for a new alert: one per alert, ever.
    pub fn raised(alert: &Alert, now: i64) -> AlertEvent {
        AlertEvent::of(alert, "raised", now, None, &[])
    }

    /// `updated` for a changed alert: one per distinct state (count, first/last seen).
    pub fn updated(alert: &Alert, previous: &Alert, now: i64) -> AlertEvent {
        let detail = format!(
            "count {} → {}, last seen {} → {}",
            previous.count,
            alert.count,
            rfc3339(previous.last_seen),
            rfc3339(alert.last_seen)
        );
        let state = [alert.count, alert.first_seen, alert.last_seen];
        AlertEvent::of(alert, "updated", now, Some(detail), &state)
    }

    /// A lifecycle step (`acknowledged`, `resolved`, …) by `actor`, identified by its time.
    pub fn lifecycle(
        alert: &Alert,
        event: &str,
        actor: &str,
        detail: Option<String>,
        now: i64,
    ) -> AlertEvent {
        let mut e = AlertEvent::of(alert, event, now, detail, &[now]);
        e.actor = Some(actor.to_owned());
        e
    }

    /// The `raised` events of alerts given as rows of the `alerts` table, as rows of the
    /// `alert_events` table: [`events_batch`] of [`AlertEvent::raised`] of each row's alert,
    /// made column by column — the alert's columns are shared, only the event ids are computed.
    ///
    /// # Errors
    /// The rows lack a column of the `alerts` table.
    pub fn raised_rows(rows: &RecordBatch, now: i64) -> Result<RecordBatch> {
        let n = rows.num_rows();
        let utf8 = DataType::Utf8;
        let ids = col(rows, "alert_id", &utf8)?;
        let mut event_ids = StringBuilder::with_capacity(n, n * 16);
        let mut bytes = Vec::with_capacity(32);
        for id in ids.as_string::<i32>().iter() {
            let hash = event_hash(&mut bytes, id.unwrap_or_default(), "raised", &[]);
            // Written into the column's buffer, then closed as the row's value.
            let _ = write!(event_ids, "{hash:016x}");
            event_ids.append_value("");
        }
        let none: ArrayRef = arrow::array::new_null_array(&utf8, n);
        let arrays: Vec<(&str, ArrayRef)> = vec![
            ("time", ts(std::iter::repeat_n(Some(now), n))),
            ("provider", col(rows, "provider", &utf8)?),
            ("alert_id", ids),
            ("event", Arc::new(StringArray::from_iter_values(std::iter::repeat_n("raised", n)))),
            ("rule_id", col(rows, "rule_id", &utf8)?),
            ("severity", col(rows, "severity", &utf8)?),
            ("channel", none.clone()),
            ("target", none.clone()),
            ("actor", none.clone()),
            ("detail", none),
            ("event_id", Arc::new(event_ids.finish())),
            ("date", Arc::new(Date32Array::from_iter_values(std::iter::repeat_n(day_of(now), n)))),
        ];
        assemble(Table::AlertEvents, arrays)
    }

    fn of(
        alert: &Alert,
        event: &str,
        now: i64,
        detail: Option<String>,
        state: &[i64],
    ) -> AlertEvent {
        let hash = event_hash(&mut Vec::new(), &alert.alert_id, event, state);
        AlertEvent {
            time: now,
            provider: alert.provider.clone(),
            alert_id: alert.alert_id.clone(),
            event: event.to_owned(),
            rule_id: Some(alert.rule_id.clone()),
            severity: Some(alert.severity.to_string()),
            channel: None,
            target: None,
            actor: None,
            detail,
            event_id: format!("{hash:016x}"),
        }
    }
}

/// The hash behind an `event_id` (16 hex digits of it): xxh3 of the alert id, then `0x1F` and
/// the step's name, then `0x1F` and each `state` value in decimal. `bytes` is scratch space.
fn event_hash(bytes: &mut Vec<u8>, alert_id: &str, event: &str, state: &[i64]) -> u64 {
    bytes.clear();
    bytes.extend_from_slice(alert_id.as_bytes());
    bytes.push(0x1f);
    bytes.extend_from_slice(event.as_bytes());
    for v in state {
        bytes.push(0x1f);
        bytes.extend_from_slice(v.to_string().as_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// The rows of `events` in the `alert_events` table's schema.
pub fn events_batch(events: &[AlertEvent]) -> Result<RecordBatch> {
    let opt = |f: &dyn Fn(&AlertEvent) -> Option<&str>| -> ArrayRef {
        Arc::new(StringArray::from_iter(events.iter().map(f)))
    };
    let arrays: Vec<(&str, ArrayRef)> = vec![
        ("time", ts(events.iter().map(|e| Some(e.time)))),
        ("provider", opt(&|e| Some(&e.provider))),
        ("alert_id", opt(&|e| Some(&e.alert_id))),
        ("event", opt(&|e| Some(&e.event))),
        ("rule_id", opt(&|e| e.rule_id.as_deref())),
        ("severity", opt(&|e| e.severity.as_deref())),
        ("channel", opt(&|e| e.channel.as_deref())),
        ("target", opt(&|e| e.target.as_deref())),
        ("actor", opt(&|e| e.actor.as_deref())),
        ("detail", opt(&|e| e.detail.as_deref())),
        ("event_id", opt(&|e| Some(&e.event_id))),
        ("date", Arc::new(Date32Array::from_iter_values(events.iter().map(|e| day_of(e.time))))),
    ];
    assemble(Table::AlertEvents, arrays)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(id: &str, windows: &[(&str, i64)]) -> Alert {
        let evidence = Evidence {
            aggregate: Aggregate::Sum,
            windows: windows
                .iter()
                .map(|(s, c)| WindowEvidence {
                    start: (*s).into(),
                    count: *c,
                    summary: String::new(),
                })
                .collect(),
        };
        Alert {
            alert_id: id.into(),
            rule_id: "zt-x".into(),
            title: "X".into(),
            severity: Severity::High,
            provider: "aws".into(),
            entity: BTreeMap::from([("dst_ip".to_owned(), Some("10.0.0.5".to_owned()))]),
            dedupe_key: vec![Some("10.0.0.5".into())],
            first_seen: 1_700_000_000_000_000,
            last_seen: 1_700_000_060_000_000,
            count: evidence.count(),
            runbook: "rb".into(),
            evidence_uids: vec!["a".into(), "b".into()],
            evidence,
            tags: vec!["T1133".into()],
            updated: 5,
        }
    }

    #[test]
    fn ids_are_deterministic_and_distinguish_null() {
        let a = alert_id("r", &[Some("10.0.0.5".into()), Some("22".into())], 19_675);
        assert_eq!(a, alert_id("r", &[Some("10.0.0.5".into()), Some("22".into())], 19_675));
        assert_eq!(a.len(), 16);
        assert_ne!(a, alert_id("r", &[Some("10.0.0.5".into()), Some("22".into())], 19_676));
        assert_ne!(a, alert_id("r2", &[Some("10.0.0.5".into()), Some("22".into())], 19_675));
        assert_ne!(alert_id("r", &[None], 1), alert_id("r", &[Some(String::new())], 1));
        assert_ne!(
            alert_id("r", &[Some("a".into()), Some("b".into())], 1),
            alert_id("r", &[Some("ab".into())], 1)
        );
    }

    #[test]
    fn merging_is_idempotent_and_adds_windows() {
        let stored = sample("1", &[("w1", 3), ("w2", 1)]);
        assert!(stored.merge(&stored).same_state(&stored));
        let mut more = sample("1", &[("w2", 2), ("w3", 4)]);
        more.provider = "gcp".into();
        more.evidence_uids = vec!["c".into()];
        more.last_seen += 600_000_000;
        let merged = stored.merge(&more);
        assert_eq!(merged.count, 3 + 2 + 4, "per window the larger count, summed");
        assert_eq!(merged.provider, "multi");
        assert_eq!(merged.evidence_uids, ["a", "b", "c"]);
        assert_eq!(merged.last_seen, more.last_seen);
        assert!(merged.merge(&more).same_state(&merged), "merging twice changes nothing");
    }

    #[test]
    fn rows_round_trip() {
        let mut a = sample("00000000000000aa", &[("2023-11-14T22:10:00Z", 2)]);
        a.entity.insert("evil".into(), Some("\"},{\"x\":1\n\u{1b}[31m".into()));
        a.dedupe_key.push(None);
        let batch = alerts_batch(std::slice::from_ref(&a)).expect("batch");
        assert_eq!(batch.schema(), Table::Alerts.schema());
        let back = alerts_from_batch(&batch).expect("read");
        assert_eq!(back, [a.clone()]);
        let entity = batch.column_by_name("entity").expect("entity");
        let text = entity.as_string::<i32>().value(0);
        let parsed: serde_json::Value = serde_json::from_str(text).expect("entity is JSON");
        assert_eq!(parsed["evil"], "\"},{\"x\":1\n\u{1b}[31m", "hostile values stay data");
        let raised = AlertEvent::raised(&a, 10);
        assert_eq!(raised.event_id, AlertEvent::raised(&a, 99).event_id, "one raised id per alert");
        let mut b = a.clone();
        b.count += 1;
        let u1 = AlertEvent::updated(&b, &a, 10);
        assert_ne!(u1.event_id, raised.event_id);
        assert_eq!(u1.event_id, AlertEvent::updated(&b, &a, 20).event_id);
        let events = events_batch(&[raised, u1]).expect("events");
        assert_eq!(events.schema(), Table::AlertEvents.schema());
        assert_eq!(events.num_rows(), 2);
    }
}
