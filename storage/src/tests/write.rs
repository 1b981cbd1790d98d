//! Create, write, commit and read back.

use std::fs::File;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::{Map, Value};
use ztlake_normalize::schema::{Provider, Table};

use super::{encode, opts, parquet_files, pretty, query, temp_lake};
use crate::test_util::{flows_batch, micros, noon};
use crate::{CommitOutcome, Error, Txn, WriterOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_write_commit_and_read_back() {
    let (_dir, lake, root) = temp_lake().await;
    let t0 = micros("2024-01-02T10:00:00Z");
    let t1 = micros("2024-01-03T08:30:00.123456Z");
    let mut rows = vec![("aws", "2024-01-02", t0); 100];
    rows.extend(vec![("gcp", "2024-01-03", t1); 50]);
    let mixed = flows_batch(&rows, 0);
    let more = flows_batch(&[("aws", "2024-01-02", t0 + 1_000_000); 30], 1000);
    let files = encode(&lake, Table::Flows, vec![mixed, more], opts()).await;
    assert!(files.iter().all(|f| f.table() == Table::Flows));
    assert_eq!(files.iter().map(|f| f.rows()).sum::<u64>(), 180);

    let mut info = Map::new();
    info.insert("ztlake.sources".into(), Value::from(vec!["flows.log"]));
    let outcome = lake
        .commit(Table::Flows, files.clone(), vec![Txn::new("file:abc", 180)], info)
        .await
        .expect("commit");
    let CommitOutcome::Committed { files: n, rows, .. } = outcome else {
        panic!("expected a commit, got {outcome:?}");
    };
    assert_eq!((n, rows), (files.len(), 180));

    // Layout: hive partition directories, zstd Parquet without the partition columns.
    let on_disk = parquet_files(&root.join("flows"));
    assert_eq!(on_disk.len(), files.len());
    assert!(on_disk.iter().any(|p| p.starts_with("provider=aws/date=2024-01-02/part-")));
    assert!(on_disk.iter().any(|p| p.starts_with("provider=gcp/date=2024-01-03/part-")));
    assert!(on_disk.iter().all(|p| p.ends_with(".zstd.parquet")));
    let reader =
        SerializedFileReader::new(File::open(root.join("flows").join(&on_disk[0])).expect("open"))
            .expect("parquet");
    let meta = reader.metadata();
    assert!(meta.file_metadata().created_by().is_some_and(|c| c.starts_with("ztlake")));
    let names: Vec<&str> =
        meta.file_metadata().schema_descr().columns().iter().map(|c| c.name()).collect();
    assert!(!names.contains(&"provider") && !names.contains(&"date") && names.contains(&"time"));
    let rg = meta.row_group(0);
    assert!(rg.columns().iter().all(|c| matches!(c.compression(), Compression::ZSTD(_))));

    // Read back through DataFusion over the Delta provider, partition columns included.
    let result = query(
        &lake,
        "SELECT provider, CAST(date AS VARCHAR) AS day, count(*) AS n, \
         CAST(min(time) AS VARCHAR) AS first, CAST(max(time) AS VARCHAR) AS last \
         FROM flows GROUP BY provider, date ORDER BY provider",
    )
    .await;
    let text = pretty(&result);
    assert!(text.contains("| aws      | 2024-01-02 | 130 | 2024-01-02T10:00:00Z"), "{text}");
    assert!(text.contains("2024-01-02T10:00:01Z"), "{text}");
    assert!(text.contains("| gcp      | 2024-01-03 | 50  | 2024-01-03T08:30:00.123456Z"), "{text}");

    let stats = lake.stats(Table::Flows).await.expect("stats");
    assert_eq!((stats.rows, stats.files, stats.partitions), (180, files.len(), 2));
    assert_eq!(stats.files_without_stats, 0);
    assert!(stats.bytes > 0);

    // The commit carries the txn and the metadata.
    let versions = lake
        .txn_versions(Table::Flows, &["file:abc".into(), "file:nope".into()])
        .await
        .expect("txn");
    assert_eq!(versions.get("file:abc"), Some(&180));
    assert!(!versions.contains_key("file:nope"));
    let table = lake.table(Table::Flows).await.expect("table");
    let mut history = table.history(Some(1));
    let last = futures::StreamExt::next(&mut history).await.expect("history").expect("commit info");
    assert_eq!(last.info.get("ztlake.sources"), Some(&Value::from(vec!["flows.log"])));
    let meta = table.snapshot().expect("state").metadata().clone();
    assert_eq!(meta.name(), Some("flows"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_partition_value_writes_nothing() {
    let (_dir, lake, root) = temp_lake().await;
    let t = micros("2024-01-02T10:00:00Z");
    let mut writer = lake.writer(Table::Flows, opts()).expect("writer");
    let bad = flows_batch(&[("aws", "2024-01-02", t), ("../../../etc", "2024-01-02", t)], 0);
    let (err, files) = tokio::task::spawn_blocking(move || {
        let err = writer.write(bad).expect_err("invalid provider");
        (err, writer.finish().expect("finish"))
    })
    .await
    .expect("task");
    assert!(matches!(err, Error::Partition { .. }), "{err}");
    assert!(err.to_string().contains("../../../etc"), "{err}");
    assert!(files.is_empty());
    assert!(parquet_files(&root).is_empty());
    assert!(!lake.exists(Table::Flows).await.expect("exists"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_roll_at_target_rows_and_open_files_are_bounded() {
    let (_dir, lake, _root) = temp_lake().await;
    let t = micros("2024-01-01T00:00:00Z");
    let options = WriterOptions {
        encoder_threads: 1,
        target_file_rows: 10,
        max_open_files_per_encoder: 2,
        queue_depth: 1,
        ..WriterOptions::default()
    };
    let one_day = flows_batch(&[("aws", "2024-01-01", t); 25], 0);
    let days = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"];
    let spread: Vec<(&str, &str, i64)> =
        (0..20).map(|i| ("azure", days[i % 5], noon(days[i % 5]))).collect();
    let spread = flows_batch(&spread, 100);
    let files = encode(&lake, Table::Flows, vec![one_day, spread], options).await;
    let mut aws: Vec<u64> =
        files.iter().filter(|f| f.provider() == Provider::Aws).map(|f| f.rows()).collect();
    aws.sort_unstable();
    assert_eq!(aws, vec![5, 10, 10]);
    let azure: Vec<_> = files.iter().filter(|f| f.provider() == Provider::Azure).collect();
    assert_eq!(azure.iter().map(|f| f.rows()).sum::<u64>(), 20);
    assert!(azure.iter().all(|f| f.rows() <= 10));
    assert!(files.iter().all(|f| f.size() > 0 && f.stats().contains("\"numRecords\"")));
    lake.commit(Table::Flows, files, vec![], Map::new()).await.expect("commit");
    let n = query(&lake, "SELECT count(*) AS n FROM flows").await;
    assert_eq!(n[0].column(0).as_primitive::<Int64Type>().value(0), 45);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_writer_deletes_its_files() {
    let (_dir, lake, root) = temp_lake().await;
    let t = micros("2024-01-01T00:00:00Z");
    let options = WriterOptions { target_file_rows: 4, ..opts() };
    let mut writer = lake.writer(Table::Flows, options).expect("writer");
    let batch: RecordBatch = flows_batch(&[("aws", "2024-01-01", t); 10], 0);
    tokio::task::spawn_blocking(move || {
        writer.write(batch).expect("write");
        drop(writer);
    })
    .await
    .expect("task");
    assert!(parquet_files(&root).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_with_another_schema_are_rejected() {
    let (_dir, lake, _root) = temp_lake().await;
    let mut writer = lake.writer(Table::Signins, opts()).expect("writer");
    let flows = flows_batch(&[("aws", "2024-01-01", 0)], 0);
    let err = writer.write(flows).expect_err("schema");
    assert!(matches!(err, Error::Schema { table: Table::Signins, .. }), "{err}");
    assert!(writer.finish().expect("finish").is_empty());
}
