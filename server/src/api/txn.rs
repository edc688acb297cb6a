//! Transactions (issue 17): InitProducerId with a transactional id, AddPartitionsToTxn
//! (v0..=3, the client form), AddOffsetsToTxn, EndTxn, TxnOffsetCommit, WriteTxnMarkers,
//! DescribeTransactions, ListTransactions, DescribeProducers, and the check a Produce of transactional batches passes. The coordinator's rules are in
//! `coordinator::txn`; here requests are decoded, authorized and answered.

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    describe_producers_response, describe_transactions_response, list_transactions_response,
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::ResponseError;

use super::error::partition_code;
use super::{Ctx, RequestInfo};
use crate::coordinator::offsets_log::{self, OFFSETS_TOPIC};
use crate::coordinator::registry::{CommitPartition, CommitRequest};
use crate::coordinator::txn::TxnError;
use crate::coordinator::{self, GroupError};
use crate::partition::{Acks, ControlType, LeaderEpoch, Offset, Origin, TxnMarker};
use crate::security::acl::{op, resource};
use crate::shard::router::{route_markers, route_produce_from, route_producers};

/// How long TxnOffsetCommit waits for its group's offsets partition to load.
const LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn allowed_id(ctx: &Ctx, info: &RequestInfo, transactional_id: &str) -> Result<(), TxnError> {
    if ctx.allowed(info, op::WRITE, resource::TRANSACTIONAL_ID, transactional_id) {
        Ok(())
    } else {
        Err(TxnError::TransactionalIdAuthorizationFailed)
    }
}

/// InitProducerId for a transactional producer.
pub async fn init_producer_id(
    ctx: &Ctx,
    info: &RequestInfo,
    transactional_id: &str,
    request: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .with_ongoing_txn_producer_id(ProducerId(-1))
        .with_ongoing_txn_producer_epoch(-1);
    let expected = (request.producer_id.0, request.producer_epoch);
    let result = match allowed_id(ctx, info, transactional_id) {
        Ok(()) => {
            ctx.txn
                .init_producer_id(&ctx.shard, transactional_id, request.transaction_timeout_ms, expected)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok((pid, epoch)) => response.with_producer_id(ProducerId(pid)).with_producer_epoch(epoch),
        Err(e) => response.with_error_code(e.code()),
    }
}

/// AddPartitionsToTxn v0..=3 (the client form: one transaction). Unknown topics fail the
/// whole request: they answer UNKNOWN_TOPIC_OR_PARTITION, the rest OPERATION_NOT_ATTEMPTED.
pub async fn add_partitions(
    ctx: &Ctx,
    info: &RequestInfo,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if info.version >= 4 {
        return add_partitions_batched(ctx, info, request).await;
    }
    let tid = request.v3_and_below_transactional_id.0.to_string();
    let mut partitions = Vec::new();
    let mut unknown = false;
    let mut denied = false;
    for t in &request.v3_and_below_topics {
        let exists = ctx.broker.topic(t.name.0.as_str());
        denied |= !ctx.allowed(info, op::WRITE, resource::TOPIC, t.name.0.as_str());
        for p in &t.partitions {
            unknown |= exists.as_ref().is_none_or(|m| *p < 0 || *p >= m.partitions);
            partitions.push((t.name.0.to_string(), *p));
        }
    }
    let result = if let Err(e) = allowed_id(ctx, info, &tid) {
        Err(e)
    } else if denied {
        Err(TxnError::TransactionalIdAuthorizationFailed)
    } else if unknown {
        Err(TxnError::UnknownTopicOrPartition)
    } else {
        let (pid, epoch) = (request.v3_and_below_producer_id.0, request.v3_and_below_producer_epoch);
        ctx.txn.add_partitions(&ctx.shard, &tid, pid, epoch, &partitions).await
    };
    let results = topic_results(&request.v3_and_below_topics, |name, p| match result {
        Ok(()) => 0,
        Err(TxnError::UnknownTopicOrPartition) => {
            if ctx.broker.topic(name).is_none_or(|m| p < 0 || p >= m.partitions) {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                ResponseError::OperationNotAttempted.code()
            }
        }
        Err(TxnError::TransactionalIdAuthorizationFailed) if denied => {
            ResponseError::TopicAuthorizationFailed.code()
        }
        Err(e) => e.code(),
    });
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// AddPartitionsToTxn's answer for `topics`, a code per partition in request order.
fn topic_results(
    topics: &[kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic],
    mut code: impl FnMut(&str, i32) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code(t.name.0.as_str(), *p))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(parts)
        })
        .collect()
}

/// AddPartitionsToTxn v4+: brokers only (CLUSTER_ACTION), several transactions per request,
/// each added (transactions v2's implicit add) or only verified (KIP-890's check that a
/// partition is in the transaction).
async fn add_partitions_batched(
    ctx: &Ctx,
    info: &RequestInfo,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    use kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnResult;
    if !ctx.allowed_on_cluster(info, op::CLUSTER_ACTION) {
        return AddPartitionsToTxnResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let mut results = Vec::with_capacity(request.transactions.len());
    for txn in &request.transactions {
        let tid = txn.transactional_id.0.as_str();
        let ids = (txn.producer_id.0, txn.producer_epoch);
        let partitions: Vec<(String, i32)> = txn
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), *p)))
            .collect();
        let outcome: Vec<Result<(), TxnError>> = if let Err(e) = ctx.txn.check_owner(tid) {
            vec![Err(e); partitions.len()]
        } else if txn.verify_only {
            partitions.iter().map(|tp| ctx.txn.verify_produce(tid, ids.0, ids.1, tp)).collect()
        } else {
            let r = ctx.txn.add_partitions(&ctx.shard, tid, ids.0, ids.1, &partitions).await;
            partitions.iter().map(|_| r).collect()
        };
        let mut codes = outcome.into_iter();
        let topic_results =
            topic_results(&txn.topics, |_, _| codes.next().map_or(0, |r| r.err().map_or(0, TxnError::code)));
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id.clone())
                .with_topic_results(topic_results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction.
pub async fn add_offsets(
    ctx: &Ctx,
    info: &RequestInfo,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let tid = request.transactional_id.0.as_str();
    let group = request.group_id.0.as_str();
    let result = async {
        allowed_id(ctx, info, tid)?;
        if !ctx.allowed(info, op::READ, resource::GROUP, group) {
            return Err(TxnError::TransactionalIdAuthorizationFailed);
        }
        coordinator::ensure_offsets_topic(&ctx.broker, &ctx.coordinator)
            .await
            .map_err(|_| TxnError::CoordinatorNotAvailable)?;
        let n = ctx.coordinator.config().offsets_topic_num_partitions;
        let partition = (OFFSETS_TOPIC.to_string(), offsets_log::partition_for(group, n));
        let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
        ctx.txn.add_partitions(&ctx.shard, tid, pid, epoch, &[partition]).await
    }
    .await;
    match result {
        Ok(()) => AddOffsetsToTxnResponse::default(),
        Err(TxnError::TransactionalIdAuthorizationFailed) if allowed_id(ctx, info, tid).is_ok() => {
            AddOffsetsToTxnResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code())
        }
        Err(e) => AddOffsetsToTxnResponse::default().with_error_code(e.code()),
    }
}

/// EndTxn: commit or abort.
pub async fn end_txn(ctx: &Ctx, info: &RequestInfo, request: EndTxnRequest) -> EndTxnResponse {
    let tid = request.transactional_id.0.as_str();
    // v5+: transactions v2 (KIP-890), the epoch bumped by every end.
    let tv2 = info.version >= 5;
    let result = match allowed_id(ctx, info, tid) {
        Ok(()) => {
            let ids = (request.producer_id.0, request.producer_epoch);
            ctx.txn.end_txn(&ctx.shard, tid, ids, request.committed, tv2).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok((pid, epoch)) => {
            EndTxnResponse::default().with_producer_id(ProducerId(pid)).with_producer_epoch(epoch)
        }
        Err(e) => EndTxnResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

/// TxnOffsetCommit: the group coordinator writes the offsets in a transactional batch of the
/// producer to `__consumer_offsets`; they become visible with the producer's COMMIT marker.
pub async fn txn_offset_commit(
    ctx: &Ctx,
    info: &RequestInfo,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let commit = CommitRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        generation_id: if info.version >= 3 { request.generation_id } else { -1 },
        topics: request
            .topics
            .iter()
            .map(|t| {
                let meta = ctx.broker.topic(t.name.0.as_str());
                let parts = t
                    .partitions
                    .iter()
                    .map(|p| CommitPartition {
                        partition: p.partition_index,
                        offset: Offset(p.committed_offset),
                        leader_epoch: LeaderEpoch(if info.version >= 2 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        }),
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                        error: match &meta {
                            Some(m) if p.partition_index >= 0 && p.partition_index < m.partitions => None,
                            _ => Some(GroupError::UnknownTopicOrPartition),
                        },
                    })
                    .collect();
                (t.name.0.to_string(), parts)
            })
            .collect(),
    };
    let producer = (request.producer_id.0, request.producer_epoch);
    let mut refused = None;
    let result = if allowed_id(ctx, info, &request.transactional_id.0).is_err() {
        Err(GroupError::TransactionalIdAuthorizationFailed)
    } else if !ctx.allowed(info, op::READ, resource::GROUP, &commit.group_id) {
        Err(GroupError::GroupAuthorizationFailed)
    } else {
        // v5+ (transactions v2): the group's offsets partition joins the transaction here,
        // without the client's AddOffsetsToTxn.
        if info.version >= 5 {
            refused =
                add_offsets_partition(ctx, &request.transactional_id.0, &commit.group_id, producer).await;
        }
        match refused {
            Some(_) => Ok(()),
            None => commit_txn_offsets(ctx, &commit, producer).await,
        }
    };
    let topics = commit
        .topics
        .iter()
        .map(|(name, parts)| {
            let partitions = parts
                .iter()
                .map(|p| {
                    let code = refused.unwrap_or_else(|| super::error::code_of_opt(p.error.or(result.err())));
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(kafka_protocol::messages::TopicName(name.clone().into()))
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// Transactions v2: the group's `__consumer_offsets` partition joins the producer's
/// transaction. `Some(code)`: refused.
async fn add_offsets_partition(
    ctx: &Ctx,
    transactional_id: &str,
    group: &str,
    producer: (i64, i16),
) -> Option<i16> {
    if coordinator::ensure_offsets_topic(&ctx.broker, &ctx.coordinator).await.is_err() {
        return Some(ResponseError::CoordinatorNotAvailable.code());
    }
    let n = ctx.coordinator.config().offsets_topic_num_partitions;
    let partition = (OFFSETS_TOPIC.to_string(), offsets_log::partition_for(group, n));
    ctx.txn.add_implicitly(&ctx.shard, transactional_id, producer, &[partition]).await.err()
}

async fn commit_txn_offsets(
    ctx: &Ctx,
    commit: &CommitRequest,
    producer: (i64, i16),
) -> Result<(), GroupError> {
    let coordinator = &ctx.coordinator;
    // The offsets partition may have just been created by this transaction's AddOffsetsToTxn
    // and still be loading: wait for it a little (kafkajs does not retry a TxnOffsetCommit
    // refused with COORDINATOR_LOAD_IN_PROGRESS).
    let deadline = std::time::Instant::now() + LOAD_WAIT;
    let prepared = loop {
        match coordinator
            .with_group(&commit.group_id, |groups, now| groups.prepare_txn_commit(commit, now))
            .and_then(|r| r)
        {
            Err(GroupError::LoadInProgress) if std::time::Instant::now() < deadline => {
                compio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            r => break r?,
        }
    };
    if prepared.write.records.is_empty() {
        return Ok(());
    }
    coordinator::ensure_offsets_topic(&ctx.broker, coordinator).await?;
    let batch = offsets_log::encode_txn_batch(&prepared.write.records, crate::clock::now_ms(), producer)
        .map_err(|_| GroupError::Unknown)?;
    let topic = Arc::from(OFFSETS_TOPIC);
    route_produce_from(&ctx.shard, topic, prepared.write.partition, batch, Origin::Coordinator, Acks::All)
        .await
        .map_err(|e| GroupError::from_write_error(&e))?;
    coordinator.with_any(|groups, _| groups.apply_txn_commit(producer.0, prepared));
    Ok(())
}

/// WriteTxnMarkers (v1): a transaction coordinator asks this broker, the leader of the
/// partitions, to write markers. Brokers only: CLUSTER_ACTION (`allowed`), else every
/// partition answers CLUSTER_AUTHORIZATION_FAILED.
pub async fn write_txn_markers(
    ctx: &Ctx,
    allowed: bool,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut markers = Vec::with_capacity(request.markers.len());
    for m in &request.markers {
        let marker = TxnMarker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            control: if m.transaction_result { ControlType::Commit } else { ControlType::Abort },
            coordinator_epoch: m.coordinator_epoch,
        };
        let calls: Vec<(Arc<str>, i32, TxnMarker)> = m
            .topics
            .iter()
            .flat_map(|t| t.partition_indexes.iter().map(move |p| (Arc::from(t.name.0.as_str()), *p, marker)))
            .collect();
        let ended: Vec<(String, i32)> = calls.iter().map(|(t, p, _)| (t.to_string(), *p)).collect();
        let results = if allowed { route_markers(&ctx.shard, calls).await } else { Vec::new() };
        for (tp, r) in ended.into_iter().zip(&results) {
            if r.is_ok() {
                ctx.txn.transaction_ended(m.producer_id.0, tp);
            }
        }
        let mut results = results.into_iter();
        let topics = m
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partition_indexes
                    .iter()
                    .map(|p| {
                        let code = match results.next() {
                            Some(Ok(_)) => {
                                if t.name.0.as_str() == OFFSETS_TOPIC {
                                    let commit = m.transaction_result;
                                    ctx.coordinator
                                        .with_any(|g, now| g.complete_txn(m.producer_id.0, *p, commit, now));
                                }
                                0
                            }
                            Some(Err(e)) => partition_code(&e),
                            None if !allowed => ResponseError::ClusterAuthorizationFailed.code(),
                            None => ResponseError::UnknownServerError.code(),
                        };
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(*p)
                            .with_error_code(code)
                    })
                    .collect();
                WritableTxnMarkerTopicResult::default().with_name(t.name.clone()).with_partitions(partitions)
            })
            .collect();
        markers.push(WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics));
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}

/// Produce v12+ with a transactional id (transactions v2): its partitions that this broker
/// may write (existing, authorized) join the producer's transaction. `Some(code)`: what to
/// answer for every transactional partition of the request.
pub async fn add_implicitly(
    ctx: &Ctx,
    info: &RequestInfo,
    transactional_id: &str,
    request: &kafka_protocol::messages::ProduceRequest,
) -> Option<i16> {
    let mut ids = None;
    let mut partitions = Vec::new();
    for t in &request.topic_data {
        let name = t.name.0.as_str();
        if ctx.broker.topic(name).is_none() || !ctx.allowed(info, op::WRITE, resource::TOPIC, name) {
            continue;
        }
        for p in &t.partition_data {
            let Some(h) = p.records.as_ref().and_then(|r| riptide_format::BatchHeader::parse(r)) else {
                continue;
            };
            if !h.is_transactional() {
                return Some(ResponseError::InvalidRecord.code());
            }
            ids.get_or_insert((h.producer_id, h.producer_epoch));
            partitions.push((name.to_string(), p.index));
        }
    }
    let ids = ids?;
    let added = ctx.txn.add_implicitly(&ctx.shard, transactional_id, ids, &partitions).await;
    added.err().map(coordinator::txn::retriable_for_produce)
}

/// A Produce with a transactional id: every partition must be in the producer's ongoing
/// transaction (INVALID_TXN_STATE otherwise), checked here when this broker coordinates the
/// id, else with its coordinator (KIP-890's verification, once per partition per transaction).
/// `None`: allowed.
pub async fn verify_produce(
    ctx: &Ctx,
    transactional_id: &str,
    topic: &str,
    partition: i32,
    records: &bytes::Bytes,
) -> Option<i16> {
    let Some(h) = riptide_format::BatchHeader::parse(records) else {
        return Some(ResponseError::CorruptMessage.code());
    };
    if !h.is_transactional() {
        return Some(ResponseError::InvalidRecord.code());
    }
    let tp = (topic.to_string(), partition);
    if ctx.txn.coordinates(transactional_id) {
        return ctx
            .txn
            .verify_produce(transactional_id, h.producer_id, h.producer_epoch, &tp)
            .err()
            .map(TxnError::code);
    }
    let ids = (h.producer_id, h.producer_epoch);
    let verified = ctx.txn.verify(&ctx.shard, transactional_id, ids, &[tp]).await;
    verified.err().map(coordinator::txn::retriable_for_produce)
}

/// DescribeTransactions: each id's state as this coordinator holds it (NOT_COORDINATOR for an
/// id coordinated elsewhere, TRANSACTIONAL_ID_NOT_FOUND for an unknown one).
pub fn describe_transactions(
    ctx: &Ctx,
    info: &RequestInfo,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|tid| {
            let id = tid.0.to_string();
            let found = if !ctx.allowed(info, op::DESCRIBE, resource::TRANSACTIONAL_ID, &id) {
                Err(TxnError::TransactionalIdAuthorizationFailed)
            } else {
                ctx.txn
                    .check_owner(&id)
                    .and_then(|()| ctx.txn.describe(&id).ok_or(TxnError::TransactionalIdNotFound))
            };
            let state =
                describe_transactions_response::TransactionState::default().with_transactional_id(tid);
            match found {
                Err(e) => {
                    state.with_error_code(e.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
                }
                Ok(m) => {
                    let mut topics: Vec<describe_transactions_response::TopicData> = Vec::new();
                    for (t, p) in &m.partitions {
                        match topics.last_mut() {
                            Some(last) if last.topic.0.as_str() == t => last.partitions.push(*p),
                            _ => topics.push(
                                describe_transactions_response::TopicData::default()
                                    .with_topic(kafka_protocol::messages::TopicName(t.clone().into()))
                                    .with_partitions(vec![*p]),
                            ),
                        }
                    }
                    state
                        .with_transaction_state(m.state.name().into())
                        .with_transaction_timeout_ms(m.timeout_ms)
                        .with_transaction_start_time_ms(m.start_ms)
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.producer_epoch)
                        .with_topics(topics)
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions (v0..=1): the ids this broker coordinates that the principal may
/// describe, filtered by state name, producer id and (v1) running longer than a duration.
pub fn list_transactions(
    ctx: &Ctx,
    info: &RequestInfo,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    const STATES: [&str; 8] = [
        "Empty",
        "Ongoing",
        "PrepareCommit",
        "PrepareAbort",
        "CompleteCommit",
        "CompleteAbort",
        "Dead",
        "PrepareEpochFence",
    ];
    let unknown: Vec<_> =
        request.state_filters.iter().filter(|s| !STATES.contains(&s.as_str())).cloned().collect();
    // v2 (KIP-1152): ids the pattern matches as a whole, as Java's `Matcher.matches` does.
    let pattern = match request.transactional_id_pattern.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(r) => Some(r),
            Err(_) => {
                return ListTransactionsResponse::default()
                    .with_error_code(ResponseError::InvalidRegularExpression.code())
            }
        },
    };
    let now = crate::clock::now_ms();
    let states = ctx
        .txn
        .list()
        .into_iter()
        .filter(|(id, _)| ctx.txn.coordinates(id))
        .filter(|(id, _)| pattern.as_ref().is_none_or(|p| p.is_match(id)))
        .filter(|(id, _)| ctx.allowed(info, op::DESCRIBE, resource::TRANSACTIONAL_ID, id))
        .filter(|(_, m)| {
            request.state_filters.is_empty()
                || request.state_filters.iter().any(|s| s.as_str() == m.state.name())
        })
        .filter(|(_, m)| {
            request.producer_id_filters.is_empty()
                || request.producer_id_filters.iter().any(|p| p.0 == m.producer_id)
        })
        .filter(|(_, m)| {
            request.duration_filter < 0 || (m.start_ms >= 0 && now - m.start_ms >= request.duration_filter)
        })
        .map(|(id, m)| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(kafka_protocol::messages::TransactionalId(id.into()))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(m.state.name().into())
        })
        .collect();
    ListTransactionsResponse::default().with_unknown_state_filters(unknown).with_transaction_states(states)
}

/// DescribeProducers (v0): each partition leader's producers, with the start of their open
/// transaction (how an operator finds a hanging transaction). READ on the topic.
pub async fn describe_producers(
    ctx: &Ctx,
    info: &RequestInfo,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name: Arc<str> = Arc::from(t.name.0.as_str());
        let allowed = ctx.allowed(info, op::READ, resource::TOPIC, &name);
        let count = ctx.broker.topic(&name).map_or(0, |m| m.partitions);
        let mut partitions = Vec::with_capacity(t.partition_indexes.len());
        for p in t.partition_indexes {
            let answer = describe_producers_response::PartitionResponse::default().with_partition_index(p);
            let outcome = if !allowed {
                Err(crate::partition::PartitionError::TopicAuthorizationFailed)
            } else if p < 0 || p >= count {
                Err(crate::partition::PartitionError::UnknownTopicOrPartition)
            } else {
                route_producers(&ctx.shard, name.clone(), p).await
            };
            partitions.push(match outcome {
                Ok(producers) => answer.with_active_producers(
                    producers
                        .into_iter()
                        .map(|s| {
                            describe_producers_response::ProducerState::default()
                                .with_producer_id(ProducerId(s.producer_id))
                                .with_producer_epoch(i32::from(s.epoch))
                                .with_last_sequence(s.last_sequence)
                                .with_last_timestamp(s.last_timestamp_ms)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(s.current_txn_first_offset)
                        })
                        .collect(),
                ),
                Err(e) => answer.with_error_code(partition_code(&e)),
            });
        }
        topics.push(
            describe_producers_response::TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}
