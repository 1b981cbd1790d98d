//! `ztlake demo`: the whole pipeline on sample data, under one directory, with no external
//! service: generated AWS VPC flow logs plus the bundled real-shape samples are ingested into a
//! local lake, then example hunting queries run over it.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use ztlake_storage::Lake;

use crate::cli::{DemoArgs, OutputFormat};
use crate::commands::hunt::query_to_output;
use crate::generate::{VpcFlowSpec, vpc_flows};
use crate::hunt::{HuntLimits, Hunter};
use crate::pipeline::{self, IngestRequest, NoProgress};

/// Bundled samples (the project's own fixtures), embedded in the binary.
const SAMPLES: &[(&str, &[u8])] = &[
    (
        "aws-vpcflow-v2-default.log",
        include_bytes!("../../normalize/tests/fixtures/aws/flows/vpcflow-v2-default.log"),
    ),
    (
        "aws-vpcflow-custom-order.log",
        include_bytes!("../../normalize/tests/fixtures/aws/flows/vpcflow-custom-order.log"),
    ),
    (
        "aws-vpcflow-v5.log",
        include_bytes!("../../normalize/tests/fixtures/aws/flows/vpcflow-v5-inferred.log"),
    ),
    (
        "aws-vpcflow-hostile.log",
        include_bytes!("../../normalize/tests/fixtures/aws/flows/vpcflow-hostile.log"),
    ),
];

/// Example hunting queries, printed and run by the demo.
pub const QUERIES: &[(&str, &str)] = &[
    (
        "Top talkers by bytes",
        "SELECT src_ip, dst_ip, dst_port, sum(bytes) AS bytes FROM flows WHERE status = 'ok' GROUP BY 1, 2, 3 ORDER BY bytes DESC LIMIT 5",
    ),
    (
        "Admin ports reached from the internet (accepted)",
        "SELECT dst_port, count(DISTINCT src_ip) AS sources, count(*) AS flows FROM flows WHERE dst_port IN (22, 3389, 5985, 5986) AND action = 'allow' AND NOT (src_ip LIKE '10.%' OR src_ip LIKE '192.168.%' OR src_ip LIKE '172.%') GROUP BY dst_port ORDER BY dst_port",
    ),
    (
        "Plaintext LDAP/SMB crossing the network",
        "SELECT dst_port, count(*) AS flows, sum(bytes) AS bytes FROM flows WHERE dst_port IN (389, 445) GROUP BY dst_port ORDER BY dst_port",
    ),
    (
        "What went to quarantine, and why",
        "SELECT reason, count(*) AS records FROM quarantine GROUP BY reason ORDER BY records DESC",
    ),
];

/// Run the demo.
pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let inputs = args.dir.join("input");
    std::fs::create_dir_all(&inputs).with_context(|| format!("creating {}", inputs.display()))?;
    write_inputs(&inputs, &args)?;
    let lake_dir = args.dir.join("lake");
    let lake = Lake::open(lake_dir.to_str().context("the demo directory must be UTF-8")?).await?;

    println!("1. ingest {} into {}", inputs.display(), lake.url());
    let summary =
        pipeline::ingest(&lake, &IngestRequest::new(vec![inputs.clone()]), Arc::new(NoProgress))
            .await?;
    print!("{}", crate::commands::ingest::render(&summary, &lake));

    println!(
        "\n2. hunt — example queries (run your own: ztlake --lake {} hunt \"SELECT …\")",
        lake_dir.display()
    );
    let hunter = Hunter::open(&lake, HuntLimits::default()).await?;
    for (title, sql) in QUERIES {
        println!("\n-- {title}\n{sql}");
        query_to_output(&hunter, sql, OutputFormat::Table, None).await?;
    }
    println!("\neverything the demo wrote is under {}", args.dir.display());
    Ok(ExitCode::SUCCESS)
}

fn write_inputs(dir: &Path, args: &DemoArgs) -> Result<()> {
    for (name, text) in SAMPLES {
        std::fs::write(dir.join(name), text).with_context(|| format!("writing {name}"))?;
    }
    let path = dir.join("generated-vpcflow.log");
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let spec = VpcFlowSpec { lines: args.flows, seed: args.seed, ..VpcFlowSpec::default() };
    vpc_flows(&mut file, &spec).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
