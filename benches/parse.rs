//! Parser throughput (rows/s): generated default-format AWS VPC flow lines through the
//! `aws-vpcflow` parser into Arrow builders, with `--format aws-vpcflow` and with `auto`
//! detection, including the batch hand-off (`take_batches`) the pipeline does.

// criterion_group!/criterion_main! generate undocumented public items.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ztlake::generate::{VpcFlowSpec, vpc_flows};
use ztlake_normalize::format::{ParseOptions, parser_for};
use ztlake_normalize::{Output, Record, SourceInfo};

const LINES: u64 = 200_000;

fn input() -> Vec<u8> {
    let mut buf = Vec::new();
    vpc_flows(&mut buf, &VpcFlowSpec { lines: LINES, header: false, ..VpcFlowSpec::default() })
        .expect("generate");
    buf
}

fn parse_all(format: &str, data: &[u8]) -> u64 {
    let mut parser = parser_for(format, &ParseOptions::default()).expect("parser");
    let mut out = Output::new(65_536, 0);
    out.begin_source(SourceInfo::lines("file:bench", "bench.log"), [0; 4]);
    let mut rows = 0;
    for (i, line) in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        out.begin_record();
        parser.parse(&Record { line: i as u64 + 1, bytes: line }, &mut out);
        out.end_record();
        if out.buffered_rows() >= 65_536 {
            rows += out.take_batches(65_536).iter().map(|(_, b)| b.num_rows() as u64).sum::<u64>();
        }
    }
    rows + out.take_batches(0).iter().map(|(_, b)| b.num_rows() as u64).sum::<u64>()
}

fn bench(c: &mut Criterion) {
    let data = input();
    let mut group = c.benchmark_group("vpcflow_parse");
    group.throughput(Throughput::Elements(LINES));
    group.sample_size(20);
    for format in ["aws-vpcflow", "auto"] {
        group.bench_function(format, |b| b.iter(|| assert_eq!(parse_all(format, &data), LINES)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
