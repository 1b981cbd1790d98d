//! ztlake-normalize: the canonical table schemas, one parser per provider format, format
//! detection and quarantine records.
//!
//! This is the second stage of the pipeline (ingest → **normalize** → storage): framed records
//! in, rows appended to Arrow builders out. Nothing here does IO; every parser is synchronous,
//! pure and deterministic, so it can be fuzzed and benchmarked in isolation.
//!
//! - [`schema`]: the canonical tables, column by column (the contract).
//! - [`rows`]: typed rows and their Arrow builders.
//! - [`output`]: the sink parsers write to, with positions, uids and counts.
//! - [`quarantine`]: reason codes and the quarantine table's builder.
//! - [`format`]: the parser interface, format detection and options.
//! - [`providers`]: the registry of formats, one parser file each.
//! - [`json`]: shared tools for JSON formats (caps, typed decoding, lenient types, times).
//! - [`values`]: shared conversions (integers from bytes, canonical IPs, times).

pub mod format;
pub mod json;
pub mod output;
pub mod providers;
pub mod quarantine;
pub mod rows;
pub mod schema;
pub mod values;

#[cfg(test)]
mod golden;

pub use format::{Format, Framing, ParseOptions, Parser};
pub use output::{Counts, Output, Record, SourceInfo};
pub use quarantine::Reason;
pub use schema::{Provider, Table};
