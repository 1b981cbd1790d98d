//! Synthetic provider logs for benchmarks and demos: deterministic for a given seed.
//!
//! The data is shaped like a real estate rather than uniform noise: a pool of accounts, network
//! interfaces and internal hosts, a skewed port mix (443 dominates, some 22/3389/389/53), mostly
//! accepted flows with a share of rejects, occasional NODATA/SKIPDATA records, and times that
//! advance through the requested window — so dictionary encoding and statistics behave as they
//! would on production logs.

use std::io::{self, Write};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Options for generated AWS VPC flow logs (default v2 format).
#[derive(Debug, Clone)]
pub struct VpcFlowSpec {
    /// Number of lines.
    pub lines: u64,
    /// Seed of the generator.
    pub seed: u64,
    /// First `start` time, epoch seconds.
    pub start: i64,
    /// Span of `start` times over the whole file, seconds.
    pub span_secs: i64,
    /// Write the S3 header line first.
    pub header: bool,
}

impl Default for VpcFlowSpec {
    fn default() -> Self {
        Self { lines: 1_000_000, seed: 1, start: 1_700_000_000, span_secs: 86_400, header: true }
    }
}

const PORTS: [(u16, u32); 10] = [
    (443, 55),
    (80, 10),
    (53, 10),
    (22, 5),
    (3389, 3),
    (389, 2),
    (445, 2),
    (5432, 3),
    (8443, 5),
    (123, 5),
];

fn pick_port(rng: &mut ChaCha8Rng) -> u16 {
    let total: u32 = PORTS.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for (port, weight) in PORTS {
        if x < weight {
            return port;
        }
        x -= weight;
    }
    443
}

struct Pools {
    accounts: Vec<String>,
    enis: Vec<String>,
    internal: Vec<String>,
    external: Vec<String>,
}

impl Pools {
    fn new(rng: &mut ChaCha8Rng) -> Self {
        let accounts = (0..8)
            .map(|_| format!("{:012}", rng.random_range(100_000_000_000u64..999_999_999_999)))
            .collect();
        let enis =
            (0..2_000).map(|_| format!("eni-{:017x}", rng.random_range(0u64..(1 << 63)))).collect();
        let internal = (0..20_000)
            .map(|_| {
                format!(
                    "10.{}.{}.{}",
                    rng.random_range(0..64),
                    rng.random_range(0..256),
                    rng.random_range(1..255)
                )
            })
            .collect();
        let external = (0..50_000)
            .map(|_| {
                format!(
                    "{}.{}.{}.{}",
                    rng.random_range(11..223),
                    rng.random_range(0..256),
                    rng.random_range(0..256),
                    rng.random_range(1..255)
                )
            })
            .collect();
        Self { accounts, enis, internal, external }
    }
}

fn pick<'a>(rng: &mut ChaCha8Rng, pool: &'a [String]) -> &'a str {
    // Skewed: a quarter of the picks come from the first 2% of the pool (busy hosts).
    let n = pool.len();
    let i = if rng.random_bool(0.25) {
        rng.random_range(0..(n / 50).max(1))
    } else {
        rng.random_range(0..n)
    };
    pool.get(i).map_or("", String::as_str)
}

/// Write `spec.lines` AWS VPC flow log lines in the default v2 format.
pub fn vpc_flows(out: &mut dyn Write, spec: &VpcFlowSpec) -> io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let pools = Pools::new(&mut rng);
    let mut w = io::BufWriter::with_capacity(1 << 20, out);
    if spec.header {
        w.write_all(b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n")?;
    }
    let lines = spec.lines.max(1);
    let mut ibuf = itoa::Buffer::new();
    for i in 0..spec.lines {
        let start = spec.start + (i as i64 * spec.span_secs) / lines as i64;
        let end = start + rng.random_range(1..60);
        let eni = rng.random_range(0..pools.enis.len());
        let account = pools.accounts.get(eni % pools.accounts.len()).map_or("", String::as_str);
        let eni = pools.enis.get(eni).map_or("", String::as_str);
        w.write_all(b"2 ")?;
        w.write_all(account.as_bytes())?;
        w.write_all(b" ")?;
        w.write_all(eni.as_bytes())?;
        let status: u32 = rng.random_range(0..1000);
        if status < 3 {
            let kind: &[u8] = if status == 0 { b"SKIPDATA" } else { b"NODATA" };
            w.write_all(b" - - - - - - - ")?;
            w.write_all(ibuf.format(start).as_bytes())?;
            w.write_all(b" ")?;
            w.write_all(ibuf.format(end).as_bytes())?;
            w.write_all(b" - ")?;
            w.write_all(kind)?;
            w.write_all(b"\n")?;
            continue;
        }
        let inbound = rng.random_bool(0.5);
        let internet = rng.random_bool(0.3);
        let local = pick(&mut rng, &pools.internal);
        let remote = if internet {
            pick(&mut rng, &pools.external)
        } else {
            pick(&mut rng, &pools.internal)
        };
        let service = pick_port(&mut rng);
        let ephemeral: u16 = rng.random_range(32_768..61_000);
        let protocol: u8 = match service {
            53 | 123 => 17,
            _ if rng.random_bool(0.01) => 1,
            _ => 6,
        };
        let (src, dst, sport, dport) = if inbound {
            (remote, local, ephemeral, service)
        } else {
            (local, remote, ephemeral, service)
        };
        let (sport, dport) = if protocol == 1 { (0, 0) } else { (sport, dport) };
        let packets: u32 = rng.random_range(1..200);
        let bytes: u64 = u64::from(packets) * rng.random_range(40..1500);
        let reject = rng.random_bool(if internet && inbound { 0.3 } else { 0.03 });
        for (sep, part) in [(b" ", src.as_bytes()), (b" ", dst.as_bytes())] {
            w.write_all(sep)?;
            w.write_all(part)?;
        }
        for n in
            [u64::from(sport), u64::from(dport), u64::from(protocol), u64::from(packets), bytes]
        {
            w.write_all(b" ")?;
            w.write_all(ibuf.format(n).as_bytes())?;
        }
        for n in [start, end] {
            w.write_all(b" ")?;
            w.write_all(ibuf.format(n).as_bytes())?;
        }
        w.write_all(if reject { b" REJECT OK\n" } else { b" ACCEPT OK\n" })?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_flows_are_deterministic_and_well_formed() {
        let spec = VpcFlowSpec { lines: 2000, ..VpcFlowSpec::default() };
        let mut a = Vec::new();
        vpc_flows(&mut a, &spec).expect("generate");
        let mut b = Vec::new();
        vpc_flows(&mut b, &spec).expect("generate");
        assert_eq!(a, b, "same seed, same bytes");
        let text = String::from_utf8(a).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2001, "header + lines");
        assert!(lines.iter().skip(1).all(|l| l.split(' ').count() == 14), "14 fields each");
        let other = VpcFlowSpec { seed: 2, ..spec };
        let mut c = Vec::new();
        vpc_flows(&mut c, &other).expect("generate");
        assert_ne!(text.as_bytes(), c.as_slice());
    }
}

/// Options for generated Entra ID sign-in logs (diagnostic-settings records, one per line).
#[derive(Debug, Clone)]
pub struct EntraSpec {
    /// Number of records.
    pub records: u64,
    /// Seed of the generator.
    pub seed: u64,
    /// Time of the first record, epoch seconds.
    pub start: i64,
    /// Span of the records, seconds.
    pub span_secs: i64,
}

impl Default for EntraSpec {
    fn default() -> Self {
        Self { records: 100_000, seed: 1, start: 1_700_000_000, span_secs: 86_400 }
    }
}

fn uuid_from(rng: &mut ChaCha8Rng) -> String {
    let a: u128 = rng.random();
    let h = format!("{a:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Write `spec.records` Entra ID sign-in records (about 1.5 KB each): the four user and
/// workload categories, successes and failures with their error codes, MFA and device details,
/// risk and Conditional Access policies — the shape diagnostic settings deliver.
pub fn entra_signins(out: &mut dyn Write, spec: &EntraSpec) -> io::Result<()> {
    use serde_json::json;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let tenant = uuid_from(&mut rng);
    let users: Vec<(String, String)> =
        (0..5_000).map(|i| (format!("user{i}@contoso.example"), uuid_from(&mut rng))).collect();
    let apps = [
        "Office 365 Exchange Online",
        "Microsoft Teams",
        "Azure Portal",
        "Salesforce",
        "GitHub Enterprise",
    ];
    let ips: Vec<String> = (0..20_000)
        .map(|_| {
            format!(
                "{}.{}.{}.{}",
                rng.random_range(11..223),
                rng.random_range(0..256),
                rng.random_range(0..256),
                rng.random_range(1..255)
            )
        })
        .collect();
    let countries = ["US", "GB", "DE", "FR", "IN", "BR", "JP", "NL"];
    let mut w = io::BufWriter::with_capacity(1 << 20, out);
    let records = spec.records.max(1);
    for i in 0..spec.records {
        let t = spec.start + (i as i64 * spec.span_secs) / records as i64;
        let time = chrono::DateTime::from_timestamp(t, rng.random_range(0..1_000_000_000))
            .unwrap_or_default();
        let category = match rng.random_range(0..100) {
            0..60 => "SignInLogs",
            60..85 => "NonInteractiveUserSignInLogs",
            85..95 => "ServicePrincipalSignInLogs",
            _ => "ManagedIdentitySignInLogs",
        };
        let (upn, user_id) =
            users.get(rng.random_range(0..users.len())).cloned().unwrap_or_default();
        let code = match rng.random_range(0..100) {
            0..88 => 0,
            88..94 => 50126,
            94..96 => 50053,
            96..98 => 50140,
            _ => 50074,
        };
        let mfa = rng.random_bool(0.7);
        let ip = ips.get(rng.random_range(0..ips.len())).cloned().unwrap_or_default();
        let country = countries[rng.random_range(0..countries.len())];
        let app = apps[rng.random_range(0..apps.len())];
        let risk = if rng.random_bool(0.02) {
            "high"
        } else if rng.random_bool(0.05) {
            "low"
        } else {
            "none"
        };
        let correlation = uuid_from(&mut rng);
        let record = json!({
            "time": time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "resourceId": format!("/tenants/{tenant}/providers/Microsoft.aadiam"),
            "operationName": "Sign-in activity",
            "operationVersion": "1.0",
            "category": category,
            "tenantId": tenant,
            "resultType": code.to_string(),
            "resultSignature": "None",
            "resultDescription": if code == 0 { "" } else { "Invalid username or password." },
            "durationMs": rng.random_range(0..500),
            "callerIpAddress": ip,
            "correlationId": correlation,
            "identity": upn,
            "Level": 4,
            "location": country,
            "properties": {
                "id": uuid_from(&mut rng),
                "createdDateTime": time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "userDisplayName": upn.split('@').next().unwrap_or_default(),
                "userPrincipalName": upn,
                "userId": user_id,
                "appId": uuid_from(&mut rng),
                "appDisplayName": app,
                "ipAddress": ip,
                "status": { "errorCode": code, "failureReason": if code == 0 { "Other." } else { "Invalid username or password." } },
                "clientAppUsed": "Browser",
                "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/119.0",
                "deviceDetail": { "deviceId": if rng.random_bool(0.6) { uuid_from(&mut rng) } else { String::new() }, "operatingSystem": "Windows10", "browser": "Chrome 119.0", "isCompliant": rng.random_bool(0.8), "isManaged": rng.random_bool(0.85), "trustType": "Azure AD joined" },
                "location": { "city": "Redmond", "countryOrRegion": country },
                "correlationId": correlation,
                "conditionalAccessStatus": if rng.random_bool(0.8) { "success" } else { "notApplied" },
                "appliedConditionalAccessPolicies": [
                    { "id": uuid_from(&mut rng), "displayName": "Require MFA for admins", "enforcedGrantControls": ["Mfa"], "enforcedSessionControls": [], "result": if mfa { "success" } else { "notApplied" } }
                ],
                "authenticationRequirement": if mfa { "multiFactorAuthentication" } else { "singleFactorAuthentication" },
                "authenticationDetails": [
                    { "authenticationStepDateTime": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "authenticationMethod": "Password", "succeeded": code == 0, "authenticationStepRequirement": "Primary authentication" },
                    { "authenticationStepDateTime": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "authenticationMethod": if mfa { "Mobile app notification" } else { "Previously satisfied" }, "succeeded": code == 0, "authenticationStepRequirement": "Secondary authentication" }
                ],
                "riskDetail": "none",
                "riskLevelAggregated": risk,
                "riskLevelDuringSignIn": risk,
                "riskState": if risk == "none" { "none" } else { "atRisk" },
                "isInteractive": category == "SignInLogs",
                "tokenIssuerType": "AzureAD",
                "processingTimeInMilliseconds": rng.random_range(10..400)
            }
        });
        serde_json::to_writer(&mut w, &record)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

#[cfg(test)]
mod entra_tests {
    use super::*;

    #[test]
    fn generated_signins_are_deterministic_json_of_realistic_size() {
        let spec = EntraSpec { records: 200, ..EntraSpec::default() };
        let mut a = Vec::new();
        entra_signins(&mut a, &spec).expect("generate");
        let mut b = Vec::new();
        entra_signins(&mut b, &spec).expect("generate");
        assert_eq!(a, b);
        let text = String::from_utf8(a).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 200);
        let avg = text.len() / lines.len();
        assert!((1200..2200).contains(&avg), "about 1.5 KB per record, got {avg}");
        for l in &lines {
            let v: serde_json::Value = serde_json::from_str(l).expect("valid JSON");
            assert_eq!(v["operationName"], "Sign-in activity");
        }
    }
}
