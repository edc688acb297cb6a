//! `__transaction_state` records in Kafka's format (`TransactionLogKey` /
//! `TransactionLogValue` of apache/kafka's transaction-coordinator schemas). The key is
//! `version i16 = 0, transactionalId string`; the value, written at version 0: producerId
//! i64, producerEpoch i16, transactionTimeoutMs i32, transactionStatus i8, transactionPartitions
//! (nullable array of topic string + partition ids i32 array), transactionLastUpdateTimestampMs
//! i64, transactionStartTimestampMs i64. A null value is a tombstone (an expired id).
//! Version 1 (flexible: compact strings and arrays, tagged fields) is written for transactions
//! v2, whose state needs its tagged fields: PreviousProducerId (tag 0), NextProducerId (tag 1)
//! and ClientTransactionVersion (tag 2).
//!
//! A transactional id lives in partition `abs(javaHash(id)) % transaction.state.log.num.partitions`,
//! as in Kafka.

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{TxnMeta, TxnState};
use crate::coordinator::offsets_log::{put_string, put_uvarint, Reader};

pub const TXN_TOPIC: &str = "__transaction_state";
const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;
/// The flexible version, for what transactions v2 adds.
const VALUE_VERSION_FLEXIBLE: i16 = 1;
/// Partitions of one transaction at most (a bound on what decoding allocates).
pub const PARTITIONS_MAX: usize = 1 << 16;

pub use crate::coordinator::offsets_log::DecodeError;

pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::coordinator::offsets_log::partition_for(transactional_id, partitions)
}

pub fn key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(KEY_VERSION);
    put_string(&mut buf, transactional_id);
    buf.freeze()
}

pub fn value(m: &TxnMeta) -> Bytes {
    let flexible = m.tv2 || m.previous_producer_id >= 0 || m.next_producer_id >= 0;
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(if flexible { VALUE_VERSION_FLEXIBLE } else { VALUE_VERSION });
    buf.put_i64(m.producer_id);
    buf.put_i16(m.producer_epoch);
    buf.put_i32(m.timeout_ms);
    buf.put_i8(m.state.code());
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in &m.partitions {
        match topics.last_mut() {
            Some((last, ps)) if *last == t.as_str() => ps.push(*p),
            _ => topics.push((t.as_str(), vec![*p])),
        }
    }
    if flexible {
        put_uvarint(&mut buf, topics.len() as u64 + 1);
    } else {
        buf.put_i32(topics.len() as i32);
    }
    for (t, ps) in topics {
        if flexible {
            put_uvarint(&mut buf, t.len() as u64 + 1);
            buf.put_slice(t.as_bytes());
            put_uvarint(&mut buf, ps.len() as u64 + 1);
        } else {
            put_string(&mut buf, t);
            buf.put_i32(ps.len() as i32);
        }
        for p in ps {
            buf.put_i32(p);
        }
        if flexible {
            buf.put_u8(0); // no tagged fields
        }
    }
    buf.put_i64(m.last_update_ms);
    buf.put_i64(m.start_ms);
    if flexible {
        let mut tagged: Vec<(u64, Vec<u8>)> = Vec::new();
        if m.previous_producer_id >= 0 {
            tagged.push((0, m.previous_producer_id.to_be_bytes().to_vec()));
        }
        if m.next_producer_id >= 0 {
            tagged.push((1, m.next_producer_id.to_be_bytes().to_vec()));
        }
        if m.tv2 {
            tagged.push((2, 2i16.to_be_bytes().to_vec()));
        }
        put_uvarint(&mut buf, tagged.len() as u64);
        for (tag, data) in tagged {
            put_uvarint(&mut buf, tag);
            put_uvarint(&mut buf, data.len() as u64);
            buf.put_slice(&data);
        }
    }
    buf.freeze()
}

/// A flexible array's count (0: null), bounded as `count`.
fn compact_count(r: &mut Reader<'_>) -> Result<Option<usize>, DecodeError> {
    match r.uvarint()? {
        0 => Ok(None),
        n if n - 1 > PARTITIONS_MAX as u64 => Err(DecodeError::BadLength(n as i64)),
        n => Ok(Some(n as usize - 1)),
    }
}

/// A nullable array's count, bounded by what a transaction may hold.
fn count(r: &mut Reader<'_>) -> Result<Option<usize>, DecodeError> {
    let n = r.i32()?;
    if n == -1 {
        return Ok(None);
    }
    if n < 0 || n as usize > PARTITIONS_MAX {
        return Err(DecodeError::BadLength(n.into()));
    }
    Ok(Some(n as usize))
}

pub fn decode_key(bytes: &[u8]) -> Result<String, DecodeError> {
    let mut r = Reader::new(bytes);
    match r.i16()? {
        KEY_VERSION => r.string(),
        v => Err(DecodeError::UnsupportedVersion("TransactionLogKey", v)),
    }
}

pub fn decode_value(bytes: &[u8]) -> Result<TxnMeta, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if version != VALUE_VERSION && version != VALUE_VERSION_FLEXIBLE {
        return Err(DecodeError::UnsupportedVersion("TransactionLogValue", version));
    }
    let flexible = version == VALUE_VERSION_FLEXIBLE;
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = r.i8()?;
    let state = TxnState::from_code(status).ok_or(DecodeError::BadStatus(status))?;
    let mut partitions = std::collections::BTreeSet::new();
    let topics = if flexible { compact_count(&mut r)? } else { count(&mut r)? };
    for _ in 0..topics.unwrap_or(0) {
        let topic = if flexible { r.compact_string()? } else { r.string()? };
        let ids = if flexible { compact_count(&mut r)? } else { count(&mut r)? };
        for _ in 0..ids.unwrap_or(0) {
            if partitions.len() >= PARTITIONS_MAX {
                return Err(DecodeError::BadLength(PARTITIONS_MAX as i64));
            }
            partitions.insert((topic.clone(), r.i32()?));
        }
        if flexible {
            skip_tagged(&mut r, |_, _| Ok(()))?;
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    let (mut previous_producer_id, mut next_producer_id, mut tv2) = (-1, -1, false);
    if flexible {
        skip_tagged(&mut r, |tag, data| {
            let mut d = Reader::new(data);
            match tag {
                0 => previous_producer_id = d.i64()?,
                1 => next_producer_id = d.i64()?,
                2 => tv2 = d.i16()? >= 2,
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(TxnMeta {
        producer_id,
        producer_epoch,
        last_producer_epoch: -1,
        previous_producer_id,
        next_producer_id,
        tv2,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
        pending: false,
        completing: false,
    })
}

/// Reads a tagged-fields section, handing each (tag, data) to `on`.
fn skip_tagged(
    r: &mut Reader<'_>,
    mut on: impl FnMut(u64, &[u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let n = r.uvarint()?;
    if n > 64 {
        return Err(DecodeError::BadLength(n as i64));
    }
    for _ in 0..n {
        let tag = r.uvarint()?;
        let len = r.uvarint()? as usize;
        let data = r.take_slice(len)?;
        on(tag, data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_in_kafkas_layout() {
        let m = TxnMeta {
            producer_id: 4096,
            producer_epoch: 3,
            last_producer_epoch: -1,
            previous_producer_id: -1,
            next_producer_id: -1,
            tv2: false,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)]
                .into_iter()
                .collect(),
            start_ms: 100,
            last_update_ms: 200,
            pending: false,
            completing: false,
        };
        let v = value(&m);
        // version 0, producer id, epoch, timeout, status 1 (Ongoing), 2 topics.
        assert_eq!(&v[..2], &[0, 0]);
        assert_eq!(v[16], 1);
        assert_eq!(&v[17..21], &2i32.to_be_bytes());
        assert_eq!(decode_value(&v), Ok(m.clone()));
        assert_eq!(decode_key(&key("my-txn")), Ok("my-txn".to_string()));
        assert_eq!(&key("ab")[..], &[0, 0, 0, 2, b'a', b'b']);
        for n in 0..v.len() {
            assert!(decode_value(&v[..n]).is_err(), "truncated at {n}");
        }
        assert_eq!(decode_key(&[0, 1, 0, 0]), Err(DecodeError::UnsupportedVersion("TransactionLogKey", 1)));
        // Transactions v2 state: version 1 with its tagged fields.
        let v2 = TxnMeta { tv2: true, previous_producer_id: 7, next_producer_id: 9, ..m };
        let v = value(&v2);
        assert_eq!(&v[..2], &[0, 1]);
        assert_eq!(decode_value(&v), Ok(v2.clone()));
        for n in 0..v.len() {
            assert!(decode_value(&v[..n]).is_err(), "truncated at {n}");
        }
        let only_tv2 = TxnMeta { previous_producer_id: -1, next_producer_id: -1, ..v2 };
        assert_eq!(decode_value(&value(&only_tv2)), Ok(only_tv2));
    }
}
