//! One benchmark run from start to finish: create fresh topics, place producers and consumers
//! on worker threads, wait for the consumers to join, fix the timeline (start, end of
//! warm-up, end, end of the consumers' drain), gather each second's counters into the
//! progress line and the time series, and turn the totals into a `RunResult`. Topics are
//! deleted afterwards unless asked to keep them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use riptide_client::{Client, ClientConfig, KafkaCode, NewTopic};

use crate::backlog::{Gate, Tracker};
use crate::baseline::{percent_of, Baseline};
use crate::clock::{now_ns, unix_ms};
use crate::collect::{gather, Collected, Watch};
use crate::error::{Error, Result};
use crate::omb::OmbResult;
use crate::payload::{run_tag, template};
use crate::report::{CpuUse, Measurement, RunConfig, RunResult};
use crate::segments::SegmentWatcher;
use crate::sys::{own_cpu_seconds, pid_cpu_seconds, pid_rss_bytes, reset_peak_rss};
use crate::worker::{self, ConsumerSpec, Event, ProducerSpec, Shared, Timeline, WorkerPlan};
use crate::workload::{Assignment, Rate, Workload};

/// The broker under test.
#[derive(Debug, Clone)]
pub struct Target {
    pub brokers: String,
    pub label: String,
    /// For the broker's CPU time and memory, when it is a local process.
    pub broker_pid: Option<u32>,
    /// The broker's data directory, watched for segment deletions and compactions.
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Worker threads (default: cores, at most one per client).
    pub threads: Option<usize>,
    pub baseline: Option<Baseline>,
    pub keep_topics: bool,
    /// How long consumers read on after the end (to receive the last messages).
    pub drain: Duration,
    pub notes: Vec<String>,
    /// Seconds per soak window (percentiles kept per window; the stability figure).
    pub window_seconds: u64,
}

/// `name` as a file-name and topic-name friendly slug.
pub fn slug(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let parts: Vec<&str> = s.split('-').filter(|p| !p.is_empty()).collect();
    parts.join("-")
}

pub fn topic_names(w: &Workload, tag: u64) -> Vec<String> {
    (0..w.topics).map(|i| format!("bench-{}-{:08x}-{i}", slug(&w.name), tag as u32)).collect()
}

/// Places producers, then consumers, round-robin over `threads` threads.
pub fn plan_workers(
    w: &Workload,
    topics: &[String],
    threads: usize,
    shared: &Shared,
    seed: u64,
) -> Result<Vec<WorkerPlan>> {
    assert!(threads > 0);
    let mut plans: Vec<WorkerPlan> = (0..threads)
        .map(|thread| WorkerPlan {
            thread,
            shared: shared.clone(),
            producers: Vec::new(),
            consumers: Vec::new(),
        })
        .collect();
    let count = w.producers();
    let mut slot = 0;
    for (t, topic) in topics.iter().enumerate() {
        for j in 0..w.producers_per_topic {
            let index = t as u32 * w.producers_per_topic + j;
            plans[slot % threads].producers.push(ProducerSpec {
                topic: topic.clone(),
                index,
                count,
                template: template(&w.payload, w.message_bytes as usize, seed ^ u64::from(index))?,
                first_partition: j as usize,
            });
            slot += 1;
        }
    }
    for topic in topics {
        for s in 0..w.subscriptions_per_topic {
            for member_index in 0..w.consumers_per_subscription {
                let group = format!("{topic}-sub-{s}");
                let spec = ConsumerSpec {
                    topic: topic.clone(),
                    group,
                    member_index,
                    members: w.consumers_per_subscription,
                };
                plans[slot % threads].consumers.push(spec);
                slot += 1;
            }
        }
    }
    plans.retain(|p| !p.producers.is_empty() || !p.consumers.is_empty());
    Ok(plans)
}

fn admin<T>(brokers: &str, f: impl AsyncFnOnce(&Client) -> Result<T>) -> Result<T> {
    let runtime = compio::runtime::Runtime::new().map_err(|e| Error::Process(format!("runtime: {e}")))?;
    runtime.block_on(async {
        let client = Client::connect(ClientConfig::new(brokers)?).await?;
        f(&client).await
    })
}

/// Creates the topics (with the workload's topic configs) and waits until every partition
/// has a leader.
fn create_topics(brokers: &str, names: &[String], w: &Workload) -> Result<()> {
    let partitions = w.partitions_per_topic;
    admin(brokers, async |client: &Client| {
        let new: Vec<NewTopic> = names
            .iter()
            .map(|n| NewTopic {
                name: n.clone(),
                partitions: partitions as i32,
                replication_factor: w.replication_factor,
                configs: w.topic_config.clone(),
            })
            .collect();
        for result in client.create_topics(&new, false).await? {
            match result {
                Err(e) if e.code() != Some(KafkaCode::TOPIC_ALREADY_EXISTS) => return Err(e.into()),
                _ => {}
            }
        }
        for _ in 0..100 {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let metadata = client.metadata(Some(&refs), false).await?;
            let ready = names.iter().all(|n| {
                metadata.topic(n).is_some_and(|t| {
                    t.partitions.len() == partitions as usize && t.partitions.iter().all(|p| p.leader >= 0)
                })
            });
            if ready {
                return Ok(());
            }
            compio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Invalid(format!("topics {names:?} have no leaders after 10 s")))
    })
}

fn delete_topics(brokers: &str, names: &[String]) {
    let _ = admin(brokers, async |client: &Client| {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let _ = client.delete_topics(&refs).await;
        Ok(())
    });
}

fn run_config(w: &Workload, file: &str, target: &Target, threads: usize) -> RunConfig {
    RunConfig {
        workload: w.name.clone(),
        workload_file: file.to_string(),
        target: target.label.clone(),
        driver: format!("riptide-client {}", env!("CARGO_PKG_VERSION")),
        message_size: w.message_bytes,
        topics: w.topics,
        partitions_per_topic: w.partitions_per_topic,
        producers_per_topic: w.producers_per_topic,
        subscriptions_per_topic: w.subscriptions_per_topic,
        consumers_per_subscription: w.consumers_per_subscription,
        consumer_assignment: match w.assignment {
            Assignment::Group => "group".into(),
            Assignment::Static => "static".into(),
        },
        target_rate: w.rate_per_s(),
        acks: match w.acks {
            riptide_client::Acks::None => "0".into(),
            riptide_client::Acks::Leader => "1".into(),
            riptide_client::Acks::All => "all".into(),
        },
        compression: w.compression.name().into(),
        batch_size_bytes: w.batch_bytes_max,
        linger_ms: w.linger.as_secs_f64() * 1e3,
        key_distributor: w.key_distributor.name().into(),
        max_in_flight: w.in_flight_max,
        warmup_seconds: w.warmup.as_secs_f64(),
        test_duration_seconds: w.duration.as_secs_f64(),
        harness_threads: threads as u32,
    }
}

/// Runs `w` against `target`.
pub fn run(w: &Workload, workload_file: &str, target: &Target, options: &RunOptions) -> Result<RunResult> {
    crate::clock::init();
    let tag = run_tag();
    let topics = topic_names(w, tag);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let clients = (w.producers() + w.consumers()) as usize;
    let threads = options.threads.unwrap_or(cores).clamp(1, clients.max(1));
    let shared = Shared {
        brokers: target.brokers.clone(),
        run_tag: tag,
        total_rate: w.rate_per_s(),
        acks: w.acks,
        compression: w.compression,
        batch_bytes_max: w.batch_bytes_max as usize,
        linger: w.linger,
        key_distributor: w.key_distributor,
        in_flight_max: w.in_flight_max as usize,
        assignment: w.assignment,
        gate: (w.backlog_bytes > 0).then(Gate::closed),
    };
    create_topics(&target.brokers, &topics, w)?;
    let plans = plan_workers(w, &topics, threads, &shared, tag)?;
    let result = measure(w, plans, target, options, shared.gate.clone());
    if !options.keep_topics {
        delete_topics(&target.brokers, &topics);
    }
    let (c, cpu, started) = result?;
    let mut notes = options.notes.clone();
    if w.rate == Rate::Max {
        notes.push("producerRate 0 (max): no schedule, publish latency counts from when a message was batched (closed loop)".into());
    }
    if c.backlog.as_ref().is_some_and(|b| b.drained_at_second.is_none()) {
        notes.push("the backlog was not built and drained within the run: lengthen testDuration".into());
    }
    let mut r = RunResult::from_measurement(Measurement {
        config: run_config(w, workload_file, target, threads),
        started_at_unix_ms: started,
        samples: &c.samples,
        totals: &c.totals,
        cpu,
        baseline: options.baseline.clone(),
        notes,
        windows: c.windows,
        window_seconds: options.window_seconds,
        omb_windows: c.omb_windows,
    });
    r.backlog_drain = c.backlog;
    r.segment_events = c.segment_events;
    Ok(r)
}

type Measured = (Collected, CpuUse, i64);

fn measure(
    w: &Workload,
    plans: Vec<WorkerPlan>,
    target: &Target,
    options: &RunOptions,
    gate: Option<Gate>,
) -> Result<Measured> {
    let threads = plans.len();
    let (events_tx, events) = flume::unbounded();
    let mut starts = Vec::new();
    let mut handles = Vec::new();
    for plan in plans {
        let (tx, rx) = flume::bounded(1);
        starts.push(tx);
        handles.push(
            worker::spawn(plan, events_tx.clone(), rx).map_err(|e| Error::Process(format!("thread: {e}")))?,
        );
    }
    drop(events_tx);
    wait_ready(&events, threads)?;
    // The peak RSS from here on: spawned brokers are fresh anyway, a running one may let us
    // reset its high-water mark (else the largest RSS seen each second stands in).
    let peak_reset = target.broker_pid.is_some_and(reset_peak_rss);
    let cpu0 = (own_cpu_seconds(), target.broker_pid.and_then(pid_cpu_seconds), std::time::Instant::now());
    let started = unix_ms();
    let start_ns = now_ns() + 200_000_000;
    let measure_from_ns = start_ns + w.warmup.as_nanos() as u64;
    let end_ns = measure_from_ns + w.duration.as_nanos() as u64;
    let drain = if w.consumers() > 0 { options.drain.as_nanos() as u64 } else { 0 };
    let timeline = Timeline { start_ns, measure_from_ns, end_ns, stop_ns: end_ns + drain };
    for s in &starts {
        let _ = s.send(timeline);
    }
    let watch = Watch {
        subscriptions: w.subscriptions_per_topic,
        message_bytes: w.message_bytes,
        window_seconds: options.window_seconds,
        backlog: gate.map(|g| {
            let tracker = Tracker::new(
                w.backlog_bytes,
                w.backlog_drain_ratio,
                w.message_bytes,
                w.subscriptions_per_topic,
                timeline.start_ns,
            );
            (tracker, g)
        }),
        segments: target.data_dir.as_deref().map(SegmentWatcher::new),
        broker_pid: target.broker_pid,
    };
    let gathered = gather(&events, threads, &timeline, watch);
    for h in handles {
        let _ = h.join();
    }
    let collected = gathered?;
    let hwm = target.broker_pid.and_then(pid_rss_bytes).map(|(_, hwm)| hwm).filter(|_| peak_reset);
    let cpu = CpuUse {
        wall_seconds: cpu0.2.elapsed().as_secs_f64(),
        harness_cpu_seconds: own_cpu_seconds() - cpu0.0,
        broker_cpu_seconds: cpu0
            .1
            .and_then(|c0| target.broker_pid.and_then(pid_cpu_seconds).map(|c1| c1 - c0)),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        broker_peak_rss_bytes: hwm.into_iter().chain(collected.broker_rss_max_bytes).max(),
    };
    Ok((collected, cpu, started))
}

fn wait_ready(events: &flume::Receiver<Event>, threads: usize) -> Result<()> {
    let mut ready = 0;
    while ready < threads {
        match events.recv_timeout(Duration::from_secs(180)) {
            Ok(Event::Ready { .. }) => ready += 1,
            Ok(Event::Failed { thread, error }) => {
                return Err(Error::Process(format!("worker {thread}: {error}")))
            }
            Ok(_) => {}
            Err(_) => return Err(Error::Process("workers not ready after 180 s".into())),
        }
    }
    Ok(())
}

/// A few lines for the terminal after a run.
pub fn summary(r: &RunResult) -> String {
    let p = &r.aggregated_publish_latency;
    let e = &r.aggregated_end_to_end_latency;
    let mut s = format!(
        "{} against {}\n  publish   {:>10.0} msg/s {:>8.1} MB/s  latency ms p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} p99.99 {:.3} max {:.3}\n",
        r.config.workload, r.config.target, r.aggregated_publish_rate, r.aggregated_publish_mbps, p.p50, p.p90, p.p99, p.p999, p.p9999, p.max
    );
    if e.count > 0 {
        s += &format!(
            "  consume   {:>10.0} msg/s {:>8.1} MB/s  end-to-end ms p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} p99.99 {:.3} max {:.3}\n",
            r.aggregated_consume_rate, r.aggregated_consume_mbps, e.p50, e.p90, e.p99, e.p999, e.p9999, e.max
        );
    }
    let l = &r.harness_wake_lateness;
    if l.count > 0 {
        s += &format!("  harness   woke late by p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3} ms (its own share of the latency)\n", l.p50, l.p99, l.p999, l.max);
    }
    s += &format!("  errors    {}", r.errors);
    for (kind, n) in &r.errors_by_kind {
        s += &format!(" {kind}={n}");
    }
    s += &format!(
        "\n  cpu       harness {:.2} s, broker {} over {:.1} s wall{}\n",
        r.cpu.harness_cpu_seconds,
        r.cpu.broker_cpu_seconds.map_or("n/a".into(), |c| format!("{c:.2} s")),
        r.cpu.wall_seconds,
        r.cpu
            .broker_peak_rss_bytes
            .map_or(String::new(), |b| format!("; broker peak RSS {:.0} MB", b as f64 / 1e6))
    );
    s += &soak_lines(r);
    if let Some(b) = &r.baseline {
        if let Some(pct) = percent_of(r.aggregated_publish_mbps, b.fio_write_fdatasync_mbps) {
            s += &format!("  limits    publish = {pct:.0} % of disk (fio 1 MiB + fdatasync)");
        }
        if let Some(pct) =
            percent_of(r.aggregated_consume_mbps.max(r.aggregated_publish_mbps), b.iperf3_loopback_mbps)
        {
            s += &format!(", {pct:.0} % of loopback (iperf3)");
        }
        s += "\n";
    }
    s
}

/// The summary's lines for the stability figure, the backlog test and the broker's segment
/// events, where the run has them.
pub fn soak_lines(r: &RunResult) -> String {
    let mut s = String::new();
    let figure = |f: &crate::windows::StabilityFigure| {
        format!(
            "{:.2} ({} of the window ending at {} s against the median window's {:.2} ms p99 / {:.2} ms p99.9)",
            f.worst_ratio, f.worst_percentile, f.worst_end_second, f.p99_median_ms, f.p999_median_ms
        )
    };
    let st = &r.stability;
    if let Some(p) = &st.publish {
        s += &format!("  stability publish {}", figure(p));
        if let Some(e) = &st.end_to_end {
            s += &format!(", end-to-end {}", figure(e));
        }
        s += &format!("; {} windows of {} s\n", p.windows, st.window_seconds);
    }
    if let Some(b) = &r.backlog_drain {
        let mb = b.backlog_at_release_bytes as f64 / 1e6;
        s += &match (b.released_at_second, b.drain_seconds) {
            (None, _) => format!("  backlog   never reached {:.0} MB within the run\n", b.target_bytes as f64 / 1e6),
            (Some(at), None) => format!("  backlog   {mb:.0} MB built by {at:.2} s, not drained within the run\n"),
            (Some(at), Some(d)) => format!(
                "  backlog   {mb:.0} MB built by {at:.2} s, drained in {d:.2} s: {:.0} MB/s consumed while producers went on at {:.0} msgs/s\n",
                b.drain_consume_mbps, b.drain_publish_rate
            ),
        };
    }
    if !r.segment_events.is_empty() {
        let count = |kind| {
            let events = r.segment_events.iter().filter(|e| e.kind == kind);
            events.fold((0, 0), |(n, segments), e| (n + 1, segments + e.segments))
        };
        let (deletions, deleted) = count(crate::segments::EventKind::Deletion);
        let (compactions, rewritten) = count(crate::segments::EventKind::Compaction);
        let (roll_seconds, rolled) = count(crate::segments::EventKind::Roll);
        s += &format!(
            "  segments  {deleted} deleted in {deletions} second(s), {rewritten} rewritten by compaction in {compactions}, {rolled} rolled in {roll_seconds}\n"
        );
    }
    s
}

/// Writes the JSON and the two plots as `DIR/SLUG.json`, `-latency.svg`, `-timeseries.svg`,
/// and OMB's JSON as `-omb.json`.
pub fn write_outputs(r: &RunResult, dir: &Path, slug: &str) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    let json = dir.join(format!("{slug}.json"));
    r.save(&json)?;
    let latency = dir.join(format!("{slug}-latency.svg"));
    std::fs::write(&latency, crate::plots::latency_curve(r)).map_err(|e| Error::file(&latency, e))?;
    let series = dir.join(format!("{slug}-timeseries.svg"));
    std::fs::write(&series, crate::plots::timeseries(r)).map_err(|e| Error::file(&series, e))?;
    // OMB's own result format, for its charting script.
    let omb = dir.join(format!("{slug}-omb.json"));
    std::fs::write(&omb, OmbResult::from_run(r).to_json()).map_err(|e| Error::file(&omb, e))?;
    Ok(vec![json, latency, series, omb])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::parse;

    fn shared() -> Shared {
        Shared {
            brokers: "x".into(),
            run_tag: 1,
            total_rate: 0.0,
            acks: riptide_client::Acks::All,
            compression: riptide_client::Compression::None,
            batch_bytes_max: 1024,
            linger: Duration::ZERO,
            key_distributor: crate::keys::KeyDistributor::NoKey,
            in_flight_max: 1,
            assignment: Assignment::Group,
            gate: None,
        }
    }

    #[test]
    fn clients_spread_over_threads() {
        let w = parse(
            "name: Fan Out!\nmessageSize: 100\ntopics: 2\nproducersPerTopic: 2\nsubscriptionsPerTopic: 3\n",
            Path::new("."),
        )
        .expect("valid");
        let topics = topic_names(&w, 0xabcdef);
        assert_eq!(topics, vec!["bench-fan-out-00abcdef-0", "bench-fan-out-00abcdef-1"]);
        let plans = plan_workers(&w, &topics, 2, &shared(), 7).expect("plan");
        assert_eq!(plans.len(), 2);
        let producers: usize = plans.iter().map(|p| p.producers.len()).sum();
        let consumers: usize = plans.iter().map(|p| p.consumers.len()).sum();
        assert_eq!((producers, consumers), (4, 6));
        assert_eq!(plans[0].producers.len() + plans[0].consumers.len(), 5);
        let mut indexes: Vec<u32> = plans.iter().flat_map(|p| p.producers.iter().map(|s| s.index)).collect();
        indexes.sort_unstable();
        assert_eq!(indexes, vec![0, 1, 2, 3], "each producer has its own slot in the interleaved schedule");
        let groups: std::collections::BTreeSet<&str> =
            plans.iter().flat_map(|p| p.consumers.iter().map(|c| c.group.as_str())).collect();
        assert_eq!(groups.len(), 6, "3 subscriptions (groups) per topic");
        // More threads than clients: empty threads are dropped.
        assert_eq!(plan_workers(&w, &topics, 64, &shared(), 7).expect("plan").len(), 10);
    }

    #[test]
    fn the_summary_tells_stability_backlog_and_segment_events() {
        use crate::backlog::BacklogDrain;
        use crate::segments::{EventKind, SegmentEvent};
        use crate::windows::{Stability, StabilityFigure};
        let mut r = crate::report::tests::measured();
        assert_eq!(soak_lines(&r), "", "nothing to tell");
        let f = StabilityFigure {
            windows: 5,
            p99_median_ms: 12.0,
            p999_median_ms: 19.5,
            worst_ratio: 1.6,
            worst_end_second: 50,
            worst_percentile: "p99.9".into(),
        };
        r.stability = Stability { window_seconds: 10, publish: Some(f), end_to_end: None };
        r.backlog_drain = Some(BacklogDrain {
            target_bytes: 800_000_000,
            released_at_second: Some(13.42),
            backlog_at_release_bytes: 805_000_000,
            drain_seconds: Some(0.63),
            drain_consume_mbps: 1347.0,
            drain_publish_rate: 58_363.0,
            ..BacklogDrain::default()
        });
        let event = |second, kind, segments| SegmentEvent { second, kind, partitions: 1, segments };
        r.segment_events = vec![
            event(5, EventKind::Deletion, 3),
            event(9, EventKind::Deletion, 4),
            event(9, EventKind::Compaction, 2),
            event(9, EventKind::Roll, 1),
        ];
        let text = soak_lines(&r);
        assert!(text.contains("stability publish 1.60 (p99.9 of the window ending at 50 s"), "{text}");
        assert!(text.contains("805 MB built by 13.42 s, drained in 0.63 s: 1347 MB/s"), "{text}");
        assert!(
            text.contains("7 deleted in 2 second(s), 2 rewritten by compaction in 1, 1 rolled in 1"),
            "{text}"
        );
    }

    #[test]
    fn seconds_fall_into_phases() {
        use crate::clock::NS_PER_S;
        use crate::worker::phase_of;
        let s = NS_PER_S;
        let t = Timeline { start_ns: 10 * s, measure_from_ns: 12 * s, end_ns: 15 * s, stop_ns: 17 * s };
        assert_eq!(t.seconds(), 7);
        let phases: Vec<&str> = (1..=7).map(|k| phase_of(k, &t)).collect();
        assert_eq!(phases, vec!["warmup", "warmup", "measure", "measure", "measure", "drain", "drain"]);
    }
}
