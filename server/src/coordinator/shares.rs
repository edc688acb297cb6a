//! The leader's side of share groups (KIP-932): every share-partition this broker leads, the
//! share sessions of the members fetching from it, and the share coordinator's store of
//! persisted state (`__share_group_state`).
//!
//! Ownership: one [`Shares`] per broker (made by `server.rs`), its state behind one `Mutex`
//! held for short, non-awaiting sections, like the group coordinator's. Reads of the log and
//! writes of the state happen outside the lock.
//!
//! Durability contract: an acknowledgement is answered only once a snapshot of its
//! share-partition that includes it is durable in `__share_group_state` (acks=all through
//! the normal produce path). Snapshots are taken under the lock and queued in that order to
//! one writer task, which writes everything queued for a state partition as one batch (group
//! commit), so the log holds them in the order they were taken. A share-partition is first
//! used after its state is read back (or, with none, after its start offset chosen by
//! `share.auto.offset.reset` is written), so a restart resumes where the last durable
//! snapshot stood: records acknowledged before are not redelivered, acquired ones are
//! available again with their delivery counted.
//!
//! Limits: the share coordinator's writes go to the `__share_group_state` partitions this
//! broker leads. In a cluster, a share-partition whose state partition is led by another
//! broker answers COORDINATOR_NOT_AVAILABLE (Kafka forwards such writes to the share
//! coordinator over the network; that path is not built yet).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::ResponseError;

use super::offsets_log::{self, KeyValue};
use super::share_partition::{AckError, Acquired, Limits, SharePartition};
use super::share_state::{self, Snapshot, StateKey, STATE_TOPIC};
use crate::broker::{AdminError, Broker};
use crate::clock::now_ms;
use crate::partition::{Acks, OffsetSpec};
use crate::shard::mailbox::ListOffsetCall;
use crate::shard::router::{route_list_offset, route_produce_one};
use crate::shard::Ctx;

/// Broker-wide share-group settings, under Kafka's names.
#[derive(Clone, Debug)]
pub struct ShareConfig {
    /// `group.share.enable`: the share-group APIs are served and advertised.
    pub enabled: bool,
    /// `group.share.record.lock.duration.ms`.
    pub record_lock_duration_ms: i64,
    /// `group.share.delivery.count.limit`.
    pub delivery_count_limit: u16,
    /// `group.share.partition.max.record.locks`.
    pub partition_max_record_locks: usize,
    /// `group.share.max.share.sessions`.
    pub max_share_sessions: usize,
    /// `group.share.session.timeout.ms` / `group.share.heartbeat.interval.ms`.
    pub session_timeout_ms: u64,
    pub heartbeat_interval_ms: i32,
    /// `share.coordinator.state.topic.num.partitions`.
    pub state_topic_partitions: i32,
    /// `share.coordinator.state.topic.segment.bytes`.
    pub state_topic_segment_bytes: u64,
}

impl Default for ShareConfig {
    fn default() -> Self {
        ShareConfig {
            enabled: true,
            record_lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            partition_max_record_locks: 2000,
            max_share_sessions: 2000,
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            state_topic_partitions: 50,
            state_topic_segment_bytes: 100 * 1024 * 1024,
        }
    }
}

/// One group's share settings: the broker's, overridden by the group's configs
/// (IncrementalAlterConfigs on the GROUP resource).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupShareSettings {
    pub limits_lock_ms: i64,
    pub delivery_limit: u16,
    pub max_in_flight: usize,
    pub auto_offset_reset: AutoOffsetReset,
    pub read_committed: bool,
}

/// `share.auto.offset.reset`: where a share-partition with no state starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoOffsetReset {
    Latest,
    Earliest,
    /// `by_duration:<ISO-8601 duration>`: the first record at or after now minus it.
    ByDurationMs(i64),
}

impl AutoOffsetReset {
    pub fn parse(s: &str) -> Option<AutoOffsetReset> {
        match s {
            "latest" => Some(AutoOffsetReset::Latest),
            "earliest" => Some(AutoOffsetReset::Earliest),
            _ => s
                .strip_prefix("by_duration:")
                .and_then(parse_iso_duration_ms)
                .map(AutoOffsetReset::ByDurationMs),
        }
    }
}

/// An ISO-8601 duration as Java's `Duration.parse` reads it (`PnDTnHnMn.nS`), in ms.
pub fn parse_iso_duration_ms(s: &str) -> Option<i64> {
    let rest = s.strip_prefix('P').or_else(|| s.strip_prefix('p'))?;
    let (days, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut ms: f64 = 0.0;
    if !days.is_empty() {
        ms += days.strip_suffix(['D', 'd'])?.parse::<f64>().ok()? * 86_400_000.0;
    }
    if let Some(mut t) = time {
        if t.is_empty() {
            return None;
        }
        for (unit, factor) in [('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)] {
            if let Some(i) = t.find([unit, unit.to_ascii_lowercase()]) {
                ms += t[..i].parse::<f64>().ok()? * factor;
                t = &t[i + 1..];
            }
        }
        if !t.is_empty() {
            return None;
        }
    }
    (ms >= 0.0 && ms.is_finite()).then_some(ms as i64)
}

/// Share errors with their Kafka codes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("The share session was not found.")]
    SessionNotFound,
    #[error("The share session epoch is invalid.")]
    InvalidSessionEpoch,
    #[error("The limit of share sessions has been reached.")]
    SessionLimitReached,
    #[error("{0}")]
    InvalidRecordState(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("The share coordinator is not available.")]
    CoordinatorNotAvailable,
    #[error("{0}")]
    Unknown(String),
}

impl ShareError {
    pub fn code(&self) -> i16 {
        match self {
            ShareError::SessionNotFound => ResponseError::ShareSessionNotFound.code(),
            ShareError::InvalidSessionEpoch => ResponseError::InvalidShareSessionEpoch.code(),
            ShareError::SessionLimitReached => ResponseError::ShareSessionLimitReached.code(),
            ShareError::InvalidRecordState(_) => ResponseError::InvalidRecordState.code(),
            ShareError::InvalidRequest(_) => ResponseError::InvalidRequest.code(),
            ShareError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable.code(),
            ShareError::Unknown(_) => ResponseError::UnknownServerError.code(),
        }
    }
}

impl From<AckError> for ShareError {
    fn from(e: AckError) -> ShareError {
        match e {
            AckError::NotAcquired(_) => ShareError::InvalidRecordState(e.to_string()),
            AckError::UnknownType(_) | AckError::BadRange { .. } => ShareError::InvalidRequest(e.to_string()),
        }
    }
}

/// A topic-partition by topic id, as share requests name them.
pub type TopicIdPartition = (u128, i32);

struct Session {
    epoch: i32,
    partitions: BTreeSet<TopicIdPartition>,
    last_used_ms: i64,
}

struct Entry {
    sp: SharePartition,
    snapshot_epoch: i32,
    state_epoch: i32,
    create_timestamp_ms: i64,
    /// Changed since its last snapshot (lock expiries, acquisitions): written with the next.
    dirty: bool,
}

struct Pending {
    partition: i32,
    record: KeyValue,
    done: flume::Sender<Result<(), ShareError>>,
}

#[derive(Default)]
struct Inner {
    partitions: HashMap<StateKey, Entry>,
    sessions: HashMap<(String, String), Session>,
    /// The share coordinator's view: the latest snapshot of every key whose state partition
    /// is led here (read back at start-up, then kept current by the writes).
    stored: HashMap<StateKey, Snapshot>,
}

pub struct Shares {
    pub cfg: ShareConfig,
    inner: Mutex<Inner>,
    loaded: AtomicBool,
    writes_tx: flume::Sender<Pending>,
    writes_rx: flume::Receiver<Pending>,
}

/// What the fetch path needs of one share-partition after acquiring.
pub struct Acquisition {
    pub acquired: Vec<Acquired>,
}

impl Shares {
    pub fn new(cfg: ShareConfig) -> Shares {
        let (writes_tx, writes_rx) = flume::unbounded();
        Shares {
            cfg,
            inner: Mutex::new(Inner::default()),
            loaded: AtomicBool::new(false),
            writes_tx,
            writes_rx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The group's settings: broker defaults overridden by its GROUP configs.
    pub fn settings(&self, group_configs: Option<&BTreeMap<String, String>>) -> GroupShareSettings {
        let get = |k: &str| group_configs.and_then(|c| c.get(k));
        GroupShareSettings {
            limits_lock_ms: get("share.record.lock.duration.ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(self.cfg.record_lock_duration_ms),
            delivery_limit: get("share.delivery.count.limit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(self.cfg.delivery_count_limit),
            max_in_flight: get("share.partition.max.record.locks")
                .and_then(|v| v.parse().ok())
                .unwrap_or(self.cfg.partition_max_record_locks),
            auto_offset_reset: get("share.auto.offset.reset")
                .and_then(|v| AutoOffsetReset::parse(v))
                .unwrap_or(AutoOffsetReset::Latest),
            read_committed: get("share.isolation.level").is_some_and(|v| v == "read_committed"),
        }
    }

    // ---- share sessions --------------------------------------------------------------------

    /// Applies a request's session part: epoch 0 opens a new session (replacing the member's
    /// old one, whose records are released), -1 closes it (after the request's
    /// acknowledgements), any other must be the session's next epoch. `add` and `forget`
    /// change its partitions. Returns the session's partitions.
    pub fn session(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        add: &[TopicIdPartition],
        forget: &[TopicIdPartition],
    ) -> Result<Vec<TopicIdPartition>, ShareError> {
        let now = now_ms();
        let mut inner = self.lock();
        let id = (group.to_string(), member.to_string());
        match epoch {
            0 => {
                if !inner.sessions.contains_key(&id) && inner.sessions.len() >= self.cfg.max_share_sessions {
                    // Make room from sessions idle longer than a member's session timeout.
                    let idle = now - self.cfg.session_timeout_ms as i64;
                    let stale: Vec<(String, String)> = inner
                        .sessions
                        .iter()
                        .filter(|(_, s)| s.last_used_ms < idle)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for (g, m) in stale {
                        inner.sessions.remove(&(g.clone(), m.clone()));
                        release_member_locked(&mut inner, &g, &m);
                    }
                    if inner.sessions.len() >= self.cfg.max_share_sessions {
                        return Err(ShareError::SessionLimitReached);
                    }
                }
                if inner.sessions.remove(&id).is_some() {
                    release_member_locked(&mut inner, group, member);
                }
                let partitions = add.iter().copied().collect();
                inner.sessions.insert(id, Session { epoch: 1, partitions, last_used_ms: now });
                Ok(add.to_vec())
            }
            -1 => {
                let s = inner.sessions.get(&id).ok_or(ShareError::SessionNotFound)?;
                Ok(s.partitions.iter().copied().collect())
            }
            e => {
                let s = inner.sessions.get_mut(&id).ok_or(ShareError::SessionNotFound)?;
                if s.epoch != e {
                    return Err(ShareError::InvalidSessionEpoch);
                }
                s.epoch = if e == i32::MAX { 1 } else { e + 1 };
                s.last_used_ms = now;
                s.partitions.extend(add.iter().copied());
                for f in forget {
                    s.partitions.remove(f);
                }
                Ok(s.partitions.iter().copied().collect())
            }
        }
    }

    /// Ends a member's session (ShareFetch/ShareAcknowledge with epoch -1, or the member left
    /// its group): what it holds is available to others at once.
    pub fn close_session(&self, group: &str, member: &str) {
        let mut inner = self.lock();
        inner.sessions.remove(&(group.to_string(), member.to_string()));
        release_member_locked(&mut inner, group, member);
    }

    // ---- share-partitions ------------------------------------------------------------------

    /// Makes sure the share-partition is in memory: restored from its persisted state, or
    /// started where `share.auto.offset.reset` says and that start made durable.
    pub async fn ensure(
        &self,
        ctx: &Ctx,
        key: &StateKey,
        topic: &Arc<str>,
        settings: &GroupShareSettings,
    ) -> Result<(), ShareError> {
        let limits = Limits {
            lock_ms: settings.limits_lock_ms,
            delivery_limit: settings.delivery_limit,
            max_in_flight: settings.max_in_flight,
        };
        {
            let mut inner = self.lock();
            if let Some(e) = inner.partitions.get_mut(key) {
                e.sp.set_limits(limits);
                return Ok(());
            }
            if !self.owns_state(ctx, key) {
                return Err(ShareError::CoordinatorNotAvailable);
            }
            if !self.is_loaded() {
                return Err(ShareError::CoordinatorNotAvailable);
            }
            if let Some(s) = inner.stored.get(key).cloned() {
                let sp = SharePartition::restore(s.start_offset, &s.batches, limits);
                let entry = Entry {
                    sp,
                    snapshot_epoch: s.snapshot_epoch,
                    state_epoch: s.state_epoch,
                    create_timestamp_ms: s.create_timestamp_ms,
                    dirty: false,
                };
                inner.partitions.insert(key.clone(), entry);
                return Ok(());
            }
        }
        let spec = match settings.auto_offset_reset {
            AutoOffsetReset::Latest if settings.read_committed => OffsetSpec::LastStable,
            AutoOffsetReset::Latest => OffsetSpec::Latest,
            AutoOffsetReset::Earliest => OffsetSpec::Earliest,
            AutoOffsetReset::ByDurationMs(ms) => {
                OffsetSpec::AtOrAfter { timestamp: now_ms() - ms, committed: settings.read_committed }
            }
        };
        let call = ListOffsetCall { topic: topic.clone(), partition: key.partition, spec };
        let listed = route_list_offset(ctx, call).await.map_err(|e| ShareError::Unknown(e.to_string()))?;
        let start = if listed.offset.0 < 0 {
            // No record that recent: start at the end.
            let call =
                ListOffsetCall { topic: topic.clone(), partition: key.partition, spec: OffsetSpec::Latest };
            route_list_offset(ctx, call).await.map_err(|e| ShareError::Unknown(e.to_string()))?.offset.0
        } else {
            listed.offset.0
        };
        let done = {
            let mut inner = self.lock();
            if inner.partitions.contains_key(key) {
                return Ok(()); // another request got here first
            }
            let now = now_ms();
            inner.partitions.insert(
                key.clone(),
                Entry {
                    sp: SharePartition::new(start.max(0), limits),
                    snapshot_epoch: -1,
                    state_epoch: 0,
                    create_timestamp_ms: now,
                    dirty: true,
                },
            );
            self.queue_snapshot_locked(&mut inner, key)
        };
        wait_written(done).await
    }

    fn owns_state(&self, ctx: &Ctx, key: &StateKey) -> bool {
        let p = key.partition_in(self.cfg.state_topic_partitions);
        match ctx.broker.topic(STATE_TOPIC) {
            Some(t) => ctx.broker.leads(&t, p),
            // Created on first use (below); a single broker leads every partition then.
            None => true,
        }
    }

    /// Applies `member`'s acknowledgement batches to one share-partition (all or nothing per
    /// batch: a refused batch stops there). Returns what the persisting write waits on.
    pub fn acknowledge(
        &self,
        key: &StateKey,
        member: &str,
        batches: &[(i64, i64, Vec<i8>)],
    ) -> Result<flume::Receiver<Result<(), ShareError>>, ShareError> {
        let now = now_ms();
        let mut inner = self.lock();
        let entry = inner.partitions.get_mut(key).ok_or_else(|| {
            ShareError::InvalidRecordState("no records of this share-partition are acquired".into())
        })?;
        let mut result = Ok(());
        for (first, last, types) in batches {
            if let Err(e) = entry.sp.acknowledge(member, *first, *last, types, now) {
                result = Err(ShareError::from(e));
                break;
            }
            entry.dirty = true;
        }
        let done = self.queue_snapshot_locked(&mut inner, key);
        result.map(|()| done)
    }

    /// Acquires records for `member` in `from..readable_end`, the range a fetch just read
    /// (`control`: the transaction markers in it).
    pub fn acquire(
        &self,
        key: &StateKey,
        member: &str,
        max_records: usize,
        from: i64,
        readable_end: i64,
        control: &[(i64, i64)],
    ) -> Acquisition {
        let mut inner = self.lock();
        let Some(entry) = inner.partitions.get_mut(key) else { return Acquisition { acquired: Vec::new() } };
        let acquired = entry.sp.acquire(member, max_records, from, readable_end, control, now_ms());
        if !acquired.is_empty() {
            entry.dirty = true;
        }
        Acquisition { acquired }
    }

    /// Where a fetch for this share-partition should read, if it could acquire anything below
    /// `readable_end`; also moves the share-partition past a log start that moved.
    pub fn fetch_position(&self, key: &StateKey, readable_end: i64, log_start: i64) -> Option<i64> {
        let mut inner = self.lock();
        let entry = inner.partitions.get_mut(key)?;
        let now = now_ms();
        entry.sp.log_start_moved(log_start);
        entry.sp.expire(now);
        entry.sp.can_acquire(readable_end, now).then(|| entry.sp.next_fetch_offset())
    }

    /// The share-partition's end offset (where new records start), if it is in memory.
    pub fn end_offset(&self, key: &StateKey) -> Option<i64> {
        self.lock().partitions.get(key).map(|e| e.sp.end_offset())
    }

    /// The share-partition start offsets of a group's share-partitions led here (in memory
    /// or persisted): DescribeShareGroupOffsets.
    pub fn start_offsets(&self, group: &str) -> BTreeMap<TopicIdPartition, i64> {
        let inner = self.lock();
        let mut out: BTreeMap<TopicIdPartition, i64> = inner
            .stored
            .iter()
            .filter(|(k, _)| k.group == group)
            .map(|(k, s)| ((k.topic_id, k.partition), s.start_offset))
            .collect();
        for (k, e) in inner.partitions.iter().filter(|(k, _)| k.group == group) {
            out.insert((k.topic_id, k.partition), e.sp.start_offset());
        }
        out
    }

    /// Records in flight and acquired per share-partition of a group (for describing).
    pub fn in_flight(&self, group: &str) -> BTreeMap<TopicIdPartition, usize> {
        let inner = self.lock();
        inner
            .partitions
            .iter()
            .filter(|(k, _)| k.group == group)
            .map(|(k, e)| ((k.topic_id, k.partition), e.sp.in_flight()))
            .collect()
    }

    /// Snapshots the share-partition and queues its write.
    fn queue_snapshot_locked(
        &self,
        inner: &mut Inner,
        key: &StateKey,
    ) -> flume::Receiver<Result<(), ShareError>> {
        let (tx, rx) = flume::bounded(1);
        let Some(entry) = inner.partitions.get_mut(key) else {
            let _ = tx.send(Ok(()));
            return rx;
        };
        let (start_offset, batches) = entry.sp.snapshot();
        entry.snapshot_epoch += 1;
        entry.dirty = false;
        let snapshot = Snapshot {
            snapshot_epoch: entry.snapshot_epoch,
            state_epoch: entry.state_epoch,
            leader_epoch: 0,
            start_offset,
            create_timestamp_ms: entry.create_timestamp_ms,
            write_timestamp_ms: now_ms(),
            batches,
        };
        let record = share_state::record(key, Some(&snapshot));
        inner.stored.insert(key.clone(), snapshot);
        let partition = key.partition_in(self.cfg.state_topic_partitions);
        let _ = self.writes_tx.send(Pending { partition, record, done: tx });
        rx
    }

    /// Resets a group's share-partitions to new start offsets (AlterShareGroupOffsets: the
    /// group must have no members); the state epoch moves on. Returns the writes to wait on.
    pub fn reset(
        &self,
        group: &str,
        starts: &[(StateKey, i64)],
    ) -> Vec<flume::Receiver<Result<(), ShareError>>> {
        let mut inner = self.lock();
        let mut waits = Vec::new();
        for (key, start) in starts {
            debug_assert_eq!(key.group, group);
            let (state_epoch, create) =
                match inner.partitions.get(key).map(|e| (e.state_epoch, e.create_timestamp_ms)) {
                    Some(v) => v,
                    None => inner
                        .stored
                        .get(key)
                        .map_or((0, now_ms()), |s| (s.state_epoch, s.create_timestamp_ms)),
                };
            let snapshot_epoch = inner.stored.get(key).map_or(-1, |s| s.snapshot_epoch);
            let limits = Limits {
                lock_ms: self.cfg.record_lock_duration_ms,
                delivery_limit: self.cfg.delivery_count_limit,
                max_in_flight: self.cfg.partition_max_record_locks,
            };
            inner.partitions.insert(
                key.clone(),
                Entry {
                    sp: SharePartition::new((*start).max(0), limits),
                    snapshot_epoch,
                    state_epoch: state_epoch + 1,
                    create_timestamp_ms: create,
                    dirty: true,
                },
            );
            waits.push(self.queue_snapshot_locked(&mut inner, key));
        }
        waits
    }

    /// Forgets a group's state (DeleteGroups, DeleteShareGroupOffsets): tombstones for each
    /// persisted share-partition of it (all of `topics` when given, else every one).
    pub fn delete(
        &self,
        group: &str,
        topics: Option<&BTreeSet<u128>>,
    ) -> Vec<flume::Receiver<Result<(), ShareError>>> {
        let mut inner = self.lock();
        let keys: BTreeSet<StateKey> = inner
            .stored
            .keys()
            .chain(inner.partitions.keys())
            .filter(|k| k.group == group && topics.is_none_or(|t| t.contains(&k.topic_id)))
            .cloned()
            .collect();
        let mut waits = Vec::new();
        for key in keys {
            inner.partitions.remove(&key);
            inner.stored.remove(&key);
            let (tx, rx) = flume::bounded(1);
            let partition = key.partition_in(self.cfg.state_topic_partitions);
            let _ =
                self.writes_tx.send(Pending { partition, record: share_state::record(&key, None), done: tx });
            waits.push(rx);
        }
        waits
    }

    /// Runs lock expiries everywhere and persists share-partitions changed since their last
    /// snapshot (so delivery counts reach the log even when nobody acknowledges).
    fn tick(&self) {
        let now = now_ms();
        let mut inner = self.lock();
        let mut dirty = Vec::new();
        for (k, e) in inner.partitions.iter_mut() {
            e.sp.expire(now);
            if e.dirty {
                dirty.push(k.clone());
            }
        }
        for k in dirty {
            drop(self.queue_snapshot_locked(&mut inner, &k));
        }
    }
}

fn release_member_locked(inner: &mut Inner, group: &str, member: &str) {
    for (k, e) in inner.partitions.iter_mut() {
        if k.group == group && e.sp.acquired_by(member) > 0 {
            e.sp.release_member(member);
            e.dirty = true;
        }
    }
}

pub async fn wait_written(rx: flume::Receiver<Result<(), ShareError>>) -> Result<(), ShareError> {
    rx.recv_async().await.unwrap_or(Err(ShareError::CoordinatorNotAvailable))
}

/// Creates `__share_group_state` if needed: compacted (see `share_state`), Kafka's partition
/// count, replicated like `__consumer_offsets`.
pub async fn ensure_state_topic(broker: &Broker, shares: &Shares) -> Result<(), ShareError> {
    if broker.topic(STATE_TOPIC).is_some() {
        return Ok(());
    }
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("retention.ms".to_string(), "-1".to_string()),
        ("segment.bytes".to_string(), shares.cfg.state_topic_segment_bytes.to_string()),
    ]);
    match broker
        .create_topic(STATE_TOPIC, shares.cfg.state_topic_partitions, -1, configs, None, None, false)
        .await
    {
        Ok(_) | Err(AdminError::TopicExists(_)) => Ok(()),
        Err(e) => {
            tracing::error!("cannot create {STATE_TOPIC}: {e}");
            Err(ShareError::CoordinatorNotAvailable)
        }
    }
}

/// Period of the timer (lock expiry, persisting dirty share-partitions).
const TICK_MS: u64 = 1000;

/// The share coordinator's background work, on one shard: reads back the state partitions
/// led here, then writes queued snapshots (one batch per state partition per round) and runs
/// the timer until shutdown.
pub async fn background(ctx: Ctx, shares: Arc<Shares>) {
    load(&ctx, &shares).await;
    shares.loaded.store(true, Ordering::Release);
    let (writer_ctx, writer) = (ctx.clone(), shares.clone());
    compio::runtime::spawn(async move {
        let rx = writer.writes_rx.clone();
        while let Ok(first) = rx.recv_async().await {
            let mut by_partition: BTreeMap<i32, Vec<Pending>> = BTreeMap::new();
            by_partition.entry(first.partition).or_default().push(first);
            while let Ok(p) = rx.try_recv() {
                by_partition.entry(p.partition).or_default().push(p);
            }
            for (partition, pending) in by_partition {
                let result = write_batch(&writer_ctx, &writer, partition, &pending).await;
                for p in pending {
                    let _ = p.done.send(result.clone());
                }
            }
        }
    })
    .detach();
    while !ctx.broker.is_shutting_down() {
        compio::time::sleep(Duration::from_millis(TICK_MS)).await;
        shares.tick();
    }
}

async fn write_batch(
    ctx: &Ctx,
    shares: &Shares,
    partition: i32,
    pending: &[Pending],
) -> Result<(), ShareError> {
    ensure_state_topic(&ctx.broker, shares).await?;
    let records: Vec<KeyValue> = pending.iter().map(|p| p.record.clone()).collect();
    let batch = offsets_log::encode_batch(&records, now_ms()).map_err(ShareError::Unknown)?;
    route_produce_one(ctx, Arc::from(STATE_TOPIC), partition, batch, Acks::All).await.map_err(|e| {
        tracing::warn!("writing {STATE_TOPIC}-{partition} failed: {e}");
        ShareError::CoordinatorNotAvailable
    })?;
    Ok(())
}

/// Reads every `__share_group_state` partition led here into the store.
async fn load(ctx: &Ctx, shares: &Shares) {
    let Some(topic) = ctx.broker.topic(STATE_TOPIC) else { return };
    let mut count = 0usize;
    for p in (0..topic.partitions).filter(|p| ctx.broker.leads(&topic, *p)) {
        let result = super::read_partition(ctx, STATE_TOPIC, p, |bytes| {
            let (next, skipped) = offsets_log::scan_chunk(&bytes, |e| {
                let offsets_log::RawEntry::Record((_, _, Some(k), v)) = e else { return };
                let Ok(Some(key)) = share_state::decode_key(&k) else { return };
                let mut inner = shares.lock();
                match v.map(|v| share_state::decode_value(&v)) {
                    None => {
                        inner.stored.remove(&key);
                    }
                    Some(Ok(s)) => {
                        inner.stored.insert(key, s);
                        count += 1;
                    }
                    Some(Err(e)) => tracing::warn!("{STATE_TOPIC}-{p}: {e}"),
                }
            });
            if skipped > 0 {
                tracing::warn!("{STATE_TOPIC}-{p}: skipped {skipped} undecodable batch(es)");
            }
            next
        })
        .await;
        if let Err(e) = result {
            tracing::error!("loading {STATE_TOPIC}-{p}: {e}");
        }
    }
    if count > 0 {
        tracing::info!("loaded {count} share-partition snapshot(s) from {STATE_TOPIC}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations_and_reset_policies() {
        assert_eq!(parse_iso_duration_ms("PT1H"), Some(3_600_000));
        assert_eq!(parse_iso_duration_ms("P1DT2M3.5S"), Some(86_400_000 + 120_000 + 3_500));
        assert_eq!(parse_iso_duration_ms("P2D"), Some(172_800_000));
        assert_eq!(parse_iso_duration_ms("PT"), None);
        assert_eq!(parse_iso_duration_ms("1H"), None);
        assert_eq!(parse_iso_duration_ms("PT5X"), None);
        assert_eq!(AutoOffsetReset::parse("earliest"), Some(AutoOffsetReset::Earliest));
        assert_eq!(AutoOffsetReset::parse("by_duration:PT10S"), Some(AutoOffsetReset::ByDurationMs(10_000)));
        assert_eq!(AutoOffsetReset::parse("by_duration:"), None);
        assert_eq!(AutoOffsetReset::parse("none"), None);
    }

    #[test]
    fn sessions_open_advance_and_close() {
        let shares = Shares::new(ShareConfig { max_share_sessions: 1, ..Default::default() });
        assert_eq!(shares.session("g", "m", 1, &[], &[]), Err(ShareError::SessionNotFound));
        assert_eq!(shares.session("g", "m", 0, &[(1, 0)], &[]), Ok(vec![(1, 0)]));
        assert_eq!(shares.session("g", "m", 2, &[], &[]), Err(ShareError::InvalidSessionEpoch));
        assert_eq!(shares.session("g", "m", 1, &[(1, 1)], &[(1, 0)]), Ok(vec![(1, 1)]));
        assert_eq!(shares.session("g", "other", 0, &[], &[]), Err(ShareError::SessionLimitReached));
        assert_eq!(shares.session("g", "m", 0, &[(2, 0)], &[]), Ok(vec![(2, 0)]), "reopened");
        assert_eq!(shares.session("g", "m", -1, &[], &[]), Ok(vec![(2, 0)]));
        shares.close_session("g", "m");
        assert_eq!(shares.session("g", "m", 2, &[], &[]), Err(ShareError::SessionNotFound));
    }
}
