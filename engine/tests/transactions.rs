//! Transactions in the log: open transactions give the first unstable offset, ABORT markers
//! fill the aborted index, markers with a stale epoch are refused, and all of it survives a
//! clean close, a crash (reopen without close) and a follower's copy of the log.

mod common;

use common::*;
use kafka_protocol::records::Compression;
use riptide_engine::{AbortedTxn, ControlType, IoBackend, Log, TxnMarker};
use riptide_model::{LeaderEpoch, Offset};

fn txn_batch(n: usize, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    let mut recs = records(n, 10, 1_000, Some((pid, epoch, seq)));
    for r in &mut recs {
        r.transactional = true;
    }
    encode(&recs, Compression::None)
}

fn marker(pid: i64, epoch: i16, control: ControlType) -> TxnMarker {
    TxnMarker { producer_id: pid, producer_epoch: epoch, control, coordinator_epoch: 0 }
}

/// Producer 7 commits [0, 2] at 3; producer 8 writes [4, 5], producer 9 opens at 6, and 8
/// aborts at 7.
fn fill(log: &mut Log) {
    let e = LeaderEpoch(0);
    log.append(&mut txn_batch(3, 7, 0, 0), e, 1_000).expect("p7");
    assert_eq!(log.first_unstable_offset(), Some(Offset(0)));
    log.append_marker(&marker(7, 0, ControlType::Commit), e, 1_000).expect("commit");
    assert_eq!(log.first_unstable_offset(), None);
    log.append(&mut txn_batch(2, 8, 0, 0), e, 1_000).expect("p8");
    log.append(&mut txn_batch(1, 9, 0, 0), e, 1_000).expect("p9");
    assert_eq!(log.first_unstable_offset(), Some(Offset(4)));
    let abort = log.append_marker(&marker(8, 0, ControlType::Abort), e, 1_000).expect("abort");
    assert_eq!(abort.base_offset, Offset(7));
}

fn check(log: &Log) {
    assert_eq!(log.log_end_offset(), Offset(8));
    assert_eq!(log.first_unstable_offset(), Some(Offset(6)), "producer 9 is still open");
    assert_eq!(log.open_transactions(), vec![(9, Offset(6))]);
    let aborted = AbortedTxn { producer_id: 8, first_offset: 4, last_offset: 7, last_stable_offset: 6 };
    assert_eq!(log.aborted_transactions(Offset(0), Offset(8)), vec![aborted]);
    assert_eq!(log.aborted_transactions(Offset(0), Offset(4)), vec![]);
    assert_eq!(log.aborted_transactions(Offset(8), Offset(9)), vec![]);
}

#[test]
fn markers_end_transactions_and_the_index_survives_reopening() {
    for (i, clean) in [true, false].into_iter().enumerate() {
        let dir = tmpdir(&format!("txn-reopen-{i}"));
        let mut log = Log::open(&dir, config(IoBackend::Std), 0).expect("open");
        fill(&mut log);
        check(&log);
        // The control batches are Kafka's: a reader sees them flagged as control records.
        let sets = decode(&read_all(&log, 0));
        let control: Vec<i64> =
            sets.iter().flat_map(|s| &s.records).filter(|r| r.control).map(|r| r.offset).collect();
        assert_eq!(control, vec![3, 7]);
        if clean {
            log.close().expect("close");
        } else {
            log.sync().expect("sync");
            drop(log); // a crash after the data was durable: the snapshot is older
        }
        let log = Log::open(&dir, config(IoBackend::Std), 0).expect("reopen");
        check(&log);
    }
}

#[test]
fn stale_markers_are_fenced_and_followers_track_the_same_state() {
    let dir = tmpdir("txn-fence");
    let mut log = Log::open(&dir, config(IoBackend::Std), 0).expect("open");
    fill(&mut log);
    log.append(&mut txn_batch(1, 8, 1, 0), LeaderEpoch(0), 1_000).expect("p8 at epoch 1");
    let stale = log.append_marker(&marker(8, 0, ControlType::Abort), LeaderEpoch(0), 1_000);
    assert_eq!(stale.map(|_| 0).unwrap_or_else(|e| kafka_code(&e)), 47, "INVALID_PRODUCER_EPOCH");
    // A follower copying the leader's bytes learns the same transactions.
    let follower_dir = tmpdir("txn-follower");
    let mut follower = Log::open(&follower_dir, config(IoBackend::Std), 0).expect("open");
    let bytes = read_all(&log, 0);
    follower.append_replicated(&bytes, 1_000).expect("replicate");
    assert_eq!(follower.first_unstable_offset(), Some(Offset(6)));
    assert_eq!(
        follower.aborted_transactions(Offset(0), Offset(9)),
        log.aborted_transactions(Offset(0), Offset(9))
    );
    // Truncating below the abort marker reopens producer 8's transaction on the follower.
    follower.truncate_to(Offset(7)).expect("truncate");
    assert_eq!(follower.aborted_transactions(Offset(0), Offset(9)), vec![]);
    assert_eq!(follower.first_unstable_offset(), Some(Offset(4)));
}

/// Kafka's zombie-coordinator fence: a marker from a coordinator epoch older than the one of
/// the producer's last marker is refused (TRANSACTION_COORDINATOR_FENCED), also after a crash,
/// whose recovery reads the epoch back from the marker.
#[test]
fn markers_of_an_older_coordinator_are_fenced() {
    let dir = tmpdir("txn-coordinator");
    let mut log = Log::open(&dir, config(IoBackend::Std), 0).expect("open");
    let e = LeaderEpoch(0);
    let from = |coordinator_epoch, control| TxnMarker { coordinator_epoch, ..marker(9, 0, control) };
    log.append(&mut txn_batch(1, 9, 0, 0), e, 1_000).expect("p9");
    log.append_marker(&from(3, ControlType::Commit), e, 1_000).expect("coordinator epoch 3");
    log.append(&mut txn_batch(1, 9, 0, 1), e, 1_000).expect("p9 again");
    let code = |r: Result<riptide_engine::AppendInfo, riptide_engine::LogError>| {
        r.map(|_| 0).unwrap_or_else(|e| kafka_code(&e))
    };
    assert_eq!(code(log.append_marker(&from(2, ControlType::Abort), e, 1_000)), 52, "a zombie coordinator");
    log.sync().expect("sync"); // (direct appends stay in memory until then)
    drop(log); // a crash: no close, no snapshot at the end
    let mut log = Log::open(&dir, config(IoBackend::Std), 0).expect("reopen");
    assert_eq!(code(log.append_marker(&from(2, ControlType::Abort), e, 1_000)), 52, "after recovery");
    log.append_marker(&from(4, ControlType::Abort), e, 1_000).expect("a newer coordinator");
    assert_eq!(log.first_unstable_offset(), None);
}

/// Reverses the record bytes: a stand-in for encryption at rest (header readable, SEALED set).
struct Reverse;

impl riptide_engine::BatchSealer for Reverse {
    fn seal(&self, batch: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let start = out.len();
        out.extend_from_slice(&batch[..61]);
        out.extend(batch[61..].iter().rev());
        let attrs = i16::from_be_bytes([out[start + 21], out[start + 22]]) | riptide_format::attr::SEALED;
        out[start + 21..start + 23].copy_from_slice(&attrs.to_be_bytes());
        riptide_format::build::update_crc(&mut out[start..]);
        Ok(())
    }

    fn open(&self, sealed: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let start = out.len();
        out.extend_from_slice(&sealed[..61]);
        out.extend(sealed[61..].iter().rev());
        let attrs = i16::from_be_bytes([out[start + 21], out[start + 22]]) & !riptide_format::attr::SEALED;
        out[start + 21..start + 23].copy_from_slice(&attrs.to_be_bytes());
        riptide_format::build::update_crc(&mut out[start..]);
        Ok(())
    }
}

/// On a sealed (encrypted-at-rest) log the markers stay readable, so a crash's recovery still
/// tells commits from aborts.
#[test]
fn markers_of_a_sealed_log_survive_a_crash() {
    let dir = tmpdir("txn-sealed");
    let mut log = Log::open(&dir, config(IoBackend::Std), 0).expect("open");
    log.set_sealer(Some(std::sync::Arc::new(Reverse)));
    fill(&mut log);
    check(&log);
    log.sync().expect("sync");
    drop(log);
    let log = Log::open(&dir, config(IoBackend::Std), 0).expect("reopen");
    check(&log);
}
