//! The demo's dataset: four days of a small multi-cloud estate in the providers' own raw
//! formats — AWS VPC flow logs, Azure NSG flow logs, GCP VPC flow logs, Entra ID, Okta and AWS
//! CloudTrail sign-ins, AWS Private CA and Google CAS certificate issuance — with a handful of
//! incidents woven in, each one a shipped rule detects ([`INCIDENTS`]).
//!
//! Deterministic: the same seed writes the same bytes. The background is shaped so that the
//! shipped rules stay quiet on it (internet egress through the egress gateways, every
//! privileged sign-in from a managed device with MFA, short-lived workload certificates from
//! trusted CAs), while the posture KPIs move: device trust improves day by day, service
//! principals sign in often (the MFA denominator trap), some east-west traffic is plaintext.

use std::fmt::Write as _;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// 2024-05-06T00:00:00Z, the first day of the dataset.
pub(super) const START: i64 = 1_714_953_600;

/// Days of data.
pub(super) const DAYS: i64 = 4;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The AWS production account.
const AWS_ACCOUNT: &str = "123456789012";

/// The Entra ID tenant.
const TENANT: &str = "7c0ffee0-1111-4222-8333-944445555666";

/// The Azure subscription of the NSG flow logs.
const SUBSCRIPTION: &str = "5A1B2C3D-0000-4000-8000-00000000C0DE";

/// The GCP project of the flow logs.
const GCP_PROJECT: &str = "corp-prod";

/// The AWS Private CA.
const PRIVATE_CA: &str = "arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555";

/// One incident woven into the data.
#[derive(Debug, Clone, Copy)]
pub(super) struct Incident {
    /// The rule that detects it.
    pub rule: &'static str,
    /// Day of the dataset (0-based).
    pub day: i64,
    /// What happened.
    pub what: &'static str,
}

/// The incidents, in the order they happen.
pub(super) const INCIDENTS: &[Incident] = &[
    Incident {
        rule: "zt-net-legacy-plaintext-cross-segment",
        day: 2,
        what: "Azure: a dev host queries the directory over plaintext LDAP (10.40.3.17 -> 10.60.0.10:389)",
    },
    Incident {
        rule: "zt-id-password-spray",
        day: 2,
        what: "185.220.101.4 fails to sign in as 13 users across Entra ID and Okta within half an hour",
    },
    Incident {
        rule: "zt-net-admin-port-exposed",
        day: 2,
        what: "AWS: SSH on 10.0.0.5 accepts connections from the internet (91.240.118.7, then 45.83.64.10)",
    },
    Incident {
        rule: "zt-cert-long-lived-workload",
        day: 2,
        what: "AWS Private CA issues a two-year workload certificate",
    },
    Incident {
        rule: "zt-id-console-signin-without-mfa",
        day: 3,
        what: "IAM user ola signs in to the AWS console with a password only, from 91.240.118.7",
    },
    Incident {
        rule: "zt-net-egress-bypass",
        day: 3,
        what: "GCP: etl-2 (10.40.2.7) reaches the internet directly, around the egress proxy (scheduled rule)",
    },
];

/// One input file of the dataset.
#[derive(Debug, Clone)]
pub(super) struct InputFile {
    /// File name (the provider format is detected from the content).
    pub name: &'static str,
    /// What it holds.
    pub about: &'static str,
    /// Records, one per line.
    pub text: String,
}

/// Records with their time, sorted before writing (sources deliver in time order).
struct Lines(Vec<(i64, String)>);

impl Lines {
    fn new() -> Lines {
        Lines(Vec::new())
    }

    fn push(&mut self, t: i64, line: String) {
        self.0.push((t, line));
    }

    /// The records of every stream in time order (stable: equal times keep their stream order).
    fn merge(streams: Vec<Lines>) -> String {
        let mut all: Vec<(i64, String)> = streams.into_iter().flat_map(|l| l.0).collect();
        all.sort_by_key(|(t, _)| *t);
        let mut out = String::new();
        for (_, l) in all {
            out.push_str(&l);
            out.push('\n');
        }
        out
    }
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    let a: u128 = rng.random();
    let h = format!("{a:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A time in `day` between `from_h` and `to_h` o'clock.
fn at(rng: &mut ChaCha8Rng, day: i64, from_h: i64, to_h: i64) -> i64 {
    START + day * DAY + rng.random_range(from_h * 3600..to_h * 3600)
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// The whole dataset for `seed`, with `flows` background flow records per cloud and day: one
/// stream per table, as a collector forwarding every provider's logs delivers them (records of
/// several formats interleaved in time order; ztlake detects the format of each record). Time
/// order matters for the streaming rules: a row older than its rule's window plus lateness
/// arrives too late for live detection (backfill finds it later).
pub(super) fn dataset(seed: u64, flows: u64) -> Vec<InputFile> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let flows = usize::try_from(flows).unwrap_or(usize::MAX).max(10);
    let (aws, azure, gcp) =
        (aws_flows(&mut rng, flows), azure_flows(&mut rng, flows), gcp_flows(&mut rng, flows));
    let (entra, okta) = (entra_signins(&mut rng), okta_signins(&mut rng));
    let (trail_signins, trail_certs) = cloudtrail(&mut rng);
    let cas = cas_certificates(&mut rng);
    vec![
        InputFile {
            name: "flows.log",
            about: "AWS VPC flow logs (v2 default), Azure NSG flow logs (v2), GCP VPC flow logs",
            text: Lines::merge(vec![aws, azure, gcp]),
        },
        InputFile {
            name: "signins.ndjson",
            about: "Entra ID sign-ins (users, service principals), Okta System Log, AWS CloudTrail console sign-ins",
            text: Lines::merge(vec![entra, okta, trail_signins]),
        },
        InputFile {
            name: "cert-events.ndjson",
            about: "AWS CloudTrail (Private CA issuance), GCP audit logs (Certificate Authority Service)",
            text: Lines::merge(vec![trail_certs, cas]),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Flows.

/// One AWS VPC flow log line (v2 default format): the fields in the format's order.
#[allow(clippy::too_many_arguments)]
fn vpc_line(
    t: i64,
    eni: &str,
    src: &str,
    dst: &str,
    ports: (u16, u16),
    proto: u8,
    bytes: u64,
    accept: bool,
) -> String {
    format!(
        "2 {AWS_ACCOUNT} {eni} {src} {dst} {} {} {proto} {} {bytes} {t} {} {} OK",
        ports.0,
        ports.1,
        (bytes / 600).max(1),
        t + 60,
        if accept { "ACCEPT" } else { "REJECT" }
    )
}

fn aws_flows(rng: &mut ChaCha8Rng, per_day: usize) -> Lines {
    let clients: Vec<String> = (0..300)
        .map(|_| {
            format!(
                "{}.{}.{}.{}",
                pick(rng, &[81, 82, 86, 88, 92, 94, 151, 176, 188, 213]),
                rng.random_range(0..256),
                rng.random_range(0..256),
                rng.random_range(1..255)
            )
        })
        .collect();
    let mut lines = Lines::new();
    for day in 0..DAYS {
        for _ in 0..per_day {
            let t = at(rng, day, 0, 24);
            let app = format!("10.0.1.{}", rng.random_range(10..40));
            let sport = rng.random_range(32_768..61_000);
            let line = match rng.random_range(0..100) {
                0..45 => {
                    let dst = format!("10.0.2.{}", rng.random_range(10..20));
                    let port = *pick(rng, &[443, 443, 443, 8443]);
                    vpc_line(
                        t,
                        "eni-0a1b2c3d4e5f60001",
                        &app,
                        &dst,
                        (sport, port),
                        6,
                        rng.random_range(2_000..90_000),
                        true,
                    )
                }
                45..55 => vpc_line(
                    t,
                    "eni-0a1b2c3d4e5f60001",
                    &app,
                    "10.0.3.20",
                    (sport, 8080),
                    6,
                    rng.random_range(1_000..20_000),
                    true,
                ),
                55..70 => {
                    let client = pick(rng, &clients).clone();
                    let web = format!("10.30.1.{}", rng.random_range(10..14));
                    vpc_line(
                        t,
                        "eni-0a1b2c3d4e5f60002",
                        &client,
                        &web,
                        (sport, 443),
                        6,
                        rng.random_range(3_000..400_000),
                        true,
                    )
                }
                70..80 => vpc_line(
                    t,
                    "eni-0a1b2c3d4e5f60001",
                    &app,
                    "52.0.0.10",
                    (sport, 3128),
                    6,
                    rng.random_range(1_000..200_000),
                    true,
                ),
                80..90 => vpc_line(
                    t,
                    "eni-0a1b2c3d4e5f60001",
                    &app,
                    "10.0.0.2",
                    (sport, 53),
                    17,
                    rng.random_range(80..400),
                    true,
                ),
                90..95 => vpc_line(
                    t,
                    "eni-0a1b2c3d4e5f60003",
                    "10.0.250.5",
                    &app,
                    (sport, 22),
                    6,
                    rng.random_range(4_000..60_000),
                    true,
                ),
                _ => {
                    let scanner = format!(
                        "{}.{}.{}.{}",
                        rng.random_range(11..223),
                        rng.random_range(0..256),
                        rng.random_range(0..256),
                        rng.random_range(1..255)
                    );
                    let web = format!("10.30.1.{}", rng.random_range(10..14));
                    let port = *pick(rng, &[22, 3389]);
                    vpc_line(
                        t,
                        "eni-0a1b2c3d4e5f60002",
                        &scanner,
                        &web,
                        (sport, port),
                        6,
                        60,
                        false,
                    )
                }
            };
            lines.push(t, line);
        }
    }
    // Incident: SSH on 10.0.0.5 open to the internet (a security group allowing 0.0.0.0/0).
    let t = START + 2 * DAY + 14 * 3600 + 20 * 60;
    for (i, src) in ["91.240.118.7", "91.240.118.7", "91.240.118.7"].iter().enumerate() {
        let t = t + i as i64 * 40;
        lines.push(
            t,
            vpc_line(
                t,
                "eni-0a1b2c3d4e5f60009",
                src,
                "10.0.0.5",
                (51_544 + i as u16, 22),
                6,
                5_400,
                true,
            ),
        );
    }
    let t = START + 3 * DAY + 3 * 3600 + 5 * 60;
    lines.push(
        t,
        vpc_line(
            t,
            "eni-0a1b2c3d4e5f60009",
            "45.83.64.10",
            "10.0.0.5",
            (40_112, 22),
            6,
            3_100,
            true,
        ),
    );
    lines
}

fn azure_flows(rng: &mut ChaCha8Rng, per_day: usize) -> Lines {
    let mut lines = Lines::new();
    let resource = format!(
        "/SUBSCRIPTIONS/{SUBSCRIPTION}/RESOURCEGROUPS/CORE-RG/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/CORE-NSG"
    );
    let record = |t: i64, rule: &str, mac: &str, tuples: Vec<String>| {
        json!({
            "time": format!("{}.0000000Z", rfc3339(t).trim_end_matches('Z')),
            "systemId": "3f2a9c1e-7d4b-4e8f-9a60-1b2c3d4e5f60",
            "category": "NetworkSecurityGroupFlowEvent",
            "resourceId": resource,
            "operationName": "NetworkSecurityGroupFlowEvents",
            "properties": {"Version": 2, "flows": [{"rule": rule, "flows": [{"mac": mac, "flowTuples": tuples}]}]}
        })
        .to_string()
    };
    // One record per 10 minutes, holding that interval's tuples.
    let slots = DAYS * 144;
    let per_slot = (per_day / 144).max(1);
    for slot in 0..slots {
        let end = START + (slot + 1) * 600;
        let mut tuples = Vec::new();
        for _ in 0..per_slot {
            let t = end - rng.random_range(1..600);
            let sport = rng.random_range(32_768..61_000);
            let (src, dst, dport) = match rng.random_range(0..100) {
                0..55 => {
                    (format!("10.20.2.{}", rng.random_range(10..30)), "10.20.1.10".to_owned(), 443)
                }
                55..70 => {
                    (format!("10.0.12.{}", rng.random_range(10..30)), "10.0.12.4".to_owned(), 445)
                }
                70..85 => {
                    (format!("10.0.12.{}", rng.random_range(10..30)), "20.50.1.4".to_owned(), 443)
                }
                _ => {
                    (format!("10.0.12.{}", rng.random_range(10..30)), "10.0.13.7".to_owned(), 1433)
                }
            };
            let bytes = rng.random_range(2_000..80_000);
            tuples.push(format!(
                "{t},{src},{dst},{sport},{dport},T,O,A,E,{},{bytes},{},{}",
                bytes / 700 + 1,
                bytes / 900 + 1,
                bytes * 2
            ));
        }
        lines.push(end, record(end, "UserRule_allow-internal", "6045BDA1C2D3", tuples));
    }
    // Incident: plaintext LDAP from the dev segment to the directory.
    let t = START + 2 * DAY + 9 * 3600 + 40 * 60;
    let tuples = vec![
        format!("{},10.40.3.17,10.60.0.10,49822,389,T,O,A,E,12,2400,10,5100", t - 300),
        format!("{},10.40.3.17,10.60.0.10,49823,389,T,O,A,E,8,1600,8,3900", t - 120),
    ];
    lines.push(t, record(t, "UserRule_allow-ldap-legacy", "6045BDA1C2D4", tuples));
    lines
}

fn gcp_flow(
    t: i64,
    id: &str,
    src: &str,
    dst: &str,
    ports: (u16, u16),
    bytes: u64,
    vm: &str,
) -> String {
    json!({
        "insertId": id,
        "jsonPayload": {
            "bytes_sent": bytes.to_string(),
            "connection": {"dest_ip": dst, "dest_port": ports.1, "protocol": 6, "src_ip": src, "src_port": ports.0},
            "end_time": rfc3339(t + 5),
            "packets_sent": (bytes / 900 + 1).to_string(),
            "reporter": "SRC",
            "src_instance": {"project_id": GCP_PROJECT, "region": "europe-west4", "vm_name": vm, "zone": "europe-west4-a"},
            "src_vpc": {"project_id": GCP_PROJECT, "subnetwork_name": "data", "subnetwork_region": "europe-west4", "vpc_name": "prod-vpc"},
            "start_time": rfc3339(t)
        },
        "logName": format!("projects/{GCP_PROJECT}/logs/compute.googleapis.com%2Fvpc_flows"),
        "resource": {"type": "gce_subnetwork", "labels": {"location": "europe-west4", "project_id": GCP_PROJECT, "subnetwork_id": "7718293344556677889", "subnetwork_name": "data"}},
        "timestamp": rfc3339(t + 60)
    })
    .to_string()
}

fn gcp_flows(rng: &mut ChaCha8Rng, per_day: usize) -> Lines {
    let mut lines = Lines::new();
    let mut n = 0u64;
    for day in 0..DAYS {
        for _ in 0..per_day {
            n += 1;
            let t = at(rng, day, 0, 24);
            let host = rng.random_range(10..40);
            let src = format!("10.40.2.{host}");
            let vm = format!("etl-{host}");
            let sport = rng.random_range(32_768..61_000);
            let bytes = rng.random_range(1_000..120_000);
            let line = match rng.random_range(0..100) {
                0..60 => {
                    let dst = format!("10.40.5.{}", rng.random_range(10..20));
                    gcp_flow(t, &format!("demo-{n}"), &src, &dst, (sport, 443), bytes, &vm)
                }
                60..80 => {
                    gcp_flow(t, &format!("demo-{n}"), &src, "10.0.64.10", (sport, 3128), bytes, &vm)
                }
                _ => {
                    gcp_flow(t, &format!("demo-{n}"), &src, "10.40.5.30", (sport, 9000), bytes, &vm)
                }
            };
            lines.push(t, line);
        }
    }
    // Incident: etl-2 reaches two internet hosts directly, not through the proxy — in the last
    // hour of the data, where the demo runs the scheduled rules.
    let t = START + 3 * DAY + 23 * 3600 + 20 * 60;
    lines.push(
        t,
        gcp_flow(t, "demo-egress-1", "10.40.2.7", "142.250.74.59", (60_111, 443), 90_210, "etl-2"),
    );
    lines.push(
        t + 60,
        gcp_flow(
            t + 60,
            "demo-egress-2",
            "10.40.2.7",
            "185.199.108.133",
            (60_112, 443),
            1_210,
            "etl-2",
        ),
    );
    lines
}

// ---------------------------------------------------------------------------------------------
// Sign-ins.

/// People: (name, privileged, country). bob and carol are left out: the identities table marks
/// them terminated and disabled.
const PEOPLE: &[(&str, bool, &str)] = &[
    ("alice", true, "NL"),
    ("dave", true, "NL"),
    ("erin", false, "NL"),
    ("frank", false, "DE"),
    ("grace", false, "NL"),
    ("heidi", false, "DE"),
    ("ivan", false, "NL"),
    ("judy", false, "NL"),
    ("mallory", false, "DE"),
    ("niaj", false, "NL"),
    ("olivia", false, "NL"),
    ("peggy", false, "DE"),
    ("rupert", false, "NL"),
    ("sybil", false, "NL"),
    ("trent", false, "DE"),
    ("victor", false, "NL"),
];

/// The address a person signs in from (one per person: no impossible travel in the background).
fn home_ip(i: usize) -> String {
    format!("81.2.69.{}", 10 + i)
}

/// Whether a non-privileged person's device is managed on `day`: device trust improves as
/// laptops are enrolled (about 60 % on day 0, 90 % on day 3).
fn managed(rng: &mut ChaCha8Rng, privileged: bool, day: i64) -> bool {
    privileged || rng.random_bool(0.6 + 0.1 * day as f64)
}

#[allow(clippy::too_many_arguments)]
fn entra_user(
    rng: &mut ChaCha8Rng,
    t: i64,
    upn: &str,
    ip: &str,
    country: &str,
    ok: bool,
    mfa: bool,
    device: bool,
) -> String {
    let correlation = uuid(rng);
    let mut properties = json!({
        "userPrincipalName": upn,
        "userId": format!("0a0a0a0a-1111-4222-8333-{:012}", upn.len() * 7919 % 1_000_000),
        "appDisplayName": *pick(rng, &["Azure Portal", "Microsoft Teams", "Office 365 Exchange Online"]),
        "ipAddress": ip,
        "clientAppUsed": "Browser",
        "conditionalAccessStatus": "success",
        "isInteractive": true,
        "riskLevelDuringSignIn": "none",
        "riskState": "none",
        "authenticationRequirement": if mfa { "multiFactorAuthentication" } else { "singleFactorAuthentication" },
        "status": if ok { json!({"errorCode": 0}) } else { json!({"errorCode": 50126, "failureReason": "Invalid username or password."}) },
        "location": {"countryOrRegion": country},
        "deviceDetail": {
            "deviceId": if device { correlation.clone() } else { String::new() },
            "operatingSystem": "Windows10", "browser": "Edge 120.0",
            "isManaged": device, "isCompliant": device
        }
    });
    if ok && mfa {
        properties["authenticationDetails"] = json!([
            {"authenticationMethod": "Password", "succeeded": true},
            {"authenticationMethod": "Mobile app notification", "authenticationStepRequirement": "Multi-factor authentication", "succeeded": true}
        ]);
    }
    json!({
        "time": rfc3339(t),
        "resourceId": format!("/tenants/{TENANT}/providers/Microsoft.aadiam"),
        "operationName": "Sign-in activity",
        "category": "SignInLogs",
        "tenantId": TENANT,
        "resultType": if ok { "0" } else { "50126" },
        "callerIpAddress": ip,
        "correlationId": correlation,
        "properties": properties
    })
    .to_string()
}

fn entra_service(rng: &mut ChaCha8Rng, t: i64, name: &str) -> String {
    json!({
        "time": rfc3339(t),
        "resourceId": format!("/tenants/{TENANT}/providers/Microsoft.aadiam"),
        "operationName": "Sign-in activity",
        "category": "ServicePrincipalSignInLogs",
        "tenantId": TENANT,
        "resultType": "0",
        "callerIpAddress": "20.50.1.4",
        "correlationId": uuid(rng),
        "properties": {
            "servicePrincipalName": name,
            "servicePrincipalId": format!("5e5e5e5e-0000-4000-8000-{:012}", name.len()),
            "appId": format!("a0a0a0a0-0000-4000-8000-{:012}", name.len()),
            "appDisplayName": name,
            "ipAddress": "20.50.1.4",
            "status": {"errorCode": 0},
            "location": {"countryOrRegion": "NL"}
        }
    })
    .to_string()
}

fn entra_signins(rng: &mut ChaCha8Rng) -> Lines {
    let mut lines = Lines::new();
    for day in 0..DAYS {
        for (i, (name, privileged, country)) in PEOPLE.iter().enumerate() {
            for _ in 0..rng.random_range(1..4) {
                let t = at(rng, day, 7, 19);
                let device = managed(rng, *privileged, day);
                let line = entra_user(
                    rng,
                    t,
                    &format!("{name}@corp.example"),
                    &home_ip(i),
                    country,
                    true,
                    true,
                    device,
                );
                lines.push(t, line);
            }
        }
        // Workloads sign in all day long, without MFA (they cannot do MFA).
        for _ in 0..40 {
            let t = at(rng, day, 0, 24);
            let name = *pick(rng, &["ci-deploy", "backup-agent", "log-shipper"]);
            let line = entra_service(rng, t, name);
            lines.push(t, line);
        }
    }
    // Incident (first half): the spray against Entra ID.
    let t = START + 2 * DAY + 10 * 3600;
    for (i, (name, _, _)) in PEOPLE.iter().enumerate().take(8) {
        let t = t + i as i64 * 120;
        let line = entra_user(
            rng,
            t,
            &format!("{name}@corp.example"),
            "185.220.101.4",
            "RO",
            false,
            false,
            false,
        );
        lines.push(t, line);
    }
    lines
}

fn okta_event(
    t: i64,
    uuid: &str,
    user: &str,
    ip: &str,
    country: &str,
    ok: bool,
    device: bool,
) -> String {
    let mut event = json!({
        "uuid": uuid,
        "published": format!("{}.000Z", rfc3339(t).trim_end_matches('Z')),
        "eventType": "user.session.start",
        "version": "0",
        "displayMessage": "User login to Okta",
        "severity": "INFO",
        "actor": {"alternateId": user, "displayName": user.split('@').next().unwrap_or(user), "id": format!("00u{}", user.len() * 31), "type": "User"},
        "client": {"device": "Computer", "geographicalContext": {"country": country}, "ipAddress": ip, "userAgent": {"rawUserAgent": "Mozilla/5.0"}, "zone": "null"},
        "outcome": if ok { json!({"result": "SUCCESS", "reason": null}) } else { json!({"result": "FAILURE", "reason": "INVALID_CREDENTIALS"}) },
        "authenticationContext": {"externalSessionId": format!("idx{uuid}")},
        "debugContext": {"debugData": {"threatSuspected": "false"}}
    });
    if ok {
        event["debugContext"]["debugData"]["factor"] = json!("OKTA_VERIFY_PUSH");
        event["device"] = json!({"id": format!("guo{}", user.len()), "managed": device});
    } else {
        event["target"] = json!([{"id": "laePass", "type": "AuthenticatorEnrollment", "alternateId": "unknown", "displayName": "Password", "detailEntry": null}]);
    }
    event.to_string()
}

fn okta_signins(rng: &mut ChaCha8Rng) -> Lines {
    let mut lines = Lines::new();
    let mut n = 0u64;
    for day in 0..DAYS {
        for (i, (name, privileged, _)) in PEOPLE.iter().enumerate() {
            for _ in 0..rng.random_range(1..3) {
                n += 1;
                let t = at(rng, day, 7, 19);
                let device = managed(rng, *privileged, day);
                let line = okta_event(
                    t,
                    &format!("demo-{n}"),
                    &format!("{name}@corp.example"),
                    &home_ip(i),
                    "Netherlands",
                    true,
                    device,
                );
                lines.push(t, line);
            }
        }
    }
    // Incident (second half): the same address sprays Okta.
    let t = START + 2 * DAY + 10 * 3600 + 17 * 60;
    for (i, (name, _, _)) in PEOPLE.iter().enumerate().skip(8).take(5) {
        let t = t + i as i64 * 90;
        lines.push(
            t,
            okta_event(
                t,
                &format!("spray-{i}"),
                &format!("{name}@corp.example"),
                "185.220.101.4",
                "Romania",
                false,
                false,
            ),
        );
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// CloudTrail: console sign-ins and Private CA issuance.

fn console_sso(rng: &mut ChaCha8Rng, t: i64, user: &str, ip: &str) -> String {
    let role = "AWSReservedSSO_PowerUser_0123456789abcdef";
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLESSO:{user}"),
            "arn": format!("arn:aws:sts::{AWS_ACCOUNT}:assumed-role/{role}/{user}"),
            "accountId": AWS_ACCOUNT,
            "sessionContext": {
                "attributes": {"mfaAuthenticated": "true", "creationDate": rfc3339(t)},
                "sessionIssuer": {"type": "Role", "arn": format!("arn:aws:iam::{AWS_ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/{role}"), "userName": role}
            }
        },
        "eventTime": rfc3339(t),
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": ip,
        "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "requestParameters": null,
        "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"MobileVersion": "No", "MFAUsed": "No"},
        "eventID": uuid(rng),
        "eventType": "AwsConsoleSignIn",
        "recipientAccountId": AWS_ACCOUNT
    })
    .to_string()
}

fn console_iam_user(rng: &mut ChaCha8Rng, t: i64, user: &str, ip: &str) -> String {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLEOLA", "accountId": AWS_ACCOUNT, "userName": user, "arn": format!("arn:aws:iam::{AWS_ACCOUNT}:user/{user}")},
        "eventTime": rfc3339(t),
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip,
        "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "requestParameters": null,
        "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAUsed": "No"},
        "eventID": uuid(rng),
        "eventType": "AwsConsoleSignIn",
        "recipientAccountId": AWS_ACCOUNT
    })
    .to_string()
}

fn issue_certificate(rng: &mut ChaCha8Rng, t: i64, serial: u64, validity: (u32, &str)) -> String {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:cert-bot",
            "arn": format!("arn:aws:sts::{AWS_ACCOUNT}:assumed-role/pki-issuer/cert-bot"),
            "accountId": AWS_ACCOUNT,
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "arn": format!("arn:aws:iam::{AWS_ACCOUNT}:role/pki-issuer"), "accountId": AWS_ACCOUNT, "userName": "pki-issuer"}}
        },
        "eventTime": rfc3339(t),
        "eventSource": "acm-pca.amazonaws.com",
        "eventName": "IssueCertificate",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "10.0.9.20",
        "userAgent": "aws-sdk-go-v2/1.24.0",
        "requestParameters": {
            "certificateAuthorityArn": PRIVATE_CA,
            "csr": {"hb": [45, 46, 47]},
            "signingAlgorithm": "SHA256WITHECDSA",
            "validity": {"value": validity.0, "type": validity.1},
            "idempotencyToken": format!("i-{serial}")
        },
        "responseElements": {"certificateArn": format!("{PRIVATE_CA}/certificate/{serial:030}")},
        "requestID": uuid(rng),
        "eventID": uuid(rng),
        "eventType": "AwsApiCall",
        "recipientAccountId": AWS_ACCOUNT
    })
    .to_string()
}

/// CloudTrail: the console sign-ins and the Private CA issuance, as two streams.
fn cloudtrail(rng: &mut ChaCha8Rng) -> (Lines, Lines) {
    let mut signins = Lines::new();
    let mut certs = Lines::new();
    let mut serial = 1000u64;
    for day in 0..DAYS {
        for (i, (name, _, _)) in PEOPLE.iter().enumerate().take(6) {
            let t = at(rng, day, 8, 18);
            let line = console_sso(rng, t, &format!("{name}@corp.example"), &home_ip(i));
            signins.push(t, line);
        }
        for _ in 0..3 {
            serial += 1;
            let t = at(rng, day, 0, 24);
            let line = issue_certificate(rng, t, serial, (7, "DAYS"));
            certs.push(t, line);
        }
    }
    // Incident: a two-year workload certificate from the private CA.
    let t = START + 2 * DAY + 16 * 3600;
    let line = issue_certificate(rng, t, 999_999, (2, "YEARS"));
    certs.push(t, line);
    // Incident: a console sign-in with a password only.
    let t = START + 3 * DAY + 8 * 3600 + 15 * 60;
    let line = console_iam_user(rng, t, "ola", "91.240.118.7");
    signins.push(t, line);
    (signins, certs)
}

fn cas_certificates(rng: &mut ChaCha8Rng) -> Lines {
    let pool = "projects/acme-pki/locations/europe-west1/caPools/mesh-pool";
    let mut lines = Lines::new();
    let mut n = 0u64;
    for day in 0..DAYS {
        for _ in 0..6 {
            n += 1;
            let t = at(rng, day, 0, 24);
            let service = *pick(rng, &["checkout", "cart", "payments-api", "catalog", "search"]);
            let cn = format!("{service}.shop.svc");
            let id = format!("{service}-{n}");
            let mut serial = String::new();
            let _ = write!(serial, "{:014X}", rng.random_range(1u64 << 40..1u64 << 52));
            let line = json!({
                "insertId": format!("cas-{n}"),
                "logName": "projects/acme-pki/logs/cloudaudit.googleapis.com%2Factivity",
                "protoPayload": {
                    "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                    "authenticationInfo": {"principalEmail": "pki-issuer@acme-pki.iam.gserviceaccount.com"},
                    "requestMetadata": {"callerIp": "10.8.0.3", "callerSuppliedUserAgent": "grpc-go/1.62 cert-manager-google-cas-issuer"},
                    "serviceName": "privateca.googleapis.com",
                    "methodName": "google.cloud.security.privateca.v1.CertificateAuthorityService.CreateCertificate",
                    "request": {
                        "@type": "type.googleapis.com/google.cloud.security.privateca.v1.CreateCertificateRequest",
                        "certificate": {"config": {"subjectConfig": {"subject": {"commonName": cn}}}, "lifetime": "86400s"},
                        "certificateId": id,
                        "parent": pool
                    },
                    "response": {
                        "@type": "type.googleapis.com/google.cloud.security.privateca.v1.Certificate",
                        "certificateDescription": {"subjectDescription": {"hexSerialNumber": serial, "lifetime": "86400s", "notAfterTime": rfc3339(t + DAY), "notBeforeTime": rfc3339(t - 60), "subject": {"commonName": cn}}},
                        "issuerCertificateAuthority": format!("{pool}/certificateAuthorities/mesh-sub-ca-1"),
                        "name": format!("{pool}/certificates/{id}")
                    },
                    "status": {},
                    "resourceName": pool
                },
                "resource": {"labels": {"method": "google.cloud.security.privateca.v1.CertificateAuthorityService.CreateCertificate", "project_id": "acme-pki", "service": "privateca.googleapis.com"}, "type": "audited_resource"},
                "severity": "NOTICE",
                "timestamp": rfc3339(t)
            })
            .to_string();
            lines.push(t, line);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dataset_is_deterministic_and_holds_every_incident() {
        let a = dataset(7, 50);
        let b = dataset(7, 50);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.text, y.text, "{} differs between runs", x.name);
        }
        let c = dataset(8, 50);
        assert_ne!(a[0].text, c[0].text, "another seed, other data");
        let all: String = a.iter().map(|f| f.text.as_str()).collect();
        for needle in [
            "10.0.0.5 ",
            "185.220.101.4",
            "\"ola\"",
            "\"YEARS\"",
            "10.60.0.10,49822,389",
            "142.250.74.59",
        ] {
            assert!(all.contains(needle), "{needle} is not in the dataset");
        }
        for f in &a {
            let lines: Vec<&str> = f.text.lines().collect();
            assert!(lines.len() > 10, "{} has {} lines", f.name, lines.len());
            if f.name.ends_with(".ndjson") {
                for l in &lines {
                    serde_json::from_str::<serde_json::Value>(l).expect("one JSON record per line");
                }
            }
        }
    }
}
