//! The table a rule's SQL reads: a canonical table's schema over the rows of one window.
//!
//! Each rule plans its SQL once against one [`WindowTable`] per canonical table. The table
//! accepts every filter as `Inexact` pushdown, so the optimized plan's scans carry the rule's
//! filters (the engine evaluates them on every incoming batch and keeps only the matching rows,
//! projected to the columns the plan reads). At evaluation time the engine puts the retained
//! rows of one window into the table and executes the plan; columns that were not retained read
//! as NULL (the plan never asks for them).

use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, RecordBatchOptions, new_null_array};
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::project_schema;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use ztlake_normalize::schema::Table;

/// A canonical table holding the rows of one window. See the module docs.
#[derive(Debug)]
pub(crate) struct WindowTable {
    schema: SchemaRef,
    rows: Mutex<Vec<RecordBatch>>,
}

impl WindowTable {
    /// An empty window of `table` (every column nullable: retained rows may lack columns).
    pub(crate) fn new(table: Table) -> WindowTable {
        let fields: Vec<_> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        WindowTable { schema: Arc::new(Schema::new(fields)), rows: Mutex::new(Vec::new()) }
    }

    /// Put the rows of a window in (replacing what was there).
    pub(crate) fn set(&self, rows: Vec<RecordBatch>) {
        if let Ok(mut guard) = self.rows.lock() {
            *guard = rows;
        }
    }

    /// Empty the table.
    pub(crate) fn clear(&self) {
        self.set(Vec::new());
    }

    /// The table's schema (all columns nullable).
    pub(crate) fn full_schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// `batch` with exactly the fields of `schema`, by name; absent columns are NULL.
pub(crate) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => Ok(arrow::compute::cast(c, f.data_type())?),
            None => Ok(new_null_array(f.data_type(), rows)),
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
}

#[async_trait::async_trait]
impl TableProvider for WindowTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: the filters land in the scan (the engine reads them there) and the plan
        // still applies them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projected = project_schema(&self.schema, projection)?;
        let rows = self
            .rows
            .lock()
            .map_err(|_| DataFusionError::Internal("window table lock poisoned".into()))?
            .clone();
        let batches = rows.iter().map(|b| conform(b, &projected)).collect::<Result<Vec<_>>>()?;
        let exec: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&[batches], projected, None)?;
        Ok(exec)
    }
}
