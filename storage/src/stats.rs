//! Delta file statistics (storage stage).
//!
//! Each Add action carries `{"numRecords":N,"minValues":{..},"maxValues":{..},"nullCount":{..}}`
//! so readers skip files by `time`, ports, accounts and other short columns. The statistics are
//! built from the Parquet footer the writer just produced (column-chunk min/max, merged over
//! row groups) and from null counts the encoder tracked while writing, for the columns in
//! [`crate::layout::stats_columns`]. The rules, which keep readers from skipping a file that
//! holds a match:
//! - timestamps are RFC 3339 UTC with millisecond precision, the minimum truncated down and the
//!   maximum rounded up to the next millisecond (readers compare at millisecond precision);
//! - text min/max only when both are exact and at most 32 characters, otherwise omitted;
//! - a min/max is omitted whenever a row group lacks statistics for a column holding values;
//! - booleans, lists and unique-per-row columns carry no min/max.

use chrono::{DateTime, Datelike, SecondsFormat};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;
use serde_json::{Map, Value};
use ztlake_normalize::schema::{Kind, Table};

use crate::layout::{data_columns, stats_columns};

/// Longest text (in characters) whose min/max is recorded.
const MAX_TEXT_STAT_CHARS: usize = 32;

/// A column's bounds over a whole file.
#[derive(Debug, Clone, PartialEq)]
enum Bounds {
    Int(i64, i64),
    Text(String, String),
}

/// The Delta statistics JSON of one data file of `table`.
///
/// `null_counts` holds one count per data column, in data-file column order.
pub(crate) fn delta_stats(
    table: Table,
    meta: &ParquetMetaData,
    null_counts: &[u64],
    num_records: u64,
) -> String {
    let wanted = stats_columns(table);
    let leaves = meta.file_metadata().schema_descr();
    let mut min_values = Map::new();
    let mut max_values = Map::new();
    let mut null_count = Map::new();
    for (i, column) in data_columns(table).enumerate() {
        if !wanted.contains(&column.name) {
            continue;
        }
        if let Some(&nulls) = null_counts.get(i) {
            null_count.insert(column.name.to_string(), Value::from(nulls));
        }
        let Some(leaf) = leaves.columns().iter().position(|c| c.path().parts() == [column.name])
        else {
            continue;
        };
        let Some(bounds) = column_bounds(meta, leaf, column.kind) else {
            continue;
        };
        match (column.kind, bounds) {
            (Kind::Timestamp, Bounds::Int(lo, hi)) => {
                if let (Some(lo), Some(hi)) =
                    (rfc3339_millis(lo.div_euclid(1000)), rfc3339_millis(ceil_millis(hi)))
                {
                    min_values.insert(column.name.to_string(), Value::from(lo));
                    max_values.insert(column.name.to_string(), Value::from(hi));
                }
            }
            (Kind::Int32 | Kind::Int64, Bounds::Int(lo, hi)) => {
                min_values.insert(column.name.to_string(), Value::from(lo));
                max_values.insert(column.name.to_string(), Value::from(hi));
            }
            (Kind::Text, Bounds::Text(lo, hi)) => {
                min_values.insert(column.name.to_string(), Value::from(lo));
                max_values.insert(column.name.to_string(), Value::from(hi));
            }
            _ => {}
        }
    }
    let mut stats = Map::new();
    stats.insert("numRecords".into(), Value::from(num_records));
    stats.insert("minValues".into(), Value::Object(min_values));
    stats.insert("maxValues".into(), Value::Object(max_values));
    stats.insert("nullCount".into(), Value::Object(null_count));
    Value::Object(stats).to_string()
}

/// Merge the bounds of leaf column `leaf` over all row groups; `None` when any row group holding
/// values lacks usable statistics, or when the column holds only NULLs.
fn column_bounds(meta: &ParquetMetaData, leaf: usize, kind: Kind) -> Option<Bounds> {
    let mut merged: Option<Bounds> = None;
    for rg in meta.row_groups() {
        let chunk = rg.column(leaf);
        let stats = chunk.statistics()?;
        if stats.null_count_opt() == Some(u64::try_from(rg.num_rows()).unwrap_or(0)) {
            continue; // only NULLs in this row group
        }
        let bounds = match (kind, stats) {
            (Kind::Int32, Statistics::Int32(v)) => {
                Bounds::Int(i64::from(*v.min_opt()?), i64::from(*v.max_opt()?))
            }
            (Kind::Int64 | Kind::Timestamp, Statistics::Int64(v)) => {
                Bounds::Int(*v.min_opt()?, *v.max_opt()?)
            }
            (Kind::Text, Statistics::ByteArray(v)) => {
                if !v.min_is_exact() || !v.max_is_exact() {
                    return None;
                }
                let lo = v.min_opt()?.as_utf8().ok()?;
                let hi = v.max_opt()?.as_utf8().ok()?;
                if lo.chars().count() > MAX_TEXT_STAT_CHARS
                    || hi.chars().count() > MAX_TEXT_STAT_CHARS
                {
                    return None;
                }
                Bounds::Text(lo.to_string(), hi.to_string())
            }
            _ => return None,
        };
        merged = Some(match (merged, bounds) {
            (None, b) => b,
            (Some(Bounds::Int(a, b)), Bounds::Int(c, d)) => Bounds::Int(a.min(c), b.max(d)),
            (Some(Bounds::Text(a, b)), Bounds::Text(c, d)) => {
                Bounds::Text(if c < a { c } else { a }, if d > b { d } else { b })
            }
            _ => return None,
        });
    }
    merged
}

/// Microseconds rounded up to the next whole millisecond.
fn ceil_millis(micros: i64) -> i64 {
    let ms = micros.div_euclid(1000);
    if micros.rem_euclid(1000) == 0 { ms } else { ms.saturating_add(1) }
}

/// RFC 3339 UTC with milliseconds, for years 0000–9999 (what every Delta reader parses).
fn rfc3339_millis(ms: i64) -> Option<String> {
    let t = DateTime::from_timestamp_millis(ms)?;
    (0..=9999).contains(&t.year()).then(|| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use arrow::array::RecordBatch;
    use parquet::arrow::ArrowWriter;

    use super::*;
    use crate::layout::{data_column_indices, data_schema, writer_properties};
    use crate::test_util::flows_batch;

    fn encode(
        batches: &[RecordBatch],
        row_group_rows: Option<usize>,
    ) -> (ParquetMetaData, Vec<u64>, u64) {
        let dir = tempfile::tempdir().expect("dir");
        let file = File::create(dir.path().join("f.parquet")).expect("file");
        let mut props = writer_properties(Table::Flows, 1).expect("props").into_builder();
        if let Some(rows) = row_group_rows {
            props = props.set_max_row_group_row_count(Some(rows));
        }
        let mut writer =
            ArrowWriter::try_new(file, data_schema(Table::Flows), Some(props.build())).expect("w");
        let mut nulls = vec![0u64; data_schema(Table::Flows).fields().len()];
        let mut rows = 0;
        for b in batches {
            let data = b.project(data_column_indices(Table::Flows)).expect("project");
            for (n, c) in nulls.iter_mut().zip(data.columns()) {
                *n += c.null_count() as u64;
            }
            rows += data.num_rows() as u64;
            writer.write(&data).expect("write");
        }
        (writer.close().expect("close"), nulls, rows)
    }

    #[test]
    fn timestamps_round_outwards_to_milliseconds() {
        assert_eq!(ceil_millis(1_000), 1);
        assert_eq!(ceil_millis(1_001), 2);
        assert_eq!(ceil_millis(-1), 0);
        assert_eq!(ceil_millis(-1_001), -1);
        assert_eq!(rfc3339_millis(1_704_153_600_123).as_deref(), Some("2024-01-02T00:00:00.123Z"));
    }

    #[test]
    fn stats_cover_every_row_group() {
        // time = 2024-01-02T00:00:00.000_500 + i seconds; two row groups of 3 rows.
        let t0 = 1_704_153_600_000_500;
        let rows: Vec<(&str, &str, i64)> =
            (0..6).map(|i| ("aws", "2024-01-02", t0 + i * 1_000_000)).collect();
        let batch = flows_batch(&rows, 0);
        let (meta, nulls, n) = encode(&[batch], Some(3));
        assert_eq!(meta.num_row_groups(), 2);
        let stats: Value =
            serde_json::from_str(&delta_stats(Table::Flows, &meta, &nulls, n)).expect("json");
        assert_eq!(stats["numRecords"], 6);
        assert_eq!(stats["minValues"]["time"], "2024-01-02T00:00:00.000Z");
        assert_eq!(stats["maxValues"]["time"], "2024-01-02T00:00:05.001Z");
        assert_eq!(stats["minValues"]["dst_port"], 0);
        assert_eq!(stats["maxValues"]["dst_port"], 5);
        assert_eq!(stats["minValues"]["account"], "account-0");
        assert!(stats["minValues"].get("event_uid").is_none());
        assert!(stats["nullCount"].get("event_uid").is_none());
        assert!(stats["minValues"].get("encrypted").is_none());
        assert_eq!(stats["nullCount"]["encrypted"], 0);
        assert_eq!(stats["nullCount"]["tls_error"], 6);
        assert!(stats["minValues"].get("tls_error").is_none());
        assert!(stats["minValues"].get("provider").is_none());
    }

    #[test]
    fn long_text_has_no_bounds() {
        let batch = flows_batch(&[("aws", "2024-01-02", 0)], 0);
        let (meta, nulls, n) = encode(&[batch], None);
        let stats: Value =
            serde_json::from_str(&delta_stats(Table::Flows, &meta, &nulls, n)).expect("json");
        // peer_identity in the test rows is a 40+ character SPIFFE id.
        assert!(stats["minValues"].get("peer_identity").is_none());
        assert_eq!(stats["nullCount"]["peer_identity"], 0);
    }
}
