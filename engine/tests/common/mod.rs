//! Shared test helpers: batches built with the independent `kafka-protocol` encoder,
//! decoding of engine output with its decoder, temp directories and whole-log reads.
#![allow(dead_code)]

use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, RecordSet,
    TimestampType,
};
use riptide_engine::{IoBackend, Log, LogConfig};

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
                sequence: if seq < 0 { -1 } else { seq + i as i32 },
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
    while offset < end {
        let s = log.read(offset, 1 << 20, i64::MAX, true).expect("read");
        assert!(s.len > 0, "read at {offset} returned nothing before the end {end}");
        let mut buf = vec![0u8; s.len as usize];
        s.file.read_exact_at(&mut buf, s.position).expect("pread");
        let sets = decode(&buf);
        let last = sets.last().and_then(|s| s.records.last()).map(|r| r.offset).expect("records");
        out.extend_from_slice(&buf);
        offset = last + 1;
    }
    out
}

/// Offsets of every record in the log, in order.
pub fn all_offsets(log: &Log) -> Vec<i64> {
    let bytes = read_all(log, log.log_start_offset());
    decode(&bytes).iter().flat_map(|s| s.records.iter().map(|r| r.offset)).collect()
}
