//! The spare segment: the next segment's three files (`next.log.spare`, `next.index.spare`,
//! `next.timeindex.spare`) and an empty file for the roll's producer snapshot
//! (`next.snapshot.spare`), created ahead of time off the owner's thread, so that a roll only
//! renames them to their real names instead of creating (allocating inodes) and sizing files
//! on the owner's thread (a shard, where every file-system call stalls all of its partitions).
//!
//! Protocol: `Log::prepare_segment` hands out a [`SegmentPrep`] when the log wants a spare (its
//! active segment holds data, so a roll will come, and it has none); the caller runs it on a
//! helper thread (the sim backend: on the owner's thread, whose simulated file system it is)
//! and reports the [`PreparedSegment`] with `Log::segment_prepared`. At most one is out per
//! log. A roll without a spare (the helper was slow, or failed) creates the files itself, as
//! before: nothing waits for the helper.
//!
//! Crash safety: a spare holds no data until the roll renames it, and the renames join the
//! directory entries that the roll's next group commit fsyncs before any offset of the new
//! segment is acknowledged, exactly as a created segment's would. Recovery never reads a
//! `*.spare` file: opening a log removes them (a spare left by a kill or power loss, before or
//! after some of its renames, is either removed or an empty or unacknowledged segment that
//! recovery already handles).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::Log;
use crate::error::LogError;
use crate::io::{FileHandle, Io};
use crate::segment::{
    create_files, file_path, spare_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};

/// Distinguishes `Log` instances, so that a spare prepared for a log that was closed and
/// reopened meanwhile is not installed in the new one.
static LOG_IDS: AtomicU64 = AtomicU64::new(1);

pub(super) fn next_log_id() -> u64 {
    LOG_IDS.fetch_add(1, Ordering::Relaxed)
}

/// The spare-segment state of a `Log`.
#[derive(Default)]
pub(super) struct SpareState {
    /// The spare's open log, index and time-index files, all empty.
    files: Option<[FileHandle; 3]>,
    /// An empty file for the producer snapshot the next roll writes.
    snapshot: Option<FileHandle>,
    /// A `SegmentPrep` is out.
    in_flight: bool,
    /// The last preparation failed: no new one until the next roll (no retry storm).
    failed: bool,
    /// Set when the log closes or is deleted: a preparation not yet run creates nothing.
    cancelled: Arc<AtomicBool>,
    /// A preparation was handed out: the owner runs them, so rolls leave snapshot pruning to
    /// them.
    helper_seen: bool,
}

impl SpareState {
    /// True when a roll's producer-snapshot pruning is left to the next preparation.
    pub(super) fn prunes_snapshots(&self) -> bool {
        self.helper_seen
    }
}

/// The creation of a spare segment's files, to run on a helper thread (see the module docs).
pub struct SegmentPrep {
    io: Io,
    dir: PathBuf,
    index_bytes: u32,
    log_id: u64,
    cancelled: Arc<AtomicBool>,
    /// Prune producer snapshots below this offset (the newest known durable).
    snapshots_keep_from: i64,
}

/// A finished [`SegmentPrep`], to report with `Log::segment_prepared`.
pub struct PreparedSegment {
    log_id: u64,
    files: std::io::Result<([FileHandle; 3], FileHandle)>,
}

/// Name of the spare producer-snapshot file (`next.snapshot.spare`).
const SNAPSHOT_SPARE: &str = "snapshot";

impl SegmentPrep {
    /// Creates the spare's files (blocking: three creates and two sparse size changes; no
    /// fsync, the roll's group commit makes the directory durable), then removes the producer
    /// snapshots the last roll left to prune (best effort: a failed unlink only leaves an old
    /// snapshot for a later pass).
    pub fn run(self) -> PreparedSegment {
        if self.cancelled.load(Ordering::Acquire) {
            let files = Err(std::io::Error::other("log closed before its spare segment was created"));
            return PreparedSegment { log_id: self.log_id, files };
        }
        let files = create_files(self.io, self.index_bytes, |suffix| spare_path(&self.dir, suffix))
            .and_then(|files| Ok((files, self.io.open_rw(&spare_path(&self.dir, SNAPSHOT_SPARE), true)?)));
        let _ = super::open::prune_snapshots(self.io, &self.dir, self.snapshots_keep_from);
        PreparedSegment { log_id: self.log_id, files }
    }
}

impl Log {
    /// The creation of a spare segment, when this log wants one (see the module docs): its
    /// active segment holds data, it has no spare and none is being prepared.
    pub fn prepare_segment(&mut self) -> Option<SegmentPrep> {
        let spare = &self.spare;
        let ready = spare.files.is_some() || spare.snapshot.is_some();
        if self.failed.is_some() || ready || spare.in_flight || spare.failed {
            return None;
        }
        if self.active().is_empty() {
            return None;
        }
        self.spare.in_flight = true;
        self.spare.helper_seen = true;
        Some(SegmentPrep {
            io: self.io,
            dir: self.dir.clone(),
            index_bytes: self.config.segment_index_bytes,
            log_id: self.log_id,
            cancelled: self.spare.cancelled.clone(),
            snapshots_keep_from: self.durable_snapshot.get(),
        })
    }

    /// Installs a prepared spare. A failed preparation is returned for the caller to report;
    /// it does not poison the log (the next roll creates its files itself, and fails the log
    /// if that fails too). A spare prepared for another `Log` instance is ignored.
    pub fn segment_prepared(&mut self, prepared: PreparedSegment) -> Result<(), LogError> {
        if prepared.log_id != self.log_id {
            return Ok(());
        }
        self.spare.in_flight = false;
        match prepared.files {
            Ok((files, snapshot)) if self.failed.is_none() => {
                self.spare.files = Some(files);
                self.spare.snapshot = Some(snapshot);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                self.spare.failed = true;
                Err(LogError::Storage(format!(
                    "spare segment creation failed in {}: {e}",
                    self.dir.display()
                )))
            }
        }
    }

    /// True when a spare segment is ready for the next roll.
    pub fn has_spare_segment(&self) -> bool {
        self.spare.files.is_some()
    }

    /// The spare's empty snapshot file and its path, for the roll's producer snapshot.
    pub(super) fn take_spare_snapshot(&mut self) -> Option<(FileHandle, PathBuf)> {
        let file = self.spare.snapshot.take()?;
        Some((file, spare_path(&self.dir, SNAPSHOT_SPARE)))
    }

    /// The new active segment at `base_offset` for a roll: the spare renamed to its names, or
    /// (without one) freshly created files. The caller queues the directory for the next sync.
    pub(super) fn next_segment(&mut self, base_offset: i64, now_ms: i64) -> std::io::Result<Segment> {
        self.spare.failed = false;
        let Some(files) = self.spare.files.take() else {
            return Segment::create(self.io, &self.dir, base_offset, &self.config, now_ms);
        };
        // The log file first: a crash between the renames leaves a segment whose indexes are
        // missing (recovery rebuilds them), never index files without their log.
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            self.io.rename(&spare_path(&self.dir, suffix), &file_path(&self.dir, base_offset, suffix))?;
        }
        Ok(Segment::from_spare(&self.dir, base_offset, files, &self.config, now_ms))
    }

    /// Stops any preparation not yet run and removes an installed spare's files (best effort:
    /// the next open removes leftovers anyway).
    pub(super) fn discard_spare(&mut self) {
        self.spare.cancelled.store(true, Ordering::Release);
        let snapshot = self.spare.snapshot.take().is_some();
        if self.spare.files.take().is_some() || snapshot {
            for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, SNAPSHOT_SPARE] {
                let _ = self.io.remove_file(&spare_path(&self.dir, suffix));
            }
        }
    }
}
