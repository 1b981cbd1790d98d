//! ztlake-detections: the rule engine, stage 4 of ingest → normalize → storage → **detections**.
//!
//! Rules are YAML files (docs/rules.md is the contract). This crate loads and validates them,
//! plans their SQL with DataFusion against the canonical and reference schemas, runs them on
//! the live stream and as a backfill with the same results, and turns their result rows into
//! deterministic, deduplicated alerts. It knows nothing of where data is stored, of Kafka or of
//! email: it takes batches and DataFusion sessions; the `ztlake` binary wires the lake in.
//!
//! - [`loader`]: [`load_dir`] parses, validates and plans every rule, reporting every problem
//!   with file and line ([`Diagnostic`]); [`RuleSet`].
//! - [`rule`]: the rule model ([`RuleFile`] as written, [`Rule`] validated).
//! - [`compile`]: a rule's plan and what it keeps of each table ([`Retain`]).
//! - [`engine`]: [`Engine`] — filter + project per batch, tumbling event-time windows, lateness,
//!   bounded memory, provisional and final evaluation; [`Background`] runs it on its own thread.
//! - [`backfill`]: [`backfill()`] over any session holding the canonical tables.
//! - [`alert`]: [`Alert`] identity, merging, rows of `alerts` / `alert_events`.
//! - [`udf`]: the UDF registry; [`reference`]: reference tables and their lookups.
//! - [`testing`]: the rule test runner behind `ztlake rules test`.
//!
//! ```no_run
//! # async fn demo(batch: arrow::array::RecordBatch) -> ztlake_detections::Result<()> {
//! use ztlake_detections::{Clock, Engine, EngineOptions, LoadOptions, load_dir};
//! use ztlake_normalize::Table;
//!
//! let rules = load_dir("detections/rules".as_ref(), &LoadOptions::default()).await?;
//! let mut engine =
//!     Engine::new(&rules.streaming(), rules.reference(), EngineOptions::default(), Clock::Data).await?;
//! engine.push(Table::Flows, &batch).await?;
//! engine.flush().await?;
//! for alert in engine.alerts(0) {
//!     println!("{} {} {}", alert.alert_id, alert.rule_id, alert.entity_json());
//! }
//! # Ok(())
//! # }
//! ```

pub mod alert;
pub mod backfill;
mod background;
mod book;
mod candidate;
pub mod compile;
pub mod engine;
#[cfg(test)]
mod engine_tests;
mod error;
pub mod loader;
mod locate;
mod parse;
pub mod reference;
pub mod rule;
pub mod testing;
pub mod udf;
mod window_table;

pub use alert::{Alert, AlertEvent, alert_id, alerts_batch, alerts_from_batch, events_batch};
pub use backfill::{BackfillOptions, BackfillReport, backfill};
pub use background::Background;
pub use book::Spent;
pub use candidate::{MAX_VALUE_LEN, cap};
pub use compile::Retain;
pub use engine::{ChangedAlerts, Clock, Engine, EngineOptions, EngineStats};
pub use error::{Diagnostic, Error, Result};
pub use loader::{LoadOptions, RuleSet, load_dir, load_sources, rule_files};
pub use reference::Reference;
pub use rule::{Mode, Rule, RuleFile, Severity};
pub use testing::{RuleReport, TestOutcome, run_tests};
