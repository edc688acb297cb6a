//! Owner-side partition operations. Everything here runs on the partition's owner shard, which
//! is the only writer of its log (ARCHITECTURE.md §1), so none of it locks.
//!
//! Durability contract (per topic `durability.policy`):
//! - `fsync` (default): a Produce with acks=1/all is answered only after the group-commit
//!   fdatasync covering its batch; the high watermark (what consumers see) is the durable offset.
//! - `replicated` / `none`: answered after the write; the high watermark is the log end.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use riptide_engine::Log;

use super::mailbox::{ListOffsetCall, ListOffsetOutcome, ProduceCall, ProduceOutcome, ReadCall, ReadOutcome};
use crate::broker::Broker;
use crate::config::Durability;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const KAFKA_STORAGE_ERROR: i16 = 56;
/// Fetch waiters kept per partition before disconnected ones are swept.
const FETCH_WAITERS_SWEEP: usize = 4096;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

struct DurableWaiter {
    last_offset: i64,
    outcome: ProduceOutcome,
    reply: flume::Sender<ProduceOutcome>,
}

pub struct Partition {
    pub log: Log,
    durability: Durability,
    /// What consumers may read: offsets below it. See the module header.
    high_watermark: i64,
    leader_epoch: i32,
    durable_waiters: VecDeque<DurableWaiter>,
    fetch_waiters: Vec<flume::Sender<()>>,
    leo_gauge: Arc<AtomicI64>,
    pub dirty: bool,
    cleanup: Cleanup,
}

/// What housekeeping does to old data (`cleanup.policy`).
#[derive(Clone, Copy)]
struct Cleanup {
    delete: bool,
    compact: bool,
    delete_retention_ms: i64,
}

impl Cleanup {
    fn of(eff: &crate::catalog::EffectiveTopicConfig) -> Cleanup {
        Cleanup {
            delete: eff.cleanup_delete,
            compact: eff.cleanup_compact,
            delete_retention_ms: eff.delete_retention_ms,
        }
    }
}

impl Partition {
    fn advance_high_watermark(&mut self, to: i64) {
        if to > self.high_watermark {
            self.high_watermark = to;
            for w in self.fetch_waiters.drain(..) {
                let _ = w.try_send(());
            }
        }
    }

    /// Called after a group-commit fdatasync covered everything below `durable`.
    pub fn on_durable(&mut self) {
        let durable = self.log.durable_offset();
        if self.durability == Durability::Fsync {
            self.advance_high_watermark(durable.min(self.log.log_end_offset()));
        }
        while self.durable_waiters.front().is_some_and(|w| w.last_offset < durable) {
            if let Some(w) = self.durable_waiters.pop_front() {
                let _ = w.reply.send(w.outcome);
            }
        }
    }

    /// The log can no longer be written: every pending acknowledgement fails.
    pub fn fail_waiters(&mut self, code: i16, message: &str) {
        for w in self.durable_waiters.drain(..) {
            let _ = w.reply.send(ProduceOutcome::error(code, Some(message.to_string())));
        }
    }
}

/// The partitions one shard owns, opened lazily on first use (and all at start-up).
pub struct Partitions {
    pub broker: Arc<Broker>,
    pub shard_id: usize,
    by_topic: HashMap<Arc<str>, HashMap<i32, Partition>>,
    flush_requested: bool,
    flush_tx: flume::Sender<()>,
}

impl Partitions {
    pub fn new(broker: Arc<Broker>, shard_id: usize, flush_tx: flume::Sender<()>) -> Partitions {
        Partitions { broker, shard_id, by_topic: HashMap::new(), flush_requested: false, flush_tx }
    }

    pub fn get_or_open(&mut self, topic: &str, index: i32) -> Result<&mut Partition, i16> {
        let exists = self.by_topic.get(topic).is_some_and(|m| m.contains_key(&index));
        if !exists {
            let partition = self.open(topic, index)?;
            let key: Arc<str> = Arc::from(topic);
            self.by_topic.entry(key).or_default().insert(index, partition);
        }
        self.by_topic.get_mut(topic).and_then(|m| m.get_mut(&index)).ok_or(UNKNOWN_TOPIC_OR_PARTITION)
    }

    fn open(&self, topic: &str, index: i32) -> Result<Partition, i16> {
        let meta = self.broker.topic(topic).ok_or(UNKNOWN_TOPIC_OR_PARTITION)?;
        if index < 0 || index >= meta.partitions {
            return Err(UNKNOWN_TOPIC_OR_PARTITION);
        }
        debug_assert_eq!(self.broker.owner_of(topic, index), self.shard_id);
        let eff = meta.effective(&self.broker.config.log, self.broker.engine_io);
        let cleanup = Cleanup::of(&eff);
        let dir = self.broker.partition_dir(topic, index);
        let log = Log::open(&dir, eff.log, now_ms()).map_err(|e| {
            eprintln!("riptide: shard {}: cannot open {}: {e}", self.shard_id, dir.display());
            KAFKA_STORAGE_ERROR
        })?;
        let leo_gauge = self.broker.metrics.log_end_offset_gauge(topic, index);
        leo_gauge.store(log.log_end_offset(), Ordering::Relaxed);
        Ok(Partition {
            high_watermark: log.log_end_offset(),
            log,
            durability: eff.durability,
            leader_epoch: 0,
            durable_waiters: VecDeque::new(),
            fetch_waiters: Vec::new(),
            leo_gauge,
            dirty: false,
            cleanup,
        })
    }

    /// Opens every partition of the catalog this shard owns (start-up), so recovery and
    /// retention cover partitions nobody has touched yet.
    pub fn open_all_owned(&mut self) {
        let topics = self.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).all();
        for t in topics {
            for p in 0..t.partitions {
                if self.broker.owner_of(&t.name, p) == self.shard_id {
                    let _ = self.get_or_open(&t.name, p);
                }
            }
        }
    }

    fn request_flush(&mut self) {
        if !self.flush_requested {
            self.flush_requested = true;
            let _ = self.flush_tx.try_send(());
        }
    }

    pub fn produce(&mut self, call: ProduceCall, reply: flume::Sender<ProduceOutcome>) {
        let metrics = self.broker.metrics.clone();
        let partition = match self.get_or_open(&call.topic, call.partition) {
            Ok(p) => p,
            Err(code) => {
                let _ = reply.send(ProduceOutcome::error(code, None));
                return;
            }
        };
        let bytes_in = call.records.len() as u64;
        // The request buffer is usually uniquely ours, so offsets are assigned in place in it;
        // otherwise one copy.
        let mut records = match call.records.try_into_mut() {
            Ok(m) => m,
            Err(shared) => BytesMut::from(&shared[..]),
        };
        let info = match partition.log.append(&mut records, partition.leader_epoch, now_ms()) {
            Ok(info) => info,
            Err(e) => {
                let _ = reply.send(ProduceOutcome::error(e.kafka_code(), Some(e.to_string())));
                if e.is_storage() || partition.log.is_failed() {
                    eprintln!("riptide: {}-{} append failed: {e}", call.topic, call.partition);
                }
                return;
            }
        };
        if !info.duplicate {
            metrics.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
            metrics
                .messages_in
                .fetch_add((info.last_offset - info.base_offset + 1) as u64, Ordering::Relaxed);
        }
        partition.leo_gauge.store(partition.log.log_end_offset(), Ordering::Relaxed);
        let outcome = ProduceOutcome {
            error_code: 0,
            error_message: None,
            base_offset: info.base_offset,
            log_append_time_ms: info.log_append_time_ms,
            log_start_offset: info.log_start_offset,
        };
        if partition.durability != Durability::Fsync {
            let leo = partition.log.log_end_offset();
            partition.advance_high_watermark(leo);
            let _ = reply.send(outcome);
            return;
        }
        if info.last_offset < partition.log.durable_offset() {
            let _ = reply.send(outcome); // a duplicate of an already durable batch
            return;
        }
        if call.acks == 0 {
            let _ = reply.send(outcome);
        } else {
            partition.durable_waiters.push_back(DurableWaiter {
                last_offset: info.last_offset,
                outcome,
                reply,
            });
        }
        partition.dirty = true;
        self.request_flush();
    }

    pub fn read(&mut self, call: ReadCall) -> ReadOutcome {
        let partition = match self.get_or_open(&call.topic, call.partition) {
            Ok(p) => p,
            Err(code) => {
                return ReadOutcome {
                    error_code: code,
                    high_watermark: -1,
                    log_start_offset: -1,
                    slice: None,
                }
            }
        };
        let hw = partition.high_watermark;
        let mut outcome = ReadOutcome {
            error_code: 0,
            high_watermark: hw,
            log_start_offset: partition.log.log_start_offset(),
            slice: None,
        };
        if call.offset != hw {
            match partition.log.read(call.offset, call.max_bytes, hw, call.min_one) {
                Ok(slice) if slice.len > 0 => outcome.slice = Some(slice),
                Ok(_) => {}
                Err(e) => {
                    outcome.error_code = e.kafka_code();
                    return outcome;
                }
            }
        }
        if outcome.slice.is_none() {
            if let Some(n) = call.notify {
                if partition.fetch_waiters.len() >= FETCH_WAITERS_SWEEP {
                    partition.fetch_waiters.retain(|w| !w.is_disconnected());
                }
                partition.fetch_waiters.push(n);
            }
        }
        outcome
    }

    pub fn list_offset(&mut self, call: ListOffsetCall) -> ListOffsetOutcome {
        let partition = match self.get_or_open(&call.topic, call.partition) {
            Ok(p) => p,
            Err(code) => {
                return ListOffsetOutcome { error_code: code, offset: -1, timestamp: -1, leader_epoch: -1 }
            }
        };
        let hw = partition.high_watermark;
        let epoch = partition.leader_epoch;
        let found = |offset: i64, timestamp: i64| ListOffsetOutcome {
            error_code: 0,
            offset,
            timestamp,
            leader_epoch: epoch,
        };
        match call.timestamp {
            // latest, and latest-tiered (KIP-1005): nothing is tiered, so both are the HW.
            -1 | -5 => found(hw, -1),
            // earliest, and earliest-local (KIP-405)
            -2 | -4 => found(partition.log.log_start_offset(), -1),
            // max timestamp (KIP-734)
            -3 => match partition.log.max_timestamp() {
                Some((ts, off)) if off < hw => found(off, ts),
                _ => found(-1, -1),
            },
            ts if ts >= 0 => match partition.log.offset_for_timestamp(ts) {
                Ok(Some((off, t))) if off < hw => found(off, t),
                Ok(_) => found(-1, -1),
                Err(e) => ListOffsetOutcome {
                    error_code: e.kafka_code(),
                    offset: -1,
                    timestamp: -1,
                    leader_epoch: -1,
                },
            },
            _ => ListOffsetOutcome { error_code: 42, offset: -1, timestamp: -1, leader_epoch: -1 },
        }
    }

    /// Partitions with unsynced appends, with what to fdatasync for each; clears the marks.
    pub fn take_sync_jobs(&mut self) -> Vec<(Arc<str>, i32, riptide_engine::SyncTarget)> {
        self.flush_requested = false;
        let mut jobs = Vec::new();
        for (topic, parts) in self.by_topic.iter_mut() {
            for (index, p) in parts.iter_mut() {
                if !p.dirty {
                    continue;
                }
                p.dirty = false;
                match p.log.sync_target() {
                    Some(t) => jobs.push((topic.clone(), *index, t)),
                    None => p.on_durable(),
                }
            }
        }
        jobs
    }

    pub fn complete_sync(&mut self, topic: &str, index: i32, up_to: i64, result: std::io::Result<()>) {
        let Some(p) = self.by_topic.get_mut(topic).and_then(|m| m.get_mut(&index)) else { return };
        match result {
            Ok(()) => match p.log.mark_durable(up_to) {
                Ok(()) => p.on_durable(),
                Err(e) => {
                    eprintln!("riptide: {topic}-{index}: checkpoint failed, partition offline: {e}");
                    p.fail_waiters(KAFKA_STORAGE_ERROR, &e.to_string());
                }
            },
            Err(e) => {
                eprintln!("riptide: {topic}-{index}: fdatasync failed, partition offline: {e}");
                let msg = e.to_string();
                p.log.mark_failed(e);
                p.fail_waiters(KAFKA_STORAGE_ERROR, &msg);
            }
        }
    }

    pub fn reconfigure(&mut self, topic: &str) {
        let Some(meta) = self.broker.topic(topic) else { return };
        let eff = meta.effective(&self.broker.config.log, self.broker.engine_io);
        if let Some(parts) = self.by_topic.get_mut(topic) {
            for p in parts.values_mut() {
                p.log.set_config(eff.log.clone());
                p.durability = eff.durability;
                p.cleanup = Cleanup::of(&eff);
                if p.durability != Durability::Fsync {
                    let leo = p.log.log_end_offset();
                    p.advance_high_watermark(leo);
                }
            }
        }
    }

    pub fn drop_topic(&mut self, topic: &str) {
        if let Some(parts) = self.by_topic.remove(topic) {
            for (index, mut p) in parts {
                p.fail_waiters(UNKNOWN_TOPIC_OR_PARTITION, "topic deleted");
                if let Err(e) = p.log.delete() {
                    eprintln!("riptide: deleting {topic}-{index}: {e}");
                }
            }
        }
        self.broker.metrics.forget_topic(topic);
    }

    /// Retention and time-based rolling for every open partition.
    pub fn housekeeping(&mut self) {
        let now = now_ms();
        for (topic, parts) in self.by_topic.iter_mut() {
            for (index, p) in parts.iter_mut() {
                if p.log.is_failed() {
                    continue;
                }
                if let Err(e) = p.log.maybe_roll(now) {
                    eprintln!("riptide: {topic}-{index}: roll failed: {e}");
                }
                if p.cleanup.delete {
                    match p.log.apply_retention(now) {
                        Ok(0) => {}
                        Ok(n) => eprintln!(
                            "riptide: {topic}-{index}: retention deleted {n} segment(s); log start offset {}",
                            p.log.log_start_offset()
                        ),
                        Err(e) => eprintln!("riptide: {topic}-{index}: retention failed: {e}"),
                    }
                }
                if p.cleanup.compact && p.log.segment_count() >= 2 {
                    match p.log.compact(now, p.cleanup.delete_retention_ms) {
                        Ok(s) if s.segments_rewritten > 0 => eprintln!(
                            "riptide: {topic}-{index}: compacted {} segment(s), {} record(s) removed",
                            s.segments_rewritten, s.records_removed
                        ),
                        Ok(_) => {}
                        Err(e) => eprintln!("riptide: {topic}-{index}: compaction failed: {e}"),
                    }
                }
            }
        }
    }

    /// Clean shutdown: fsync and close every log, answering what waited for durability.
    pub fn close_all(&mut self) {
        for (topic, parts) in self.by_topic.drain() {
            for (index, mut p) in parts {
                match p.log.sync() {
                    Ok(_) => p.on_durable(),
                    Err(e) => p.fail_waiters(KAFKA_STORAGE_ERROR, &e.to_string()),
                }
                if let Err(e) = p.log.close() {
                    eprintln!("riptide: closing {topic}-{index}: {e}");
                }
            }
        }
    }
}

pub type SharedPartitions = Rc<std::cell::RefCell<Partitions>>;
