//! Topic administration: CreateTopics (with configs and validate_only), DeleteTopics (by name
//! or id), CreatePartitions. Changes go to the catalog first (persisted), then to the shards.

use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::Ctx;
use super::RequestInfo;
use crate::broker::AdminError;
use crate::catalog::{self, ConfigSource};
use crate::shard::mailbox::ShardMsg;
use crate::shard::router::broadcast_and_wait;

pub fn create_topics(ctx: &Ctx, info: &RequestInfo, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let defaults = &ctx.broker.config.log;
    let mut seen = std::collections::HashSet::new();
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.as_str().to_string();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            if !seen.insert(name.clone()) {
                return result.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(
                    Some(StrBytes::from_string(format!(
                        "Create topic request contains {name} more than once"
                    ))),
                );
            }
            if !t.assignments.is_empty() {
                return result
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "manual replica assignment is not supported on a single node",
                    )));
            }
            let mut configs = BTreeMap::new();
            for c in &t.configs {
                if let Some(v) = &c.value {
                    configs.insert(c.name.as_str().to_string(), v.as_str().to_string());
                }
            }
            match ctx.broker.create_topic(
                &name,
                t.num_partitions,
                t.replication_factor,
                configs,
                request.validate_only,
            ) {
                Ok(meta) => {
                    let configs = (info.version >= 5).then(|| {
                        catalog::topic_config_defaults(defaults)
                            .into_iter()
                            .filter_map(|(n, _)| meta.config_value(n, defaults).map(|(v, src)| (n, v, src)))
                            .map(|(n, v, src)| {
                                CreatableTopicConfigs::default()
                                    .with_name(StrBytes::from_static_str(n))
                                    .with_value(Some(StrBytes::from_string(v)))
                                    .with_config_source(if src == ConfigSource::DynamicTopic { 1 } else { 5 })
                            })
                            .collect()
                    });
                    let v5 = info.version >= 5;
                    result
                        .with_topic_id(if info.version >= 7 { Uuid::from_u128(meta.id) } else { Uuid::nil() })
                        .with_num_partitions(if v5 { meta.partitions } else { -1 })
                        .with_replication_factor(if v5 { meta.replication_factor } else { -1 })
                        .with_configs(configs)
                }
                Err(e) => result
                    .with_error_code(e.kafka_code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string())))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(ctx: &Ctx, version: i16, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v0-5 name topics in `topic_names`; v6 in `topics` by name or id.
    let mut targets: Vec<(Option<String>, Uuid)> =
        request.topic_names.iter().map(|n| (Some(n.0.as_str().to_string()), Uuid::nil())).collect();
    targets.extend(
        request.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.as_str().to_string()), t.topic_id)),
    );
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let meta = match &name {
            Some(n) => ctx.broker.topic(n),
            None => ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).by_id(id.as_u128()),
        };
        let result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(id);
        let Some(meta) = meta else {
            let code = if name.is_some() {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                ResponseError::UnknownTopicId.code()
            };
            responses.push(result.with_error_code(code));
            continue;
        };
        let removed = ctx.broker.catalog.write().unwrap_or_else(|e| e.into_inner()).remove(&meta.name);
        if let Err(e) = removed {
            responses.push(
                result
                    .with_error_code(ResponseError::KafkaStorageError.code())
                    .with_error_message((version >= 5).then(|| StrBytes::from_string(e.to_string()))),
            );
            continue;
        }
        let topic: Arc<str> = Arc::from(meta.name.as_str());
        let partitions = meta.partitions;
        broadcast_and_wait(&ctx.shard, |reply| ShardMsg::DropTopic(topic.clone(), partitions, reply)).await;
        responses.push(
            result
                .with_name(Some(TopicName(StrBytes::from_string(meta.name.clone()))))
                .with_topic_id(if version >= 6 { Uuid::from_u128(meta.id) } else { Uuid::nil() }),
        );
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(ctx: &Ctx, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let results = request
        .topics
        .iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match add_partitions(ctx, t.name.0.as_str(), t.count, request.validate_only) {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.kafka_code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string()))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

fn add_partitions(ctx: &Ctx, name: &str, count: i32, validate_only: bool) -> Result<(), AdminError> {
    let mut cat = ctx.broker.catalog.write().unwrap_or_else(|e| e.into_inner());
    let meta = cat.get(name).ok_or(AdminError::UnknownTopic)?;
    if count <= meta.partitions {
        return Err(AdminError::InvalidPartitions(format!(
            "Topic currently has {} partitions, which is higher than the requested {count}.",
            meta.partitions
        )));
    }
    if count > 100_000 {
        return Err(AdminError::InvalidPartitions(format!("{count} partitions is over the limit of 100000")));
    }
    if validate_only {
        return Ok(());
    }
    let mut updated = (*meta).clone();
    updated.partitions = count;
    cat.put(updated)?;
    Ok(())
}
