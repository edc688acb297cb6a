//! A topic's own `compression.type` (Kafka's broker-side compression): batches produced in
//! another codec are stored recompressed in the topic's, records unchanged; `producer` keeps
//! what the producer sent; a damaged batch is still refused as it came.

mod common;

use bytes::{Bytes, BytesMut};
use common::Client;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use riptide_format::build::{self, BatchFields};
use riptide_format::BatchHeader;

fn plain_batch(n: usize) -> Bytes {
    let mut b = BytesMut::new();
    build::put_header_room(&mut b);
    let values: Vec<String> = (0..n).map(|i| format!("value-{i}-{}", "x".repeat(200))).collect();
    build::put_keyless_records(&mut b, values.iter().map(|v| v.as_bytes()));
    build::write_header(&mut b, &BatchFields::plain(n as i32, 1_000, 1_000, 0));
    b.freeze()
}

fn produce(c: &mut Client, topic: &str, records: Bytes) -> i16 {
    let request = common::produce_request(None, topic, 0, records);
    match c.call_once(ApiKey::Produce, 9, RequestKind::Produce(request)) {
        ResponseKind::Produce(r) => r.responses[0].partition_responses[0].error_code,
        other => panic!("{other:?}"),
    }
}

/// The stored batches of partition 0, from offset 0.
fn fetch(c: &mut Client, topic: &str) -> Bytes {
    let request = FetchRequest::default().with_max_wait_ms(100).with_max_bytes(1 << 20).with_topics(vec![
        fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)]),
    ]);
    match c.call_once(ApiKey::Fetch, 12, RequestKind::Fetch(request)) {
        ResponseKind::Fetch(r) => r.responses[0].partitions[0].records.clone().unwrap_or_default(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn batches_are_stored_in_the_topics_codec() {
    let (config, dir) = common::single_node("topic-compression");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    common::create_topic(
        &mut c,
        "zstd-topic",
        1,
        &[("compression.type", "zstd"), ("compression.zstd.level", "9")],
    );
    common::create_topic(&mut c, "producer-topic", 1, &[]);
    let batch = plain_batch(20);
    assert_eq!(produce(&mut c, "zstd-topic", batch.clone()), 0);
    assert_eq!(produce(&mut c, "producer-topic", batch.clone()), 0);
    let stored = fetch(&mut c, "zstd-topic");
    let h = BatchHeader::parse(&stored).expect("a batch");
    assert_eq!((h.codec(), h.records_count), (riptide_format::codec::ZSTD, 20));
    assert!(stored.len() < batch.len() / 2, "compressed: {} of {} bytes", stored.len(), batch.len());
    let records =
        riptide_engine::compression::decompress(h.codec(), &stored[riptide_format::HEADER_BYTES..], 1 << 20)
            .expect("zstd");
    assert_eq!(&records[..], &batch[riptide_format::HEADER_BYTES..], "the records are the producer's");
    let kept = fetch(&mut c, "producer-topic");
    assert_eq!(BatchHeader::parse(&kept).expect("a batch").codec(), riptide_format::codec::NONE);
    // A damaged batch is refused with CORRUPT_MESSAGE (2), not laundered by the recompression.
    let mut bad = batch.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(produce(&mut c, "zstd-topic", Bytes::from(bad)), 2);
    running.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
