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
    assert_eq!((segment.config_source, segment.read_only), (STATIC_BROKER_CONFIG, false), "dynamic");
    let partitions = broker.iter().find(|e| e.name.as_str() == "num.partitions").expect("num.partitions");
    assert_eq!(partitions.config_source, DEFAULT_CONFIG);
    running.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const INVALID_CONFIG: i16 = 40;

fn set_broker_config(c: &mut Client, broker: &str, name: &str, value: &str) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_string(broker.to_string()))
            .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_string(name.to_string()))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(value.to_string())))]),
    ]);
    match c.call_once(ApiKey::IncrementalAlterConfigs, 1, RequestKind::IncrementalAlterConfigs(request)) {
        ResponseKind::IncrementalAlterConfigs(r) => r.responses[0].error_code,
        other => panic!("{other:?}"),
    }
}

/// Dynamic broker configs: set for this broker and cluster-wide, they become the topics'
/// defaults (with their sources), refuse what cannot change at run time, and survive a restart
/// (they are in the metadata log).
#[test]
fn dynamic_broker_configs_are_topic_defaults_and_persist() {
    let (config, dir) = common::single_node("dynamic-broker-configs");
    let running = riptide_server::server::start(config.clone()).expect("start");
    let mut c = Client::connect(running.addr);
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("dyn")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    match c.call_once(ApiKey::CreateTopics, 5, RequestKind::CreateTopics(create)) {
        ResponseKind::CreateTopics(r) => assert_eq!(r.topics[0].error_code, 0, "{r:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(set_broker_config(&mut c, "0", "log.roll.ms", "3600000"), 0);
    assert_eq!(set_broker_config(&mut c, "", "log.retention.bytes", "1048576"), 0);
    assert_eq!(set_broker_config(&mut c, "0", "listeners", "PLAINTEXT://:1"), INVALID_CONFIG);
    assert_eq!(set_broker_config(&mut c, "0", "log.retention.ms", "soon"), INVALID_CONFIG);
    let check = |c: &mut Client| {
        let configs = describe(c, 2, "dyn");
        let get = |name: &str| configs.iter().find(|e| e.name.as_str() == name).expect("config").clone();
        let roll = get("segment.ms");
        assert_eq!((roll.value.as_deref(), roll.config_source), (Some("3600000"), DYNAMIC_BROKER_CONFIG));
        assert_eq!(synonyms(&roll)[0], ("log.roll.ms".into(), "3600000".into(), DYNAMIC_BROKER_CONFIG));
        let bytes = get("retention.bytes");
        assert_eq!(
            (bytes.value.as_deref(), bytes.config_source),
            (Some("1048576"), DYNAMIC_DEFAULT_BROKER_CONFIG)
        );
        let broker = describe(c, 4, "0");
        let roll = broker.iter().find(|e| e.name.as_str() == "log.roll.ms").expect("log.roll.ms");
        assert_eq!((roll.config_source, roll.read_only), (DYNAMIC_BROKER_CONFIG, false));
        let node = broker.iter().find(|e| e.name.as_str() == "node.id").expect("node.id");
        assert!(node.read_only);
        // "": only the cluster-wide ones that are set.
        let cluster = describe(c, 4, "");
        let names: Vec<_> = cluster.iter().map(|e| (e.name.to_string(), e.config_source)).collect();
        assert_eq!(names, vec![("log.retention.bytes".to_string(), DYNAMIC_DEFAULT_BROKER_CONFIG)]);
    };
    check(&mut c);
    running.shutdown();
    let running = riptide_server::server::start(config).expect("restart");
    let mut c = Client::connect(running.addr);
    check(&mut c);
    running.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
