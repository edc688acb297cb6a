//! v2 consumer instances: a group member (or a manual assignment) kept by the REST thread
//! between HTTP calls, with its positions, and deleted after `rest.consumer.instance.timeout.ms`
//! without use. A background sweep heartbeats members between polls and rejoins them when
//! their group rebalances, as a Java consumer's heartbeat thread does.

use riptide_model::Offset;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::lock::Mutex;
use riptide_client::{FetchOptions, GroupConfig, GroupMember, KafkaCode, OffsetSpec, TopicPartition};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::RestError;
use super::http::Req;
use super::records::{decode_v2, Embedded};
use super::state::State;
use crate::instance::{InUse, Inner, Instance};

#[derive(Deserialize, Default)]
pub struct CreateBody {
    name: Option<String>,
    format: Option<String>,
    #[serde(rename = "auto.offset.reset")]
    auto_offset_reset: Option<String>,
    #[serde(rename = "auto.commit.enable")]
    auto_commit_enable: Option<Value>,
    #[serde(rename = "fetch.min.bytes")]
    fetch_min_bytes: Option<Value>,
    #[serde(rename = "consumer.request.timeout.ms")]
    consumer_request_timeout_ms: Option<Value>,
}

/// REST Proxy takes these as strings ("true", "1000") or JSON scalars.
fn scalar(v: &Option<Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

pub async fn create(state: &State, mut req: Req, group: &str) -> Result<Value, RestError> {
    let body: Option<CreateBody> = req.json(state.limit()).await?;
    let body = body.unwrap_or_default();
    let bad = |m: String| RestError::InvalidConsumerConfig(m);
    let format = match body.format.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("binary") => Embedded::Binary,
        Some("json") => Embedded::Json,
        Some(f) => {
            return Err(bad(format!(
                "format {f:?} is not supported (binary or json; no schema registry here)"
            )))
        }
    };
    let reset = match body.auto_offset_reset.as_deref() {
        None | Some("latest") | Some("largest") => OffsetSpec::Latest,
        Some("earliest") | Some("smallest") => OffsetSpec::Earliest,
        Some(r) => return Err(bad(format!("auto.offset.reset must be earliest or latest, not {r:?}"))),
    };
    let auto_commit = match scalar(&body.auto_commit_enable).as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(v) => return Err(bad(format!("auto.commit.enable must be true or false, not {v:?}"))),
    };
    let number = |v: &Option<Value>, what: &str, default: i64| -> Result<i64, RestError> {
        match scalar(v) {
            None => Ok(default),
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad(format!("{what} must be a non-negative integer, not {s:?}"))),
        }
    };
    let fetch_min_bytes = number(&body.fetch_min_bytes, "fetch.min.bytes", 1)?.min(i32::MAX as i64) as i32;
    let request_timeout_ms =
        number(&body.consumer_request_timeout_ms, "consumer.request.timeout.ms", 1000)? as u64;
    let name = match body.name {
        Some(n) if n.is_empty() || n.contains('/') => return Err(bad(format!("bad instance name {n:?}"))),
        Some(n) => n,
        None => {
            let n = state.next_instance.get() + 1;
            state.next_instance.set(n);
            format!("rest-consumer-{}-{n}", std::process::id())
        }
    };
    let key = (group.to_string(), name.clone());
    if state.instances.borrow().contains_key(&key) {
        return Err(RestError::InstanceExists);
    }
    let instance = Instance {
        group: group.to_string(),
        name: name.clone(),
        format,
        reset,
        auto_commit,
        fetch_min_bytes,
        request_timeout_ms,
        last_used: std::cell::Cell::new(Instant::now()),
        in_use: std::cell::Cell::new(0),
        inner: Mutex::new(Inner::default()),
    };
    state.instances.borrow_mut().insert(key, Rc::new(instance));
    tracing::info!("REST consumer instance {name} ({} format) created in group {group}", format.name());
    Ok(json!({
        "instance_id": name,
        "base_uri": req.url(&format!("/consumers/{}/instances/{}", super::http::encode_segment(group), super::http::encode_segment(&name))),
    }))
}

pub fn instance(state: &State, group: &str, name: &str) -> Result<InUse, RestError> {
    let i = state
        .instances
        .borrow()
        .get(&(group.to_string(), name.to_string()))
        .cloned()
        .ok_or(RestError::UnknownInstance)?;
    i.in_use.set(i.in_use.get() + 1);
    i.last_used.set(Instant::now());
    Ok(InUse(i))
}

pub async fn delete(state: &State, group: &str, name: &str) -> Result<(), RestError> {
    let i = state
        .instances
        .borrow_mut()
        .remove(&(group.to_string(), name.to_string()))
        .ok_or(RestError::UnknownInstance)?;
    leave(&i).await;
    Ok(())
}

async fn leave(i: &Instance) {
    let mut inner = i.inner.lock().await;
    if let Some(m) = inner.member.take() {
        if let Err(e) = m.leave().await {
            tracing::debug!("REST consumer {} leaving group {}: {e}", i.name, i.group);
        }
    }
}

#[derive(Deserialize)]
struct Subscription {
    #[serde(default)]
    topics: Vec<String>,
    topic_pattern: Option<String>,
}

pub async fn subscribe(state: &State, mut req: Req, i: &Instance) -> Result<(), RestError> {
    let body: Option<Subscription> = req.json(state.limit()).await?;
    let body = body.ok_or_else(|| RestError::BadRequest("topics or topic_pattern is required".into()))?;
    let pattern = match &body.topic_pattern {
        Some(p) => Some(
            regex::Regex::new(&format!("^(?:{p})$"))
                .map_err(|e| RestError::BadRequest(format!("topic_pattern: {e}")))?,
        ),
        None => None,
    };
    if body.topics.is_empty() && pattern.is_none() {
        return Err(RestError::BadRequest("topics or topic_pattern is required".into()));
    }
    let mut inner = i.inner.lock().await;
    if !inner.assigned.is_empty() {
        return Err(mutually_exclusive());
    }
    if let Some(m) = inner.member.take() {
        let _ = m.leave().await;
    }
    inner.topics = body.topics;
    inner.pattern = pattern;
    inner.positions.clear();
    Ok(())
}

fn mutually_exclusive() -> RestError {
    RestError::Answered {
        status: 409,
        code: 40903,
        message: "Subscription to topics, partitions and pattern are mutually exclusive.".into(),
    }
}

pub async fn subscription(i: &Instance) -> Value {
    let inner = i.inner.lock().await;
    json!({"topics": inner.topics})
}

pub async fn unsubscribe(i: &Instance) {
    let mut inner = i.inner.lock().await;
    if let Some(m) = inner.member.take() {
        let _ = m.leave().await;
    }
    inner.topics.clear();
    inner.pattern = None;
    inner.positions.clear();
}

#[derive(Deserialize)]
struct Partitions {
    #[serde(default)]
    partitions: Vec<TopicPartitionBody>,
}

#[derive(Deserialize)]
struct TopicPartitionBody {
    topic: String,
    partition: i32,
}

#[derive(Deserialize)]
struct Offsets {
    #[serde(default)]
    offsets: Vec<OffsetBody>,
}

#[derive(Deserialize)]
struct OffsetBody {
    topic: String,
    partition: i32,
    offset: i64,
}

pub async fn assign(state: &State, mut req: Req, i: &Instance) -> Result<(), RestError> {
    let body: Option<Partitions> = req.json(state.limit()).await?;
    let body = body.ok_or_else(|| RestError::BadRequest("partitions is required".into()))?;
    let mut inner = i.inner.lock().await;
    if inner.subscribed() {
        return Err(mutually_exclusive());
    }
    inner.assigned = body.partitions.into_iter().map(|p| TopicPartition::new(p.topic, p.partition)).collect();
    let assigned = inner.assigned.clone();
    inner.positions.retain(|tp, _| assigned.contains(tp));
    Ok(())
}

pub async fn assignments(i: &Instance) -> Value {
    let inner = i.inner.lock().await;
    let owned: Vec<TopicPartition> = match &inner.member {
        Some(m) => m
            .assignment()
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| TopicPartition::new(t.as_str(), *p)))
            .collect(),
        None => inner.assigned.clone(),
    };
    json!({"partitions": owned.iter().map(|tp| json!({"topic": tp.topic, "partition": tp.partition})).collect::<Vec<_>>()})
}

/// `POST .../offsets`: REST Proxy commits offset+1 for each given record offset (the given
/// one is the last record processed); an empty body commits the current positions.
pub async fn commit(state: &State, mut req: Req, i: &Instance) -> Result<(), RestError> {
    let body: Option<Offsets> = req.json(state.limit()).await?;
    let inner = i.inner.lock().await;
    let offsets: BTreeMap<TopicPartition, Offset> = match body {
        Some(o) if !o.offsets.is_empty() => {
            // N is the last record processed; -1 (nothing processed yet) is the lowest meaningful.
            if let Some(bad) = o.offsets.iter().find(|o| o.offset < -1) {
                return Err(RestError::BadRequest(format!(
                    "{}/{}: offset {} is below -1",
                    bad.topic, bad.partition, bad.offset
                )));
            }
            o.offsets
                .into_iter()
                .map(|o| (TopicPartition::new(o.topic, o.partition), Offset(o.offset.saturating_add(1))))
                .collect()
        }
        _ => inner.positions.clone(),
    };
    commit_offsets(state, i, &inner, &offsets).await
}

async fn commit_offsets(
    state: &State,
    i: &Instance,
    inner: &Inner,
    offsets: &BTreeMap<TopicPartition, Offset>,
) -> Result<(), RestError> {
    if offsets.is_empty() {
        return Ok(());
    }
    match &inner.member {
        Some(m) => m.commit(offsets).await?,
        None => state.client().await?.commit_offsets(&i.group, -1, "", offsets).await?,
    }
    Ok(())
}

pub async fn committed(state: &State, mut req: Req, i: &Instance) -> Result<Value, RestError> {
    let body: Option<Partitions> = req.json(state.limit()).await?;
    let parts: Vec<TopicPartition> = body
        .map(|b| b.partitions.into_iter().map(|p| TopicPartition::new(p.topic, p.partition)).collect())
        .unwrap_or_default();
    let got = state.client().await?.committed_offsets(&i.group, Some(&parts)).await?;
    let offsets: Vec<Value> = parts
        .iter()
        .map(|tp| json!({"topic": tp.topic, "partition": tp.partition, "offset": got.get(tp).copied().unwrap_or(Offset(-1)), "metadata": ""}))
        .collect();
    Ok(json!({"offsets": offsets}))
}

pub async fn seek(state: &State, mut req: Req, i: &Instance) -> Result<(), RestError> {
    let body: Option<Offsets> = req.json(state.limit()).await?;
    let body = body.ok_or_else(|| RestError::BadRequest("offsets is required".into()))?;
    for o in &body.offsets {
        if o.offset < 0 {
            return Err(RestError::BadRequest(format!(
                "{}/{}: offset must not be negative",
                o.topic, o.partition
            )));
        }
        let info = state.topic(&o.topic).await?;
        if info.partitions.iter().all(|x| x.partition != o.partition) {
            return Err(RestError::UnknownPartition { topic: o.topic.clone(), partition: o.partition });
        }
    }
    let mut inner = i.inner.lock().await;
    for o in body.offsets {
        inner.positions.insert(TopicPartition::new(o.topic, o.partition), Offset(o.offset));
    }
    Ok(())
}

pub async fn seek_to(state: &State, mut req: Req, i: &Instance, spec: OffsetSpec) -> Result<(), RestError> {
    let body: Option<Partitions> = req.json(state.limit()).await?;
    let body = body.ok_or_else(|| RestError::BadRequest("partitions is required".into()))?;
    let client = state.client().await?;
    let mut found = Vec::new();
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for p in body.partitions {
        by_topic.entry(p.topic).or_default().push(p.partition);
    }
    for (t, ps) in by_topic {
        let info = state.topic(&t).await?;
        if let Some(p) = ps.iter().find(|p| info.partitions.iter().all(|x| x.partition != **p)) {
            return Err(RestError::UnknownPartition { topic: t, partition: *p });
        }
        for (p, o) in client.list_offsets(&info, &ps, spec).await? {
            found.push((TopicPartition::new(t.as_str(), p), o));
        }
    }
    let mut inner = i.inner.lock().await;
    inner.positions.extend(found);
    Ok(())
}

/// Joins the group on first use, follows rebalances; answers the partitions owned now.
async fn owned(state: &State, i: &Instance, inner: &mut Inner) -> Result<Vec<TopicPartition>, RestError> {
    if !inner.subscribed() {
        return Ok(inner.assigned.clone());
    }
    let client = state.client().await?;
    let rejoin = match inner.member.as_mut() {
        None => true,
        Some(m) => match m.heartbeat_if_due().await {
            Ok(r) => r,
            Err(e) if e.code() == Some(KafkaCode::UNKNOWN_MEMBER_ID) => true,
            Err(e) => return Err(e.into()),
        },
    };
    if rejoin {
        let topics = subscribed_topics(state, inner).await?;
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        match inner.member.as_mut() {
            Some(m) => m.rejoin().await?,
            None => {
                let mut config = GroupConfig::new(&i.group);
                config.session_timeout_ms = 30_000;
                inner.member = Some(GroupMember::join(client, config, &refs).await?);
            }
        }
    }
    let owned: Vec<TopicPartition> = inner
        .member
        .as_ref()
        .map(|m| {
            m.assignment()
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| TopicPartition::new(t.as_str(), *p)))
                .collect()
        })
        .unwrap_or_default();
    inner.positions.retain(|tp, _| owned.contains(tp));
    Ok(owned)
}

async fn subscribed_topics(state: &State, inner: &Inner) -> Result<Vec<String>, RestError> {
    let Some(p) = &inner.pattern else { return Ok(inner.topics.clone()) };
    let m = state.client().await?.metadata(None, false).await?;
    Ok(m.topics.iter().filter(|t| !t.is_internal && p.is_match(&t.name)).map(|t| t.name.clone()).collect())
}

/// `GET .../records`: one long poll over the owned partitions.
pub async fn poll(state: &State, req: &Req, i: &Instance) -> Result<Value, RestError> {
    if let Some(accept) = req.accept.as_deref() {
        let a = accept.to_ascii_lowercase();
        let wants = |f: &str| a.contains(&format!("vnd.kafka.{f}.v2"));
        let other_formats = ["avro", "jsonschema", "protobuf"].iter().any(|f| wants(f));
        let mismatch = other_formats
            || (wants("binary") && i.format != Embedded::Binary)
            || (wants("json") && i.format != Embedded::Json);
        if mismatch {
            return Err(RestError::FormatMismatch);
        }
    }
    let timeout_ms = match req.query.get("timeout") {
        Some(t) => {
            t.parse::<u64>().map_err(|_| RestError::BadRequest(format!("timeout {t:?} is not a number")))?
        }
        None => i.request_timeout_ms,
    }
    .min(30_000);
    let max_bytes = match req.query.get("max_bytes") {
        Some(b) => b
            .parse::<usize>()
            .map_err(|_| RestError::BadRequest(format!("max_bytes {b:?} is not a number")))?,
        None => 64 << 20,
    }
    .max(1);
    let client = state.client().await?;
    let mut inner = i.inner.lock().await;
    let owned = owned(state, i, &mut inner).await?;
    // Starting points for partitions without a position: the commit, else auto.offset.reset.
    let missing: Vec<TopicPartition> =
        owned.iter().filter(|tp| !inner.positions.contains_key(*tp)).cloned().collect();
    if !missing.is_empty() {
        let committed = client.committed_offsets(&i.group, Some(&missing)).await?;
        let mut reset: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for tp in missing {
            match committed.get(&tp) {
                Some(o) if *o >= Offset(0) => {
                    inner.positions.insert(tp, *o);
                }
                _ => reset.entry(tp.topic).or_default().push(tp.partition),
            }
        }
        for (t, ps) in reset {
            let info = state.topic(&t).await?;
            for (p, o) in client.list_offsets(&info, &ps, i.reset).await? {
                inner.positions.insert(TopicPartition::new(t.as_str(), p), o);
            }
        }
    }
    let mut by_leader: BTreeMap<(i32, String), Vec<(i32, Offset)>> = BTreeMap::new();
    for tp in &owned {
        let Some(pos) = inner.positions.get(tp).copied() else { continue };
        let info = state.topic(&tp.topic).await?;
        let leader = info.leader_of(tp.partition).unwrap_or(-1);
        by_leader.entry((leader, tp.topic.clone())).or_default().push((tp.partition, pos));
    }
    let options = FetchOptions {
        max_wait_ms: timeout_ms as i32,
        min_bytes: i.fetch_min_bytes.max(1),
        max_bytes: max_bytes.min(i32::MAX as usize) as i32,
        partition_max_bytes: max_bytes.min(1 << 20) as i32,
    };
    let fetches =
        by_leader.into_iter().filter(|((l, _), _)| *l >= 0).map(|((leader, topic), positions)| async move {
            let r = client.fetch(leader, &topic, &positions, options).await;
            (topic, r)
        });
    let answers = futures_util::future::join_all(fetches).await;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for (topic, r) in answers {
        let parts = match r {
            Ok(p) => p,
            Err(e) => {
                state.forget_topic(&topic);
                if out.is_empty() && !e.is_retriable() {
                    return Err(e.into());
                }
                continue;
            }
        };
        for p in parts {
            let tp = TopicPartition::new(topic.as_str(), p.partition);
            if p.error == KafkaCode::OFFSET_OUT_OF_RANGE.0 {
                inner.positions.remove(&tp);
                continue;
            }
            if p.error != 0 {
                state.forget_topic(&topic);
                continue;
            }
            let mut next = None;
            for r in &p.records {
                let size = r.key.as_ref().map_or(0, |b| b.len()) + r.value.as_ref().map_or(0, |b| b.len());
                if bytes > 0 && bytes + size > max_bytes {
                    break;
                }
                bytes += size;
                out.push(decode_v2(&topic, p.partition, r, i.format));
                next = Some(r.offset.plus(1));
            }
            let all_returned = next == p.records.last().map(|r| r.offset.plus(1));
            match (next, all_returned) {
                (Some(n), false) => {
                    inner.positions.insert(tp, n);
                }
                _ => {
                    if let Some(n) = p.next_offset.or(next) {
                        inner.positions.insert(tp, n);
                    }
                }
            }
        }
    }
    if i.auto_commit && !out.is_empty() {
        let positions = inner.positions.clone();
        if let Err(e) = commit_offsets(state, i, &inner, &positions).await {
            tracing::debug!("REST consumer {}: auto-commit: {e}", i.name);
        }
    }
    Ok(Value::Array(out))
}

/// Deletes idle instances and heartbeats the others' group memberships.
pub async fn expire_idle(state: Rc<State>) {
    let timeout = Duration::from_millis(state.config.consumer_instance_timeout_ms);
    loop {
        compio::time::sleep(Duration::from_millis(500)).await;
        let all: Vec<Rc<Instance>> = state.instances.borrow().values().cloned().collect();
        for i in all {
            if i.in_use.get() == 0 && i.last_used.get().elapsed() > timeout {
                state.instances.borrow_mut().remove(&(i.group.clone(), i.name.clone()));
                tracing::info!("REST consumer instance {} in group {} expired", i.name, i.group);
                compio::runtime::spawn(async move { leave(&i).await }).detach();
                continue;
            }
            let st = state.clone();
            compio::runtime::spawn(async move {
                let Some(mut inner) = i.inner.try_lock() else { return };
                if inner.member.is_none() {
                    return;
                }
                if let Err(e) = owned(&st, &i, &mut inner).await {
                    tracing::debug!("REST consumer {} heartbeat: {e}", i.name);
                }
            })
            .detach();
        }
    }
}
