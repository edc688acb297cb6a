//! The partitions one shard owns, by topic and index, opened lazily on first use (and all at
//! start-up). Runs only on its shard; each call borrows the table for a moment and never across
//! an `.await`.

use std::collections::HashMap;
use std::sync::Arc;

use riptide_engine::{CheckpointWrite, RetentionWrite, SyncTarget};

use super::mailbox::{ListOffsetCall, ListOffsetOutcome, ProduceCall, ReadCall, ReadOutcome};
use super::router::Router;
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::partition::{Partition, PartitionError};

pub struct PartitionTable {
    broker: Arc<Broker>,
    router: Arc<Router>,
    shard_id: usize,
    by_topic: HashMap<Arc<str>, HashMap<i32, Partition>>,
    /// Open partitions this broker does not lead (per the metadata applied at `leaders_at`):
    /// they answer NOT_LEADER_OR_FOLLOWER.
    not_led: HashMap<Arc<str>, std::collections::HashSet<i32>>,
    leaders_at: u64,
    flush_requested: bool,
    flush_tx: flume::Sender<()>,
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
    ) -> PartitionTable {
        PartitionTable {
            broker,
            router,
            shard_id,
            by_topic: HashMap::new(),
            not_led: HashMap::new(),
            leaders_at: 0,
            flush_requested: false,
            flush_tx,
        }
    }

    pub fn get_or_open(&mut self, topic: &str, index: i32) -> Result<&mut Partition, PartitionError> {
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

    /// Refuses a request for a partition this broker does not lead. The leader set is
    /// recomputed only when the applied metadata moved (one atomic load per call otherwise).
    fn check_leader(&mut self, topic: &str, index: i32) -> Result<(), PartitionError> {
        let applied = self.broker.metrics.metadata_applied.load(std::sync::atomic::Ordering::Acquire);
        if applied != self.leaders_at {
            self.leaders_at = applied;
            self.not_led.clear();
            let node = self.broker.config.node_id;
            for (t, parts) in &self.by_topic {
                let meta = self.broker.topic(t);
                for index in parts.keys() {
                    if meta.as_ref().is_none_or(|m| m.leader(*index) != node) {
                        self.not_led.entry(t.clone()).or_default().insert(*index);
                    }
                }
            }
        }
        if self.not_led.get(topic).is_some_and(|s| s.contains(&index)) {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        if !self.by_topic.get(topic).is_some_and(|m| m.contains_key(&index)) {
            // Not open yet: `open` checks against the catalog.
            let meta = self.broker.topic(topic).ok_or(PartitionError::UnknownTopicOrPartition)?;
            if index >= 0 && index < meta.partitions && meta.leader(index) != self.broker.config.node_id {
                return Err(PartitionError::NotLeaderOrFollower);
            }
        }
        Ok(())
    }

    fn open(&self, topic: &str, index: i32) -> Result<Partition, PartitionError> {
        let meta = self.broker.topic(topic).ok_or(PartitionError::UnknownTopicOrPartition)?;
        if index < 0 || index >= meta.partitions {
            return Err(PartitionError::UnknownTopicOrPartition);
        }
        // Only a replica keeps a log of the partition.
        if meta.state(index).is_none_or(|st| !st.replicas.contains(&self.broker.config.node_id)) {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        assert_eq!(self.router.owner_of(topic, index), self.shard_id, "{topic}-{index} opened off its owner");
        let cfg = meta.effective(&self.broker.config.log, self.broker.engine_io);
        let dir = self.broker.partition_dir(topic, index);
        let metrics = self.broker.metrics.clone();
        let gauge = metrics.log_end_offset_gauge(topic, index);
        Partition::open(format!("{topic}-{index}"), &dir, &cfg, metrics, gauge).inspect_err(|e| {
            tracing::error!(shard = self.shard_id, "cannot open {}: {e}", dir.display());
        })
    }

    /// Opens every partition of the catalog this shard owns (start-up), so recovery and
    /// retention cover partitions nobody has touched yet.
    pub fn open_all_owned(&mut self) {
        let topics = self.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).all();
        for t in topics {
            let node = self.broker.config.node_id;
            for p in 0..t.partitions {
                let replica = t.state(p).is_some_and(|st| st.replicas.contains(&node));
                if replica && self.router.owner_of(&t.name, p) == self.shard_id {
                    let _ = self.get_or_open(&t.name, p);
                }
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
        if let Err(e) = self.check_leader(&call.topic, call.partition) {
            let _ = call.reply.send(Err(e));
            return;
        }
        let partition = match self.get_or_open(&call.topic, call.partition) {
            Ok(p) => p,
            Err(e) => {
                let _ = call.reply.send(Err(e));
                return;
            }
        };
        if partition.append(call.records, call.acks, call.reply) {
            self.request_flush();
        }
    }

    pub fn read(&mut self, call: ReadCall) -> ReadOutcome {
        self.check_leader(&call.topic, call.partition)?;
        self.get_or_open(&call.topic, call.partition)?.read(
            call.offset,
            call.max_bytes,
            call.min_one,
            call.notify,
        )
    }

    pub fn list_offset(&mut self, call: ListOffsetCall) -> ListOffsetOutcome {
        self.check_leader(&call.topic, call.partition)?;
        self.get_or_open(&call.topic, call.partition)?.list_offset(call.spec)
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
        up_to: i64,
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
        let cfg = meta.effective(&self.broker.config.log, self.broker.engine_io);
        if let Some(parts) = self.by_topic.get_mut(topic) {
            for p in parts.values_mut() {
                p.reconfigure(&cfg);
            }
        }
    }

    /// Deletes this shard's partitions of a deleted topic, open or not (a partition created
    /// since start-up and never used has a directory but no open log).
    pub fn drop_topic(&mut self, topic: &str, partitions: i32) {
        let mut open = self.by_topic.remove(topic).unwrap_or_default();
        for index in (0..partitions).filter(|p| self.router.owner_of(topic, *p) == self.shard_id) {
            match open.remove(&index) {
                Some(p) => p.delete(),
                None => {
                    let dir = self.broker.partition_dir(topic, index);
                    if let Err(e) = riptide_engine::Log::delete_dir(&dir, self.broker.engine_io) {
                        tracing::error!("deleting {}: {e}", dir.display());
                    }
                }
            }
        }
        for p in open.into_values() {
            p.delete();
        }
        self.broker.metrics.forget_topic(topic);
    }

    /// Retention, time-based rolling and compaction for every open partition; returns the
    /// retention writes to run off the shard.
    pub fn housekeeping(&mut self) -> Vec<(Arc<str>, i32, RetentionWrite)> {
        let now = now_ms();
        let mut writes = Vec::new();
        for (topic, parts) in self.by_topic.iter_mut() {
            for (index, p) in parts.iter_mut() {
                if let Some(w) = p.housekeeping(now) {
                    writes.push((topic.clone(), *index, w));
                }
            }
        }
        writes
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
