//! One open-loop producer: it follows its `Schedule`, putting each message into the open
//! batch at (or, when it fell behind, as soon as possible after) the message's intended time,
//! and sends the batch when it is full or its first message has lingered `linger`. Up to
//! `in_flight_max` Produce requests are outstanding; when all are, the producer waits for the
//! oldest answer and the messages falling due meanwhile are owed, not forgotten: they keep
//! their intended times, so the wait shows in their latency (no coordinated omission).
//!
//! Partitioning is Kafka's sticky partitioner for keyless messages: a batch goes to one
//! partition, the next batch to the next partition.
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

use crate::clock::{instant_at, now_ns, unix_ms};
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
pub fn batch_room(batch_bytes_max: usize, message_bytes: usize) -> u64 {
    let per_record = record_bytes(u32::MAX, message_bytes);
    (batch_bytes_max.saturating_sub(BATCH_HEADER_BYTES) / per_record).max(1) as u64
}

struct Producer {
    client: Rc<Client>,
    topic: TopicInfo,
    plan: ProducerPlan,
    recorder: Rc<RefCell<Recorder>>,
    batch: BatchBuilder,
    intended: Vec<u64>,
    /// Messages that fit one batch.
    room_max: u64,
    partition_cursor: usize,
    in_flight: VecDeque<JoinHandle<()>>,
    /// Messages put into batches so far (the schedule index of the next one).
    sent: u64,
}

/// Runs the producer until `plan.end_ns`, then waits for its outstanding answers.
pub async fn run(client: Rc<Client>, topic: TopicInfo, plan: ProducerPlan, recorder: Rc<RefCell<Recorder>>) {
    let room_max = batch_room(plan.batch_bytes_max, plan.template.len());
    let mut p = Producer {
        client,
        batch: BatchBuilder::new(plan.compression, plan.batch_bytes_max),
        intended: Vec::with_capacity(room_max as usize),
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
            while self.sent < due && (self.intended.len() as u64) < self.room_max {
                self.push(schedule.intended_ns(self.sent));
            }
            self.recorder.borrow_mut().behind(self.plan.index, due - self.sent);
            let full = self.intended.len() as u64 >= self.room_max;
            let lingered = self.intended.first().is_some_and(|first| now >= first + linger_ns);
            if full || lingered || (now >= end && !self.intended.is_empty()) {
                self.dispatch().await;
                continue;
            }
            let room = self.room_max - self.intended.len() as u64;
            let wake =
                next_wake_ns(&schedule, self.sent, self.intended.first().copied(), room, linger_ns, end);
            let wake = wake.max(now + 1);
            compio::time::sleep_until(instant_at(wake)).await;
            self.recorder.borrow_mut().woke(wake, now_ns());
        }
        if !self.intended.is_empty() {
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
            while (self.intended.len() as u64) < self.room_max {
                self.push(now);
            }
            self.dispatch().await;
        }
    }

    fn push(&mut self, intended_ns: u64) {
        // The wall clock is read once per batch: only the first record sets its timestamp.
        let now_ms = if self.batch.is_empty() { unix_ms() } else { 0 };
        self.batch.push(&self.plan.template, self.plan.run_tag, intended_ns, now_ms);
        self.intended.push(intended_ns);
        self.sent += 1;
    }

    async fn wait_for_slot(&mut self) {
        while self.in_flight.len() >= self.plan.in_flight_max.max(1) {
            if let Some(oldest) = self.in_flight.pop_front() {
                let _ = oldest.await;
            }
        }
    }

    /// Sends the open batch to the next partition (waiting for a request slot first).
    async fn dispatch(&mut self) {
        self.wait_for_slot().await;
        let intended = std::mem::replace(&mut self.intended, Vec::with_capacity(self.room_max as usize));
        let records = match self.batch.finish(self.plan.batch_bytes_max) {
            Ok(r) => r,
            Err(e) => {
                return self.recorder.borrow_mut().failed(intended.len() as u64, &format!("ENCODE: {e}"))
            }
        };
        let partitions = &self.topic.partitions;
        let partition = partitions[self.partition_cursor % partitions.len()].partition;
        self.partition_cursor = self.partition_cursor.wrapping_add(1);
        let request = produce_request(&self.topic.name, partition, records, self.plan.acks);
        let send = Send {
            client: self.client.clone(),
            topic: self.topic.clone(),
            partition,
            request,
            intended,
            message_bytes: self.plan.template.len() as u64,
            acks: self.plan.acks,
            recorder: self.recorder.clone(),
        };
        self.in_flight.push_back(compio::runtime::spawn(send.run()));
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

fn produce_request(topic: &str, partition: i32, records: Bytes, acks: Acks) -> ProduceRequest {
    ProduceRequest::default().with_acks(acks.wire()).with_timeout_ms(PRODUCE_TIMEOUT_MS).with_topic_data(
        vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])],
    )
}

/// One Produce request in flight and what to record when it is answered.
struct Send {
    client: Rc<Client>,
    topic: TopicInfo,
    partition: i32,
    request: ProduceRequest,
    intended: Vec<u64>,
    message_bytes: u64,
    acks: Acks,
    recorder: Rc<RefCell<Recorder>>,
}

impl Send {
    async fn run(self) {
        let outcome = self.exchange().await;
        let now = now_ns();
        let mut recorder = self.recorder.borrow_mut();
        match outcome {
            Ok(()) => recorder.published(&self.intended, now, self.message_bytes),
            Err(e) => recorder.failed(self.intended.len() as u64, &error_kind(&e)),
        }
    }

    async fn exchange(&self) -> riptide_client::Result<()> {
        let connection = self.client.leader(&self.topic, self.partition).await?;
        if self.acks == Acks::None {
            return connection.send_oneway(&self.request).await;
        }
        let response = connection.send(&self.request).await?;
        let answer = response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == self.partition);
        match answer {
            Some(p) if p.error_code == 0 => Ok(()),
            Some(p) => Err(riptide_client::Error::kafka(
                p.error_code,
                format!("produce to {}/{}", self.topic.name, self.partition),
                p.error_message.as_deref(),
            )),
            None => Err(riptide_client::Error::Invalid("no answer for the partition".into())),
        }
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
            let room = batch_room(batch, message);
            let t = template(&Payload::Zeros, message, 0).expect("template");
            let mut b = BatchBuilder::new(Compression::None, batch);
            for i in 0..room {
                b.push(&t, 1, i, 0);
            }
            let bytes = b.finish(batch).expect("finish").len();
            assert!(bytes <= batch || room == 1, "{room} x {message} B = {bytes} B > {batch} B");
            // Not wastefully small either (the worst-case record size costs a few bytes each).
            let slack = 4 * room as usize; // varints are at most 4 bytes shorter than the worst case
            assert!(
                bytes + record_bytes(room as u32, message) + slack > batch || room == 1,
                "{room} x {message} B = {bytes} B"
            );
        }
    }
}
