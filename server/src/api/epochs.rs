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
use super::Ctx;
use crate::partition::PartitionError;
use crate::shard::mailbox::EpochEndCall;
use crate::shard::router::route_epoch_end;

pub async fn handle(ctx: &Ctx, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let mut calls = Vec::new();
    let known: Vec<bool> =
        request.topics.iter().map(|t| ctx.broker.topic(t.topic.0.as_str()).is_some()).collect();
    for (t, known) in request.topics.iter().zip(&known) {
        let name: Arc<str> = Arc::from(t.topic.0.as_str());
        for p in t.partitions.iter().filter(|_| *known) {
            calls.push(EpochEndCall {
                topic: name.clone(),
                partition: p.partition,
                current_leader_epoch: p.current_leader_epoch,
                epoch: p.leader_epoch,
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
                        true => outcomes.next().unwrap_or(Err(PartitionError::NotLeaderOrFollower)),
                        false => Err(PartitionError::UnknownTopicOrPartition),
                    };
                    let answer = EpochEndOffset::default().with_partition(p.partition);
                    match outcome {
                        Ok((epoch, end)) => answer.with_leader_epoch(epoch).with_end_offset(end),
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
