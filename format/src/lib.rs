//! riptide-format: the one view of Kafka's RecordBatch v2 header that the engine, the broker,
//! the client and the bench share, so that no crate parses a header by byte offset on its own,
//! and (`build`) the one writer of batches. No I/O; the writer appends to the caller's buffer.
//!
//! Layout (big endian): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12,
//! magic i8 @16, crc u32 @17 (CRC-32C of bytes 21..end), attributes i16 @21,
//! lastOffsetDelta i32 @23, baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43,
//! producerEpoch i16 @51, baseSequence i32 @53, recordsCount i32 @57, records @61.
#![deny(clippy::unwrap_used)]

pub mod build;
pub mod control;

/// Bytes before the records: the fixed batch header.
pub const HEADER_BYTES: usize = 61;
/// baseOffset + batchLength: the part of a batch not counted in batchLength.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Smallest legal batchLength (a header with no records).
pub const BATCH_LENGTH_MIN: i32 = (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
/// The only record format accepted.
pub const MAGIC_V2: i8 = 2;

/// Field positions, for the few writers that patch a header in place.
pub mod at {
    pub const BASE_OFFSET: usize = 0;
    pub const BATCH_LENGTH: usize = 8;
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORDS_COUNT: usize = 57;
}

/// Bits of the attributes field.
pub mod attr {
    pub const CODEC_MASK: i16 = 0x07;
    pub const LOG_APPEND_TIME: i16 = 0x08;
    pub const TRANSACTIONAL: i16 = 0x10;
    pub const CONTROL: i16 = 0x20;
    /// Riptide only, on disk only: the records are sealed (encrypted at rest). Clients never
    /// see it: the broker opens such batches before it answers, and refuses it on produce.
    pub const SEALED: i16 = 0x4000;
}

/// Compression codec ids in the attributes field.
pub mod codec {
    pub const NONE: u8 = 0;
    pub const GZIP: u8 = 1;
    pub const SNAPPY: u8 = 2;
    pub const LZ4: u8 = 3;
    pub const ZSTD: u8 = 4;
}

/// The fixed header of a RecordBatch v2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the 61-byte header at the start of `b`; `None` if `b` is shorter.
    pub fn parse(b: &[u8]) -> Option<BatchHeader> {
        if b.len() < HEADER_BYTES {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(b, at::BASE_OFFSET),
            batch_length: be_i32(b, at::BATCH_LENGTH),
            partition_leader_epoch: be_i32(b, at::PARTITION_LEADER_EPOCH),
            magic: b[at::MAGIC] as i8,
            crc: be_i32(b, at::CRC) as u32,
            attributes: be_i16(b, at::ATTRIBUTES),
            last_offset_delta: be_i32(b, at::LAST_OFFSET_DELTA),
            base_timestamp: be_i64(b, at::BASE_TIMESTAMP),
            max_timestamp: be_i64(b, at::MAX_TIMESTAMP),
            producer_id: be_i64(b, at::PRODUCER_ID),
            producer_epoch: be_i16(b, at::PRODUCER_EPOCH),
            base_sequence: be_i32(b, at::BASE_SEQUENCE),
            records_count: be_i32(b, at::RECORDS_COUNT),
        })
    }

    /// Whole batch size on disk, or `None` if batchLength is below the minimum.
    pub fn size_bytes(&self) -> Option<usize> {
        if self.batch_length < BATCH_LENGTH_MIN {
            return None;
        }
        Some(self.batch_length as usize + LOG_OVERHEAD_BYTES)
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The offset after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn codec(&self) -> u8 {
        (self.attributes & attr::CODEC_MASK) as u8
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & attr::LOG_APPEND_TIME != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & attr::TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & attr::CONTROL != 0
    }

    pub fn is_idempotent(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record, wrapping at i32::MAX like Kafka.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// `seq + n` with Kafka's wrap-around from i32::MAX to 0. Computed in i64 so that a damaged
/// header read from disk (negative fields) gives a wrong number instead of an overflow panic.
pub fn increment_sequence(seq: i32, n: i32) -> i32 {
    let sum = i64::from(seq) + i64::from(n);
    if sum > i64::from(i32::MAX) {
        (sum - i64::from(i32::MAX) - 1) as i32
    } else {
        sum as i32
    }
}

/// A batch whose framing is impossible (batchLength below the minimum): nothing after it can
/// be split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadFraming {
    /// Byte position of the batch in the buffer.
    pub position: usize,
    pub base_offset: i64,
    pub batch_length: i32,
}

impl std::fmt::Display for BadFraming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch at offset {} has length {}", self.base_offset, self.batch_length)
    }
}

/// The whole batches at the start of `bytes`, in order, each with its header: a truncated
/// trailing batch (a fetch may end in one) ends the iteration quietly; impossible framing
/// ends it with an error. Nothing is validated beyond the length (magic, CRC are the caller's).
pub fn whole_batches(bytes: &[u8]) -> WholeBatches<'_> {
    WholeBatches { bytes, position: 0, failed: false }
}

pub struct WholeBatches<'a> {
    bytes: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> WholeBatches<'a> {
    /// Bytes consumed by the batches returned so far.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for WholeBatches<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BadFraming>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = &self.bytes[self.position..];
        if rest.len() < LOG_OVERHEAD_BYTES {
            return None;
        }
        let base_offset = be_i64(rest, at::BASE_OFFSET);
        let batch_length = be_i32(rest, at::BATCH_LENGTH);
        if batch_length < BATCH_LENGTH_MIN {
            self.failed = true;
            return Some(Err(BadFraming { position: self.position, base_offset, batch_length }));
        }
        let total = batch_length as usize + LOG_OVERHEAD_BYTES;
        if rest.len() < total {
            return None; // truncated trailing batch
        }
        let batch = &rest[..total];
        self.position += total;
        let header = BatchHeader::parse(batch)?; // total >= HEADER_BYTES by the length check
        Some(Ok((header, batch)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, records: usize) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_BYTES + records];
        b[..8].copy_from_slice(&base.to_be_bytes());
        b[8..12].copy_from_slice(&((HEADER_BYTES + records - LOG_OVERHEAD_BYTES) as i32).to_be_bytes());
        b[at::MAGIC] = 2;
        b[at::LAST_OFFSET_DELTA..at::LAST_OFFSET_DELTA + 4].copy_from_slice(&3i32.to_be_bytes());
        b[at::ATTRIBUTES + 1] = 0x20 | 4;
        b
    }

    #[test]
    fn splits_whole_batches_and_stops_at_a_truncated_one() {
        let mut bytes = batch(10, 5);
        bytes.extend(batch(14, 0));
        let third = batch(20, 9);
        bytes.extend(&third[..30]);
        let mut it = whole_batches(&bytes);
        let (h, b) = it.next().expect("first").expect("framed");
        assert_eq!(
            (h.base_offset, h.next_offset(), b.len(), h.codec(), h.is_control()),
            (10, 14, 66, 4, true)
        );
        let (h, _) = it.next().expect("second").expect("framed");
        assert_eq!(h.base_offset, 14);
        assert!(it.next().is_none(), "truncated third batch is left for the next read");
        assert_eq!(it.position(), 66 + 61);
    }

    #[test]
    fn impossible_length_is_an_error_then_the_end() {
        let mut bytes = batch(7, 0);
        bytes[8..12].copy_from_slice(&5i32.to_be_bytes());
        let mut it = whole_batches(&bytes);
        let e = it.next().expect("item").expect_err("bad framing");
        assert_eq!((e.base_offset, e.batch_length, e.position), (7, 5, 0));
        assert!(it.next().is_none());
        assert!(BatchHeader::parse(&bytes[..60]).is_none());
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
    }
}
