//! Snapshots and updates of share-partition state (KIP-932): what the share coordinator writes
//! to `__share_group_state` for each incoming state, and how it reads the log back. Pure
//! functions over `share_state`'s records; `shares.rs` does the I/O.
//!
//! Writing: the leader always hands over its whole state. The coordinator compares it with
//! the state it last made durable for the key and writes an update (the runs that changed, the
//! new start offset) unless a snapshot is due: the key's first write, a state-epoch change
//! (AlterShareGroupOffsets reset it), `share.coordinator.snapshot.update.records.per.snapshot`
//! updates since the key's last snapshot, a change an update cannot say (the window shrank at
//! its end or its start moved back), or a compacted state topic (compaction keeps one record
//! per key, so updates there would be lost).
//!
//! Reading: records in log order; a snapshot replaces the key's state, an update of the same
//! snapshot epoch is merged onto it (runs below its new start dropped, its runs laid over the
//! rest), an update of another snapshot epoch is stale and ignored, a tombstone removes the
//! key. Applying an update to the state it was computed from gives the incoming state again,
//! so the coordinator's memory and a reload agree.
//!
//! Runs are handled as runs, never expanded to offsets: a run read from disk may name any
//! range, and the work stays proportional to the number of runs.

use std::collections::HashMap;

use super::share_partition::StateBatch;
use super::share_state::{Snapshot, StateKey, StateRecord, Update};

/// The coordinator's durable view of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The state the log yields for the key: its latest snapshot with later updates merged.
    pub state: Snapshot,
    /// Where that snapshot is in the state partition: the log below the smallest such offset
    /// of the partition's keys is no longer needed.
    pub snapshot_offset: i64,
    pub updates_since_snapshot: u32,
}

/// How the coordinator writes a key's new state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WritePolicy {
    /// False for a compacted state topic: snapshots only.
    pub updates_allowed: bool,
    /// `share.coordinator.snapshot.update.records.per.snapshot`.
    pub updates_per_snapshot: u32,
}

/// The record to write for a new state, and the key's state once it is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    Snapshot(Snapshot),
    Update { update: Update, state: Snapshot },
}

/// Decides between a snapshot and an update for the key's `new` (whole) state, given what is
/// durable for it. A snapshot gets the next snapshot epoch of the key (the leader's count is
/// not the coordinator's).
pub fn plan(stored: Option<&Stored>, new: &Snapshot, policy: WritePolicy) -> Planned {
    let snapshot = |epoch: i32| Planned::Snapshot(Snapshot { snapshot_epoch: epoch, ..new.clone() });
    let Some(old) = stored else { return snapshot(0) };
    let next_epoch = old.state.snapshot_epoch.wrapping_add(1);
    if !policy.updates_allowed
        || old.state.state_epoch != new.state_epoch
        || old.updates_since_snapshot >= policy.updates_per_snapshot
    {
        return snapshot(next_epoch);
    }
    let Some(update) = diff(&old.state, new) else { return snapshot(next_epoch) };
    let mut state = old.state.clone();
    apply(&mut state, &update);
    state.write_timestamp_ms = new.write_timestamp_ms;
    Planned::Update { update, state }
}

/// The update that turns `old` into `new`, or `None` when an update cannot say it: `new`'s
/// start is below `old`'s, `new`'s runs are not one contiguous window from its first run, or
/// `old` names offsets past `new`'s window end (an update only overlays, it never removes
/// above its start).
pub fn diff(old: &Snapshot, new: &Snapshot) -> Option<Update> {
    if new.start_offset < old.start_offset {
        return None;
    }
    let new_runs = clipped(&new.batches, new.start_offset);
    if new_runs.windows(2).any(|w| w[0].last_offset.checked_add(1) != Some(w[1].first_offset)) {
        return None;
    }
    let old_runs = sorted_runs(&clipped(&old.batches, new.start_offset));
    let new_end = new_runs.last().map_or(new.start_offset - 1, |r| r.last_offset);
    if old_runs.last().is_some_and(|r| r.last_offset > new_end) {
        return None;
    }
    let mut changed: Vec<StateBatch> = Vec::new();
    let mut j = 0;
    for n in &new_runs {
        let mut pos = n.first_offset;
        loop {
            while j < old_runs.len() && old_runs[j].last_offset < pos {
                j += 1;
            }
            let (seg_end, same) = match old_runs.get(j) {
                Some(o) if o.first_offset <= pos => (o.last_offset.min(n.last_offset), same_value(o, n)),
                Some(o) => ((o.first_offset - 1).min(n.last_offset), false),
                None => (n.last_offset, false),
            };
            if !same {
                push_run(&mut changed, StateBatch { first_offset: pos, last_offset: seg_end, ..*n });
            }
            if seg_end >= n.last_offset {
                break;
            }
            pos = seg_end + 1;
        }
    }
    let start_offset = if new.start_offset == old.start_offset { -1 } else { new.start_offset };
    Some(Update {
        snapshot_epoch: old.snapshot_epoch,
        leader_epoch: new.leader_epoch,
        start_offset,
        batches: changed,
    })
}

/// Merges `update` onto `state` (whose snapshot epoch it must carry; the caller checks).
pub fn apply(state: &mut Snapshot, update: &Update) {
    if update.start_offset >= 0 {
        state.start_offset = update.start_offset;
    }
    state.leader_epoch = update.leader_epoch;
    let over = sorted_runs(&clipped(&update.batches, state.start_offset));
    let base = sorted_runs(&clipped(&state.batches, state.start_offset));
    let mut pieces: Vec<StateBatch> = Vec::with_capacity(base.len() + over.len());
    for b in &base {
        // The overlay runs that may overlap `b`: those ending at or after its start.
        let from = over.partition_point(|o| o.last_offset < b.first_offset);
        let mut pos = b.first_offset;
        for o in over[from..].iter().take_while(|o| o.first_offset <= b.last_offset) {
            if o.first_offset > pos {
                pieces.push(StateBatch { first_offset: pos, last_offset: o.first_offset - 1, ..*b });
            }
            pos = pos.max(o.last_offset.saturating_add(1));
        }
        if pos <= b.last_offset {
            pieces.push(StateBatch { first_offset: pos, ..*b });
        }
    }
    pieces.extend(over);
    pieces.sort_by_key(|r| r.first_offset);
    let mut merged: Vec<StateBatch> = Vec::with_capacity(pieces.len());
    for p in pieces {
        push_run(&mut merged, p);
    }
    state.batches = merged;
}

/// A state partition read back in log order.
#[derive(Default)]
pub struct Replay {
    pub keys: HashMap<StateKey, Stored>,
}

impl Replay {
    /// Applies the record at `offset` of the log to `key`'s state.
    pub fn apply(&mut self, offset: i64, key: StateKey, record: StateRecord) {
        match record {
            StateRecord::Tombstone => {
                self.keys.remove(&key);
            }
            StateRecord::Snapshot(state) => {
                self.keys.insert(key, Stored { state, snapshot_offset: offset, updates_since_snapshot: 0 });
            }
            StateRecord::Update(update) => {
                // An update of another snapshot epoch follows a snapshot that is not the key's
                // latest (or one pruned away): it does not apply to this state.
                if let Some(stored) = self.keys.get_mut(&key) {
                    if stored.state.snapshot_epoch == update.snapshot_epoch {
                        apply(&mut stored.state, &update);
                        stored.updates_since_snapshot = stored.updates_since_snapshot.saturating_add(1);
                    }
                }
            }
        }
    }
}

/// Where a state partition's log may start: the oldest latest-snapshot of its live keys
/// (`None` when it has none: nothing below the log end is needed).
pub fn prune_offset<'a>(stored: impl Iterator<Item = &'a Stored>) -> Option<i64> {
    stored.map(|s| s.snapshot_offset).min()
}

/// The runs at or after `start`, cut there; empty and inverted runs dropped.
fn clipped(runs: &[StateBatch], start: i64) -> Vec<StateBatch> {
    runs.iter()
        .filter(|r| r.first_offset <= r.last_offset && r.last_offset >= start)
        .map(|r| StateBatch { first_offset: r.first_offset.max(start), ..*r })
        .collect()
}

/// Sorted by first offset; a run overlapping the one before it keeps only its part after it
/// (runs read from disk are not trusted to be disjoint).
fn sorted_runs(runs: &[StateBatch]) -> Vec<StateBatch> {
    let mut runs = runs.to_vec();
    runs.sort_by_key(|r| r.first_offset);
    let mut out: Vec<StateBatch> = Vec::with_capacity(runs.len());
    for mut r in runs {
        if let Some(last) = out.last() {
            if r.last_offset <= last.last_offset {
                continue;
            }
            r.first_offset = r.first_offset.max(last.last_offset + 1);
        }
        push_run(&mut out, r);
    }
    out
}

fn same_value(a: &StateBatch, b: &StateBatch) -> bool {
    a.state == b.state && a.delivery_count == b.delivery_count
}

/// Appends `r`, joining it to the last run when adjacent with the same state and count.
fn push_run(out: &mut Vec<StateBatch>, r: StateBatch) {
    if let Some(last) = out.last_mut() {
        if last.last_offset.checked_add(1) == Some(r.first_offset) && same_value(last, &r) {
            last.last_offset = r.last_offset;
            return;
        }
    }
    out.push(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(first: i64, last: i64, state: i8, count: u16) -> StateBatch {
        StateBatch { first_offset: first, last_offset: last, state, delivery_count: count }
    }

    fn state(start: i64, batches: Vec<StateBatch>) -> Snapshot {
        Snapshot {
            snapshot_epoch: 0,
            state_epoch: 0,
            leader_epoch: 1,
            start_offset: start,
            create_timestamp_ms: 1,
            write_timestamp_ms: 1,
            batches,
        }
    }

    const POLICY: WritePolicy = WritePolicy { updates_allowed: true, updates_per_snapshot: 2 };

    #[test]
    fn an_update_holds_only_what_changed() {
        let old = state(10, vec![run(10, 14, 0, 1), run(15, 19, 0, 1)]);
        // 12 acknowledged, 20..=21 acquired for the first time.
        let new = state(10, vec![run(10, 11, 0, 1), run(12, 12, 2, 1), run(13, 19, 0, 1), run(20, 21, 0, 1)]);
        let u = diff(&old, &new).expect("expressible");
        assert_eq!(u.start_offset, -1, "the start did not move");
        assert_eq!(u.batches, vec![run(12, 12, 2, 1), run(20, 21, 0, 1)]);
        let mut merged = old.clone();
        apply(&mut merged, &u);
        assert_eq!(merged.batches, vec![run(10, 11, 0, 1), run(12, 12, 2, 1), run(13, 21, 0, 1)]);
        // The start moved past 10..=12: the update says so and carries nothing for them.
        let moved = state(13, vec![run(13, 21, 0, 1)]);
        let u = diff(&merged, &moved).expect("expressible");
        assert_eq!((u.start_offset, u.batches.clone()), (13, vec![]));
        apply(&mut merged, &u);
        assert_eq!((merged.start_offset, merged.batches), (13, vec![run(13, 21, 0, 1)]));
    }

    #[test]
    fn what_an_update_cannot_say_is_a_snapshot() {
        let old = state(10, vec![run(10, 19, 0, 1)]);
        assert_eq!(diff(&old, &state(9, vec![run(9, 19, 0, 1)])), None, "start moved back");
        assert_eq!(diff(&old, &state(10, vec![run(10, 15, 0, 1)])), None, "window end shrank");
        assert_eq!(diff(&old, &state(10, vec![run(10, 12, 0, 1), run(14, 19, 0, 1)])), None, "a gap");
        assert_eq!(diff(&old, &state(20, vec![])).map(|u| u.start_offset), Some(20), "all done");
    }

    #[test]
    fn plan_writes_updates_until_a_snapshot_is_due() {
        let first = state(0, vec![run(0, 4, 0, 1)]);
        let Planned::Snapshot(s) = plan(None, &first, POLICY) else { panic!("first write") };
        assert_eq!(s.snapshot_epoch, 0);
        let mut stored = Stored { state: s, snapshot_offset: 100, updates_since_snapshot: 0 };
        for i in 0..2 {
            let new = state(i + 1, vec![run(i + 1, 4, 0, 1)]);
            let Planned::Update { update, state } = plan(Some(&stored), &new, POLICY) else {
                panic!("update {i}")
            };
            assert_eq!((update.snapshot_epoch, update.start_offset), (0, i + 1));
            assert_eq!(state.batches, new.batches);
            stored.state = state;
            stored.updates_since_snapshot += 1;
        }
        let new = state(3, vec![run(3, 4, 0, 1)]);
        let Planned::Snapshot(s) = plan(Some(&stored), &new, POLICY) else { panic!("two updates written") };
        assert_eq!(s.snapshot_epoch, 1);
        stored.updates_since_snapshot = 0;
        let reset = Snapshot { state_epoch: 1, ..state(50, vec![]) };
        assert!(matches!(plan(Some(&stored), &reset, POLICY), Planned::Snapshot(_)), "state epoch changed");
        let compacted = WritePolicy { updates_allowed: false, ..POLICY };
        assert!(matches!(plan(Some(&stored), &new, compacted), Planned::Snapshot(_)), "compacted topic");
    }

    #[test]
    fn replay_merges_updates_of_the_current_snapshot_only() {
        let k = StateKey { group: "g".into(), topic_id: 1, partition: 0 };
        let mut r = Replay::default();
        r.apply(5, k.clone(), StateRecord::Snapshot(state(0, vec![run(0, 3, 0, 1)])));
        let update = |epoch, start, batches| {
            StateRecord::Update(Update {
                snapshot_epoch: epoch,
                leader_epoch: 2,
                start_offset: start,
                batches,
            })
        };
        r.apply(6, k.clone(), update(0, -1, vec![run(1, 1, 2, 1)]));
        r.apply(7, k.clone(), update(0, 1, vec![run(4, 5, 0, 1)]));
        let got = &r.keys[&k];
        assert_eq!((got.state.start_offset, got.state.leader_epoch), (1, 2));
        assert_eq!(got.state.batches, vec![run(1, 1, 2, 1), run(2, 5, 0, 1)]);
        assert_eq!((got.snapshot_offset, got.updates_since_snapshot), (5, 2));
        let snap = Snapshot { snapshot_epoch: 1, ..state(2, vec![run(2, 5, 4, 2)]) };
        r.apply(8, k.clone(), StateRecord::Snapshot(snap.clone()));
        r.apply(9, k.clone(), update(0, 9, vec![run(9, 9, 2, 1)]));
        assert_eq!(r.keys[&k].state, snap, "an update of the old snapshot epoch is ignored");
        assert_eq!(r.keys[&k].snapshot_offset, 8);
        let other = StateKey { partition: 1, ..k.clone() };
        r.apply(10, other.clone(), update(0, 3, vec![]));
        assert!(!r.keys.contains_key(&other), "an update without its snapshot is ignored");
        r.apply(11, other.clone(), StateRecord::Snapshot(state(0, vec![])));
        assert_eq!(prune_offset(r.keys.values()), Some(8));
        r.apply(12, k.clone(), StateRecord::Tombstone);
        assert!(!r.keys.contains_key(&k));
        assert_eq!(prune_offset(r.keys.values()), Some(11), "a deleted key needs nothing");
    }

    #[test]
    fn apply_of_diff_gives_the_new_state_for_random_windows() {
        // Seeded: a failure names the seed and the step.
        let seed = 0x5eed_u64;
        let mut x = seed;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut cur = state(0, vec![]);
        let mut window: Vec<(i8, u16)> = Vec::new();
        for step in 0..2000 {
            let mut start = cur.start_offset;
            // Change some records, grow the window, sometimes move the start.
            for _ in 0..next(4) {
                if !window.is_empty() {
                    let i = next(window.len() as u64) as usize;
                    window[i] = ([0, 2, 4][next(3) as usize], next(4) as u16);
                }
            }
            for _ in 0..next(3) {
                window.push((0, 1));
            }
            let advance = if next(5) == 0 { next(window.len() as u64 + 1) as usize } else { 0 };
            window.drain(..advance);
            start += advance as i64;
            let mut runs = Vec::new();
            for (i, (s, c)) in window.iter().enumerate() {
                push_run(&mut runs, run(start + i as i64, start + i as i64, *s, *c));
            }
            let new = state(start, runs);
            let u = diff(&cur, &new).unwrap_or_else(|| panic!("seed {seed} step {step}: no update"));
            let mut merged = cur.clone();
            apply(&mut merged, &u);
            assert_eq!(merged, new, "seed {seed} step {step}");
            cur = merged;
        }
    }
}
