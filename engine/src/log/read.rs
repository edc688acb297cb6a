//! Reads as file ranges: from the start of the batch holding the requested offset, whole
//! batches only, bounded by `max_bytes`, the upper offset (high watermark) and the end of
//! one segment. Only batch headers are read (through the index, then a short forward walk).
//! A few "read hints" remember where recently returned slices ended, so a consumer's next
//! sequential fetch starts without any header read.

use std::cell::Cell;

use super::{Log, ReadSlice};
use crate::batch::LOG_OVERHEAD_BYTES;
use crate::error::LogError;
use riptide_model::Offset;

/// Remembered read ends (direct-mapped by offset).
pub(super) const READ_HINTS: usize = 16;

/// Where a batch starts: (its base offset, base offset of its segment, position).
#[derive(Clone, Copy, Debug)]
pub(super) struct ReadHint {
    offset: i64,
    segment_base: i64,
    position: u32,
}

pub(super) fn empty_hints() -> [Cell<ReadHint>; READ_HINTS] {
    std::array::from_fn(|_| Cell::new(ReadHint { offset: -1, segment_base: -1, position: 0 }))
}

impl Log {
    /// See the crate docs: whole batches from the one holding `offset`, at most `max_bytes`
    /// (or one whole batch if `min_one`), never a batch whose base offset is >= `upper_offset`.
    pub fn read(
        &self,
        offset: Offset,
        max_bytes: u32,
        upper_offset: Offset,
        min_one: bool,
    ) -> Result<ReadSlice, LogError> {
        let (seg, position, len, (base_offset, end_offset)) =
            self.locate(offset.0, max_bytes, upper_offset.0, min_one)?;
        let (base_offset, end_offset) = (Offset(base_offset), Offset(end_offset));
        let log = &self.segments[seg].log;
        Ok(ReadSlice {
            file: log.shared_file(),
            position: u64::from(position),
            len,
            base_offset,
            end_offset,
            memory: log.memory_for(self.io, u64::from(position), u64::from(len))?,
        })
    }

    /// `read`, returning the bytes of the range, read through the engine's I/O backend (the
    /// way to read a log on the simulated backend, whose `ReadSlice` files are placeholders).
    pub fn read_bytes(
        &self,
        offset: Offset,
        max_bytes: u32,
        upper_offset: Offset,
        min_one: bool,
    ) -> Result<Vec<u8>, LogError> {
        let (seg, position, len, _) = self.locate(offset.0, max_bytes, upper_offset.0, min_one)?;
        let mut buf = vec![0u8; len as usize];
        let n = self.io.read_full_at(&self.segments[seg].log, &mut buf, u64::from(position))?;
        if n < buf.len() {
            return Err(LogError::Storage(format!(
                "short read in segment {}",
                self.segments[seg].base_offset
            )));
        }
        Ok(buf)
    }

    /// The range `read` returns, as (segment index, position, length, (base offset of its
    /// first batch, offset after its last batch; both -1 when empty or unknown)).
    fn locate(
        &self,
        offset: i64,
        max_bytes: u32,
        upper_offset: i64,
        min_one: bool,
    ) -> Result<(usize, u32, u32, (i64, i64)), LogError> {
        let leo = self.next_offset();
        if offset < self.log_start_offset || offset > leo {
            return Err(LogError::OffsetOutOfRange {
                offset: Offset(offset),
                log_start_offset: Offset(self.log_start_offset),
                log_end_offset: Offset(leo),
            });
        }
        let mut i = self.segment_index_for(offset);
        while i < self.segments.len() {
            let seg = &self.segments[i];
            let start = match self.hint(i, offset) {
                Some(pos) => Some((pos, offset)),
                None => seg.find_batch(self.io, offset)?.map(|(pos, h)| (pos, h.base_offset)),
            };
            if let Some((start, base)) = start {
                if base >= upper_offset {
                    return Ok(self.empty_at(i, start));
                }
                let limit = if upper_offset < seg.next_offset {
                    seg.position_of_first_batch_from(self.io, upper_offset)?
                } else {
                    seg.size_bytes
                };
                let end_limit = if upper_offset < seg.next_offset { upper_offset } else { seg.next_offset };
                let (len, end_offset) = self.bounded_len(i, start, (limit, end_limit), max_bytes, min_one)?;
                let offsets = if len == 0 { (-1, -1) } else { (base, end_offset) };
                return Ok((i, start, len, offsets));
            }
            i += 1;
        }
        let active = self.segments.len() - 1;
        Ok(self.empty_at(active, self.segments[active].size_bytes))
    }

    fn empty_at(&self, seg: usize, position: u32) -> (usize, u32, u32, (i64, i64)) {
        (seg, position, 0, (-1, -1))
    }

    fn hint(&self, seg: usize, offset: i64) -> Option<u32> {
        let h = self.read_hints[offset.rem_euclid(READ_HINTS as i64) as usize].get();
        let s = &self.segments[seg];
        (h.offset == offset && h.segment_base == s.base_offset && h.position < s.size_bytes)
            .then_some(h.position)
    }

    fn remember(&self, seg: usize, offset: i64, position: u32) {
        let segment_base = self.segments[seg].base_offset;
        self.read_hints[offset.rem_euclid(READ_HINTS as i64) as usize].set(ReadHint {
            offset,
            segment_base,
            position,
        });
    }

    /// Forgets every hint (their positions may be gone after a truncation).
    pub(super) fn clear_read_hints(&self) {
        for h in &self.read_hints {
            h.set(ReadHint { offset: -1, segment_base: -1, position: 0 });
        }
    }

    /// Length of the run of whole batches from `start` that ends at or before `limit` and
    /// fits `max_bytes` (or the first batch alone when `min_one`), with the offset after it
    /// (`limit` is a position and the offset found there; -1 when not known without a read).
    fn bounded_len(
        &self,
        seg: usize,
        start: u32,
        (limit, limit_offset): (u32, i64),
        max_bytes: u32,
        min_one: bool,
    ) -> Result<(u32, i64), LogError> {
        if start >= limit {
            return Ok((0, -1));
        }
        if limit - start <= max_bytes {
            if limit == self.segments[seg].size_bytes {
                self.remember(seg, self.segments[seg].next_offset, limit);
            }
            return Ok((limit - start, limit_offset));
        }
        let (end, next_base) = self.segments[seg].last_boundary_within(self.io, start, start + max_bytes)?;
        if let Some(base) = next_base {
            self.remember(seg, base, end);
        }
        if end > start {
            return Ok((end - start, next_base.unwrap_or(-1)));
        }
        if !min_one {
            return Ok((0, -1));
        }
        let first = self.segments[seg].header_at(self.io, start)?;
        let len = first.map_or(0, |h| h.batch_length as u32 + LOG_OVERHEAD_BYTES as u32);
        Ok((len.min(limit - start), first.map_or(-1, |h| h.last_offset() + 1)))
    }
}
