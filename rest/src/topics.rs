//! v3 clusters, brokers, topics, topic configs, partitions and replicas; v2's topics,
//! partition offsets and brokers.

use riptide_client::{AlterConfig, ConfigEntry, ConfigResource, NewTopic, OffsetSpec, TopicInfo};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::RestError;
use super::http::{encode_segment as enc, Req};
use super::state::State;

/// `metadata` of a resource: its URL and REST Proxy's resource name.
pub fn meta(req: &Req, path: &str, crn: &str) -> Value {
    json!({"self": req.url(path), "resource_name": format!("crn:///{crn}")})
}

pub fn related(req: &Req, path: &str) -> Value {
    json!({"related": req.url(path)})
}

pub fn list(req: &Req, kind: &str, path: &str, data: Vec<Value>) -> Value {
    json!({"kind": kind, "metadata": {"self": req.url(path), "next": null}, "data": data})
}

pub fn cluster_path(c: &str) -> String {
    format!("/v3/clusters/{}", enc(c))
}

pub fn topic_path(c: &str, t: &str) -> String {
    format!("{}/topics/{}", cluster_path(c), enc(t))
}

fn cluster_json(req: &Req, c: &str, controller: i32) -> Value {
    let base = cluster_path(c);
    json!({
        "kind": "KafkaCluster",
        "metadata": meta(req, &base, &format!("kafka={c}")),
        "cluster_id": c,
        "controller": related(req, &format!("{base}/brokers/{controller}")),
        "acls": related(req, &format!("{base}/acls")),
        "brokers": related(req, &format!("{base}/brokers")),
        "broker_configs": related(req, &format!("{base}/broker-configs")),
        "consumer_groups": related(req, &format!("{base}/consumer-groups")),
        "topics": related(req, &format!("{base}/topics")),
        "partition_reassignments": related(req, &format!("{base}/topics/-/partitions/-/reassignment")),
    })
}

pub async fn clusters(state: &State, req: &Req) -> Result<Value, RestError> {
    let info = state.client().await?.describe_cluster().await?;
    let c = info.cluster_id.unwrap_or_default();
    Ok(list(req, "KafkaClusterList", "/v3/clusters", vec![cluster_json(req, &c, info.controller_id)]))
}

pub async fn cluster(state: &State, req: &Req, c: &str) -> Result<Value, RestError> {
    let info = state.client().await?.describe_cluster().await?;
    if info.cluster_id.as_deref().unwrap_or_default() != c {
        return Err(RestError::UnknownCluster(c.to_string()));
    }
    Ok(cluster_json(req, c, info.controller_id))
}

fn broker_json(req: &Req, c: &str, b: &riptide_client::BrokerInfo) -> Value {
    let path = format!("{}/brokers/{}", cluster_path(c), b.node_id);
    json!({
        "kind": "KafkaBroker",
        "metadata": meta(req, &path, &format!("kafka={c}/broker={}", b.node_id)),
        "cluster_id": c,
        "broker_id": b.node_id,
        "host": b.host,
        "port": b.port,
        "rack": b.rack,
        "configs": related(req, &format!("{path}/configs")),
        "partition_replicas": related(req, &format!("{path}/partition-replicas")),
    })
}

pub async fn brokers(state: &State, req: &Req, c: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let m = state.client().await?.metadata(Some(&[]), false).await?;
    let data = m.brokers.iter().map(|b| broker_json(req, c, b)).collect();
    Ok(list(req, "KafkaBrokerList", &format!("{}/brokers", cluster_path(c)), data))
}

pub async fn broker(state: &State, req: &Req, c: &str, id: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let m = state.client().await?.metadata(Some(&[]), false).await?;
    let b = id
        .parse::<i32>()
        .ok()
        .and_then(|id| m.brokers.iter().find(|b| b.node_id == id))
        .ok_or_else(|| RestError::NotFound(format!("Broker {id} not found.")))?;
    Ok(broker_json(req, c, b))
}

fn topic_json(req: &Req, c: &str, t: &TopicInfo) -> Value {
    let path = topic_path(c, &t.name);
    let rf = t.partitions.first().map_or(0, |p| p.replicas.len());
    json!({
        "kind": "KafkaTopic",
        "metadata": meta(req, &path, &format!("kafka={c}/topic={}", t.name)),
        "cluster_id": c,
        "topic_name": t.name,
        "is_internal": t.is_internal,
        "replication_factor": rf,
        "partitions_count": t.partitions.len(),
        "partitions": related(req, &format!("{path}/partitions")),
        "configs": related(req, &format!("{path}/configs")),
        "partition_reassignments": related(req, &format!("{path}/partitions/-/reassignment")),
        "authorized_operations": [],
    })
}

async fn describe_topic(state: &State, name: &str) -> Result<TopicInfo, RestError> {
    let m = state.client().await?.metadata(Some(&[name]), false).await?;
    match m.topic(name) {
        Some(t) if t.error == 0 => Ok(t.clone()),
        _ => Err(RestError::UnknownTopic(name.to_string())),
    }
}

pub async fn topics(state: &State, req: &Req, c: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let m = state.client().await?.metadata(None, false).await?;
    let mut ts: Vec<&TopicInfo> = m.topics.iter().filter(|t| t.error == 0).collect();
    ts.sort_by(|a, b| a.name.cmp(&b.name));
    let data = ts.into_iter().map(|t| topic_json(req, c, t)).collect();
    Ok(list(req, "KafkaTopicList", &format!("{}/topics", cluster_path(c)), data))
}

pub async fn topic(state: &State, req: &Req, c: &str, t: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    Ok(topic_json(req, c, &describe_topic(state, t).await?))
}

#[derive(Deserialize)]
pub struct CreateTopic {
    topic_name: String,
    partitions_count: Option<i32>,
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: Vec<NameValue>,
    #[serde(default)]
    validate_only: bool,
}

#[derive(Deserialize)]
pub struct NameValue {
    name: String,
    value: Option<String>,
}

pub async fn create_topic(state: &State, mut req: Req, c: &str) -> Result<(Req, Value), RestError> {
    state.check_cluster(c).await?;
    let body: Option<CreateTopic> = req.json(state.limit()).await?;
    let body = body.ok_or_else(|| RestError::BadRequest("topic_name is required".into()))?;
    let mut configs = Vec::new();
    for kv in &body.configs {
        let v =
            kv.value.clone().ok_or_else(|| RestError::BadRequest(format!("config {}: no value", kv.name)))?;
        configs.push((kv.name.clone(), v));
    }
    let new = NewTopic {
        name: body.topic_name.clone(),
        partitions: body.partitions_count.unwrap_or(-1),
        replication_factor: body.replication_factor.unwrap_or(-1),
        configs,
    };
    let client = state.client().await?;
    let result = client.create_topics(std::slice::from_ref(&new), body.validate_only).await?;
    match result.into_iter().next() {
        Some(Ok(())) => {}
        Some(Err(e)) if e.code() == Some(riptide_client::KafkaCode::TOPIC_ALREADY_EXISTS) => {
            return Err(RestError::TopicExists(body.topic_name))
        }
        Some(Err(e)) => return Err(e.into()),
        None => return Err(RestError::BadRequest("no answer for the topic".into())),
    }
    if body.validate_only {
        let path = topic_path(c, &new.name);
        let v = json!({
            "kind": "KafkaTopic",
            "metadata": meta(&req, &path, &format!("kafka={c}/topic={}", new.name)),
            "cluster_id": c, "topic_name": new.name, "is_internal": false,
            "replication_factor": new.replication_factor.max(0), "partitions_count": new.partitions.max(0),
            "partitions": related(&req, &format!("{path}/partitions")),
            "configs": related(&req, &format!("{path}/configs")),
            "partition_reassignments": related(&req, &format!("{path}/partitions/-/reassignment")),
            "authorized_operations": [],
        });
        return Ok((req, v));
    }
    // CreateTopics answers once the controller committed the topic; the partitions reach
    // this broker's metadata a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Ok(t) = describe_topic(state, &new.name).await {
            if !t.partitions.is_empty() || std::time::Instant::now() > deadline {
                let v = topic_json(&req, c, &t);
                return Ok((req, v));
            }
        } else if std::time::Instant::now() > deadline {
            return Err(RestError::UnknownTopic(new.name));
        }
        compio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub async fn delete_topic(state: &State, c: &str, t: &str) -> Result<(), RestError> {
    state.check_cluster(c).await?;
    let r = state.client().await?.delete_topics(&[t]).await?;
    state.forget_topic(t);
    match r.into_iter().next() {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) if e.code() == Some(riptide_client::KafkaCode::UNKNOWN_TOPIC_OR_PARTITION) => {
            Err(RestError::UnknownTopic(t.to_string()))
        }
        Some(Err(e)) => Err(e.into()),
        None => Err(RestError::BadRequest("no answer for the topic".into())),
    }
}

fn config_json(req: &Req, c: &str, t: &str, e: &ConfigEntry) -> Value {
    let path = format!("{}/configs/{}", topic_path(c, t), enc(&e.name));
    json!({
        "kind": "KafkaTopicConfig",
        "metadata": meta(req, &path, &format!("kafka={c}/topic={t}/config={}", e.name)),
        "cluster_id": c,
        "topic_name": t,
        "name": e.name,
        "value": if e.sensitive { None } else { e.value.clone() },
        "is_default": e.source == 5,
        "is_read_only": e.read_only,
        "is_sensitive": e.sensitive,
        "source": e.source_name(),
        "synonyms": [{"name": e.name, "value": if e.sensitive { None } else { e.value.clone() }, "source": e.source_name()}],
    })
}

async fn topic_configs(state: &State, t: &str) -> Result<Vec<ConfigEntry>, RestError> {
    describe_topic(state, t).await?;
    let client = state.client().await?;
    Ok(client.describe_configs(ConfigResource::Topic, t, None).await?)
}

pub async fn configs(state: &State, req: &Req, c: &str, t: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let mut entries = topic_configs(state, t).await?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let data = entries.iter().map(|e| config_json(req, c, t, e)).collect();
    Ok(list(req, "KafkaTopicConfigList", &format!("{}/configs", topic_path(c, t)), data))
}

pub async fn config(state: &State, req: &Req, c: &str, t: &str, name: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let entries = topic_configs(state, t).await?;
    let e = entries
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| RestError::NotFound(format!("Config {name} not found for topic {t}.")))?;
    Ok(config_json(req, c, t, e))
}

#[derive(Deserialize)]
struct ValueBody {
    value: Option<String>,
}

#[derive(Deserialize)]
struct AlterBatch {
    data: Vec<AlterEntry>,
}

#[derive(Deserialize)]
struct AlterEntry {
    name: String,
    value: Option<String>,
    operation: Option<String>,
}

async fn alter(state: &State, t: &str, changes: &[AlterConfig]) -> Result<(), RestError> {
    describe_topic(state, t).await?;
    Ok(state.client().await?.alter_configs(ConfigResource::Topic, t, changes).await?)
}

pub async fn set_config(state: &State, mut req: Req, c: &str, t: &str, name: &str) -> Result<(), RestError> {
    state.check_cluster(c).await?;
    let body: Option<ValueBody> = req.json(state.limit()).await?;
    let value =
        body.and_then(|b| b.value).ok_or_else(|| RestError::BadRequest("value is required".into()))?;
    alter(state, t, &[AlterConfig::Set(name.to_string(), value)]).await
}

pub async fn reset_config(state: &State, c: &str, t: &str, name: &str) -> Result<(), RestError> {
    state.check_cluster(c).await?;
    alter(state, t, &[AlterConfig::Delete(name.to_string())]).await
}

pub async fn alter_configs(state: &State, mut req: Req, c: &str, t: &str) -> Result<(), RestError> {
    state.check_cluster(c).await?;
    let body: Option<AlterBatch> = req.json(state.limit()).await?;
    let body = body.ok_or_else(|| RestError::BadRequest("data is required".into()))?;
    let mut changes = Vec::with_capacity(body.data.len());
    for e in body.data {
        match (e.operation.as_deref().map(str::to_ascii_uppercase).as_deref(), e.value) {
            (None | Some("SET"), Some(v)) => changes.push(AlterConfig::Set(e.name, v)),
            (None | Some("SET"), None) => {
                return Err(RestError::BadRequest(format!("config {}: SET needs a value", e.name)))
            }
            (Some("DELETE"), _) => changes.push(AlterConfig::Delete(e.name)),
            (Some(op), _) => {
                return Err(RestError::BadRequest(format!("operation must be SET or DELETE, not {op}")))
            }
        }
    }
    alter(state, t, &changes).await
}

fn partition_json(req: &Req, c: &str, t: &str, p: &riptide_client::PartitionInfo) -> Value {
    let path = format!("{}/partitions/{}", topic_path(c, t), p.partition);
    json!({
        "kind": "KafkaPartition",
        "metadata": meta(req, &path, &format!("kafka={c}/topic={t}/partition={}", p.partition)),
        "cluster_id": c,
        "topic_name": t,
        "partition_id": p.partition,
        "leader": if p.leader >= 0 { related(req, &format!("{path}/replicas/{}", p.leader)) } else { Value::Null },
        "replicas": related(req, &format!("{path}/replicas")),
        "reassignment": related(req, &format!("{path}/reassignment")),
    })
}

fn find_partition<'a>(t: &'a TopicInfo, p: &str) -> Result<&'a riptide_client::PartitionInfo, RestError> {
    p.parse::<i32>().ok().and_then(|id| t.partitions.iter().find(|x| x.partition == id)).ok_or_else(|| {
        RestError::UnknownPartition { topic: t.name.clone(), partition: p.parse().unwrap_or(-1) }
    })
}

pub async fn partitions(state: &State, req: &Req, c: &str, t: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let info = describe_topic(state, t).await?;
    let data = info.partitions.iter().map(|p| partition_json(req, c, t, p)).collect();
    Ok(list(req, "KafkaPartitionList", &format!("{}/partitions", topic_path(c, t)), data))
}

pub async fn partition(state: &State, req: &Req, c: &str, t: &str, p: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let info = describe_topic(state, t).await?;
    Ok(partition_json(req, c, t, find_partition(&info, p)?))
}

pub async fn replicas(state: &State, req: &Req, c: &str, t: &str, p: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let info = describe_topic(state, t).await?;
    let part = find_partition(&info, p)?;
    let base = format!("{}/partitions/{}/replicas", topic_path(c, t), part.partition);
    let data = part
        .replicas
        .iter()
        .map(|b| {
            json!({
                "kind": "KafkaReplica",
                "metadata": meta(req, &format!("{base}/{b}"), &format!("kafka={c}/topic={t}/partition={}/replica={b}", part.partition)),
                "cluster_id": c,
                "topic_name": t,
                "partition_id": part.partition,
                "broker_id": b,
                "is_leader": *b == part.leader,
                "is_in_sync": part.isr.contains(b),
                "broker": related(req, &format!("{}/brokers/{b}", cluster_path(c))),
            })
        })
        .collect();
    Ok(list(req, "KafkaReplicaList", &base, data))
}

// ---- v2 ----

fn v2_partition(p: &riptide_client::PartitionInfo) -> Value {
    json!({
        "partition": p.partition,
        "leader": p.leader,
        "replicas": p.replicas.iter().map(|b| json!({"broker": b, "leader": *b == p.leader, "in_sync": p.isr.contains(b)})).collect::<Vec<_>>(),
    })
}

pub async fn v2_topics(state: &State) -> Result<Value, RestError> {
    let m = state.client().await?.metadata(None, false).await?;
    let mut names: Vec<&str> = m.topics.iter().filter(|t| t.error == 0).map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    Ok(json!(names))
}

pub async fn v2_topic(state: &State, t: &str) -> Result<Value, RestError> {
    let info = describe_topic(state, t).await?;
    let entries = state.client().await?.describe_configs(ConfigResource::Topic, t, None).await?;
    let configs: serde_json::Map<String, Value> =
        entries.into_iter().filter(|e| !e.sensitive).map(|e| (e.name, json!(e.value))).collect();
    Ok(json!({
        "name": t,
        "configs": configs,
        "partitions": info.partitions.iter().map(v2_partition).collect::<Vec<_>>(),
    }))
}

pub async fn v2_partitions(state: &State, t: &str) -> Result<Value, RestError> {
    let info = describe_topic(state, t).await?;
    Ok(json!(info.partitions.iter().map(v2_partition).collect::<Vec<_>>()))
}

pub async fn v2_partition_one(state: &State, t: &str, p: &str) -> Result<Value, RestError> {
    let info = describe_topic(state, t).await?;
    Ok(v2_partition(find_partition(&info, p)?))
}

pub async fn v2_offsets(state: &State, t: &str, p: &str) -> Result<Value, RestError> {
    let info = describe_topic(state, t).await?;
    let part = find_partition(&info, p)?.partition;
    let client = state.client().await?;
    let first = client.list_offsets(&info, &[part], OffsetSpec::Earliest).await?;
    let last = client.list_offsets(&info, &[part], OffsetSpec::Latest).await?;
    Ok(json!({"beginning_offset": first.get(&part), "end_offset": last.get(&part)}))
}

pub async fn v2_brokers(state: &State) -> Result<Value, RestError> {
    let m = state.client().await?.metadata(Some(&[]), false).await?;
    let mut ids: Vec<i32> = m.brokers.iter().map(|b| b.node_id).collect();
    ids.sort_unstable();
    Ok(json!({"brokers": ids}))
}
