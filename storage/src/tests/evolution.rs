//! Schema evolution: canonical schemas only grow.

use deltalake::DeltaTable;
use deltalake::kernel::{DataType, StructField};
use ztlake_normalize::schema::{PARTITION_COLUMNS, Table};

use super::{query, temp_lake, write_rows};
use crate::layout::delta_fields;
use crate::test_util::micros;
use crate::{Error, Lake};

async fn create_with(lake: &Lake, t: Table, fields: Vec<StructField>) {
    let log_store = lake.log_store(t);
    DeltaTable::new(log_store)
        .create()
        .with_columns(fields)
        .with_partition_columns(PARTITION_COLUMNS)
        .await
        .expect("create old table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_table_gains_the_new_canonical_columns() {
    let (_dir, lake, root) = temp_lake().await;
    // An "old" flows table: the first 10 columns plus the partition columns.
    let mut fields: Vec<StructField> = delta_fields(Table::Flows).into_iter().take(10).collect();
    fields.extend(delta_fields(Table::Flows).into_iter().filter(|f| f.name() == "date"));
    create_with(&lake, Table::Flows, fields).await;

    let old = Lake::open(root.to_str().expect("path")).await.expect("reopen");
    let table = old.table(Table::Flows).await.expect("evolve");
    let schema = table.snapshot().expect("state").schema();
    for column in Table::Flows.columns() {
        assert!(schema.field(column.name).is_some(), "missing {}", column.name);
    }
    let config = table.snapshot().expect("state").metadata().configuration().clone();
    assert!(config.get("delta.dataSkippingStatsColumns").is_some_and(|v| v.starts_with("time,")));

    let t = micros("2024-01-02T10:00:00Z");
    write_rows(&old, Table::Flows, &[("aws", "2024-01-02", t); 3], 0, vec![]).await;
    let result =
        query(&old, "SELECT count(tls_error) AS e, count(encrypted) AS n FROM flows").await;
    assert_eq!(result[0].num_rows(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_column_type_is_a_conflict() {
    let (_dir, lake, _root) = temp_lake().await;
    let fields: Vec<StructField> = delta_fields(Table::Signins)
        .into_iter()
        .map(
            |f| if f.name() == "mfa" { StructField::new("mfa", DataType::STRING, true) } else { f },
        )
        .collect();
    create_with(&lake, Table::Signins, fields).await;
    let fresh = Lake::open(lake.url().as_str()).await.expect("reopen");
    let err = fresh.table(Table::Signins).await.expect_err("conflict");
    assert!(matches!(err, Error::SchemaConflict { ref column, .. } if column == "mfa"), "{err}");
}
