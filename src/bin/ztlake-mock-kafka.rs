//! `ztlake-mock-kafka`: a Kafka broker for tests that speaks the real protocol (librdkafka's
//! mock cluster), hosted in its own process so a test can kill and restart the consumer side
//! while the broker keeps its topics, messages and committed offsets.
//!
//! ```text
//! ztlake-mock-kafka [--brokers N] [--topic NAME:PARTITIONS]... [--until-killed]
//! ```
//!
//! Prints one line `bootstrap=<host:port,...>` on stdout once the topics exist, then runs until
//! its standard input closes (so it dies with the test that started it, even when that test
//! fails) or, with `--until-killed`, until it is killed. Not for production use.

use std::io::{Read, Write};

use anyhow::{Context, Result, bail};
use ztlake_ingest::kafka::MockBroker;

fn main() -> Result<()> {
    let mut brokers = 1i32;
    let mut topics: Vec<(String, i32)> = Vec::new();
    let mut until_killed = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--brokers" => {
                let n = args.next().context("--brokers needs a number")?;
                brokers = n.parse().with_context(|| format!("--brokers {n:?}"))?;
                if !(1..=16).contains(&brokers) {
                    bail!("--brokers must be 1 to 16");
                }
            }
            "--topic" => {
                let spec = args.next().context("--topic needs NAME:PARTITIONS")?;
                let (name, partitions) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
                let partitions: i32 =
                    partitions.parse().with_context(|| format!("--topic {spec:?}"))?;
                if name.is_empty() || !(1..=1000).contains(&partitions) {
                    bail!("--topic {spec:?}: NAME:PARTITIONS with 1 to 1000 partitions");
                }
                topics.push((name.to_owned(), partitions));
            }
            "--until-killed" => until_killed = true,
            "-h" | "--help" => {
                println!(
                    "ztlake-mock-kafka [--brokers N] [--topic NAME:PARTITIONS]... [--until-killed]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    let specs: Vec<(&str, i32)> = topics.iter().map(|(n, p)| (n.as_str(), *p)).collect();
    let broker = MockBroker::start(brokers, &specs)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "bootstrap={}", broker.bootstrap_servers())?;
    out.flush()?;
    drop(out);
    if until_killed {
        loop {
            std::thread::park();
        }
    }
    // Runs until stdin reaches its end or fails.
    let mut sink = [0u8; 256];
    let mut stdin = std::io::stdin().lock();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    drop(broker);
    Ok(())
}
