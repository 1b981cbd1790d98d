//! `ztlake detect`: every rule over the lake for a time range; alerts written to the lake, then
//! handed to on-call delivery ([`crate::oncall`]: the outbox by default, nothing sent).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use ztlake_detections::BackfillOptions;
use ztlake_detections::alert::rfc3339;
use ztlake_storage::Lake;

use crate::cli::DetectArgs;
use crate::commands::rules::paths;
use crate::detect::{DetectSummary, detect};
use crate::pack;

/// Run the backfill, deliver new and changed alerts to on-call, and print the summary.
pub async fn run(
    lake: &Lake,
    args: DetectArgs,
    config: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let started = chrono::Utc::now().timestamp_micros();
    let loaded = match pack::load(&paths(&args.pack)).await {
        Ok(p) => p,
        Err(problems) => {
            eprint!("{problems}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let rules = if args.only.is_empty() {
        loaded.rules.clone()
    } else {
        for id in &args.only {
            if loaded.rules.get(id).is_none() {
                anyhow::bail!("no rule {id:?} in {}", args.pack.rules.display());
            }
        }
        loaded.rules.only(&args.only)
    };
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from >= to
    {
        anyhow::bail!("--from must be before --to");
    }
    let options = BackfillOptions { from: args.from, to: args.to, ..BackfillOptions::default() };
    let summary = detect(lake, &rules, &options).await?;
    let delivery = crate::oncall::deliver_since(lake, config, &args.pack.runbooks, started).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        eprint!("{}", crate::oncall::render(&delivery));
    } else {
        print!("{}", render(&summary));
        print!("{}", crate::oncall::render(&delivery));
    }
    Ok(ExitCode::SUCCESS)
}

/// The text summary.
pub fn render(s: &DetectSummary) -> String {
    let mut out = String::new();
    let b = &s.backfill;
    match b.range {
        Some((from, to)) => {
            let _ = writeln!(
                out,
                "detect: {} rule(s) over {} .. {}",
                b.rules,
                rfc3339(from),
                rfc3339(to)
            );
        }
        None => {
            let _ = writeln!(out, "detect: {} rule(s); the lake has no events for them", b.rules);
        }
    }
    let _ = writeln!(
        out,
        "rows read: {}, windows evaluated: {}, scheduled runs: {}",
        b.rows_read, b.stats.final_evaluations, b.scheduled_runs
    );
    let _ = writeln!(
        out,
        "alerts: {} ({} new, {} updated, {} unchanged; {} lifecycle events written)",
        b.alerts.len(),
        s.written.new,
        s.written.updated,
        s.written.unchanged,
        s.written.events
    );
    for (rule, n) in &s.alerts_by_rule {
        let _ = writeln!(out, "  {rule:<40} {n:>6}");
    }
    out
}
