//! DeleteRecords (v0..=2): moves each partition's log start offset up to the offset asked
//! (-1: the high watermark), as Kafka's `handleDeleteRecordsRequest` does: DELETE on the topic
//! (else TOPIC_AUTHORIZATION_FAILED), a known partition (else UNKNOWN_TOPIC_OR_PARTITION), not
//! an internal topic (INVALID_TOPIC_EXCEPTION), `cleanup.policy` with delete (else
//! POLICY_VIOLATION), the leader here (else NOT_LEADER_OR_FOLLOWER) and an offset at most the
//! high watermark (else OFFSET_OUT_OF_RANGE). The leader's move is durable at once
//! (`Log::delete_records`); then, as Kafka's `DelayedDeleteRecords`, the answer waits up to
//! `timeout_ms` until the low watermark (the smallest log start of the replicas on live
//! brokers) reaches the offset: followers take the leader's log start from their next fetch
//! answers (`replication/fetcher.rs`) and report theirs in the fetch after. Past the timeout
//! the partition answers REQUEST_TIMED_OUT; a refused partition has low watermark -1.

use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// How often a waiting answer looks at the low watermark again (followers report their log
/// start once per fetch, `replica.fetch.wait.max.ms` apart at most when idle).
const LOW_WATERMARK_POLL: Duration = Duration::from_millis(20);

/// Upper bound on the wait, whatever the client asks.
const TIMEOUT_MS_MAX: i32 = 300_000;

pub async fn handle(ctx: &Ctx, info: &RequestInfo, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let deadline = Instant::now() + Duration::from_millis(request.timeout_ms.clamp(0, TIMEOUT_MS_MAX) as u64);
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
            // One deadline for the whole request; partitions are waited for in turn (their
            // followers catch up meanwhile all the same).
            let (code, low) =
                delete_and_wait(ctx, &name, p.partition_index, Offset(p.offset), deadline).await;
            partitions.push(answer.with_error_code(code).with_low_watermark(low));
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(partitions));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Moves one partition's log start and waits for the replicas' low watermark to reach it:
/// (error code, low watermark). Asking the leader again is harmless: the log start never
/// moves back, and an offset of -1 is resolved once, by the first answer.
async fn delete_and_wait(
    ctx: &Ctx,
    topic: &Arc<str>,
    partition: i32,
    offset: Offset,
    deadline: Instant,
) -> (i16, i64) {
    let mut offset = offset;
    loop {
        let live: Arc<[i32]> = {
            let catalog = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
            catalog.live_brokers().map(|b| b.id).collect()
        };
        match route_delete_records(&ctx.shard, topic.clone(), partition, offset, live).await {
            Err(e) => return (partition_code(&e), INVALID_LOW_WATERMARK),
            Ok(done) if done.low_watermark >= done.offset => return (0, done.low_watermark.0),
            Ok(done) if Instant::now() >= deadline => {
                let (low, asked) = (done.low_watermark.0, done.offset.0);
                tracing::debug!(
                    "{topic}-{partition}: DeleteRecords timed out, low watermark {low} short of {asked}"
                );
                return (ResponseError::RequestTimedOut.code(), INVALID_LOW_WATERMARK);
            }
            Ok(done) => offset = done.offset,
        }
        compio::time::sleep(LOW_WATERMARK_POLL).await;
    }
}
