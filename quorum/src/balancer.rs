//! The balancer's planning: given the metadata image and what each broker reported about its
//! replicas (bytes on disk, bytes in and out per second), which partitions to move where.
//! Pure and deterministic; the active controller runs it every round and starts a few of the
//! moves it plans (`controller::balance_round`).
//!
//! Goals, in order, each a greedy pass over a working copy of the assignment:
//! 1. **drain**: no replica stays on a broker being decommissioned (or gone for longer than
//!    `unavailable_timeout`);
//! 2. **replica count**: every broker holds the same number of replicas, within one;
//! 3. **bytes**: the bytes written per second to each broker's replicas stay within
//!    `threshold` of the mean, by moving or swapping replicas of hot and cold partitions
//!    (which keeps the counts even): a hot topic is spread by its bytes, not its partition
//!    count;
//! 4. **leadership**: every broker is the preferred leader (first replica) of the same number
//!    of partitions, within one, by reordering replicas (no data moves); the controller's
//!    preferred-leader election then moves the leadership itself.
//!
//! Partitions already moving keep their target; the plan never starts a second move of one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::image::MetadataImage;
use crate::records::NodeId;
use riptide_model::TopicPartition;

/// One replica as its broker reported it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PartitionLoad {
    pub topic: String,
    pub partition: i32,
    pub size_bytes: u64,
    pub log_end_offset: riptide_model::Offset,
    /// Produced bytes per second over the broker's last window (leaders only: 0 on followers).
    pub bytes_in_per_sec: f64,
    /// Bytes fetched by consumers per second (leaders only).
    pub bytes_out_per_sec: f64,
}

/// What a broker holds and serves, sent with its heartbeats every few seconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BrokerLoad {
    pub partitions: Vec<PartitionLoad>,
    pub disk_used_bytes: u64,
    pub disk_total_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BalancerConfig {
    pub enabled: bool,
    /// Data moves running at once, cluster-wide.
    pub max_concurrent_moves: usize,
    /// Allowed spread of bytes in per second between the hottest and the coldest broker, as
    /// a fraction of the mean.
    pub threshold: f64,
    /// Below this mean rate (bytes/s per broker) bytes are not worth balancing.
    pub min_bytes_per_sec: f64,
    /// A fenced broker gone for this long is drained like a decommissioned one (0: never).
    pub unavailable_timeout_ms: u64,
    /// The replication throttle the brokers apply to replicas being added (bytes/s), for ETAs.
    pub throttle_bytes_per_sec: u64,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        BalancerConfig {
            enabled: true,
            max_concurrent_moves: 4,
            threshold: 0.2,
            min_bytes_per_sec: 256.0 * 1024.0,
            unavailable_timeout_ms: 900_000,
            throttle_bytes_per_sec: 50 << 20,
        }
    }
}

/// Why a move was planned (logged, and shown by `riptide cluster balance`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Reason {
    Drain { broker: NodeId },
    ReplicaCount { from: NodeId, from_count: usize, to: NodeId, to_count: usize },
    BytesIn { from: NodeId, from_rate: f64, to: NodeId, to_rate: f64 },
    Leadership { from: NodeId, from_count: usize, to: NodeId, to_count: usize },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Drain { broker } => write!(f, "broker {broker} is being drained"),
            Reason::ReplicaCount { from, from_count, to, to_count } => {
                write!(f, "replica count: broker {from} holds {from_count}, broker {to} {to_count}")
            }
            Reason::BytesIn { from, from_rate, to, to_rate } => write!(
                f,
                "bytes in: broker {from} takes {}/s, broker {to} {}/s",
                human(*from_rate),
                human(*to_rate)
            ),
            Reason::Leadership { from, from_count, to, to_count } => write!(
                f,
                "leadership: broker {from} is preferred leader of {from_count}, broker {to} of {to_count}"
            ),
        }
    }
}

fn human(bytes: f64) -> String {
    if bytes >= 1048576.0 {
        format!("{:.1} MiB", bytes / 1048576.0)
    } else {
        format!("{:.0} KiB", bytes / 1024.0)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub from: Vec<NodeId>,
    pub to: Vec<NodeId>,
    pub reasons: Vec<Reason>,
    /// Bytes to copy (the partition's size times the replicas added); 0 for a reorder.
    pub bytes: u64,
}

impl Move {
    /// Only the order changes: no data is copied.
    pub fn is_reorder(&self) -> bool {
        let a: BTreeSet<_> = self.from.iter().collect();
        let b: BTreeSet<_> = self.to.iter().collect();
        a == b
    }
}

/// A broker as the balancer sees it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BrokerSummary {
    pub id: NodeId,
    pub live: bool,
    pub draining: bool,
    pub replicas: usize,
    pub leaders: usize,
    pub preferred_leaders: usize,
    pub bytes_in_per_sec: f64,
    pub bytes_out_per_sec: f64,
    pub disk_used_bytes: u64,
    pub disk_total_bytes: u64,
}

/// A reassignment in progress with its catch-up progress.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunningMove {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<NodeId>,
    pub adding: Vec<NodeId>,
    pub removing: Vec<NodeId>,
    /// The leader's size, and how much the added replicas still lack of it.
    pub total_bytes: u64,
    pub bytes_left: u64,
}

/// `riptide cluster balance`'s answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BalanceReport {
    pub config: Option<BalancerConfig>,
    pub brokers: Vec<BrokerSummary>,
    pub running: Vec<RunningMove>,
    pub planned: Vec<Move>,
    /// Moves started by this request (`run`).
    pub started: Vec<Move>,
    /// Why the balancer is holding back, if it is.
    pub paused: Option<String>,
    /// Replica-count spread (max - min) and bytes-in spread over the mean.
    pub replica_spread: usize,
    pub leader_spread: usize,
    pub bytes_imbalance: f64,
}

/// Per-partition rates and sizes merged from every broker's report.
#[derive(Clone, Debug, Default)]
pub struct Loads {
    /// (topic, partition) -> (size on the leader or largest replica, bytes in/s, bytes out/s)
    pub partitions: BTreeMap<Key, (u64, f64, f64)>,
    /// (topic, partition, broker) -> size of that replica
    pub replica_sizes: BTreeMap<(String, i32, NodeId), u64>,
    pub disks: BTreeMap<NodeId, (u64, u64)>,
}

impl Loads {
    pub fn merge(img: &MetadataImage, reports: &BTreeMap<NodeId, BrokerLoad>) -> Loads {
        let mut out = Loads::default();
        for (broker, load) in reports {
            out.disks.insert(*broker, (load.disk_used_bytes, load.disk_total_bytes));
            for p in &load.partitions {
                let leads = img.partition(&p.topic, p.partition).is_some_and(|s| s.leader == *broker);
                out.replica_sizes.insert((p.topic.clone(), p.partition, *broker), p.size_bytes);
                let e = out.partitions.entry(TopicPartition::new(p.topic.as_str(), p.partition)).or_default();
                e.0 = e.0.max(p.size_bytes);
                if leads {
                    e.1 = p.bytes_in_per_sec;
                    e.2 = p.bytes_out_per_sec;
                }
            }
        }
        out
    }

    fn rate(&self, key: &Key) -> f64 {
        self.partitions.get(key).map_or(0.0, |e| e.1)
    }

    fn size(&self, key: &Key) -> u64 {
        self.partitions.get(key).map_or(0, |e| e.0)
    }
}

/// A partition by topic and index.
type Key = TopicPartition;

/// The working state of one planning pass.
struct Work<'a> {
    loads: &'a Loads,
    /// Target replicas of every partition.
    assign: BTreeMap<Key, Vec<NodeId>>,
    /// Partitions already moving: fixed.
    fixed: BTreeSet<Key>,
    /// Partitions moved for their bytes a short while ago: not moved for bytes again yet.
    cooling: BTreeSet<Key>,
    eligible: Vec<NodeId>,
    reasons: BTreeMap<Key, Vec<Reason>>,
}

impl Work<'_> {
    fn count(&self, b: NodeId) -> usize {
        self.assign.values().filter(|r| r.contains(&b)).count()
    }

    fn count_of(&self, topic: &str, b: NodeId) -> usize {
        self.of_topic(topic).filter(|(_, r)| r.contains(&b)).count()
    }

    fn preferred(&self, b: NodeId) -> usize {
        self.assign.values().filter(|r| r.first() == Some(&b)).count()
    }

    fn preferred_of(&self, topic: &str, b: NodeId) -> usize {
        self.of_topic(topic).filter(|(_, r)| r.first() == Some(&b)).count()
    }

    fn of_topic<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = (&'a Key, &'a Vec<NodeId>)> + 'a {
        let from = TopicPartition::new(topic, i32::MIN);
        self.assign.range(from..).take_while(move |(k, _)| k.topic == topic)
    }

    fn topics(&self) -> Vec<String> {
        let mut out: Vec<String> = self.assign.keys().map(|k| k.topic.clone()).collect();
        out.dedup();
        out
    }

    /// Of `candidates` (on `hi`, not on `lo`), the replica whose rate best halves the two
    /// brokers' bytes gap (the coldest when the gap is the other way), then the smallest.
    fn best_for_bytes(&self, candidates: Vec<Key>, hi: NodeId, lo: NodeId) -> Option<Key> {
        let ideal = ((self.bytes_in(hi) - self.bytes_in(lo)) / 2.0).max(0.0);
        candidates.into_iter().min_by(|a, b| {
            let da = (self.loads.rate(a) - ideal).abs();
            let db = (self.loads.rate(b) - ideal).abs();
            da.partial_cmp(&db)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(self.loads.size(a).cmp(&self.loads.size(b)))
                .then(a.cmp(b))
        })
    }

    /// Makes `lo` the preferred leader of one partition `hi` leads preferably and `lo`
    /// replicates (among those `allowed`); false when there is none.
    fn reorder(
        &mut self,
        hi: NodeId,
        lo: NodeId,
        hi_n: usize,
        lo_n: usize,
        allowed: impl Fn(&Key) -> bool,
    ) -> bool {
        let candidate = self
            .assign
            .iter()
            .filter(|(k, r)| {
                !self.fixed.contains(*k) && r.first() == Some(&hi) && r.contains(&lo) && allowed(k)
            })
            .map(|(k, _)| k.clone())
            .next();
        let Some(key) = candidate else { return false };
        let r = self.assign.get_mut(&key).expect("exists");
        let at = r.iter().position(|b| *b == lo).expect("contains lo");
        r.swap(0, at);
        let reason = Reason::Leadership { from: hi, from_count: hi_n, to: lo, to_count: lo_n };
        self.reasons.entry(key).or_default().push(reason);
        true
    }

    fn bytes_in(&self, b: NodeId) -> f64 {
        self.assign.iter().filter(|(_, r)| r.contains(&b)).map(|(k, _)| self.loads.rate(k)).sum()
    }

    fn movable(&self, on: NodeId, not_on: NodeId) -> Vec<Key> {
        self.assign
            .iter()
            .filter(|(k, r)| !self.fixed.contains(*k) && r.contains(&on) && !r.contains(&not_on))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn replace(&mut self, key: &Key, from: NodeId, to: NodeId, reason: Reason) {
        let r = self.assign.get_mut(key).expect("planned partitions exist");
        for id in r.iter_mut() {
            if *id == from {
                *id = to;
            }
        }
        self.reasons.entry(key.clone()).or_default().push(reason);
    }

    /// (max, min) of `f` over the eligible brokers; ties go to the lower id.
    fn extremes<T: PartialOrd + Copy>(&self, f: impl Fn(NodeId) -> T) -> Option<((NodeId, T), (NodeId, T))> {
        let mut vals: Vec<(NodeId, T)> = self.eligible.iter().map(|b| (*b, f(*b))).collect();
        if vals.is_empty() {
            return None;
        }
        vals.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal).then(a.0.cmp(&b.0)));
        let hi = vals[0];
        let min = vals[vals.len() - 1].1;
        let lo = *vals.iter().find(|v| v.1 == min).expect("non-empty");
        Some((hi, lo))
    }
}

impl Work<'_> {
    /// Every (hi, hi_n, lo, lo_n) pair of eligible brokers whose `f` differs by more than one,
    /// widest gap first (ties by id): when the extreme pair has no partition to act on (the
    /// most loaded broker shares no partition with the least loaded), a narrower pair may.
    fn uneven_pairs(&self, f: impl Fn(NodeId) -> usize) -> Vec<(NodeId, usize, NodeId, usize)> {
        let vals: Vec<(NodeId, usize)> = self.eligible.iter().map(|b| (*b, f(*b))).collect();
        let mut pairs: Vec<(NodeId, usize, NodeId, usize)> = vals
            .iter()
            .flat_map(|&(hi, hi_n)| vals.iter().map(move |&(lo, lo_n)| (hi, hi_n, lo, lo_n)))
            .filter(|&(_, hi_n, _, lo_n)| hi_n > lo_n + 1)
            .collect();
        pairs.sort_by_key(|&(hi, hi_n, lo, lo_n)| (std::cmp::Reverse(hi_n - lo_n), hi, lo));
        pairs
    }
}

/// Bound on each greedy pass (a plan is recomputed every round anyway).
const MAX_STEPS: usize = 10_000;

/// The moves that bring the cluster to its goals. `leaving` are brokers whose replicas must
/// go (decommissioned, or gone too long); `cooling` partitions were moved for their bytes
/// recently and are not moved for bytes again yet.
pub fn plan(
    img: &MetadataImage,
    loads: &Loads,
    cfg: &BalancerConfig,
    leaving: &BTreeSet<NodeId>,
    cooling: &BTreeSet<Key>,
) -> Vec<Move> {
    let eligible: Vec<NodeId> =
        img.placeable_brokers().map(|b| b.id).filter(|id| !leaving.contains(id)).collect();
    let mut work = Work {
        loads,
        assign: BTreeMap::new(),
        fixed: BTreeSet::new(),
        cooling: cooling.clone(),
        eligible,
        reasons: BTreeMap::new(),
    };
    for t in img.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            let key = TopicPartition::new(t.name.as_str(), i as i32);
            work.assign.insert(key.clone(), p.target());
            if p.is_reassigning() {
                work.fixed.insert(key);
            }
        }
    }
    let before = work.assign.clone();
    if work.eligible.is_empty() {
        return Vec::new();
    }
    drain(&mut work, leaving);
    even_counts(&mut work);
    even_bytes(&mut work, cfg);
    even_leaders(&mut work);
    let mut moves: Vec<Move> = work
        .assign
        .iter()
        .filter(|(k, r)| before.get(*k) != Some(*r))
        .map(|(k, r)| {
            let from = before[k].clone();
            let added = r.iter().filter(|b| !from.contains(b)).count() as u64;
            Move {
                topic: k.topic.clone(),
                partition: k.partition,
                from,
                to: r.clone(),
                reasons: work.reasons.get(k).cloned().unwrap_or_default(),
                bytes: loads.size(k) * added,
            }
        })
        .collect();
    // Drains first, then data moves, then reorders; smaller copies first within each.
    moves.sort_by_key(|m| {
        let drain = m.reasons.iter().any(|r| matches!(r, Reason::Drain { .. }));
        (!drain, m.is_reorder(), m.bytes, m.topic.clone(), m.partition)
    });
    moves
}

fn drain(work: &mut Work, leaving: &BTreeSet<NodeId>) {
    let keys: Vec<Key> = work.assign.keys().cloned().collect();
    for key in keys {
        if work.fixed.contains(&key) {
            continue;
        }
        for gone in leaving {
            if !work.assign[&key].contains(gone) {
                continue;
            }
            let replicas = &work.assign[&key];
            let dest = work.eligible.iter().copied().filter(|b| !replicas.contains(b)).min_by(|a, b| {
                let ka = (work.count(*a), work.bytes_in(*a));
                let kb = (work.count(*b), work.bytes_in(*b));
                ka.partial_cmp(&kb).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(b))
            });
            if let Some(dest) = dest {
                work.replace(&key, *gone, dest, Reason::Drain { broker: *gone });
            }
        }
    }
}

/// Replica counts even within one, per topic first (a topic's load follows its replicas:
/// an even total could still stack one topic on a broker), then over all topics with moves
/// that keep every topic even.
fn even_counts(work: &mut Work) {
    for topic in work.topics() {
        for _ in 0..MAX_STEPS {
            let Some(((hi, hi_n), (lo, lo_n))) = work.extremes(|b| work.count_of(&topic, b)) else { return };
            if hi_n <= lo_n + 1 {
                break;
            }
            let candidates: Vec<Key> =
                work.movable(hi, lo).into_iter().filter(|k| k.topic == topic).collect();
            let Some(key) = work.best_for_bytes(candidates, hi, lo) else { break };
            let reason = Reason::ReplicaCount { from: hi, from_count: hi_n, to: lo, to_count: lo_n };
            work.replace(&key, hi, lo, reason);
        }
    }
    for _ in 0..MAX_STEPS {
        let Some(((hi, hi_n), (lo, lo_n))) = work.extremes(|b| work.count(b)) else { return };
        if hi_n <= lo_n + 1 {
            return;
        }
        let candidates: Vec<Key> = work
            .movable(hi, lo)
            .into_iter()
            .filter(|k| work.count_of(&k.topic, hi) > work.count_of(&k.topic, lo))
            .collect();
        let Some(key) = work.best_for_bytes(candidates, hi, lo) else { return };
        let reason = Reason::ReplicaCount { from: hi, from_count: hi_n, to: lo, to_count: lo_n };
        work.replace(&key, hi, lo, reason);
    }
}

/// Bytes in per second within the threshold, by single moves and swaps that keep the
/// replica counts (total and per topic) even. A move must gain a full threshold's worth of
/// the mean: the rates are noisy five-second averages, and with whole partitions the best
/// spread may still be above the threshold — a smaller gain would only chase the noise,
/// moving the same hot partitions back and forth.
fn even_bytes(work: &mut Work, cfg: &BalancerConfig) {
    for _ in 0..MAX_STEPS {
        let Some(((hi, hi_in), (lo, lo_in))) = work.extremes(|b| work.bytes_in(b)) else { return };
        let mean = work.eligible.iter().map(|b| work.bytes_in(*b)).sum::<f64>() / work.eligible.len() as f64;
        let gap = hi_in - lo_in;
        if mean < cfg.min_bytes_per_sec || gap <= cfg.threshold * mean {
            return;
        }
        let can_move = work.count(hi) > work.count(lo);
        let movable = |on: NodeId, off: NodeId| -> Vec<Key> {
            work.movable(on, off).into_iter().filter(|k| !work.cooling.contains(k)).collect()
        };
        let from_hi = movable(hi, lo);
        let from_lo = movable(lo, hi);
        // A topic stays even when its replica leaves a broker holding more of it than the
        // one it goes to.
        let keeps_even =
            |k: &Key, from: NodeId, to: NodeId| work.count_of(&k.topic, from) > work.count_of(&k.topic, to);
        // (new gap between the two, partition off hi, partition off lo)
        let mut best: Option<(f64, Key, Option<Key>)> = None;
        let mut consider = |g: f64, p: &Key, q: Option<&Key>| {
            if best.as_ref().is_none_or(|b| g < b.0) {
                best = Some((g, p.clone(), q.cloned()));
            }
        };
        for p in &from_hi {
            let rp = work.loads.rate(p);
            if can_move && keeps_even(p, hi, lo) {
                consider((gap - 2.0 * rp).abs(), p, None);
            }
            for q in &from_lo {
                let d = rp - work.loads.rate(q);
                let even = p.topic == q.topic || (keeps_even(p, hi, lo) && keeps_even(q, lo, hi));
                if d > 0.0 && even {
                    consider((gap - 2.0 * d).abs(), p, Some(q));
                }
            }
        }
        let Some((_, p, q)) = best.filter(|b| gap - b.0 >= cfg.threshold * mean) else { return };
        let reason = Reason::BytesIn { from: hi, from_rate: hi_in, to: lo, to_rate: lo_in };
        work.replace(&p, hi, lo, reason.clone());
        if let Some(q) = q {
            let back = Reason::BytesIn { from: lo, from_rate: lo_in, to: hi, to_rate: hi_in };
            work.replace(&q, lo, hi, back);
        }
    }
}

/// Preferred leadership even within one, per topic first, then over all topics by reorders
/// that keep every topic even.
fn even_leaders(work: &mut Work) {
    for topic in work.topics() {
        for _ in 0..MAX_STEPS {
            let pairs = work.uneven_pairs(|b| work.preferred_of(&topic, b));
            let done = pairs
                .into_iter()
                .any(|(hi, hi_n, lo, lo_n)| work.reorder(hi, lo, hi_n, lo_n, |k| k.topic == topic));
            if !done {
                break;
            }
        }
    }
    for _ in 0..MAX_STEPS {
        let pairs = work.uneven_pairs(|b| work.preferred(b));
        let done = pairs.into_iter().any(|(hi, hi_n, lo, lo_n)| {
            let counts: BTreeMap<String, (usize, usize)> = work
                .topics()
                .into_iter()
                .map(|t| {
                    let c = (work.preferred_of(&t, hi), work.preferred_of(&t, lo));
                    (t, c)
                })
                .collect();
            work.reorder(hi, lo, hi_n, lo_n, |k| counts.get(&k.topic).is_some_and(|(h, l)| h > l))
        });
        if !done {
            return;
        }
    }
}

/// Load per broker as the image and the reports have it now.
pub fn summarize(img: &MetadataImage, loads: &Loads) -> Vec<BrokerSummary> {
    let mut out: BTreeMap<NodeId, BrokerSummary> = img
        .brokers
        .values()
        .map(|b| {
            let disk = loads.disks.get(&b.id).copied().unwrap_or((0, 0));
            let s = BrokerSummary {
                id: b.id,
                live: img.is_live(b.id),
                draining: img.draining.contains(&b.id),
                disk_used_bytes: disk.0,
                disk_total_bytes: disk.1,
                ..Default::default()
            };
            (b.id, s)
        })
        .collect();
    for t in img.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            let key = TopicPartition::new(t.name.as_str(), i as i32);
            let (_, rate_in, rate_out) = loads.partitions.get(&key).copied().unwrap_or_default();
            for r in &p.replicas {
                if let Some(s) = out.get_mut(r) {
                    s.replicas += 1;
                    s.bytes_in_per_sec += rate_in;
                }
            }
            if let Some(s) = out.get_mut(&p.leader) {
                s.leaders += 1;
                s.bytes_out_per_sec += rate_out + rate_in * (p.replicas.len().saturating_sub(1)) as f64;
            }
            if let Some(s) = p.replicas.first().and_then(|b| out.get_mut(b)) {
                s.preferred_leaders += 1;
            }
        }
    }
    out.into_values().collect()
}

/// Moves in progress with how far their added replicas have caught up.
pub fn running(img: &MetadataImage, loads: &Loads) -> Vec<RunningMove> {
    let mut out = Vec::new();
    for t in img.topics.values() {
        for (i, p) in t.partitions.iter().enumerate().filter(|(_, p)| p.is_reassigning()) {
            let key = TopicPartition::new(t.name.as_str(), i as i32);
            let total = loads.size(&key);
            let left = p
                .adding
                .iter()
                .map(|b| {
                    let have = loads
                        .replica_sizes
                        .get(&(key.topic.clone(), key.partition, *b))
                        .copied()
                        .unwrap_or(0);
                    total.saturating_sub(have)
                })
                .sum();
            out.push(RunningMove {
                topic: key.topic,
                partition: key.partition,
                replicas: p.replicas.clone(),
                adding: p.adding.clone(),
                removing: p.removing.clone(),
                total_bytes: total * p.adding.len() as u64,
                bytes_left: left,
            });
        }
    }
    out
}

/// (replica-count spread, preferred-leader spread, bytes-in spread over the mean) among the
/// brokers that take replicas.
pub fn imbalance(summaries: &[BrokerSummary]) -> (usize, usize, f64) {
    let s: Vec<&BrokerSummary> = summaries.iter().filter(|b| b.live && !b.draining).collect();
    if s.is_empty() {
        return (0, 0, 0.0);
    }
    let spread = |f: &dyn Fn(&BrokerSummary) -> usize| {
        let v: Vec<usize> = s.iter().map(|b| f(b)).collect();
        v.iter().max().copied().unwrap_or(0) - v.iter().min().copied().unwrap_or(0)
    };
    let rates: Vec<f64> = s.iter().map(|b| b.bytes_in_per_sec).collect();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let max = rates.iter().copied().fold(f64::MIN, f64::max);
    let min = rates.iter().copied().fold(f64::MAX, f64::min);
    let bytes = if mean > 0.0 { (max - min) / mean } else { 0.0 };
    (spread(&|b| b.replicas), spread(&|b| b.preferred_leaders), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BrokerState;
    use crate::records::{PartitionState, TopicRecord};

    fn image(brokers: &[NodeId]) -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in brokers {
            img.brokers.insert(
                *id,
                BrokerState {
                    id: *id,
                    incarnation: 1,
                    epoch: 1,
                    endpoints: vec![],
                    rack: None,
                    fenced: false,
                    in_controlled_shutdown: false,
                },
            );
        }
        img
    }

    fn topic(img: &mut MetadataImage, name: &str, assignment: &[&[NodeId]]) {
        let t = TopicRecord {
            name: name.into(),
            id: img.topics.len() as u128 + 1,
            partitions: assignment.iter().map(|r| PartitionState::new(r.to_vec())).collect(),
            configs: Default::default(),
            internal: false,
        };
        img.topics.insert(name.into(), t);
    }

    /// Applies a plan as if every move completed.
    fn apply(img: &mut MetadataImage, moves: &[Move]) {
        for m in moves {
            let p = &mut img.topics.get_mut(&m.topic).expect("topic").partitions[m.partition as usize];
            p.replicas = m.to.clone();
            p.isr = m.to.clone();
            p.leader = m.to[0];
        }
    }

    fn counts(img: &MetadataImage) -> (BTreeMap<NodeId, usize>, BTreeMap<NodeId, usize>) {
        let mut replicas = BTreeMap::new();
        let mut leaders = BTreeMap::new();
        for t in img.topics.values() {
            for p in &t.partitions {
                for r in &p.replicas {
                    *replicas.entry(*r).or_insert(0) += 1;
                }
                *leaders.entry(p.replicas[0]).or_insert(0) += 1;
            }
        }
        (replicas, leaders)
    }

    #[test]
    fn a_new_broker_gets_its_share_of_replicas_and_leaders() {
        let mut img = image(&[1, 2, 3]);
        let placed = crate::placement::place(&img, 12, 3).expect("place");
        let refs: Vec<&[NodeId]> = placed.iter().map(|r| r.as_slice()).collect();
        topic(&mut img, "t", &refs);
        let cfg = BalancerConfig::default();
        assert!(
            plan(&img, &Loads::default(), &cfg, &BTreeSet::new(), &BTreeSet::new()).is_empty(),
            "balanced already"
        );
        img.brokers.insert(4, BrokerState { id: 4, ..img.brokers[&1].clone() });
        let moves = plan(&img, &Loads::default(), &cfg, &BTreeSet::new(), &BTreeSet::new());
        assert!(moves.iter().any(|m| !m.is_reorder()));
        apply(&mut img, &moves);
        let (replicas, leaders) = counts(&img);
        assert_eq!(replicas.values().copied().collect::<Vec<_>>(), vec![9, 9, 9, 9]);
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![3, 3, 3, 3]);
        assert!(
            plan(&img, &Loads::default(), &cfg, &BTreeSet::new(), &BTreeSet::new()).is_empty(),
            "stable once applied"
        );
    }

    #[test]
    fn draining_moves_every_replica_off() {
        let mut img = image(&[1, 2, 3, 4]);
        let placed = crate::placement::place(&img, 8, 2).expect("place");
        let refs: Vec<&[NodeId]> = placed.iter().map(|r| r.as_slice()).collect();
        topic(&mut img, "t", &refs);
        img.draining.insert(2);
        let moves = plan(
            &img,
            &Loads::default(),
            &BalancerConfig::default(),
            &img.draining.clone(),
            &BTreeSet::new(),
        );
        assert!(moves.iter().all(|m| !m.to.contains(&2)));
        apply(&mut img, &moves);
        let (replicas, _) = counts(&img);
        assert_eq!(replicas.get(&2), None);
        assert_eq!(replicas.values().sum::<usize>(), 16);
        assert!(replicas.values().all(|n| (5..=6).contains(n)), "{replicas:?}");
    }

    #[test]
    fn hot_partitions_are_spread_by_bytes_not_by_count() {
        // Counts are even, per topic too (two partitions per broker), but both hot partitions
        // sit on broker 1.
        let mut img = image(&[1, 2, 3]);
        topic(&mut img, "skew", &[&[1], &[1], &[2], &[2], &[3], &[3]]);
        let mut loads = Loads::default();
        for p in 0..6 {
            let rate = if p < 2 { 4.0 * 1048576.0 } else { 10_000.0 };
            loads.partitions.insert(TopicPartition::new("skew", p), (1 << 20, rate, 0.0));
        }
        let moves = plan(&img, &loads, &BalancerConfig::default(), &BTreeSet::new(), &BTreeSet::new());
        assert!(
            moves.iter().all(|m| m.reasons.iter().all(|r| matches!(r, Reason::BytesIn { .. }))),
            "{moves:?}"
        );
        // Cooling partitions are not moved for their bytes again.
        let cooling: BTreeSet<Key> = (0..6).map(|p| TopicPartition::new("skew", p)).collect();
        assert!(plan(&img, &loads, &BalancerConfig::default(), &BTreeSet::new(), &cooling).is_empty());
        apply(&mut img, &moves);
        let hot_brokers: BTreeSet<NodeId> =
            img.topics["skew"].partitions[..2].iter().map(|p| p.replicas[0]).collect();
        assert_eq!(hot_brokers.len(), 2, "the hot partitions are on two brokers now");
        let (replicas, _) = counts(&img);
        assert!(replicas.values().all(|n| *n == 2), "counts stay even: {replicas:?}");
        assert!(
            plan(&img, &loads, &BalancerConfig::default(), &BTreeSet::new(), &BTreeSet::new()).is_empty(),
            "no churn after"
        );
        // With whole partitions 5 hot replicas over 4 brokers cannot be within the threshold:
        // the noise in the rates must not move them back and forth.
        let mut img = image(&[1, 2, 3, 4]);
        topic(&mut img, "hot", &[&[1, 2], &[3, 4], &[1, 3]]);
        let mut loads = Loads::default();
        for (p, rate) in [(0, 1.0e6), (1, 1.1e6), (2, 0.95e6)] {
            loads.partitions.insert(TopicPartition::new("hot", p), (1 << 20, rate, 0.0));
        }
        let moves = plan(&img, &loads, &BalancerConfig::default(), &BTreeSet::new(), &BTreeSet::new());
        assert!(moves.iter().all(|m| m.is_reorder()), "no data move for noise: {moves:?}");
    }

    #[test]
    fn each_topic_is_spread_not_only_the_total() {
        // Totals are even (4 each) but topic a sits on 1 and 2, topic b on 3 and 4.
        let mut img = image(&[1, 2, 3, 4]);
        topic(&mut img, "a", &[&[1, 2], &[2, 1], &[1, 2], &[2, 1]]);
        topic(&mut img, "b", &[&[3, 4], &[4, 3], &[3, 4], &[4, 3]]);
        let moves =
            plan(&img, &Loads::default(), &BalancerConfig::default(), &BTreeSet::new(), &BTreeSet::new());
        apply(&mut img, &moves);
        for t in ["a", "b"] {
            let mut per: BTreeMap<NodeId, usize> = BTreeMap::new();
            for p in &img.topics[t].partitions {
                for r in &p.replicas {
                    *per.entry(*r).or_insert(0) += 1;
                }
            }
            assert_eq!(per.values().copied().collect::<Vec<_>>(), vec![2, 2, 2, 2], "{t}: {per:?}");
        }
        assert!(plan(
            &img,
            &Loads::default(),
            &BalancerConfig::default(),
            &BTreeSet::new(),
            &BTreeSet::new()
        )
        .is_empty());
    }

    #[test]
    fn leadership_is_evened_when_the_extreme_pair_shares_no_partition() {
        // Replicas even after a fourth broker joined, but broker 4 leads nothing, and broker 1
        // (the most preferred, lowest id) shares no partition with it: 2 and 3 must give way.
        let mut img = image(&[1, 2, 3, 4]);
        topic(&mut img, "t", &[&[1, 2, 3], &[2, 1, 4], &[3, 4, 1], &[1, 2, 3], &[2, 4, 3], &[3, 1, 4]]);
        let moves =
            plan(&img, &Loads::default(), &BalancerConfig::default(), &BTreeSet::new(), &BTreeSet::new());
        assert!(moves.iter().all(|m| m.is_reorder()), "{moves:?}");
        apply(&mut img, &moves);
        let (_, leaders) = counts(&img);
        let (max, min) =
            (leaders.values().max().copied(), (1..=4).map(|b| leaders.get(&b).copied().unwrap_or(0)).min());
        assert!(max.unwrap_or(0) <= min.unwrap_or(0) + 1, "{leaders:?}");
    }

    #[test]
    fn moving_partitions_are_left_alone() {
        let mut img = image(&[1, 2, 3]);
        topic(&mut img, "t", &[&[1], &[1], &[1], &[1]]);
        let p = &mut img.topics.get_mut("t").expect("t").partitions[0];
        p.replicas = vec![2, 1];
        p.adding = vec![2];
        p.removing = vec![1];
        let moves =
            plan(&img, &Loads::default(), &BalancerConfig::default(), &BTreeSet::new(), &BTreeSet::new());
        assert!(moves.iter().all(|m| m.partition != 0));
        assert_eq!(moves.len(), 1, "{moves:?}");
    }
}
