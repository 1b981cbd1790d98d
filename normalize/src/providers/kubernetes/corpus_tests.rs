//! Corpus tests for the Kubernetes, Istio and Zeek formats, against `../shared/corpus`
//! (`golden::corpus_dir()` reports clearly when it is absent):
//!
//! - every corpus file of these providers, read with `--format auto` the way `ztlake ingest`
//!   reads it, is classified to the right format and table, with no `unknown_format`;
//! - the sniffs of these formats claim no record of any other provider's corpus file.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::format::{Framing, ParseOptions, SNIFF_THRESHOLD, sniff_framing};
use crate::golden::{corpus_dir, normalize_bytes};
use crate::providers::{istio, kubernetes, zeek};

/// The formats of this test's providers.
fn ours() -> [&'static crate::format::Format; 7] {
    [
        &istio::access::FORMAT,
        &kubernetes::audit::FORMAT,
        &kubernetes::certmanager::FORMAT,
        &zeek::ssl::FORMAT,
        &zeek::x509::FORMAT,
        &zeek::notice::FORMAT,
        &zeek::ocsp::FORMAT,
    ]
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, out);
        } else if !path.to_string_lossy().ends_with(".expected.json") {
            out.push(path);
        }
    }
}

/// 2023-11-14T22:13:20Z, as the delivery time of the corpus files.
const DELIVERED: i64 = 1_700_000_000_000_000;

fn auto(path: &Path) -> Vec<Map<String, Value>> {
    let bytes = std::fs::read(path).expect("read corpus file");
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    normalize_bytes(&name, &bytes, "auto", &ParseOptions::default(), Some(DELIVERED))
}

fn field<'a>(row: &'a Map<String, Value>, key: &str) -> &'a str {
    row.get(key).and_then(Value::as_str).unwrap_or_default()
}

#[test]
fn corpus_files_are_classified_to_their_format_and_table() {
    // (file, format every row must carry, table of the data rows, data rows, quarantined rows
    // with their one reason).
    type Case = (&'static str, &'static [&'static str], &'static str, usize, usize, &'static str);
    let cases: [Case; 10] = [
        ("istio/flows/elastic-istio-access-default-text.log", &["istio-access"], "flows", 8, 0, ""),
        ("istio/flows/elastic-istio-access-failed-text.log", &["istio-access"], "flows", 2, 0, ""),
        ("istio/flows/elastic-istio-access-json.ndjson", &["istio-access"], "flows", 3, 0, ""),
        // The Panther test events carry no timestamps: every CSR write is quarantined, the
        // `get` is skipped.
        (
            "k8s/certs/panther-k8s-csr-audit.ndjson",
            &["k8s-audit"],
            "cert_events",
            0,
            8,
            "missing_field",
        ),
        (
            "k8s/certs/certmanager-docs-kubectl-events.txt",
            &["k8s-cert-manager"],
            "cert_events",
            28,
            0,
            "",
        ),
        (
            "k8s/certs/certmanager-docs-controller-klog.log",
            &["k8s-cert-manager"],
            "cert_events",
            7,
            0,
            "",
        ),
        // btest masks every ts as XXXXXXXXXX.XXXXXX: each data line is a bad_time.
        ("zeek/certs/zeek-btest-ssl-basic.log", &["zeek-ssl"], "flows", 0, 1, "bad_time"),
        (
            "zeek/certs/zeek-btest-ssl-validation-status.log",
            &["zeek-ssl"],
            "flows",
            0,
            3,
            "bad_time",
        ),
        ("zeek/certs/zeek-btest-x509-basic.log", &["zeek-x509"], "cert_events", 0, 2, "bad_time"),
        ("zeek/certs/zeek-btest-ocsp-revoked.log", &["zeek-ocsp"], "cert_events", 0, 4, "bad_time"),
    ];
    let corpus = corpus_dir();
    for (file, formats, table, data, quarantined, reason) in cases {
        let rows = auto(&corpus.join(file));
        for row in &rows {
            assert!(formats.contains(&field(row, "format")), "{file}: {row:?}");
            assert_ne!(field(row, "reason"), "unknown_format", "{file}: {row:?}");
        }
        let n_data = rows.iter().filter(|r| field(r, "table") == table).count();
        let q: Vec<&Map<String, Value>> =
            rows.iter().filter(|r| field(r, "table") == "quarantine").collect();
        assert_eq!(n_data, data, "{file}: rows in {table}");
        assert_eq!(q.len(), quarantined, "{file}: quarantined {q:?}");
        assert!(q.iter().all(|r| field(r, "reason") == reason), "{file}: {q:?}");
        assert_eq!(rows.len(), data + quarantined, "{file}: rows in other tables");
    }
    // The notice file: the expired / expiring notices are bad_time too.
    let rows = auto(&corpus.join("zeek/certs/zeek-btest-notice-cert-expired.log"));
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| field(r, "reason") == "bad_time" && field(r, "format") == "zeek-notice")
    );
}

#[test]
fn our_sniffs_claim_no_record_of_other_providers() {
    let corpus = corpus_dir();
    let mut all = Vec::new();
    files(&corpus, &mut all);
    let mine = ["istio", "k8s", "zeek"];
    let mut checked = 0;
    for path in all {
        let rel = path.strip_prefix(&corpus).unwrap_or(&path);
        let provider = rel.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or("");
        if mine.contains(&provider) || !rel.to_string_lossy().contains('/') {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        let framing = match sniff_framing(&bytes) {
            Framing::Lines => ztlake_ingest::Framing::Lines,
            Framing::Json => ztlake_ingest::Framing::Json,
        };
        let mut reader = ztlake_ingest::RecordReader::new(
            &bytes[..],
            framing,
            &ztlake_ingest::ReadOptions::default(),
        );
        while let Some(frame) = reader.next_record() {
            let ztlake_ingest::Frame::Record { line, bytes } = frame else { continue };
            for format in ours() {
                let score = (format.sniff)(bytes);
                assert!(
                    score < SNIFF_THRESHOLD,
                    "{} claims {}:{line} with {score}",
                    format.name,
                    rel.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} records checked");
}

/// Each format's example record is detected as that format and normalized into a row (the Zeek
/// examples are data lines, which need their log's `#fields` header first).
#[test]
fn examples_are_detected_and_parse() {
    for format in ours() {
        let detected = crate::format::detect(format.example.as_bytes()).map(|f| f.name);
        if format.name.starts_with("zeek-") {
            assert!(
                detected.is_some_and(|n| n.starts_with("zeek-")),
                "{}: {detected:?}",
                format.name
            );
            continue;
        }
        assert_eq!(detected, Some(format.name));
        let rows = normalize_bytes(
            format.name,
            format.example.as_bytes(),
            format.name,
            &ParseOptions::default(),
            Some(DELIVERED),
        );
        assert_eq!(rows.len(), 1, "{}: {rows:?}", format.name);
        assert_ne!(field(&rows[0], "table"), "quarantine", "{}: {rows:?}", format.name);
    }
}

/// Every record of our fixtures, cut at many lengths and with hostile bytes substituted, read
/// by each of our formats: no panic, and every record ends as a row, a quarantine or a skip.
#[test]
fn mutated_fixture_records_never_panic_and_always_end_somewhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures");
    let mut inputs = Vec::new();
    for dir in ["k8s", "istio", "zeek"] {
        files(&root.join(dir), &mut inputs);
    }
    let mut records: Vec<Vec<u8>> = Vec::new();
    for path in inputs {
        let name = path.to_string_lossy().into_owned();
        if name.ends_with(".expected.ndjson") || name.ends_with(".json") || name.ends_with(".md") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        records.extend(bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
    }
    assert!(records.len() > 100, "{} records", records.len());
    let mut mutants: Vec<Vec<u8>> = Vec::new();
    for r in &records {
        let step = (r.len() / 24).max(1);
        for cut in (0..r.len()).step_by(step) {
            mutants.push(r.get(..cut).unwrap_or_default().to_vec());
        }
        for (i, bad) in [b'"', b'\\', b'\t', b'{', b']', b' ', 0xFF, b'|'].into_iter().enumerate() {
            let mut m = r.clone();
            let at = (r.len() * (i + 1)) / 9;
            if let Some(b) = m.get_mut(at) {
                *b = bad;
            }
            mutants.push(m);
        }
    }
    let options = ParseOptions::default();
    for format in ours() {
        let mut parser = (format.new_parser)(&options).expect("parser");
        let mut out = crate::output::Output::new(64, 0);
        let mut info = crate::output::SourceInfo::lines("mutants", "mutants");
        info.delivered = Some(DELIVERED);
        out.begin_source(info, [0; 4]);
        out.set_format(format.name, format.provider);
        for (i, m) in mutants.iter().enumerate() {
            out.begin_record();
            parser.parse(&crate::output::Record { line: i as u64 + 1, bytes: m }, &mut out);
            out.end_record();
            if i % 512 == 0 {
                let _ = out.take_batches(0);
            }
        }
        parser.finish(&mut out);
        let counts = out.counts();
        assert_eq!(counts.records, mutants.len() as u64);
        assert_eq!(counts.skipped.get("empty"), None, "{}: a record with no outcome", format.name);
    }
}
