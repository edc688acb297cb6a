//! The newest versions Kafka 4.1 serves: Produce v13 names topics by id (KIP-516), Metadata
//! v13 has a top-level error code, ListOffsets v10 a timeout, ListTransactions v2 a
//! transactional-id pattern (KIP-1152), Fetch v18 a follower's high watermark.

mod common;

use common::Client;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

#[test]
fn produce_v13_by_topic_id_and_the_other_newest_versions() {
    let (config, dir) = common::single_node("newest-versions");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    let id = common::create_topic(&mut c, "by-id", 1, &[]);

    // Produce v13: the topic by id, answered by id.
    let mut request = common::produce_request(None, "", 0, common::plain_batch(b"v"));
    request.topic_data[0].topic_id = id;
    let answer = match c.call_once(ApiKey::Produce, 13, RequestKind::Produce(request.clone())) {
        ResponseKind::Produce(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(answer.responses[0].topic_id, id);
    assert_eq!(answer.responses[0].partition_responses[0].error_code, 0, "{answer:?}");
    assert_eq!(answer.responses[0].partition_responses[0].base_offset, 0);
    // An unknown id: UNKNOWN_TOPIC_ID, as Kafka answers.
    let mut unknown = request;
    unknown.topic_data[0].topic_id = uuid::Uuid::from_u128(0x1234);
    match c.call_once(ApiKey::Produce, 13, RequestKind::Produce(unknown)) {
        ResponseKind::Produce(r) => assert_eq!(r.responses[0].partition_responses[0].error_code, 100),
        other => panic!("{other:?}"),
    }

    // Metadata v13 names the topic with its id and no top-level error.
    let metadata = MetadataRequest::default().with_topics(None);
    match c.call_once(ApiKey::Metadata, 13, RequestKind::Metadata(metadata)) {
        ResponseKind::Metadata(r) => {
            assert_eq!(r.error_code, 0);
            assert!(r.topics.iter().any(|t| t.topic_id == id));
        }
        other => panic!("{other:?}"),
    }

    // ListOffsets v10: the end offset after the one record.
    let list = ListOffsetsRequest::default().with_timeout_ms(5_000).with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default().with_name(TopicName(s("by-id"))).with_partitions(
            vec![list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)],
        ),
    ]);
    match c.call_once(ApiKey::ListOffsets, 10, RequestKind::ListOffsets(list)) {
        ResponseKind::ListOffsets(r) => assert_eq!(r.topics[0].partitions[0].offset, 1, "{r:?}"),
        other => panic!("{other:?}"),
    }

    // ListTransactions v2: the pattern matches whole ids; a bad one is refused.
    for tid in ["orders-1", "orders-2", "payments-1"] {
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(tid))))
            .with_transaction_timeout_ms(60_000);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // FindCoordinator creates the transaction log on first use; then it loads.
        let find = FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![s(tid)]);
        loop {
            match c.call_once(ApiKey::FindCoordinator, 4, RequestKind::FindCoordinator(find.clone())) {
                ResponseKind::FindCoordinator(r) if r.coordinators[0].error_code == 0 => break,
                ResponseKind::FindCoordinator(r) if std::time::Instant::now() < deadline => {
                    assert!([14, 15].contains(&r.coordinators[0].error_code), "{r:?}");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => panic!("{other:?}"),
            }
        }
        loop {
            match c.call_once(ApiKey::InitProducerId, 5, RequestKind::InitProducerId(init.clone())) {
                ResponseKind::InitProducerId(r) if r.error_code == 0 => break,
                // The transaction coordinator's partition is still being created or loaded.
                ResponseKind::InitProducerId(r) if std::time::Instant::now() < deadline => {
                    assert!([14, 15, 16].contains(&r.error_code), "{r:?}");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => panic!("{other:?}"),
            }
        }
    }
    let listed = |c: &mut Client, pattern: &str| match c.call_once(
        ApiKey::ListTransactions,
        2,
        RequestKind::ListTransactions(
            ListTransactionsRequest::default().with_transactional_id_pattern(Some(s(pattern))),
        ),
    ) {
        ResponseKind::ListTransactions(r) => {
            let mut ids: Vec<String> =
                r.transaction_states.iter().map(|t| t.transactional_id.to_string()).collect();
            ids.sort();
            (r.error_code, ids)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(listed(&mut c, "orders-.*"), (0, vec!["orders-1".to_string(), "orders-2".to_string()]));
    assert_eq!(listed(&mut c, "orders"), (0, vec![]), "the whole id must match");
    assert_eq!(listed(&mut c, "").1.len(), 3, "an empty pattern lists all");
    assert_eq!(listed(&mut c, "orders-(").0, 128, "INVALID_REGULAR_EXPRESSION");
    running.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}
