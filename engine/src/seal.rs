//! A hook that transforms each batch on its way to disk: the server's encryption at rest. The
//! engine knows only the contract: a sealed batch keeps its 61-byte header readable (offsets,
//! timestamps, producer fields, record count) with `attr::SEALED` set, its `batchLength` and
//! CRC-32C describe the sealed bytes, and its base offset is the one assigned. So recovery,
//! the indexes, retention and replication (followers copy the leader's bytes) work on sealed
//! batches unchanged; what needs the records (compaction, clients) must open them first:
//! compaction opens a sealed batch with `open`, and seals again what it keeps of it.

/// Seals batches for one log. Implementations must not panic on any input.
pub trait BatchSealer: Send + Sync {
    /// Appends the sealed form of `batch` (one whole RecordBatch v2, offsets, leader epoch and
    /// LogAppendTime assigned) to `out`.
    fn seal(&self, batch: &[u8], out: &mut Vec<u8>) -> Result<(), String>;

    /// Appends the batch `sealed` was made from to `out`.
    fn open(&self, sealed: &[u8], out: &mut Vec<u8>) -> Result<(), String>;
}

/// Whether a stored batch is sealed.
pub fn is_sealed(batch: &[u8]) -> bool {
    crate::batch::BatchHeader::parse(batch).is_some_and(|h| h.attributes & riptide_format::attr::SEALED != 0)
}
