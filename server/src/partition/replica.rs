//! A partition's replication state: which role this broker plays for it (from the metadata
//! image), and as leader, what each follower has acknowledged. Pure bookkeeping, no I/O: the
//! partition feeds it follower fetches and the clock, and it says what the high watermark may
//! be and which ISR change to ask the controller for (Kafka's AlterPartition).
//!
//! Rules (Kafka's, ARCHITECTURE.md §5):
//! - a follower's acknowledged offset is the fetch offset of its latest fetch: it holds every
//!   offset below it (durably under `durability.policy=fsync`, since followers fsync before
//!   fetching on);
//! - the high watermark is the minimum over the leader and the ISR, and over followers whose
//!   addition to the ISR is pending (the "maximal ISR" of KIP-497: the controller may have
//!   committed it already, so they must count before the leader hears back);
//! - a follower is caught up when it fetched at or past the leader's log end, or past the log
//!   end the leader had at its previous fetch; one not caught up for `replica.lag.time.max.ms`
//!   leaves the ISR; one out of the ISR whose acknowledged offset reached the high watermark
//!   (and the start of the current leader epoch) rejoins.

use std::time::{Duration, Instant};

use super::{LeaderEpoch, Offset};

/// A replica's broker id (Kafka's node.id).
pub type BrokerId = riptide_model::NodeId;

/// What this broker is for one partition.
#[derive(Debug)]
pub enum Role {
    Leader(Leadership),
    /// Copies the log of `leader` (-1: the partition has no leader now).
    Follower {
        leader: BrokerId,
    },
    /// Not told yet, or no longer a replica.
    Offline,
}

/// The metadata image's view of a partition, as a role change needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
}

#[derive(Debug)]
struct FollowerProgress {
    id: BrokerId,
    /// Offsets below this are on the follower; none until its first fetch in this leadership.
    acked: Offset,
    caught_up_at: Instant,
    prev_fetch_at: Instant,
    leo_at_prev_fetch: Offset,
    /// The follower's log start as its last fetch said (none yet).
    log_start: Offset,
}

/// An ISR change to propose: the new ISR, for the leader and partition epochs it was based on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrChange {
    pub isr: Vec<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    /// Human-readable reason, logged by the caller.
    pub reason: String,
}

#[derive(Debug)]
pub struct Leadership {
    me: BrokerId,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub partition_epoch: i32,
    pub leader_epoch: LeaderEpoch,
    followers: Vec<FollowerProgress>,
    /// Asked of the controller and not yet applied, with when (dropped and retried after
    /// `PENDING_ISR_TIMEOUT`).
    pending: Option<(Vec<BrokerId>, Instant)>,
}

/// How long an ISR change may stay unanswered before the leader asks again.
const PENDING_ISR_TIMEOUT: Duration = Duration::from_secs(15);

impl Leadership {
    /// A new leadership: every follower gets a full `replica.lag.time.max.ms` to fetch.
    pub fn new(me: BrokerId, view: &PartitionView, now: Instant) -> Leadership {
        let followers = view
            .replicas
            .iter()
            .filter(|r| **r != me)
            .map(|&id| FollowerProgress {
                id,
                acked: Offset::NONE,
                caught_up_at: now,
                prev_fetch_at: now,
                leo_at_prev_fetch: Offset::NONE,
                log_start: Offset::NONE,
            })
            .collect();
        Leadership {
            me,
            replicas: view.replicas.clone(),
            isr: view.isr.clone(),
            partition_epoch: view.partition_epoch,
            leader_epoch: view.leader_epoch,
            followers,
            pending: None,
        }
    }

    /// Same leader epoch, new ISR or replicas from the metadata: follower progress is kept.
    pub fn update(&mut self, view: &PartitionView, now: Instant) {
        debug_assert_eq!(view.leader_epoch, self.leader_epoch, "a new leader epoch is a new leadership");
        if view.partition_epoch != self.partition_epoch {
            self.pending = None;
        }
        self.isr = view.isr.clone();
        self.partition_epoch = view.partition_epoch;
        for &id in view.replicas.iter().filter(|r| **r != self.me) {
            if !self.followers.iter().any(|f| f.id == id) {
                self.followers.push(FollowerProgress {
                    id,
                    acked: Offset::NONE,
                    caught_up_at: now,
                    prev_fetch_at: now,
                    leo_at_prev_fetch: Offset::NONE,
                    log_start: Offset::NONE,
                });
            }
        }
        self.followers.retain(|f| view.replicas.contains(&f.id));
        self.replicas = view.replicas.clone();
    }

    pub fn is_replica(&self, id: BrokerId) -> bool {
        self.replicas.contains(&id)
    }

    /// The ISR used for acks=all: the committed one plus pending additions.
    fn maximal_isr(&self) -> impl Iterator<Item = BrokerId> + '_ {
        let pending = self.pending.as_ref().map(|(isr, _)| isr.as_slice()).unwrap_or(&[]);
        self.isr.iter().copied().chain(pending.iter().copied().filter(|r| !self.isr.contains(r)))
    }

    /// In-sync replicas that count for `min.insync.replicas` (the committed ISR).
    pub fn isr_len(&self) -> usize {
        self.isr.len()
    }

    /// A follower fetched at `offset` while the leader's log ended at `leo`.
    pub fn on_fetch(&mut self, id: BrokerId, offset: Offset, leo: Offset, now: Instant) {
        if let Some(f) = self.followers.iter_mut().find(|f| f.id == id) {
            if offset >= leo {
                f.caught_up_at = now;
            } else if !f.leo_at_prev_fetch.is_none() && offset >= f.leo_at_prev_fetch {
                f.caught_up_at = f.caught_up_at.max(f.prev_fetch_at);
            }
            f.acked = offset;
            f.prev_fetch_at = now;
            f.leo_at_prev_fetch = leo;
        }
    }

    /// A follower's fetch said where its log starts.
    pub fn on_log_start(&mut self, id: BrokerId, log_start: Offset) {
        if let Some(f) = self.followers.iter_mut().find(|f| f.id == id) {
            f.log_start = log_start;
        }
    }

    /// Kafka's `lowWatermarkIfLeader`: the smallest log start of this leader (`local`) and of
    /// the followers on `live` brokers (one that has not fetched yet counts as unknown, -1).
    pub fn low_watermark(&self, local: Offset, live: &[BrokerId]) -> Offset {
        let followers = self.followers.iter().filter(|f| live.contains(&f.id)).map(|f| f.log_start);
        followers.fold(local, Offset::min)
    }

    /// The highest high watermark the replicas allow, given what the leader itself holds
    /// (`local`: its durable offset under fsync, else its log end).
    pub fn high_watermark(&self, local: Offset) -> Offset {
        let mut hw = local;
        for id in self.maximal_isr().filter(|r| *r != self.me) {
            let acked = self.followers.iter().find(|f| f.id == id).map_or(Offset::NONE, |f| f.acked);
            hw = hw.min(acked);
        }
        debug_assert!(hw <= local, "the high watermark passed what the leader holds");
        hw
    }

    /// Each follower's acknowledged offset (none yet: `Offset::NONE`), for `topic describe`
    /// and metrics.
    pub fn follower_offsets(&self) -> Vec<(BrokerId, Offset)> {
        self.followers.iter().map(|f| (f.id, f.acked)).collect()
    }

    /// The ISR change due now, if any (one at a time): shrink by the followers not caught up
    /// for `lag_max`, else expand by those that reached `hw` and `epoch_start` and are
    /// `eligible` (registered, not fenced, not shutting down: the controller refuses others, as
    /// KIP-841 says, and one refused member must not hold back the rest).
    pub fn isr_change(
        &mut self,
        now: Instant,
        lag_max: Duration,
        hw: Offset,
        epoch_start: Offset,
        eligible: &dyn Fn(BrokerId) -> bool,
    ) -> Option<IsrChange> {
        if let Some((_, at)) = &self.pending {
            if now.duration_since(*at) < PENDING_ISR_TIMEOUT {
                return None;
            }
            self.pending = None;
        }
        let lagging: Vec<BrokerId> = self
            .followers
            .iter()
            .filter(|f| self.isr.contains(&f.id) && now.duration_since(f.caught_up_at) > lag_max)
            .map(|f| f.id)
            .collect();
        let (isr, reason) = if !lagging.is_empty() {
            let isr: Vec<BrokerId> = self.isr.iter().copied().filter(|r| !lagging.contains(r)).collect();
            (isr, format!("replica(s) {lagging:?} not caught up for {} ms", lag_max.as_millis()))
        } else {
            let joining: Vec<BrokerId> = self
                .followers
                .iter()
                .filter(|f| !self.isr.contains(&f.id) && f.acked >= hw && f.acked >= epoch_start)
                // Caught up recently too, by the shrink's own measure: a follower that stopped
                // fetching on an idle partition has acked everything, and rejoining it would
                // only have it shrunk out again on the next tick (an ISR change, a metadata
                // write, every tick for as long as it hangs).
                .filter(|f| now.duration_since(f.caught_up_at) <= lag_max)
                .filter(|f| eligible(f.id))
                .map(|f| f.id)
                .collect();
            if joining.is_empty() {
                return None;
            }
            let mut isr = self.isr.clone();
            isr.extend(&joining);
            (isr, format!("replica(s) {joining:?} caught up"))
        };
        if !isr.contains(&self.me) {
            return None; // never asked for: the controller requires the leader in its ISR
        }
        debug_assert!(isr.iter().all(|r| self.replicas.contains(r)), "ISR {isr:?} outside the replicas");
        self.pending = Some((isr.clone(), now));
        Some(IsrChange {
            isr,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            reason,
        })
    }

    /// The controller refused or did not answer: ask again on the next tick.
    pub fn isr_change_failed(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(isr: &[BrokerId]) -> PartitionView {
        PartitionView {
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader: 1,
            leader_epoch: LeaderEpoch(4),
            partition_epoch: 7,
        }
    }

    #[test]
    fn high_watermark_is_the_minimum_over_the_maximal_isr() {
        let t0 = Instant::now();
        let mut l = Leadership::new(1, &view(&[1, 2, 3]), t0);
        assert_eq!(l.high_watermark(Offset(100)), Offset(-1), "nothing acknowledged by followers yet");
        l.on_fetch(2, Offset(80), Offset(100), t0);
        l.on_fetch(3, Offset(90), Offset(100), t0);
        assert_eq!(l.high_watermark(Offset(100)), Offset(80));
        assert_eq!(l.high_watermark(Offset(50)), Offset(50), "the leader's own durable offset bounds it");
        // Follower 3 out of the ISR: it no longer holds the high watermark back.
        l.update(&PartitionView { partition_epoch: 8, ..view(&[1, 2]) }, t0);
        l.on_fetch(2, Offset(100), Offset(100), t0);
        assert_eq!(l.high_watermark(Offset(100)), Offset(100));
    }

    #[test]
    fn a_hung_follower_of_an_idle_partition_leaves_once_and_stays_out() {
        let t0 = Instant::now();
        let lag = Duration::from_secs(1);
        let mut l = Leadership::new(1, &view(&[1, 2, 3]), t0);
        l.on_fetch(2, Offset(50), Offset(50), t0);
        l.on_fetch(3, Offset(50), Offset(50), t0);
        // 3 stops fetching; 2 goes on. Nothing new is written: 3 has acked everything.
        let t = |ms| t0 + Duration::from_millis(ms);
        l.on_fetch(2, Offset(50), Offset(50), t(1500));
        let shrink = l.isr_change(t(1500), lag, Offset(50), Offset(0), &|_| true).expect("shrink");
        assert_eq!(shrink.isr, vec![1, 2]);
        l.update(&PartitionView { partition_epoch: 8, ..view(&[1, 2]) }, t(1600));
        for ms in [1700, 1900, 2500, 5000] {
            l.on_fetch(2, Offset(50), Offset(50), t(ms));
            assert_eq!(l.isr_change(t(ms), lag, Offset(50), Offset(0), &|_| true), None, "at {ms} ms");
        }
        // It fetches again: it rejoins.
        l.on_fetch(3, Offset(50), Offset(50), t(5100));
        let grow = l.isr_change(t(5100), lag, Offset(50), Offset(0), &|_| true).expect("expand");
        assert_eq!(grow.isr, vec![1, 2, 3]);
    }

    #[test]
    fn lagging_followers_leave_and_caught_up_ones_rejoin() {
        let t0 = Instant::now();
        let lag = Duration::from_secs(10);
        let mut l = Leadership::new(1, &view(&[1, 2, 3]), t0);
        l.on_fetch(2, Offset(100), Offset(100), t0 + Duration::from_secs(5));
        l.on_fetch(3, Offset(40), Offset(100), t0 + Duration::from_secs(5));
        assert_eq!(l.isr_change(t0 + Duration::from_secs(9), lag, Offset(40), Offset(0), &|_| true), None);
        let shrink = l
            .isr_change(t0 + Duration::from_secs(11), lag, Offset(40), Offset(0), &|_| true)
            .expect("shrink");
        assert_eq!((shrink.isr.clone(), shrink.partition_epoch), (vec![1, 2], 7));
        assert_eq!(
            l.isr_change(t0 + Duration::from_secs(12), lag, Offset(40), Offset(0), &|_| true),
            None,
            "one at a time"
        );
        // While the shrink is pending the old ISR still bounds acks=all.
        assert_eq!(l.high_watermark(Offset(100)), Offset(40));
        l.update(&PartitionView { partition_epoch: 8, ..view(&[1, 2]) }, t0);
        assert_eq!(l.high_watermark(Offset(100)), Offset(100));
        // Follower 3 catches up to the high watermark: it rejoins, and counts at once.
        l.on_fetch(3, Offset(100), Offset(120), t0 + Duration::from_secs(13));
        assert_eq!(
            l.isr_change(t0 + Duration::from_secs(13), lag, Offset(100), Offset(0), &|id| id != 3),
            None,
            "3 is fenced"
        );
        let grow = l
            .isr_change(t0 + Duration::from_secs(13), lag, Offset(100), Offset(0), &|_| true)
            .expect("expand");
        assert_eq!(grow.isr, vec![1, 2, 3]);
        l.on_fetch(2, Offset(120), Offset(120), t0 + Duration::from_secs(13));
        assert_eq!(l.high_watermark(Offset(120)), Offset(100), "a pending addition counts (maximal ISR)");
    }

    #[test]
    fn a_follower_behind_but_keeping_pace_stays_caught_up() {
        let t0 = Instant::now();
        let lag = Duration::from_secs(10);
        let mut l = Leadership::new(1, &view(&[1, 2, 3]), t0);
        l.on_fetch(3, Offset(100), Offset(100), t0);
        for s in 1..30u64 {
            // Follower 2 always fetches at the leader's previous log end.
            let now = t0 + Duration::from_secs(s);
            l.on_fetch(2, Offset((s as i64 - 1) * 10), Offset(s as i64 * 10), now);
            l.on_fetch(3, Offset(s as i64 * 10), Offset(s as i64 * 10), now);
            assert_eq!(l.isr_change(now, lag, Offset(0), Offset(0), &|_| true), None, "second {s}");
        }
    }
}
