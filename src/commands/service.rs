//! `ztlake run` and `ztlake config check`: the service and its configuration.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{ConfigArgs, ConfigCommand};
use crate::service;

/// `ztlake run --config FILE`: run until SIGINT/SIGTERM; exit 0 after a clean drain.
pub async fn run(config: Option<&Path>) -> Result<ExitCode> {
    let Some(path) = config else {
        anyhow::bail!(
            "ztlake run needs --config FILE (or ZTLAKE_CONFIG); see the README, \"Running the service\""
        );
    };
    let config = match service::config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    service::run(config).await?;
    Ok(ExitCode::SUCCESS)
}

/// `ztlake config check [FILE]`: print every problem; exit 1 when there is one.
pub async fn config(args: ConfigArgs, global: Option<&Path>) -> Result<ExitCode> {
    match args.command {
        ConfigCommand::Check { file } => {
            let Some(path) = file.as_deref().or(global) else {
                anyhow::bail!("ztlake config check needs a FILE (or --config / ZTLAKE_CONFIG)");
            };
            let problems = service::check(path).await;
            if problems.is_empty() {
                println!("{}: OK", path.display());
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{} problem(s) in {}:", problems.len(), path.display());
                for p in &problems {
                    println!("  {p}");
                }
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
