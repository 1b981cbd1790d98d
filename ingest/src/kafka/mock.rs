//! A Kafka broker for tests that speaks the real protocol: librdkafka's mock cluster.
//!
//! [`MockBroker`] starts N mock brokers on loopback ports and creates topics. The
//! `ztlake-mock-kafka` helper binary hosts one in its own process, so a test can kill and restart
//! the consumer side (the pipeline) while the broker keeps its topics, messages and committed
//! offsets. Nothing here is for production.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::{Error, Result};

/// A running mock cluster; it stops when dropped.
pub struct MockBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl std::fmt::Debug for MockBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockBroker").field("bootstrap", &self.bootstrap_servers()).finish()
    }
}

fn mock_error(op: &'static str, topic: Option<String>, cause: rdkafka::error::KafkaError) -> Error {
    Error::Kafka {
        brokers: "mock cluster".into(),
        group: "-".into(),
        topic,
        op,
        cause: Box::new(cause),
    }
}

impl MockBroker {
    /// Starts `brokers` mock brokers (at least 1) and creates each `(topic, partitions)`.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the cluster or a topic cannot be created.
    pub fn start(brokers: i32, topics: &[(&str, i32)]) -> Result<MockBroker> {
        let cluster = MockCluster::new(brokers.max(1))
            .map_err(|e| mock_error("start mock cluster", None, e))?;
        for (topic, partitions) in topics {
            cluster
                .create_topic(topic, (*partitions).max(1), 1)
                .map_err(|e| mock_error("create topic", Some((*topic).to_owned()), e))?;
        }
        Ok(MockBroker { cluster })
    }

    /// The bootstrap servers (`127.0.0.1:port,…`).
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Take broker `id` (1-based) down: its connections are closed and new ones refused, until
    /// [`MockBroker::broker_up`] (a broker outage, for tests).
    ///
    /// # Errors
    /// [`Error::Kafka`] for an unknown broker.
    pub fn broker_down(&self, id: i32) -> Result<()> {
        self.cluster.broker_down(id).map_err(|e| mock_error("broker down", None, e))
    }

    /// Bring broker `id` back up.
    ///
    /// # Errors
    /// [`Error::Kafka`] for an unknown broker.
    pub fn broker_up(&self, id: i32) -> Result<()> {
        self.cluster.broker_up(id).map_err(|e| mock_error("broker up", None, e))
    }
}
