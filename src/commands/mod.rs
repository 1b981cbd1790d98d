//! The commands behind the CLI. Each takes parsed arguments and does its work through the
//! library crates; output goes to stdout, diagnostics to stderr.

pub mod alerts;
pub mod demo;
pub mod detect;
pub mod formats;
pub mod generate;
pub mod hunt;
pub mod ingest;
pub mod maintain;
pub mod posture;
pub mod rules;
pub mod runbooks;
pub mod serve;
pub mod service;
pub mod tables;

use std::process::ExitCode;

use anyhow::Result;
use ztlake_storage::Lake;

use crate::cli::{Cli, Command};

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Formats => formats::run(),
        Command::Generate(args) => generate::run(&args),
        Command::Demo(args) => demo::run(args).await,
        Command::Ingest(args) => {
            ingest::run(&open_lake(&cli.lake).await?, args, cli.config.as_deref()).await
        }
        Command::Hunt(args) => hunt::run(&open_lake(&cli.lake).await?, args).await,
        Command::Tables(args) => tables::run(&open_lake(&cli.lake).await?, args).await,
        Command::Compact(args) => maintain::compact(&open_lake(&cli.lake).await?, args).await,
        Command::Retain(args) => maintain::retain(&open_lake(&cli.lake).await?, args).await,
        Command::Rules(args) => rules::run(args.command).await,
        Command::Detect(args) => {
            detect::run(&open_lake(&cli.lake).await?, args, cli.config.as_deref()).await
        }
        Command::Alerts(args) => {
            alerts::run(&open_lake(&cli.lake).await?, args, cli.config.as_deref()).await
        }
        Command::Serve(args) => {
            serve::run(&open_lake(&cli.lake).await?, args, cli.config.as_deref()).await
        }
        Command::Runbooks(args) => runbooks::run(&cli.lake, args).await,
        Command::Posture(args) => posture::run(&cli.lake, args).await,
        Command::Run => service::run(cli.config.as_deref()).await,
        Command::Config(args) => service::config(args, cli.config.as_deref()).await,
    }
}

/// Open the lake named by `--lake` / `ZTLAKE_LAKE`.
pub async fn open_lake(location: &str) -> Result<Lake> {
    use anyhow::Context as _;
    Lake::open(location).await.with_context(|| format!("opening the lake at {location}"))
}

/// Parse `--table NAME` into a list of tables (all when absent).
pub fn tables_arg(name: Option<&str>) -> Result<Vec<ztlake_normalize::Table>> {
    use ztlake_normalize::Table;
    match name {
        None => Ok(Table::ALL.to_vec()),
        Some(n) => Table::from_name(n).map(|t| vec![t]).ok_or_else(|| {
            let names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
            anyhow::anyhow!("unknown table {n:?}; tables are {}", names.join(", "))
        }),
    }
}
