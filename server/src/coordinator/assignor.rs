//! Server-side partition assignors for KIP-848 consumer groups: `uniform` (the default:
//! balanced and sticky, so a membership change moves only the partitions that must move) and
//! `range` (per topic, contiguous ranges in member-id order, like the classic range assignor).
//!
//! Pure functions of (members and their subscriptions, partition counts, previous target).

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Partitions by topic name.
pub type TopicPartitions = BTreeMap<String, BTreeSet<i32>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

impl Assignor {
    pub fn parse(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The target assignment of every member. `subscriptions` maps member id → topics;
    /// `partitions` maps topic → partition count (topics that don't exist are absent).
    pub fn assign(
        self,
        subscriptions: &BTreeMap<String, BTreeSet<String>>,
        partitions: &BTreeMap<String, i32>,
        previous: &HashMap<String, TopicPartitions>,
    ) -> HashMap<String, TopicPartitions> {
        match self {
            Assignor::Uniform => uniform(subscriptions, partitions, previous),
            Assignor::Range => range(subscriptions, partitions),
        }
    }
}

fn range(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partitions: &BTreeMap<String, i32>,
) -> HashMap<String, TopicPartitions> {
    let mut out: HashMap<String, TopicPartitions> =
        subscriptions.keys().map(|m| (m.clone(), TopicPartitions::new())).collect();
    for (topic, count) in partitions {
        let subscribers: Vec<&String> =
            subscriptions.iter().filter(|(_, topics)| topics.contains(topic)).map(|(m, _)| m).collect();
        if subscribers.is_empty() || *count <= 0 {
            continue;
        }
        let k = subscribers.len() as i32;
        let (per, extra) = (count / k, count % k);
        let mut start = 0;
        for (i, m) in subscribers.into_iter().enumerate() {
            let len = per + i32::from((i as i32) < extra);
            if len > 0 {
                out.entry(m.clone()).or_default().insert(topic.clone(), (start..start + len).collect());
            }
            start += len;
        }
    }
    out
}

fn uniform(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partitions: &BTreeMap<String, i32>,
    previous: &HashMap<String, TopicPartitions>,
) -> HashMap<String, TopicPartitions> {
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut counts: BTreeMap<&String, usize> = subscriptions.keys().map(|m| (m, 0)).collect();
    if subscriptions.is_empty() {
        return HashMap::new();
    }
    let all: Vec<(String, i32)> = partitions
        .iter()
        .filter(|(t, _)| subscriptions.values().any(|s| s.contains(*t)))
        .flat_map(|(t, n)| (0..(*n).max(0)).map(move |p| (t.clone(), p)))
        .collect();
    let cap = all.len().div_ceil(subscriptions.len());
    let eligible = |m: &String, topic: &str| subscriptions.get(m).is_some_and(|s| s.contains(topic));
    let previous_owner: HashMap<(&str, i32), &String> = previous
        .iter()
        .flat_map(|(m, tps)| {
            tps.iter().flat_map(move |(t, ps)| ps.iter().map(move |p| ((t.as_str(), *p), m)))
        })
        .collect();
    // 1. Sticky: a partition stays with its previous owner while that owner is under the cap.
    let mut unassigned = Vec::new();
    for tp in all {
        let keeper = previous_owner
            .get(&(tp.0.as_str(), tp.1))
            .filter(|m| eligible(m, &tp.0) && counts.get(**m).is_some_and(|c| *c < cap))
            .map(|m| (*m).clone());
        match keeper {
            Some(m) => {
                if let Some(c) = counts.get_mut(&m) {
                    *c += 1;
                }
                owner.insert(tp, m);
            }
            None => unassigned.push(tp),
        }
    }
    // 2. The rest go to the least loaded eligible member.
    for tp in unassigned {
        let choice = counts.iter().filter(|(m, _)| eligible(m, &tp.0)).min_by_key(|(_, c)| **c); // ties: the first member id
        if let Some((m, _)) = choice {
            let m = (*m).clone();
            if let Some(c) = counts.get_mut(&m) {
                *c += 1;
            }
            owner.insert(tp, m);
        }
    }
    // 3. Even out what stickiness left uneven (only possible moves: eligible topics).
    for _ in 0..owner.len() {
        let mut by_load: Vec<(&String, usize)> = counts.iter().map(|(m, c)| (*m, *c)).collect();
        by_load.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut moved = false;
        'search: for (hi, hi_count) in &by_load {
            for (lo, lo_count) in by_load.iter().rev() {
                if hi_count <= &(lo_count + 1) {
                    continue;
                }
                let candidate =
                    owner.iter().find(|(tp, m)| m == hi && eligible(lo, &tp.0)).map(|(tp, _)| tp.clone());
                if let Some(tp) = candidate {
                    owner.insert(tp, (*lo).clone());
                    moved = true;
                    let (hi, lo) = ((*hi).clone(), (*lo).clone());
                    if let Some(c) = counts.get_mut(&hi) {
                        *c -= 1;
                    }
                    if let Some(c) = counts.get_mut(&lo) {
                        *c += 1;
                    }
                    break 'search;
                }
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: HashMap<String, TopicPartitions> =
        subscriptions.keys().map(|m| (m.clone(), TopicPartitions::new())).collect();
    for ((topic, p), m) in owner {
        out.entry(m).or_default().entry(topic).or_default().insert(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        members.iter().map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect())).collect()
    }

    fn count(a: &HashMap<String, TopicPartitions>, m: &str) -> usize {
        a.get(m).map_or(0, |tps| tps.values().map(BTreeSet::len).sum())
    }

    fn every_partition_once(a: &HashMap<String, TopicPartitions>, topics: &BTreeMap<String, i32>) {
        let mut seen = BTreeSet::new();
        for tps in a.values() {
            for (t, ps) in tps {
                for p in ps {
                    assert!(seen.insert((t.clone(), *p)), "{t}-{p} assigned twice");
                }
            }
        }
        let expected: usize = topics.values().map(|n| *n as usize).sum();
        assert_eq!(seen.len(), expected);
    }

    #[test]
    fn range_splits_each_topic_in_member_order() {
        let topics = BTreeMap::from([("t".to_string(), 7)]);
        let a = Assignor::Range.assign(
            &subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]),
            &topics,
            &HashMap::new(),
        );
        assert_eq!(a["a"]["t"], BTreeSet::from([0, 1, 2]));
        assert_eq!(a["b"]["t"], BTreeSet::from([3, 4]));
        assert_eq!(a["c"]["t"], BTreeSet::from([5, 6]));
        every_partition_once(&a, &topics);
    }

    #[test]
    fn uniform_is_balanced_and_moves_only_what_must_move() {
        let topics = BTreeMap::from([("t".to_string(), 6), ("u".to_string(), 1)]);
        let two = subs(&[("a", &["t", "u"]), ("b", &["t", "u"])]);
        let first = Assignor::Uniform.assign(&two, &topics, &HashMap::new());
        every_partition_once(&first, &topics);
        assert_eq!((count(&first, "a"), count(&first, "b")), (4, 3));
        let three = subs(&[("a", &["t", "u"]), ("b", &["t", "u"]), ("c", &["t", "u"])]);
        let second = Assignor::Uniform.assign(&three, &topics, &first);
        every_partition_once(&second, &topics);
        let mut counts: Vec<usize> = ["a", "b", "c"].iter().map(|m| count(&second, m)).collect();
        counts.sort();
        assert_eq!(counts, vec![2, 2, 3]);
        // a and b only lost partitions; nothing moved between them.
        for m in ["a", "b"] {
            for (t, ps) in &second[m] {
                assert!(ps.is_subset(&first[m][t]), "{m} gained {t} partitions");
            }
        }
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let topics = BTreeMap::from([("t".to_string(), 4), ("u".to_string(), 4)]);
        let s = subs(&[("a", &["t"]), ("b", &["t", "u"]), ("c", &["u"])]);
        let a = Assignor::Uniform.assign(&s, &topics, &HashMap::new());
        every_partition_once(&a, &topics);
        assert!(a["a"].keys().all(|t| t == "t"));
        assert!(a["c"].keys().all(|t| t == "u"));
        assert!([count(&a, "a"), count(&a, "b"), count(&a, "c")].iter().all(|c| (2..=3).contains(c)));
        // Missing topics and empty groups are fine.
        let none = Assignor::Uniform.assign(&subs(&[("a", &["missing"])]), &topics, &HashMap::new());
        assert_eq!(count(&none, "a"), 0);
        assert!(Assignor::Uniform.assign(&BTreeMap::new(), &topics, &HashMap::new()).is_empty());
    }
}
