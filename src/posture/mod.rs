//! Zero Trust posture: measurable indicators and their trend, computed from the telemetry in the
//! lake (`ztlake posture`, and the report `ztlake demo` shows).
//!
//! [`kpi`] holds THE list of KPIs — each with its definition, unit, direction and SQL over the
//! lake and reference tables; [`compute`] runs their SQL through a read-only hunting session
//! and evaluates them per day, provider and scope, for the current period and the previous one,
//! with their top offenders; [`text`], [`html`] (with [`chart`]'s SVG) and serde JSON render the
//! resulting [`PostureReport`].
//!
//! ```no_run
//! # async fn demo(lake: &ztlake_storage::Lake) -> anyhow::Result<()> {
//! use ztlake::posture::{PostureOptions, report, write_html};
//!
//! let options = PostureOptions::default(); // last 30 days of data, no reference tables
//! let posture = report(lake, &options).await?;
//! write_html(&posture, "report.html".as_ref())?;
//! println!("{}", ztlake::posture::text::render(&posture));
//! # Ok(())
//! # }
//! ```

pub mod chart;
pub mod compute;
pub mod html;
pub mod kpi;
pub mod measure;
pub mod report;
pub mod text;

#[cfg(test)]
mod tests;

use std::path::Path;

use anyhow::{Context as _, Result};
use ztlake_detections::Reference;
use ztlake_storage::Lake;

pub use compute::Plan;
pub use report::{KpiReport, PostureReport};

use crate::hunt::HuntLimits;

/// Length of the default period, in days.
pub const DEFAULT_DAYS: u32 = 30;

/// Offenders listed per KPI by default.
pub const DEFAULT_TOP: usize = 10;

/// What [`report`] computes.
#[derive(Debug, Clone)]
pub struct PostureOptions {
    /// Start of the period (µs since the epoch; rounded down to a UTC day). Default: `to`
    /// minus [`DEFAULT_DAYS`].
    pub from: Option<i64>,
    /// End of the period (µs, exclusive; rounded up to a UTC day). Default: the end of the day
    /// of the latest event in flows, sign-ins and certificate events (today on an empty lake).
    pub to: Option<i64>,
    /// Reference tables (identities for privileged users, egress gateways, assets) and the UDFs
    /// over them.
    pub reference: Reference,
    /// Offenders listed per KPI.
    pub top: usize,
    /// Limits of every query.
    pub limits: HuntLimits,
}

impl Default for PostureOptions {
    fn default() -> Self {
        PostureOptions {
            from: None,
            to: None,
            reference: Reference::empty(),
            top: DEFAULT_TOP,
            limits: HuntLimits::default(),
        }
    }
}

/// Compute the posture report of `lake`.
///
/// # Errors
/// When the lake cannot be read, a query fails or exceeds its limits, or the period is empty.
pub async fn report(lake: &Lake, options: &PostureOptions) -> Result<PostureReport> {
    let hunter = compute::session(lake, &options.reference, options.limits.clone()).await?;
    let latest = if options.to.is_none() { compute::latest_event(&hunter).await? } else { None };
    let now = chrono::Utc::now().timestamp_micros();
    let plan = Plan::new(options.from, options.to, latest, now, DEFAULT_DAYS)?;
    let kpis = compute::kpis(&hunter, &plan, options.top).await?;
    Ok(PostureReport {
        generated_at: report::rfc3339(now - now.rem_euclid(1_000_000)),
        period: report::Period::new(plan.from, plan.to),
        previous_period: report::Period::new(plan.previous_from, plan.from),
        days: plan.days().map(|d| measure::day_text(i64::from(d))).collect(),
        kpis,
    })
}

/// Write the report as a self-contained HTML page to `path`.
///
/// # Errors
/// When a chart cannot be drawn or the file cannot be written (the error names the path).
pub fn write_html(report: &PostureReport, path: &Path) -> Result<()> {
    let page = html::render(report)?;
    std::fs::write(path, page)
        .with_context(|| format!("writing the posture report {}", path.display()))
}
