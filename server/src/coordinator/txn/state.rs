//! The transaction coordinator's state machine, without I/O: every transactional id's
//! producer id and epoch, its transaction's state and partitions, and the transitions that
//! requests, timeouts and marker completion make (Kafka's `TransactionMetadata` rules for
//! transactions v1).
//!
//! A transition is two steps: `prepare_*` validates against the current state, marks the id
//! `pending` and returns the target metadata; the caller writes it to `__transaction_state`
//! and then calls [`Txns::apply`] (or [`Txns::abandon`] when the write failed). While an id is
//! pending every other request for it answers CONCURRENT_TRANSACTIONS, so transitions of one
//! id are serialized in log order.
//!
//! States (Kafka's codes): Empty 0 → (AddPartitions) Ongoing 1 → (EndTxn) PrepareCommit 2 /
//! PrepareAbort 3 → (markers written) CompleteCommit 4 / CompleteAbort 5 → Ongoing again on the
//! next AddPartitions. InitProducerId bumps the epoch from Empty or Complete*, and aborts an
//! Ongoing transaction first with the epoch bumped (fencing the older producer). A transaction
//! older than its timeout is aborted the same way.
//!
//! Transactions v2 (KIP-890, EndTxn v5+): every commit or abort bumps the epoch (the markers
//! carry the bumped one, so a zombie's late writes of the ended transaction are fenced), and
//! EndTxn answers the producer id and epoch to use next. At the last epoch a new producer id
//! is handed out (`next_producer_id`), taken on completion; a retried EndTxn of the epoch
//! just ended is answered as done.

use std::collections::{BTreeSet, HashMap};

use super::error::TxnError;

/// One (topic, partition) of a transaction.
pub type TxnPartition = (String, i32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<TxnState> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's names (DescribeTransactions, ListTransactions, logs).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// One transactional id's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump (not persisted: a diagnostic).
    pub last_producer_epoch: i16,
    /// The producer id before an exhausted epoch's switch (-1: none); Kafka's
    /// PreviousProducerId, so that a retried EndTxn of the old id is recognized.
    pub previous_producer_id: i64,
    /// The producer id the ending transaction switches to (-1: none); Kafka's NextProducerId.
    pub next_producer_id: i64,
    /// The client speaks transactions v2 (its last EndTxn was v5+); Kafka's
    /// ClientTransactionVersion 2.
    pub tv2: bool,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// When the current transaction started (wall clock ms; -1 when none).
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// A transition's record is being written.
    pub pending: bool,
    /// The markers of a Prepare* state are being written.
    pub completing: bool,
}

/// A validated transition: write `target` for `transactional_id`, then `apply` it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub transactional_id: String,
    pub target: TxnMeta,
}

/// What InitProducerId does next.
#[derive(Debug, PartialEq, Eq)]
pub enum InitStep {
    /// Write this (the new id and epoch, state Empty) and answer with its producer id and epoch.
    Ready(Transition),
    /// An open transaction must be aborted first (the epoch is bumped to fence its producer):
    /// write this PrepareAbort, complete it, then ask again.
    AbortFirst(Transition),
}

/// What EndTxn does next.
#[derive(Debug, PartialEq, Eq)]
pub enum EndStep {
    /// A retry of an EndTxn already completed: answer success (with the producer id and epoch
    /// to use next, for v2 clients).
    AlreadyDone(i64, i16),
    /// Write this Prepare* state, then complete it (markers, Complete* state).
    Prepare(Transition),
}

/// Markers a Prepare* state needs written: to every partition, with this producer id/epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<TxnPartition>,
}

/// The coordinator's settings, under Kafka's broker config names.
#[derive(Clone, Debug)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transaction.state.log.num.partitions`.
    pub log_partitions: i32,
    /// `transaction.state.log.segment.bytes`.
    pub log_segment_bytes: u64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_check_interval_ms: u64,
    /// Transactional ids held at most.
    pub ids_max: usize,
    /// `transactional.id.expiration.ms`: an id without a transaction, untouched this long, is
    /// forgotten (a tombstone in the log); its next InitProducerId gets a new producer id.
    pub id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub remove_expired_interval_ms: u64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            log_partitions: 50,
            log_segment_bytes: 100 * 1024 * 1024,
            abort_check_interval_ms: 10_000,
            ids_max: 1_000_000,
            id_expiration_ms: 7 * 24 * 3600 * 1000,
            remove_expired_interval_ms: 3600 * 1000,
        }
    }
}

/// Every transactional id this coordinator holds.
pub struct Txns {
    pub cfg: TxnConfig,
    ids: HashMap<String, TxnMeta>,
    /// Ids in the Ongoing state (the open-transactions gauge), kept with every change.
    ongoing: usize,
}

/// Epochs stop short of i16::MAX: at the limit a new producer id is handed out (Kafka's rule).
const EPOCH_MAX: i16 = i16::MAX - 1;
/// The last epoch a transactions v2 end may bump to (its markers' epoch before the switch).
pub const EPOCH_LAST: i16 = EPOCH_MAX;

impl Txns {
    pub fn new(cfg: TxnConfig) -> Txns {
        Txns { cfg, ids: HashMap::new(), ongoing: 0 }
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TxnMeta> {
        self.ids.get(transactional_id)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Transactions open now (state Ongoing).
    pub fn open_count(&self) -> usize {
        self.ongoing
    }

    /// Inserts (or removes, `None`) an id's metadata, keeping the Ongoing count.
    fn set(&mut self, id: String, meta: Option<TxnMeta>) {
        let now_ongoing = meta.as_ref().is_some_and(|m| m.state == TxnState::Ongoing);
        let before = match meta {
            Some(m) => self.ids.insert(id, m),
            None => self.ids.remove(&id),
        };
        let was_ongoing = before.is_some_and(|m| m.state == TxnState::Ongoing);
        self.ongoing = self.ongoing + usize::from(now_ongoing) - usize::from(was_ongoing);
        debug_assert_eq!(self.ongoing, self.ids.values().filter(|m| m.state == TxnState::Ongoing).count());
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        super::log::partition_for(transactional_id, self.cfg.log_partitions)
    }

    /// Every id and its metadata (ListTransactions, DescribeTransactions).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &TxnMeta)> {
        self.ids.iter()
    }

    fn start(&mut self, transactional_id: &str, target: TxnMeta) -> Transition {
        if let Some(m) = self.ids.get_mut(transactional_id) {
            m.pending = true;
        }
        Transition { transactional_id: transactional_id.to_string(), target }
    }

    /// The current metadata of a request's producer, checked: the id exists, the producer id
    /// is its own, the epoch current (else PRODUCER_FENCED), and no transition is pending.
    fn producer(&self, transactional_id: &str, producer_id: i64, epoch: i16) -> Result<&TxnMeta, TxnError> {
        let m = self.ids.get(transactional_id).ok_or(TxnError::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != epoch {
            return Err(TxnError::ProducerFenced);
        }
        if m.pending || m.completing {
            return Err(TxnError::ConcurrentTransactions);
        }
        Ok(m)
    }

    /// InitProducerId with a transactional id. `alloc` hands out a new producer id (first
    /// use, or an exhausted epoch). `expected` is KIP-360's (producer id, epoch) of a producer
    /// that re-initializes itself; -1 when not given.
    pub fn prepare_init(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: (i64, i16),
        now_ms: i64,
        alloc: impl FnOnce() -> Result<i64, TxnError>,
    ) -> Result<InitStep, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.cfg.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        let Some(m) = self.ids.get(transactional_id) else {
            if self.ids.len() >= self.cfg.ids_max {
                return Err(TxnError::CoordinatorNotAvailable);
            }
            let target = TxnMeta {
                producer_id: alloc()?,
                producer_epoch: 0,
                last_producer_epoch: -1,
                previous_producer_id: -1,
                next_producer_id: -1,
                tv2: false,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now_ms,
                pending: false,
                completing: false,
            };
            return Ok(InitStep::Ready(self.start(transactional_id, target)));
        };
        if m.pending || m.completing {
            return Err(TxnError::ConcurrentTransactions);
        }
        let (pid, epoch) = expected;
        if pid >= 0 && (pid != m.producer_id || (epoch != m.producer_epoch && epoch != m.last_producer_epoch))
        {
            return Err(TxnError::ProducerFenced);
        }
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                let target = fenced_abort(m, now_ms);
                Ok(InitStep::AbortFirst(self.start(transactional_id, target)))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Dead => {
                let mut target = m.clone();
                if m.producer_epoch >= EPOCH_MAX {
                    target.producer_id = alloc()?;
                    target.producer_epoch = 0;
                } else {
                    target.producer_epoch = m.producer_epoch + 1;
                }
                target.last_producer_epoch = m.producer_epoch;
                target.timeout_ms = timeout_ms;
                target.state = TxnState::Empty;
                target.partitions.clear();
                target.start_ms = -1;
                target.last_update_ms = now_ms;
                Ok(InitStep::Ready(self.start(transactional_id, target)))
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, whose partition is the group's offsets
    /// partition). `None`: every partition is already in the transaction, nothing to write.
    pub fn prepare_add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
        now_ms: i64,
    ) -> Result<Option<Transition>, TxnError> {
        let m = self.producer(transactional_id, producer_id, epoch)?;
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => return Err(TxnError::ConcurrentTransactions),
            TxnState::Dead | TxnState::PrepareEpochFence => return Err(TxnError::InvalidTxnState),
            TxnState::Ongoing if partitions.iter().all(|p| m.partitions.contains(p)) => return Ok(None),
            _ => {}
        }
        let mut target = m.clone();
        if m.state != TxnState::Ongoing {
            target.partitions.clear();
            target.start_ms = now_ms;
        }
        target.state = TxnState::Ongoing;
        target.partitions.extend(partitions.iter().cloned());
        target.last_update_ms = now_ms;
        Ok(Some(self.start(transactional_id, target)))
    }

    /// EndTxn: commit or abort the open transaction. `tv2`: EndTxn v5+ (see the module docs);
    /// `alloc` hands out a new producer id when the bumped epoch is the last.
    pub fn prepare_end(
        &mut self,
        transactional_id: &str,
        (producer_id, epoch): (i64, i16),
        commit: bool,
        now_ms: i64,
        tv2: bool,
        alloc: impl FnOnce() -> Result<i64, TxnError>,
    ) -> Result<EndStep, TxnError> {
        if tv2 {
            return self.prepare_end_v2(transactional_id, producer_id, epoch, commit, now_ms, alloc);
        }
        let m = self.ids.get(transactional_id).ok_or(TxnError::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != epoch {
            return Err(TxnError::ProducerFenced);
        }
        if m.pending {
            return Err(TxnError::ConcurrentTransactions);
        }
        match (m.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut target = m.clone();
                target.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
                target.last_update_ms = now_ms;
                Ok(EndStep::Prepare(self.start(transactional_id, target)))
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions)
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(EndStep::AlreadyDone(m.producer_id, m.producer_epoch))
            }
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// EndTxn v5+ (transactions v2, Kafka's rules): the epoch is bumped with every end.
    fn prepare_end_v2(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
        alloc: impl FnOnce() -> Result<i64, TxnError>,
    ) -> Result<EndStep, TxnError> {
        let m = self.ids.get(transactional_id).ok_or(TxnError::InvalidProducerIdMapping)?;
        let matching_end = |s: TxnState| {
            matches!((s, commit), (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false))
        };
        // A retry of the end just made: the epoch (or producer id) moved on since.
        let retry = (producer_id == m.producer_id && i32::from(epoch) + 1 == i32::from(m.producer_epoch))
            || (producer_id == m.previous_producer_id && m.producer_epoch == 0);
        if retry && !m.pending {
            return match m.state {
                s if matching_end(s) => Ok(EndStep::AlreadyDone(m.producer_id, m.producer_epoch)),
                TxnState::PrepareCommit | TxnState::PrepareAbort => Err(TxnError::ConcurrentTransactions),
                _ => Err(TxnError::InvalidTxnState),
            };
        }
        let m = self.producer(transactional_id, producer_id, epoch)?;
        match m.state {
            TxnState::Ongoing => {}
            // A v2 producer may abort with nothing added (a failed first send): the epoch is
            // bumped all the same, fencing whatever of it is still in flight.
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort if !commit => {}
            TxnState::PrepareCommit | TxnState::PrepareAbort => return Err(TxnError::ConcurrentTransactions),
            _ => return Err(TxnError::InvalidTxnState),
        }
        let mut target = m.clone();
        if m.state != TxnState::Ongoing {
            target.partitions.clear();
        }
        target.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        target.last_producer_epoch = m.producer_epoch;
        // The markers carry the bumped epoch; at the last one the producer moves to a new id.
        target.producer_epoch = m.producer_epoch + 1;
        target.next_producer_id = if target.producer_epoch >= EPOCH_MAX { alloc()? } else { -1 };
        target.tv2 = true;
        target.last_update_ms = now_ms;
        Ok(EndStep::Prepare(self.start(transactional_id, target)))
    }

    /// The producer id and epoch a v2 client uses after its EndTxn: the new id (at epoch 0)
    /// while a switch is pending, else the current ones.
    pub fn next_ids(&self, transactional_id: &str) -> Option<(i64, i16)> {
        let m = self.ids.get(transactional_id)?;
        Some(if m.next_producer_id >= 0 {
            (m.next_producer_id, 0)
        } else {
            (m.producer_id, m.producer_epoch)
        })
    }

    /// Ongoing transactions older than their timeout: each is aborted with the epoch bumped,
    /// so its producer is fenced (its next request fails and it must re-initialize).
    pub fn prepare_timeouts(&mut self, now_ms: i64) -> Vec<Transition> {
        let expired: Vec<String> = self
            .ids
            .iter()
            .filter(|(_, m)| {
                m.state == TxnState::Ongoing
                    && !m.pending
                    && !m.completing
                    && now_ms.saturating_sub(m.start_ms) > i64::from(m.timeout_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::with_capacity(expired.len());
        for id in expired {
            if let Some(m) = self.ids.get(&id) {
                let target = fenced_abort(m, now_ms);
                out.push(self.start(&id, target));
            }
        }
        out
    }

    /// Ids with no transaction open or completing, untouched for `id_expiration_ms`: each is
    /// marked pending (so no request changes it meanwhile) for its tombstone to be written,
    /// then `forget` (or `abandon_expiry` if the write failed).
    pub fn prepare_expirations(&mut self, now_ms: i64) -> Vec<String> {
        let horizon = self.cfg.id_expiration_ms;
        let expired: Vec<String> = self
            .ids
            .iter()
            .filter(|(_, m)| {
                matches!(m.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
                    && !m.pending
                    && !m.completing
                    && now_ms.saturating_sub(m.last_update_ms) >= horizon
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            if let Some(m) = self.ids.get_mut(id) {
                m.pending = true;
            }
        }
        expired
    }

    /// The id's tombstone is durable: it is forgotten.
    pub fn forget(&mut self, transactional_id: &str) {
        if self.ids.get(transactional_id).is_some_and(|m| m.pending) {
            self.set(transactional_id.to_string(), None);
        }
    }

    /// The id's tombstone could not be written: it stays, to expire at a later check.
    pub fn abandon_expiry(&mut self, transactional_id: &str) {
        if let Some(m) = self.ids.get_mut(transactional_id) {
            m.pending = false;
        }
    }

    /// The transition's record is durable: it is the id's state now.
    pub fn apply(&mut self, t: Transition) {
        let mut target = t.target;
        target.pending = false;
        target.completing = false;
        self.set(t.transactional_id, Some(target));
    }

    /// The transition's record could not be written: the id stays as it was.
    pub fn abandon(&mut self, t: &Transition) {
        if let Some(m) = self.ids.get_mut(&t.transactional_id) {
            m.pending = false;
        }
    }

    /// Starts writing the markers of an id in a Prepare* state (none when it is not in one,
    /// or they are being written already).
    pub fn start_markers(&mut self, transactional_id: &str) -> Option<MarkerJob> {
        let m = self.ids.get_mut(transactional_id)?;
        if !m.state.is_prepare() || m.pending || m.completing {
            return None;
        }
        m.completing = true;
        Some(MarkerJob {
            transactional_id: transactional_id.to_string(),
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            commit: m.state == TxnState::PrepareCommit,
            partitions: m.partitions.iter().cloned().collect(),
        })
    }

    /// Every marker of the job is written: the Complete* state to write (and apply).
    pub fn prepare_complete(&mut self, job: &MarkerJob, now_ms: i64) -> Option<Transition> {
        let m = self.ids.get_mut(&job.transactional_id)?;
        if !m.completing || !m.state.is_prepare() {
            return None;
        }
        m.pending = true;
        let mut target = m.clone();
        target.state = if job.commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        if m.next_producer_id >= 0 {
            // The exhausted epoch's switch to the new producer id.
            target.previous_producer_id = m.producer_id;
            target.producer_id = m.next_producer_id;
            target.producer_epoch = 0;
            target.last_producer_epoch = -1;
            target.next_producer_id = -1;
        }
        target.partitions.clear();
        target.last_update_ms = now_ms;
        Some(Transition { transactional_id: job.transactional_id.clone(), target })
    }

    /// Writing a job's markers (or its Complete* record) failed: retried later.
    pub fn markers_failed(&mut self, transactional_id: &str) {
        if let Some(m) = self.ids.get_mut(transactional_id) {
            m.completing = false;
            m.pending = false;
        }
    }

    /// Ids whose markers still have to be written (after a restart, or a failed attempt).
    pub fn incomplete(&self) -> Vec<String> {
        self.ids
            .iter()
            .filter(|(_, m)| m.state.is_prepare() && !m.pending && !m.completing)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether a Produce of a transactional batch to `partition` is allowed: the producer is
    /// current and added the partition to its ongoing transaction.
    pub fn verify_produce(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &TxnPartition,
    ) -> Result<(), TxnError> {
        let m = self.ids.get(transactional_id).ok_or(TxnError::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch < m.producer_epoch {
            return Err(TxnError::InvalidProducerEpoch);
        }
        if m.state != TxnState::Ongoing || m.producer_epoch != epoch || !m.partitions.contains(partition) {
            return Err(TxnError::InvalidTxnState);
        }
        Ok(())
    }

    /// A record read back from `__transaction_state` (start-up), in log order.
    pub fn replay(&mut self, transactional_id: String, value: Option<TxnMeta>) {
        self.set(transactional_id, value);
    }

    /// Takes the ids replayed from a log partition whose leadership arrived, except those this
    /// coordinator already holds: those were made by requests served since it leads the
    /// partition, after everything in the log it read (their records are newer).
    pub fn merge_loaded(&mut self, loaded: HashMap<String, Option<TxnMeta>>) {
        for (id, value) in loaded {
            if let (false, Some(m)) = (self.ids.contains_key(&id), value) {
                self.set(id, Some(m));
            }
        }
    }

    /// Forgets the ids stored in log partition `partition` (led elsewhere now, or reloading).
    pub fn drop_partition(&mut self, partition: i32) {
        let n = self.cfg.log_partitions;
        self.ids.retain(|id, _| super::log::partition_for(id, n) != partition);
        self.ongoing = self.ids.values().filter(|m| m.state == TxnState::Ongoing).count();
    }
}

/// An Ongoing transaction aborted with the epoch bumped: the producer of the old epoch is fenced.
fn fenced_abort(m: &TxnMeta, now_ms: i64) -> TxnMeta {
    let mut target = m.clone();
    target.last_producer_epoch = m.producer_epoch;
    target.producer_epoch = m.producer_epoch.saturating_add(1);
    target.state = TxnState::PrepareAbort;
    target.last_update_ms = now_ms;
    target
}
