//! ztlake: a cross-cloud telemetry pipeline and detection engine for Zero Trust.
//!
//! The binary is thin: [`cli`] parses arguments and [`commands`] run them through the library
//! crates — `ztlake-ingest` (sources, framing), `ztlake-normalize` (schemas, parsers),
//! `ztlake-storage` (the Delta lake), `ztlake-detections` (rules, alerts), `ztlake-runbooks`.
//! [`pipeline`] wires ingest → normalize → storage (→ streaming detection); [`hunt`] is
//! read-only SQL over the lake; [`pack`] loads rules, runbooks and reference tables;
//! [`detect`] backfills rules over the lake; [`alerts`] stores and lists alerts; [`service`] is
//! the long-running `ztlake run`; [`posture`] computes the Zero Trust KPIs and their report;
//! [`oncall`] wires on-call delivery (routing, email, webhooks, escalation) to the lake.

#![recursion_limit = "256"]

pub mod alerts;
pub mod cli;
pub mod commands;
pub mod detect;
pub mod generate;
pub mod hunt;
pub mod oncall;
pub mod pack;
pub mod pipeline;
pub mod posture;
pub mod service;
