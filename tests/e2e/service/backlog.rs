//! An alert under a backlog: while the consumer always has a batch ready (here: a topic
//! pre-loaded with many records), an alert still makes its source flush at once, so it is
//! released while the backlog is being read — not once the backlog is drained, nor after the
//! flush interval (ten minutes here). Then SIGTERM commits the rest: every record is in the
//! lake once.

use std::time::Instant;

use super::super::Scratch;
use super::{
    MockKafka, Service, flow_line, free_port, http_get, kafka_section, produce, producer, rows,
    wait_for, write_config,
};

/// Background records behind the trigger (8 partitions of ~2.4 MB: under the mock broker's
/// 5 MiB per partition, which would drop the oldest).
const BACKLOG: usize = 200_000;
const PARTITIONS: i32 = 8;

/// The sum of the samples of `/metrics` lines starting with `prefix` (None: no answer).
fn metric(port: u16, prefix: &str) -> Option<f64> {
    let (status, body) = http_get(port, "/metrics")?;
    (status == 200).then(|| {
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    })
}

#[test]
fn an_alert_is_released_while_a_backlog_is_read() {
    let broker = MockKafka::start(1, &[&format!("flows:{PARTITIONS}")]);
    let s = Scratch::new();
    let group = super::super::sources::unique("backlog");

    // The trigger (internet → RDP, accepted) first on partition 0, then the backlog.
    let rdp = "2 123456789012 eni-1 91.240.118.7 10.0.0.5 40000 3389 6 3 180 1700000000 1700000060 ACCEPT OK";
    let mut per_partition: Vec<Vec<Vec<u8>>> = vec![vec![rdp.as_bytes().to_vec()]];
    per_partition.resize(PARTITIONS as usize, Vec::new());
    for i in 0..BACKLOG {
        if let Some(p) = per_partition.get_mut(i % PARTITIONS as usize) {
            p.push(flow_line(i, 7).into_bytes());
        }
    }
    let p = producer(&broker.bootstrap);
    for (partition, messages) in per_partition.iter().enumerate() {
        produce(&p, "flows", i32::try_from(partition).expect("partition"), messages);
    }
    let total = BACKLOG + 1;

    let port = free_port();
    let section = kafka_section(&broker.bootstrap, &group, &[("flows", "aws-vpcflow")]);
    let config = write_config(s.dir.path(), &s.lake(), true, Some(port), &section);
    // Only a requested flush (or shutdown) commits anything before the backlog is drained.
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("flush_interval = \"300ms\""), "{text}");
    std::fs::write(&config, text.replace("flush_interval = \"300ms\"", "flush_interval = \"10m\""))
        .expect("config");

    let mut service = Service::start(&config, &s.path("service.log"));
    let started = Instant::now();
    let rule = "ztlake_alerts_raised_total{rule=\"zt-net-admin-port-exposed\"}";
    let flows = "ztlake_kafka_messages_total{topic=\"flows\"}";
    let mut read_at_alert = 0.0;
    wait_for("the admin-port alert", || {
        service.assert_running();
        if metric(port, rule).unwrap_or(0.0) < 1.0 {
            return false;
        }
        read_at_alert = metric(port, flows).unwrap_or(f64::MAX);
        true
    });
    eprintln!(
        "alert released after {:.1} s with {read_at_alert} of {total} messages read",
        started.elapsed().as_secs_f64()
    );
    assert!(
        read_at_alert < total as f64,
        "the alert waited for the backlog to drain ({read_at_alert} of {total} read):\n{}",
        service.log()
    );
    wait_for("the whole backlog read", || {
        service.assert_running();
        metric(port, flows).unwrap_or(0.0) >= total as f64
    });
    assert!(service.terminate(), "SIGTERM must exit 0");
    assert_eq!(rows(&s, "flows"), i64::try_from(total).expect("n"), "every record once");
}
