//! Compaction and retention.

use std::time::{Duration, SystemTime};

use chrono::NaiveDate;
use ztlake_normalize::schema::{Provider, Table};

use super::{parquet_files, pretty, query, temp_lake, write_rows};
use crate::test_util::{micros, noon};
use crate::{CompactOptions, Txn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_small_files_and_keeps_the_data() {
    let (_dir, lake, root) = temp_lake().await;
    let t = micros("2024-01-02T10:00:00Z");
    for i in 0..4 {
        let rows = [("aws", "2024-01-02", t + i as i64 * 1_000_000); 5];
        write_rows(
            &lake,
            Table::Flows,
            &rows,
            i * 10,
            vec![Txn::new("file:x", (i as i64 + 1) * 5)],
        )
        .await;
        let rows = [("azure", "2024-01-03", noon("2024-01-03") + i as i64 * 1_000_000); 3];
        write_rows(&lake, Table::Flows, &rows, 100 + i * 10, vec![]).await;
    }
    let sql = "SELECT * FROM flows ORDER BY event_uid";
    let before = pretty(&query(&lake, sql).await);
    let stats_before = lake.stats(Table::Flows).await.expect("stats");
    assert!(stats_before.files >= 8, "{stats_before:?}");

    let report = lake.compact(Table::Flows, CompactOptions::default()).await.expect("compact");
    assert_eq!(report.files_before, stats_before.files);
    assert_eq!(report.files_after, 2, "{report:?}");
    assert_eq!(report.partitions_optimized, 2);

    let after = pretty(&query(&lake, sql).await);
    assert_eq!(before, after);
    let stats_after = lake.stats(Table::Flows).await.expect("stats");
    assert_eq!((stats_after.rows, stats_after.files), (stats_before.rows, 2));
    // Compaction keeps the txn progress, and a replay is still recognised.
    let versions = lake.txn_versions(Table::Flows, &["file:x".into()]).await.expect("txn");
    assert_eq!(versions["file:x"], 20);
    // The merged files are still skipped by time: statistics survive compaction.
    assert!(parquet_files(&root.join("flows")).len() > 2, "old files stay until vacuum");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_exactly_the_old_partitions() {
    let (_dir, lake, root) = temp_lake().await;
    let today = NaiveDate::from_ymd_opt(2024, 3, 10).expect("date");
    for (i, day) in ["2024-02-28", "2024-03-06", "2024-03-07", "2024-03-09"].into_iter().enumerate()
    {
        let t = noon(day);
        write_rows(&lake, Table::Flows, &[("aws", day, t); 2], i * 10, vec![]).await;
        write_rows(&lake, Table::Flows, &[("okta", day, t); 3], 100 + i * 10, vec![]).await;
    }
    // An orphan from a crashed writer, two days old.
    let orphan_dir = root.join("flows/provider=aws/date=2024-03-09");
    let orphan = orphan_dir.join("part-orphan.zstd.parquet");
    std::fs::write(&orphan, b"not committed").expect("orphan");
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .expect("open")
        .set_modified(two_days_ago)
        .expect("mtime");

    // Keep 3 days: partitions dated before 2024-03-07 go.
    let report = lake.retain(Table::Flows, 3, today, Duration::ZERO).await.expect("retain");
    assert_eq!(report.cutoff, NaiveDate::from_ymd_opt(2024, 3, 7).expect("date"));
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
    assert_eq!(
        report.partitions_dropped,
        vec![
            (Provider::Aws, d("2024-02-28")),
            (Provider::Aws, d("2024-03-06")),
            (Provider::Okta, d("2024-02-28")),
            (Provider::Okta, d("2024-03-06")),
        ]
    );
    assert_eq!(report.rows_removed, 10);
    assert_eq!(report.files_vacuumed, report.files_removed + 1, "{report:?}");
    assert!(!orphan.exists());

    let stats = lake.stats(Table::Flows).await.expect("stats");
    assert_eq!((stats.rows, stats.partitions), (10, 4));
    let left = pretty(
        &query(&lake, "SELECT DISTINCT provider, date FROM flows ORDER BY provider, date").await,
    );
    assert!(!left.contains("2024-02-28") && !left.contains("2024-03-06"), "{left}");
    assert!(left.contains("2024-03-07") && left.contains("2024-03-09"), "{left}");
    let on_disk = parquet_files(&root.join("flows"));
    assert_eq!(on_disk.len(), stats.files, "{on_disk:?}");

    // Nothing more to drop: no new version.
    let again = lake.retain(Table::Flows, 3, today, Duration::ZERO).await.expect("retain");
    assert_eq!((again.files_removed, again.files_vacuumed), (0, 0));
    assert_eq!(again.version, report.version);
}
