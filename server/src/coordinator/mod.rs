//! The group coordinator (ARCHITECTURE.md §4): consumer groups and their committed offsets,
//! persisted in the internal topic `__consumer_offsets`.
//!
//! Ownership: one [`Coordinator`] per broker (a field of `Broker`), its state behind one
//! `Mutex` — group traffic is light next to records, and every group operation is a short
//! critical section that never spans an `.await`. Requests that must wait (JoinGroup, SyncGroup)
//! park a one-shot flume sender in the state and await the receiver after the lock is released.
//! This single broker coordinates every group; a group's records go to partition
//! `abs(javaHash(group)) % offsets.topic.num.partitions` as in Kafka.
//!
//! Durability contract: an OffsetCommit, OffsetDelete or DeleteGroups is answered only after
//! its records are fsynced through the normal produce path (`route_produce`, acks=all);
//! group-metadata records are written in the background in the order they were produced.
//! At start-up the background task on shard 0 replays `__consumer_offsets` and until it is done
//! every group request is answered COORDINATOR_LOAD_IN_PROGRESS. Each shard compacts the
//! `__consumer_offsets` partitions it owns (engine `Log::compact`), keeping the latest record of
//! every key, so the topic stays bounded by the number of live offsets and groups.
//!
//! Modules: `group` (one classic group's state machine), `consumer_group` (KIP-848 groups) and
//! `assignor` (their server-side assignors), `registry` (all groups, offsets, listing,
//! replay), `offsets_log` (record formats), `error` (Kafka codes).

pub mod assignor;
pub mod consumer_group;
pub mod error;
pub mod group;
pub mod offsets_log;
pub mod registry;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::broker::{AdminError, Broker};
use crate::shard::mailbox::{ListOffsetCall, ProduceCall, ReadCall};
use crate::shard::{route_list_offset, route_produce, route_read, Ctx};
pub use error::GroupError;
use offsets_log::OFFSETS_TOPIC;
use registry::{Groups, Write};

/// The coordinator's settings, under Kafka's broker config names.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: a new group waits this long for more members.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// How long a parked JoinGroup of a new member may wait (Kafka: 5 minutes).
    pub new_member_join_timeout_ms: u64,
    /// `group.max.size`.
    pub group_max_size: usize,
    /// Groups this coordinator holds at most.
    pub groups_max: usize,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: u64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_bytes_max: usize,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: u64,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848). Kafka's default is 5 s; 2 s makes
    /// incremental rebalances settle faster for a small cost in heartbeats.
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms` (KIP-848).
    pub consumer_session_timeout_ms: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            new_member_join_timeout_ms: 300_000,
            group_max_size: 10_000,
            groups_max: 1_000_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_bytes_max: 4096,
            offsets_topic_num_partitions: 50,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            consumer_heartbeat_interval_ms: 2000,
            consumer_session_timeout_ms: 45_000,
        }
    }
}

/// The time a state-machine step happens at: monotonic for timers, wall clock for what is
/// persisted (commit timestamps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub mono_ms: u64,
    pub wall_ms: i64,
}

/// Period of the timer loop (session expiry, join and sync deadlines).
const TICK_MS: u64 = 100;
/// Bytes asked of the log per read while loading.
const LOAD_READ_BYTES: u32 = 4 << 20;
/// How often each shard looks for `__consumer_offsets` partitions to compact.
const COMPACTION_INTERVAL_MS: u64 = 60_000;
/// Kafka's `delete.retention.ms` default (tombstones kept a day after compaction reaches them).
const DELETE_RETENTION_MS_DEFAULT: i64 = 86_400_000;

pub struct Coordinator {
    groups: Mutex<Groups>,
    loaded: AtomicBool,
    started: Instant,
    outbox_tx: flume::Sender<Write>,
    outbox_rx: flume::Receiver<Write>,
}

impl Coordinator {
    pub fn new(cfg: GroupConfig) -> Coordinator {
        let (outbox_tx, outbox_rx) = flume::unbounded();
        Coordinator {
            groups: Mutex::new(Groups::new(cfg)),
            loaded: AtomicBool::new(false),
            started: Instant::now(),
            outbox_tx,
            outbox_rx,
        }
    }

    pub fn now(&self) -> Now {
        Now { mono_ms: self.started.elapsed().as_millis() as u64, wall_ms: crate::shard::partition::now_ms() }
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    pub fn config(&self) -> GroupConfig {
        self.lock().cfg.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the groups (refused while loading). Background writes it queued are handed
    /// to the writer before the lock is released, so they are written in the order made.
    pub fn with<R>(&self, f: impl FnOnce(&mut Groups, Now) -> R) -> Result<R, GroupError> {
        if !self.is_loaded() {
            return Err(GroupError::LoadInProgress);
        }
        Ok(self.with_unchecked(f))
    }

    fn with_unchecked<R>(&self, f: impl FnOnce(&mut Groups, Now) -> R) -> R {
        let now = self.now();
        let mut groups = self.lock();
        let result = f(&mut groups, now);
        for w in groups.take_outbox() {
            let _ = self.outbox_tx.send(w);
        }
        result
    }
}

/// Creates `__consumer_offsets` if it doesn't exist yet (Kafka does so on first
/// FindCoordinator), compacted (the latest commit per key is kept; `retention.ms=-1` in case
/// the policy is ever switched to `compact,delete`).
pub fn ensure_offsets_topic(broker: &Broker) -> Result<(), GroupError> {
    if broker.topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let cfg = broker.coordinator.config();
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("retention.ms".to_string(), "-1".to_string()),
        ("segment.bytes".to_string(), cfg.offsets_topic_segment_bytes.to_string()),
    ]);
    match broker.create_topic(OFFSETS_TOPIC, cfg.offsets_topic_num_partitions, 1, configs, false) {
        Ok(_) | Err(AdminError::TopicExists(_)) => Ok(()),
        Err(e) => {
            eprintln!("riptide: cannot create {OFFSETS_TOPIC}: {e}");
            Err(GroupError::CoordinatorNotAvailable)
        }
    }
}

/// Appends records to their `__consumer_offsets` partition; returns once they are durable.
pub async fn write(ctx: &Ctx, w: &Write) -> Result<(), GroupError> {
    if w.records.is_empty() {
        return Ok(());
    }
    ensure_offsets_topic(&ctx.broker)?;
    let batch = offsets_log::encode_batch(&w.records, crate::shard::partition::now_ms()).map_err(|e| {
        eprintln!("riptide: cannot encode a {OFFSETS_TOPIC} batch: {e}");
        GroupError::Unknown
    })?;
    let call =
        ProduceCall { topic: Arc::from(OFFSETS_TOPIC), partition: w.partition, records: batch, acks: -1 };
    let outcome = route_produce(ctx, call).await;
    if outcome.error_code != 0 {
        eprintln!(
            "riptide: writing {OFFSETS_TOPIC}-{} failed with error {}: {}",
            w.partition,
            outcome.error_code,
            outcome.error_message.unwrap_or_default()
        );
        return Err(GroupError::from_write_error(outcome.error_code));
    }
    Ok(())
}

/// The coordinator's background work, started on every shard: each shard compacts the
/// `__consumer_offsets` partitions it owns; shard 0 also loads `__consumer_offsets`, then writes
/// queued records and runs the timers until shutdown.
pub async fn background(ctx: Ctx) {
    compio::runtime::spawn(compaction_loop(ctx.clone())).detach();
    if ctx.id != 0 {
        return;
    }
    let started = Instant::now();
    let coordinator = &ctx.broker.coordinator;
    let (records, groups) = load(&ctx).await;
    coordinator.loaded.store(true, Ordering::Release);
    if records > 0 {
        eprintln!(
            "riptide: loaded {groups} group(s) from {records} {OFFSETS_TOPIC} record(s) in {} ms",
            started.elapsed().as_millis()
        );
    }
    let writer_ctx = ctx.clone();
    compio::runtime::spawn(async move {
        let rx = writer_ctx.broker.coordinator.outbox_rx.clone();
        while let Ok(w) = rx.recv_async().await {
            // Errors are logged by `write`; a lost metadata record costs at most a rebalance.
            let _ = write(&writer_ctx, &w).await;
        }
    })
    .detach();
    while !ctx.broker.is_shutting_down() {
        compio::time::sleep(Duration::from_millis(TICK_MS)).await;
        coordinator.with_unchecked(|groups, now| groups.tick(now));
    }
}

/// Compacts this shard's `__consumer_offsets` partitions every `COMPACTION_INTERVAL_MS`, those
/// that grew since their last pass. A pass runs on the shard's thread (the log is the shard's),
/// so it briefly delays that shard's other work; segments are at most
/// `offsets.topic.segment.bytes`.
async fn compaction_loop(ctx: Ctx) {
    let mut last_pass: HashMap<i32, (usize, i64)> = HashMap::new();
    while !ctx.broker.is_shutting_down() {
        compio::time::sleep(Duration::from_millis(COMPACTION_INTERVAL_MS)).await;
        let Some(topic) = ctx.broker.topic(OFFSETS_TOPIC) else { continue };
        let delete_retention_ms = topic
            .config_value("delete.retention.ms", &ctx.broker.config.log)
            .and_then(|(v, _)| v.parse::<i64>().ok())
            .unwrap_or(DELETE_RETENTION_MS_DEFAULT);
        for p in (0..topic.partitions).filter(|p| ctx.broker.owner_of(OFFSETS_TOPIC, *p) == ctx.id) {
            let mut partitions = ctx.partitions.borrow_mut();
            let Ok(partition) = partitions.get_or_open(OFFSETS_TOPIC, p) else { continue };
            let shape = (partition.log.segment_count(), partition.log.log_end_offset());
            if shape.0 < 2 || last_pass.get(&p) == Some(&shape) {
                continue;
            }
            match partition.log.compact(crate::shard::partition::now_ms(), delete_retention_ms) {
                Ok(s) if s.segments_rewritten > 0 => eprintln!(
                    "riptide: {OFFSETS_TOPIC}-{p}: compacted {} segment(s), {} record(s) removed, {} -> {} bytes",
                    s.segments_rewritten, s.records_removed, s.bytes_before, s.bytes_after
                ),
                Ok(_) => {}
                Err(e) => eprintln!("riptide: {OFFSETS_TOPIC}-{p}: compaction failed: {e}"),
            }
            last_pass.insert(p, shape);
        }
    }
}

/// Replays every partition of `__consumer_offsets` into the groups. Returns (records, groups).
async fn load(ctx: &Ctx) -> (usize, usize) {
    let Some(topic) = ctx.broker.topic(OFFSETS_TOPIC) else { return (0, 0) };
    let mut total = 0;
    for partition in 0..topic.partitions {
        match load_partition(ctx, partition).await {
            Ok(n) => total += n,
            Err(e) => eprintln!("riptide: loading {OFFSETS_TOPIC}-{partition}: {e}"),
        }
    }
    let coordinator = &ctx.broker.coordinator;
    let groups = coordinator.with_unchecked(|groups, _| {
        groups.finish_load();
        groups.len()
    });
    (total, groups)
}

async fn load_partition(ctx: &Ctx, partition: i32) -> Result<usize, String> {
    let topic: Arc<str> = Arc::from(OFFSETS_TOPIC);
    let earliest =
        route_list_offset(ctx, ListOffsetCall { topic: topic.clone(), partition, timestamp: -2 }).await;
    if earliest.error_code != 0 {
        return Err(format!("list offsets error {}", earliest.error_code));
    }
    let mut offset = earliest.offset.max(0);
    let mut count = 0;
    loop {
        let call = ReadCall {
            topic: topic.clone(),
            partition,
            offset,
            max_bytes: LOAD_READ_BYTES,
            min_one: true,
            notify: None,
        };
        let outcome = route_read(ctx, call).await;
        if outcome.error_code != 0 {
            return Err(format!("read error {} at offset {offset}", outcome.error_code));
        }
        let Some(slice) = outcome.slice else { break };
        let mut buf = vec![0u8; slice.len as usize];
        slice.file.read_exact_at(&mut buf, slice.position).map_err(|e| e.to_string())?;
        let chunk = offsets_log::decode_chunk(&Bytes::from(buf));
        if chunk.skipped_batches > 0 {
            eprintln!(
                "riptide: {OFFSETS_TOPIC}-{partition}: skipped {} undecodable batch(es)",
                chunk.skipped_batches
            );
        }
        let coordinator = &ctx.broker.coordinator;
        coordinator.with_unchecked(|groups, now| {
            for (at, record) in chunk.records {
                match record {
                    Ok(r) => {
                        groups.replay(r, now);
                        count += 1;
                    }
                    Err(e) => eprintln!("riptide: {OFFSETS_TOPIC}-{partition}@{at}: skipped record: {e}"),
                }
            }
        });
        match chunk.next_offset {
            Some(next) if next > offset => offset = next,
            _ => return Err(format!("no progress reading at offset {offset}")),
        }
        if offset >= outcome.high_watermark {
            break;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests;
