//! The Kafka consumer: a poll thread that hands batches of messages to the pipeline over a
//! bounded channel, and the rebalance handshakes that keep the lake and the group consistent.
//!
//! One [`KafkaSource`] owns one librdkafka consumer. Its poll thread is the only thread that
//! polls, so every rebalance callback runs there, in order with the batches: a revocation is
//! always delivered after every batch holding messages of the revoked partitions. See the
//! [module docs](super) for the protocol the owner follows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::config::KafkaConfig;
use super::offsets::{OffsetSpan, OffsetTracker, PartitionId, PartitionSpan, held_by_lake};
use crate::{Error, Opened, ReadOptions, Result};

/// One Kafka message handed to the pipeline.
#[derive(Debug, Clone)]
pub struct KafkaMessage {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset: the record position (the `@offset` of the `source` column).
    pub offset: i64,
    /// Message timestamp (create or log-append time), milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The payload: one record, many lines, or a gzip/zstd body (CloudWatch Logs subscription
    /// data through Firehose); empty for a tombstone.
    pub payload: Bytes,
}

impl KafkaMessage {
    /// The partition of the message.
    pub fn partition_id(&self) -> PartitionId {
        PartitionId::new(&*self.topic, self.partition)
    }

    /// The message timestamp in microseconds, for `SourceInfo::delivered`.
    pub fn delivered_micros(&self) -> Option<i64> {
        self.timestamp_ms.and_then(|ms| ms.checked_mul(1000))
    }

    /// `topic/partition@offset`, for errors.
    pub fn position(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }

    /// The payload as a stream to frame with [`Opened::into_records`]: gzip and zstd are
    /// detected and decompressed under `opts.max_decompressed_bytes`, exactly as for files.
    ///
    /// # Errors
    /// Only a zstd decoder set-up failure ([`Error::Decompress`]); damage inside the payload
    /// ends the records with a `Frame::Broken`.
    pub fn open(&self, opts: &ReadOptions) -> Result<Opened> {
        crate::open_bytes(self.payload.clone(), self.position(), opts)
    }
}

/// Messages handed out together, in poll order (per partition, in offset order).
#[derive(Debug, Default)]
pub struct MessageBatch {
    /// The messages.
    pub messages: Vec<KafkaMessage>,
    bytes: usize,
}

impl MessageBatch {
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the batch holds no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Payload bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Per partition, the offsets of the batch (first..=last): what to pass to
    /// [`KafkaSource::mark_durable`] once the batch's rows are committed, and, per partition,
    /// `last` is the `txn` version that commit records.
    pub fn spans(&self) -> Vec<PartitionSpan> {
        let mut spans: Vec<PartitionSpan> = Vec::new();
        for m in &self.messages {
            match spans
                .iter_mut()
                .find(|s| s.partition.partition == m.partition && *s.partition.topic == *m.topic)
            {
                Some(s) => {
                    s.span.first = s.span.first.min(m.offset);
                    s.span.last = s.span.last.max(m.offset);
                }
                None => spans.push(PartitionSpan {
                    partition: m.partition_id(),
                    span: OffsetSpan { first: m.offset, last: m.offset },
                }),
            }
        }
        spans
    }
}

/// Partitions assigned to this consumer: the owner looks up what the lake already holds and
/// answers with [`Assignment::resume`]. Until it answers (or `rebalance_timeout` passes) the
/// consumer does not start fetching them.
#[derive(Debug)]
pub struct Assignment {
    partitions: Vec<PartitionId>,
    group: String,
    reply: SyncSender<HashMap<PartitionId, i64>>,
}

impl Assignment {
    /// The partitions assigned.
    pub fn partitions(&self) -> &[PartitionId] {
        &self.partitions
    }

    /// Their source keys (`kafka:<group>/<topic>/<partition>`), the `txn` appIds to look up.
    pub fn source_keys(&self) -> Vec<String> {
        self.partitions.iter().map(|p| p.source_key(&self.group)).collect()
    }

    /// Resume every partition after the highest offset the lake holds for it.
    /// `lake_versions` maps source keys to that offset — for a pipeline writing several tables,
    /// the smallest `txn` version over the tables, and no entry when a table lacks the key (see
    /// [`super::lake_version`]). A partition without an entry starts from the group's committed
    /// offset (only a hint: it never runs ahead of the lake), or `auto.offset.reset`.
    pub fn resume(self, lake_versions: &HashMap<String, i64>) {
        let versions = self
            .partitions
            .iter()
            .filter_map(|p| lake_versions.get(&p.source_key(&self.group)).map(|&v| (p.clone(), v)))
            .collect();
        // The poll thread may have given up waiting; nothing to do then.
        let _ = self.reply.send(versions);
    }

    /// Resume every partition from the group's committed offsets (no lake knowledge). Dropping
    /// the assignment does the same.
    pub fn resume_from_committed(self) {
        let _ = self.reply.send(HashMap::new());
    }
}

/// Partitions being taken away: the owner commits to the lake every row it holds of them (in
/// practice: flushes everything), marks those offsets durable, then calls
/// [`Revocation::done`]. The consumer then commits the durable offsets of these partitions and
/// lets them go. The owner must not commit rows of these partitions to the lake after `done`
/// (another consumer owns them by then).
#[derive(Debug)]
pub struct Revocation {
    partitions: Vec<PartitionId>,
    lost: bool,
    done: SyncSender<()>,
}

impl Revocation {
    /// The partitions revoked.
    pub fn partitions(&self) -> &[PartitionId] {
        &self.partitions
    }

    /// Whether the assignment was lost (session timeout, fenced) rather than revoked in order:
    /// another consumer may already read these partitions, and offsets cannot be committed.
    pub fn lost(&self) -> bool {
        self.lost
    }

    /// The owner has flushed and committed; the consumer may let the partitions go. Dropping
    /// the revocation does the same.
    pub fn done(self) {
        let _ = self.done.send(());
    }
}

/// What the consumer hands to its owner, in order.
#[derive(Debug)]
pub enum KafkaEvent {
    /// Messages to parse and commit.
    Batch(MessageBatch),
    /// Partitions assigned: answer with lake versions.
    Assigned(Assignment),
    /// Partitions revoked: flush, commit, mark durable, then `done()`.
    Revoked(Revocation),
    /// The client failed for good (a fatal librdkafka error); no event follows.
    Failed(Error),
}

/// Counters of a source.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KafkaStats {
    /// Messages handed out.
    pub messages: u64,
    /// Messages skipped because the lake already holds them.
    pub skipped_in_lake: u64,
    /// Batches handed out.
    pub batches: u64,
    /// Rebalances: assignments and revocations seen.
    pub assignments: u64,
    /// Revocations seen.
    pub revocations: u64,
    /// Client errors reported (transient ones included).
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    skipped_in_lake: AtomicU64,
    batches: AtomicU64,
    assignments: AtomicU64,
    revocations: AtomicU64,
    errors: AtomicU64,
}

/// The batch being filled by the poll thread.
#[derive(Default)]
struct Building {
    batch: MessageBatch,
    started: Option<Instant>,
    /// Last offset taken per partition, to drop redeliveries (a fast hasher; the keys are
    /// assigned partitions, not message content). The partition of the run being read is not
    /// in it but in `run`.
    last: foldhash::HashMap<PartitionId, i64>,
    /// The partition of the current run of messages and its last offset taken: compared per
    /// message without hashing; put back into `last` when the run ends.
    run: Option<(PartitionId, i64)>,
}

/// State shared by the poll thread (and its rebalance callbacks) and the owner's handle.
struct Shared {
    config: KafkaConfig,
    tracker: Mutex<OffsetTracker>,
    building: Mutex<Building>,
    events: Mutex<Option<mpsc::Sender<KafkaEvent>>>,
    stop: AtomicBool,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these structures half-updated in a way that
    // matters more than stopping would; keep going with the data.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn kafka_error(&self, op: &'static str, topic: Option<String>, cause: KafkaError) -> Error {
        Error::Kafka {
            brokers: self.config.brokers.clone(),
            group: self.config.group_id.clone(),
            topic,
            op,
            cause: Box::new(cause),
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<KafkaEvent>> {
        if self.stop.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.events).clone()
    }

    /// Send an event from the poll thread, waiting while the queue is full. False when the
    /// owner is gone or closing.
    fn send(&self, event: KafkaEvent) -> bool {
        match self.sender() {
            Some(tx) => tx.blocking_send(event).is_ok(),
            None => false,
        }
    }

    /// Take a message of partition `id` into the batch being built; true when the batch
    /// should go now. `waited`: the message came from a poll that waited (the clock is read
    /// then; while messages stream in, every few messages).
    fn push(&self, message: KafkaMessage, id: &PartitionId, waited: bool) -> bool {
        let mut b = lock(&self.building);
        let b = &mut *b;
        let last = match &mut b.run {
            Some((run, last)) if run == id => last,
            run => {
                if let Some((ended, last)) = run.take() {
                    b.last.insert(ended, last);
                }
                let last = b.last.remove(id).unwrap_or(i64::MIN);
                &mut run.insert((id.clone(), last)).1
            }
        };
        if message.offset <= *last {
            tracing::debug!(position = %message.position(), "dropping a redelivered message");
            return false;
        }
        *last = message.offset;
        b.batch.bytes += message.payload.len();
        b.batch.messages.push(message);
        let started = *b.started.get_or_insert_with(Instant::now);
        let n = b.batch.messages.len();
        n >= self.config.max_batch_records
            || b.batch.bytes >= self.config.max_batch_bytes
            || ((waited || n.is_multiple_of(CLOCK_EVERY))
                && started.elapsed() >= self.config.max_batch_wait)
    }

    /// Hand the batch being built to the owner (registering its spans with the tracker).
    fn flush(&self) -> bool {
        let mut batch = {
            let mut b = lock(&self.building);
            b.started = None;
            b.last.clear();
            b.run = None;
            // The next batch is sized like this one: no regrowth, message by message.
            let size = b.batch.messages.len();
            std::mem::replace(
                &mut b.batch,
                MessageBatch { messages: Vec::with_capacity(size), bytes: 0 },
            )
        };
        if batch.is_empty() {
            return true;
        }
        {
            let mut tracker = lock(&self.tracker);
            for s in batch.spans() {
                if let Err(e) = tracker.hand_out(&s.partition, s.span.first, s.span.last) {
                    // Not assigned any more, or behind what was handed out: not ours to hand.
                    tracing::warn!(error = %e, "dropping messages the consumer does not own");
                    batch.messages.retain(|m| {
                        !(m.partition == s.partition.partition && *m.topic == *s.partition.topic)
                    });
                }
            }
        }
        if batch.is_empty() {
            return true;
        }
        batch.bytes = batch.messages.iter().map(|m| m.payload.len()).sum();
        self.counters.messages.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.send(KafkaEvent::Batch(batch))
    }

    /// Commit the durable prefix of `only` (or of every partition) with a synchronous commit.
    fn commit_durable(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        only: Option<&[PartitionId]>,
    ) -> Result<Vec<(PartitionId, i64)>> {
        let commits: Vec<(PartitionId, i64)> = lock(&self.tracker)
            .commits()
            .into_iter()
            .filter(|(p, _)| only.is_none_or(|only| only.contains(p)))
            .collect();
        if commits.is_empty() {
            return Ok(commits);
        }
        let mut tpl = TopicPartitionList::new();
        for (p, offset) in &commits {
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(*offset))
                .map_err(|e| self.kafka_error("commit offsets", Some(p.to_string()), e))?;
        }
        let topics = commits.iter().map(|(p, o)| format!("{p}@{o}")).collect::<Vec<_>>().join(",");
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| self.kafka_error("commit offsets", Some(topics), e))?;
        let mut tracker = lock(&self.tracker);
        for (p, offset) in &commits {
            tracker.committed(p, *offset);
        }
        tracing::debug!(commits = ?commits, "committed offsets");
        Ok(commits)
    }

    fn on_assign(&self, consumer: &BaseConsumer<SourceContext>, tpl: &mut TopicPartitionList) {
        self.counters.assignments.fetch_add(1, Ordering::Relaxed);
        let partitions = partitions_of(tpl);
        let mut versions = HashMap::new();
        let (reply, answer) = sync_channel(1);
        let assignment = Assignment {
            partitions: partitions.clone(),
            group: self.config.group_id.clone(),
            reply,
        };
        if self.send(KafkaEvent::Assigned(assignment)) {
            match answer.recv_timeout(self.config.rebalance_timeout) {
                Ok(v) => versions = v,
                Err(RecvTimeoutError::Timeout) => tracing::warn!(
                    source = %self.config.display(),
                    "no answer to an assignment within the rebalance timeout; resuming from the committed offsets"
                ),
                Err(RecvTimeoutError::Disconnected) => {}
            }
        }
        {
            let mut tracker = lock(&self.tracker);
            for p in &partitions {
                let version = versions.get(p).copied();
                tracker.assign(p.clone(), version);
                if let Some(v) = version {
                    let seek = Offset::Offset(v.saturating_add(1));
                    if let Err(e) = tpl.set_partition_offset(&p.topic, p.partition, seek) {
                        tracing::warn!(partition = %p, error = %e, "cannot set the start offset");
                    }
                }
            }
        }
        tracing::info!(source = %self.config.display(), partitions = ?partitions, lake_versions = ?versions, "partitions assigned");
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(e) = result {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(source = %self.config.display(), error = %e, "assign failed");
        }
    }

    fn on_revoke(&self, consumer: &BaseConsumer<SourceContext>, tpl: &TopicPartitionList) {
        self.counters.revocations.fetch_add(1, Ordering::Relaxed);
        let partitions = partitions_of(tpl);
        let lost = consumer.assignment_lost();
        // Everything read so far goes to the owner first, then the revocation.
        if self.flush() {
            let (done, answer) = sync_channel(1);
            let revocation = Revocation { partitions: partitions.clone(), lost, done };
            if self.send(KafkaEvent::Revoked(revocation))
                && let Err(RecvTimeoutError::Timeout) =
                    answer.recv_timeout(self.config.rebalance_timeout)
            {
                tracing::warn!(
                    source = %self.config.display(),
                    "no answer to a revocation within the rebalance timeout; committing what is durable"
                );
            }
        }
        if !lost && let Err(e) = self.commit_durable(consumer, Some(&partitions)) {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "offset commit on revocation failed");
        }
        {
            let mut tracker = lock(&self.tracker);
            for p in &partitions {
                tracker.revoke(p);
            }
        }
        tracing::info!(source = %self.config.display(), partitions = ?partitions, lost, "partitions revoked");
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = result {
            tracing::warn!(source = %self.config.display(), error = %e, "unassign failed");
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<PartitionId> {
    tpl.elements().iter().map(|e| PartitionId::new(e.topic(), e.partition())).collect()
}

/// The librdkafka context: logs into `tracing`, runs the rebalance handshakes.
struct SourceContext {
    shared: Arc<Shared>,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let source = self.shared.config.display();
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(%source, fac, "{message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(%source, fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(%source, fac, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(%source, fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(source = %self.shared.config.display(), %error, reason, "kafka client error");
    }
}

impl ConsumerContext for SourceContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.shared.on_assign(consumer, tpl)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.shared.on_revoke(consumer, tpl)
            }
            other => {
                self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(source = %self.shared.config.display(), error = ?other, "rebalance error");
                let all: Vec<PartitionId> =
                    lock(&self.shared.tracker).partitions().cloned().collect();
                let mut tracker = lock(&self.shared.tracker);
                for p in &all {
                    tracker.revoke(p);
                }
                drop(tracker);
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassign after a rebalance error failed");
                }
            }
        }
    }
}

/// A Kafka source: a consumer group member whose messages arrive as [`KafkaEvent`]s. See the
/// [module docs](super).
pub struct KafkaSource {
    consumer: Option<Arc<BaseConsumer<SourceContext>>>,
    shared: Arc<Shared>,
    events: mpsc::Receiver<KafkaEvent>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// Validates `config`, creates the consumer, subscribes to the topics and starts the poll
    /// thread. Nothing is fetched before the first assignment is answered.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad configuration, [`Error::Kafka`] when the client cannot be
    /// created or cannot subscribe.
    pub fn start(config: KafkaConfig) -> Result<KafkaSource> {
        config.validate()?;
        let client_config = config.client_config()?;
        let (tx, rx) = mpsc::channel(config.queue_batches);
        let shared = Arc::new(Shared {
            config,
            tracker: Mutex::new(OffsetTracker::new()),
            building: Mutex::new(Building::default()),
            events: Mutex::new(Some(tx)),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let context = SourceContext { shared: Arc::clone(&shared) };
        let consumer: BaseConsumer<SourceContext> = client_config
            .create_with_context(context)
            .map_err(|e| shared.kafka_error("create consumer", None, e))?;
        let topics = shared.config.topic_names();
        consumer
            .subscribe(&topics)
            .map_err(|e| shared.kafka_error("subscribe", Some(topics.join(",")), e))?;
        let consumer = Arc::new(consumer);
        let thread = {
            let consumer = Arc::clone(&consumer);
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("ztlake-kafka".into())
                .spawn(move || poll_loop(consumer, shared))
                .map_err(|e| Error::Kafka {
                    brokers: String::new(),
                    group: String::new(),
                    topic: None,
                    op: "start poll thread",
                    cause: Box::new(e),
                })?
        };
        Ok(KafkaSource { consumer: Some(consumer), shared, events: rx, thread: Some(thread) })
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.shared.config
    }

    /// The next event; `None` once the consumer has stopped.
    pub async fn next_event(&mut self) -> Option<KafkaEvent> {
        self.events.recv().await
    }

    /// Mark offsets durable: their rows are committed to the lake. Spans of partitions no longer
    /// assigned are ignored.
    pub fn mark_durable(&self, spans: &[PartitionSpan]) {
        let mut tracker = lock(&self.shared.tracker);
        for s in spans {
            tracker.mark_durable(&s.partition, s.span.first, s.span.last);
        }
    }

    /// The partitions currently assigned.
    pub fn assigned(&self) -> Vec<PartitionId> {
        lock(&self.shared.tracker).partitions().cloned().collect()
    }

    /// The end of the durable prefix of `partition`, if known.
    pub fn durable_through(&self, partition: &PartitionId) -> Option<i64> {
        lock(&self.shared.tracker).durable_through(partition)
    }

    /// Commit to the group, per partition, the offset after its durable prefix (when it moved);
    /// returns what was committed. Runs the synchronous commit on a blocking thread.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the broker refuses or cannot be reached (retryable: the next commit
    /// covers the same offsets).
    pub async fn commit(&self) -> Result<Vec<(PartitionId, i64)>> {
        let Some(consumer) = self.consumer.clone() else { return Ok(Vec::new()) };
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || shared.commit_durable(&consumer, None)).await.map_err(
            |e| Error::Kafka {
                brokers: self.shared.config.brokers.clone(),
                group: self.shared.config.group_id.clone(),
                topic: None,
                op: "commit offsets",
                cause: Box::new(e),
            },
        )?
    }

    /// Counters so far.
    pub fn stats(&self) -> KafkaStats {
        let c = &self.shared.counters;
        KafkaStats {
            messages: c.messages.load(Ordering::Relaxed),
            skipped_in_lake: c.skipped_in_lake.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            assignments: c.assignments.load(Ordering::Relaxed),
            revocations: c.revocations.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    /// Stop: the poll thread commits the durable offsets, leaves the group (its partitions go to
    /// the other members) and ends. Call it after the last [`mark_durable`](Self::mark_durable);
    /// messages handed out but not durable are read again by the partition's next owner.
    ///
    /// # Errors
    /// [`Error::Kafka`] if the poll thread panicked.
    pub async fn close(mut self) -> Result<()> {
        self.stop();
        let thread = self.thread.take();
        let brokers = self.shared.config.brokers.clone();
        let group = self.shared.config.group_id.clone();
        tokio::task::spawn_blocking(move || thread.map(JoinHandle::join))
            .await
            .ok()
            .flatten()
            .transpose()
            .map_err(|_| Error::Kafka {
                brokers,
                group,
                topic: None,
                op: "close",
                cause: "the poll thread panicked".into(),
            })?;
        Ok(())
    }

    /// Signal the poll thread to stop and release everything it might wait for.
    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.consumer = None;
        self.events.close();
        // Pending assignments and revocations are answered by being dropped.
        while self.events.try_recv().is_ok() {}
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        // Without `close`, the poll thread finishes on its own (within one poll timeout).
        self.stop();
    }
}

/// Messages taken between two readings of the clock for `max_batch_wait`.
const CLOCK_EVERY: usize = 64;

/// Size of a block that payload copies are cut from.
const PAYLOAD_BLOCK: usize = 256 << 10;

/// The poll thread's copies of message payloads, cut from shared blocks: one allocation per
/// block instead of one per message, and one free (by whichever parse thread drops the block's
/// last message) instead of one per message on another thread's heap. A block lives while any
/// message cut from it does; payloads larger than a sixteenth of a block are copied alone.
#[derive(Default)]
struct Payloads {
    block: BytesMut,
}

impl Payloads {
    fn copy(&mut self, payload: &[u8]) -> Bytes {
        if payload.is_empty() {
            return Bytes::new();
        }
        if payload.len() > PAYLOAD_BLOCK / 16 {
            return Bytes::copy_from_slice(payload);
        }
        // After a split the block holds no bytes: its capacity is the room left.
        if self.block.capacity() < payload.len() {
            self.block = BytesMut::with_capacity(PAYLOAD_BLOCK);
        }
        self.block.extend_from_slice(payload);
        self.block.split().freeze()
    }
}

/// The partition the poll thread is reading a run of (see [`poll_loop`]).
struct Current {
    id: PartitionId,
    /// The address of librdkafka's topic object of its messages, compared (never followed)
    /// instead of the topic name, which would be measured, validated and compared per message.
    /// librdkafka frees a topic object only once none of its partitions is assigned, and every
    /// assignment change bumps the tracker's `changes` count, ending this run first: the same
    /// address with the same `seen` is the same topic.
    topic_object: usize,
    /// Its topic, interned.
    topic: Arc<str>,
    /// [`OffsetTracker::lake_floor`] of it, read when the tracker's `changes` count was `seen`.
    floor: Option<i64>,
    seen: u64,
}

/// The poll thread: poll, build batches, hand them out; rebalance callbacks run inside `poll`.
fn poll_loop(consumer: Arc<BaseConsumer<SourceContext>>, shared: Arc<Shared>) {
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    // The partition of the last message, its interned topic and what the lake held of it (as
    // of the tracker's `changes` count): messages come in runs of one partition, so none of
    // them is looked up per message.
    let mut current: Option<Current> = None;
    let changes = lock(&shared.tracker).changes();
    let mut payloads = Payloads::default();
    // While messages flow, the next one is asked for without a timeout (no clock reading in
    // librdkafka); only when none is queued does the poll wait.
    let mut flowing = false;
    while !shared.stop.load(Ordering::Acquire) {
        let mut polled = if flowing { consumer.poll(Duration::ZERO) } else { None };
        let waited = polled.is_none();
        if waited {
            polled = consumer.poll(shared.config.poll_timeout);
        }
        flowing = matches!(polled, Some(Ok(_)));
        let ready = match polled {
            None => !lock(&shared.building).batch.is_empty(),
            Some(Ok(m)) => {
                let seen = changes.load(Ordering::Acquire);
                let topic_object = m.topic_ptr() as usize;
                let same = current.as_ref().is_some_and(|c| {
                    c.id.partition == m.partition()
                        && c.topic_object == topic_object
                        && c.seen == seen
                });
                let Current { id, topic, floor, .. } = match &mut current {
                    Some(c) if same => c,
                    _ => {
                        let topic = match topics.get(m.topic()) {
                            Some(t) => Arc::clone(t),
                            None => {
                                let t: Arc<str> = Arc::from(m.topic());
                                topics.insert(m.topic().to_owned(), Arc::clone(&t));
                                t
                            }
                        };
                        let id = PartitionId::new(m.topic(), m.partition());
                        let floor = lock(&shared.tracker).lake_floor(&id);
                        current.insert(Current { id, topic_object, topic, floor, seen })
                    }
                };
                if held_by_lake(*floor, m.offset()) {
                    shared.counters.skipped_in_lake.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let message = KafkaMessage {
                    topic: Arc::clone(topic),
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp_ms: m.timestamp().to_millis(),
                    payload: m.payload().map(|p| payloads.copy(p)).unwrap_or_default(),
                };
                shared.push(message, id, waited)
            }
            Some(Err(e)) => {
                shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                if let Some((code, reason)) = consumer.client().fatal_error() {
                    let error =
                        shared.kafka_error("consume", None, KafkaError::MessageConsumption(code));
                    tracing::error!(%error, reason, "fatal kafka error; the source stops");
                    shared.flush();
                    shared.send(KafkaEvent::Failed(error));
                    break;
                }
                tracing::warn!(source = %shared.config.display(), error = %e, "consume error");
                false
            }
        };
        if ready && !shared.flush() {
            break;
        }
    }
    // Shutting down: commit what is durable; dropping the consumer (when this is the last
    // handle) leaves the group, and the revocation it triggers commits again and asks nobody.
    shared.stop.store(true, Ordering::Release);
    if let Err(e) = shared.commit_durable(&consumer, None) {
        tracing::warn!(error = %e, "final offset commit failed");
    }
    lock(&shared.events).take();
    drop(consumer);
}

#[cfg(test)]
mod payload_tests {
    use super::{PAYLOAD_BLOCK, Payloads};

    #[test]
    fn payload_copies_are_cut_from_shared_blocks_and_outlive_them() {
        let mut payloads = Payloads::default();
        let records: Vec<Vec<u8>> = (0..5_000u32)
            .map(|i| format!("record {i} {}", "x".repeat((i % 300) as usize)).into_bytes())
            .collect();
        let copies: Vec<_> = records.iter().map(|r| payloads.copy(r)).collect();
        for (record, copy) in records.iter().zip(&copies) {
            assert_eq!(copy.as_ref(), record.as_slice());
        }
        // Neighbours share a block: the second copy starts where the first ends.
        assert_eq!(copies[0].as_ptr().wrapping_add(copies[0].len()), copies[1].as_ptr());
        // More than one block was used, and the copies of the old blocks are still whole.
        let bytes: usize = records.iter().map(Vec::len).sum();
        assert!(bytes > 2 * PAYLOAD_BLOCK, "the test must fill several blocks");
        assert_eq!(copies[0].as_ref(), records[0].as_slice());
        // Empty payloads and large ones stand alone.
        assert!(payloads.copy(b"").is_empty());
        let large = vec![7u8; PAYLOAD_BLOCK];
        let copy = payloads.copy(&large);
        assert_eq!(copy.as_ref(), large.as_slice());
        let next = payloads.copy(b"after");
        assert_eq!(next.as_ref(), b"after");
        assert_ne!(copy.as_ptr().wrapping_add(copy.len()), next.as_ptr());
    }
}

#[cfg(test)]
mod push_tests {
    use super::*;

    fn shared() -> Shared {
        let config: KafkaConfig =
            serde_json::from_str(r#"{"brokers": "localhost:9092", "group_id": "g", "topics": [{"name": "a"}, {"name": "b"}]}"#)
                .unwrap();
        Shared {
            config,
            tracker: Mutex::new(OffsetTracker::new()),
            building: Mutex::new(Building::default()),
            events: Mutex::new(None),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    fn message(topic: &Arc<str>, partition: i32, offset: i64) -> KafkaMessage {
        KafkaMessage {
            topic: Arc::clone(topic),
            partition,
            offset,
            timestamp_ms: None,
            payload: Bytes::from(format!("{topic}-{partition}@{offset}")),
        }
    }

    #[test]
    fn redeliveries_are_dropped_across_interleaved_partition_runs() {
        let shared = shared();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        // Runs of one partition, interleaved; partition 0 of both topics shares its number.
        let pushes = [
            (&a, 0, 1, true),
            (&a, 0, 2, true),
            (&b, 0, 1, true),
            (&a, 0, 2, false), // redelivered after another partition's run
            (&a, 0, 3, true),
            (&a, 1, 7, true),
            (&b, 0, 1, false),
            (&b, 0, 0, false),
            (&b, 0, 2, true),
            (&a, 1, 7, false),
        ];
        for &(topic, partition, offset, _) in &pushes {
            let id = PartitionId::new(&**topic, partition);
            assert!(!shared.push(message(topic, partition, offset), &id, false));
        }
        let building = lock(&shared.building);
        let taken: Vec<(String, i32, i64)> = building
            .batch
            .messages
            .iter()
            .map(|m| (m.topic.to_string(), m.partition, m.offset))
            .collect();
        let expected: Vec<(String, i32, i64)> = pushes
            .iter()
            .filter(|p| p.3)
            .map(|&(topic, partition, offset, _)| (topic.to_string(), partition, offset))
            .collect();
        assert_eq!(taken, expected);
    }
}
