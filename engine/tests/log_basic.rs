//! Append, read, sync and reopen through the public API, on both I/O backends, with the
//! engine's segments decoded by the independent kafka-protocol decoder.

mod common;

use common::*;
use kafka_protocol::records::Compression;
use riptide_engine::TimestampAndOffset;
use riptide_engine::{Log, LogConfig, TimestampType};
use riptide_model::{EpochEndOffset, LeaderEpoch, Offset};

#[test]
fn append_read_reopen_decodes_with_kafka_protocol() {
    for io in BACKENDS {
        let dir = tmpdir(&format!("basic-{io:?}"));
        let mut log = Log::open(&dir, config(io), 0).expect("open");
        assert_eq!(log.io_backend(), io);
        let mut expected = 0i64;
        for i in 0..50 {
            let mut b = batch(10, 100, 1_000 + i);
            let info = log.append(&mut b, LeaderEpoch(3), 5_000).expect("append");
            assert_eq!(info.base_offset, Offset(expected));
            assert_eq!(info.last_offset, Offset(expected + 9));
            assert!(!info.duplicate);
            expected += 10;
        }
        assert_eq!(log.log_end_offset(), Offset(500));
        assert_eq!(log.sync().expect("sync"), Offset(500));
        assert_eq!(log.durable_offset(), Offset(500));
        let offsets = all_offsets(&log);
        assert_eq!(offsets, (0..500).collect::<Vec<_>>());
        let sets = decode(&read_all(&log, 0));
        assert!(sets.iter().all(|s| s.records.iter().all(|r| r.partition_leader_epoch == 3)));
        log.close().expect("close");

        let log = Log::open(&dir, config(io), 0).expect("reopen");
        assert_eq!(log.log_end_offset(), Offset(500));
        assert_eq!(log.durable_offset(), Offset(500));
        assert_eq!(all_offsets(&log), (0..500).collect::<Vec<_>>());
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(3)),
            Some(EpochEndOffset { epoch: LeaderEpoch(3), end_offset: Offset(500) })
        );
    }
}

#[test]
fn segment_files_are_kafka_format() {
    let dir = tmpdir("kafka-format");
    let cfg = LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 1024,
        ..config(riptide_engine::IoBackend::Std)
    };
    let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
    for codec in
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
    {
        for _ in 0..20 {
            let mut b = encode(&records(10, 200, 10_000, None), codec);
            log.append(&mut b, LeaderEpoch(0), 20_000).expect("append");
        }
    }
    log.close().expect("close");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .collect();
    files.sort();
    let logs: Vec<_> = files.iter().filter(|f| f.ends_with(".log")).cloned().collect();
    assert!(logs.len() > 3, "segments rolled: {files:?}");
    assert!(files.contains(&"00000000000000000000.index".to_string()));
    assert!(files.contains(&"leader-epoch-checkpoint".to_string()));
    let mut next = 0i64;
    for name in &logs {
        let base: i64 = name.trim_end_matches(".log").parse().expect("20-digit name");
        assert_eq!(name.len(), 24);
        assert_eq!(base, next, "segment named by its base offset");
        let bytes = std::fs::read(dir.join(name)).expect("read segment");
        for set in decode(&bytes) {
            for r in &set.records {
                assert_eq!(r.offset, next);
                assert_eq!(r.value.as_ref().map(|v| v.len()), Some(200));
                next += 1;
            }
        }
        let index = std::fs::read(dir.join(name.replace(".log", ".index"))).expect("index");
        assert_eq!(index.len() % 8, 0, "index trimmed to whole entries");
        for e in index.chunks(8) {
            let rel = i32::from_be_bytes(e[..4].try_into().expect("4"));
            let pos = i32::from_be_bytes(e[4..].try_into().expect("4")) as usize;
            let at = decode(&bytes[pos..]);
            let last = at[0].records.last().expect("record").offset;
            assert_eq!(
                last,
                base + i64::from(rel),
                "index entry names the last offset of the batch at its position"
            );
        }
        let tindex = std::fs::read(dir.join(name.replace(".log", ".timeindex"))).expect("timeindex");
        assert_eq!(tindex.len() % 12, 0);
    }
    assert_eq!(next, 100 * 10);
    assert_eq!(std::fs::read_to_string(dir.join("leader-epoch-checkpoint")).expect("epochs"), "0\n1\n0 0\n");
}

#[test]
fn log_append_time_is_stamped_and_crc_stays_valid() {
    let dir = tmpdir("append-time");
    let cfg =
        LogConfig { timestamp_type: TimestampType::LogAppendTime, ..config(riptide_engine::IoBackend::Std) };
    let mut log = Log::open(&dir, cfg, 0).expect("open");
    let mut b = encode(&records(5, 10, 1_000, None), Compression::Lz4);
    let info = log.append(&mut b, LeaderEpoch(0), 777_777).expect("append");
    assert_eq!(info.log_append_time_ms, 777_777);
    let bytes = read_all(&log, 0);
    let sets = decode(&bytes);
    // kafka-protocol checks the CRC and reports the type (it ignores maxTimestamp itself).
    assert!(sets[0]
        .records
        .iter()
        .all(|r| r.timestamp_type == kafka_protocol::records::TimestampType::LogAppend));
    assert_eq!(i64::from_be_bytes(bytes[35..43].try_into().expect("8")), 777_777, "maxTimestamp field");
    assert_eq!(
        log.offset_for_timestamp(777_777).expect("lookup"),
        Some(TimestampAndOffset { timestamp_ms: 777_777, offset: Offset(0) })
    );
}

#[test]
fn log_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Log>();
    assert_send::<riptide_engine::ReadSlice>();
}

/// The group commit's split (issue 22): a roll syncs nothing itself but queues the closed
/// segment and the directory for the next sync target; the recovery-point checkpoint comes back
/// from `mark_durable` for the caller to write elsewhere, one at a time, and a truncation waits
/// for it. A reopen after the caller's syncs finds everything durable.
#[test]
fn roll_and_checkpoint_are_left_to_the_caller() {
    for io in BACKENDS {
        let dir = tmpdir(&format!("split-{io:?}"));
        let cfg = LogConfig { segment_bytes: 4096, ..config(io) };
        let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
        let mut b = batch(10, 100, 1_000);
        log.append(&mut b, LeaderEpoch(0), 5_000).expect("append");
        let first = log.sync_target().expect("dirty");
        assert!(first.dir.is_none(), "no segment created yet");
        assert!(log.mark_durable(first.up_to_offset).expect("mark").is_none(), "same segment");
        // Fill past one segment: the append rolls.
        for i in 0..10 {
            let mut b = batch(10, 100, 1_001 + i);
            log.append(&mut b, LeaderEpoch(0), 5_000).expect("append");
        }
        assert!(log.segment_count() >= 2);
        let target = log.sync_target().expect("dirty after a roll");
        assert!(target.dir.is_some(), "the new segment's directory entry is the group commit's to sync");
        assert!(target.files.len() >= 2, "closed segment files are queued: {}", target.files.len());
        for f in &target.files {
            f.sync_data().expect("fdatasync");
        }
        target.dir.as_ref().expect("dir").sync_all().expect("fsync dir");
        let write = log.mark_durable(target.up_to_offset).expect("mark").expect("checkpoint due");
        assert_eq!(write.value(), target.up_to_offset);
        assert!(log.checkpoint_in_flight());
        assert!(log.truncate_to(Offset(5)).is_err(), "no truncation while a checkpoint write is out");
        let result = std::thread::spawn(move || {
            let r = write.write();
            (write, r)
        })
        .join()
        .expect("writer thread");
        log.checkpoint_done(&result.0, result.1).expect("checkpoint done");
        assert!(!log.checkpoint_in_flight());
        let leo = log.log_end_offset();
        drop(log); // no close: the next open is an unclean one, trusting the checkpoint
        let log = Log::open(&dir, cfg, 0).expect("reopen");
        assert_eq!(log.log_end_offset(), leo);
        assert_eq!(all_offsets(&log), (0..leo.0).collect::<Vec<_>>());
    }
}

/// Issue 22: neither a roll nor retention syncs anything on the log owner's thread (a shard).
/// Every fsync on this thread fails (fault injection, std backend): rolls and a retention pass
/// still succeed, and the retention's file work, run on another thread, removes the files.
#[test]
fn roll_and_retention_do_not_sync_on_the_owners_thread() {
    use riptide_engine::io::fault::{self, Fault};
    use riptide_engine::IoBackend;
    let dir = tmpdir("no-sync-on-owner");
    let cfg = LogConfig { segment_bytes: 4096, retention_ms: 1_000, ..config(IoBackend::Std) };
    let mut log = Log::open(&dir, cfg, 0).expect("open");
    // The first append of a leader epoch checkpoints the epoch (once per leadership change).
    log.append(&mut batch(10, 100, 999), LeaderEpoch(0), 5_000).expect("first append");
    fault::inject(Some(Fault::SyncEio));
    for i in 0..20 {
        let mut b = batch(10, 100, 1_000 + i);
        log.append(&mut b, LeaderEpoch(0), 5_000).expect("append that may roll: no fsync in a roll");
    }
    let segments = log.segment_count();
    assert!(segments >= 3, "rolled: {segments}");
    let bases = log.segment_base_offsets();
    let (deleted, write) = log.apply_retention_deferred(1_000_000).expect("retention without fsync");
    fault::inject(None);
    assert_eq!(deleted, segments - 1);
    assert_eq!(log.log_start_offset(), bases[segments - 1]);
    let write = write.expect("file work handed out");
    let first = dir.join(format!("{:020}.log", bases[0]));
    assert!(first.exists(), "files stay until the write runs");
    assert!(log.apply_retention_deferred(1_000_000).expect("again").1.is_none(), "one at a time");
    let result = std::thread::spawn(move || {
        let r = write.write();
        (write, r)
    })
    .join()
    .expect("writer thread");
    log.retention_done(result.1).expect("retention done");
    assert!(!first.exists(), "unlinked by the write");
    log.close().expect("close");
}

/// `append_shared` (bytes the caller keeps: copied once by the log, offsets assigned in the
/// copy) stores exactly what `append` stores, with CreateTime and LogAppendTime, across rolls,
/// idempotent retries included, and leaves the caller's bytes untouched. The test script runs
/// this file in both append modes (buffered, and direct with `RIPTIDE_LOG_IO=direct`).
#[test]
fn append_shared_stores_what_append_stores() {
    for ts_type in [TimestampType::CreateTime, TimestampType::LogAppendTime] {
        let cfg = LogConfig {
            segment_bytes: 64 * 1024,
            timestamp_type: ts_type,
            ..config(riptide_engine::IoBackend::Std)
        };
        let (a_dir, b_dir) = (tmpdir(&format!("owned-{ts_type:?}")), tmpdir(&format!("shared-{ts_type:?}")));
        let mut a = Log::open(&a_dir, cfg.clone(), 0).expect("open a");
        let mut b = Log::open(&b_dir, cfg.clone(), 0).expect("open b");
        let mut seq = 0;
        for i in 0..60 {
            let bytes = if i % 3 == 0 {
                seq += 4;
                idempotent_batch(4, 7, 0, seq - 4)
            } else {
                batch(1 + i as usize % 7, 900, 1_000 + i as i64)
            };
            let kept = bytes.clone();
            let ia = a.append(&mut bytes.clone(), LeaderEpoch(2), 50_000 + i as i64).expect("append");
            let ib = b.append_shared(&bytes, LeaderEpoch(2), 50_000 + i as i64).expect("append_shared");
            assert_eq!(ia, ib);
            assert_eq!(bytes, kept, "the caller's bytes are not modified");
            if i % 9 == 0 {
                a.sync().expect("sync a");
                b.sync().expect("sync b");
            }
        }
        // A retried idempotent batch is answered as a duplicate by both.
        let retry = idempotent_batch(4, 7, 0, seq - 4);
        let dup = b.append_shared(&retry, LeaderEpoch(2), 60_000).expect("retry");
        assert!(dup.duplicate);
        assert!(b.segment_count() > 1, "the test crosses rolls");
        assert_eq!(read_all(&a, 0), read_all(&b, 0));
        b.close().expect("close");
        let b = Log::open(&b_dir, cfg, 0).expect("reopen");
        assert_eq!(read_all(&a, 0), read_all(&b, 0));
    }
}

/// `append_landed` (a batch received into a landing buffer, which a direct stage takes over
/// when the batch sits at the stage end's block phase) stores what `append` stores, whether
/// the phase hint was right or stale, across rolls and idempotent retries; in direct mode the
/// right hints are taken over rather than copied. Run in both append modes, as above.
#[test]
fn append_landed_stores_what_append_stores() {
    use riptide_engine::io::direct::{landing, LandingBuf};
    let land = |phase: usize, src: &[u8]| {
        let mut l = LandingBuf::new(phase, src.len()).expect("landing buffer");
        l.region_mut().copy_from_slice(src);
        l.set_received(src.len());
        l.finish().expect("complete")
    };
    for ts_type in [TimestampType::CreateTime, TimestampType::LogAppendTime] {
        let cfg = LogConfig {
            segment_bytes: 256 * 1024,
            timestamp_type: ts_type,
            ..config(riptide_engine::IoBackend::Std)
        };
        let (a_dir, b_dir) = (tmpdir(&format!("land-a-{ts_type:?}")), tmpdir(&format!("land-b-{ts_type:?}")));
        let mut a = Log::open(&a_dir, cfg.clone(), 0).expect("open a");
        let mut b = Log::open(&b_dir, cfg.clone(), 0).expect("open b");
        let (mut seq, adopted_before) = (0, landing::adopted_bytes());
        for i in 0..40 {
            let bytes = if i % 4 == 0 {
                seq += 4;
                idempotent_batch(4, 7, 0, seq - 4)
            } else {
                batch(1 + i as usize % 9, 3_000, 1_000 + i as i64)
            };
            let hint = b.landing_position().map_or(0, |pos| pos as usize % 4096);
            let phase = if i % 5 == 4 { (hint + 17) % 4096 } else { hint };
            let landed = land(phase, &bytes);
            let ia = a.append(&mut bytes.clone(), LeaderEpoch(2), 50_000 + i as i64).expect("append");
            let ib = b.append_landed(&landed, LeaderEpoch(2), 50_000 + i as i64).expect("append_landed");
            assert_eq!(ia, ib);
            if i % 7 == 0 {
                a.sync().expect("sync a");
                b.sync().expect("sync b");
            }
        }
        let phase = b.landing_position().map_or(0, |pos| pos as usize % 4096);
        let retry = land(phase, &idempotent_batch(4, 7, 0, seq - 4));
        assert!(b.append_landed(&retry, LeaderEpoch(2), 60_000).expect("retry").duplicate);
        assert!(b.segment_count() > 1, "the test crosses rolls");
        if std::env::var("RIPTIDE_LOG_IO").as_deref() == Ok("direct") {
            assert!(b.is_direct(), "direct appends in this run");
            assert!(landing::adopted_bytes() > adopted_before, "right hints were taken over");
        }
        assert_eq!(read_all(&a, 0), read_all(&b, 0));
        b.close().expect("close");
        let b = Log::open(&b_dir, cfg, 0).expect("reopen");
        assert_eq!(read_all(&a, 0), read_all(&b, 0));
    }
}

/// Where the file system refuses O_DIRECT, a direct-mode log stays buffered (with a warning)
/// and loses nothing.
#[test]
fn direct_mode_falls_back_to_buffered_where_refused() {
    use riptide_engine::config::IoMode;
    use riptide_engine::io::fault::{inject, Fault};
    let dir = tmpdir("direct-refused");
    let cfg = LogConfig { io_mode: IoMode::Direct, ..config(riptide_engine::IoBackend::Std) };
    let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
    inject(Some(Fault::DirectEinval));
    log.append(&mut batch(5, 100, 1_000), LeaderEpoch(0), 2_000).expect("append");
    log.append_shared(&batch(5, 100, 1_000), LeaderEpoch(0), 2_000).expect("append_shared");
    inject(None);
    assert!(!log.is_direct(), "refused: buffered");
    log.append(&mut batch(5, 100, 1_000), LeaderEpoch(0), 2_000).expect("append after");
    assert!(!log.is_direct(), "asked once per log");
    drop(log); // no sync, no close: buffered bytes are in the page cache
    let mut log = Log::open(&dir, cfg, 0).expect("reopen");
    assert_eq!(all_offsets(&log), (0..15).collect::<Vec<_>>());
    log.append(&mut batch(5, 100, 1_000), LeaderEpoch(0), 2_000).expect("append");
    assert!(log.is_direct(), "a new open tries again");
}
