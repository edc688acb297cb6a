//! Fetch (v4..=17): long poll until `min_bytes` are readable or `max_wait_ms` passes, then an
//! answer whose record sections are segment-file ranges (`Chunk::File`), never decoded.
//!
//! Rules followed (docs/KAFKA-NOTES.md): whole batches from the one holding the fetch offset;
//! the first non-empty partition may exceed the limits by one batch (KIP-74) so consumers
//! always progress; per-partition and response `max_bytes`. Fetch sessions (KIP-227, v7+) as
//! `fetch_session` keeps them: an incremental request reads the session's partitions and is
//! answered with those that have news. From v13 (KIP-516) topics are named by id both ways;
//! an id this broker does not know is answered UNKNOWN_TOPIC_ID per partition. v15 moves the
//! follower's id into `replica_state` (its broker epoch is not checked: Riptide's followers
//! fetch at v12); v16 adds the endpoints of the leaders named in NOT_LEADER hints (KIP-951);
//! v17's replica directory ids (JBOD, KIP-858) are read and not used: a broker has one log
//! directory.
//!
//! All partitions of a round are read at once, one message per owner shard (`route_read`);
//! the response's `max_bytes` is then applied in request (or session) order.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::FetchRequest;

use kafka_protocol::ResponseError;

use super::error::partition_code;
use super::fetch_session::{AnswerSummary, Context, FetchParams, PartitionKey, TopicKey};
use super::leader_hint::{self, CurrentLeader};
use super::{Chunk, Ctx, RequestError, RequestInfo, Response};
use crate::partition::{EpochEndOffset, LeaderEpoch, Offset, PartitionError, ReplicaFetch};
use crate::quota::Kind;
use crate::security::acl::{op, resource};
use crate::security::at_rest::{open_all, Keyring};
use crate::shard::mailbox::{ReadCall, ReadOutcome};
use crate::shard::router::{route_read, route_read_one};

/// Upper bound on a long poll, whatever the client asks.
const MAX_WAIT_MS_LIMIT: i32 = 60_000;

struct PartitionResult {
    index: i32,
    outcome: ReadOutcome,
}

/// One partition a fetch reads, its topic resolved against this broker's metadata.
struct Target {
    key: PartitionKey,
    /// The topic's name (empty when its id is unknown).
    topic: Arc<str>,
    topic_id: u128,
    /// Refused before reading: unknown topic or id, or not authorized.
    state: Result<(), PartitionError>,
    /// Consumers of it get opened batches (encryption at rest; followers copy sealed bytes).
    sealed: bool,
    params: FetchParams,
}

/// The follower's broker id (v15 moved it into `replica_state`), -1 for a consumer.
fn replica_id(request: &FetchRequest, version: i16) -> i32 {
    if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    }
}

pub async fn handle(ctx: &Ctx, info: &RequestInfo, request: FetchRequest) -> Result<Response, RequestError> {
    let started = Instant::now();
    let v = info.version;
    let mut wait = Duration::from_millis(request.max_wait_ms.clamp(0, MAX_WAIT_MS_LIMIT) as u64);
    // min_bytes 0 answers at once, as in Kafka; 1 (the usual) waits for any data.
    let min_bytes = request.min_bytes.max(0) as usize;
    let replica = replica_id(&request, v);
    let (requested, forgotten) = requested_partitions(&request, v);
    let now_ms = crate::clock::now_ms();
    // Before v7 the defaults (session 0, epoch -1) ask for no session.
    let (context, wanted) = match ctx.fetch_sessions.new_context(
        request.session_id,
        request.session_epoch,
        v >= 13,
        replica >= 0,
        requested,
        &forgotten,
        now_ms,
    ) {
        Ok(c) => c,
        Err(e) => return encode_error(info, e.kafka().code()),
    };
    let targets = resolve(ctx, info, replica, &wanted);
    // A consumer over its fetch quota gets an answer at once with no records (Kafka's
    // throttled fetch response), which still moves its fetch session on. Followers have no
    // client quota.
    let quotas = &ctx.broker.quotas;
    let owed = (replica < 0)
        .then(|| quotas.owed(Kind::Fetch, &info.session.quota_user(), info.client_id(), Instant::now()))
        .filter(|d| !d.is_zero());
    if owed.is_some() {
        wait = Duration::ZERO;
    }
    let hint = |topic: &str, partition: i32, code: i16| {
        leader_hint::wants_hint(code)
            .then(|| leader_hint::current_leader(&ctx.broker, topic, partition))
            .flatten()
    };
    let read_committed = request.isolation_level == 1 && replica < 0;
    let round = |notify| read_round(ctx, &request, replica, read_committed, &targets, notify);
    let (notify_tx, notify_rx) = flume::bounded(1);
    let mut results;
    loop {
        let remaining = wait.saturating_sub(started.elapsed());
        let register = !remaining.is_zero();
        results = round(register.then(|| notify_tx.clone())).await;
        let bytes: usize = results.iter().map(|r| slice_len(&r.outcome) as usize).sum();
        // As in Kafka, partitions refused before reading (unknown, unauthorized) do not end
        // the wait; a read's error does, and so does having nothing to read.
        let errors = results
            .iter()
            .zip(&targets)
            .any(|(r, t)| t.state.is_ok() && r.outcome.as_ref().map_or(true, |o| o.diverging.is_some()));
        let nothing_to_read = targets.iter().all(|t| t.state.is_err());
        if bytes >= min_bytes || errors || !register || nothing_to_read {
            break;
        }
        if compio::time::timeout(remaining, notify_rx.recv_async()).await.is_err() {
            results = round(None).await;
            break;
        }
    }
    if owed.is_some() {
        for r in &mut results {
            if let Ok(read) = &mut r.outcome {
                read.slice = None;
                read.aborted.clear();
            }
        }
    }
    let throttle_ms = if replica < 0 {
        let bytes: usize = results.iter().map(|r| slice_len(&r.outcome) as usize).sum();
        super::fetch_throttle(&ctx.broker, info, bytes as u64, owed)
    } else {
        0
    };
    let summaries: Vec<AnswerSummary> = results.iter().map(summary).collect();
    let metrics = &ctx.broker.metrics;
    if matches!(context, Context::Incremental { .. }) {
        metrics.incremental_fetches.fetch_add(1, Ordering::Relaxed);
    }
    let (session_id, include) =
        ctx.fetch_sessions.finish(context, &wanted, &summaries, crate::clock::now_ms());
    let (sessions, evictions) = ctx.fetch_sessions.stats();
    metrics.fetch_sessions.store(sessions as i64, Ordering::Relaxed);
    metrics.fetch_session_evictions.store(evictions, Ordering::Relaxed);
    let keyring = ctx.broker.security.keyring.as_deref();
    let answer = Answer { session_id, throttle_ms, targets: &targets, results, include };
    let leaders = |ids: &[i32]| leader_hint::endpoints(&ctx.broker, &info.session.listener.name, ids);
    encode_results(info, answer, keyring, &hint, &leaders)
}

/// The request's partitions and forgotten partitions, keyed as its version names topics.
fn requested_partitions(
    request: &FetchRequest,
    v: i16,
) -> (Vec<(PartitionKey, FetchParams)>, Vec<PartitionKey>) {
    let topic_key = |name: &kafka_protocol::messages::TopicName, id: &uuid::Uuid| {
        if v >= 13 {
            TopicKey::Id(id.as_u128())
        } else {
            TopicKey::Name(Arc::from(name.0.as_str()))
        }
    };
    let mut requested = Vec::new();
    for t in &request.topics {
        let topic = topic_key(&t.topic, &t.topic_id);
        for p in &t.partitions {
            let params = FetchParams {
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
                log_start_offset: p.log_start_offset,
            };
            requested.push((PartitionKey { topic: topic.clone(), partition: p.partition }, params));
        }
    }
    let mut forgotten = Vec::new();
    for t in &request.forgotten_topics_data {
        let topic = topic_key(&t.topic, &t.topic_id);
        for p in &t.partitions {
            forgotten.push(PartitionKey { topic: topic.clone(), partition: *p });
        }
    }
    (requested, forgotten)
}

/// Resolves each partition's topic once per topic: its name and id, whether it may be read
/// (Kafka's order: an unknown id, then authorization, then an unknown name), and whether
/// consumers get opened batches.
fn resolve(
    ctx: &Ctx,
    info: &RequestInfo,
    replica: i32,
    wanted: &[(PartitionKey, FetchParams)],
) -> Vec<Target> {
    // A follower needs CLUSTER_ACTION, a consumer READ on each topic (Kafka's rules).
    let follower_denied = replica >= 0 && !ctx.allowed_on_cluster(info, op::CLUSTER_ACTION);
    type Resolved = (Arc<str>, u128, Result<(), PartitionError>, bool);
    let mut seen: HashMap<TopicKey, Resolved> = HashMap::new();
    let mut targets = Vec::with_capacity(wanted.len());
    for (key, params) in wanted {
        let (topic, topic_id, state, sealed) = seen
            .entry(key.topic.clone())
            .or_insert_with(|| {
                let (meta, id) = match &key.topic {
                    TopicKey::Name(name) => (ctx.broker.topic(name), 0),
                    TopicKey::Id(id) => {
                        let catalog = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
                        (catalog.by_id(*id), *id)
                    }
                };
                let name: Arc<str> = match (&key.topic, &meta) {
                    (TopicKey::Name(n), _) => n.clone(),
                    (TopicKey::Id(_), Some(m)) => Arc::from(m.name.as_str()),
                    (TopicKey::Id(_), None) => Arc::from(""),
                };
                let id = meta.as_ref().map_or(id, |m| m.id);
                let sealed = replica < 0
                    && meta
                        .as_ref()
                        .is_some_and(|m| m.configs.get("encryption.at.rest").is_some_and(|v| v != "false"));
                let state = if follower_denied {
                    Err(PartitionError::TopicAuthorizationFailed)
                } else if meta.is_none() && matches!(key.topic, TopicKey::Id(_)) {
                    Err(PartitionError::UnknownTopicId)
                } else if replica < 0 && !ctx.allowed(info, op::READ, resource::TOPIC, &name) {
                    Err(PartitionError::TopicAuthorizationFailed)
                } else if meta.is_none() {
                    Err(PartitionError::UnknownTopicOrPartition)
                } else {
                    Ok(())
                };
                (name, id, state, sealed)
            })
            .clone();
        targets.push(Target { key: key.clone(), topic, topic_id, state, sealed, params: *params });
    }
    targets
}

fn slice_len(outcome: &ReadOutcome) -> u32 {
    outcome.as_ref().ok().and_then(|r| r.slice.as_ref()).map_or(0, |s| s.len)
}

fn summary(r: &PartitionResult) -> AnswerSummary {
    match &r.outcome {
        Ok(o) => AnswerSummary {
            error: false,
            high_watermark: o.high_watermark.0,
            log_start_offset: o.log_start_offset.0,
            has_records: o.slice.as_ref().is_some_and(|s| s.len > 0),
            diverging: o.diverging.is_some(),
        },
        Err(_) => {
            AnswerSummary { error: true, high_watermark: -1, log_start_offset: -1, ..Default::default() }
        }
    }
}

/// Reads every target partition once, all at once; `notify` is left with partitions that
/// had nothing. Each partition may return up to its own limit; then, in order, the first
/// non-empty partition is kept whole (KIP-74) and later ones must fit what is left of the
/// response's `max_bytes` (re-read smaller when they do not; rare).
async fn read_round(
    ctx: &Ctx,
    request: &FetchRequest,
    replica_id: i32,
    read_committed: bool,
    targets: &[Target],
    notify: Option<flume::Sender<()>>,
) -> Vec<PartitionResult> {
    let response_max = request.max_bytes.max(0) as u32;
    let partition_max = |t: &Target| (t.params.max_bytes.max(0) as u32).min(response_max);
    // A broker's follower fetch: reads up to the log end and acknowledges what the follower
    // holds. isolation_level 1 (READ_COMMITTED): below the last stable offset, with aborted
    // transactions; followers copy the whole log.
    let replica = |t: &Target| {
        (replica_id >= 0).then_some(ReplicaFetch {
            replica_id,
            current_leader_epoch: LeaderEpoch(t.params.current_leader_epoch),
            last_fetched_epoch: LeaderEpoch(t.params.last_fetched_epoch),
            log_start_offset: Offset(t.params.log_start_offset),
        })
    };
    let call = |t: &Target, max_bytes: u32, min_one: bool, notify: Option<flume::Sender<()>>| ReadCall {
        topic: t.topic.clone(),
        partition: t.key.partition,
        offset: Offset(t.params.fetch_offset),
        max_bytes,
        min_one,
        notify,
        replica: replica(t),
        read_committed,
    };
    let calls =
        targets.iter().filter(|t| t.state.is_ok()).map(|t| call(t, partition_max(t), true, notify.clone()));
    let mut outcomes = route_read(&ctx.shard, calls.collect()).await.into_iter();
    let mut total: u32 = 0;
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let mut outcome = match &t.state {
            Err(e) => Err(e.clone()),
            Ok(()) => outcomes.next().unwrap_or(Err(PartitionError::NotLeaderOrFollower)),
        };
        let len = slice_len(&outcome);
        let left = response_max.saturating_sub(total);
        if total > 0 && len > left {
            outcome = if len > partition_max(t) || left == 0 {
                // Only its first batch was returned and it is over the limit: next time.
                outcome.map(|r| crate::partition::ReadResult { slice: None, ..r })
            } else {
                route_read_one(&ctx.shard, call(t, left, false, None)).await
            };
        }
        total = total.saturating_add(slice_len(&outcome));
        out.push(PartitionResult { index: t.key.partition, outcome });
    }
    out
}

/// A fetch's answer before encoding: the session id, and for each target its result and
/// whether the (incremental) answer holds it.
struct Answer<'a> {
    session_id: i32,
    throttle_ms: i32,
    targets: &'a [Target],
    results: Vec<PartitionResult>,
    include: Vec<bool>,
}

/// Writes the response by hand: the record sections become file chunks. Consecutive
/// partitions of one topic share its entry, as Kafka groups them.
fn encode_results(
    info: &RequestInfo,
    answer: Answer<'_>,
    keyring: Option<&Keyring>,
    hint: &dyn Fn(&str, i32, i16) -> Option<CurrentLeader>,
    endpoints: &dyn Fn(&[i32]) -> Vec<kafka_protocol::messages::produce_response::NodeEndpoint>,
) -> Result<Response, RequestError> {
    let v = info.version;
    let flexible = v >= 12;
    let Answer { session_id, throttle_ms, targets, results, include } = answer;
    let mut chunks = Vec::new();
    let mut buf = BytesMut::with_capacity(1024);
    buf.put_i32(0); // size, patched below
    buf.put_i32(info.header.correlation_id);
    if flexible {
        buf.put_u8(0); // response header tagged fields
    }
    if v >= 1 {
        buf.put_i32(throttle_ms);
    }
    if v >= 7 {
        buf.put_i16(0); // error_code
        buf.put_i32(session_id);
    }
    // Runs of consecutive included partitions of one topic: (first target, count).
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut last: Option<usize> = None;
    for (i, _) in include.iter().enumerate().filter(|(_, keep)| **keep) {
        match (runs.last_mut(), last) {
            (Some(run), Some(prev)) if targets[prev].key.topic == targets[i].key.topic => run.1 += 1,
            _ => runs.push((i, 1)),
        }
        last = Some(i);
    }
    put_array_len(&mut buf, runs.len(), flexible);
    let mut results: Vec<Option<PartitionResult>> = results.into_iter().map(Some).collect();
    let mut leaders = Vec::new();
    for (first, count) in runs {
        let t = &targets[first];
        if v >= 13 {
            buf.put_u128(t.topic_id);
        } else {
            put_string(&mut buf, &t.topic, flexible);
        }
        put_array_len(&mut buf, count, flexible);
        let members = (first..targets.len()).filter(|i| include[*i]).take(count);
        for i in members {
            let Some(part) = results[i].take() else { continue };
            let put = PutPartition { v, target: &targets[i], keyring, hint };
            if let Some(leader) = put.write(&mut buf, &mut chunks, part) {
                leaders.push(leader);
            }
        }
        if flexible {
            buf.put_u8(0); // topic tagged fields
        }
    }
    let nodes = if v >= 16 && !leaders.is_empty() { endpoints(&leaders) } else { Vec::new() };
    if flexible {
        put_node_endpoints(&mut buf, &nodes); // the response's tagged fields
    }
    chunks.push(Chunk::Bytes(buf.freeze()));
    patch_size(&mut chunks)?;
    Ok(Response::new(chunks))
}

/// Writes one partition of a response.
struct PutPartition<'a> {
    v: i16,
    target: &'a Target,
    keyring: Option<&'a Keyring>,
    hint: &'a dyn Fn(&str, i32, i16) -> Option<CurrentLeader>,
}

impl PutPartition<'_> {
    /// Appends the partition (its records as a file chunk when not opened here); returns
    /// the leader it named in a hint, if any.
    fn write(&self, buf: &mut BytesMut, chunks: &mut Vec<Chunk>, part: PartitionResult) -> Option<i32> {
        let (v, flexible) = (self.v, self.v >= 12);
        let (mut error_code, mut o) = match part.outcome {
            Ok(o) => (0, o),
            Err(e) => (partition_code(&e), UNKNOWN),
        };
        let topic = &self.target.topic;
        let mut plain = None;
        if self.target.sealed {
            if let Some(slice) = o.slice.take() {
                let opened =
                    slice.read_to_vec().map_err(|e| e.to_string()).and_then(|b| open_all(self.keyring, &b));
                match opened {
                    Ok(p) => plain = Some(bytes::Bytes::from(p)),
                    Err(e) => {
                        // Never garbage: the partition answers a storage error instead.
                        tracing::error!("{topic}-{}: {e}", part.index);
                        error_code = ResponseError::KafkaStorageError.code();
                        o = UNKNOWN;
                    }
                }
            }
        }
        if v < 4 {
            // Fetch v0-3 (Kafka 3.9 served them): message format 0 (v0-1) or 1 (v2-3), which
            // old consumers parse; the stored batches are converted, never sent as they are.
            let stored = match plain.take() {
                Some(p) => Ok(p.to_vec()),
                None => o.slice.take().map_or(Ok(Vec::new()), |s| s.read_to_vec()).map_err(|e| e.to_string()),
            };
            match stored {
                Ok(b) if !b.is_empty() => {
                    let magic = if v <= 1 { 0 } else { 1 };
                    plain = Some(super::legacy::message_set::down_convert(&b, magic));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("{topic}-{}: {e}", part.index);
                    error_code = ResponseError::KafkaStorageError.code();
                    o = UNKNOWN;
                }
            }
        }
        buf.put_i32(part.index);
        buf.put_i16(error_code);
        buf.put_i64(o.high_watermark.0);
        if v >= 4 {
            buf.put_i64(o.last_stable_offset.0);
        }
        if v >= 5 {
            buf.put_i64(o.log_start_offset.0);
        }
        if v >= 4 {
            put_aborted(buf, &o.aborted, flexible);
        }
        if v >= 11 {
            buf.put_i32(-1); // preferred_read_replica
        }
        let len = match &plain {
            Some(p) => p.len(),
            None => o.slice.as_ref().map_or(0, |s| s.len as usize),
        };
        if flexible {
            put_uvarint(buf, len as u64 + 1);
        } else {
            buf.put_i32(len as i32);
        }
        if let Some(p) = plain {
            buf.extend_from_slice(&p);
        } else if let Some(slice) = o.slice {
            chunks.push(Chunk::Bytes(std::mem::take(buf).freeze()));
            chunks.push(Chunk::File(slice));
        }
        if !flexible {
            return None;
        }
        // KIP-595/951: a refused partition names its current leader (v12+).
        let leader = (self.hint)(topic, part.index, error_code);
        buf.put_u8(u8::from(o.diverging.is_some()) + u8::from(leader.is_some()));
        // Tagged field 0, DivergingEpoch: epoch, end offset, its own (no) tags.
        if let Some(EpochEndOffset { epoch, end_offset }) = o.diverging {
            buf.put_u8(0);
            buf.put_u8(13);
            buf.put_i32(epoch.0);
            buf.put_i64(end_offset.0);
            buf.put_u8(0);
        }
        // Tagged field 1, CurrentLeader: leader id, leader epoch, its own (no) tags.
        if let Some(l) = leader {
            buf.put_u8(1);
            buf.put_u8(9);
            buf.put_i32(l.leader);
            buf.put_i32(l.epoch.0);
            buf.put_u8(0);
        }
        leader.map(|l| l.leader)
    }
}

/// aborted_transactions (read_committed only): null when there are none.
fn put_aborted(buf: &mut BytesMut, aborted: &[crate::partition::AbortedTxn], flexible: bool) {
    if aborted.is_empty() {
        if flexible {
            buf.put_u8(0)
        } else {
            buf.put_i32(-1)
        }
        return;
    }
    put_array_len(buf, aborted.len(), flexible);
    for a in aborted {
        buf.put_i64(a.producer_id);
        buf.put_i64(a.first_offset);
        if flexible {
            buf.put_u8(0);
        }
    }
}

/// The response's tagged fields: none, or field 0, NodeEndpoints (v16+, KIP-951).
fn put_node_endpoints(
    buf: &mut BytesMut,
    nodes: &[kafka_protocol::messages::produce_response::NodeEndpoint],
) {
    if nodes.is_empty() {
        buf.put_u8(0);
        return;
    }
    let mut field = BytesMut::new();
    put_array_len(&mut field, nodes.len(), true);
    for n in nodes {
        field.put_i32(n.node_id.0);
        put_string(&mut field, n.host.as_str(), true);
        field.put_i32(n.port);
        match &n.rack {
            Some(r) => put_string(&mut field, r.as_str(), true),
            None => field.put_u8(0),
        }
        field.put_u8(0);
    }
    buf.put_u8(1);
    put_uvarint(buf, 0);
    put_uvarint(buf, field.len() as u64);
    buf.extend_from_slice(&field);
}

/// What a failed partition reports (Kafka's UNKNOWN_OFFSET for both).
const UNKNOWN: crate::partition::ReadResult = crate::partition::ReadResult {
    high_watermark: Offset::NONE,
    last_stable_offset: Offset::NONE,
    aborted: Vec::new(),
    log_start_offset: Offset::NONE,
    slice: None,
    diverging: None,
};

fn encode_error(info: &RequestInfo, error: i16) -> Result<Response, RequestError> {
    let v = info.version;
    let mut buf = BytesMut::with_capacity(32);
    buf.put_i32(0);
    buf.put_i32(info.header.correlation_id);
    if v >= 12 {
        buf.put_u8(0);
    }
    buf.put_i32(0);
    buf.put_i16(error);
    buf.put_i32(0);
    put_array_len(&mut buf, 0, v >= 12);
    if v >= 12 {
        buf.put_u8(0);
    }
    let mut chunks = vec![Chunk::Bytes(buf.freeze())];
    patch_size(&mut chunks)?;
    Ok(Response::new(chunks))
}

fn patch_size(chunks: &mut [Chunk]) -> Result<(), RequestError> {
    let total: usize = chunks.iter().map(Chunk::len).sum();
    let size =
        i32::try_from(total - 4).map_err(|_| RequestError::Encode("fetch response over 2 GiB".into()))?;
    let Some(Chunk::Bytes(first)) = chunks.first_mut() else {
        return Err(RequestError::Encode("response starts with a file chunk".into()));
    };
    let mut head = BytesMut::from(&first[..]);
    head[..4].copy_from_slice(&size.to_be_bytes());
    *first = head.freeze();
    Ok(())
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_array_len(buf: &mut BytesMut, len: usize, flexible: bool) {
    if flexible {
        put_uvarint(buf, len as u64 + 1);
    } else {
        buf.put_i32(len as i32);
    }
}

fn put_string(buf: &mut BytesMut, s: &str, flexible: bool) {
    if flexible {
        put_uvarint(buf, s.len() as u64 + 1);
    } else {
        buf.put_i16(s.len() as i16);
    }
    buf.put_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, FetchResponse, RequestHeader};
    use kafka_protocol::protocol::{Decodable, StrBytes};

    fn target(topic: &str, id: u128, partition: i32) -> Target {
        Target {
            key: PartitionKey { topic: TopicKey::Id(id), partition },
            topic: Arc::from(topic),
            topic_id: id,
            state: Ok(()),
            sealed: false,
            params: FetchParams {
                fetch_offset: 0,
                max_bytes: 1,
                current_leader_epoch: -1,
                last_fetched_epoch: -1,
                log_start_offset: -1,
            },
        }
    }

    /// The hand-written encoding must decode with the reference codec at every version.
    #[test]
    fn hand_encoded_response_decodes_with_the_crate() {
        for v in 4..=18i16 {
            let info = RequestInfo {
                api_key: ApiKey::Fetch,
                version: v,
                decode_version: v,
                header: RequestHeader::default().with_correlation_id(42),
                client_host: String::new(),
                session: crate::security::Session::internal(),
                throttle: Duration::ZERO,
            };
            // Partitions 3 and 4 of "t", then 0 of "u" (left out: nothing new), then 9 of "t".
            let targets =
                [target("t", 0xabc, 3), target("t", 0xabc, 4), target("u", 0xdef, 0), target("t", 0xabc, 9)];
            let ok = |hw: i64| {
                Ok(crate::partition::ReadResult {
                    high_watermark: Offset(hw),
                    last_stable_offset: Offset(8),
                    aborted: vec![crate::partition::AbortedTxn {
                        producer_id: 5,
                        first_offset: 6,
                        last_offset: 9,
                        last_stable_offset: 8,
                    }],
                    log_start_offset: Offset(2),
                    slice: None,
                    diverging: (v >= 12)
                        .then_some(EpochEndOffset { epoch: LeaderEpoch(3), end_offset: Offset(77) }),
                })
            };
            let results = vec![
                PartitionResult { index: 3, outcome: ok(10) },
                PartitionResult { index: 4, outcome: Err(PartitionError::NotLeaderOrFollower) },
                PartitionResult { index: 0, outcome: ok(1) },
                PartitionResult { index: 9, outcome: ok(11) },
            ];
            // Partition 4 is led by broker 2 now, at leader epoch 5.
            let hint = |_: &str, partition: i32, code: i16| {
                (partition == 4 && leader_hint::wants_hint(code))
                    .then_some(CurrentLeader { leader: 2, epoch: LeaderEpoch(5) })
            };
            let endpoints = |ids: &[i32]| {
                ids.iter()
                    .map(|id| {
                        kafka_protocol::messages::produce_response::NodeEndpoint::default()
                            .with_node_id(kafka_protocol::messages::BrokerId(*id))
                            .with_host(StrBytes::from_static_str("b2"))
                            .with_port(9092)
                    })
                    .collect()
            };
            let answer = Answer {
                session_id: 77,
                throttle_ms: 0,
                targets: &targets,
                results,
                include: vec![true, true, false, true],
            };
            let resp = encode_results(&info, answer, None, &hint, &endpoints).expect("encode");
            let mut bytes = BytesMut::new();
            for c in resp.chunks {
                if let Chunk::Bytes(b) = c {
                    bytes.extend_from_slice(&b);
                }
            }
            let mut b = bytes.freeze();
            let size = i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            assert_eq!(size, b.len() - 4);
            let _ = b.split_to(8);
            if v >= 12 {
                let _ = b.split_to(1);
            }
            let decoded = FetchResponse::decode(&mut b, v).expect("decode");
            assert!(b.is_empty(), "v{v}: trailing bytes");
            if v >= 7 {
                assert_eq!(decoded.session_id, 77);
            }
            // One entry for "t": partitions 3, 4 and 9 (the left-out "u" does not split it).
            assert_eq!(decoded.responses.len(), 1, "v{v}");
            let indexes: Vec<i32> =
                decoded.responses[0].partitions.iter().map(|p| p.partition_index).collect();
            assert_eq!(indexes, vec![3, 4, 9], "v{v}");
            for r in &decoded.responses {
                if v >= 13 {
                    assert_eq!(r.topic_id, uuid::Uuid::from_u128(0xabc));
                } else {
                    assert_eq!(r.topic.0.as_str(), "t");
                }
            }
            let p = &decoded.responses[0].partitions[0];
            assert_eq!((p.partition_index, p.error_code, p.high_watermark), (3, 0, 10));
            assert_eq!(p.last_stable_offset, 8);
            let aborted = p.aborted_transactions.as_ref().expect("aborted transactions");
            assert_eq!((aborted.len(), aborted[0].producer_id.0, aborted[0].first_offset), (1, 5, 6));
            if v >= 5 {
                assert_eq!(p.log_start_offset, 2);
            }
            if v >= 12 {
                assert_eq!((p.diverging_epoch.epoch, p.diverging_epoch.end_offset), (3, 77));
            }
            let refused = &decoded.responses[0].partitions[1];
            assert_eq!(refused.error_code, ResponseError::NotLeaderOrFollower.code());
            if v >= 12 {
                let l = &refused.current_leader;
                assert_eq!((l.leader_id.0, l.leader_epoch), (2, 5), "v{v}: the leader hint");
            }
            if v >= 16 {
                let n = &decoded.node_endpoints;
                assert_eq!(n.len(), 1, "v{v}: the hinted leader's endpoint");
                assert_eq!((n[0].node_id.0, n[0].host.as_str(), n[0].port), (2, "b2", 9092));
            }
        }
    }
}
