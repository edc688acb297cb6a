//! riptide-model: the typed values every crate shares (Redpanda's `model::offset` idea): an
//! offset is not an epoch is not a producer id, and the compiler says so. Each type carries the
//! arithmetic its rules need and no more; the wire number is `.0` at the edges (Kafka's codec,
//! the log's bytes). Serialized as the bare number (`serde(transparent)`), so records that
//! carried an `i32` or `i64` before read the same.

use serde::{Deserialize, Serialize};

/// A position in a partition's log (Kafka's `offset`: i64). `Offset::NONE` (-1) is Kafka's
/// "no offset".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Offset(pub i64);

impl Offset {
    pub const NONE: Offset = Offset(-1);

    /// The offset `n` records later.
    pub fn plus(self, n: i64) -> Offset {
        Offset(self.0 + n)
    }

    /// The offset just before this one: the last offset of a log that ends here.
    pub fn prev(self) -> Offset {
        Offset(self.0 - 1)
    }

    /// Records from `self` up to (not including) `end`; 0 when `end` is not above.
    pub fn count_to(self, end: Offset) -> i64 {
        (end.0 - self.0).max(0)
    }

    pub fn is_none(self) -> bool {
        self.0 < 0
    }
}

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A partition's leader epoch (KIP-101/279): bumped by the controller at every leader change,
/// stamped on each batch a leader writes; never goes backwards on a replica. -1 is "unknown"
/// (a client that does not send one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    pub const UNKNOWN: LeaderEpoch = LeaderEpoch(-1);

    /// The epoch the next leader change gives.
    pub fn next(self) -> LeaderEpoch {
        LeaderEpoch(self.0 + 1)
    }

    pub fn is_known(self) -> bool {
        self.0 >= 0
    }
}

impl std::fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a leader epoch ends in a log (Kafka's OffsetForLeaderEpoch answer and Fetch's
/// DivergingEpoch): the largest epoch at or below the one asked for, and the offset after its
/// last batch. `UNDEFINED` (-1, -1) when the log knows no such epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub epoch: LeaderEpoch,
    pub end_offset: Offset,
}

impl EpochEndOffset {
    pub const UNDEFINED: EpochEndOffset =
        EpochEndOffset { epoch: LeaderEpoch::UNKNOWN, end_offset: Offset::NONE };

    pub fn is_defined(self) -> bool {
        self.epoch.is_known() || !self.end_offset.is_none()
    }
}

/// An idempotent or transactional producer's id (InitProducerId); -1 for none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProducerId(pub i64);

impl ProducerId {
    pub const NONE: ProducerId = ProducerId(-1);
}

/// A producer id's epoch (fencing older instances of one producer); -1 for none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProducerEpoch(pub i16);

impl ProducerEpoch {
    pub const NONE: ProducerEpoch = ProducerEpoch(-1);

    /// The epoch a bump gives (KIP-360), or `None` when the epochs of this producer id are
    /// used up (the producer then needs a new id).
    pub fn bumped(self) -> Option<ProducerEpoch> {
        (self.0 >= 0 && self.0 < i16::MAX - 1).then(|| ProducerEpoch(self.0 + 1))
    }
}

impl std::fmt::Display for ProducerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for ProducerEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A broker's or controller's node id (`node.id`; Kafka's i32 broker id), one width for the
/// metadata quorum and the brokers. -1 is "no node" (a partition without a leader).
pub type NodeId = i32;

/// A topic's partition by name and index. Serialized as the `(topic, partition)` pair the
/// controller protocol carried before it had a name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "(String, i32)", into = "(String, i32)")]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl From<(String, i32)> for TopicPartition {
    fn from((topic, partition): (String, i32)) -> TopicPartition {
        TopicPartition { topic, partition }
    }
}

impl From<TopicPartition> for (String, i32) {
    fn from(tp: TopicPartition) -> (String, i32) {
        (tp.topic, tp.partition)
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_and_order() {
        assert_eq!(Offset(5).plus(3), Offset(8));
        assert_eq!(Offset(5).count_to(Offset(8)), 3);
        assert_eq!(Offset(8).count_to(Offset(5)), 0);
        assert_eq!(Offset(8).prev(), Offset(7));
        assert!(Offset::NONE.is_none() && !Offset(0).is_none());
        assert!(!EpochEndOffset::UNDEFINED.is_defined());
        assert!(EpochEndOffset { epoch: LeaderEpoch::UNKNOWN, end_offset: Offset(4) }.is_defined());
        assert!(LeaderEpoch(3).next() > LeaderEpoch(3));
        assert!(!LeaderEpoch::UNKNOWN.is_known());
        assert_eq!(ProducerEpoch(0).bumped(), Some(ProducerEpoch(1)));
        assert_eq!(ProducerEpoch::NONE.bumped(), None);
        assert_eq!(ProducerEpoch(i16::MAX - 1).bumped(), None);
        assert_eq!(TopicPartition::new("t", 2).to_string(), "t-2");
    }

    /// Records and the controller protocol read the same as when these were bare numbers
    /// and pairs.
    #[test]
    fn serialized_as_the_bare_values() {
        fn json<T: Serialize>(v: &T) -> String {
            serde_json::to_string(v).expect("serializes")
        }
        assert_eq!(json(&Offset(5)), "5");
        assert_eq!(json(&LeaderEpoch(-1)), "-1");
        assert_eq!(json(&TopicPartition::new("t", 2)), r#"["t",2]"#);
        let tp: TopicPartition = serde_json::from_str(r#"["t",2]"#).expect("pair");
        assert_eq!(tp, TopicPartition::new("t", 2));
    }
}
