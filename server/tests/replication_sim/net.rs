//! The simulated network: messages between the controller, the brokers and the producer, each
//! lost, delayed (so reordered) or duplicated by the seed, and links cut for a while.
//!
//! A message is addressed to one incarnation of a broker, as a TCP connection is to one
//! process: one sent to a process that has died since is dropped on arrival. Requests carry
//! ids, and a client takes only the answer to the request it is waiting for (a stale or
//! duplicated answer is dropped, as a connection's correlation id would).

use std::collections::BTreeSet;

use bytes::Bytes;
use riptide_engine::io::sim::Rng;
use riptide_quorum::{IsrChangeRequest, MetadataRecord};
use riptide_server::partition::{EpochEndOffset, LeaderEpoch, Offset};

pub type Node = i32;
pub const CONTROLLER: Node = 0;
pub const PRODUCER: Node = 100;

#[derive(Clone, Debug)]
pub enum Msg {
    Register {
        incarnation: u128,
    },
    Registered(Result<i64, String>),
    Heartbeat {
        epoch: i64,
        applied: u64,
    },
    /// The controller no longer knows this registration: register again.
    HeartbeatStale,
    MetadataFetch {
        after: u64,
    },
    /// Log entries `first`, `first + 1`, ...
    Metadata {
        first: u64,
        entries: Vec<Vec<MetadataRecord>>,
    },
    AlterIsr {
        id: u64,
        broker_epoch: i64,
        change: IsrChangeRequest,
    },
    AlterIsrReply {
        id: u64,
        ok: bool,
    },
    Fetch {
        id: u64,
        leader_epoch: LeaderEpoch,
        offset: Offset,
        last_epoch: LeaderEpoch,
    },
    FetchReply {
        id: u64,
        error: i16,
        diverging: EpochEndOffset,
        records: Option<Bytes>,
        hw: Offset,
        log_start: Offset,
    },
    Produce {
        id: u64,
        batch: Bytes,
    },
    ProduceReply {
        id: u64,
        result: Result<Offset, i16>,
    },
}

#[derive(Clone, Debug)]
pub struct Envelope {
    pub from: Node,
    /// The sending process's incarnation: answers go back to it.
    pub from_incarnation: u64,
    pub to: Node,
    /// The incarnation of `to` the message was sent to (0: the controller or producer).
    pub to_incarnation: u64,
    pub msg: Msg,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub cut: u64,
    pub partitions: u64,
}

pub struct Net {
    rng: Rng,
    pub loss_ppm: u32,
    pub dup_ppm: u32,
    pub max_delay_ms: u64,
    /// Directed links that drop everything.
    cut: BTreeSet<(Node, Node)>,
    pub stats: NetStats,
}

impl Net {
    pub fn new(rng: Rng, loss_ppm: u32, dup_ppm: u32, max_delay_ms: u64) -> Net {
        Net { rng, loss_ppm, dup_ppm, max_delay_ms, cut: BTreeSet::new(), stats: NetStats::default() }
    }

    /// The delays (ms from now) at which copies of a message arrive: none if lost or cut.
    pub fn route(&mut self, from: Node, to: Node) -> Vec<u64> {
        self.stats.sent += 1;
        if self.cut.contains(&(from, to)) {
            self.stats.cut += 1;
            return Vec::new();
        }
        if self.rng.chance_ppm(self.loss_ppm) {
            self.stats.lost += 1;
            return Vec::new();
        }
        let mut delays = vec![1 + self.rng.below(self.max_delay_ms.max(1))];
        if self.rng.chance_ppm(self.dup_ppm) {
            self.stats.duplicated += 1;
            delays.push(1 + self.rng.below(self.max_delay_ms.max(1) * 4));
        }
        delays
    }

    /// Cuts both directions between `a` and each of `others`.
    pub fn cut(&mut self, a: Node, others: &[Node]) {
        self.stats.partitions += 1;
        for &b in others {
            self.cut.insert((a, b));
            self.cut.insert((b, a));
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn calm(&mut self) {
        self.heal();
        self.loss_ppm = 0;
        self.dup_ppm = 0;
    }
}
