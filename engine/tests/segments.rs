//! Reads (batch boundaries, max bytes, KIP-74, high watermark, ranges), segment rolling on
//! size / age / full index, retention by time and bytes, and timestamp lookups.

mod common;

use common::*;
use kafka_protocol::records::Compression;
use riptide_engine::TimestampAndOffset;
use riptide_engine::{IoBackend, Log, LogConfig};
use riptide_model::{LeaderEpoch, Offset};

fn small(io: IoBackend) -> LogConfig {
    LogConfig { segment_bytes: 16 * 1024, index_interval_bytes: 512, ..config(io) }
}

/// 100 batches of 5 records (~600 bytes each), timestamps 1000 + 10*i.
fn filled(name: &str, io: IoBackend) -> (Log, std::path::PathBuf) {
    let dir = tmpdir(name);
    let mut log = Log::open(&dir, small(io), 0).expect("open");
    for i in 0..100 {
        log.append(&mut batch(5, 100, 1_000 + 10 * i), LeaderEpoch(0), 2_000).expect("append");
    }
    (log, dir)
}

fn batch_bases(slice_bytes: &[u8]) -> Vec<i64> {
    decode(slice_bytes).iter().map(|s| s.records[0].offset).collect()
}

fn read_bytes(log: &Log, offset: i64, max: u32, upper: i64, min_one: bool) -> Vec<u8> {
    let s = log.read(Offset(offset), max, Offset(upper), min_one).expect("read");
    let mut buf = vec![0; s.len as usize];
    s.read_into(&mut buf).expect("pread");
    buf
}

#[test]
fn reads_return_whole_batches_within_bounds() {
    for io in BACKENDS {
        let (log, _d) = filled(&format!("reads-{io:?}"), io);
        assert!(log.segment_count() > 2);
        // From the middle of a batch: starts at that batch.
        let b = read_bytes(&log, 12, 2_000, i64::MAX, false);
        assert_eq!(batch_bases(&b)[0], 10);
        assert!(b.len() <= 2_000 && !b.is_empty());
        // KIP-74: max_bytes smaller than one batch.
        assert!(read_bytes(&log, 12, 100, i64::MAX, false).is_empty());
        assert_eq!(batch_bases(&read_bytes(&log, 12, 100, i64::MAX, true)), vec![10]);
        // Upper offset (high watermark) excludes batches at or above it.
        let b = read_bytes(&log, 0, 1 << 20, 20, false);
        assert_eq!(batch_bases(&b), vec![0, 5, 10, 15]);
        assert!(read_bytes(&log, 20, 1 << 20, 20, true).is_empty());
        // A read stops at a segment end; the next read continues.
        let all = read_bytes(&log, 0, u32::MAX, i64::MAX, false);
        let bases = batch_bases(&all);
        assert_eq!(bases[0], 0);
        assert!(*bases.last().expect("some") < 495, "stopped at the first segment's end");
        // Log end: empty; beyond or below: out of range.
        assert!(read_bytes(&log, 500, 1 << 20, i64::MAX, true).is_empty());
        let err = log.read(Offset(501), 100, Offset(i64::MAX), true).expect_err("beyond end");
        assert_eq!(kafka_code(&err), 1);
        assert_eq!(all_offsets(&log), (0..500).collect::<Vec<_>>());
    }
}

#[test]
fn rolls_on_size_age_and_full_index() {
    let (log, dir) = filled("roll-size", IoBackend::Std);
    for base in log.segment_base_offsets().windows(2) {
        assert!(base[1] > base[0]);
    }
    let seg_files = std::fs::read_dir(&dir)
        .expect("dir")
        .filter(|e| e.as_ref().map(|e| e.file_name().to_string_lossy().ends_with(".log")).unwrap_or(false));
    assert_eq!(seg_files.count(), log.segment_count());
    assert!(log.size_bytes() > 16 * 1024 * 2);

    let dir = tmpdir("roll-age");
    let cfg = LogConfig { segment_ms: 1_000, ..config(IoBackend::Std) };
    let mut log = Log::open(&dir, cfg, 10_000).expect("open");
    log.append(&mut batch(1, 10, 10_000), LeaderEpoch(0), 10_000).expect("append");
    log.maybe_roll(10_500).expect("no roll yet");
    assert_eq!(log.segment_count(), 1);
    log.maybe_roll(11_000).expect("roll");
    assert_eq!(log.segment_count(), 2);
    log.append(&mut batch(1, 10, 12_000), LeaderEpoch(0), 12_000).expect("append");
    log.append(&mut batch(1, 10, 13_100), LeaderEpoch(0), 13_100).expect("append rolls by age");
    assert_eq!(log.segment_base_offsets(), vec![Offset(0), Offset(1), Offset(2)]);

    let dir = tmpdir("roll-index");
    let cfg = LogConfig { segment_index_bytes: 96, index_interval_bytes: 1, ..config(IoBackend::Std) };
    let mut log = Log::open(&dir, cfg, 0).expect("open");
    for _ in 0..40 {
        log.append(&mut batch(1, 10, 1_000), LeaderEpoch(0), 1_000).expect("append");
    }
    assert!(
        log.segment_count() >= 4,
        "rolled when 8 index entries were used: {:?}",
        log.segment_base_offsets()
    );
    assert_eq!(all_offsets(&log), (0..40).collect::<Vec<_>>());
}

#[test]
fn retention_by_time_and_bytes_advances_log_start() {
    let (mut log, dir) = filled("retention", IoBackend::Std);
    let segs = log.segment_base_offsets();
    // Nothing is old enough at now = 1000 + 7 days - 1.
    assert_eq!(log.apply_retention(1_000 + 604_800_000 - 1_000).expect("retention"), 0);
    // Timestamps of the first segment are all older than the second's.
    let mut cfg = log.config().clone();
    cfg.retention_ms = 1_000;
    log.set_config(cfg.clone()).unwrap();
    let deleted = log.apply_retention(1_000 + 10 * 40 + 1_000).expect("retention");
    assert!(deleted >= 1, "deleted {deleted}");
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert!(log.log_start_offset() > Offset(0));
    let err = log.read(Offset(0), 100, Offset(i64::MAX), true).expect_err("below start");
    assert_eq!(kafka_code(&err), 1);
    cfg.retention_ms = -1;
    cfg.retention_bytes = 20 * 1024;
    log.set_config(cfg.clone()).unwrap();
    log.apply_retention(i64::MAX / 2).expect("retention by bytes");
    assert!(log.size_bytes() <= 20 * 1024 + 16 * 1024 && log.size_bytes() >= 20 * 1024 - 16 * 1024);
    cfg.retention_bytes = 0;
    log.set_config(cfg.clone()).unwrap();
    log.apply_retention(0).expect("retention");
    assert_eq!(log.segment_count(), 1, "the active segment is never deleted");
    let start = log.log_start_offset();
    assert!(start > segs[0]);
    log.close().expect("close");
    let log = Log::open(&dir, cfg, 0).expect("reopen");
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(all_offsets(&log), (start.0..500).collect::<Vec<_>>());
}

/// DeleteRecords: the log start moves inside a batch, never back and never past the log end;
/// reads below it are out of range, a read at it returns its batch whole; retention then
/// deletes the segments wholly below it; an unclean reopen keeps it (the checkpoint was
/// written before `delete_records` returned).
#[test]
fn delete_records_moves_the_log_start_durably() {
    let (mut log, dir) = filled("delete-records", IoBackend::Std);
    log.sync().expect("sync");
    let segments = log.segment_count();
    // Batches hold 5 records: 303 is inside the batch 300..=304 (segments hold ~130 offsets).
    assert_eq!(log.delete_records(Offset(303)).expect("delete"), Offset(303));
    assert_eq!(log.delete_records(Offset(100)).expect("never back"), Offset(303));
    let past = log.delete_records(Offset(501)).expect_err("past the log end");
    assert_eq!(kafka_code(&past), 1);
    let below = log.read(Offset(302), 1 << 20, Offset(i64::MAX), true).expect_err("below the start");
    assert_eq!(kafka_code(&below), 1);
    assert_eq!(batch_bases(&read_bytes(&log, 303, 1, 500, true)), vec![300]);
    log.apply_retention(0).expect("retention");
    assert!(log.segment_count() < segments, "segments wholly below 303 deleted");
    assert!(log.segment_base_offsets()[0] <= Offset(300));
    drop(log); // no clean close
    let log = Log::open(&dir, small(IoBackend::Std), 0).expect("reopen");
    assert_eq!(log.log_start_offset(), Offset(303));
    let below = log.read(Offset(302), 1 << 20, Offset(i64::MAX), true).expect_err("below the start");
    assert_eq!(kafka_code(&below), 1);
}

#[test]
fn offset_for_timestamp_finds_exact_records_in_every_codec() {
    for codec in
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
    {
        let dir = tmpdir(&format!("ts-{codec:?}"));
        let mut log = Log::open(&dir, small(IoBackend::Std), 0).expect("open");
        for i in 0..100 {
            // Records at 10_000 + 100*i + j, j in 0..10.
            let mut b = encode(&records(10, 50, 10_000 + 100 * i, None), codec);
            log.append(&mut b, LeaderEpoch(0), 0).expect("append");
        }
        assert_eq!(
            log.offset_for_timestamp(0).expect("ts"),
            Some(TimestampAndOffset { timestamp_ms: 10_000, offset: Offset(0) })
        );
        assert_eq!(
            log.offset_for_timestamp(10_505).expect("ts"),
            Some(TimestampAndOffset { timestamp_ms: 10_505, offset: Offset(55) })
        );
        assert_eq!(
            log.offset_for_timestamp(10_550).expect("ts"),
            Some(TimestampAndOffset { timestamp_ms: 10_600, offset: Offset(60) })
        );
        assert_eq!(
            log.offset_for_timestamp(19_909).expect("ts"),
            Some(TimestampAndOffset { timestamp_ms: 19_909, offset: Offset(999) })
        );
        assert_eq!(log.offset_for_timestamp(19_910).expect("ts"), None);
        assert_eq!(
            log.max_timestamp(),
            Some(TimestampAndOffset { timestamp_ms: 19_909, offset: Offset(999) })
        );
    }
}

/// Retention cuts a deleted segment down in steps before unlinking it, so that its blocks are
/// freed over many journal commits. It leaves a segment whole while a read of it is out, and
/// that read still gets every byte.
#[test]
fn retention_cuts_deleted_segments_down_unless_a_read_holds_them() {
    let dir = tmpdir("retention-cut");
    let mut cfg = LogConfig { segment_bytes: 3 << 20, ..config(IoBackend::Std) };
    let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
    for i in 0..120 {
        log.append(&mut batch(16, 4000, 1_000 + i), LeaderEpoch(0), 1_000 + i).expect("append");
    }
    log.sync().expect("sync");
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "two sealed segments of ~3 MiB: {bases:?}");
    let path = |base: Offset| dir.join(format!("{:020}.log", base.0));
    // Opened by name, outside the log: these see the inode without holding the log's handle.
    let (outside0, outside1) = (std::fs::File::open(path(bases[0])), std::fs::File::open(path(bases[1])));
    let (outside0, outside1) = (outside0.expect("open 0"), outside1.expect("open 1"));
    let whole0 = outside0.metadata().expect("stat").len();
    let whole1 = outside1.metadata().expect("stat").len();
    assert!(whole0 > 2 << 20 && whole1 > 2 << 20);
    let held = log.read(bases[1], 1 << 20, Offset(i64::MAX), true).expect("read of segment 1");
    let wanted = read_slice_bytes(&held);

    cfg.retention_bytes = 0;
    log.set_config(cfg).expect("config");
    assert_eq!(log.apply_retention(0).expect("retention"), bases.len() - 1);
    assert!(!path(bases[0]).exists() && !path(bases[1]).exists(), "unlinked");
    let left0 = outside0.metadata().expect("stat").len();
    assert_eq!(left0, 0, "cut down (to nothing) before the unlink, of {whole0}");
    assert_eq!(outside1.metadata().expect("stat").len(), whole1, "a segment being read stays whole");
    assert_eq!(read_slice_bytes(&held), wanted, "the read still gets its bytes");
    assert_eq!(batch_bases(&wanted).first(), Some(&bases[1].0));
}

fn read_slice_bytes(slice: &riptide_engine::ReadSlice) -> Vec<u8> {
    slice.read_to_vec().expect("read")
}
