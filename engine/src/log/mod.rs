//! `Log`: one partition's log — its segments, checkpoints, leader-epoch cache and producer
//! state — driven by a single owner thread (a shard). `Log` is `Send` so it may be created on
//! one thread and moved, but not `Sync`: concurrent readers only hold `ReadSlice` file
//! handles for byte ranges below the high watermark, which are never rewritten.
//!
//! Durability contract: `append` writes to the page cache; an offset is durable once
//! `durable_offset()` is above it, which happens after `sync()` or after the caller fsynced
//! the files of `sync_target()` and called `mark_durable`. After any failed write or fsync
//! the log is poisoned: every later append, sync and close fails until it is reopened
//! (recovery then truncates whatever was not acknowledged as durable... or kept intact).
//!
//! Submodules split the impl by concern: `append`, `read`, `durability`, `maintenance`
//! (roll, retention, truncation, close), `spare` (the next segment, created ahead of a roll)
//! and `timestamps`.

mod append;
mod check;
#[path = "../compaction.rs"]
mod compaction;
mod durability;
mod maintenance;
mod open;
mod read;
mod replicate;
mod spare;
mod timestamps;

use std::cell::Cell;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use crate::batch::ValidBatch;
use crate::config::{IoMode, LogConfig};
use crate::epoch_cache::EpochCache;
use crate::error::LogError;
use crate::io::{FileHandle, Io};
use crate::producer_state::{AbortedTxn, ProducerEntry, ProducerState, ProducerSummary};
use crate::segment::Segment;
pub use compaction::{CompactionDone, CompactionJob, CompactionStats, ReplacedSegments};
pub use durability::CheckpointWrite;
pub use maintenance::{remove_retired_dirs, DirRemoval, RetentionWrite};
use riptide_model::{EpochEndOffset, LeaderEpoch, Offset};
pub use spare::{PreparedSegment, SegmentPrep};
pub use timestamps::TimestampAndOffset;

/// Result of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// The broker time stamped on the batches, -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: Offset,
    /// True when the batch was an idempotent retry of one already in the log (nothing written).
    pub duplicate: bool,
}

/// A byte range of a segment file holding whole batches, ready for sendfile/splice. Bytes
/// below the high watermark are never rewritten, so the range stays valid while the handle is
/// held (a deleted segment's file lives on until its last handle closes).
#[derive(Clone, Debug)]
pub struct ReadSlice {
    pub file: Arc<File>,
    pub position: u64,
    /// 0 = nothing to read.
    pub len: u32,
    /// Base offset of the first batch (`Offset::NONE` when empty).
    pub base_offset: Offset,
    /// Offset after the last batch (`Offset::NONE` when not known without reading the file).
    pub end_offset: Offset,
    /// The same bytes from memory, when they are not (or not yet) to be read from the file:
    /// a direct-mode log's recent bytes (see `io/direct/mod.rs`). Readers use these when set.
    pub memory: Option<crate::io::direct::InMemory>,
}

impl ReadSlice {
    /// Offsets the range covers (its record count, less any gaps compaction left).
    pub fn offset_span(&self) -> u64 {
        if self.len == 0 || self.end_offset < self.base_offset {
            return 0;
        }
        self.base_offset.count_to(self.end_offset) as u64
    }

    /// Copies the range's bytes from `from` on into `buf` (its length is how many).
    pub fn read_into_from(&self, buf: &mut [u8], from: u64) -> std::io::Result<()> {
        if from + buf.len() as u64 > u64::from(self.len) {
            return Err(std::io::Error::other("read past the end of a read slice"));
        }
        if let Some(m) = &self.memory {
            if !m.copy_to(buf, from as usize) {
                return Err(std::io::Error::other("memory of a read slice shorter than the slice"));
            }
            return Ok(());
        }
        std::os::unix::fs::FileExt::read_exact_at(&*self.file, buf, self.position + from)
    }

    /// Copies the whole range into `buf`, which must be `len` bytes.
    pub fn read_into(&self, buf: &mut [u8]) -> std::io::Result<()> {
        self.read_into_from(buf, 0)
    }

    /// The whole range's bytes.
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.len as usize];
        self.read_into(&mut buf)?;
        Ok(buf)
    }
}

/// Files to fdatasync (and the directory to fsync) so that every offset below `up_to_offset`
/// is durable.
#[derive(Clone, Debug)]
pub struct SyncTarget {
    pub files: Vec<Arc<File>>,
    /// The partition directory, when a segment was created since the last sync (its entry must
    /// be durable before anything in it is acknowledged). fsync, not fdatasync.
    pub dir: Option<Arc<File>>,
    pub up_to_offset: Offset,
}

/// What a roll left for the next group commit to sync, instead of syncing it on the spot.
struct PendingSync {
    what: Pending,
    /// Offsets below this depend on it.
    next_offset: i64,
    /// The sync round it was queued in: a `mark_durable` clears only what its target saw.
    round: u64,
}

enum Pending {
    /// A closed segment's log or index file.
    File(FileHandle),
    /// A producer snapshot written at a roll, for this offset.
    Snapshot(FileHandle, i64),
    /// The partition directory (a segment was created in it).
    Dir,
}

/// One partition's log. See the module docs for the threading and durability contract.
pub struct Log {
    dir: PathBuf,
    partition: i32,
    topic: String,
    config: LogConfig,
    io: Io,
    /// Ascending by base offset, never empty; the last one is the active segment.
    segments: Vec<Segment>,
    log_start_offset: i64,
    /// Every offset below this is fsynced.
    recovery_point: i64,
    checkpointed_recovery_point: i64,
    epochs: EpochCache,
    producers: ProducerState,
    pending_sync: Vec<PendingSync>,
    /// Sync rounds started (`sync_target` / `sync`); pending entries carry the round they joined.
    sync_round: Cell<u64>,
    /// A `CheckpointWrite` is out (handed to the caller, not yet reported).
    checkpoint_in_flight: bool,
    /// A `RetentionWrite` is out.
    retention_in_flight: bool,
    /// `delete_records` moved the log start while a retention write was out.
    log_start_rewrite: bool,
    /// A `CompactionJob` is out, or was cancelled (see `compaction.rs`).
    compaction: compaction::CompactionState,
    /// Offset of the newest producer snapshot known durable (pruning keeps it).
    durable_snapshot: Cell<i64>,
    /// The partition directory, open for fsync by the caller's group commit (real backends).
    dir_file: Option<Arc<File>>,
    failed: Option<String>,
    /// Truncation counter and the counter value seen by the latest `sync_target`, so a
    /// `mark_durable` for a target computed before a truncation cannot over-claim.
    truncations: u64,
    target_truncations: Cell<u64>,
    truncated_to: i64,
    scratch_batches: Vec<ValidBatch>,
    /// Seals new batches before they are written (encryption at rest), when set.
    sealer: Option<std::sync::Arc<dyn crate::seal::BatchSealer>>,
    scratch_staged: Vec<(i64, ProducerEntry)>,
    /// `append_shared`'s copy of the caller's bytes, kept between appends.
    scratch_copy: Vec<u8>,
    scan_buf: Vec<u8>,
    read_hints: [Cell<read::ReadHint>; read::READ_HINTS],
    /// This instance's id (see `spare.rs`).
    log_id: u64,
    /// The next segment's files, created ahead of a roll (see `spare.rs`).
    spare: spare::SpareState,
    /// Direct mode was asked for and the file system refused O_DIRECT: stay buffered.
    direct_refused: bool,
}

/// Producer state after one stored batch (`batch`: its bytes): a marker ends its producer's
/// transaction, other idempotent batches record their sequences. Used where batches come back
/// from disk or from the leader, whose markers are only known by their bytes.
fn track_producer(producers: &mut ProducerState, h: &crate::batch::BatchHeader, batch: &[u8]) {
    if !h.is_idempotent() {
        return;
    }
    if !h.is_control() {
        producers.record(h, h.max_timestamp);
    } else if let Some(marker) = riptide_format::control::marker_fields(batch) {
        producers.record_marker(h.producer_id, h.producer_epoch, marker, h.base_offset, h.max_timestamp);
    }
}

impl Log {
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the configuration (the I/O backend chosen at open stays). Leaving direct
    /// mode writes what is staged at once.
    pub fn set_config(&mut self, config: LogConfig) -> Result<(), LogError> {
        self.config = config.sanitized();
        if self.config.io_mode == IoMode::Buffered {
            if let Err(e) = self.active_mut().detach_direct() {
                return Err(self.fail("direct write", e));
            }
        }
        Ok(())
    }

    /// Direct mode: the active segment takes staged O_DIRECT appends from now on (a no-op
    /// once it does, and after the file system refused it once).
    fn prepare_write(&mut self) {
        if self.config.io_mode != IoMode::Direct || self.direct_refused {
            return;
        }
        let (io, stage) = (self.io, self.config.direct_stage_bytes);
        if !self.active_mut().attach_direct(io, stage) {
            self.direct_refused = true;
        }
    }

    /// True when the active segment takes direct appends.
    pub fn is_direct(&self) -> bool {
        matches!(self.active().log, FileHandle::Direct(_))
    }

    /// The I/O backend in use (never `Auto`).
    pub fn io_backend(&self) -> crate::config::IoBackend {
        self.io.backend()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn log_start_offset(&self) -> Offset {
        Offset(self.log_start_offset)
    }

    pub fn log_end_offset(&self) -> Offset {
        Offset(self.next_offset())
    }

    /// The log end offset as the engine's internals count it.
    fn next_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Every offset below this is fsynced (the recovery point).
    pub fn durable_offset(&self) -> Offset {
        Offset(self.recovery_point)
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| u64::from(s.size_bytes)).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        self.segments.iter().map(|s| Offset(s.base_offset)).collect()
    }

    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// The leader-epoch cache entries as (epoch, start offset), oldest first.
    pub fn leader_epochs(&self) -> Vec<(LeaderEpoch, Offset)> {
        self.epochs.entries().iter().map(|e| (LeaderEpoch(e.epoch), Offset(e.start_offset))).collect()
    }

    /// Kafka's OffsetForLeaderEpoch: the largest known epoch at or below `epoch` and where it
    /// ends, or `None` if the epoch is unknown and newer than every known one.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<EpochEndOffset> {
        self.epochs
            .end_offset_for(epoch.0, self.active().next_offset)
            .map(|(e, end)| EpochEndOffset { epoch: LeaderEpoch(e), end_offset: Offset(end) })
    }

    /// The first offset of the oldest open transaction (nothing from it on is stable).
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        self.producers.first_unstable_offset().map(Offset)
    }

    /// Open transactions as (producer id, first offset), oldest first.
    pub fn open_transactions(&self) -> Vec<(i64, Offset)> {
        self.producers.open_transactions().into_iter().map(|(p, o)| (p, Offset(o))).collect()
    }

    /// Aborted transactions overlapping `[from, to)`, for a read_committed fetch of that range.
    pub fn aborted_transactions(&self, from: Offset, to: Offset) -> Vec<AbortedTxn> {
        self.producers.aborted_between(from.0, to.0)
    }

    /// Every producer with state in this log (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerSummary> {
        self.producers.summaries()
    }

    /// Forgets producers idle past `producer.id.expiration.ms` with no transaction open here
    /// (the next snapshot leaves them out). Returns how many went.
    pub fn expire_producers(&mut self, now_ms: i64) -> usize {
        self.producers.expire_idle(now_ms.saturating_sub(self.config.producer_id_expiration_ms))
    }

    /// Number of producer ids with idempotence state.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    fn active(&self) -> &Segment {
        match self.segments.last() {
            Some(s) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    fn active_mut(&mut self) -> &mut Segment {
        match self.segments.last_mut() {
            Some(s) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    /// Index of the segment that holds `offset` (the last one whose base is <= it).
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments.partition_point(|s| s.base_offset <= offset).saturating_sub(1)
    }

    fn check_writable(&self) -> Result<(), LogError> {
        match &self.failed {
            Some(reason) => Err(LogError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    /// Poisons the log after an environmental failure and returns the error to report.
    fn fail(&mut self, what: &str, err: std::io::Error) -> LogError {
        let reason = format!("{what} failed in {}: {err}", self.dir.display());
        if self.failed.is_none() {
            self.failed = Some(reason.clone());
        }
        LogError::Storage(reason)
    }
}
