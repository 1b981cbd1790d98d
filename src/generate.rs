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
