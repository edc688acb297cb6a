//! Reads as file ranges: from the start of the batch holding the requested offset, whole
//! batches only, bounded by `max_bytes`, the upper offset (high watermark) and the end of
//! one segment. Only batch headers are read (through the index, then a short forward walk).

use super::{Log, ReadSlice};
use crate::error::LogError;

impl Log {
    /// See the crate docs: whole batches from the one holding `offset`, at most `max_bytes`
    /// (or one whole batch if `min_one`), never a batch whose base offset is >= `upper_offset`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        upper_offset: i64,
        min_one: bool,
    ) -> Result<ReadSlice, LogError> {
        let leo = self.log_end_offset();
        if offset < self.log_start_offset || offset > leo {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: leo,
            });
        }
        let mut i = self.segment_index_for(offset);
        while i < self.segments.len() {
            let seg = &self.segments[i];
            if let Some((start, h)) = seg.find_batch(self.io, offset)? {
                if h.base_offset >= upper_offset {
                    return Ok(self.empty_at(i, start));
                }
                let limit = if upper_offset < seg.next_offset {
                    seg.position_of_first_batch_from(self.io, upper_offset)?
                } else {
                    seg.size_bytes
                };
                let len = self.bounded_len(i, start, limit, max_bytes, min_one, h.batch_length)?;
                return Ok(ReadSlice { file: seg.log.clone(), position: u64::from(start), len });
            }
            i += 1;
        }
        let active = self.segments.len() - 1;
        Ok(self.empty_at(active, self.segments[active].size_bytes))
    }

    fn empty_at(&self, seg: usize, position: u32) -> ReadSlice {
        ReadSlice { file: self.segments[seg].log.clone(), position: u64::from(position), len: 0 }
    }

    /// Length of the run of whole batches from `start` that ends at or before `limit` and
    /// fits `max_bytes` (or the first batch alone when `min_one`).
    fn bounded_len(
        &self,
        seg: usize,
        start: u32,
        limit: u32,
        max_bytes: u32,
        min_one: bool,
        first_batch_length: i32,
    ) -> Result<u32, LogError> {
        if start >= limit {
            return Ok(0);
        }
        if limit - start <= max_bytes {
            return Ok(limit - start);
        }
        let target = start + max_bytes;
        let end = self.segments[seg].last_boundary_within(self.io, start, target)?;
        if end > start {
            return Ok(end - start);
        }
        let first = first_batch_length as u32 + crate::batch::LOG_OVERHEAD_BYTES as u32;
        Ok(if min_one { first.min(limit - start) } else { 0 })
    }
}
