//! Deterministic simulation of replication (TigerBeetle's VOPR approach, network half): three
//! brokers, each with its own simulated disk (`riptide_engine::io::sim`), run the real
//! `Partition` (leader and follower sides, ISR upkeep, group commit) and the fetcher's rule,
//! with the real controller's decisions (`riptide_quorum::controller::rules`) over a metadata
//! log, all in one thread and in virtual time. One seed drives everything: the producer's
//! traffic, message loss, delay (so reordering), duplication, network partitions, process
//! kills (page cache kept) and power losses (one broker, two, or the whole cluster, also right
//! after an acknowledgement leaves), so any failure
//! replays exactly from its seed.
//!
//! The checker (`checker.rs`) holds the replication invariants: acknowledged
//! acks=all records survive, what a leader exposed below its high watermark never changes, a
//! leader's high watermark never moves back, one leader per leader epoch, and the replicas
//! converge once the faults stop. Seeds with `durability.policy=fsync` lose power anywhere,
//! even everywhere at once; seeds with Kafka's `replicated` policy (acknowledged once in
//! memory on the ISR) lose power on a minority only: one broker, while all three run and are
//! back in the ISR since their last restart.
//!
//! Environment: `RIPTIDE_NETSIM_SEEDS` (count, default 40), `RIPTIDE_NETSIM_SEED_START`,
//! `RIPTIDE_NETSIM_SEED=N` (replay one seed, verbose; with `RIPTIDE_NETSIM_PLANT` =
//! `ack-before-sync` or `early-follower-ack`, with that bug planted), `RIPTIDE_NETSIM_SECONDS` (run seeds
//! for this much wall time; scripts/simulate.sh).

mod broker;
mod checker;
mod controller;
mod net;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use riptide_engine::io::sim::{self, Rng};
use riptide_format::build::{self, BatchFields};
use riptide_quorum::{NodeId, NO_LEADER};
use riptide_server::config::Durability;

use broker::{topic_config, Broker, LeaderAppend, Out, SimClock, Timer};
use checker::Checker;
use controller::{Controller, DUTY_TICK_MS};
use net::{Envelope, Msg, Net, Node, CONTROLLER, PRODUCER};

const BROKERS: [NodeId; 3] = [1, 2, 3];
/// Virtual time with traffic and faults; then the faults stop and the replicas must converge.
const CHAOS_MS: u64 = 10_000;
const CONVERGE_MS: u64 = 30_000;
const SEEDS_DEFAULT: u64 = 40;

enum Event {
    Deliver(Envelope),
    Timer { broker: NodeId, incarnation: u64, timer: Timer },
    ControllerDuty,
    Produce,
    Chaos,
    Heal,
    Restart(NodeId),
}

#[derive(Clone, Copy, Default)]
enum Plant {
    #[default]
    None,
    /// Every disk acknowledges fdatasync without doing it.
    AckBeforeSync,
    /// Followers fetch on before their appends are fsynced.
    EarlyFollowerAck,
}

#[derive(Default, Clone, Copy, Debug)]
struct Totals {
    seeds: u64,
    acked: u64,
    kills: u64,
    power_losses: u64,
    cluster_power_losses: u64,
    partitions: u64,
    messages: u64,
    lost: u64,
    duplicated: u64,
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} seeds, {} acknowledged records checked, {} kills, {} power losses ({} of the whole cluster), \
             {} network partitions, {} messages ({} lost, {} duplicated)",
            self.seeds,
            self.acked,
            self.kills,
            self.power_losses,
            self.cluster_power_losses,
            self.partitions,
            self.messages,
            self.lost,
            self.duplicated
        )
    }
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.seeds += o.seeds;
        self.acked += o.acked;
        self.kills += o.kills;
        self.power_losses += o.power_losses;
        self.cluster_power_losses += o.cluster_power_losses;
        self.partitions += o.partitions;
        self.messages += o.messages;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
    }
}

struct Producer {
    next_id: u64,
    next_value: u64,
    pending: BTreeMap<u64, Vec<Vec<u8>>>,
}

struct World {
    verbose: bool,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    net: Net,
    controller: Controller,
    brokers: BTreeMap<NodeId, Broker>,
    restart_pending: BTreeMap<NodeId, bool>,
    clock: Arc<SimClock>,
    producer: Producer,
    checker: Checker,
    durability: Durability,
    /// The whole cluster loses power right after the next acknowledgement is sent.
    power_cut_armed: bool,
    totals: Totals,
}

impl World {
    fn new(seed: u64, verbose: bool, plant: Plant) -> World {
        let mut rng = Rng::new(seed);
        let durability = if seed % 3 == 2 { Durability::Replicated } else { Durability::Fsync };
        let segment_bytes = [2_048, 8_192, 1 << 20][rng.below(3) as usize];
        let loss_ppm = [0, 5_000, 30_000][rng.below(3) as usize];
        let dup_ppm = [0, 5_000, 20_000][rng.below(3) as usize];
        let max_delay = [2, 10, 40][rng.below(3) as usize];
        let sync_ms = [1, 5, 20][rng.below(3) as usize];
        let net = Net::new(Rng::new(rng.next_u64()), loss_ppm, dup_ppm, max_delay);
        let clock = SimClock::new();
        let cfg = topic_config(durability, 2, segment_bytes);
        let policy = if durability == Durability::Fsync { "fsync" } else { "replicated" };
        let mut brokers = BTreeMap::new();
        for id in BROKERS {
            let mut b = Broker::new(id, rng.next_u64(), cfg.clone(), clock.clone());
            b.plant_early_follower_ack = matches!(plant, Plant::EarlyFollowerAck);
            b.sync_ms = sync_ms;
            b.with_disk(|_| sim::plant_ack_before_sync(matches!(plant, Plant::AckBeforeSync)));
            brokers.insert(id, b);
        }
        if verbose {
            eprintln!(
                "seed {seed}: {policy}, segments of {segment_bytes} B, loss {loss_ppm} ppm, duplication {dup_ppm} ppm, \
                 delay up to {max_delay} ms, fdatasync {sync_ms} ms"
            );
        }
        let mut w = World {
            verbose,
            rng,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            net,
            controller: Controller::new(BROKERS.to_vec(), 2, policy),
            brokers,
            restart_pending: BROKERS.iter().map(|b| (*b, false)).collect(),
            clock,
            producer: Producer { next_id: 0, next_value: 0, pending: BTreeMap::new() },
            checker: Checker::default(),
            durability,
            power_cut_armed: false,
            totals: Totals { seeds: 1, ..Totals::default() },
        };
        for id in BROKERS {
            w.start(id);
        }
        w.at(DUTY_TICK_MS, Event::ControllerDuty);
        w.at(500, Event::Produce);
        w.at(1_500, Event::Chaos);
        w
    }

    fn at(&mut self, after_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((self.now + after_ms, self.seq), event);
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.verbose {
            eprintln!("{:>6} ms  {}", self.now, what());
        }
    }

    fn start(&mut self, id: NodeId) {
        let mut out = Vec::new();
        let b = self.brokers.get_mut(&id).expect("broker");
        b.start(&mut out);
        let inc = b.incarnation;
        self.log(|| format!("broker {id} starts (incarnation {inc})"));
        self.route(id, None, out);
    }

    /// Sends what broker `from` (or the controller or producer) wants sent; `reply_to` is the
    /// request being answered (its sender gets the answers on that connection).
    fn route(&mut self, from: Node, reply_to: Option<(Node, u64)>, out: Vec<Out>) {
        let from_incarnation = self.brokers.get(&from).map_or(0, |b| b.incarnation);
        let mut acked = false;
        for o in out {
            match o {
                Out::Timer { after_ms, timer } => {
                    self.at(after_ms, Event::Timer { broker: from, incarnation: from_incarnation, timer })
                }
                Out::Send { to, msg } => {
                    acked |= matches!(msg, Msg::ProduceReply { result: Ok(_), .. });
                    self.send(from, from_incarnation, reply_to, to, msg);
                }
            }
        }
        if acked && self.power_cut_armed {
            // The acknowledgement is on the wire; nothing after it happens.
            self.power_cut_armed = false;
            self.log(|| "the whole cluster loses power right after an acknowledgement".into());
            self.totals.cluster_power_losses += 1;
            for b in BROKERS {
                if self.brokers[&b].up {
                    self.crash(b, true);
                }
            }
        }
    }

    fn send(&mut self, from: Node, from_incarnation: u64, reply_to: Option<(Node, u64)>, to: Node, msg: Msg) {
        let to_incarnation = match reply_to {
            Some((node, inc)) if node == to => inc,
            _ => match self.brokers.get(&to) {
                Some(b) if b.up => b.incarnation,
                Some(_) => return, // connection refused
                None => 0,
            },
        };
        for delay in self.net.route(from, to) {
            let env = Envelope { from, from_incarnation, to, to_incarnation, msg: msg.clone() };
            self.at(delay, Event::Deliver(env));
        }
    }

    fn run_until(&mut self, end: u64, stop: &mut dyn FnMut(&mut World) -> bool) -> bool {
        while let Some(entry) = self.queue.first_entry() {
            let (time, _) = *entry.key();
            if time > end {
                break;
            }
            let event = entry.remove();
            self.now = time;
            self.clock.set(time);
            self.dispatch(event);
            if stop(self) {
                return true;
            }
        }
        self.now = self.now.max(end);
        false
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Deliver(env) => self.deliver(env),
            Event::Timer { broker, incarnation, timer } => {
                let now = self.now;
                let b = self.brokers.get_mut(&broker).expect("broker");
                if !b.up || b.incarnation != incarnation {
                    return;
                }
                let mut out = Vec::new();
                let mut appends = Vec::new();
                let checker = &mut self.checker;
                b.with_disk(|b| {
                    b.timer(timer, now, &mut out, &mut appends);
                    observe(checker, b, &appends);
                });
                self.route(broker, None, out);
            }
            Event::ControllerDuty => {
                let before = self.controller.entries();
                self.controller.duty(self.now);
                if self.controller.entries() != before {
                    let p = self.controller.partition().cloned();
                    self.log(|| format!("controller: partition now {p:?}"));
                }
                self.at(DUTY_TICK_MS, Event::ControllerDuty);
            }
            Event::Produce => self.produce(),
            Event::Chaos => self.chaos(),
            Event::Heal => {
                self.log(|| "network healed".into());
                self.net.heal();
            }
            Event::Restart(id) => {
                self.restart_pending.insert(id, false);
                if !self.brokers[&id].up {
                    self.start(id);
                }
            }
        }
    }

    fn deliver(&mut self, env: Envelope) {
        let Envelope { from, from_incarnation, to, to_incarnation, msg } = env;
        match to {
            CONTROLLER => {
                let before = self.controller.entries();
                let reply = self.controller.handle(from, msg, self.now);
                if self.controller.entries() != before {
                    let p = self.controller.partition().cloned();
                    self.log(|| format!("controller (from {from}): partition now {p:?}"));
                }
                if let Some(reply) = reply {
                    self.send(CONTROLLER, 0, Some((from, from_incarnation)), from, reply);
                }
            }
            PRODUCER => {
                if let Msg::ProduceReply { id, result } = msg {
                    let Some(values) = self.producer.pending.remove(&id) else { return };
                    if let Ok(base) = result {
                        self.log(|| format!("acknowledged {} record(s) at {base}", values.len()));
                        self.totals.acked += values.len() as u64;
                        self.checker.on_ack(base, &values);
                    }
                }
            }
            id => {
                let now = self.now;
                let b = self.brokers.get_mut(&id).expect("broker");
                if !b.up || b.incarnation != to_incarnation {
                    return;
                }
                let mut out = Vec::new();
                let mut appends = Vec::new();
                let checker = &mut self.checker;
                b.with_disk(|b| {
                    b.message(from, msg, now, &mut out, &mut appends);
                    observe(checker, b, &appends);
                });
                self.route(id, Some((from, from_incarnation)), out);
            }
        }
    }

    fn produce(&mut self) {
        if self.now >= CHAOS_MS {
            return;
        }
        let leader = self.controller.partition().map_or(NO_LEADER, |p| p.leader);
        let to = if leader != NO_LEADER && self.rng.below(100) < 85 {
            leader
        } else {
            BROKERS[self.rng.below(3) as usize]
        };
        let count = 1 + self.rng.below(3) as usize;
        let values: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                self.producer.next_value += 1;
                format!("v{}", self.producer.next_value).into_bytes()
            })
            .collect();
        self.producer.next_id += 1;
        let id = self.producer.next_id;
        let batch = batch_of(&values);
        self.producer.pending.insert(id, values);
        self.send(PRODUCER, 0, None, to, Msg::Produce { id, batch });
        let next = 3 + self.rng.below(12);
        self.at(next, Event::Produce);
    }

    /// One random fault, now and then, while the chaos lasts.
    fn chaos(&mut self) {
        if self.now >= CHAOS_MS {
            return;
        }
        let roll = self.rng.below(100);
        let id = BROKERS[self.rng.below(3) as usize];
        let up = self.brokers[&id].up;
        let all_in_sync = BROKERS.iter().all(|b| self.fully_back(*b));
        match roll {
            0..=29 => {
                let others: Vec<Node> = match self.rng.below(4) {
                    0 => BROKERS.iter().copied().filter(|b| *b != id).chain([CONTROLLER, PRODUCER]).collect(),
                    1 => vec![CONTROLLER],
                    2 => BROKERS.iter().copied().filter(|b| *b != id).collect(),
                    _ => vec![BROKERS[(BROKERS.iter().position(|b| *b == id).unwrap_or(0) + 1) % 3]],
                };
                let length = 100 + self.rng.below(2_400);
                self.log(|| format!("network: broker {id} cut from {others:?} for {length} ms"));
                self.net.cut(id, &others);
                self.totals.partitions += 1;
                self.at(length, Event::Heal);
            }
            30..=49 if up => {
                self.log(|| format!("broker {id} killed (kill -9)"));
                self.totals.kills += 1;
                self.crash(id, false);
            }
            // Kafka's `replicated` policy keeps acknowledged data in memory only: a power loss
            // may hit one broker while the others all hold everything, each back in the ISR
            // since its last restart (one failure at a time: a restart alone shrinks the ISR,
            // and a power loss on the last member then loses data in Kafka too).
            50..=64 if up && (self.durability == Durability::Fsync || all_in_sync) => {
                self.log(|| format!("broker {id} loses power"));
                self.totals.power_losses += 1;
                self.crash(id, true);
            }
            // Two brokers at once (a rack).
            65..=69 if self.durability == Durability::Fsync => {
                let other = BROKERS[(BROKERS.iter().position(|b| *b == id).unwrap_or(0) + 1) % 3];
                self.log(|| format!("brokers {id} and {other} lose power"));
                self.totals.power_losses += 2;
                for b in [id, other] {
                    if self.brokers[&b].up {
                        self.crash(b, true);
                    }
                }
            }
            70..=72 if self.durability == Durability::Fsync => {
                self.log(|| "the whole cluster loses power".into());
                self.totals.cluster_power_losses += 1;
                for b in BROKERS {
                    if self.brokers[&b].up {
                        self.crash(b, true);
                    }
                }
            }
            // The power goes right after the next acknowledgement leaves a leader: what was
            // acknowledged must be durable on the ISR by then.
            73..=77 if self.durability == Durability::Fsync => {
                self.log(|| "a power cut is armed for the next acknowledgement".into());
                self.power_cut_armed = true;
            }
            _ => {}
        }
        let next = 200 + self.rng.below(600);
        self.at(next, Event::Chaos);
    }

    /// Broker `id` runs, is registered under its current process's epoch, unfenced, and in
    /// the ISR (re-registration took a restarted broker out of it).
    fn fully_back(&self, id: NodeId) -> bool {
        let b = &self.brokers[&id];
        let registered = b.registered.is_some_and(|epoch| {
            self.controller.image.brokers.get(&id).is_some_and(|s| s.epoch == epoch && !s.fenced)
        });
        b.up && registered && self.controller.partition().is_some_and(|p| p.isr.contains(&id))
    }

    fn crash(&mut self, id: NodeId, power_loss: bool) {
        self.brokers.get_mut(&id).expect("broker").crash(power_loss);
        if !self.restart_pending[&id] {
            self.restart_pending.insert(id, true);
            let after = 50 + self.rng.below(1_500);
            self.at(after, Event::Restart(id));
        }
    }

    /// True when every broker is back, in the ISR, and holds the leader's whole log.
    fn converged(&mut self) -> Option<NodeId> {
        let p = self.controller.partition()?.clone();
        if p.leader == NO_LEADER || p.isr.len() != BROKERS.len() {
            return None;
        }
        let lead = self.brokers.get(&p.leader)?.part.as_ref()?;
        if !lead.is_leader()
            || lead.leader_epoch() != p.leader_epoch
            || lead.high_watermark() != lead.log_end_offset()
        {
            return None;
        }
        let leo = lead.log_end_offset();
        for id in BROKERS {
            let b = &self.brokers[&id];
            let part = b.part.as_ref()?;
            if !b.up || part.log_end_offset() != leo || part.high_watermark() != leo {
                return None;
            }
        }
        Some(p.leader)
    }

    fn run(mut self) -> Result<Totals, String> {
        self.run_until(CHAOS_MS, &mut |_| false);
        self.log(|| "faults stop".into());
        self.power_cut_armed = false;
        self.net.calm();
        for id in BROKERS {
            if !self.brokers[&id].up && !self.restart_pending[&id] {
                self.start(id);
            }
        }
        let mut last_check = 0;
        let converged = self.run_until(CHAOS_MS + CONVERGE_MS, &mut |w: &mut World| {
            if w.now < last_check + 50 {
                return false;
            }
            last_check = w.now;
            w.converged().is_some()
        });
        let stats = self.net.stats;
        self.totals.messages = stats.sent;
        self.totals.lost = stats.lost;
        self.totals.duplicated = stats.duplicated;
        if !converged {
            let p = self.controller.partition().cloned();
            let states: Vec<String> = BROKERS
                .iter()
                .map(|id| {
                    let b = &self.brokers[id];
                    let part = b.part.as_ref();
                    format!(
                        "broker {id}: up {} registered {:?} leader {:?} epoch {:?} leo {:?} hw {:?}",
                        b.up,
                        b.registered,
                        part.map(|p| p.is_leader()),
                        part.map(|p| p.leader_epoch()),
                        part.map(|p| p.log_end_offset()),
                        part.map(|p| p.high_watermark())
                    )
                })
                .collect();
            self.checker.fail(format!(
                "no convergence within {CONVERGE_MS} ms of calm: {p:?}; {}",
                states.join("; ")
            ));
        } else if let Some(leader) = self.converged() {
            let mut logs = BTreeMap::new();
            for id in BROKERS {
                let b = self.brokers.get_mut(&id).expect("broker");
                logs.insert(id, b.with_disk(|b| b.records()));
            }
            self.checker.check_final(leader, &logs);
            self.log(|| format!("converged on leader {leader}: {} records", logs[&leader].len()));
        }
        if self.checker.violations.is_empty() {
            Ok(self.totals)
        } else {
            Err(self.checker.violations.join("\n"))
        }
    }
}

/// The checker's look after a broker handled something (its disk attached).
fn observe(checker: &mut Checker, b: &mut Broker, appends: &[LeaderAppend]) {
    checker.on_leader_appends(appends);
    if let Some(p) = b.part.as_ref() {
        checker.observe_leader(b.id, b.incarnation, p);
    }
}

/// One batch holding `values`, as a producer builds it.
fn batch_of(values: &[Vec<u8>]) -> Bytes {
    let mut b = BytesMut::new();
    build::put_header_room(&mut b);
    build::put_keyless_records(&mut b, values.iter().map(|v| v.as_slice()));
    let now = broker::START_MS;
    build::write_header(&mut b, &BatchFields::plain(values.len() as i32, now, now, 0));
    b.freeze()
}

fn run_seed(seed: u64, verbose: bool, plant: Plant) -> Result<Totals, String> {
    let world = World::new(seed, verbose, plant);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.run()));
    sim::uninstall();
    match outcome {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn replay_hint(seed: u64) -> String {
    format!("replay: RIPTIDE_NETSIM_SEED={seed} cargo test -p riptide-server --test replication_sim -- --nocapture --exact seeds")
}

#[test]
fn seeds() {
    if let Some(seed) = env_u64("RIPTIDE_NETSIM_SEED") {
        let plant = match std::env::var("RIPTIDE_NETSIM_PLANT").as_deref() {
            Ok("ack-before-sync") => Plant::AckBeforeSync,
            Ok("early-follower-ack") => Plant::EarlyFollowerAck,
            _ => Plant::None,
        };
        match run_seed(seed, true, plant) {
            Ok(t) => eprintln!("seed {seed} passed: {t}"),
            Err(e) => panic!("seed {seed} failed:\n{e}"),
        }
        return;
    }
    let start = env_u64("RIPTIDE_NETSIM_SEED_START").unwrap_or(0);
    let seconds = env_u64("RIPTIDE_NETSIM_SECONDS");
    let count = env_u64("RIPTIDE_NETSIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    let began = Instant::now();
    let mut totals = Totals::default();
    let mut seed = start;
    loop {
        let done = match seconds {
            Some(s) => began.elapsed().as_secs() >= s,
            None => seed >= start + count,
        };
        if done {
            break;
        }
        match run_seed(seed, false, Plant::None) {
            Ok(t) => totals.add(&t),
            Err(e) => {
                eprintln!("replication simulation: {totals} before the failure");
                panic!("seed {seed} failed:\n{e}\n{}", replay_hint(seed))
            }
        }
        seed += 1;
    }
    eprintln!(
        "replication simulation: seeds {start}..{seed} in {:.1} s: {totals}",
        began.elapsed().as_secs_f64()
    );
    assert!(totals.acked > 0, "no record was acknowledged in {} seeds", totals.seeds);
}

/// The checker must catch a planted bug within the seeds CI runs: the first seed that fails,
/// and how.
fn caught(plant: Plant, seeds: u64) -> (u64, String) {
    for seed in 0..seeds {
        if let Err(e) = run_seed(seed, false, plant) {
            return (seed, e);
        }
    }
    panic!("the planted bug went unnoticed for {seeds} seeds");
}

#[test]
fn a_planted_ack_before_fsync_is_caught() {
    let (seed, how) = caught(Plant::AckBeforeSync, 60);
    eprintln!("acknowledging before fdatasync: caught by seed {seed}: {how}");
    assert!(
        how.contains("acknowledged record") || how.contains("exposed"),
        "caught, but not as lost or changed data: {how}"
    );
}

#[test]
fn a_planted_follower_ack_before_its_write_is_durable_is_caught() {
    let (seed, how) = caught(Plant::EarlyFollowerAck, 60);
    eprintln!("a follower acknowledging before its fsync: caught by seed {seed}: {how}");
    assert!(
        how.contains("acknowledged record") || how.contains("exposed"),
        "caught, but not as lost or changed data: {how}"
    );
}

#[test]
fn a_seed_replays_exactly() {
    let a = run_seed(7, false, Plant::None).map(|t| (t.acked, t.messages, t.lost));
    let b = run_seed(7, false, Plant::None).map(|t| (t.acked, t.messages, t.lost));
    assert_eq!(a, b);
}
