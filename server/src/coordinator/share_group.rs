//! A share group (KIP-932): members heartbeat with ShareGroupHeartbeat and the coordinator
//! assigns them partitions, where several members may share one partition. Which records each
//! member gets is decided later, at the partition leader (`share_partition`), so an assignment
//! needs no revocation: a member takes its new target on the heartbeat that brings it, and
//! its epoch is the group's.
//!
//! The simple assignor (Kafka's `simple`): per topic, with M subscribers and P partitions,
//! each partition goes to one member while M <= P (spread evenly, the members' order rotating
//! from topic to topic so the remainders don't pile on the first members), and each member
//! gets one partition, partitions shared round-robin, when M > P. Every partition is then
//! read by someone and no member idles while there is a partition.
//!
//! Like `consumer_group`, a pure state machine driven with an explicit [`Now`]. As in Kafka, the
//! group itself outlives a coordinator restart or move (its epoch and the topic-partitions whose
//! share state was initialized are kept in `__consumer_offsets`, by the registry), its members
//! do not: after a coordinator restart they get UNKNOWN_MEMBER_ID and rejoin.

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::TopicPartitions;
use super::consumer_group::TopicLookup;
use super::error::GroupError;
use super::Now;

/// Share-group timings, Kafka's broker defaults (`group.share.*`), possibly overridden per
/// group by the group configs `share.session.timeout.ms` / `share.heartbeat.interval.ms`.
#[derive(Clone, Copy, Debug)]
pub struct ShareTimings {
    pub session_timeout_ms: u64,
    pub heartbeat_interval_ms: i32,
}

impl Default for ShareTimings {
    fn default() -> Self {
        ShareTimings { session_timeout_ms: 45_000, heartbeat_interval_ms: 5_000 }
    }
}

/// A ShareGroupHeartbeat as the state machine sees it.
#[derive(Clone, Debug, Default)]
pub struct ShareHeartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// None = unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareHeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// None = unchanged since the member's last answer.
    pub assignment: Option<TopicPartitions>,
}

#[derive(Clone, Debug)]
pub struct ShareMember {
    pub id: String,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub subscribed: BTreeSet<String>,
    pub assigned: TopicPartitions,
    session_deadline_ms: u64,
}

pub struct ShareGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
    /// What each member gets at `assignment_epoch`; a member takes it on its next heartbeat.
    pub target: BTreeMap<String, TopicPartitions>,
    /// Partition counts of the subscribed topics when the target was last computed.
    partition_counts: BTreeMap<String, i32>,
    pub state_timestamp_ms: i64,
    changed: bool,
    /// The topic-partitions whose share-partitions have state (ever assigned, or given a start
    /// offset by AlterShareGroupOffsets), by topic id with the name: what
    /// DescribeShareGroupOffsets lists when asked for every topic, after a restart too.
    pub initialized: BTreeMap<u128, (String, BTreeSet<i32>)>,
    /// The epoch last queued to `__consumer_offsets`.
    pub persisted_epoch: i32,
    /// The assignment epoch `initialized` was last brought up to.
    noted_epoch: i32,
}

impl ShareGroup {
    pub fn new(id: &str, now: Now) -> ShareGroup {
        ShareGroup {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            partition_counts: BTreeMap::new(),
            state_timestamp_ms: now.wall_ms,
            changed: false,
            initialized: BTreeMap::new(),
            persisted_epoch: 0,
            noted_epoch: -1,
        }
    }

    /// A group read back from `__consumer_offsets`: no members, its epoch as persisted (new
    /// members join at a higher one, so a member of before the restart is fenced).
    pub fn restore(id: &str, epoch: i32, now: Now) -> ShareGroup {
        let mut g = ShareGroup::new(id, now);
        g.group_epoch = epoch;
        g.assignment_epoch = epoch;
        g.persisted_epoch = epoch;
        g
    }

    /// Adds what the current target assigns to `initialized`; `ids` names topics. Returns
    /// whether anything was new.
    pub fn note_assigned(&mut self, ids: &dyn Fn(&str) -> Option<u128>) -> bool {
        // Heartbeats are frequent and targets change only with the assignment epoch.
        if std::mem::replace(&mut self.noted_epoch, self.assignment_epoch) == self.assignment_epoch {
            return false;
        }
        let mut added = false;
        for tps in self.target.values() {
            for (name, partitions) in tps {
                let Some(id) = ids(name) else { continue };
                let entry = self.initialized.entry(id).or_insert_with(|| (name.clone(), BTreeSet::new()));
                for p in partitions {
                    added |= entry.1.insert(*p);
                }
            }
        }
        added
    }

    /// Kafka's share-group states: Empty or Stable (Dead once deleted).
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// Every topic some member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members.values().flat_map(|m| m.subscribed.iter().cloned()).collect()
    }

    pub fn heartbeat(
        &mut self,
        hb: ShareHeartbeat,
        topics: TopicLookup<'_>,
        timings: ShareTimings,
        max_size: usize,
        now: Now,
    ) -> Result<ShareHeartbeatResult, GroupError> {
        if hb.member_epoch == -1 {
            if self.members.remove(&hb.member_id).is_none() {
                return Err(GroupError::UnknownMemberId);
            }
            self.target.remove(&hb.member_id);
            self.changed = true;
            self.settle(Some(topics), now);
            return Ok(ShareHeartbeatResult {
                member_id: hb.member_id,
                member_epoch: -1,
                heartbeat_interval_ms: 0,
                assignment: None,
            });
        }
        let joining = hb.member_epoch == 0;
        let member_id = if joining {
            self.join(&hb, timings, max_size, now)?
        } else {
            let m = self.members.get(&hb.member_id).ok_or(GroupError::UnknownMemberId)?;
            if m.epoch != hb.member_epoch {
                return Err(GroupError::FencedMemberEpoch);
            }
            m.id.clone()
        };
        let m = self.members.get_mut(&member_id).ok_or(GroupError::Unknown)?;
        m.session_deadline_ms = now.mono_ms + timings.session_timeout_ms;
        if let Some(names) = &hb.subscribed_topic_names {
            let set: BTreeSet<String> = names.iter().cloned().collect();
            if set != m.subscribed {
                m.subscribed = set;
                self.changed = true;
            }
        }
        if hb.rack_id.is_some() {
            m.rack_id = hb.rack_id.clone();
        }
        self.settle(Some(topics), now);
        let epoch = self.assignment_epoch;
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        let m = self.members.get_mut(&member_id).ok_or(GroupError::Unknown)?;
        let moved = m.epoch != epoch;
        if moved {
            m.epoch = epoch;
            m.assigned = target;
        }
        Ok(ShareHeartbeatResult {
            member_id: member_id.clone(),
            member_epoch: m.epoch,
            heartbeat_interval_ms: timings.heartbeat_interval_ms,
            assignment: (joining || moved).then(|| m.assigned.clone()),
        })
    }

    fn join(
        &mut self,
        hb: &ShareHeartbeat,
        timings: ShareTimings,
        max_size: usize,
        now: Now,
    ) -> Result<String, GroupError> {
        if hb.subscribed_topic_names.as_ref().is_none_or(Vec::is_empty) {
            return Err(GroupError::InvalidRequest);
        }
        // KIP-1082: the client names itself; an old client leaves it to the coordinator.
        let member_id = if hb.member_id.is_empty() {
            uuid::Uuid::from_u128(crate::catalog::new_topic_id()).to_string()
        } else {
            hb.member_id.clone()
        };
        if self.members.remove(&member_id).is_some() {
            self.changed = true;
        }
        if self.members.len() >= max_size {
            return Err(GroupError::GroupMaxSizeReached);
        }
        self.members.insert(
            member_id.clone(),
            ShareMember {
                id: member_id.clone(),
                rack_id: hb.rack_id.clone(),
                client_id: hb.client_id.clone(),
                client_host: hb.client_host.clone(),
                epoch: 0,
                subscribed: BTreeSet::new(),
                assigned: TopicPartitions::new(),
                session_deadline_ms: now.mono_ms + timings.session_timeout_ms,
            },
        );
        self.changed = true;
        Ok(member_id)
    }

    /// A new group epoch and target for whatever changed (membership, subscriptions,
    /// partition counts); each member moves to it on its next heartbeat.
    /// `topics` refreshes the partition counts (None: keep them, for a timer without the
    /// catalog at hand; the counts then only lose the topics no member subscribes to now).
    fn settle(&mut self, topics: Option<TopicLookup<'_>>, now: Now) {
        let subscribed = self.subscribed_topics();
        let counts: BTreeMap<String, i32> = match topics {
            Some(lookup) => subscribed.into_iter().filter_map(|t| lookup(&t).map(|n| (t, n))).collect(),
            None => {
                let mut kept = self.partition_counts.clone();
                kept.retain(|t, _| subscribed.contains(t));
                kept
            }
        };
        if counts != self.partition_counts {
            self.partition_counts = counts;
            self.changed = true;
        }
        if !std::mem::take(&mut self.changed) {
            return;
        }
        self.group_epoch += 1;
        self.state_timestamp_ms = now.wall_ms;
        let subscriptions: BTreeMap<String, BTreeSet<String>> =
            self.members.values().map(|m| (m.id.clone(), m.subscribed.clone())).collect();
        self.target = simple_assign(&subscriptions, &self.partition_counts);
        self.assignment_epoch = self.group_epoch;
    }

    /// Session expiry: members that stopped heartbeating leave. Returns the ids of those gone.
    pub fn tick(&mut self, now: Now) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline_ms <= now.mono_ms)
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.members.remove(id);
            self.target.remove(id);
            self.changed = true;
        }
        self.settle(None, now);
        gone
    }
}

/// Kafka's simple share assignor (see the module comment).
pub fn simple_assign(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, TopicPartitions> {
    let mut out: BTreeMap<String, TopicPartitions> = BTreeMap::new();
    let mut rotation = 0usize;
    for (topic, &count) in partitions {
        let subscribers: Vec<&String> =
            subscriptions.iter().filter(|(_, ts)| ts.contains(topic)).map(|(m, _)| m).collect();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        let (m, p) = (subscribers.len(), count as usize);
        for i in 0..m.max(p) {
            // M <= P: partition i to member (i + rotation) % M; M > P: member i gets i % P.
            let (member, partition) = if m <= p { ((i + rotation) % m, i) } else { (i, i % p) };
            out.entry(subscribers[member].clone())
                .or_default()
                .entry(topic.clone())
                .or_default()
                .insert(partition as i32);
        }
        rotation += p % m;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(ms: u64) -> Now {
        Now { mono_ms: ms, wall_ms: ms as i64 }
    }

    fn topics(name: &str) -> Option<i32> {
        match name {
            "t" => Some(2),
            "u" => Some(5),
            _ => None,
        }
    }

    fn join(g: &mut ShareGroup, id: &str, subscribed: &[&str], at: u64) -> ShareHeartbeatResult {
        let hb = ShareHeartbeat {
            member_id: id.into(),
            member_epoch: 0,
            subscribed_topic_names: Some(subscribed.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        g.heartbeat(hb, &topics, ShareTimings::default(), 100, now(at)).expect("join")
    }

    fn count(a: &TopicPartitions) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn more_members_than_partitions_share_them() {
        let mut g = ShareGroup::new("g", now(0));
        for id in ["a", "b", "c", "d", "e"] {
            join(&mut g, id, &["t"], 0);
        }
        // 5 members on 2 partitions: everyone works, partition 0 read by 3, partition 1 by 2.
        assert!(g.target.values().all(|a| count(a) == 1));
        let readers = |p: i32| g.target.values().filter(|a| a["t"].contains(&p)).count();
        assert_eq!((readers(0), readers(1)), (3, 2));
        assert_eq!(g.members["e"].epoch, g.group_epoch, "the last to join is up to date");
    }

    #[test]
    fn fewer_members_than_partitions_split_them_evenly() {
        let subs: BTreeMap<String, BTreeSet<String>> = ["a", "b"]
            .iter()
            .map(|m| (m.to_string(), ["t", "u"].iter().map(|s| s.to_string()).collect()))
            .collect();
        let counts = BTreeMap::from([("t".to_string(), 3), ("u".to_string(), 3)]);
        let out = simple_assign(&subs, &counts);
        // 6 partitions over 2 members: the rotation gives each 3, not 4 and 2.
        assert_eq!((count(&out["a"]), count(&out["b"])), (3, 3));
        let all: usize = out.values().map(count).sum();
        assert_eq!(all, 6, "every partition once");
    }

    #[test]
    fn epochs_fencing_leaving_and_expiry() {
        let mut g = ShareGroup::new("g", now(0));
        let a = join(&mut g, "a", &["t"], 0);
        assert_eq!((a.member_epoch, count(a.assignment.as_ref().expect("full"))), (1, 2));
        let b = join(&mut g, "b", &["t"], 10);
        assert_eq!(b.member_epoch, 2);
        // a learns its new assignment (one partition) on its next heartbeat, at the new epoch.
        let hb = |id: &str, epoch| ShareHeartbeat {
            member_id: id.into(),
            member_epoch: epoch,
            ..Default::default()
        };
        let cfg = ShareTimings::default();
        assert_eq!(g.heartbeat(hb("a", 5), &topics, cfg, 100, now(20)), Err(GroupError::FencedMemberEpoch));
        let r = g.heartbeat(hb("a", 1), &topics, cfg, 100, now(20)).expect("beat");
        assert_eq!((r.member_epoch, r.assignment.as_ref().map(count)), (2, Some(1)));
        let r = g.heartbeat(hb("a", 2), &topics, cfg, 100, now(25)).expect("beat");
        assert_eq!(r.assignment, None, "unchanged since the epoch it holds");
        assert_eq!(g.heartbeat(hb("zz", 3), &topics, cfg, 100, now(20)), Err(GroupError::UnknownMemberId));
        let left = g.heartbeat(hb("b", -1), &topics, cfg, 100, now(30)).expect("leave");
        assert_eq!(left.member_epoch, -1);
        let r = g.heartbeat(hb("a", 2), &topics, cfg, 100, now(40)).expect("beat");
        assert_eq!(r.assignment.as_ref().map(count), Some(2), "a takes both back");
        assert_eq!(g.tick(now(40 + cfg.session_timeout_ms)), vec!["a".to_string()]);
        assert_eq!(g.state_name(), "Empty");
        let empty =
            ShareHeartbeat { member_epoch: 0, subscribed_topic_names: Some(vec![]), ..Default::default() };
        assert_eq!(g.heartbeat(empty, &topics, cfg, 100, now(0)), Err(GroupError::InvalidRequest));
    }
}
