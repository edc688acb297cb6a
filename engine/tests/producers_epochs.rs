//! Idempotent producers (duplicates, gaps, epochs, unknown ids, snapshot restore after clean
//! and unclean shutdown) and the replication hooks (truncate_to, leader-epoch cache).

mod common;

use common::*;
use riptide_engine::{IoBackend, Log, LogConfig};
use riptide_model::{EpochEndOffset, LeaderEpoch, Offset};

fn code(r: Result<riptide_engine::AppendInfo, riptide_engine::LogError>) -> i16 {
    r.map(|_| 0).unwrap_or_else(|e| kafka_code(&e))
}

#[test]
fn idempotent_producer_rules() {
    let dir = tmpdir("idem");
    let mut log = Log::open(&dir, config(IoBackend::Std), 0).expect("open");
    let first = log.append(&mut idempotent_batch(3, 42, 0, 0), LeaderEpoch(0), 1_000).expect("append");
    assert_eq!((first.base_offset, first.last_offset), (Offset(0), Offset(2)));
    log.append(&mut batch(2, 10, 1_000), LeaderEpoch(0), 1_000).expect("other traffic");
    let dup = log.append(&mut idempotent_batch(3, 42, 0, 0), LeaderEpoch(0), 1_000).expect("duplicate");
    assert!(dup.duplicate);
    assert_eq!((dup.base_offset, dup.last_offset), (Offset(0), Offset(2)));
    assert_eq!(log.log_end_offset(), Offset(5), "duplicate not written");
    assert_eq!(code(log.append(&mut idempotent_batch(1, 42, 0, 5), LeaderEpoch(0), 1_000)), 45, "gap");
    // An unknown producer (new, or its state expired) may start at any sequence, as Kafka's
    // ProducerStateManager accepts; it is known from then on.
    log.append(&mut idempotent_batch(1, 43, 0, 7), LeaderEpoch(0), 1_000).expect("unknown producer");
    assert_eq!(
        code(log.append(&mut idempotent_batch(1, 43, 0, 9), LeaderEpoch(0), 1_000)),
        45,
        "then in sequence"
    );
    log.append(&mut idempotent_batch(2, 42, 0, 3), LeaderEpoch(0), 1_000).expect("next in sequence");
    assert_eq!(
        code(log.append(&mut idempotent_batch(1, 42, 1, 4), LeaderEpoch(0), 1_000)),
        45,
        "new epoch must start at 0"
    );
    log.append(&mut idempotent_batch(1, 42, 1, 0), LeaderEpoch(0), 1_000).expect("new epoch");
    assert_eq!(
        code(log.append(&mut idempotent_batch(1, 42, 0, 5), LeaderEpoch(0), 1_000)),
        47,
        "stale epoch"
    );
    // Only the last five batches are remembered.
    for seq in 1..7 {
        log.append(&mut idempotent_batch(1, 42, 1, seq), LeaderEpoch(0), 1_000).expect("append");
    }
    assert!(
        log.append(&mut idempotent_batch(1, 42, 1, 2), LeaderEpoch(0), 1_000)
            .expect("dup of 5th-last")
            .duplicate
    );
    assert_eq!(
        code(log.append(&mut idempotent_batch(1, 42, 1, 1), LeaderEpoch(0), 1_000)),
        45,
        "6th-last is forgotten"
    );
}

#[test]
fn producer_state_survives_clean_and_unclean_restarts() {
    let dir = tmpdir("idem-restart");
    let cfg = LogConfig { segment_bytes: 1024, ..config(IoBackend::Std) };
    let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
    let mut offsets = Vec::new();
    for seq in 0..40 {
        offsets.push(
            log.append(&mut idempotent_batch(1, 7, 0, seq), LeaderEpoch(0), 1_000)
                .expect("append")
                .base_offset,
        );
    }
    assert!(log.segment_count() > 2, "snapshots were taken on roll");
    log.close().expect("close");
    let mut log = Log::open(&dir, cfg.clone(), 0).expect("reopen");
    let dup =
        log.append(&mut idempotent_batch(1, 7, 0, 38), LeaderEpoch(0), 1_000).expect("dup after restart");
    assert!(dup.duplicate && dup.base_offset == offsets[38]);
    log.append(&mut idempotent_batch(1, 7, 0, 40), LeaderEpoch(0), 1_000).expect("continues");
    log.sync().expect("sync");
    drop(log); // no close: producer state must be rebuilt from the snapshot + log tail
    let mut log = Log::open(&dir, cfg.clone(), 0).expect("reopen unclean");
    assert!(log.append(&mut idempotent_batch(1, 7, 0, 40), LeaderEpoch(0), 1_000).expect("dup").duplicate);
    assert_eq!(code(log.append(&mut idempotent_batch(1, 7, 0, 43), LeaderEpoch(0), 1_000)), 45);
    // Damaged snapshots are ignored (state rebuilt from the whole log).
    drop(log);
    for e in std::fs::read_dir(&dir).expect("dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "snapshot") {
            std::fs::write(&p, b"garbage").expect("write");
        }
    }
    let mut log = Log::open(&dir, cfg, 0).expect("reopen");
    assert!(log.append(&mut idempotent_batch(1, 7, 0, 39), LeaderEpoch(0), 1_000).expect("dup").duplicate);
}

#[test]
fn truncate_to_and_leader_epochs() {
    for io in BACKENDS {
        let dir = tmpdir(&format!("truncate-{io:?}"));
        let cfg = LogConfig { segment_bytes: 2 * 1024, ..config(io) };
        let mut log = Log::open(&dir, cfg.clone(), 0).expect("open");
        for i in 0..60 {
            let epoch = if i < 20 {
                1
            } else if i < 40 {
                3
            } else {
                4
            };
            log.append(&mut batch(2, 50, 1_000 + i), LeaderEpoch(epoch), 2_000).expect("append");
        }
        assert_eq!(
            log.leader_epochs(),
            vec![(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(40)), (LeaderEpoch(4), Offset(80))]
        );
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(2)),
            Some(EpochEndOffset { epoch: LeaderEpoch(1), end_offset: Offset(40) })
        );
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(3)),
            Some(EpochEndOffset { epoch: LeaderEpoch(3), end_offset: Offset(80) })
        );
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(4)),
            Some(EpochEndOffset { epoch: LeaderEpoch(4), end_offset: Offset(120) })
        );
        assert_eq!(log.end_offset_for_epoch(LeaderEpoch(5)), None);
        log.sync().expect("sync");
        let segs_before = log.segment_count();
        // Mid-batch: cut at the start of the batch holding offset 51.
        log.truncate_to(Offset(51)).expect("truncate");
        assert_eq!(log.log_end_offset(), Offset(50));
        assert!(log.segment_count() < segs_before);
        assert!(log.durable_offset() <= Offset(50));
        assert_eq!(log.leader_epochs(), vec![(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(40))]);
        assert_eq!(all_offsets(&log), (0..50).collect::<Vec<_>>());
        log.append(&mut batch(3, 50, 5_000), LeaderEpoch(5), 6_000).expect("append after truncation");
        assert_eq!(
            log.leader_epochs(),
            vec![(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(40)), (LeaderEpoch(5), Offset(50))]
        );
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(4)),
            Some(EpochEndOffset { epoch: LeaderEpoch(3), end_offset: Offset(50) })
        );
        log.sync().expect("sync");
        drop(log);
        let mut log = Log::open(&dir, cfg.clone(), 0).expect("reopen");
        assert_eq!(log.log_end_offset(), Offset(53));
        assert_eq!(
            log.leader_epochs(),
            vec![(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(40)), (LeaderEpoch(5), Offset(50))]
        );
        assert_eq!(all_offsets(&log), (0..53).collect::<Vec<_>>());
        log.truncate_to(Offset(0)).expect("truncate fully");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (Offset(0), Offset(0)));
        log.append(&mut batch(1, 5, 1), LeaderEpoch(6), 1).expect("append");
        assert_eq!(all_offsets(&log), vec![0]);
    }
}

#[test]
fn group_commit_marks_durable_only_what_was_synced() {
    let dir = tmpdir("group-commit");
    let cfg = LogConfig { segment_bytes: 2 * 1024, ..config(IoBackend::Uring) };
    let mut log = Log::open(&dir, cfg, 0).expect("open");
    assert!(log.sync_target().is_none(), "nothing dirty");
    for i in 0..30 {
        log.append(&mut batch(2, 50, 1_000 + i), LeaderEpoch(0), 2_000).expect("append");
    }
    let target = log.sync_target().expect("dirty");
    assert_eq!(target.up_to_offset, Offset(60));
    assert!(target.files.len() > 1, "rolled segments are synced too");
    log.append(&mut batch(2, 50, 1_000), LeaderEpoch(0), 2_000).expect("append during sync");
    for f in &target.files {
        f.sync_data().expect("fdatasync");
    }
    log.mark_durable(target.up_to_offset).expect("mark");
    assert_eq!(log.durable_offset(), Offset(60));
    let t2 = log.sync_target().expect("still dirty");
    assert_eq!((t2.up_to_offset, t2.files.len()), (Offset(62), 1));
    log.mark_failed(std::io::Error::from_raw_os_error(libc::EIO));
    assert!(log.is_failed());
    assert!(log.sync_target().is_none());
    let err = log.append(&mut batch(1, 5, 1), LeaderEpoch(0), 1).expect_err("poisoned");
    assert_eq!(kafka_code(&err), 56);
    assert_eq!(kafka_code(&log.sync().expect_err("poisoned")), 56);
    assert!(log.read(Offset(0), 1000, Offset(i64::MAX), true).is_ok(), "reads still work");
}

/// A follower's log, fed the leader's stored batches, ends up with the same offsets, leader
/// epochs and producer state; refetched batches are skipped and a batch that does not continue
/// the log is refused without writing anything.
#[test]
fn replicated_appends_copy_the_leaders_log() {
    let (ldir, fdir) = (tmpdir("repl-leader"), tmpdir("repl-follower"));
    let cfg = LogConfig { segment_bytes: 2048, ..config(IoBackend::Std) };
    let mut leader = Log::open(&ldir, cfg.clone(), 0).expect("open");
    let mut follower = Log::open(&fdir, cfg.clone(), 0).expect("open");
    for seq in 0..20 {
        let epoch = if seq < 10 { 1 } else { 3 };
        leader.append(&mut idempotent_batch(2, 9, 0, seq * 2), LeaderEpoch(epoch), 1_000).expect("append");
    }
    let bytes = read_all(&leader, 0);
    // In two pieces, the second overlapping the first by whole batches (a refetch).
    let half = read_all(&leader, 16);
    let first_part = &bytes[..bytes.len() - half.len()];
    follower.append_replicated(first_part, 1_000).expect("first part");
    assert_eq!(follower.log_end_offset(), Offset(16));
    assert!(follower.append_replicated(first_part, 1_000).expect("refetch").is_none());
    let info = follower.append_replicated(&bytes, 1_000).expect("rest").expect("new data");
    assert_eq!((info.base_offset, info.last_offset), (Offset(16), Offset(39)));
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    assert_eq!(read_all(&follower, 0), bytes, "byte-identical log");
    assert!(follower.segment_count() > 1, "rolled while replicating");
    // The follower knows the producer: as a new leader it refuses a duplicate and continues.
    assert!(
        follower.append(&mut idempotent_batch(2, 9, 0, 38), LeaderEpoch(4), 1_000).expect("dup").duplicate
    );
    follower.append(&mut idempotent_batch(2, 9, 0, 40), LeaderEpoch(4), 1_000).expect("next sequence");
    // A batch that goes backwards is refused, nothing written.
    let leo = follower.log_end_offset();
    let mut overlapping = batch(3, 10, 1_000);
    overlapping[..8].copy_from_slice(&(leo.0 - 1).to_be_bytes());
    fix_crc(&mut overlapping);
    assert!(follower.append_replicated(&overlapping, 1_000).is_err(), "overlaps the log end");
    assert_eq!(follower.log_end_offset(), leo);
    let mut corrupt = read_all(&leader, 38);
    let n = corrupt.len();
    corrupt[n - 1] ^= 0xff;
    let mut gap = corrupt.clone();
    gap[..8].copy_from_slice(&(leo.0 + 5).to_be_bytes());
    assert!(follower.append_replicated(&gap, 1_000).is_err(), "CRC checked");
    follower.close().expect("close");
    let reopened = Log::open(&fdir, cfg, 0).expect("reopen");
    assert_eq!(reopened.log_end_offset(), leo);
    assert_eq!(
        reopened.leader_epochs(),
        vec![(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(20)), (LeaderEpoch(4), Offset(40))]
    );
}

/// KIP-595's divergence rule needs the new leader's epoch in its cache before it writes: a
/// follower whose last epoch the leader never saw learns where the leader's older epoch ended,
/// and truncates to the smaller of that and its own end of that epoch.
#[test]
fn a_new_leader_answers_for_epochs_it_never_saw() {
    let (ldir, fdir) = (tmpdir("epoch-leader"), tmpdir("epoch-follower"));
    let mut leader = Log::open(&ldir, config(IoBackend::Std), 0).expect("open");
    let mut follower = Log::open(&fdir, config(IoBackend::Std), 0).expect("open");
    for _ in 0..30 {
        leader.append(&mut batch(1, 10, 1_000), LeaderEpoch(1), 1_000).expect("append");
    }
    for _ in 0..20 {
        follower.append(&mut batch(1, 10, 1_000), LeaderEpoch(1), 1_000).expect("append");
    }
    // The follower led epoch 2 briefly and wrote what nobody else got.
    for _ in 0..5 {
        follower.append(&mut batch(1, 10, 1_000), LeaderEpoch(2), 1_000).expect("append");
    }
    leader.begin_leader_epoch(LeaderEpoch(3)).expect("lead");
    assert_eq!(
        leader.end_offset_for_epoch(LeaderEpoch(2)),
        Some(EpochEndOffset { epoch: LeaderEpoch(1), end_offset: Offset(30) }),
        "epoch 2 unknown: epoch 1 ended at 30"
    );
    let EpochEndOffset { epoch, end_offset: leader_end } =
        leader.end_offset_for_epoch(LeaderEpoch(2)).expect("answer");
    let own_end = follower.end_offset_for_epoch(epoch).expect("own").end_offset;
    assert_eq!(own_end, Offset(20));
    follower.truncate_to(leader_end.min(own_end)).expect("truncate");
    assert_eq!(follower.log_end_offset(), Offset(20));
    assert_eq!(follower.leader_epochs(), vec![(LeaderEpoch(1), Offset(0))]);
    leader.append(&mut batch(1, 10, 1_000), LeaderEpoch(3), 1_000).expect("append in epoch 3");
    assert_eq!(leader.leader_epochs(), vec![(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(30))]);
}

/// A follower whose log ends below the leader's log start (the leader's oldest segments were
/// deleted) restarts empty at that start, takes the leader's batches from there, and keeps
/// its new start across a restart without a clean shutdown.
#[test]
fn follower_restarts_at_the_leaders_log_start() {
    for io in BACKENDS {
        let (ldir, fdir) = (tmpdir(&format!("start-at-l-{io:?}")), tmpdir(&format!("start-at-f-{io:?}")));
        let cfg = LogConfig { segment_bytes: 1024, ..config(io) };
        let mut leader = Log::open(&ldir, cfg.clone(), 0).expect("open");
        for i in 0..30 {
            leader.append(&mut batch(2, 40, 1_000 + i), LeaderEpoch(2), 2_000).expect("append");
        }
        let mut follower = Log::open(&fdir, cfg.clone(), 0).expect("open");
        follower.append(&mut batch(3, 40, 1_000), LeaderEpoch(1), 2_000).expect("old data");
        assert!(follower.start_at(Offset(2)).is_err(), "only past the log end");
        follower.start_at(Offset(40)).expect("restart at 40");
        assert_eq!((follower.log_start_offset(), follower.log_end_offset()), (Offset(40), Offset(40)));
        assert!(follower.leader_epochs().is_empty());
        assert!(all_offsets(&follower).is_empty());
        let tail = read_all(&leader, 40);
        follower.append_replicated(&tail, 1_000).expect("the leader's batches from 40");
        assert_eq!(follower.log_end_offset(), Offset(60));
        assert_eq!(all_offsets(&follower), (40..60).collect::<Vec<_>>());
        follower.sync().expect("sync");
        drop(follower);
        let reopened = Log::open(&fdir, cfg, 0).expect("reopen");
        assert_eq!((reopened.log_start_offset(), reopened.log_end_offset()), (Offset(40), Offset(60)));
        assert_eq!(read_all(&reopened, 40), tail, "byte-identical tail");
    }
}
