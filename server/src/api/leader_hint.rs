//! Leader hints (KIP-951): a Produce or Fetch refused with NOT_LEADER_OR_FOLLOWER (or, for
//! Fetch, FENCED_LEADER_EPOCH) carries the partition's current leader and leader epoch from
//! this broker's applied metadata, and Produce v10+ also the leaders' endpoints, so a client
//! moves to the new leader without a full metadata refresh. Fetch carries the leader from v12
//! (KIP-595's CurrentLeader tag) and the leaders' endpoints from v16.
//!
//! A hint is only a hint: it is never this broker (a role lag would send the client straight
//! back), and a partition without a live leader gets none.

use kafka_protocol::messages::produce_response::NodeEndpoint;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use riptide_model::{LeaderEpoch, NodeId};

use crate::broker::Broker;

/// A partition's current leader as this broker's metadata has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrentLeader {
    pub leader: NodeId,
    pub epoch: LeaderEpoch,
}

/// Whether a partition refused with `code` should carry a hint.
pub fn wants_hint(code: i16) -> bool {
    code == ResponseError::NotLeaderOrFollower.code() || code == ResponseError::FencedLeaderEpoch.code()
}

/// The partition's leader if it has one and it is another broker.
pub fn current_leader(broker: &Broker, topic: &str, partition: i32) -> Option<CurrentLeader> {
    let meta = broker.topic(topic)?;
    let state = meta.state(partition)?;
    (state.leader >= 0 && state.leader != broker.config.node_id)
        .then_some(CurrentLeader { leader: state.leader, epoch: state.leader_epoch })
}

/// The endpoints of `leaders` on the client's listener (each once, in id order), for
/// ProduceResponse's NodeEndpoints; a leader no longer registered is left out.
pub fn endpoints(broker: &Broker, listener: &str, leaders: &[NodeId]) -> Vec<NodeEndpoint> {
    let mut ids = leaders.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let cat = broker.catalog.read().unwrap_or_else(|e| e.into_inner());
    ids.iter()
        .filter_map(|id| {
            let b = cat.brokers.get(id)?;
            let ep = super::metadata::endpoint_for(&b.endpoints, listener)?;
            Some(
                NodeEndpoint::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(ep.host.clone()))
                    .with_port(i32::from(ep.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect()
}
