//! `ztlake alerts`: the alerts in the lake, filtered, as a table or JSON; `ztlake alerts ack
//! ID` and `ztlake alerts resolve ID [--note]` record the lifecycle steps (`alert_events`)
//! through the on-call dispatcher, so escalation stops at once.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use ztlake_detections::alert::rfc3339;
use ztlake_detections::{Severity, cap};
use ztlake_runbooks::LinkAction;
use ztlake_storage::Lake;

use crate::alerts::{AlertFilter, Listed, list_alerts, stored_alerts};
use crate::cli::{AlertStatus, AlertStepArgs, AlertsAction, AlertsArgs, AlertsFormat};

/// List the alerts, or acknowledge or resolve one.
pub async fn run(lake: &Lake, args: AlertsArgs, config: Option<&Path>) -> Result<ExitCode> {
    match args.action {
        Some(AlertsAction::Ack(step)) => {
            return act(lake, LinkAction::Acknowledge, step, config).await;
        }
        Some(AlertsAction::Resolve(step)) => {
            return act(lake, LinkAction::Resolve, step, config).await;
        }
        None => {}
    }
    let min_severity = match &args.severity {
        Some(s) => match Severity::from_name(&s.to_ascii_lowercase()) {
            Some(s) => Some(s),
            None => bail!("--severity {s:?}: use info, low, medium, high or critical"),
        },
        None => None,
    };
    let status = args.status.map(|s| {
        match s {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
        .to_owned()
    });
    let filter = AlertFilter { min_severity, rule: args.rule.clone(), status, since: args.since };
    let alerts = list_alerts(lake, &filter).await?;
    match args.format {
        AlertsFormat::Json => println!("{}", serde_json::to_string_pretty(&json(&alerts))?),
        AlertsFormat::Table => print!("{}", table(&alerts)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Who acts: `--by`, else `$USER`, else `cli`. Control characters are dropped.
fn actor(by: Option<&str>) -> String {
    let raw = by.map(str::to_owned).or_else(|| std::env::var("USER").ok()).unwrap_or_default();
    let clean: String = raw.trim().chars().filter(|c| !c.is_control()).take(200).collect();
    if clean.is_empty() { "cli".to_owned() } else { clean }
}

/// Record an acknowledgement or resolution of a stored alert.
async fn act(
    lake: &Lake,
    action: LinkAction,
    args: AlertStepArgs,
    config: Option<&Path>,
) -> Result<ExitCode> {
    let id = args.id.trim();
    if !stored_alerts(lake, &[id.to_owned()]).await?.contains_key(id) {
        bail!("no alert {id:?} in the lake (`ztlake alerts` lists them)");
    }
    let who = actor(args.by.as_deref());
    let note = args.note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
    let d = crate::oncall::dispatcher(lake, config, crate::oncall::catalog(&args.runbooks))?;
    let (step, recorded) = d.record_action(id, action, &who, note).await?;
    let verb = match action {
        LinkAction::Acknowledge => "acknowledged",
        LinkAction::Resolve => "resolved",
    };
    if !recorded {
        eprintln!(
            "alert {id} {verb} by {who}, but the lake could not record it now; the step is kept in the outbox {} and recorded by the next run",
            d.outbox_dir().display()
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("alert {id} {verb} by {who} at {}", rfc3339(step.time));
    Ok(ExitCode::SUCCESS)
}

/// The alerts as JSON values (entity and evidence as objects, times as RFC 3339).
pub fn json(alerts: &[Listed]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = alerts
        .iter()
        .map(|l| {
            let a = &l.alert;
            serde_json::json!({
                "alert_id": a.alert_id,
                "rule_id": a.rule_id,
                "title": a.title,
                "severity": a.severity,
                "status": l.status,
                "provider": a.provider,
                "entity": a.entity,
                "dedupe_key": a.dedupe_key,
                "first_seen": rfc3339(a.first_seen),
                "last_seen": rfc3339(a.last_seen),
                "count": a.count,
                "runbook": a.runbook,
                "evidence_uids": a.evidence_uids,
                "evidence": a.evidence,
                "tags": a.tags,
                "updated": rfc3339(a.updated),
            })
        })
        .collect();
    serde_json::Value::Array(list)
}

/// The alerts as an aligned text table (entity JSON-escaped and capped: log values cannot
/// reach the terminal raw).
pub fn table(alerts: &[Listed]) -> String {
    let header = [
        "alert_id",
        "severity",
        "status",
        "rule",
        "entity",
        "count",
        "first_seen",
        "last_seen",
        "runbook",
    ];
    let rows: Vec<[String; 9]> = alerts
        .iter()
        .map(|l| {
            let a = &l.alert;
            [
                a.alert_id.clone(),
                a.severity.to_string(),
                l.status.clone(),
                a.rule_id.clone(),
                cap(&a.entity_json(), 80),
                a.count.to_string(),
                rfc3339(a.first_seen),
                rfc3339(a.last_seen),
                a.runbook.clone(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out.push_str(&format!("{} alert(s)\n", rows.len()));
    out
}
