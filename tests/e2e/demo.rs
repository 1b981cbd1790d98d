//! `ztlake demo` end to end: the one-command demo runs the whole product (inputs, ingest with
//! streaming rules, backfill and scheduled rules, on-call delivery to the outbox, hunting, the
//! posture report) under one directory, and its alerts include every woven-in incident. The
//! demo run is shared with the posture report tests ([`demo_dir`]): it is the richest lake the
//! suite has, and running it once keeps the suite fast.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::run_ztlake;

/// The rules of the incidents the demo weaves into its data (its own list is in
/// src/commands/demo/data.rs; this one is written out so that a dropped incident fails here).
const INCIDENT_RULES: &[&str] = &[
    "zt-net-admin-port-exposed",
    "zt-id-password-spray",
    "zt-id-console-signin-without-mfa",
    "zt-cert-long-lived-workload",
    "zt-net-legacy-plaintext-cross-segment",
    "zt-net-egress-bypass",
];

/// What the shared demo run left.
pub(crate) struct DemoRun {
    /// Keeps the directory alive for the whole test binary.
    _scratch: tempfile::TempDir,
    /// The demo's `--dir`.
    pub(crate) dir: PathBuf,
    /// Its stdout.
    pub(crate) stdout: String,
    /// Wall-clock time of the run.
    pub(crate) elapsed: Duration,
}

fn pack_args() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = Vec::new();
    for (flag, dir) in [
        ("--rules", "detections/rules"),
        ("--runbooks", "runbooks"),
        ("--reference", "detections/reference"),
    ] {
        args.push(flag.to_owned());
        args.push(root.join(dir).to_str().expect("utf8 path").to_owned());
    }
    args
}

/// Run `ztlake demo` once per test binary (with the repository's detection pack) and return
/// what it left. Panics with the demo's output when it fails.
pub(crate) fn demo_run() -> &'static DemoRun {
    static RUN: OnceLock<DemoRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = scratch.path().join("ztlake-demo");
        let mut args =
            vec!["demo".to_owned(), "--dir".to_owned(), dir.to_str().expect("utf8").to_owned()];
        args.extend(pack_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let out = run_ztlake(&args);
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "ztlake demo failed ({}):\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        DemoRun { _scratch: scratch, dir, stdout, elapsed }
    })
}

/// The demo's `--dir`.
pub(crate) fn demo_dir() -> &'static Path {
    &demo_run().dir
}

#[test]
fn the_demo_detects_every_woven_in_incident_and_keeps_everything_under_its_dir() {
    let run = demo_run();
    eprintln!("ztlake demo took {:.1} s", run.elapsed.as_secs_f64());
    // The alerts in the demo's lake, by rule.
    let lake = run.dir.join("lake");
    let out = run_ztlake(&["--lake", lake.to_str().expect("utf8"), "alerts", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let alerts: serde_json::Value = serde_json::from_slice(&out.stdout).expect("alerts JSON");
    let rules: Vec<&str> = alerts
        .as_array()
        .expect("an array of alerts")
        .iter()
        .filter_map(|a| a["rule_id"].as_str())
        .collect();
    for rule in INCIDENT_RULES {
        assert!(rules.contains(rule), "no alert of {rule}; the demo raised {rules:?}");
        assert!(
            run.stdout.contains(&format!("[x] {rule}")),
            "the demo does not report {rule} as found"
        );
    }
    // Specific incidents, not just any alert of the rule.
    let entity = |rule: &str, key: &str| -> Vec<String> {
        alerts
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["rule_id"] == rule)
            .filter_map(|a| a["entity"][key].as_str().map(str::to_owned))
            .collect()
    };
    assert!(entity("zt-net-admin-port-exposed", "dst_ip").contains(&"10.0.0.5".to_owned()));
    assert!(entity("zt-id-password-spray", "src_ip").contains(&"185.220.101.4".to_owned()));
    assert!(entity("zt-id-console-signin-without-mfa", "user").contains(&"ola".to_owned()));
    assert!(entity("zt-net-egress-bypass", "src_ip").contains(&"10.40.2.7".to_owned()));

    // Everything is under --dir: inputs, the lake, the outbox with the emails, the report.
    for sub in
        ["input", "lake/flows", "lake/signins", "lake/cert_events", "lake/alerts", "posture.html"]
    {
        assert!(run.dir.join(sub).exists(), "{sub} is missing under the demo dir");
    }
    let emails =
        walk(&run.dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "eml")).count();
    assert!(emails >= INCIDENT_RULES.len(), "{emails} email(s) in the outbox");
    let parent = run.dir.parent().expect("parent");
    let outside: Vec<_> = std::fs::read_dir(parent)
        .expect("read scratch")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "ztlake-demo")
        .collect();
    assert!(outside.is_empty(), "the demo wrote outside its --dir: {outside:?}");

    // What a newcomer is told: alerts, where the emails are, hunting queries, the report.
    for needle in [".eml", "hunt \"SELECT", "posture.html", "MFA coverage"] {
        assert!(run.stdout.contains(needle), "the demo output lacks {needle:?}:\n{}", run.stdout);
    }
}

#[test]
fn the_demo_inputs_are_deterministic() {
    // A second demo with the same seed into another directory writes the same inputs (the
    // lake is not compared byte for byte: its file names are random UUIDs).
    let run = demo_run();
    let scratch = tempfile::tempdir().expect("tempdir");
    let other = scratch.path().join("again");
    // Only the inputs are needed: --rules pointing nowhere makes the demo stop after writing
    // them, before the (slow) pipeline.
    let out = run_ztlake(&[
        "demo",
        "--dir",
        other.to_str().expect("utf8"),
        "--rules",
        "/nonexistent-ztlake-rules",
    ]);
    assert!(!out.status.success(), "a missing detection pack is an error");
    let names = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d.join("input"))
            .expect("input dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&run.dir), names(&other));
    for name in names(&run.dir) {
        let a = std::fs::read(run.dir.join("input").join(&name)).expect("read");
        let b = std::fs::read(other.join("input").join(&name)).expect("read");
        assert!(a == b, "{name:?} differs between two runs with the same seed");
    }
    // A non-empty directory that is not a demo's is refused, not written over.
    let foreign = scratch.path().join("foreign");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("keep.txt"), "mine").expect("write");
    let out = run_ztlake(&["demo", "--dir", foreign.to_str().expect("utf8")]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(foreign.join("keep.txt")).expect("kept"), "mine");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
