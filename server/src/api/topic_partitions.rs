//! DescribeTopicPartitions (v0, KIP-966): the partitions of the topics asked for (all when
//! the list is empty), in pages. Topics are taken in name order from the request's cursor
//! (topic, first partition); an answer holds at most `response_partition_limit` partitions
//! (capped by `max.request.partition.size.limit`, at least 1) and, when partitions are left,
//! a `next_cursor` where the next request starts. As in Kafka's handler: a cursor with a
//! negative partition, or one naming a topic outside "all topics", refuses the request:
//! every topic named is answered INVALID_REQUEST (Kafka's error response); topics the principal may not
//! describe are left out of "all topics" and answered TOPIC_AUTHORIZATION_FAILED (without
//! their id) when named; an unknown name is UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION
//! when it is no valid name). Riptide keeps no eligible leader replicas (ELR is a KRaft
//! option it does not implement), so both ELR lists are empty.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{Ctx, RequestInfo};
use crate::catalog::{validate_topic_name, TopicMeta};
use crate::security::acl::{op, resource};

/// Why a request is refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    #[error("DescribeTopicPartitionsRequest cursor partition must be valid: {0}")]
    CursorPartition(i32),
    #[error("DescribeTopicPartitionsRequest topic list should contain the cursor topic: {0}")]
    CursorTopic(String),
}

/// The operations on a topic, as Kafka's `topic_authorized_operations` bit field counts them.
const TOPIC_OPERATIONS: [i8; 8] = [
    op::READ,
    op::WRITE,
    op::CREATE,
    op::DELETE,
    op::ALTER,
    op::DESCRIBE,
    op::DESCRIBE_CONFIGS,
    op::ALTER_CONFIGS,
];

pub fn handle(
    ctx: &Ctx,
    info: &RequestInfo,
    request: &DescribeTopicPartitionsRequest,
) -> Result<DescribeTopicPartitionsResponse, DescribeError> {
    let fetch_all = request.topics.is_empty();
    // The topics in name order with what the metadata has of them, taken at once: the
    // catalog's lock is not held across the authorization checks (which take it again).
    let (names, live) = {
        let catalog = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
        let names: BTreeMap<String, Option<Arc<TopicMeta>>> = if fetch_all {
            catalog.all().into_iter().map(|t| (t.name.clone(), Some(t))).collect()
        } else {
            request.topics.iter().map(|t| (t.name.0.to_string(), catalog.get(t.name.0.as_str()))).collect()
        };
        let live: HashSet<i32> = catalog.live_brokers().map(|b| b.id).collect();
        (names, live)
    };
    let cursor = request.cursor.as_ref().map(|c| (c.topic_name.0.to_string(), c.partition_index));
    check_cursor(cursor.as_ref(), fetch_all, &names)?;
    let mut remaining = request.response_partition_limit.min(ctx.broker.config.request_partitions_max).max(1);
    let mut response = DescribeTopicPartitionsResponse::default();
    let mut refused = Vec::new();
    let from = cursor.as_ref().map_or("", |c| c.0.as_str());
    for (name, meta) in names.iter().filter(|(n, _)| n.as_str() >= from) {
        if !ctx.allowed(info, op::DESCRIBE, resource::TOPIC, name) {
            if !fetch_all {
                refused.push(topic_error(name, ResponseError::TopicAuthorizationFailed));
            }
            continue;
        }
        if remaining <= 0 {
            response.next_cursor =
                Some(Cursor::default().with_topic_name(topic_name(name)).with_partition_index(0));
            break;
        }
        let start = match &cursor {
            Some((topic, partition)) if topic == name => *partition,
            _ => 0,
        };
        let Some(meta) = meta.as_ref().filter(|m| (start as usize) < m.states.len()) else {
            if !fetch_all {
                response.topics.push(unknown_topic(name, meta.as_deref()));
            }
            continue;
        };
        let count = (meta.states.len() as i32 - start).min(remaining);
        let partitions = (start..start + count).map(|p| describe_partition(meta, p, &live)).collect();
        let operations = TOPIC_OPERATIONS
            .iter()
            .filter(|o| ctx.allowed(info, **o, resource::TOPIC, name))
            .fold(0i32, |bits, o| bits | 1 << o);
        response.topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name(name)))
                .with_topic_id(Uuid::from_u128(meta.id))
                .with_is_internal(meta.internal)
                .with_partitions(partitions)
                .with_topic_authorized_operations(operations),
        );
        remaining -= count;
        if start + count < meta.states.len() as i32 {
            let next =
                Cursor::default().with_topic_name(topic_name(name)).with_partition_index(start + count);
            response.next_cursor = Some(next);
            break;
        }
    }
    response.topics.extend(refused);
    Ok(response)
}

/// Kafka's checks of the cursor: a topic among "all topics" (when asked for all), a
/// partition not negative.
fn check_cursor(
    cursor: Option<&(String, i32)>,
    fetch_all: bool,
    names: &BTreeMap<String, Option<Arc<TopicMeta>>>,
) -> Result<(), DescribeError> {
    let Some((topic, partition)) = cursor else { return Ok(()) };
    if fetch_all && !names.contains_key(topic) {
        return Err(DescribeError::CursorTopic(topic.clone()));
    }
    if *partition < 0 {
        return Err(DescribeError::CursorPartition(*partition));
    }
    Ok(())
}

/// The answer to a request refused as a whole: the one error on an empty page (Kafka's
/// handler throws, and the error response carries the code in every topic named).
pub fn refused(
    request: &DescribeTopicPartitionsRequest,
    error: &DescribeError,
) -> DescribeTopicPartitionsResponse {
    tracing::debug!("DescribeTopicPartitions refused: {error}");
    let topics = request
        .topics
        .iter()
        .map(|t| topic_error(t.name.0.as_str(), ResponseError::InvalidRequest))
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

/// A topic named but not described: unknown (or its cursor past its last partition), or no
/// valid name at all.
fn unknown_topic(name: &str, meta: Option<&TopicMeta>) -> DescribeTopicPartitionsResponseTopic {
    let code = if validate_topic_name(name).is_ok() {
        ResponseError::UnknownTopicOrPartition
    } else {
        ResponseError::InvalidTopicException
    };
    let id = meta.map_or(Uuid::nil(), |m| Uuid::from_u128(m.id));
    topic_error(name, code).with_topic_id(id)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn topic_error(name: &str, error: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error.code())
        .with_name(Some(topic_name(name)))
}

fn describe_partition(
    meta: &TopicMeta,
    p: i32,
    live: &HashSet<i32>,
) -> DescribeTopicPartitionsResponsePartition {
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let Some(st) = meta.state(p) else {
        return DescribeTopicPartitionsResponsePartition::default()
            .with_partition_index(p)
            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    let offline: Vec<i32> = st.replicas.iter().copied().filter(|r| !live.contains(r)).collect();
    let code = if st.leader < 0 { ResponseError::LeaderNotAvailable.code() } else { 0 };
    DescribeTopicPartitionsResponsePartition::default()
        .with_error_code(code)
        .with_partition_index(p)
        .with_leader_id(BrokerId(st.leader))
        .with_leader_epoch(st.leader_epoch.0)
        .with_replica_nodes(ids(&st.replicas))
        .with_isr_nodes(ids(&st.isr))
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
        .with_offline_replicas(ids(&offline))
}
