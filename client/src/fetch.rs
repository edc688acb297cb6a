//! Reading partitions: ListOffsets (earliest, latest, by timestamp) and Fetch (long poll,
//! read_uncommitted), each sent to the partition leaders, one request per leader.

use riptide_model::Offset;
use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::batch::{decode_batches, ConsumedRecord};
use crate::client::{Client, TopicInfo};
use crate::error::{Error, KafkaCode, Result};

/// Which offset ListOffsets should find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    /// The high watermark (end of the log for read_uncommitted).
    Latest,
    /// The last stable offset: the end of the log for read_committed (below the first open
    /// transaction).
    LastStable,
    /// The first offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest | OffsetSpec::LastStable => -1,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }

    fn isolation_level(self) -> i8 {
        i8::from(self == OffsetSpec::LastStable)
    }
}

/// Fetch tuning: the defaults are a console consumer's.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions { max_wait_ms: 500, min_bytes: 1, max_bytes: 50 << 20, partition_max_bytes: 1 << 20 }
    }
}

/// One partition's part of a Fetch answer.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    pub partition: i32,
    pub error: i16,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub records: Vec<ConsumedRecord>,
    /// Where the next fetch starts: past the last complete batch (control batches included).
    pub next_offset: Option<Offset>,
    /// Record bytes came back but not one whole batch: raise `partition_max_bytes`.
    pub incomplete: bool,
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

impl Client {
    /// The offset `spec` names for each partition (`-1` when a timestamp is past the end).
    pub async fn list_offsets(
        &self,
        topic: &TopicInfo,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, Offset>> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in partitions {
            let leader =
                topic.leader_of(*p).ok_or_else(|| Error::kafka(5, format!("{}/{p}", topic.name), None))?;
            by_leader.entry(leader).or_default().push(*p);
        }
        let mut out = BTreeMap::new();
        for (leader, ps) in by_leader {
            let connection = self.broker(leader).await?;
            let version = connection.version_for::<ListOffsetsRequest>()?;
            let mut request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                ListOffsetsTopic::default().with_name(name(&topic.name)).with_partitions(
                    ps.iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_timestamp(spec.wire())
                        })
                        .collect(),
                ),
            ]);
            if version >= 10 {
                request = request.with_timeout_ms(30_000);
            }
            if spec.isolation_level() == 1 && version < 2 {
                return Err(Error::Invalid("the broker's ListOffsets has no isolation level (v2+)".into()));
            }
            request = request.with_isolation_level(spec.isolation_level());
            let response = connection.send(&request).await?;
            for t in response.topics {
                for p in t.partitions {
                    KafkaCode::check(p.error_code, || {
                        format!("offsets of {}/{}", topic.name, p.partition_index)
                    })?;
                    out.insert(p.partition_index, Offset(p.offset));
                }
            }
        }
        for p in partitions {
            if !out.contains_key(p) {
                return Err(Error::Invalid(format!(
                    "{}/{p}: no offset in the ListOffsets answer",
                    topic.name
                )));
            }
        }
        Ok(out)
    }

    /// One Fetch to `leader` for `(partition, offset)` pairs of `topic`.
    pub async fn fetch(
        &self,
        leader: i32,
        topic: &str,
        positions: &[(i32, Offset)],
        options: FetchOptions,
    ) -> Result<Vec<FetchedPartition>> {
        let connection = self.broker(leader).await?;
        let request = FetchRequest::default()
            .with_max_wait_ms(options.max_wait_ms)
            .with_min_bytes(options.min_bytes)
            .with_max_bytes(options.max_bytes)
            .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(
                positions
                    .iter()
                    .map(|(p, offset)| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(offset.0)
                            .with_partition_max_bytes(options.partition_max_bytes)
                    })
                    .collect(),
            )]);
        let extra = Duration::from_millis(options.max_wait_ms.max(0) as u64);
        let response = connection.send_with_extra_time(&request, extra).await?;
        KafkaCode::check(response.error_code, || format!("fetch from {topic}"))?;
        let mut out = Vec::with_capacity(positions.len());
        for t in response.responses {
            for p in t.partitions {
                let from = positions.iter().find(|(x, _)| *x == p.partition_index).map_or(0, |(_, o)| o.0);
                let bytes = p.records.unwrap_or_default();
                let had_bytes = !bytes.is_empty();
                let decoded = decode_batches(bytes, Offset(from))?;
                out.push(FetchedPartition {
                    partition: p.partition_index,
                    error: p.error_code,
                    high_watermark: Offset(p.high_watermark),
                    log_start_offset: Offset(p.log_start_offset),
                    incomplete: had_bytes && decoded.next_offset.is_none(),
                    records: decoded.records,
                    next_offset: decoded.next_offset,
                });
            }
        }
        Ok(out)
    }
}
