//! Client telemetry on the wire (KIP-714): client-metrics subscriptions as CLIENT_METRICS config
//! resources (IncrementalAlterConfigs with Kafka's checks, DescribeConfigs, ListConfigResources),
//! then GetTelemetrySubscriptions and PushTelemetry with Kafka's error codes.

mod common;

use common::Client;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use riptide_server::telemetry::otlp;

const CLIENT_METRICS: i8 = 16;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// IncrementalAlterConfigs (SET) on one subscription: its error code.
fn set(c: &mut Client, name: &str, configs: &[(&str, &str)]) -> i16 {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(0)
                .with_value(Some(s(v)))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(CLIENT_METRICS)
            .with_resource_name(s(name))
            .with_configs(configs),
    ]);
    match c.call_once(ApiKey::IncrementalAlterConfigs, 1, RequestKind::IncrementalAlterConfigs(request)) {
        ResponseKind::IncrementalAlterConfigs(r) => r.responses[0].error_code,
        other => panic!("{other:?}"),
    }
}

#[test]
fn subscriptions_then_pushes() {
    let (config, dir) = common::single_node("client-telemetry");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    // Kafka's checks: INVALID_CONFIG for bad values, INVALID_REQUEST for unknown names.
    assert_eq!(set(&mut c, "sub", &[("interval.ms", "50")]), 40);
    assert_eq!(set(&mut c, "sub", &[("match", "group=x")]), 40);
    assert_eq!(set(&mut c, "sub", &[("metric", "x")]), 42);
    assert_eq!(set(&mut c, "sub", &[("metrics", "*"), ("interval.ms", "1000")]), 0);

    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(CLIENT_METRICS)
            .with_resource_name(s("sub")),
    ]);
    match c.call_once(ApiKey::DescribeConfigs, 4, RequestKind::DescribeConfigs(describe)) {
        ResponseKind::DescribeConfigs(r) => {
            let got: Vec<(String, String, i8)> = r.results[0]
                .configs
                .iter()
                .map(|e| (e.name.to_string(), e.value.as_deref().unwrap_or("").to_string(), e.config_source))
                .collect();
            let want = [("metrics", "*", 7), ("interval.ms", "1000", 7), ("match", "", 5)];
            assert_eq!(got, want.map(|(n, v, src)| (n.to_string(), v.to_string(), src)));
        }
        other => panic!("{other:?}"),
    }
    for (version, types) in [(0, vec![]), (1, vec![CLIENT_METRICS])] {
        let list = ListConfigResourcesRequest::default().with_resource_types(types);
        match c.call_once(ApiKey::ListConfigResources, version, RequestKind::ListConfigResources(list)) {
            ResponseKind::ListConfigResources(r) => {
                let names: Vec<&str> = r.config_resources.iter().map(|r| r.resource_name.as_str()).collect();
                assert_eq!(names, ["sub"], "v{version}");
            }
            other => panic!("{other:?}"),
        }
    }

    // A new client instance gets an id, the subscription and what it may push.
    let get = |c: &mut Client, id| match c.call_once(
        ApiKey::GetTelemetrySubscriptions,
        0,
        RequestKind::GetTelemetrySubscriptions(
            GetTelemetrySubscriptionsRequest::default().with_client_instance_id(id),
        ),
    ) {
        ResponseKind::GetTelemetrySubscriptions(r) => r,
        other => panic!("{other:?}"),
    };
    let offer = get(&mut c, uuid::Uuid::nil());
    assert_eq!(offer.error_code, 0);
    assert!(!offer.client_instance_id.is_nil());
    assert_eq!(offer.requested_metrics, vec![s("*")]);
    assert_eq!(offer.push_interval_ms, 1000);
    assert_eq!(offer.accepted_compression_types, vec![4, 3, 1, 2]);
    assert_eq!(offer.telemetry_max_bytes, 1 << 20);

    let payload = otlp::encode::metrics(("org.apache.kafka.producer.record.send.rate", 12.5, &[]), ("c", 1));
    let push = |c: &mut Client, subscription, compression: i8, metrics: &[u8]| {
        let request = PushTelemetryRequest::default()
            .with_client_instance_id(offer.client_instance_id)
            .with_subscription_id(subscription)
            .with_compression_type(compression)
            .with_metrics(bytes::Bytes::copy_from_slice(metrics));
        match c.call_once(ApiKey::PushTelemetry, 0, RequestKind::PushTelemetry(request)) {
            ResponseKind::PushTelemetry(r) => r.error_code,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(push(&mut c, offer.subscription_id + 1, 0, &payload), 117, "UNKNOWN_SUBSCRIPTION_ID");
    assert_eq!(push(&mut c, offer.subscription_id, 0, &payload), 0);
    assert_eq!(push(&mut c, offer.subscription_id, 0, &payload), 89, "THROTTLING_QUOTA_EXCEEDED: too early");
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(push(&mut c, offer.subscription_id, 0, b"\x0a\x05\x01"), 87, "INVALID_RECORD");
    // A changed subscription: the old id is refused, the client asks again.
    assert_eq!(set(&mut c, "sub", &[("interval.ms", "2000")]), 0);
    assert_eq!(push(&mut c, offer.subscription_id, 0, &payload), 117);
    let again = get(&mut c, offer.client_instance_id);
    assert_eq!(again.client_instance_id, offer.client_instance_id);
    assert_eq!(again.push_interval_ms, 2000);
    running.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}
