//! The alert book: alert states built from the candidates of every evaluated window.
//!
//! Each evaluation of a rule over one window (streaming) or run (scheduled) yields candidates.
//! The book groups them into alerts by `alert_id` (rule, dedupe key, dedupe bucket of the
//! candidate's `first_seen`) and keeps each window's contribution separately: evaluating a
//! window again — a provisional evaluation of an open window, then its final one — replaces that
//! window's contribution, so nothing is counted twice and the final state depends only on the
//! final evaluation of each window (the same in streaming and backfill).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::alert::{
    Aggregate, Alert, Evidence, MAX_EVIDENCE_UIDS, MAX_SUMMARIES, MAX_WINDOWS, WindowEvidence,
    alert_id, provider_of, rfc3339,
};
use crate::candidate::Candidate;
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

#[derive(Debug)]
struct AlertState {
    rule: Arc<Rule>,
    key: Vec<Option<String>>,
    contributions: BTreeMap<i64, Contribution>,
}

/// Alert states of a set of rules. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct AlertBook {
    /// By alert id (hashed: tens of thousands of ids; sorted only when read).
    alerts: HashMap<String, AlertState>,
    /// (rule index, window) → the alerts it contributes to.
    windows: HashMap<(usize, i64), Vec<String>>,
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
                if let Some(state) = self.alerts.get_mut(&id) {
                    state.contributions.remove(&window);
                    if state.contributions.is_empty() {
                        self.alerts.remove(&id);
                    }
                }
            }
        }
        if candidates.is_empty() {
            return;
        }
        let period = i64::try_from(rule.dedupe_period.as_micros()).unwrap_or(i64::MAX).max(1);
        // Deterministic order: the entity and summary of a window come from its first candidate.
        let mut candidates = candidates;
        candidates.sort_by(|(a, _), (b, _)| {
            (a.first_seen, &a.entity, &a.summary).cmp(&(b.first_seen, &b.entity, &b.summary))
        });
        let mut grouped: HashMap<String, (Vec<Option<String>>, Contribution)> = HashMap::new();
        for (c, providers) in candidates {
            let bucket = c.first_seen.div_euclid(period);
            let id = alert_id(rule.id(), &c.key, bucket);
            match grouped.get_mut(&id) {
                Some((_, contribution)) => contribution.absorb(c, providers),
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
                    grouped.insert(id, (c.key, contribution));
                }
            }
        }
        let ids: Vec<String> = grouped.keys().cloned().collect();
        for (id, (key, contribution)) in grouped {
            let state = self.alerts.entry(id).or_insert_with(|| AlertState {
                rule: rule.clone(),
                key,
                contributions: BTreeMap::new(),
            });
            state.contributions.insert(window, contribution);
        }
        self.windows.insert((index, window), ids);
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

    /// The same as [`AlertBook::alerts`], consuming the book (its values move into the alerts
    /// instead of being copied).
    ///
    /// Tens of thousands of alerts are built on two threads (the end of an ingest waits for
    /// them), each half in id order.
    pub(crate) fn into_alerts(self, now: i64) -> Vec<Alert> {
        let mut states: Vec<(String, AlertState)> = self.alerts.into_iter().collect();
        states.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let build = |states: Vec<(String, AlertState)>| -> Vec<Alert> {
            let mut memo = Memo::default();
            states.into_iter().map(|(id, s)| s.into_alert(id, now, &mut memo)).collect()
        };
        if states.len() < PARALLEL_ALERTS {
            return build(states);
        }
        // The second half is taken by the helper thread, or here when none could be started.
        let second = std::sync::Mutex::new(Some(states.split_off(states.len() / 2)));
        let take = || second.lock().ok().and_then(|mut s| s.take()).unwrap_or_default();
        std::thread::scope(|scope| {
            let other = std::thread::Builder::new()
                .name("ztlake-alerts".into())
                .spawn_scoped(scope, || build(take()));
            let mut alerts = build(states);
            match other.map(|h| h.join()) {
                Ok(Ok(rest)) => alerts.extend(rest),
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => alerts.extend(build(take())),
            }
            alerts
        })
    }
}

impl AlertState {
    fn alert(&self, id: &str, now: i64) -> Alert {
        let rule = &self.rule;
        let mut first_seen = i64::MAX;
        let mut last_seen = i64::MIN;
        let mut uids: Vec<String> = Vec::new();
        let mut providers = BTreeSet::new();
        let mut entity = BTreeMap::new();
        let mut windows = Vec::new();
        for (i, (window, c)) in self.contributions.iter().enumerate() {
            if c.first_seen < first_seen {
                first_seen = c.first_seen;
                entity = c.entity.clone();
            }
            last_seen = last_seen.max(c.last_seen);
            uids.extend(c.uids.iter().cloned());
            providers.extend(c.providers.iter().cloned());
            if i < MAX_WINDOWS {
                let summary = if i < MAX_SUMMARIES { c.summary.clone() } else { String::new() };
                windows.push(WindowEvidence { start: rfc3339(*window), count: c.count, summary });
            }
        }
        let counts: Vec<i64> = self.contributions.values().map(|c| c.count).collect();
        let parts = Parts { entity, first_seen, last_seen, uids, providers, windows, counts };
        parts.alert(rule, id.to_owned(), self.key.clone(), now, rule.alert_tags())
    }

    /// [`AlertState::alert`], moving this state's values into the alert (`memo` keeps what
    /// many alerts share).
    fn into_alert(self, id: String, now: i64, memo: &mut Memo) -> Alert {
        let mut parts = Parts {
            entity: BTreeMap::new(),
            first_seen: i64::MAX,
            last_seen: i64::MIN,
            uids: Vec::new(),
            providers: BTreeSet::new(),
            windows: Vec::new(),
            counts: Vec::with_capacity(self.contributions.len()),
        };
        for (i, (window, c)) in self.contributions.into_iter().enumerate() {
            if c.first_seen < parts.first_seen {
                parts.first_seen = c.first_seen;
                parts.entity = c.entity;
            }
            parts.last_seen = parts.last_seen.max(c.last_seen);
            merge_uids(&mut parts.uids, c.uids);
            parts.providers.extend(c.providers);
            parts.counts.push(c.count);
            if i < MAX_WINDOWS {
                let summary = if i < MAX_SUMMARIES { c.summary } else { String::new() };
                parts.windows.push(WindowEvidence {
                    start: memo.starts.entry(window).or_insert_with(|| rfc3339(window)).clone(),
                    count: c.count,
                    summary,
                });
            }
        }
        let tags = memo
            .tags
            .entry(Arc::as_ptr(&self.rule) as usize)
            .or_insert_with(|| self.rule.alert_tags())
            .clone();
        parts.alert(&self.rule, id, self.key, now, tags)
    }
}

/// Fewer alerts than this are built on one thread.
const PARALLEL_ALERTS: usize = 4096;

/// What the alerts of one book share: window start texts and each rule's tags.
#[derive(Default)]
struct Memo {
    starts: HashMap<i64, String>,
    /// By the rule's address: no rule is allocated while a book turns into alerts, so an
    /// address names one rule.
    tags: HashMap<usize, Vec<String>>,
}

/// What an alert gathers from its windows' contributions.
struct Parts {
    entity: BTreeMap<String, Option<String>>,
    first_seen: i64,
    last_seen: i64,
    uids: Vec<String>,
    providers: BTreeSet<String>,
    windows: Vec<WindowEvidence>,
    /// Every window's count.
    counts: Vec<i64>,
}

impl Parts {
    fn alert(
        self,
        rule: &Rule,
        id: String,
        key: Vec<Option<String>>,
        now: i64,
        tags: Vec<String>,
    ) -> Alert {
        let mut uids = self.uids;
        uids.sort_unstable();
        uids.dedup();
        uids.truncate(MAX_EVIDENCE_UIDS);
        let aggregate = match rule.mode() {
            Mode::Streaming => Aggregate::Sum,
            Mode::Scheduled => Aggregate::Max,
        };
        let counts = self.counts.iter().copied();
        let count = match aggregate {
            Aggregate::Sum => counts.sum(),
            Aggregate::Max => counts.max().unwrap_or(0),
        };
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
            evidence_uids: uids,
            evidence: Evidence { aggregate, windows: self.windows },
            tags,
            updated: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::loader::{LoadOptions, load_sources};

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

    /// Many alerts of several windows each: the consumed book (built on two threads, uids
    /// merged window by window) equals the borrowed one (every window's uids sorted together).
    #[tokio::test]
    async fn consumed_and_borrowed_books_give_the_same_alerts() {
        let yaml = "id: r\ntitle: T\nseverity: low\ntable: flows\nmode: streaming\nwindow: 10m\nsql: |\n  SELECT dst_ip, count(*) AS count, min(time) AS first_seen, max(time) AS last_seen, array_agg(event_uid) AS event_uids\n  FROM flows GROUP BY dst_ip\nentity: [dst_ip]\ndedupe: {key: [dst_ip], period: 24h}\nrunbook: rb\ntests:\n  - name: p\n    input: [{format: aws-vpcflow, data: x}]\n    expect: {count: 1}\n  - name: n\n    input: [{format: aws-vpcflow, data: x}]\n    expect: {count: 0}\n";
        let set =
            load_sources(&[(PathBuf::from("r.yaml"), yaml.to_owned())], &LoadOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        let rule = set.streaming().first().cloned().expect("one streaming rule");
        let minute = 60_000_000i64;
        let mut book = AlertBook::default();
        for window in 0..4i64 {
            let candidates = (0..PARALLEL_ALERTS + 500)
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
            book.apply(0, &rule, window * 10 * minute, candidates);
        }
        let borrowed = book.alerts(7);
        assert_eq!(borrowed.len(), PARALLEL_ALERTS + 500);
        assert!(borrowed.windows(2).all(|w| w[0].alert_id < w[1].alert_id), "sorted by id");
        assert!(borrowed.iter().all(|a| a.evidence_uids.len() == MAX_EVIDENCE_UIDS));
        assert!(borrowed.iter().all(|a| a.evidence.windows.len() == 4), "four windows each");
        assert_eq!(book.into_alerts(7), borrowed);
    }
}
