//! Alert candidates: the rows a rule's SQL returns, read into typed values.
//!
//! One result row is one candidate (docs/rules.md "What the SQL returns"): the entity columns,
//! `first_seen`, `last_seen`, `event_uids`, an optional `count`, and every other column as the
//! evidence summary. Values come from attacker-controlled logs: they are kept as text, capped
//! in length, and only ever rendered inside JSON.

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Error, Result};
use crate::rule::Rule;

/// Longest entity or summary value kept, in bytes (longer values are cut, with `…`).
pub const MAX_VALUE_LEN: usize = 256;

/// Longest evidence summary of one window, in bytes.
pub(crate) const MAX_SUMMARY_LEN: usize = 512;

/// Columns with a fixed meaning in a rule's result.
pub(crate) const RESERVED_COLUMNS: [&str; 4] = ["first_seen", "last_seen", "event_uids", "count"];

/// One result row of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Entity column → value (capped).
    pub(crate) entity: BTreeMap<String, Option<String>>,
    /// Dedupe key values (uncapped: they feed the alert id).
    pub(crate) key: Vec<Option<String>>,
    /// Earliest event, µs.
    pub(crate) first_seen: i64,
    /// Latest event, µs.
    pub(crate) last_seen: i64,
    /// Events or matches behind the row.
    pub(crate) count: i64,
    /// Every `event_uid` behind the row, sorted, distinct.
    pub(crate) uids: Vec<String>,
    /// The other columns, `name=value …`.
    pub(crate) summary: String,
}

/// Cut `s` to at most `max` bytes on a character boundary, marking the cut with `…`.
pub fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// [`cap`] of an owned value (no copy when it is short enough).
fn cap_owned(s: String, max: usize) -> String {
    if s.len() <= max { s } else { cap(&s, max) }
}

/// A value for a `name=value` summary: bare when it is plain, else quoted and escaped.
fn summary_value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '/' | '@' | '-' | '_' | ',')
        });
    if plain { cap(v, 128) } else { format!("{:?}", cap(v, 128)) }
}

/// A result column read as text (its formatter made once per batch, not once per value).
struct Texts<'a> {
    array: &'a ArrayRef,
    /// None: the column has no text form (its values read as NULL).
    formatter: Option<ArrayFormatter<'a>>,
}

impl<'a> Texts<'a> {
    fn new(array: &'a ArrayRef, options: &'a FormatOptions<'a>) -> Texts<'a> {
        Texts { array, formatter: ArrayFormatter::try_new(array.as_ref(), options).ok() }
    }

    fn get(&self, i: usize) -> Option<String> {
        if self.array.is_null(i) {
            return None;
        }
        Some(self.formatter.as_ref()?.value(i).to_string())
    }
}

fn column(rule: &Rule, batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| Error::shape(rule.id(), format!("the result has no column {name:?}")))
}

fn micros(rule: &Rule, array: &ArrayRef, name: &str) -> Result<ArrayRef> {
    arrow::compute::cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))
        .map_err(|e| Error::shape(rule.id(), format!("column {name} is not a timestamp: {e}")))
}

/// The candidates in a rule's result batches. Rows without `first_seen` (an aggregate over no
/// rows) are not candidates.
pub(crate) fn extract(rule: &Rule, batches: &[RecordBatch]) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    let options = FormatOptions::default();
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        let entity_arrays: Vec<(&String, ArrayRef)> = rule
            .spec
            .entity
            .iter()
            .map(|n| Ok((n, column(rule, batch, n)?)))
            .collect::<Result<_>>()?;
        let entity: Vec<(&String, Texts)> =
            entity_arrays.iter().map(|(n, a)| (*n, Texts::new(a, &options))).collect();
        let key_arrays: Vec<ArrayRef> =
            rule.dedupe_key.iter().map(|n| column(rule, batch, n)).collect::<Result<_>>()?;
        let key: Vec<Texts> = key_arrays.iter().map(|a| Texts::new(a, &options)).collect();
        let first = micros(rule, &column(rule, batch, "first_seen")?, "first_seen")?;
        let first = first.as_primitive::<TimestampMicrosecondType>();
        let last = micros(rule, &column(rule, batch, "last_seen")?, "last_seen")?;
        let last = last.as_primitive::<TimestampMicrosecondType>();
        let list_type = DataType::List(Field::new_list_field(DataType::Utf8, true).into());
        let uids =
            arrow::compute::cast(&column(rule, batch, "event_uids")?, &list_type).map_err(|e| {
                Error::shape(rule.id(), format!("event_uids is not a list of text: {e}"))
            })?;
        let uids = uids.as_list::<i32>();
        let count =
            match batch.column_by_name("count") {
                Some(c) => Some(arrow::compute::cast(c, &DataType::Int64).map_err(|e| {
                    Error::shape(rule.id(), format!("count is not an integer: {e}"))
                })?),
                None => None,
            };
        let count = count.as_ref().map(|c| c.as_primitive::<Int64Type>().clone());
        let schema = batch.schema();
        let summary_columns: Vec<(&String, Texts)> = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(f, _)| {
                !RESERVED_COLUMNS.contains(&f.name().as_str())
                    && !rule.spec.entity.iter().any(|e| e == f.name())
            })
            .map(|(f, c)| (f.name(), Texts::new(c, &options)))
            .collect();
        for i in 0..batch.num_rows() {
            if first.is_null(i) {
                continue;
            }
            let first_seen = first.value(i);
            let last_seen = if last.is_null(i) { first_seen } else { last.value(i) };
            let mut row_uids: Vec<String> = Vec::new();
            if !uids.is_null(i) {
                let values = uids.value(i);
                let values = values.as_string::<i32>();
                row_uids.extend(values.iter().flatten().map(str::to_owned));
            }
            row_uids.sort_unstable();
            row_uids.dedup();
            let count = match &count {
                Some(c) if !c.is_null(i) => c.value(i),
                _ => row_uids.len() as i64,
            };
            let mut summary = String::new();
            for (name, texts) in &summary_columns {
                if !summary.is_empty() {
                    summary.push(' ');
                }
                summary.push_str(name);
                summary.push('=');
                match texts.get(i) {
                    Some(v) => summary.push_str(&summary_value(&v)),
                    None => summary.push_str("NULL"),
                }
            }
            out.push(Candidate {
                entity: entity
                    .iter()
                    .map(|(n, t)| ((*n).clone(), t.get(i).map(|v| cap_owned(v, MAX_VALUE_LEN))))
                    .collect(),
                key: key.iter().map(|t| t.get(i)).collect(),
                first_seen,
                last_seen: last_seen.max(first_seen),
                count,
                uids: row_uids,
                summary: cap_owned(summary, MAX_SUMMARY_LEN),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_capped_and_quoted() {
        assert_eq!(cap("abc", 10), "abc");
        let long = "é".repeat(200);
        let c = cap(&long, 11);
        assert!(c.len() <= 11 && c.ends_with('…'), "{c}");
        assert_eq!(summary_value("10.0.0.1"), "10.0.0.1");
        assert_eq!(summary_value("a b\"\n"), "\"a b\\\"\\n\"");
        assert_eq!(summary_value(""), "\"\"");
    }
}
