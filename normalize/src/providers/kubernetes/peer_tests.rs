//! Peer comparison: Panther's `Kubernetes.ClientCertificate.Created` rule verdicts
//! (`k8s/certs/panther-k8s-csr-audit.expected.json`) against the `cert_events` rows `k8s-audit`
//! makes of the same events (`panther-k8s-csr-audit.ndjson`: vanilla/EKS, AKS and GKE wrappers).
//!
//! Panther's rule fires when: verb `create` on `certificatesigningrequests`, the request did not
//! fail (HTTP ≥ 400 or gRPC 1–16), the user is not a system principal (`system:` components
//! other than service accounts, `masterclient`, `eks:`, `gke-`, `azure-`, GCP service
//! accounts, `system:serviceaccount:kube-system:`) nor `kubelet-nodepool-bootstrap`, and the
//! request is for client authentication (usage `client auth` or a signer name containing
//! `kubernetes.io/kube-apiserver-client`). The same decision is taken here over our columns:
//! `activity = 'requested'` (create that did not fail), `actor`, `issuer` (the signer name) and
//! `reason` (which lists the requested usages).
//!
//! Deliberate differences, asserted below:
//! 1. The Panther test events carry no timestamp at all (rule tests do not need one). A
//!    `cert_events` row needs its event time, so as published the eight CSR writes are
//!    quarantined (`missing_field`, the detail naming the time fields of each wrapper) and the
//!    `get` is skipped. To compare verdicts, the test gives each event the time field of its
//!    wrapper (`requestReceivedTimestamp`, AKS `time`, GKE `timestamp`) and normalizes it again.
//! 2. Panther's verdict is a detection; ours is the normalized event the detection reads. The
//!    rows of excluded events (system principals, failed requests, server-auth signers) still
//!    exist — with `activity` `request_failed` or a system `actor` — so rules can be written
//!    either way; only the read (`get`) leaves no row.

use serde_json::{Map, Value};

use crate::format::ParseOptions;
use crate::golden::{corpus_dir, normalize_bytes};

/// Panther's `is_system_principal`.
fn is_system_principal(user: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        ".iam.gserviceaccount.com",
        "system:serviceaccount:kube-system:",
        "eks:",
        "masterclient",
        "gke-",
        "azure-",
    ];
    PREFIXES.iter().any(|p| user.starts_with(p))
        || user == "masterclient"
        || (user.starts_with("system:") && !user.contains("serviceaccount"))
}

/// The rule, over one normalized row.
fn fires(row: &Map<String, Value>) -> bool {
    let s = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or_default();
    row.get("table").and_then(Value::as_str) == Some("cert_events")
        && s("activity") == "requested"
        && !is_system_principal(s("actor"))
        && s("actor") != "kubelet-nodepool-bootstrap"
        && (s("reason").contains("client auth")
            || s("issuer").contains("kubernetes.io/kube-apiserver-client"))
}

fn normalize(name: &str, bytes: &[u8]) -> Vec<Map<String, Value>> {
    normalize_bytes(name, bytes, "k8s-audit", &ParseOptions::default(), None)
}

#[test]
fn panther_client_certificate_verdicts_agree() {
    let dir = corpus_dir().join("k8s").join("certs");
    let input = std::fs::read_to_string(dir.join("panther-k8s-csr-audit.ndjson")).expect("input");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("panther-k8s-csr-audit.expected.json"))
            .expect("verdicts"),
    )
    .expect("json");
    let verdicts: Vec<bool> = expected["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["detections"][0]["expected_result"].as_bool().expect("verdict"))
        .collect();
    let lines: Vec<&str> = input.lines().collect();
    assert_eq!(lines.len(), verdicts.len());

    // Difference 1: as published, no event time.
    let rows = normalize("panther-k8s-csr-audit.ndjson", input.as_bytes());
    assert_eq!(rows.len(), 8, "8 quarantined writes, the get skipped");
    for row in &rows {
        assert_eq!(row["reason"], "missing_field", "{row:?}");
        assert!(row["detail"].as_str().is_some_and(|d| d.ends_with(": absent")));
    }

    let mut fired = 0;
    for (i, (line, want)) in lines.iter().zip(&verdicts).enumerate() {
        let mut event: Value = serde_json::from_str(line).expect("event");
        let obj = event.as_object_mut().expect("object");
        let field = if obj.contains_key("protoPayload") {
            "timestamp"
        } else if obj.contains_key("properties") {
            "time"
        } else {
            "requestReceivedTimestamp"
        };
        obj.insert(field.into(), Value::String("2024-06-01T12:00:00Z".into()));
        let bytes = serde_json::to_vec(&event).expect("json");
        let rows = normalize(&format!("panther record {i}"), &bytes);
        assert!(rows.iter().all(|r| r["table"] == "cert_events"), "record {i}: {rows:?}");
        let ours = rows.iter().any(fires);
        assert_eq!(ours, *want, "record {i}: {rows:?}");
        fired += usize::from(ours);
        // The fields behind the verdict, per record.
        if let Some(row) = rows.first() {
            assert_eq!(row["time"], "2024-06-01T12:00:00Z");
            assert!(row["cert_id"].is_string(), "record {i}: the CSR name");
            assert!(row["actor"].is_string(), "record {i}: the requesting user");
        }
    }
    assert_eq!(fired, 4, "EKS, AKS, GKE and the service-account creations fire");

    // Record by record, the normalized columns Panther's rule reads.
    let at = |i: usize| {
        let mut event: Value = serde_json::from_str(lines[i]).expect("event");
        event.as_object_mut().expect("object").insert(
            "requestReceivedTimestamp".into(),
            Value::String("2024-06-01T12:00:00Z".into()),
        );
        normalize("r", &serde_json::to_vec(&event).expect("json"))
    };
    let failed = at(6);
    assert_eq!(failed[0]["activity"], "request_failed");
    assert_eq!(failed[0]["reason"], "HTTP 403");
    let server = at(7);
    assert_eq!(server[0]["issuer"], "kubernetes.io/kubelet-serving");
    assert_eq!(server[0]["reason"], "usages: server auth");
    let get = at(8);
    assert!(get.is_empty(), "a read of a CSR is skipped");
}
