//! Compiling a rule: its SQL planned once against the canonical schemas, the reference tables
//! and the UDFs, and what the engine must keep of each table to evaluate it later.
//!
//! The optimized logical plan says which rows and columns of a table can matter to the rule:
//! every scan of the table carries a projection (the columns the plan reads) and the filters
//! the optimizer pushed down to it. The engine keeps only rows that pass those filters,
//! projected to those columns (plus `time`, `event_uid` and `provider`, which windows and
//! alerts need) — a [`Retain`] per table. A table scanned several times (self-joins, subqueries)
//! keeps the union of the columns and the disjunction of the scans' filters.
//!
//! The physical plan is built once too: its window scans read their rows when executed, so
//! the engine re-executes the same plan (state reset) for every window instead of planning
//! and optimizing the SQL again each time.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::utils::{conjunction, disjunction, split_conjunction};
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use ztlake_normalize::schema::Table;

use crate::reference::Reference;
use crate::window_table::WindowTable;

/// Columns every retained row keeps, whatever the rule reads.
pub(crate) const ALWAYS_KEPT: [&str; 3] = ["time", "event_uid", "provider"];

/// Functions whose value depends on when the rule runs: they would make streaming and backfill
/// disagree, so rules may not use them (compare with the events' `time` instead).
const CLOCK_FUNCTIONS: [&str; 4] = ["now", "current_date", "current_time", "current_timestamp"];

/// What a rule keeps of one table's rows.
#[derive(Debug, Clone)]
pub struct Retain {
    /// The table.
    pub table: Table,
    /// Columns kept, in the table's column order.
    pub columns: Vec<String>,
    /// Filters every kept row passes (conjuncts, cheapest first); empty: every row is kept.
    pub filters: Vec<Expr>,
}

impl Retain {
    /// One line: `flows[time, dst_ip, …] where <filters>`.
    pub fn describe(&self) -> String {
        let mut s = format!("{}[{}]", self.table, self.columns.join(", "));
        if self.filters.is_empty() {
            s.push_str(" (every row: the SQL pushes no filter down to this table)");
        } else {
            let several = self.filters.len() > 1;
            let filters: Vec<String> = self
                .filters
                .iter()
                .map(|f| {
                    let text = f.to_string();
                    if several && text.contains(" OR ") { format!("({text})") } else { text }
                })
                .collect();
            s.push_str(" where ");
            s.push_str(&filters.join(" AND "));
        }
        s
    }

    /// The filters as one expression (None: keep every row).
    pub fn predicate(&self) -> Option<Expr> {
        conjunction(self.filters.iter().cloned())
    }
}

/// A rule's SQL compiled into its own session.
pub(crate) struct Compiled {
    /// The session holding the window tables, reference tables and UDFs.
    pub(crate) ctx: SessionContext,
    /// The optimized plan.
    pub(crate) plan: LogicalPlan,
    /// Its physical plan, executed for every window (reset first: operators keep state).
    pub(crate) physical: Arc<dyn ExecutionPlan>,
    /// The window table of every canonical table.
    pub(crate) windows: Vec<(Table, Arc<WindowTable>)>,
    /// What is kept of each canonical table the SQL reads.
    pub(crate) retains: Vec<Retain>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").field("retains", &self.retains).finish()
    }
}

impl Compiled {
    /// The window table of `table`.
    pub(crate) fn window(&self, table: Table) -> Option<&Arc<WindowTable>> {
        self.windows.iter().find(|(t, _)| *t == table).map(|(_, w)| w)
    }
}

/// The window table of every canonical table of a rule's session.
type Windows = Vec<(Table, Arc<WindowTable>)>;

/// A session for one rule: a window table per canonical table, the reference tables, the UDFs.
fn rule_session(reference: &Reference) -> datafusion::error::Result<(SessionContext, Windows)> {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_information_schema(false)
        .with_batch_size(8192)
        // The physical plan is executed again for every window; dynamic filters would carry
        // state from one execution into the next.
        .set_bool("datafusion.optimizer.enable_dynamic_filter_pushdown", false);
    let ctx = SessionContext::new_with_config(config);
    let mut windows = Vec::new();
    for table in Table::DATA {
        let window = Arc::new(WindowTable::new(table));
        ctx.register_table(table.name(), window.clone())?;
        windows.push((table, window));
    }
    crate::udf::register(&ctx, reference)?;
    Ok((ctx, windows))
}

/// Plan `sql` for a rule. Errors are messages for a diagnostic at the rule's `sql:` line.
pub(crate) async fn compile(sql: &str, reference: &Reference) -> Result<Compiled, String> {
    let (ctx, windows) = rule_session(reference).map_err(|e| format!("internal: {e}"))?;
    let state = ctx.state();
    let plan = state.create_logical_plan(sql).await.map_err(|e| clean(&e))?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|_| {
            "the SQL must be a query (SELECT …); DDL, DML and SET are not allowed".to_owned()
        })?;
    check_clock_free(&plan)?;
    let plan = state.optimize(&plan).map_err(|e| clean(&e))?;
    let retains = retains_of(&plan, &windows)?;
    let physical = state.create_physical_plan(&plan).await.map_err(|e| clean(&e))?;
    Ok(Compiled { ctx, plan, physical, windows, retains })
}

/// A DataFusion error as a one-line message.
fn clean(e: &datafusion::error::DataFusionError) -> String {
    let text = e.strip_backtrace();
    text.lines().next().unwrap_or_default().trim().to_owned()
}

fn check_clock_free(plan: &LogicalPlan) -> Result<(), String> {
    let mut found: Option<String> = None;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    let name = f.func.name();
                    if CLOCK_FUNCTIONS.contains(&name)
                        || f.func.signature().volatility == Volatility::Volatile
                    {
                        found = Some(name.to_owned());
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if found.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    match found {
        Some(name) => Err(format!(
            "{name}() depends on when the rule runs, so streaming and backfill would disagree; compare with the events' time columns instead"
        )),
        None => Ok(()),
    }
}

/// The scans of each canonical table in `plan`: (projection, filters).
type Scans = Vec<(Option<Vec<usize>>, Vec<Expr>)>;

fn retains_of(
    plan: &LogicalPlan,
    windows: &[(Table, Arc<WindowTable>)],
) -> Result<Vec<Retain>, String> {
    let mut scans: Vec<(Table, Scans)> = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Some(table) = Table::from_name(scan.table_name.table())
            && Table::DATA.contains(&table)
        {
            let found = (scan.projection.clone(), scan.filters.clone());
            match scans.iter_mut().find(|(t, _)| *t == table) {
                Some((_, list)) => list.push(found),
                None => scans.push((table, vec![found])),
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(|e| clean(&e))?;
    let mut retains = Vec::new();
    for (table, list) in scans {
        let Some((_, window)) = windows.iter().find(|(t, _)| *t == table) else { continue };
        let schema = window.full_schema();
        let mut indices: BTreeSet<usize> = BTreeSet::new();
        for (projection, _) in &list {
            match projection {
                Some(p) => indices.extend(p.iter().copied()),
                None => indices.extend(0..schema.fields().len()),
            }
        }
        for name in ALWAYS_KEPT {
            if let Ok(i) = schema.index_of(name) {
                indices.insert(i);
            }
        }
        let columns = indices.iter().map(|&i| schema.field(i).name().clone()).collect();
        let filters = if list.iter().any(|(_, f)| f.is_empty()) {
            Vec::new()
        } else if list.len() == 1 {
            let mut conjuncts: Vec<Expr> =
                list[0].1.iter().flat_map(|f| split_conjunction(f).into_iter().cloned()).collect();
            conjuncts.sort_by_key(function_calls);
            conjuncts
        } else {
            let alternatives = list.iter().filter_map(|(_, f)| conjunction(f.iter().cloned()));
            disjunction(alternatives).into_iter().collect()
        };
        retains.push(Retain { table, columns, filters });
    }
    retains.sort_by_key(|r| r.table);
    Ok(retains)
}

/// Function calls in an expression: a cost estimate (plain comparisons first, UDFs last).
fn function_calls(expr: &Expr) -> usize {
    let mut n = 0;
    let _ = expr.apply(|e| {
        if matches!(e, Expr::ScalarFunction(_)) {
            n += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retains_follow_projection_and_pushed_filters() {
        let sql = "SELECT dst_ip, count(*) AS count, min(time) AS first_seen, max(time) AS last_seen, array_agg(event_uid) AS event_uids FROM flows WHERE is_public_ip(src_ip) AND action = 'allow' AND dst_port IN (22, 3389) GROUP BY dst_ip";
        let c = compile(sql, &Reference::empty()).await.expect("compile");
        assert_eq!(c.retains.len(), 1);
        let r = &c.retains[0];
        assert_eq!(r.table, Table::Flows);
        assert_eq!(
            r.columns,
            ["time", "provider", "src_ip", "dst_ip", "dst_port", "action", "event_uid"]
        );
        assert_eq!(r.filters.len(), 3, "{:?}", r.filters);
        assert!(
            r.filters[2].to_string().contains("is_public_ip"),
            "UDF filters last: {}",
            r.describe()
        );
    }

    #[tokio::test]
    async fn self_joins_union_columns_and_or_filters() {
        let sql = "SELECT a.src_ip, min(a.time) AS first_seen, max(b.time) AS last_seen, array_agg(b.event_uid) AS event_uids FROM flows a JOIN flows b ON a.src_ip = b.src_ip WHERE a.dst_port = 22 AND b.action = 'deny' GROUP BY a.src_ip";
        let c = compile(sql, &Reference::empty()).await.expect("compile");
        let r = &c.retains[0];
        assert_eq!(r.filters.len(), 1);
        let f = r.filters[0].to_string();
        assert!(f.contains(" OR "), "{f}");
        assert!(
            r.columns.contains(&"dst_port".to_owned()) && r.columns.contains(&"action".to_owned())
        );
        // A join with a reference table keeps the flows filter.
        let sql = "SELECT f.dst_ip, min(f.time) AS first_seen, max(f.time) AS last_seen, array_agg(f.event_uid) AS event_uids FROM flows f JOIN assets a ON cidr_contains(a.cidr, f.dst_ip) WHERE a.segment = 'pci' AND f.action = 'allow' GROUP BY f.dst_ip";
        let c = compile(sql, &Reference::empty()).await.expect("compile");
        assert_eq!(c.retains.len(), 1);
        assert!(c.retains[0].describe().contains("allow"), "{}", c.retains[0].describe());
    }

    #[tokio::test]
    async fn bad_sql_is_rejected_with_a_message() {
        let r = Reference::empty();
        let e = compile("SELECT nosuch FROM flows", &r).await.expect_err("unknown column");
        assert!(e.contains("nosuch"), "{e}");
        let e = compile("SELEC 1", &r).await.expect_err("syntax");
        assert!(!e.is_empty());
        let e = compile("SELECT * FROM nosuchtable", &r).await.expect_err("table");
        assert!(e.contains("nosuchtable"), "{e}");
        let e = compile("DROP TABLE flows", &r).await.expect_err("ddl");
        assert!(e.contains("must be a query"), "{e}");
        let e = compile("SELECT src_ip FROM flows WHERE time > now() - INTERVAL '1 hour'", &r)
            .await
            .expect_err("clock");
        assert!(e.contains("now()"), "{e}");
        let e = compile("SELECT random() FROM flows", &r).await.expect_err("volatile");
        assert!(e.contains("random"), "{e}");
    }
}
