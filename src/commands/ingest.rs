//! `ztlake ingest`: read inputs into the lake and print what happened to every record.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ztlake_ingest::ReadOptions;
use ztlake_normalize::ParseOptions;
use ztlake_storage::{Lake, WriterOptions};

use crate::cli::IngestArgs;
use crate::pipeline::{self, IngestRequest, IngestSummary, Progress};

/// Run the ingest (with `--detect`: deliver new and changed alerts to on-call) and print the
/// summary.
pub async fn run(
    lake: &Lake,
    args: IngestArgs,
    config: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let started = chrono::Utc::now().timestamp_micros();
    let mut request = request_from(&args)?;
    if args.detect {
        let loaded = match crate::pack::load(&crate::commands::rules::paths(&args.pack)).await {
            Ok(p) => p,
            Err(problems) => {
                eprint!("{problems}");
                anyhow::bail!(
                    "--detect: the detection pack is invalid (`ztlake rules validate` shows the same)"
                );
            }
        };
        request.detect = Some(crate::pipeline::Detection {
            rules: Arc::new(loaded.rules),
            engine: ztlake_detections::EngineOptions::default(),
        });
    }
    let bar: Arc<dyn Progress> = Arc::new(Bar::new());
    let summary = pipeline::ingest(lake, &request, bar).await?;
    let delivery = if args.detect {
        Some(crate::oncall::deliver_since(lake, config, &args.pack.runbooks, started).await?)
    } else {
        None
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", render(&summary, lake));
    }
    if let Some(d) = &delivery {
        let line = crate::oncall::render(d);
        if args.json { eprint!("{line}") } else { print!("{line}") }
    }
    Ok(ExitCode::SUCCESS)
}

fn usize_of(v: u64, name: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| anyhow::anyhow!("{name} is too large"))
}

/// Build the pipeline request from the arguments.
pub fn request_from(args: &IngestArgs) -> Result<IngestRequest> {
    let mut writer = WriterOptions::default();
    if let Some(n) = args.encoders {
        writer.encoder_threads = n.max(1);
    }
    Ok(IngestRequest {
        inputs: args.paths.clone(),
        format: args.format.clone(),
        parse: ParseOptions { vpc_fields: args.vpc_fields.clone(), ..ParseOptions::default() },
        read: ReadOptions {
            max_line_len: usize_of(args.max_line_len, "--max-line-len")?,
            max_json_len: usize_of(args.max_json_len, "--max-json-len")?,
            max_decompressed_bytes: args.max_decompressed,
            ..ReadOptions::default()
        },
        writer,
        parse_threads: args
            .parse_threads
            .unwrap_or_else(|| IngestRequest::new(Vec::new()).parse_threads)
            .max(1),
        detect: None,
    })
}

/// The text summary.
pub fn render(s: &IngestSummary, lake: &Lake) -> String {
    let c = &s.counts;
    let mut out = String::new();
    let secs = s.elapsed.as_secs_f64();
    let _ = writeln!(
        out,
        "ingested {} input(s), {} records in {secs:.2}s ({:.0} records/s) into {}",
        s.inputs,
        c.records,
        s.records_per_sec(),
        lake.url()
    );
    let _ = writeln!(out, "rows written:");
    for (table, commit) in &s.commits {
        let version = commit
            .version
            .map_or_else(|| "nothing new to commit".to_owned(), |v| format!("version {v}"));
        let _ =
            writeln!(out, "  {table:<12} {:>10}  ({} files, {version})", commit.rows, commit.files);
    }
    let q = c.quarantined_total();
    let _ = writeln!(out, "quarantined: {q}");
    for (reason, n) in &c.quarantined {
        let _ = writeln!(out, "  {reason:<20} {n:>10}");
    }
    if c.skipped_total() > 0 {
        let _ = writeln!(out, "skipped (no table): {}", c.skipped_total());
        for (reason, n) in &c.skipped {
            let _ = writeln!(out, "  {reason:<40} {n:>8}");
        }
    }
    if c.replayed > 0 {
        let _ = writeln!(out, "already in the lake (replayed, not written again): {}", c.replayed);
    }
    if !s.duplicate_inputs.is_empty() {
        let _ = writeln!(
            out,
            "inputs read once (identical content): {}",
            s.duplicate_inputs.join("; ")
        );
    }
    if !c.unmapped.is_empty() {
        let _ = writeln!(out, "fields with no column yet (rows carrying them):");
        for (field, n) in &c.unmapped {
            let _ = writeln!(out, "  {field:<40} {n:>8}");
        }
    }
    for (caveat, n) in &c.notes {
        let _ = writeln!(out, "note: {caveat}: {n} rows");
    }
    if s.blank_lines > 0 {
        let _ = writeln!(out, "blank lines ignored: {}", s.blank_lines);
    }
    if let Some(d) = &s.detection {
        let _ = writeln!(
            out,
            "detection: {} streaming rule(s) kept {} of {} rows; {} window evaluation(s); {} alert(s) ({} new, {} updated, {} unchanged)",
            d.rules,
            d.stats.rows_kept,
            d.stats.rows_in,
            d.stats.final_evaluations + d.stats.provisional_evaluations,
            d.alerts,
            d.written.new,
            d.written.updated,
            d.written.unchanged
        );
        if d.stats.late_rows > 0 || d.stats.evicted_rows > 0 {
            let _ = writeln!(
                out,
                "  warning: {} late row(s) dropped, {} row(s) evicted over max_rows_per_rule",
                d.stats.late_rows, d.stats.evicted_rows
            );
        }
    }
    out
}

/// Progress bar on stderr when it is a terminal; silent otherwise.
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        Self { bar }
    }
}

impl Progress for Bar {
    fn start(&self, total_bytes: Option<u64>) {
        match total_bytes {
            Some(total) => {
                self.bar.set_length(total);
                self.bar.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            }
            None => self.bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        }
    }

    fn update(&self, bytes: u64, records: u64) {
        self.bar.set_position(bytes);
        self.bar.set_message(format!("{records} records"));
    }

    fn input(&self, name: &str) {
        self.bar.set_message(name.to_owned());
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
