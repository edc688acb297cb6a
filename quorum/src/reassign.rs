//! Partition reassignment as KRaft does it: a move first *adds* the target replicas (they
//! follow the leader and catch up), and only once every target replica is in the ISR does it
//! *remove* the old ones — in the same record that moves leadership off a removed leader. So the
//! ISR never holds fewer in-sync copies than it did before the move, and no acknowledged write
//! depends on a replica that is going away. Pure functions of the image: the controller writes
//! what they return.
//!
//! Also Kafka's ElectLeaders (preferred and unclean), which reassignment's leadership moves
//! share.

use std::collections::BTreeSet;

use crate::image::MetadataImage;
use crate::records::{MetadataRecord, NodeId, PartitionState, NO_LEADER};
use crate::rpc::ControllerError;

/// The record that starts moving `topic-partition` to `target` (which replaces a move in
/// progress), completing at once when nothing has to catch up; `None` when the partition
/// already has exactly that assignment.
pub fn start(
    img: &MetadataImage,
    topic: &str,
    partition: i32,
    target: &[NodeId],
) -> Result<Option<MetadataRecord>, ControllerError> {
    let p = existing(img, topic, partition)?;
    let distinct: BTreeSet<_> = target.iter().collect();
    if target.is_empty() || distinct.len() != target.len() {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "The replica assignment {target:?} must list distinct brokers"
        )));
    }
    if let Some(b) = target.iter().find(|b| !img.brokers.contains_key(b)) {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "The replica assignment {target:?} names broker {b}, which is not registered"
        )));
    }
    if !p.is_reassigning() && p.replicas == target {
        return Ok(None);
    }
    let original = p.original();
    let mut next = p.clone();
    next.replicas = target.to_vec();
    next.replicas.extend(original.iter().copied().filter(|r| !target.contains(r)));
    next.adding = target.iter().copied().filter(|r| !original.contains(r)).collect();
    next.removing = original.iter().copied().filter(|r| !target.contains(r)).collect();
    // A replica added by the replaced move that the new target drops goes at once.
    next.isr.retain(|r| next.replicas.contains(r));
    if next.isr.is_empty() {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "{topic}-{partition}: no in-sync replica would remain"
        )));
    }
    if !next.replicas.contains(&next.leader) {
        next.leader = first_live(img, &next.replicas, &next.isr);
    }
    let next = complete(img, &next).unwrap_or(next);
    Ok(Some(record(topic, partition, &next)))
}

/// The assignment once the move is done: every target replica is in the ISR (the added ones
/// caught up), so the removed replicas leave and a removed leader hands over to the first live
/// target replica. `None` while a target replica is still catching up, or when no target
/// replica could lead.
pub fn complete(img: &MetadataImage, p: &PartitionState) -> Option<PartitionState> {
    if !p.is_reassigning() {
        return None;
    }
    let target = p.target();
    if !target.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
    let mut done = p.clone();
    done.isr.retain(|r| target.contains(r));
    if !target.contains(&done.leader) || !img.is_live(done.leader) {
        done.leader = first_live(img, &target, &done.isr);
        if done.leader == NO_LEADER {
            return None;
        }
    }
    done.replicas = target;
    done.adding.clear();
    done.removing.clear();
    Some(done)
}

/// Cancels the move in progress: back to the original replicas (Kafka's revert), the added
/// ones leave.
pub fn cancel(img: &MetadataImage, topic: &str, partition: i32) -> Result<MetadataRecord, ControllerError> {
    let p = existing(img, topic, partition)?;
    if !p.is_reassigning() {
        return Err(ControllerError::NoReassignmentInProgress(format!(
            "{topic}-{partition} has no reassignment in progress"
        )));
    }
    let mut back = p.clone();
    back.replicas = p.original();
    back.isr.retain(|r| back.replicas.contains(r));
    if back.isr.is_empty() {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "{topic}-{partition}: none of the original replicas {:?} is in sync; the move cannot be undone",
            back.replicas
        )));
    }
    if !back.replicas.contains(&back.leader) || !img.is_live(back.leader) {
        back.leader = first_live(img, &back.replicas, &back.isr);
    }
    back.adding.clear();
    back.removing.clear();
    Ok(record(topic, partition, &back))
}

/// Records completing every move that can complete now (the periodic sweep: an ISR change
/// or a leader change may have made it possible).
pub fn completions(img: &MetadataImage) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for t in img.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            if let Some(done) = complete(img, p) {
                out.push(record(&t.name, i as i32, &done));
            }
        }
    }
    out
}

/// Kafka's ElectLeaders for one partition: `unclean` elects any live replica when the
/// partition has no leader; otherwise the preferred replica (the first) takes over when it is
/// live and in sync.
pub fn elect(
    img: &MetadataImage,
    topic: &str,
    partition: i32,
    unclean: bool,
) -> Result<MetadataRecord, ControllerError> {
    let p = existing(img, topic, partition)?;
    let change = |leader: NodeId, isr: Vec<NodeId>| MetadataRecord::PartitionChange {
        topic: topic.to_string(),
        partition,
        leader,
        isr,
    };
    if unclean {
        if p.leader != NO_LEADER && img.is_live(p.leader) {
            return Err(ControllerError::ElectionNotNeeded(format!("{topic}-{partition} has a leader")));
        }
        let (leader, isr) = img.elect_with_isr(p, None, true);
        if leader == NO_LEADER {
            return Err(ControllerError::EligibleLeadersNotAvailable(format!(
                "{topic}-{partition}: no replica of {:?} is live",
                p.replicas
            )));
        }
        return Ok(change(leader, isr));
    }
    let preferred = p.replicas.first().copied().unwrap_or(NO_LEADER);
    if p.leader == preferred {
        return Err(ControllerError::ElectionNotNeeded(format!(
            "{topic}-{partition}: the preferred replica {preferred} already leads"
        )));
    }
    if !img.is_live(preferred) || !p.isr.contains(&preferred) {
        return Err(ControllerError::PreferredLeaderNotAvailable(format!(
            "{topic}-{partition}: the preferred replica {preferred} is not live and in sync"
        )));
    }
    Ok(change(preferred, p.isr.clone()))
}

fn existing<'a>(
    img: &'a MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<&'a PartitionState, ControllerError> {
    img.partition(topic, partition)
        .ok_or_else(|| ControllerError::UnknownTopic(format!("{topic}-{partition} does not exist")))
}

/// The first of `candidates` that is live and in `isr`.
fn first_live(img: &MetadataImage, candidates: &[NodeId], isr: &[NodeId]) -> NodeId {
    candidates.iter().copied().find(|r| isr.contains(r) && img.is_live(*r)).unwrap_or(NO_LEADER)
}

pub fn record(topic: &str, partition: i32, p: &PartitionState) -> MetadataRecord {
    MetadataRecord::ReassignPartition {
        topic: topic.to_string(),
        partition,
        replicas: p.replicas.clone(),
        adding: p.adding.clone(),
        removing: p.removing.clone(),
        leader: p.leader,
        isr: p.isr.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BrokerState;
    use crate::records::TopicRecord;

    fn image(brokers: &[NodeId], replicas: Vec<NodeId>) -> MetadataImage {
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
        let t = TopicRecord {
            name: "t".into(),
            id: 1,
            partitions: vec![PartitionState::new(replicas)],
            configs: Default::default(),
            internal: false,
        };
        img.topics.insert("t".into(), t);
        img
    }

    fn apply(img: &mut MetadataImage, r: MetadataRecord) {
        let i = img.applied + 1;
        assert_eq!(img.apply(i, &[r], &mut Vec::new()), vec![Ok(())]);
    }

    fn state(img: &MetadataImage) -> PartitionState {
        img.topics["t"].partitions[0].clone()
    }

    #[test]
    fn a_move_adds_first_and_removes_only_when_the_new_replica_is_in_sync() {
        let mut img = image(&[1, 2, 3, 4], vec![1, 2, 3]);
        let r = start(&img, "t", 0, &[4, 2, 3]).expect("valid").expect("a change");
        apply(&mut img, r);
        let p = state(&img);
        assert_eq!(
            (p.replicas.clone(), p.adding.clone(), p.removing.clone()),
            (vec![4, 2, 3, 1], vec![4], vec![1])
        );
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]), "the old leader leads until the end");
        assert!(complete(&img, &p).is_none(), "4 is not in sync yet");
        assert!(completions(&img).is_empty());
        // The leader adds 4 to the ISR once it caught up: now the move completes.
        apply(
            &mut img,
            MetadataRecord::PartitionChange {
                topic: "t".into(),
                partition: 0,
                leader: 1,
                isr: vec![1, 2, 3, 4],
            },
        );
        let done = completions(&img);
        assert_eq!(done.len(), 1);
        apply(&mut img, done.into_iter().next().expect("one"));
        let p = state(&img);
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![4, 2, 3], vec![2, 3, 4], 4));
        assert!(!p.is_reassigning());
        assert_eq!(p.leader_epoch, crate::records::LeaderEpoch(1), "leadership moved once");
    }

    #[test]
    fn cancel_restores_the_original_replicas() {
        let mut img = image(&[1, 2, 3, 4], vec![1, 2, 3]);
        assert!(matches!(cancel(&img, "t", 0), Err(ControllerError::NoReassignmentInProgress(_))));
        let r = start(&img, "t", 0, &[1, 2, 4]).expect("ok").expect("change");
        apply(&mut img, r);
        let r = cancel(&img, "t", 0).expect("cancel");
        apply(&mut img, r);
        let p = state(&img);
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![1, 2, 3], vec![1, 2, 3], 1));
        assert!(!p.is_reassigning());
    }

    #[test]
    fn reorder_and_shrink_complete_at_once_and_bad_targets_are_refused() {
        let mut img = image(&[1, 2, 3], vec![1, 2, 3]);
        assert_eq!(start(&img, "t", 0, &[1, 2, 3]).expect("ok"), None);
        let r = start(&img, "t", 0, &[3, 1, 2]).expect("ok").expect("change");
        apply(&mut img, r);
        let p = state(&img);
        assert_eq!(
            (p.replicas.clone(), p.leader),
            (vec![3, 1, 2], 1),
            "preferred election moves the leader later"
        );
        let r = start(&img, "t", 0, &[3, 2]).expect("ok").expect("change");
        apply(&mut img, r);
        let p = state(&img);
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![3, 2], vec![2, 3], 3));
        assert!(matches!(start(&img, "t", 0, &[2, 2]), Err(ControllerError::InvalidReplicaAssignment(_))));
        assert!(matches!(start(&img, "t", 0, &[9]), Err(ControllerError::InvalidReplicaAssignment(_))));
        assert!(matches!(start(&img, "u", 0, &[1]), Err(ControllerError::UnknownTopic(_))));
    }

    #[test]
    fn elections_preferred_and_unclean() {
        let mut img = image(&[1, 2, 3], vec![1, 2, 3]);
        assert!(matches!(elect(&img, "t", 0, false), Err(ControllerError::ElectionNotNeeded(_))));
        apply(
            &mut img,
            MetadataRecord::PartitionChange { topic: "t".into(), partition: 0, leader: 2, isr: vec![2, 3] },
        );
        assert!(matches!(elect(&img, "t", 0, false), Err(ControllerError::PreferredLeaderNotAvailable(_))));
        apply(
            &mut img,
            MetadataRecord::PartitionChange {
                topic: "t".into(),
                partition: 0,
                leader: 2,
                isr: vec![1, 2, 3],
            },
        );
        let r = elect(&img, "t", 0, false).expect("preferred");
        apply(&mut img, r);
        assert_eq!(state(&img).leader, 1);
        assert!(matches!(elect(&img, "t", 0, true), Err(ControllerError::ElectionNotNeeded(_))));
        // Only 3 is live and it is out of the ISR: an unclean election makes it leader.
        for id in [1, 2] {
            img.brokers.get_mut(&id).expect("registered").fenced = true;
        }
        apply(
            &mut img,
            MetadataRecord::PartitionChange {
                topic: "t".into(),
                partition: 0,
                leader: NO_LEADER,
                isr: vec![1],
            },
        );
        let r = elect(&img, "t", 0, true).expect("unclean");
        apply(&mut img, r);
        assert_eq!((state(&img).leader, state(&img).isr), (3, vec![3]));
    }
}
