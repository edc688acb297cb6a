//! Idempotent-producer state of one partition: per producer id, its epoch and the sequence
//! and offset ranges of its last five batches. Validates a new batch against that state
//! (duplicate, gap, stale epoch, unknown producer — Kafka's rules) and persists it as
//! `<20-digit offset>.snapshot` files meaning "state after every batch below this offset".
//!
//! Snapshot layout (Riptide's own; Kafka's v1 keeps only one batch per producer, which would
//! lose duplicate detection for four in-flight batches across a restart):
//! magic "RPSN", version u16 = 1, CRC-32C u32 of everything after it, entry count u32, then
//! per producer: id i64, epoch i16, last timestamp i64, batch count u8, and per batch:
//! first sequence i32, last sequence i32, first offset i64, last offset i64. Big endian.

use riptide_model::{ProducerEpoch, ProducerId};
use std::collections::HashMap;

use crate::batch::{increment_sequence, BatchHeader};
use crate::error::LogError;

/// Batches remembered per producer (Kafka's `max.in.flight.requests.per.connection` bound).
pub const BATCHES_PER_PRODUCER: usize = 5;
const SNAPSHOT_MAGIC: &[u8; 4] = b"RPSN";
const SNAPSHOT_VERSION: u16 = 1;
const SNAPSHOT_HEADER_BYTES: usize = 4 + 2 + 4 + 4;
const ENTRY_FIXED_BYTES: usize = 8 + 2 + 8 + 1;
const BATCH_BYTES: usize = 4 + 4 + 8 + 8;

/// Sequence and offset range of one appended batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BatchRecord {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What is known about one producer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub last_timestamp_ms: i64,
    batches: [BatchRecord; BATCHES_PER_PRODUCER],
    len: usize,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            last_timestamp_ms: -1,
            batches: [BatchRecord::default(); BATCHES_PER_PRODUCER],
            len: 0,
        }
    }

    /// Remembered batches, oldest first.
    pub fn batches(&self) -> &[BatchRecord] {
        &self.batches[..self.len]
    }

    fn push(&mut self, b: BatchRecord) {
        if self.len == BATCHES_PER_PRODUCER {
            self.batches.rotate_left(1);
            self.len -= 1;
        }
        self.batches[self.len] = b;
        self.len += 1;
    }

    fn last_seq(&self) -> Option<i32> {
        self.batches().last().map(|b| b.last_seq)
    }

    fn find_duplicate(&self, first_seq: i32, last_seq: i32) -> Option<BatchRecord> {
        self.batches().iter().copied().find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
    }

    /// Applies a batch (epoch bump resets the remembered batches).
    fn apply(&mut self, epoch: i16, record: BatchRecord, timestamp_ms: i64) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.len = 0;
        }
        self.push(record);
        self.last_timestamp_ms = timestamp_ms;
    }
}

/// Outcome of checking one idempotent batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data in sequence: append it.
    Accept,
    /// A retry of a batch already in the log, at these offsets.
    Duplicate { first_offset: i64, last_offset: i64 },
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// Checks `h` against `entry` (the producer's state, `None` if unknown).
pub fn check(h: &BatchHeader, entry: Option<&ProducerEntry>) -> Result<SequenceCheck, LogError> {
    let pid = ProducerId(h.producer_id);
    let Some(e) = entry else {
        if h.base_sequence != 0 {
            return Err(LogError::UnknownProducerId { producer_id: pid, got_seq: h.base_sequence });
        }
        return Ok(SequenceCheck::Accept);
    };
    if h.producer_epoch < e.epoch {
        return Err(LogError::InvalidProducerEpoch {
            producer_id: pid,
            got_epoch: ProducerEpoch(h.producer_epoch),
            current_epoch: ProducerEpoch(e.epoch),
        });
    }
    if h.producer_epoch > e.epoch {
        if h.base_sequence != 0 {
            return Err(LogError::OutOfOrderSequence {
                producer_id: pid,
                expected_seq: 0,
                got_seq: h.base_sequence,
            });
        }
        return Ok(SequenceCheck::Accept);
    }
    if let Some(d) = e.find_duplicate(h.base_sequence, h.last_sequence()) {
        return Ok(SequenceCheck::Duplicate { first_offset: d.first_offset, last_offset: d.last_offset });
    }
    match e.last_seq() {
        Some(last) if !in_sequence(last, h.base_sequence) => Err(LogError::OutOfOrderSequence {
            producer_id: pid,
            expected_seq: increment_sequence(last, 1),
            got_seq: h.base_sequence,
        }),
        _ => Ok(SequenceCheck::Accept),
    }
}

/// All producers of a partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerState {
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Records an appended idempotent batch (its header carries the assigned base offset).
    pub fn record(&mut self, h: &BatchHeader, timestamp_ms: i64) {
        debug_assert!(h.is_idempotent());
        let record = BatchRecord {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
        };
        self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry::new(h.producer_epoch)).apply(
            h.producer_epoch,
            record,
            timestamp_ms,
        );
    }

    /// Checks a batch as if `staged` (earlier batches of the same request) were applied.
    pub fn check_staged(
        &self,
        h: &BatchHeader,
        staged: &[(i64, ProducerEntry)],
    ) -> Result<SequenceCheck, LogError> {
        let entry = staged.iter().rev().find(|(pid, _)| *pid == h.producer_id).map(|(_, e)| e);
        check(h, entry.or_else(|| self.get(h.producer_id)))
    }

    /// The state `staged` would have after `h`, for checking later batches of one request.
    pub fn stage(&self, h: &BatchHeader, staged: &mut Vec<(i64, ProducerEntry)>) {
        let current = staged.iter().rev().find(|(pid, _)| *pid == h.producer_id).map(|(_, e)| e.clone());
        let mut e = current
            .or_else(|| self.get(h.producer_id).cloned())
            .unwrap_or_else(|| ProducerEntry::new(h.producer_epoch));
        let record = BatchRecord {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset: -1,
            last_offset: -1,
        };
        e.apply(h.producer_epoch, record, -1);
        staged.push((h.producer_id, e));
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let e = &self.producers[id];
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp_ms.to_be_bytes());
            body.push(e.len as u8);
            for b in e.batches() {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(body.len() + 10);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Parses a snapshot; `None` if it is damaged in any way (bad magic, CRC, lengths).
    pub fn decode(bytes: &[u8]) -> Option<ProducerState> {
        if bytes.len() < SNAPSHOT_HEADER_BYTES || &bytes[..4] != SNAPSHOT_MAGIC {
            return None;
        }
        if u16::from_be_bytes([bytes[4], bytes[5]]) != SNAPSHOT_VERSION {
            return None;
        }
        let crc = u32::from_be_bytes(bytes[6..10].try_into().ok()?);
        let body = &bytes[10..];
        if crc32c::crc32c(body) != crc {
            return None;
        }
        let mut c = Cursor { b: body, pos: 0 };
        let count = c.u32()? as usize;
        if count > body.len() / ENTRY_FIXED_BYTES {
            return None;
        }
        let mut state = ProducerState::default();
        for _ in 0..count {
            let (id, e) = decode_entry(&mut c)?;
            state.producers.insert(id, e);
        }
        (c.pos == body.len()).then_some(state)
    }
}

fn decode_entry(c: &mut Cursor<'_>) -> Option<(i64, ProducerEntry)> {
    let id = c.i64()?;
    let mut e = ProducerEntry::new(c.i16()?);
    e.last_timestamp_ms = c.i64()?;
    let n = c.u8()? as usize;
    if n > BATCHES_PER_PRODUCER || c.b.len() - c.pos < n * BATCH_BYTES {
        return None;
    }
    for _ in 0..n {
        e.push(BatchRecord {
            first_seq: c.i32()?,
            last_seq: c.i32()?,
            first_offset: c.i64()?,
            last_offset: c.i64()?,
        });
    }
    Some((id, e))
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let s = self.b.get(self.pos..self.pos + N)?;
        self.pos += N;
        s.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|a| a[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn kafka_sequence_rules() {
        let mut s = ProducerState::default();
        assert!(matches!(check(&header(7, 0, 3, 1, 0), None), Err(LogError::UnknownProducerId { .. })));
        s.record(&header(7, 0, 0, 5, 0), 1);
        s.record(&header(7, 0, 5, 5, 5), 2);
        let e = s.get(7);
        assert_eq!(check(&header(7, 0, 10, 1, 0), e).ok(), Some(SequenceCheck::Accept));
        assert_eq!(
            check(&header(7, 0, 0, 5, 0), e).ok(),
            Some(SequenceCheck::Duplicate { first_offset: 0, last_offset: 4 })
        );
        assert!(matches!(
            check(&header(7, 0, 12, 1, 0), e),
            Err(LogError::OutOfOrderSequence { expected_seq: 10, .. })
        ));
        assert!(matches!(
            check(&header(7, 1, 3, 1, 0), e),
            Err(LogError::OutOfOrderSequence { expected_seq: 0, .. })
        ));
        assert_eq!(check(&header(7, 1, 0, 1, 0), e).ok(), Some(SequenceCheck::Accept));
        s.record(&header(7, 1, 0, 1, 10), 3);
        assert!(matches!(
            check(&header(7, 0, 10, 1, 0), s.get(7)),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn remembers_last_five_and_snapshot_round_trips() {
        let mut s = ProducerState::default();
        for i in 0..7 {
            s.record(&header(1, 0, i * 2, 2, i64::from(i) * 2), 100);
        }
        s.record(&header(2, 3, 0, 1, 14), 200);
        assert_eq!(s.get(1).map(|e| e.batches().len()), Some(5));
        assert_eq!(s.get(1).and_then(|e| e.batches().first().copied()).map(|b| b.first_seq), Some(4));
        let bytes = s.encode();
        assert_eq!(ProducerState::decode(&bytes), Some(s.clone()));
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(ProducerState::decode(&bad), None);
        assert_eq!(ProducerState::decode(&bytes[..bytes.len() - 3]), None);
    }
}
