//! Shared test helpers: batches built with the independent `kafka-protocol` encoder,
//! decoding of engine output with its decoder, temp directories and whole-log reads.
#![allow(dead_code)]

use riptide_model::Offset;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, RecordSet,
    TimestampType,
};
use riptide_engine::{IoBackend, Log, LogConfig, LogError};

pub const BACKENDS: [IoBackend; 2] = [IoBackend::Std, IoBackend::Uring];

/// A fresh, empty directory for one test.
pub fn tmpdir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join("riptide-engine-tests").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

pub fn config(io: IoBackend) -> LogConfig {
    LogConfig { io, ..LogConfig::default() }
}

/// Producer identity for idempotent batches: (producer id, epoch, base sequence).
pub type Producer = Option<(i64, i16, i32)>;

pub fn records(n: usize, value_bytes: usize, ts_ms: i64, producer: Producer) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch unless offset - sequence stays constant.
                sequence: seq + i as i32,
                timestamp: ts_ms + i as i64,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; value_bytes])),
                headers: Default::default(),
            }
        })
        .collect()
}

pub fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records, &RecordEncodeOptions { version: 2, compression })
        .expect("encode");
    buf.to_vec()
}

/// One uncompressed batch of `n` records with `value_bytes`-byte values.
pub fn batch(n: usize, value_bytes: usize, ts_ms: i64) -> Vec<u8> {
    encode(&records(n, value_bytes, ts_ms, None), Compression::None)
}

pub fn idempotent_batch(n: usize, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    encode(&records(n, 10, 1_000, Some((pid, epoch, seq))), Compression::None)
}

/// Decodes concatenated batches with kafka-protocol's decoder.
pub fn decode(bytes: &[u8]) -> Vec<RecordSet> {
    let mut b = Bytes::copy_from_slice(bytes);
    RecordBatchDecoder::decode_all(&mut b).expect("kafka-protocol decodes engine bytes")
}

/// Every byte of the log from `from` to the end, through `Log::read` slices.
pub fn read_all(log: &Log, from: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    let end = log.log_end_offset();
    while offset < end.0 {
        let s = log.read(Offset(offset), 1 << 20, Offset(i64::MAX), true).expect("read");
        assert!(s.len > 0, "read at {offset} returned nothing before the end {end}");
        let mut buf = vec![0u8; s.len as usize];
        s.read_into(&mut buf).expect("pread");
        let sets = decode(&buf);
        let last = sets.last().and_then(|s| s.records.last()).map(|r| r.offset).expect("records");
        out.extend_from_slice(&buf);
        offset = last + 1;
    }
    out
}

/// Offsets of every record in the log, in order.
pub fn all_offsets(log: &Log) -> Vec<i64> {
    let bytes = read_all(log, log.log_start_offset().0);
    decode(&bytes).iter().flat_map(|s| s.records.iter().map(|r| r.offset)).collect()
}

/// A record for the hand-built encoder: (timestamp delta, offset delta, key, value).
pub struct RawRecord<'a> {
    pub ts_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Hand-built RecordBatch v2, independent of both the engine and kafka-protocol.
/// `last_offset_delta`/`count` default to the records given; attributes as passed.
pub fn hand_batch(
    recs: &[RawRecord<'_>],
    base_ts: i64,
    attributes: i16,
    producer: (i64, i16, i32),
) -> Vec<u8> {
    let mut body = Vec::new();
    for r in recs {
        let mut rec = vec![0u8]; // attributes
        put_varlong(&mut rec, r.ts_delta);
        put_varlong(&mut rec, i64::from(r.offset_delta));
        put_bytes(&mut rec, r.key);
        put_bytes(&mut rec, r.value);
        put_varlong(&mut rec, 0); // headers
        put_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let max_ts = base_ts + recs.iter().map(|r| r.ts_delta).max().unwrap_or(0);
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&((recs.len() as i32) - 1).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&producer.0.to_be_bytes());
    b.extend_from_slice(&producer.1.to_be_bytes());
    b.extend_from_slice(&producer.2.to_be_bytes());
    b.extend_from_slice(&(recs.len() as i32).to_be_bytes());
    b.extend_from_slice(&body);
    fix_crc(&mut b);
    b
}

/// Recomputes the CRC-32C of a single batch after a test edited CRC-covered bytes.
pub fn fix_crc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

pub fn simple_records(n: usize) -> Vec<(i64, i32, Vec<u8>)> {
    (0..n).map(|i| (i as i64, i as i32, vec![b'x'; 8])).collect()
}

pub fn hand_simple(n: usize, base_ts: i64) -> Vec<u8> {
    let vals = simple_records(n);
    let recs: Vec<RawRecord<'_>> = vals
        .iter()
        .map(|(ts, off, v)| RawRecord { ts_delta: *ts, offset_delta: *off, key: None, value: Some(v) })
        .collect();
    hand_batch(&recs, base_ts, 0, (-1, -1, -1))
}

/// The Kafka error code a broker answers for `e` (as `riptide-server` maps it), written out
/// independently so the tests check the wire numbers clients act on.
pub fn kafka_code(e: &LogError) -> i16 {
    match e {
        LogError::OffsetOutOfRange { .. } => 1,
        LogError::CorruptMessage(_) => 2,
        LogError::MessageTooLarge { .. } => 10,
        LogError::InvalidTimestamp(_) | LogError::InvalidRecordTimestamps(_) => 32,
        LogError::InvalidRequest(_) => 42,
        LogError::OutOfOrderSequence { .. } => 45,
        LogError::InvalidProducerEpoch { .. } => 47,
        LogError::CoordinatorFenced { .. } => 52,
        LogError::Storage(_) | LogError::Poisoned(_) | LogError::Io(_) => 56,
        LogError::InvalidRecord(_) | LogError::InvalidRecords(_) => 87,
    }
}
