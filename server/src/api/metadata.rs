//! Metadata: this broker, and the topics asked for (all when the list is null; empty in v0),
//! auto-creating unknown ones when the client allows it and `auto.create.topics.enable` is set.
//! Single node: every partition's leader and only replica is this broker, at leader epoch 0.

use kafka_protocol::ResponseError;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::Ctx;
use super::RequestInfo;
use crate::catalog::{validate_topic_name, TopicMeta};

/// Kafka's "authorized operations not requested" sentinel.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub fn handle(ctx: &Ctx, info: &RequestInfo, request: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let (host, port) = broker.config.advertised();
    let node = BrokerId(broker.config.node_id);
    let brokers = vec![MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(StrBytes::from_string(host))
        .with_port(port)];
    // v0: an empty list means all topics; v1+: null means all.
    let requested = match request.topics {
        Some(t) if !(info.version == 0 && t.is_empty()) => Some(t),
        _ => None,
    };
    let auto_create = info.version < 4 || request.allow_auto_topic_creation;
    let topics = match requested {
        None => broker
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .all()
            .iter()
            .map(|t| describe_topic(t, node, info.version))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|t| {
                let by_id = (t.topic_id != Uuid::nil())
                    .then(|| {
                        broker.catalog.read().unwrap_or_else(|e| e.into_inner()).by_id(t.topic_id.as_u128())
                    })
                    .flatten();
                match (t.name, by_id) {
                    (_, Some(meta)) => describe_topic(&meta, node, info.version),
                    (Some(name), None) => {
                        lookup_or_create(ctx, name.0.as_str(), auto_create, node, info.version)
                    }
                    (None, None) => MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_topic_id(t.topic_id)
                        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED),
                }
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id((info.version >= 2).then(|| StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(if info.version >= 1 { node } else { BrokerId(-1) })
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn lookup_or_create(
    ctx: &Ctx,
    name: &str,
    auto_create: bool,
    node: BrokerId,
    version: i16,
) -> MetadataResponseTopic {
    let topic = ctx.broker.topic(name).or_else(|| {
        (auto_create && validate_topic_name(name).is_ok()).then(|| ctx.broker.auto_create(name)).flatten()
    });
    match topic {
        Some(t) => describe_topic(&t, node, version),
        None => {
            let code = if validate_topic_name(name).is_err() {
                ResponseError::InvalidTopicException.code()
            } else {
                ResponseError::UnknownTopicOrPartition.code()
            };
            MetadataResponseTopic::default()
                .with_error_code(code)
                .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
                .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
        }
    }
}

/// Fields a version lacks are left at their defaults (the codec rejects them otherwise).
pub fn describe_topic(t: &Arc<TopicMeta>, node: BrokerId, version: i16) -> MetadataResponseTopic {
    let partitions = (0..t.partitions)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(node)
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(if version >= 10 { Uuid::from_u128(t.id) } else { Uuid::nil() })
        .with_is_internal(version >= 1 && t.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
