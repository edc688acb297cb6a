//! What the fuzz targets (`fuzz/fuzz_targets/`) run, as plain functions over bytes. They live in
//! the workspace so that an API change that would break them breaks `cargo build`, and so that
//! `cargo test` replays every kept crash input and the seed corpus through them
//! (`server/tests/fuzz_corpus.rs`) without nightly flags or libFuzzer.

use crate::api::decode::decode_frame;
use crate::api::landing::{frame_without_records, plan};
use crate::net::frame::take_frame;
use bytes::{Bytes, BytesMut};
use riptide_engine::batch::{self, Assignment, Limits};
use riptide_engine::compression;
use riptide_engine::TimestampType;
use riptide_model::{LeaderEpoch, Offset};

/// `socket.request.max.bytes` default: frames up to this size are decoded.
pub const REQUEST_BYTES_MAX: u32 = 100 << 20;
/// Decompression bound for validation and the timestamp-lookup path (the broker uses 64 MiB;
/// the logic is the same and a smaller bound keeps executions fast).
pub const DECOMPRESSED_BYTES_MAX: usize = 1 << 20;

/// What a connection does with a frame whose record set it landed apart: the frame without
/// the records decoded (`api::landing`).
fn landed_decode(frame: &Bytes) {
    if let Some(plan) = plan(frame, frame.len()) {
        let without = frame_without_records(&plan, frame, &frame[plan.records_end()..]);
        let _ = decode_frame(without);
    }
}

/// A client's byte stream: cut into frames exactly as a connection does, and every frame
/// decoded (header, then the body for its API and version) as `api::handle` does before
/// dispatching. Errors are expected; panics, aborts and huge allocations are the bugs.
pub fn request_stream(data: &[u8]) {
    let mut buf = BytesMut::new();
    // Feed in two pieces to exercise partial frames as well as pipelined ones.
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    for piece in [&data[..split], &data[split..]] {
        buf.extend_from_slice(piece);
        loop {
            match take_frame(&mut buf, REQUEST_BYTES_MAX) {
                Ok(Some(frame)) => {
                    landed_decode(&frame);
                    let _ = decode_frame(frame);
                }
                Ok(None) => {
                    // A frame's start, as the reader plans a landing from it.
                    if buf.len() >= 4 {
                        let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                        let _ = usize::try_from(size).map(|size| plan(&buf[4..], size));
                    }
                    break;
                }
                Err(_) => return, // the connection would be closed
            }
        }
    }
}

/// One frame without its size prefix, straight into the header and body decoders.
pub fn request_frame(data: &[u8]) {
    let _ = decode_frame(Bytes::copy_from_slice(data));
}

fn limits() -> Limits {
    Limits {
        max_message_bytes: u32::MAX,
        timestamp_type: TimestampType::CreateTime,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        now_ms: 1_700_000_000_000,
        keys_required: false,
        decompressed_bytes_max: DECOMPRESSED_BYTES_MAX,
    }
}

/// A Produce record set, validated batch by batch as the append path does; every batch that
/// passes is assigned offsets (as the leader does) and must then pass the recovery check and a
/// second validation, and its records must decompress and walk (as the offset-for-timestamp
/// lookup does them), whatever the codec.
pub fn record_set(data: &[u8]) {
    let limits = limits();
    let mut pos = 0usize;
    while pos < data.len() {
        let Ok(v) = batch::validate(&data[pos..], &limits) else { return };
        assert!(v.size_bytes >= batch::HEADER_BYTES && v.size_bytes <= data.len() - pos);
        let mut stored = data[pos..pos + v.size_bytes].to_vec();
        let stamp = (v.header.records_count % 2 == 0).then_some(limits.now_ms);
        let a =
            Assignment { base_offset: Offset(1000), leader_epoch: LeaderEpoch(3), log_append_time_ms: stamp };
        batch::assign(&mut stored, &v, &a);
        let h = batch::check_stored(&stored).expect("an assigned valid batch must pass recovery");
        assert_eq!(h.base_offset, 1000);
        assert_eq!(h.records_count, v.header.records_count);
        // A batch the leader stamped with LogAppendTime is valid only on a LogAppendTime topic.
        let again = match stamp {
            Some(_) => Limits { timestamp_type: TimestampType::LogAppendTime, ..limits },
            None => limits,
        };
        batch::validate(&stored, &again).expect("an assigned valid batch must validate again");
        let records = &stored[batch::HEADER_BYTES..];
        // Validation walked the records (decompressed if need be), so they walk here too.
        let plain = compression::decompress(h.codec(), records, DECOMPRESSED_BYTES_MAX)
            .expect("the records of a valid batch decompress within the bound");
        batch::walk_records(&plain, &h, batch::Deltas::Increasing, |_| true)
            .expect("the records of a valid batch walk");
        pos += v.size_bytes;
    }
}

/// The decoders of untrusted bytes beside requests: a SCRAM exchange's client messages (from
/// the network), sealed batches (from disk, opened with a fixed key) and the coordinators'
/// internal-topic records (from disk). The first byte picks one; a SCRAM input is split at its
/// second byte into client-first and client-final.
pub fn security(data: &[u8]) {
    use crate::config::Mechanism;
    use crate::security::{at_rest, scram};
    let Some((&which, rest)) = data.split_first() else { return };
    if which & 1 == 0 {
        let m = if which & 2 == 0 { Mechanism::ScramSha256 } else { Mechanism::ScramSha512 };
        let split = rest.first().map_or(0, |b| usize::from(*b)).min(rest.len());
        let (first, fin) = rest.split_at(split);
        let cred = scram::credential_from_salted(m, vec![7; 16], &[9; 32], scram::ITERATIONS_MIN);
        if let Ok((state, _)) = scram::server_first(m, first, |_| Some(cred.clone()), |_| vec![1; 16]) {
            let _ = scram::server_final(m, state, fin);
        }
    } else if which & 2 == 0 {
        let _ = at_rest::open_all(Some(&at_rest::fuzz_keyring()), rest);
    } else {
        coordinator_records(rest);
    }
}

/// The internal topics' records as the coordinators read them back at load: a key of the first
/// byte's length and the rest as its value, through every coordinator's decoders.
fn coordinator_records(data: &[u8]) {
    use crate::coordinator::{offsets_log, share_state, txn};
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len().saturating_sub(1));
    let (key, value) = data.get(1..).unwrap_or_default().split_at(split);
    let _ = offsets_log::decode_record(Some(key), Some(value));
    let _ = offsets_log::decode_record(Some(key), None);
    if let Ok(Some((kind, _))) = share_state::decode_key(key) {
        let _ = share_state::decode_record(kind, Some(value));
    }
    let _ = share_state::decode_value(value);
    let _ = share_state::decode_update_value(value);
    let _ = txn::log::decode_key(key);
    let _ = txn::log::decode_value(value);
}
