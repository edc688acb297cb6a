//! OffsetForLeaderEpoch (KIP-101, KIP-320): for each partition, the end offset of the largest
//! leader epoch at or below the one asked, from the leader's epoch cache. Consumers use it to
//! detect that the log they read was truncated after a leader change; the answer is the
//! leader's, so a follower or a stale leader answers NOT_LEADER_OR_FOLLOWER or
//! FENCED_LEADER_EPOCH.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::error::partition_code;
use super::{Ctx, RequestInfo};
use crate::partition::{LeaderEpoch, PartitionError};
use crate::security::acl::{op, resource};
use crate::shard::mailbox::EpochEndCall;
use crate::shard::router::route_epoch_end;

pub async fn handle(
    ctx: &Ctx,
    info: &RequestInfo,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut calls = Vec::new();
    // A follower needs CLUSTER_ACTION, a consumer DESCRIBE on the topic.
    let follower = request.replica_id.0 >= 0;
    let cluster_ok = !follower || ctx.allowed_on_cluster(info, op::CLUSTER_ACTION);
    let known: Vec<Result<(), PartitionError>> = request
        .topics
        .iter()
        .map(|t| {
            let name = t.topic.0.as_str();
            if !cluster_ok || (!follower && !ctx.allowed(info, op::DESCRIBE, resource::TOPIC, name)) {
                Err(PartitionError::TopicAuthorizationFailed)
            } else if ctx.broker.topic(name).is_none() {
                Err(PartitionError::UnknownTopicOrPartition)
            } else {
                Ok(())
            }
        })
        .collect();
    for (t, known) in request.topics.iter().zip(&known) {
        let name: Arc<str> = Arc::from(t.topic.0.as_str());
        for p in t.partitions.iter().filter(|_| known.is_ok()) {
            calls.push(EpochEndCall {
                topic: name.clone(),
                partition: p.partition,
                current_leader_epoch: LeaderEpoch(p.current_leader_epoch),
                epoch: LeaderEpoch(p.leader_epoch),
            });
        }
    }
    let mut outcomes = route_epoch_end(&ctx.shard, calls).await.into_iter();
    let topics = request
        .topics
        .iter()
        .zip(&known)
        .map(|(t, known)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let outcome = match known {
                        Ok(()) => outcomes.next().unwrap_or(Err(PartitionError::NotLeaderOrFollower)),
                        Err(e) => Err(e.clone()),
                    };
                    let answer = EpochEndOffset::default().with_partition(p.partition);
                    match outcome {
                        Ok(end) => answer.with_leader_epoch(end.epoch.0).with_end_offset(end.end_offset.0),
                        Err(e) => answer
                            .with_error_code(partition_code(&e))
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
