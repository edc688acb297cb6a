//! The transaction state machine's rules, without I/O: every transition is prepared,
//! "written" (applied) or abandoned as the coordinator would.

use super::error::TxnError;
use super::log;
use super::state::*;

fn txns() -> Txns {
    Txns::new(TxnConfig::default())
}

fn no_alloc() -> Result<i64, TxnError> {
    panic!("no new producer id expected")
}

fn tp(t: &str, p: i32) -> TxnPartition {
    (t.to_string(), p)
}

/// InitProducerId applied: (producer id, epoch).
fn init(s: &mut Txns, id: &str, now: i64, next_pid: i64) -> (i64, i16) {
    match s.prepare_init(id, 60_000, (-1, -1), now, || Ok(next_pid)).expect("init") {
        InitStep::Ready(t) => {
            let out = (t.target.producer_id, t.target.producer_epoch);
            s.apply(t);
            out
        }
        other => panic!("expected Ready, got {other:?}"),
    }
}

fn add(
    s: &mut Txns,
    id: &str,
    pid: i64,
    epoch: i16,
    parts: &[TxnPartition],
    now: i64,
) -> Result<(), TxnError> {
    if let Some(t) = s.prepare_add_partitions(id, pid, epoch, parts, now)? {
        s.apply(t);
    }
    Ok(())
}

/// EndTxn through markers to the Complete state.
fn end(s: &mut Txns, id: &str, pid: i64, epoch: i16, commit: bool, now: i64) -> Result<MarkerJob, TxnError> {
    match s.prepare_end(id, (pid, epoch), commit, now, false, no_alloc)? {
        EndStep::Prepare(t) => s.apply(t),
        EndStep::AlreadyDone(..) => panic!("not done yet"),
    }
    let job = s.start_markers(id).expect("markers to write");
    let t = s.prepare_complete(&job, now).expect("complete");
    s.apply(t);
    Ok(job)
}

#[test]
fn a_transaction_goes_from_empty_through_ongoing_to_complete() {
    let mut s = txns();
    assert_eq!(
        s.prepare_init("t", 0, (-1, -1), 0, || Ok(1)).err(),
        Some(TxnError::InvalidTransactionTimeout)
    );
    assert_eq!(
        s.prepare_init("t", 900_001, (-1, -1), 0, || Ok(1)).err(),
        Some(TxnError::InvalidTransactionTimeout),
        "above transaction.max.timeout.ms"
    );
    let (pid, epoch) = init(&mut s, "t", 0, 1000);
    assert_eq!((pid, epoch), (1000, 0));
    assert_eq!(s.get("t").map(|m| m.state), Some(TxnState::Empty));
    // EndTxn with nothing open is out of order.
    assert_eq!(
        s.prepare_end("t", (pid, epoch), true, 1, false, no_alloc).err(),
        Some(TxnError::InvalidTxnState)
    );
    add(&mut s, "t", pid, epoch, &[tp("a", 0), tp("a", 1)], 5).expect("add");
    let m = s.get("t").expect("t");
    assert_eq!((m.state, m.partitions.len(), m.start_ms), (TxnState::Ongoing, 2, 5));
    assert_eq!(s.open_count(), 1);
    // Adding what is already there writes nothing.
    assert_eq!(s.prepare_add_partitions("t", pid, epoch, &[tp("a", 1)], 6), Ok(None));
    assert_eq!(s.verify_produce("t", pid, epoch, &tp("a", 0)), Ok(()));
    assert_eq!(s.verify_produce("t", pid, epoch, &tp("b", 0)), Err(TxnError::InvalidTxnState));
    let job = end(&mut s, "t", pid, epoch, true, 7).expect("commit");
    assert!(job.commit);
    assert_eq!(job.partitions, vec![tp("a", 0), tp("a", 1)]);
    let m = s.get("t").expect("t");
    assert_eq!((m.state, m.partitions.len()), (TxnState::CompleteCommit, 0));
    assert_eq!(s.open_count(), 0);
    // A retried EndTxn is answered; the opposite decision is refused.
    assert_eq!(
        s.prepare_end("t", (pid, epoch), true, 8, false, no_alloc),
        Ok(EndStep::AlreadyDone(pid, epoch))
    );
    assert_eq!(
        s.prepare_end("t", (pid, epoch), false, 8, false, no_alloc).err(),
        Some(TxnError::InvalidTxnState)
    );
    // Producing after the commit needs a new AddPartitions.
    assert_eq!(s.verify_produce("t", pid, epoch, &tp("a", 0)), Err(TxnError::InvalidTxnState));
    add(&mut s, "t", pid, epoch, &[tp("b", 0)], 9).expect("next transaction");
    let m = s.get("t").expect("t");
    assert_eq!((m.state, m.partitions.len(), m.start_ms), (TxnState::Ongoing, 1, 9));
    let job = end(&mut s, "t", pid, epoch, false, 10).expect("abort");
    assert!(!job.commit);
    assert_eq!(s.get("t").map(|m| m.state), Some(TxnState::CompleteAbort));
}

#[test]
fn wrong_producers_and_concurrent_requests_get_kafkas_errors() {
    let mut s = txns();
    assert_eq!(
        s.prepare_add_partitions("nope", 1, 0, &[tp("a", 0)], 0).err(),
        Some(TxnError::InvalidProducerIdMapping)
    );
    let (pid, epoch) = init(&mut s, "t", 0, 7);
    assert_eq!(
        s.prepare_add_partitions("t", pid + 1, epoch, &[tp("a", 0)], 0).err(),
        Some(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        s.prepare_add_partitions("t", pid, epoch + 1, &[tp("a", 0)], 0).err(),
        Some(TxnError::ProducerFenced)
    );
    // While a transition is being written, everything else waits.
    let t = s.prepare_add_partitions("t", pid, epoch, &[tp("a", 0)], 0).expect("ok").expect("write");
    assert_eq!(
        s.prepare_end("t", (pid, epoch), true, 0, false, no_alloc).err(),
        Some(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        s.prepare_init("t", 1000, (-1, -1), 0, || Ok(99)).err(),
        Some(TxnError::ConcurrentTransactions)
    );
    // A failed write leaves the state as it was.
    s.abandon(&t);
    assert_eq!(s.get("t").map(|m| (m.state, m.pending)), Some((TxnState::Empty, false)));
    add(&mut s, "t", pid, epoch, &[tp("a", 0)], 0).expect("add");
    // While the markers are written: CONCURRENT_TRANSACTIONS.
    match s.prepare_end("t", (pid, epoch), true, 1, false, no_alloc).expect("end") {
        EndStep::Prepare(t) => s.apply(t),
        EndStep::AlreadyDone(..) => panic!(),
    }
    assert_eq!(
        s.prepare_end("t", (pid, epoch), true, 1, false, no_alloc).err(),
        Some(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        s.prepare_end("t", (pid, epoch), false, 1, false, no_alloc).err(),
        Some(TxnError::InvalidTxnState)
    );
    assert_eq!(
        s.prepare_add_partitions("t", pid, epoch, &[tp("b", 0)], 1).err(),
        Some(TxnError::ConcurrentTransactions)
    );
    let job = s.start_markers("t").expect("job");
    assert_eq!(s.start_markers("t"), None, "one writer of markers at a time");
    assert_eq!(s.incomplete(), Vec::<String>::new());
    s.markers_failed("t");
    assert_eq!(s.incomplete(), vec!["t".to_string()], "retried later");
    let job2 = s.start_markers("t").expect("again");
    assert_eq!(job, job2);
}

#[test]
fn a_new_producer_fences_the_old_one_and_aborts_its_transaction() {
    let mut s = txns();
    let (pid, epoch) = init(&mut s, "t", 0, 7);
    add(&mut s, "t", pid, epoch, &[tp("a", 0)], 0).expect("add");
    let t = match s.prepare_init("t", 60_000, (-1, -1), 1, || Ok(8)).expect("init") {
        InitStep::AbortFirst(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!((t.target.state, t.target.producer_epoch), (TxnState::PrepareAbort, epoch + 1));
    s.apply(t);
    let job = s.start_markers("t").expect("abort markers");
    assert!(!job.commit);
    assert_eq!(job.producer_epoch, epoch + 1, "the markers carry the bumped epoch");
    let done = s.prepare_complete(&job, 2).expect("complete");
    s.apply(done);
    let (pid2, epoch2) = init(&mut s, "t", 3, 9);
    assert_eq!((pid2, epoch2), (pid, epoch + 2));
    // The old producer is fenced everywhere.
    assert_eq!(
        s.prepare_add_partitions("t", pid, epoch, &[tp("a", 0)], 4).err(),
        Some(TxnError::ProducerFenced)
    );
    assert_eq!(
        s.prepare_end("t", (pid, epoch), true, 4, false, no_alloc).err(),
        Some(TxnError::ProducerFenced)
    );
    assert_eq!(s.verify_produce("t", pid, epoch, &tp("a", 0)), Err(TxnError::InvalidProducerEpoch));
    // KIP-360: a producer naming a producer id that is not the current one is fenced.
    assert_eq!(s.prepare_init("t", 60_000, (pid + 5, 0), 5, || Ok(10)).err(), Some(TxnError::ProducerFenced));
}

#[test]
fn transactions_older_than_their_timeout_are_aborted_with_the_epoch_bumped() {
    let mut s = txns();
    let (pid, epoch) = match s.prepare_init("t", 1_000, (-1, -1), 0, || Ok(3)).expect("init") {
        InitStep::Ready(t) => {
            let out = (t.target.producer_id, t.target.producer_epoch);
            s.apply(t);
            out
        }
        other => panic!("{other:?}"),
    };
    add(&mut s, "t", pid, epoch, &[tp("a", 0)], 10_000).expect("add");
    assert!(s.prepare_timeouts(11_000).is_empty(), "not yet");
    let expired = s.prepare_timeouts(11_001);
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].target.state, expired[0].target.producer_epoch),
        (TxnState::PrepareAbort, epoch + 1)
    );
    assert!(s.prepare_timeouts(20_000).is_empty(), "pending: not twice");
    for t in expired {
        s.apply(t);
    }
    assert_eq!(
        s.prepare_end("t", (pid, epoch), true, 11_002, false, no_alloc).err(),
        Some(TxnError::ProducerFenced)
    );
}

#[test]
fn state_survives_a_replay_of_its_records() {
    let mut s = txns();
    let (pid, epoch) = init(&mut s, "a", 0, 5);
    add(&mut s, "a", pid, epoch, &[tp("x", 3)], 1).expect("add");
    init(&mut s, "b", 0, 6);
    let mut replayed = txns();
    for (id, m) in s.iter() {
        let key = log::key(id);
        let value = log::value(m);
        replayed.replay(log::decode_key(&key).expect("key"), Some(log::decode_value(&value).expect("value")));
    }
    let a = replayed.get("a").expect("a");
    assert_eq!((a.state, a.producer_id, a.partitions.len()), (TxnState::Ongoing, 5, 1));
    assert_eq!(replayed.verify_produce("a", pid, epoch, &tp("x", 3)), Ok(()));
    // A partition whose leadership arrives: what requests made here since wins over the log.
    let mut fresh = txns();
    let (pid_c, _) = init(&mut fresh, "a", 9, 99);
    fresh.merge_loaded(
        [("a".to_string(), replayed.get("a").cloned()), ("b".to_string(), replayed.get("b").cloned())]
            .into_iter()
            .collect(),
    );
    assert_eq!(fresh.get("a").map(|m| m.producer_id), Some(pid_c), "kept: newer than the log");
    assert!(fresh.get("b").is_some(), "taken from the log");
    replayed.replay("b".into(), None);
    assert!(replayed.get("b").is_none(), "a tombstone forgets the id");
    replayed.drop_partition(replayed.partition_of("a"));
    assert!(replayed.get("a").is_none());
}

/// transactional.id.expiration.ms: an id idle past it with no transaction open is forgotten
/// (while its tombstone is written, it answers CONCURRENT_TRANSACTIONS); an open transaction
/// never expires; a failed tombstone write leaves the id for the next check.
#[test]
fn idle_ids_expire_but_open_transactions_do_not() {
    let mut s = Txns::new(TxnConfig { id_expiration_ms: 1_000, ..TxnConfig::default() });
    let (idle, idle_epoch) = init(&mut s, "idle", 0, 1);
    let (busy, busy_epoch) = init(&mut s, "busy", 0, 2);
    add(&mut s, "busy", busy, busy_epoch, &[tp("t", 0)], 0).expect("add");
    assert!(s.prepare_expirations(999).is_empty(), "not idle long enough");
    assert_eq!(s.prepare_expirations(1_000), vec!["idle".to_string()]);
    assert_eq!(
        s.prepare_add_partitions("idle", idle, idle_epoch, &[tp("t", 0)], 1_000).err(),
        Some(TxnError::ConcurrentTransactions),
        "its tombstone is being written"
    );
    s.abandon_expiry("idle");
    assert_eq!(s.prepare_expirations(1_000), vec!["idle".to_string()], "expired again at the next check");
    s.forget("idle");
    assert!(s.get("idle").is_none());
    assert!(s.get("busy").is_some(), "an open transaction is aborted on its timeout, not expired");
    // Its next producer gets a new producer id.
    assert_eq!(init(&mut s, "idle", 2_000, 7), (7, 0));
}

/// Transactions v2 (EndTxn v5+, KIP-890): every end bumps the epoch (the markers carry the
/// bumped one), a retry of the end just made is answered with the new ids, a v2 producer may
/// abort with nothing added, and at the last epoch the producer moves to a new producer id.
#[test]
fn v2_ends_bump_the_epoch_and_switch_ids_at_the_last() {
    let mut s = txns();
    let (pid, epoch) = init(&mut s, "t", 0, 5);
    add(&mut s, "t", pid, epoch, &[tp("a", 0)], 1).expect("add");
    let end_v2 = |s: &mut Txns, pid: i64, epoch: i16, commit: bool, alloc: fn() -> Result<i64, TxnError>| {
        match s.prepare_end("t", (pid, epoch), commit, 2, true, alloc)? {
            EndStep::Prepare(t) => s.apply(t),
            EndStep::AlreadyDone(p, e) => return Ok((Some((p, e)), None)),
        }
        let job = s.start_markers("t").expect("markers");
        let t = s.prepare_complete(&job, 2).expect("complete");
        s.apply(t);
        Ok::<_, TxnError>((None, Some(job)))
    };
    let (_, job) = end_v2(&mut s, pid, epoch, true, no_alloc).expect("commit");
    let job = job.expect("markers written");
    assert_eq!((job.producer_id, job.producer_epoch), (pid, epoch + 1), "markers carry the bumped epoch");
    assert_eq!(s.next_ids("t"), Some((pid, epoch + 1)));
    // The retry of that EndTxn (old epoch) is answered as done, with the new epoch.
    assert_eq!(end_v2(&mut s, pid, epoch, true, no_alloc).expect("retry").0, Some((pid, epoch + 1)));
    assert_eq!(end_v2(&mut s, pid, epoch, false, no_alloc).err(), Some(TxnError::InvalidTxnState));
    // A zombie at an older epoch is fenced; a commit with nothing open is refused.
    assert_eq!(
        s.prepare_add_partitions("t", pid, epoch, &[tp("a", 0)], 3).err(),
        Some(TxnError::ProducerFenced)
    );
    assert_eq!(end_v2(&mut s, pid, epoch + 1, true, no_alloc).err(), Some(TxnError::InvalidTxnState));
    // An abort with nothing added bumps the epoch too.
    let (_, job) = end_v2(&mut s, pid, epoch + 1, false, no_alloc).expect("abort");
    assert!(job.expect("job").partitions.is_empty());
    assert_eq!(s.next_ids("t"), Some((pid, epoch + 2)));
    assert!(s.get("t").expect("t").tv2);
    // At the last epoch: the markers go out at it, and the producer continues on a new id.
    let mut last = s.get("t").expect("t").clone();
    last.producer_epoch = EPOCH_LAST - 1;
    s.apply(Transition { transactional_id: "t".into(), target: last });
    add(&mut s, "t", pid, EPOCH_LAST - 1, &[tp("a", 0)], 4).expect("add");
    let (_, job) = end_v2(&mut s, pid, EPOCH_LAST - 1, true, || Ok(77)).expect("commit");
    assert_eq!(job.expect("job").producer_epoch, EPOCH_LAST);
    assert_eq!(s.next_ids("t"), Some((77, 0)));
    let m = s.get("t").expect("t").clone();
    assert_eq!((m.producer_id, m.producer_epoch, m.previous_producer_id), (77, 0, pid));
    // The retry under the old id is recognized.
    assert_eq!(end_v2(&mut s, pid, EPOCH_LAST, true, no_alloc).expect("retry").0, Some((77, 0)));
    assert_eq!(log::decode_value(&log::value(&m)), Ok(TxnMeta { last_producer_epoch: -1, ..m }));
}
