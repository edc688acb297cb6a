//! What DescribeConfigs says about each config beyond its value: its documentation, and for a
//! topic config the broker configs that set its default (Kafka's synonyms, in Kafka's order of
//! precedence: `retention.ms` defaults to `log.retention.ms`, then `log.retention.minutes`,
//! then `log.retention.hours`).

/// (topic config, broker synonyms, documentation).
const TOPIC: &[(&str, &[&str], &str)] = &[
    (
        "cleanup.policy",
        &["log.cleanup.policy"],
        "A list of \"delete\" and \"compact\": \"delete\" drops old segments by retention time or size, \
         \"compact\" keeps the latest record of every key.",
    ),
    (
        "compression.gzip.level",
        &["compression.gzip.level"],
        "The gzip level (1-9, -1: the default) when compression.type is gzip.",
    ),
    (
        "compression.lz4.level",
        &["compression.lz4.level"],
        "The lz4 level (1-17) when compression.type is lz4 (riptide compresses lz4 at one speed).",
    ),
    (
        "compression.zstd.level",
        &["compression.zstd.level"],
        "The zstd level (-131072..22) when compression.type is zstd.",
    ),
    (
        "compression.type",
        &["compression.type"],
        "The final compression of the topic's batches: \"producer\" keeps what the producer sent; \
         uncompressed, gzip, snappy, lz4 or zstd.",
    ),
    (
        "delete.retention.ms",
        &["log.cleaner.delete.retention.ms"],
        "How long tombstones are kept on a compacted topic, so that consumers that read from the start see them.",
    ),
    (
        "durability.policy",
        &["durability.policy"],
        "When acks=1/all producers are answered (riptide): fsync (on disk), replicated (in memory on the \
         in-sync replicas, Kafka's behaviour) or none.",
    ),
    (
        "encryption.at.rest",
        &[],
        "Encrypts the topic's segment files with the broker's key (riptide): false, true (the current key) \
         or a key id.",
    ),
    ("file.delete.delay.ms", &["log.segment.delete.delay.ms"], "How long to wait before deleting a file from the file system."),
    (
        "flush.messages",
        &["log.flush.interval.messages"],
        "Records appended before a forced fsync (riptide's durability.policy governs fsyncs instead).",
    ),
    (
        "flush.ms",
        &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
        "Time before a forced fsync (riptide's durability.policy governs fsyncs instead).",
    ),
    ("index.interval.bytes", &["log.index.interval.bytes"], "How often an offset index entry is added, in bytes of log."),
    (
        "max.compaction.lag.ms",
        &["log.cleaner.max.compaction.lag.ms"],
        "The longest a record may stay uncompacted.",
    ),
    (
        "max.message.bytes",
        &["message.max.bytes"],
        "The largest record batch the topic accepts (after compression).",
    ),
    (
        "message.downconversion.enable",
        &["log.message.downconversion.enable"],
        "Whether old consumers get batches down-converted to their message format.",
    ),
    (
        "message.timestamp.after.max.ms",
        &["log.message.timestamp.after.max.ms"],
        "How far a CreateTime timestamp may lie after the broker's time.",
    ),
    (
        "message.timestamp.before.max.ms",
        &["log.message.timestamp.before.max.ms"],
        "How far a CreateTime timestamp may lie before the broker's time.",
    ),
    (
        "message.timestamp.type",
        &["log.message.timestamp.type"],
        "CreateTime (the producer's timestamps) or LogAppendTime (the broker's).",
    ),
    (
        "min.cleanable.dirty.ratio",
        &["log.cleaner.min.cleanable.ratio"],
        "The share of a log that must be uncompacted before the cleaner runs on it.",
    ),
    (
        "min.compaction.lag.ms",
        &["log.cleaner.min.compaction.lag.ms"],
        "The shortest a record stays uncompacted.",
    ),
    (
        "min.insync.replicas",
        &["min.insync.replicas"],
        "With acks=all, the fewest in-sync replicas that must hold a batch before it is acknowledged.",
    ),
    ("preallocate", &["log.preallocate"], "Whether new segment files are preallocated."),
    (
        "retention.bytes",
        &["log.retention.bytes"],
        "The most bytes a partition keeps before old segments are deleted (-1: no limit).",
    ),
    (
        "retention.ms",
        &["log.retention.ms", "log.retention.minutes", "log.retention.hours"],
        "How long a record is kept before its segment may be deleted (-1: forever).",
    ),
    ("segment.bytes", &["log.segment.bytes"], "The size of a segment file: a segment this large is rolled."),
    (
        "segment.index.bytes",
        &["log.index.size.max.bytes"],
        "The size of the offset and time index files of a segment.",
    ),
    (
        "segment.jitter.ms",
        &["log.roll.jitter.ms", "log.roll.jitter.hours"],
        "A random jitter subtracted from segment.ms, so that segments do not all roll at once.",
    ),
    (
        "segment.ms",
        &["log.roll.ms", "log.roll.hours"],
        "The longest a segment stays open before it is rolled, even if not full.",
    ),
    (
        "unclean.leader.election.enable",
        &["unclean.leader.election.enable"],
        "Whether a replica outside the in-sync set may become leader when no in-sync one is left (data may be lost).",
    ),
];

/// Documentation of the broker configs DescribeConfigs reports.
const BROKER: &[(&str, &str)] = &[
    ("node.id", "The id of this node in the cluster."),
    ("broker.id", "The id of this broker (the same as node.id)."),
    ("log.dirs", "The directory the broker keeps its logs and metadata in."),
    ("listeners", "The listeners, as NAME://host:port."),
    ("num.partitions", "The partitions of a topic created without a count."),
    ("default.replication.factor", "The replication factor of a topic created without one."),
    ("min.insync.replicas", "The default min.insync.replicas of topics."),
    (
        "replica.lag.time.max.ms",
        "A follower that has not caught up for this long leaves the in-sync replicas.",
    ),
    ("replica.fetch.max.bytes", "The bytes a follower asks for per partition in one fetch."),
    ("replica.fetch.wait.max.ms", "How long a follower's fetch waits at the leader for new data."),
    (
        "auto.create.topics.enable",
        "Whether a topic is created when a client asks for one that does not exist.",
    ),
    ("socket.request.max.bytes", "The largest request the broker reads."),
    ("message.max.bytes", "The default largest record batch of topics (their max.message.bytes)."),
    ("log.retention.ms", "The default retention.ms of topics."),
    ("log.retention.bytes", "The default retention.bytes of topics."),
    ("log.segment.bytes", "The default segment.bytes of topics."),
    ("log.roll.ms", "The default segment.ms of topics."),
    ("log.retention.check.interval.ms", "How often retention is enforced."),
    ("durability.policy", "The default durability.policy of topics (riptide)."),
];

/// The broker configs that set a topic config's default, most specific first.
pub fn topic_synonyms(name: &str) -> &'static [&'static str] {
    TOPIC.iter().find(|(n, _, _)| *n == name).map_or(&[], |(_, s, _)| s)
}

pub fn topic_doc(name: &str) -> Option<&'static str> {
    TOPIC.iter().find(|(n, _, _)| *n == name).map(|(_, _, d)| *d)
}

pub fn broker_doc(name: &str) -> Option<&'static str> {
    BROKER.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_config_is_documented() {
        let d = crate::config::TopicDefaults::default();
        for (name, _) in super::super::topic_config_defaults(&d) {
            assert!(topic_doc(name).is_some(), "{name}");
        }
    }
}
