//! Group commit. `sync_target` names the files whose fdatasync makes everything below the
//! current log end durable; the caller syncs them (possibly asynchronously on its own ring)
//! and reports back with `mark_durable` or `mark_failed`. `sync` does all three, blocking.
//! Contract: at most one sync in flight per log; a `mark_durable` for a target computed
//! before a `truncate_to` is clamped to the truncation point.

use std::fs::File;
use std::sync::Arc;

use super::{Log, SyncTarget};
use crate::error::LogError;

impl Log {
    /// Files to fdatasync to make every offset below `up_to_offset` durable; `None` if
    /// nothing is dirty (or the log is failed).
    pub fn sync_target(&self) -> Option<SyncTarget> {
        if self.failed.is_some() {
            return None;
        }
        let leo = self.log_end_offset();
        if self.recovery_point >= leo && self.pending_sync.is_empty() {
            return None;
        }
        let mut files: Vec<Arc<File>> = self.pending_sync.iter().map(|p| p.file.clone()).collect();
        let active = self.active();
        if active.next_offset > active.base_offset && self.recovery_point < leo {
            files.push(active.log.clone());
        }
        self.target_truncations.set(self.truncations);
        Some(SyncTarget { files, up_to_offset: leo })
    }

    /// Records that the files of a `sync_target` were synced: offsets below `up_to_offset`
    /// are durable. The recovery-point checkpoint is rewritten lazily, when the recovery
    /// point enters a new segment (recovery rescans whole segments anyway).
    pub fn mark_durable(&mut self, up_to_offset: i64) -> Result<(), LogError> {
        self.check_writable()?;
        let mut up_to = up_to_offset.min(self.log_end_offset());
        if self.target_truncations.get() != self.truncations {
            up_to = up_to.min(self.truncated_to);
        }
        self.pending_sync.retain(|p| p.next_offset > up_to);
        if up_to <= self.recovery_point {
            return Ok(());
        }
        let before = self.segment_index_for(self.checkpointed_recovery_point.max(0));
        self.recovery_point = up_to;
        if self.segment_index_for(up_to) != before {
            if let Err(e) = self.write_recovery_checkpoint() {
                return Err(self.fail_with("recovery-point checkpoint", e));
            }
        }
        Ok(())
    }

    /// Poisons the log after a failed fsync: nothing more is written until it is reopened.
    pub fn mark_failed(&mut self, err: std::io::Error) {
        let _ = self.fail("fdatasync", err);
    }

    /// Blocking group commit: fdatasync every dirty file through the I/O backend and advance
    /// the recovery point. Returns the durable offset.
    pub fn sync(&mut self) -> Result<i64, LogError> {
        self.check_writable()?;
        let Some(target) = self.sync_target() else {
            return Ok(self.recovery_point);
        };
        let files: Vec<&File> = target.files.iter().map(|f| f.as_ref()).collect();
        if let Err(e) = self.io.datasync_all(&files) {
            return Err(self.fail("fdatasync", e));
        }
        self.mark_durable(target.up_to_offset)?;
        Ok(self.recovery_point)
    }
}
