//! The posture report as data: what `ztlake posture --format json` prints and what the
//! terminal table and the HTML page render. Values that come from the lake (offender cells,
//! accounts, severities) are kept as they are here; every renderer escapes them.

use serde::Serialize;

use super::kpi::{Better, Group, Kpi, Unit};
use super::measure::Value;

/// A posture report: every KPI over a period, against the previous period of the same length.
#[derive(Debug, Clone, Serialize)]
pub struct PostureReport {
    /// When the report was computed (RFC 3339, UTC).
    pub generated_at: String,
    /// The current period (whole UTC days).
    pub period: Period,
    /// The period of the same length just before it.
    pub previous_period: Period,
    /// The current period's days (`YYYY-MM-DD`), the x axis of every daily series.
    pub days: Vec<String>,
    /// Every KPI, in the order of the KPI list.
    pub kpis: Vec<KpiReport>,
}

/// A time range `[from, to)`.
#[derive(Debug, Clone, Serialize)]
pub struct Period {
    /// Start (RFC 3339, inclusive).
    pub from: String,
    /// End (RFC 3339, exclusive).
    pub to: String,
    /// Start, µs since the epoch.
    #[serde(skip)]
    pub from_micros: i64,
    /// End, µs since the epoch.
    #[serde(skip)]
    pub to_micros: i64,
}

impl Period {
    /// The range `[from, to)` (µs).
    pub fn new(from: i64, to: i64) -> Period {
        Period { from: rfc3339(from), to: rfc3339(to), from_micros: from, to_micros: to }
    }

    /// `YYYY-MM-DD – YYYY-MM-DD` (last day inclusive).
    pub fn label(&self) -> String {
        let first = super::measure::day_of(self.from_micros);
        let last = super::measure::day_of(self.to_micros.saturating_sub(1));
        format!(
            "{} – {}",
            super::measure::day_text(i64::from(first)),
            super::measure::day_text(i64::from(last))
        )
    }
}

/// RFC 3339 text of an instant (µs), UTC.
pub fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}

/// Whether the change from the previous period is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Moved in the better direction.
    Better,
    /// Moved in the worse direction.
    Worse,
    /// Did not move.
    Unchanged,
    /// No direction is better, or a value is missing.
    Unknown,
}

/// One KPI's results.
#[derive(Debug, Clone, Serialize)]
pub struct KpiReport {
    /// Stable id.
    pub id: String,
    /// Section.
    pub group: Group,
    /// Title.
    pub title: String,
    /// Definition, in words.
    pub definition: String,
    /// Unit of the values.
    pub unit: Unit,
    /// `true` when higher is better, `false` when lower is, `null` for neither.
    pub higher_is_better: Option<bool>,
    /// What `scope` means for this KPI (`account` or `severity`).
    pub scope: String,
    /// The value over the current period.
    pub current: Value,
    /// The value over the previous period.
    pub previous: Value,
    /// `current − previous` when both have a value.
    pub change: Option<f64>,
    /// Whether the change is an improvement.
    pub verdict: Verdict,
    /// Per day of the period, all providers and scopes together.
    pub daily: Vec<DayValue>,
    /// Per provider, one value per day of the period (aligned with the report's `days`).
    pub by_provider: Vec<ProviderSeries>,
    /// Per day × provider × scope (the days with data).
    pub series: Vec<SeriesValue>,
    /// Per provider × scope over the current and previous periods.
    pub breakdown: Vec<Breakdown>,
    /// The top offenders behind the KPI over the current period.
    pub offenders: Option<OffenderTable>,
    /// The facts query as run.
    pub sql: String,
}

impl KpiReport {
    /// The report of `kpi` with its values (verdict and change derived here).
    pub fn new(kpi: &Kpi, current: Value, previous: Value, sql: String) -> KpiReport {
        let change = match (current.value, previous.value) {
            (Some(c), Some(p)) => Some(c - p),
            _ => None,
        };
        let verdict = match (change, kpi.better) {
            (None, _) | (_, Better::Neither) => Verdict::Unknown,
            (Some(d), _) if d.abs() < 1e-9 => Verdict::Unchanged,
            (Some(d), Better::Higher) => {
                if d > 0.0 {
                    Verdict::Better
                } else {
                    Verdict::Worse
                }
            }
            (Some(d), Better::Lower) => {
                if d < 0.0 {
                    Verdict::Better
                } else {
                    Verdict::Worse
                }
            }
        };
        KpiReport {
            id: kpi.id.to_owned(),
            group: kpi.group,
            title: kpi.title.to_owned(),
            definition: kpi.definition.to_owned(),
            unit: kpi.unit(),
            higher_is_better: kpi.better.higher_is_better(),
            scope: kpi.scope.to_owned(),
            current,
            previous,
            change,
            verdict,
            daily: Vec::new(),
            by_provider: Vec::new(),
            series: Vec::new(),
            breakdown: Vec::new(),
            offenders: None,
            sql,
        }
    }
}

/// A day's value.
#[derive(Debug, Clone, Serialize)]
pub struct DayValue {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// The value and its basis.
    #[serde(flatten)]
    pub value: Value,
}

/// One provider's daily values.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderSeries {
    /// Provider.
    pub provider: String,
    /// One value per day of the period (`null`: no data).
    pub values: Vec<Option<f64>>,
}

/// A value of one day, provider and scope.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesValue {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Provider.
    pub provider: String,
    /// Account or severity (`null` when the rows had none).
    pub scope: Option<String>,
    /// The value and its basis.
    #[serde(flatten)]
    pub value: Value,
}

/// The values of one provider and scope.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// Provider.
    pub provider: String,
    /// Account or severity (`null` when the rows had none).
    pub scope: Option<String>,
    /// Over the current period.
    pub current: Value,
    /// Over the previous period.
    pub previous: Value,
}

/// A table of offenders: column names and rows of text cells (`null`: no value).
#[derive(Debug, Clone, Default, Serialize)]
pub struct OffenderTable {
    /// Heading.
    pub title: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows (cells as text, straight from the lake: escape before display).
    pub rows: Vec<Vec<Option<String>>>,
}

/// A value as text in its unit: `87.5%`, `12`, `4m 10s`; `no data` when absent.
pub fn format_value(unit: Unit, value: Option<f64>) -> String {
    let Some(v) = value else { return "no data".to_owned() };
    match unit {
        Unit::Percent => format!("{v:.1}%"),
        Unit::Count => {
            if (v - v.round()).abs() < 1e-9 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        }
        Unit::Seconds => format_duration(v),
    }
}

/// A change as text: `+2.5 pp`, `-3`, `+1h 5m`; empty when absent.
pub fn format_change(unit: Unit, change: Option<f64>) -> String {
    let Some(d) = change else { return String::new() };
    let sign = if d > 0.0 {
        "+"
    } else if d < 0.0 {
        "−"
    } else {
        "±"
    };
    match unit {
        Unit::Percent => format!("{sign}{:.1} pp", d.abs()),
        Unit::Count => format!("{sign}{}", format_value(unit, Some(d.abs()))),
        Unit::Seconds => format!("{sign}{}", format_duration(d.abs())),
    }
}

/// A duration in seconds as `45s`, `4m 10s`, `2h 5m`, `3d 4h`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m {}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h {}m", s / 3_600, (s % 3_600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_format_in_their_unit() {
        assert_eq!(format_value(Unit::Percent, Some(87.54)), "87.5%");
        assert_eq!(format_value(Unit::Count, Some(12.0)), "12");
        assert_eq!(format_value(Unit::Seconds, Some(250.0)), "4m 10s");
        assert_eq!(format_value(Unit::Seconds, Some(7_500.0)), "2h 5m");
        assert_eq!(format_value(Unit::Seconds, Some(277_200.0)), "3d 5h");
        assert_eq!(format_value(Unit::Percent, None), "no data");
        assert_eq!(format_change(Unit::Percent, Some(-2.5)), "−2.5 pp");
        assert_eq!(format_change(Unit::Count, Some(3.0)), "+3");
        assert_eq!(format_change(Unit::Count, None), "");
        assert_eq!(rfc3339(1_714_521_600_000_000), "2024-05-01T00:00:00Z");
    }
}
