//! Detection over the lake (`ztlake detect`): every rule backfilled over a time range of the
//! lake's tables, the alerts written with [`crate::alerts::write_alerts`].
//!
//! The detections crate does the evaluation over any DataFusion session; this module only
//! registers the lake's tables in one and writes the result back.

use std::collections::BTreeMap;

use anyhow::Result;
use datafusion::prelude::SessionContext;
use ztlake_detections::{BackfillOptions, BackfillReport, RuleSet, backfill};
use ztlake_storage::Lake;

use crate::alerts::{AlertWrite, write_alerts};

/// What `ztlake detect` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DetectSummary {
    /// The backfill: range, rows read, evaluations.
    pub backfill: BackfillReport,
    /// Alerts per rule.
    pub alerts_by_rule: BTreeMap<String, usize>,
    /// What was written to the lake.
    pub written: AlertWrite,
}

/// Run every rule of `rules` over `lake` for `options`' range and store the alerts.
pub async fn detect(
    lake: &Lake,
    rules: &RuleSet,
    options: &BackfillOptions,
) -> Result<DetectSummary> {
    let ctx = SessionContext::new();
    lake.register(&ctx).await?;
    let backfill = backfill(rules, &ctx, options).await?;
    let mut alerts_by_rule = BTreeMap::new();
    for a in &backfill.alerts {
        *alerts_by_rule.entry(a.rule_id.clone()).or_default() += 1;
    }
    let written = write_alerts(lake, &backfill.alerts).await?;
    Ok(DetectSummary { backfill, alerts_by_rule, written })
}
