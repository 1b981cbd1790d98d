//! `ztlake tables`: the canonical tables, their columns, and row counts in the lake.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use ztlake_normalize::Table;
use ztlake_normalize::quarantine::Reason;
use ztlake_storage::Lake;

use crate::cli::TablesArgs;

/// Print the tables.
pub async fn run(lake: &Lake, args: TablesArgs) -> Result<ExitCode> {
    if args.markdown {
        print!("{}", markdown());
        return Ok(ExitCode::SUCCESS);
    }
    let mut counts = Vec::new();
    for table in Table::ALL {
        let stats = if lake.exists(table).await? { Some(lake.stats(table).await?) } else { None };
        counts.push(stats.map(|s| (s.rows, s.files)));
    }
    println!("lake: {}\n", lake.url());
    print!("{}", render(&counts, args.docs));
    Ok(ExitCode::SUCCESS)
}

/// The listing: per table its row and file counts (`None` = not created yet) and columns.
pub fn render(counts: &[Option<(u64, usize)>], docs: bool) -> String {
    let mut out = String::new();
    for (table, count) in Table::ALL.into_iter().zip(counts) {
        let rows = match count {
            Some((rows, files)) => format!("{rows} rows in {files} files"),
            None => "not created yet".to_owned(),
        };
        let _ = writeln!(out, "{} — {} ({rows})", table.name(), table.description());
        let schema = table.schema();
        for (column, field) in table.columns().iter().zip(schema.fields()) {
            let null = if column.nullable { "" } else { " not null" };
            let part = if ztlake_normalize::schema::PARTITION_COLUMNS.contains(&column.name) {
                " [partition]"
            } else {
                ""
            };
            if docs {
                let _ = writeln!(
                    out,
                    "  {:<20} {:<24} {}{}{}",
                    column.name,
                    field.data_type().to_string(),
                    column.doc,
                    null,
                    part
                );
            } else {
                let _ =
                    writeln!(out, "  {:<20} {}{}{}", column.name, field.data_type(), null, part);
            }
        }
        if table == Table::Quarantine && docs {
            let _ = writeln!(out, "  reason codes:");
            for r in Reason::ALL {
                let _ = writeln!(out, "    {:<18} {}", r.as_str(), r.description());
            }
        }
        out.push('\n');
    }
    out
}

/// The schema reference in Markdown: every table, column, type and meaning, and the quarantine
/// reason codes. The README's schema section is exactly this text.
pub fn markdown() -> String {
    let mut out = String::new();
    for table in Table::ALL {
        let _ = writeln!(out, "### `{}` — {}\n", table.name(), table.description());
        let _ = writeln!(out, "| column | type | meaning |\n|---|---|---|");
        let schema = table.schema();
        for (column, field) in table.columns().iter().zip(schema.fields()) {
            let mut ty = field.data_type().to_string();
            if !column.nullable {
                ty.push_str(", not null");
            }
            let part = if ztlake_normalize::schema::PARTITION_COLUMNS.contains(&column.name) {
                " (partition column)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {}{} |",
                column.name,
                ty.replace('|', "\\|"),
                column.doc.replace('|', "\\|"),
                part
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "Quarantine reason codes:\n\n| reason | meaning |\n|---|---|");
    for r in Reason::ALL {
        let _ = writeln!(out, "| `{}` | {} |", r.as_str(), r.description());
    }
    out
}

#[cfg(test)]
mod tests {
    /// The README's schema section is exactly `markdown()`; regenerate it with
    /// `cargo run -- tables --markdown` when a schema changes.
    #[test]
    fn readme_schema_section_is_current() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README");
        let start = readme.find("<!-- schema:begin").expect("begin marker");
        let body = &readme[start..];
        let body = &body[body.find("-->").expect("marker end") + 4..];
        let end = body.find("<!-- schema:end -->").expect("end marker");
        let want = super::markdown();
        let first_difference =
            body[..end].trim().lines().zip(want.trim().lines()).find(|(a, b)| a != b);
        assert!(
            body[..end].trim() == want.trim(),
            "README schema section is stale (first difference: {first_difference:?}); replace it with `cargo run -- tables --markdown`"
        );
    }
}
