//! The active controller's partition moves: Kafka's AlterPartitionReassignments and
//! ElectLeaders, decommissioning, and the balancer's rounds (plan, then start a few moves,
//! each logged with its reason). The records come from `reassign` and the plan from
//! `balancer`; this module decides when to write them.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Controller;
use crate::balancer::{self, BalanceReport, Loads, Move, Reason};
use crate::image::MetadataImage;
use crate::reassign;
use crate::records::{ApplyError, MetadataRecord, NodeId};
use crate::rpc::{AdminReply, ControllerError};
use riptide_model::TopicPartition;

type Verdicts = Vec<(TopicPartition, Result<(), ControllerError>)>;

/// Which planned moves a balancer step may start.
#[derive(Clone, Copy)]
enum Mode {
    /// `riptide cluster balance`: all of them, now.
    Forced,
    /// A round of the balancer: all of them unless it is paused, then only drains.
    Auto,
    /// The balancer is off: only drains.
    DrainsOnly,
}

/// Reorders (a new preferred leader, no data copied) started per round: each moves one
/// leadership, which clients see as a short NOT_LEADER retry.
const MAX_REORDERS_PER_ROUND: usize = 16;

/// A partition moved for its bytes is not moved for its bytes again for this many rounds
/// (5 minutes at the default interval): a safety net against chasing noisy rates.
const BYTES_COOLDOWN_ROUNDS: u32 = 30;

impl Controller {
    /// AlterPartitionReassignments: each partition's move starts (replacing one in progress)
    /// or, with no target, is cancelled; all accepted ones in one metadata entry.
    pub(super) async fn reassign(
        &self,
        partitions: Vec<(TopicPartition, Option<Vec<NodeId>>)>,
    ) -> Result<AdminReply, ControllerError> {
        let _guard = self.propose_lock.lock().await;
        let mut img = self.image();
        let mut records = Vec::new();
        let mut verdicts: Verdicts = Vec::new();
        for (tp, target) in partitions {
            let r = match &target {
                Some(t) => reassign::start(&img, &tp.topic, tp.partition, t),
                None => reassign::cancel(&img, &tp.topic, tp.partition).map(Some),
            };
            let verdict = match r {
                Ok(Some(record)) => apply_on(&mut img, &record).map(|()| {
                    tracing::info!("{tp}: reassignment to {target:?} requested");
                    records.push(record);
                }),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if target.is_none() && verdict.is_ok() {
                self.metrics.moves_cancelled.fetch_add(1, Ordering::Relaxed);
            }
            verdicts.push((tp, verdict));
        }
        self.write_verdicts(records, verdicts).await
    }

    /// ElectLeaders, preferred or unclean; with no partitions named, every partition that
    /// needs an election (those that do not are left out of the answer, as Kafka does).
    pub(super) async fn elect_leaders(
        &self,
        unclean: bool,
        partitions: Option<Vec<TopicPartition>>,
    ) -> Result<AdminReply, ControllerError> {
        let _guard = self.propose_lock.lock().await;
        let mut img = self.image();
        let all = partitions.is_none();
        let named = partitions.unwrap_or_else(|| {
            img.topics
                .values()
                .flat_map(|t| (0..t.partitions.len() as i32).map(|p| TopicPartition::new(t.name.as_str(), p)))
                .collect()
        });
        let mut records = Vec::new();
        let mut verdicts: Verdicts = Vec::new();
        for tp in named {
            let verdict = reassign::elect(&img, &tp.topic, tp.partition, unclean).and_then(|record| {
                apply_on(&mut img, &record)?;
                records.push(record);
                Ok(())
            });
            let skip = all
                && matches!(
                    verdict,
                    Err(ControllerError::ElectionNotNeeded(_)
                        | ControllerError::PreferredLeaderNotAvailable(_))
                );
            if !skip {
                verdicts.push((tp, verdict));
            }
        }
        self.write_verdicts(records, verdicts).await
    }

    async fn write_verdicts(
        &self,
        records: Vec<MetadataRecord>,
        partitions: Verdicts,
    ) -> Result<AdminReply, ControllerError> {
        let index = if records.is_empty() { 0 } else { self.propose(records).await?.index };
        Ok(AdminReply { index, topic: None, partitions })
    }

    pub(super) async fn decommission(
        &self,
        id: NodeId,
        draining: bool,
    ) -> Result<AdminReply, ControllerError> {
        let _guard = self.propose_lock.lock().await;
        let known = self.with_image(|img| img.brokers.contains_key(&id));
        if !known {
            return Err(ControllerError::InvalidRequest(format!("broker {id} is not registered")));
        }
        let applied = self.propose(vec![MetadataRecord::DecommissionBroker { id, draining }]).await?;
        if draining {
            tracing::info!("broker {id} is being decommissioned: the balancer moves its replicas away");
        } else {
            tracing::info!("broker {id} is back in service");
        }
        Ok(AdminReply { index: applied.index, topic: None, partitions: Vec::new() })
    }

    /// UnregisterBroker: a broker gone for good leaves the metadata. Refused while it is live
    /// (it would register again at once) or still named as a replica (decommission it first:
    /// its partitions would be left short of a copy).
    pub(super) async fn unregister(&self, id: NodeId) -> Result<AdminReply, ControllerError> {
        let _guard = self.propose_lock.lock().await;
        let verdict = self.with_image(|img| {
            if !img.brokers.contains_key(&id) {
                return Err(ControllerError::BrokerIdNotRegistered(id));
            }
            if img.is_live(id) {
                return Err(ControllerError::InvalidRequest(format!(
                    "broker {id} is live: stop it before unregistering it"
                )));
            }
            let held =
                img.topics.values().flat_map(|t| &t.partitions).filter(|p| p.replicas.contains(&id)).count();
            if held > 0 {
                return Err(ControllerError::InvalidRequest(format!(
                    "broker {id} is still a replica of {held} partition(s): decommission it first"
                )));
            }
            Ok(())
        });
        verdict?;
        let applied = self.propose(vec![MetadataRecord::UnregisterBroker { id }]).await?;
        self.loads.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        tracing::info!("broker {id} unregistered");
        Ok(AdminReply { index: applied.index, topic: None, partitions: Vec::new() })
    }

    /// Completes every move whose added replicas are all in sync (most complete right in the
    /// ISR change; this catches the rest, e.g. after a leader change).
    pub(super) async fn complete_moves(&self) {
        let _guard = self.propose_lock.lock().await;
        let done = self.with_image(reassign::completions);
        if done.is_empty() {
            return;
        }
        let n = done.len() as u64;
        match self.propose(done).await {
            Ok(_) => {
                self.metrics.moves_completed.fetch_add(n, Ordering::Relaxed);
                tracing::info!("{n} partition move(s) completed");
            }
            Err(e) => tracing::warn!("completing partition moves: {e}"),
        }
    }

    /// `riptide cluster balance`: the report, and with `run` the planned moves started now
    /// (whether or not the balancer runs on its own).
    pub(super) async fn balance(&self, run: bool) -> Result<BalanceReport, ControllerError> {
        self.ensure_active()?;
        if run {
            let mut report = self.balance_step(Mode::Forced).await?;
            report.config = Some(self.cfg.balancer.clone());
            return Ok(report);
        }
        let mut report = self.with_image(|img| self.report(img).0);
        report.config = Some(self.cfg.balancer.clone());
        Ok(report)
    }

    /// One round of the balancer (every `balancer_interval` on the active controller).
    /// With the balancer off, only decommissions run (an operator asked for those).
    pub(super) async fn balance_round(&self) {
        self.track_fenced();
        let mode = if self.cfg.balancer.enabled { Mode::Auto } else { Mode::DrainsOnly };
        if let Err(e) = self.balance_step(mode).await {
            tracing::warn!("balancer: {e}");
        }
    }

    async fn balance_step(&self, mode: Mode) -> Result<BalanceReport, ControllerError> {
        let _guard = self.propose_lock.lock().await;
        let mut img = self.image();
        let (mut report, leaving) = self.report(&img);
        let mut records = Vec::new();
        // A move onto a broker that is gone for good is undone, and planned again elsewhere.
        for m in &report.running {
            if m.adding.iter().any(|b| leaving.contains(b)) {
                if let Ok(r) = reassign::cancel(&img, &m.topic, m.partition) {
                    if apply_on(&mut img, &r).is_ok() {
                        tracing::warn!(
                            "balancer: cancelling the move of {}-{} onto {:?}: the broker is gone",
                            m.topic,
                            m.partition,
                            m.adding
                        );
                        self.metrics.moves_cancelled.fetch_add(1, Ordering::Relaxed);
                        records.push(r);
                    }
                }
            }
        }
        let running = report.running.iter().filter(|m| !m.adding.is_empty()).count();
        let mut slots = self.cfg.balancer.max_concurrent_moves.saturating_sub(running);
        let mut reorders = MAX_REORDERS_PER_ROUND;
        let only_drains = match mode {
            Mode::Forced => false,
            Mode::Auto => report.paused.is_some(),
            Mode::DrainsOnly => true,
        };
        for m in report.planned.clone() {
            let drain = m.reasons.iter().any(|r| matches!(r, Reason::Drain { .. }));
            if only_drains && !drain {
                continue;
            }
            let budget = if m.is_reorder() { &mut reorders } else { &mut slots };
            if *budget == 0 {
                continue;
            }
            let Ok(Some(record)) = reassign::start(&img, &m.topic, m.partition, &m.to) else { continue };
            if apply_on(&mut img, &record).is_err() {
                continue;
            }
            *budget -= 1;
            if m.reasons.iter().any(|r| matches!(r, Reason::BytesIn { .. })) {
                let mut moved = self.bytes_moved.lock().unwrap_or_else(|e| e.into_inner());
                moved.insert(TopicPartition::new(m.topic.as_str(), m.partition), Instant::now());
            }
            log_move(&m);
            records.push(record);
            report.started.push(m);
        }
        if !records.is_empty() {
            let started = report.started.len() as u64;
            self.propose(records).await?;
            self.metrics.moves_started.fetch_add(started, Ordering::Relaxed);
        }
        Ok(report)
    }

    /// The balancer's view of `img`, with the brokers that must be drained; updates the
    /// metrics.
    fn report(&self, img: &MetadataImage) -> (BalanceReport, BTreeSet<NodeId>) {
        let loads = {
            let reports = self.loads.lock().unwrap_or_else(|e| e.into_inner());
            Loads::merge(img, &reports)
        };
        let leaving = self.leaving(img);
        let brokers = balancer::summarize(img, &loads);
        let running = balancer::running(img, &loads);
        let cooling = {
            let mut moved = self.bytes_moved.lock().unwrap_or_else(|e| e.into_inner());
            let cooldown = self.cfg.balancer_interval * BYTES_COOLDOWN_ROUNDS;
            moved.retain(|_, t| t.elapsed() < cooldown);
            moved.keys().cloned().collect()
        };
        let planned = balancer::plan(img, &loads, &self.cfg.balancer, &leaving, &cooling);
        let (replica_spread, leader_spread, bytes_imbalance) = balancer::imbalance(&brokers);
        let m = &self.metrics;
        m.moves_in_progress.store(running.len() as u64, Ordering::Relaxed);
        m.move_bytes_left.store(running.iter().map(|r| r.bytes_left).sum(), Ordering::Relaxed);
        m.replica_spread.store(replica_spread as u64, Ordering::Relaxed);
        m.leader_spread.store(leader_spread as u64, Ordering::Relaxed);
        m.bytes_imbalance_milli.store((bytes_imbalance * 1000.0) as u64, Ordering::Relaxed);
        let report = BalanceReport {
            config: None,
            paused: paused(img, &leaving),
            brokers,
            running,
            planned,
            started: Vec::new(),
            replica_spread,
            leader_spread,
            bytes_imbalance,
        };
        (report, leaving)
    }

    /// Decommissioned brokers, and fenced ones gone longer than the unavailability timeout.
    fn leaving(&self, img: &MetadataImage) -> BTreeSet<NodeId> {
        let timeout = self.cfg.balancer.unavailable_timeout_ms;
        let mut out = img.draining.clone();
        if timeout > 0 {
            let since = self.fenced_since.lock().unwrap_or_else(|e| e.into_inner());
            for (id, t) in since.iter() {
                if t.elapsed() >= Duration::from_millis(timeout) && img.brokers.contains_key(id) {
                    out.insert(*id);
                }
            }
        }
        out
    }

    fn track_fenced(&self) {
        let fenced: Vec<NodeId> = self.with_image(|img| {
            img.brokers.values().filter(|b| b.fenced || b.in_controlled_shutdown).map(|b| b.id).collect()
        });
        let mut since = self.fenced_since.lock().unwrap_or_else(|e| e.into_inner());
        since.retain(|id, _| fenced.contains(id));
        for id in fenced {
            since.entry(id).or_insert_with(Instant::now);
        }
    }
}

/// Why only drains may run now: a broker is down (moving data while one is missing would
/// strain the rest, and it may be back any moment) or a partition is under-replicated.
fn paused(img: &MetadataImage, leaving: &BTreeSet<NodeId>) -> Option<String> {
    if let Some(b) = img.brokers.values().find(|b| !leaving.contains(&b.id) && !img.is_live(b.id)) {
        return Some(format!("broker {} is fenced or shutting down", b.id));
    }
    for t in img.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            let missing = p.target().into_iter().find(|r| !p.isr.contains(r) && !p.adding.contains(r));
            if let Some(r) = missing.filter(|r| !leaving.contains(r)) {
                return Some(format!("{}-{i} is under-replicated (replica {r} out of sync)", t.name));
            }
        }
    }
    None
}

fn log_move(m: &Move) {
    let why: Vec<String> = m.reasons.iter().map(|r| r.to_string()).collect();
    if m.is_reorder() {
        tracing::info!(
            "balancer: {}-{} preferred leader {:?} -> {:?} ({})",
            m.topic,
            m.partition,
            m.from,
            m.to,
            why.join("; ")
        );
    } else {
        tracing::info!(
            "balancer: moving {}-{} from {:?} to {:?}, {} bytes to copy ({})",
            m.topic,
            m.partition,
            m.from,
            m.to,
            m.bytes,
            why.join("; ")
        );
    }
}

/// Applies `record` to the working image so that the next one in the batch sees it.
fn apply_on(img: &mut MetadataImage, record: &MetadataRecord) -> Result<(), ControllerError> {
    let index = img.applied + 1;
    match img.apply(index, std::slice::from_ref(record), &mut Vec::new()).remove(0) {
        Ok(()) => Ok(()),
        Err(ApplyError::UnknownTopic(t)) => Err(ControllerError::UnknownTopic(format!("{t} does not exist"))),
        Err(e) => Err(ControllerError::InvalidReplicaAssignment(e.to_string())),
    }
}
