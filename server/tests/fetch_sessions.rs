//! Newer clients' protocol (issue 19 item 4), on the wire against a single-node broker:
//! Fetch v13+ with topic ids (KIP-516) and fetch sessions (KIP-227: a full request opens one,
//! incremental requests answer only what changed, forgotten partitions leave it, a wrong epoch
//! or id is refused, a follower's session evicts a consumer's when the cache is full, epoch -1
//! closes one, and before v13 sessions name topics);
//! DeleteRecords (the log start moves, reads below it are out of range, and it survives a
//! restart); DescribeTopicPartitions pages through partitions with a cursor.

mod common;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic, ReplicaState};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use riptide_format::build::{self, BatchFields};
use uuid::Uuid;

use common::{create_topic, Client};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const POLICY_VIOLATION: i16 = 44;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const UNKNOWN_TOPIC_ID: i16 = 100;
const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.into()))
}

/// One batch of `n` records.
fn batch(n: i32) -> Bytes {
    let mut b = BytesMut::new();
    build::put_header_room(&mut b);
    build::put_keyless_records(&mut b, (0..n).map(|_| &b"value"[..]));
    build::write_header(&mut b, &BatchFields::plain(n, 1_000, 1_000, 0));
    b.freeze()
}

fn produce(c: &mut Client, topic: &str, partition: i32, n: i32) {
    let request = common::produce_request(None, topic, partition, batch(n));
    match c.call_once(ApiKey::Produce, 9, RequestKind::Produce(request)) {
        ResponseKind::Produce(r) => assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "{r:?}"),
        other => panic!("{other:?}"),
    }
}

fn part(partition: i32, offset: i64) -> FetchPartition {
    FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20)
}

/// A consumer's fetch of `parts` of the topic `id` (v13+), answering at once.
fn fetch_by_id(id: Uuid, session: (i32, i32), parts: Vec<FetchPartition>, forget: &[i32]) -> FetchRequest {
    let topics = if parts.is_empty() {
        Vec::new()
    } else {
        vec![FetchTopic::default().with_topic_id(id).with_partitions(parts)]
    };
    let forgotten = if forget.is_empty() {
        Vec::new()
    } else {
        vec![ForgottenTopic::default().with_topic_id(id).with_partitions(forget.to_vec())]
    };
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_id(session.0)
        .with_session_epoch(session.1)
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten)
}

fn fetch(c: &mut Client, version: i16, request: FetchRequest) -> FetchResponse {
    match c.call_once(ApiKey::Fetch, version, RequestKind::Fetch(request)) {
        ResponseKind::Fetch(r) => r,
        other => panic!("{other:?}"),
    }
}

/// (partition, error, records bytes) of every partition answered, in order.
fn answered(r: &FetchResponse) -> Vec<(i32, i16, usize)> {
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.error_code, p.records.as_ref().map_or(0, |b| b.len())))
        .collect()
}

#[test]
fn fetch_sessions_by_topic_id() {
    let (mut config, dir) = common::single_node("fetch-sessions");
    config.fetch_session_slots_max = 2;
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    let topic = "sessions";
    let id = create_topic(&mut c, topic, 3, &[]);
    produce(&mut c, topic, 0, 3);
    produce(&mut c, topic, 1, 2);

    // An unknown id, sessionless: UNKNOWN_TOPIC_ID for its partition, the id echoed.
    let stranger = Uuid::from_u128(0x1234_5678);
    let r = fetch(&mut c, 17, fetch_by_id(stranger, (0, -1), vec![part(0, 0)], &[]));
    assert_eq!((r.error_code, r.session_id), (0, 0));
    assert_eq!(r.responses[0].topic_id, stranger);
    assert_eq!(answered(&r), vec![(0, UNKNOWN_TOPIC_ID, 0)]);

    // A full request opens a session: every partition answered, by id.
    let parts = vec![part(0, 0), part(1, 0), part(2, 0)];
    for v in [13, 15, 16] {
        // Each version opens (and the next request replaces) a session, as the same client would.
        let r = fetch(&mut c, v, fetch_by_id(id, (0, -1), parts.clone(), &[]));
        assert_eq!(r.session_id, 0, "v{v}: epoch -1 asks for no session");
        assert_eq!(r.responses[0].topic_id, id);
        let got = answered(&r);
        assert_eq!(got.len(), 3, "v{v}");
        assert!(got[0].2 > 0 && got[1].2 > 0 && got[2].2 == 0, "v{v}: {got:?}");
    }
    let r = fetch(&mut c, 17, fetch_by_id(id, (0, 0), parts.clone(), &[]));
    let session = r.session_id;
    assert_ne!(session, 0, "a full request (epoch 0) opens a session");
    assert_eq!(r.responses[0].partitions[0].high_watermark, 3);

    // Incremental, the consumer moved to the ends of 0 and 1: nothing new, an empty answer.
    let moved = vec![part(0, 3), part(1, 2)];
    let r = fetch(&mut c, 17, fetch_by_id(id, (session, 1), moved, &[]));
    assert_eq!((r.error_code, r.session_id), (0, session));
    assert!(r.responses.is_empty(), "no news: {:?}", answered(&r));

    // New records on partition 2 only: the answer holds partition 2 alone.
    produce(&mut c, topic, 2, 4);
    let r = fetch(&mut c, 17, fetch_by_id(id, (session, 2), Vec::new(), &[]));
    let got = answered(&r);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].0, got[0].1), (2, 0));
    assert!(got[0].2 > 0);

    // A wrong epoch, a version naming topics by name, an unknown session.
    let r = fetch(&mut c, 17, fetch_by_id(id, (session, 2), Vec::new(), &[]));
    assert_eq!((r.error_code, r.session_id), (INVALID_FETCH_SESSION_EPOCH, 0));
    let by_name = FetchRequest::default().with_max_wait_ms(0).with_session_id(session).with_session_epoch(3);
    let r = fetch(&mut c, 12, by_name);
    assert_eq!(r.error_code, FETCH_SESSION_TOPIC_ID_ERROR);
    let r = fetch(&mut c, 17, fetch_by_id(id, (session ^ 0x55, 3), Vec::new(), &[]));
    assert_eq!(r.error_code, FETCH_SESSION_ID_NOT_FOUND);

    // Forget partition 2 (after reading it up to its end) and write to it again: the session
    // no longer answers for it, while partition 0's news still comes.
    let r = fetch(&mut c, 17, fetch_by_id(id, (session, 3), vec![part(2, 4)], &[]));
    assert!(r.responses.is_empty(), "{:?}", answered(&r));
    let r = fetch(&mut c, 17, fetch_by_id(id, (session, 4), Vec::new(), &[2]));
    assert!(r.responses.is_empty(), "{:?}", answered(&r));
    produce(&mut c, topic, 2, 1);
    produce(&mut c, topic, 0, 1);
    let r = fetch(&mut c, 17, fetch_by_id(id, (session, 5), Vec::new(), &[]));
    assert_eq!(answered(&r).iter().map(|p| p.0).collect::<Vec<_>>(), vec![0]);

    // Eviction (2 slots): a second consumer session fits, a third does not (both are young),
    // a follower's (privileged) session evicts the smallest consumer session.
    let small = fetch(&mut c, 17, fetch_by_id(id, (0, 0), vec![part(0, 0)], &[])).session_id;
    assert_ne!(small, 0);
    let third = fetch(&mut c, 17, fetch_by_id(id, (0, 0), parts.clone(), &[])).session_id;
    assert_eq!(third, 0, "cache full, nothing evictable");
    let follower = fetch_by_id(id, (0, 0), vec![part(0, 0)], &[])
        .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(7)).with_replica_epoch(1));
    let follower_session = fetch(&mut c, 17, follower).session_id;
    assert_ne!(follower_session, 0, "a follower's session evicts a consumer's");
    let r = fetch(&mut c, 17, fetch_by_id(id, (small, 1), Vec::new(), &[]));
    assert_eq!(r.error_code, FETCH_SESSION_ID_NOT_FOUND, "the smaller consumer session was evicted");
    let r = fetch(&mut c, 17, fetch_by_id(id, (session, 6), Vec::new(), &[]));
    assert_eq!((r.error_code, r.session_id), (0, session), "the bigger one stays");

    // Epoch -1 (FINAL) closes a session: the follower's slot is free again.
    let r = fetch(&mut c, 17, fetch_by_id(id, (follower_session, -1), vec![part(0, 0)], &[]));
    assert_eq!((r.error_code, r.session_id), (0, 0));
    let r = fetch(&mut c, 17, fetch_by_id(id, (follower_session, 1), Vec::new(), &[]));
    assert_eq!(r.error_code, FETCH_SESSION_ID_NOT_FOUND);

    // Before v13 a session names topics: the same flow by name, and v13+ refused on it.
    let by_name = |session: (i32, i32), parts: Vec<FetchPartition>| {
        let topics = vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(parts)];
        fetch_by_id(id, session, Vec::new(), &[]).with_topics(topics)
    };
    let r = fetch(&mut c, 12, by_name((0, 0), vec![part(0, 0), part(1, 0)]));
    let named = r.session_id;
    assert_ne!(named, 0, "the closed session's slot: {:?}", answered(&r));
    assert_eq!(r.responses[0].topic.0.as_str(), topic);
    let r = fetch(&mut c, 12, by_name((named, 1), vec![part(0, 4), part(1, 2)]));
    assert!(r.responses.is_empty(), "{:?}", answered(&r));
    let r = fetch(&mut c, 13, fetch_by_id(id, (named, 2), Vec::new(), &[]));
    assert_eq!(r.error_code, FETCH_SESSION_TOPIC_ID_ERROR);

    running.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

fn delete_records(c: &mut Client, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
    let request = DeleteRecordsRequest::default().with_timeout_ms(5_000).with_topics(vec![
        delete_records_request::DeleteRecordsTopic::default().with_name(topic_name(topic)).with_partitions(
            vec![delete_records_request::DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)],
        ),
    ]);
    match c.call_once(ApiKey::DeleteRecords, 2, RequestKind::DeleteRecords(request)) {
        ResponseKind::DeleteRecords(r) => {
            let p = &r.topics[0].partitions[0];
            (p.error_code, p.low_watermark)
        }
        other => panic!("{other:?}"),
    }
}

fn earliest(c: &mut Client, topic: &str) -> i64 {
    let request =
        ListOffsetsRequest::default().with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-2)])]);
    match c.call_once(ApiKey::ListOffsets, 9, RequestKind::ListOffsets(request)) {
        ResponseKind::ListOffsets(r) => {
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "{p:?}");
            p.offset
        }
        other => panic!("{other:?}"),
    }
}

/// (error, log start) of a sessionless v12 fetch of partition 0 at `offset`.
fn fetch_at(c: &mut Client, topic: &str, offset: i64) -> (i16, i64) {
    let request = FetchRequest::default().with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![
        FetchTopic::default().with_topic(topic_name(topic)).with_partitions(vec![part(0, offset)]),
    ]);
    let r = fetch(c, 12, request);
    let p = &r.responses[0].partitions[0];
    (p.error_code, p.log_start_offset)
}

#[test]
fn delete_records_moves_the_log_start_durably() {
    let (config, dir) = common::single_node("delete-records");
    let running = riptide_server::server::start(config.clone()).expect("start");
    let mut c = Client::connect(running.addr);
    let topic = "trimmed";
    create_topic(&mut c, topic, 1, &[]);
    create_topic(&mut c, "compacted", 1, &[("cleanup.policy", "compact")]);
    for _ in 0..5 {
        produce(&mut c, topic, 0, 2);
    }
    // Inside the third batch (offsets 4..=5): the log start may fall inside a batch.
    assert_eq!(delete_records(&mut c, topic, 0, 5), (0, 5));
    assert_eq!(earliest(&mut c, topic), 5);
    assert_eq!(fetch_at(&mut c, topic, 3).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(fetch_at(&mut c, topic, 5), (0, 5));
    // Never back, never past the high watermark (10), nowhere unknown or compacted.
    assert_eq!(delete_records(&mut c, topic, 0, 2), (0, 5));
    assert_eq!(delete_records(&mut c, topic, 0, 11), (OFFSET_OUT_OF_RANGE, -1));
    assert_eq!(delete_records(&mut c, topic, 0, -7), (OFFSET_OUT_OF_RANGE, -1));
    assert_eq!(delete_records(&mut c, topic, 3, 1), (UNKNOWN_TOPIC_OR_PARTITION, -1));
    assert_eq!(delete_records(&mut c, "nope", 0, 1), (UNKNOWN_TOPIC_OR_PARTITION, -1));
    assert_eq!(delete_records(&mut c, "compacted", 0, 0), (POLICY_VIOLATION, -1));
    produce(&mut c, topic, 0, 2);
    assert_eq!(delete_records(&mut c, topic, 0, 8), (0, 8));
    running.crash();

    let running = riptide_server::server::start(config).expect("restart");
    let mut c = Client::connect(running.addr);
    assert_eq!(earliest(&mut c, topic), 8, "the log start survives a restart");
    assert_eq!(fetch_at(&mut c, topic, 7).0, OFFSET_OUT_OF_RANGE);
    // -1: up to the high watermark.
    assert_eq!(delete_records(&mut c, topic, 0, -1), (0, 12));
    assert_eq!(earliest(&mut c, topic), 12);
    running.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

fn describe(
    c: &mut Client,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsResponse {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| describe_topic_partitions_request::TopicRequest::default().with_name(topic_name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            describe_topic_partitions_request::Cursor::default()
                .with_topic_name(topic_name(t))
                .with_partition_index(p)
        }));
    match c.call_once(ApiKey::DescribeTopicPartitions, 0, RequestKind::DescribeTopicPartitions(request)) {
        ResponseKind::DescribeTopicPartitions(r) => r,
        other => panic!("{other:?}"),
    }
}

/// (topic, error, partition indexes) of each topic answered, and the next cursor.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn page(r: &DescribeTopicPartitionsResponse) -> Page {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map_or(String::new(), |n| n.0.to_string());
            (name, t.error_code, t.partitions.iter().map(|p| p.partition_index).collect())
        })
        .collect();
    (topics, r.next_cursor.as_ref().map(|c| (c.topic_name.0.to_string(), c.partition_index)))
}

#[test]
fn describe_topic_partitions_pages_by_cursor() {
    let (config, dir) = common::single_node("describe-topic-partitions");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    let a = create_topic(&mut c, "dtp-a", 3, &[]);
    create_topic(&mut c, "dtp-b", 2, &[]);
    let names = ["dtp-b", "missing", "dtp-a"];
    let s = |x: &str| x.to_string();

    let r = describe(&mut c, &names, 2, None);
    assert_eq!(page(&r), (vec![(s("dtp-a"), 0, vec![0, 1])], Some((s("dtp-a"), 2))));
    assert_eq!(r.topics[0].topic_id, a);
    let p0 = &r.topics[0].partitions[0];
    let node = running.broker.config.node_id;
    assert_eq!((p0.leader_id.0, p0.replica_nodes.len(), p0.isr_nodes.len()), (node, 1, 1));
    let r = describe(&mut c, &names, 2, Some(("dtp-a", 2)));
    assert_eq!(page(&r), (vec![(s("dtp-a"), 0, vec![2]), (s("dtp-b"), 0, vec![0])], Some((s("dtp-b"), 1))));
    let r = describe(&mut c, &names, 2, Some(("dtp-b", 1)));
    let want = vec![(s("dtp-b"), 0, vec![1]), (s("missing"), UNKNOWN_TOPIC_OR_PARTITION, vec![])];
    assert_eq!(page(&r), (want, None));

    // A negative cursor partition refuses the request: INVALID_REQUEST for every topic named.
    let r = describe(&mut c, &["dtp-a"], 10, Some(("dtp-a", -1)));
    assert_eq!(page(&r), (vec![(s("dtp-a"), INVALID_REQUEST, vec![])], None));
    // All topics (an empty list), one page: both topics whole.
    let r = describe(&mut c, &[], 100, None);
    let (topics, cursor) = page(&r);
    assert!(
        topics.contains(&(s("dtp-a"), 0, vec![0, 1, 2])) && topics.contains(&(s("dtp-b"), 0, vec![0, 1]))
    );
    assert_eq!(cursor, None);
    running.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}
