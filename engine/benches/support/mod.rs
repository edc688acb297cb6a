//! Shared by the criterion benches: batches of 1 KiB records built with kafka-protocol.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

pub const RECORD_BYTES: usize = 1024;

/// One uncompressed RecordBatch v2 holding `batch_bytes / 1 KiB` records of 1 KiB values.
pub fn batch_of(batch_bytes: usize) -> Vec<u8> {
    let n = (batch_bytes / RECORD_BYTES).max(1);
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1 + i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::from(vec![(i % 251) as u8; RECORD_BYTES])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .expect("encode");
    buf.to_vec()
}
