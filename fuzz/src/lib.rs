//! The fuzz harness shared by every target: hostile bytes go through the real framer and the
//! named parser, exactly as `ztlake ingest --format NAME` would read them, and the invariants
//! that make ztlake trustworthy on hostile input are checked:
//! - no panic, whatever the bytes;
//! - every record read ends in a table, in quarantine or as a counted skip;
//! - every batch matches its table's schema.

use ztlake_normalize::format::{ParseOptions, format_by_name, is_json_content, parser_for, sniff_framing};
use ztlake_normalize::{Framing, Output, Reason, Record, SourceInfo};

/// Frame `data` and parse it with `format` (`auto` detects per record).
pub fn run(format: &str, data: &[u8]) {
    let options = ParseOptions { max_json_depth: 32, max_field_len: 4096, ..ParseOptions::default() };
    let Ok(mut parser) = parser_for(format, &options) else { return };
    let framing = match format {
        "auto" => sniff_framing(data),
        name => format_by_name(name).map(|f| f.framing).unwrap_or(Framing::Lines),
    };
    let framing = match framing {
        Framing::Lines => ztlake_ingest::Framing::Lines,
        Framing::Json => ztlake_ingest::Framing::Json,
    };
    let read = ztlake_ingest::ReadOptions { max_line_len: 64 * 1024, max_json_len: 256 * 1024, buffer_size: 4096, ..Default::default() };
    let mut reader = ztlake_ingest::RecordReader::new(data, framing, &read);
    if is_json_content(data) {
        reader.set_max_line_len(read.max_json_len);
    }
    let mut out = Output::new(64, 0);
    let mut info = SourceInfo::lines("fuzz", "fuzz");
    info.delivered = Some(1_700_000_000_000_000);
    out.begin_source(info, [0; 4]);
    let mut frames = 0u64;
    while let Some(frame) = reader.next_record() {
        frames += 1;
        out.begin_record();
        match frame {
            ztlake_ingest::Frame::Record { line, bytes } => parser.parse(&Record { line, bytes }, &mut out),
            ztlake_ingest::Frame::TooLong { line, len, prefix } => out.quarantine_raw(line, prefix, len, Reason::LineTooLong, "too long"),
            ztlake_ingest::Frame::Broken { line, partial, len, .. } => out.quarantine_raw(line, partial, len, Reason::TruncatedInput, "broken"),
        }
        out.end_record();
    }
    parser.finish(&mut out);
    for (table, batch) in out.take_batches(0) {
        assert_eq!(batch.schema(), table.schema(), "batch schema of {table}");
    }
    let counts = out.counts();
    assert_eq!(counts.records, frames, "every frame is counted");
    let outcomes: u64 = counts.rows.values().sum::<u64>() + counts.skipped_total() + counts.replayed;
    assert!(outcomes >= counts.records, "every record has an outcome: {counts:?}");
}
