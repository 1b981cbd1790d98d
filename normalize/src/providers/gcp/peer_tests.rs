//! Peer comparison for the GCP formats: our rows against the expected outputs other projects
//! publish for the same corpus inputs, plus a corpus-wide check that the GCP sniffs claim the
//! GCP records and nothing else.
//!
//! - OpenTelemetry (`otel-gcp-vpcflow-computeengine-mig.expected.json`): the OTLP attributes
//!   both sides have (addresses, ports, protocol, counters, start/end times, the reporting
//!   instance, its project, VPC, subnet and region) must agree. Deliberate differences:
//!   - OTel's `timeUnixNano` is `LogEntry.timestamp` (when Cloud Logging wrote the entry, two
//!     seconds later here); our `time` is `jsonPayload.start_time`, the start of the flow, as for
//!     every other flow log in the lake. OTel keeps `start_time` as an attribute, which we compare.
//!   - OTel keeps nanoseconds; the lake stores microseconds (truncated).
//!   - OTel names the protocol (`tcp`); we store the IANA number (6).
//!   - OTel keeps `managed_instance_group` and `network_service.dscp` as attributes; no flow column
//!     holds them, so we count them as unmapped. OTel has no direction or action; we derive
//!     `inbound` from `reporter: DEST` and `allow` (VPC Flow Logs only record allowed traffic).
//! - Panther (`panther-gcp-audit-credential-use.expected.json`): for each rule verdict, the
//!   normalized fields that drive it must agree. Deliberate differences: configuration changes
//!   (inbound SSO profiles, workforce pools, service-account creation, deployment-manager key
//!   creation) and SSH keys added through instance metadata are detections over admin activity,
//!   not sign-ins or certificate events, so those records are skipped rather than normalized;
//!   Panther fires `GCP.Compute.SSHConnection` on the metadata changes, we record only the
//!   actual access paths (IAP, OS Login, serial console) as sign-ins.

use std::path::Path;

use serde_json::{Map, Value};

use crate::format::{ParseOptions, SNIFF_THRESHOLD, detect};
use crate::golden::{corpus_dir, normalize_bytes};

type Row = Map<String, Value>;

fn normalize(path: &Path) -> Vec<Row> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    normalize_bytes("peer", &bytes, "auto", &ParseOptions::default(), None)
}

fn micros(row: &Row, col: &str) -> Option<i64> {
    row.get(col).and_then(Value::as_str).and_then(crate::json::parse_time)
}

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

#[test]
fn vpc_flow_agrees_with_opentelemetry() {
    let dir = corpus_dir().join("gcp/flows");
    let rows = normalize(&dir.join("otel-gcp-vpcflow-computeengine-mig.json"));
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["table"], "flows");

    let expected: Value = serde_json::from_slice(
        &std::fs::read(dir.join("otel-gcp-vpcflow-computeengine-mig.expected.json"))
            .expect("expected file"),
    )
    .expect("expected json");
    let record = &expected["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    let attrs: Map<String, Value> = record["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|a| (a["key"].as_str().expect("key").to_owned(), a["value"].clone()))
        .collect();
    let text = |k: &str| attrs[k]["stringValue"].as_str().expect(k).to_owned();
    let int = |k: &str| -> i64 { attrs[k]["intValue"].as_str().expect(k).parse().expect("int") };

    assert_eq!(row["src_ip"], text("source.address"));
    assert_eq!(row["dst_ip"], text("destination.address"));
    assert_eq!(row["src_port"], int("source.port"));
    assert_eq!(row["dst_port"], int("destination.port"));
    assert_eq!(text("network.protocol.name"), "tcp");
    assert_eq!(row["protocol"], 6);
    assert_eq!(row["bytes"], int("gcp.vpc.flow.bytes_sent"));
    assert_eq!(row["packets"], int("gcp.vpc.flow.packets_sent"));
    // Nanoseconds in OTel, microseconds (truncated) here.
    assert_eq!(micros(row, "time"), Some(int("gcp.vpc.flow.start_time") / 1_000));
    assert_eq!(micros(row, "end_time"), Some(int("gcp.vpc.flow.end_time") / 1_000));
    // Different on purpose: OTel's record time is the LogEntry timestamp.
    let log_time: i64 = record["timeUnixNano"].as_str().expect("time").parse().expect("int");
    assert!(log_time / 1_000 > micros(row, "time").expect("time"));

    assert_eq!(text("gcp.vpc.flow.reporter"), "DEST");
    assert_eq!(row["direction"], "inbound");
    assert_eq!(row["resource"], text("gcp.vpc.flow.destination.instance.vm.name"));
    assert_eq!(row["account"], text("gcp.vpc.flow.destination.project.id"));
    assert_eq!(row["vpc"], text("gcp.vpc.flow.destination.vpc.name"));
    assert_eq!(row["subnet"], text("gcp.vpc.flow.destination.subnet.name"));
    assert_eq!(row["region"], text("gcp.vpc.flow.destination.subnet.region"));
}

#[test]
fn audit_sign_ins_agree_with_panther_verdicts() {
    let dir = corpus_dir().join("gcp/signins");
    let rows = normalize(&dir.join("panther-gcp-audit-credential-use.ndjson"));
    let expected: Value = serde_json::from_slice(
        &std::fs::read(dir.join("panther-gcp-audit-credential-use.expected.json"))
            .expect("expected file"),
    )
    .expect("expected json");
    let records = expected["records"].as_array().expect("records");
    assert_eq!(records.len(), 19);
    for record in records {
        let index = record["record"].as_u64().expect("record") as usize;
        let got = at_line(&rows, index + 1);
        for detection in record["detections"].as_array().expect("detections") {
            let rule = detection["rule_id"].as_str().expect("rule");
            let fires = detection["expected_result"].as_bool().expect("verdict");
            let context = format!("record {index}, {rule}: {got:?}");
            match rule {
                // Credential minting: the rule fires exactly when the call was authorized, which
                // is our outcome (granted:false → failure).
                "GCP.IAM.serviceAccounts.getAccessToken.Privilege.Escalation"
                | "GCP.IAM.serviceAccounts.signJwt.Privilege.Escalation" => {
                    assert_eq!(got.len(), 1, "{context}");
                    assert_eq!(got[0]["table"], "signins", "{context}");
                    let outcome = if fires { "success" } else { "failure" };
                    assert_eq!(got[0]["outcome"], outcome, "{context}");
                    assert_eq!(got[0]["app"], "iamcredentials.googleapis.com", "{context}");
                    assert!(
                        got[0]["role"]
                            .as_str()
                            .is_some_and(|r| r.ends_with(".iam.gserviceaccount.com")),
                        "{context}"
                    );
                }
                // Admin-activity detections: not sign-ins or certificate events, skipped (no row,
                // no quarantine).
                "GCP.Service.Account.Access.Denied"
                | "GCP.Inbound.SSO.Profile.Created"
                | "GCP.Workforce.Pool.Created.or.Updated"
                | "GCP.iam.serviceAccountKeys.create" => {
                    assert!(got.is_empty(), "{context}");
                }
                // SSH access: the access paths are sign-ins; metadata SSH-key changes are skipped.
                "GCP.Compute.SSHConnection" => {
                    assert!(fires, "{context}");
                    match index {
                        12 | 13 | 16 => {
                            assert_eq!(got.len(), 1, "{context}");
                            assert_eq!(got[0]["table"], "signins", "{context}");
                            assert_eq!(got[0]["outcome"], "success", "{context}");
                            assert!(got[0]["user"].is_string(), "{context}");
                        }
                        14 | 15 => assert!(got.is_empty(), "{context}"),
                        _ => panic!("unexpected record for {context}"),
                    }
                }
                other => panic!("no comparison written for Panther rule {other}"),
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

/// Every corpus input file (not the peers' expected outputs), with its provider folder.
fn corpus_inputs() -> Vec<(String, std::path::PathBuf)> {
    let mut files = Vec::new();
    let root = corpus_dir();
    let Ok(providers) = std::fs::read_dir(&root) else { return files };
    for provider in providers.flatten().filter(|e| e.path().is_dir()) {
        let name = provider.file_name().to_string_lossy().into_owned();
        for kind in std::fs::read_dir(provider.path()).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(kind.path()).into_iter().flatten().flatten() {
                let path = file.path();
                if !path.to_string_lossy().ends_with(".expected.json") {
                    files.push((name.clone(), path));
                }
            }
        }
    }
    files.sort();
    files
}

#[test]
fn gcp_sniffs_claim_gcp_records_and_nothing_else() {
    let ours: Vec<&crate::format::Format> =
        crate::providers::FORMATS.iter().copied().filter(|f| f.name.starts_with("gcp-")).collect();
    let mut gcp_records = 0;
    for (provider, path) in corpus_inputs() {
        for record in records(&path) {
            if provider == "gcp" {
                gcp_records += 1;
                let format = detect(&record).map(|f| f.name);
                assert!(
                    format.is_some_and(|f| f.starts_with("gcp-")),
                    "{}: detected as {format:?}",
                    path.display()
                );
            } else {
                for f in &ours {
                    assert!(
                        (f.sniff)(&record) < SNIFF_THRESHOLD,
                        "{} claims a record of {}",
                        f.name,
                        path.display()
                    );
                }
            }
        }
    }
    assert_eq!(gcp_records, 1 + 1 + 1 + 9 + 17 + 19, "the GCP corpus changed: review this test");
}
