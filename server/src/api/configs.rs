//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (Kafka's config names,
//! validated; an unknown name or bad value is INVALID_CONFIG) and DescribeConfigs for the broker.
//! Broker configs are static in this version (set in the TOML file or flags): altering one is
//! refused with a message saying so. Sources, synonyms and documentation are Kafka's
//! (`config::described`).

use super::error::ToKafka;
use crate::security::acl::{op, resource};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    incremental_alter_configs_response, AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use super::RequestInfo;
use crate::catalog;
use crate::config::{described, ServerConfig, TopicDefaults};

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

/// Kafka's ConfigSource codes.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

/// One described config: its value, where it comes from, and (when asked) what else would set
/// it and what it means.
struct Described {
    name: &'static str,
    value: String,
    source: i8,
    read_only: bool,
    /// (name, value, source), most specific first: Kafka's synonyms.
    synonyms: Vec<(&'static str, String, i8)>,
    doc: Option<&'static str>,
}

fn entry(
    d: Described,
    version: i16,
    with_synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    let synonyms = if with_synonyms && version >= 1 {
        d.synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str(name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_source(source)
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(d.name))
        .with_value(Some(StrBytes::from_string(d.value)))
        .with_read_only(d.read_only)
        .with_config_source(d.source)
        .with_synonyms(synonyms)
        .with_config_type(if version >= 3 { config_type(d.name) } else { 0 })
        .with_documentation(d.doc.filter(|_| documentation && version >= 3).map(StrBytes::from_static_str))
}

/// A topic config as Kafka describes it: the topic's override, else the broker's setting of
/// its synonym (STATIC_BROKER_CONFIG when the broker's config file changed it), else the
/// default; the synonyms list every level that has a value.
fn describe_topic_config(
    name: &'static str,
    overridden: Option<String>,
    broker_value: String,
    default_value: String,
) -> Described {
    let synonym = described::topic_synonyms(name).first().copied().unwrap_or(name);
    let mut synonyms = Vec::new();
    if let Some(v) = &overridden {
        synonyms.push((name, v.clone(), SOURCE_TOPIC));
    }
    let broker_set = broker_value != default_value;
    if broker_set {
        synonyms.push((synonym, broker_value.clone(), SOURCE_STATIC_BROKER));
    }
    synonyms.push((synonym, default_value, SOURCE_DEFAULT));
    let (value, source) = match overridden {
        Some(v) => (v, SOURCE_TOPIC),
        None if broker_set => (broker_value, SOURCE_STATIC_BROKER),
        None => (broker_value, SOURCE_DEFAULT),
    };
    Described { name, value, source, read_only: false, synonyms, doc: described::topic_doc(name) }
}

pub fn describe(ctx: &Ctx, info: &RequestInfo, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let (with_synonyms, documentation) = (request.include_synonyms, request.include_documentation);
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            // No keys (null, or empty as Kafka reads it too): every config.
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
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
                    let defaults = catalog::topic_config_defaults(&TopicDefaults::default());
                    let configs = catalog::topic_config_defaults(d)
                        .into_iter()
                        .zip(defaults)
                        .filter(|((n, _), _)| wanted(n))
                        .map(|((n, broker_value), (_, default_value))| {
                            let overridden = meta.configs.get(n).cloned();
                            let d = describe_topic_config(n, overridden, broker_value, default_value);
                            entry(d, info.version, with_synonyms, documentation)
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
                    let rf = ctx
                        .broker
                        .default_replication_factor(
                            ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).brokers.len().max(1),
                        )
                        .to_string();
                    let defaults = broker_configs(&ServerConfig::default(), rf.clone());
                    let configs = broker_configs(&ctx.broker.config, rf)
                        .into_iter()
                        .zip(defaults)
                        .filter(|((n, _), _)| wanted(n))
                        .map(|((name, value), (_, default_value))| {
                            // Static: set in the config file (or flags) and read at start.
                            let source =
                                if value == default_value { SOURCE_DEFAULT } else { SOURCE_STATIC_BROKER };
                            let synonyms = vec![(name, value.clone(), source)];
                            let doc = described::broker_doc(name);
                            let d = Described { name, value, source, read_only: true, synonyms, doc };
                            entry(d, info.version, with_synonyms, documentation)
                        })
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

/// The broker configs DescribeConfigs reports, from `c` (`replication_factor`: what the
/// broker makes of `default.replication.factor`).
fn broker_configs(c: &ServerConfig, replication_factor: String) -> Vec<(&'static str, String)> {
    vec![
        ("node.id", c.node_id.to_string()),
        ("broker.id", c.node_id.to_string()),
        ("log.dirs", c.data_dir.display().to_string()),
        (
            "listeners",
            c.listeners.iter().map(|l| format!("{}://{}", l.name, l.addr)).collect::<Vec<_>>().join(","),
        ),
        ("num.partitions", c.num_partitions.to_string()),
        ("default.replication.factor", replication_factor),
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
