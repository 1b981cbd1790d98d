//! Kafka source — stage 1 (ingest): Apache Kafka, Azure Event Hubs (Kafka endpoint), Amazon
//! MSK, Confluent Cloud, through librdkafka (`rdkafka`). Built with the `kafka` feature.
//!
//! # What it promises
//!
//! - **At-least-once, no duplicates in the lake.** Offsets are stored and committed only by
//!   ztlake (`enable.auto.commit=false`, `enable.auto.offset.store=false`). A partition's Kafka
//!   offset is committed only up to the contiguous prefix of offsets whose rows are durable in
//!   the lake ([`OffsetTracker`]). Each lake commit carries, per partition, a Delta `txn` whose
//!   appId is the partition's source key `kafka:<group>/<topic>/<partition>` and whose version
//!   is the highest offset it holds; on assignment the consumer starts after what the lake
//!   holds, whatever the group's committed offset says (the lake is the source of truth, the
//!   committed offset a hint), and skips any message at or below it.
//! - **Rebalances are handshakes** (below): partitions leave only after the owner flushed and
//!   committed their rows, and start only after the owner said what the lake holds.
//! - **Bounded memory**: batches are capped in messages and bytes and at most `queue_batches`
//!   wait for the pipeline; a full queue pauses polling.
//! - A message is framed like a file: [`KafkaMessage::open`] detects gzip/zstd (CloudWatch Logs
//!   subscription data delivered through Firehose) and the pipeline frames it with the same
//!   [`RecordReader`](crate::RecordReader) into one record or many lines.
//!
//! # Identity of a partition
//!
//! `SourceInfo { key: "kafka:<group>/<topic>/<partition>", name: "<topic>/<partition>",
//! separator: '@' }` ([`PartitionId::source_key`], [`PartitionId::source_name`],
//! [`POSITION_SEPARATOR`]); positions are offsets, so `source` reads `flows/3@1042`.
//!
//! # The owner's loop
//!
//! ```no_run
//! # async fn run(config: ztlake_ingest::kafka::KafkaConfig) -> ztlake_ingest::Result<()> {
//! use std::collections::HashMap;
//! use ztlake_ingest::kafka::{KafkaEvent, KafkaSource};
//!
//! let mut source = KafkaSource::start(config)?;
//! while let Some(event) = source.next_event().await {
//!     match event {
//!         KafkaEvent::Assigned(assignment) => {
//!             // Look up assignment.source_keys() in the lake's txns (the smallest version over
//!             // the tables, see `lake_version`), then:
//!             let lake_versions: HashMap<String, i64> = HashMap::new();
//!             assignment.resume(&lake_versions);
//!         }
//!         KafkaEvent::Batch(batch) => {
//!             // Parse batch.messages; when the rows are committed to the lake (txn version per
//!             // partition = the last offset of batch.spans()):
//!             source.mark_durable(&batch.spans());
//!             source.commit().await?;
//!         }
//!         KafkaEvent::Revoked(revocation) => {
//!             // Flush and commit every buffered row to the lake, mark it durable, then:
//!             revocation.done();
//!         }
//!         KafkaEvent::Failed(error) => return Err(error),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The handshakes run on the consumer's poll thread, inside librdkafka's rebalance callback:
//!
//! - **assign**: the consumer sends [`KafkaEvent::Assigned`] and waits (at most
//!   `rebalance_timeout`) for [`Assignment::resume`] with the lake versions; it then starts each
//!   partition at `version + 1` (partitions the lake does not know start at the committed offset
//!   or `auto.offset.reset`, default `earliest`).
//! - **revoke**: the consumer first hands out the partial batch it holds, then sends
//!   [`KafkaEvent::Revoked`] — after every batch with messages of those partitions — and waits
//!   (at most `rebalance_timeout`) for [`Revocation::done`]. It then commits the durable prefix of
//!   the revoked partitions and lets them go. Dropping the assignment or revocation answers too.
//!   When the assignment was lost ([`Revocation::lost`]: session timeout), nothing can be
//!   committed and another member may already be reading: the rows the owner still holds are
//!   committed to the lake only if the pipeline accepts a possible duplicate of that batch.
//!
//! # Configurations
//!
//! Azure Event Hubs (Standard tier or above; the event hub is the topic, the consumer group must
//! exist on the hub — `$Default` or one you created):
//!
//! ```json
//! {
//!   "brokers": "my-namespace.servicebus.windows.net:9093",
//!   "group_id": "$Default",
//!   "topics": [{ "name": "insights-logs-networksecuritygroupflowevent", "format": "azure-nsg-flow" },
//!              { "name": "entra-signins", "format": "auto" }],
//!   "properties": {
//!     "security.protocol": "SASL_SSL",
//!     "sasl.mechanism": "PLAIN",
//!     "sasl.username": "$ConnectionString",
//!     "sasl.password": { "env": "EVENTHUBS_CONNECTION_STRING" }
//!   }
//! }
//! ```
//!
//! Amazon MSK with SASL/SCRAM (IAM authentication is not supported; TLS client certificates
//! work with `security.protocol: SSL` and `ssl.certificate.location` / `ssl.key.location`):
//!
//! ```json
//! {
//!   "brokers": "b-1.mycluster.abc123.c2.kafka.eu-west-1.amazonaws.com:9096",
//!   "group_id": "ztlake",
//!   "topics": [{ "name": "vpc-flow-logs", "format": "aws-vpcflow" }],
//!   "properties": {
//!     "security.protocol": "SASL_SSL",
//!     "sasl.mechanism": "SCRAM-SHA-512",
//!     "sasl.username": "ztlake",
//!     "sasl.password": { "file": "/run/secrets/msk-password" }
//!   }
//! }
//! ```
//!
//! Confluent Cloud:
//!
//! ```json
//! {
//!   "brokers": "pkc-12345.europe-west1.gcp.confluent.cloud:9092",
//!   "group_id": "ztlake",
//!   "topics": [{ "name": "okta-system-log" }],
//!   "properties": {
//!     "security.protocol": "SASL_SSL",
//!     "sasl.mechanism": "PLAIN",
//!     "sasl.username": { "env": "CONFLUENT_API_KEY" },
//!     "sasl.password": { "env": "CONFLUENT_API_SECRET" }
//!   }
//! }
//! ```

mod config;
mod consumer;
mod mock;
mod offsets;

use std::collections::HashMap;

pub use config::{
    DEFAULT_FETCH_QUEUE_BACKOFF_MS, KafkaConfig, RESERVED_PROPERTIES, TopicConfig, default_format,
    default_max_batch_bytes, default_max_batch_records, default_max_batch_wait,
    default_poll_timeout, default_queue_batches, default_rebalance_timeout,
};
pub use consumer::{
    Assignment, KafkaEvent, KafkaMessage, KafkaSource, KafkaStats, MessageBatch, Revocation,
};
pub use mock::MockBroker;
pub use offsets::{OffsetSpan, OffsetTracker, PartitionId, PartitionSpan, TrackerError};
/// The Kafka client library, for callers that need its producer or admin API (tests, the
/// mock-broker helper).
pub use rdkafka;

/// Separator between a partition's name and the offset in the `source` column
/// (`topic/partition@offset`).
pub const POSITION_SEPARATOR: char = '@';

/// What the lake holds of the source `key`, given each table's `txn` versions (for instance
/// `Lake::txn_versions` of every data table): the smallest version over the tables, or `None`
/// when a table has none (that table's first commit for the source never happened, so the
/// source must be read again from the group's committed offset, which never runs ahead of any
/// table).
pub fn lake_version(per_table: &[HashMap<String, i64>], key: &str) -> Option<i64> {
    if per_table.is_empty() {
        return None;
    }
    per_table.iter().map(|versions| versions.get(key).copied()).min().flatten()
}

#[cfg(test)]
mod tests;
