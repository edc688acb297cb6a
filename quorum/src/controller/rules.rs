//! The active controller's decisions about brokers and partition leadership, as pure
//! functions of the metadata image: what to write when a broker registers, is fenced, is
//! unfenced, or a leader asks for an ISR change. The controller calls them under its propose
//! lock; the replication simulation (`server/tests/replication_sim/`) calls the same ones
//! with its own clock and network, so both follow one set of rules.

use crate::image::MetadataImage;
use crate::records::{Endpoint, MetadataRecord, NodeId};
use crate::rpc::{ControllerError, IsrChangeRequest};

/// The records for a broker's (re-)registration. A new incarnation of a broker that is still
/// unfenced with a live session is a duplicate (two processes with one id). A new
/// incarnation of an unfenced broker whose session ran out, but which was not fenced yet,
/// is fenced in the same entry, and its leaderships and ISR places move as after any fence:
/// the old process's leader epochs must not carry on in the new one, whose log may be
/// shorter (KIP-101: one leader epoch, one history).
pub fn register(
    image: &MetadataImage,
    id: NodeId,
    incarnation: u128,
    endpoints: Vec<Endpoint>,
    rack: Option<String>,
    session_alive: bool,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let register = MetadataRecord::RegisterBroker { id, incarnation, endpoints, rack };
    match image.brokers.get(&id) {
        Some(old) if old.incarnation != incarnation && !old.fenced && session_alive => {
            Err(ControllerError::DuplicateBrokerRegistration(id))
        }
        Some(old) if !old.fenced => {
            let fence = MetadataRecord::FenceBroker { id, epoch: old.epoch, controlled_shutdown: false };
            let mut records = with_leader_changes(image, fence, Some(id));
            records.push(register);
            Ok(records)
        }
        _ => Ok(vec![register]),
    }
}

/// Fencing broker `id` under `epoch` (its session expired, or it shuts down), with its
/// leaderships moved to live in-sync replicas; `None` if it is fenced already or `epoch` is
/// not its current registration.
pub fn fence(
    image: &MetadataImage,
    id: NodeId,
    epoch: i64,
    controlled_shutdown: bool,
) -> Option<Vec<MetadataRecord>> {
    let live = image.brokers.get(&id).is_some_and(|b| {
        b.epoch == epoch && if controlled_shutdown { !b.in_controlled_shutdown } else { !b.fenced }
    });
    let fence = MetadataRecord::FenceBroker { id, epoch, controlled_shutdown };
    live.then(|| with_leader_changes(image, fence, Some(id)))
}

/// Unfencing broker `id` once it has applied the metadata up to its own registration
/// (`applied`), with the leaderships it may take back; `None` when it is not fenced under
/// `epoch` or has not caught up.
pub fn unfence(image: &MetadataImage, id: NodeId, epoch: i64, applied: u64) -> Option<Vec<MetadataRecord>> {
    let due = image.brokers.get(&id).is_some_and(|b| b.fenced && b.epoch == epoch) && applied >= epoch as u64;
    let unfence = MetadataRecord::UnfenceBroker { id, epoch };
    due.then(|| with_leader_changes(image, unfence, None))
}

pub fn with_leader_changes(
    image: &MetadataImage,
    first: MetadataRecord,
    excluding: Option<NodeId>,
) -> Vec<MetadataRecord> {
    let mut next = image.clone();
    next.apply(image.applied + 1, std::slice::from_ref(&first), &mut Vec::new());
    let mut records = vec![first];
    records.extend(next.leader_changes(excluding));
    records
}

/// The PartitionChange an ISR change asks for, if it is current and sound.
pub fn check_alter_partition(
    img: &MetadataImage,
    broker: NodeId,
    a: &IsrChangeRequest,
) -> Result<MetadataRecord, ControllerError> {
    let name = format!("{}-{}", a.topic, a.partition);
    let p = img
        .topic(&a.topic)
        .and_then(|t| usize::try_from(a.partition).ok().and_then(|i| t.partitions.get(i)))
        .ok_or_else(|| ControllerError::UnknownTopic(format!("{name} does not exist")))?;
    if p.leader != broker {
        return Err(ControllerError::NotLeader(format!("broker {broker} does not lead {name}")));
    }
    if p.leader_epoch != a.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch(format!(
            "{name}: leader epoch {} is not the current {}",
            a.leader_epoch, p.leader_epoch
        )));
    }
    if p.partition_epoch != a.partition_epoch {
        return Err(ControllerError::InvalidUpdateVersion(format!(
            "{name}: partition epoch {} is not the current {}",
            a.partition_epoch, p.partition_epoch
        )));
    }
    if !a.isr.contains(&broker) {
        return Err(ControllerError::InvalidRequest(format!("{name}: the ISR must hold its leader")));
    }
    let added: Vec<NodeId> = a.isr.iter().copied().filter(|r| !p.isr.contains(r)).collect();
    if let Some(r) = a.isr.iter().find(|r| !p.replicas.contains(r)) {
        return Err(ControllerError::IneligibleReplica(format!("{name}: broker {r} is not a replica")));
    }
    if let Some(r) = added.iter().find(|r| !img.is_live(**r)) {
        return Err(ControllerError::IneligibleReplica(format!(
            "{name}: broker {r} is fenced or shutting down"
        )));
    }
    let mut isr = a.isr.clone();
    isr.dedup();
    // The ISR change that brings the last added replica in sync completes its move.
    let mut next = p.clone();
    next.isr = isr.clone();
    if let Some(done) = crate::reassign::complete(img, &next) {
        return Ok(crate::reassign::record(&a.topic, a.partition, &done));
    }
    Ok(MetadataRecord::PartitionChange {
        topic: a.topic.clone(),
        partition: a.partition,
        leader: p.leader,
        isr,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::records::{LeaderEpoch, PartitionState, TopicRecord};

    /// Brokers 1 and 2, unfenced, and a partition on both led by 1.
    fn cluster() -> MetadataImage {
        let mut img = MetadataImage::default();
        let mut index = 0;
        let mut apply = |img: &mut MetadataImage, records: Vec<MetadataRecord>| {
            index += 1;
            assert!(img.apply(index, &records, &mut Vec::new()).iter().all(Result::is_ok));
        };
        for id in [1, 2] {
            let records = register(&img, id, 1, Vec::new(), None, false).expect("registers");
            apply(&mut img, records);
            let epoch = img.brokers[&id].epoch;
            let records = unfence(&img, id, epoch, epoch as u64).expect("unfences");
            apply(&mut img, records);
        }
        let t = TopicRecord {
            name: "t".into(),
            id: 7,
            partitions: vec![PartitionState::new(vec![1, 2])],
            configs: BTreeMap::new(),
            internal: false,
        };
        apply(&mut img, vec![MetadataRecord::CreateTopic(t)]);
        img
    }

    #[test]
    fn a_new_incarnation_with_a_live_session_is_a_duplicate() {
        let img = cluster();
        assert!(matches!(
            register(&img, 1, 2, Vec::new(), None, true),
            Err(ControllerError::DuplicateBrokerRegistration(1))
        ));
    }

    /// Found by the replication simulation (seed 0): a broker that restarted after its
    /// session ran out but before the controller fenced it kept leading under its old leader
    /// epoch, so two processes with different logs appended under one epoch.
    #[test]
    fn a_new_incarnation_before_the_fence_moves_leadership_under_a_new_epoch() {
        let mut img = cluster();
        let old = img.partition("t", 0).cloned().expect("partition");
        assert_eq!((old.leader, old.leader_epoch), (1, LeaderEpoch(0)));
        let records = register(&img, 1, 2, Vec::new(), None, false).expect("registers");
        assert!(matches!(records.first(), Some(MetadataRecord::FenceBroker { id: 1, .. })));
        assert!(matches!(records.last(), Some(MetadataRecord::RegisterBroker { id: 1, incarnation: 2, .. })));
        let index = img.applied + 1;
        assert!(img.apply(index, &records, &mut Vec::new()).iter().all(Result::is_ok));
        let p = img.partition("t", 0).expect("partition");
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
        assert!(p.leader_epoch > old.leader_epoch);
        assert!(img.brokers[&1].fenced);
        // Unfenced once caught up, it does not take the leadership back under the old epoch.
        let epoch = img.brokers[&1].epoch;
        let records = unfence(&img, 1, epoch, epoch as u64).expect("unfences");
        img.apply(img.applied + 1, &records, &mut Vec::new());
        assert_ne!(img.partition("t", 0).map(|p| p.leader_epoch), Some(old.leader_epoch));
    }

    #[test]
    fn a_registration_after_the_fence_is_only_a_registration() {
        let mut img = cluster();
        let epoch = img.brokers[&1].epoch;
        let fenced = fence(&img, 1, epoch, false).expect("fences");
        img.apply(img.applied + 1, &fenced, &mut Vec::new());
        let records = register(&img, 1, 2, Vec::new(), None, false).expect("registers");
        assert_eq!(records.len(), 1);
        assert!(fence(&img, 1, epoch, false).is_none(), "fenced already");
    }
}
