//! Hunting: read-only SQL over the lake with DataFusion.
//!
//! The lake's tables are registered through the Delta table provider with their partition
//! columns, so `WHERE provider = 'aws' AND date >= '2024-01-01'` prunes whole directories and
//! `time` ranges prune files by their statistics.
//!
//! Queries are read-only by construction, checked twice: the statement must be a query (or an
//! `EXPLAIN` of one, or `SHOW TABLES` / `SHOW COLUMNS`), every table it names must be a lake
//! table (so `SELECT * FROM '/etc/passwd'` is rejected before planning), and the plan is then
//! verified by DataFusion's own [`SQLOptions`] with DDL, DML (`INSERT`, `COPY`) and statements
//! (`SET`) disallowed. A memory limit and a timeout apply to every query.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::StreamExt;
use ztlake_storage::Lake;

/// Limits of a hunting session.
#[derive(Debug, Clone)]
pub struct HuntLimits {
    /// Memory the query may use before it fails (spilling where DataFusion can).
    pub memory_bytes: usize,
    /// Wall-clock limit per query.
    pub timeout: Duration,
}

impl Default for HuntLimits {
    fn default() -> Self {
        Self { memory_bytes: 2 << 30, timeout: Duration::from_secs(300) }
    }
}

/// A session over a lake: the registered tables and the limits.
pub struct Hunter {
    ctx: SessionContext,
    tables: Vec<String>,
    limits: HuntLimits,
}

impl Hunter {
    /// Register the lake's tables in a new DataFusion session.
    pub async fn open(lake: &Lake, limits: HuntLimits) -> Result<Self> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory_bytes, 1.0)
            .build_arc()
            .context("building the query runtime")?;
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let registered = lake.register(&ctx).await?;
        let tables = registered.iter().map(|t| t.name().to_owned()).collect();
        Ok(Self { ctx, tables, limits })
    }

    /// Names of the registered tables.
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// The DataFusion session (for registering reference tables).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Register an extra queryable table name (e.g. a reference table added to the context).
    pub fn allow_table(&mut self, name: impl Into<String>) {
        self.tables.push(name.into());
    }

    /// Check that `sql` is a read-only query over known tables.
    pub fn check(&self, sql: &str) -> Result<()> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect)?;
        check_statement_kind(&statement)?;
        for reference in state.resolve_table_references(&statement)? {
            let table = reference.table();
            if reference.schema() == Some("information_schema") {
                continue;
            }
            if looks_like_path(table) {
                bail!(
                    "file-path table references are not allowed in hunting queries: {table:?}; query the lake's tables ({})",
                    self.tables.join(", ")
                );
            }
            if !self.tables.iter().any(|t| t == table) {
                bail!("unknown table {reference}; the lake has: {}", self.known());
            }
        }
        Ok(())
    }

    fn known(&self) -> String {
        if self.tables.is_empty() {
            "no tables yet (run `ztlake ingest` first)".to_owned()
        } else {
            self.tables.join(", ")
        }
    }

    /// Run a read-only query and stream its batches to `sink`, under the limits.
    pub async fn run(
        &self,
        sql: &str,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        self.check(sql)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let work = async {
            let df = self.ctx.sql_with_options(sql, options).await?;
            let mut stream = df.execute_stream().await?;
            while let Some(batch) = stream.next().await {
                sink(batch?)?;
            }
            Ok::<(), anyhow::Error>(())
        };
        tokio::time::timeout(self.limits.timeout, work).await.map_err(|_| {
            anyhow!("query exceeded the {:?} timeout (--timeout)", self.limits.timeout)
        })?
    }

    /// Run a query and collect its result.
    pub async fn collect(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        self.run(sql, &mut |b| {
            batches.push(b);
            Ok(())
        })
        .await?;
        Ok(batches)
    }
}

fn check_statement_kind(statement: &DfStatement) -> Result<()> {
    match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            SqlStatement::Query(_)
            | SqlStatement::ShowTables { .. }
            | SqlStatement::ShowColumns { .. } => Ok(()),
            SqlStatement::Explain { statement, .. } => match statement.as_ref() {
                SqlStatement::Query(_) => Ok(()),
                other => bail!("hunting is read-only: EXPLAIN of {} is not allowed", kind(other)),
            },
            other => bail!("hunting is read-only: {} statements are not allowed", kind(other)),
        },
        DfStatement::Explain(e) => match e.statement.as_ref() {
            DfStatement::Statement(inner) if matches!(inner.as_ref(), SqlStatement::Query(_)) => {
                Ok(())
            }
            _ => bail!("hunting is read-only: only queries can be explained"),
        },
        DfStatement::CreateExternalTable(_) => {
            bail!("hunting is read-only: CREATE EXTERNAL TABLE is not allowed")
        }
        DfStatement::CopyTo(_) => bail!("hunting is read-only: COPY is not allowed"),
        _ => bail!("hunting is read-only: only queries are allowed"),
    }
}

/// The statement's keyword, for error messages (the first word of its SQL text).
fn kind(statement: &SqlStatement) -> String {
    let text = statement.to_string();
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("this");
    match first {
        "CREATE" | "DROP" | "ALTER" => {
            format!("{first} {}", words.next().unwrap_or("")).trim_end().to_owned()
        }
        _ => first.to_owned(),
    }
}

fn looks_like_path(table: &str) -> bool {
    table.contains(['/', '\\', ':']) || table.contains('.') || table.starts_with('~')
}

/// Characters that make a spreadsheet treat a cell as a formula.
const FORMULA_PREFIXES: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Make a batch safe to open in a spreadsheet: text cells starting with `= + - @` (or a tab or
/// carriage return) get a leading `'`, so attacker-controlled log values cannot become formulas.
pub fn neutralize_formulas(batch: &RecordBatch) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|col| -> Result<ArrayRef> {
            let text = match col.data_type() {
                DataType::Utf8 => col.clone(),
                DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
                    datafusion::arrow::compute::cast(col, &DataType::Utf8)?
                }
                _ => return Ok(col.clone()),
            };
            let Some(strings) = text.as_any().downcast_ref::<StringArray>() else {
                return Ok(col.clone());
            };
            let neutral: StringArray = strings
                .iter()
                .map(|v| {
                    v.map(|s| {
                        if s.starts_with(FORMULA_PREFIXES) { format!("'{s}") } else { s.to_owned() }
                    })
                })
                .collect();
            Ok(Arc::new(neutral) as ArrayRef)
        })
        .collect::<Result<_>>()?;
    let fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
        .collect();
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Whether a batch has any rows (helper for printing).
pub fn total_rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralized_in_text_columns_only() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("=cmd|' /C calc'!A0"),
            Some("ok"),
            Some("-1+1"),
            None,
            Some("@SUM(A1)"),
        ]));
        let nums: ArrayRef =
            Arc::new(datafusion::arrow::array::Int64Array::from(vec![-1, 2, 3, 4, 5]));
        let batch = RecordBatch::try_from_iter([("t", text), ("n", nums)]).expect("batch");
        let out = neutralize_formulas(&batch).expect("neutralize");
        let t = out.column(0).as_any().downcast_ref::<StringArray>().expect("utf8");
        assert_eq!(t.value(0), "'=cmd|' /C calc'!A0");
        assert_eq!(t.value(1), "ok");
        assert_eq!(t.value(2), "'-1+1");
        assert!(t.is_null(3));
        assert_eq!(t.value(4), "'@SUM(A1)");
        assert_eq!(out.column(1).as_ref(), batch.column(1).as_ref());
    }

    #[test]
    fn paths_are_recognized() {
        for p in ["/etc/passwd", "data.csv", "s3://bucket/x", "C:\\x", "~/x"] {
            assert!(looks_like_path(p), "{p}");
        }
        assert!(!looks_like_path("flows"));
    }
}
