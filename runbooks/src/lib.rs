//! ztlake-runbooks: the runbook catalog, downstream of detections (stage 5).
//!
//! A runbook is one Markdown file in `runbooks/` with YAML front matter (`id`, `title`,
//! `owner`, `escalation` times per severity) and the sections What it means, Triage, Hunt (SQL
//! with `{{entity}}`-style placeholders), Contain, Rollback and Escalate ([`runbook`]). The
//! [`Catalog`] loads and validates a directory, reporting every problem with file and line;
//! [`render`] fills a runbook's placeholders with an alert's values, keeping hostile values as
//! data. The rule loader checks rules against [`Catalog::ids`]. Alert routing and delivery
//! (email, webhooks) will live here too; they are not built yet.

mod catalog;
mod error;
pub mod render;
pub mod runbook;

pub use catalog::Catalog;
pub use error::{Error, Problem, Result};
pub use render::{Rendered, render};
pub use runbook::{REQUIRED_SECTIONS, Runbook, SEVERITIES, Section};
