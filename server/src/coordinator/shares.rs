//! The leader's side of share groups (KIP-932): every share-partition this broker leads, the
//! share sessions of the members fetching from it, and the share coordinator's store of
//! persisted state (`__share_group_state`).
//!
//! Ownership: one [`Shares`] per broker (made by `server.rs`), its state behind one `Mutex`
//! held for short, non-awaiting sections, like the group coordinator's. Reads of the log and
//! writes of the state happen outside the lock.
//!
//! Durability contract: an acknowledgement is answered only once the record (snapshot or
//! update) holding a state of its share-partition that includes it is durable in
//! `__share_group_state` (acks=all through the normal produce path). The leader takes whole
//! snapshots under the lock and queues them in that order to one writer task, which writes
//! everything queued for a state partition as one batch (group commit), so the log holds them
//! in the order they were taken. The share coordinator (`write_local`) turns each into an
//! update or a snapshot record (`share_delta`), one writer per state partition at a time so
//! that every update follows the state it was computed from. A share-partition is first used
//! after its state is read back (or, with none, after its start offset chosen by
//! `share.auto.offset.reset` is written), so a restart resumes where the last durable record
//! left it: records acknowledged before are not redelivered, acquired ones are available
//! again with their delivery counted.
//!
//! Pruning: the state topic is not compacted (updates would be lost); every
//! `share.coordinator.state.topic.prune.interval.ms` the share coordinator deletes the records
//! of each state partition it leads below the oldest latest-snapshot of its live keys.
//!
//! Limits: the share coordinator's writes go to the `__share_group_state` partitions this
//! broker leads. In a cluster, a share-partition whose state partition is led by another
//! broker answers COORDINATOR_NOT_AVAILABLE (Kafka forwards such writes to the share
//! coordinator over the network; that path is not built yet).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::offsets_log::{self, KeyValue};
use super::share_delta::{self, Planned, Replay, Stored, WritePolicy};
use super::share_partition::{delivery_complete, AckError, Acquired, Limits, SharePartition, StateBatch};
use super::share_state::{self, Snapshot, StateKey, STATE_TOPIC};
use crate::broker::{AdminError, Broker};
use crate::clock::now_ms;
use crate::partition::{Acks, Offset, OffsetSpec};
use crate::shard::mailbox::ListOffsetCall;
use crate::shard::router::{route_delete_records, route_list_offset, route_produce_one};
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
    /// `share.coordinator.snapshot.update.records.per.snapshot`: updates of a key between two
    /// of its snapshots.
    pub snapshot_update_records_per_snapshot: u32,
    /// `share.coordinator.state.topic.prune.interval.ms`.
    pub state_topic_prune_interval_ms: u64,
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
            snapshot_update_records_per_snapshot: 500,
            state_topic_prune_interval_ms: 5 * 60 * 1000,
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
    /// The state was reset (AlterShareGroupOffsets) since this leader read it.
    #[error("The share-group state epoch did not match: the state was reset.")]
    FencedStateEpoch,
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
            ShareError::FencedStateEpoch => ResponseError::FencedStateEpoch.code(),
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
    /// The data partition's leader epoch when this state was loaded: a share-partition whose
    /// leadership went away and came back is read again, not trusted from memory.
    leader_epoch: i32,
}

/// A snapshot (or, `None`, a deletion) on its way to the share coordinator.
struct Pending {
    key: StateKey,
    snapshot: Option<Snapshot>,
    done: flume::Sender<Result<(), ShareError>>,
}

#[derive(Default)]
struct Inner {
    partitions: HashMap<StateKey, Entry>,
    sessions: HashMap<(String, String), Session>,
    /// The share coordinator's view: the latest durable state of every key whose state
    /// partition is led here (read back when the partition's leadership arrives, then kept
    /// current by the writes), with where its latest snapshot is.
    stored: HashMap<StateKey, Stored>,
    /// `__share_group_state` partitions led here and read back.
    owned_state: BTreeSet<i32>,
    /// Those being read back now.
    loading_state: BTreeSet<i32>,
    /// Share fetches waiting for records of a share-partition to become available again
    /// (acknowledged ones free room in the window, released ones come back).
    waiters: HashMap<StateKey, Vec<flume::Sender<()>>>,
}

pub struct Shares {
    pub cfg: ShareConfig,
    inner: Mutex<Inner>,
    writes_tx: flume::Sender<Pending>,
    writes_rx: flume::Receiver<Pending>,
    /// One per state partition, held from computing a write's records until the store holds
    /// their outcome (and while pruning): an update is a difference from the stored state, so
    /// no other write of the partition may land in between.
    state_writes: Vec<tokio::sync::Mutex<()>>,
    /// Whether the "compacted state topic: snapshots only" notice was logged.
    compacted_noticed: std::sync::atomic::AtomicBool,
}

impl Shares {
    pub fn new(cfg: ShareConfig) -> Shares {
        let (writes_tx, writes_rx) = flume::unbounded();
        let state_writes =
            (0..cfg.state_topic_partitions.max(1)).map(|_| tokio::sync::Mutex::new(())).collect();
        Shares {
            cfg,
            inner: Mutex::new(Inner::default()),
            writes_tx,
            writes_rx,
            state_writes,
            compacted_noticed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The serialising lock of state partition `p`.
    fn state_writes_of(&self, p: i32) -> &tokio::sync::Mutex<()> {
        &self.state_writes[p.rem_euclid(self.state_writes.len() as i32) as usize]
    }

    /// How writes to the state topic are made: updates unless the topic is compacted (data of
    /// an older Riptide), where compaction would keep only the latest update of each key.
    fn write_policy(&self, broker: &Broker) -> WritePolicy {
        let compacted = broker.topic(STATE_TOPIC).is_some_and(|t| state_topic_compacted(&t.configs));
        if compacted && !self.compacted_noticed.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::info!(
                "{STATE_TOPIC} is compacted (created by an older Riptide): share state is written as \
                 snapshots only, since compaction would drop the updates between them"
            );
        }
        WritePolicy {
            updates_allowed: !compacted,
            updates_per_snapshot: self.cfg.snapshot_update_records_per_snapshot,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Makes sure the share-partition is in memory: restored from its persisted state (asked
    /// of the share coordinator, here or on another broker), or started where
    /// `share.auto.offset.reset` says and that start made durable. `leader_epoch`: the data
    /// partition's, as this broker leads it now.
    pub async fn ensure(
        &self,
        ctx: &Ctx,
        key: &StateKey,
        topic: &Arc<str>,
        leader_epoch: i32,
        settings: &GroupShareSettings,
    ) -> Result<(), ShareError> {
        let limits = Limits {
            lock_ms: settings.limits_lock_ms,
            delivery_limit: settings.delivery_limit,
            max_in_flight: settings.max_in_flight,
        };
        {
            let mut inner = self.lock();
            match inner.partitions.get_mut(key) {
                Some(e) if e.leader_epoch == leader_epoch => {
                    e.sp.set_limits(limits);
                    return Ok(());
                }
                Some(_) => {
                    inner.partitions.remove(key);
                }
                None => {}
            }
        }
        ensure_state_topic(&ctx.broker, self).await?;
        let found = self.read_state(ctx, key, leader_epoch).await?;
        if let Some(s) = found {
            let mut inner = self.lock();
            if inner.partitions.get(key).is_none_or(|e| e.leader_epoch != leader_epoch) {
                let entry = Entry {
                    sp: SharePartition::restore(s.start_offset, &s.batches, limits),
                    snapshot_epoch: s.snapshot_epoch,
                    state_epoch: s.state_epoch,
                    create_timestamp_ms: s.create_timestamp_ms,
                    dirty: false,
                    leader_epoch,
                };
                inner.partitions.insert(key.clone(), entry);
            }
            return Ok(());
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
            if inner.partitions.get(key).is_some_and(|e| e.leader_epoch == leader_epoch) {
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
                    leader_epoch,
                },
            );
            self.queue_snapshot_locked(&mut inner, key)
        };
        wait_written(done).await
    }

    /// The persisted state of `key`: from this broker's store when it leads the key's state
    /// partition, else ReadShareGroupState to the broker that does. `None`: no state yet.
    pub async fn read_state(
        &self,
        ctx: &Ctx,
        key: &StateKey,
        leader_epoch: i32,
    ) -> Result<Option<Snapshot>, ShareError> {
        let p = key.partition_in(self.cfg.state_topic_partitions);
        let leader = state_leader(ctx, p).ok_or(ShareError::CoordinatorNotAvailable)?;
        if leader == ctx.broker.config.node_id {
            if !self.lock().owned_state.contains(&p) {
                // Led here since the last look: read it back now rather than at the next tick.
                load_state_partition(ctx, self, p).await.map_err(|e| {
                    tracing::debug!("{STATE_TOPIC}-{p}: {e}");
                    ShareError::CoordinatorNotAvailable
                })?;
            }
            let inner = self.lock();
            if !inner.owned_state.contains(&p) {
                return Err(ShareError::CoordinatorNotAvailable);
            }
            return Ok(inner.stored.get(key).map(|s| s.state.clone()));
        }
        use kafka_protocol::messages::read_share_group_state_request::{PartitionData, ReadStateData};
        let request = kafka_protocol::messages::ReadShareGroupStateRequest::default()
            .with_group_id(StrBytes::from_string(key.group.clone()))
            .with_topics(vec![ReadStateData::default()
                .with_topic_id(uuid::Uuid::from_u128(key.topic_id))
                .with_partitions(vec![PartitionData::default()
                    .with_partition(key.partition)
                    .with_leader_epoch(leader_epoch)])]);
        let unavailable = |e: String| {
            tracing::debug!("reading share state {key:?} from broker {leader}: {e}");
            ShareError::CoordinatorNotAvailable
        };
        let connection = super::peer::connect(ctx, leader, "share").await.map_err(unavailable)?;
        let response = connection.send(&request).await.map_err(|e| unavailable(e.to_string()))?;
        let part = response
            .results
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| unavailable("an empty answer".into()))?;
        if part.error_code != 0 {
            return Err(unavailable(format!("error {}", part.error_code)));
        }
        if part.state_epoch < 0 {
            return Ok(None);
        }
        Ok(Some(Snapshot {
            snapshot_epoch: 0,
            state_epoch: part.state_epoch,
            leader_epoch,
            start_offset: part.start_offset,
            create_timestamp_ms: now_ms(),
            write_timestamp_ms: now_ms(),
            batches: part
                .state_batches
                .iter()
                .map(|b| StateBatch {
                    first_offset: b.first_offset,
                    last_offset: b.last_offset,
                    state: b.delivery_state,
                    delivery_count: b.delivery_count.max(0) as u16,
                })
                .collect(),
        }))
    }

    /// The share coordinator's answer to ReadShareGroupState for one key: `Err` with a Kafka
    /// code when this broker is not (or not yet) its coordinator.
    pub fn stored_state(&self, ctx: &Ctx, key: &StateKey) -> Result<Option<Snapshot>, i16> {
        let p = key.partition_in(self.cfg.state_topic_partitions);
        if state_leader(ctx, p) != Some(ctx.broker.config.node_id) {
            return Err(ResponseError::NotCoordinator.code());
        }
        let inner = self.lock();
        if !inner.owned_state.contains(&p) {
            return Err(ResponseError::CoordinatorLoadInProgress.code());
        }
        Ok(inner.stored.get(key).map(|s| s.state.clone()))
    }

    /// Writes the states (or deletions) of keys whose state partition `p` this broker leads
    /// (WriteShareGroupState from another broker, or this broker's own writer), each as an
    /// update or a snapshot (`share_delta::plan`); returns once durable, then the store holds
    /// them. A state older than the stored state's epoch (the state was reset since its leader
    /// read it) is not written: its result is FENCED_STATE_EPOCH. One result per item.
    pub async fn write_local(
        &self,
        ctx: &Ctx,
        p: i32,
        items: &[(StateKey, Option<Snapshot>)],
    ) -> Result<Vec<Result<(), ShareError>>, ShareError> {
        ensure_state_topic(&ctx.broker, self).await?;
        if state_leader(ctx, p) != Some(ctx.broker.config.node_id) {
            return Err(ShareError::CoordinatorNotAvailable);
        }
        if !self.lock().owned_state.contains(&p) {
            load_state_partition(ctx, self, p).await.map_err(|_| ShareError::CoordinatorNotAvailable)?;
        }
        let policy = self.write_policy(&ctx.broker);
        let _serial = self.state_writes_of(p).lock().await;
        let (results, planned) = {
            let inner = self.lock();
            if !inner.owned_state.contains(&p) {
                return Err(ShareError::CoordinatorNotAvailable);
            }
            plan_writes(&inner.stored, items, policy)
        };
        if planned.is_empty() {
            return Ok(results);
        }
        let records: Vec<KeyValue> = planned
            .iter()
            .map(|(k, w)| match w {
                Some(Planned::Snapshot(s)) => share_state::record(k, Some(s)),
                Some(Planned::Update { update, .. }) => share_state::update_record(k, update),
                None => share_state::record(k, None),
            })
            .collect();
        let batch = offsets_log::encode_batch(&records, now_ms()).map_err(ShareError::Unknown)?;
        let appended =
            route_produce_one(ctx, Arc::from(STATE_TOPIC), p, batch, Acks::All).await.map_err(|e| {
                tracing::warn!("writing {STATE_TOPIC}-{p} failed: {e}");
                ShareError::CoordinatorNotAvailable
            })?;
        let mut inner = self.lock();
        for (i, (k, written)) in planned.into_iter().enumerate() {
            // One batch: its records have consecutive offsets from the base.
            let offset = appended.base_offset.0 + i as i64;
            match written {
                Some(Planned::Snapshot(state)) => {
                    inner
                        .stored
                        .insert(k, Stored { state, snapshot_offset: offset, updates_since_snapshot: 0 });
                }
                Some(Planned::Update { state, .. }) => {
                    if let Some(stored) = inner.stored.get_mut(&k) {
                        stored.state = state;
                        stored.updates_since_snapshot = stored.updates_since_snapshot.saturating_add(1);
                    }
                }
                None => {
                    inner.stored.remove(&k);
                }
            }
        }
        Ok(results)
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
        wake_locked(&mut inner, key);
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
    ) -> Vec<Acquired> {
        let mut inner = self.lock();
        let Some(entry) = inner.partitions.get_mut(key) else { return Vec::new() };
        let acquired = entry.sp.acquire(member, max_records, from, readable_end, control, now_ms());
        if !acquired.is_empty() {
            entry.dirty = true;
        }
        acquired
    }

    /// Wakes `notify` when records of the share-partition may be acquirable again (an
    /// acknowledgement, a release): a waiting fetch need not poll for it.
    pub fn wait_for(&self, key: &StateKey, notify: &flume::Sender<()>) {
        let mut inner = self.lock();
        let list = inner.waiters.entry(key.clone()).or_default();
        list.retain(|w| !w.is_disconnected());
        list.push(notify.clone());
    }

    /// Where a fetch for this share-partition reads: the oldest record available again
    /// (locks that ran out count), else its end.
    pub fn next_fetch_offset(&self, key: &StateKey) -> Option<i64> {
        let mut inner = self.lock();
        let entry = inner.partitions.get_mut(key)?;
        entry.sp.expire(now_ms());
        Some(entry.sp.next_fetch_offset())
    }

    /// The log start moved past the share-partition's start (retention, DeleteRecords).
    pub fn log_start_moved(&self, key: &StateKey, log_start: i64) {
        if let Some(entry) = self.lock().partitions.get_mut(key) {
            entry.sp.log_start_moved(log_start);
        }
    }

    /// Whether a fetch could acquire anything below `readable_end`, after moving the
    /// share-partition past the log start (retention, DeleteRecords).
    pub fn can_acquire(&self, key: &StateKey, readable_end: i64, log_start: i64) -> bool {
        let mut inner = self.lock();
        let Some(entry) = inner.partitions.get_mut(key) else { return false };
        entry.sp.log_start_moved(log_start);
        entry.sp.can_acquire(readable_end, now_ms())
    }

    /// The share-partition start offsets of a group's share-partitions led here (in memory
    /// or persisted), each with its delivery-complete count: DescribeShareGroupOffsets.
    pub fn start_offsets(&self, group: &str) -> BTreeMap<TopicIdPartition, (i64, i64)> {
        let inner = self.lock();
        let mut out: BTreeMap<TopicIdPartition, (i64, i64)> = inner
            .stored
            .iter()
            .filter(|(k, _)| k.group == group)
            .map(|(k, s)| {
                let s = &s.state;
                ((k.topic_id, k.partition), (s.start_offset, delivery_complete(s.start_offset, &s.batches)))
            })
            .collect();
        for (k, e) in inner.partitions.iter().filter(|(k, _)| k.group == group) {
            let (start, batches) = e.sp.snapshot();
            out.insert((k.topic_id, k.partition), (start, delivery_complete(start, &batches)));
        }
        out
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
            leader_epoch: entry.leader_epoch,
            start_offset,
            create_timestamp_ms: entry.create_timestamp_ms,
            write_timestamp_ms: now_ms(),
            batches,
        };
        let _ = self.writes_tx.send(Pending { key: key.clone(), snapshot: Some(snapshot), done: tx });
        rx
    }

    /// Resets a group's share-partitions to new start offsets (AlterShareGroupOffsets: the
    /// group must have no members): a snapshot with no records in flight and the next state
    /// epoch, so that a leader still holding the old state is fenced and reads it again.
    /// Returns the writes to wait on.
    pub fn reset(
        &self,
        group: &str,
        starts: &[(StateKey, i64)],
    ) -> Vec<flume::Receiver<Result<(), ShareError>>> {
        let mut inner = self.lock();
        let mut waits = Vec::new();
        for (key, start) in starts {
            debug_assert_eq!(key.group, group);
            let old = inner.partitions.remove(key);
            let state_epoch = old
                .as_ref()
                .map(|e| e.state_epoch)
                .or_else(|| inner.stored.get(key).map(|s| s.state.state_epoch))
                .unwrap_or(0);
            let now = now_ms();
            let snapshot = Snapshot {
                snapshot_epoch: 0,
                state_epoch: state_epoch + 1,
                leader_epoch: -1,
                start_offset: (*start).max(0),
                create_timestamp_ms: now,
                write_timestamp_ms: now,
                batches: Vec::new(),
            };
            let (tx, rx) = flume::bounded(1);
            let _ = self.writes_tx.send(Pending { key: key.clone(), snapshot: Some(snapshot), done: tx });
            waits.push(rx);
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
            let (tx, rx) = flume::bounded(1);
            let _ = self.writes_tx.send(Pending { key, snapshot: None, done: tx });
            waits.push(rx);
        }
        waits
    }

    /// Drops the share-partitions of data partitions no longer led here (their state lives
    /// on at the share coordinator; the new leader reads it back).
    fn forget_unled(&self, ctx: &Ctx) {
        let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
        let me = ctx.broker.config.node_id;
        let mut inner = self.lock();
        inner.partitions.retain(|k, _| cat.by_id(k.topic_id).is_some_and(|m| m.leader(k.partition) == me));
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

fn wake_locked(inner: &mut Inner, key: &StateKey) {
    for w in inner.waiters.remove(key).unwrap_or_default() {
        let _ = w.try_send(());
    }
}

fn release_member_locked(inner: &mut Inner, group: &str, member: &str) {
    let mut released = Vec::new();
    for (k, e) in inner.partitions.iter_mut() {
        if k.group == group && e.sp.acquired_by(member) > 0 {
            e.sp.release_member(member);
            e.dirty = true;
            released.push(k.clone());
        }
    }
    for k in released {
        wake_locked(inner, &k);
    }
}

/// The records for `items` in order, each planned against the state the ones before it leave
/// (a batch may hold several states of one key), with one result per item: a state whose
/// epoch is older than the stored one is fenced and not written.
#[allow(clippy::type_complexity)]
fn plan_writes(
    stored: &HashMap<StateKey, Stored>,
    items: &[(StateKey, Option<Snapshot>)],
    policy: WritePolicy,
) -> (Vec<Result<(), ShareError>>, Vec<(StateKey, Option<Planned>)>) {
    let mut view: HashMap<&StateKey, Option<Stored>> = HashMap::new();
    let mut results = Vec::with_capacity(items.len());
    let mut planned = Vec::with_capacity(items.len());
    for (k, new) in items {
        let current = view.get(k).cloned().unwrap_or_else(|| stored.get(k).cloned());
        let Some(new) = new else {
            view.insert(k, None);
            planned.push((k.clone(), None));
            results.push(Ok(()));
            continue;
        };
        if current.as_ref().is_some_and(|c| new.state_epoch < c.state.state_epoch) {
            results.push(Err(ShareError::FencedStateEpoch));
            continue;
        }
        let write = share_delta::plan(current.as_ref(), new, policy);
        // The offset of a snapshot in this batch is known only once written; the view needs
        // only the state and the update count.
        let after = match &write {
            Planned::Snapshot(state) => {
                Stored { state: state.clone(), snapshot_offset: -1, updates_since_snapshot: 0 }
            }
            Planned::Update { state, .. } => {
                let c = current.as_ref().expect("an update follows a stored state");
                Stored {
                    state: state.clone(),
                    snapshot_offset: c.snapshot_offset,
                    updates_since_snapshot: c.updates_since_snapshot.saturating_add(1),
                }
            }
        };
        view.insert(k, Some(after));
        planned.push((k.clone(), Some(write)));
        results.push(Ok(()));
    }
    (results, planned)
}

fn state_topic_compacted(configs: &BTreeMap<String, String>) -> bool {
    configs.get("cleanup.policy").is_some_and(|p| p.split(',').any(|x| x.trim() == "compact"))
}

/// Deletes the records of state partition `p` (led here) that no live key needs any more:
/// those below the oldest latest-snapshot of its keys, or all of them when it has no key.
/// Returns the new log start when it moved.
async fn prune_state_partition(ctx: &Ctx, shares: &Shares, p: i32) -> Result<Option<i64>, String> {
    if ctx.broker.topic(STATE_TOPIC).is_none_or(|t| state_topic_compacted(&t.configs)) {
        return Ok(None);
    }
    // No write may land between choosing the offset and deleting below it.
    let _serial = shares.state_writes_of(p).lock().await;
    let n = shares.cfg.state_topic_partitions;
    let keep = {
        let inner = shares.lock();
        if !inner.owned_state.contains(&p) {
            return Ok(None);
        }
        share_delta::prune_offset(inner.stored.iter().filter(|(k, _)| k.partition_in(n) == p).map(|(_, s)| s))
    };
    let topic: Arc<str> = Arc::from(STATE_TOPIC);
    let list = |spec| ListOffsetCall { topic: topic.clone(), partition: p, spec };
    let keep = match keep {
        Some(offset) => offset,
        None => route_list_offset(ctx, list(OffsetSpec::Latest)).await.map_err(|e| e.to_string())?.offset.0,
    };
    let start = route_list_offset(ctx, list(OffsetSpec::Earliest)).await.map_err(|e| e.to_string())?.offset.0;
    if keep <= start {
        return Ok(None);
    }
    let live: Arc<[i32]> = {
        let catalog = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
        catalog.live_brokers().map(|b| b.id).collect()
    };
    route_delete_records(ctx, topic, p, Offset(keep), live).await.map_err(|e| e.to_string())?;
    tracing::debug!("{STATE_TOPIC}-{p}: records below {keep} pruned");
    Ok(Some(keep))
}

/// Prunes every state partition led here.
async fn prune_state_partitions(ctx: &Ctx, shares: &Shares) {
    let owned: Vec<i32> = shares.lock().owned_state.iter().copied().collect();
    for p in owned {
        if let Err(e) = prune_state_partition(ctx, shares, p).await {
            // Retried at the next interval; the records stay until then.
            tracing::warn!("pruning {STATE_TOPIC}-{p}: {e}");
        }
    }
}

pub async fn wait_written(rx: flume::Receiver<Result<(), ShareError>>) -> Result<(), ShareError> {
    rx.recv_async().await.unwrap_or(Err(ShareError::CoordinatorNotAvailable))
}

/// Creates `__share_group_state` if needed: deleting rather than compacting, with no
/// retention (the share coordinator prunes it, see `share_state`), Kafka's partition count,
/// replicated like `__consumer_offsets`.
pub async fn ensure_state_topic(broker: &Broker, shares: &Shares) -> Result<(), ShareError> {
    if broker.topic(STATE_TOPIC).is_some() {
        return Ok(());
    }
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "delete".to_string()),
        ("retention.ms".to_string(), "-1".to_string()),
        ("retention.bytes".to_string(), "-1".to_string()),
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

/// The leader of `__share_group_state` partition `p` (None: no live leader, or no topic).
fn state_leader(ctx: &Ctx, p: i32) -> Option<i32> {
    let topic = ctx.broker.topic(STATE_TOPIC)?;
    let leader = topic.leader(p);
    (leader >= 0).then_some(leader)
}

/// The share coordinator's and the leaders' background work, on one shard: follows the
/// leadership of `__share_group_state` partitions (reading back those that arrive,
/// forgetting those that left), writes queued snapshots and runs the timer until shutdown.
pub async fn background(ctx: Ctx, shares: Arc<Shares>, coordinator: Arc<super::Coordinator>) {
    follow_state_ownership(&ctx, &shares).await;
    let (writer_ctx, writer) = (ctx.clone(), shares.clone());
    compio::runtime::spawn(async move {
        let rx = writer.writes_rx.clone();
        let mut peers: HashMap<i32, riptide_client::Connection> = HashMap::new();
        while let Ok(first) = rx.recv_async().await {
            let n = writer.cfg.state_topic_partitions;
            let mut by_partition: BTreeMap<i32, Vec<Pending>> = BTreeMap::new();
            by_partition.entry(first.key.partition_in(n)).or_default().push(first);
            while let Ok(p) = rx.try_recv() {
                by_partition.entry(p.key.partition_in(n)).or_default().push(p);
            }
            for (partition, pending) in by_partition {
                let results = match write_batch(&writer_ctx, &writer, &mut peers, partition, &pending).await {
                    Ok(per_item) => per_item,
                    Err(e) => vec![Err(e); pending.len()],
                };
                for (p, result) in pending.into_iter().zip(results) {
                    if result == Err(ShareError::FencedStateEpoch) {
                        // Reset elsewhere: read the state again on the next fetch.
                        writer.lock().partitions.remove(&p.key);
                    }
                    let _ = p.done.send(result);
                }
            }
        }
    })
    .detach();
    let mut pruned_at_ms = now_ms();
    while !ctx.broker.is_shutting_down() {
        compio::time::sleep(Duration::from_millis(
            TICK_MS.min(shares.cfg.state_topic_prune_interval_ms.max(1)),
        ))
        .await;
        follow_state_ownership(&ctx, &shares).await;
        if now_ms() - pruned_at_ms >= shares.cfg.state_topic_prune_interval_ms as i64 {
            pruned_at_ms = now_ms();
            prune_state_partitions(&ctx, &shares).await;
        }
        shares.forget_unled(&ctx);
        // Members whose group session expired: what they held goes back at once (a leader on
        // another broker sees their locks expire instead).
        for (group, member) in coordinator.with_any(|groups, _| groups.take_share_departures()) {
            shares.close_session(&group, &member);
        }
        shares.tick();
    }
}

/// One round's writes to state partition `partition`, in the order queued: to the local log
/// when this broker leads it, else one WriteShareGroupState (or DeleteShareGroupState) per
/// group to the broker that does.
async fn write_batch(
    ctx: &Ctx,
    shares: &Shares,
    peers: &mut HashMap<i32, riptide_client::Connection>,
    partition: i32,
    pending: &[Pending],
) -> Result<Vec<Result<(), ShareError>>, ShareError> {
    ensure_state_topic(&ctx.broker, shares).await?;
    let leader = state_leader(ctx, partition).ok_or(ShareError::CoordinatorNotAvailable)?;
    let items: Vec<(StateKey, Option<Snapshot>)> =
        pending.iter().map(|p| (p.key.clone(), p.snapshot.clone())).collect();
    if leader == ctx.broker.config.node_id {
        return shares.write_local(ctx, partition, &items).await;
    }
    if let std::collections::hash_map::Entry::Vacant(slot) = peers.entry(leader) {
        let c = super::peer::connect(ctx, leader, "share").await.map_err(|e| {
            tracing::warn!("share state for {STATE_TOPIC}-{partition}: broker {leader}: {e}");
            ShareError::CoordinatorNotAvailable
        })?;
        slot.insert(c);
    }
    let result = write_remote(&peers[&leader], &items).await;
    if result.is_err() {
        peers.remove(&leader); // a fresh connection next time
    }
    result
}

/// The remote writes, in order: consecutive items of one group and kind go in one request.
/// One result per item.
async fn write_remote(
    connection: &riptide_client::Connection,
    items: &[(StateKey, Option<Snapshot>)],
) -> Result<Vec<Result<(), ShareError>>, ShareError> {
    use kafka_protocol::messages::{
        delete_share_group_state_request as del, write_share_group_state_request as w,
    };
    let failed = |what: String| {
        tracing::warn!("share state write to the share coordinator: {what}");
        ShareError::CoordinatorNotAvailable
    };
    let mut out = Vec::with_capacity(items.len());
    let mut rest = items;
    while let Some((first, _)) = rest.first() {
        let deleting = rest[0].1.is_none();
        let run = rest.iter().take_while(|(k, s)| k.group == first.group && s.is_none() == deleting).count();
        let (chunk, tail) = rest.split_at(run);
        rest = tail;
        let group = StrBytes::from_string(first.group.clone());
        let mut by_topic: BTreeMap<u128, Vec<&(StateKey, Option<Snapshot>)>> = BTreeMap::new();
        for item in chunk {
            by_topic.entry(item.0.topic_id).or_default().push(item);
        }
        let codes: HashMap<(u128, i32), i16> = if deleting {
            let topics = by_topic
                .iter()
                .map(|(id, parts)| {
                    del::DeleteStateData::default().with_topic_id(uuid::Uuid::from_u128(*id)).with_partitions(
                        parts
                            .iter()
                            .map(|(k, _)| del::PartitionData::default().with_partition(k.partition))
                            .collect(),
                    )
                })
                .collect();
            let request = kafka_protocol::messages::DeleteShareGroupStateRequest::default()
                .with_group_id(group)
                .with_topics(topics);
            let response = connection.send(&request).await.map_err(|e| failed(e.to_string()))?;
            response
                .results
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| ((t.topic_id.as_u128(), p.partition), p.error_code))
                })
                .collect()
        } else {
            let topics = by_topic
                .iter()
                .map(|(id, parts)| {
                    let partitions = parts
                        .iter()
                        .filter_map(|(k, s)| {
                            let s = s.as_ref()?;
                            Some(
                                w::PartitionData::default()
                                    .with_partition(k.partition)
                                    .with_state_epoch(s.state_epoch)
                                    .with_leader_epoch(s.leader_epoch)
                                    .with_start_offset(s.start_offset)
                                    .with_state_batches(
                                        s.batches
                                            .iter()
                                            .map(|b| {
                                                w::StateBatch::default()
                                                    .with_first_offset(b.first_offset)
                                                    .with_last_offset(b.last_offset)
                                                    .with_delivery_state(b.state)
                                                    .with_delivery_count(b.delivery_count as i16)
                                            })
                                            .collect(),
                                    ),
                            )
                        })
                        .collect();
                    w::WriteStateData::default()
                        .with_topic_id(uuid::Uuid::from_u128(*id))
                        .with_partitions(partitions)
                })
                .collect();
            let request = kafka_protocol::messages::WriteShareGroupStateRequest::default()
                .with_group_id(group)
                .with_topics(topics);
            let response = connection.send(&request).await.map_err(|e| failed(e.to_string()))?;
            response
                .results
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| ((t.topic_id.as_u128(), p.partition), p.error_code))
                })
                .collect()
        };
        for (k, _) in chunk {
            out.push(match codes.get(&(k.topic_id, k.partition)) {
                Some(0) => Ok(()),
                Some(c) if *c == ResponseError::FencedStateEpoch.code() => Err(ShareError::FencedStateEpoch),
                Some(c) => Err(failed(format!("error {c} for {k:?}"))),
                None => Err(failed(format!("no answer for {k:?}"))),
            });
        }
    }
    Ok(out)
}

/// State partitions led here since the last look are read back into the store (until then
/// the share coordinator answers COORDINATOR_LOAD_IN_PROGRESS for their keys); those led
/// elsewhere now are forgotten.
async fn follow_state_ownership(ctx: &Ctx, shares: &Shares) {
    let Some(topic) = ctx.broker.topic(STATE_TOPIC) else { return };
    let n = shares.cfg.state_topic_partitions;
    for p in 0..topic.partitions {
        let led = ctx.broker.leads(&topic, p);
        let owned = shares.lock().owned_state.contains(&p);
        if led == owned {
            continue;
        }
        if !led {
            let mut inner = shares.lock();
            inner.owned_state.remove(&p);
            inner.stored.retain(|k, _| k.partition_in(n) != p);
            continue;
        }
        if let Err(e) = load_state_partition(ctx, shares, p).await {
            // Retried on the next tick.
            tracing::warn!("loading {STATE_TOPIC}-{p}: {e}");
        }
    }
}

/// Reads state partition `p` (led here) back into the store, unless another task is doing
/// so (then an error: the caller retries).
async fn load_state_partition(ctx: &Ctx, shares: &Shares, p: i32) -> Result<(), String> {
    {
        let mut inner = shares.lock();
        if inner.owned_state.contains(&p) {
            return Ok(());
        }
        if !inner.loading_state.insert(p) {
            return Err("being read back".into());
        }
    }
    let mut replay = Replay::default();
    let result = super::read_partition(ctx, STATE_TOPIC, p, |bytes| {
        let (next, skipped) = offsets_log::scan_chunk(&bytes, |e| {
            let offsets_log::RawEntry::Record((offset, _, Some(k), v)) = e else { return };
            let Ok(Some((record_type, key))) = share_state::decode_key(&k) else { return };
            match share_state::decode_record(record_type, v.as_deref()) {
                Ok(record) => replay.apply(offset, key, record),
                Err(e) => tracing::warn!("{STATE_TOPIC}-{p} at offset {offset}: {e}"),
            }
        });
        if skipped > 0 {
            tracing::warn!("{STATE_TOPIC}-{p}: skipped {skipped} undecodable batch(es)");
        }
        next
    })
    .await;
    let mut inner = shares.lock();
    inner.loading_state.remove(&p);
    result?;
    let count = replay.keys.len();
    inner.stored.extend(replay.keys);
    inner.owned_state.insert(p);
    if count > 0 {
        tracing::info!("{STATE_TOPIC}-{p} led here now: {count} share-partition state(s) read back");
    }
    Ok(())
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
