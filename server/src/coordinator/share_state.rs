//! The records of `__share_group_state` (KIP-932's share coordinator log): one snapshot of a
//! share-partition's state per write, in the shape of Kafka's `ShareSnapshotKey` /
//! `ShareSnapshotValue`.
//!
//! Key: int16 record type 0, then the group id (int16-length string), the topic id (16 bytes)
//! and the partition (int32). The topic id, not the name: a topic deleted and created again
//! starts with no state. Value: int16 version 0, then, flexible-encoded, the snapshot epoch,
//! state epoch, leader epoch (int32 each), the start offset, create and write timestamps
//! (int64 each) and the state batches (first and last offset, delivery state, delivery count).
//! A null value is a tombstone (the group or its offsets were deleted).
//!
//! Riptide writes only snapshots, each a whole share-partition state (bounded by
//! `group.share.partition.max.record.locks` records), so the topic is compacted like
//! `__consumer_offsets`: the latest snapshot of every key survives. Kafka also writes deltas
//! between snapshots (`ShareUpdateValue`); they would need a delete-and-prune topic instead.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::offsets_log::{java_string_hash, KeyValue};
use super::share_partition::StateBatch;

pub const STATE_TOPIC: &str = "__share_group_state";

const SNAPSHOT_KEY_TYPE: i16 = 0;
const SNAPSHOT_VALUE_VERSION: i16 = 0;
/// Upper bound on the state batches read back from one record.
const BATCHES_MAX: usize = 1 << 20;

/// A share-partition: (group, topic id, partition).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateKey {
    pub group: String,
    pub topic_id: u128,
    pub partition: i32,
}

impl StateKey {
    /// Kafka's coordinator key `group:topicId:partition`, hashed to place the state.
    pub fn partition_in(&self, partitions: i32) -> i32 {
        assert!(partitions > 0);
        let key = format!("{}:{}:{}", self.group, base64_topic_id(self.topic_id), self.partition);
        let h = java_string_hash(&key);
        let abs = if h == i32::MIN { 0 } else { h.abs() };
        abs % partitions
    }
}

/// Kafka prints topic ids in URL-safe base64 without padding.
fn base64_topic_id(id: u128) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_be_bytes())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub snapshot_epoch: i32,
    /// Bumped when the state is reset (AlterShareGroupOffsets): a reader knows its in-flight
    /// view is void.
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub create_timestamp_ms: i64,
    pub write_timestamp_ms: i64,
    pub batches: Vec<StateBatch>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed {STATE_TOPIC} record: {0}")]
pub struct DecodeError(&'static str);

pub fn key(k: &StateKey) -> Bytes {
    let mut b = BytesMut::with_capacity(24 + k.group.len());
    b.put_i16(SNAPSHOT_KEY_TYPE);
    b.put_i16(k.group.len().min(i16::MAX as usize) as i16);
    b.put_slice(&k.group.as_bytes()[..k.group.len().min(i16::MAX as usize)]);
    b.put_u128(k.topic_id);
    b.put_i32(k.partition);
    b.freeze()
}

fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn get_uvarint(b: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if b.is_empty() {
            return Err(DecodeError("truncated varint"));
        }
        let byte = b.get_u8();
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError("varint too long"))
}

pub fn value(s: &Snapshot) -> Bytes {
    let mut b = BytesMut::with_capacity(48 + s.batches.len() * 20);
    b.put_i16(SNAPSHOT_VALUE_VERSION);
    b.put_i32(s.snapshot_epoch);
    b.put_i32(s.state_epoch);
    b.put_i32(s.leader_epoch);
    b.put_i64(s.start_offset);
    b.put_i64(s.create_timestamp_ms);
    b.put_i64(s.write_timestamp_ms);
    put_uvarint(&mut b, s.batches.len() as u64 + 1);
    for batch in &s.batches {
        b.put_i64(batch.first_offset);
        b.put_i64(batch.last_offset);
        b.put_i8(batch.state);
        b.put_i16(batch.delivery_count as i16);
        put_uvarint(&mut b, 0); // tagged fields
    }
    put_uvarint(&mut b, 0);
    b.freeze()
}

fn need(b: &[u8], n: usize) -> Result<(), DecodeError> {
    if b.len() < n {
        return Err(DecodeError("truncated"));
    }
    Ok(())
}

fn skip_tagged(b: &mut &[u8]) -> Result<(), DecodeError> {
    for _ in 0..get_uvarint(b)? {
        let _tag = get_uvarint(b)?;
        let size = get_uvarint(b)? as usize;
        need(b, size)?;
        b.advance(size);
    }
    Ok(())
}

/// A key of this log, or `None` for a record type this broker doesn't read (Kafka's deltas).
pub fn decode_key(mut b: &[u8]) -> Result<Option<StateKey>, DecodeError> {
    need(b, 2)?;
    if b.get_i16() != SNAPSHOT_KEY_TYPE {
        return Ok(None);
    }
    need(b, 2)?;
    let len = usize::try_from(b.get_i16()).map_err(|_| DecodeError("negative group length"))?;
    need(b, len + 20)?;
    let group = String::from_utf8(b[..len].to_vec()).map_err(|_| DecodeError("group id not UTF-8"))?;
    b.advance(len);
    Ok(Some(StateKey { group, topic_id: b.get_u128(), partition: b.get_i32() }))
}

pub fn decode_value(mut b: &[u8]) -> Result<Snapshot, DecodeError> {
    need(b, 2 + 12 + 24)?;
    if b.get_i16() != SNAPSHOT_VALUE_VERSION {
        return Err(DecodeError("unknown value version"));
    }
    let (snapshot_epoch, state_epoch, leader_epoch) = (b.get_i32(), b.get_i32(), b.get_i32());
    let (start_offset, create_timestamp_ms, write_timestamp_ms) = (b.get_i64(), b.get_i64(), b.get_i64());
    let n = get_uvarint(&mut b)?.checked_sub(1).ok_or(DecodeError("null state batches"))? as usize;
    if n > BATCHES_MAX {
        return Err(DecodeError("too many state batches"));
    }
    let mut batches = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        need(b, 19)?;
        let (first_offset, last_offset, state) = (b.get_i64(), b.get_i64(), b.get_i8());
        let delivery_count = b.get_i16().max(0) as u16;
        skip_tagged(&mut b)?;
        batches.push(StateBatch { first_offset, last_offset, state, delivery_count });
    }
    skip_tagged(&mut b)?;
    Ok(Snapshot {
        snapshot_epoch,
        state_epoch,
        leader_epoch,
        start_offset,
        create_timestamp_ms,
        write_timestamp_ms,
        batches,
    })
}

pub fn record(k: &StateKey, s: Option<&Snapshot>) -> KeyValue {
    KeyValue { key: key(k), value: s.map(value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_garbage_is_refused() {
        let k =
            StateKey { group: "g".into(), topic_id: 0x1234_5678_9abc_def0_1234_5678_9abc_def0, partition: 3 };
        assert_eq!(decode_key(&key(&k)), Ok(Some(k.clone())));
        let s = Snapshot {
            snapshot_epoch: 7,
            state_epoch: 1,
            leader_epoch: 4,
            start_offset: 100,
            create_timestamp_ms: 1,
            write_timestamp_ms: 2,
            batches: vec![
                StateBatch { first_offset: 100, last_offset: 104, state: 0, delivery_count: 1 },
                StateBatch { first_offset: 105, last_offset: 105, state: 4, delivery_count: 5 },
            ],
        };
        let v = value(&s);
        assert_eq!(decode_value(&v), Ok(s));
        for cut in 0..v.len() {
            assert!(decode_value(&v[..cut]).is_err(), "a value cut at {cut} bytes is refused");
        }
        assert_eq!(decode_key(&[0, 1, 0, 0]), Ok(None), "a delta key is skipped");
        assert!(decode_key(&[0, 0, 0x7f, 0xff]).is_err());
        assert!((0..50).contains(&k.partition_in(50)));
    }
}
