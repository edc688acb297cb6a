//! The metadata image: the state reached by applying the log's records in order. Every
//! controller holds one in its state machine and every broker builds its own from the records
//! it fetches; `apply` is deterministic, so all of them agree at the same log index.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::records::{
    AclBinding, ApplyError, Endpoint, MetadataRecord, NodeId, PartitionState, ScramCredential, TopicRecord,
    NO_LEADER,
};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrokerState {
    pub id: NodeId,
    pub incarnation: u128,
    /// The log index of the registration: requests carrying another epoch are stale.
    pub epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

/// What one applied batch changed, for a broker to act on (open, reconfigure, delete logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    TopicCreated(String),
    /// `id` tells this topic from a later one of the same name (a broker that applies a
    /// deletion late must not delete its successor's logs).
    TopicDeleted {
        name: String,
        id: u128,
        partitions: i32,
    },
    PartitionsAdded(String),
    TopicConfigsChanged(String),
    LeaderChanged {
        topic: String,
        partition: i32,
    },
    BrokersChanged,
    /// Dynamic broker configs changed (the topics' defaults may have).
    BrokerConfigsChanged,
    /// SCRAM credentials or ACLs changed.
    SecurityChanged,
    ClientQuotasChanged,
    ClientMetricsChanged,
    /// A group's dynamic configs changed.
    GroupConfigsChanged,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MetadataImage {
    /// The log index of the last applied entry (0: nothing yet).
    pub applied: u64,
    pub cluster_id: Option<String>,
    pub brokers: BTreeMap<NodeId, BrokerState>,
    pub topics: BTreeMap<String, TopicRecord>,
    /// Brokers being decommissioned: the balancer moves their replicas away.
    #[serde(default)]
    pub draining: BTreeSet<NodeId>,
    /// SCRAM credentials by user, then mechanism code.
    #[serde(default)]
    pub scram: BTreeMap<String, BTreeMap<i8, ScramCredential>>,
    #[serde(default)]
    pub acls: BTreeSet<AclBinding>,
    /// Dynamic broker configs by broker id; `CLUSTER_DEFAULT` holds the cluster-wide ones.
    #[serde(default)]
    pub broker_configs: BTreeMap<NodeId, BTreeMap<String, String>>,
    /// Client quotas, sorted by entity (JSON map keys must be strings, so not a map).
    #[serde(default)]
    pub client_quotas: Vec<crate::records::ClientQuotas>,
    /// Client-metrics subscriptions (KIP-714) by name.
    #[serde(default)]
    pub client_metrics: BTreeMap<String, BTreeMap<String, String>>,
    /// Groups' dynamic configs (the GROUP config resource) by group id.
    #[serde(default)]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicRecord> {
        self.topics.get(name)
    }

    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerState> {
        self.brokers.values().filter(|b| !b.fenced && !b.in_controlled_shutdown)
    }

    /// Live brokers that may take new replicas (not being decommissioned).
    pub fn placeable_brokers(&self) -> impl Iterator<Item = &BrokerState> {
        self.live_brokers().filter(|b| !self.draining.contains(&b.id))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics.get(topic)?.partitions.get(usize::try_from(partition).ok()?)
    }

    /// Applies one entry's batch at log index `index`; a record that cannot apply changes
    /// nothing and reports why, the others still apply.
    pub fn apply(
        &mut self,
        index: u64,
        records: &[MetadataRecord],
        changes: &mut Vec<Change>,
    ) -> Vec<Result<(), ApplyError>> {
        assert!(index > self.applied || index == 0, "index {index} applied twice (at {})", self.applied);
        let results = records.iter().map(|r| self.apply_one(index, r, changes)).collect();
        self.applied = self.applied.max(index);
        results
    }

    /// Advances the applied index over an entry without records (Raft blank or membership).
    pub fn skip(&mut self, index: u64) {
        self.applied = self.applied.max(index);
    }

    fn apply_one(
        &mut self,
        index: u64,
        record: &MetadataRecord,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::ClusterId { id } => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(id.clone());
                }
                Ok(())
            }
            MetadataRecord::RegisterBroker { id, incarnation, endpoints, rack } => {
                self.brokers.insert(
                    *id,
                    BrokerState {
                        id: *id,
                        incarnation: *incarnation,
                        epoch: index as i64,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: true,
                        in_controlled_shutdown: false,
                    },
                );
                changes.push(Change::BrokersChanged);
                Ok(())
            }
            MetadataRecord::FenceBroker { id, epoch, controlled_shutdown } => {
                let b = self.broker_at(*id, *epoch)?;
                b.fenced = true;
                b.in_controlled_shutdown = *controlled_shutdown;
                changes.push(Change::BrokersChanged);
                Ok(())
            }
            MetadataRecord::UnfenceBroker { id, epoch } => {
                let b = self.broker_at(*id, *epoch)?;
                b.fenced = false;
                b.in_controlled_shutdown = false;
                changes.push(Change::BrokersChanged);
                Ok(())
            }
            MetadataRecord::UnregisterBroker { id } => {
                self.brokers.remove(id).ok_or(ApplyError::UnknownBroker(*id))?;
                self.draining.remove(id);
                changes.push(Change::BrokersChanged);
                Ok(())
            }
            MetadataRecord::CreateTopic(t) => {
                if self.topics.contains_key(&t.name) {
                    return Err(ApplyError::TopicExists(t.name.clone()));
                }
                self.topics.insert(t.name.clone(), t.clone());
                changes.push(Change::TopicCreated(t.name.clone()));
                Ok(())
            }
            MetadataRecord::CreatePartitions { topic, added } => {
                let t = self.topics.get_mut(topic).ok_or_else(|| ApplyError::UnknownTopic(topic.clone()))?;
                if added.is_empty() {
                    return Err(ApplyError::InvalidPartitions("no partitions added".into()));
                }
                t.partitions.extend(added.iter().cloned());
                changes.push(Change::PartitionsAdded(topic.clone()));
                Ok(())
            }
            MetadataRecord::DeleteTopic { name, id } => match self.topics.get(name) {
                Some(t) if t.id == *id => {
                    let partitions = t.partitions.len() as i32;
                    self.topics.remove(name);
                    changes.push(Change::TopicDeleted { name: name.clone(), id: *id, partitions });
                    Ok(())
                }
                _ => Err(ApplyError::UnknownTopic(name.clone())),
            },
            MetadataRecord::SetTopicConfigs { topic, configs } => {
                let t = self.topics.get_mut(topic).ok_or_else(|| ApplyError::UnknownTopic(topic.clone()))?;
                t.configs = configs.clone();
                changes.push(Change::TopicConfigsChanged(topic.clone()));
                Ok(())
            }
            MetadataRecord::PartitionChange { topic, partition, leader, isr } => {
                let t = self.topics.get_mut(topic).ok_or_else(|| ApplyError::UnknownTopic(topic.clone()))?;
                let p = usize::try_from(*partition).ok().and_then(|i| t.partitions.get_mut(i)).ok_or_else(
                    || ApplyError::InvalidPartitions(format!("{topic}-{partition} does not exist")),
                )?;
                sound_assignment(&p.replicas, &p.adding, &p.removing, *leader, isr)
                    .map_err(|e| ApplyError::InvalidPartitions(format!("{topic}-{partition}: {e}")))?;
                let before = (p.leader_epoch, p.partition_epoch);
                if p.leader != *leader {
                    p.leader_epoch = p.leader_epoch.next();
                }
                p.leader = *leader;
                p.isr = isr.clone();
                p.partition_epoch += 1;
                debug_assert!((p.leader_epoch, p.partition_epoch) > before, "epochs only move forward");
                changes.push(Change::LeaderChanged { topic: topic.clone(), partition: *partition });
                Ok(())
            }
            MetadataRecord::ReassignPartition {
                topic,
                partition,
                replicas,
                adding,
                removing,
                leader,
                isr,
            } => {
                let t = self.topics.get_mut(topic).ok_or_else(|| ApplyError::UnknownTopic(topic.clone()))?;
                let p = usize::try_from(*partition).ok().and_then(|i| t.partitions.get_mut(i)).ok_or_else(
                    || ApplyError::InvalidPartitions(format!("{topic}-{partition} does not exist")),
                )?;
                sound_assignment(replicas, adding, removing, *leader, isr)
                    .map_err(|e| ApplyError::InvalidPartitions(format!("{topic}-{partition}: {e}")))?;
                if p.leader != *leader {
                    p.leader_epoch = p.leader_epoch.next();
                }
                p.replicas = replicas.clone();
                p.adding = adding.clone();
                p.removing = removing.clone();
                p.leader = *leader;
                p.isr = isr.clone();
                p.partition_epoch += 1;
                changes.push(Change::LeaderChanged { topic: topic.clone(), partition: *partition });
                Ok(())
            }
            MetadataRecord::SetScramCredential { user, mechanism, credential } => {
                self.scram.entry(user.clone()).or_default().insert(*mechanism, credential.clone());
                changes.push(Change::SecurityChanged);
                Ok(())
            }
            MetadataRecord::DeleteScramCredential { user, mechanism } => {
                if let Some(m) = self.scram.get_mut(user) {
                    m.remove(mechanism);
                    if m.is_empty() {
                        self.scram.remove(user);
                    }
                }
                changes.push(Change::SecurityChanged);
                Ok(())
            }
            MetadataRecord::CreateAcl(acl) => {
                self.acls.insert(acl.clone());
                changes.push(Change::SecurityChanged);
                Ok(())
            }
            MetadataRecord::DeleteAcl(acl) => {
                self.acls.remove(acl);
                changes.push(Change::SecurityChanged);
                Ok(())
            }
            MetadataRecord::SetBrokerConfigs { broker, configs } => {
                if *broker != crate::records::CLUSTER_DEFAULT && !self.brokers.contains_key(broker) {
                    return Err(ApplyError::UnknownBroker(*broker));
                }
                if configs.is_empty() {
                    self.broker_configs.remove(broker);
                } else {
                    self.broker_configs.insert(*broker, configs.clone());
                }
                changes.push(Change::BrokerConfigsChanged);
                Ok(())
            }
            MetadataRecord::SetClientQuotas { entity, quotas } => {
                let at = self.client_quotas.binary_search_by(|q| q.entity.cmp(entity));
                match (at, quotas.is_empty()) {
                    (Ok(i), true) => {
                        self.client_quotas.remove(i);
                    }
                    (Ok(i), false) => self.client_quotas[i].quotas = quotas.clone(),
                    (Err(_), true) => {}
                    (Err(i), false) => self.client_quotas.insert(
                        i,
                        crate::records::ClientQuotas { entity: entity.clone(), quotas: quotas.clone() },
                    ),
                }
                changes.push(Change::ClientQuotasChanged);
                Ok(())
            }
            MetadataRecord::SetClientMetrics { name, configs } => {
                if configs.is_empty() {
                    self.client_metrics.remove(name);
                } else {
                    self.client_metrics.insert(name.clone(), configs.clone());
                }
                changes.push(Change::ClientMetricsChanged);
                Ok(())
            }
            MetadataRecord::SetGroupConfigs { group, configs } => {
                if configs.is_empty() {
                    self.group_configs.remove(group);
                } else {
                    self.group_configs.insert(group.clone(), configs.clone());
                }
                changes.push(Change::GroupConfigsChanged);
                Ok(())
            }
            MetadataRecord::DecommissionBroker { id, draining } => {
                if !self.brokers.contains_key(id) {
                    return Err(ApplyError::UnknownBroker(*id));
                }
                if *draining {
                    self.draining.insert(*id);
                } else {
                    self.draining.remove(id);
                }
                changes.push(Change::BrokersChanged);
                Ok(())
            }
        }
    }

    fn broker_at(&mut self, id: NodeId, epoch: i64) -> Result<&mut BrokerState, ApplyError> {
        match self.brokers.get_mut(&id) {
            Some(b) if b.epoch == epoch => Ok(b),
            Some(_) => Err(ApplyError::StaleBrokerEpoch { id, epoch }),
            None => Err(ApplyError::UnknownBroker(id)),
        }
    }

    /// True when `id` may lead and be in an ISR: registered, unfenced, not shutting down.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
    }

    /// The leader and ISR a partition should have now (Kafka's KRaft rules): brokers that are
    /// gone (fenced, shutting down, or `excluding`) leave the ISR, except the last member, which
    /// stays so that it can lead again when it returns (no data is given up); a live leader
    /// stays; otherwise the first live replica of the ISR leads; with `unclean` and no such
    /// replica, the first live replica leads alone (what it lacks is lost, as the operator
    /// chose).
    pub fn elect_with_isr(
        &self,
        p: &PartitionState,
        excluding: Option<NodeId>,
        unclean: bool,
    ) -> (NodeId, Vec<NodeId>) {
        let live = |id: NodeId| Some(id) != excluding && self.is_live(id);
        let mut isr: Vec<NodeId> = p.isr.iter().copied().filter(|r| live(*r)).collect();
        if isr.is_empty() {
            let last =
                if p.leader != NO_LEADER { p.leader } else { p.isr.first().copied().unwrap_or(NO_LEADER) };
            isr = if last == NO_LEADER { p.isr.clone() } else { vec![last] };
        }
        if p.leader != NO_LEADER && live(p.leader) && isr.contains(&p.leader) {
            return (p.leader, isr);
        }
        if let Some(r) = p.replicas.iter().copied().find(|r| isr.contains(r) && live(*r)) {
            return (r, isr);
        }
        if unclean {
            if let Some(r) = p.replicas.iter().copied().find(|r| live(*r)) {
                return (r, vec![r]);
            }
        }
        (NO_LEADER, isr)
    }

    /// The leader a partition should have now (see `elect_with_isr`), clean elections only.
    pub fn elect(&self, p: &PartitionState, excluding: Option<NodeId>) -> NodeId {
        self.elect_with_isr(p, excluding, false).0
    }

    /// Partition changes that bring every partition's leader and ISR in line with
    /// `elect_with_isr` (after a broker was fenced, unfenced or is shutting down).
    pub fn leader_changes(&self, excluding: Option<NodeId>) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for t in self.topics.values() {
            let unclean = t.configs.get("unclean.leader.election.enable").is_some_and(|v| v == "true");
            for (i, p) in t.partitions.iter().enumerate() {
                let (leader, isr) = self.elect_with_isr(p, excluding, unclean);
                if leader != p.leader || isr != p.isr {
                    out.push(MetadataRecord::PartitionChange {
                        topic: t.name.clone(),
                        partition: i as i32,
                        leader,
                        isr,
                    });
                }
            }
        }
        out
    }

    /// Leadership back to each partition's preferred replica (the first) where it is live and
    /// in the ISR: Kafka's `auto.leader.rebalance.enable`.
    pub fn preferred_leader_changes(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for t in self.topics.values() {
            for (i, p) in t.partitions.iter().enumerate() {
                let Some(&preferred) = p.replicas.first() else { continue };
                if p.leader != preferred && p.isr.contains(&preferred) && self.is_live(preferred) {
                    out.push(MetadataRecord::PartitionChange {
                        topic: t.name.clone(),
                        partition: i as i32,
                        leader: preferred,
                        isr: p.isr.clone(),
                    });
                }
            }
        }
        out
    }
}

/// A partition's placement as every record that sets it must leave it: distinct replicas,
/// the ones being added or removed and the ISR among them, and a leader (if any) that is a
/// replica in the ISR. A record that breaks this was written by a bug; it is refused, the
/// same way on every node, rather than applied.
fn sound_assignment(
    replicas: &[NodeId],
    adding: &[NodeId],
    removing: &[NodeId],
    leader: NodeId,
    isr: &[NodeId],
) -> Result<(), String> {
    let distinct: BTreeSet<_> = replicas.iter().collect();
    let sound = !replicas.is_empty()
        && distinct.len() == replicas.len()
        && adding.iter().chain(removing).chain(isr).all(|r| replicas.contains(r))
        && (leader == NO_LEADER || isr.contains(&leader));
    if sound {
        Ok(())
    } else {
        Err(format!(
            "unsound assignment {replicas:?} (adding {adding:?}, removing {removing:?}, ISR {isr:?}, leader {leader})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::LeaderEpoch;

    fn register(img: &mut MetadataImage, index: u64, id: NodeId) {
        let r = MetadataRecord::RegisterBroker { id, incarnation: 1, endpoints: vec![], rack: None };
        assert_eq!(img.apply(index, &[r], &mut Vec::new()), vec![Ok(())]);
    }

    #[test]
    fn fencing_moves_leadership_off_and_back() {
        let mut img = MetadataImage::default();
        register(&mut img, 1, 1);
        register(&mut img, 2, 2);
        for (i, id) in [(3, 1), (4, 2)] {
            img.apply(i, &[MetadataRecord::UnfenceBroker { id, epoch: i as i64 - 2 }], &mut Vec::new());
        }
        let t = TopicRecord {
            name: "t".into(),
            id: 9,
            partitions: vec![PartitionState::new(vec![1]), PartitionState::new(vec![2])],
            configs: BTreeMap::new(),
            internal: false,
        };
        img.apply(5, &[MetadataRecord::CreateTopic(t.clone())], &mut Vec::new());
        assert_eq!(
            img.apply(6, &[MetadataRecord::CreateTopic(t)], &mut Vec::new()),
            vec![Err(ApplyError::TopicExists("t".into()))]
        );
        img.apply(
            7,
            &[MetadataRecord::FenceBroker { id: 1, epoch: 1, controlled_shutdown: false }],
            &mut Vec::new(),
        );
        let changes = img.leader_changes(None);
        assert_eq!(changes.len(), 1);
        img.apply(8, &changes, &mut Vec::new());
        let p0 = &img.topics["t"].partitions[0];
        assert_eq!((p0.leader, p0.leader_epoch, p0.isr.clone()), (NO_LEADER, LeaderEpoch(1), vec![1]));
        // A stale epoch does not unfence.
        let stale = img.apply(9, &[MetadataRecord::UnfenceBroker { id: 1, epoch: 99 }], &mut Vec::new());
        assert!(stale[0].is_err());
        img.apply(10, &[MetadataRecord::UnfenceBroker { id: 1, epoch: 1 }], &mut Vec::new());
        let back = img.leader_changes(None);
        img.apply(11, &back, &mut Vec::new());
        let p0 = &img.topics["t"].partitions[0];
        assert_eq!((p0.leader, p0.leader_epoch), (1, LeaderEpoch(2)));
        assert_eq!(img.applied, 11);
    }

    #[test]
    fn an_unsound_partition_change_is_refused_and_changes_nothing() {
        let mut img = MetadataImage::default();
        let t = TopicRecord {
            name: "t".into(),
            id: 9,
            partitions: vec![PartitionState::new(vec![1, 2, 3])],
            configs: BTreeMap::new(),
            internal: false,
        };
        img.apply(1, &[MetadataRecord::CreateTopic(t)], &mut Vec::new());
        let before = img.topics["t"].partitions[0].clone();
        let change = |leader, isr: &[NodeId]| MetadataRecord::PartitionChange {
            topic: "t".into(),
            partition: 0,
            leader,
            isr: isr.to_vec(),
        };
        // A leader outside the ISR, an ISR member that is no replica.
        for (i, bad) in [change(1, &[2, 3]), change(2, &[2, 4])].into_iter().enumerate() {
            let r = img.apply(2 + i as u64, &[bad], &mut Vec::new());
            assert!(matches!(r[0], Err(ApplyError::InvalidPartitions(_))), "{r:?}");
            assert_eq!(img.topics["t"].partitions[0], before);
        }
        assert_eq!(img.apply(4, &[change(2, &[2, 3])], &mut Vec::new()), vec![Ok(())]);
        let p = &img.topics["t"].partitions[0];
        assert_eq!(
            (p.leader, p.leader_epoch, p.partition_epoch),
            (2, before.leader_epoch.next(), before.partition_epoch + 1)
        );
    }
}
