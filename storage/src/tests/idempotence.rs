//! Idempotent commits: replays commit nothing and leave no orphan behind.

use serde_json::Map;
use ztlake_normalize::schema::Table;

use super::{encode, opts, parquet_files, temp_lake, write_rows};
use crate::test_util::{flows_batch, micros};
use crate::{CommitOutcome, Error, Lake, Txn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_commit_commits_nothing() {
    let (_dir, lake, root) = temp_lake().await;
    let t = micros("2024-01-02T10:00:00Z");
    let rows = vec![("aws", "2024-01-02", t); 20];
    let first = write_rows(&lake, Table::Flows, &rows, 0, vec![Txn::new("file:a", 20)]).await;
    assert!(matches!(first, CommitOutcome::Committed { rows: 20, .. }), "{first:?}");
    let files_after_first = parquet_files(&root.join("flows"));

    // The same source range again (a replay after a crash): nothing new, files deleted.
    let again = write_rows(&lake, Table::Flows, &rows, 0, vec![Txn::new("file:a", 20)]).await;
    assert_eq!(again, CommitOutcome::AlreadyCommitted);
    let lower = write_rows(&lake, Table::Flows, &rows, 0, vec![Txn::new("file:a", 10)]).await;
    assert_eq!(lower, CommitOutcome::AlreadyCommitted);
    assert_eq!(lake.stats(Table::Flows).await.expect("stats").rows, 20);
    assert_eq!(parquet_files(&root.join("flows")), files_after_first, "no orphan files");

    // Progress commits.
    let next = write_rows(&lake, Table::Flows, &rows[..5], 20, vec![Txn::new("file:a", 25)]).await;
    assert!(matches!(next, CommitOutcome::Committed { rows: 5, .. }), "{next:?}");
    assert_eq!(lake.stats(Table::Flows).await.expect("stats").rows, 25);

    // A source with no rows for this table still records its progress.
    let empty = lake
        .commit(Table::Flows, vec![], vec![Txn::new("file:b", 7)], Map::new())
        .await
        .expect("commit");
    assert!(matches!(empty, CommitOutcome::Committed { files: 0, rows: 0, .. }), "{empty:?}");
    let versions = lake
        .txn_versions(Table::Flows, &["file:a".into(), "file:b".into()])
        .await
        .expect("versions");
    assert_eq!((versions["file:a"], versions["file:b"]), (25, 7));
    assert_eq!(
        lake.commit(Table::Flows, vec![], vec![], Map::new()).await.expect("empty"),
        CommitOutcome::Empty
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_going_back_while_another_advances_is_refused() {
    let (_dir, lake, root) = temp_lake().await;
    let t = micros("2024-01-02T10:00:00Z");
    let rows = vec![("aws", "2024-01-02", t); 3];
    write_rows(&lake, Table::Flows, &rows, 0, vec![Txn::new("file:a", 30)]).await;
    let files = encode(&lake, Table::Flows, vec![flows_batch(&rows, 3)], opts()).await;
    let err = lake
        .commit(
            Table::Flows,
            files,
            vec![Txn::new("file:a", 10), Txn::new("file:b", 3)],
            Map::new(),
        )
        .await
        .expect_err("regression");
    assert!(matches!(err, Error::TxnRegression { given: 10, recorded: 30, .. }), "{err}");
    assert_eq!(lake.stats(Table::Flows).await.expect("stats").rows, 3);
    assert_eq!(
        parquet_files(&root.join("flows")).len(),
        lake.stats(Table::Flows).await.expect("s").files
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_of_the_same_source_commit_once() {
    let (_dir, lake_a, root) = temp_lake().await;
    // A second, independent lake handle (another process, as far as Delta knows).
    let lake_b = Lake::open(root.to_str().expect("path")).await.expect("open");
    let t = micros("2024-01-02T10:00:00Z");
    let rows = vec![("aws", "2024-01-02", t); 10];
    lake_a.table(Table::Flows).await.expect("create");
    lake_b.table(Table::Flows).await.expect("load");
    let files_a = encode(&lake_a, Table::Flows, vec![flows_batch(&rows, 0)], opts()).await;
    let files_b = encode(&lake_b, Table::Flows, vec![flows_batch(&rows, 0)], opts()).await;
    let txn = || vec![Txn::new("file:same", 10)];
    let (a, b) = tokio::join!(
        lake_a.commit(Table::Flows, files_a, txn(), Map::new()),
        lake_b.commit(Table::Flows, files_b, txn(), Map::new()),
    );
    let outcomes = [a.expect("a"), b.expect("b")];
    let committed =
        outcomes.iter().filter(|o| matches!(o, CommitOutcome::Committed { .. })).count();
    let skipped = outcomes.iter().filter(|o| **o == CommitOutcome::AlreadyCommitted).count();
    assert_eq!((committed, skipped), (1, 1), "{outcomes:?}");
    let stats = lake_a.stats(Table::Flows).await.expect("stats");
    assert_eq!(stats.rows, 10);
    assert_eq!(parquet_files(&root.join("flows")).len(), stats.files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_txns_reads_every_app_id_in_one_replay_across_a_checkpoint() {
    let (_dir, lake, _root) = temp_lake().await;
    assert!(lake.all_txns(Table::Flows).await.expect("missing table").is_empty());
    let t = micros("2024-01-02T10:00:00Z");
    let rows = vec![("aws", "2024-01-02", t); 2];
    // Before the checkpoint: three sources, one of them advancing twice.
    write_rows(
        &lake,
        Table::Flows,
        &rows,
        0,
        vec![Txn::new("file:a", 2), Txn::new("kafka:g/t/0", 0)],
    )
    .await;
    write_rows(&lake, Table::Flows, &rows, 2, vec![Txn::new("file:a", 4)]).await;
    lake.commit(Table::Flows, vec![], vec![Txn::new("object:s3://b/k@e1", 7)], Map::new())
        .await
        .expect("commit");
    let table = lake.table(Table::Flows).await.expect("table");
    deltalake::checkpoints::create_checkpoint(&table, None).await.expect("checkpoint");
    // After it: one source advances, a new one appears.
    write_rows(&lake, Table::Flows, &rows, 4, vec![Txn::new("kafka:g/t/0", 41)]).await;
    lake.commit(Table::Flows, vec![], vec![Txn::new("object:s3://b/k2@e9", 3)], Map::new())
        .await
        .expect("commit");

    let all = lake.all_txns(Table::Flows).await.expect("all txns");
    let expected: std::collections::HashMap<String, i64> =
        [("file:a", 4), ("kafka:g/t/0", 41), ("object:s3://b/k@e1", 7), ("object:s3://b/k2@e9", 3)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
    assert_eq!(all, expected);
    // The same answer as the per-id lookups.
    let ids: Vec<String> = expected.keys().cloned().collect();
    assert_eq!(lake.txn_versions(Table::Flows, &ids).await.expect("versions"), expected);
    // Another table of the same lake records its own.
    assert!(lake.all_txns(Table::Quarantine).await.expect("quarantine").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_at_a_version_commits_only_if_nothing_landed_since() {
    let (_dir, lake, root) = temp_lake().await;
    let t = micros("2024-01-02T10:00:00Z");
    let rows = vec![("aws", "2024-01-02", t); 10];
    let read = lake.version(Table::Flows).await.expect("version");

    // Another writer commits after our read: the append is refused, its files deleted.
    let other = write_rows(&lake, Table::Flows, &rows, 0, vec![]).await;
    assert!(matches!(other, CommitOutcome::Committed { rows: 10, .. }), "{other:?}");
    let before = parquet_files(&root.join("flows"));
    let files = encode(&lake, Table::Flows, vec![flows_batch(&rows, 100)], opts()).await;
    assert!(!lake.append_at(Table::Flows, files, read, Map::new()).await.expect("append"));
    assert_eq!(parquet_files(&root.join("flows")), before, "refused files deleted");
    assert_eq!(lake.stats(Table::Flows).await.expect("stats").rows, 10);

    // At the current version it commits.
    let now = lake.version(Table::Flows).await.expect("version");
    assert!(now > read);
    let files = encode(&lake, Table::Flows, vec![flows_batch(&rows, 200)], opts()).await;
    assert!(lake.append_at(Table::Flows, files, now, Map::new()).await.expect("append"));
    assert_eq!(lake.stats(Table::Flows).await.expect("stats").rows, 20);
    assert_eq!(lake.version(Table::Flows).await.expect("version"), now + 1);
}
