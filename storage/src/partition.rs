//! Partitioning of canonical batches (storage stage).
//!
//! Every table is partitioned by `provider` and `date` (`PARTITION_COLUMNS`). A partition value
//! never comes raw from a record: `provider` must be one of `Provider::ALL` and `date` a day of
//! the years 0000–9999, formatted `YYYY-MM-DD`; anything else is rejected before a byte is
//! written. [`split`] cuts a batch into one piece per partition, without the partition columns
//! (they live in the directory names and the Delta log). Batches of one partition — the common
//! case — are detected with a min/max check and passed on without copying; rows grouped in
//! runs (input sorted by time) are sliced, not copied.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{max, max_string, min, min_string, take_record_batch};
use arrow::datatypes::{Date32Type, TimestampMicrosecondType};
use chrono::{Datelike, NaiveDate};
use ztlake_normalize::schema::{Provider, Table};

use crate::error::{Error, Result};
use crate::layout::data_column_indices;

/// Microseconds per day.
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days between 0001-01-01 (chrono's day 1 of the common era) and 1970-01-01 (Date32 day 0).
const UNIX_EPOCH_FROM_CE: i32 = 719_163;

/// The partition a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PartitionKey {
    /// The `provider` partition value.
    pub(crate) provider: Provider,
    /// The `date` partition value.
    pub(crate) date: NaiveDate,
}

impl PartitionKey {
    /// The `date` value as stored in paths and the Delta log (`YYYY-MM-DD`).
    pub(crate) fn date_value(&self) -> String {
        self.date.format("%Y-%m-%d").to_string()
    }

    /// The partition directory relative to the table root: `provider=<p>/date=<YYYY-MM-DD>`.
    pub(crate) fn dir(&self) -> String {
        format!("provider={}/date={}", self.provider.as_str(), self.date_value())
    }

    /// Parse partition values read back from the Delta log.
    pub(crate) fn parse(provider: &str, date: &str) -> Option<PartitionKey> {
        let provider = Provider::from_name(provider)?;
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
        Some(PartitionKey { provider, date })
    }
}

/// A part of a batch that belongs to one partition, without the partition columns.
#[derive(Debug)]
pub(crate) struct Piece {
    /// Its partition.
    pub(crate) key: PartitionKey,
    /// Its rows, in the data-file schema.
    pub(crate) batch: RecordBatch,
}

/// The calendar day of a Date32 value, if it has a four-digit year.
pub(crate) fn date_from_days(days: i32) -> Option<NaiveDate> {
    let date = NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_FROM_CE)?)?;
    (0..=9999).contains(&date.year()).then_some(date)
}

/// Check that `batch` has exactly the canonical schema of `table`.
pub(crate) fn check_schema(table: Table, batch: &RecordBatch) -> Result<()> {
    let expected = table.schema();
    let found = batch.schema();
    if found.fields().len() != expected.fields().len() {
        return Err(Error::Schema {
            table,
            detail: format!(
                "{} columns, expected {}",
                found.fields().len(),
                expected.fields().len()
            ),
        });
    }
    for (f, e) in found.fields().iter().zip(expected.fields()) {
        if f.name() != e.name()
            || f.data_type() != e.data_type()
            || f.is_nullable() != e.is_nullable()
        {
            return Err(Error::Schema {
                table,
                detail: format!(
                    "column {} {} (nullable: {}), expected {} {} (nullable: {})",
                    f.name(),
                    f.data_type(),
                    f.is_nullable(),
                    e.name(),
                    e.data_type(),
                    e.is_nullable()
                ),
            });
        }
    }
    Ok(())
}

fn bad_provider(table: Table, value: &str) -> Error {
    let shown: String = value.chars().take(64).collect();
    let allowed: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
    Error::Partition {
        table,
        detail: format!("provider {shown:?} is not one of {}", allowed.join(", ")),
    }
}

fn day_of(micros: i64) -> i64 {
    micros.div_euclid(MICROS_PER_DAY)
}

fn wrong_day(table: Table, date: NaiveDate, micros: i64) -> Error {
    let time = chrono::DateTime::from_timestamp_micros(micros)
        .map_or_else(|| format!("{micros} µs"), |t| t.to_rfc3339());
    Error::Partition { table, detail: format!("date {date} is not the UTC day of time {time}") }
}

fn bad_date(table: Table, days: i32) -> Error {
    Error::Partition {
        table,
        detail: format!("date {days} (days since 1970-01-01) is outside the years 0000-9999"),
    }
}

/// Split `batch` (canonical schema of `table`, already checked) into one piece per partition.
///
/// Every partition value is validated; on error nothing is returned.
pub(crate) fn split(table: Table, batch: &RecordBatch) -> Result<Vec<Piece>> {
    let rows = batch.num_rows();
    if rows == 0 {
        return Ok(Vec::new());
    }
    let (Some(p_idx), Some(d_idx), Some(t_idx)) =
        (table.index_of("provider"), table.index_of("date"), table.index_of("time"))
    else {
        return Err(Error::internal(table, "canonical schema lacks provider, date or time"));
    };
    let providers = batch
        .column(p_idx)
        .as_string_opt::<i32>()
        .ok_or_else(|| Error::internal(table, "provider column is not Utf8"))?;
    let dates = batch
        .column(d_idx)
        .as_primitive_opt::<Date32Type>()
        .ok_or_else(|| Error::internal(table, "date column is not Date32"))?;
    let times = batch
        .column(t_idx)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| Error::internal(table, "time column is not Timestamp(µs)"))?;
    if providers.null_count() > 0 || dates.null_count() > 0 || times.null_count() > 0 {
        return Err(Error::Partition { table, detail: "NULL provider, date or time".into() });
    }
    let data = batch
        .project(data_column_indices(table))
        .map_err(|source| Error::Arrow { table, source })?;

    // Fast path: the whole batch is one partition.
    let (p_min, p_max) = (min_string(providers), max_string(providers));
    let (d_min, d_max) = (min(dates), max(dates));
    if let (Some(p), Some(d), Some(t_min), Some(t_max)) = (p_min, d_min, min(times), max(times))
        && p_min == p_max
        && d_min == d_max
    {
        let provider = Provider::from_name(p).ok_or_else(|| bad_provider(table, p))?;
        let date = date_from_days(d).ok_or_else(|| bad_date(table, d))?;
        for t in [t_min, t_max] {
            if day_of(t) != i64::from(d) {
                return Err(wrong_day(table, date, t));
            }
        }
        return Ok(vec![Piece { key: PartitionKey { provider, date }, batch: data }]);
    }

    // General case: find runs of equal keys, then slice (one run) or gather (several runs).
    let mut runs: BTreeMap<PartitionKey, Vec<(usize, usize)>> = BTreeMap::new();
    let mut last_name: Option<&str> = None;
    let mut last_provider = Provider::Unknown;
    let mut last_days: Option<i32> = None;
    let mut last_date = NaiveDate::MIN;
    let mut run: Option<(PartitionKey, usize)> = None;
    for row in 0..rows {
        let name = providers.value(row);
        if last_name != Some(name) {
            last_provider = Provider::from_name(name).ok_or_else(|| bad_provider(table, name))?;
            last_name = Some(name);
        }
        let days = dates.value(row);
        if last_days != Some(days) {
            last_date = date_from_days(days).ok_or_else(|| bad_date(table, days))?;
            last_days = Some(days);
        }
        let time = times.value(row);
        if day_of(time) != i64::from(days) {
            return Err(wrong_day(table, last_date, time));
        }
        let key = PartitionKey { provider: last_provider, date: last_date };
        match run {
            Some((k, _)) if k == key => {}
            Some((k, start)) => {
                runs.entry(k).or_default().push((start, row - start));
                run = Some((key, row));
            }
            None => run = Some((key, row)),
        }
    }
    if let Some((k, start)) = run {
        runs.entry(k).or_default().push((start, rows - start));
    }

    let mut pieces = Vec::with_capacity(runs.len());
    for (key, spans) in runs {
        let piece = if let [(start, len)] = spans[..] {
            data.slice(start, len)
        } else {
            let indices: UInt32Array = spans
                .iter()
                .flat_map(|&(start, len)| start..start + len)
                .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
                .collect();
            take_record_batch(&data, &indices).map_err(|source| Error::Arrow { table, source })?
        };
        pieces.push(Piece { key, batch: piece });
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Date32Array};

    use super::*;
    use crate::test_util::{flows_batch, noon};

    fn day(s: &str) -> i32 {
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        d.num_days_from_ce() - UNIX_EPOCH_FROM_CE
    }

    #[test]
    fn one_partition_passes_through_without_partition_columns() {
        let batch = flows_batch(&[("aws", "2024-01-02", 1_704_153_600_000_000); 10], 0);
        let pieces = split(Table::Flows, &batch).expect("split");
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].key.dir(), "provider=aws/date=2024-01-02");
        assert_eq!(pieces[0].batch.num_rows(), 10);
        assert!(pieces[0].batch.schema().field_with_name("provider").is_err());
    }

    #[test]
    fn mixed_batch_splits_by_provider_and_date() {
        let (t, next_day) = (noon("2024-01-02"), noon("2024-01-03"));
        let rows = [
            ("aws", "2024-01-02", t),
            ("aws", "2024-01-02", t),
            ("gcp", "2024-01-02", t),
            ("aws", "2024-01-03", next_day),
            ("aws", "2024-01-02", t),
        ];
        let batch = flows_batch(&rows, 0);
        let pieces = split(Table::Flows, &batch).expect("split");
        let got: Vec<(String, usize)> =
            pieces.iter().map(|p| (p.key.dir(), p.batch.num_rows())).collect();
        assert_eq!(
            got,
            vec![
                ("provider=aws/date=2024-01-02".to_string(), 3),
                ("provider=aws/date=2024-01-03".to_string(), 1),
                ("provider=gcp/date=2024-01-02".to_string(), 1),
            ]
        );
        // Row order within a partition is kept: event_uid encodes the input row.
        let uid = pieces[0].batch.column_by_name("event_uid").expect("uid").as_string::<i32>();
        let uids: Vec<&str> = uid.iter().map(|v| v.unwrap_or("")).collect();
        assert_eq!(uids, vec!["uid-0", "uid-1", "uid-4"]);
    }

    #[test]
    fn rejects_providers_outside_the_vocabulary() {
        let t = 1_704_153_600_000_000;
        for rows in [
            vec![("../../etc", "2024-01-02", t)],
            vec![("aws", "2024-01-02", t), ("AWS", "2024-01-02", t)],
        ] {
            let err = split(Table::Flows, &flows_batch(&rows, 0)).expect_err("bad provider");
            assert!(matches!(err, Error::Partition { .. }), "{err}");
        }
    }

    #[test]
    fn rejects_dates_beyond_four_digit_years() {
        let batch = flows_batch(&[("aws", "2024-01-02", 0)], 0);
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        let d_idx = Table::Flows.index_of("date").expect("date");
        columns[d_idx] = Arc::new(Date32Array::from(vec![day("2024-01-01") + 3_000_000]));
        let batch = RecordBatch::try_new(batch.schema(), columns).expect("batch");
        assert!(matches!(split(Table::Flows, &batch), Err(Error::Partition { .. })));
    }

    #[test]
    fn rejects_a_date_that_is_not_the_day_of_time() {
        let t = noon("2024-01-02");
        for rows in [
            vec![("aws", "2024-01-03", t)],
            vec![("aws", "2024-01-02", t), ("gcp", "2024-01-01", t)],
        ] {
            let err = split(Table::Flows, &flows_batch(&rows, 0)).expect_err("wrong day");
            assert!(err.to_string().contains("is not the UTC day of time"), "{err}");
        }
        // Midnight belongs to its own day; the last microsecond to the day before.
        let midnight = noon("2024-01-02") - 12 * 3_600_000_000;
        let rows = [("aws", "2024-01-02", midnight), ("aws", "2024-01-01", midnight - 1)];
        assert_eq!(split(Table::Flows, &flows_batch(&rows, 0)).expect("split").len(), 2);
    }

    #[test]
    fn schema_check_names_the_difference() {
        let batch = flows_batch(&[("aws", "2024-01-02", 0)], 0);
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.pop();
        let schema =
            Arc::new(batch.schema().project(&(0..columns.len()).collect::<Vec<_>>()).expect("p"));
        let short = RecordBatch::try_new(schema, columns).expect("batch");
        assert!(matches!(check_schema(Table::Flows, &short), Err(Error::Schema { .. })));
        assert!(check_schema(Table::Flows, &batch).is_ok());
        assert!(check_schema(Table::Signins, &batch).is_err());
    }

    #[test]
    fn parse_round_trips() {
        let key = PartitionKey::parse("azure", "2023-12-31").expect("key");
        assert_eq!(key.dir(), "provider=azure/date=2023-12-31");
        assert!(PartitionKey::parse("nope", "2023-12-31").is_none());
        assert_eq!(date_from_days(0).map(|d| d.to_string()), Some("1970-01-01".into()));
    }
}
