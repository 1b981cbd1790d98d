//! Scale-out and rebalance: a second `ztlake run` joins the consumer group, takes partitions,
//! and leaves (SIGTERM) while records flow; together they write every record exactly once.

use super::super::Scratch;
use super::{
    MockKafka, Service, committed_offsets, flow_line, free_port, http_get, kafka_section,
    per_source, produce, producer, wait_for, write_config,
};

const PARTITIONS: i32 = 4;

fn batch(p: i32, range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range.map(|i| flow_line(i, u8::try_from(p).unwrap_or(0) + 1).into_bytes()).collect()
}

/// The `ztlake_records_in_total` of a service (0 when it does not answer yet).
fn records_in(port: u16) -> f64 {
    let Some((200, text)) = http_get(port, "/metrics") else { return 0.0 };
    text.lines()
        .filter(|l| l.starts_with("ztlake_records_in_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_second_instance_joins_and_leaves_without_loss_or_duplicates() {
    let broker = MockKafka::start(1, &["flows:4"]);
    let s = Scratch::new();
    let group = super::super::sources::unique("rebalance");
    let section = kafka_section(&broker.bootstrap, &group, &[("flows", "aws-vpcflow")]);
    let (port_a, port_b) = (free_port(), free_port());
    let config_a = write_config(s.dir.path(), &s.lake(), false, Some(port_a), &section);
    let config_b = write_config(s.dir.path(), &s.lake(), false, Some(port_b), &section);
    let p = producer(&broker.bootstrap);
    let mut next = 0usize;
    let mut produce_step = |n: usize| {
        for part in 0..PARTITIONS {
            produce(&p, "flows", part, &batch(part, next..next + n));
        }
        next += n;
        next
    };

    let mut a = Service::start(&config_a, &s.path("a.log"));
    let produced = produce_step(100);
    wait_for("instance A alone reads everything", || {
        a.assert_running();
        per_source(&s, &["flows"]).len() == produced * PARTITIONS as usize
    });

    // B joins: the group rebalances (A flushes and commits before its partitions go).
    let mut b = Service::start(&config_b, &s.path("b.log"));
    let mut produced = produced;
    wait_for("instance B takes partitions and reads", || {
        a.assert_running();
        b.assert_running();
        if records_in(port_b) > 0.0 {
            return true;
        }
        produced = produce_step(10);
        false
    });
    produced = produce_step(100);
    wait_for("A and B read everything", || {
        a.assert_running();
        b.assert_running();
        per_source(&s, &["flows"]).len() == produced * PARTITIONS as usize
    });

    // B leaves: its partitions go back to A.
    assert!(b.terminate(), "SIGTERM must exit 0");
    let produced = produce_step(100);
    let total = produced * PARTITIONS as usize;
    wait_for("A alone again reads everything", || {
        a.assert_running();
        per_source(&s, &["flows"]).len() == total
    });
    assert!(a.terminate(), "SIGTERM must exit 0");

    let counts = per_source(&s, &["flows", "quarantine"]);
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        duplicated.is_empty(),
        "{} records not exactly once, e.g. {:?}\nA:\n{}\nB:\n{}",
        duplicated.len(),
        duplicated.iter().take(5).collect::<Vec<_>>(),
        std::fs::read_to_string(s.path("a.log")).unwrap_or_default(),
        std::fs::read_to_string(s.path("b.log")).unwrap_or_default(),
    );
    assert_eq!(counts.len(), total);
    let committed = committed_offsets(&broker.bootstrap, &group, "flows", PARTITIONS);
    for part in 0..PARTITIONS {
        assert_eq!(committed.get(&part).copied(), Some(produced as i64), "flows/{part}");
    }
}
