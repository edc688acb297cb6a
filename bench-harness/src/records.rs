//! RecordBatch v2 on the harness's hot path, written and read without building a record
//! object per message. The shared client (`riptide_client::batch`) goes through
//! kafka-protocol's `Record` type, which allocates a header map and clones per record: right
//! for the CLI, too slow for a producer that must reach a million 100-byte messages per second
//! on one core. Here a producer appends records straight into the bytes that become the
//! Produce request (the batch header is reserved in front and filled in at the end), and a
//! consumer walks fetched batches and hands each record's value to a closure, borrowing it.
//!
//! Records carry an optional key (see `keys`) and no headers, timestamp delta 0 (the batch's CreateTime is the
//! first message's wall clock); the value is the stamped message (see `payload`).
//! Varints, codecs and the header are the shared client's (`riptide_client::batch`).

use bytes::{BufMut, Bytes, BytesMut};
use riptide_client::batch::{
    compress_records, decompress_records, get_varint, put_varint, varint_len, write_header,
    BATCH_HEADER_BYTES,
};
use riptide_client::Compression;

use crate::payload::put_message;

/// Encoded size of one record (length prefix included) with a key of `key_bytes` (`None`:
/// null) and a value of `value_bytes`.
pub fn record_bytes(offset_delta: u32, key_bytes: Option<usize>, value_bytes: usize) -> usize {
    let body = body_bytes(offset_delta, key_bytes, value_bytes);
    varint_len(body as i64) + body
}

fn body_bytes(offset_delta: u32, key_bytes: Option<usize>, value_bytes: usize) -> usize {
    let key = key_bytes.map_or(1, |k| varint_len(k as i64) + k);
    // attributes, timestamp delta 0, offset delta, key, value length, value, 0 headers
    1 + 1 + varint_len(i64::from(offset_delta)) + key + varint_len(value_bytes as i64) + value_bytes + 1
}

/// One batch being filled; `finish` turns it into RecordBatch v2 bytes for a Produce request.
pub struct BatchBuilder {
    /// The header's room, then the records (uncompressed).
    buf: BytesMut,
    count: u32,
    base_timestamp_ms: i64,
    compression: Compression,
}

impl BatchBuilder {
    pub fn new(compression: Compression, capacity_bytes: usize) -> BatchBuilder {
        let mut buf = BytesMut::with_capacity(BATCH_HEADER_BYTES + capacity_bytes);
        buf.put_bytes(0, BATCH_HEADER_BYTES);
        BatchBuilder { buf, count: 0, base_timestamp_ms: 0, compression }
    }

    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Uncompressed bytes so far, header included.
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Appends a record keyed `key` whose value is `template` stamped with the run tag and
    /// intended time; `now_ms` (wall clock) is used by the first record only, as the batch's
    /// timestamp.
    pub fn push(&mut self, key: Option<&[u8]>, template: &[u8], run_tag: u64, intended_ns: u64, now_ms: i64) {
        if self.count == 0 {
            self.base_timestamp_ms = now_ms;
        }
        let body = body_bytes(self.count, key.map(<[u8]>::len), template.len());
        self.buf.reserve(body + 5);
        put_varint(&mut self.buf, body as i64);
        self.buf.put_u8(0); // attributes
        self.buf.put_u8(0); // timestamp delta 0
        put_varint(&mut self.buf, i64::from(self.count));
        match key {
            None => self.buf.put_u8(1), // key length -1 (null), zigzag
            Some(k) => {
                put_varint(&mut self.buf, k.len() as i64);
                self.buf.put_slice(k);
            }
        }
        put_varint(&mut self.buf, template.len() as i64);
        put_message(&mut self.buf, template, run_tag, intended_ns);
        self.buf.put_u8(0); // no headers
        self.count += 1;
    }

    /// The finished batch; the builder is empty again (its buffer is handed over, so the next
    /// batch allocates anew: the Produce request owns these bytes until it is answered).
    pub fn finish(&mut self, capacity_bytes: usize) -> Result<Bytes, String> {
        assert!(self.count > 0, "finish needs at least one record");
        let fresh = BatchBuilder::new(self.compression, capacity_bytes);
        let mut buf = std::mem::replace(&mut self.buf, fresh.buf);
        let count = std::mem::take(&mut self.count);
        if self.compression != Compression::None {
            buf =
                compress_records(&buf[BATCH_HEADER_BYTES..], self.compression).map_err(|e| e.to_string())?;
        }
        write_header(&mut buf, count, self.base_timestamp_ms, self.base_timestamp_ms, self.compression);
        Ok(buf.freeze())
    }
}

/// What a walk over fetched record bytes found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// One past the last offset of the last complete batch (control batches included).
    pub next_offset: Option<i64>,
    pub records: u64,
    /// Value bytes of those records.
    pub value_bytes: u64,
}

/// Walks the complete batches in `bytes` (a truncated last batch is left for the next fetch)
/// and calls `each(value)` for every record at or after `from_offset` in data batches.
pub fn scan_batches(bytes: &Bytes, from_offset: i64, mut each: impl FnMut(&[u8])) -> Result<Scan, String> {
    let mut scan = Scan::default();
    let mut batches = riptide_format::whole_batches(bytes);
    while let Some(next) = batches.next() {
        let (header, batch) = next.map_err(|e| e.to_string())?;
        let base = header.base_offset;
        if header.magic != riptide_format::MAGIC_V2 {
            return Err(format!("batch at offset {base}: magic {} (only v2)", header.magic));
        }
        scan.next_offset = Some(header.next_offset());
        if header.is_control() {
            continue; // control batch
        }
        let end = batches.position();
        let records = bytes.slice(end - batch.len() + BATCH_HEADER_BYTES..end);
        let records = decompress_records(records, i16::from(header.codec()))?;
        walk_records(&records, base, header.records_count, from_offset, &mut scan, &mut each)
            .map_err(|e| format!("batch at offset {base}: {e}"))?;
    }
    Ok(scan)
}

fn walk_records(
    buf: &[u8],
    base: i64,
    count: i32,
    from_offset: i64,
    scan: &mut Scan,
    each: &mut impl FnMut(&[u8]),
) -> Result<(), String> {
    let mut at = 0usize;
    for _ in 0..count.max(0) {
        let length = get_varint(buf, &mut at)?;
        let end = at.checked_add(usize::try_from(length).map_err(|_| "negative record length")?);
        let end = end.filter(|e| *e <= buf.len()).ok_or("record longer than its batch")?;
        let mut p = at + 1; // attributes
        get_varint(buf, &mut p)?; // timestamp delta
        let offset = base + get_varint(buf, &mut p)?;
        let key = get_varint(buf, &mut p)?;
        p += usize::try_from(key.max(0)).map_err(|_| "key length")?;
        let value = get_varint(buf, &mut p)?;
        if value >= 0 && offset >= from_offset {
            let v = buf.get(p..p + value as usize).ok_or("value longer than its record")?;
            scan.records += 1;
            scan.value_bytes += v.len() as u64;
            each(v);
        }
        at = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    use crate::payload::{read_stamp, template};
    use crate::workload::Payload;

    #[test]
    fn batches_read_back_with_the_reference_decoder_and_ours() {
        let t = template(&Payload::Random, 100, 1).expect("template");
        for compression in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let compression: Compression = compression.parse().expect("codec");
            let mut b = BatchBuilder::new(compression, 1 << 16);
            // Every third record keyed, the rest keyless.
            let key = |i: u64| i.is_multiple_of(3).then_some(b"key-abcdef".as_slice());
            for i in 0..300u64 {
                b.push(key(i), &t, 9, 1_000 + i, 1_700_000_000_000);
            }
            assert_eq!(
                b.size_bytes(),
                BATCH_HEADER_BYTES
                    + (0..300u32)
                        .map(|i| record_bytes(i, key(i.into()).map(<[u8]>::len), 100))
                        .sum::<usize>()
            );
            let bytes = b.finish(1 << 16).expect("finish");
            assert!(b.is_empty(), "builder reset");
            // kafka-protocol's decoder checks the CRC and the record layout.
            let sets = RecordBatchDecoder::decode_all(&mut bytes.clone()).expect("reference decoder");
            assert_eq!(sets.len(), 1);
            let records = &sets[0].records;
            assert_eq!(records.len(), 300);
            assert_eq!(records[299].offset, 299);
            assert_eq!(records[0].timestamp, 1_700_000_000_000);
            assert_eq!(records[0].key.as_deref(), Some(b"key-abcdef".as_slice()));
            assert!(records[1].key.is_none() && records[0].headers.is_empty());
            // Ours sees the same values, and skips records below `from_offset`.
            let mut stamps = Vec::new();
            let scan =
                scan_batches(&bytes, 250, |v| stamps.push(read_stamp(v, 9).expect("stamped"))).expect("scan");
            assert_eq!(scan, Scan { next_offset: Some(300), records: 50, value_bytes: 5000 });
            assert_eq!(stamps, (1_250..1_300).collect::<Vec<u64>>());
        }
    }

    #[test]
    fn scanning_stops_at_a_truncated_batch_and_refuses_garbage() {
        let t = template(&Payload::Zeros, 20, 0).expect("template");
        let mut b = BatchBuilder::new(Compression::None, 1024);
        b.push(None, &t, 1, 5, 0);
        let one = b.finish(1024).expect("finish");
        let mut two = BytesMut::from(&one[..]);
        two.extend_from_slice(&one[..one.len() - 3]);
        let scan = scan_batches(&two.freeze(), 0, |_| {}).expect("scan");
        assert_eq!((scan.records, scan.next_offset), (1, Some(1)));
        let mut bad = BytesMut::from(&one[..]);
        bad[16] = 1;
        assert!(scan_batches(&bad.freeze(), 0, |_| {}).is_err());
        assert_eq!(scan_batches(&Bytes::new(), 0, |_| {}), Ok(Scan::default()));
    }
}
