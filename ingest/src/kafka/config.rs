//! Configuration of a Kafka source (also Azure Event Hubs' Kafka endpoint, Amazon MSK,
//! Confluent): serde structs with defaults, a `validate` step, and the librdkafka client
//! configuration they produce. See the [module docs](super) for examples.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::settings::{Properties, duration};
use crate::{Error, Result};

/// librdkafka properties ztlake sets itself; configuring them is an error.
pub const RESERVED_PROPERTIES: [&str; 5] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
];

/// A Kafka source: where to connect, which consumer group, which topics in which format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port` separated by commas (Event Hubs:
    /// `<namespace>.servicebus.windows.net:9093`).
    pub brokers: String,
    /// Consumer group: instances with the same group split the partitions between them. Part of
    /// every partition's source identity (`kafka:<group>/<topic>/<partition>`), so renaming the
    /// group makes the lake treat the partitions as new sources.
    pub group_id: String,
    /// Topics to read, each with the format of its messages.
    pub topics: Vec<TopicConfig>,
    /// librdkafka properties passed through as they are (`security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.location`, `session.timeout.ms`, …). A value is
    /// a string, a number, `{ "env": "VAR" }` or `{ "file": "PATH" }`; secrets are never
    /// printed. The properties in [`RESERVED_PROPERTIES`] are set by ztlake and refused here.
    /// Default `auto.offset.reset` is `earliest`.
    #[serde(default)]
    pub properties: Properties,
    /// Most messages in one batch handed to the pipeline (default 10 000).
    #[serde(default = "default_max_batch_records")]
    pub max_batch_records: usize,
    /// Most payload bytes in one batch (default 16 MiB); a single larger message still makes a
    /// batch of its own.
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: usize,
    /// How long one poll of the client waits for a message (default `"100ms"`): a partial batch
    /// is handed out when a poll comes back empty.
    #[serde(default = "default_poll_timeout", with = "duration")]
    pub poll_timeout: Duration,
    /// Longest time a partial batch waits for more messages while they keep trickling in
    /// (default `"1s"`).
    #[serde(default = "default_max_batch_wait", with = "duration")]
    pub max_batch_wait: Duration,
    /// Batches queued for the pipeline before the consumer stops polling (default 2): the
    /// memory bound is about `queue_batches × max_batch_bytes`.
    #[serde(default = "default_queue_batches")]
    pub queue_batches: usize,
    /// How long a rebalance waits for the pipeline to answer an assignment (lake versions) or a
    /// revocation (flush and commit) before going on without it (default `"2m"`; keep it below
    /// `max.poll.interval.ms`, 5 minutes by default).
    #[serde(default = "default_rebalance_timeout", with = "duration")]
    pub rebalance_timeout: Duration,
}

/// One topic and the format of its messages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// Topic name (Event Hubs: the event hub name).
    pub name: String,
    /// ztlake format of the records in its messages, or `auto` (default) to detect it per
    /// record; see `ztlake formats`.
    #[serde(default = "default_format")]
    pub format: String,
}

/// ztlake's default `fetch.queue.backoff.ms` (librdkafka's is 1000): once the client's local
/// queue holds `queued.min.messages` (100 000), it stops fetching for this long. At 1 s, a
/// pipeline that drains 100 000 messages in a quarter of a second waited the other three
/// quarters for the next fetch (≈ 120 k messages/s at most, whatever the pipeline could do);
/// 20 ms keeps the queue fed at the cost of a few more fetch checks.
pub const DEFAULT_FETCH_QUEUE_BACKOFF_MS: &str = "20";

/// Default format: `auto`.
pub fn default_format() -> String {
    "auto".to_owned()
}

/// Default most messages per batch.
pub fn default_max_batch_records() -> usize {
    10_000
}

/// Default most payload bytes per batch.
pub fn default_max_batch_bytes() -> usize {
    16 << 20
}

/// Default poll timeout.
pub fn default_poll_timeout() -> Duration {
    Duration::from_millis(100)
}

/// Default longest wait of a partial batch.
pub fn default_max_batch_wait() -> Duration {
    Duration::from_secs(1)
}

/// Default queued batches.
pub fn default_queue_batches() -> usize {
    2
}

/// Default rebalance handshake timeout.
pub fn default_rebalance_timeout() -> Duration {
    Duration::from_secs(120)
}

impl KafkaConfig {
    /// A configuration with defaults for everything but the brokers, group and topics.
    pub fn new(brokers: impl Into<String>, group_id: impl Into<String>, topics: &[&str]) -> Self {
        Self {
            brokers: brokers.into(),
            group_id: group_id.into(),
            topics: topics
                .iter()
                .map(|t| TopicConfig { name: (*t).to_owned(), format: default_format() })
                .collect(),
            properties: Properties::default(),
            max_batch_records: default_max_batch_records(),
            max_batch_bytes: default_max_batch_bytes(),
            poll_timeout: default_poll_timeout(),
            max_batch_wait: default_max_batch_wait(),
            queue_batches: default_queue_batches(),
            rebalance_timeout: default_rebalance_timeout(),
        }
    }

    /// How errors name this source: `kafka <brokers> (group <group>)`.
    pub fn display(&self) -> String {
        format!("kafka {} (group {})", self.brokers, self.group_id)
    }

    fn invalid(&self, detail: impl Into<String>) -> Error {
        Error::Config { source_name: self.display(), detail: detail.into() }
    }

    /// Checks the configuration (including that every secret can be read).
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting at fault.
    pub fn validate(&self) -> Result<()> {
        if self.brokers.trim().is_empty() {
            return Err(self.invalid("brokers is empty"));
        }
        if self.group_id.trim().is_empty() || self.group_id.contains('/') {
            return Err(self.invalid("group_id must be non-empty and contain no '/'"));
        }
        if self.topics.is_empty() {
            return Err(self.invalid("topics is empty"));
        }
        let mut seen = BTreeSet::new();
        for topic in &self.topics {
            let name = &topic.name;
            let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if name.is_empty() || name.len() > 249 || !name.chars().all(legal) {
                return Err(self.invalid(format!(
                    "topic {name:?}: a topic name is 1 to 249 of [a-zA-Z0-9._-]"
                )));
            }
            if !seen.insert(name) {
                return Err(self.invalid(format!("topic {name} is listed twice")));
            }
            if topic.format.trim().is_empty() {
                return Err(self.invalid(format!("topic {name}: empty format")));
            }
        }
        if let Some(reserved) = RESERVED_PROPERTIES.iter().find(|p| self.properties.contains(p)) {
            return Err(self.invalid(format!(
                "property {reserved} is set by ztlake (use brokers / group_id; offsets are \
                 committed only after the lake commit)"
            )));
        }
        for (name, value) in [
            ("max_batch_records", self.max_batch_records),
            ("max_batch_bytes", self.max_batch_bytes),
            ("queue_batches", self.queue_batches),
        ] {
            if value == 0 {
                return Err(self.invalid(format!("{name} must be at least 1")));
            }
        }
        if self.poll_timeout.is_zero() {
            return Err(self.invalid("poll_timeout must be positive"));
        }
        self.properties.resolve().map_err(|e| self.invalid(e))?;
        Ok(())
    }

    /// The format configured for `topic` (`auto` for a topic not listed).
    pub fn format_for(&self, topic: &str) -> &str {
        self.topics.iter().find(|t| t.name == topic).map_or("auto", |t| t.format.as_str())
    }

    /// The topic names.
    pub fn topic_names(&self) -> Vec<&str> {
        self.topics.iter().map(|t| t.name.as_str()).collect()
    }

    /// The librdkafka client configuration: the pass-through properties (secrets resolved),
    /// then what ztlake sets: brokers, group, no automatic commit or offset store, no EOF
    /// events, `auto.offset.reset=earliest` and `fetch.queue.backoff.ms` =
    /// [`DEFAULT_FETCH_QUEUE_BACKOFF_MS`] unless configured.
    ///
    /// Never log the result: it holds the secrets in clear.
    ///
    /// # Errors
    /// [`Error::Config`] when a secret cannot be read.
    pub fn client_config(&self) -> Result<ClientConfig> {
        let mut config = ClientConfig::new();
        for (name, value) in self.properties.resolve().map_err(|e| self.invalid(e))? {
            config.set(name, value);
        }
        if !self.properties.contains("auto.offset.reset") {
            config.set("auto.offset.reset", "earliest");
        }
        if !self.properties.contains("fetch.queue.backoff.ms") {
            config.set("fetch.queue.backoff.ms", DEFAULT_FETCH_QUEUE_BACKOFF_MS);
        }
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_hubs_example_parses_with_defaults_and_redacts() {
        let json = r#"{
            "brokers": "my-namespace.servicebus.windows.net:9093",
            "group_id": "ztlake",
            "topics": [{"name": "vnet-flows", "format": "azure-vnet-flow"}, {"name": "signins"}],
            "properties": {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "PLAIN",
                "sasl.username": "$ConnectionString",
                "sasl.password": "Endpoint=sb://my-namespace.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=abc="
            },
            "poll_timeout": "250ms"
        }"#;
        let config: KafkaConfig = serde_json::from_str(json).unwrap();
        config.validate().unwrap();
        assert_eq!(config.format_for("vnet-flows"), "azure-vnet-flow");
        assert_eq!(config.format_for("signins"), "auto");
        assert_eq!(config.poll_timeout, Duration::from_millis(250));
        assert_eq!(config.max_batch_records, 10_000);
        assert_eq!(config.rebalance_timeout, Duration::from_secs(120));
        let debug = format!("{config:?}");
        assert!(!debug.contains("SharedAccessKey=abc"), "{debug}");
        assert!(debug.contains("SASL_SSL") && debug.contains("$ConnectionString"), "{debug}");
        let client = config.client_config().unwrap();
        assert_eq!(client.get("enable.auto.commit"), Some("false"));
        assert_eq!(client.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(client.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(client.get("fetch.queue.backoff.ms"), Some(DEFAULT_FETCH_QUEUE_BACKOFF_MS));
        assert_eq!(client.get("group.id"), Some("ztlake"));
        assert!(client.get("sasl.password").is_some_and(|p| p.contains("abc=")));
        // A configured value wins over ztlake's default.
        let mut tuned = config.clone();
        tuned.properties.set("fetch.queue.backoff.ms", "500");
        let client = tuned.client_config().unwrap();
        assert_eq!(client.get("fetch.queue.backoff.ms"), Some("500"));
    }

    #[test]
    fn bad_configs_are_refused_naming_the_setting() {
        let unknown = r#"{"brokers": "b:9092", "group_id": "g", "topics": [], "typo": 1}"#;
        assert!(serde_json::from_str::<KafkaConfig>(unknown).is_err());
        type Break = fn(&mut KafkaConfig);
        let cases: [(&str, Break); 6] = [
            ("brokers", |c| c.brokers.clear()),
            ("group_id", |c| c.group_id = "a/b".into()),
            ("topics is empty", |c| c.topics.clear()),
            ("listed twice", |c| c.topics.push(c.topics[0].clone())),
            ("enable.auto.commit", |c| c.properties.set("enable.auto.commit", "true")),
            ("max_batch_records", |c| c.max_batch_records = 0),
        ];
        for (needle, break_it) in cases {
            let mut config = KafkaConfig::new("b:9092", "g", &["flows"]);
            config.validate().unwrap();
            break_it(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle) && err.starts_with("kafka "), "{needle}: {err}");
        }
        let mut bad_topic = KafkaConfig::new("b:9092", "g", &["a b"]);
        assert!(bad_topic.validate().is_err());
        bad_topic.topics[0].name = "ok.topic_1-x".into();
        bad_topic.validate().unwrap();
    }
}
