//! One share-partition (KIP-932): the state of a share group's records in one topic-partition,
//! which the partition leader keeps. Records from the share-partition start offset (SPSO) to
//! its end offset (SPEO) are in flight: available, acquired by one member until its lock
//! expires, acknowledged, or archived (rejected, or given up after the delivery-count limit).
//! Below the SPSO every record is done; at and past the SPEO none has been handed out yet.
//!
//! The rules, as Kafka 4.2 applies them:
//! - a fetch acquires available records first (released or expired ones, oldest first), then
//!   new ones from the SPEO, up to `max_records` and while at most `max_in_flight` records are
//!   in flight; each acquisition counts a delivery;
//! - an acknowledgement applies only to records the member holds: ACCEPT acknowledges,
//!   RELEASE makes them available again (archived at the delivery limit), REJECT archives; GAP
//!   marks offsets that hold no record (compacted away, transaction markers) as archived;
//!   RENEW keeps them acquired with a fresh lock and the same delivery count;
//! - an acquisition lock that expires makes the records available again (archived at the
//!   limit), and so does the member leaving the group;
//! - the SPSO moves past every leading record that is acknowledged or archived.
//!
//! Pure state (time is passed in), so the rules are tested without a broker; the share
//! coordinator persists its snapshots (`__share_group_state`), not this module.

use std::collections::BTreeMap;

/// Kafka's acknowledge types (`AcknowledgeType`), with 0 for a gap.
pub const GAP: i8 = 0;
pub const ACCEPT: i8 = 1;
pub const RELEASE: i8 = 2;
pub const REJECT: i8 = 3;
/// KIP-1222 (Kafka 4.2): the member keeps the records and their lock starts again; a terminal
/// acknowledgement still follows. Only ShareFetch and ShareAcknowledge v2 with `IsRenewAck`
/// may carry it (checked where the request is read).
pub const RENEW: i8 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordState {
    Available,
    Acquired { member: String, until_ms: i64 },
    Acknowledged,
    Archived,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct InFlight {
    state: RecordState,
    deliveries: u16,
}

/// Kafka's persisted record states (`RecordState` ids in `__share_group_state`).
pub const STATE_AVAILABLE: i8 = 0;
pub const STATE_ACKNOWLEDGED: i8 = 2;
pub const STATE_ARCHIVED: i8 = 4;

/// A run of in-flight records with one state and delivery count, as persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub state: i8,
    pub delivery_count: u16,
}

/// A run of acquired records handed to a member (ShareFetch's `AcquiredRecords`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquired {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: u16,
}

/// Why an acknowledgement is refused (Kafka's INVALID_RECORD_STATE, INVALID_REQUEST).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("offset {0} is not acquired by this member")]
    NotAcquired(i64),
    #[error("unknown acknowledge type {0}")]
    UnknownType(i8),
    #[error("acknowledgement batch {first}..={last} is not a valid range")]
    BadRange { first: i64, last: i64 },
}

/// The limits a share-partition applies (the group's configs).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `group.share.record.lock.duration.ms`.
    pub lock_ms: i64,
    /// `group.share.delivery.count.limit`.
    pub delivery_limit: u16,
    /// `group.share.partition.max.record.locks`.
    pub max_in_flight: usize,
}

#[derive(Clone, Debug)]
pub struct SharePartition {
    start: i64,
    end: i64,
    in_flight: BTreeMap<i64, InFlight>,
    limits: Limits,
}

impl SharePartition {
    /// A share-partition whose next record to deliver is `start` (from `share.auto.offset.reset`
    /// or the persisted state).
    pub fn new(start: i64, limits: Limits) -> SharePartition {
        assert!(start >= 0, "share-partition start offset {start}");
        SharePartition { start, end: start, in_flight: BTreeMap::new(), limits }
    }

    pub fn start_offset(&self) -> i64 {
        self.start
    }

    pub fn end_offset(&self) -> i64 {
        self.end
    }

    /// The state of `offset` (`None` outside the in-flight window).
    pub fn state(&self, offset: i64) -> Option<&RecordState> {
        self.in_flight.get(&offset).map(|r| &r.state)
    }

    /// Records `member` holds now.
    pub fn acquired_by(&self, member: &str) -> usize {
        self.in_flight
            .values()
            .filter(|r| matches!(&r.state, RecordState::Acquired { member: m, .. } if m == member))
            .count()
    }

    /// Where a fetch reads from: the oldest record available again, else the SPEO (run
    /// `expire` first, so that records whose locks ran out count as available).
    pub fn next_fetch_offset(&self) -> i64 {
        self.in_flight
            .iter()
            .find(|(_, r)| r.state == RecordState::Available)
            .map_or(self.end, |(offset, _)| *offset)
    }

    /// Whether a fetch below `readable_end` could acquire anything now.
    pub fn can_acquire(&self, readable_end: i64, now_ms: i64) -> bool {
        let expired =
            |r: &InFlight| matches!(r.state, RecordState::Acquired { until_ms, .. } if until_ms <= now_ms);
        self.in_flight
            .iter()
            .any(|(o, r)| *o < readable_end && (r.state == RecordState::Available || expired(r)))
            || (self.end < readable_end && self.in_flight.len() < self.limits.max_in_flight)
    }

    /// The earliest acquisition-lock deadline, if any record is acquired.
    pub fn next_lock_deadline(&self) -> Option<i64> {
        self.in_flight
            .values()
            .filter_map(|r| match r.state {
                RecordState::Acquired { until_ms, .. } => Some(until_ms),
                _ => None,
            })
            .min()
    }

    /// Acquires up to `max_records` for `member` among the offsets in `from..readable_end`:
    /// the records a fetch read (it read from `from`; `readable_end` is the high watermark, or
    /// the last stable offset under read_committed, capped by the end of what it read). A
    /// record outside is not handed out, as the member would get no data for it. New offsets
    /// inside `control` ranges (transaction markers, aborted transactions' records under
    /// read_committed: nothing for a consumer) are archived on the way, never handed out.
    pub fn acquire(
        &mut self,
        member: &str,
        max_records: usize,
        from: i64,
        readable_end: i64,
        control: &[(i64, i64)],
        now_ms: i64,
    ) -> Vec<Acquired> {
        self.expire(now_ms);
        let until_ms = now_ms + self.limits.lock_ms;
        let mut taken: Vec<(i64, u16)> = Vec::new();
        // Released or expired records first, oldest first.
        for (&offset, r) in self.in_flight.range_mut(from..) {
            if taken.len() >= max_records || offset >= readable_end {
                break;
            }
            if r.state == RecordState::Available {
                r.deliveries += 1;
                r.state = RecordState::Acquired { member: member.to_string(), until_ms };
                taken.push((offset, r.deliveries));
            }
        }
        // Then new records, while the window has room.
        while taken.len() < max_records
            && self.end >= from
            && self.end < readable_end
            && self.in_flight.len() < self.limits.max_in_flight
        {
            if control.iter().any(|(first, last)| (*first..=*last).contains(&self.end)) {
                self.in_flight.insert(self.end, InFlight { state: RecordState::Archived, deliveries: 0 });
                self.end += 1;
                continue;
            }
            let state = RecordState::Acquired { member: member.to_string(), until_ms };
            self.in_flight.insert(self.end, InFlight { state, deliveries: 1 });
            taken.push((self.end, 1));
            self.end += 1;
        }
        self.advance();
        runs(&taken)
    }

    /// The state to persist: the SPSO and the in-flight records as runs of equal state and
    /// delivery count. Acquired records are persisted as available (a restart ends every
    /// lock), with the delivery they used counted.
    pub fn snapshot(&self) -> (i64, Vec<StateBatch>) {
        let mut out: Vec<StateBatch> = Vec::new();
        for (&offset, r) in &self.in_flight {
            let state = match r.state {
                RecordState::Available | RecordState::Acquired { .. } => STATE_AVAILABLE,
                RecordState::Acknowledged => STATE_ACKNOWLEDGED,
                RecordState::Archived => STATE_ARCHIVED,
            };
            match out.last_mut() {
                Some(b)
                    if b.last_offset + 1 == offset
                        && b.state == state
                        && b.delivery_count == r.deliveries =>
                {
                    b.last_offset = offset
                }
                _ => out.push(StateBatch {
                    first_offset: offset,
                    last_offset: offset,
                    state,
                    delivery_count: r.deliveries,
                }),
            }
        }
        (self.start, out)
    }

    /// A share-partition as persisted: offsets from `start` up to the last batch are in
    /// flight, those no batch names available and never delivered.
    pub fn restore(start: i64, batches: &[StateBatch], limits: Limits) -> SharePartition {
        let mut sp = SharePartition::new(start.max(0), limits);
        for b in batches.iter().filter(|b| b.last_offset >= sp.start && b.first_offset <= b.last_offset) {
            let state = match b.state {
                STATE_ACKNOWLEDGED => RecordState::Acknowledged,
                STATE_ARCHIVED => RecordState::Archived,
                _ => RecordState::Available,
            };
            for offset in b.first_offset.max(sp.start)..=b.last_offset {
                sp.in_flight.insert(offset, InFlight { state: state.clone(), deliveries: b.delivery_count });
            }
        }
        if let Some((&last, _)) = sp.in_flight.last_key_value() {
            sp.end = last + 1;
            for offset in sp.start..sp.end {
                sp.in_flight
                    .entry(offset)
                    .or_insert(InFlight { state: RecordState::Available, deliveries: 0 });
            }
        }
        sp.advance();
        sp
    }

    /// New limits (the group's configs changed); records already in flight keep their state.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Applies one acknowledgement batch of `member`: `types` has one type for the whole range
    /// or one per offset. All or nothing: a refused batch changes no record.
    pub fn acknowledge(
        &mut self,
        member: &str,
        first: i64,
        last: i64,
        types: &[i8],
        now_ms: i64,
    ) -> Result<(), AckError> {
        if first > last || first < 0 || (types.len() != 1 && types.len() as i64 != last - first + 1) {
            return Err(AckError::BadRange { first, last });
        }
        if let Some(t) = types.iter().find(|t| !(GAP..=RENEW).contains(*t)) {
            return Err(AckError::UnknownType(*t));
        }
        self.expire(now_ms);
        for offset in first..=last {
            match self.in_flight.get(&offset).map(|r| &r.state) {
                Some(RecordState::Acquired { member: m, .. }) if m == member => {}
                _ => return Err(AckError::NotAcquired(offset)),
            }
        }
        for (i, offset) in (first..=last).enumerate() {
            let t = if types.len() == 1 { types[0] } else { types[i] };
            let limit = self.limits.delivery_limit;
            let r = self.in_flight.get_mut(&offset).expect("checked above");
            r.state = match t {
                RENEW => RecordState::Acquired {
                    member: member.to_string(),
                    until_ms: now_ms + self.limits.lock_ms,
                },
                ACCEPT => RecordState::Acknowledged,
                RELEASE if r.deliveries < limit => RecordState::Available,
                _ => RecordState::Archived, // RELEASE at the limit, REJECT, GAP
            };
        }
        self.advance();
        Ok(())
    }

    /// A member left (or was fenced): what it held is available again.
    pub fn release_member(&mut self, member: &str) {
        let limit = self.limits.delivery_limit;
        for r in self.in_flight.values_mut() {
            if matches!(&r.state, RecordState::Acquired { member: m, .. } if m == member) {
                r.state = if r.deliveries < limit { RecordState::Available } else { RecordState::Archived };
            }
        }
        self.advance();
    }

    /// Acquisition locks past their time: the records are available again (or archived at
    /// the delivery limit).
    pub fn expire(&mut self, now_ms: i64) {
        let limit = self.limits.delivery_limit;
        let mut changed = false;
        for r in self.in_flight.values_mut() {
            if matches!(r.state, RecordState::Acquired { until_ms, .. } if until_ms <= now_ms) {
                r.state = if r.deliveries < limit { RecordState::Available } else { RecordState::Archived };
                changed = true;
            }
        }
        if changed {
            self.advance();
        }
    }

    /// The log start moved past the SPSO (retention, DeleteRecords): those records are gone.
    pub fn log_start_moved(&mut self, log_start: i64) {
        if log_start > self.start {
            self.in_flight = self.in_flight.split_off(&log_start);
            self.start = log_start;
            self.end = self.end.max(log_start);
        }
    }

    /// The SPSO moves past leading records that are done.
    fn advance(&mut self) {
        while let Some(entry) = self.in_flight.first_entry() {
            if !matches!(entry.get().state, RecordState::Acknowledged | RecordState::Archived) {
                break;
            }
            self.start = *entry.key() + 1;
            entry.remove();
        }
        if self.in_flight.is_empty() {
            self.start = self.end;
        }
        debug_assert!(self.start <= self.end, "SPSO {} past SPEO {}", self.start, self.end);
    }
}

/// How many in-flight records at or past `start` are done (acknowledged or archived): KIP-1226's
/// delivery-complete count, which the share-partition lag leaves out.
pub fn delivery_complete(start: i64, batches: &[StateBatch]) -> i64 {
    batches
        .iter()
        .filter(|b| matches!(b.state, STATE_ACKNOWLEDGED | STATE_ARCHIVED))
        .map(|b| (b.last_offset - b.first_offset.max(start) + 1).max(0))
        .sum()
}

/// Consecutive offsets with the same delivery count as runs.
fn runs(taken: &[(i64, u16)]) -> Vec<Acquired> {
    let mut out: Vec<Acquired> = Vec::new();
    for &(offset, count) in taken {
        match out.last_mut() {
            Some(r) if r.last_offset + 1 == offset && r.delivery_count == count => r.last_offset = offset,
            _ => out.push(Acquired { first_offset: offset, last_offset: offset, delivery_count: count }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { lock_ms: 30_000, delivery_limit: 3, max_in_flight: 100 };

    fn run(first: i64, last: i64, delivery_count: u16) -> Acquired {
        Acquired { first_offset: first, last_offset: last, delivery_count }
    }

    #[test]
    fn members_share_a_partition_and_accepted_records_are_done() {
        let mut sp = SharePartition::new(0, LIMITS);
        assert_eq!(sp.acquire("a", 5, 0, 10, &[], 0), vec![run(0, 4, 1)]);
        assert_eq!(sp.acquire("b", 5, 0, 10, &[], 0), vec![run(5, 9, 1)]);
        assert_eq!(sp.acquire("c", 5, 0, 10, &[], 0), vec![], "nothing readable left");
        assert_eq!(sp.acknowledge("b", 5, 9, &[ACCEPT], 1), Ok(()));
        assert_eq!(sp.start_offset(), 0, "a still holds 0..=4");
        assert_eq!(sp.acknowledge("a", 0, 4, &[ACCEPT], 1), Ok(()));
        assert_eq!((sp.start_offset(), sp.end_offset()), (10, 10));
    }

    #[test]
    fn release_redelivers_at_once_and_the_limit_archives() {
        let mut sp = SharePartition::new(0, LIMITS);
        sp.acquire("a", 2, 0, 2, &[], 0);
        sp.acknowledge("a", 0, 1, &[RELEASE, ACCEPT], 1).unwrap();
        assert_eq!(sp.start_offset(), 0);
        assert_eq!(sp.acquire("b", 10, 0, 2, &[], 2), vec![run(0, 0, 2)]);
        sp.acknowledge("b", 0, 0, &[RELEASE], 3).unwrap();
        assert_eq!(sp.acquire("b", 10, 0, 2, &[], 4), vec![run(0, 0, 3)]);
        // The third delivery was the last: releasing it again archives it.
        sp.acknowledge("b", 0, 0, &[RELEASE], 5).unwrap();
        assert_eq!(sp.state(0), None);
        assert_eq!(sp.start_offset(), 2);
    }

    #[test]
    fn expired_locks_and_departed_members_make_records_available() {
        let mut sp = SharePartition::new(0, LIMITS);
        sp.acquire("a", 3, 0, 3, &[], 0);
        assert_eq!(sp.acquire("b", 3, 0, 3, &[], 29_999), vec![]);
        assert_eq!(
            sp.acquire("b", 3, 1, 3, &[], 30_000),
            vec![run(1, 2, 2)],
            "a's lock expired; b read from 1"
        );
        assert_eq!(sp.next_fetch_offset(), 0, "0 was not read, so not handed out");
        assert_eq!(sp.acknowledge("a", 0, 0, &[ACCEPT], 30_001), Err(AckError::NotAcquired(0)));
        sp.release_member("b");
        assert_eq!(sp.state(1), Some(&RecordState::Available));
        assert_eq!(sp.acquire("c", 9, 0, 3, &[], 30_001), vec![run(0, 0, 2), run(1, 2, 3)]);
    }

    #[test]
    fn renew_restarts_the_lock_and_keeps_the_delivery_count() {
        let mut sp = SharePartition::new(0, LIMITS);
        assert_eq!(sp.acquire("a", 2, 0, 2, &[], 0), vec![run(0, 1, 1)]);
        // Renewed at 20 s: the lock (30 s) now runs to 50 s, not 30 s.
        sp.acknowledge("a", 0, 1, &[RENEW], 20_000).unwrap();
        sp.expire(40_000);
        assert!(matches!(sp.state(0), Some(RecordState::Acquired { until_ms: 50_000, .. })));
        // Only what the member holds can be renewed; a renewed record is still acknowledged.
        assert_eq!(sp.acknowledge("b", 0, 0, &[RENEW], 40_000), Err(AckError::NotAcquired(0)));
        sp.acknowledge("a", 0, 1, &[ACCEPT, RELEASE], 40_000).unwrap();
        assert_eq!(sp.start_offset(), 1);
        assert_eq!(sp.acquire("b", 1, 1, 2, &[], 41_000), vec![run(1, 1, 2)]);
        assert_eq!(sp.acknowledge("b", 1, 1, &[5], 41_000), Err(AckError::UnknownType(5)));
    }

    #[test]
    fn reject_gap_and_bad_batches() {
        let mut sp = SharePartition::new(5, LIMITS);
        assert_eq!(sp.acquire("a", 4, 0, 9, &[], 0), vec![run(5, 8, 1)]);
        assert_eq!(
            sp.acknowledge("a", 5, 8, &[ACCEPT, ACCEPT], 1),
            Err(AckError::BadRange { first: 5, last: 8 })
        );
        assert_eq!(sp.acknowledge("a", 5, 8, &[9], 1), Err(AckError::UnknownType(9)));
        assert_eq!(sp.acknowledge("a", 5, 9, &[ACCEPT], 1), Err(AckError::NotAcquired(9)));
        assert_eq!(
            sp.state(5),
            Some(&RecordState::Acquired { member: "a".into(), until_ms: 30_000 }),
            "all or nothing"
        );
        sp.acknowledge("a", 5, 8, &[REJECT, GAP, ACCEPT, ACCEPT], 1).unwrap();
        assert_eq!((sp.start_offset(), sp.end_offset()), (9, 9));
    }

    #[test]
    fn control_records_are_skipped_and_the_state_survives_a_snapshot() {
        let mut sp = SharePartition::new(0, LIMITS);
        assert_eq!(sp.acquire("a", 10, 0, 6, &[(2, 2)], 0), vec![run(0, 1, 1), run(3, 5, 1)]);
        sp.acknowledge("a", 0, 1, &[ACCEPT], 1).unwrap();
        assert_eq!(sp.start_offset(), 3, "the marker at 2 is done");
        sp.acknowledge("a", 4, 4, &[REJECT], 1).unwrap();
        sp.acknowledge("a", 5, 5, &[RELEASE], 1).unwrap();
        let (start, batches) = sp.snapshot();
        assert_eq!(start, 3);
        let restored = SharePartition::restore(start, &batches, LIMITS);
        assert_eq!((restored.start_offset(), restored.end_offset()), (3, 6));
        assert_eq!(restored.state(3), Some(&RecordState::Available), "a lock ends with a restart");
        assert_eq!(restored.state(4), Some(&RecordState::Archived));
        let mut restored = restored;
        assert_eq!(restored.next_fetch_offset(), 3);
        assert_eq!(restored.acquire("b", 10, 0, 6, &[], 2), vec![run(3, 3, 2), run(5, 5, 2)]);
        assert_eq!(SharePartition::restore(7, &[], LIMITS).end_offset(), 7);
    }

    #[test]
    fn the_window_is_bounded_and_follows_the_log_start() {
        let limits = Limits { max_in_flight: 4, ..LIMITS };
        let mut sp = SharePartition::new(0, limits);
        assert_eq!(sp.acquire("a", 10, 0, 100, &[], 0), vec![run(0, 3, 1)]);
        assert_eq!(sp.acquire("b", 10, 0, 100, &[], 0), vec![], "at most 4 in flight");
        sp.log_start_moved(2);
        assert_eq!((sp.start_offset(), sp.end_offset()), (2, 4));
        assert_eq!(sp.acquire("b", 10, 0, 100, &[], 0), vec![run(4, 5, 1)]);
        sp.log_start_moved(50);
        assert_eq!((sp.start_offset(), sp.end_offset()), (50, 50));
    }
}
