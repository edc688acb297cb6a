//! Issue 22: retention's deletes and compaction's rewrites run off the log owner's thread (a
//! shard), and the owner never waits for them. Each test stalls the helper thread's file
//! system (`fault::stall`: its opens, unlinks and renames wait at a gate, as on a disk busy
//! with a journal commit), and while the helper is stuck there the owner appends, rolls onto
//! a spare, reads and syncs; the gate then opens and the helper's work is reported. No timing
//! is measured: the helper is provably inside a stalled call (the gate counted it) for the
//! whole time the owner works.

mod common;

use riptide_model::{LeaderEpoch, Offset};
use std::sync::Arc;

use common::*;
use riptide_engine::io::fault::{self, Gate};
use riptide_engine::{IoBackend, Log, LogConfig};

/// The engine's clean-shutdown marker (Kafka's name).
const CLEAN_SHUTDOWN: &str = ".kafka_cleanshutdown";

fn small_segments(io: IoBackend) -> LogConfig {
    LogConfig { segment_bytes: 4096, retention_ms: 1_000, ..config(io) }
}

/// Appends 1 KiB batches (keys key-0..key-4 again each time) until the log has one more
/// segment.
fn append_until_roll(log: &mut Log, ts_ms: i64) {
    let before = log.segment_count();
    for i in 0..10 {
        log.append(&mut batch(5, 200, ts_ms + i), LeaderEpoch(0), ts_ms + i).expect("append (may roll)");
        if log.segment_count() > before {
            return;
        }
    }
    panic!("no roll after 10 KiB with 4 KiB segments");
}

/// Runs `work` on a helper thread whose file system is stalled at a gate; returns once the
/// helper is stuck in its first call there.
fn stalled_helper<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> (Arc<Gate>, std::thread::JoinHandle<T>) {
    let gate = Gate::new();
    let g = gate.clone();
    let helper = std::thread::spawn(move || {
        fault::stall(Some(g));
        let out = work();
        fault::stall(None);
        out
    });
    gate.wait_reached(1);
    (gate, helper)
}

/// What the owner does while its helper is stalled: appends (rolling onto a spare prepared by
/// an unstalled thread), reads everything back, and group-commits. Returns the log end.
fn serve_meanwhile(log: &mut Log, gate: &Gate, ts_ms: i64) -> i64 {
    let reached = gate.reached();
    let prep = log.prepare_segment().expect("a log with data wants a spare");
    let prepared = std::thread::spawn(move || prep.run()).join().expect("preparer");
    log.segment_prepared(prepared).expect("spare");
    let segments = log.segment_count();
    append_until_roll(log, ts_ms);
    assert_eq!(log.segment_count(), segments + 1, "rolled");
    log.append(&mut batch(5, 200, ts_ms + 50), LeaderEpoch(0), ts_ms + 50).expect("append after the roll");
    let leo = log.log_end_offset();
    assert_eq!(log.sync().expect("group commit"), leo);
    let offsets = all_offsets(log);
    assert_eq!(offsets.last(), Some(&(leo.0 - 1)), "reads reach the end");
    assert_eq!(gate.reached(), reached, "the helper is still stalled in the same call");
    leo.0
}

#[test]
fn retention_deletes_stalled_on_a_helper_do_not_hold_up_the_owner() {
    for io in BACKENDS {
        let dir = tmpdir(&format!("off-owner-retention-{io:?}"));
        let cfg = small_segments(io);
        let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
        for round in 0..4 {
            append_until_roll(&mut log, 1_000 + round * 100);
        }
        log.sync().expect("sync");
        let bases = log.segment_base_offsets();
        let (deleted, write) = log.apply_retention_deferred(1_000_000).expect("retention");
        assert_eq!(deleted, bases.len() - 1);
        let write = write.expect("file work handed out");
        let (gate, helper) = stalled_helper(move || write.write());

        let leo = serve_meanwhile(&mut log, &gate, 2_000_000);
        // A second pass waits for the first to be reported (one retention write at a time).
        assert!(log.apply_retention_deferred(9_000_000).expect("retention").1.is_none());
        assert!(dir.join(format!("{:020}.log", bases[0])).exists(), "not unlinked yet");

        gate.open();
        log.retention_done(helper.join().expect("helper")).expect("retention done");
        assert!(!dir.join(format!("{:020}.log", bases[0])).exists(), "unlinked by the helper");
        let start = log.log_start_offset();
        assert_eq!(start, bases[bases.len() - 1]);
        drop(log); // kill -9
        let log = Log::open(&dir, cfg, 0).expect("reopen");
        assert_eq!(log.log_start_offset(), start);
        assert_eq!(all_offsets(&log), (start.0..leo).collect::<Vec<_>>());
    }
}

/// DeleteRecords while a retention write is out: the write carries the older log start, so
/// reporting it rewrites the checkpoint with the newer one, and an unclean reopen keeps that.
#[test]
fn delete_records_during_a_retention_write_is_not_undone_by_it() {
    let dir = tmpdir("off-owner-delete-records");
    let cfg = small_segments(IoBackend::Std);
    let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
    for round in 0..4 {
        append_until_roll(&mut log, 1_000 + round * 100);
    }
    log.sync().expect("sync");
    let (deleted, write) = log.apply_retention_deferred(1_000_000).expect("retention");
    assert!(deleted > 0);
    let write = write.expect("file work handed out");
    let retention_start = log.log_start_offset();
    let leo = log.log_end_offset();
    let wanted = leo.0 - 1;
    assert!(wanted > retention_start.0);
    assert_eq!(log.delete_records(Offset(wanted)).expect("delete records"), Offset(wanted));
    // The helper writes the retention's (older) log start after delete_records wrote its own.
    let result = write.write();
    log.retention_done(result).expect("retention done");
    drop(log); // kill -9
    let log = Log::open(&dir, cfg, 0).expect("reopen");
    assert_eq!(log.log_start_offset(), Offset(wanted));
}

#[test]
fn compaction_stalled_on_a_helper_does_not_hold_up_the_owner() {
    for io in BACKENDS {
        let dir = tmpdir(&format!("off-owner-compaction-{io:?}"));
        let cfg = LogConfig { retention_ms: -1, ..small_segments(io) };
        let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
        for round in 0..4 {
            append_until_roll(&mut log, 1_000 + round * 100);
            log.sync().expect("sync: the recovery point covers the sealed segments");
        }
        let job = log.compaction_job(10_000, 60_000).expect("sealed segments to clean");
        assert!(log.compaction_job(10_000, 60_000).is_none(), "one pass at a time");
        let (gate, helper) = stalled_helper(move || job.run());

        let leo = serve_meanwhile(&mut log, &gate, 20_000);
        // While the pass is out, retention leaves its segments alone and truncation is refused.
        log.set_config(LogConfig { retention_bytes: 1, ..cfg.clone() }).unwrap();
        assert_eq!(log.apply_retention_deferred(20_000).expect("retention").0, 0);
        log.set_config(cfg.clone()).unwrap();
        let segments = log.segment_base_offsets();
        assert!(log.truncate_to(Offset(1)).is_err(), "refused while a pass is out");
        assert_eq!(log.segment_base_offsets(), segments);
        assert_eq!(log.log_end_offset(), Offset(leo));

        gate.open();
        let stats = log.compaction_done(helper.join().expect("helper")).expect("compaction done");
        assert!(stats.segments_rewritten > 0 && stats.records_removed > 0, "{stats:?}");
        let after = all_offsets(&log);
        assert!(after.len() < leo as usize, "records removed: {} of {leo} left", after.len());
        assert_eq!(after.last(), Some(&(leo - 1)));
        // The owner goes on; the compacted segments survive a kill and reopen as they are.
        log.append(&mut batch(5, 200, 30_000), LeaderEpoch(0), 30_000).expect("append after the pass");
        log.sync().expect("sync");
        let expected = all_offsets(&log);
        drop(log); // kill -9
        let mut log = Log::open(&dir, cfg.clone(), 0).expect("reopen");
        assert_eq!(all_offsets(&log), expected);
        log.truncate_to(Offset(expected[expected.len() - 3])).expect("truncation after the pass");
        log.close().expect("close");
    }
}

/// A close while a pass is out (it may be between the steps of a segment swap) leaves the next
/// open to full recovery, and the cancelled pass rewrites nothing more; the log is intact.
#[test]
fn a_close_while_a_compaction_pass_is_out_leaves_a_log_that_recovers() {
    let dir = tmpdir("off-owner-close");
    let cfg = LogConfig { retention_ms: -1, ..small_segments(IoBackend::Std) };
    let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
    for round in 0..4 {
        append_until_roll(&mut log, 1_000 + round * 100);
        log.sync().expect("sync");
    }
    let expected = all_offsets(&log);
    let job = log.compaction_job(10_000, 60_000).expect("a pass");
    log.close().expect("close");
    assert!(!dir.join(CLEAN_SHUTDOWN).exists(), "no clean-shutdown mark while a pass is out");
    let done = job.run();
    let mut log = Log::open(&dir, cfg, 0).expect("reopen");
    assert_eq!(log.compaction_done(done).expect("ignored by another instance").segments_rewritten, 0);
    assert_eq!(all_offsets(&log), expected, "nothing rewritten after the close");
}

/// A deleted partition's directory is renamed on the owner's thread (a new partition of the
/// same name can open at once) and removed on a helper; while the helper is stalled the new
/// log works. A rename whose removal never ran (a stop or crash in between) is cleaned up by
/// `remove_retired_dirs`, which leaves live partitions alone.
#[test]
fn a_deleted_partition_is_removed_off_the_owners_thread() {
    for io in BACKENDS {
        let root = tmpdir(&format!("off-owner-delete-{io:?}"));
        let dir = root.join("t-0");
        let cfg = small_segments(io);
        let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
        for round in 0..3 {
            append_until_roll(&mut log, 1_000 + round * 100);
        }
        let removal = log.delete_deferred().expect("renamed");
        let retired = removal.dir().expect("a directory").to_path_buf();
        assert!(!dir.exists() && retired.exists());
        let (gate, helper) = stalled_helper(move || removal.run());

        let mut log = Log::open(&dir, cfg.clone(), 0).expect("a new partition of the same name");
        log.append(&mut batch(5, 200, 4_000), LeaderEpoch(0), 4_000).expect("append");
        let leo = serve_meanwhile(&mut log, &gate, 5_000);
        assert!(retired.exists(), "the helper is stalled");
        gate.open();
        helper.join().expect("helper").expect("removed");
        assert!(!retired.exists());
        assert_eq!(all_offsets(&log), (0..leo).collect::<Vec<_>>(), "the new log is untouched");

        // A deletion that stopped after its rename: removed at the next start-up.
        let other = root.join("t-1");
        let mut gone = Log::open(&other, cfg.clone(), 0).expect("open");
        gone.append(&mut batch(5, 200, 1), LeaderEpoch(0), 1).expect("append");
        gone.close().expect("close");
        let left = Log::retire_dir(&other, io).expect("retire").expect("it exists");
        assert!(Log::retire_dir(&root.join("t-9"), io).expect("nothing to retire").is_none());
        drop(left); // never run
        assert_eq!(riptide_engine::remove_retired_dirs(&root, io).expect("clean up"), 1);
        assert!(!other.exists());
        let names: Vec<_> =
            std::fs::read_dir(&root).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("t-0")], "only the live partition is left");
        log.close().expect("close");
    }
}
