//! The consumer against librdkafka's mock cluster, in process: resume after the committed
//! prefix, the lake as the source of truth, two members splitting the partitions, revocation.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tokio::sync::mpsc;

use super::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// Produce `count` messages `"<partition>-<i>"` to each partition of `topic`.
fn produce(bootstrap: &str, topic: &str, partitions: i32, count: usize) {
    let producer: BaseProducer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("producer");
    for p in 0..partitions {
        for i in 0..count {
            let payload = format!("{p}-{i}");
            producer
                .send(BaseRecord::<(), _>::to(topic).partition(p).payload(&payload))
                .expect("enqueue");
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Quick rebalances for tests.
fn config(bootstrap: &str, group: &str, topic: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(bootstrap, group, &[topic]);
    config.properties.set("heartbeat.interval.ms", "200");
    config.properties.set("session.timeout.ms", "6000");
    config.properties.set("topic.metadata.refresh.interval.ms", "500");
    config.poll_timeout = Duration::from_millis(50);
    config.max_batch_records = 7;
    config
}

/// What a driven source reports to the test.
#[derive(Debug)]
enum Seen {
    Assigned(Vec<PartitionId>),
    Revoked(Vec<PartitionId>),
    Message(PartitionId, i64),
}

/// Runs a source in a task: answers assignments with `lake` versions, revocations with done,
/// and (when `durable`) marks every batch durable and commits right away.
fn drive(
    mut source: KafkaSource,
    lake: HashMap<String, i64>,
    durable: bool,
) -> (
    mpsc::UnboundedReceiver<Seen>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<KafkaStats>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = &mut stop_rx => break,
                event = source.next_event() => event,
            };
            match event {
                None => break,
                Some(KafkaEvent::Assigned(a)) => {
                    let _ = tx.send(Seen::Assigned(a.partitions().to_vec()));
                    a.resume(&lake);
                }
                Some(KafkaEvent::Revoked(r)) => {
                    let _ = tx.send(Seen::Revoked(r.partitions().to_vec()));
                    // Committing from the owner while the poll thread waits in the rebalance
                    // callback must not deadlock.
                    if durable {
                        source.commit().await.expect("commit during revocation");
                    }
                    r.done();
                }
                Some(KafkaEvent::Batch(batch)) => {
                    for m in &batch.messages {
                        let _ = tx.send(Seen::Message(m.partition_id(), m.offset));
                    }
                    if durable {
                        source.mark_durable(&batch.spans());
                        source.commit().await.expect("commit");
                    }
                }
                Some(KafkaEvent::Failed(e)) => panic!("source failed: {e}"),
            }
        }
        let stats = source.stats();
        source.close().await.expect("close");
        stats
    });
    (rx, stop_tx, task)
}

/// Collect messages until `want` arrived (deadline-bounded); other events are kept too.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    want: usize,
) -> (Vec<Seen>, BTreeMap<PartitionId, Vec<i64>>) {
    let deadline = Instant::now() + DEADLINE;
    let mut events = Vec::new();
    let mut offsets: BTreeMap<PartitionId, Vec<i64>> = BTreeMap::new();
    let mut n = 0;
    while n < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("only {n} of {want} messages before the deadline: {events:?}")
            })
            .expect("driver ended");
        if let Seen::Message(p, o) = &event {
            offsets.entry(p.clone()).or_default().push(*o);
            n += 1;
        }
        events.push(event);
    }
    (events, offsets)
}

/// No message arrives within `quiet` (used after the expected ones, to prove there are no
/// extra ones).
async fn assert_no_more_messages(rx: &mut mpsc::UnboundedReceiver<Seen>, quiet: Duration) {
    let until = Instant::now() + quiet;
    while let Ok(Some(event)) =
        tokio::time::timeout(until.saturating_duration_since(Instant::now()), rx.recv()).await
    {
        assert!(!matches!(event, Seen::Message(..)), "unexpected {event:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_the_committed_prefix_and_after_the_lake() {
    let broker = MockBroker::start(1, &[("flows", 3)]).expect("mock");
    let bootstrap = broker.bootstrap_servers();
    produce(&bootstrap, "flows", 3, 10);

    // First member: reads everything, but only offsets 0..=5 of each partition become durable.
    let mut source = KafkaSource::start(config(&bootstrap, "g1", "flows")).expect("start");
    let mut batches = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let mut got = 0;
    while got < 30 {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, source.next_event())
            .await
            .expect("deadline")
            .expect("event")
        {
            KafkaEvent::Assigned(a) => {
                assert_eq!(a.partitions().len(), 3);
                assert_eq!(a.source_keys()[0], "kafka:g1/flows/0");
                a.resume(&HashMap::new());
            }
            KafkaEvent::Batch(b) => {
                assert!(b.len() <= 7, "batch cap");
                got += b.len();
                for m in &b.messages {
                    let want = format!("{}-{}", m.partition, m.offset);
                    assert_eq!(&m.payload[..], want.as_bytes());
                    assert!(m.timestamp_ms.is_some());
                }
                batches.push(b);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, 30);
    for p in 0..3 {
        source.mark_durable(&[PartitionSpan {
            partition: PartitionId::new("flows", p),
            span: OffsetSpan { first: 0, last: 5 },
        }]);
    }
    let committed = source.commit().await.expect("commit");
    assert_eq!(committed.len(), 3);
    assert!(committed.iter().all(|(_, offset)| *offset == 6), "{committed:?}");
    assert!(source.commit().await.expect("again").is_empty(), "nothing new to commit");
    source.close().await.expect("close");

    // A new member of the same group resumes exactly after the committed prefix — except where
    // the lake holds more (partition 1 through offset 8): the lake wins.
    let lake = HashMap::from([("kafka:g1/flows/1".to_owned(), 8)]);
    let (mut rx, stop, task) =
        drive(KafkaSource::start(config(&bootstrap, "g1", "flows")).expect("start"), lake, true);
    let (_, offsets) = collect(&mut rx, 9).await;
    assert_eq!(offsets[&PartitionId::new("flows", 0)], vec![6, 7, 8, 9]);
    assert_eq!(offsets[&PartitionId::new("flows", 1)], vec![9]);
    assert_eq!(offsets[&PartitionId::new("flows", 2)], vec![6, 7, 8, 9]);
    assert_no_more_messages(&mut rx, Duration::from_millis(500)).await;
    let _ = stop.send(());
    task.await.expect("driver");

    // Everything is committed now: a third member reads nothing old, then new messages only.
    let (mut rx, stop, task) = drive(
        KafkaSource::start(config(&bootstrap, "g1", "flows")).expect("start"),
        HashMap::new(),
        true,
    );
    let first = tokio::time::timeout(DEADLINE, rx.recv()).await.expect("deadline").expect("event");
    assert!(matches!(first, Seen::Assigned(_)), "{first:?}");
    produce(&bootstrap, "flows", 3, 1);
    let (_, offsets) = collect(&mut rx, 3).await;
    assert!(offsets.values().all(|o| o == &vec![10]), "{offsets:?}");
    let _ = stop.send(());
    task.await.expect("driver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_the_partitions_and_revocation_is_a_handshake() {
    let broker = MockBroker::start(1, &[("signins", 4)]).expect("mock");
    let bootstrap = broker.bootstrap_servers();
    produce(&bootstrap, "signins", 4, 5);

    let (mut rx_a, stop_a, task_a) = drive(
        KafkaSource::start(config(&bootstrap, "g2", "signins")).expect("a"),
        HashMap::new(),
        true,
    );
    let (events, _) = collect(&mut rx_a, 20).await;
    assert!(matches!(&events[0], Seen::Assigned(p) if p.len() == 4), "{events:?}");

    // The second member joins: A must give partitions up through the handshake.
    let (mut rx_b, stop_b, task_b) = drive(
        KafkaSource::start(config(&bootstrap, "g2", "signins")).expect("b"),
        HashMap::new(),
        true,
    );
    let deadline = Instant::now() + DEADLINE;
    let (mut a_revoked, mut a_now, mut b_now) = (false, Vec::new(), Vec::new());
    while !(a_revoked && !a_now.is_empty() && !b_now.is_empty()) {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            Some(e) = rx_a.recv() => match e {
                Seen::Revoked(p) => { assert!(!p.is_empty()); a_revoked = true; }
                Seen::Assigned(p) => a_now = p,
                Seen::Message(p, o) => panic!("A re-read {p}@{o}: offsets were committed"),
            },
            Some(e) = rx_b.recv() => match e {
                Seen::Assigned(p) => b_now = p,
                Seen::Message(p, o) => panic!("B read {p}@{o}: offsets were committed"),
                Seen::Revoked(_) => {}
            },
            _ = tokio::time::sleep(left) => panic!("no rebalance before the deadline: revoked {a_revoked}, A {a_now:?}, B {b_now:?}"),
        }
    }
    let mut all: Vec<PartitionId> = a_now.iter().chain(&b_now).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4, "A {a_now:?} B {b_now:?}");
    assert_eq!(a_now.len() + b_now.len(), 4, "no partition owned twice");

    // New messages go to whichever member owns their partition.
    produce(&bootstrap, "signins", 4, 1);
    let owner_a: Vec<i32> = a_now.iter().map(|p| p.partition).collect();
    let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + DEADLINE;
    while from_a.len() + from_b.len() < 4 {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            Some(Seen::Message(p, o)) = rx_a.recv() => { assert_eq!(o, 5); from_a.push(p.partition) }
            Some(Seen::Message(p, o)) = rx_b.recv() => { assert_eq!(o, 5); from_b.push(p.partition) }
            _ = tokio::time::sleep(left) => panic!("A {from_a:?} B {from_b:?}"),
        }
    }
    from_a.sort_unstable();
    let mut expect_a = owner_a.clone();
    expect_a.sort_unstable();
    assert_eq!(from_a, expect_a);
    assert_eq!(from_b.len(), 4 - owner_a.len());
    let _ = stop_a.send(());
    let _ = stop_b.send(());
    let stats = task_a.await.expect("a");
    assert!(stats.revocations >= 1 && stats.assignments >= 2, "{stats:?}");
    task_b.await.expect("b");
}

#[test]
fn lake_version_is_the_minimum_over_tables_and_needs_every_table() {
    let a = HashMap::from([("k".to_owned(), 10), ("j".to_owned(), 3)]);
    let b = HashMap::from([("k".to_owned(), 7)]);
    assert_eq!(lake_version(&[a.clone(), b.clone()], "k"), Some(7));
    assert_eq!(lake_version(&[a.clone(), b], "j"), None);
    assert_eq!(lake_version(&[a], "j"), Some(3));
    assert_eq!(lake_version(&[], "k"), None);
}
