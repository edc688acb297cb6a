//! One consumer: a member of a consumer group (classic protocol, range assignor, from
//! `riptide_client::GroupMember`) or, with `consumerAssignment: static`, a reader of a fixed
//! share of the partitions. It fetches from its partitions' leaders in a loop, reads each
//! message's stamp and records end-to-end latency (intended send time to arrival here).
//! Group members heartbeat between fetches, follow rebalances (commit, rejoin, resume from the
//! group's committed offsets) and commit their positions every second.

use riptide_model::Offset;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use riptide_client::{Client, GroupConfig, GroupMember, KafkaCode, OffsetSpec, TopicInfo, TopicPartition};

use crate::backlog::Gate;
use crate::clock::now_ns;
use crate::payload::read_stamp;
use crate::producer::error_kind;
use crate::records::scan_batches;
use crate::stats::Recorder;
use crate::workload::Assignment;

pub struct ConsumerPlan {
    pub topic: String,
    pub group: String,
    pub assignment: Assignment,
    /// This consumer's index in its subscription and the subscription's size (static split).
    pub member_index: u32,
    pub members: u32,
    /// When to stop reading (set once the runner fixes the timeline).
    pub stop_ns: Rc<Cell<u64>>,
    pub run_tag: u64,
    pub partition_bytes_max: i32,
    /// Told once this consumer has its partitions (or has given up).
    pub ready: flume::Sender<()>,
    pub ready_sent: Cell<bool>,
    /// While closed, the consumer holds its partitions (and its group membership) but reads
    /// nothing: the backlog test.
    pub gate: Option<Gate>,
}

/// How often a paused consumer looks whether it may go on.
const PAUSE_POLL: Duration = Duration::from_millis(20);

impl ConsumerPlan {
    fn paused(&self) -> bool {
        self.gate.as_ref().is_some_and(Gate::is_closed)
    }

    fn signal_ready(&self) {
        if !self.ready_sent.replace(true) {
            let _ = self.ready.try_send(());
        }
    }
}

const FETCH_WAIT_MS: i32 = 100;
const FETCH_BYTES_MAX: i32 = 64 << 20;
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1000);

/// Where each owned partition is read next.
type Positions = BTreeMap<i32, Offset>;

pub async fn run(client: Rc<Client>, topic: TopicInfo, plan: ConsumerPlan, recorder: Rc<RefCell<Recorder>>) {
    let result = match plan.assignment {
        Assignment::Static => consume_static(&client, &topic, &plan, &recorder).await,
        Assignment::Group => consume_in_group(&client, &topic, &plan, &recorder).await,
    };
    plan.signal_ready();
    if let Err(e) = result {
        eprintln!("consumer {} of {}: {e}", plan.member_index, plan.group);
        recorder.borrow_mut().failed(0, &format!("CONSUMER_{}", error_kind(&e)));
    }
}

async fn consume_static(
    client: &Client,
    topic: &TopicInfo,
    plan: &ConsumerPlan,
    recorder: &RefCell<Recorder>,
) -> riptide_client::Result<()> {
    let mine: Vec<i32> = topic
        .partitions
        .iter()
        .map(|p| p.partition)
        .filter(|p| (*p as u32) % plan.members == plan.member_index)
        .collect();
    let mut positions: Positions =
        client.list_offsets(topic, &mine, OffsetSpec::Earliest).await?.into_iter().collect();
    plan.signal_ready();
    while now_ns() < plan.stop_ns.get() {
        if plan.paused() {
            compio::time::sleep(PAUSE_POLL).await;
            continue;
        }
        fetch_once(client, topic, plan, &mut positions, recorder).await?;
    }
    Ok(())
}

async fn consume_in_group(
    client: &Client,
    topic: &TopicInfo,
    plan: &ConsumerPlan,
    recorder: &RefCell<Recorder>,
) -> riptide_client::Result<()> {
    let config = GroupConfig { heartbeat_interval: HEARTBEAT_INTERVAL, ..GroupConfig::new(&plan.group) };
    let mut member = GroupMember::join(client, config, &[topic.name.as_str()]).await?;
    let mut positions = starting_positions(client, topic, &plan.group, &member).await?;
    plan.signal_ready();
    let mut last_commit = Instant::now();
    while now_ns() < plan.stop_ns.get() {
        if member.heartbeat_if_due().await? {
            let _ = member.commit(&committable(topic, &positions)).await;
            member.rejoin().await?;
            positions = starting_positions(client, topic, &plan.group, &member).await?;
            continue;
        }
        if plan.paused() {
            compio::time::sleep(PAUSE_POLL).await;
            continue;
        }
        fetch_once(client, topic, plan, &mut positions, recorder).await?;
        if last_commit.elapsed() >= COMMIT_INTERVAL {
            last_commit = Instant::now();
            let _ = member.commit(&committable(topic, &positions)).await;
        }
    }
    let _ = member.commit(&committable(topic, &positions)).await;
    let _ = member.leave().await;
    Ok(())
}

fn committable(topic: &TopicInfo, positions: &Positions) -> BTreeMap<TopicPartition, Offset> {
    positions.iter().map(|(p, o)| (TopicPartition::new(topic.name.as_str(), *p), *o)).collect()
}

/// The group's committed offsets for our partitions, the log start where there is none.
async fn starting_positions(
    client: &Client,
    topic: &TopicInfo,
    group: &str,
    member: &GroupMember<'_>,
) -> riptide_client::Result<Positions> {
    let mine: Vec<i32> = member
        .assignment()
        .iter()
        .filter(|(t, _)| *t == topic.name)
        .flat_map(|(_, ps)| ps.iter().copied())
        .collect();
    if mine.is_empty() {
        return Ok(Positions::new());
    }
    let keys: Vec<TopicPartition> =
        mine.iter().map(|p| TopicPartition::new(topic.name.as_str(), *p)).collect();
    let committed = client.committed_offsets(group, Some(&keys)).await?;
    let earliest = client.list_offsets(topic, &mine, OffsetSpec::Earliest).await?;
    Ok(mine
        .iter()
        .map(|p| {
            (*p, committed.get(&TopicPartition::new(topic.name.as_str(), *p)).copied().unwrap_or(earliest[p]))
        })
        .collect())
}

fn fetch_request(topic: &str, positions: &[(i32, Offset)], partition_bytes_max: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(FETCH_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_BYTES_MAX)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                positions
                    .iter()
                    .map(|(p, offset)| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(offset.0)
                            .with_partition_max_bytes(partition_bytes_max)
                    })
                    .collect(),
            )])
}

/// One Fetch per leader of our partitions, all in flight together; records what arrived.
async fn fetch_once(
    client: &Client,
    topic: &TopicInfo,
    plan: &ConsumerPlan,
    positions: &mut Positions,
    recorder: &RefCell<Recorder>,
) -> riptide_client::Result<()> {
    if positions.is_empty() {
        compio::time::sleep(Duration::from_millis(FETCH_WAIT_MS as u64)).await;
        return Ok(());
    }
    let mut by_leader: BTreeMap<i32, Vec<(i32, Offset)>> = BTreeMap::new();
    for (p, o) in positions.iter() {
        by_leader.entry(topic.leader_of(*p).unwrap_or(-1)).or_default().push((*p, *o));
    }
    let fetches = by_leader.iter().map(|(leader, ps)| async move {
        let connection = client.broker(*leader).await?;
        let request = fetch_request(&topic.name, ps, plan.partition_bytes_max);
        connection.send_with_extra_time(&request, Duration::from_millis(FETCH_WAIT_MS as u64)).await
    });
    let mut out_of_range = Vec::new();
    for response in riptide_client::join_all(fetches.collect()).await {
        let response = response?;
        KafkaCode::check(response.error_code, || format!("fetch from {}", topic.name))?;
        let now = now_ns();
        let mut recorder = recorder.borrow_mut();
        for p in response.responses.iter().flat_map(|t| t.partitions.iter()) {
            let Some(position) = positions.get_mut(&p.partition_index) else { continue };
            if p.error_code != 0 {
                recorder.failed(0, &format!("FETCH_{}", KafkaCode(p.error_code).name()));
                if KafkaCode(p.error_code) == KafkaCode::OFFSET_OUT_OF_RANGE {
                    out_of_range.push(p.partition_index);
                }
                continue;
            }
            let Some(records) = p.records.as_ref() else { continue };
            let mut ours = 0;
            let scan = scan_batches(records, position.0, |value| {
                if let Some(intended) = read_stamp(value, plan.run_tag) {
                    recorder.consumed(intended, now, value.len() as u64);
                    ours += 1;
                }
            });
            if let Some(g) = &plan.gate {
                g.consumed(ours);
            }
            match scan {
                Ok(s) => *position = s.next_offset.map_or(*position, Offset).max(*position),
                Err(e) => recorder.failed(0, &format!("FETCH_CORRUPT: {e}")),
            }
        }
    }
    if !out_of_range.is_empty() {
        // Retention deleted what this consumer had not read yet (a soak with short retention,
        // a backlog larger than the log keeps): go on from the log start, as a Kafka consumer
        // with auto.offset.reset=earliest does. The lost messages never count as consumed,
        // so the backlog and the consumed totals show them.
        for (p, offset) in client.list_offsets(topic, &out_of_range, OffsetSpec::Earliest).await? {
            if let Some(position) = positions.get_mut(&p) {
                *position = offset.max(*position);
            }
        }
    }
    Ok(())
}
