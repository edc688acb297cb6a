//! RecordBatch v2 in both directions, written and read here rather than through
//! kafka-protocol's `Record` type, which keys headers by name and so would drop a repeated
//! header (Kafka headers are a list; a record may carry `trace` twice). Compression goes
//! through kafka-protocol's codecs (gzip/snappy/lz4/zstd), the CRC is CRC-32C.
//!
//! Produce side: records become one batch (offsets 0..n, no producer id). Fetch side: a
//! partition's record bytes are cut into whole batches by their headers (a truncated trailing
//! batch, which Fetch may return, is left for the next fetch), control batches are skipped,
//! and each data batch is decoded. The varint, codec and header helpers are public for the
//! bench harness, which writes batches on its hot path without a record object per message.

use riptide_model::Offset;
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{self as codec, Compressor, Decompressor};
use riptide_format::build::{self, BatchFields, RecordFields};

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
    pub offset: riptide_model::Offset,
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
    /// The codec id in a batch's attributes.
    pub fn codec_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
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

pub use riptide_format::build::{get_varint, put_varint, varint_len};

/// A fresh buffer: header room, then `records` compressed with `compression` (not `None`).
pub fn compress_records(records: &[u8], compression: Compression) -> Result<BytesMut> {
    let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + records.len() / 2 + 64);
    out.put_bytes(0, BATCH_HEADER_BYTES);
    let fill = |tmp: &mut BytesMut| {
        tmp.put_slice(records);
        Ok(())
    };
    let result = match compression {
        Compression::None => {
            out.put_slice(records);
            Ok(())
        }
        Compression::Gzip => codec::Gzip::compress(&mut out, fill),
        Compression::Snappy => codec::Snappy::compress(&mut out, fill),
        Compression::Lz4 => codec::Lz4::compress(&mut out, fill),
        Compression::Zstd => codec::Zstd::compress(&mut out, fill),
    };
    result.map_err(|e| Error::Invalid(format!("{} compression failed: {e}", compression.name())))?;
    Ok(out)
}

/// The records section of a batch, uncompressed (`codec_id` from its attributes).
pub fn decompress_records(records: Bytes, codec_id: i16) -> std::result::Result<Bytes, String> {
    let mut input = records;
    let take = |b: &mut Bytes| Ok(std::mem::take(b));
    let result = match codec_id {
        0 => return Ok(input),
        1 => codec::Gzip::decompress(&mut input, take),
        2 => codec::Snappy::decompress(&mut input, take),
        3 => codec::Lz4::decompress(&mut input, take),
        4 => codec::Zstd::decompress(&mut input, take),
        other => return Err(format!("unknown compression codec {other}")),
    };
    result.map_err(|e| format!("decompression failed: {e}"))
}

/// Fills the header room at the front of `buf` (records already behind it) for a plain,
/// non-idempotent batch of `count` records, and its CRC.
pub fn write_header(
    buf: &mut BytesMut,
    count: u32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    compression: Compression,
) {
    assert!(buf.len() >= BATCH_HEADER_BYTES && count > 0, "a batch is a header and at least one record");
    let fields =
        BatchFields::plain(count as i32, base_timestamp_ms, max_timestamp_ms, compression.codec_bits());
    riptide_format::build::write_header(buf, &fields);
}

/// Appends one RecordBatch v2 holding `records` (offsets 0..n, no producer id) to `out`.
pub fn encode_batch(out: &mut BytesMut, records: &[ProduceRecord], compression: Compression) -> Result<()> {
    if records.is_empty() {
        return Err(Error::Invalid("a record batch needs at least one record".into()));
    }
    let count = u32::try_from(records.len())
        .ok()
        .filter(|n| *n <= i32::MAX as u32)
        .ok_or_else(|| Error::Invalid("too many records for one batch".into()))?;
    let base_ts = records[0].timestamp_ms;
    let max_ts = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(base_ts);
    let mut buf = BytesMut::with_capacity(BATCH_HEADER_BYTES + 64 * records.len());
    build::put_header_room(&mut buf);
    for (i, r) in records.iter().enumerate() {
        build::put_record(
            &mut buf,
            RecordFields {
                offset_delta: i as i64,
                timestamp_delta: r.timestamp_ms.wrapping_sub(base_ts),
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                headers: r.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_deref())),
            },
        );
    }
    if compression != Compression::None {
        buf = compress_records(&buf[BATCH_HEADER_BYTES..], compression)?;
    }
    write_header(&mut buf, count, base_ts, max_ts, compression);
    out.extend_from_slice(&buf);
    Ok(())
}

/// Records fetched from one partition, and where the next fetch should start.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Vec<ConsumedRecord>,
    /// One past the last offset of the last complete batch, if any batch was complete.
    pub next_offset: Option<riptide_model::Offset>,
}

/// Decodes the whole batches in `bytes`, skipping records below `from_offset` (Fetch answers
/// from the start of the batch holding the requested offset) and control batches.
pub fn decode_batches(bytes: Bytes, from_offset: riptide_model::Offset) -> Result<Decoded> {
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
        out.next_offset = Some(riptide_model::Offset(header.next_offset()));
        if header.is_control() {
            continue; // control batch (transaction marker): not user data
        }
        let end = batches.position();
        let records = bytes.slice(end - batch.len() + BATCH_HEADER_BYTES..end);
        let records = decompress_records(records, i16::from(header.codec()))
            .map_err(|e| bad_batch(header.base_offset, e))?;
        decode_records(&records, &header, from_offset.0, &mut out.records)
            .map_err(|e| bad_batch(header.base_offset, e.to_string()))?;
    }
    Ok(out)
}

fn take_bytes(records: &Bytes, at: &mut usize) -> std::result::Result<Option<Bytes>, &'static str> {
    let len = get_varint(records, at)?;
    if len < 0 {
        return Ok(None);
    }
    let end =
        at.checked_add(len as usize).filter(|e| *e <= records.len()).ok_or("field longer than its record")?;
    let b = records.slice(*at..end);
    *at = end;
    Ok(Some(b))
}

fn decode_records(
    records: &Bytes,
    header: &riptide_format::BatchHeader,
    from_offset: i64,
    out: &mut Vec<ConsumedRecord>,
) -> std::result::Result<(), &'static str> {
    let log_append_time = header.is_log_append_time();
    let mut at = 0usize;
    for _ in 0..header.records_count.max(0) {
        let length = get_varint(records, &mut at)?;
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|e| *e <= records.len())
            .ok_or("record longer than its batch")?;
        let record = records.slice(..end);
        let mut p = at + 1; // attributes
        let ts_delta = get_varint(&record, &mut p)?;
        let offset = header.base_offset + get_varint(&record, &mut p)?;
        let key = take_bytes(&record, &mut p)?;
        let value = take_bytes(&record, &mut p)?;
        let n_headers = get_varint(&record, &mut p)?;
        if n_headers < 0 || n_headers as usize > record.len() {
            return Err("bad header count");
        }
        let mut headers = Vec::with_capacity(n_headers as usize);
        for _ in 0..n_headers {
            let k = take_bytes(&record, &mut p)?.ok_or("null header key")?;
            let k = String::from_utf8(k.to_vec()).map_err(|_| "header key is not UTF-8")?;
            headers.push((k, take_bytes(&record, &mut p)?));
        }
        if offset >= from_offset {
            out.push(ConsumedRecord {
                offset: Offset(offset),
                timestamp_ms: if log_append_time {
                    header.max_timestamp
                } else {
                    header.base_timestamp.wrapping_add(ts_delta)
                },
                log_append_time,
                key,
                value,
                headers,
            });
        }
        at = end;
    }
    Ok(())
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
    use kafka_protocol::records::RecordBatchDecoder;

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
            assert_eq!(i16::from(header.codec()), compression.codec_bits());
            // base sequence -1, producer id -1: a plain, non-idempotent batch.
            assert_eq!((header.base_sequence, header.producer_id), (-1, -1));
            // One batch, read by kafka-protocol's own decoder...
            let sets = RecordBatchDecoder::decode_all(&mut buf.clone().freeze()).expect("decode");
            assert_eq!(sets.len(), 1, "{codec}: one batch");
            assert_eq!(sets[0].records.len(), 20);
            // ... and by ours, with the same contents.
            let decoded = decode_batches(buf.freeze(), Offset(0)).expect("decode");
            assert_eq!(decoded.next_offset, Some(Offset(20)));
            for (i, (got, want)) in decoded.records.iter().zip(&records).enumerate() {
                assert_eq!(got.offset, Offset(i as i64));
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
        let decoded = decode_batches(all.freeze(), Offset(101)).expect("decode");
        assert_eq!(
            decoded.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![Offset(101), Offset(102)]
        );
        assert_eq!(decoded.next_offset, Some(Offset(103)));
        assert!(decode_batches(Bytes::new(), Offset(0)).expect("empty").next_offset.is_none());
    }

    #[test]
    fn repeated_header_names_and_null_fields_survive() {
        let r = ProduceRecord {
            key: None,
            value: None,
            headers: vec![
                ("trace".into(), Some(Bytes::from_static(b"first"))),
                ("other".into(), None),
                ("trace".into(), Some(Bytes::from_static(b"second"))),
            ],
            timestamp_ms: 5,
        };
        let mut buf = BytesMut::new();
        encode_batch(&mut buf, std::slice::from_ref(&r), Compression::Zstd).expect("encode");
        let got = decode_batches(buf.freeze(), Offset(0)).expect("decode");
        assert_eq!(got.records.len(), 1);
        assert_eq!(got.records[0].headers, r.headers);
        assert_eq!((got.records[0].key.as_ref(), got.records[0].value.as_ref()), (None, None));
    }

    #[test]
    fn varints_are_zigzag_leb128() {
        for (v, len) in [(0i64, 1), (-1, 1), (63, 1), (64, 2), (-65, 2), (8191, 2), (8192, 3), (i64::MAX, 10)]
        {
            let mut out = BytesMut::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), len, "{v}");
            assert_eq!(varint_len(v), len, "{v}");
            let mut at = 0;
            assert_eq!(get_varint(&out, &mut at), Ok(v));
            assert_eq!(at, len);
        }
        assert!(get_varint(&[0x80; 11], &mut 0).is_err());
    }

    #[test]
    fn garbage_records_are_an_error_not_a_panic() {
        let mut buf = BytesMut::new();
        encode_batch(&mut buf, &sample(3), Compression::None).expect("encode");
        for cut in [62usize, 70, 80] {
            let mut bad = buf.clone();
            // Corrupt one record length byte and keep the batch length: decoding must refuse.
            bad[cut] = 0x7f;
            let _ = decode_batches(bad.freeze(), Offset(0));
        }
    }

    #[test]
    fn empty_batches_and_unknown_codecs_are_refused() {
        assert!(encode_batch(&mut BytesMut::new(), &[], Compression::None).is_err());
        assert!("brotli".parse::<Compression>().is_err());
    }
}
