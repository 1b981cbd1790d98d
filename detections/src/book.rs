//! The alert book: alert states built from the candidates of every evaluated window.
//!
//! Each evaluation of a rule over one window (streaming) or run (scheduled) yields candidates.
//! The book groups them into alerts by `alert_id` (rule, dedupe key, dedupe bucket of the
//! candidate's `first_seen`) and keeps each window's contribution separately: evaluating a
//! window again — a provisional evaluation of an open window, then its final one — replaces that
//! window's contribution, so nothing is counted twice and the final state depends only on the
//! final evaluation of each window (the same in streaming and backfill).
//!
//! One-shot runs (`ingest --detect`, backfill) evaluate each window once, finally: there the
//! book folds each window into its alerts as it comes ([`AlertBook::fold`]) instead of keeping
//! a contribution per window, with the same result.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::alert::{
    Aggregate, Alert, AlertRow, AlertRows, Evidence, EvidenceJson, MAX_EVIDENCE_UIDS,
    MAX_SUMMARIES, MAX_WINDOWS, WindowEvidence, WindowJson, alert_id, provider_of, rfc3339,
};
use crate::candidate::Candidate;
use crate::error::Result;
use crate::rule::{Mode, Rule};

/// One window's contribution to an alert.
#[derive(Debug, Clone)]
struct Contribution {
    entity: BTreeMap<String, Option<String>>,
    first_seen: i64,
    last_seen: i64,
    count: i64,
    uids: Vec<String>,
    providers: BTreeSet<String>,
    summary: String,
}

impl Contribution {
    fn absorb(&mut self, c: Candidate, providers: BTreeSet<String>) {
        self.first_seen = self.first_seen.min(c.first_seen);
        self.last_seen = self.last_seen.max(c.last_seen);
        self.count += c.count;
        let mut uids = c.uids;
        uids.sort_unstable();
        uids.dedup();
        merge_uids(&mut self.uids, uids);
        self.providers.extend(providers);
    }
}

/// Merge the sorted, distinct `more` into the sorted, distinct `into`, keeping the
/// [`MAX_EVIDENCE_UIDS`] smallest: what sorting both together, dropping repeats and truncating
/// would keep, without sorting the union (an alert of many windows has many such lists).
fn merge_uids(into: &mut Vec<String>, more: Vec<String>) {
    if more.is_empty() {
        return;
    }
    if into.is_empty() {
        *into = more;
        into.truncate(MAX_EVIDENCE_UIDS);
        return;
    }
    let mut merged = Vec::with_capacity((into.len() + more.len()).min(MAX_EVIDENCE_UIDS));
    let mut a = std::mem::take(into).into_iter().peekable();
    let mut b = more.into_iter().peekable();
    while merged.len() < MAX_EVIDENCE_UIDS {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match x.cmp(y) {
                std::cmp::Ordering::Less => a.next(),
                std::cmp::Ordering::Greater => b.next(),
                std::cmp::Ordering::Equal => {
                    b.next();
                    a.next()
                }
            },
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => None,
        };
        match next {
            Some(uid) => merged.push(uid),
            None => break,
        }
    }
    *into = merged;
}

/// One alert's part of a window: its dedupe key, the end of its dedupe bucket (µs) and the
/// window's contribution.
type Grouped = (Vec<Option<String>>, i64, Contribution);

/// One window's candidates grouped by alert id (rule, dedupe key, dedupe bucket of the
/// candidate's `first_seen`): each id's dedupe key, bucket end and contribution.
fn group(
    rule: &Rule,
    mut candidates: Vec<(Candidate, BTreeSet<String>)>,
) -> HashMap<String, Grouped> {
    let period = i64::try_from(rule.dedupe_period.as_micros()).unwrap_or(i64::MAX).max(1);
    // Deterministic order: the entity and summary of a window come from its first candidate.
    candidates.sort_by(|(a, _), (b, _)| {
        (a.first_seen, &a.entity, &a.summary).cmp(&(b.first_seen, &b.entity, &b.summary))
    });
    let mut grouped: HashMap<String, Grouped> = HashMap::new();
    for (c, providers) in candidates {
        let bucket = c.first_seen.div_euclid(period);
        let id = alert_id(rule.id(), &c.key, bucket);
        match grouped.get_mut(&id) {
            Some((_, _, contribution)) => contribution.absorb(c, providers),
            None => {
                let mut uids = c.uids;
                uids.sort_unstable();
                uids.dedup();
                uids.truncate(MAX_EVIDENCE_UIDS);
                let contribution = Contribution {
                    entity: c.entity,
                    first_seen: c.first_seen,
                    last_seen: c.last_seen,
                    count: c.count,
                    uids,
                    providers,
                    summary: c.summary,
                };
                let until = bucket.saturating_add(1).saturating_mul(period);
                grouped.insert(id, (c.key, until, contribution));
            }
        }
    }
    grouped
}

#[derive(Debug)]
struct AlertState {
    rule: Arc<Rule>,
    key: Vec<Option<String>>,
    /// The end of its dedupe bucket (µs): only windows starting before it can contribute.
    until: i64,
    contributions: BTreeMap<i64, Contribution>,
    /// Windows added by [`AlertBook::fold`] (one-shot runs).
    folded: Option<Box<Folded>>,
}

/// The contributions of an alert's windows folded into one, in any order: what its alert is
/// made from. [`AlertBook::fold`] keeps it up to date as windows arrive, so the end of a
/// one-shot run only converts; kept contributions are folded when the alert is read. A folded
/// window can never be replaced.
#[derive(Debug, Clone)]
struct Folded {
    entity: BTreeMap<String, Option<String>>,
    /// (`first_seen`, window) of the contribution `entity` comes from: the earliest event,
    /// the earliest window on a tie.
    entity_from: (i64, i64),
    first_seen: i64,
    last_seen: i64,
    /// Sorted, distinct, at most [`MAX_EVIDENCE_UIDS`].
    uids: Vec<String>,
    providers: BTreeSet<String>,
    /// The earliest [`MAX_WINDOWS`] windows by start: (start, count, summary — empty from
    /// the [`MAX_SUMMARIES`]th window on).
    windows: Vec<(i64, i64, String)>,
    /// Every window's count.
    counts: Vec<i64>,
}

impl Folded {
    fn new() -> Folded {
        Folded {
            entity: BTreeMap::new(),
            entity_from: (i64::MAX, i64::MAX),
            first_seen: i64::MAX,
            last_seen: i64::MIN,
            uids: Vec::new(),
            providers: BTreeSet::new(),
            windows: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// Fold in `window`'s contribution.
    fn add(&mut self, window: i64, c: Contribution) {
        if (c.first_seen, window) < self.entity_from {
            self.entity = c.entity;
            self.entity_from = (c.first_seen, window);
        }
        self.first_seen = self.first_seen.min(c.first_seen);
        self.last_seen = self.last_seen.max(c.last_seen);
        merge_uids(&mut self.uids, c.uids);
        self.providers.extend(c.providers);
        self.counts.push(c.count);
        let at = self.windows.partition_point(|w| w.0 < window);
        if at < MAX_WINDOWS {
            let summary = if at < MAX_SUMMARIES { c.summary } else { String::new() };
            self.windows.insert(at, (window, c.count, summary));
            // The window pushed past the summarized ones loses its summary.
            if at < MAX_SUMMARIES
                && let Some(w) = self.windows.get_mut(MAX_SUMMARIES)
            {
                w.2 = String::new();
            }
            self.windows.truncate(MAX_WINDOWS);
        }
    }

    /// The alert's count: its windows' counts aggregated.
    fn count(&self, aggregate: Aggregate) -> i64 {
        let counts = self.counts.iter().copied();
        match aggregate {
            Aggregate::Sum => counts.sum(),
            Aggregate::Max => counts.max().unwrap_or(0),
        }
    }

    /// The alert of rule `rule` with these windows (window starts as text, shared through
    /// `memo`).
    fn into_alert(
        self,
        rule: &Rule,
        id: String,
        key: Vec<Option<String>>,
        now: i64,
        tags: Vec<String>,
        memo: &mut Memo,
    ) -> Alert {
        let aggregate = aggregate_of(rule);
        let count = self.count(aggregate);
        let windows = self
            .windows
            .into_iter()
            .map(|(start, count, summary)| WindowEvidence {
                start: memo.start(start).clone(),
                count,
                summary,
            })
            .collect();
        Alert {
            alert_id: id,
            rule_id: rule.id().to_owned(),
            title: rule.spec.title.clone(),
            severity: rule.spec.severity,
            provider: provider_of(&self.providers),
            entity: self.entity,
            dedupe_key: key,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            count,
            runbook: rule.spec.runbook.clone(),
            evidence_uids: self.uids,
            evidence: Evidence { aggregate, windows },
            tags,
            updated: now,
        }
    }
}

/// How the count of an alert of `rule` follows from its windows.
fn aggregate_of(rule: &Rule) -> Aggregate {
    match rule.mode() {
        Mode::Streaming => Aggregate::Sum,
        Mode::Scheduled => Aggregate::Max,
    }
}

/// Alert states of a set of rules. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct AlertBook {
    /// By alert id (hashed: tens of thousands of ids; sorted only when read).
    alerts: HashMap<String, AlertState>,
    /// (rule index, window) → the alerts it contributes to.
    windows: HashMap<(usize, i64), Vec<String>>,
    /// Ids of the alerts touched since [`AlertBook::changed_alerts`] last read them; `None`
    /// until it is first called (one-shot runs never track).
    changed: Option<HashSet<String>>,
}

impl AlertBook {
    /// Replace the contribution of window `window` of rule `index` with `candidates`
    /// (`providers` gives the providers of each candidate's uids).
    pub(crate) fn apply(
        &mut self,
        index: usize,
        rule: &Arc<Rule>,
        window: i64,
        candidates: Vec<(Candidate, BTreeSet<String>)>,
    ) {
        if let Some(ids) = self.windows.remove(&(index, window)) {
            for id in ids {
                if let Some(changed) = &mut self.changed {
                    changed.insert(id.clone());
                }
                if let Some(state) = self.alerts.get_mut(&id) {
                    state.contributions.remove(&window);
                    if state.contributions.is_empty() && state.folded.is_none() {
                        self.alerts.remove(&id);
                    }
                }
            }
        }
        if candidates.is_empty() {
            return;
        }
        let grouped = group(rule, candidates);
        let ids: Vec<String> = grouped.keys().cloned().collect();
        for (id, (key, until, contribution)) in grouped {
            self.touch(id, rule, key, until).contributions.insert(window, contribution);
        }
        self.windows.insert((index, window), ids);
    }

    /// The state of alert `id` (created for `rule`, `key` and bucket end `until` if new),
    /// remembered as changed.
    fn touch(
        &mut self,
        id: String,
        rule: &Arc<Rule>,
        key: Vec<Option<String>>,
        until: i64,
    ) -> &mut AlertState {
        if let Some(changed) = &mut self.changed {
            changed.insert(id.clone());
        }
        self.alerts.entry(id).or_insert_with(|| AlertState {
            rule: rule.clone(),
            key,
            until,
            contributions: BTreeMap::new(),
            folded: None,
        })
    }

    /// Add the final evaluation of window `window` of `rule`: like [`AlertBook::apply`], but
    /// the window can never be replaced, and each alert keeps one folded state instead of a
    /// contribution per window (a one-shot run of many windows then ends by converting its
    /// alerts, not by merging and freeing every window's contribution).
    pub(crate) fn fold(
        &mut self,
        rule: &Arc<Rule>,
        window: i64,
        candidates: Vec<(Candidate, BTreeSet<String>)>,
    ) {
        for (id, (key, until, contribution)) in group(rule, candidates) {
            let state = self.touch(id, rule, key, until);
            let folded = state.folded.get_or_insert_with(|| Box::new(Folded::new()));
            // Contributions of earlier windows join the fold; one of this window would be
            // replaced by its final evaluation (never the case in a one-shot run).
            for (w, c) in std::mem::take(&mut state.contributions) {
                if w != window {
                    folded.add(w, c);
                }
            }
            folded.add(window, contribution);
        }
    }

    /// Number of alerts.
    pub(crate) fn len(&self) -> usize {
        self.alerts.len()
    }

    /// Every alert's current state, by id, stamped `updated = now`.
    pub(crate) fn alerts(&self, now: i64) -> Vec<Alert> {
        let mut states: Vec<(&String, &AlertState)> = self.alerts.iter().collect();
        states.sort_unstable_by(|a, b| a.0.cmp(b.0));
        states.into_iter().map(|(id, s)| s.alert(id, now)).collect()
    }

    /// The current state of every alert touched since the previous call (of every alert on the
    /// first call), by id, stamped `updated = now`. A touched alert may be unchanged (a window
    /// evaluated again to the same result) or gone (its only window no longer matches): gone
    /// ones are left out. From the first call on, the book remembers what it touches.
    pub(crate) fn changed_alerts(&mut self, now: i64) -> Vec<Alert> {
        let Some(changed) = self.changed.replace(HashSet::new()) else {
            return self.alerts(now);
        };
        let mut ids: Vec<String> = changed.into_iter().collect();
        ids.sort_unstable();
        ids.iter().filter_map(|id| Some(self.alerts.get(id)?.alert(id, now))).collect()
    }

    /// Forget the alerts that can no longer change, and what the book remembers of closed
    /// windows. `closed[i]` is rule `i`'s (its index in [`AlertBook::apply`]) first window
    /// still open: windows before it were evaluated for the last time, so an alert of that
    /// rule whose dedupe bucket ends by then has its final state (no open window holds an event
    /// of its bucket). A long-running engine calls it after reading the changes
    /// ([`AlertBook::changed_alerts`]), so the final state was reported; without it the book
    /// would grow with every alert ever raised. Returns the forgotten ids.
    pub(crate) fn forget_final(&mut self, closed: &[(&Arc<Rule>, i64)]) -> Vec<String> {
        let closed_of =
            |rule: &Arc<Rule>| closed.iter().find(|(r, _)| Arc::ptr_eq(r, rule)).map(|(_, c)| *c);
        let mut gone = Vec::new();
        self.alerts.retain(|id, state| {
            let done = closed_of(&state.rule).is_some_and(|c| state.until <= c);
            if done {
                gone.push(id.clone());
            }
            !done
        });
        self.windows
            .retain(|(index, window), _| closed.get(*index).is_none_or(|(_, c)| *window >= *c));
        if let Some(changed) = &mut self.changed {
            for id in &gone {
                changed.remove(id);
            }
        }
        gone
    }

    /// The same as [`AlertBook::alerts`], consuming the book (its values move into the alerts
    /// instead of being copied).
    ///
    /// One thread: the states' memory belongs to this thread's allocator arena, and a second
    /// thread freeing half of it spent more time waiting on that arena's lock than it saved.
    pub(crate) fn into_alerts(self, now: i64) -> Vec<Alert> {
        let mut states: Vec<(String, AlertState)> = self.alerts.into_iter().collect();
        states.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut memo = Memo::default();
        states.into_iter().map(|(id, s)| s.into_alert(id, now, &mut memo)).collect()
    }
}

impl AlertBook {
    /// The rows of [`AlertBook::into_alerts`] in the `alerts` table, made straight from the
    /// states: no [`Alert`] is built (and freed) on the way — what a one-shot run writes to
    /// the lake. Tens of thousands of alerts are made into two batches on two threads (the
    /// halves in `alert_id` order); the states' memory is freed on another thread.
    pub(crate) fn into_rows(self, now: i64) -> Result<(Vec<RecordBatch>, Spent)> {
        let mut states: Vec<(String, AlertState)> = self.alerts.into_iter().collect();
        states.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if states.len() < PARALLEL_ROWS {
            let (rows, spent) = rows_of(states, now)?;
            return Ok((vec![rows], spent));
        }
        let second = std::sync::Mutex::new(Some(states.split_off(states.len() / 2)));
        let take = || second.lock().ok().and_then(|mut s| s.take()).unwrap_or_default();
        std::thread::scope(|scope| {
            let other = std::thread::Builder::new()
                .name("ztlake-alert-rows".into())
                .spawn_scoped(scope, || rows_of(take(), now));
            let (first, mut spent) = rows_of(states, now)?;
            let (rest, more) = match other.map(|h| h.join()) {
                Ok(Ok(rest)) => rest?,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                // No thread to be had: the second half here.
                Err(_) => rows_of(take(), now)?,
            };
            spent.0.extend(more.0);
            Ok((vec![first, rest], spent))
        })
    }
}

/// What the alert states left behind once made into rows ([`crate::Engine::into_alert_rows`]):
/// tens of thousands of small allocations, whose freeing would compete with writing the rows.
/// Dropped, they are freed there and then; [`Spent::free_later`] frees them on a thread of
/// their own.
#[derive(Debug, Default)]
pub struct Spent(Vec<(String, Vec<Option<String>>, Folded)>);

impl Spent {
    /// Free them on another thread (here if no thread can be started).
    pub fn free_later(self) {
        let _ = std::thread::Builder::new().name("ztlake-free".into()).spawn(move || drop(self));
    }
}

/// Fewer alerts than this are made into rows on one thread.
const PARALLEL_ROWS: usize = 4096;

/// The rows of `states` (see [`AlertBook::into_rows`]).
fn rows_of(states: Vec<(String, AlertState)>, now: i64) -> Result<(RecordBatch, Spent)> {
    let mut rows = AlertRows::with_capacity(states.len());
    let mut memo = Memo::default();
    let mut spent = Vec::with_capacity(states.len());
    for (id, state) in states {
        let (rule, key, folded) = state.into_folded();
        for &(start, _, _) in &folded.windows {
            memo.start(start);
        }
        let tags = memo.tags.of(&rule);
        let windows = folded
            .windows
            .iter()
            .map(|(start, count, summary)| WindowJson {
                start: memo.starts.get(start).map_or("", String::as_str),
                count: *count,
                summary,
            })
            .collect();
        let aggregate = aggregate_of(&rule);
        let provider = provider_of(&folded.providers);
        rows.push(&AlertRow {
            alert_id: &id,
            rule_id: rule.id(),
            title: &rule.spec.title,
            severity: rule.spec.severity,
            provider: &provider,
            entity: &folded.entity,
            dedupe_key: &key,
            first_seen: folded.first_seen,
            last_seen: folded.last_seen,
            count: folded.count(aggregate),
            runbook: &rule.spec.runbook,
            evidence_uids: &folded.uids,
            evidence: EvidenceJson { aggregate, windows },
            tags,
            updated: now,
        });
        spent.push((id, key, folded));
    }
    Ok((rows.finish()?, Spent(spent)))
}

impl AlertState {
    fn alert(&self, id: &str, now: i64) -> Alert {
        let mut folded = self.folded.as_deref().cloned().unwrap_or_else(Folded::new);
        for (w, c) in &self.contributions {
            folded.add(*w, c.clone());
        }
        let (rule, tags) = (&self.rule, self.rule.alert_tags());
        folded.into_alert(rule, id.to_owned(), self.key.clone(), now, tags, &mut Memo::default())
    }

    /// [`AlertState::alert`], moving this state's values into the alert (`memo` keeps what
    /// many alerts share).
    fn into_alert(self, id: String, now: i64, memo: &mut Memo) -> Alert {
        let (rule, key, folded) = self.into_folded();
        let tags = memo.tags.of(&rule).clone();
        folded.into_alert(&rule, id, key, now, tags, memo)
    }

    /// Its rule, dedupe key and every window folded into one.
    fn into_folded(self) -> (Arc<Rule>, Vec<Option<String>>, Folded) {
        let mut folded = self.folded.map_or_else(Folded::new, |f| *f);
        for (w, c) in self.contributions {
            folded.add(w, c);
        }
        (self.rule, self.key, folded)
    }
}

/// What the alerts of one book share: window start texts and each rule's tags.
#[derive(Default)]
struct Memo {
    starts: HashMap<i64, String>,
    tags: RuleTags,
}

impl Memo {
    /// The text of window start `start`.
    fn start(&mut self, start: i64) -> &String {
        self.starts.entry(start).or_insert_with(|| rfc3339(start))
    }
}

/// Each rule's alert tags, by the rule's address: no rule is allocated while a book turns into
/// alerts, so an address names one rule.
#[derive(Default)]
struct RuleTags(HashMap<usize, Vec<String>>);

impl RuleTags {
    /// The alert tags of `rule`.
    fn of(&mut self, rule: &Arc<Rule>) -> &Vec<String> {
        self.0.entry(Arc::as_ptr(rule) as usize).or_insert_with(|| rule.alert_tags())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::loader::{LoadOptions, load_sources};

    /// A streaming rule with a 24 h dedupe period: one alert per destination over many windows.
    const RULE: &str = "id: r\ntitle: T\nseverity: low\ntable: flows\nmode: streaming\nwindow: 10m\nsql: |\n  SELECT dst_ip, count(*) AS count, min(time) AS first_seen, max(time) AS last_seen, array_agg(event_uid) AS event_uids\n  FROM flows GROUP BY dst_ip\nentity: [dst_ip]\ndedupe: {key: [dst_ip], period: 24h}\nrunbook: rb\ntests:\n  - name: p\n    input: [{format: aws-vpcflow, data: x}]\n    expect: {count: 1}\n  - name: n\n    input: [{format: aws-vpcflow, data: x}]\n    expect: {count: 0}\n";

    async fn rule() -> Arc<Rule> {
        let set =
            load_sources(&[(PathBuf::from("r.yaml"), RULE.to_owned())], &LoadOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        set.streaming().first().cloned().expect("one streaming rule")
    }

    fn uids(numbers: impl IntoIterator<Item = usize>) -> Vec<String> {
        let mut v: Vec<String> = numbers.into_iter().map(|n| format!("uid-{n:05}")).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn merged_uids_are_the_smallest_distinct_of_both() {
        let cases: [(Vec<usize>, Vec<usize>); 5] = [
            ((0..150).step_by(3).collect(), (0..150).step_by(2).collect()),
            ((200..300).collect(), (0..40).collect()),
            (vec![], (0..120).collect()),
            ((0..5).collect(), vec![]),
            ((10..20).collect(), (10..20).collect()),
        ];
        for (a, b) in cases {
            let mut expected: Vec<String> = uids(a.iter().copied());
            expected.extend(uids(b.iter().copied()));
            expected.sort_unstable();
            expected.dedup();
            expected.truncate(MAX_EVIDENCE_UIDS);
            let mut into = uids(a.iter().copied());
            into.truncate(MAX_EVIDENCE_UIDS);
            let mut more = uids(b.iter().copied());
            more.truncate(MAX_EVIDENCE_UIDS);
            merge_uids(&mut into, more);
            assert_eq!(into, expected, "{a:?} + {b:?}");
        }
    }

    /// Many alerts of several windows each: the consumed book equals the borrowed one, sorted
    /// by id, each alert with its four windows and the capped, smallest evidence uids.
    #[tokio::test]
    async fn consumed_and_borrowed_books_give_the_same_alerts() {
        let rule = rule().await;
        let minute = 60_000_000i64;
        let (mut book, mut rows_book) = (AlertBook::default(), AlertBook::default());
        for window in 0..4i64 {
            let candidates: Vec<_> = (0..4596)
                .map(|host| {
                    let dst = format!("10.0.{}.{}", host / 250, host % 250);
                    let first_seen = window * 10 * minute + i64::try_from(host % 7).unwrap_or(0);
                    // Overlapping uid ranges across windows, some beyond the cap.
                    let start = host + usize::try_from(window).unwrap_or(0) * 40;
                    let c = Candidate {
                        entity: BTreeMap::from([("dst_ip".to_owned(), Some(dst.clone()))]),
                        key: vec![Some(dst)],
                        first_seen,
                        last_seen: first_seen + 1,
                        count: 3,
                        uids: uids(start..start + 90),
                        summary: format!("w={window}"),
                    };
                    (c, BTreeSet::from(["aws".to_owned()]))
                })
                .collect();
            rows_book.apply(0, &rule, window * 10 * minute, candidates.clone());
            book.apply(0, &rule, window * 10 * minute, candidates);
        }
        let borrowed = book.alerts(7);
        // More alerts than one thread makes rows of: two batches, in id order.
        let (rows, _) = rows_book.into_rows(7).expect("rows");
        assert_eq!(rows.len(), 2, "two halves");
        let schema = rows[0].schema();
        let rows = arrow::compute::concat_batches(&schema, &rows).expect("concat");
        assert_eq!(rows, crate::alert::alerts_batch(&borrowed).expect("rows of the alerts"));
        assert_eq!(borrowed.len(), 4596);
        assert!(borrowed.windows(2).all(|w| w[0].alert_id < w[1].alert_id), "sorted by id");
        assert!(borrowed.iter().all(|a| a.evidence_uids.len() == MAX_EVIDENCE_UIDS));
        assert!(borrowed.iter().all(|a| a.evidence.windows.len() == 4), "four windows each");
        for a in &borrowed {
            // 10.0.x.y is host 250x + y; its windows' uids start at host, host + 40, … .
            let dst = a.entity["dst_ip"].as_deref().expect("dst_ip");
            let host = dst.split('.').skip(2).filter_map(|p| p.parse::<usize>().ok());
            let host = host.fold(0, |acc, p| acc * 250 + p);
            assert_eq!(a.evidence_uids, uids(host..host + MAX_EVIDENCE_UIDS), "{dst}");
        }
        assert_eq!(book.into_alerts(7), borrowed);
    }

    /// Folding windows as they come (here in a scrambled order) gives the alerts of keeping a
    /// contribution per window: entity of the earliest event, summaries of the first windows,
    /// uids, counts.
    #[tokio::test]
    async fn folded_windows_give_the_alerts_of_kept_contributions() {
        let rule = rule().await;
        let minute = 60_000_000i64;
        let windows = MAX_SUMMARIES as i64 + 6;
        let candidates = |window: i64| -> Vec<(Candidate, BTreeSet<String>)> {
            (0..30usize)
                .map(|host| {
                    let dst = format!("10.1.0.{host}");
                    // Ties of first_seen across windows: the earliest window's entity wins.
                    let first_seen =
                        5 * minute + i64::try_from(host % 3).unwrap_or(0) - (window % 4) * minute;
                    let start = host + usize::try_from(window).unwrap_or(0) * 7;
                    let c = Candidate {
                        entity: BTreeMap::from([
                            ("dst_ip".to_owned(), Some(dst.clone())),
                            ("w".to_owned(), Some(window.to_string())),
                            ("missing".to_owned(), None),
                        ]),
                        key: vec![Some(dst)],
                        first_seen,
                        last_seen: first_seen + window,
                        count: window + 1,
                        uids: uids(start..start + 60),
                        summary: format!("w={window}"),
                    };
                    let provider = if window % 5 == 0 { "gcp" } else { "aws" };
                    (c, BTreeSet::from([provider.to_owned()]))
                })
                .collect()
        };
        let (mut kept, mut kept_rows) = (AlertBook::default(), AlertBook::default());
        let (mut folded, mut folded_rows) = (AlertBook::default(), AlertBook::default());
        for window in 0..windows {
            kept.apply(0, &rule, window * 10 * minute, candidates(window));
            kept_rows.apply(0, &rule, window * 10 * minute, candidates(window));
        }
        let scrambled = (0..windows).map(|i| (i * 7) % windows);
        for window in scrambled {
            folded.fold(&rule, window * 10 * minute, candidates(window));
            folded_rows.fold(&rule, window * 10 * minute, candidates(window));
        }
        let expected = kept.into_alerts(9);
        assert_eq!(expected.len(), 30);
        assert!(
            expected
                .iter()
                .all(|a| a.evidence.windows.len() == usize::try_from(windows).unwrap_or(0))
        );
        assert_eq!(folded.alerts(9), expected, "borrowed");
        assert_eq!(folded.into_alerts(9), expected, "consumed");
        // The rows made straight from either book are the rows of their alerts.
        let rows = crate::alert::alerts_batch(&expected).expect("rows of the alerts");
        assert!(expected.iter().any(|a| a.provider == "multi") && rows.num_rows() == 30);
        assert_eq!(
            kept_rows.into_rows(9).expect("rows of kept windows").0,
            std::slice::from_ref(&rows)
        );
        assert_eq!(
            folded_rows.into_rows(9).expect("rows of folded").0,
            std::slice::from_ref(&rows)
        );
        assert_eq!(
            crate::alert::alerts_from_batch(&rows).expect("read back"),
            expected,
            "the rows read back as the alerts"
        );
    }

    /// A polled book reports what its windows touched since the last poll: every alert first,
    /// then only the alerts of windows evaluated again, with their current state; an alert whose
    /// only window stopped matching is not reported. Applying every poll's states in order
    /// reproduces the book's alerts.
    #[tokio::test]
    async fn changed_alerts_are_what_windows_touched_since_the_last_poll() {
        let rule = rule().await;
        let minute = 60_000_000i64;
        let candidates = |hosts: std::ops::Range<usize>, window: i64, count: i64| {
            hosts
                .map(|host| {
                    let dst = format!("10.2.0.{host}");
                    let c = Candidate {
                        entity: BTreeMap::from([("dst_ip".to_owned(), Some(dst.clone()))]),
                        key: vec![Some(dst)],
                        first_seen: window + 1,
                        last_seen: window + 2,
                        count,
                        uids: uids([host]),
                        summary: String::new(),
                    };
                    (c, BTreeSet::from(["aws".to_owned()]))
                })
                .collect::<Vec<_>>()
        };
        let dst = |a: &Alert| a.entity["dst_ip"].clone().unwrap_or_default();
        let mut book = AlertBook::default();
        let mut seen: HashMap<String, Alert> = HashMap::new();
        let mut poll = |book: &mut AlertBook, now: i64| {
            let changed = book.changed_alerts(now);
            assert!(changed.windows(2).all(|w| w[0].alert_id < w[1].alert_id), "sorted by id");
            for a in &changed {
                seen.insert(a.alert_id.clone(), a.clone());
            }
            changed
        };
        book.apply(0, &rule, 0, candidates(0..40, 0, 1));
        assert_eq!(poll(&mut book, 1).len(), 40, "the first poll reports every alert");
        assert!(poll(&mut book, 2).is_empty(), "nothing touched");
        // Window 0 again: hosts 0..10 now count 5, hosts 30..40 no longer match; window 1
        // adds hosts 35..45 (45..50 new).
        book.apply(0, &rule, 0, candidates(0..30, 0, 1));
        book.apply(
            0,
            &rule,
            0,
            candidates(0..10, 0, 5).into_iter().chain(candidates(10..30, 0, 1)).collect(),
        );
        book.apply(0, &rule, 10 * minute, candidates(35..50, 10 * minute, 2));
        let changed = poll(&mut book, 3);
        let mut hosts: Vec<String> = changed.iter().map(dst).collect();
        hosts.sort_unstable();
        let mut expected: Vec<String> =
            (0..30).chain(35..50).map(|h| format!("10.2.0.{h}")).collect();
        expected.sort_unstable();
        assert_eq!(hosts, expected, "touched and still present (30..35 are gone)");
        assert!(changed.iter().all(|a| a.updated == 3));
        let five = changed.iter().filter(|a| a.count == 5).count();
        assert_eq!(five, 10, "hosts 0..10 report their new count");
        // 30..35 stopped matching and are gone from the book; what the polls reported for the
        // rest equals the book.
        let mut current = book.alerts(3);
        current.sort_unstable_by(|a, b| a.alert_id.cmp(&b.alert_id));
        for a in &current {
            assert_eq!(seen.get(&a.alert_id), Some(a), "{}", dst(a));
        }
        assert_eq!(current.len(), 45);
    }

    /// Forgetting final alerts drops exactly the alerts whose dedupe bucket ended by the
    /// rule's first open window, and the window index of closed windows.
    #[tokio::test]
    async fn final_alerts_are_forgotten_by_bucket() {
        let rule = rule().await;
        let (hour, day) = (3_600_000_000i64, 86_400_000_000i64);
        let candidate = |dst: &str, at: i64| {
            let c = Candidate {
                entity: BTreeMap::from([("dst_ip".to_owned(), Some(dst.to_owned()))]),
                key: vec![Some(dst.to_owned())],
                first_seen: at,
                last_seen: at + 1,
                count: 1,
                uids: uids([1]),
                summary: String::new(),
            };
            (c, BTreeSet::from(["aws".to_owned()]))
        };
        let mut book = AlertBook::default();
        // Day 0 (two windows), then day 1: three alerts of day 0's bucket, one of day 1's.
        book.apply(0, &rule, 0, vec![candidate("a", 5), candidate("b", 6)]);
        book.apply(
            0,
            &rule,
            23 * hour,
            vec![candidate("a", 23 * hour + 5), candidate("c", 23 * hour)],
        );
        book.apply(0, &rule, day, vec![candidate("a", day + 5)]);
        assert_eq!(book.changed_alerts(1).len(), 4);
        // Windows before 23 h closed: day 0's bucket can still grow (the 23 h window is open).
        assert!(book.forget_final(&[(&rule, 23 * hour)]).is_empty());
        assert_eq!(book.windows.len(), 2, "the closed 0 h window is forgotten");
        let gone = book.forget_final(&[(&rule, day)]);
        assert_eq!(gone.len(), 3, "{gone:?}");
        let left = book.alerts(1);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].first_seen, day + 5);
        assert!(book.changed_alerts(2).is_empty(), "forgotten alerts are not reported again");
        // Another rule's window positions do not count.
        let other = self::rule().await;
        assert!(book.forget_final(&[(&other, i64::MAX)]).is_empty());
        assert_eq!(book.len(), 1);
    }
}
