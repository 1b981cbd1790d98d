//! `ztlake rules validate` and `ztlake rules test`: the detection pack's checks.

use std::process::ExitCode;

use anyhow::Result;
use ztlake_detections::{Mode, RuleReport};

use crate::cli::{PackArgs, RulesCommand};
use crate::pack::{self, PackPaths};

/// The pack paths from the arguments.
pub fn paths(p: &PackArgs) -> PackPaths {
    PackPaths {
        rules: p.rules.clone(),
        runbooks: p.runbooks.clone(),
        reference: p.reference.clone(),
    }
}

/// Run a `rules` subcommand.
pub async fn run(command: RulesCommand) -> Result<ExitCode> {
    match command {
        RulesCommand::Validate { pack, explain } => validate(&pack, explain).await,
        RulesCommand::Test { pack, rule, json } => test(&pack, rule.as_deref(), json).await,
    }
}

async fn validate(args: &PackArgs, explain: bool) -> Result<ExitCode> {
    let loaded = match pack::load(&paths(args)).await {
        Ok(p) => p,
        Err(problems) => {
            eprint!("{problems}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for warning in pack::placeholder_warnings(&loaded) {
        eprintln!("warning: {warning}");
    }
    for rule in loaded.rules.rules() {
        let timing = match rule.mode() {
            Mode::Streaming => format!(
                "streaming, window {}, lateness {}",
                humantime::format_duration(rule.window),
                humantime::format_duration(rule.lateness)
            ),
            Mode::Scheduled => format!(
                "scheduled, every {}, lookback {}",
                humantime::format_duration(rule.interval),
                humantime::format_duration(rule.lookback)
            ),
        };
        println!(
            "ok  {:<32} {:<8} {} on {}; runbook {}; {} test(s)",
            rule.id(),
            rule.spec.severity,
            timing,
            rule.table,
            rule.spec.runbook,
            rule.spec.tests.len()
        );
        if explain {
            for r in &rule.retains {
                println!("      keeps {}", r.describe());
            }
        }
    }
    println!(
        "{} rule(s), {} runbook(s), {} reference table(s): valid",
        loaded.rules.rules().len(),
        loaded.runbooks.list().len(),
        loaded.rules.reference().names().len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn test(args: &PackArgs, only: Option<&str>, json: bool) -> Result<ExitCode> {
    let loaded = match pack::load(&paths(args)).await {
        Ok(p) => p,
        Err(problems) => {
            eprint!("{problems}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let rules = match only {
        Some(id) if loaded.rules.get(id).is_none() => {
            anyhow::bail!("no rule {id:?} in {}", args.rules.display())
        }
        Some(id) => loaded.rules.only(&[id.to_owned()]),
        None => loaded.rules.clone(),
    };
    let reports = ztlake_detections::run_tests(&rules).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", render(&reports));
    }
    let failed = reports.iter().any(|r| !r.passed());
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The text report: one line per rule, one per failing test with its reasons.
pub fn render(reports: &[RuleReport]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let (mut tests, mut failed) = (0, 0);
    for r in reports {
        let bad: Vec<_> = r.tests.iter().filter(|t| !t.passed()).collect();
        tests += r.tests.len();
        failed += bad.len();
        let verdict = if bad.is_empty() { "PASS" } else { "FAIL" };
        let _ = writeln!(
            out,
            "{verdict} {} ({}/{} tests)",
            r.rule,
            r.tests.len() - bad.len(),
            r.tests.len()
        );
        for t in &r.tests {
            let mark = if t.passed() { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "  {mark} {} ({}:{})", t.name, r.file.display(), t.line);
            for f in &t.failures {
                let _ = writeln!(out, "         {f}");
            }
        }
    }
    let _ = writeln!(out, "{} passed, {failed} failed", tests - failed);
    out
}
