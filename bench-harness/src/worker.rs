//! A worker thread: one compio runtime, one `Client` (its own connections), and the
//! producers and consumers the runner gave it, all as tasks sharing one `Recorder`. The
//! thread reports to the main thread over a channel: `Ready` once its consumers have their
//! partitions, a `Second` with its interval counters at every second of the timeline, and
//! `Done` with its measured-window totals.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use riptide_client::{Acks, Client, ClientConfig, Compression, TopicInfo};

use crate::backlog::Gate;
use crate::clock::{instant_at, NS_PER_S};
use crate::consumer::{self, ConsumerPlan};
use crate::keys::KeyDistributor;
use crate::producer::{self, ProducerPlan};
use crate::schedule::Schedule;
use crate::stats::{Interval, Recorder, Totals};
use crate::workload::Assignment;

/// A producer as the runner assigns it.
#[derive(Debug, Clone)]
pub struct ProducerSpec {
    pub topic: String,
    /// Index and count over all producers of the run (schedules interleave).
    pub index: u32,
    pub count: u32,
    pub template: Vec<u8>,
    pub first_partition: usize,
}

#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub topic: String,
    pub group: String,
    pub member_index: u32,
    pub members: u32,
}

/// Settings shared by every client of the run.
#[derive(Debug, Clone)]
pub struct Shared {
    pub brokers: String,
    pub run_tag: u64,
    pub total_rate: f64,
    pub acks: Acks,
    pub compression: Compression,
    pub batch_bytes_max: usize,
    pub linger: Duration,
    pub key_distributor: KeyDistributor,
    pub in_flight_max: usize,
    pub assignment: Assignment,
    /// The backlog test's gate: consumers wait while it is closed; everyone counts into it.
    pub gate: Option<Gate>,
}

#[derive(Debug, Clone)]
pub struct WorkerPlan {
    pub thread: usize,
    pub shared: Shared,
    pub producers: Vec<ProducerSpec>,
    pub consumers: Vec<ConsumerSpec>,
}

/// When the run starts, measures and ends, on the process clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    pub start_ns: u64,
    pub measure_from_ns: u64,
    pub end_ns: u64,
    /// Consumers read on until here (they catch up with the last messages).
    pub stop_ns: u64,
}

impl Timeline {
    /// Seconds reported: one per whole or started second until `stop_ns`.
    pub fn seconds(&self) -> u64 {
        (self.stop_ns - self.start_ns).div_ceil(NS_PER_S)
    }
}

#[derive(Debug)]
pub enum Event {
    Ready { thread: usize },
    Failed { thread: usize, error: String },
    Second { thread: usize, second: u64, interval: Box<Interval> },
    Done { thread: usize, totals: Box<Totals> },
}

/// Starts the thread; it waits for the timeline after reporting `Ready`.
pub fn spawn(
    plan: WorkerPlan,
    events: flume::Sender<Event>,
    timeline: flume::Receiver<Timeline>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(format!("bench-{}", plan.thread)).spawn(move || {
        let thread = plan.thread;
        let runtime = match compio::runtime::Runtime::new() {
            Ok(r) => r,
            Err(e) => {
                let _ = events.send(Event::Failed { thread, error: format!("runtime: {e}") });
                return;
            }
        };
        if let Err(error) = runtime.block_on(work(plan, events.clone(), timeline)) {
            let _ = events.send(Event::Failed { thread, error });
        }
    })
}

async fn connect(plan: &WorkerPlan) -> Result<(Rc<Client>, BTreeMap<String, TopicInfo>), String> {
    let mut config = ClientConfig::new(&plan.shared.brokers).map_err(|e| e.to_string())?;
    config.connect.client_id = format!("riptide-bench-{}", plan.thread);
    config.connect.max_in_flight =
        (plan.producers.len() * plan.shared.in_flight_max + plan.consumers.len() * 4 + 16).max(64);
    let client = Rc::new(Client::connect(config).await.map_err(|e| e.to_string())?);
    let mut topics = BTreeMap::new();
    let names = plan.producers.iter().map(|p| &p.topic).chain(plan.consumers.iter().map(|c| &c.topic));
    for name in names {
        if !topics.contains_key(name) {
            let info = client.topic(name).await.map_err(|e| e.to_string())?;
            topics.insert(name.clone(), info);
        }
    }
    Ok((client, topics))
}

async fn work(
    plan: WorkerPlan,
    events: flume::Sender<Event>,
    timeline: flume::Receiver<Timeline>,
) -> Result<(), String> {
    let (client, topics) = connect(&plan).await?;
    let recorder = Rc::new(RefCell::new(Recorder::new(0, 0, plan.producers.len())));
    let stop_ns = Rc::new(Cell::new(u64::MAX));
    let consumers = start_consumers(&plan, &client, &topics, &recorder, &stop_ns).await?;
    events.send(Event::Ready { thread: plan.thread }).map_err(|_| "runner gone")?;
    let t = timeline.recv_async().await.map_err(|_| "runner gone before the start")?;
    recorder.borrow_mut().set_window(t.measure_from_ns, t.end_ns);
    stop_ns.set(t.stop_ns);
    let producers: Vec<_> = plan
        .producers
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let p = producer_plan(index, spec, &plan.shared, &t);
            compio::runtime::spawn(producer::run(
                client.clone(),
                topics[&spec.topic].clone(),
                p,
                recorder.clone(),
            ))
        })
        .collect();
    for second in 1..=t.seconds() {
        compio::time::sleep_until(instant_at(t.start_ns + second * NS_PER_S)).await;
        let interval = Box::new(recorder.borrow_mut().take_interval());
        events.send(Event::Second { thread: plan.thread, second, interval }).map_err(|_| "runner gone")?;
    }
    for task in producers.into_iter().chain(consumers) {
        let _ = task.await;
    }
    drop(client);
    let totals = Rc::try_unwrap(recorder)
        .map(|r| r.into_inner().into_totals())
        .map_err(|_| "recorder still shared")?;
    events.send(Event::Done { thread: plan.thread, totals: Box::new(totals) }).map_err(|_| "runner gone")?;
    Ok(())
}

type Task = compio::runtime::JoinHandle<()>;

/// Starts the consumers and waits until each has its partitions. Their stop time is not known
/// yet: it comes with the timeline, through `stop_ns`.
async fn start_consumers(
    plan: &WorkerPlan,
    client: &Rc<Client>,
    topics: &BTreeMap<String, TopicInfo>,
    recorder: &Rc<RefCell<Recorder>>,
    stop_ns: &Rc<Cell<u64>>,
) -> Result<Vec<Task>, String> {
    let (ready_tx, ready_rx) = flume::unbounded();
    let mut tasks = Vec::new();
    for spec in &plan.consumers {
        let c = ConsumerPlan {
            topic: spec.topic.clone(),
            group: spec.group.clone(),
            assignment: plan.shared.assignment,
            member_index: spec.member_index,
            members: spec.members,
            stop_ns: stop_ns.clone(),
            run_tag: plan.shared.run_tag,
            partition_bytes_max: (2 * plan.shared.batch_bytes_max).max(1 << 20) as i32,
            ready: ready_tx.clone(),
            gate: plan.shared.gate.clone(),
            ready_sent: Cell::new(false),
        };
        tasks.push(compio::runtime::spawn(consumer::run(
            client.clone(),
            topics[&spec.topic].clone(),
            c,
            recorder.clone(),
        )));
    }
    for _ in 0..plan.consumers.len() {
        compio::time::timeout(Duration::from_secs(120), ready_rx.recv_async())
            .await
            .map_err(|_| "consumers did not get their partitions within 120 s")?
            .map_err(|_| "consumer channel closed")?;
    }
    Ok(tasks)
}

fn producer_plan(index: usize, spec: &ProducerSpec, s: &Shared, t: &Timeline) -> ProducerPlan {
    ProducerPlan {
        index,
        topic: spec.topic.clone(),
        schedule: Schedule::for_producer(t.start_ns, s.total_rate, spec.index, spec.count),
        end_ns: t.end_ns,
        template: spec.template.clone(),
        run_tag: s.run_tag,
        acks: s.acks,
        compression: s.compression,
        batch_bytes_max: s.batch_bytes_max,
        linger: s.linger,
        key_distributor: s.key_distributor,
        // One key pool per run (OMB's is static); cursors far apart so that round-robin
        // producers do not send the same key at the same moment.
        key_seed: s.run_tag,
        key_cursor_seed: u64::from(spec.index).wrapping_mul(7_919),
        in_flight_max: s.in_flight_max,
        first_partition: spec.first_partition,
        gate: s.gate.clone(),
    }
}

/// The phase of second `k` (covering `(k-1, k]` s after the start).
pub fn phase_of(second: u64, t: &Timeline) -> &'static str {
    let at = t.start_ns + second * NS_PER_S;
    if at <= t.measure_from_ns {
        "warmup"
    } else if at <= t.end_ns {
        "measure"
    } else {
        "drain"
    }
}
