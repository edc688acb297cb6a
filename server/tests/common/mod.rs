//! What the in-process protocol tests share: a single-node broker on an ephemeral loopback
//! port, with no metrics or REST listener, its data in a fresh temporary directory, a
//! blocking client that sends one request at a time, encoded with the reference codec, and raw
//! transactional Produce requests.

// Each test crate includes this module and uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    produce_request, ApiKey, ProduceRequest, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use riptide_format::build::{self, BatchFields};
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

/// One connection to the broker under test; every call waits for its answer.
pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        Client { stream, correlation_id: 0 }
    }

    /// Sends one request (header at `header_version`, then `body`) and returns the whole
    /// answer after its size prefix, its header included.
    fn round_trip(&mut self, key: ApiKey, version: i16, header_version: i16, body: &[u8]) -> Bytes {
        self.correlation_id += 1;
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("riptide-tests")))
            .encode(&mut buf, header_version)
            .expect("header");
        buf.put_slice(body);
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).expect("send");
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("an answer");
        let mut answer = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut answer).expect("whole answer");
        Bytes::from(answer)
    }

    /// Sends a body already encoded for `version` (versions the reference codec no longer
    /// has) and returns the answer's body, after its v0 header.
    pub fn call_raw(&mut self, key: ApiKey, version: i16, body: &[u8]) -> Bytes {
        let answer = self.round_trip(key, version, 1, body);
        let id = i32::from_be_bytes([answer[0], answer[1], answer[2], answer[3]]);
        assert_eq!(id, self.correlation_id, "answers come in request order");
        answer.slice(4..)
    }

    /// Sends `request` at `version` and decodes the answer (panics on a closed connection or
    /// an answer the reference codec refuses: either is the broker's bug).
    pub fn call_once(&mut self, key: ApiKey, version: i16, request: RequestKind) -> ResponseKind {
        let mut body = BytesMut::new();
        request.encode(&mut body, version).expect("request");
        let mut answer = self.round_trip(key, version, key.request_header_version(version), &body);
        let header =
            ResponseHeader::decode(&mut answer, key.response_header_version(version)).expect("header");
        assert_eq!(header.correlation_id, self.correlation_id, "answers come in request order");
        ResponseKind::decode(key, &mut answer, version).expect("response")
    }
}

/// One batch of a single record `value` with the header `fields`.
fn one_record_batch(value: &[u8], fields: &BatchFields) -> Bytes {
    records_batch(&[value], fields)
}

/// One batch of the records `values` with the header `fields`.
fn records_batch(values: &[&[u8]], fields: &BatchFields) -> Bytes {
    let mut b = BytesMut::new();
    build::put_header_room(&mut b);
    build::put_keyless_records(&mut b, values.iter().copied());
    build::write_header(&mut b, fields);
    b.freeze()
}

/// One plain (non-transactional, uncompressed) batch of `count` records.
pub fn plain_batch_of(count: usize) -> Bytes {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let values: Vec<Vec<u8>> = (0..count).map(|i| format!("v{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    records_batch(&refs, &BatchFields::plain(count as i32, now, now, 0))
}

/// One transactional batch of a single record `v` for producer `pid` at `epoch`, `seq`.
pub fn txn_batch(pid: i64, epoch: i16, seq: i32) -> Bytes {
    let fields = BatchFields {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchFields::plain(1, 1_000, 1_000, riptide_format::attr::TRANSACTIONAL)
    };
    one_record_batch(b"v", &fields)
}

/// One plain (non-transactional, uncompressed) batch of a single record `value`.
pub fn plain_batch(value: &[u8]) -> Bytes {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    one_record_batch(value, &BatchFields::plain(1, now, now, 0))
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

/// Creates `name` (replication factor 1) with `configs`, and returns its topic id.
pub fn create_topic(c: &mut Client, name: &str, partitions: i32, configs: &[(&str, &str)]) -> uuid::Uuid {
    use kafka_protocol::messages::{create_topics_request, CreateTopicsRequest};
    let configs = configs
        .iter()
        .map(|(k, v)| {
            create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_string((*k).into()))
                .with_value(Some(StrBytes::from_string((*v).into())))
        })
        .collect();
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(configs),
    ]);
    match c.call_once(ApiKey::CreateTopics, 7, RequestKind::CreateTopics(create)) {
        ResponseKind::CreateTopics(r) => {
            assert_eq!(r.topics[0].error_code, 0, "{r:?}");
            assert_ne!(r.topics[0].topic_id, uuid::Uuid::nil());
            r.topics[0].topic_id
        }
        other => panic!("{other:?}"),
    }
}
