//! The follower side: one fetcher per leader broker, on shard 0, each keeping one persistent
//! connection to its leader and streaming every partition this broker follows from it, in one
//! Fetch (with this broker's replica id) at a time. The leader parks the fetch until it has new
//! batches (`replica.fetch.wait.max.ms`), answers with segment-file ranges (zero-copy), and
//! takes the next fetch's offsets as this follower's acknowledgement. So a fetch goes out only
//! once the previous answer's batches are held as the durability policy says (fsynced under
//! `fsync`): every fetch offset the leader sees is durable here.
//!
//! A diverging epoch in the answer truncates this log where the leader's history differs
//! (KIP-595); a leader whose log starts past this log's end has it restart there; replicas
//! being added by a reassignment fetch under `follower.replication.throttled.rate`, one
//! budget for all of this broker's fetchers; a NOT_LEADER / FENCED_LEADER_EPOCH answer has the partition retry shortly (one side's
//! metadata is behind); when the metadata names a new leader the manager moves it to that
//! leader's fetcher.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use riptide_client::{ConnectOptions, Connection};

use crate::partition::{EpochEndOffset, FollowerPosition, LeaderEpoch, Offset, PartitionError};
use crate::shard::mailbox::{FollowCall, FollowOp};
use crate::shard::router::route_follow;
use crate::shard::Ctx;

/// Fetch version spoken to leaders: the last before KIP-516 topic ids, with epochs (KIP-320,
/// KIP-595's diverging epoch).
const FETCH_VERSION: i16 = 12;

/// Backoff after a failed connection or request (bounded: the loop always continues).
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// How often the manager re-reads the assignment even without a change notice.
const MANAGER_PERIOD: Duration = Duration::from_secs(1);

type Key = (Arc<str>, i32);

#[derive(Clone, Copy, Debug)]
struct Followed {
    leader_epoch: LeaderEpoch,
    /// Being added by a reassignment: fetched under the move throttle.
    throttled: bool,
    /// Known once asked of the owner shard; `None` after an error (asked again).
    position: Option<FollowerPosition>,
    /// Left out of fetches until then: after the leader refused it (its metadata or ours is
    /// behind: retried, and the manager resets it when the leader epoch moves) or a local
    /// append failed (a full disk), so that nothing spins.
    backoff_until: Option<Instant>,
}

impl Followed {
    fn new(leader_epoch: LeaderEpoch, throttled: bool) -> Followed {
        Followed { leader_epoch, throttled, position: None, backoff_until: None }
    }

    fn fetchable(&self, now: Instant) -> bool {
        self.backoff_until.is_none_or(|t| now >= t)
    }
}

/// How long a partition the leader refused sits out (NOT_LEADER while the leader has not
/// applied its election yet, FENCED/UNKNOWN_LEADER_EPOCH while one side's metadata lags).
const REFUSED_BACKOFF: Duration = Duration::from_millis(100);

/// How long a partition whose local write failed sits out.
const FAILED_APPEND_BACKOFF: Duration = Duration::from_secs(1);

/// A token bucket over the bytes that replicas being added fetch (at most one second of
/// burst), shared by the fetchers of this broker (all on shard 0).
pub struct MoveThrottle {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl MoveThrottle {
    fn new(bytes_per_sec: u64) -> MoveThrottle {
        let rate = bytes_per_sec as f64;
        MoveThrottle { rate, tokens: rate, last: Instant::now() }
    }

    /// Bytes a throttled partition may ask for now (0: it sits this fetch out).
    fn allowance(&mut self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens <= 0.0 {
            0
        } else {
            self.tokens.min(f64::from(u32::MAX)) as u32
        }
    }

    fn spend(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }
}

/// How long a fetcher with only throttled partitions and no budget waits.
const THROTTLE_WAIT: Duration = Duration::from_millis(50);

#[derive(Default)]
struct FetcherState {
    partitions: BTreeMap<Key, Followed>,
    addr: String,
    stop: bool,
}

/// Watches the applied metadata and keeps one fetcher per leader broker, each with the
/// partitions this broker follows from it. `changed` is signalled when roles change.
pub async fn manage(ctx: Ctx, changed: flume::Receiver<()>) {
    let me = ctx.broker.config.node_id;
    let mut fetchers: HashMap<i32, Rc<RefCell<FetcherState>>> = HashMap::new();
    let throttle =
        Rc::new(RefCell::new(MoveThrottle::new(ctx.broker.config.cluster.move_throttle_bytes_per_sec)));
    while !ctx.broker.is_shutting_down() {
        let (wanted, addrs) = {
            let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
            let mut wanted: HashMap<i32, BTreeMap<Key, (LeaderEpoch, bool)>> = HashMap::new();
            for t in cat.all() {
                for (p, st) in t.states.iter().enumerate() {
                    if st.leader >= 0 && st.leader != me && st.replicas.contains(&me) {
                        let key = (Arc::from(t.name.as_str()), p as i32);
                        let adding = st.adding.contains(&me);
                        wanted.entry(st.leader).or_default().insert(key, (st.leader_epoch, adding));
                    }
                }
            }
            // Every broker names its inter-broker listener alike (Kafka's rule too).
            let listener = ctx.broker.config.inter_broker_listener().name.as_str();
            let addrs: HashMap<i32, String> = cat
                .brokers
                .values()
                .filter_map(|b| {
                    let e = b.endpoints.iter().find(|e| e.name == listener).or(b.endpoints.first())?;
                    Some((b.id, format!("{}:{}", e.host, e.port)))
                })
                .collect();
            (wanted, addrs)
        };
        fetchers.retain(|leader, f| {
            let keep = wanted.contains_key(leader);
            if !keep {
                f.borrow_mut().stop = true;
            }
            keep
        });
        for (leader, parts) in wanted {
            let f = fetchers.entry(leader).or_insert_with(|| {
                let state = Rc::new(RefCell::new(FetcherState::default()));
                compio::runtime::spawn(fetch_loop(ctx.clone(), leader, state.clone(), throttle.clone()))
                    .detach();
                state
            });
            let mut s = f.borrow_mut();
            s.addr = addrs.get(&leader).cloned().unwrap_or_default();
            s.partitions.retain(|k, _| parts.contains_key(k));
            for (key, (epoch, throttled)) in parts {
                let e = s.partitions.entry(key).or_insert(Followed::new(epoch, throttled));
                if e.leader_epoch != epoch {
                    *e = Followed::new(epoch, throttled);
                }
                e.throttled = throttled;
            }
        }
        let _ = compio::time::timeout(MANAGER_PERIOD, changed.recv_async()).await;
        while changed.try_recv().is_ok() {}
    }
    for f in fetchers.values() {
        f.borrow_mut().stop = true;
    }
}

async fn fetch_loop(
    ctx: Ctx,
    leader: i32,
    state: Rc<RefCell<FetcherState>>,
    throttle: Rc<RefCell<MoveThrottle>>,
) {
    let cfg = &ctx.broker.config.cluster;
    let wait = Duration::from_millis(cfg.replica_fetch_wait_max_ms);
    let options = ConnectOptions {
        client_id: format!("riptide-replica-{}", ctx.broker.config.node_id),
        request_timeout: Duration::from_secs(30) + wait,
        tls: ctx.broker.security.inter_broker_tls.clone(),
        sasl: ctx.broker.security.inter_broker_login.clone(),
        ..ConnectOptions::default()
    };
    let mut conn: Option<Connection> = None;
    loop {
        if state.borrow().stop || ctx.broker.is_shutting_down() {
            return;
        }
        let now = Instant::now();
        let active: Vec<(Key, Followed)> = state
            .borrow()
            .partitions
            .iter()
            .filter(|(_, f)| f.fetchable(now))
            .map(|(k, f)| (k.clone(), *f))
            .collect();
        if active.is_empty() {
            compio::time::sleep(RETRY_BACKOFF).await;
            continue;
        }
        if !learn_positions(&ctx, &state, &active).await {
            compio::time::sleep(RETRY_BACKOFF).await;
            continue;
        }
        if conn.as_ref().is_none_or(|c| c.is_broken()) {
            let addr = state.borrow().addr.clone();
            match Connection::connect(&addr, &options).await {
                Ok(c) => {
                    tracing::info!("replica fetcher connected to leader {leader} at {addr}");
                    conn = Some(c);
                }
                Err(e) => {
                    tracing::debug!("replica fetcher: leader {leader} at {addr}: {e}");
                    compio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_ref() else { continue };
        let request = build_request(&ctx, &state, &throttle);
        let Some(request) = request else {
            // Only throttled partitions, and the budget is spent.
            compio::time::sleep(THROTTLE_WAIT).await;
            continue;
        };
        let response = c.send_at(&request, FETCH_VERSION, options.request_timeout).await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("replica fetch from leader {leader} failed: {e}");
                conn = None;
                compio::time::sleep(RETRY_BACKOFF).await;
                continue;
            }
        };
        if response.error_code != 0 {
            tracing::warn!("replica fetch from leader {leader}: error {}", response.error_code);
            compio::time::sleep(RETRY_BACKOFF).await;
            continue;
        }
        apply_response(&ctx, leader, &state, &throttle, response).await;
    }
}

/// Asks the owner shards where the logs of partitions without a known position stand.
/// False when none could answer (not open yet, or no longer following at that epoch).
async fn learn_positions(ctx: &Ctx, state: &Rc<RefCell<FetcherState>>, active: &[(Key, Followed)]) -> bool {
    let mut calls = Vec::new();
    let mut waits = Vec::new();
    for ((topic, partition), f) in active.iter().filter(|(_, f)| f.position.is_none()) {
        let (reply, rx) = flume::bounded(1);
        calls.push(FollowCall {
            topic: topic.clone(),
            partition: *partition,
            leader_epoch: f.leader_epoch,
            op: FollowOp::Position,
            reply,
        });
        waits.push(((topic.clone(), *partition), f.leader_epoch, rx));
    }
    if calls.is_empty() {
        return true;
    }
    route_follow(ctx, calls).await;
    let mut any = false;
    for (key, epoch, rx) in waits {
        let outcome = rx.recv_async().await.unwrap_or(Err(PartitionError::NotLeaderOrFollower));
        let mut s = state.borrow_mut();
        let Some(f) = s.partitions.get_mut(&key).filter(|f| f.leader_epoch == epoch) else { continue };
        match outcome {
            Ok(pos) => {
                f.position = Some(pos);
                any = true;
            }
            Err(e) => tracing::debug!("{}-{}: not following yet: {e}", key.0, key.1),
        }
    }
    let now = Instant::now();
    any || state.borrow().partitions.values().any(|f| f.position.is_some() && f.fetchable(now))
}

fn build_request(
    ctx: &Ctx,
    state: &Rc<RefCell<FetcherState>>,
    throttle: &Rc<RefCell<MoveThrottle>>,
) -> Option<FetchRequest> {
    let cfg = &ctx.broker.config.cluster;
    let s = state.borrow();
    let now = Instant::now();
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut allowance: Option<u32> = None;
    for ((topic, partition), f) in s.partitions.iter() {
        let Some(pos) = f.position.filter(|_| f.fetchable(now)) else { continue };
        let mut max_bytes = cfg.replica_fetch_max_bytes;
        if f.throttled {
            let left = *allowance.get_or_insert_with(|| throttle.borrow_mut().allowance(now));
            if left == 0 {
                continue;
            }
            max_bytes = max_bytes.min(left);
        }
        let p = FetchPartition::default()
            .with_partition(*partition)
            .with_current_leader_epoch(f.leader_epoch.0)
            .with_fetch_offset(pos.log_end_offset.0)
            .with_last_fetched_epoch(pos.last_epoch.0)
            .with_log_start_offset(pos.log_start_offset.0)
            .with_partition_max_bytes(max_bytes as i32);
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == &**topic => t.partitions.push(p),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    if topics.is_empty() {
        return None;
    }
    Some(
        FetchRequest::default()
            .with_replica_id(BrokerId(ctx.broker.config.node_id))
            .with_max_wait_ms(cfg.replica_fetch_wait_max_ms as i32)
            .with_min_bytes(1)
            .with_max_bytes(cfg.replica_fetch_response_max_bytes as i32)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics),
    )
}

/// Hands every partition's answer to its owner shard (appends or truncations, all shards at
/// once) and waits until each is held, so the next fetch acknowledges it.
async fn apply_response(
    ctx: &Ctx,
    leader: i32,
    state: &Rc<RefCell<FetcherState>>,
    throttle: &Rc<RefCell<MoveThrottle>>,
    response: kafka_protocol::messages::FetchResponse,
) {
    let mut calls = Vec::new();
    let mut waits = Vec::new();
    for t in response.responses {
        let topic: Arc<str> = Arc::from(t.topic.0.as_str());
        for p in t.partitions {
            let key = (topic.clone(), p.partition_index);
            let Some(f) = state.borrow().partitions.get(&key).copied() else { continue };
            // The wire's numbers are typed here, as they arrive.
            let answer = Answer {
                error_code: p.error_code,
                diverging: EpochEndOffset {
                    epoch: LeaderEpoch(p.diverging_epoch.epoch),
                    end_offset: Offset(p.diverging_epoch.end_offset),
                },
                records: p.records,
                log_start: Offset(p.log_start_offset),
                high_watermark: Offset(p.high_watermark),
            };
            let op = match follow_op(answer, f.position) {
                Ok(op) => op,
                Err(code) => {
                    let mut s = state.borrow_mut();
                    if let Some(f) = s.partitions.get_mut(&key) {
                        f.position = None;
                        f.backoff_until = Some(Instant::now() + REFUSED_BACKOFF);
                    }
                    tracing::info!("{}-{}: leader {leader} answered error {code}", key.0, key.1);
                    continue;
                }
            };
            if let (FollowOp::Append { records, .. }, true) = (&op, f.throttled) {
                throttle.borrow_mut().spend(records.len());
            }
            let (reply, rx) = flume::bounded(1);
            calls.push(FollowCall {
                topic: topic.clone(),
                partition: p.partition_index,
                leader_epoch: f.leader_epoch,
                op,
                reply,
            });
            waits.push((key, f.leader_epoch, rx));
        }
    }
    route_follow(ctx, calls).await;
    for (key, epoch, rx) in waits {
        let outcome = rx.recv_async().await.unwrap_or(Err(PartitionError::NotLeaderOrFollower));
        let mut s = state.borrow_mut();
        let Some(f) = s.partitions.get_mut(&key).filter(|f| f.leader_epoch == epoch) else { continue };
        match outcome {
            Ok(pos) => f.position = Some(pos),
            Err(e) => {
                tracing::warn!("{}-{}: follower append failed: {e}", key.0, key.1);
                f.position = None;
                f.backoff_until = Some(Instant::now() + FAILED_APPEND_BACKOFF);
            }
        }
    }
}

/// A leader's answer for one partition, as the follower reads it.
pub struct Answer {
    pub error_code: i16,
    /// Defined when the leader says the logs diverge (KIP-595).
    pub diverging: EpochEndOffset,
    pub records: Option<Bytes>,
    pub log_start: Offset,
    pub high_watermark: Offset,
}

/// What an answer asks of the follower's log (`position`: where it fetched from), or the
/// leader's error code (the partition sits out a while and asks again). The fetcher's one
/// rule, shared with the replication simulation (`server/tests/replication_sim/`).
pub fn follow_op(answer: Answer, position: Option<FollowerPosition>) -> Result<FollowOp, i16> {
    let Answer { error_code, diverging, records, log_start, high_watermark } = answer;
    match error_code {
        0 if diverging.is_defined() => Ok(FollowOp::Truncate(diverging)),
        0 if records.as_ref().is_none_or(|r| r.is_empty())
            && position.is_some_and(|pos| log_start > pos.log_end_offset) =>
        {
            Ok(FollowOp::RestartAt(log_start))
        }
        0 => Ok(FollowOp::Append {
            records: records.unwrap_or_default(),
            leader_hw: high_watermark,
            leader_log_start: log_start,
        }),
        code => Err(code),
    }
}
