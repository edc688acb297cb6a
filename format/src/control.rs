//! Control batches: the COMMIT and ABORT markers a transaction coordinator writes to every
//! partition of a transaction. Kafka's layout: a batch with the control and transactional
//! attribute bits, the producer's id and epoch, no sequence (-1), and one record whose key is
//! `version i16 = 0, type i16` (0 abort, 1 commit) and whose value is
//! `version i16 = 0, coordinatorEpoch i32`.

use bytes::BytesMut;

use crate::build::{self, BatchFields, RecordFields};
use crate::{attr, BatchHeader, HEADER_BYTES};

/// What a control record marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    pub fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }
}

/// One transaction marker, as the coordinator asks a partition leader to write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub control: ControlType,
    pub coordinator_epoch: i32,
}

/// The marker's control batch at offset 0 (the log assigns the real one in place).
pub fn marker_batch(m: &TxnMarker, timestamp_ms: i64) -> BytesMut {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&m.control.code().to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&m.coordinator_epoch.to_be_bytes());
    let mut buf = BytesMut::with_capacity(HEADER_BYTES + 32);
    build::put_header_room(&mut buf);
    build::put_record(
        &mut buf,
        RecordFields {
            offset_delta: 0,
            timestamp_delta: 0,
            key: Some(&key),
            value: Some(&value),
            headers: std::iter::empty(),
        },
    );
    let fields = BatchFields {
        producer_id: m.producer_id,
        producer_epoch: m.producer_epoch,
        ..BatchFields::plain(1, timestamp_ms, timestamp_ms, attr::CONTROL | attr::TRANSACTIONAL)
    };
    build::write_header(&mut buf, &fields);
    buf
}

/// The control type of a stored control batch (whole, uncompressed, as Kafka writes them);
/// `None` for anything else or a record that cannot be read.
pub fn control_type(batch: &[u8]) -> Option<ControlType> {
    marker_fields(batch).map(|(control, _)| control)
}

/// A stored marker's control type and coordinator epoch (-1 when its value cannot be read);
/// `None` as for `control_type`.
pub fn marker_fields(batch: &[u8]) -> Option<(ControlType, i32)> {
    let h = BatchHeader::parse(batch)?;
    if !h.is_control() || h.records_count < 1 {
        return None;
    }
    let records = batch.get(HEADER_BYTES..)?;
    let mut at = 0usize;
    build::get_varint(records, &mut at).ok()?; // record length
    at += 1; // attributes
    build::get_varint(records, &mut at).ok()?; // timestamp delta
    build::get_varint(records, &mut at).ok()?; // offset delta
    let key_len = build::get_varint(records, &mut at).ok()?;
    if key_len < 4 {
        return None;
    }
    let key = records.get(at..at + 4)?;
    let control = match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        _ => return None,
    };
    at += key_len as usize;
    let value_len = build::get_varint(records, &mut at).ok();
    let epoch = value_len
        .filter(|&n| n >= 6)
        .and_then(|_| records.get(at + 2..at + 6))
        .map_or(-1, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    Some((control, epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_in_kafkas_layout() {
        for control in [ControlType::Abort, ControlType::Commit] {
            let m = TxnMarker { producer_id: 42, producer_epoch: 3, control, coordinator_epoch: 7 };
            let b = marker_batch(&m, 1000);
            let h = BatchHeader::parse(&b).expect("header");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence, h.records_count), (42, 3, -1, 1));
            assert_eq!(h.crc, build::crc(&b));
            assert_eq!(control_type(&b), Some(control));
            assert_eq!(marker_fields(&b), Some((control, 7)));
            // Key: version 0 then the type; value: version 0 then the coordinator epoch.
            let tail = &b[b.len() - 13..];
            assert_eq!(&tail[..5], &[8, 0, 0, 0, control.code() as u8]);
            assert_eq!(&tail[5..], &[12, 0, 0, 0, 0, 0, 7, 0]);
        }
        assert_eq!(control_type(&[0u8; 10]), None);
    }
}
