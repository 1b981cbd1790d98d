//! ztlake: a cross-cloud telemetry pipeline and detection engine for Zero Trust.
//!
//! The binary is thin: [`cli`] parses arguments and [`commands`] run them through the library
//! crates — `ztlake-ingest` (sources, framing), `ztlake-normalize` (schemas, parsers),
//! `ztlake-storage` (the Delta lake). [`pipeline`] wires ingest → normalize → storage;
//! [`hunt`] is read-only SQL over the lake.

#![recursion_limit = "256"]

pub mod cli;
pub mod commands;
pub mod generate;
pub mod hunt;
pub mod pipeline;
