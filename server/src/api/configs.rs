//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (Kafka's config names,
//! validated; an unknown name or bad value is INVALID_CONFIG) and DescribeConfigs for the broker.
//! Broker configs come from the config file and flags, and those Kafka lets change at run time
//! may be altered for one broker or cluster-wide (`catalog::dynamic`, kept in the metadata log);
//! altering any other is refused with INVALID_CONFIG and a message saying so. Sources, synonyms
//! and documentation are Kafka's (`catalog::described`).

use super::error::ToKafka;
use crate::security::acl::{op, resource};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_request, incremental_alter_configs_request, incremental_alter_configs_response,
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ListConfigResourcesRequest,
    ListConfigResourcesResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use super::RequestInfo;
use crate::catalog;
use crate::catalog::{described, dynamic};
use crate::config::{ServerConfig, TopicDefaults};
use crate::telemetry::subscription;
use riptide_quorum::CLUSTER_DEFAULT;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_CLIENT_METRICS: i8 = crate::telemetry::subscription::RESOURCE_TYPE;
/// Kafka's ConfigSource of a client-metrics subscription's config.
const SOURCE_CLIENT_METRICS: i8 = 7;
const SOURCE_STATIC_BROKER: i8 = 4;
/// Kafka's GROUP config resource (KIP-848/932) and its ConfigSource.
const RESOURCE_GROUP: i8 = 32;
const SOURCE_GROUP: i8 = 8;

/// The group configs this broker applies (share groups), with Kafka's names.
const GROUP_CONFIGS: [&str; 7] = [
    "share.auto.offset.reset",
    "share.isolation.level",
    "share.record.lock.duration.ms",
    "share.delivery.count.limit",
    "share.partition.max.record.locks",
    "share.session.timeout.ms",
    "share.heartbeat.interval.ms",
];

fn group_config_doc(name: &str) -> &'static str {
    match name {
        "share.auto.offset.reset" => "Where a share-partition with no state starts: latest, earliest or by_duration:<ISO-8601 duration>.",
        "share.isolation.level" => "read_uncommitted, or read_committed to hand out committed transactional records only.",
        "share.record.lock.duration.ms" => "How long a member holds records it acquired before they are available again.",
        "share.delivery.count.limit" => "Deliveries of a record before it is archived (given up).",
        "share.partition.max.record.locks" => "Records in flight per share-partition at most.",
        "share.session.timeout.ms" => "How long a share-group member may go without heartbeating before it leaves.",
        _ => "How often share-group members heartbeat.",
    }
}

/// The broker's value of a group config (its default for every group).
fn group_config_default(ctx: &Ctx, name: &str) -> String {
    let c = &ctx.shares.cfg;
    match name {
        "share.auto.offset.reset" => "latest".into(),
        "share.isolation.level" => "read_uncommitted".into(),
        "share.record.lock.duration.ms" => c.record_lock_duration_ms.to_string(),
        "share.delivery.count.limit" => c.delivery_count_limit.to_string(),
        "share.partition.max.record.locks" => c.partition_max_record_locks.to_string(),
        "share.session.timeout.ms" => c.session_timeout_ms.to_string(),
        _ => c.heartbeat_interval_ms.to_string(),
    }
}

/// Kafka's checks of one group config value.
fn check_group_config(name: &str, value: &str) -> Result<(), String> {
    let int = |lo: i64, hi: i64| match value.parse::<i64>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(()),
        _ => Err(format!(
            "Invalid value {value} for configuration {name}: must be a whole number in [{lo}, {hi}]"
        )),
    };
    match name {
        "share.auto.offset.reset" => crate::coordinator::shares::AutoOffsetReset::parse(value)
            .map(drop)
            .ok_or_else(|| format!("Invalid value {value} for configuration {name}: latest, earliest or by_duration:<duration>")),
        "share.isolation.level" if value == "read_committed" || value == "read_uncommitted" => Ok(()),
        "share.isolation.level" => {
            Err(format!("Invalid value {value} for configuration {name}: read_committed or read_uncommitted"))
        }
        "share.record.lock.duration.ms" => int(1000, 3_600_000),
        "share.delivery.count.limit" => int(2, 10),
        "share.partition.max.record.locks" => int(1, 10_000),
        "share.session.timeout.ms" => int(1000, 3_600_000),
        "share.heartbeat.interval.ms" => int(100, 3_600_000),
        _ => Err(format!("Unknown group config name: {name}")),
    }
}

/// Applies a new set of configs to a group (the GROUP resource) through the metadata quorum.
async fn apply_group_configs(
    ctx: &Ctx,
    group: &str,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    if group.is_empty() {
        return Err((ResponseError::InvalidRequest.code(), "Group name can't be empty".into()));
    }
    let mut configs = ctx
        .broker
        .catalog
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .group_configs
        .get(group)
        .cloned()
        .unwrap_or_default();
    edit(&mut configs).map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
    for (name, value) in &configs {
        check_group_config(name, value).map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
    }
    if validate_only {
        return Ok(());
    }
    let cmd = riptide_quorum::AdminCommand::SetGroupConfigs { group: group.to_string(), configs };
    admin_command(ctx, cmd).await?;
    Ok(())
}

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
        | "offsets.topic.num.partitions"
        | "compression.gzip.level"
        | "compression.lz4.level"
        | "compression.zstd.level" => 3,
        "default.replication.factor" => 4,
        "compression.type" | "message.timestamp.type" | "durability.policy" | "log.dirs" | "listeners" => 2,
        _ => 5,
    }
}

/// Kafka's ConfigSource codes.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
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

/// A config as Kafka describes it: its value and source are those of the most specific level
/// that sets it, and its synonyms are every level with a value, most specific first. `levels`
/// are (name at that level, value, source) from the topic override down to the default; the
/// broker's static setting counts only where it differs from the default.
fn described_config(
    name: &'static str,
    levels: Vec<(&'static str, Option<String>, i8)>,
    read_only: bool,
    doc: Option<&'static str>,
) -> Described {
    let default = levels.iter().find(|l| l.2 == SOURCE_DEFAULT).and_then(|l| l.1.clone());
    let synonyms: Vec<(&'static str, String, i8)> = levels
        .into_iter()
        .filter_map(|(n, v, src)| v.map(|v| (n, v, src)))
        .filter(|(_, v, src)| *src != SOURCE_STATIC_BROKER || Some(v) != default.as_ref())
        .collect();
    let (value, source) =
        synonyms.first().map_or((String::new(), SOURCE_DEFAULT), |(_, v, s)| (v.clone(), *s));
    Described { name, value, source, read_only, synonyms, doc }
}

/// The dynamic broker configs in force on this broker: (its own, the cluster-wide ones).
fn dynamic_layers(ctx: &Ctx) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
    let get = |id| cat.broker_configs.get(&id).cloned().unwrap_or_default();
    (get(ctx.broker.config.node_id), get(CLUSTER_DEFAULT))
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
                    let statics = catalog::topic_config_defaults(&ctx.broker.config.log);
                    let defaults = catalog::topic_config_defaults(&TopicDefaults::default());
                    let (own, cluster) = dynamic_layers(ctx);
                    let configs = statics
                        .into_iter()
                        .zip(defaults)
                        .filter(|((n, _), _)| wanted(n))
                        .map(|((n, static_value), (_, default_value))| {
                            let synonym = described::topic_synonyms(n).first().copied().unwrap_or(n);
                            let dynamic_name = dynamic::broker_config_of(n);
                            let dynamic = |layer: &BTreeMap<String, String>| {
                                dynamic_name.and_then(|b| layer.get(b).cloned())
                            };
                            let levels = vec![
                                (n, meta.configs.get(n).cloned(), SOURCE_TOPIC),
                                (dynamic_name.unwrap_or(synonym), dynamic(&own), SOURCE_DYNAMIC_BROKER),
                                (
                                    dynamic_name.unwrap_or(synonym),
                                    dynamic(&cluster),
                                    SOURCE_DYNAMIC_DEFAULT_BROKER,
                                ),
                                (synonym, Some(static_value), SOURCE_STATIC_BROKER),
                                (synonym, Some(default_value), SOURCE_DEFAULT),
                            ];
                            let d = described_config(n, levels, false, described::topic_doc(n));
                            entry(d, info.version, with_synonyms, documentation)
                        })
                        .collect();
                    result.with_configs(configs)
                }
                // "": the cluster-wide dynamic broker configs, as Kafka describes them (only
                // those set).
                RESOURCE_BROKER if r.resource_name.is_empty() => {
                    let (_, cluster) = dynamic_layers(ctx);
                    let configs = dynamic::DYNAMIC
                        .iter()
                        .filter(|(name, _)| wanted(name))
                        .filter_map(|(name, _)| cluster.get(*name).map(|v| (*name, v.clone())))
                        .map(|(name, value)| {
                            let levels = vec![(name, Some(value), SOURCE_DYNAMIC_DEFAULT_BROKER)];
                            let d = described_config(name, levels, false, described::broker_doc(name));
                            entry(d, info.version, with_synonyms, documentation)
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    if name != ctx.broker.config.node_id.to_string() {
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
                    let (own, cluster) = dynamic_layers(ctx);
                    let configs = broker_configs(&ctx.broker.config, rf)
                        .into_iter()
                        .zip(defaults)
                        .filter(|((n, _), _)| wanted(n))
                        .map(|((name, static_value), (_, default_value))| {
                            // Static: set in the config file (or flags) and read at start;
                            // dynamic ones (`catalog::dynamic`) may be set at run time too.
                            let changeable = dynamic::topic_config_of(name).is_some();
                            let levels = vec![
                                (name, own.get(name).cloned(), SOURCE_DYNAMIC_BROKER),
                                (name, cluster.get(name).cloned(), SOURCE_DYNAMIC_DEFAULT_BROKER),
                                (name, Some(static_value), SOURCE_STATIC_BROKER),
                                (name, Some(default_value), SOURCE_DEFAULT),
                            ];
                            let d = described_config(name, levels, !changeable, described::broker_doc(name));
                            entry(d, info.version, with_synonyms, documentation)
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_GROUP => {
                    let set = ctx
                        .broker
                        .catalog
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .group_configs
                        .get(r.resource_name.as_str())
                        .cloned()
                        .unwrap_or_default();
                    let configs = GROUP_CONFIGS
                        .iter()
                        .filter(|name| wanted(name))
                        .map(|name| {
                            let levels = vec![
                                (*name, set.get(*name).cloned(), SOURCE_GROUP),
                                (*name, Some(group_config_default(ctx, name)), SOURCE_DEFAULT),
                            ];
                            let d = described_config(name, levels, false, Some(group_config_doc(name)));
                            entry(d, info.version, with_synonyms, documentation)
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_CLIENT_METRICS if r.resource_name.is_empty() => {
                    result.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(
                        StrBytes::from_static_str("Client metrics subscription name must not be empty"),
                    ))
                }
                // As Kafka: every config, with its default when the subscription has none.
                RESOURCE_CLIENT_METRICS => {
                    let set = ctx
                        .broker
                        .catalog
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .client_metrics
                        .get(r.resource_name.as_str())
                        .cloned()
                        .unwrap_or_default();
                    let configs = subscription::CONFIGS
                        .iter()
                        .filter(|(name, _)| wanted(name))
                        .map(|(name, default)| {
                            let levels = vec![
                                (*name, set.get(*name).cloned(), SOURCE_CLIENT_METRICS),
                                (*name, Some(default.to_string()), SOURCE_DEFAULT),
                            ];
                            let d = described_config(name, levels, false, Some(client_metrics_doc(name)));
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

/// ListConfigResources (Kafka 4.1; v0 was ListClientMetricsResources): the names of the
/// config resources of the asked types (v0: client-metrics subscriptions; v1 with no types:
/// every type).
pub fn list_resources(
    ctx: &Ctx,
    info: &RequestInfo,
    request: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    const RESOURCE_BROKER_LOGGER: i8 = 8;
    const KNOWN: [i8; 5] =
        [RESOURCE_TOPIC, RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_CLIENT_METRICS, RESOURCE_GROUP];
    if !ctx.allowed_on_cluster(info, op::DESCRIBE_CONFIGS) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let types: Vec<i8> = match (info.version, request.resource_types.is_empty()) {
        (0, _) => vec![RESOURCE_CLIENT_METRICS],
        (_, true) => KNOWN.to_vec(),
        (_, false) => request.resource_types.clone(),
    };
    if types.iter().any(|t| !KNOWN.contains(t)) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code());
    }
    let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::new();
    for t in types {
        let names: Vec<String> = match t {
            RESOURCE_TOPIC => cat.all().iter().map(|m| m.name.clone()).collect(),
            RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => cat.brokers.keys().map(i32::to_string).collect(),
            RESOURCE_CLIENT_METRICS => cat.client_metrics.keys().cloned().collect(),
            RESOURCE_GROUP => cat.group_configs.keys().cloned().collect(),
            _ => Vec::new(),
        };
        out.extend(names.into_iter().map(|n| {
            kafka_protocol::messages::list_config_resources_response::ConfigResource::default()
                .with_resource_name(StrBytes::from_string(n))
                .with_resource_type(t)
        }));
    }
    ListConfigResourcesResponse::default().with_config_resources(out)
}

fn client_metrics_doc(name: &str) -> &'static str {
    match name {
        subscription::METRICS => "The telemetry metric name prefixes to push (a list; \"*\" for all).",
        subscription::INTERVAL_MS => "How often the selected clients push their metrics, in milliseconds (100 to 3600000).",
        _ => "The clients to push (a list of key=regex: client_instance_id, client_id, client_software_name, client_software_version, client_source_address, client_source_port); none: every client.",
    }
}

/// Applies a new set of configs to a client-metrics subscription (KIP-714) through the
/// metadata quorum, after Kafka's checks; no configs left deletes it.
async fn apply_client_metrics(
    ctx: &Ctx,
    name: &str,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    if name.is_empty() {
        return Err((ResponseError::InvalidRequest.code(), "Subscription name can't be empty".into()));
    }
    let mut configs = ctx
        .broker
        .catalog
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .client_metrics
        .get(name)
        .cloned()
        .unwrap_or_default();
    edit(&mut configs).map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
    if let Some(unknown) = configs.keys().find(|k| !subscription::CONFIGS.iter().any(|(c, _)| c == k)) {
        let message = format!("Unknown client metrics configuration: {unknown}");
        return Err((ResponseError::InvalidRequest.code(), message));
    }
    crate::telemetry::Subscription::parse(name, &configs)
        .map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
    if validate_only {
        return Ok(());
    }
    let cmd = riptide_quorum::AdminCommand::SetClientMetrics { name: name.to_string(), configs };
    admin_command(ctx, cmd).await?;
    Ok(())
}

/// Runs an admin command through the metadata quorum; a failure as (Kafka code, message).
pub(super) async fn admin_command(ctx: &Ctx, cmd: riptide_quorum::AdminCommand) -> Result<(), (i16, String)> {
    ctx.broker.cluster.admin(cmd).await.map(drop).map_err(|e| {
        let e = crate::broker::AdminError::from(e);
        (e.code(), e.to_string())
    })
}

/// Topic configs are the topic's; broker configs the cluster's (Kafka's mapping).
fn config_access(ctx: &Ctx, info: &RequestInfo, operation: i8, resource_type: i8, name: &str) -> bool {
    match resource_type {
        RESOURCE_TOPIC => ctx.allowed(info, operation, resource::TOPIC, name),
        RESOURCE_GROUP => ctx.allowed(info, operation, resource::GROUP, name),
        _ => ctx.allowed_on_cluster(info, operation),
    }
}

fn denied_code(resource_type: i8) -> i16 {
    if resource_type == RESOURCE_TOPIC {
        ResponseError::TopicAuthorizationFailed.code()
    } else if resource_type == RESOURCE_GROUP {
        ResponseError::GroupAuthorizationFailed.code()
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
    admin_command(ctx, cmd).await?;
    Ok(())
}

/// The broker a BROKER resource names: this or another broker's id, or "" for the
/// cluster-wide defaults (`CLUSTER_DEFAULT`).
fn broker_resource(name: &str) -> Result<i32, (i16, String)> {
    if name.is_empty() {
        return Ok(CLUSTER_DEFAULT);
    }
    name.parse::<i32>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or((ResponseError::InvalidRequest.code(), format!("{name:?} is not a broker id")))
}

/// Applies a new set of dynamic configs for one broker (or the cluster), after validating
/// each, through the metadata quorum: every broker takes the new topic defaults when it
/// applies the change, and they persist with the metadata.
async fn apply_broker_configs(
    ctx: &Ctx,
    name: &str,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let broker = broker_resource(name)?;
    let mut configs = ctx
        .broker
        .catalog
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .broker_configs
        .get(&broker)
        .cloned()
        .unwrap_or_default();
    edit(&mut configs).map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
    let defaults = ctx.broker.log_defaults();
    for (k, v) in &configs {
        dynamic::validate(k, v, &defaults).map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
    }
    if validate_only {
        return Ok(());
    }
    let cmd = riptide_quorum::AdminCommand::SetBrokerConfigs { broker, configs };
    admin_command(ctx, cmd).await?;
    Ok(())
}

/// AlterConfigs replaces the whole set: configs it does not name return to their defaults.
fn replacing(
    configs: &[alter_configs_request::AlterableConfig],
) -> impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String> {
    let new: BTreeMap<String, String> = configs
        .iter()
        .filter_map(|c| c.value.as_ref().map(|v| (c.name.as_str().to_string(), v.as_str().to_string())))
        .collect();
    move |c| {
        *c = new;
        Ok(())
    }
}

pub async fn alter(ctx: &Ctx, info: &RequestInfo, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let outcome = match r.resource_type {
            t if !config_access(ctx, info, op::ALTER_CONFIGS, t, r.resource_name.as_str()) => {
                Err((denied_code(t), "not authorized".to_string()))
            }
            RESOURCE_TOPIC => {
                let replace = replacing(&r.configs);
                apply_topic_configs(ctx, r.resource_name.as_str(), replace, request.validate_only).await
            }
            RESOURCE_BROKER => {
                let replace = replacing(&r.configs);
                apply_broker_configs(ctx, r.resource_name.as_str(), replace, request.validate_only).await
            }
            RESOURCE_CLIENT_METRICS => {
                let replace = replacing(&r.configs);
                apply_client_metrics(ctx, r.resource_name.as_str(), replace, request.validate_only).await
            }
            RESOURCE_GROUP => {
                let replace = replacing(&r.configs);
                apply_group_configs(ctx, r.resource_name.as_str(), replace, request.validate_only).await
            }
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
                let ops = ops_of(&r.configs);
                apply_topic_configs(
                    ctx,
                    r.resource_name.as_str(),
                    |c| apply_ops(c, ops),
                    request.validate_only,
                )
                .await
            }
            RESOURCE_BROKER => {
                let ops = ops_of(&r.configs);
                apply_broker_configs(
                    ctx,
                    r.resource_name.as_str(),
                    |c| apply_ops(c, ops),
                    request.validate_only,
                )
                .await
            }
            RESOURCE_CLIENT_METRICS => {
                let ops = ops_of(&r.configs);
                apply_client_metrics(
                    ctx,
                    r.resource_name.as_str(),
                    |c| apply_ops(c, ops),
                    request.validate_only,
                )
                .await
            }
            RESOURCE_GROUP => {
                let ops = ops_of(&r.configs);
                apply_group_configs(
                    ctx,
                    r.resource_name.as_str(),
                    |c| apply_ops(c, ops),
                    request.validate_only,
                )
                .await
            }
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

type Op = (String, i8, Option<String>);

fn ops_of(configs: &[incremental_alter_configs_request::AlterableConfig]) -> Vec<Op> {
    configs
        .iter()
        .map(|c| {
            (
                c.name.as_str().to_string(),
                c.config_operation,
                c.value.as_ref().map(|v| v.as_str().to_string()),
            )
        })
        .collect()
}

/// SET (0), DELETE (1), APPEND (2) and SUBTRACT (3); the last two only for list configs.
fn apply_ops(configs: &mut BTreeMap<String, String>, ops: Vec<Op>) -> Result<(), String> {
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
            // The list configs of client-metrics subscriptions.
            2 | 3 if name == subscription::METRICS || name == subscription::MATCH => {
                let v = value.ok_or_else(|| format!("APPEND/SUBTRACT {name} needs a value"))?;
                let split = |s: &str| {
                    s.split(',').map(|i| i.trim().to_string()).filter(|i| !i.is_empty()).collect::<Vec<_>>()
                };
                let mut items = configs.get(&name).map(|c| split(c)).unwrap_or_default();
                for item in split(&v) {
                    if op == 2 && !items.contains(&item) {
                        items.push(item);
                    } else if op == 3 {
                        items.retain(|i| *i != item);
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
