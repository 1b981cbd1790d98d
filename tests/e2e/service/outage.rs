//! Broker outage: the only broker goes down while the service runs and records are being
//! produced, then comes back; nothing is lost or duplicated and the service keeps running.

use std::time::Duration;

use super::super::Scratch;
use super::{
    MockKafka, Service, committed_offsets, flow_line, kafka_section, per_source, produce, producer,
    wait_for, write_config,
};

#[test]
fn a_broker_outage_loses_and_duplicates_nothing() {
    let mut broker = MockKafka::start(1, &["flows:2"]);
    let s = Scratch::new();
    let group = super::super::sources::unique("outage");
    let section = kafka_section(&broker.bootstrap, &group, &[("flows", "aws-vpcflow")]);
    let config = write_config(s.dir.path(), &s.lake(), false, None, &section);
    let batch = |p: i32, r: std::ops::Range<usize>| -> Vec<Vec<u8>> {
        r.map(|i| flow_line(i, u8::try_from(p).unwrap_or(0) + 1).into_bytes()).collect()
    };
    let p = producer(&broker.bootstrap);
    for part in 0..2 {
        produce(&p, "flows", part, &batch(part, 0..150));
    }
    let mut service = Service::start(&config, &s.path("service.log"));
    wait_for("the first records", || {
        service.assert_running();
        per_source(&s, &["flows"]).len() == 300
    });

    broker.command("down 1");
    // Records produced during the outage wait in the producer until the broker is back.
    let bootstrap = broker.bootstrap.clone();
    let feeder = std::thread::spawn(move || {
        let p = producer(&bootstrap);
        for part in 0..2 {
            produce(&p, "flows", part, &batch(part, 150..300));
        }
    });
    // The outage lasts a few seconds: longer than the service's poll, flush and commit cycle.
    for _ in 0..30 {
        service.assert_running();
        std::thread::sleep(Duration::from_millis(100));
    }
    broker.command("up 1");
    feeder.join().expect("producer");
    wait_for("every record after the outage", || {
        service.assert_running();
        per_source(&s, &["flows"]).len() == 600
    });
    assert!(service.terminate(), "SIGTERM must exit 0");
    let counts = per_source(&s, &["flows", "quarantine"]);
    assert!(counts.values().all(|n| *n == 1), "duplicates after the outage");
    assert_eq!(counts.len(), 600);
    let committed = committed_offsets(&broker.bootstrap, &group, "flows", 2);
    assert_eq!(committed.get(&0).copied(), Some(300));
    assert_eq!(committed.get(&1).copied(), Some(300));
}
