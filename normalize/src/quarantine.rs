//! Quarantine: the rows of records that could not be normalized, each with a reason code.
//!
//! A record is never dropped in silence: it ends in exactly one data table or here. The row
//! keeps the source position, the format it was read as, a reason code from a fixed list
//! ([`Reason`]), a human-readable detail, the byte length, a hash of the whole raw record and a
//! capped prefix of it (so an analyst can see what arrived without the lake storing attacker
//! payloads of any size).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;

use crate::schema::{Table, UTC};
use crate::values::day_of;

/// Maximum number of raw bytes kept in `raw_prefix`.
pub const RAW_PREFIX_CAP: usize = 1024;
/// Maximum length of `detail` (longer details are cut at a character boundary).
pub const DETAIL_CAP: usize = 512;

/// Why a record was quarantined. The code (`as_str`) is what the `reason` column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The record is longer than the configured maximum; it was skipped whole.
    LineTooLong,
    /// The record is not valid UTF-8 where the format requires text.
    InvalidUtf8,
    /// The input ended inside a record: truncated or corrupt compressed data, or a read error.
    TruncatedInput,
    /// Decompressing the input exceeded the configured cap (a zip bomb guard).
    SizeCapExceeded,
    /// A delimited record has a different number of fields than its layout.
    FieldCount,
    /// A field holds a value of the wrong type or outside its range; `detail` names it.
    BadField,
    /// A field the table requires (such as the event time) is absent.
    MissingField,
    /// The event time is unparseable or outside 1970-01-01..9999-12-31.
    BadTime,
    /// No parser recognized the record.
    UnknownFormat,
    /// The record is not valid JSON, or not the JSON shape its format expects.
    BadJson,
    /// JSON nesting deeper than the configured cap.
    TooDeep,
    /// A single field is larger than the configured cap.
    FieldTooLarge,
}

impl Reason {
    /// Every reason, for documentation.
    pub const ALL: [Reason; 12] = [
        Reason::LineTooLong,
        Reason::InvalidUtf8,
        Reason::TruncatedInput,
        Reason::SizeCapExceeded,
        Reason::FieldCount,
        Reason::BadField,
        Reason::MissingField,
        Reason::BadTime,
        Reason::UnknownFormat,
        Reason::BadJson,
        Reason::TooDeep,
        Reason::FieldTooLarge,
    ];

    /// The stable code stored in the `reason` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::LineTooLong => "line_too_long",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::TruncatedInput => "truncated_input",
            Reason::SizeCapExceeded => "size_cap_exceeded",
            Reason::FieldCount => "field_count",
            Reason::BadField => "bad_field",
            Reason::MissingField => "missing_field",
            Reason::BadTime => "bad_time",
            Reason::UnknownFormat => "unknown_format",
            Reason::BadJson => "bad_json",
            Reason::TooDeep => "json_too_deep",
            Reason::FieldTooLarge => "field_too_large",
        }
    }

    /// What the code means, for the README and `ztlake tables`.
    pub fn description(self) -> &'static str {
        match self {
            Reason::LineTooLong => {
                "record longer than --max-line-len; skipped whole, the rest of the input is read"
            }
            Reason::InvalidUtf8 => "record is not valid UTF-8",
            Reason::TruncatedInput => {
                "input ended inside a record (truncated/corrupt gzip or zstd, read error)"
            }
            Reason::SizeCapExceeded => "decompressed size exceeded --max-decompressed",
            Reason::FieldCount => {
                "number of fields differs from the layout (header, --vpc-fields or default)"
            }
            Reason::BadField => "a field has the wrong type or is out of range (detail names it)",
            Reason::MissingField => "a required field (such as the event time) is absent",
            Reason::BadTime => "time unparseable or outside 1970-01-01..9999-12-31",
            Reason::UnknownFormat => "no parser recognized the record",
            Reason::BadJson => "not valid JSON, or not the shape the format expects",
            Reason::TooDeep => "JSON nesting deeper than the cap",
            Reason::FieldTooLarge => "a single field larger than the cap",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One quarantined record, as handed to [`QuarantineBuilder::append`].
#[derive(Debug)]
pub(crate) struct QuarantineEntry<'a> {
    pub(crate) time: i64,
    pub(crate) provider: &'a str,
    pub(crate) format: Option<&'a str>,
    pub(crate) reason: Reason,
    pub(crate) detail: &'a str,
    pub(crate) byte_len: u64,
    pub(crate) raw: &'a [u8],
    pub(crate) event_uid: &'a str,
    pub(crate) source: &'a str,
}

/// Arrow builders for `quarantine`.
#[derive(Debug)]
pub struct QuarantineBuilder {
    time: TimestampMicrosecondBuilder,
    provider: StringBuilder,
    format: StringBuilder,
    reason: StringBuilder,
    detail: StringBuilder,
    byte_len: Int64Builder,
    raw_hash: StringBuilder,
    raw_prefix: StringBuilder,
    event_uid: StringBuilder,
    source: StringBuilder,
    date: Date32Builder,
    len: usize,
}

impl Default for QuarantineBuilder {
    fn default() -> Self {
        Self {
            time: TimestampMicrosecondBuilder::new().with_timezone(UTC),
            provider: StringBuilder::new(),
            format: StringBuilder::new(),
            reason: StringBuilder::new(),
            detail: StringBuilder::new(),
            byte_len: Int64Builder::new(),
            raw_hash: StringBuilder::new(),
            raw_prefix: StringBuilder::new(),
            event_uid: StringBuilder::new(),
            source: StringBuilder::new(),
            date: Date32Builder::new(),
            len: 0,
        }
    }
}

impl QuarantineBuilder {
    /// Rows appended since the last [`Self::finish`].
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no row was appended since the last [`Self::finish`].
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn append(&mut self, e: &QuarantineEntry<'_>) {
        self.time.append_value(e.time);
        self.provider.append_value(e.provider);
        self.format.append_option(e.format);
        self.reason.append_value(e.reason.as_str());
        self.detail.append_value(truncate_at_char(e.detail, DETAIL_CAP));
        self.byte_len.append_value(i64::try_from(e.byte_len).unwrap_or(i64::MAX));
        let hash = xxhash_rust::xxh3::xxh3_64(e.raw);
        self.raw_hash.append_value(format!("{hash:016x}"));
        let prefix = &e.raw[..e.raw.len().min(RAW_PREFIX_CAP)];
        self.raw_prefix.append_value(String::from_utf8_lossy(prefix));
        self.event_uid.append_value(e.event_uid);
        self.source.append_value(e.source);
        self.date.append_value(day_of(e.time));
        self.len += 1;
    }

    /// Take the appended rows as a batch with the `quarantine` schema and start afresh.
    pub fn finish(&mut self) -> RecordBatch {
        let arrays: Vec<(&str, ArrayRef)> = vec![
            ("time", Arc::new(self.time.finish())),
            ("provider", Arc::new(self.provider.finish())),
            ("format", Arc::new(self.format.finish())),
            ("reason", Arc::new(self.reason.finish())),
            ("detail", Arc::new(self.detail.finish())),
            ("byte_len", Arc::new(self.byte_len.finish())),
            ("raw_hash", Arc::new(self.raw_hash.finish())),
            ("raw_prefix", Arc::new(self.raw_prefix.finish())),
            ("event_uid", Arc::new(self.event_uid.finish())),
            ("source", Arc::new(self.source.finish())),
            ("date", Arc::new(self.date.finish())),
        ];
        let mut by_name: HashMap<&str, ArrayRef> = arrays.into_iter().collect();
        let schema = Table::Quarantine.schema();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| {
                by_name
                    .remove(f.name().as_str())
                    .unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), 0))
            })
            .collect();
        self.len = 0;
        RecordBatch::try_new(schema, columns)
            .unwrap_or_else(|e| unreachable!("quarantine builder does not match its schema: {e}"))
    }
}

/// `s` cut to at most `cap` bytes at a character boundary.
pub(crate) fn truncate_at_char(s: &str, cap: usize) -> &str {
    if s.len() <= cap {
        return s;
    }
    let mut end = cap;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_rows_cap_prefix_and_hash_the_whole_record() {
        let raw = vec![b'x'; 5000];
        let mut b = QuarantineBuilder::default();
        b.append(&QuarantineEntry {
            time: 0,
            provider: "unknown",
            format: None,
            reason: Reason::UnknownFormat,
            detail: &"é".repeat(600),
            byte_len: raw.len() as u64,
            raw: &raw,
            event_uid: "u",
            source: "s:1",
        });
        let batch = b.finish();
        assert_eq!(batch.schema(), Table::Quarantine.schema());
        let prefix = batch.column_by_name("raw_prefix").expect("col");
        let prefix = prefix.as_any().downcast_ref::<arrow::array::StringArray>().expect("str");
        assert_eq!(prefix.value(0).len(), RAW_PREFIX_CAP);
        let detail = batch.column_by_name("detail").expect("col");
        let detail = detail.as_any().downcast_ref::<arrow::array::StringArray>().expect("str");
        assert!(detail.value(0).len() <= DETAIL_CAP);
        let hash = batch.column_by_name("raw_hash").expect("col");
        let hash = hash.as_any().downcast_ref::<arrow::array::StringArray>().expect("str");
        assert_eq!(hash.value(0), format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&raw)));
    }

    #[test]
    fn reason_codes_are_unique() {
        let mut codes: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
    }
}
