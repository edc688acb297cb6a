//! Cluster-level APIs: DescribeCluster (the registered brokers from the applied metadata, fenced
//! ones only when asked for, KIP-1073) and InitProducerId (idempotent producers; transactions
//! are not implemented and are refused clearly).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, InitProducerIdRequest, InitProducerIdResponse,
    ProducerId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::Ctx;

pub fn describe_cluster(ctx: &Ctx, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
    let brokers = cat
        .brokers
        .values()
        .filter(|b| !b.fenced || request.include_fenced_brokers)
        .filter_map(|b| {
            let ep = b.endpoints.iter().find(|e| e.name == "PLAINTEXT").or(b.endpoints.first())?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(ep.host.clone()))
                    .with_port(i32::from(ep.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
                    .with_is_fenced(b.fenced),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(StrBytes::from_string(ctx.broker.cluster_id.clone()))
        .with_controller_id(BrokerId(super::metadata::controller_id(&cat, ctx.broker.config.node_id)))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN)
}

pub fn init_producer_id(ctx: &Ctx, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .with_ongoing_txn_producer_id(ProducerId(-1))
        .with_ongoing_txn_producer_epoch(-1);
    if request.transactional_id.is_some() {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // KIP-360: a producer that knows its id may ask for an epoch bump instead of a new id.
    let known =
        request.producer_id.0 >= 0 && request.producer_epoch >= 0 && request.producer_epoch < i16::MAX - 1;
    if known {
        return response
            .with_error_code(0)
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    match ctx.broker.next_producer_id() {
        Ok(id) => response.with_error_code(0).with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!("cannot reserve producer ids: {e}");
            response.with_error_code(ResponseError::KafkaStorageError.code())
        }
    }
}
