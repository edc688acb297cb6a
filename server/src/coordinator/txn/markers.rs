//! Transaction requests to another broker over the inter-broker listener: WriteTxnMarkers to
//! the leader of partitions not led here (as Kafka's coordinator sends them), and
//! AddPartitionsToTxn v5 to the coordinator of an id (transactions v2's implicit add, as
//! Kafka's partition leaders send it). One connection per call: markers are one request per
//! transaction per leader (a failure is retried by the coordinator's background task), and an
//! implicit add happens once per partition per transaction.

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use riptide_client::Connection;

use super::state::TxnPartition;
use crate::partition::{ControlType, TxnMarker};
use crate::shard::Ctx;

/// A connection to broker `node` over the inter-broker listener.
async fn connect(ctx: &Ctx, node: i32) -> Result<Connection, String> {
    crate::coordinator::peer::connect(ctx, node, "txn").await
}

/// Asks broker `coordinator` to add `partitions` to the transaction of `transactional_id`, or
/// only to check that they are in it (AddPartitionsToTxn v4+). `Err`: the first partition's
/// error code, or None when the coordinator could not be asked.
pub async fn add_partitions(
    ctx: &Ctx,
    coordinator: i32,
    transactional_id: &str,
    (producer_id, producer_epoch): (i64, i16),
    partitions: &[TxnPartition],
    verify_only: bool,
) -> Result<(), Option<i16>> {
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (t, p) in partitions {
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == t => last.partitions.push(*p),
            _ => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t.clone())))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    let request =
        AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default(
        )
        .with_transactional_id(TransactionalId(StrBytes::from_string(transactional_id.to_string())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_verify_only(verify_only)
        .with_topics(topics)]);
    let conn = connect(ctx, coordinator).await.map_err(|e| {
        tracing::debug!("AddPartitionsToTxn to broker {coordinator}: {e}");
        None
    })?;
    if conn.version_for::<AddPartitionsToTxnRequest>().map_or(true, |v| v < 4) {
        return Err(None);
    }
    let response = conn.send(&request).await.map_err(|_| None)?;
    if response.error_code != 0 {
        return Err(Some(response.error_code));
    }
    let codes = response.results_by_transaction.iter().flat_map(|r| r.topic_results.iter());
    match codes.flat_map(|t| t.results_by_partition.iter()).map(|p| p.partition_error_code).find(|c| *c != 0)
    {
        Some(code) => Err(Some(code)),
        None if response.results_by_transaction.is_empty() => Err(None),
        None => Ok(()),
    }
}

/// Sends `marker` for `partitions` to broker `leader`; Ok when every partition wrote it.
pub async fn send(
    ctx: &Ctx,
    leader: i32,
    marker: &TxnMarker,
    partitions: &[TxnPartition],
) -> Result<(), String> {
    let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
    for (t, p) in partitions {
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == t => last.partition_indexes.push(*p),
            _ => topics.push(
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t.clone())))
                    .with_partition_indexes(vec![*p]),
            ),
        }
    }
    let request = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(marker.producer_id))
        .with_producer_epoch(marker.producer_epoch)
        .with_transaction_result(marker.control == ControlType::Commit)
        .with_coordinator_epoch(marker.coordinator_epoch)
        .with_topics(topics)]);
    let conn = connect(ctx, leader).await?;
    let response = conn.send(&request).await.map_err(|e| e.to_string())?;
    let failed: Vec<String> = response
        .markers
        .iter()
        .flat_map(|m| m.topics.iter())
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.as_str(), p.partition_index, p.error_code)))
        .filter(|(_, _, code)| *code != 0)
        .map(|(t, p, code)| format!("{t}-{p}: error {code}"))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join(", "))
    }
}
