//! End-to-end benchmark of the service (`ztlake run`): Kafka → lake throughput through
//! librdkafka's mock broker with the shipped streaming pack on, side by side with `ztlake
//! ingest --detect` of the same records from a file; then the alert latency (record produced →
//! alert released: its OCSF Detection Finding on the SIEM alerts topic, which the service
//! publishes in the same step that queues it in the on-call outbox) p50/p99 under a steady
//! load. Not a criterion benchmark: it drives the release binaries as a user would.
//!
//! ```sh
//! cargo bench --bench service                       # 2 M records, 100k records/s for 30 s
//! ZTLAKE_BENCH_RECORDS=5000000 ZTLAKE_BENCH_RATE=100000 ZTLAKE_BENCH_SECONDS=60 \
//!   cargo bench --bench service
//! ```
//!
//! Work files go to `target/bench-service/` (or `ZTLAKE_BENCH_DIR`).

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

const PARTITIONS: i32 = 8;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let records = env_u64("ZTLAKE_BENCH_RECORDS", 2_000_000);
    let rate = env_u64("ZTLAKE_BENCH_RATE", 100_000);
    let seconds = env_u64("ZTLAKE_BENCH_SECONDS", 30);
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

    println!("== file ingest with the streaming pack (ztlake ingest --detect)");
    let file_rate = file_ingest(&root, &input, records)?;

    let broker =
        MockBroker::start(1, &[("flows", PARTITIONS), ("steady", PARTITIONS), ("alerts", 1)])?;
    let bootstrap = broker.bootstrap_servers();

    println!("== Kafka → lake: {records} records pre-loaded, then `ztlake run` with the pack on");
    produce_all(&bootstrap, "flows", &lines)?;
    let kafka_rate = kafka_throughput(&root, &bootstrap, records)?;
    println!(
        "throughput: file ingest --detect {:.0} records/s, ztlake run {:.0} records/s: {:.0}% (target ≥ 70%)",
        file_rate,
        kafka_rate,
        100.0 * kafka_rate / file_rate
    );

    println!(
        "== alert latency at {rate} records/s for {seconds} s (one trigger record every 100 ms)"
    );
    let latencies = alert_latency(&root, &bootstrap, &lines, rate, seconds)?;
    report_latency(&latencies);
    drop(broker);
    Ok(())
}

/// `ztlake ingest --detect` of the file; records/s.
fn file_ingest(root: &Path, input: &Path, records: u64) -> Result<f64> {
    let lake = root.join("lake-file");
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ztlake"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--lake")
        .arg(&lake)
        .args(["ingest", "--detect", "--format", "aws-vpcflow"])
        .arg(input)
        .env_remove("ZTLAKE_CONFIG")
        .output()
        .context("running ztlake ingest")?;
    let took = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("ztlake ingest failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let rate = records as f64 / took;
    println!("file ingest --detect: {took:.2} s, {rate:.0} records/s");
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

fn produce_all(bootstrap: &str, topic: &str, lines: &[&[u8]]) -> Result<()> {
    let p = producer(bootstrap)?;
    let start = Instant::now();
    for (i, line) in lines.iter().enumerate() {
        send(&p, topic, (i % PARTITIONS as usize) as i32, line);
        if i % 10_000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(300))?;
    println!("produced {} messages in {:.2} s", lines.len(), start.elapsed().as_secs_f64());
    Ok(())
}

/// A `ztlake run` child with its config.
struct Service {
    child: Child,
    port: u16,
}

impl Service {
    fn start(root: &Path, name: &str, bootstrap: &str, topic: &str, siem: bool) -> Result<Service> {
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
        let config = format!(
            r#"
[lake]
location = "{lake}"
[pipeline]
flush_interval = "1s"
[[kafka]]
brokers = "{bootstrap}"
group_id = "bench-{name}"
topics = [{{ name = "{topic}", format = "aws-vpcflow" }}]
[detections]
rules = "{dir}/detections/rules"
runbooks = "{dir}/runbooks"
reference = "{dir}/detections/reference"
alert_check = "100ms"
[maintenance]
compact = false
[http]
listen = "127.0.0.1:{port}"
{siem}
"#,
            lake = root.join(format!("lake-{name}")).display(),
        );
        let path = root.join(format!("{name}.toml"));
        std::fs::write(&path, config)?;
        let log = std::fs::File::create(root.join(format!("{name}.log")))?;
        let child = Command::new(env!("CARGO_BIN_EXE_ztlake"))
            .arg("--config")
            .arg(&path)
            .arg("run")
            .env("RUST_LOG", "warn")
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
fn kafka_throughput(root: &Path, bootstrap: &str, records: u64) -> Result<f64> {
    let start = Instant::now();
    let service = Service::start(root, "throughput", bootstrap, "flows", false)?;
    let mut first: Option<Instant> = None;
    loop {
        let done = service.metric("ztlake_rows_out_total{table=\"flows\"}")
            + service.metric("ztlake_quarantined_total");
        if done > 0.0 {
            first.get_or_insert_with(Instant::now);
        }
        if done >= records as f64 {
            break;
        }
        if start.elapsed() > Duration::from_secs(3600) {
            bail!("not done after an hour ({done} of {records} rows)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = start.elapsed().as_secs_f64();
    let rate = records as f64 / took;
    let rss = rss_mb(service.child.id());
    println!(
        "ztlake run: {took:.2} s from start to the last commit (first commit after {:.2} s), {rate:.0} records/s, RSS {rss} MB",
        first.map_or(0.0, |f| (f - start).as_secs_f64())
    );
    service.stop()?;
    Ok(rate)
}

fn rss_mb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Steady load of `rate` records/s with a trigger record (internet → RDP on a distinct internal
/// address: one new alert each) every 100 ms; the latency of each trigger until its finding
/// arrives on the alerts topic.
fn alert_latency(
    root: &Path,
    bootstrap: &str,
    lines: &[&[u8]],
    rate: u64,
    seconds: u64,
) -> Result<Vec<Duration>> {
    let service = Service::start(root, "latency", bootstrap, "steady", true)?;
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

    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<(String, Instant)>();
    let triggers = seconds * 10;
    let p = producer(bootstrap)?;
    let owned: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
    let feeder = std::thread::spawn(move || -> Result<()> {
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
        p.flush(Duration::from_secs(120))?;
        Ok(())
    });

    let mut sent: std::collections::HashMap<String, Instant> = Default::default();
    let mut latencies = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds + 60);
    while (latencies.len() as u64) < triggers && Instant::now() < end {
        while let Ok((ip, at)) = sent_rx.try_recv() {
            sent.insert(ip, at);
        }
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(5)) else { continue };
        let arrived = Instant::now();
        while let Ok((ip, at)) = sent_rx.try_recv() {
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
            latencies.push(arrived.saturating_duration_since(at));
        }
    }
    feeder.join().map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    let rss = rss_mb(service.child.id());
    let lag = service.metric("ztlake_consumer_lag");
    println!(
        "{} of {triggers} trigger alerts seen; RSS at the end {rss} MB, consumer lag {lag}",
        latencies.len()
    );
    service.stop()?;
    Ok(latencies)
}

fn report_latency(latencies: &[Duration]) {
    if latencies.is_empty() {
        println!("alert latency: no alerts seen");
        return;
    }
    let mut v = latencies.to_vec();
    v.sort();
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied().unwrap_or_default().as_secs_f64()
    };
    println!(
        "alert latency (record produced → finding released): p50 {:.3} s, p99 {:.3} s, max {:.3} s (target p99 < 2 s)",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
