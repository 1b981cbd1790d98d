//! Partition and statistics pruning through the Delta table provider.

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use ztlake_normalize::schema::Table;

use super::{plan, query, temp_lake, write_rows};
use crate::test_util::micros;

fn files_in(plan: &str) -> Vec<String> {
    let mut files: Vec<String> = plan
        .split(|c: char| c == '[' || c == ']' || c == ',' || c.is_whitespace())
        .filter(|s| s.ends_with(".zstd.parquet"))
        .map(|s| s.to_string())
        .collect();
    files.sort();
    files.dedup();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_and_time_filters_skip_files() {
    let (_dir, lake, _root) = temp_lake().await;
    let morning = micros("2024-01-02T06:00:00Z");
    let evening = micros("2024-01-02T20:00:00.000500Z");
    let older = micros("2024-01-01T12:00:00Z");
    write_rows(&lake, Table::Flows, &[("aws", "2024-01-01", older); 4], 0, vec![]).await;
    write_rows(&lake, Table::Flows, &[("aws", "2024-01-02", morning); 4], 10, vec![]).await;
    write_rows(&lake, Table::Flows, &[("aws", "2024-01-02", evening); 4], 20, vec![]).await;
    write_rows(&lake, Table::Flows, &[("gcp", "2024-01-02", evening); 4], 30, vec![]).await;

    let all = files_in(&plan(&lake, "SELECT event_uid FROM flows").await);
    assert_eq!(all.len(), 4, "{all:?}");

    // Partition pruning: only aws files dated 2024-01-02 or later.
    let sql = "SELECT event_uid FROM flows WHERE provider = 'aws' AND date >= '2024-01-02'";
    let text = plan(&lake, sql).await;
    let picked = files_in(&text);
    assert_eq!(picked.len(), 2, "{text}");
    assert!(picked.iter().all(|f| f.contains("provider=aws/date=2024-01-02/")), "{picked:?}");
    assert_eq!(query(&lake, sql).await.iter().map(|b| b.num_rows()).sum::<usize>(), 8);

    // Statistics pruning: the morning file of aws/2024-01-02 cannot hold rows after noon.
    let sql =
        "SELECT event_uid FROM flows WHERE provider = 'aws' AND time >= '2024-01-02T12:00:00Z'";
    let text = plan(&lake, sql).await;
    let picked = files_in(&text);
    assert_eq!(picked.len(), 1, "{text}");
    let result = query(&lake, sql).await;
    assert_eq!(result.iter().map(|b| b.num_rows()).sum::<usize>(), 4);

    // The max time is rounded up: a bound just past the last microsecond still finds the rows.
    let sql = "SELECT count(*) FROM flows WHERE time >= '2024-01-02T20:00:00.000500Z' AND provider = 'gcp'";
    let n = query(&lake, sql).await;
    assert_eq!(n[0].column(0).as_primitive::<Int64Type>().value(0), 4);
}
