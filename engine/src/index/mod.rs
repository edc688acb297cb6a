//! Sparse per-segment indexes in Kafka's entry layouts. Both live in memory while the log is
//! open and are written to their files (trimmed to the exact entry count) when a segment
//! rolls or the log closes; the active segment's index files are rebuilt from the log after
//! a crash, so they never need to be written on the append path.

pub mod offset;
pub mod time;

pub use offset::OffsetIndex;
pub use time::TimeIndex;

/// Number of whole entries in `bytes` after dropping trailing all-zero entries (the unused
/// preallocated tail of an index file that was not trimmed).
pub(crate) fn used_entries(bytes: &[u8], entry_bytes: usize) -> usize {
    let mut n = bytes.len() / entry_bytes;
    while n > 0 && bytes[(n - 1) * entry_bytes..n * entry_bytes].iter().all(|&b| b == 0) {
        n -= 1;
    }
    n
}
