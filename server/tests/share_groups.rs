//! Share groups on the wire (KIP-932): the GROUP config resource for their settings,
//! ShareGroupHeartbeat and ShareGroupDescribe, share sessions and their error codes, the
//! acquisition and acknowledgement rules, group listing and deletion. The real share consumer
//! is exercised in tests/compat/test_share_groups.py.

mod common;

use common::{create_topic, plain_batch, produce_request, Client};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const GROUP_RESOURCE: i8 = 32;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn set_group_config(c: &mut Client, group: &str, key: &str, value: &str) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(GROUP_RESOURCE)
            .with_resource_name(s(group))
            .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(0)
                .with_value(Some(s(value)))]),
    ]);
    match c.call_once(ApiKey::IncrementalAlterConfigs, 1, RequestKind::IncrementalAlterConfigs(request)) {
        ResponseKind::IncrementalAlterConfigs(r) => r.responses[0].error_code,
        other => panic!("{other:?}"),
    }
}

fn heartbeat(
    c: &mut Client,
    group: &str,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
) -> ShareGroupHeartbeatResponse {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_subscribed_topic_names(topics.map(|ts| ts.iter().map(|t| TopicName(s(t))).collect()));
    match c.call_once(ApiKey::ShareGroupHeartbeat, 1, RequestKind::ShareGroupHeartbeat(request)) {
        ResponseKind::ShareGroupHeartbeat(r) => r,
        other => panic!("{other:?}"),
    }
}

type Acks = Vec<(i64, i64, Vec<i8>)>;

/// A ShareFetch of partition 0 of `topic` (waiting up to 200 ms), acknowledging `acks`.
fn share_fetch_request(
    group: &str,
    member: &str,
    epoch: i32,
    topic: uuid::Uuid,
    acks: Acks,
    max_records: i32,
) -> ShareFetchRequest {
    let batches = acks
        .into_iter()
        .map(|(first, last, types)| {
            share_fetch_request::AcknowledgementBatch::default()
                .with_first_offset(first)
                .with_last_offset(last)
                .with_acknowledge_types(types)
        })
        .collect();
    ShareFetchRequest::default()
        .with_group_id(Some(GroupId(s(group))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(200)
        .with_max_bytes(1 << 20)
        .with_max_records(max_records)
        .with_batch_size(max_records)
        .with_topics(vec![share_fetch_request::FetchTopic::default().with_topic_id(topic).with_partitions(
            vec![share_fetch_request::FetchPartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(batches)],
        )])
}

fn share_fetch(
    c: &mut Client,
    group: &str,
    member: &str,
    epoch: i32,
    topic: uuid::Uuid,
    acks: Acks,
    max_records: i32,
) -> ShareFetchResponse {
    let request = share_fetch_request(group, member, epoch, topic, acks, max_records);
    match c.call_once(ApiKey::ShareFetch, 1, RequestKind::ShareFetch(request)) {
        ResponseKind::ShareFetch(r) => r,
        other => panic!("{other:?}"),
    }
}

/// The acquired ranges of partition 0, as (first, last, delivery count).
fn acquired(r: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .flat_map(|p| p.acquired_records.iter().map(|a| (a.first_offset, a.last_offset, a.delivery_count)))
        .collect()
}

fn ack_code(r: &ShareFetchResponse) -> i16 {
    r.responses.iter().flat_map(|t| t.partitions.iter()).map(|p| p.acknowledge_error_code).next().unwrap_or(0)
}

/// DescribeShareGroupOffsets for every topic of `group`: (topic, partition, start offset).
fn share_offsets(c: &mut Client, group: &str) -> Vec<(String, i32, i64)> {
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(None),
    ]);
    match c.call_once(ApiKey::DescribeShareGroupOffsets, 0, RequestKind::DescribeShareGroupOffsets(request)) {
        ResponseKind::DescribeShareGroupOffsets(r) => {
            assert_eq!(r.groups[0].error_code, 0);
            r.groups[0]
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (t.topic_name.0.to_string(), p.partition_index, p.start_offset))
                })
                .collect()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn share_groups_on_the_wire() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let (config, dir) = common::single_node("share-groups");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    let topic = create_topic(&mut c, "q", 1, &[]);
    for i in 0..10 {
        let produce = produce_request(None, "q", 0, plain_batch(format!("r{i}").as_bytes()));
        c.call_once(ApiKey::Produce, 9, RequestKind::Produce(produce));
    }

    // Group configs: Kafka's names and checks.
    assert_eq!(set_group_config(&mut c, "g", "share.auto.offset.reset", "earliest"), 0);
    assert_eq!(set_group_config(&mut c, "g", "share.auto.offset.reset", "sometimes"), 40);
    assert_eq!(set_group_config(&mut c, "g", "share.delivery.count.limit", "1"), 40);
    assert_eq!(set_group_config(&mut c, "g", "share.delivery.count.limit", "2"), 0);
    assert_eq!(set_group_config(&mut c, "g", "no.such.config", "1"), 40);
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(GROUP_RESOURCE)
            .with_resource_name(s("g")),
    ]);
    match c.call_once(ApiKey::DescribeConfigs, 4, RequestKind::DescribeConfigs(describe)) {
        ResponseKind::DescribeConfigs(r) => {
            let reset = r.results[0].configs.iter().find(|e| e.name.as_str() == "share.auto.offset.reset");
            let reset = reset.expect("described");
            assert_eq!((reset.value.as_deref(), reset.config_source), (Some("earliest"), 8));
        }
        other => panic!("{other:?}"),
    }

    // Clients find the coordinator first (which creates __consumer_offsets and loads it).
    wait_coordinator(&mut c, "g");

    // Membership: joining needs a subscription; a wrong epoch is fenced; the assignment names
    // the topic by id.
    let bad = heartbeat(&mut c, "g", "m1", 0, None);
    assert_eq!(bad.error_code, ResponseError::InvalidRequest.code());
    let m1 = heartbeat(&mut c, "g", "m1", 0, Some(&["q"]));
    assert_eq!((m1.error_code, m1.member_epoch), (0, 1));
    let assigned = m1.assignment.expect("an assignment on joining");
    assert_eq!(
        (assigned.topic_partitions[0].topic_id, assigned.topic_partitions[0].partitions.clone()),
        (topic, vec![0])
    );
    let m2 = heartbeat(&mut c, "g", "m2", 0, Some(&["q"]));
    assert_eq!(m2.member_epoch, 2);
    assert_eq!(heartbeat(&mut c, "g", "m1", 7, None).error_code, ResponseError::FencedMemberEpoch.code());
    let moved = heartbeat(&mut c, "g", "m1", 1, None);
    assert_eq!(moved.member_epoch, 2, "m1 moves to the new epoch; both members share partition 0");
    assert_eq!(moved.assignment.expect("changed").topic_partitions[0].partitions, vec![0]);
    match c.call_once(
        ApiKey::ShareGroupDescribe,
        1,
        RequestKind::ShareGroupDescribe(
            ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g")), GroupId(s("nope"))]),
        ),
    ) {
        ResponseKind::ShareGroupDescribe(r) => {
            assert_eq!((r.groups[0].group_state.as_str(), r.groups[0].members.len()), ("Stable", 2));
            assert_eq!(r.groups[0].assignor_name.as_str(), "simple");
            assert_eq!(r.groups[1].error_code, ResponseError::GroupIdNotFound.code());
        }
        other => panic!("{other:?}"),
    }
    // The same id can't be a classic or consumer group too.
    let cg = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(1000)
        .with_subscribed_topic_names(Some(vec![TopicName(s("q"))]))
        .with_topic_partitions(Some(vec![]));
    match c.call_once(ApiKey::ConsumerGroupHeartbeat, 0, RequestKind::ConsumerGroupHeartbeat(cg)) {
        ResponseKind::ConsumerGroupHeartbeat(r) => {
            assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code())
        }
        other => panic!("{other:?}"),
    }

    // Share sessions: an unknown session, then opening one (no acknowledgements allowed).
    let r = share_fetch(&mut c, "g", "m1", 3, topic, vec![], 4);
    assert_eq!(r.error_code, ResponseError::ShareSessionNotFound.code());
    let r = share_fetch(&mut c, "g", "m1", 0, topic, vec![(0, 0, vec![1])], 4);
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    let r = share_fetch(&mut c, "g", "m1", 0, topic, vec![], 4);
    assert_eq!(r.error_code, 0);
    assert_eq!(acquired(&r), vec![(0, 3, 1)], "max_records 4 from the earliest offset");
    assert!(r.acquisition_lock_timeout_ms > 0);
    assert!(r.responses[0].partitions[0].records.as_ref().is_some_and(|b| !b.is_empty()));
    let r = share_fetch(&mut c, "g", "m1", 5, topic, vec![], 4);
    assert_eq!(r.error_code, ResponseError::InvalidShareSessionEpoch.code());

    // m2 gets the next records, not m1's.
    let r2 = share_fetch(&mut c, "g", "m2", 0, topic, vec![], 3);
    assert_eq!(acquired(&r2), vec![(4, 6, 1)]);
    // Acknowledging records one does not hold: INVALID_RECORD_STATE, nothing changes.
    let r = share_fetch(&mut c, "g", "m1", 1, topic, vec![(4, 4, vec![1])], 0);
    assert_eq!(ack_code(&r), ResponseError::InvalidRecordState.code());
    // m1 accepts 0-1, releases 2, rejects 3: 2 comes back at once with delivery count 2.
    let r = share_fetch(&mut c, "g", "m1", 2, topic, vec![(0, 3, vec![1, 1, 2, 3])], 1);
    assert_eq!(ack_code(&r), 0);
    assert_eq!(acquired(&r), vec![(2, 2, 2)]);
    // Released at the group's limit of 2 deliveries: archived, never delivered again.
    let r = share_fetch(&mut c, "g", "m1", 3, topic, vec![(2, 2, vec![2])], 10);
    assert_eq!(ack_code(&r), 0);
    assert_eq!(acquired(&r), vec![(7, 9, 1)], "only the records nobody holds");
    // A bad acknowledge type is INVALID_REQUEST.
    let r = share_fetch(&mut c, "g", "m1", 4, topic, vec![(7, 7, vec![9])], 0);
    assert_eq!(ack_code(&r), ResponseError::InvalidRequest.code());

    // ShareAcknowledge closing m2's session: its acknowledgement, then its session is gone.
    let ack = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(s("g"))))
        .with_member_id(Some(s("m2")))
        .with_share_session_epoch(-1)
        .with_topics(vec![share_acknowledge_request::AcknowledgeTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![share_acknowledge_request::AcknowledgePartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(vec![
                    share_acknowledge_request::AcknowledgementBatch::default()
                        .with_first_offset(4)
                        .with_last_offset(6)
                        .with_acknowledge_types(vec![1]),
                ])])]);
    match c.call_once(ApiKey::ShareAcknowledge, 1, RequestKind::ShareAcknowledge(ack.clone())) {
        ResponseKind::ShareAcknowledge(r) => {
            assert_eq!(r.error_code, 0);
            assert_eq!(r.responses[0].partitions[0].error_code, 0);
        }
        other => panic!("{other:?}"),
    }
    match c.call_once(ApiKey::ShareAcknowledge, 1, RequestKind::ShareAcknowledge(ack)) {
        ResponseKind::ShareAcknowledge(r) => {
            assert_eq!(r.error_code, ResponseError::ShareSessionNotFound.code())
        }
        other => panic!("{other:?}"),
    }

    // Listing: a share group with its type; it can't be deleted while it has members.
    match c.call_once(ApiKey::ListGroups, 5, RequestKind::ListGroups(ListGroupsRequest::default())) {
        ResponseKind::ListGroups(r) => {
            let g = r.groups.iter().find(|g| g.group_id.as_str() == "g").expect("listed");
            assert_eq!((g.group_type.as_str(), g.group_state.as_str()), ("share", "Stable"));
        }
        other => panic!("{other:?}"),
    }
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]);
    match c.call_once(ApiKey::DeleteGroups, 2, RequestKind::DeleteGroups(delete.clone())) {
        ResponseKind::DeleteGroups(r) => {
            assert_eq!(r.results[0].error_code, ResponseError::NonEmptyGroup.code())
        }
        other => panic!("{other:?}"),
    }
    for m in ["m1", "m2"] {
        assert_eq!(heartbeat(&mut c, "g", m, -1, None).member_epoch, -1);
    }

    // The share-group offsets: the share-partition start offset (7: m1 still holds 7-9 until
    // its locks expire), reset while the group is empty, then deleted.
    assert_eq!(share_offsets(&mut c, "g"), vec![("q".to_string(), 0, 7)]);
    let alter = AlterShareGroupOffsetsRequest::default().with_group_id(GroupId(s("g"))).with_topics(vec![
        alter_share_group_offsets_request::AlterShareGroupOffsetsRequestTopic::default()
            .with_topic_name(TopicName(s("q")))
            .with_partitions(vec![
                alter_share_group_offsets_request::AlterShareGroupOffsetsRequestPartition::default()
                    .with_partition_index(0)
                    .with_start_offset(2),
            ]),
    ]);
    match c.call_once(ApiKey::AlterShareGroupOffsets, 0, RequestKind::AlterShareGroupOffsets(alter)) {
        ResponseKind::AlterShareGroupOffsets(r) => {
            assert_eq!((r.error_code, r.responses[0].partitions[0].error_code), (0, 0))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(share_offsets(&mut c, "g"), vec![("q".to_string(), 0, 2)]);
    let delete_offsets =
        DeleteShareGroupOffsetsRequest::default().with_group_id(GroupId(s("g"))).with_topics(vec![
            delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(s("q"))),
            delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(s("nope"))),
        ]);
    match c.call_once(
        ApiKey::DeleteShareGroupOffsets,
        0,
        RequestKind::DeleteShareGroupOffsets(delete_offsets),
    ) {
        ResponseKind::DeleteShareGroupOffsets(r) => {
            let codes: Vec<i16> = r.responses.iter().map(|t| t.error_code).collect();
            assert_eq!(codes, vec![0, ResponseError::UnknownTopicOrPartition.code()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(share_offsets(&mut c, "g"), vec![]);
    match c.call_once(ApiKey::DeleteGroups, 2, RequestKind::DeleteGroups(delete)) {
        ResponseKind::DeleteGroups(r) => assert_eq!(r.results[0].error_code, 0),
        other => panic!("{other:?}"),
    }
    match c.call_once(ApiKey::ListGroups, 5, RequestKind::ListGroups(ListGroupsRequest::default())) {
        ResponseKind::ListGroups(r) => assert!(r.groups.iter().all(|g| g.group_id.as_str() != "g")),
        other => panic!("{other:?}"),
    }
    drop(running);
    let _ = std::fs::remove_dir_all(dir);
}

/// Topic `d` (one partition) with `records` single-record batches, share group `g` reading
/// from the earliest offset, and its member `m` joined. Returns the topic's id.
fn member_m_of_g_reading_d(c: &mut Client, records: usize) -> uuid::Uuid {
    let topic = create_topic(c, "d", 1, &[]);
    for i in 0..records {
        let produce = produce_request(None, "d", 0, plain_batch(format!("r{i}").as_bytes()));
        c.call_once(ApiKey::Produce, 9, RequestKind::Produce(produce));
    }
    assert_eq!(set_group_config(c, "g", "share.auto.offset.reset", "earliest"), 0);
    wait_coordinator(c, "g");
    assert_eq!(heartbeat(c, "g", "m", 0, Some(&["d"])).error_code, 0);
    topic
}

#[test]
fn a_share_partition_follows_the_log_start_past_it() {
    let (config, dir) = common::single_node("share-log-start");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    let topic = member_m_of_g_reading_d(&mut c, 5);
    let r = share_fetch(&mut c, "g", "m", 0, topic, vec![], 2);
    assert_eq!(acquired(&r), vec![(0, 1, 1)]);
    // DeleteRecords moves the log start to 4, past the share-partition's end (2).
    let delete = DeleteRecordsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        delete_records_request::DeleteRecordsTopic::default().with_name(TopicName(s("d"))).with_partitions(
            vec![delete_records_request::DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(4)],
        ),
    ]);
    match c.call_once(ApiKey::DeleteRecords, 2, RequestKind::DeleteRecords(delete)) {
        ResponseKind::DeleteRecords(r) => assert_eq!(r.topics[0].partitions[0].error_code, 0),
        other => panic!("{other:?}"),
    }
    let mut got = Vec::new();
    for epoch in 1..20 {
        got = acquired(&share_fetch(&mut c, "g", "m", epoch, topic, vec![], 10));
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got, vec![(4, 4, 1)], "delivery resumes at the new log start");
    drop(running);
    let _ = std::fs::remove_dir_all(dir);
}

/// Waits until the broker coordinates `group` (FindCoordinator answers without an error).
fn wait_coordinator(c: &mut Client, group: &str) {
    for _ in 0..100 {
        let find = FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![s(group)]);
        if let ResponseKind::FindCoordinator(r) =
            c.call_once(ApiKey::FindCoordinator, 4, RequestKind::FindCoordinator(find))
        {
            if r.coordinators[0].error_code == 0 {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no coordinator for {group}");
}

/// ShareFetch v2 of partition 0 of `topic`: `mode` is ShareAcquireMode; `renew` sends
/// IsRenewAck with every limit 0 unless `limits` says otherwise.
#[allow(clippy::too_many_arguments)]
fn share_fetch_v2(
    c: &mut Client,
    member: &str,
    epoch: i32,
    topic: uuid::Uuid,
    acks: Acks,
    max_records: i32,
    mode: i8,
    renew: bool,
) -> ShareFetchResponse {
    let mut request = share_fetch_request("g2", member, epoch, topic, acks, max_records)
        .with_share_acquire_mode(mode)
        .with_is_renew_ack(renew);
    if renew {
        request = request.with_max_wait_ms(0).with_max_bytes(0);
    }
    match c.call_once(ApiKey::ShareFetch, 2, RequestKind::ShareFetch(request)) {
        ResponseKind::ShareFetch(r) => r,
        other => panic!("{other:?}"),
    }
}

/// ShareAcknowledge v2 of partition 0: (top-level code, partition code, lock timeout).
fn share_ack_v2(
    c: &mut Client,
    member: &str,
    epoch: i32,
    topic: uuid::Uuid,
    acks: Acks,
    renew: bool,
) -> (i16, i16, i32) {
    let batches = acks
        .into_iter()
        .map(|(first, last, types)| {
            share_acknowledge_request::AcknowledgementBatch::default()
                .with_first_offset(first)
                .with_last_offset(last)
                .with_acknowledge_types(types)
        })
        .collect();
    let request = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(s("g2"))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_is_renew_ack(renew)
        .with_topics(vec![share_acknowledge_request::AcknowledgeTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![share_acknowledge_request::AcknowledgePartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(batches)])]);
    match c.call_once(ApiKey::ShareAcknowledge, 2, RequestKind::ShareAcknowledge(request)) {
        ResponseKind::ShareAcknowledge(r) => {
            let part = r.responses.first().and_then(|t| t.partitions.first()).map_or(0, |p| p.error_code);
            (r.error_code, part, r.acquisition_lock_timeout_ms)
        }
        other => panic!("{other:?}"),
    }
}

/// Kafka 4.2's additions: ShareFetch's acquire modes (KIP-1206), RENEW acknowledgements on
/// ShareFetch and ShareAcknowledge v2 (KIP-1222), and DescribeShareGroupOffsets v1's lag
/// (KIP-1226).
#[test]
fn share_fetch_v2_acquire_modes_renew_and_lag() {
    let (config, dir) = common::single_node("share-v2");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    let topic = create_topic(&mut c, "v2", 1, &[]);
    for _ in 0..2 {
        let produce = produce_request(None, "v2", 0, common::plain_batch_of(5));
        match c.call_once(ApiKey::Produce, 9, RequestKind::Produce(produce)) {
            ResponseKind::Produce(r) => assert_eq!(r.responses[0].partition_responses[0].error_code, 0),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(set_group_config(&mut c, "g2", "share.auto.offset.reset", "earliest"), 0);
    assert_eq!(set_group_config(&mut c, "g2", "share.record.lock.duration.ms", "3000"), 0);
    wait_coordinator(&mut c, "g2");
    assert_eq!(heartbeat(&mut c, "g2", "m1", 0, Some(&["v2"])).error_code, 0);
    assert_eq!(heartbeat(&mut c, "g2", "m2", 0, Some(&["v2"])).error_code, 0);

    // Record-limit: exactly MaxRecords, though the batch (0..=4) goes on.
    let r = share_fetch_v2(&mut c, "m1", 0, topic, vec![], 2, 1, false);
    assert_eq!(acquired(&r), vec![(0, 1, 1)]);
    assert_eq!(r.acquisition_lock_timeout_ms, 3000, "the group's lock duration");
    // Batch-optimized (v2's default mode, and v1): the acquisition runs to the batch's end.
    let r = share_fetch_v2(&mut c, "m1", 1, topic, vec![], 1, 0, false);
    assert_eq!(acquired(&r), vec![(2, 4, 1)]);
    let invalid = ResponseError::InvalidRequest.code();
    assert_eq!(share_fetch_v2(&mut c, "m1", 2, topic, vec![], 1, 2, false).error_code, invalid, "mode 2");
    // A renewing fetch asks for nothing: limits other than 0 are refused.
    let request = ShareFetchRequest::default()
        .with_group_id(Some(GroupId(s("g2"))))
        .with_member_id(Some(s("m1")))
        .with_share_session_epoch(2)
        .with_max_records(5)
        .with_is_renew_ack(true);
    match c.call_once(ApiKey::ShareFetch, 2, RequestKind::ShareFetch(request)) {
        ResponseKind::ShareFetch(r) => assert_eq!(r.error_code, invalid),
        other => panic!("{other:?}"),
    }
    // RENEW without IsRenewAck (as v1 must send it) changes nothing and is refused.
    let r = share_fetch(&mut c, "g2", "m1", 2, topic, vec![(0, 1, vec![4])], 0);
    assert_eq!((r.error_code, ack_code(&r)), (0, invalid), "RENEW in v1");
    assert_eq!(share_ack_v2(&mut c, "m1", 3, topic, vec![(0, 1, vec![4])], false), (0, invalid, 3000));

    // At 2 s m1 renews 0..=1 (ShareFetch) and 2..=4 (ShareAcknowledge); at 3.5 s, past the
    // first locks and within the renewed ones, m2 gets none of them.
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let r = share_fetch_v2(&mut c, "m1", 4, topic, vec![(0, 1, vec![4])], 0, 0, true);
    assert_eq!((r.error_code, ack_code(&r)), (0, 0));
    assert!(acquired(&r).is_empty(), "a renewing fetch acquires nothing");
    assert_eq!(share_ack_v2(&mut c, "m1", 5, topic, vec![(2, 4, vec![4])], true), (0, 0, 3000));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let r = share_fetch_v2(&mut c, "m2", 0, topic, vec![], 100, 0, false);
    assert_eq!(acquired(&r), vec![(5, 9, 1)], "0..=4 are still m1's");
    // A renewed record is still acknowledged as usual.
    assert_eq!(share_ack_v2(&mut c, "m1", 6, topic, vec![(0, 4, vec![1])], false), (0, 0, 3000));

    // Lag (v1): 10 records, the first 5 done, 5..=9 acquired but not done.
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(s("g2")))
            .with_topics(None),
    ]);
    for (version, lag) in [(1, 5), (0, -1)] {
        let request = RequestKind::DescribeShareGroupOffsets(request.clone());
        match c.call_once(ApiKey::DescribeShareGroupOffsets, version, request) {
            ResponseKind::DescribeShareGroupOffsets(r) => {
                let p = &r.groups[0].topics[0].partitions[0];
                assert_eq!((p.start_offset, p.lag), (5, lag), "v{version}");
            }
            other => panic!("{other:?}"),
        }
    }
    drop(running);
    let _ = std::fs::remove_dir_all(dir);
}

/// Share groups listed by ListGroups, as (id, type).
fn listed_groups(c: &mut Client) -> Vec<(String, String)> {
    match c.call_once(ApiKey::ListGroups, 5, RequestKind::ListGroups(ListGroupsRequest::default())) {
        ResponseKind::ListGroups(r) => {
            r.groups.iter().map(|g| (g.group_id.0.to_string(), g.group_type.to_string())).collect()
        }
        other => panic!("{other:?}"),
    }
}

/// As in Kafka, a share group outlives its coordinator's restart with no members: its epoch
/// and the topic-partitions with share state are kept in `__consumer_offsets` (members are
/// not, and rejoin), until DeleteGroups.
#[test]
fn an_empty_share_group_survives_a_restart_until_deleted() {
    let (config, dir) = common::single_node("share-persist");
    let running = riptide_server::server::start(config.clone()).expect("start");
    let mut c = Client::connect(running.addr);
    let topic = create_topic(&mut c, "p", 1, &[]);
    let produce = produce_request(None, "p", 0, common::plain_batch_of(3));
    c.call_once(ApiKey::Produce, 9, RequestKind::Produce(produce));
    assert_eq!(set_group_config(&mut c, "g3", "share.auto.offset.reset", "earliest"), 0);
    wait_coordinator(&mut c, "g3");
    let joined = heartbeat(&mut c, "g3", "m1", 0, Some(&["p"]));
    assert_eq!(joined.error_code, 0);
    let epoch = heartbeat(&mut c, "g3", "m1", joined.member_epoch, None).member_epoch;
    let r = share_fetch(&mut c, "g3", "m1", 0, topic, vec![], 10);
    assert_eq!(acquired(&r), vec![(0, 2, 1)]);
    let r = share_fetch(&mut c, "g3", "m1", -1, topic, vec![(0, 2, vec![1])], 0);
    assert_eq!(ack_code(&r), 0);
    assert_eq!(heartbeat(&mut c, "g3", "m1", -1, None).error_code, 0);
    drop(c);
    drop(running);

    let running = riptide_server::server::start(config.clone()).expect("restart");
    let mut c = Client::connect(running.addr);
    wait_coordinator(&mut c, "g3");
    assert!(listed_groups(&mut c).contains(&("g3".to_string(), "share".to_string())));
    // No members, no subscriptions: the topic is listed from the persisted partitions.
    assert_eq!(share_offsets(&mut c, "g3"), vec![("p".to_string(), 0, 3)]);
    // The old member is gone; a new one joins past the old epoch.
    let stale = heartbeat(&mut c, "g3", "m1", epoch, None);
    assert_eq!(stale.error_code, ResponseError::UnknownMemberId.code());
    let again = heartbeat(&mut c, "g3", "m2", 0, Some(&["p"]));
    assert_eq!(again.error_code, 0);
    assert!(again.member_epoch > epoch, "{} after {epoch}", again.member_epoch);
    assert_eq!(heartbeat(&mut c, "g3", "m2", -1, None).error_code, 0);
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g3"))]);
    match c.call_once(ApiKey::DeleteGroups, 2, RequestKind::DeleteGroups(delete)) {
        ResponseKind::DeleteGroups(r) => assert_eq!(r.results[0].error_code, 0),
        other => panic!("{other:?}"),
    }
    drop(c);
    drop(running);

    let running = riptide_server::server::start(config).expect("restart");
    let mut c = Client::connect(running.addr);
    wait_coordinator(&mut c, "g3");
    assert!(!listed_groups(&mut c).iter().any(|(g, _)| g == "g3"), "deleted for good");
    drop(running);
    let _ = std::fs::remove_dir_all(dir);
}

const STATE_TOPIC: &str = "__share_group_state";

/// The log start of `__share_group_state` partition 0.
fn state_log_start(c: &mut Client) -> i64 {
    let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(s(STATE_TOPIC)))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-2)]),
    ]);
    match c.call_once(ApiKey::ListOffsets, 7, RequestKind::ListOffsets(request)) {
        ResponseKind::ListOffsets(r) => {
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0);
            p.offset
        }
        other => panic!("{other:?}"),
    }
}

/// The record types (0 snapshot, 1 update) of `__share_group_state` partition 0 from its log
/// start, in log order, a tombstone as its type negated.
fn state_record_types(c: &mut Client) -> Vec<i16> {
    let mut offset = state_log_start(c);
    let mut types = Vec::new();
    loop {
        let request = FetchRequest::default().with_max_wait_ms(10).with_max_bytes(1 << 20).with_topics(vec![
            fetch_request::FetchTopic::default().with_topic(TopicName(s(STATE_TOPIC))).with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20),
            ]),
        ]);
        let mut records = match c.call_once(ApiKey::Fetch, 12, RequestKind::Fetch(request)) {
            ResponseKind::Fetch(r) => r.responses[0].partitions[0].records.clone().unwrap_or_default(),
            other => panic!("{other:?}"),
        };
        if records.is_empty() {
            return types;
        }
        while !records.is_empty() {
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut records).expect("a batch");
            for r in set.records {
                let key = r.key.expect("a keyed record");
                let record_type = i16::from_be_bytes([key[0], key[1]]);
                types.push(if r.value.is_some() { record_type } else { -record_type });
                offset = r.offset + 1;
            }
        }
    }
}

/// Acquired offsets of partition 0 with their delivery counts.
fn acquired_offsets(r: &ShareFetchResponse) -> Vec<(i64, i16)> {
    acquired(r).into_iter().flat_map(|(first, last, count)| (first..=last).map(move |o| (o, count))).collect()
}

#[test]
fn share_state_is_written_as_updates_between_snapshots_and_pruned() {
    let (mut config, dir) = common::single_node("share-deltas");
    config.groups.share_state_topic_partitions = Some(1);
    config.groups.share_snapshot_update_records_per_snapshot = Some(4);
    config.groups.share_state_topic_prune_interval_ms = Some(3_600_000);
    let running = riptide_server::server::start(config.clone()).expect("start");
    let mut c = Client::connect(running.addr);
    let topic = member_m_of_g_reading_d(&mut c, 30);
    // One record at a time, each acknowledged by the next fetch: 20 acknowledgements, each
    // answered once durable. 20 and 21 stay acquired.
    let r = share_fetch(&mut c, "g", "m", 0, topic, vec![], 1);
    assert_eq!(acquired(&r), vec![(0, 0, 1)]);
    for i in 0..21 {
        let acks = if i < 20 { vec![(i, i, vec![1])] } else { vec![] };
        let r = share_fetch(&mut c, "g", "m", i as i32 + 1, topic, acks, 1);
        assert_eq!(ack_code(&r), 0, "acknowledging {i}");
        assert_eq!(acquired(&r), vec![(i + 1, i + 1, 1)]);
    }
    // The timer persists the last acquisitions (their delivery counts).
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let types = state_record_types(&mut c);
    assert_eq!(state_log_start(&mut c), 0, "not pruned yet");
    assert_eq!(types.first(), Some(&0), "a key's first record is a snapshot: {types:?}");
    let snapshots = types.iter().filter(|t| **t == 0).count();
    let updates = types.iter().filter(|t| **t == 1).count();
    assert!(updates >= 15 && snapshots >= 4, "updates between snapshots: {types:?}");
    let longest_run = types.split(|t| *t == 0).map(|run| run.len()).max().unwrap_or(0);
    assert!(longest_run <= 4, "a snapshot after every 4 updates: {types:?}");
    running.shutdown();

    // Restarted with pruning on: what was acknowledged stays so, the acquired records come
    // back with their delivery counted.
    config.groups.share_state_topic_prune_interval_ms = Some(200);
    let running = riptide_server::server::start(config.clone()).expect("restart");
    let mut c = Client::connect(running.addr);
    wait_coordinator(&mut c, "g");
    assert_eq!(heartbeat(&mut c, "g", "m2", 0, Some(&["d"])).error_code, 0);
    let (mut got, mut epoch) = (Vec::new(), 0);
    while got.len() < 10 && epoch < 20 {
        let r = share_fetch(&mut c, "g", "m2", epoch, topic, vec![], 10);
        assert_eq!(r.error_code, 0);
        got.extend(acquired_offsets(&r));
        epoch += 1;
    }
    let expected: Vec<(i64, i16)> = (20..30).map(|o| (o, if o < 22 { 2 } else { 1 })).collect();
    got.sort();
    assert_eq!(got, expected, "no acknowledged record is delivered again");
    let r = share_fetch(&mut c, "g", "m2", epoch, topic, vec![(20, 29, vec![1])], 10);
    assert_eq!((r.error_code, ack_code(&r)), (0, 0));
    // The share coordinator prunes the state partition below the key's latest snapshot.
    let mut log_start = 0;
    for _ in 0..100 {
        log_start = state_log_start(&mut c);
        if log_start > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(log_start > 0, "the state partition was pruned");
    assert_eq!(state_record_types(&mut c).first(), Some(&0), "the log starts at a snapshot");
    running.shutdown();

    // Read back from the pruned log: everything below 30 is done.
    let running = riptide_server::server::start(config).expect("restart");
    let mut c = Client::connect(running.addr);
    wait_coordinator(&mut c, "g");
    let produce = produce_request(None, "d", 0, plain_batch(b"r30"));
    c.call_once(ApiKey::Produce, 9, RequestKind::Produce(produce));
    assert_eq!(heartbeat(&mut c, "g", "m3", 0, Some(&["d"])).error_code, 0);
    let mut got = Vec::new();
    for epoch in 0..20 {
        got = acquired_offsets(&share_fetch(&mut c, "g", "m3", epoch, topic, vec![], 10));
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got, vec![(30, 1)]);
    assert_eq!(share_offsets(&mut c, "g"), vec![("d".to_string(), 0, 30)]);
    running.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}
