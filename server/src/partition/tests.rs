//! The partition's rules with time and replicas driven by the test (ManualClock, follower
//! fetches called directly): acks answers, the high watermark, min.insync.replicas, waiter
//! order, leadership loss, divergence and ISR timing. Logs are real files in a temp dir.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use riptide_format::build::{self, BatchFields};

use super::replica::PartitionView;
use super::*;
use crate::clock::ManualClock;

struct Fixture {
    dir: std::path::PathBuf,
    clock: Arc<ManualClock>,
    p: Partition,
    replies: flume::Receiver<(usize, AppendResult)>,
    tx: flume::Sender<(usize, AppendResult)>,
    next: usize,
}

fn config(durability: Durability, min_insync: usize) -> EffectiveTopicConfig {
    EffectiveTopicConfig {
        log: Default::default(),
        durability,
        cleanup_delete: true,
        cleanup_compact: false,
        delete_retention_ms: 86_400_000,
        min_insync_replicas: min_insync,
        encryption: None,
    }
}

fn view(leader: BrokerId, epoch: i32, isr: &[BrokerId], partition_epoch: i32) -> PartitionView {
    PartitionView {
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
        leader,
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch,
    }
}

/// One batch of `n` records (the values are their indexes).
fn batch(n: i32) -> Bytes {
    let mut b = BytesMut::new();
    build::put_header_room(&mut b);
    let values: Vec<[u8; 4]> = (0..n).map(i32::to_be_bytes).collect();
    build::put_keyless_records(&mut b, values.iter().map(|v| v.as_slice()));
    build::write_header(&mut b, &BatchFields::plain(n, 1_000, 1_000, 0));
    b.freeze()
}

impl Fixture {
    fn new(name: &str, durability: Durability, min_insync: usize) -> Fixture {
        let dir = std::env::temp_dir().join(format!("riptide-partition-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let clock = ManualClock::new(1_700_000_000_000);
        let p = Partition::open(
            format!("t-{name}"),
            1,
            &dir,
            &config(durability, min_insync),
            Arc::new(Metrics::default()),
            Arc::new(AtomicI64::new(0)),
            clock.clone(),
        )
        .expect("open");
        let (tx, replies) = flume::unbounded();
        Fixture { dir, clock, p, replies, tx, next: 0 }
    }

    /// Appends a batch of `n` records; returns its index in the reply channel.
    fn produce(&mut self, n: i32, acks: Acks) -> usize {
        let i = self.next;
        self.next += 1;
        self.p.append(batch(n), acks, AppendReply::new(self.tx.clone(), i));
        i
    }

    fn answered(&self) -> Vec<(usize, AppendResult)> {
        self.replies.try_iter().collect()
    }

    /// Follower `id` fetches at `offset` (acknowledging everything below it).
    fn follower_fetch(&mut self, id: BrokerId, offset: i64) -> Result<ReadResult, PartitionError> {
        self.follower_fetch_from(id, offset, -1)
    }

    /// `follower_fetch` from a follower whose log starts at `log_start`.
    fn follower_fetch_from(
        &mut self,
        id: BrokerId,
        offset: i64,
        log_start: i64,
    ) -> Result<ReadResult, PartitionError> {
        let epoch = self.p.leader_epoch();
        let fetch = ReplicaFetch {
            replica_id: id,
            current_leader_epoch: epoch,
            last_fetched_epoch: LeaderEpoch::UNKNOWN,
            log_start_offset: Offset(log_start),
        };
        self.p.read_for_follower(fetch, Offset(offset), 1 << 20, None)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn acks_all_is_answered_when_every_in_sync_follower_has_the_batch_in_order() {
    let mut f = Fixture::new("acks-all", Durability::Replicated, 2);
    f.p.apply_view(&view(1, 1, &[1, 2, 3], 1));
    let a = f.produce(2, Acks::All);
    let b = f.produce(3, Acks::All);
    assert!(f.answered().is_empty(), "no follower has anything yet");
    assert_eq!(f.p.high_watermark(), Offset(0));
    f.follower_fetch(2, 5).expect("fetch");
    assert!(f.answered().is_empty(), "follower 3 is in the ISR and has nothing");
    f.follower_fetch(3, 2).expect("fetch");
    assert_eq!(f.p.high_watermark(), Offset(2));
    let got = f.answered();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0, got[0].1.as_ref().map(|x| x.base_offset).ok()), (a, Some(Offset(0))));
    f.follower_fetch(3, 5).expect("fetch");
    let got = f.answered();
    assert_eq!((got[0].0, got[0].1.as_ref().map(|x| x.base_offset).ok()), (b, Some(Offset(2))));
    assert_eq!(f.p.high_watermark(), Offset(5));
    // A follower fetching from behind (a retried fetch) never moves the high watermark back.
    f.follower_fetch(2, 3).expect("fetch");
    assert_eq!(f.p.high_watermark(), Offset(5));
}

#[test]
fn acks_one_is_answered_on_write_without_fsync_and_after_the_group_commit_with_it() {
    let mut f = Fixture::new("acks-one", Durability::Replicated, 1);
    f.p.apply_view(&view(1, 1, &[1, 2, 3], 1));
    f.produce(1, Acks::Leader);
    assert_eq!(f.answered().len(), 1);

    let mut f = Fixture::new("acks-one-fsync", Durability::Fsync, 1);
    f.p.apply_view(&view(1, 1, &[1], 1));
    let i = f.produce(4, Acks::Leader);
    assert!(f.answered().is_empty(), "not durable yet");
    assert!(f.p.is_dirty());
    let target = f.p.take_sync_target().expect("something to sync");
    for file in &target.files {
        file.sync_data().expect("fdatasync");
    }
    if let Some(dir) = &target.dir {
        dir.sync_all().expect("fsync dir");
    }
    let _ = f.p.complete_sync(target.up_to_offset, Ok(()));
    let got = f.answered();
    assert_eq!((got.len(), got[0].0), (1, i));
    assert_eq!(f.p.high_watermark(), Offset(4), "a single-replica ISR: durable is committed");
}

#[test]
fn min_insync_refuses_acks_all_up_front_and_fails_a_batch_the_isr_shrank_under() {
    let mut f = Fixture::new("min-isr", Durability::Replicated, 2);
    f.p.apply_view(&view(1, 1, &[1], 1));
    f.produce(1, Acks::All);
    let got = f.answered();
    assert!(matches!(got[0].1, Err(PartitionError::NotEnoughReplicas(_))), "{:?}", got[0].1);
    assert_eq!(f.p.log_end_offset(), Offset(0), "refused before the write");
    // acks=1 still works below min.insync.replicas.
    f.produce(1, Acks::Leader);
    assert!(f.answered()[0].1.is_ok());

    // Written with an ISR of 2, then the ISR shrinks to the leader alone before the follower
    // has it: the high watermark passes it, and the producer hears it was under-replicated.
    f.p.apply_view(&view(1, 1, &[1, 2], 2));
    f.produce(1, Acks::All);
    assert!(f.answered().is_empty());
    f.p.apply_view(&view(1, 1, &[1], 3));
    let got = f.answered();
    assert!(matches!(got[0].1, Err(PartitionError::NotEnoughReplicasAfterAppend(_))), "{:?}", got[0].1);
}

#[test]
fn losing_leadership_fails_what_waited_for_the_isr() {
    let mut f = Fixture::new("lose", Durability::Replicated, 1);
    f.p.apply_view(&view(1, 1, &[1, 2], 1));
    f.produce(1, Acks::All);
    f.produce(1, Acks::All);
    f.p.apply_view(&view(2, 2, &[1, 2], 2));
    let got = f.answered();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|(_, r)| matches!(r, Err(PartitionError::NotLeaderOrFollower))));
    assert!(!f.p.is_leader());
    assert_eq!(f.p.leader_epoch(), LeaderEpoch(2));
    f.produce(1, Acks::Leader);
    assert!(matches!(f.answered()[0].1, Err(PartitionError::NotLeaderOrFollower)));
    // A fetch at the old epoch is fenced once it is a leader again at a newer one.
    f.p.apply_view(&view(1, 3, &[1, 2], 3));
    let stale = ReplicaFetch {
        replica_id: 2,
        current_leader_epoch: LeaderEpoch(2),
        last_fetched_epoch: LeaderEpoch::UNKNOWN,
        log_start_offset: Offset::NONE,
    };
    let read = f.p.read_for_follower(stale, Offset(0), 1024, None);
    assert!(matches!(read, Err(PartitionError::FencedLeaderEpoch(_))));
}

#[test]
fn a_lagging_follower_leaves_the_isr_only_after_the_lag_limit_on_the_injected_clock() {
    let mut f = Fixture::new("isr", Durability::Replicated, 1);
    let lag = Duration::from_secs(30);
    f.p.apply_view(&view(1, 1, &[1, 2, 3], 1));
    f.produce(10, Acks::Leader);
    f.follower_fetch(2, 10).expect("fetch");
    f.follower_fetch(3, 0).expect("fetch");
    f.clock.advance(Duration::from_secs(29));
    f.follower_fetch(2, 10).expect("fetch");
    assert_eq!(f.p.isr_change(lag, &|_| true), None, "29 s behind is within the limit");
    f.clock.advance(Duration::from_secs(2));
    f.follower_fetch(2, 10).expect("fetch");
    let change = f.p.isr_change(lag, &|_| true).expect("follower 3 is 31 s behind");
    assert_eq!(change.isr, vec![1, 2]);
    // Applied, the smaller ISR commits what follower 2 has.
    f.p.apply_view(&view(1, 1, &[1, 2], 2));
    assert_eq!(f.p.high_watermark(), Offset(10));
    // Follower 3 catches up: it is proposed back.
    f.follower_fetch(3, 10).expect("fetch");
    let change = f.p.isr_change(lag, &|_| true).expect("expand");
    assert_eq!(change.isr, vec![1, 2, 3]);
}

#[test]
fn a_diverged_follower_truncates_to_where_the_leader_log_agrees() {
    let mut f = Fixture::new("diverge", Durability::Replicated, 1);
    // As leader at epoch 1 this replica writes 5 one-record batches that no follower takes
    // (truncation cuts at batch boundaries).
    f.p.apply_view(&view(1, 1, &[1], 1));
    for _ in 0..5 {
        f.produce(1, Acks::Leader);
    }
    assert_eq!(f.p.log_end_offset(), Offset(5));
    // Replica 2 became leader at epoch 2 having had only the first 3 of them.
    f.p.apply_view(&view(2, 2, &[2], 2));
    let diverging = EpochEndOffset { epoch: LeaderEpoch(1), end_offset: Offset(3) };
    let position = f.p.truncate_diverged(LeaderEpoch(2), diverging).expect("truncate");
    assert_eq!(position.log_end_offset, Offset(3));
    assert_eq!(f.p.log_end_offset(), Offset(3));
    assert!(f.p.high_watermark() <= Offset(3), "the high watermark follows the log end down");
}

#[test]
fn a_view_from_the_past_never_lowers_the_leader_epoch() {
    let mut f = Fixture::new("stale-view", Durability::Replicated, 1);
    f.p.apply_view(&view(1, 5, &[1], 1));
    f.produce(1, Acks::Leader);
    // Out of order (or metadata reset under a log that saw epoch 5): as follower at 3.
    f.p.apply_view(&view(2, 3, &[2], 2));
    assert_eq!(f.p.leader_epoch(), LeaderEpoch(5));
    // The leader epoch the follower fetches under must still be the one it holds.
    let position = f.p.restart_at(LeaderEpoch(5), Offset(0)).expect("follows at 5");
    assert_eq!(position.last_epoch, LeaderEpoch(5));
}

/// A transactional batch of `n` records from producer `pid` (epoch 0) at sequence `seq`.
fn txn_batch(n: i32, pid: i64, seq: i32) -> Bytes {
    let mut b = BytesMut::from(&batch(n)[..]);
    let fields = BatchFields {
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
        ..BatchFields::plain(n, 1_000, 1_000, riptide_format::attr::TRANSACTIONAL)
    };
    build::write_header(&mut b, &fields);
    b.freeze()
}

/// Kafka's ListOffsets for a read_committed consumer: a timestamp lookup answers only below
/// the last stable offset, as "latest" does.
#[test]
fn read_committed_timestamp_lookups_stop_at_the_last_stable_offset() {
    let mut f = Fixture::new("lso-ts", Durability::Replicated, 1);
    f.p.apply_view(&view(1, 1, &[1], 1));
    let tx = f.tx.clone();
    f.p.append(batch(2), Acks::Leader, AppendReply::new(tx.clone(), 0)); // 0..=1 at 1_000
    f.p.append(txn_batch(1, 7, 0), Acks::Leader, AppendReply::new(tx.clone(), 1)); // 2 open
    let mut late = BytesMut::from(&batch(1)[..]);
    build::write_header(&mut late, &BatchFields::plain(1, 2_000, 2_000, 0));
    f.p.append(late.freeze(), Acks::Leader, AppendReply::new(tx, 2)); // 3 at 2_000
    assert_eq!((f.p.high_watermark(), f.p.last_stable_offset()), (Offset(4), Offset(2)));
    let at = |spec| f.p.list_offset(spec).map(|o| (o.offset, o.timestamp)).expect("list");
    let late = (Offset(3), 2_000);
    assert_eq!(at(OffsetSpec::AtOrAfter { timestamp: 1_500, committed: false }), late);
    assert_eq!(at(OffsetSpec::MaxTimestamp { committed: false }), late);
    for spec in [
        OffsetSpec::AtOrAfter { timestamp: 1_500, committed: false },
        OffsetSpec::MaxTimestamp { committed: false },
    ] {
        assert_eq!(at(spec.read_committed()), (Offset::NONE, -1), "{spec:?} above the last stable offset");
    }
    let early = OffsetSpec::AtOrAfter { timestamp: 1_000, committed: true };
    assert_eq!(at(early), (Offset(0), 1_000));
    assert_eq!(OffsetSpec::Latest.read_committed(), OffsetSpec::LastStable);
}

#[test]
fn read_committed_stops_at_the_last_stable_offset_and_lists_aborted_transactions() {
    let mut f = Fixture::new("lso", Durability::Replicated, 1);
    f.p.apply_view(&view(1, 1, &[1], 1));
    let tx = f.tx.clone();
    f.p.append(batch(2), Acks::Leader, AppendReply::new(tx.clone(), 0)); // 0..=1 plain
    f.p.append(txn_batch(2, 7, 0), Acks::Leader, AppendReply::new(tx.clone(), 1)); // 2..=3 open
    f.p.append(batch(1), Acks::Leader, AppendReply::new(tx.clone(), 2)); // 4 plain
    assert_eq!((f.p.high_watermark(), f.p.last_stable_offset()), (Offset(5), Offset(2)));
    assert_eq!(f.p.list_offset(OffsetSpec::LastStable).map(|o| o.offset).ok(), Some(Offset(2)));
    assert_eq!(f.p.open_transactions(), vec![(7, Offset(2))]);
    let committed = f.p.read(Offset(0), 1 << 20, true, None, true).expect("read");
    assert_eq!(committed.slice.as_ref().map(|s| s.end_offset), Some(Offset(2)));
    // At the last stable offset (or between it and the high watermark) a committed read waits.
    let (wake_tx, wake_rx) = flume::bounded(1);
    let parked = f.p.read(Offset(3), 1 << 20, true, Some(wake_tx), true).expect("read");
    assert!(parked.slice.is_none() && parked.aborted.is_empty());
    let uncommitted = f.p.read(Offset(0), 1 << 20, true, None, false).expect("read");
    assert_eq!(
        uncommitted.slice.as_ref().map(|s| s.len > committed.slice.as_ref().map_or(0, |c| c.len)),
        Some(true)
    );
    let abort =
        TxnMarker { producer_id: 7, producer_epoch: 0, control: ControlType::Abort, coordinator_epoch: 0 };
    f.p.append_marker(&abort, Acks::All, AppendReply::new(tx, 3)); // 5: ABORT
    assert_eq!((f.p.high_watermark(), f.p.last_stable_offset()), (Offset(6), Offset(6)));
    assert!(wake_rx.try_recv().is_ok(), "the parked committed read is woken");
    let after = f.p.read(Offset(2), 1 << 20, true, None, true).expect("read");
    let aborted = AbortedTxn { producer_id: 7, first_offset: 2, last_offset: 5, last_stable_offset: 6 };
    assert_eq!(after.aborted, vec![aborted]);
    assert_eq!(after.last_stable_offset, Offset(6));
    let answers = f.answered();
    assert_eq!(answers.len(), 4);
    assert!(answers.iter().all(|(_, r)| r.is_ok()), "{answers:?}");
    // A stale marker is refused with the producer's epoch error.
    let stale = TxnMarker { producer_epoch: -1, ..abort };
    f.p.append_marker(&stale, Acks::All, AppendReply::new(f.tx.clone(), 4));
    let refused = f.answered();
    assert!(
        matches!(&refused[0].1, Err(PartitionError::Log(e)) if matches!(e.cause(), riptide_engine::LogError::InvalidProducerEpoch { .. })),
        "stale marker: {refused:?}"
    );
}

/// DeleteRecords on a leader: its own log start moves at once, and the low watermark is the
/// smallest log start of the replicas on live brokers, each as its last fetch said (unknown
/// before its first, as in Kafka); a dead broker's replica does not count.
#[test]
fn delete_records_low_watermark_waits_for_live_followers() {
    let mut f = Fixture::new("delete-records", Durability::Replicated, 1);
    f.p.apply_view(&view(1, 1, &[1, 2, 3], 1));
    f.produce(10, Acks::Leader);
    f.follower_fetch_from(2, 10, 0).expect("fetch");
    f.follower_fetch_from(3, 10, 0).expect("fetch");
    assert_eq!(f.p.high_watermark(), Offset(10));
    let live = [1, 2, 3];
    let done = f.p.delete_records(Offset(4), &live).expect("delete");
    assert_eq!((done.offset, done.low_watermark), (Offset(4), Offset(0)));
    assert_eq!(f.p.log_start_offset(), Offset(4));
    f.follower_fetch_from(2, 10, 4).expect("fetch");
    assert_eq!(f.p.delete_records(Offset(4), &live).expect("again").low_watermark, Offset(0));
    // Broker 3 is not live: its replica no longer holds the low watermark back.
    assert_eq!(f.p.delete_records(Offset(4), &[1, 2]).expect("without 3").low_watermark, Offset(4));
    f.follower_fetch_from(3, 10, 4).expect("fetch");
    let done = f.p.delete_records(Offset::NONE, &live).expect("to the high watermark");
    assert_eq!((done.offset, done.low_watermark), (Offset(10), Offset(4)));
    let past = f.p.delete_records(Offset(11), &live).expect_err("past the high watermark");
    let out_of_range = matches!(&past, PartitionError::Log(e) if matches!(e.cause(), riptide_engine::LogError::OffsetOutOfRange { .. }));
    assert!(out_of_range, "{past:?}");
}
