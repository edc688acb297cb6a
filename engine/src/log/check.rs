//! Self-check for tests and the simulator's checker: the in-memory segment list, the sparse
//! indexes and the bytes of the log agree. Reads every segment; not for production paths.

use super::Log;
use crate::batch::BatchHeader;
use crate::segment::scan_batches;

impl Log {
    /// Verifies that segments are ordered and do not overlap, that every segment's bytes are
    /// whole batches with increasing offsets ending at its size and next offset, that every
    /// offset-index entry names a batch boundary and that batch's last offset, and that
    /// time-index entries lie within the segment. Returns a description of the first problem.
    #[doc(hidden)]
    pub fn verify_consistency(&self) -> Result<(), String> {
        let mut prev_next = i64::MIN;
        let mut buf = Vec::new();
        for seg in &self.segments {
            let base = seg.base_offset;
            if base < prev_next {
                return Err(format!("segment {base} starts below the previous segment's end {prev_next}"));
            }
            let mut batches: Vec<(u32, i64, i64)> = Vec::new();
            let mut next = base;
            let stop = scan_batches(self.io, &seg.log, 0, seg.size_bytes, &mut buf, |pos, bytes| {
                let Some(h) = BatchHeader::parse(bytes) else { return Ok(false) };
                if h.base_offset < next {
                    return Ok(false);
                }
                next = h.last_offset() + 1;
                batches.push((pos, h.base_offset, h.last_offset()));
                Ok(true)
            })
            .map_err(|e| format!("segment {base}: {e}"))?;
            if stop != crate::segment::ScanStop::End {
                return Err(format!("segment {base}: bytes are not whole increasing batches: {stop:?}"));
            }
            if next != seg.next_offset {
                return Err(format!(
                    "segment {base}: next offset {} but batches end at {next}",
                    seg.next_offset
                ));
            }
            for e in seg.offset_index.entries() {
                let want = base + i64::from(e.relative_offset);
                let found = batches.iter().find(|b| b.0 == e.position);
                if found.is_none_or(|b| b.2 != want) {
                    return Err(format!(
                        "segment {base}: index entry ({want}, {}) names no batch",
                        e.position
                    ));
                }
            }
            for e in seg.time_index.entries() {
                let off = base + i64::from(e.relative_offset);
                if off < base || (off >= seg.next_offset && seg.next_offset > base) {
                    return Err(format!("segment {base}: time index offset {off} outside the segment"));
                }
            }
            prev_next = seg.next_offset;
        }
        let leo = self.next_offset();
        if self.log_start_offset > leo || self.recovery_point > leo.max(self.log_start_offset) {
            return Err(format!(
                "log start {} / recovery point {} beyond log end {leo}",
                self.log_start_offset, self.recovery_point
            ));
        }
        Ok(())
    }
}
