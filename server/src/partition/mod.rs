//! One partition on its owner shard: the log, the one high watermark, the leader epoch, and the
//! produce and fetch waiters. This is where replica state (ISR, follower offsets) will live.
//!
//! Owned by exactly one shard (ARCHITECTURE.md §1), which is the only caller of every method,
//! so nothing here locks. Operations take and return typed values; failures are
//! [`PartitionError`], mapped to Kafka codes only by the API layer.
//!
//! Durability contract (per topic `durability.policy`):
//! - `fsync` (default): a Produce with acks=1/all is answered only after the group-commit
//!   fdatasync covering its batch; the high watermark (what consumers see) is the durable offset.
//! - `replicated` / `none`: answered after the write; the high watermark is the log end.
//!
//! Invariants (asserted): log start ≤ high watermark ≤ log end; the high watermark and the
//! leader epoch never go backwards except by an explicit truncation; durable waiters are
//! queued in offset order and each is answered exactly once (its sender is consumed).

pub mod error;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use riptide_engine::{CheckpointWrite, Log, ReadSlice, RetentionWrite, SyncTarget};

use crate::catalog::EffectiveTopicConfig;
use crate::clock::now_ms;
use crate::config::Durability;
use crate::metrics::Metrics;
pub use error::PartitionError;

/// Fetch waiters kept per partition before disconnected ones are swept.
const FETCH_WAITERS_SWEEP: usize = 4096;

/// A partition leader epoch (Kafka's `partitionLeaderEpoch`, stamped on every batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LeaderEpoch(pub i32);

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

/// A successful append.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    /// Broker time stamped on the batch; -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

pub type AppendResult = Result<Appended, PartitionError>;
/// Where the owner shard sends an append's answer (once, when the durability policy allows).
pub type AppendReply = flume::Sender<AppendResult>;

/// What a read found: whole batches below the high watermark, as a file range.
#[derive(Debug, Default)]
pub struct ReadResult {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub slice: Option<ReadSlice>,
}

/// Which offset ListOffsets asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// -1 latest (the high watermark), and -5 latest-tiered (nothing is tiered).
    Latest,
    /// -2 earliest, and -4 earliest-local.
    Earliest,
    /// -3: the batch with the largest timestamp (KIP-734).
    MaxTimestamp,
    /// The first offset whose timestamp is at or after this one.
    AtOrAfter(i64),
}

impl OffsetSpec {
    pub fn from_wire(timestamp: i64) -> Option<OffsetSpec> {
        match timestamp {
            -1 | -5 => Some(OffsetSpec::Latest),
            -2 | -4 => Some(OffsetSpec::Earliest),
            -3 => Some(OffsetSpec::MaxTimestamp),
            ts if ts >= 0 => Some(OffsetSpec::AtOrAfter(ts)),
            _ => None,
        }
    }
}

/// ListOffsets' answer; offset and timestamp are -1 when nothing matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: LeaderEpoch,
}

struct DurableWaiter {
    last_offset: i64,
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

pub struct Partition {
    name: String,
    log: Log,
    durability: Durability,
    /// What consumers may read: offsets below it. See the module header.
    high_watermark: i64,
    leader_epoch: LeaderEpoch,
    durable_waiters: VecDeque<DurableWaiter>,
    fetch_waiters: Vec<flume::Sender<()>>,
    /// Appends not yet covered by a group commit.
    dirty: bool,
    cleanup: Cleanup,
    /// (segments, log end) at the last compaction pass: an unchanged log is not compacted again.
    compacted_shape: Option<(usize, i64)>,
    metrics: Arc<Metrics>,
    leo_gauge: Arc<AtomicI64>,
}

impl Partition {
    /// Opens (recovering if needed) the log in `dir`.
    pub fn open(
        name: String,
        dir: &std::path::Path,
        cfg: &EffectiveTopicConfig,
        metrics: Arc<Metrics>,
        leo_gauge: Arc<AtomicI64>,
    ) -> Result<Partition, PartitionError> {
        let log = Log::open(dir, cfg.log.clone(), now_ms())?;
        let leader_epoch = LeaderEpoch(log.leader_epochs().last().map_or(0, |(epoch, _)| *epoch));
        leo_gauge.store(log.log_end_offset(), Ordering::Relaxed);
        Ok(Partition {
            name,
            // Everything recovered was fsynced or is about to be served as written: the policy's
            // high watermark after recovery is the log end either way.
            high_watermark: log.log_end_offset(),
            log,
            durability: cfg.durability,
            leader_epoch,
            durable_waiters: VecDeque::new(),
            fetch_waiters: Vec::new(),
            dirty: false,
            cleanup: Cleanup::of(cfg),
            compacted_shape: None,
            metrics,
            leo_gauge,
        })
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    fn check_invariants(&self) {
        debug_assert!(self.log.log_start_offset() <= self.high_watermark || self.log.log_end_offset() == 0);
        assert!(
            self.high_watermark <= self.log.log_end_offset(),
            "{}: high watermark above log end",
            self.name
        );
    }

    fn advance_high_watermark(&mut self, to: i64) {
        if to > self.high_watermark {
            self.high_watermark = to;
            self.check_invariants();
            for w in self.fetch_waiters.drain(..) {
                let _ = w.try_send(());
            }
        }
    }

    /// Appends client batches (offsets assigned in place) and answers `reply` when the
    /// durability policy allows: at once, or after the group commit that covers them.
    /// Returns true when the partition needs a group commit.
    pub fn append(&mut self, records: Bytes, acks: Acks, reply: AppendReply) -> bool {
        let bytes_in = records.len() as u64;
        // The request buffer is usually uniquely ours, so offsets are assigned in place in it;
        // otherwise one copy.
        let mut records = match records.try_into_mut() {
            Ok(m) => m,
            Err(shared) => BytesMut::from(&shared[..]),
        };
        let leo_before = self.log.log_end_offset();
        let info = match self.log.append(&mut records, self.leader_epoch.0, now_ms()) {
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
        if !info.duplicate {
            assert!(info.base_offset >= leo_before, "{}: offsets went backwards", self.name);
            self.metrics.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
            self.metrics.appends.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .messages_in
                .fetch_add((info.last_offset - info.base_offset + 1) as u64, Ordering::Relaxed);
        }
        self.leo_gauge.store(self.log.log_end_offset(), Ordering::Relaxed);
        let appended = Appended {
            base_offset: info.base_offset,
            log_append_time_ms: info.log_append_time_ms,
            log_start_offset: info.log_start_offset,
        };
        if self.durability != Durability::Fsync {
            let leo = self.log.log_end_offset();
            self.advance_high_watermark(leo);
            let _ = reply.send(Ok(appended));
            // A roll queued its closed segment for a group commit: run one, or they pile up.
            self.dirty |= self.log.has_pending_sync();
            return self.dirty;
        }
        if info.last_offset < self.log.durable_offset() {
            let _ = reply.send(Ok(appended)); // a duplicate of an already durable batch
            return false;
        }
        if acks == Acks::None {
            let _ = reply.send(Ok(appended));
        } else {
            debug_assert!(self.durable_waiters.back().is_none_or(|w| w.last_offset <= info.last_offset));
            self.durable_waiters.push_back(DurableWaiter { last_offset: info.last_offset, appended, reply });
        }
        self.dirty = true;
        true
    }

    /// Whole batches from the one holding `offset`, below the high watermark. With nothing to
    /// return, `notify` (if given) is kept and signalled when the high watermark next moves.
    pub fn read(
        &mut self,
        offset: i64,
        max_bytes: u32,
        min_one: bool,
        notify: Option<flume::Sender<()>>,
    ) -> Result<ReadResult, PartitionError> {
        let hw = self.high_watermark;
        let mut result =
            ReadResult { high_watermark: hw, log_start_offset: self.log.log_start_offset(), slice: None };
        if offset != hw {
            let slice = self.log.read(offset, max_bytes, hw, min_one)?;
            if slice.len > 0 {
                result.slice = Some(slice);
            }
        }
        if result.slice.is_none() {
            if let Some(n) = notify {
                if self.fetch_waiters.len() >= FETCH_WAITERS_SWEEP {
                    self.fetch_waiters.retain(|w| !w.is_disconnected());
                }
                self.fetch_waiters.push(n);
            }
        }
        Ok(result)
    }

    pub fn list_offset(&self, spec: OffsetSpec) -> Result<ListedOffset, PartitionError> {
        let hw = self.high_watermark;
        let leader_epoch = self.leader_epoch;
        let found = |offset: i64, timestamp: i64| ListedOffset { offset, timestamp, leader_epoch };
        let below_hw = |(ts, off): (i64, i64)| if off < hw { found(off, ts) } else { found(-1, -1) };
        Ok(match spec {
            OffsetSpec::Latest => found(hw, -1),
            OffsetSpec::Earliest => found(self.log.log_start_offset(), -1),
            OffsetSpec::MaxTimestamp => self.log.max_timestamp().map_or(found(-1, -1), below_hw),
            OffsetSpec::AtOrAfter(ts) => {
                self.log.offset_for_timestamp(ts)?.map_or(found(-1, -1), |(off, t)| below_hw((t, off)))
            }
        })
    }

    /// Removes every batch at or after `offset` (replication: a diverged tail). The high
    /// watermark follows the log end down.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), PartitionError> {
        self.log.truncate_to(offset)?;
        self.high_watermark = self.high_watermark.min(self.log.log_end_offset());
        self.leo_gauge.store(self.log.log_end_offset(), Ordering::Relaxed);
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
    pub fn complete_sync(&mut self, up_to: i64, result: std::io::Result<()>) -> Option<CheckpointWrite> {
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

    /// After a group commit: the high watermark (under `fsync`) and the waiters move up to the
    /// durable offset.
    fn on_durable(&mut self) {
        let durable = self.log.durable_offset();
        if self.durability == Durability::Fsync {
            self.advance_high_watermark(durable.min(self.log.log_end_offset()));
        }
        while self.durable_waiters.front().is_some_and(|w| w.last_offset < durable) {
            if let Some(w) = self.durable_waiters.pop_front() {
                let _ = w.reply.send(Ok(w.appended));
            }
        }
    }

    /// The log can no longer be written: every pending acknowledgement fails.
    fn fail_waiters(&mut self, error: PartitionError) {
        for w in self.durable_waiters.drain(..) {
            let _ = w.reply.send(Err(error.clone()));
        }
    }

    /// New topic configs (the I/O backend chosen at open stays).
    pub fn reconfigure(&mut self, cfg: &EffectiveTopicConfig) {
        self.log.set_config(cfg.log.clone());
        self.durability = cfg.durability;
        self.cleanup = Cleanup::of(cfg);
        if self.durability != Durability::Fsync {
            let leo = self.log.log_end_offset();
            self.advance_high_watermark(leo);
        }
    }

    /// Time-based rolling, retention and compaction, as `cleanup.policy` says. Retention's
    /// file work (checkpoint, unlinks) is returned for the caller to run off the shard; report
    /// it with `retention_done`.
    pub fn housekeeping(&mut self, now: i64) -> Option<RetentionWrite> {
        if self.log.is_failed() {
            return None;
        }
        let name = &self.name;
        if let Err(e) = self.log.maybe_roll(now) {
            tracing::error!(partition = %name, "roll failed: {e}");
        }
        let mut retention = None;
        if self.cleanup.delete {
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
        let shape = (self.log.segment_count(), self.log.log_end_offset());
        if self.cleanup.compact && shape.0 >= 2 && self.compacted_shape != Some(shape) {
            match self.log.compact(now, self.cleanup.delete_retention_ms) {
                Ok(s) if s.segments_rewritten > 0 => tracing::info!(
                    partition = %name,
                    "compacted {} segment(s), {} record(s) removed, {} -> {} bytes",
                    s.segments_rewritten,
                    s.records_removed,
                    s.bytes_before,
                    s.bytes_after
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(partition = %name, "compaction failed: {e}"),
            }
            self.compacted_shape = Some((self.log.segment_count(), self.log.log_end_offset()));
        }
        retention
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

    /// Deletes the partition's files (its topic was deleted); waiters get UNKNOWN_TOPIC.
    pub fn delete(mut self) {
        self.fail_waiters(PartitionError::UnknownTopicOrPartition);
        let name = std::mem::take(&mut self.name);
        if let Err(e) = self.log.delete() {
            tracing::error!(partition = %name, "delete failed: {e}");
        }
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
