//! RecordBatch v2 in both directions. Produce side: records become one batch through
//! kafka-protocol's `RecordBatchEncoder` (compression none/gzip/snappy/lz4/zstd, CRC-32C).
//! Fetch side: a partition's record bytes are cut into whole batches by their headers (a
//! truncated trailing batch, which Fetch may return, is left for the next fetch), control
//! batches are skipped, and each data batch is decoded by kafka-protocol's decoder.
//!
//! Known limit: the crate's record type keys headers by name, so a record carrying the same
//! header key twice is read back with the last value only.

use std::str::FromStr;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    self, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::error::{Error, Result};

/// A record to produce. Timestamps are milliseconds since the epoch (CreateTime).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp_ms: i64,
}

/// A record read back from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    /// True when the broker stamped the time (LogAppendTime), false for CreateTime.
    pub log_append_time: bool,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Batch compression codec (the attributes' low three bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn to_protocol(self) -> records::Compression {
        match self {
            Compression::None => records::Compression::None,
            Compression::Gzip => records::Compression::Gzip,
            Compression::Snappy => records::Compression::Snappy,
            Compression::Lz4 => records::Compression::Lz4,
            Compression::Zstd => records::Compression::Zstd,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Compression> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            other => {
                Err(Error::Invalid(format!("unknown compression {other:?} (none, gzip, snappy, lz4, zstd)")))
            }
        }
    }
}

/// Size of the RecordBatch v2 header, up to and including the record count.
pub const BATCH_HEADER_BYTES: usize = riptide_format::HEADER_BYTES;

/// Appends one RecordBatch v2 holding `records` (offsets 0..n, no producer id) to `out`.
pub fn encode_batch(out: &mut BytesMut, records: &[ProduceRecord], compression: Compression) -> Result<()> {
    if records.is_empty() {
        return Err(Error::Invalid("a record batch needs at least one record".into()));
    }
    let converted: Vec<Record> = records.iter().enumerate().map(|(i, r)| to_protocol_record(i, r)).collect();
    let options = RecordEncodeOptions { version: 2, compression: compression.to_protocol() };
    RecordBatchEncoder::encode(out, &converted, &options)
        .map_err(|e| Error::Invalid(format!("cannot encode record batch: {e}")))
}

fn to_protocol_record(index: usize, r: &ProduceRecord) -> Record {
    let mut headers = IndexMap::with_capacity(r.headers.len());
    for (k, v) in &r.headers {
        headers.insert(StrBytes::from_string(k.clone()), v.clone());
    }
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: records::NO_PARTITION_LEADER_EPOCH,
        producer_id: records::NO_PRODUCER_ID,
        producer_epoch: records::NO_PRODUCER_EPOCH,
        timestamp_type: TimestampType::Creation,
        offset: index as i64,
        // The encoder splits batches where `offset - sequence` changes and derives the base
        // sequence from the first record; `offset - 1` keeps one batch with base sequence -1
        // (no idempotence).
        sequence: index as i32 - 1,
        timestamp: r.timestamp_ms,
        key: r.key.clone(),
        value: r.value.clone(),
        headers,
    }
}

/// Records fetched from one partition, and where the next fetch should start.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Vec<ConsumedRecord>,
    /// One past the last offset of the last complete batch, if any batch was complete.
    pub next_offset: Option<i64>,
}

/// Decodes the whole batches in `bytes`, skipping records below `from_offset` (Fetch answers
/// from the start of the batch holding the requested offset) and control batches.
pub fn decode_batches(bytes: Bytes, from_offset: i64) -> Result<Decoded> {
    let mut out = Decoded::default();
    let mut batches = riptide_format::whole_batches(&bytes);
    while let Some(next) = batches.next() {
        let (header, batch) =
            next.map_err(|e| bad_batch(e.base_offset, format!("batch length {}", e.batch_length)))?;
        if header.magic != riptide_format::MAGIC_V2 {
            return Err(bad_batch(
                header.base_offset,
                format!("magic {} (only v2 is supported)", header.magic),
            ));
        }
        out.next_offset = Some(header.next_offset());
        if header.is_control() {
            continue; // control batch (transaction marker): not user data
        }
        let mut batch = bytes.slice(batches.position() - batch.len()..batches.position());
        let set = RecordBatchDecoder::decode(&mut batch)
            .map_err(|e| bad_batch(header.base_offset, e.to_string()))?;
        out.records.extend(set.records.into_iter().filter(|r| r.offset >= from_offset).map(from_protocol));
    }
    Ok(out)
}

fn from_protocol(r: Record) -> ConsumedRecord {
    ConsumedRecord {
        offset: r.offset,
        timestamp_ms: r.timestamp,
        log_append_time: r.timestamp_type == TimestampType::LogAppend,
        key: r.key,
        value: r.value,
        headers: r.headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}

fn bad_batch(base_offset: i64, reason: String) -> Error {
    Error::Invalid(format!("corrupt record batch at offset {base_offset}: {reason}"))
}

/// Rewrites the base offset of every whole batch in `bytes`, for tests that stitch batches.
#[cfg(test)]
fn set_base_offset(bytes: &mut BytesMut, base: i64) {
    bytes[0..8].copy_from_slice(&base.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<ProduceRecord> {
        (0..n)
            .map(|i| ProduceRecord {
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("value number {i} {}", "x".repeat(i * 10)))),
                headers: vec![("h".into(), Some(Bytes::from_static(b"v"))), ("null".into(), None)],
                timestamp_ms: 1_700_000_000_000 + i as i64,
            })
            .collect()
    }

    #[test]
    fn batches_round_trip_through_the_decoder_for_every_codec() {
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let compression: Compression = codec.parse().expect("known codec");
            let records = sample(20);
            let mut buf = BytesMut::new();
            encode_batch(&mut buf, &records, compression).expect("encode");
            let header = riptide_format::BatchHeader::parse(&buf).expect("a header");
            assert_eq!(header.magic, 2, "magic");
            assert_eq!(i16::from(header.codec()), compression.to_protocol() as i16);
            // base sequence -1, producer id -1: a plain, non-idempotent batch.
            assert_eq!((header.base_sequence, header.producer_id), (-1, -1));
            // One batch, read by kafka-protocol's own decoder...
            let sets = RecordBatchDecoder::decode_all(&mut buf.clone().freeze()).expect("decode");
            assert_eq!(sets.len(), 1, "{codec}: one batch");
            assert_eq!(sets[0].records.len(), 20);
            // ... and by ours, with the same contents.
            let decoded = decode_batches(buf.freeze(), 0).expect("decode");
            assert_eq!(decoded.next_offset, Some(20));
            for (i, (got, want)) in decoded.records.iter().zip(&records).enumerate() {
                assert_eq!(got.offset, i as i64);
                assert_eq!(got.key, want.key);
                assert_eq!(got.value, want.value);
                assert_eq!(got.headers, want.headers);
                assert_eq!(got.timestamp_ms, want.timestamp_ms);
            }
        }
    }

    #[test]
    fn decoding_skips_earlier_offsets_and_stops_at_a_truncated_batch() {
        let mut first = BytesMut::new();
        encode_batch(&mut first, &sample(3), Compression::None).expect("encode");
        set_base_offset(&mut first, 100);
        let mut second = BytesMut::new();
        encode_batch(&mut second, &sample(2), Compression::Lz4).expect("encode");
        set_base_offset(&mut second, 103);
        let mut all = first.clone();
        all.extend_from_slice(&second[..second.len() - 5]);
        let decoded = decode_batches(all.freeze(), 101).expect("decode");
        assert_eq!(decoded.records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![101, 102]);
        assert_eq!(decoded.next_offset, Some(103));
        assert!(decode_batches(Bytes::new(), 0).expect("empty").next_offset.is_none());
    }

    #[test]
    fn empty_batches_and_unknown_codecs_are_refused() {
        assert!(encode_batch(&mut BytesMut::new(), &[], Compression::None).is_err());
        assert!("brotli".parse::<Compression>().is_err());
    }
}
