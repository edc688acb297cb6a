//! The simulated active controller: the metadata log and image, broker sessions in virtual
//! time, and the real controller's decisions (`riptide_quorum::controller::rules`) for
//! registration, fencing, unfencing and ISR changes. The Raft quorum behind it is not
//! simulated here (it has its own tests): the log is one reliable sequence, reached only over
//! the simulated network.

use std::collections::BTreeMap;

use riptide_quorum::controller::rules;
use riptide_quorum::{MetadataImage, MetadataRecord, NodeId, PartitionState, TopicRecord};

use super::net::{Msg, Node};

pub const TOPIC: &str = "t";
/// `broker.session.timeout.ms` in the simulation.
pub const SESSION_TIMEOUT_MS: u64 = 900;
pub const DUTY_TICK_MS: u64 = 100;
/// Preferred-leader elections, as the real controller's duty does them (every 50 ticks).
const PREFERRED_LEADER_TICKS: u64 = 50;
/// Entries per metadata answer.
const FETCH_BATCH: usize = 64;

pub struct Controller {
    pub image: MetadataImage,
    log: Vec<Vec<MetadataRecord>>,
    last_seen: BTreeMap<NodeId, u64>,
    replicas: Vec<NodeId>,
    min_insync: usize,
    durability: &'static str,
    ticks: u64,
}

impl Controller {
    pub fn new(replicas: Vec<NodeId>, min_insync: usize, durability: &'static str) -> Controller {
        let mut c = Controller {
            image: MetadataImage::default(),
            log: Vec::new(),
            last_seen: BTreeMap::new(),
            replicas,
            min_insync,
            durability,
            ticks: 0,
        };
        c.propose(vec![MetadataRecord::ClusterId { id: "sim".into() }]);
        c
    }

    fn propose(&mut self, records: Vec<MetadataRecord>) {
        let index = self.log.len() as u64 + 1;
        self.image.apply(index, &records, &mut Vec::new());
        self.log.push(records);
    }

    fn session_alive(&self, id: NodeId, now: u64) -> bool {
        self.last_seen.get(&id).is_some_and(|t| now < t + SESSION_TIMEOUT_MS)
    }

    /// A request from broker `from`; the answer, if any.
    pub fn handle(&mut self, from: Node, msg: Msg, now: u64) -> Option<Msg> {
        match msg {
            Msg::Register { incarnation } => {
                let alive = self.session_alive(from, now);
                Some(Msg::Registered(
                    match rules::register(&self.image, from, incarnation, Vec::new(), None, alive) {
                        Ok(records) => {
                            self.propose(records);
                            self.last_seen.insert(from, now);
                            Ok(self.log.len() as i64)
                        }
                        Err(e) => Err(e.to_string()),
                    },
                ))
            }
            Msg::Heartbeat { epoch, applied } => {
                if self.image.brokers.get(&from).is_none_or(|b| b.epoch != epoch) {
                    return Some(Msg::HeartbeatStale);
                }
                self.last_seen.insert(from, now);
                if let Some(records) = rules::unfence(&self.image, from, epoch, applied) {
                    self.propose(records);
                }
                None
            }
            Msg::MetadataFetch { after } => {
                let first = after as usize;
                let entries: Vec<_> = self.log.iter().skip(first).take(FETCH_BATCH).cloned().collect();
                Some(Msg::Metadata { first: after + 1, entries })
            }
            Msg::AlterIsr { id, broker_epoch, change } => {
                let current = self.image.brokers.get(&from).is_some_and(|b| b.epoch == broker_epoch);
                let checked = current.then(|| rules::check_alter_partition(&self.image, from, &change));
                let ok = match checked {
                    Some(Ok(record)) => {
                        self.propose(vec![record]);
                        true
                    }
                    _ => false,
                };
                Some(Msg::AlterIsrReply { id, ok })
            }
            _ => None,
        }
    }

    /// The periodic duties: fence expired sessions, create the topic once every replica is
    /// live, move leadership back to preferred replicas now and then.
    pub fn duty(&mut self, now: u64) {
        self.ticks += 1;
        let expired: Vec<(NodeId, i64)> = self
            .image
            .brokers
            .values()
            .filter(|b| !b.fenced && !self.session_alive(b.id, now))
            .map(|b| (b.id, b.epoch))
            .collect();
        for (id, epoch) in expired {
            if let Some(records) = rules::fence(&self.image, id, epoch, false) {
                self.propose(records);
            }
        }
        if self.image.topic(TOPIC).is_none() && self.replicas.iter().all(|r| self.image.is_live(*r)) {
            let configs = [
                ("min.insync.replicas".to_string(), self.min_insync.to_string()),
                ("durability.policy".to_string(), self.durability.to_string()),
            ];
            self.propose(vec![MetadataRecord::CreateTopic(TopicRecord {
                name: TOPIC.into(),
                id: 0x5151,
                partitions: vec![PartitionState::new(self.replicas.clone())],
                configs: configs.into_iter().collect(),
                internal: false,
            })]);
        }
        if self.ticks.is_multiple_of(PREFERRED_LEADER_TICKS) {
            let moves = self.image.preferred_leader_changes();
            if !moves.is_empty() {
                self.propose(moves);
            }
        }
    }

    pub fn partition(&self) -> Option<&PartitionState> {
        self.image.partition(TOPIC, 0)
    }

    pub fn entries(&self) -> u64 {
        self.log.len() as u64
    }
}
