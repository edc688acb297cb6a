//! The transaction coordinator (issue 17): transactional producers' ids and epochs, their
//! transactions' partitions and states, persisted in the compacted internal topic
//! `__transaction_state` in Kafka's record format (`log`), replayed at start-up.
//!
//! Ownership: one [`TxnCoordinator`] per broker, made by the composition root and reached by
//! the API layer through its context; its state (`state::Txns`) behind one `Mutex`, held for
//! short critical sections, never across an `.await`. A transactional id is coordinated by the
//! leader of its `__transaction_state` partition (`abs(javaHash(id)) % 50`).
//!
//! Durability contract: a request is answered only after the state it moved to is fsynced in
//! `__transaction_state` (acks=all through the normal produce path). EndTxn writes
//! PrepareCommit/PrepareAbort, then the COMMIT/ABORT markers to every partition of the
//! transaction (acks=all, through the partition's owner shard), then CompleteCommit/
//! CompleteAbort; it answers once the Prepare state is durable and the markers were tried, so a
//! client that saw its commit succeed reads its data at once when the markers landed. Markers
//! that could not be written (a partition led elsewhere or offline) are retried by the
//! background task, which also completes the Prepare states found at start-up and aborts
//! transactions older than their timeout (bumping the epoch, which fences their producer).
//!
//! Markers for `__consumer_offsets` partitions make a transaction's TxnOffsetCommit offsets
//! visible in the group coordinator (or drop them on abort).

pub mod error;
pub mod log;
mod markers;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;

use crate::broker::{AdminError, Broker};
use crate::clock::now_ms;
use crate::partition::{Acks, ControlType, OffsetSpec, TxnMarker};
use crate::shard::mailbox::ListOffsetCall;
use crate::shard::router::{route_list_offset, route_markers, route_produce_one};
use crate::shard::Ctx;
pub use error::TxnError;
use state::{EndStep, InitStep, MarkerJob, Transition, TxnConfig, TxnMeta, TxnPartition, Txns};

use super::offsets_log::{self, KeyValue, RawEntry, OFFSETS_TOPIC};
use super::Coordinator;
use log::TXN_TOPIC;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Period of the background loop (marker retries, timeout checks).
const TICK_MS: u64 = 500;

/// Whether this broker leads a `__transaction_state` partition.
pub type Owns = Box<dyn Fn(i32) -> bool + Send + Sync>;

pub struct TxnCoordinator {
    txns: Mutex<Txns>,
    owns: Owns,
    loaded: AtomicBool,
    /// Log partitions whose ids are loaded here (requests for others wait).
    owned: Mutex<BTreeSet<i32>>,
    /// The group coordinator: transactional offsets become visible through it.
    groups: Arc<Coordinator>,
    /// Partitions known here to be in a producer's ongoing transaction (added implicitly for
    /// transactions v2, or verified with the coordinator for v1 producers), by (producer id,
    /// topic, partition) → the epoch: a match saves the round trip. A marker written here ends
    /// the entry (a v1 producer keeps its epoch across transactions; a v2 one bumps it).
    joined: Mutex<HashMap<(i64, TxnPartition), i16>>,
}

/// Partitions remembered in transactions at most (then forgotten all at once: a miss only
/// costs a request).
const JOINED_MAX: usize = 100_000;

impl TxnCoordinator {
    pub fn new(cfg: TxnConfig, owns: Owns, groups: Arc<Coordinator>) -> TxnCoordinator {
        TxnCoordinator {
            txns: Mutex::new(Txns::new(cfg)),
            owns,
            loaded: AtomicBool::new(false),
            owned: Mutex::new(BTreeSet::new()),
            groups,
            joined: Mutex::new(HashMap::new()),
        }
    }

    /// Transactions v2's implicit add (KIP-890; Produce v12+, TxnOffsetCommit v5+):
    /// `partitions` join the producer's transaction on the id's coordinator, here or on
    /// another broker (AddPartitionsToTxn v5, as Kafka's partition leaders send it). `Err`:
    /// the Kafka error code to answer for the partitions.
    pub async fn add_implicitly(
        &self,
        ctx: &Ctx,
        transactional_id: &str,
        ids: (i64, i16),
        partitions: &[TxnPartition],
    ) -> Result<(), i16> {
        self.join(ctx, transactional_id, ids, partitions, false).await
    }

    /// KIP-890's check for v1 producers (Produce below v12): the partitions must be in the
    /// producer's ongoing transaction, asked of the id's coordinator here or on another broker
    /// (AddPartitionsToTxn v5, verify-only), so that a late or stray write cannot leave a
    /// transaction open that no coordinator will end (a hanging transaction).
    pub async fn verify(
        &self,
        ctx: &Ctx,
        transactional_id: &str,
        ids: (i64, i16),
        partitions: &[TxnPartition],
    ) -> Result<(), i16> {
        self.join(ctx, transactional_id, ids, partitions, true).await
    }

    async fn join(
        &self,
        ctx: &Ctx,
        transactional_id: &str,
        (producer_id, epoch): (i64, i16),
        partitions: &[TxnPartition],
        verify_only: bool,
    ) -> Result<(), i16> {
        let missing: Vec<TxnPartition> = {
            let joined = lock(&self.joined);
            let key = |p: &TxnPartition| (producer_id, p.clone());
            partitions.iter().filter(|p| joined.get(&key(p)) != Some(&epoch)).cloned().collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let result = match self.check_owner(transactional_id) {
            Ok(()) if verify_only => missing
                .iter()
                .try_for_each(|p| self.verify_produce(transactional_id, producer_id, epoch, p))
                .map_err(|e| e.code()),
            Ok(()) => self
                .add_partitions(ctx, transactional_id, producer_id, epoch, &missing)
                .await
                .map_err(|e| e.code()),
            Err(TxnError::NotCoordinator) => {
                let log_partition = self.partition_of(transactional_id);
                let leader = ctx.broker.topic(TXN_TOPIC).map(|t| t.leader(log_partition));
                match leader {
                    Some(l) if l >= 0 && l != ctx.broker.config.node_id => {
                        let ids = (producer_id, epoch);
                        markers::add_partitions(ctx, l, transactional_id, ids, &missing, verify_only)
                            .await
                            .map_err(|code| code.unwrap_or(ResponseError::CoordinatorNotAvailable.code()))
                    }
                    _ => Err(ResponseError::CoordinatorNotAvailable.code()),
                }
            }
            Err(e) => Err(e.code()),
        };
        if result.is_ok() {
            let mut joined = lock(&self.joined);
            if joined.len() + missing.len() > JOINED_MAX {
                joined.clear();
            }
            joined.extend(missing.into_iter().map(|p| ((producer_id, p), epoch)));
        }
        result
    }

    /// A marker for `producer_id` was written to `partition` here: its transaction there ended.
    pub fn transaction_ended(&self, producer_id: i64, partition: TxnPartition) {
        lock(&self.joined).remove(&(producer_id, partition));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Txns> {
        self.txns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Transactions open now (the `riptide_transactions_open` gauge).
    pub fn open_count(&self) -> usize {
        self.lock().open_count()
    }

    pub fn config(&self) -> TxnConfig {
        self.lock().cfg.clone()
    }

    /// The `__transaction_state` partition of an id.
    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        self.lock().partition_of(transactional_id)
    }

    /// NOT_COORDINATOR unless this broker leads the id's log partition; loading first.
    pub fn check_owner(&self, transactional_id: &str) -> Result<(), TxnError> {
        let p = self.partition_of(transactional_id);
        if !(self.owns)(p) {
            return Err(TxnError::NotCoordinator);
        }
        // Until the ownership check has loaded the partition: state made before would race
        // with the load's merge of what the log held.
        if !self.loaded.load(Ordering::Acquire) || !lock(&self.owned).contains(&p) {
            return Err(TxnError::LoadInProgress);
        }
        Ok(())
    }

    /// True while this broker leads `__transaction_state` partition `p` but has not loaded it.
    pub fn loading(&self, p: i32) -> bool {
        (self.owns)(p) && (!self.loaded.load(Ordering::Acquire) || !lock(&self.owned).contains(&p))
    }

    /// Whether this broker coordinates the id (a Produce's check is only possible then).
    pub fn coordinates(&self, transactional_id: &str) -> bool {
        self.check_owner(transactional_id).is_ok()
    }

    /// A snapshot of one id's state.
    pub fn describe(&self, transactional_id: &str) -> Option<TxnMeta> {
        self.lock().get(transactional_id).cloned()
    }

    /// Every id this broker coordinates, with its state.
    pub fn list(&self) -> Vec<(String, TxnMeta)> {
        let mut out: Vec<(String, TxnMeta)> =
            self.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A Produce of a transactional batch: allowed when the producer added the partition.
    pub fn verify_produce(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &TxnPartition,
    ) -> Result<(), TxnError> {
        self.lock().verify_produce(transactional_id, producer_id, epoch, partition)
    }

    /// Writes a transition's record, then applies it (or abandons it on failure).
    async fn commit(&self, ctx: &Ctx, t: Transition) -> Result<TxnMeta, TxnError> {
        match write(ctx, self, &t).await {
            Ok(()) => {
                let target = t.target.clone();
                self.lock().apply(t);
                Ok(target)
            }
            Err(e) => {
                self.lock().abandon(&t);
                Err(e)
            }
        }
    }

    /// InitProducerId with a transactional id: (producer id, epoch).
    pub async fn init_producer_id(
        &self,
        ctx: &Ctx,
        transactional_id: &str,
        timeout_ms: i32,
        expected: (i64, i16),
    ) -> Result<(i64, i16), TxnError> {
        self.check_owner(transactional_id)?;
        // An open transaction is aborted first (one round), then the epoch is bumped.
        for _ in 0..2 {
            let alloc = || {
                ctx.broker.next_producer_id().map(|p| p.0).map_err(|e| {
                    tracing::error!("cannot reserve producer ids: {e}");
                    TxnError::CoordinatorNotAvailable
                })
            };
            let step = self.lock().prepare_init(transactional_id, timeout_ms, expected, now_ms(), alloc)?;
            match step {
                InitStep::Ready(t) => {
                    let m = self.commit(ctx, t).await?;
                    return Ok((m.producer_id, m.producer_epoch));
                }
                InitStep::AbortFirst(t) => {
                    tracing::info!(
                        "transactional id {transactional_id}: a new producer aborts the open transaction"
                    );
                    self.commit(ctx, t).await?;
                    if !self.complete(ctx, transactional_id).await {
                        return Err(TxnError::ConcurrentTransactions);
                    }
                }
            }
        }
        Err(TxnError::ConcurrentTransactions)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn.
    pub async fn add_partitions(
        &self,
        ctx: &Ctx,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
    ) -> Result<(), TxnError> {
        self.check_owner(transactional_id)?;
        let t =
            self.lock().prepare_add_partitions(transactional_id, producer_id, epoch, partitions, now_ms())?;
        if let Some(t) = t {
            self.commit(ctx, t).await?;
        }
        Ok(())
    }

    /// EndTxn: answered once the Prepare state is durable; the markers are written before
    /// answering (and retried in the background when that fails). `tv2`: EndTxn v5+, which
    /// bumps the epoch; the answer is the producer id and epoch to use next.
    pub async fn end_txn(
        &self,
        ctx: &Ctx,
        transactional_id: &str,
        (producer_id, epoch): (i64, i16),
        commit: bool,
        tv2: bool,
    ) -> Result<(i64, i16), TxnError> {
        self.check_owner(transactional_id)?;
        let alloc = || {
            ctx.broker.next_producer_id().map(|p| p.0).map_err(|e| {
                tracing::error!("cannot reserve producer ids: {e}");
                TxnError::CoordinatorNotAvailable
            })
        };
        let step =
            self.lock().prepare_end(transactional_id, (producer_id, epoch), commit, now_ms(), tv2, alloc)?;
        match step {
            EndStep::AlreadyDone(pid, epoch) => Ok((pid, epoch)),
            EndStep::Prepare(t) => {
                self.commit(ctx, t).await?;
                self.complete(ctx, transactional_id).await;
                Ok(self.lock().next_ids(transactional_id).unwrap_or((producer_id, epoch)))
            }
        }
    }

    /// Writes the markers of an id in a Prepare state, then its Complete state. Returns true
    /// when the transaction is complete.
    async fn complete(&self, ctx: &Ctx, transactional_id: &str) -> bool {
        let Some(job) = self.lock().start_markers(transactional_id) else { return false };
        if let Err(e) = self.write_markers(ctx, &job).await {
            tracing::warn!("transactional id {transactional_id}: markers not written yet ({e}); retrying");
            self.lock().markers_failed(transactional_id);
            return false;
        }
        let Some(t) = self.lock().prepare_complete(&job, now_ms()) else { return false };
        match self.commit(ctx, t).await {
            Ok(_) => {
                let result = if job.commit { "committed" } else { "aborted" };
                ctx.broker.metrics.txn_completed(job.commit);
                tracing::debug!("transactional id {transactional_id}: {result}");
                true
            }
            Err(e) => {
                tracing::warn!("transactional id {transactional_id}: completion not written ({e}); retrying");
                self.lock().markers_failed(transactional_id);
                false
            }
        }
    }

    /// The job's marker on every partition: through the owner shards for partitions this
    /// broker leads, with WriteTxnMarkers to the leader of the others. Markers on
    /// `__consumer_offsets` partitions make the producer's transactional offsets visible (or
    /// drop them), here or on the broker that wrote them.
    async fn write_markers(&self, ctx: &Ctx, job: &MarkerJob) -> Result<(), String> {
        let control = if job.commit { ControlType::Commit } else { ControlType::Abort };
        // Kafka's coordinator epoch: the leader epoch of the id's log partition here, so that
        // partitions refuse the markers of a coordinator that lost it (a zombie).
        let log_partition = self.partition_of(&job.transactional_id);
        let coordinator_epoch =
            ctx.broker.topic(TXN_TOPIC).and_then(|t| t.state(log_partition).map(|s| s.leader_epoch));
        let marker = TxnMarker {
            producer_id: job.producer_id,
            producer_epoch: job.producer_epoch,
            control,
            coordinator_epoch: coordinator_epoch.map_or(0, |e| e.0),
        };
        let me = ctx.broker.config.node_id;
        let mut local = Vec::new();
        let mut remote: HashMap<i32, Vec<TxnPartition>> = HashMap::new();
        for (t, p) in &job.partitions {
            match ctx.broker.topic(t) {
                // A deleted topic keeps no data to mark.
                None => {}
                Some(meta) if meta.leader(*p) == me => local.push((t.clone(), *p)),
                Some(meta) => remote.entry(meta.leader(*p)).or_default().push((t.clone(), *p)),
            }
        }
        let calls: Vec<_> = local.iter().map(|(t, p)| (Arc::from(t.as_str()), *p, marker)).collect();
        let results = route_markers(ctx, calls).await;
        let mut failed = Vec::new();
        for ((topic, p), r) in local.iter().zip(results) {
            if r.is_ok() {
                self.transaction_ended(job.producer_id, (topic.clone(), *p));
            }
            match r {
                Ok(_) if topic == OFFSETS_TOPIC => {
                    self.groups.with_any(|g, now| g.complete_txn(job.producer_id, *p, job.commit, now))
                }
                Ok(_) => {}
                Err(e) => failed.push(format!("{topic}-{p}: {e}")),
            }
        }
        for (leader, partitions) in remote {
            if let Err(e) = markers::send(ctx, leader, &marker, &partitions).await {
                failed.push(format!("broker {leader}: {e}"));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join(", "))
        }
    }
}

/// Creates `__transaction_state` if it doesn't exist yet (on first FindCoordinator), compacted.
pub async fn ensure_txn_topic(broker: &Broker, txn: &TxnCoordinator) -> Result<(), TxnError> {
    if broker.topic(TXN_TOPIC).is_some() {
        return Ok(());
    }
    let cfg = txn.config();
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("retention.ms".to_string(), "-1".to_string()),
        ("segment.bytes".to_string(), cfg.log_segment_bytes.to_string()),
    ]);
    match broker.create_topic(TXN_TOPIC, cfg.log_partitions, -1, configs, None, None, false).await {
        Ok(_) | Err(AdminError::TopicExists(_)) => Ok(()),
        Err(e) => {
            tracing::error!("cannot create {TXN_TOPIC}: {e}");
            Err(TxnError::CoordinatorNotAvailable)
        }
    }
}

/// Appends a transition's record to its `__transaction_state` partition; returns once durable.
async fn write(ctx: &Ctx, txn: &TxnCoordinator, t: &Transition) -> Result<(), TxnError> {
    write_record(ctx, txn, &t.transactional_id, Some(log::value(&t.target))).await
}

/// Appends an id's record (`None`: its tombstone); returns once durable.
async fn write_record(
    ctx: &Ctx,
    txn: &TxnCoordinator,
    transactional_id: &str,
    value: Option<Bytes>,
) -> Result<(), TxnError> {
    ensure_txn_topic(&ctx.broker, txn).await?;
    let partition = txn.partition_of(transactional_id);
    let kv = KeyValue { key: log::key(transactional_id), value };
    let batch = offsets_log::encode_batch(&[kv], now_ms()).map_err(|e| {
        tracing::error!("cannot encode a {TXN_TOPIC} batch: {e}");
        TxnError::CoordinatorNotAvailable
    })?;
    let topic: Arc<str> = Arc::from(TXN_TOPIC);
    if let Err(e) = route_produce_one(ctx, topic, partition, batch, Acks::All).await {
        tracing::error!("writing {TXN_TOPIC}-{partition} failed: {e}");
        return Err(TxnError::from_write_error(&e));
    }
    Ok(())
}

/// The background work, run on one shard: loads `__transaction_state`, then completes
/// Prepare states and aborts timed-out transactions until shutdown.
pub async fn background(ctx: Ctx, txn: Arc<TxnCoordinator>) {
    let loaded = load(&ctx, &txn).await;
    txn.loaded.store(true, Ordering::Release);
    if loaded > 0 {
        tracing::info!("loaded {loaded} transactional id(s) from {TXN_TOPIC}");
    }
    let interval_ms = txn.config().abort_check_interval_ms;
    let expiry_interval = Duration::from_millis(txn.config().remove_expired_interval_ms);
    let mut last_timeout_check = std::time::Instant::now();
    let mut last_expiry_check = std::time::Instant::now();
    while !ctx.broker.is_shutting_down() {
        // Taken first: the lock is never held across the completion's writes.
        let incomplete = txn.lock().incomplete();
        for id in incomplete {
            txn.complete(&ctx, &id).await;
        }
        follow_ownership(&ctx, &txn).await;
        ctx.broker.metrics.txn_open.store(txn.open_count() as i64, Ordering::Relaxed);
        if last_timeout_check.elapsed() >= Duration::from_millis(interval_ms) {
            last_timeout_check = std::time::Instant::now();
            abort_timed_out(&ctx, &txn).await;
        }
        if last_expiry_check.elapsed() >= expiry_interval {
            last_expiry_check = std::time::Instant::now();
            expire_ids(&ctx, &txn).await;
        }
        compio::time::sleep(Duration::from_millis(TICK_MS.min(interval_ms.max(1)))).await;
    }
}

/// Forgets ids idle past `transactional.id.expiration.ms`: a tombstone each, as Kafka writes.
async fn expire_ids(ctx: &Ctx, txn: &TxnCoordinator) {
    let expired = txn.lock().prepare_expirations(now_ms());
    for id in expired {
        match write_record(ctx, txn, &id, None).await {
            Ok(()) => {
                tracing::info!("transactional id {id} expired (idle past transactional.id.expiration.ms)");
                txn.lock().forget(&id);
            }
            Err(_) => txn.lock().abandon_expiry(&id),
        }
    }
}

async fn abort_timed_out(ctx: &Ctx, txn: &TxnCoordinator) {
    let expired = txn.lock().prepare_timeouts(now_ms());
    for t in expired {
        let id = t.transactional_id.clone();
        tracing::info!("transactional id {id}: transaction timed out; aborting (its producer is fenced)");
        ctx.broker.metrics.txn_timed_out();
        if txn.commit(ctx, t).await.is_ok() {
            txn.complete(ctx, &id).await;
        }
    }
}

/// Leadership of `__transaction_state` partitions moves with failover (and arrives when the
/// topic is created): a partition led here since the last look has its ids loaded (answering
/// COORDINATOR_LOAD_IN_PROGRESS meanwhile), one no longer led has them forgotten.
async fn follow_ownership(ctx: &Ctx, txn: &TxnCoordinator) {
    let Some(topic) = ctx.broker.topic(TXN_TOPIC) else { return };
    let owned = lock(&txn.owned).clone();
    for p in 0..topic.partitions {
        let owns = (txn.owns)(p);
        if owns == owned.contains(&p) {
            continue;
        }
        if !owns {
            txn.lock().drop_partition(p);
            tracing::info!("{TXN_TOPIC}-{p} led elsewhere now: its transactional ids are unloaded");
            lock(&txn.owned).remove(&p);
            continue;
        }
        if partition_is_empty(ctx, p).await {
            // Nothing to load (a topic just created): ids made here already are the state.
            lock(&txn.owned).insert(p);
            continue;
        }
        let result = load_partition(ctx, txn, p).await;
        match result {
            Ok(()) => {
                lock(&txn.owned).insert(p);
            }
            // Retried on the next tick.
            Err(e) => tracing::warn!("loading {TXN_TOPIC}-{p}: {e}"),
        }
    }
}

/// Whether a `__transaction_state` partition holds no record (unknown: not empty).
async fn partition_is_empty(ctx: &Ctx, partition: i32) -> bool {
    let topic: Arc<str> = Arc::from(TXN_TOPIC);
    let offset = |spec| {
        let call = ListOffsetCall { topic: topic.clone(), partition, spec };
        async move { route_list_offset(ctx, call).await.map(|o| o.offset).ok() }
    };
    match (offset(OffsetSpec::Earliest).await, offset(OffsetSpec::LogEnd).await) {
        (Some(start), Some(end)) => end <= start,
        _ => false,
    }
}

/// Replays the owned partitions of `__transaction_state`. Returns the ids loaded.
async fn load(ctx: &Ctx, txn: &TxnCoordinator) -> usize {
    let Some(topic) = ctx.broker.topic(TXN_TOPIC) else { return 0 };
    for partition in (0..topic.partitions).filter(|p| (txn.owns)(*p)) {
        match load_partition(ctx, txn, partition).await {
            Ok(()) => {
                lock(&txn.owned).insert(partition);
            }
            Err(e) => tracing::error!("loading {TXN_TOPIC}-{partition}: {e}"),
        }
    }
    txn.lock().len()
}

/// Replays one partition of `__transaction_state` (in log order, the latest record of an id
/// wins) and merges it into the state (see `Txns::merge_loaded`).
async fn load_partition(ctx: &Ctx, txn: &TxnCoordinator, partition: i32) -> Result<(), String> {
    let mut loaded: HashMap<String, Option<TxnMeta>> = HashMap::new();
    super::read_partition(ctx, TXN_TOPIC, partition, |bytes: Bytes| {
        let (next, skipped) = offsets_log::scan_chunk(&bytes, |e| {
            if let RawEntry::Record((offset, _, Some(key), value)) = e {
                let decoded = log::decode_key(&key)
                    .and_then(|id| value.as_deref().map(log::decode_value).transpose().map(|v| (id, v)));
                match decoded {
                    Ok((id, v)) => {
                        loaded.insert(id, v);
                    }
                    Err(e) => tracing::warn!("{TXN_TOPIC}-{partition}@{offset}: skipped record: {e}"),
                }
            }
        });
        if skipped > 0 {
            tracing::warn!("{TXN_TOPIC}-{partition}: skipped {skipped} undecodable batch(es)");
        }
        next
    })
    .await?;
    txn.lock().merge_loaded(loaded);
    Ok(())
}

/// A coordinator's passing state answered to a producer as Kafka's partition leaders answer
/// a failed verification: NOT_ENOUGH_REPLICAS, which every producer retries.
pub fn retriable_for_produce(code: i16) -> i16 {
    let passing = [
        ResponseError::NotCoordinator,
        ResponseError::CoordinatorNotAvailable,
        ResponseError::CoordinatorLoadInProgress,
        ResponseError::ConcurrentTransactions,
    ];
    if passing.iter().any(|e| e.code() == code) {
        ResponseError::NotEnoughReplicas.code()
    } else {
        code
    }
}
