//! The whole shared corpus (`../shared/corpus`, every provider and kind) ingested with
//! `--format auto`: every file is classified to the right provider and table, and the only
//! quarantined records are the deliberately broken ones, each with its reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{Scratch, strings};

/// Records of the corpus that cannot be normalized, on purpose, with why:
const DELIBERATELY_BROKEN: &[(&str, &str, i64, &str)] = &[
    (
        "aws/flows/otel-vpcflow-cloudwatch-custom-4fields.json",
        "field_count",
        2,
        "a custom 4-field format that only --vpc-fields can explain",
    ),
    (
        "aws/flows/vrl-vpcflow-examples.log",
        "field_count",
        1,
        "a header-less 6-field NAT format (VRL passes the format per example)",
    ),
    (
        "aws/flows/vrl-vpcflow-examples.log",
        "bad_field",
        2,
        "custom-order v5 and v11 lines without their format string",
    ),
    (
        "aws/signins/panther-cloudtrail-signin.ndjson",
        "missing_field",
        4,
        "trimmed test events without eventTime",
    ),
    (
        "k8s/certs/panther-k8s-csr-audit.ndjson",
        "missing_field",
        8,
        "rule-test events without any timestamp",
    ),
    (
        "okta/signins/panther-okta-systemlog-auth.ndjson",
        "missing_field",
        5,
        "rule-test events without published",
    ),
    (
        "okta/signins/panther-okta-systemlog-auth.ndjson",
        "bad_time",
        3,
        "published is the string \"redacted\"",
    ),
    (
        "zeek/certs/zeek-btest-notice-cert-expired.log",
        "bad_time",
        2,
        "btest-masked timestamps XXXXXXXXXX.XXXXXX",
    ),
    ("zeek/certs/zeek-btest-ocsp-revoked.log", "bad_time", 4, "btest-masked timestamps"),
    ("zeek/certs/zeek-btest-ssl-basic.log", "bad_time", 1, "btest-masked timestamps"),
    ("zeek/certs/zeek-btest-ssl-validation-status.log", "bad_time", 3, "btest-masked timestamps"),
    ("zeek/certs/zeek-btest-x509-basic.log", "bad_time", 2, "btest-masked timestamps"),
];

/// Files that produce no row at all, and why (everything in them is deliberately broken or
/// belongs to no table: Key Vault's published samples are secret events and a secret read).
const NO_ROWS: &[&str] = &[
    "azure/certs/msdocs-keyvault-auditevent-PT1H.json",
    "azure/certs/msdocs-keyvault-cloudevents-schema-secretnewversion.json",
    "azure/certs/msdocs-keyvault-eventgrid-schema-secretnewversion.json",
    "aws/flows/otel-vpcflow-cloudwatch-custom-4fields.json",
    "k8s/certs/panther-k8s-csr-audit.ndjson",
    "zeek/certs/zeek-btest-notice-cert-expired.log",
    "zeek/certs/zeek-btest-ocsp-revoked.log",
    "zeek/certs/zeek-btest-ssl-basic.log",
    "zeek/certs/zeek-btest-ssl-validation-status.log",
    "zeek/certs/zeek-btest-x509-basic.log",
];

fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(
        dir.is_dir(),
        "the shared corpus is missing at {} (clone ztlake beside shared/, as CI does)",
        dir.display()
    );
    dir
}

fn copy_inputs(from: &Path, to: &Path, rel: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(from).expect("read corpus").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            copy_inputs(&path, &to.join(&name), &rel.join(&name), files);
        } else if !name.ends_with(".expected.json") && !name.ends_with(".md") {
            std::fs::create_dir_all(to).expect("mkdir");
            std::fs::copy(&path, to.join(&name)).expect("copy");
            files.push(rel.join(&name).to_string_lossy().to_string());
        }
    }
}

fn provider_of(file: &str) -> &'static str {
    match file.split('/').next() {
        Some("aws") => "aws",
        Some("azure") => "azure",
        Some("gcp") => "gcp",
        Some("okta") => "okta",
        Some("k8s" | "istio") => "kubernetes",
        Some("zeek") => "zeek",
        other => panic!("unexpected corpus folder {other:?}"),
    }
}

fn tables_for_kind(file: &str) -> &'static [&'static str] {
    match file.split('/').nth(1) {
        Some("flows") => &["flows"],
        Some("signins") => &["signins"],
        // Certificate folders also hold TLS access logs (ELB, GCP LB, Zeek ssl): flows.
        Some("certs") => &["cert_events", "flows"],
        other => panic!("unexpected corpus kind {other:?}"),
    }
}

#[test]
fn the_whole_corpus_is_classified_and_only_broken_records_are_quarantined() {
    let s = Scratch::new();
    let input = s.path("corpus");
    let mut files = Vec::new();
    copy_inputs(&corpus(), &input, Path::new(""), &mut files);
    assert!(files.len() > 60, "corpus copied: {}", files.len());
    s.ok(&["ingest", input.to_str().expect("utf8")]);
    let prefix = format!("{}/", input.display());
    let strip = |source: &str| -> String {
        let file = source.strip_prefix(&prefix).unwrap_or(source);
        file.rsplit_once(':').map_or(file, |(f, _)| f).to_owned()
    };

    // 1. Quarantine holds exactly the deliberately broken records.
    let mut quarantined: BTreeMap<(String, String), i64> = BTreeMap::new();
    for batch in s.query("SELECT source, reason FROM quarantine") {
        for (src, reason) in strings(batch.column(0)).iter().zip(strings(batch.column(1))) {
            *quarantined.entry((strip(src), reason)).or_default() += 1;
        }
    }
    let expected: BTreeMap<(String, String), i64> = DELIBERATELY_BROKEN
        .iter()
        .map(|(f, r, n, _)| (((*f).to_owned(), (*r).to_owned()), *n))
        .collect();
    assert_eq!(
        quarantined, expected,
        "quarantine must hold exactly the deliberately broken records"
    );

    // 2. Every row carries its file's provider, and lands in a table of its kind.
    let mut seen: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for table in ["flows", "signins", "cert_events"] {
        for batch in
            s.query(&format!("SELECT source, provider, count(*) FROM {table} GROUP BY 1, 2"))
        {
            for (src, provider) in strings(batch.column(0)).iter().zip(strings(batch.column(1))) {
                seen.entry(strip(src)).or_default().insert((table.to_owned(), provider));
            }
        }
    }
    let mut problems = Vec::new();
    for file in &files {
        let rows = seen.get(file);
        if NO_ROWS.contains(&file.as_str()) {
            if rows.is_some() {
                problems.push(format!("{file}: expected no rows, got {rows:?}"));
            }
            continue;
        }
        let Some(rows) = rows else {
            problems.push(format!("{file}: no row in any table"));
            continue;
        };
        for (table, provider) in rows {
            if provider != provider_of(file) {
                problems.push(format!(
                    "{file}: {table} row with provider {provider}, expected {}",
                    provider_of(file)
                ));
            }
            if !tables_for_kind(file).contains(&table.as_str()) {
                problems
                    .push(format!("{file}: row in {table}, expected {:?}", tables_for_kind(file)));
            }
        }
        if !rows.iter().any(|(t, _)| t == tables_for_kind(file)[0]) && !file.contains("/certs/") {
            problems.push(format!("{file}: no row in {}", tables_for_kind(file)[0]));
        }
    }
    assert!(
        problems.is_empty(),
        "{} classification problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
