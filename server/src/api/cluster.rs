//! Cluster-level APIs of a single node: DescribeCluster and InitProducerId (idempotent
//! producers; transactions are not implemented and are refused clearly).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, InitProducerIdRequest, InitProducerIdResponse,
    ProducerId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::Ctx;

pub fn describe_cluster(ctx: &Ctx, _request: DescribeClusterRequest) -> DescribeClusterResponse {
    let (host, port) = ctx.broker.config.advertised();
    let node = BrokerId(ctx.broker.config.node_id);
    DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(StrBytes::from_string(ctx.broker.cluster_id.clone()))
        .with_controller_id(node)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(StrBytes::from_string(host))
            .with_port(port)])
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
