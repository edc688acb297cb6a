//! Issue 22: the next segment is created ahead of a roll, off the log owner's thread (a
//! shard), so a roll only renames a spare; a spare left behind by a kill is removed at open.

mod common;

use common::*;
use riptide_engine::io::fault::{self, Fault};
use riptide_engine::{IoBackend, Log, LogConfig};
use riptide_model::LeaderEpoch;

fn small_segments(io: IoBackend) -> LogConfig {
    LogConfig { segment_bytes: 4096, retention_ms: 1_000, ..config(io) }
}

fn spare_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".spare"))
        .collect();
    names.sort();
    names
}

/// Prepares a spare on a helper thread, as the server does, and installs it.
fn prepare_on_helper(log: &mut Log) {
    let prep = log.prepare_segment().expect("a log with data wants a spare");
    assert!(log.prepare_segment().is_none(), "one preparation at a time");
    let prepared = std::thread::spawn(move || prep.run()).join().expect("helper thread");
    log.segment_prepared(prepared).expect("spare created");
    assert!(log.has_spare_segment());
}

/// Appends 1 KiB batches until the log has one more segment.
fn append_until_roll(log: &mut Log, ts_ms: i64) {
    let before = log.segment_count();
    for i in 0..10 {
        let mut b = batch(5, 200, ts_ms + i);
        log.append(&mut b, LeaderEpoch(0), 5_000).expect("append (may roll)");
        if log.segment_count() > before {
            return;
        }
    }
    panic!("no roll after 10 KiB with 4 KiB segments");
}

/// Neither a roll (with a spare ready) nor a retention pass opens, creates or unlinks any file
/// on the owner's thread: every such call fails there (fault injection), and both still
/// succeed; the retention's unlinks and the pruning of old
/// snapshots run on other threads. The control at the end shows the fault does catch a roll
/// that creates its files itself.
#[test]
fn roll_with_a_spare_and_retention_create_and_unlink_nothing_on_the_owners_thread() {
    for io in BACKENDS {
        let dir = tmpdir(&format!("spare-owner-{io:?}"));
        let mut log = Log::open(&dir, small_segments(io), 0).expect("open");
        log.append(&mut batch(5, 200, 999), LeaderEpoch(0), 5_000).expect("first append");
        for round in 0..4 {
            // Durable snapshots make older ones prunable (kept: the two newest).
            log.sync().expect("sync");
            prepare_on_helper(&mut log);
            assert_eq!(spare_files(&dir).len(), 4, "log, index, time index and snapshot spares");
            fault::inject(Some(Fault::OpenUnlinkEio));
            append_until_roll(&mut log, 1_000 + round * 100);
            fault::inject(None);
            assert!(!log.has_spare_segment(), "the roll used the spare");
            assert!(spare_files(&dir).is_empty(), "renamed to the new segment's names");
        }
        assert_eq!(log.sync().expect("sync"), log.log_end_offset());
        prepare_on_helper(&mut log);
        let snapshots = std::fs::read_dir(&dir)
            .expect("list")
            .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".snapshot")))
            .count();
        assert!(snapshots <= 3, "old snapshots pruned by the helper: {snapshots} left");
        let bases = log.segment_base_offsets();
        for base in &bases {
            for suffix in ["log", "index", "timeindex"] {
                assert!(dir.join(format!("{base:020}.{suffix}")).exists(), "{base}.{suffix}");
            }
        }
        fault::inject(Some(Fault::OpenUnlinkEio));
        let (deleted, write) = log.apply_retention_deferred(1_000_000).expect("retention");
        fault::inject(None);
        assert_eq!(deleted, bases.len() - 1);
        let write = write.expect("file work handed out");
        let first = dir.join(format!("{:020}.log", bases[0]));
        assert!(first.exists(), "nothing unlinked on the owner's thread");
        let result = std::thread::spawn(move || write.write()).join().expect("helper thread");
        log.retention_done(result).expect("retention done");
        assert!(!first.exists(), "unlinked by the helper");

        // Control: without a spare, the roll creates files on this thread and the fault trips.
        append_until_roll(&mut log, 8_000); // uses up the spare prepared above
        assert!(!log.has_spare_segment());
        fault::inject(Some(Fault::OpenUnlinkEio));
        let before = log.segment_count();
        let mut failed = false;
        for i in 0..10 {
            if log.append(&mut batch(5, 200, 9_000 + i), LeaderEpoch(0), 5_000).is_err() {
                failed = true;
                break;
            }
        }
        fault::inject(None);
        assert!(failed && log.segment_count() == before, "a roll without a spare creates files");
        assert!(log.is_failed(), "a failed roll poisons the log");
    }
}

/// A spare left behind by a kill (before its roll, and after a roll that used one) is
/// removed at open; the data is intact and later rolls work with and without spares.
#[test]
fn a_spare_present_at_open_is_removed_and_the_log_recovers() {
    for io in BACKENDS {
        let dir = tmpdir(&format!("spare-reopen-{io:?}"));
        let cfg = small_segments(io);
        let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
        log.append(&mut batch(5, 200, 1_000), LeaderEpoch(0), 5_000).expect("append");
        prepare_on_helper(&mut log);
        log.sync().expect("sync");
        let leo = log.log_end_offset();
        drop(log); // kill -9: no close, the spare's files stay
        assert_eq!(spare_files(&dir).len(), 4);

        let mut log = Log::open(&dir, cfg.clone(), 0).expect("reopen with a spare present");
        assert!(spare_files(&dir).is_empty(), "removed at open");
        assert_eq!(log.log_end_offset(), leo);
        assert_eq!(all_offsets(&log), (0..leo.0).collect::<Vec<_>>());
        assert!(!log.has_spare_segment());

        // A roll onto a spare, then a kill before the new (empty) segment's sync.
        prepare_on_helper(&mut log);
        append_until_roll(&mut log, 2_000);
        let (leo, segments) = (log.log_end_offset(), log.segment_count());
        prepare_on_helper(&mut log);
        if log.is_direct() {
            // Direct appends live in this process until a sync: what a kill keeps is only
            // the synced part (the roll itself stays unsynced).
            log.sync().expect("sync");
        }
        drop(log);
        let mut log = Log::open(&dir, cfg.clone(), 0).expect("reopen after a roll onto a spare");
        assert!(spare_files(&dir).is_empty());
        assert_eq!(log.log_end_offset(), leo, "page cache kept: nothing lost");
        assert_eq!(log.segment_count(), segments);
        assert_eq!(all_offsets(&log), (0..leo.0).collect::<Vec<_>>());

        // Rolls go on, with and without spares; a clean close leaves no spare behind.
        append_until_roll(&mut log, 3_000);
        prepare_on_helper(&mut log);
        append_until_roll(&mut log, 4_000);
        prepare_on_helper(&mut log);
        let leo = log.log_end_offset();
        log.close().expect("close");
        assert!(spare_files(&dir).is_empty(), "close removes the spare");
        let log = Log::open(&dir, cfg, 0).expect("clean reopen");
        assert_eq!(all_offsets(&log), (0..leo.0).collect::<Vec<_>>());
    }
}

/// A preparation reported to a reopened log (another instance) is ignored, and one that
/// runs after its log closed creates nothing.
#[test]
fn a_spare_prepared_for_a_closed_log_is_not_used() {
    let dir = tmpdir("spare-stale");
    let cfg = small_segments(IoBackend::Std);
    let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
    log.append(&mut batch(5, 200, 1_000), LeaderEpoch(0), 5_000).expect("append");
    let prep = log.prepare_segment().expect("prep");
    log.close().expect("close");
    let stale = prep.run();
    assert!(spare_files(&dir).is_empty(), "cancelled by the close");
    let mut log = Log::open(&dir, cfg, 0).expect("reopen");
    log.segment_prepared(stale).expect("ignored");
    assert!(!log.has_spare_segment());
    assert!(log.prepare_segment().is_some(), "the new instance prepares its own");
}
