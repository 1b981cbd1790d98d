//! Detections end to end: `rules validate` / `rules test` exit codes and diagnostics, streaming
//! (`ingest --detect`) against backfill (`detect`) on the same data, idempotent re-runs,
//! `alerts` filters and JSON, runbooks rendered with an alert, reference tables in hunting.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use super::{Scratch, run_ztlake};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn pack_flags(rules: &Path) -> Vec<String> {
    vec![
        "--rules".into(),
        rules.display().to_string(),
        "--runbooks".into(),
        root().join("runbooks").display().to_string(),
        "--reference".into(),
        root().join("detections/reference").display().to_string(),
    ]
}

fn shipped_rules() -> PathBuf {
    root().join("detections/rules")
}

fn run(s: &Scratch, args: &[&str], pack: &Path) -> Output {
    let flags = pack_flags(pack);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(flags.iter().map(String::as_str));
    s.ztlake(&all)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A rule file: the shipped admin-port rule with `edit` applied.
fn variant(edit: impl Fn(String) -> String) -> String {
    let base = std::fs::read_to_string(
        shipped_rules().join("network").join("zt-net-admin-port-exposed.yaml"),
    )
    .expect("rule");
    edit(base)
}

#[test]
fn rules_validate_reports_every_problem_with_file_and_line() {
    let s = Scratch::new();
    let dir = s.path("rules");
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).expect("write");
    write("ok.yaml", variant(|t| t));
    write("dup.yaml", variant(|t| t));
    write(
        "unknown-key.yaml",
        variant(|t| t.replace("id: zt-net-admin-port-exposed", "id: zt-a\nowner: me")),
    );
    write(
        "bad-severity.yaml",
        variant(|t| {
            t.replace("id: zt-net-admin-port-exposed", "id: zt-b")
                .replace("severity: high", "severity: hgih")
        }),
    );
    write(
        "bad-sql.yaml",
        variant(|t| {
            t.replace("id: zt-net-admin-port-exposed", "id: zt-c")
                .replace("  FROM flows", "  FROM flows WHERE WHERE")
        }),
    );
    write(
        "sub/unknown-column.yaml",
        variant(|t| {
            t.replace("id: zt-net-admin-port-exposed", "id: zt-d").replace(
                "GROUP BY dst_ip, dst_port, src_ip",
                "GROUP BY dst_ip, dst_port, source_ip",
            )
        }),
    );
    write(
        "missing-runbook.yaml",
        variant(|t| {
            t.replace("id: zt-net-admin-port-exposed", "id: zt-e")
                .replace("runbook: exposed-admin-port", "runbook: no-such-runbook")
        }),
    );
    let out = run(&s, &["rules", "validate"], &dir);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "must fail:\n{stdout}\n{stderr}");
    let file = |name: &str| dir.join(name).display().to_string();
    // Lines of the keys in the shipped rule the variants are made of.
    let base = variant(|t| t);
    let line = |key: &str| {
        base.lines().position(|l| l.starts_with(key)).map(|i| i + 1).expect("key in the rule")
    };
    let (sql, runbook) = (line("sql:"), line("runbook:"));
    for needle in [
        format!("{}:1: rule zt-net-admin-port-exposed: duplicate rule id", file("ok.yaml")),
        format!("{}:2: unknown key `owner`", file("unknown-key.yaml")),
        format!("{}:7: severity: unknown variant `hgih`", file("bad-severity.yaml")),
        format!("{}:{sql}: rule zt-c: SQL:", file("bad-sql.yaml")),
        format!("{}:{sql}: rule zt-d: SQL:", file("sub/unknown-column.yaml")),
        "source_ip".to_owned(),
        format!(
            "{}:{runbook}: rule zt-e: runbook \"no-such-runbook\" does not exist",
            file("missing-runbook.yaml")
        ),
    ] {
        assert!(stderr.contains(&needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(stderr.starts_with("6 problem(s)"), "{stderr}");
    // The shipped pack is valid.
    let out = run(&s, &["rules", "validate", "--explain"], &shipped_rules());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("keeps flows["), "{stdout}");
}

#[test]
fn rules_test_passes_the_shipped_pack_and_fails_a_wrong_expectation() {
    let s = Scratch::new();
    let out = run(&s, &["rules", "test"], &shipped_rules());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("PASS zt-net-admin-port-exposed"), "{stdout}");
    assert!(stdout.lines().any(|l| l.ends_with(" passed, 0 failed")), "{stdout}");
    let dir = s.path("rules");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let wrong = variant(|t| {
        t.replacen(
            "- { dst_ip: 10.0.0.5, dst_port: 3389 }",
            "- { dst_ip: 10.0.0.9, dst_port: 3389 }",
            1,
        )
    });
    std::fs::write(dir.join("zt-net-admin-port-exposed.yaml"), wrong).expect("write");
    let out = run(&s, &["rules", "test"], &dir);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL zt-net-admin-port-exposed (3/4 tests)"), "{stdout}");
    assert!(stdout.contains("expected entities"), "{stdout}");
    assert!(stdout.contains("3 passed, 1 failed"), "{stdout}");
}

fn alerts_json(s: &Scratch, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["alerts", "--format", "json"];
    all.extend_from_slice(args);
    let v: Value = serde_json::from_str(&s.ok(&all)).expect("alerts json");
    v.as_array().expect("array").clone()
}

/// The ids of the shipped pack's rules, split into (streaming, scheduled) by their `mode:`.
fn shipped_rule_modes() -> (Vec<String>, Vec<String>) {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("rules dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&shipped_rules(), &mut files);
    let (mut streaming, mut scheduled) = (Vec::new(), Vec::new());
    for f in files {
        let text = std::fs::read_to_string(&f).expect("rule");
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("id: "))
            .unwrap_or_else(|| panic!("{} has no id", f.display()))
            .trim()
            .to_owned();
        if text.lines().any(|l| l.trim_end() == "mode: scheduled") {
            scheduled.push(id);
        } else {
            streaming.push(id);
        }
    }
    (streaming, scheduled)
}

#[test]
fn the_readme_lists_every_rule_of_the_pack_with_its_severity_and_runbook() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let (streaming, scheduled) = shipped_rule_modes();
    assert!(streaming.len() + scheduled.len() >= 25);
    let mut files = Vec::new();
    for dir in ["network", "identity", "certificates"] {
        for e in std::fs::read_dir(shipped_rules().join(dir)).expect("rules dir").flatten() {
            files.push(e.path());
        }
    }
    assert_eq!(files.len(), streaming.len() + scheduled.len(), "rules outside the three folders");
    for f in files {
        let text = std::fs::read_to_string(&f).expect("rule");
        let key = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.split('#').next().unwrap_or_default().trim().to_owned())
                .unwrap_or_else(|| panic!("{}: no {k}", f.display()))
        };
        let (id, severity, runbook) = (key("id: "), key("severity: "), key("runbook: "));
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{id}` |")))
            .unwrap_or_else(|| panic!("README's rule-pack table has no row for {id}"));
        assert!(row.starts_with(&format!("| `{id}` | {severity} |")), "{row}");
        assert!(row.ends_with(&format!("| `{runbook}` |")), "{row}");
    }
}

/// Alerts without the time they were computed, by id, leaving out the rules in `skip`.
fn comparable(alerts: &[Value], skip: &[String]) -> Vec<Value> {
    let mut v: Vec<Value> = alerts
        .iter()
        .filter(|a| !skip.iter().any(|r| a["rule_id"] == r.as_str()))
        .map(|a| {
            let mut a = a.clone();
            a.as_object_mut().expect("object").remove("updated");
            a
        })
        .collect();
    v.sort_by(|a, b| a["alert_id"].as_str().cmp(&b["alert_id"].as_str()));
    v
}

#[test]
fn streaming_and_backfill_raise_the_same_alerts_and_reruns_write_nothing() {
    let streamed = Scratch::new();
    let input = streamed.path("flows.log");
    let input = input.to_str().expect("utf8");
    streamed.ok(&["generate", "vpcflow", "--count", "40000", "--seed", "11", "--output", input]);
    let out = run(&streamed, &["ingest", "--detect", input], &shipped_rules());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let (streaming, scheduled) = shipped_rule_modes();
    assert!(streaming.len() + scheduled.len() >= 25, "the pack has at least 25 rules");
    let expected = format!("detection: {} streaming rule(s)", streaming.len());
    assert!(stdout.contains(&expected), "{stdout}");
    let live = alerts_json(&streamed, &[]);
    assert!(live.len() > 50, "generated data raises alerts: {}", live.len());

    // The same file into another lake without detection, then a backfill.
    let backfilled = Scratch::new();
    backfilled.ok(&["ingest", input]);
    let out = run(&backfilled, &["detect"], &shipped_rules());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let back = alerts_json(&backfilled, &[]);
    // Scheduled rules run only in backfill; every streaming rule raises the same alerts in both.
    let live_streaming = comparable(&live, &scheduled);
    assert!(!live_streaming.is_empty());
    assert_eq!(live_streaming, comparable(&back, &scheduled));

    // Re-running over the same range writes nothing new.
    let out = run(&backfilled, &["detect", "--json"], &shipped_rules());
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert_eq!(summary["written"]["new"], 0, "{summary}");
    assert_eq!(summary["written"]["updated"], 0, "{summary}");
    assert_eq!(summary["written"]["events"], 0, "{summary}");
    assert_eq!(backfilled.scalar("SELECT count(*) FROM alerts"), back.len() as i64);
    assert_eq!(
        backfilled.scalar("SELECT count(*) FROM alert_events"),
        backfilled.scalar("SELECT count(DISTINCT event_id) FROM alert_events")
    );

    // Reprocessing the same data elsewhere gives the same alert ids.
    let again = Scratch::new();
    run(&again, &["ingest", "--detect", input], &shipped_rules());
    let ids = |v: &[Value]| {
        let mut ids: Vec<String> =
            v.iter().map(|a| a["alert_id"].as_str().unwrap_or_default().to_owned()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&alerts_json(&again, &[])), ids(&live));
}

#[test]
fn alerts_filter_and_runbooks_render_with_an_alert() {
    let s = Scratch::new();
    let input = s.path("flows.log");
    let input = input.to_str().expect("utf8");
    s.ok(&["generate", "vpcflow", "--count", "20000", "--seed", "5", "--output", input]);
    run(&s, &["ingest", "--detect", input], &shipped_rules());
    let all = alerts_json(&s, &[]);
    assert!(!all.is_empty());
    for a in &all {
        assert!(a["entity"].is_object() && a["evidence"]["windows"].is_array(), "{a}");
        assert!(a["evidence_uids"].as_array().is_some_and(|u| !u.is_empty() && u.len() <= 100));
        assert_eq!(a["status"], "open");
    }
    let high = alerts_json(&s, &["--severity", "high"]);
    assert!(high.iter().all(|a| a["severity"] == "high" || a["severity"] == "critical"));
    let egress = alerts_json(&s, &["--rule", "zt-net-pci-direct-egress"]);
    assert!(
        !egress.is_empty() && egress.iter().all(|a| a["rule_id"] == "zt-net-pci-direct-egress")
    );
    assert!(alerts_json(&s, &["--since", "2099-01-01"]).is_empty());
    assert_eq!(alerts_json(&s, &["--since", "2000-01-01"]).len(), all.len());

    // Acknowledge one alert: the status filter sees it.
    let first = all[0]["alert_id"].as_str().expect("id").to_owned();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let lake =
            ztlake_storage::Lake::open(s.lake().to_str().expect("utf8")).await.expect("lake");
        ztlake::alerts::record_step(&lake, &first, "acknowledged", "oncall@example.com", None)
            .await
            .expect("ack");
    });
    let acked = alerts_json(&s, &["--status", "acknowledged"]);
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0]["alert_id"], first.as_str());
    assert_eq!(alerts_json(&s, &["--status", "open"]).len(), all.len() - 1);
    let table = s.ok(&["alerts", "--status", "acknowledged"]);
    assert!(
        table.contains(&first) && table.contains("acknowledged") && table.contains("1 alert(s)"),
        "{table}"
    );

    // Runbooks: listed, and rendered with the alert's values.
    let runbooks = root().join("runbooks");
    let runbooks = runbooks.to_str().expect("utf8");
    let list = s.ok(&["runbooks", "--runbooks", runbooks]);
    let catalog = std::fs::read_dir(root().join("runbooks"))
        .expect("runbooks dir")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "md"))
        .count();
    assert!(catalog >= 15, "the catalog has a runbook per rule family: {catalog}");
    let listed = format!("{catalog} runbook(s)");
    assert!(list.contains("exposed-admin-port") && list.contains(&listed), "{list}");
    let admin = all
        .iter()
        .find(|a| a["rule_id"] == "zt-net-admin-port-exposed")
        .expect("an admin-port alert");
    let id = admin["alert_id"].as_str().expect("id");
    let shown =
        s.ok(&["runbooks", "--runbooks", runbooks, "show", "exposed-admin-port", "--alert", id]);
    let ip = admin["entity"]["dst_ip"].as_str().expect("dst_ip");
    let port = admin["entity"]["dst_port"].as_str().expect("dst_port");
    assert!(shown.contains(&format!("WHERE dst_ip = '{ip}' AND dst_port = {port}")), "{shown}");
    assert!(shown.contains(&format!("Alert {id}")), "{shown}");
    assert!(!shown.contains("{{"), "every placeholder filled:\n{shown}");
    let out = s.ztlake(&["runbooks", "--runbooks", runbooks, "show", "no-such-runbook"]);
    assert!(!out.status.success());
}

#[test]
fn hunting_sees_reference_tables_and_udfs() {
    let s = Scratch::new();
    s.ok(&["ingest", super::fixture("aws/flows/vpcflow-v2-default.log").to_str().expect("p")]);
    let reference = root().join("detections/reference");
    let out = s.ok(&[
        "hunt",
        "--reference",
        reference.to_str().expect("utf8"),
        "--format",
        "csv",
        "SELECT app, is_private_ip(split_part(cidr, '/', 1)) AS private FROM assets WHERE cidr_contains(cidr, '10.20.1.5') ORDER BY app",
    ]);
    assert_eq!(out.trim(), "app,private\ncard-vault,true\npayments,true", "{out}");
    let out = run_ztlake(&[
        "hunt",
        "--lake",
        s.lake().to_str().expect("utf8"),
        "--reference",
        "/nonexistent-dir",
        "SELECT count(*) FROM assets",
    ]);
    assert!(out.status.success(), "a missing reference directory gives empty tables");
}
