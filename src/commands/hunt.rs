//! `ztlake hunt`: read-only SQL over the lake, one query or an interactive prompt.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use datafusion::arrow::array::RecordBatch;
use ztlake_storage::Lake;

use crate::cli::{HuntArgs, OutputFormat};
use crate::hunt::{HuntLimits, Hunter, neutralize_formulas};

/// Run one query, or the prompt when no SQL was given.
pub async fn run(lake: &Lake, args: HuntArgs) -> Result<ExitCode> {
    let limits = HuntLimits {
        memory_bytes: usize::try_from(args.memory_limit).unwrap_or(usize::MAX),
        timeout: args.timeout,
    };
    let mut hunter = Hunter::open(lake, limits).await?;
    let reference = crate::pack::load_reference(&args.reference).map_err(|p| {
        anyhow::anyhow!("reference tables in {}:\n  {}", args.reference.display(), p.join("\n  "))
    })?;
    ztlake_detections::udf::register(hunter.context(), &reference)?;
    for name in reference.names() {
        hunter.allow_table(name);
    }
    match &args.sql {
        Some(sql) => {
            query_to_output(&hunter, sql, args.format, args.output.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            if args.format == OutputFormat::Parquet {
                bail!("--format parquet needs a query and --output");
            }
            interactive(&hunter, args.format).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Run `sql` and write its result in `format` to `output` (stdout when `None`).
pub async fn query_to_output(
    hunter: &Hunter,
    sql: &str,
    format: OutputFormat,
    output: Option<&std::path::Path>,
) -> Result<()> {
    if format == OutputFormat::Parquet {
        let Some(path) = output else { bail!("--format parquet needs --output FILE") };
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer: Option<parquet::arrow::ArrowWriter<File>> = None;
        let mut file = Some(file);
        hunter
            .run(sql, &mut |batch| {
                if writer.is_none() {
                    let f = file.take().ok_or_else(|| anyhow::anyhow!("output already used"))?;
                    writer = Some(parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None)?);
                }
                if let Some(w) = writer.as_mut() {
                    w.write(&batch)?;
                }
                Ok(())
            })
            .await?;
        if let Some(w) = writer {
            w.close()?;
        }
        return Ok(());
    }
    let sink: Box<dyn Write> = match output {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(io::stdout().lock()),
    };
    let mut sink = BufWriter::new(sink);
    write_result(hunter, sql, format, &mut sink).await?;
    sink.flush()?;
    Ok(())
}

async fn write_result(
    hunter: &Hunter,
    sql: &str,
    format: OutputFormat,
    sink: &mut dyn Write,
) -> Result<()> {
    use datafusion::arrow::{csv, json};
    match format {
        OutputFormat::Table => {
            let batches = hunter.collect(sql).await?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(
                sink,
                "{}",
                datafusion::arrow::util::pretty::pretty_format_batches(&batches)?
            )?;
            writeln!(sink, "{rows} row(s)")?;
        }
        OutputFormat::Csv => {
            let mut w = csv::WriterBuilder::new().with_header(true).build(sink);
            hunter.run(sql, &mut |b| Ok(w.write(&neutralize_formulas(&b)?)?)).await?;
        }
        OutputFormat::Ndjson => {
            let mut w = json::LineDelimitedWriter::new(sink);
            hunter.run(sql, &mut |b| Ok(w.write(&b)?)).await?;
            w.finish()?;
        }
        OutputFormat::Json => {
            let mut w = json::ArrayWriter::new(sink);
            hunter.run(sql, &mut |b| Ok(w.write(&b)?)).await?;
            w.finish()?;
        }
        OutputFormat::Parquet => bail!("--format parquet needs --output FILE"),
    }
    Ok(())
}

const HELP: &str = "Enter SQL ending with ';' (it may span lines). Commands:
  .tables          list the tables
  .schema TABLE    show a table's columns
  .help            this help
  .quit            leave (or Ctrl-D)";

async fn interactive(hunter: &Hunter, format: OutputFormat) -> Result<()> {
    let mut editor = rustyline::DefaultEditor::new().context("starting the prompt")?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".ztlake_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    if io::stdin().is_terminal() {
        eprintln!("ztlake hunt — tables: {}. Type .help for help.", hunter.tables().join(", "));
    }
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "ztlake> " } else { "   ...> " };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('.') {
            let _ = editor.add_history_entry(trimmed);
            let mut words = trimmed.split_whitespace();
            match (words.next(), words.next()) {
                (Some(".quit" | ".exit"), _) => break,
                (Some(".help"), _) => println!("{HELP}"),
                (Some(".tables"), _) => println!("{}", hunter.tables().join("\n")),
                (Some(".schema"), Some(t)) => {
                    let sql = format!(
                        "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = '{}' ORDER BY ordinal_position",
                        t.replace('\'', "''")
                    );
                    report(write_stdout(hunter, &sql, OutputFormat::Table).await);
                }
                _ => println!("unknown command; .help lists them"),
            }
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if trimmed.ends_with(';') {
            let sql = buffer.trim().trim_end_matches(';').to_owned();
            buffer.clear();
            let _ = editor.add_history_entry(sql.as_str());
            report(write_stdout(hunter, &sql, format).await);
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

async fn write_stdout(hunter: &Hunter, sql: &str, format: OutputFormat) -> Result<()> {
    let mut out = io::stdout().lock();
    write_result(hunter, sql, format, &mut out).await?;
    out.flush()?;
    Ok(())
}

fn report(result: Result<()>) {
    if let Err(e) = result {
        eprintln!("error: {e:#}");
    }
}
