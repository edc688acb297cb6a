//! Produce: each partition's record set goes to its owner shard (`route_produce`), all
//! partitions of a request concurrently; the owners answer on one channel per request, and the
//! answer is assembled in request order. acks=0 gets no answer at all, as in Kafka.
//! A transactional producer's partitions must be in its ongoing transaction (`txn::verify_produce`);
//! from v12 (transactions v2, KIP-890) they join it implicitly (`txn::add_implicitly`).

use std::sync::Arc;

use bytes::Bytes;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use riptide_engine::io::direct::Landed;
use riptide_engine::{LogError, RecordError, RecordProblem};

use super::error::partition_code;
use super::leader_hint;
use super::{Ctx, RequestInfo};
use crate::metrics::LandingMark;
use crate::partition::{Acks, AppendReply, AppendResult, Origin, PartitionError};
use crate::security::acl::{op, resource};
use crate::shard::mailbox::ProduceCall;
use crate::shard::router::route_produce;

/// A partition's answer: already known (refused up front) or awaited from its owner shard.
enum Pending {
    Done(i16, Option<String>),
    Waiting,
}

/// A refused partition's answer: its code, Produce v8+'s `error_message`, and the records
/// that made the log refuse the batch (`record_errors`, empty unless records were named).
struct Refusal {
    code: i16,
    message: Option<String>,
    record_errors: Vec<BatchIndexAndErrorMessage>,
}

impl Refusal {
    fn new(code: i16, message: Option<String>) -> Refusal {
        Refusal { code, message, record_errors: Vec::new() }
    }

    /// The answer for a failed append, with records named as Kafka names them when the log
    /// refused records one by one.
    fn of(e: &PartitionError, topic: &str, partition: i32) -> Refusal {
        match e {
            PartitionError::Log(failure) => match failure.cause() {
                LogError::InvalidRecords(errors) | LogError::InvalidRecordTimestamps(errors) => {
                    invalid_records(partition_code(e), errors, topic, partition)
                }
                _ => Refusal::new(partition_code(e), Some(e.to_string())),
            },
            _ => Refusal::new(partition_code(e), Some(e.to_string())),
        }
    }
}

/// Kafka's answer to a `RecordValidationException`: every refused record in `record_errors`,
/// and in `error_message` Kafka's summary (naming the first three unless a timestamp is among
/// the causes), so that what clients log reads the same against either broker.
fn invalid_records(code: i16, errors: &[RecordError], topic: &str, partition: i32) -> Refusal {
    let record_errors: Vec<_> = errors
        .iter()
        .map(|e| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(e.batch_index)
                .with_batch_index_error_message(Some(StrBytes::from_string(record_message(
                    e, topic, partition,
                ))))
        })
        .collect();
    let timestamps = errors.iter().any(|e| matches!(e.problem, RecordProblem::TimestampOutOfRange { .. }));
    let message = if timestamps {
        "One or more records have been rejected due to invalid timestamp".to_string()
    } else {
        let shown: Vec<String> = record_errors
            .iter()
            .take(3)
            .map(|e| {
                let message = e.batch_index_error_message.as_deref().unwrap_or("null");
                format!("RecordError(batchIndex={}, message='{message}')", e.batch_index)
            })
            .collect();
        format!(
            "One or more records have been rejected due to {} record errors in total, and only showing \
             the first three errors at most: [{}]",
            errors.len(),
            shown.join(", ")
        )
    };
    Refusal { code, message: Some(message), record_errors }
}

/// One refused record's message, as Kafka's `LogValidator` words it. A producer's batch has
/// offsets 0..n-1 before the broker assigns them, so a record's offset is its index.
fn record_message(e: &RecordError, topic: &str, partition: i32) -> String {
    match e.problem {
        RecordProblem::NoKeyOnCompactedTopic => {
            format!(
                "Compacted topic cannot accept message without key in topic partition {topic}-{partition}"
            )
        }
        RecordProblem::TimestampOutOfRange { timestamp_ms, earliest_ms, latest_ms } => format!(
            "Timestamp {timestamp_ms} of message with offset {} is out of range. The timestamp should be \
             within [{earliest_ms}, {latest_ms}]",
            e.batch_index
        ),
    }
}

/// `landed`: the record set of a one-partition request as received into a landing buffer
/// (`api::landing`); the decoded request holds an empty set in its place.
/// `mark`: counts this one-partition request done when dropped (with its append, or here if
/// it is refused before one).
pub async fn handle(
    ctx: &Ctx,
    info: &RequestInfo,
    mut request: ProduceRequest,
    mut landed: Option<Landed>,
    mut mark: Option<LandingMark>,
) -> Option<ProduceResponse> {
    let version = info.version;
    if let Some(l) = &landed {
        // `api::landing::plan` found one topic with one partition in these very bytes.
        match &mut request.topic_data[..] {
            [t] if t.partition_data.len() == 1 => t.partition_data[0].records = Some(l.bytes()),
            _ => landed = None,
        }
    }
    if version < 3 {
        up_convert(&mut request);
    }
    // v13 names topics by id (KIP-516): the name is resolved here; an unknown id stays unnamed.
    if version >= 13 {
        let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
        for t in &mut request.topic_data {
            let id = u128::from_be_bytes(*t.topic_id.as_bytes());
            t.name =
                cat.by_id(id).map(|m| TopicName(StrBytes::from_string(m.name.clone()))).unwrap_or_default();
        }
    }
    let acks = Acks::from_wire(request.acks);
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.as_str());
    let refuse_all = match acks {
        None => Some((ResponseError::InvalidRequiredAcks, "acks must be -1, 0 or 1")),
        // As Kafka: transactional records need a transactional id (else they would open a
        // transaction no coordinator knows, holding the last stable offset forever).
        Some(_) if transactional_id.is_none() && has_transactional_records(&request) => Some((
            ResponseError::TransactionalIdAuthorizationFailed,
            "transactional records need a transactional id",
        )),
        Some(_)
            if transactional_id
                .is_some_and(|t| !ctx.allowed(info, op::WRITE, resource::TRANSACTIONAL_ID, t)) =>
        {
            Some((
                ResponseError::TransactionalIdAuthorizationFailed,
                "not authorized for the transactional id",
            ))
        }
        Some(_) => None,
    };
    // Transactions v2: the request's partitions join the producer's transaction first, in one
    // round trip to its coordinator.
    let implicit_add = match transactional_id {
        Some(t) if version >= 12 && refuse_all.is_none() => {
            super::txn::add_implicitly(ctx, info, t, &request).await
        }
        _ => None,
    };
    let partitions: usize = request.topic_data.iter().map(|t| t.partition_data.len()).sum();
    let mut pending = Vec::with_capacity(partitions);
    let mut calls = Vec::with_capacity(partitions);
    // Room for every answer, so an owner shard never waits to answer.
    let (reply_tx, reply_rx) = flume::bounded::<(usize, AppendResult)>(partitions.max(1));
    for topic in &request.topic_data {
        let name: Arc<str> = Arc::from(topic.name.0.as_str());
        let allowed = ctx.allowed(info, op::WRITE, resource::TOPIC, &name);
        let meta = ctx.broker.topic(&name);
        let exists = meta.is_some();
        let recompress = meta.and_then(|m| m.compression_target());
        for p in &topic.partition_data {
            // Only for a transactional producer (off the plain produce path): its partition must
            // be in its ongoing transaction.
            let txn_refused = match (transactional_id, &p.records) {
                (Some(_), Some(_)) if version >= 12 => implicit_add,
                (Some(t), Some(records)) if exists && allowed && refuse_all.is_none() => {
                    super::txn::verify_produce(ctx, t, &name, p.index, records).await
                }
                _ => None,
            };
            pending.push(match (refuse_all, acks, exists, &p.records) {
                (Some((code, msg)), _, _, _) => Pending::Done(code.code(), Some(msg.to_string())),
                _ if version >= 13 && name.is_empty() => Pending::Done(
                    ResponseError::UnknownTopicId.code(),
                    Some(format!("unknown topic id {}", topic.topic_id)),
                ),
                _ if !allowed => {
                    Pending::Done(partition_code(&PartitionError::TopicAuthorizationFailed), None)
                }
                (None, None, _, _) => unreachable!("unknown acks are refused above"),
                (None, Some(_), false, _) => {
                    Pending::Done(partition_code(&PartitionError::UnknownTopicOrPartition), None)
                }
                (None, Some(_), true, None) => {
                    Pending::Done(ResponseError::CorruptMessage.code(), Some("null record set".into()))
                }
                (None, Some(_), true, Some(_)) if txn_refused.is_some() => Pending::Done(
                    txn_refused.unwrap_or_default(),
                    Some("the partition is not in the producer's ongoing transaction".into()),
                ),
                (None, Some(acks), true, Some(records)) => {
                    // A topic's own compression.type: the batches are stored in it (Kafka's
                    // broker-side compression); ones that do not check out go as they came,
                    // for validation to refuse.
                    let records = match recompress {
                        Some((codec, level)) => {
                            riptide_engine::batch::recompress_batches(records, codec, level)
                                .map_or_else(|| records.clone(), Bytes::from)
                        }
                        None => records.clone(),
                    };
                    calls.push(ProduceCall {
                        topic: name.clone(),
                        partition: p.index,
                        // The landed buffer goes with its own bytes only (not recompressed ones).
                        landed: landed.take().filter(|l| l.is(&records)),
                        mark: mark.take(),
                        records,
                        origin: Origin::Client,
                        marker: None,
                        acks,
                        reply: AppendReply::new(reply_tx.clone(), pending.len()),
                    });
                    Pending::Waiting
                }
            });
        }
    }
    // Every append starts (on its owner shard) before any answer is awaited, so a request's
    // partitions share group commits.
    let mut waiting = calls.len();
    drop(reply_tx);
    route_produce(&ctx.shard, calls).await;
    let mut answers: Vec<Option<AppendResult>> = Vec::with_capacity(pending.len());
    answers.resize_with(pending.len(), || None);
    while waiting > 0 {
        // Disconnected: every owner dropped its reply unanswered (a shard going away).
        let Ok((i, result)) = reply_rx.recv_async().await else { break };
        if let Some(slot) = answers.get_mut(i).filter(|a| a.is_none()) {
            *slot = Some(result);
            waiting -= 1;
        }
    }
    let names = request.topic_data.iter().flat_map(|t| t.partition_data.iter().map(move |p| (t, p.index)));
    let outcomes: Vec<_> = pending
        .into_iter()
        .zip(answers)
        .zip(names)
        .map(|((p, answer), (topic, partition))| match (p, answer) {
            (Pending::Done(code, message), _) => Err(Refusal::new(code, message)),
            (Pending::Waiting, Some(Ok(appended))) => Ok(appended),
            (Pending::Waiting, Some(Err(e))) => Err(Refusal::of(&e, topic.name.0.as_str(), partition)),
            (Pending::Waiting, None) => {
                Err(Refusal::new(partition_code(&PartitionError::NotLeaderOrFollower), None))
            }
        })
        .collect();
    if acks == Some(Acks::None) {
        return None;
    }
    let mut outcomes = outcomes.into_iter();
    // KIP-951: refused partitions name their current leader, and the answer its endpoint.
    let mut hinted_leaders = Vec::new();
    let mut hint = |topic: &str, partition: i32, code: i16| {
        let leader = (version >= 10 && leader_hint::wants_hint(code))
            .then(|| leader_hint::current_leader(&ctx.broker, topic, partition))
            .flatten()?;
        hinted_leaders.push(leader.leader);
        Some(
            LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader.leader))
                .with_leader_epoch(leader.epoch.0),
        )
    };
    let responses = request
        .topic_data
        .iter()
        .map(|topic| {
            let partitions = topic
                .partition_data
                .iter()
                .map(|p| {
                    let (Refusal { code, message, record_errors }, o) = match outcomes.next() {
                        Some(Ok(o)) => (Refusal::new(0, None), o),
                        Some(Err(refusal)) => (refusal, FAILED),
                        None => (Refusal::new(ResponseError::UnknownServerError.code(), None), FAILED),
                    };
                    let current_leader = hint(topic.name.0.as_str(), p.index, code).unwrap_or_default();
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code)
                        .with_current_leader(current_leader)
                        .with_base_offset(o.base_offset.0)
                        .with_log_append_time_ms(o.log_append_time_ms)
                        .with_log_start_offset(if version >= 5 { o.log_start_offset.0 } else { -1 })
                        .with_record_errors(if version >= 8 { record_errors } else { Vec::new() })
                        .with_error_message(message.filter(|_| version >= 8).map(StrBytes::from_string))
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions)
        })
        .collect();
    let node_endpoints = leader_hint::endpoints(&ctx.broker, &info.session.listener.name, &hinted_leaders);
    Some(ProduceResponse::default().with_responses(responses).with_node_endpoints(node_endpoints))
}

/// Whether any batch of the request is transactional (headers only; framing errors are the
/// log's to report).
fn has_transactional_records(request: &ProduceRequest) -> bool {
    request.topic_data.iter().flat_map(|t| t.partition_data.iter()).any(|p| {
        p.records.as_ref().is_some_and(|r| {
            riptide_format::whole_batches(r).any(|b| b.is_ok_and(|(h, _)| h.is_transactional()))
        })
    })
}

/// The offsets a failed partition reports.
const FAILED: crate::partition::Appended = crate::partition::Appended::NONE;

/// Produce v0–2 carry message format 0/1: each partition's message set becomes one record
/// batch. One that does not convert (a bad CRC, a truncated message) stays as it came, and
/// validation refuses it with CORRUPT_MESSAGE, as Kafka does.
fn up_convert(request: &mut ProduceRequest) {
    for t in &mut request.topic_data {
        for p in &mut t.partition_data {
            if let Some(records) = &p.records {
                match super::legacy::message_set::up_convert(records) {
                    Ok(batch) => p.records = Some(batch),
                    Err(e) => tracing::debug!("produce v0-2 to {}-{}: {e}", t.name.0, p.index),
                }
            }
        }
    }
}
