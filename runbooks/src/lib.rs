//! ztlake-runbooks: the runbook catalog and on-call delivery, downstream of detections (stage 5).
//!
//! A runbook is one Markdown file in `runbooks/` with YAML front matter (`id`, `title`,
//! `owner`, `escalation` times per severity) and the sections What it means, Triage, Hunt (SQL
//! with `{{entity}}`-style placeholders), Contain, Rollback and Escalate ([`runbook`]). The
//! [`Catalog`] loads and validates a directory, reporting every problem with file and line;
//! [`render`] fills a runbook's placeholders with an alert's values, keeping hostile values as
//! data. The rule loader checks rules against [`Catalog::ids`].
//!
//! On-call delivery closes the loop from alert to response:
//! - [`config`]: the `[oncall]` section of `ztlake.toml` (targets, routes, SMTP, webhooks,
//!   links, retries);
//! - [`routing`]: which targets an alert goes to; quiet hours and rate limits;
//! - [`notify`]: the notifier registry — email ([`notify::email`], lettre: SMTP with TLS or
//!   an outbox of `.eml` files) and webhooks ([`notify::webhook`]: JSON, Slack, PagerDuty);
//! - [`Dispatcher`]: durable, non-blocking submission into the [`outbox`], delivery with
//!   retries and backoff, escalation ([`escalation`]), lifecycle steps recorded through a
//!   [`LifecycleSink`] the binary implements over the lake ([`lifecycle`]);
//! - [`links`] and [`server`]: signed acknowledge/resolve links and the endpoint serving them.
//!
//! This crate knows nothing of the lake or Kafka; time comes from a [`Clock`].

mod catalog;
pub mod clock;
pub mod config;
pub mod dispatcher;
mod error;
pub mod escalation;
pub mod lifecycle;
pub mod links;
pub mod notify;
pub mod outbox;
pub mod render;
pub mod routing;
pub mod runbook;
pub mod server;
mod store;

#[cfg(test)]
mod dispatcher_tests;
#[cfg(test)]
mod http_tests;

pub use catalog::Catalog;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::OncallConfig;
pub use dispatcher::{Dispatcher, Submitted, TickReport};
pub use error::{Error, Problem, Result};
pub use lifecycle::{AlertStatus, LifecycleSink, LifecycleStep, MemorySink, StepKind};
pub use links::{LinkAction, LinkClaims, LinkSigner};
pub use outbox::{AlertState, Entry};
pub use render::{Rendered, render};
pub use runbook::{REQUIRED_SECTIONS, Runbook, SEVERITIES, Section};
