//! The group coordinator (ARCHITECTURE.md §4): consumer groups and their committed offsets,
//! persisted in the internal topic `__consumer_offsets`.
//!
//! Ownership: one [`Coordinator`] per broker (made by the composition root, `server.rs`, and
//! reached by the API layer through its context), its state behind one
//! `Mutex` — group traffic is light next to records, and every group operation is a short
//! critical section that never spans an `.await`. Requests that must wait (JoinGroup, SyncGroup)
//! park a one-shot flume sender in the state and await the receiver after the lock is released.
//! This single broker coordinates every group; a group's records go to partition
//! `abs(javaHash(group)) % offsets.topic.num.partitions` as in Kafka.
//!
//! Durability contract: an OffsetCommit, OffsetDelete or DeleteGroups is answered only after
//! its records are fsynced through the normal produce path (`route_produce_one`, acks=all);
//! group-metadata records are written in the background in the order they were produced.
//! At start-up the background task on shard 0 replays `__consumer_offsets` and until it is done
//! every group request is answered COORDINATOR_LOAD_IN_PROGRESS. `__consumer_offsets` is a
//! compacted topic, so the shards' housekeeping compacts it like any other (keeping the latest
//! record of every key): the topic stays bounded by the number of live offsets and groups.
//!
//! Modules: `group` (one classic group's state machine), `consumer_group` (KIP-848 groups) and
//! `assignor` (their server-side assignors), `registry` (all groups, offsets, listing,
//! replay), `offsets_log` (record formats), `error` (Kafka codes).

pub mod assignor;
pub mod consumer_group;
pub mod error;
pub mod group;
pub mod offsets_log;
pub mod peer;
pub mod registry;
pub mod share_delta;
pub mod share_group;
pub mod share_partition;
pub mod share_state;
pub mod shares;
pub mod txn;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::broker::{AdminError, Broker};
use crate::clock::now_ms;
use crate::partition::{Acks, Offset, OffsetSpec};
use crate::shard::mailbox::{ListOffsetCall, ReadCall};
use crate::shard::router::{route_list_offset, route_produce_one, route_read_one};
use crate::shard::Ctx;
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
/// How long loading waits for a new leader's high watermark to reach the log end.
const LOAD_HW_WAIT: Duration = Duration::from_secs(30);
/// Bytes asked of the log per read while loading.
const LOAD_READ_BYTES: u32 = 4 << 20;

/// Whether this broker leads a `__consumer_offsets` partition (and so coordinates its groups).
pub type Owns = Box<dyn Fn(i32) -> bool + Send + Sync>;

pub struct Coordinator {
    groups: Mutex<Groups>,
    owns: Owns,
    loaded: AtomicBool,
    /// Offsets partitions whose groups are loaded here (requests for others wait).
    owned: Mutex<BTreeSet<i32>>,
    started: Instant,
    outbox_tx: flume::Sender<Outgoing>,
    outbox_rx: flume::Receiver<Outgoing>,
}

/// What the background writer takes, in order: queued records, or a flush that answers once
/// everything queued before it is written.
enum Outgoing {
    Write(Write),
    Flushed(flume::Sender<()>),
}

impl Coordinator {
    /// A coordinator of every group (one node, tests).
    pub fn new(cfg: GroupConfig) -> Coordinator {
        Coordinator::owning(cfg, Box::new(|_| true))
    }

    /// A coordinator of the groups whose offsets partition `owns` says this broker leads.
    pub fn owning(cfg: GroupConfig, owns: Owns) -> Coordinator {
        let (outbox_tx, outbox_rx) = flume::unbounded();
        Coordinator {
            owns,
            groups: Mutex::new(Groups::new(cfg)),
            loaded: AtomicBool::new(false),
            owned: Mutex::new(BTreeSet::new()),
            started: Instant::now(),
            outbox_tx,
            outbox_rx,
        }
    }

    pub fn now(&self) -> Now {
        Now { mono_ms: self.started.elapsed().as_millis() as u64, wall_ms: now_ms() }
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// NOT_COORDINATOR unless this broker leads the group's offsets partition: the client
    /// looks the coordinator up again.
    pub fn check_owner(&self, group_id: &str) -> Result<(), GroupError> {
        let n = self.lock().cfg.offsets_topic_num_partitions;
        let p = offsets_log::partition_for(group_id, n);
        if !(self.owns)(p) {
            return Err(GroupError::NotCoordinator);
        }
        // Until the ownership check has loaded the partition (`follow_ownership`), which first
        // forgets what it held: a commit taken before would be dropped by that load.
        if !self.owned.lock().unwrap_or_else(|e| e.into_inner()).contains(&p) {
            return Err(GroupError::LoadInProgress);
        }
        Ok(())
    }

    /// True while this broker leads `__consumer_offsets` partition `p` but has not loaded its
    /// groups yet: FindCoordinator answers COORDINATOR_NOT_AVAILABLE meanwhile, which every
    /// client retries (some older ones give up on a JoinGroup answered LOAD_IN_PROGRESS).
    pub fn loading(&self, p: i32) -> bool {
        (self.owns)(p)
            && (!self.is_loaded() || !self.owned.lock().unwrap_or_else(|e| e.into_inner()).contains(&p))
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

    /// `with` for one group's request: NOT_COORDINATOR unless this broker coordinates it.
    pub fn with_group<R>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut Groups, Now) -> R,
    ) -> Result<R, GroupError> {
        self.check_owner(group_id)?;
        self.with(f)
    }

    /// `with`, loaded or not: for the transaction coordinator's markers, which complete
    /// transactional offsets whatever else the coordinator is doing.
    pub fn with_any<R>(&self, f: impl FnOnce(&mut Groups, Now) -> R) -> R {
        self.with_unchecked(f)
    }

    fn with_unchecked<R>(&self, f: impl FnOnce(&mut Groups, Now) -> R) -> R {
        let now = self.now();
        let mut groups = self.lock();
        let result = f(&mut groups, now);
        for w in groups.take_outbox() {
            let _ = self.outbox_tx.send(Outgoing::Write(w));
        }
        result
    }

    /// Waits until the records queued so far are written (or their write failed): a
    /// deletion's tombstones, written directly, must not be overtaken by a queued record of
    /// the same group, which would bring it back on the next load.
    pub async fn flush_outbox(&self) {
        let (tx, rx) = flume::bounded(1);
        if self.outbox_tx.send(Outgoing::Flushed(tx)).is_ok() {
            let _ = rx.recv_async().await;
        }
    }
}

/// Creates `__consumer_offsets` if it doesn't exist yet (Kafka does so on first
/// FindCoordinator), compacted (the latest commit per key is kept; `retention.ms=-1` in case
/// the policy is ever switched to `compact,delete`).
pub async fn ensure_offsets_topic(broker: &Broker, coordinator: &Coordinator) -> Result<(), GroupError> {
    if broker.topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let cfg = coordinator.config();
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("retention.ms".to_string(), "-1".to_string()),
        ("segment.bytes".to_string(), cfg.offsets_topic_segment_bytes.to_string()),
    ]);
    match broker
        .create_topic(OFFSETS_TOPIC, cfg.offsets_topic_num_partitions, -1, configs, None, None, false)
        .await
    {
        Ok(_) | Err(AdminError::TopicExists(_)) => Ok(()),
        Err(e) => {
            tracing::error!("cannot create {OFFSETS_TOPIC}: {e}");
            Err(GroupError::CoordinatorNotAvailable)
        }
    }
}

/// Appends records to their `__consumer_offsets` partition; returns once they are durable.
pub async fn write(ctx: &Ctx, coordinator: &Coordinator, w: &Write) -> Result<(), GroupError> {
    if w.records.is_empty() {
        return Ok(());
    }
    ensure_offsets_topic(&ctx.broker, coordinator).await?;
    let batch = offsets_log::encode_batch(&w.records, now_ms()).map_err(|e| {
        tracing::error!("cannot encode a {OFFSETS_TOPIC} batch: {e}");
        GroupError::Unknown
    })?;
    let topic = Arc::from(OFFSETS_TOPIC);
    if let Err(e) = route_produce_one(ctx, topic, w.partition, batch, Acks::All).await {
        tracing::error!("writing {OFFSETS_TOPIC}-{} failed: {e}", w.partition);
        return Err(GroupError::from_write_error(&e));
    }
    Ok(())
}

/// The coordinator's background work, run on one shard: loads `__consumer_offsets`, then
/// writes queued records and runs the timers until shutdown.
pub async fn background(ctx: Ctx, coordinator: Arc<Coordinator>) {
    let started = Instant::now();
    let (records, groups) = load(&ctx, &coordinator).await;
    coordinator.loaded.store(true, Ordering::Release);
    if records > 0 {
        tracing::info!(
            "loaded {groups} group(s) from {records} {OFFSETS_TOPIC} record(s) in {} ms",
            started.elapsed().as_millis()
        );
    }
    let (writer_ctx, writer_coordinator) = (ctx.clone(), coordinator.clone());
    compio::runtime::spawn(async move {
        let rx = writer_coordinator.outbox_rx.clone();
        while let Ok(out) = rx.recv_async().await {
            match out {
                // Errors are logged by `write`; a lost metadata record costs at most a rebalance.
                Outgoing::Write(w) => {
                    let _ = write(&writer_ctx, &writer_coordinator, &w).await;
                }
                Outgoing::Flushed(done) => {
                    let _ = done.send(());
                }
            }
        }
    })
    .detach();
    while !ctx.broker.is_shutting_down() {
        compio::time::sleep(Duration::from_millis(TICK_MS)).await;
        follow_ownership(&ctx, &coordinator).await;
        coordinator.with_unchecked(|groups, now| groups.tick(now));
    }
}

/// Leadership of `__consumer_offsets` partitions moves with failover: a partition led here
/// since the last look has its groups loaded (answering COORDINATOR_LOAD_IN_PROGRESS
/// meanwhile), one no longer led has them forgotten (its new leader answers for them).
async fn follow_ownership(ctx: &Ctx, coordinator: &Coordinator) {
    let Some(topic) = ctx.broker.topic(OFFSETS_TOPIC) else { return };
    let owned = coordinator.owned.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for p in 0..topic.partitions {
        let owns = (coordinator.owns)(p);
        if owns == owned.contains(&p) {
            continue;
        }
        coordinator.with_unchecked(|groups, _| groups.drop_partition(p));
        if !owns {
            tracing::info!("{OFFSETS_TOPIC}-{p} led elsewhere now: its groups are unloaded");
            coordinator.owned.lock().unwrap_or_else(|e| e.into_inner()).remove(&p);
            continue;
        }
        let started = Instant::now();
        let result = load_partition(ctx, coordinator, p).await;
        coordinator.with_unchecked(|groups, _| groups.finish_load());
        match result {
            Ok(n) => {
                tracing::info!(
                    "{OFFSETS_TOPIC}-{p} led here now: {n} record(s) loaded in {} ms",
                    started.elapsed().as_millis()
                );
                coordinator.owned.lock().unwrap_or_else(|e| e.into_inner()).insert(p);
            }
            // Retried on the next tick.
            Err(e) => tracing::warn!("loading {OFFSETS_TOPIC}-{p}: {e}"),
        }
    }
}

/// Replays every partition of `__consumer_offsets` into the groups. Returns (records, groups).
async fn load(ctx: &Ctx, coordinator: &Coordinator) -> (usize, usize) {
    let Some(topic) = ctx.broker.topic(OFFSETS_TOPIC) else { return (0, 0) };
    let mut total = 0;
    for partition in (0..topic.partitions).filter(|p| (coordinator.owns)(*p)) {
        match load_partition(ctx, coordinator, partition).await {
            Ok(n) => {
                total += n;
                coordinator.owned.lock().unwrap_or_else(|e| e.into_inner()).insert(partition);
            }
            Err(e) => tracing::error!("loading {OFFSETS_TOPIC}-{partition}: {e}"),
        }
    }
    let groups = coordinator.with_unchecked(|groups, _| {
        groups.finish_load();
        groups.len()
    });
    (total, groups)
}

async fn load_partition(ctx: &Ctx, coordinator: &Coordinator, partition: i32) -> Result<usize, String> {
    let mut count = 0;
    read_partition(ctx, OFFSETS_TOPIC, partition, |bytes| {
        let chunk = offsets_log::decode_chunk(&bytes);
        if chunk.skipped_batches > 0 {
            tracing::warn!(
                "{OFFSETS_TOPIC}-{partition}: skipped {} undecodable batch(es)",
                chunk.skipped_batches
            );
        }
        coordinator.with_unchecked(|groups, now| {
            for entry in chunk.entries {
                groups.replay_entry(entry, partition, now);
                count += 1;
            }
        });
        chunk.next_offset
    })
    .await?;
    Ok(count)
}

/// Reads a coordinator's log partition from its start to the log end it had when called,
/// handing each chunk of whole batches to `on_chunk`, which returns the offset after them.
pub(crate) async fn read_partition(
    ctx: &Ctx,
    topic: &str,
    partition: i32,
    mut on_chunk: impl FnMut(Bytes) -> Option<i64>,
) -> Result<(), String> {
    let topic: Arc<str> = Arc::from(topic);
    let call = ListOffsetCall { topic: topic.clone(), partition, spec: OffsetSpec::Earliest };
    let earliest = route_list_offset(ctx, call).await.map_err(|e| format!("list offsets: {e}"))?;
    // Everything in the log when leadership arrived is loaded, once the high watermark covers
    // it (a new leader's high watermark catches up as its followers fetch).
    let call = ListOffsetCall { topic: topic.clone(), partition, spec: OffsetSpec::LogEnd };
    let end = route_list_offset(ctx, call).await.map_err(|e| format!("list offsets: {e}"))?.offset;
    let mut offset = earliest.offset.max(Offset(0));
    let deadline = Instant::now() + LOAD_HW_WAIT;
    loop {
        if offset >= end {
            break;
        }
        let call = ReadCall {
            topic: topic.clone(),
            partition,
            offset,
            max_bytes: LOAD_READ_BYTES,
            min_one: true,
            notify: None,
            replica: None,
            read_committed: false,
        };
        let outcome = route_read_one(ctx, call).await.map_err(|e| format!("read at offset {offset}: {e}"))?;
        let Some(slice) = outcome.slice else {
            if outcome.high_watermark >= end || Instant::now() >= deadline {
                break;
            }
            compio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let buf = slice.read_to_vec().map_err(|e| e.to_string())?;
        match on_chunk(Bytes::from(buf)) {
            Some(next) if Offset(next) > offset => offset = Offset(next),
            _ => return Err(format!("no progress reading at offset {offset}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
