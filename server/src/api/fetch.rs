//! Fetch (v4..=12): long poll until `min_bytes` are readable or `max_wait_ms` passes, then an
//! answer whose record sections are segment-file ranges (`Chunk::File`), never decoded.
//!
//! Rules followed (docs/KAFKA-NOTES.md): whole batches from the one holding the fetch offset;
//! the first non-empty partition may exceed the limits by one batch (KIP-74) so consumers
//! always progress; per-partition and response `max_bytes`; fetch sessions are declined by
//! answering session id 0, which clients handle by sending full fetches.
//!
//! All partitions of a round are read at once, one message per owner shard (`route_read`);
//! the response's `max_bytes` is then applied in request order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::FetchRequest;

use kafka_protocol::ResponseError;

use super::error::partition_code;
use super::leader_hint::{self, CurrentLeader};
use super::{Chunk, Ctx, RequestError, RequestInfo, Response};
use crate::partition::{EpochEndOffset, LeaderEpoch, Offset, PartitionError, ReplicaFetch};
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

pub async fn handle(ctx: &Ctx, info: &RequestInfo, request: FetchRequest) -> Result<Response, RequestError> {
    let started = Instant::now();
    let wait = Duration::from_millis(request.max_wait_ms.clamp(0, MAX_WAIT_MS_LIMIT) as u64);
    // min_bytes 0 answers at once, as in Kafka; 1 (the usual) waits for any data.
    let min_bytes = request.min_bytes.max(0) as usize;
    if info.version >= 7 && request.session_id != 0 {
        // We never hand out sessions, so an incremental fetch names one we don't have.
        return encode_error(info, ResponseError::FetchSessionIdNotFound.code());
    }
    // A follower needs CLUSTER_ACTION, a consumer READ on each topic (Kafka's rules).
    let follower_denied = request.replica_id.0 >= 0 && !ctx.allowed_on_cluster(info, op::CLUSTER_ACTION);
    // One catalog lookup per topic: whether it exists, and whether consumers of it get opened
    // batches (encryption at rest; followers copy the sealed bytes).
    let mut sealed = Vec::with_capacity(request.topics.len());
    let topics: Vec<(Arc<str>, Result<(), PartitionError>)> = request
        .topics
        .iter()
        .map(|t| {
            let name: Arc<str> = Arc::from(t.topic.0.as_str());
            let meta = ctx.broker.topic(&name);
            sealed.push(
                request.replica_id.0 < 0
                    && meta
                        .as_ref()
                        .is_some_and(|m| m.configs.get("encryption.at.rest").is_some_and(|v| v != "false")),
            );
            let state = if follower_denied
                || (request.replica_id.0 < 0 && !ctx.allowed(info, op::READ, resource::TOPIC, &name))
            {
                Err(PartitionError::TopicAuthorizationFailed)
            } else if meta.is_none() {
                Err(PartitionError::UnknownTopicOrPartition)
            } else {
                Ok(())
            };
            (name, state)
        })
        .collect();
    let hint = |topic: &str, partition: i32, code: i16| {
        leader_hint::wants_hint(code)
            .then(|| leader_hint::current_leader(&ctx.broker, topic, partition))
            .flatten()
    };
    let encode_results = |info: &RequestInfo, request: &FetchRequest, results| {
        encode_results(info, request, results, &sealed, ctx.broker.security.keyring.as_deref(), &hint)
    };
    let (notify_tx, notify_rx) = flume::bounded(1);
    loop {
        let remaining = wait.saturating_sub(started.elapsed());
        let register = !remaining.is_zero();
        let results = read_round(ctx, &request, &topics, register.then(|| notify_tx.clone())).await;
        let bytes: usize = results.iter().flatten().map(|r| slice_len(&r.outcome) as usize).sum();
        let errors =
            results.iter().flatten().any(|r| r.outcome.as_ref().map_or(true, |o| o.diverging.is_some()));
        if bytes >= min_bytes || errors || !register {
            return encode_results(info, &request, results);
        }
        if compio::time::timeout(remaining, notify_rx.recv_async()).await.is_err() {
            let results = read_round(ctx, &request, &topics, None).await;
            return encode_results(info, &request, results);
        }
    }
}

fn slice_len(outcome: &ReadOutcome) -> u32 {
    outcome.as_ref().ok().and_then(|r| r.slice.as_ref()).map_or(0, |s| s.len)
}

/// Reads every requested partition once, all at once; `notify` is left with partitions that
/// had nothing. Each partition may return up to its own limit; then, in request order, the
/// first non-empty partition is kept whole (KIP-74) and later ones must fit what is left of
/// the response's `max_bytes` (re-read smaller when they do not; rare).
async fn read_round(
    ctx: &Ctx,
    request: &FetchRequest,
    topics: &[(Arc<str>, Result<(), PartitionError>)],
    notify: Option<flume::Sender<()>>,
) -> Vec<Vec<PartitionResult>> {
    let response_max = request.max_bytes.max(0) as u32;
    let partition_max = |p: &kafka_protocol::messages::fetch_request::FetchPartition| {
        (p.partition_max_bytes.max(0) as u32).min(response_max)
    };
    // A broker's follower fetch (Kafka's replica_id >= 0 before v15): reads up to the log end
    // and acknowledges what the follower holds.
    let replica = |p: &kafka_protocol::messages::fetch_request::FetchPartition| {
        (request.replica_id.0 >= 0).then_some(ReplicaFetch {
            replica_id: request.replica_id.0,
            current_leader_epoch: LeaderEpoch(p.current_leader_epoch),
            last_fetched_epoch: LeaderEpoch(p.last_fetched_epoch),
        })
    };
    // isolation_level 1 (READ_COMMITTED): below the last stable offset, with aborted
    // transactions. Followers copy the whole log.
    let read_committed = request.isolation_level == 1 && request.replica_id.0 < 0;
    let mut calls = Vec::new();
    for (topic, (name, state)) in request.topics.iter().zip(topics) {
        for p in topic.partitions.iter().filter(|_| state.is_ok()) {
            calls.push(ReadCall {
                topic: name.clone(),
                partition: p.partition,
                offset: Offset(p.fetch_offset),
                max_bytes: partition_max(p),
                min_one: true,
                notify: notify.clone(),
                replica: replica(p),
                read_committed,
            });
        }
    }
    let mut outcomes = route_read(&ctx.shard, calls).await.into_iter();
    let mut total: u32 = 0;
    let mut out = Vec::with_capacity(topics.len());
    for (topic, (name, state)) in request.topics.iter().zip(topics) {
        let mut parts = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let mut outcome = match state {
                Err(e) => Err(e.clone()),
                Ok(()) => outcomes.next().unwrap_or(Err(PartitionError::NotLeaderOrFollower)),
            };
            let len = slice_len(&outcome);
            let left = response_max.saturating_sub(total);
            if total > 0 && len > left {
                outcome = if len > partition_max(p) || left == 0 {
                    // Only its first batch was returned and it is over the limit: next time.
                    outcome.map(|r| crate::partition::ReadResult { slice: None, ..r })
                } else {
                    let call = ReadCall {
                        topic: name.clone(),
                        partition: p.partition,
                        offset: Offset(p.fetch_offset),
                        max_bytes: left,
                        min_one: false,
                        notify: None,
                        replica: replica(p),
                        read_committed,
                    };
                    route_read_one(&ctx.shard, call).await
                };
            }
            total = total.saturating_add(slice_len(&outcome));
            parts.push(PartitionResult { index: p.partition, outcome });
        }
        out.push(parts);
    }
    out
}

/// Writes the response by hand: the record sections become file chunks.
fn encode_results(
    info: &RequestInfo,
    request: &FetchRequest,
    results: Vec<Vec<PartitionResult>>,
    sealed: &[bool],
    keyring: Option<&Keyring>,
    hint: &dyn Fn(&str, i32, i16) -> Option<CurrentLeader>,
) -> Result<Response, RequestError> {
    let v = info.version;
    let flexible = v >= 12;
    let mut chunks = Vec::new();
    let mut buf = BytesMut::with_capacity(1024);
    buf.put_i32(0); // size, patched below
    buf.put_i32(info.header.correlation_id);
    if flexible {
        buf.put_u8(0); // response header tagged fields
    }
    buf.put_i32(0); // throttle_time_ms
    if v >= 7 {
        buf.put_i16(0); // error_code
        buf.put_i32(0); // session_id: sessions declined
    }
    put_array_len(&mut buf, results.len(), flexible);
    for (ti, (topic, parts)) in request.topics.iter().zip(results).enumerate() {
        put_string(&mut buf, topic.topic.0.as_str(), flexible);
        put_array_len(&mut buf, parts.len(), flexible);
        for part in parts {
            let (mut error_code, mut o) = match part.outcome {
                Ok(o) => (0, o),
                Err(e) => (partition_code(&e), UNKNOWN),
            };
            let mut plain = None;
            if sealed.get(ti).copied().unwrap_or(false) {
                if let Some(slice) = o.slice.take() {
                    let opened =
                        slice.read_to_vec().map_err(|e| e.to_string()).and_then(|b| open_all(keyring, &b));
                    match opened {
                        Ok(p) => plain = Some(bytes::Bytes::from(p)),
                        Err(e) => {
                            // Never garbage: the partition answers a storage error instead.
                            tracing::error!("{}-{}: {e}", topic.topic.0.as_str(), part.index);
                            error_code = ResponseError::KafkaStorageError.code();
                            o = UNKNOWN;
                        }
                    }
                }
            }
            buf.put_i32(part.index);
            buf.put_i16(error_code);
            buf.put_i64(o.high_watermark.0);
            buf.put_i64(o.last_stable_offset.0);
            if v >= 5 {
                buf.put_i64(o.log_start_offset.0);
            }
            // aborted_transactions (read_committed only): null when there are none.
            if o.aborted.is_empty() {
                if flexible {
                    buf.put_u8(0)
                } else {
                    buf.put_i32(-1)
                }
            } else {
                put_array_len(&mut buf, o.aborted.len(), flexible);
                for a in &o.aborted {
                    buf.put_i64(a.producer_id);
                    buf.put_i64(a.first_offset);
                    if flexible {
                        buf.put_u8(0);
                    }
                }
            }
            if v >= 11 {
                buf.put_i32(-1); // preferred_read_replica
            }
            let len = match &plain {
                Some(p) => p.len(),
                None => o.slice.as_ref().map_or(0, |s| s.len as usize),
            };
            if flexible {
                put_uvarint(&mut buf, len as u64 + 1);
            } else {
                buf.put_i32(len as i32);
            }
            if let Some(p) = plain {
                buf.extend_from_slice(&p);
            } else if let Some(slice) = o.slice {
                chunks.push(Chunk::Bytes(std::mem::take(&mut buf).freeze()));
                chunks.push(Chunk::File(slice));
            }
            if flexible {
                // KIP-595/951: a refused partition names its current leader (v12+).
                let leader = hint(topic.topic.0.as_str(), part.index, error_code);
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
            }
        }
        if flexible {
            buf.put_u8(0); // topic tagged fields
        }
    }
    if flexible {
        buf.put_u8(0); // response tagged fields
    }
    chunks.push(Chunk::Bytes(buf.freeze()));
    patch_size(&mut chunks)?;
    Ok(Response::new(chunks))
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
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{ApiKey, FetchResponse, RequestHeader, TopicName};
    use kafka_protocol::protocol::{Decodable, StrBytes};

    /// The hand-written encoding must decode with the reference codec at every version.
    #[test]
    fn hand_encoded_response_decodes_with_the_crate() {
        for v in 4..=12i16 {
            let info = RequestInfo {
                api_key: ApiKey::Fetch,
                version: v,
                decode_version: v,
                header: RequestHeader::default().with_correlation_id(42),
                client_host: String::new(),
                session: crate::security::Session::internal(),
            };
            let request = FetchRequest::default().with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    FetchPartition::default().with_partition(3),
                    FetchPartition::default().with_partition(4),
                ])]);
            let results = vec![vec![
                PartitionResult {
                    index: 3,
                    outcome: Ok(crate::partition::ReadResult {
                        high_watermark: Offset(10),
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
                    }),
                },
                PartitionResult { index: 4, outcome: Err(PartitionError::NotLeaderOrFollower) },
            ]];
            // Partition 4 is led by broker 2 now, at leader epoch 5.
            let hint = |_: &str, partition: i32, code: i16| {
                (partition == 4 && leader_hint::wants_hint(code))
                    .then_some(CurrentLeader { leader: 2, epoch: LeaderEpoch(5) })
            };
            let resp = encode_results(&info, &request, results, &[], None, &hint).expect("encode");
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
            assert!(b.is_empty(), "v{v}: trailing bytes");
        }
    }
}
