//! One open-loop producer: it follows its `Schedule`, putting each message into the open
//! batch at (or, when it fell behind, as soon as possible after) the message's intended time,
//! and sends the batch when it is full or its first message has lingered `linger`. Up to
//! `in_flight_max` Produce requests are outstanding; when all are, the producer waits for the
//! oldest answer and the messages falling due meanwhile are owed, not forgotten: they keep
//! their intended times, so the wait shows in their latency (no coordinated omission).
//!
//! Partitioning is Kafka's sticky partitioner for keyless messages (`keyDistributor:
//! NO_KEY`): a batch goes to one partition, the next batch to the next partition. Keyed
//! messages (`KEY_ROUND_ROBIN`, `RANDOM_NANO`, see `keys`) go to their key's murmur2 partition,
//! so each request carries a small batch per partition, as keyed records make a Kafka producer
//! do.
//!
//! With no rate (`producerRate: 0`) there is no schedule: batches are filled as soon as a
//! request slot frees, and latency counts from when a message was put in its batch. That is a
//! closed loop; its latencies describe a saturated pipeline, not a user's experience.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use compio::runtime::JoinHandle;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use riptide_client::batch::BATCH_HEADER_BYTES;
use riptide_client::{Acks, Client, Compression, TopicInfo};

use crate::backlog::Gate;
use crate::clock::{instant_at, now_ns, unix_ms};
use crate::keys::{KeyDistributor, Keys, KEY_BYTES};
use crate::records::{record_bytes, BatchBuilder};
use crate::schedule::{next_wake_ns, Schedule};
use crate::stats::Recorder;

/// Everything one producer needs to know.
pub struct ProducerPlan {
    /// Index among this thread's producers (for the recorder's lag gauge).
    pub index: usize,
    pub topic: String,
    pub schedule: Schedule,
    pub end_ns: u64,
    pub template: Vec<u8>,
    pub run_tag: u64,
    pub acks: Acks,
    pub compression: Compression,
    pub batch_bytes_max: usize,
    pub linger: Duration,
    pub in_flight_max: usize,
    pub first_partition: usize,
    pub key_distributor: KeyDistributor,
    /// Seeds the key pool (the same for every producer of a run) and this producer's cursor.
    pub key_seed: u64,
    pub key_cursor_seed: u64,
    /// The backlog test's live counts (acknowledged messages).
    pub gate: Option<Gate>,
}

const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// How long a producer still behind its schedule at the end keeps sending the messages it
/// owes (they count, with their latency from the intended time); what is left after that is
/// counted as failed (`UNSENT_BEHIND_SCHEDULE`), never dropped silently.
const UNSENT_GRACE: Duration = Duration::from_secs(5);
/// How long to wait for outstanding answers after the end.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure's kind for the error counts: the Kafka error name, or the kind of network failure.
pub fn error_kind(e: &riptide_client::Error) -> String {
    use riptide_client::Error as E;
    match e {
        E::Kafka { code, .. } => code.name(),
        E::Unreachable { .. } => "UNREACHABLE".into(),
        E::Disconnected { .. } => "DISCONNECTED".into(),
        E::Timeout { .. } => "CLIENT_TIMEOUT".into(),
        E::UnsupportedVersion { .. } => "UNSUPPORTED_VERSION".into(),
        E::Protocol { .. } => "PROTOCOL_ERROR".into(),
        E::Invalid(_) => "INVALID".into(),
    }
}

/// Messages per batch so that a full batch, header included, stays within `batch_bytes_max`
/// (brokers refuse batches above `max.message.bytes`, 1 MiB + 12 by default), counting every
/// record at its largest encoding; at least one.
pub fn batch_room(batch_bytes_max: usize, key_bytes: Option<usize>, message_bytes: usize) -> u64 {
    let per_record = record_bytes(u32::MAX, key_bytes, message_bytes);
    (batch_bytes_max.saturating_sub(BATCH_HEADER_BYTES) / per_record).max(1) as u64
}

struct Producer {
    client: Rc<Client>,
    topic: TopicInfo,
    plan: ProducerPlan,
    recorder: Rc<RefCell<Recorder>>,
    /// The open request's batches: one (sticky partitioning), or one per partition of the topic
    /// in partition order (keyed), each with the intended times of its messages.
    slots: Vec<Slot>,
    keys: Keys,
    /// Messages in the open request, and the intended time of its first one (linger).
    open: u64,
    first_intended: Option<u64>,
    /// Messages that fit one batch.
    room_max: u64,
    partition_cursor: usize,
    in_flight: VecDeque<JoinHandle<()>>,
    /// Messages put into batches so far (the schedule index of the next one).
    sent: u64,
}

/// One partition's batch in the open request.
struct Slot {
    batch: BatchBuilder,
    intended: Vec<u64>,
}

/// Bytes reserved up front for each batch of a keyed request (they grow as needed): a
/// thousand partitions must not reserve `batchSizeBytes` each.
const KEYED_BATCH_RESERVE_BYTES: usize = 16 << 10;

/// Runs the producer until `plan.end_ns`, then waits for its outstanding answers.
pub async fn run(client: Rc<Client>, topic: TopicInfo, plan: ProducerPlan, recorder: Rc<RefCell<Recorder>>) {
    let keyed = plan.key_distributor.is_keyed();
    let room_max = batch_room(plan.batch_bytes_max, keyed.then_some(KEY_BYTES), plan.template.len());
    let partitions = topic.partitions.len().max(1);
    let slot_count = if keyed { partitions } else { 1 };
    let reserve =
        if keyed { plan.batch_bytes_max.min(KEYED_BATCH_RESERVE_BYTES) } else { plan.batch_bytes_max };
    let mut keys = Keys::new(plan.key_distributor, plan.key_seed, plan.key_cursor_seed, partitions);
    keys.start_at(plan.key_cursor_seed as usize);
    let slots = (0..slot_count)
        .map(|_| Slot { batch: BatchBuilder::new(plan.compression, reserve), intended: Vec::new() })
        .collect();
    let mut p = Producer {
        client,
        slots,
        keys,
        open: 0,
        first_intended: None,
        room_max,
        partition_cursor: plan.first_partition,
        in_flight: VecDeque::new(),
        sent: 0,
        topic,
        plan,
        recorder,
    };
    if p.plan.schedule.is_unbounded() {
        p.run_unbounded().await;
    } else {
        p.run_scheduled().await;
    }
    p.drain().await;
}

impl Producer {
    /// True when the next message would not fit its batch.
    fn full(&self) -> bool {
        let slot = &self.slots[self.next_slot()];
        slot.intended.len() as u64 >= self.room_max
    }

    /// The slot the next message goes to: its key's partition, else the one open batch.
    fn next_slot(&self) -> usize {
        self.keys.next_partition().unwrap_or(0)
    }

    /// Messages that surely fit before some batch is full: the fullest batch's room (keyed
    /// messages may all go to it), which wakes the producer no later than it must.
    fn room(&self) -> u64 {
        let fullest = self.slots.iter().map(|s| s.intended.len() as u64).max().unwrap_or(0);
        self.room_max.saturating_sub(fullest)
    }

    async fn run_scheduled(&mut self) {
        let schedule = self.plan.schedule;
        let end = self.plan.end_ns;
        let last_due = schedule.due(end.saturating_sub(1));
        let linger_ns = self.plan.linger.as_nanos() as u64;
        while self.sent < last_due {
            let now = now_ns();
            if now >= end + UNSENT_GRACE.as_nanos() as u64 {
                break;
            }
            let due = schedule.due(now).min(last_due);
            while self.sent < due && !self.full() {
                self.push(schedule.intended_ns(self.sent));
            }
            self.recorder.borrow_mut().behind(self.plan.index, due - self.sent);
            let lingered = self.first_intended.is_some_and(|first| now >= first + linger_ns);
            if self.full() || lingered || (now >= end && self.open > 0) {
                self.dispatch().await;
                continue;
            }
            let room = self.room();
            let wake = next_wake_ns(&schedule, self.sent, self.first_intended, room, linger_ns, end);
            let wake = wake.max(now + 1);
            compio::time::sleep_until(instant_at(wake)).await;
            self.recorder.borrow_mut().woke(wake, now_ns());
        }
        if self.open > 0 {
            self.dispatch().await;
        }
        let mut recorder = self.recorder.borrow_mut();
        if self.sent < last_due {
            recorder.failed(last_due - self.sent, "UNSENT_BEHIND_SCHEDULE");
        }
        recorder.behind(self.plan.index, 0);
    }

    async fn run_unbounded(&mut self) {
        while now_ns() < self.plan.end_ns {
            self.wait_for_slot().await;
            let now = now_ns();
            while !self.full() {
                self.push(now);
            }
            self.dispatch().await;
        }
    }

    fn push(&mut self, intended_ns: u64) {
        let i = self.next_slot();
        let key = self.keys.take();
        let slot = &mut self.slots[i];
        // The wall clock is read once per batch: only the first record sets its timestamp.
        let now_ms = if slot.batch.is_empty() { unix_ms() } else { 0 };
        slot.batch.push(key, &self.plan.template, self.plan.run_tag, intended_ns, now_ms);
        slot.intended.push(intended_ns);
        self.first_intended.get_or_insert(intended_ns);
        self.open += 1;
        self.sent += 1;
    }

    async fn wait_for_slot(&mut self) {
        while self.in_flight.len() >= self.plan.in_flight_max.max(1) {
            if let Some(oldest) = self.in_flight.pop_front() {
                let _ = oldest.await;
            }
        }
    }

    /// Sends the open batches (waiting for a request slot first): the one batch to the next
    /// partition, or each keyed batch to its partition, one request per leader.
    async fn dispatch(&mut self) {
        self.wait_for_slot().await;
        self.open = 0;
        self.first_intended = None;
        let keyed = self.plan.key_distributor.is_keyed();
        let capacity = if keyed {
            self.plan.batch_bytes_max.min(KEYED_BATCH_RESERVE_BYTES)
        } else {
            self.plan.batch_bytes_max
        };
        let partitions = &self.topic.partitions;
        let mut by_leader: Vec<(i32, Vec<Part>)> = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate().filter(|(_, s)| !s.intended.is_empty()) {
            let intended = std::mem::take(&mut slot.intended);
            let records = match slot.batch.finish(capacity) {
                Ok(r) => r,
                Err(e) => {
                    self.recorder.borrow_mut().failed(intended.len() as u64, &format!("ENCODE: {e}"));
                    continue;
                }
            };
            let partition = if keyed {
                partitions[i].partition
            } else {
                let p = partitions[self.partition_cursor % partitions.len()].partition;
                self.partition_cursor = self.partition_cursor.wrapping_add(1);
                p
            };
            let leader = self.topic.leader_of(partition).unwrap_or(-1);
            let part = Part { partition, records, intended };
            match by_leader.iter_mut().find(|(l, _)| *l == leader) {
                Some((_, parts)) => parts.push(part),
                None => by_leader.push((leader, vec![part])),
            }
        }
        for (_, parts) in by_leader {
            let send = Send {
                client: self.client.clone(),
                topic: self.topic.clone(),
                request: produce_request(&self.topic.name, &parts, self.plan.acks),
                parts: parts.into_iter().map(|p| (p.partition, p.intended)).collect(),
                message_bytes: self.plan.template.len() as u64,
                acks: self.plan.acks,
                recorder: self.recorder.clone(),
                gate: self.plan.gate.clone(),
            };
            self.in_flight.push_back(compio::runtime::spawn(send.run()));
        }
    }

    async fn drain(&mut self) {
        let deadline = std::time::Instant::now() + DRAIN_TIMEOUT;
        while let Some(task) = self.in_flight.pop_front() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if compio::time::timeout(left, task).await.is_err() {
                break; // the request timeout counts these as failed when it fires
            }
        }
    }
}

/// One partition's finished batch.
struct Part {
    partition: i32,
    records: Bytes,
    intended: Vec<u64>,
}

fn produce_request(topic: &str, parts: &[Part], acks: Acks) -> ProduceRequest {
    let partition_data = parts
        .iter()
        .map(|p| {
            PartitionProduceData::default().with_index(p.partition).with_records(Some(p.records.clone()))
        })
        .collect();
    ProduceRequest::default().with_acks(acks.wire()).with_timeout_ms(PRODUCE_TIMEOUT_MS).with_topic_data(
        vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(partition_data)],
    )
}

/// One Produce request in flight and what to record when it is answered.
struct Send {
    client: Rc<Client>,
    topic: TopicInfo,
    request: ProduceRequest,
    /// Each partition of the request with the intended times of its messages.
    parts: Vec<(i32, Vec<u64>)>,
    message_bytes: u64,
    acks: Acks,
    recorder: Rc<RefCell<Recorder>>,
    gate: Option<Gate>,
}

impl Send {
    async fn run(self) {
        let outcomes = self.exchange().await;
        let now = now_ns();
        let mut recorder = self.recorder.borrow_mut();
        for ((_, intended), outcome) in self.parts.iter().zip(outcomes) {
            match outcome {
                Ok(()) => {
                    recorder.published(intended, now, self.message_bytes);
                    if let Some(g) = &self.gate {
                        g.published(intended.len() as u64);
                    }
                }
                Err(kind) => recorder.failed(intended.len() as u64, &kind),
            }
        }
    }

    /// One outcome per part, in order (a failure as its `error_kind`).
    async fn exchange(&self) -> Vec<Result<(), String>> {
        let all = |e: riptide_client::Error| self.parts.iter().map(|_| Err(error_kind(&e))).collect();
        let Some(&(first, _)) = self.parts.first() else { return Vec::new() };
        let connection = match self.client.leader(&self.topic, first).await {
            Ok(c) => c,
            Err(e) => return all(e),
        };
        if self.acks == Acks::None {
            return match connection.send_oneway(&self.request).await {
                Ok(()) => self.parts.iter().map(|_| Ok(())).collect(),
                Err(e) => all(e),
            };
        }
        let response = match connection.send(&self.request).await {
            Ok(r) => r,
            Err(e) => return all(e),
        };
        let answers = || response.responses.iter().flat_map(|t| t.partition_responses.iter());
        self.parts
            .iter()
            .map(|&(partition, _)| match answers().find(|p| p.index == partition) {
                Some(p) if p.error_code == 0 => Ok(()),
                Some(p) => Err(error_kind(&riptide_client::Error::kafka(
                    p.error_code,
                    format!("produce to {}/{}", self.topic.name, partition),
                    p.error_message.as_deref(),
                ))),
                None => {
                    Err(error_kind(&riptide_client::Error::Invalid("no answer for the partition".into())))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::template;
    use crate::records::BatchBuilder;
    use crate::workload::Payload;

    #[test]
    fn full_batches_fit_the_batch_size() {
        for (batch, message) in
            [(1 << 20, 100), (1 << 20, 1024), (16 << 10, 100), (1 << 20, 65536), (100, 1000)]
        {
            let room = batch_room(batch, None, message);
            let t = template(&Payload::Zeros, message, 0).expect("template");
            let mut b = BatchBuilder::new(Compression::None, batch);
            for i in 0..room {
                b.push(None, &t, 1, i, 0);
            }
            let bytes = b.finish(batch).expect("finish").len();
            assert!(bytes <= batch || room == 1, "{room} x {message} B = {bytes} B > {batch} B");
            // Not wastefully small either (the worst-case record size costs a few bytes each).
            let slack = 4 * room as usize; // varints are at most 4 bytes shorter than the worst case
            assert!(
                bytes + record_bytes(room as u32, None, message) + slack > batch || room == 1,
                "{room} x {message} B = {bytes} B"
            );
        }
    }
}
