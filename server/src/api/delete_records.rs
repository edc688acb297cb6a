//! DeleteRecords (v0..=2): moves each partition's log start offset up to the offset asked
//! (-1: the high watermark), as Kafka's `handleDeleteRecordsRequest` does: DELETE on the topic
//! (else TOPIC_AUTHORIZATION_FAILED), a known partition (else UNKNOWN_TOPIC_OR_PARTITION), not
//! an internal topic (INVALID_TOPIC_EXCEPTION), `cleanup.policy` with delete (else
//! POLICY_VIOLATION), the leader here (else NOT_LEADER_OR_FOLLOWER) and an offset at most the
//! high watermark (else OFFSET_OUT_OF_RANGE). The answer's low watermark is the new log start;
//! a refused partition has -1. The move is durable when answered (`Log::delete_records`).
//!
//! Kafka waits up to `timeout_ms` for every live replica's log start to reach the offset. Here
//! the leader answers at once; its followers take its log start from their next fetch
//! answers, as Kafka's do (`replication/fetcher.rs`).

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::error::partition_code;
use super::{Ctx, RequestInfo};
use crate::partition::Offset;
use crate::security::acl::{op, resource};
use crate::shard::router::route_delete_records;

/// Kafka's `DeleteRecordsResponse.INVALID_LOW_WATERMARK`.
const INVALID_LOW_WATERMARK: i64 = -1;

pub async fn handle(ctx: &Ctx, info: &RequestInfo, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name: Arc<str> = Arc::from(topic.name.0.as_str());
        let meta = ctx.broker.topic(&name);
        let refusal = if !ctx.allowed(info, op::DELETE, resource::TOPIC, &name) {
            Some(ResponseError::TopicAuthorizationFailed)
        } else if meta.is_none() {
            Some(ResponseError::UnknownTopicOrPartition)
        } else if meta.as_ref().is_some_and(|m| m.internal) {
            Some(ResponseError::InvalidTopicException)
        } else {
            None
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let answer = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            let known = meta.as_ref().is_some_and(|m| m.state(p.partition_index).is_some());
            let refused = match refusal {
                Some(e) => Some(e),
                None if !known => Some(ResponseError::UnknownTopicOrPartition),
                None => None,
            };
            if let Some(e) = refused {
                partitions.push(answer.with_error_code(e.code()).with_low_watermark(INVALID_LOW_WATERMARK));
                continue;
            }
            let outcome =
                route_delete_records(&ctx.shard, name.clone(), p.partition_index, Offset(p.offset)).await;
            partitions.push(match outcome {
                Ok(low) => answer.with_low_watermark(low.0),
                Err(e) => {
                    answer.with_error_code(partition_code(&e)).with_low_watermark(INVALID_LOW_WATERMARK)
                }
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(partitions));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
