//! End-to-end runs of the harness: against the discard broker (open-loop producer at a fixed
//! rate: every intended message is published and measured) and against a real riptide started
//! in this process (consumer groups and a static split read everything back, with end-to-end
//! latency). Short (a few seconds each) so that they run in CI.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use riptide_bench::report::RunResult;
use riptide_bench::runner::{self, RunOptions, Target};
use riptide_bench::workload::parse;

fn options() -> RunOptions {
    RunOptions {
        threads: Some(2),
        baseline: None,
        keep_topics: false,
        drain: Duration::from_secs(2),
        notes: Vec::new(),
        window_seconds: 1,
    }
}

fn discard_broker() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || riptide_bench::discard::serve_on(listener, 4));
    addr
}

fn target(addr: &str, label: &str) -> Target {
    Target { brokers: addr.to_string(), label: label.to_string(), broker_pid: None, data_dir: None }
}

#[test]
fn an_open_loop_producer_publishes_every_intended_message() {
    let addr = discard_broker();
    let w = parse(
        "name: steady\nmessageSize: 100\npartitionsPerTopic: 4\nsubscriptionsPerTopic: 0\nproducerRate: 5000\n\
         acks: 1\nlingerMs: 1\nwarmupDurationSeconds: 1\ntestDurationSeconds: 1\n",
        Path::new("."),
    )
    .expect("valid workload");
    let r = runner::run(&w, "steady.yaml", &target(&addr, "discard"), &options()).expect("run");
    assert_eq!(r.errors, 0, "{:?}", r.errors_by_kind);
    // Exactly the messages intended in the 1 s window count: 5,000 (±1 at the edges).
    let p = r.aggregated_publish_latency;
    assert!((4_999..=5_001).contains(&p.count), "{p:?}");
    assert!((r.aggregated_publish_rate - 5_000.0).abs() <= 1.0, "{}", r.aggregated_publish_rate);
    assert!((r.aggregated_publish_mbps - 0.5).abs() < 0.01);
    assert!(p.p50 > 0.0 && p.p50 <= p.p99 && p.p99 <= p.max, "{p:?}");
    assert_eq!(r.phase.first().map(String::as_str), Some("warmup"));
    assert!(r.phase.iter().any(|s| s == "measure"));
    assert_eq!(r.aggregated_end_to_end_latency.count, 0, "no consumers");
    let h = r.publish_histogram().expect("histogram");
    assert_eq!(h.len(), p.count);
    // The result survives a trip through its JSON file.
    let path = std::env::temp_dir().join(format!("rb-it-{}.json", std::process::id()));
    r.save(&path).expect("save");
    assert_eq!(RunResult::load(&path).expect("load"), r);
    let _ = std::fs::remove_file(path);
}

#[test]
fn an_unreachable_broker_is_an_error_not_a_result() {
    // Nothing listens on a loopback host reserved for this test.
    let host = riptide_client::launch::LoopbackHost::reserve().expect("host");
    let w = parse("name: x\nmessageSize: 100\ntestDurationSeconds: 1\n", Path::new(".")).expect("valid");
    let err = runner::run(&w, "x.yaml", &target(&host.addr(9092).to_string(), "nobody"), &options())
        .expect_err("no broker");
    assert!(err.to_string().contains("connect"), "{err}");
}

/// A riptide in this process with its own data directory (`name`: tests run in parallel).
fn riptide(name: &str) -> (riptide_server::server::RunningBroker, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("rb-it-riptide-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = riptide_server::config::ServerConfig {
        data_dir: dir.clone(),
        // Port 0: the broker advertises the port it was given.
        listeners: vec![riptide_server::config::KafkaListener::plaintext(
            "127.0.0.1:0".parse().expect("addr"),
        )],
        metrics_listen: None,
        rest: riptide_server::config::RestConfig { listen: None, ..Default::default() },
        shards: 1,
        pin_shards: false,
        ..Default::default()
    };
    (riptide_server::server::start(config).expect("riptide starts"), dir)
}

#[test]
fn consumers_in_groups_and_static_splits_read_everything_back() {
    let (broker, dir) = riptide("groups");
    let addr = broker.addr.to_string();
    for assignment in ["group", "static"] {
        let w = parse(
            &format!(
                "name: fan-{assignment}\nmessageSize: 200\npartitionsPerTopic: 4\nsubscriptionsPerTopic: 2\n\
                 consumerPerSubscription: 2\nconsumerAssignment: {assignment}\nproducerRate: 2000\nlingerMs: 2\n\
                 warmupDurationSeconds: 1\ntestDurationSeconds: 2\n"
            ),
            Path::new("."),
        )
        .expect("valid workload");
        let r = runner::run(&w, "fan.yaml", &target(&addr, "riptide"), &options()).expect("run");
        assert_eq!(r.errors, 0, "{assignment}: {:?}", r.errors_by_kind);
        let published = r.aggregated_publish_latency.count;
        assert!((3_999..=4_001).contains(&published), "{assignment}: published {published}");
        // Two subscriptions each read every message of the window once.
        let consumed = r.aggregated_end_to_end_latency.count;
        assert_eq!(consumed, 2 * published, "{assignment}: consumed {consumed} of {published} x 2");
        let e = r.aggregated_end_to_end_latency;
        // Measured from the intended send time, so never below the time on the wire; and not
        // absurd (a stamp misread as a time would give days).
        assert!(e.p50 > 0.0 && e.p50 <= e.p99 && e.max < 5_000.0, "{assignment}: {e:?}");
        assert!(r.consume_rate.iter().sum::<f64>() >= (2 * published) as f64);
        assert!(*r.backlog.last().expect("samples") <= 0, "{assignment}: backlog {:?}", r.backlog);
    }
    broker.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn every_shipped_workload_reads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("workloads/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let w = riptide_bench::workload::load(&path).unwrap_or_else(|e| panic!("{e}"));
            names.push(w.name);
        }
    }
    // The harness's own (soak) workloads beside it.
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    for entry in std::fs::read_dir(&own).expect("bench-harness/workloads/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let w = riptide_bench::workload::load(&path).unwrap_or_else(|e| panic!("{e}"));
            names.push(w.name);
        }
    }
    names.sort();
    // The six of the harness issue, the harness's ceiling, and the small-batch and
    // many-partition fetch workloads of the layering and per-batch cost work.
    assert!(names.len() >= 9, "{names:?}");
    assert!(names.iter().any(|n| n.contains("sweep")) && names.iter().any(|n| n.contains("fanout")));
    assert!(names.iter().any(|n| n == "soak-keyed-50-producers"), "{names:?}");
}

#[test]
fn keyed_records_build_a_backlog_that_the_released_consumers_drain() {
    let (broker, dir) = riptide("backlog");
    let addr = broker.addr.to_string();
    // 4,000 msgs/s of 1 KiB (4 MB/s) from 2 producers; consumers wait for a 6 MiB backlog
    // (about 1.5 s of production), then drain it while the producers go on.
    let w = parse(
        "name: backlog-keyed\nmessageSize: 1024\npartitionsPerTopic: 4\nkeyDistributor: RANDOM_NANO\n\
         producersPerTopic: 2\nsubscriptionsPerTopic: 1\nconsumerPerSubscription: 2\nconsumerAssignment: static\n\
         producerRate: 4000\nconsumerBacklogSizeGB: 0.005859375\nwarmupDurationSeconds: 1\ntestDurationSeconds: 6\n",
        Path::new("."),
    )
    .expect("valid workload");
    let mut opts = options();
    opts.window_seconds = 2;
    let r = runner::run(&w, "backlog.yaml", &target(&addr, "riptide"), &opts).expect("run");
    assert_eq!(r.errors, 0, "{:?}", r.errors_by_kind);
    assert_eq!(r.config.key_distributor, "RANDOM_NANO");
    let b = r.backlog_drain.clone().expect("a backlog test");
    let released = b.released_at_second.expect("the backlog was built");
    assert!((1.0..=4.5).contains(&released), "{b:?}");
    assert!(b.backlog_at_release_bytes >= 6 << 20, "{b:?}");
    let drained = b.drained_at_second.expect("and drained within the run");
    assert!(drained > released && b.drain_consume_rate > b.drain_publish_rate, "{b:?}");
    assert!(b.net_drain_rate > 0.0, "{b:?}");
    // Nothing was consumed before the release.
    assert!(r.consume_rate[..released as usize].iter().all(|c| *c == 0.0), "{:?}", r.consume_rate);
    // Every measured message arrived, keyed records included.
    assert_eq!(r.aggregated_end_to_end_latency.count, r.aggregated_publish_latency.count);
    // Windows of 2 s: the stability figure compares the measured ones.
    assert!(r.windows.len() >= 4, "{:?}", r.windows.len());
    let f = r.stability.publish.expect("several measured windows");
    assert!(f.worst_ratio >= 1.0 && f.windows >= 2, "{f:?}");
    broker.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn compare_brokers_runs_interleaved_rounds_and_writes_its_tables() {
    use riptide_bench::side_by_side::{self, parse_broker, Order, Plan};
    let (a, b) = (discard_broker(), discard_broker());
    let brokers =
        vec![parse_broker(&format!("a={a}")).expect("a"), parse_broker(&format!("b={b}")).expect("b")];
    let w = parse(
        "name: side\nmessageSize: 100\npartitionsPerTopic: 4\nsubscriptionsPerTopic: 0\nproducerRate: 2000\nacks: 1\n\
         warmupDurationSeconds: 0\ntestDurationSeconds: 1\n",
        Path::new("."),
    )
    .expect("valid workload");
    let out = std::env::temp_dir().join(format!("rb-it-side-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("out");
    let workloads = vec![(std::path::PathBuf::from("side.yaml"), w)];
    let plan = Plan {
        brokers: &brokers,
        workloads: &workloads,
        rounds: 2,
        order: Order::Alternating,
        options: &options(),
        out: &out,
        data_parent: &out,
        riptide_config: None,
    };
    let results = side_by_side::run(&plan).expect("runs");
    // results[workload][broker][round], every run there, each against its own broker.
    assert_eq!((results.len(), results[0].len(), results[0][0].len()), (1, 2, 2));
    for (broker, addr) in [(0, &a), (1, &b)] {
        for round in &results[0][broker] {
            let r = round.as_ref().expect("the run succeeded");
            assert!(r.config.target.ends_with(addr.as_str()), "{}", r.config.target);
            assert_eq!(r.errors, 0);
        }
    }
    let (markdown, written) = side_by_side::write_report(&plan, &results).expect("report");
    assert!(markdown.contains("| metric | a | b | b / a |"), "{markdown}");
    // 2,000 msgs/s each (±1 at the window's edges): a ratio of 1.00.
    let row = markdown.lines().find(|l| l.starts_with("| published msgs/s |")).expect("row");
    let cells: Vec<f64> = row.split('|').filter_map(|c| c.trim().replace(',', "").parse().ok()).collect();
    assert_eq!(cells.len(), 3, "{row}");
    assert!((1_998.0..=2_002.0).contains(&cells[0]) && (1_998.0..=2_002.0).contains(&cells[1]), "{row}");
    assert_eq!(cells[2], 1.0, "{row}");
    assert!(written.iter().all(|p| p.is_file()));
    assert!(out.join("side-b-r2.json").is_file(), "each run's result is kept");
    let _ = std::fs::remove_dir_all(out);
}
