//! `ztlake alerts`: the alerts in the lake, filtered, as a table or JSON.

use std::process::ExitCode;

use anyhow::{Result, bail};
use ztlake_detections::alert::rfc3339;
use ztlake_detections::{Severity, cap};
use ztlake_storage::Lake;

use crate::alerts::{AlertFilter, Listed, list_alerts};
use crate::cli::{AlertStatus, AlertsArgs, AlertsFormat};

/// List the alerts.
pub async fn run(lake: &Lake, args: AlertsArgs) -> Result<ExitCode> {
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
