//! The engine: rules evaluated over tumbling event-time windows, fed batch by batch.
//!
//! Per batch, the work is a filter and a projection per rule reading the batch's table: the
//! rule's pushed-down filters ([`crate::compile::Retain`]) are evaluated as DataFusion physical
//! expressions, one conjunct at a time on the rows the previous ones kept, each reading only
//! its own columns (the kept rows are copied once, at the end), and the matching
//! rows, projected to the columns the rule reads, go to the window (bucket) of their `time`:
//! `[k·window, (k+1)·window)`, epoch-aligned. Nothing is planned per batch or per window: a
//! rule's physical plan is built once and re-executed over each window's rows.
//!
//! A window closes when the clock passes its end plus the allowed lateness. The clock is the
//! largest `time` seen in the rule's trigger table ([`Clock::Data`], streaming) or the point up
//! to which every row has been fed ([`Clock::Explicit`], backfill). On close the rule's plan is
//! executed over the window's rows (final evaluation) and the window is dropped; rows arriving
//! for a closed window are late: dropped and counted. Open windows with new rows are also
//! evaluated every `eval_every_rows` kept rows or `eval_every` (provisional), so alerts show
//! within seconds; a window's final evaluation replaces its provisional ones. One-shot runs,
//! which read the alerts only at the end, skip them ([`Engine::final_only`]).
//!
//! Memory is bounded per rule by `max_rows_per_rule` kept rows; beyond it the oldest rows are
//! evicted, counted and warned about (the evicted windows may then miss alerts).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::{filter, take_record_batch};
use arrow::datatypes::{Schema, SchemaRef, TimestampMicrosecondType, UInt32Type};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::utils::{collect_columns, reassign_expr_columns};
use datafusion::physical_plan::execution_plan::reset_plan_states;
use ztlake_normalize::schema::Table;

use crate::alert::Alert;
use crate::book::{AlertBook, Spent};
use crate::candidate::{self, Candidate};
use crate::compile::{Compiled, compile};
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::rule::{Mode, Rule};
use crate::window_table::conform;

/// Tuning of the engine (deserializable, so it can sit in the service config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineOptions {
    /// Most rows a rule keeps across its open windows; beyond it the oldest are evicted.
    #[serde(default = "default_max_rows_per_rule")]
    pub max_rows_per_rule: usize,
    /// Evaluate a rule's open windows after this many newly kept rows …
    #[serde(default = "default_eval_every_rows")]
    pub eval_every_rows: usize,
    /// … or this long after its last evaluation (whichever comes first).
    #[serde(default = "default_eval_every", with = "humantime_serde_compat")]
    pub eval_every: Duration,
}

/// Default [`EngineOptions::max_rows_per_rule`]: 2 M rows.
pub fn default_max_rows_per_rule() -> usize {
    2_000_000
}

/// Default [`EngineOptions::eval_every_rows`]: 50 000 rows.
pub fn default_eval_every_rows() -> usize {
    50_000
}

/// Default [`EngineOptions::eval_every`]: 5 s.
pub fn default_eval_every() -> Duration {
    Duration::from_secs(5)
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_rows_per_rule: default_max_rows_per_rule(),
            eval_every_rows: default_eval_every_rows(),
            eval_every: default_eval_every(),
        }
    }
}

mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// What drives the closing of windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The largest event time seen in each rule's trigger table, minus the allowed lateness
    /// (streaming).
    Data,
    /// [`Engine::advance_to`]: every row before that time has been fed (backfill).
    Explicit,
}

/// Counters of an engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Rows fed.
    pub rows_in: u64,
    /// Rows kept by some rule (a row kept by two rules counts twice).
    pub rows_kept: u64,
    /// Rows kept right now across open windows.
    pub rows_held: u64,
    /// Rows dropped because their window had already closed.
    pub late_rows: u64,
    /// Rows evicted because a rule held more than `max_rows_per_rule`.
    pub evicted_rows: u64,
    /// Evaluations of open windows.
    pub provisional_evaluations: u64,
    /// Final evaluations (closed windows and scheduled runs).
    pub final_evaluations: u64,
    /// Alerts in the book.
    pub alerts: u64,
}

/// What a rule keeps of one table, ready to run on batches.
struct Input {
    table: Table,
    schema: SchemaRef,
    /// The pushed-down filters (all must hold: their order does not change the rows kept),
    /// evaluated by [`Conjunct::rank`], re-sorted before every batch; one not measured yet
    /// (rank 0) runs first once, on one batch.
    conjuncts: Vec<Conjunct>,
    /// Batches filtered so far.
    batches: u64,
}

/// Every this many batches, one filter other than the best-ranked runs first (in turn), so
/// that each is measured on whole batches.
const EXPLORE_EVERY: u64 = 16;

impl Input {
    /// The order to evaluate the filters in for the next batch: by rank, except that every
    /// [`EXPLORE_EVERY`]th batch another filter (in turn) goes first.
    fn order(&mut self) -> Vec<usize> {
        self.conjuncts.sort_by(|a, b| a.rank().total_cmp(&b.rank()));
        let mut order: Vec<usize> = (0..self.conjuncts.len()).collect();
        self.batches += 1;
        let n = order.len() as u64;
        if n > 1 && self.batches.is_multiple_of(EXPLORE_EVERY) {
            let turn = (self.batches / EXPLORE_EVERY) % (n - 1) + 1;
            let j = usize::try_from(turn).unwrap_or(0);
            order.swap(0, j);
        }
        order
    }
}

/// One pushed-down filter, over just the columns it reads: evaluating it needs only those
/// columns of the rows still selected, not a copy of every kept column.
struct Conjunct {
    /// The columns it reads, as indices into [`Input::schema`].
    columns: Vec<usize>,
    /// Those columns' fields.
    schema: SchemaRef,
    /// The filter, its columns renumbered to `schema`.
    expr: Arc<dyn PhysicalExpr>,
    /// Rows it was evaluated on, and how many of them it kept.
    rows_in: u64,
    rows_kept: u64,
    /// Time spent evaluating it (ns).
    nanos: u64,
    /// The same, counting only evaluations on every row of a batch (no earlier filter had
    /// narrowed it): what [`Conjunct::rank`] uses once there are any.
    full: (u64, u64, u64),
}

impl Conjunct {
    /// `expr` (planned over `input`) narrowed to the columns it reads.
    fn new(expr: Arc<dyn PhysicalExpr>, input: &Schema) -> datafusion::error::Result<Conjunct> {
        let mut columns: Vec<usize> = collect_columns(&expr).iter().map(|c| c.index()).collect();
        columns.sort_unstable();
        columns.dedup();
        let schema = Arc::new(input.project(&columns)?);
        let expr = reassign_expr_columns(expr, &schema)?;
        Ok(Conjunct { columns, schema, expr, rows_in: 0, rows_kept: 0, nanos: 0, full: (0, 0, 0) })
    }

    /// Its place in the order of evaluation: the classic rank of independent filters, cost
    /// per row over the share of rows it drops — cheap filters that drop much run first.
    ///
    /// Measured on whole batches when it has been: measured only behind other filters, a
    /// filter sees a few, correlated rows (its per-call overhead spread over a handful of rows
    /// and a drop rate that says nothing about all rows), which could keep an expensive
    /// filter first for good. [`Input::order`] lets each filter run first now and then.
    fn rank(&self) -> f64 {
        let (rows_in, rows_kept, nanos) =
            if self.full.0 > 0 { self.full } else { (self.rows_in, self.rows_kept, self.nanos) };
        if rows_in == 0 {
            return 0.0;
        }
        let cost = nanos as f64 / rows_in as f64;
        let dropped = 1.0 - rows_kept as f64 / rows_in as f64;
        cost / dropped.max(1e-3)
    }
}

/// The kept rows of one window: per input, its batches.
#[derive(Default)]
struct Bucket {
    rows: Vec<Vec<RecordBatch>>,
    count: usize,
    dirty: bool,
}

/// A rule inside an engine.
struct RuleRuntime {
    rule: Arc<Rule>,
    compiled: Compiled,
    inputs: Vec<Input>,
    window: i64,
    lateness: i64,
    buckets: BTreeMap<i64, Bucket>,
    closed_before: i64,
    watermark: i64,
    range: Option<(i64, i64)>,
    held: usize,
    since_eval: usize,
    last_eval: Instant,
    warned: bool,
    /// Time spent on this rule: filtering and windowing pushed batches, and evaluating.
    cost: RuleCost,
}

/// Where a rule's time went (logged at debug level when the engine flushes).
#[derive(Debug, Default, Clone, Copy)]
struct RuleCost {
    keep: Duration,
    evaluate: Duration,
    apply: Duration,
    evaluations: u64,
}

impl RuleCost {
    /// One evaluation that ran from `started` to `evaluated`, its alerts applied until now.
    fn evaluation(&mut self, started: Instant, evaluated: Instant) {
        self.evaluate += evaluated - started;
        self.apply += evaluated.elapsed();
        self.evaluations += 1;
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX).max(1)
}

fn align_down(t: i64, step: i64) -> i64 {
    t.div_euclid(step).saturating_mul(step)
}

fn align_up(t: i64, step: i64) -> i64 {
    let down = align_down(t, step);
    if down == t { t } else { down.saturating_add(step) }
}

impl RuleRuntime {
    async fn new(rule: Arc<Rule>, reference: &Reference) -> Result<RuleRuntime> {
        let compiled = compile(&rule.spec.sql, reference)
            .await
            .map_err(|m| Error::shape(rule.id(), format!("compiling the SQL: {m}")))?;
        let mut inputs = Vec::new();
        for retain in &compiled.retains {
            let Some(window) = compiled.window(retain.table) else { continue };
            let full = window.full_schema();
            let fields: Vec<_> = retain
                .columns
                .iter()
                .filter_map(|c| full.field_with_name(c).ok().cloned())
                .collect();
            let schema = Arc::new(Schema::new(fields));
            let df_schema = DFSchema::try_from_qualified_schema(retain.table.name(), &schema)
                .map_err(|e| Error::df(rule.id(), "schema of the kept rows", e))?;
            let mut conjuncts = Vec::new();
            for f in &retain.filters {
                let planned = compiled
                    .ctx
                    .create_physical_expr(f.clone(), &df_schema)
                    .and_then(|p| Conjunct::new(p, &schema));
                match planned {
                    Ok(c) => conjuncts.push(c),
                    // Keeping more rows is always correct: the plan applies its filters again.
                    Err(e) => {
                        tracing::debug!(rule = rule.id(), filter = %f, error = %e, "filter not usable on batches; keeping more rows")
                    }
                }
            }
            inputs.push(Input { table: retain.table, schema, conjuncts, batches: 0 });
        }
        let (window, lateness) = match rule.mode() {
            Mode::Streaming => {
                (micros(rule.window), i64::try_from(rule.lateness.as_micros()).unwrap_or(i64::MAX))
            }
            Mode::Scheduled => (micros(rule.interval), 0),
        };
        Ok(RuleRuntime {
            rule,
            compiled,
            inputs,
            window,
            lateness,
            buckets: BTreeMap::new(),
            closed_before: i64::MIN,
            watermark: i64::MIN,
            range: None,
            held: 0,
            since_eval: 0,
            last_eval: Instant::now(),
            warned: false,
            cost: RuleCost::default(),
        })
    }

    /// Keep the rows of `batch` that can matter to this rule's input `i`, in their windows.
    fn keep(&mut self, i: usize, batch: &RecordBatch, stats: &mut EngineStats) -> Result<()> {
        let id = self.rule.id().to_owned();
        let input = &mut self.inputs[i];
        let order = input.order();
        let b =
            conform(batch, &input.schema).map_err(|e| Error::df(&id, "projecting a batch", e))?;
        // The filters, one after the other, each reading only its own columns. While the
        // filters so far keep most rows (`action = 'allow'` keeps nine in ten flows), the next
        // one reads the columns as they are and its mask is combined with theirs: copying
        // nearly every row's text to skip a few would cost more than it saves. Once a filter
        // drops more, the rows left are picked out and later filters read only those.
        let mut selected: Option<UInt32Array> = None;
        let mut pending: Option<BooleanArray> = None;
        for k in order {
            let Some(conjunct) = input.conjuncts.get_mut(k) else { continue };
            let started = Instant::now();
            let rows = selected.as_ref().map_or(b.num_rows(), Array::len);
            let columns = conjunct
                .columns
                .iter()
                .map(|&c| match &selected {
                    None => Ok(b.column(c).clone()),
                    Some(indices) => arrow::compute::take(b.column(c).as_ref(), indices, None),
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::arrow(&id, "filtering", e))?;
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            let narrow =
                RecordBatch::try_new_with_options(conjunct.schema.clone(), columns, &options)
                    .map_err(|e| Error::arrow(&id, "filtering", e))?;
            let mask = conjunct
                .expr
                .evaluate(&narrow)
                .and_then(|v| v.into_array(rows))
                .map_err(|e| Error::df(&id, "filtering a batch", e))?;
            let Some(mask) = mask.as_any().downcast_ref::<BooleanArray>() else {
                return Err(Error::shape(&id, "a filter did not return booleans"));
            };
            let own = mask.true_count();
            conjunct.rows_in += rows as u64;
            conjunct.rows_kept += own as u64;
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            conjunct.nanos += nanos;
            if selected.is_none() {
                let full = &mut conjunct.full;
                (full.0, full.1, full.2) =
                    (full.0 + rows as u64, full.1 + own as u64, full.2 + nanos);
            }
            // NULL is "not kept", in the mask and after combining.
            let (mask, kept) = match pending.take() {
                None => (mask.clone(), own),
                Some(before) => {
                    let both = arrow::compute::and(&before, mask)
                        .map_err(|e| Error::arrow(&id, "filtering", e))?;
                    let kept = both.true_count();
                    (both, kept)
                }
            };
            if kept == 0 {
                return Ok(());
            }
            if kept == rows {
                continue;
            }
            if kept * 5 >= rows * 4 {
                pending = Some(mask);
                continue;
            }
            selected = Some(narrow_selection(selected, &mask, b.num_rows(), &id)?);
        }
        if let Some(mask) = pending {
            selected = Some(narrow_selection(selected, &mask, b.num_rows(), &id)?);
        }
        let b = match &selected {
            None => b,
            Some(indices) if indices.is_empty() => return Ok(()),
            Some(indices) => {
                take_record_batch(&b, indices).map_err(|e| Error::arrow(&id, "filtering", e))?
            }
        };
        if b.num_rows() == 0 {
            return Ok(());
        }
        let Ok(time_index) = b.schema().index_of("time") else {
            return Err(Error::shape(&id, "kept rows have no time column"));
        };
        let times = b.column(time_index).as_primitive::<TimestampMicrosecondType>().clone();
        // One pass: the rows of each window, by index (input order kept). A batch spans many
        // windows when they are short, so no per-window scan of the whole batch.
        let mut starts: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut late = 0u64;
        for (row, t) in times.iter().enumerate() {
            let Some(t) = t else { continue };
            let start = align_down(t, self.window);
            if let Some((rlo, rhi)) = self.range
                && (t < rlo || t >= rhi)
            {
                continue;
            }
            if start < self.closed_before {
                late += 1;
                continue;
            }
            let Ok(row) = u32::try_from(row) else {
                return Err(Error::shape(&id, "a batch of more than 4 billion rows"));
            };
            starts.entry(start).or_default().push(row);
        }
        stats.late_rows += late;
        let inputs = self.inputs.len();
        for (start, rows) in starts {
            let n = rows.len();
            let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else { continue };
            let piece = if n == b.num_rows() {
                b.clone()
            } else if (last - first) as usize + 1 == n {
                // Ordered input: the window's rows are one run of the batch (no copy).
                b.slice(first as usize, n)
            } else {
                let indices = arrow::array::UInt32Array::from(rows);
                arrow::compute::take_record_batch(&b, &indices)
                    .map_err(|e| Error::arrow(&id, "splitting windows", e))?
            };
            let bucket = self
                .buckets
                .entry(start)
                .or_insert_with(|| Bucket { rows: vec![Vec::new(); inputs], ..Bucket::default() });
            bucket.rows[i].push(piece);
            bucket.count += n;
            bucket.dirty = true;
            self.held += n;
            self.since_eval += n;
            stats.rows_kept += n as u64;
        }
        Ok(())
    }

    /// Evict the oldest kept rows beyond `max`.
    fn evict(&mut self, max: usize, stats: &mut EngineStats) {
        if self.held <= max {
            return;
        }
        let mut excess = self.held - max;
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                rule = self.rule.id(),
                max,
                "rule holds more rows than max_rows_per_rule: evicting the oldest (alerts of those windows may be missed); narrow its WHERE clause or raise the limit"
            );
        }
        while excess > 0 {
            let Some(mut entry) = self.buckets.first_entry() else { break };
            let bucket = entry.get_mut();
            for rows in bucket.rows.iter_mut() {
                while excess > 0 && !rows.is_empty() {
                    let n = rows[0].num_rows();
                    if n <= excess {
                        rows.remove(0);
                        bucket.count -= n;
                        self.held -= n;
                        excess -= n;
                        stats.evicted_rows += n as u64;
                    } else {
                        rows[0] = rows[0].slice(excess, n - excess);
                        bucket.count -= excess;
                        self.held -= excess;
                        stats.evicted_rows += excess as u64;
                        excess = 0;
                    }
                }
            }
            if bucket.count == 0 {
                entry.remove();
            }
        }
    }

    /// Evaluate the open windows that have new rows (provisional evaluations); `index` is the
    /// rule's index in the engine.
    async fn evaluate_open(
        &mut self,
        index: usize,
        book: &mut AlertBook,
        stats: &mut EngineStats,
    ) -> Result<()> {
        let starts: Vec<i64> =
            self.buckets.iter().filter(|(_, b)| b.dirty).map(|(s, _)| *s).collect();
        for start in starts {
            let rows = match self.buckets.get_mut(&start) {
                Some(b) => {
                    b.dirty = false;
                    b.rows.clone()
                }
                None => continue,
            };
            let started = Instant::now();
            let candidates = self.evaluate(&rows).await?;
            let evaluated = Instant::now();
            stats.provisional_evaluations += 1;
            book.apply(index, &self.rule, start, candidates);
            self.cost.evaluation(started, evaluated);
        }
        Ok(())
    }

    /// Run the plan over `rows` (per input) and read the candidates, with the providers of
    /// their evidence.
    async fn evaluate(
        &self,
        rows: &[Vec<RecordBatch>],
    ) -> Result<Vec<(Candidate, BTreeSet<String>)>> {
        let id = self.rule.id();
        for (input, batches) in self.inputs.iter().zip(rows) {
            if let Some(w) = self.compiled.window(input.table) {
                w.set(batches.clone());
            }
        }
        // The plan built at compile time, its operators' state reset: nothing is planned here.
        let result = match reset_plan_states(Arc::clone(&self.compiled.physical)) {
            Ok(plan) => {
                datafusion::physical_plan::collect(plan, self.compiled.ctx.task_ctx()).await
            }
            Err(e) => Err(e),
        };
        for input in &self.inputs {
            if let Some(w) = self.compiled.window(input.table) {
                w.clear();
            }
        }
        let batches = result.map_err(|e| Error::df(id, "evaluating", e))?;
        let candidates = candidate::extract(&self.rule, &batches)?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: HashSet<&str> =
            candidates.iter().flat_map(|c| c.uids.iter().map(String::as_str)).collect();
        let mut providers: HashMap<&str, &str> = HashMap::new();
        for batch in rows.iter().flatten() {
            let (Some(uids), Some(provs)) =
                (batch.column_by_name("event_uid"), batch.column_by_name("provider"))
            else {
                continue;
            };
            let (Some(uids), Some(provs)) =
                (uids.as_string_opt::<i32>(), provs.as_string_opt::<i32>())
            else {
                continue;
            };
            for r in 0..batch.num_rows() {
                if uids.is_valid(r) && provs.is_valid(r) && wanted.contains(uids.value(r)) {
                    providers.insert(uids.value(r), provs.value(r));
                }
            }
        }
        Ok(candidates
            .into_iter()
            .map(|c| {
                let p = c
                    .uids
                    .iter()
                    .filter_map(|u| providers.get(u.as_str()).map(|p| (*p).to_owned()))
                    .collect();
                (c, p)
            })
            .collect())
    }
}

/// The engine. See the module docs.
pub struct Engine {
    rules: Vec<RuleRuntime>,
    book: AlertBook,
    stats: EngineStats,
    options: EngineOptions,
    clock: Clock,
    /// Evaluate open windows (provisional evaluations); off in one-shot runs.
    provisional: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.iter().map(|r| r.rule.id()).collect::<Vec<_>>())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Engine {
    /// An engine for `rules` (each compiled once, in its own session, with `reference`).
    ///
    /// # Errors
    /// A rule whose SQL does not compile (rules from the loader always do).
    pub async fn new(
        rules: &[Arc<Rule>],
        reference: &Reference,
        options: EngineOptions,
        clock: Clock,
    ) -> Result<Engine> {
        let mut runtimes = Vec::with_capacity(rules.len());
        for rule in rules {
            runtimes.push(RuleRuntime::new(rule.clone(), reference).await?);
        }
        Ok(Engine {
            rules: runtimes,
            book: AlertBook::default(),
            stats: EngineStats::default(),
            options,
            clock,
            provisional: true,
        })
    }

    /// Skip provisional evaluations: for one-shot runs (`ingest --detect`, backfill) whose
    /// alerts are read only after [`Engine::flush`]. A window's final evaluation replaces its
    /// provisional ones, so they cannot change the alerts read then; only a rule that must
    /// evict rows (over `max_rows_per_rule`) still evaluates its open windows when a
    /// provisional evaluation is due, so windows evicted whole keep what they showed.
    pub fn final_only(mut self) -> Engine {
        self.provisional = false;
        self
    }

    /// The rules of the engine.
    pub fn rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.rules.iter().map(|r| &r.rule)
    }

    /// Tables read by the streaming rules, with the columns and filters they keep.
    pub fn retains(&self) -> Vec<(Arc<Rule>, crate::compile::Retain)> {
        self.rules
            .iter()
            .filter(|r| r.rule.mode() == Mode::Streaming)
            .flat_map(|r| r.compiled.retains.iter().map(|x| (r.rule.clone(), x.clone())))
            .collect()
    }

    /// Restrict every streaming rule to whole windows covering `[from, to)` (µs): rows outside
    /// its windows are ignored (backfill over a time range).
    pub fn set_range(&mut self, from: i64, to: i64) {
        for r in &mut self.rules {
            r.range = Some((align_down(from, r.window), align_up(to, r.window)));
        }
    }

    /// The time range a backfill must read to cover `[from, to)` with whole windows of every
    /// streaming rule.
    pub fn read_range(&self, from: i64, to: i64) -> (i64, i64) {
        let streaming = self.rules.iter().filter(|r| r.rule.mode() == Mode::Streaming);
        streaming.fold((from, to), |(lo, hi), r| {
            (lo.min(align_down(from, r.window)), hi.max(align_up(to, r.window)))
        })
    }

    /// Feed a batch of `table` (canonical columns by name; other string types are cast).
    ///
    /// # Errors
    /// A filter or an evaluation failed (the message names the rule).
    pub async fn push(&mut self, table: Table, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.stats.rows_in += batch.num_rows() as u64;
        for (index, r) in self.rules.iter_mut().enumerate() {
            if r.rule.mode() != Mode::Streaming {
                continue;
            }
            let started = Instant::now();
            for i in 0..r.inputs.len() {
                if r.inputs[i].table == table {
                    r.keep(i, batch, &mut self.stats)?;
                }
            }
            r.cost.keep += started.elapsed();
            if !self.provisional
                && r.held > self.options.max_rows_per_rule
                && (r.since_eval >= self.options.eval_every_rows
                    || r.last_eval.elapsed() >= self.options.eval_every)
            {
                // Rows are about to go: what the open windows hold shows first, at the pace
                // provisional evaluations would have had.
                r.evaluate_open(index, &mut self.book, &mut self.stats).await?;
                r.since_eval = 0;
                r.last_eval = Instant::now();
            }
            r.evict(self.options.max_rows_per_rule, &mut self.stats);
        }
        if self.clock == Clock::Data
            && let Some(max) = max_time(batch)
        {
            for r in &mut self.rules {
                if r.rule.mode() == Mode::Streaming && r.rule.table == table && max > r.watermark {
                    r.watermark = max;
                    let close = align_down(max.saturating_sub(r.lateness), r.window);
                    r.closed_before = r.closed_before.max(close);
                }
            }
        }
        self.run_due(false).await
    }

    /// Every row before `t` (µs) has been fed: close the windows that end at or before it
    /// ([`Clock::Explicit`]).
    pub async fn advance_to(&mut self, t: i64) -> Result<()> {
        for r in &mut self.rules {
            r.closed_before = r.closed_before.max(align_down(t, r.window));
        }
        self.run_due(false).await
    }

    /// Evaluate the open windows whose provisional evaluation is due (`eval_every` passed)
    /// without new rows, so a stream that went quiet still shows its alerts (the service calls
    /// it on a timer).
    ///
    /// # Errors
    /// An evaluation failed (the message names the rule).
    pub async fn evaluate_due(&mut self) -> Result<()> {
        self.run_due(false).await
    }

    /// End of input: evaluate and close every window.
    pub async fn flush(&mut self) -> Result<()> {
        for r in &mut self.rules {
            r.closed_before = i64::MAX;
        }
        self.run_due(true).await?;
        for r in &self.rules {
            if r.cost.evaluations > 0 || !r.cost.keep.is_zero() {
                tracing::debug!(
                    rule = r.rule.id(),
                    keep_ms = r.cost.keep.as_millis(),
                    evaluate_ms = r.cost.evaluate.as_millis(),
                    apply_ms = r.cost.apply.as_millis(),
                    evaluations = r.cost.evaluations,
                    "rule cost"
                );
                for c in r.inputs.iter().flat_map(|i| &i.conjuncts) {
                    tracing::trace!(
                        rule = r.rule.id(),
                        filter = %c.expr,
                        rows_in = c.rows_in,
                        rows_kept = c.rows_kept,
                        ms = c.nanos / 1_000_000,
                        "filter cost"
                    );
                }
            }
        }
        Ok(())
    }

    async fn run_due(&mut self, flushing: bool) -> Result<()> {
        let now = Instant::now();
        for (index, r) in self.rules.iter_mut().enumerate() {
            if r.rule.mode() != Mode::Streaming {
                continue;
            }
            while let Some(entry) = r.buckets.first_entry() {
                if *entry.key() >= r.closed_before {
                    break;
                }
                let (start, bucket) = entry.remove_entry();
                r.held -= bucket.count;
                let started = Instant::now();
                let candidates = r.evaluate(&bucket.rows).await?;
                let evaluated = Instant::now();
                self.stats.final_evaluations += 1;
                if self.provisional {
                    // Replaces the window's provisional contribution.
                    self.book.apply(index, &r.rule, start, candidates);
                } else {
                    // Nothing was evaluated of this window before, nor ever will be again.
                    self.book.fold(&r.rule, start, candidates);
                }
                r.cost.evaluation(started, evaluated);
            }
            let due = r.since_eval >= self.options.eval_every_rows
                || now.duration_since(r.last_eval) >= self.options.eval_every;
            if flushing || !self.provisional || !due || !r.buckets.values().any(|b| b.dirty) {
                continue;
            }
            r.evaluate_open(index, &mut self.book, &mut self.stats).await?;
            r.since_eval = 0;
            r.last_eval = now;
        }
        self.stats.rows_held = self.rules.iter().map(|r| r.held as u64).sum();
        self.stats.alerts = self.book.len() as u64;
        Ok(())
    }

    /// Evaluate scheduled rule `rule_id` for its run at `run` (µs) over `rows` (batches per
    /// table covering `[run − lookback, run)`).
    pub async fn run_scheduled(
        &mut self,
        rule_id: &str,
        run: i64,
        rows: &[(Table, Vec<RecordBatch>)],
    ) -> Result<()> {
        let Some(index) = self.rules.iter().position(|r| r.rule.id() == rule_id) else {
            return Err(Error::shape(rule_id, "no such rule in the engine"));
        };
        let r = &self.rules[index];
        let mut per_input: Vec<Vec<RecordBatch>> = vec![Vec::new(); r.inputs.len()];
        for (i, input) in r.inputs.iter().enumerate() {
            for (table, batches) in rows {
                if *table != input.table {
                    continue;
                }
                for b in batches {
                    per_input[i].push(
                        conform(b, &input.schema)
                            .map_err(|e| Error::df(rule_id, "projecting rows", e))?,
                    );
                }
            }
        }
        let candidates = r.evaluate(&per_input).await?;
        self.stats.final_evaluations += 1;
        self.book.apply(index, &r.rule.clone(), run, candidates);
        self.stats.alerts = self.book.len() as u64;
        Ok(())
    }

    /// The filters of `rule`'s first input, in their current order of evaluation.
    #[cfg(test)]
    pub(crate) fn filter_order(&self, rule: &str) -> Vec<String> {
        let r = self.rules.iter().find(|r| r.rule.id() == rule);
        let input = r.and_then(|r| r.inputs.first());
        input.map_or_else(Vec::new, |i| i.conjuncts.iter().map(|c| c.expr.to_string()).collect())
    }

    /// Per filter of `rule`'s first input, in [`Engine::filter_order`]'s order: the rows it was
    /// evaluated on as whole batches.
    #[cfg(test)]
    pub(crate) fn filter_full_rows(&self, rule: &str) -> Vec<u64> {
        let r = self.rules.iter().find(|r| r.rule.id() == rule);
        let input = r.and_then(|r| r.inputs.first());
        input.map_or_else(Vec::new, |i| i.conjuncts.iter().map(|c| c.full.0).collect())
    }

    /// The counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Every alert's current state, stamped `updated = now` (µs).
    pub fn alerts(&self, now: i64) -> Vec<Alert> {
        self.book.alerts(now)
    }

    /// The alerts whose state may have changed since the previous call (every alert on the
    /// first call), stamped `updated = now` (µs): what a long-running engine polls instead of
    /// rebuilding every alert each time. Alerts that disappeared (a provisional match gone) are
    /// not reported. Alerts that can no longer change (every window that could add to their
    /// dedupe bucket is closed) are then forgotten, so the engine's memory follows the open
    /// windows, not every alert ever raised; [`ChangedAlerts::finished`] names them.
    pub fn changed_alerts(&mut self, now: i64) -> ChangedAlerts {
        let alerts = self.book.changed_alerts(now);
        let closed: Vec<(&Arc<Rule>, i64)> = self
            .rules
            .iter()
            .map(|r| {
                let closed =
                    if r.rule.mode() == Mode::Streaming { r.closed_before } else { i64::MIN };
                (&r.rule, closed)
            })
            .collect();
        let finished = self.book.forget_final(&closed);
        self.stats.alerts = self.book.len() as u64;
        ChangedAlerts { alerts, finished }
    }

    /// [`Engine::alerts`] at the end of a run: the engine's state moves into the alerts.
    pub fn into_alerts(self, now: i64) -> Vec<Alert> {
        self.book.into_alerts(now)
    }

    /// [`Engine::into_alerts`] as rows of the `alerts` table ([`crate::alerts_batch`] of the
    /// alerts, in one or more batches), made without building the alerts: what a one-shot run
    /// writes to the lake. What is left of the engine's alert states comes along, to be freed
    /// when it does not slow the write of the rows down ([`Spent::free_later`]).
    ///
    /// # Errors
    /// The rows do not fit the table's schema (a bug).
    pub fn into_alert_rows(self, now: i64) -> Result<(Vec<RecordBatch>, Spent)> {
        self.book.into_rows(now)
    }
}

/// What [`Engine::changed_alerts`] reports.
#[derive(Debug, Default)]
pub struct ChangedAlerts {
    /// The alerts whose state may have changed, by id.
    pub alerts: Vec<Alert>,
    /// Ids of the alerts forgotten now: their last state was reported (now or before) and
    /// no later evaluation can change it.
    pub finished: Vec<String>,
}

/// The rows of `selected` (all `rows` of the batch when `None`) that `mask` keeps.
fn narrow_selection(
    selected: Option<UInt32Array>,
    mask: &BooleanArray,
    rows: usize,
    rule: &str,
) -> Result<UInt32Array> {
    let indices = match selected {
        Some(indices) => indices,
        None => {
            let Ok(n) = u32::try_from(rows) else {
                return Err(Error::shape(rule, "a batch of more than 4 billion rows"));
            };
            UInt32Array::from_iter_values(0..n)
        }
    };
    let kept = filter(&indices, mask).map_err(|e| Error::arrow(rule, "filtering", e))?;
    Ok(kept.as_primitive::<UInt32Type>().clone())
}

/// The largest `time` of a batch.
fn max_time(batch: &RecordBatch) -> Option<i64> {
    let col = batch.column_by_name("time")?;
    let ts = Table::Flows.schema().field(0).data_type().clone();
    let col =
        if col.data_type() == &ts { col.clone() } else { arrow::compute::cast(col, &ts).ok()? };
    arrow::compute::max(col.as_primitive::<TimestampMicrosecondType>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment() {
        assert_eq!(align_down(25, 10), 20);
        assert_eq!(align_down(-5, 10), -10);
        assert_eq!(align_up(25, 10), 30);
        assert_eq!(align_up(30, 10), 30);
    }
}
