//! Upserts: rows replaced by key, across partitions, atomically; bad keys rejected.

use ztlake_normalize::schema::Table;

use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::{parquet_files, pretty, query, temp_lake};
use crate::test_util::{noon, table_batch};
use crate::{Error, UpsertOutcome};

#[tokio::test]
async fn rows_are_replaced_by_key_and_may_change_partition() {
    let (_dir, lake, root) = temp_lake().await;
    let first = table_batch(
        Table::Alerts,
        &[("aws", "2024-05-01", noon("2024-05-01")), ("gcp", "2024-05-02", noon("2024-05-02"))],
        0,
    );
    let out = lake.upsert(Table::Alerts, first, "alert_id").await.expect("upsert");
    assert_eq!(out, UpsertOutcome { inserted: 2, updated: 0 });
    // alert_id-1 moves from gcp/2024-05-02 to multi/2024-05-03; alert_id-2 is new.
    let next = table_batch(
        Table::Alerts,
        &[
            ("aws", "2024-05-01", noon("2024-05-01")),
            ("multi", "2024-05-03", noon("2024-05-03")),
            ("azure", "2024-05-04", noon("2024-05-04")),
        ],
        0,
    )
    .slice(1, 2);
    let out = lake.upsert(Table::Alerts, next.clone(), "alert_id").await.expect("upsert");
    assert_eq!(out, UpsertOutcome { inserted: 1, updated: 1 });
    let rows = pretty(
        &query(
            &lake,
            "SELECT alert_id, provider, CAST(date AS VARCHAR) AS d FROM alerts ORDER BY alert_id",
        )
        .await,
    );
    let expected = [
        "| alert_id-0 | aws      | 2024-05-01 |",
        "| alert_id-1 | multi    | 2024-05-03 |",
        "| alert_id-2 | azure    | 2024-05-04 |",
    ];
    for line in expected {
        assert!(rows.contains(line), "missing {line}:\n{rows}");
    }
    // The same upsert again: still one row per key.
    lake.upsert(Table::Alerts, next, "alert_id").await.expect("again");
    let rows = pretty(
        &query(&lake, "SELECT count(*) AS n, count(DISTINCT alert_id) AS k FROM alerts").await,
    );
    assert!(rows.contains("| 3 | 3 |"), "{rows}");
    // The merge's files have the lake's layout, as the writer's do.
    let files = parquet_files(&root.join("alerts"));
    assert!(!files.is_empty());
    for file in files {
        let open = std::fs::File::open(root.join("alerts").join(&file)).expect("open");
        let reader = SerializedFileReader::new(open).expect("parquet");
        let meta = reader.metadata();
        let columns = meta.row_groups().iter().flat_map(|rg| rg.columns());
        assert!(
            columns.into_iter().all(|c| matches!(c.compression(), Compression::ZSTD(_))),
            "{file}"
        );
    }
}

#[tokio::test]
async fn repeated_or_missing_keys_are_rejected() {
    let (_dir, lake, _) = temp_lake().await;
    let rows = [("aws", "2024-05-01", noon("2024-05-01")); 5];
    // Five rows: ids cycle through alert_id-0..3, so one repeats.
    let batch = table_batch(Table::Alerts, &rows, 0);
    let err = lake.upsert(Table::Alerts, batch.clone(), "alert_id").await.expect_err("dup");
    assert!(matches!(err, Error::Schema { .. }), "{err}");
    assert!(err.to_string().contains("appears twice"), "{err}");
    let err = lake.upsert(Table::Alerts, batch, "nosuch").await.expect_err("no key");
    assert!(err.to_string().contains("no key column"), "{err}");
    assert!(!lake.exists(Table::Alerts).await.expect("exists"), "nothing was created");
}
