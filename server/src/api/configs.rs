//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (Kafka's config names,
//! validated; an unknown name or bad value is INVALID_CONFIG) and DescribeConfigs for the broker.
//! Broker configs are static in this version (set in the TOML file or flags): altering one is
//! refused with a message saying so.

use super::error::ToKafka;
use crate::security::acl::{op, resource};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    incremental_alter_configs_response, AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use super::RequestInfo;
use crate::catalog::{self, ConfigSource};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_STATIC_BROKER: i8 = 4;

/// Kafka's ConfigType for DescribeConfigs v3+.
fn config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" => 7,
        "preallocate" | "unclean.leader.election.enable" | "auto.create.topics.enable" => 1,
        "min.cleanable.dirty.ratio" => 6,
        "index.interval.bytes"
        | "max.message.bytes"
        | "min.insync.replicas"
        | "segment.bytes"
        | "segment.index.bytes"
        | "num.partitions"
        | "socket.request.max.bytes"
        | "message.max.bytes"
        | "node.id"
        | "offsets.topic.num.partitions" => 3,
        "default.replication.factor" => 4,
        "compression.type" | "message.timestamp.type" | "durability.policy" | "log.dirs" | "listeners" => 2,
        _ => 5,
    }
}

fn entry(
    name: &str,
    value: String,
    source: i8,
    read_only: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_config_type(if version >= 3 { config_type(name) } else { 0 })
}

pub fn describe(ctx: &Ctx, info: &RequestInfo, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            let wanted = |name: &str| {
                r.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            if !config_access(ctx, info, op::DESCRIBE_CONFIGS, r.resource_type, r.resource_name.as_str()) {
                return result.with_error_code(denied_code(r.resource_type));
            }
            match r.resource_type {
                RESOURCE_TOPIC => {
                    let Some(meta) = ctx.broker.topic(r.resource_name.as_str()) else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "Topic {} does not exist",
                                r.resource_name.as_str()
                            ))));
                    };
                    let d = &ctx.broker.config.log;
                    let configs = catalog::topic_config_defaults(d)
                        .into_iter()
                        .filter(|(n, _)| wanted(n))
                        .filter_map(|(n, _)| meta.config_value(n, d).map(|(v, src)| (n, v, src)))
                        .map(|(n, v, src)| {
                            entry(
                                n,
                                v,
                                if src == ConfigSource::DynamicTopic { 1 } else { 5 },
                                false,
                                info.version,
                            )
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    if !name.is_empty() && name != ctx.broker.config.node_id.to_string() {
                        return result
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "broker {name} is not this broker"
                            ))));
                    }
                    let configs = broker_configs(ctx)
                        .into_iter()
                        .filter(|(n, _)| wanted(n))
                        .map(|(n, v)| entry(n, v, SOURCE_STATIC_BROKER, true, info.version))
                        .collect();
                    result.with_configs(configs)
                }
                t => result.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(
                    StrBytes::from_string(format!("resource type {t} is not supported")),
                )),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Topic configs are the topic's; broker configs the cluster's (Kafka's mapping).
fn config_access(ctx: &Ctx, info: &RequestInfo, operation: i8, resource_type: i8, name: &str) -> bool {
    match resource_type {
        RESOURCE_TOPIC => ctx.allowed(info, operation, resource::TOPIC, name),
        _ => ctx.allowed_on_cluster(info, operation),
    }
}

fn denied_code(resource_type: i8) -> i16 {
    if resource_type == RESOURCE_TOPIC {
        ResponseError::TopicAuthorizationFailed.code()
    } else {
        ResponseError::ClusterAuthorizationFailed.code()
    }
}

fn broker_configs(ctx: &Ctx) -> Vec<(&'static str, String)> {
    let c = &ctx.broker.config;
    vec![
        ("node.id", c.node_id.to_string()),
        ("broker.id", c.node_id.to_string()),
        ("log.dirs", c.data_dir.display().to_string()),
        (
            "listeners",
            c.listeners.iter().map(|l| format!("{}://{}", l.name, l.addr)).collect::<Vec<_>>().join(","),
        ),
        ("num.partitions", c.num_partitions.to_string()),
        (
            "default.replication.factor",
            ctx.broker
                .default_replication_factor(
                    ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).brokers.len().max(1),
                )
                .to_string(),
        ),
        ("min.insync.replicas", c.log.min_insync_replicas.to_string()),
        ("replica.lag.time.max.ms", c.cluster.replica_lag_time_max_ms.to_string()),
        ("replica.fetch.max.bytes", c.cluster.replica_fetch_max_bytes.to_string()),
        ("replica.fetch.wait.max.ms", c.cluster.replica_fetch_wait_max_ms.to_string()),
        ("auto.create.topics.enable", c.auto_create_topics.to_string()),
        ("socket.request.max.bytes", c.socket_request_max_bytes.to_string()),
        ("message.max.bytes", c.log.max_message_bytes.to_string()),
        ("log.retention.ms", c.log.retention_ms.to_string()),
        ("log.retention.bytes", c.log.retention_bytes.to_string()),
        ("log.segment.bytes", c.log.segment_bytes.to_string()),
        ("log.roll.ms", c.log.segment_ms.to_string()),
        ("log.retention.check.interval.ms", c.log.retention_check_interval_ms.to_string()),
        ("durability.policy", c.log.durability.name().to_string()),
    ]
}

/// Applies a new set of topic overrides after validating every entry, through the metadata
/// quorum (every broker reconfigures the topic's logs when it applies the change).
async fn apply_topic_configs(
    ctx: &Ctx,
    topic: &str,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let meta = ctx
        .broker
        .topic(topic)
        .ok_or((ResponseError::UnknownTopicOrPartition.code(), format!("Topic {topic} does not exist")))?;
    let mut configs = meta.configs.clone();
    edit(&mut configs).map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
    catalog::drop_removed_topic_configs(topic, &mut configs);
    for (k, v) in &configs {
        catalog::validate_topic_config(k, v, &ctx.broker.config.log)
            .map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
    }
    let setting =
        |c: &BTreeMap<String, String>| c.get("encryption.at.rest").filter(|v| *v != "false").cloned();
    ctx.broker
        .check_encryption(setting(&meta.configs).as_deref(), setting(&configs).as_deref())
        .map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
    if validate_only {
        return Ok(());
    }
    let cmd = riptide_quorum::AdminCommand::SetTopicConfigs { topic: topic.to_string(), configs };
    ctx.broker.cluster.admin(cmd).await.map_err(|e| {
        let e = crate::broker::AdminError::from(e);
        (e.code(), e.to_string())
    })?;
    Ok(())
}

fn broker_alter_refused(name: &str) -> (i16, String) {
    (
        ResponseError::InvalidRequest.code(),
        format!(
            "broker {name}: broker configs are static in riptide; set them in the config file and restart"
        ),
    )
}

pub async fn alter(ctx: &Ctx, info: &RequestInfo, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let outcome = match r.resource_type {
            t if !config_access(ctx, info, op::ALTER_CONFIGS, t, r.resource_name.as_str()) => {
                Err((denied_code(t), "not authorized".to_string()))
            }
            RESOURCE_TOPIC => {
                let new: BTreeMap<String, String> = r
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value.as_ref().map(|v| (c.name.as_str().to_string(), v.as_str().to_string()))
                    })
                    .collect();
                // AlterConfigs replaces the whole set: unnamed configs return to defaults.
                let replace = |c: &mut BTreeMap<String, String>| {
                    *c = new;
                    Ok(())
                };
                apply_topic_configs(ctx, r.resource_name.as_str(), replace, request.validate_only).await
            }
            RESOURCE_BROKER => Err(broker_alter_refused(r.resource_name.as_str())),
            t => Err((ResponseError::InvalidRequest.code(), format!("resource type {t} is not supported"))),
        };
        let (code, message) =
            outcome.map_or_else(|(c, m)| (c, Some(StrBytes::from_string(m))), |()| (0, None));
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter(
    ctx: &Ctx,
    info: &RequestInfo,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let outcome = match r.resource_type {
            t if !config_access(ctx, info, op::ALTER_CONFIGS, t, r.resource_name.as_str()) => {
                Err((denied_code(t), "not authorized".to_string()))
            }
            RESOURCE_TOPIC => {
                let ops: Vec<(String, i8, Option<String>)> = r
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.as_str().to_string(),
                            c.config_operation,
                            c.value.as_ref().map(|v| v.as_str().to_string()),
                        )
                    })
                    .collect();
                apply_topic_configs(
                    ctx,
                    r.resource_name.as_str(),
                    |c| apply_ops(c, ops),
                    request.validate_only,
                )
                .await
            }
            RESOURCE_BROKER => Err(broker_alter_refused(r.resource_name.as_str())),
            t => Err((ResponseError::InvalidRequest.code(), format!("resource type {t} is not supported"))),
        };
        let (code, message) =
            outcome.map_or_else(|(c, m)| (c, Some(StrBytes::from_string(m))), |()| (0, None));
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// SET (0), DELETE (1), APPEND (2) and SUBTRACT (3); the last two only for list configs.
fn apply_ops(
    configs: &mut BTreeMap<String, String>,
    ops: Vec<(String, i8, Option<String>)>,
) -> Result<(), String> {
    for (name, op, value) in ops {
        match op {
            0 => {
                let v = value.ok_or_else(|| format!("SET {name} needs a value"))?;
                configs.insert(name, v);
            }
            1 => {
                configs.remove(&name);
            }
            2 | 3 if config_type(&name) == 7 => {
                let mut items: Vec<String> = configs
                    .get(&name)
                    .map(|v| catalog::cleanup_policies(v).map(str::to_string).collect())
                    .unwrap_or_else(|| vec!["delete".to_string()]);
                let v = value.ok_or_else(|| format!("APPEND/SUBTRACT {name} needs a value"))?;
                for item in catalog::cleanup_policies(&v) {
                    if op == 2 && !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    } else if op == 3 {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(name, items.join(","));
            }
            2 | 3 => return Err(format!("Config {name} is not a list; APPEND/SUBTRACT do not apply")),
            other => return Err(format!("unknown config operation {other}")),
        }
    }
    Ok(())
}
