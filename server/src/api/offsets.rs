//! ListOffsets: earliest (-2), latest (-1, the high watermark), max timestamp (-3),
//! earliest-local (-4), latest-tiered (-5), or the first offset at or after a timestamp. For
//! isolation_level READ_COMMITTED the high watermark is replaced by the last stable offset.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::sync::Arc;

use kafka_protocol::ResponseError;

use super::error::partition_code;
use super::{Ctx, RequestInfo};
use crate::partition::OffsetSpec;
use crate::security::acl::{op, resource};
use crate::shard::mailbox::ListOffsetCall;
use crate::shard::router::route_list_offset;

pub async fn handle(ctx: &Ctx, info: &RequestInfo, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name: Arc<str> = Arc::from(topic.name.0.as_str());
        let allowed = ctx.allowed(info, op::DESCRIBE, resource::TOPIC, &name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let answer = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            if !allowed {
                let refused = answer.with_error_code(ResponseError::TopicAuthorizationFailed.code());
                partitions.push(refused.with_offset(-1).with_timestamp(-1).with_leader_epoch(-1));
                continue;
            }
            // A read_committed consumer (v2+) is answered below the last stable offset.
            let spec = OffsetSpec::from_wire(p.timestamp).map(|s| {
                if request.isolation_level == 1 {
                    s.read_committed()
                } else {
                    s
                }
            });
            let Some(spec) = spec else {
                let refused = answer.with_error_code(ResponseError::InvalidRequest.code());
                partitions.push(refused.with_offset(-1).with_timestamp(-1).with_leader_epoch(-1));
                continue;
            };
            let call = ListOffsetCall { topic: name.clone(), partition: p.partition_index, spec };
            partitions.push(match route_list_offset(&ctx.shard, call).await {
                Ok(o) => answer
                    .with_offset(o.offset.0)
                    .with_timestamp(o.timestamp)
                    .with_leader_epoch(if info.version >= 4 { o.leader_epoch.0 } else { -1 }),
                Err(e) => answer
                    .with_error_code(partition_code(&e))
                    .with_offset(-1)
                    .with_timestamp(-1)
                    .with_leader_epoch(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}
