//! Kafka's partition-moving APIs, forwarded to the active controller as Kafka's brokers do:
//! AlterPartitionReassignments (start, replace or cancel moves), ListPartitionReassignments
//! (answered from this broker's applied metadata) and ElectLeaders (preferred or unclean).

use super::error::ToKafka;
use std::collections::BTreeMap;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId, ElectLeadersRequest,
    ElectLeadersResponse, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use riptide_model::TopicPartition;
use riptide_quorum::{AdminCommand, ControllerError};

use super::Ctx;

fn message(e: &ControllerError) -> Option<StrBytes> {
    Some(StrBytes::from_string(e.to_string()))
}

pub async fn alter(
    ctx: &Ctx,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let mut asked = Vec::new();
    // Refused here, before the controller: a replication factor change the client ruled out.
    let mut refused: BTreeMap<TopicPartition, ControllerError> = BTreeMap::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        for p in &t.partitions {
            let target: Option<Vec<i32>> = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            if let (false, Some(target)) = (request.allow_replication_factor_change, &target) {
                let current =
                    ctx.broker.topic(&name).and_then(|m| m.state(p.partition_index).map(|s| s.original()));
                if current.is_some_and(|c| c.len() != target.len()) {
                    let e = ControllerError::InvalidReplicationFactor(format!(
                        "{name}-{}: the reassignment changes the replication factor",
                        p.partition_index
                    ));
                    refused.insert(TopicPartition::new(name.as_str(), p.partition_index), e);
                    continue;
                }
            }
            asked.push((TopicPartition::new(name.as_str(), p.partition_index), target));
        }
    }
    let verdicts: BTreeMap<TopicPartition, Result<(), ControllerError>> = if asked.is_empty() {
        BTreeMap::new()
    } else {
        match ctx.broker.cluster.admin(AdminCommand::Reassign { partitions: asked }).await {
            Ok(reply) => reply.partitions.into_iter().collect(),
            Err(e) => {
                return AlterPartitionReassignmentsResponse::default()
                    .with_allow_replication_factor_change(request.allow_replication_factor_change)
                    .with_error_code(e.code())
                    .with_error_message(message(&e));
            }
        }
    };
    let responses = request
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let key = TopicPartition::new(name.as_str(), p.partition_index);
                    let verdict =
                        refused.get(&key).map(|e| Err(e.clone())).or_else(|| verdicts.get(&key).cloned());
                    let r = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
                    match verdict {
                        Some(Err(e)) => r.with_error_code(e.code()).with_error_message(message(&e)),
                        _ => r,
                    }
                })
                .collect();
            ReassignableTopicResponse::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(request.allow_replication_factor_change)
        .with_responses(responses)
}

pub fn list(ctx: &Ctx, request: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
    let wanted: Option<BTreeMap<String, Vec<i32>>> = request
        .topics
        .map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let mut topics = Vec::new();
    for t in cat.all() {
        let filter = match &wanted {
            Some(w) => match w.get(&t.name) {
                Some(parts) => Some(parts),
                None => continue,
            },
            None => None,
        };
        let partitions: Vec<OngoingPartitionReassignment> = t
            .states
            .iter()
            .enumerate()
            .filter(|(i, s)| s.is_reassigning() && filter.is_none_or(|f| f.contains(&(*i as i32))))
            .map(|(i, s)| {
                OngoingPartitionReassignment::default()
                    .with_partition_index(i as i32)
                    .with_replicas(ids(&s.replicas))
                    .with_adding_replicas(ids(&s.adding))
                    .with_removing_replicas(ids(&s.removing))
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

pub async fn elect_leaders(ctx: &Ctx, version: i16, request: ElectLeadersRequest) -> ElectLeadersResponse {
    // v0 has no election type: preferred.
    let unclean = version >= 1 && request.election_type == 1;
    if version >= 1 && !(0..=1).contains(&request.election_type) {
        return ElectLeadersResponse::default().with_error_code(ResponseError::InvalidRequest.code());
    }
    let partitions: Option<Vec<TopicPartition>> = request.topic_partitions.map(|ts| {
        ts.into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| TopicPartition::new(name.as_str(), p))
            })
            .collect()
    });
    let reply = match ctx.broker.cluster.admin(AdminCommand::ElectLeaders { unclean, partitions }).await {
        Ok(r) => r,
        Err(e) => {
            return ElectLeadersResponse::default().with_error_code(e.code());
        }
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (tp, verdict) in reply.partitions {
        let r = PartitionResult::default().with_partition_id(tp.partition);
        let r = match verdict {
            Ok(()) => r,
            Err(e) => r.with_error_code(e.code()).with_error_message(message(&e)),
        };
        by_topic.entry(tp.topic).or_default().push(r);
    }
    let results = by_topic
        .into_iter()
        .map(|(topic, partition_result)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}
