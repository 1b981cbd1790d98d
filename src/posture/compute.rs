//! Computing the report: the period, the session (lake tables, reference tables, UDFs), each
//! KPI's facts through the hunting session (read-only SQL under its limits), the values per
//! day, provider and scope for the current and previous periods, and the top offenders.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use ztlake_detections::Reference;
use ztlake_normalize::Table;
use ztlake_storage::Lake;

use super::kpi::{self, Bounds, Computed, KPIS, Kpi, Offenders, SILENT_LOOKBACK_DAYS};
use super::measure::{DAY_MICROS, Fact, Facts, Value, Window, day_of, day_text, entity_days};
use super::report::{Breakdown, DayValue, KpiReport, OffenderTable, ProviderSeries, SeriesValue};
use crate::hunt::{HuntLimits, Hunter};

/// The tables the KPIs read; those the lake does not have yet are registered empty.
const READ: [Table; 5] =
    [Table::Flows, Table::Signins, Table::CertEvents, Table::Alerts, Table::AlertEvents];

/// The tables whose latest event ends the default period.
const DATA: [Table; 3] = [Table::Flows, Table::Signins, Table::CertEvents];

/// The report's time ranges (µs, whole UTC days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Start of the current period.
    pub from: i64,
    /// End of the current period (exclusive): the report's end.
    pub to: i64,
    /// Start of the previous period (same length, just before).
    pub previous_from: i64,
}

impl Plan {
    /// `from`/`to` as given (µs, either may be absent), rounded to whole UTC days (from down,
    /// to up); defaults: `to` = the end of the day of `latest` (the latest event, else `now`),
    /// `from` = `to` − `default_days`.
    pub fn new(
        from: Option<i64>,
        to: Option<i64>,
        latest: Option<i64>,
        now: i64,
        default_days: u32,
    ) -> Result<Plan> {
        let ceil_day = |t: i64| (i64::from(day_of(t.saturating_sub(1))) + 1) * DAY_MICROS;
        let floor_day = |t: i64| i64::from(day_of(t)) * DAY_MICROS;
        let to = ceil_day(to.or(latest.map(|t| t.saturating_add(1))).unwrap_or(now));
        let from = floor_day(
            from.unwrap_or_else(|| to.saturating_sub(i64::from(default_days) * DAY_MICROS)),
        );
        if from >= to {
            bail!(
                "the period is empty: --from {} is not before --to {}",
                super::report::rfc3339(from),
                super::report::rfc3339(to)
            );
        }
        Ok(Plan { from, to, previous_from: from - (to - from) })
    }

    /// Start of the facts' window: the previous period minus the silent-source lookback.
    fn query_from(&self) -> i64 {
        self.previous_from - i64::from(SILENT_LOOKBACK_DAYS) * DAY_MICROS
    }

    /// The placeholder values for the KPI queries.
    pub fn bounds(&self, top: usize) -> Bounds {
        Bounds {
            window: kpi::time_filter(self.query_from(), self.to),
            period: kpi::time_filter(self.from, self.to),
            before_to: format!(
                "time < {} AND date <= {}",
                kpi::timestamp_literal(self.to),
                kpi::date_literal(self.to - 1)
            ),
            to: kpi::timestamp_literal(self.to),
            horizon: kpi::timestamp_literal(
                self.to + i64::from(kpi::EXPIRY_HORIZON_DAYS) * DAY_MICROS,
            ),
            top,
        }
    }

    /// The current period's days.
    pub fn days(&self) -> std::ops::Range<i32> {
        day_of(self.from)..day_of(self.to)
    }

    fn current(&self) -> Window {
        Window { first: day_of(self.from), last: day_of(self.to) - 1, end: self.to }
    }

    fn previous(&self) -> Window {
        Window { first: day_of(self.previous_from), last: day_of(self.from) - 1, end: self.from }
    }
}

/// A hunting session over `lake` with the reference tables and UDFs, and every table the KPIs
/// read (empty when the lake has none yet).
pub async fn session(lake: &Lake, reference: &Reference, limits: HuntLimits) -> Result<Hunter> {
    let mut hunter = Hunter::open(lake, limits).await?;
    ztlake_detections::udf::register(hunter.context(), reference)
        .context("registering the reference tables and UDFs")?;
    for name in reference.names() {
        hunter.allow_table(name);
    }
    for t in READ {
        if !hunter.tables().iter().any(|n| n == t.name()) {
            let empty = MemTable::try_new(t.schema(), vec![Vec::new()])?;
            hunter.context().register_table(t.name(), Arc::new(empty))?;
            hunter.allow_table(t.name());
        }
    }
    Ok(hunter)
}

/// The time of the latest event in the data tables (`None` for an empty lake).
pub async fn latest_event(hunter: &Hunter) -> Result<Option<i64>> {
    let sql = DATA
        .iter()
        .map(|t| format!("SELECT max(time) AS t FROM {}", t.name()))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut latest = None;
    for batch in
        hunter.collect(&format!("SELECT arrow_cast(max(t), 'Int64') AS t FROM ({sql})")).await?
    {
        let col = batch.column(0).as_primitive::<Int64Type>();
        if batch.num_rows() > 0 && !col.is_null(0) {
            latest = Some(col.value(0));
        }
    }
    Ok(latest)
}

/// Every KPI's report over `plan`.
pub async fn kpis(hunter: &Hunter, plan: &Plan, top: usize) -> Result<Vec<KpiReport>> {
    let bounds = plan.bounds(top);
    let mut cache: HashMap<String, Arc<Facts>> = HashMap::new();
    let mut out = Vec::with_capacity(KPIS.len());
    for kpi in KPIS {
        let sql = kpi::expand(kpi.facts, &bounds);
        let facts = match cache.get(&sql) {
            Some(f) => f.clone(),
            None => {
                let f = Arc::new(
                    facts(hunter, &sql)
                        .await
                        .with_context(|| format!("posture KPI {}: facts query", kpi.id))?,
                );
                cache.insert(sql.clone(), f.clone());
                f
            }
        };
        let mut report = evaluate(kpi, &facts, plan, sql);
        report.offenders = match kpi.offenders {
            None => None,
            Some(Offenders::Sql { title, sql }) => Some(
                offenders(hunter, title, &kpi::expand(sql, &bounds))
                    .await
                    .with_context(|| format!("posture KPI {}: offenders query", kpi.id))?,
            ),
            Some(Offenders::Computed { title, kind }) => {
                Some(computed_offenders(title, kind, &facts, plan, top))
            }
        };
        out.push(report);
    }
    Ok(out)
}

/// The values of `kpi` from its facts: current and previous periods, daily overall, daily per
/// provider, per day × provider × scope, and per provider × scope.
pub fn evaluate(kpi: &Kpi, facts: &Facts, plan: &Plan, sql: String) -> KpiReport {
    let all = |_: &Fact| true;
    let measure = kpi.measure;
    let day_window = |d: i32| {
        let w = Window::day(d);
        Window { end: w.end.min(plan.to), ..w }
    };
    let current = facts.evaluate(measure, plan.current(), &all);
    let previous = facts.evaluate(measure, plan.previous(), &all);
    let mut report = KpiReport::new(kpi, current, previous, sql);
    report.daily = plan
        .days()
        .map(|d| DayValue {
            day: day_text(i64::from(d)),
            value: facts.evaluate(measure, day_window(d), &all),
        })
        .collect();
    for provider in facts.providers() {
        let mine: Vec<Fact> =
            facts.rows().iter().filter(|f| f.provider == provider).cloned().collect();
        let mine = Facts::new(mine);
        let values =
            plan.days().map(|d| mine.evaluate(measure, day_window(d), &all).value).collect();
        report.by_provider.push(ProviderSeries { provider, values });
    }
    let mut grouped: BTreeMap<(String, Option<String>), Vec<Fact>> = BTreeMap::new();
    for f in facts.rows() {
        grouped.entry((f.provider.clone(), f.scope.clone())).or_default().push(f.clone());
    }
    for ((provider, scope), rows) in grouped {
        let group = Facts::new(rows);
        for d in plan.days() {
            let value = group.evaluate(measure, day_window(d), &all);
            if value.value.is_some() || value.den > 0 {
                report.series.push(SeriesValue {
                    day: day_text(i64::from(d)),
                    provider: provider.clone(),
                    scope: scope.clone(),
                    value,
                });
            }
        }
        let current = group.evaluate(measure, plan.current(), &all);
        let previous = group.evaluate(measure, plan.previous(), &all);
        if has_data(&current) || has_data(&previous) {
            report.breakdown.push(Breakdown { provider, scope, current, previous });
        }
    }
    report
}

fn has_data(v: &Value) -> bool {
    v.value.is_some() || v.den > 0
}

/// Run a facts query and read its rows.
async fn facts(hunter: &Hunter, sql: &str) -> Result<Facts> {
    let mut rows = Vec::new();
    for batch in hunter.collect(sql).await? {
        read_facts(&batch, &mut rows)?;
    }
    Ok(Facts::new(rows))
}

fn column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<Option<Arc<dyn Array>>> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(c) => Ok(Some(
            datafusion::arrow::compute::cast(c, to)
                .with_context(|| format!("facts column {name} as {to}"))?,
        )),
    }
}

fn read_facts(batch: &RecordBatch, out: &mut Vec<Fact>) -> Result<()> {
    let need = |name: &str, to: &DataType| -> Result<Arc<dyn Array>> {
        column(batch, name, to)?.with_context(|| format!("facts query returns no {name} column"))
    };
    let day = need("day", &DataType::Date32)?;
    let provider = need("provider", &DataType::Utf8)?;
    let scope = need("scope", &DataType::Utf8)?;
    let num = need("num", &DataType::Float64)?;
    let den = need("den", &DataType::Int64)?;
    let entity = column(batch, "entity", &DataType::Utf8)?;
    let (day, provider, scope) =
        (day.as_primitive::<Date32Type>(), provider.as_string::<i32>(), scope.as_string::<i32>());
    let (num, den) = (num.as_primitive::<Float64Type>(), den.as_primitive::<Int64Type>());
    let entity = entity.as_ref().map(|e| e.as_string::<i32>());
    let text = |a: &datafusion::arrow::array::StringArray, i: usize| {
        (!a.is_null(i)).then(|| a.value(i).to_owned())
    };
    for i in 0..batch.num_rows() {
        if day.is_null(i) {
            continue;
        }
        out.push(Fact {
            day: day.value(i),
            provider: text(provider, i).unwrap_or_else(|| "unknown".to_owned()),
            scope: text(scope, i),
            num: if num.is_null(i) { 0.0 } else { num.value(i) },
            den: if den.is_null(i) { 0 } else { den.value(i) },
            entity: entity.and_then(|e| text(e, i)),
        });
    }
    Ok(())
}

/// Run an offenders query; every cell as text.
async fn offenders(hunter: &Hunter, title: &str, sql: &str) -> Result<OffenderTable> {
    let batches = hunter.collect(sql).await?;
    let mut table = OffenderTable { title: title.to_owned(), ..OffenderTable::default() };
    let options = FormatOptions::default().with_null("");
    for batch in &batches {
        if table.columns.is_empty() {
            table.columns = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        }
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            table.rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    if table.columns.is_empty() {
        // No batch at all: name the columns from the plan.
        let df = hunter.context().sql(sql).await?;
        table.columns = df.schema().fields().iter().map(|f| f.name().clone()).collect();
    }
    Ok(table)
}

/// A source entity (`table␟provider␟account␟vpc`) as cells.
fn source_cells(entity: &str) -> Vec<Option<String>> {
    let mut parts: Vec<Option<String>> =
        entity.split('\u{1f}').map(|p| (!p.is_empty()).then(|| p.to_owned())).collect();
    parts.resize(4, None);
    parts.truncate(4);
    parts
}

fn computed_offenders(
    title: &str,
    kind: Computed,
    facts: &Facts,
    plan: &Plan,
    top: usize,
) -> OffenderTable {
    let mut table = OffenderTable {
        title: title.to_owned(),
        columns: ["table", "provider", "account", "vpc"].map(str::to_owned).to_vec(),
        rows: Vec::new(),
    };
    let window = plan.current();
    match kind {
        Computed::FewestDays => {
            table.columns.extend(["days_reporting", "last_day"].map(str::to_owned));
            let mut rows = entity_days(facts, window.first, window.last);
            rows.sort_by(|a, b| a.1.cmp(&b.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
            for (entity, days, last) in rows.into_iter().take(top) {
                let mut cells = source_cells(&entity);
                cells.push(Some(days.to_string()));
                cells.push(Some(day_text(i64::from(last))));
                table.rows.push(cells);
            }
        }
        Computed::Silent => {
            table.columns.push("last_day".to_owned());
            let mut rows = super::measure::silent_entities(facts, window.last);
            rows.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
            for (entity, last) in rows.into_iter().take(top) {
                let mut cells = source_cells(&entity);
                cells.push(Some(day_text(i64::from(last))));
                table.rows.push(cells);
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = DAY_MICROS;

    #[test]
    fn periods_are_whole_days_and_default_to_the_last_30_days_of_data() {
        let latest = 19_844 * D + 5 * 3_600_000_000; // 2024-05-01T05:00Z
        let p = Plan::new(None, None, Some(latest), 0, 30).expect("plan");
        assert_eq!(p.to, 19_845 * D);
        assert_eq!(p.from, 19_815 * D);
        assert_eq!(p.previous_from, 19_785 * D);
        assert_eq!(p.days().len(), 30);
        // A given --to at midnight stays; a time rounds up; --from rounds down.
        let p = Plan::new(Some(19_840 * D + 1), Some(19_844 * D), None, 0, 30).expect("plan");
        assert_eq!((p.from, p.to), (19_840 * D, 19_844 * D));
        let p = Plan::new(None, Some(19_844 * D + 1), None, 0, 7).expect("plan");
        assert_eq!((p.from, p.to), (19_838 * D, 19_845 * D));
        // Empty lake: the 30 days up to today.
        let p = Plan::new(None, None, None, 19_844 * D + 10, 30).expect("plan");
        assert_eq!(p.to, 19_845 * D);
        assert!(Plan::new(Some(19_844 * D), Some(19_844 * D), None, 0, 30).is_err());
    }

    #[test]
    fn source_entities_split_into_cells() {
        assert_eq!(
            source_cells("flows\u{1f}aws\u{1f}123\u{1f}vpc-1"),
            vec![
                Some("flows".into()),
                Some("aws".into()),
                Some("123".into()),
                Some("vpc-1".into())
            ]
        );
        assert_eq!(source_cells("signins\u{1f}okta\u{1f}\u{1f}")[2], None);
    }
}
