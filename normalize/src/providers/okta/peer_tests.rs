//! Peer comparison for `okta-systemlog`: our rows against Panther's per-record rule verdicts
//! (`panther-okta-systemlog-auth.expected.json`), plus a corpus-wide check that the Okta sniff
//! claims the Okta records and nothing else.
//!
//! For each verdict, the normalized fields that drive it must agree (event, outcome, user,
//! address, time, country). Deliberate differences, each asserted below:
//! - Records whose `published` is missing or `"redacted"` (Panther's trimmed test events) are
//!   quarantined (`missing_field` / `bad_time`): a sign-in without a time cannot be placed in the
//!   lake. Panther evaluates them anyway; we cannot compare their verdicts.
//! - `user.session.impersonation.grant` (Okta support access) is an admin grant, not a sign-in:
//!   skipped, so `Okta.Support.Access` has no row to fire on.
//! - Impossible-travel verdicts depend on geolocating the address against history; we check the
//!   fields that rule reads (user, address, time, success).

use std::path::Path;

use serde_json::{Map, Value};

use crate::format::{ParseOptions, SNIFF_THRESHOLD, detect};
use crate::golden::{corpus_dir, normalize_bytes};

type Row = Map<String, Value>;

/// The rows and quarantines produced from line `line` of the input.
fn at_line(rows: &[Row], line: usize) -> Vec<&Row> {
    let exact = format!("peer:{line}");
    let sub = format!("peer:{line}#");
    rows.iter()
        .filter(|r| {
            r.get("source")
                .and_then(Value::as_str)
                .is_some_and(|s| s == exact || s.starts_with(&sub))
        })
        .collect()
}

fn one<'r>(got: &[&'r Row], table: &str, context: &str) -> &'r Row {
    assert_eq!(got.len(), 1, "{context}");
    assert_eq!(got[0]["table"], table, "{context}");
    got[0]
}

#[test]
fn sign_ins_agree_with_panther_verdicts() {
    let dir = corpus_dir().join("okta/signins");
    let bytes = std::fs::read(dir.join("panther-okta-systemlog-auth.ndjson")).expect("input");
    let rows = normalize_bytes("peer", &bytes, "auto", &ParseOptions::default(), None);
    let expected: Value = serde_json::from_slice(
        &std::fs::read(dir.join("panther-okta-systemlog-auth.expected.json")).expect("expected"),
    )
    .expect("expected json");
    let records = expected["records"].as_array().expect("records");
    assert_eq!(records.len(), 17);
    for record in records {
        let index = record["record"].as_u64().expect("record") as usize;
        let got = at_line(&rows, index + 1);
        for detection in record["detections"].as_array().expect("detections") {
            let rule = detection["rule_id"].as_str().expect("rule");
            let fires = detection["expected_result"].as_bool().expect("verdict");
            let context = format!("record {index}, {rule} ({fires}): {got:?}");
            match (rule, index) {
                ("Okta.Support.Access", 0) => assert!(got.is_empty(), "skipped: {context}"),
                ("Okta.Support.Access" | "Okta.Global.MFA.Disabled", 1) => {
                    assert!(!fires, "{context}");
                    let r = one(&got, "signins", &context);
                    assert_eq!(r["event"], "user.session.start", "{context}");
                    assert_eq!(r["outcome"], Value::Null, "no outcome in the event: {context}");
                }
                ("Okta.Login.Success", 2 | 3) => {
                    let r = one(&got, "signins", &context);
                    let outcome = if fires { "success" } else { "failure" };
                    assert_eq!(r["outcome"], outcome, "{context}");
                    assert_eq!(r["user"], "casey.hill@hey.com", "{context}");
                }
                ("Okta.PotentiallyStolenSession", 4..=6) => {
                    let r = one(&got, "quarantine", &context);
                    assert_eq!(r["reason"], "bad_time", "published is \"redacted\": {context}");
                }
                ("Okta.SSO.to.AWS", 7 | 8)
                | ("Standard.BruteForceByIP" | "Standard.BruteForceByUser", 9 | 10)
                | ("Standard.SignInFromRogueState", 14) => {
                    let r = one(&got, "quarantine", &context);
                    assert_eq!(r["reason"], "missing_field", "{context}");
                }
                ("Standard.ImpossibleTravel.Login", 11..=13) => {
                    let r = one(&got, "signins", &context);
                    assert_eq!(r["outcome"], "success", "{context}");
                    assert_eq!(r["user"], "homer.simpson@company.com", "{context}");
                    assert!(r["src_ip"].is_string() && r["time"].is_string(), "{context}");
                }
                ("Standard.SignInFromRogueState", 15 | 16) => {
                    let r = one(&got, "signins", &context);
                    // The rule fires on a sign-in from a sanctioned country.
                    let country = if fires { "Russia" } else { "Canada" };
                    assert_eq!(r["country"], country, "{context}");
                    assert_eq!(r["outcome"], "success", "{context}");
                }
                _ => panic!("no comparison written for {context}"),
            }
        }
    }
}

/// Every record of `path`, framed as `ztlake ingest` frames it.
fn records(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let framing = match crate::format::sniff_framing(&bytes) {
        crate::format::Framing::Json => ztlake_ingest::Framing::Json,
        crate::format::Framing::Lines => ztlake_ingest::Framing::Lines,
    };
    let mut reader = ztlake_ingest::RecordReader::new(
        &bytes[..],
        framing,
        &ztlake_ingest::ReadOptions::default(),
    );
    let mut out = Vec::new();
    while let Some(frame) = reader.next_record() {
        if let ztlake_ingest::Frame::Record { bytes, .. } = frame {
            out.push(bytes.to_vec());
        }
    }
    out
}

#[test]
fn okta_sniff_claims_okta_records_and_nothing_else() {
    let root = corpus_dir();
    let mut okta_records = 0;
    for provider in
        std::fs::read_dir(&root).expect("corpus").flatten().filter(|e| e.path().is_dir())
    {
        let is_okta = provider.file_name() == "okta";
        for kind in std::fs::read_dir(provider.path()).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(kind.path()).into_iter().flatten().flatten() {
                let path = file.path();
                if path.to_string_lossy().ends_with(".expected.json") {
                    continue;
                }
                for record in records(&path) {
                    if is_okta {
                        okta_records += 1;
                        assert_eq!(
                            detect(&record).map(|f| f.name),
                            Some(super::systemlog::NAME),
                            "{}",
                            path.display()
                        );
                    } else {
                        assert!(
                            (super::systemlog::FORMAT.sniff)(&record) < SNIFF_THRESHOLD,
                            "okta-systemlog claims a record of {}",
                            path.display()
                        );
                    }
                }
            }
        }
    }
    assert_eq!(
        okta_records,
        3 + 1 + 17 + 10 + 5 + 2 + 1,
        "the Okta corpus changed: review this test"
    );
}
