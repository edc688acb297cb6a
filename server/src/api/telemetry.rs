//! GetTelemetrySubscriptions and PushTelemetry (KIP-714): see `crate::telemetry`.

use std::time::Instant;

use kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse, PushTelemetryRequest,
    PushTelemetryResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::RequestInfo;
use crate::broker::Broker;
use crate::telemetry::{ClientInfo, ACCEPTED_COMPRESSION};

/// The client as subscriptions select it: from the request header, its ApiVersions and its
/// connection.
fn client(info: &RequestInfo) -> ClientInfo {
    let (name, version) = info.session.client_software();
    ClientInfo {
        instance_id: String::new(),
        client_id: info.client_id().to_string(),
        software_name: name.to_string(),
        software_version: version.to_string(),
        source_address: info.session.peer.to_string(),
        source_port: info.session.peer_port.to_string(),
    }
}

pub fn subscriptions(
    broker: &Broker,
    info: &RequestInfo,
    request: GetTelemetrySubscriptionsRequest,
) -> GetTelemetrySubscriptionsResponse {
    let offer = broker.metrics.telemetry.subscribe(request.client_instance_id, client(info), Instant::now());
    GetTelemetrySubscriptionsResponse::default()
        .with_client_instance_id(offer.instance_id)
        .with_subscription_id(offer.subscription_id)
        .with_accepted_compression_types(ACCEPTED_COMPRESSION.to_vec())
        .with_push_interval_ms(offer.push_interval_ms)
        .with_telemetry_max_bytes(broker.config.telemetry_max_bytes)
        // Cumulative sums: what a Prometheus counter is.
        .with_delta_temporality(false)
        .with_requested_metrics(offer.requested_metrics.into_iter().map(StrBytes::from_string).collect())
}

pub fn push(broker: &Broker, info: &RequestInfo, request: PushTelemetryRequest) -> PushTelemetryResponse {
    let outcome = broker.metrics.telemetry.push(
        request.client_instance_id,
        client(info),
        request.subscription_id,
        request.terminating,
        request.compression_type,
        &request.metrics,
        broker.config.telemetry_max_bytes as usize,
        Instant::now(),
    );
    match outcome {
        Ok(_) => PushTelemetryResponse::default(),
        Err(e) => {
            tracing::debug!("telemetry push from {} refused: {e}", request.client_instance_id);
            PushTelemetryResponse::default().with_error_code(e.code())
        }
    }
}
