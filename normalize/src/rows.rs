//! Typed rows of the canonical tables and the Arrow builders they are appended to.
//!
//! A parser fills a row on the stack with borrowed values (`Cow` only owns when a value had to
//! be rewritten, e.g. an IPv6 address compressed) and hands it to [`crate::Output`], which
//! appends it column by column to Arrow builders and adds the columns every row shares
//! (`provider`, `format`, `event_uid`, `source`, `date`). No allocation per row on the common
//! path and no JSON tree in between.
//!
//! Builders keep their size across batches: after a batch is taken, each column starts the next
//! one with room for what the last batch held (rows and value bytes), so filling a batch does not
//! grow and copy buffers. `provider` and `format`, constant over long stretches, are kept as runs
//! and written out in bulk when the batch is taken (same `Utf8` column, no per-row append).
//!
//! Row fields mirror the columns of the same name in [`crate::schema`], where each is documented.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Int32Builder, Int64Builder, ListBuilder, StringArray,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use crate::schema::{Table, UTC};
use crate::values::day_of;

/// Optional text value of a row.
pub type Text<'a> = Option<Cow<'a, str>>;

/// The columns every row of a data table carries, filled by [`crate::Output`], not by parsers.
#[derive(Debug)]
pub(crate) struct Common<'a> {
    pub(crate) provider: &'static str,
    pub(crate) format: &'static str,
    pub(crate) event_uid: &'a str,
    pub(crate) source: &'a str,
}

/// An Arrow builder the lazy wrapper can create and pad with NULLs.
trait ColumnBuilder {
    /// Append `n` NULLs.
    fn push_nulls(&mut self, n: usize);
    /// Take the built array.
    fn finish_array(&mut self) -> ArrayRef;
    /// Bytes of variable-length values held (0 for fixed-width builders): the size hint of the
    /// next batch.
    fn value_bytes(&self) -> usize {
        0
    }
}

macro_rules! column_builder {
    ($($ty:ty),*) => {$(
        impl ColumnBuilder for $ty {
            fn push_nulls(&mut self, n: usize) {
                self.append_nulls(n);
            }
            fn finish_array(&mut self) -> ArrayRef {
                Arc::new(self.finish())
            }
        }
    )*};
}

column_builder!(Int32Builder, Int64Builder, BooleanBuilder, TimestampMicrosecondBuilder);

impl ColumnBuilder for StringBuilder {
    fn push_nulls(&mut self, n: usize) {
        self.append_nulls(n);
    }
    fn finish_array(&mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
    fn value_bytes(&self) -> usize {
        self.values_slice().len()
    }
}

impl ColumnBuilder for ListBuilder<StringBuilder> {
    fn push_nulls(&mut self, n: usize) {
        for _ in 0..n {
            self.append(false);
        }
    }
    fn finish_array(&mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

/// Room for the next batch: what the last one held plus an eighth (the pipeline takes batches
/// at a row threshold checked every few thousand records, so they overshoot it a little), and
/// never less than the configured minimum. Arrow builders restart empty after `finish`; without
/// this every batch would grow each buffer by doubling, copying it each time.
fn next_size(minimum: usize, last: usize) -> usize {
    minimum.max(last.saturating_add(last / 8))
}

/// A `Utf8` column whose values come from a few `'static` names (`provider`, `format`): kept
/// as runs of equal values while a batch fills (one compare per row), written out in bulk.
#[derive(Debug, Default)]
struct RunText {
    runs: Vec<(&'static str, usize)>,
}

impl RunText {
    #[inline]
    fn append(&mut self, value: &'static str) {
        match self.runs.last_mut() {
            Some((last, n)) if std::ptr::eq(*last, value) || *last == value => *n += 1,
            _ => self.runs.push((value, 1)),
        }
    }

    /// The column of the runs appended since the last call (the same array a `StringBuilder`
    /// fed row by row builds).
    fn finish(&mut self) -> ArrayRef {
        let runs = std::mem::take(&mut self.runs);
        let bytes: usize = runs.iter().map(|(v, n)| v.len().saturating_mul(*n)).sum();
        let mut values: Vec<u8> = Vec::with_capacity(bytes);
        for &(value, n) in &runs {
            // One copy, then doubling copies of what is already there.
            let start = values.len();
            let end = start + value.len() * n;
            values.extend_from_slice(value.as_bytes());
            while values.len() < end {
                let have = values.len() - start;
                values.extend_from_within(start..start + have.min(end - values.len()));
            }
        }
        // A batch holds at most a few hundred thousand short names: far below i32::MAX bytes.
        let offsets = OffsetBuffer::<i32>::from_lengths(
            runs.iter().flat_map(|&(v, n)| std::iter::repeat_n(v.len(), n)),
        );
        Arc::new(StringArray::new(offsets, Buffer::from_vec(values), None))
    }
}

/// A column builder that stays empty while only NULLs arrive: most optional columns are always
/// NULL for a given format (a VPC flow row leaves fifteen of them empty), so NULLs are only
/// counted until a first value arrives, and an all-NULL column is built in one step.
#[derive(Debug)]
struct Lazy<B> {
    builder: Option<B>,
    nulls: usize,
    /// Makes a builder with room for (rows, value bytes).
    make: fn(usize, usize) -> B,
    /// Configured minimum rows.
    capacity: usize,
    /// Room the next builder starts with: rows and value bytes (see [`next_size`]).
    rows_hint: usize,
    bytes_hint: usize,
}

impl<B: ColumnBuilder> Lazy<B> {
    fn new(make: fn(usize, usize) -> B, capacity: usize) -> Self {
        Self {
            builder: None,
            nulls: 0,
            make,
            capacity,
            rows_hint: capacity,
            bytes_hint: capacity.saturating_mul(16),
        }
    }

    #[inline]
    fn null(&mut self) {
        match &mut self.builder {
            Some(b) => b.push_nulls(1),
            None => self.nulls += 1,
        }
    }

    #[inline]
    fn get(&mut self) -> &mut B {
        let nulls = std::mem::take(&mut self.nulls);
        let (make, rows, bytes) = (self.make, self.rows_hint, self.bytes_hint);
        self.builder.get_or_insert_with(|| {
            let mut b = make(rows, bytes);
            b.push_nulls(nulls);
            b
        })
    }

    /// The column of the `rows` rows appended since the last call; the next batch starts a
    /// fresh builder sized after this one.
    fn finish(&mut self, data_type: &DataType, rows: usize) -> ArrayRef {
        self.nulls = 0;
        match self.builder.take() {
            Some(mut b) => {
                self.rows_hint = next_size(self.capacity, rows);
                self.bytes_hint = next_size(self.capacity.saturating_mul(16), b.value_bytes());
                b.finish_array()
            }
            None => arrow::array::new_null_array(data_type, rows),
        }
    }
}

fn text_builder(rows: usize, bytes: usize) -> StringBuilder {
    StringBuilder::with_capacity(rows, bytes)
}

fn ts_builder(rows: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC)
}

fn text_list_builder(rows: usize, _bytes: usize) -> ListBuilder<StringBuilder> {
    ListBuilder::with_capacity(StringBuilder::new(), rows)
}

/// A fixed-width builder constructor in the `(rows, bytes)` shape [`Lazy`] wants.
macro_rules! fixed {
    ($make:expr) => {
        |rows: usize, _bytes: usize| $make(rows)
    };
}

fn append_text_list(b: &mut ListBuilder<StringBuilder>, v: &Option<Vec<Cow<'_, str>>>) {
    match v {
        Some(items) => {
            for item in items {
                b.values().append_value(item);
            }
            b.append(true);
        }
        None => b.append(false),
    }
}

/// Assemble a batch in schema order from named arrays.
fn assemble(table: Table, mut arrays: HashMap<&'static str, ArrayRef>) -> RecordBatch {
    let schema = table.schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            arrays
                .remove(f.name().as_str())
                .unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), 0))
        })
        .collect();
    // The builders are generated from the same column lists as the schema, so the column set,
    // types and lengths match by construction; a mismatch is a bug caught by the unit tests.
    RecordBatch::try_new(schema, columns)
        .unwrap_or_else(|e| unreachable!("builder for {table} does not match its schema: {e}"))
}

macro_rules! field_type {
    (text) => { Text<'a> };
    (i32) => { Option<i32> };
    (i64) => { Option<i64> };
    (bool) => { Option<bool> };
    (ts) => { Option<i64> };
    (list) => { Option<Vec<Cow<'a, str>>> };
}

macro_rules! builder_type {
    (text) => { Lazy<StringBuilder> };
    (i32) => { Lazy<Int32Builder> };
    (i64) => { Lazy<Int64Builder> };
    (bool) => { Lazy<BooleanBuilder> };
    (ts) => { Lazy<TimestampMicrosecondBuilder> };
    (list) => { Lazy<ListBuilder<StringBuilder>> };
}

macro_rules! new_builder {
    (text, $cap:expr) => {
        Lazy::new(text_builder, $cap)
    };
    (i32, $cap:expr) => {
        Lazy::new(fixed!(Int32Builder::with_capacity), $cap)
    };
    (i64, $cap:expr) => {
        Lazy::new(fixed!(Int64Builder::with_capacity), $cap)
    };
    (bool, $cap:expr) => {
        Lazy::new(fixed!(BooleanBuilder::with_capacity), $cap)
    };
    (ts, $cap:expr) => {
        Lazy::new(fixed!(ts_builder), $cap)
    };
    (list, $cap:expr) => {
        Lazy::new(text_list_builder, $cap)
    };
}

macro_rules! append_value {
    (text, $b:expr, $v:expr) => {
        match $v.as_deref() {
            Some(v) => $b.get().append_value(v),
            None => $b.null(),
        }
    };
    (list, $b:expr, $v:expr) => {
        match &$v {
            Some(_) => append_text_list($b.get(), &$v),
            None => $b.null(),
        }
    };
    ($other:tt, $b:expr, $v:expr) => {
        match $v {
            Some(v) => $b.get().append_value(v),
            None => $b.null(),
        }
    };
}

macro_rules! canonical_row {
    (
        $(#[$meta:meta])*
        $row:ident, $builder:ident, $table:expr,
        [ $( $field:ident : $kind:tt ),* $(,)? ]
    ) => {
        $(#[$meta])*
        ///
        /// Fields mirror the columns of the same name in [`crate::schema`]; `time` is required
        /// (UTC microseconds, validated by the parser). `provider`, `format`, `event_uid`,
        /// `source` and `date` are filled in by [`crate::Output`].
        #[derive(Debug, Default, Clone, PartialEq)]
        #[allow(missing_docs)]
        pub struct $row<'a> {
            pub time: i64,
            $( pub $field: field_type!($kind), )*
        }

        /// Arrow builders for the table's columns.
        #[derive(Debug)]
        pub struct $builder {
            time: TimestampMicrosecondBuilder,
            $( $field: builder_type!($kind), )*
            provider: RunText,
            format: RunText,
            event_uid: StringBuilder,
            source: StringBuilder,
            date: Date32Builder,
            len: usize,
            /// Configured minimum rows per batch buffer.
            capacity: usize,
        }

        impl $builder {
            /// Builders with room for `capacity` rows.
            pub fn with_capacity(capacity: usize) -> Self {
                Self {
                    time: ts_builder(capacity),
                    $( $field: new_builder!($kind, capacity), )*
                    provider: RunText::default(),
                    format: RunText::default(),
                    event_uid: StringBuilder::with_capacity(capacity, capacity * 16),
                    source: StringBuilder::with_capacity(capacity, capacity * 32),
                    date: Date32Builder::with_capacity(capacity),
                    len: 0,
                    capacity,
                }
            }

            /// Rows appended since the last [`Self::finish`].
            pub fn len(&self) -> usize {
                self.len
            }

            /// Whether no row was appended since the last [`Self::finish`].
            pub fn is_empty(&self) -> bool {
                self.len == 0
            }

            pub(crate) fn append(&mut self, row: &$row<'_>, common: &Common<'_>) {
                self.time.append_value(row.time);
                $( append_value!($kind, self.$field, row.$field); )*
                self.provider.append(common.provider);
                self.format.append(common.format);
                self.event_uid.append_value(common.event_uid);
                self.source.append_value(common.source);
                self.date.append_value(day_of(row.time));
                self.len += 1;
            }

            /// Take the appended rows as a batch with the table's schema and start afresh, with
            /// buffers sized after this batch.
            pub fn finish(&mut self) -> RecordBatch {
                let schema = $table.schema();
                let data_type = |name: &str| {
                    schema.field_with_name(name).map(|f| f.data_type().clone()).unwrap_or(DataType::Null)
                };
                let rows = self.len;
                let next = next_size(self.capacity, rows);
                let source_bytes = next_size(self.capacity * 32, self.source.values_slice().len());
                let mut arrays: HashMap<&'static str, ArrayRef> = HashMap::new();
                let time = std::mem::replace(&mut self.time, ts_builder(next)).finish();
                arrays.insert("time", Arc::new(time));
                $( arrays.insert(stringify!($field), self.$field.finish(&data_type(stringify!($field)), rows)); )*
                arrays.insert("provider", self.provider.finish());
                arrays.insert("format", self.format.finish());
                let uid = StringBuilder::with_capacity(next, next * 16);
                arrays.insert("event_uid", Arc::new(std::mem::replace(&mut self.event_uid, uid).finish()));
                let source = StringBuilder::with_capacity(next, source_bytes);
                arrays.insert("source", Arc::new(std::mem::replace(&mut self.source, source).finish()));
                let date = Date32Builder::with_capacity(next);
                arrays.insert("date", Arc::new(std::mem::replace(&mut self.date, date).finish()));
                self.len = 0;
                assemble($table, arrays)
            }
        }
    };
}

canonical_row!(
    /// A row of `flows`.
    FlowRow, FlowsBuilder, Table::Flows,
    [
        end_time: ts, account: text, region: text, vpc: text, subnet: text, resource: text,
        src_ip: text, src_port: i32, dst_ip: text, dst_port: i32, protocol: i32,
        direction: text, action: text, status: text, bytes: i64, packets: i64, tcp_flags: i32,
        rule: text, tls_version: text, peer_identity: text, tls_error: text,
        instance: text, pkt_src_ip: text, pkt_dst_ip: text, src_service: text, dst_service: text,
        traffic_path: text, encrypted: bool,
    ]
);

canonical_row!(
    /// A row of `signins`.
    SigninRow, SigninsBuilder, Table::Signins,
    [
        account: text, user: text, user_id: text, user_type: text, via_idp: bool, outcome: text,
        failure_reason: text, mfa: bool, mfa_method: text, src_ip: text, user_agent: text,
        device_id: text, device_managed: bool, device_compliant: bool, risk_level: text,
        country: text, app: text, role: text, conditional_access: text, session_id: text,
        event: text,
    ]
);

canonical_row!(
    /// A row of `cert_events`.
    CertEventRow, CertEventsBuilder, Table::CertEvents,
    [
        service: text, account: text, region: text, activity: text, cert_id: text, serial: text,
        subject: text, sans: list, issuer: text, not_before: ts, not_after: ts,
        key_algorithm: text, actor: text, workload: text, reason: text, event: text,
    ]
);

#[cfg(test)]
mod tests {
    use super::*;

    const COMMON: Common<'static> =
        Common { provider: "aws", format: "aws-vpcflow", event_uid: "00", source: "f:1" };

    #[test]
    fn run_text_builds_the_same_column_as_row_by_row_appends() {
        let values = ["aws-vpcflow", "aws-vpcflow", "aws", "", "aws-vpcflow"];
        let mut runs = RunText::default();
        let mut plain = StringBuilder::new();
        for round in 0..3 {
            for v in values.iter().cycle().take(7 + round * 1000) {
                runs.append(v);
                plain.append_value(v);
            }
            let built = runs.finish();
            let expected: ArrayRef = Arc::new(plain.finish());
            assert_eq!(&built, &expected);
        }
        assert_eq!(runs.finish().len(), 0);
    }

    #[test]
    fn each_batch_holds_exactly_its_own_rows() {
        let mut flows = FlowsBuilder::with_capacity(2);
        let mut batches = Vec::new();
        for n in [5usize, 1, 9] {
            for i in 0..n {
                let row = FlowRow {
                    time: i as i64,
                    account: (i % 2 == 0).then(|| Cow::Owned(format!("acct-{i}"))),
                    ..Default::default()
                };
                flows.append(&row, &COMMON);
            }
            batches.push(flows.finish());
        }
        for (batch, n) in batches.iter().zip([5usize, 1, 9]) {
            assert_eq!(batch.num_rows(), n);
            let account = batch.column_by_name("account").expect("account");
            assert_eq!(account.null_count(), n / 2);
        }
    }

    #[test]
    fn builders_produce_their_tables_schema() {
        let mut flows = FlowsBuilder::with_capacity(4);
        flows.append(&FlowRow { time: 1, src_port: Some(22), ..Default::default() }, &COMMON);
        let batch = flows.finish();
        assert_eq!(batch.schema(), Table::Flows.schema());
        assert_eq!(batch.num_rows(), 1);
        assert!(flows.is_empty());

        let mut signins = SigninsBuilder::with_capacity(1);
        signins.append(&SigninRow { time: 1, ..Default::default() }, &COMMON);
        assert_eq!(signins.finish().schema(), Table::Signins.schema());

        let mut certs = CertEventsBuilder::with_capacity(1);
        let row = CertEventRow {
            time: 1,
            sans: Some(vec!["a.example".into(), "b.example".into()]),
            ..Default::default()
        };
        certs.append(&row, &COMMON);
        certs.append(&CertEventRow { time: 2, ..Default::default() }, &COMMON);
        let batch = certs.finish();
        assert_eq!(batch.schema(), Table::CertEvents.schema());
        let sans = batch.column_by_name("sans").expect("sans");
        assert_eq!(sans.null_count(), 1);
    }
}
