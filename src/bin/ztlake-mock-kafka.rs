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
//!
//! Commands on standard input, one per line, each answered by a line `ok <command>` (or
//! `error <command>: <why>`) on stdout: `down N` takes broker N (1-based) down, `up N` brings it
//! back (a broker outage for tests).

use std::io::{BufRead, Write};

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
    // Runs until stdin reaches its end or fails, obeying the commands it carries.
    let stdin = std::io::stdin().lock();
    for line in stdin.lines() {
        let Ok(line) = line else { break };
        let command = line.trim();
        if command.is_empty() {
            continue;
        }
        let result = match command.split_once(' ') {
            Some(("down", n)) => n
                .trim()
                .parse()
                .map_err(|e| format!("{e}"))
                .and_then(|id| broker.broker_down(id).map_err(|e| e.to_string())),
            Some(("up", n)) => n
                .trim()
                .parse()
                .map_err(|e| format!("{e}"))
                .and_then(|id| broker.broker_up(id).map_err(|e| e.to_string())),
            _ => Err("unknown command (down N | up N)".to_owned()),
        };
        let mut out = std::io::stdout().lock();
        match result {
            Ok(()) => writeln!(out, "ok {command}")?,
            Err(e) => writeln!(out, "error {command}: {e}")?,
        }
        out.flush()?;
    }
    drop(broker);
    Ok(())
}
