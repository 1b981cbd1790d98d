//! Storage stage benchmark: Arrow → zstd Parquet encoding of realistic `flows` batches.
//!
//! Compares, on the same batches (rows/s via `Throughput::Elements`):
//! - `arrow_writer_defaults`: one `ArrowWriter`, zstd(1), Parquet defaults (the naive baseline);
//! - `arrow_writer_lake_props`: one `ArrowWriter` with the lake's column policy;
//! - `table_writer/1` and `table_writer/2`: the lake's `TableWriter` with 1 and 2 encoder
//!   threads (split by partition, bounded queue, file-level parallelism).
//!
//! Report ratios, not absolute numbers: the machines are shared and noisy.

use std::fs::File;
use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Int32Array, Int64Array, ListArray, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use ztlake_normalize::schema::{Kind, Table, UTC};
use ztlake_storage::{Lake, WriterOptions, writer_properties};

/// Rows per batch, as the parsers produce them.
const BATCH_ROWS: usize = 8192;
/// Batches per iteration.
const BATCHES: usize = 32;

/// A small deterministic generator (xorshift64*), so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One AWS VPC flow batch (default v2 fields plus ztlake's format/source/uid), one day.
fn flows_batch(rng: &mut Rng, first_row: usize) -> RecordBatch {
    let n = BATCH_ROWS;
    let day = 19_724; // 2024-01-02
    let t0 = i64::from(day) * 86_400_000_000;
    let ports = [443, 80, 22, 53, 3389, 5432, 8080, 123];
    let mut time = Vec::with_capacity(n);
    let mut src_ip = Vec::with_capacity(n);
    let mut dst_ip = Vec::with_capacity(n);
    let mut src_port = Vec::with_capacity(n);
    let mut dst_port = Vec::with_capacity(n);
    let mut resource = Vec::with_capacity(n);
    let mut action = Vec::with_capacity(n);
    let mut bytes = Vec::with_capacity(n);
    let mut packets = Vec::with_capacity(n);
    let mut uid = Vec::with_capacity(n);
    let mut source = Vec::with_capacity(n);
    for i in 0..n {
        let row = first_row + i;
        time.push(t0 + (row as i64 / 200) * 60_000_000);
        let internal = format!("10.0.{}.{}", rng.below(16), rng.below(256));
        let external = if rng.below(4) == 0 {
            format!(
                "{}.{}.{}.{}",
                rng.below(223) + 1,
                rng.below(256),
                rng.below(256),
                rng.below(256)
            )
        } else {
            format!("10.0.{}.{}", rng.below(16), rng.below(256))
        };
        let inbound = rng.below(2) == 0;
        let (s, d) = if inbound { (external, internal) } else { (internal, external) };
        src_ip.push(s);
        dst_ip.push(d);
        src_port.push(1024 + rng.below(64_000) as i32);
        dst_port.push(ports[rng.below(ports.len() as u64) as usize]);
        resource.push(format!("eni-0a1b2c3d4e5f{:04x}", rng.below(100)));
        action.push(if rng.below(20) == 0 { "deny" } else { "allow" });
        let p = 1 + rng.below(50) as i64;
        packets.push(p);
        bytes.push(p * (40 + rng.below(1400) as i64));
        uid.push(format!("{:016x}", rng.next()));
        source.push(format!(
            "s3://flow-logs/AWSLogs/123456789012/vpcflowlogs/us-east-1/2024/01/02/f.log.gz:{}",
            row + 1
        ));
    }
    let end_time: Vec<i64> = time.iter().map(|t| t + 60_000_000).collect();
    let constant = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
    let columns: Vec<ArrayRef> = Table::Flows
        .columns()
        .iter()
        .map(|c| -> ArrayRef {
            match c.name {
                "time" => {
                    Arc::new(TimestampMicrosecondArray::from(time.clone()).with_timezone(UTC))
                }
                "end_time" => {
                    Arc::new(TimestampMicrosecondArray::from(end_time.clone()).with_timezone(UTC))
                }
                "provider" => constant("aws"),
                "account" => constant("123456789012"),
                "region" => constant("us-east-1"),
                "vpc" => constant("vpc-0abc123def4567890"),
                "subnet" => constant("subnet-0123456789abcdef0"),
                "resource" => Arc::new(StringArray::from(resource.clone())),
                "src_ip" => Arc::new(StringArray::from(src_ip.clone())),
                "dst_ip" => Arc::new(StringArray::from(dst_ip.clone())),
                "src_port" => Arc::new(Int32Array::from(src_port.clone())),
                "dst_port" => Arc::new(Int32Array::from(dst_port.clone())),
                "protocol" => Arc::new(Int32Array::from(vec![6; n])),
                "direction" => constant("inbound"),
                "action" => Arc::new(StringArray::from(action.clone())),
                "status" => constant("ok"),
                "bytes" => Arc::new(Int64Array::from(bytes.clone())),
                "packets" => Arc::new(Int64Array::from(packets.clone())),
                "event_uid" => Arc::new(StringArray::from(uid.clone())),
                "source" => Arc::new(StringArray::from(source.clone())),
                "format" => constant("aws-vpcflow"),
                "date" => Arc::new(Date32Array::from(vec![day; n])),
                _ => match c.kind {
                    Kind::Text => Arc::new(StringArray::from(vec![None::<&str>; n])),
                    Kind::Int32 => Arc::new(Int32Array::from(vec![None; n])),
                    Kind::Int64 => Arc::new(Int64Array::from(vec![None; n])),
                    Kind::Bool => Arc::new(BooleanArray::from(vec![None; n])),
                    Kind::Timestamp => {
                        Arc::new(TimestampMicrosecondArray::from(vec![None; n]).with_timezone(UTC))
                    }
                    Kind::Date => Arc::new(Date32Array::from(vec![day; n])),
                    Kind::TextList => Arc::new(ListArray::new_null(
                        Arc::new(arrow::datatypes::Field::new(
                            "item",
                            arrow::datatypes::DataType::Utf8,
                            true,
                        )),
                        n,
                    )),
                },
            }
        })
        .collect();
    RecordBatch::try_new(Table::Flows.schema(), columns).expect("canonical flows batch")
}

/// The batches of one iteration.
fn flows_batches() -> Vec<RecordBatch> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..BATCHES).map(|b| flows_batch(&mut rng, b * BATCH_ROWS)).collect()
}

/// Encode with one ArrowWriter (data-file schema: partition columns dropped).
fn arrow_writer(batches: &[RecordBatch], props: WriterProperties, dir: &std::path::Path) -> u64 {
    let keep: Vec<usize> = Table::Flows
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.name != "provider" && c.name != "date")
        .map(|(i, _)| i)
        .collect();
    let schema = Arc::new(Table::Flows.schema().project(&keep).expect("project"));
    let path = dir.join("single.parquet");
    let mut writer = ArrowWriter::try_new(File::create(&path).expect("file"), schema, Some(props))
        .expect("writer");
    for batch in batches {
        writer.write(&batch.project(&keep).expect("project")).expect("write");
    }
    let meta = writer.close().expect("close");
    meta.file_metadata().num_rows() as u64
}

fn bench_encode(c: &mut Criterion) {
    let batches = flows_batches();
    let rows = (BATCHES * BATCH_ROWS) as u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let lake_dir = dir.path().join("lake");
    let lake = runtime.block_on(Lake::open(lake_dir.to_str().expect("utf-8 path"))).expect("lake");

    let mut group = c.benchmark_group("encode_flows");
    group.throughput(Throughput::Elements(rows));
    group.sample_size(10);

    group.bench_function("arrow_writer_defaults", |b| {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level")))
            .build();
        b.iter(|| black_box(arrow_writer(&batches, props.clone(), dir.path())));
    });
    group.bench_function("arrow_writer_lake_props", |b| {
        let props = writer_properties(Table::Flows, 1).expect("props");
        b.iter(|| black_box(arrow_writer(&batches, props.clone(), dir.path())));
    });
    for threads in [1, 2] {
        group.bench_with_input(
            BenchmarkId::new("table_writer", threads),
            &threads,
            |b, &threads| {
                let opts = WriterOptions {
                    encoder_threads: threads,
                    queue_depth: 2 * threads,
                    ..WriterOptions::default()
                };
                b.iter(|| {
                    let mut writer = lake.writer(Table::Flows, opts.clone()).expect("writer");
                    for batch in &batches {
                        writer.write(batch.clone()).expect("write");
                    }
                    let files = writer.finish().expect("finish");
                    let written: u64 = files.iter().map(|f| f.rows()).sum();
                    // Uncommitted files: remove them so the directory does not grow.
                    for f in &files {
                        let _ = std::fs::remove_file(lake_dir.join("flows").join(f.path()));
                    }
                    black_box(written)
                });
            },
        );
    }
    group.finish();
}

/// The benchmark group (written out: `criterion_group!` generates an undocumented `pub fn`).
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_encode(&mut criterion);
}

criterion_main!(benches);
