//! Object stores: new objects are ingested once across restarts — on a local directory, on an
//! S3 emulator (moto server) and on an Azure Blob emulator (Azurite) — with the processed set
//! read back from the lake's txns. gzip bodies are decompressed; a rewritten object (new ETag)
//! is a new identity.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use ztlake_ingest::objects::{ObjectEntry, ObjectPoller, ObjectSourceConfig, processed_in_all};
use ztlake_ingest::{Frame, Framing, ReadOptions};
use ztlake_normalize::Table;
use ztlake_storage::{Lake, Txn};

use super::{emulator, txns_per_table, unique};

/// Azurite's well-known development account key (public, documented by Microsoft).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

async fn put(store: &Arc<dyn ObjectStore>, path: &str, body: Vec<u8>) {
    store
        .put(&Path::from(path), PutPayload::from(body))
        .await
        .unwrap_or_else(|e| panic!("put {path}: {e}"));
}

/// Read an object's lines on a blocking thread, as the pipeline does.
async fn read_lines(poller: &ObjectPoller, entry: &ObjectEntry) -> Vec<String> {
    let opts = ReadOptions::default();
    let opened = poller.open(entry, &opts).await.unwrap_or_else(|e| panic!("open: {e}"));
    tokio::task::spawn_blocking(move || {
        let mut records = opened.into_records(Framing::Lines, &opts);
        let mut out = Vec::new();
        while let Some(frame) = records.next_record() {
            match frame {
                Frame::Record { bytes, .. } => {
                    out.push(String::from_utf8_lossy(bytes).into_owned())
                }
                other => panic!("{other:?}"),
            }
        }
        out
    })
    .await
    .expect("reader")
}

/// Ingest what a poll hands out: read each object, commit its txn (version = lines) in every
/// data table, settle it. Returns (object key, lines) per object.
async fn ingest(poller: &ObjectPoller, lake: &Lake) -> Vec<(String, Vec<String>)> {
    let processed: HashSet<String> = processed_in_all(&txns_per_table(lake).await);
    let mut out = Vec::new();
    for entry in poller.poll(&processed).await.expect("poll") {
        let lines = read_lines(poller, &entry).await;
        let txn = Txn::new(entry.source_key(), i64::try_from(lines.len()).expect("lines"));
        for table in Table::DATA {
            lake.commit(table, vec![], vec![txn.clone()], serde_json::Map::new())
                .await
                .expect("commit");
        }
        poller.settle(&entry);
        out.push((entry.name().to_owned(), lines));
    }
    out
}

/// The scenario every store runs: objects once across restarts, gzip, ETag change.
async fn once_across_restarts(
    make_poller: impl Fn() -> ObjectPoller,
    writer: Arc<dyn ObjectStore>,
    prefix: &str,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake").to_str().expect("utf8")).await.expect("lake");
    let a = format!("{prefix}/2024/05/01/a.log.gz");
    let b = format!("{prefix}/2024/05/01/b.log");
    let c = format!("{prefix}/2024/05/02/c.log");
    put(&writer, &a, gzip(b"a1\na2\na3\n")).await;
    put(&writer, &b, b"b1\nb2\n".to_vec()).await;

    let first = ingest(&make_poller(), &lake).await;
    assert_eq!(
        first,
        [
            (a.clone(), vec!["a1".to_owned(), "a2".into(), "a3".into()]),
            (b.clone(), vec!["b1".to_owned(), "b2".into()]),
        ]
    );
    let keys_after_first: HashSet<String> = processed_in_all(&txns_per_table(&lake).await);
    assert_eq!(keys_after_first.len(), 2);
    assert!(keys_after_first.iter().all(|k| k.starts_with("object:")), "{keys_after_first:?}");

    // A restart with nothing new: nothing is read again.
    assert!(ingest(&make_poller(), &lake).await.is_empty(), "objects read twice");

    // A new object and a rewritten one (new ETag): exactly those, once.
    put(&writer, &c, b"c1\n".to_vec()).await;
    put(&writer, &b, b"b1\nb2\nb3\n".to_vec()).await;
    let poller = make_poller();
    let second = ingest(&poller, &lake).await;
    assert_eq!(
        second,
        [
            (b.clone(), vec!["b1".to_owned(), "b2".into(), "b3".into()]),
            (c.clone(), vec!["c1".to_owned()]),
        ]
    );
    assert!(ingest(&poller, &lake).await.is_empty());
    assert!(ingest(&make_poller(), &lake).await.is_empty());
    assert_eq!(processed_in_all(&txns_per_table(&lake).await).len(), 4, "b has two identities");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_objects_once_across_restarts() {
    let root = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", root.path().display());
    let writer: Arc<dyn ObjectStore> = Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(root.path()).expect("local"),
    );
    let make = || ObjectPoller::new(ObjectSourceConfig::new(&url)).expect("poller");
    once_across_restarts(make, writer, "logs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_emulator_objects_once_across_restarts() {
    let Some(endpoint) = emulator("ZTLAKE_TEST_S3_ENDPOINT", "S3 emulator (moto server)") else {
        return;
    };
    let bucket = std::env::var("ZTLAKE_TEST_S3_BUCKET").unwrap_or_else(|_| "ztlake-ci".into());
    let prefix = unique("objects");
    let writer: Arc<dyn ObjectStore> = Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("ztlake-test")
            .with_secret_access_key("ztlake-test")
            .build()
            .expect("s3 writer"),
    );
    let url = format!("s3://{bucket}/{prefix}/");
    let make = || {
        let mut config = ObjectSourceConfig::new(&url);
        for (k, v) in [
            ("endpoint", endpoint.as_str()),
            ("allow_http", "true"),
            ("region", "us-east-1"),
            ("access_key_id", "ztlake-test"),
            ("secret_access_key", "ztlake-test"),
        ] {
            config.options.set(k, v);
        }
        ObjectPoller::new(config).expect("s3 poller")
    };
    once_across_restarts(make, writer, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_objects_once_across_restarts() {
    let Some(endpoint) = emulator("ZTLAKE_TEST_AZURITE_ENDPOINT", "Azure Blob emulator (Azurite)")
    else {
        return;
    };
    let container =
        std::env::var("ZTLAKE_TEST_AZURITE_CONTAINER").unwrap_or_else(|_| "ztlake-ci".into());
    let prefix = unique("objects");
    let writer: Arc<dyn ObjectStore> = Arc::new(
        object_store::azure::MicrosoftAzureBuilder::new()
            .with_account("devstoreaccount1")
            .with_access_key(AZURITE_KEY)
            .with_endpoint(endpoint.clone())
            .with_allow_http(true)
            .with_container_name(&container)
            .build()
            .expect("azure writer"),
    );
    let url = format!("az://{container}/{prefix}");
    let make = || {
        let mut config = ObjectSourceConfig::new(&url);
        for (k, v) in [
            ("account_name", "devstoreaccount1"),
            ("access_key", AZURITE_KEY),
            ("endpoint", endpoint.as_str()),
            ("allow_http", "true"),
        ] {
            config.options.set(k, v);
        }
        ObjectPoller::new(config).expect("azure poller")
    };
    once_across_restarts(make, writer, &prefix).await;
}
