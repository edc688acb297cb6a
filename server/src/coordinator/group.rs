//! One classic consumer group: its members, the join/sync rebalance protocol, heartbeats and
//! session expiry, static membership (`group.instance.id`), generations and fencing.
//!
//! A pure state machine, as in Kafka's `ClassicGroup` + `GroupMetadataManager`: no I/O and no
//! clock of its own (every call takes a [`Now`]), so tests drive it deterministically. Replies
//! that must wait (JoinGroup until the join phase completes, SyncGroup until the leader's
//! assignment arrives) are one-shot flume senders parked on the member and answered later from
//! another call or from [`Group::tick`].
//!
//! States: Empty → PreparingRebalance (members join; completes when every known member has
//! rejoined or the rebalance timeout passes; a new group first waits
//! `group.initial.rebalance.delay.ms`) → CompletingRebalance (the leader computes the
//! assignment; generation bumped) → Stable (assignment handed out on SyncGroup).

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use riptide_model::{LeaderEpoch, Offset, TopicPartition};

use super::error::GroupError;
use super::offsets_log::{GroupValue, MemberValue};
use super::{GroupConfig, Now};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A JoinGroup as the state machine sees it.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup version: v4+ new members get MEMBER_ID_REQUIRED, v9+ may skip assignment.
    pub version: i16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinResult {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    pub fn failed(error: GroupError, member_id: &str) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncResult {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn failed(error: GroupError) -> SyncResult {
        SyncResult { error: Some(error), ..Default::default() }
    }
}

pub type JoinTx = flume::Sender<JoinResult>;
pub type SyncTx = flume::Sender<SyncResult>;

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    join_waiter: Option<JoinTx>,
    sync_waiter: Option<SyncTx>,
    /// Joined but not yet through a completed join phase: expires on the new-member timeout.
    is_new: bool,
    heartbeat_deadline_ms: u64,
}

impl Member {
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| p.metadata.clone()).unwrap_or_default()
    }

    fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    pub fn is_awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    fn reply_join(&mut self, result: JoinResult) {
        if let Some(tx) = self.join_waiter.take() {
            let _ = tx.send(result);
        }
    }

    fn reply_sync(&mut self, result: SyncResult) {
        if let Some(tx) = self.sync_waiter.take() {
            let _ = tx.send(result);
        }
    }

    /// A member waiting for a join or sync answer is alive even without heartbeats, unless it
    /// is new (then only the new-member timeout counts).
    fn heartbeat_satisfied(&self) -> bool {
        !self.is_new && (self.join_waiter.is_some() || self.sync_waiter.is_some())
    }
}

/// The initial-rebalance delay of a group that was Empty: extended while members keep
/// arriving, up to the rebalance timeout.
#[derive(Clone, Copy, Debug)]
struct InitialDelay {
    remaining_ms: u64,
    new_member_added: bool,
}

pub struct Group {
    pub id: String,
    state: GroupState,
    previous_state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pending_members: HashMap<String, u64>,
    /// Members that have not sent SyncGroup since the last join phase completed.
    pending_sync: HashSet<String>,
    join_deadline_ms: Option<u64>,
    initial_delay: Option<InitialDelay>,
    sync_deadline_ms: Option<u64>,
    /// Wall-clock time of the last state change (for offsets expiry of empty groups).
    pub state_timestamp_ms: i64,
    /// Set when the group's metadata changed in a way worth persisting.
    metadata_dirty: bool,
    /// Committed offsets by (topic, partition).
    pub offsets: Offsets,
}

/// One committed offset, as OffsetFetch returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: Offset,
    pub leader_epoch: LeaderEpoch,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// An explicit expiry (OffsetCommitValue v1); -1 when the group-level rule applies.
    pub expire_timestamp_ms: i64,
    /// Order of the commit: a later commit never loses to an earlier one whose write
    /// happened to finish last.
    pub seq: u64,
}

pub type Offsets = BTreeMap<TopicPartition, CommittedOffset>;

impl Group {
    pub fn new(id: &str, now: Now) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            join_deadline_ms: None,
            initial_delay: None,
            sync_deadline_ms: None,
            state_timestamp_ms: now.wall_ms,
            metadata_dirty: false,
            offsets: Offsets::new(),
        }
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending_members.is_empty()
    }

    fn transition(&mut self, to: GroupState, now: Now) {
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp_ms = now.wall_ms;
    }

    /// Marks the group deleted: every parked request is answered so no client hangs.
    pub fn mark_dead(&mut self, now: Now) {
        for m in self.members.values_mut() {
            m.reply_join(JoinResult::failed(GroupError::CoordinatorNotAvailable, &m.id.clone()));
            m.reply_sync(SyncResult::failed(GroupError::CoordinatorNotAvailable));
        }
        self.transition(GroupState::Dead, now);
    }

    fn rebalance_timeout_ms(&self) -> u64 {
        self.members.values().map(|m| m.rebalance_timeout_ms.max(0) as u64).max().unwrap_or(0)
    }

    /// Checks `member_id` (and `instance_id` for static members) against the group.
    pub fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        match instance_id {
            Some(iid) => match self.static_members.get(iid) {
                None => Err(GroupError::UnknownMemberId),
                Some(existing) if existing != member_id => Err(GroupError::FencedInstanceId),
                Some(_) => Ok(()),
            },
            None if self.members.contains_key(member_id) => Ok(()),
            None => Err(GroupError::UnknownMemberId),
        }
    }

    /// Whether a member with these protocols may join (Kafka's `supportsProtocols`).
    fn supports_protocols(&self, joining: Option<&str>, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        let others: Vec<&Member> = self.members.values().filter(|m| Some(m.id.as_str()) != joining).collect();
        if others.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|p| others.iter().all(|m| m.protocols.iter().any(|q| q.name == p.name)))
    }

    /// The protocol every member supports with the most first-choice votes.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|m| m.protocols.iter().any(|q| q.name == *name)))
            .collect();
        let mut votes: Vec<(usize, &str)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some(choice) = m.protocols.iter().find(|p| candidates.contains(&p.name.as_str())) {
                if let Some(v) = votes.iter_mut().find(|(_, n)| *n == choice.name) {
                    v.0 += 1;
                }
            }
        }
        // Highest vote count wins; ties go to the earlier candidate.
        let mut best: Option<(usize, &str)> = None;
        for (count, name) in votes {
            if best.is_none_or(|(b, _)| count > b) {
                best = Some((count, name));
            }
        }
        best.map(|(_, n)| n.to_string())
    }

    fn current_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect()
    }

    fn current_join_result(&self, member_id: &str, with_members: bool, skip_assignment: bool) -> JoinResult {
        JoinResult {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            skip_assignment,
            members: if with_members { self.current_members() } else { Vec::new() },
        }
    }

    // ---- JoinGroup -------------------------------------------------------------------------

    /// Handles a JoinGroup; the answer goes to `tx`, now or when the join phase completes.
    pub fn join(&mut self, req: JoinRequest, tx: JoinTx, cfg: &GroupConfig, now: Now) {
        if self.state == GroupState::Dead {
            let _ = tx.send(JoinResult::failed(GroupError::CoordinatorNotAvailable, &req.member_id));
            return;
        }
        let joining = (!req.member_id.is_empty()).then_some(req.member_id.as_str());
        if !self.supports_protocols(joining, &req.protocol_type, &req.protocols) {
            let _ = tx.send(JoinResult::failed(GroupError::InconsistentGroupProtocol, &req.member_id));
            return;
        }
        if req.member_id.is_empty() {
            self.join_new_member(req, tx, cfg, now);
        } else {
            self.join_existing_member(req, tx, cfg, now);
        }
    }

    fn accepts_new_member(&self, cfg: &GroupConfig) -> bool {
        match self.state {
            GroupState::PreparingRebalance => {
                self.members.values().filter(|m| m.is_awaiting_join()).count() < cfg.group_max_size
            }
            _ => self.members.len() < cfg.group_max_size,
        }
    }

    fn join_new_member(&mut self, req: JoinRequest, tx: JoinTx, cfg: &GroupConfig, now: Now) {
        let prefix = req.instance_id.as_deref().unwrap_or(&req.client_id);
        let new_id = format!("{prefix}-{}", uuid::Uuid::from_u128(crate::catalog::new_topic_id()));
        if let Some(iid) = req.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&iid).cloned() {
                self.replace_static_member(req, &old_id, new_id, tx, cfg, now);
                return;
            }
        } else if req.version >= 4 {
            // KIP-394: hand out the id first, so a client that times out and retries doesn't
            // leave defunct members behind.
            self.pending_members.insert(new_id.clone(), now.mono_ms + req.session_timeout_ms.max(0) as u64);
            let _ = tx.send(JoinResult::failed(GroupError::MemberIdRequired, &new_id));
            return;
        }
        if !self.accepts_new_member(cfg) {
            let _ = tx.send(JoinResult::failed(GroupError::GroupMaxSizeReached, ""));
            return;
        }
        self.add_member_and_rebalance(req, new_id, tx, cfg, now);
    }

    fn join_existing_member(&mut self, req: JoinRequest, tx: JoinTx, cfg: &GroupConfig, now: Now) {
        let member_id = req.member_id.clone();
        if self.pending_members.remove(&member_id).is_some() {
            if !self.accepts_new_member(cfg) {
                let _ = tx.send(JoinResult::failed(GroupError::GroupMaxSizeReached, &member_id));
                return;
            }
            self.add_member_and_rebalance(req, member_id, tx, cfg, now);
            return;
        }
        if let Err(e) = self.validate_member(&member_id, req.instance_id.as_deref()) {
            let _ = tx.send(JoinResult::failed(e, &member_id));
            return;
        }
        let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
        let matches = self.members.get(&member_id).is_some_and(|m| m.matches(&req.protocols));
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(req, tx, cfg, now),
            GroupState::CompletingRebalance if matches => {
                // The member lost the join answer: give it again.
                let _ = tx.send(self.current_join_result(&member_id, is_leader, false));
            }
            GroupState::Stable if matches && !is_leader => {
                let _ = tx.send(self.current_join_result(&member_id, false, false));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(req, tx, cfg, now)
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = tx.send(JoinResult::failed(GroupError::UnknownMemberId, &member_id));
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        member_id: String,
        tx: JoinTx,
        cfg: &GroupConfig,
        now: Now,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let member = Member {
            id: member_id.clone(),
            instance_id: req.instance_id.clone(),
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(tx),
            sync_waiter: None,
            is_new: true,
            // A parked JoinGroup can't heartbeat; new members get a longer, fixed timeout.
            heartbeat_deadline_ms: now.mono_ms + cfg.new_member_join_timeout_ms,
        };
        if let Some(iid) = &req.instance_id {
            self.static_members.insert(iid.clone(), member_id.clone());
        }
        if self.state == GroupState::PreparingRebalance && self.previous_state == GroupState::Empty {
            if let Some(d) = self.initial_delay.as_mut() {
                d.new_member_added = true;
            }
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        self.members.insert(member_id, member);
        self.maybe_prepare_rebalance_or_complete_join(cfg, now);
    }

    fn update_member_and_rebalance(&mut self, req: JoinRequest, tx: JoinTx, cfg: &GroupConfig, now: Now) {
        if let Some(m) = self.members.get_mut(&req.member_id) {
            m.protocols = req.protocols;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.session_timeout_ms = req.session_timeout_ms;
            m.client_id = req.client_id;
            // A retried JoinGroup replaces the earlier parked one, which is answered as Kafka
            // does for a superseded request.
            if let Some(old) = m.join_waiter.replace(tx) {
                let _ = old.send(JoinResult::failed(GroupError::UnknownMemberId, &req.member_id));
            }
        }
        self.maybe_prepare_rebalance_or_complete_join(cfg, now);
    }

    /// A static member came back with a new process (unknown member id, known instance id):
    /// the new member id replaces the old one, which is fenced.
    fn replace_static_member(
        &mut self,
        req: JoinRequest,
        old_id: &str,
        new_id: String,
        tx: JoinTx,
        cfg: &GroupConfig,
        now: Now,
    ) {
        let Some(mut member) = self.members.remove(old_id) else {
            let _ = tx.send(JoinResult::failed(GroupError::UnknownMemberId, ""));
            return;
        };
        let previous_leader = self.leader_id.clone().unwrap_or_default();
        member.reply_join(JoinResult::failed(GroupError::FencedInstanceId, old_id));
        member.reply_sync(SyncResult::failed(GroupError::FencedInstanceId));
        member.id = new_id.clone();
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.heartbeat_deadline_ms = now.mono_ms + req.session_timeout_ms.max(0) as u64;
        member.join_waiter = Some(tx);
        if let Some(iid) = &member.instance_id {
            self.static_members.insert(iid.clone(), new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        if self.leader_id.as_deref() == Some(old_id) {
            self.leader_id = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol_name => {
                // Nothing the assignment depends on changed: no rebalance (KIP-345).
                let is_leader = self.leader_id.as_deref() == Some(new_id.as_str());
                let result = if req.version >= 9 {
                    self.current_join_result(&new_id, is_leader, is_leader)
                } else {
                    // Older clients are told the old leader id, so even a former leader syncs
                    // as a follower and gets its stored assignment.
                    JoinResult { leader: previous_leader, ..self.current_join_result(&new_id, false, false) }
                };
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.reply_join(result);
                }
                self.metadata_dirty = true;
            }
            GroupState::CompletingRebalance => self.prepare_rebalance(cfg, now),
            _ => self.maybe_prepare_rebalance_or_complete_join(cfg, now),
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(&mut self, cfg: &GroupConfig, now: Now) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty => {
                self.prepare_rebalance(cfg, now)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(cfg, now),
            GroupState::Dead => {}
        }
    }

    fn prepare_rebalance(&mut self, cfg: &GroupConfig, now: Now) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                m.reply_sync(SyncResult::failed(GroupError::RebalanceInProgress));
            }
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        let initial = self.state == GroupState::Empty;
        if initial {
            let delay = cfg.initial_rebalance_delay_ms;
            self.join_deadline_ms = Some(now.mono_ms + delay);
            self.initial_delay = Some(InitialDelay {
                remaining_ms: self.rebalance_timeout_ms().saturating_sub(delay),
                new_member_added: false,
            });
        } else {
            self.join_deadline_ms = Some(now.mono_ms + self.rebalance_timeout_ms());
            self.initial_delay = None;
        }
        self.transition(GroupState::PreparingRebalance, now);
        // Everyone may already be waiting (a sole member rejoining, the last member gone):
        // then there is nothing to wait for, except on a new group's initial delay.
        if !initial {
            self.maybe_complete_join(cfg, now);
        }
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(Member::is_awaiting_join)
    }

    fn maybe_complete_join(&mut self, cfg: &GroupConfig, now: Now) {
        if self.state == GroupState::PreparingRebalance
            && self.all_members_joined()
            && self.previous_state != GroupState::Empty
        {
            self.complete_join(cfg, now);
        }
    }

    /// The join phase ends: members that didn't rejoin are dropped (static ones are kept
    /// until their session expires), the generation is bumped, a protocol chosen, and every
    /// parked JoinGroup answered — the leader with everyone's metadata.
    fn complete_join(&mut self, cfg: &GroupConfig, now: Now) {
        debug_assert_eq!(self.state, GroupState::PreparingRebalance);
        let absent: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in absent {
            self.remove_member(&id);
        }
        if !self.members.is_empty() && !self.elect_joined_leader() {
            // Only absent static members left: wait for them a while longer.
            self.join_deadline_ms = Some(now.mono_ms + self.rebalance_timeout_ms());
            return;
        }
        self.join_deadline_ms = None;
        self.initial_delay = None;
        self.generation_id = self.generation_id.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now);
            self.metadata_dirty = true;
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, now);
        let leader = self.leader_id.clone().unwrap_or_default();
        let all = self.current_members();
        let template = self.current_join_result("", false, false);
        for m in self.members.values_mut() {
            let is_leader = m.id == leader;
            let result = JoinResult {
                member_id: m.id.clone(),
                members: if is_leader { all.clone() } else { Vec::new() },
                ..template.clone()
            };
            m.reply_join(result);
            m.is_new = false;
            m.heartbeat_deadline_ms = now.mono_ms + m.session_timeout_ms.max(0) as u64;
        }
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline_ms = Some(now.mono_ms + self.rebalance_timeout_ms());
        let _ = cfg;
    }

    /// Keeps the leader if it rejoined, else picks a member that did. False if none did.
    fn elect_joined_leader(&mut self) -> bool {
        if let Some(l) = &self.leader_id {
            if self.members.get(l).is_some_and(Member::is_awaiting_join) {
                return true;
            }
        }
        match self.members.values().find(|m| m.is_awaiting_join()) {
            Some(m) => {
                self.leader_id = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    /// Removes a member without starting a rebalance; its parked requests are answered.
    fn remove_member(&mut self, member_id: &str) -> bool {
        let Some(mut m) = self.members.remove(member_id) else { return false };
        m.reply_join(JoinResult::failed(GroupError::UnknownMemberId, member_id));
        m.reply_sync(SyncResult::failed(GroupError::UnknownMemberId));
        if let Some(iid) = &m.instance_id {
            if self.static_members.get(iid).is_some_and(|id| id == member_id) {
                self.static_members.remove(iid);
            }
        }
        self.pending_sync.remove(member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        true
    }

    fn remove_member_and_update_group(&mut self, member_id: &str, cfg: &GroupConfig, now: Now) {
        if !self.remove_member(member_id) {
            return;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(cfg, now),
            GroupState::PreparingRebalance => self.maybe_complete_join(cfg, now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ---- SyncGroup, Heartbeat, LeaveGroup -------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        tx: SyncTx,
        now: Now,
    ) {
        if self.state == GroupState::Dead {
            let _ = tx.send(SyncResult::failed(GroupError::CoordinatorNotAvailable));
            return;
        }
        if let Err(e) = self.validate_member(member_id, instance_id) {
            let _ = tx.send(SyncResult::failed(e));
            return;
        }
        if generation_id != self.generation_id {
            let _ = tx.send(SyncResult::failed(GroupError::IllegalGeneration));
            return;
        }
        let inconsistent = |req: Option<&str>, ours: &Option<String>| req.is_some() && req != ours.as_deref();
        if inconsistent(protocol_type, &self.protocol_type)
            || inconsistent(protocol_name, &self.protocol_name)
        {
            let _ = tx.send(SyncResult::failed(GroupError::InconsistentGroupProtocol));
            return;
        }
        match self.state {
            GroupState::PreparingRebalance => {
                let _ = tx.send(SyncResult::failed(GroupError::RebalanceInProgress));
            }
            GroupState::CompletingRebalance => {
                self.pending_sync.remove(member_id);
                let is_leader = self.leader_id.as_deref() == Some(member_id);
                if let Some(m) = self.members.get_mut(member_id) {
                    m.sync_waiter = Some(tx);
                    m.heartbeat_deadline_ms = now.mono_ms + m.session_timeout_ms.max(0) as u64;
                }
                if is_leader {
                    self.apply_assignment(assignments, now);
                }
            }
            GroupState::Stable => {
                self.pending_sync.remove(member_id);
                let result = self.sync_result_for(member_id);
                let _ = tx.send(result);
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = tx.send(SyncResult::failed(GroupError::UnknownMemberId));
            }
        }
    }

    fn sync_result_for(&self, member_id: &str) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self.members.get(member_id).map(|m| m.assignment.clone()).unwrap_or_default(),
        }
    }

    /// The leader's assignment arrived: store it (members it left out get an empty one),
    /// answer every parked SyncGroup, and become Stable.
    fn apply_assignment(&mut self, assignments: Vec<(String, Bytes)>, now: Now) {
        let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
        for m in self.members.values_mut() {
            m.assignment = by_member.remove(&m.id).unwrap_or_default();
        }
        self.transition(GroupState::Stable, now);
        self.metadata_dirty = true;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.sync_result_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.reply_sync(result);
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now: Now,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance_id)?;
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                self.touch(member_id, now);
                Err(GroupError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.touch(member_id, now);
                Ok(())
            }
        }
    }

    /// Records a sign of life from a member (heartbeat, offset commit).
    pub fn touch(&mut self, member_id: &str, now: Now) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.heartbeat_deadline_ms = now.mono_ms + m.session_timeout_ms.max(0) as u64;
        }
    }

    /// One member of a LeaveGroup. An empty member id with an instance id removes whichever
    /// member holds that instance id (KIP-345 admin removal).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        cfg: &GroupConfig,
        now: Now,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let target = match instance_id {
            Some(iid) => match self.static_members.get(iid) {
                None => return Err(GroupError::UnknownMemberId),
                Some(existing) if !member_id.is_empty() && existing != member_id => {
                    return Err(GroupError::FencedInstanceId)
                }
                Some(existing) => existing.clone(),
            },
            None => {
                if self.pending_members.remove(member_id).is_some() {
                    self.maybe_complete_join(cfg, now);
                    return Ok(());
                }
                if !self.members.contains_key(member_id) {
                    return Err(GroupError::UnknownMemberId);
                }
                member_id.to_string()
            }
        };
        self.remove_member_and_update_group(&target, cfg, now);
        Ok(())
    }

    /// Validates an OffsetCommit of a classic group (Kafka's `validateOffsetCommit`).
    pub fn validate_offset_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now: Now,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(()); // a commit from outside the group (admin tools, manual assignment)
        }
        if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation_id != self.generation_id {
                return Err(GroupError::IllegalGeneration);
            }
        } else if self.state != GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        self.touch(member_id, now);
        Ok(())
    }

    // ---- timers ----------------------------------------------------------------------------

    /// Runs every timer that is due: pending-member and session expiry, the end of the join
    /// phase, and the sync deadline.
    pub fn tick(&mut self, cfg: &GroupConfig, now: Now) {
        if self.state == GroupState::Dead {
            return;
        }
        let before = self.pending_members.len();
        self.pending_members.retain(|_, deadline| *deadline > now.mono_ms);
        if self.pending_members.len() != before {
            self.maybe_complete_join(cfg, now);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.heartbeat_deadline_ms <= now.mono_ms && !m.heartbeat_satisfied())
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            self.remove_member_and_update_group(&id, cfg, now);
        }
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline_ms.is_some_and(|d| d <= now.mono_ms)
        {
            self.on_join_deadline(cfg, now);
        }
        if matches!(self.state, GroupState::CompletingRebalance | GroupState::Stable)
            && self.sync_deadline_ms.is_some_and(|d| d <= now.mono_ms)
        {
            self.sync_deadline_ms = None;
            let laggards: Vec<String> = self.pending_sync.drain().collect();
            for id in laggards {
                self.remove_member_and_update_group(&id, cfg, now);
            }
        }
    }

    fn on_join_deadline(&mut self, cfg: &GroupConfig, now: Now) {
        if let Some(d) = self.initial_delay {
            if d.new_member_added && d.remaining_ms > 0 {
                let step = cfg.initial_rebalance_delay_ms.min(d.remaining_ms);
                self.initial_delay =
                    Some(InitialDelay { remaining_ms: d.remaining_ms - step, new_member_added: false });
                self.join_deadline_ms = Some(now.mono_ms + step);
                return;
            }
        }
        self.complete_join(cfg, now);
    }

    /// The earliest time `tick` has work to do, if any.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let members = self.members.values().map(|m| m.heartbeat_deadline_ms);
        let pending = self.pending_members.values().copied();
        members.chain(pending).chain(self.join_deadline_ms).chain(self.sync_deadline_ms).min()
    }

    // ---- persistence -----------------------------------------------------------------------

    /// The group's metadata record if it changed since the last call.
    pub fn take_metadata_record(&mut self) -> Option<GroupValue> {
        if !std::mem::take(&mut self.metadata_dirty) {
            return None;
        }
        Some(self.metadata_value())
    }

    pub fn metadata_value(&self) -> GroupValue {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its last metadata record (broker start). Members come back
    /// Stable with a fresh session, so consumers that keep heartbeating through a coordinator
    /// restart don't rebalance; the ones that are gone expire.
    pub fn restore(id: &str, v: GroupValue, now: Now) -> Group {
        let mut g = Group::new(id, now);
        g.generation_id = v.generation;
        g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        g.protocol_name = v.protocol.clone();
        g.leader_id = v.leader;
        if v.current_state_timestamp_ms >= 0 {
            g.state_timestamp_ms = v.current_state_timestamp_ms;
        }
        let protocol = v.protocol.unwrap_or_default();
        for m in v.members {
            if let Some(iid) = &m.group_instance_id {
                g.static_members.insert(iid.clone(), m.member_id.clone());
            }
            let member = Member {
                id: m.member_id.clone(),
                instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![Protocol { name: protocol.clone(), metadata: m.subscription }],
                assignment: m.assignment,
                join_waiter: None,
                sync_waiter: None,
                is_new: false,
                heartbeat_deadline_ms: now.mono_ms + m.session_timeout_ms.max(0) as u64,
            };
            g.members.insert(m.member_id, member);
        }
        if g.leader_id.as_ref().is_some_and(|l| !g.members.contains_key(l)) {
            g.leader_id = g.members.keys().next().cloned();
        }
        g.state = if g.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
        g.previous_state = g.state;
        g
    }
}
