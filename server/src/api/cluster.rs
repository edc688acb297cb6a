//! Cluster-level APIs: DescribeCluster (the registered brokers from the applied metadata, fenced
//! ones only when asked for, KIP-1073) and InitProducerId (idempotent producers; transactions
//! are not implemented and are refused clearly).

use super::error::ToKafka;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_quorum_response::{self, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, InitProducerIdRequest, InitProducerIdResponse, ProducerId,
    RemoveRaftVoterRequest, RemoveRaftVoterResponse, TopicName, UnregisterBrokerRequest,
    UnregisterBrokerResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use riptide_model as model;
use riptide_quorum::{AdminCommand, ControllerError};

use super::{Ctx, RequestInfo};

pub fn describe_cluster(
    ctx: &Ctx,
    info: &RequestInfo,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
    let brokers = cat
        .brokers
        .values()
        .filter(|b| !b.fenced || request.include_fenced_brokers)
        .filter_map(|b| {
            let ep = super::metadata::endpoint_for(&b.endpoints, &info.session.listener.name)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(ep.host.clone()))
                    .with_port(i32::from(ep.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
                    .with_is_fenced(b.fenced),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(StrBytes::from_string(ctx.broker.cluster_id.clone()))
        .with_controller_id(BrokerId(super::metadata::controller_id(&cat, ctx.broker.config.node_id)))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN)
}

pub fn init_producer_id(ctx: &Ctx, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .with_ongoing_txn_producer_id(ProducerId(-1))
        .with_ongoing_txn_producer_epoch(-1);
    if request.transactional_id.is_some() {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // KIP-360: a producer that knows its id may ask for an epoch bump instead of a new id.
    let known = (request.producer_id.0 >= 0).then_some(model::ProducerId(request.producer_id.0));
    if let Some((id, epoch)) = known.zip(model::ProducerEpoch(request.producer_epoch).bumped()) {
        return response.with_error_code(0).with_producer_id(ProducerId(id.0)).with_producer_epoch(epoch.0);
    }
    match ctx.broker.next_producer_id() {
        Ok(id) => response.with_error_code(0).with_producer_id(ProducerId(id.0)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!("cannot reserve producer ids: {e}");
            response.with_error_code(ResponseError::KafkaStorageError.code())
        }
    }
}

/// DescribeQuorum (KIP-595/853): the metadata quorum's leader, term, high watermark, voters
/// with their log end offsets, and the brokers as observers with the metadata offset they
/// applied. A broker asks the active controller, as Kafka's brokers forward it.
pub async fn describe_quorum(
    ctx: &Ctx,
    version: i16,
    _request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let q = match ctx.broker.cluster.describe_quorum().await {
        Ok(q) => q,
        Err(e) => {
            return DescribeQuorumResponse::default()
                .with_error_code(e.code())
                .with_error_message((version >= 2).then(|| StrBytes::from_string(e.to_string())));
        }
    };
    let offset = |i: Option<u64>| i.map_or(-1, |i| i as i64);
    let replica = |id: i32, leo: i64| {
        ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_log_end_offset(leo)
            .with_last_fetch_timestamp(-1)
            .with_last_caught_up_timestamp(-1)
    };
    let voter_ids: Vec<i32> = q.voters.iter().map(|v| v.id).collect();
    let voters = q.voters.iter().map(|v| replica(v.id, offset(v.matched))).collect();
    let observers = q
        .observers
        .iter()
        .filter(|(id, _)| !voter_ids.contains(id))
        .map(|(id, applied)| replica(*id, *applied as i64))
        .collect();
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(q.leader.unwrap_or(-1)))
        .with_leader_epoch(q.term as i32)
        .with_high_watermark(q.applied as i64)
        .with_current_voters(voters)
        .with_observers(observers);
    let nodes = if version >= 2 {
        q.voters
            .iter()
            .filter_map(|v| {
                let (host, port) = v.addr.rsplit_once(':')?;
                Some(describe_quorum_response::Node::default().with_node_id(BrokerId(v.id)).with_listeners(
                    vec![describe_quorum_response::Listener::default()
                            .with_name(StrBytes::from_static_str("CONTROLLER"))
                            .with_host(StrBytes::from_string(host.to_string()))
                            .with_port(port.parse().ok()?)],
                ))
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}

fn membership_code(e: &ControllerError) -> (i16, String) {
    (e.code(), e.to_string())
}

/// AddRaftVoter (KIP-853): a controller started with `controller.quorum.bootstrap.servers`
/// joins the quorum as a voter once it has caught up.
pub async fn add_raft_voter(ctx: &Ctx, request: AddRaftVoterRequest) -> AddRaftVoterResponse {
    let Some(l) = request.listeners.first() else {
        return AddRaftVoterResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(StrBytes::from_static_str("a new voter needs a listener")));
    };
    let cmd = AdminCommand::AddVoter { id: request.voter_id.max(0), addr: format!("{}:{}", l.host, l.port) };
    match ctx.broker.cluster.admin(cmd).await {
        Ok(_) => AddRaftVoterResponse::default(),
        Err(e) => {
            let (code, msg) = membership_code(&e);
            AddRaftVoterResponse::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(msg)))
        }
    }
}

/// RemoveRaftVoter (KIP-853).
pub async fn remove_raft_voter(ctx: &Ctx, request: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse {
    let cmd = AdminCommand::RemoveVoter { id: request.voter_id.max(0) };
    match ctx.broker.cluster.admin(cmd).await {
        Ok(_) => RemoveRaftVoterResponse::default(),
        Err(e) => {
            let (code, msg) = membership_code(&e);
            RemoveRaftVoterResponse::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(msg)))
        }
    }
}

/// UnregisterBroker (KIP-500): forgets a broker that is gone for good — after
/// `riptide cluster decommission` drained it and it was stopped.
pub async fn unregister_broker(ctx: &Ctx, request: UnregisterBrokerRequest) -> UnregisterBrokerResponse {
    let (code, message) =
        match ctx.broker.cluster.admin(AdminCommand::UnregisterBroker { id: request.broker_id.0 }).await {
            Ok(_) => return UnregisterBrokerResponse::default(),
            Err(e @ ControllerError::BrokerIdNotRegistered(_)) => {
                (ResponseError::BrokerIdNotRegistered.code(), e.to_string())
            }
            Err(e) => membership_code(&e),
        };
    UnregisterBrokerResponse::default()
        .with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message)))
}
