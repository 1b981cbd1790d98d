//! The command line: argument definitions (clap) and dispatch to the commands.
//!
//! Thin by design: each subcommand parses its arguments here and calls a function in
//! [`crate::commands`], which tests can call too.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands;

/// Parse a byte size such as `1MiB`, `64 KiB`, `16GB` or `4096`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.trim().parse::<bytesize::ByteSize>().map(|b| b.as_u64()).map_err(|e| format!("{s:?}: {e}"))
}

/// Parse a duration such as `30s`, `5m`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?}: {e}"))
}

/// Parse a point in time: RFC 3339 (`2024-05-01T12:00:00Z`), a UTC date (`2024-05-01`), or a
/// duration before now (`24h`, `7d`). Returns µs since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Some(t) = ztlake_normalize::values::parse_rfc3339_micros(s) {
        return Ok(t);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros());
        return t.ok_or_else(|| format!("{s:?}: not a valid date"));
    }
    match humantime::parse_duration(s) {
        Ok(d) => {
            let ago = i64::try_from(d.as_micros()).map_err(|_| format!("{s:?}: too long ago"))?;
            Ok(chrono::Utc::now().timestamp_micros().saturating_sub(ago))
        }
        Err(_) => Err(format!(
            "{s:?}: expected an RFC 3339 time, a date (YYYY-MM-DD) or a duration ago (24h)"
        )),
    }
}

/// ztlake: Zero Trust telemetry lake — ingest cloud flow, sign-in and certificate logs into one
/// set of Delta/Parquet tables and hunt over them with SQL.
#[derive(Debug, Parser)]
#[command(name = "ztlake", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The lake: a directory (created when first written) or a URL: file://, s3://bucket/prefix,
    /// gs://bucket/prefix, az://container/prefix. Cloud credentials come from the usual
    /// environment variables (AWS_*, GOOGLE_*, AZURE_*).
    #[arg(long, global = true, env = "ZTLAKE_LAKE", default_value = "./lake")]
    pub lake: String,

    /// The configuration file (TOML): on-call routing and delivery (`[oncall]`), read by
    /// `detect`, `ingest --detect`, `serve`, `alerts` and the service. Without it, email goes to
    /// the outbox directory as .eml files and nothing is sent anywhere.
    #[arg(long, global = true, env = "ZTLAKE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// More log output (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read provider logs (files, directories, `-` for stdin; .gz and .zst decompressed) into the
    /// lake. Re-ingesting the same input commits nothing new.
    Ingest(IngestArgs),
    /// Run a read-only SQL query over the lake (interactive prompt when no SQL is given).
    Hunt(HuntArgs),
    /// List the canonical tables, their columns and the row counts in the lake.
    Tables(TablesArgs),
    /// List the provider formats ztlake reads.
    Formats,
    /// Merge small data files per partition (atomic; queries keep working meanwhile).
    Compact(CompactArgs),
    /// Drop partitions older than N days, then delete their files.
    Retain(RetainArgs),
    /// Write synthetic provider logs (deterministic per seed) for benchmarks and demos.
    Generate(GenerateArgs),
    /// Run ztlake end to end in one directory, with no external service: a multi-cloud dataset
    /// with incidents, ingest with streaming rules, scheduled rules, on-call email to the
    /// outbox, the alerts, example hunts and the posture report.
    Demo(DemoArgs),
    /// Check the detection rules (`rules validate`) or run their inline tests (`rules test`).
    Rules(RulesArgs),
    /// Run every rule over the lake for a time range (backfill) and store the alerts.
    Detect(DetectArgs),
    /// List the alerts in the lake; acknowledge or resolve one (`alerts ack ID`).
    Alerts(AlertsArgs),
    /// Serve the signed acknowledge/resolve links of on-call messages, and deliver due
    /// retries and escalations, until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// List the runbooks, or show one filled in with an alert's values.
    Runbooks(RunbooksArgs),
    /// Zero Trust posture KPIs per day, provider and account, against the previous period: a
    /// terminal table, JSON, or a self-contained HTML report with a chart per KPI.
    Posture(PostureArgs),
    /// Run the service: Kafka and object-store sources into the lake, streaming and scheduled
    /// detections, the SIEM feed, maintenance and /healthz + /metrics, until SIGINT/SIGTERM
    /// (then flush, acknowledge and exit 0). Needs --config FILE (see `[lake]`, `[[kafka]]`, …
    /// in the README).
    Run,
    /// Check a service configuration file.
    Config(ConfigArgs),
}

/// `ztlake config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// `ztlake config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration: every section, every source, the detection pack it names;
    /// reports every problem and exits non-zero when there is one.
    Check {
        /// The file (default: --config / ZTLAKE_CONFIG).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// Where the detection pack lives (rules, runbooks, reference tables).
#[derive(Debug, Clone, clap::Args)]
pub struct PackArgs {
    /// Directory of rule files (*.yaml, recursive).
    #[arg(
        long = "rules",
        env = "ZTLAKE_RULES",
        default_value = "detections/rules",
        value_name = "DIR"
    )]
    pub rules: PathBuf,

    /// Directory of runbooks (*.md).
    #[arg(
        long = "runbooks",
        env = "ZTLAKE_RUNBOOKS",
        default_value = "runbooks",
        value_name = "DIR"
    )]
    pub runbooks: PathBuf,

    /// Directory of reference tables (assets, identities, egress_gateways, trusted_cas as CSV or
    /// Parquet).
    #[arg(
        long = "reference",
        env = "ZTLAKE_REFERENCE",
        default_value = "detections/reference",
        value_name = "DIR"
    )]
    pub reference: PathBuf,
}

/// `ztlake rules`.
#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RulesCommand,
}

/// `ztlake rules` subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load every rule, runbook and reference file and report every problem with file and line.
    Validate {
        /// The pack.
        #[command(flatten)]
        pack: PackArgs,
        /// Also print what each rule keeps of every table (columns and filters).
        #[arg(long)]
        explain: bool,
    },
    /// Run every rule's inline tests; exits non-zero when one fails.
    Test {
        /// The pack.
        #[command(flatten)]
        pack: PackArgs,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `ztlake detect`.
#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// The pack.
    #[command(flatten)]
    pub pack: PackArgs,

    /// Start of the range: RFC 3339 time, a date (YYYY-MM-DD) or a duration ago (`24h`).
    /// Default: the earliest event in the lake.
    #[arg(long, value_parser = parse_time)]
    pub from: Option<i64>,

    /// End of the range (exclusive), same forms. Default: just after the latest event.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<i64>,

    /// Only these rules (repeatable).
    #[arg(long = "rule", id = "only_rules", value_name = "RULE_ID")]
    pub only: Vec<String>,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Output formats of `ztlake alerts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlertsFormat {
    /// An aligned text table.
    Table,
    /// One JSON array of alerts.
    Json,
}

/// Alert statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlertStatus {
    /// Neither acknowledged nor resolved.
    Open,
    /// Acknowledged, not resolved.
    Acknowledged,
    /// Resolved.
    Resolved,
}

/// `ztlake alerts`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AlertsArgs {
    /// Acknowledge or resolve an alert (without: list the alerts).
    #[command(subcommand)]
    pub action: Option<AlertsAction>,

    /// At least this severity (info, low, medium, high, critical).
    #[arg(long)]
    pub severity: Option<String>,

    /// Only this rule.
    #[arg(long)]
    pub rule: Option<String>,

    /// Only alerts in this state.
    #[arg(long, value_enum)]
    pub status: Option<AlertStatus>,

    /// Only alerts last seen at or after this time (RFC 3339, date, or a duration ago: `24h`).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<i64>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: AlertsFormat,
}

/// `ztlake alerts ack|resolve`.
#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// Acknowledge an alert: recorded as an `acknowledged` alert event; stops escalation.
    Ack(AlertStepArgs),
    /// Resolve an alert: recorded as a `resolved` alert event, with an optional note.
    Resolve(AlertStepArgs),
}

/// Arguments of `ztlake alerts ack|resolve`.
#[derive(Debug, clap::Args)]
pub struct AlertStepArgs {
    /// The alert id (`ztlake alerts` lists them).
    pub id: String,

    /// Who is acting (default: $USER).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,

    /// A note recorded with the step.
    #[arg(long)]
    pub note: Option<String>,

    /// Directory of runbooks (*.md), for messages delivered meanwhile.
    #[arg(long, env = "ZTLAKE_RUNBOOKS", default_value = "runbooks", value_name = "DIR")]
    pub runbooks: PathBuf,
}

/// `ztlake serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default: `oncall.links.listen`, 127.0.0.1:8425). Port 0 picks a
    /// free port; the address is printed on the first line of output.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,

    /// Only serve the links; leave retries and escalations to another process (`ztlake run`).
    #[arg(long)]
    pub links_only: bool,

    /// Directory of runbooks (*.md), rendered into retried and escalated messages.
    #[arg(long, env = "ZTLAKE_RUNBOOKS", default_value = "runbooks", value_name = "DIR")]
    pub runbooks: PathBuf,
}

/// Output formats of `ztlake posture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PostureFormat {
    /// Aligned text tables: every KPI, per provider and scope, top offenders.
    Table,
    /// The whole report as one JSON object.
    Json,
}

/// `ztlake posture`.
#[derive(Debug, clap::Args)]
pub struct PostureArgs {
    /// Start of the period: RFC 3339 time, a date (YYYY-MM-DD) or a duration ago (`30d`);
    /// rounded down to a UTC day. Default: 30 days before --to.
    #[arg(long, value_parser = parse_time)]
    pub from: Option<i64>,

    /// End of the period (exclusive), same forms; rounded up to a UTC day. Default: the end of
    /// the day of the latest event in the lake.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<i64>,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value = "table")]
    pub format: PostureFormat,

    /// Also write the report as a self-contained HTML page (charts, offenders, definitions).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Offenders listed per KPI.
    #[arg(long, default_value_t = 10)]
    pub top: usize,

    /// Directory of reference tables (identities for privileged users, egress gateways,
    /// assets).
    #[arg(
        long = "reference",
        env = "ZTLAKE_REFERENCE",
        default_value = "detections/reference",
        value_name = "DIR"
    )]
    pub reference: PathBuf,

    /// Memory limit per query.
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    pub memory_limit: u64,

    /// Time limit per query.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Print the KPI definitions as a Markdown table (the README's) and exit.
    #[arg(long)]
    pub definitions: bool,
}

/// `ztlake runbooks`.
#[derive(Debug, clap::Args)]
pub struct RunbooksArgs {
    /// Directory of runbooks (*.md).
    #[arg(
        long = "runbooks",
        env = "ZTLAKE_RUNBOOKS",
        default_value = "runbooks",
        value_name = "DIR",
        global = true
    )]
    pub runbooks: PathBuf,

    /// `show ID` renders one runbook; without a subcommand the runbooks are listed.
    #[command(subcommand)]
    pub command: Option<RunbooksCommand>,
}

/// `ztlake runbooks` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunbooksCommand {
    /// Render one runbook, filled in with an alert's values when `--alert` is given.
    Show {
        /// The runbook id.
        id: String,
        /// An alert id from `ztlake alerts`: its entity and fields fill the placeholders.
        #[arg(long)]
        alert: Option<String>,
    },
}

/// `ztlake demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Directory for everything the demo writes (inputs, lake, outbox, posture report). An
    /// earlier demo's inputs and lake in it are replaced.
    #[arg(long, default_value = "./ztlake-demo")]
    pub dir: PathBuf,

    /// Background flow records per cloud and day (AWS, Azure, GCP; four days).
    #[arg(long, default_value_t = 600)]
    pub flows: u64,

    /// Seed of the generated data: the same seed writes the same inputs.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// The detection pack the demo runs.
    #[command(flatten)]
    pub pack: PackArgs,
}

/// What `ztlake generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenerateKind {
    /// AWS VPC flow logs, default v2 format, with the S3 header line.
    Vpcflow,
    /// Entra ID sign-in logs (diagnostic-settings JSON, one record per line, ~1.5 KB each).
    Entra,
}

/// `ztlake generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// What to generate.
    #[arg(value_enum)]
    pub kind: GenerateKind,

    /// Number of records.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,

    /// Seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Time of the first record (RFC 3339); records spread over --days from there.
    #[arg(long, default_value = "2023-11-14T22:13:20Z")]
    pub start: String,

    /// Days the records span.
    #[arg(long, default_value_t = 1)]
    pub days: u32,

    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// `ztlake ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Files or directories (read recursively); `-` reads stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Input format: `auto` detects it per record; `ztlake formats` lists the names.
    #[arg(long, default_value = "auto")]
    pub format: String,

    /// AWS VPC flow log field list for files without a header line, e.g.
    /// "version account-id interface-id srcaddr dstaddr ..." or the `${field}` form.
    #[arg(long, value_name = "FIELDS")]
    pub vpc_fields: Option<String>,

    /// Longest accepted line; longer lines are quarantined (line_too_long).
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub max_line_len: u64,

    /// Largest accepted JSON record.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub max_json_len: u64,

    /// Cap on the decompressed size of one compressed input (zip-bomb guard).
    #[arg(long, default_value = "64GiB", value_parser = parse_size)]
    pub max_decompressed: u64,

    /// Parquet encoder threads (default: one per core).
    #[arg(long)]
    pub encoders: Option<usize>,

    /// Threads parsing JSON-lines inputs in parallel (default: one per core). Other inputs, and
    /// all inputs with `--detect`, are parsed in order on one thread: their records depend on
    /// earlier ones (header lines), and detection windows want rows in input order.
    #[arg(long)]
    pub parse_threads: Option<usize>,

    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// Run the streaming detection rules on every normalized batch and store their alerts.
    #[arg(long)]
    pub detect: bool,

    /// The detection pack (used with --detect).
    #[command(flatten)]
    pub pack: PackArgs,
}

/// Output formats of `ztlake hunt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header; cells starting with = + - @ are neutralized for spreadsheets.
    Csv,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// A Parquet file (needs --output).
    Parquet,
}

/// `ztlake hunt`.
#[derive(Debug, clap::Args)]
pub struct HuntArgs {
    /// The SQL query; without it, an interactive prompt with history starts.
    pub sql: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,

    /// Write the result to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,

    /// Memory limit per query.
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    pub memory_limit: u64,

    /// Time limit per query.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Directory of reference tables, queryable by name (assets, identities, …) along with the
    /// detection UDFs (is_private_ip, cidr_contains, asset_field, …).
    #[arg(
        long = "reference",
        env = "ZTLAKE_REFERENCE",
        default_value = "detections/reference",
        value_name = "DIR"
    )]
    pub reference: PathBuf,
}

/// `ztlake tables`.
#[derive(Debug, clap::Args)]
pub struct TablesArgs {
    /// Also print what every column means.
    #[arg(long)]
    pub docs: bool,

    /// Print the schema reference as Markdown (the README's schema section) and exit.
    #[arg(long)]
    pub markdown: bool,
}

/// `ztlake compact`.
#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    /// Only this table (default: all).
    #[arg(long)]
    pub table: Option<String>,
}

/// `ztlake retain`.
#[derive(Debug, clap::Args)]
pub struct RetainArgs {
    /// Keep this many days of data (partitions whose date is older are dropped).
    #[arg(long)]
    pub days: u32,

    /// Only this table (default: all).
    #[arg(long)]
    pub table: Option<String>,

    /// Delete dropped files once they have been out of the table this long (readers still on
    /// an older version keep working meanwhile). `0s` deletes at once.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub vacuum_grace: Duration,
}

/// Entry point of the binary: parse arguments, run the command, map errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ztlake: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ztlake: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        // deltalake's MERGE warns about a metric it derives itself on every upsert.
        0 => "warn,deltalake_core::operations::merge=error",
        1 => "info,ztlake=info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000_000));
        assert_eq!(parse_time("2023-11-14"), Ok(1_699_920_000_000_000));
        let ago = parse_time("1h").expect("duration");
        assert!((chrono::Utc::now().timestamp_micros() - ago - 3_600_000_000).abs() < 60_000_000);
        assert!(parse_time("yesterday-ish").is_err());
    }
}
