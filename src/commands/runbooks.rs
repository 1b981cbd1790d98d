//! `ztlake runbooks`: the runbook catalog; `show ID [--alert ALERT_ID]` renders one.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use ztlake_runbooks::{Catalog, render};
use ztlake_storage::Lake;

use crate::alerts::stored_alerts;
use crate::cli::{RunbooksArgs, RunbooksCommand};

/// List or show runbooks. The lake is opened only for `--alert`.
pub async fn run(lake_location: &str, args: RunbooksArgs) -> Result<ExitCode> {
    let catalog = Catalog::load_dir(&args.runbooks).with_context(|| {
        format!("loading runbooks from {} (--runbooks, ZTLAKE_RUNBOOKS)", args.runbooks.display())
    })?;
    match args.command {
        None => {
            for r in catalog.list() {
                let escalation: Vec<String> = ztlake_runbooks::SEVERITIES
                    .iter()
                    .rev()
                    .filter_map(|s| {
                        r.escalation
                            .get(*s)
                            .map(|d| format!("{s} {}", humantime::format_duration(*d)))
                    })
                    .collect();
                println!(
                    "{:<28} {:<56} owner {:<20} escalate {}",
                    r.id,
                    r.title,
                    r.owner,
                    escalation.join(", ")
                );
            }
            println!("{} runbook(s) in {}", catalog.list().len(), args.runbooks.display());
            Ok(ExitCode::SUCCESS)
        }
        Some(RunbooksCommand::Show { id, alert }) => {
            let runbook = catalog.get(&id)?;
            let values = match alert {
                Some(alert_id) => {
                    let lake = crate::commands::open_lake(lake_location).await?;
                    alert_values(&lake, &alert_id).await?
                }
                None => Default::default(),
            };
            let rendered = render(runbook, &values);
            print!("{}", rendered.text);
            if !values.is_empty() && !rendered.missing.is_empty() {
                eprintln!(
                    "note: no value for {} (left as placeholders)",
                    rendered.missing.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The placeholder values of a stored alert.
pub async fn alert_values(
    lake: &Lake,
    alert_id: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    let alert =
        stored_alerts(lake, &[alert_id.to_owned()]).await?.remove(alert_id).with_context(|| {
            format!("no alert {alert_id:?} in the lake (`ztlake alerts` lists them)")
        })?;
    Ok(alert.placeholders())
}
