//! A KIP-848 consumer group (`group.protocol=consumer`): members heartbeat with
//! ConsumerGroupHeartbeat, the coordinator computes the assignment (server-side assignors) and
//! hands it out incrementally.
//!
//! Epochs: the group epoch is bumped by every membership, subscription or partition-count
//! change; the target assignment is recomputed when it lags the group epoch. Each member then
//! reconciles towards its target one heartbeat at a time: it first revokes what it must give
//! up (keeping its epoch, state UnrevokedPartitions), then moves to the target epoch and gets
//! new partitions as soon as their previous owners have released them (UnreleasedPartitions
//! until then). A partition is therefore never owned by two members.
//!
//! Like `group`, a pure state machine driven with an explicit [`Now`]. Membership is kept in
//! memory only: after a coordinator restart members get UNKNOWN_MEMBER_ID and rejoin with
//! epoch 0 (committed offsets are persisted as for classic groups).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::assignor::{Assignor, TopicPartitions};
use super::error::GroupError;
use super::{GroupConfig, Now};

/// A ConsumerGroupHeartbeat as the state machine sees it (topics by name).
#[derive(Clone, Debug, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 = unchanged.
    pub rebalance_timeout_ms: i32,
    /// None = unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// None = unchanged.
    pub owned: Option<TopicPartitions>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// None = unchanged since the last answer.
    pub assignment: Option<TopicPartitions>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

#[derive(Clone, Debug)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    previous_epoch: i32,
    pub state: MemberState,
    rebalance_timeout_ms: i32,
    pub subscribed: BTreeSet<String>,
    pub assignor: Option<String>,
    /// What the member owns now (as last told).
    pub assigned: TopicPartitions,
    /// What it was asked to give up and has not yet confirmed.
    pub revoking: TopicPartitions,
    session_deadline_ms: u64,
    revoke_deadline_ms: Option<u64>,
}

pub struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: HashMap<String, TopicPartitions>,
    /// Partition counts of the subscribed topics when the target was last computed.
    partition_counts: BTreeMap<String, i32>,
    pub assignor: Assignor,
    pub state_timestamp_ms: i64,
    /// Something that needs a new group epoch changed during the current call.
    changed: bool,
}

/// Looks a topic's partition count up (the catalog, in the broker).
pub type TopicLookup<'a> = &'a dyn Fn(&str) -> Option<i32>;

fn union(a: &TopicPartitions, b: &TopicPartitions) -> TopicPartitions {
    let mut out = a.clone();
    for (t, ps) in b {
        out.entry(t.clone()).or_default().extend(ps);
    }
    out
}

fn minus(a: &TopicPartitions, b: &TopicPartitions) -> TopicPartitions {
    let mut out = TopicPartitions::new();
    for (t, ps) in a {
        let left: BTreeSet<i32> = match b.get(t) {
            Some(rm) => ps.difference(rm).copied().collect(),
            None => ps.clone(),
        };
        if !left.is_empty() {
            out.insert(t.clone(), left);
        }
    }
    out
}

fn intersect(a: &TopicPartitions, b: &TopicPartitions) -> TopicPartitions {
    minus(a, &minus(a, b))
}

fn is_empty(a: &TopicPartitions) -> bool {
    a.values().all(BTreeSet::is_empty)
}

impl ConsumerGroup {
    pub fn new(id: &str, now: Now) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: HashMap::new(),
            partition_counts: BTreeMap::new(),
            assignor: Assignor::Uniform,
            state_timestamp_ms: now.wall_ms,
            changed: false,
        }
    }

    /// KIP-848 group states: Empty, Assigning, Reconciling, Stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// One new group epoch for everything that changed in this call.
    fn apply_changes(&mut self, now: Now) {
        if std::mem::take(&mut self.changed) {
            self.group_epoch += 1;
            self.state_timestamp_ms = now.wall_ms;
        }
    }

    pub fn remove_member(&mut self, member_id: &str, now: Now) -> bool {
        if self.members.remove(member_id).is_none() {
            return false;
        }
        self.target.remove(member_id);
        self.changed = true;
        self.apply_changes(now);
        true
    }

    /// Removes without starting a new epoch yet (the caller applies the changes).
    fn drop_member(&mut self, member_id: &str) {
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.changed = true;
        }
    }

    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        topics: TopicLookup<'_>,
        cfg: &GroupConfig,
        now: Now,
    ) -> Result<HeartbeatResult, GroupError> {
        if hb.member_epoch == -1 || hb.member_epoch == -2 {
            // Leaving (-2: a static member that will come back; it is released all the same).
            if !self.remove_member(&hb.member_id, now) {
                return Err(GroupError::UnknownMemberId);
            }
            return Ok(HeartbeatResult {
                member_id: hb.member_id,
                member_epoch: hb.member_epoch,
                heartbeat_interval_ms: 0,
                assignment: None,
            });
        }
        if hb.subscribed_topic_regex.as_deref().is_some_and(|r| !r.is_empty()) {
            return Err(GroupError::InvalidRequest);
        }
        if let Some(name) = &hb.server_assignor {
            Assignor::parse(name).ok_or(GroupError::UnsupportedAssignor)?;
        }
        let full = hb.member_epoch == 0
            || (hb.rebalance_timeout_ms != -1 && hb.subscribed_topic_names.is_some() && hb.owned.is_some());
        let member_id = if hb.member_epoch == 0 { self.join(&hb, cfg, now)? } else { self.validate(&hb)? };
        self.update_member(&member_id, &hb, cfg, now);
        self.refresh_partition_counts(topics);
        self.apply_changes(now);
        if self.group_epoch > self.assignment_epoch {
            self.compute_target();
        }
        let before = self.members.get(&member_id).map(|m| m.assigned.clone()).unwrap_or_default();
        self.reconcile(&member_id, hb.owned.as_ref(), now);
        let m = self.members.get(&member_id).ok_or(GroupError::UnknownMemberId)?;
        Ok(HeartbeatResult {
            member_id: member_id.clone(),
            member_epoch: m.epoch,
            heartbeat_interval_ms: cfg.consumer_heartbeat_interval_ms,
            assignment: (full || m.assigned != before).then(|| m.assigned.clone()),
        })
    }

    /// A member joining (epoch 0); returns its id.
    fn join(&mut self, hb: &Heartbeat, cfg: &GroupConfig, now: Now) -> Result<String, GroupError> {
        if hb.subscribed_topic_names.is_none() || hb.rebalance_timeout_ms < 0 {
            return Err(GroupError::InvalidRequest);
        }
        let member_id = if hb.member_id.is_empty() {
            uuid::Uuid::from_u128(crate::catalog::new_topic_id()).to_string()
        } else {
            hb.member_id.clone()
        };
        // A static member's new process replaces the old one; a rejoin starts afresh.
        if let Some(iid) = &hb.instance_id {
            let old: Vec<String> = self
                .members
                .values()
                .filter(|m| m.instance_id.as_ref() == Some(iid) && m.id != member_id)
                .map(|m| m.id.clone())
                .collect();
            for id in old {
                self.drop_member(&id);
            }
        }
        self.drop_member(&member_id);
        if self.members.len() >= cfg.group_max_size {
            return Err(GroupError::GroupMaxSizeReached);
        }
        self.members.insert(
            member_id.clone(),
            ConsumerMember {
                id: member_id.clone(),
                instance_id: hb.instance_id.clone(),
                rack_id: hb.rack_id.clone(),
                client_id: hb.client_id.clone(),
                client_host: hb.client_host.clone(),
                epoch: 0,
                previous_epoch: -1,
                state: MemberState::Stable,
                rebalance_timeout_ms: hb.rebalance_timeout_ms,
                subscribed: BTreeSet::new(),
                assignor: None,
                assigned: TopicPartitions::new(),
                revoking: TopicPartitions::new(),
                session_deadline_ms: now.mono_ms + cfg.consumer_session_timeout_ms,
                revoke_deadline_ms: None,
            },
        );
        self.changed = true;
        Ok(member_id)
    }

    /// An existing member's epoch must be its current one, or the previous one when the
    /// answer that moved it on was lost (then it may own only what it had).
    fn validate(&self, hb: &Heartbeat) -> Result<String, GroupError> {
        let m = self.members.get(&hb.member_id).ok_or(GroupError::UnknownMemberId)?;
        if hb.member_epoch == m.epoch {
            return Ok(m.id.clone());
        }
        let owned_ok =
            hb.owned.as_ref().is_some_and(|o| is_empty(&minus(o, &union(&m.assigned, &m.revoking))));
        if hb.member_epoch == m.previous_epoch && owned_ok {
            return Ok(m.id.clone());
        }
        Err(GroupError::FencedMemberEpoch)
    }

    fn update_member(&mut self, member_id: &str, hb: &Heartbeat, cfg: &GroupConfig, now: Now) {
        let mut changed = false;
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline_ms = now.mono_ms + cfg.consumer_session_timeout_ms;
            if hb.rebalance_timeout_ms >= 0 {
                m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
            }
            if let Some(names) = &hb.subscribed_topic_names {
                let set: BTreeSet<String> = names.iter().cloned().collect();
                if set != m.subscribed {
                    m.subscribed = set;
                    changed = true;
                }
            }
            if hb.server_assignor.is_some() && hb.server_assignor != m.assignor {
                m.assignor = hb.server_assignor.clone();
                changed = true;
            }
            if hb.rack_id.is_some() {
                m.rack_id = hb.rack_id.clone();
            }
        }
        self.changed |= changed;
    }

    /// Partition counts of every subscribed topic; a change (new partitions, topic created or
    /// deleted) bumps the group epoch.
    fn refresh_partition_counts(&mut self, topics: TopicLookup<'_>) {
        let subscribed: BTreeSet<&String> = self.members.values().flat_map(|m| m.subscribed.iter()).collect();
        let counts: BTreeMap<String, i32> =
            subscribed.into_iter().filter_map(|t| topics(t).map(|n| (t.clone(), n))).collect();
        if counts != self.partition_counts {
            self.partition_counts = counts;
            self.changed = true;
        }
    }

    fn compute_target(&mut self) {
        // The group's assignor: the one most members asked for, else uniform.
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        let chosen = votes.iter().max_by_key(|(_, n)| **n).and_then(|(name, _)| Assignor::parse(name));
        self.assignor = chosen.unwrap_or(Assignor::Uniform);
        let subscriptions: BTreeMap<String, BTreeSet<String>> =
            self.members.values().map(|m| (m.id.clone(), m.subscribed.clone())).collect();
        self.target = self.assignor.assign(&subscriptions, &self.partition_counts, &self.target);
        self.assignment_epoch = self.group_epoch;
    }

    /// Partitions held (owned or being revoked) by members other than `member_id`.
    fn held_by_others(&self, member_id: &str) -> TopicPartitions {
        let mut held = TopicPartitions::new();
        for m in self.members.values().filter(|m| m.id != member_id) {
            held = union(&held, &union(&m.assigned, &m.revoking));
        }
        held
    }

    /// Moves one member a step towards its target assignment.
    fn reconcile(&mut self, member_id: &str, owned: Option<&TopicPartitions>, now: Now) {
        let held = self.held_by_others(member_id);
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else { return };
        if m.state == MemberState::UnrevokedPartitions {
            let still_owns = owned.is_none_or(|o| !is_empty(&intersect(o, &m.revoking)));
            if still_owns {
                return;
            }
            m.revoking.clear();
            m.revoke_deadline_ms = None;
            m.state = MemberState::Stable;
        }
        if m.epoch == assignment_epoch && m.state == MemberState::Stable {
            return;
        }
        let keep = intersect(&m.assigned, &target);
        let revoke = minus(&m.assigned, &target);
        if !is_empty(&revoke) {
            m.assigned = keep;
            m.revoking = revoke;
            m.state = MemberState::UnrevokedPartitions;
            m.revoke_deadline_ms = Some(now.mono_ms + m.rebalance_timeout_ms.max(0) as u64);
            return;
        }
        let wanted = minus(&target, &keep);
        let free = minus(&wanted, &held);
        let unreleased = !is_empty(&intersect(&wanted, &held));
        m.assigned = union(&keep, &free);
        if m.epoch != assignment_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = assignment_epoch;
        }
        m.state = if unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
    }

    /// Session expiry and revocation timeouts: such members are fenced (removed).
    pub fn tick(&mut self, now: Now) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline_ms <= now.mono_ms || m.revoke_deadline_ms.is_some_and(|d| d <= now.mono_ms)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.drop_member(&id);
        }
        self.apply_changes(now);
    }

    /// Validates an OffsetCommit from a member of this group.
    pub fn validate_offset_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), GroupError> {
        if member_epoch < 0 && member_id.is_empty() {
            return if self.members.is_empty() { Ok(()) } else { Err(GroupError::UnknownMemberId) };
        }
        let m = self.members.get(member_id).ok_or(GroupError::UnknownMemberId)?;
        if member_epoch != m.epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(ms: u64) -> Now {
        Now { mono_ms: ms, wall_ms: ms as i64 }
    }

    fn topics(name: &str) -> Option<i32> {
        (name == "t").then_some(6)
    }

    fn join(g: &mut ConsumerGroup, id: &str, at: u64) -> HeartbeatResult {
        let hb = Heartbeat {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(TopicPartitions::new()),
            ..Default::default()
        };
        g.heartbeat(hb, &topics, &GroupConfig::default(), now(at)).expect("join")
    }

    fn beat(
        g: &mut ConsumerGroup,
        id: &str,
        epoch: i32,
        owned: Option<&TopicPartitions>,
        at: u64,
    ) -> HeartbeatResult {
        let hb = Heartbeat {
            member_id: id.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: owned.cloned(),
            ..Default::default()
        };
        g.heartbeat(hb, &topics, &GroupConfig::default(), now(at)).expect("heartbeat")
    }

    fn count(a: &TopicPartitions) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    /// Drives members with heartbeats (each acknowledging what it was told) until stable.
    fn settle(g: &mut ConsumerGroup, owned: &mut BTreeMap<String, (i32, TopicPartitions)>, at: &mut u64) {
        for _ in 0..10 {
            let ids: Vec<String> = owned.keys().cloned().collect();
            for id in ids {
                *at += 100;
                let (epoch, own) = owned[&id].clone();
                let r = beat(g, &id, epoch, Some(&own), *at);
                let own = r.assignment.unwrap_or(own);
                // Invariant: no partition is owned by two members at any time.
                owned.insert(id, (r.member_epoch, own));
                let mut seen = BTreeSet::new();
                for (_, o) in owned.values() {
                    for (t, ps) in o {
                        for p in ps {
                            assert!(seen.insert((t.clone(), *p)), "{t}-{p} owned twice");
                        }
                    }
                }
            }
            if g.state_name() == "Stable" {
                return;
            }
        }
        panic!("never stable: {}", g.state_name());
    }

    #[test]
    fn members_converge_without_double_ownership() {
        let mut g = ConsumerGroup::new("g", now(0));
        let mut owned = BTreeMap::new();
        let mut at = 0;
        let a = join(&mut g, "a", at);
        assert_eq!((a.member_epoch, count(a.assignment.as_ref().expect("full"))), (1, 6));
        owned.insert("a".to_string(), (a.member_epoch, a.assignment.unwrap_or_default()));
        let b = join(&mut g, "b", at);
        assert_eq!(count(b.assignment.as_ref().expect("full")), 0, "a still owns everything");
        owned.insert("b".to_string(), (b.member_epoch, TopicPartitions::new()));
        settle(&mut g, &mut owned, &mut at);
        assert_eq!((count(&owned["a"].1), count(&owned["b"].1)), (3, 3));
        let c = join(&mut g, "c", at);
        owned.insert("c".to_string(), (c.member_epoch, TopicPartitions::new()));
        let before_a = owned["a"].1.clone();
        settle(&mut g, &mut owned, &mut at);
        assert!(owned.values().all(|(_, o)| count(o) == 2));
        assert!(intersect(&owned["a"].1, &before_a) == owned["a"].1, "a only gave partitions up");
        assert!(owned.values().all(|(e, _)| *e == g.assignment_epoch));
    }

    #[test]
    fn leaving_fencing_and_expiry() {
        let mut g = ConsumerGroup::new("g", now(0));
        let a = join(&mut g, "a", 0);
        let b = join(&mut g, "b", 0);
        let cfg = GroupConfig::default();
        let stale = Heartbeat {
            member_id: "a".into(),
            member_epoch: a.member_epoch + 5,
            rebalance_timeout_ms: -1,
            ..Default::default()
        };
        assert_eq!(g.heartbeat(stale, &topics, &cfg, now(10)), Err(GroupError::FencedMemberEpoch));
        let unknown = Heartbeat {
            member_id: "zz".into(),
            member_epoch: 3,
            rebalance_timeout_ms: -1,
            ..Default::default()
        };
        assert_eq!(g.heartbeat(unknown, &topics, &cfg, now(10)), Err(GroupError::UnknownMemberId));
        let leave = Heartbeat { member_id: "b".into(), member_epoch: -1, ..Default::default() };
        assert_eq!(g.heartbeat(leave, &topics, &cfg, now(20)).expect("left").member_epoch, -1);
        assert!(!g.members.contains_key(&b.member_id));
        g.tick(now(cfg.consumer_session_timeout_ms + 100));
        assert_eq!(g.state_name(), "Empty");
        assert_eq!(g.validate_offset_commit("", -1), Ok(()));
        let bad = Heartbeat {
            member_id: "x".into(),
            member_epoch: 0,
            rebalance_timeout_ms: 1,
            subscribed_topic_names: Some(vec!["t".into()]),
            server_assignor: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(g.heartbeat(bad, &topics, &cfg, now(0)), Err(GroupError::UnsupportedAssignor));
    }

    #[test]
    fn a_member_that_never_revokes_is_fenced_after_the_rebalance_timeout() {
        let mut g = ConsumerGroup::new("g", now(0));
        let a = join(&mut g, "a", 0);
        let _ = join(&mut g, "b", 0);
        // a is told to revoke but keeps claiming everything.
        let all = a.assignment.expect("full");
        let r = beat(&mut g, "a", a.member_epoch, Some(&all), 100);
        assert_eq!(count(r.assignment.as_ref().expect("changed")), 3);
        assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
        g.tick(now(100 + 30_001));
        assert!(!g.members.contains_key("a"));
        assert_eq!(g.validate_offset_commit("a", 1), Err(GroupError::UnknownMemberId));
    }
}
