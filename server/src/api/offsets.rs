//! ListOffsets: earliest (-2), latest (-1, the high watermark), max timestamp (-3),
//! earliest-local (-4), latest-tiered (-5), or the first offset at or after a timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::sync::Arc;

use super::RequestInfo;
use crate::shard::mailbox::ListOffsetCall;
use crate::shard::{route_list_offset, Ctx};

pub async fn handle(ctx: &Ctx, info: &RequestInfo, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name: Arc<str> = Arc::from(topic.name.0.as_str());
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let call =
                ListOffsetCall { topic: name.clone(), partition: p.partition_index, timestamp: p.timestamp };
            let o = route_list_offset(ctx, call).await;
            partitions.push(
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(o.error_code)
                    .with_offset(o.offset)
                    .with_timestamp(o.timestamp)
                    .with_leader_epoch(if info.version >= 4 { o.leader_epoch } else { -1 }),
            );
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}
