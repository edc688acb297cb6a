//! A simulated broker: its own disk (a detached simulated file system), the metadata image it
//! builds from the controller's log, and the real `Partition` for the one simulated partition,
//! driven the way the broker's shard, flusher, fetcher and ISR task drive it. The fetcher's
//! rule for an answer is the broker's own (`replication::fetcher::follow_op`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use riptide_engine::io::sim::{self, Disk};
use riptide_engine::{IoBackend, LogConfig};
use riptide_quorum::{MetadataImage, NodeId, NO_LEADER};
use riptide_server::api::error::code_of;
use riptide_server::catalog::EffectiveTopicConfig;
use riptide_server::clock::Clock;
use riptide_server::config::Durability;
use riptide_server::metrics::Metrics;
use riptide_server::partition::replica::PartitionView;
use riptide_server::partition::{
    Acks, AppendReply, AppendResult, EpochEndOffset, FollowerPosition, LeaderEpoch, Offset, Partition,
    PartitionError, ReplicaFetch,
};
use riptide_server::replication::fetcher::{follow_op, Answer};
use riptide_server::shard::mailbox::FollowOp;

use super::controller::TOPIC;
use super::net::{Msg, Node, CONTROLLER};

pub const HEARTBEAT_MS: u64 = 100;
pub const METADATA_POLL_MS: u64 = 50;
pub const ISR_TICK_MS: u64 = 125;
/// `replica.lag.time.max.ms` in the simulation.
pub const LAG_MAX_MS: u64 = 600;
/// A fetch unanswered this long is given up (its connection closed) and sent again.
const FETCH_TIMEOUT_MS: u64 = 400;
const ISR_TIMEOUT_MS: u64 = 1_000;
/// Between empty answers (the leader would have parked the fetch this long at most).
const FETCH_IDLE_MS: u64 = 20;
const REFUSED_BACKOFF_MS: u64 = 100;
const FAILED_APPEND_BACKOFF_MS: u64 = 1000;
const FETCH_MAX_BYTES: u32 = 16 * 1024;
pub const START_MS: i64 = 1_700_000_000_000;

/// Virtual time as the partition reads it.
pub struct SimClock {
    base: Instant,
    now_ms: AtomicU64,
}

impl SimClock {
    pub fn new() -> Arc<SimClock> {
        Arc::new(SimClock { base: Instant::now(), now_ms: AtomicU64::new(0) })
    }

    pub fn set(&self, ms: u64) {
        self.now_ms.store(ms, Ordering::Relaxed);
    }
}

impl Clock for SimClock {
    fn wall_ms(&self) -> i64 {
        START_MS + self.now_ms.load(Ordering::Relaxed) as i64
    }

    fn monotonic(&self) -> Instant {
        self.base + Duration::from_millis(self.now_ms.load(Ordering::Relaxed))
    }
}

/// What a broker asks of the world after handling something.
pub enum Out {
    Send {
        to: Node,
        msg: Msg,
    },
    /// A timer for this incarnation.
    Timer {
        after_ms: u64,
        timer: Timer,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    Heartbeat,
    MetadataPoll,
    IsrCheck,
    Fetch,
    GroupCommit,
    /// The fetch with this id has had its time.
    FetchTimeout(u64),
    /// The ISR change with this id was not answered in time (the agent's request timeout).
    IsrTimeout(u64),
}

/// The follower side for the current leader epoch (the fetcher's `Followed`).
struct Following {
    leader: NodeId,
    epoch: LeaderEpoch,
    position: Option<FollowerPosition>,
    in_flight: Option<u64>,
    /// An append waits for its group commit before the next fetch.
    appending: bool,
    backoff_until: u64,
}

/// A leader append that happened, for the checker: one leader per epoch.
pub struct LeaderAppend {
    pub epoch: LeaderEpoch,
    pub broker: NodeId,
    pub incarnation: u64,
}

pub struct Broker {
    pub id: NodeId,
    pub up: bool,
    /// Bumped at every start; messages and timers for an older one are dropped.
    pub incarnation: u64,
    disk: Option<Disk>,
    cfg: EffectiveTopicConfig,
    clock: Arc<SimClock>,
    pub registered: Option<i64>,
    pub image: MetadataImage,
    pub part: Option<Partition>,
    last_view: Option<PartitionView>,
    following: Option<Following>,
    next_fetch_id: u64,
    commit_scheduled: bool,
    /// The ISR change sent and not answered yet.
    isr_in_flight: Option<u64>,
    next_isr_id: u64,
    produce_tx: flume::Sender<(usize, AppendResult)>,
    produce_rx: flume::Receiver<(usize, AppendResult)>,
    /// Producer request ids by reply slot.
    produce_waiting: Vec<Option<u64>>,
    follow_tx: flume::Sender<Result<FollowerPosition, PartitionError>>,
    follow_rx: flume::Receiver<Result<FollowerPosition, PartitionError>>,
    pub plant_early_follower_ack: bool,
    /// How long a group commit takes (the disk's fdatasync): appends meanwhile join it.
    pub sync_ms: u64,
}

impl Broker {
    pub fn new(id: NodeId, seed: u64, cfg: EffectiveTopicConfig, clock: Arc<SimClock>) -> Broker {
        sim::install(seed, sim::Faults::default());
        sim::create_dir_durable(&PathBuf::from(format!("/b{id}")));
        let disk = sim::detach();
        let (produce_tx, produce_rx) = flume::unbounded();
        let (follow_tx, follow_rx) = flume::unbounded();
        Broker {
            id,
            up: false,
            incarnation: 0,
            disk,
            cfg,
            clock,
            registered: None,
            image: MetadataImage::default(),
            part: None,
            last_view: None,
            following: None,
            next_fetch_id: 0,
            commit_scheduled: false,
            isr_in_flight: None,
            next_isr_id: 0,
            produce_tx,
            produce_rx,
            produce_waiting: Vec::new(),
            follow_tx,
            follow_rx,
            plant_early_follower_ack: false,
            sync_ms: 1,
        }
    }

    /// Runs `f` with this broker's disk on the thread.
    pub fn with_disk<R>(&mut self, f: impl FnOnce(&mut Broker) -> R) -> R {
        sim::attach(self.disk.take().expect("the disk is attached once"));
        let r = f(self);
        self.disk = sim::detach();
        r
    }

    /// A new process: empty memory, the disk as it is.
    pub fn start(&mut self, out: &mut Vec<Out>) {
        assert!(!self.up);
        self.up = true;
        self.incarnation += 1;
        self.registered = None;
        self.image = MetadataImage::default();
        self.part = None;
        self.last_view = None;
        self.following = None;
        self.commit_scheduled = false;
        self.isr_in_flight = None;
        self.produce_waiting.clear();
        (self.produce_tx, self.produce_rx) = flume::unbounded();
        (self.follow_tx, self.follow_rx) = flume::unbounded();
        out.push(Out::Send {
            to: CONTROLLER,
            msg: Msg::Register { incarnation: u128::from(self.incarnation) },
        });
        for timer in [Timer::Heartbeat, Timer::MetadataPoll, Timer::IsrCheck] {
            out.push(Out::Timer { after_ms: 1, timer });
        }
    }

    /// The process dies (kill -9: the page cache survives); `power_loss` also loses what the
    /// disk had not made durable.
    pub fn crash(&mut self, power_loss: bool) {
        self.up = false;
        // Dropped, not closed: nothing is flushed on the way down.
        self.part = None;
        if power_loss {
            self.with_disk(|_| sim::crash());
        }
    }

    pub fn timer(&mut self, timer: Timer, now: u64, out: &mut Vec<Out>, appends: &mut Vec<LeaderAppend>) {
        match timer {
            Timer::Heartbeat => {
                let msg = match self.registered {
                    Some(epoch) => Msg::Heartbeat { epoch, applied: self.image.applied },
                    None => Msg::Register { incarnation: u128::from(self.incarnation) },
                };
                out.push(Out::Send { to: CONTROLLER, msg });
                out.push(Out::Timer { after_ms: HEARTBEAT_MS, timer: Timer::Heartbeat });
            }
            Timer::MetadataPoll => {
                out.push(Out::Send { to: CONTROLLER, msg: Msg::MetadataFetch { after: self.image.applied } });
                out.push(Out::Timer { after_ms: METADATA_POLL_MS, timer: Timer::MetadataPoll });
            }
            Timer::IsrCheck => {
                self.isr_check(out);
                out.push(Out::Timer { after_ms: ISR_TICK_MS, timer: Timer::IsrCheck });
            }
            Timer::Fetch => self.fetch(now, out),
            Timer::GroupCommit => {
                self.commit_scheduled = false;
                if let Some(p) = self.part.as_mut() {
                    p.sync_blocking();
                }
            }
            Timer::IsrTimeout(id) => {
                if self.isr_in_flight == Some(id) {
                    self.isr_in_flight = None;
                    if let Some(p) = self.part.as_mut() {
                        p.isr_change_failed();
                    }
                }
            }
            Timer::FetchTimeout(id) => {
                if let Some(f) = self.following.as_mut().filter(|f| f.in_flight == Some(id)) {
                    f.in_flight = None;
                    out.push(Out::Timer { after_ms: 1, timer: Timer::Fetch });
                }
            }
        }
        self.drain(now, out, appends);
    }

    pub fn message(
        &mut self,
        from: Node,
        msg: Msg,
        now: u64,
        out: &mut Vec<Out>,
        appends: &mut Vec<LeaderAppend>,
    ) {
        match msg {
            Msg::Registered(Ok(epoch)) => {
                self.registered = Some(epoch);
                self.sync_role(now, out);
            }
            Msg::Registered(Err(_)) => {}
            Msg::HeartbeatStale => self.registered = None,
            Msg::Metadata { first, entries } => self.apply_metadata(first, entries, now, out),
            Msg::AlterIsrReply { id, ok } => {
                if self.isr_in_flight != Some(id) {
                    return;
                }
                self.isr_in_flight = None;
                if !ok {
                    if let Some(p) = self.part.as_mut() {
                        p.isr_change_failed();
                    }
                }
            }
            Msg::Fetch { id, leader_epoch, offset, last_epoch } => {
                let reply = self.serve_fetch(from, id, leader_epoch, offset, last_epoch);
                out.push(Out::Send { to: from, msg: reply });
            }
            Msg::FetchReply { id, error, diverging, records, hw, log_start } => {
                let answer = Answer { error_code: error, diverging, records, log_start, high_watermark: hw };
                self.on_fetch_reply(id, answer, now, out);
            }
            Msg::Produce { id, batch } => self.produce(from, id, batch, out, appends),
            _ => {}
        }
        self.drain(now, out, appends);
    }

    fn apply_metadata(
        &mut self,
        first: u64,
        entries: Vec<Vec<riptide_quorum::MetadataRecord>>,
        now: u64,
        out: &mut Vec<Out>,
    ) {
        for (i, records) in entries.iter().enumerate() {
            let index = first + i as u64;
            if index != self.image.applied + 1 {
                continue; // a stale or duplicated answer
            }
            self.image.apply(index, records, &mut Vec::new());
        }
        self.sync_role(now, out);
    }

    /// Opens the partition once the metadata names this broker a replica, and takes the role
    /// the image gives it (the shard's `apply_view` and the fetcher manager).
    fn sync_role(&mut self, _now: u64, out: &mut Vec<Out>) {
        // A starting broker serves nothing until it is registered and has applied the
        // metadata up to its registration (`cluster::wait_ready`): replaying the log, it
        // passes through views long gone.
        if self.registered.is_none_or(|epoch| self.image.applied < epoch as u64) {
            return;
        }
        let Some(st) = self.image.partition(TOPIC, 0).cloned() else { return };
        if !st.replicas.contains(&self.id) {
            return;
        }
        if self.part.is_none() {
            let dir = PathBuf::from(format!("/b{}/{TOPIC}-0", self.id));
            match Partition::open(
                format!("{TOPIC}-0"),
                self.id,
                &dir,
                &self.cfg,
                Arc::new(Metrics::default()),
                Arc::new(AtomicI64::new(0)),
                self.clock.clone(),
            ) {
                Ok(mut p) => {
                    p.plant_early_follower_ack(self.plant_early_follower_ack);
                    self.part = Some(p);
                    self.last_view = None;
                }
                Err(e) => {
                    panic!("broker {}: the partition does not open: {e}", self.id);
                }
            }
        }
        let view = PartitionView {
            replicas: st.replicas.clone(),
            isr: st.isr.clone(),
            leader: st.leader,
            leader_epoch: st.leader_epoch,
            partition_epoch: st.partition_epoch,
        };
        if self.last_view.as_ref() == Some(&view) {
            return;
        }
        let p = self.part.as_mut().expect("opened above");
        p.apply_view(&view);
        self.last_view = Some(view);
        if st.leader != self.id && st.leader != NO_LEADER {
            if self.following.as_ref().is_none_or(|f| f.epoch != st.leader_epoch || f.leader != st.leader) {
                // Answers for the previous epoch's appends go nowhere (the fetcher drops them).
                (self.follow_tx, self.follow_rx) = flume::unbounded();
                self.following = Some(Following {
                    leader: st.leader,
                    epoch: st.leader_epoch,
                    position: None,
                    in_flight: None,
                    appending: false,
                    backoff_until: 0,
                });
                out.push(Out::Timer { after_ms: 1, timer: Timer::Fetch });
            }
        } else {
            self.following = None;
        }
    }

    /// The ISR task's tick: the partition says which change is due (it keeps one pending
    /// until the metadata shows it, or it is refused or times out).
    fn isr_check(&mut self, out: &mut Vec<Out>) {
        let (Some(p), Some(epoch)) = (self.part.as_mut(), self.registered) else { return };
        let image = &self.image;
        let lag = Duration::from_millis(LAG_MAX_MS);
        let Some(change) = p.isr_change(lag, &|id| image.is_live(id)) else { return };
        self.next_isr_id += 1;
        let id = self.next_isr_id;
        self.isr_in_flight = Some(id);
        let change = riptide_quorum::IsrChangeRequest {
            topic: TOPIC.into(),
            partition: 0,
            leader_epoch: change.leader_epoch,
            partition_epoch: change.partition_epoch,
            isr: change.isr,
        };
        out.push(Out::Send { to: CONTROLLER, msg: Msg::AlterIsr { id, broker_epoch: epoch, change } });
        out.push(Out::Timer { after_ms: ISR_TIMEOUT_MS, timer: Timer::IsrTimeout(id) });
    }

    /// The fetcher: one fetch in flight, sent once the last answer's batches are held.
    fn fetch(&mut self, now: u64, out: &mut Vec<Out>) {
        let Some(p) = self.part.as_ref() else { return };
        let Some(f) = self.following.as_mut() else { return };
        if f.in_flight.is_some() || f.appending {
            return;
        }
        if now < f.backoff_until {
            out.push(Out::Timer { after_ms: f.backoff_until - now, timer: Timer::Fetch });
            return;
        }
        let pos = *f.position.get_or_insert_with(|| p.follower_position());
        self.next_fetch_id += 1;
        let id = self.next_fetch_id;
        f.in_flight = Some(id);
        out.push(Out::Send {
            to: f.leader,
            msg: Msg::Fetch {
                id,
                leader_epoch: f.epoch,
                offset: pos.log_end_offset,
                last_epoch: pos.last_epoch,
            },
        });
        out.push(Out::Timer { after_ms: FETCH_TIMEOUT_MS, timer: Timer::FetchTimeout(id) });
    }

    /// The leader side of a follower's fetch (`api::fetch` for a replica).
    fn serve_fetch(
        &mut self,
        from: Node,
        id: u64,
        leader_epoch: LeaderEpoch,
        offset: Offset,
        last_epoch: LeaderEpoch,
    ) -> Msg {
        let refuse = |error: i16| Msg::FetchReply {
            id,
            error,
            diverging: EpochEndOffset::UNDEFINED,
            records: None,
            hw: Offset::NONE,
            log_start: Offset::NONE,
        };
        let Some(p) = self.part.as_mut() else {
            return refuse(code_of::<()>(&Err(PartitionError::NotLeaderOrFollower)));
        };
        let fetch = ReplicaFetch {
            replica_id: from,
            current_leader_epoch: leader_epoch,
            last_fetched_epoch: last_epoch,
            // The simulated fetch carries no log start: nothing here deletes records, and the
            // low watermark it feeds is DeleteRecords' alone.
            log_start_offset: Offset::NONE,
        };
        let result = p.read_for_follower(fetch, offset, FETCH_MAX_BYTES, None);
        match result {
            Err(e) => refuse(code_of::<()>(&Err(e))),
            Ok(r) => {
                let records = match r.slice {
                    Some(_) => match p.read_bytes(offset, FETCH_MAX_BYTES, p.log_end_offset()) {
                        Ok(bytes) => Some(Bytes::from(bytes)),
                        Err(e) => return refuse(code_of::<()>(&Err(e))),
                    },
                    None => None,
                };
                Msg::FetchReply {
                    id,
                    error: 0,
                    diverging: r.diverging.unwrap_or(EpochEndOffset::UNDEFINED),
                    records,
                    hw: r.high_watermark,
                    log_start: r.log_start_offset,
                }
            }
        }
    }

    /// The follower side of an answer (the fetcher's `apply_response` and the shard's `follow`).
    fn on_fetch_reply(&mut self, id: u64, answer: Answer, now: u64, out: &mut Vec<Out>) {
        let Some(f) = self.following.as_mut().filter(|f| f.in_flight == Some(id)) else { return };
        f.in_flight = None;
        let Some(p) = self.part.as_mut() else { return };
        let empty = answer.records.as_ref().is_none_or(|r| r.is_empty());
        let op = match follow_op(answer, f.position) {
            Ok(op) => op,
            Err(_) => {
                f.position = None;
                f.backoff_until = now + REFUSED_BACKOFF_MS;
                out.push(Out::Timer { after_ms: REFUSED_BACKOFF_MS, timer: Timer::Fetch });
                return;
            }
        };
        let outcome = match op {
            FollowOp::Position => Ok(p.follower_position()),
            FollowOp::Append { records, leader_hw, leader_log_start } => {
                f.appending = true;
                if p.append_as_follower(
                    f.epoch,
                    &records,
                    (leader_hw, leader_log_start),
                    self.follow_tx.clone(),
                ) && !self.commit_scheduled
                {
                    self.commit_scheduled = true;
                    out.push(Out::Timer { after_ms: self.sync_ms, timer: Timer::GroupCommit });
                }
                let _ = p.prepare_segment().map(|prep| p.segment_prepared(prep.run()));
                if empty {
                    f.backoff_until = now + FETCH_IDLE_MS;
                }
                return;
            }
            FollowOp::Truncate(diverging) => p.truncate_diverged(f.epoch, diverging),
            FollowOp::RestartAt(offset) => p.restart_at(f.epoch, offset),
        };
        self.on_follow_outcome(outcome, now, out);
    }

    fn on_follow_outcome(
        &mut self,
        outcome: Result<FollowerPosition, PartitionError>,
        now: u64,
        out: &mut Vec<Out>,
    ) {
        let Some(f) = self.following.as_mut() else { return };
        f.appending = false;
        match outcome {
            Ok(pos) => f.position = Some(pos),
            Err(_) => {
                f.position = None;
                f.backoff_until = now + FAILED_APPEND_BACKOFF_MS;
            }
        }
        out.push(Out::Timer { after_ms: f.backoff_until.saturating_sub(now).max(1), timer: Timer::Fetch });
    }

    fn produce(
        &mut self,
        from: Node,
        id: u64,
        batch: Bytes,
        out: &mut Vec<Out>,
        appends: &mut Vec<LeaderAppend>,
    ) {
        let Some(p) = self.part.as_mut().filter(|p| p.is_leader()) else {
            let code = code_of::<()>(&Err(PartitionError::NotLeaderOrFollower));
            out.push(Out::Send { to: from, msg: Msg::ProduceReply { id, result: Err(code) } });
            return;
        };
        appends.push(LeaderAppend {
            epoch: p.leader_epoch(),
            broker: self.id,
            incarnation: self.incarnation,
        });
        let slot = self.produce_waiting.len();
        self.produce_waiting.push(Some(id));
        if p.append(batch, Acks::All, AppendReply::new(self.produce_tx.clone(), slot))
            && !self.commit_scheduled
        {
            self.commit_scheduled = true;
            out.push(Out::Timer { after_ms: self.sync_ms, timer: Timer::GroupCommit });
        }
        let _ = p.prepare_segment().map(|prep| p.segment_prepared(prep.run()));
    }

    /// Answers that the partition gave through its channels.
    fn drain(&mut self, now: u64, out: &mut Vec<Out>, _appends: &mut Vec<LeaderAppend>) {
        while let Ok((slot, result)) = self.produce_rx.try_recv() {
            let Some(id) = self.produce_waiting.get_mut(slot).and_then(Option::take) else { continue };
            let result = result.map(|a| a.base_offset).map_err(|e| code_of::<()>(&Err(e)));
            out.push(Out::Send { to: super::net::PRODUCER, msg: Msg::ProduceReply { id, result } });
        }
        while let Ok(outcome) = self.follow_rx.try_recv() {
            self.on_follow_outcome(outcome, now, out);
        }
        if self.part.as_ref().is_some_and(Partition::is_dirty) && !self.commit_scheduled {
            self.commit_scheduled = true;
            out.push(Out::Timer { after_ms: self.sync_ms, timer: Timer::GroupCommit });
        }
    }

    /// Every record in this replica's log (offset, value), from its log start.
    pub fn records(&mut self) -> Vec<(i64, Vec<u8>)> {
        let Some(p) = self.part.as_ref() else { return Vec::new() };
        super::checker::read_records(p, p.log_start_offset(), p.log_end_offset())
    }
}

pub fn topic_config(durability: Durability, min_insync: usize, segment_bytes: u64) -> EffectiveTopicConfig {
    EffectiveTopicConfig {
        log: LogConfig { io: IoBackend::Sim, segment_bytes, ..LogConfig::default() },
        durability,
        cleanup_delete: true,
        cleanup_compact: false,
        delete_retention_ms: 86_400_000,
        min_insync_replicas: min_insync,
        encryption: None,
    }
}
