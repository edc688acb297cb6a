//! Idempotent-producer state of one partition: per producer id, its epoch and the sequence
//! and offset ranges of its last five batches. Validates a new batch against that state
//! (duplicate, gap, stale epoch, unknown producer — Kafka's rules) and persists it as
//! `<20-digit offset>.snapshot` files meaning "state after every batch below this offset".
//!
//! Transactions: each producer's open transaction on this partition (the offset of its first
//! transactional batch since the last marker), which gives the first unstable offset (the
//! last stable offset is the high watermark capped by it), and the aborted-transaction index
//! (Kafka's `.txnindex` entries: producer id, first offset, last offset = the ABORT marker's,
//! last stable offset after it) that read_committed fetches return. Both live in the
//! snapshot, and batches after the snapshot replay them, so they survive a restart.
//!
//! Snapshot layout (Riptide's own; Kafka's v1 keeps only one batch per producer, which would
//! lose duplicate detection for four in-flight batches across a restart):
//! magic "RPSN", version u16 (1; 2 with transactions; 3 with coordinator epochs), CRC-32C u32
//! of everything after it, entry count u32, then per producer: id i64, epoch i16, last
//! timestamp i64, (v2: open transaction's first offset i64, -1 for none), (v3: the coordinator
//! epoch of its last marker i32, -1 for none), batch count u8, and per batch: first
//! sequence i32, last sequence i32, first offset i64, last offset i64; (v2:) then the aborted
//! count u32 and per aborted transaction: producer id i64, first offset i64, last offset i64,
//! last stable offset i64. Big endian.

use riptide_format::control::ControlType;
use riptide_model::{ProducerEpoch, ProducerId};
use std::collections::{BTreeMap, HashMap};

use crate::batch::{increment_sequence, BatchHeader};
use crate::error::LogError;

/// Batches remembered per producer (Kafka's `max.in.flight.requests.per.connection` bound).
pub const BATCHES_PER_PRODUCER: usize = 5;
const SNAPSHOT_MAGIC: &[u8; 4] = b"RPSN";
const SNAPSHOT_VERSION: u16 = 3;
/// Aborted transactions kept in the index at most (the oldest are dropped first; retention
/// drops those below the log start).
pub const ABORTED_TXNS_MAX: usize = 1 << 20;
const ABORTED_BYTES: usize = 32;
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
    /// Offset of the first batch of this producer's open transaction here (-1: none open).
    pub current_txn_first_offset: i64,
    /// The coordinator epoch of its last marker here (-1: none): a marker from an older
    /// coordinator (a zombie after a failover) is refused.
    pub coordinator_epoch: i32,
    batches: [BatchRecord; BATCHES_PER_PRODUCER],
    len: usize,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            last_timestamp_ms: -1,
            current_txn_first_offset: -1,
            coordinator_epoch: -1,
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
    // An unknown producer (new, or expired here) starts at any sequence, as in Kafka: one
    // whose state expired resumes where it was.
    let Some(e) = entry else { return Ok(SequenceCheck::Accept) };
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

/// One producer as DescribeProducers reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last sequence appended (-1: none, e.g. only markers).
    pub last_sequence: i32,
    pub last_timestamp_ms: i64,
    /// The first offset of its open transaction here (-1: none).
    pub current_txn_first_offset: i64,
}

/// One aborted transaction, as Kafka's transaction index stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The ABORT marker's offset.
    pub last_offset: i64,
    /// The partition's first unstable offset right after the abort (its log end if none).
    pub last_stable_offset: i64,
}

/// All producers of a partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset -> producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Aborted transactions in marker order (so by last offset).
    aborted: Vec<AbortedTxn>,
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

    /// Records an appended idempotent batch (its header carries the assigned base offset). A
    /// transactional one opens its producer's transaction here if none is open.
    pub fn record(&mut self, h: &BatchHeader, timestamp_ms: i64) {
        debug_assert!(h.is_idempotent());
        debug_assert!(!h.is_control(), "markers go through record_marker");
        let record = BatchRecord {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
        };
        let e = self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry::new(h.producer_epoch));
        e.apply(h.producer_epoch, record, timestamp_ms);
        if h.is_transactional() && e.current_txn_first_offset < 0 {
            e.current_txn_first_offset = h.base_offset;
            self.ongoing.insert(h.base_offset, h.producer_id);
        }
    }

    /// A marker from the coordinator may not carry a producer epoch older than the producer's
    /// here (a fenced producer's late request), nor come from a coordinator older than the one
    /// that wrote its last marker (a zombie coordinator after a failover), as Kafka checks.
    pub fn check_marker(&self, producer_id: i64, epoch: i16, coordinator_epoch: i32) -> Result<(), LogError> {
        match self.producers.get(&producer_id) {
            Some(e) if coordinator_epoch < e.coordinator_epoch => Err(LogError::CoordinatorFenced {
                producer_id: ProducerId(producer_id),
                got_epoch: coordinator_epoch,
                current_epoch: e.coordinator_epoch,
            }),
            Some(e) if epoch < e.epoch => Err(LogError::InvalidProducerEpoch {
                producer_id: ProducerId(producer_id),
                got_epoch: ProducerEpoch(epoch),
                current_epoch: ProducerEpoch(e.epoch),
            }),
            _ => Ok(()),
        }
    }

    /// Records a COMMIT or ABORT marker appended at `offset`: the producer's open transaction
    /// (if any) ends; an aborted one enters the index, which is returned.
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        (control, coordinator_epoch): (ControlType, i32),
        offset: i64,
        timestamp_ms: i64,
    ) -> Option<AbortedTxn> {
        let e = self.producers.entry(producer_id).or_insert_with(|| ProducerEntry::new(epoch));
        e.coordinator_epoch = e.coordinator_epoch.max(coordinator_epoch);
        if epoch > e.epoch {
            // A bumped epoch (fencing): the producer starts its sequences over.
            e.epoch = epoch;
            e.len = 0;
        }
        e.last_timestamp_ms = e.last_timestamp_ms.max(timestamp_ms);
        let first = std::mem::replace(&mut e.current_txn_first_offset, -1);
        if first < 0 {
            return None;
        }
        self.ongoing.remove(&first);
        if control != ControlType::Abort {
            return None;
        }
        let txn = AbortedTxn {
            producer_id,
            first_offset: first,
            last_offset: offset,
            last_stable_offset: self.first_unstable_offset().unwrap_or(offset + 1),
        };
        if self.aborted.len() >= ABORTED_TXNS_MAX {
            self.aborted.remove(0);
        }
        self.aborted.push(txn);
        Some(txn)
    }

    /// Every producer with state here, by id.
    pub fn summaries(&self) -> Vec<ProducerSummary> {
        let mut out: Vec<ProducerSummary> = self
            .producers
            .iter()
            .map(|(id, e)| ProducerSummary {
                producer_id: *id,
                epoch: e.epoch,
                last_sequence: e.last_seq().unwrap_or(-1),
                last_timestamp_ms: e.last_timestamp_ms,
                current_txn_first_offset: e.current_txn_first_offset,
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// The first offset of the oldest open transaction: nothing at or above it is stable.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Open transactions as (producer id, first offset), oldest first.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.ongoing.iter().map(|(first, pid)| (*pid, *first)).collect()
    }

    /// Aborted transactions that overlap `[from, to)`: what a read_committed fetch of that
    /// range must be told about.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..].iter().filter(|a| a.first_offset < to).copied().collect()
    }

    /// Forgets aborted transactions whose data compaction removed (their markers go in a
    /// later pass, once a snapshot without them is durable: see `compaction.rs`).
    /// `gone` holds (producer id, marker offset) pairs.
    pub fn forget_aborted(&mut self, gone: &[(i64, i64)]) {
        if gone.is_empty() {
            return;
        }
        let gone: std::collections::HashSet<&(i64, i64)> = gone.iter().collect();
        self.aborted.retain(|a| !gone.contains(&(a.producer_id, a.last_offset)));
    }

    /// Each producer's last data batch, by its last offset: compaction keeps it (emptied if
    /// need be) so that the log alone still tells the producer's sequence state.
    pub fn last_batch_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(pid, e)| e.batches().last().map(|b| (*pid, b.last_offset)))
            .collect()
    }

    /// Forgets producers idle since `before_ms` (their newest batch's timestamp) with no
    /// transaction open here. Returns how many went.
    pub fn expire_idle(&mut self, before_ms: i64) -> usize {
        let n = self.producers.len();
        self.producers.retain(|_, e| e.current_txn_first_offset >= 0 || e.last_timestamp_ms >= before_ms);
        n - self.producers.len()
    }

    /// Forgets aborted transactions wholly below the log start (retention removed them).
    pub fn prune_aborted(&mut self, log_start: i64) {
        let below = self.aborted.partition_point(|a| a.last_offset < log_start);
        self.aborted.drain(..below);
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
            body.extend_from_slice(&e.current_txn_first_offset.to_be_bytes());
            body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            body.push(e.len as u8);
            for b in e.batches() {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        body.extend_from_slice(&(self.aborted.len() as u32).to_be_bytes());
        for a in &self.aborted {
            for v in [a.producer_id, a.first_offset, a.last_offset, a.last_stable_offset] {
                body.extend_from_slice(&v.to_be_bytes());
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
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if !(1..=SNAPSHOT_VERSION).contains(&version) {
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
            let (id, e) = decode_entry(&mut c, version)?;
            if e.current_txn_first_offset >= 0 {
                state.ongoing.insert(e.current_txn_first_offset, id);
            }
            state.producers.insert(id, e);
        }
        if version >= 2 {
            let n = c.u32()? as usize;
            if n > (body.len() - c.pos) / ABORTED_BYTES {
                return None;
            }
            for _ in 0..n {
                state.aborted.push(AbortedTxn {
                    producer_id: c.i64()?,
                    first_offset: c.i64()?,
                    last_offset: c.i64()?,
                    last_stable_offset: c.i64()?,
                });
            }
        }
        (c.pos == body.len()).then_some(state)
    }
}

fn decode_entry(c: &mut Cursor<'_>, version: u16) -> Option<(i64, ProducerEntry)> {
    let id = c.i64()?;
    let mut e = ProducerEntry::new(c.i16()?);
    e.last_timestamp_ms = c.i64()?;
    if version >= 2 {
        e.current_txn_first_offset = c.i64()?;
    }
    if version >= 3 {
        e.coordinator_epoch = c.i32()?;
    }
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
        // Unknown (new or expired): any first sequence, as Kafka accepts.
        assert_eq!(check(&header(7, 0, 3, 1, 0), None).ok(), Some(SequenceCheck::Accept));
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

    fn txn_header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            attributes: riptide_format::attr::TRANSACTIONAL,
            ..header(pid, epoch, seq, count, base_offset)
        }
    }

    #[test]
    fn open_transactions_give_the_first_unstable_offset_and_aborts_the_index() {
        let mut s = ProducerState::default();
        s.record(&header(1, 0, 0, 2, 0), 1); // plain idempotent: no transaction
        assert_eq!(s.first_unstable_offset(), None);
        s.record(&txn_header(2, 0, 0, 2, 2), 1); // producer 2 opens at 2
        s.record(&txn_header(3, 0, 0, 1, 4), 1); // producer 3 opens at 4
        s.record(&txn_header(2, 0, 2, 1, 5), 1); // still the transaction opened at 2
        assert_eq!(s.first_unstable_offset(), Some(2));
        assert_eq!(s.open_transactions(), vec![(2, 2), (3, 4)]);
        // Producer 2 aborts at 6: the index says [2, 6], stable from 4 (producer 3 is open).
        let a = s.record_marker(2, 0, (ControlType::Abort, 0), 6, 9).expect("aborted");
        assert_eq!(a, AbortedTxn { producer_id: 2, first_offset: 2, last_offset: 6, last_stable_offset: 4 });
        assert_eq!(s.first_unstable_offset(), Some(4));
        assert_eq!(s.record_marker(3, 0, (ControlType::Commit, 0), 7, 9), None);
        assert_eq!(s.first_unstable_offset(), None);
        // A marker with no open transaction (a retry) changes nothing.
        assert_eq!(s.record_marker(3, 0, (ControlType::Abort, 1), 8, 9), None);
        assert_eq!(s.aborted_between(0, 100), vec![a]);
        assert_eq!(s.aborted_between(7, 100), vec![]);
        assert_eq!(s.aborted_between(0, 2), vec![]);
        assert_eq!(s.aborted_between(6, 3), vec![a]);
        // Older epochs are fenced; a bumped one restarts the producer's sequences.
        s.record(&txn_header(2, 1, 0, 1, 9), 1);
        assert!(matches!(s.check_marker(2, 0, 0), Err(LogError::InvalidProducerEpoch { .. })));
        assert!(s.check_marker(2, 1, 0).is_ok() && s.check_marker(99, 0, -1).is_ok());
        // A coordinator older than the one of the producer's last marker is fenced.
        assert!(matches!(s.check_marker(3, 0, 0), Err(LogError::CoordinatorFenced { .. })));
        assert!(s.check_marker(3, 0, 1).is_ok());
        // Open transactions and the index survive a snapshot.
        let back = ProducerState::decode(&s.encode()).expect("decode");
        assert_eq!(back.encode(), s.encode());
        assert_eq!(back.first_unstable_offset(), Some(9));
        assert_eq!(back.get(3).map(|e| e.coordinator_epoch), Some(1));
        s.prune_aborted(7);
        assert_eq!(s.aborted_between(0, 100), vec![]);
    }

    /// A version 1 snapshot (before transactions) still loads.
    #[test]
    fn reads_version_one_snapshots() {
        let mut body = Vec::new();
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&5i64.to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&77i64.to_be_bytes());
        body.push(1);
        for v in [0i32, 3] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        for v in [10i64, 13] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        let mut bytes = b"RPSN".to_vec();
        bytes.extend_from_slice(&1u16.to_be_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        bytes.extend_from_slice(&body);
        let s = ProducerState::decode(&bytes).expect("v1");
        let e = s.get(5).expect("producer 5");
        assert_eq!((e.epoch, e.last_timestamp_ms, e.current_txn_first_offset), (2, 77, -1));
        assert_eq!(e.batches()[0].last_offset, 13);
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

    /// producer.id.expiration.ms: idle producers go, one with an open transaction stays.
    #[test]
    fn idle_producers_expire_unless_a_transaction_is_open() {
        let mut s = ProducerState::default();
        s.record(&header(7, 0, 0, 1, 0), 1_000);
        let mut txn = header(8, 0, 0, 1, 1);
        txn.attributes |= riptide_format::attr::TRANSACTIONAL;
        s.record(&txn, 1_000);
        s.record(&header(9, 0, 0, 1, 2), 5_000);
        assert_eq!(s.expire_idle(5_000), 1, "producer 7 only");
        assert!(s.get(7).is_none() && s.get(8).is_some() && s.get(9).is_some());
        assert_eq!(check(&header(7, 0, 1, 1, 3), s.get(7)).ok(), Some(SequenceCheck::Accept), "it resumes");
    }
}
