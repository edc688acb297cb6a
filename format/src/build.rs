//! Writing RecordBatch v2: the record encoding (zigzag varints, length-prefixed fields) and the
//! header with its CRC. Every place that builds a batch (the client's producer, the bench's
//! load generator, the group coordinator's `__consumer_offsets` writes) and every place that
//! rewrites one (sealing at rest) goes through here, so the layout is written in one place.
//!
//! The records of a batch are appended behind `HEADER_BYTES` of room (`put_header_room`), then
//! compressed or not by the caller, then `write_header` fills the header in place, its
//! `batchLength` from the slice's length and its CRC last.

use bytes::BufMut;

use crate::{at, HEADER_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2};

/// The header fields a writer chooses (length, magic and CRC follow from the bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchFields {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchFields {
    /// A client's batch of `count` records (offsets 0..count, the broker assigns the real
    /// ones): no producer id, no sequence, no leader epoch.
    pub fn plain(count: i32, base_timestamp: i64, max_timestamp: i64, attributes: i16) -> BatchFields {
        assert!(count > 0, "a batch holds at least one record");
        BatchFields {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes,
            last_offset_delta: count - 1,
            base_timestamp,
            max_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: count,
        }
    }
}

/// Appends the header's room (zeros) that `write_header` fills once the records follow it.
pub fn put_header_room(out: &mut impl BufMut) {
    out.put_bytes(0, HEADER_BYTES);
}

/// Fills the header at the front of `batch` (the whole batch: header then records) and its CRC.
pub fn write_header(batch: &mut [u8], f: &BatchFields) {
    assert!(batch.len() >= HEADER_BYTES, "a batch is at least its header");
    let batch_length = i32::try_from(batch.len() - LOG_OVERHEAD_BYTES).expect("a batch below 2 GiB");
    let mut h = &mut batch[..HEADER_BYTES];
    h.put_i64(f.base_offset);
    h.put_i32(batch_length);
    h.put_i32(f.partition_leader_epoch);
    h.put_i8(MAGIC_V2);
    h.put_u32(0); // the CRC, below
    h.put_i16(f.attributes);
    h.put_i32(f.last_offset_delta);
    h.put_i64(f.base_timestamp);
    h.put_i64(f.max_timestamp);
    h.put_i64(f.producer_id);
    h.put_i16(f.producer_epoch);
    h.put_i32(f.base_sequence);
    h.put_i32(f.records_count);
    update_crc(batch);
}

/// The CRC-32C a batch should carry: over attributes..end (so base offset, length and leader
/// epoch can be patched without it).
pub fn crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[at::ATTRIBUTES..])
}

/// Rewrites the batch's CRC after its covered bytes changed.
pub fn update_crc(batch: &mut [u8]) {
    let c = crc(batch);
    batch[at::CRC..at::CRC + 4].copy_from_slice(&c.to_be_bytes());
}

/// Rewrites `batchLength` from the slice's length, then the CRC (a batch whose records grew
/// or shrank in place).
pub fn update_length_and_crc(batch: &mut [u8]) {
    let len = i32::try_from(batch.len() - LOG_OVERHEAD_BYTES).expect("a batch below 2 GiB");
    batch[at::BATCH_LENGTH..at::BATCH_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
    update_crc(batch);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Bytes of `v` as a zigzag varint.
pub fn varint_len(v: i64) -> usize {
    let z = zigzag(v);
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `v` as a zigzag varint (protobuf's sint64, which RecordBatch v2 uses).
pub fn put_varint(out: &mut impl BufMut, v: i64) {
    let mut z = zigzag(v);
    while z >= 0x80 {
        out.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

/// Reads a zigzag varint at `*at`, moving `*at` past it.
pub fn get_varint(buf: &[u8], at: &mut usize) -> Result<i64, &'static str> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or("record cut short")?;
        *at += 1;
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    Err("varint longer than 10 bytes")
}

/// Bytes of a nullable length-prefixed field (key, value, header key or value).
pub fn field_len(b: Option<&[u8]>) -> usize {
    b.map_or(1, |b| varint_len(b.len() as i64) + b.len())
}

/// Appends a nullable length-prefixed field (-1 for null).
pub fn put_field(out: &mut impl BufMut, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.put_slice(b);
        }
    }
}

/// One record's content.
#[derive(Clone, Copy, Debug)]
pub struct RecordFields<'a, H> {
    pub offset_delta: i64,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// (key, value) pairs in order; a key may repeat.
    pub headers: H,
}

/// Appends keyless records without headers holding `values`, at offset deltas 0, 1, ... and
/// timestamp delta 0 (a batch of `plain` fields around them is a simple producer's batch).
pub fn put_keyless_records<'a>(out: &mut impl BufMut, values: impl IntoIterator<Item = &'a [u8]>) {
    for (i, value) in values.into_iter().enumerate() {
        put_record(
            out,
            RecordFields {
                offset_delta: i as i64,
                timestamp_delta: 0,
                key: None,
                value: Some(value),
                headers: std::iter::empty(),
            },
        );
    }
}

/// Appends one record (its length prefix first).
pub fn put_record<'a, H>(out: &mut impl BufMut, r: RecordFields<'a, H>)
where
    H: Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + Clone,
{
    let (header_count, headers_len) = r
        .headers
        .clone()
        .fold((0usize, 0usize), |(n, len), (k, v)| (n + 1, len + field_len(Some(k)) + field_len(v)));
    let body = 1
        + varint_len(r.timestamp_delta)
        + varint_len(r.offset_delta)
        + field_len(r.key)
        + field_len(r.value)
        + varint_len(header_count as i64)
        + headers_len;
    put_varint(out, body as i64);
    out.put_u8(0); // record attributes: unused in v2
    put_varint(out, r.timestamp_delta);
    put_varint(out, r.offset_delta);
    put_field(out, r.key);
    put_field(out, r.value);
    put_varint(out, header_count as i64);
    for (k, v) in r.headers {
        put_field(out, Some(k));
        put_field(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchHeader;

    #[test]
    fn varints_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 64, 300, -300, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut at = 0;
            assert_eq!(get_varint(&out, &mut at), Ok(v));
            assert_eq!(at, out.len());
        }
        assert!(get_varint(&[0x80; 11], &mut 0).is_err());
        assert!(get_varint(&[0x80], &mut 0).is_err());
    }

    #[test]
    fn a_built_batch_parses_with_its_fields_and_crc() {
        let mut b = Vec::new();
        put_header_room(&mut b);
        let headers = [(&b"trace"[..], Some(&b"1"[..])), (&b"trace"[..], None)];
        for i in 0..3 {
            put_record(
                &mut b,
                RecordFields {
                    offset_delta: i,
                    timestamp_delta: i * 10,
                    key: Some(b"k"),
                    value: (i != 1).then_some(&b"value"[..]),
                    headers: headers.iter().copied(),
                },
            );
        }
        write_header(&mut b, &BatchFields::plain(3, 1_000, 1_020, 0));
        let h = BatchHeader::parse(&b).expect("header");
        assert_eq!(h.size_bytes(), Some(b.len()));
        assert_eq!((h.base_offset, h.last_offset_delta, h.records_count), (0, 2, 3));
        assert_eq!(
            (h.base_timestamp, h.max_timestamp, h.producer_id, h.base_sequence),
            (1_000, 1_020, -1, -1)
        );
        assert_eq!(h.crc, crc(&b));
        // The first record: length, attributes, deltas, key, value, two headers.
        let mut at = HEADER_BYTES;
        let len = get_varint(&b, &mut at).expect("len") as usize;
        let end = at + len;
        at += 1;
        assert_eq!(get_varint(&b, &mut at), Ok(0));
        assert_eq!(get_varint(&b, &mut at), Ok(0));
        assert_eq!(get_varint(&b, &mut at), Ok(1));
        at += 1;
        assert_eq!(get_varint(&b, &mut at), Ok(5));
        at += 5;
        assert_eq!(get_varint(&b, &mut at), Ok(2));
        assert!(end < b.len());
        b[HEADER_BYTES + 3] ^= 1;
        assert_ne!(crc(&b), h.crc);
        update_crc(&mut b);
        assert_eq!(BatchHeader::parse(&b).expect("header").crc, crc(&b));
    }
}
