//! v3 consumer groups: groups, their consumers and assignments, and lag from the committed
//! offsets against the log end offsets.

use std::collections::BTreeMap;

use riptide_client::{GroupDescription, MemberDescription, OffsetSpec, TopicPartition};
use serde_json::{json, Value};

use super::error::RestError;
use super::http::{encode_segment as enc, Req};
use super::state::State;
use super::topics::{cluster_path, list, meta, related, topic_path};

fn group_path(c: &str, g: &str) -> String {
    format!("{}/consumer-groups/{}", cluster_path(c), enc(g))
}

async fn describe(state: &State, g: &str) -> Result<GroupDescription, RestError> {
    let d = state.client().await?.describe_group(g).await?;
    if d.state == "Dead" || (d.state.is_empty() && d.members.is_empty()) {
        return Err(RestError::NotFound(format!("Consumer group {g} not found.")));
    }
    Ok(d)
}

fn group_json(req: &Req, c: &str, d: &GroupDescription, coordinator: i32) -> Value {
    let path = group_path(c, &d.group_id);
    json!({
        "kind": "KafkaConsumerGroup",
        "metadata": meta(req, &path, &format!("kafka={c}/consumer-group={}", d.group_id)),
        "cluster_id": c,
        "consumer_group_id": d.group_id,
        "is_simple": d.protocol_type.is_empty(),
        "partition_assignor": d.protocol,
        "state": state_name(&d.state),
        "coordinator": related(req, &format!("{}/brokers/{coordinator}", cluster_path(c))),
        "consumers": related(req, &format!("{path}/consumers")),
        "lag_summary": related(req, &format!("{path}/lag-summary")),
    })
}

/// REST Proxy spells the states in upper case with underscores (`PREPARING_REBALANCE`).
fn state_name(s: &str) -> String {
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    if out.is_empty() {
        "UNKNOWN".into()
    } else {
        out
    }
}

async fn coordinator_id(state: &State, g: &str) -> i32 {
    match state.client().await {
        Ok(c) => c.coordinator_id(g).await.unwrap_or(-1),
        Err(_) => -1,
    }
}

pub async fn groups(state: &State, req: &Req, c: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let client = state.client().await?;
    let mut data = Vec::new();
    let mut listed = client.list_groups().await?;
    listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    // Share groups have their own collection (`share_groups`).
    for g in listed.into_iter().filter(|g| g.protocol_type != "share") {
        if let Ok(d) = describe(state, &g.group_id).await {
            let coordinator = coordinator_id(state, &g.group_id).await;
            data.push(group_json(req, c, &d, coordinator));
        }
    }
    Ok(list(req, "KafkaConsumerGroupList", &format!("{}/consumer-groups", cluster_path(c)), data))
}

pub async fn group(state: &State, req: &Req, c: &str, g: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let d = describe(state, g).await?;
    Ok(group_json(req, c, &d, coordinator_id(state, g).await))
}

fn consumer_json(req: &Req, c: &str, g: &str, m: &MemberDescription) -> Value {
    let path = format!("{}/consumers/{}", group_path(c, g), enc(&m.member_id));
    json!({
        "kind": "KafkaConsumer",
        "metadata": meta(req, &path, &format!("kafka={c}/consumer-group={g}/consumer={}", m.member_id)),
        "cluster_id": c,
        "consumer_group_id": g,
        "consumer_id": m.member_id,
        "instance_id": m.instance_id,
        "client_id": m.client_id,
        "assignments": related(req, &format!("{path}/assignments")),
    })
}

pub async fn consumers(state: &State, req: &Req, c: &str, g: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let d = describe(state, g).await?;
    let data = d.members.iter().map(|m| consumer_json(req, c, g, m)).collect();
    Ok(list(req, "KafkaConsumerList", &format!("{}/consumers", group_path(c, g)), data))
}

fn find_member<'a>(d: &'a GroupDescription, id: &str) -> Result<&'a MemberDescription, RestError> {
    d.members
        .iter()
        .find(|m| m.member_id == id)
        .ok_or_else(|| RestError::NotFound(format!("Consumer {id} not found in group {}.", d.group_id)))
}

pub async fn consumer(state: &State, req: &Req, c: &str, g: &str, id: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let d = describe(state, g).await?;
    Ok(consumer_json(req, c, g, find_member(&d, id)?))
}

pub async fn assignments(state: &State, req: &Req, c: &str, g: &str, id: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let d = describe(state, g).await?;
    let m = find_member(&d, id)?;
    let base = format!("{}/consumers/{}/assignments", group_path(c, g), enc(id));
    let mut data = Vec::new();
    for (t, ps) in &m.assignment {
        for p in ps {
            data.push(json!({
                "kind": "KafkaConsumerAssignment",
                "metadata": meta(req, &format!("{base}/{}/partitions/{p}", enc(t)), &format!("kafka={c}/consumer-group={g}/consumer={id}/assignment={t}/partition={p}")),
                "cluster_id": c,
                "consumer_group_id": g,
                "consumer_id": id,
                "topic_name": t,
                "partition_id": p,
                "partition": related(req, &format!("{}/partitions/{p}", topic_path(c, t))),
                "lag": related(req, &format!("{}/lags/{}/partitions/{p}", group_path(c, g), enc(t))),
            }));
        }
    }
    Ok(list(req, "KafkaConsumerAssignmentList", &base, data))
}

struct Lag {
    topic: String,
    partition: i32,
    current: i64,
    end: i64,
    owner: Option<MemberDescription>,
}

async fn lags_of(state: &State, g: &str) -> Result<Vec<Lag>, RestError> {
    let d = describe(state, g).await?;
    let client = state.client().await?;
    let committed = client.committed_offsets(g, None).await?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in committed.keys() {
        by_topic.entry(tp.topic.as_str()).or_default().push(tp.partition);
    }
    let mut ends = BTreeMap::new();
    for (t, ps) in by_topic {
        let Ok(info) = client.topic(t).await else { continue };
        for (p, end) in client.list_offsets(&info, &ps, OffsetSpec::Latest).await? {
            ends.insert((t.to_string(), p), end);
        }
    }
    let mut out = Vec::new();
    for (TopicPartition { topic: t, partition: p }, current) in committed {
        let Some(end) = ends.get(&(t.clone(), p)).copied() else { continue };
        let owner = d
            .members
            .iter()
            .find(|m| m.assignment.iter().any(|(mt, mps)| *mt == t && mps.contains(&p)))
            .cloned();
        out.push(Lag { topic: t, partition: p, current: current.0, end: end.0, owner });
    }
    Ok(out)
}

pub async fn lags(state: &State, req: &Req, c: &str, g: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let base = format!("{}/lags", group_path(c, g));
    let data = lags_of(state, g)
        .await?
        .into_iter()
        .map(|l| {
            json!({
                "kind": "KafkaConsumerLag",
                "metadata": meta(req, &format!("{base}/{}/partitions/{}", enc(&l.topic), l.partition), &format!("kafka={c}/consumer-group={g}/lag={}/partition={}", l.topic, l.partition)),
                "cluster_id": c,
                "consumer_group_id": g,
                "topic_name": l.topic,
                "partition_id": l.partition,
                "current_offset": l.current,
                "log_end_offset": l.end,
                "lag": (l.end - l.current).max(0),
                "consumer_id": l.owner.as_ref().map_or("", |m| m.member_id.as_str()),
                "instance_id": l.owner.as_ref().and_then(|m| m.instance_id.clone()),
                "client_id": l.owner.as_ref().map_or("", |m| m.client_id.as_str()),
            })
        })
        .collect();
    Ok(list(req, "KafkaConsumerLagList", &base, data))
}

pub async fn lag_summary(state: &State, req: &Req, c: &str, g: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let lags = lags_of(state, g).await?;
    let total: i64 = lags.iter().map(|l| (l.end - l.current).max(0)).sum();
    let max = lags.iter().max_by_key(|l| (l.end - l.current).max(0));
    let path = format!("{}/lag-summary", group_path(c, g));
    let consumer = max.and_then(|l| l.owner.as_ref());
    Ok(json!({
        "kind": "KafkaConsumerGroupLagSummary",
        "metadata": meta(req, &path, &format!("kafka={c}/consumer-group={g}/lag-summary")),
        "cluster_id": c,
        "consumer_group_id": g,
        "max_lag_consumer_id": consumer.map_or("", |m| m.member_id.as_str()),
        "max_lag_instance_id": consumer.and_then(|m| m.instance_id.clone()),
        "max_lag_client_id": consumer.map_or("", |m| m.client_id.as_str()),
        "max_lag_topic_name": max.map_or("", |l| l.topic.as_str()),
        "max_lag_partition_id": max.map_or(0, |l| l.partition),
        "max_lag": max.map_or(0, |l| (l.end - l.current).max(0)),
        "total_lag": total,
        "max_lag_consumer": related(req, &format!("{}/consumers/{}", group_path(c, g), enc(consumer.map_or("", |m| m.member_id.as_str())))),
        "max_lag_partition": related(req, &format!("{}/partitions/{}", topic_path(c, max.map_or("", |l| l.topic.as_str())), max.map_or(0, |l| l.partition))),
    }))
}
