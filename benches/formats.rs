//! Parser throughput per format family (bytes/s and records/s): each case takes a golden
//! fixture of one format, frames it the way `ztlake ingest` does (lines, or JSON values for
//! pretty-printed blobs), repeats its records to about 4 MB, and runs them through the named
//! parser into Arrow builders, batch hand-off included. `auto` runs a mix of every case through
//! per-record format detection.
//!
//! `cargo bench --bench formats [-- FILTER]`.

// criterion_group!/criterion_main! generate undocumented public items.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ztlake_ingest::{Frame, Framing, ReadOptions, RecordReader};
use ztlake_normalize::format::{self, ParseOptions, parser_for};
use ztlake_normalize::{Output, Record, SourceInfo};

/// (family, format, fixture under normalize/tests/fixtures).
const CASES: &[(&str, &str, &str)] = &[
    ("flows-text", "aws-vpcflow", "aws/flows/vpcflow-v5-inferred.log"),
    ("flows-text", "aws-tgwflow", "aws/flows/tgwflow-default-36.log"),
    ("flows-text", "istio-access", "istio/flows/istio-access-default-text.log"),
    ("flows-json", "istio-access", "istio/flows/istio-access-json.ndjson"),
    ("flows-json", "aws-cloudwatch-logs", "aws/flows/otel-vpcflow-cloudwatch-subscription.json"),
    ("flows-json", "azure-nsgflow", "azure/flows/msdocs-nsg-flow-v2-PT1H.json"),
    ("flows-json", "azure-vnetflow", "azure/flows/msdocs-vnet-flow-v4-PT1H.json"),
    ("flows-json", "gcp-vpcflow", "gcp/flows/otel-gcp-vpcflow-real-capture-first9.ndjson"),
    ("signins", "azure-entra-signin", "azure/signins/entra-signin-categories.ndjson"),
    ("signins", "aws-cloudtrail", "aws/signins/cloudtrail-console-signin.ndjson"),
    ("signins", "okta-systemlog", "okta/signins/okta-session-policy.ndjson"),
    ("signins", "gcp-workspace-login", "gcp/signins/workspace-login-activity.ndjson"),
    ("signins", "gcp-audit", "gcp/signins/audit-signins-extra.ndjson"),
    ("certs", "aws-eventbridge", "aws/certs/acm-eventbridge.json"),
    ("certs", "azure-keyvault", "azure/certs/keyvault-eventgrid-certificates.json"),
    ("certs", "k8s-audit", "k8s/certs/k8s-audit-csr-lifecycle.ndjson"),
    ("certs", "aws-elb", "aws/certs/elb-alb-variants.log"),
    ("certs", "zeek-ocsp", "zeek/certs/zeek-btest-ocsp-revoked.log"),
];

/// Input size each case is repeated to.
const TARGET_BYTES: usize = 4 << 20;

/// The framed records of a fixture, repeated to about [`TARGET_BYTES`].
fn records(fixture: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("normalize/tests/fixtures").join(fixture);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let framing = match format::sniff_framing(&bytes) {
        format::Framing::Lines => Framing::Lines,
        format::Framing::Json => Framing::Json,
    };
    let mut once = Vec::new();
    let mut reader = RecordReader::new(&bytes[..], framing, &ReadOptions::default());
    while let Some(frame) = reader.next_record() {
        if let Frame::Record { bytes, .. } = frame {
            once.push(bytes.to_vec());
        }
    }
    assert!(!once.is_empty(), "{fixture}: no records");
    let size: usize = once.iter().map(Vec::len).sum::<usize>().max(1);
    let copies = TARGET_BYTES.div_ceil(size);
    (0..copies).flat_map(|_| once.iter().cloned()).collect()
}

/// Parse every record with `format`; returns the rows written (all tables).
fn parse_all(format: &str, records: &[Vec<u8>]) -> u64 {
    let mut parser = parser_for(format, &ParseOptions::default()).expect("parser");
    let mut out = Output::new(65_536, 0);
    out.begin_source(SourceInfo::lines("file:bench", "bench"), [0; 4]);
    let mut rows = 0u64;
    let drain = |out: &mut Output, min: usize| {
        out.take_batches(min).iter().map(|(_, b)| b.num_rows() as u64).sum::<u64>()
    };
    for (i, bytes) in records.iter().enumerate() {
        out.begin_record();
        parser.parse(&Record { line: i as u64 + 1, bytes }, &mut out);
        out.end_record();
        if out.buffered_rows() >= 65_536 {
            rows += drain(&mut out, 65_536);
        }
    }
    parser.finish(&mut out);
    rows + drain(&mut out, 0)
}

fn bench(c: &mut Criterion) {
    let mut mix = Vec::new();
    for (family, format, fixture) in CASES {
        let input = records(fixture);
        let bytes: usize = input.iter().map(Vec::len).sum();
        let rows = parse_all(format, &input);
        assert!(rows > 0, "{format} on {fixture} wrote no rows");
        let mut group = c.benchmark_group(format!("parse/{family}"));
        group.sample_size(10);
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(format!("{format} ({} records, {rows} rows)", input.len()), |b| {
            b.iter(|| parse_all(format, &input))
        });
        group.finish();
        mix.extend(input.into_iter().step_by(8));
    }
    let bytes: usize = mix.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("parse/auto");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(format!("auto mix ({} records)", mix.len()), |b| {
        b.iter(|| parse_all("auto", &mix))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
