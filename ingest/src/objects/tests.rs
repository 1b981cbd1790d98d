//! The poller against the local file system and the in-memory store (the stand-in for GCS: no
//! GCS emulator is used; S3 and Azure Blob emulators are exercised by the end-to-end tests).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::{ObjectStoreExt, PutPayload};

use super::*;
use crate::{Frame, Framing};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// The lines of an object, read on a blocking thread as the pipeline does.
async fn lines(poller: &ObjectPoller, entry: &ObjectEntry) -> Result<Vec<String>, String> {
    let opts = ReadOptions::default();
    let opened = poller.open(entry, &opts).await.map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || {
        let mut records = opened.into_records(Framing::Lines, &opts);
        let mut out = Vec::new();
        while let Some(frame) = records.next_record() {
            match frame {
                Frame::Record { bytes, .. } => {
                    out.push(String::from_utf8_lossy(bytes).into_owned())
                }
                Frame::Broken { error, .. } => return Err(error.to_string()),
                Frame::TooLong { .. } => return Err("too long".into()),
            }
        }
        Ok(out)
    })
    .await
    .expect("reader thread")
}

fn keys(entries: &[ObjectEntry]) -> Vec<&str> {
    entries.iter().map(ObjectEntry::name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_directory_new_objects_once_gzip_and_etag_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("2024/05/01")).expect("mkdir");
    std::fs::write(root.join("2024/05/01/b.log"), "b1\nb2\n").expect("write");
    std::fs::write(root.join("2024/05/01/a.log.gz"), gzip(b"a1\na2\na3\n")).expect("write");
    let url = url::Url::from_directory_path(root).expect("url").to_string();
    let poller = ObjectPoller::new(ObjectSourceConfig::new(&url)).expect("poller");

    let first = poller.poll(&HashSet::new()).await.expect("poll");
    assert_eq!(keys(&first), ["2024/05/01/a.log.gz", "2024/05/01/b.log"]);
    let a = &first[0];
    let base = url.trim_end_matches('/');
    assert!(
        a.source_key().starts_with(&format!("object:{base}/2024/05/01/a.log.gz@")),
        "{}",
        a.source_key()
    );
    assert_eq!(a.url(), format!("{base}/2024/05/01/a.log.gz"));
    assert!(a.last_modified_micros > 0);
    assert_eq!(lines(&poller, a).await.expect("a"), ["a1", "a2", "a3"]);
    assert_eq!(lines(&poller, &first[1]).await.expect("b"), ["b1", "b2"]);

    // Handed out and unsettled: not handed out again.
    assert!(poller.poll(&HashSet::new()).await.expect("poll").is_empty());
    // Committed: the lake's processed set holds both.
    let processed: HashSet<String> = first.iter().map(|e| e.source_key().to_owned()).collect();
    first.iter().for_each(|e| poller.settle(e));
    assert!(poller.poll(&processed).await.expect("poll").is_empty());

    // A new object and a rewritten one (new content: new ETag, new identity).
    std::fs::write(root.join("2024/05/01/c.log"), "c1\n").expect("write");
    std::fs::write(root.join("2024/05/01/b.log"), "b1\nb2\nb3 longer now\n").expect("write");
    let second = poller.poll(&processed).await.expect("poll");
    assert_eq!(keys(&second), ["2024/05/01/b.log", "2024/05/01/c.log"]);
    assert_ne!(second[0].source_key(), first[1].source_key(), "etag change is a new identity");
    assert_eq!(lines(&poller, &second[0]).await.expect("b"), ["b1", "b2", "b3 longer now"]);

    // A restart (new poller) given the processed set picks up only what is not in it.
    let restarted = ObjectPoller::new(ObjectSourceConfig::new(&url)).expect("poller");
    let mut processed = processed;
    processed.insert(second[1].source_key().to_owned());
    let third = restarted.poll(&processed).await.expect("poll");
    assert_eq!(keys(&third), ["2024/05/01/b.log"]);
    assert_eq!(third[0].source_key(), second[0].source_key());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_or_vanished_objects_fail_naming_the_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("x.log"), "one\n").expect("write");
    let url = url::Url::from_directory_path(dir.path()).expect("url").to_string();
    let poller = ObjectPoller::new(ObjectSourceConfig::new(&url)).expect("poller");
    let entries = poller.poll(&HashSet::new()).await.expect("poll");
    // Rewritten after listing: the conditional get refuses it (it will be a new identity).
    std::fs::write(dir.path().join("x.log"), "one\ntwo, different size\n").expect("write");
    let err = lines(&poller, &entries[0]).await.expect_err("changed");
    assert!(err.contains("x.log"), "{err}");
    std::fs::remove_file(dir.path().join("x.log")).expect("rm");
    let err = lines(&poller, &entries[0]).await.expect_err("gone");
    assert!(err.contains("x.log") && err.contains("get"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_store_stands_in_for_gcs() {
    let store = Arc::new(InMemory::new());
    let put = |path: &str, body: Vec<u8>| {
        let store = Arc::clone(&store);
        let path = Path::from(path);
        async move { store.put(&path, PutPayload::from(body)).await.expect("put") }
    };
    put("AWSLogs/1/a.json.gz", gzip(b"{\"a\":1}\n")).await;
    put("AWSLogs/2/b.json", b"{\"b\":2}\n".to_vec()).await;
    put("AWSLogsOther/c.json", b"{}".to_vec()).await;
    put("other/d.json", b"{}".to_vec()).await;
    let mut config = ObjectSourceConfig::new("gs://audit-logs/AWSLogs/");
    config.max_objects_per_poll = 1;
    let poller = ObjectPoller::with_store(config, store.clone()).expect("poller");
    let all = poller.list().await.expect("list");
    assert_eq!(keys(&all), ["AWSLogs/1/a.json.gz", "AWSLogs/2/b.json"], "only under the prefix");
    assert!(all[0].source_key().starts_with("object:gs://audit-logs/AWSLogs/1/a.json.gz@"));
    // One per poll, oldest key first.
    let p1 = poller.poll(&HashSet::new()).await.expect("poll");
    assert_eq!(keys(&p1), ["AWSLogs/1/a.json.gz"]);
    assert_eq!(lines(&poller, &p1[0]).await.expect("a"), ["{\"a\":1}"]);
    let p2 = poller.poll(&HashSet::new()).await.expect("poll");
    assert_eq!(keys(&p2), ["AWSLogs/2/b.json"]);
    // A failed object, settled without commit, is handed out again.
    poller.settle(&p2[0]);
    assert_eq!(keys(&poller.poll(&HashSet::new()).await.expect("poll")), ["AWSLogs/2/b.json"]);
    // Rewriting an object changes its identity.
    put("AWSLogs/1/a.json.gz", gzip(b"{\"a\":2}\n")).await;
    let relisted = poller.list().await.expect("list");
    assert_ne!(relisted[0].source_key(), all[0].source_key());
}

#[test]
fn processed_means_recorded_in_every_table() {
    let flows = HashMap::from([
        ("object:s3://b/x@1".to_owned(), 10),
        ("object:s3://b/y@1".to_owned(), 3),
        ("file:abc".to_owned(), 4),
    ]);
    let quarantine = HashMap::from([("object:s3://b/x@1".to_owned(), 10)]);
    let done = processed_in_all(&[flows.clone(), quarantine]);
    assert_eq!(done, HashSet::from(["object:s3://b/x@1".to_owned()]));
    assert_eq!(processed_in_all(&[flows]).len(), 2, "file: keys are not objects");
    assert!(processed_in_all(&[]).is_empty());
}

#[test]
fn configs_parse_validate_and_redact() {
    let json = r#"{
        "url": "s3://flow-logs/AWSLogs/123456789012/vpcflowlogs/",
        "format": "aws-vpcflow",
        "poll_interval": "30s",
        "options": {"region": "eu-west-1", "access_key_id": "AKIAEXAMPLE", "secret_access_key": "very-secret", "endpoint": "http://127.0.0.1:5000", "allow_http": true}
    }"#;
    let config: ObjectSourceConfig = serde_json::from_str(json).expect("config");
    config.validate().expect("valid");
    assert_eq!(config.poll_interval, std::time::Duration::from_secs(30));
    let debug = format!("{config:?}");
    assert!(!debug.contains("very-secret") && debug.contains("eu-west-1"), "{debug}");
    let poller = ObjectPoller::new(config).expect("s3 poller");
    assert_eq!(poller.root, "s3://flow-logs");
    assert_eq!(
        poller.prefix.as_ref().map(|p| p.as_ref()),
        Some("AWSLogs/123456789012/vpcflowlogs")
    );

    for (url, needle) in [
        ("ftp://host/x", "unsupported scheme"),
        ("not a url", "bad URL"),
        ("s3:///prefix-only", "no bucket"),
    ] {
        let err = ObjectPoller::new(ObjectSourceConfig::new(url)).expect_err(url).to_string();
        assert!(err.contains(needle) && err.starts_with(url), "{url}: {err}");
    }
    let mut typo = ObjectSourceConfig::new("az://container/insights-logs");
    typo.options.set("acount_name", "x");
    let err = ObjectPoller::new(typo).expect_err("typo").to_string();
    assert!(err.contains("acount_name"), "{err}");
    let mut zero = ObjectSourceConfig::new("gs://bucket/p");
    zero.max_objects_per_poll = 0;
    assert!(zero.validate().is_err());
    assert!(serde_json::from_str::<ObjectSourceConfig>(r#"{"url": "s3://b", "typo": 1}"#).is_err());
    let mut azure = ObjectSourceConfig::new(
        "az://insights-logs-networksecuritygroupflowevent/resourceId=/SUBSCRIPTIONS/",
    );
    azure.options.set("account_name", "devstoreaccount1");
    azure.options.set("access_key", "a2V5");
    let poller = ObjectPoller::new(azure).expect("azure poller");
    assert_eq!(poller.root, "az://insights-logs-networksecuritygroupflowevent");
}
