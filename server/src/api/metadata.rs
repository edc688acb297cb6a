//! Metadata: the live brokers and the topics asked for (all when the list is null; empty in
//! v0), from this broker's applied metadata image, with each partition's real leader, leader
//! epoch, replicas and ISR (an offline partition has leader -1 and LEADER_NOT_AVAILABLE);
//! unknown topics are auto-created when the client allows it and `auto.create.topics.enable`
//! is set.

use kafka_protocol::ResponseError;
use std::collections::HashSet;
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
use crate::security::acl::{op, resource};

/// Kafka's "authorized operations not requested" sentinel.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub async fn handle(ctx: &Ctx, info: &RequestInfo, request: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let (brokers, live, controller) = {
        let cat = broker.catalog.read().unwrap_or_else(|e| e.into_inner());
        let live: HashSet<i32> = cat.live_brokers().map(|b| b.id).collect();
        let brokers: Vec<MetadataResponseBroker> = cat
            .live_brokers()
            .filter_map(|b| {
                let ep = endpoint_for(&b.endpoints, &info.session.listener.name)?;
                Some(
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.id))
                        .with_host(StrBytes::from_string(ep.host.clone()))
                        .with_port(i32::from(ep.port))
                        .with_rack(if info.version >= 1 {
                            b.rack.clone().map(StrBytes::from_string)
                        } else {
                            None
                        }),
                )
            })
            .collect();
        (brokers, live, controller_id(&cat, broker.config.node_id))
    };
    // v0: an empty list means all topics; v1+: null means all.
    let requested = match request.topics {
        Some(t) if !(info.version == 0 && t.is_empty()) => Some(t),
        _ => None,
    };
    let auto_create = info.version < 4 || request.allow_auto_topic_creation;
    let topics = match requested {
        None => {
            // The catalog lock is released first: `allowed` reads the catalog again, and a
            // second read lock behind a waiting writer deadlocks.
            let all = broker.catalog.read().unwrap_or_else(|e| e.into_inner()).all();
            all.iter()
                .filter(|t| ctx.allowed(info, op::DESCRIBE, resource::TOPIC, &t.name))
                .map(|t| describe_topic(t, &live, info.version))
                .collect()
        }
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for t in list {
                let by_id = (t.topic_id != Uuid::nil())
                    .then(|| {
                        broker.catalog.read().unwrap_or_else(|e| e.into_inner()).by_id(t.topic_id.as_u128())
                    })
                    .flatten();
                out.push(match (t.name, by_id) {
                    (_, Some(meta)) if !ctx.allowed(info, op::DESCRIBE, resource::TOPIC, &meta.name) => {
                        MetadataResponseTopic::default()
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                            .with_topic_id(t.topic_id)
                            .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
                    }
                    (_, Some(meta)) => describe_topic(&meta, &live, info.version),
                    (Some(name), None)
                        if !ctx.allowed(info, op::DESCRIBE, resource::TOPIC, name.0.as_str()) =>
                    {
                        MetadataResponseTopic::default()
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                            .with_name(Some(name))
                            .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
                    }
                    (Some(name), None) => {
                        let may_create = ctx.allowed_on_cluster(info, op::CREATE)
                            || ctx.allowed(info, op::CREATE, resource::TOPIC, name.0.as_str());
                        lookup_or_create(ctx, name.0.as_str(), auto_create, may_create, &live, info.version)
                            .await
                    }
                    (None, None) => MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_topic_id(t.topic_id)
                        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED),
                });
            }
            out
        }
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id((info.version >= 2).then(|| StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(if info.version >= 1 { BrokerId(controller) } else { BrokerId(-1) })
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

/// A broker's endpoint on the listener the client came in on (Kafka answers each listener
/// with its own addresses), else its first.
pub fn endpoint_for<'a>(
    endpoints: &'a [riptide_quorum::Endpoint],
    listener: &str,
) -> Option<&'a riptide_quorum::Endpoint> {
    endpoints.iter().find(|e| e.name == listener).or(endpoints.first())
}

/// The id clients see as "controller": as in KRaft, where clients cannot reach the quorum, a
/// broker that forwards admin requests to the active controller. This broker, the one that
/// answers: it is certainly alive, while another broker counted live in the image may have
/// died a moment ago (its session not yet expired), and clients send their admin requests to
/// the id named here (librdkafka kept retrying a killed broker for 30 s).
/// A fenced broker is not in the answer's broker list, so it names the lowest live broker
/// then (itself when none is live yet).
pub fn controller_id(cat: &crate::catalog::Catalog, this: i32) -> i32 {
    let mut live = cat.live_brokers().map(|b| b.id);
    let lowest = live.next();
    if lowest == Some(this) || live.any(|id| id == this) {
        return this;
    }
    cat.live_brokers().map(|b| b.id).min().unwrap_or(this)
}

async fn lookup_or_create(
    ctx: &Ctx,
    name: &str,
    auto_create: bool,
    may_create: bool,
    live: &HashSet<i32>,
    version: i16,
) -> MetadataResponseTopic {
    let mut topic = ctx.broker.topic(name);
    if topic.is_none() && auto_create && may_create && validate_topic_name(name).is_ok() {
        topic = ctx.broker.auto_create(name).await;
    }
    match topic {
        Some(t) => describe_topic(&t, live, version),
        None => {
            let code = if validate_topic_name(name).is_err() {
                ResponseError::InvalidTopicException.code()
            } else if auto_create && ctx.broker.config.auto_create_topics && !may_create {
                ResponseError::TopicAuthorizationFailed.code()
            } else if auto_create && ctx.broker.config.auto_create_topics {
                // Creation was attempted and failed (no quorum, or no live broker yet).
                ResponseError::LeaderNotAvailable.code()
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
pub fn describe_topic(t: &Arc<TopicMeta>, live: &HashSet<i32>, version: i16) -> MetadataResponseTopic {
    let partitions = t
        .states
        .iter()
        .enumerate()
        .map(|(p, st)| {
            let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
            let offline: Vec<i32> = st.replicas.iter().copied().filter(|r| !live.contains(r)).collect();
            let code = if st.leader < 0 { ResponseError::LeaderNotAvailable.code() } else { 0 };
            MetadataResponsePartition::default()
                .with_error_code(code)
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(st.leader))
                .with_leader_epoch(if version >= 7 { st.leader_epoch.0 } else { -1 })
                .with_replica_nodes(ids(&st.replicas))
                .with_isr_nodes(ids(&st.isr))
                .with_offline_replicas(if version >= 5 { ids(&offline) } else { Vec::new() })
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(if version >= 10 { Uuid::from_u128(t.id) } else { Uuid::nil() })
        .with_is_internal(version >= 1 && t.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
