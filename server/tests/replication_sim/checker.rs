//! The replication invariants, checked as the simulation runs and at its end:
//! - an acknowledged (acks=all) record stays at its offset: no two acknowledgements for one
//!   offset with different records, and every acknowledged record is in every replica's log
//!   at the end;
//! - what a leader exposed below its high watermark never changes: every record any leader
//!   served below its high watermark is the same record on every later leader (so the high
//!   watermark, as consumers see it, never moves back over data);
//! - a leader's high watermark never moves back while it leads;
//! - one leader per leader epoch: no two brokers (or two incarnations of one) appended as
//!   leader under the same epoch;
//! - at the end, with the network healed and every broker back, the replicas converge: all in
//!   the ISR with identical logs.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use riptide_quorum::NodeId;
use riptide_server::partition::{LeaderEpoch, Offset, Partition};

use super::broker::LeaderAppend;

/// Every record of `p` in `from..to` as (offset, value).
pub fn read_records(p: &Partition, from: Offset, to: Offset) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < to {
        let bytes = match p.read_bytes(offset, 1 << 20, to) {
            Ok(b) if !b.is_empty() => b,
            Ok(_) => break,
            Err(e) => panic!("reading {offset}..{to}: {e}"),
        };
        let mut buf = Bytes::from(bytes);
        let sets = RecordBatchDecoder::decode_all(&mut buf).expect("the log's batches decode");
        let before = offset;
        for r in sets.iter().flat_map(|s| s.records.iter()) {
            if r.offset >= from.0 && r.offset < to.0 {
                out.push((r.offset, r.value.as_ref().map(|v| v.to_vec()).unwrap_or_default()));
            }
            offset = Offset(offset.0.max(r.offset + 1));
        }
        assert!(offset > before, "a read at {before} made no progress");
    }
    out
}

#[derive(Default)]
pub struct Checker {
    /// Acknowledged records by offset.
    pub acked: BTreeMap<i64, Vec<u8>>,
    /// Records some leader served below its high watermark, by offset.
    pub committed: BTreeMap<i64, Vec<u8>>,
    /// Per leadership (broker, incarnation, epoch): the high watermark last seen and how far
    /// its log was compared with `committed`.
    terms: BTreeMap<(NodeId, u64, LeaderEpoch), (Offset, Offset)>,
    epoch_leaders: BTreeMap<LeaderEpoch, (NodeId, u64)>,
    pub violations: Vec<String>,
}

impl Checker {
    pub fn fail(&mut self, what: String) {
        if self.violations.len() < 20 {
            self.violations.push(what);
        }
    }

    pub fn on_ack(&mut self, base: Offset, values: &[Vec<u8>]) {
        for (i, v) in values.iter().enumerate() {
            let offset = base.0 + i as i64;
            if let Some(old) = self.acked.insert(offset, v.clone()) {
                if old != *v {
                    self.fail(format!("two acknowledged records at offset {offset}: {old:?} and {v:?}"));
                }
            }
        }
    }

    pub fn on_leader_appends(&mut self, appends: &[LeaderAppend]) {
        for a in appends {
            let who = (a.broker, a.incarnation);
            if let Some(&other) = self.epoch_leaders.get(&a.epoch) {
                if other != who {
                    self.fail(format!(
                        "two leaders appended under leader epoch {}: broker {} (incarnation {}) and broker {} (incarnation {})",
                        a.epoch, other.0, other.1, who.0, who.1
                    ));
                }
            } else {
                self.epoch_leaders.insert(a.epoch, who);
            }
        }
    }

    /// After broker `id` handled something: if it leads, what it exposes must agree with
    /// what was exposed before, and its high watermark must not have moved back.
    pub fn observe_leader(&mut self, id: NodeId, incarnation: u64, p: &Partition) {
        if !p.is_leader() {
            return;
        }
        let hw = p.high_watermark();
        let key = (id, incarnation, p.leader_epoch());
        let (last_hw, checked) =
            self.terms.get(&key).copied().unwrap_or((Offset::NONE, p.log_start_offset()));
        if hw < last_hw {
            self.fail(format!(
                "broker {id} (epoch {}): high watermark moved back from {last_hw} to {hw}",
                key.2
            ));
        }
        if hw > checked {
            for (offset, value) in read_records(p, checked, hw) {
                match self.committed.get(&offset) {
                    Some(v) if *v != value => self.fail(format!(
                        "broker {id} (epoch {}) exposes offset {offset} = {value:?} below its high watermark {hw}, \
                         but {v:?} was exposed there before",
                        key.2
                    )),
                    Some(_) => {}
                    None => {
                        self.committed.insert(offset, value);
                    }
                }
            }
        }
        self.terms.insert(key, (hw.max(last_hw), hw.max(checked)));
    }

    /// The end: every replica's log against the leader's and the acknowledged records.
    pub fn check_final(&mut self, leader: NodeId, logs: &BTreeMap<NodeId, Vec<(i64, Vec<u8>)>>) {
        let Some(lead) = logs.get(&leader) else {
            self.fail(format!("no log for the leader {leader}"));
            return;
        };
        let by_offset: BTreeMap<i64, &Vec<u8>> = lead.iter().map(|(o, v)| (*o, v)).collect();
        for (id, log) in logs {
            if log != lead {
                let diff = log.iter().zip(lead.iter()).find(|(a, b)| a != b).map(|(a, _)| a.0);
                self.fail(format!(
                    "replica {id}'s log ({} records) differs from the leader {leader}'s ({} records), first at {diff:?}",
                    log.len(),
                    lead.len()
                ));
            }
        }
        let mut lost = Vec::new();
        for (offset, value) in &self.acked {
            if by_offset.get(offset).is_none_or(|v| *v != value) {
                lost.push(*offset);
            }
        }
        if !lost.is_empty() {
            self.fail(format!(
                "{} acknowledged record(s) lost or changed, first at offsets {:?}",
                lost.len(),
                &lost[..lost.len().min(8)]
            ));
        }
        let changed: Vec<i64> = self
            .committed
            .iter()
            .filter(|(o, v)| by_offset.get(o).is_none_or(|lv| lv != v))
            .map(|(o, _)| *o)
            .take(8)
            .collect();
        if !changed.is_empty() {
            self.fail(format!(
                "records once exposed below a high watermark are gone or changed at {changed:?}"
            ));
        }
    }
}
