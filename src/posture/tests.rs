//! KPI definitions tested on tiny hand-built lakes whose right answers are known: rows written
//! through the storage API (the same writer and Delta commit ingest uses) into a temporary lake,
//! then the whole report computed as `ztlake posture` computes it.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use serde_json::{Value as Json, json};
use ztlake_detections::Reference;
use ztlake_normalize::Table;
use ztlake_storage::{Lake, WriterOptions};

use super::report::{PostureReport, Verdict};
use super::{KpiReport, PostureOptions, report};

const DAY: i64 = 86_400_000_000;

/// 2024-05-01T00:00Z in µs.
const MAY_1: i64 = 19_844 * DAY;

/// Write `rows` (JSON objects with canonical column names; `date` derived from `time`) to
/// `table` in one commit.
async fn write(lake: &Lake, table: Table, rows: &[Json]) {
    let mut text = String::new();
    for row in rows {
        let mut row = row.clone();
        let obj = row.as_object_mut().expect("row object");
        let time = obj.get("time").and_then(Json::as_str).expect("row time").to_owned();
        obj.entry("date").or_insert_with(|| json!(time[..10]));
        text.push_str(&row.to_string());
        text.push('\n');
    }
    let mut reader = arrow::json::ReaderBuilder::new(table.schema())
        .with_strict_mode(true)
        .with_batch_size(rows.len().max(1))
        .build(Cursor::new(text))
        .expect("json reader");
    let batch = reader.next().expect("one batch").expect("rows decode");
    let options = WriterOptions { encoder_threads: 1, ..WriterOptions::default() };
    let mut writer = lake.writer(table, options).expect("writer");
    let files = tokio::task::spawn_blocking(move || {
        writer.write(batch)?;
        writer.finish()
    })
    .await
    .expect("writer task")
    .expect("write");
    lake.commit(table, files, Vec::new(), serde_json::Map::new()).await.expect("commit");
}

fn reference(tables: &[(&str, &str)]) -> Reference {
    let overrides: BTreeMap<String, String> =
        tables.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect();
    Reference::empty().with_csv(&overrides, Path::new("test-reference"), 1).expect("reference")
}

/// The report over 2024-05-01 – 2024-05-03 (previous period 2024-04-28 – 2024-04-30).
async fn posture(lake: &Lake, reference: Reference) -> PostureReport {
    let options = PostureOptions {
        from: Some(MAY_1),
        to: Some(MAY_1 + 3 * DAY),
        reference,
        ..PostureOptions::default()
    };
    report(lake, &options).await.expect("posture report")
}

fn kpi<'a>(report: &'a PostureReport, id: &str) -> &'a KpiReport {
    report.kpis.iter().find(|k| k.id == id).unwrap_or_else(|| panic!("no KPI {id}"))
}

fn daily(k: &KpiReport) -> Vec<Option<f64>> {
    k.daily.iter().map(|d| d.value.value.map(|v| (v * 1000.0).round() / 1000.0)).collect()
}

fn round(v: Option<f64>) -> Option<f64> {
    v.map(|v| (v * 1000.0).round() / 1000.0)
}

/// The values of column `name` of a KPI's offenders.
fn offender_column(k: &KpiReport, name: &str) -> Vec<String> {
    let t = k.offenders.as_ref().expect("offenders");
    let i = t
        .columns
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("{name} in {:?}", t.columns));
    t.rows.iter().map(|r| r[i].clone().unwrap_or_default()).collect()
}

fn signin(time: &str, provider: &str, account: &str, user: &str, extra: Json) -> Json {
    let mut row = json!({
        "time": time, "provider": provider, "account": account, "user": user,
        "user_type": "human", "outcome": "success", "event": "SignInLogs",
    });
    let obj = row.as_object_mut().expect("object");
    for (k, v) in extra.as_object().expect("extra object") {
        obj.insert(k.clone(), v.clone());
    }
    row
}

#[tokio::test]
async fn mfa_coverage_keeps_workloads_out_of_the_denominator_and_empty_days_have_no_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().to_str().expect("utf8")).await.expect("lake");
    let day1 = "2024-05-01T09:00:00Z";
    let mut rows = vec![
        signin(day1, "azure", "tenant-a", "alice@corp.example", json!({"mfa": true})),
        signin(day1, "azure", "tenant-a", "Dave@Corp.example", json!({"mfa": false})),
        signin(day1, "azure", "tenant-a", "bob@corp.example", json!({"mfa": false})),
        signin(day1, "azure", "tenant-a", "carol@corp.example", json!({"mfa": true})),
        signin(
            day1,
            "azure",
            "tenant-a",
            "erin@corp.example",
            json!({"mfa": true, "user_type": "federated"}),
        ),
        // Not interactive, failed, MFA not reported, type unknown: in no denominator.
        signin(
            day1,
            "azure",
            "tenant-a",
            "nonint@corp.example",
            json!({"mfa": false, "event": "NonInteractiveUserSignInLogs"}),
        ),
        signin(day1, "aws", "111", "step@corp.example", json!({"mfa": false, "event": "CheckMfa"})),
        signin(
            day1,
            "azure",
            "tenant-a",
            "failed@corp.example",
            json!({"mfa": false, "outcome": "failure"}),
        ),
        signin(
            day1,
            "aws",
            "111",
            "saml@corp.example",
            json!({"event": "AssumeRoleWithSAML", "via_idp": true}),
        ),
        signin(day1, "azure", "tenant-a", "unknown-type", json!({"mfa": false, "user_type": null})),
        // 2024-05-02: nothing at all. 2024-05-03: one sign-in with MFA, another provider.
        signin(
            "2024-05-03T08:00:00Z",
            "aws",
            "111",
            "bob@corp.example",
            json!({"mfa": true, "event": "ConsoleLogin"}),
        ),
        // Previous period: one human sign-in without MFA.
        signin(
            "2024-04-29T08:00:00Z",
            "azure",
            "tenant-a",
            "bob@corp.example",
            json!({"mfa": false}),
        ),
    ];
    // The trap: ten workload sign-ins without MFA. Counted, they would give 3/15 = 20 %.
    for i in 0..10 {
        rows.push(signin(
            day1,
            "azure",
            "tenant-a",
            &format!("svc-{i}"),
            json!({"mfa": false, "user_type": "service", "event": "ServicePrincipalSignInLogs"}),
        ));
    }
    write(&lake, Table::Signins, &rows).await;
    let identities = "user,display_name,status,privileged,terminated_at,break_glass,owner\n\
        alice@corp.example,Alice,active,true,,false,it\n\
        dave@corp.example,Dave,active,true,,false,it\n\
        bob@corp.example,Bob,active,false,,false,it\n";
    let r = posture(&lake, reference(&[("identities", identities)])).await;

    let mfa = kpi(&r, "mfa_coverage");
    assert_eq!(daily(mfa), vec![Some(60.0), None, Some(100.0)], "3 of 5 humans, no data, 1 of 1");
    assert_eq!((mfa.current.num, mfa.current.den), (4.0, 6));
    assert_eq!(round(mfa.current.value), Some(66.667));
    assert_eq!(mfa.previous.value, Some(0.0));
    assert_eq!(mfa.verdict, Verdict::Better);
    let by: BTreeMap<(String, Option<String>), Option<f64>> = mfa
        .breakdown
        .iter()
        .map(|b| ((b.provider.clone(), b.scope.clone()), b.current.value))
        .collect();
    assert_eq!(by[&("azure".to_owned(), Some("tenant-a".to_owned()))], Some(60.0));
    assert_eq!(by[&("aws".to_owned(), Some("111".to_owned()))], Some(100.0));
    let mut without = offender_column(mfa, "user");
    without.sort();
    assert_eq!(without, ["Dave@Corp.example", "bob@corp.example"]);

    let privileged = kpi(&r, "mfa_coverage_privileged");
    assert_eq!(
        daily(privileged),
        vec![Some(50.0), None, None],
        "alice yes, Dave (case-insensitive) no"
    );
    assert_eq!(offender_column(privileged, "user"), ["Dave@Corp.example"]);

    let workloads = kpi(&r, "workload_signins");
    assert_eq!(daily(workloads), vec![Some(10.0), None, Some(0.0)]);
    assert_eq!(workloads.current.value, Some(10.0));
    assert_eq!(workloads.verdict, Verdict::Unknown, "a volume, neither better nor worse");
    assert_eq!(offender_column(workloads, "signins").len(), 10);

    // Series per day × provider × account: the empty day has no row.
    assert!(mfa.series.iter().all(|s| s.day != "2024-05-02"));
    assert_eq!(mfa.series.len(), 2);
}

#[tokio::test]
async fn idp_consolidation_and_device_trust() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().to_str().expect("utf8")).await.expect("lake");
    let t = "2024-05-02T10:00:00Z";
    let mut rows = Vec::new();
    for _ in 0..2 {
        rows.push(signin(
            t,
            "aws",
            "111",
            "iam-ann",
            json!({"via_idp": false, "event": "ConsoleLogin"}),
        ));
    }
    for i in 0..3 {
        rows.push(signin(
            t,
            "aws",
            "111",
            &format!("fed-{i}"),
            json!({"via_idp": true, "user_type": "federated", "event": "ConsoleLogin"}),
        ));
    }
    rows.push(signin(
        t,
        "aws",
        "111",
        "unsaid",
        json!({"user_type": "federated", "event": "ConsoleLogin"}),
    ));
    rows.push(signin(
        t,
        "aws",
        "111",
        "root",
        json!({"via_idp": false, "user_type": "root", "outcome": "failure"}),
    ));
    rows.push(signin(t, "aws", "111", "svc", json!({"via_idp": false, "user_type": "service"})));
    for i in 0..5 {
        rows.push(signin(
            t,
            "okta",
            "corp.okta.com",
            &format!("okta-{i}"),
            json!({"via_idp": true, "event": "user.session.start"}),
        ));
    }
    // Device state: 2 trusted of 4 reported; 3 without device information.
    let device = |managed: Option<bool>, compliant: Option<bool>, user: &str| {
        signin(
            t,
            "azure",
            "tenant-a",
            user,
            json!({"device_managed": managed, "device_compliant": compliant, "via_idp": true}),
        )
    };
    rows.push(device(Some(true), None, "m"));
    rows.push(device(Some(false), Some(true), "c"));
    rows.push(device(Some(false), Some(false), "byod-1"));
    rows.push(device(Some(false), Some(false), "byod-1"));
    for u in ["n1", "n2", "n3"] {
        rows.push(device(None, None, u));
    }
    write(&lake, Table::Signins, &rows).await;
    let r = posture(&lake, Reference::empty()).await;

    let idp = kpi(&r, "idp_consolidation");
    // aws: 3 via IdP of 5 (2 IAM user sign-ins); azure: the 7 device rows, all via IdP; okta
    // and the unsaid, failed and workload sign-ins are left out.
    assert_eq!((idp.current.num, idp.current.den), (10.0, 12));
    let aws = idp.breakdown.iter().find(|b| b.provider == "aws").expect("aws");
    assert_eq!(aws.current.value, Some(60.0));
    assert!(idp.breakdown.iter().all(|b| b.provider != "okta"));
    assert_eq!(offender_column(idp, "user"), ["iam-ann"]);
    assert_eq!(offender_column(idp, "native_signins"), ["2"]);

    let trust = kpi(&r, "device_trust");
    assert_eq!(trust.current.value, Some(50.0));
    assert_eq!(daily(trust), vec![None, Some(50.0), None]);
    assert_eq!(offender_column(trust, "user"), ["byod-1"]);
}

fn flow(
    time: &str,
    format: &str,
    src: &str,
    sport: Option<i32>,
    dst: &str,
    dport: Option<i32>,
    extra: Json,
) -> Json {
    let provider = if format.starts_with("istio") { "kubernetes" } else { "aws" };
    let mut row = json!({
        "time": time, "provider": provider, "account": "111", "vpc": "vpc-1", "format": format,
        "src_ip": src, "src_port": sport, "dst_ip": dst, "dst_port": dport, "protocol": 6,
        "action": "allow",
    });
    let obj = row.as_object_mut().expect("object");
    for (k, v) in extra.as_object().expect("extra object") {
        obj.insert(k.clone(), v.clone());
    }
    row
}

#[tokio::test]
async fn network_encryption_exposure_and_egress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().to_str().expect("utf8")).await.expect("lake");
    let (d1, d2) = ("2024-05-01T10:00:00Z", "2024-05-02T10:00:00Z");
    let spiffe = json!({"peer_identity": "spiffe://cluster.local/ns/shop/sa/web"});
    let none = json!({});
    let vpc = "aws-vpcflow";
    let rows = vec![
        // Mesh: 3 of 4 accepted east-west flows with a peer identity.
        flow(d1, "istio-access", "10.44.0.1", Some(40000), "10.44.0.2", Some(8080), spiffe.clone()),
        flow(d1, "istio-access", "10.44.0.1", Some(40001), "10.44.0.2", Some(8080), spiffe.clone()),
        flow(d1, "istio-access", "10.44.0.3", Some(40002), "10.44.0.2", Some(8080), spiffe),
        flow(d1, "istio-access", "10.44.0.9", Some(40003), "10.44.0.2", Some(8080), none.clone()),
        flow(
            d1,
            "istio-access",
            "10.44.0.9",
            Some(40004),
            "10.44.0.2",
            Some(8080),
            json!({"action": "deny"}),
        ),
        flow(
            d1,
            "istio-access",
            "91.240.118.7",
            Some(40005),
            "10.44.0.2",
            Some(8080),
            none.clone(),
        ),
        // VPC east-west: 4 of 5 encrypted (443 twice, a response from 443, provider-encrypted).
        flow(d1, vpc, "10.0.1.1", Some(50000), "10.0.1.2", Some(443), none.clone()),
        flow(d1, vpc, "10.0.1.1", Some(50001), "10.0.1.2", Some(443), none.clone()),
        flow(d1, vpc, "10.0.1.2", Some(443), "10.0.1.1", Some(50000), none.clone()),
        flow(d1, vpc, "10.0.1.1", Some(50002), "10.0.1.3", Some(5432), json!({"encrypted": true})),
        flow(d1, vpc, "10.0.1.1", Some(50003), "10.0.1.4", Some(5432), none.clone()),
        flow(d1, vpc, "10.0.1.1", None, "10.0.1.4", None, json!({"protocol": 1})),
        // Legacy plaintext: 2 Telnet flows to an internal host count; encrypted SMB and FTP to
        // the internet do not.
        flow(d1, vpc, "10.0.2.1", Some(50010), "10.0.2.9", Some(23), none.clone()),
        flow(d1, vpc, "10.0.2.1", Some(50011), "10.0.2.9", Some(23), none.clone()),
        flow(d1, vpc, "10.0.2.1", Some(50012), "10.0.2.9", Some(445), json!({"encrypted": true})),
        flow(d1, vpc, "10.0.2.1", Some(50013), "8.8.4.4", Some(21), none.clone()),
        // Exposure: one path on day 1 and day 2, another on day 2; a denied one and an internal
        // one do not count.
        flow(d1, vpc, "91.240.118.7", Some(51000), "10.0.0.5", Some(22), none.clone()),
        flow(d2, vpc, "91.240.118.7", Some(51001), "10.0.0.5", Some(22), none.clone()),
        flow(d2, vpc, "185.220.101.4", Some(51002), "10.0.0.5", Some(3389), none.clone()),
        flow(
            d2,
            vpc,
            "185.220.101.5",
            Some(51003),
            "10.0.0.6",
            Some(22),
            json!({"action": "deny"}),
        ),
        flow(d2, vpc, "10.0.9.9", Some(51004), "10.0.0.5", Some(22), none.clone()),
        // Egress (day 2): 1 of 4 bypasses; a response flow is not egress.
        flow(d2, vpc, "10.0.0.7", Some(50000), "8.8.8.8", Some(443), none.clone()),
        flow(d2, vpc, "10.0.5.10", Some(50001), "8.8.8.8", Some(443), none.clone()),
        flow(d2, vpc, "10.0.0.8", Some(50002), "52.0.0.10", Some(443), none.clone()),
        flow(
            d2,
            vpc,
            "10.0.0.9",
            Some(50003),
            "8.8.8.8",
            Some(443),
            json!({"traffic_path": "same_vpc"}),
        ),
        flow(d2, vpc, "10.0.0.7", Some(443), "8.8.8.8", Some(50000), none),
    ];
    write(&lake, Table::Flows, &rows).await;
    let gateways =
        "name,cidr,provider,account\nproxy,52.0.0.10,aws,111\nproxy-internal,10.0.5.10,aws,111\n";
    let r = posture(&lake, reference(&[("egress_gateways", gateways)])).await;

    let mesh = kpi(&r, "mtls_mesh");
    assert_eq!(mesh.current.value, Some(75.0));
    assert_eq!(offender_column(mesh, "src_ip"), ["10.44.0.9"]);

    let enc = kpi(&r, "encrypted_east_west");
    // Private-to-private VPC flows with a port: day 1's 5 above plus 3 legacy ones (23, 23
    // plain; 445 provider-encrypted), and day 2's internal SSH: 6 encrypted of 9.
    assert_eq!((enc.current.num, enc.current.den), (6.0, 9));
    let servers = offender_column(enc, "server");
    assert!(
        servers.contains(&"10.0.1.4".to_owned()) && servers.contains(&"10.0.2.9".to_owned()),
        "{servers:?}"
    );

    let legacy = kpi(&r, "legacy_plaintext");
    assert_eq!(daily(legacy), vec![Some(2.0), Some(0.0), None]);

    let exposed = kpi(&r, "exposed_admin_paths");
    assert_eq!(daily(exposed), vec![Some(1.0), Some(2.0), None], "day 3 has no flows: no data");
    assert_eq!(exposed.current.value, Some(2.0), "a path seen on two days counts once");
    assert_eq!(offender_column(exposed, "dst_ip"), ["10.0.0.5", "10.0.0.5"]);

    // Egress: day 2's 4 flows (1 bypasses) plus day 1's FTP to the internet (bypasses too).
    let egress = kpi(&r, "egress_bypass");
    assert_eq!(egress.current.value, Some(40.0));
    assert_eq!(offender_column(egress, "src_ip"), ["10.0.0.7", "10.0.2.1"]);
}

fn cert(time: &str, activity: &str, id: Json, not_before: Option<&str>, not_after: &str) -> Json {
    let mut row = json!({
        "time": time, "provider": "aws", "account": "111", "activity": activity,
        "not_before": not_before, "not_after": not_after, "issuer": "Corp Issuing CA",
    });
    let obj = row.as_object_mut().expect("object");
    for (k, v) in id.as_object().expect("id object") {
        obj.insert(k.clone(), v.clone());
    }
    row
}

#[tokio::test]
async fn certificate_hygiene() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().to_str().expect("utf8")).await.expect("lake");
    let (d1, d2) = ("2024-05-01T10:00:00Z", "2024-05-02T10:00:00Z");
    let rows = vec![
        // Lifetimes: exactly 90 days, 397 days, 7 days (issued twice: one certificate).
        cert(
            d1,
            "issued",
            json!({"serial": "a1", "subject": "CN=a"}),
            Some("2024-05-01T00:00:00Z"),
            "2024-07-30T00:00:00Z",
        ),
        cert(
            d1,
            "issued",
            json!({"serial": "b1", "subject": "CN=b"}),
            Some("2024-05-01T00:00:00Z"),
            "2025-06-02T00:00:00Z",
        ),
        cert(
            d1,
            "issued",
            json!({"serial": "c1", "subject": "CN=c"}),
            Some("2024-05-01T00:00:00Z"),
            "2024-05-08T00:00:00Z",
        ),
        cert(
            d2,
            "issued",
            json!({"serial": "c1", "subject": "CN=c"}),
            Some("2024-05-01T00:00:00Z"),
            "2024-05-08T00:00:00Z",
        ),
        // Expiring soon, seen on the wire; a managed certificate renewed under the same id.
        cert(
            d2,
            "presented",
            json!({"serial": "s1", "subject": "CN=soon"}),
            None,
            "2024-05-10T00:00:00Z",
        ),
        cert(
            d1,
            "expiring",
            json!({"cert_id": "kv-1", "serial": "k1"}),
            None,
            "2024-05-06T00:00:00Z",
        ),
        cert(
            d2,
            "renewed",
            json!({"cert_id": "kv-1", "serial": "k2"}),
            None,
            "2025-05-06T00:00:00Z",
        ),
        // An expired certificate still presented (twice), and a valid one presented.
        cert(
            d2,
            "presented",
            json!({"serial": "x1", "subject": "CN=old"}),
            None,
            "2024-04-01T00:00:00Z",
        ),
        cert(
            "2024-05-02T11:00:00Z",
            "presented",
            json!({"serial": "x1", "subject": "CN=old"}),
            None,
            "2024-04-01T00:00:00Z",
        ),
        cert(
            d2,
            "presented",
            json!({"serial": "v1", "subject": "CN=valid"}),
            None,
            "2025-04-01T00:00:00Z",
        ),
    ];
    write(&lake, Table::CertEvents, &rows).await;
    let r = posture(&lake, Reference::empty()).await;

    // kv-1's renewal has no not_before: its lifetime runs from the event (2024-05-02T10:00)
    // to 2025-05-06, 369 days.
    let l90 = kpi(&r, "cert_lifetime_90d");
    assert_eq!(
        (l90.current.num, l90.current.den),
        (2.0, 4),
        "90 days counts, 397 and 369 do not, c1 once"
    );
    assert_eq!(offender_column(l90, "serial"), ["b1", "k2"]);
    let l30 = kpi(&r, "cert_lifetime_30d");
    assert_eq!((l30.current.num, l30.current.den), (1.0, 4));
    assert_eq!(daily(l30), vec![Some(33.333), Some(0.0), None]);

    let expiring = kpi(&r, "cert_expiring_14d");
    // Within 14 days of 2024-05-04: CN=soon (05-10) and c1 (05-08); kv-1 was renewed.
    assert_eq!(expiring.current.value, Some(2.0));
    let mut soon = offender_column(expiring, "certificate");
    soon.sort();
    assert_eq!(soon, ["c1", "s1"]);

    let expired = kpi(&r, "cert_expired_seen");
    assert_eq!(expired.current.value, Some(1.0));
    assert_eq!(offender_column(expired, "times_seen"), ["2"]);
    assert_eq!(daily(expired), vec![Some(0.0), Some(1.0), None]);
}

fn step(time: &str, alert: &str, event: &str, severity: &str) -> Json {
    json!({
        "time": time, "provider": "aws", "alert_id": alert, "event": event,
        "rule_id": "zt-test", "severity": severity, "event_id": format!("{alert}-{event}-{time}"),
    })
}

#[tokio::test]
async fn response_times_per_severity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().to_str().expect("utf8")).await.expect("lake");
    let rows = vec![
        step("2024-05-01T00:00:00Z", "a1", "raised", "high"),
        step("2024-05-01T00:01:00Z", "a1", "notified", "high"),
        step("2024-05-01T00:10:00Z", "a1", "acknowledged", "high"),
        step("2024-05-01T01:00:00Z", "a1", "resolved", "high"),
        step("2024-05-01T02:00:00Z", "a2", "raised", "high"),
        step("2024-05-01T02:30:00Z", "a2", "acknowledged", "high"),
        step("2024-05-02T00:00:00Z", "a3", "raised", "low"),
        step("2024-05-02T00:05:00Z", "a3", "resolved", "low"),
        step("2024-05-02T00:00:00Z", "a4", "raised", "high"),
        step("2024-05-03T00:00:00Z", "a5", "raised", "critical"),
        // After the report's end: not yet acknowledged as far as the report knows.
        step("2024-05-04T01:00:00Z", "a5", "acknowledged", "critical"),
    ];
    write(&lake, Table::AlertEvents, &rows).await;
    let r = posture(&lake, Reference::empty()).await;

    let tta = kpi(&r, "tta_mean");
    assert_eq!(tta.current.value, Some(900.0), "(600 + 1800 + 300) / 3");
    let high = tta.breakdown.iter().find(|b| b.scope.as_deref() == Some("high")).expect("high");
    assert_eq!(high.current.value, Some(1200.0));
    assert_eq!(kpi(&r, "tta_p90").current.value, Some(1800.0));
    assert_eq!(kpi(&r, "ttr_mean").current.value, Some(1950.0), "(3600 + 300) / 2");
    assert_eq!(kpi(&r, "ttr_p90").current.value, Some(3600.0));
    assert_eq!(offender_column(tta, "alert_id"), ["a2", "a1", "a3"]);

    let unacked = kpi(&r, "alerts_unacknowledged");
    assert_eq!(unacked.current.value, Some(2.0));
    assert_eq!(daily(unacked), vec![Some(0.0), Some(1.0), Some(1.0)]);
    assert_eq!(offender_column(unacked, "alert_id"), ["a4", "a5"]);
    assert_eq!(kpi(&r, "tta_mean").previous.value, None, "no alerts in the previous period");
}

#[tokio::test]
async fn telemetry_coverage_and_silent_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().to_str().expect("utf8")).await.expect("lake");
    let f = |time: &str, vpc: &str| json!({"time": time, "provider": "aws", "account": "111", "vpc": vpc, "action": "allow"});
    write(
        &lake,
        Table::Flows,
        &[
            f("2024-05-01T01:00:00Z", "vpc-x"),
            f("2024-05-02T01:00:00Z", "vpc-x"),
            f("2024-05-03T01:00:00Z", "vpc-x"),
            f("2024-04-30T01:00:00Z", "vpc-y"),
            f("2024-05-01T01:00:00Z", "vpc-y"),
        ],
    )
    .await;
    write(&lake, Table::Signins, &[signin("2024-05-03T05:00:00Z", "okta", "corp", "u", json!({}))])
        .await;
    let r = posture(&lake, Reference::empty()).await;

    let reporting = kpi(&r, "reporting_sources");
    assert_eq!(daily(reporting), vec![Some(2.0), Some(1.0), Some(2.0)]);
    assert_eq!(reporting.current.value, Some(3.0));
    assert_eq!(offender_column(reporting, "vpc"), ["vpc-y", "", "vpc-x"]);
    assert_eq!(offender_column(reporting, "days_reporting"), ["1", "1", "3"]);

    let silent = kpi(&r, "silent_sources");
    assert_eq!(daily(silent), vec![Some(0.0), Some(1.0), Some(1.0)]);
    assert_eq!(silent.current.value, Some(1.0));
    assert_eq!(offender_column(silent, "vpc"), ["vpc-y"]);
    assert_eq!(offender_column(silent, "last_day"), ["2024-05-01"]);
}

#[tokio::test]
async fn an_empty_lake_reports_no_data_everywhere_and_renders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake").to_str().expect("utf8")).await.expect("lake");
    let r = report(&lake, &PostureOptions::default()).await.expect("report on an empty lake");
    assert_eq!(r.days.len(), 30, "the default period is 30 days");
    assert_eq!(r.kpis.len(), super::kpi::KPIS.len());
    for k in &r.kpis {
        assert_eq!(k.current.value, None, "{}", k.id);
        assert_eq!(k.previous.value, None, "{}", k.id);
        assert!(k.daily.iter().all(|d| d.value.value.is_none()), "{}", k.id);
        assert!(k.offenders.as_ref().is_none_or(|t| t.rows.is_empty()), "{}", k.id);
    }
    let page = super::html::render(&r).expect("html");
    assert_eq!(page.matches("<svg").count(), r.kpis.len());
    assert!(page.contains("no data in this period"));
    let text = super::text::render(&r);
    assert!(text.contains("no data"), "{text}");
    let json = serde_json::to_value(&r).expect("json");
    assert!(json["kpis"][0]["current"]["value"].is_null());
}

#[tokio::test]
async fn hostile_values_are_escaped_in_html_and_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().to_str().expect("utf8")).await.expect("lake");
    let evil = "<script>alert(1)</script>\u{1b}[2J\"'&";
    write(
        &lake,
        Table::Signins,
        &[signin(
            "2024-05-02T10:00:00Z",
            "aws",
            "<img src=x onerror=alert(2)>",
            evil,
            json!({"mfa": false}),
        )],
    )
    .await;
    let r = posture(&lake, Reference::empty()).await;
    assert_eq!(offender_column(kpi(&r, "mfa_coverage"), "user"), [evil]);
    let page = super::html::render(&r).expect("html");
    assert!(!page.contains("<script"), "a script tag reached the page");
    assert!(!page.contains("<img"), "an img tag reached the page");
    assert!(!page.contains('\u{1b}'));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("&lt;img src=x onerror=alert(2)&gt;"));
    let text = super::text::render(&r);
    assert!(!text.contains('\u{1b}'), "an escape sequence reached the terminal");
}

#[test]
fn the_readme_lists_every_kpi_definition() {
    let readme = include_str!("../../README.md");
    let (Some(start), Some(end)) =
        (readme.find("<!-- posture:begin -->"), readme.find("<!-- posture:end -->"))
    else {
        panic!("README.md has no <!-- posture:begin --> … <!-- posture:end --> section");
    };
    let section = readme[start + "<!-- posture:begin -->".len()..end].trim();
    assert_eq!(
        section,
        super::kpi::markdown().trim(),
        "README's Posture KPIs table differs from the KPI list; paste `ztlake posture --definitions`"
    );
}
