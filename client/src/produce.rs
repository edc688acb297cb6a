//! Producing to one topic. Records are partitioned (explicit partition, murmur2 of the key,
//! or sticky round-robin), gathered per partition into batches of at most
//! `batch_records_max` records / `batch_bytes_max` bytes, encoded as RecordBatch v2 with the
//! chosen compression, and sent to the partition's leader without waiting for earlier
//! answers: up to `in_flight_max` Produce requests are outstanding at once, pipelined on the
//! leader connections. `flush` waits for every answer.
//!
//! Contract: when `flush` returns `Ok`, every record handed to `send` is acknowledged per
//! `acks` (acks=0: written to the socket, since no answer exists). The first failed batch makes
//! `send`/`flush` return its error; no retries are made (leader moves surface as
//! NOT_LEADER_OR_FOLLOWER for the caller to handle).

use riptide_model::Offset;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use compio::runtime::JoinHandle;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::batch::{encode_batch, Compression, ProduceRecord};
use crate::client::{Client, TopicInfo};
use crate::connection::Connection;
use crate::error::{Error, KafkaCode, Result};
use crate::partitioner::Partitioner;

/// Kafka's `acks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// 0: no answer at all.
    None,
    /// 1: the leader wrote it.
    Leader,
    /// -1 ("all"): every in-sync replica has it.
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl std::str::FromStr for Acks {
    type Err = Error;

    fn from_str(s: &str) -> Result<Acks> {
        match s {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(Error::Invalid(format!("acks must be 0, 1 or all, not {other:?}"))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub acks: Acks,
    pub compression: Compression,
    pub batch_records_max: usize,
    pub batch_bytes_max: usize,
    pub in_flight_max: usize,
    pub timeout_ms: i32,
    /// Create the topic on first use if the broker allows it (Metadata auto-creation).
    pub auto_create_topic: bool,
}

impl Default for ProducerConfig {
    fn default() -> ProducerConfig {
        ProducerConfig {
            acks: Acks::All,
            compression: Compression::None,
            batch_records_max: 10_000,
            batch_bytes_max: 1 << 20,
            in_flight_max: 32,
            timeout_ms: 30_000,
            auto_create_topic: true,
        }
    }
}

/// What one acknowledged batch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    /// Offset of the batch's first record; -1 with acks=0.
    pub base_offset: riptide_model::Offset,
    pub records: usize,
}

struct Pending {
    records: Vec<ProduceRecord>,
    bytes: usize,
}

/// A producer for one topic; see the module header.
pub struct Producer<'c> {
    client: &'c Client,
    topic: TopicInfo,
    partitioner: Partitioner,
    config: ProducerConfig,
    buffers: HashMap<i32, Pending>,
    in_flight: VecDeque<JoinHandle<Result<Delivery>>>,
    delivered: Vec<Delivery>,
}

impl<'c> Producer<'c> {
    pub async fn new(client: &'c Client, topic: &str, config: ProducerConfig) -> Result<Producer<'c>> {
        let metadata = client.metadata(Some(&[topic]), config.auto_create_topic).await?;
        let mut info = metadata.require_topic(topic)?.clone();
        if info.partitions.is_empty() {
            // Just auto-created: leaders may take a moment to appear.
            compio::time::sleep(std::time::Duration::from_millis(200)).await;
            info = client.topic(topic).await?;
        }
        let partitions = i32::try_from(info.partitions.len()).unwrap_or(i32::MAX).max(1);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Ok(Producer {
            client,
            topic: info,
            partitioner: Partitioner::new(partitions, seed),
            config,
            buffers: HashMap::new(),
            in_flight: VecDeque::new(),
            delivered: Vec::new(),
        })
    }

    pub fn topic(&self) -> &TopicInfo {
        &self.topic
    }

    /// Queues a record; `partition` overrides the partitioner. Sends the partition's batch
    /// when it is full.
    pub async fn send(&mut self, partition: Option<i32>, record: ProduceRecord) -> Result<()> {
        let partition = match partition {
            Some(p) if self.topic.partitions.iter().any(|x| x.partition == p) => p,
            Some(p) => {
                return Err(Error::kafka(
                    KafkaCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                    format!("{}/{p}", self.topic.name),
                    Some("no such partition"),
                ));
            }
            None => self.partitioner.partition(record.key.as_deref()),
        };
        let size = record.key.as_ref().map_or(0, Bytes::len)
            + record.value.as_ref().map_or(0, Bytes::len)
            + record.headers.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len)).sum::<usize>()
            + 16;
        let pending =
            self.buffers.entry(partition).or_insert_with(|| Pending { records: Vec::new(), bytes: 0 });
        pending.records.push(record);
        pending.bytes += size;
        if pending.records.len() >= self.config.batch_records_max
            || pending.bytes >= self.config.batch_bytes_max
        {
            self.dispatch(partition).await?;
        }
        Ok(())
    }

    /// Sends every partially filled batch without waiting for the answers.
    pub async fn send_buffered(&mut self) -> Result<()> {
        let mut partitions: Vec<i32> = self.buffers.keys().copied().collect();
        partitions.sort_unstable();
        for p in partitions {
            self.dispatch(p).await?;
        }
        Ok(())
    }

    /// Sends everything buffered and waits for every answer; returns the deliveries since
    /// the last flush.
    pub async fn flush(&mut self) -> Result<Vec<Delivery>> {
        self.send_buffered().await?;
        while let Some(task) = self.in_flight.pop_front() {
            self.delivered.push(join(task).await?);
        }
        Ok(std::mem::take(&mut self.delivered))
    }

    async fn dispatch(&mut self, partition: i32) -> Result<()> {
        let Some(pending) = self.buffers.remove(&partition) else { return Ok(()) };
        if pending.records.is_empty() {
            return Ok(());
        }
        if pending.records[0].key.is_none() {
            self.partitioner.batch_closed();
        }
        let mut buf = BytesMut::with_capacity(pending.bytes + 128);
        encode_batch(&mut buf, &pending.records, self.config.compression)?;
        let connection = self.client.leader(&self.topic, partition).await?;
        let request = produce_request(&self.topic.name, partition, buf.freeze(), &self.config);
        let count = pending.records.len();
        while self.in_flight.len() >= self.config.in_flight_max.max(1) {
            if let Some(task) = self.in_flight.pop_front() {
                self.delivered.push(join(task).await?);
            }
        }
        let topic = self.topic.name.clone();
        let task = if self.config.acks == Acks::None {
            compio::runtime::spawn(async move {
                connection.send_oneway(&request).await?;
                Ok(Delivery { partition, base_offset: Offset(-1), records: count })
            })
        } else {
            compio::runtime::spawn(produce(connection, request, topic, partition, count))
        };
        self.in_flight.push_back(task);
        Ok(())
    }
}

impl Client {
    /// Sends `records` as one batch to `topic`/`partition`'s leader and waits for the answer:
    /// for callers that batch themselves (the broker's REST interface), without a Producer's
    /// buffers. acks=0 reports base offset -1.
    pub async fn send_batch(
        &self,
        topic: &TopicInfo,
        partition: i32,
        records: &[ProduceRecord],
        config: &ProducerConfig,
    ) -> Result<Delivery> {
        if records.is_empty() {
            return Err(Error::Invalid("an empty batch".into()));
        }
        let mut buf = BytesMut::with_capacity(256);
        encode_batch(&mut buf, records, config.compression)?;
        let connection = self.leader(topic, partition).await?;
        let request = produce_request(&topic.name, partition, buf.freeze(), config);
        if config.acks == Acks::None {
            connection.send_oneway(&request).await?;
            return Ok(Delivery { partition, base_offset: Offset(-1), records: records.len() });
        }
        produce(connection, request, topic.name.clone(), partition, records.len()).await
    }
}

async fn join(task: JoinHandle<Result<Delivery>>) -> Result<Delivery> {
    task.await.map_err(|_| Error::Invalid("produce task panicked".into()))?
}

fn produce_request(topic: &str, partition: i32, records: Bytes, config: &ProducerConfig) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(config.acks.wire())
        .with_timeout_ms(config.timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

async fn produce(
    connection: Rc<Connection>,
    request: ProduceRequest,
    topic: String,
    partition: i32,
    records: usize,
) -> Result<Delivery> {
    let response = connection.send(&request).await?;
    let answer = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition)
        .ok_or_else(|| Error::Invalid(format!("{topic}/{partition}: no answer in the Produce response")))?;
    if answer.error_code != 0 {
        let message = answer.error_message.as_deref().map(str::to_string).or_else(|| {
            answer
                .record_errors
                .first()
                .and_then(|e| e.batch_index_error_message.as_deref().map(str::to_string))
        });
        return Err(Error::kafka(
            answer.error_code,
            format!("produce to {topic}/{partition}"),
            message.as_deref(),
        ));
    }
    Ok(Delivery { partition, base_offset: Offset(answer.base_offset), records })
}
