//! Rule evaluation (rows/s): the shipped streaming pack on batches of 8k–64k generated flow rows
//! (filter + projection per batch, windows closed and evaluated as event time advances), and the
//! cost of a windowed rule that keeps every row as its window grows from 1 minute to 6 hours.
//!
//! Both run the real engine (`ztlake_detections::Engine`) on real parser output; engine setup
//! (planning the rules) is outside the measured loop, as it happens once per ingest.

// criterion_group!/criterion_main! generate undocumented public items.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::RecordBatch;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ztlake::generate::{VpcFlowSpec, vpc_flows};
use ztlake_detections::{Clock, Engine, EngineOptions, LoadOptions, Reference, RuleSet};
use ztlake_normalize::format::{ParseOptions, parser_for};
use ztlake_normalize::{Output, Record, SourceInfo, Table};

const ROWS: u64 = 256 * 1024;

/// `ROWS` generated flow rows (one day of event time) in batches of `batch` rows.
fn flow_batches(batch: usize) -> Vec<RecordBatch> {
    let mut buf = Vec::new();
    vpc_flows(&mut buf, &VpcFlowSpec { lines: ROWS, header: false, ..VpcFlowSpec::default() })
        .expect("generate");
    let mut parser = parser_for("aws-vpcflow", &ParseOptions::default()).expect("parser");
    let mut out = Output::new(batch, 0);
    out.begin_source(SourceInfo::lines("file:bench", "bench.log"), [0; 4]);
    let mut batches = Vec::new();
    for (i, line) in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        out.begin_record();
        parser.parse(&Record { line: i as u64 + 1, bytes: line }, &mut out);
        out.end_record();
        if out.buffered_rows() >= batch {
            batches.extend(out.take_batches(batch).into_iter().map(|(_, b)| b));
        }
    }
    batches.extend(out.take_batches(0).into_iter().map(|(_, b)| b));
    batches
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn shipped_pack(rt: &tokio::runtime::Runtime) -> RuleSet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reference = Reference::load_dir(&root.join("detections/reference")).expect("reference");
    rt.block_on(ztlake_detections::load_dir(
        &root.join("detections/rules"),
        &LoadOptions { runbooks: None, reference },
    ))
    .expect("rule pack")
}

/// A rule whose SQL pushes no filter down: it keeps every row of its window.
fn keep_all_rule(rt: &tokio::runtime::Runtime, window: &str) -> RuleSet {
    let yaml = format!(
        "id: bench-keep-all\ntitle: t\nseverity: low\ntable: flows\nmode: streaming\nwindow: {window}\nsql: |\n  SELECT src_ip, count(DISTINCT dst_port) AS ports, count(*) AS count, min(time) AS first_seen, max(time) AS last_seen, array_agg(event_uid) AS event_uids\n  FROM flows GROUP BY src_ip HAVING count(DISTINCT dst_port) > 50\nentity: [src_ip]\nrunbook: rb\ntests:\n  - {{name: p, input: [{{format: aws-vpcflow, data: x}}], expect: {{count: 1}}}}\n  - {{name: n, input: [{{format: aws-vpcflow, data: x}}], expect: {{count: 0}}}}\n"
    );
    let sources = vec![(PathBuf::from("bench.yaml"), yaml)];
    rt.block_on(ztlake_detections::load_sources(&sources, &LoadOptions::default())).expect("rule")
}

fn engine(rt: &tokio::runtime::Runtime, rules: &RuleSet) -> Engine {
    let options = EngineOptions { max_rows_per_rule: usize::MAX, ..EngineOptions::default() };
    rt.block_on(Engine::new(&rules.streaming(), rules.reference(), options, Clock::Data))
        .expect("engine")
}

fn run(rt: &tokio::runtime::Runtime, mut engine: Engine, batches: &[RecordBatch]) -> usize {
    rt.block_on(async {
        for b in batches {
            engine.push(Table::Flows, b).await.expect("push");
        }
        engine.flush().await.expect("flush");
    });
    engine.alerts(0).len()
}

fn pack(c: &mut Criterion) {
    let rt = runtime();
    let rules = shipped_pack(&rt);
    let mut group = c.benchmark_group("streaming_pack");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for batch in [8 * 1024, 16 * 1024, 32 * 1024, 64 * 1024] {
        let batches = flow_batches(batch);
        group.bench_with_input(BenchmarkId::new("batch_rows", batch), &batches, |b, batches| {
            b.iter_batched(|| engine(&rt, &rules), |e| run(&rt, e, batches), BatchSize::LargeInput)
        });
    }
    group.finish();
}

fn window_growth(c: &mut Criterion) {
    let rt = runtime();
    let batches = flow_batches(64 * 1024);
    let mut group = c.benchmark_group("windowed_rule_keeping_every_row");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    // One day of event time: a 6h window holds a quarter of the input at once.
    for window in ["1m", "10m", "1h", "6h"] {
        let rules = keep_all_rule(&rt, window);
        group.bench_with_input(BenchmarkId::new("window", window), &batches, |b, batches| {
            b.iter_batched(|| engine(&rt, &rules), |e| run(&rt, e, batches), BatchSize::LargeInput)
        });
    }
    group.finish();
}

criterion_group!(benches, pack, window_growth);
criterion_main!(benches);
