//! `ztlake run`, end to end, as a child process against real protocol peers on loopback: the
//! Kafka broker is librdkafka's mock cluster in the `ztlake-mock-kafka` helper process (so the
//! service can be killed while the broker keeps messages and committed offsets), the lake a
//! local directory, object stores a local directory and, when `.ci/run` started them, the S3
//! and Azure emulators.

mod config_check;
mod crash;
mod end_to_end;
mod idle;
mod objects;
mod outage;
mod rebalance;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use ztlake_ingest::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use ztlake_ingest::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use ztlake_ingest::kafka::rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use ztlake_ingest::kafka::{PartitionId, lake_version};
use ztlake_normalize::Table;
use ztlake_storage::Lake;

use super::Scratch;

/// Generous bound for anything the tests wait for.
pub(crate) const DEADLINE: Duration = Duration::from_secs(120);

/// The mock broker helper process.
pub(crate) struct MockKafka {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<String>,
    pub(crate) bootstrap: String,
}

impl MockKafka {
    /// Start the helper with `brokers` brokers and `topics` (`name:partitions`).
    pub(crate) fn start(brokers: u32, topics: &[&str]) -> MockKafka {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ztlake-mock-kafka"));
        command.args(["--brokers", &brokers.to_string()]);
        for t in topics {
            command.args(["--topic", t]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ztlake-mock-kafka");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, replies) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = replies.recv_timeout(Duration::from_secs(30)).expect("the helper's address");
        let bootstrap = line
            .trim()
            .strip_prefix("bootstrap=")
            .unwrap_or_else(|| panic!("unexpected helper output {line:?}"))
            .to_owned();
        let stdin = child.stdin.take();
        MockKafka { child, stdin, replies, bootstrap }
    }

    /// Send a command (`down 1`, `up 1`) and wait for its `ok`.
    pub(crate) fn command(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("helper stdin");
        writeln!(stdin, "{command}").expect("write command");
        stdin.flush().expect("flush command");
        let reply = self.replies.recv_timeout(Duration::from_secs(30)).expect("helper reply");
        assert_eq!(reply, format!("ok {command}"), "helper refused {command}");
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `ztlake run` child process; its stderr goes to a log file shown when a test fails.
pub(crate) struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Start `ztlake run --config <config>`.
    pub(crate) fn start(config: &Path, log: &Path) -> Service {
        let stderr = std::fs::File::create(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ztlake"))
            .args(["--config", config.to_str().expect("utf8 path"), "run"])
            .env_remove("ZTLAKE_LAKE")
            .env("RUST_LOG", "warn,ztlake=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start ztlake run");
        Service { child, log: log.to_owned() }
    }

    pub(crate) fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Whether the process is still running (panics with its log if it exited).
    pub(crate) fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("ztlake run exited early ({status}):\n{}", self.log());
        }
    }

    /// `kill -9`.
    pub(crate) fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait (deadline-bounded) for the exit; returns whether it exited 0.
    pub(crate) fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        assert!(sent.success());
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                if !status.success() {
                    eprintln!("ztlake run log:\n{}", self.log());
                }
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "ztlake run did not stop after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released) for a service's `/metrics`.
pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// GET `path` from `127.0.0.1:port`; the body, or None when nothing answers.
pub(crate) fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// The service configuration the tests use: a local lake, the shipped pack (or none), small
/// flushes, and the sections given in `extra` (TOML).
pub(crate) fn write_config(
    dir: &Path,
    lake: &Path,
    detect: bool,
    http: Option<u16>,
    extra: &str,
) -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let http = match http {
        Some(port) => format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"),
        None => "[http]\nenabled = false\n".to_owned(),
    };
    let text = format!(
        r#"
[lake]
location = "{lake}"
[lake.writer]
encoder_threads = 1

[pipeline]
flush_interval = "300ms"
shutdown_timeout = "60s"

[detections]
enabled = {detect}
rules = "{root}/detections/rules"
runbooks = "{root}/runbooks"
reference = "{root}/detections/reference"
alert_check = "100ms"

[detections.engine]
eval_every = "200ms"

[maintenance]
compact_every = "2s"

{http}
{extra}
"#,
        lake = lake.display(),
    );
    let path = dir.join(format!("ztlake-{}.toml", super::sources::unique("cfg")));
    std::fs::write(&path, text).expect("write config");
    path
}

/// The `[[kafka]]` section of a test: fast heartbeats so rebalances are quick.
pub(crate) fn kafka_section(bootstrap: &str, group: &str, topics: &[(&str, &str)]) -> String {
    let topics: Vec<String> =
        topics.iter().map(|(t, f)| format!("{{ name = \"{t}\", format = \"{f}\" }}")).collect();
    format!(
        r#"
[[kafka]]
brokers = "{bootstrap}"
group_id = "{group}"
topics = [{}]
poll_timeout = "50ms"
max_batch_wait = "200ms"
max_batch_records = 500
rebalance_timeout = "30s"
[kafka.properties]
"heartbeat.interval.ms" = "200"
"session.timeout.ms" = "6000"
"#,
        topics.join(", ")
    )
}

/// A producer to the mock cluster.
pub(crate) fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "120000")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produce `payloads` to `topic`/`partition` and wait until they are acknowledged.
pub(crate) fn produce(p: &BaseProducer, topic: &str, partition: i32, payloads: &[Vec<u8>]) {
    for body in payloads {
        let mut record = BaseRecord::<(), [u8]>::to(topic).partition(partition).payload(body);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
    }
    p.flush(DEADLINE).expect("flush producer");
}

/// Poll `check` every 100 ms until it returns true; panics with `what` after the deadline.
pub(crate) fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Rows of `table` (0 when the table does not exist yet).
pub(crate) fn rows(s: &Scratch, table: &str) -> i64 {
    if !s.lake().join(table).join("_delta_log").exists() {
        return 0;
    }
    s.scalar(&format!("SELECT count(*) FROM {table}"))
}

/// Per `source` value, how many rows of `tables` carry it.
pub(crate) fn per_source(s: &Scratch, tables: &[&str]) -> BTreeMap<String, i64> {
    let parts: Vec<String> = tables
        .iter()
        .filter(|t| s.lake().join(t).join("_delta_log").exists())
        .map(|t| format!("SELECT source FROM {t}"))
        .collect();
    if parts.is_empty() {
        return BTreeMap::new();
    }
    let sql = format!(
        "SELECT source, count(*) AS n FROM ({}) GROUP BY source",
        parts.join(" UNION ALL ")
    );
    let mut out = BTreeMap::new();
    for b in s.query(&sql) {
        let src = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).expect("cast");
        let src = src.as_string::<i32>();
        let n = datafusion::arrow::compute::cast(b.column(1), &DataType::Int64).expect("cast");
        let n = n.as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.insert(src.value(i).to_owned(), n.value(i));
        }
    }
    out
}

/// The group's committed offsets of `topic`'s partitions.
pub(crate) fn committed_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(20)).expect("committed");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Per partition of `topic`, what the lake holds (smallest txn version over the data tables).
pub(crate) fn lake_versions(
    lake: &Path,
    group: &str,
    topic: &str,
    partitions: i32,
) -> HashMap<i32, i64> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let lake = Lake::open(lake.to_str().expect("utf8")).await.expect("lake");
        let mut tables = Vec::new();
        for t in Table::DATA {
            tables.push(lake.all_txns(t).await.expect("txns"));
        }
        (0..partitions)
            .filter_map(|p| {
                let key = PartitionId::new(topic, p).source_key(group);
                lake_version(&tables, &key).map(|v| (p, v))
            })
            .collect()
    })
}

/// No committed offset is ahead of the lake: committed ≤ lake version + 1 per partition.
pub(crate) fn assert_offsets_not_ahead(
    bootstrap: &str,
    lake: &Path,
    group: &str,
    topic: &str,
    partitions: i32,
) {
    let committed = committed_offsets(bootstrap, group, topic, partitions);
    let lake = lake_versions(lake, group, topic, partitions);
    for (p, offset) in committed {
        let held = lake.get(&p).copied();
        assert!(
            held.is_some_and(|v| offset <= v + 1),
            "{topic}/{p}: committed offset {offset} is ahead of the lake ({held:?})"
        );
    }
}

/// Every message of `topic` (all partitions) from the beginning, until `want` messages arrived.
pub(crate) fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    want: usize,
) -> Vec<(Option<String>, serde_json::Value)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", super::sources::unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            let value: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default())
                .expect("feed message is JSON");
            out.push((key, value));
        }
    }
    // Anything beyond `want` would be a duplicate: read a little longer.
    let extra = Instant::now() + Duration::from_secs(2);
    while Instant::now() < extra {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            let value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
            out.push((key, value));
        }
    }
    out
}

/// A VPC flow log line (default v2 format) numbered `i`: unique per `(tag, i)`.
pub(crate) fn flow_line(i: usize, tag: u8) -> String {
    let t = 1_700_000_000 + (i % 3600);
    format!(
        "2 123456789012 eni-{tag} 10.{tag}.{}.{} 10.9.0.5 {} 443 6 3 180 {t} {} ACCEPT OK",
        (i / 250) % 250,
        i % 250,
        1024 + i % 60000,
        t + 60
    )
}

/// The values of a string-like column as owned strings.
pub(crate) fn strings(column: &datafusion::arrow::array::ArrayRef) -> Vec<String> {
    let text = datafusion::arrow::compute::cast(column, &DataType::Utf8).expect("cast to Utf8");
    let text = text.as_string::<i32>();
    (0..text.len()).map(|i| text.value(i).to_owned()).collect()
}
