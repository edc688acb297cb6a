//! Group commit. `sync_target` names the files whose fdatasync makes everything below the
//! current log end durable; the caller syncs them (possibly asynchronously on its own ring)
//! and reports back with `mark_durable` or `mark_failed`. `sync` does all three, blocking.
//! Contract: at most one sync in flight per log; a `mark_durable` for a target computed
//! before a `truncate_to` is clamped to the truncation point.

use std::path::PathBuf;

use super::{Log, Pending, PendingSync, SyncTarget};
use crate::checkpoint::{self, RECOVERY_POINT_FILE};
use crate::error::LogError;
use crate::io::{FileHandle, Io};
use riptide_model::Offset;

impl Log {
    /// Files to fdatasync to make every offset below `up_to_offset` durable; `None` if
    /// nothing is dirty (or the log is failed).
    /// On the sim backend the files are placeholders: only `sync` can sync simulated files.
    /// Direct mode: what is staged is written first (blocking; see `io/direct/mod.rs`).
    pub fn sync_target(&mut self) -> Option<SyncTarget> {
        let flushed = self.dirty_files()?.try_for_each(FileHandle::flush_staged);
        if let Err(e) = flushed {
            // Poisoned: the caller's `mark_durable` then fails, and with it every waiter.
            let _ = self.fail("direct write", e);
            return Some(SyncTarget {
                files: Vec::new(),
                dir: None,
                up_to_offset: Offset(self.next_offset()),
            });
        }
        let files = self.dirty_files()?.map(FileHandle::shared_file).collect();
        let dir = if self.dir_dirty() { self.dir_file.clone() } else { None };
        self.target_truncations.set(self.truncations);
        self.start_round();
        Some(SyncTarget { files, dir, up_to_offset: Offset(self.next_offset()) })
    }

    /// Starts a sync round: what was queued so far is covered by it.
    fn start_round(&self) {
        self.sync_round.set(self.sync_round.get() + 1);
    }

    fn dir_dirty(&self) -> bool {
        self.pending_sync.iter().any(|p| matches!(p.what, Pending::Dir))
    }

    /// Queues what a roll left unsynced for the next group commit.
    pub(super) fn queue_sync(&mut self, what: Pending, next_offset: i64) {
        self.pending_sync.push(PendingSync { what, next_offset, round: self.sync_round.get() });
    }

    /// The files `sync_target` names, or `None` if nothing is dirty (or the log is failed).
    fn dirty_files(&self) -> Option<impl Iterator<Item = &FileHandle>> {
        if self.failed.is_some() {
            return None;
        }
        let leo = self.next_offset();
        if self.recovery_point >= leo && self.pending_sync.is_empty() {
            return None;
        }
        let active = self.active();
        let active_dirty = active.next_offset > active.base_offset && self.recovery_point < leo;
        let pending = self.pending_sync.iter().filter_map(|p| match &p.what {
            Pending::File(f) | Pending::Snapshot(f, _) => Some(f),
            Pending::Dir => None,
        });
        Some(pending.chain(active_dirty.then_some(&active.log)))
    }

    /// Records that the files of a `sync_target` were synced: offsets below `up_to_offset`
    /// are durable. The recovery-point checkpoint is rewritten lazily, when the recovery
    /// point enters a new segment (recovery rescans whole segments anyway).
    ///
    /// When the recovery point enters a new segment, the returned [`CheckpointWrite`] is the
    /// checkpoint to write, off the owner's thread if the caller likes (two fsyncs and a
    /// rename); report it with `checkpoint_done`. At most one is out at a time.
    pub fn mark_durable(&mut self, up_to_offset: Offset) -> Result<Option<CheckpointWrite>, LogError> {
        self.check_writable()?;
        let mut up_to = up_to_offset.0.min(self.active().next_offset);
        if self.target_truncations.get() != self.truncations {
            up_to = up_to.min(self.truncated_to);
        }
        // Entries queued after the target was taken (round >= the current one) were not synced.
        let round = self.sync_round.get();
        let mut durable_snapshot = self.durable_snapshot.get();
        self.pending_sync.retain(|p| {
            let keep = p.next_offset > up_to || p.round >= round;
            if let (false, Pending::Snapshot(_, offset)) = (keep, &p.what) {
                durable_snapshot = durable_snapshot.max(*offset);
            }
            keep
        });
        self.durable_snapshot.set(durable_snapshot);
        if up_to <= self.recovery_point {
            return Ok(None);
        }
        let before = self.segment_index_for(self.checkpointed_recovery_point.max(0));
        self.recovery_point = up_to;
        if self.segment_index_for(up_to) == before || self.checkpoint_in_flight {
            return Ok(None);
        }
        self.checkpoint_in_flight = true;
        let contents = checkpoint::encode_offset(&self.topic, self.partition, up_to).into_bytes();
        Ok(Some(CheckpointWrite { io: self.io, dir: self.dir.clone(), contents, value: up_to }))
    }

    /// Records the outcome of a `CheckpointWrite`; a failure poisons the log.
    pub fn checkpoint_done(
        &mut self,
        write: &CheckpointWrite,
        result: std::io::Result<()>,
    ) -> Result<(), LogError> {
        self.checkpoint_in_flight = false;
        match result {
            Ok(()) => {
                self.checkpointed_recovery_point = self.checkpointed_recovery_point.max(write.value);
                Ok(())
            }
            Err(e) => Err(self.fail("recovery-point checkpoint", e)),
        }
    }

    /// A checkpoint handed out by `mark_durable` has not been reported yet.
    pub fn checkpoint_in_flight(&self) -> bool {
        self.checkpoint_in_flight
    }

    /// True when a roll left files for a group commit to sync (the caller should run one even
    /// when its durability policy does not ask for fsyncs, so they do not pile up).
    pub fn has_pending_sync(&self) -> bool {
        !self.pending_sync.is_empty()
    }

    /// Poisons the log after a failed fsync: nothing more is written until it is reopened.
    pub fn mark_failed(&mut self, err: std::io::Error) {
        let _ = self.fail("fdatasync", err);
    }

    /// Blocking group commit: fdatasync every dirty file through the I/O backend and advance
    /// the recovery point. Returns the durable offset.
    pub fn sync(&mut self) -> Result<Offset, LogError> {
        self.check_writable()?;
        let Some(files) = self.dirty_files() else {
            return Ok(Offset(self.recovery_point));
        };
        let files: Vec<&FileHandle> = files.collect();
        let up_to_offset = self.next_offset();
        let dir_dirty = self.dir_dirty();
        self.target_truncations.set(self.truncations);
        self.start_round();
        // The planted bug (simulation tests only): acknowledge without the fdatasync.
        let planted = self.io.ack_before_sync_planted();
        let synced = if planted {
            Ok(())
        } else {
            self.io.datasync_all(&files).and_then(|()| {
                if dir_dirty {
                    self.io.sync_dir(&self.dir)
                } else {
                    Ok(())
                }
            })
        };
        if let Err(e) = synced {
            return Err(self.fail("fdatasync", e));
        }
        if let Some(write) = self.mark_durable(Offset(up_to_offset))? {
            let result = write.write();
            self.checkpoint_done(&write, result)?;
        }
        Ok(Offset(self.recovery_point))
    }
}

/// A recovery-point checkpoint to write (see `Log::mark_durable`): crash-safe (temp file,
/// fdatasync, rename, directory fsync) through its own temp name, so it may run on another
/// thread while the log goes on.
pub struct CheckpointWrite {
    io: Io,
    dir: PathBuf,
    contents: Vec<u8>,
    value: i64,
}

impl CheckpointWrite {
    /// Writes it (blocking: two fsyncs).
    pub fn write(&self) -> std::io::Result<()> {
        checkpoint::write_atomic_via(self.io, &self.dir, RECOVERY_POINT_FILE, "async.tmp", &self.contents)
    }

    /// The recovery point it records.
    pub fn value(&self) -> Offset {
        Offset(self.value)
    }
}
