//! A lake on a non-local object store (in-memory): the spool-and-upload write path.

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use ztlake_normalize::schema::Table;

use super::{encode, query, write_rows};
use crate::test_util::{micros, noon, table_batch};
use crate::{CommitOutcome, Lake, Txn, WriterOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_lake_uploads_and_reads_back() {
    let lake = Lake::open("memory:///lake").await.expect("open");
    assert!(!lake.is_local());
    let spool = tempfile::tempdir().expect("spool");
    let t = micros("2024-05-01T00:00:00Z");
    let rows = [
        ("kubernetes", "2024-05-01", t),
        ("aws", "2024-05-01", t),
        ("kubernetes", "2024-05-02", noon("2024-05-02")),
    ];
    let options = WriterOptions {
        spool_dir: Some(spool.path().to_path_buf()),
        target_file_rows: 1,
        ..super::opts()
    };
    let files =
        encode(&lake, Table::CertEvents, vec![table_batch(Table::CertEvents, &rows, 0)], options)
            .await;
    assert_eq!(files.len(), 3);
    assert_eq!(std::fs::read_dir(spool.path()).expect("spool").count(), 0, "spool files removed");
    let outcome = lake
        .commit(
            Table::CertEvents,
            files,
            vec![Txn::new("s3:bucket/key", 3)],
            serde_json::Map::new(),
        )
        .await
        .expect("commit");
    assert!(matches!(outcome, CommitOutcome::Committed { rows: 3, .. }), "{outcome:?}");
    let n = query(&lake, "SELECT count(*) FROM cert_events WHERE provider = 'kubernetes'").await;
    assert_eq!(n[0].column(0).as_primitive::<Int64Type>().value(0), 2);
    let sans = query(&lake, "SELECT sans FROM cert_events LIMIT 1").await;
    assert_eq!(sans[0].num_rows(), 1);
    let again =
        write_rows(&lake, Table::CertEvents, &rows, 0, vec![Txn::new("s3:bucket/key", 3)]).await;
    assert_eq!(again, CommitOutcome::AlreadyCommitted);
    assert_eq!(lake.stats(Table::CertEvents).await.expect("stats").files, 3);
}
