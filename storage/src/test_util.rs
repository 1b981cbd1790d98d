//! Hand-built canonical batches for the storage tests (no parsers involved).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Int32Array, Int64Array, ListBuilder, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondArray,
};
use chrono::{Datelike, NaiveDate};
use ztlake_normalize::schema::{Kind, Table, UTC};

/// A row's partition and time: (provider, YYYY-MM-DD, time in µs since the epoch).
pub(crate) type RowSpec<'a> = (&'a str, &'a str, i64);

fn days(date: &str) -> i32 {
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("test date");
    d.num_days_from_ce() - 719_163
}

/// A batch of `table` with one row per spec; row `i` has event_uid `uid-{offset + i}`.
///
/// Deterministic column values: `account-{i % 3}`, `dst_port = i`, `src_ip 10.0.x.y`,
/// `tls_error` always NULL, `peer_identity` a long SPIFFE id, other nullable text NULL every
/// fifth row, `end_time`/other timestamps = time + 60 s.
pub(crate) fn table_batch(table: Table, rows: &[RowSpec<'_>], offset: usize) -> RecordBatch {
    let n = rows.len();
    let columns: Vec<ArrayRef> = table
        .columns()
        .iter()
        .map(|c| -> ArrayRef {
            match (c.name, c.kind) {
                ("provider", _) => {
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)))
                }
                ("date", _) => {
                    Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| days(r.1))))
                }
                ("time", _) => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.2))
                        .with_timezone(UTC),
                ),
                ("event_uid", _) => Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("uid-{}", offset + i)),
                )),
                ("source", _) => Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("test.log:{}", offset + i + 1)),
                )),
                ("account", _) => Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("account-{}", i % 3)),
                )),
                ("src_ip", _) => Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("10.0.{}.{}", (i / 256) % 256, i % 256)),
                )),
                ("dst_ip", _) => Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("10.1.0.{}", i % 7)),
                )),
                ("tls_error", _) => Arc::new(StringArray::from(vec![None::<&str>; n])),
                ("peer_identity", _) => {
                    Arc::new(StringArray::from_iter_values((0..n).map(|i| {
                        format!("spiffe://cluster.local/ns/default/sa/service-{}", i % 4)
                    })))
                }
                ("dst_port", _) => Arc::new(Int32Array::from_iter_values((0..n).map(|i| i as i32))),
                (name, Kind::Text) => Arc::new(StringArray::from_iter(
                    (0..n)
                        .map(|i| (!c.nullable || i % 5 != 4).then(|| format!("{name}-{}", i % 4))),
                )),
                (_, Kind::Int32) => {
                    Arc::new(Int32Array::from_iter_values((0..n).map(|i| (i % 100) as i32)))
                }
                (_, Kind::Int64) => {
                    Arc::new(Int64Array::from_iter_values((0..n).map(|i| i as i64 * 100)))
                }
                (_, Kind::Bool) => {
                    Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i % 2 == 0))))
                }
                (_, Kind::Timestamp) => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        rows.iter().map(|r| r.2 + 60_000_000),
                    )
                    .with_timezone(UTC),
                ),
                (_, Kind::Date) => {
                    Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| days(r.1))))
                }
                (_, Kind::TextList) => {
                    let mut b = ListBuilder::new(StringBuilder::new());
                    for _ in 0..n {
                        b.values().append_value("a.example.com");
                        b.values().append_value("b.example.com");
                        b.append(true);
                    }
                    Arc::new(b.finish())
                }
            }
        })
        .collect();
    RecordBatch::try_new(table.schema(), columns).expect("canonical test batch")
}

/// A flows batch, see [`table_batch`].
pub(crate) fn flows_batch(rows: &[RowSpec<'_>], offset: usize) -> RecordBatch {
    table_batch(Table::Flows, rows, offset)
}

/// Microseconds since the epoch of an RFC 3339 time.
pub(crate) fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).expect("test time").timestamp_micros()
}

/// Microseconds since the epoch of `date` (YYYY-MM-DD) at 12:00 UTC.
pub(crate) fn noon(date: &str) -> i64 {
    i64::from(days(date)) * 86_400_000_000 + 12 * 3_600_000_000
}
