//! Which Kafka offsets may be committed: the contiguous durable prefix, per partition.
//!
//! [`OffsetTracker`] is pure bookkeeping (no client, no IO), shared by the consumer's poll thread
//! and its owner. Per partition it knows:
//!
//! - the **base**: every offset at or below it is already durable in the lake (the lake's
//!   `txn` version for the partition), or lies before this consumer's first message;
//! - the **spans handed out** to the owner, in order, each durable or not yet;
//! - the **last committed** Kafka offset.
//!
//! The durable prefix is the base extended over the leading spans that are durable. Offsets
//! missing from the handed-out sequence (compacted away, transaction markers) are no hole: only
//! a span handed out and not yet durable stops the prefix. The offset to commit is the end of the
//! prefix + 1 (Kafka's convention: the next offset to read).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether a message at `offset` is already in the lake, given its partition's
/// [`OffsetTracker::lake_floor`] (at or below the lake version found on assignment): it is
/// skipped.
pub(crate) fn held_by_lake(floor: Option<i64>, offset: i64) -> bool {
    floor.is_some_and(|version| offset <= version)
}

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl PartitionId {
    /// A partition of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }

    /// The source identity of this partition as read by consumer group `group`:
    /// `kafka:<group>/<topic>/<partition>`. It is the Delta `txn` appId of the partition and the
    /// seed of its rows' `event_uid`.
    pub fn source_key(&self, group: &str) -> String {
        format!("kafka:{group}/{}/{}", self.topic, self.partition)
    }

    /// The display name of the partition in the `source` column: `<topic>/<partition>` (followed
    /// by [`super::POSITION_SEPARATOR`] and the offset).
    pub fn source_name(&self) -> String {
        format!("{}/{}", self.topic, self.partition)
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// A run of offsets of one partition, `first..=last` (Kafka offsets need not be consecutive
/// inside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetSpan {
    /// First offset.
    pub first: i64,
    /// Last offset (inclusive).
    pub last: i64,
}

/// Offsets of one partition handed out together, with the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpan {
    /// The partition.
    pub partition: PartitionId,
    /// The offsets.
    pub span: OffsetSpan,
}

/// Misuse of the tracker: offsets handed out out of order, or for an unknown partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerError(pub String);

impl fmt::Display for TrackerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TrackerError {}

#[derive(Debug, Clone, Copy)]
struct Pending {
    span: OffsetSpan,
    durable: bool,
}

#[derive(Debug, Clone, Default)]
struct Partition {
    /// Nothing at or below this offset is handed out (again): the lake version, or the offset
    /// before the first message read; `None` until known.
    base: Option<i64>,
    /// The durable prefix ends here (inclusive): the lake version, then the end of the durable
    /// spans; `None` while nothing is known durable.
    durable: Option<i64>,
    /// What the lake held when the partition was assigned: offsets at or below are skipped.
    lake_version: Option<i64>,
    /// Spans handed out beyond the durable prefix, in order.
    pending: VecDeque<Pending>,
    /// Last offset handed out.
    last_handed: Option<i64>,
    /// Last committed Kafka offset (the next offset to read).
    committed: Option<i64>,
}

/// Per-partition offset bookkeeping; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct OffsetTracker {
    partitions: BTreeMap<PartitionId, Partition>,
    /// Bumped by every assignment and revocation (see [`OffsetTracker::changes`]).
    changes: Arc<AtomicU64>,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start tracking `partition` (on assignment). `lake_version` is the highest offset the lake
    /// already holds for it (its `txn` version), if any: those offsets are durable and skipped.
    /// Re-assigning a tracked partition starts it afresh.
    pub fn assign(&mut self, partition: PartitionId, lake_version: Option<i64>) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.partitions.insert(
            partition,
            Partition {
                base: lake_version,
                durable: lake_version,
                lake_version,
                ..Partition::default()
            },
        );
    }

    /// Stop tracking `partition` (on revocation); handed-out spans not yet durable are forgotten.
    pub fn revoke(&mut self, partition: &PartitionId) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.partitions.remove(partition);
    }

    /// A counter bumped by every [`OffsetTracker::assign`] and [`OffsetTracker::revoke`]
    /// (shared by clones): a [`OffsetTracker::lake_floor`] read while it had some value stays
    /// true until it changes, so a reader of many messages of one partition can skip the lock.
    pub fn changes(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.changes)
    }

    /// The highest offset of `partition` the lake held when it was assigned (messages at or
    /// below it are skipped); `None` when unknown or not assigned.
    pub fn lake_floor(&self, partition: &PartitionId) -> Option<i64> {
        self.partitions.get(partition).and_then(|p| p.lake_version)
    }

    /// Whether `partition` is tracked (assigned to this consumer).
    pub fn is_assigned(&self, partition: &PartitionId) -> bool {
        self.partitions.contains_key(partition)
    }

    /// The tracked partitions.
    pub fn partitions(&self) -> impl Iterator<Item = &PartitionId> {
        self.partitions.keys()
    }

    /// Record that `first..=last` of `partition` was handed to the owner.
    ///
    /// # Errors
    /// When the partition is not assigned, `first > last`, or the span does not lie after
    /// everything handed out or durable before it.
    pub fn hand_out(
        &mut self,
        partition: &PartitionId,
        first: i64,
        last: i64,
    ) -> Result<(), TrackerError> {
        let p = self
            .partitions
            .get_mut(partition)
            .ok_or_else(|| TrackerError(format!("{partition}: not assigned")))?;
        if first > last || first < 0 {
            return Err(TrackerError(format!("{partition}: bad span {first}..={last}")));
        }
        let floor = p.last_handed.max(p.base);
        if floor.is_some_and(|f| first <= f) {
            return Err(TrackerError(format!(
                "{partition}: span {first}..={last} does not follow offset {}",
                floor.unwrap_or_default()
            )));
        }
        // The first message read defines where this consumer's responsibility starts.
        if p.base.is_none() {
            p.base = Some(first - 1);
        }
        p.last_handed = Some(last);
        p.pending.push_back(Pending { span: OffsetSpan { first, last }, durable: false });
        Ok(())
    }

    /// Mark the handed-out offsets of `partition` within `first..=last` durable (their rows are
    /// committed to the lake); returns the new end of the durable prefix when it advanced. Offsets
    /// not handed out are ignored, as is an unknown partition (revoked meanwhile).
    pub fn mark_durable(&mut self, partition: &PartitionId, first: i64, last: i64) -> Option<i64> {
        let p = self.partitions.get_mut(partition)?;
        let mut split = VecDeque::with_capacity(p.pending.len() + 2);
        for pending in p.pending.drain(..) {
            let OffsetSpan { first: a, last: b } = pending.span;
            if pending.durable || b < first || a > last {
                split.push_back(pending);
                continue;
            }
            // The overlap becomes durable; parts outside it keep their state.
            if a < first {
                split.push_back(Pending {
                    span: OffsetSpan { first: a, last: first - 1 },
                    durable: false,
                });
            }
            let (lo, hi) = (a.max(first), b.min(last));
            split.push_back(Pending { span: OffsetSpan { first: lo, last: hi }, durable: true });
            if b > last {
                split.push_back(Pending {
                    span: OffsetSpan { first: last + 1, last: b },
                    durable: false,
                });
            }
        }
        p.pending = split;
        let before = p.durable;
        while let Some(front) = p.pending.front() {
            if !front.durable {
                break;
            }
            p.durable = Some(front.span.last);
            p.pending.pop_front();
        }
        (p.durable != before).then_some(p.durable).flatten()
    }

    /// Mark every handed-out offset of `partition` up to `last` durable.
    pub fn mark_durable_through(&mut self, partition: &PartitionId, last: i64) -> Option<i64> {
        self.mark_durable(partition, 0, last)
    }

    /// The end of the durable prefix of `partition` (inclusive), when known.
    pub fn durable_through(&self, partition: &PartitionId) -> Option<i64> {
        self.partitions.get(partition).and_then(|p| p.durable)
    }

    /// The Kafka offset to commit for `partition` (end of the durable prefix + 1), when it is
    /// beyond the last committed one.
    pub fn to_commit(&self, partition: &PartitionId) -> Option<i64> {
        let p = self.partitions.get(partition)?;
        let next = p.durable? + 1;
        (p.committed.is_none_or(|c| next > c)).then_some(next)
    }

    /// Every partition whose commit would advance, with its offset to commit.
    pub fn commits(&self) -> Vec<(PartitionId, i64)> {
        self.partitions
            .keys()
            .filter_map(|id| self.to_commit(id).map(|offset| (id.clone(), offset)))
            .collect()
    }

    /// Record that `offset` was committed for `partition`.
    pub fn committed(&mut self, partition: &PartitionId, offset: i64) {
        if let Some(p) = self.partitions.get_mut(partition) {
            p.committed = Some(p.committed.map_or(offset, |c| c.max(offset)));
        }
    }

    /// Offsets handed out and not yet durable, over all partitions (for metrics and shutdown).
    pub fn in_flight_spans(&self) -> usize {
        self.partitions.values().map(|p| p.pending.iter().filter(|s| !s.durable).count()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> PartitionId {
        PartitionId::new("flows", p)
    }

    #[test]
    fn identity_of_a_partition() {
        let id = tp(3);
        assert_eq!(id.source_key("ztlake"), "kafka:ztlake/flows/3");
        assert_eq!(id.source_name(), "flows/3");
        assert_eq!(id.to_string(), "flows/3");
    }

    #[test]
    fn in_order_durability_commits_last_plus_one() {
        let mut t = OffsetTracker::new();
        t.assign(tp(0), None);
        assert_eq!(t.to_commit(&tp(0)), None, "nothing known yet");
        t.hand_out(&tp(0), 0, 9).unwrap();
        assert_eq!(t.to_commit(&tp(0)), None, "handed out, not durable");
        assert_eq!(t.mark_durable(&tp(0), 0, 9), Some(9));
        assert_eq!(t.to_commit(&tp(0)), Some(10));
        t.committed(&tp(0), 10);
        assert_eq!(t.to_commit(&tp(0)), None, "already committed");
        assert!(t.commits().is_empty());
    }

    #[test]
    fn out_of_order_durability_waits_for_the_prefix() {
        let mut t = OffsetTracker::new();
        t.assign(tp(0), None);
        t.hand_out(&tp(0), 100, 109).unwrap();
        t.hand_out(&tp(0), 110, 119).unwrap();
        t.hand_out(&tp(0), 120, 129).unwrap();
        assert_eq!(t.mark_durable(&tp(0), 120, 129), None);
        assert_eq!(t.mark_durable(&tp(0), 110, 119), None);
        assert_eq!(t.to_commit(&tp(0)), None, "100..=109 still in flight");
        assert_eq!(t.in_flight_spans(), 1);
        assert_eq!(t.mark_durable(&tp(0), 100, 109), Some(129));
        assert_eq!(t.to_commit(&tp(0)), Some(130));
        assert_eq!(t.in_flight_spans(), 0);
    }

    #[test]
    fn offset_gaps_are_not_holes_but_undurable_spans_are() {
        let mut t = OffsetTracker::new();
        t.assign(tp(1), None);
        // 5..=9 were compacted away: never handed out, never waited for.
        t.hand_out(&tp(1), 0, 4).unwrap();
        t.hand_out(&tp(1), 10, 14).unwrap();
        t.hand_out(&tp(1), 20, 24).unwrap();
        // Durable: the first and third spans; the second is a hole in durability.
        t.mark_durable(&tp(1), 0, 4);
        t.mark_durable(&tp(1), 20, 24);
        assert_eq!(t.to_commit(&tp(1)), Some(5));
        // Part of a span durable: the prefix stops inside it.
        assert_eq!(t.mark_durable(&tp(1), 10, 12), Some(12));
        assert_eq!(t.to_commit(&tp(1)), Some(13));
        assert_eq!(t.mark_durable(&tp(1), 13, 13), Some(13));
        assert_eq!(t.mark_durable(&tp(1), 14, 19), Some(24));
        assert_eq!(t.to_commit(&tp(1)), Some(25));
    }

    #[test]
    fn lake_version_is_the_base_and_is_skipped() {
        let mut t = OffsetTracker::new();
        let changes = t.changes();
        t.assign(tp(0), Some(41));
        assert!(held_by_lake(t.lake_floor(&tp(0)), 41));
        assert!(!held_by_lake(t.lake_floor(&tp(0)), 42));
        assert_eq!((t.lake_floor(&tp(0)), t.lake_floor(&tp(1))), (Some(41), None));
        // A floor read stays true while the count stands; each (re)assignment or revocation
        // moves it.
        let seen = changes.load(Ordering::Acquire);
        t.assign(tp(1), None);
        assert_ne!(changes.load(Ordering::Acquire), seen, "assign counts");
        let seen = changes.load(Ordering::Acquire);
        t.revoke(&tp(1));
        assert_ne!(changes.load(Ordering::Acquire), seen, "revoke counts");
        // Kafka's committed offset may lag the lake: committing 42 catches it up.
        assert_eq!(t.to_commit(&tp(0)), Some(42));
        assert!(t.hand_out(&tp(0), 30, 45).is_err(), "span inside the lake");
        t.hand_out(&tp(0), 42, 50).unwrap();
        t.mark_durable_through(&tp(0), 50);
        assert_eq!(t.to_commit(&tp(0)), Some(51));
    }

    #[test]
    fn partitions_are_independent_and_revocation_forgets() {
        let mut t = OffsetTracker::new();
        t.assign(tp(0), None);
        t.assign(tp(1), None);
        t.hand_out(&tp(0), 0, 4).unwrap();
        t.hand_out(&tp(1), 7, 8).unwrap();
        t.mark_durable(&tp(1), 7, 8);
        assert_eq!(t.commits(), vec![(tp(1), 9)]);
        t.revoke(&tp(1));
        assert!(!t.is_assigned(&tp(1)));
        assert_eq!(t.mark_durable(&tp(1), 0, 100), None, "revoked: ignored");
        assert!(t.hand_out(&tp(1), 9, 9).is_err());
        assert!(t.hand_out(&tp(0), 3, 9).is_err(), "overlaps what was handed out");
        assert!(t.hand_out(&tp(0), 9, 8).is_err());
        assert_eq!(t.partitions().cloned().collect::<Vec<_>>(), vec![tp(0)]);
    }
}
