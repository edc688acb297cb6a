//! `.timeindex`: sparse map from timestamp to offset. Each 12-byte entry is (max timestamp
//! seen so far as i64, relative offset of the batch holding it as i32), big endian — Kafka's
//! layout. Timestamps are strictly increasing, offsets non-decreasing. The last entry of a
//! closed segment carries the segment's max timestamp.

use super::used_entries;

pub const ENTRY_BYTES: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
}

#[derive(Clone, Debug)]
pub struct TimeIndex {
    base_offset: i64,
    entries: Vec<TimeEntry>,
    entries_max: usize,
}

impl TimeIndex {
    pub fn new(base_offset: i64, entries_max: usize) -> TimeIndex {
        TimeIndex { base_offset, entries: Vec::new(), entries_max }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.entries_max
    }

    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    /// Adds (timestamp, offset) if the timestamp is newer than the last entry's. `force`
    /// ignores the size limit (the final entry written when a segment closes).
    pub fn maybe_append(&mut self, timestamp_ms: i64, offset: i64, force: bool) {
        let rel = offset - self.base_offset;
        assert!((0..=i64::from(i32::MAX)).contains(&rel), "relative offset out of range");
        if let Some(last) = self.entries.last() {
            if timestamp_ms <= last.timestamp_ms {
                return;
            }
            assert!(rel as u32 >= last.relative_offset, "time index offsets must not decrease");
        }
        if self.is_full() && !force {
            return;
        }
        self.entries.push(TimeEntry { timestamp_ms, relative_offset: rel as u32 });
    }

    /// Offset from which to scan for the first record with timestamp >= `target`: the offset
    /// of the last entry whose timestamp is strictly below `target` (every record up to that
    /// batch is older than `target`), or the base offset.
    pub fn lookup_before(&self, target_ms: i64) -> i64 {
        let n = self.entries.partition_point(|e| e.timestamp_ms < target_ms);
        match n {
            0 => self.base_offset,
            _ => self.base_offset + i64::from(self.entries[n - 1].relative_offset),
        }
    }

    pub fn last(&self) -> Option<(i64, i64)> {
        self.entries.last().map(|e| (e.timestamp_ms, self.base_offset + i64::from(e.relative_offset)))
    }

    /// Drops entries naming offsets >= `offset`.
    pub fn truncate_to_offset(&mut self, offset: i64) {
        let base = self.base_offset;
        self.entries.retain(|e| base + i64::from(e.relative_offset) < offset);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp_ms.to_be_bytes());
            out.extend_from_slice(&(e.relative_offset as i32).to_be_bytes());
        }
        out
    }

    /// Parses a time index file; `None` if any entry breaks the ordering rules or names an
    /// offset at or beyond `next_offset` (the segment's end).
    pub fn decode(base_offset: i64, entries_max: usize, bytes: &[u8], next_offset: i64) -> Option<TimeIndex> {
        let n = used_entries(bytes, ENTRY_BYTES);
        let mut idx = TimeIndex::new(base_offset, entries_max);
        for chunk in bytes[..n * ENTRY_BYTES].chunks_exact(ENTRY_BYTES) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let ts = i64::from_be_bytes(ts);
            let rel = i32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            if rel < 0 || base_offset + i64::from(rel) >= next_offset {
                return None;
            }
            if let Some(last) = idx.entries.last() {
                if ts <= last.timestamp_ms || (rel as u32) < last.relative_offset {
                    return None;
                }
            }
            idx.entries.push(TimeEntry { timestamp_ms: ts, relative_offset: rel as u32 });
        }
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_before_is_strict() {
        let mut idx = TimeIndex::new(0, 10);
        idx.maybe_append(1000, 9, false);
        idx.maybe_append(900, 12, false); // older: ignored
        idx.maybe_append(2000, 20, false);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup_before(1000), 0);
        assert_eq!(idx.lookup_before(1001), 9);
        assert_eq!(idx.lookup_before(5000), 20);
        let back = TimeIndex::decode(0, 10, &idx.encode(), 21).expect("valid");
        assert_eq!(back.entries(), idx.entries());
        assert!(TimeIndex::decode(0, 10, &idx.encode(), 20).is_none(), "offset past segment end");
    }
}
