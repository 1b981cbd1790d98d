//! Engine behaviour on real rows: windows, lateness, out-of-order rows, dedupe periods,
//! deterministic ids, eviction, streaming == backfill, and the shipped rule pack's own tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use ztlake_normalize::Table;

use crate::alert::Alert;
use crate::backfill::{BackfillOptions, backfill};
use crate::engine::{Clock, Engine, EngineOptions};
use crate::loader::{LoadOptions, RuleSet, load_dir, load_sources};
use crate::rule::TestInput;
use crate::testing::{normalize, run_tests};

const T0: i64 = 1_700_000_400; // 2023-11-14T22:20:00Z, a 10-minute boundary

/// A streaming rule counting accepted flows per destination (window 10m, lateness 10m).
fn rule_yaml(id: &str, extra: &str) -> String {
    format!(
        "id: {id}\ntitle: T\nseverity: low\ntable: flows\nmode: streaming\nwindow: 10m\n{extra}sql: |\n  SELECT dst_ip, count(*) AS count, min(time) AS first_seen, max(time) AS last_seen, array_agg(event_uid) AS event_uids\n  FROM flows WHERE action = 'allow' GROUP BY dst_ip\nentity: [dst_ip]\nrunbook: rb\ntests:\n  - name: p\n    input: [{{format: aws-vpcflow, data: x}}]\n    expect: {{count: 1}}\n  - name: n\n    input: [{{format: aws-vpcflow, data: x}}]\n    expect: {{count: 0}}\n"
    )
}

async fn rules(yaml: &str) -> RuleSet {
    load_sources(&[(PathBuf::from("r.yaml"), yaml.to_owned())], &LoadOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// One accepted flow line to `dst` starting at `secs`.
fn line(dst: &str, secs: i64) -> String {
    format!("2 123456789012 eni-1 10.9.9.9 {dst} 40000 443 6 1 60 {secs} {} ACCEPT OK\n", secs + 1)
}

/// Flow batches from vpcflow lines (each call is its own source).
fn flows(source: usize, lines: &[String]) -> Vec<RecordBatch> {
    let input = TestInput { format: "aws-vpcflow".into(), data: lines.concat() };
    normalize("engine-test", source, &[input])
        .expect("normalize")
        .into_iter()
        .map(|(t, b)| {
            assert_eq!(t, Table::Flows);
            b
        })
        .collect()
}

async fn stream(
    set: &RuleSet,
    batches: &[RecordBatch],
    options: EngineOptions,
) -> (Vec<Alert>, Engine) {
    let mut engine =
        Engine::new(&set.streaming(), set.reference(), options, Clock::Data).await.expect("engine");
    for b in batches {
        engine.push(Table::Flows, b).await.expect("push");
    }
    engine.flush().await.expect("flush");
    (engine.alerts(0), engine)
}

async fn backfilled(set: &RuleSet, batches: &[RecordBatch]) -> Vec<Alert> {
    let ctx = SessionContext::new();
    let mem = MemTable::try_new(Table::Flows.schema(), vec![batches.to_vec()]).expect("mem");
    ctx.register_table("flows", Arc::new(mem)).expect("register");
    let options = BackfillOptions {
        chunk: std::time::Duration::from_secs(1800),
        ..BackfillOptions::default()
    };
    let mut alerts = backfill(set, &ctx, &options).await.expect("backfill").alerts;
    for a in &mut alerts {
        a.updated = 0;
    }
    alerts
}

#[tokio::test]
async fn late_and_out_of_order_rows_within_the_lateness_count() {
    let set = rules(&rule_yaml("zt-w", "")).await;
    // Window [T0, T0+600): two rows; then a row of the next window; then an out-of-order row
    // for the first window (still open: lateness 10m); then the clock passes T0+600+600 and
    // the first window closes; a row for it after that is late.
    let batches = [
        flows(0, &[line("10.0.0.1", T0 + 10), line("10.0.0.1", T0 + 20)]),
        flows(1, &[line("10.0.0.1", T0 + 700)]),
        flows(2, &[line("10.0.0.1", T0 + 30)]),
        flows(3, &[line("10.0.0.2", T0 + 1300)]),
        flows(4, &[line("10.0.0.1", T0 + 40)]),
    ]
    .concat();
    let (alerts, engine) = stream(&set, &batches, EngineOptions::default()).await;
    assert_eq!(engine.stats().late_rows, 1, "{:?}", engine.stats());
    let a =
        alerts.iter().find(|a| a.entity["dst_ip"].as_deref() == Some("10.0.0.1")).expect("alert");
    assert_eq!(
        a.count,
        3 + 1,
        "three rows in the first window (one out of order), one in the second"
    );
    assert_eq!(a.evidence.windows.len(), 2);
    assert_eq!(a.first_seen, (T0 + 10) * 1_000_000);
    assert_eq!(a.last_seen, (T0 + 700) * 1_000_000);
    assert_eq!(a.evidence_uids.len(), 4);
    assert_eq!(a.provider, "aws");
}

#[tokio::test]
async fn the_dedupe_period_groups_windows_into_one_alert() {
    let set = rules(&rule_yaml("zt-d", "dedupe: {period: 1h}\n")).await;
    // T0 = 22:20; the period is [22:00, 23:00): windows 22:20 and 22:40 go to one alert,
    // 23:10 to the next period's alert.
    let batches = flows(
        0,
        &[line("10.0.0.1", T0 + 5), line("10.0.0.1", T0 + 1205), line("10.0.0.1", T0 + 3005)],
    );
    let (alerts, _) = stream(&set, &batches, EngineOptions::default()).await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let mut counts: Vec<i64> = alerts.iter().map(|a| a.count).collect();
    counts.sort();
    assert_eq!(counts, [1, 2]);
    assert_ne!(alerts[0].alert_id, alerts[1].alert_id);
    let hour = 3_600_000_000i64;
    for a in &alerts {
        assert_eq!(
            a.alert_id,
            crate::alert::alert_id("zt-d", &a.dedupe_key, a.first_seen.div_euclid(hour)),
            "id = rule, key, floor(first_seen / period)"
        );
    }
}

#[tokio::test]
async fn reprocessing_and_batching_do_not_change_alerts() {
    let set = rules(&rule_yaml("zt-r", "")).await;
    let lines: Vec<String> =
        (0..300).map(|i| line(&format!("10.0.{}.{}", i % 3, i % 7), T0 + i * 11)).collect();
    let one = flows(0, &lines);
    let (a, _) = stream(&set, &one, EngineOptions::default()).await;
    let (b, _) = stream(&set, &one, EngineOptions::default()).await;
    assert!(!a.is_empty());
    assert_eq!(a, b, "reprocessing the same rows gives the same alerts");
    // The same rows as many small batches, with provisional evaluations after every row.
    let small: Vec<RecordBatch> = one
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(|i| b.slice(i, 1)).collect::<Vec<_>>())
        .collect();
    let eager = EngineOptions { eval_every_rows: 1, ..EngineOptions::default() };
    let (c, engine) = stream(&set, &small, eager).await;
    assert!(engine.stats().provisional_evaluations > 0);
    assert_eq!(a, c, "batch boundaries and provisional evaluations do not change the result");
    // One-shot: no provisional evaluations, the same alerts; and as many small batches, each
    // filtered conjunct by conjunct down to a few rows or none.
    for batches in [&one, &small] {
        let eager = EngineOptions { eval_every_rows: 1, ..EngineOptions::default() };
        let mut engine = Engine::new(&set.streaming(), set.reference(), eager, Clock::Data)
            .await
            .expect("engine")
            .final_only();
        for b in batches.iter() {
            engine.push(Table::Flows, b).await.expect("push");
        }
        engine.flush().await.expect("flush");
        assert_eq!(engine.stats().provisional_evaluations, 0);
        assert!(engine.stats().final_evaluations > 0);
        assert_eq!(engine.alerts(0), a, "final-only evaluation raises the same alerts");
        assert_eq!(engine.into_alerts(0), a, "into_alerts is alerts");
    }
}

/// 2 000 rows over ~6 hours, slightly out of order (within the lateness), many destinations,
/// in batches of 97 rows from sources of their own.
fn six_hours_of_flows() -> Vec<RecordBatch> {
    let lines: Vec<String> = (0..2000)
        .map(|i| {
            let jitter = if i % 5 == 0 { -90 } else { 0 };
            line(&format!("10.1.{}.{}", i % 4, i % 13), T0 + i * 11 + jitter)
        })
        .collect();
    lines.chunks(97).enumerate().flat_map(|(i, c)| flows(i, c)).collect()
}

#[tokio::test]
async fn streaming_and_backfill_raise_the_same_alerts() {
    let set = rules(&rule_yaml("zt-s", "")).await;
    let batches = six_hours_of_flows();
    let (mut streamed, engine) = stream(&set, &batches, EngineOptions::default()).await;
    assert_eq!(engine.stats().late_rows, 0);
    for a in &mut streamed {
        a.updated = 0;
    }
    let back = backfilled(&set, &batches).await;
    assert!(streamed.len() > 20, "{}", streamed.len());
    assert_eq!(streamed, back);
}

/// A long-running engine polled for changes forgets alerts once every window that could add
/// to their dedupe bucket is closed; what the polls reported (the last state of each id) is
/// exactly what a backfill raises, and after the end of input the engine holds no alert.
#[tokio::test]
async fn polled_engines_forget_final_alerts_and_report_what_backfill_raises() {
    let set = rules(&rule_yaml("zt-f", "dedupe: {key: [dst_ip], period: 1h}\n")).await;
    let batches = six_hours_of_flows();
    let mut engine =
        Engine::new(&set.streaming(), set.reference(), EngineOptions::default(), Clock::Data)
            .await
            .expect("engine");
    let mut reported: std::collections::BTreeMap<String, Alert> = Default::default();
    let mut finished = std::collections::BTreeSet::new();
    let poll = |engine: &mut Engine,
                reported: &mut std::collections::BTreeMap<String, Alert>,
                finished: &mut std::collections::BTreeSet<String>| {
        let changed = engine.changed_alerts(0);
        for a in changed.alerts {
            assert!(!finished.contains(&a.alert_id), "a finished alert changed: {a:?}");
            reported.insert(a.alert_id.clone(), a);
        }
        for id in changed.finished {
            assert!(reported.contains_key(&id), "{id} finished before it was reported");
            finished.insert(id);
        }
    };
    let mut most_held = 0u64;
    for b in &batches {
        engine.push(Table::Flows, b).await.expect("push");
        poll(&mut engine, &mut reported, &mut finished);
        most_held = most_held.max(engine.stats().alerts);
    }
    let before_end = finished.len();
    engine.flush().await.expect("flush");
    poll(&mut engine, &mut reported, &mut finished);
    assert_eq!(engine.stats().alerts, 0, "nothing held after the end of input");
    assert!(engine.alerts(0).is_empty());
    let back = backfilled(&set, &batches).await;
    let streamed: Vec<Alert> = reported.into_values().map(|a| Alert { updated: 0, ..a }).collect();
    assert_eq!(streamed, back);
    assert!(before_end > 0, "alerts of past hours finish while input goes on");
    assert!(
        most_held < back.len() as u64,
        "the engine held at most {most_held} of {} alerts at once",
        back.len()
    );
}

#[tokio::test]
async fn backfill_jumps_over_stretches_without_rows() {
    // A streaming rule and a scheduled rule (every 15 minutes over 30) over two bursts of rows
    // 200 days apart: 19 200 chunks and runs chunk by chunk, a handful when gaps are skipped.
    let scheduled = "id: zt-sched\ntitle: T\nseverity: low\ntable: flows\nmode: scheduled\ninterval: 15m\nlookback: 30m\nsql: |\n  SELECT dst_ip, count(*) AS count, min(time) AS first_seen, max(time) AS last_seen, array_agg(event_uid) AS event_uids\n  FROM flows WHERE action = 'allow' GROUP BY dst_ip\nentity: [dst_ip]\nrunbook: rb\ntests:\n  - name: p\n    input: [{format: aws-vpcflow, data: x}]\n    expect: {count: 1}\n  - name: n\n    input: [{format: aws-vpcflow, data: x}]\n    expect: {count: 0}\n";
    let set = load_sources(
        &[
            (PathBuf::from("s.yaml"), rule_yaml("zt-gap", "")),
            (PathBuf::from("t.yaml"), scheduled.to_owned()),
        ],
        &LoadOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let later = T0 + 200 * 86_400;
    let lines = [
        line("10.0.0.1", T0 + 5),
        line("10.0.0.2", T0 + 700),
        line("10.0.0.1", later + 5),
        line("10.0.0.3", later + 1900),
    ];
    let batches = flows(0, &lines);
    let ctx = SessionContext::new();
    let mem = MemTable::try_new(Table::Flows.schema(), vec![batches.clone()]).expect("mem");
    ctx.register_table("flows", Arc::new(mem)).expect("register");
    let report = backfill(&set, &ctx, &BackfillOptions::default()).await.expect("backfill");
    assert!(report.chunks <= 6, "chunks read: {}", report.chunks);
    // Each row is seen by the two runs whose 30-minute lookback covers it.
    assert!(report.scheduled_runs <= 8, "runs: {}", report.scheduled_runs);
    let of = |rule: &str| report.alerts.iter().filter(|a| a.rule_id == rule).count();
    // Both rules: 10.0.0.1 in two dedupe periods, 10.0.0.2 and 10.0.0.3 once each.
    assert_eq!(of("zt-gap"), 4, "{:#?}", report.alerts);
    assert_eq!(of("zt-sched"), 4, "{:#?}", report.alerts);
    // The streaming rule's alerts are the ones the live engine raises on the same rows.
    let (mut live, _) = stream(&set, &batches, EngineOptions::default()).await;
    let mut back: Vec<Alert> =
        report.alerts.iter().filter(|a| a.rule_id == "zt-gap").cloned().collect();
    for a in live.iter_mut().chain(back.iter_mut()) {
        a.updated = 0;
    }
    live.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    back.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    assert_eq!(live, back);
}

#[tokio::test]
async fn eviction_bounds_memory_and_is_counted() {
    let set = rules(&rule_yaml("zt-e", "")).await;
    let lines: Vec<String> = (0..50).map(|i| line("10.0.0.1", T0 + i)).collect();
    let options = EngineOptions { max_rows_per_rule: 10, ..EngineOptions::default() };
    let (alerts, engine) = stream(&set, &flows(0, &lines), options).await;
    assert_eq!(engine.stats().evicted_rows, 40);
    assert_eq!(alerts[0].count, 10, "only the rows kept are evaluated");
}

#[tokio::test]
async fn loader_reports_every_problem_of_every_file() {
    let good = rule_yaml("zt-ok", "");
    let files = vec![
        (PathBuf::from("a.yaml"), rule_yaml("zt-ok", "")),
        (PathBuf::from("b.yaml"), good.clone()),
        (
            PathBuf::from("c.yaml"),
            good.replace("id: zt-ok", "id: zt-c")
                .replace("severity: low", "severity: urgent")
                .replace("title: T", "title: T\ncolour: red"),
        ),
        (
            PathBuf::from("d.yaml"),
            good.replace("id: zt-ok", "id: zt-d")
                .replace("count(*) AS count", "count(nosuch) AS count"),
        ),
        (
            PathBuf::from("e.yaml"),
            good.replace("id: zt-ok", "id: zt-e").replace("FROM flows", "FROM flowz"),
        ),
        (
            PathBuf::from("f.yaml"),
            good.replace("id: zt-ok", "id: zt-f")
                .replace("runbook: rb", "runbook: missing-runbook"),
        ),
    ];
    let options =
        LoadOptions { runbooks: Some(["rb".to_owned()].into()), ..LoadOptions::default() };
    let err = load_sources(&files, &options).await.expect_err("invalid");
    let text = err.to_string();
    for needle in [
        "b.yaml:1: rule zt-ok: duplicate rule id \"zt-ok\": also defined in a.yaml",
        "c.yaml:3: unknown key `colour`",
        "c.yaml:4: severity: unknown variant `urgent`",
        "d.yaml:7: rule zt-d: SQL:",
        "nosuch",
        "e.yaml:7: rule zt-e: SQL:",
        "flowz",
        "f.yaml:11: rule zt-f: runbook \"missing-runbook\" does not exist (known runbooks: rb)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert_eq!(err.diagnostics().len(), 6, "{text}");
}

#[tokio::test]
async fn the_shipped_rule_pack_passes_its_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reference =
        crate::reference::Reference::load_dir(&dir.join("reference")).expect("reference");
    let set = load_dir(&dir.join("rules"), &LoadOptions { runbooks: None, reference })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(set.rules().len() >= 25, "the pack has at least 25 rules");
    let reports = run_tests(&set).await;
    let failed: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.tests
                .iter()
                .filter(|t| !t.passed())
                .map(move |t| format!("{} / {}: {:?}", r.rule, t.name, t.failures))
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[tokio::test]
async fn conjunct_by_conjunct_filtering_keeps_exactly_the_matching_rows() {
    // Pushed-down filters (plain comparisons, then UDFs) over mixed rows of one window: the
    // engine's alerts are the groups the same SQL finds over every row at once. The filters
    // keep different shares of the rows: `action = 'allow'` keeps 6 in 7 (read in place, its
    // mask combined with the next filter's), the port tests fewer (the rows are picked out),
    // and a lone `action = 'allow'` leaves its mask to the end.
    for filters in [
        "action = 'allow' AND dst_port IN (22, 3389) AND is_public_ip(src_ip) AND is_private_ip(dst_ip)",
        "action = 'allow'",
        "action = 'allow' AND dst_port <> 80 AND is_private_ip(dst_ip)",
        "is_private_ip(dst_ip) AND action = 'allow' AND dst_port IN (22, 3389)",
    ] {
        filtering_matches_sql(filters).await;
    }
}

async fn filtering_matches_sql(filters: &str) {
    let sql = format!(
        "SELECT dst_ip, count(*) AS count, min(time) AS first_seen, max(time) AS last_seen, array_agg(event_uid) AS event_uids, count(DISTINCT src_ip) AS sources\n  FROM flows WHERE {filters} GROUP BY dst_ip"
    );
    let yaml = rule_yaml("zt-c", "").replace(
        "SELECT dst_ip, count(*) AS count, min(time) AS first_seen, max(time) AS last_seen, array_agg(event_uid) AS event_uids\n  FROM flows WHERE action = 'allow' GROUP BY dst_ip",
        &sql,
    );
    assert!(yaml.contains(filters), "{yaml}");
    let set = rules(&yaml).await;
    let sources = ["8.8.8.8", "10.0.0.9", "203.0.113.7", "1.1.1.1", "2606:4700::1", "-"];
    let lines: Vec<String> = (0..600)
        .map(|i| {
            let src = sources[i % sources.len()];
            let dst = if i % 4 == 0 { "52.1.2.3".to_owned() } else { format!("10.2.0.{}", i % 9) };
            let port = [22, 443, 3389, 80, 22][i % 5];
            let action = if i % 7 == 0 { "REJECT" } else { "ACCEPT" };
            let secs = T0 + (i as i64) / 2;
            format!(
                "2 123456789012 eni-1 {src} {dst} 40000 {port} 6 1 60 {secs} {} {action} OK\n",
                secs + 1
            )
        })
        .collect();
    let batches: Vec<RecordBatch> =
        lines.chunks(61).enumerate().flat_map(|(i, c)| flows(i, c)).collect();
    let (alerts, engine) = stream(&set, &batches, EngineOptions::default()).await;
    let kept = engine.stats().rows_kept;
    let mut found: Vec<(String, i64)> =
        alerts.iter().map(|a| (a.entity["dst_ip"].clone().unwrap_or_default(), a.count)).collect();
    found.sort();
    // The same SQL over every row at once.
    let ctx = SessionContext::new();
    crate::udf::register(&ctx, set.reference()).expect("udfs");
    let mem = MemTable::try_new(Table::Flows.schema(), vec![batches.clone()]).expect("mem");
    ctx.register_table("flows", Arc::new(mem)).expect("register");
    let direct = ctx
        .sql(&format!(
            "SELECT dst_ip, count(*) AS n FROM flows WHERE {filters} GROUP BY dst_ip ORDER BY dst_ip"
        ))
        .await
        .expect("sql")
        .collect()
        .await
        .expect("collect");
    let mut expected = Vec::new();
    for b in &direct {
        let ips =
            arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).expect("cast");
        let ips = arrow::array::AsArray::as_string::<i32>(&ips);
        let n = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(b.column(1));
        for i in 0..b.num_rows() {
            expected.push((ips.value(i).to_owned(), n.value(i)));
        }
    }
    assert!(expected.len() >= 5, "{filters}: {expected:?}");
    assert_eq!(found, expected, "{filters}");
    let total: i64 = expected.iter().map(|(_, n)| n).sum();
    assert_eq!(
        kept,
        u64::try_from(total).expect("count"),
        "{filters}: only matching rows are kept"
    );
}

#[tokio::test]
async fn filters_are_reordered_by_what_they_cost_and_drop() {
    // Written first, an IP test that keeps most rows; written last, an equality no row meets.
    // After a batch has measured both, the equality runs first: the IP test is not evaluated
    // on rows the equality drops. Nothing is kept either way.
    let yaml = rule_yaml("zt-o", "").replace(
        "WHERE action = 'allow'",
        "WHERE is_private_ip(src_ip) AND dst_port <> 1 AND provider = 'kubernetes'",
    );
    let set = rules(&yaml).await;
    let lines: Vec<String> =
        (0..400).map(|i| line(&format!("10.1.0.{}", i % 50), T0 + i)).collect();
    let batches: Vec<RecordBatch> =
        lines.chunks(50).enumerate().flat_map(|(i, c)| flows(i, c)).collect();
    let mut engine =
        Engine::new(&set.streaming(), set.reference(), EngineOptions::default(), Clock::Data)
            .await
            .expect("engine");
    let before = engine.filter_order("zt-o");
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(
        !before[0].contains("kubernetes"),
        "the planner's order must not already be the best one: {before:?}"
    );
    for b in &batches {
        engine.push(Table::Flows, b).await.expect("push");
    }
    engine.flush().await.expect("flush");
    let after = engine.filter_order("zt-o");
    assert!(
        after[0].contains("kubernetes"),
        "the filter that drops every row runs first: {after:?}"
    );
    assert_eq!(engine.stats().rows_kept, 0);
    assert!(engine.alerts(0).is_empty());
    // Every filter, even one ranked behind a filter that drops everything, was measured on
    // whole batches: each runs first now and then.
    let full = engine.filter_full_rows("zt-o");
    assert!(full.iter().all(|&rows| rows > 0), "{full:?} ({after:?})");
}

/// Measured only behind a filter that keeps a few rows, a cheap filter looks expensive (its
/// per-call overhead over a handful of rows); whole-batch measurements correct that, so an
/// order that put an expensive filter first does not stay for good.
#[tokio::test]
async fn filters_are_ranked_by_whole_batch_measurements() {
    let yaml = rule_yaml("zt-w", "")
        .replace("WHERE action = 'allow'", "WHERE dst_port = 443 AND is_private_ip(src_ip)");
    let set = rules(&yaml).await;
    // Port 443 in one row of ten; every source private.
    let lines: Vec<String> = (0..4000)
        .map(|i| {
            let l = line(&format!("10.1.0.{}", i % 50), T0 + i);
            if i % 10 == 0 { l } else { l.replace(" 443 ", " 8443 ") }
        })
        .collect();
    let batches: Vec<RecordBatch> =
        lines.chunks(100).enumerate().flat_map(|(i, c)| flows(i, c)).collect();
    let mut engine =
        Engine::new(&set.streaming(), set.reference(), EngineOptions::default(), Clock::Data)
            .await
            .expect("engine");
    for b in &batches {
        engine.push(Table::Flows, b).await.expect("push");
    }
    let order = engine.filter_order("zt-w");
    let full = engine.filter_full_rows("zt-w");
    assert!(full.iter().all(|&rows| rows > 0), "{full:?} ({order:?})");
    assert!(
        order[0].contains("dst_port"),
        "the filter that drops nine rows in ten first: {order:?}"
    );
}
