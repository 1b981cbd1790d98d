//! Normalization inside the service: Kafka messages and objects framed and parsed into the
//! Output's Arrow builders (blocking code: it runs on `spawn_blocking` threads, never on the
//! IO runtime).
//!
//! Positions and uids: a Kafka message is one position (its offset). It may hold many records
//! (lines, or JSON values of a multi-line document); they are parsed between ONE
//! `begin_record`/`end_record` pair, so the rows of a message are numbered 0, 1, … within it
//! and every row of a partition gets a distinct `event_uid` (`source` reads
//! `topic/partition@offset#n`). Objects are files: one record per line, as `ztlake ingest`
//! reads them.

use anyhow::{Context as _, Result};
use arrow::array::RecordBatch;
use ztlake_ingest::kafka::KafkaMessage;
use ztlake_ingest::{Frame, ReadOptions, RecordReader};
use ztlake_normalize::format::{
    Framing, ParseOptions, Parser, is_json_content, parser_for, sniff_framing,
};
use ztlake_normalize::{Counts, Output, Reason, Record, SourceInfo, Table};

/// Rows buffered per table before a batch goes on (to the writers and the rules).
pub(crate) const BATCH_ROWS: usize = 16 * 1024;

/// gzip and zstd magic bytes: such payloads go through the decompressing reader.
fn compressed(payload: &[u8]) -> bool {
    payload.starts_with(&[0x1f, 0x8b]) || payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// What parsing a piece of input did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Parsed {
    /// Framed records read.
    pub(crate) records: u64,
    /// Raw bytes read.
    pub(crate) bytes: u64,
}

/// The parse state of one source loop: the Output and one parser per source key.
pub(crate) struct Normalizer {
    output: Output,
    /// By source key (looked up per message: a fast hasher; the keys are sources, not message
    /// content).
    parsers: foldhash::HashMap<String, Box<dyn Parser>>,
    /// The parser of the last message's source key, out of `parsers` while it is current:
    /// messages come in runs of one partition, so a run looks nothing up.
    current: Option<(String, Box<dyn Parser>)>,
    parse: ParseOptions,
    read: ReadOptions,
}

impl std::fmt::Debug for Normalizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Normalizer")
            .field("parsers", &(self.parsers.len() + usize::from(self.current.is_some())))
            .finish()
    }
}

impl Normalizer {
    pub(crate) fn new(read: ReadOptions) -> Self {
        Self {
            output: Output::new(BATCH_ROWS, chrono::Utc::now().timestamp_micros()),
            parsers: foldhash::HashMap::default(),
            current: None,
            parse: ParseOptions::default(),
            read,
        }
    }

    /// Forget the parser of `key` (a revoked partition, a finished object).
    pub(crate) fn forget(&mut self, key: &str) {
        let current = self.current.take_if(|(k, _)| k == key).map(|(_, p)| p);
        if let Some(mut p) = current.or_else(|| self.parsers.remove(key)) {
            p.finish(&mut self.output);
        }
    }

    /// Parse one Kafka message of the source `key` (`name` for the `source` column; `format`
    /// of its topic; `committed` per table: the last offset already in the lake). `same_run`:
    /// the previous message was of the same source, with nothing else parsed in between (its
    /// source and parser are current: nothing is compared or looked up).
    pub(crate) fn message(
        &mut self,
        m: &KafkaMessage,
        key: &str,
        name: &str,
        format: &str,
        committed: [Option<u64>; 4],
        same_run: bool,
    ) -> Result<Parsed> {
        let separator = ztlake_ingest::kafka::POSITION_SEPARATOR;
        let delivered = m.delivered_micros();
        // Messages come in runs of one partition: its source is set up once per run.
        let current = self.current.as_ref().is_some_and(|(k, _)| same_run || k == key);
        if current && same_run {
            self.output.set_delivered(delivered);
        } else if !self.output.continue_source(key, name, separator, committed, delivered) {
            let mut info = SourceInfo::lines(key, name);
            info.separator = separator;
            info.delivered = delivered;
            self.output.begin_source_committed(info, committed);
        }
        let position = u64::try_from(m.offset).unwrap_or(0);
        let payload: &[u8] = &m.payload;
        let mut parsed = Parsed { records: 0, bytes: payload.len() as u64 };
        let json_limit = self.read.max_line_len.max(self.read.max_json_len);
        // The common case, one plain record per message, needs no reader.
        let single = !compressed(payload)
            && memchr::memchr(b'\n', payload).is_none_or(|i| i + 1 == payload.len());
        if !current {
            let p = match self.parsers.remove(key) {
                Some(p) => p,
                None => {
                    parser_for(format, &self.parse).with_context(|| format!("format {format}"))?
                }
            };
            if let Some((k, before)) = self.current.replace((key.to_owned(), p)) {
                self.parsers.insert(k, before);
            }
        }
        let Some((_, parser)) = self.current.as_mut() else { anyhow::bail!("no parser for {key}") };
        let out = &mut self.output;
        out.begin_record();
        let mut outcome = Ok(());
        if single {
            let mut bytes = payload.strip_suffix(b"\n").unwrap_or(payload);
            bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            if !bytes.iter().all(u8::is_ascii_whitespace) {
                parsed.records = 1;
                let limit =
                    if is_json_content(bytes) { json_limit } else { self.read.max_line_len };
                if bytes.len() > limit {
                    let detail =
                        format!("record of {} bytes exceeds the {limit} byte limit", bytes.len());
                    let len = bytes.len() as u64;
                    out.quarantine_raw(position, bytes, len, Reason::LineTooLong, &detail);
                } else {
                    parser.parse(&Record { line: position, bytes }, out);
                }
            }
        } else {
            outcome =
                frame_message(m, position, &self.read, json_limit, format, parser.as_mut(), out)
                    .map(|n| parsed.records = n);
        }
        out.end_record();
        outcome.map(|()| parsed)
    }

    /// Parse a whole object (a file-like input: positions are lines) of source `key`.
    /// `committed_through` per table: lines already in the lake (0: none). Returns the last
    /// line read and the records.
    #[allow(clippy::too_many_arguments)] // one call site; the values are the object's identity
    pub(crate) fn object(
        &mut self,
        mut reader: RecordReader<Box<dyn std::io::Read + Send>>,
        key: &str,
        name: &str,
        format: &str,
        delivered: Option<i64>,
        committed_through: [u64; 4],
        deliver: &mut dyn FnMut(&mut Output) -> Result<()>,
    ) -> Result<(u64, Parsed)> {
        let head = reader.peek(4096);
        let json = is_json_content(head);
        let framing = if format == "auto" {
            sniff_framing(head)
        } else {
            ztlake_normalize::format::format_by_name(format)?.framing
        };
        reader.set_framing(match framing {
            Framing::Lines => ztlake_ingest::Framing::Lines,
            Framing::Json => ztlake_ingest::Framing::Json,
        });
        if json {
            reader.set_max_line_len(self.read.max_line_len.max(self.read.max_json_len));
        }
        let mut parser =
            parser_for(format, &self.parse).with_context(|| format!("format {format}"))?;
        let mut info = SourceInfo::lines(key, name);
        info.delivered = delivered;
        self.output.begin_source(info, committed_through);
        let skip_through = committed_through.iter().copied().min().unwrap_or(0);
        let limit = match framing {
            Framing::Lines => self.read.max_line_len,
            Framing::Json => self.read.max_json_len,
        };
        let mut last_line = 0u64;
        let mut parsed = Parsed::default();
        let mut since = 0usize;
        while let Some(frame) = reader.next_record() {
            let out = &mut self.output;
            parsed.records += 1;
            match frame {
                Frame::Record { line, bytes } => {
                    last_line = line;
                    out.begin_record();
                    if line <= skip_through {
                        out.replayed_record();
                        continue;
                    }
                    parsed.bytes += bytes.len() as u64;
                    parser.parse(&Record { line, bytes }, out);
                    out.end_record();
                }
                Frame::TooLong { line, len, prefix } => {
                    last_line = line;
                    out.begin_record();
                    let detail = format!("record of {len} bytes exceeds the {limit} byte limit");
                    out.quarantine_raw(line, prefix, len, Reason::LineTooLong, &detail);
                    out.end_record();
                }
                Frame::Broken { line, partial, len, error } => {
                    last_line = line;
                    out.begin_record();
                    let reason = match error {
                        ztlake_ingest::Error::DecompressedTooLarge { .. } => {
                            Reason::SizeCapExceeded
                        }
                        _ => Reason::TruncatedInput,
                    };
                    out.quarantine_raw(line, partial, len, reason, &error.to_string());
                    out.end_record();
                }
            }
            since += 1;
            if since >= 4096 {
                since = 0;
                if self.output.buffered_rows() >= BATCH_ROWS {
                    deliver(&mut self.output)?;
                }
            }
        }
        parser.finish(&mut self.output);
        Ok((last_line, parsed))
    }

    /// Rows buffered in the largest builder.
    pub(crate) fn buffered_rows(&self) -> usize {
        self.output.buffered_rows()
    }

    /// Take a batch of every table holding at least `min_rows` rows (all when 0).
    pub(crate) fn take_batches(&mut self, min_rows: usize) -> Vec<(Table, RecordBatch)> {
        self.output.take_batches(min_rows)
    }

    /// Take the counts since the last call.
    pub(crate) fn take_counts(&mut self) -> Counts {
        self.output.take_counts()
    }
}

/// Frame a compressed or multi-line message and parse every record in it, all at the message's
/// position (ordinals keep their uids apart). Returns the records read.
fn frame_message(
    m: &KafkaMessage,
    position: u64,
    read: &ReadOptions,
    json_limit: usize,
    format: &str,
    parser: &mut dyn Parser,
    out: &mut Output,
) -> Result<u64> {
    let mut opts = read.clone();
    // Most messages are small: a 4 MiB zeroed buffer per message would dominate the cost.
    opts.buffer_size =
        if compressed(&m.payload) { 256 << 10 } else { (m.payload.len() + 64).min(4 << 20) };
    let opened = m.open(&opts).with_context(|| m.position())?;
    let mut reader = opened.into_records(ztlake_ingest::Framing::Lines, &opts);
    let head = reader.peek(4096);
    let json = is_json_content(head);
    let framing = if format == "auto" {
        sniff_framing(head)
    } else {
        ztlake_normalize::format::format_by_name(format)?.framing
    };
    reader.set_framing(match framing {
        Framing::Lines => ztlake_ingest::Framing::Lines,
        Framing::Json => ztlake_ingest::Framing::Json,
    });
    if json {
        reader.set_max_line_len(json_limit);
    }
    let limit = match framing {
        Framing::Lines => read.max_line_len,
        Framing::Json => read.max_json_len,
    };
    let mut records = 0u64;
    while let Some(frame) = reader.next_record() {
        records += 1;
        match frame {
            Frame::Record { bytes, .. } => parser.parse(&Record { line: position, bytes }, out),
            Frame::TooLong { len, prefix, .. } => {
                let detail = format!("record of {len} bytes exceeds the {limit} byte limit");
                out.quarantine_raw(position, prefix, len, Reason::LineTooLong, &detail);
            }
            Frame::Broken { partial, len, error, .. } => {
                let reason = match error {
                    ztlake_ingest::Error::DecompressedTooLarge { .. } => Reason::SizeCapExceeded,
                    _ => Reason::TruncatedInput,
                };
                out.quarantine_raw(position, partial, len, reason, &error.to_string());
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::AsArray as _;

    use super::*;

    fn message(topic: &Arc<str>, partition: i32, offset: i64, line: &str) -> KafkaMessage {
        KafkaMessage {
            topic: Arc::clone(topic),
            partition,
            offset,
            timestamp_ms: Some(1_700_000_000_000),
            payload: line.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn runs_of_interleaved_partitions_keep_their_sources_and_parsers() {
        let topic: Arc<str> = Arc::from("flows");
        let line = |i: usize| {
            format!(
                "2 123456789012 eni-1 10.0.0.{i} 10.0.1.5 4000{i} 443 6 3 180 1700000000 1700000060 ACCEPT OK"
            )
        };
        // (partition, offset, same run as the message before) as parse_batch passes them.
        let plan = [(0, 10, false), (0, 11, true), (1, 7, false), (1, 8, true), (0, 12, false)];
        let mut norm = Normalizer::new(ReadOptions::default());
        for (i, &(partition, offset, same)) in plan.iter().enumerate() {
            let key = format!("kafka:g/flows/{partition}");
            let name = format!("flows/{partition}");
            let m = message(&topic, partition, offset, &line(i));
            let parsed = norm
                .message(&m, &key, &name, "aws-vpcflow", [None; 4], same)
                .expect("a plain flow parses");
            assert_eq!(parsed.records, 1);
        }
        let flows: Vec<RecordBatch> = norm
            .take_batches(0)
            .into_iter()
            .filter(|(t, _)| *t == Table::Flows)
            .map(|(_, b)| b)
            .collect();
        let mut sources = Vec::new();
        for b in &flows {
            let column = b.column_by_name("source").expect("source column");
            let column =
                arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8).expect("text");
            sources
                .extend(column.as_string::<i32>().iter().map(|v| v.unwrap_or_default().to_owned()));
        }
        assert_eq!(sources, ["flows/0@10", "flows/0@11", "flows/1@7", "flows/1@8", "flows/0@12"]);
        // One parser per key: both keys' parsers exist, one of them current.
        assert_eq!(format!("{norm:?}"), "Normalizer { parsers: 2 }");
        norm.forget("kafka:g/flows/0");
        norm.forget("kafka:g/flows/1");
        assert_eq!(format!("{norm:?}"), "Normalizer { parsers: 0 }");
    }
}
