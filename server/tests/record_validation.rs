//! Record validation on the wire, as Kafka does it (issue 19 item 1): a compressed batch is
//! decompressed and its records checked, so a malformed one is refused and nothing is
//! appended: a wrong record count, offset deltas not 0..n-1 or a decompression bomb with
//! INVALID_RECORD; a record cut short or longer than its fields, bytes that do not decompress
//! or a bad CRC with CORRUPT_MESSAGE; a keyless record on a compacted topic refuses its partition's batch
//! with INVALID_RECORD and `record_errors` naming it, while the request's other partitions
//! are answered as usual.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use riptide_client::batch::{compress_records, Compression};
use riptide_format::build::{self, BatchFields, RecordFields};

use common::{create_topic, Client};

const CORRUPT_MESSAGE: i16 = 2;
const INVALID_TIMESTAMP: i16 = 32;
const INVALID_RECORD: i16 = 87;
const CODECS: [Compression; 5] =
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

/// One record as a test writes it: its offset delta, key and value, and timestamp delta.
struct Rec<'a> {
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: &'a [u8],
    timestamp_delta: i64,
}

fn keyed(offset_delta: i32) -> Rec<'static> {
    Rec { offset_delta, key: Some(b"k"), value: b"value", timestamp_delta: 0 }
}

fn keyless(offset_delta: i32) -> Rec<'static> {
    Rec { offset_delta, key: None, value: b"value", timestamp_delta: 0 }
}

/// The records section, uncompressed.
fn records_section(records: &[Rec<'_>]) -> BytesMut {
    let mut b = BytesMut::new();
    for r in records {
        build::put_record(
            &mut b,
            RecordFields {
                offset_delta: i64::from(r.offset_delta),
                timestamp_delta: r.timestamp_delta,
                key: r.key,
                value: Some(r.value),
                headers: std::iter::empty(),
            },
        );
    }
    b
}

/// A batch of `section` (uncompressed records) compressed with `codec`, its header saying
/// `count` records, with a correct CRC: whatever is wrong is inside the records.
fn batch_of(section: &[u8], count: i32, codec: Compression) -> Bytes {
    batch_at(section, count, codec, 1_000)
}

/// `batch_of` with the records' timestamps counted from `base_timestamp`.
fn batch_at(section: &[u8], count: i32, codec: Compression, base_timestamp: i64) -> Bytes {
    let mut b = compress_records(section, codec).expect("compress");
    let fields = BatchFields::plain(count, base_timestamp, base_timestamp, codec.codec_bits());
    build::write_header(&mut b, &fields);
    b.freeze()
}

fn batch(records: &[Rec<'_>], codec: Compression) -> Bytes {
    batch_of(&records_section(records), records.len() as i32, codec)
}

/// A batch whose compressed section is `payload` as is (valid CRC, attributes say `codec`).
fn raw_batch(payload: &[u8], count: i32, codec: Compression) -> Bytes {
    let mut b = BytesMut::new();
    build::put_header_room(&mut b);
    b.put_slice(payload);
    build::write_header(&mut b, &BatchFields::plain(count, 1_000, 1_000, codec.codec_bits()));
    b.freeze()
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.into()))
}

/// One Produce request (acks=1) of `(topic, partition, records)` at `version`; the answers
/// in request order.
fn produce(
    c: &mut Client,
    version: i16,
    parts: &[(&str, i32, Bytes)],
) -> Vec<produce_response::PartitionProduceResponse> {
    let mut topics: Vec<produce_request::TopicProduceData> = Vec::new();
    for (topic, partition, records) in parts {
        let data = produce_request::PartitionProduceData::default()
            .with_index(*partition)
            .with_records(Some(records.clone()));
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.partition_data.push(data),
            None => topics.push(
                produce_request::TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    let req = ProduceRequest::default().with_acks(1).with_timeout_ms(10_000).with_topic_data(topics);
    match c.call_once(ApiKey::Produce, version, RequestKind::Produce(req)) {
        ResponseKind::Produce(r) => r.responses.into_iter().flat_map(|t| t.partition_responses).collect(),
        other => panic!("{other:?}"),
    }
}

fn produce_one(c: &mut Client, topic: &str, records: Bytes) -> produce_response::PartitionProduceResponse {
    produce(c, 9, &[(topic, 0, records)]).remove(0)
}

/// The partition's log end offset (ListOffsets, latest).
fn log_end(c: &mut Client, topic: &str, partition: i32) -> i64 {
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(vec![
            list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-1),
        ]),
    ]);
    match c.call_once(ApiKey::ListOffsets, 7, RequestKind::ListOffsets(req)) {
        ResponseKind::ListOffsets(r) => {
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "{p:?}");
            p.offset
        }
        other => panic!("{other:?}"),
    }
}

/// Each malformed shape, in each codec: refused with `want`, a message, and nothing appended.
fn assert_refused(c: &mut Client, topic: &str, what: &str, records: Bytes, want: i16) {
    let before = log_end(c, topic, 0);
    let p = produce_one(c, topic, records);
    assert_eq!(p.error_code, want, "{what}: {p:?}");
    assert!(p.error_message.is_some(), "{what}: a refusal says why: {p:?}");
    assert!(p.record_errors.is_empty(), "{what}: no single record is to blame: {p:?}");
    assert_eq!(log_end(c, topic, 0), before, "{what}: nothing appended");
}

#[test]
fn malformed_batches_are_refused_whole_in_every_codec() {
    let (config, dir) = common::single_node("record-validation-malformed");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    let topic = "malformed";
    create_topic(&mut c, topic, 1, &[]);
    for codec in CODECS {
        let name = codec.name();
        // A well-formed batch first: the log end moves, so "nothing appended" below is not
        // trivially true.
        let ok = produce_one(&mut c, topic, batch(&[keyed(0), keyless(1)], codec));
        assert_eq!(ok.error_code, 0, "{name}: {ok:?}");
        let two = records_section(&[keyed(0), keyed(1)]);
        let cases: Vec<(&str, Bytes)> = vec![
            ("more records declared than inside", batch_of(&two, 3, codec)),
            ("fewer records declared than inside", batch_of(&two, 1, codec)),
            ("offset deltas not 0..n-1", batch(&[keyed(0), keyed(2)], codec)),
            ("offset deltas out of order", batch(&[keyed(1), keyed(0)], codec)),
        ];
        for (what, records) in cases {
            assert_refused(&mut c, topic, &format!("{name}: {what}"), records, INVALID_RECORD);
        }
        // Bytes that are no records: framing, as a bad CRC is.
        let framing: Vec<(&str, Bytes)> = vec![
            ("a record cut short", batch_of(&two[..two.len() - 2], 2, codec)),
            ("a record longer than its fields", batch_of(&longer_record(), 1, codec)),
        ];
        for (what, records) in framing {
            assert_refused(&mut c, topic, &format!("{name}: {what}"), records, CORRUPT_MESSAGE);
        }
        if codec != Compression::None {
            let garbage = raw_batch(b"these bytes are in no codec's format at all", 1, codec);
            assert_refused(&mut c, topic, &format!("{name}: garbage"), garbage, CORRUPT_MESSAGE);
        }
        let mut flipped = BytesMut::from(&batch(&[keyed(0)], codec)[..]);
        let last = flipped.len() - 1;
        flipped[last] ^= 0x5a;
        assert_refused(&mut c, topic, &format!("{name}: CRC"), flipped.freeze(), CORRUPT_MESSAGE);
    }
    // A decompression bomb: 256 MiB of zeros in a few KiB of zstd (one frame of 1 MiB of
    // zeros, repeated: a zstd stream is any number of frames) is refused at the 64 MiB bound,
    // and the broker stays up to answer the next request.
    let frame = zstd_of(&vec![0u8; 1 << 20]);
    let bomb = frame.repeat(256);
    assert!(bomb.len() < 1 << 20, "the bomb fits max.message.bytes: {}", bomb.len());
    assert_refused(&mut c, topic, "zstd bomb", raw_batch(&bomb, 1, Compression::Zstd), INVALID_RECORD);
    let ok = produce_one(&mut c, topic, batch(&[keyed(0)], Compression::Zstd));
    assert_eq!(ok.error_code, 0, "after the bomb: {ok:?}");
    drop(running);
    let _ = std::fs::remove_dir_all(dir);
}

/// A record whose length counts one byte more than its fields hold (that byte present).
fn longer_record() -> BytesMut {
    let one = records_section(&[keyed(0)]);
    // The length varint is one byte here (a small record); zigzag: value 2n.
    let length = one[0] >> 1;
    let mut b = BytesMut::new();
    build::put_varint(&mut b, i64::from(length) + 1);
    b.put_slice(&one[1..]);
    b.put_u8(0);
    b
}

fn zstd_of(data: &[u8]) -> Vec<u8> {
    let compressed = compress_records(data, Compression::Zstd).expect("zstd");
    compressed[riptide_format::HEADER_BYTES..].to_vec()
}

const COMPACTED_MESSAGE: &str = "Compacted topic cannot accept message without key in topic partition";

#[test]
fn keyless_records_refuse_their_partition_of_a_compacted_topic() {
    let (config, dir) = common::single_node("record-validation-keyless");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    create_topic(&mut c, "compacted", 2, &[("cleanup.policy", "compact")]);
    create_topic(&mut c, "both", 1, &[("cleanup.policy", "compact,delete")]);
    create_topic(&mut c, "plain", 1, &[]);
    for codec in CODECS {
        let name = codec.name();
        let mixed = batch(&[keyed(0), keyless(1), keyed(2), keyless(3)], codec);
        // One request: the compacted partition refuses its batch; its other partition and the
        // other topic are answered as usual.
        let answers = produce(
            &mut c,
            9,
            &[
                ("compacted", 0, mixed.clone()),
                ("compacted", 1, batch(&[keyed(0), keyed(1)], codec)),
                ("plain", 0, mixed.clone()),
            ],
        );
        let refused = &answers[0];
        assert_eq!(refused.error_code, INVALID_RECORD, "{name}: {refused:?}");
        assert_eq!(refused.base_offset, -1, "{name}");
        let indexes: Vec<i32> = refused.record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, [1, 3], "{name}: every keyless record, by its index in the batch");
        for e in &refused.record_errors {
            let message = e.batch_index_error_message.as_deref().unwrap_or_default();
            assert_eq!(message, format!("{COMPACTED_MESSAGE} compacted-0"), "{name}");
        }
        let summary = refused.error_message.as_deref().unwrap_or_default();
        assert!(
            summary.starts_with("One or more records have been rejected due to 2 record errors in total"),
            "{name}: {summary}"
        );
        assert!(summary.contains("RecordError(batchIndex=1, message='Compacted topic"), "{name}: {summary}");
        assert_eq!(answers[1].error_code, 0, "{name}: {:?}", answers[1]);
        assert_eq!(answers[2].error_code, 0, "{name}: keys are optional elsewhere: {:?}", answers[2]);
        assert!(answers[1].record_errors.is_empty() && answers[1].error_message.is_none());
        // A keyed batch goes in; an empty key is a key.
        let keyed_batch = batch(
            &[keyed(0), Rec { offset_delta: 1, key: Some(b""), value: b"v", timestamp_delta: 0 }],
            codec,
        );
        let p = produce_one(&mut c, "compacted", keyed_batch);
        assert_eq!(p.error_code, 0, "{name}: {p:?}");
        let p = produce_one(&mut c, "both", batch(&[keyless(0)], codec));
        assert_eq!(p.error_code, INVALID_RECORD, "{name}: compact,delete is compacted too: {p:?}");
    }
    // Only keyed batches went in: one per codec.
    assert_eq!(log_end(&mut c, "compacted", 0), 2 * CODECS.len() as i64);
    // A topic that becomes compacted refuses keyless records from then on.
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("plain"))
            .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_static_str("cleanup.policy"))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_static_str("compact")))]),
    ]);
    match c.call_once(ApiKey::IncrementalAlterConfigs, 1, RequestKind::IncrementalAlterConfigs(alter)) {
        ResponseKind::IncrementalAlterConfigs(r) => assert_eq!(r.responses[0].error_code, 0, "{r:?}"),
        other => panic!("{other:?}"),
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let p = produce_one(&mut c, "plain", batch(&[keyless(0)], Compression::Snappy));
        if p.error_code == INVALID_RECORD {
            assert_eq!(p.record_errors.len(), 1, "{p:?}");
            break;
        }
        assert_eq!(p.error_code, 0, "{p:?}");
        // The new config reaches the partition through the metadata log: soon, not at once.
        assert!(std::time::Instant::now() < deadline, "the altered policy never applied");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(log_end(&mut c, "both", 0), 0);
    // Before v8 a Produce response has neither record_errors nor error_message: the code alone.
    let p = produce(&mut c, 7, &[("compacted", 0, batch(&[keyless(0)], Compression::Lz4))]).remove(0);
    assert_eq!(p.error_code, INVALID_RECORD, "{p:?}");
    assert!(p.record_errors.is_empty() && p.error_message.is_none(), "{p:?}");
    // v8, the first version with them, not flexible.
    let p = produce(&mut c, 8, &[("compacted", 0, batch(&[keyless(0)], Compression::Gzip))]).remove(0);
    assert_eq!(p.error_code, INVALID_RECORD, "{p:?}");
    assert_eq!(p.record_errors.len(), 1, "{p:?}");
    drop(running);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_record_outside_the_timestamp_window_is_named() {
    let (config, dir) = common::single_node("record-validation-timestamps");
    let running = riptide_server::server::start(config).expect("start");
    let mut c = Client::connect(running.addr);
    let hour_ms = 3_600_000i64;
    let hour = hour_ms.to_string();
    let window = [
        ("message.timestamp.before.max.ms", hour.as_str()),
        ("message.timestamp.after.max.ms", hour.as_str()),
    ];
    create_topic(&mut c, "window", 1, &window);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    for codec in CODECS {
        let name = codec.name();
        // The first record (the header's base) and the latest are recent; the one in between
        // is two hours old, which only its own timestamp shows.
        let records = [
            keyed(0),
            Rec { timestamp_delta: -2 * hour_ms, ..keyed(1) },
            Rec { timestamp_delta: 1_000, ..keyed(2) },
        ];
        let b = batch_at(&records_section(&records), 3, codec, now_ms);
        let p = produce_one(&mut c, "window", b);
        assert_eq!(p.error_code, INVALID_TIMESTAMP, "{name}: {p:?}");
        assert_eq!(p.record_errors.len(), 1, "{name}: {p:?}");
        assert_eq!(p.record_errors[0].batch_index, 1, "{name}");
        let message = p.record_errors[0].batch_index_error_message.as_deref().unwrap_or_default();
        let want = format!("Timestamp {} of message with offset 1 is out of range", now_ms - 2 * hour_ms);
        assert!(message.starts_with(&want), "{name}: {message}");
        assert_eq!(
            p.error_message.as_deref(),
            Some("One or more records have been rejected due to invalid timestamp"),
            "{name}"
        );
        let ok = batch_at(&records_section(&[keyed(0), keyed(1)]), 2, codec, now_ms);
        assert_eq!(produce_one(&mut c, "window", ok).error_code, 0, "{name}");
    }
    assert_eq!(log_end(&mut c, "window", 0), 2 * CODECS.len() as i64, "only the good batches went in");
    drop(running);
    let _ = std::fs::remove_dir_all(dir);
}
