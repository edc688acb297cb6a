//! `__transaction_state` records in Kafka's format (`TransactionLogKey` /
//! `TransactionLogValue` of apache/kafka's transaction-coordinator schemas). The key is
//! `version i16 = 0, transactionalId string`; the value, written at version 0: producerId
//! i64, producerEpoch i16, transactionTimeoutMs i32, transactionStatus i8, transactionPartitions
//! (nullable array of topic string + partition ids i32 array), transactionLastUpdateTimestampMs
//! i64, transactionStartTimestampMs i64. A null value is a tombstone (an expired id).
//!
//! A transactional id lives in partition `abs(javaHash(id)) % transaction.state.log.num.partitions`,
//! as in Kafka.

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{TxnMeta, TxnState};
use crate::coordinator::offsets_log::{put_string, Reader};

pub const TXN_TOPIC: &str = "__transaction_state";
const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;
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
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(VALUE_VERSION);
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
    buf.put_i32(topics.len() as i32);
    for (t, ps) in topics {
        put_string(&mut buf, t);
        buf.put_i32(ps.len() as i32);
        for p in ps {
            buf.put_i32(p);
        }
    }
    buf.put_i64(m.last_update_ms);
    buf.put_i64(m.start_ms);
    buf.freeze()
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
    if version != VALUE_VERSION {
        // Version 1 is flexible (compact strings, tagged fields); Riptide writes version 0.
        return Err(DecodeError::UnsupportedVersion("TransactionLogValue", version));
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = r.i8()?;
    let state = TxnState::from_code(status).ok_or(DecodeError::BadStatus(status))?;
    let mut partitions = std::collections::BTreeSet::new();
    for _ in 0..count(&mut r)?.unwrap_or(0) {
        let topic = r.string()?;
        for _ in 0..count(&mut r)?.unwrap_or(0) {
            if partitions.len() >= PARTITIONS_MAX {
                return Err(DecodeError::BadLength(PARTITIONS_MAX as i64));
            }
            partitions.insert((topic.clone(), r.i32()?));
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    Ok(TxnMeta {
        producer_id,
        producer_epoch,
        last_producer_epoch: -1,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
        pending: false,
        completing: false,
    })
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
        assert_eq!(decode_value(&v), Ok(m));
        assert_eq!(decode_key(&key("my-txn")), Ok("my-txn".to_string()));
        assert_eq!(&key("ab")[..], &[0, 0, 0, 2, b'a', b'b']);
        for n in 0..v.len() {
            assert!(decode_value(&v[..n]).is_err(), "truncated at {n}");
        }
        assert_eq!(decode_key(&[0, 1, 0, 0]), Err(DecodeError::UnsupportedVersion("TransactionLogKey", 1)));
    }
}
