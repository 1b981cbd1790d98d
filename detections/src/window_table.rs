//! The table a rule's SQL reads: a canonical table's schema over the rows of one window.
//!
//! Each rule plans its SQL once against one [`WindowTable`] per canonical table. The table
//! accepts every filter as `Inexact` pushdown, so the optimized plan's scans carry the rule's
//! filters (the engine evaluates them on every incoming batch and keeps only the matching rows,
//! projected to the columns the plan reads). At evaluation time the engine puts the retained
//! rows of one window into the table and executes the plan; columns that were not retained read
//! as NULL (the plan never asks for them).
//!
//! The scan is a [`WindowExec`] that reads the table's rows when it is *executed*, not when it
//! is planned: the engine builds a rule's physical plan once and re-executes it for every
//! window (DataFusion's planning and optimizing cost more than evaluating a small window).
//! The scan reports no statistics, so the plan does not depend on the rows it was planned
//! with.

use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, RecordBatchOptions, new_null_array};
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::project_schema;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions, SendableRecordBatchStream,
};
use ztlake_normalize::schema::Table;

/// A canonical table holding the rows of one window. See the module docs.
#[derive(Debug)]
pub(crate) struct WindowTable {
    schema: SchemaRef,
    rows: Arc<Mutex<Vec<RecordBatch>>>,
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
        WindowTable {
            schema: Arc::new(Schema::new(fields)),
            rows: Arc::new(Mutex::new(Vec::new())),
        }
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
        Ok(Arc::new(WindowExec::new(projected, Arc::clone(&self.rows))))
    }
}

/// The scan of a [`WindowTable`]: the rows the table holds when the plan is executed, projected.
#[derive(Debug)]
pub(crate) struct WindowExec {
    schema: SchemaRef,
    rows: Arc<Mutex<Vec<RecordBatch>>>,
    properties: Arc<PlanProperties>,
}

impl WindowExec {
    fn new(schema: SchemaRef, rows: Arc<Mutex<Vec<RecordBatch>>>) -> WindowExec {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        WindowExec { schema, rows, properties: Arc::new(properties) }
    }
}

impl DisplayAs for WindowExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "WindowExec")
    }
}

impl ExecutionPlan for WindowExec {
    fn name(&self) -> &'static str {
        "WindowExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "window scan has one partition, not {partition}"
            )));
        }
        let rows = self
            .rows
            .lock()
            .map_err(|_| DataFusionError::Internal("window table lock poisoned".into()))?
            .clone();
        let batches = rows.iter().map(|b| conform(b, &self.schema)).collect::<Result<Vec<_>>>()?;
        Ok(Box::pin(MemoryStream::try_new(batches, self.schema.clone(), None)?))
    }
}
