//! Golden tests: every fixture under `normalize/tests/fixtures/` is parsed and its rows compared
//! with the reviewed expected rows beside it.
//!
//! For an input `NAME.EXT` (any extension except `.json` options / `.expected.ndjson`):
//! - `NAME.options.json` (optional): `{"format": "aws-vpcflow", "vpc_fields": "…",
//!   "delivered": "2024-01-01T00:00:00Z"}`; the format defaults to `auto`;
//! - `NAME.expected.ndjson`: one JSON object per output row, in output order, with a `table`
//!   key naming the table. `event_uid`, `raw_hash` and the quarantine `time` are left out (they
//!   are hashes or ingest times); everything else is compared exactly.
//!
//! Inputs are framed by the real ingest framer (`ztlake-ingest`), as `ztlake ingest` does.
//! `ZTLAKE_BLESS=1 cargo test -p ztlake-normalize golden` (re)writes the expected files: review
//! every changed line before committing it.

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use crate::format::{Framing, ParseOptions, format_by_name, parser_for, sniff_framing};
use crate::output::{Output, Record, SourceInfo};
use crate::quarantine::Reason;
use crate::schema::Table;

/// Columns not compared (hashes and ingest times).
const SKIPPED: [&str; 2] = ["event_uid", "raw_hash"];

/// Rows produced by normalizing `bytes` the way `ztlake ingest` does, as JSON objects.
pub(crate) fn normalize_bytes(
    name: &str,
    bytes: &[u8],
    format: &str,
    options: &ParseOptions,
    delivered: Option<i64>,
) -> Vec<Map<String, Value>> {
    let framing = if format == "auto" {
        sniff_framing(bytes)
    } else {
        format_by_name(format).map(|f| f.framing).unwrap_or(Framing::Lines)
    };
    let framing = match framing {
        Framing::Lines => ztlake_ingest::Framing::Lines,
        Framing::Json => ztlake_ingest::Framing::Json,
    };
    let mut parser = parser_for(format, options).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut out = Output::new(1024, 0);
    let mut info = SourceInfo::lines(format!("golden:{name}"), name);
    info.delivered = delivered;
    out.begin_source(info, [0; 4]);
    let mut reader =
        ztlake_ingest::RecordReader::new(bytes, framing, &ztlake_ingest::ReadOptions::default());
    while let Some(frame) = reader.next_record() {
        out.begin_record();
        match frame {
            ztlake_ingest::Frame::Record { line, bytes } => {
                parser.parse(&Record { line, bytes }, &mut out)
            }
            ztlake_ingest::Frame::TooLong { line, len, prefix } => {
                out.quarantine_raw(line, prefix, len, Reason::LineTooLong, "too long")
            }
            ztlake_ingest::Frame::Broken { line, partial, len, error } => {
                out.quarantine_raw(line, partial, len, Reason::TruncatedInput, &error.to_string())
            }
        }
        out.end_record();
    }
    parser.finish(&mut out);
    let mut rows = Vec::new();
    let mut batches = out.take_batches(0);
    batches.sort_by_key(|(t, _)| *t);
    for (table, batch) in batches {
        rows.extend(batch_rows(table, &batch));
    }
    rows
}

fn batch_rows(table: Table, batch: &RecordBatch) -> Vec<Map<String, Value>> {
    let mut buf = Vec::new();
    {
        let mut writer: arrow::json::LineDelimitedWriter<_> =
            arrow::json::WriterBuilder::new().with_explicit_nulls(true).build(&mut buf);
        writer.write(batch).expect("json");
        writer.finish().expect("json");
    }
    let text = String::from_utf8(buf).expect("utf8");
    text.lines()
        .map(|line| {
            let Value::Object(obj) = serde_json::from_str(line).expect("row json") else {
                panic!("row is not an object")
            };
            let mut row = Map::new();
            row.insert("table".into(), Value::String(table.name().into()));
            for (k, v) in obj {
                let skip =
                    SKIPPED.contains(&k.as_str()) || (table == Table::Quarantine && k == "time");
                if !skip {
                    row.insert(k, v);
                }
            }
            row
        })
        .collect()
}

/// The shared corpus (`../shared/corpus` beside the project). Panics with a clear message when
/// it is absent: tests that compare against peers' expected outputs need it.
pub(crate) fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    assert!(
        dir.is_dir(),
        "the shared corpus is missing at {}: clone ztlake beside `shared/` (as CI does) to run corpus tests",
        dir.display()
    );
    dir
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

fn inputs(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if path.is_dir() {
            inputs(&path, found);
        } else if !(name.ends_with(".expected.ndjson")
            || name.ends_with(".options.json")
            || name.ends_with(".md"))
        {
            found.push(path);
        }
    }
}

fn stem(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let base = name.split_once('.').map_or(name, |(b, _)| b);
    path.with_file_name(base)
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FixtureOptions {
    format: Option<String>,
    vpc_fields: Option<String>,
    delivered: Option<String>,
}

#[test]
fn golden_fixtures_match_their_expected_rows() {
    let mut found = Vec::new();
    inputs(&fixtures_dir(), &mut found);
    assert!(!found.is_empty(), "no fixtures under {}", fixtures_dir().display());
    let bless = std::env::var_os("ZTLAKE_BLESS").is_some();
    let mut failures = Vec::new();
    for input in &found {
        let base = stem(input);
        let options: FixtureOptions = match std::fs::read(with_suffix(&base, ".options.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{}: options: {e}", input.display())),
            Err(_) => FixtureOptions::default(),
        };
        let parse = ParseOptions { vpc_fields: options.vpc_fields, ..ParseOptions::default() };
        let delivered = options
            .delivered
            .as_deref()
            .map(|d| crate::json::parse_time(d).expect("delivered time"));
        let bytes = std::fs::read(input).expect("read fixture");
        let name = input.strip_prefix(fixtures_dir()).unwrap_or(input).display().to_string();
        let rows = normalize_bytes(
            &name,
            &bytes,
            options.format.as_deref().unwrap_or("auto"),
            &parse,
            delivered,
        );
        let actual: String =
            rows.iter().map(|r| format!("{}\n", Value::Object(r.clone()))).collect();
        let expected_path = with_suffix(&base, ".expected.ndjson");
        if bless {
            std::fs::write(&expected_path, &actual).expect("write expected");
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => {
                let diff: Vec<String> = expected
                    .lines()
                    .zip(actual.lines())
                    .enumerate()
                    .filter(|(_, (e, a))| e != a)
                    .take(3)
                    .map(|(i, (e, a))| {
                        format!("  row {}:\n    expected {e}\n    actual   {a}", i + 1)
                    })
                    .collect();
                failures.push(format!(
                    "{name}: {} expected rows, {} actual\n{}",
                    expected.lines().count(),
                    actual.lines().count(),
                    diff.join("\n")
                ));
            }
            Err(_) => failures.push(format!(
                "{name}: no {} (run with ZTLAKE_BLESS=1 and review it)",
                expected_path.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden fixtures differ:\n{}",
        failures.len(),
        found.len(),
        failures.join("\n")
    );
}
