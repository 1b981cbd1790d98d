//! `ztlake demo`: the whole product on a small multi-cloud dataset, under one directory, with no
//! external service. It writes four days of AWS, Azure and GCP flows, Entra ID, Okta and AWS
//! sign-ins and certificate issuance with incidents woven in ([`data`]); ingests them into a
//! local lake with the streaming rules on; runs every rule over the lake (the scheduled ones
//! too); hands the alerts to on-call delivery (email into the outbox as `.eml` files); prints
//! the alerts, where the emails are and example hunting queries; and writes the posture report.
//!
//! Deterministic for a seed (the inputs, the lake rows and the alerts; only wall-clock fields
//! such as `updated` differ), and it checks itself: the exit status is non-zero when an
//! incident woven into the data raised no alert.

mod data;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use ztlake_detections::{BackfillOptions, Mode};
use ztlake_storage::Lake;

use crate::alerts::{AlertFilter, list_alerts};
use crate::cli::{DemoArgs, OutputFormat};
use crate::commands::hunt::query_to_output;
use crate::hunt::HuntLimits;
use crate::pipeline::{self, Detection, IngestRequest, NoProgress};
use crate::posture::{self, PostureOptions};

use data::{DAYS, START};

/// The file that marks a directory as the demo's own (so a re-run may replace what it wrote).
const MARKER: &str = ".ztlake-demo";

/// Example hunting queries, printed and run by the demo.
pub const QUERIES: &[(&str, &str)] = &[
    (
        "Admin ports reached from the internet (accepted)",
        "SELECT dst_ip, dst_port, count(DISTINCT src_ip) AS sources, count(*) AS flows FROM flows WHERE dst_port IN (22, 3389, 5985, 5986) AND action = 'allow' AND is_public_ip(src_ip) AND is_private_ip(dst_ip) GROUP BY dst_ip, dst_port ORDER BY sources DESC",
    ),
    (
        "Failed sign-ins per source address, across IdPs",
        "SELECT src_ip, count(DISTINCT lower(user)) AS users, array_to_string(array_agg(DISTINCT provider), ',') AS providers, count(*) AS failures FROM signins WHERE outcome = 'failure' GROUP BY src_ip ORDER BY users DESC LIMIT 5",
    ),
    (
        "Successful human sign-ins without MFA",
        "SELECT time, provider, account, user, src_ip, event FROM signins WHERE outcome = 'success' AND mfa = false AND user_type IN ('human', 'federated') ORDER BY time",
    ),
    (
        "Plaintext legacy protocols crossing segments",
        "SELECT src_ip, asset_field(src_ip, 'segment') AS from_segment, dst_ip, asset_field(dst_ip, 'segment') AS to_segment, dst_port, count(*) AS flows FROM flows WHERE dst_port IN (21, 23, 389, 445) AND action = 'allow' GROUP BY 1, 2, 3, 4, 5 ORDER BY flows DESC LIMIT 5",
    ),
    (
        "Internet egress that bypasses the egress gateways",
        "SELECT src_ip, dst_ip, dst_port, provider, count(*) AS flows FROM flows WHERE action = 'allow' AND is_private_ip(src_ip) AND is_public_ip(dst_ip) AND NOT coalesce(is_egress_gateway(dst_ip), false) AND dst_port < src_port GROUP BY 1, 2, 3, 4",
    ),
    (
        "Certificate lifetimes by issuing service",
        "SELECT provider, service, count(*) AS issued, round(max(arrow_cast(not_after, 'Int64') - arrow_cast(coalesce(not_before, time), 'Int64')) / 86400e6, 1) AS longest_days FROM cert_events WHERE activity = 'issued' GROUP BY provider, service",
    ),
];

/// Run the demo.
pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let clock = Instant::now();
    let dir = &args.dir;
    prepare(dir)?;
    let inputs = dir.join("input");
    std::fs::create_dir_all(&inputs).with_context(|| format!("creating {}", inputs.display()))?;

    println!("ztlake demo — everything goes under {}\n", dir.display());
    println!(
        "1. inputs: {} days of a multi-cloud estate from {} (seed {}) in {}",
        DAYS,
        day(0),
        args.seed,
        inputs.display()
    );
    for file in data::dataset(args.seed, args.flows) {
        let path = inputs.join(file.name);
        std::fs::write(&path, &file.text).with_context(|| format!("writing {}", path.display()))?;
        println!("   {:<24} {:>6} records  {}", file.name, file.text.lines().count(), file.about);
    }
    println!("   incidents woven in:");
    for i in data::INCIDENTS {
        println!("   - {}: {}", day(i.day), i.what);
    }

    let pack =
        crate::pack::load(&crate::commands::rules::paths(&args.pack)).await.map_err(|p| {
            anyhow::anyhow!(
                "{p}the demo needs the detection pack (--rules, --runbooks, --reference)"
            )
        })?;
    let lake_dir = dir.join("lake");
    let lake = Lake::open(lake_dir.to_str().context("the demo directory must be UTF-8")?).await?;
    let started = chrono::Utc::now().timestamp_micros();

    println!("\n2. ingest into the lake at {}, streaming rules on", lake.url());
    let mut request = IngestRequest::new(vec![inputs.clone()]);
    // One parse thread keeps every stream in time order for the streaming rules.
    request.parse_threads = 1;
    request.detect = Some(Detection {
        rules: Arc::new(pack.rules.clone()),
        engine: ztlake_detections::EngineOptions::default(),
    });
    let summary = pipeline::ingest(&lake, &request, Arc::new(NoProgress)).await?;
    print!("{}", indent(&crate::commands::ingest::render(&summary, &lake)));

    let scheduled: Vec<String> = pack
        .rules
        .rules()
        .iter()
        .filter(|r| r.mode() == Mode::Scheduled)
        .map(|r| r.id().to_owned())
        .collect();
    let end = (START + DAYS * 86_400) * 1_000_000;
    println!(
        "\n3. the {} scheduled rules over the lake, every run of the last hour of data, as `ztlake run` \
         runs them (any range: ztlake --lake {} detect --from … --to …)",
        scheduled.len(),
        lake_dir.display()
    );
    let options = BackfillOptions {
        from: Some(end - 3_600_000_000),
        to: Some(end),
        ..BackfillOptions::default()
    };
    let detected = crate::detect::detect(&lake, &pack.rules.only(&scheduled), &options).await?;
    print!("{}", indent(&crate::commands::detect::render(&detected)));

    println!("\n4. on-call delivery (no SMTP server configured: email goes to the outbox)");
    let delivery = crate::oncall::deliver_since(&lake, None, &args.pack.runbooks, started).await?;
    print!("{}", indent(&crate::oncall::render(&delivery)));
    let emails = eml_files(&delivery.outbox);
    match emails.first() {
        Some(first) => println!(
            "   {} email(s) in {}, e.g. {}",
            emails.len(),
            delivery.outbox.display(),
            first.display()
        ),
        None => println!("   no email files in {}", delivery.outbox.display()),
    }

    println!("\n5. alerts (ztlake --lake {} alerts)", lake_dir.display());
    let alerts = list_alerts(&lake, &AlertFilter::default()).await?;
    print!("{}", indent(&crate::commands::alerts::table(&alerts)));
    let raised: BTreeSet<&str> = alerts.iter().map(|l| l.alert.rule_id.as_str()).collect();
    let mut missed = Vec::new();
    println!("   the woven-in incidents:");
    for i in data::INCIDENTS {
        let found = raised.contains(i.rule);
        println!("   [{}] {:<40} {}", if found { "x" } else { " " }, i.rule, i.what);
        if !found {
            missed.push(i.rule);
        }
    }

    println!(
        "\n6. hunt — example queries (run your own: ztlake --lake {} hunt \"SELECT …\")",
        lake_dir.display()
    );
    let hunter = crate::posture::compute::session(
        &lake,
        &crate::pack::load_reference(&args.pack.reference)
            .map_err(|p| anyhow::anyhow!("reference tables: {}", p.join("; ")))?,
        HuntLimits::default(),
    )
    .await?;
    for (title, sql) in QUERIES {
        println!("\n-- {title}\n{sql}");
        query_to_output(&hunter, sql, OutputFormat::Table, None).await?;
    }

    let report_path = dir.join("posture.html");
    println!(
        "\n7. Zero Trust posture: the last two days against the two before (ztlake --lake {} posture --from {} --to {})",
        lake_dir.display(),
        day(DAYS - 2),
        day(DAYS)
    );
    let options = PostureOptions {
        from: Some((START + (DAYS - 2) * 86_400) * 1_000_000),
        to: Some((START + DAYS * 86_400) * 1_000_000),
        reference: crate::pack::load_reference(&args.pack.reference)
            .map_err(|p| anyhow::anyhow!("reference tables: {}", p.join("; ")))?,
        ..PostureOptions::default()
    };
    let report = posture::report(&lake, &options).await?;
    posture::write_html(&report, &report_path)?;
    print!("{}", indent(&posture_summary(&report)));
    println!(
        "   the full report with charts, offenders and definitions: {}",
        report_path.display()
    );

    println!(
        "\ndone in {:.1} s; everything the demo wrote is under {}",
        clock.elapsed().as_secs_f64(),
        dir.display()
    );
    if !missed.is_empty() {
        eprintln!("demo: no alert for the woven-in incident(s) {}", missed.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Make `dir` ready: create it, or clear what an earlier demo wrote into it. A non-empty
/// directory that is not the demo's is refused rather than written over.
fn prepare(dir: &Path) -> Result<()> {
    let marker = dir.join(MARKER);
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none();
        if !empty && !marker.exists() {
            bail!(
                "{} is not empty and was not written by `ztlake demo`; choose another --dir",
                dir.display()
            );
        }
        for sub in ["input", "lake"] {
            let p = dir.join(sub);
            if p.exists() {
                std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&marker, "written by `ztlake demo`; a re-run replaces input/ and lake/\n")
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok(())
}

/// `YYYY-MM-DD` of dataset day `d`.
fn day(d: i64) -> String {
    crate::posture::measure::day_text((START / 86_400) + d)
}

fn indent(text: &str) -> String {
    text.lines().fold(String::new(), |mut out, l| {
        let _ = writeln!(out, "   {l}");
        out
    })
}

/// The `.eml` files under `dir` (recursive), sorted.
fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "eml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// One line per KPI: current value, previous period, change.
fn posture_summary(report: &posture::PostureReport) -> String {
    use crate::posture::report::{format_change, format_value};
    let mut out = String::new();
    let _ = writeln!(out, "{:<42} {:>12} {:>12} {:>12}", "KPI", "current", "previous", "change");
    for k in &report.kpis {
        let _ = writeln!(
            out,
            "{:<42} {:>12} {:>12} {:>12}",
            k.title,
            format_value(k.unit, k.current.value),
            format_value(k.unit, k.previous.value),
            format_change(k.unit, k.change)
        );
    }
    out
}
