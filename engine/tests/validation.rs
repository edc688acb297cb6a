//! Append validation: every malformed or rule-breaking batch gets its Kafka error code and
//! leaves the log exactly as it was; valid sets (hand-built and kafka-protocol-built) pass.

mod common;

use common::*;
use riptide_engine::TimestampAndOffset;
use riptide_engine::{IoBackend, Log, LogConfig, LogError, TimestampType};
use riptide_model::{LeaderEpoch, Offset};

fn open(name: &str) -> (Log, std::path::PathBuf) {
    let dir = tmpdir(name);
    (Log::open(&dir, config(IoBackend::Std), 0).expect("open"), dir)
}

/// Appends `bytes` expecting `code`, and checks nothing changed.
fn rejects(log: &mut Log, mut bytes: Vec<u8>, code: i16) {
    let (leo, size) = (log.log_end_offset(), log.size_bytes());
    match log.append(&mut bytes, LeaderEpoch(0), 10_000) {
        Err(e) => assert_eq!(kafka_code(&e), code, "wrong code for {e}"),
        Ok(info) => panic!("accepted an invalid batch: {info:?}"),
    }
    assert_eq!((log.log_end_offset(), log.size_bytes()), (leo, size), "log untouched");
    assert!(!log.is_failed());
}

#[test]
fn framing_and_crc_errors_are_corrupt_message() {
    let (mut log, _d) = open("v-framing");
    let good = batch(3, 10, 5_000);
    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x40;
    rejects(&mut log, bad_crc, 2);
    rejects(&mut log, good[..good.len() - 1].to_vec(), 2);
    rejects(&mut log, good[..30].to_vec(), 2);
    let mut short_len = good.clone();
    short_len[8..12].copy_from_slice(&10i32.to_be_bytes());
    rejects(&mut log, short_len, 2);
    let mut magic9 = good.clone();
    magic9[16] = 9;
    rejects(&mut log, magic9, 2);
    // Garbage inside the records with a valid CRC: framing walk catches it.
    let mut garbage = hand_simple(3, 5_000);
    let n = garbage.len();
    garbage[n - 1] = 0x02; // headers count 1, but no header bytes follow
    fix_crc(&mut garbage);
    rejects(&mut log, garbage, 2);
    // Trailing bytes after the last record (length and CRC consistent).
    let mut trailing = hand_simple(2, 5_000);
    trailing.push(0);
    let len = (trailing.len() - 12) as i32;
    trailing[8..12].copy_from_slice(&len.to_be_bytes());
    fix_crc(&mut trailing);
    rejects(&mut log, trailing, 2);
}

#[test]
fn rule_violations_are_invalid_record() {
    let (mut log, _d) = open("v-rules");
    let good = hand_simple(3, 5_000);
    let mut magic1 = good.clone();
    magic1[16] = 1;
    rejects(&mut log, magic1, 87);
    let mut delta = good.clone();
    delta[23..27].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut delta);
    rejects(&mut log, delta, 87);
    let mut control = good.clone();
    control[22] |= 0x20;
    fix_crc(&mut control);
    rejects(&mut log, control, 87);
    let mut codec7 = good.clone();
    codec7[22] |= 0x07;
    fix_crc(&mut codec7);
    rejects(&mut log, codec7, 87);
    let v = [b'v'; 4];
    let skipped = [
        RawRecord { ts_delta: 0, offset_delta: 0, key: None, value: Some(&v) },
        RawRecord { ts_delta: 0, offset_delta: 2, key: None, value: Some(&v) },
    ];
    rejects(&mut log, hand_batch(&skipped, 5_000, 0, (-1, -1, -1)), 87);
    rejects(&mut log, hand_batch(&skipped[..1], 5_000, 0, (7, -1, 0)), 87);
    rejects(&mut log, Vec::new(), 87);
}

#[test]
fn one_bad_batch_rejects_the_whole_set() {
    let (mut log, _d) = open("v-set");
    let mut set = batch(2, 10, 5_000);
    let mut bad = batch(2, 10, 5_000);
    bad[40] ^= 1;
    set.extend_from_slice(&bad);
    rejects(&mut log, set, 2);
    let mut set = hand_simple(2, 5_000);
    set.extend_from_slice(&batch(3, 10, 5_000));
    set.extend_from_slice(&hand_simple(1, 5_000));
    let info = log.append(&mut set, LeaderEpoch(0), 10_000).expect("valid set");
    assert_eq!((info.base_offset, info.last_offset), (Offset(0), Offset(5)));
    assert_eq!(all_offsets(&log), (0..6).collect::<Vec<_>>());
}

#[test]
fn size_and_timestamp_limits() {
    let dir = tmpdir("v-limits");
    let cfg = LogConfig {
        max_message_bytes: 1_000,
        timestamp_before_max_ms: 1_000,
        timestamp_after_max_ms: 1_000,
        ..config(IoBackend::Std)
    };
    let mut log = Log::open(&dir, cfg, 0).expect("open");
    rejects(&mut log, batch(10, 200, 10_000), 10);
    rejects(&mut log, hand_simple(2, 1_000), 32);
    rejects(&mut log, hand_simple(2, 50_000), 32);
    let mut lat = hand_simple(2, 10_000);
    lat[22] |= 0x08;
    fix_crc(&mut lat);
    rejects(&mut log, lat, 32);
    log.append(&mut hand_simple(2, 9_500), LeaderEpoch(0), 10_000).expect("inside the window");
    let err = LogError::MessageTooLarge { size_bytes: 1, limit_bytes: 0 };
    assert_eq!(kafka_code(&err), 10);
    let dir = tmpdir("v-lat");
    let cfg = LogConfig { timestamp_type: TimestampType::LogAppendTime, ..config(IoBackend::Std) };
    let mut log = Log::open(&dir, cfg, 0).expect("open");
    log.append(&mut hand_simple(2, 1), LeaderEpoch(0), 10_000)
        .expect("any timestamp on a LogAppendTime topic");
}

#[test]
fn wrong_header_max_timestamp_is_corrected() {
    let (mut log, _d) = open("v-maxts");
    let mut b = hand_simple(3, 5_000);
    b[35..43].copy_from_slice(&1i64.to_be_bytes());
    fix_crc(&mut b);
    log.append(&mut b, LeaderEpoch(0), 10_000).expect("append");
    assert_eq!(i64::from_be_bytes(b[35..43].try_into().expect("8")), 5_002);
    assert_eq!(decode(&b).len(), 1, "CRC recomputed");
    assert_eq!(log.max_timestamp(), Some(TimestampAndOffset { timestamp_ms: 5_002, offset: Offset(2) }));
}

#[test]
fn keyless_records_on_a_compacted_log_refuse_the_set() {
    let dir = tmpdir("v-keys");
    let cfg = LogConfig { keys_required: true, ..config(IoBackend::Std) };
    let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
    let v = [b'v'; 4];
    let recs = [
        RawRecord { ts_delta: 0, offset_delta: 0, key: Some(b"k"), value: Some(&v) },
        RawRecord { ts_delta: 0, offset_delta: 1, key: None, value: Some(&v) },
        RawRecord { ts_delta: 0, offset_delta: 2, key: None, value: None },
    ];
    // A keyed batch first, then the keyless one behind it in the same set: nothing goes in.
    let mut set = hand_batch(&recs[..1], 5_000, 0, (-1, -1, -1));
    set.extend_from_slice(&hand_batch(&recs, 5_000, 0, (-1, -1, -1)));
    match log.append(&mut set.clone(), LeaderEpoch(0), 10_000) {
        Err(LogError::InvalidRecords(errors)) => {
            let indexes: Vec<i32> = errors.iter().map(|e| e.batch_index).collect();
            assert_eq!(indexes, [1, 2], "indexes within the refused batch");
        }
        other => panic!("keyless records accepted on a compacted log: {other:?}"),
    }
    assert_eq!((log.log_end_offset(), log.size_bytes()), (Offset(0), 0), "log untouched");
    rejects(&mut log, set.clone(), 87);
    // The same set once the topic is no longer compacted.
    log.set_config(LogConfig { keys_required: false, ..cfg }).expect("reconfigure");
    let info = log.append(&mut set, LeaderEpoch(0), 10_000).expect("keys are optional now");
    assert_eq!(info.last_offset, Offset(3));
}
