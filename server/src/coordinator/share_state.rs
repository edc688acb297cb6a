//! The records of `__share_group_state` (KIP-932's share coordinator log), in the shape of
//! Kafka's `ShareSnapshotKey`/`ShareSnapshotValue` and `ShareUpdateKey`/`ShareUpdateValue`
//! (checked against the schemas in Kafka's `share-coordinator` module).
//!
//! Key: int16 record type (0 snapshot, 1 update), then the group id (int16-length string), the
//! topic id (16 bytes) and the partition (int32). The topic id, not the name: a topic deleted
//! and created again starts with no state. Snapshot value: int16 version 0, then,
//! flexible-encoded, the snapshot epoch, state epoch, leader epoch (int32 each), the start
//! offset, create and write timestamps (int64 each) and the state batches (first and last
//! offset, delivery state, delivery count). Update value: int16 version 0, then the snapshot
//! epoch it applies to, the leader epoch (int32 each), the start offset (-1: unchanged) and
//! the state batches that changed. A null value is a tombstone (the group or its offsets were
//! deleted), whichever key type it carries. Tagged fields (Kafka 4.2's
//! `DeliveryCompleteCount`) are skipped when read and never written.
//!
//! A snapshot is a whole share-partition state (bounded by
//! `group.share.partition.max.record.locks` records); an update holds only what changed since
//! the state it follows, so a key's state is its latest snapshot with the later updates of the
//! same snapshot epoch merged on top (`share_delta`). Compaction would keep only the latest
//! update of a key and lose the others, so the topic is `cleanup.policy=delete` with no
//! retention, pruned by the share coordinator below the oldest snapshot still needed.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::offsets_log::{java_string_hash, put_uvarint, KeyValue};
use super::share_partition::StateBatch;

pub const STATE_TOPIC: &str = "__share_group_state";

const SNAPSHOT_KEY_TYPE: i16 = 0;
const UPDATE_KEY_TYPE: i16 = 1;
const SNAPSHOT_VALUE_VERSION: i16 = 0;
const UPDATE_VALUE_VERSION: i16 = 0;
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

/// What changed in a share-partition's state since the state of snapshot `snapshot_epoch`
/// (and the updates after it): Kafka's `ShareUpdateValue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub snapshot_epoch: i32,
    pub leader_epoch: i32,
    /// The new share-partition start offset, or -1 when it did not move.
    pub start_offset: i64,
    /// The runs whose delivery state or count changed, or that are new in the window.
    pub batches: Vec<StateBatch>,
}

/// The record type a key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    Snapshot,
    Update,
}

/// One decoded record of the log, as the share coordinator replays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateRecord {
    Snapshot(Snapshot),
    Update(Update),
    Tombstone,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed {STATE_TOPIC} record: {0}")]
pub struct DecodeError(&'static str);

pub fn key(k: &StateKey) -> Bytes {
    key_of(SNAPSHOT_KEY_TYPE, k)
}

pub fn update_key(k: &StateKey) -> Bytes {
    key_of(UPDATE_KEY_TYPE, k)
}

fn key_of(record_type: i16, k: &StateKey) -> Bytes {
    let mut b = BytesMut::with_capacity(24 + k.group.len());
    b.put_i16(record_type);
    b.put_i16(k.group.len().min(i16::MAX as usize) as i16);
    b.put_slice(&k.group.as_bytes()[..k.group.len().min(i16::MAX as usize)]);
    b.put_u128(k.topic_id);
    b.put_i32(k.partition);
    b.freeze()
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
    put_batches(&mut b, &s.batches);
    put_uvarint(&mut b, 0);
    b.freeze()
}

pub fn update_value(u: &Update) -> Bytes {
    let mut b = BytesMut::with_capacity(24 + u.batches.len() * 20);
    b.put_i16(UPDATE_VALUE_VERSION);
    b.put_i32(u.snapshot_epoch);
    b.put_i32(u.leader_epoch);
    b.put_i64(u.start_offset);
    put_batches(&mut b, &u.batches);
    put_uvarint(&mut b, 0);
    b.freeze()
}

fn put_batches(b: &mut BytesMut, batches: &[StateBatch]) {
    put_uvarint(b, batches.len() as u64 + 1);
    for batch in batches {
        b.put_i64(batch.first_offset);
        b.put_i64(batch.last_offset);
        b.put_i8(batch.state);
        b.put_i16(batch.delivery_count.min(i16::MAX as u16) as i16);
        put_uvarint(b, 0); // tagged fields
    }
}

fn get_batches(b: &mut &[u8]) -> Result<Vec<StateBatch>, DecodeError> {
    let n = get_uvarint(b)?.checked_sub(1).ok_or(DecodeError("null state batches"))?;
    if n > BATCHES_MAX as u64 {
        return Err(DecodeError("too many state batches"));
    }
    let n = n as usize;
    // Each batch takes at least 18 bytes: a count beyond what is left is a lie.
    if n > b.len() / 18 {
        return Err(DecodeError("truncated"));
    }
    let mut batches = Vec::with_capacity(n);
    for _ in 0..n {
        need(b, 19)?;
        let (first_offset, last_offset, state) = (b.get_i64(), b.get_i64(), b.get_i8());
        let delivery_count = b.get_i16().max(0) as u16;
        skip_tagged(b)?;
        batches.push(StateBatch { first_offset, last_offset, state, delivery_count });
    }
    Ok(batches)
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

/// A key of this log and its record type, or `None` for a record type this broker doesn't
/// read.
pub fn decode_key(mut b: &[u8]) -> Result<Option<(RecordType, StateKey)>, DecodeError> {
    need(b, 2)?;
    let record_type = match b.get_i16() {
        SNAPSHOT_KEY_TYPE => RecordType::Snapshot,
        UPDATE_KEY_TYPE => RecordType::Update,
        _ => return Ok(None),
    };
    need(b, 2)?;
    let len = usize::try_from(b.get_i16()).map_err(|_| DecodeError("negative group length"))?;
    need(b, len + 20)?;
    let group = String::from_utf8(b[..len].to_vec()).map_err(|_| DecodeError("group id not UTF-8"))?;
    b.advance(len);
    Ok(Some((record_type, StateKey { group, topic_id: b.get_u128(), partition: b.get_i32() })))
}

/// The record of a key of `record_type` with `value` (`None`: a tombstone).
pub fn decode_record(record_type: RecordType, value: Option<&[u8]>) -> Result<StateRecord, DecodeError> {
    match (record_type, value) {
        (_, None) => Ok(StateRecord::Tombstone),
        (RecordType::Snapshot, Some(v)) => decode_value(v).map(StateRecord::Snapshot),
        (RecordType::Update, Some(v)) => decode_update_value(v).map(StateRecord::Update),
    }
}

pub fn decode_value(mut b: &[u8]) -> Result<Snapshot, DecodeError> {
    need(b, 2 + 12 + 24)?;
    if b.get_i16() != SNAPSHOT_VALUE_VERSION {
        return Err(DecodeError("unknown value version"));
    }
    let (snapshot_epoch, state_epoch, leader_epoch) = (b.get_i32(), b.get_i32(), b.get_i32());
    let (start_offset, create_timestamp_ms, write_timestamp_ms) = (b.get_i64(), b.get_i64(), b.get_i64());
    let batches = get_batches(&mut b)?;
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

pub fn decode_update_value(mut b: &[u8]) -> Result<Update, DecodeError> {
    need(b, 2 + 8 + 8)?;
    if b.get_i16() != UPDATE_VALUE_VERSION {
        return Err(DecodeError("unknown value version"));
    }
    let (snapshot_epoch, leader_epoch, start_offset) = (b.get_i32(), b.get_i32(), b.get_i64());
    let batches = get_batches(&mut b)?;
    skip_tagged(&mut b)?;
    Ok(Update { snapshot_epoch, leader_epoch, start_offset, batches })
}

/// A snapshot record, or (`None`) the tombstone of the key.
pub fn record(k: &StateKey, s: Option<&Snapshot>) -> KeyValue {
    KeyValue { key: key(k), value: s.map(value) }
}

pub fn update_record(k: &StateKey, u: &Update) -> KeyValue {
    KeyValue { key: update_key(k), value: Some(update_value(u)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_garbage_is_refused() {
        let k =
            StateKey { group: "g".into(), topic_id: 0x1234_5678_9abc_def0_1234_5678_9abc_def0, partition: 3 };
        assert_eq!(decode_key(&key(&k)), Ok(Some((RecordType::Snapshot, k.clone()))));
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
        assert_eq!(decode_key(&[0, 2, 0, 0]), Ok(None), "an unknown record type is skipped");
        assert!(decode_key(&[0, 0, 0x7f, 0xff]).is_err());
        assert!((0..50).contains(&k.partition_in(50)));
    }

    #[test]
    fn updates_round_trip_and_garbage_is_refused() {
        let k = StateKey { group: "share-g".into(), topic_id: 7, partition: 0 };
        assert_eq!(decode_key(&update_key(&k)), Ok(Some((RecordType::Update, k.clone()))));
        let u = Update {
            snapshot_epoch: 3,
            leader_epoch: 9,
            start_offset: -1,
            batches: vec![StateBatch { first_offset: 10, last_offset: 12, state: 2, delivery_count: 1 }],
        };
        let v = update_value(&u);
        // Version 0, snapshot epoch 3, leader epoch 9, start offset -1, one batch, no tags.
        assert_eq!(&v[..18], &[0, 0, 0, 0, 0, 3, 0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(v[18], 2, "compact array length is count + 1");
        assert_eq!(decode_record(RecordType::Update, Some(&v)), Ok(StateRecord::Update(u.clone())));
        assert_eq!(decode_record(RecordType::Update, None), Ok(StateRecord::Tombstone));
        for cut in 0..v.len() {
            assert!(decode_update_value(&v[..cut]).is_err(), "an update cut at {cut} bytes is refused");
        }
        // A tagged field (Kafka 4.2's DeliveryCompleteCount, tag 0) is skipped.
        let mut tagged = v[..v.len() - 1].to_vec();
        tagged.extend_from_slice(&[1, 0, 4, 0, 0, 0, 5]);
        assert_eq!(decode_update_value(&tagged), Ok(u.clone()));
        // A batch count far beyond the bytes present is refused before allocating.
        let mut lying = v[..18].to_vec();
        lying.extend_from_slice(&[0xff, 0xff, 0x3f]);
        assert!(decode_update_value(&lying).is_err());
        let mut wrong_version = v.to_vec();
        wrong_version[1] = 1;
        assert!(decode_update_value(&wrong_version).is_err());
        // Seeded garbage: every outcome is an error or a value, never a panic.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = decode_key(&bytes);
            let _ = decode_value(&bytes);
            let _ = decode_update_value(&bytes);
        }
    }
}
