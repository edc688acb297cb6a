//! Topic administration: CreateTopics (with configs, replica assignments and validate_only),
//! DeleteTopics (by name or id), CreatePartitions. Each change is forwarded to the active
//! controller and answered once this broker has applied it; the shards act on applied changes
//! (`server::apply_metadata_changes`), on every broker alike.

use super::error::ToKafka;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use riptide_quorum::AdminCommand;
use uuid::Uuid;

use super::Ctx;
use super::RequestInfo;
use crate::broker::AdminError;
use crate::catalog::{self, ConfigSource};
use crate::security::acl::{op, resource};

pub async fn create_topics(
    ctx: &Ctx,
    info: &RequestInfo,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let defaults = &ctx.broker.log_defaults();
    let mut seen = std::collections::HashSet::new();
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let r = async {
            let name = t.name.0.as_str().to_string();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            if !ctx.allowed_on_cluster(info, op::CREATE) && !ctx.allowed(info, op::CREATE, resource::TOPIC, &name) {
                return result
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
            }
            if !seen.insert(name.clone()) {
                return result.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(
                    Some(StrBytes::from_string(format!(
                        "Create topic request contains {name} more than once"
                    ))),
                );
            }
            let assignment = (!t.assignments.is_empty()).then(|| {
                let mut a: Vec<_> = t.assignments.iter().map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect::<Vec<i32>>())).collect();
                a.sort_by_key(|(p, _)| *p);
                a
            });
            if let Some(a) = &assignment {
                let contiguous = a.iter().enumerate().all(|(i, (p, _))| *p == i as i32);
                if !contiguous || t.num_partitions != -1 || t.replication_factor != -1 {
                    return result.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(
                        StrBytes::from_static_str(
                            "With a replica assignment, partitions must be numbered 0..n and numPartitions and replicationFactor must be -1",
                        ),
                    ));
                }
            }
            let assignment = assignment.map(|a| a.into_iter().map(|(_, r)| r).collect());
            let mut configs = BTreeMap::new();
            for c in &t.configs {
                if let Some(v) = &c.value {
                    configs.insert(c.name.as_str().to_string(), v.as_str().to_string());
                }
            }
            match ctx
                .broker
                .create_topic(&name, t.num_partitions, t.replication_factor, configs, assignment, None, request.validate_only)
                .await
            {
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
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string())))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        }
        .await;
        results.push(r);
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(
    ctx: &Ctx,
    info: &RequestInfo,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let version = info.version;
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
        let allowed = match (&meta, &name) {
            (Some(m), _) => ctx.allowed(info, op::DELETE, resource::TOPIC, &m.name),
            (None, Some(n)) => ctx.allowed(info, op::DELETE, resource::TOPIC, n),
            (None, None) => true,
        };
        if !allowed {
            responses.push(result.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let Some(meta) = meta else {
            let code = if name.is_some() {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                ResponseError::UnknownTopicId.code()
            };
            responses.push(result.with_error_code(code));
            continue;
        };
        let deleted = ctx.broker.cluster.admin(AdminCommand::DeleteTopic { name: meta.name.clone() }).await;
        if let Err(e) = deleted {
            let e = AdminError::from(e);
            responses.push(
                result
                    .with_error_code(e.code())
                    .with_error_message((version >= 5).then(|| StrBytes::from_string(e.to_string()))),
            );
            continue;
        }
        responses.push(
            result
                .with_name(Some(TopicName(StrBytes::from_string(meta.name.clone()))))
                .with_topic_id(if version >= 6 { Uuid::from_u128(meta.id) } else { Uuid::nil() }),
        );
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    ctx: &Ctx,
    info: &RequestInfo,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if !ctx.allowed(info, op::ALTER, resource::TOPIC, t.name.0.as_str()) {
            results.push(result.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let assignment = t
            .assignments
            .as_ref()
            .filter(|a| !a.is_empty())
            .map(|a| a.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect::<Vec<i32>>()).collect());
        results.push(
            match add_partitions(ctx, t.name.0.as_str(), t.count, assignment, request.validate_only).await {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string()))),
            },
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}

async fn add_partitions(
    ctx: &Ctx,
    name: &str,
    count: i32,
    assignment: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<(), AdminError> {
    let meta = ctx.broker.topic(name).ok_or(AdminError::UnknownTopic)?;
    if count <= meta.partitions {
        return Err(AdminError::InvalidPartitions(format!(
            "Topic currently has {} partitions, which is higher than the requested {count}.",
            meta.partitions
        )));
    }
    if count > 100_000 {
        return Err(AdminError::InvalidPartitions(format!("{count} partitions is over the limit of 100000")));
    }
    if assignment.as_ref().is_some_and(|a| a.iter().any(|r| r.len() != 1)) {
        return Err(AdminError::InvalidReplicaAssignment(
            "Replication factor above 1 is not supported yet: each new partition takes one broker".into(),
        ));
    }
    let cmd = AdminCommand::CreatePartitions { topic: name.to_string(), count, assignment, validate_only };
    ctx.broker.cluster.admin(cmd).await?;
    Ok(())
}
