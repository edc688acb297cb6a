//! DescribeConfigs as Kafka answers it: each config's source (a topic override, the broker's
//! config file, or the default), its synonyms (every level that has a value, most specific
//! first) and its documentation, when asked for.

mod common;

use common::Client;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

fn describe(
    c: &mut Client,
    resource_type: i8,
    name: &str,
) -> Vec<describe_configs_response::DescribeConfigsResourceResult> {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name.to_string()))]);
    match c.call_once(ApiKey::DescribeConfigs, 4, RequestKind::DescribeConfigs(request)) {
        ResponseKind::DescribeConfigs(r) => {
            assert_eq!(r.results[0].error_code, 0, "{r:?}");
            r.results.into_iter().next().expect("one result").configs
        }
        other => panic!("{other:?}"),
    }
}

fn synonyms(e: &describe_configs_response::DescribeConfigsResourceResult) -> Vec<(String, String, i8)> {
    e.synonyms
        .iter()
        .map(|s| (s.name.to_string(), s.value.as_deref().unwrap_or_default().to_string(), s.source))
        .collect()
}

#[test]
fn sources_synonyms_and_documentation() {
    let (mut config, dir) = common::single_node("describe-configs");
    config.log.segment_bytes = 64 << 20; // set in the broker's config, not the default
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("described")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("3600000")))]),
    ]);
    match c.call_once(ApiKey::CreateTopics, 5, RequestKind::CreateTopics(create)) {
        ResponseKind::CreateTopics(r) => assert_eq!(r.topics[0].error_code, 0, "{r:?}"),
        other => panic!("{other:?}"),
    }
    let configs = describe(&mut c, 2, "described");
    let get = |name: &str| {
        configs.iter().find(|e| e.name.as_str() == name).unwrap_or_else(|| panic!("{name}: {configs:?}"))
    };
    let retention = get("retention.ms");
    assert_eq!((retention.value.as_deref(), retention.config_source), (Some("3600000"), TOPIC_CONFIG));
    assert_eq!(
        synonyms(retention),
        vec![
            ("retention.ms".into(), "3600000".into(), TOPIC_CONFIG),
            ("log.retention.ms".into(), "604800000".into(), DEFAULT_CONFIG)
        ]
    );
    let segment = get("segment.bytes");
    assert_eq!((segment.value.as_deref(), segment.config_source), (Some("67108864"), STATIC_BROKER_CONFIG));
    assert_eq!(
        synonyms(segment),
        vec![
            ("log.segment.bytes".into(), "67108864".into(), STATIC_BROKER_CONFIG),
            ("log.segment.bytes".into(), "1073741824".into(), DEFAULT_CONFIG)
        ]
    );
    let cleanup = get("cleanup.policy");
    assert_eq!(cleanup.config_source, DEFAULT_CONFIG);
    assert!(
        configs.iter().all(|e| e.documentation.as_ref().is_some_and(|d| !d.is_empty())),
        "all documented"
    );
    let broker = describe(&mut c, 4, "0");
    let segment = broker.iter().find(|e| e.name.as_str() == "log.segment.bytes").expect("log.segment.bytes");
    assert_eq!((segment.config_source, segment.read_only), (STATIC_BROKER_CONFIG, true));
    let partitions = broker.iter().find(|e| e.name.as_str() == "num.partitions").expect("num.partitions");
    assert_eq!(partitions.config_source, DEFAULT_CONFIG);
    running.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
