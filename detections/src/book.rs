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
        self.uids.extend(c.uids);
        self.uids.sort_unstable();
        self.uids.dedup();
        self.uids.truncate(MAX_EVIDENCE_UIDS);
        self.providers.extend(providers);
    }
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
    pub(crate) fn into_alerts(self, now: i64) -> Vec<Alert> {
        let mut states: Vec<(String, AlertState)> = self.alerts.into_iter().collect();
        states.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut memo = Memo::default();
        states.into_iter().map(|(id, s)| s.into_alert(id, now, &mut memo)).collect()
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
            parts.uids.extend(c.uids);
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
