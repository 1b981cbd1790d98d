//! From facts to values: the arithmetic of every [`Measure`], for any window of days and any
//! subset of facts (all, one provider, one provider and scope). Pure functions, no IO.
//!
//! A window whose facts looked at no rows (`den` sums to 0, or no facts at all) has no value
//! (`None`, shown as "no data"): an empty day is never a 0 % or a division by zero.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::kpi::{EXPIRY_HORIZON_DAYS, Measure, SILENT_LOOKBACK_DAYS};

/// Microseconds in a day.
pub const DAY_MICROS: i64 = 86_400_000_000;

/// One row of a KPI's facts query.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// UTC day, days since 1970-01-01.
    pub day: i32,
    /// Provider.
    pub provider: String,
    /// Account (or severity for response KPIs); `None` when the rows had none.
    pub scope: Option<String>,
    /// Numerator, count, duration (s) or `not_after` (s), depending on the measure.
    pub num: f64,
    /// Rows looked at.
    pub den: i64,
    /// The thing counted by distinct-style measures.
    pub entity: Option<String>,
}

/// A value with what it was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Value {
    /// The value (percent, count or seconds); `None` when there is no data.
    pub value: Option<f64>,
    /// Shares and means: Σnum (numerator, total seconds); counts: the count; distinct-style
    /// and percentile measures: the number of items.
    pub num: f64,
    /// Rows (or alerts, certificates) the value is computed from.
    pub den: i64,
}

/// A window of UTC days `[first, last]` and the instant it ends (exclusive), in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First day.
    pub first: i32,
    /// Last day (inclusive).
    pub last: i32,
    /// End instant (µs since the epoch, exclusive): the end of `last` or the report's end.
    pub end: i64,
}

impl Window {
    /// The single day `day`.
    pub fn day(day: i32) -> Window {
        Window { first: day, last: day, end: (i64::from(day) + 1) * DAY_MICROS }
    }
}

/// `YYYY-MM-DD` of a day number.
pub fn day_text(day: i64) -> String {
    chrono::DateTime::from_timestamp(day.saturating_mul(86_400), 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day {day}"))
}

/// The day number of an instant (µs).
pub fn day_of(micros: i64) -> i32 {
    i32::try_from(micros.div_euclid(DAY_MICROS)).unwrap_or(if micros < 0 {
        i32::MIN
    } else {
        i32::MAX
    })
}

/// Facts sorted by day, for windowed evaluation.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    rows: Vec<Fact>,
}

impl Facts {
    /// Sort `rows` by day.
    pub fn new(mut rows: Vec<Fact>) -> Facts {
        rows.sort_by_key(|f| f.day);
        Facts { rows }
    }

    /// All rows, by day.
    pub fn rows(&self) -> &[Fact] {
        &self.rows
    }

    /// Rows whose day lies in `[first, last]`.
    fn days(&self, first: i32, last: i32) -> &[Fact] {
        let lo = self.rows.partition_point(|f| f.day < first);
        let hi = self.rows.partition_point(|f| f.day <= last);
        &self.rows[lo..hi.max(lo)]
    }

    /// The distinct providers, sorted.
    pub fn providers(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.rows.iter().map(|f| f.provider.as_str()).collect();
        set.into_iter().map(str::to_owned).collect()
    }

    /// The distinct (provider, scope) pairs, sorted.
    pub fn groups(&self) -> Vec<(String, Option<String>)> {
        let set: BTreeSet<(&str, Option<&str>)> =
            self.rows.iter().map(|f| (f.provider.as_str(), f.scope.as_deref())).collect();
        set.into_iter().map(|(p, s)| (p.to_owned(), s.map(str::to_owned))).collect()
    }

    /// The value of `measure` over `window`, for the facts `keep` accepts.
    pub fn evaluate(
        &self,
        measure: Measure,
        window: Window,
        keep: &dyn Fn(&Fact) -> bool,
    ) -> Value {
        let first = match measure {
            Measure::Silent => window.last.saturating_sub(SILENT_LOOKBACK_DAYS as i32),
            _ => window.first,
        };
        let rows = self.days(first, window.last).iter().filter(|f| keep(f));
        evaluate(measure, rows, window)
    }
}

fn evaluate<'a>(measure: Measure, rows: impl Iterator<Item = &'a Fact>, window: Window) -> Value {
    let mut num = 0.0;
    let mut den = 0i64;
    match measure {
        Measure::Share | Measure::Count | Measure::Mean => {
            for f in rows {
                num += f.num;
                den = den.saturating_add(f.den);
            }
            let value = (den > 0).then(|| match measure {
                Measure::Share => 100.0 * num / den as f64,
                Measure::Mean => num / den as f64,
                _ => num,
            });
            Value { value, num, den }
        }
        Measure::Distinct => {
            let mut seen = BTreeSet::new();
            for f in rows {
                den = den.saturating_add(f.den);
                if let Some(e) = &f.entity {
                    seen.insert(e.as_str());
                }
            }
            let n = seen.len() as f64;
            Value { value: (den > 0).then_some(n), num: n, den }
        }
        Measure::P90 => {
            let mut values: Vec<f64> = Vec::new();
            for f in rows.filter(|f| f.entity.is_some()) {
                den = den.saturating_add(f.den);
                values.push(f.num);
            }
            let n = values.len() as f64;
            Value { value: nearest_rank(&mut values, 0.9), num: n, den }
        }
        Measure::Silent => {
            let silent = silent(rows, window.last);
            let n = silent.as_ref().map_or(0.0, |s| s.len() as f64);
            Value { value: silent.map(|_| n), num: n, den: 0 }
        }
        Measure::Expiring => {
            let mut latest: HashMap<&str, f64> = HashMap::new();
            for f in rows {
                den = den.saturating_add(f.den);
                if let Some(e) = &f.entity {
                    let v = latest.entry(e.as_str()).or_insert(f.num);
                    if f.num > *v {
                        *v = f.num;
                    }
                }
            }
            let end = window.end as f64 / 1e6;
            let horizon = end + f64::from(EXPIRY_HORIZON_DAYS) * 86_400.0;
            let n = latest.values().filter(|&&na| na > end && na <= horizon).count() as f64;
            Value { value: (den > 0).then_some(n), num: n, den }
        }
    }
}

/// Nearest-rank percentile `p` (0 < p ≤ 1) of `values`: the smallest value with at least
/// `p · n` values at or below it. `None` for no values.
pub fn nearest_rank(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (p * values.len() as f64).ceil().max(1.0) as usize;
    values.get(rank.min(values.len()) - 1).copied()
}

/// The entities seen in the lookback days before `last` but not on `last`, each with the last
/// day it was seen; `None` when nothing was seen at all (no data).
fn silent<'a>(rows: impl Iterator<Item = &'a Fact>, last: i32) -> Option<BTreeMap<&'a str, i32>> {
    let mut before: BTreeMap<&str, i32> = BTreeMap::new();
    let mut today: BTreeSet<&str> = BTreeSet::new();
    let mut any = false;
    for f in rows {
        any = true;
        let Some(e) = f.entity.as_deref() else { continue };
        if f.day == last {
            today.insert(e);
        } else {
            let d = before.entry(e).or_insert(f.day);
            *d = (*d).max(f.day);
        }
    }
    if !any {
        return None;
    }
    before.retain(|e, _| !today.contains(e));
    Some(before)
}

/// The entities silent on `last` (as [`Measure::Silent`]) with the last day each was seen.
pub fn silent_entities(facts: &Facts, last: i32) -> Vec<(String, i32)> {
    let rows = facts.days(last.saturating_sub(SILENT_LOOKBACK_DAYS as i32), last).iter();
    silent(rows, last).unwrap_or_default().into_iter().map(|(e, d)| (e.to_owned(), d)).collect()
}

/// Per entity over `[first, last]`: the number of days it was seen and its last day.
pub fn entity_days(facts: &Facts, first: i32, last: i32) -> Vec<(String, usize, i32)> {
    let mut days: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for f in facts.days(first, last) {
        if let Some(e) = f.entity.as_deref() {
            days.entry(e).or_default().insert(f.day);
        }
    }
    days.into_iter()
        .map(|(e, d)| (e.to_owned(), d.len(), d.last().copied().unwrap_or(first)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(day: i32, provider: &str, num: f64, den: i64, entity: Option<&str>) -> Fact {
        Fact {
            day,
            provider: provider.into(),
            scope: Some("acct".into()),
            num,
            den,
            entity: entity.map(Into::into),
        }
    }

    fn all(_: &Fact) -> bool {
        true
    }

    #[test]
    fn shares_sum_numerators_and_denominators_and_empty_windows_have_no_value() {
        let facts =
            Facts::new(vec![fact(10, "aws", 3.0, 4, None), fact(11, "azure", 1.0, 4, None)]);
        let v = facts.evaluate(Measure::Share, Window { first: 10, last: 11, end: 0 }, &all);
        assert_eq!(v, Value { value: Some(50.0), num: 4.0, den: 8 });
        let v = facts.evaluate(Measure::Share, Window::day(10), &|f| f.provider == "aws");
        assert_eq!(v.value, Some(75.0));
        for m in [Measure::Share, Measure::Count, Measure::Mean, Measure::Distinct, Measure::P90] {
            assert_eq!(
                facts.evaluate(m, Window::day(12), &all).value,
                None,
                "{m:?} on an empty day"
            );
        }
        // Rows were looked at but none matched: 0, not "no data".
        let zero = Facts::new(vec![fact(10, "aws", 0.0, 5, None)]);
        assert_eq!(zero.evaluate(Measure::Share, Window::day(10), &all).value, Some(0.0));
        assert_eq!(zero.evaluate(Measure::Count, Window::day(10), &all).value, Some(0.0));
        assert_eq!(zero.evaluate(Measure::Distinct, Window::day(10), &all).value, Some(0.0));
    }

    #[test]
    fn distinct_counts_each_entity_once_per_window() {
        let facts = Facts::new(vec![
            fact(1, "aws", 0.0, 10, None),
            fact(1, "aws", 0.0, 0, Some("a")),
            fact(2, "aws", 0.0, 10, None),
            fact(2, "aws", 0.0, 0, Some("a")),
            fact(2, "aws", 0.0, 0, Some("b")),
        ]);
        assert_eq!(facts.evaluate(Measure::Distinct, Window::day(1), &all).value, Some(1.0));
        assert_eq!(
            facts.evaluate(Measure::Distinct, Window { first: 1, last: 2, end: 0 }, &all).value,
            Some(2.0)
        );
    }

    #[test]
    fn p90_is_nearest_rank() {
        let mut v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&mut v, 0.9), Some(9.0));
        let mut v = vec![5.0, 1.0];
        assert_eq!(nearest_rank(&mut v, 0.9), Some(5.0));
        let mut one = vec![7.0];
        assert_eq!(nearest_rank(&mut one, 0.9), Some(7.0));
        assert_eq!(nearest_rank(&mut [], 0.9), None);
        let facts = Facts::new(
            (1..=20).map(|i| fact(3, "aws", f64::from(i) * 60.0, 1, Some("x"))).collect(),
        );
        assert_eq!(facts.evaluate(Measure::P90, Window::day(3), &all).value, Some(18.0 * 60.0));
        assert_eq!(facts.evaluate(Measure::Mean, Window::day(3), &all).value, Some(10.5 * 60.0));
    }

    #[test]
    fn silent_sources_look_back_seven_days() {
        let facts = Facts::new(vec![
            fact(1, "aws", 0.0, 1, Some("old")), // 9 days before day 10: outside the lookback
            fact(5, "aws", 0.0, 1, Some("a")),
            fact(9, "aws", 0.0, 1, Some("b")),
            fact(10, "aws", 0.0, 1, Some("b")),
        ]);
        assert_eq!(facts.evaluate(Measure::Silent, Window::day(10), &all).value, Some(1.0));
        assert_eq!(silent_entities(&facts, 10), vec![("a".to_owned(), 5)]);
        // Day 11: nothing arrives, both sources fall silent.
        assert_eq!(facts.evaluate(Measure::Silent, Window::day(11), &all).value, Some(2.0));
        // Nothing at all in the lookback: no data.
        assert_eq!(facts.evaluate(Measure::Silent, Window::day(30), &all).value, None);
    }

    #[test]
    fn expiring_uses_the_latest_not_after_per_certificate() {
        let day = 100;
        let end = (i64::from(day) + 1) * DAY_MICROS;
        let s = |days: f64| end as f64 / 1e6 + days * 86_400.0;
        let facts = Facts::new(vec![
            fact(day, "aws", s(3.0), 1, Some("soon")),
            fact(day, "aws", s(-1.0), 1, Some("renewed")),
            fact(day, "aws", s(300.0), 1, Some("renewed")),
            fact(day, "aws", s(14.0), 1, Some("edge")),
            fact(day, "aws", s(14.5), 1, Some("later")),
            fact(day, "aws", s(-2.0), 1, Some("gone")),
        ]);
        let v = facts.evaluate(Measure::Expiring, Window::day(day), &all);
        assert_eq!(v.value, Some(2.0), "soon and edge; renewed has a later not_after");
    }

    #[test]
    fn days_are_utc() {
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(day_text(19_844), "2024-05-01");
        assert_eq!(day_of(1_714_521_600_000_000), 19_844);
        assert_eq!(day_of(-1), -1);
    }
}
