//! One partition on its owner shard: the log, the one high watermark, the leader epoch, its
//! role in replication (`replica`: leader with its followers' progress, or follower), and the
//! produce and fetch waiters.
//!
//! Owned by exactly one shard (ARCHITECTURE.md §1), which is the only caller of every method,
//! so nothing here locks. Operations take and return typed values; failures are
//! [`PartitionError`], mapped to Kafka codes only by the API layer.
//!
//! Durability contract (per topic `durability.policy`), on the leader and on every follower:
//! - `fsync` (default): a replica holds an offset once the group-commit fdatasync covering it
//!   is done (a follower fetches on only after it, so its fetch offset is durable);
//! - `replicated` / `none`: once written.
//!
//! acks=1 is answered when the leader holds the batch; acks=all when the high watermark (the
//! minimum over the leader and the ISR, `replica`) passed it, with at least
//! `min.insync.replicas` in the ISR. Consumers read below the high watermark only.
//!
//! Invariants: log start ≤ high watermark ≤ log end (asserted after every change); a leader's
//! append takes the offsets from the log end on, without a gap (asserted), a follower's never
//! goes back (asserted: compaction leaves gaps between the leader's batches); a truncation is
//! the only way the high watermark or the log end moves back, happens only where the leader
//! says the logs diverge, and leaves nothing past its cut (asserted); the leader epoch never
//! goes back (asserted on every role change: a view older than the epoch this replica holds
//! is logged and does not lower it); metadata views arrive in epoch order (logged when not);
//! durable waiters are queued in offset order (debug-asserted) and each is answered exactly
//! once (its sender is consumed).

pub mod error;
pub mod replica;
#[cfg(test)]
mod tests;
pub mod topic_id;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use riptide_engine::{
    CheckpointWrite, CompactionDone, CompactionJob, DirRemoval, Log, PreparedSegment, ReadSlice,
    ReplacedSegments, RetentionWrite, SegmentPrep, SyncTarget, TimestampAndOffset,
};

use crate::catalog::EffectiveTopicConfig;
use crate::clock::Clock;
use crate::config::Durability;
use crate::metrics::Metrics;
pub use error::PartitionError;
use replica::{BrokerId, IsrChange, Leadership, PartitionView, Role};

/// Fetch waiters kept per partition before disconnected ones are swept.
const FETCH_WAITERS_SWEEP: usize = 4096;

pub use riptide_engine::{AbortedTxn, ControlType, ProducerSummary, TxnMarker};
pub use riptide_model::{EpochEndOffset, LeaderEpoch, Offset};

/// Produce `acks`: how much durability the producer waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: never answered on the wire.
    None,
    /// acks=1.
    Leader,
    /// acks=-1 (all in-sync replicas).
    All,
}

impl Acks {
    pub fn from_wire(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// Who wrote an append's batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A producer: idempotent sequences are checked.
    Client,
    /// A coordinator of this cluster (transactional offset commits): no sequences.
    Coordinator,
}

/// A successful append.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: Offset,
    /// Broker time stamped on the batch; -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: Offset,
}

impl Appended {
    /// What a failed partition's slot in a Produce response carries.
    pub const NONE: Appended =
        Appended { base_offset: Offset::NONE, log_append_time_ms: -1, log_start_offset: Offset::NONE };
}

pub type AppendResult = Result<Appended, PartitionError>;

/// Where the owner shard sends an append's answer (once, when the durability policy allows):
/// the Produce request's one channel, tagged with the partition's place in the request. One
/// channel per request rather than one per partition (issue 22): with small batches over many
/// partitions that was an allocation, a free and a wait registration per partition-batch.
pub struct AppendReply {
    tx: flume::Sender<(usize, AppendResult)>,
    index: usize,
}

impl AppendReply {
    /// `tx` must have room for every answer sent on it (the requester sizes it to its
    /// partitions), so that an owner shard never waits on a requester.
    pub fn new(tx: flume::Sender<(usize, AppendResult)>, index: usize) -> AppendReply {
        AppendReply { tx, index }
    }

    /// Answers without blocking; an error means the requester is gone (or sized the channel
    /// too small: a bug), and the answer is dropped.
    pub fn send(&self, result: AppendResult) -> Result<(), PartitionError> {
        self.tx.try_send((self.index, result)).map_err(|_| PartitionError::NotLeaderOrFollower)
    }
}

/// What a read found: whole batches below the high watermark, as a file range.
#[derive(Debug, Default)]
pub struct ReadResult {
    pub high_watermark: Offset,
    /// The high watermark capped by the oldest open transaction: read_committed reads stop here.
    pub last_stable_offset: Offset,
    /// read_committed reads: the aborted transactions overlapping what was read.
    pub aborted: Vec<AbortedTxn>,
    pub log_start_offset: Offset,
    pub slice: Option<ReadSlice>,
    /// Replica fetches only: the follower's log diverged from the leader's at this epoch's
    /// end and must be truncated (Kafka's DivergingEpoch, KIP-595).
    pub diverging: Option<EpochEndOffset>,
}

/// DeleteRecords on a leader: the offset the log start moved to (-1 resolved to the high
/// watermark) and the low watermark of the replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordsDeleted {
    pub offset: Offset,
    pub low_watermark: Offset,
}

/// A follower's fetch as the leader sees it (Fetch with a replica id).
#[derive(Clone, Copy, Debug)]
pub struct ReplicaFetch {
    pub replica_id: BrokerId,
    /// The leader epoch the follower believes current (unknown: not given).
    pub current_leader_epoch: LeaderEpoch,
    /// The epoch of the follower's last batch (unknown: none), checked against the leader's log.
    pub last_fetched_epoch: LeaderEpoch,
    /// The follower's log start (DeleteRecords' low watermark counts it; unknown: none).
    pub log_start_offset: Offset,
}

/// Where a follower's log stands: what it fetches from next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowerPosition {
    pub log_end_offset: Offset,
    /// The epoch of its last batch (unknown: empty log).
    pub last_epoch: LeaderEpoch,
    pub log_start_offset: Offset,
}

/// Replica-side answers (position after an append or truncation); `Err` when this replica
/// does not follow at that epoch.
pub type FollowReply = flume::Sender<Result<FollowerPosition, PartitionError>>;

/// Which offset ListOffsets asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// -1 latest (the high watermark), and -5 latest-tiered (nothing is tiered).
    Latest,
    /// -1 latest for a read_committed consumer: the last stable offset.
    LastStable,
    /// -2 earliest, and -4 earliest-local.
    Earliest,
    /// -3: the batch with the largest timestamp (KIP-734). `committed`: a read_committed
    /// consumer asks, and only what lies below the last stable offset is found.
    MaxTimestamp { committed: bool },
    /// The first offset whose timestamp is at or after this one (`committed` as above).
    AtOrAfter { timestamp: i64, committed: bool },
    /// The log end, above the high watermark (internal: the group coordinator loads up to it).
    LogEnd,
}

impl OffsetSpec {
    pub fn from_wire(timestamp: i64) -> Option<OffsetSpec> {
        match timestamp {
            -1 | -5 => Some(OffsetSpec::Latest),
            -2 | -4 => Some(OffsetSpec::Earliest),
            -3 => Some(OffsetSpec::MaxTimestamp { committed: false }),
            ts if ts >= 0 => Some(OffsetSpec::AtOrAfter { timestamp: ts, committed: false }),
            _ => None,
        }
    }

    /// The same question from a read_committed consumer: nothing at or above the last stable
    /// offset is its answer (Kafka's ListOffsets with isolation_level 1).
    pub fn read_committed(self) -> OffsetSpec {
        match self {
            OffsetSpec::Latest => OffsetSpec::LastStable,
            OffsetSpec::MaxTimestamp { .. } => OffsetSpec::MaxTimestamp { committed: true },
            OffsetSpec::AtOrAfter { timestamp, .. } => OffsetSpec::AtOrAfter { timestamp, committed: true },
            spec => spec,
        }
    }
}

/// ListOffsets' answer; offset and timestamp are -1 when nothing matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: Offset,
    pub timestamp: i64,
    pub leader_epoch: LeaderEpoch,
}

struct DurableWaiter {
    last_offset: Offset,
    appended: Appended,
    reply: AppendReply,
}

/// What housekeeping does to old data (`cleanup.policy`).
#[derive(Clone, Copy)]
struct Cleanup {
    delete: bool,
    compact: bool,
    delete_retention_ms: i64,
}

/// A follower's append waiting for its group commit.
struct ReplicaWaiter {
    last_offset: Offset,
    reply: FollowReply,
}

pub struct Partition {
    name: String,
    /// The topic this replica belongs to (0 until `bind_topic`): a later topic of the same
    /// name is another partition (see `topic_id.rs`).
    topic_id: u128,
    me: BrokerId,
    log: Log,
    durability: Durability,
    /// What consumers may read: offsets below it. See the module header.
    high_watermark: Offset,
    leader_epoch: LeaderEpoch,
    role: Role,
    min_insync: usize,
    /// acks=1 (and acks=0 under fsync nothing): answered when the leader holds the batch.
    durable_waiters: VecDeque<DurableWaiter>,
    /// acks=all: answered when the high watermark passes the batch.
    hw_waiters: VecDeque<DurableWaiter>,
    /// Follower appends waiting for their fsync.
    replica_waiters: VecDeque<ReplicaWaiter>,
    fetch_waiters: Vec<flume::Sender<()>>,
    /// Followers' parked fetches: signalled when the log end moves.
    follower_fetch_waiters: Vec<flume::Sender<()>>,
    /// Offset the current leader epoch started at (a rejoining follower must reach it).
    epoch_start_offset: Offset,
    /// Appends not yet covered by a group commit.
    dirty: bool,
    cleanup: Cleanup,
    /// (segments, log end) at the last compaction pass: an unchanged log is not compacted again.
    compacted_shape: Option<(usize, Offset)>,
    metrics: Arc<Metrics>,
    leo_gauge: Arc<AtomicI64>,
    /// Where this partition's next produced batch goes, for landing buffers
    /// (`metrics::LandingHints`), updated after each client append.
    landing_hint: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Bytes produced to (as leader) and fetched by consumers from this replica since it was
    /// opened: the balancer's rates come from their deltas.
    traffic: Traffic,
    /// Time for LogAppendTime, the log's time-based rules and ISR lag (injected: tests drive it).
    clock: Arc<dyn Clock>,
    /// The (leader epoch, partition epoch) of the last view applied: views come from the
    /// metadata image in log order, so they should never go backwards (logged when they do).
    /// The log's own epoch is not compared: a node whose metadata was reset may hold a newer
    /// one on disk.
    last_view: Option<(LeaderEpoch, i32)>,
    /// The simulation's planted bug: a follower acknowledges (fetches on) before its fsync.
    #[cfg(feature = "sim")]
    plant_early_follower_ack: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Partition {
    /// Opens (recovering if needed) the log in `dir`. It serves nothing until `apply_view`
    /// gives it a role.
    pub fn open(
        name: String,
        me: BrokerId,
        dir: &std::path::Path,
        cfg: &EffectiveTopicConfig,
        metrics: Arc<Metrics>,
        leo_gauge: Arc<AtomicI64>,
        clock: Arc<dyn Clock>,
    ) -> Result<Partition, PartitionError> {
        let mut log = Log::open(dir, cfg.log.clone(), clock.wall_ms())?;
        if cfg.durability == Durability::Fsync && log.durable_offset() < log.log_end_offset() {
            // A recovered tail that survived a crash is made durable once, here, so that what
            // this replica holds is what it reports.
            log.sync()?;
        }
        let leader_epoch = log.leader_epochs().last().map_or(LeaderEpoch(0), |&(epoch, _)| epoch);
        leo_gauge.store(log.log_end_offset().0, Ordering::Relaxed);
        Ok(Partition {
            name,
            topic_id: 0,
            me,
            // What the replicas acknowledged before a restart is not known: the high watermark
            // starts at the log start and moves up as the leader's ISR acknowledges (a single
            // replica's at once) or as its leader says (a follower).
            high_watermark: log.log_start_offset(),
            log,
            durability: cfg.durability,
            leader_epoch,
            role: Role::Offline,
            min_insync: cfg.min_insync_replicas.max(1),
            durable_waiters: VecDeque::new(),
            hw_waiters: VecDeque::new(),
            replica_waiters: VecDeque::new(),
            fetch_waiters: Vec::new(),
            follower_fetch_waiters: Vec::new(),
            epoch_start_offset: Offset(0),
            dirty: false,
            cleanup: Cleanup::of(cfg),
            compacted_shape: None,
            metrics,
            leo_gauge,
            landing_hint: None,
            traffic: Traffic::default(),
            clock,
            last_view: None,
            #[cfg(feature = "sim")]
            plant_early_follower_ack: false,
        })
    }

    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    // The engine's offsets are still bare numbers: typed here, at its boundary.
    pub fn log_end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    pub fn log_start_offset(&self) -> Offset {
        self.log.log_start_offset()
    }

    fn durable_offset(&self) -> Offset {
        self.log.durable_offset()
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    pub fn min_insync(&self) -> usize {
        self.min_insync
    }

    /// Binds this replica to its topic's id (once, right after opening).
    pub fn bind_topic(&mut self, topic_id: u128) {
        debug_assert!(
            self.topic_id == 0 || self.topic_id == topic_id,
            "{}: bound to another topic",
            self.name
        );
        self.topic_id = topic_id;
    }

    pub fn topic_id(&self) -> u128 {
        self.topic_id
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// (in sync, replicas) while leading.
    pub fn replication_counts(&self) -> Option<(usize, usize)> {
        match &self.role {
            Role::Leader(l) => Some((l.isr.len(), l.replicas.len())),
            _ => None,
        }
    }

    /// Each follower's acknowledged offset while leading (lag = log end - offset).
    pub fn follower_offsets(&self) -> Vec<(BrokerId, Offset)> {
        match &self.role {
            Role::Leader(l) => l.follower_offsets(),
            _ => Vec::new(),
        }
    }

    fn check_invariants(&self) {
        debug_assert!(self.log_start_offset() <= self.high_watermark || self.log_end_offset() == Offset(0));
        assert!(self.high_watermark <= self.log_end_offset(), "{}: high watermark above log end", self.name);
    }

    fn advance_high_watermark(&mut self, to: Offset) {
        if to > self.high_watermark {
            self.high_watermark = to;
            self.check_invariants();
            for w in self.fetch_waiters.drain(..) {
                let _ = w.try_send(());
            }
        }
    }

    /// What this replica itself holds: its durable offset under fsync, else its log end.
    fn local_offset(&self) -> Offset {
        let leo = self.log_end_offset();
        if self.durability == Durability::Fsync {
            self.durable_offset().min(leo)
        } else {
            leo
        }
    }

    /// As leader: the high watermark moves to what the ISR acknowledged, and acks=all
    /// producers below it are answered.
    fn update_high_watermark(&mut self) {
        let Role::Leader(l) = &self.role else { return };
        let hw = l.high_watermark(self.local_offset());
        let in_sync = l.isr_len();
        self.advance_high_watermark(hw);
        let hw = self.high_watermark;
        while self.hw_waiters.front().is_some_and(|w| w.last_offset < hw) {
            let Some(w) = self.hw_waiters.pop_front() else { break };
            let outcome = if in_sync < self.min_insync {
                Err(PartitionError::NotEnoughReplicasAfterAppend(format!(
                    "The ISR of {} shrank to {in_sync}, below min.insync.replicas={}, before the \
                     batch was replicated.",
                    self.name, self.min_insync
                )))
            } else {
                Ok(w.appended)
            };
            let _ = w.reply.send(outcome);
        }
    }

    /// Takes on the role the metadata image gives this broker. A new leader epoch resets the
    /// followers' progress; losing leadership fails what waited for the ISR (the producer
    /// retries against the new leader; idempotence keeps that exactly-once).
    pub fn apply_view(&mut self, view: &PartitionView) {
        let this_view = (view.leader_epoch, view.partition_epoch);
        if self.last_view.is_some_and(|last| this_view < last) {
            // Not asserted: a re-created topic is another replica (the shard replaces it, see
            // `topic_id.rs`), but metadata reset under logs that saw later epochs (a quorum
            // rebuilt from scratch) is survived, not a crash: `take_leader_epoch` keeps the
            // newer epoch (test `a_view_from_the_past_never_lowers_the_leader_epoch`).
            tracing::error!(partition = %self.name, "metadata view {this_view:?} older than {:?}", self.last_view);
        }
        self.last_view = Some(this_view);
        let now = self.clock.monotonic();
        if view.leader == self.me {
            match &mut self.role {
                Role::Leader(l) if l.leader_epoch == view.leader_epoch => l.update(view, now),
                _ => {
                    tracing::info!(
                        partition = %self.name,
                        "leader at epoch {} (ISR {:?}, log end {}, high watermark {})",
                        view.leader_epoch,
                        view.isr,
                        self.log_end_offset(),
                        self.high_watermark
                    );
                    self.epoch_start_offset = self.log_end_offset();
                    if let Err(e) = self.log.begin_leader_epoch(view.leader_epoch) {
                        tracing::error!(partition = %self.name, "recording leader epoch {}: {e}", view.leader_epoch);
                    }
                    self.role = Role::Leader(Leadership::new(self.me, view, now));
                }
            }
            self.take_leader_epoch(view.leader_epoch);
            self.update_high_watermark();
            return;
        }
        let was_leader = self.is_leader();
        self.role = if view.replicas.contains(&self.me) {
            Role::Follower { leader: view.leader }
        } else {
            Role::Offline
        };
        self.take_leader_epoch(view.leader_epoch);
        if was_leader {
            tracing::info!(partition = %self.name, "no longer leader (epoch {}, leader {})", view.leader_epoch, view.leader);
            for w in self.hw_waiters.drain(..) {
                let _ = w.reply.send(Err(PartitionError::NotLeaderOrFollower));
            }
        }
        // Parked fetches answer now (NOT_LEADER_OR_FOLLOWER on their next read).
        for w in self.fetch_waiters.drain(..).chain(self.follower_fetch_waiters.drain(..)) {
            let _ = w.try_send(());
        }
    }

    /// The epoch a view gives, unless this replica already holds a newer one: a view from
    /// the past (out of order), or metadata reset under a log that saw later epochs. Batches
    /// must never be stamped with an epoch older than one already in the log (KIP-101's
    /// truncation relies on it), so the epoch only moves forward.
    fn take_leader_epoch(&mut self, epoch: LeaderEpoch) {
        let before = self.leader_epoch;
        if epoch < before {
            tracing::error!(partition = %self.name, "metadata gives leader epoch {epoch}, older than {before}; keeping {before}");
        } else {
            self.leader_epoch = epoch;
        }
        assert!(self.leader_epoch >= before, "{}: leader epoch went back from {before}", self.name);
    }

    /// Appends client batches (offsets assigned in place) and answers `reply` when the
    /// durability policy and `acks` allow. Returns true when the partition needs a group
    /// commit.
    pub fn append(&mut self, records: Bytes, acks: Acks, reply: AppendReply) -> bool {
        self.append_from(records, None, Origin::Client, acks, reply)
    }

    /// `append` for batches of a given origin: a coordinator's own transactional batches skip
    /// the producer sequence check (see `Log::append_unsequenced`). `landed`: the client's
    /// batch as received into a landing buffer (`records` are its bytes), which the log's
    /// direct stage may take over instead of copying.
    pub fn append_from(
        &mut self,
        records: Bytes,
        landed: Option<riptide_engine::io::direct::Landed>,
        origin: Origin,
        acks: Acks,
        reply: AppendReply,
    ) -> bool {
        let Role::Leader(l) = &self.role else {
            let _ = reply.send(Err(PartitionError::NotLeaderOrFollower));
            return false;
        };
        if acks == Acks::All && l.isr_len() < self.min_insync {
            let e = PartitionError::NotEnoughReplicas(format!(
                "The ISR of {} has {} replica(s), fewer than min.insync.replicas={}.",
                self.name,
                l.isr_len(),
                self.min_insync
            ));
            let _ = reply.send(Err(e));
            return false;
        }
        let bytes_in = records.len() as u64;
        // A buffer uniquely ours gets its offsets assigned in place; one still shared with its
        // request frame is copied once by the engine (into the direct stage, or a kept buffer).
        let leo_before = self.log_end_offset();
        let (epoch, now_ms) = (self.leader_epoch, self.clock.wall_ms());
        let appended = match (origin, &landed, records.try_into_mut()) {
            (Origin::Client, Some(landed), Err(shared)) => {
                drop(shared); // not read while the log assigns offsets in the landed bytes
                self.log.append_landed(landed, epoch, now_ms)
            }
            (Origin::Client, _, Ok(mut owned)) => self.log.append(&mut owned, epoch, now_ms),
            (Origin::Client, _, Err(shared)) => self.log.append_shared(&shared, epoch, now_ms),
            (Origin::Coordinator, _, Ok(mut owned)) => self.log.append_unsequenced(&mut owned, epoch, now_ms),
            (Origin::Coordinator, _, Err(shared)) => {
                self.log.append_unsequenced(&mut bytes::BytesMut::from(&shared[..]), epoch, now_ms)
            }
        };
        if let (Origin::Client, Some(cell)) = (origin, &self.landing_hint) {
            crate::metrics::LandingHints::store(cell, self.log.landing_position());
        }
        self.finish_append(appended, leo_before, bytes_in, acks, reply)
    }

    /// Appends a transaction marker (from the transaction coordinator, through
    /// WriteTxnMarkers or directly), answered like a produce with `acks`.
    pub fn append_marker(&mut self, marker: &TxnMarker, acks: Acks, reply: AppendReply) -> bool {
        if !self.is_leader() {
            let _ = reply.send(Err(PartitionError::NotLeaderOrFollower));
            return false;
        }
        let leo_before = self.log_end_offset();
        let (epoch, now_ms) = (self.leader_epoch, self.clock.wall_ms());
        let appended = self.log.append_marker(marker, epoch, now_ms);
        self.finish_append(appended, leo_before, 0, acks, reply)
    }

    /// After an append: metrics, follower wake-ups, and the answer queued as `acks` and the
    /// durability policy say. Returns true when the partition needs a group commit.
    fn finish_append(
        &mut self,
        appended: Result<riptide_engine::AppendInfo, riptide_engine::LogError>,
        leo_before: Offset,
        bytes_in: u64,
        acks: Acks,
        reply: AppendReply,
    ) -> bool {
        let info = match appended {
            Ok(info) => info,
            Err(e) => {
                let e = PartitionError::from(e);
                if e.is_storage() || self.log.is_failed() {
                    tracing::error!(partition = %self.name, "append failed: {e}");
                }
                let _ = reply.send(Err(e));
                return false;
            }
        };
        let (base_offset, last_offset) = (info.base_offset, info.last_offset);
        if !info.duplicate {
            assert_eq!(base_offset, leo_before, "{}: an append left a gap or overlapped the log", self.name);
            assert_eq!(
                self.log_end_offset(),
                last_offset.plus(1),
                "{}: the log end is not past the append's last offset",
                self.name
            );
            self.metrics.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
            self.traffic.bytes_in += bytes_in;
            self.metrics.appends.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .messages_in
                .fetch_add(info.base_offset.count_to(info.last_offset.plus(1)) as u64, Ordering::Relaxed);
            for w in self.follower_fetch_waiters.drain(..) {
                let _ = w.try_send(());
            }
        }
        self.leo_gauge.store(self.log.log_end_offset().0, Ordering::Relaxed);
        let appended = Appended {
            base_offset,
            log_append_time_ms: info.log_append_time_ms,
            log_start_offset: info.log_start_offset,
        };
        let waiter = DurableWaiter { last_offset, appended, reply };
        match acks {
            Acks::None => {
                let _ = waiter.reply.send(Ok(appended));
            }
            Acks::All => self.hw_waiters.push_back(waiter),
            Acks::Leader if self.durability == Durability::Fsync && last_offset >= self.durable_offset() => {
                debug_assert!(self.durable_waiters.back().is_none_or(|w| w.last_offset <= last_offset));
                self.durable_waiters.push_back(waiter);
            }
            Acks::Leader => {
                let _ = waiter.reply.send(Ok(appended));
            }
        }
        self.update_high_watermark();
        if self.durability != Durability::Fsync {
            // A roll queued its closed segment for a group commit: run one, or they pile up.
            self.dirty |= self.log.has_pending_sync();
            return self.dirty;
        }
        self.dirty |= self.log.durable_offset() < self.log.log_end_offset() || self.log.has_pending_sync();
        self.dirty
    }

    /// The high watermark, capped by the first offset of the oldest open transaction: what a
    /// read_committed consumer may read below.
    pub fn last_stable_offset(&self) -> Offset {
        let hw = self.high_watermark;
        self.log.first_unstable_offset().map_or(hw, |first| first.min(hw))
    }

    /// Open transactions as (producer id, first offset), oldest first.
    pub fn open_transactions(&self) -> Vec<(i64, Offset)> {
        self.log.open_transactions()
    }

    /// The producers with state here (leader only: DescribeProducers asks the leader).
    pub fn producers(&self) -> Result<Vec<ProducerSummary>, PartitionError> {
        if !self.is_leader() {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        Ok(self.log.producers())
    }

    /// Whole batches from the one holding `offset`, below the high watermark (below the last
    /// stable offset for `read_committed`, with the aborted transactions of the range). With
    /// nothing to return, `notify` (if given) is kept and signalled when the high watermark
    /// next moves (the last stable offset only moves with it or with a marker, which moves it).
    pub fn read(
        &mut self,
        offset: Offset,
        max_bytes: u32,
        min_one: bool,
        notify: Option<flume::Sender<()>>,
        read_committed: bool,
    ) -> Result<ReadResult, PartitionError> {
        if !self.is_leader() {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        let hw = self.high_watermark;
        let lso = self.last_stable_offset();
        let limit = if read_committed { lso } else { hw };
        let mut result = ReadResult {
            high_watermark: hw,
            last_stable_offset: lso,
            aborted: Vec::new(),
            log_start_offset: self.log_start_offset(),
            slice: None,
            diverging: None,
        };
        // Between the last stable offset and the high watermark a read_committed fetch is
        // valid and waits; past the high watermark the log answers OFFSET_OUT_OF_RANGE.
        let unstable = read_committed && offset > limit && offset <= hw;
        if offset != limit && !unstable {
            let slice = self.log.read(offset, max_bytes, limit, min_one)?;
            if slice.len > 0 {
                self.traffic.bytes_out += u64::from(slice.len);
                if read_committed {
                    // The slice's end is not always known without reading it: the limit bounds it.
                    let end = if slice.end_offset.is_none() { limit } else { slice.end_offset };
                    result.aborted = self.log.aborted_transactions(slice.base_offset.min(offset), end);
                }
                result.slice = Some(slice);
            }
        }
        if result.slice.is_none() {
            park(&mut self.fetch_waiters, notify);
        }
        Ok(result)
    }

    /// A follower's fetch (the leader side of replication): the fetch offset acknowledges what
    /// the follower holds (the high watermark may move, acks=all producers may be answered),
    /// then batches up to the log end (not the high watermark) are returned. A follower whose
    /// last epoch does not match this log is told where they diverge instead.
    pub fn read_for_follower(
        &mut self,
        fetch: ReplicaFetch,
        offset: Offset,
        max_bytes: u32,
        notify: Option<flume::Sender<()>>,
    ) -> Result<ReadResult, PartitionError> {
        if !self.is_leader() {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        self.check_leader_epoch(fetch.current_leader_epoch)?;
        let leo = self.log_end_offset();
        let log_start = self.log_start_offset();
        let mut result = ReadResult {
            high_watermark: self.high_watermark,
            last_stable_offset: self.high_watermark,
            aborted: Vec::new(),
            log_start_offset: log_start,
            slice: None,
            diverging: None,
        };
        let Role::Leader(l) = &mut self.role else { return Err(PartitionError::NotLeaderOrFollower) };
        if !l.is_replica(fetch.replica_id) {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        if fetch.last_fetched_epoch.is_known() {
            let asked = fetch.last_fetched_epoch;
            result.diverging = match self.log.end_offset_for_epoch(asked) {
                Some(known) if known.epoch == asked && known.end_offset >= offset => None,
                Some(known) => Some(known),
                None => Some(EpochEndOffset { epoch: LeaderEpoch::UNKNOWN, end_offset: leo }),
            };
            if result.diverging.is_some() {
                return Ok(result);
            }
        }
        if offset > leo {
            return Err(PartitionError::from(riptide_engine::LogError::OffsetOutOfRange {
                offset,
                log_start_offset: log_start,
                log_end_offset: leo,
            }));
        }
        if offset < log_start {
            // Below what this leader keeps: the answer's log start tells the follower where
            // to restart (a new replica of a partition whose oldest segments are deleted).
            return Ok(result);
        }
        l.on_fetch(fetch.replica_id, offset, leo, self.clock.monotonic());
        l.on_log_start(fetch.replica_id, fetch.log_start_offset);
        self.update_high_watermark();
        result.high_watermark = self.high_watermark;
        if offset < leo {
            let slice = self.log.read(offset, max_bytes, leo, true)?;
            if slice.len > 0 {
                self.metrics.replication_bytes_out.fetch_add(u64::from(slice.len), Ordering::Relaxed);
                result.slice = Some(slice);
            }
        }
        if result.slice.is_none() {
            park(&mut self.follower_fetch_waiters, notify);
        }
        Ok(result)
    }

    /// A request's idea of the current leader epoch against this replica's: an older one is
    /// fenced, a newer one unknown (this replica's metadata lags); not given is accepted.
    fn check_leader_epoch(&self, asked: LeaderEpoch) -> Result<(), PartitionError> {
        if !asked.is_known() || asked == self.leader_epoch {
            return Ok(());
        }
        let msg = format!(
            "{}: request for leader epoch {asked}, this replica is at {}",
            self.name, self.leader_epoch
        );
        Err(if asked < self.leader_epoch {
            PartitionError::FencedLeaderEpoch(msg)
        } else {
            PartitionError::UnknownLeaderEpoch(msg)
        })
    }

    /// The follower's position: where it fetches from next.
    pub fn follower_position(&self) -> FollowerPosition {
        let leo = self.log.log_end_offset();
        // The epoch of the last batch: an epoch entry starting at the log end has none.
        let last_epoch = self
            .log
            .leader_epochs()
            .iter()
            .rev()
            .find(|(_, start)| *start < leo)
            .map_or(LeaderEpoch::UNKNOWN, |(e, _)| *e);
        FollowerPosition { log_end_offset: leo, last_epoch, log_start_offset: self.log_start_offset() }
    }

    fn check_follows(&self, leader_epoch: LeaderEpoch) -> Result<(), PartitionError> {
        if !matches!(self.role, Role::Follower { .. }) {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        if leader_epoch != self.leader_epoch {
            return Err(PartitionError::FencedLeaderEpoch(format!(
                "{}: follows epoch {}, not {leader_epoch}",
                self.name, self.leader_epoch
            )));
        }
        Ok(())
    }

    /// The follower side: appends the leader's batches as they are, takes the leader's high
    /// watermark (as far as this log reaches) and log start, and answers `reply` with the new position
    /// once the batches are held as the durability policy says. Returns true when a group
    /// commit is needed.
    pub fn append_as_follower(
        &mut self,
        leader_epoch: LeaderEpoch,
        records: &[u8],
        (leader_hw, leader_log_start): (Offset, Offset),
        reply: FollowReply,
    ) -> bool {
        if let Err(e) = self.check_follows(leader_epoch) {
            let _ = reply.send(Err(e));
            return false;
        }
        let leo_before = self.log_end_offset();
        let appended = if records.is_empty() {
            Ok(None)
        } else {
            self.log.append_replicated(records, self.clock.wall_ms()).map_err(PartitionError::from)
        };
        let info = match appended {
            Ok(info) => info,
            Err(e) => {
                tracing::error!(
                    partition = %self.name,
                    "follower append failed, not acknowledging (the leader drops this replica from the ISR): {e}"
                );
                self.metrics.replica_append_failures.fetch_add(1, Ordering::Relaxed);
                let _ = reply.send(Err(e));
                return false;
            }
        };
        if let Some(info) = info {
            self.metrics.replication_bytes_in.fetch_add(records.len() as u64, Ordering::Relaxed);
            self.leo_gauge.store(self.log.log_end_offset().0, Ordering::Relaxed);
            assert!(
                info.base_offset >= leo_before && info.last_offset < self.log_end_offset(),
                "{}: a replicated append at {}..={} from log end {leo_before} went back",
                self.name,
                info.base_offset,
                info.last_offset
            );
        }
        let leo = self.log_end_offset();
        self.advance_high_watermark(leader_hw.min(leo));
        // Before the reply: the position it carries reports the new log start to the leader.
        self.follow_log_start(leader_log_start);
        #[cfg(feature = "sim")]
        let planted = self.plant_early_follower_ack;
        #[cfg(not(feature = "sim"))]
        let planted = false;
        if self.durability == Durability::Fsync && self.durable_offset() < leo {
            if planted {
                let _ = reply.send(Ok(self.follower_position()));
            } else {
                self.replica_waiters.push_back(ReplicaWaiter { last_offset: leo.prev(), reply });
            }
            self.dirty = true;
            return true;
        }
        let _ = reply.send(Ok(self.follower_position()));
        self.dirty |= self.log.has_pending_sync();
        self.dirty
    }

    /// A follower takes its leader's log start (moved by DeleteRecords or retention there), as
    /// Kafka's `maybeIncrementLogStartOffset(leaderLogStartOffset)`, never past its own high
    /// watermark. A failure is logged; the log is poisoned by it and the partition goes offline.
    fn follow_log_start(&mut self, leader_log_start: Offset) {
        let start = leader_log_start.min(self.high_watermark);
        if self.is_leader() || start <= self.log_start_offset() {
            return;
        }
        if let Err(e) = self.log.delete_records(start) {
            tracing::error!(partition = %self.name, "taking the leader's log start {}: {e}", start.0);
        }
    }

    /// The follower side of a divergence: removes this log's tail from where the leader's
    /// history differs (`epoch`, `end_offset` from the leader), as KIP-595 says: at the leader's
    /// end offset for that epoch, or earlier where this log's own epoch ends first.
    pub fn truncate_diverged(
        &mut self,
        leader_epoch: LeaderEpoch,
        diverging: EpochEndOffset,
    ) -> Result<FollowerPosition, PartitionError> {
        self.check_follows(leader_epoch)?;
        let EpochEndOffset { epoch, end_offset } = diverging;
        let own_end = if epoch.is_known() {
            self.log.end_offset_for_epoch(epoch).map_or(end_offset, |known| known.end_offset)
        } else {
            end_offset
        };
        let cut = end_offset.min(own_end).min(self.log_end_offset());
        tracing::warn!(
            partition = %self.name,
            "log diverged from the leader's at epoch {epoch}: truncating to {cut} (log end {}, high watermark {})",
            self.log.log_end_offset(),
            self.high_watermark
        );
        self.truncate_to(cut)?;
        Ok(self.follower_position())
    }

    /// The follower side of a leader whose log starts past this log's end: restart empty at
    /// the leader's log start (Kafka's truncateFullyAndStartAt).
    pub fn restart_at(
        &mut self,
        leader_epoch: LeaderEpoch,
        offset: Offset,
    ) -> Result<FollowerPosition, PartitionError> {
        self.check_follows(leader_epoch)?;
        if offset > self.log_end_offset() {
            tracing::warn!(
                partition = %self.name,
                "the leader's log starts at {offset}, past this log's end {}: restarting there",
                self.log.log_end_offset()
            );
            self.log.start_at(offset)?;
            assert!(offset > self.high_watermark, "{}: a restart moved the high watermark back", self.name);
            self.high_watermark = offset;
            self.leo_gauge.store(offset.0, Ordering::Relaxed);
            self.check_invariants();
        }
        Ok(self.follower_position())
    }

    /// The ISR change to ask the controller for, if one is due (leader only).
    pub fn isr_change(
        &mut self,
        lag_max: Duration,
        eligible: &dyn Fn(BrokerId) -> bool,
    ) -> Option<IsrChange> {
        let hw = self.high_watermark;
        let epoch_start = self.epoch_start_offset;
        match &mut self.role {
            Role::Leader(l) => l.isr_change(self.clock.monotonic(), lag_max, hw, epoch_start, eligible),
            _ => None,
        }
    }

    /// The controller refused an ISR change (or never answered): retried on the next tick.
    pub fn isr_change_failed(&mut self) {
        if let Role::Leader(l) = &mut self.role {
            l.isr_change_failed();
        }
    }

    /// Kafka's `deleteRecordsOnLeader`: the log start moves to `offset` (-1: the high
    /// watermark), never past the high watermark (OFFSET_OUT_OF_RANGE), and only where
    /// `cleanup.policy` has delete (POLICY_VIOLATION). Answers the offset asked (resolved) and
    /// the low watermark: the smallest log start of this leader and its followers on `live`
    /// brokers (they take the leader's log start from their next fetch answers and report
    /// theirs in their next fetch). Asking again for an offset already passed changes nothing.
    pub fn delete_records(
        &mut self,
        offset: Offset,
        live: &[BrokerId],
    ) -> Result<RecordsDeleted, PartitionError> {
        if !self.is_leader() {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        if !self.cleanup.delete {
            return Err(PartitionError::PolicyViolation(format!(
                "Records of partition {} can not be deleted due to the configured policy",
                self.name
            )));
        }
        let hw = self.high_watermark;
        let offset = if offset == Offset::NONE { hw } else { offset };
        if offset.0 < 0 || offset > hw {
            return Err(PartitionError::from(riptide_engine::LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: hw,
            }));
        }
        let start = self.log.delete_records(offset)?;
        let Role::Leader(l) = &self.role else { return Err(PartitionError::NotLeaderOrFollower) };
        Ok(RecordsDeleted { offset, low_watermark: l.low_watermark(start, live) })
    }

    pub fn list_offset(&self, spec: OffsetSpec) -> Result<ListedOffset, PartitionError> {
        if !self.is_leader() {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        let hw = self.high_watermark;
        let leader_epoch = self.leader_epoch;
        let found = |offset: Offset, timestamp: i64| ListedOffset { offset, timestamp, leader_epoch };
        let none = found(Offset::NONE, -1);
        let fetchable = |committed: bool| if committed { self.last_stable_offset() } else { hw };
        let below = |end: Offset| {
            move |at: TimestampAndOffset| {
                if at.offset < end {
                    found(at.offset, at.timestamp_ms)
                } else {
                    none
                }
            }
        };
        Ok(match spec {
            OffsetSpec::Latest => found(hw, -1),
            OffsetSpec::LastStable => found(self.last_stable_offset(), -1),
            OffsetSpec::LogEnd => found(self.log_end_offset(), -1),
            OffsetSpec::Earliest => found(self.log_start_offset(), -1),
            OffsetSpec::MaxTimestamp { committed } => {
                self.log.max_timestamp().map_or(none, below(fetchable(committed)))
            }
            OffsetSpec::AtOrAfter { timestamp, committed } => {
                self.log.offset_for_timestamp(timestamp)?.map_or(none, below(fetchable(committed)))
            }
        })
    }

    /// Kafka's OffsetForLeaderEpoch on the leader: where the largest epoch at or below
    /// `epoch` ends, or undefined when this log knows none.
    pub fn end_offset_for_epoch(
        &self,
        current_leader_epoch: LeaderEpoch,
        epoch: LeaderEpoch,
    ) -> Result<EpochEndOffset, PartitionError> {
        if !self.is_leader() {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        self.check_leader_epoch(current_leader_epoch)?;
        if epoch == self.leader_epoch {
            return Ok(EpochEndOffset { epoch, end_offset: self.log_end_offset() });
        }
        Ok(self.log.end_offset_for_epoch(epoch).unwrap_or(EpochEndOffset::UNDEFINED))
    }

    /// Removes every batch at or after `offset`: only for a diverged tail
    /// (`truncate_diverged`), the one place the log end and the high watermark move back. The
    /// high watermark follows the log end down.
    fn truncate_to(&mut self, offset: Offset) -> Result<(), PartitionError> {
        assert!(!offset.is_none(), "{}: truncation to {offset}", self.name);
        debug_assert!(matches!(self.role, Role::Follower { .. }), "{}: a leader truncates", self.name);
        self.log.truncate_to(offset)?;
        assert!(
            self.log_end_offset() <= offset.max(self.log_start_offset()),
            "{}: truncation kept offsets past {offset}",
            self.name
        );
        self.high_watermark = self.high_watermark.min(self.log_end_offset());
        self.leo_gauge.store(self.log.log_end_offset().0, Ordering::Relaxed);
        self.check_invariants();
        Ok(())
    }

    /// Starts a group commit: the files to fdatasync, or `None` when nothing needs it (then
    /// every waiter the log already covers is answered). Clears the dirty mark.
    pub fn take_sync_target(&mut self) -> Option<SyncTarget> {
        self.dirty = false;
        let target = self.log.sync_target();
        if target.is_none() {
            self.on_durable();
        }
        target
    }

    /// Ends a group commit started by `take_sync_target`. Returns the recovery-point
    /// checkpoint to write off the shard, if one is due (report it with `checkpoint_done`).
    pub fn complete_sync(&mut self, up_to: Offset, result: std::io::Result<()>) -> Option<CheckpointWrite> {
        match result {
            Ok(()) => match self.log.mark_durable(up_to) {
                Ok(write) => {
                    self.on_durable();
                    return write;
                }
                Err(e) => {
                    tracing::error!(partition = %self.name, "checkpoint failed, partition offline: {e}");
                    self.fail_waiters(PartitionError::from(e));
                }
            },
            Err(e) => {
                tracing::error!(partition = %self.name, "fdatasync failed, partition offline: {e}");
                let err = PartitionError::Storage(e.to_string());
                self.log.mark_failed(e);
                self.fail_waiters(err);
            }
        }
        None
    }

    /// The outcome of a checkpoint write `complete_sync` handed out.
    pub fn checkpoint_done(&mut self, write: &CheckpointWrite, result: std::io::Result<()>) {
        if let Err(e) = self.log.checkpoint_done(write, result) {
            tracing::error!(partition = %self.name, "recovery-point checkpoint failed, partition offline: {e}");
            self.fail_waiters(PartitionError::from(e));
        }
    }

    /// After a group commit: acks=1 waiters, follower appends and (on the leader, under
    /// `fsync`) the high watermark move up to the durable offset.
    /// The replication simulation's group commit: blocking, through the log's own I/O (the
    /// broker's flusher syncs `take_sync_target`'s files on its ring instead).
    #[cfg(feature = "sim")]
    pub fn sync_blocking(&mut self) {
        self.dirty = false;
        match self.log.sync() {
            Ok(_) => self.on_durable(),
            Err(e) => {
                tracing::error!(partition = %self.name, "group commit failed, partition offline: {e}");
                self.fail_waiters(PartitionError::from(e));
            }
        }
    }

    /// The bytes a read at `offset` covers (up to `upper`), read through the log's own I/O:
    /// a simulated log's `ReadSlice` names a placeholder file, not its bytes.
    #[cfg(feature = "sim")]
    pub fn read_bytes(
        &self,
        offset: Offset,
        max_bytes: u32,
        upper: Offset,
    ) -> Result<Vec<u8>, PartitionError> {
        Ok(self.log.read_bytes(offset, max_bytes, upper, true)?)
    }

    /// The simulation's planted bug (to show its checker catches it): a follower answers its
    /// appends at once, before they are fsynced, so its next fetch acknowledges them early.
    #[cfg(feature = "sim")]
    pub fn plant_early_follower_ack(&mut self, on: bool) {
        self.plant_early_follower_ack = on;
    }

    fn on_durable(&mut self) {
        let durable = self.durable_offset();
        while self.durable_waiters.front().is_some_and(|w| w.last_offset < durable) {
            if let Some(w) = self.durable_waiters.pop_front() {
                let _ = w.reply.send(Ok(w.appended));
            }
        }
        if self.replica_waiters.front().is_some_and(|w| w.last_offset < durable) {
            let position = self.follower_position();
            while self.replica_waiters.front().is_some_and(|w| w.last_offset < durable) {
                if let Some(w) = self.replica_waiters.pop_front() {
                    let _ = w.reply.send(Ok(position));
                }
            }
        }
        self.update_high_watermark();
    }

    /// The log can no longer be written: every pending acknowledgement fails.
    fn fail_waiters(&mut self, error: PartitionError) {
        for w in self.durable_waiters.drain(..).chain(self.hw_waiters.drain(..)) {
            let _ = w.reply.send(Err(error.clone()));
        }
        for w in self.replica_waiters.drain(..) {
            let _ = w.reply.send(Err(error.clone()));
        }
    }

    /// The cell this partition keeps its append position in for landing buffers (see
    /// `metrics::LandingHints`).
    pub fn set_landing_hint(&mut self, cell: Arc<std::sync::atomic::AtomicU64>) {
        crate::metrics::LandingHints::store(&cell, self.log.landing_position());
        self.landing_hint = Some(cell);
    }

    /// New topic configs (the I/O backend chosen at open stays).
    /// Seals the batches appended from now on (encryption at rest), or stops sealing.
    pub fn set_sealer(&mut self, sealer: Option<Arc<dyn riptide_engine::BatchSealer>>) {
        self.log.set_sealer(sealer);
    }

    pub fn reconfigure(&mut self, cfg: &EffectiveTopicConfig) {
        if let Err(e) = self.log.set_config(cfg.log.clone()) {
            tracing::error!("partition {}: applying its new config failed: {e}", self.name);
        }
        self.durability = cfg.durability;
        self.cleanup = Cleanup::of(cfg);
        self.min_insync = cfg.min_insync_replicas.max(1);
        self.update_high_watermark();
    }

    /// Time-based rolling and retention (unless `retain` is false), as `cleanup.policy` says.
    /// Retention's file work (checkpoint, unlinks) is returned for the caller to run off the
    /// shard; report it with `retention_done`. Compaction is `compaction_job`.
    pub fn housekeeping(&mut self, now: i64, retain: bool) -> Option<RetentionWrite> {
        if self.log.is_failed() {
            return None;
        }
        let name = &self.name;
        let expired = self.log.expire_producers(now);
        if expired > 0 {
            tracing::info!(partition = %name, "{expired} idle producer id(s) expired");
        }
        if let Err(e) = self.log.maybe_roll(now) {
            tracing::error!(partition = %name, "roll failed: {e}");
        }
        let mut retention = None;
        if retain && self.cleanup.delete {
            match self.log.apply_retention_deferred(now) {
                Ok((0, _)) => {}
                Ok((n, write)) => {
                    tracing::info!(
                        partition = %name,
                        "retention deleted {n} segment(s); log start offset {}",
                        self.log.log_start_offset()
                    );
                    retention = write;
                }
                Err(e) => tracing::error!(partition = %name, "retention failed: {e}"),
            }
        }
        retention
    }

    /// A compaction pass to run off the shard, when `cleanup.policy` has `compact` and the log
    /// changed since the last one (report it with `compaction_done`).
    pub fn compaction_job(&mut self, now: i64) -> Option<CompactionJob> {
        let shape = (self.log.segment_count(), self.log_end_offset());
        if self.log.is_failed() || !self.cleanup.compact || shape.0 < 2 || self.compacted_shape == Some(shape)
        {
            return None;
        }
        let job = self.log.compaction_job(now, self.cleanup.delete_retention_ms)?;
        self.compacted_shape = Some(shape);
        Some(job)
    }

    /// The outcome of a `compaction_job`; a failure takes the partition offline. Returns the
    /// segments it replaced, to close off the shard.
    pub fn compaction_done(&mut self, done: CompactionDone) -> ReplacedSegments {
        let name = &self.name;
        match self.log.compaction_done(done) {
            Ok(s) if s.segments_rewritten > 0 => tracing::info!(
                partition = %name,
                "compacted {} segment(s), {} record(s) removed, {} -> {} bytes",
                s.segments_rewritten,
                s.records_removed,
                s.bytes_before,
                s.bytes_after
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(partition = %name, "compaction failed, partition offline: {e}");
                self.fail_waiters(PartitionError::from(e));
            }
        }
        self.log.take_replaced_segments()
    }

    /// The creation of the next segment's files ahead of its roll, to run off the shard, when
    /// the log wants one (report it with `segment_prepared`).
    pub fn prepare_segment(&mut self) -> Option<SegmentPrep> {
        self.log.prepare_segment()
    }

    /// The outcome of a `prepare_segment`. A failure only means the next roll creates its
    /// files on the shard, as without a spare.
    pub fn segment_prepared(&mut self, prepared: PreparedSegment) {
        if let Err(e) = self.log.segment_prepared(prepared) {
            tracing::warn!(partition = %self.name, "{e}; the next roll creates its segment on the shard");
        }
    }

    /// The outcome of a retention write `housekeeping` handed out.
    pub fn retention_done(&mut self, result: std::io::Result<()>) {
        if let Err(e) = self.log.retention_done(result) {
            tracing::error!(partition = %self.name, "retention write failed, partition offline: {e}");
            self.fail_waiters(PartitionError::from(e));
        }
    }

    /// Clean shutdown: fsync and close the log, answering what waited for durability.
    pub fn close(mut self) {
        match self.log.sync() {
            Ok(_) => self.on_durable(),
            Err(e) => self.fail_waiters(PartitionError::from(e)),
        }
        let name = std::mem::take(&mut self.name);
        if let Err(e) = self.log.close() {
            tracing::error!(partition = %name, "close failed: {e}");
        }
    }

    /// Deletes the partition (its topic was deleted, or it moved off this broker); waiters
    /// get UNKNOWN_TOPIC. The directory is renamed out of the way here; removing its files is
    /// returned for the caller to run off the shard.
    pub fn delete(mut self) -> Option<DirRemoval> {
        self.fail_waiters(PartitionError::UnknownTopicOrPartition);
        let name = self.name;
        self.log
            .delete_deferred()
            .inspect_err(|e| tracing::error!(partition = %name, "delete failed: {e}"))
            .ok()
    }
}

/// Keeps a long-poll fetch's signal, sweeping disconnected ones when many pile up.
fn park(waiters: &mut Vec<flume::Sender<()>>, notify: Option<flume::Sender<()>>) {
    if let Some(n) = notify {
        if waiters.len() >= FETCH_WAITERS_SWEEP {
            waiters.retain(|w| !w.is_disconnected());
        }
        waiters.push(n);
    }
}

impl Cleanup {
    fn of(cfg: &EffectiveTopicConfig) -> Cleanup {
        Cleanup {
            delete: cfg.cleanup_delete,
            compact: cfg.cleanup_compact,
            delete_retention_ms: cfg.delete_retention_ms,
        }
    }
}
