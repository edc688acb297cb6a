//! Transactions on the wire, request by request (issue 17): out-of-order and malformed
//! transactional requests get Kafka's error codes (never a dropped connection), a
//! transactional Produce needs its partition added, WriteTxnMarkers writes markers, Fetch
//! READ_COMMITTED reports the last stable offset and the aborted transactions, and
//! DescribeTransactions / ListTransactions report the coordinator's state and
//! DescribeProducers a partition's producers.

mod common;

use std::time::Duration;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use common::Client;

// The transaction requests this test sends, on the shared client.
impl Client {
    /// `call_once`, again while the coordinator answers COORDINATOR_LOAD_IN_PROGRESS (as
    /// clients retry it; a __transaction_state partition loads when its leadership arrives).
    fn call(&mut self, key: ApiKey, version: i16, request: RequestKind) -> ResponseKind {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let response = self.call_once(key, version, request.clone());
            if !loading(&response) || std::time::Instant::now() > deadline {
                return response;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn init(&mut self, tid: &str, timeout_ms: i32) -> InitProducerIdResponse {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(tid.into()))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        match self.call(ApiKey::InitProducerId, 4, RequestKind::InitProducerId(req)) {
            ResponseKind::InitProducerId(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn add(&mut self, tid: &str, pid: i64, epoch: i16, topic: &str, partition: i32) -> i16 {
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(tid.into())))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default(
            )
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![partition])]);
        match self.call(ApiKey::AddPartitionsToTxn, 3, RequestKind::AddPartitionsToTxn(req)) {
            ResponseKind::AddPartitionsToTxn(r) => {
                r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
            }
            other => panic!("{other:?}"),
        }
    }

    fn end(&mut self, tid: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(tid.into())))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        match self.call(ApiKey::EndTxn, 3, RequestKind::EndTxn(req)) {
            ResponseKind::EndTxn(r) => r.error_code,
            other => panic!("{other:?}"),
        }
    }

    fn produce(&mut self, tid: &str, topic: &str, pid: i64, epoch: i16, seq: i32) -> i16 {
        self.produce_as(Some(tid), topic, pid, epoch, seq)
    }

    fn produce_as(&mut self, tid: Option<&str>, topic: &str, pid: i64, epoch: i16, seq: i32) -> i16 {
        let req = common::produce_request(tid, topic, 0, common::txn_batch(pid, epoch, seq));
        match self.call(ApiKey::Produce, 9, RequestKind::Produce(req)) {
            ResponseKind::Produce(r) => r.responses[0].partition_responses[0].error_code,
            other => panic!("{other:?}"),
        }
    }

    fn fetch_committed(&mut self, topic: &str) -> fetch_response::PartitionData {
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_isolation_level(1)
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        match self.call(ApiKey::Fetch, 11, RequestKind::Fetch(req)) {
            ResponseKind::Fetch(mut r) => r.responses.remove(0).partitions.remove(0),
            other => panic!("{other:?}"),
        }
    }
}

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;

fn loading(r: &ResponseKind) -> bool {
    let code = match r {
        ResponseKind::InitProducerId(r) => r.error_code,
        ResponseKind::EndTxn(r) => r.error_code,
        ResponseKind::AddOffsetsToTxn(r) => r.error_code,
        ResponseKind::AddPartitionsToTxn(r) => r
            .results_by_topic_v3_and_below
            .first()
            .and_then(|t| t.results_by_partition.first())
            .map_or(0, |p| p.partition_error_code),
        ResponseKind::TxnOffsetCommit(r) => {
            r.topics.first().and_then(|t| t.partitions.first()).map_or(0, |p| p.error_code)
        }
        // The coordinator is not available until its partition is loaded.
        ResponseKind::FindCoordinator(r) => {
            match r.coordinators.first().map_or(r.error_code, |c| c.error_code) {
                15 => COORDINATOR_LOAD_IN_PROGRESS,
                code => code,
            }
        }
        _ => 0,
    };
    code == COORDINATOR_LOAD_IN_PROGRESS
}

const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const PRODUCER_FENCED: i16 = 90;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

#[test]
fn transactional_requests_out_of_order_get_kafkas_errors() {
    let (config, dir) = common::single_node("txn-protocol");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    let topic = "txn-data";
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("txn-data")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    assert!(matches!(
        c.call(ApiKey::CreateTopics, 5, RequestKind::CreateTopics(create)),
        ResponseKind::CreateTopics(_)
    ));
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![StrBytes::from_static_str("t")]);
    match c.call(ApiKey::FindCoordinator, 4, RequestKind::FindCoordinator(find)) {
        ResponseKind::FindCoordinator(r) => assert_eq!(r.coordinators[0].error_code, 0, "{r:?}"),
        other => panic!("{other:?}"),
    }
    // Nothing initialized yet.
    assert_eq!(c.end("t", 5, 0, true), INVALID_PRODUCER_ID_MAPPING);
    assert_eq!(c.add("t", 5, 0, topic, 0), INVALID_PRODUCER_ID_MAPPING);
    // Timeouts outside (0, transaction.max.timeout.ms].
    assert_eq!(c.init("t", 0).error_code, INVALID_TRANSACTION_TIMEOUT);
    assert_eq!(c.init("t", 900_001).error_code, INVALID_TRANSACTION_TIMEOUT);
    let r = c.init("t", 60_000);
    assert_eq!(r.error_code, 0);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    assert_eq!(epoch, 0);
    // EndTxn before any partition was added; a partition of an unknown topic; a wrong epoch.
    assert_eq!(c.end("t", pid, epoch, true), INVALID_TXN_STATE);
    assert_eq!(c.add("t", pid, epoch, "no-such-topic", 0), UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(c.add("t", pid, epoch + 1, topic, 0), PRODUCER_FENCED);
    assert_eq!(c.add("t", pid + 1, epoch, topic, 0), INVALID_PRODUCER_ID_MAPPING);
    // Transactional records without a transactional id.
    assert_eq!(c.produce_as(None, topic, pid, epoch, 0), TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    // A transactional Produce to a partition not in the transaction.
    assert_eq!(c.produce("t", topic, pid, epoch, 0), INVALID_TXN_STATE);
    assert_eq!(c.add("t", pid, epoch, topic, 0), 0);
    assert_eq!(c.produce("t", topic, pid, epoch, 0), 0);
    // DescribeTransactions / ListTransactions see it ongoing; an unknown id is not found.
    let describe = DescribeTransactionsRequest::default().with_transactional_ids(vec![
        TransactionalId(StrBytes::from_static_str("t")),
        TransactionalId(StrBytes::from_static_str("nobody")),
    ]);
    match c.call(ApiKey::DescribeTransactions, 0, RequestKind::DescribeTransactions(describe)) {
        ResponseKind::DescribeTransactions(r) => {
            let t = &r.transaction_states[0];
            assert_eq!((t.error_code, t.transaction_state.as_str(), t.producer_id.0), (0, "Ongoing", pid));
            assert_eq!((t.topics[0].topic.0.as_str(), t.topics[0].partitions.clone()), (topic, vec![0]));
            assert_eq!(r.transaction_states[1].error_code, TRANSACTIONAL_ID_NOT_FOUND);
        }
        other => panic!("{other:?}"),
    }
    let list = ListTransactionsRequest::default()
        .with_state_filters(vec![StrBytes::from_static_str("Ongoing"), StrBytes::from_static_str("Bogus")])
        .with_duration_filter(-1);
    match c.call(ApiKey::ListTransactions, 1, RequestKind::ListTransactions(list)) {
        ResponseKind::ListTransactions(r) => {
            let ids: Vec<&str> = r.transaction_states.iter().map(|t| t.transactional_id.0.as_str()).collect();
            assert_eq!(ids, vec!["t"]);
            assert_eq!(r.unknown_state_filters, vec![StrBytes::from_static_str("Bogus")]);
        }
        other => panic!("{other:?}"),
    }
    // DescribeProducers: the producer's open transaction starts at offset 0.
    let producers = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(TopicName(StrBytes::from_static_str("txn-data")))
            .with_partition_indexes(vec![0, 9]),
    ]);
    match c.call(ApiKey::DescribeProducers, 0, RequestKind::DescribeProducers(producers)) {
        ResponseKind::DescribeProducers(r) => {
            let p = &r.topics[0].partitions;
            let s = &p[0].active_producers;
            assert_eq!(s.len(), 1, "{r:?}");
            assert_eq!((s[0].producer_id.0, s[0].producer_epoch, s[0].last_sequence), (pid, 0, 0));
            assert_eq!(s[0].current_txn_start_offset, 0);
            assert_eq!(p[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
        }
        other => panic!("{other:?}"),
    }
    // The open transaction holds read_committed below it.
    let p = c.fetch_committed(topic);
    assert_eq!((p.high_watermark, p.last_stable_offset), (1, 0));
    assert_eq!(c.end("t", pid, epoch, false), 0, "abort");
    assert_eq!(c.end("t", pid, epoch, false), 0, "a retried abort");
    assert_eq!(c.end("t", pid, epoch, true), INVALID_TXN_STATE, "commit after abort");
    let p = c.fetch_committed(topic);
    assert_eq!((p.high_watermark, p.last_stable_offset), (2, 2), "data, ABORT marker");
    let aborted = p.aborted_transactions.expect("aborted transactions listed");
    assert_eq!((aborted.len(), aborted[0].producer_id.0, aborted[0].first_offset), (1, pid, 0));
    // A new InitProducerId bumps the epoch: the old one is fenced.
    let r = c.init("t", 60_000);
    assert_eq!((r.error_code, r.producer_id.0, r.producer_epoch), (0, pid, epoch + 1));
    assert_eq!(c.add("t", pid, epoch, topic, 0), PRODUCER_FENCED);
    assert_eq!(c.add("t", pid, epoch + 1, topic, 0), 0);
    assert_eq!(c.produce("t", topic, pid, epoch, 1), INVALID_PRODUCER_EPOCH, "the old epoch");
    // WriteTxnMarkers (the broker API): a COMMIT for the open transaction, and an unknown topic.
    let marker = |name: &str| {
        write_txn_markers_request::WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch + 1)
            .with_transaction_result(true)
            .with_topics(vec![write_txn_markers_request::WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.into())))
                .with_partition_indexes(vec![0])])
    };
    assert_eq!(c.produce("t", topic, pid, epoch + 1, 0), 0);
    let req = WriteTxnMarkersRequest::default().with_markers(vec![marker(topic), marker("no-such-topic")]);
    match c.call(ApiKey::WriteTxnMarkers, 1, RequestKind::WriteTxnMarkers(req)) {
        ResponseKind::WriteTxnMarkers(r) => {
            assert_eq!(r.markers[0].topics[0].partitions[0].error_code, 0);
            assert_eq!(r.markers[1].topics[0].partitions[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
        }
        other => panic!("{other:?}"),
    }
    let p = c.fetch_committed(topic);
    assert_eq!((p.high_watermark, p.last_stable_offset), (4, 4), "committed by the marker");
    transactional_offsets(&mut c, topic);
    running.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// AddOffsetsToTxn + TxnOffsetCommit: the offset is pending (UNSTABLE_OFFSET_COMMIT for a
/// require_stable OffsetFetch, not visible otherwise) until EndTxn commits it.
fn transactional_offsets(c: &mut Client, topic: &str) {
    let r = c.init("t2", 60_000);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let add = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_static_str("t2")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(StrBytes::from_static_str("g")));
    match c.call(ApiKey::AddOffsetsToTxn, 3, RequestKind::AddOffsetsToTxn(add)) {
        ResponseKind::AddOffsetsToTxn(r) => assert_eq!(r.error_code, 0),
        other => panic!("{other:?}"),
    }
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_static_str("t2")))
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(5)
                .with_committed_leader_epoch(-1)])]);
    match c.call(ApiKey::TxnOffsetCommit, 3, RequestKind::TxnOffsetCommit(commit)) {
        ResponseKind::TxnOffsetCommit(r) => assert_eq!(r.topics[0].partitions[0].error_code, 0),
        other => panic!("{other:?}"),
    }
    let fetch = |c: &mut Client, require_stable: bool| {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_require_stable(require_stable)
            .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partition_indexes(vec![0])]));
        match c.call(ApiKey::OffsetFetch, 7, RequestKind::OffsetFetch(req)) {
            ResponseKind::OffsetFetch(r) => {
                let p = &r.topics[0].partitions[0];
                (p.error_code, p.committed_offset)
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(fetch(c, true).0, UNSTABLE_OFFSET_COMMIT);
    assert_eq!(fetch(c, false), (0, -1), "not visible before the commit");
    assert_eq!(c.end("t2", pid, epoch, true), 0);
    assert_eq!(fetch(c, true), (0, 5));
}

/// Transactions v2 (KIP-890) as a v2 client (Kafka 4's Java producer) speaks it: ApiVersions
/// finalizes `transaction.version` 2; Produce v12 and TxnOffsetCommit v5 add their partitions
/// without AddPartitionsToTxn / AddOffsetsToTxn; EndTxn v5 bumps the epoch and answers it, the
/// markers carry it, and a zombie at the old epoch is fenced; a retried EndTxn is answered as
/// done; AddPartitionsToTxn v4+ is for brokers only.
#[test]
fn transactions_v2_add_implicitly_and_bump_the_epoch() {
    let (config, dir) = common::single_node("txn-v2");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    match c.call(ApiKey::ApiVersions, 3, RequestKind::ApiVersions(ApiVersionsRequest::default())) {
        ResponseKind::ApiVersions(r) => {
            let tv = r.finalized_features.iter().find(|f| f.name.as_str() == "transaction.version");
            assert_eq!(tv.map(|f| f.max_version_level), Some(2), "{r:?}");
            let end = r.api_keys.iter().find(|k| k.api_key == ApiKey::EndTxn as i16).expect("EndTxn");
            assert_eq!(end.max_version, 5);
        }
        other => panic!("{other:?}"),
    }
    let topic = "txn-v2";
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("txn-v2")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    c.call(ApiKey::CreateTopics, 5, RequestKind::CreateTopics(create));
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![StrBytes::from_static_str("v2")]);
    c.call(ApiKey::FindCoordinator, 4, RequestKind::FindCoordinator(find));
    let r = c.init("v2", 60_000);
    assert_eq!(r.error_code, 0);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let produce_v12 = |c: &mut Client, epoch: i16, seq: i32| {
        let req = common::produce_request(Some("v2"), topic, 0, common::txn_batch(pid, epoch, seq));
        // NOT_ENOUGH_REPLICAS is the retriable answer while the coordinator is busy.
        for _ in 0..100 {
            match c.call(ApiKey::Produce, 12, RequestKind::Produce(req.clone())) {
                ResponseKind::Produce(r) if r.responses[0].partition_responses[0].error_code == 19 => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                ResponseKind::Produce(r) => return r.responses[0].partition_responses[0].error_code,
                other => panic!("{other:?}"),
            }
        }
        panic!("still NOT_ENOUGH_REPLICAS")
    };
    let end_v5 = |c: &mut Client, epoch: i16, commit: bool| {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("v2")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        match c.call(ApiKey::EndTxn, 5, RequestKind::EndTxn(req)) {
            ResponseKind::EndTxn(r) => (r.error_code, r.producer_id.0, r.producer_epoch),
            other => panic!("{other:?}"),
        }
    };
    // Produce v12 without AddPartitionsToTxn: the partition joins the transaction.
    assert_eq!(produce_v12(&mut c, epoch, 0), 0);
    assert_eq!(produce_v12(&mut c, epoch, 1), 0, "already in it");
    // TxnOffsetCommit v5 without AddOffsetsToTxn.
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_static_str("v2")))
        .with_group_id(GroupId(StrBytes::from_static_str("g-v2")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(2)
                .with_committed_leader_epoch(-1)])]);
    match c.call(ApiKey::TxnOffsetCommit, 5, RequestKind::TxnOffsetCommit(commit)) {
        ResponseKind::TxnOffsetCommit(r) => assert_eq!(r.topics[0].partitions[0].error_code, 0),
        other => panic!("{other:?}"),
    }
    let describe = |c: &mut Client| {
        let req = DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(StrBytes::from_static_str("v2"))]);
        match c.call(ApiKey::DescribeTransactions, 0, RequestKind::DescribeTransactions(req)) {
            ResponseKind::DescribeTransactions(mut r) => r.transaction_states.remove(0),
            other => panic!("{other:?}"),
        }
    };
    let d = describe(&mut c);
    assert_eq!(d.transaction_state.as_str(), "Ongoing");
    let mut joined: Vec<String> = d.topics.iter().map(|t| t.topic.0.to_string()).collect();
    joined.sort();
    assert_eq!(joined, vec!["__consumer_offsets".to_string(), topic.to_string()]);
    // EndTxn v5: committed with the epoch bumped, which it answers.
    assert_eq!(end_v5(&mut c, epoch, true), (0, pid, epoch + 1));
    let data = c.fetch_committed(topic);
    assert_eq!(data.last_stable_offset, 3, "two records and the marker");
    // The retry of that EndTxn is answered as done; a zombie at the old epoch is fenced.
    assert_eq!(end_v5(&mut c, epoch, true), (0, pid, epoch + 1));
    // (Its partition's transaction ended with the marker: the coordinator answers the add.)
    assert_eq!(produce_v12(&mut c, epoch, 2), PRODUCER_FENCED);
    // The next transaction runs at the bumped epoch, sequences from 0; an abort bumps again.
    assert_eq!(produce_v12(&mut c, epoch + 1, 0), 0);
    assert_eq!(end_v5(&mut c, epoch + 1, false), (0, pid, epoch + 2));
    let data = c.fetch_committed(topic);
    assert_eq!(data.aborted_transactions.as_ref().map(Vec::len), Some(1));
    assert_eq!(describe(&mut c).producer_epoch, epoch + 2);
    // Brokers only: AddPartitionsToTxn v4+ from a client is refused without CLUSTER_ACTION
    // when ACLs are on; with no authorizer every principal may.
    let batched = AddPartitionsToTxnRequest::default().with_transactions(vec![
        add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("v2")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch + 2)
            .with_verify_only(true)
            .with_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![0])]),
    ]);
    match c.call(ApiKey::AddPartitionsToTxn, 5, RequestKind::AddPartitionsToTxn(batched)) {
        ResponseKind::AddPartitionsToTxn(r) => {
            let code =
                r.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code;
            assert_eq!(code, INVALID_TXN_STATE, "verify-only: not in a transaction now");
        }
        other => panic!("{other:?}"),
    }
    running.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
