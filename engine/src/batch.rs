//! RecordBatch v2 as raw bytes: full validation of client batches without allocating or
//! decoding records, and in-place assignment of offsets, leader epoch and LogAppendTime (with
//! the CRC recomputed only when a CRC-covered field changes). The header view itself is
//! `riptide-format`'s, shared with the broker, the client and the bench.
//!
//! Layout (big endian): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12,
//! magic i8 @16, crc u32 @17 (CRC-32C of bytes 21..end), attributes i16 @21,
//! lastOffsetDelta i32 @23, baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43,
//! producerEpoch i16 @51, baseSequence i32 @53, recordsCount i32 @57, records @61.

use crate::compression;
use crate::config::TimestampType;
use crate::error::{LogError, RecordError, RecordProblem};

use riptide_format::{at, attr};
pub use riptide_format::{
    codec, increment_sequence, BatchHeader, BATCH_LENGTH_MIN, HEADER_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2,
};

const PARTITION_LEADER_EPOCH_AT: usize = at::PARTITION_LEADER_EPOCH;
const CRC_AT: usize = at::CRC;
const ATTRIBUTES_AT: usize = at::ATTRIBUTES;
const MAX_TIMESTAMP_AT: usize = at::MAX_TIMESTAMP;
const ATTR_LOG_APPEND_TIME: i16 = attr::LOG_APPEND_TIME;

/// CRC-32C over attributes..end, as stored in the crc field.
pub fn compute_crc(batch: &[u8]) -> u32 {
    riptide_format::build::crc(batch)
}

/// Limits and clock that a client batch is validated against.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_message_bytes: u32,
    pub timestamp_type: TimestampType,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    pub now_ms: i64,
    /// Every record needs a key: the topic is compacted (`cleanup.policy` has `compact`).
    pub keys_required: bool,
    /// The most a compressed batch's records may decompress to (the log uses
    /// `compression::DECOMPRESSED_BYTES_MAX`; fuzzing a smaller bound keeps runs fast).
    pub decompressed_bytes_max: usize,
}

/// What validation learned about one batch.
#[derive(Clone, Copy, Debug)]
pub struct ValidBatch {
    pub header: BatchHeader,
    pub size_bytes: usize,
    /// Max timestamp of the records (from the records for uncompressed batches, else the header).
    pub max_timestamp_ms: i64,
    /// Offset delta of the first record carrying `max_timestamp_ms` (last delta if unknown).
    pub max_timestamp_delta: i32,
}

/// Length of the batch at the start of `buf` after checking its length fields, without
/// reading further. Errors if the buffer cannot hold a whole batch.
pub fn frame_len(buf: &[u8]) -> Result<usize, LogError> {
    let h =
        BatchHeader::parse(buf).ok_or(LogError::CorruptMessage("record batch shorter than its header"))?;
    let size = h.size_bytes().ok_or(LogError::CorruptMessage("batchLength below the header size"))?;
    if size > buf.len() {
        return Err(LogError::CorruptMessage("batchLength runs past the end of the record set"));
    }
    Ok(size)
}

/// Fully validates the client batch at the start of `buf` (which may hold more batches after it).
/// A compressed batch is decompressed (bounded, into the thread's scratch buffer) and its
/// records walked like an uncompressed one's: Kafka checks the records inside, too.
pub fn validate(buf: &[u8], limits: &Limits) -> Result<ValidBatch, LogError> {
    let size = frame_len(buf)?;
    let batch = &buf[..size];
    let h = BatchHeader::parse(batch).ok_or(LogError::CorruptMessage("short batch"))?;
    if size as u64 > u64::from(limits.max_message_bytes) {
        return Err(LogError::MessageTooLarge {
            size_bytes: size as u64,
            limit_bytes: u64::from(limits.max_message_bytes),
        });
    }
    check_magic(h.magic)?;
    if compute_crc(batch) != h.crc {
        return Err(LogError::CorruptMessage("CRC-32C mismatch"));
    }
    check_attributes(&h)?;
    check_counts_and_producer(&h)?;
    let records = &batch[HEADER_BYTES..];
    let walk = if h.codec() == codec::NONE {
        check_records(records, &h, limits)?
    } else {
        let limit = limits.decompressed_bytes_max;
        compression::with_decompressed(h.codec(), records, limit, |plain| check_records(plain, &h, limits))?
    };
    check_timestamp_type(&h, limits)?;
    Ok(ValidBatch {
        header: h,
        size_bytes: size,
        max_timestamp_ms: walk.max_timestamp_ms,
        max_timestamp_delta: walk.max_timestamp_delta,
    })
}

/// Walks a client batch's (uncompressed) records: framing, count and offset deltas, and each
/// record's own rules as Kafka's `LogValidator` has them — a key on a compacted topic, a
/// CreateTime timestamp inside the accepted window. Every offending record is named, as Kafka
/// names them; the list is allocated only when there is one.
fn check_records(records: &[u8], h: &BatchHeader, limits: &Limits) -> Result<RecordWalk, LogError> {
    let window = timestamp_window(limits);
    let mut errors = Vec::new();
    let mut index = 0i32;
    let walk = walk_records(records, h, Deltas::Contiguous, |r| {
        // One problem per record, the key's first (Kafka's order).
        let problem = if limits.keys_required && !r.has_key {
            Some(RecordProblem::NoKeyOnCompactedTopic)
        } else {
            window
                .filter(|&(earliest_ms, latest_ms)| {
                    r.timestamp_ms != -1 && (r.timestamp_ms < earliest_ms || r.timestamp_ms > latest_ms)
                })
                .map(|(earliest_ms, latest_ms)| RecordProblem::TimestampOutOfRange {
                    timestamp_ms: r.timestamp_ms,
                    earliest_ms,
                    latest_ms,
                })
        };
        if let Some(problem) = problem {
            errors.push(RecordError { batch_index: index, problem });
        }
        index += 1;
        true
    })?;
    if errors.is_empty() {
        Ok(walk)
    } else if errors.iter().any(|e| matches!(e.problem, RecordProblem::TimestampOutOfRange { .. })) {
        Err(LogError::InvalidRecordTimestamps(errors))
    } else {
        Err(LogError::InvalidRecords(errors))
    }
}

/// The window CreateTime timestamps must fall in (`message.timestamp.before/after.max.ms`
/// around now); none on a LogAppendTime topic, whose timestamps the broker sets.
fn timestamp_window(limits: &Limits) -> Option<(i64, i64)> {
    (limits.timestamp_type == TimestampType::CreateTime).then(|| {
        (
            limits.now_ms.saturating_sub(limits.timestamp_before_max_ms),
            limits.now_ms.saturating_add(limits.timestamp_after_max_ms),
        )
    })
}

/// A producer's record batches with their records compressed in `codec` instead (a topic's
/// `compression.type` other than `producer`, as Kafka's broker recompresses): `None` when
/// every batch is in `codec` already, or when one does not check out (a bad CRC or framing,
/// records that do not decompress): validation then refuses the batches as they came.
pub fn recompress_batches(bytes: &[u8], codec_id: u8, level: Option<i32>) -> Option<Vec<u8>> {
    use riptide_format::{BatchHeader, HEADER_BYTES};
    let mut out = Vec::with_capacity(bytes.len());
    let (mut pos, mut changed) = (0, false);
    let mut records = Vec::new();
    while pos < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..])?;
        let size = h.size_bytes().filter(|s| pos + s <= bytes.len())?;
        let batch = &bytes[pos..pos + size];
        pos += size;
        if h.codec() == codec_id || h.is_control() {
            out.extend_from_slice(batch);
            continue;
        }
        if compute_crc(batch) != h.crc {
            return None;
        }
        crate::compression::decompress_into(
            h.codec(),
            &batch[HEADER_BYTES..],
            crate::compression::DECOMPRESSED_BYTES_MAX,
            &mut records,
        )
        .ok()?;
        let packed = crate::compression::compress_at(codec_id, level, &records).ok()?;
        let start = out.len();
        out.extend_from_slice(&batch[..HEADER_BYTES]);
        out.extend_from_slice(&packed);
        let b = &mut out[start..];
        let attributes = (h.attributes & !riptide_format::attr::CODEC_MASK) | i16::from(codec_id);
        b[riptide_format::at::ATTRIBUTES..riptide_format::at::ATTRIBUTES + 2]
            .copy_from_slice(&attributes.to_be_bytes());
        let length = (b.len() - riptide_format::LOG_OVERHEAD_BYTES) as i32;
        b[riptide_format::at::BATCH_LENGTH..riptide_format::at::BATCH_LENGTH + 4]
            .copy_from_slice(&length.to_be_bytes());
        let crc = compute_crc(b);
        b[riptide_format::at::CRC..riptide_format::at::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        changed = true;
    }
    changed.then_some(out)
}

/// Checks a batch read back from disk (recovery): lengths, magic and CRC only.
pub fn check_stored(batch: &[u8]) -> Result<BatchHeader, LogError> {
    let size = frame_len(batch)?;
    let h = BatchHeader::parse(batch).ok_or(LogError::CorruptMessage("short batch"))?;
    check_magic(h.magic)?;
    if compute_crc(&batch[..size]) != h.crc {
        return Err(LogError::CorruptMessage("CRC-32C mismatch"));
    }
    if h.last_offset_delta < 0 {
        return Err(LogError::CorruptMessage("negative lastOffsetDelta"));
    }
    Ok(h)
}

fn check_magic(magic: i8) -> Result<(), LogError> {
    match magic {
        MAGIC_V2 => Ok(()),
        0 | 1 => Err(LogError::InvalidRecord("message format v0/v1 is not supported")),
        _ => Err(LogError::CorruptMessage("unknown magic byte")),
    }
}

fn check_attributes(h: &BatchHeader) -> Result<(), LogError> {
    if h.codec() > codec::ZSTD {
        return Err(LogError::InvalidRecord("unknown compression codec"));
    }
    if h.is_control() {
        return Err(LogError::InvalidRecord("clients may not produce control batches"));
    }
    if h.attributes & attr::SEALED != 0 {
        return Err(LogError::InvalidRecord("attribute bit 14 is reserved"));
    }
    Ok(())
}

fn check_counts_and_producer(h: &BatchHeader) -> Result<(), LogError> {
    if h.records_count <= 0 {
        return Err(LogError::InvalidRecord("record batch holds no records"));
    }
    if h.last_offset_delta != h.records_count - 1 {
        return Err(LogError::InvalidRecord("lastOffsetDelta does not match the record count"));
    }
    if h.producer_id < -1 {
        return Err(LogError::InvalidRecord("negative producer id"));
    }
    if h.is_idempotent() && (h.producer_epoch < 0 || h.base_sequence < 0) {
        return Err(LogError::InvalidRecord("idempotent batch without epoch or sequence"));
    }
    Ok(())
}

/// The batch-level timestamp rule: a producer may not claim LogAppendTime on a CreateTime
/// topic. Each record's own timestamp was checked on the walk.
fn check_timestamp_type(h: &BatchHeader, limits: &Limits) -> Result<(), LogError> {
    if limits.timestamp_type == TimestampType::CreateTime && h.is_log_append_time() {
        return Err(LogError::InvalidTimestamp("producer set LogAppendTime on a CreateTime topic"));
    }
    Ok(())
}

/// Result of walking the records of a batch.
#[derive(Clone, Copy, Debug)]
pub struct RecordWalk {
    pub max_timestamp_ms: i64,
    pub max_timestamp_delta: i32,
    /// Set when the callback stopped the walk: (offset delta, timestamp) of that record.
    pub stopped_at: Option<(i32, i64)>,
}

/// What a record walk reads of each record.
#[derive(Clone, Copy, Debug)]
pub struct RecordMeta {
    pub offset_delta: i32,
    /// Absolute: the batch's base timestamp plus the record's delta.
    pub timestamp_ms: i64,
    /// False for a null key (length -1); an empty key is a key.
    pub has_key: bool,
}

/// Which offset deltas a record walk accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deltas {
    /// A producer's batch: exactly 0..n-1.
    Contiguous,
    /// A stored batch, possibly compacted: strictly increasing, at most lastOffsetDelta.
    Increasing,
}

/// Walks the varint framing of `records` (the uncompressed records section), checking that
/// there are exactly `recordsCount` records with offset deltas as `deltas` says and that every
/// length is consistent. Calls `f` per record; returning false stops the walk.
///
/// Bytes that do not parse as records are framing (CORRUPT_MESSAGE); whole records that
/// disagree with the header's count or deltas are the record-level INVALID_RECORD, as Kafka
/// answers a declared count that does not match ("Incorrect declared batch size").
pub fn walk_records(
    records: &[u8],
    h: &BatchHeader,
    deltas: Deltas,
    mut f: impl FnMut(RecordMeta) -> bool,
) -> Result<RecordWalk, LogError> {
    let mut previous = -1;
    let mut r = Reader { buf: records, pos: 0 };
    let mut walk = RecordWalk { max_timestamp_ms: i64::MIN, max_timestamp_delta: 0, stopped_at: None };
    for i in 0..h.records_count {
        if r.remaining() == 0 {
            return Err(LogError::InvalidRecord("fewer records than the batch's record count"));
        }
        let meta = read_record(&mut r, h.base_timestamp)?;
        let (delta, ts) = (meta.offset_delta, meta.timestamp_ms);
        let in_order = match deltas {
            Deltas::Contiguous => delta == i,
            Deltas::Increasing => delta > previous && delta <= h.last_offset_delta,
        };
        if !in_order {
            return Err(LogError::InvalidRecord("record offset deltas are not 0..n-1"));
        }
        previous = delta;
        if ts > walk.max_timestamp_ms {
            walk.max_timestamp_ms = ts;
            walk.max_timestamp_delta = delta;
        }
        if !f(meta) {
            walk.stopped_at = Some((delta, ts));
            return Ok(walk);
        }
    }
    if r.pos != records.len() {
        return Err(leftover_error(&mut r, h.base_timestamp));
    }
    Ok(walk)
}

/// Why bytes are left after the declared records: more whole records (the count is wrong) or
/// bytes that are no record at all (framing). Only on the error path.
fn leftover_error(r: &mut Reader<'_>, base_ts: i64) -> LogError {
    while r.remaining() > 0 {
        if read_record(r, base_ts).is_err() {
            return LogError::CorruptMessage("bytes left after the last record");
        }
    }
    LogError::InvalidRecord("more records than the batch's record count")
}

/// Reads one record: its offset delta, absolute timestamp and whether it has a key.
fn read_record(r: &mut Reader<'_>, base_ts: i64) -> Result<RecordMeta, LogError> {
    const BAD: LogError = LogError::CorruptMessage("malformed record framing");
    let len = r.varint().ok_or(BAD)?;
    if len < 0 || len as usize > r.remaining() {
        return Err(BAD);
    }
    let end = r.pos + len as usize;
    let mut body = Reader { buf: &r.buf[..end], pos: r.pos };
    body.skip(1).ok_or(BAD)?; // attributes
    let ts_delta = body.varlong().ok_or(BAD)?;
    let offset_delta = body.varint().ok_or(BAD)?;
    let has_key = body.bytes_field(-1).ok_or(BAD)?; // key
    body.bytes_field(-1).ok_or(BAD)?; // value
    let headers = body.varint().ok_or(BAD)?;
    if headers < 0 {
        return Err(BAD);
    }
    for _ in 0..headers {
        body.bytes_field(0).ok_or(BAD)?; // header key: non-null string
        body.bytes_field(-1).ok_or(BAD)?; // header value
    }
    if body.pos != end {
        return Err(LogError::CorruptMessage("record length does not match its fields"));
    }
    r.pos = end;
    Ok(RecordMeta { offset_delta, timestamp_ms: base_ts.wrapping_add(ts_delta), has_key })
}

/// A bounds-checked cursor over a byte slice; every read returns `None` past the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        if n > self.remaining() {
            return None;
        }
        self.pos += n;
        Some(())
    }

    /// Unsigned LEB128 of at most `max_bytes` bytes.
    fn uvarint(&mut self, max_bytes: usize) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn varint(&mut self) -> Option<i32> {
        let u = self.uvarint(5)?;
        let u = u32::try_from(u).ok()?;
        Some(((u >> 1) as i32) ^ -((u & 1) as i32))
    }

    fn varlong(&mut self) -> Option<i64> {
        let u = self.uvarint(10)?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A varint length followed by that many bytes; lengths below `min_len` are rejected
    /// (-1 = null is allowed when `min_len` is -1). True when the field is not null.
    fn bytes_field(&mut self, min_len: i32) -> Option<bool> {
        let len = self.varint()?;
        if len < min_len {
            return None;
        }
        if len > 0 {
            self.skip(len as usize)?;
        }
        Some(len >= 0)
    }
}

/// How the broker rewrites a validated batch before storing it.
#[derive(Clone, Copy, Debug)]
pub struct Assignment {
    pub base_offset: riptide_model::Offset,
    pub leader_epoch: riptide_model::LeaderEpoch,
    /// `Some(now)` to stamp LogAppendTime.
    pub log_append_time_ms: Option<i64>,
}

/// Writes base offset and leader epoch in place (outside the CRC); sets LogAppendTime or
/// corrects the max timestamp, recomputing the CRC only when such a CRC-covered field changes.
pub fn assign(batch: &mut [u8], v: &ValidBatch, a: &Assignment) {
    assert_eq!(batch.len(), v.size_bytes, "assign needs exactly one batch");
    batch[0..8].copy_from_slice(&a.base_offset.0.to_be_bytes());
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&a.leader_epoch.0.to_be_bytes());
    let (attributes, max_ts) = match a.log_append_time_ms {
        Some(now) => (v.header.attributes | ATTR_LOG_APPEND_TIME, now),
        None => (v.header.attributes, v.max_timestamp_ms),
    };
    if attributes == v.header.attributes && max_ts == v.header.max_timestamp {
        return;
    }
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_ts.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wraps_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    }

    use riptide_format::build::{self, BatchFields, RecordFields};
    use std::io::Write;

    fn limits(keys_required: bool) -> Limits {
        Limits {
            max_message_bytes: 1 << 20,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            now_ms: 1_000,
            keys_required,
            decompressed_bytes_max: 1 << 20,
        }
    }

    /// Records with these keys, offset deltas 0..n-1, timestamps 100 + 10 * delta.
    fn section(keys: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let r = RecordFields {
                offset_delta: i as i64,
                timestamp_delta: 10 * i as i64,
                key: *key,
                value: Some(b"value"),
                headers: std::iter::empty(),
            };
            build::put_record(&mut out, r);
        }
        out
    }

    fn compress(codec_id: u8, plain: &[u8]) -> Vec<u8> {
        match codec_id {
            codec::NONE => plain.to_vec(),
            codec::GZIP => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(plain).expect("gzip");
                e.finish().expect("gzip")
            }
            codec::SNAPPY => snap::raw::Encoder::new().compress_vec(plain).expect("snappy"),
            codec::LZ4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(plain).expect("lz4");
                e.finish().expect("lz4")
            }
            _ => zstd::encode_all(plain, 3).expect("zstd"),
        }
    }

    /// A batch of `count` records (per its header) whose records section is `payload`.
    fn batch_of(payload: &[u8], count: i32, codec_id: u8) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_BYTES];
        b.extend_from_slice(payload);
        build::write_header(&mut b, &BatchFields::plain(count, 100, 100, i16::from(codec_id)));
        b
    }

    const CODECS: [u8; 5] = [codec::NONE, codec::GZIP, codec::SNAPPY, codec::LZ4, codec::ZSTD];

    #[test]
    fn compressed_records_are_walked_like_plain_ones() {
        let three = section(&[Some(b"a"), Some(b"b"), Some(b"c")]);
        for c in CODECS {
            let v = validate(&batch_of(&compress(c, &three), 3, c), &limits(false)).expect("valid");
            // From the records, not the header's 100: the header is the producer's word.
            assert_eq!((v.max_timestamp_ms, v.max_timestamp_delta), (120, 2), "codec {c}");
            for (count, what) in [(4, "more declared"), (2, "fewer declared")] {
                let e = validate(&batch_of(&compress(c, &three), count, c), &limits(false));
                assert!(matches!(e, Err(LogError::InvalidRecord(_))), "codec {c}, {what}: {e:?}");
            }
            let cut = compress(c, &three[..three.len() - 1]);
            let e = validate(&batch_of(&cut, 3, c), &limits(false));
            assert!(matches!(e, Err(LogError::CorruptMessage(_))), "codec {c}, cut short: {e:?}");
            let mut trailing = three.clone();
            trailing.push(0);
            let e = validate(&batch_of(&compress(c, &trailing), 3, c), &limits(false));
            assert!(matches!(e, Err(LogError::CorruptMessage(_))), "codec {c}, a stray byte: {e:?}");
            if c != codec::NONE {
                let e = validate(&batch_of(b"no codec reads this", 3, c), &limits(false));
                assert!(matches!(e, Err(LogError::CorruptMessage(_))), "codec {c}, garbage: {e:?}");
            }
        }
    }

    #[test]
    fn keyless_records_are_named_only_where_keys_are_required() {
        let mixed = section(&[Some(b"a"), None, Some(b""), None]);
        for c in CODECS {
            let b = batch_of(&compress(c, &mixed), 4, c);
            validate(&b, &limits(false)).expect("keys are optional on other topics");
            let Err(LogError::InvalidRecords(errors)) = validate(&b, &limits(true)) else {
                panic!("codec {c}: keyless records pass on a compacted topic")
            };
            let indexes: Vec<i32> = errors.iter().map(|e| e.batch_index).collect();
            assert_eq!(indexes, [1, 3], "codec {c}: an empty key is a key");
            assert!(errors.iter().all(|e| e.problem == RecordProblem::NoKeyOnCompactedTopic));
        }
        // The count is checked before keys: a malformed batch is not blamed on its keys.
        let e = validate(&batch_of(&mixed, 5, codec::NONE), &limits(true));
        assert!(matches!(e, Err(LogError::InvalidRecord(_))), "{e:?}");
    }

    #[test]
    fn every_record_timestamp_is_checked_not_only_the_header() {
        // Base 100 (the first record) and max 130 are in [50, 150]; record 2 at 100 - 80 = 20
        // is not, which the header alone does not show.
        let mut out = Vec::new();
        for (delta, ts_delta) in [(0i64, 0i64), (1, 30), (2, -80)] {
            let r = RecordFields {
                offset_delta: delta,
                timestamp_delta: ts_delta,
                key: Some(b"k"),
                value: Some(b"v"),
                headers: std::iter::empty(),
            };
            build::put_record(&mut out, r);
        }
        let window =
            Limits { timestamp_before_max_ms: 50, timestamp_after_max_ms: 50, now_ms: 100, ..limits(true) };
        for c in CODECS {
            let b = batch_of(&compress(c, &out), 3, c);
            let Err(LogError::InvalidRecordTimestamps(errors)) = validate(&b, &window) else {
                panic!("codec {c}: a record outside the window passed")
            };
            let want =
                RecordProblem::TimestampOutOfRange { timestamp_ms: 20, earliest_ms: 50, latest_ms: 150 };
            assert_eq!(errors, [RecordError { batch_index: 2, problem: want }], "codec {c}");
            let append_time = Limits { timestamp_type: TimestampType::LogAppendTime, ..window };
            validate(&b, &append_time).expect("the broker sets LogAppendTime timestamps");
        }
    }

    #[test]
    fn varints_decode_zigzag() {
        let mut r = Reader { buf: &[0x01, 0x02, 0x96, 0x01, 0x7f], pos: 0 };
        assert_eq!(r.varint(), Some(-1));
        assert_eq!(r.varint(), Some(1));
        assert_eq!(r.varint(), Some(75));
        assert_eq!(r.varint(), Some(-64));
        assert_eq!(r.varint(), None);
        let mut r = Reader { buf: &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], pos: 0 };
        assert_eq!(r.varint(), None, "six-byte varint is rejected");
    }
}
