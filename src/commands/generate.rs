//! `ztlake generate`: synthetic provider logs for benchmarks and demos.

use std::fs::File;
use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use crate::cli::{GenerateArgs, GenerateKind};
use crate::generate::{EntraSpec, VpcFlowSpec, entra_signins, vpc_flows};

/// Write the requested records to the output file or stdout.
pub fn run(args: &GenerateArgs) -> Result<ExitCode> {
    let start = chrono::DateTime::parse_from_rfc3339(&args.start)
        .with_context(|| format!("--start {:?} is not an RFC 3339 time", args.start))?
        .timestamp();
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(io::stdout().lock()),
    };
    match args.kind {
        GenerateKind::Vpcflow => {
            let spec = VpcFlowSpec {
                lines: args.count,
                seed: args.seed,
                start,
                span_secs: i64::from(args.days.max(1)) * 86_400,
                header: true,
            };
            vpc_flows(&mut out, &spec).context("writing flow lines")?;
        }
        GenerateKind::Entra => {
            let spec = EntraSpec {
                records: args.count,
                seed: args.seed,
                start,
                span_secs: i64::from(args.days.max(1)) * 86_400,
            };
            entra_signins(&mut out, &spec).context("writing sign-in records")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
