//! The rule test runner (`ztlake rules test`): every rule's inline tests, end to end.
//!
//! A test's input is raw provider bytes with their format named. They go through the real
//! ingest framing (`ztlake-ingest`'s `RecordReader`) and the real parsers
//! (`ztlake_normalize::format::parser_for`), exactly as `ztlake ingest` reads them, into
//! canonical batches. Streaming rules: the batches are fed to the same [`Engine`] ingest uses,
//! then flushed; the same batches are also backfilled (as in-memory tables), and a test fails if
//! the two disagree. Scheduled rules: the backfill's alerts. The alerts are compared with
//! `expect`: their number and, when listed, their entity values (as text, any order). An input
//! record that ends in quarantine fails the test (a test should show what it means to).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use ztlake_ingest::{Frame, ReadOptions, RecordReader};
use ztlake_normalize::format::{Framing, ParseOptions, format_by_name, parser_for, sniff_framing};
use ztlake_normalize::{Output, Reason, Record, SourceInfo, Table};

use crate::alert::Alert;
use crate::backfill::{BackfillOptions, backfill};
use crate::engine::{Clock, Engine, EngineOptions};
use crate::loader::RuleSet;
use crate::reference::Reference;
use crate::rule::{Mode, Rule, RuleTest, TestInput};

/// The result of one test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestOutcome {
    /// The test's name.
    pub name: String,
    /// Its line in the rule file.
    pub line: usize,
    /// Why it failed (empty: passed).
    pub failures: Vec<String>,
    /// The alerts the rule raised.
    pub alerts: Vec<Alert>,
}

impl TestOutcome {
    /// Whether the test passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The results of one rule's tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleReport {
    /// The rule.
    pub rule: String,
    /// Its file.
    pub file: PathBuf,
    /// One outcome per test, in file order.
    pub tests: Vec<TestOutcome>,
}

impl RuleReport {
    /// Whether every test passed.
    pub fn passed(&self) -> bool {
        self.tests.iter().all(TestOutcome::passed)
    }
}

/// Run the tests of every rule of `set`.
pub async fn run_tests(set: &RuleSet) -> Vec<RuleReport> {
    let mut reports = Vec::new();
    for rule in set.rules() {
        reports.push(run_rule_tests(rule, set.reference()).await);
    }
    reports
}

/// Run the tests of one rule.
pub async fn run_rule_tests(rule: &Arc<Rule>, reference: &Reference) -> RuleReport {
    let mut tests = Vec::new();
    for (index, test) in rule.spec.tests.iter().enumerate() {
        let mut outcome = TestOutcome {
            name: test.name.clone(),
            line: rule.test_line(index),
            failures: Vec::new(),
            alerts: Vec::new(),
        };
        match run_one(rule, index, test, reference).await {
            Ok(alerts) => {
                outcome.failures = compare(rule, test, &alerts);
                outcome.alerts = alerts;
            }
            Err(failures) => outcome.failures = failures,
        }
        tests.push(outcome);
    }
    RuleReport { rule: rule.id().to_owned(), file: rule.file.clone(), tests }
}

async fn run_one(
    rule: &Arc<Rule>,
    index: usize,
    test: &RuleTest,
    reference: &Reference,
) -> Result<Vec<Alert>, Vec<String>> {
    let reference = if test.reference.is_empty() {
        reference.clone()
    } else {
        reference
            .with_csv(&test.reference, &rule.file, rule.test_line(index))
            .map_err(|d| d.into_iter().map(|d| d.message).collect::<Vec<_>>())?
    };
    let batches = normalize(rule.id(), index, &test.input)?;
    let fail = |e: crate::error::Error| vec![e.to_string()];
    let set = RuleSet::single(rule.clone(), reference.clone());
    let source = SessionContext::new();
    for table in Table::DATA {
        let parts: Vec<RecordBatch> =
            batches.iter().filter(|(t, _)| *t == table).map(|(_, b)| b.clone()).collect();
        let mem =
            MemTable::try_new(table.schema(), vec![parts]).map_err(|e| vec![e.to_string()])?;
        source.register_table(table.name(), Arc::new(mem)).map_err(|e| vec![e.to_string()])?;
    }
    let backfilled =
        backfill(&set, &source, &BackfillOptions::default()).await.map_err(fail)?.alerts;
    if rule.mode() == Mode::Scheduled {
        return Ok(backfilled);
    }
    let mut engine =
        Engine::new(std::slice::from_ref(rule), &reference, EngineOptions::default(), Clock::Data)
            .await
            .map_err(fail)?;
    for (table, batch) in &batches {
        engine.push(*table, batch).await.map_err(fail)?;
    }
    engine.flush().await.map_err(fail)?;
    let streamed = engine.alerts(0);
    let same = streamed.len() == backfilled.len()
        && streamed.iter().zip(&backfilled).all(|(a, b)| a.same_state(b));
    if !same {
        return Err(vec![format!(
            "streaming and backfill disagree: streaming raised {}, backfill {}",
            describe(&streamed),
            describe(&backfilled)
        )]);
    }
    Ok(streamed)
}

fn describe(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return "no alert".to_owned();
    }
    let list: Vec<String> =
        alerts.iter().map(|a| format!("{} (count {})", a.entity_json(), a.count)).collect();
    format!("{} alert(s): {}", alerts.len(), list.join(", "))
}

fn compare(rule: &Rule, test: &RuleTest, alerts: &[Alert]) -> Vec<String> {
    let mut failures = Vec::new();
    if alerts.len() != test.expect.count {
        failures.push(format!("expected {} alert(s), got {}", test.expect.count, describe(alerts)));
    }
    if let Some(expected) = &test.expect.entities {
        let mut want: Vec<BTreeMap<String, Option<String>>> = expected
            .iter()
            .map(|e| e.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
            .collect();
        let mut got: Vec<BTreeMap<String, Option<String>>> = alerts
            .iter()
            .map(|a| {
                a.entity
                    .iter()
                    .filter(|(k, _)| rule.spec.entity.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect();
        want.sort();
        got.sort();
        if want != got {
            let show = |v: &[BTreeMap<String, Option<String>>]| {
                serde_json::to_string(v).unwrap_or_else(|_| "?".to_owned())
            };
            failures.push(format!("expected entities {}, got {}", show(&want), show(&got)));
        }
    }
    failures
}

/// Normalize a test's inputs the way `ztlake ingest` does.
pub(crate) fn normalize(
    rule: &str,
    test: usize,
    inputs: &[TestInput],
) -> Result<Vec<(Table, RecordBatch)>, Vec<String>> {
    let mut out_batches = Vec::new();
    let mut failures = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let bytes = input.data.as_bytes();
        let framing = if input.format == "auto" {
            sniff_framing(bytes)
        } else {
            match format_by_name(&input.format) {
                Ok(f) => f.framing,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            }
        };
        let framing = match framing {
            Framing::Lines => ztlake_ingest::Framing::Lines,
            Framing::Json => ztlake_ingest::Framing::Json,
        };
        let mut parser = match parser_for(&input.format, &ParseOptions::default()) {
            Ok(p) => p,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let mut out = Output::new(1024, 0);
        let name = format!("{rule}/test{}/input{}", test + 1, i + 1);
        out.begin_source(SourceInfo::lines(format!("test:{name}"), name.clone()), [0; 4]);
        let mut reader = RecordReader::new(bytes, framing, &ReadOptions::default());
        while let Some(frame) = reader.next_record() {
            out.begin_record();
            match frame {
                Frame::Record { line, bytes } => parser.parse(&Record { line, bytes }, &mut out),
                Frame::TooLong { line, len, prefix } => {
                    out.quarantine_raw(line, prefix, len, Reason::LineTooLong, "too long")
                }
                Frame::Broken { line, partial, len, error } => out.quarantine_raw(
                    line,
                    partial,
                    len,
                    Reason::TruncatedInput,
                    &error.to_string(),
                ),
            }
            out.end_record();
        }
        parser.finish(&mut out);
        for (table, batch) in out.take_batches(0) {
            if table == Table::Quarantine {
                failures.extend(quarantined(&input.format, &batch));
            } else {
                out_batches.push((table, batch));
            }
        }
    }
    if failures.is_empty() { Ok(out_batches) } else { Err(failures) }
}

fn quarantined(format: &str, batch: &RecordBatch) -> Vec<String> {
    let text = |name: &str, i: usize| -> String {
        batch
            .column_by_name(name)
            .and_then(|c| {
                c.as_string_opt::<i32>().filter(|c| c.is_valid(i)).map(|c| c.value(i).to_owned())
            })
            .unwrap_or_default()
    };
    (0..batch.num_rows())
        .map(|i| {
            format!(
                "input record {} ({format}) was quarantined: {}: {}",
                text("source", i),
                text("reason", i),
                text("detail", i)
            )
        })
        .collect()
}
