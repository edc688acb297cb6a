//! v3 share groups (KIP-932): the share groups of the cluster, each with its members, their
//! assignments (members may share a partition) and, per partition, the share-partition start
//! offset against the log end: the records not yet acknowledged or archived, in flight
//! included (`lag`).

use std::collections::BTreeMap;

use riptide_client::share::ShareGroupDescription;
use riptide_client::{OffsetSpec, TopicPartition};
use serde_json::{json, Value};

use super::error::RestError;
use super::http::{encode_segment as enc, Req};
use super::state::State;
use super::topics::{cluster_path, list, meta, topic_path};

fn group_path(c: &str, g: &str) -> String {
    format!("{}/share-groups/{}", cluster_path(c), enc(g))
}

async fn describe(state: &State, g: &str) -> Result<ShareGroupDescription, RestError> {
    let client = state.client().await?;
    match client.describe_group(g).await {
        Ok(d) if d.protocol_type == "share" => Ok(client.describe_share_group(g).await?),
        _ => Err(RestError::NotFound(format!("Share group {g} not found."))),
    }
}

async fn group_json(
    state: &State,
    req: &Req,
    c: &str,
    d: &ShareGroupDescription,
) -> Result<Value, RestError> {
    let client = state.client().await?;
    let starts = client.share_group_offsets(&d.group_id).await?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in starts.keys() {
        by_topic.entry(tp.topic.as_str()).or_default().push(tp.partition);
    }
    let mut ends: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for (t, ps) in by_topic {
        let Ok(info) = client.topic(t).await else { continue };
        if let Ok(found) = client.list_offsets(&info, &ps, OffsetSpec::Latest).await {
            ends.extend(found.into_iter().map(|(p, o)| (TopicPartition::new(t, p), o.0)));
        }
    }
    let path = group_path(c, &d.group_id);
    let partitions: Vec<Value> = starts
        .iter()
        .map(|(tp, start)| {
            let end = ends.get(tp).copied();
            json!({
                "topic_name": tp.topic,
                "partition_id": tp.partition,
                "partition": {"related": req.url(&format!("{}/partitions/{}", topic_path(c, &tp.topic), tp.partition))},
                "start_offset": start,
                "log_end_offset": end,
                "lag": end.map(|e| (e - start).max(0)),
            })
        })
        .collect();
    let total: i64 = partitions.iter().filter_map(|p| p["lag"].as_i64()).sum();
    Ok(json!({
        "kind": "KafkaShareGroup",
        "metadata": meta(req, &path, &format!("kafka={c}/share-group={}", d.group_id)),
        "cluster_id": c,
        "share_group_id": d.group_id,
        "state": d.state.to_ascii_uppercase(),
        "group_epoch": d.group_epoch,
        "partition_assignor": d.assignor,
        "consumers": d.members.iter().map(|m| json!({
            "consumer_id": m.member_id,
            "client_id": m.client_id,
            "host": m.client_host,
            "member_epoch": m.member_epoch,
            "subscribed_topics": m.subscribed,
            "assignments": m.assignment.iter().flat_map(|(t, ps)| ps.iter().map(move |p| json!({"topic_name": t, "partition_id": p}))).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "partitions": partitions,
        "total_lag": total,
    }))
}

pub async fn groups(state: &State, req: &Req, c: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let client = state.client().await?;
    let mut data = Vec::new();
    for g in client.list_groups().await?.into_iter().filter(|g| g.protocol_type == "share") {
        if let Ok(d) = describe(state, &g.group_id).await {
            data.push(group_json(state, req, c, &d).await?);
        }
    }
    Ok(list(req, "KafkaShareGroupList", &format!("{}/share-groups", cluster_path(c)), data))
}

pub async fn group(state: &State, req: &Req, c: &str, g: &str) -> Result<Value, RestError> {
    state.check_cluster(c).await?;
    let d = describe(state, g).await?;
    group_json(state, req, c, &d).await
}
