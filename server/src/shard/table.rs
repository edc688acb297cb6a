//! The partitions one shard owns, by topic and index, opened lazily on first use (and all at
//! start-up). Runs only on its shard; each call borrows the table for a moment and never across
//! an `.await`.

use std::collections::HashMap;
use std::sync::Arc;

use riptide_engine::{
    CheckpointWrite, CompactionDone, CompactionJob, DirRemoval, PreparedSegment, ReplacedSegments,
    RetentionWrite, SegmentPrep, SyncTarget,
};

use super::mailbox::{
    EpochEndCall, EpochEndOutcome, FollowCall, FollowOp, ListOffsetCall, ListOffsetOutcome, ProduceCall,
    ReadCall, ReadOutcome,
};
use super::router::Router;
use crate::broker::Broker;
use crate::catalog::TopicMeta;
use crate::clock::now_ms;
use crate::metrics::ReplicationGauges;
use crate::partition::replica::{IsrChange, PartitionView};
use crate::partition::topic_id;
use crate::partition::{Offset, Partition, PartitionError};

pub struct PartitionTable {
    broker: Arc<Broker>,
    router: Arc<Router>,
    shard_id: usize,
    by_topic: HashMap<Arc<str>, HashMap<i32, Partition>>,
    /// The metadata offset whose roles the open partitions have taken on.
    roles_at: u64,
    flush_requested: bool,
    flush_tx: flume::Sender<()>,
    /// Spare segments to create off the shard (see `preparer`), and its wake-up.
    preps: Vec<(Arc<str>, i32, SegmentPrep)>,
    /// Deleted partitions' directories (renamed) to remove off the shard, by the preparer.
    removals: Vec<DirRemoval>,
    prep_tx: flume::Sender<()>,
}

/// One group-commit job: the partition and the files whose fdatasync covers its appends.
pub struct SyncJob {
    pub topic: Arc<str>,
    pub partition: i32,
    pub target: SyncTarget,
}

impl PartitionTable {
    pub fn new(
        broker: Arc<Broker>,
        router: Arc<Router>,
        shard_id: usize,
        flush_tx: flume::Sender<()>,
        prep_tx: flume::Sender<()>,
    ) -> PartitionTable {
        PartitionTable {
            broker,
            router,
            shard_id,
            by_topic: HashMap::new(),
            roles_at: 0,
            flush_requested: false,
            flush_tx,
            preps: Vec::new(),
            removals: Vec::new(),
            prep_tx,
        }
    }

    pub fn get_or_open(&mut self, topic: &str, index: i32) -> Result<&mut Partition, PartitionError> {
        self.sync_roles_if_stale();
        let exists = self.by_topic.get(topic).is_some_and(|m| m.contains_key(&index));
        if !exists {
            let partition = self.open(topic, index)?;
            self.by_topic.entry(Arc::from(topic)).or_default().insert(index, partition);
        }
        self.by_topic
            .get_mut(topic)
            .and_then(|m| m.get_mut(&index))
            .ok_or(PartitionError::UnknownTopicOrPartition)
    }

    /// Roles follow the applied metadata: when it moved since the last look (one atomic load
    /// per call otherwise), every open partition takes on its new role first, so no request
    /// is served under a role the metadata already took away.
    fn sync_roles_if_stale(&mut self) {
        let applied = self.broker.metrics.metadata_applied.load(std::sync::atomic::Ordering::Acquire);
        if applied != self.roles_at {
            self.roles_at = applied;
            self.sync_roles();
        }
    }

    /// Gives every open partition its role from the catalog, and opens the replicas this
    /// shard owns that are not open yet (a new topic, or one this broker now follows).
    pub fn sync_roles(&mut self) {
        let node = self.broker.config.node_id;
        let topics = self.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).all();
        for t in &topics {
            for p in 0..t.partitions {
                let Some(view) = view_of(t, p) else { continue };
                let open = self.by_topic.get_mut(t.name.as_str()).and_then(|m| m.get_mut(&p));
                // A replica of an older topic of this name (deleted and re-created before its
                // deletion reached this shard) is not this partition: it goes, and the new
                // one opens below, in a fresh directory.
                let open = match open {
                    Some(stale) if stale.topic_id() != t.id => {
                        tracing::warn!(
                            shard = self.shard_id,
                            "{}-{p}: the open replica belongs to an older topic of this name; deleting it",
                            t.name
                        );
                        let stale = self.by_topic.get_mut(t.name.as_str()).and_then(|m| m.remove(&p));
                        if let Some(stale) = stale {
                            let removal = stale.delete();
                            self.queue_removal(removal);
                        }
                        None
                    }
                    open => open,
                };
                match open {
                    // A reassignment moved the partition off this broker: its copy goes, as
                    // Kafka's StopReplica with delete does (parked requests answer first).
                    Some(partition) if !view.replicas.contains(&node) => {
                        partition.apply_view(&view);
                        if let Some(gone) = self.by_topic.get_mut(t.name.as_str()).and_then(|m| m.remove(&p))
                        {
                            tracing::info!(
                                shard = self.shard_id,
                                "{}-{p}: no longer a replica here (replicas {:?}); deleting the local copy",
                                t.name,
                                view.replicas
                            );
                            let removal = gone.delete();
                            self.queue_removal(removal);
                        }
                    }
                    Some(partition) => partition.apply_view(&view),
                    None if view.replicas.contains(&node)
                        && self.router.owner_of(&t.name, p) == self.shard_id =>
                    {
                        if let Ok(partition) = self.open(&t.name, p) {
                            self.by_topic.entry(Arc::from(t.name.as_str())).or_default().insert(p, partition);
                        }
                    }
                    None => {}
                }
            }
        }
    }

    fn open(&self, topic: &str, index: i32) -> Result<Partition, PartitionError> {
        let meta = self.broker.topic(topic).ok_or(PartitionError::UnknownTopicOrPartition)?;
        if index < 0 || index >= meta.partitions {
            return Err(PartitionError::UnknownTopicOrPartition);
        }
        let node = self.broker.config.node_id;
        // Only a replica keeps a log of the partition.
        let view = view_of(&meta, index).filter(|v| v.replicas.contains(&node));
        let Some(view) = view else { return Err(PartitionError::NotLeaderOrFollower) };
        assert_eq!(self.router.owner_of(topic, index), self.shard_id, "{topic}-{index} opened off its owner");
        let cfg = meta.effective(&self.broker.log_defaults(), self.broker.engine_io);
        let dir = self.broker.partition_dir(topic, index);
        let recorded = self.claim_dir(&dir, meta.id)?;
        let metrics = self.broker.metrics.clone();
        let gauge = metrics.log_end_offset_gauge(topic, index);
        let sealer = self.broker.security.sealer_for(cfg.encryption.as_deref()).map_err(|e| {
            tracing::error!(shard = self.shard_id, "cannot open {}: {e}", dir.display());
            PartitionError::Storage(e)
        })?;
        let mut partition = Partition::open(
            format!("{topic}-{index}"),
            node,
            &dir,
            &cfg,
            metrics,
            gauge,
            crate::clock::system(),
        )
        .inspect_err(|e| {
            tracing::error!(shard = self.shard_id, "cannot open {}: {e}", dir.display());
        })?;
        if recorded != topic_id::Recorded::Topic(meta.id) {
            topic_id::record(&dir, meta.id).map_err(|e| {
                tracing::error!(shard = self.shard_id, "recording the topic id in {}: {e}", dir.display());
                PartitionError::Storage(e.to_string())
            })?;
        }
        partition.bind_topic(meta.id);
        partition.set_sealer(sealer);
        partition.set_landing_hint(self.broker.metrics.landing.cell(topic, index));
        partition.apply_view(&view);
        Ok(partition)
    }

    /// Makes sure `dir` holds topic `id`'s partition before it is opened: a copy left by an
    /// older topic of the same name (deleted and re-created while this broker was away) is
    /// deleted, as Kafka deletes a stray log whose topic id the metadata no longer knows.
    fn claim_dir(&self, dir: &std::path::Path, id: u128) -> Result<topic_id::Recorded, PartitionError> {
        let storage = |e: std::io::Error| {
            tracing::error!(shard = self.shard_id, "reading the topic id of {}: {e}", dir.display());
            PartitionError::Storage(e.to_string())
        };
        match topic_id::read(dir).map_err(storage)? {
            topic_id::Recorded::Topic(old) if old != id => {
                tracing::warn!(
                    shard = self.shard_id,
                    "{} holds topic id {old:032x}, but the topic is now {id:032x} (deleted and re-created \
                     while this broker was away); deleting the stale copy",
                    dir.display()
                );
                riptide_engine::Log::delete_dir(dir, self.broker.engine_io).map_err(|e| {
                    tracing::error!(shard = self.shard_id, "deleting {}: {e}", dir.display());
                    PartitionError::Storage(e.to_string())
                })?;
                Ok(topic_id::Recorded::NoDirectory)
            }
            recorded => Ok(recorded),
        }
    }

    /// Opens every partition of the catalog this shard owns (start-up), so recovery and
    /// retention cover partitions nobody has touched yet.
    pub fn open_all_owned(&mut self) {
        self.roles_at = self.broker.metrics.metadata_applied.load(std::sync::atomic::Ordering::Acquire);
        self.delete_strays();
        self.sync_roles();
    }

    /// Deletes the local copies of partitions moved off this broker while it was down (the
    /// metadata it caught up with at start-up no longer lists it as a replica).
    fn delete_strays(&mut self) {
        let node = self.broker.config.node_id;
        let topics = self.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).all();
        for t in &topics {
            for p in (0..t.partitions).filter(|p| self.router.owner_of(&t.name, *p) == self.shard_id) {
                if t.state(p).is_none_or(|s| s.replicas.contains(&node)) {
                    continue;
                }
                let dir = self.broker.partition_dir(&t.name, p);
                if dir.exists() {
                    tracing::info!(
                        shard = self.shard_id,
                        "{}-{p}: moved off this broker; deleting {}",
                        t.name,
                        dir.display()
                    );
                    if let Err(e) = riptide_engine::Log::delete_dir(&dir, self.broker.engine_io) {
                        tracing::error!("deleting {}: {e}", dir.display());
                    }
                }
            }
        }
        self.delete_dirs_of_deleted_topics();
    }

    /// Deletes the partition directories of topics deleted while this broker was down: their
    /// recorded topic id (`topic_id.rs`) names a topic the caught-up metadata no longer has.
    /// A directory without a recorded id is left alone (its owner cannot be told).
    fn delete_dirs_of_deleted_topics(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.broker.config.data_dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some((topic, index)) = name.to_str().and_then(partition_of_dir) else { continue };
            // The metadata log's directory (`__cluster_metadata-0`) records no topic id.
            if self.router.owner_of(topic, index) != self.shard_id {
                continue;
            }
            let Ok(topic_id::Recorded::Topic(id)) = topic_id::read(&entry.path()) else { continue };
            if self.broker.topic(topic).is_some_and(|t| t.id == id) {
                continue;
            }
            tracing::info!(
                shard = self.shard_id,
                "{}: topic id {id:032x} was deleted while this broker was down; deleting its log",
                entry.path().display()
            );
            if let Err(e) = riptide_engine::Log::delete_dir(&entry.path(), self.broker.engine_io) {
                tracing::error!("deleting {}: {e}", entry.path().display());
            }
        }
    }

    fn request_flush(&mut self) {
        if !self.flush_requested {
            self.flush_requested = true;
            let _ = self.flush_tx.try_send(());
        }
    }

    pub fn produce(&mut self, call: ProduceCall) {
        let partition = match self.get_or_open(&call.topic, call.partition) {
            Ok(p) => p,
            Err(e) => {
                let _ = call.reply.send(Err(e));
                return;
            }
        };
        let needs_flush = match call.marker {
            Some(m) => partition.append_marker(&m, call.acks, call.reply),
            None => partition.append_from(call.records, call.landed, call.origin, call.acks, call.reply),
        };
        let prep = partition.prepare_segment();
        if needs_flush {
            self.request_flush();
        }
        self.queue_prep(&call.topic, call.partition, prep);
    }

    /// Queues a spare segment's creation for the shard's preparer and wakes it.
    fn queue_prep(&mut self, topic: &Arc<str>, index: i32, prep: Option<SegmentPrep>) {
        if let Some(prep) = prep {
            self.preps.push((topic.clone(), index, prep));
            let _ = self.prep_tx.try_send(());
        }
    }

    /// The spare segments to create, oldest request first; clears the queue.
    pub fn take_segment_preps(&mut self) -> Vec<(Arc<str>, i32, SegmentPrep)> {
        std::mem::take(&mut self.preps)
    }

    /// Queues a deleted partition's directory removal for the shard's preparer and wakes it.
    fn queue_removal(&mut self, removal: Option<DirRemoval>) {
        if let Some(r) = removal {
            self.removals.push(r);
            let _ = self.prep_tx.try_send(());
        }
    }

    /// The directory removals to run; clears the queue.
    pub fn take_removals(&mut self) -> Vec<DirRemoval> {
        std::mem::take(&mut self.removals)
    }

    /// Installs a spare segment the preparer created (nothing if the partition is gone).
    pub fn segment_prepared(&mut self, topic: &str, index: i32, prepared: PreparedSegment) {
        if let Some(p) = self.by_topic.get_mut(topic).and_then(|m| m.get_mut(&index)) {
            p.segment_prepared(prepared);
        }
    }

    pub fn read(&mut self, call: ReadCall) -> ReadOutcome {
        let p = self.get_or_open(&call.topic, call.partition)?;
        match call.replica {
            Some(fetch) => p.read_for_follower(fetch, call.offset, call.max_bytes, call.notify),
            None => p.read(call.offset, call.max_bytes, call.min_one, call.notify, call.read_committed),
        }
    }

    pub fn producers(&mut self, topic: &Arc<str>, partition: i32) -> super::mailbox::ProducersOutcome {
        self.get_or_open(topic, partition)?.producers()
    }

    pub fn delete_records(
        &mut self,
        topic: &str,
        partition: i32,
        offset: Offset,
        live: &[riptide_model::NodeId],
    ) -> super::mailbox::DeleteRecordsOutcome {
        self.get_or_open(topic, partition)?.delete_records(offset, live)
    }

    pub fn list_offset(&mut self, call: ListOffsetCall) -> ListOffsetOutcome {
        self.get_or_open(&call.topic, call.partition)?.list_offset(call.spec)
    }

    pub fn epoch_end(&mut self, call: EpochEndCall) -> EpochEndOutcome {
        self.get_or_open(&call.topic, call.partition)?
            .end_offset_for_epoch(call.current_leader_epoch, call.epoch)
    }

    /// Follower work: position, append or truncation of one partition this broker follows.
    pub fn follow(&mut self, call: FollowCall) {
        let p = match self.get_or_open(&call.topic, call.partition) {
            Ok(p) => p,
            Err(e) => {
                let _ = call.reply.send(Err(e));
                return;
            }
        };
        let needs_flush = match call.op {
            FollowOp::Position => {
                let _ = call.reply.send(Ok(p.follower_position()));
                false
            }
            FollowOp::Append { records, leader_hw, leader_log_start } => {
                p.append_as_follower(call.leader_epoch, &records, (leader_hw, leader_log_start), call.reply)
            }
            FollowOp::Truncate(diverging) => {
                let _ = call.reply.send(p.truncate_diverged(call.leader_epoch, diverging));
                false
            }
            FollowOp::RestartAt(offset) => {
                let _ = call.reply.send(p.restart_at(call.leader_epoch, offset));
                false
            }
        };
        let prep = p.prepare_segment();
        if needs_flush {
            self.request_flush();
        }
        self.queue_prep(&call.topic, call.partition, prep);
    }

    /// The ISR changes the partitions this shard leads want now, and this shard's
    /// replication gauges.
    pub fn isr_changes(
        &mut self,
        lag_max: std::time::Duration,
    ) -> (Vec<(Arc<str>, i32, IsrChange)>, ReplicationGauges) {
        self.sync_roles_if_stale();
        let live: std::collections::HashSet<i32> = {
            let cat = self.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
            cat.brokers.values().filter(|b| !b.fenced && !b.in_controlled_shutdown).map(|b| b.id).collect()
        };
        let eligible = |id: i32| live.contains(&id);
        let mut out = Vec::new();
        let mut g = ReplicationGauges::default();
        for (topic, parts) in self.by_topic.iter_mut() {
            for (index, p) in parts.iter_mut() {
                if let Some(change) = p.isr_change(lag_max, &eligible) {
                    out.push((topic.clone(), *index, change));
                }
                if let Some((isr, replicas)) = p.replication_counts() {
                    g.leaders += 1;
                    g.under_replicated += u64::from(isr < replicas);
                    g.under_min_isr += u64::from(isr < p.min_insync());
                    let leo = p.log_end_offset();
                    for (_, acked) in p.follower_offsets() {
                        g.max_follower_lag = g.max_follower_lag.max(acked.max(Offset(0)).count_to(leo));
                    }
                }
            }
        }
        (out, g)
    }

    pub fn replica_logs(&self) -> Vec<super::mailbox::ReplicaLog> {
        let mut out = Vec::new();
        for (topic, parts) in &self.by_topic {
            for (index, p) in parts {
                out.push(super::mailbox::ReplicaLog {
                    topic: topic.clone(),
                    partition: *index,
                    size_bytes: p.size_bytes(),
                    offset_lag: p.log_end_offset().count_to(p.high_watermark()),
                    log_end_offset: p.log_end_offset(),
                    leader: p.is_leader(),
                    traffic: p.traffic(),
                });
            }
        }
        out
    }

    pub fn isr_change_failed(&mut self, topic: &str, index: i32) {
        if let Some(p) = self.by_topic.get_mut(topic).and_then(|m| m.get_mut(&index)) {
            p.isr_change_failed();
        }
    }

    /// (replica, acknowledged offset) of each follower, and the log end, of a partition this
    /// shard leads (for `topic describe`).
    pub fn follower_offsets(&mut self, topic: &str, index: i32) -> Option<(Offset, Vec<(i32, Offset)>)> {
        let p = self.by_topic.get(topic).and_then(|m| m.get(&index))?;
        p.is_leader().then(|| (p.log_end_offset(), p.follower_offsets()))
    }

    /// Partitions with appends not yet covered by a group commit, with what to fdatasync for
    /// each; clears the marks.
    pub fn take_sync_jobs(&mut self) -> Vec<SyncJob> {
        self.flush_requested = false;
        let mut jobs = Vec::new();
        for (topic, parts) in self.by_topic.iter_mut() {
            for (index, p) in parts.iter_mut().filter(|(_, p)| p.is_dirty()) {
                if let Some(target) = p.take_sync_target() {
                    jobs.push(SyncJob { topic: topic.clone(), partition: *index, target });
                }
            }
        }
        jobs
    }

    pub fn complete_sync(
        &mut self,
        topic: &str,
        index: i32,
        up_to: Offset,
        result: std::io::Result<()>,
    ) -> Option<CheckpointWrite> {
        self.by_topic.get_mut(topic).and_then(|m| m.get_mut(&index))?.complete_sync(up_to, result)
    }

    pub fn checkpoint_done(
        &mut self,
        topic: &str,
        index: i32,
        write: &CheckpointWrite,
        result: std::io::Result<()>,
    ) {
        if let Some(p) = self.by_topic.get_mut(topic).and_then(|m| m.get_mut(&index)) {
            p.checkpoint_done(write, result);
        }
    }

    pub fn reconfigure(&mut self, topic: &str) {
        let Some(meta) = self.broker.topic(topic) else { return };
        let cfg = meta.effective(&self.broker.log_defaults(), self.broker.engine_io);
        let sealer = match self.broker.security.sealer_for(cfg.encryption.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                // The config change was validated against this broker's keys; another broker's
                // keyring differs. Keep sealing as before rather than write in the clear.
                tracing::error!("{topic}: {e}; new encryption settings not applied");
                return;
            }
        };
        if let Some(parts) = self.by_topic.get_mut(topic) {
            for p in parts.values_mut() {
                p.reconfigure(&cfg);
                p.set_sealer(sealer.clone());
            }
        }
    }

    /// Deletes this shard's partitions of a deleted topic, open or not (a partition created
    /// since start-up and never used has a directory but no open log).
    /// Only topic `id`'s: a topic re-created under the name since keeps its replicas.
    pub fn drop_topic(&mut self, topic: &str, id: u128, partitions: i32) {
        let mut open = self.by_topic.remove(topic).unwrap_or_default();
        let successor: HashMap<i32, Partition> = open.extract_if(|_, p| p.topic_id() != id).collect();
        if !successor.is_empty() {
            self.by_topic.insert(Arc::from(topic), successor);
        }
        let (router, shard_id) = (self.router.clone(), self.shard_id);
        for index in (0..partitions).filter(|p| router.owner_of(topic, *p) == shard_id) {
            let removal = match open.remove(&index) {
                Some(p) => p.delete(),
                None if self.by_topic.get(topic).is_some_and(|m| m.contains_key(&index)) => None,
                None => {
                    let dir = self.broker.partition_dir(topic, index);
                    if matches!(topic_id::read(&dir), Ok(topic_id::Recorded::Topic(other)) if other != id) {
                        continue;
                    }
                    riptide_engine::Log::retire_dir(&dir, self.broker.engine_io)
                        .inspect_err(|e| tracing::error!("deleting {}: {e}", dir.display()))
                        .ok()
                        .flatten()
                }
            };
            self.queue_removal(removal);
        }
        for p in open.into_values() {
            let removal = p.delete();
            self.queue_removal(removal);
        }
        if self.broker.topic(topic).is_none_or(|t| t.id == id) {
            self.broker.metrics.forget_topic(topic);
        }
    }

    /// Time-based rolling and (when `retain`) retention for every open partition; returns
    /// the retention writes to run off the shard.
    pub fn housekeeping(&mut self, retain: bool) -> Vec<(Arc<str>, i32, RetentionWrite)> {
        self.collect_due(|p, now| p.housekeeping(now, retain))
    }

    /// Compaction passes due on this shard's partitions, to run off the shard.
    pub fn compaction_jobs(&mut self) -> Vec<(Arc<str>, i32, CompactionJob)> {
        self.collect_due(Partition::compaction_job)
    }

    /// What `due` hands out for each open partition at one `now`, with its topic and index.
    fn collect_due<T>(&mut self, due: impl Fn(&mut Partition, i64) -> Option<T>) -> Vec<(Arc<str>, i32, T)> {
        let now = now_ms();
        let mut out = Vec::new();
        for (topic, parts) in self.by_topic.iter_mut() {
            for (index, p) in parts.iter_mut() {
                if let Some(x) = due(p, now) {
                    out.push((topic.clone(), *index, x));
                }
            }
        }
        out
    }

    /// The outcome of a compaction pass (ignored when its partition has gone meanwhile: the
    /// log it was made for is closed or deleted).
    /// Returns the segments it replaced, to close off the shard.
    pub fn compaction_done(
        &mut self,
        topic: &str,
        index: i32,
        done: CompactionDone,
    ) -> Option<ReplacedSegments> {
        let p = self.by_topic.get_mut(topic).and_then(|m| m.get_mut(&index))?;
        Some(p.compaction_done(done))
    }

    pub fn retention_done(&mut self, topic: &str, index: i32, result: std::io::Result<()>) {
        if let Some(p) = self.by_topic.get_mut(topic).and_then(|m| m.get_mut(&index)) {
            p.retention_done(result);
        }
    }

    /// Clean shutdown: fsync and close every log, answering what waited for durability.
    pub fn close_all(&mut self) {
        for p in self.by_topic.drain().flat_map(|(_, parts)| parts.into_values()) {
            p.close();
        }
    }
}

/// A partition's state in the catalog as a role change needs it.
fn view_of(meta: &TopicMeta, index: i32) -> Option<PartitionView> {
    let st = meta.state(index)?;
    Some(PartitionView {
        replicas: st.replicas.clone(),
        isr: st.isr.clone(),
        leader: st.leader,
        leader_epoch: st.leader_epoch,
        partition_epoch: st.partition_epoch,
    })
}

/// `topic-N` (a partition directory's name) as (topic, N).
fn partition_of_dir(name: &str) -> Option<(&str, i32)> {
    let (topic, index) = name.rsplit_once('-')?;
    let index: i32 = index.parse().ok()?;
    (!topic.is_empty() && index >= 0).then_some((topic, index))
}

#[cfg(test)]
mod tests {
    use super::partition_of_dir;

    #[test]
    fn partition_directory_names() {
        assert_eq!(partition_of_dir("orders-3"), Some(("orders", 3)));
        assert_eq!(partition_of_dir("a-b-c-12"), Some(("a-b-c", 12)));
        assert_eq!(partition_of_dir("__consumer_offsets-49"), Some(("__consumer_offsets", 49)));
        assert_eq!(partition_of_dir("orders-3-delete"), None);
        assert_eq!(partition_of_dir("meta.properties"), None);
        assert_eq!(partition_of_dir("-3"), None);
        assert_eq!(partition_of_dir("t--1"), Some(("t-", 1)), "a topic name may end in '-'");
        assert_eq!(partition_of_dir("orders-x"), None);
    }
}
