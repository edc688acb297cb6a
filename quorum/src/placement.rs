//! Replica placement for new partitions: each partition's leader goes to the live broker (not
//! being decommissioned) that leads the fewest partitions so far (cluster-wide, counting what
//! is being placed), and its followers to the least loaded brokers on racks the partition does
//! not use yet. The result is an even spread of partitions and leaders, rack-aware when racks
//! are set.

use std::collections::{BTreeMap, BTreeSet};

use crate::image::MetadataImage;
use crate::records::NodeId;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("Replication factor: {rf} larger than available brokers: {live}.")]
    NotEnoughBrokers { rf: usize, live: usize },
}

/// Replica lists for `count` new partitions with `rf` replicas each.
pub fn place(image: &MetadataImage, count: usize, rf: usize) -> Result<Vec<Vec<NodeId>>, PlacementError> {
    let live: Vec<(NodeId, Option<String>)> =
        image.placeable_brokers().map(|b| (b.id, b.rack.clone())).collect();
    if rf == 0 || rf > live.len() {
        return Err(PlacementError::NotEnoughBrokers { rf, live: live.len() });
    }
    let mut leaders: BTreeMap<NodeId, usize> = live.iter().map(|(id, _)| (*id, 0)).collect();
    let mut replicas = leaders.clone();
    for t in image.topics.values() {
        for p in &t.partitions {
            if let Some(n) = leaders.get_mut(&p.replicas.first().copied().unwrap_or(-1)) {
                *n += 1;
            }
            for r in &p.replicas {
                if let Some(n) = replicas.get_mut(r) {
                    *n += 1;
                }
            }
        }
    }
    let rack_of: BTreeMap<NodeId, Option<String>> = live.into_iter().collect();
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        // Fewest leaderships, then fewest replicas, then lowest id: deterministic and even.
        let leader = *leaders
            .iter()
            .min_by_key(|(id, n)| (**n, replicas[*id], **id))
            .map(|(id, _)| id)
            .expect("live brokers checked non-empty");
        let mut chosen = vec![leader];
        let mut racks: BTreeSet<Option<String>> = BTreeSet::from([rack_of[&leader].clone()]);
        while chosen.len() < rf {
            let next = *replicas
                .iter()
                .filter(|(id, _)| !chosen.contains(id))
                .min_by_key(|(id, n)| {
                    let same_rack = rack_of[*id].is_some() && racks.contains(&rack_of[*id]);
                    (same_rack, **n, **id)
                })
                .map(|(id, _)| id)
                .expect("rf <= live brokers");
            racks.insert(rack_of[&next].clone());
            chosen.push(next);
        }
        *leaders.get_mut(&leader).expect("live") += 1;
        for r in &chosen {
            *replicas.get_mut(r).expect("live") += 1;
        }
        out.push(chosen);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BrokerState;

    fn image(brokers: &[(NodeId, Option<&str>)]) -> MetadataImage {
        let mut img = MetadataImage::default();
        for (id, rack) in brokers {
            img.brokers.insert(
                *id,
                BrokerState {
                    id: *id,
                    incarnation: 1,
                    epoch: 1,
                    endpoints: vec![],
                    rack: rack.map(String::from),
                    fenced: false,
                    in_controlled_shutdown: false,
                },
            );
        }
        img
    }

    #[test]
    fn leaders_and_replicas_spread_evenly() {
        let img = image(&[(1, None), (2, None), (3, None)]);
        let placed = place(&img, 50, 1).expect("place");
        let mut count = BTreeMap::new();
        for r in &placed {
            *count.entry(r[0]).or_insert(0) += 1;
        }
        assert_eq!(count.values().copied().collect::<Vec<_>>(), vec![17, 17, 16]);
        let placed = place(&img, 6, 3).expect("place");
        for r in &placed {
            assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3, "{r:?}");
        }
        let leaders: BTreeSet<_> = placed.iter().map(|r| r[0]).collect();
        assert_eq!(leaders.len(), 3);
    }

    #[test]
    fn replicas_go_to_distinct_racks() {
        let img = image(&[(1, Some("a")), (2, Some("a")), (3, Some("b")), (4, Some("b"))]);
        for r in place(&img, 8, 2).expect("place") {
            let racks: BTreeSet<_> = r.iter().map(|id| img.brokers[id].rack.clone()).collect();
            assert_eq!(racks.len(), 2, "{r:?}");
        }
    }

    #[test]
    fn too_few_brokers_is_refused() {
        let img = image(&[(1, None)]);
        assert_eq!(place(&img, 1, 3), Err(PlacementError::NotEnoughBrokers { rf: 3, live: 1 }));
    }
}
