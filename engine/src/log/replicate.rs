//! The follower's append: batches copied from the leader's log, offsets and leader epochs
//! already assigned there. They are checked as stored batches are (framing, magic, CRC) and
//! must continue this log (offsets increase; compaction on the leader may leave gaps), then
//! written once with their indexes, producer state and leader-epoch starts, so a follower that
//! becomes leader continues idempotent sequences and answers OffsetForLeaderEpoch as the old
//! leader would.

use super::{AppendInfo, Log};
use crate::batch;
use crate::error::LogError;
use crate::segment::BatchMeta;
use riptide_model::Offset;

impl Log {
    /// Appends leader batches as they are. Batches wholly below the log end (a refetch after a
    /// retried request) are skipped; `Ok(None)` when nothing was new. A batch that overlaps
    /// the log end or goes backwards is refused and nothing is written.
    pub fn append_replicated(&mut self, batches: &[u8], now_ms: i64) -> Result<Option<AppendInfo>, LogError> {
        self.check_writable()?;
        let leo = self.next_offset();
        let (mut pos, mut start, mut next) = (0usize, None, leo);
        let mut last = -1;
        while pos < batches.len() {
            let h = batch::check_stored(&batches[pos..])?;
            let size = h.size_bytes().ok_or(LogError::CorruptMessage("batchLength below the header size"))?;
            let batch_last = h.base_offset + i64::from(h.last_offset_delta);
            if batch_last < leo && start.is_none() {
                pos += size;
                continue;
            }
            if h.base_offset < next {
                return Err(LogError::InvalidRecord("replicated batch does not continue the log"));
            }
            start.get_or_insert(pos);
            next = batch_last + 1;
            last = batch_last;
            pos += size;
        }
        let Some(start) = start else { return Ok(None) };
        let bytes = &batches[start..];
        self.roll_if_needed(bytes.len() as u64, last, now_ms)?;
        let io = self.io;
        self.prepare_write();
        // A follower's fetch offset counts as replicated the moment it is reported, so its
        // bytes must leave this process at once even in direct mode (fetch responses are large:
        // one direct write each is cheap).
        let written = self.active_mut().write(io, bytes);
        let position = match written.and_then(|p| self.active().log.flush_staged().map(|()| p)) {
            Ok(p) => p,
            Err(e) => return Err(self.fail("segment write", e)),
        };
        let (mut at, mut first) = (0usize, None);
        while at < bytes.len() {
            // Checked above; parsing again is cheaper than keeping a list.
            let h = batch::check_stored(&bytes[at..])?;
            let size = h.size_bytes().unwrap_or(bytes.len() - at);
            let meta = BatchMeta {
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                max_timestamp_ms: h.max_timestamp,
                size_bytes: size as u32,
            };
            self.active_mut().track(&meta, position + at as u32);
            super::track_producer(&mut self.producers, &h, &bytes[at..at + size]);
            self.note_leader_epoch(h.partition_leader_epoch, h.base_offset)?;
            first.get_or_insert(h.base_offset);
            at += size;
        }
        self.active_mut().last_modified_ms = now_ms;
        debug_assert_eq!(self.next_offset(), last + 1);
        Ok(Some(AppendInfo {
            base_offset: Offset(first.unwrap_or(leo)),
            last_offset: Offset(last),
            log_append_time_ms: -1,
            log_start_offset: Offset(self.log_start_offset),
            duplicate: false,
        }))
    }
}
