//! `compare-brokers`: the same workloads against two or more brokers on one machine, in
//! interleaved rounds (A, B, A, B, ...), so that whatever else the machine does (other
//! builds, a noisy disk, thermal drift) falls on every broker alike; the report gives each
//! broker's median with its spread over the rounds and each broker's ratio to the first one,
//! paired round by round, with the ratios' spread. A ratio whose min–max range straddles 1
//! is not a difference this machine could show.
//!
//! For brokers the harness starts (`spawn`, `discard`) or is told the PID of, it also
//! reports the broker's CPU seconds per GB moved (published + consumed, whole run, warm-up
//! included) and its peak resident memory, both from /proc.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::report::RunResult;
use crate::runner::{self, slug, RunOptions, Target};
use crate::spawn::{riptide_binary, ChildBroker, RiptideOptions};
use crate::windows::median;
use crate::workload::Workload;

/// How to reach, or start, one broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerSpec {
    /// A riptide started fresh for every run (this binary, or the one given).
    Spawn { binary: Option<PathBuf> },
    /// The built-in discard broker (producers only): the harness's ceiling.
    Discard,
    /// A running broker at `brokers`; with its PID for CPU and memory.
    Running { brokers: String, pid: Option<u32> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedBroker {
    pub name: String,
    pub spec: BrokerSpec,
}

/// A `--broker` argument that says no broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerSpecError {
    #[error("{0:?}: expected NAME=WHAT")]
    NoName(String),
    #[error("{0:?}: the name must be letters, digits, '-', '_' or '.' (it names result files)")]
    BadName(String),
    #[error("{0:?}: {1:?} is not a PID")]
    BadPid(String, String),
    #[error("{0:?}: expected spawn, spawn:BINARY, discard or HOST:PORT[@PID]")]
    BadTarget(String),
}

/// `NAME=spawn[:BINARY]`, `NAME=discard` or `NAME=HOST:PORT[,HOST:PORT...][@PID]`.
pub fn parse_broker(text: &str) -> Result<NamedBroker, BrokerSpecError> {
    let (name, what) = text.split_once('=').ok_or_else(|| BrokerSpecError::NoName(text.into()))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(BrokerSpecError::BadName(text.into()));
    }
    let spec = match what {
        "spawn" => BrokerSpec::Spawn { binary: None },
        "discard" => BrokerSpec::Discard,
        w if w.starts_with("spawn:") => BrokerSpec::Spawn { binary: Some(PathBuf::from(&w[6..])) },
        w => {
            let (brokers, pid) = match w.rsplit_once('@') {
                Some((b, pid)) => (
                    b,
                    Some(pid.parse::<u32>().map_err(|_| BrokerSpecError::BadPid(text.into(), pid.into()))?),
                ),
                None => (w, None),
            };
            if brokers.is_empty() || !brokers.split(',').all(|b| b.rsplit_once(':').is_some()) {
                return Err(BrokerSpecError::BadTarget(text.into()));
            }
            BrokerSpec::Running { brokers: brokers.to_string(), pid }
        }
    };
    Ok(NamedBroker { name: name.to_string(), spec })
}

/// The order of brokers within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// A, B, A, B, ...: every round the same order.
    Fixed,
    /// A, B, B, A, ...: odd rounds reversed, so a drift over the session (a warming page
    /// cache, a filling disk) cancels out instead of always favouring the same broker.
    Alternating,
}

/// One run of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub round: usize,
    pub workload: usize,
    pub broker: usize,
}

/// Every run, in the order to run them: round by round, and within a round workload by
/// workload, each against every broker back to back.
pub fn interleave(brokers: usize, workloads: usize, rounds: usize, order: Order) -> Vec<Slot> {
    let mut plan = Vec::with_capacity(brokers * workloads * rounds);
    for round in 0..rounds {
        for workload in 0..workloads {
            for i in 0..brokers {
                let reversed = order == Order::Alternating && round % 2 == 1;
                let broker = if reversed { brokers - 1 - i } else { i };
                plan.push(Slot { round, workload, broker });
            }
        }
    }
    plan
}

/// Median and range of a few values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values (a metric the runs did not have).
    pub fn of(values: &[f64]) -> Option<Spread> {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return None;
        }
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread { median: median(finite), min, max })
    }
}

/// Per-round ratios `b[r] / a[r]` over the rounds both have (a zero `a` has no ratio).
pub fn paired_ratios(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if *x != 0.0 => Some(y / x),
            _ => None,
        })
        .collect()
}

/// How to read one metric from a result (`None`: the run has no such number).
pub type Metric = fn(&RunResult) -> Option<f64>;

/// What the table compares, with how to read each from a result.
pub const METRICS: &[(&str, Metric)] = &[
    ("published msgs/s", |r| Some(r.aggregated_publish_rate)),
    ("published MB/s", |r| Some(r.aggregated_publish_mbps)),
    ("consumed MB/s", |r| (r.aggregated_end_to_end_latency.count > 0).then_some(r.aggregated_consume_mbps)),
    ("publish p50 ms", |r| Some(r.aggregated_publish_latency.p50)),
    ("publish p99 ms", |r| Some(r.aggregated_publish_latency.p99)),
    ("publish p99.9 ms", |r| Some(r.aggregated_publish_latency.p999)),
    ("end-to-end p50 ms", |r| nonzero(r.aggregated_end_to_end_latency.p50)),
    ("end-to-end p99 ms", |r| nonzero(r.aggregated_end_to_end_latency.p99)),
    ("broker CPU-s per GB", broker_cpu_seconds_per_gb),
    ("broker peak RSS MB", |r| r.cpu.broker_peak_rss_bytes.map(|b| b as f64 / 1e6)),
    ("errors", |r| Some(r.errors as f64)),
];

fn nonzero(v: f64) -> Option<f64> {
    (v > 0.0).then_some(v)
}

/// The broker's CPU seconds over the whole run per GB published and consumed in it.
pub fn broker_cpu_seconds_per_gb(r: &RunResult) -> Option<f64> {
    let gb = (r.publish_mbps.iter().sum::<f64>() + r.consume_mbps.iter().sum::<f64>()) / 1e3;
    r.cpu.broker_cpu_seconds.filter(|_| gb > 0.0).map(|cpu| cpu / gb)
}

/// One workload's results: `runs[broker][round]`.
pub struct WorkloadRuns<'a> {
    pub workload: &'a str,
    pub runs: Vec<Vec<Option<&'a RunResult>>>,
}

impl WorkloadRuns<'_> {
    /// `values[broker][round]` of one metric.
    fn values(&self, read: Metric) -> Vec<Vec<Option<f64>>> {
        self.runs.iter().map(|rounds| rounds.iter().map(|r| r.and_then(read)).collect()).collect()
    }
}

fn cell(s: Option<Spread>, ratio: bool) -> String {
    let show = |v: f64| if ratio { format!("{v:.2}") } else { short(v) };
    match s {
        None => "–".into(),
        Some(s) if s.min == s.max => show(s.median),
        Some(s) => format!("{} ({}–{})", show(s.median), show(s.min), show(s.max)),
    }
}

fn short(v: f64) -> String {
    if v.abs() >= 1000.0 {
        thousands(v)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `v` rounded, with thousands separated by commas (1,234,567).
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// The Markdown table of one workload: a row per metric, a column per broker (median and
/// min–max over the rounds), and a column per other broker with its ratio to the first.
pub fn table(w: &WorkloadRuns<'_>, names: &[String]) -> String {
    let rounds = w.runs.first().map_or(0, Vec::len);
    let mut out = format!("**{}** ({rounds} rounds; median (min–max))\n\n| metric |", w.workload);
    for n in names {
        out += &format!(" {n} |");
    }
    for n in &names[1..] {
        out += &format!(" {n} / {} |", names[0]);
    }
    out += "\n|---|";
    out += &"---|".repeat(names.len() * 2 - 1);
    out += "\n";
    for (metric, read) in METRICS {
        let values = w.values(*read);
        if values.iter().flatten().all(Option::is_none) {
            continue;
        }
        out += &format!("| {metric} |");
        for v in &values {
            out +=
                &format!(" {} |", cell(Spread::of(&v.iter().flatten().copied().collect::<Vec<_>>()), false));
        }
        for v in &values[1..] {
            out += &format!(" {} |", cell(Spread::of(&paired_ratios(&values[0], v)), true));
        }
        out += "\n";
    }
    out
}

/// The whole comparison's settings.
pub struct Plan<'a> {
    pub brokers: &'a [NamedBroker],
    pub workloads: &'a [(PathBuf, Workload)],
    pub rounds: usize,
    pub order: Order,
    pub options: &'a RunOptions,
    pub out: &'a Path,
    /// Parent of spawned brokers' data directories.
    pub data_parent: &'a Path,
    /// TOML config for spawned riptides.
    pub riptide_config: Option<&'a Path>,
}

/// Runs the plan; `results[workload][broker][round]`, a failed run as `None` (reported on
/// stderr, the comparison goes on).
pub fn run(plan: &Plan<'_>) -> Result<Vec<Vec<Vec<Option<RunResult>>>>> {
    let (nb, nw) = (plan.brokers.len(), plan.workloads.len());
    if nb < 2 {
        return Err(Error::Invalid("compare-brokers needs two or more brokers".into()));
    }
    let mut results: Vec<Vec<Vec<Option<RunResult>>>> =
        (0..nw).map(|_| (0..nb).map(|_| vec![None; plan.rounds]).collect()).collect();
    let slots = interleave(nb, nw, plan.rounds, plan.order);
    for (k, slot) in slots.iter().enumerate() {
        let broker = &plan.brokers[slot.broker];
        let (path, w) = &plan.workloads[slot.workload];
        eprintln!(
            "== run {}/{}: round {} of {}, {} against {}",
            k + 1,
            slots.len(),
            slot.round + 1,
            plan.rounds,
            w.name,
            broker.name
        );
        match run_one(plan, broker, path, w) {
            Ok(r) => {
                let file =
                    plan.out.join(format!("{}-{}-r{}.json", slug(&w.name), broker.name, slot.round + 1));
                r.save(&file)?;
                eprint!("{}", runner::summary(&r));
                results[slot.workload][slot.broker][slot.round] = Some(r);
            }
            Err(e) => eprintln!("   failed: {e}"),
        }
    }
    Ok(results)
}

fn run_one(plan: &Plan<'_>, broker: &NamedBroker, path: &Path, w: &Workload) -> Result<RunResult> {
    let mut w = w.clone();
    let child = match &broker.spec {
        BrokerSpec::Spawn { binary } => Some(ChildBroker::riptide(&RiptideOptions {
            binary: riptide_binary(binary.as_deref()),
            config: plan.riptide_config,
            shards: None,
            data_parent: plan.data_parent,
            extra_args: &[],
        })?),
        BrokerSpec::Discard => {
            w.subscriptions_per_topic = 0;
            Some(ChildBroker::discard(w.partitions_per_topic, plan.data_parent)?)
        }
        BrokerSpec::Running { .. } => None,
    };
    let target = match (&child, &broker.spec) {
        (Some(c), _) => Target {
            brokers: c.addr.clone(),
            label: format!("{}: {}", broker.name, c.label),
            broker_pid: Some(c.pid()),
            data_dir: c.data_dir().map(Path::to_path_buf),
        },
        (None, BrokerSpec::Running { brokers, pid }) => Target {
            brokers: brokers.clone(),
            label: format!("{}: {brokers}", broker.name),
            broker_pid: *pid,
            data_dir: None,
        },
        (None, _) => unreachable!("spawned specs have a child"),
    };
    let result = runner::run(&w, &path.display().to_string(), &target, plan.options);
    if let Some(c) = child {
        c.stop();
    }
    result
}

/// Writes the tables (`compare-brokers.md`) and their numbers (`compare-brokers.json`) to
/// the plan's `out`; returns the Markdown and the files written.
pub fn write_report(
    plan: &Plan<'_>,
    results: &[Vec<Vec<Option<RunResult>>>],
) -> Result<(String, Vec<PathBuf>)> {
    let names: Vec<String> = plan.brokers.iter().map(|b| b.name.clone()).collect();
    let mut markdown = String::new();
    let mut summaries = Vec::new();
    for ((_, w), per_broker) in plan.workloads.iter().zip(results) {
        let runs = WorkloadRuns {
            workload: &w.name,
            runs: per_broker.iter().map(|rounds| rounds.iter().map(Option::as_ref).collect()).collect(),
        };
        markdown += &table(&runs, &names);
        markdown += "\n";
        summaries.push(summarize(&runs));
    }
    let md = plan.out.join("compare-brokers.md");
    std::fs::write(&md, &markdown).map_err(|e| Error::file(&md, e))?;
    let order = match plan.order {
        Order::Fixed => "fixed",
        Order::Alternating => "alternating",
    };
    let summary = Summary { brokers: names, rounds: plan.rounds, order: order.into(), workloads: summaries };
    let json = plan.out.join("compare-brokers.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(&json, text + "\n").map_err(|e| Error::file(&json, e))?;
    Ok((markdown, vec![md, json]))
}

/// The summary file: the tables' numbers for scripts.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub brokers: Vec<String>,
    pub rounds: usize,
    pub order: String,
    pub workloads: Vec<WorkloadSummary>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSummary {
    pub workload: String,
    /// metric → per broker (in `brokers` order) its spread over the rounds.
    pub metrics: Vec<MetricSummary>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSummary {
    pub metric: String,
    pub per_broker: Vec<Option<Spread>>,
    /// Each other broker's ratio to the first, paired by round.
    pub ratio_to_first: Vec<Option<Spread>>,
}

pub fn summarize(w: &WorkloadRuns<'_>) -> WorkloadSummary {
    let metrics = METRICS
        .iter()
        .map(|(metric, read)| {
            let values = w.values(*read);
            MetricSummary {
                metric: metric.to_string(),
                per_broker: values
                    .iter()
                    .map(|v| Spread::of(&v.iter().flatten().copied().collect::<Vec<_>>()))
                    .collect(),
                ratio_to_first: values[1..]
                    .iter()
                    .map(|v| Spread::of(&paired_ratios(&values[0], v)))
                    .collect(),
            }
        })
        .collect();
    WorkloadSummary { workload: w.workload.to_string(), metrics }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::measured;

    #[test]
    fn broker_specs_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_broker("riptide=spawn"),
            Ok(NamedBroker { name: "riptide".into(), spec: BrokerSpec::Spawn { binary: None } })
        );
        assert_eq!(
            parse_broker("old=spawn:/opt/riptide-0.1").map(|b| b.spec),
            Ok(BrokerSpec::Spawn { binary: Some(PathBuf::from("/opt/riptide-0.1")) })
        );
        assert_eq!(parse_broker("d=discard").map(|b| b.spec), Ok(BrokerSpec::Discard));
        assert_eq!(
            parse_broker("other=localhost:9093@4242").map(|b| b.spec),
            Ok(BrokerSpec::Running { brokers: "localhost:9093".into(), pid: Some(4242) })
        );
        assert_eq!(
            parse_broker("k=a:1,b:2").map(|b| b.spec),
            Ok(BrokerSpec::Running { brokers: "a:1,b:2".into(), pid: None })
        );
        assert!(matches!(parse_broker("spawn"), Err(BrokerSpecError::NoName(_))));
        assert!(matches!(parse_broker("a b=spawn"), Err(BrokerSpecError::BadName(_))));
        assert!(matches!(parse_broker("x=localhost:1@me"), Err(BrokerSpecError::BadPid(_, p)) if p == "me"));
        let e = parse_broker("x=nowhere").expect_err("no port");
        assert!(e.to_string().contains("HOST:PORT[@PID]"), "{e}");
    }

    #[test]
    fn rounds_interleave_the_brokers() {
        let order =
            |plan: Vec<Slot>| plan.iter().map(|s| (s.round, s.workload, s.broker)).collect::<Vec<_>>();
        assert_eq!(
            order(interleave(2, 1, 3, Order::Fixed)),
            vec![(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1), (2, 0, 0), (2, 0, 1)],
            "A, B, A, B, A, B"
        );
        assert_eq!(
            order(interleave(2, 1, 4, Order::Alternating)).iter().map(|s| s.2).collect::<Vec<_>>(),
            vec![0, 1, 1, 0, 0, 1, 1, 0],
            "A, B, B, A, ..."
        );
        // Two workloads, three brokers: each workload meets every broker within each round.
        let plan = interleave(3, 2, 2, Order::Fixed);
        assert_eq!(plan.len(), 12);
        assert_eq!(
            order(plan[..6].to_vec()),
            vec![(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0), (0, 1, 1), (0, 1, 2)]
        );
    }

    #[test]
    fn ratios_pair_rounds_and_report_their_spread() {
        // B is twice A in every round though both drift: the ratio is steady.
        let a = [Some(100.0), Some(150.0), Some(120.0)];
        let b = [Some(200.0), Some(300.0), Some(240.0)];
        let r = Spread::of(&paired_ratios(&a, &b)).expect("ratios");
        assert_eq!((r.median, r.min, r.max), (2.0, 2.0, 2.0));
        // A round missing on one side, or a zero base, has no ratio.
        assert_eq!(
            paired_ratios(&[Some(1.0), None, Some(0.0)], &[Some(3.0), Some(1.0), Some(5.0)]),
            vec![3.0]
        );
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(
            (thousands(1_234_567.4), thousands(999.0), thousands(-1000.0)),
            ("1,234,567".into(), "999".into(), "-1,000".into())
        );
        let s = Spread::of(&[3.0, 1.0, 2.0, f64::NAN]).expect("values");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
    }

    #[test]
    fn the_table_shows_medians_spreads_ratios_and_cost_per_gb() {
        let a1 = measured();
        let mut a2 = measured();
        a2.aggregated_publish_rate = 1200.0;
        let mut b1 = measured();
        b1.aggregated_publish_rate = 500.0;
        b1.cpu.broker_peak_rss_bytes = Some(50_000_000);
        let mut b2 = measured();
        b2.aggregated_publish_rate = 900.0;
        let w = WorkloadRuns {
            workload: "w",
            runs: vec![vec![Some(&a1), Some(&a2)], vec![Some(&b1), Some(&b2)]],
        };
        let t = table(&w, &["a".into(), "b".into()]);
        let row = t.lines().find(|l| l.starts_with("| published msgs/s")).expect("row");
        // a: 1000, 1200; b: 500, 900; ratios 0.5 and 0.75.
        assert_eq!(
            row, "| published msgs/s | 1,100 (1,000–1,200) | 700 (500–900) | 0.62 (0.50–0.75) |",
            "{t}"
        );
        // measured(): 1 s of CPU over 0.3 MB published + 0.6 MB consumed: 1,111 CPU-s per GB.
        let cpu = t.lines().find(|l| l.starts_with("| broker CPU-s per GB")).expect("row");
        assert!(cpu.contains("| 1,111 | 1,111 | 1.00 |"), "{cpu}");
        let rss = t.lines().find(|l| l.starts_with("| broker peak RSS MB")).expect("row");
        assert!(rss.contains("| – | 50 |"), "{rss}");
        let s = summarize(&w);
        assert_eq!(s.metrics[0].ratio_to_first[0].map(|r| r.max), Some(0.75));
    }
}
