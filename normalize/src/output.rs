//! The sink parsers write to: Arrow builders for every table, quarantine, and the counts that
//! prove every record is accounted for.
//!
//! The driver (ingest pipeline, service, rule tests) tells the output which source it is reading
//! ([`Output::begin_source`]) and which format ([`Output::set_format`]); parsers then append rows
//! ([`Output::flow`], [`Output::signin`], [`Output::cert_event`]), quarantine records
//! ([`Output::quarantine`]) or skip records that belong to no table ([`Output::skip`]). The
//! output fills in the columns every row shares: `provider`, `format`, `event_uid` (a stable hash
//! of source identity and position) and `source` (`name:line`).
//!
//! Replays: [`Output::begin_source`] takes, per table, the last line already committed for this
//! source; rows from lines at or before it are not appended again (counted as `replayed`), so
//! re-reading an input after a crash cannot duplicate rows.

use std::collections::BTreeMap;

use arrow::record_batch::RecordBatch;

use crate::quarantine::{QuarantineBuilder, QuarantineEntry, Reason};
use crate::rows::{
    CertEventRow, CertEventsBuilder, Common, FlowRow, FlowsBuilder, SigninRow, SigninsBuilder,
};
use crate::schema::{Provider, Table};

/// A framed record handed to a parser: its bytes and the line it starts on (1-based; for
/// Kafka sources the offset).
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Line (or offset) where the record starts.
    pub line: u64,
    /// The raw bytes, without the line terminator.
    pub bytes: &'a [u8],
}

/// Identity of the source being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// Stable identity used for `event_uid` and for idempotent commits, e.g. `file:<fingerprint>`.
    pub key: String,
    /// Display name: file path, object key or `topic/partition`.
    pub name: String,
    /// Separator between the name and the position in `source` (`:` for lines, `@` for offsets).
    pub separator: char,
    /// When the source was delivered (file modification time, message timestamp), UTC
    /// microseconds: the time of records whose format carries none.
    pub delivered: Option<i64>,
}

impl SourceInfo {
    /// A file-like source whose positions are line numbers.
    pub fn lines(key: impl Into<String>, name: impl Into<String>) -> Self {
        Self { key: key.into(), name: name.into(), separator: ':', delivered: None }
    }
}

/// Counts of what happened to the records read, for the ingest summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Records (lines or JSON values) read from sources.
    pub records: u64,
    /// Rows appended per table (quarantine included).
    pub rows: BTreeMap<&'static str, u64>,
    /// Quarantined rows per reason code.
    pub quarantined: BTreeMap<&'static str, u64>,
    /// Records deliberately not stored, per reason (e.g. a CloudTrail event that is neither a
    /// sign-in nor a certificate event).
    pub skipped: BTreeMap<String, u64>,
    /// Rows not appended because an earlier ingest already committed them.
    pub replayed: u64,
    /// Source fields that map to no column, as `format: field` → rows carrying them.
    pub unmapped: BTreeMap<String, u64>,
    /// Rows normalized with a caveat (e.g. time taken from the delivery time), per caveat.
    pub notes: BTreeMap<String, u64>,
}

impl Counts {
    /// Add another set of counts to this one.
    pub fn merge(&mut self, other: &Counts) {
        self.records += other.records;
        for (k, v) in &other.rows {
            *self.rows.entry(k).or_default() += v;
        }
        for (k, v) in &other.quarantined {
            *self.quarantined.entry(k).or_default() += v;
        }
        for (k, v) in &other.skipped {
            *self.skipped.entry(k.clone()).or_default() += v;
        }
        self.replayed += other.replayed;
        for (k, v) in &other.unmapped {
            *self.unmapped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.notes {
            *self.notes.entry(k.clone()).or_default() += v;
        }
    }

    /// Rows appended to `table`.
    pub fn rows_in(&self, table: Table) -> u64 {
        self.rows.get(table.name()).copied().unwrap_or(0)
    }

    /// Total quarantined rows.
    pub fn quarantined_total(&self) -> u64 {
        self.quarantined.values().sum()
    }

    /// Total skipped records.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Per-source state of the output.
#[derive(Debug)]
struct Current {
    source: SourceInfo,
    /// Per table (indexed by `Table as usize`): last line already committed.
    committed_through: [Option<u64>; 4],
    format: &'static str,
    provider: Provider,
    /// Outcomes produced for the record being parsed (rows, quarantines, skips); also the
    /// ordinal of the next row within the record.
    outcomes: u64,
}

/// The sink parsers write to. See the module docs.
#[derive(Debug)]
pub struct Output {
    flows: FlowsBuilder,
    signins: SigninsBuilder,
    certs: CertEventsBuilder,
    quarantine: QuarantineBuilder,
    current: Current,
    /// When quarantined rows are stamped (ingest time), UTC microseconds.
    quarantine_time: i64,
    counts: Counts,
    uid: String,
    pos: String,
    /// Length of `name` + separator at the start of `pos`.
    pos_prefix: usize,
    ordinal: u64,
    /// xxh3-64 of the current source key: the seed of every row's uid.
    key_seed: u64,
    /// Rows appended per table (indexed by `Table as usize`).
    rows: [u64; 4],
}

impl Output {
    /// An output whose builders start with room for `capacity` rows; quarantine rows are stamped
    /// with `now_micros`.
    pub fn new(capacity: usize, now_micros: i64) -> Self {
        Self {
            flows: FlowsBuilder::with_capacity(capacity),
            signins: SigninsBuilder::with_capacity(0),
            certs: CertEventsBuilder::with_capacity(0),
            quarantine: QuarantineBuilder::default(),
            current: Current {
                source: SourceInfo::lines("", ""),
                committed_through: [None; 4],
                format: "",
                provider: Provider::Unknown,
                outcomes: 0,
            },
            quarantine_time: now_micros,
            counts: Counts::default(),
            uid: String::with_capacity(16),
            pos: String::with_capacity(128),
            pos_prefix: 0,
            ordinal: 0,
            key_seed: 0,
            rows: [0; 4],
        }
    }

    /// Start reading a source whose positions are line numbers (1-based). `committed_through`
    /// holds, per table, the last line an earlier ingest already committed for this source
    /// (0 when none).
    pub fn begin_source(&mut self, source: SourceInfo, committed_through: [u64; 4]) {
        self.begin_source_committed(source, committed_through.map(|c| (c > 0).then_some(c)));
    }

    /// Start reading a source whose positions may start at 0 (Kafka offsets): per table, the
    /// last position already committed, or `None` when nothing is.
    pub fn begin_source_committed(
        &mut self,
        source: SourceInfo,
        committed_through: [Option<u64>; 4],
    ) {
        self.key_seed = xxhash_rust::xxh3::xxh3_64(source.key.as_bytes());
        self.pos.clear();
        self.pos.push_str(&source.name);
        self.pos.push(source.separator);
        self.pos_prefix = self.pos.len();
        self.current.source = source;
        self.current.committed_through = committed_through;
    }

    /// Go on reading the current source when it is the one `key`, `name`, `separator` and
    /// `committed_through` name (the next message of one Kafka partition), with `delivered` as
    /// its delivery time: what [`Output::begin_source_committed`] would do, without rebuilding
    /// the source. Returns false, changing nothing, when it is another source.
    pub fn continue_source(
        &mut self,
        key: &str,
        name: &str,
        separator: char,
        committed_through: [Option<u64>; 4],
        delivered: Option<i64>,
    ) -> bool {
        let c = &mut self.current;
        if c.source.key != key
            || c.source.name != name
            || c.source.separator != separator
            || c.committed_through != committed_through
        {
            return false;
        }
        c.source.delivered = delivered;
        true
    }

    /// The next record of the source being read was delivered at `delivered` (a caller that
    /// knows the source continues: [`Output::continue_source`] without its checks).
    pub fn set_delivered(&mut self, delivered: Option<i64>) {
        self.current.source.delivered = delivered;
    }

    /// The source being read.
    pub fn source(&self) -> &SourceInfo {
        &self.current.source
    }

    /// Set the format (and with it the provider) of the rows that follow.
    pub fn set_format(&mut self, format: &'static str, provider: Provider) {
        self.current.format = format;
        self.current.provider = provider;
    }

    /// Count a record read and start tracking its outcomes. Call before handing it to a parser.
    pub fn begin_record(&mut self) {
        self.counts.records += 1;
        self.current.outcomes = 0;
    }

    /// Count the record just begun as already committed by an earlier ingest (not parsed).
    pub fn replayed_record(&mut self) {
        self.current.outcomes += 1;
        self.counts.replayed += 1;
    }

    /// Finish a record: a record that produced no row, quarantine or skip is counted as skipped
    /// (`empty`), so conservation holds for every record.
    pub fn end_record(&mut self) {
        if self.current.outcomes == 0 {
            *self.counts.skipped.entry("empty".to_owned()).or_default() += 1;
        }
    }

    /// Count an outcome of the current record; returns whether it is a replay, and leaves the
    /// row's ordinal within the record in `self.ordinal`.
    fn replayed(&mut self, table: Table, line: u64) -> bool {
        self.ordinal = self.current.outcomes;
        self.current.outcomes += 1;
        if self.current.committed_through[table as usize].is_some_and(|c| line <= c) {
            self.counts.replayed += 1;
            return true;
        }
        self.rows[table as usize] += 1;
        false
    }

    /// Fill `uid` and `pos` for the row at `line` (and the current ordinal): the uid is xxh3-64
    /// of (line, ordinal) seeded with the source key's hash; `pos` is `name:line[#ordinal]`.
    fn position(&mut self, line: u64) {
        let sub = self.ordinal;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&line.to_le_bytes());
        bytes[8..].copy_from_slice(&sub.to_le_bytes());
        let hash = xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, self.key_seed);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 16];
        for (i, h) in hex.iter_mut().enumerate() {
            *h = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        }
        self.uid.clear();
        // Hex digits are ASCII.
        self.uid.push_str(std::str::from_utf8(&hex).unwrap_or_default());
        let mut digits = itoa::Buffer::new();
        self.pos.truncate(self.pos_prefix);
        self.pos.push_str(digits.format(line));
        if sub > 0 {
            self.pos.push('#');
            self.pos.push_str(digits.format(sub));
        }
    }

    /// Append a `flows` row produced from `record`. Rows produced from one record are numbered
    /// in order (0, 1, …); the number is part of `event_uid` and shows in `source` as `#n`.
    pub fn flow(&mut self, record: &Record<'_>, row: &FlowRow<'_>) {
        if self.replayed(Table::Flows, record.line) {
            return;
        }
        self.position(record.line);
        let common = Common {
            provider: self.current.provider.as_str(),
            format: self.current.format,
            event_uid: &self.uid,
            source: &self.pos,
        };
        self.flows.append(row, &common);
    }

    /// Append a `signins` row.
    pub fn signin(&mut self, record: &Record<'_>, row: &SigninRow<'_>) {
        if self.replayed(Table::Signins, record.line) {
            return;
        }
        self.position(record.line);
        let common = Common {
            provider: self.current.provider.as_str(),
            format: self.current.format,
            event_uid: &self.uid,
            source: &self.pos,
        };
        self.signins.append(row, &common);
    }

    /// Append a `cert_events` row.
    pub fn cert_event(&mut self, record: &Record<'_>, row: &CertEventRow<'_>) {
        if self.replayed(Table::CertEvents, record.line) {
            return;
        }
        self.position(record.line);
        let common = Common {
            provider: self.current.provider.as_str(),
            format: self.current.format,
            event_uid: &self.uid,
            source: &self.pos,
        };
        self.certs.append(row, &common);
    }

    /// Quarantine `record` (or an element of it: envelope parsers pass a `Record` whose bytes
    /// are the element).
    pub fn quarantine(&mut self, record: &Record<'_>, reason: Reason, detail: &str) {
        self.quarantine_raw(record.line, record.bytes, record.bytes.len() as u64, reason, detail);
    }

    /// Quarantine a record of which only `raw` (a prefix, possibly) is at hand and whose full
    /// length is `byte_len`: over-long lines and truncated inputs.
    pub fn quarantine_raw(
        &mut self,
        line: u64,
        raw: &[u8],
        byte_len: u64,
        reason: Reason,
        detail: &str,
    ) {
        if self.replayed(Table::Quarantine, line) {
            return;
        }
        *self.counts.quarantined.entry(reason.as_str()).or_default() += 1;
        self.position(line);
        let format = (!self.current.format.is_empty()).then_some(self.current.format);
        let provider = if format.is_some() { self.current.provider } else { Provider::Unknown };
        self.quarantine.append(&QuarantineEntry {
            time: self.quarantine_time,
            provider: provider.as_str(),
            format,
            reason,
            detail,
            byte_len,
            raw,
            event_uid: &self.uid,
            source: &self.pos,
        });
    }

    /// Count a record that belongs to no table, with a short reason such as
    /// `aws-cloudtrail: not a sign-in or certificate event`.
    pub fn skip(&mut self, reason: &str) {
        self.current.outcomes += 1;
        match self.counts.skipped.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                self.counts.skipped.insert(reason.to_owned(), 1);
            }
        }
    }

    /// Count a row normalized with a caveat worth telling the user about.
    pub fn note(&mut self, caveat: &str) {
        match self.counts.notes.get_mut(caveat) {
            Some(n) => *n += 1,
            None => {
                self.counts.notes.insert(caveat.to_owned(), 1);
            }
        }
    }

    /// Record that `rows` rows of `format` carried `field`, which maps to no column.
    pub fn note_unmapped(&mut self, format: &str, field: &str, rows: u64) {
        if rows == 0 {
            return;
        }
        let key = format!("{format}: {field}");
        *self.counts.unmapped.entry(key).or_default() += rows;
    }

    /// Rows currently buffered in the largest builder.
    pub fn buffered_rows(&self) -> usize {
        self.flows.len().max(self.signins.len()).max(self.certs.len()).max(self.quarantine.len())
    }

    /// Take a batch from every table holding at least `min_rows` rows (every non-empty table
    /// when `min_rows` is 0).
    pub fn take_batches(&mut self, min_rows: usize) -> Vec<(Table, RecordBatch)> {
        let min = min_rows.max(1);
        let mut out = Vec::new();
        if self.flows.len() >= min {
            out.push((Table::Flows, self.flows.finish()));
        }
        if self.signins.len() >= min {
            out.push((Table::Signins, self.signins.finish()));
        }
        if self.certs.len() >= min {
            out.push((Table::CertEvents, self.certs.finish()));
        }
        if self.quarantine.len() >= min {
            out.push((Table::Quarantine, self.quarantine.finish()));
        }
        out
    }

    /// Add counts gathered elsewhere (e.g. by a parallel worker's own `Output`) to these.
    pub fn absorb(&mut self, other: &Counts) {
        for table in Table::DATA {
            self.rows[table as usize] += other.rows_in(table);
        }
        let mut rest = other.clone();
        rest.rows.clear();
        self.counts.merge(&rest);
    }

    /// Records read so far (cheap; for progress reports).
    pub fn records(&self) -> u64 {
        self.counts.records
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        let mut counts = self.counts.clone();
        for table in Table::DATA {
            let n = self.rows[table as usize];
            if n > 0 {
                counts.rows.insert(table.name(), n);
            }
        }
        counts
    }

    /// Take the counts, resetting them.
    pub fn take_counts(&mut self) -> Counts {
        let counts = self.counts();
        self.counts = Counts::default();
        self.rows = [0; 4];
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, StringArray};

    fn strings(batch: &RecordBatch, col: &str) -> Vec<String> {
        let a = batch.column_by_name(col).expect("column");
        let a = a.as_any().downcast_ref::<StringArray>().expect("utf8");
        (0..a.len()).map(|i| a.value(i).to_owned()).collect()
    }

    #[test]
    fn rows_get_stable_uids_and_positions() {
        let mut out = Output::new(8, 0);
        out.begin_source(SourceInfo::lines("file:abc", "flows.log"), [0; 4]);
        out.set_format("aws-vpcflow", Provider::Aws);
        let rec = Record { line: 7, bytes: b"x" };
        out.begin_record();
        out.flow(&rec, &FlowRow { time: 1, ..Default::default() });
        out.skip("x");
        out.flow(&rec, &FlowRow { time: 1, ..Default::default() });
        out.end_record();
        let batches = out.take_batches(0);
        assert_eq!(batches.len(), 1);
        let (table, batch) = &batches[0];
        assert_eq!(*table, Table::Flows);
        assert_eq!(strings(batch, "source"), ["flows.log:7", "flows.log:7#2"]);
        let uids = strings(batch, "event_uid");
        assert_ne!(uids[0], uids[1]);
        assert_eq!(strings(batch, "provider"), ["aws", "aws"]);

        // Same source identity and position → same uid, whatever the display name.
        let mut again = Output::new(8, 0);
        again.begin_source(SourceInfo::lines("file:abc", "moved/flows.log"), [0; 4]);
        again.set_format("aws-vpcflow", Provider::Aws);
        again.begin_record();
        again.flow(&rec, &FlowRow { time: 1, ..Default::default() });
        let (_, batch) = &again.take_batches(0)[0];
        assert_eq!(strings(batch, "event_uid")[0], uids[0]);
    }

    #[test]
    fn committed_lines_are_not_appended_again() {
        let mut out = Output::new(8, 0);
        out.begin_source(SourceInfo::lines("k", "n"), [5, 0, 0, 3]);
        out.set_format("aws-vpcflow", Provider::Aws);
        for line in 1..=6 {
            let rec = Record { line, bytes: b"r" };
            out.begin_record();
            out.flow(&rec, &FlowRow { time: 1, ..Default::default() });
            out.quarantine(&rec, Reason::BadField, "x");
        }
        assert_eq!(out.counts().rows_in(Table::Flows), 1);
        assert_eq!(out.counts().rows_in(Table::Quarantine), 3);
        assert_eq!(out.counts().replayed, 8);
    }

    #[test]
    fn position_zero_is_replayed_only_when_committed() {
        let mut out = Output::new(8, 0);
        out.begin_source_committed(
            SourceInfo::lines("kafka:g/t/0", "t/0"),
            [None, None, None, Some(0)],
        );
        out.set_format("aws-vpcflow", Provider::Aws);
        let rec = Record { line: 0, bytes: b"r" };
        out.begin_record();
        out.flow(&rec, &FlowRow { time: 1, ..Default::default() });
        out.quarantine(&rec, Reason::BadField, "x");
        assert_eq!(out.counts().rows_in(Table::Flows), 1, "offset 0 of a fresh partition is new");
        assert_eq!(out.counts().replayed, 1, "offset 0 already in quarantine is a replay");
    }

    #[test]
    fn records_without_outcome_count_as_skipped() {
        let mut out = Output::new(8, 0);
        out.begin_record();
        out.end_record();
        out.begin_record();
        out.skip("aws-cloudtrail: not a sign-in");
        out.end_record();
        assert_eq!(out.counts().records, 2);
        assert_eq!(out.counts().skipped_total(), 2);
    }

    #[test]
    fn quarantine_without_format_is_unknown_provider() {
        let mut out = Output::new(8, 0);
        out.begin_source(SourceInfo::lines("k", "n"), [0; 4]);
        out.quarantine_raw(3, b"\xff\xfe", 2, Reason::InvalidUtf8, "not UTF-8");
        let (_, batch) = &out.take_batches(0)[0];
        assert_eq!(strings(batch, "provider"), ["unknown"]);
        let format = batch.column_by_name("format").expect("format");
        assert!(format.is_null(0));
        assert_eq!(out.counts().quarantined.get("invalid_utf8"), Some(&1));
    }
}
