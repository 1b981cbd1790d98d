//! The idle flush: a source that stops handing records commits what it read without waiting
//! for `flush_interval` (here an hour: only the idle flush can commit within the deadline),
//! once per burst — not once per message.

use super::super::Scratch;
use super::{
    MockKafka, Service, flow_line, kafka_section, produce, producer, rows, wait_for, write_config,
};

/// Versions of a table's Delta log (commits so far).
fn commits(s: &Scratch, table: &str) -> usize {
    let log = s.lake().join(table).join("_delta_log");
    std::fs::read_dir(log)
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count())
        .unwrap_or(0)
}

#[test]
fn an_idle_source_commits_before_its_flush_interval() {
    let broker = MockKafka::start(1, &["flows:1"]);
    let s = Scratch::new();
    let group = super::super::sources::unique("idle-flush");
    let extra = kafka_section(&broker.bootstrap, &group, &[("flows", "aws-vpcflow")]);
    let config = write_config(s.dir.path(), &s.lake(), false, None, &extra);
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace("flush_interval = \"300ms\"", "flush_interval = \"1h\"");
    assert!(text.contains("flush_interval = \"1h\""), "the test config sets flush_interval");
    std::fs::write(&config, text).expect("config");
    let mut service = Service::start(&config, &s.path("service.log"));

    let p = producer(&broker.bootstrap);
    let mut produced = 0;
    for burst in 0..2 {
        let lines: Vec<Vec<u8>> =
            (0..300).map(|i| flow_line(burst * 1000 + i, 1).into_bytes()).collect();
        let before = commits(&s, "flows");
        produce(&p, "flows", 0, &lines);
        produced += lines.len();
        let expected = i64::try_from(produced).expect("count");
        wait_for("the burst committed by the idle flush", || {
            service.assert_running();
            rows(&s, "flows") == expected
        });
        // 300 messages in batches of at most 500 records: a few commits, not one per message.
        let made = commits(&s, "flows") - before;
        assert!((1..=5).contains(&made), "burst {burst}: {made} commits");
    }
    assert!(service.terminate(), "SIGTERM must exit 0");
}
