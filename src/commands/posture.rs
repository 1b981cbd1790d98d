//! `ztlake posture`: the Zero Trust KPIs of the lake as a terminal table or JSON on stdout, and
//! optionally a self-contained HTML report.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use ztlake_storage::Lake;

use crate::cli::{PostureArgs, PostureFormat};
use crate::hunt::HuntLimits;
use crate::posture::{self, PostureOptions};

/// Compute the report of the lake at `location` and write it where asked (or print the
/// definitions).
pub async fn run(location: &str, args: PostureArgs) -> Result<ExitCode> {
    if args.definitions {
        print!("{}", posture::kpi::markdown());
        return Ok(ExitCode::SUCCESS);
    }
    let lake = super::open_lake(location).await?;
    report(&lake, args).await
}

async fn report(lake: &Lake, args: PostureArgs) -> Result<ExitCode> {
    let reference = crate::pack::load_reference(&args.reference).map_err(|p| {
        anyhow::anyhow!("reference tables in {}:\n  {}", args.reference.display(), p.join("\n  "))
    })?;
    let options = PostureOptions {
        from: args.from,
        to: args.to,
        reference,
        top: args.top,
        limits: HuntLimits {
            memory_bytes: usize::try_from(args.memory_limit).unwrap_or(usize::MAX),
            timeout: args.timeout,
        },
    };
    let report = posture::report(lake, &options).await?;
    if let Some(path) = &args.html {
        posture::write_html(&report, path)?;
    }
    let mut stdout = std::io::stdout().lock();
    match args.format {
        PostureFormat::Table => stdout.write_all(posture::text::render(&report).as_bytes())?,
        PostureFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, &report)
                .context("writing the JSON report")?;
            stdout.write_all(b"\n")?;
        }
    }
    stdout.flush()?;
    if let Some(path) = &args.html {
        eprintln!("wrote the HTML report to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
