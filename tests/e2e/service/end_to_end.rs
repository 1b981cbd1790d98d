//! Raw provider records of several formats produced to Kafka topics → `ztlake run` → lake rows
//! (the same as a file ingest of the same records), quarantine, alerts, and the SIEM feed
//! (OCSF JSON, one message per committed row, one Detection Finding per alert state); SIGTERM
//! exits 0 with every offset committed; `/healthz` and `/metrics` answer meanwhile; the alert
//! reaches on-call delivery (the outbox) and its `notified` step is in `alert_events`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;

use super::super::{Scratch, fixture};
use super::{
    MockKafka, Service, committed_offsets, consume_all, flow_line, free_port, http_get,
    kafka_section, produce, producer, rows, wait_for, write_config,
};

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(text.as_bytes()).expect("gzip");
    enc.finish().expect("gzip")
}

fn lines(rel: &str) -> Vec<String> {
    let text = std::fs::read_to_string(fixture(rel)).expect("fixture");
    text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

#[test]
fn records_become_rows_alerts_and_ocsf_feed_messages() {
    let broker =
        MockKafka::start(1, &["flows:2", "signins:1", "certs:1", "siem-events:3", "siem-alerts:1"]);
    let s = Scratch::new();
    let group = super::super::sources::unique("e2e-service");

    // Flows: plain lines, an internet → RDP flow (the admin-port rule fires), a bad record, a
    // message with three lines and a gzip'd message with two.
    let mut flow_messages: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    let mut flow_file = String::new();
    for i in 0..120 {
        let line = flow_line(i, 1);
        flow_file.push_str(&line);
        flow_file.push('\n');
        flow_messages[i % 2].push(line.into_bytes());
    }
    let rdp = "2 123456789012 eni-1 91.240.118.7 10.0.0.5 40000 3389 6 3 180 1700000000 1700000060 ACCEPT OK";
    let bad = "this is not a flow record";
    let multi = format!("{}\n{}\n{}\n", flow_line(500, 2), flow_line(501, 2), flow_line(502, 2));
    let zipped = format!("{}\n{}\n", flow_line(600, 3), flow_line(601, 3));
    for extra in [rdp, bad] {
        flow_file.push_str(extra);
        flow_file.push('\n');
        flow_messages[0].push(extra.as_bytes().to_vec());
    }
    flow_file.push_str(&multi);
    flow_file.push_str(&zipped);
    flow_messages[1].push(multi.into_bytes());
    flow_messages[1].push(gzip(&zipped));
    let signins = lines("azure/signins/entra-signin-categories.ndjson");
    let certs = lines("aws/certs/acm-cloudtrail.ndjson");

    // The oracle: a file ingest of the same records into another lake.
    let oracle = Scratch::new();
    std::fs::write(oracle.path("flows.log"), &flow_file).expect("write");
    std::fs::write(oracle.path("signins.ndjson"), signins.join("\n") + "\n").expect("write");
    std::fs::write(oracle.path("certs.ndjson"), certs.join("\n") + "\n").expect("write");
    oracle.ok(&[
        "ingest",
        "--format",
        "aws-vpcflow",
        oracle.path("flows.log").to_str().expect("p"),
    ]);
    oracle.ok(&["ingest", oracle.path("signins.ndjson").to_str().expect("p")]);
    oracle.ok(&["ingest", oracle.path("certs.ndjson").to_str().expect("p")]);
    let expected: BTreeMap<&str, i64> = ["flows", "signins", "cert_events", "quarantine"]
        .into_iter()
        .map(|t| (t, rows(&oracle, t)))
        .collect();
    assert!(expected["flows"] >= 125 && expected["signins"] > 0 && expected["cert_events"] > 0);
    assert!(expected["quarantine"] >= 1, "{expected:?}");

    let p = producer(&broker.bootstrap);
    for (partition, messages) in flow_messages.iter().enumerate() {
        produce(&p, "flows", i32::try_from(partition).expect("p"), messages);
    }
    let signin_msgs: Vec<Vec<u8>> = signins.iter().map(|l| l.clone().into_bytes()).collect();
    let cert_msgs: Vec<Vec<u8>> = certs.iter().map(|l| l.clone().into_bytes()).collect();
    produce(&p, "signins", 0, &signin_msgs);
    produce(&p, "certs", 0, &cert_msgs);

    let port = free_port();
    let extra = format!(
        "{}\n[siem]\nbrokers = \"{}\"\nevents_topic = \"siem-events\"\nalerts_topic = \"siem-alerts\"\n",
        kafka_section(
            &broker.bootstrap,
            &group,
            &[("flows", "aws-vpcflow"), ("signins", "auto"), ("certs", "auto")],
        ),
        broker.bootstrap
    );
    let config = write_config(s.dir.path(), &s.lake(), true, Some(port), &extra);
    let mut service = Service::start(&config, &s.path("service.log"));
    wait_for("every record in the lake", || {
        service.assert_running();
        expected.iter().all(|(t, n)| rows(&s, t) == *n)
    });
    let (status, health) = http_get(port, "/healthz").expect("healthz answers");
    assert_eq!((status, health.trim()), (200, "ok"));
    let (status, metrics) = http_get(port, "/metrics").expect("metrics answer");
    assert_eq!(status, 200);
    let flows_line = format!("ztlake_rows_out_total{{table=\"flows\"}} {}", expected["flows"]);
    assert!(metrics.contains(&flows_line), "{flows_line} not in:\n{metrics}");
    for name in [
        "ztlake_records_in_total",
        "ztlake_quarantined_total{reason=",
        "ztlake_flush_duration_seconds_count",
        "ztlake_kafka_messages_total{topic=\"flows\"}",
    ] {
        assert!(metrics.contains(name), "{name} not in:\n{metrics}");
    }
    assert!(service.terminate(), "SIGTERM must exit 0");

    // Nothing more, nothing less than the file ingest, and every offset acknowledged.
    for (t, n) in &expected {
        assert_eq!(rows(&s, t), *n, "{t}");
    }
    let committed = committed_offsets(&broker.bootstrap, &group, "flows", 2);
    for (partition, messages) in flow_messages.iter().enumerate() {
        let p = i32::try_from(partition).expect("p");
        assert_eq!(committed.get(&p).copied(), Some(messages.len() as i64), "flows/{p}");
    }
    assert_eq!(
        committed_offsets(&broker.bootstrap, &group, "signins", 1).get(&0).copied(),
        Some(signins.len() as i64)
    );
    let alerts = s.scalar(
        "SELECT count(*) FROM alerts WHERE rule_id = 'zt-net-admin-port-exposed' AND entity LIKE '%10.0.0.5%'",
    );
    assert_eq!(alerts, 1, "the admin-port alert is stored once");

    // On-call delivery: without [oncall], the alert goes to its runbook's owner as an .eml
    // file in the lake's outbox, and the delivery is recorded in alert_events.
    let mail = s.lake().join("outbox").join("mail");
    let emails: Vec<String> = std::fs::read_dir(&mail)
        .unwrap_or_else(|e| panic!("{}: {e}", mail.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| std::fs::read_to_string(e.path()).expect("eml").replace("\r\n ", " "))
        .collect();
    assert!(
        emails.iter().any(|m| m.contains("Admin port reachable from the internet")),
        "no admin-port email in {}: {emails:?}",
        mail.display()
    );
    let notified = s.scalar(
        "SELECT count(*) FROM alert_events e JOIN alerts a ON e.alert_id = a.alert_id \
         WHERE e.event = 'notified' AND a.rule_id = 'zt-net-admin-port-exposed'",
    );
    assert!(notified >= 1, "the delivery is recorded as a lifecycle step");

    // The feed: one OCSF event per committed row, uids matching the lake's.
    let want = usize::try_from(expected["flows"] + expected["signins"] + expected["cert_events"])
        .expect("n");
    let events = consume_all(&broker.bootstrap, "siem-events", 3, want);
    assert_eq!(events.len(), want, "one feed message per row, no duplicates");
    let mut by_class: BTreeMap<i64, usize> = BTreeMap::new();
    let mut uids = HashSet::new();
    for (key, e) in &events {
        let class = e["class_uid"].as_i64().expect("class_uid");
        *by_class.entry(class).or_default() += 1;
        assert!(e["time"].as_i64().is_some() && e["type_uid"].as_i64().is_some(), "{e}");
        assert!(key.as_deref().is_some_and(|k| !k.is_empty()), "keyed: {e}");
        assert!(uids.insert(e["metadata"]["uid"].as_str().expect("uid").to_owned()), "dup {e}");
        if class == 4001 && e["activity_id"] == 6 {
            assert!(e["src_endpoint"]["ip"].is_string() && e["traffic"].is_object(), "{e}");
            assert_eq!(key.as_deref(), e["src_endpoint"]["ip"].as_str());
        }
        if class == 3002 {
            assert!(e["user"].is_object() && e["status_id"].is_number(), "{e}");
        }
    }
    let flows = usize::try_from(expected["flows"]).expect("n");
    assert!(by_class.get(&4001).copied().unwrap_or(0) >= flows, "{by_class:?}");
    assert_eq!(
        by_class.get(&3002).copied(),
        Some(usize::try_from(expected["signins"]).expect("n"))
    );
    let lake_uids = per_uid(&s);
    assert_eq!(uids, lake_uids, "the feed carries exactly the committed rows");

    let findings = consume_all(&broker.bootstrap, "siem-alerts", 1, 1);
    let finding = findings
        .iter()
        .find(|(_, f)| f["finding_info"]["analytic"]["uid"] == "zt-net-admin-port-exposed")
        .unwrap_or_else(|| panic!("no finding in {findings:?}"));
    assert_eq!(finding.1["class_uid"], 2004);
    assert_eq!(finding.1["severity_id"], 4);
    assert_eq!(finding.0.as_deref(), finding.1["finding_info"]["uid"].as_str());
}

/// The event uids of every data row of the lake.
fn per_uid(s: &Scratch) -> HashSet<String> {
    let mut out = HashSet::new();
    for t in ["flows", "signins", "cert_events"] {
        for b in s.query(&format!("SELECT event_uid FROM {t}")) {
            out.extend(super::strings(b.column(0)));
        }
    }
    out
}
