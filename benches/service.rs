//! End-to-end benchmark of the service (`ztlake run`): Kafka → lake throughput through
//! librdkafka's mock broker with the shipped streaming pack on, side by side with `ztlake
//! ingest --detect` of the same records from a file — twice: as deployed (on-call delivery of
//! the alerts while it reads) and with the alerts routed to nobody (the same work as the file
//! figure, whose delivery comes after its last commit); then the alert latency p50/p99 under a
//! steady load, from the record produced to its OCSF Detection Finding on the SIEM alerts topic
//! and to its `.eml` in the on-call outbox. Not a criterion benchmark: it drives the release
//! binaries as a user would.
//!
//! ```sh
//! cargo bench --bench service                       # 2 M records, 100k records/s for 30 s
//! ZTLAKE_BENCH_RECORDS=5000000 ZTLAKE_BENCH_RATE=100000 ZTLAKE_BENCH_SECONDS=60 \
//!   cargo bench --bench service
//! ```
//!
//! Work files go to `target/bench-service/` (or `ZTLAKE_BENCH_DIR`). `ZTLAKE_BIN` runs another
//! `ztlake` binary than the one cargo built (a copy, while others rebuild the shared target);
//! `ZTLAKE_BENCH_PHASES` (default `file,kafka,latency`) picks the phases to run; `quiet` runs
//! only the Kafka run with alerts routed to nobody (no `.eml` files: for A/B runs).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use ztlake::generate::{VpcFlowSpec, vpc_flows};
use ztlake_ingest::kafka::MockBroker;
use ztlake_ingest::kafka::rdkafka::consumer::{BaseConsumer, Consumer as _};
use ztlake_ingest::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use ztlake_ingest::kafka::rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};

/// Partitions of the steady-load topic (and the least of the pre-loaded one).
const PARTITIONS: i32 = 8;

/// What librdkafka's mock broker keeps of a partition: it drops the oldest message sets
/// beyond 5 MiB (`rd_kafka_mock_partition_init`: `max_size`), whether or not anyone read them.
const MOCK_PARTITION_BYTES: u64 = 5 << 20;

/// Partitions for pre-loading `bytes` of payload: each holds at most half of what the mock
/// broker keeps (room for the record framing), never fewer than [`PARTITIONS`].
fn preload_partitions(bytes: u64) -> i32 {
    let each = MOCK_PARTITION_BYTES / 2;
    i32::try_from(bytes.div_ceil(each)).unwrap_or(i32::MAX).max(PARTITIONS)
}

/// CPU seconds (user + system) of this process and of its waited-for children so far, from
/// `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    let field = |n: usize| f.get(n - 3).copied().unwrap_or(0.0) / 100.0;
    (field(14) + field(15), field(16) + field(17))
}

/// The `ztlake` binary to run: `ZTLAKE_BIN`, else the one cargo built with the bench.
fn ztlake_bin() -> PathBuf {
    std::env::var_os("ZTLAKE_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ztlake")), PathBuf::from)
}

/// A setting of the service configuration from the environment (TOML text), or `default`.
fn env_text(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let records = env_u64("ZTLAKE_BENCH_RECORDS", 2_000_000);
    let rate = env_u64("ZTLAKE_BENCH_RATE", 100_000);
    let seconds = env_u64("ZTLAKE_BENCH_SECONDS", 30);
    let warmup = Duration::from_secs(env_u64("ZTLAKE_BENCH_WARMUP", 5));
    let root = std::env::var("ZTLAKE_BENCH_DIR").map_or_else(
        |_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-service")),
        PathBuf::from,
    );
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;

    println!("== generating {records} flow records");
    let mut text = Vec::new();
    let spec = VpcFlowSpec { lines: records, seed: 42, header: false, ..VpcFlowSpec::default() };
    vpc_flows(&mut text, &spec)?;
    let input = root.join("flows.log");
    std::fs::write(&input, &text)?;
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();

    let phases =
        std::env::var("ZTLAKE_BENCH_PHASES").unwrap_or_else(|_| "file,kafka,latency".to_owned());
    let phase = |name: &str| phases.split(',').any(|p| p.trim() == name);

    let file_rate = if phase("file") {
        println!("== file ingest with the streaming pack (ztlake ingest --detect)");
        Some(file_ingest(&root, &input, records)?)
    } else {
        None
    };

    let preload = preload_partitions(text.len() as u64);
    let broker =
        MockBroker::start(1, &[("flows", preload), ("steady", PARTITIONS), ("alerts", 1)])?;
    let bootstrap = broker.bootstrap_servers();

    let (kafka, quiet) = (phase("kafka"), phase("kafka") || phase("quiet"));
    if quiet {
        println!(
            "== Kafka → lake: {records} records pre-loaded, then `ztlake run` with the pack on"
        );
        println!("({preload} partitions: the mock broker keeps 5 MiB of each)");
        produce_all(&bootstrap, "flows", preload, &lines)?;
    }
    if kafka {
        let kafka_rate = kafka_throughput(&root, &bootstrap, records, Delivery::On)?;
        if let Some(file_rate) = file_rate {
            println!(
                "throughput: file ingest --detect {:.0} records/s, ztlake run {:.0} records/s \
                 (each from its first record to its lake commit): {:.0}% (target ≥ 70%)",
                file_rate,
                kafka_rate,
                100.0 * kafka_rate / file_rate
            );
        }
    }
    if quiet {
        // The file figure ends before its on-call delivery starts; the service delivers while it
        // reads. The same topic again, alerts routed to nobody: the same work as the file figure.
        println!("== the same, alerts routed to nobody (no on-call delivery while reading)");
        let quiet_rate = kafka_throughput(&root, &bootstrap, records, Delivery::Off)?;
        if let Some(file_rate) = file_rate {
            println!(
                "throughput without delivery: ztlake run {:.0} records/s: {:.0}% of file ingest",
                quiet_rate,
                100.0 * quiet_rate / file_rate
            );
        }
    }

    if phase("latency") {
        println!(
            "== alert latency at {rate} records/s for {seconds} s (one trigger record every 100 ms)"
        );
        let (siem, outbox) = alert_latency(&root, &bootstrap, &lines, rate, seconds)?;
        report_latency("record produced → finding on the SIEM alerts topic", &siem, warmup);
        report_latency("record produced → alert delivered to the on-call outbox", &outbox, warmup);
    }
    drop(broker);
    Ok(())
}

/// `ztlake ingest --detect` of the file; records/s. Its alerts are routed to nobody: the
/// command delivers them only after the ingest (not timed), and tens of thousands of `.eml`
/// files written then would be flushed to disk while the Kafka phases run, on the same cores.
fn file_ingest(root: &Path, input: &Path, records: u64) -> Result<f64> {
    let lake = root.join("lake-file");
    let log = root.join("file.log");
    let summary = root.join("file.out");
    let config = root.join("file.toml");
    std::fs::write(&config, NOBODY)?;
    let cpu = cpu_seconds();
    let start = Instant::now();
    let mut child = Command::new(ztlake_bin())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--lake")
        .arg(&lake)
        .args(["ingest", "--detect", "--format", "aws-vpcflow"])
        .arg(input)
        .env("ZTLAKE_CONFIG", &config)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&summary)?)
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("running ztlake ingest")?;
    // The peak RSS, sampled until the exit (VmHWM is the high-water mark so far).
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        peak = peak.max(status_mb(child.id(), "VmHWM:"));
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed().as_secs_f64();
    if !status.success() {
        bail!("ztlake ingest failed:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    let used = cpu_seconds().1 - cpu.1;
    // Its lake on disk before the next phase starts.
    Command::new("sync").status()?;
    // "ingested 1 input(s), N records in 1.81s (…)": the ingest itself (parse, the streaming
    // pack, lake commit), before the command delivers the alerts to on-call (which the
    // service does in the background).
    let text = std::fs::read_to_string(&summary).unwrap_or_default();
    let ingest = text
        .split_once(" records in ")
        .and_then(|(_, rest)| rest.split_once('s')?.0.parse::<f64>().ok())
        .context("the ingest summary line")?;
    let rate = records as f64 / ingest;
    println!(
        "file ingest --detect: {took:.2} s wall for the command, {used:.2} s CPU, peak RSS \
         {peak} MB; the ingest itself {ingest:.2} s = {rate:.0} records/s (the rest is on-call \
         routing of the alerts, to nobody)"
    );
    Ok(rate)
}

fn producer(bootstrap: &str) -> Result<BaseProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "300000")
        .create()?)
}

fn send(p: &BaseProducer, topic: &str, partition: i32, payload: &[u8]) {
    let mut record = BaseRecord::<(), [u8]>::to(topic).partition(partition).payload(payload);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                p.poll(Duration::from_millis(1));
            }
        }
    }
}

/// Produce every line round-robin over `partitions`, then check that the broker holds them
/// all (the mock broker silently drops the oldest messages beyond its per-partition cap: a
/// benchmark waiting for them would wait forever).
fn produce_all(bootstrap: &str, topic: &str, partitions: i32, lines: &[&[u8]]) -> Result<()> {
    let p = producer(bootstrap)?;
    let start = Instant::now();
    for (i, line) in lines.iter().enumerate() {
        send(&p, topic, (i % partitions as usize) as i32, line);
        if i % 10_000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(300))?;
    println!("produced {} messages in {:.2} s", lines.len(), start.elapsed().as_secs_f64());
    let held = held_messages(bootstrap, topic, partitions)?;
    if held.dropped > 0 || held.held != lines.len() as i64 {
        bail!(
            "the broker holds {} of {} messages of {topic} ({} dropped by its retention)",
            held.held,
            lines.len(),
            held.dropped
        );
    }
    Ok(())
}

/// What the broker holds of a topic.
struct Held {
    /// Messages between the low and high watermarks.
    held: i64,
    /// Messages before the low watermarks (deleted by retention).
    dropped: i64,
}

fn held_messages(bootstrap: &str, topic: &str, partitions: i32) -> Result<Held> {
    let client: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let mut held = Held { held: 0, dropped: 0 };
    for partition in 0..partitions {
        let (low, high) = client.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        held.held += high - low;
        held.dropped += low;
    }
    Ok(held)
}

/// On-call routes that reach nobody (`[oncall]` needs a target; no route names it).
const NOBODY: &str = "[oncall]\ndefault_targets = []\n[[oncall.targets]]\nname = \"nobody\"\nemail = [\"nobody@localhost\"]\n";

/// Whether the service delivers its alerts to on-call (the shipped default routes every alert
/// to its runbook owner as an `.eml` file) or routes them to nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    On,
    Off,
}

/// A `ztlake run` child with its config.
struct Service {
    child: Child,
    port: u16,
}

impl Service {
    fn start(
        root: &Path,
        name: &str,
        bootstrap: &str,
        topic: &str,
        siem: bool,
        delivery: Delivery,
    ) -> Result<Service> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let dir = env!("CARGO_MANIFEST_DIR");
        let siem = if siem {
            format!(
                "[siem]\nbrokers = \"{bootstrap}\"\nevents_topic = \"\"\nalerts_topic = \"alerts\"\n"
            )
        } else {
            String::new()
        };
        let flush = env_text("ZTLAKE_BENCH_FLUSH", "1s");
        let eval_every = env_text("ZTLAKE_BENCH_EVAL_EVERY", "500ms");
        let kafka = env_text("ZTLAKE_BENCH_KAFKA", "").replace(';', "\n");
        let oncall = match delivery {
            Delivery::On => "",
            Delivery::Off => NOBODY,
        };
        let config = format!(
            r#"
[lake]
location = "{lake}"
[pipeline]
flush_interval = "{flush}"
[[kafka]]
brokers = "{bootstrap}"
group_id = "bench-{name}"
topics = [{{ name = "{topic}", format = "aws-vpcflow" }}]
{kafka}
[detections]
rules = "{dir}/detections/rules"
runbooks = "{dir}/runbooks"
reference = "{dir}/detections/reference"
alert_check = "100ms"
[detections.engine]
eval_every = "{eval_every}"
[maintenance]
compact = false
[http]
listen = "127.0.0.1:{port}"
{siem}
{oncall}
"#,
            lake = root.join(format!("lake-{name}")).display(),
        );
        let path = root.join(format!("{name}.toml"));
        std::fs::write(&path, config)?;
        let log = std::fs::File::create(root.join(format!("{name}.log")))?;
        let child = Command::new(ztlake_bin())
            .arg("--config")
            .arg(&path)
            .arg("run")
            .env("RUST_LOG", std::env::var("ZTLAKE_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting ztlake run")?;
        Ok(Service { child, port })
    }

    /// The sum of a metric's samples (0 when the service does not answer).
    fn metric(&self, prefix: &str) -> f64 {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return 0.0 };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if write!(s, "GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n").is_err() {
            return 0.0;
        }
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("ztlake run exited with {status}");
        }
        Ok(())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the service on the pre-loaded topic and time it until every record is committed.
fn kafka_throughput(root: &Path, bootstrap: &str, records: u64, delivery: Delivery) -> Result<f64> {
    let start = Instant::now();
    let broker_cpu = cpu_seconds().0;
    let name = match delivery {
        Delivery::On => "throughput",
        Delivery::Off => "throughput-quiet",
    };
    let service = Service::start(root, name, bootstrap, "flows", false, delivery)?;
    let mut first_read: Option<Instant> = None;
    let mut all_read: Option<Instant> = None;
    let mut report = Instant::now();
    // (rows committed, when they last moved): a stall ends the benchmark with the evidence.
    let mut progress = (0.0, Instant::now());
    loop {
        let done = service.metric("ztlake_rows_out_total{table=\"flows\"}")
            + service.metric("ztlake_quarantined_total");
        let read = service.metric("ztlake_kafka_messages_total");
        if first_read.is_none() && read > 0.0 {
            first_read = Some(Instant::now());
        }
        if all_read.is_none() && read >= records as f64 {
            all_read = Some(Instant::now());
        }
        if done >= records as f64 {
            break;
        }
        if done > progress.0 {
            progress = (done, Instant::now());
        }
        if report.elapsed() > Duration::from_secs(5) {
            report = Instant::now();
            println!(
                "  {:.0} s: {done} of {records} rows committed, {} messages read, lag {}",
                start.elapsed().as_secs_f64(),
                service.metric("ztlake_kafka_messages_total"),
                service.metric("ztlake_consumer_lag")
            );
        }
        if progress.1.elapsed() > Duration::from_secs(120) {
            bail!(
                "no commit for 2 minutes: {done} of {records} rows committed, {} messages read, \
                 lag {} (log: {})",
                service.metric("ztlake_kafka_messages_total"),
                service.metric("ztlake_consumer_lag"),
                root.join(format!("{name}.log")).display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed().as_secs_f64();
    let broker_cpu = cpu_seconds().0 - broker_cpu;
    let rate = records as f64 / took;
    let pid = service.child.id();
    let (cpu, peak) = (process_cpu(pid), status_mb(pid, "VmHWM:"));
    let joined = first_read.map_or(0.0, |f| (f - start).as_secs_f64());
    let read = all_read.map_or(took, |f| (f - start).as_secs_f64());
    let steady = records as f64 / (took - joined).max(0.001);
    println!(
        "ztlake run: {took:.2} s wall from start to the last commit = {rate:.0} records/s, \
         {cpu:.2} s CPU, peak RSS {peak} MB; first message read after {joined:.2} s (the \
         group join), every message read after {read:.2} s; from the first message to the last \
         commit {:.2} s = {steady:.0} records/s; meanwhile this process (the mock broker \
         serving the fetches, on the same cores) used {broker_cpu:.2} s CPU",
        took - joined
    );
    println!("  CPU by thread name: {}", thread_cpu(pid));
    service.stop()?;
    Ok(steady)
}

/// CPU seconds of a running process's threads, summed by thread name, largest first.
fn thread_cpu(pid: u32) -> String {
    let mut by_name: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    for task in tasks {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let name = head.split_once('(').map_or("?", |(_, n)| n).to_owned();
        let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
        let cpu = (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0;
        *by_name.entry(name).or_default() += cpu;
    }
    let mut list: Vec<_> = by_name.into_iter().filter(|(_, cpu)| *cpu >= 0.01).collect();
    list.sort_by(|a, b| b.1.total_cmp(&a.1));
    list.iter().map(|(name, cpu)| format!("{name} {cpu:.2}")).collect::<Vec<_>>().join(", ")
}

/// CPU seconds (user + system) of a running process, from `/proc/<pid>/stat`.
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

fn rss_mb(pid: u32) -> u64 {
    status_mb(pid, "VmRSS:")
}

/// A `/proc/<pid>/status` memory line (`VmRSS:`, `VmHWM:`) in MB (0 when unreadable).
fn status_mb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A trigger: when it was produced, and its latency.
type Sample = (Instant, Duration);

/// Steady load of `rate` records/s with a trigger record (internet → RDP on a distinct internal
/// address: one new alert each) every 100 ms; the latency of each trigger until its finding
/// arrives on the alerts topic.
fn alert_latency(
    root: &Path,
    bootstrap: &str,
    lines: &[&[u8]],
    rate: u64,
    seconds: u64,
) -> Result<(Vec<Sample>, Vec<Sample>)> {
    let service = Service::start(root, "latency", bootstrap, "steady", true, Delivery::On)?;
    let outbox = root.join("lake-latency").join("outbox").join("mail");
    let stop_watch = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop_watch.clone();
        std::thread::spawn(move || watch_outbox(&outbox, &stop))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while service.metric("ztlake_source_up") < 1.0 {
        if Instant::now() > deadline {
            bail!("the service did not come up");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-findings")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("alerts", 0, Offset::End)?;
    consumer.assign(&tpl)?;

    // The load starts once the service reads the topic: its consumer joins the group first
    // (the broker's initial rebalance delay, 3 s), and records produced meanwhile would measure
    // the join and the catch-up after it, not the latency under steady load. One ordinary
    // record primes it.
    let p = producer(bootstrap)?;
    let steady = "ztlake_kafka_messages_total{topic=\"steady\"}";
    let joining = Instant::now();
    if let Some(line) = lines.first() {
        send(&p, "steady", 0, line);
        p.flush(Duration::from_secs(30))?;
    }
    while service.metric(steady) < 1.0 {
        if joining.elapsed() > Duration::from_secs(60) {
            bail!("the service did not read the steady topic within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "the service reads the topic after {:.2} s (the consumer group join); the load starts",
        joining.elapsed().as_secs_f64()
    );

    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<(String, Instant)>();
    let triggers = seconds * 10;
    let owned: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
    let feeder = std::thread::spawn(move || -> Result<(u64, f64)> {
        let per_tick = (rate / 100).max(1) as usize; // every 10 ms
        let start = Instant::now();
        let mut next = 0usize;
        for tick in 0..seconds * 100 {
            let due = start + Duration::from_millis(tick * 10);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            for _ in 0..per_tick {
                if let Some(line) = owned.get(next % owned.len()) {
                    send(&p, "steady", (next % PARTITIONS as usize) as i32, line);
                }
                next += 1;
            }
            if tick % 10 == 0 {
                let n = tick / 10;
                let ip = format!("10.250.{}.{}", n / 250, n % 250 + 1);
                let t = now_secs();
                let line = format!(
                    "2 123456789012 eni-bench 91.240.118.7 {ip} 40000 3389 6 3 180 {t} {} ACCEPT OK",
                    t + 1
                );
                send(&p, "steady", (n % PARTITIONS as u64) as i32, line.as_bytes());
                let _ = sent_tx.send((ip, Instant::now()));
            }
            p.poll(Duration::ZERO);
        }
        let took = start.elapsed().as_secs_f64();
        p.flush(Duration::from_secs(120))?;
        // + the priming record.
        Ok((next as u64 + seconds * 10 + 1, took))
    });

    let mut sent: std::collections::HashMap<String, Instant> = Default::default();
    let mut all_sent: std::collections::HashMap<String, Instant> = Default::default();
    let mut latencies = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds + 60);
    while (latencies.len() as u64) < triggers && Instant::now() < end {
        while let Ok((ip, at)) = sent_rx.try_recv() {
            all_sent.insert(ip.clone(), at);
            sent.insert(ip, at);
        }
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(5)) else { continue };
        let arrived = Instant::now();
        while let Ok((ip, at)) = sent_rx.try_recv() {
            all_sent.insert(ip.clone(), at);
            sent.insert(ip, at);
        }
        let text = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
        if !text.contains("zt-net-admin-port-exposed") {
            continue;
        }
        // The entity is a JSON object inside a JSON string: its quotes are escaped.
        let hit = sent
            .keys()
            .find(|ip| {
                text.contains(&format!("\\\"{ip}\\\"")) || text.contains(&format!("\"{ip}\""))
            })
            .cloned();
        if let Some(ip) = hit
            && let Some(at) = sent.remove(&ip)
        {
            latencies.push((at, arrived.saturating_duration_since(at)));
        }
    }
    let (produced, producing) =
        feeder.join().map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    while let Ok((ip, at)) = sent_rx.try_recv() {
        all_sent.insert(ip, at);
    }
    // Give the service a little time for the tail of the load.
    let settle = Instant::now() + Duration::from_secs(30);
    while service.metric(steady) < produced as f64 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The outbox: on-call delivery of the triggers' alerts (bounded wait for the last ones).
    let settle = Instant::now() + Duration::from_secs(30);
    while Instant::now() < settle {
        let delivered = service.metric("ztlake_alerts_delivered_total");
        std::thread::sleep(Duration::from_millis(500));
        if service.metric("ztlake_alerts_delivered_total") == delivered {
            break;
        }
    }
    stop_watch.store(true, std::sync::atomic::Ordering::Release);
    let arrived = watcher.join().map_err(|_| anyhow::anyhow!("outbox watcher panicked"))?;
    let delivered: Vec<Sample> = all_sent
        .iter()
        .filter_map(|(ip, at)| Some((*at, arrived.get(ip)?.saturating_duration_since(*at))))
        .collect();
    println!(
        "produced {produced} records in {producing:.1} s ({:.0} records/s); {} of {triggers} \
         trigger alerts in the outbox",
        produced as f64 / producing.max(0.001),
        delivered.len()
    );
    let pid = service.child.id();
    let (cpu, peak, rss) = (process_cpu(pid), status_mb(pid, "VmHWM:"), rss_mb(pid));
    let read = service.metric(steady);
    let lag = service.metric("ztlake_consumer_lag");
    println!(
        "{} of {triggers} trigger alerts seen; {produced} records produced, {read} read by the \
         service{}; {cpu:.1} s CPU, peak RSS {peak} MB, RSS at the end {rss} MB, consumer lag {lag}",
        latencies.len(),
        if read < produced as f64 {
            " (the rest was dropped by the mock broker's 5 MiB retention before the service read \
             it: it did not keep up)"
        } else {
            ""
        }
    );
    service.stop()?;
    Ok((latencies, delivered))
}

/// Until `stop`: every new `.eml` of the outbox naming a trigger's address (`dst_ip=10.250.…`
/// in its subject), with when it was first seen (scanned every 20 ms).
fn watch_outbox(
    dir: &Path,
    stop: &std::sync::atomic::AtomicBool,
) -> std::collections::HashMap<String, Instant> {
    let mut seen = std::collections::HashSet::new();
    let mut arrived = std::collections::HashMap::new();
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let now = Instant::now();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().ends_with(".eml") || !seen.insert(name) {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let unfolded = text.replace("\r\n ", " ").replace("\n ", " ");
            let ip = unfolded
                .split_once("dst_ip=10.250.")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .map(|tail| format!("10.250.{tail}"));
            if let Some(ip) = ip {
                arrived.entry(ip).or_insert(now);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    arrived
}

/// p50 / p99 / max of the samples, over the whole load and without its first `warmup` (the
/// backlog of alerts the first records raise at start-up: the outbox takes them one fsync'd
/// file at a time).
fn report_latency(what: &str, samples: &[Sample], warmup: Duration) {
    let Some(first) = samples.iter().map(|(at, _)| *at).min() else {
        println!("alert latency ({what}): no alerts seen");
        return;
    };
    let all: Vec<Duration> = samples.iter().map(|(_, d)| *d).collect();
    let steady: Vec<Duration> =
        samples.iter().filter(|(at, _)| *at >= first + warmup).map(|(_, d)| *d).collect();
    for (label, mut v) in
        [("all", all), (&*format!("after the first {} s", warmup.as_secs()), steady)]
    {
        if v.is_empty() {
            continue;
        }
        v.sort();
        let at = |q: f64| {
            let i = ((v.len() as f64 - 1.0) * q).round() as usize;
            v.get(i).copied().unwrap_or_default().as_secs_f64()
        };
        println!(
            "alert latency ({what}), {label}: {} alerts, p50 {:.3} s, p99 {:.3} s, max {:.3} s \
             (target p99 < 2 s)",
            v.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
}
