//! Client quotas as Kafka serves them: AlterClientQuotas / DescribeClientQuotas with Kafka's
//! checks, kept across a restart, and produce and fetch byte rates enforced with
//! `throttle_time_ms` and a connection that is not read while it is throttled (KIP-219).

mod common;

use std::time::{Duration, Instant};

use common::Client;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const CLIENT: &str = "riptide-tests"; // the test client's client id

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// One AlterClientQuotas entry: the entity's (type, name) parts and (key, value) ops, a
/// `None` value removing the key.
fn entry(
    entity: &[(&str, Option<&str>)],
    ops: &[(&str, Option<f64>)],
) -> alter_client_quotas_request::EntryData {
    alter_client_quotas_request::EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(t, n)| {
                    alter_client_quotas_request::EntityData::default()
                        .with_entity_type(s(t))
                        .with_entity_name(n.map(s))
                })
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(k, v)| {
                    alter_client_quotas_request::OpData::default()
                        .with_key(s(k))
                        .with_value(v.unwrap_or(0.0))
                        .with_remove(v.is_none())
                })
                .collect(),
        )
}

/// The (error code, message) of each entry.
fn alter(
    c: &mut Client,
    entries: Vec<alter_client_quotas_request::EntryData>,
    validate_only: bool,
) -> Vec<(i16, String)> {
    let request = AlterClientQuotasRequest::default().with_entries(entries).with_validate_only(validate_only);
    match c.call_once(ApiKey::AlterClientQuotas, 1, RequestKind::AlterClientQuotas(request)) {
        ResponseKind::AlterClientQuotas(r) => r
            .entries
            .iter()
            .map(|e| (e.error_code, e.error_message.as_deref().unwrap_or_default().to_string()))
            .collect(),
        other => panic!("{other:?}"),
    }
}

type Described = Vec<(Vec<(String, Option<String>)>, Vec<(String, f64)>)>;

/// Every entity matching the filter (type, match type, match), with its quotas.
fn describe(c: &mut Client, filter: &[(&str, i8, Option<&str>)], strict: bool) -> Result<Described, i16> {
    let components = filter
        .iter()
        .map(|(t, m, name)| {
            describe_client_quotas_request::ComponentData::default()
                .with_entity_type(s(t))
                .with_match_type(*m)
                .with_match(name.map(s))
        })
        .collect();
    let request = DescribeClientQuotasRequest::default().with_components(components).with_strict(strict);
    match c.call_once(ApiKey::DescribeClientQuotas, 1, RequestKind::DescribeClientQuotas(request)) {
        ResponseKind::DescribeClientQuotas(r) if r.error_code != 0 => Err(r.error_code),
        ResponseKind::DescribeClientQuotas(r) => Ok(r
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                let entity = e
                    .entity
                    .iter()
                    .map(|p| (p.entity_type.to_string(), p.entity_name.as_deref().map(str::to_string)));
                let values = e.values.iter().map(|v| (v.key.to_string(), v.value));
                (entity.collect(), values.collect())
            })
            .collect()),
        other => panic!("{other:?}"),
    }
}

fn owned(parts: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    parts.iter().map(|(t, n)| (t.to_string(), n.map(str::to_string))).collect()
}

#[test]
fn quotas_are_checked_described_and_kept() {
    let (config, dir) = common::single_node("client-quotas");
    let running = riptide_server::server::start(config.clone()).expect("start");
    let mut c = Client::connect(running.addr);
    const INVALID_REQUEST: i16 = 42;
    // Kafka's checks, each entry on its own.
    let refused = alter(
        &mut c,
        vec![
            entry(&[("user", Some("alice"))], &[("no_such_quota", Some(1.0))]),
            entry(&[("ip", Some("10.0.0.1")), ("user", Some("alice"))], &[("producer_byte_rate", Some(1.0))]),
            entry(&[("user", Some("alice"))], &[("producer_byte_rate", Some(1.5))]),
            entry(&[("ip", None)], &[("producer_byte_rate", Some(10.0))]),
            entry(&[("group", Some("g"))], &[("producer_byte_rate", Some(10.0))]),
            entry(&[], &[("producer_byte_rate", Some(10.0))]),
        ],
        false,
    );
    assert!(refused.iter().all(|(code, msg)| *code == INVALID_REQUEST && !msg.is_empty()), "{refused:?}");
    // validate_only stores nothing.
    let checked =
        alter(&mut c, vec![entry(&[("user", Some("alice"))], &[("producer_byte_rate", Some(1e6))])], true);
    assert_eq!(checked, vec![(0, String::new())]);
    assert_eq!(describe(&mut c, &[], false), Ok(vec![]));
    let set = alter(
        &mut c,
        vec![
            entry(
                &[("user", Some("alice"))],
                &[("producer_byte_rate", Some(1e6)), ("request_percentage", Some(50.5))],
            ),
            entry(
                &[("user", Some("alice")), ("client-id", Some("app"))],
                &[("consumer_byte_rate", Some(2e6))],
            ),
            entry(&[("user", None)], &[("consumer_byte_rate", Some(3e6))]),
            entry(&[("ip", Some("10.0.0.1"))], &[("connection_creation_rate", Some(5.0))]),
        ],
        false,
    );
    assert!(set.iter().all(|(code, _)| *code == 0), "{set:?}");
    // Filters: exact, default, any specified, strict or not.
    let alice = owned(&[("user", Some("alice"))]);
    let alice_app = owned(&[("client-id", Some("app")), ("user", Some("alice"))]);
    let exact = describe(&mut c, &[("user", 0, Some("alice"))], false).unwrap();
    assert_eq!(exact.len(), 2, "{exact:?}");
    let strict = describe(&mut c, &[("user", 0, Some("alice"))], true).unwrap();
    assert_eq!(
        strict,
        vec![(alice.clone(), vec![("producer_byte_rate".into(), 1e6), ("request_percentage".into(), 50.5)])]
    );
    let defaults = describe(&mut c, &[("user", 1, None)], false).unwrap();
    assert_eq!(defaults, vec![(owned(&[("user", None)]), vec![("consumer_byte_rate".into(), 3e6)])]);
    let any_client = describe(&mut c, &[("client-id", 2, None)], false).unwrap();
    assert_eq!(any_client, vec![(alice_app.clone(), vec![("consumer_byte_rate".into(), 2e6)])]);
    assert_eq!(describe(&mut c, &[("ip", 2, None)], true).unwrap().len(), 1);
    assert_eq!(describe(&mut c, &[("user", 0, None)], false), Err(INVALID_REQUEST));
    // Removing one key keeps the others; removing the last removes the entity.
    let removed = alter(
        &mut c,
        vec![
            entry(&[("user", Some("alice"))], &[("request_percentage", None)]),
            entry(&[("ip", Some("10.0.0.1"))], &[("connection_creation_rate", None)]),
        ],
        false,
    );
    assert!(removed.iter().all(|(code, _)| *code == 0), "{removed:?}");
    assert_eq!(describe(&mut c, &[("ip", 2, None)], false).unwrap(), vec![]);
    running.shutdown();
    // Kept in the metadata log across a restart.
    let running = riptide_server::server::start(config).expect("restart");
    let mut c = Client::connect(running.addr);
    let after = describe(&mut c, &[("user", 0, Some("alice"))], true).unwrap();
    assert_eq!(after, vec![(alice, vec![("producer_byte_rate".into(), 1e6)])]);
    running.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

fn produce(c: &mut Client, topic: &str, size: usize) -> ProduceResponse {
    let request = common::produce_request(None, topic, 0, common::plain_batch(&vec![7u8; size]));
    match c.call_once(ApiKey::Produce, 9, RequestKind::Produce(request)) {
        ResponseKind::Produce(r) => {
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "{r:?}");
            r
        }
        other => panic!("{other:?}"),
    }
}

fn fetch(c: &mut Client, topic: &str) -> FetchResponse {
    let request =
        FetchRequest::default().with_max_wait_ms(0).with_min_bytes(0).with_max_bytes(1 << 20).with_topics(
            vec![fetch_request::FetchTopic::default().with_topic(TopicName(s(topic))).with_partitions(vec![
                fetch_request::FetchPartition::default().with_partition(0).with_partition_max_bytes(1 << 20),
            ])],
        );
    match c.call_once(ApiKey::Fetch, 12, RequestKind::Fetch(request)) {
        ResponseKind::Fetch(r) => r,
        other => panic!("{other:?}"),
    }
}

fn record_bytes(r: &FetchResponse) -> usize {
    r.responses[0].partitions[0].records.as_ref().map_or(0, |b| b.len())
}

/// Metadata (no topics) on `c`, timed: a throttled connection answers it only after its throttle.
fn timed_metadata(c: &mut Client) -> Duration {
    let started = Instant::now();
    match c.call_once(
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![]))),
    ) {
        ResponseKind::Metadata(_) => started.elapsed(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn byte_rates_are_enforced_with_throttle_times() {
    let (config, dir) = common::single_node("client-quota-rates");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    common::create_topic(&mut c, "limited", 1, &[]);
    // No quota: no throttle.
    assert_eq!(produce(&mut c, "limited", 110_000).throttle_time_ms, 0);
    let set = alter(
        &mut c,
        vec![entry(
            &[("client-id", Some(CLIENT))],
            &[("producer_byte_rate", Some(10_000.0)), ("consumer_byte_rate", Some(10_000.0))],
        )],
        false,
    );
    assert_eq!(set, vec![(0, String::new())]);
    // 110 kB in the 10 s minimum window is 11 kB/s against 10 kB/s: about 1 s of throttle.
    let throttled = produce(&mut c, "limited", 110_000).throttle_time_ms;
    assert!((700..=1_300).contains(&throttled), "produce throttle {throttled} ms");
    // The connection is not read while throttled (KIP-219): its next answer comes late.
    let waited = timed_metadata(&mut c);
    assert!(waited >= Duration::from_millis(throttled as u64 * 8 / 10), "answered after {waited:?}");
    // The records were kept: a throttle slows the client down, it refuses nothing.
    let mut consumer = Client::connect(running.addr);
    let first = fetch(&mut consumer, "limited");
    assert!(record_bytes(&first) > 220_000, "both batches are read");
    assert!(first.throttle_time_ms >= 10_000, "220 kB at 10 kB/s: throttled {} ms", first.throttle_time_ms);
    // Still over: a new connection (not muted) gets an empty answer and the throttle at once.
    let mut again = Client::connect(running.addr);
    let started = Instant::now();
    let second = fetch(&mut again, "limited");
    assert_eq!(record_bytes(&second), 0, "a throttled fetch carries no records");
    assert!(second.throttle_time_ms > 0);
    assert!(started.elapsed() < Duration::from_secs(5), "answered at once, not after max_wait");
    // Removing the quota lifts it.
    let mut admin = Client::connect(running.addr);
    let removed = alter(
        &mut admin,
        vec![entry(
            &[("client-id", Some(CLIENT))],
            &[("producer_byte_rate", None), ("consumer_byte_rate", None)],
        )],
        false,
    );
    assert_eq!(removed, vec![(0, String::new())]);
    let mut fresh = Client::connect(running.addr);
    assert_eq!(produce(&mut fresh, "limited", 110_000).throttle_time_ms, 0);
    assert!(record_bytes(&fetch(&mut fresh, "limited")) > 0);
    running.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}
