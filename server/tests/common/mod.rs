//! What the in-process protocol tests share: a single-node broker on an ephemeral loopback
//! port, with no metrics or REST listener, its data in a fresh temporary directory; and raw
//! transactional Produce requests.
// Each test crate uses a part of this.
#![allow(dead_code)]

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{produce_request, ProduceRequest, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use riptide_format::build::{self, BatchFields, RecordFields};

use riptide_server::config::{KafkaListener, RestConfig, ServerConfig};

/// The config of such a broker with its data in `<tmp>/riptide-<name>-<pid>` (emptied first);
/// the directory, for the test to remove when done.
pub fn single_node(name: &str) -> (ServerConfig, PathBuf) {
    let dir = std::env::temp_dir().join(format!("riptide-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ServerConfig {
        data_dir: dir.clone(),
        listeners: vec![KafkaListener::plaintext("127.0.0.1:0".parse().expect("addr"))],
        metrics_listen: None,
        rest: RestConfig { listen: None, ..Default::default() },
        shards: 2,
        pin_shards: false,
        ..ServerConfig::default()
    };
    (config, dir)
}

/// One transactional batch of a single record `v` for producer `pid` at `epoch`, `seq`.
pub fn txn_batch(pid: i64, epoch: i16, seq: i32) -> Bytes {
    let mut b = BytesMut::new();
    build::put_header_room(&mut b);
    build::put_record(
        &mut b,
        RecordFields {
            offset_delta: 0,
            timestamp_delta: 0,
            key: None,
            value: Some(b"v"),
            headers: std::iter::empty(),
        },
    );
    let fields = BatchFields {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchFields::plain(1, 1_000, 1_000, riptide_format::attr::TRANSACTIONAL)
    };
    build::write_header(&mut b, &fields);
    b.freeze()
}

/// A Produce (acks=all) of `records` to one partition, as transactional id `tid` if given.
pub fn produce_request(tid: Option<&str>, topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_transactional_id(tid.map(|t| TransactionalId(StrBytes::from_string(t.into()))))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![produce_request::PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}
