//! Crash safety: `kill -9` the service at random points (seeded) while records flow, restart,
//! repeat; then every produced record is in the lake or quarantine exactly once, and no
//! committed offset was ever ahead of the lake.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};

use super::super::Scratch;
use super::{
    MockKafka, Service, assert_offsets_not_ahead, committed_offsets, flow_line, kafka_section,
    per_source, produce, producer, wait_for, write_config,
};

const PARTITIONS: i32 = 3;
const PER_PARTITION: usize = 400;
const STEP: usize = 20;

/// Message `i` of partition `p`: a flow line, every 25th a bad record (quarantine).
fn message(p: i32, i: usize) -> Vec<u8> {
    if i % 25 == 7 {
        format!("garbage record {p}/{i}").into_bytes()
    } else {
        flow_line(i, u8::try_from(p).unwrap_or(0) + 1).into_bytes()
    }
}

#[test]
fn kill_9_at_random_points_loses_and_duplicates_nothing() {
    let broker = MockKafka::start(1, &["flows:3"]);
    let s = Scratch::new();
    let group = super::super::sources::unique("crash");
    let section = kafka_section(&broker.bootstrap, &group, &[("flows", "aws-vpcflow")]);
    let config = write_config(s.dir.path(), &s.lake(), false, None, &section);
    let done = Arc::new(AtomicBool::new(false));
    let feeder = {
        let bootstrap = broker.bootstrap.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let p = producer(&bootstrap);
            for start in (0..PER_PARTITION).step_by(STEP) {
                for part in 0..PARTITIONS {
                    let chunk: Vec<Vec<u8>> =
                        (start..start + STEP).map(|i| message(part, i)).collect();
                    produce(&p, "flows", part, &chunk);
                }
                // Pacing, so the kills land while records flow.
                std::thread::sleep(Duration::from_millis(40));
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20240501);
    for round in 0..4 {
        let mut service = Service::start(&config, &s.path(&format!("run-{round}.log")));
        let delay = rng.random_range(300..2500);
        let until = std::time::Instant::now() + Duration::from_millis(delay);
        while std::time::Instant::now() < until {
            service.assert_running();
            std::thread::sleep(Duration::from_millis(25));
        }
        service.kill9();
        assert_offsets_not_ahead(&broker.bootstrap, &s.lake(), &group, "flows", PARTITIONS);
    }
    feeder.join().expect("producer thread");
    assert!(done.load(Ordering::Acquire));

    let total = PER_PARTITION * PARTITIONS as usize;
    let mut service = Service::start(&config, &s.path("final.log"));
    wait_for("every record once the crashes are over", || {
        service.assert_running();
        per_source(&s, &["flows", "quarantine"]).len() >= total
    });
    assert!(service.terminate(), "SIGTERM must exit 0");
    let counts = per_source(&s, &["flows", "quarantine"]);
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(duplicated.is_empty(), "records not exactly once: {duplicated:?}");
    assert_eq!(counts.len(), total, "every produced record is in the lake or quarantine");
    for part in 0..PARTITIONS {
        for i in [0, PER_PARTITION / 2, PER_PARTITION - 1] {
            assert!(counts.contains_key(&format!("flows/{part}@{i}")), "flows/{part}@{i}");
        }
    }
    assert_offsets_not_ahead(&broker.bootstrap, &s.lake(), &group, "flows", PARTITIONS);
    let committed = committed_offsets(&broker.bootstrap, &group, "flows", PARTITIONS);
    for part in 0..PARTITIONS {
        assert_eq!(committed.get(&part).copied(), Some(PER_PARTITION as i64), "flows/{part}");
    }
}
