//! Every group of this coordinator, by id, and the operations that span groups or touch the
//! log: group creation and removal, offsets (commit, fetch, delete, expiry), listing,
//! describing, replaying `__consumer_offsets` at start-up.
//!
//! No I/O here either. Writes are returned to the caller as [`Write`]s (when the caller must
//! wait for durability before answering: commits, deletions) or queued in the outbox (group
//! metadata, expiry tombstones: written in the background, in order of queueing).

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use riptide_model::TopicPartition;
use riptide_model::{LeaderEpoch, Offset};

use super::consumer_group::{ConsumerGroup, Heartbeat, HeartbeatResult, TopicLookup};
use super::error::GroupError;
use super::group::{CommittedOffset, Group, GroupState, JoinRequest, JoinResult, JoinTx, SyncResult, SyncTx};
use super::offsets_log::{self, KeyValue, LogRecord, OffsetValue, SharedTopic};
use super::share_group::{ShareGroup, ShareHeartbeat, ShareHeartbeatResult, ShareTimings};
use super::{GroupConfig, Now};

/// Records for one `__consumer_offsets` partition, in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Write {
    pub partition: i32,
    pub records: Vec<KeyValue>,
}

/// Per-topic, per-partition outcomes, in request order.
pub type PartitionErrors = Vec<Vec<Option<GroupError>>>;

/// One partition of an OffsetCommit, after the API layer's own checks (topic exists,
/// metadata size): `error` set means it is not committed.
#[derive(Clone, Debug)]
pub struct CommitPartition {
    pub partition: i32,
    pub offset: Offset,
    pub leader_epoch: LeaderEpoch,
    pub metadata: String,
    pub error: Option<GroupError>,
}

#[derive(Clone, Debug)]
pub struct CommitRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation_id: i32,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
}

/// A validated commit: write `write`, then [`Groups::apply_commit`].
#[derive(Debug)]
pub struct PreparedCommit {
    pub group_id: String,
    pub write: Write,
    entries: Vec<(TopicPartition, CommittedOffset)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedPartition {
    pub partition: i32,
    pub offset: Offset,
    pub leader_epoch: LeaderEpoch,
    pub metadata: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    /// "classic", "consumer" (KIP-848) or "share" (KIP-932).
    pub group_type: &'static str,
}

#[derive(Clone, Debug)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Clone, Debug)]
pub struct DescribedGroup {
    pub state: String,
    pub protocol_type: String,
    pub protocol_data: String,
    pub members: Vec<DescribedMember>,
}

pub struct Groups {
    pub cfg: GroupConfig,
    /// Classic groups, and the committed offsets of every group (a KIP-848 group's offsets
    /// live in an Empty classic entry of the same id).
    groups: HashMap<String, Group>,
    consumer_groups: HashMap<String, ConsumerGroup>,
    /// Share groups (KIP-932); their delivery state lives with the partition leaders.
    share_groups: HashMap<String, ShareGroup>,
    /// Members whose share-group session expired since the last call, as (group, member):
    /// their share sessions end and what they acquired is released.
    share_departures: Vec<(String, String)>,
    outbox: Vec<Write>,
    next_seq: u64,
    last_offsets_expiry_ms: u64,
    /// TxnOffsetCommit offsets written and durable, by producer id, waiting for the
    /// producer's COMMIT marker (then they become the group's) or ABORT (then dropped).
    pending_txn: HashMap<i64, Vec<(String, TopicPartition, CommittedOffset)>>,
}

impl Groups {
    pub fn new(cfg: GroupConfig) -> Groups {
        Groups {
            cfg,
            groups: HashMap::new(),
            consumer_groups: HashMap::new(),
            share_groups: HashMap::new(),
            share_departures: Vec::new(),
            outbox: Vec::new(),
            next_seq: 1,
            last_offsets_expiry_ms: 0,
            pending_txn: HashMap::new(),
        }
    }

    pub fn get(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    pub fn consumer_group(&self, group_id: &str) -> Option<&ConsumerGroup> {
        self.consumer_groups.get(group_id)
    }

    pub fn share_group(&self, group_id: &str) -> Option<&ShareGroup> {
        self.share_groups.get(group_id)
    }

    /// Whether `group_id` is a live classic or KIP-848 group (so not a share group's).
    pub fn names_another_kind(&self, group_id: &str) -> bool {
        self.groups.get(group_id).is_some_and(|g| g.state() != GroupState::Dead)
            || self.consumer_groups.contains_key(group_id)
    }

    /// Share-group members whose session expired since the last call.
    pub fn take_share_departures(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.share_departures)
    }

    /// Whether `group_id` is a KIP-848 group with members.
    fn is_active_consumer_group(&self, group_id: &str) -> bool {
        self.consumer_groups.get(group_id).is_some_and(|g| !g.members.is_empty())
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn partition_of(&self, group_id: &str) -> i32 {
        offsets_log::partition_for(group_id, self.cfg.offsets_topic_num_partitions)
    }

    /// Background writes queued since the last call (group metadata, expiry tombstones).
    pub fn take_outbox(&mut self) -> Vec<Write> {
        std::mem::take(&mut self.outbox)
    }

    fn queue(&mut self, partition: i32, record: KeyValue) {
        match self.outbox.last_mut() {
            Some(w) if w.partition == partition => w.records.push(record),
            _ => self.outbox.push(Write { partition, records: vec![record] }),
        }
    }

    /// After any change to a group: persist its metadata if it changed, and forget a group
    /// that holds nothing (a failed first join).
    fn settle(&mut self, group_id: &str) {
        let Some(g) = self.groups.get_mut(group_id) else { return };
        if let Some(value) = g.take_metadata_record() {
            let partition = offsets_log::partition_for(group_id, self.cfg.offsets_topic_num_partitions);
            let record = KeyValue {
                key: offsets_log::group_key(group_id),
                value: Some(offsets_log::group_value(&value)),
            };
            self.queue(partition, record);
        }
        let Some(g) = self.groups.get(group_id) else { return };
        if g.state() == GroupState::Empty && g.is_empty() && g.offsets.is_empty() && g.generation_id == 0 {
            self.groups.remove(group_id);
        }
    }

    fn get_or_create(&mut self, group_id: &str, now: Now) -> Result<&mut Group, GroupError> {
        if !self.groups.contains_key(group_id) {
            if self.groups.len() >= self.cfg.groups_max {
                return Err(GroupError::CoordinatorNotAvailable);
            }
            self.groups.insert(group_id.to_string(), Group::new(group_id, now));
        }
        self.groups.get_mut(group_id).ok_or(GroupError::Unknown)
    }

    // ---- membership ------------------------------------------------------------------------

    pub fn join(&mut self, req: JoinRequest, tx: JoinTx, now: Now) {
        if req.group_id.is_empty() {
            let _ = tx.send(JoinResult::failed(GroupError::InvalidGroupId, &req.member_id));
            return;
        }
        if req.session_timeout_ms < self.cfg.min_session_timeout_ms
            || req.session_timeout_ms > self.cfg.max_session_timeout_ms
        {
            let _ = tx.send(JoinResult::failed(GroupError::InvalidSessionTimeout, &req.member_id));
            return;
        }
        if self.is_active_consumer_group(&req.group_id) || self.share_groups.contains_key(&req.group_id) {
            let _ = tx.send(JoinResult::failed(GroupError::InconsistentGroupProtocol, &req.member_id));
            return;
        }
        if !req.member_id.is_empty() && !self.groups.contains_key(&req.group_id) {
            let _ = tx.send(JoinResult::failed(GroupError::UnknownMemberId, &req.member_id));
            return;
        }
        let group_id = req.group_id.clone();
        let cfg = self.cfg.clone();
        match self.get_or_create(&group_id, now) {
            Ok(g) => g.join(req, tx, &cfg, now),
            Err(e) => {
                let _ = tx.send(JoinResult::failed(e, &req.member_id));
            }
        }
        self.settle(&group_id);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        tx: SyncTx,
        now: Now,
    ) {
        match self.groups.get_mut(group_id) {
            None => {
                let _ = tx.send(SyncResult::failed(GroupError::UnknownMemberId));
            }
            Some(g) => g.sync(
                member_id,
                instance_id,
                generation_id,
                protocol_type,
                protocol_name,
                assignments,
                tx,
                now,
            ),
        }
        self.settle(group_id);
    }

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now: Now,
    ) -> Result<(), GroupError> {
        let g = self.groups.get_mut(group_id).ok_or(GroupError::UnknownMemberId)?;
        g.heartbeat(member_id, instance_id, generation_id, now)
    }

    /// LeaveGroup: one result per member, or an error for the whole request.
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now: Now,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let cfg = self.cfg.clone();
        let g = self.groups.get_mut(group_id).ok_or(GroupError::UnknownMemberId)?;
        let results = members.iter().map(|(m, i)| g.leave(m, i.as_deref(), &cfg, now)).collect();
        self.settle(group_id);
        Ok(results)
    }

    /// Runs every group's due timers, and offsets expiry when its interval has passed.
    pub fn tick(&mut self, now: Now) {
        let cfg = self.cfg.clone();
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_deadline_ms().is_some_and(|d| d <= now.mono_ms))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(g) = self.groups.get_mut(&id) {
                g.tick(&cfg, now);
            }
            self.settle(&id);
        }
        for g in self.consumer_groups.values_mut() {
            g.tick(now);
        }
        let mut share_epochs = Vec::new();
        for g in self.share_groups.values_mut() {
            for member in g.tick(now) {
                self.share_departures.push((g.id.clone(), member));
            }
            if g.group_epoch != g.persisted_epoch {
                share_epochs.push(g.id.clone());
            }
        }
        for id in share_epochs {
            self.persist_share_group(&id, false);
        }
        let classic = &self.groups;
        self.consumer_groups
            .retain(|id, g| !g.members.is_empty() || classic.get(id).is_some_and(|c| !c.offsets.is_empty()));
        if now.mono_ms >= self.last_offsets_expiry_ms + cfg.offsets_retention_check_interval_ms {
            self.last_offsets_expiry_ms = now.mono_ms;
            self.expire_offsets(now);
        }
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub fn consumer_heartbeat(
        &mut self,
        group_id: &str,
        hb: Heartbeat,
        topics: TopicLookup<'_>,
        now: Now,
    ) -> Result<HeartbeatResult, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidRequest);
        }
        if self.groups.get(group_id).is_some_and(|g| g.member_count() > 0)
            || self.share_groups.contains_key(group_id)
        {
            // A classic group with members, or a share group: the protocols don't mix (no
            // online upgrade).
            return Err(GroupError::GroupIdNotFound);
        }
        if !self.consumer_groups.contains_key(group_id) {
            if hb.member_epoch != 0 {
                // E.g. after a coordinator restart: the member must rejoin.
                return Err(GroupError::UnknownMemberId);
            }
            if self.consumer_groups.len() + self.groups.len() >= self.cfg.groups_max {
                return Err(GroupError::CoordinatorNotAvailable);
            }
            self.consumer_groups.insert(group_id.to_string(), ConsumerGroup::new(group_id, now));
        }
        let cfg = self.cfg.clone();
        let g = self.consumer_groups.get_mut(group_id).ok_or(GroupError::Unknown)?;
        g.heartbeat(hb, topics, &cfg, now)
    }

    /// ShareGroupHeartbeat (KIP-932). A group id names one kind of group only. `ids` gives
    /// topic ids, for the persisted record of initialized share-partitions.
    pub fn share_heartbeat(
        &mut self,
        group_id: &str,
        hb: ShareHeartbeat,
        topics: TopicLookup<'_>,
        ids: &dyn Fn(&str) -> Option<u128>,
        timings: ShareTimings,
        now: Now,
    ) -> Result<ShareHeartbeatResult, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidRequest);
        }
        if self.names_another_kind(group_id) {
            return Err(GroupError::GroupIdNotFound);
        }
        if !self.share_groups.contains_key(group_id) {
            if hb.member_epoch != 0 {
                return Err(GroupError::UnknownMemberId);
            }
            if self.share_groups.len() + self.consumer_groups.len() + self.groups.len() >= self.cfg.groups_max
            {
                return Err(GroupError::CoordinatorNotAvailable);
            }
            self.share_groups.insert(group_id.to_string(), ShareGroup::new(group_id, now));
        }
        let max_size = self.cfg.group_max_size;
        let g = self.share_groups.get_mut(group_id).ok_or(GroupError::Unknown)?;
        // A member leaving closes its share sessions itself (its last acknowledgements ride
        // on that); only one whose session expired is released for it.
        let result = g.heartbeat(hb, topics, timings, max_size, now);
        let partitions_changed = g.note_assigned(ids);
        self.persist_share_group(group_id, partitions_changed);
        result
    }

    /// Queues the share group's records that changed: its epoch, and (`partitions`) its
    /// initialized topic-partitions. Written in the background like classic groups' metadata:
    /// losing one costs a lower epoch or an unlisted topic after a restart, not delivery state.
    fn persist_share_group(&mut self, group_id: &str, partitions: bool) {
        let partition = self.partition_of(group_id);
        let Some(g) = self.share_groups.get_mut(group_id) else { return };
        let mut records = Vec::new();
        if g.group_epoch != g.persisted_epoch {
            g.persisted_epoch = g.group_epoch;
            records.push(KeyValue {
                key: offsets_log::share_group_key(group_id),
                value: Some(offsets_log::share_group_value(g.group_epoch)),
            });
        }
        if partitions {
            let topics: Vec<SharedTopic> = g
                .initialized
                .iter()
                .map(|(id, (name, ps))| SharedTopic {
                    topic_id: *id,
                    name: name.clone(),
                    partitions: ps.iter().copied().collect(),
                })
                .collect();
            records.push(KeyValue {
                key: offsets_log::share_partitions_key(group_id),
                value: Some(offsets_log::share_partitions_value(&topics)),
            });
        }
        for r in records {
            self.queue(partition, r);
        }
    }

    /// A share group's topic-partitions given state (AlterShareGroupOffsets: `add`) or whose
    /// state was deleted (DeleteShareGroupOffsets: the topic ids in `remove`).
    pub fn share_partitions_changed(&mut self, group_id: &str, add: &[(u128, String, i32)], remove: &[u128]) {
        let Some(g) = self.share_groups.get_mut(group_id) else { return };
        let mut changed = false;
        for (id, name, p) in add {
            changed |=
                g.initialized.entry(*id).or_insert_with(|| (name.clone(), Default::default())).1.insert(*p);
        }
        for id in remove {
            changed |= g.initialized.remove(id).is_some();
        }
        if changed {
            self.persist_share_group(group_id, true);
        }
    }

    // ---- offsets ---------------------------------------------------------------------------

    /// Validates a commit against the group and builds its records.
    pub fn prepare_commit(&mut self, req: &CommitRequest, now: Now) -> Result<PreparedCommit, GroupError> {
        if req.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let partition = self.partition_of(&req.group_id);
        if let Some(cg) = self.consumer_groups.get(&req.group_id).filter(|g| !g.members.is_empty()) {
            // A KIP-848 group: the "generation" is the member epoch.
            cg.validate_offset_commit(&req.member_id, req.generation_id)?;
            self.get_or_create(&req.group_id, now)?;
        } else {
            let group = match self.groups.get_mut(&req.group_id) {
                Some(g) => g,
                // Only a commit from outside any generation may create a group.
                None if req.generation_id < 0 => self.get_or_create(&req.group_id, now)?,
                None => return Err(GroupError::IllegalGeneration),
            };
            group.validate_offset_commit(
                &req.member_id,
                req.instance_id.as_deref(),
                req.generation_id,
                now,
            )?;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut write = Write { partition, records: Vec::new() };
        let mut entries = Vec::new();
        for (topic, partitions) in &req.topics {
            for p in partitions.iter().filter(|p| p.error.is_none()) {
                let value = OffsetValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata: p.metadata.clone(),
                    commit_timestamp_ms: now.wall_ms,
                    expire_timestamp_ms: -1,
                };
                write.records.push(KeyValue {
                    key: offsets_log::offset_key(&req.group_id, topic, p.partition),
                    value: Some(offsets_log::offset_value(&value)),
                });
                entries.push((
                    TopicPartition::new(topic.clone(), p.partition),
                    CommittedOffset {
                        offset: value.offset,
                        leader_epoch: value.leader_epoch,
                        metadata: value.metadata,
                        commit_timestamp_ms: value.commit_timestamp_ms,
                        expire_timestamp_ms: -1,
                        seq,
                    },
                ));
            }
        }
        Ok(PreparedCommit { group_id: req.group_id.clone(), write, entries })
    }

    /// The commit's records are durable: make the offsets visible.
    /// Applies a commit whose records are durable. Its group may have gone meanwhile (a
    /// simple commit's new group is empty until now, and the expiry tick or a partition's
    /// load may drop it while the write was out): it is made again, since the log holds the
    /// offsets and a reload would bring them back anyway. Before, the commit was answered
    /// and its offsets silently lost.
    pub fn apply_commit(&mut self, prepared: PreparedCommit, now: Now) {
        let g = self
            .groups
            .entry(prepared.group_id.clone())
            .or_insert_with(|| Group::new(&prepared.group_id, now));
        for (tp, entry) in prepared.entries {
            match g.offsets.get(&tp) {
                Some(existing) if existing.seq > entry.seq => {}
                _ => {
                    g.offsets.insert(tp, entry);
                }
            }
        }
    }

    /// Validates a TxnOffsetCommit against the group (a member's generation when one is
    /// given; a group that does not exist yet is created, as Kafka does) and builds its
    /// records, written in the producer's transactional batch.
    pub fn prepare_txn_commit(
        &mut self,
        req: &CommitRequest,
        now: Now,
    ) -> Result<PreparedCommit, GroupError> {
        if req.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let outside_generation = CommitRequest { generation_id: -1, ..req.clone() };
        let checked =
            if req.generation_id < 0 && req.member_id.is_empty() { &outside_generation } else { req };
        if !self.groups.contains_key(&req.group_id) && !self.consumer_groups.contains_key(&req.group_id) {
            self.get_or_create(&req.group_id, now)?;
        }
        self.prepare_commit(checked, now)
    }

    /// A TxnOffsetCommit's records are durable: they wait for the producer's marker.
    pub fn apply_txn_commit(&mut self, producer_id: i64, prepared: PreparedCommit) {
        let pending = self.pending_txn.entry(producer_id).or_default();
        for (tp, entry) in prepared.entries {
            pending.push((prepared.group_id.clone(), tp, entry));
        }
    }

    /// The producer's marker is in offsets partition `partition`: its pending offsets of the
    /// groups stored there become visible (commit) or are dropped (abort).
    pub fn complete_txn(&mut self, producer_id: i64, partition: i32, commit: bool, now: Now) {
        let n = self.cfg.offsets_topic_num_partitions;
        let Some(pending) = self.pending_txn.remove(&producer_id) else { return };
        let (here, elsewhere): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|(g, _, _)| offsets_log::partition_for(g, n) == partition);
        if !elsewhere.is_empty() {
            self.pending_txn.insert(producer_id, elsewhere);
        }
        if !commit {
            return;
        }
        for (group_id, tp, mut entry) in here {
            entry.seq = self.next_seq;
            self.next_seq += 1;
            let g = self.groups.entry(group_id.clone()).or_insert_with(|| Group::new(&group_id, now));
            g.offsets.insert(tp, entry);
        }
    }

    /// Whether a transaction's offset for this group and partition waits for its marker
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.pending_txn
            .values()
            .flatten()
            .any(|(g, tp, _)| g == group_id && tp.partition == partition && tp.topic == topic)
    }

    /// Whether a producer has transactional offsets waiting for its marker.
    pub fn has_pending_txn(&self, producer_id: i64) -> bool {
        self.pending_txn.contains_key(&producer_id)
    }

    /// Committed offsets of a group: the requested partitions (offset -1 where none), or all.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, Vec<FetchedPartition>)> {
        let group = self.groups.get(group_id);
        let found = |topic: &str, p: i32| -> FetchedPartition {
            match group.and_then(|g| g.offsets.get(&TopicPartition::new(topic, p))) {
                Some(c) => FetchedPartition {
                    partition: p,
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: Some(c.metadata.clone()),
                },
                None => FetchedPartition {
                    partition: p,
                    offset: Offset::NONE,
                    leader_epoch: LeaderEpoch::UNKNOWN,
                    metadata: Some(String::new()),
                },
            }
        };
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(t, parts)| (t.clone(), parts.iter().map(|p| found(t, *p)).collect()))
                .collect(),
            None => {
                let mut out: BTreeMap<String, Vec<FetchedPartition>> = BTreeMap::new();
                if let Some(g) = group {
                    for TopicPartition { topic: t, partition: p } in g.offsets.keys() {
                        out.entry(t.clone()).or_default().push(found(t, *p));
                    }
                }
                out.into_iter().collect()
            }
        }
    }

    /// Topics the group's members subscribe to (consumer protocol only).
    fn subscribed_topics(g: &Group) -> HashSet<String> {
        let mut topics = HashSet::new();
        if g.protocol_type.as_deref() != Some("consumer") {
            return topics;
        }
        let protocol = g.protocol_name.clone().unwrap_or_default();
        for m in g.members() {
            let mut meta = m.metadata(&protocol);
            if meta.len() < 2 {
                continue;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]).clamp(0, 3);
            let _ = meta.split_to(2);
            if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut meta, version) {
                topics.extend(sub.topics.into_iter().map(|t| t.to_string()));
            }
        }
        topics
    }

    /// OffsetDelete: per-partition errors, and the tombstones to write.
    pub fn prepare_offset_delete(
        &mut self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> Result<(Write, PartitionErrors), GroupError> {
        let partition = self.partition_of(group_id);
        let g = self.groups.get(group_id).ok_or(GroupError::GroupIdNotFound)?;
        if g.state() == GroupState::Dead {
            return Err(GroupError::GroupIdNotFound);
        }
        let mut subscribed = Self::subscribed_topics(g);
        if g.member_count() > 0 && g.protocol_type.as_deref() != Some("consumer") {
            return Err(GroupError::NonEmptyGroup);
        }
        let active_consumer = self.consumer_groups.get(group_id).filter(|c| !c.members.is_empty());
        if let Some(cg) = active_consumer {
            subscribed.extend(cg.members.values().flat_map(|m| m.subscribed.iter().cloned()));
        }
        let has_members = g.member_count() > 0 || active_consumer.is_some();
        let mut write = Write { partition, records: Vec::new() };
        let mut errors = Vec::new();
        for (topic, parts) in topics {
            let topic_err =
                (has_members && subscribed.contains(topic)).then_some(GroupError::GroupSubscribedToTopic);
            let mut row = Vec::new();
            for p in parts {
                if topic_err.is_none() && g.offsets.contains_key(&TopicPartition::new(topic.clone(), *p)) {
                    write
                        .records
                        .push(KeyValue { key: offsets_log::offset_key(group_id, topic, *p), value: None });
                }
                row.push(topic_err);
            }
            errors.push(row);
        }
        Ok((write, errors))
    }

    /// The tombstones of an OffsetDelete are durable: forget those offsets.
    pub fn apply_offset_delete(&mut self, group_id: &str, write: &Write) {
        for kv in &write.records {
            if let Ok(LogRecord::Offset { topic, partition, .. }) =
                offsets_log::decode_record(Some(&kv.key), None)
            {
                if let Some(g) = self.groups.get_mut(group_id) {
                    g.offsets.remove(&TopicPartition::new(topic, partition));
                }
            }
        }
        self.settle(group_id);
    }

    /// DeleteGroups for one group: it must exist and have no members. The group is gone at
    /// once (so a new one of the same name can start); the tombstones must still be written.
    pub fn delete_group(&mut self, group_id: &str, now: Now) -> Result<Write, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let partition = self.partition_of(group_id);
        if self.is_active_consumer_group(group_id) {
            return Err(GroupError::NonEmptyGroup);
        }
        if let Some(g) = self.share_groups.get(group_id) {
            if !g.members.is_empty() {
                return Err(GroupError::NonEmptyGroup);
            }
            self.share_groups.remove(group_id);
            let records = vec![
                KeyValue { key: offsets_log::share_partitions_key(group_id), value: None },
                KeyValue { key: offsets_log::share_group_key(group_id), value: None },
            ];
            return Ok(Write { partition, records });
        }
        if self.consumer_groups.remove(group_id).is_some() && !self.groups.contains_key(group_id) {
            let tombstone = KeyValue { key: offsets_log::group_key(group_id), value: None };
            return Ok(Write { partition, records: vec![tombstone] });
        }
        let g = self.groups.get(group_id).ok_or(GroupError::GroupIdNotFound)?;
        match g.state() {
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            GroupState::Empty if g.is_empty() => {}
            _ => return Err(GroupError::NonEmptyGroup),
        }
        let mut write = Write { partition, records: Vec::new() };
        for TopicPartition { topic, partition: p } in g.offsets.keys() {
            write.records.push(KeyValue { key: offsets_log::offset_key(group_id, topic, *p), value: None });
        }
        write.records.push(KeyValue { key: offsets_log::group_key(group_id), value: None });
        if let Some(mut g) = self.groups.remove(group_id) {
            g.mark_dead(now);
        }
        Ok(write)
    }

    /// `offsets.retention.minutes`: an empty group's offsets expire that long after it became
    /// empty (after their commit for groups that never had members); a group left with
    /// nothing is deleted. Tombstones go to the outbox.
    fn expire_offsets(&mut self, now: Now) {
        let retention_ms = self.cfg.offsets_retention_ms;
        let mut removed_groups = Vec::new();
        let mut tombstones: Vec<(i32, KeyValue)> = Vec::new();
        let consumer_groups = &self.consumer_groups;
        for (id, g) in self.groups.iter_mut() {
            if g.state() != GroupState::Empty || !g.is_empty() {
                continue;
            }
            if consumer_groups.get(id).is_some_and(|c| !c.members.is_empty()) {
                continue;
            }
            let partition = offsets_log::partition_for(id, self.cfg.offsets_topic_num_partitions);
            let group_base = g.protocol_type.is_some().then_some(g.state_timestamp_ms);
            let expired: Vec<TopicPartition> = g
                .offsets
                .iter()
                .filter(|(_, c)| {
                    if c.expire_timestamp_ms >= 0 {
                        return now.wall_ms >= c.expire_timestamp_ms;
                    }
                    let base = group_base.unwrap_or(c.commit_timestamp_ms);
                    now.wall_ms.saturating_sub(base) >= retention_ms
                })
                .map(|(tp, _)| tp.clone())
                .collect();
            for tp in expired {
                g.offsets.remove(&tp);
                tombstones.push((
                    partition,
                    KeyValue { key: offsets_log::offset_key(id, &tp.topic, tp.partition), value: None },
                ));
            }
            if g.offsets.is_empty() {
                tombstones.push((partition, KeyValue { key: offsets_log::group_key(id), value: None }));
                removed_groups.push(id.clone());
            }
        }
        for id in removed_groups {
            self.groups.remove(&id);
        }
        for (partition, kv) in tombstones {
            self.queue(partition, kv);
        }
    }

    // ---- admin -----------------------------------------------------------------------------

    pub fn list(&self) -> Vec<ListedGroup> {
        let mut out: Vec<ListedGroup> = self
            .groups
            .values()
            .filter(|g| g.state() != GroupState::Dead && !self.consumer_groups.contains_key(&g.id))
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state().name().to_string(),
                group_type: "classic",
            })
            .collect();
        out.extend(self.consumer_groups.values().map(|g| ListedGroup {
            group_id: g.id.clone(),
            protocol_type: "consumer".into(),
            state: g.state_name().to_string(),
            group_type: "consumer",
        }));
        out.extend(self.share_groups.values().map(|g| ListedGroup {
            group_id: g.id.clone(),
            protocol_type: "share".into(),
            state: g.state_name().to_string(),
            group_type: "share",
        }));
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    pub fn describe(&self, group_id: &str) -> Option<DescribedGroup> {
        if let Some(sg) = self.share_groups.get(group_id) {
            return Some(DescribedGroup {
                state: sg.state_name().to_string(),
                protocol_type: "share".into(),
                protocol_data: "simple".into(),
                members: sg
                    .members
                    .values()
                    .map(|m| DescribedMember {
                        member_id: m.id.clone(),
                        instance_id: None,
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: Bytes::new(),
                        assignment: Bytes::new(),
                    })
                    .collect(),
            });
        }
        if let Some(cg) = self.consumer_groups.get(group_id) {
            // A KIP-848 group seen through the classic API: members without metadata.
            return Some(DescribedGroup {
                state: cg.state_name().to_string(),
                protocol_type: "consumer".into(),
                protocol_data: cg.assignor.name().into(),
                members: cg
                    .members
                    .values()
                    .map(|m| DescribedMember {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: Bytes::new(),
                        assignment: Bytes::new(),
                    })
                    .collect(),
            });
        }
        let g = self.groups.get(group_id)?;
        let stable = g.state() == GroupState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        Some(DescribedGroup {
            state: g.state().name().to_string(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable { protocol.clone() } else { String::new() },
            members: g
                .members()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata(&protocol) } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        })
    }

    // ---- loading ---------------------------------------------------------------------------

    /// Applies one record read back from `__consumer_offsets` (start-up), in log order.
    pub fn replay(&mut self, record: LogRecord, now: Now) {
        match record {
            LogRecord::Offset { group, topic, partition, value: Some(v) } => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now));
                g.offsets.insert(
                    TopicPartition::new(topic, partition),
                    CommittedOffset {
                        offset: v.offset,
                        leader_epoch: v.leader_epoch,
                        metadata: v.metadata,
                        commit_timestamp_ms: v.commit_timestamp_ms,
                        expire_timestamp_ms: v.expire_timestamp_ms,
                        seq,
                    },
                );
            }
            LogRecord::Offset { group, topic, partition, value: None } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.offsets.remove(&TopicPartition::new(topic, partition));
                }
            }
            LogRecord::Group { group, value } => {
                let offsets = self.groups.remove(&group).map(|g| g.offsets).unwrap_or_default();
                let mut g = match value {
                    Some(v) => Group::restore(&group, v, now),
                    None => Group::new(&group, now),
                };
                g.offsets = offsets;
                self.groups.insert(group, g);
            }
            LogRecord::ShareGroup { group, epoch: Some(epoch) } => match self.share_groups.get_mut(&group) {
                Some(g) => {
                    g.group_epoch = g.group_epoch.max(epoch);
                    g.assignment_epoch = g.group_epoch;
                    g.persisted_epoch = g.group_epoch;
                }
                None => {
                    self.share_groups.insert(group.clone(), ShareGroup::restore(&group, epoch, now));
                }
            },
            LogRecord::ShareGroup { group, epoch: None } => {
                self.share_groups.remove(&group);
            }
            LogRecord::SharePartitions { group, topics } => {
                if let Some(g) = self.share_groups.get_mut(&group) {
                    g.initialized = topics
                        .unwrap_or_default()
                        .into_iter()
                        .map(|t| (t.topic_id, (t.name, t.partitions.into_iter().collect())))
                        .collect();
                }
            }
            LogRecord::Other => {}
        }
    }

    /// Applies one entry read back from offsets partition `partition`, in log order: a
    /// transaction's offset waits for its marker, a marker completes it.
    pub fn replay_entry(&mut self, entry: offsets_log::ChunkEntry, partition: i32, now: Now) {
        match entry {
            offsets_log::ChunkEntry::Record { txn_producer: None, record: Ok(r), .. } => self.replay(r, now),
            offsets_log::ChunkEntry::Record {
                txn_producer: Some(pid),
                record: Ok(LogRecord::Offset { group, topic, partition: p, value: Some(v) }),
                ..
            } => {
                let entry = CommittedOffset {
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata,
                    commit_timestamp_ms: v.commit_timestamp_ms,
                    expire_timestamp_ms: v.expire_timestamp_ms,
                    seq: 0,
                };
                self.pending_txn.entry(pid).or_default().push((group, TopicPartition::new(topic, p), entry));
            }
            offsets_log::ChunkEntry::Record { record: Ok(_), .. } => {}
            offsets_log::ChunkEntry::Record { offset, record: Err(e), .. } => {
                tracing::warn!("{}-{partition}@{offset}: skipped record: {e}", offsets_log::OFFSETS_TOPIC)
            }
            offsets_log::ChunkEntry::Marker(end) => {
                self.complete_txn(end.producer_id, partition, end.commit, now)
            }
        }
    }

    /// Forgets every group stored in offsets partition `partition` (its leadership moved, or
    /// it is about to be loaded again).
    pub fn drop_partition(&mut self, partition: i32) {
        let n = self.cfg.offsets_topic_num_partitions;
        self.groups.retain(|id, _| offsets_log::partition_for(id, n) != partition);
        self.consumer_groups.retain(|id, _| offsets_log::partition_for(id, n) != partition);
        self.share_groups.retain(|id, _| offsets_log::partition_for(id, n) != partition);
        for pending in self.pending_txn.values_mut() {
            pending.retain(|(g, _, _)| offsets_log::partition_for(g, n) != partition);
        }
        self.pending_txn.retain(|_, p| !p.is_empty());
    }

    /// After replay: drop what holds nothing (deleted groups).
    pub fn finish_load(&mut self) {
        self.groups.retain(|_, g| !(g.state() == GroupState::Empty && g.offsets.is_empty() && g.is_empty()));
    }
}
