//! WriteTxnMarkers to another broker: the markers of partitions whose leader is not this
//! broker go to that leader over the inter-broker listener (Kafka's coordinator does the
//! same). One connection per call: markers are one request per transaction per leader, and a
//! failure is retried by the coordinator's background task.

use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use riptide_client::{ConnectOptions, Connection};

use super::state::TxnPartition;
use crate::partition::{ControlType, TxnMarker};
use crate::shard::Ctx;

/// Sends `marker` for `partitions` to broker `leader`; Ok when every partition wrote it.
pub async fn send(
    ctx: &Ctx,
    leader: i32,
    marker: &TxnMarker,
    partitions: &[TxnPartition],
) -> Result<(), String> {
    let addr = {
        let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
        let listener = ctx.broker.config.inter_broker_listener().name.clone();
        let b = cat.brokers.get(&leader).ok_or_else(|| format!("broker {leader} is not registered"))?;
        let e = b
            .endpoints
            .iter()
            .find(|e| e.name == listener)
            .or(b.endpoints.first())
            .ok_or_else(|| format!("broker {leader} has no endpoint"))?;
        format!("{}:{}", e.host, e.port)
    };
    let options = ConnectOptions {
        client_id: format!("riptide-txn-coordinator-{}", ctx.broker.config.node_id),
        request_timeout: Duration::from_secs(30),
        tls: ctx.broker.security.inter_broker_tls.clone(),
        sasl: ctx.broker.security.inter_broker_login.clone(),
        ..ConnectOptions::default()
    };
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
    let conn = Connection::connect(&addr, &options).await.map_err(|e| e.to_string())?;
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
