//! `.index`: sparse map from offset to file position. Each 8-byte entry is (offset relative
//! to the segment base as i32, position as i32), big endian, and names the last offset of
//! the batch that starts at that position — Kafka's layout. Entries are strictly increasing
//! in both fields.

use super::used_entries;

pub const ENTRY_BYTES: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Clone, Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    entries: Vec<OffsetEntry>,
    entries_max: usize,
}

impl OffsetIndex {
    pub fn new(base_offset: i64, entries_max: usize) -> OffsetIndex {
        OffsetIndex { base_offset, entries: Vec::new(), entries_max }
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

    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    /// Adds an entry for the batch at `position` whose last offset is `offset`.
    pub fn append(&mut self, offset: i64, position: u32) {
        let rel = offset - self.base_offset;
        assert!((0..=i64::from(i32::MAX)).contains(&rel), "relative offset out of range");
        if let Some(last) = self.entries.last() {
            assert!(rel as u32 > last.relative_offset && position > last.position, "index not increasing");
        }
        assert!(!self.is_full(), "append to a full offset index");
        self.entries.push(OffsetEntry { relative_offset: rel as u32, position });
    }

    /// The entry with the largest offset <= `target` as (absolute offset, position), or
    /// (base, 0) when there is none: scanning forward from the position finds `target`.
    pub fn lookup(&self, target: i64) -> (i64, u32) {
        let n = self.entries.partition_point(|e| self.base_offset + i64::from(e.relative_offset) <= target);
        match n {
            0 => (self.base_offset, 0),
            _ => self.absolute(self.entries[n - 1]),
        }
    }

    /// The entry with the largest position <= `position`, as (absolute offset, position).
    pub fn lookup_position(&self, position: u32) -> Option<(i64, u32)> {
        let n = self.entries.partition_point(|e| e.position <= position);
        (n > 0).then(|| self.absolute(self.entries[n - 1]))
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().map(|e| self.absolute(*e))
    }

    fn absolute(&self, e: OffsetEntry) -> (i64, u32) {
        (self.base_offset + i64::from(e.relative_offset), e.position)
    }

    /// Drops entries for batches at or after `position` (the log was truncated there).
    pub fn truncate_to_position(&mut self, position: u32) {
        let n = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(n);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&(e.relative_offset as i32).to_be_bytes());
            out.extend_from_slice(&(e.position as i32).to_be_bytes());
        }
        out
    }

    /// Parses an index file, checking every entry is increasing and points inside a log of
    /// `log_bytes`. `None` means the file cannot be trusted and must be rebuilt.
    pub fn decode(base_offset: i64, entries_max: usize, bytes: &[u8], log_bytes: u32) -> Option<OffsetIndex> {
        let n = used_entries(bytes, ENTRY_BYTES);
        if n > entries_max {
            return None;
        }
        let mut idx = OffsetIndex::new(base_offset, entries_max);
        for chunk in bytes[..n * ENTRY_BYTES].chunks_exact(ENTRY_BYTES) {
            let rel = i32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let pos = i32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if rel < 0 || pos < 0 || pos as u32 >= log_bytes {
                return None;
            }
            if let Some(last) = idx.entries.last() {
                if rel as u32 <= last.relative_offset || pos as u32 <= last.position {
                    return None;
                }
            }
            idx.entries.push(OffsetEntry { relative_offset: rel as u32, position: pos as u32 });
        }
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_round_trip() {
        let mut idx = OffsetIndex::new(100, 10);
        idx.append(109, 4200);
        idx.append(130, 9000);
        assert_eq!(idx.lookup(50), (100, 0));
        assert_eq!(idx.lookup(109), (109, 4200));
        assert_eq!(idx.lookup(129), (109, 4200));
        assert_eq!(idx.lookup(1000), (130, 9000));
        let mut bytes = idx.encode();
        bytes.extend_from_slice(&[0u8; 32]); // preallocated tail
        let back = OffsetIndex::decode(100, 10, &bytes, 10_000).expect("valid");
        assert_eq!(back.entries(), idx.entries());
        assert!(OffsetIndex::decode(100, 10, &bytes, 5000).is_none(), "position past log end");
        let mut bad = idx.encode();
        bad[7] = 1; // first position becomes tiny but second entry still larger: fine
        bad[11] = 0;
        bad[10] = 0;
        bad[9] = 0;
        bad[8] = 0; // second relative offset 0 < first
        assert!(OffsetIndex::decode(100, 10, &bad, 10_000).is_none());
        idx.truncate_to_position(9000);
        assert_eq!(idx.len(), 1);
    }
}
