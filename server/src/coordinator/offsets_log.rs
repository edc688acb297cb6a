//! The records of `__consumer_offsets`, in Kafka's formats (group-coordinator JSON schemas), and
//! the RecordBatch v2 framing used to write and re-read them.
//!
//! Keys start with an int16 record type: 0 or 1 = OffsetCommitKey (group, topic, partition),
//! 2 = GroupMetadataKey (group), 11 = ShareGroupMetadataKey (group), 15 =
//! ShareGroupStatePartitionMetadataKey (group). Values start with an int16 version. A null
//! value is a tombstone. We write OffsetCommitValue v3 and GroupMetadataValue v3 (the last
//! non-flexible versions, readable by every Kafka since 2.3) and read versions 0..=3 of both.
//! A share group (KIP-932) is kept as its epoch (ShareGroupMetadataValue v0: Epoch,
//! MetadataHash, flexible) and the topic-partitions whose share state was initialized
//! (ShareGroupStatePartitionMetadataValue v0: initializing, initialized and deleting topics,
//! flexible; Riptide writes only initialized ones); its members are not persisted, as in Kafka.
//! Record types we don't know (KIP-848's) decode to [`LogRecord::Other`] and are skipped, as
//! Kafka skips what it doesn't know.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use riptide_format::build::{self, BatchFields, RecordFields};
use riptide_format::{whole_batches, HEADER_BYTES};
use riptide_model::{LeaderEpoch, Offset};

/// The internal topic's name.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

const OFFSET_KEY_TYPE: i16 = 1;
const GROUP_KEY_TYPE: i16 = 2;
const SHARE_GROUP_KEY_TYPE: i16 = 11;
const SHARE_PARTITIONS_KEY_TYPE: i16 = 15;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;
/// Upper bound on member counts and byte lengths read back from the log.
const DECODE_COUNT_MAX: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: Offset,
    pub leader_epoch: LeaderEpoch,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only in value version 1; -1 otherwise.
    pub expire_timestamp_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

/// One decoded record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        value: Option<GroupValue>,
    },
    /// A share group's epoch (`None`: the group was deleted).
    ShareGroup {
        group: String,
        epoch: Option<i32>,
    },
    /// A share group's topic-partitions with initialized state, as (topic id, name,
    /// partitions) (`None`: deleted with the group).
    SharePartitions {
        group: String,
        topics: Option<Vec<SharedTopic>>,
    },
    /// A record type this broker doesn't interpret.
    Other,
}

/// A topic of a share group with initialized share-partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedTopic {
    pub topic_id: u128,
    pub name: String,
    pub partitions: Vec<i32>,
}

/// What a control batch in `__consumer_offsets` says: a transaction's offsets (written by
/// TxnOffsetCommit in a transactional batch of that producer) become visible, or are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnEnd {
    pub producer_id: i64,
    pub commit: bool,
}

/// A key and value ready to be written; `value: None` is a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record truncated")]
    Truncated,
    #[error("invalid string or length {0}")]
    BadLength(i64),
    #[error("unsupported {0} version {1}")]
    UnsupportedVersion(&'static str, i16),
    #[error("record without a key")]
    NoKey,
    #[error("invalid utf-8")]
    Utf8,
    /// `__transaction_state` values (`txn::log`), which share this reader.
    #[error("unknown transaction status {0}")]
    BadStatus(i8),
}

pub(super) fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len().min(i16::MAX as usize) as i16);
    buf.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + group.len() + topic.len());
    buf.put_i16(OFFSET_KEY_TYPE);
    put_string(&mut buf, group);
    put_string(&mut buf, topic);
    buf.put_i32(partition);
    buf.freeze()
}

/// A key of record type `record_type` naming only a group.
fn group_keyed(record_type: i16, group: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + group.len());
    buf.put_i16(record_type);
    put_string(&mut buf, group);
    buf.freeze()
}

pub fn group_key(group: &str) -> Bytes {
    group_keyed(GROUP_KEY_TYPE, group)
}

pub fn share_group_key(group: &str) -> Bytes {
    group_keyed(SHARE_GROUP_KEY_TYPE, group)
}

pub fn share_partitions_key(group: &str) -> Bytes {
    group_keyed(SHARE_PARTITIONS_KEY_TYPE, group)
}

/// An unsigned varint (flexible versions' lengths and tags), for every coordinator log.
pub(super) fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_compact_string(buf: &mut BytesMut, s: &str) {
    put_uvarint(buf, s.len() as u64 + 1);
    buf.put_slice(s.as_bytes());
}

/// ShareGroupMetadataValue v0. The metadata hash is 0: Riptide recomputes assignments from the
/// catalog after a load rather than comparing hashes.
pub fn share_group_value(epoch: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(16);
    buf.put_i16(0);
    buf.put_i32(epoch);
    buf.put_i64(0);
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

/// ShareGroupStatePartitionMetadataValue v0 with `topics` initialized.
pub fn share_partitions_value(topics: &[SharedTopic]) -> Bytes {
    let mut buf = BytesMut::with_capacity(16 + topics.len() * 64);
    buf.put_i16(0);
    put_uvarint(&mut buf, 1); // initializing: none
    put_uvarint(&mut buf, topics.len() as u64 + 1);
    for t in topics {
        buf.put_u128(t.topic_id);
        put_compact_string(&mut buf, &t.name);
        put_uvarint(&mut buf, t.partitions.len() as u64 + 1);
        for p in &t.partitions {
            buf.put_i32(*p);
        }
        put_uvarint(&mut buf, 0);
    }
    put_uvarint(&mut buf, 1); // deleting: none
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

pub fn offset_value(v: &OffsetValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(32 + v.metadata.len());
    buf.put_i16(OFFSET_VALUE_VERSION);
    buf.put_i64(v.offset.0);
    buf.put_i32(v.leader_epoch.0);
    put_string(&mut buf, &v.metadata);
    buf.put_i64(v.commit_timestamp_ms);
    buf.freeze()
}

pub fn group_value(v: &GroupValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(GROUP_VALUE_VERSION);
    put_string(&mut buf, &v.protocol_type);
    buf.put_i32(v.generation);
    put_nullable_string(&mut buf, v.protocol.as_deref());
    put_nullable_string(&mut buf, v.leader.as_deref());
    buf.put_i64(v.current_state_timestamp_ms);
    buf.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_string(&mut buf, &m.member_id);
        put_nullable_string(&mut buf, m.group_instance_id.as_deref());
        put_string(&mut buf, &m.client_id);
        put_string(&mut buf, &m.client_host);
        buf.put_i32(m.rebalance_timeout_ms);
        buf.put_i32(m.session_timeout_ms);
        put_bytes(&mut buf, &m.subscription);
        put_bytes(&mut buf, &m.assignment);
    }
    buf.freeze()
}

/// A bounds-checked reader over one key or value (also `__transaction_state`'s, `txn::log`).
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub(super) fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(self.take(1)?[0] as i8)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(super) fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(super) fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn nullable_string(&mut self) -> Result<Option<String>, DecodeError> {
        let len = self.i16()?;
        if len < 0 {
            return if len == -1 { Ok(None) } else { Err(DecodeError::BadLength(len.into())) };
        }
        let b = self.take(len as usize)?;
        String::from_utf8(b.to_vec()).map(Some).map_err(|_| DecodeError::Utf8)
    }

    pub(super) fn string(&mut self) -> Result<String, DecodeError> {
        self.nullable_string()?.ok_or(DecodeError::BadLength(-1))
    }

    /// An unsigned varint (flexible versions' lengths and tags).
    pub(super) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..5 {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::BadLength(-1))
    }

    pub(super) fn take_slice(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.take(n)
    }

    /// A flexible version's string (length + 1 as a varint; 0 is null).
    pub(super) fn compact_string(&mut self) -> Result<String, DecodeError> {
        let n = self.uvarint()?;
        let len = usize::try_from(n.checked_sub(1).ok_or(DecodeError::BadLength(-1))?)
            .map_err(|_| DecodeError::BadLength(-1))?;
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Utf8)
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        if len as usize > DECODE_COUNT_MAX * 64 {
            return Err(DecodeError::BadLength(len.into()));
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
}

impl Reader<'_> {
    /// A flexible array's length (length + 1 as a varint; 0 is null, read as empty).
    fn compact_len(&mut self) -> Result<usize, DecodeError> {
        let n = self.uvarint()?.saturating_sub(1) as usize;
        // Every element takes at least a byte: a longer count is garbage.
        if n > self.buf.len() {
            return Err(DecodeError::BadLength(n as i64));
        }
        Ok(n)
    }

    fn skip_tagged(&mut self) -> Result<(), DecodeError> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

fn decode_share_group_value(bytes: &[u8]) -> Result<i32, DecodeError> {
    let mut r = Reader { buf: bytes };
    let version = r.i16()?;
    if version != 0 {
        return Err(DecodeError::UnsupportedVersion("ShareGroupMetadataValue", version));
    }
    let epoch = r.i32()?;
    let _metadata_hash = r.i64()?;
    r.skip_tagged()?;
    Ok(epoch)
}

fn decode_share_partitions_value(bytes: &[u8]) -> Result<Vec<SharedTopic>, DecodeError> {
    let mut r = Reader { buf: bytes };
    let version = r.i16()?;
    if version != 0 {
        return Err(DecodeError::UnsupportedVersion("ShareGroupStatePartitionMetadataValue", version));
    }
    // Initializing and initialized topics both have state by the time anyone reads it
    // (Riptide's leaders initialize a share-partition when they first serve it).
    let mut topics = Vec::new();
    for _ in 0..2 {
        for _ in 0..r.compact_len()? {
            let b = r.take(16)?;
            let topic_id = u128::from_be_bytes(b.try_into().map_err(|_| DecodeError::Truncated)?);
            let name = r.compact_string()?;
            let mut partitions = Vec::new();
            for _ in 0..r.compact_len()? {
                partitions.push(r.i32()?);
            }
            r.skip_tagged()?;
            topics.push(SharedTopic { topic_id, name, partitions });
        }
    }
    for _ in 0..r.compact_len()? {
        r.take(16)?;
        r.compact_string()?;
        r.skip_tagged()?;
    }
    r.skip_tagged()?;
    Ok(topics)
}

fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, DecodeError> {
    let mut r = Reader { buf: bytes };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(DecodeError::UnsupportedVersion("OffsetCommitValue", version));
    }
    let offset = Offset(r.i64()?);
    let leader_epoch = LeaderEpoch(if version >= 3 { r.i32()? } else { -1 });
    let metadata = r.string()?;
    let commit_timestamp_ms = r.i64()?;
    let expire_timestamp_ms = if version == 1 { r.i64()? } else { -1 };
    Ok(OffsetValue { offset, leader_epoch, metadata, commit_timestamp_ms, expire_timestamp_ms })
}

fn decode_group_value(bytes: &[u8]) -> Result<GroupValue, DecodeError> {
    let mut r = Reader { buf: bytes };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(DecodeError::UnsupportedVersion("GroupMetadataValue", version));
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    if count < 0 || count as usize > DECODE_COUNT_MAX {
        return Err(DecodeError::BadLength(count.into()));
    }
    let mut members = Vec::with_capacity((count as usize).min(1024));
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 { r.nullable_string()? } else { None };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let rebalance_timeout_ms =
            if rebalance_timeout_ms < 0 { session_timeout_ms } else { rebalance_timeout_ms };
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp_ms, members })
}

/// Decodes one record's key and value.
pub fn decode_record(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<LogRecord, DecodeError> {
    let key = key.ok_or(DecodeError::NoKey)?;
    let mut r = Reader { buf: key };
    match r.i16()? {
        0 | 1 => {
            let group = r.string()?;
            let topic = r.string()?;
            let partition = r.i32()?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(LogRecord::Offset { group, topic, partition, value })
        }
        2 => {
            let group = r.string()?;
            let value = value.map(decode_group_value).transpose()?;
            Ok(LogRecord::Group { group, value })
        }
        SHARE_GROUP_KEY_TYPE => {
            let group = r.string()?;
            let epoch = value.map(decode_share_group_value).transpose()?;
            Ok(LogRecord::ShareGroup { group, epoch })
        }
        SHARE_PARTITIONS_KEY_TYPE => {
            let group = r.string()?;
            let topics = value.map(decode_share_partitions_value).transpose()?;
            Ok(LogRecord::SharePartitions { group, topics })
        }
        _ => Ok(LogRecord::Other),
    }
}

/// One uncompressed RecordBatch v2 holding `records` in order, offsets 0.. (the log assigns
/// the real base offset in place).
pub fn encode_batch(records: &[KeyValue], timestamp_ms: i64) -> Result<Bytes, String> {
    encode_batch_as(records, timestamp_ms, None)
}

/// `encode_batch` as a transactional batch of producer (id, epoch): TxnOffsetCommit's
/// records, pending until the producer's marker (sequence 0: the log skips the check for a
/// coordinator's batches).
pub fn encode_txn_batch(
    records: &[KeyValue],
    timestamp_ms: i64,
    producer: (i64, i16),
) -> Result<Bytes, String> {
    encode_batch_as(records, timestamp_ms, Some(producer))
}

fn encode_batch_as(
    records: &[KeyValue],
    timestamp_ms: i64,
    producer: Option<(i64, i16)>,
) -> Result<Bytes, String> {
    let count =
        i32::try_from(records.len()).ok().filter(|n| *n > 0).ok_or("a batch of 1..=i32::MAX records")?;
    let mut buf = BytesMut::with_capacity(HEADER_BYTES + records.len() * 64);
    build::put_header_room(&mut buf);
    for (i, kv) in records.iter().enumerate() {
        build::put_record(
            &mut buf,
            RecordFields {
                offset_delta: i as i64,
                timestamp_delta: 0,
                key: Some(&kv.key),
                value: kv.value.as_deref(),
                headers: std::iter::empty(),
            },
        );
    }
    let fields = match producer {
        None => BatchFields::plain(count, timestamp_ms, timestamp_ms, 0),
        Some((producer_id, producer_epoch)) => BatchFields {
            producer_id,
            producer_epoch,
            base_sequence: 0,
            ..BatchFields::plain(count, timestamp_ms, timestamp_ms, riptide_format::attr::TRANSACTIONAL)
        },
    };
    build::write_header(&mut buf, &fields);
    Ok(buf.freeze())
}

/// One entry of a log chunk, in log order.
#[derive(Debug)]
pub enum ChunkEntry {
    /// A record; `txn_producer` is set when it belongs to a producer's transaction.
    Record { offset: i64, txn_producer: Option<i64>, record: Result<LogRecord, DecodeError> },
    /// A COMMIT or ABORT marker.
    Marker(TxnEnd),
}

/// What one pass over a chunk of log bytes found.
#[derive(Debug, Default)]
pub struct DecodedChunk {
    /// Every record and marker of every complete batch, in log order.
    pub entries: Vec<ChunkEntry>,
    /// The offset after the last complete batch (0 if none was complete).
    pub next_offset: Option<i64>,
    /// Batches that could not be decoded (e.g. compressed by a foreign writer).
    pub skipped_batches: usize,
}

/// A record's key and value as stored, with its offset and transaction, for logs of other
/// record formats (`__transaction_state`).
pub type RawRecord = (i64, Option<i64>, Option<Bytes>, Option<Bytes>);

/// A raw record or a marker.
pub enum RawEntry {
    Record(RawRecord),
    Marker(TxnEnd),
}

/// Splits `bytes` (whole batches as a log read returns them; a truncated tail is ignored) into
/// raw records and markers, handed to `on` in log order. Returns (next offset, skipped
/// batches).
pub fn scan_chunk(bytes: &Bytes, mut on: impl FnMut(RawEntry)) -> (Option<i64>, usize) {
    let (mut next_offset, mut skipped) = (None, 0);
    let mut batches = whole_batches(bytes);
    // Corrupt framing stops the pass; the caller sees no progress past it.
    while let Some(Ok((header, batch))) = batches.next() {
        next_offset = Some(header.next_offset());
        if header.is_control() {
            if let Some(control) = riptide_format::control::control_type(batch) {
                let commit = control == riptide_format::control::ControlType::Commit;
                on(RawEntry::Marker(TxnEnd { producer_id: header.producer_id, commit }));
            }
            continue;
        }
        let txn = header.is_transactional().then_some(header.producer_id);
        let start = batches.position() - batch.len();
        let mut batch = bytes.slice(start..batches.position());
        match RecordBatchDecoder::decode(&mut batch) {
            Ok(set) => {
                for rec in set.records {
                    on(RawEntry::Record((rec.offset, txn, rec.key, rec.value)));
                }
            }
            Err(_) => skipped += 1,
        }
    }
    (next_offset, skipped)
}

/// `scan_chunk` decoding `__consumer_offsets` records.
pub fn decode_chunk(bytes: &Bytes) -> DecodedChunk {
    let mut entries = Vec::new();
    let (next_offset, skipped_batches) = scan_chunk(bytes, |e| {
        entries.push(match e {
            RawEntry::Record((offset, txn_producer, key, value)) => {
                let record = decode_record(key.as_deref(), value.as_deref());
                ChunkEntry::Record { offset, txn_producer, record }
            }
            RawEntry::Marker(end) => ChunkEntry::Marker(end),
        })
    });
    DecodedChunk { entries, next_offset, skipped_batches }
}

/// Java's `String.hashCode` (over UTF-16 code units), which places a group on a partition.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of a group: `Utils.abs(hashCode) % partitions`.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(partitions > 0);
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_group_records_round_trip_and_garbage_is_refused() {
        let rec = decode_record(Some(&share_group_key("s")), Some(&share_group_value(7))).expect("decode");
        assert_eq!(rec, LogRecord::ShareGroup { group: "s".into(), epoch: Some(7) });
        let topics = vec![
            SharedTopic { topic_id: 1 << 100 | 5, name: "a".into(), partitions: vec![0, 2] },
            SharedTopic { topic_id: 9, name: "bb".into(), partitions: vec![] },
        ];
        let value = share_partitions_value(&topics);
        let rec = decode_record(Some(&share_partitions_key("s")), Some(&value)).expect("decode");
        assert_eq!(rec, LogRecord::SharePartitions { group: "s".into(), topics: Some(topics) });
        let tomb = decode_record(Some(&share_partitions_key("s")), None).expect("decode");
        assert_eq!(tomb, LogRecord::SharePartitions { group: "s".into(), topics: None });
        // Every truncation, and a huge array count, is an error rather than a panic.
        for n in 0..value.len() {
            assert!(decode_record(Some(&share_partitions_key("s")), Some(&value[..n])).is_err(), "{n}");
        }
        let huge = [0u8, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode_record(Some(&share_partitions_key("s")), Some(&huge)).is_err());
        assert!(decode_record(Some(&share_group_key("s")), Some(&[0, 1, 0, 0, 0, 1])).is_err());
    }

    #[test]
    fn keys_and_values_round_trip() {
        let v = OffsetValue {
            offset: Offset(42),
            leader_epoch: LeaderEpoch(3),
            metadata: "meta".into(),
            commit_timestamp_ms: 1_700_000_000_000,
            expire_timestamp_ms: -1,
        };
        let rec = decode_record(Some(&offset_key("g", "t", 7)), Some(&offset_value(&v))).expect("decode");
        assert_eq!(
            rec,
            LogRecord::Offset { group: "g".into(), topic: "t".into(), partition: 7, value: Some(v) }
        );
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 9,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 10_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let rec = decode_record(Some(&group_key("g")), Some(&group_value(&g))).expect("decode");
        assert_eq!(rec, LogRecord::Group { group: "g".into(), value: Some(g) });
        let tomb = decode_record(Some(&group_key("g")), None).expect("decode");
        assert_eq!(tomb, LogRecord::Group { group: "g".into(), value: None });
    }

    /// Kafka's own byte layout of an OffsetCommitValue v1 (with expire timestamp) still reads.
    #[test]
    fn reads_older_offset_value_versions() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i64(10);
        put_string(&mut b, "");
        b.put_i64(5);
        b.put_i64(6);
        let v = decode_offset_value(&b).expect("v1");
        assert_eq!(
            (v.offset, v.leader_epoch, v.commit_timestamp_ms, v.expire_timestamp_ms),
            (Offset(10), LeaderEpoch(-1), 5, 6)
        );
        assert!(decode_offset_value(&b[..5]).is_err());
        let mut bad = BytesMut::new();
        bad.put_i16(9);
        assert_eq!(decode_offset_value(&bad), Err(DecodeError::UnsupportedVersion("OffsetCommitValue", 9)));
    }

    #[test]
    fn garbage_keys_are_errors_not_panics() {
        for len in 0..12 {
            let junk = vec![0xffu8; len];
            let _ = decode_record(Some(&junk), Some(&junk));
            let mut k = vec![0u8, 1];
            k.extend_from_slice(&junk);
            let _ = decode_record(Some(&k), Some(&junk));
        }
        assert_eq!(decode_record(None, None), Err(DecodeError::NoKey));
        assert_eq!(decode_record(Some(&[0, 9]), None), Ok(LogRecord::Other));
    }

    #[test]
    fn batches_round_trip_and_truncated_tails_are_ignored() {
        let kvs = vec![
            KeyValue { key: group_key("a"), value: None },
            KeyValue {
                key: offset_key("a", "t", 0),
                value: Some(offset_value(&OffsetValue {
                    offset: Offset(1),
                    leader_epoch: LeaderEpoch(-1),
                    metadata: String::new(),
                    commit_timestamp_ms: 2,
                    expire_timestamp_ms: -1,
                })),
            },
        ];
        let batch = encode_batch(&kvs, 123).expect("encode");
        let mut two = BytesMut::from(&batch[..]);
        two.extend_from_slice(&batch);
        // Give the second batch base offset 2, as the log would.
        let second = batch.len();
        two[second..second + 8].copy_from_slice(&2i64.to_be_bytes());
        let mut with_tail = two.clone();
        with_tail.extend_from_slice(&batch[..30]);
        assert_eq!(i32::from_be_bytes([batch[53], batch[54], batch[55], batch[56]]), -1);
        let decoded = decode_chunk(&with_tail.freeze());
        assert_eq!(decoded.next_offset, Some(4));
        assert_eq!(decoded.entries.len(), 4);
        assert!(matches!(decoded.entries[3], ChunkEntry::Record { offset: 3, txn_producer: None, .. }));
        assert!(matches!(
            decoded.entries[1],
            ChunkEntry::Record { record: Ok(LogRecord::Offset { partition: 0, .. }), .. }
        ));
    }

    /// Values computed with Java's hashCode: "my-group" hashes to -1906497762, so its
    /// coordinator partition is 12 of 50.
    #[test]
    fn java_hash_matches() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("console-consumer-12345", 50), 6);
        assert_eq!(partition_for("", 50), 0);
    }
}
