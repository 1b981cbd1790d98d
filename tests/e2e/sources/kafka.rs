//! Kafka: the mock broker lives in the `ztlake-mock-kafka` helper process, so consumers can
//! crash and restart while the broker keeps messages and committed offsets. The lake (txns per
//! partition) is the source of truth: a replay after a crash commits nothing twice.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use ztlake_ingest::kafka::rdkafka::ClientConfig;
use ztlake_ingest::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use ztlake_ingest::kafka::{
    KafkaConfig, KafkaEvent, KafkaSource, MessageBatch, PartitionId, lake_version,
};
use ztlake_ingest::{Frame, Framing, ReadOptions};
use ztlake_normalize::Table;
use ztlake_storage::{CommitOutcome, Lake, Txn};

use super::{txns_per_table, unique};

const DEADLINE: Duration = Duration::from_secs(90);

/// The helper process hosting librdkafka's mock cluster.
struct MockKafka {
    child: Child,
    stdin: Option<ChildStdin>,
    bootstrap: String,
}

impl MockKafka {
    fn start(topics: &[&str]) -> MockKafka {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ztlake-mock-kafka"));
        for t in topics {
            command.args(["--topic", t]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ztlake-mock-kafka");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the helper prints its address");
        let bootstrap = line
            .trim()
            .strip_prefix("bootstrap=")
            .unwrap_or_else(|| panic!("unexpected helper output {line:?}"))
            .to_owned();
        let stdin = child.stdin.take();
        MockKafka { child, stdin, bootstrap }
    }

    /// Close the helper's stdin and wait (deadline-bounded) for it to exit on its own.
    fn stop(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the helper did not exit when stdin closed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Message `i` of partition `p`: two lines, every third message gzip'd (as CloudWatch Logs
/// subscription data arrives through Firehose).
fn payload(p: i32, i: usize) -> Vec<u8> {
    let text = format!("p{p}-m{i}-a\np{p}-m{i}-b\n");
    if i.is_multiple_of(3) {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).expect("gzip");
        enc.finish().expect("gzip")
    } else {
        text.into_bytes()
    }
}

fn produce(bootstrap: &str, topic: &str, partitions: i32, range: std::ops::Range<usize>) {
    let producer: BaseProducer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("producer");
    for p in 0..partitions {
        for i in range.clone() {
            let body = payload(p, i);
            producer
                .send(BaseRecord::<(), _>::to(topic).partition(p).payload(&body))
                .expect("send");
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

fn config(bootstrap: &str, group: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(bootstrap, group, &["flows"]);
    config.properties.set("heartbeat.interval.ms", "200");
    config.properties.set("session.timeout.ms", "6000");
    config.poll_timeout = Duration::from_millis(50);
    config.max_batch_records = 8;
    config
}

/// The lines of a batch, framed from each message as the pipeline frames it.
fn lines(batch: &MessageBatch) -> Vec<String> {
    let opts = ReadOptions::default();
    let mut out = Vec::new();
    for m in &batch.messages {
        let mut records = m.open(&opts).expect("open").into_records(Framing::Lines, &opts);
        while let Some(frame) = records.next_record() {
            match frame {
                Frame::Record { bytes, .. } => {
                    out.push(String::from_utf8_lossy(bytes).into_owned())
                }
                other => panic!("{}: {other:?}", m.position()),
            }
        }
    }
    out
}

/// What the lake holds per partition key (smallest version over the data tables).
async fn lake_versions(lake: &Lake, keys: &[String]) -> HashMap<String, i64> {
    let tables = txns_per_table(lake).await;
    keys.iter().filter_map(|k| lake_version(&tables, k).map(|v| (k.clone(), v))).collect()
}

/// Commit a batch "to the lake" as the pipeline does: one txn per partition (version = last
/// offset) in every data table. Returns whether the first table committed.
async fn commit_batch(lake: &Lake, group: &str, batch: &MessageBatch) -> bool {
    let txns: Vec<Txn> = batch
        .spans()
        .iter()
        .map(|s| Txn::new(s.partition.source_key(group), s.span.last))
        .collect();
    let mut first = None;
    for table in Table::DATA {
        let outcome =
            lake.commit(table, vec![], txns.clone(), serde_json::Map::new()).await.expect("commit");
        first.get_or_insert(matches!(outcome, CommitOutcome::Committed { .. }));
    }
    first.unwrap_or(false)
}

/// Offsets whose lines were committed, per partition, and the lines.
#[derive(Default)]
struct Ledger {
    offsets: BTreeMap<PartitionId, Vec<i64>>,
    lines: usize,
}

impl Ledger {
    fn add(&mut self, batch: &MessageBatch) {
        for m in &batch.messages {
            self.offsets.entry(m.partition_id()).or_default().push(m.offset);
        }
        self.lines += lines(batch).len();
    }

    fn total(&self) -> usize {
        self.offsets.values().map(Vec::len).sum()
    }
}

async fn next(source: &mut KafkaSource, deadline: Instant) -> KafkaEvent {
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, source.next_event())
        .await
        .expect("no kafka event before the deadline")
        .expect("the source stopped")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_lake_commit_replays_nothing_twice() {
    let broker = MockKafka::start(&["flows:2"]);
    produce(&broker.bootstrap, "flows", 2, 0..30);
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake").to_str().expect("utf8")).await.expect("lake");
    let group = unique("e2e");
    let mut ledger = Ledger::default();
    let mut crashed_batches = Vec::new();

    // Run 1: commits batches of both partitions to the lake, then "crashes" before any Kafka
    // offset commit.
    let mut source = KafkaSource::start(config(&broker.bootstrap, &group)).expect("start");
    let deadline = Instant::now() + DEADLINE;
    while ledger.offsets.len() < 2 {
        match next(&mut source, deadline).await {
            KafkaEvent::Assigned(a) => {
                let versions = lake_versions(&lake, &a.source_keys()).await;
                assert!(versions.is_empty(), "a fresh lake holds nothing");
                a.resume(&versions);
            }
            KafkaEvent::Batch(batch) => {
                assert!(commit_batch(&lake, &group, &batch).await);
                ledger.add(&batch);
                crashed_batches.push(batch);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(ledger.total() < 60, "run 1 must leave work for run 2");
    drop(source);

    // The replay of a committed batch commits nothing.
    for batch in &crashed_batches {
        assert!(!commit_batch(&lake, &group, batch).await, "a replay committed again");
    }

    // Run 2: the group has no committed offset, but the lake is the truth: resume after it.
    let mut source = KafkaSource::start(config(&broker.bootstrap, &group)).expect("restart");
    let deadline = Instant::now() + DEADLINE;
    let mut resumed_at = HashMap::new();
    while ledger.total() < 60 {
        match next(&mut source, deadline).await {
            KafkaEvent::Assigned(a) => {
                let versions = lake_versions(&lake, &a.source_keys()).await;
                assert_eq!(versions.len(), 2, "both partitions are in the lake: {versions:?}");
                resumed_at = versions.clone();
                a.resume(&versions);
            }
            KafkaEvent::Batch(batch) => {
                for m in &batch.messages {
                    let key = m.partition_id().source_key(&group);
                    assert!(
                        m.offset > resumed_at[&key],
                        "{} was already in the lake",
                        m.position()
                    );
                }
                assert!(commit_batch(&lake, &group, &batch).await);
                source.mark_durable(&batch.spans());
                source.commit().await.expect("commit offsets");
                ledger.add(&batch);
            }
            KafkaEvent::Revoked(r) => r.done(),
            KafkaEvent::Failed(e) => panic!("{e}"),
        }
    }
    source.close().await.expect("close");
    for (partition, offsets) in &ledger.offsets {
        assert_eq!(offsets, &(0..30).collect::<Vec<i64>>(), "{partition}: each offset once");
    }
    assert_eq!(ledger.lines, 120, "two lines per message, gzip'd ones included");
    let tables = txns_per_table(&lake).await;
    for p in 0..2 {
        let key = PartitionId::new("flows", p).source_key(&group);
        assert_eq!(lake_version(&tables, &key), Some(29));
    }

    // Run 3: everything is committed (lake and group): only new messages arrive.
    let mut source = KafkaSource::start(config(&broker.bootstrap, &group)).expect("third");
    let deadline = Instant::now() + DEADLINE;
    match next(&mut source, deadline).await {
        // No lake answer this time: the group's committed offsets (30) must hold.
        KafkaEvent::Assigned(a) => a.resume_from_committed(),
        other => panic!("unexpected {other:?}"),
    }
    produce(&broker.bootstrap, "flows", 2, 30..31);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next(&mut source, deadline).await {
            KafkaEvent::Batch(batch) => seen.extend(batch.messages.iter().map(|m| m.offset)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, [30, 30]);
    source.close().await.expect("close");
    assert!(broker.stop().success(), "the helper exits cleanly when its stdin closes");
}
